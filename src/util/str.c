#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/str.h"

static void *check_alloc(void *p)
{
    if (p == NULL) {
        fputs("fhirsched: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *util_xmalloc(size_t size)
{
    return check_alloc(malloc(size != 0 ? size : 1));
}

void *util_xcalloc(size_t count, size_t size)
{
    return check_alloc(calloc(count != 0 ? count : 1, size != 0 ? size : 1));
}

void *util_xrealloc(void *p, size_t size)
{
    return check_alloc(realloc(p, size != 0 ? size : 1));
}

char *util_xstrdup(const char *s)
{
    return check_alloc(strdup(s));
}

char *util_xstrndup(const char *s, size_t len)
{
    char *p = util_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *util_vasprintf(const char *fmt, va_list args)
{
    /* formatted once into a stack buffer; only longer results are formatted again, into their own allocation */
    char small[256];
    va_list copy;
    va_copy(copy, args);
    int n = vsnprintf(small, sizeof(small), fmt, copy);
    va_end(copy);
    size_t len = n < 0 ? 0 : (size_t)n;
    char *p = util_xmalloc(len + 1);
    if (len < sizeof(small))
        memcpy(p, n < 0 ? "" : small, len + 1);
    else
        vsnprintf(p, len + 1, fmt, args);
    return p;
}

char *util_asprintf(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *p = util_vasprintf(fmt, args);
    va_end(args);
    return p;
}

bool util_str_eq(const char *s, size_t len, const char *lit)
{
    size_t litlen = strlen(lit);
    return len == litlen && memcmp(s, lit, len) == 0;
}

void util_buf_init(util_buf_t *buf)
{
    buf->_capacity = 64;
    buf->base = util_xmalloc(buf->_capacity);
    buf->base[0] = '\0';
    buf->len = 0;
}

void util_buf_dispose(util_buf_t *buf)
{
    free(buf->base);
    buf->base = NULL;
    buf->len = buf->_capacity = 0;
}

static void buf_reserve(util_buf_t *buf, size_t extra)
{
    if (buf->len + extra + 1 <= buf->_capacity)
        return;
    while (buf->len + extra + 1 > buf->_capacity)
        buf->_capacity *= 2;
    buf->base = util_xrealloc(buf->base, buf->_capacity);
}

void util_buf_append(util_buf_t *buf, const char *s, size_t len)
{
    buf_reserve(buf, len);
    memcpy(buf->base + buf->len, s, len);
    buf->len += len;
    buf->base[buf->len] = '\0';
}

void util_buf_puts(util_buf_t *buf, const char *s)
{
    util_buf_append(buf, s, strlen(s));
}

void util_buf_printf(util_buf_t *buf, const char *fmt, ...)
{
    /* formatted straight into the spare room; only a result that does not fit is formatted again (arguments never
     * point into `buf` itself) */
    va_list args;
    va_start(args, fmt);
    size_t room = buf->_capacity - buf->len;
    int n = vsnprintf(buf->base + buf->len, room, fmt, args);
    va_end(args);
    if (n < 0) {
        buf->base[buf->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        buf_reserve(buf, (size_t)n);
        va_start(args, fmt);
        vsnprintf(buf->base + buf->len, (size_t)n + 1, fmt, args);
        va_end(args);
    }
    buf->len += (size_t)n;
}

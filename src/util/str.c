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
    va_list copy;
    va_copy(copy, args);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    char *p = util_xmalloc((size_t)(n < 0 ? 0 : n) + 1);
    vsnprintf(p, (size_t)(n < 0 ? 0 : n) + 1, fmt, args);
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
    va_list args;
    va_start(args, fmt);
    char *p = util_vasprintf(fmt, args);
    va_end(args);
    util_buf_puts(buf, p);
    free(p);
}

/* Small string and memory helpers shared by every module. Allocation failure aborts (as h2o_mem_alloc does). */
#ifndef UTIL_STR_H
#define UTIL_STR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>

/** malloc that aborts on failure. */
void *util_xmalloc(size_t size);
/** calloc-like zeroed allocation that aborts on failure. */
void *util_xcalloc(size_t count, size_t size);
/** realloc that aborts on failure. */
void *util_xrealloc(void *p, size_t size);
/** strdup that aborts on failure. */
char *util_xstrdup(const char *s);
/** strndup that aborts on failure. */
char *util_xstrndup(const char *s, size_t len);
/** Allocates a formatted string (caller frees). */
char *util_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** va_list form of util_asprintf. */
char *util_vasprintf(const char *fmt, va_list args);
/** True when the first `len` bytes of `s` equal the NUL-terminated `lit`. */
bool util_str_eq(const char *s, size_t len, const char *lit);

/** A growable byte buffer (always NUL-terminated). */
typedef struct st_util_buf_t {
    char *base;
    size_t len;
    size_t _capacity;
} util_buf_t;

/** Initialises an empty buffer. */
void util_buf_init(util_buf_t *buf);
/** Frees the buffer's memory. */
void util_buf_dispose(util_buf_t *buf);
/** Appends bytes. */
void util_buf_append(util_buf_t *buf, const char *s, size_t len);
/** Appends a NUL-terminated string. */
void util_buf_puts(util_buf_t *buf, const char *s);
/** Appends formatted text; no argument may point into `buf` itself. */
void util_buf_printf(util_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

/* PostgreSQL array literals ({"a","b\"c"}) for text-format parameters. */
#include <stdlib.h>
#include "store/store.h"

void store_array_init(store_array_t *a)
{
    util_buf_init(&a->buf);
    util_buf_puts(&a->buf, "{");
    a->n = 0;
}

void store_array_add(store_array_t *a, const char *value)
{
    util_buf_puts(&a->buf, a->n++ == 0 ? "\"" : ",\"");
    for (const char *p = value; *p != '\0'; ++p) {
        if (*p == '"' || *p == '\\')
            util_buf_append(&a->buf, "\\", 1);
        util_buf_append(&a->buf, p, 1);
    }
    util_buf_puts(&a->buf, "\"");
}

char *store_array_literal(const store_array_t *a)
{
    return util_asprintf("%.*s}", (int)a->buf.len, a->buf.base);
}

void store_array_dispose(store_array_t *a)
{
    util_buf_dispose(&a->buf);
}

char *store_array_of_strings(const json_t *strings)
{
    store_array_t a;
    store_array_init(&a);
    size_t i;
    json_t *v;
    json_array_foreach(strings, i, v) {
        store_array_add(&a, json_string_value(v));
    }
    char *lit = store_array_literal(&a);
    store_array_dispose(&a);
    return lit;
}

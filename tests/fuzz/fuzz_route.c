/*
 * libFuzzer target: request routing below the FHIR base (fhir_ix_route).
 * Input: "METHOD path?query" — the method runs up to the first space (the whole input when there is none, with an
 * empty path), the path up to the first '?', the query after it (absent without a '?'). Method and query are
 * NUL-terminated copies, as the HTTP layer and the Bundle parser pass them; the path is exactly its bytes.
 */
#include "fhir/interaction.h"
#include "fhir/outcome.h"
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *dup_bytes(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *end = data + size;
    const uint8_t *space = memchr(data, ' ', size);
    const uint8_t *path_start = space != NULL ? space + 1 : end;
    const uint8_t *qmark = memchr(path_start, '?', (size_t)(end - path_start));
    const uint8_t *path_end = qmark != NULL ? qmark : end;

    char *method = dup_bytes(data, (size_t)((space != NULL ? space : end) - data));
    size_t path_len = (size_t)(path_end - path_start);
    char *path = malloc(path_len != 0 ? path_len : 1);
    if (path == NULL)
        abort();
    memcpy(path, path_start, path_len);
    char *query = qmark != NULL ? dup_bytes(qmark + 1, (size_t)(end - qmark - 1)) : NULL;

    fhir_ix_t *ix = fhir_ix_create();
    fhir_ix_route(&ix->req, method, path, path_len, query, &ix->res.oo);
    fhir_ix_destroy(ix);
    free(method);
    free(path);
    free(query);
    return 0;
}

/*
 * libFuzzer target: a raw search query string (GET /fhir/<Type>?<query>) for each stored type.
 * Input: byte 0 picks the type (byte % 10, or a system search when bit 6 is set) and strict handling (bit 7, i.e.
 * Prefer: handling=strict); the rest is the query string, passed as `len` bytes with no terminator. A search that
 * builds also has its include rounds and a cursor built, as the engine would.
 */
#include "fhir/outcome.h"
#include "fhir/search.h"
#include "fhir/types.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *type = (data[0] & 0x40) != 0 ? NULL : fhir_resource_types[data[0] % FHIR_RESOURCE_TYPE_COUNT];
    bool strict = (data[0] & 0x80) != 0;
    /* a copy of exactly the query's bytes, so a read past `len` is an ASan report */
    size_t len = size - 1;
    char *query = malloc(len != 0 ? len : 1);
    if (query == NULL)
        abort();
    memcpy(query, data + 1, len);

    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    fhir_search_t search;
    /* the engine's default limits (interaction.c) */
    static const fhir_search_limits_t limits = {50, 1000, 1000};
    if (fhir_search_build(&search, type, query, len, &limits, strict, &oo) == 0) {
        util_buf_t sql;
        util_buf_init(&sql);
        char **params = NULL;
        int n = fhir_search_include_sql(&search, true, "{\"Slot\"}", "{\"a\"}", 10, &sql, &params);
        for (int i = 0; i != n; ++i)
            free(params[i]);
        free(params);
        util_buf_dispose(&sql);
        const char *keys[FHIR_SEARCH_MAX_SORT + 2];
        for (size_t i = 0; i != search.nsort + 2; ++i)
            keys[i] = "k\"\\";
        free(fhir_search_cursor(&search, true, keys));
    }
    fhir_search_dispose(&search); /* callers dispose whether or not the build succeeded */
    fhir_outcome_dispose(&oo);
    free(query);
    return 0;
}

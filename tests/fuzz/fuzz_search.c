/*
 * libFuzzer target: a raw search query string (GET /fhir/<Type>?<query>) for each stored type.
 * Input: byte 0 picks the type (byte % 10) and strict handling (bit 7, i.e. Prefer: handling=strict); the rest is the
 * query string, passed as `len` bytes with no terminator.
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
    const char *type = fhir_resource_types[data[0] % FHIR_RESOURCE_TYPE_COUNT];
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
    /* the engine's limits (interaction.c: SEARCH_DEFAULT_COUNT, SEARCH_MAX_COUNT) */
    fhir_search_build(&search, type, query, len, 50, 1000, strict, &oo);
    fhir_search_dispose(&search); /* callers dispose whether or not the build succeeded */
    fhir_outcome_dispose(&oo);
    free(query);
    return 0;
}

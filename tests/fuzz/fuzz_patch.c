/*
 * libFuzzer target: PATCH /fhir/<Type>/<id> with a JSON Patch body (fhir_json_patch_apply).
 * Input: the current resource, then a NUL or newline, then the patch document. Both go through fhir_json_parse as in
 * the server (the stored resource is re-read from its JSON text). A patched resource is then validated, as the engine
 * checks it like any update.
 */
#include "fhir/json.h"
#include "fhir/outcome.h"
#include "fhir/validate.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t split = 0;
    while (split != size && data[split] != '\0' && data[split] != '\n')
        ++split;
    if (split == size)
        return 0;

    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    json_t *doc = NULL, *patch = NULL;
    if (fhir_json_parse((const char *)data, split, &doc, &oo) != 0)
        goto Exit;
    if (fhir_json_parse((const char *)data + split + 1, size - split - 1, &patch, &oo) != 0)
        goto Exit;
    if (fhir_json_patch_apply(&doc, patch, &oo) == 0 && json_is_object(doc))
        fhir_validate_resource(doc, &oo);
Exit:
    json_decref(doc);
    json_decref(patch);
    fhir_outcome_dispose(&oo);
    return 0;
}

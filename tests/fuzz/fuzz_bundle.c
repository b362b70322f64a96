/*
 * libFuzzer target: a batch or transaction Bundle posted to the base URL (POST /fhir).
 * Mirrors the server: fhir_json_parse (non-JSON stops there), fhir_bundle_prepare, then the body check every
 * create/update entry gets before it runs (fhir_ix_check_body), then fhir_bundle_destroy. Nothing touches the database.
 */
#include "fhir/bundle.h"
#include "fhir/interaction.h"
#include "fhir/json.h"
#include "fhir/outcome.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    json_t *bundle = NULL;
    if (fhir_json_parse((const char *)data, size, &bundle, &oo) != 0) {
        fhir_outcome_dispose(&oo);
        return 0;
    }
    fhir_prefer_t prefer = (fhir_prefer_t)(size % 3);
    fhir_bundle_run_t *run = fhir_bundle_prepare(bundle, prefer, &oo);
    json_decref(bundle);
    if (run != NULL) {
        for (size_t i = 0; i != run->count; ++i) {
            fhir_ix_t *ix = run->entries[i];
            if (ix != NULL && ix->req.resource != NULL)
                fhir_ix_check_body(ix);
        }
        fhir_bundle_destroy(run);
    }
    fhir_outcome_dispose(&oo);
    return 0;
}

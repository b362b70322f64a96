/*
 * libFuzzer target: arbitrary bytes as the body of a create/update (POST/PUT /fhir/<Type>[/id]).
 * Mirrors what the server does with a body: fhir_json_parse, then fhir_validate_resource, then the split around the
 * server-managed meta that every accepted write goes through (fhir_json_compose_for_store).
 */
#include "fhir/json.h"
#include "fhir/outcome.h"
#include "fhir/validate.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    json_t *body = NULL;
    /* libFuzzer's buffer is exactly `size` bytes: a read past the end is an ASan report, as the body is not NUL-terminated. */
    if (fhir_json_parse((const char *)data, size, &body, &oo) == 0) {
        if (fhir_validate_resource(body, &oo) == 0) {
            const char *type = json_string_value(json_object_get(body, "resourceType"));
            const char *id = json_string_value(json_object_get(body, "id"));
            if (type != NULL) {
                char *head = NULL, *tail = NULL;
                fhir_json_compose_for_store(body, type, id != NULL ? id : "fuzz", &head, &tail);
                free(head);
                free(tail);
            }
        }
        /* the error path turns the issues into an OperationOutcome */
        json_t *outcome = fhir_outcome_to_json(&oo);
        char *text = fhir_json_dump(outcome, false, NULL);
        free(text);
        json_decref(outcome);
        json_decref(body);
    }
    fhir_outcome_dispose(&oo);
    return 0;
}

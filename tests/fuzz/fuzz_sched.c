/*
 * libFuzzer target: the inputs of Appointment/$find, $hold and $book, and the availability engine behind them.
 * Input: byte 0 picks the operation (% 3) and whether the rest is a URL query string (bit 7) or a Parameters body.
 * A $find that parses is planned and run against a small fixed clinic; a parsed appointment-resource is rule-checked.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/json.h"
#include "sched/find.h"
#include "sched/ops.h"

static const char CLINIC[] =
    "[{\"resourceType\":\"HealthcareService\",\"id\":\"svc\",\"type\":[{\"coding\":[{\"system\":\"s\",\"code\":\"c\"}]}],"
    "\"extension\":[{\"url\":\"http://fhirsched.org/fhir/StructureDefinition/service-duration\",\"valueDuration\":{\"value\":20,\"code\":\"min\"}},"
    "{\"url\":\"http://fhirsched.org/fhir/StructureDefinition/required-location-type\",\"valueCodeableConcept\":{\"coding\":[{\"code\":\"r\"}]}}]},"
    "{\"resourceType\":\"PractitionerRole\",\"id\":\"role\",\"practitioner\":{\"reference\":\"Practitioner/p\"},"
    "\"healthcareService\":[{\"reference\":\"HealthcareService/svc\"}],\"location\":[{\"reference\":\"Location/clinic\"}],"
    "\"availableTime\":[{\"daysOfWeek\":[\"mon\",\"tue\"],\"availableStartTime\":\"09:00:00\",\"availableEndTime\":\"17:00:00\"}],"
    "\"notAvailable\":[{\"description\":\"x\",\"during\":{\"start\":\"2030-01-07\",\"end\":\"2030-01-08\"}}]},"
    "{\"resourceType\":\"Location\",\"id\":\"clinic\",\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/timezone\",\"valueCode\":\"Europe/Berlin\"}],"
    "\"hoursOfOperation\":[{\"daysOfWeek\":[\"mon\",\"tue\",\"wed\"],\"openingTime\":\"08:00:00\",\"closingTime\":\"18:00:00\"}]},"
    "{\"resourceType\":\"Location\",\"id\":\"room\",\"type\":[{\"coding\":[{\"code\":\"r\"}]}],\"partOf\":{\"reference\":\"Location/clinic\"},"
    "\"physicalType\":{\"coding\":[{\"code\":\"ro\"}]}},"
    "{\"resourceType\":\"Schedule\",\"id\":\"sch\",\"actor\":[{\"reference\":\"Practitioner/p\"}]}]";

static void split_model(json_t *all, sched_model_t *m)
{
    sched_model_init(m);
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r) {
        sched_model_add(m, json_incref(r));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    sched_op_kind_t kind = (sched_op_kind_t)(data[0] % 3);
    bool query = (data[0] & 0x80) != 0;
    char *text = malloc(size);
    if (text == NULL)
        abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    sched_op_t *op = sched_op_create(kind);
    json_t *params = NULL;
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    if (!query && fhir_json_parse(text, size - 1, &params, &oo) != 0)
        goto Exit;
    if (sched_op_parse(op, query ? text : NULL, params) == 0 && kind == SCHED_OP_FIND) {
        /* the engine over a fixed clinic, with the query's window clipped to one week so each run stays fast */
        json_t *all = json_loads(CLINIC, 0, NULL);
        sched_model_t model;
        split_model(all, &model);
        sched_find_query_t q = {.now = 1893456000 /* 2030-01-01 */, .from = 1893456000, .to = 1893456000 + 7 * 86400, .count = 5,
                                .timing_from = INT64_MIN, .timing_to = INT64_MAX};
        sched_plan_t plan;
        sched_plan_build(&plan, &model, &q);
        sched_load_t load;
        sched_load_init(&load);
        sched_load_add_busy(&load, "Practitioner/p", 1893661200, 1893663000, "a");
        sched_candidate_t *c;
        size_t n, total;
        util_buf_t why;
        util_buf_init(&why);
        sched_find_run(&plan, &model, &load, &q, &c, &n, &total, &why);
        sched_candidates_free(c, n);
        util_buf_dispose(&why);
        sched_load_dispose(&load);
        sched_plan_dispose(&plan);
        sched_model_dispose(&model);
        json_decref(all);
    } else if (params != NULL && kind == SCHED_OP_BOOK) {
        /* an appointment-resource is rule-checked against the fixed clinic */
        json_t *all = json_loads(CLINIC, 0, NULL);
        sched_model_t model;
        split_model(all, &model);
        sched_load_t load;
        sched_load_init(&load);
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(params, "parameter"), i, p) {
            json_t *r = json_object_get(p, "resource");
            if (json_is_object(r)) {
                util_buf_t why;
                util_buf_init(&why);
                sched_check_rules(&model, &load, r, 1893456000, &why);
                util_buf_dispose(&why);
            }
        }
        sched_load_dispose(&load);
        sched_model_dispose(&model);
        json_decref(all);
    }
Exit:
    json_decref(params);
    fhir_outcome_dispose(&oo);
    sched_op_destroy(op);
    free(text);
    return 0;
}

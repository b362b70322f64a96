/* OperationOutcome building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "fhir/outcome.h"

static void test_empty_outcome_is_all_ok(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    json_t *j = fhir_outcome_to_json(&oo);
    assert_string_equal(json_string_value(json_object_get(j, "resourceType")), "OperationOutcome");
    json_t *issue = json_array_get(json_object_get(j, "issue"), 0);
    assert_string_equal(json_string_value(json_object_get(issue, "severity")), "information");
    json_decref(j);
    fhir_outcome_dispose(&oo);
}

static void test_issues_keep_order_and_fields(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    fhir_outcome_add(&oo, FHIR_SEV_WARNING, "not-supported", NULL, "ignored %s", "x");
    assert_int_equal(fhir_outcome_fail(&oo, 422, "code-invalid", "Appointment.status", "bad code %d", 7), -1);
    fhir_outcome_fail(&oo, 400, "value", NULL, "second failure keeps the first status");
    assert_int_equal(oo.status, 422);
    assert_int_equal(oo.count, 3);
    assert_int_equal(fhir_outcome_error_count(&oo), 2);
    json_t *j = fhir_outcome_to_json(&oo);
    json_t *issues = json_object_get(j, "issue");
    assert_int_equal(json_array_size(issues), 3);
    json_t *second = json_array_get(issues, 1);
    assert_string_equal(json_string_value(json_object_get(second, "severity")), "error");
    assert_string_equal(json_string_value(json_object_get(second, "code")), "code-invalid");
    assert_string_equal(json_string_value(json_object_get(second, "diagnostics")), "bad code 7");
    assert_string_equal(json_string_value(json_array_get(json_object_get(second, "expression"), 0)), "Appointment.status");
    assert_null(json_object_get(json_array_get(issues, 0), "expression"));
    json_decref(j);
    fhir_outcome_dispose(&oo);
}

static void test_many_issues_grow(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    for (int i = 0; i != 100; ++i)
        fhir_outcome_add(&oo, FHIR_SEV_ERROR, "invalid", "Patient.name", "issue %d", i);
    assert_int_equal(oo.count, 100);
    assert_string_equal(oo.issues[99].diagnostics, "issue 99");
    fhir_outcome_dispose(&oo);
    assert_int_equal(oo.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_outcome_is_all_ok),
        cmocka_unit_test(test_issues_keep_order_and_fields),
        cmocka_unit_test(test_many_issues_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

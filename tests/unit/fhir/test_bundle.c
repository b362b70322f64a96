/* Bundle processing logic that needs no database: ordering, reference rewriting, entry parsing, JSON Patch, search SQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "fhir/bundle.h"
#include "fhir/json.h"
#include "fhir/search.h"

static void test_transaction_order_is_delete_post_put_get(void **state)
{
    const char *methods[] = {"GET", "PUT", "POST", "DELETE", "PATCH", "POST", "GET", "DELETE"};
    size_t order[8];
    fhir_bundle_sort(methods, 8, order);
    const size_t expected[] = {3, 7, 2, 5, 1, 4, 0, 6}; /* stable within a rank */
    for (size_t i = 0; i != 8; ++i)
        assert_int_equal(order[i], expected[i]);
}

static void test_unknown_methods_go_last(void **state)
{
    const char *methods[] = {"FOO", NULL, "GET"};
    size_t order[3];
    fhir_bundle_sort(methods, 3, order);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 0);
    assert_int_equal(order[2], 1);
}

static void test_references_are_rewritten_everywhere(void **state)
{
    json_t *appt = json_loads("{\"resourceType\":\"Appointment\",\"participant\":[{\"actor\":{\"reference\":\"urn:uuid:1\"}},"
                              "{\"actor\":{\"reference\":\"Practitioner/keep\"}}],\"basedOn\":[{\"reference\":\"urn:uuid:2\"}],"
                              "\"note\":[{\"text\":\"urn:uuid:1\"}]}",
                              0, NULL);
    fhir_bundle_ref_t refs[] = {{"urn:uuid:2", "ServiceRequest/def"}, {"urn:uuid:1", "Patient/abc"}};
    fhir_bundle_sort_refs(refs, 2);
    assert_int_equal(fhir_bundle_rewrite_references(appt, refs, 2), 2);
    json_t *p = json_array_get(json_object_get(appt, "participant"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "actor"), "reference")), "Patient/abc");
    p = json_array_get(json_object_get(appt, "participant"), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "actor"), "reference")), "Practitioner/keep");
    /* text that merely looks like a fullUrl is not a reference */
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(appt, "note"), 0), "text")), "urn:uuid:1");
    json_decref(appt);
}

static void test_prepare_rejects_bad_bundles(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    json_t *b = json_loads("{\"resourceType\":\"Bundle\",\"type\":\"collection\"}", 0, NULL);
    assert_null(fhir_bundle_prepare(b, FHIR_PREFER_REPRESENTATION, &oo));
    assert_int_equal(oo.status, 422);
    json_decref(b);
    fhir_outcome_dispose(&oo);

    fhir_outcome_init(&oo);
    b = json_loads("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{\"method\":\"POST\",\"url\":"
                   "\"Patient\"},\"resource\":{\"resourceType\":\"Patient\"}},{\"request\":{\"method\":\"GET\",\"url\":"
                   "\"Nope/1\"}}]}",
                   0, NULL);
    assert_null(fhir_bundle_prepare(b, FHIR_PREFER_REPRESENTATION, &oo));
    assert_int_equal(oo.status, 404);
    assert_string_equal(oo.issues[0].expression, "Bundle.entry[1]");
    json_decref(b);
    fhir_outcome_dispose(&oo);
}

/* Found by fuzzing: a non-object entry crashed transactions; a long ETag overflowed. */
static void test_prepare_survives_fuzz_findings(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    json_t *b = json_loads("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[1]}", 0, NULL);
    assert_null(fhir_bundle_prepare(b, FHIR_PREFER_REPRESENTATION, &oo));
    assert_int_equal(oo.status, 400);
    assert_string_equal(oo.issues[0].expression, "Bundle.entry[0]");
    json_decref(b);
    fhir_outcome_dispose(&oo);

    fhir_outcome_init(&oo);
    b = json_loads("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{\"request\":{\"method\":\"GET\",\"url\":"
                   "\"Patient/a\",\"ifNoneMatch\":\"W/\\\"4294967295\\\"\"}},{\"request\":{\"method\":\"DELETE\",\"url\":"
                   "\"Patient/a\",\"ifMatch\":\"9999999999\"}}, \"x\"]}",
                   0, NULL);
    assert_non_null(b);
    fhir_bundle_run_t *run = fhir_bundle_prepare(b, FHIR_PREFER_REPRESENTATION, &oo);
    assert_non_null(run);
    /* in a batch each bad entry gets its own 400 */
    for (size_t i = 0; i != 3; ++i) {
        assert_null(run->entries[i]);
        assert_int_equal(run->entry_errors[i].status, 400);
    }
    fhir_bundle_destroy(run);
    json_decref(b);
    fhir_outcome_dispose(&oo);
}

static void test_prepare_orders_transactions_not_batches(void **state)
{
    const char *text = "{\"resourceType\":\"Bundle\",\"type\":\"%s\",\"entry\":["
                       "{\"request\":{\"method\":\"GET\",\"url\":\"Patient/a\"}},"
                       "{\"request\":{\"method\":\"DELETE\",\"url\":\"Patient/b\"}},"
                       "{\"fullUrl\":\"urn:uuid:x\",\"request\":{\"method\":\"POST\",\"url\":\"Patient\",\"ifNoneExist\":"
                       "\"identifier=s|1\"},\"resource\":{\"resourceType\":\"Patient\"}},"
                       "{\"request\":{\"method\":\"PUT\",\"url\":\"Patient/c\",\"ifMatch\":\"W/\\\"4\\\"\"},"
                       "\"resource\":{\"resourceType\":\"Patient\",\"id\":\"c\"}}]}";
    char buf[1024];
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    snprintf(buf, sizeof(buf), text, "transaction");
    json_t *b = json_loads(buf, 0, NULL);
    assert_non_null(b);
    fhir_bundle_run_t *run = fhir_bundle_prepare(b, FHIR_PREFER_REPRESENTATION, &oo);
    assert_non_null(run);
    assert_true(run->transaction);
    assert_int_equal(run->order[0], 1);
    assert_int_equal(run->order[1], 2);
    assert_int_equal(run->order[2], 3);
    assert_int_equal(run->order[3], 0);
    assert_int_equal(run->entries[3]->req.if_match, 4);
    assert_string_equal(run->entries[2]->req.if_none_exist, "identifier=s|1");
    assert_string_equal(run->full_urls[2], "urn:uuid:x");
    fhir_bundle_destroy(run);
    json_decref(b);

    snprintf(buf, sizeof(buf), text, "batch");
    b = json_loads(buf, 0, NULL);
    run = fhir_bundle_prepare(b, FHIR_PREFER_REPRESENTATION, &oo);
    assert_non_null(run);
    for (size_t i = 0; i != 4; ++i)
        assert_int_equal(run->order[i], i);
    fhir_bundle_destroy(run);
    json_decref(b);
    fhir_outcome_dispose(&oo);
}

static void test_json_patch(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    json_t *doc = json_loads("{\"a\":{\"b\":[1,2,3]},\"c\":\"x\",\"d~e/f\":1}", 0, NULL);
    json_t *patch = json_loads("[{\"op\":\"test\",\"path\":\"/c\",\"value\":\"x\"},{\"op\":\"replace\",\"path\":\"/c\",\"value\":\"y\"},"
                               "{\"op\":\"add\",\"path\":\"/a/b/-\",\"value\":4},{\"op\":\"remove\",\"path\":\"/a/b/0\"},"
                               "{\"op\":\"copy\",\"from\":\"/c\",\"path\":\"/z\"},{\"op\":\"move\",\"from\":\"/d~0e~1f\",\"path\":\"/m\"}]",
                               0, NULL);
    assert_int_equal(fhir_json_patch_apply(&doc, patch, &oo), 0);
    json_t *expected = json_loads("{\"a\":{\"b\":[2,3,4]},\"c\":\"y\",\"z\":\"y\",\"m\":1}", 0, NULL);
    assert_true(json_equal(doc, expected));
    json_decref(expected);
    json_decref(patch);

    patch = json_loads("[{\"op\":\"test\",\"path\":\"/c\",\"value\":\"nope\"}]", 0, NULL);
    assert_int_equal(fhir_json_patch_apply(&doc, patch, &oo), -1);
    assert_int_equal(oo.status, 422);
    json_decref(patch);
    patch = json_loads("[{\"op\":\"replace\",\"path\":\"/missing/x\",\"value\":1}]", 0, NULL);
    assert_int_equal(fhir_json_patch_apply(&doc, patch, &oo), -1);
    json_decref(patch);
    /* the document is untouched by failed patches */
    assert_string_equal(json_string_value(json_object_get(doc, "c")), "y");
    json_decref(doc);
    fhir_outcome_dispose(&oo);
}

static void test_compose_for_store_puts_server_meta_first(void **state)
{
    json_t *r = json_loads("{\"resourceType\":\"Patient\",\"active\":true,\"id\":\"client\",\"meta\":{\"versionId\":\"9\","
                           "\"lastUpdated\":\"2000-01-01T00:00:00Z\",\"tag\":[{\"code\":\"t\"}]}}",
                           0, NULL);
    char *head, *tail;
    fhir_json_compose_for_store(r, "Patient", "p1", &head, &tail);
    char *full = malloc(strlen(head) + strlen(tail) + 64);
    sprintf(full, "%s3\",\"lastUpdated\":\"2026-01-01T00:00:00.000001Z\"%s", head, tail);
    assert_string_equal(full, "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"meta\":{\"versionId\":\"3\",\"lastUpdated\":"
                              "\"2026-01-01T00:00:00.000001Z\",\"tag\":[{\"code\":\"t\"}]},\"active\":true}");
    json_t *parsed = json_loads(full, 0, NULL);
    assert_non_null(parsed);
    json_decref(parsed);
    free(full);
    free(head);
    free(tail);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transaction_order_is_delete_post_put_get),
        cmocka_unit_test(test_unknown_methods_go_last),
        cmocka_unit_test(test_references_are_rewritten_everywhere),
        cmocka_unit_test(test_prepare_rejects_bad_bundles),
        cmocka_unit_test(test_prepare_survives_fuzz_findings),
        cmocka_unit_test(test_prepare_orders_transactions_not_batches),
        cmocka_unit_test(test_json_patch),
        cmocka_unit_test(test_compose_for_store_puts_server_meta_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

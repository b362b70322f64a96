/* Subscription checks (subs/check.c, subs/match.c): the endpoint allowlist, sealed header values, the stored form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "fhir/types.h"
#include "subs/subs.h"

static int setup(void **state)
{
    (void)state;
    util_config_t cfg;
    util_config_defaults(&cfg);
    cfg.subs_endpoint_allowlist = util_xstrdup(" http://hooks.example:9000/ , HTTPS://Clinic.Example/fhir-hooks,http://127.0.0.1:7000");
    char err[256];
    int r = subs_init(&cfg, "a-shared-secret", err, sizeof(err));
    util_config_dispose(&cfg);
    return r;
}

static int teardown(void **state)
{
    (void)state;
    subs_dispose();
    return 0;
}

static void test_allowlist(void **state)
{
    (void)state;
    assert_true(subs_endpoint_allowed("http://hooks.example:9000/x"));
    assert_true(subs_endpoint_allowed("http://HOOKS.example:9000/"));
    assert_true(subs_endpoint_allowed("https://clinic.example/fhir-hooks"));
    assert_true(subs_endpoint_allowed("https://clinic.example/fhir-hooks/board?x=1"));
    assert_true(subs_endpoint_allowed("http://127.0.0.1:7000"));
    assert_true(subs_endpoint_allowed("http://127.0.0.1:7000/a"));
    /* not at a boundary, another port, another host, userinfo tricks, other schemes, whitespace */
    assert_false(subs_endpoint_allowed("http://127.0.0.1:70001/a"));
    assert_false(subs_endpoint_allowed("http://127.0.0.1:7000.evil.net/"));
    assert_false(subs_endpoint_allowed("https://clinic.example/fhir-hooksX"));
    assert_false(subs_endpoint_allowed("https://clinic.example/FHIR-hooks"));
    assert_false(subs_endpoint_allowed("http://hooks.example:9001/x"));
    assert_false(subs_endpoint_allowed("http://hooks.example:9000@169.254.169.254/"));
    assert_false(subs_endpoint_allowed("http://169.254.169.254/latest"));
    assert_false(subs_endpoint_allowed("ftp://hooks.example:9000/x"));
    assert_false(subs_endpoint_allowed("http://hooks.example:9000/x y"));
    assert_false(subs_endpoint_allowed(""));
}

static void test_bad_allowlist_setting(void **state)
{
    (void)state;
    util_config_t cfg;
    util_config_defaults(&cfg);
    cfg.subs_endpoint_allowlist = util_xstrdup("http://ok.example/,file:///etc");
    char err[256];
    assert_int_equal(subs_init(&cfg, "s", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "subscriptions.endpoint_allowlist"));
    assert_non_null(strstr(err, "file:///etc"));
    util_config_dispose(&cfg);
    assert_int_equal(setup(NULL), 0);
}

static void test_seal_round_trip(void **state)
{
    (void)state;
    char *sealed = subs_seal("http://hooks.example:9000/a", "Authorization", "Bearer abc");
    assert_true(strncmp(sealed, "sealed:", 7) == 0);
    assert_null(strstr(sealed, "abc"));
    char *open = subs_unseal("http://hooks.example:9000/a", "authorization", sealed);
    assert_string_equal(open, "Bearer abc");
    free(open);
    /* bound to the endpoint and the header name; tampering fails */
    assert_null(subs_unseal("http://hooks.example:9000/b", "Authorization", sealed));
    assert_null(subs_unseal("http://hooks.example:9000/a", "X-Other", sealed));
    sealed[strlen(sealed) - 2] = sealed[strlen(sealed) - 2] == 'A' ? 'B' : 'A';
    assert_null(subs_unseal("http://hooks.example:9000/a", "Authorization", sealed));
    assert_null(subs_unseal("http://hooks.example:9000/a", "Authorization", "sealed:!!"));
    assert_null(subs_unseal("http://hooks.example:9000/a", "Authorization", "Bearer abc"));
    free(sealed);
}

static json_t *subscription(const char *criteria, const char *type, const char *endpoint, const char *status)
{
    json_t *s = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "resourceType", "Subscription", "status", status, "reason", "test",
                          "criteria", criteria, "channel", "type", type);
    if (endpoint != NULL)
        json_object_set_new(json_object_get(s, "channel"), "endpoint", json_string(endpoint));
    return s;
}

static int check(json_t *s, int *status)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    int r = subs_check_subscription(s, NULL, &oo);
    *status = oo.status;
    fhir_outcome_dispose(&oo);
    return r;
}

static void test_stored_form(void **state)
{
    (void)state;
    int status;
    json_t *s = subscription("Appointment?actor=Practitioner/1&status=booked,cancelled", "rest-hook", "http://hooks.example:9000/h",
                             "active");
    json_object_set_new(json_object_get(s, "channel"), "header", json_pack("[s]", "Authorization: Bearer abc"));
    json_object_set_new(s, "error", json_string("old"));
    assert_int_equal(check(s, &status), 0);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "requested");
    assert_null(json_object_get(s, "error"));
    const char *h = json_string_value(json_array_get(json_object_get(json_object_get(s, "channel"), "header"), 0));
    assert_true(strncmp(h, "Authorization: sealed:", 22) == 0);
    /* a stored (sealed) header sent back unchanged is kept, and opens for delivery */
    char *line = subs_header_line("http://hooks.example:9000/h", h);
    assert_string_equal(line, "Authorization: Bearer abc");
    free(line);
    char *again = util_xstrdup(h);
    assert_int_equal(check(s, &status), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(s, "channel"), "header"), 0)), again);
    /* but not for another endpoint */
    json_object_set_new(json_object_get(s, "channel"), "endpoint", json_string("http://hooks.example:9000/other"));
    assert_int_equal(check(s, &status), -1);
    assert_int_equal(status, 422);
    free(again);
    json_decref(s);

    s = subscription("Slot?schedule=Schedule/9", "websocket", NULL, "requested");
    assert_int_equal(check(s, &status), 0);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "active");
    json_decref(s);

    s = subscription("Slot", "websocket", NULL, "off");
    assert_int_equal(check(s, &status), 0);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "off");
    json_decref(s);
}

static void test_refusals(void **state)
{
    (void)state;
    struct {
        const char *criteria, *type, *endpoint, *payload, *header;
    } bad[] = {
        {"Appointment?status=booked", "rest-hook", "http://169.254.169.254/", NULL, NULL},  /* not allowed */
        {"Appointment?status=booked", "rest-hook", NULL, NULL, NULL},                       /* no endpoint */
        {"Appointment?status=booked", "email", "mailto:a@b", NULL, NULL},                   /* channel */
        {"Observation?code=1", "websocket", NULL, NULL, NULL},                              /* type not stored */
        {"Appointment?bogus=1", "websocket", NULL, NULL, NULL},                             /* unknown parameter */
        {"Appointment?date=notadate", "websocket", NULL, NULL, NULL},                       /* malformed value */
        {"Appointment?status=booked&_count=5", "websocket", NULL, NULL, NULL},              /* shaping */
        {"Appointment?_include=Appointment:actor", "websocket", NULL, NULL, NULL},          /* shaping */
        {"Appointment?status=booked", "websocket", NULL, "application/fhir+xml", NULL},     /* payload */
        {"Appointment", "rest-hook", "http://127.0.0.1:7000/", NULL, "X-Evil: a\r\nHost: b"}, /* header injection */
        {"Appointment", "rest-hook", "http://127.0.0.1:7000/", NULL, "no colon"},
        {"Appointment", "rest-hook", "http://127.0.0.1:7000/", NULL, "Content-Length: 0"},  /* framing is ours */
        {"Appointment", "rest-hook", "http://127.0.0.1:7000/", NULL, "host: evil.example"},
        {"Appointment", "rest-hook", "http://127.0.0.1:7000/", NULL, "Authorization: sealed:AAAA"}, /* forged seal */
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        json_t *s = subscription(bad[i].criteria, bad[i].type, bad[i].endpoint, "requested");
        if (bad[i].payload != NULL)
            json_object_set_new(json_object_get(s, "channel"), "payload", json_string(bad[i].payload));
        if (bad[i].header != NULL)
            json_object_set_new(json_object_get(s, "channel"), "header", json_pack("[s]", bad[i].header));
        int status;
        if (check(s, &status) != -1 || status != 422)
            fail_msg("case %zu (%s) was not refused with 422", i, bad[i].criteria);
        json_decref(s);
    }
}

static void test_rest_hook_needs_all_rows(void **state)
{
    (void)state;
    fhir_access_t access;
    memset(&access, 0, sizeof(access)); /* FHIR_ACCESS_ALL everywhere */
    int ti = fhir_resource_type_index("Appointment", 11);
    access.read[ti].level = FHIR_ACCESS_SOME;
    access.read[ti].tokens = "{_site=Location/a}";
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    json_t *s = subscription("Appointment?status=booked", "rest-hook", "http://127.0.0.1:7000/h", "requested");
    assert_int_equal(subs_check_subscription(s, &access, &oo), -1);
    assert_int_equal(oo.status, 403);
    json_decref(s);
    fhir_outcome_dispose(&oo);
    /* a websocket is fine (the listener's own rules apply), and so is a rest-hook on a type read in full */
    fhir_outcome_init(&oo);
    s = subscription("Appointment?status=booked", "websocket", NULL, "requested");
    assert_int_equal(subs_check_subscription(s, &access, &oo), 0);
    json_decref(s);
    s = subscription("Slot?status=free", "rest-hook", "http://127.0.0.1:7000/h", "requested");
    assert_int_equal(subs_check_subscription(s, &access, &oo), 0);
    json_decref(s);
    fhir_outcome_dispose(&oo);
}

static void test_matcher_sql(void **state)
{
    (void)state;
    subs_matcher_t m;
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    assert_int_equal(subs_matcher_init(&m, "Appointment?status=booked", NULL, &oo), 0);
    /* the search's own conditions over both sides of an outbox row; values only as parameters */
    assert_non_null(strstr(m.sql.base, "FROM sub_change c"));
    assert_non_null(strstr(m.sql.base, "c.o_tokens"));
    assert_null(strstr(m.sql.base, "booked"));
    subs_matcher_range(&m, 10, 20, true);
    assert_string_equal(m.params[m.nparams - 4], "10");
    assert_string_equal(m.params[m.nparams - 3], "20");
    assert_string_equal(m.params[m.nparams - 2], "Appointment");
    assert_string_equal(m.params[m.nparams - 1], "true");
    /* the required token sets: a version without one of them cannot match */
    assert_int_equal(m.nfilters, 1);
    subs_tokens_t row;
    subs_tokens_parse(&row, "{\"status=cancelled\",actor=Practitioner/1}");
    assert_false(subs_matcher_may_match(&m, &row));
    subs_tokens_dispose(&row);
    subs_tokens_t want = m.filters[0];
    assert_true(want.n >= 1);
    char *lit = util_asprintf("{zzz,\"%s\",aaa}", want.v[0]);
    subs_tokens_parse(&row, lit);
    assert_true(subs_matcher_may_match(&m, &row));
    subs_tokens_dispose(&row);
    free(lit);
    subs_matcher_dispose(&m);
    /* criteria with no plain token condition filter nothing */
    assert_int_equal(subs_matcher_init(&m, "Appointment?date=ge2030-01-01&status:not=booked", NULL, &oo), 0);
    assert_int_equal(m.nfilters, 0);
    subs_matcher_dispose(&m);
    /* two conditions, two sets */
    assert_int_equal(subs_matcher_init(&m, "Appointment?status=booked&actor=Practitioner/1", NULL, &oo), 0);
    assert_int_equal(m.nfilters, 2);
    subs_matcher_dispose(&m);
    fhir_outcome_dispose(&oo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allowlist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_allowlist_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_hook_needs_all_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_matcher_sql, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

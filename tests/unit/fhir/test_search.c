/* Search: the registry against the official definitions, extraction, the query parser (prefixes, modifiers, errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "fhir/interaction.h"
#include "fhir/search.h"
#include "fhir/types.h"

#ifndef FHIRSCHED_SOURCE_DIR
#define FHIRSCHED_SOURCE_DIR "."
#endif

static const fhir_search_limits_t limits = {50, 1000, 1000};

/* ---- registry ---- */

static json_t *load_source_file(const char *relative)
{
    char *path = util_asprintf("%s/%s", FHIRSCHED_SOURCE_DIR, relative);
    json_error_t err;
    json_t *doc = json_load_file(path, 0, &err);
    if (doc == NULL)
        fail_msg("%s: %s", path, err.text);
    free(path);
    return doc;
}

/* The official SearchParameter with `code` whose base includes `type`. */
static json_t *official(json_t *bundle, const char *type, const char *code)
{
    size_t i, k;
    json_t *entry, *base;
    json_array_foreach (json_object_get(bundle, "entry"), i, entry) {
        json_t *sp = json_object_get(entry, "resource");
        if (strcmp(json_string_value(json_object_get(sp, "code")), code) != 0)
            continue;
        json_array_foreach (json_object_get(sp, "base"), k, base)
            if (strcmp(json_string_value(base), type != NULL ? type : "Resource") == 0)
                return sp;
    }
    return NULL;
}

static void test_registry_matches_the_official_definitions(void **state)
{
    json_t *bundle = load_source_file("fhir/profiles/SearchParameter-subset.json");
    const fhir_search_param_t *p;
    for (size_t i = 0; (p = fhir_search_registry_at(i)) != NULL; ++i) {
        json_t *sp = official(bundle, p->type, p->code);
        if (sp == NULL)
            fail_msg("%s:%s has no official SearchParameter", p->type, p->code);
        assert_string_equal(json_string_value(json_object_get(sp, "url")), p->definition);
        assert_string_equal(json_string_value(json_object_get(sp, "type")), fhir_search_type_name(p->search_type));
        /* our expression is the official one restricted to our type: each branch appears in it */
        const char *expr = json_string_value(json_object_get(sp, "expression"));
        char *copy = util_xstrdup(p->expression), *save = NULL;
        for (char *branch = strtok_r(copy, "|", &save); branch != NULL; branch = strtok_r(NULL, "|", &save)) {
            while (*branch == ' ')
                ++branch;
            size_t len = strlen(branch);
            while (len > 0 && branch[len - 1] == ' ')
                branch[--len] = '\0';
            if (strstr(expr, branch) == NULL)
                fail_msg("%s:%s expression %s is not in the official %s", p->type, p->code, branch, expr);
        }
        free(copy);
        /* reference targets are the official ones (or "*" for the official list of every type) */
        if (p->search_type == FHIR_SEARCH_REFERENCE) {
            json_t *targets = json_object_get(sp, "target");
            assert_non_null(p->targets);
            if (strcmp(p->targets, "*") == 0) {
                assert_true(json_array_size(targets) > 100);
            } else {
                size_t k;
                json_t *t;
                json_array_foreach (targets, k, t)
                    assert_true(fhir_search_param_targets(p, json_string_value(t)));
                size_t ours = 1;
                for (const char *c = p->targets; *c != '\0'; ++c)
                    ours += *c == '|';
                assert_int_equal(ours, json_array_size(targets));
            }
        } else {
            assert_null(p->targets);
        }
    }
    json_decref(bundle);
}

static void test_registry_is_consistent(void **state)
{
    json_t *empty = json_pack("{s:s}", "resourceType", "Patient");
    for (int t = 0; t != FHIR_RESOURCE_TYPE_COUNT; ++t) {
        const char *type = fhir_resource_types[t];
        const fhir_search_param_t *p, *q;
        int dates = 0;
        for (size_t i = 0; (p = fhir_search_param_at(type, i)) != NULL; ++i) {
            /* the sp_date column holds one date parameter per type */
            dates += p->search_type == FHIR_SEARCH_DATE && p->element != FHIR_EL_LAST_UPDATED;
            /* every expression is inside the FHIRPath subset the extractor evaluates */
            json_t *out = json_array();
            assert_int_equal(fhir_search_eval(p->expression, empty, out), 0);
            json_decref(out);
            for (size_t k = i + 1; (q = fhir_search_param_at(type, k)) != NULL; ++k)
                assert_string_not_equal(p->code, q->code);
            assert_ptr_equal(fhir_search_param_find(type, p->code), p);
        }
        assert_true(dates <= 1);
    }
    json_t *out = json_array();
    assert_int_equal(fhir_search_eval("Patient.name.first()", empty, out), -1);
    assert_int_equal(fhir_search_eval("Patient", empty, out), -1);
    json_decref(out);
    json_decref(empty);
}

static void test_docs_are_generated_from_the_registry(void **state)
{
    util_buf_t md;
    util_buf_init(&md);
    fhir_search_registry_markdown(&md);
    char *path = util_asprintf("%s/docs/search.md", FHIRSCHED_SOURCE_DIR);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        fail_msg("%s is missing: run `make docs`", path);
    util_buf_t file;
    util_buf_init(&file);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) != 0)
        util_buf_append(&file, chunk, n);
    fclose(fp);
    if (file.len != md.len || memcmp(file.base, md.base, md.len) != 0)
        fail_msg("docs/search.md is out of date: run `make docs`");
    free(path);
    util_buf_dispose(&file);
    util_buf_dispose(&md);
}

/* ---- extraction ---- */

static bool has_token(json_t *index, const char *entry)
{
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(index, "t"), i, v)
        if (strcmp(json_string_value(v), entry) == 0)
            return true;
    return false;
}

static bool has_text(json_t *index, const char *entry)
{
    char *wrapped = util_asprintf("\x1e%s\x1e", entry);
    bool found = strstr(json_string_value(json_object_get(index, "s")), wrapped) != NULL;
    free(wrapped);
    return found;
}

static void test_extracts_patient(void **state)
{
    fhir_base_url = "http://example.org/fhir";
    json_t *patient = json_loads("{\"resourceType\":\"Patient\",\"id\":\"p1\","
                                 "\"meta\":{\"tag\":[{\"system\":\"urn:t\",\"code\":\"vip\",\"display\":\"Very Important\"}]},"
                                 "\"identifier\":[{\"system\":\"urn:mrn\",\"value\":\"123\",\"type\":{\"coding\":[{\"system\":"
                                 "\"http://terminology.hl7.org/CodeSystem/v2-0203\",\"code\":\"MR\"}],\"text\":\"Medical record\"}}],"
                                 "\"name\":[{\"family\":\"Müller\",\"given\":[\"José\",\"Ann\"],\"prefix\":[\"Dr.\"]}],"
                                 "\"telecom\":[{\"system\":\"phone\",\"value\":\"+31 20 1234\"},{\"system\":\"email\",\"value\":\"a@b.nl\"}],"
                                 "\"gender\":\"female\",\"birthDate\":\"1980-05-01\",\"active\":true,"
                                 "\"address\":[{\"line\":[\"Kerkstraat 1\"],\"city\":\"Zwolle\",\"postalCode\":\"8011 AB\"}],"
                                 "\"generalPractitioner\":[{\"reference\":\"http://example.org/fhir/Practitioner/dr1/_history/2\"},"
                                 "{\"reference\":\"https://elsewhere.org/fhir/Practitioner/x\"},"
                                 "{\"identifier\":{\"system\":\"urn:agb\",\"value\":\"0101\"}}]}",
                                 0, NULL);
    assert_non_null(patient);
    json_t *ix = fhir_search_index("Patient", patient);
    assert_int_equal(json_integer_value(json_object_get(ix, "v")), FHIR_SEARCH_INDEX_VERSION);
    /* tokens in every form a search can name */
    assert_true(has_token(ix, "identifier=123"));
    assert_true(has_token(ix, "identifier=urn:mrn|123"));
    assert_true(has_token(ix, "identifier=urn:mrn|"));
    assert_false(has_token(ix, "identifier=|123"));
    assert_true(has_token(ix, "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|123"));
    assert_true(has_token(ix, "gender=female"));
    assert_true(has_token(ix, "gender=http://hl7.org/fhir/administrative-gender|female"));
    assert_true(has_token(ix, "active=true"));
    assert_true(has_token(ix, "_tag=urn:t|vip"));
    assert_true(has_token(ix, "phone=+31 20 1234"));
    assert_true(has_token(ix, "phone=phone|+31 20 1234"));
    assert_false(has_token(ix, "phone=a@b.nl"));
    assert_true(has_token(ix, "email=a@b.nl"));
    assert_true(has_token(ix, "telecom=a@b.nl"));
    /* references: relative to our base, without history; foreign URLs as written; identifiers */
    assert_true(has_token(ix, "general-practitioner=Practitioner/dr1"));
    assert_true(has_token(ix, "general-practitioner=dr1"));
    assert_true(has_token(ix, "general-practitioner=https://elsewhere.org/fhir/Practitioner/x"));
    assert_true(has_token(ix, "general-practitioner:identifier=urn:agb|0101"));
    /* presence markers for :missing */
    assert_true(has_token(ix, "identifier"));
    assert_true(has_token(ix, "birthdate"));
    assert_false(has_token(ix, "_security"));
    /* strings folded for starts-with, as written for :exact */
    assert_true(has_text(ix, "name=muller"));
    assert_true(has_text(ix, "name=jose"));
    assert_true(has_text(ix, "name=dr."));
    assert_true(has_text(ix, "name:exact=Müller"));
    assert_true(has_text(ix, "family=muller"));
    assert_true(has_text(ix, "given=ann"));
    assert_true(has_text(ix, "address=kerkstraat 1"));
    assert_true(has_text(ix, "address=zwolle"));
    assert_true(has_text(ix, "address-postalcode=8011 ab"));
    assert_true(has_text(ix, "identifier:text=medical record"));
    assert_true(has_text(ix, "_tag:text=very important"));
    /* the date and the sort keys */
    json_t *d = json_object_get(ix, "d");
    assert_string_equal(json_string_value(json_array_get(d, 0)), "1980-05-01");
    assert_string_equal(json_string_value(json_array_get(d, 1)), "1980-05-01");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ix, "o"), "family")), "muller");
    json_decref(ix);
    json_decref(patient);
}

static void test_extracts_scheduling_resources(void **state)
{
    fhir_base_url = "http://example.org/fhir";
    json_t *appt = json_loads("{\"resourceType\":\"Appointment\",\"status\":\"booked\",\"start\":\"2026-11-23T09:00:00Z\","
                              "\"end\":\"2026-11-23T09:30:00Z\",\"serviceType\":[{\"coding\":[{\"system\":\"urn:svc\",\"code\":\"c1\"}]}],"
                              "\"participant\":[{\"actor\":{\"reference\":\"Practitioner/dr1\"},\"status\":\"accepted\"},"
                              "{\"actor\":{\"reference\":\"Patient/p1\"},\"status\":\"accepted\"},"
                              "{\"actor\":{\"reference\":\"Location/room1\"},\"status\":\"needs-action\"}]}",
                              0, NULL);
    json_t *ix = fhir_search_index("Appointment", appt);
    assert_true(has_token(ix, "practitioner=Practitioner/dr1"));
    assert_false(has_token(ix, "practitioner=Patient/p1"));
    assert_true(has_token(ix, "patient=Patient/p1"));
    assert_true(has_token(ix, "location=Location/room1"));
    assert_true(has_token(ix, "actor=Location/room1"));
    assert_true(has_token(ix, "actor=Patient/p1"));
    assert_true(has_token(ix, "part-status=needs-action"));
    assert_true(has_token(ix, "status=http://hl7.org/fhir/appointmentstatus|booked"));
    assert_true(has_token(ix, "service-type=urn:svc|c1"));
    assert_false(has_token(ix, "slot"));
    json_t *d = json_object_get(ix, "d");
    assert_string_equal(json_string_value(json_array_get(d, 0)), "2026-11-23T09:00:00Z");
    json_decref(ix);
    json_decref(appt);

    json_t *schedule = json_loads("{\"resourceType\":\"Schedule\",\"active\":false,\"actor\":[{\"reference\":\"Practitioner/dr1\"}],"
                                  "\"planningHorizon\":{\"start\":\"2026-11-01\"}}",
                                  0, NULL);
    ix = fhir_search_index("Schedule", schedule);
    d = json_object_get(ix, "d");
    assert_string_equal(json_string_value(json_array_get(d, 0)), "2026-11-01");
    assert_true(json_is_null(json_array_get(d, 1))); /* an open end is unbounded */
    assert_true(has_token(ix, "active=false"));
    json_decref(ix);
    json_decref(schedule);

    json_t *location = json_loads("{\"resourceType\":\"Location\",\"name\":\"Kliniek Noord\",\"alias\":[\"KN\"],"
                                  "\"position\":{\"latitude\":52.5,\"longitude\":6.1},\"partOf\":{\"reference\":\"#contained\"}}",
                                  0, NULL);
    ix = fhir_search_index("Location", location);
    json_t *g = json_object_get(ix, "g");
    assert_true(json_real_value(json_array_get(g, 0)) == 52.5);
    assert_true(json_real_value(json_array_get(g, 1)) == 6.1);
    assert_true(has_text(ix, "name=kliniek noord"));
    assert_true(has_text(ix, "name=kn"));
    assert_true(has_token(ix, "near"));
    assert_false(has_token(ix, "partof")); /* a contained reference is not searchable */
    json_decref(ix);
    json_decref(location);

    /* device-name is a union of the device's names and its type's displays and text */
    json_t *device = json_loads("{\"resourceType\":\"Device\",\"status\":\"active\",\"deviceName\":[{\"name\":\"Echo 3000\","
                                "\"type\":\"user-friendly-name\"}],\"type\":{\"coding\":[{\"system\":\"urn:dev\",\"code\":\"us\","
                                "\"display\":\"Ultrasound scanner\"}],\"text\":\"Scanner\"},\"location\":{\"reference\":\"Location/room1\"},"
                                "\"manufacturer\":\"Acme\",\"modelNumber\":\"E-3\"}",
                                0, NULL);
    ix = fhir_search_index("Device", device);
    assert_true(has_token(ix, "status=http://hl7.org/fhir/device-status|active"));
    assert_true(has_token(ix, "type=urn:dev|us"));
    assert_true(has_token(ix, "location=Location/room1"));
    assert_true(has_text(ix, "device-name=echo 3000"));
    assert_true(has_text(ix, "device-name=ultrasound scanner"));
    assert_true(has_text(ix, "device-name=scanner"));
    assert_true(has_text(ix, "manufacturer=acme"));
    assert_true(has_text(ix, "model=e-3"));
    assert_false(has_token(ix, "patient"));
    json_decref(ix);
    json_decref(device);

    /* an AuditEvent as fhirsched records it: the agent by fhirUser or by identifier, the patient among the entities */
    json_t *audit = json_loads("{\"resourceType\":\"AuditEvent\",\"type\":{\"system\":\"http://terminology.hl7.org/CodeSystem/audit-event-type\","
                               "\"code\":\"rest\"},\"subtype\":[{\"system\":\"http://hl7.org/fhir/restful-interaction\",\"code\":\"read\"}],"
                               "\"action\":\"R\",\"recorded\":\"2026-11-23T09:00:01.250Z\",\"outcome\":\"0\","
                               "\"agent\":[{\"who\":{\"reference\":\"Practitioner/dr1\"},\"altId\":\"portal\",\"requestor\":true,"
                               "\"name\":\"Dr One\",\"role\":[{\"coding\":[{\"system\":\"urn:roles\",\"code\":\"doctor\"}]}],"
                               "\"network\":{\"address\":\"10.0.0.7\",\"type\":\"2\"}},"
                               "{\"who\":{\"identifier\":{\"system\":\"https://idp.example\",\"value\":\"svc-7\"}},\"requestor\":false}],"
                               "\"source\":{\"site\":\"http://example.org/fhir\",\"observer\":{\"display\":\"fhirsched\"}},"
                               "\"entity\":[{\"what\":{\"reference\":\"Appointment/a1\"},\"name\":\"Check-up\"},"
                               "{\"what\":{\"reference\":\"http://example.org/fhir/Patient/p1\"},\"role\":{\"system\":"
                               "\"http://terminology.hl7.org/CodeSystem/object-role\",\"code\":\"1\"}}]}",
                               0, NULL);
    assert_non_null(audit);
    ix = fhir_search_index("AuditEvent", audit);
    assert_true(has_token(ix, "agent=Practitioner/dr1"));
    assert_true(has_token(ix, "agent=dr1"));
    assert_true(has_token(ix, "agent:identifier=https://idp.example|svc-7"));
    assert_true(has_token(ix, "entity=Appointment/a1"));
    assert_true(has_token(ix, "entity=Patient/p1"));
    /* patient: agents and entities that are Patients, nothing else */
    assert_true(has_token(ix, "patient=Patient/p1"));
    assert_true(has_token(ix, "patient=p1"));
    assert_false(has_token(ix, "patient=Appointment/a1"));
    assert_false(has_token(ix, "patient=Practitioner/dr1"));
    assert_true(has_token(ix, "action=R"));
    assert_true(has_token(ix, "action=http://hl7.org/fhir/audit-event-action|R"));
    assert_true(has_token(ix, "outcome=0"));
    assert_true(has_token(ix, "outcome=http://hl7.org/fhir/audit-event-outcome|0"));
    assert_true(has_token(ix, "type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest"));
    assert_true(has_token(ix, "subtype=http://hl7.org/fhir/restful-interaction|read"));
    assert_true(has_token(ix, "altid=portal"));
    assert_true(has_token(ix, "site=http://example.org/fhir"));
    assert_true(has_token(ix, "agent-role=urn:roles|doctor"));
    assert_true(has_token(ix, "entity-role=http://terminology.hl7.org/CodeSystem/object-role|1"));
    assert_true(has_text(ix, "address=10.0.0.7"));
    assert_true(has_text(ix, "agent-name=dr one"));
    assert_true(has_text(ix, "entity-name=check-up"));
    assert_false(has_token(ix, "source")); /* an observer by display only is not searchable */
    d = json_object_get(ix, "d");
    assert_string_equal(json_string_value(json_array_get(d, 0)), "2026-11-23T09:00:01.250Z");
    assert_string_equal(json_string_value(json_array_get(d, 1)), "2026-11-23T09:00:01.250Z");
    json_decref(ix);
    json_decref(audit);

    /* odd content is skipped, never fatal */
    json_t *odd = json_loads("{\"resourceType\":\"Slot\",\"status\":5,\"schedule\":\"x\",\"start\":{\"a\":1},\"identifier\":[1,null]}", 0, NULL);
    ix = fhir_search_index("Slot", odd);
    assert_int_equal(json_array_size(json_object_get(ix, "t")), 0);
    assert_null(json_object_get(ix, "d"));
    json_decref(ix);
    json_decref(odd);
}

static void test_local_references(void **state)
{
    const char *base = "http://example.org/fhir";
    struct {
        const char *in, *out;
    } cases[] = {
        {"Patient/1", "Patient/1"},
        {"http://example.org/fhir/Patient/1", "Patient/1"},
        {"Patient/1/_history/3", "Patient/1"},
        {"http://elsewhere.org/fhir/Patient/1", NULL},
        {"#c1", NULL},
        {"urn:uuid:0b3c", NULL},
        {"patient/1", NULL},
        {"Patient/", NULL},
        {"Patient/a/b", NULL},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        char *got = fhir_search_local_reference(cases[i].in, base);
        if (cases[i].out == NULL)
            assert_null(got);
        else
            assert_string_equal(got, cases[i].out);
        free(got);
    }
}

/* ---- the query parser ---- */

static int build(fhir_search_t *s, const char *type, const char *q, bool strict, fhir_outcome_t *oo)
{
    fhir_outcome_dispose(oo);
    fhir_outcome_init(oo);
    return fhir_search_build(s, type, q, strlen(q), &limits, strict, oo);
}

static bool has_param(const fhir_search_t *s, const char *value)
{
    for (int i = 0; i != s->nparams; ++i)
        if (s->params[i] != NULL && strcmp(s->params[i], value) == 0)
            return true;
    return false;
}

static void expect_ok(const char *type, const char *q, const char *sql_fragment, const char *param)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    fhir_search_t s;
    if (build(&s, type, q, true, &oo) != 0)
        fail_msg("%s?%s failed: %s", type, q, oo.count != 0 ? oo.issues[0].diagnostics : "");
    if (sql_fragment != NULL && strstr(s.sql.base, sql_fragment) == NULL)
        fail_msg("%s?%s: no \"%s\" in %s", type, q, sql_fragment, s.sql.base);
    if (param != NULL && !has_param(&s, param))
        fail_msg("%s?%s: no parameter \"%s\"", type, q, param);
    /* values never reach the SQL text */
    const char *eq = strchr(q, '=');
    if (eq != NULL && strlen(eq + 1) > 3 && strstr(s.sql.base, eq + 1) != NULL)
        fail_msg("%s?%s: the value is in the SQL", type, q);
    fhir_search_dispose(&s);
    fhir_outcome_dispose(&oo);
}

static void expect_400(const char *type, const char *q, const char *diagnostic)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    fhir_search_t s;
    if (build(&s, type, q, false, &oo) != -1)
        fail_msg("%s?%s was accepted", type, q);
    assert_int_equal(oo.status, 400);
    if (diagnostic != NULL && strstr(oo.issues[0].diagnostics, diagnostic) == NULL)
        fail_msg("%s?%s: \"%s\" does not mention \"%s\"", type, q, oo.issues[0].diagnostics, diagnostic);
    fhir_search_dispose(&s);
    fhir_outcome_dispose(&oo);
}

static void test_date_prefixes(void **state)
{
    expect_ok("Slot", "start=2026-11-22", "r.sp_date <@ $1::tstzrange", "[\"2026-11-22 00:00:00.000000+00\",\"2026-11-23 00:00:00.000000+00\")");
    expect_ok("Slot", "start=eq2026", "r.sp_date <@ $1::tstzrange", "[\"2026-01-01 00:00:00.000000+00\",\"2027-01-01 00:00:00.000000+00\")");
    expect_ok("Slot", "start=ne2026-11", "NOT (r.sp_date <@", "[\"2026-11-01 00:00:00.000000+00\",\"2026-12-01 00:00:00.000000+00\")");
    expect_ok("Slot", "start=ne2026-12", "NOT (r.sp_date <@", "[\"2026-12-01 00:00:00.000000+00\",\"2027-01-01 00:00:00.000000+00\")");
    expect_ok("Slot", "start=gt2026-11-22T10:00", "r.sp_date && tstzrange(upper(",
              "[\"2026-11-22 10:00:00.000000+00\",\"2026-11-22 10:01:00.000000+00\")");
    expect_ok("Slot", "start=lt2026-11-22T10:00:00Z", "r.sp_date && tstzrange(NULL, lower(",
              "[\"2026-11-22 10:00:00.000000+00\",\"2026-11-22 10:00:01.000000+00\")");
    expect_ok("Slot", "start=ge2026-11-22T10:00:00%2B01:00", "OR r.sp_date <@",
              "[\"2026-11-22 09:00:00.000000+00\",\"2026-11-22 09:00:01.000000+00\")");
    expect_ok("Slot", "start=ge2026-11-22T23:30:00-01:00", NULL, "[\"2026-11-23 00:30:00.000000+00\",\"2026-11-23 00:30:01.000000+00\")");
    expect_ok("Slot", "start=le2026-11-22T10:00:00.5Z", "tstzrange(NULL, lower(",
              "[\"2026-11-22 10:00:00.500000+00\",\"2026-11-22 10:00:00.501000+00\")");
    expect_ok("Slot", "start=2026-11-22T10:00:00.12345675Z", NULL, "[\"2026-11-22 10:00:00.123457+00\",\"2026-11-22 10:00:00.124457+00\")");
    expect_ok("Slot", "start=2024-02", NULL, "[\"2024-02-01 00:00:00.000000+00\",\"2024-03-01 00:00:00.000000+00\")");
    expect_ok("Slot", "start=0001-01-01T00:00%2B14:00", NULL, "[\"0001-12-31 10:00:00.000000+00 BC\",\"0001-12-31 10:01:00.000000+00 BC\")");
    expect_ok("Slot", "start=sa2026-11-22", "r.sp_date >> tstzrange(NULL, upper(", NULL);
    expect_ok("Slot", "start=eb2026-11-22", "r.sp_date << tstzrange(lower(", NULL);
    expect_ok("Slot", "start=ap2026-11-22", "fhir_approx_range(", NULL);
    expect_ok("Patient", "_lastUpdated=gt2026-01-01", "r.last_updated >= upper(", NULL);
    expect_ok("Patient", "_lastUpdated=lt2026-01-01", "r.last_updated < lower(", NULL);
    expect_ok("Patient", "birthdate=1970,1980", " OR ", "[\"1980-01-01 00:00:00.000000+00\",\"1981-01-01 00:00:00.000000+00\")");
    expect_400("Slot", "start=xx2026", "start");
    expect_400("Slot", "start=2026-02-30", "start");
    expect_400("Slot", "start=2026-11-22T25:00", "start");
    expect_400("Slot", "start=2026-11-22T10", "start");
    expect_400("Slot", "start=tomorrow", "start");
    expect_400("Slot", "start=", "empty");
    expect_400("Slot", "start:exact=2026", "exact");
}

static void test_token_forms_and_modifiers(void **state)
{
    expect_ok("Slot", "status=free", "r.sp_tokens && $", "{\"status=free\"}");
    expect_ok("Slot", "status=http://hl7.org/fhir/slotstatus%7Cfree", NULL, "{\"status=http://hl7.org/fhir/slotstatus|free\"}");
    expect_ok("Slot", "status=%7Cfree", NULL, "{\"status=|free\"}");
    expect_ok("Slot", "status=http://hl7.org/fhir/slotstatus%7C", NULL, "{\"status=http://hl7.org/fhir/slotstatus|\"}");
    expect_ok("Slot", "status=free,busy", NULL, "{\"status=free\",\"status=busy\"}");
    expect_ok("Slot", "status:not=free", "NOT (r.sp_tokens && $", NULL);
    expect_ok("Slot", "service-type:text=general", "r.sp_text LIKE $", "%\x1eservice-type:text=general%");
    expect_ok("Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203%7CMR%7C123", NULL,
              "{\"identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|123\"}");
    expect_ok("Patient", "identifier=urn:a%5C%7Cb%7C1", NULL, "{\"identifier=urn:a|b|1\"}"); /* escaped bar */
    expect_ok("Patient", "_id=a,b", "r.id = ANY($", "{\"a\",\"b\"}");
    expect_ok("Patient", "gender:missing=true", "NOT (r.sp_tokens @> $", "{\"gender\"}");
    expect_ok("Patient", "gender:missing=false", "(r.sp_tokens @> $", NULL);
    expect_ok("Subscription", "url=http://x.org/hook", NULL, "{\"url=http://x.org/hook\"}");
    expect_400("Patient", "gender:missing=maybe", "missing");
    expect_400("Patient", "gender:exact=female", "exact");
    expect_400("Patient", "gender:below=female", "below");
    expect_400("Patient", "gender:of-type=a%7Cb%7Cc", "of-type");
    expect_400("Patient", "identifier:of-type=MR%7C123", "of-type");
    expect_400("Patient", "_id:text=a", "text");
    expect_400("Subscription", "url:text=x", "text");
}

static void test_string_modifiers(void **state)
{
    expect_ok("Patient", "name=M%C3%BCl", "r.sp_text LIKE $", "%\x1ename=mul%");
    expect_ok("Patient", "family:exact=M%C3%BCller", NULL, "%\x1e" "family:exact=Müller\x1e%");
    expect_ok("Patient", "name:contains=ll", "r.sp_text ~ $", "\x1ename=[^\x1e]*ll");
    expect_ok("Patient", "name=50%25_off", NULL, "%\x1ename=50\\%\\_off%"); /* LIKE wildcards are literal */
    expect_ok("Patient", "name:contains=a.b", NULL, "\x1ename=[^\x1e]*a\\.b"); /* regex metacharacters too */
    expect_ok("Patient", "name:missing=true", NULL, "{\"name\"}");
    expect_400("Patient", "name:text=x", "text");
    expect_400("Patient", "name:not=x", "not");
}

static void test_references_chains_and_has(void **state)
{
    fhir_base_url = "http://example.org/fhir";
    expect_ok("Slot", "schedule=Schedule/s1", NULL, "{\"schedule=Schedule/s1\"}");
    expect_ok("Slot", "schedule=s1", NULL, "{\"schedule=s1\"}");
    expect_ok("Slot", "schedule=http://example.org/fhir/Schedule/s1", NULL, "{\"schedule=Schedule/s1\"}");
    expect_ok("Appointment", "actor:Patient=p1", NULL, "{\"actor=Patient/p1\"}");
    expect_ok("Appointment", "actor:Patient=Patient/p1", NULL, "{\"actor=Patient/p1\"}");
    expect_ok("Appointment", "patient:identifier=urn:mrn%7C123", NULL, "{\"patient:identifier=urn:mrn|123\"}");
    expect_ok("Appointment", "practitioner.name=smith", "ARRAY(SELECT $", "%\x1ename=smith%");
    expect_ok("Appointment", "patient.identifier=urn:mrn%7C123", "c1.res_type = ANY($", "{\"identifier=urn:mrn|123\"}");
    expect_ok("Appointment", "actor:Patient.family=x", NULL, "{\"Patient\"}");
    expect_ok("Slot", "schedule.actor:Practitioner.name=x", "c2", NULL);
    expect_ok("Practitioner", "_has:PractitionerRole:practitioner:service=HealthcareService/h1", "r.id IN (SELECT substr(e",
              "practitioner=Practitioner/");
    expect_ok("Practitioner", "_has:PractitionerRole:practitioner:_has:Appointment:actor:status=booked", "h2", NULL);
    expect_400("Appointment", "actor:Observation=o1", "Observation");
    expect_400("Appointment", "patient:Practitioner=x", "Practitioner");
    expect_400("Appointment", "status.name=x", "chained");
    expect_400("Appointment", "slot.name=x", "no target type");
    expect_400("Practitioner", "_has:PractitionerRole:location:service=x", "location");
    expect_400("Practitioner", "_has:Nope:practitioner:service=x", "Nope");
    expect_400("Practitioner", "_has:PractitionerRole", "_has");
    expect_400("Appointment", "patient:Patient=Practitioner/x", "not a Patient reference");
    expect_400("Appointment", "slot.schedule.actor:Practitioner._has:PractitionerRole:practitioner:service.name=x", "nest");
}

static void test_result_parameters(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    fhir_search_t s;
    assert_int_equal(build(&s, "Slot", "_count=5000&_total=none&_summary=data&_elements=start,Slot.status", true, &oo), 0);
    assert_int_equal(s.count, 1000); /* capped */
    assert_int_equal(s.total, FHIR_TOTAL_NONE);
    assert_int_equal(s.summary, FHIR_SUMMARY_DATA);
    assert_int_equal(s.nelements, 2);
    assert_string_equal(s.elements[1], "status");
    assert_non_null(strstr(s.sql.base, "LIMIT $"));
    assert_true(has_param(&s, "1001"));
    fhir_search_dispose(&s);

    assert_int_equal(build(&s, "Slot", "_count=0", true, &oo), 0);
    assert_true(s.count_only);
    fhir_search_dispose(&s);
    assert_int_equal(build(&s, "Slot", "_summary=count&status=free", true, &oo), 0);
    assert_true(s.count_only);
    assert_non_null(strstr(s.count_sql.base, "SELECT count(*) FROM resource r WHERE"));
    /* the count statement uses exactly the condition parameters (the type is written out) */
    assert_int_equal(s.nparams_where, 1);
    fhir_search_dispose(&s);

    assert_int_equal(build(&s, "Slot", "_total=estimate", true, &oo), 0);
    assert_int_equal(s.total, FHIR_TOTAL_ESTIMATE);
    fhir_search_dispose(&s);

    assert_int_equal(build(&s, "Patient", "_sort=family,-birthdate,_lastUpdated", true, &oo), 0);
    assert_int_equal(s.nsort, 3);
    assert_non_null(strstr(s.sql.base, "ORDER BY coalesce(r.sp_sort ->> $"));
    assert_non_null(strstr(s.sql.base, "coalesce(lower(r.sp_date), '-infinity'::timestamptz) DESC, r.last_updated, r.res_type, r.id"));
    fhir_search_dispose(&s);

    expect_400("Slot", "_count=abc", "_count");
    expect_400("Slot", "_count=-1", "_count");
    expect_400("Slot", "_total=some", "_total");
    expect_400("Slot", "_summary=maybe", "_summary");
    expect_400("Slot", "_sort=nonsense", "nonsense");
    expect_400("Location", "_sort=near", "near");
    expect_400("Slot", "_sort=a,b,c,d,e,f,g", "_sort");
    fhir_outcome_dispose(&oo);
}

static void test_unknown_parameters_lenient_and_strict(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    fhir_search_t s;
    assert_int_equal(build(&s, "Patient", "nonsense=1&family=x&other.chain=2", false, &oo), 0);
    assert_int_equal(oo.count, 2); /* warnings */
    assert_int_equal(oo.issues[0].severity, FHIR_SEV_WARNING);
    assert_string_equal(s.used.base, "family=x");
    /* an ignored parameter leaves no parameter behind (an untyped $n would fail in PostgreSQL) */
    for (int i = 0; i != s.nparams; ++i)
        assert_non_null(strstr(s.sql.base, "$1") != NULL ? s.sql.base : NULL);
    fhir_search_dispose(&s);
    assert_int_equal(build(&s, "Patient", "nonsense=1", true, &oo), -1);
    assert_int_equal(oo.status, 400);
    fhir_search_dispose(&s);
    /* a malformed value is a 400 even when lenient */
    expect_400("Patient", "birthdate=soon", "birthdate");
    expect_400("Patient", "family=a&%zz=1", "percent");
    fhir_outcome_dispose(&oo);
}

/* Only the restated (reference, start) btree shape may keep its plan; its statement names no value and no window range. */
static void test_reusable_plans(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    fhir_search_t s;
    assert_int_equal(build(&s, "Slot", "schedule=Schedule/a&start=ge2027-01-12&start=lt2027-01-13&status=free", true, &oo), 0);
    assert_true(s.plan_reusable);
    assert_non_null(strstr(s.sql.base, "WHERE r.res_type = 'Slot' AND NOT r.deleted"));
    assert_non_null(strstr(s.sql.base, "(r.sp_sort ->> 'schedule') = $"));
    assert_non_null(strstr(s.sql.base, "lower(r.sp_date) > $"));
    assert_null(strstr(s.sql.base, "r.sp_date && $")); /* the window, which would lead a generic plan to the range index */
    assert_true(has_param(&s, "2027-01-11 23:59:59.000000+00"));
    assert_true(has_param(&s, "2027-01-13 00:00:00.000000+00"));
    fhir_search_dispose(&s);

    const char *not_reusable[][2] = {
        {"Slot", "start=ge2027-01-12&start=lt2027-01-13"},                     /* no reference: the window stays */
        {"Slot", "schedule=Schedule/a&start=ge2027-01-12"},                    /* no window */
        {"Slot", "schedule=Schedule/a&start=ge2027-01-13&start=lt2027-01-12"}, /* crossed bounds */
        {"Slot", "schedule=Schedule/a,Schedule/b&start=ge2027-01-12&start=lt2027-01-13"},
        {"Slot", "status=free"},
        {"Appointment", "actor=Practitioner/a&date=ge2027-01-12&date=lt2027-01-13"},
    };
    for (size_t i = 0; i != sizeof(not_reusable) / sizeof(not_reusable[0]); ++i) {
        assert_int_equal(build(&s, not_reusable[i][0], not_reusable[i][1], true, &oo), 0);
        if (s.plan_reusable)
            fail_msg("%s?%s: plan_reusable", not_reusable[i][0], not_reusable[i][1]);
        fhir_search_dispose(&s);
    }
    assert_int_equal(build(&s, "Slot", "start=ge2027-01-12&start=lt2027-01-13", true, &oo), 0);
    assert_non_null(strstr(s.sql.base, " AND r.sp_date && $"));
    fhir_search_dispose(&s);
    fhir_outcome_dispose(&oo);
}

static void test_near(void **state)
{
    expect_ok("Location", "near=52.5%7C6.1%7C10%7Ckm", "fhir_distance_km(r.sp_geo", "10");
    expect_ok("Location", "near=52.5%7C6.1", NULL, "50");
    expect_ok("Location", "near=52.5%7C6.1%7C1000%7Cm", NULL, "1");
    expect_ok("Location", "near=52.5%7C6.1%7C1%7Cmi", NULL, "1.609344");
    expect_400("Location", "near=52.5", "near");
    expect_400("Location", "near=91%7C6", "near");
    expect_400("Location", "near=a%7Cb", "near");
    expect_400("Location", "near=52%7C6%7C10%7Cparsec", "near");
    expect_400("Location", "near=52%7C6%7C-1", "near");
}

static void test_includes(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    fhir_search_t s;
    assert_int_equal(build(&s, "Appointment", "_include=Appointment:patient&_include=Appointment:actor:Location&_revinclude=AppointmentResponse:appointment&_include:iterate=Patient:general-practitioner", true, &oo), 0);
    assert_int_equal(s.nincludes, 4);
    assert_string_equal(s.includes[1].target, "Location");
    assert_true(s.includes[2].reverse);
    assert_true(s.includes[3].iterate);
    util_buf_t sql;
    util_buf_init(&sql);
    char **params;
    int n = fhir_search_include_sql(&s, true, "{\"Appointment\"}", "{\"a1\"}", 100, &sql, &params);
    assert_true(n > 2);
    assert_non_null(strstr(sql.base, "unnest($1::text[], $2::text[])"));
    for (int i = 0; i != n; ++i)
        free(params[i]);
    free(params);
    /* later rounds: only the :iterate ones */
    sql.len = 0;
    n = fhir_search_include_sql(&s, false, "{\"Patient\"}", "{\"p1\"}", 100, &sql, &params);
    assert_int_equal(n, 5); /* types, ids, prefix, source, limit */
    for (int i = 0; i != n; ++i)
        free(params[i]);
    free(params);
    util_buf_dispose(&sql);
    fhir_search_dispose(&s);

    assert_int_equal(build(&s, "Appointment", "_include=Appointment:*", true, &oo), 0);
    assert_int_equal(s.nincludes, 8); /* every reference parameter of Appointment */
    fhir_search_dispose(&s);

    expect_400("Appointment", "_include=Appointment", "_include");
    expect_400("Appointment", "_include=Appointment:status", "status");
    expect_400("Appointment", "_include=Slot:schedule", "not on Slot");
    expect_400("Appointment", "_include=Appointment:patient:Location", "patient");
    expect_400("Appointment", "_include:recursive=Appointment:patient", "iterate");
    expect_400("Appointment", "_revinclude=Nope:x", "Nope");
    fhir_outcome_dispose(&oo);
}

static void test_cursor_round_trip(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    fhir_search_t s;
    assert_int_equal(build(&s, "Slot", "_sort=-start", true, &oo), 0);
    const char *keys[] = {"2026-11-22 10:00:00+00", "Slot", "s\"1"};
    char *next = fhir_search_cursor(&s, false, keys), *prev = fhir_search_cursor(&s, true, keys);
    fhir_search_dispose(&s);

    char *q = util_asprintf("_sort=-start&_cursor=%s", next);
    assert_int_equal(build(&s, "Slot", q, true, &oo), 0);
    assert_true(s.has_cursor);
    assert_false(s.backward);
    assert_true(has_param(&s, "s\"1"));
    assert_non_null(strstr(s.sql.base, "coalesce(lower(r.sp_date), '-infinity'::timestamptz) < $"));
    fhir_search_dispose(&s);
    free(q);

    q = util_asprintf("_sort=-start&_cursor=%s", prev);
    assert_int_equal(build(&s, "Slot", q, true, &oo), 0);
    assert_true(s.backward);
    assert_non_null(strstr(s.sql.base, "coalesce(lower(r.sp_date), '-infinity'::timestamptz) > $"));
    assert_non_null(strstr(s.sql.base, "r.res_type DESC, r.id DESC"));
    fhir_search_dispose(&s);
    free(q);

    /* a cursor of another sort, a tampered one, garbage */
    q = util_asprintf("_cursor=%s", next);
    expect_400("Slot", q, "_cursor");
    free(q);
    next[10] = next[10] == '0' ? '1' : '0';
    q = util_asprintf("_sort=-start&_cursor=%s", next);
    expect_400("Slot", q, "_cursor");
    free(q);
    expect_400("Slot", "_cursor=zz", "_cursor");
    expect_400("Slot", "_cursor=5b5d", "_cursor");
    const char *bad_ts[] = {"1; DROP TABLE resource", "Slot", "x"};
    build(&s, "Slot", "_sort=start", true, &oo);
    char *bad = fhir_search_cursor(&s, false, bad_ts);
    fhir_search_dispose(&s);
    q = util_asprintf("_sort=start&_cursor=%s", bad);
    expect_400("Slot", q, "_cursor");
    free(q);
    free(bad);
    free(next);
    free(prev);

    /* cursors are authenticated by the server secret: another instance with the same secret accepts them, others not */
    fhir_search_set_cursor_key("secret-a");
    assert_int_equal(build(&s, "Slot", "_sort=-start", true, &oo), 0);
    char *signed_a = fhir_search_cursor(&s, false, keys);
    fhir_search_dispose(&s);
    q = util_asprintf("_sort=-start&_cursor=%s", signed_a);
    expect_ok("Slot", q, NULL, NULL);
    fhir_search_set_cursor_key("secret-b");
    expect_400("Slot", q, "_cursor");
    fhir_search_set_cursor_key(NULL);
    free(q);
    free(signed_a);
    fhir_outcome_dispose(&oo);
}

static void test_system_search(void **state)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    fhir_search_t s;
    assert_int_equal(build(&s, NULL, "_type=Patient,Practitioner&name=x", true, &oo), 0);
    assert_int_equal(s.ntypes, 2);
    assert_non_null(strstr(s.sql.base, "r.res_type = ANY($1::text[])"));
    fhir_search_dispose(&s);
    assert_int_equal(build(&s, NULL, "_id=a", true, &oo), 0);
    assert_int_equal(s.ntypes, FHIR_RESOURCE_TYPE_COUNT);
    fhir_search_dispose(&s);
    /* a parameter not every listed type has is unknown */
    assert_int_equal(build(&s, NULL, "_type=Patient,Slot&name=x", true, &oo), -1);
    fhir_search_dispose(&s);
    expect_400(NULL, "_type=Observation", "Observation");
    fhir_outcome_dispose(&oo);
}

static void test_url_coding(void **state)
{
    char *d = fhir_url_decode("a%20b%7C+", 9);
    assert_string_equal(d, "a b|+");
    free(d);
    assert_null(fhir_url_decode("%2", 2));
    assert_null(fhir_url_decode("%00", 3));
    const char *q = "a=1&&b&c=%41", *end = q + strlen(q), *cur = q;
    char *name, *value;
    assert_int_equal(fhir_query_next(&cur, end, &name, &value), 1);
    assert_string_equal(name, "a");
    free(name), free(value);
    assert_int_equal(fhir_query_next(&cur, end, &name, &value), 1);
    assert_string_equal(value, "");
    free(name), free(value);
    assert_int_equal(fhir_query_next(&cur, end, &name, &value), 1);
    assert_string_equal(value, "A");
    free(name), free(value);
    assert_int_equal(fhir_query_next(&cur, end, &name, &value), 0);
    util_buf_t buf;
    util_buf_init(&buf);
    fhir_url_encode(&buf, "a b&c=d|e");
    assert_string_equal(buf.base, "a%20b%26c%3Dd|e");
    util_buf_dispose(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_matches_the_official_definitions),
        cmocka_unit_test(test_registry_is_consistent),
        cmocka_unit_test(test_docs_are_generated_from_the_registry),
        cmocka_unit_test(test_extracts_patient),
        cmocka_unit_test(test_extracts_scheduling_resources),
        cmocka_unit_test(test_local_references),
        cmocka_unit_test(test_date_prefixes),
        cmocka_unit_test(test_token_forms_and_modifiers),
        cmocka_unit_test(test_string_modifiers),
        cmocka_unit_test(test_references_chains_and_has),
        cmocka_unit_test(test_result_parameters),
        cmocka_unit_test(test_unknown_parameters_lenient_and_strict),
        cmocka_unit_test(test_reusable_plans),
        cmocka_unit_test(test_near),
        cmocka_unit_test(test_includes),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_system_search),
        cmocka_unit_test(test_url_coding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The HL7 v2 mapping (hl7v2/map.c), ACKs (ack.c) and outbound rendering and endpoints (render.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hl7v2/hl7.h"

static sched_tz_t *utc;

static int setup(void **state)
{
    char err[128];
    utc = sched_tz_load("UTC", err, sizeof(err));
    return utc == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    sched_tz_destroy(utc);
    return 0;
}

static char *read_sample(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/conformance/hl7v2/%s", FHIRSCHED_SOURCE_DIR, name);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return util_xstrdup(buf);
}

static hl7_msg_t *parse(const char *text)
{
    hl7_parse_error_t perr;
    char why[256];
    hl7_msg_t *m = hl7_parse(text, strlen(text), &perr, why, sizeof(why));
    if (m == NULL)
        fail_msg("parse: %s", why);
    return m;
}

static const char *str_at(const json_t *v, const char *path)
{
    json_t *cur = (json_t *)v;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save, *tok = strtok_r(buf, ".", &save); tok != NULL && cur != NULL; tok = strtok_r(NULL, ".", &save))
        cur = tok[0] >= '0' && tok[0] <= '9' ? json_array_get(cur, (size_t)atoi(tok)) : json_object_get(cur, tok);
    return json_string_value(cur);
}

static void test_siu_s12_v23(void **state)
{
    char *text = read_sample("mieweb-sample-SIU-S12-v23.hl7");
    hl7_msg_t *m = parse(text);
    hl7_plan_t plan;
    hl7_issue_t issue;
    hl7_map_ctx_t ctx = {utc};
    assert_int_equal(hl7_plan_build(&plan, m, &ctx, &issue), HL7_ACK_AA);
    assert_int_equal(plan.kind, HL7_KIND_SIU);
    assert_string_equal(plan.event, "S12");
    /* filler id first, then placer */
    assert_string_equal(str_at(plan.appointment_ids, "0.value"), "2196178");
    assert_string_equal(str_at(plan.appointment_ids, "0.type.coding.0.code"), "FILL");
    assert_string_equal(str_at(plan.appointment_ids, "1.value"), "10345");
    /* SCH-11 timing (v2.3) */
    assert_string_equal(str_at(plan.appointment, "start"), "2011-06-17T08:45:00Z");
    assert_string_equal(str_at(plan.appointment, "end"), "2011-06-17T09:30:00Z");
    assert_int_equal(json_integer_value(json_object_get(plan.appointment, "minutesDuration")), 45);
    assert_string_equal(str_at(plan.appointment, "appointmentType.coding.0.code"), "OFFICE");
    /* PID */
    assert_true(plan.has_patient);
    assert_string_equal(str_at(plan.patient.identifiers, "0.value"), "42");
    assert_string_equal(str_at(plan.patient.identifiers, "0.system"), "urn:fhirsched:hl7v2:SENDING_FACILITY");
    assert_string_equal(str_at(plan.patient.resource, "name.0.family"), "BEEBLEBROX");
    assert_string_equal(str_at(plan.patient.resource, "name.0.given.0"), "ZAPHOD");
    assert_string_equal(str_at(plan.patient.resource, "birthDate"), "1978-10-12");
    assert_string_equal(str_at(plan.patient.resource, "gender"), "male");
    assert_string_equal(str_at(plan.patient.resource, "address.0.city"), "Fort Wayne");
    /* AIL then AIP */
    assert_int_equal(plan.nparties, 2);
    assert_string_equal(plan.parties[0].type, "Location");
    assert_string_equal(str_at(plan.parties[0].identifiers, "0.value"), "OFFICE");
    assert_string_equal(plan.parties[1].type, "Practitioner");
    assert_string_equal(str_at(plan.parties[1].identifiers, "0.value"), "1");
    assert_string_equal(str_at(plan.parties[1].resource, "name.0.family"), "Adams");

    char *refs[] = {"Location/l1", "Practitioner/p1"};
    json_t *a = hl7_appointment_apply(NULL, &plan, "Patient/x", refs, &issue);
    assert_non_null(a);
    assert_string_equal(str_at(a, "status"), "booked");
    assert_int_equal(json_array_size(json_object_get(a, "participant")), 3);
    assert_string_equal(str_at(a, "participant.0.actor.reference"), "Patient/x");
    assert_string_equal(str_at(a, "participant.2.actor.reference"), "Practitioner/p1");

    /* S15 for the same appointment: cancelled, identifiers not doubled, the stored participants kept */
    json_object_set_new(a, "id", json_string("a1"));
    hl7_plan_t cancel = plan;
    snprintf(cancel.event, sizeof(cancel.event), "S15");
    char *none[] = {NULL, NULL};
    hl7_plan_t no_parties = cancel;
    no_parties.nparties = 0;
    json_t *c = hl7_appointment_apply(a, &no_parties, NULL, none, &issue);
    assert_non_null(c);
    assert_string_equal(str_at(c, "status"), "cancelled");
    assert_int_equal(json_array_size(json_object_get(c, "identifier")), 2);
    assert_int_equal(json_array_size(json_object_get(c, "participant")), 3);
    json_decref(c);
    json_decref(a);
    hl7_plan_dispose(&plan);
    hl7_free(m);
    free(text);
}

static void test_siu_tq1_v28(void **state)
{
    char *text = read_sample("msfhirconv-SIU-S12-01.hl7");
    hl7_msg_t *m = parse(text);
    hl7_plan_t plan;
    hl7_issue_t issue;
    hl7_map_ctx_t ctx = {utc};
    assert_int_equal(hl7_plan_build(&plan, m, &ctx, &issue), HL7_ACK_AA);
    /* TQ1 wins over SCH-11; +0215 is honoured */
    assert_string_equal(str_at(plan.appointment, "start"), "2021-09-24T07:15:00Z");
    assert_string_equal(str_at(plan.appointment, "end"), "2021-09-24T08:05:00Z");
    assert_string_equal(str_at(plan.appointment, "serviceType.0.coding.0.system"), "http://snomed.info/sct");
    assert_string_equal(str_at(plan.appointment, "serviceType.0.coding.0.code"), "76164006");
    assert_string_equal(str_at(plan.appointment, "comment"), "Appointment booked for emergency procedure");
    /* PID-3 with an assigning authority that has a namespace only */
    assert_string_equal(str_at(plan.patient.identifiers, "0.value"), "PATID1234");
    assert_string_equal(str_at(plan.patient.identifiers, "0.type.coding.0.code"), "MR");
    hl7_plan_dispose(&plan);
    hl7_free(m);
    free(text);
}

static void test_refusals(void **state)
{
    hl7_plan_t plan;
    hl7_issue_t issue;
    hl7_map_ctx_t ctx = {utc};
    hl7_msg_t *m = parse("MSH|^~\\&|A|B|C|D|20260101000000||ORU^R01|1|P|2.5\rPID|1||9\r");
    assert_int_equal(hl7_plan_build(&plan, m, &ctx, &issue), HL7_ACK_AR);
    assert_int_equal(issue.code, 200);
    hl7_plan_dispose(&plan);
    hl7_free(m);
    m = parse("MSH|^~\\&|A|B|C|D|20260101000000||SIU^S99|1|P|2.5\rSCH|1|2\r");
    assert_int_equal(hl7_plan_build(&plan, m, &ctx, &issue), HL7_ACK_AR);
    assert_int_equal(issue.code, 201);
    hl7_plan_dispose(&plan);
    hl7_free(m);
    m = parse("MSH|^~\\&|A|B|C|D|20260101000000||SIU^S12|1|P|2.5\rSCH|||\r");
    assert_int_equal(hl7_plan_build(&plan, m, &ctx, &issue), HL7_ACK_AE);
    assert_int_equal(issue.code, 101);
    hl7_plan_dispose(&plan);
    hl7_free(m);
    /* a booking without any timing cannot be applied */
    m = parse("MSH|^~\\&|A|B|C|D|20260101000000||SIU^S12|1|P|2.5\rSCH|1|2\rPID|1||9\r");
    assert_int_equal(hl7_plan_build(&plan, m, &ctx, &issue), HL7_ACK_AA);
    char *refs[] = {NULL};
    assert_null(hl7_appointment_apply(NULL, &plan, "Patient/p", refs, &issue));
    assert_int_equal(issue.code, 101);
    hl7_plan_dispose(&plan);
    hl7_free(m);
}

static void test_adt_and_merge(void **state)
{
    hl7_plan_t plan;
    hl7_issue_t issue;
    hl7_map_ctx_t ctx = {utc};
    hl7_msg_t *m = parse("MSH|^~\\&|ADT|HOSP|X|Y|20260101000000||ADT^A40|7|P|2.5\r"
                         "PID|1||111^^^HOSP&1.2.3&ISO^MR||Doe^Jane\r"
                         "MRG|222^^^HOSP&1.2.3&ISO^MR\r");
    assert_int_equal(hl7_plan_build(&plan, m, &ctx, &issue), HL7_ACK_AA);
    assert_int_equal(plan.kind, HL7_KIND_ADT_MERGE);
    assert_string_equal(str_at(plan.patient.identifiers, "0.system"), "urn:oid:1.2.3");
    assert_string_equal(str_at(plan.merged.identifiers, "0.value"), "222");
    hl7_plan_dispose(&plan);
    hl7_free(m);

    json_t *stored = json_pack("{s:s,s:s,s:[{s:s,s:s}],s:[{s:s}],s:b}", "resourceType", "Patient", "id", "p", "identifier", "system",
                               "urn:x", "value", "1", "name", "family", "Old", "active", 1);
    json_t *incoming = json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s}],s:[{s:s}],s:s}", "resourceType", "Patient", "identifier", "system", "urn:x",
                                 "value", "1", "system", "urn:y", "value", "2", "name", "family", "New", "gender", "female");
    json_t *merged = hl7_patient_merge(stored, incoming);
    assert_string_equal(str_at(merged, "name.0.family"), "New");
    assert_string_equal(str_at(merged, "gender"), "female");
    assert_int_equal(json_array_size(json_object_get(merged, "identifier")), 2);
    assert_true(json_is_true(json_object_get(merged, "active")));
    assert_string_equal(str_at(merged, "id"), "p");
    json_decref(stored);
    json_decref(incoming);
    json_decref(merged);
}

static void test_identifiers(void **state)
{
    char *s = hl7_system_uri("NS", "1.2.840", "ISO", "FAC");
    assert_string_equal(s, "urn:oid:1.2.840");
    free(s);
    s = hl7_system_uri("NS", "http://x.org/ids", "URI", "FAC");
    assert_string_equal(s, "http://x.org/ids");
    free(s);
    s = hl7_system_uri("My NS", NULL, NULL, "FAC");
    assert_string_equal(s, "urn:fhirsched:hl7v2:My%20NS");
    free(s);
    s = hl7_system_uri(NULL, NULL, NULL, "FAC");
    assert_string_equal(s, "urn:fhirsched:hl7v2:FAC");
    free(s);
    json_t *ids = json_pack("[{s:s,s:s},{s:s,s:s}]", "system", "urn:a", "value", "1,2", "system", "urn:b", "value", "x|y");
    char *q = hl7_identifier_query(ids);
    assert_string_equal(q, "identifier=urn:a|1%5C,2,urn:b|x%5C|y");
    free(q);
    json_decref(ids);
}

static void test_acks(void **state)
{
    hl7_msg_t *m = parse("MSH|^~\\&|APP|FAC|US|OURS|20260101000000||SIU^S12^SIU_S12|CTRL1|P|2.5.1\rSCH|1|2\r");
    hl7_issue_t issue;
    hl7_issue_set(&issue, 207, "", "Appointment conflict: Practitioner/p is already booked or held then");
    char *ack = hl7_ack_build(m, NULL, 0, HL7_ACK_AE, &issue, 1, "FHIRSCHED", "FHIRSCHED", "A1");
    assert_non_null(strstr(ack, "MSH|^~\\&|US|OURS|APP|FAC|"));
    assert_non_null(strstr(ack, "||ACK^S12^ACK|A1|P|2.5.1\r"));
    assert_non_null(strstr(ack, "\rMSA|AE|CTRL1\r"));
    assert_non_null(strstr(ack, "\rERR|||207^Application internal error^HL70357|E||||Appointment conflict: Practitioner/p"));
    free(ack);
    hl7_free(m);
    /* v2.3: ERR-1 and MSA-3 */
    m = parse("MSH|^~\\&|APP|FAC|||20260101000000||SIU^S12|C2|P|2.3\rSCH|1|2\r");
    hl7_issue_set(&issue, 101, "SCH^1^11", "no start");
    ack = hl7_ack_build(m, NULL, 0, HL7_ACK_AE, &issue, 1, "FHIRSCHED", "FHIRSCHED", "A2");
    assert_non_null(strstr(ack, "MSH|^~\\&|FHIRSCHED|FHIRSCHED|APP|FAC|"));
    assert_non_null(strstr(ack, "\rMSA|AE|C2|no start\r"));
    assert_non_null(strstr(ack, "\rERR|SCH^1^11^101&Required field missing&HL70357\r"));
    free(ack);
    hl7_free(m);
    /* unparseable: addressed from what can be peeked */
    const char *raw = "MSH|^~\\&|APP|FAC|R|F|20260101||SIU^S12|C3|P|2.2\r";
    hl7_issue_set(&issue, 203, "MSH^1^12", "version 2.2 is not supported");
    ack = hl7_ack_build(NULL, raw, strlen(raw), HL7_ACK_AR, &issue, 1, "FHIRSCHED", "FHIRSCHED", "A3");
    assert_non_null(strstr(ack, "\rMSA|AR|C3"));
    assert_non_null(strstr(ack, "MSH|^~\\&|R|F|APP|FAC|"));  /* addressed back from the first line */
    assert_non_null(strstr(ack, "||ACK^S12^ACK|A3|P|2.2"));  /* its event and version */
    free(ack);
    const char *utf16 = "MSH|^~\\&|APP|FAC|R|F|20260101||ADT^A04|C4|P|2.5||||||UNICODE UTF-16\rPID|1";
    hl7_issue_set(&issue, 207, "MSH^1^18", "character set");
    ack = hl7_ack_build(NULL, utf16, strlen(utf16), HL7_ACK_AR, &issue, 1, "FHIRSCHED", "FHIRSCHED", "A4");
    assert_non_null(strstr(ack, "|ACK^A04^ACK|A4|P|2.5||||||UNICODE UTF-16\r")); /* answered in the set it named */
    free(ack);
}

static void test_endpoints_and_render(void **state)
{
    hl7_endpoint_t *eps;
    size_t n;
    char err[256];
    assert_int_equal(hl7_endpoints_parse("mllp://10.0.0.5:2576?name=legacy&receiving_application=EPIC&events=S12,S15;"
                                         " mllp://127.0.0.1:2577?version=2.3",
                                         "FHIRSCHED", "CLINIC", &eps, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(eps[0].name, "legacy");
    assert_string_equal(eps[0].host, "10.0.0.5");
    assert_int_equal(eps[0].port, 2576);
    assert_int_equal(eps[0].nevents, 2);
    assert_string_equal(eps[1].name, "127.0.0.1:2577");
    assert_string_equal(eps[1].version, "2.3");
    assert_string_equal(eps[1].sending_facility, "CLINIC");

    json_t *a = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:[{s:{s:s},s:s},{s:{s:s},s:s}],s:[{s:[{s:s,s:s}]}]}", "resourceType", "Appointment",
                          "id", "ap1", "status", "booked", "start", "2026-03-02T09:00:00Z", "end", "2026-03-02T09:30:00Z",
                          "minutesDuration", 30, "participant", "actor", "reference", "Patient/pt", "status", "accepted", "actor",
                          "reference", "Practitioner/pr", "status", "accepted", "serviceType", "coding", "system",
                          "http://snomed.info/sct", "code", "11429006");
    json_t *refs = json_pack("{s:{s:s,s:[{s:s,s:s}],s:[{s:s,s:[s]}],s:s},s:{s:s,s:[{s:s}]}}", "Patient/pt", "resourceType", "Patient",
                             "identifier", "system", "urn:fhirsched:hl7v2:HOSP", "value", "42", "name", "family", "Doe", "given",
                             "Jane", "gender", "female", "Practitioner/pr", "resourceType", "Practitioner", "name", "family", "Smith");
    hl7_render_in_t in = {&eps[0], "S12", "FS7", 1767225600, a, refs};
    char *siu = hl7_render_siu(&in);
    hl7_msg_t *m = parse(siu);
    assert_string_equal(hl7_message_code(m), "SIU");
    assert_string_equal(hl7_trigger_event(m), "S12");
    assert_string_equal(hl7_control_id(m), "FS7");
    long sch = hl7_find(m, "SCH", 0), tq1 = hl7_find(m, "TQ1", 0), pid = hl7_find(m, "PID", 0), aip = hl7_find(m, "AIP", 0);
    assert_true(sch > 0 && tq1 > 0 && pid > 0 && aip > 0);
    assert_string_equal(hl7_val(m, (size_t)sch, 2, 1), "ap1");
    assert_string_equal(hl7_val(m, (size_t)sch, 11, 4), "20260302090000+0000");
    assert_string_equal(hl7_val(m, (size_t)tq1, 7, 1), "20260302090000+0000");
    assert_string_equal(hl7_val(m, (size_t)pid, 3, 1), "42");
    assert_string_equal(hl7_val(m, (size_t)pid, 3, 4), "HOSP");
    assert_string_equal(hl7_val(m, (size_t)pid, 5, 1), "Doe");
    assert_string_equal(hl7_val(m, (size_t)aip, 3, 2), "Smith");
    hl7_free(m);
    free(siu);
    /* v2.3: timing in SCH-11 only */
    in.endpoint = &eps[1];
    siu = hl7_render_siu(&in);
    m = parse(siu);
    assert_int_equal(hl7_find(m, "TQ1", 0), -1);
    hl7_free(m);
    free(siu);
    json_decref(a);
    json_decref(refs);
    hl7_endpoints_free(eps, n);

    assert_int_equal(hl7_endpoints_parse("http://x:1", "A", "B", &eps, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "mllp://"));
    assert_int_equal(hl7_endpoints_parse("mllp://x:1?events=S99", "A", "B", &eps, &n, err, sizeof(err)), -1);
    assert_int_equal(hl7_endpoints_parse("mllp://x:1?colour=red", "A", "B", &eps, &n, err, sizeof(err)), -1);
    assert_int_equal(hl7_endpoints_parse("mllp://x:1 mllp://x:1", "A", "B", &eps, &n, err, sizeof(err)), -1);
    assert_int_equal(hl7_endpoints_parse("mllp://x", "A", "B", &eps, &n, err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siu_s12_v23),  cmocka_unit_test(test_siu_tq1_v28), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_adt_and_merge), cmocka_unit_test(test_identifiers), cmocka_unit_test(test_acks),
        cmocka_unit_test(test_endpoints_and_render),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

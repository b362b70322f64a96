/* Unit tests for src/fhir/validate.c: the generated tables, primitive formats, invariants and expressions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/schema_gen.h"
#include "fhir/validate.h"
#include "util/str.h"

#ifndef FHIRSCHED_SOURCE_DIR
#define FHIRSCHED_SOURCE_DIR "."
#endif
#define EXAMPLES_DIR FHIRSCHED_SOURCE_DIR "/conformance/fhir-r4-examples"

/* Test documents are written with single quotes for readability; this turns them into JSON. */
static json_t *parse(const char *text)
{
    char *copy = util_xstrdup(text);
    for (char *p = copy; *p != '\0'; ++p)
        if (*p == '\'')
            *p = '"';
    json_error_t err;
    json_t *json = json_loads(copy, JSON_REJECT_DUPLICATES, &err);
    if (json == NULL)
        fail_msg("bad test JSON at column %d: %s\n%s", err.column, err.text, copy);
    free(copy);
    return json;
}

static void print_outcome(const fhir_outcome_t *oo)
{
    for (size_t i = 0; i != oo->count; ++i)
        print_message("  issue: %s %s: %s\n", oo->issues[i].code, oo->issues[i].expression ? oo->issues[i].expression : "(none)",
                      oo->issues[i].diagnostics);
}

static int find_issue(const fhir_outcome_t *oo, const char *code, const char *expression)
{
    for (size_t i = 0; i != oo->count; ++i) {
        const fhir_issue_t *issue = &oo->issues[i];
        if (strcmp(issue->code, code) != 0 || issue->severity != FHIR_SEV_ERROR)
            continue;
        if (expression == NULL ? issue->expression == NULL
                               : issue->expression != NULL && strcmp(issue->expression, expression) == 0)
            return (int)i;
    }
    return -1;
}

/* The document must pass without any issue. */
static void expect_valid(const char *text)
{
    json_t *json = parse(text);
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    int rc = fhir_validate_resource(json, &oo);
    if (rc != 0 || oo.count != 0) {
        print_outcome(&oo);
        fail_msg("expected valid: %s", text);
    }
    fhir_outcome_dispose(&oo);
    json_decref(json);
}

/* The document must fail with exactly `count` issues, one of them `code` at `expression`. */
static void expect_issues(const char *text, size_t count, const char *code, const char *expression)
{
    json_t *json = parse(text);
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    int rc = fhir_validate_resource(json, &oo);
    if (rc != -1 || find_issue(&oo, code, expression) < 0 || (count != 0 && oo.count != count)) {
        print_outcome(&oo);
        fail_msg("expected %s at %s (%zu issues) for: %s", code, expression ? expression : "(none)", count, text);
    }
    fhir_outcome_dispose(&oo);
    json_decref(json);
}

/* Shorthand: exactly one issue. */
static void expect_issue(const char *text, const char *code, const char *expression)
{
    expect_issues(text, 1, code, expression);
}

#define APPT_HEAD "{'resourceType':'Appointment','status':'booked','start':'2024-03-01T09:00:00Z','end':'2024-03-01T09:30:00Z',"
#define APPT_PART "'participant':[{'actor':{'reference':'Patient/1'},'status':'accepted'}]"

/* ---- official examples ---- */

static void test_official_examples_pass(void **state)
{
    DIR *dir = opendir(EXAMPLES_DIR);
    assert_non_null(dir);
    int validated = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        char *file = util_asprintf("%s/%s", EXAMPLES_DIR, de->d_name);
        json_error_t err;
        json_t *json = json_load_file(file, JSON_REJECT_DUPLICATES, &err);
        assert_non_null(json);
        fhir_outcome_t oo;
        fhir_outcome_init(&oo);
        if (fhir_validate_resource(json, &oo) != 0 || oo.count != 0) {
            print_outcome(&oo);
            fail_msg("official example %s does not validate", de->d_name);
        }
        ++validated;
        fhir_outcome_dispose(&oo);
        json_decref(json);
        free(file);
    }
    closedir(dir);
    /* at least one example of each stored type (Appointment ... Subscription) */
    assert_true(validated >= 10);
}

static void test_named_examples_pass(void **state)
{
    static const char *const files[] = {
        "appointment-example.json", "appointment-example-request.json", "slot-example-busy.json", "schedule-example.json",
        "patient-example.json",     "practitionerrole-example.json",    "location-example.json",  "subscription-example.json"};
    for (size_t i = 0; i != sizeof(files) / sizeof(files[0]); ++i) {
        char *file = util_asprintf("%s/%s", EXAMPLES_DIR, files[i]);
        json_t *json = json_load_file(file, 0, NULL);
        assert_non_null(json);
        fhir_outcome_t oo;
        fhir_outcome_init(&oo);
        assert_int_equal(fhir_validate_resource(json, &oo), 0);
        assert_int_equal(oo.count, 0);
        fhir_outcome_dispose(&oo);
        json_decref(json);
        free(file);
    }
}

/* ---- resource level ---- */

static void test_resource_type(void **state)
{
    expect_issue("[1]", "structure", NULL);
    expect_issue("{'id':'x'}", "required", NULL);
    expect_issue("{'resourceType':''}", "required", NULL);
    expect_issue("{'resourceType':7}", "required", NULL);
    expect_issue("{'resourceType':'Observation','status':'final'}", "not-supported", NULL);
    expect_issue("{'resourceType':'NoSuchThing'}", "not-supported", NULL);
    /* package extension types beyond R4 are not accepted */
    expect_issue("{'resourceType':'SubscriptionStatus'}", "not-supported", NULL);

    /* an unknown type name is never echoed; a real one is */
    json_t *json = parse("{'resourceType':'PatientSECRET'}");
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    assert_int_equal(fhir_validate_resource(json, &oo), -1);
    assert_null(strstr(oo.issues[0].diagnostics, "SECRET"));
    fhir_outcome_dispose(&oo);
    json_decref(json);

    expect_valid("{'resourceType':'Patient'}");
    expect_valid("{'resourceType':'OperationOutcome','issue':[{'severity':'error','code':'invalid'}]}");
    expect_valid(
        "{'resourceType':'CapabilityStatement','status':'active','date':'2024-01-01','kind':'instance','fhirVersion':'4.0.1',"
        "'format':['json'],'rest':[{'mode':'server','resource':[{'type':'Slot','interaction':[{'code':'read'}],"
        "'searchParam':[{'name':'start','type':'date'}]}]}]}");
}

static void test_resource_id(void **state)
{
    expect_valid("{'resourceType':'Patient','id':'a-B.9'}");
    expect_issue("{'resourceType':'Patient','id':'a_b'}", "value", "Patient.id");
    expect_issue("{'resourceType':'Patient','id':'"
                 "12345678901234567890123456789012345678901234567890123456789012345'}",
                 "value", "Patient.id");
    expect_issue("{'resourceType':'Patient','id':''}", "structure", "Patient.id");
    expect_issue("{'resourceType':'Patient','id':5}", "structure", "Patient.id");
    /* Resource.id and Element.id are XML attributes: no "_id" */
    expect_issue("{'resourceType':'Patient','_id':{'extension':[{'url':'http://x','valueString':'y'}]}}", "structure",
                 "Patient._id");
    expect_issue("{'resourceType':'Patient','name':[{'family':'X','_id':{}}]}", "structure", "Patient.name[0]._id");
    expect_valid("{'resourceType':'Patient','name':[{'id':'n1','family':'X'}]}");
}

static void test_unknown_elements(void **state)
{
    expect_issue("{'resourceType':'Patient','foo':1}", "structure", "Patient.foo");
    expect_issue("{'resourceType':'Patient','name':[{'family':'X','bar':'y'}]}", "structure", "Patient.name[0].bar");
    expect_issue("{'resourceType':'Patient','name':[{'family':'X','resourceType':'HumanName'}]}", "structure",
                 "Patient.name[0].resourceType");
    expect_issue("{'resourceType':'Patient','meta':{'project':'p1'}}", "structure", "Patient.meta.project");
    /* choice names are only the expanded forms */
    expect_issue("{'resourceType':'Patient','deceased':true}", "structure", "Patient.deceased");
    expect_issue("{'resourceType':'Patient','deceasedString':'x'}", "structure", "Patient.deceasedString");
    /* odd property names are reduced to identifier characters in the expression */
    expect_issue("{'resourceType':'Patient','a b.c':1}", "structure", "Patient.a?b?c");
    /* case matters */
    expect_issue("{'resourceType':'Patient','BirthDate':'2000-01-01'}", "structure", "Patient.BirthDate");
}

/* ---- cardinality ---- */

static void test_cardinality(void **state)
{
    expect_valid(APPT_HEAD APPT_PART "}");
    expect_issue("{'resourceType':'Appointment','start':'2024-03-01T09:00:00Z','end':'2024-03-01T09:30:00Z'," APPT_PART "}",
                 "required", "Appointment.status");
    expect_issue(APPT_HEAD "'participant':[{'actor':{'reference':'Patient/1'}}]}", "required", "Appointment.participant[0].status");
    expect_issue("{'resourceType':'Appointment','status':'proposed'}", "required", "Appointment.participant");
    /* a max-1 element given as an array, and a repeating one given as a single value */
    expect_issue(APPT_HEAD APPT_PART ",'description':['a']}", "structure", "Appointment.description");
    expect_issue(
        "{'resourceType':'Appointment','status':['booked'],'start':'2024-03-01T09:00:00Z','end':'2024-03-01T09:30:00Z'," APPT_PART
        "}",
        "structure", "Appointment.status");
    expect_issue(APPT_HEAD APPT_PART ",'identifier':{'value':'1'}}", "structure", "Appointment.identifier");
    expect_issue(APPT_HEAD "'participant':{'actor':{'reference':'Patient/1'},'status':'accepted'}}", "structure",
                 "Appointment.participant");
    /* required element inside a datatype */
    expect_issue("{'resourceType':'Patient','text':{'div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>x</div>'}}", "required",
                 "Patient.text.status");
    expect_issue("{'resourceType':'Bundle','type':'collection','link':[{'url':'http://x'}]}", "required",
                 "Bundle.link[0].relation");
}

static void test_empty_and_null(void **state)
{
    expect_issue("{'resourceType':'Patient','name':[]}", "structure", "Patient.name");
    expect_issue("{'resourceType':'Patient','name':[{}]}", "structure", "Patient.name[0]");
    expect_issue("{'resourceType':'Patient','maritalStatus':{}}", "structure", "Patient.maritalStatus");
    expect_issue("{'resourceType':'Patient','maritalStatus':{'id':'m'}}", "structure", "Patient.maritalStatus");
    expect_issue("{'resourceType':'Patient','gender':''}", "structure", "Patient.gender");
    expect_issue("{'resourceType':'Patient','name':[{'given':['']}]}", "structure", "Patient.name[0].given[0]");
    expect_issue("{'resourceType':'Patient','gender':null}", "structure", "Patient.gender");
    expect_issue("{'resourceType':'Patient','name':[null]}", "structure", "Patient.name[0]");
    expect_issue("{'resourceType':'Patient','name':[{'given':['A',null]}]}", "structure", "Patient.name[0].given[1]");
}

/* ---- JSON types ---- */

static void test_json_types(void **state)
{
    expect_issue("{'resourceType':'Patient','active':'true'}", "structure", "Patient.active");
    expect_issue("{'resourceType':'Patient','gender':1}", "structure", "Patient.gender");
    expect_issue("{'resourceType':'Patient','birthDate':20000101}", "structure", "Patient.birthDate");
    expect_issue("{'resourceType':'Patient','name':['Smith']}", "structure", "Patient.name[0]");
    expect_issue("{'resourceType':'Patient','name':[{'family':['Smith']}]}", "structure", "Patient.name[0].family");
    expect_issue("{'resourceType':'Patient','multipleBirthInteger':'2'}", "structure", "Patient.multipleBirthInteger");
    expect_issue("{'resourceType':'Patient','multipleBirthInteger':2.5}", "structure", "Patient.multipleBirthInteger");
    expect_valid("{'resourceType':'Patient','multipleBirthInteger':-3}");
    expect_issue("{'resourceType':'Patient','multipleBirthInteger':2147483648}", "value", "Patient.multipleBirthInteger");
    expect_valid("{'resourceType':'Patient','multipleBirthInteger':-2147483648}");
    /* positiveInt and unsignedInt ranges */
    expect_issue(APPT_HEAD APPT_PART ",'minutesDuration':0}", "value", "Appointment.minutesDuration");
    expect_valid(APPT_HEAD APPT_PART ",'minutesDuration':30,'priority':0}");
    expect_issue(APPT_HEAD APPT_PART ",'priority':-1}", "value", "Appointment.priority");
    /* decimal takes any JSON number, never a string */
    expect_valid("{'resourceType':'Location','position':{'longitude':-83.6945691,'latitude':42,'altitude':0}}");
    expect_issue("{'resourceType':'Location','position':{'longitude':'-83.69','latitude':42}}", "structure",
                 "Location.position.longitude");
    expect_issue("{'resourceType':'Location','position':{'longitude':true,'latitude':42}}", "structure",
                 "Location.position.longitude");
}

/* ---- primitive formats ---- */

static int prim(const char *type, const char *text)
{
    return fhir_primitive_is_valid(type, text, strlen(text));
}

static void test_primitive_dates(void **state)
{
    assert_true(prim("date", "2024"));
    assert_true(prim("date", "2024-02"));
    assert_true(prim("date", "2024-02-29")); /* leap day */
    assert_true(prim("date", "2000-02-29")); /* divisible by 400 */
    assert_false(prim("date", "2023-02-29"));
    assert_false(prim("date", "1900-02-29")); /* divisible by 100 */
    assert_false(prim("date", "2024-04-31"));
    assert_false(prim("date", "2024-13"));
    assert_false(prim("date", "2024-00"));
    assert_false(prim("date", "2024-01-00"));
    assert_false(prim("date", "0000"));
    assert_false(prim("date", "24-01-01"));
    assert_false(prim("date", "2024-1-01"));
    assert_false(prim("date", "2024-01-01T10:00:00Z"));
    assert_false(prim("date", ""));

    assert_true(prim("dateTime", "2024"));
    assert_true(prim("dateTime", "2024-02-29"));
    assert_true(prim("dateTime", "2024-02-29T23:59:60Z")); /* leap second */
    assert_true(prim("dateTime", "2024-02-29T10:00:00.123456789+14:00"));
    assert_true(prim("dateTime", "2024-02-29T10:00:00-13:59"));
    assert_false(prim("dateTime", "2024-02-29T10:00:00")); /* a time needs a zone */
    assert_false(prim("dateTime", "2024-02-29T10:00Z"));   /* and seconds */
    assert_false(prim("dateTime", "2024-02-29T24:00:00Z"));
    assert_false(prim("dateTime", "2024-02-29T10:60:00Z"));
    assert_false(prim("dateTime", "2024-02-29T10:00:61Z"));
    assert_false(prim("dateTime", "2024-02-29T10:00:00+14:30"));
    assert_false(prim("dateTime", "2024-02-29T10:00:00+1400"));
    assert_false(prim("dateTime", "2024-02-29T10:00:00.Z"));
    assert_false(prim("dateTime", "2024-02T10:00:00Z"));
    assert_false(prim("dateTime", "2023-02-29T10:00:00Z"));
    assert_false(prim("dateTime", "2024-02-29 10:00:00Z"));

    assert_true(prim("instant", "2024-03-01T09:00:00Z"));
    assert_true(prim("instant", "2024-03-01T09:00:00.5-05:00"));
    assert_false(prim("instant", "2024-03-01T09:00:00")); /* no zone */
    assert_false(prim("instant", "2024-03-01T09:00Z"));   /* no seconds */
    assert_false(prim("instant", "2024-03-01"));
    assert_false(prim("instant", "2024-02-30T09:00:00Z"));

    assert_true(prim("time", "00:00:00"));
    assert_true(prim("time", "23:59:59.999"));
    assert_false(prim("time", "24:00:00"));
    assert_false(prim("time", "10:00"));
    assert_false(prim("time", "10:00:00Z"));
}

static void test_primitive_numbers(void **state)
{
    assert_true(prim("integer", "0"));
    assert_true(prim("integer", "-2147483648"));
    assert_true(prim("integer", "2147483647"));
    assert_false(prim("integer", "2147483648"));
    assert_false(prim("integer", "01"));
    assert_false(prim("integer", "1.0"));
    assert_false(prim("integer", "+1"));
    assert_false(prim("integer", "-"));
    assert_false(prim("integer", ""));

    assert_true(prim("unsignedInt", "0"));
    assert_true(prim("unsignedInt", "2147483647"));
    assert_false(prim("unsignedInt", "-1"));
    assert_false(prim("unsignedInt", "2147483648"));

    assert_true(prim("positiveInt", "1"));
    assert_true(prim("positiveInt", "+7"));
    assert_false(prim("positiveInt", "0"));
    assert_false(prim("positiveInt", "-1"));
    assert_false(prim("positiveInt", "99999999999"));

    assert_true(prim("decimal", "0"));
    assert_true(prim("decimal", "-0.5"));
    assert_true(prim("decimal", "1.50"));
    assert_true(prim("decimal", "6.02E23"));
    assert_true(prim("decimal", "1e-3"));
    assert_false(prim("decimal", ".5"));
    assert_false(prim("decimal", "1."));
    assert_false(prim("decimal", "01"));
    assert_false(prim("decimal", "1e"));
    assert_false(prim("decimal", "NaN"));

    assert_true(prim("boolean", "true"));
    assert_true(prim("boolean", "false"));
    assert_false(prim("boolean", "True"));
    assert_false(prim("boolean", "1"));
}

static void test_primitive_strings(void **state)
{
    assert_true(prim("id", "abc-DEF.123"));
    assert_false(prim("id", "a b"));
    assert_false(prim("id", "a/b"));
    assert_true(fhir_id_is_valid("x", 1));
    assert_true(fhir_id_is_valid("1234567890123456789012345678901234567890123456789012345678901234", 64));
    assert_false(fhir_id_is_valid("12345678901234567890123456789012345678901234567890123456789012345", 65));
    assert_false(fhir_id_is_valid("", 0));
    assert_false(fhir_id_is_valid("a_b", 3));

    assert_true(prim("code", "booked"));
    assert_true(prim("code", "two words"));
    assert_false(prim("code", " booked"));
    assert_false(prim("code", "booked "));
    assert_false(prim("code", "two  words"));

    assert_true(prim("uri", "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7"));
    assert_true(prim("uri", "#contained"));
    assert_false(prim("uri", "http://x y"));
    assert_false(prim("uri", ""));
    assert_true(prim("url", "https://example.org/fhir"));
    assert_false(prim("url", "https://example.org/ fhir"));
    assert_true(prim("canonical", "http://hl7.org/fhir/StructureDefinition/Patient|4.0.1"));
    assert_false(prim("canonical", "http://hl7.org/fhir/ StructureDefinition"));

    assert_true(prim("oid", "urn:oid:1.2.840.113619"));
    assert_true(prim("oid", "urn:oid:2.0"));
    assert_false(prim("oid", "urn:oid:3.1"));
    assert_false(prim("oid", "urn:oid:1"));
    assert_false(prim("oid", "urn:oid:1.02"));
    assert_false(prim("oid", "1.2.3"));
    assert_false(prim("oid", "urn:oid:1.2."));

    assert_true(prim("uuid", "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7"));
    assert_false(prim("uuid", "urn:uuid:53FEFA32-FCBB-4FF8-8A92-55EE120877B7"));
    assert_false(prim("uuid", "53fefa32-fcbb-4ff8-8a92-55ee120877b7"));
    assert_false(prim("uuid", "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b"));

    assert_true(prim("base64Binary", "SGVsbG8="));
    assert_true(prim("base64Binary", "SGVs bG8h\n"));
    assert_true(prim("base64Binary", "SA=="));
    assert_false(prim("base64Binary", "SGVsbG8"));
    assert_false(prim("base64Binary", "SG=sbG8="));
    assert_false(prim("base64Binary", "S==="));
    assert_false(prim("base64Binary", "SGVs*G8="));

    assert_true(prim("string", "Ann"));
    assert_true(prim("string", " leading and trailing "));
    assert_true(prim("string", "line\nbreak\ttab"));
    assert_false(prim("string", ""));
    assert_false(prim("string", "   "));
    assert_false(prim("string", "bell\a"));
    assert_true(prim("markdown", "# Title\n\n*text*"));
    assert_false(prim("markdown", ""));

    size_t big = 1024 * 1024 + 1;
    char *s = util_xmalloc(big + 1);
    memset(s, 'a', big);
    s[big] = '\0';
    assert_false(fhir_primitive_is_valid("string", s, big));
    assert_true(fhir_primitive_is_valid("string", s, big - 1));
    free(s);

    assert_true(prim("xhtml", "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"));
    assert_false(prim("xhtml", "plain text"));

    assert_false(prim("noSuchType", "x"));
    assert_false(prim("HumanName", "x"));
}

static void test_primitive_values_in_resources(void **state)
{
    expect_issue("{'resourceType':'Patient','birthDate':'2023-02-29'}", "value", "Patient.birthDate");
    expect_valid("{'resourceType':'Patient','birthDate':'2024-02-29'}");
    expect_issue("{'resourceType':'Patient','deceasedDateTime':'2024-02-29T10:00:00'}", "value", "Patient.deceasedDateTime");
    expect_issue(APPT_HEAD APPT_PART ",'created':'2024-13-01'}", "value", "Appointment.created");
    expect_issue("{'resourceType':'Slot','schedule':{'reference':'Schedule/1'},'status':'free','start':'2024-03-01T09:00:00',"
                 "'end':'2024-03-01T09:30:00Z'}",
                 "value", "Slot.start");
    expect_issue("{'resourceType':'Patient','telecom':[{'system':'url','value':'http://a b'}],'photo':[{'url':'x y'}]}", "value",
                 "Patient.photo[0].url");
    expect_issue("{'resourceType':'Patient','photo':[{'data':'not base64!'}]}", "value", "Patient.photo[0].data");
    expect_issue("{'resourceType':'Patient','identifier':[{'system':'urn: x','value':'1'}]}", "value",
                 "Patient.identifier[0].system");
    expect_issue("{'resourceType':'Patient','name':[{'family':'   '}]}", "value", "Patient.name[0].family");
    expect_issue("{'resourceType':'Patient','text':{'status':'generated','div':'no markup'}}", "value", "Patient.text.div");
    expect_issue("{'resourceType':'Patient','text':{'status':'generated','div':'<div>x</div>','_div':{'id':'d'}}}", "structure",
                 "Patient.text._div");

    /* diagnostics never carry the offending value of a string */
    json_t *json = parse("{'resourceType':'Patient','birthDate':'SECRET-1234','name':[{'family':' \\u0001SECRET'}]}");
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    assert_int_equal(fhir_validate_resource(json, &oo), -1);
    assert_int_equal(oo.count, 2);
    for (size_t i = 0; i != oo.count; ++i)
        assert_null(strstr(oo.issues[i].diagnostics, "SECRET"));
    fhir_outcome_dispose(&oo);
    json_decref(json);
}

/* ---- required bindings ---- */

static void test_required_codes(void **state)
{
    expect_issue(
        "{'resourceType':'Appointment','status':'foo','start':'2024-03-01T09:00:00Z','end':'2024-03-01T09:30:00Z'," APPT_PART "}",
        "code-invalid", "Appointment.status");
    expect_issue("{'resourceType':'Slot','schedule':{'reference':'Schedule/1'},'status':'open','start':'2024-03-01T09:00:00Z',"
                 "'end':'2024-03-01T09:30:00Z'}",
                 "code-invalid", "Slot.status");
    expect_valid("{'resourceType':'Slot','schedule':{'reference':'Schedule/1'},'status':'busy-tentative',"
                 "'start':'2024-03-01T09:00:00Z','end':'2024-03-01T09:30:00Z'}");
    expect_issue(APPT_HEAD "'participant':[{'actor':{'reference':'Patient/1'},'status':'accepted'},"
                           "{'actor':{'reference':'Practitioner/2'},'status':'maybe'}]}",
                 "code-invalid", "Appointment.participant[1].status");
    expect_issue("{'resourceType':'Patient','gender':'Female'}", "code-invalid", "Patient.gender");
    expect_issue("{'resourceType':'Patient','identifier':[{'use':'primary','value':'1'}]}", "code-invalid",
                 "Patient.identifier[0].use");
    expect_issue("{'resourceType':'PractitionerRole','availableTime':[{'daysOfWeek':['mon','funday']}]}", "code-invalid",
                 "PractitionerRole.availableTime[0].daysOfWeek[1]");
    /* nested concepts of a code system are codes too (issue-type: invalid > structure) */
    expect_valid("{'resourceType':'OperationOutcome','issue':[{'severity':'error','code':'structure'}]}");
    /* codes of the v3 part of event-timing, and of units-of-time */
    expect_valid("{'resourceType':'Patient','extension':[{'url':'http://x','valueTiming':{'repeat':{'when':['HS','MORN'],"
                 "'periodUnit':'wk','period':1}}}]}");
    /* external terminologies (mime types) are not enumerated, so any well-formed code passes */
    expect_valid("{'resourceType':'Patient','photo':[{'contentType':'image/x-anything'}]}");

    /* the code is quoted (it is a code, not free text), clipped and reduced to printable ASCII */
    json_t *json =
        parse("{'resourceType':'Patient','gender':'a\\u00e9\\u0007xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'}");
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    assert_int_equal(fhir_validate_resource(json, &oo), -1);
    assert_string_equal(oo.issues[0].code, "value"); /* control character: not a valid code at all */
    fhir_outcome_dispose(&oo);
    json_decref(json);
    json = parse("{'resourceType':'Patient','gender':'a\\u00e9xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'}");
    fhir_outcome_init(&oo);
    assert_int_equal(fhir_validate_resource(json, &oo), -1);
    assert_string_equal(oo.issues[0].code, "code-invalid");
    assert_non_null(strstr(oo.issues[0].diagnostics, "'a??xxx"));
    assert_non_null(strstr(oo.issues[0].diagnostics, "...'"));
    fhir_outcome_dispose(&oo);
    json_decref(json);
}

/* ---- choice types ---- */

static void test_choice_types(void **state)
{
    expect_valid("{'resourceType':'Patient','deceasedBoolean':false,'multipleBirthInteger':2}");
    expect_valid("{'resourceType':'Patient','deceasedDateTime':'2024-01-01T10:00:00+01:00'}");
    expect_issue("{'resourceType':'Patient','deceasedBoolean':false,'deceasedDateTime':'2024-01-01'}", "structure",
                 "Patient.deceasedDateTime");
    expect_issue("{'resourceType':'Patient','deceasedBoolean':'no'}", "structure", "Patient.deceasedBoolean");
    expect_valid("{'resourceType':'Patient','extension':[{'url':'http://x','valueCodeableConcept':{'text':'t'}}]}");
    expect_issue("{'resourceType':'Patient','extension':[{'url':'http://x','valueString':'a','valueCode':'b'}]}", "structure",
                 "Patient.extension[0].valueCode");
    expect_issue("{'resourceType':'Patient','extension':[{'url':'http://x','valueQuantity':{'value':'1'}}]}", "structure",
                 "Patient.extension[0].valueQuantity.value");
    /* an unknown form is not a value, so ext-1 fails as well */
    expect_issues("{'resourceType':'Patient','extension':[{'url':'http://x','valueFoo':1}]}", 2, "structure",
                  "Patient.extension[0].valueFoo");
    /* one form with its own "_" sibling is still one form */
    expect_valid("{'resourceType':'Patient','extension':[{'url':'http://x','valueString':'a','_valueString':{'id':'v'}}]}");
    expect_valid("{'resourceType':'Parameters','parameter':[{'name':'start','valueDate':'2024-03-01'},"
                 "{'name':'p','part':[{'name':'q','valueInstant':'2024-03-01T00:00:00Z'}]}]}");
    expect_issue("{'resourceType':'Parameters','parameter':[{'name':'p','part':[{'name':'q','valueInstant':'2024-03-01'}]}]}",
                 "value", "Parameters.parameter[0].part[0].valueInstant");
}

/* ---- "_element" siblings ---- */

static void test_primitive_extensions(void **state)
{
    expect_valid("{'resourceType':'Patient','birthDate':'1970-03-30','_birthDate':{'extension':[{'url':"
                 "'http://hl7.org/fhir/StructureDefinition/patient-birthTime','valueDateTime':'1970-03-30T14:35:45-05:00'}]}}");
    /* an extension alone satisfies a required primitive */
    expect_valid("{'resourceType':'Slot','schedule':{'reference':'Schedule/1'},'_status':{'extension':[{'url':'http://x',"
                 "'valueCode':'unknown'}]},'start':'2024-03-01T09:00:00Z','end':'2024-03-01T09:30:00Z'}");
    expect_issue("{'resourceType':'Patient','_birthDate':'x'}", "structure", "Patient.birthDate");
    expect_issue("{'resourceType':'Patient','_birthDate':[{'id':'a'}]}", "structure", "Patient.birthDate");
    expect_issue("{'resourceType':'Patient','_birthDate':{}}", "structure", "Patient.birthDate");
    expect_issue("{'resourceType':'Patient','_birthDate':{'id':'b'}}", "structure", "Patient.birthDate");
    expect_valid("{'resourceType':'Patient','birthDate':'2000-01-01','_birthDate':{'id':'b'}}");
    expect_issue("{'resourceType':'Patient','birthDate':'2000-01-01','_birthDate':{'foo':1}}", "structure",
                 "Patient.birthDate.foo");
    expect_issues("{'resourceType':'Patient','_birthDate':{'foo':1}}", 2, "structure", "Patient.birthDate");
    expect_issue("{'resourceType':'Patient','_birthDate':{'extension':[{'valueString':'x'}]}}", "required",
                 "Patient.birthDate.extension[0].url");
    /* repeating primitives: arrays aligned, null where one side has nothing */
    expect_valid("{'resourceType':'Patient','name':[{'given':['Ann',null,'Lee'],'_given':[null,{'extension':[{'url':'http://x',"
                 "'valueString':'y'}]},{'id':'g3'}]}]}");
    expect_valid("{'resourceType':'Patient','name':[{'_given':[{'extension':[{'url':'http://x','valueCode':'masked'}]}]}]}");
    expect_issue("{'resourceType':'Patient','name':[{'_given':[{'id':'g1'}]}]}", "structure", "Patient.name[0].given[0]");
    expect_issue("{'resourceType':'Patient','name':[{'given':['Ann','Lee'],'_given':[null]}]}", "structure",
                 "Patient.name[0].given");
    expect_issue("{'resourceType':'Patient','name':[{'given':['Ann',null],'_given':[null,null]}]}", "structure",
                 "Patient.name[0].given[1]");
    expect_issue("{'resourceType':'Patient','name':[{'given':['Ann'],'_given':{'id':'x'}}]}", "structure", "Patient.name[0].given");
    expect_issue("{'resourceType':'Patient','name':[{'given':['Ann'],'_given':[5]}]}", "structure", "Patient.name[0].given[0]");
    expect_issue("{'resourceType':'Patient','name':[{'_given':[null]}]}", "structure", "Patient.name[0].given[0]");
    expect_issue("{'resourceType':'Patient','name':[{'given':[null],'_given':[{'id':'g'}]}]}", "structure",
                 "Patient.name[0].given[0]");
    expect_issue("{'resourceType':'Patient','name':[{'given':['Ann'],'_given':[{'id':'g','bad':1}]}]}", "structure",
                 "Patient.name[0].given[0].bad");
    /* only primitives have "_" siblings */
    expect_issue("{'resourceType':'Patient','_name':[{'id':'n'}]}", "structure", "Patient._name");
    expect_issue("{'resourceType':'Patient','_nothing':{'id':'n'}}", "structure", "Patient._nothing");
    expect_issue("{'resourceType':'Patient','extension':[{'url':'http://x','_url':{'id':'u'},'valueString':'s'}]}", "structure",
                 "Patient.extension[0]._url");
}

/* ---- extensions ---- */

static void test_extensions(void **state)
{
    expect_issue("{'resourceType':'Patient','extension':[{'valueString':'x'}]}", "required", "Patient.extension[0].url");
    expect_issue("{'resourceType':'Patient','extension':[{'url':'http://x'}]}", "invariant", "Patient.extension[0]");
    expect_issue("{'resourceType':'Patient','extension':[{'url':'http://x','valueString':'a','extension':[{'url':'y',"
                 "'valueString':'b'}]}]}",
                 "invariant", "Patient.extension[0]");
    expect_valid("{'resourceType':'Patient','extension':[{'url':'http://x','extension':[{'url':'a','valueString':'b'},"
                 "{'url':'c','valueBoolean':true}]}]}");
    expect_issue("{'resourceType':'Patient','modifierExtension':[{'url':'http://x','valueString':'a'},{'valueString':'b'}]}",
                 "required", "Patient.modifierExtension[1].url");
    expect_issue("{'resourceType':'Patient','extension':{'url':'http://x','valueString':'a'}}", "structure", "Patient.extension");
    expect_issue("{'resourceType':'Patient','extension':[{'url':'http://x y','valueString':'a'}]}", "value",
                 "Patient.extension[0].url");
    expect_issue("{'resourceType':'Patient','name':[{'family':'X','extension':[{'url':'http://x','valueString':''}]}]}",
                 "structure", "Patient.name[0].extension[0].valueString");
}

/* ---- contained and nested resources ---- */

static void test_contained(void **state)
{
    expect_valid(APPT_HEAD "'contained':[{'resourceType':'Patient','id':'p1','name':[{'family':'X'}]}],"
                           "'participant':[{'actor':{'reference':'#p1'},'status':'accepted'}]}");
    expect_issue(APPT_HEAD "'contained':[{'resourceType':'Patient','id':'p1','nope':1}]," APPT_PART "}", "structure",
                 "Appointment.contained[0].nope");
    expect_issue(APPT_HEAD "'contained':[{'resourceType':'Patient','id':'p1'},{'resourceType':'Slot','id':'s1',"
                           "'schedule':{'reference':'Schedule/1'},'status':'free','start':'2024-03-01T09:00:00Z',"
                           "'end':'2024-03-01T08:00:00Z'}]," APPT_PART "}",
                 "invariant", "Appointment.contained[1].end");
    /* R4 types without tables: only the resourceType is checked */
    expect_valid(APPT_HEAD "'contained':[{'resourceType':'Observation','id':'o1','anything':[1,2]}]," APPT_PART "}");
    expect_issue(APPT_HEAD "'contained':[{'resourceType':'Bogus','id':'o1'}]," APPT_PART "}", "structure",
                 "Appointment.contained[0]");
    expect_issue(APPT_HEAD "'contained':[{'id':'o1'}]," APPT_PART "}", "required", "Appointment.contained[0]");
    expect_issue(APPT_HEAD "'contained':['Patient']," APPT_PART "}", "structure", "Appointment.contained[0]");
    /* dom-2, dom-4 */
    expect_issue(APPT_HEAD
                 "'contained':[{'resourceType':'Patient','id':'p1','contained':[{'resourceType':'Patient','id':'p2'}]}]," APPT_PART
                 "}",
                 "invariant", "Appointment.contained[0]");
    expect_issue(APPT_HEAD "'contained':[{'resourceType':'Patient','id':'p1','meta':{'versionId':'2'}}]," APPT_PART "}",
                 "invariant", "Appointment.contained[0]");
    expect_valid(APPT_HEAD "'contained':[{'resourceType':'Patient','id':'p1','meta':{'tag':[{'code':'t'}]}}]," APPT_PART "}");
}

static void test_bundle(void **state)
{
    /* entry resources are only checked for a resourceType: the caller validates each one */
    expect_valid(
        "{'resourceType':'Bundle','type':'transaction','entry':[{'fullUrl':'urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7',"
        "'resource':{'resourceType':'Appointment','bogus':true},'request':{'method':'POST','url':'Appointment'}},"
        "{'resource':{'resourceType':'Observation'},'request':{'method':'PUT','url':'Observation/1'}}]}");
    expect_issue("{'resourceType':'Bundle','type':'transaction','entry':[{'resource':{'id':'x'},"
                 "'request':{'method':'POST','url':'Patient'}}]}",
                 "required", "Bundle.entry[0].resource");
    expect_issue(
        "{'resourceType':'Bundle','type':'transaction','entry':[{'resource':[],'request':{'method':'POST','url':'Patient'}}]}",
        "structure", "Bundle.entry[0].resource");
    expect_issue("{'resourceType':'Bundle','type':'batch','entry':[{'request':{'method':'FETCH','url':'Patient'}}]}",
                 "code-invalid", "Bundle.entry[0].request.method");
    expect_issue("{'resourceType':'Bundle','type':'bag'}", "code-invalid", "Bundle.type");
    expect_issue("{'resourceType':'Bundle','type':'searchset','total':-1}", "value", "Bundle.total");
    /* entry.link reuses Bundle.link (contentReference) */
    expect_issue("{'resourceType':'Bundle','type':'searchset','entry':[{'link':[{'url':'http://x'}]}]}", "required",
                 "Bundle.entry[0].link[0].relation");
    /* response.outcome is any resource (R4), validated as a resource */
    expect_valid("{'resourceType':'Bundle','type':'transaction-response','entry':[{'response':{'status':'201 Created',"
                 "'outcome':{'resourceType':'OperationOutcome','issue':[{'severity':'information','code':'informational'}]}}}]}");
    expect_issue("{'resourceType':'Bundle','type':'transaction-response','entry':[{'response':{'status':'400',"
                 "'outcome':{'resourceType':'OperationOutcome','issue':[{'severity':'bad','code':'invalid'}]}}}]}",
                 "code-invalid", "Bundle.entry[0].response.outcome.issue[0].severity");
    /* Parameters.parameter.resource is validated in full */
    expect_issue("{'resourceType':'Parameters','parameter':[{'name':'appointment','resource':{'resourceType':'Appointment',"
                 "'status':'proposed'}}]}",
                 "required", "Parameters.parameter[0].resource.participant");
}

/* ---- invariants ---- */

static void test_invariant_app1(void **state)
{
    expect_issue(APPT_HEAD "'participant':[{'actor':{'reference':'Patient/1'},'status':'accepted'},{'status':'needs-action'}]}",
                 "invariant", "Appointment.participant[1]");
    expect_valid(APPT_HEAD "'participant':[{'type':[{'text':'translator'}],'status':'needs-action'}]}");
}

static void test_invariant_app2_app3(void **state)
{
    /* start without end: app-2, and app-3 for a booked appointment */
    expect_issues("{'resourceType':'Appointment','status':'booked','start':'2024-03-01T09:00:00Z'," APPT_PART "}", 2, "invariant",
                  "Appointment");
    expect_issue("{'resourceType':'Appointment','status':'proposed','end':'2024-03-01T09:00:00Z'," APPT_PART "}", "invariant",
                 "Appointment");
    /* neither: fine only when proposed, cancelled or waitlist */
    expect_issue("{'resourceType':'Appointment','status':'booked'," APPT_PART "}", "invariant", "Appointment");
    expect_issue("{'resourceType':'Appointment','status':'arrived'," APPT_PART "}", "invariant", "Appointment");
    expect_valid("{'resourceType':'Appointment','status':'proposed'," APPT_PART "}");
    expect_valid("{'resourceType':'Appointment','status':'cancelled'," APPT_PART "}");
    expect_valid("{'resourceType':'Appointment','status':'waitlist'," APPT_PART "}");

    json_t *json = parse("{'resourceType':'Appointment','status':'booked','end':'2024-03-01T09:00:00Z'," APPT_PART "}");
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    assert_int_equal(fhir_validate_resource(json, &oo), -1);
    assert_int_equal(oo.count, 2);
    assert_non_null(strstr(oo.issues[0].diagnostics, "app-2"));
    assert_non_null(strstr(oo.issues[1].diagnostics, "app-3"));
    fhir_outcome_dispose(&oo);
    json_decref(json);
}

static void test_invariant_end_after_start(void **state)
{
    expect_issue(
        "{'resourceType':'Appointment','status':'booked','start':'2024-03-01T10:00:00Z','end':'2024-03-01T09:00:00Z'," APPT_PART
        "}",
        "invariant", "Appointment.end");
    expect_issue(
        "{'resourceType':'Appointment','status':'booked','start':'2024-03-01T10:00:00Z','end':'2024-03-01T10:00:00Z'," APPT_PART
        "}",
        "invariant", "Appointment.end");
    /* compared as instants: 11:00+02:00 is 09:00Z, before 10:00Z */
    expect_issue("{'resourceType':'Appointment','status':'booked','start':'2024-03-01T10:00:00Z',"
                 "'end':'2024-03-01T11:00:00+02:00'," APPT_PART "}",
                 "invariant", "Appointment.end");
    expect_valid("{'resourceType':'Appointment','status':'booked','start':'2024-03-01T10:00:00+02:00',"
                 "'end':'2024-03-01T09:00:00.001Z'," APPT_PART "}");
    expect_issue("{'resourceType':'Appointment','status':'booked','start':'2024-03-01T10:00:00.5Z',"
                 "'end':'2024-03-01T10:00:00.25Z'," APPT_PART "}",
                 "invariant", "Appointment.end");
    /* across a month and a leap day */
    expect_valid("{'resourceType':'Appointment','status':'booked','start':'2024-02-29T23:30:00Z',"
                 "'end':'2024-03-01T00:30:00+00:30'," APPT_PART "}");
    expect_issue("{'resourceType':'Slot','schedule':{'reference':'Schedule/1'},'status':'free','start':'2024-03-01T09:00:00Z',"
                 "'end':'2024-03-01T08:59:59Z'}",
                 "invariant", "Slot.end");
}

static void test_invariant_period(void **state)
{
    expect_issue("{'resourceType':'Patient','name':[{'family':'X','period':{'start':'2024-02-01','end':'2024-01-31'}}]}",
                 "invariant", "Patient.name[0].period");
    expect_issue(APPT_HEAD APPT_PART ",'requestedPeriod':[{'start':'2024-03-01'},{'start':'2024-03-05T10:00:00Z',"
                                     "'end':'2024-03-05T09:00:00Z'}]}",
                 "invariant", "Appointment.requestedPeriod[1]");
    expect_valid("{'resourceType':'Patient','name':[{'family':'X','period':{'start':'2024-02-01','end':'2024-02-01'}}]}");
    /* different precisions that agree on the common part: unknown, so accepted */
    expect_valid("{'resourceType':'Patient','name':[{'family':'X','period':{'start':'2024-02-15','end':'2024-02'}}]}");
    expect_issue("{'resourceType':'Patient','name':[{'family':'X','period':{'start':'2024-03-15','end':'2024-02'}}]}", "invariant",
                 "Patient.name[0].period");
}

/* ---- expressions and limits ---- */

static void test_expression_paths(void **state)
{
    expect_issue("{'resourceType':'Patient','name':[{'family':'A'},{'given':['B','C',7]}]}", "structure",
                 "Patient.name[1].given[2]");
    expect_issue("{'resourceType':'Patient','contact':[{'name':{'family':'A'}},{'telecom':[{'system':'pager'},"
                 "{'system':'telepathy'}]}]}",
                 "code-invalid", "Patient.contact[1].telecom[1].system");
    expect_issue("{'resourceType':'PractitionerRole','availableTime':[{'availableStartTime':'9:00:00'}]}", "value",
                 "PractitionerRole.availableTime[0].availableStartTime");
    expect_issue("{'resourceType':'Patient','meta':{'lastUpdated':'2024-01-01T00:00:00'}}", "value", "Patient.meta.lastUpdated");
    expect_issue("{'resourceType':'Patient','extension':[{'url':'http://x','valuePeriod':{'start':'2024-02-01',"
                 "'end':'2023-01-01'}}]}",
                 "invariant", "Patient.extension[0].valuePeriod");
    expect_issue("{'resourceType':'Schedule','actor':[{'reference':'Practitioner/1','identifier':{'value':''}}]}", "structure",
                 "Schedule.actor[0].identifier.value");
}

static void test_many_issues_are_capped(void **state)
{
    util_buf_t buf;
    util_buf_init(&buf);
    util_buf_puts(&buf, "{'resourceType':'Patient'");
    for (int i = 0; i != 150; ++i)
        util_buf_printf(&buf, ",'x%d':1", i);
    util_buf_puts(&buf, "}");
    json_t *json = parse(buf.base);
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    assert_int_equal(fhir_validate_resource(json, &oo), -1);
    assert_int_equal(oo.count, 101);
    assert_string_equal(oo.issues[100].code, "too-costly");
    fhir_outcome_dispose(&oo);
    json_decref(json);
    util_buf_dispose(&buf);
}

static void test_deep_nesting_is_refused(void **state)
{
    util_buf_t buf;
    util_buf_init(&buf);
    util_buf_puts(&buf, "{'resourceType':'Patient'");
    for (int i = 0; i != 200; ++i)
        util_buf_puts(&buf, ",'extension':[{'url':'u'");
    util_buf_puts(&buf, ",'valueString':'x'");
    for (int i = 0; i != 200; ++i)
        util_buf_puts(&buf, "}]");
    util_buf_puts(&buf, "}");
    json_t *json = parse(buf.base);
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    assert_int_equal(fhir_validate_resource(json, &oo), -1);
    assert_int_equal(oo.count, 1);
    assert_string_equal(oo.issues[0].code, "too-costly");
    fhir_outcome_dispose(&oo);
    json_decref(json);
    util_buf_dispose(&buf);
}

static void test_outcome_is_appended(void **state)
{
    /* a second validation adds to the same outcome, and the return value reflects only its own errors */
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    json_t *bad = parse("{'resourceType':'Patient','foo':1}");
    json_t *good = parse("{'resourceType':'Patient','active':true}");
    assert_int_equal(fhir_validate_resource(bad, &oo), -1);
    assert_int_equal(fhir_validate_resource(good, &oo), 0);
    assert_int_equal(oo.count, 1);
    json_decref(bad);
    json_decref(good);
    fhir_outcome_dispose(&oo);
}

static void test_tables_are_sorted(void **state)
{
    /* binary search depends on it */
    for (int t = 0; t != FHIR_SCHEMA_STRUCT_COUNT; ++t) {
        const fhir_schema_struct_t *st = &fhir_schema_structs[t];
        assert_true(st->slot_count <= 64);
        for (uint16_t i = 1; i < st->element_count; ++i)
            assert_true(strcmp(st->elements[i - 1].name, st->elements[i].name) < 0);
    }
    for (int v = 1; v <= FHIR_SCHEMA_VALUESET_COUNT; ++v)
        for (uint16_t i = 1; i < fhir_schema_valuesets[v].count; ++i)
            assert_true(strcmp(fhir_schema_valuesets[v].codes[i - 1], fhir_schema_valuesets[v].codes[i]) < 0);
    for (int i = 1; i != FHIR_SCHEMA_RESOURCE_COUNT; ++i)
        assert_true(strcmp(fhir_schema_resources[i - 1].name, fhir_schema_resources[i].name) < 0);
    for (int i = 1; i != FHIR_SCHEMA_ALL_RESOURCE_TYPE_COUNT; ++i)
        assert_true(strcmp(fhir_schema_all_resource_types[i - 1], fhir_schema_all_resource_types[i]) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_official_examples_pass),
        cmocka_unit_test(test_named_examples_pass),
        cmocka_unit_test(test_resource_type),
        cmocka_unit_test(test_resource_id),
        cmocka_unit_test(test_unknown_elements),
        cmocka_unit_test(test_cardinality),
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_json_types),
        cmocka_unit_test(test_primitive_dates),
        cmocka_unit_test(test_primitive_numbers),
        cmocka_unit_test(test_primitive_strings),
        cmocka_unit_test(test_primitive_values_in_resources),
        cmocka_unit_test(test_required_codes),
        cmocka_unit_test(test_choice_types),
        cmocka_unit_test(test_primitive_extensions),
        cmocka_unit_test(test_extensions),
        cmocka_unit_test(test_contained),
        cmocka_unit_test(test_bundle),
        cmocka_unit_test(test_invariant_app1),
        cmocka_unit_test(test_invariant_app2_app3),
        cmocka_unit_test(test_invariant_end_after_start),
        cmocka_unit_test(test_invariant_period),
        cmocka_unit_test(test_expression_paths),
        cmocka_unit_test(test_many_issues_are_capped),
        cmocka_unit_test(test_deep_nesting_is_refused),
        cmocka_unit_test(test_outcome_is_appended),
        cmocka_unit_test(test_tables_are_sorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

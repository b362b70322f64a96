/* Unit tests for src/fhir/subset.c: _summary and _elements on one resource, and the isSummary/min tables behind them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "fhir/schema_gen.h"
#include "fhir/subset.h"
#include "util/str.h"

#ifndef FHIRSCHED_SOURCE_DIR
#define FHIRSCHED_SOURCE_DIR "."
#endif

/* Test documents are written with single quotes for readability; this turns them into JSON. */
static json_t *parse(const char *text)
{
    char *copy = util_xstrdup(text);
    for (char *p = copy; *p != '\0'; ++p)
        if (*p == '\'')
            *p = '"';
    json_error_t err;
    json_t *json = json_loads(copy, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (json == NULL)
        fail_msg("bad test JSON at column %d: %s\n%s", err.column, err.text, copy);
    free(copy);
    return json;
}

/* Asserts the member names of `obj`, in order, as one comma-separated list. */
static void assert_keys(const json_t *obj, const char *want)
{
    util_buf_t buf;
    util_buf_init(&buf);
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        if (buf.len != 0)
            util_buf_puts(&buf, ",");
        util_buf_puts(&buf, key);
    }
    assert_string_equal(buf.base, want);
    util_buf_dispose(&buf);
}

/* Number of SUBSETTED Codings in meta.tag. */
static size_t subsetted_tags(const json_t *resource)
{
    size_t n = 0, i;
    json_t *coding;
    json_array_foreach(json_object_get(json_object_get(resource, "meta"), "tag"), i, coding)
    {
        const char *system = json_string_value(json_object_get(coding, "system"));
        const char *code = json_string_value(json_object_get(coding, "code"));
        if (system != NULL && code != NULL && strcmp(system, FHIR_SUBSET_TAG_SYSTEM) == 0 && strcmp(code, "SUBSETTED") == 0)
            ++n;
    }
    return n;
}

static const char PATIENT[] = "{'resourceType':'Patient','id':'p1',"
                              "'meta':{'versionId':'3','lastUpdated':'2024-01-02T03:04:05.000001Z'},"
                              "'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>Jo</div>'},"
                              "'contained':[{'resourceType':'Practitioner','id':'gp'}],"
                              "'extension':[{'url':'http://example.org/x','valueString':'x'}],"
                              "'identifier':[{'system':'urn:example','value':'42'}],"
                              "'active':true,"
                              "'name':[{'family':'Jo','given':['Ann'],'_given':[{'extension':[{'url':'http://e/y','valueCode':'x'}]}]}],"
                              "'gender':'female','_gender':{'extension':[{'url':'http://e/g','valueString':'f'}]},"
                              "'birthDate':'1970-01-01',"
                              "'deceasedBoolean':false,"
                              "'maritalStatus':{'text':'single'},"
                              "'multipleBirthInteger':2,"
                              "'generalPractitioner':[{'reference':'#gp'}],"
                              "'link':[{'other':{'reference':'Patient/p2'},'type':'seealso'}]}";

static const char APPOINTMENT[] = "{'resourceType':'Appointment','id':'a1','meta':{'versionId':'1'},"
                                  "'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>A</div>'},"
                                  "'status':'booked','_status':{'id':'s'},"
                                  "'serviceType':[{'text':'check-up'}],"
                                  "'description':'Yearly check-up',"
                                  "'start':'2024-05-01T09:00:00Z','end':'2024-05-01T09:30:00Z',"
                                  "'minutesDuration':30,"
                                  "'slot':[{'reference':'Slot/s1'}],"
                                  "'comment':'bring results',"
                                  "'participant':[{'actor':{'reference':'Patient/p1'},'status':'accepted'}]}";

static const char SLOT[] = "{'resourceType':'Slot','id':'s1','meta':{'versionId':'2','tag':[{'system':'urn:t','code':'keep'}]},"
                           "'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>S</div>'},"
                           "'identifier':[{'value':'slot-1'}],"
                           "'serviceType':[{'text':'check-up'}],"
                           "'schedule':{'reference':'Schedule/sc1'},"
                           "'status':'free','_status':{'extension':[{'url':'http://e/s','valueString':'s'}]},"
                           "'start':'2024-05-01T09:00:00Z','end':'2024-05-01T09:30:00Z',"
                           "'overbooked':false,"
                           "'comment':'first of the day'}";

static const char LOCATION[] = "{'resourceType':'Location','id':'l1','meta':{'versionId':'1'},"
                               "'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>L</div>'},"
                               "'extension':[{'url':'http://example.org/x','valueString':'x'}],"
                               "'status':'active','name':'Clinic','alias':['Main'],"
                               "'position':{'longitude':4.35,'latitude':50.85},"
                               "'hoursOfOperation':[{'daysOfWeek':['mon'],'openingTime':'08:00:00'}]}";

/* ---- the generated tables ---- */

/* isSummary and min of every top-level element of every table resource match the StructureDefinition in fhir/profiles. */
static void test_tables_match_definitions(void **state)
{
    for (size_t r = 0; r != FHIR_SCHEMA_RESOURCE_COUNT; ++r) {
        const char *type = fhir_schema_resources[r].name;
        const fhir_schema_struct_t *st = &fhir_schema_structs[fhir_schema_resources[r].type];
        char *file = util_asprintf("%s/fhir/profiles/StructureDefinition-%s.json", FHIRSCHED_SOURCE_DIR, type);
        json_error_t err;
        json_t *sd = json_load_file(file, 0, &err);
        if (sd == NULL)
            fail_msg("%s: %s", file, err.text);
        json_t *snapshot = json_object_get(json_object_get(sd, "snapshot"), "element");
        size_t checked = 0;
        for (uint16_t s = 0; s != st->slot_count; ++s) {
            char *path = util_asprintf("%s.%s", type, st->slots[s].name);
            size_t i;
            json_t *el;
            json_array_foreach(snapshot, i, el)
            {
                if (strcmp(json_string_value(json_object_get(el, "path")), path) != 0)
                    continue;
                if (st->slots[s].is_summary != json_is_true(json_object_get(el, "isSummary")))
                    fail_msg("%s: table is_summary %d", path, st->slots[s].is_summary);
                assert_int_equal(st->slots[s].min, json_integer_value(json_object_get(el, "min")));
                ++checked;
                break;
            }
            free(path);
        }
        assert_int_equal(checked, st->slot_count);
        json_decref(sd);
        free(file);
    }
}

/* A few values from the published R4 pages, as a readable spot check. */
static void test_tables_spot_check(void **state)
{
    static const struct {
        const char *type, *slot;
        int summary, min;
    } cases[] = {
        {"Patient", "name", 1, 0},         {"Patient", "photo", 0, 0},        {"Patient", "text", 0, 0},
        {"Patient", "deceased[x]", 1, 0},  {"Appointment", "status", 1, 1},   {"Appointment", "participant", 0, 1},
        {"Slot", "schedule", 1, 1},        {"Slot", "comment", 0, 0},         {"Location", "name", 1, 0},
        {"Location", "position", 0, 0},    {"Schedule", "actor", 1, 1},       {"Subscription", "channel", 1, 1},
    };
    for (size_t c = 0; c != sizeof(cases) / sizeof(cases[0]); ++c) {
        const fhir_schema_struct_t *st = NULL;
        for (size_t r = 0; r != FHIR_SCHEMA_RESOURCE_COUNT; ++r)
            if (strcmp(fhir_schema_resources[r].name, cases[c].type) == 0)
                st = &fhir_schema_structs[fhir_schema_resources[r].type];
        assert_non_null(st);
        const fhir_schema_slot_t *slot = NULL;
        for (uint16_t s = 0; s != st->slot_count; ++s)
            if (strcmp(st->slots[s].name, cases[c].slot) == 0)
                slot = &st->slots[s];
        assert_non_null(slot);
        assert_int_equal(slot->is_summary, cases[c].summary);
        assert_int_equal(slot->min, cases[c].min);
    }
}

/* ---- _summary ---- */

static void test_summary_false_changes_nothing(void **state)
{
    json_t *res = parse(PATIENT), *orig = parse(PATIENT);
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_FALSE, NULL, 0), 0);
    assert_true(json_equal(res, orig));
    assert_int_equal(subsetted_tags(res), 0);
    json_decref(res);
    json_decref(orig);
}

static void test_summary_true_patient(void **state)
{
    json_t *res = parse(PATIENT), *orig = parse(PATIENT);
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_TRUE, NULL, 0), 0);
    assert_keys(res, "resourceType,id,meta,identifier,active,name,gender,_gender,birthDate,deceasedBoolean,link");
    /* Kept elements keep their nested content, non-summary parts included (name.given's extensions). */
    assert_true(json_equal(json_object_get(res, "name"), json_object_get(orig, "name")));
    assert_true(json_equal(json_object_get(res, "_gender"), json_object_get(orig, "_gender")));
    /* meta keeps what it had, plus the tag. */
    json_t *meta = json_object_get(res, "meta");
    assert_string_equal(json_string_value(json_object_get(meta, "versionId")), "3");
    assert_keys(meta, "versionId,lastUpdated,tag");
    json_t *want = json_pack("{s:s, s:s, s:s}", "system", "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code",
                             "SUBSETTED", "display", "Resource encoded in summary mode");
    assert_true(json_equal(json_array_get(json_object_get(meta, "tag"), 0), want));
    json_decref(want);
    json_decref(res);
    json_decref(orig);
}

static void test_summary_true_appointment(void **state)
{
    json_t *res = parse(APPOINTMENT);
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_TRUE, NULL, 0), 0);
    /* participant is mandatory but not isSummary in R4: _summary=true follows isSummary alone. */
    assert_keys(res, "resourceType,id,meta,status,_status,serviceType,start,end");
    assert_int_equal(subsetted_tags(res), 1);
    json_decref(res);
}

static void test_summary_true_slot_and_location(void **state)
{
    json_t *slot = parse(SLOT);
    assert_int_equal(fhir_subset_apply(slot, FHIR_SUMMARY_TRUE, NULL, 0), 0);
    assert_keys(slot, "resourceType,id,meta,identifier,serviceType,schedule,status,_status,start,end");
    json_decref(slot);

    json_t *loc = parse(LOCATION);
    assert_int_equal(fhir_subset_apply(loc, FHIR_SUMMARY_TRUE, NULL, 0), 0);
    assert_keys(loc, "resourceType,id,meta,status,name");
    json_decref(loc);
}

static void test_summary_text(void **state)
{
    json_t *slot = parse(SLOT), *orig = parse(SLOT);
    assert_int_equal(fhir_subset_apply(slot, FHIR_SUMMARY_TEXT, NULL, 0), 0);
    /* text, id, meta and the mandatory schedule, status, start, end (with status's extension sibling). */
    assert_keys(slot, "resourceType,id,meta,text,schedule,status,_status,start,end");
    assert_true(json_equal(json_object_get(slot, "text"), json_object_get(orig, "text")));
    /* The existing tag stays first; ours is appended. */
    json_t *tags = json_object_get(json_object_get(slot, "meta"), "tag");
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tags, 0), "code")), "keep");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tags, 1), "code")), "SUBSETTED");
    json_decref(slot);
    json_decref(orig);

    json_t *pat = parse(PATIENT);
    assert_int_equal(fhir_subset_apply(pat, FHIR_SUMMARY_TEXT, NULL, 0), 0);
    assert_keys(pat, "resourceType,id,meta,text");
    json_decref(pat);

    json_t *app = parse(APPOINTMENT);
    assert_int_equal(fhir_subset_apply(app, FHIR_SUMMARY_TEXT, NULL, 0), 0);
    assert_keys(app, "resourceType,id,meta,text,status,_status,participant");
    json_decref(app);
}

static void test_summary_data(void **state)
{
    json_t *loc = parse(LOCATION), *orig = parse(LOCATION);
    assert_int_equal(fhir_subset_apply(loc, FHIR_SUMMARY_DATA, NULL, 0), 0);
    assert_keys(loc, "resourceType,id,meta,extension,status,name,alias,position,hoursOfOperation");
    assert_true(json_equal(json_object_get(loc, "hoursOfOperation"), json_object_get(orig, "hoursOfOperation")));
    assert_int_equal(subsetted_tags(loc), 1);
    json_decref(loc);
    json_decref(orig);

    /* Nothing to remove: still tagged, as the client asked for a subset. */
    json_t *res = parse("{'resourceType':'Slot','id':'s','status':'free'}");
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_DATA, NULL, 0), 0);
    assert_int_equal(subsetted_tags(res), 1);
    json_decref(res);
}

/* Members the tables do not know (the resource was not validated) are dropped by the modes that list what to keep. */
static void test_unknown_members(void **state)
{
    const char *doc = "{'resourceType':'Patient','id':'p','active':true,'zzz':1,'_zzz':{}}";
    json_t *res = parse(doc);
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_DATA, NULL, 0), 0);
    assert_keys(res, "resourceType,id,meta,active,zzz,_zzz");
    json_decref(res);
    res = parse(doc);
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_TRUE, NULL, 0), 0);
    assert_keys(res, "resourceType,id,meta,active");
    json_decref(res);
    const char *zzz[] = {"zzz"};
    res = parse(doc);
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_FALSE, zzz, 1), 0);
    assert_keys(res, "resourceType,id,meta");
    json_decref(res);
}

/* ---- _elements ---- */

static void test_elements_patient(void **state)
{
    json_t *res = parse(PATIENT), *orig = parse(PATIENT);
    const char *elements[] = {"gender", "name", "no-such-element", "Patient.active", "", "photo"};
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_FALSE, elements, 6), 0);
    assert_keys(res, "resourceType,id,meta,name,gender,_gender");
    assert_true(json_equal(json_object_get(res, "name"), json_object_get(orig, "name")));
    assert_int_equal(subsetted_tags(res), 1);
    json_decref(res);
    json_decref(orig);
}

static void test_elements_keep_mandatory(void **state)
{
    json_t *app = parse(APPOINTMENT);
    const char *elements[] = {"start", "comment"};
    assert_int_equal(fhir_subset_apply(app, FHIR_SUMMARY_FALSE, elements, 2), 0);
    assert_keys(app, "resourceType,id,meta,status,_status,start,comment,participant");
    json_decref(app);

    json_t *slot = parse(SLOT);
    const char *none[] = {"bogus"};
    assert_int_equal(fhir_subset_apply(slot, FHIR_SUMMARY_FALSE, none, 1), 0);
    assert_keys(slot, "resourceType,id,meta,schedule,status,_status,start,end");
    json_decref(slot);
}

static void test_elements_choice(void **state)
{
    static const struct {
        const char *name;
        const char *keys;
    } cases[] = {
        {"deceased", "resourceType,id,meta,deceasedBoolean"},
        {"deceased[x]", "resourceType,id,meta,deceasedBoolean"},
        {"deceasedBoolean", "resourceType,id,meta,deceasedBoolean"},
        {"deceasedDateTime", "resourceType,id,meta"}, /* the other form of the choice is not this one */
        {"deceasedBool", "resourceType,id,meta"},
        {"multipleBirth", "resourceType,id,meta,multipleBirthInteger"},
        {"birth", "resourceType,id,meta"},
    };
    for (size_t c = 0; c != sizeof(cases) / sizeof(cases[0]); ++c) {
        json_t *res = parse(PATIENT);
        const char *elements[] = {cases[c].name};
        assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_FALSE, elements, 1), 0);
        assert_keys(res, cases[c].keys);
        json_decref(res);
    }
}

static void test_elements_location_and_id_meta(void **state)
{
    json_t *loc = parse(LOCATION);
    /* Naming id, meta or resourceType is harmless: they are kept anyway. */
    const char *elements[] = {"position", "id", "meta", "resourceType", "hoursOfOperation"};
    assert_int_equal(fhir_subset_apply(loc, FHIR_SUMMARY_FALSE, elements, 5), 0);
    assert_keys(loc, "resourceType,id,meta,position,hoursOfOperation");
    json_decref(loc);
}

/* With both parameters, an element stays only if both keep it. */
static void test_summary_and_elements(void **state)
{
    json_t *pat = parse(PATIENT);
    const char *elements[] = {"name", "photo", "maritalStatus", "text"};
    assert_int_equal(fhir_subset_apply(pat, FHIR_SUMMARY_TRUE, elements, 4), 0);
    assert_keys(pat, "resourceType,id,meta,name");
    json_decref(pat);

    json_t *loc = parse(LOCATION);
    const char *more[] = {"text", "name"};
    assert_int_equal(fhir_subset_apply(loc, FHIR_SUMMARY_DATA, more, 2), 0);
    assert_keys(loc, "resourceType,id,meta,name");
    json_decref(loc);
}

/* ---- the SUBSETTED tag ---- */

static void test_tag_not_duplicated(void **state)
{
    json_t *res = parse(SLOT);
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_TRUE, NULL, 0), 0);
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_DATA, NULL, 0), 0);
    const char *elements[] = {"status"};
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_FALSE, elements, 1), 0);
    assert_int_equal(subsetted_tags(res), 1);
    assert_int_equal(json_array_size(json_object_get(json_object_get(res, "meta"), "tag")), 2);
    json_decref(res);

    /* Already there with another display (or none): recognised by system and code. */
    res = parse("{'resourceType':'Patient','id':'p','meta':{'tag':[{'system':'" FHIR_SUBSET_TAG_SYSTEM "',"
                "'code':'SUBSETTED'}]},'photo':[{}]}");
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_TRUE, NULL, 0), 0);
    assert_keys(res, "resourceType,id,meta");
    assert_int_equal(json_array_size(json_object_get(json_object_get(res, "meta"), "tag")), 1);
    json_decref(res);

    /* Same code in another system is another concept. */
    res = parse("{'resourceType':'Patient','meta':{'tag':[{'system':'urn:other','code':'SUBSETTED'}]}}");
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_TRUE, NULL, 0), 0);
    assert_int_equal(json_array_size(json_object_get(json_object_get(res, "meta"), "tag")), 2);
    assert_int_equal(subsetted_tags(res), 1);
    json_decref(res);
}

static void test_tag_creates_meta(void **state)
{
    /* No meta: it is created right after resourceType and id, where stored resources have it. */
    json_t *res = parse("{'resourceType':'Location','name':'L','id':'l','status':'active'}");
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_DATA, NULL, 0), 0);
    assert_keys(res, "resourceType,id,meta,name,status");
    assert_keys(json_object_get(res, "meta"), "tag");
    assert_int_equal(subsetted_tags(res), 1);
    json_decref(res);

    /* meta without tag: tag is added, the rest of meta is left alone. */
    res = parse("{'resourceType':'Location','id':'l','meta':{'versionId':'7','profile':['urn:p']}}");
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_TRUE, NULL, 0), 0);
    assert_keys(json_object_get(res, "meta"), "versionId,profile,tag");
    assert_int_equal(subsetted_tags(res), 1);
    json_decref(res);
}

/* ---- bad input ---- */

static void test_bad_input(void **state)
{
    assert_int_equal(fhir_subset_apply(NULL, FHIR_SUMMARY_TRUE, NULL, 0), -1);
    static const char *const bad[] = {
        "[]",
        "'Patient'",
        "{}",
        "{'id':'x','active':true}",
        "{'resourceType':42,'id':'x'}",
        "{'resourceType':'Observation','id':'x','status':'final'}", /* R4, but no tables for it */
        "{'resourceType':'NoSuchType','id':'x'}",
        "{'resourceType':'patient','id':'x'}",
        "{'resourceType':'Patient','id':'x','meta':'m','active':true}",
        "{'resourceType':'Patient','id':'x','meta':{'tag':{'code':'SUBSETTED'}},'active':true}",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        json_t *res = parse(bad[i]), *orig = parse(bad[i]);
        const char *elements[] = {"id"};
        assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_TRUE, NULL, 0), -1);
        assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_FALSE, elements, 1), -1);
        assert_true(json_equal(res, orig)); /* untouched */
        json_decref(res);
        json_decref(orig);
    }

    json_t *res = parse(PATIENT), *orig = parse(PATIENT);
    assert_int_equal(fhir_subset_apply(res, (fhir_summary_t)7, NULL, 0), -1);
    assert_int_equal(fhir_subset_apply(res, (fhir_summary_t)-1, NULL, 0), -1);
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_FALSE, NULL, 2), -1);
    assert_true(json_equal(res, orig));
    /* NULL names inside the list are skipped. */
    const char *elements[] = {NULL, "active"};
    assert_int_equal(fhir_subset_apply(res, FHIR_SUMMARY_FALSE, elements, 2), 0);
    assert_keys(res, "resourceType,id,meta,active");
    json_decref(res);
    json_decref(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_match_definitions),
        cmocka_unit_test(test_tables_spot_check),
        cmocka_unit_test(test_summary_false_changes_nothing),
        cmocka_unit_test(test_summary_true_patient),
        cmocka_unit_test(test_summary_true_appointment),
        cmocka_unit_test(test_summary_true_slot_and_location),
        cmocka_unit_test(test_summary_text),
        cmocka_unit_test(test_summary_data),
        cmocka_unit_test(test_unknown_members),
        cmocka_unit_test(test_elements_patient),
        cmocka_unit_test(test_elements_keep_mandatory),
        cmocka_unit_test(test_elements_choice),
        cmocka_unit_test(test_elements_location_and_id_meta),
        cmocka_unit_test(test_summary_and_elements),
        cmocka_unit_test(test_tag_not_duplicated),
        cmocka_unit_test(test_tag_creates_meta),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * FHIR scheduling resources read for the availability maths (src/sched/model.c): Durations and our extensions,
 * references, codes, times of day, availableTime / hoursOfOperation rules, FHIR dates in a clinic's zone, Periods and
 * notAvailable. No database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "sched/sched.h"
#include "sched/model.h"

#define MIN 60
#define HOUR 3600
#define DAY 86400
#define WEEKDAYS (SCHED_DAY_MON | SCHED_DAY_TUE | SCHED_DAY_WED | SCHED_DAY_THU | SCHED_DAY_FRI)

static int64_t utc(int64_t y, unsigned mo, unsigned d, int h, int mi)
{
    return util_days_from_civil(y, mo, d) * DAY + h * HOUR + mi * MIN;
}

static sched_tz_t *load(const char *name)
{
    char err[256] = "";
    sched_tz_t *tz = sched_tz_load(name, err, sizeof(err));
    if (tz == NULL)
        fail_msg("loading %s: %s", name, err);
    return tz;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    if (v == NULL)
        fail_msg("bad test JSON at %d:%d: %s", jerr.line, jerr.column, jerr.text);
    return v;
}

static int64_t duration(const char *text)
{
    json_t *d = parse(text);
    int64_t s = sched_duration_seconds(d);
    json_decref(d);
    return s;
}

static void test_duration_seconds(void **state)
{
    assert_int_equal(duration("{\"value\": 45, \"unit\": \"s\", \"system\": \"http://unitsofmeasure.org\", \"code\": \"s\"}"), 45);
    assert_int_equal(duration("{\"value\": 30, \"code\": \"min\"}"), 30 * MIN);
    assert_int_equal(duration("{\"value\": 2, \"code\": \"h\"}"), 2 * HOUR);
    assert_int_equal(duration("{\"value\": 14, \"code\": \"d\"}"), 14 * DAY);
    assert_int_equal(duration("{\"value\": 1.5, \"code\": \"h\"}"), 90 * MIN);
    assert_int_equal(duration("{\"value\": 0, \"code\": \"min\"}"), 0);
    /* the human unit is used when the code is missing; the code wins over it */
    assert_int_equal(duration("{\"value\": 10, \"unit\": \"min\"}"), 10 * MIN);
    assert_int_equal(duration("{\"value\": 10, \"unit\": \"minutes\", \"code\": \"min\"}"), 10 * MIN);
    /* missing value or unit, negative, unknown unit, not a time, not a number */
    assert_int_equal(duration("{\"code\": \"min\"}"), -1);
    assert_int_equal(duration("{\"value\": 10}"), -1);
    assert_int_equal(duration("{\"value\": -5, \"code\": \"min\"}"), -1);
    assert_int_equal(duration("{\"value\": 2, \"code\": \"wk\"}"), -1);
    assert_int_equal(duration("{\"value\": 2, \"code\": \"mg\"}"), -1);
    assert_int_equal(duration("{\"value\": \"10\", \"code\": \"min\"}"), -1);
    assert_int_equal(duration("{\"value\": 1e9, \"code\": \"d\"}"), -1); /* absurdly long */
    assert_int_equal(sched_duration_seconds(NULL), -1);
}

#define EXT(tail) SCHED_EXT_BASE tail

static void test_extensions(void **state)
{
    json_t *hs = parse("{\"resourceType\": \"HealthcareService\", \"extension\": ["
                       "{\"url\": \"http://example.org/other\", \"valueString\": \"x\"},"
                       "{\"url\": \"" EXT("service-duration") "\", \"valueDuration\": {\"value\": 40, \"code\": \"min\"}},"
                       "{\"url\": \"" EXT("buffer-before") "\", \"valueDuration\": {\"value\": 5, \"code\": \"wk\"}},"
                       "{\"url\": \"http://other.org/fhir/StructureDefinition/buffer-after\", \"valueDuration\": {\"value\": 5, \"code\": \"min\"}}]}");
    json_t *e = sched_ext(hs, "service-duration");
    assert_non_null(e);
    assert_ptr_equal(e, json_array_get(json_object_get(hs, "extension"), 1));
    assert_null(sched_ext(hs, "service"));      /* the whole tail must match */
    assert_null(sched_ext(hs, "buffer-after")); /* another base is not ours */
    assert_null(sched_ext(NULL, "service-duration"));
    assert_int_equal(sched_ext_seconds(hs, "service-duration", 7), 40 * MIN);
    assert_int_equal(sched_ext_seconds(hs, "buffer-before", 7), 7); /* unreadable */
    assert_int_equal(sched_ext_seconds(hs, "buffer-after", 7), 7);  /* absent */

    /* set replaces in place of the old one (appended at the end), keeping others */
    sched_ext_set_duration(hs, "buffer-before", 10 * MIN);
    json_t *list = json_object_get(hs, "extension");
    assert_int_equal(json_array_size(list), 4);
    e = sched_ext(hs, "buffer-before");
    assert_ptr_equal(e, json_array_get(list, 3));
    json_t *d = json_object_get(e, "valueDuration");
    assert_int_equal(json_integer_value(json_object_get(d, "value")), 10);
    assert_string_equal(json_string_value(json_object_get(d, "code")), "min");
    assert_string_equal(json_string_value(json_object_get(d, "unit")), "min");
    assert_string_equal(json_string_value(json_object_get(d, "system")), "http://unitsofmeasure.org");
    assert_int_equal(sched_ext_seconds(hs, "buffer-before", 0), 10 * MIN);
    /* not whole minutes: seconds */
    sched_ext_set_duration(hs, "buffer-before", 90);
    d = json_object_get(sched_ext(hs, "buffer-before"), "valueDuration");
    assert_int_equal(json_integer_value(json_object_get(d, "value")), 90);
    assert_string_equal(json_string_value(json_object_get(d, "code")), "s");
    assert_int_equal(json_array_size(list), 4);
    /* a negative or zero duration removes the extension */
    sched_ext_set_duration(hs, "buffer-before", 0);
    assert_null(sched_ext(hs, "buffer-before"));
    sched_ext_set_duration(hs, "service-duration", -1);
    assert_null(sched_ext(hs, "service-duration"));
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "url")), "http://example.org/other");

    /* generic set: value stolen, replaces */
    sched_ext_set(hs, "late-cancellation", "valueBoolean", json_true());
    sched_ext_set(hs, "late-cancellation", "valueBoolean", json_false());
    e = sched_ext(hs, "late-cancellation");
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "url")), EXT("late-cancellation"));
    assert_true(json_is_false(json_object_get(e, "valueBoolean")));
    assert_int_equal(json_array_size(list), 3);

    /* removing the last of ours and the foreign ones leaves no empty extension array */
    sched_ext_remove(hs, "late-cancellation");
    sched_ext_remove(hs, "late-cancellation"); /* absent: nothing */
    assert_int_equal(json_array_size(list), 2);
    json_array_clear(list);
    sched_ext_set(hs, "hold-expires", "valueInstant", json_string("2026-03-02T09:00:00Z"));
    assert_int_equal(json_array_size(json_object_get(hs, "extension")), 1);
    sched_ext_remove(hs, "hold-expires");
    assert_null(json_object_get(hs, "extension"));
    json_decref(hs);

    /* a resource without extensions gets an array */
    json_t *appt = parse("{\"resourceType\": \"Appointment\"}");
    sched_ext_remove(appt, "buffer-after");
    sched_ext_set_duration(appt, "buffer-after", 2 * HOUR);
    assert_int_equal(json_array_size(json_object_get(appt, "extension")), 1);
    assert_int_equal(sched_ext_seconds(appt, "buffer-after", 0), 2 * HOUR);
    json_decref(appt);
}

static const char *key(const char *ref, char *buf, size_t len)
{
    return sched_ref_key(ref, buf, len);
}

static void test_ref_key(void **state)
{
    char buf[160];
    assert_string_equal(key("Practitioner/eva", buf, sizeof(buf)), "Practitioner/eva");
    assert_ptr_equal(key("Practitioner/eva", buf, sizeof(buf)), buf);
    assert_string_equal(key("Location/room-1.a", buf, sizeof(buf)), "Location/room-1.a");
    assert_string_equal(key("https://fhir.example.org/r4/Patient/p1", buf, sizeof(buf)), "Patient/p1");
    assert_string_equal(key("Patient/p1/_history/3", buf, sizeof(buf)), "Patient/p1");
    assert_string_equal(key("http://x.org/fhir/Slot/s9/_history/12", buf, sizeof(buf)), "Slot/s9");
    /* junk */
    assert_null(key(NULL, buf, sizeof(buf)));
    assert_null(key("", buf, sizeof(buf)));
    assert_null(key("Patient", buf, sizeof(buf)));
    assert_null(key("Patient/", buf, sizeof(buf)));
    assert_null(key("/p1", buf, sizeof(buf)));
    assert_null(key("patient/p1", buf, sizeof(buf)));   /* types start with a capital */
    assert_null(key("Pat1ent/p1", buf, sizeof(buf)));   /* letters only */
    assert_null(key("Patient/p 1", buf, sizeof(buf)));  /* id characters */
    assert_null(key("Patient/p1?x=y", buf, sizeof(buf)));
    assert_null(key("#contained", buf, sizeof(buf)));
    assert_null(key("urn:uuid:5e1f0a2c-0000-4000-8000-000000000000", buf, sizeof(buf)));
    /* too long for the buffer: "Patient/p1" needs 11 bytes */
    char small[11];
    assert_string_equal(key("Patient/p1", small, sizeof(small)), "Patient/p1");
    assert_null(key("Patient/p12", small, sizeof(small)));
    char big[400];
    memset(big, 'a', sizeof(big));
    memcpy(big, "Patient/", 8);
    big[sizeof(big) - 1] = '\0';
    assert_null(key(big, buf, sizeof(buf)));

    json_t *ref = parse("{\"reference\": \"Practitioner/eva\", \"display\": \"Eva\"}");
    assert_string_equal(sched_reference_key(ref, buf, sizeof(buf)), "Practitioner/eva");
    json_decref(ref);
    ref = parse("{\"display\": \"Eva\"}");
    assert_null(sched_reference_key(ref, buf, sizeof(buf)));
    json_decref(ref);
}

static void test_refers_to(void **state)
{
    json_t *one = parse("{\"reference\": \"http://x.org/fhir/Location/clinic/_history/2\"}");
    assert_true(sched_refers_to(one, "Location/clinic"));
    assert_false(sched_refers_to(one, "Location/clinic2"));
    assert_false(sched_refers_to(one, "Location/clin"));
    json_t *many = parse("[{\"display\": \"no reference\"}, {\"reference\": \"junk\"}, {\"reference\": \"HealthcareService/derm\"},"
                         " {\"reference\": \"HealthcareService/proc\"}]");
    assert_true(sched_refers_to(many, "HealthcareService/derm"));
    assert_true(sched_refers_to(many, "HealthcareService/proc"));
    assert_false(sched_refers_to(many, "HealthcareService/other"));
    assert_false(sched_refers_to(NULL, "HealthcareService/derm"));
    json_t *empty = json_array();
    assert_false(sched_refers_to(empty, "HealthcareService/derm"));
    json_decref(empty);
    json_decref(one);
    json_decref(many);
}

static void test_concepts(void **state)
{
    json_t *cc = parse("{\"coding\": [{\"system\": \"http://snomed.info/sct\", \"code\": \"394582007\"},"
                       " {\"code\": \"derm\"}], \"text\": \"Dermatology\"}");
    assert_true(sched_concept_matches(cc, "http://snomed.info/sct", "394582007"));
    assert_true(sched_concept_matches(cc, NULL, "394582007"));
    assert_true(sched_concept_matches(cc, "", "394582007"));
    assert_false(sched_concept_matches(cc, "http://loinc.org", "394582007"));
    assert_false(sched_concept_matches(cc, NULL, "39458"));
    assert_false(sched_concept_matches(cc, NULL, NULL));
    /* a coding without a system only matches a search without one */
    assert_true(sched_concept_matches(cc, NULL, "derm"));
    assert_false(sched_concept_matches(cc, "http://snomed.info/sct", "derm"));
    /* an array of concepts, a bare Coding, nothing */
    json_t *list = parse("[{\"coding\": [{\"system\": \"s1\", \"code\": \"a\"}]}, {\"coding\": [{\"system\": \"s2\", \"code\": \"b\"}]}]");
    assert_true(sched_concept_matches(list, "s2", "b"));
    assert_false(sched_concept_matches(list, "s1", "b"));
    json_t *coding = parse("{\"system\": \"http://terminology.hl7.org/CodeSystem/location-physical-type\", \"code\": \"ro\"}");
    assert_true(sched_concept_matches(coding, NULL, "ro"));
    assert_false(sched_concept_matches(coding, NULL, "bd"));
    assert_false(sched_concept_matches(NULL, NULL, "ro"));

    /* overlaps: any coding of the wanted concept, with its system if it has one */
    json_t *wanted = parse("{\"coding\": [{\"system\": \"s9\", \"code\": \"zz\"}, {\"system\": \"s2\", \"code\": \"b\"}]}");
    assert_true(sched_concept_overlaps(list, wanted));
    json_decref(wanted);
    wanted = parse("{\"coding\": [{\"system\": \"s1\", \"code\": \"b\"}]}");
    assert_false(sched_concept_overlaps(list, wanted));
    json_decref(wanted);
    wanted = parse("{\"coding\": [{\"code\": \"b\"}]}");
    assert_true(sched_concept_overlaps(list, wanted));
    json_decref(wanted);
    wanted = parse("{\"text\": \"no codings\"}");
    assert_false(sched_concept_overlaps(list, wanted));
    json_decref(wanted);
    json_decref(cc);
    json_decref(list);
    json_decref(coding);
}

static void test_time_of_day(void **state)
{
    assert_int_equal(sched_time_of_day("00:00"), 0);
    assert_int_equal(sched_time_of_day("00:00:00"), 0);
    assert_int_equal(sched_time_of_day("09:00"), 9 * HOUR);
    assert_int_equal(sched_time_of_day("09:30:15"), 9 * HOUR + 30 * MIN + 15);
    assert_int_equal(sched_time_of_day("23:59:59"), DAY - 1);
    assert_int_equal(sched_time_of_day("24:00:00"), DAY);
    assert_int_equal(sched_time_of_day("24:00"), DAY);
    assert_int_equal(sched_time_of_day("12:15:30.250"), 12 * HOUR + 15 * MIN + 30); /* fractions dropped */
    /* malformed */
    assert_int_equal(sched_time_of_day(NULL), -1);
    assert_int_equal(sched_time_of_day(""), -1);
    assert_int_equal(sched_time_of_day("9:00"), -1);
    assert_int_equal(sched_time_of_day("09:0"), -1);
    assert_int_equal(sched_time_of_day("0900"), -1);
    assert_int_equal(sched_time_of_day("09:00:0"), -1);
    assert_int_equal(sched_time_of_day("09:00:00Z"), -1);
    assert_int_equal(sched_time_of_day("09:00 "), -1);
    assert_int_equal(sched_time_of_day("24:00:01"), -1);
    assert_int_equal(sched_time_of_day("24:30"), -1);
    assert_int_equal(sched_time_of_day("25:00"), -1);
    assert_int_equal(sched_time_of_day("12:60"), -1);
    assert_int_equal(sched_time_of_day("12:00:60"), -1);
    assert_int_equal(sched_time_of_day("-1:00"), -1);
    assert_int_equal(sched_time_of_day("ab:cd"), -1);
    /* blanks, signs and empty fractions are not digits */
    const char *lenient[] = {" 9:00", "+9:00", "09:+5", "09: 5", "09:00:00.", "09:00:00.x"};
    for (size_t i = 0; i != sizeof(lenient) / sizeof(lenient[0]); ++i)
        assert_int_equal(sched_time_of_day(lenient[i]), -1);
}

static sched_avail_rule_t *rules_of(const char *text, bool hours, int expect_n)
{
    json_t *a = parse(text);
    sched_avail_rule_t *r = (void *)1;
    int n = sched_rules_read(a, hours, &r);
    json_decref(a);
    assert_int_equal(n, expect_n);
    if (n <= 0)
        assert_null(r);
    return r;
}

static void test_rules_read(void **state)
{
    sched_avail_rule_t *r = rules_of("[{\"daysOfWeek\": [\"mon\", \"tue\", \"wed\", \"thu\"], \"availableStartTime\": \"09:00:00\","
                                     " \"availableEndTime\": \"17:00:00\"},"
                                     " {\"daysOfWeek\": [\"sat\"], \"allDay\": true},"
                                     " {\"availableStartTime\": \"22:00:00\", \"availableEndTime\": \"06:00:00\"},"
                                     " {\"daysOfWeek\": [\"fri\", \"sun\"], \"availableEndTime\": \"24:00:00\"},"
                                     " {\"daysOfWeek\": [\"sun\"]},"
                                     " {\"daysOfWeek\": [], \"availableStartTime\": \"24:00:00\", \"availableEndTime\": \"08:00\"}]",
                                     false, 6);
    assert_int_equal(r[0].days, SCHED_DAY_MON | SCHED_DAY_TUE | SCHED_DAY_WED | SCHED_DAY_THU);
    assert_false(r[0].all_day);
    assert_int_equal(r[0].start, 9 * HOUR);
    assert_int_equal(r[0].end, 17 * HOUR);
    assert_int_equal(r[1].days, SCHED_DAY_SAT);
    assert_true(r[1].all_day);
    /* no daysOfWeek: every day; a period over midnight is kept as is (end <= start) */
    assert_int_equal(r[2].days, SCHED_DAY_ALL);
    assert_int_equal(r[2].start, 22 * HOUR);
    assert_int_equal(r[2].end, 6 * HOUR);
    assert_false(r[2].all_day);
    /* only an end: from midnight */
    assert_int_equal(r[3].days, SCHED_DAY_FRI | SCHED_DAY_SUN);
    assert_int_equal(r[3].start, 0);
    assert_int_equal(r[3].end, DAY);
    assert_false(r[3].all_day);
    /* no times at all: the whole day */
    assert_int_equal(r[4].days, SCHED_DAY_SUN);
    assert_true(r[4].all_day);
    /* empty daysOfWeek: every day; a start of 24:00 is midnight */
    assert_int_equal(r[5].days, SCHED_DAY_ALL);
    assert_int_equal(r[5].start, 0);
    assert_int_equal(r[5].end, 8 * HOUR);
    free(r);

    /* Location.hoursOfOperation uses openingTime / closingTime */
    r = rules_of("[{\"daysOfWeek\": [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"], \"openingTime\": \"08:00:00\", \"closingTime\": \"17:30:00\"},"
                 " {\"daysOfWeek\": [\"sat\"], \"openingTime\": \"10:00:00\", \"availableEndTime\": \"12:00:00\"}]",
                 true, 2);
    assert_int_equal(r[0].days, WEEKDAYS);
    assert_int_equal(r[0].start, 8 * HOUR);
    assert_int_equal(r[0].end, 17 * HOUR + 30 * MIN);
    assert_int_equal(r[1].start, 10 * HOUR);
    assert_int_equal(r[1].end, DAY); /* availableEndTime is not read for hours */
    free(r);
    /* and availableTime ignores openingTime */
    r = rules_of("[{\"openingTime\": \"08:00:00\", \"availableEndTime\": \"12:00:00\"}]", false, 1);
    assert_int_equal(r[0].start, 0);
    assert_int_equal(r[0].end, 12 * HOUR);
    free(r);

    /* empty or absent */
    rules_of("[]", false, 0);
    sched_avail_rule_t *none = (void *)1;
    assert_int_equal(sched_rules_read(NULL, true, &none), 0);
    assert_null(none);
    /* bad entries */
    rules_of("[{\"daysOfWeek\": [\"mon\", \"monday\"]}]", false, -1);
    rules_of("[{\"daysOfWeek\": [\"Mon\"]}]", false, -1);
    rules_of("[{\"daysOfWeek\": [1]}]", false, -1);
    rules_of("[{\"daysOfWeek\": [\"mon\"]}, {\"availableStartTime\": \"9:00\"}]", false, -1);
    rules_of("[{\"openingTime\": \"08:00:00\", \"closingTime\": \"25:00:00\"}]", true, -1);
}

static int64_t fhir_time(const char *text, const sched_tz_t *tz, bool upper)
{
    int64_t t = 12345;
    if (sched_fhir_time(text, tz, upper, &t) != 0)
        fail_msg("%s did not parse", text);
    return t;
}

static void test_fhir_time(void **state)
{
    sched_tz_t *ams = load("Europe/Amsterdam"), *utc_tz = load("UTC");
    /* years, months and days are local (CET +01:00 in winter, CEST +02:00 in summer) */
    assert_int_equal(fhir_time("2026", ams, false), utc(2025, 12, 31, 23, 0));
    assert_int_equal(fhir_time("2026", ams, true), utc(2026, 12, 31, 23, 0));
    assert_int_equal(fhir_time("2026-02", ams, false), utc(2026, 1, 31, 23, 0));
    assert_int_equal(fhir_time("2026-02", ams, true), utc(2026, 2, 28, 23, 0));
    assert_int_equal(fhir_time("2026-12", ams, true), utc(2026, 12, 31, 23, 0)); /* into the next year */
    assert_int_equal(fhir_time("2026-06", ams, false), utc(2026, 5, 31, 22, 0));
    assert_int_equal(fhir_time("2026-03-02", ams, false), utc(2026, 3, 1, 23, 0));
    assert_int_equal(fhir_time("2026-03-02", ams, true), utc(2026, 3, 2, 23, 0));
    assert_int_equal(fhir_time("2026-02-28", ams, true), utc(2026, 2, 28, 23, 0));   /* into March */
    assert_int_equal(fhir_time("2024-02-29", ams, true), utc(2024, 2, 29, 23, 0));   /* leap day */
    assert_int_equal(fhir_time("2026-12-31", ams, true), utc(2026, 12, 31, 23, 0));  /* into the next year */
    /* the spring-forward day has 23 hours, the fall-back day 25 */
    assert_int_equal(fhir_time("2026-03-29", ams, false), utc(2026, 3, 28, 23, 0));
    assert_int_equal(fhir_time("2026-03-29", ams, true), utc(2026, 3, 29, 22, 0));
    assert_int_equal(fhir_time("2026-10-25", ams, false), utc(2026, 10, 24, 22, 0));
    assert_int_equal(fhir_time("2026-10-25", ams, true), utc(2026, 10, 25, 23, 0));
    /* the same date in UTC */
    assert_int_equal(fhir_time("2026-03-29", utc_tz, false), utc(2026, 3, 29, 0, 0));
    assert_int_equal(fhir_time("2026-03-29", utc_tz, true), utc(2026, 3, 30, 0, 0));
    /* instants keep their own offset, whatever the zone */
    assert_int_equal(fhir_time("2026-03-29T03:30:00+02:00", ams, false), utc(2026, 3, 29, 1, 30));
    assert_int_equal(fhir_time("2026-03-29T03:30:00+02:00", ams, true), utc(2026, 3, 29, 1, 30)); /* ends exactly there */
    assert_int_equal(fhir_time("2026-03-02T09:00:00-05:00", ams, false), utc(2026, 3, 2, 14, 0));
    assert_int_equal(fhir_time("2026-03-02T09:00:00Z", ams, false), utc(2026, 3, 2, 9, 0));
    assert_int_equal(fhir_time("2026-03-02T09:00:00.999Z", ams, false), utc(2026, 3, 2, 9, 0));
    assert_int_equal(fhir_time("2026-03-02T00:30:00+01:00", utc_tz, false), utc(2026, 3, 1, 23, 30));
    /* malformed */
    const char *bad[] = {"", "26", "202", "2026-1", "2026-00", "2026-13", "2026-02-29", "2026-04-31", "2026-13-01", "2026-03-00",
                         "2026/03/02", "2026-03-02T09:00:00", "2026-03-02T09:00Z", "March 2026", "2026-03-02T09:00:00+0100",
                         "0000"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        int64_t t = 77;
        if (sched_fhir_time(bad[i], ams, false, &t) != -1)
            fail_msg("\"%s\" was accepted as %lld", bad[i], (long long)t);
    }
    int64_t t;
    assert_int_equal(sched_fhir_time(NULL, ams, false, &t), -1);
    /* signs and blanks inside a date are not digits */
    const char *lenient[] = {"+202", "2026-+1", "2026- 3", "2026-03-+2"};
    for (size_t i = 0; i != sizeof(lenient) / sizeof(lenient[0]); ++i)
        assert_int_equal(sched_fhir_time(lenient[i], ams, false, &t), -1);
    sched_tz_destroy(ams);
    sched_tz_destroy(utc_tz);
}

static void test_period_read(void **state)
{
    sched_tz_t *ams = load("Europe/Amsterdam");
    int64_t lo, hi;
    json_t *p = parse("{\"start\": \"2026-03-02\", \"end\": \"2026-03-06\"}");
    assert_int_equal(sched_period_read(p, ams, &lo, &hi), 0);
    assert_int_equal(lo, utc(2026, 3, 1, 23, 0));
    assert_int_equal(hi, utc(2026, 3, 6, 23, 0)); /* the end date is included */
    json_decref(p);
    p = parse("{\"start\": \"2026-03-02T08:00:00+01:00\"}");
    assert_int_equal(sched_period_read(p, ams, &lo, &hi), 0);
    assert_int_equal(lo, utc(2026, 3, 2, 7, 0));
    assert_int_equal(hi, INT64_MAX);
    json_decref(p);
    p = parse("{\"end\": \"2026-03\"}");
    assert_int_equal(sched_period_read(p, ams, &lo, &hi), 0);
    assert_int_equal(lo, INT64_MIN);
    assert_int_equal(hi, utc(2026, 3, 31, 22, 0)); /* April starts in summer time */
    json_decref(p);
    p = parse("{}");
    assert_int_equal(sched_period_read(p, ams, &lo, &hi), 0);
    assert_int_equal(lo, INT64_MIN);
    assert_int_equal(hi, INT64_MAX);
    json_decref(p);
    /* an instant end: the period ends exactly there (half-open) */
    p = parse("{\"start\": \"2026-03-02T08:00:00Z\", \"end\": \"2026-03-02T12:00:00Z\"}");
    assert_int_equal(sched_period_read(p, ams, &lo, &hi), 0);
    assert_int_equal(lo, utc(2026, 3, 2, 8, 0));
    assert_int_equal(hi, utc(2026, 3, 2, 12, 0));
    json_decref(p);
    p = parse("{\"start\": \"2026-03-32\"}");
    assert_int_equal(sched_period_read(p, ams, &lo, &hi), -1);
    json_decref(p);
    p = parse("{\"start\": \"2026-03-02\", \"end\": \"tomorrow\"}");
    assert_int_equal(sched_period_read(p, ams, &lo, &hi), -1);
    json_decref(p);
    sched_tz_destroy(ams);
}

static void test_not_available_add(void **state)
{
    sched_tz_t *ams = load("Europe/Amsterdam");
    sched_avail_set_t set;
    sched_avail_set_init(&set);
    json_t *na = parse("[{\"description\": \"Holiday\", \"during\": {\"start\": \"2026-03-04\", \"end\": \"2026-03-04\"}},"
                       " {\"description\": \"no during: no time\"},"
                       " {\"description\": \"dentist\", \"during\": {\"start\": \"2026-03-02T14:00:00+01:00\", \"end\": \"2026-03-02T15:00:00+01:00\"}},"
                       " {\"description\": \"empty\", \"during\": {\"start\": \"2026-03-10T14:00:00Z\", \"end\": \"2026-03-10T13:00:00Z\"}},"
                       " {\"description\": \"next day\", \"during\": {\"start\": \"2026-03-05\", \"end\": \"2026-03-05\"}}]");
    assert_int_equal(sched_not_available_add(&set, na, ams), 0);
    assert_int_equal(set.count, 2);
    assert_int_equal(set.items[0].start, utc(2026, 3, 2, 13, 0));
    assert_int_equal(set.items[0].end, utc(2026, 3, 2, 14, 0));
    /* two whole local days merge */
    assert_int_equal(set.items[1].start, utc(2026, 3, 3, 23, 0));
    assert_int_equal(set.items[1].end, utc(2026, 3, 5, 23, 0));
    json_decref(na);
    /* open-ended leave */
    sched_avail_set_clear(&set);
    na = parse("[{\"during\": {\"start\": \"2026-04-01\"}}]");
    assert_int_equal(sched_not_available_add(&set, na, ams), 0);
    assert_int_equal(set.count, 1);
    assert_int_equal(set.items[0].start, utc(2026, 3, 31, 22, 0));
    assert_int_equal(set.items[0].end, SCHED_TIME_MAX);
    json_decref(na);
    /* malformed */
    na = parse("[{\"during\": {\"start\": \"2026-04-31\"}}]");
    assert_int_equal(sched_not_available_add(&set, na, ams), -1);
    json_decref(na);
    /* nothing */
    sched_avail_set_clear(&set);
    assert_int_equal(sched_not_available_add(&set, NULL, ams), 0);
    assert_int_equal(set.count, 0);
    sched_avail_set_dispose(&set);
    sched_tz_destroy(ams);
}

static void test_format_instant(void **state)
{
    char buf[32];
    sched_format_instant(utc(2026, 3, 2, 9, 5) + 7, buf, sizeof(buf));
    assert_string_equal(buf, "2026-03-02T09:05:07Z");
    sched_format_instant(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_seconds), cmocka_unit_test(test_extensions), cmocka_unit_test(test_ref_key),
        cmocka_unit_test(test_refers_to),        cmocka_unit_test(test_concepts),   cmocka_unit_test(test_time_of_day),
        cmocka_unit_test(test_rules_read),       cmocka_unit_test(test_fhir_time),  cmocka_unit_test(test_period_read),
        cmocka_unit_test(test_not_available_add), cmocka_unit_test(test_format_instant),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sched_tz_cache_clear();
    return rc;
}

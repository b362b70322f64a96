/*
 * The availability engine behind $find, $hold and $book (src/sched/find.c) over small in-memory models: which
 * practitioner / clinic / room / device combinations serve a request, which starts they offer given working and opening
 * hours, leave, busy rows, Slots, buffers and timing preferences, and the rule checks of a booking. No database.
 *
 * The model: a building in Amsterdam (time zone on the building) holding a dermatology clinic open Mon-Fri 08-17 with
 * rooms; a second clinic in Utrecht open Mon-Fri 09-12. Eva de Jong works Mon-Thu 09-17 at the first clinic (leave on
 * Wednesday 2026-03-04); Mila Vos works Mon-Fri 08-12 at both. The week is Monday 2026-03-02 .. Friday 2026-03-06 (CET,
 * UTC+1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <jansson.h>
#include "sched/sched.h"
#include "sched/model.h"
#include "sched/find.h"
#include "util/str.h"

#define MIN 60
#define HOUR 3600
#define DAY 86400

#define VT "http://example.org/visit-type"
#define SCT "http://snomed.info/sct"
#define ROOMS "http://fhirsched.org/fhir/CodeSystem/room-type"
#define DEVS "http://example.org/device-type"
#define EXT(tail) "http://fhirsched.org/fhir/StructureDefinition/" tail
#define TZ_EXT(zone) "{'url': 'http://hl7.org/fhir/StructureDefinition/timezone', 'valueCode': '" zone "'}"
#define REF(key) "{'reference': '" key "'}"
#define DUR(tail, v, unit) "{'url': '" EXT(tail) "', 'valueDuration': {'value': " #v ", 'system': 'http://unitsofmeasure.org', 'code': '" unit "'}}"
#define WEEKDAYS_JSON "['mon', 'tue', 'wed', 'thu', 'fri']"

static int64_t utc(int64_t y, unsigned mo, unsigned d, int h, int mi)
{
    return util_days_from_civil(y, mo, d) * DAY + h * HOUR + mi * MIN;
}

/* Amsterdam wall time in March 2026 before the change on the 29th (CET, UTC+1). */
static int64_t L(unsigned d, int h, int mi)
{
    return utc(2026, 3, d, h, mi) - HOUR;
}

/* JSON written with single quotes (no apostrophes in the data). */
static json_t *J(const char *text)
{
    char *s = util_xstrdup(text);
    for (char *p = s; *p; ++p)
        if (*p == '\'')
            *p = '"';
    json_error_t jerr;
    json_t *v = json_loads(s, 0, &jerr);
    if (v == NULL)
        fail_msg("bad test JSON at %d:%d: %s\n%s", jerr.line, jerr.column, jerr.text, s);
    free(s);
    return v;
}

static const char *const LOCATIONS =
    "[{'resourceType': 'Location', 'id': 'bldg', 'status': 'active', 'name': 'Gezondheidscentrum Zuid',"
    "  'physicalType': {'coding': [{'code': 'bu'}]}, 'extension': [" TZ_EXT("Europe/Amsterdam") "],"
    "  'address': {'line': ['Beethovenstraat 1'], 'city': 'Amsterdam', 'postalCode': '1077 JA'}},"
    " {'resourceType': 'Location', 'id': 'clinic', 'status': 'active', 'name': 'Polikliniek Dermatologie',"
    "  'physicalType': {'coding': [{'code': 'wi'}]}, 'partOf': " REF("Location/bldg") ","
    "  'hoursOfOperation': [{'daysOfWeek': " WEEKDAYS_JSON ", 'openingTime': '08:00:00', 'closingTime': '17:00:00'}]},"
    " {'resourceType': 'Location', 'id': 'room1', 'status': 'active', 'name': 'Behandelkamer 1', 'partOf': " REF("Location/clinic") ","
    "  'physicalType': {'coding': [{'code': 'ro'}]}, 'type': [{'coding': [{'system': '" ROOMS "', 'code': 'procedure'}]}]},"
    " {'resourceType': 'Location', 'id': 'room2', 'status': 'active', 'name': 'Behandelkamer 2', 'partOf': " REF("Location/clinic") ","
    "  'physicalType': {'coding': [{'code': 'ro'}]}, 'type': [{'coding': [{'system': '" ROOMS "', 'code': 'procedure'}]}]},"
    " {'resourceType': 'Location', 'id': 'room3', 'status': 'active', 'name': 'Spreekkamer', 'partOf': " REF("Location/clinic") ","
    "  'physicalType': {'coding': [{'code': 'ro'}]}, 'type': [{'coding': [{'system': '" ROOMS "', 'code': 'consult'}]}]},"
    " {'resourceType': 'Location', 'id': 'room4', 'status': 'inactive', 'name': 'Oude kamer', 'partOf': " REF("Location/clinic") ","
    "  'physicalType': {'coding': [{'code': 'ro'}]}, 'type': [{'coding': [{'system': '" ROOMS "', 'code': 'procedure'}]}]},"
    " {'resourceType': 'Location', 'id': 'clinic2', 'status': 'active', 'name': 'Huisartsenpost', 'extension': [" TZ_EXT("Europe/Amsterdam") "],"
    "  'address': {'city': 'Utrecht'},"
    "  'hoursOfOperation': [{'daysOfWeek': " WEEKDAYS_JSON ", 'openingTime': '09:00:00', 'closingTime': '12:00:00'}]},"
    " {'resourceType': 'Location', 'id': 'roomX', 'status': 'active', 'name': 'Kamer Utrecht', 'partOf': " REF("Location/clinic2") ","
    "  'physicalType': {'coding': [{'code': 'ro'}]}, 'type': [{'coding': [{'system': '" ROOMS "', 'code': 'procedure'}]}]}]";

static const char *const SERVICES =
    "[{'resourceType': 'HealthcareService', 'id': 'derm', 'active': true, 'providedBy': " REF("Organization/org1") ","
    "  'type': [{'coding': [{'system': '" VT "', 'code': 'derm-consult'}]}],"
    "  'specialty': [{'coding': [{'system': '" SCT "', 'code': '394582007'}]}],"
    "  'location': [" REF("Location/clinic") ", " REF("Location/clinic2") "],"
    "  'extension': [" DUR("service-duration", 30, "min") "]},"
    " {'resourceType': 'HealthcareService', 'id': 'proc', 'active': true, 'providedBy': " REF("Organization/org1") ","
    "  'type': [{'coding': [{'system': '" VT "', 'code': 'derm-proc'}]}],"
    "  'location': [" REF("Location/clinic") "],"
    "  'extension': [" DUR("service-duration", 1, "h") ", " DUR("slot-alignment", 30, "min") ", " DUR("buffer-after", 15, "min") ","
    "   {'url': '" EXT("required-location-type") "', 'valueCodeableConcept': {'coding': [{'system': '" ROOMS "', 'code': 'procedure'}]}}]},"
    " {'resourceType': 'HealthcareService', 'id': 'echo', 'active': true, 'providedBy': " REF("Organization/org1") ","
    "  'type': [{'coding': [{'system': '" VT "', 'code': 'echo'}]}],"
    "  'location': [" REF("Location/clinic") "],"
    "  'extension': [{'url': '" EXT("required-device-type") "', 'valueCodeableConcept': {'coding': [{'system': '" DEVS "', 'code': 'ultrasound'}]}}]}]";

static const char *const ROLES =
    "[{'resourceType': 'PractitionerRole', 'id': 'r-eva', 'active': true, 'practitioner': " REF("Practitioner/eva") ","
    "  'organization': " REF("Organization/org1") ","
    "  'healthcareService': [" REF("HealthcareService/derm") ", " REF("HealthcareService/proc") ", " REF("HealthcareService/echo") "],"
    "  'location': [" REF("Location/clinic") "],"
    "  'specialty': [{'coding': [{'system': '" SCT "', 'code': '394582007'}]}],"
    "  'availableTime': [{'daysOfWeek': ['mon', 'tue', 'wed', 'thu'], 'availableStartTime': '09:00:00', 'availableEndTime': '17:00:00'}],"
    "  'notAvailable': [{'description': 'Congres', 'during': {'start': '2026-03-04', 'end': '2026-03-04'}}]},"
    " {'resourceType': 'PractitionerRole', 'id': 'r-mila', 'active': true, 'practitioner': " REF("Practitioner/mila") ","
    "  'organization': " REF("Organization/org2") ","
    "  'healthcareService': [" REF("HealthcareService/derm") "],"
    "  'location': [" REF("Location/clinic") ", " REF("Location/clinic2") "],"
    "  'specialty': [{'coding': [{'system': '" SCT "', 'code': '394814009'}]}],"
    "  'availableTime': [{'daysOfWeek': " WEEKDAYS_JSON ", 'availableStartTime': '08:00:00', 'availableEndTime': '12:00:00'}]}]";

static const char *const SCHEDULES =
    "[{'resourceType': 'Schedule', 'id': 's-eva', 'active': true, 'actor': [" REF("Practitioner/eva") "],"
    "  'planningHorizon': {'start': '2026-01-01', 'end': '2026-12-31'}},"
    " {'resourceType': 'Schedule', 'id': 's-mila', 'active': true, 'actor': [" REF("PractitionerRole/r-mila") "]}]";

static const char *const DEVICES =
    "[{'resourceType': 'Device', 'id': 'us1', 'status': 'active', 'type': {'coding': [{'system': '" DEVS "', 'code': 'ultrasound'}]},"
    "  'location': " REF("Location/clinic") "},"
    " {'resourceType': 'Device', 'id': 'us2', 'status': 'active', 'type': {'coding': [{'system': '" DEVS "', 'code': 'ultrasound'}]}},"
    " {'resourceType': 'Device', 'id': 'us3', 'status': 'active', 'type': {'coding': [{'system': '" DEVS "', 'code': 'ultrasound'}]},"
    "  'location': " REF("Location/clinic2") "},"
    " {'resourceType': 'Device', 'id': 'ecg1', 'status': 'active', 'type': {'coding': [{'system': '" DEVS "', 'code': 'ecg'}]}}]";

static void model_init(sched_model_t *m)
{
    m->services = J(SERVICES);
    m->roles = J(ROLES);
    m->locations = J(LOCATIONS);
    m->schedules = J(SCHEDULES);
    m->devices = J(DEVICES);
}

static void model_dispose(sched_model_t *m)
{
    sched_model_dispose(m);
}

static json_t *res(const sched_model_t *m, const char *key)
{
    json_t *r = sched_model_find(m, key);
    if (r == NULL)
        fail_msg("%s is not in the model", key);
    return r;
}

static void query_init(sched_find_query_t *q, int64_t from, int64_t to)
{
    memset(q, 0, sizeof(*q));
    q->now = utc(2026, 3, 1, 0, 0);
    q->from = from;
    q->to = to;
    q->timing_from = INT64_MIN;
    q->timing_to = INT64_MAX;
    q->count = 200;
}

static void push(char ***list, size_t *n, const char *value)
{
    *list = util_xrealloc(*list, (*n + 1) * sizeof(**list));
    (*list)[(*n)++] = util_xstrdup(value);
}

static void push_token(sched_token_t **list, size_t *n, const char *system, const char *code)
{
    *list = util_xrealloc(*list, (*n + 1) * sizeof(**list));
    (*list)[(*n)++] = (sched_token_t){system != NULL ? util_xstrdup(system) : NULL, util_xstrdup(code)};
}

typedef struct {
    sched_plan_t plan;
    sched_candidate_t *c;
    size_t n, total;
    util_buf_t why;
} run_t;

static void run(run_t *r, const sched_model_t *m, sched_load_t *load, const sched_find_query_t *q)
{
    sched_plan_build(&r->plan, m, q);
    util_buf_init(&r->why);
    r->c = NULL;
    r->n = r->total = 99999;
    sched_find_run(&r->plan, m, load, q, &r->c, &r->n, &r->total, &r->why);
}

static void run_dispose(run_t *r)
{
    sched_candidates_free(r->c, r->n);
    sched_plan_dispose(&r->plan);
    util_buf_dispose(&r->why);
}

static const char *prac_of(const run_t *r, size_t i)
{
    return r->plan.combos[r->c[i].combo].practitioner;
}

static const char *id_of(const json_t *resource)
{
    return json_string_value(json_object_get(resource, "id"));
}

static bool has_start(const run_t *r, int64_t s)
{
    for (size_t i = 0; i != r->n; ++i)
        if (r->c[i].start == s)
            return true;
    return false;
}

/* Checks that the candidates are exactly the starts from..last (inclusive) every `step` seconds, each `dur` long. */
static void expect_grid(const run_t *r, int64_t from, int64_t last, int64_t step, int64_t dur)
{
    size_t want = (size_t)((last - from) / step + 1);
    if (r->n != want) {
        for (size_t i = 0; i != r->n; ++i) {
            char b[32];
            sched_format_instant(r->c[i].start, b, sizeof(b));
            print_message("  %s %s\n", b, prac_of(r, i));
        }
        fail_msg("expected %zu candidates, got %zu (why: %s)", want, r->n, r->why.base);
    }
    for (size_t i = 0; i != want; ++i) {
        assert_int_equal(r->c[i].start, from + (int64_t)i * step);
        assert_int_equal(r->c[i].end, r->c[i].start + dur);
    }
}

static size_t count_combos(const sched_plan_t *p, const char *service, const char *prac, const char *clinic)
{
    size_t n = 0;
    for (size_t i = 0; i != p->ncombos; ++i) {
        const sched_combo_t *c = &p->combos[i];
        if ((service == NULL || strcmp(id_of(c->service), service) == 0) && (prac == NULL || strcmp(c->practitioner, prac) == 0) &&
            (clinic == NULL || strcmp(id_of(c->clinic), clinic) == 0))
            ++n;
    }
    return n;
}

static const sched_combo_t *combo(const sched_plan_t *p, const char *service, const char *prac, const char *clinic)
{
    for (size_t i = 0; i != p->ncombos; ++i) {
        const sched_combo_t *c = &p->combos[i];
        if (strcmp(id_of(c->service), service) == 0 && strcmp(c->practitioner, prac) == 0 && strcmp(id_of(c->clinic), clinic) == 0)
            return c;
    }
    fail_msg("no combination %s / %s / %s", service, prac, clinic);
    return NULL;
}

static bool json_list_has(const json_t *list, const char *value)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (strcmp(json_string_value(v), value) == 0)
            return true;
    }
    return false;
}

static void plan_of(sched_plan_t *plan, const sched_model_t *m, const sched_find_query_t *q)
{
    sched_plan_build(plan, m, q);
}

/* ---- the plan ---- */

static void test_plan_everything(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_find_query_t q;
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    sched_plan_t p;
    plan_of(&p, &m, &q);
    /* derm: Eva at the clinic (her role names only it), Mila at both; proc and echo: Eva */
    assert_int_equal(p.ncombos, 5);
    assert_int_equal(count_combos(&p, "derm", "Practitioner/eva", "clinic"), 1);
    assert_int_equal(count_combos(&p, "derm", "Practitioner/eva", "clinic2"), 0);
    assert_int_equal(count_combos(&p, "derm", "Practitioner/mila", "clinic"), 1);
    assert_int_equal(count_combos(&p, "derm", "Practitioner/mila", "clinic2"), 1);
    assert_int_equal(count_combos(&p, "proc", "Practitioner/eva", "clinic"), 1);
    assert_int_equal(count_combos(&p, "echo", "Practitioner/eva", "clinic"), 1);
    /* the room group: active procedure rooms inside the clinic, not room3 (consult), room4 (inactive), roomX (Utrecht) */
    const sched_combo_t *c = combo(&p, "proc", "Practitioner/eva", "clinic");
    assert_int_equal(json_array_size(c->groups), 1);
    json_t *rooms = json_array_get(c->groups, 0);
    assert_int_equal(json_array_size(rooms), 2);
    assert_string_equal(id_of(json_array_get(rooms, 0)), "room1");
    assert_string_equal(id_of(json_array_get(rooms, 1)), "room2");
    assert_string_equal(c->tz_name, "Europe/Amsterdam"); /* inherited from the building */
    assert_string_equal(id_of(c->schedule), "s-eva");
    assert_string_equal(id_of(c->role), "r-eva");
    /* the device group: at the clinic or nowhere in particular, not at clinic2, not another type */
    c = combo(&p, "echo", "Practitioner/eva", "clinic");
    json_t *devices = json_array_get(c->groups, 0);
    assert_int_equal(json_array_size(devices), 2);
    assert_string_equal(id_of(json_array_get(devices, 0)), "us1");
    assert_string_equal(id_of(json_array_get(devices, 1)), "us2");
    assert_int_equal(json_array_size(combo(&p, "derm", "Practitioner/eva", "clinic")->groups), 0);
    assert_string_equal(combo(&p, "derm", "Practitioner/mila", "clinic2")->tz_name, "Europe/Amsterdam");
    assert_string_equal(id_of(combo(&p, "derm", "Practitioner/mila", "clinic2")->schedule), "s-mila");
    /* what must be loaded */
    const char *actors[] = {"Practitioner/eva", "PractitionerRole/r-eva", "Practitioner/mila", "PractitionerRole/r-mila",
                            "Location/room1", "Location/room2", "Device/us1", "Device/us2"};
    for (size_t i = 0; i != sizeof(actors) / sizeof(actors[0]); ++i)
        if (!json_list_has(p.actors, actors[i]))
            fail_msg("%s is not among the actors to load", actors[i]);
    assert_int_equal(json_array_size(p.actors), 8);
    assert_int_equal(json_array_size(p.schedules), 2);
    assert_true(json_list_has(p.schedules, "schedule=Schedule/s-eva"));
    assert_true(json_list_has(p.schedules, "schedule=Schedule/s-mila"));
    for (size_t i = 0; i != p.ncombos; ++i)
        for (int k = 0; k != 5; ++k)
            assert_int_equal(p.combos[i].rank[k], 0);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    model_dispose(&m);
}

static void test_plan_filters(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_find_query_t q;
    sched_plan_t p;

    /* practitioner: by Practitioner or PractitionerRole, in preference order */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.practitioners, &q.npractitioners, "Practitioner/mila");
    push(&q.practitioners, &q.npractitioners, "PractitionerRole/r-eva");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 5);
    assert_int_equal(combo(&p, "derm", "Practitioner/mila", "clinic")->rank[0], 0);
    assert_int_equal(combo(&p, "derm", "Practitioner/eva", "clinic")->rank[0], 1);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.practitioners, &q.npractitioners, "Practitioner/nobody");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 0);
    assert_non_null(strstr(p.why.base, "no active PractitionerRole offers a matching service"));
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);

    /* visit-type: HealthcareService.type, with or without system */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push_token(&q.visit_types, &q.nvisit_types, VT, "derm-proc");
    push_token(&q.visit_types, &q.nvisit_types, VT, "derm-consult");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 4);
    assert_int_equal(combo(&p, "proc", "Practitioner/eva", "clinic")->rank[2], 0);
    assert_int_equal(combo(&p, "derm", "Practitioner/eva", "clinic")->rank[2], 1);
    assert_int_equal(combo(&p, "derm", "Practitioner/mila", "clinic2")->rank[2], 1);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push_token(&q.visit_types, &q.nvisit_types, NULL, "derm-consult");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 3);
    assert_int_equal(count_combos(&p, "derm", NULL, NULL), 3);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push_token(&q.visit_types, &q.nvisit_types, "http://other.org", "derm-consult");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 0);
    assert_non_null(strstr(p.why.base, "no active HealthcareService matches the requested visit-type"));
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);

    /* specialty: the role's or the service's */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push_token(&q.specialties, &q.nspecialties, SCT, "394814009"); /* general practice: Mila's role */
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 2);
    assert_int_equal(count_combos(&p, NULL, "Practitioner/mila", NULL), 2);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push_token(&q.specialties, &q.nspecialties, SCT, "394814009");
    push_token(&q.specialties, &q.nspecialties, SCT, "394582007"); /* dermatology: Eva's role and the derm service */
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 5);
    assert_int_equal(combo(&p, "derm", "Practitioner/mila", "clinic")->rank[3], 0);
    assert_int_equal(combo(&p, "derm", "Practitioner/eva", "clinic")->rank[3], 1);
    assert_int_equal(combo(&p, "proc", "Practitioner/eva", "clinic")->rank[3], 1);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);

    /* organization: the role's organization or the service's providedBy */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.organizations, &q.norganizations, "Organization/org2");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 2);
    assert_int_equal(count_combos(&p, NULL, "Practitioner/mila", NULL), 2);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.organizations, &q.norganizations, "Organization/org2");
    push(&q.organizations, &q.norganizations, "Organization/org1");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 5);
    assert_int_equal(combo(&p, "derm", "Practitioner/mila", "clinic")->rank[4], 0);
    assert_int_equal(combo(&p, "derm", "Practitioner/eva", "clinic")->rank[4], 1);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.organizations, &q.norganizations, "Organization/org3");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 0);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    model_dispose(&m);
}

static void test_plan_locations(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_find_query_t q;
    sched_plan_t p;

    /* location-reference: a clinic; the list order is the preference */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.locations, &q.nlocations, "Location/clinic2");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 1);
    assert_int_equal(count_combos(&p, "derm", "Practitioner/mila", "clinic2"), 1);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.locations, &q.nlocations, "Location/clinic2");
    push(&q.locations, &q.nlocations, "Location/clinic");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 5);
    assert_int_equal(combo(&p, "derm", "Practitioner/mila", "clinic2")->rank[1], 0);
    assert_int_equal(combo(&p, "derm", "Practitioner/mila", "clinic")->rank[1], 1);
    assert_int_equal(combo(&p, "proc", "Practitioner/eva", "clinic")->rank[1], 1);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    /* a room: narrows the room group of a service that needs one; services without rooms cannot be there */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.locations, &q.nlocations, "Location/room2");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 1);
    const sched_combo_t *c = combo(&p, "proc", "Practitioner/eva", "clinic");
    assert_int_equal(c->rank[1], 0);
    assert_int_equal(json_array_size(json_array_get(c->groups, 0)), 1);
    assert_string_equal(id_of(json_array_get(json_array_get(c->groups, 0), 0)), "room2");
    assert_non_null(strstr(p.why.base, "no practitioner offering the service works at the requested location"));
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    /* a room of another type gives nothing */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.locations, &q.nlocations, "Location/room3");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 0);
    assert_non_null(strstr(p.why.base, "no practitioner offering the service works at the requested location"));
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);

    /* location-string (folded): the clinic's or an ancestor's name or address, starts-with */
    struct {
        const char *text;
        size_t combos;
    } strings[] = {{"amst", 4}, {"amsterdam", 4}, {"utrecht", 1}, {"polikliniek", 4}, {"gezondheidscentrum", 4},
                   {"beethoven", 4}, {"1077", 4},     {"huisarts", 1}, {"nowhere", 0}};
    for (size_t i = 0; i != sizeof(strings) / sizeof(strings[0]); ++i) {
        query_init(&q, L(2, 0, 0), L(3, 0, 0));
        push(&q.location_strings, &q.nlocation_strings, strings[i].text);
        plan_of(&p, &m, &q);
        if (p.ncombos != strings[i].combos)
            fail_msg("location-string %s: %zu combinations, expected %zu", strings[i].text, p.ncombos, strings[i].combos);
        if (p.ncombos == 0)
            assert_non_null(strstr(p.why.base, "no clinic matches location-string"));
        sched_plan_dispose(&p);
        sched_find_query_dispose(&q);
    }
    /* starts-with on words: "dermatologie" finds "Polikliniek Dermatologie" */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.location_strings, &q.nlocation_strings, "dermatologie");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 4);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.location_strings, &q.nlocation_strings, "nowhere");
    push(&q.location_strings, &q.nlocation_strings, "utr");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 1);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    model_dispose(&m);
}

static void test_plan_partof_cycle(void **state)
{
    sched_model_t m;
    model_init(&m);
    /* the building is part of the clinic, which is part of the building */
    json_object_set_new(res(&m, "Location/bldg"), "partOf", J(REF("Location/clinic")));
    sched_find_query_t q;
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    sched_plan_t p;
    plan_of(&p, &m, &q); /* time zones and rooms follow a bounded chain */
    assert_int_equal(p.ncombos, 5);
    assert_string_equal(combo(&p, "proc", "Practitioner/eva", "clinic")->tz_name, "Europe/Amsterdam");
    sched_plan_dispose(&p);
    /* a location-string that matches no level of the cycle: run in a child that an alarm stops */
    push(&q.location_strings, &q.nlocation_strings, "nowhere");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(3);
        plan_of(&p, &m, &q);
        _exit(p.ncombos == 0 ? 0 : 1); /* nothing matches: clinic2 (Utrecht, outside the cycle) neither */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* a partOf cycle must not hang the walk up the chain */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    sched_find_query_dispose(&q);
    model_dispose(&m);
}

static void test_plan_missing_pieces(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_find_query_t q;
    sched_plan_t p;
    /* no room of the required type in the clinic: no combination, and the reason */
    json_t *wanted = json_object_get(sched_ext(res(&m, "HealthcareService/proc"), "required-location-type"), "valueCodeableConcept");
    json_object_set_new(json_array_get(json_object_get(wanted, "coding"), 0), "code", json_string("laser"));
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push_token(&q.visit_types, &q.nvisit_types, VT, "derm-proc");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 0);
    assert_non_null(strstr(p.why.base, "no active room of the type the service needs in the clinic"));
    run_t r;
    sched_load_t load;
    sched_load_init(&load);
    run(&r, &m, &load, &q);
    assert_int_equal(r.total, 0);
    assert_int_equal(r.n, 0);
    run_dispose(&r);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    /* the same for devices */
    wanted = json_object_get(sched_ext(res(&m, "HealthcareService/echo"), "required-device-type"), "valueCodeableConcept");
    json_object_set_new(json_array_get(json_object_get(wanted, "coding"), 0), "code", json_string("mri"));
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push_token(&q.visit_types, &q.nvisit_types, VT, "echo");
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 0);
    assert_non_null(strstr(p.why.base, "no active device of the type the service needs at the clinic"));
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    /* no active Schedule */
    json_object_set_new(res(&m, "Schedule/s-eva"), "active", json_false());
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    plan_of(&p, &m, &q);
    assert_int_equal(count_combos(&p, NULL, "Practitioner/eva", NULL), 0);
    assert_int_equal(count_combos(&p, NULL, "Practitioner/mila", NULL), 2);
    assert_non_null(strstr(p.why.base, "a matching practitioner has no active Schedule"));
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    /* inactive service, role, clinic */
    json_object_set_new(res(&m, "Schedule/s-eva"), "active", json_true());
    json_object_set_new(res(&m, "HealthcareService/derm"), "active", json_false());
    json_object_set_new(res(&m, "PractitionerRole/r-eva"), "active", json_false());
    json_object_set_new(res(&m, "Location/clinic2"), "status", json_string("suspended"));
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    plan_of(&p, &m, &q);
    assert_int_equal(p.ncombos, 0);
    sched_plan_dispose(&p);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    model_dispose(&m);
}

/* ---- proposals ---- */

static void find_for(run_t *r, const sched_model_t *m, sched_load_t *load, sched_find_query_t *q, const char *prac,
                     const char *visit_type)
{
    if (prac != NULL)
        push(&q->practitioners, &q->npractitioners, prac);
    if (visit_type != NULL)
        push_token(&q->visit_types, &q->nvisit_types, VT, visit_type);
    run(r, m, load, q);
}

static void test_find_hours(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_load_init(&load);
    sched_find_query_t q;
    run_t r;
    /* Monday: Eva 09-17 inside the clinic's 08-17, local time; 30 minutes on the default 15-minute grid */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, L(2, 9, 0), L(2, 16, 30), 15 * MIN, 30 * MIN);
    assert_int_equal(r.total, 31);
    for (size_t i = 0; i != r.n; ++i) {
        assert_string_equal(prac_of(&r, i), "Practitioner/eva");
        assert_null(r.c[i].slot);
        assert_int_equal(json_array_size(r.c[i].members), 0);
    }
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* Friday: Eva does not work; Wednesday: leave */
    for (unsigned day = 4; day <= 6; day += 2) {
        query_init(&q, L(day, 0, 0), L(day + 1, 0, 0));
        find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
        assert_int_equal(r.total, 0);
        assert_int_equal(r.n, 0);
        assert_non_null(strstr(r.why.base, "no free time between start and end"));
        run_dispose(&r);
        sched_find_query_dispose(&q);
    }
    /* leave given as instants ends exactly at its end: a 12:00 start is possible again */
    json_array_append_new(json_object_get(res(&m, "PractitionerRole/r-eva"), "notAvailable"),
                          J("{'description': 'Tandarts', 'during': {'start': '2026-03-02T09:00:00+01:00', 'end': '2026-03-02T12:00:00+01:00'}}"));
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, L(2, 12, 0), L(2, 16, 30), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    json_array_remove(json_object_get(res(&m, "PractitionerRole/r-eva"), "notAvailable"), 1);
    /* Mila: 08-12 at the clinic (08-17) and at clinic2 (09-12); the same start at both clinics is one proposal */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/mila", NULL);
    expect_grid(&r, L(2, 8, 0), L(2, 11, 30), 15 * MIN, 30 * MIN);
    assert_int_equal(r.total, 15);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* the window cuts the day: only starts whose whole appointment is inside [start, end) */
    query_init(&q, L(2, 10, 10), L(2, 11, 50));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, L(2, 10, 15), L(2, 11, 15), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* after the change to summer time (2026-03-29) 09:00 local is 07:00 UTC */
    query_init(&q, utc(2026, 3, 29, 22, 0), utc(2026, 3, 30, 22, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, utc(2026, 3, 30, 7, 0), utc(2026, 3, 30, 14, 30), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* a clinic in New York: the same wall-clock hours, other instants */
    json_object_set_new(json_array_get(json_object_get(res(&m, "Location/bldg"), "extension"), 0), "valueCode",
                        json_string("America/New_York"));
    query_init(&q, utc(2026, 3, 2, 5, 0), utc(2026, 3, 3, 5, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, utc(2026, 3, 2, 14, 0), utc(2026, 3, 2, 21, 30), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* no zone anywhere on the chain: scheduling.default_timezone */
    json_object_del(res(&m, "Location/bldg"), "extension");
    const char *saved = sched_settings.default_timezone;
    sched_settings.default_timezone = "Asia/Tokyo";
    query_init(&q, utc(2026, 3, 1, 15, 0), utc(2026, 3, 2, 15, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, utc(2026, 3, 2, 0, 0), utc(2026, 3, 2, 7, 30), 15 * MIN, 30 * MIN);
    assert_string_equal(r.plan.combos[0].tz_name, "Asia/Tokyo");
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_settings.default_timezone = "UTC";
    query_init(&q, utc(2026, 3, 2, 0, 0), utc(2026, 3, 3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, utc(2026, 3, 2, 9, 0), utc(2026, 3, 2, 16, 30), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_settings.default_timezone = saved;
    sched_load_dispose(&load);
    model_dispose(&m);
}

static void test_find_clinic_hours_narrow(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_load_init(&load);
    sched_find_query_t q;
    run_t r;
    /* the building closes at 13:00 on Mondays: every level of the partOf chain that states hours narrows them */
    json_object_set_new(res(&m, "Location/bldg"), "hoursOfOperation",
                        J("[{'daysOfWeek': ['mon'], 'openingTime': '07:00:00', 'closingTime': '13:00:00'},"
                          " {'daysOfWeek': ['tue', 'wed', 'thu', 'fri'], 'allDay': true}]"));
    query_init(&q, L(2, 0, 0), L(4, 0, 0));
    q.count = 15;
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 15 + 31); /* Monday 09:00-13:00, Tuesday as before */
    expect_grid(&r, L(2, 9, 0), L(2, 12, 30), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    model_dispose(&m);
}

static void test_find_buffers_alignment_busy(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_find_query_t q;
    run_t r;
    /* proc: 60 minutes on a 30-minute grid with 15 minutes after, and a procedure room */
    sched_load_init(&load);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, NULL, "derm-proc");
    expect_grid(&r, L(2, 9, 0), L(2, 15, 30), 30 * MIN, HOUR); /* 15:30 + 60 + 15 = 16:45; 16:00 + 75 is past 17:00 */
    for (size_t i = 0; i != r.n; ++i) {
        assert_int_equal(json_array_size(r.c[i].members), 1);
        assert_string_equal(id_of(json_array_get(r.c[i].members, 0)), "room1");
    }
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);

    /* Eva busy 12:00-12:30: the buffer after also keeps 11:00 (ends 12:00, buffer to 12:15) out */
    sched_load_init(&load);
    sched_load_add_busy(&load, "Practitioner/eva", L(2, 12, 0), L(2, 12, 30), "a1");
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, NULL, "derm-proc");
    assert_int_equal(r.total, 14 - 3);
    assert_true(has_start(&r, L(2, 10, 30)));
    assert_false(has_start(&r, L(2, 11, 0)));
    assert_false(has_start(&r, L(2, 11, 30)));
    assert_false(has_start(&r, L(2, 12, 0)));
    assert_true(has_start(&r, L(2, 12, 30)));
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* without buffers (derm) only the starts that overlap the busy time go */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 31 - 3);
    assert_true(has_start(&r, L(2, 11, 30)));
    assert_false(has_start(&r, L(2, 11, 45)));
    assert_false(has_start(&r, L(2, 12, 15)));
    assert_true(has_start(&r, L(2, 12, 30)));
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* a busy row of the appointment being rechecked does not count */
    load.ignore_appointment = "a1";
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 31);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);

    /* a buffer before (service extension) is free time needed before the start */
    sched_load_init(&load);
    sched_ext_set_duration(res(&m, "HealthcareService/derm"), "buffer-before", 10 * MIN);
    sched_load_add_busy(&load, "Practitioner/eva", L(2, 9, 0), L(2, 10, 0), NULL);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.c[0].start, L(2, 10, 15));
    assert_int_equal(r.total, 31 - 5);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_ext_remove(res(&m, "HealthcareService/derm"), "buffer-before");
    sched_load_dispose(&load);

    /* busy rows of the role count for its practitioner; other people's do not */
    sched_load_init(&load);
    sched_load_add_busy(&load, "PractitionerRole/r-eva", L(2, 9, 0), L(2, 10, 0), "a2");
    sched_load_add_busy(&load, "Practitioner/mila", L(2, 0, 0), L(3, 0, 0), "a3");
    sched_load_add_busy(&load, "Location/clinic", L(2, 0, 0), L(3, 0, 0), "a4"); /* the clinic is not exclusive */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, L(2, 10, 0), L(2, 16, 30), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);

    /* rooms: room1 taken all day -> room2; both taken 13-14 -> no proc then */
    sched_load_init(&load);
    sched_load_add_busy(&load, "Location/room1", L(2, 0, 0), L(3, 0, 0), "b1");
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, NULL, "derm-proc");
    assert_int_equal(r.total, 14);
    for (size_t i = 0; i != r.n; ++i)
        assert_string_equal(id_of(json_array_get(r.c[i].members, 0)), "room2");
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    sched_load_init(&load);
    sched_load_add_busy(&load, "Location/room1", L(2, 13, 0), L(2, 14, 0), "b2");
    sched_load_add_busy(&load, "Location/room2", L(2, 12, 30), L(2, 14, 0), "b3");
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, NULL, "derm-proc");
    /* with room1 alone free until 13:00, 11:30 (to 12:45 with the buffer) is still possible; 12:00 .. 13:30 are not */
    assert_int_equal(r.total, 14 - 4);
    for (size_t i = 0; i != r.n; ++i) {
        int64_t s = r.c[i].start;
        assert_false(s >= L(2, 12, 0) && s <= L(2, 13, 30));
        const char *room = id_of(json_array_get(r.c[i].members, 0));
        assert_string_equal(room, "room1");
    }
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    /* a room with its own hours: room1 only in the afternoon -> mornings go to room2 */
    json_object_set_new(res(&m, "Location/room1"), "hoursOfOperation",
                        J("[{'daysOfWeek': ['mon'], 'openingTime': '13:00:00', 'closingTime': '17:00:00'}]"));
    sched_load_init(&load);
    sched_load_add_busy(&load, "Location/room2", L(2, 13, 0), L(2, 17, 0), "b4");
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, NULL, "derm-proc");
    /* 11:30 needs room2 until 12:45: free; 12:00 and 12:30 would need room2 before 13:00 and room1 after it */
    assert_int_equal(r.total, 14 - 2);
    for (size_t i = 0; i != r.n; ++i)
        assert_string_equal(id_of(json_array_get(r.c[i].members, 0)), r.c[i].start < L(2, 12, 0) ? "room2" : "room1");
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    model_dispose(&m);
}

static void test_find_devices(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_find_query_t q;
    run_t r;
    sched_load_init(&load);
    sched_load_add_busy(&load, "Device/us1", L(2, 0, 0), L(3, 0, 0), "d1");
    sched_load_add_busy(&load, "Device/us2", L(2, 9, 0), L(2, 12, 0), "d2");
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, NULL, "echo");
    expect_grid(&r, L(2, 12, 0), L(2, 16, 30), 15 * MIN, 30 * MIN);
    for (size_t i = 0; i != r.n; ++i)
        assert_string_equal(id_of(json_array_get(r.c[i].members, 0)), "us2");
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    model_dispose(&m);
}

static void add_slot(sched_load_t *load, const char *id, const char *schedule, const char *status, int64_t s, int64_t e)
{
    char ref[80];
    snprintf(ref, sizeof(ref), "Schedule/%s", schedule);
    assert_int_equal(sched_load_add_slot(load, id, ref, status, s, e), 0);
}

/* Drops the loaded Slots (a test reusing one load for several cases). */
static void clear_slots(sched_load_t *load)
{
    for (size_t i = 0; i != load->nslots; ++i)
        free(load->slots[i].id);
    load->nslots = 0;
}

static void test_find_slots(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_find_query_t q;
    run_t r;
    /* Mila's Schedule publishes Slots: exactly the free ones are offered, with their own times */
    sched_load_init(&load);
    json_object_set_new(load.slot_schedules, "Schedule/s-mila", json_true());
    add_slot(&load, "sl1", "s-mila", "free", L(2, 10, 0), L(2, 10, 20));
    add_slot(&load, "sl2", "s-mila", "free", L(2, 10, 40), L(2, 11, 0));
    add_slot(&load, "sl3", "s-mila", "busy", L(2, 11, 0), L(2, 11, 20));
    add_slot(&load, "sl4", "s-mila", "free", L(2, 14, 0), L(2, 14, 20)); /* outside her hours */
    add_slot(&load, "sl5", "s-eva", "free", L(2, 10, 0), L(2, 10, 20));
    add_slot(&load, "sl6", "s-mila", "free", L(3, 10, 0), L(3, 10, 20)); /* outside the window */
    add_slot(&load, "sl7", "s-mila", "busy-tentative", L(2, 15, 0), L(2, 15, 20));
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/mila", NULL);
    assert_int_equal(r.total, 3); /* the two clinics offer the same Slots: one proposal each */
    const char *want[] = {"sl1", "sl2", "sl4"};
    for (size_t i = 0; i != 3; ++i) {
        assert_non_null(r.c[i].slot);
        assert_string_equal(r.c[i].slot->id, want[i]);
        assert_int_equal(r.c[i].start, r.c[i].slot->start);
        assert_int_equal(r.c[i].end, r.c[i].slot->end);
        assert_string_equal(prac_of(&r, i), "Practitioner/mila");
    }
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* a Slot taken by an appointment (busy row Slot/x), the practitioner's busy rows and the patients' remove Slots */
    sched_load_add_busy(&load, "Slot/sl2", L(2, 10, 40), L(2, 11, 0), "c1");
    sched_load_add_busy(&load, "Practitioner/mila", L(2, 14, 10), L(2, 14, 30), "c2");
    sched_load_add_busy(&load, "Patient/p1", L(2, 9, 45), L(2, 10, 5), "c3");
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/mila", NULL);
    assert_int_equal(r.total, 1);
    assert_string_equal(r.c[0].slot->id, "sl1");
    run_dispose(&r);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.patients, &q.npatients, "Patient/p1");
    find_for(&r, &m, &load, &q, "Practitioner/mila", NULL);
    assert_int_equal(r.total, 0);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* minimum notice applies to Slots too */
    sched_ext_set_duration(res(&m, "HealthcareService/derm"), "minimum-notice", 1 * DAY);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    q.now = L(1, 10, 0);
    find_for(&r, &m, &load, &q, "Practitioner/mila", NULL);
    assert_int_equal(r.total, 1); /* sl1 at 10:00 the next day is exactly a day ahead */
    run_dispose(&r);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    q.now = L(1, 10, 1);
    find_for(&r, &m, &load, &q, "Practitioner/mila", NULL);
    assert_int_equal(r.total, 0); /* sl1 starts at 10:00 the next day, less than a day ahead */
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);

    /* a Slot beyond the Schedule's planning horizon: $hold/$book refuse it (sched_check_rules), so $find should not offer it */
    sched_load_init(&load);
    json_object_set_new(load.slot_schedules, "Schedule/s-mila", json_true());
    add_slot(&load, "sl1", "s-mila", "free", L(2, 10, 0), L(2, 10, 20));
    json_object_set_new(res(&m, "Schedule/s-mila"), "planningHorizon", J("{'start': '2026-01-01', 'end': '2026-02-28'}"));
    json_t *appt = J("{'resourceType': 'Appointment', 'start': '2026-03-02T10:00:00+01:00', 'end': '2026-03-02T10:20:00+01:00',"
                     " 'participant': [{'actor': " REF("PractitionerRole/r-mila") "}, {'actor': " REF("Location/clinic") "},"
                     " {'actor': " REF("HealthcareService/derm") "}]}");
    util_buf_t why;
    util_buf_init(&why);
    assert_int_equal(sched_check_rules(&m, &load, appt, utc(2026, 3, 1, 0, 0), &why), -1);
    assert_non_null(strstr(why.base, "outside the planning horizon of Schedule/s-mila"));
    util_buf_dispose(&why);
    json_decref(appt);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/mila", NULL);
    /* a free Slot beyond the planning horizon is not proposed (the $hold would refuse it) */
    assert_int_equal(r.total, 0);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    json_object_del(res(&m, "Schedule/s-mila"), "planningHorizon");
    sched_load_dispose(&load);

    /* a busy-unavailable Slot on a rule-based Schedule blocks that time; a free Slot there adds nothing */
    sched_load_init(&load);
    add_slot(&load, "blk", "s-eva", "busy-unavailable", L(2, 9, 0), L(2, 12, 0));
    add_slot(&load, "fr", "s-eva", "free", L(2, 7, 0), L(2, 8, 0));
    add_slot(&load, "eie", "s-eva", "entered-in-error", L(2, 13, 0), L(2, 14, 0));
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, L(2, 12, 0), L(2, 16, 30), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    model_dispose(&m);
}

static void test_find_patients(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_load_init(&load);
    sched_load_add_busy(&load, "Patient/p1", L(2, 9, 0), L(2, 10, 0), "e1");
    sched_load_add_busy(&load, "Patient/p2", L(2, 0, 0), L(3, 0, 0), "e2");
    sched_find_query_t q;
    run_t r;
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.patients, &q.npatients, "Patient/p1");
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, L(2, 10, 0), L(2, 16, 30), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* without the patient in the query their appointments do not matter */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 31);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    model_dispose(&m);
}

static void test_find_timing(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_load_init(&load);
    sched_find_query_t q;
    run_t r;
    /* Monday and Tuesday: 31 starts each */
    query_init(&q, L(2, 0, 0), L(4, 0, 0));
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 62);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* dayOfWeek */
    query_init(&q, L(2, 0, 0), L(4, 0, 0));
    q.timing_days = SCHED_DAY_TUE;
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, L(3, 9, 0), L(3, 16, 30), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* MORN (before 12:00 local), AFT (12:00-18:00), both, EVE */
    struct {
        unsigned when;
        size_t n;
        int64_t first;
    } parts[] = {{1, 12, L(2, 9, 0)}, {2, 19, L(2, 12, 0)}, {3, 31, L(2, 9, 0)}, {4, 0, 0}, {8, 0, 0}};
    for (size_t i = 0; i != sizeof(parts) / sizeof(parts[0]); ++i) {
        query_init(&q, L(2, 0, 0), L(3, 0, 0));
        q.timing_when = parts[i].when;
        find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
        if (r.total != parts[i].n)
            fail_msg("when %u: %zu proposals, expected %zu", parts[i].when, r.total, parts[i].n);
        if (r.n != 0)
            assert_int_equal(r.c[0].start, parts[i].first);
        run_dispose(&r);
        sched_find_query_dispose(&q);
    }
    /* timeOfDay: starts at exactly these local times */
    query_init(&q, L(2, 0, 0), L(4, 0, 0));
    q.timing_times = util_xmalloc(2 * sizeof(int32_t));
    q.timing_times[0] = 10 * HOUR;
    q.timing_times[1] = 14 * HOUR + 30 * MIN;
    q.ntiming_times = 2;
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 4);
    assert_int_equal(r.c[0].start, L(2, 10, 0));
    assert_int_equal(r.c[1].start, L(2, 14, 30));
    assert_int_equal(r.c[2].start, L(3, 10, 0));
    assert_int_equal(r.c[3].start, L(3, 14, 30));
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* boundsPeriod: the whole appointment inside */
    query_init(&q, L(2, 0, 0), L(4, 0, 0));
    q.timing_from = L(2, 10, 0);
    q.timing_to = L(2, 11, 0);
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    expect_grid(&r, L(2, 10, 0), L(2, 10, 30), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* all together: Tuesday mornings at 11:00 */
    query_init(&q, L(2, 0, 0), L(4, 0, 0));
    q.timing_days = SCHED_DAY_TUE;
    q.timing_when = 1;
    q.timing_times = util_xmalloc(2 * sizeof(int32_t));
    q.timing_times[0] = 11 * HOUR;
    q.timing_times[1] = 13 * HOUR; /* afternoon: excluded by MORN */
    q.ntiming_times = 2;
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 1);
    assert_int_equal(r.c[0].start, L(3, 11, 0));
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    model_dispose(&m);
}

static void test_find_count_and_order(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_load_init(&load);
    sched_find_query_t q;
    run_t r;
    /* _count: the soonest few, total counts them all */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    q.count = 5;
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 31);
    expect_grid(&r, L(2, 9, 0), L(2, 10, 0), 15 * MIN, 30 * MIN);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    q.count = 0;
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 31);
    assert_int_equal(r.n, 0);
    run_dispose(&r);
    sched_find_query_dispose(&q);

    /* preference first, then start: Mila is asked for first, so all her times come before Eva's */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.practitioners, &q.npractitioners, "Practitioner/mila");
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 15 + 31);
    for (size_t i = 0; i != r.n; ++i) {
        assert_string_equal(prac_of(&r, i), i < 15 ? "Practitioner/mila" : "Practitioner/eva");
        if (i != 0 && i != 15)
            assert_true(r.c[i].start > r.c[i - 1].start);
    }
    assert_int_equal(r.c[0].start, L(2, 8, 0));
    assert_int_equal(r.c[15].start, L(2, 9, 0));
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* equal preference: by start only, the two practitioners interleave; the same start of two people is kept twice */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    find_for(&r, &m, &load, &q, NULL, "derm-consult");
    assert_int_equal(r.total, 15 + 31);
    for (size_t i = 1; i != r.n; ++i)
        assert_true(r.c[i].start >= r.c[i - 1].start);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* location preference: clinic2 first, then the clinic */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    push(&q.locations, &q.nlocations, "Location/clinic2");
    push(&q.locations, &q.nlocations, "Location/clinic");
    find_for(&r, &m, &load, &q, "Practitioner/mila", NULL);
    assert_int_equal(r.total, 15); /* still one proposal per start */
    for (size_t i = 0; i != r.n; ++i)
        assert_string_equal(id_of(r.plan.combos[r.c[i].combo].clinic), i < 11 ? "clinic2" : "clinic");
    assert_int_equal(r.c[0].start, L(2, 9, 0));
    assert_int_equal(r.c[11].start, L(2, 8, 0));
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    model_dispose(&m);
}

static void test_find_dedup(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_load_init(&load);
    sched_find_query_t q;
    run_t r;
    /* Eva offers derm, proc and echo: each service is proposed at its own starts, never twice at one start */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    q.count = 1000;
    find_for(&r, &m, &load, &q, "Practitioner/eva", NULL);
    size_t derm = 0;
    for (size_t i = 0; i != r.n; ++i) {
        derm += strcmp(id_of(r.plan.combos[r.c[i].combo].service), "derm") == 0;
        for (size_t j = 0; j != i; ++j)
            assert_false(r.c[i].start == r.c[j].start && r.plan.combos[r.c[i].combo].service == r.plan.combos[r.c[j].combo].service);
    }
    assert_int_equal(derm, 31);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* visit types in preference order: all of proc's 14 starts first, then derm's 31 */
    query_init(&q, L(2, 0, 0), L(3, 0, 0));
    q.count = 1000;
    push_token(&q.visit_types, &q.nvisit_types, VT, "derm-proc");
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 45);
    for (size_t i = 0; i != r.n; ++i)
        assert_string_equal(id_of(r.plan.combos[r.c[i].combo].service), i < 14 ? "proc" : "derm");
    run_dispose(&r);
    sched_find_query_dispose(&q);
    /* the same over two weeks (Eva works Mon, Tue, Thu, then Mon-Thu): 7 x (14 + 31), however far apart the ranks
     * put a service's proposals */
    query_init(&q, L(2, 0, 0), L(14, 0, 0));
    push_token(&q.visit_types, &q.nvisit_types, VT, "derm-proc");
    find_for(&r, &m, &load, &q, "Practitioner/eva", "derm-consult");
    assert_int_equal(r.total, 315);
    run_dispose(&r);
    sched_find_query_dispose(&q);
    sched_load_dispose(&load);
    model_dispose(&m);
}

/* ---- rule checks ---- */

static json_t *appointment(const char *start, const char *end, const char *participants)
{
    char *text = util_asprintf("{'resourceType': 'Appointment', 'status': 'booked', 'start': '%s', 'end': '%s', 'participant': [%s]}", start,
                               end, participants);
    json_t *a = J(text);
    free(text);
    return a;
}

#define P(key) "{'actor': {'reference': '" key "'}, 'status': 'accepted'}"
#define EVA_DERM P("Patient/p1") ", " P("Practitioner/eva") ", " P("PractitionerRole/r-eva") ", " P("Location/clinic") ", " P("HealthcareService/derm")

static int check(const sched_model_t *m, sched_load_t *load, const json_t *appt, int64_t now, const char *expect_why)
{
    util_buf_t why;
    util_buf_init(&why);
    int ret = sched_check_rules(m, load, appt, now, &why);
    if (expect_why == NULL && ret != 0)
        fail_msg("refused: %s", why.base);
    if (expect_why != NULL && (ret != -1 || strstr(why.base, expect_why) == NULL))
        fail_msg("expected a refusal with \"%s\", got %d \"%s\"", expect_why, ret, why.base);
    util_buf_dispose(&why);
    return ret;
}

static void test_check_rules(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_load_init(&load);
    int64_t now = utc(2026, 3, 1, 0, 0);
    json_t *a;
    /* Monday 10:00-10:30 local with Eva at the clinic: fine */
    a = appointment("2026-03-02T09:00:00Z", "2026-03-02T09:30:00Z", EVA_DERM);
    check(&m, &load, a, now, NULL);
    /* the same without the role: found through the practitioner */
    json_decref(a);
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T10:30:00+01:00", P("Practitioner/eva") ", " P("Location/clinic") ", " P("HealthcareService/derm"));
    check(&m, &load, a, now, NULL);
    json_decref(a);
    /* the last half hour of her day, and a start at the very end of it */
    a = appointment("2026-03-02T16:30:00+01:00", "2026-03-02T17:00:00+01:00", EVA_DERM);
    check(&m, &load, a, now, NULL);
    json_decref(a);
    a = appointment("2026-03-02T16:45:00+01:00", "2026-03-02T17:15:00+01:00", EVA_DERM);
    check(&m, &load, a, now, "outside the working hours of Practitioner/eva");
    json_decref(a);
    /* outside working hours (08:30 local: the clinic is open, Eva is not) */
    a = appointment("2026-03-02T07:30:00Z", "2026-03-02T08:00:00Z", EVA_DERM);
    check(&m, &load, a, now, "outside the working hours of Practitioner/eva");
    json_decref(a);
    /* the appointment's own buffer-before must also be inside */
    a = appointment("2026-03-02T09:00:00+01:00", "2026-03-02T09:30:00+01:00", EVA_DERM);
    check(&m, &load, a, now, NULL);
    sched_ext_set_duration(a, "buffer-before", 15 * MIN);
    check(&m, &load, a, now, "outside the working hours of Practitioner/eva");
    json_decref(a);
    /* Friday: not a working day */
    a = appointment("2026-03-06T10:00:00+01:00", "2026-03-06T10:30:00+01:00", EVA_DERM);
    check(&m, &load, a, now, "outside the working hours of Practitioner/eva");
    json_decref(a);
    /* leave */
    a = appointment("2026-03-04T10:00:00+01:00", "2026-03-04T10:30:00+01:00", EVA_DERM);
    check(&m, &load, a, now, "Practitioner/eva is not available then (leave or absence)");
    json_decref(a);
    /* minimum notice and booking horizon of the service */
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T10:30:00+01:00", EVA_DERM);
    json_t *derm = res(&m, "HealthcareService/derm");
    sched_ext_set_duration(derm, "minimum-notice", 2 * DAY);
    check(&m, &load, a, now, "the appointment starts within the minimum notice of 2880 minutes");
    check(&m, &load, a, L(2, 10, 0) - 2 * DAY, NULL); /* exactly the notice */
    check(&m, &load, a, L(2, 10, 0) - 2 * DAY + 1, "minimum notice");
    sched_ext_remove(derm, "minimum-notice");
    sched_ext_set_duration(derm, "booking-horizon", 7 * DAY);
    check(&m, &load, a, L(2, 10, 0) - 7 * DAY, NULL);
    check(&m, &load, a, L(2, 10, 0) - 7 * DAY - 1, "the appointment starts beyond the booking horizon of 7 days");
    sched_ext_remove(derm, "booking-horizon");
    json_decref(a);
    /* outside the Schedule's planning horizon (ends with 2026) */
    a = appointment("2027-01-04T10:00:00+01:00", "2027-01-04T10:30:00+01:00", EVA_DERM);
    check(&m, &load, a, now, "outside the planning horizon of Schedule/s-eva");
    json_decref(a);
    /* no active Schedule */
    json_object_set_new(res(&m, "Schedule/s-eva"), "active", json_false());
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T10:30:00+01:00", EVA_DERM);
    check(&m, &load, a, now, "Practitioner/eva has no active Schedule");
    json_object_set_new(res(&m, "Schedule/s-eva"), "active", json_true());
    /* a blocked period: a busy-unavailable Slot */
    add_slot(&load, "blk", "s-eva", "busy-unavailable", L(2, 9, 45), L(2, 10, 15));
    check(&m, &load, a, now, "the time overlaps a blocked period (Slot/blk, busy-unavailable)");
    clear_slots(&load);
    add_slot(&load, "blk", "s-eva", "busy-unavailable", L(2, 9, 30), L(2, 10, 0)); /* touching */
    check(&m, &load, a, now, NULL);
    clear_slots(&load);
    json_decref(a);
    /* malformed */
    a = appointment("2026-03-02T10:30:00+01:00", "2026-03-02T10:00:00+01:00", EVA_DERM);
    check(&m, &load, a, now, "the appointment needs a start and an end after it");
    json_decref(a);
    a = J("{'resourceType': 'Appointment', 'start': '2026-03-02T10:00:00+01:00', 'participant': [" EVA_DERM "]}");
    check(&m, &load, a, now, "the appointment needs a start and an end after it");
    json_decref(a);
    sched_load_dispose(&load);
    model_dispose(&m);
}

static void test_check_rules_places(void **state)
{
    sched_model_t m;
    model_init(&m);
    sched_load_t load;
    sched_load_init(&load);
    int64_t now = utc(2026, 3, 1, 0, 0);
    json_t *a;
    /* a procedure needs a procedure room */
#define EVA_PROC P("Practitioner/eva") ", " P("PractitionerRole/r-eva") ", " P("Location/clinic") ", " P("HealthcareService/proc")
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T11:00:00+01:00", EVA_PROC ", " P("Location/room1"));
    check(&m, &load, a, now, NULL);
    json_decref(a);
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T11:00:00+01:00", EVA_PROC ", " P("Location/room3"));
    check(&m, &load, a, now, "HealthcareService/proc needs a room (Location) of type procedure and the appointment has none");
    json_decref(a);
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T11:00:00+01:00", EVA_PROC);
    check(&m, &load, a, now, "needs a room (Location) of type procedure");
    json_decref(a);
    /* an echo needs an ultrasound device */
#define EVA_ECHO P("Practitioner/eva") ", " P("PractitionerRole/r-eva") ", " P("Location/clinic") ", " P("HealthcareService/echo")
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T10:30:00+01:00", EVA_ECHO ", " P("Device/us2"));
    check(&m, &load, a, now, NULL);
    json_decref(a);
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T10:30:00+01:00", EVA_ECHO ", " P("Device/ecg1"));
    check(&m, &load, a, now, "HealthcareService/echo needs a Device of type ultrasound");
    json_decref(a);
    /* the room's own hours */
    json_object_set_new(res(&m, "Location/room1"), "hoursOfOperation",
                        J("[{'daysOfWeek': ['mon'], 'openingTime': '13:00:00', 'closingTime': '17:00:00'}]"));
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T11:00:00+01:00", EVA_PROC ", " P("Location/room1"));
    check(&m, &load, a, now, "outside the opening hours of Location/room1");
    json_decref(a);
    /* the clinic closed: Mila works 08-12, clinic2 opens at 09:00 */
#define MILA_AT(clinic) P("Practitioner/mila") ", " P("PractitionerRole/r-mila") ", " P("Location/" clinic) ", " P("HealthcareService/derm")
    a = appointment("2026-03-02T08:30:00+01:00", "2026-03-02T09:00:00+01:00", MILA_AT("clinic2"));
    check(&m, &load, a, now, "outside the opening hours of Location/clinic2");
    json_decref(a);
    a = appointment("2026-03-02T08:30:00+01:00", "2026-03-02T09:00:00+01:00", MILA_AT("clinic"));
    check(&m, &load, a, now, NULL);
    json_decref(a);
    /* the building's hours count for the clinic inside it */
    json_object_set_new(res(&m, "Location/bldg"), "hoursOfOperation", J("[{'daysOfWeek': " WEEKDAYS_JSON ", 'openingTime': '09:00:00'}]"));
    a = appointment("2026-03-02T08:30:00+01:00", "2026-03-02T09:00:00+01:00", MILA_AT("clinic"));
    check(&m, &load, a, now, "outside the opening hours of Location/clinic");
    json_decref(a);
    json_object_del(res(&m, "Location/bldg"), "hoursOfOperation");
    /* Mila's Schedule publishes Slots: only a Slot's exact time (free, or busy when rechecking) */
    json_object_set_new(load.slot_schedules, "Schedule/s-mila", json_true());
    add_slot(&load, "m1", "s-mila", "free", L(2, 10, 0), L(2, 10, 20));
    add_slot(&load, "m2", "s-mila", "busy", L(2, 10, 20), L(2, 10, 40));
    add_slot(&load, "m3", "s-mila", "busy-unavailable", L(2, 10, 40), L(2, 11, 0));
    add_slot(&load, "m4", "s-mila", "free", L(2, 14, 0), L(2, 14, 20));
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T10:20:00+01:00", MILA_AT("clinic"));
    check(&m, &load, a, now, NULL);
    json_decref(a);
    a = appointment("2026-03-02T10:20:00+01:00", "2026-03-02T10:40:00+01:00", MILA_AT("clinic"));
    check(&m, &load, a, now, NULL);
    json_decref(a);
    a = appointment("2026-03-02T10:00:00+01:00", "2026-03-02T10:30:00+01:00", MILA_AT("clinic"));
    check(&m, &load, a, now, "Schedule/s-mila publishes Slots and this time is not one of its free Slots");
    json_decref(a);
    a = appointment("2026-03-02T10:40:00+01:00", "2026-03-02T11:00:00+01:00", MILA_AT("clinic"));
    check(&m, &load, a, now, "publishes Slots");
    json_decref(a);
    /* a Slot is taken as published, outside working and opening hours too */
    a = appointment("2026-03-02T14:00:00+01:00", "2026-03-02T14:20:00+01:00", MILA_AT("clinic2"));
    check(&m, &load, a, now, NULL);
    json_decref(a);
    sched_load_dispose(&load);
    model_dispose(&m);
}

static void test_service_query(void **state)
{
    sched_avail_query_t sq;
    int64_t now = utc(2026, 3, 1, 0, 0);
    /* no service: the settings */
    sched_service_query(NULL, now, &sq);
    assert_int_equal(sq.duration, 30 * MIN);
    assert_int_equal(sq.buffer_before, 0);
    assert_int_equal(sq.buffer_after, 0);
    assert_int_equal(sq.align_minutes, 15);
    assert_int_equal(sq.now, now);
    assert_int_equal(sq.min_notice, 0);
    assert_true(sq.max_horizon == INT64_MAX);
    sched_settings_t saved = sched_settings;
    sched_settings.default_duration = 20 * MIN;
    sched_settings.default_alignment = 10;
    json_t *hs = J("{'resourceType': 'HealthcareService', 'id': 'x'}");
    sched_service_query(hs, now, &sq);
    assert_int_equal(sq.duration, 20 * MIN);
    assert_int_equal(sq.align_minutes, 10);
    /* the extensions */
    sched_ext_set_duration(hs, "service-duration", 45 * MIN);
    sched_ext_set_duration(hs, "buffer-before", 5 * MIN);
    sched_ext_set_duration(hs, "buffer-after", 2 * DAY); /* capped at a day */
    sched_ext_set_duration(hs, "slot-alignment", HOUR);
    sched_ext_set_duration(hs, "minimum-notice", 2 * HOUR);
    sched_ext_set_duration(hs, "booking-horizon", 90 * DAY);
    sched_service_query(hs, now, &sq);
    assert_int_equal(sq.duration, 45 * MIN);
    assert_int_equal(sq.buffer_before, 5 * MIN);
    assert_int_equal(sq.buffer_after, DAY);
    assert_int_equal(sq.align_minutes, 60);
    assert_int_equal(sq.min_notice, 2 * HOUR);
    assert_int_equal(sq.max_horizon, 90 * DAY);
    /* out of range: the defaults */
    sched_ext_set_duration(hs, "service-duration", 8 * DAY);
    sched_ext_set_duration(hs, "slot-alignment", 30);
    sched_service_query(hs, now, &sq);
    assert_int_equal(sq.duration, 20 * MIN);
    assert_int_equal(sq.align_minutes, 10);
    sched_ext_set_duration(hs, "slot-alignment", 2 * DAY);
    sched_ext_set(hs, "service-duration", "valueDuration", J("{'value': 0, 'code': 'min'}"));
    sched_service_query(hs, now, &sq);
    assert_int_equal(sq.duration, 20 * MIN);
    assert_int_equal(sq.align_minutes, 10);
    sched_ext_set(hs, "service-duration", "valueDuration", J("{'value': 1, 'code': 'wk'}"));
    sched_ext_set_duration(hs, "slot-alignment", DAY);
    sched_service_query(hs, now, &sq);
    assert_int_equal(sq.duration, 20 * MIN);
    assert_int_equal(sq.align_minutes, 1440);
    json_decref(hs);
    sched_settings = saved;
}

static void test_model_lookup(void **state)
{
    sched_model_t m;
    model_init(&m);
    assert_string_equal(id_of(sched_model_find(&m, "Location/room2")), "room2");
    assert_string_equal(id_of(sched_model_find(&m, "HealthcareService/echo")), "echo");
    assert_string_equal(id_of(sched_model_find(&m, "PractitionerRole/r-mila")), "r-mila");
    assert_string_equal(id_of(sched_model_find(&m, "Schedule/s-eva")), "s-eva");
    assert_string_equal(id_of(sched_model_find(&m, "Device/us1")), "us1");
    assert_null(sched_model_find(&m, "Location/nope"));
    assert_null(sched_model_find(&m, "Patient/room2"));
    assert_null(sched_model_find(&m, "room2"));
    /* time zones along partOf; the default when none says */
    assert_string_equal(sched_location_tz(&m, res(&m, "Location/room1")), "Europe/Amsterdam");
    assert_string_equal(sched_location_tz(&m, res(&m, "Location/roomX")), "Europe/Amsterdam");
    json_object_set_new(res(&m, "Location/room1"), "extension", J("[" TZ_EXT("Europe/London") "]"));
    assert_string_equal(sched_location_tz(&m, res(&m, "Location/room1")), "Europe/London");
    json_object_del(res(&m, "Location/bldg"), "extension");
    assert_string_equal(sched_location_tz(&m, res(&m, "Location/room2")), sched_settings.default_timezone);
    /* a partOf cycle ends */
    json_object_set_new(res(&m, "Location/bldg"), "partOf", J(REF("Location/room2")));
    assert_string_equal(sched_location_tz(&m, res(&m, "Location/room2")), sched_settings.default_timezone);
    /* load keys of an appointment: its exclusive actors (the role's practitioner too) and their Schedules */
    json_t *a = appointment("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z",
                            P("Patient/p1") ", " P("PractitionerRole/r-mila") ", " P("Location/room1") ", " P("HealthcareService/proc"));
    json_t *actors = json_array(), *schedules = json_array();
    sched_appointment_load_keys(&m, a, actors, schedules);
    assert_int_equal(json_array_size(actors), 3);
    assert_true(json_list_has(actors, "PractitionerRole/r-mila"));
    assert_true(json_list_has(actors, "Practitioner/mila"));
    assert_true(json_list_has(actors, "Location/room1"));
    assert_int_equal(json_array_size(schedules), 1);
    assert_true(json_list_has(schedules, "schedule=Schedule/s-mila"));
    assert_string_equal(id_of(sched_appointment_service(&m, a)), "proc");
    json_decref(actors);
    json_decref(schedules);
    json_decref(a);
    model_dispose(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_everything),
        cmocka_unit_test(test_plan_filters),
        cmocka_unit_test(test_plan_locations),
        cmocka_unit_test(test_plan_partof_cycle),
        cmocka_unit_test(test_plan_missing_pieces),
        cmocka_unit_test(test_find_hours),
        cmocka_unit_test(test_find_clinic_hours_narrow),
        cmocka_unit_test(test_find_buffers_alignment_busy),
        cmocka_unit_test(test_find_devices),
        cmocka_unit_test(test_find_slots),
        cmocka_unit_test(test_find_patients),
        cmocka_unit_test(test_find_timing),
        cmocka_unit_test(test_find_count_and_order),
        cmocka_unit_test(test_find_dedup),
        cmocka_unit_test(test_check_rules),
        cmocka_unit_test(test_check_rules_places),
        cmocka_unit_test(test_service_query),
        cmocka_unit_test(test_model_lookup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sched_tz_cache_clear();
    return rc;
}

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sched/find.h"
#include "sched/model.h"
#include "util/fold.h"
#include "util/time.h"

sched_settings_t sched_settings = {
    .default_timezone = "UTC",
    .hold_ttl = 300,
    .proposal_ttl = 1800,
    .default_duration = 30 * 60,
    .default_alignment = 15,
    .cancellation_cutoff = 24 * 3600,
    .find_max_days = 93,
    .find_default_count = 20,
    .find_max_count = 200,
    .sweep_interval_ms = 10000,
};

#define DAY 86400
#define STARTS_PER_COMBO 5000 /* bounds the work of one combination over a long window */
#define CHAIN_DEPTH 8         /* partOf levels followed */

/* ---- small helpers ---- */

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        free(list[i]);
    free(list);
}

static void free_tokens(sched_token_t *t, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        free(t[i].system);
        free(t[i].code);
    }
    free(t);
}

void sched_find_query_dispose(sched_find_query_t *q)
{
    free_list(q->practitioners, q->npractitioners);
    free_list(q->organizations, q->norganizations);
    free_list(q->locations, q->nlocations);
    free_list(q->location_strings, q->nlocation_strings);
    free_list(q->patients, q->npatients);
    free_tokens(q->visit_types, q->nvisit_types);
    free_tokens(q->specialties, q->nspecialties);
    free(q->timing_times);
    memset(q, 0, sizeof(*q));
}

void sched_load_init(sched_load_t *load)
{
    memset(load, 0, sizeof(*load));
    load->slot_schedules = json_object();
}

void sched_load_dispose(sched_load_t *load)
{
    for (size_t i = 0; i != load->nbusy; ++i) {
        free(load->busy[i].actor);
        free(load->busy[i].appointment_id);
    }
    free(load->busy);
    for (size_t i = 0; i != load->nslots; ++i)
        free(load->slots[i].id);
    free(load->slots);
    for (size_t i = 0; i != load->nschedules; ++i)
        free(load->schedules[i]);
    free(load->schedules);
    json_decref(load->slot_schedules);
    memset(load, 0, sizeof(*load));
}

void sched_load_add_busy(sched_load_t *load, const char *actor, int64_t start, int64_t end, const char *appointment_id)
{
    if (load->nbusy == load->busy_cap) {
        load->busy_cap = load->busy_cap != 0 ? load->busy_cap * 2 : 64;
        load->busy = util_xrealloc(load->busy, load->busy_cap * sizeof(*load->busy));
    }
    load->busy[load->nbusy++] = (sched_busy_t){util_xstrdup(actor), start, end, util_xstrdup(appointment_id != NULL ? appointment_id : "")};
    if (end - start > load->busy_longest)
        load->busy_longest = end - start;
    load->sorted = false;
}

static sched_slot_status_t slot_status_of(const char *status)
{
    static const char *const names[] = {"free", "busy", "busy-unavailable", "busy-tentative", "entered-in-error"};
    for (size_t i = 0; status != NULL && i != sizeof(names) / sizeof(names[0]); ++i)
        if (strcmp(status, names[i]) == 0)
            return (sched_slot_status_t)i;
    return SCHED_SLOT_OTHER;
}

/* The index of `schedule` in the load's table of schedules; nschedules when absent. Slots mostly come grouped by
 * schedule, so the last one added is tried first. */
static size_t schedule_index(const sched_load_t *load, const char *schedule)
{
    if (load->nslots != 0 && strcmp(load->slots[load->nslots - 1].schedule, schedule) == 0)
        return load->slots[load->nslots - 1].schedule_index;
    size_t i = 0;
    while (i != load->nschedules && strcmp(load->schedules[i], schedule) != 0)
        ++i;
    return i;
}

int sched_load_add_slot(sched_load_t *load, const char *id, const char *schedule_reference, const char *status, int64_t start, int64_t end)
{
    char key[160];
    if (id == NULL || end <= start || sched_ref_key(schedule_reference, key, sizeof(key)) == NULL || strncmp(key, "Schedule/", 9) != 0)
        return -1;
    if (load->nslots == load->slots_cap) {
        load->slots_cap = load->slots_cap != 0 ? load->slots_cap * 2 : 256;
        load->slots = util_xrealloc(load->slots, load->slots_cap * sizeof(*load->slots));
    }
    size_t sched = schedule_index(load, key);
    if (sched == load->nschedules) {
        load->schedules = util_xrealloc(load->schedules, (load->nschedules + 1) * sizeof(*load->schedules));
        load->schedules[load->nschedules++] = util_xstrdup(key);
    }
    load->slots[load->nslots++] = (sched_slot_t){start, end, load->schedules[sched], util_xstrdup(id), sched, slot_status_of(status)};
    load->sorted = false;
    return 0;
}

static int compare_busy(const void *pa, const void *pb)
{
    const sched_busy_t *a = pa, *b = pb;
    int c = strcmp(a->actor, b->actor);
    return c != 0 ? c : a->start < b->start ? -1 : a->start > b->start;
}

static int compare_slots(const void *pa, const void *pb)
{
    const sched_slot_t *a = pa, *b = pb;
    if (a->schedule_index != b->schedule_index)
        return a->schedule_index < b->schedule_index ? -1 : 1;
    return a->start < b->start ? -1 : a->start > b->start;
}

static void load_sort(sched_load_t *load)
{
    if (load->sorted)
        return;
    if (load->nbusy > 1)
        qsort(load->busy, load->nbusy, sizeof(*load->busy), compare_busy);
    if (load->nslots > 1)
        qsort(load->slots, load->nslots, sizeof(*load->slots), compare_slots);
    load->busy_slots = false;
    for (size_t i = 0; i != load->nbusy && !load->busy_slots; ++i)
        load->busy_slots = strncmp(load->busy[i].actor, "Slot/", 5) == 0;
    load->sorted = true;
}

/* The busy rows of `actor` that start at or after `from`: [*lo, *hi) of the sorted rows. */
static void busy_range(const sched_load_t *load, const char *actor, int64_t from, size_t *lo, size_t *hi)
{
    size_t a = 0, b = load->nbusy;
    while (a < b) { /* first row of the actor starting at or after `from` */
        size_t mid = a + (b - a) / 2;
        int c = strcmp(load->busy[mid].actor, actor);
        if (c < 0 || (c == 0 && load->busy[mid].start < from))
            a = mid + 1;
        else
            b = mid;
    }
    *lo = a;
    while (a != load->nbusy && strcmp(load->busy[a].actor, actor) == 0)
        ++a;
    *hi = a;
}

/* The Slots of `schedule` ("Schedule/x"): [*lo, *hi) of the sorted Slots, in start order. */
static void slot_range(const sched_load_t *load, const char *schedule, size_t *lo, size_t *hi)
{
    size_t sched = schedule_index(load, schedule), a = 0, b = load->nslots;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (load->slots[mid].schedule_index < sched)
            a = mid + 1;
        else
            b = mid;
    }
    *lo = a;
    while (a != load->nslots && load->slots[a].schedule_index == sched)
        ++a;
    *hi = a;
}

static const char *res_id(const json_t *r)
{
    const char *id = json_string_value(json_object_get(r, "id"));
    return id != NULL ? id : "";
}

static bool is_active(const json_t *r)
{
    json_t *active = json_object_get(r, "active");
    const char *status = json_string_value(json_object_get(r, "status"));
    return !json_is_false(active) && (status == NULL || strcmp(status, "active") == 0);
}

void sched_model_init(sched_model_t *m)
{
    *m = (sched_model_t){json_array(), json_array(), json_array(), json_array(), json_array()};
}

/* The model's array for a type name of `len` bytes, or NULL. */
static json_t *model_list(const sched_model_t *m, const char *type, size_t len)
{
    if (util_str_eq(type, len, "HealthcareService"))
        return m->services;
    if (util_str_eq(type, len, "PractitionerRole"))
        return m->roles;
    if (util_str_eq(type, len, "Location"))
        return m->locations;
    if (util_str_eq(type, len, "Schedule"))
        return m->schedules;
    if (util_str_eq(type, len, "Device"))
        return m->devices;
    return NULL;
}

void sched_model_add(sched_model_t *m, json_t *resource)
{
    const char *type = json_string_value(json_object_get(resource, "resourceType"));
    json_t *list = type != NULL ? model_list(m, type, strlen(type)) : NULL;
    if (list != NULL)
        json_array_append(list, resource);
    json_decref(resource);
}

void sched_model_share(sched_model_t *m, const sched_model_t *from)
{
    *m = (sched_model_t){json_incref(from->services), json_incref(from->roles), json_incref(from->locations),
                         json_incref(from->schedules), json_incref(from->devices)};
}

void sched_model_dispose(sched_model_t *m)
{
    json_decref(m->services);
    json_decref(m->roles);
    json_decref(m->locations);
    json_decref(m->schedules);
    json_decref(m->devices);
    memset(m, 0, sizeof(*m));
}

json_t *sched_model_find(const sched_model_t *model, const char *key)
{
    const char *slash = strchr(key, '/');
    if (slash == NULL)
        return NULL;
    json_t *list = model_list(model, key, (size_t)(slash - key));
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r) {
        if (strcmp(res_id(r), slash + 1) == 0)
            return r;
    }
    return NULL;
}

static json_t *location_parent(const sched_model_t *model, const json_t *loc)
{
    char key[160];
    const char *k = sched_reference_key(json_object_get(loc, "partOf"), key, sizeof(key));
    return k != NULL && strncmp(k, "Location/", 9) == 0 ? sched_model_find(model, k) : NULL;
}

/* Whether `ancestor` is `loc` or one of its partOf ancestors. */
static bool location_within(const sched_model_t *model, const json_t *loc, const json_t *ancestor)
{
    for (int depth = 0; loc != NULL && depth != CHAIN_DEPTH; ++depth, loc = location_parent(model, loc))
        if (loc == ancestor)
            return true;
    return false;
}

const char *sched_location_tz(const sched_model_t *model, const json_t *loc)
{
    for (int depth = 0; loc != NULL && depth != CHAIN_DEPTH; ++depth, loc = location_parent(model, loc)) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(loc, "extension"), i, e) {
            const char *url = json_string_value(json_object_get(e, "url"));
            const char *code = json_string_value(json_object_get(e, "valueCode"));
            if (url != NULL && code != NULL && strcmp(url, SCHED_EXT_TIMEZONE) == 0)
                return code;
        }
    }
    return sched_settings.default_timezone;
}

static bool is_room(const json_t *loc)
{
    json_t *pt = json_object_get(loc, "physicalType");
    return sched_concept_matches(pt, NULL, "ro") || sched_concept_matches(pt, NULL, "bd");
}

/* The first active Schedule whose actor is `a` or `b`. */
static json_t *schedule_for(const sched_model_t *model, const char *a, const char *b)
{
    size_t i;
    json_t *s;
    json_array_foreach(model->schedules, i, s) {
        if (json_is_false(json_object_get(s, "active")))
            continue;
        json_t *actors = json_object_get(s, "actor");
        if ((a != NULL && sched_refers_to(actors, a)) || (b != NULL && sched_refers_to(actors, b)))
            return s;
    }
    return NULL;
}

static int token_index(const json_t *concepts, const sched_token_t *t, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (sched_concept_matches(concepts, t[i].system, t[i].code))
            return (int)i;
    return -1;
}

static int key_index(char **list, size_t n, const char *key)
{
    for (size_t i = 0; i != n; ++i)
        if (key != NULL && strcmp(list[i], key) == 0)
            return (int)i;
    return -1;
}

static int ref_index(char **list, size_t n, const json_t *refs)
{
    for (size_t i = 0; i != n; ++i)
        if (sched_refers_to(refs, list[i]))
            return (int)i;
    return -1;
}

/* Whether the folded value, or one of its words, starts with the folded prefix. */
static bool folded_starts(const char *value, const char *folded_prefix)
{
    if (value == NULL)
        return false;
    char *f = util_fold(value);
    size_t n = strlen(folded_prefix);
    bool yes = false;
    for (const char *w = f; *w != '\0' && !yes; ++w)
        if ((w == f || strchr(" ,-/()", w[-1]) != NULL) && strncmp(w, folded_prefix, n) == 0)
            yes = true;
    free(f);
    return yes;
}

/* A location-string matches the clinic's name or any element of its address (FHIR string search: starts-with). */
static bool location_string_matches(const json_t *loc, const char *folded)
{
    if (folded_starts(json_string_value(json_object_get(loc, "name")), folded))
        return true;
    json_t *addr = json_object_get(loc, "address");
    static const char *const fields[] = {"text", "city", "district", "state", "postalCode", "country"};
    for (size_t i = 0; i != sizeof(fields) / sizeof(fields[0]); ++i)
        if (folded_starts(json_string_value(json_object_get(addr, fields[i])), folded))
            return true;
    size_t i;
    json_t *line;
    json_array_foreach(json_object_get(addr, "line"), i, line) {
        if (folded_starts(json_string_value(line), folded))
            return true;
    }
    return false;
}

/* ---- the plan ---- */

static void add_unique(json_t *list, const char *value)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (strcmp(json_string_value(v), value) == 0)
            return;
    }
    json_array_append_new(list, json_string(value));
}

static void plan_note(sched_plan_t *plan, const char *msg)
{
    if (plan->why.len == 0 || strstr(plan->why.base, msg) == NULL)
        util_buf_printf(&plan->why, "%s%s", plan->why.len != 0 ? "; " : "", msg);
}

typedef enum { REQUIRES_NOTHING, REQUIRES_ROOM, REQUIRES_DEVICE } requirement_t;

/* What one extension of a HealthcareService requires: a room (Location) or a Device of a type, or nothing. */
static requirement_t requirement_of(const json_t *ext)
{
    const char *url = json_string_value(json_object_get(ext, "url"));
    if (url != NULL && strcmp(url, SCHED_EXT_BASE "required-location-type") == 0)
        return REQUIRES_ROOM;
    if (url != NULL && strcmp(url, SCHED_EXT_BASE "required-device-type") == 0)
        return REQUIRES_DEVICE;
    return REQUIRES_NOTHING;
}

/* The alternatives for one required type: rooms in the clinic, or devices at it (or at no location). */
static json_t *group_members(const sched_model_t *model, const json_t *clinic, const json_t *wanted, bool rooms)
{
    json_t *members = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rooms ? model->locations : model->devices, i, r) {
        if (!is_active(r) || !sched_concept_overlaps(json_object_get(r, "type"), wanted))
            continue;
        if (rooms) {
            if (!location_within(model, r, clinic))
                continue;
        } else {
            char key[160];
            const char *k = sched_reference_key(json_object_get(r, "location"), key, sizeof(key));
            json_t *at = k != NULL ? sched_model_find(model, k) : NULL;
            if (k != NULL && (at == NULL || !location_within(model, at, clinic)))
                continue;
        }
        json_array_append(members, r);
    }
    return members;
}

static void plan_add_combo(sched_plan_t *plan, const sched_model_t *model, const sched_find_query_t *q, json_t *service,
                           json_t *role, json_t *schedule, const char *prac, json_t *clinic, const unsigned rank[5])
{
    char key[160];
    snprintf(key, sizeof(key), "Location/%s", res_id(clinic));
    int loc_rank = q->nlocations != 0 ? key_index(q->locations, q->nlocations, key) : 0;
    if (q->nlocation_strings != 0) {
        bool any = false;
        int depth = 0;
        for (const json_t *l = clinic; l != NULL && !any && depth != CHAIN_DEPTH; l = location_parent(model, l), ++depth)
            for (size_t i = 0; i != q->nlocation_strings && !any; ++i)
                any = location_string_matches(l, q->location_strings[i]);
        if (!any) {
            plan_note(plan, "no clinic matches location-string");
            return;
        }
    }
    json_t *groups = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(service, "extension"), i, e) {
        requirement_t need = requirement_of(e);
        if (need == REQUIRES_NOTHING)
            continue;
        bool room = need == REQUIRES_ROOM;
        json_t *members = group_members(model, clinic, json_object_get(e, "valueCodeableConcept"), room);
        if (room && q->nlocations != 0) {
            /* a room named in location-reference narrows the choice and carries the preference */
            json_t *named = json_array();
            size_t j;
            json_t *m;
            int best = -1;
            json_array_foreach(members, j, m) {
                snprintf(key, sizeof(key), "Location/%s", res_id(m));
                int idx = key_index(q->locations, q->nlocations, key);
                if (idx >= 0) {
                    json_array_append(named, m);
                    if (best < 0 || idx < best)
                        best = idx;
                }
            }
            if (best >= 0) {
                json_decref(members);
                members = named;
                if (loc_rank < 0 || best < loc_rank)
                    loc_rank = best;
            } else {
                json_decref(named);
            }
        }
        if (json_array_size(members) == 0) {
            plan_note(plan, room ? "no active room of the type the service needs in the clinic"
                                 : "no active device of the type the service needs at the clinic");
            json_decref(members);
            json_decref(groups);
            return;
        }
        json_array_append_new(groups, members);
    }
    if (loc_rank < 0) {
        plan_note(plan, "no practitioner offering the service works at the requested location");
        json_decref(groups);
        return;
    }
    plan->combos = util_xrealloc(plan->combos, (plan->ncombos + 1) * sizeof(*plan->combos));
    sched_combo_t *c = &plan->combos[plan->ncombos++];
    memset(c, 0, sizeof(*c));
    c->service = service;
    c->role = role;
    c->clinic = clinic;
    c->schedule = schedule;
    snprintf(c->practitioner, sizeof(c->practitioner), "%s", prac);
    c->groups = groups;
    memcpy(c->rank, rank, sizeof(c->rank));
    c->rank[1] = (unsigned)loc_rank;
    c->tz_name = sched_location_tz(model, clinic);
    add_unique(plan->actors, prac);
    snprintf(key, sizeof(key), "PractitionerRole/%s", res_id(role));
    add_unique(plan->actors, key);
    snprintf(key, sizeof(key), "schedule=Schedule/%s", res_id(schedule));
    add_unique(plan->schedules, key);
    json_t *g, *m;
    size_t j;
    json_array_foreach(groups, i, g) {
        json_array_foreach(g, j, m) {
            bool room = json_object_get(m, "resourceType") != NULL &&
                        strcmp(json_string_value(json_object_get(m, "resourceType")), "Location") == 0;
            snprintf(key, sizeof(key), "%s/%s", room ? "Location" : "Device", res_id(m));
            add_unique(plan->actors, key);
            json_t *ms = schedule_for(model, key, NULL);
            if (ms != NULL) {
                snprintf(key, sizeof(key), "schedule=Schedule/%s", res_id(ms));
                add_unique(plan->schedules, key);
            }
        }
    }
}

void sched_plan_build(sched_plan_t *plan, const sched_model_t *model, const sched_find_query_t *q)
{
    memset(plan, 0, sizeof(*plan));
    plan->actors = json_array();
    plan->schedules = json_array();
    util_buf_init(&plan->why);
    size_t i, j, k;
    json_t *service, *role, *ref;
    bool any_service = false, any_role = false;
    json_array_foreach(model->services, i, service) {
        if (!is_active(service))
            continue;
        int vt = q->nvisit_types != 0 ? token_index(json_object_get(service, "type"), q->visit_types, q->nvisit_types) : 0;
        if (vt < 0)
            continue;
        any_service = true;
        char skey[160];
        snprintf(skey, sizeof(skey), "HealthcareService/%s", res_id(service));
        json_array_foreach(model->roles, j, role) {
            if (!is_active(role) || !sched_refers_to(json_object_get(role, "healthcareService"), skey))
                continue;
            char prac[160], rkey[160];
            if (sched_reference_key(json_object_get(role, "practitioner"), prac, sizeof(prac)) == NULL)
                continue;
            snprintf(rkey, sizeof(rkey), "PractitionerRole/%s", res_id(role));
            int pr = 0;
            if (q->npractitioners != 0) {
                int a = key_index(q->practitioners, q->npractitioners, prac), b = key_index(q->practitioners, q->npractitioners, rkey);
                pr = a < 0 ? b : (b < 0 ? a : (a < b ? a : b));
                if (pr < 0)
                    continue;
            }
            int sp = 0;
            if (q->nspecialties != 0) {
                int a = token_index(json_object_get(role, "specialty"), q->specialties, q->nspecialties);
                int b = token_index(json_object_get(service, "specialty"), q->specialties, q->nspecialties);
                sp = a < 0 ? b : (b < 0 ? a : (a < b ? a : b));
                if (sp < 0)
                    continue;
            }
            int org = 0;
            if (q->norganizations != 0) {
                int a = ref_index(q->organizations, q->norganizations, json_object_get(role, "organization"));
                int b = ref_index(q->organizations, q->norganizations, json_object_get(service, "providedBy"));
                org = a < 0 ? b : (b < 0 ? a : (a < b ? a : b));
                if (org < 0)
                    continue;
            }
            any_role = true;
            json_t *schedule = schedule_for(model, prac, rkey);
            if (schedule == NULL) {
                plan_note(plan, "a matching practitioner has no active Schedule");
                continue;
            }
            unsigned rank[5] = {(unsigned)pr, 0, (unsigned)vt, (unsigned)sp, (unsigned)org};
            json_t *service_locations = json_object_get(service, "location");
            json_t *clinics = json_array_size(json_object_get(role, "location")) != 0 ? json_object_get(role, "location") : service_locations;
            json_array_foreach(clinics, k, ref) {
                char lkey[160];
                if (sched_reference_key(ref, lkey, sizeof(lkey)) == NULL)
                    continue;
                if (json_array_size(service_locations) != 0 && !sched_refers_to(service_locations, lkey))
                    continue;
                json_t *clinic = sched_model_find(model, lkey);
                if (clinic == NULL || !is_active(clinic))
                    continue;
                plan_add_combo(plan, model, q, service, role, schedule, prac, clinic, rank);
            }
        }
    }
    if (!any_service)
        plan_note(plan, "no active HealthcareService matches the requested visit-type");
    else if (!any_role)
        plan_note(plan, "no active PractitionerRole offers a matching service for the requested practitioner, specialty and organization");
}

void sched_plan_dispose(sched_plan_t *plan)
{
    for (size_t i = 0; i != plan->ncombos; ++i)
        json_decref(plan->combos[i].groups);
    free(plan->combos);
    json_decref(plan->actors);
    json_decref(plan->schedules);
    util_buf_dispose(&plan->why);
    memset(plan, 0, sizeof(*plan));
}

/* ---- availability of one source ---- */

/* The weekly rules (availableTime or hoursOfOperation) over [from, to); no rules = the whole window. */
static int rules_set(sched_avail_set_t *out, const json_t *rules_json, bool hours, const sched_tz_t *tz, int64_t from, int64_t to)
{
    sched_avail_set_clear(out);
    if (json_array_size(rules_json) == 0)
        return sched_avail_set_add(out, from, to);
    sched_avail_rule_t *rules;
    int n = sched_rules_read(rules_json, hours, &rules);
    if (n < 0)
        return -1;
    int ret = sched_avail_rules_expand(out, rules, (size_t)n, tz, from, to);
    free(rules);
    return ret;
}

/* Opening hours along a Location's partOf chain (each level that states hours narrows the set). */
static void hours_set(sched_avail_set_t *out, const sched_model_t *model, const json_t *loc, const sched_tz_t *tz, int64_t from, int64_t to)
{
    sched_avail_set_clear(out);
    sched_avail_set_add(out, from, to);
    sched_avail_set_t level;
    sched_avail_set_init(&level);
    for (int depth = 0; loc != NULL && depth != CHAIN_DEPTH; ++depth, loc = location_parent(model, loc)) {
        json_t *hours = json_object_get(loc, "hoursOfOperation");
        if (json_array_size(hours) == 0)
            continue;
        if (rules_set(&level, hours, true, tz, from, to) == 0)
            sched_avail_set_intersect(out, out, &level);
    }
    sched_avail_set_dispose(&level);
}

/* availableTime minus notAvailable of a PractitionerRole or HealthcareService. */
static void working_set(sched_avail_set_t *out, const json_t *r, const sched_tz_t *tz, int64_t from, int64_t to)
{
    if (rules_set(out, json_object_get(r, "availableTime"), false, tz, from, to) != 0)
        sched_avail_set_clear(out);
    sched_avail_set_t leave;
    sched_avail_set_init(&leave);
    sched_not_available_add(&leave, json_object_get(r, "notAvailable"), tz);
    sched_avail_set_subtract(out, out, &leave);
    sched_avail_set_dispose(&leave);
}

static void horizon_clip(sched_avail_set_t *set, const json_t *schedule, const sched_tz_t *tz)
{
    int64_t lo, hi;
    json_t *h = json_object_get(schedule, "planningHorizon");
    if (h != NULL && sched_period_read(h, tz, &lo, &hi) == 0)
        sched_avail_set_clip(set, lo, hi);
}

static bool ignored(const sched_load_t *load, const sched_busy_t *b)
{
    return load->ignore_appointment != NULL && strcmp(b->appointment_id, load->ignore_appointment) == 0;
}

/* Subtracts the busy rows of `actor` and (for a schedule) its non-free Slots. */
static void subtract_busy(sched_avail_set_t *set, const sched_load_t *load, const char *actor, const json_t *schedule)
{
    size_t lo, hi;
    busy_range(load, actor, INT64_MIN, &lo, &hi);
    for (size_t i = lo; i != hi; ++i) {
        const sched_busy_t *b = &load->busy[i];
        if (ignored(load, b))
            continue;
        sched_interval_t iv = {b->start, b->end};
        sched_avail_set_subtract_busy(set, &iv, 1, 0, 0);
    }
    if (schedule == NULL)
        return;
    char skey[160];
    snprintf(skey, sizeof(skey), "Schedule/%s", res_id(schedule));
    slot_range(load, skey, &lo, &hi);
    for (size_t i = lo; i != hi; ++i) {
        const sched_slot_t *slot = &load->slots[i];
        if (slot->status == SCHED_SLOT_FREE || slot->status == SCHED_SLOT_ENTERED_IN_ERROR)
            continue;
        sched_interval_t iv = {slot->start, slot->end};
        sched_avail_set_subtract_busy(set, &iv, 1, 0, 0);
    }
}

static bool slot_based(const sched_load_t *load, const json_t *schedule)
{
    char skey[160];
    snprintf(skey, sizeof(skey), "Schedule/%s", res_id(schedule));
    return json_is_true(json_object_get(load->slot_schedules, skey));
}

/* A group member's availability: its hours (rooms), its schedule's horizon or free Slots, minus its busy time. */
static void member_set(sched_avail_set_t *out, const sched_model_t *model, const sched_load_t *load, const json_t *member,
                       const sched_tz_t *tz, int64_t from, int64_t to)
{
    const char *rt = json_string_value(json_object_get(member, "resourceType"));
    bool room = rt != NULL && strcmp(rt, "Location") == 0;
    char key[160];
    snprintf(key, sizeof(key), "%s/%s", room ? "Location" : "Device", res_id(member));
    if (room) {
        hours_set(out, model, member, tz, from, to);
    } else {
        sched_avail_set_clear(out);
        sched_avail_set_add(out, from, to);
    }
    json_t *schedule = schedule_for(model, key, NULL);
    if (schedule != NULL) {
        horizon_clip(out, schedule, tz);
        if (slot_based(load, schedule)) {
            sched_avail_set_t free_slots;
            sched_avail_set_init(&free_slots);
            char skey[160];
            snprintf(skey, sizeof(skey), "Schedule/%s", res_id(schedule));
            size_t lo, hi;
            slot_range(load, skey, &lo, &hi);
            for (size_t i = lo; i != hi; ++i)
                if (load->slots[i].status == SCHED_SLOT_FREE)
                    sched_avail_set_add(&free_slots, load->slots[i].start, load->slots[i].end);
            sched_avail_set_intersect(out, out, &free_slots);
            sched_avail_set_dispose(&free_slots);
        }
    }
    subtract_busy(out, load, key, schedule);
}

void sched_service_query(const json_t *service, int64_t now, sched_avail_query_t *q)
{
    memset(q, 0, sizeof(*q));
    q->duration = sched_ext_seconds(service, "service-duration", sched_settings.default_duration);
    if (q->duration <= 0 || q->duration > SCHED_AVAIL_MAX_DURATION)
        q->duration = sched_settings.default_duration;
    q->buffer_before = sched_ext_seconds(service, "buffer-before", 0);
    q->buffer_after = sched_ext_seconds(service, "buffer-after", 0);
    if (q->buffer_before > SCHED_AVAIL_MAX_BUFFER)
        q->buffer_before = SCHED_AVAIL_MAX_BUFFER;
    if (q->buffer_after > SCHED_AVAIL_MAX_BUFFER)
        q->buffer_after = SCHED_AVAIL_MAX_BUFFER;
    int64_t align = sched_ext_seconds(service, "slot-alignment", (int64_t)sched_settings.default_alignment * 60);
    q->align_minutes = align >= 60 && align <= DAY ? (int)(align / 60) : sched_settings.default_alignment;
    q->now = now;
    q->min_notice = sched_ext_seconds(service, "minimum-notice", 0);
    q->max_horizon = sched_ext_seconds(service, "booking-horizon", INT64_MAX);
}

/* ---- proposals ---- */

static bool timing_allows(const sched_find_query_t *q, const sched_tz_t *tz, int64_t s, int64_t e)
{
    if (s < q->timing_from || e > q->timing_to)
        return false;
    if (q->timing_days == 0 && q->timing_when == 0 && q->ntiming_times == 0)
        return true;
    int64_t local = sched_tz_utc_to_local(tz, s);
    int64_t day = sched_civil_day_of(local);
    int64_t tod = local - day * DAY;
    if (q->timing_days != 0 && !(q->timing_days & (1u << sched_civil_weekday(day))))
        return false;
    if (q->timing_when != 0) {
        /* MORN 05-12, AFT 12-18, EVE 18-22, NIGHT 22-05 */
        unsigned part = tod < 5 * 3600 ? 8 : tod < 12 * 3600 ? 1 : tod < 18 * 3600 ? 2 : tod < 22 * 3600 ? 4 : 8;
        if (!(q->timing_when & part))
            return false;
    }
    if (q->ntiming_times != 0) {
        bool any = false;
        for (size_t i = 0; i != q->ntiming_times && !any; ++i)
            any = q->timing_times[i] == tod;
        if (!any)
            return false;
    }
    return true;
}

static bool overlaps_busy(const sched_load_t *load, const char *actor, int64_t s, int64_t e)
{
    size_t lo, hi;
    busy_range(load, actor, s - load->busy_longest, &lo, &hi);
    for (size_t i = lo; i != hi && load->busy[i].start < e; ++i)
        if (s < load->busy[i].end && !ignored(load, &load->busy[i]))
            return true;
    return false;
}

static bool patients_free(const sched_find_query_t *q, const sched_load_t *load, int64_t s, int64_t e)
{
    for (size_t i = 0; i != q->npatients; ++i)
        if (overlaps_busy(load, q->patients[i], s, e))
            return false;
    return true;
}

typedef struct st_combo_work_t {
    sched_avail_set_t **member_sets; /* per group, per member */
    size_t *nmembers;
    size_t ngroups;
} combo_work_t;

/* Candidates while a $find runs: the member picks of all are one array (a month of Slots is ~10k candidates, and only
 * the few returned become JSON). */
typedef struct st_candidates_t {
    sched_candidate_t *items;
    size_t n, cap;
    uint32_t *picks; /* per candidate, from its pick_at: the index of the chosen member in each group of its combination */
    size_t npicks, picks_cap;
} candidates_t;

/* Picks one free member per group for [a, b) into `pick`; false when a group has none. */
static bool pick_members(const combo_work_t *w, int64_t a, int64_t b, uint32_t *pick)
{
    for (size_t g = 0; g != w->ngroups; ++g) {
        size_t m;
        for (m = 0; m != w->nmembers[g]; ++m)
            if (sched_avail_set_contains(&w->member_sets[g][m], a, b))
                break;
        if (m == w->nmembers[g])
            return false;
        pick[g] = (uint32_t)m;
    }
    return true;
}

static void add_candidate(candidates_t *out, int64_t s, int64_t e, size_t combo, const uint32_t *pick, size_t ngroups,
                          const sched_slot_t *slot)
{
    if (out->n == out->cap) {
        out->cap = out->cap != 0 ? out->cap * 2 : 64;
        out->items = util_xrealloc(out->items, out->cap * sizeof(*out->items));
    }
    if (out->npicks + ngroups > out->picks_cap) {
        out->picks_cap = out->picks_cap * 2 + ngroups + 64;
        out->picks = util_xrealloc(out->picks, out->picks_cap * sizeof(*out->picks));
    }
    if (ngroups != 0)
        memcpy(out->picks + out->npicks, pick, ngroups * sizeof(*pick));
    out->items[out->n++] = (sched_candidate_t){s, e, combo, NULL, slot, out->npicks};
    out->npicks += ngroups;
}

static void combo_candidates(const sched_plan_t *plan, size_t k, const sched_model_t *model, const sched_load_t *load,
                             const sched_find_query_t *q, candidates_t *out, util_buf_t *why)
{
    const sched_combo_t *c = &plan->combos[k];
    char err[128];
    sched_tz_t *tz = sched_tz_load(c->tz_name, err, sizeof(err));
    if (tz == NULL) {
        util_buf_printf(why, "%sLocation/%s names an unknown time zone", why->len ? "; " : "", res_id(c->clinic));
        return;
    }
    sched_avail_query_t sq;
    sched_service_query(c->service, q->now, &sq);
    int64_t from = q->from - DAY, to = q->to + DAY;
    char role_key[160];
    snprintf(role_key, sizeof(role_key), "PractitionerRole/%s", res_id(c->role));

    combo_work_t w = {0};
    w.ngroups = json_array_size(c->groups);
    uint32_t *pick = util_xcalloc(w.ngroups + 1, sizeof(*pick));
    w.member_sets = util_xcalloc(w.ngroups + 1, sizeof(*w.member_sets));
    w.nmembers = util_xcalloc(w.ngroups + 1, sizeof(*w.nmembers));
    sched_avail_set_t any_member, tmp;
    sched_avail_set_init(&any_member);
    sched_avail_set_init(&tmp);
    sched_avail_set_t base;
    sched_avail_set_init(&base);
    for (size_t g = 0; g != w.ngroups; ++g) {
        json_t *members = json_array_get(c->groups, g);
        w.nmembers[g] = json_array_size(members);
        w.member_sets[g] = util_xcalloc(w.nmembers[g], sizeof(sched_avail_set_t));
        for (size_t m = 0; m != w.nmembers[g]; ++m) {
            sched_avail_set_init(&w.member_sets[g][m]);
            member_set(&w.member_sets[g][m], model, load, json_array_get(members, m), tz, from, to);
        }
    }

    if (!slot_based(load, c->schedule)) {
        working_set(&base, c->role, tz, from, to);
        hours_set(&tmp, model, c->clinic, tz, from, to);
        sched_avail_set_intersect(&base, &base, &tmp);
        if (json_array_size(json_object_get(c->service, "availableTime")) != 0 ||
            json_array_size(json_object_get(c->service, "notAvailable")) != 0) {
            working_set(&tmp, c->service, tz, from, to);
            sched_avail_set_intersect(&base, &base, &tmp);
        }
        horizon_clip(&base, c->schedule, tz);
        sched_avail_set_clip(&base, q->from - sq.buffer_before, q->to + sq.buffer_after);
        subtract_busy(&base, load, c->practitioner, c->schedule);
        subtract_busy(&base, load, role_key, NULL);
        for (size_t i = 0; i != q->npatients; ++i)
            subtract_busy(&base, load, q->patients[i], NULL);
        for (size_t g = 0; g != w.ngroups; ++g) {
            sched_avail_set_clear(&any_member);
            for (size_t m = 0; m != w.nmembers[g]; ++m)
                sched_avail_set_union(&any_member, &any_member, &w.member_sets[g][m]);
            sched_avail_set_intersect(&base, &base, &any_member);
        }
        int64_t *starts = util_xmalloc(STARTS_PER_COMBO * sizeof(*starts));
        size_t nstarts = 0;
        sched_avail_find_starts(&base, tz, &sq, starts, STARTS_PER_COMBO, &nstarts);
        for (size_t i = 0; i != nstarts; ++i) {
            int64_t s = starts[i], e = s + sq.duration;
            if (s < q->from || e > q->to || !timing_allows(q, tz, s, e))
                continue;
            if (!pick_members(&w, s - sq.buffer_before, e + sq.buffer_after, pick))
                continue;
            add_candidate(out, s, e, k, pick, w.ngroups, NULL);
        }
        free(starts);
    } else {
        /* A Schedule that publishes Slots offers exactly its free Slots (inside its planning horizon). */
        int64_t horizon_lo = INT64_MIN, horizon_hi = INT64_MAX;
        json_t *h = json_object_get(c->schedule, "planningHorizon");
        if (h != NULL && sched_period_read(h, tz, &horizon_lo, &horizon_hi) != 0)
            horizon_lo = horizon_hi = 0;
        char skey[160];
        snprintf(skey, sizeof(skey), "Schedule/%s", res_id(c->schedule));
        size_t lo, hi;
        slot_range(load, skey, &lo, &hi);
        for (size_t i = lo; i != hi; ++i) {
            const sched_slot_t *slot = &load->slots[i];
            int64_t s = slot->start, e = slot->end;
            if (slot->status != SCHED_SLOT_FREE)
                continue;
            if (s < horizon_lo || e > horizon_hi)
                continue;
            if (s < q->from || e > q->to || s < q->now + sq.min_notice ||
                (sq.max_horizon != INT64_MAX && s > q->now + sq.max_horizon) || !timing_allows(q, tz, s, e))
                continue;
            int64_t a = s - sq.buffer_before, b = e + sq.buffer_after;
            if (overlaps_busy(load, c->practitioner, a, b) || overlaps_busy(load, role_key, a, b) || !patients_free(q, load, s, e))
                continue;
            if (load->busy_slots) {
                char slot_key[160];
                snprintf(slot_key, sizeof(slot_key), "Slot/%s", slot->id);
                if (overlaps_busy(load, slot_key, s, e))
                    continue;
            }
            if (!pick_members(&w, a, b, pick))
                continue;
            add_candidate(out, s, e, k, pick, w.ngroups, slot);
        }
    }
    for (size_t g = 0; g != w.ngroups; ++g) {
        for (size_t m = 0; m != w.nmembers[g]; ++m)
            sched_avail_set_dispose(&w.member_sets[g][m]);
        free(w.member_sets[g]);
    }
    free(w.member_sets);
    free(w.nmembers);
    free(pick);
    sched_avail_set_dispose(&any_member);
    sched_avail_set_dispose(&tmp);
    sched_avail_set_dispose(&base);
    sched_tz_destroy(tz);
}

/* qsort has no context argument; each loop thread sorts its own plan. */
static __thread const sched_plan_t *sort_plan;

static int compare_candidates(const void *pa, const void *pb)
{
    const sched_candidate_t *a = pa, *b = pb;
    const sched_combo_t *ca = &sort_plan->combos[a->combo], *cb = &sort_plan->combos[b->combo];
    for (int i = 0; i != 5; ++i)
        if (ca->rank[i] != cb->rank[i])
            return ca->rank[i] < cb->rank[i] ? -1 : 1;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return a->combo < b->combo ? -1 : a->combo > b->combo;
}

static __thread const sched_candidate_t *sort_candidates;
static __thread const size_t *sort_group;

/* Orders combination indices by practitioner, then service. */
static int compare_combo_offer(const void *pa, const void *pb)
{
    const sched_combo_t *a = &sort_plan->combos[*(const size_t *)pa], *b = &sort_plan->combos[*(const size_t *)pb];
    int c = strcmp(a->practitioner, b->practitioner);
    return c != 0 ? c : a->service < b->service ? -1 : a->service > b->service;
}

/* Orders candidate indices by offer (practitioner and service), start, then position (the first of equals is the
 * best-ranked). */
static int compare_offer_start(const void *pa, const void *pb)
{
    size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
    const sched_candidate_t *a = &sort_candidates[ia], *b = &sort_candidates[ib];
    size_t ga = sort_group[a->combo], gb = sort_group[b->combo];
    if (ga != gb)
        return ga < gb ? -1 : 1;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return ia < ib ? -1 : ia > ib;
}

void sched_candidates_free(sched_candidate_t *c, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        json_decref(c[i].members);
    free(c);
}

/* The same number for the combinations that offer one practitioner's one service (through other clinics, roles, rooms). */
static size_t *offer_groups(const sched_plan_t *plan)
{
    size_t n = plan->ncombos, *order = util_xmalloc((n + 1) * sizeof(*order)), *group = util_xmalloc((n + 1) * sizeof(*group));
    for (size_t k = 0; k != n; ++k)
        order[k] = k;
    sort_plan = plan;
    if (n > 1)
        qsort(order, n, sizeof(*order), compare_combo_offer);
    for (size_t i = 0; i != n; ++i)
        group[order[i]] = i != 0 && compare_combo_offer(&order[i - 1], &order[i]) == 0 ? group[order[i - 1]] : i;
    free(order);
    return group;
}

void sched_find_run(const sched_plan_t *plan, const sched_model_t *model, sched_load_t *load, const sched_find_query_t *q,
                    sched_candidate_t **out, size_t *nout, size_t *total, util_buf_t *why)
{
    load_sort(load);
    candidates_t found = {0};
    for (size_t k = 0; k != plan->ncombos; ++k)
        combo_candidates(plan, k, model, load, q, &found, why);
    sched_candidate_t *all = found.items;
    size_t n = found.n;
    sort_plan = plan;
    if (n > 1)
        qsort(all, n, sizeof(*all), compare_candidates);
    /* The same practitioner, service and start is one proposal (the best-ranked combination, i.e. the first): other
     * clinics, roles or rooms for it are alternatives, not further proposals. */
    size_t *group = offer_groups(plan);
    size_t *order = util_xmalloc((n != 0 ? n : 1) * sizeof(*order));
    for (size_t i = 0; i != n; ++i)
        order[i] = i;
    sort_candidates = all;
    sort_group = group;
    if (n > 1)
        qsort(order, n, sizeof(*order), compare_offer_start);
    bool *dup = util_xcalloc(n != 0 ? n : 1, sizeof(*dup));
    for (size_t i = 1; i < n; ++i) {
        const sched_candidate_t *prev = &all[order[i - 1]], *cur = &all[order[i]];
        dup[order[i]] = prev->start == cur->start && group[prev->combo] == group[cur->combo];
    }
    size_t kept = 0;
    for (size_t i = 0; i != n; ++i)
        if (!dup[i])
            all[kept++] = all[i];
    free(order);
    free(dup);
    free(group);
    *total = kept;
    size_t keep = kept < q->count ? kept : q->count;
    for (size_t i = 0; i != keep; ++i) {
        json_t *groups = plan->combos[all[i].combo].groups;
        all[i].members = json_array();
        for (size_t g = 0; g != json_array_size(groups); ++g)
            json_array_append(all[i].members, json_array_get(json_array_get(groups, g), found.picks[all[i].pick_at + g]));
    }
    free(found.picks);
    *out = all;
    *nout = keep;
    if (kept == 0 && plan->ncombos != 0)
        util_buf_printf(why, "%sno free time between start and end for the matching practitioners, rooms and devices "
                             "(working and opening hours, leave, existing bookings and holds, notice and horizon considered)",
                        why->len ? "; " : "");
}

/* ---- rule checks for $hold / $book ---- */

static void why_set(util_buf_t *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_set(util_buf_t *why, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *msg = util_vasprintf(fmt, args);
    va_end(args);
    util_buf_puts(why, msg);
    free(msg);
}

int sched_check_rules(const sched_model_t *model, sched_load_t *load, const json_t *appt, int64_t now, util_buf_t *why)
{
    load_sort(load);
    time_t ts, te;
    if (util_time_parse_instant(json_string_value(json_object_get(appt, "start")), &ts) != 0 ||
        util_time_parse_instant(json_string_value(json_object_get(appt, "end")), &te) != 0 || te <= ts) {
        why_set(why, "the appointment needs a start and an end after it");
        return -1;
    }
    int64_t s = ts, e = te;
    int64_t bb = sched_ext_seconds(appt, "buffer-before", 0), ba = sched_ext_seconds(appt, "buffer-after", 0);
    json_t *service = NULL, *role = NULL, *clinic = NULL, *rooms = json_array(), *devices = json_array();
    char prac[160] = "", key[160];
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(appt, "participant"), i, p) {
        const char *k = sched_reference_key(json_object_get(p, "actor"), key, sizeof(key));
        if (k == NULL)
            continue;
        json_t *r = sched_model_find(model, k);
        if (strncmp(k, "Practitioner/", 13) == 0)
            snprintf(prac, sizeof(prac), "%s", k);
        else if (strncmp(k, "PractitionerRole/", 17) == 0 && r != NULL)
            role = r;
        else if (strncmp(k, "HealthcareService/", 18) == 0 && r != NULL)
            service = r;
        else if (strncmp(k, "Location/", 9) == 0 && r != NULL && is_room(r))
            json_array_append(rooms, r);
        else if (strncmp(k, "Location/", 9) == 0 && r != NULL && clinic == NULL)
            clinic = r;
        else if (strncmp(k, "Device/", 7) == 0 && r != NULL)
            json_array_append(devices, r);
    }
    if (role != NULL && prac[0] == '\0')
        sched_reference_key(json_object_get(role, "practitioner"), prac, sizeof(prac));
    if (role == NULL && prac[0] != '\0') {
        json_t *r;
        json_array_foreach(model->roles, i, r) {
            if (!is_active(r) || !sched_refers_to(json_object_get(r, "practitioner"), prac))
                continue;
            char skey[160];
            snprintf(skey, sizeof(skey), "HealthcareService/%s", service != NULL ? res_id(service) : "");
            if (role == NULL || (service != NULL && sched_refers_to(json_object_get(r, "healthcareService"), skey)))
                role = r;
        }
    }
    if (clinic == NULL && json_array_size(rooms) != 0)
        clinic = location_parent(model, json_array_get(rooms, 0));
    const char *tz_name = clinic != NULL ? sched_location_tz(model, clinic)
                          : json_array_size(rooms) != 0 ? sched_location_tz(model, json_array_get(rooms, 0))
                                                       : sched_settings.default_timezone;
    char err[128];
    sched_tz_t *tz = sched_tz_load(tz_name, err, sizeof(err));
    int ret = -1;
    sched_avail_set_t set, tmp;
    sched_avail_set_init(&set);
    sched_avail_set_init(&tmp);
    if (tz == NULL) {
        why_set(why, "the clinic's time zone %s is unknown", tz_name);
        goto Exit;
    }
    sched_avail_query_t sq;
    sched_service_query(service, now, &sq);
    int64_t from = s - bb - DAY, to = e + ba + DAY, a = s - bb, b = e + ba;
    if (s < now + sq.min_notice) {
        why_set(why, "the appointment starts within the minimum notice of %lld minutes", (long long)(sq.min_notice / 60));
        goto Exit;
    }
    if (sq.max_horizon != INT64_MAX && s > now + sq.max_horizon) {
        why_set(why, "the appointment starts beyond the booking horizon of %lld days", (long long)(sq.max_horizon / DAY));
        goto Exit;
    }
    json_t *schedule = NULL;
    if (prac[0] != '\0') {
        char rkey[160];
        snprintf(rkey, sizeof(rkey), "PractitionerRole/%s", role != NULL ? res_id(role) : "");
        schedule = schedule_for(model, prac, role != NULL ? rkey : NULL);
        if (schedule == NULL) {
            why_set(why, "%s has no active Schedule", prac);
            goto Exit;
        }
        sched_avail_set_clear(&set);
        sched_avail_set_add(&set, from, to);
        horizon_clip(&set, schedule, tz);
        if (!sched_avail_set_contains(&set, s, e)) {
            why_set(why, "the appointment is outside the planning horizon of Schedule/%s", res_id(schedule));
            goto Exit;
        }
        if (slot_based(load, schedule)) {
            char skey[160];
            snprintf(skey, sizeof(skey), "Schedule/%s", res_id(schedule));
            bool found = false;
            size_t lo, hi;
            slot_range(load, skey, &lo, &hi);
            for (size_t k = lo; k != hi && !found; ++k) {
                const sched_slot_t *slot = &load->slots[k];
                found = slot->start == s && slot->end == e && (slot->status == SCHED_SLOT_FREE || slot->status == SCHED_SLOT_BUSY);
            }
            if (!found) {
                why_set(why, "Schedule/%s publishes Slots and this time is not one of its free Slots", res_id(schedule));
                goto Exit;
            }
        } else if (role != NULL) {
            if (rules_set(&set, json_object_get(role, "availableTime"), false, tz, from, to) == 0 && !sched_avail_set_contains(&set, a, b)) {
                why_set(why, "the appointment is outside the working hours of %s", prac);
                goto Exit;
            }
            sched_avail_set_clear(&tmp);
            sched_not_available_add(&tmp, json_object_get(role, "notAvailable"), tz);
            sched_avail_set_clip(&tmp, a, b);
            if (tmp.count != 0) {
                why_set(why, "%s is not available then (leave or absence)", prac);
                goto Exit;
            }
        }
    }
    if (clinic != NULL && (schedule == NULL || !slot_based(load, schedule))) {
        hours_set(&set, model, clinic, tz, from, to);
        if (!sched_avail_set_contains(&set, a, b)) {
            why_set(why, "the appointment is outside the opening hours of Location/%s", res_id(clinic));
            goto Exit;
        }
    }
    if (service != NULL && (json_array_size(json_object_get(service, "availableTime")) != 0 ||
                            json_array_size(json_object_get(service, "notAvailable")) != 0)) {
        working_set(&set, service, tz, from, to);
        if (!sched_avail_set_contains(&set, a, b)) {
            why_set(why, "the appointment is outside the hours of HealthcareService/%s", res_id(service));
            goto Exit;
        }
    }
    json_t *ext;
    json_array_foreach(json_object_get(service, "extension"), i, ext) {
        requirement_t need = requirement_of(ext);
        if (need == REQUIRES_NOTHING)
            continue;
        bool room = need == REQUIRES_ROOM;
        json_t *wanted = json_object_get(ext, "valueCodeableConcept");
        json_t *m, *have = room ? rooms : devices;
        size_t j;
        bool ok = false;
        json_array_foreach(have, j, m) {
            ok = ok || sched_concept_overlaps(json_object_get(m, "type"), wanted);
        }
        if (!ok) {
            json_t *coding = json_array_get(json_object_get(wanted, "coding"), 0);
            why_set(why, "HealthcareService/%s needs a %s of type %s and the appointment has none", res_id(service),
                    room ? "room (Location)" : "Device", json_string_value(json_object_get(coding, "code")));
            goto Exit;
        }
    }
    json_t *m;
    json_array_foreach(rooms, i, m) {
        hours_set(&set, model, m, tz, from, to);
        if (!sched_avail_set_contains(&set, a, b)) {
            why_set(why, "the appointment is outside the opening hours of Location/%s", res_id(m));
            goto Exit;
        }
    }
    /* blocked periods: busy-unavailable Slots on the schedules of the actors */
    for (size_t k = 0; k != load->nslots; ++k) {
        const sched_slot_t *slot = &load->slots[k];
        if (slot->status != SCHED_SLOT_BUSY_UNAVAILABLE || !(slot->start < b && a < slot->end))
            continue;
        why_set(why, "the time overlaps a blocked period (Slot/%s, busy-unavailable)", slot->id);
        goto Exit;
    }
    ret = 0;
Exit:
    sched_avail_set_dispose(&set);
    sched_avail_set_dispose(&tmp);
    json_decref(rooms);
    json_decref(devices);
    if (tz != NULL)
        sched_tz_destroy(tz);
    return ret;
}

void sched_appointment_load_keys(const sched_model_t *model, const json_t *appt, json_t *actors, json_t *schedules)
{
    size_t i;
    json_t *p;
    char key[160], extra[160];
    json_array_foreach(json_object_get(appt, "participant"), i, p) {
        const char *k = sched_reference_key(json_object_get(p, "actor"), key, sizeof(key));
        if (k == NULL || strncmp(k, "Patient/", 8) == 0 || strncmp(k, "HealthcareService/", 18) == 0)
            continue;
        add_unique(actors, k);
        json_t *r = sched_model_find(model, k);
        if (strncmp(k, "PractitionerRole/", 17) == 0 && r != NULL &&
            sched_reference_key(json_object_get(r, "practitioner"), extra, sizeof(extra)) != NULL)
            add_unique(actors, extra);
    }
    json_t *a;
    json_array_foreach(actors, i, a) {
        json_t *s = schedule_for(model, json_string_value(a), NULL);
        if (s != NULL) {
            snprintf(key, sizeof(key), "schedule=Schedule/%s", res_id(s));
            add_unique(schedules, key);
        }
    }
}

json_t *sched_appointment_service(const sched_model_t *model, const json_t *appt)
{
    size_t i;
    json_t *p;
    char key[160];
    json_array_foreach(json_object_get(appt, "participant"), i, p) {
        const char *k = sched_reference_key(json_object_get(p, "actor"), key, sizeof(key));
        if (k != NULL && strncmp(k, "HealthcareService/", 18) == 0)
            return sched_model_find(model, k);
    }
    return NULL;
}

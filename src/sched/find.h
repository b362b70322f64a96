/*
 * The availability engine behind $find and the rule checks of $hold/$book: which practitioner, clinic, room and
 * device combinations can serve a request (the plan), then which start times each can offer given the rules, Slots and
 * busy times loaded for the plan. Pure: the caller loads the resources and busy rows (src/sched/ops.c).
 */
#ifndef SCHED_FIND_H
#define SCHED_FIND_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "sched/availability.h"
#include "util/str.h"

/** Settings with built-in defaults (scheduling.* configuration). */
typedef struct st_sched_settings_t {
    const char *default_timezone;
    int64_t hold_ttl;           /* seconds */
    int64_t proposal_ttl;       /* seconds */
    int64_t default_duration;   /* seconds */
    int default_alignment;      /* minutes */
    int64_t cancellation_cutoff; /* seconds */
    unsigned find_max_days;
    unsigned find_default_count;
    unsigned find_max_count;
    unsigned sweep_interval_ms;
} sched_settings_t;

/** The settings in force (set once at start-up). */
extern sched_settings_t sched_settings;

/** A token "system|code" (system may be empty/NULL for any). */
typedef struct st_sched_token_t {
    char *system;
    char *code;
} sched_token_t;

/** What a $find asks for; lists are in order of preference. */
typedef struct st_sched_find_query_t {
    int64_t now, from, to;
    char **practitioners; /* "Practitioner/x" or "PractitionerRole/x" */
    size_t npractitioners;
    char **organizations; /* "Organization/x" */
    size_t norganizations;
    char **locations; /* "Location/x" (a clinic or a room) */
    size_t nlocations;
    char **location_strings; /* folded words */
    size_t nlocation_strings;
    sched_token_t *visit_types;
    size_t nvisit_types;
    sched_token_t *specialties;
    size_t nspecialties;
    char **patients; /* "Patient/x" whose existing appointments must not overlap */
    size_t npatients;
    /* timing preference (0 / empty = any) */
    unsigned timing_days;     /* SCHED_DAY_* */
    unsigned timing_when;     /* bit 0 morning, 1 afternoon, 2 evening, 3 night */
    int32_t *timing_times;    /* local times of day (seconds) a start must equal */
    size_t ntiming_times;
    int64_t timing_from, timing_to; /* boundsPeriod */
    size_t count;             /* proposals wanted */
} sched_find_query_t;

/** Frees the query's lists. */
void sched_find_query_dispose(sched_find_query_t *q);

/** The resources availability comes from: one array per type. */
typedef struct st_sched_model_t {
    json_t *services, *roles, *locations, *schedules, *devices;
} sched_model_t;

/** An empty model. */
void sched_model_init(sched_model_t *model);
/** Adds a resource (the reference is stolen) to the array of its type; a resource of any other type is dropped. */
void sched_model_add(sched_model_t *model, json_t *resource);
/** `model` takes references to the arrays of `from` (they are never modified once loaded). */
void sched_model_share(sched_model_t *model, const sched_model_t *from);
/** Releases the arrays. */
void sched_model_dispose(sched_model_t *model);

/** One way to serve a request: a service by a practitioner (through a role) at a clinic, with rooms/devices if needed. */
typedef struct st_sched_combo_t {
    json_t *service, *role, *clinic, *schedule; /* borrowed from the model */
    char practitioner[160];                     /* "Practitioner/x" */
    json_t *groups; /* array of arrays of resources: each inner array lists alternatives (rooms of a type, devices of a type), one of which is needed */
    unsigned rank[5]; /* practitioner, location, visit type, specialty, organization preference */
    const char *tz_name;
} sched_combo_t;

/** A plan: the combinations and what must be loaded for them. */
typedef struct st_sched_plan_t {
    sched_combo_t *combos;
    size_t ncombos;
    json_t *actors;    /* array of "Type/id" whose busy rows are needed */
    json_t *schedules; /* array of "schedule=Schedule/x" tokens whose Slots are needed */
    util_buf_t why;    /* when empty: why nothing can serve the request */
} sched_plan_t;

/** Busy time loaded for a plan. */
typedef struct st_sched_busy_t {
    char *actor; /* "Type/id"; "Patient/x" for the patients' own appointments */
    int64_t start, end;
    char *appointment_id;
} sched_busy_t;

typedef enum {
    SCHED_SLOT_FREE,
    SCHED_SLOT_BUSY,
    SCHED_SLOT_BUSY_UNAVAILABLE,
    SCHED_SLOT_BUSY_TENTATIVE,
    SCHED_SLOT_ENTERED_IN_ERROR,
    SCHED_SLOT_OTHER,
} sched_slot_status_t;

/** A loaded Slot: only what availability needs (a clinic month is ~10k Slots per request, so no JSON trees). */
typedef struct st_sched_slot_t {
    int64_t start, end;
    const char *schedule; /* "Schedule/x" (in the load's table of schedules) */
    char *id;
    size_t schedule_index; /* in that table */
    sched_slot_status_t status;
} sched_slot_t;

/**
 * Loaded dynamic data: busy rows, Slots of the plan's schedules, and which schedules are slot-based. The rows are kept
 * sorted (by actor or schedule, then start) on first use, so a combination looks up its own rows by binary search.
 */
typedef struct st_sched_load_t {
    sched_busy_t *busy;
    size_t nbusy, busy_cap;
    int64_t busy_longest; /* the longest busy row: bounds how far back an overlapping row can start */
    sched_slot_t *slots;
    size_t nslots, slots_cap;
    char **schedules; /* the distinct schedules of the Slots */
    size_t nschedules;
    bool sorted;
    bool busy_slots; /* some busy row's actor is a Slot (known once sorted) */
    json_t *slot_schedules; /* object: "Schedule/x" -> true when the schedule publishes Slots */
    const char *ignore_appointment; /* busy rows of this appointment do not count (rechecks of itself) */
} sched_load_t;

void sched_load_init(sched_load_t *load);
void sched_load_dispose(sched_load_t *load);
/** Adds a busy row (strings copied). */
void sched_load_add_busy(sched_load_t *load, const char *actor, int64_t start, int64_t end, const char *appointment_id);
/** Adds a Slot of the Schedule `schedule_reference` (any reference form); -1 (and nothing added) for an unusable one. */
int sched_load_add_slot(sched_load_t *load, const char *id, const char *schedule_reference, const char *status, int64_t start, int64_t end);

/** A proposal: a start/end for one combination (and the room/device members chosen, the Slot used). */
typedef struct st_sched_candidate_t {
    int64_t start, end;
    size_t combo;
    json_t *members;           /* array: the chosen member of each group (borrowed) */
    const sched_slot_t *slot; /* borrowed from the load, or NULL */
    size_t pick_at;           /* internal to sched_find_run */
} sched_candidate_t;

/** Builds the plan for a query. */
void sched_plan_build(sched_plan_t *plan, const sched_model_t *model, const sched_find_query_t *q);
void sched_plan_dispose(sched_plan_t *plan);

/**
 * Computes the proposals of a plan: sorted by preference rank then start, de-duplicated per practitioner, service and start;
 * *total is the number found (all of them), the first min(total, q->count) are in *out (caller frees with
 * sched_candidates_free). Reasons for finding nothing are appended to `why`.
 */
void sched_find_run(const sched_plan_t *plan, const sched_model_t *model, sched_load_t *load, const sched_find_query_t *q,
                    sched_candidate_t **out, size_t *nout, size_t *total, util_buf_t *why);
void sched_candidates_free(sched_candidate_t *c, size_t n);

/** The time zone of a Location (its own extension, else its partOf chain's, else the default). */
const char *sched_location_tz(const sched_model_t *model, const json_t *location);
/** A model resource by "Type/id", or NULL. */
json_t *sched_model_find(const sched_model_t *model, const char *key);

/**
 * Checks an Appointment against the soft rules (notice, horizon, schedules, working hours, leave, clinic and service
 * hours, room/device types, blocked periods). Returns 0, or -1 with a message naming the first broken rule in `why`.
 */
int sched_check_rules(const sched_model_t *model, sched_load_t *load, const json_t *appointment, int64_t now, util_buf_t *why);

/**
 * What a rule check of `appointment` needs loaded: its exclusive actors ("Type/id", the role's practitioner included)
 * into `actors` and "schedule=Schedule/x" tokens of their Schedules into `schedules`.
 */
void sched_appointment_load_keys(const sched_model_t *model, const json_t *appointment, json_t *actors, json_t *schedules);
/** The HealthcareService an Appointment names among its participants, or NULL. */
json_t *sched_appointment_service(const sched_model_t *model, const json_t *appointment);

/** Duration, buffers, alignment, notice and horizon of a service (defaults from sched_settings). */
void sched_service_query(const json_t *service, int64_t now, sched_avail_query_t *out);

#endif

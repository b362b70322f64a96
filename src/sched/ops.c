#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fhir/interaction.h"
#include "fhir/json.h"
#include "fhir/search.h"
#include "sched/find.h"
#include "sched/model.h"
#include "sched/ops.h"
#include "util/fold.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"
#include "util/uuid.h"

#define MODULE_NAME "sched/ops.c"
#define IHE_APPT_PROFILE "https://profiles.ihe.net/ITI/Scheduling/StructureDefinition/ihe-sched-appt"
#define IHE_BUNDLE_PROFILE "https://profiles.ihe.net/ITI/Scheduling/StructureDefinition/ihe-sched-avail-bundle"
#define DAY 86400

/* The operations' statements, prepared on every connection (http/server.c): planning the load alone cost more than
 * running it. */
/* The model's types. Migration 0012 puts its version trigger on these same partitions: a type added here without its
 * trigger there would be cached stale. */
#define MODEL_TYPES "('HealthcareService', 'PractitionerRole', 'Location', 'Schedule', 'Device')"
enum { STMT_MODEL, STMT_LOAD, STMT_TARGET, STMT_SAVE_PROPOSALS, STMT_PATIENT_BY_ID, STMT_PATIENT_BY_IDENTIFIER };
/* Everything availability is computed from (clinic-sized: every schedulable resource): the model's version
 * (sched_model_version, moved on by every committed write of those types: migrations/0012_write_path.sql), and the
 * bodies only when that differs from $1, the version this thread holds. Rows (kind, value, body): ('version', v, NULL)
 * and ('model', NULL, body). In one statement, so one snapshot: the version always describes the bodies it comes with. */
#define MODEL_ROWS_SQL                                                                                                   \
    "WITH f AS (SELECT version::text AS v FROM sched_model_version) "                                                  \
    "SELECT 'version' AS kind, f.v AS value, NULL AS body FROM f UNION ALL SELECT 'model', NULL, r.body FROM f, resource r " \
    "WHERE f.v <> $1 AND r.res_type IN " MODEL_TYPES " AND NOT r.deleted"
const store_stmt_t sched_ops_statements[] = {
    [STMT_MODEL] = {"sched_model", MODEL_ROWS_SQL},
    /* Busy rows of the actors, Slots of the schedules, which schedules publish Slots, and the patients' own appointments:
     * sched_load (migrations/0010_booking_hot_path.sql), where its plan is kept for the session. */
    [STMT_LOAD] = {"sched_load", "SELECT kind, key, lo, hi, extra FROM sched_load($1::text[], $2::text[], $3::timestamptz, "
                                 "$4::timestamptz, $5::text[])"},
    /*
     * What $hold and $book start from, in one round trip and one snapshot: the model's rows as STMT_MODEL gives them,
     * the Appointment id $2 names (('resource', version, body) stored, or ('proposal', '0', body) a live proposal), and
     * which of the ids $3 (patient-resource's) are live Patients (('patient', id, NULL)).
     */
    [STMT_TARGET] = {"sched_target", MODEL_ROWS_SQL " UNION ALL SELECT 'resource', version_id::text, body FROM resource "
                                                    "WHERE res_type = 'Appointment' AND id = $2 AND NOT deleted "
                                                    "UNION ALL SELECT 'proposal', '0', body FROM sched_proposal_body($2) "
                                                    "UNION ALL SELECT 'patient', id, NULL FROM resource "
                                                    "WHERE res_type = 'Patient' AND id = ANY ($3::text[]) AND NOT deleted"},
    /*
     * Proposals are short-lived offers, saved by a statement of its own (never in a session): its commit does not wait
     * for the WAL flush (set_config local to this one-statement transaction). A crash may lose the last few; a $hold
     * on one is then "not found" and the client asks again, while bookings keep their synchronous commits.
     */
    [STMT_SAVE_PROPOSALS] = {"sched_save_proposals", "INSERT INTO sched_proposal (set_id, bodies, expires_at) "
                                                     "SELECT $1, $2::json, now() + $3::integer * interval '1 second' "
                                                     "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"},
    [STMT_PATIENT_BY_ID] = {"sched_patient_by_id", "SELECT id FROM resource WHERE res_type = 'Patient' AND id = $1 AND NOT deleted"},
    [STMT_PATIENT_BY_IDENTIFIER] = {"sched_patient_by_identifier",
                                    "SELECT id FROM resource WHERE res_type = 'Patient' AND NOT deleted "
                                    "AND sp_tokens @> ARRAY[$1] ORDER BY id LIMIT 2"},
};
const size_t sched_ops_statement_count = sizeof(sched_ops_statements) / sizeof(sched_ops_statements[0]);

typedef enum { BOOK_NEW, BOOK_MODIFY, BOOK_CANCEL } book_mode_t;

struct st_sched_op_t {
    sched_op_kind_t kind;
    void *data;
    sched_op_cb cb;
    store_pool_t *pool;
    int status;
    char *body;
    size_t body_len;
    fhir_outcome_t oo;    /* the error */
    fhir_outcome_t notes; /* warnings reported beside a success */
    int64_t expires;
    int64_t now;
    /* inputs */
    sched_find_query_t q;
    json_t *reasons, *referral, *insurance, *find_patients;
    char *appt_ref;
    json_t *appt_resource;
    json_t *patient_resources;
    json_t *live_patients; /* ids of patient-resource's Patients found stored (STMT_TARGET) */
    char *comment;
    bool override_rules;
    const fhir_access_t *access; /* the requester's rules for what the operation writes */
    fhir_ix_audit_fn audit;
    void *audit_ctx;
    /* state */
    store_query_t query;
    char *params[6];
    int nparams;
    void (*next)(sched_op_t *op, PGresult *res);
    void (*after_model)(sched_op_t *op);
    void (*after_load)(sched_op_t *op);
    store_session_t session;
    bool in_session;
    sched_model_t model;
    sched_plan_t plan;
    sched_load_t load;
    json_t *target; /* the Appointment being held, booked, changed or cancelled */
    char *target_id;
    int target_version; /* stored version, 0 when it is a proposal or new */
    bool target_slotless; /* the stored version references no Slot */
    book_mode_t mode;
    json_t *hold_patients;
    json_t *patient_keys;
    size_t patient_next;
    /* $find: the proposals as JSON text, dumped once for storing and for the answer; ids are <set>-<index> */
    char **proposal_texts;
    size_t nproposals, proposals_total;
    char proposal_set[UTIL_UUID_LEN + 8];
    fhir_ix_t *ix;
    char *rule_warning; /* SCHED_OP_CHECK: the first broken rule */
    store_session_t *borrowed; /* SCHED_OP_CHECK: the caller's transaction, which reads run in */
};

/* ---- life cycle and results ---- */

int sched_op_kind(const char *segment, size_t len)
{
    if (util_str_eq(segment, len, "$find"))
        return SCHED_OP_FIND;
    if (util_str_eq(segment, len, "$hold"))
        return SCHED_OP_HOLD;
    if (util_str_eq(segment, len, "$book"))
        return SCHED_OP_BOOK;
    return -1;
}

sched_op_t *sched_op_create(sched_op_kind_t kind)
{
    sched_op_t *op = util_xcalloc(1, sizeof(*op));
    op->kind = kind;
    fhir_outcome_init(&op->oo);
    fhir_outcome_init(&op->notes);
    op->reasons = json_array();
    op->insurance = json_array();
    op->find_patients = json_array();
    op->patient_resources = json_array();
    op->live_patients = json_array();
    op->patient_keys = json_array();
    op->hold_patients = json_array();
    sched_load_init(&op->load);
    op->q.timing_from = INT64_MIN;
    op->q.timing_to = INT64_MAX;
    return op;
}

void sched_op_destroy(sched_op_t *op)
{
    free(op->body);
    fhir_outcome_dispose(&op->oo);
    fhir_outcome_dispose(&op->notes);
    sched_find_query_dispose(&op->q);
    json_decref(op->reasons);
    json_decref(op->referral);
    json_decref(op->insurance);
    json_decref(op->find_patients);
    free(op->appt_ref);
    json_decref(op->appt_resource);
    json_decref(op->patient_resources);
    json_decref(op->live_patients);
    free(op->comment);
    for (int i = 0; i != op->nparams; ++i)
        free(op->params[i]);
    sched_model_dispose(&op->model);
    sched_plan_dispose(&op->plan);
    sched_load_dispose(&op->load);
    json_decref(op->target);
    free(op->target_id);
    json_decref(op->hold_patients);
    json_decref(op->patient_keys);
    for (size_t i = 0; i != op->nproposals; ++i)
        free(op->proposal_texts[i]);
    free(op->proposal_texts);
    free(op->rule_warning);
    if (op->ix != NULL)
        fhir_ix_destroy(op->ix);
    free(op);
}

void sched_op_set_guard(sched_op_t *op, const fhir_access_t *access, fhir_ix_audit_fn audit, void *audit_ctx)
{
    op->access = access;
    op->audit = audit;
    op->audit_ctx = audit_ctx;
}

bool sched_op_overrides_rules(const sched_op_t *op)
{
    return op->override_rules;
}

void *sched_op_data(const sched_op_t *op)
{
    return op->data;
}

int sched_op_status(const sched_op_t *op)
{
    return op->status;
}

const char *sched_op_body(const sched_op_t *op, size_t *len)
{
    *len = op->body_len;
    return op->body;
}

const fhir_outcome_t *sched_op_outcome(const sched_op_t *op)
{
    return &op->oo;
}

int64_t sched_op_expires(const sched_op_t *op)
{
    return op->status < 400 ? op->expires : 0;
}

/* ---- input ---- */

static int bad(sched_op_t *op, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(sched_op_t *op, const char *name, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *msg = util_vasprintf(fmt, args);
    va_end(args);
    fhir_outcome_fail(&op->oo, 400, "invalid", name, "%s: %s", name, msg);
    free(msg);
    op->status = 400;
    return -1;
}

static void push(char ***list, size_t *n, const char *value)
{
    *list = util_xrealloc(*list, (*n + 1) * sizeof(**list));
    (*list)[(*n)++] = util_xstrdup(value);
}

/* A token from valueString/valueCode "system|code" (or "code"), valueCoding or valueCodeableConcept. */
static int read_tokens(sched_op_t *op, const char *name, const json_t *p, sched_token_t **list, size_t *n, json_t *concepts)
{
    const char *text = json_string_value(json_object_get(p, "valueString"));
    if (text == NULL)
        text = json_string_value(json_object_get(p, "valueCode"));
    json_t *coding = json_object_get(p, "valueCoding");
    json_t *cc = json_object_get(p, "valueCodeableConcept");
    if (cc != NULL)
        coding = json_array_get(json_object_get(cc, "coding"), 0);
    if (coding != NULL) {
        const char *code = json_string_value(json_object_get(coding, "code"));
        if (code == NULL)
            return bad(op, name, "the coding has no code");
        *list = util_xrealloc(*list, (*n + 1) * sizeof(**list));
        const char *sys = json_string_value(json_object_get(coding, "system"));
        (*list)[(*n)++] = (sched_token_t){util_xstrdup(sys != NULL ? sys : ""), util_xstrdup(code)};
        if (concepts != NULL)
            json_array_append_new(concepts, json_pack("{s:[O]}", "coding", coding));
        return 0;
    }
    if (text == NULL || text[0] == '\0')
        return bad(op, name, "expected a token such as system|code");
    /* a comma separates alternatives, as in FHIR search */
    char *copy = util_xstrdup(text), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *bar = strchr(tok, '|');
        const char *sys = bar != NULL ? tok : "";
        if (bar != NULL)
            *bar = '\0';
        const char *code = bar != NULL ? bar + 1 : tok;
        if (code[0] == '\0') {
            free(copy);
            return bad(op, name, "the token has no code");
        }
        *list = util_xrealloc(*list, (*n + 1) * sizeof(**list));
        (*list)[(*n)++] = (sched_token_t){util_xstrdup(sys), util_xstrdup(code)};
        if (concepts != NULL)
            json_array_append_new(concepts, sys[0] != '\0' ? json_pack("{s:[{s:s,s:s}]}", "coding", "system", sys, "code", code)
                                                           : json_pack("{s:[{s:s}]}", "coding", "code", code));
    }
    free(copy);
    return 0;
}

/* A reference from valueReference or a "Type/id" string; `types` lists the allowed types ("A|B"). */
static int read_reference(sched_op_t *op, const char *name, const json_t *p, const char *types, char *key, size_t keylen)
{
    const char *text = json_string_value(json_object_get(json_object_get(p, "valueReference"), "reference"));
    if (text == NULL)
        text = json_string_value(json_object_get(p, "valueString"));
    if (text == NULL) {
        if (json_object_get(json_object_get(p, "valueReference"), "identifier") != NULL)
            return bad(op, name, "references by identifier alone are not resolved by this server; give Type/id");
        return bad(op, name, "expected a reference such as %s/123", types);
    }
    if (sched_ref_key(text, key, keylen) == NULL)
        return bad(op, name, "'%s' is not a reference to a resource (Type/id)", text);
    char *slash = strchr(key, '/');
    size_t tlen = (size_t)(slash - key);
    for (const char *t = types; *t != '\0';) {
        const char *bar = strchr(t, '|');
        size_t len = bar != NULL ? (size_t)(bar - t) : strlen(t);
        if (len == tlen && strncmp(t, key, len) == 0)
            return 0;
        t += len + (bar != NULL);
    }
    return bad(op, name, "'%s' is not a reference to %s", text, types);
}

static int read_time(sched_op_t *op, const char *name, const json_t *p, bool upper, int64_t *out)
{
    const char *text = NULL;
    static const char *const keys[] = {"valueDateTime", "valueInstant", "valueDate", "valueString"};
    for (size_t i = 0; i != 4 && text == NULL; ++i)
        text = json_string_value(json_object_get(p, keys[i]));
    char err[64];
    sched_tz_t *tz = sched_tz_load(sched_settings.default_timezone, err, sizeof(err));
    int ret = text != NULL && tz != NULL ? sched_fhir_time(text, tz, upper, out) : -1;
    sched_tz_destroy(tz);
    return ret == 0 ? 0 : bad(op, name, "expected a FHIR date or dateTime with a time zone");
}

static int read_timing(sched_op_t *op, const json_t *timing)
{
    json_t *repeat = json_object_get(timing, "repeat");
    size_t i;
    json_t *v;
    static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    json_array_foreach(json_object_get(repeat, "dayOfWeek"), i, v) {
        unsigned d;
        for (d = 0; d != 7; ++d)
            if (json_string_value(v) != NULL && strcmp(json_string_value(v), days[d]) == 0)
                break;
        if (d == 7)
            return bad(op, "timing", "dayOfWeek must be mon..sun");
        op->q.timing_days |= 1u << d;
    }
    json_array_foreach(json_object_get(repeat, "when"), i, v) {
        const char *w = json_string_value(v);
        if (w == NULL)
            return bad(op, "timing", "when must be a code");
        if (strncmp(w, "MORN", 4) == 0)
            op->q.timing_when |= 1;
        else if (strncmp(w, "AFT", 3) == 0)
            op->q.timing_when |= 2;
        else if (strncmp(w, "EVE", 3) == 0)
            op->q.timing_when |= 4;
        else if (strcmp(w, "NIGHT") == 0)
            op->q.timing_when |= 8;
        else
            return bad(op, "timing", "when %s is not supported (MORN, AFT, EVE, NIGHT and their parts are)", w);
    }
    json_array_foreach(json_object_get(repeat, "timeOfDay"), i, v) {
        int32_t t = sched_time_of_day(json_string_value(v));
        if (t < 0)
            return bad(op, "timing", "timeOfDay must be hh:mm:ss");
        op->q.timing_times = util_xrealloc(op->q.timing_times, (op->q.ntiming_times + 1) * sizeof(int32_t));
        op->q.timing_times[op->q.ntiming_times++] = t;
    }
    json_t *bounds = json_object_get(repeat, "boundsPeriod");
    if (bounds != NULL) {
        char err[64];
        sched_tz_t *tz = sched_tz_load(sched_settings.default_timezone, err, sizeof(err));
        int ret = tz != NULL ? sched_period_read(bounds, tz, &op->q.timing_from, &op->q.timing_to) : -1;
        sched_tz_destroy(tz);
        if (ret != 0)
            return bad(op, "timing", "boundsPeriod is not a valid Period");
    }
    return 0;
}

static int parse_find_param(sched_op_t *op, const char *name, const json_t *p, bool *has_start, bool *has_end)
{
    char key[160];
    if (strcmp(name, "start") == 0) {
        *has_start = true;
        return read_time(op, name, p, false, &op->q.from);
    }
    if (strcmp(name, "end") == 0) {
        *has_end = true;
        return read_time(op, name, p, true, &op->q.to);
    }
    if (strcmp(name, "specialty") == 0)
        return read_tokens(op, name, p, &op->q.specialties, &op->q.nspecialties, NULL);
    if (strcmp(name, "visit-type") == 0)
        return read_tokens(op, name, p, &op->q.visit_types, &op->q.nvisit_types, NULL);
    if (strcmp(name, "reason") == 0) {
        sched_token_t *t = NULL;
        size_t n = 0;
        int ret = read_tokens(op, name, p, &t, &n, op->reasons);
        for (size_t i = 0; i != n; ++i)
            free(t[i].system), free(t[i].code);
        free(t);
        return ret;
    }
    if (strcmp(name, "practitioner") == 0) {
        if (read_reference(op, name, p, "Practitioner|PractitionerRole", key, sizeof(key)) != 0)
            return -1;
        push(&op->q.practitioners, &op->q.npractitioners, key);
        return 0;
    }
    if (strcmp(name, "organization") == 0) {
        if (read_reference(op, name, p, "Organization", key, sizeof(key)) != 0)
            return -1;
        push(&op->q.organizations, &op->q.norganizations, key);
        return 0;
    }
    if (strcmp(name, "location-reference") == 0) {
        if (read_reference(op, name, p, "Location", key, sizeof(key)) != 0)
            return -1;
        push(&op->q.locations, &op->q.nlocations, key);
        return 0;
    }
    if (strcmp(name, "location-string") == 0) {
        const char *s = json_string_value(json_object_get(p, "valueString"));
        if (s == NULL || s[0] == '\0')
            return bad(op, name, "expected a string");
        char *f = util_fold(s);
        push(&op->q.location_strings, &op->q.nlocation_strings, f);
        free(f);
        return 0;
    }
    if (strcmp(name, "patient-reference") == 0) {
        if (read_reference(op, name, p, "Patient", key, sizeof(key)) != 0)
            return -1;
        push(&op->q.patients, &op->q.npatients, key);
        json_array_append_new(op->find_patients, json_string(key));
        return 0;
    }
    if (strcmp(name, "patient-resource") == 0) {
        json_t *r = json_object_get(p, "resource");
        const char *rt = json_string_value(json_object_get(r, "resourceType"));
        if (rt == NULL || strcmp(rt, "Patient") != 0)
            return bad(op, name, "expected a Patient resource");
        const char *id = json_string_value(json_object_get(r, "id"));
        if (id != NULL) {
            /* a known patient: their own appointments are excluded and they join the proposals */
            snprintf(key, sizeof(key), "Patient/%s", id);
            push(&op->q.patients, &op->q.npatients, key);
            json_array_append_new(op->find_patients, json_string(key));
        }
        return 0;
    }
    if (strcmp(name, "referral-identifier") == 0) {
        json_t *ident = json_object_get(p, "valueIdentifier");
        const char *s = json_string_value(json_object_get(p, "valueString"));
        if (ident == NULL && s != NULL) {
            const char *bar = strchr(s, '|');
            ident = bar != NULL ? json_pack("{s:s%, s:s}", "system", s, (size_t)(bar - s), "value", bar + 1) : json_pack("{s:s}", "value", s);
        } else if (ident != NULL) {
            json_incref(ident);
        }
        if (ident == NULL || json_string_value(json_object_get(ident, "value")) == NULL) {
            json_decref(ident);
            return bad(op, name, "expected an Identifier (system|value)");
        }
        json_decref(op->referral);
        op->referral = ident;
        return 0;
    }
    if (strcmp(name, "timing") == 0) {
        json_t *t = json_object_get(p, "valueTiming");
        return t != NULL ? read_timing(op, t) : bad(op, name, "expected a Timing (POST with Parameters)");
    }
    if (strcmp(name, "insurance-reference") == 0) {
        if (read_reference(op, name, p, "Coverage|InsurancePlan", key, sizeof(key)) != 0)
            return -1;
        json_array_append_new(op->insurance, json_pack("{s:s}", "reference", key));
        return 0;
    }
    if (strcmp(name, "_count") == 0) {
        const char *s = json_string_value(json_object_get(p, "valueString"));
        json_t *i = json_object_get(p, "valueInteger");
        long n = i != NULL ? (long)json_integer_value(i) : -1;
        if (s != NULL) {
            char *end;
            n = strtol(s, &end, 10);
            if (*end != '\0' || end == s)
                n = -1;
        }
        if (n < 1)
            return bad(op, name, "expected a positive integer");
        op->q.count = (size_t)n > sched_settings.find_max_count ? sched_settings.find_max_count : (size_t)n;
        return 0;
    }
    if (strcmp(name, "_format") == 0 || strcmp(name, "_pretty") == 0)
        return 0;
    return bad(op, name, "not a parameter of Appointment/$find");
}

static int parse_book_param(sched_op_t *op, const char *name, const json_t *p)
{
    char key[160];
    if (strcmp(name, "appointment-reference") == 0) {
        if (op->appt_ref != NULL)
            return bad(op, name, "appears more than once");
        if (read_reference(op, name, p, "Appointment", key, sizeof(key)) != 0)
            return -1;
        op->appt_ref = util_xstrdup(key + strlen("Appointment/"));
        return 0;
    }
    if (op->kind == SCHED_OP_HOLD)
        return strcmp(name, "_format") == 0 || strcmp(name, "_pretty") == 0 ? 0 : bad(op, name, "not a parameter of Appointment/$hold");
    if (strcmp(name, "appointment-resource") == 0) {
        json_t *r = json_object_get(p, "resource");
        const char *rt = json_string_value(json_object_get(r, "resourceType"));
        if (rt == NULL || strcmp(rt, "Appointment") != 0)
            return bad(op, name, "expected an Appointment resource");
        if (op->appt_resource != NULL)
            return bad(op, name, "appears more than once");
        op->appt_resource = json_deep_copy(r);
        return 0;
    }
    if (strcmp(name, "patient-resource") == 0) {
        json_t *r = json_object_get(p, "resource");
        const char *rt = json_string_value(json_object_get(r, "resourceType"));
        if (rt == NULL || strcmp(rt, "Patient") != 0)
            return bad(op, name, "expected a Patient resource");
        json_array_append_new(op->patient_resources, json_deep_copy(r));
        return 0;
    }
    if (strcmp(name, "comment") == 0) {
        const char *s = json_string_value(json_object_get(p, "valueString"));
        if (s == NULL)
            return bad(op, name, "expected a string");
        free(op->comment);
        op->comment = util_xstrdup(s);
        return 0;
    }
    if (strcmp(name, "override-rules") == 0) {
        json_t *b = json_object_get(p, "valueBoolean");
        const char *s = json_string_value(json_object_get(p, "valueString"));
        if (!json_is_boolean(b) && !(s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)))
            return bad(op, name, "expected a boolean");
        op->override_rules = json_is_true(b) || (s != NULL && strcmp(s, "true") == 0);
        return 0;
    }
    if (strcmp(name, "_format") == 0 || strcmp(name, "_pretty") == 0)
        return 0;
    return bad(op, name, "not a parameter of Appointment/$book");
}

int sched_op_parse(sched_op_t *op, const char *query, const json_t *parameters)
{
    /* One list of Parameters.parameter entries: URL query values become valueString entries. */
    json_t *list = json_array();
    if (query != NULL) {
        const char *cursor = query, *end = query + strlen(query);
        char *name, *value;
        while (fhir_query_next(&cursor, end, &name, &value) > 0) {
            json_array_append_new(list, json_pack("{s:s, s:s}", "name", name, "valueString", value));
            free(name);
            free(value);
        }
    }
    if (parameters != NULL) {
        const char *rt = json_string_value(json_object_get(parameters, "resourceType"));
        if (rt == NULL || strcmp(rt, "Parameters") != 0) {
            json_decref(list);
            return bad(op, "body", "the body must be a Parameters resource");
        }
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(parameters, "parameter"), i, p) {
            json_array_append(list, p);
        }
    }
    op->q.count = sched_settings.find_default_count;
    bool has_start = false, has_end = false;
    size_t i;
    json_t *p;
    int ret = 0;
    json_array_foreach(list, i, p) {
        const char *name = json_string_value(json_object_get(p, "name"));
        if (name == NULL) {
            ret = bad(op, "parameter", "every parameter needs a name");
            break;
        }
        ret = op->kind == SCHED_OP_FIND ? parse_find_param(op, name, p, &has_start, &has_end) : parse_book_param(op, name, p);
        if (ret != 0)
            break;
    }
    json_decref(list);
    if (ret != 0)
        return -1;
    if (op->kind == SCHED_OP_FIND) {
        if (!has_start || !has_end)
            return bad(op, has_start ? "end" : "start", "is required");
        if (op->q.to <= op->q.from)
            return bad(op, "end", "must be after start");
        if (op->q.to - op->q.from > (int64_t)sched_settings.find_max_days * DAY)
            return bad(op, "end", "the window may be at most %u days long", sched_settings.find_max_days);
    } else if (op->kind == SCHED_OP_HOLD && op->appt_ref == NULL) {
        return bad(op, "appointment-reference", "is required");
    } else if (op->kind == SCHED_OP_BOOK && (op->appt_ref == NULL) == (op->appt_resource == NULL)) {
        return bad(op, "appointment-reference", "give exactly one of appointment-reference and appointment-resource");
    }
    return 0;
}

/* ---- running statements ---- */

static void op_done(sched_op_t *op);

static void op_fail(sched_op_t *op, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void op_fail(sched_op_t *op, int status, const char *code, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *msg = util_vasprintf(fmt, args);
    va_end(args);
    fhir_outcome_fail(&op->oo, status, code, NULL, "%s", msg);
    free(msg);
    op->status = status;
    free(op->body);
    op->body = NULL;
    op_done(op);
}

static void on_op_query(store_query_t *q, PGresult *res, const char *err)
{
    sched_op_t *op = H2O_STRUCT_FROM_MEMBER(sched_op_t, query, q);
    if (err != NULL) {
        if (err == store_err_query)
            LOG_ERROR("scheduling statement failed (%s): %s", store_sqlstate(res), res != NULL ? PQresultErrorMessage(res) : "");
        op_fail(op, err == store_err_query ? 500 : 503, err == store_err_query ? "exception" : "transient",
                err == store_err_query ? "internal error while reading the schedule" : "the database is not available; retry later");
        return;
    }
    op->next(op, res);
}

static void op_send(sched_op_t *op, const store_stmt_t *stmt, int nparams, const char *const *params, void (*next)(sched_op_t *, PGresult *))
{
    for (int i = 0; i != op->nparams; ++i)
        free(op->params[i]);
    op->nparams = nparams;
    for (int i = 0; i != nparams; ++i)
        op->params[i] = params[i] != NULL ? util_xstrdup(params[i]) : NULL;
    op->query = (store_query_t){.stmt_name = stmt->name, .sql = stmt->sql, .nparams = nparams, .params = (const char *const *)op->params, .cb = on_op_query};
    op->next = next;
    int ret = op->borrowed != NULL ? store_session_query(op->borrowed, &op->query)
              : op->in_session     ? store_session_query(&op->session, &op->query)
                                   : store_pool_submit(op->pool, &op->query);
    if (ret != 0)
        op_fail(op, 503, "transient", "the server is overloaded; retry later");
}

static void on_tx_end(store_query_t *q, PGresult *res, const char *err)
{
    sched_op_t *op = H2O_STRUCT_FROM_MEMBER(sched_op_t, query, q);
    store_session_end(&op->session);
    op->in_session = false;
    if (err != NULL && op->status < 400) {
        free(op->body);
        op->body = NULL;
        fhir_outcome_fail(&op->oo, err == store_err_query ? 409 : 503, err == store_err_query ? "conflict" : "transient", NULL,
                          "the booking could not be committed and was not stored; retry");
        op->status = op->oo.status;
    }
    op->cb(op);
}

static void op_done(sched_op_t *op)
{
    if (op->in_session) {
        op->query = (store_query_t){.sql = op->status < 400 ? "COMMIT" : "ROLLBACK", .cb = on_tx_end};
        if (op->session._conn != NULL && store_session_query(&op->session, &op->query) == 0)
            return;
        store_session_end(&op->session);
        op->in_session = false;
        if (op->status < 400) {
            free(op->body);
            op->body = NULL;
            fhir_outcome_fail(&op->oo, 503, "transient", NULL, "the database connection was lost; the booking may not be stored");
            op->status = 503;
        }
    }
    op->cb(op);
}

/* This loop thread's model and the sched_model_version it was read at: parsing the model's bodies on every
 * operation was most of the server's time in $hold and $book. Each operation takes references to the arrays, so a newer
 * model replaces this one without pulling it from under operations in flight. */
static __thread sched_model_t thread_model;
static __thread char thread_model_version[40];

/* Takes the model's rows of `res` (MODEL_ROWS_SQL's; rows of other kinds are left alone) into the thread's model, and
 * gives the operation its reference. */
static void take_model(sched_op_t *op, PGresult *res)
{
    const char *version = NULL;
    sched_model_t fresh;
    sched_model_init(&fresh);
    for (int i = 0; i != PQntuples(res); ++i) {
        const char *kind = PQgetvalue(res, i, 0);
        if (strcmp(kind, "version") == 0) {
            version = PQgetvalue(res, i, 1);
        } else if (strcmp(kind, "model") == 0) {
            json_t *r = json_loads(PQgetvalue(res, i, 2), 0, NULL);
            if (r != NULL)
                sched_model_add(&fresh, r);
        }
    }
    if (version != NULL && strcmp(version, thread_model_version) != 0) {
        sched_model_dispose(&thread_model);
        thread_model = fresh;
        snprintf(thread_model_version, sizeof(thread_model_version), "%s", version);
    } else {
        sched_model_dispose(&fresh);
    }
    sched_model_dispose(&op->model);
    sched_model_share(&op->model, &thread_model);
}

static void on_model(sched_op_t *op, PGresult *res)
{
    take_model(op, res);
    op->after_model(op);
}

static void load_model(sched_op_t *op, void (*after)(sched_op_t *))
{
    op->after_model = after;
    const char *params[] = {thread_model_version};
    op_send(op, &sched_ops_statements[STMT_MODEL], 1, params, on_model);
}

void sched_ops_thread_dispose(void)
{
    sched_model_dispose(&thread_model);
    thread_model_version[0] = '\0';
}

static void on_load(sched_op_t *op, PGresult *res)
{
    for (int i = 0; i != PQntuples(res); ++i) {
        const char *kind = PQgetvalue(res, i, 0), *key = PQgetvalue(res, i, 1);
        if (strcmp(kind, "busy") == 0) {
            sched_load_add_busy(&op->load, key, strtoll(PQgetvalue(res, i, 2), NULL, 10), strtoll(PQgetvalue(res, i, 3), NULL, 10),
                                PQgetvalue(res, i, 4));
        } else if (strcmp(kind, "slot") == 0) {
            time_t e;
            char *status = PQgetvalue(res, i, 4), *schedule = strchr(status, ' ');
            if (schedule != NULL && util_time_parse_instant(PQgetvalue(res, i, 3), &e) == 0) {
                *schedule++ = '\0';
                sched_load_add_slot(&op->load, key, schedule, status, strtoll(PQgetvalue(res, i, 2), NULL, 10), e);
            }
        } else if (strcmp(kind, "slotted") == 0) {
            json_object_set_new(op->load.slot_schedules, key + strlen("schedule="), json_true());
        } else if (strcmp(kind, "patient") == 0) {
            /* the patient's own blocking appointments (an expired hold does not count) */
            json_t *appt = json_loads(PQgetvalue(res, i, 4), 0, NULL);
            time_t s, e, exp;
            const char *expires = json_string_value(json_object_get(sched_ext(appt, "hold-expires"), "valueInstant"));
            bool expired = expires != NULL && util_time_parse_instant(expires, &exp) == 0 && exp <= op->now;
            if (appt != NULL && !expired && util_time_parse_instant(json_string_value(json_object_get(appt, "start")), &s) == 0 &&
                util_time_parse_instant(json_string_value(json_object_get(appt, "end")), &e) == 0)
                sched_load_add_busy(&op->load, key, s, e, json_string_value(json_object_get(appt, "id")));
            json_decref(appt);
        }
    }
    op->after_load(op);
}

static void load_dynamic(sched_op_t *op, json_t *actors, json_t *schedules, int64_t from, int64_t to, void (*after)(sched_op_t *))
{
    char lo[40], hi[40];
    sched_format_instant(from, lo, sizeof(lo));
    sched_format_instant(to, hi, sizeof(hi));
    char *a = store_array_of_strings(actors), *s = store_array_of_strings(schedules), *p = store_array_of_strings(op->find_patients);
    const char *params[] = {a, s, lo, hi, p};
    op->after_load = after;
    op_send(op, &sched_ops_statements[STMT_LOAD], 5, params, on_load);
    free(a);
    free(s);
    free(p);
}

/* ---- answers ---- */

/*
 * Answers are searchset Bundles written as text around resources that are JSON text already (the stored bytes, or
 * proposals dumped once for both storing and answering). Entries come after `"entry":[`.
 */
static void bundle_open(util_buf_t *b, size_t total)
{
    util_buf_init(b);
    fhir_json_bundle_open(b, "searchset", IHE_BUNDLE_PROFILE);
    util_buf_printf(b, ",\"total\":%zu,\"entry\":[", total);
}

static bool bundle_empty(const util_buf_t *b)
{
    return b->base[b->len - 1] == '[';
}

static void bundle_add(util_buf_t *b, json_t *resource, const char *mode)
{
    char *text = json_dumps(resource, FHIR_JSON_DUMP_FLAGS);
    fhir_json_bundle_entry(b, bundle_empty(b), json_string_value(json_object_get(resource, "resourceType")),
                           json_string_value(json_object_get(resource, "id")), text, strlen(text), mode);
    free(text);
}

/* Closes the Bundle, with the operation's notes as an outcome entry, and answers with it. */
static void respond(sched_op_t *op, util_buf_t *bundle)
{
    if (op->notes.count != 0) {
        json_t *oo = fhir_outcome_to_json(&op->notes);
        bundle_add(bundle, oo, "outcome");
        json_decref(oo);
    }
    util_buf_puts(bundle, "]}");
    free(op->body);
    op->body = bundle->base;
    op->body_len = bundle->len;
    op->status = 200;
    op_done(op);
}

/* ---- $find ---- */

static void add_participant(json_t *list, const char *reference, const char *display, const char *status)
{
    json_t *actor = json_pack("{s:s}", "reference", reference);
    if (display != NULL)
        json_object_set_new(actor, "display", json_string(display));
    json_array_append_new(list, json_pack("{s:o, s:s, s:s}", "actor", actor, "required", "required", "status", status));
}

static json_t *proposal_json(sched_op_t *op, const sched_candidate_t *c, const char *id)
{
    const sched_combo_t *combo = &op->plan.combos[c->combo];
    json_t *service = combo->service;
    char start[40], end[40], from[40], to[40], key[200];
    sched_format_instant(c->start, start, sizeof(start));
    sched_format_instant(c->end, end, sizeof(end));
    sched_format_instant(op->q.from, from, sizeof(from));
    sched_format_instant(op->q.to, to, sizeof(to));
    json_t *a = json_pack("{s:s, s:s, s:{s:[s]}, s:s}", "resourceType", "Appointment", "id", id, "meta", "profile", IHE_APPT_PROFILE,
                          "status", "proposed");
    sched_avail_query_t sq;
    sched_service_query(service, op->now, &sq);
    sched_ext_set_duration(a, "buffer-before", sq.buffer_before);
    sched_ext_set_duration(a, "buffer-after", sq.buffer_after);
    static const char *const copied[] = {"serviceCategory", "serviceType", "specialty"};
    for (size_t i = 0; i != 3; ++i) {
        json_t *v = json_object_get(service, i == 0 ? "category" : i == 1 ? "type" : "specialty");
        if (i == 2 && json_array_size(v) == 0)
            v = json_object_get(combo->role, "specialty");
        if (json_array_size(v) != 0)
            json_object_set_new(a, copied[i], json_deep_copy(v));
    }
    if (json_array_size(op->reasons) != 0)
        json_object_set_new(a, "reasonCode", json_deep_copy(op->reasons));
    if (json_array_size(op->insurance) != 0)
        json_object_set_new(a, "supportingInformation", json_deep_copy(op->insurance));
    if (op->referral != NULL)
        json_object_set_new(a, "basedOn", json_pack("[{s:s, s:O}]", "type", "ServiceRequest", "identifier", op->referral));
    json_object_set_new(a, "start", json_string(start));
    json_object_set_new(a, "end", json_string(end));
    json_object_set_new(a, "minutesDuration", json_integer((c->end - c->start) / 60));
    if (c->slot != NULL) {
        snprintf(key, sizeof(key), "Slot/%s", c->slot->id);
        json_object_set_new(a, "slot", json_pack("[{s:s}]", "reference", key));
    }
    json_t *parts = json_array();
    add_participant(parts, combo->practitioner, NULL, "needs-action");
    snprintf(key, sizeof(key), "PractitionerRole/%s", json_string_value(json_object_get(combo->role, "id")));
    add_participant(parts, key, NULL, "needs-action");
    snprintf(key, sizeof(key), "Location/%s", json_string_value(json_object_get(combo->clinic, "id")));
    add_participant(parts, key, json_string_value(json_object_get(combo->clinic, "name")), "needs-action");
    size_t i;
    json_t *m;
    json_array_foreach(c->members, i, m) {
        const char *rt = json_string_value(json_object_get(m, "resourceType"));
        snprintf(key, sizeof(key), "%s/%s", rt, json_string_value(json_object_get(m, "id")));
        const char *display = json_string_value(json_object_get(m, strcmp(rt, "Location") == 0 ? "name" : "deviceName"));
        add_participant(parts, key, json_is_string(json_object_get(m, "name")) ? display : NULL, "needs-action");
    }
    snprintf(key, sizeof(key), "HealthcareService/%s", json_string_value(json_object_get(service, "id")));
    add_participant(parts, key, json_string_value(json_object_get(service, "name")), "needs-action");
    json_t *pk;
    json_array_foreach(op->find_patients, i, pk) {
        add_participant(parts, json_string_value(pk), NULL, "needs-action");
    }
    json_object_set_new(a, "participant", parts);
    json_object_set_new(a, "requestedPeriod", json_pack("[{s:s, s:s}]", "start", from, "end", to));
    return a;
}

static void find_no_result(sched_op_t *op, const char *why)
{
    util_buf_t bundle;
    bundle_open(&bundle, 0);
    fhir_outcome_add(&op->notes, FHIR_SEV_INFORMATION, "not-found", NULL, "no appointment is available: %s",
                     why != NULL && why[0] != '\0' ? why : "nothing matches the request");
    respond(op, &bundle);
}

static void on_proposals_saved(sched_op_t *op, PGresult *res)
{
    util_buf_t bundle;
    bundle_open(&bundle, op->proposals_total);
    char id[sizeof(op->proposal_set) + 24];
    for (size_t i = 0; i != op->nproposals; ++i) {
        snprintf(id, sizeof(id), "%s-%zu", op->proposal_set, i);
        fhir_json_bundle_entry(&bundle, i == 0, "Appointment", id, op->proposal_texts[i], strlen(op->proposal_texts[i]), "match");
    }
    respond(op, &bundle);
}

static void find_after_load(sched_op_t *op)
{
    sched_candidate_t *c = NULL;
    size_t n = 0, total = 0;
    util_buf_t why;
    util_buf_init(&why);
    sched_find_run(&op->plan, &op->model, &op->load, &op->q, &c, &n, &total, &why);
    if (n == 0) {
        sched_candidates_free(c, 0);
        find_no_result(op, why.base);
        util_buf_dispose(&why);
        return;
    }
    util_buf_dispose(&why);
    char *set_id = op->proposal_set, uuid[UTIL_UUID_LEN + 1], id[80];
    util_uuid_v4(uuid);
    size_t j = 0;
    for (size_t i = 0; uuid[i] != '\0'; ++i)
        if (uuid[i] != '-')
            set_id[j++] = uuid[i];
    set_id[j] = '\0';
    memmove(set_id + 5, set_id, j + 1);
    memcpy(set_id, "prop-", 5);
    /* stored as one JSON array of the texts the answer repeats */
    op->proposal_texts = util_xcalloc(n, sizeof(*op->proposal_texts));
    op->proposals_total = total;
    util_buf_t bodies;
    util_buf_init(&bodies);
    util_buf_puts(&bodies, "[");
    for (size_t i = 0; i != n; ++i) {
        snprintf(id, sizeof(id), "%s-%zu", set_id, i);
        json_t *proposal = proposal_json(op, &c[i], id);
        op->proposal_texts[i] = json_dumps(proposal, FHIR_JSON_DUMP_FLAGS);
        op->nproposals = i + 1;
        json_decref(proposal);
        util_buf_puts(&bodies, i == 0 ? "" : ",");
        util_buf_puts(&bodies, op->proposal_texts[i]);
    }
    util_buf_puts(&bodies, "]");
    sched_candidates_free(c, n);
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)sched_settings.proposal_ttl);
    const char *params[] = {set_id, bodies.base, ttl};
    assert(!op->in_session && op->borrowed == NULL); /* its asynchronous commit must not cover anything else */
    op_send(op, &sched_ops_statements[STMT_SAVE_PROPOSALS], 3, params, on_proposals_saved);
    util_buf_dispose(&bodies);
}

static void find_after_model(sched_op_t *op)
{
    sched_plan_build(&op->plan, &op->model, &op->q);
    if (op->plan.ncombos == 0) {
        find_no_result(op, op->plan.why.base);
        return;
    }
    json_t *actors = json_deep_copy(op->plan.actors);
    load_dynamic(op, actors, op->plan.schedules, op->q.from - DAY, op->q.to + DAY, find_after_load);
    json_decref(actors);
}

/* ---- $hold and $book: the target Appointment ---- */

static void on_target(sched_op_t *op, PGresult *res);
static void check_after_model(sched_op_t *op);
static void hold_after_model(sched_op_t *op);
static void book_after_model(sched_op_t *op);

/* The model, the Appointment `id` names and the patients named by id, together (STMT_TARGET). */
static void load_target(sched_op_t *op, const char *id)
{
    free(op->target_id);
    op->target_id = util_xstrdup(id);
    json_t *ids = json_array();
    size_t i;
    json_t *patient;
    json_array_foreach(op->patient_resources, i, patient) {
        json_t *pid = json_object_get(patient, "id");
        if (json_is_string(pid))
            json_array_append(ids, pid);
    }
    char *patients = store_array_of_strings(ids);
    json_decref(ids);
    const char *params[] = {thread_model_version, id, patients};
    op_send(op, &sched_ops_statements[STMT_TARGET], 3, params, on_target);
    free(patients);
}

static const char *target_status(const sched_op_t *op)
{
    const char *s = json_string_value(json_object_get(op->target, "status"));
    return s != NULL ? s : "";
}

static bool hold_expired(const json_t *appt, int64_t now)
{
    const char *x = json_string_value(json_object_get(sched_ext(appt, "hold-expires"), "valueInstant"));
    time_t t;
    return x != NULL && util_time_parse_instant(x, &t) == 0 && t <= now;
}

static void collect_patients(json_t *appt, json_t *out)
{
    size_t i;
    json_t *p;
    char key[160];
    json_array_foreach(json_object_get(appt, "participant"), i, p) {
        const char *k = sched_reference_key(json_object_get(p, "actor"), key, sizeof(key));
        if (k != NULL && strncmp(k, "Patient/", 8) == 0)
            json_array_append_new(out, json_string(k));
    }
}

static void on_target(sched_op_t *op, PGresult *res)
{
    take_model(op, res);
    json_t *stored = NULL, *proposal = NULL;
    int version = 0;
    for (int i = 0; i != PQntuples(res); ++i) {
        const char *kind = PQgetvalue(res, i, 0);
        if (strcmp(kind, "patient") == 0) {
            json_array_append_new(op->live_patients, json_string(PQgetvalue(res, i, 1)));
            continue;
        }
        bool is_stored = strcmp(kind, "resource") == 0;
        if (!is_stored && strcmp(kind, "proposal") != 0)
            continue;
        json_t *body = json_loads(PQgetvalue(res, i, 2), 0, NULL);
        if (is_stored && stored == NULL) {
            stored = body;
            version = atoi(PQgetvalue(res, i, 1));
        } else if (!is_stored && proposal == NULL) {
            proposal = body;
        } else {
            json_decref(body);
        }
    }
    json_decref(op->target);
    op->target = NULL;
    op->target_version = 0;
    bool by_reference = op->appt_ref != NULL;
    if (stored != NULL) {
        op->target = stored;
        op->target_version = version;
        op->target_slotless = json_array_size(json_object_get(stored, "slot")) == 0;
        json_decref(proposal);
        const char *status = target_status(op);
        if (by_reference) {
            if (strcmp(status, "pending") == 0 && op->kind == SCHED_OP_HOLD && !hold_expired(stored, op->now)) {
                op_fail(op, 409, "conflict", "Appointment/%s is already held", op->target_id);
                return;
            }
            if (strcmp(status, "pending") != 0 && strcmp(status, "proposed") != 0) {
                op_fail(op, 409, "conflict", "Appointment/%s is %s; only a proposed or held appointment can be %s", op->target_id, status,
                        op->kind == SCHED_OP_HOLD ? "held" : "booked");
                return;
            }
            collect_patients(stored, op->hold_patients);
            op->mode = BOOK_NEW;
        } else {
            /* appointment-resource naming a stored Appointment: cancel, modify, or book a held one */
            const char *wanted = json_string_value(json_object_get(op->appt_resource, "status"));
            wanted = wanted != NULL ? wanted : "";
            if (strcmp(wanted, "cancelled") == 0) {
                op->mode = BOOK_CANCEL;
            } else if (strcmp(wanted, "booked") == 0 && strcmp(status, "pending") != 0) {
                op->mode = BOOK_MODIFY;
                json_decref(op->target);
                op->target = json_deep_copy(op->appt_resource);
            } else if (strcmp(wanted, "booked") == 0 || strcmp(wanted, "pending") == 0) {
                op->mode = BOOK_NEW;
                collect_patients(stored, op->hold_patients);
                json_decref(op->target);
                op->target = json_deep_copy(op->appt_resource);
            } else {
                op_fail(op, 422, "business-rule", "appointment-resource must have status pending or booked (book or change) or cancelled (cancel)");
                return;
            }
        }
    } else if (proposal != NULL && by_reference) {
        op->target = proposal;
        op->mode = BOOK_NEW;
    } else if (!by_reference) {
        json_decref(proposal);
        const char *wanted = json_string_value(json_object_get(op->appt_resource, "status"));
        if (wanted != NULL && strcmp(wanted, "cancelled") == 0) {
            op_fail(op, 404, "not-found", "there is no Appointment/%s to cancel", op->target_id);
            return;
        }
        op->target = json_deep_copy(op->appt_resource);
        op->mode = BOOK_NEW;
    } else {
        json_decref(proposal);
        fhir_outcome_fail(&op->oo, 400, "not-found", "appointment-reference",
                          "appointment-reference: Appointment/%s is not a proposal of this server, or it has expired; run $find again",
                          op->target_id);
        op->status = 400;
        op_done(op);
        return;
    }
    if (op->kind == SCHED_OP_HOLD)
        hold_after_model(op);
    else
        book_after_model(op);
}

/* Loads what the rule check of op->target needs, then continues with `after`. */
static void load_for_target(sched_op_t *op, void (*after)(sched_op_t *))
{
    json_t *actors = json_array(), *schedules = json_array();
    sched_appointment_load_keys(&op->model, op->target, actors, schedules);
    time_t s = 0, e = 0;
    util_time_parse_instant(json_string_value(json_object_get(op->target, "start")), &s);
    util_time_parse_instant(json_string_value(json_object_get(op->target, "end")), &e);
    op->load.ignore_appointment = op->target_id;
    load_dynamic(op, actors, schedules, (int64_t)s - 2 * DAY, (int64_t)e + 2 * DAY, after);
    json_decref(actors);
    json_decref(schedules);
}

static int check_rules(sched_op_t *op)
{
    util_buf_t why;
    util_buf_init(&why);
    int ret = sched_check_rules(&op->model, &op->load, op->target, op->now, &why);
    if (ret != 0) {
        if (op->override_rules) {
            fhir_outcome_add(&op->notes, FHIR_SEV_WARNING, "business-rule", NULL, "booked despite a rule (override-rules): %s", why.base);
            sched_ext_set(op->target, "rules-overridden", "valueBoolean", json_true());
            ret = 0;
        } else {
            fhir_outcome_fail(&op->oo, 422, "business-rule", NULL, "%s", why.base);
            op->status = 422;
        }
    }
    util_buf_dispose(&why);
    return ret;
}

/* The fhir engine's refusal becomes ours; a duplicate id means another request held or booked the proposal first. */
static void take_ix_failure(sched_op_t *op)
{
    fhir_ix_t *ix = op->ix;
    op->status = ix->res.status != 0 ? ix->res.status : 500;
    bool duplicate = false;
    for (size_t i = 0; i != ix->res.oo.count; ++i)
        duplicate = duplicate || strcmp(ix->res.oo.issues[i].code, "duplicate") == 0;
    if (duplicate)
        fhir_outcome_fail(&op->oo, 409, "conflict", NULL, "that time was just taken: the proposal was held or booked by another request");
    else if (op->status == 412) { /* the version this operation read changed (the client named none) */
        op->status = 409;
        fhir_outcome_fail(&op->oo, 409, "conflict", NULL, "%s/%s was changed by another request meanwhile; nothing was changed, retry",
                          ix->req.type, ix->req.id);
    } else
        for (size_t i = 0; i != ix->res.oo.count; ++i)
            fhir_outcome_add(&op->oo, ix->res.oo.issues[i].severity, ix->res.oo.issues[i].code, ix->res.oo.issues[i].expression, "%s",
                             ix->res.oo.issues[i].diagnostics);
    op->oo.status = op->status;
}

/* A write on the requester's behalf: their access rules and audit trail apply as to any REST write. */
static fhir_ix_t *guarded_ix(sched_op_t *op)
{
    fhir_ix_t *ix = op->ix = fhir_ix_create();
    ix->data = op;
    ix->access = op->access;
    ix->audit = op->audit;
    ix->audit_ctx = op->audit_ctx;
    return ix;
}

static void write_target(sched_op_t *op, fhir_ix_cb done)
{
    fhir_ix_t *ix = guarded_ix(op);
    ix->req.type = "Appointment";
    ix->req.id = util_xstrdup(op->target_id);
    json_object_set_new(op->target, "id", json_string(op->target_id));
    ix->req.resource = json_incref(op->target);
    ix->req.kind = op->target_version != 0 ? FHIR_IX_UPDATE : FHIR_IX_CREATE;
    ix->req.if_match = op->target_version;
    ix->req.replaces_slotless = op->target_version != 0 && op->target_slotless;
    fhir_ix_run(ix, op->pool, op->in_session ? &op->session : NULL, done);
}

static void respond_with_written(sched_op_t *op)
{
    util_buf_t bundle;
    bundle_open(&bundle, 1);
    if (op->ix->res.body != NULL && op->ix->res.body_len != 0 && op->ix->res.body[0] == '{')
        fhir_json_bundle_entry(&bundle, true, "Appointment", op->target_id, op->ix->res.body, op->ix->res.body_len, "match");
    else
        bundle_add(&bundle, op->target, "match");
    respond(op, &bundle);
}

/* ---- $hold ---- */

static void on_hold_written(fhir_ix_t *ix)
{
    sched_op_t *op = ix->data;
    if (ix->res.status >= 400) {
        take_ix_failure(op);
        op->expires = 0;
        op_done(op);
        return;
    }
    respond_with_written(op);
}

static void hold_after_load(sched_op_t *op)
{
    if (check_rules(op) != 0) {
        op_done(op);
        return;
    }
    json_t *service = sched_appointment_service(&op->model, op->target);
    int64_t ttl = sched_ext_seconds(service, "hold-ttl", sched_settings.hold_ttl);
    op->expires = op->now + ttl;
    char expires[40];
    sched_format_instant(op->expires, expires, sizeof(expires));
    json_object_set_new(op->target, "status", json_string("pending"));
    sched_ext_set(op->target, "hold-expires", "valueInstant", json_string(expires));
    write_target(op, on_hold_written);
}

static void hold_after_model(sched_op_t *op)
{
    load_for_target(op, hold_after_load);
}

/* ---- $book ---- */

static void book_write(sched_op_t *op);
static void next_patient(sched_op_t *op);

static void on_book_written(fhir_ix_t *ix)
{
    sched_op_t *op = ix->data;
    if (ix->res.status >= 400) {
        take_ix_failure(op);
        op_done(op);
        return;
    }
    respond_with_written(op);
}

static void patient_found(sched_op_t *op, const char *id)
{
    char key[160];
    snprintf(key, sizeof(key), "Patient/%s", id);
    json_array_append_new(op->patient_keys, json_string(key));
    next_patient(op);
}

static void on_patient_created(fhir_ix_t *ix)
{
    sched_op_t *op = ix->data;
    op->ix = NULL;
    if (ix->res.status >= 400) {
        op->ix = ix;
        take_ix_failure(op);
        op_done(op);
        return;
    }
    char *id = util_xstrdup(ix->res.id != NULL ? ix->res.id : ix->req.id);
    fhir_ix_destroy(ix);
    patient_found(op, id);
    free(id);
}

static void create_patient(sched_op_t *op, json_t *patient)
{
    fhir_ix_t *ix = guarded_ix(op);
    ix->req.type = "Patient";
    const char *id = json_string_value(json_object_get(patient, "id"));
    ix->req.kind = id != NULL ? FHIR_IX_UPDATE : FHIR_IX_CREATE;
    ix->req.id = id != NULL ? util_xstrdup(id) : NULL;
    ix->req.resource = json_incref(patient);
    fhir_ix_run(ix, op->pool, &op->session, on_patient_created);
}

static void on_patient_lookup(sched_op_t *op, PGresult *res)
{
    json_t *patient = json_array_get(op->patient_resources, op->patient_next - 1);
    if (PQntuples(res) == 1) {
        patient_found(op, PQgetvalue(res, 0, 0));
        return;
    }
    if (PQntuples(res) > 1) {
        op_fail(op, 409, "multiple-matches", "patient-resource %zu: its identifier matches more than one Patient", op->patient_next);
        return;
    }
    create_patient(op, patient);
}

static void next_patient(sched_op_t *op)
{
    json_t *patient = json_array_get(op->patient_resources, op->patient_next++);
    if (patient == NULL) {
        book_write(op);
        return;
    }
    const char *id = json_string_value(json_object_get(patient, "id"));
    if (id != NULL) {
        const char *params[] = {id};
        op_send(op, &sched_ops_statements[STMT_PATIENT_BY_ID], 1, params, on_patient_lookup);
        return;
    }
    size_t i;
    json_t *ident;
    json_array_foreach(json_object_get(patient, "identifier"), i, ident) {
        const char *sys = json_string_value(json_object_get(ident, "system")), *value = json_string_value(json_object_get(ident, "value"));
        if (sys == NULL || value == NULL)
            continue;
        char *token = util_asprintf("identifier=%s|%s", sys, value);
        const char *params[] = {token};
        op_send(op, &sched_ops_statements[STMT_PATIENT_BY_IDENTIFIER], 1, params, on_patient_lookup);
        free(token);
        return;
    }
    create_patient(op, patient);
}

static bool has_participant(const json_t *appt, const char *key)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(appt, "participant"), i, p) {
        if (sched_refers_to(json_object_get(p, "actor"), key))
            return true;
    }
    return false;
}

static void book_write(sched_op_t *op)
{
    json_t *a = op->target;
    size_t i;
    json_t *k;
    if (op->mode == BOOK_CANCEL) {
        json_object_set_new(a, "status", json_string("cancelled"));
        json_t *reason = json_object_get(op->appt_resource, "cancelationReason");
        if (reason != NULL)
            json_object_set(a, "cancelationReason", reason);
        else if (op->comment != NULL)
            json_object_set_new(a, "cancelationReason", json_pack("{s:s}", "text", op->comment));
        time_t start;
        json_t *service = sched_appointment_service(&op->model, a);
        int64_t cutoff = sched_ext_seconds(service, "cancellation-cutoff", sched_settings.cancellation_cutoff);
        if (util_time_parse_instant(json_string_value(json_object_get(a, "start")), &start) == 0 && (int64_t)start - op->now < cutoff) {
            sched_ext_set(a, "late-cancellation", "valueBoolean", json_true());
            fhir_outcome_add(&op->notes, FHIR_SEV_WARNING, "business-rule", NULL,
                             "late cancellation: less than %lld minutes before the start (allowed, flagged on the Appointment)",
                             (long long)(cutoff / 60));
        }
    } else {
        /* a hold made for other patients is theirs */
        if (json_array_size(op->hold_patients) != 0) {
            json_array_foreach(op->patient_keys, i, k) {
                bool theirs = false;
                size_t j;
                json_t *h;
                json_array_foreach(op->hold_patients, j, h) {
                    theirs = theirs || strcmp(json_string_value(h), json_string_value(k)) == 0;
                }
                if (!theirs) {
                    op_fail(op, 409, "conflict", "Appointment/%s is held for another patient", op->target_id);
                    return;
                }
            }
        }
        json_object_set_new(a, "status", json_string("booked"));
        sched_ext_remove(a, "hold-expires");
        json_array_foreach(op->patient_keys, i, k) {
            if (!has_participant(a, json_string_value(k)))
                add_participant(json_object_get(a, "participant"), json_string_value(k), NULL, "accepted");
        }
        json_t *p;
        json_array_foreach(json_object_get(a, "participant"), i, p) {
            json_object_set_new(p, "status", json_string("accepted"));
        }
        if (op->comment != NULL)
            json_object_set_new(a, "comment", json_string(op->comment));
    }
    write_target(op, on_book_written);
}

static void on_book_begun(sched_op_t *op, PGresult *res)
{
    op->patient_next = 0;
    next_patient(op);
}

static void on_book_session(store_session_t *s, const char *err)
{
    sched_op_t *op = H2O_STRUCT_FROM_MEMBER(sched_op_t, session, s);
    if (err != NULL) {
        op->in_session = false;
        op_fail(op, 503, "transient", "the database is not available; retry later");
        return;
    }
    op_send(op, &store_begin, 0, NULL, on_book_begun);
}

/* Whether every patient-resource names by id a Patient STMT_TARGET found: then none is looked up or created. */
static bool patients_all_live(const sched_op_t *op)
{
    size_t i, j;
    json_t *patient, *live;
    json_array_foreach(op->patient_resources, i, patient) {
        const char *id = json_string_value(json_object_get(patient, "id"));
        bool found = false;
        json_array_foreach(op->live_patients, j, live) {
            found = found || (id != NULL && strcmp(id, json_string_value(live)) == 0);
        }
        if (!found)
            return false;
    }
    return true;
}

static void book_after_load(sched_op_t *op)
{
    if (op->mode != BOOK_CANCEL && check_rules(op) != 0) {
        op_done(op);
        return;
    }
    if (json_object_get(op->target, "participant") == NULL)
        json_object_set_new(op->target, "participant", json_array());
    /* Every patient already stored: the Appointment's write is all there is to do, a transaction of its own. */
    if (patients_all_live(op)) {
        size_t i;
        json_t *patient;
        json_array_foreach(op->patient_resources, i, patient) {
            char key[160];
            snprintf(key, sizeof(key), "Patient/%s", json_string_value(json_object_get(patient, "id")));
            json_array_append_new(op->patient_keys, json_string(key));
        }
        book_write(op);
        return;
    }
    op->in_session = true;
    op->session.cb = on_book_session;
    if (store_session_begin(op->pool, &op->session) != 0) {
        op->in_session = false;
        op_fail(op, 503, "transient", "the server is overloaded; retry later");
    }
}

static void book_after_model(sched_op_t *op)
{
    load_for_target(op, book_after_load);
}

/* ---- entry ---- */

/* ---- soft rules as warnings ---- */

static void check_after_load(sched_op_t *op)
{
    util_buf_t why;
    util_buf_init(&why);
    if (sched_check_rules(&op->model, &op->load, op->target, op->now, &why) != 0)
        op->rule_warning = util_xstrdup(why.base != NULL ? why.base : "a scheduling rule is broken");
    util_buf_dispose(&why);
    op->status = 200;
    op_done(op);
}

static void check_after_model(sched_op_t *op)
{
    load_for_target(op, check_after_load);
}

sched_op_t *sched_rules_check(store_pool_t *pool, store_session_t *session, const json_t *appointment, const char *ignore_id,
                              sched_op_cb cb, void *data)
{
    sched_op_t *op = sched_op_create(SCHED_OP_CHECK);
    op->borrowed = session;
    op->target = json_deep_copy(appointment);
    op->target_id = util_xstrdup(ignore_id != NULL ? ignore_id : "");
    sched_op_run(op, pool, cb, data);
    return op;
}

const char *sched_op_rule_warning(const sched_op_t *op)
{
    return op->rule_warning;
}

void sched_op_run(sched_op_t *op, store_pool_t *pool, sched_op_cb cb, void *data)
{
    op->pool = pool;
    op->cb = cb;
    op->data = data;
    op->now = op->q.now = (int64_t)time(NULL);
    switch (op->kind) {
    case SCHED_OP_FIND:
        if (op->q.to <= op->now) {
            find_no_result(op, "the requested period is in the past");
            return;
        }
        load_model(op, find_after_model);
        return;
    case SCHED_OP_HOLD:
        load_target(op, op->appt_ref);
        return;
    case SCHED_OP_CHECK:
        load_model(op, check_after_model);
        return;
    case SCHED_OP_BOOK:
        if (op->appt_ref != NULL) {
            load_target(op, op->appt_ref);
        } else {
            const char *id = json_string_value(json_object_get(op->appt_resource, "id"));
            char uuid[UTIL_UUID_LEN + 1];
            if (id == NULL) {
                util_uuid_v4(uuid);
                id = uuid;
            }
            load_target(op, id);
        }
        return;
    }
}

/* ---- the sweeper: expired holds become cancelled Appointments, expired proposals go ---- */

static const char SQL_SWEEP[] =
    "WITH gone AS (DELETE FROM sched_proposal WHERE expires_at < now()) "
    "SELECT id, version_id, body FROM resource WHERE res_type = 'Appointment' AND NOT deleted AND sp_tokens @> '{status=pending}' "
    "AND (sched_ext(body::jsonb, 'hold-expires') ->> 'valueInstant')::timestamptz <= now() ORDER BY id LIMIT 50";

static struct {
    h2o_loop_t *loop;
    store_pool_t *pool;
    h2o_timeout_t timeout;
    h2o_timeout_entry_t entry;
    store_query_t query;
    json_t *expired; /* [id, version, body] rows still to cancel */
    size_t next;
    bool running;  /* a sweep is under way */
    bool stopping;
} sweeper;

static void sweep_next(void);

static void sweep_schedule(void)
{
    sweeper.running = false;
    if (!sweeper.stopping && sweeper.loop != NULL)
        h2o_timeout_link(sweeper.loop, &sweeper.timeout, &sweeper.entry);
}

static void on_swept_one(fhir_ix_t *ix)
{
    /* A 412 means someone booked or changed the hold meanwhile: theirs wins. */
    if (ix->res.status >= 400 && ix->res.status != 412)
        LOG_WARN("cancelling expired hold Appointment/%s failed with %d", ix->req.id, ix->res.status);
    fhir_ix_destroy(ix);
    sweep_next();
}

static void sweep_next(void)
{
    json_t *row = json_array_get(sweeper.expired, sweeper.next++);
    if (row == NULL || sweeper.stopping) {
        json_decref(sweeper.expired);
        sweeper.expired = NULL;
        sweep_schedule();
        return;
    }
    json_t *appt = json_loads(json_string_value(json_array_get(row, 2)), 0, NULL);
    if (appt == NULL) {
        sweep_next();
        return;
    }
    json_object_set_new(appt, "status", json_string("cancelled"));
    json_object_set_new(appt, "cancelationReason", json_pack("{s:s}", "text", "hold expired"));
    fhir_ix_t *ix = fhir_ix_create();
    ix->req.kind = FHIR_IX_UPDATE;
    ix->req.type = "Appointment";
    ix->req.id = util_xstrdup(json_string_value(json_array_get(row, 0)));
    ix->req.if_match = atoi(json_string_value(json_array_get(row, 1)));
    ix->req.resource = appt;
    fhir_ix_run(ix, sweeper.pool, NULL, on_swept_one);
}

static void on_sweep(store_query_t *q, PGresult *res, const char *err)
{
    if (err != NULL || sweeper.stopping) {
        if (err == store_err_query)
            LOG_ERROR("hold sweep failed (%s): %s", store_sqlstate(res), res != NULL ? PQresultErrorMessage(res) : "");
        sweep_schedule();
        return;
    }
    sweeper.expired = json_array();
    sweeper.next = 0;
    for (int i = 0; i != PQntuples(res); ++i)
        json_array_append_new(sweeper.expired, json_pack("[sss]", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2)));
    sweep_next();
}

static void on_sweep_timer(h2o_timeout_entry_t *entry)
{
    if (sweeper.stopping)
        return;
    sweeper.running = true;
    sweeper.query = (store_query_t){.sql = SQL_SWEEP, .cb = on_sweep};
    if (store_pool_submit(sweeper.pool, &sweeper.query) != 0)
        sweep_schedule();
}

void sched_sweeper_start(h2o_loop_t *loop, store_pool_t *pool)
{
    memset(&sweeper, 0, sizeof(sweeper));
    sweeper.loop = loop;
    sweeper.pool = pool;
    h2o_timeout_init(loop, &sweeper.timeout, sched_settings.sweep_interval_ms);
    sweeper.entry.cb = on_sweep_timer;
    h2o_timeout_link(loop, &sweeper.timeout, &sweeper.entry);
}

void sched_sweeper_stop(void)
{
    if (sweeper.loop == NULL)
        return;
    sweeper.stopping = true;
    if (h2o_timeout_is_linked(&sweeper.entry))
        h2o_timeout_unlink(&sweeper.entry);
    /* the loop cannot be destroyed while a timeout is registered with it */
    h2o_timeout_dispose(sweeper.loop, &sweeper.timeout);
    sweeper.loop = NULL;
}

/*
 * One inbound message, from bytes to ACK: parse, map, then one transaction that (under an advisory lock on the
 * sender's control id) answers a repeat from hl7_inbound, or finds or creates the Patient, Practitioners and Locations,
 * writes the Appointment through the FHIR interaction engine (so validation, versioning, indexes, Slot follow-ups and the
 * sched_busy exclusion constraint apply as for any FHIR write), records the message and commits. The ACK is handed back
 * only after that. A message that cannot be applied is recorded for review in its own short transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "auth/audit.h"
#include "fhir/interaction.h"
#include "hl7v2/inbound.h"
#include "sched/ops.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"
#include "util/uuid.h"

#define MODULE_NAME "hl7v2/inbound.c"
/* A write that lost a race (If-Match, serialisation, deadlock) is retried this many times from the start. */
#define MAX_ATTEMPTS 3

/* Prepared on every connection (the pool's catalogue, http/server.c); BEGIN is store_begin. */
enum { STMT_LOCK, STMT_LOCK_KEYS, STMT_SEEN, STMT_RECORD };
const store_stmt_t hl7_inbound_statements[] = {
    [STMT_LOCK] = {"hl7_lock", "SELECT pg_advisory_xact_lock(hashtextextended($1, 7)), set_config('fhirsched.hl7_origin', $2, true)"},
    /* Every identifier the message finds resources by, locked in one order: two messages naming the same new
     * Practitioner, Patient or Appointment (on any instance) must not both create it. */
    [STMT_LOCK_KEYS] = {"hl7_lock_keys", "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT hashtextextended(x, 11) AS k "
                                         "FROM unnest($1::text[]) x ORDER BY 1) keys"},
    [STMT_SEEN] = {"hl7_seen", "SELECT ack, ack_code FROM hl7_inbound WHERE sending_application = $1 AND sending_facility = $2 "
                               "AND control_id = $3 AND status <> 'rejected'"},
    [STMT_RECORD] = {"hl7_record",
                     "INSERT INTO hl7_inbound (sending_application, sending_facility, control_id, message_type, status, ack_code, ack, "
                     "error, warnings, resources, message, peer) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text[], $10::text[], $11, $12)"},
};
const size_t hl7_inbound_statement_count = sizeof(hl7_inbound_statements) / sizeof(hl7_inbound_statements[0]);

hl7_inbound_settings_t hl7_inbound_settings;

typedef enum { PARTY_FIND_OR_CREATE, PARTY_UPSERT, PARTY_MUST_EXIST } party_mode_t;

typedef struct st_hl7_job_t {
    store_pool_t *pool;
    char *raw;
    size_t len;
    bool too_large;
    char *peer;
    hl7_inbound_cb cb;
    void *data;
    hl7_msg_t *msg;
    hl7_plan_t plan;
    bool planned;
    hl7_ack_code_t code;
    hl7_issue_t issue;
    json_t *warnings;  /* strings */
    json_t *resources; /* "Type/id/_history/v" */
    char *ack;
    int attempts;
    bool transient;
    /* the transaction */
    store_session_t session;
    bool in_session;
    store_query_t query;
    char *params[12];
    int nparams;
    void (*next)(struct st_hl7_job_t *job, PGresult *res);
    fhir_ix_t *ix;
    /* resolving one party */
    hl7_party_t *party;
    party_mode_t mode;
    char **ref_out;
    void (*after_party)(struct st_hl7_job_t *job);
    json_t *found; /* the stored resource that matched, or NULL */
    /* results */
    char *patient_ref, *merged_ref;
    char **party_refs;
    size_t party_next;
    json_t *appointment; /* the Appointment to write */
    char *appointment_id;
    int appointment_version;
} hl7_job_t;

static void finish(hl7_job_t *job);
static void begin_tx(hl7_job_t *job);
static void fail(hl7_job_t *job, hl7_ack_code_t code);

/* ---- life cycle ---- */

static void reset_attempt(hl7_job_t *job)
{
    free(job->patient_ref);
    free(job->merged_ref);
    job->patient_ref = job->merged_ref = NULL;
    for (size_t i = 0; job->party_refs != NULL && i != job->plan.nparties; ++i) {
        free(job->party_refs[i]);
        job->party_refs[i] = NULL;
    }
    json_decref(job->appointment);
    json_decref(job->found);
    job->appointment = job->found = NULL;
    free(job->appointment_id);
    job->appointment_id = NULL;
    job->appointment_version = 0;
    json_array_clear(job->resources);
    json_array_clear(job->warnings);
    json_array_extend(job->warnings, job->plan.warnings);
}

static void job_free(hl7_job_t *job)
{
    reset_attempt(job);
    free(job->party_refs);
    for (int i = 0; i != job->nparams; ++i)
        free(job->params[i]);
    if (job->ix != NULL)
        fhir_ix_destroy(job->ix);
    if (job->planned)
        hl7_plan_dispose(&job->plan);
    hl7_free(job->msg);
    json_decref(job->warnings);
    json_decref(job->resources);
    free(job->ack);
    free(job->raw);
    free(job->peer);
    free(job);
}

static void finish(hl7_job_t *job)
{
    if (job->in_session) {
        store_session_end(&job->session);
        job->in_session = false;
    }
    job->cb(job->data, job->code, job->ack);
    job_free(job);
}

static const char *field_or_empty(const char *v)
{
    return v != NULL ? v : "";
}

static void build_ack(hl7_job_t *job)
{
    hl7_issue_t issues[16];
    size_t n = 0;
    if (job->code != HL7_ACK_AA)
        issues[n++] = job->issue;
    size_t i;
    json_t *w;
    json_array_foreach(job->code == HL7_ACK_AA ? job->warnings : NULL, i, w) {
        if (n == sizeof(issues) / sizeof(issues[0]))
            break;
        hl7_issue_set(&issues[n], 207, "", "%s", json_string_value(w));
        issues[n++].warning = true;
    }
    char id[UTIL_UUID_LEN + 1], control[24];
    util_uuid_v4(id);
    snprintf(control, sizeof(control), "FSA%.17s", id);
    for (char *c = control; *c != '\0'; ++c)
        if (*c == '-')
            *c = '0';
    free(job->ack);
    job->ack = hl7_ack_build(job->msg, job->raw, job->len, job->code, issues, n, hl7_inbound_settings.sending_application,
                             hl7_inbound_settings.sending_facility, control);
}

/* ---- statements ---- */

static void after_record(hl7_job_t *job, PGresult *res);
static void on_seen_after_race(hl7_job_t *job, PGresult *res);
static void job_send(hl7_job_t *job, const store_stmt_t *stmt, int nparams, const char *const *params, void (*next)(hl7_job_t *, PGresult *));

/* A failure that says nothing about the message: a lost race is tried again from the start (`retry`), anything else
 * is answered AE "resend" without a record, so that the resend is applied normally. */
static void transient(hl7_job_t *job, bool retry, const char *why)
{
    job->transient = true;
    if (retry && ++job->attempts < MAX_ATTEMPTS) {
        job->issue.code = 0; /* fail() rolls back and begins again */
        fail(job, HL7_ACK_AE);
        return;
    }
    hl7_issue_set(&job->issue, 207, "", "%s", why);
    fail(job, HL7_ACK_AE);
}

static void on_job_query(store_query_t *q, PGresult *res, const char *err)
{
    hl7_job_t *job = H2O_STRUCT_FROM_MEMBER(hl7_job_t, query, q);
    if (err == NULL) {
        job->next(job, res);
        return;
    }
    const char *state = store_sqlstate(res);
    if (job->next == after_record) {
        if (err == store_err_query && strcmp(state, "23505") == 0) {
            /* a copy of this message was answered meanwhile: answer as that one was answered */
            const char *params[] = {field_or_empty(hl7_sending_application(job->msg)), field_or_empty(hl7_sending_facility(job->msg)),
                                    field_or_empty(hl7_control_id(job->msg))};
            job_send(job, &hl7_inbound_statements[STMT_SEEN], 3, params, on_seen_after_race);
            return;
        }
        /* nothing was applied; the answer still goes out, only the record is missing */
        LOG_ERROR("the HL7 inbound record could not be written (%s)", err == store_err_query ? state : err);
        finish(job);
        return;
    }
    bool race = err == store_err_query && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
    if (err == store_err_query && !race)
        LOG_ERROR("HL7 statement failed (%s): %s", state, res != NULL ? PQresultErrorMessage(res) : "");
    transient(job, race, err == store_err_query && !race ? "internal error; resend later" : "temporarily unavailable; resend");
}

static void job_send(hl7_job_t *job, const store_stmt_t *stmt, int nparams, const char *const *params, void (*next)(hl7_job_t *, PGresult *))
{
    for (int i = 0; i != job->nparams; ++i)
        free(job->params[i]);
    job->nparams = nparams;
    for (int i = 0; i != nparams; ++i)
        job->params[i] = params[i] != NULL ? util_xstrdup(params[i]) : NULL;
    job->query = (store_query_t){.stmt_name = stmt->name, .sql = stmt->sql, .nparams = nparams, .params = (const char *const *)job->params, .cb = on_job_query};
    job->next = next;
    int ret = job->in_session ? store_session_query(&job->session, &job->query) : store_pool_submit(job->pool, &job->query);
    if (ret != 0)
        transient(job, false, "temporarily unavailable (the server is overloaded); resend");
}

/* The message as stored: UTF-8 (invalid bytes of an unparseable message become '?'), without NULs. */
static char *stored_text(const char *raw, size_t len)
{
    char *out = util_xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)raw[i];
        size_t l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        bool ok = l != 0 && i + l <= len && !(l == 2 && c < 0xC2);
        for (size_t k = 1; ok && k < l; ++k)
            ok = ((unsigned char)raw[i + k] & 0xC0) == 0x80;
        if (!ok || c == 0) {
            out[n++] = c == 0 ? ' ' : '?';
            ++i;
            continue;
        }
        memcpy(out + n, raw + i, l);
        n += l;
        i += l;
    }
    out[n] = '\0';
    return out;
}

static void record(hl7_job_t *job, const char *status, void (*next)(hl7_job_t *, PGresult *))
{
    char type[32] = "";
    if (job->msg != NULL)
        snprintf(type, sizeof(type), "%s^%s", field_or_empty(hl7_message_code(job->msg)), field_or_empty(hl7_trigger_event(job->msg)));
    char app[128] = "", fac[128] = "", ctrl[128] = "", version[128] = "";
    hl7_delims_t d;
    if (job->msg != NULL) {
        snprintf(app, sizeof(app), "%s", field_or_empty(hl7_sending_application(job->msg)));
        snprintf(fac, sizeof(fac), "%s", field_or_empty(hl7_sending_facility(job->msg)));
        snprintf(ctrl, sizeof(ctrl), "%s", field_or_empty(hl7_control_id(job->msg)));
    } else {
        hl7_peek_header(job->raw, job->len, &d, app, fac, ctrl, version, sizeof(app));
    }
    char *warnings = store_array_of_strings(job->warnings), *resources = store_array_of_strings(job->resources);
    char *message = stored_text(job->raw, job->len > (1u << 20) ? (1u << 20) : job->len);
    char *app_t = stored_text(app, strlen(app)), *fac_t = stored_text(fac, strlen(fac)), *ctrl_t = stored_text(ctrl, strlen(ctrl));
    const char *params[] = {app_t, fac_t, ctrl_t, type, status, hl7_ack_code_name(job->code), job->ack,
                            job->code != HL7_ACK_AA ? job->issue.text : NULL, warnings, resources, message, job->peer};
    job_send(job, &hl7_inbound_statements[STMT_RECORD], 12, params, next);
    free(warnings);
    free(resources);
    free(message);
    free(app_t);
    free(fac_t);
    free(ctrl_t);
}

static void after_record(hl7_job_t *job, PGresult *res)
{
    finish(job);
}

/* ---- failures ---- */

static void on_seen_after_race(hl7_job_t *job, PGresult *res)
{
    if (PQntuples(res) == 1) {
        free(job->ack);
        job->ack = util_xstrdup(PQgetvalue(res, 0, 0));
        const char *code = PQgetvalue(res, 0, 1);
        job->code = strcmp(code, "AA") == 0 ? HL7_ACK_AA : strcmp(code, "AE") == 0 ? HL7_ACK_AE : HL7_ACK_AR;
    }
    finish(job);
}

static void on_rolled_back(store_query_t *q, PGresult *res, const char *err)
{
    hl7_job_t *job = H2O_STRUCT_FROM_MEMBER(hl7_job_t, query, q);
    store_session_end(&job->session);
    job->in_session = false;
    fail(job, job->code);
}

/* Not applied: roll back, then record the message (review or rejected) and answer; a transient failure is answered
 * without a record, or tried again when it was a lost race (issue code 0). */
static void fail(hl7_job_t *job, hl7_ack_code_t code)
{
    job->code = code;
    if (job->in_session) {
        job->query = (store_query_t){.sql = "ROLLBACK", .cb = on_rolled_back};
        if (job->session._conn != NULL && store_session_query(&job->session, &job->query) == 0)
            return;
        store_session_end(&job->session);
        job->in_session = false;
    }
    if (job->transient && job->issue.code == 0) {
        begin_tx(job);
        return;
    }
    json_array_clear(job->resources); /* rolled back: nothing was written */
    build_ack(job);
    if (job->transient) {
        finish(job);
        return;
    }
    record(job, code == HL7_ACK_AE && job->msg != NULL ? "review" : "rejected", after_record);
}

/* A write the engine refused: a conflict or a business rule is the sender's to resolve (AE, kept for review); a lost
 * race is retried; a database outage is answered as transient. */
static void take_ix_failure(hl7_job_t *job, fhir_ix_t *ix)
{
    const char *text = ix->res.oo.count != 0 && ix->res.oo.issues[0].diagnostics != NULL ? ix->res.oo.issues[0].diagnostics : "refused";
    int status = ix->res.status;
    bool race = status == 412 || (status == 409 && strstr(text, "; retry") != NULL);
    if (race || status >= 500) {
        transient(job, race, "temporarily unavailable; resend");
        return;
    }
    const json_t *r = ix->req.resource;
    const char *start = json_string_value(json_object_get(r, "start")), *end = json_string_value(json_object_get(r, "end"));
    if (status == 409 && start != NULL && end != NULL)
        hl7_issue_set(&job->issue, 207, "", "%s conflict: %s (%s to %s)", ix->req.type, text, start, end);
    else
        hl7_issue_set(&job->issue, status == 400 ? 102 : 207, "", "%s refused: %s", ix->req.type, text);
    fail(job, HL7_ACK_AE);
}

/* ---- the transaction ---- */

static void commit_done(store_query_t *q, PGresult *res, const char *err)
{
    hl7_job_t *job = H2O_STRUCT_FROM_MEMBER(hl7_job_t, query, q);
    if (err != NULL) {
        /* nothing is stored: the sender must resend (and will be applied then) */
        store_session_end(&job->session);
        job->in_session = false;
        hl7_issue_set(&job->issue, 207, "", "the transaction could not be committed; resend");
        job->transient = true;
        job->code = HL7_ACK_AE;
        build_ack(job);
        finish(job);
        return;
    }
    finish(job);
}

static void after_applied_record(hl7_job_t *job, PGresult *res)
{
    job->query = (store_query_t){.sql = "COMMIT", .cb = commit_done};
    if (store_session_query(&job->session, &job->query) != 0)
        transient(job, false, "temporarily unavailable; resend");
}

static void applied(hl7_job_t *job)
{
    job->code = HL7_ACK_AA;
    build_ack(job);
    record(job, "applied", after_applied_record);
}

static void note_written(hl7_job_t *job, fhir_ix_t *ix)
{
    char *v = util_asprintf("%s/%s/_history/%d", ix->req.type, ix->res.id, ix->res.version);
    json_array_append_new(job->resources, json_string(v));
    free(v);
}

/* Every write an HL7 message makes is audited like a FHIR one, in its transaction, with the sender as the agent. */
static json_t *audit_write(const fhir_ix_t *ix, void *ctx)
{
    hl7_job_t *job = ctx;
    bool create = ix->req.kind == FHIR_IX_CREATE;
    char request[160], agent[300];
    snprintf(request, sizeof(request), "hl7:%s", field_or_empty(hl7_control_id(job->msg)));
    snprintf(agent, sizeof(agent), "HL7 v2 sender %s|%s", field_or_empty(hl7_sending_application(job->msg)),
             field_or_empty(hl7_sending_facility(job->msg)));
    const char *id = ix->res.id != NULL ? ix->res.id : ix->req.id;
    auth_audit_info_t info = {.subtype = create ? "create" : "update",
                              .action = create ? 'C' : 'U',
                              .type = ix->req.type,
                              .id = id,
                              .version = ix->res.version,
                              .patient = strcmp(ix->req.type, "Patient") == 0                  ? id
                                         : strcmp(ix->req.type, "Appointment") == 0 && job->patient_ref != NULL ? strchr(job->patient_ref, '/') + 1
                                                                                                              : NULL,
                              .status = create ? 201 : 200,
                              .request_id = request,
                              .peer = job->peer,
                              .agent = agent};
    return auth_audit_event(NULL, &info);
}

static fhir_ix_t *new_ix(hl7_job_t *job)
{
    if (job->ix != NULL)
        fhir_ix_destroy(job->ix);
    job->ix = fhir_ix_create();
    job->ix->data = job;
    if (auth_audit_settings.enabled) {
        job->ix->audit = audit_write;
        job->ix->audit_ctx = job;
    }
    return job->ix;
}

/* Writes `resource` (stolen) as a create (id NULL) or an update of version `version`. */
static void write_resource(hl7_job_t *job, const char *type, const char *id, int version, json_t *resource, fhir_ix_cb cb)
{
    fhir_ix_t *ix = new_ix(job);
    ix->req.kind = id != NULL ? FHIR_IX_UPDATE : FHIR_IX_CREATE;
    ix->req.type = type;
    ix->req.id = id != NULL ? util_xstrdup(id) : NULL;
    ix->req.if_match = version;
    json_object_del(resource, "meta");
    if (id != NULL)
        json_object_set_new(resource, "id", json_string(id));
    ix->req.resource = resource;
    fhir_ix_run(ix, job->pool, &job->session, cb);
}

/* -- finding or creating one party -- */

static void party_done(hl7_job_t *job, const char *type, const char *id)
{
    *job->ref_out = util_asprintf("%s/%s", type, id);
    job->after_party(job);
}

static void on_party_written(fhir_ix_t *ix)
{
    hl7_job_t *job = ix->data;
    if (ix->res.status >= 400) {
        take_ix_failure(job, ix);
        return;
    }
    note_written(job, ix);
    party_done(job, ix->req.type, ix->res.id);
}

static int version_of(const json_t *resource)
{
    const char *v = json_string_value(json_object_get(json_object_get(resource, "meta"), "versionId"));
    return v != NULL ? atoi(v) : 0;
}

/* Searches `type` for any of `identifiers` in the message's transaction (a few are enough to tell one from many). */
static void search_by_identifiers(hl7_job_t *job, const char *type, const json_t *identifiers, fhir_ix_cb cb)
{
    fhir_ix_t *ix = new_ix(job);
    ix->req.kind = FHIR_IX_SEARCH;
    ix->req.type = type;
    char *q = hl7_identifier_query(identifiers);
    ix->req.query = util_asprintf("%s&_count=3", q);
    free(q);
    fhir_ix_run(ix, job->pool, &job->session, cb);
}

/* The resources a search Bundle matched (not includes). */
static json_t *search_matches(const char *body)
{
    json_t *bundle = json_loads(body != NULL ? body : "{}", 0, NULL), *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(bundle, "entry"), i, e) {
        const char *mode = json_string_value(json_object_get(json_object_get(e, "search"), "mode"));
        if (mode == NULL || strcmp(mode, "match") == 0)
            json_array_append(out, json_object_get(e, "resource"));
    }
    json_decref(bundle);
    return out;
}

static void on_party_found(fhir_ix_t *ix)
{
    hl7_job_t *job = ix->data;
    if (ix->res.status >= 400) {
        take_ix_failure(job, ix);
        return;
    }
    json_t *matches = search_matches(ix->res.body);
    hl7_party_t *p = job->party;
    size_t n = json_array_size(matches);
    if (n > 1) {
        hl7_issue_set(&job->issue, 205, p == &job->plan.patient || p == &job->plan.merged ? "PID^1^3" : "", "%zu %s resources match the identifiers of the message; merge them first", n, p->type);
        json_decref(matches);
        fail(job, HL7_ACK_AE);
        return;
    }
    if (n == 0) {
        json_decref(matches);
        if (job->mode == PARTY_MUST_EXIST) {
            hl7_issue_set(&job->issue, 204, p == &job->plan.merged ? "MRG^1^1" : "PID^1^3", "no %s has the identifiers of the message", p->type);
            fail(job, HL7_ACK_AE);
            return;
        }
        write_resource(job, p->type, NULL, 0, json_deep_copy(p->resource), on_party_written);
        return;
    }
    json_t *found = json_incref(json_array_get(matches, 0));
    json_decref(matches);
    const char *id = json_string_value(json_object_get(found, "id"));
    if (job->mode == PARTY_UPSERT) {
        json_t *merged = hl7_patient_merge(found, p->resource);
        if (!json_equal(merged, found)) {
            write_resource(job, p->type, id, version_of(found), merged, on_party_written);
            json_decref(found);
            return;
        }
        json_decref(merged);
    }
    job->found = found;
    party_done(job, p->type, id);
}

static void resolve_party(hl7_job_t *job, hl7_party_t *party, party_mode_t mode, char **ref_out, void (*after)(hl7_job_t *))
{
    json_decref(job->found);
    job->found = NULL;
    job->party = party;
    job->mode = mode;
    job->ref_out = ref_out;
    job->after_party = after;
    search_by_identifiers(job, party->type, party->identifiers, on_party_found);
}

/* -- A40: the merged Patient is retired and points at the survivor, which points back -- */

static void add_link(json_t *patient, const char *other, const char *type)
{
    json_t *links = json_object_get(patient, "link");
    if (!json_is_array(links)) {
        links = json_array();
        json_object_set_new(patient, "link", links);
    }
    size_t i;
    json_t *l;
    json_array_foreach(links, i, l) {
        const char *ref = json_string_value(json_object_get(json_object_get(l, "other"), "reference"));
        if (ref != NULL && strcmp(ref, other) == 0) {
            json_object_set_new(l, "type", json_string(type));
            return;
        }
    }
    json_array_append_new(links, json_pack("{s:{s:s},s:s}", "other", "reference", other, "type", type));
}

/* The message's last write is done: record it and commit. */
static void on_last_written(fhir_ix_t *ix)
{
    hl7_job_t *job = ix->data;
    if (ix->res.status >= 400) {
        take_ix_failure(job, ix);
        return;
    }
    note_written(job, ix);
    applied(job);
}

static void on_survivor_read(fhir_ix_t *ix)
{
    hl7_job_t *job = ix->data;
    if (ix->res.status >= 400) {
        take_ix_failure(job, ix);
        return;
    }
    json_t *survivor = json_loads(ix->res.body, 0, NULL);
    if (survivor == NULL) {
        hl7_issue_set(&job->issue, 207, "", "the surviving Patient could not be read back");
        fail(job, HL7_ACK_AE);
        return;
    }
    add_link(survivor, job->merged_ref, "replaces");
    write_resource(job, "Patient", strchr(job->patient_ref, '/') + 1, version_of(survivor), survivor, on_last_written);
}

static void on_merged_written(fhir_ix_t *ix)
{
    hl7_job_t *job = ix->data;
    if (ix->res.status >= 400) {
        take_ix_failure(job, ix);
        return;
    }
    note_written(job, ix);
    fhir_ix_t *read = new_ix(job);
    read->req.kind = FHIR_IX_READ;
    read->req.type = "Patient";
    read->req.id = util_xstrdup(strchr(job->patient_ref, '/') + 1);
    fhir_ix_run(read, job->pool, &job->session, on_survivor_read);
}

static void merge_after_merged(hl7_job_t *job)
{
    if (strcmp(job->merged_ref, job->patient_ref) == 0) {
        hl7_issue_set(&job->issue, 205, "MRG^1^1", "MRG-1 names the surviving patient itself");
        fail(job, HL7_ACK_AE);
        return;
    }
    json_t *merged = json_deep_copy(job->found);
    json_object_set_new(merged, "active", json_false());
    add_link(merged, job->patient_ref, "replaced-by");
    write_resource(job, "Patient", strchr(job->merged_ref, '/') + 1, version_of(job->found), merged, on_merged_written);
}

static void merge_after_survivor(hl7_job_t *job)
{
    resolve_party(job, &job->plan.merged, PARTY_MUST_EXIST, &job->merged_ref, merge_after_merged);
}

/* -- SIU: parties, then the Appointment -- */

static void write_appointment(hl7_job_t *job)
{
    json_t *a = job->appointment;
    job->appointment = NULL;
    write_resource(job, "Appointment", job->appointment_id, job->appointment_version, a, on_last_written);
}

static void on_rules_checked(sched_op_t *op)
{
    hl7_job_t *job = sched_op_data(op);
    if (sched_op_status(op) >= 400) {
        sched_op_destroy(op);
        transient(job, false, "temporarily unavailable (the schedule could not be read); resend");
        return;
    }
    const char *warning = sched_op_rule_warning(op);
    time_t start;
    if (warning != NULL && util_time_parse_instant(json_string_value(json_object_get(job->appointment, "start")), &start) == 0 &&
        start < time(NULL))
        warning = "the appointment is in the past"; /* the notice rule would say it less plainly */
    if (warning != NULL) {
        char *text = util_asprintf("booked although a scheduling rule is broken: %s", warning);
        json_array_append_new(job->warnings, json_string(text));
        free(text);
    }
    sched_op_destroy(op);
    write_appointment(job);
}

static void on_appointment_found(fhir_ix_t *ix)
{
    hl7_job_t *job = ix->data;
    if (ix->res.status >= 400) {
        take_ix_failure(job, ix);
        return;
    }
    json_t *matches = search_matches(ix->res.body);
    size_t n = json_array_size(matches);
    json_t *existing = n == 1 ? json_array_get(matches, 0) : NULL;
    const char *event = job->plan.event;
    bool ends = strcmp(event, "S15") == 0 || strcmp(event, "S17") == 0 || strcmp(event, "S26") == 0;
    if (n > 1 || (n == 0 && ends)) {
        if (n > 1)
            hl7_issue_set(&job->issue, 205, "SCH^1^2", "%zu Appointments have the identifiers of SCH-1/SCH-2", n);
        else
            hl7_issue_set(&job->issue, 204, "SCH^1^2", "no Appointment has the identifiers of SCH-1/SCH-2: there is nothing to %s",
                          strcmp(event, "S15") == 0 ? "cancel" : strcmp(event, "S17") == 0 ? "delete" : "mark as a no-show");
        json_decref(matches);
        fail(job, HL7_ACK_AE);
        return;
    }
    job->appointment = hl7_appointment_apply(existing, &job->plan, job->patient_ref, job->party_refs, &job->issue);
    if (existing != NULL) {
        job->appointment_id = util_xstrdup(json_string_value(json_object_get(existing, "id")));
        job->appointment_version = version_of(existing);
    }
    bool unchanged = existing != NULL && job->appointment != NULL && json_equal(existing, job->appointment);
    json_decref(matches);
    if (job->appointment == NULL) {
        fail(job, HL7_ACK_AE);
        return;
    }
    if (unchanged) {
        applied(job);
        return;
    }
    /* The soft rules of self-booking only warn here: the sender is the system of record. */
    const char *status = json_string_value(json_object_get(job->appointment, "status"));
    if (status != NULL && strcmp(status, "booked") == 0 && !ends) {
        sched_rules_check(job->pool, &job->session, job->appointment, job->appointment_id, on_rules_checked, job);
        return;
    }
    write_appointment(job);
}

static void siu_find_appointment(hl7_job_t *job)
{
    search_by_identifiers(job, "Appointment", job->plan.appointment_ids, on_appointment_found);
}

static void siu_next_party(hl7_job_t *job)
{
    while (job->party_next < job->plan.nparties && job->plan.parties[job->party_next].remove)
        ++job->party_next;
    if (job->party_next == job->plan.nparties) {
        siu_find_appointment(job);
        return;
    }
    size_t i = job->party_next++;
    resolve_party(job, &job->plan.parties[i], PARTY_FIND_OR_CREATE, &job->party_refs[i], siu_next_party);
}

/* -- the start of the transaction -- */

static void apply(hl7_job_t *job)
{
    switch (job->plan.kind) {
    case HL7_KIND_SIU:
        job->party_next = 0;
        if (job->plan.has_patient)
            resolve_party(job, &job->plan.patient, PARTY_FIND_OR_CREATE, &job->patient_ref, siu_next_party);
        else
            siu_next_party(job);
        return;
    case HL7_KIND_ADT_PATIENT:
        resolve_party(job, &job->plan.patient, PARTY_UPSERT, &job->patient_ref, applied);
        return;
    case HL7_KIND_ADT_MERGE:
        resolve_party(job, &job->plan.patient, PARTY_UPSERT, &job->patient_ref, merge_after_survivor);
        return;
    }
}

static void on_repeat_rolled_back(store_query_t *q, PGresult *res, const char *err)
{
    finish(H2O_STRUCT_FROM_MEMBER(hl7_job_t, query, q));
}

static void on_seen(hl7_job_t *job, PGresult *res)
{
    if (PQntuples(res) == 1) {
        /* a repeat: the first answer, byte for byte, and nothing applied */
        job->ack = util_xstrdup(PQgetvalue(res, 0, 0));
        const char *code = PQgetvalue(res, 0, 1);
        job->code = strcmp(code, "AA") == 0 ? HL7_ACK_AA : strcmp(code, "AE") == 0 ? HL7_ACK_AE : HL7_ACK_AR;
        job->query = (store_query_t){.sql = "ROLLBACK", .cb = on_repeat_rolled_back};
        if (store_session_query(&job->session, &job->query) != 0)
            finish(job);
        return;
    }
    apply(job);
}

static void on_keys_locked(hl7_job_t *job, PGresult *res)
{
    const char *params[] = {field_or_empty(hl7_sending_application(job->msg)), field_or_empty(hl7_sending_facility(job->msg)),
                            field_or_empty(hl7_control_id(job->msg))};
    job_send(job, &hl7_inbound_statements[STMT_SEEN], 3, params, on_seen);
}

static void add_keys(store_array_t *keys, const char *type, const json_t *identifiers)
{
    size_t i;
    json_t *id;
    json_array_foreach(identifiers, i, id) {
        char *k = util_asprintf("%s|%s|%s", type, json_string_value(json_object_get(id, "system")) ? json_string_value(json_object_get(id, "system")) : "",
                                json_string_value(json_object_get(id, "value")) ? json_string_value(json_object_get(id, "value")) : "");
        store_array_add(keys, k);
        free(k);
    }
}

static void on_locked(hl7_job_t *job, PGresult *res)
{
    store_array_t keys;
    store_array_init(&keys);
    if (job->plan.has_patient)
        add_keys(&keys, "Patient", job->plan.patient.identifiers);
    add_keys(&keys, "Patient", job->plan.merged.identifiers);
    for (size_t i = 0; i != job->plan.nparties; ++i)
        add_keys(&keys, job->plan.parties[i].type, job->plan.parties[i].identifiers);
    add_keys(&keys, "Appointment", job->plan.appointment_ids);
    char *lit = store_array_literal(&keys);
    store_array_dispose(&keys);
    const char *params[] = {lit};
    job_send(job, &hl7_inbound_statements[STMT_LOCK_KEYS], 1, params, on_keys_locked);
    free(lit);
}

static void on_begun(hl7_job_t *job, PGresult *res)
{
    const char *app = field_or_empty(hl7_sending_application(job->msg)), *fac = field_or_empty(hl7_sending_facility(job->msg));
    char *key = util_asprintf("%s|%s|%s", app, fac, field_or_empty(hl7_control_id(job->msg)));
    char *origin = util_asprintf("%s|%s", app, fac);
    const char *params[] = {key, origin};
    job_send(job, &hl7_inbound_statements[STMT_LOCK], 2, params, on_locked);
    free(key);
    free(origin);
}

static void on_session(store_session_t *session, const char *err)
{
    hl7_job_t *job = H2O_STRUCT_FROM_MEMBER(hl7_job_t, session, session);
    if (err != NULL) {
        transient(job, false, "temporarily unavailable (the database cannot be reached); resend");
        return;
    }
    job->in_session = true;
    job_send(job, &store_begin, 0, NULL, on_begun);
}

static void begin_tx(hl7_job_t *job)
{
    reset_attempt(job);
    job->transient = false;
    job->issue = (hl7_issue_t){0};
    job->code = HL7_ACK_AA;
    job->session = (store_session_t){.cb = on_session};
    if (store_session_begin(job->pool, &job->session) != 0)
        transient(job, false, "temporarily unavailable (the server is overloaded); resend");
}

void hl7_inbound_process(store_pool_t *pool, const char *raw, size_t len, bool too_large, const char *peer, hl7_inbound_cb cb, void *data)
{
    hl7_job_t *job = util_xcalloc(1, sizeof(*job));
    job->pool = pool;
    job->raw = util_xmalloc(len + 1);
    memcpy(job->raw, raw, len);
    job->raw[len] = '\0';
    job->len = len;
    job->too_large = too_large;
    job->peer = util_xstrdup(peer != NULL ? peer : "");
    job->cb = cb;
    job->data = data;
    job->warnings = json_array();
    job->resources = json_array();
    if (too_large) {
        hl7_issue_set(&job->issue, 207, "", "the message is larger than hl7.max_message_bytes (%zu bytes) and was not read",
                      hl7_inbound_settings.max_message_bytes);
        fail(job, HL7_ACK_AR);
        return;
    }
    hl7_parse_error_t perr;
    char why[256];
    job->msg = hl7_parse(raw, len, &perr, why, sizeof(why));
    if (job->msg == NULL) {
        /* table 0357 has no code for a character set: 207, with the reason */
        hl7_issue_set(&job->issue, perr == HL7_PARSE_CHARSET ? 207 : (int)perr,
                      perr == HL7_PARSE_VERSION ? "MSH^1^12" : perr == HL7_PARSE_CHARSET ? "MSH^1^18" : "", "%s", why);
        fail(job, HL7_ACK_AR);
        return;
    }
    hl7_map_ctx_t ctx = {hl7_inbound_settings.tz};
    hl7_ack_code_t code = hl7_plan_build(&job->plan, job->msg, &ctx, &job->issue);
    job->planned = true;
    if (code != HL7_ACK_AA) {
        fail(job, code);
        return;
    }
    job->party_refs = util_xcalloc(job->plan.nparties + 1, sizeof(*job->party_refs));
    begin_tx(job);
}

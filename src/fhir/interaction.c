#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/interaction.h"
#include "fhir/json.h"
#include "fhir/types.h"
#include "fhir/validate.h"
#include "util/log.h"
#include "util/status.h"
#include "util/str.h"
#include "util/time.h"
#include "util/uuid.h"

#define MODULE_NAME "fhir/interaction.c"
#define SEARCH_DEFAULT_COUNT 50
#define SEARCH_MAX_COUNT 1000
#define SEARCH_INCLUDE_ROUNDS 4 /* :iterate follows references at most this many steps */
#define PATCH_RETRIES 3

const char *fhir_base_url = "http://127.0.0.1:8080/fhir";
fhir_search_limits_t fhir_search_limits = {SEARCH_DEFAULT_COUNT, SEARCH_MAX_COUNT, 1000};

#define STMT_VREAD "ix_vread"
#define STMT_WRITE "ix_write"
#define STMT_HISTORY "ix_history"
#define STMT_LOCK "ix_lock"
#define STMT_READ_PROPOSAL "ix_read_proposal"
#define STMT_SLOT_CHANGES "ix_slot_changes"

/*
 * Statements on the partitioned resource table are prepared once per type, with the type as a literal: a generic plan
 * with the type as a parameter locks every partition and its indexes at each execution, which halves PostgreSQL's
 * read rate (docs/performance.md).
 */
#define READ_NAME(T) "ix_read." #T,
#define READ_MANY_NAME(T) "ix_read_many." #T,
#define VISIBLE_NAME(T) "ix_visible." #T,
static const char *const stmt_read[FHIR_RESOURCE_TYPE_COUNT] = {FHIR_RESOURCE_TYPES(READ_NAME)};
static const char *const stmt_read_many[FHIR_RESOURCE_TYPE_COUNT] = {FHIR_RESOURCE_TYPES(READ_MANY_NAME)};
static const char *const stmt_visible[FHIR_RESOURCE_TYPE_COUNT] = {FHIR_RESOURCE_TYPES(VISIBLE_NAME)};
/* Reads return the columns on_read expects: id, version, deleted, body, lastUpdated. */
#define READ_SQL(T, MATCH) "SELECT id, version_id, deleted, body, fhir_instant(last_updated) FROM resource WHERE res_type = '" #T "' AND " MATCH
#define TYPE_STATEMENTS(T)                                                                                                      \
    {"ix_read." #T, READ_SQL(T, "id = $1")},                                                                                   \
        /* reads queued together share one execution (store.h, batching) */                                                     \
        {"ix_read_many." #T, READ_SQL(T, "id = ANY($1::text[])")},                                                            \
        /* Whether a row passes an access rule (fhir/access.h); no row: the resource does not exist. */                         \
        {"ix_visible." #T, "SELECT id = ANY($2::text[]) OR sp_tokens && $3::text[] FROM resource WHERE res_type = '" #T         \
                           "' AND id = $1"},
const store_stmt_t fhir_ix_statements[] = {
    FHIR_RESOURCE_TYPES(TYPE_STATEMENTS)
    {STMT_VREAD, "SELECT id, version_id, deleted, body, fhir_instant(last_updated) FROM resource_history "
                 "WHERE res_type = $1 AND id = $2 AND version_id = $3::integer"},
    {STMT_WRITE, "SELECT outcome, version_id, last_updated, body FROM fhir_write($1, $2, $3, $4, $5::integer, $6, $7::jsonb)"},
    {STMT_HISTORY, "SELECT res_type, id, version_id, deleted, method, body, fhir_instant(last_updated), count(*) OVER (), status "
                   "FROM resource_history WHERE ($1::text IS NULL OR res_type = $1) AND ($2::text IS NULL OR id = $2) "
                   "AND ($3::text IS NULL OR last_updated >= $3::timestamptz) ORDER BY seq DESC LIMIT $4::integer OFFSET $5::integer"},
    /* Serialises conditional interactions with the same criteria until their transaction ends. */
    {STMT_LOCK, "SELECT pg_advisory_xact_lock(hashtext($1))"},
    {STORE_STMT_SCHEMA_VERSION, "SELECT coalesce(max(version), 0) FROM schema_migrations"},
    /* A $find proposal ("<set>-<n>") read as an Appointment while it lives; it has no version. */
    {STMT_READ_PROPOSAL, "SELECT $1::text, 0, false, body, fhir_instant(created) FROM sched_proposal_body($1)"},
    /* Slots whose free/busy status must follow an Appointment just written (see migrations/0004_scheduling.sql). */
    {STMT_SLOT_CHANGES, "SELECT slot_id, version_id, body, status FROM sched_slot_changes($1, $2::integer)"},
};
const size_t fhir_ix_statement_count = sizeof(fhir_ix_statements) / sizeof(fhir_ix_statements[0]);

static void ix_execute(fhir_ix_t *ix);

/* The per-type statement of `table` for the request's type (routing admits stored types only). */
static const char *type_stmt(const fhir_ix_t *ix, const char *const table[FHIR_RESOURCE_TYPE_COUNT])
{
    int i = fhir_resource_type_index(ix->req.type, strlen(ix->req.type));
    assert(i >= 0);
    return table[i];
}
static void ix_resolve(fhir_ix_t *ix);
static void run_destroy(fhir_search_run_t *run);
static void ix_finish(fhir_ix_t *ix);

fhir_ix_t *fhir_ix_create(void)
{
    fhir_ix_t *ix = util_xcalloc(1, sizeof(*ix));
    fhir_outcome_init(&ix->res.oo);
    return ix;
}

void fhir_ix_destroy(fhir_ix_t *ix)
{
    free(ix->req.id);
    free(ix->req.query);
    free(ix->req.if_none_exist);
    json_decref(ix->req.resource);
    json_decref(ix->req.patch);
    free(ix->res.body);
    free(ix->res.id);
    fhir_outcome_dispose(&ix->res.oo);
    for (int i = 0; i != ix->_nparams; ++i)
        free(ix->_params[i]);
    if (ix->_search_built)
        fhir_search_dispose(&ix->_search);
    run_destroy(ix->_run);
    json_decref(ix->_work);
    json_decref(ix->_slots);
    free(ix);
}

char *fhir_ix_location(const char *type, const char *id, int version)
{
    return util_asprintf("%s/%s/%s/_history/%d", fhir_base_url, type, id, version);
}

/* ---- results ---- */

static void set_body(fhir_ix_t *ix, fhir_body_kind_t kind, char *body, size_t len)
{
    free(ix->res.body);
    ix->res.body_kind = kind;
    ix->res.body = body;
    ix->res.body_len = len;
}

static void set_resource_meta(fhir_ix_t *ix, const char *id, int version, const char *last_updated)
{
    free(ix->res.id);
    ix->res.id = util_xstrdup(id);
    ix->res.version = version;
    snprintf(ix->res.last_updated, sizeof(ix->res.last_updated), "%s", last_updated != NULL ? last_updated : "");
}

/* Fails the interaction with one error issue and finishes it. */
static void fail(fhir_ix_t *ix, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(fhir_ix_t *ix, int status, const char *code, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *msg = util_vasprintf(fmt, args);
    va_end(args);
    fhir_outcome_fail(&ix->res.oo, status, code, NULL, "%s", msg);
    free(msg);
    ix->res.status = ix->res.oo.status;
    ix_finish(ix);
}

static void fail_store(fhir_ix_t *ix, PGresult *res, const char *err)
{
    const char *state = store_sqlstate(res);
    if (err == store_err_query && strcmp(state, "FS412") == 0) {
        fail(ix, 412, "conflict", "the resource has changed since the version named in If-Match");
        return;
    }
    if (err == store_err_query && (strcmp(state, "FS409") == 0 || strcmp(state, "23505") == 0)) {
        fail(ix, 409, "duplicate", "a resource with this id was created at the same time; retry");
        return;
    }
    if (err == store_err_query && strcmp(state, "23P01") == 0) {
        /* DETAIL: Key (actor_key, during, actor)=(123, ["...","..."), Practitioner/x) conflicts with existing key (...)
         * (migration 0017): the actor is the key's last value, and an actor key ("Type/id") has no comma. */
        const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        const char *end = detail != NULL ? strstr(detail, ") conflicts with existing key") : NULL;
        const char *actor = end;
        while (actor != NULL && actor > detail && actor[-1] != ' ')
            --actor;
        if (actor != NULL && actor != end && actor - detail >= 2 && actor[-2] == ',')
            fail(ix, 409, "conflict", "that time was just taken: %.*s is already booked or held then", (int)(end - actor), actor);
        else
            fail(ix, 409, "conflict", "that time was just taken by another appointment");
        return;
    }
    if (err == store_err_query && strcmp(state, "FS422") == 0) {
        /* Raised by our own trigger with a message written for clients. */
        fail(ix, 422, "business-rule", "%s", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
        return;
    }
    if (err == store_err_not_run || (err == store_err_query && strcmp(state, "25P02") == 0)) {
        /* sent behind a statement of the same transaction that failed (pipelined Bundles): that one is the news */
        ix->res.not_run = true;
        fail(ix, 409, "processing", "not run: an earlier statement of the transaction failed");
        return;
    }
    if (err == store_err_query && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)) {
        fail(ix, 409, "conflict", "a concurrent change conflicted with this one; retry");
        return;
    }
    if (err == store_err_query) {
        /* Database details stay in the log; the client gets a generic message. */
        LOG_ERROR("statement failed (%s): %s", state, res != NULL ? PQresultErrorMessage(res) : "");
        fail(ix, 500, "exception", "internal error while accessing the database");
        return;
    }
    fail(ix, 503, "transient", "the database is not available (%s); retry later", err);
}

/* ---- running statements ---- */

static void on_query(store_query_t *q, PGresult *res, const char *err)
{
    fhir_ix_t *ix = H2O_STRUCT_FROM_MEMBER(fhir_ix_t, _query, q);
    void (*next)(fhir_ix_t *, PGresult *) = ix->_next;
    if (err != NULL) {
        fail_store(ix, res, err);
        return;
    }
    next(ix, res);
}

/* Sends a statement; the parameters are copied and owned by the interaction until the next statement. */
/* Hands ix->_query to the interaction's session, its own transaction, or the pool; fails the interaction if refused. */
static void ix_submit(fhir_ix_t *ix, void (*next)(fhir_ix_t *, PGresult *))
{
    ix->_query.cb = on_query;
    ix->_next = next;
    store_session_t *session = ix->_session != NULL ? ix->_session : (ix->_own_tx ? &ix->_own_session : NULL);
    int ret = session != NULL ? store_session_query(session, &ix->_query) : store_pool_submit(ix->_pool, &ix->_query);
    if (ret != 0)
        fail(ix, 503, "transient", "%s",
             session != NULL ? "the database connection was lost; retry" : "the server is overloaded; retry later");
}

static void set_params(fhir_ix_t *ix, int nparams, const char *const *params)
{
    for (int i = 0; i != ix->_nparams; ++i)
        free(ix->_params[i]);
    ix->_nparams = nparams;
    for (int i = 0; i != nparams; ++i)
        ix->_params[i] = params[i] != NULL ? util_xstrdup(params[i]) : NULL;
}

static void ix_send(fhir_ix_t *ix, const char *stmt, const char *sql, int nparams, const char *const *params,
                    void (*next)(fhir_ix_t *, PGresult *))
{
    set_params(ix, nparams, params);
    ix->_query = (store_query_t){.stmt_name = stmt, .sql = sql, .nparams = nparams, .params = (const char *const *)ix->_params};
    ix_submit(ix, next);
}

/* A lookup by `key` that may share one execution of `batch_stmt` with others queued at the same time (store.h). */
static void ix_send_batched(fhir_ix_t *ix, const char *batch_stmt, const char *key, void (*next)(fhir_ix_t *, PGresult *))
{
    set_params(ix, 1, &key);
    ix->_query = (store_query_t){.batch_stmt = batch_stmt, .batch_key = ix->_params[0]};
    ix_submit(ix, next);
}

static void ix_send_search(fhir_ix_t *ix, void (*next)(fhir_ix_t *, PGresult *))
{
    ix->_query = (store_query_t){.sql = ix->_search.sql.base, .nparams = ix->_search.nparams,
                                 .params = (const char *const *)ix->_search.params, .keep_plan = ix->_search.plan_reusable};
    ix_submit(ix, next);
}

/* ---- own transaction for conditional interactions outside a Bundle ---- */

static void on_tx_end(fhir_ix_t *ix, PGresult *res)
{
    store_session_end(&ix->_own_session);
    ix->_own_tx = false;
    ix->_cb(ix);
}

static void on_tx_end_error(store_query_t *q, PGresult *res, const char *err)
{
    fhir_ix_t *ix = H2O_STRUCT_FROM_MEMBER(fhir_ix_t, _query, q);
    if (err != NULL && ix->res.status < 400) {
        /* COMMIT failed: nothing was stored, so the client must not see a success. */
        set_body(ix, FHIR_BODY_NONE, NULL, 0);
        if (err == store_err_query)
            fhir_outcome_fail(&ix->res.oo, 409, "conflict", NULL, "the change could not be committed and was not stored; retry");
        else
            fhir_outcome_fail(&ix->res.oo, 503, "transient", NULL,
                              "the database connection was lost while committing: the change may or may not have been stored; "
                              "read the resource before retrying");
        ix->res.status = ix->res.oo.status;
    }
    on_tx_end(ix, res);
}

bool fhir_ix_writes(const fhir_ix_request_t *req)
{
    return req->kind == FHIR_IX_CREATE || req->kind == FHIR_IX_UPDATE || req->kind == FHIR_IX_PATCH || req->kind == FHIR_IX_DELETE ||
           req->kind == FHIR_IX_CONDITIONAL_UPDATE || req->kind == FHIR_IX_CONDITIONAL_DELETE;
}

static bool is_write(const fhir_ix_t *ix)
{
    return fhir_ix_writes(&ix->req);
}

static void send_write_of(fhir_ix_t *ix, const char *type, const char *id, json_t *resource, const char *mode, int if_match,
                          void (*next)(fhir_ix_t *, PGresult *));

static void on_audit_written(fhir_ix_t *ix, PGresult *res)
{
    ix_finish(ix);
}

/* A successful write's AuditEvent joins its transaction, so there is never one without the other. */
static bool write_audit(fhir_ix_t *ix)
{
    if (ix->audit == NULL || ix->_audited || ix->res.status >= 400 || ix->res.version == 0 || !is_write(ix))
        return false;
    ix->_audited = true;
    json_t *event = ix->audit(ix, ix->audit_ctx);
    if (event == NULL)
        return false;
    char id[UTIL_UUID_LEN + 1];
    util_uuid_v4(id);
    send_write_of(ix, "AuditEvent", id, event, "create", 0, on_audit_written);
    json_decref(event);
    return true;
}

static void ix_finish(fhir_ix_t *ix)
{
    if (write_audit(ix))
        return;
    if (ix->_own_tx) {
        if (ix->_own_session._conn == NULL) {
            on_tx_end(ix, NULL);
            return;
        }
        ix->_query = (store_query_t){.sql = ix->res.status < 400 ? "COMMIT" : "ROLLBACK", .cb = on_tx_end_error};
        if (store_session_query(&ix->_own_session, &ix->_query) != 0)
            on_tx_end(ix, NULL);
        return;
    }
    ix->_cb(ix);
}

static void on_own_begin(fhir_ix_t *ix, PGresult *res)
{
    ix_resolve(ix);
}

static void on_own_session(store_session_t *s, const char *err)
{
    fhir_ix_t *ix = H2O_STRUCT_FROM_MEMBER(fhir_ix_t, _own_session, s);
    if (err != NULL) {
        ix->_own_tx = false;
        fail(ix, 503, "transient", "the database is not available; retry later");
        return;
    }
    ix_send(ix, NULL, "BEGIN", 0, NULL, on_own_begin);
}

/* ---- body checks ---- */

static fhir_ix_body_check_fn body_checks[FHIR_RESOURCE_TYPE_COUNT];

void fhir_ix_set_body_check(const char *type, fhir_ix_body_check_fn check)
{
    int i = fhir_resource_type_index(type, strlen(type));
    if (i >= 0)
        body_checks[i] = check;
}

int fhir_ix_check_body(fhir_ix_t *ix)
{
    json_t *r = ix->req.resource;
    fhir_outcome_t *oo = &ix->res.oo;
    if (!json_is_object(r)) {
        fhir_outcome_fail(oo, 400, "structure", NULL, "the body must be a JSON object (a FHIR resource)");
        goto Fail;
    }
    const char *rt = json_string_value(json_object_get(r, "resourceType"));
    if (rt == NULL) {
        fhir_outcome_fail(oo, 400, "required", NULL, "the resource has no resourceType");
        goto Fail;
    }
    if (strcmp(rt, ix->req.type) != 0) {
        fhir_outcome_fail(oo, 400, "invalid", NULL, "resourceType %s does not match the URL's type %s", rt, ix->req.type);
        goto Fail;
    }
    json_t *id = json_object_get(r, "id");
    if (ix->req.kind == FHIR_IX_UPDATE) {
        char *where = util_asprintf("%s.id", ix->req.type);
        if (!json_is_string(id))
            fhir_outcome_fail(oo, 400, "required", where, "an update must carry the resource id in the body");
        else if (ix->req.id != NULL && strcmp(json_string_value(id), ix->req.id) != 0)
            fhir_outcome_fail(oo, 400, "invalid", where, "the id in the body does not match the id in the URL");
        free(where);
        if (oo->status != 0)
            goto Fail;
    }
    if (fhir_validate_resource(r, oo) != 0) {
        if (oo->status == 0)
            oo->status = 422;
        goto Fail;
    }
    int ti = fhir_resource_type_index(ix->req.type, strlen(ix->req.type));
    if (ti >= 0 && body_checks[ti] != NULL && body_checks[ti](r, ix->access, oo) != 0) {
        if (oo->status == 0)
            oo->status = 422;
        goto Fail;
    }
    return 0;
Fail:
    ix->res.status = oo->status;
    return -1;
}

/* ---- access checks ---- */

static void forbid(fhir_ix_t *ix)
{
    /* The same answer whether or not the resource exists, so a refusal reveals nothing. */
    if (ix->req.id != NULL)
        fail(ix, 403, "forbidden", "this token may not %s %s/%s", is_write(ix) ? "change" : "read", ix->req.type, ix->req.id);
    else
        fail(ix, 403, "forbidden", "this token may not %s %s resources", is_write(ix) ? "change" : "read", ix->req.type);
}

static void on_visible(fhir_ix_t *ix, PGresult *res)
{
    bool exists = PQntuples(res) == 1, visible = exists && PQgetvalue(res, 0, 0)[0] == 't';
    /* a write may create what does not exist yet (its result is checked after the write) */
    if (!visible && (exists || !is_write(ix) || ix->req.kind == FHIR_IX_DELETE || ix->req.kind == FHIR_IX_PATCH)) {
        forbid(ix);
        return;
    }
    ix->_after_check(ix);
}

/* Runs `next` if the addressed row passes the requester's read (or write) rule; otherwise 403. */
static void check_access(fhir_ix_t *ix, bool write, void (*next)(fhir_ix_t *ix))
{
    const fhir_access_rule_t *rule = fhir_access_rule(ix->access, ix->req.type, write);
    if (rule->level == FHIR_ACCESS_ALL || ix->req.id == NULL) {
        next(ix);
        return;
    }
    if (rule->level == FHIR_ACCESS_NONE) {
        forbid(ix);
        return;
    }
    ix->_after_check = next;
    const char *params[] = {ix->req.id, rule->ids != NULL ? rule->ids : "{}", rule->tokens != NULL ? rule->tokens : "{}"};
    ix_send(ix, type_stmt(ix, stmt_visible), NULL, 3, params, on_visible);
}

/* ---- read / vread ---- */

static void answer_resource_row(fhir_ix_t *ix, PGresult *res, int row)
{
    const char *body = PQgetvalue(res, row, 3);
    size_t len = (size_t)PQgetlength(res, row, 3);
    set_resource_meta(ix, ix->req.id, atoi(PQgetvalue(res, row, 1)), PQgetvalue(res, row, 4));
    set_body(ix, FHIR_BODY_RESOURCE, util_xstrndup(body, len), len);
}

/* The row a read answered with, or -1: batched reads share one result (store.h). */
static int read_row(const fhir_ix_t *ix, PGresult *res)
{
    if (ix->_query.batch_stmt != NULL)
        return ix->_query.row;
    return PQntuples(res) != 0 ? 0 : -1;
}

static void on_read(fhir_ix_t *ix, PGresult *res)
{
    int row = read_row(ix, res);
    if (row < 0 && ix->req.kind == FHIR_IX_READ && strcmp(ix->req.type, "Appointment") == 0 && !ix->_proposal_read) {
        ix->_proposal_read = true;
        const char *params[] = {ix->req.id};
        ix_send(ix, STMT_READ_PROPOSAL, NULL, 1, params, on_read);
        return;
    }
    if (row < 0) {
        fail(ix, 404, "not-found", "%s is not known", ix->req.kind == FHIR_IX_VREAD ? "this version" : "this resource");
        return;
    }
    if (PQgetvalue(res, row, 2)[0] == 't') {
        set_resource_meta(ix, ix->req.id, atoi(PQgetvalue(res, row, 1)), PQgetvalue(res, row, 4));
        fail(ix, 410, "deleted", "this resource %s deleted", ix->req.kind == FHIR_IX_VREAD ? "version is" : "has been");
        return;
    }
    answer_resource_row(ix, res, row);
    ix->res.status = 200;
    /* Conditional reads: the client's copy is still current. */
    if (ix->req.if_none_match != 0 && (ix->req.if_none_match == -1 || ix->req.if_none_match == ix->res.version)) {
        ix->res.status = 304;
    } else if (ix->req.if_modified_since != 0) {
        time_t t;
        if (util_time_parse_instant(ix->res.last_updated, &t) == 0 && t <= ix->req.if_modified_since)
            ix->res.status = 304;
    }
    if (ix->res.status == 304)
        set_body(ix, FHIR_BODY_NONE, NULL, 0);
    ix_finish(ix);
}

/* ---- writes ---- */

/* fhir_write() of `resource` (NULL for a delete) with its search index; `if_match` 0 = none. */
static void send_write_of(fhir_ix_t *ix, const char *type, const char *id, json_t *resource, const char *mode, int if_match,
                          void (*next)(fhir_ix_t *, PGresult *))
{
    char *head = NULL, *tail = NULL, *index = NULL, match[16];
    if (resource != NULL) {
        fhir_json_compose_for_store(resource, type, id, &head, &tail);
        index = fhir_search_index_text(type, resource);
    }
    snprintf(match, sizeof(match), "%d", if_match);
    const char *params[] = {type, id, head, tail, if_match != 0 ? match : NULL, mode, index};
    ix_send(ix, STMT_WRITE, NULL, 7, params, next);
    free(head);
    free(tail);
    free(index);
}

static bool writes_appointment(const fhir_ix_t *ix)
{
    return ix->req.type != NULL && strcmp(ix->req.type, "Appointment") == 0 && is_write(ix);
}

/* Whether Slots may have to follow this write: not when neither the new Appointment nor the version it replaces (none
 * for a create; one the caller read, held to by If-Match) references a Slot. */
static bool moves_slots(const fhir_ix_t *ix)
{
    if (!writes_appointment(ix))
        return false;
    bool nothing_before = ix->req.kind == FHIR_IX_CREATE;
    bool slotless_before = ix->req.kind == FHIR_IX_UPDATE && ix->req.replaces_slotless && ix->req.if_match != 0;
    if ((nothing_before || slotless_before) && ix->req.resource != NULL)
        return json_array_size(json_object_get(ix->req.resource, "slot")) != 0;
    return true;
}

/*
 * Slots follow the Appointments that reference them (free <-> busy), in the same transaction as the Appointment write.
 * The database says which Slots are out of step (sched_slot_changes); each is rewritten as a new version.
 */
static void next_slot_change(fhir_ix_t *ix);

static void on_slot_written(fhir_ix_t *ix, PGresult *res)
{
    next_slot_change(ix);
}

static void next_slot_change(fhir_ix_t *ix)
{
    json_t *change = json_array_get(ix->_slots, ix->_slot_next++);
    if (change == NULL) {
        ix_finish(ix);
        return;
    }
    const char *id = json_string_value(json_array_get(change, 0));
    json_t *slot = json_loads(json_string_value(json_array_get(change, 2)), 0, NULL);
    if (slot == NULL) {
        fail(ix, 500, "exception", "a stored Slot could not be read");
        return;
    }
    json_object_set_new(slot, "status", json_copy(json_array_get(change, 3)));
    /* the row is locked (FOR UPDATE), so its version cannot have moved */
    send_write_of(ix, "Slot", id, slot, "update", atoi(json_string_value(json_array_get(change, 1))), on_slot_written);
    json_decref(slot);
}

static void on_slot_changes(fhir_ix_t *ix, PGresult *res)
{
    json_decref(ix->_slots);
    ix->_slots = json_array();
    ix->_slot_next = 0;
    for (int i = 0; i != PQntuples(res); ++i)
        json_array_append_new(ix->_slots, json_pack("[ssss]", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                                                    PQgetvalue(res, i, 3)));
    next_slot_change(ix);
}

static void sync_slots(fhir_ix_t *ix)
{
    if (!moves_slots(ix) || ix->res.version == 0) {
        ix_finish(ix);
        return;
    }
    char version[16];
    snprintf(version, sizeof(version), "%d", ix->res.version);
    const char *params[] = {ix->req.id, version};
    ix_send(ix, STMT_SLOT_CHANGES, NULL, 2, params, on_slot_changes);
}

static void on_written(fhir_ix_t *ix, PGresult *res)
{
    const char *outcome = PQgetvalue(res, 0, 0);
    if (strcmp(outcome, "absent") == 0) {
        fail(ix, 404, "not-found", "there is no resource to delete");
        return;
    }
    int version = atoi(PQgetvalue(res, 0, 1));
    set_resource_meta(ix, ix->req.id, version, PQgetvalue(res, 0, 2));
    if (strcmp(outcome, "deleted") == 0 || strcmp(outcome, "unchanged") == 0) {
        ix->res.status = 200;
        fhir_outcome_add(&ix->res.oo, FHIR_SEV_INFORMATION, "informational", NULL,
                         strcmp(outcome, "deleted") == 0 ? "deleted" : "already deleted");
        sync_slots(ix);
        return;
    }
    size_t len = (size_t)PQgetlength(res, 0, 3);
    set_body(ix, FHIR_BODY_RESOURCE, util_xstrndup(PQgetvalue(res, 0, 3), len), len);
    ix->res.status = strcmp(outcome, "created") == 0 ? 201 : 200;
    /* what was written must still be the requester's to change (a receptionist cannot move an appointment to another clinic) */
    check_access(ix, true, sync_slots);
}

static void send_write(fhir_ix_t *ix, const char *mode, int if_match)
{
    send_write_of(ix, ix->req.type, ix->req.id, ix->req.resource, mode, if_match, on_written);
}

static void on_patch_read(fhir_ix_t *ix, PGresult *res)
{
    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 2)[0] == 't') {
        fail(ix, PQntuples(res) == 0 ? 404 : 410, PQntuples(res) == 0 ? "not-found" : "deleted", "there is no current resource to patch");
        return;
    }
    int current = atoi(PQgetvalue(res, 0, 1));
    if (ix->req.if_match != 0 && ix->req.if_match != current) {
        fail(ix, 412, "conflict", "the resource has changed: If-Match names a version that is not the current one");
        return;
    }
    json_t *doc;
    if (fhir_json_parse(PQgetvalue(res, 0, 3), (size_t)PQgetlength(res, 0, 3), &doc, &ix->res.oo) != 0) {
        fail(ix, 500, "exception", "the stored resource could not be read");
        return;
    }
    if (fhir_json_patch_apply(&doc, ix->req.patch, &ix->res.oo) != 0) {
        json_decref(doc);
        ix->res.status = ix->res.oo.status;
        ix_finish(ix);
        return;
    }
    /* A patch may not move the resource to another id or type. */
    json_t *id = json_object_get(doc, "id");
    if (!json_is_string(id) || strcmp(json_string_value(id), ix->req.id) != 0 ||
        !json_is_string(json_object_get(doc, "resourceType")) ||
        strcmp(json_string_value(json_object_get(doc, "resourceType")), ix->req.type) != 0) {
        json_decref(doc);
        fail(ix, 422, "processing", "a patch cannot change the resource's id or type");
        return;
    }
    json_decref(ix->req.resource);
    ix->req.resource = doc;
    fhir_ix_kind_t kind = ix->req.kind;
    ix->req.kind = FHIR_IX_UPDATE; /* checked like any update */
    int ok = fhir_ix_check_body(ix);
    ix->req.kind = kind;
    if (ok != 0) {
        ix_finish(ix);
        return;
    }
    char *head, *tail, match[16];
    fhir_json_compose_for_store(ix->req.resource, ix->req.type, ix->req.id, &head, &tail);
    char *index = fhir_search_index_text(ix->req.type, ix->req.resource);
    snprintf(match, sizeof(match), "%d", current);
    const char *params[] = {ix->req.type, ix->req.id, head, tail, match, "patch", index};
    ix_send(ix, STMT_WRITE, NULL, 7, params, on_written);
    free(head);
    free(tail);
    free(index);
}

static void on_patch_conflict(store_query_t *q, PGresult *res, const char *err);

static void start_patch(fhir_ix_t *ix)
{
    const char *params[] = {ix->req.id};
    ix_send(ix, type_stmt(ix, stmt_read), NULL, 1, params, on_patch_read);
    /* A concurrent update between our read and write shows up as FS412: read again unless the client asked for a version. */
    if (ix->req.if_match == 0)
        ix->_query.cb = on_patch_conflict;
}

static void on_patch_conflict(store_query_t *q, PGresult *res, const char *err)
{
    fhir_ix_t *ix = H2O_STRUCT_FROM_MEMBER(fhir_ix_t, _query, q);
    if (err == store_err_query && strcmp(store_sqlstate(res), "FS412") == 0 && ++ix->_retries < PATCH_RETRIES) {
        fhir_outcome_dispose(&ix->res.oo);
        fhir_outcome_init(&ix->res.oo);
        start_patch(ix);
        return;
    }
    on_query(q, res, err);
}

/* ---- search and history Bundles ---- */

static void append_json_string(util_buf_t *buf, const char *s)
{
    json_t *str = json_string(s);
    if (str == NULL) {
        util_buf_puts(buf, "\"\"");
        return;
    }
    char *text = json_dumps(str, JSON_ENCODE_ANY);
    util_buf_puts(buf, text);
    free(text);
    json_decref(str);
}

static void bundle_open(util_buf_t *buf, const char *type, long total, bool with_total)
{
    fhir_json_bundle_open(buf, type, NULL);
    if (with_total)
        util_buf_printf(buf, ",\"total\":%ld", total);
}

static void bundle_link(util_buf_t *buf, bool first, const char *relation, const char *url)
{
    util_buf_printf(buf, "%s{\"relation\":\"%s\",\"url\":", first ? "" : ",", relation);
    append_json_string(buf, url);
    util_buf_puts(buf, "}");
}

/* History paging links: self, and next/previous by offset when there are more. */
static void history_links(util_buf_t *buf, const char *path, const char *used, unsigned count, unsigned offset, long total,
                          unsigned got)
{
    util_buf_puts(buf, ",\"link\":[");
    const char *sep = used[0] != '\0' ? "&" : "";
    char *url = util_asprintf("%s/%s?%s%s_count=%u&_offset=%u", fhir_base_url, path, used, sep, count, offset);
    bundle_link(buf, true, "self", url);
    free(url);
    if ((long)offset + (long)got < total || (total < 0 && got == count && count != 0)) {
        url = util_asprintf("%s/%s?%s%s_count=%u&_offset=%u", fhir_base_url, path, used, sep, count, offset + count);
        bundle_link(buf, false, "next", url);
        free(url);
    }
    if (offset > 0) {
        url = util_asprintf("%s/%s?%s%s_count=%u&_offset=%u", fhir_base_url, path, used, sep, count, offset > count ? offset - count : 0);
        bundle_link(buf, false, "previous", url);
        free(url);
    }
    util_buf_puts(buf, "]");
}

/*
 * A search runs as up to three kinds of statement on the same parsed search: the page (count + 1 rows in keyset
 * order), the total when the page alone cannot tell it, and rounds of _include/_revinclude seeded with what the
 * Bundle holds so far. The entries are written as they arrive, so no PGresult outlives its callback.
 */
struct st_fhir_search_run_t {
    util_buf_t entries;
    size_t nentries;
    long total; /* -1: not known / not asked for */
    char *next, *previous; /* cursors of the neighbouring pages */
    char **seen;           /* "Type/id" of every entry, sorted */
    size_t nseen, seen_cap;
    store_array_t seed_types, seed_ids; /* seeds of the next include round */
    int round;
    unsigned included;
    util_buf_t sql; /* the statement in flight (total or includes) */
    char **params;
    int nparams;
};

static void run_clear_statement(fhir_search_run_t *run)
{
    for (int i = 0; i != run->nparams; ++i)
        free(run->params[i]);
    free(run->params);
    run->params = NULL;
    run->nparams = 0;
    run->sql.len = 0;
}

static void run_destroy(fhir_search_run_t *run)
{
    if (run == NULL)
        return;
    run_clear_statement(run);
    util_buf_dispose(&run->sql);
    util_buf_dispose(&run->entries);
    store_array_dispose(&run->seed_types);
    store_array_dispose(&run->seed_ids);
    for (size_t i = 0; i != run->nseen; ++i)
        free(run->seen[i]);
    free(run->seen);
    free(run->next);
    free(run->previous);
    free(run);
}

static void seeds_reset(fhir_search_run_t *run)
{
    store_array_dispose(&run->seed_types);
    store_array_dispose(&run->seed_ids);
    store_array_init(&run->seed_types);
    store_array_init(&run->seed_ids);
}

/* Where "type/id" is (or would go) in the sorted `seen` list; true when it is there. */
static bool run_seen_find(const fhir_search_run_t *run, const char *key, size_t *pos)
{
    size_t lo = 0, hi = run->nseen;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(run->seen[mid], key);
        if (c == 0) {
            *pos = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return false;
}

/* Records "type/id" as in the Bundle. */
static void run_mark_seen(fhir_search_run_t *run, const char *type, const char *id)
{
    char *key = util_asprintf("%s/%s", type, id);
    size_t pos;
    if (run_seen_find(run, key, &pos)) {
        free(key);
        return;
    }
    if (run->nseen == run->seen_cap)
        run->seen = util_xrealloc(run->seen, (run->seen_cap = run->seen_cap ? run->seen_cap * 2 : 64) * sizeof(*run->seen));
    memmove(run->seen + pos + 1, run->seen + pos, (run->nseen - pos) * sizeof(*run->seen));
    run->seen[pos] = key;
    ++run->nseen;
}

/*
 * Appends one entry. With _summary/_elements a match is re-serialised subsetted; otherwise, and for included
 * resources (which the client asked for whole, by reference), the stored body is served as it is.
 */
static void run_add_entry(fhir_ix_t *ix, const char *type, const char *id, const char *body, size_t len, const char *mode)
{
    fhir_search_run_t *run = ix->_run;
    fhir_search_t *s = &ix->_search;
    char *subset = NULL;
    if ((s->summary != FHIR_SUMMARY_FALSE || s->nelements != 0) && strcmp(mode, "match") == 0) {
        json_t *doc = json_loadb(body, len, 0, NULL);
        if (doc != NULL && fhir_subset_apply(doc, s->summary, s->elements, s->nelements) == 0)
            subset = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
    }
    fhir_json_bundle_entry(&run->entries, run->nentries == 0, type, id, subset != NULL ? subset : body,
                           subset != NULL ? strlen(subset) : len, mode);
    free(subset);
    ++run->nentries;
    if (s->nincludes != 0) { /* what includes start from, and must not repeat */
        run_mark_seen(run, type, id);
        store_array_add(&run->seed_types, type);
        store_array_add(&run->seed_ids, id);
    }
}

/* The link to this search with `cursor` (NULL: the first page). */
static char *search_link(fhir_ix_t *ix, const char *cursor)
{
    fhir_search_t *s = &ix->_search;
    util_buf_t url;
    util_buf_init(&url);
    util_buf_printf(&url, "%s/%s?", fhir_base_url, ix->req.type != NULL ? ix->req.type : "");
    if (ix->req.type == NULL)
        url.len -= 2, util_buf_puts(&url, "?"); /* system search: [base]?... */
    if (s->used.len != 0)
        util_buf_printf(&url, "%s&", s->used.base);
    util_buf_printf(&url, "_count=%u", s->count);
    if (cursor != NULL) {
        util_buf_puts(&url, "&_cursor=");
        util_buf_puts(&url, cursor);
    }
    char *out = util_xstrndup(url.base, url.len);
    util_buf_dispose(&url);
    return out;
}

static void search_finish(fhir_ix_t *ix)
{
    fhir_search_run_t *run = ix->_run;
    fhir_search_t *s = &ix->_search;
    util_buf_t buf;
    util_buf_init(&buf);
    bool with_total = run->total >= 0 && (s->total != FHIR_TOTAL_NONE || s->count_only);
    bundle_open(&buf, "searchset", run->total, with_total);
    util_buf_puts(&buf, ",\"link\":[");
    char *url = search_link(ix, s->cursor);
    bundle_link(&buf, true, "self", url);
    free(url);
    if (run->next != NULL) {
        url = search_link(ix, run->next);
        bundle_link(&buf, false, "next", url);
        free(url);
    }
    if (run->previous != NULL) {
        url = search_link(ix, run->previous);
        bundle_link(&buf, false, "previous", url);
        free(url);
    }
    util_buf_puts(&buf, "]");
    bool any = run->nentries != 0;
    if (any) {
        util_buf_puts(&buf, ",\"entry\":[");
        util_buf_append(&buf, run->entries.base, run->entries.len);
    }
    /* Ignored parameters are reported in the Bundle itself, as the search spec suggests. */
    if (ix->res.oo.count != 0) {
        json_t *oo = fhir_outcome_to_json(&ix->res.oo);
        char *text = fhir_json_dump(oo, false, NULL);
        util_buf_printf(&buf, "%s{\"resource\":%s,\"search\":{\"mode\":\"outcome\"}}", any ? "," : ",\"entry\":[", text);
        any = true;
        free(text);
        json_decref(oo);
    }
    if (any)
        util_buf_puts(&buf, "]");
    util_buf_puts(&buf, "}");
    set_body(ix, FHIR_BODY_BUNDLE, util_xstrndup(buf.base, buf.len), buf.len);
    util_buf_dispose(&buf);
    ix->res.status = 200;
    ix_finish(ix);
}

static void search_send_includes(fhir_ix_t *ix);

static void on_included(fhir_ix_t *ix, PGresult *res)
{
    fhir_search_run_t *run = ix->_run;
    int n = PQntuples(res);
    unsigned room = fhir_search_limits.max_includes - run->included;
    seeds_reset(run);
    size_t before = run->nentries;
    for (int i = 0; i != n; ++i) {
        const char *type = PQgetvalue(res, i, 0), *id = PQgetvalue(res, i, 1);
        char *key = util_asprintf("%s/%s", type, id);
        size_t pos;
        if (!run_seen_find(run, key, &pos))
            run_add_entry(ix, type, id, PQgetvalue(res, i, 3), (size_t)PQgetlength(res, i, 3), "include");
        free(key);
    }
    run->included += (unsigned)(run->nentries - before);
    if ((unsigned)n >= room) {
        fhir_outcome_add(&ix->res.oo, FHIR_SEV_WARNING, "too-costly", NULL,
                         "only the first %u included resources are returned; narrow the search or page with a smaller _count",
                         fhir_search_limits.max_includes);
        search_finish(ix);
        return;
    }
    if (run->nentries == before || ++run->round >= SEARCH_INCLUDE_ROUNDS) {
        search_finish(ix);
        return;
    }
    search_send_includes(ix);
}

/* One round of includes seeded with what the previous step added; finishes when there is nothing (more) to include. */
static void search_send_includes(fhir_ix_t *ix)
{
    fhir_search_run_t *run = ix->_run;
    run_clear_statement(run);
    char *types = store_array_literal(&run->seed_types), *ids = store_array_literal(&run->seed_ids);
    unsigned room = fhir_search_limits.max_includes - run->included;
    run->nparams = run->seed_types.n == 0 || room == 0
                       ? 0
                       : fhir_search_include_sql(&ix->_search, run->round == 0, types, ids, room, &run->sql, &run->params);
    free(types);
    free(ids);
    if (run->nparams == 0) {
        search_finish(ix);
        return;
    }
    ix->_query = (store_query_t){.sql = run->sql.base, .nparams = run->nparams, .params = (const char *const *)run->params};
    ix_submit(ix, on_included);
}

static void search_after_total(fhir_ix_t *ix)
{
    if (ix->_search.nincludes != 0 && !ix->_search.count_only) {
        search_send_includes(ix);
        return;
    }
    search_finish(ix);
}

static void on_total(fhir_ix_t *ix, PGresult *res)
{
    fhir_search_run_t *run = ix->_run;
    if (ix->_search.total == FHIR_TOTAL_ESTIMATE && !ix->_search.count_only) {
        /* EXPLAIN (FORMAT JSON): the planner's row estimate of the top node */
        json_t *plan = PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
        json_t *rows = json_object_get(json_object_get(json_array_get(plan, 0), "Plan"), "Plan Rows");
        run->total = json_is_number(rows) ? (long)json_number_value(rows) : -1;
        json_decref(plan);
    } else {
        run->total = PQntuples(res) == 1 ? atol(PQgetvalue(res, 0, 0)) : -1;
    }
    search_after_total(ix);
}

static void search_send_total(fhir_ix_t *ix)
{
    fhir_search_run_t *run = ix->_run;
    fhir_search_t *s = &ix->_search;
    run_clear_statement(run);
    bool estimate = s->total == FHIR_TOTAL_ESTIMATE && !s->count_only;
    if (estimate)
        util_buf_puts(&run->sql, "EXPLAIN (FORMAT JSON) ");
    util_buf_append(&run->sql, s->count_sql.base, s->count_sql.len);
    ix->_query = (store_query_t){.sql = run->sql.base, .nparams = s->nparams_where, .params = (const char *const *)s->params,
                                 .keep_plan = s->plan_reusable && !estimate};
    ix_submit(ix, on_total);
}

/* The sort keys of a page row (sort columns, res_type, id) for a cursor. */
static char *row_cursor(fhir_ix_t *ix, PGresult *res, int row, bool backward)
{
    fhir_search_t *s = &ix->_search;
    const char *keys[FHIR_SEARCH_MAX_SORT + 2];
    for (size_t k = 0; k != s->nsort; ++k)
        keys[k] = PQgetvalue(res, row, 4 + (int)k);
    keys[s->nsort] = PQgetvalue(res, row, 0);
    keys[s->nsort + 1] = PQgetvalue(res, row, 1);
    return fhir_search_cursor(s, backward, keys);
}

static void on_page(fhir_ix_t *ix, PGresult *res)
{
    fhir_search_run_t *run = ix->_run;
    fhir_search_t *s = &ix->_search;
    int n = PQntuples(res);
    bool more = n > (int)s->count;
    int used = more ? (int)s->count : n;
    /* a backward page arrives nearest-first: the Bundle shows it in forward order */
    for (int k = 0; k != used; ++k) {
        int i = s->backward ? used - 1 - k : k;
        run_add_entry(ix, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 3), (size_t)PQgetlength(res, i, 3), "match");
    }
    if (used != 0) {
        int first = s->backward ? used - 1 : 0, last = s->backward ? 0 : used - 1;
        if (s->backward ? true : more)
            run->next = row_cursor(ix, res, last, false);
        if (s->backward ? more : s->has_cursor)
            run->previous = row_cursor(ix, res, first, true);
    }
    if (s->total == FHIR_TOTAL_NONE) {
        search_after_total(ix);
    } else if (!s->has_cursor && !more) {
        run->total = used; /* the whole result is on this page */
        search_after_total(ix);
    } else {
        search_send_total(ix);
    }
}

static void start_search(fhir_ix_t *ix)
{
    const char *q = ix->req.query != NULL ? ix->req.query : "";
    ix->_search_built = true;
    if (fhir_search_build_for(&ix->_search, ix->req.type, q, strlen(q), &fhir_search_limits, false, ix->access, &ix->res.oo) != 0) {
        ix->res.status = ix->res.oo.status;
        ix_finish(ix);
        return;
    }
    ix->_run = util_xcalloc(1, sizeof(*ix->_run));
    util_buf_init(&ix->_run->entries);
    util_buf_init(&ix->_run->sql);
    seeds_reset(ix->_run);
    ix->_run->total = -1;
    if (ix->_search.count_only) {
        search_send_total(ix);
        return;
    }
    ix_send_search(ix, on_page);
}

/* Builds the history Bundle from the rows of STMT_HISTORY (`res` may be NULL: no rows). */
static void answer_history(fhir_ix_t *ix, PGresult *res)
{
    int n = res != NULL ? PQntuples(res) : 0;
    long total = n > 0 ? atol(PQgetvalue(res, 0, 7)) : (ix->_offset == 0 ? 0 : -1);
    util_buf_t buf, path;
    util_buf_init(&buf);
    util_buf_init(&path);
    if (ix->req.type != NULL)
        util_buf_printf(&path, "%s/", ix->req.type);
    if (ix->req.id != NULL)
        util_buf_printf(&path, "%s/", ix->req.id);
    util_buf_puts(&path, "_history");
    bundle_open(&buf, "history", total, total >= 0);
    history_links(&buf, path.base, ix->_search.used.base, ix->_search.count, ix->_offset, total, (unsigned)n);
    if (n != 0)
        util_buf_puts(&buf, ",\"entry\":[");
    for (int i = 0; i != n; ++i) {
        const char *type = PQgetvalue(res, i, 0), *id = PQgetvalue(res, i, 1), *method = PQgetvalue(res, i, 4);
        int version = atoi(PQgetvalue(res, i, 2));
        bool deleted = PQgetvalue(res, i, 3)[0] == 't';
        util_buf_printf(&buf, "%s{\"fullUrl\":\"%s/%s/%s\"", i == 0 ? "" : ",", fhir_base_url, type, id);
        if (!deleted) {
            util_buf_puts(&buf, ",\"resource\":");
            util_buf_append(&buf, PQgetvalue(res, i, 5), (size_t)PQgetlength(res, i, 5));
        }
        if (strcmp(method, "POST") == 0)
            util_buf_printf(&buf, ",\"request\":{\"method\":\"POST\",\"url\":\"%s\"}", type);
        else
            util_buf_printf(&buf, ",\"request\":{\"method\":\"%s\",\"url\":\"%s/%s\"}", method, type, id);
        int status = atoi(PQgetvalue(res, i, 8));
        util_buf_printf(&buf, ",\"response\":{\"status\":\"%d %s\",\"etag\":\"W/\\\"%d\\\"\",\"lastModified\":\"%s\"}}",
                        status, util_http_reason(status), version, PQgetvalue(res, i, 6));
    }
    if (n != 0)
        util_buf_puts(&buf, "]");
    util_buf_puts(&buf, "}");
    set_body(ix, FHIR_BODY_BUNDLE, util_xstrndup(buf.base, buf.len), buf.len);
    util_buf_dispose(&buf);
    util_buf_dispose(&path);
    ix->res.status = 200;
    ix_finish(ix);
}

static void on_history_exists(fhir_ix_t *ix, PGresult *res)
{
    if (PQntuples(res) == 0) {
        fail(ix, 404, "not-found", "this resource is not known");
        return;
    }
    answer_history(ix, NULL);
}

static void on_history(fhir_ix_t *ix, PGresult *res)
{
    if (PQntuples(res) == 0 && ix->req.id != NULL) {
        /* No versions in the window: an empty Bundle if the resource exists at all, 404 otherwise. */
        const char *params[] = {ix->req.id};
        ix_send(ix, type_stmt(ix, stmt_read), NULL, 1, params, on_history_exists);
        return;
    }
    answer_history(ix, res);
}

/* History takes only _count, _since and our own _offset. */
static void start_history(fhir_ix_t *ix)
{
    fhir_search_t *s = &ix->_search;
    memset(s, 0, sizeof(*s));
    ix->_search_built = true;
    util_buf_init(&s->sql);
    util_buf_init(&s->used);
    s->count = SEARCH_DEFAULT_COUNT;
    char *since = NULL;
    const char *q = ix->req.query != NULL ? ix->req.query : "", *end = q + strlen(q);
    char *name, *value;
    int more;
    while ((more = fhir_query_next(&q, end, &name, &value)) != 0) {
        int bad = more < 0;
        if (!bad && strcmp(name, "_count") == 0) {
            char *end;
            long v = strtol(value, &end, 10);
            bad = *end != '\0' || v < 0 || value[0] == '\0';
            s->count = v > SEARCH_MAX_COUNT ? SEARCH_MAX_COUNT : (unsigned)v;
        } else if (!bad && strcmp(name, "_offset") == 0) {
            char *end;
            long v = strtol(value, &end, 10);
            bad = *end != '\0' || v < 0 || value[0] == '\0';
            ix->_offset = (unsigned)v;
        } else if (!bad && strcmp(name, "_since") == 0) {
            time_t t;
            bad = util_time_parse_instant(value, &t) != 0;
            if (!bad) {
                free(since);
                since = util_xstrdup(value);
                util_buf_puts(&s->used, "_since=");
                fhir_url_encode(&s->used, value);
            }
        }
        if (bad) {
            free(name);
            free(value);
            free(since);
            fail(ix, 400, "value", "history parameters: _count and _offset take whole numbers, _since an instant");
            return;
        }
        free(name);
        free(value);
    }
    if (s->used.len != 0)
        util_buf_puts(&s->used, "&");
    char count[16], offset[16];
    snprintf(count, sizeof(count), "%u", s->count);
    snprintf(offset, sizeof(offset), "%u", ix->_offset);
    const char *params[] = {ix->req.type, ix->req.id, since, count, offset};
    /* the links append "_count=..", so `used` ends in '&' when not empty; strip it back for bundle_links */
    if (s->used.len != 0)
        s->used.base[--s->used.len] = '\0';
    ix_send(ix, STMT_HISTORY, NULL, 5, params, on_history);
    free(since);
}

/* ---- conditional resolution ---- */

static void on_resolved(fhir_ix_t *ix, PGresult *res)
{
    int n = PQntuples(res);
    if (n > 1) {
        fail(ix, 412, "multiple-matches", "the criteria match more than one resource");
        return;
    }
    switch (ix->req.kind) {
    case FHIR_IX_CREATE:
        /* resolved once and for all: running the interaction later must not search again */
        free(ix->req.if_none_exist);
        ix->req.if_none_exist = NULL;
        if (n == 1) {
            free(ix->req.id);
            ix->req.id = util_xstrdup(PQgetvalue(res, 0, 1));
            ix->req.kind = FHIR_IX_EXISTING;
            size_t len = (size_t)PQgetlength(res, 0, 3);
            set_body(ix, FHIR_BODY_RESOURCE, util_xstrndup(PQgetvalue(res, 0, 3), len), len);
            /* lastUpdated of the match is inside its body; the ETag is what clients use */
            set_resource_meta(ix, ix->req.id, atoi(PQgetvalue(res, 0, 2)), NULL);
        }
        break;
    case FHIR_IX_CONDITIONAL_UPDATE: {
        json_t *body_id = json_object_get(ix->req.resource, "id");
        if (n == 1) {
            const char *match = PQgetvalue(res, 0, 1);
            if (json_is_string(body_id) && strcmp(json_string_value(body_id), match) != 0) {
                fail(ix, 400, "invalid", "the id in the body does not match the resource found by the criteria");
                return;
            }
            free(ix->req.id);
            ix->req.id = util_xstrdup(match);
        } else if (json_is_string(body_id)) {
            free(ix->req.id);
            ix->req.id = util_xstrdup(json_string_value(body_id));
        } else {
            char id[UTIL_UUID_LEN + 1];
            util_uuid_v4(id);
            free(ix->req.id);
            ix->req.id = util_xstrdup(id);
        }
        json_object_set_new(ix->req.resource, "id", json_string(ix->req.id));
        ix->req.kind = FHIR_IX_UPDATE;
        break;
    }
    case FHIR_IX_CONDITIONAL_DELETE:
        if (n == 1) {
            free(ix->req.id);
            ix->req.id = util_xstrdup(PQgetvalue(res, 0, 1));
            ix->req.kind = FHIR_IX_DELETE;
        } else {
            ix->req.kind = FHIR_IX_NOTHING;
        }
        break;
    default:
        break;
    }
    if (ix->_resolve_only)
        ix_finish(ix);
    else
        ix_execute(ix);
}

static void on_locked(fhir_ix_t *ix, PGresult *res)
{
    ix_send_search(ix, on_resolved);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The same criteria in another order must take the same lock: the key is the type and the sorted, normalised pairs. */
static char *criteria_lock_key(const char *type, const char *used)
{
    char *copy = util_xstrdup(used), *pairs[64], *save = NULL;
    size_t n = 0;
    for (char *tok = strtok_r(copy, "&", &save); tok != NULL && n < 64; tok = strtok_r(NULL, "&", &save))
        pairs[n++] = tok;
    qsort(pairs, n, sizeof(*pairs), compare_strings);
    util_buf_t key;
    util_buf_init(&key);
    util_buf_puts(&key, type);
    for (size_t i = 0; i != n; ++i)
        util_buf_printf(&key, "%c%s", i == 0 ? '?' : '&', pairs[i]);
    char *out = util_xstrndup(key.base, key.len);
    util_buf_dispose(&key);
    free(copy);
    return out;
}

static bool is_conditional(const fhir_ix_t *ix)
{
    return (ix->req.kind == FHIR_IX_CREATE && ix->req.if_none_exist != NULL) || ix->req.kind == FHIR_IX_CONDITIONAL_UPDATE ||
           ix->req.kind == FHIR_IX_CONDITIONAL_DELETE;
}

static void ix_resolve(fhir_ix_t *ix)
{
    if (!is_conditional(ix)) {
        if (ix->_resolve_only)
            ix_finish(ix);
        else
            ix_execute(ix);
        return;
    }
    const char *criteria = ix->req.kind == FHIR_IX_CREATE ? ix->req.if_none_exist : ix->req.query;
    if (criteria == NULL || criteria[0] == '\0') {
        fail(ix, 412, "multiple-matches", "conditional %s needs search criteria", ix->req.kind == FHIR_IX_CREATE ? "create" : "update/delete");
        return;
    }
    /* "Patient?identifier=a|b" as If-None-Exist is tolerated: only the query part counts. */
    const char *qmark = strchr(criteria, '?');
    if (qmark != NULL)
        criteria = qmark + 1;
    if (ix->_search_built)
        fhir_search_dispose(&ix->_search);
    ix->_search_built = true;
    /* Strict: an ignored criterion would widen the match, which for a delete or update is dangerous. */
    static const fhir_search_limits_t two = {2, 2, 0};
    if (fhir_search_build_for(&ix->_search, ix->req.type, criteria, strlen(criteria), &two, true, ix->access, &ix->res.oo) != 0) {
        ix->res.status = ix->res.oo.status;
        ix_finish(ix);
        return;
    }
    char *key = criteria_lock_key(ix->req.type, ix->_search.used.base);
    const char *params[] = {key};
    ix_send(ix, STMT_LOCK, NULL, 1, params, on_locked);
    free(key);
}

/* ---- dispatch ---- */

/* A plain read outside a transaction may share its execution with others queued at the same time. */
static void send_read(fhir_ix_t *ix)
{
    bool in_tx = ix->_session != NULL || ix->_own_tx;
    if (in_tx) {
        const char *params[] = {ix->req.id};
        ix_send(ix, type_stmt(ix, stmt_read), NULL, 1, params, on_read);
        return;
    }
    ix_send_batched(ix, type_stmt(ix, stmt_read_many), ix->req.id, on_read);
}

static void start_read(fhir_ix_t *ix)
{
    char vid[16];
    snprintf(vid, sizeof(vid), "%d", ix->req.vid);
    const char *params[] = {ix->req.type, ix->req.id, vid};
    if (ix->req.kind == FHIR_IX_VREAD)
        ix_send(ix, STMT_VREAD, NULL, 3, params, on_read);
    else
        send_read(ix);
}

static void start_update(fhir_ix_t *ix)
{
    send_write(ix, "update", ix->req.if_match);
}

static void start_delete(fhir_ix_t *ix)
{
    send_write(ix, "delete", ix->req.if_match);
}

/* Type and system history cannot be filtered row by row (history rows carry no search tokens): all or nothing. */
static bool history_fully_visible(const fhir_ix_t *ix)
{
    for (int i = 0; i != FHIR_RESOURCE_TYPE_COUNT; ++i) {
        const char *type = fhir_resource_types[i];
        if ((ix->req.type == NULL || strcmp(ix->req.type, type) == 0) &&
            fhir_access_rule(ix->access, type, false)->level != FHIR_ACCESS_ALL)
            return false;
    }
    return true;
}

static void ix_execute(fhir_ix_t *ix)
{
    switch (ix->req.kind) {
    case FHIR_IX_READ:
    case FHIR_IX_VREAD:
        check_access(ix, false, start_read);
        return;
    case FHIR_IX_SEARCH:
        start_search(ix);
        return;
    case FHIR_IX_CREATE:
        if (ix->req.id == NULL) {
            char id[UTIL_UUID_LEN + 1];
            util_uuid_v4(id);
            ix->req.id = util_xstrdup(id);
        }
        send_write(ix, "create", 0);
        return;
    case FHIR_IX_UPDATE:
        check_access(ix, true, start_update);
        return;
    case FHIR_IX_PATCH:
        check_access(ix, true, start_patch);
        return;
    case FHIR_IX_DELETE:
        check_access(ix, true, start_delete);
        return;
    case FHIR_IX_HISTORY:
        if (ix->req.id != NULL)
            check_access(ix, false, start_history);
        else if (!history_fully_visible(ix))
            forbid(ix);
        else
            start_history(ix);
        return;
    case FHIR_IX_EXISTING:
        ix->res.status = 200;
        ix_finish(ix);
        return;
    case FHIR_IX_NOTHING:
        ix->res.status = 200;
        fhir_outcome_add(&ix->res.oo, FHIR_SEV_INFORMATION, "informational", NULL, "no resource matched; nothing was deleted");
        ix_finish(ix);
        return;
    case FHIR_IX_CONDITIONAL_UPDATE:
    case FHIR_IX_CONDITIONAL_DELETE:
        ix_resolve(ix);
        return;
    }
}

bool fhir_ix_pipelinable(const fhir_ix_t *ix)
{
    switch (ix->req.kind) {
    case FHIR_IX_CREATE:
        return !moves_slots(ix) && !is_conditional(ix);
    case FHIR_IX_UPDATE:
    case FHIR_IX_DELETE:
        /* a restricted writer's check reads the row before the write (check_access) */
        return !moves_slots(ix) && fhir_access_rule(ix->access, ix->req.type, true)->level == FHIR_ACCESS_ALL;
    default:
        return false;
    }
}

void fhir_ix_run(fhir_ix_t *ix, store_pool_t *pool, store_session_t *session, fhir_ix_cb cb)
{
    ix->_pool = pool;
    ix->_session = session;
    ix->_cb = cb;
    ix->_resolve_only = false;
    if ((ix->req.kind == FHIR_IX_CREATE || ix->req.kind == FHIR_IX_UPDATE || ix->req.kind == FHIR_IX_CONDITIONAL_UPDATE) &&
        ix->req.resource != NULL && fhir_ix_check_body(ix) != 0) {
        ix_finish(ix);
        return;
    }
    /* Conditional interactions and Appointment writes that move Slots along need several statements in one transaction. */
    bool checked_write = is_write(ix) && (ix->audit != NULL || fhir_access_rule(ix->access, ix->req.type, true)->level != FHIR_ACCESS_ALL);
    if ((is_conditional(ix) || moves_slots(ix) || checked_write) && session == NULL) {
        ix->_own_tx = true;
        ix->_own_session.cb = on_own_session;
        if (store_session_begin(pool, &ix->_own_session) != 0) {
            ix->_own_tx = false;
            fail(ix, 503, "transient", "the server is overloaded; retry later");
        }
        return;
    }
    ix_resolve(ix);
}

void fhir_ix_resolve(fhir_ix_t *ix, store_pool_t *pool, store_session_t *session, fhir_ix_cb cb)
{
    ix->_pool = pool;
    ix->_session = session;
    ix->_cb = cb;
    ix->_resolve_only = true;
    ix_resolve(ix);
}

int fhir_etag_version(const char *v, size_t len)
{
    if (len == 1 && v[0] == '*')
        return -1;
    if (len >= 2 && v[0] == 'W' && v[1] == '/')
        v += 2, len -= 2;
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"')
        ++v, len -= 2;
    if (len == 0 || len > 9)
        return -2;
    int n = 0;
    for (size_t i = 0; i != len; ++i) {
        if (v[i] < '0' || v[i] > '9')
            return -2;
        n = n * 10 + (v[i] - '0');
    }
    return n;
}

/* ---- routing ---- */

static bool parse_version(const char *s, size_t len, int *out)
{
    if (len == 0 || len > 9)
        return false;
    int v = 0;
    for (size_t i = 0; i != len; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return v > 0;
}

int fhir_ix_route(fhir_ix_request_t *req, const char *method, const char *path, size_t path_len, const char *query, fhir_outcome_t *oo)
{
    /* split the path into at most 4 segments: Type / id / _history / vid */
    const char *seg[5];
    size_t seglen[5], n = 0;
    const char *p = path, *end = path + path_len;
    while (p < end && n < 5) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash != NULL ? slash : end;
        seg[n] = p;
        seglen[n] = (size_t)(stop - p);
        ++n;
        p = slash != NULL ? slash + 1 : end;
        if (slash != NULL && p == end)
            return fhir_outcome_fail(oo, 404, "not-found", NULL, "no such endpoint (trailing slash)");
    }
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    /* system-level search: GET [base]?_type=... or POST [base]/_search */
    if ((n == 0 && get && path_len == 0) || (n == 1 && util_str_eq(seg[0], seglen[0], "_search") && strcmp(method, "POST") == 0)) {
        req->kind = FHIR_IX_SEARCH;
        req->type = NULL;
        req->query = util_xstrdup(query != NULL ? query : "");
        return 0;
    }
    if (p < end || n == 0)
        return fhir_outcome_fail(oo, 404, "not-found", NULL, "no such endpoint");
    if (n == 1 && util_str_eq(seg[0], seglen[0], "_history")) {
        if (!get)
            return fhir_outcome_fail(oo, 405, "not-supported", NULL, "%s is not allowed on /_history", method);
        req->kind = FHIR_IX_HISTORY;
        req->type = NULL;
        req->query = util_xstrdup(query != NULL ? query : "");
        return 0;
    }
    int type_index = fhir_resource_type_index(seg[0], seglen[0]);
    if (type_index < 0)
        return fhir_outcome_fail(oo, 404, "not-supported", NULL, "resource type %.*s is not supported by this server",
                                 (int)(seglen[0] > 64 ? 64 : seglen[0]), seg[0]);
    req->type = fhir_resource_types[type_index];
    if (query != NULL)
        req->query = util_xstrdup(query);
    if (n == 1) {
        if (get) {
            req->kind = FHIR_IX_SEARCH;
        } else if (strcmp(method, "POST") == 0) {
            req->kind = FHIR_IX_CREATE;
        } else if (strcmp(req->type, "AuditEvent") == 0 && strcmp(method, "POST") != 0) {
            return fhir_outcome_fail(oo, 405, "not-supported", NULL, "AuditEvents are append-only: %s is not allowed", method);
        } else if (strcmp(method, "PUT") == 0 && query != NULL && query[0] != '\0') {
            req->kind = FHIR_IX_CONDITIONAL_UPDATE;
        } else if (strcmp(method, "DELETE") == 0 && query != NULL && query[0] != '\0') {
            req->kind = FHIR_IX_CONDITIONAL_DELETE;
        } else if (strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0) {
            return fhir_outcome_fail(oo, 400, "required", NULL, "%s on a type needs an id or search criteria", method);
        } else {
            return fhir_outcome_fail(oo, 405, "not-supported", NULL, "%s is not allowed on a resource type", method);
        }
        return 0;
    }
    if (n == 2 && util_str_eq(seg[1], seglen[1], "_search")) {
        if (strcmp(method, "POST") != 0)
            return fhir_outcome_fail(oo, 405, "not-supported", NULL, "_search takes POST");
        req->kind = FHIR_IX_SEARCH;
        return 0;
    }
    if (n == 2 && util_str_eq(seg[1], seglen[1], "_history")) {
        if (!get)
            return fhir_outcome_fail(oo, 405, "not-supported", NULL, "%s is not allowed on _history", method);
        req->kind = FHIR_IX_HISTORY;
        return 0;
    }
    if (!fhir_id_is_valid(seg[1], seglen[1]))
        return fhir_outcome_fail(oo, 400, "value", NULL, "\"%.*s\" is not a valid resource id", (int)(seglen[1] > 64 ? 64 : seglen[1]),
                                 seg[1]);
    req->id = util_xstrndup(seg[1], seglen[1]);
    if (n == 2 && strcmp(req->type, "AuditEvent") == 0 && !get && strcmp(method, "POST") != 0)
        return fhir_outcome_fail(oo, 405, "not-supported", NULL, "AuditEvents are append-only: %s is not allowed", method);
    if (n == 2) {
        if (get)
            req->kind = FHIR_IX_READ;
        else if (strcmp(method, "PUT") == 0)
            req->kind = FHIR_IX_UPDATE;
        else if (strcmp(method, "PATCH") == 0)
            req->kind = FHIR_IX_PATCH;
        else if (strcmp(method, "DELETE") == 0)
            req->kind = FHIR_IX_DELETE;
        else
            return fhir_outcome_fail(oo, 405, "not-supported", NULL, "%s is not allowed on a resource", method);
        return 0;
    }
    if (!util_str_eq(seg[2], seglen[2], "_history"))
        return fhir_outcome_fail(oo, 404, "not-found", NULL, "no such endpoint");
    if (!get)
        return fhir_outcome_fail(oo, 405, "not-supported", NULL, "%s is not allowed on _history", method);
    if (n == 3) {
        req->kind = FHIR_IX_HISTORY;
        return 0;
    }
    if (n > 4 || !parse_version(seg[3], seglen[3], &req->vid))
        return fhir_outcome_fail(oo, 404, "not-found", NULL, "no such version");
    req->kind = FHIR_IX_VREAD;
    return 0;
}

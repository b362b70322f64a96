#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include "auth/audit.h"
#include "fhir/json.h"
#include "fhir/search.h"
#include "util/log.h"
#include "util/status.h"
#include "util/str.h"
#include "util/time.h"
#include "util/uuid.h"

#define MODULE_NAME "auth/audit.c"
#define BATCH_MAX 64        /* events per INSERT */
#define BATCH_DELAY_MS 200  /* how long an event may wait for company */
#define PURGE_BATCH "10000" /* rows per purge statement, so one purge never holds locks for long */

auth_audit_settings_t auth_audit_settings = {.enabled = true, .retention_days = 2190, .purge_interval_ms = 10000};

/* ---- the event ---- */

static json_t *coding(const char *system, const char *code, const char *display)
{
    json_t *c = json_pack("{s:s,s:s}", "system", system, "code", code);
    if (display != NULL)
        json_object_set_new(c, "display", json_string(display));
    return c;
}

static char *base64(const char *text)
{
    size_t len = strlen(text);
    char *out = util_xcalloc(1, 4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)len);
    return out;
}

static json_t *agent_of(const auth_principal_t *p, const auth_audit_info_t *info)
{
    json_t *agent = json_pack("{s:b}", "requestor", 1);
    if (p == NULL && info->agent != NULL) {
        json_object_set_new(agent, "who", json_pack("{s:s}", "display", info->agent));
    } else if (p == NULL) {
        json_object_set_new(agent, "who", json_pack("{s:s}", "display", "anonymous (authorization is switched off)"));
    } else if (p->fhir_user != NULL) {
        json_object_set_new(agent, "who", json_pack("{s:s}", "reference", p->fhir_user));
    } else {
        json_t *identifier = json_pack("{s:s}", "value", p->subject != NULL ? p->subject : "unknown");
        if (p->issuer != NULL)
            json_object_set_new(identifier, "system", json_string(p->issuer));
        json_object_set_new(agent, "who", json_pack("{s:o}", "identifier", identifier));
    }
    if (p != NULL && p->client_id != NULL)
        json_object_set_new(agent, "altId", json_string(p->client_id));
    if (p != NULL && p->roles != 0) {
        json_t *roles = json_array();
        for (int i = 0; i != AUTH_ROLE_COUNT; ++i)
            if (p->roles & (1u << i))
                json_array_append_new(roles, json_pack("{s:s}", "text", auth_role_name(1u << i)));
        json_object_set_new(agent, "role", roles);
    }
    if (p != NULL && p->patient != NULL)
        json_object_set_new(agent, "type",
                            json_pack("{s:[o]}", "coding", coding("http://terminology.hl7.org/CodeSystem/v3-RoleClass", "PAT", "patient")));
    if (p != NULL && p->token_id != NULL)
        json_object_set_new(agent, "policy", json_pack("[s]", p->token_id));
    if (info->peer != NULL && info->peer[0] != '\0')
        json_object_set_new(agent, "network", json_pack("{s:s,s:s}", "address", info->peer, "type", "2"));
    return agent;
}

json_t *auth_audit_event(const auth_principal_t *p, const auth_audit_info_t *info)
{
    char now[40], action[2] = {info->action, '\0'};
    util_time_format_now(now, sizeof(now));
    const char *outcome = info->status >= 500 ? "8" : info->status >= 400 ? "4" : "0";
    json_t *event = json_pack("{s:s,s:o,s:[o],s:s,s:s,s:s}", "resourceType", "AuditEvent", "type",
                              coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation"), "subtype",
                              coding("http://hl7.org/fhir/restful-interaction", info->subtype, NULL), "action", action, "recorded", now,
                              "outcome", outcome);
    char *desc = info->outcome_text != NULL ? util_asprintf("%d %s: %s", info->status, util_http_reason(info->status), info->outcome_text)
                                            : util_asprintf("%d %s", info->status, util_http_reason(info->status));
    json_object_set_new(event, "outcomeDesc", json_string(desc));
    free(desc);
    json_object_set_new(event, "agent", json_pack("[o]", agent_of(p, info)));
    json_object_set_new(event, "source",
                        json_pack("{s:s,s:{s:s},s:[o]}", "site", auth_audit_settings.site != NULL ? auth_audit_settings.site : "fhirsched",
                                  "observer", "display", "fhirsched", "type",
                                  coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")));
    json_t *entities = json_array(), *entity = json_object();
    if (info->type != NULL) {
        char *what = info->id == NULL ? NULL
                     : info->version != 0 ? util_asprintf("%s/%s/_history/%d", info->type, info->id, info->version)
                                          : util_asprintf("%s/%s", info->type, info->id);
        if (what != NULL)
            json_object_set_new(entity, "what", json_pack("{s:s}", "reference", what));
        free(what);
        json_object_set_new(entity, "type", coding("http://hl7.org/fhir/resource-types", info->type, NULL));
    }
    if (info->query != NULL && info->query[0] != '\0') {
        char *q = base64(info->query);
        json_object_set_new(entity, "query", json_string(q));
        free(q);
    }
    if (info->request_id != NULL)
        json_object_set_new(entity, "detail", json_pack("[{s:s,s:s}]", "type", "request-id", "valueString", info->request_id));
    json_array_append_new(entities, entity);
    if (info->patient != NULL) {
        char *ref = util_asprintf("Patient/%s", info->patient);
        json_array_append_new(entities, json_pack("{s:{s:s},s:o}", "what", "reference", ref, "role",
                                                  coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient")));
        free(ref);
    }
    json_object_set_new(event, "entity", entities);
    return event;
}

/* ---- the per-loop queue ---- */

static const char SQL_APPEND[] =
    "SELECT count(*) FROM jsonb_to_recordset($1::jsonb) AS x(id text, head text, tail text, idx jsonb) "
    "CROSS JOIN LATERAL fhir_write('AuditEvent', x.id, x.head, x.tail, NULL::integer, 'create', x.idx)";

struct st_auth_audit_queue_t {
    h2o_loop_t *loop;
    store_pool_t *pool;
    h2o_timeout_t timeout;
    h2o_timeout_entry_t entry;
    json_t *pending; /* [{id, head, tail, idx}] */
    size_t sending;  /* events in the batch being written (0: none) */
    char *param;
    const char *params[1];
    store_query_t query;
};

static void on_batch_written(store_query_t *query, PGresult *res, const char *err)
{
    auth_audit_queue_t *q = H2O_STRUCT_FROM_MEMBER(auth_audit_queue_t, query, query);
    if (err != NULL)
        LOG_ERROR("%zu AuditEvents could not be written: %s", q->sending, err == store_err_query && res != NULL ? PQresultErrorMessage(res) : err);
    q->sending = 0;
    free(q->param);
    q->param = NULL;
    if (json_array_size(q->pending) != 0)
        auth_audit_queue_flush(q);
}

bool auth_audit_queue_flush(auth_audit_queue_t *q)
{
    if (q->sending != 0)
        return true;
    if (h2o_timeout_is_linked(&q->entry))
        h2o_timeout_unlink(&q->entry);
    if (json_array_size(q->pending) == 0)
        return false;
    q->param = json_dumps(q->pending, JSON_COMPACT);
    q->sending = json_array_size(q->pending);
    json_array_clear(q->pending);
    q->params[0] = q->param;
    q->query = (store_query_t){.sql = SQL_APPEND, .nparams = 1, .params = q->params, .cb = on_batch_written};
    if (store_pool_submit(q->pool, &q->query) != 0) {
        LOG_ERROR("%zu AuditEvents could not be written: the database queue is full", q->sending);
        q->sending = 0;
        free(q->param);
        q->param = NULL;
        return false;
    }
    return true;
}

static void on_batch_timer(h2o_timeout_entry_t *entry)
{
    auth_audit_queue_t *q = H2O_STRUCT_FROM_MEMBER(auth_audit_queue_t, entry, entry);
    auth_audit_queue_flush(q);
}

auth_audit_queue_t *auth_audit_queue_create(h2o_loop_t *loop, store_pool_t *pool)
{
    auth_audit_queue_t *q = util_xcalloc(1, sizeof(*q));
    q->loop = loop;
    q->pool = pool;
    q->pending = json_array();
    h2o_timeout_init(loop, &q->timeout, BATCH_DELAY_MS);
    q->entry.cb = on_batch_timer;
    return q;
}

void auth_audit_queue_push(auth_audit_queue_t *q, json_t *event)
{
    char id[UTIL_UUID_LEN + 1], *head, *tail;
    util_uuid_v4(id);
    fhir_json_compose_for_store(event, "AuditEvent", id, &head, &tail);
    json_array_append_new(q->pending, json_pack("{s:s,s:s,s:s,s:o}", "id", id, "head", head, "tail", tail, "idx",
                                                fhir_search_index("AuditEvent", event)));
    free(head);
    free(tail);
    json_decref(event);
    if (json_array_size(q->pending) >= BATCH_MAX)
        auth_audit_queue_flush(q);
    else if (q->sending == 0 && !h2o_timeout_is_linked(&q->entry))
        h2o_timeout_link(q->loop, &q->timeout, &q->entry);
}

void auth_audit_queue_destroy(auth_audit_queue_t *q)
{
    if (q == NULL)
        return;
    if (json_array_size(q->pending) != 0 || q->sending != 0)
        LOG_ERROR("%zu AuditEvents were not written before shutdown", json_array_size(q->pending) + q->sending);
    if (h2o_timeout_is_linked(&q->entry))
        h2o_timeout_unlink(&q->entry);
    h2o_timeout_dispose(q->loop, &q->timeout);
    json_decref(q->pending);
    free(q->param);
    free(q);
}

/* ---- retention ---- */

static struct {
    h2o_loop_t *loop;
    store_pool_t *pool;
    h2o_timeout_t timeout;
    h2o_timeout_entry_t entry;
    store_query_t query;
    char days[16];
    const char *params[1];
    bool running;
} purge;

static void on_purged(store_query_t *query, PGresult *res, const char *err)
{
    purge.running = false;
    if (purge.pool == NULL)
        return;
    if (err != NULL)
        LOG_ERROR("deleting expired AuditEvents failed: %s", err == store_err_query && res != NULL ? PQresultErrorMessage(res) : err);
    /* a full batch means more are due: go on at once */
    if (err == NULL && strcmp(PQgetvalue(res, 0, 0), PURGE_BATCH) == 0 && store_pool_submit(purge.pool, &purge.query) == 0) {
        purge.running = true;
        return;
    }
    h2o_timeout_link(purge.loop, &purge.timeout, &purge.entry);
}

static void on_purge_timer(h2o_timeout_entry_t *entry)
{
    snprintf(purge.days, sizeof(purge.days), "%u", auth_audit_settings.retention_days);
    purge.params[0] = purge.days;
    purge.query = (store_query_t){.sql = "SELECT audit_purge(now() - make_interval(days => $1::integer), " PURGE_BATCH ")",
                                  .nparams = 1, .params = purge.params, .cb = on_purged};
    purge.running = true;
    if (store_pool_submit(purge.pool, &purge.query) != 0) {
        purge.running = false;
        h2o_timeout_link(purge.loop, &purge.timeout, &purge.entry);
    }
}

void auth_audit_purge_start(h2o_loop_t *loop, store_pool_t *pool)
{
    if (auth_audit_settings.retention_days == 0)
        return;
    purge.loop = loop;
    purge.pool = pool;
    h2o_timeout_init(loop, &purge.timeout, auth_audit_settings.purge_interval_ms);
    purge.entry.cb = on_purge_timer;
    h2o_timeout_link(loop, &purge.timeout, &purge.entry);
}

void auth_audit_purge_stop(void)
{
    if (purge.loop == NULL)
        return;
    if (h2o_timeout_is_linked(&purge.entry))
        h2o_timeout_unlink(&purge.entry);
    purge.pool = NULL; /* a purge still running finishes without rescheduling */
    h2o_timeout_dispose(purge.loop, &purge.timeout);
    purge.loop = NULL;
}

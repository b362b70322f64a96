/*
 * The FHIR REST front: request ids, access log, content negotiation, preconditions and Prefer, then one interaction (or
 * a Bundle) handed to the engine in fhir/, and its result turned back into HTTP.
 */
#include <netdb.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "auth/audit.h"
#include "auth/authz.h"
#include "auth/jwt.h"
#include "auth/keys.h"
#include "fhir/bundle.h"
#include "fhir/capability.h"
#include "fhir/conformance_res.h"
#include "fhir/interaction.h"
#include "fhir/json.h"
#include "fhir/search.h"
#include "fhir/validate.h"
#include "http/http.h"
#include "hl7v2/admin.h"
#include "http/ratelimit.h"
#include "sched/ops.h"
#include "subs/subs.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"
#include "util/uuid.h"

#define MODULE_NAME "http/rest.c"
#define FHIR_PREFIX "/fhir"

/* A request waiting for the keys this long at most before it is answered with what is known. */
#define PARK_MAX_MS 10000
#define PARK_POLL_MS 20

/* Who asks: the verified token (when authorization is on) and what the audit trail records about the request. Shared by
 * the request and the jobs that may outlive it; the last holder frees it. Loop-thread only. */
typedef struct st_http_auth_t {
    unsigned refs;
    bool verified;
    auth_principal_t principal;
    char request_id[64];
    char peer[64];
    const char *operation; /* "$hold"/"$book": its Appointment writes are recorded as that operation */
} http_auth_t;

/* Links a heap context to its request: whichever of "request gone" and "work done" comes second frees it. */
typedef struct st_http_job_t {
    http_req_t *hr; /* NULL once the request is gone */
    http_thread_t *thread;
    http_auth_t *auth;
    fhir_ix_t *ix;
    fhir_bundle_run_t *bundle;
    sched_op_t *op;
    const char *op_name;
    bool metrics; /* /metrics: answered as Prometheus text */
    store_query_t probe; /* /readyz */
    /* parked until the keys are refreshed (unknown kid) */
    h2o_linklist_t parked;
    const char *path;
    size_t path_len;
    unsigned refreshes_seen;
    uint64_t parked_at;
    bool done;
} http_job_t;

static void auth_release(http_auth_t *a)
{
    if (a == NULL || --a->refs != 0)
        return;
    if (a->verified)
        auth_principal_dispose(&a->principal);
    free(a);
}

/* The principal whose rules apply, or NULL when authorization is off. */
static const auth_principal_t *who(const http_auth_t *a)
{
    return a != NULL && a->verified ? &a->principal : NULL;
}

/* ---- per-request bookkeeping ---- */

static void on_req_disposed(void *p)
{
    http_req_t *hr = *(http_req_t **)p;
    auth_release(hr->auth);
    double ms = (double)(util_time_monotonic_ms() - hr->started_ms);
    h2o_req_t *req = hr->req;
    /* The path is logged without its query string: search values can identify patients. */
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    char *method = util_xstrndup(req->method.base, req->method.len), *path = util_xstrndup(req->path.base, path_len);
    if (http_config->log_access)
        util_log_access(hr->request_id, method, path, req->res.status, ms, req->version >= 0x200 ? "HTTP/2" : "HTTP/1.1");
    free(method);
    free(path);
}

static void job_free(http_job_t *job)
{
    auth_release(job->auth);
    free(job);
}

static void on_job_req_disposed(void *p)
{
    http_job_t *job = *(http_job_t **)p;
    job->hr = NULL;
    if (job->done)
        job_free(job);
}

static http_job_t *job_create(http_req_t *hr)
{
    http_job_t *job = util_xcalloc(1, sizeof(*job));
    job->hr = hr;
    job->thread = hr->thread;
    job->auth = hr->auth;
    if (job->auth != NULL)
        ++job->auth->refs;
    http_job_t **slot = h2o_mem_alloc_shared(&hr->req->pool, sizeof(*slot), on_job_req_disposed);
    *slot = job;
    ++job->thread->inflight;
    return job;
}

/* Marks the job's work finished; returns the request to answer, or NULL when the client has gone. */
static http_req_t *job_finish(http_job_t *job)
{
    --job->thread->inflight;
    job->done = true;
    http_req_t *hr = job->hr;
    if (hr == NULL)
        job_free(job);
    return hr;
}

static const char *header_value(h2o_req_t *req, const char *name, size_t *len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

static char *header_dup(h2o_req_t *req, const char *name)
{
    size_t len;
    const char *v = header_value(req, name, &len);
    return v != NULL ? util_xstrndup(v, len) : NULL;
}

/* ---- the audit trail ---- */

static bool is_patient_data(const char *type)
{
    return type == NULL || strcmp(type, "Patient") == 0 || strcmp(type, "Appointment") == 0 ||
           strcmp(type, "AppointmentResponse") == 0 || strcmp(type, "AuditEvent") == 0;
}

/* The restful-interaction code and action of an interaction. */
static void ix_audit_kind(const fhir_ix_request_t *req, auth_audit_info_t *info)
{
    switch (req->kind) {
    case FHIR_IX_READ:
        info->subtype = "read", info->action = 'R';
        break;
    case FHIR_IX_VREAD:
        info->subtype = "vread", info->action = 'R';
        break;
    case FHIR_IX_SEARCH:
        info->subtype = req->type != NULL ? "search-type" : "search-system", info->action = 'E';
        break;
    case FHIR_IX_HISTORY:
        info->subtype = req->id != NULL ? "history-instance" : req->type != NULL ? "history-type" : "history-system", info->action = 'R';
        break;
    case FHIR_IX_CREATE:
    case FHIR_IX_EXISTING:
        info->subtype = "create", info->action = 'C';
        break;
    case FHIR_IX_UPDATE:
    case FHIR_IX_CONDITIONAL_UPDATE:
        info->subtype = "update", info->action = 'U';
        break;
    case FHIR_IX_PATCH:
        info->subtype = "patch", info->action = 'U';
        break;
    case FHIR_IX_DELETE:
    case FHIR_IX_CONDITIONAL_DELETE:
    case FHIR_IX_NOTHING:
        info->subtype = "delete", info->action = 'D';
        break;
    }
}

/* The first Patient an Appointment or AppointmentResponse names (participant.actor or actor), into buf. */
static const char *patient_of(const fhir_ix_t *ix, char *buf, size_t len)
{
    if (ix->req.type == NULL || (strcmp(ix->req.type, "Appointment") != 0 && strcmp(ix->req.type, "AppointmentResponse") != 0))
        return NULL;
    json_t *doc = ix->req.resource != NULL ? json_incref(ix->req.resource)
                  : ix->res.body_kind == FHIR_BODY_RESOURCE && ix->res.body != NULL ? json_loadb(ix->res.body, ix->res.body_len, 0, NULL)
                                                                                     : NULL;
    json_t *actors = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(doc, "participant"), i, p) {
        json_array_append(actors, json_object_get(p, "actor"));
    }
    if (json_object_get(doc, "actor") != NULL)
        json_array_append(actors, json_object_get(doc, "actor"));
    const char *found = NULL;
    json_array_foreach(actors, i, p) {
        const char *ref = json_string_value(json_object_get(p, "reference"));
        if (found == NULL && ref != NULL && strncmp(ref, "Patient/", 8) == 0 && fhir_id_is_valid(ref + 8, strlen(ref + 8))) {
            snprintf(buf, len, "%s", ref + 8);
            found = buf;
        }
    }
    json_decref(actors);
    json_decref(doc);
    return found;
}

static auth_audit_info_t ix_audit_info(const fhir_ix_t *ix, const http_auth_t *a, char *patient_buf, size_t patient_len)
{
    auth_audit_info_t info = {.type = ix->req.type, .id = ix->res.id != NULL ? ix->res.id : ix->req.id, .version = ix->res.version,
                              .status = ix->res.status != 0 ? ix->res.status : 500};
    ix_audit_kind(&ix->req, &info);
    if (ix->req.kind == FHIR_IX_SEARCH || (ix->req.kind == FHIR_IX_HISTORY && ix->req.id == NULL))
        info.query = ix->req.query;
    if (info.status >= 400 && ix->res.oo.count != 0)
        info.outcome_text = ix->res.oo.issues[0].diagnostics;
    const auth_principal_t *p = who(a);
    if (ix->req.type != NULL && strcmp(ix->req.type, "Patient") == 0 && info.id != NULL)
        info.patient = info.id;
    else if ((info.patient = patient_of(ix, patient_buf, patient_len)) == NULL && p != NULL)
        info.patient = p->patient;
    if (a != NULL && a->operation != NULL && ix->req.type != NULL && strcmp(ix->req.type, "Appointment") == 0)
        info.subtype = "operation";
    return info;
}

/* Queues an AuditEvent for what happened (recorded shortly after the answer, in a batch). */
static void audit_push(http_thread_t *thread, const http_auth_t *a, auth_audit_info_t *info)
{
    if (!auth_audit_settings.enabled || thread->audit == NULL)
        return;
    if (a != NULL) {
        info->request_id = a->request_id;
        info->peer = a->peer;
    }
    auth_audit_queue_push(thread->audit, auth_audit_event(who(a), info));
}

/* fhir_ix_t.audit: the AuditEvent a write commits in its own transaction. */
static json_t *audit_for_write(const fhir_ix_t *ix, void *ctx)
{
    const http_auth_t *a = ctx;
    char patient[80];
    auth_audit_info_t info = ix_audit_info(ix, a, patient, sizeof(patient));
    info.request_id = a->request_id;
    info.peer = a->peer;
    return auth_audit_event(who(a), &info);
}

/* Reads of patient data and every failure are recorded here; successful writes recorded theirs in their transaction. */
static void audit_ix(http_thread_t *thread, const http_auth_t *a, const fhir_ix_t *ix)
{
    bool write = fhir_ix_writes(&ix->req) || ix->req.kind == FHIR_IX_EXISTING || ix->req.kind == FHIR_IX_NOTHING;
    int status = ix->res.status != 0 ? ix->res.status : 500;
    if (write ? ix->_audited && status < 400 : status < 400 && !is_patient_data(ix->req.type))
        return;
    char patient[80];
    auth_audit_info_t info = ix_audit_info(ix, a, patient, sizeof(patient));
    audit_push(thread, a, &info);
}

/* A request refused before it reached the engine (401, 403, 405, 429): described by the router, like any interaction. */
static void audit_refusal(http_req_t *hr, const char *path, size_t path_len, int status, const char *why)
{
    char *method = util_xstrndup(hr->req->method.base, hr->req->method.len);
    fhir_ix_request_t req = {0};
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    auth_audit_info_t info = {.status = status, .outcome_text = why, .subtype = "operation", .action = 'E'};
    if (fhir_ix_route(&req, method, path, path_len, NULL, &oo) == 0) {
        ix_audit_kind(&req, &info);
        info.type = req.type;
        info.id = req.id;
    } else if (req.type != NULL) {
        /* refused by the router itself (PUT on an AuditEvent, Appointment/$book): the method says what was tried */
        info.type = req.type;
        info.id = req.id;
        static const char *const methods[][3] = {{"PUT", "update", "U"}, {"PATCH", "patch", "U"}, {"DELETE", "delete", "D"}};
        for (size_t i = 0; i != sizeof(methods) / sizeof(methods[0]); ++i)
            if (strcmp(method, methods[i][0]) == 0)
                info.subtype = methods[i][1], info.action = methods[i][2][0];
    }
    audit_push(hr->thread, hr->auth, &info);
    fhir_outcome_dispose(&oo);
    free(req.id);
    free(req.query);
    free(method);
}

/* ---- authentication ---- */

static atomic_uint keys_refreshes; /* key refreshes finished so far */
static atomic_bool keys_refreshing;

static void *refresh_keys_main(void *arg)
{
    char err[512];
    int ret = auth_keys_refresh(err, sizeof(err));
    if (ret < 0)
        LOG_WARN("auth: the identity provider's keys could not be refreshed: %s", err);
    else if (ret > 0)
        LOG_INFO("auth: the identity provider's keys were refreshed");
    atomic_store(&keys_refreshing, false);
    atomic_fetch_add(&keys_refreshes, 1);
    return NULL;
}

/* Blocking file/HTTP reads stay off the event loops: one refresh at a time runs on its own short-lived thread. */
static void refresh_keys_start(void)
{
    bool idle = false;
    if (!atomic_compare_exchange_strong(&keys_refreshing, &idle, true))
        return;
    pthread_t tid;
    if (pthread_create(&tid, NULL, refresh_keys_main, NULL) == 0) {
        pthread_detach(tid);
    } else {
        atomic_store(&keys_refreshing, false);
        atomic_fetch_add(&keys_refreshes, 1);
    }
}

static void refuse(http_req_t *hr, const char *path, size_t path_len, int status, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* 401/403 with WWW-Authenticate (RFC 6750), an OperationOutcome, and a trace in the audit trail. */
static void refuse(http_req_t *hr, const char *path, size_t path_len, int status, const char *error, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *why = util_vasprintf(fmt, args);
    va_end(args);
    /* a quoted-string cannot hold a bare '"' or '\\' (RFC 7235) */
    char *description = util_xstrdup(why);
    for (char *c = description; *c != '\0'; ++c)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            *c = '\'';
    char *challenge = error != NULL ? util_asprintf("Bearer realm=\"fhirsched\", error=\"%s\", error_description=\"%s\"", error, description)
                                    : util_xstrdup("Bearer realm=\"fhirsched\"");
    free(description);
    if (status == 401 || error != NULL)
        http_add_header(hr, "www-authenticate", challenge);
    free(challenge);
    http_send_error(hr, status, status == 401 ? "login" : "forbidden", "%s", why);
    audit_refusal(hr, path, path_len, status, why);
    free(why);
}

static int serve_authorized(http_req_t *hr, const char *path, size_t path_len, bool may_refresh);

static void resume_parked(http_job_t *job)
{
    h2o_linklist_unlink(&job->parked);
    const char *path = job->path;
    size_t path_len = job->path_len;
    http_req_t *hr = job_finish(job);
    if (hr != NULL)
        serve_authorized(hr, path, path_len, false);
}

static void on_park_timer(h2o_timeout_entry_t *entry)
{
    http_thread_t *thread = H2O_STRUCT_FROM_MEMBER(http_thread_t, park_entry, entry);
    unsigned done = atomic_load(&keys_refreshes);
    uint64_t now = util_time_monotonic_ms();
    h2o_linklist_t *node = thread->parked.next;
    while (node != &thread->parked) {
        http_job_t *job = H2O_STRUCT_FROM_MEMBER(http_job_t, parked, node);
        node = node->next;
        if (job->refreshes_seen != done || now - job->parked_at > PARK_MAX_MS)
            resume_parked(job);
    }
    if (!h2o_linklist_is_empty(&thread->parked))
        h2o_timeout_link(thread->loop, &thread->park_timeout, &thread->park_entry);
}

/* A token signed with a key we do not know yet: the IdP may have rotated its keys. Wait for one refresh. */
static void park(http_req_t *hr, const char *path, size_t path_len)
{
    http_job_t *job = job_create(hr);
    job->path = path;
    job->path_len = path_len;
    job->refreshes_seen = atomic_load(&keys_refreshes);
    job->parked_at = util_time_monotonic_ms();
    h2o_linklist_insert(&hr->thread->parked, &job->parked);
    if (!h2o_timeout_is_linked(&hr->thread->park_entry))
        h2o_timeout_link(hr->thread->loop, &hr->thread->park_timeout, &hr->thread->park_entry);
    refresh_keys_start();
}

/* Verifies the bearer token into hr->auth: 0 when verified, 1 when answered (401) or parked. */
static int authenticate(http_req_t *hr, const char *path, size_t path_len, bool may_refresh)
{
    size_t len;
    const char *h = header_value(hr->req, "authorization", &len);
    if (h == NULL || len == 0) {
        refuse(hr, path, path_len, 401, NULL, "this request needs a bearer token (Authorization: Bearer <token>)");
        return 1;
    }
    const char *token = h + 7;
    size_t tlen = len >= 7 ? len - 7 : 0;
    while (tlen > 0 && *token == ' ')
        ++token, --tlen;
    while (tlen > 0 && token[tlen - 1] == ' ')
        --tlen;
    if (len < 7 || strncasecmp(h, "Bearer ", 7) != 0 || tlen == 0) {
        refuse(hr, path, path_len, 401, "invalid_token", "the Authorization header must carry a bearer token (Bearer <token>)");
        return 1;
    }
    len = tlen;
    auth_keyset_t *keys = auth_keys_current();
    auth_jwt_expect_t expect = {http_config->auth_issuer, http_config->auth_audience, http_config->auth_clock_skew_seconds, time(NULL)};
    json_t *claims = NULL;
    char kid[80];
    auth_jwt_status_t status = auth_jwt_verify(token, len, keys, &expect, &claims, kid, sizeof(kid));
    auth_keyset_release(keys);
    if (status == AUTH_JWT_UNKNOWN_KEY && may_refresh) {
        park(hr, path, path_len);
        return 1;
    }
    if (status != AUTH_JWT_OK) {
        refuse(hr, path, path_len, 401, "invalid_token", "%s", auth_jwt_status_text(status));
        return 1;
    }
    auth_principal_init(&hr->auth->principal, claims);
    hr->auth->verified = true;
    json_decref(claims);
    return 0;
}

/* Each client (the token's client_id, azp or sub) has its own bucket; without authorization there is no client to count. */
static bool rate_limited(http_req_t *hr, const char *path, size_t path_len)
{
    const auth_principal_t *p = who(hr->auth);
    if (p == NULL || p->client_id == NULL)
        return false;
    char key[160];
    snprintf(key, sizeof(key), "client:%s", p->client_id);
    unsigned retry;
    if (http_ratelimit_take(key, util_time_monotonic_ms(), &retry))
        return false;
    char value[16];
    snprintf(value, sizeof(value), "%u", retry);
    http_add_header(hr, "retry-after", value);
    http_send_error(hr, 429, "throttled", "too many requests from this client; retry in %u s", retry);
    audit_refusal(hr, path, path_len, 429, "rate limit");
    return true;
}

static http_auth_t *auth_create(http_req_t *hr)
{
    http_auth_t *a = util_xcalloc(1, sizeof(*a));
    a->refs = 1;
    snprintf(a->request_id, sizeof(a->request_id), "%s", hr->request_id);
    struct sockaddr_storage sa;
    socklen_t salen = hr->req->conn->callbacks->get_peername(hr->req->conn, (struct sockaddr *)&sa);
    if (salen == 0 || getnameinfo((struct sockaddr *)&sa, salen, a->peer, sizeof(a->peer), NULL, 0, NI_NUMERICHOST) != 0)
        a->peer[0] = '\0';
    return a;
}

/* /.well-known/smart-configuration (SMART App Launch 2.x): how to get a token for this server. */
static void serve_smart_configuration(http_req_t *hr)
{
    if (!http_config->auth_enabled) {
        http_send_error(hr, 404, "not-found", "authorization is switched off on this server (auth.enabled: false)");
        return;
    }
    json_t *conf = json_pack("{s:s,s:[s,s],s:[s,s,s],s:[s],s:[s],s:[s,s,s,s,s,s,s,s,s,s,s,s,s,s]}", "issuer", http_config->auth_issuer,
                             "grant_types_supported", "authorization_code", "client_credentials",
                             "token_endpoint_auth_methods_supported", "client_secret_basic", "private_key_jwt", "client_secret_post",
                             "response_types_supported", "code", "code_challenge_methods_supported", "S256", "scopes_supported",
                             "openid", "fhirUser", "launch/patient", "offline_access", "patient/*.read", "patient/*.write",
                             "patient/*.cruds", "user/*.read", "user/*.write", "user/*.cruds", "system/*.read", "system/*.write",
                             "system/*.cruds", "patient/Appointment.rs");
    if (http_config->auth_jwks_url != NULL)
        json_object_set_new(conf, "jwks_uri", json_string(http_config->auth_jwks_url));
    if (http_config->auth_authorize_url != NULL)
        json_object_set_new(conf, "authorization_endpoint", json_string(http_config->auth_authorize_url));
    if (http_config->auth_token_url != NULL)
        json_object_set_new(conf, "token_endpoint", json_string(http_config->auth_token_url));
    json_object_set_new(conf, "capabilities",
                        json_pack("[s,s,s,s,s,s,s,s,s]", "launch-standalone", "client-public", "client-confidential-symmetric",
                                  "client-confidential-asymmetric", "context-standalone-patient", "permission-patient",
                                  "permission-user", "permission-v1", "permission-v2"));
    size_t len;
    char *body = fhir_json_dump(conf, hr->pretty, &len);
    json_decref(conf);
    http_add_header(hr, "cache-control", "public, max-age=3600");
    hr->req->res.status = 200;
    hr->req->res.reason = "OK";
    h2o_add_header(&hr->req->pool, &hr->req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_send_inline(hr->req, body, len);
    free(body);
}

/* ---- content negotiation ---- */

typedef enum { FORMAT_JSON, FORMAT_XML, FORMAT_OTHER } wire_format_t;

static wire_format_t format_of(const char *mime, size_t len)
{
    while (len > 0 && (*mime == ' ' || *mime == '\t'))
        ++mime, --len;
    const char *semi = memchr(mime, ';', len);
    if (semi != NULL)
        len = (size_t)(semi - mime);
    while (len > 0 && (mime[len - 1] == ' ' || mime[len - 1] == '\t'))
        --len;
    static const char *const json[] = {"application/fhir+json", "application/json", "json", "application/json+fhir", "*/*",
                                       "application/*", "text/json"};
    static const char *const xml[] = {"application/fhir+xml", "application/xml", "xml", "text/xml", "application/xml+fhir"};
    for (size_t i = 0; i != sizeof(json) / sizeof(json[0]); ++i)
        if (len == strlen(json[i]) && strncasecmp(mime, json[i], len) == 0)
            return FORMAT_JSON;
    for (size_t i = 0; i != sizeof(xml) / sizeof(xml[0]); ++i)
        if (len == strlen(xml[i]) && strncasecmp(mime, xml[i], len) == 0)
            return FORMAT_XML;
    return FORMAT_OTHER;
}

/* The value of a query parameter (decoded, caller frees) or NULL. */
static char *query_param(h2o_req_t *req, const char *wanted)
{
    if (req->query_at == SIZE_MAX)
        return NULL;
    const char *cursor = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    char *name, *value, *found = NULL;
    while (found == NULL && fhir_query_next(&cursor, end, &name, &value) > 0) {
        if (strcmp(name, wanted) == 0)
            found = value;
        else
            free(value);
        free(name);
    }
    return found;
}

/* Decides the response format from _format or Accept; sends 406 and returns -1 when we cannot produce it. */
static int negotiate(http_req_t *hr)
{
    h2o_req_t *req = hr->req;
    char *format = query_param(req, "_format");
    if (format != NULL) {
        wire_format_t f = format_of(format, strlen(format));
        free(format);
        if (f != FORMAT_JSON) {
            http_send_error(hr, 406, "not-supported", "_format: only JSON (application/fhir+json) is produced by this server");
            return -1;
        }
        return 0;
    }
    size_t len;
    const char *accept = header_value(req, "accept", &len);
    if (accept == NULL || len == 0)
        return 0;
    /* Any acceptable JSON-ish entry in the list will do (browsers send text/html and a wildcard). */
    const char *p = accept, *end = accept + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        if (comma == NULL)
            comma = end;
        const char *q = memchr(p, ';', (size_t)(comma - p));
        bool refused = q != NULL && memmem(q, (size_t)(comma - q), "q=0", 3) != NULL &&
                       memmem(q, (size_t)(comma - q), "q=0.", 4) == NULL;
        if (!refused && format_of(p, (size_t)(comma - p)) == FORMAT_JSON)
            return 0;
        p = comma + 1;
    }
    http_send_error(hr, 406, "not-supported", "Accept: this server produces application/fhir+json (XML is not supported yet)");
    return -1;
}

/* Checks the request body's Content-Type; sends 415 and returns -1 when it is not one we read. */
static int check_content_type(http_req_t *hr, bool patch)
{
    size_t len;
    const char *ct = header_value(hr->req, "content-type", &len);
    if (ct == NULL)
        return 0; /* lenient: an untyped body is read as JSON */
    const char *semi = memchr(ct, ';', len);
    if (semi != NULL) {
        /* charset, when given, must be UTF-8 */
        const char *cs = memmem(semi, (size_t)(ct + len - semi), "charset=", 8);
        if (cs != NULL) {
            cs += 8;
            size_t cslen = (size_t)(ct + len - cs);
            if (cslen > 0 && *cs == '"')
                ++cs, cslen -= 2;
            if (!(cslen >= 5 && strncasecmp(cs, "utf-8", 5) == 0) && !(cslen >= 4 && strncasecmp(cs, "utf8", 4) == 0)) {
                http_send_error(hr, 415, "not-supported", "request bodies must be UTF-8");
                return -1;
            }
        }
    }
    size_t mlen = semi != NULL ? (size_t)(semi - ct) : len;
    if (patch) {
        if (mlen == strlen("application/json-patch+json") && strncasecmp(ct, "application/json-patch+json", mlen) == 0)
            return 0;
        http_send_error(hr, 415, "not-supported", "PATCH takes a JSON Patch document (application/json-patch+json)");
        return -1;
    }
    if (format_of(ct, mlen) == FORMAT_JSON && !(mlen == 3 && strncmp(ct, "*/*", 3) == 0))
        return 0;
    http_send_error(hr, 415, "not-supported", "request bodies must be application/fhir+json");
    return -1;
}

static void parse_prefer(http_req_t *hr)
{
    size_t len;
    const char *prefer = header_value(hr->req, "prefer", &len);
    hr->prefer = FHIR_PREFER_REPRESENTATION;
    if (prefer == NULL)
        return;
    if (memmem(prefer, len, "return=minimal", 14) != NULL)
        hr->prefer = FHIR_PREFER_MINIMAL;
    else if (memmem(prefer, len, "return=OperationOutcome", 23) != NULL)
        hr->prefer = FHIR_PREFER_OUTCOME;
}

static bool prefer_strict(h2o_req_t *req)
{
    size_t len;
    const char *prefer = header_value(req, "prefer", &len);
    return prefer != NULL && memmem(prefer, len, "handling=strict", 15) != NULL;
}

/* ---- answering ---- */

static void add_resource_headers(http_req_t *hr, const fhir_ix_t *ix)
{
    char buf[64];
    if (ix->res.version == 0)
        return;
    snprintf(buf, sizeof(buf), "W/\"%d\"", ix->res.version);
    http_add_header(hr, "etag", buf);
    time_t t;
    if (ix->res.last_updated[0] != '\0' && util_time_parse_instant(ix->res.last_updated, &t) == 0) {
        util_time_format_http(t, buf, sizeof(buf));
        http_add_header(hr, "last-modified", buf);
    }
}

static void send_ix_result(http_req_t *hr, fhir_ix_t *ix)
{
    fhir_ix_result_t *res = &ix->res;
    if (res->status >= 400 || res->status == 0) {
        if (res->status == 410 || res->status == 404)
            add_resource_headers(hr, ix);
        http_send_outcome(hr, res->status != 0 ? res->status : 500, &res->oo);
        return;
    }
    add_resource_headers(hr, ix);
    bool write = ix->req.kind == FHIR_IX_CREATE || ix->req.kind == FHIR_IX_UPDATE || ix->req.kind == FHIR_IX_PATCH ||
                 ix->req.kind == FHIR_IX_CONDITIONAL_UPDATE || ix->req.kind == FHIR_IX_EXISTING;
    if (write && res->id != NULL && res->version != 0) {
        char *loc = fhir_ix_location(ix->req.type, res->id, res->version);
        http_add_header(hr, "location", loc);
        if (res->status != 201)
            http_add_header(hr, "content-location", loc);
        free(loc);
    }
    if (res->body_kind == FHIR_BODY_RESOURCE && write) {
        if (hr->prefer == FHIR_PREFER_MINIMAL) {
            http_send_json(hr, res->status, NULL, 0);
            return;
        }
        if (hr->prefer == FHIR_PREFER_OUTCOME) {
            fhir_outcome_add(&res->oo, FHIR_SEV_INFORMATION, "informational", NULL, "%s %s/%s version %d",
                             res->status == 201 ? "created" : "updated", ix->req.type, res->id, res->version);
            http_send_outcome(hr, res->status, &res->oo);
            return;
        }
    }
    if (res->body_kind == FHIR_BODY_NONE || res->body == NULL) {
        if (res->status == 304 || hr->prefer == FHIR_PREFER_MINIMAL)
            http_send_json(hr, res->status, NULL, 0);
        else
            http_send_outcome(hr, res->status, &res->oo);
        return;
    }
    http_send_json(hr, res->status, res->body, res->body_len);
}

static void on_ix_done(fhir_ix_t *ix)
{
    http_job_t *job = ix->data;
    audit_ix(job->thread, job->auth, ix);
    http_req_t *hr = job_finish(job);
    if (hr != NULL)
        send_ix_result(hr, ix);
    fhir_ix_destroy(ix);
}

static void on_bundle_done(fhir_bundle_run_t *run)
{
    http_job_t *job = run->data;
    /* one event for the Bundle; its writes recorded theirs in their transactions, its reads of patient data here */
    auth_audit_info_t info = {.subtype = run->transaction ? "transaction" : "batch", .action = 'E', .status = run->status != 0 ? run->status : 500};
    if (info.status >= 400 && run->oo.count != 0)
        info.outcome_text = run->oo.issues[0].diagnostics;
    audit_push(job->thread, job->auth, &info);
    for (size_t i = 0; i != run->count && run->status < 400; ++i) {
        fhir_ix_t *entry = run->entries[i];
        if (entry != NULL)
            audit_ix(job->thread, job->auth, entry);
    }
    http_req_t *hr = job_finish(job);
    if (hr != NULL) {
        if (run->body != NULL)
            http_send_json(hr, run->status, run->body, run->body_len);
        else
            http_send_outcome(hr, run->status != 0 ? run->status : 500, &run->oo);
    }
    fhir_bundle_destroy(run);
}

/* Whether the request body is declared as an HTML form (parameters may follow the media type). */
static bool is_form_content(h2o_req_t *req)
{
    size_t len;
    const char *ct = header_value(req, "content-type", &len);
    static const char form[] = "application/x-www-form-urlencoded";
    return ct != NULL && len >= sizeof(form) - 1 && strncasecmp(ct, form, sizeof(form) - 1) == 0 &&
           (len == sizeof(form) - 1 || ct[sizeof(form) - 1] == ';' || ct[sizeof(form) - 1] == ' ');
}

/* The URL's query string with a form body's parameters joined on (in a form body '+' is a space); caller frees. */
static char *query_with_form(const char *query, const h2o_req_t *req)
{
    util_buf_t merged;
    util_buf_init(&merged);
    if (query != NULL && query[0] != '\0')
        util_buf_printf(&merged, "%s&", query);
    for (size_t i = 0; i != req->entity.len; ++i) {
        if (req->entity.base[i] == '+')
            util_buf_puts(&merged, "%20");
        else
            util_buf_append(&merged, req->entity.base + i, 1);
    }
    char *out = util_xstrndup(merged.base != NULL ? merged.base : "", merged.len);
    util_buf_dispose(&merged);
    return out;
}

static void on_op_done(sched_op_t *op)
{
    http_job_t *job = sched_op_data(op);
    /* a successful $hold/$book is recorded by the Appointment write it committed (subtype operation) */
    auth_audit_info_t info = {.subtype = "operation", .action = 'E', .type = "Appointment", .status = sched_op_status(op)};
    const auth_principal_t *p = who(job->auth);
    if (p != NULL)
        info.patient = p->patient;
    info.query = job->op_name;
    if (info.status >= 400 && sched_op_outcome(op)->count != 0)
        info.outcome_text = sched_op_outcome(op)->issues[0].diagnostics;
    if (info.status >= 400 || strcmp(job->op_name, "$find") == 0)
        audit_push(job->thread, job->auth, &info);
    http_req_t *hr = job_finish(job);
    if (hr != NULL) {
        int status = sched_op_status(op);
        size_t len;
        const char *body = sched_op_body(op, &len);
        int64_t expires = sched_op_expires(op);
        if (expires != 0) {
            char date[64];
            util_time_format_http((time_t)expires, date, sizeof(date));
            http_add_header(hr, "expires", date);
        }
        if (body != NULL)
            http_send_json(hr, status, body, len);
        else
            http_send_outcome(hr, status != 0 ? status : 500, sched_op_outcome(op));
    }
    sched_op_destroy(op);
}

/* ---- endpoints ---- */

/* Appointment/$find (GET or POST), $hold and $book (POST): Parameters in the body, or query parameters. */
static int serve_operation(http_req_t *hr, const char *method, sched_op_kind_t kind, const char *query)
{
    h2o_req_t *req = hr->req;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (!(strcmp(method, "POST") == 0 || (get && kind == SCHED_OP_FIND))) {
        http_send_error(hr, 405, "not-supported", kind == SCHED_OP_FIND ? "$find takes GET or POST" : "this operation changes state: use POST");
        return 0;
    }
    sched_op_t *op = sched_op_create(kind);
    json_t *params = NULL;
    char *merged = NULL;
    if (!get && req->entity.len != 0) {
        if (is_form_content(req)) {
            merged = query_with_form(query, req);
        } else if (check_content_type(hr, false) != 0) {
            sched_op_destroy(op);
            return 0;
        } else {
            fhir_outcome_t oo;
            fhir_outcome_init(&oo);
            if (fhir_json_parse(req->entity.base, req->entity.len, &params, &oo) != 0) {
                http_send_outcome(hr, 400, &oo);
                fhir_outcome_dispose(&oo);
                sched_op_destroy(op);
                return 0;
            }
            fhir_outcome_dispose(&oo);
        }
    }
    int ret = sched_op_parse(op, merged != NULL ? merged : query, params);
    json_decref(params);
    free(merged);
    if (ret != 0) {
        http_send_outcome(hr, 400, sched_op_outcome(op));
        sched_op_destroy(op);
        return 0;
    }
    static const char *const names[] = {"$find", "$hold", "$book"};
    const auth_principal_t *p = who(hr->auth);
    if (p != NULL) {
        /* $find reads availability; $hold and $book create and change Appointments */
        fhir_outcome_t oo;
        fhir_outcome_init(&oo);
        bool scope_short = false;
        /* availability is no patient data: any role may ask, within the token's scopes */
        int appointment = fhir_resource_type_index("Appointment", strlen("Appointment")), refused = 0;
        if (kind != SCHED_OP_FIND)
            refused = auth_check(p, "Appointment", AUTH_PERM_C | AUTH_PERM_U, &oo, &scope_short);
        else if (!(p->scope_perms[appointment] & AUTH_PERM_READ))
            refused = auth_check(p, "Appointment", AUTH_PERM_R, &oo, &scope_short);
        else if (p->has_role_claim && p->roles == 0)
            refused = fhir_outcome_fail(&oo, 403, "forbidden", NULL, "the token names no clinic role this server knows");
        if (refused == 0 && sched_op_overrides_rules(op) && !auth_may_override_rules(p)) {
            refused = fhir_outcome_fail(&oo, 403, "forbidden", NULL, "override-rules is for clinic and system administrators");
        }
        if (refused != 0) {
            char path[32];
            snprintf(path, sizeof(path), "Appointment/%s", names[kind]);
            refuse(hr, path, strlen(path), 403, scope_short ? "insufficient_scope" : NULL, "%s", oo.issues[0].diagnostics);
            fhir_outcome_dispose(&oo);
            sched_op_destroy(op);
            return 0;
        }
        fhir_outcome_dispose(&oo);
    }
    hr->auth->operation = kind == SCHED_OP_FIND ? NULL : names[kind];
    sched_op_set_guard(op, p != NULL ? &p->access : NULL, auth_audit_settings.enabled ? audit_for_write : NULL, hr->auth);
    http_job_t *job = job_create(hr);
    job->op = op;
    job->op_name = names[kind];
    sched_op_run(op, hr->thread->pool, on_op_done, job);
    return 0;
}

static void on_ready_probe(store_query_t *q, PGresult *res, const char *err)
{
    http_job_t *job = H2O_STRUCT_FROM_MEMBER(http_job_t, probe, q);
    http_req_t *hr = job_finish(job);
    if (hr == NULL)
        return;
    if (err != NULL) {
        http_send_error(hr, 503, "transient", "database unavailable");
    } else if (atoi(PQgetvalue(res, 0, 0)) != store_migrations_known()) {
        http_send_error(hr, 503, "transient", "database schema is at version %s, this server needs %d", PQgetvalue(res, 0, 0),
                        store_migrations_known());
    } else {
        fhir_outcome_t oo;
        fhir_outcome_init(&oo);
        fhir_outcome_add(&oo, FHIR_SEV_INFORMATION, "informational", NULL, "ready");
        http_send_outcome(hr, 200, &oo);
        fhir_outcome_dispose(&oo);
    }
}

static int serve_readyz(http_req_t *hr)
{
    http_job_t *job = job_create(hr);
    job->probe = (store_query_t){.stmt_name = STORE_STMT_SCHEMA_VERSION, .cb = on_ready_probe};
    if (store_pool_submit(hr->thread->pool, &job->probe) != 0) {
        job_finish(job);
        http_send_error(hr, 503, "transient", "database queue is full");
    }
    return 0;
}

/* POST /fhir: batch or transaction. */
static int serve_bundle(http_req_t *hr)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    json_t *bundle;
    if (fhir_json_parse(hr->req->entity.base, hr->req->entity.len, &bundle, &oo) != 0) {
        http_send_outcome(hr, 400, &oo);
        fhir_outcome_dispose(&oo);
        return 0;
    }
    fhir_bundle_run_t *run = fhir_bundle_prepare(bundle, hr->prefer, &oo);
    json_decref(bundle);
    if (run == NULL) {
        http_send_outcome(hr, oo.status != 0 ? oo.status : 400, &oo);
        fhir_outcome_dispose(&oo);
        return 0;
    }
    fhir_outcome_dispose(&oo);
    /* each entry is checked as if it came alone: a refused entry is a 403 entry of a batch, or fails the transaction */
    const auth_principal_t *p = who(hr->auth);
    for (size_t i = 0; i != run->count; ++i) {
        fhir_ix_t *ix = run->entries[i];
        if (ix == NULL)
            continue;
        bool scope_short = false;
        fhir_outcome_t refused;
        fhir_outcome_init(&refused);
        if (p != NULL && auth_check_interaction(p, &ix->req, &refused, &scope_short) != 0) {
            char where[64];
            snprintf(where, sizeof(where), "Bundle.entry[%zu]", i);
            if (run->transaction) {
                refuse(hr, "", 0, 403, scope_short ? "insufficient_scope" : NULL, "%s: %s", where, refused.issues[0].diagnostics);
                fhir_outcome_dispose(&refused);
                fhir_bundle_destroy(run);
                return 0;
            }
            ix->res.status = 403;
            fhir_outcome_add(&ix->res.oo, FHIR_SEV_ERROR, "forbidden", NULL, "%s", refused.issues[0].diagnostics);
            audit_ix(hr->thread, hr->auth, ix);
            fhir_outcome_dispose(&run->entry_errors[i]);
            run->entry_errors[i] = refused;
            fhir_ix_destroy(ix);
            run->entries[i] = NULL;
            continue;
        }
        fhir_outcome_dispose(&refused);
        ix->access = p != NULL ? &p->access : NULL;
        ix->audit = auth_audit_settings.enabled ? audit_for_write : NULL;
        ix->audit_ctx = hr->auth;
    }
    http_job_t *job = job_create(hr);
    run->data = job;
    fhir_bundle_execute(run, hr->thread->pool, on_bundle_done);
    return 0;
}

/* Reads headers and body into the interaction; sends the error and returns -1 when they are unusable. */
static int fill_request(http_req_t *hr, fhir_ix_t *ix)
{
    h2o_req_t *req = hr->req;
    size_t len;
    const char *v;
    if ((v = header_value(req, "if-match", &len)) != NULL && (ix->req.if_match = fhir_etag_version(v, len)) <= 0) {
        http_send_error(hr, 400, "value", "If-Match must be a version ETag such as W/\"3\"");
        return -1;
    }
    if ((v = header_value(req, "if-none-match", &len)) != NULL && (ix->req.if_none_match = fhir_etag_version(v, len)) < -1) {
        http_send_error(hr, 400, "value", "If-None-Match must be a version ETag such as W/\"3\" or *");
        return -1;
    }
    if ((v = header_value(req, "if-modified-since", &len)) != NULL &&
        util_time_parse_http(v, len, &ix->req.if_modified_since) != 0) {
        http_send_error(hr, 400, "value", "If-Modified-Since must be an HTTP date");
        return -1;
    }
    if (ix->req.kind == FHIR_IX_CREATE)
        ix->req.if_none_exist = header_dup(req, "if-none-exist");
    bool needs_body = ix->req.kind == FHIR_IX_CREATE || ix->req.kind == FHIR_IX_UPDATE || ix->req.kind == FHIR_IX_PATCH ||
                      ix->req.kind == FHIR_IX_CONDITIONAL_UPDATE;
    if (!needs_body)
        return 0;
    if (req->entity.base == NULL || req->entity.len == 0) {
        http_send_error(hr, 400, "required", "this interaction needs a request body");
        return -1;
    }
    if (check_content_type(hr, ix->req.kind == FHIR_IX_PATCH) != 0)
        return -1;
    json_t *body;
    if (fhir_json_parse(req->entity.base, req->entity.len, &body, &ix->res.oo) != 0) {
        http_send_outcome(hr, 400, &ix->res.oo);
        return -1;
    }
    if (ix->req.kind == FHIR_IX_PATCH)
        ix->req.patch = body;
    else
        ix->req.resource = body;
    return 0;
}


static void on_hl7_admin_done(hl7_admin_t *a, void *data)
{
    http_job_t *job = data;
    http_req_t *hr = job_finish(job);
    if (hr != NULL) {
        size_t len;
        const char *body = hl7_admin_body(a, &len);
        if (hl7_admin_status(a) >= 400) {
            http_send_outcome(hr, hl7_admin_status(a), hl7_admin_outcome(a));
        } else if (job->metrics) {
            hr->req->res.status = 200;
            h2o_add_header(&hr->req->pool, &hr->req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                           H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
            h2o_send_inline(hr->req, body, len);
        } else {
            http_send_json(hr, 200, body, len);
        }
    }
    hl7_admin_destroy(a);
}

/* /metrics: counts only (no patient data), so no authorization, like /readyz. */
static int serve_metrics(http_req_t *hr)
{
    http_job_t *job = job_create(hr);
    job->metrics = true;
    hl7_admin_run(HL7_ADMIN_METRICS, NULL, NULL, hr->thread->pool, on_hl7_admin_done, job);
    return 0;
}

/* The HL7 bridge's operator views: the raw messages carry patient data, so administrators only. */
static void serve_hl7_admin(http_req_t *hr, const char *method, hl7_admin_kind_t kind, const char *query, const char *path,
                            size_t path_len)
{
    bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (hl7_admin_writes(kind) ? !post : !(get || post)) {
        http_send_error(hr, 405, "not-supported", "%.*s takes %s", (int)path_len, path, hl7_admin_writes(kind) ? "POST" : "GET or POST");
        return;
    }
    const auth_principal_t *p = who(hr->auth);
    if (p != NULL && !(p->roles & (AUTH_ROLE_CLINIC_ADMIN | AUTH_ROLE_SYSTEM_ADMIN))) {
        refuse(hr, path, path_len, 403, NULL, "%.*s is for clinic and system administrators", (int)path_len, path);
        return;
    }
    json_t *parameters = NULL;
    if (post && hr->req->entity.len != 0) {
        if (check_content_type(hr, false) != 0)
            return;
        parameters = json_loadb(hr->req->entity.base, hr->req->entity.len, JSON_REJECT_DUPLICATES, NULL);
        const char *rt = json_string_value(json_object_get(parameters, "resourceType"));
        if (rt == NULL || strcmp(rt, "Parameters") != 0) {
            json_decref(parameters);
            http_send_error(hr, 400, "invalid", "the body must be a Parameters resource");
            return;
        }
    }
    http_job_t *job = job_create(hr);
    hl7_admin_run(kind, query, parameters, hr->thread->pool, on_hl7_admin_done, job);
    json_decref(parameters);
}

static int serve_fhir(http_req_t *hr, const char *path, size_t path_len)
{
    h2o_req_t *req = hr->req;
    char *method = util_xstrndup(req->method.base, req->method.len);
    char *query = req->query_at != SIZE_MAX ? util_xstrndup(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1)
                                            : NULL;
    if (path_len == 0 && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        if (strcmp(method, "POST") == 0) {
            if (check_content_type(hr, false) == 0)
                serve_bundle(hr);
        } else {
            http_send_error(hr, 405, "not-supported", "the base URL takes POST (batch or transaction Bundles) and GET (search)");
        }
        goto Exit;
    }
    if (util_str_eq(path, path_len, "metadata")) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            http_send_error(hr, 405, "not-supported", "metadata is read-only");
        } else {
            size_t len;
            const char *cs = fhir_capability_json(&len);
            http_send_json(hr, 200, cs, len);
        }
        goto Exit;
    }
    /* our own profiles, CodeSystems and OperationDefinitions, read-only from the binary */
    const char *conf_body = NULL;
    size_t conf_len = 0;
    fhir_outcome_t conf_oo;
    fhir_outcome_init(&conf_oo);
    bool conf = fhir_conformance_route(method, path, path_len, &conf_body, &conf_len, &conf_oo);
    if (conf && conf_body != NULL)
        http_send_json(hr, 200, conf_body, conf_len);
    else if (conf)
        http_send_outcome(hr, conf_oo.status, &conf_oo);
    fhir_outcome_dispose(&conf_oo);
    if (conf)
        goto Exit;
    int hl7_kind = hl7_admin_kind(path, path_len);
    if (hl7_kind >= 0) {
        serve_hl7_admin(hr, method, (hl7_admin_kind_t)hl7_kind, query, path, path_len);
        goto Exit;
    }
    static const char appt_ops[] = "Appointment/$";
    if (path_len > sizeof(appt_ops) - 1 && memcmp(path, appt_ops, sizeof(appt_ops) - 1) == 0) {
        int kind = sched_op_kind(path + strlen("Appointment/"), path_len - strlen("Appointment/"));
        if (kind >= 0) {
            serve_operation(hr, method, (sched_op_kind_t)kind, query);
            goto Exit;
        }
    }
    fhir_ix_t *ix = fhir_ix_create();
    if (fhir_ix_route(&ix->req, method, path, path_len, query, &ix->res.oo) != 0) {
        if (ix->res.oo.status == 405 && ix->req.type != NULL && strcmp(ix->req.type, "AuditEvent") == 0)
            audit_refusal(hr, path, path_len, 405, "AuditEvents are append-only");
        http_send_outcome(hr, ix->res.oo.status, &ix->res.oo);
        fhir_ix_destroy(ix);
        goto Exit;
    }
    /* POST _search: form parameters in the body join the URL's */
    if (ix->req.kind == FHIR_IX_SEARCH && strcmp(method, "POST") == 0 && req->entity.len != 0) {
        if (!is_form_content(req)) {
            http_send_error(hr, 415, "not-supported", "POST _search takes an application/x-www-form-urlencoded body");
            fhir_ix_destroy(ix);
            goto Exit;
        }
        char *merged = query_with_form(ix->req.query, req);
        free(ix->req.query);
        ix->req.query = merged;
    }
    if (fill_request(hr, ix) != 0) {
        fhir_ix_destroy(ix);
        goto Exit;
    }
    const auth_principal_t *p = who(hr->auth);
    bool scope_short = false;
    if (p != NULL && auth_check_interaction(p, &ix->req, &ix->res.oo, &scope_short) != 0) {
        refuse(hr, path, path_len, 403, scope_short ? "insufficient_scope" : NULL, "%s", ix->res.oo.issues[ix->res.oo.count - 1].diagnostics);
        fhir_ix_destroy(ix);
        goto Exit;
    }
    ix->access = p != NULL ? &p->access : NULL;
    ix->audit = auth_audit_settings.enabled ? audit_for_write : NULL;
    ix->audit_ctx = hr->auth;
    if (ix->req.kind == FHIR_IX_SEARCH && prefer_strict(req)) {
        /* strict handling is checked up front so the engine need not know about HTTP headers */
        fhir_search_t s;
        const char *q = ix->req.query != NULL ? ix->req.query : "";
        if (fhir_search_build(&s, ix->req.type, q, strlen(q), &fhir_search_limits, true, &ix->res.oo) != 0) {
            fhir_search_dispose(&s);
            http_send_outcome(hr, ix->res.oo.status, &ix->res.oo);
            fhir_ix_destroy(ix);
            goto Exit;
        }
        fhir_search_dispose(&s);
    }
    http_job_t *job = job_create(hr);
    job->ix = ix;
    ix->data = job;
    fhir_ix_run(ix, hr->thread->pool, NULL, on_ix_done);
Exit:
    free(method);
    free(query);
    return 0;
}

/* What anyone may read: the CapabilityStatement and the conformance resources built into the binary. */
static bool is_public(const char *path, size_t path_len)
{
    static const char *const prefixes[] = {"StructureDefinition/", "OperationDefinition/", "CodeSystem/", "SearchParameter/",
                                           "ValueSet/"};
    if (util_str_eq(path, path_len, "metadata"))
        return true;
    for (size_t i = 0; i != sizeof(prefixes) / sizeof(prefixes[0]); ++i)
        if (path_len > strlen(prefixes[i]) && memcmp(path, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* Authentication, then the rate limit, then the FHIR request; `may_refresh` is false once the keys were refreshed for it. */
/* ---- the websocket channel of Subscriptions ---- */

static bool ws_may_search(void *ctx, const char *type, const fhir_access_t **access, char *why, size_t whylen)
{
    const auth_principal_t *p = who(ctx);
    *access = NULL;
    if (p == NULL)
        return true;
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    bool scope_short;
    int ret = auth_check(p, type, AUTH_PERM_READ, &oo, &scope_short);
    if (ret != 0)
        snprintf(why, whylen, "%s", oo.count != 0 ? oo.issues[0].diagnostics : "this token may not read these resources");
    fhir_outcome_dispose(&oo);
    *access = &p->access;
    return ret == 0;
}

static void ws_auth_release(void *ctx)
{
    auth_release(ctx);
}

static int serve_websocket(http_req_t *hr)
{
    const auth_principal_t *p = who(hr->auth);
    subs_ws_auth_t auth = {ws_may_search, ws_auth_release, hr->auth, p != NULL ? p->expires : 0};
    if (!subs_ws_is_upgrade(hr->req) || hr->req->version >= 0x200) {
        http_send_error(hr, 400, "not-supported", "%s/websocket takes a websocket upgrade (GET with Upgrade: websocket, over HTTP/1.1)",
                        FHIR_PREFIX);
        return 0;
    }
    ++hr->auth->refs;
    if (subs_ws_accept(hr->req, hr->thread->pool, &auth) != 0) {
        auth_release(hr->auth);
        http_send_error(hr, 400, "not-supported", "the websocket upgrade failed");
    }
    return 0;
}

static int serve_authorized(http_req_t *hr, const char *path, size_t path_len, bool may_refresh)
{
    if (is_public(path, path_len))
        return serve_fhir(hr, path, path_len);
    if (http_config->auth_enabled && authenticate(hr, path, path_len, may_refresh) != 0)
        return 0;
    if (rate_limited(hr, path, path_len))
        return 0;
    if (util_str_eq(path, path_len, "websocket"))
        return serve_websocket(hr);
    return serve_fhir(hr, path, path_len);
}

int http_rest_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_thread_t *thread = H2O_STRUCT_FROM_MEMBER(http_thread_t, ctx, req->conn->ctx);
    http_req_t *hr = h2o_mem_alloc_pool(&req->pool, sizeof(*hr));
    memset(hr, 0, sizeof(*hr));
    hr->req = req;
    hr->thread = thread;
    hr->started_ms = util_time_monotonic_ms();
    size_t len;
    const char *rid = header_value(req, "x-request-id", &len);
    /* A client's request id is echoed only when it is short and printable, so it is safe in logs and headers. */
    bool usable = rid != NULL && len > 0 && len < sizeof(hr->request_id);
    for (size_t i = 0; usable && i != len; ++i)
        usable = rid[i] > 0x20 && rid[i] < 0x7f && rid[i] != '"' && rid[i] != '\\';
    if (usable) {
        memcpy(hr->request_id, rid, len);
        hr->request_id[len] = '\0';
    } else {
        util_uuid_v4(hr->request_id);
    }
    hr->auth = auth_create(hr);
    http_req_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_disposed);
    *slot = hr;
    http_add_header(hr, "x-request-id", hr->request_id);
    http_cors_decorate(hr);
    if (http_cors_preflight(hr))
        return 0;

    /* h2o 2.2.5 itself accepts request heads of about 400 KB; our limit is the configured one. */
    size_t head_bytes = req->path.len + req->authority.len;
    for (size_t i = 0; i != req->headers.size; ++i)
        head_bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (head_bytes > http_config->http_max_header_bytes) {
        http_send_error(hr, 431, "too-costly", "the request line and headers are larger than %zu bytes", http_config->http_max_header_bytes);
        return 0;
    }

    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *path = req->path.base;
    if (util_str_eq(path, path_len, "/healthz")) {
        fhir_outcome_t oo;
        fhir_outcome_init(&oo);
        fhir_outcome_add(&oo, FHIR_SEV_INFORMATION, "informational", NULL, "alive");
        http_send_outcome(hr, 200, &oo);
        fhir_outcome_dispose(&oo);
        return 0;
    }
    if (util_str_eq(path, path_len, "/readyz"))
        return serve_readyz(hr);
    if (util_str_eq(path, path_len, "/metrics"))
        return serve_metrics(hr);
    if (util_str_eq(path, path_len, "/.well-known/smart-configuration") ||
        util_str_eq(path, path_len, FHIR_PREFIX "/.well-known/smart-configuration")) {
        serve_smart_configuration(hr);
        return 0;
    }
    if (path_len < strlen(FHIR_PREFIX) || memcmp(path, FHIR_PREFIX, strlen(FHIR_PREFIX)) != 0 ||
        (path_len > strlen(FHIR_PREFIX) && path[strlen(FHIR_PREFIX)] != '/')) {
        http_send_error(hr, 404, "not-found", "no such endpoint; the FHIR base is %s", FHIR_PREFIX);
        return 0;
    }
    char *pretty = query_param(req, "_pretty");
    hr->pretty = pretty != NULL && strcmp(pretty, "true") == 0;
    free(pretty);
    parse_prefer(hr);
    if (negotiate(hr) != 0)
        return 0;
    if (req->entity.len > http_config->http_max_body_bytes) {
        http_send_error(hr, 413, "too-costly", "the request body is larger than %zu bytes", http_config->http_max_body_bytes);
        return 0;
    }
    path += strlen(FHIR_PREFIX);
    path_len -= strlen(FHIR_PREFIX);
    if (path_len > 0) { /* skip the slash after /fhir */
        ++path;
        --path_len;
    }
    return serve_authorized(hr, path, path_len, true);
}

void http_rest_thread_init(http_thread_t *thread)
{
    h2o_linklist_init_anchor(&thread->parked);
    h2o_timeout_init(thread->loop, &thread->park_timeout, PARK_POLL_MS);
    thread->park_entry.cb = on_park_timer;
    thread->audit = auth_audit_queue_create(thread->loop, thread->pool);
    if (thread->runs_sweeper && auth_audit_settings.enabled)
        auth_audit_purge_start(thread->loop, thread->pool);
}

void http_rest_thread_dispose(http_thread_t *thread)
{
    if (thread->runs_sweeper)
        auth_audit_purge_stop();
    while (!h2o_linklist_is_empty(&thread->parked))
        resume_parked(H2O_STRUCT_FROM_MEMBER(http_job_t, parked, thread->parked.next));
    if (h2o_timeout_is_linked(&thread->park_entry))
        h2o_timeout_unlink(&thread->park_entry);
    h2o_timeout_dispose(thread->loop, &thread->park_timeout);
    /* the events of the last requests still go out: wait (briefly) for their batch */
    uint64_t deadline = util_time_monotonic_ms() + 5000;
    while (auth_audit_queue_flush(thread->audit) && util_time_monotonic_ms() < deadline)
        h2o_evloop_run(thread->loop, 20);
    auth_audit_queue_destroy(thread->audit);
    thread->audit = NULL;
}

int http_auth_init(const util_config_t *cfg, char *err, size_t errlen)
{
    auth_settings = (auth_settings_t){cfg->auth_role_claim, cfg->auth_locations_claim};
    auth_audit_settings = (auth_audit_settings_t){.enabled = cfg->audit_enabled,
                                                  .retention_days = cfg->audit_retention_days,
                                                  .purge_interval_ms = cfg->scheduling_sweep_interval_ms,
                                                  .site = cfg->base_url};
    if (!cfg->auth_enabled) {
        LOG_WARN("AUTHORIZATION IS SWITCHED OFF (auth.enabled: false): anyone who can reach %s can read and change every "
                 "patient's data. Never run this way outside development.",
                 cfg->base_url);
        return 0;
    }
    if (cfg->auth_issuer == NULL || (cfg->auth_jwks_file == NULL && cfg->auth_jwks_url == NULL)) {
        snprintf(err, errlen,
                 "authorization is on but %s is not set: name the identity provider (auth.issuer, and auth.jwks_file or "
                 "auth.jwks_url; FHIRSCHED_AUTH_ISSUER, FHIRSCHED_AUTH_JWKS_FILE, FHIRSCHED_AUTH_JWKS_URL), or set "
                 "auth.enabled: false for development only",
                 cfg->auth_issuer == NULL ? "auth.issuer" : "auth.jwks_file or auth.jwks_url");
        return -1;
    }
    return auth_keys_init(cfg->auth_jwks_file, cfg->auth_jwks_url, cfg->auth_jwks_ca_file, cfg->auth_jwks_refresh_seconds, err, errlen);
}

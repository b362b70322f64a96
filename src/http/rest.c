/*
 * The FHIR REST front: request ids, access log, content negotiation, preconditions and Prefer, then one interaction (or
 * a Bundle) handed to the engine in fhir/, and its result turned back into HTTP.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "fhir/bundle.h"
#include "fhir/capability.h"
#include "fhir/conformance_res.h"
#include "fhir/interaction.h"
#include "fhir/json.h"
#include "fhir/search.h"
#include "http/http.h"
#include "sched/ops.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"
#include "util/uuid.h"

#define MODULE_NAME "http/rest.c"
#define FHIR_PREFIX "/fhir"

/* Links a heap context to its request: whichever of "request gone" and "work done" comes second frees it. */
typedef struct st_http_job_t {
    http_req_t *hr; /* NULL once the request is gone */
    http_thread_t *thread;
    fhir_ix_t *ix;
    fhir_bundle_run_t *bundle;
    sched_op_t *op;
    store_query_t probe; /* /readyz */
    bool done;
} http_job_t;

/* ---- per-request bookkeeping ---- */

static void on_req_disposed(void *p)
{
    http_req_t *hr = *(http_req_t **)p;
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

static void on_job_req_disposed(void *p)
{
    http_job_t *job = *(http_job_t **)p;
    job->hr = NULL;
    if (job->done)
        free(job);
}

static http_job_t *job_create(http_req_t *hr)
{
    http_job_t *job = util_xcalloc(1, sizeof(*job));
    job->hr = hr;
    job->thread = hr->thread;
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
        free(job);
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
    http_req_t *hr = job_finish(job);
    if (hr != NULL)
        send_ix_result(hr, ix);
    fhir_ix_destroy(ix);
}

static void on_bundle_done(fhir_bundle_run_t *run)
{
    http_job_t *job = run->data;
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
    http_job_t *job = job_create(hr);
    job->op = op;
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
    http_req_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_disposed);
    *slot = hr;
    http_add_header(hr, "x-request-id", hr->request_id);

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
    return serve_fhir(hr, path, path_len);
}

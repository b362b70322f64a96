#include <assert.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/bundle.h"
#include "fhir/json.h"
#include "fhir/types.h"
#include "util/status.h"
#include "util/str.h"
#include "util/time.h"
#include "util/uuid.h"

enum { PHASE_BEGIN, PHASE_RESOLVE, PHASE_EXECUTE, PHASE_END };

int fhir_bundle_method_rank(const char *method)
{
    if (method == NULL)
        return 4;
    if (strcmp(method, "DELETE") == 0)
        return 0;
    if (strcmp(method, "POST") == 0)
        return 1;
    if (strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0)
        return 2;
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return 3;
    return 4;
}

void fhir_bundle_sort(const char *const *methods, size_t n, size_t *order)
{
    /* Insertion sort: stable, and Bundles are small compared with the cost of their writes. */
    for (size_t i = 0; i != n; ++i) {
        size_t j = i;
        int rank = fhir_bundle_method_rank(methods[i]);
        while (j > 0 && fhir_bundle_method_rank(methods[order[j - 1]]) > rank) {
            order[j] = order[j - 1];
            --j;
        }
        order[j] = i;
    }
}

static int compare_refs(const void *a, const void *b)
{
    return strcmp(((const fhir_bundle_ref_t *)a)->from, ((const fhir_bundle_ref_t *)b)->from);
}

void fhir_bundle_sort_refs(fhir_bundle_ref_t *refs, size_t n)
{
    qsort(refs, n, sizeof(*refs), compare_refs);
}

size_t fhir_bundle_rewrite_references(json_t *value, const fhir_bundle_ref_t *refs, size_t n)
{
    size_t rewritten = 0;
    if (json_is_object(value)) {
        const char *key;
        json_t *child;
        json_object_foreach(value, key, child)
        {
            if (strcmp(key, "reference") == 0 && json_is_string(child)) {
                fhir_bundle_ref_t wanted = {json_string_value(child), NULL};
                const fhir_bundle_ref_t *hit = bsearch(&wanted, refs, n, sizeof(*refs), compare_refs);
                if (hit != NULL) {
                    json_string_set(child, hit->to);
                    ++rewritten;
                }
            } else {
                rewritten += fhir_bundle_rewrite_references(child, refs, n);
            }
        }
    } else if (json_is_array(value)) {
        size_t i;
        json_t *child;
        json_array_foreach(value, i, child) rewritten += fhir_bundle_rewrite_references(child, refs, n);
    }
    return rewritten;
}

/* ---- parsing entries ---- */

/* The JSON Patch carried by a PATCH entry: a Binary resource with base64 data. */
static json_t *patch_from_binary(const json_t *resource, fhir_outcome_t *oo)
{
    const char *rt = json_string_value(json_object_get(resource, "resourceType"));
    const char *data = json_string_value(json_object_get(resource, "data"));
    if (rt == NULL || strcmp(rt, "Binary") != 0 || data == NULL) {
        fhir_outcome_fail(oo, 400, "not-supported", NULL,
                          "a PATCH entry must carry a Binary resource with a base64 JSON Patch document (FHIRPath Patch is not supported)");
        return NULL;
    }
    size_t len = strlen(data);
    unsigned char *raw = util_xmalloc(len + 1);
    int n = EVP_DecodeBlock(raw, (const unsigned char *)data, (int)len);
    json_t *patch = NULL;
    if (n < 0) {
        fhir_outcome_fail(oo, 400, "structure", NULL, "the Binary data of a PATCH entry is not valid base64");
    } else {
        /* EVP_DecodeBlock counts the padding as zero bytes */
        while (len > 0 && data[len - 1] == '=' && n > 0) {
            --n;
            --len;
        }
        fhir_json_parse((const char *)raw, (size_t)n, &patch, oo);
    }
    free(raw);
    return patch;
}

/* Fills `ix->req` from one entry; -1 with an issue in `oo`. */
static int parse_entry(fhir_ix_t *ix, const json_t *entry, fhir_outcome_t *oo)
{
    json_t *request = json_object_get(entry, "request");
    const char *method = json_string_value(json_object_get(request, "method"));
    const char *url = json_string_value(json_object_get(request, "url"));
    if (!json_is_object(request) || method == NULL || url == NULL)
        return fhir_outcome_fail(oo, 400, "required", NULL, "each entry needs request.method and request.url");
    /* absolute URLs on our own base are accepted as relative ones */
    size_t base_len = strlen(fhir_base_url);
    if (strncmp(url, fhir_base_url, base_len) == 0 && url[base_len] == '/')
        url += base_len + 1;
    if (url[0] == '/')
        ++url;
    const char *qmark = strchr(url, '?');
    size_t path_len = qmark != NULL ? (size_t)(qmark - url) : strlen(url);
    if (fhir_ix_route(&ix->req, method, url, path_len, qmark != NULL ? qmark + 1 : NULL, oo) != 0)
        return -1;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 && ix->req.kind == FHIR_IX_HISTORY)
        return fhir_outcome_fail(oo, 405, "not-supported", NULL, "history is read-only");
    json_t *resource = json_object_get(entry, "resource");
    switch (ix->req.kind) {
    case FHIR_IX_CREATE:
    case FHIR_IX_UPDATE:
    case FHIR_IX_CONDITIONAL_UPDATE:
        if (!json_is_object(resource))
            return fhir_outcome_fail(oo, 400, "required", NULL, "a %s entry needs a resource", method);
        ix->req.resource = json_deep_copy(resource);
        break;
    case FHIR_IX_PATCH:
        if (!json_is_object(resource))
            return fhir_outcome_fail(oo, 400, "required", NULL, "a PATCH entry needs a Binary resource");
        if ((ix->req.patch = patch_from_binary(resource, oo)) == NULL)
            return -1;
        break;
    default:
        break;
    }
    const char *if_match = json_string_value(json_object_get(request, "ifMatch"));
    if (if_match != NULL && (ix->req.if_match = fhir_etag_version(if_match, strlen(if_match))) <= 0)
        return fhir_outcome_fail(oo, 400, "value", NULL, "request.ifMatch must be a version ETag such as W/\"3\"");
    const char *if_none_match = json_string_value(json_object_get(request, "ifNoneMatch"));
    if (if_none_match != NULL && (ix->req.if_none_match = fhir_etag_version(if_none_match, strlen(if_none_match))) < -1)
        return fhir_outcome_fail(oo, 400, "value", NULL, "request.ifNoneMatch must be a version ETag such as W/\"3\" or *");
    const char *if_none_exist = json_string_value(json_object_get(request, "ifNoneExist"));
    if (if_none_exist != NULL && ix->req.kind == FHIR_IX_CREATE)
        ix->req.if_none_exist = util_xstrdup(if_none_exist);
    const char *since = json_string_value(json_object_get(request, "ifModifiedSince"));
    if (since != NULL && util_time_parse_instant(since, &ix->req.if_modified_since) != 0)
        return fhir_outcome_fail(oo, 400, "value", NULL, "request.ifModifiedSince must be an instant");
    return 0;
}

fhir_bundle_run_t *fhir_bundle_prepare(const json_t *bundle, fhir_prefer_t prefer, fhir_outcome_t *oo)
{
    const char *rt = json_string_value(json_object_get(bundle, "resourceType"));
    const char *type = json_string_value(json_object_get(bundle, "type"));
    if (rt == NULL || strcmp(rt, "Bundle") != 0) {
        fhir_outcome_fail(oo, 400, "invalid", "resourceType", "only a Bundle can be posted to the base URL");
        return NULL;
    }
    if (type == NULL || (strcmp(type, "batch") != 0 && strcmp(type, "transaction") != 0)) {
        fhir_outcome_fail(oo, 422, "value", "Bundle.type", "a Bundle posted to the base URL must be of type batch or transaction");
        return NULL;
    }
    json_t *entries = json_object_get(bundle, "entry");
    if (entries != NULL && !json_is_array(entries)) {
        fhir_outcome_fail(oo, 400, "structure", "Bundle.entry", "Bundle.entry must be an array");
        return NULL;
    }
    fhir_bundle_run_t *run = util_xcalloc(1, sizeof(*run));
    fhir_outcome_init(&run->oo);
    run->transaction = strcmp(type, "transaction") == 0;
    run->prefer = prefer;
    run->count = json_array_size(entries);
    run->entries = util_xcalloc(run->count, sizeof(*run->entries));
    run->entry_errors = util_xcalloc(run->count, sizeof(*run->entry_errors));
    run->full_urls = util_xcalloc(run->count, sizeof(*run->full_urls));
    run->order = util_xcalloc(run->count, sizeof(*run->order));
    const char **methods = util_xcalloc(run->count, sizeof(*methods));
    for (size_t i = 0; i != run->count; ++i) {
        json_t *entry = json_array_get(entries, i);
        fhir_outcome_init(&run->entry_errors[i]);
        const char *full_url = json_string_value(json_object_get(entry, "fullUrl"));
        if (full_url != NULL)
            run->full_urls[i] = util_xstrdup(full_url);
        methods[i] = json_string_value(json_object_get(json_object_get(entry, "request"), "method"));
        fhir_ix_t *ix = fhir_ix_create();
        if (!json_is_object(entry))
            fhir_outcome_fail(&run->entry_errors[i], 400, "structure", NULL, "a Bundle entry must be a JSON object");
        if (!json_is_object(entry) || parse_entry(ix, entry, &run->entry_errors[i]) != 0) {
            fhir_ix_destroy(ix);
            if (run->transaction) {
                /* One bad entry fails the whole transaction before anything runs. */
                /* every failure path above adds an issue */
                assert(run->entry_errors[i].count != 0);
                fhir_issue_t *issue = &run->entry_errors[i].issues[0];
                char where[48];
                snprintf(where, sizeof(where), "Bundle.entry[%zu]", i);
                fhir_outcome_fail(oo, run->entry_errors[i].status != 0 ? run->entry_errors[i].status : 400, issue->code, where, "%s",
                                  issue->diagnostics);
                free(methods);
                fhir_bundle_destroy(run);
                return NULL;
            }
            continue;
        }
        run->entries[i] = ix;
    }
    fhir_bundle_sort(methods, run->count, run->order);
    free(methods);
    /* In a batch, entries are independent: run them as given. */
    if (!run->transaction)
        for (size_t i = 0; i != run->count; ++i)
            run->order[i] = i;
    return run;
}

void fhir_bundle_destroy(fhir_bundle_run_t *run)
{
    for (size_t i = 0; i != run->count; ++i) {
        if (run->entries[i] != NULL)
            fhir_ix_destroy(run->entries[i]);
        fhir_outcome_dispose(&run->entry_errors[i]);
        free(run->full_urls[i]);
    }
    free(run->entries);
    free(run->entry_errors);
    free(run->full_urls);
    free(run->order);
    fhir_outcome_dispose(&run->oo);
    free(run->body);
    free(run);
}

/* ---- the response Bundle ---- */

static void append_outcome(util_buf_t *buf, const fhir_outcome_t *oo)
{
    json_t *j = fhir_outcome_to_json(oo);
    char *text = fhir_json_dump(j, false, NULL);
    util_buf_puts(buf, text);
    free(text);
    json_decref(j);
}

static void build_response(fhir_bundle_run_t *run)
{
    util_buf_t buf;
    util_buf_init(&buf);
    fhir_json_bundle_open(&buf, run->transaction ? "transaction-response" : "batch-response", NULL);
    if (run->count != 0)
        util_buf_puts(&buf, ",\"entry\":[");
    for (size_t i = 0; i != run->count; ++i) {
        fhir_ix_t *ix = run->entries[i];
        util_buf_puts(&buf, i == 0 ? "{" : ",{");
        if (ix == NULL) {
            util_buf_printf(&buf, "\"response\":{\"status\":\"%d %s\",\"outcome\":", run->entry_errors[i].status,
                            util_http_reason(run->entry_errors[i].status));
            append_outcome(&buf, &run->entry_errors[i]);
            util_buf_puts(&buf, "}}");
            continue;
        }
        fhir_ix_result_t *res = &ix->res;
        bool has_resource = res->body_kind == FHIR_BODY_RESOURCE && res->status < 400;
        if (res->id != NULL && ix->req.type != NULL && res->status < 400)
            util_buf_printf(&buf, "\"fullUrl\":\"%s/%s/%s\",", fhir_base_url, ix->req.type, res->id);
        if (res->body != NULL && (res->body_kind == FHIR_BODY_BUNDLE || (has_resource && run->prefer == FHIR_PREFER_REPRESENTATION))) {
            util_buf_puts(&buf, "\"resource\":");
            util_buf_append(&buf, res->body, res->body_len);
            util_buf_puts(&buf, ",");
        }
        util_buf_printf(&buf, "\"response\":{\"status\":\"%d %s\"", res->status, util_http_reason(res->status));
        if (res->version != 0 && res->id != NULL && res->status < 400) {
            if (res->status == 201 || ix->req.kind == FHIR_IX_UPDATE || ix->req.kind == FHIR_IX_PATCH ||
                ix->req.kind == FHIR_IX_EXISTING) {
                char *loc = fhir_ix_location(ix->req.type, res->id, res->version);
                util_buf_printf(&buf, ",\"location\":\"%s\"", loc);
                free(loc);
            }
            util_buf_printf(&buf, ",\"etag\":\"W/\\\"%d\\\"\"", res->version);
            if (res->last_updated[0] != '\0')
                util_buf_printf(&buf, ",\"lastModified\":\"%s\"", res->last_updated);
        }
        if (res->status >= 400 || (res->oo.count != 0 && res->body_kind != FHIR_BODY_BUNDLE) ||
            (has_resource && run->prefer == FHIR_PREFER_OUTCOME)) {
            util_buf_puts(&buf, ",\"outcome\":");
            append_outcome(&buf, &res->oo);
        }
        util_buf_puts(&buf, "}}");
    }
    if (run->count != 0)
        util_buf_puts(&buf, "]");
    util_buf_puts(&buf, "}");
    run->body = util_xstrndup(buf.base, buf.len);
    run->body_len = buf.len;
    run->status = 200;
    util_buf_dispose(&buf);
}

/* ---- execution ---- */

static void advance(fhir_bundle_run_t *run);

static void on_transaction_end(store_query_t *q, PGresult *res, const char *err)
{
    fhir_bundle_run_t *run = H2O_STRUCT_FROM_MEMBER(fhir_bundle_run_t, _query, q);
    store_session_end(&run->_session);
    if (run->status == 0 && err != NULL) {
        if (err == store_err_query)
            fhir_outcome_fail(&run->oo, 409, "conflict", NULL, "the transaction could not be committed; nothing was stored");
        else
            fhir_outcome_fail(&run->oo, 503, "transient", NULL,
                              "the database connection was lost while committing: the transaction may or may not have been stored");
        run->status = run->oo.status;
    } else if (run->status == 0) {
        build_response(run);
    }
    run->_cb(run);
}

/* Ends the transaction: COMMIT when everything succeeded (run->status still 0), ROLLBACK otherwise. */
static void end_transaction(fhir_bundle_run_t *run)
{
    run->_phase = PHASE_END;
    run->_query = (store_query_t){.sql = run->status == 0 ? "COMMIT" : "ROLLBACK", .cb = on_transaction_end};
    if (run->_session._conn == NULL || store_session_query(&run->_session, &run->_query) != 0) {
        store_session_end(&run->_session);
        if (run->status == 0) {
            fhir_outcome_fail(&run->oo, 503, "transient", NULL, "the database connection was lost; nothing was stored");
            run->status = 503;
        }
        run->_cb(run);
    }
}

/* A failed entry fails the transaction with its own status and issues, pointing at the entry. */
static void fail_transaction(fhir_bundle_run_t *run, size_t index)
{
    fhir_ix_result_t *res = &run->entries[index]->res;
    char where[48];
    snprintf(where, sizeof(where), "Bundle.entry[%zu]", index);
    for (size_t i = 0; i != res->oo.count; ++i) {
        fhir_issue_t *issue = &res->oo.issues[i];
        /* "Appointment.end" inside the entry is "Bundle.entry[n].resource.end" */
        const char *rest = issue->expression;
        size_t type_len = run->entries[index]->req.type != NULL ? strlen(run->entries[index]->req.type) : 0;
        if (rest != NULL && type_len != 0 && strncmp(rest, run->entries[index]->req.type, type_len) == 0 &&
            (rest[type_len] == '.' || rest[type_len] == '\0'))
            rest += type_len + (rest[type_len] == '.');
        char *expr = rest == NULL ? util_xstrdup(where)
                                  : rest[0] == '\0' ? util_asprintf("%s.resource", where) : util_asprintf("%s.resource.%s", where, rest);
        fhir_outcome_add(&run->oo, issue->severity, issue->code, expr, "%s", issue->diagnostics);
        free(expr);
    }
    if (res->oo.count == 0)
        fhir_outcome_add(&run->oo, FHIR_SEV_ERROR, "processing", where, "entry failed with status %d", res->status);
    run->status = res->status;
    run->oo.status = res->status;
    end_transaction(run);
}

/* Position of an entry in the processing order. */
static size_t order_pos(const fhir_bundle_run_t *run, const fhir_ix_t *ix)
{
    size_t pos = 0;
    while (run->entries[run->order[pos]] != ix)
        ++pos;
    return pos;
}

/*
 * The failure a transaction reports is the one it would have had running one entry at a time: the first in processing
 * order among those that really failed, not the entries pipelined behind it that were refused for that (not_run).
 */
static void note_failure(fhir_bundle_run_t *run, fhir_ix_t *ix)
{
    size_t pos = order_pos(run, ix);
    bool better = run->_failed == NULL || (run->_failed->res.not_run && !ix->res.not_run) ||
                  (run->_failed->res.not_run == ix->res.not_run && pos < run->_failed_pos);
    if (better) {
        run->_failed = ix;
        run->_failed_pos = pos;
    }
}

static void on_entry_done(fhir_ix_t *ix)
{
    fhir_bundle_run_t *run = ix->data;
    --run->_running;
    if (run->_waiting_for == ix)
        run->_waiting_for = NULL;
    if (run->transaction && ix->res.status >= 400)
        note_failure(run, ix);
    /* an entry that finishes while being started: advance() is on the stack and goes on */
    if (!run->_in_dispatch)
        advance(run);
}

static bool is_write(const fhir_ix_request_t *req)
{
    return req->id != NULL && req->type != NULL &&
           (req->kind == FHIR_IX_CREATE || req->kind == FHIR_IX_UPDATE || req->kind == FHIR_IX_PATCH || req->kind == FHIR_IX_DELETE);
}

static int compare_targets(const void *a, const void *b)
{
    const fhir_ix_request_t *x = &(*(fhir_ix_t *const *)a)->req, *y = &(*(fhir_ix_t *const *)b)->req;
    int c = strcmp(x->type, y->type);
    return c != 0 ? c : strcmp(x->id, y->id);
}

/* R4: a transaction whose writes (after conditional resolution) touch one resource twice fails. Returns an offender or NULL. */
static fhir_ix_t *find_overlap(fhir_bundle_run_t *run)
{
    fhir_ix_t **writes = util_xcalloc(run->count, sizeof(*writes)), *dup = NULL;
    size_t n = 0;
    for (size_t i = 0; i != run->count; ++i)
        if (is_write(&run->entries[i]->req))
            writes[n++] = run->entries[i];
    qsort(writes, n, sizeof(*writes), compare_targets);
    for (size_t i = 1; i < n && dup == NULL; ++i)
        if (compare_targets(&writes[i - 1], &writes[i]) == 0)
            dup = writes[i];
    free(writes);
    return dup;
}

/* After conditional entries are resolved: give POSTs their ids and point references to other entries at them. */
static void resolve_references(fhir_bundle_run_t *run)
{
    fhir_bundle_ref_t *refs = util_xcalloc(run->count, sizeof(*refs));
    size_t n = 0;
    for (size_t i = 0; i != run->count; ++i) {
        fhir_ix_t *ix = run->entries[i];
        if (ix->req.kind == FHIR_IX_CREATE && ix->req.id == NULL) {
            char id[UTIL_UUID_LEN + 1];
            util_uuid_v4(id);
            ix->req.id = util_xstrdup(id);
        }
        if (run->full_urls[i] != NULL && ix->req.type != NULL && ix->req.id != NULL &&
            (ix->req.kind == FHIR_IX_CREATE || ix->req.kind == FHIR_IX_UPDATE || ix->req.kind == FHIR_IX_EXISTING)) {
            refs[n].from = run->full_urls[i];
            refs[n].to = util_asprintf("%s/%s", ix->req.type, ix->req.id);
            ++n;
        }
    }
    fhir_bundle_sort_refs(refs, n);
    for (size_t i = 0; i != run->count && n != 0; ++i)
        if (run->entries[i]->req.resource != NULL)
            fhir_bundle_rewrite_references(run->entries[i]->req.resource, refs, n);
    for (size_t i = 0; i != n; ++i)
        free((char *)refs[i].to);
    free(refs);
}

/* Index of an entry in the Bundle. */
static size_t entry_index(const fhir_bundle_run_t *run, const fhir_ix_t *ix)
{
    size_t index = 0;
    while (run->entries[index] != ix)
        ++index;
    return index;
}

/* Starts entries while it may; ends the phase (or the run) once every started entry has finished. */
static void advance(fhir_bundle_run_t *run)
{
    for (;;) {
        if (run->_failed != NULL || run->_pos == run->count) {
            if (run->_running != 0)
                return; /* answers of entries already sent are still to come */
            if (run->_failed != NULL) {
                fail_transaction(run, entry_index(run, run->_failed));
                return;
            }
            if (run->transaction && run->_phase == PHASE_RESOLVE) {
                resolve_references(run);
                fhir_ix_t *dup = find_overlap(run);
                if (dup != NULL) {
                    char where[48];
                    snprintf(where, sizeof(where), "Bundle.entry[%zu]", entry_index(run, dup));
                    fhir_outcome_fail(&run->oo, 400, "invalid", where, "the transaction changes %s/%s more than once", dup->req.type,
                                      dup->req.id);
                    run->status = 400;
                    end_transaction(run);
                    return;
                }
                run->_phase = PHASE_EXECUTE;
                run->_pos = 0;
                continue;
            }
            if (run->transaction) {
                end_transaction(run);
            } else {
                build_response(run);
                run->_cb(run);
            }
            return;
        }
        if (run->_waiting_for != NULL)
            return;
        fhir_ix_t *ix = run->entries[run->order[run->_pos]];
        if (ix == NULL) { /* a batch entry that could not be parsed */
            ++run->_pos;
            continue;
        }
        /* Anything else starts after everything before it has finished, and everything after it waits for it. */
        bool overlaps = run->_pipelined && run->_phase == PHASE_EXECUTE && fhir_ix_pipelinable(ix);
        if (!overlaps && run->_running != 0)
            return;
        ix->data = run;
        ++run->_pos;
        ++run->_running;
        run->_waiting_for = overlaps ? NULL : ix;
        run->_in_dispatch = true;
        if (run->_phase == PHASE_RESOLVE)
            fhir_ix_resolve(ix, run->_pool, &run->_session, on_entry_done);
        else
            fhir_ix_run(ix, run->_pool, run->transaction ? &run->_session : NULL, on_entry_done);
        run->_in_dispatch = false;
    }
}

static void on_begun(store_query_t *q, PGresult *res, const char *err)
{
    fhir_bundle_run_t *run = H2O_STRUCT_FROM_MEMBER(fhir_bundle_run_t, _query, q);
    if (err != NULL) {
        store_session_end(&run->_session);
        fhir_outcome_fail(&run->oo, 503, "transient", NULL, "the database is not available; retry later");
        run->status = 503;
        run->_cb(run);
        return;
    }
    run->_phase = PHASE_RESOLVE;
    run->_pos = 0;
    advance(run);
}

static void on_session(store_session_t *s, const char *err)
{
    fhir_bundle_run_t *run = H2O_STRUCT_FROM_MEMBER(fhir_bundle_run_t, _session, s);
    run->_query = (store_query_t){.sql = "BEGIN", .cb = on_begun};
    if (err == NULL)
        run->_pipelined = store_session_pipeline(s) == 0; /* otherwise entries run one at a time */
    if (err != NULL || store_session_query(s, &run->_query) != 0) {
        store_session_end(s);
        fhir_outcome_fail(&run->oo, 503, "transient", NULL, "the database is not available; retry later");
        run->status = 503;
        run->_cb(run);
    }
}

void fhir_bundle_execute(fhir_bundle_run_t *run, store_pool_t *pool, fhir_bundle_cb cb)
{
    run->_pool = pool;
    run->_cb = cb;
    run->_pos = 0;
    if (!run->transaction) {
        run->_phase = PHASE_EXECUTE;
        advance(run);
        return;
    }
    run->_session.cb = on_session;
    if (store_session_begin(pool, &run->_session) != 0) {
        fhir_outcome_fail(&run->oo, 503, "transient", NULL, "the server is overloaded; retry later");
        run->status = 503;
        cb(run);
    }
}

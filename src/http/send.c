#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/json.h"
#include "http/http.h"
#include "util/str.h"
#include "util/status.h"

void http_add_header(http_req_t *hr, const char *name, const char *value)
{
    h2o_req_t *req = hr->req;
    h2o_iovec_t n = h2o_strdup(&req->pool, name, strlen(name));
    h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

static void send_body(http_req_t *hr, int status, const char *body, size_t len)
{
    h2o_req_t *req = hr->req;
    req->res.status = status;
    req->res.reason = util_http_reason(status);
    if (status == 503)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    if (body != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/fhir+json; charset=utf-8"));
    if (status == 304 || status == 204 || body == NULL) {
        req->res.content_length = 0;
        h2o_send_inline(req, "", 0);
        return;
    }
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

void http_send_json(http_req_t *hr, int status, const char *body, size_t len)
{
    if (hr->pretty && body != NULL) {
        /* Only _pretty pays for a re-serialisation; plain reads send the stored bytes. */
        json_t *j = json_loadb(body, len, 0, NULL);
        if (j != NULL) {
            size_t n;
            char *text = fhir_json_dump(j, true, &n);
            json_decref(j);
            send_body(hr, status, text, n);
            free(text);
            return;
        }
    }
    send_body(hr, status, body, len);
}

void http_send_outcome(http_req_t *hr, int status, const fhir_outcome_t *oo)
{
    json_t *j = fhir_outcome_to_json(oo);
    size_t n;
    char *text = fhir_json_dump(j, hr->pretty, &n);
    json_decref(j);
    send_body(hr, status, text, n);
    free(text);
}

void http_send_error(http_req_t *hr, int status, const char *code, const char *fmt, ...)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    va_list args;
    va_start(args, fmt);
    char *msg = util_vasprintf(fmt, args);
    va_end(args);
    fhir_outcome_add(&oo, FHIR_SEV_ERROR, code, NULL, "%s", msg);
    free(msg);
    http_send_outcome(hr, status, &oo);
    fhir_outcome_dispose(&oo);
}

/*
 * CORS for browser-based portals (docs/security.md, "Transport"): the origins of cors.allowed_origins get
 * Access-Control-Allow-Origin on every response and their preflight requests answered 204; other origins get no CORS
 * headers at all, so browsers keep them out. Without the setting, nothing here does anything.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http/http.h"
#include "util/str.h"

#define MODULE_NAME "http/cors.c"
#define CORS_MAX_AGE "600"

static const char *const allowed_methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
#define CORS_ALLOW_METHODS "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
static const char *const allowed_headers[] = {"Authorization", "Content-Type",      "Accept", "If-Match",    "If-None-Match",
                                              "If-None-Exist", "If-Modified-Since", "Prefer", "X-Request-Id"};
#define CORS_EXPOSE_HEADERS "Location, ETag, Last-Modified, Content-Location, Expires, Retry-After, WWW-Authenticate, X-Request-Id"
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Read-only once the loops run. */
static struct {
    bool enabled;
    bool any; /* "*" */
    char **origins; /* lowercased scheme://host[:port] */
    size_t count;
} cors;

/* Checks one configured origin (scheme://host[:port], nothing else) and returns it lowercased, or NULL. */
static char *parse_origin(const char *s, size_t len, const char **why)
{
    size_t i = 0;
    if (len == 0 || !isalpha((unsigned char)s[0])) {
        *why = "must start with a scheme such as https://";
        return NULL;
    }
    while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        ++i;
    if (len - i < 3 || memcmp(s + i, "://", 3) != 0) {
        *why = "must be scheme://host[:port]";
        return NULL;
    }
    size_t host = i + 3, port = 0;
    bool bracket = false, closed = false;
    for (i = host; i != len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/' || c == '?' || c == '#') {
            *why = "must not have a path, query or fragment (an origin is scheme://host[:port], without a trailing /)";
            return NULL;
        }
        if (c == '[' && i == host) {
            bracket = true;
        } else if (c == ']' && bracket) {
            bracket = false;
            closed = true;
        } else if (closed && port == 0 && c != ':') {
            *why = "must be scheme://host[:port]";
            return NULL;
        } else if (c == ':' && !bracket) {
            if (port != 0)
                break;
            port = i + 1;
        } else if (port != 0 ? !isdigit(c) : !(isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (bracket && c == ':'))) {
            *why = port != 0 ? "has a port that is not a number" : "has a character that cannot be in a host name";
            return NULL;
        }
    }
    if (i != len || bracket || (port != 0 ? port == len : host == len) || (port != 0 && port == host + 1)) {
        *why = "must be scheme://host[:port]";
        return NULL;
    }
    if (port != 0 && (len - port > 5 || atoi(s + port) < 1 || atoi(s + port) > 65535)) {
        *why = "has a port outside 1-65535";
        return NULL;
    }
    char *origin = util_xstrndup(s, len);
    for (char *p = origin; *p != '\0'; ++p)
        *p = (char)tolower((unsigned char)*p);
    return origin;
}

int http_cors_init(const util_config_t *cfg, char *err, size_t errlen)
{
    http_cors_dispose();
    const char *list = cfg->cors_allowed_origins;
    if (list == NULL)
        return 0;
    for (const char *p = list; *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            ++p;
        const char *end = p;
        while (*end != '\0' && *end != ',')
            ++end;
        size_t len = (size_t)(end - p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            --len;
        if (len == 1 && *p == '*') {
            cors.any = true;
        } else if (len != 0) {
            const char *why = NULL;
            char *origin = parse_origin(p, len, &why);
            if (origin == NULL) {
                snprintf(err, errlen, "cors.allowed_origins: \"%.*s\" %s", (int)(len > 200 ? 200 : len), p, why);
                http_cors_dispose();
                return -1;
            }
            cors.origins = util_xrealloc(cors.origins, (cors.count + 1) * sizeof(*cors.origins));
            cors.origins[cors.count++] = origin;
        }
        p = end;
    }
    if (cors.any && cors.count != 0) {
        snprintf(err, errlen, "cors.allowed_origins: \"*\" allows every origin and cannot be combined with a list of origins");
        http_cors_dispose();
        return -1;
    }
    cors.enabled = cors.any || cors.count != 0;
    return 0;
}

void http_cors_dispose(void)
{
    for (size_t i = 0; i != cors.count; ++i)
        free(cors.origins[i]);
    free(cors.origins);
    memset(&cors, 0, sizeof(cors));
}

static bool header_of(h2o_req_t *req, const char *name, size_t name_len, h2o_iovec_t *value)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, name_len, -1);
    if (i < 0)
        return false;
    *value = req->headers.entries[i].value;
    return true;
}

/* Origins compare exactly, but scheme and host without regard to case (ports are digits). */
static bool origin_listed(h2o_iovec_t origin)
{
    for (size_t i = 0; i != cors.count; ++i)
        if (strlen(cors.origins[i]) == origin.len && strncasecmp(cors.origins[i], origin.base, origin.len) == 0)
            return true;
    return false;
}

static bool origin_allowed(h2o_iovec_t origin)
{
    return cors.any || origin_listed(origin);
}

static bool is_preflight(h2o_req_t *req)
{
    h2o_iovec_t v;
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) && header_of(req, H2O_STRLIT("origin"), &v) &&
           header_of(req, H2O_STRLIT("access-control-request-method"), &v);
}

void http_cors_decorate(http_req_t *hr)
{
    if (!cors.enabled)
        return;
    h2o_req_t *req = hr->req;
    /* The answer depends on Origin whenever it may name one origin: tell caches, whatever this request's origin. */
    if (!cors.any)
        http_add_header(hr, "vary", "Origin");
    h2o_iovec_t origin;
    if (!header_of(req, H2O_STRLIT("origin"), &origin) || !origin_allowed(origin))
        return;
    if (cors.any) {
        http_add_header(hr, "access-control-allow-origin", "*");
    } else {
        h2o_iovec_t v = h2o_strdup(&req->pool, origin.base, origin.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-origin"), 0, NULL, v.base, v.len);
        /* Credentials only for an origin named in the setting, never for "*". */
        http_add_header(hr, "access-control-allow-credentials", "true");
    }
    if (!is_preflight(req))
        http_add_header(hr, "access-control-expose-headers", CORS_EXPOSE_HEADERS);
}

/* Checks Access-Control-Request-Headers: every name must be one we allow. Writes our spelling of them, comma-separated,
 * into `out`; false with the first refused name in `refused` otherwise. */
static bool request_headers_allowed(h2o_iovec_t list, util_buf_t *out, h2o_iovec_t *refused)
{
    const char *p = list.base, *end = list.base + list.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            ++p;
        const char *name = p;
        while (p < end && *p != ',')
            ++p;
        size_t len = (size_t)(p - name);
        while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
            --len;
        if (len == 0)
            continue;
        size_t i = 0;
        while (i != COUNT_OF(allowed_headers) && !(strlen(allowed_headers[i]) == len && strncasecmp(allowed_headers[i], name, len) == 0))
            ++i;
        if (i == COUNT_OF(allowed_headers)) {
            *refused = h2o_iovec_init(name, len);
            return false;
        }
        if (out->len != 0)
            util_buf_puts(out, ", ");
        util_buf_puts(out, allowed_headers[i]);
    }
    return true;
}

/* A name from the request, fit for a diagnostic: printable ASCII and short, else a placeholder. */
static int printable_len(h2o_iovec_t v)
{
    if (v.len > 64)
        return 0;
    for (size_t i = 0; i != v.len; ++i)
        if (v.base[i] <= 0x20 || v.base[i] >= 0x7f)
            return 0;
    return (int)v.len;
}

int http_cors_preflight(http_req_t *hr)
{
    h2o_req_t *req = hr->req;
    if (!cors.enabled || !is_preflight(req))
        return 0;
    h2o_iovec_t origin = {NULL, 0}, method = {NULL, 0}, requested = {NULL, 0};
    header_of(req, H2O_STRLIT("origin"), &origin);
    header_of(req, H2O_STRLIT("access-control-request-method"), &method);
    if (!origin_allowed(origin)) {
        http_send_error(hr, 403, "forbidden", "CORS: this origin is not allowed (cors.allowed_origins)");
        return 1;
    }
    size_t m = 0;
    while (m != COUNT_OF(allowed_methods) && !h2o_memis(method.base, method.len, allowed_methods[m], strlen(allowed_methods[m])))
        ++m;
    if (m == COUNT_OF(allowed_methods)) {
        int n = printable_len(method);
        http_send_error(hr, 403, "forbidden", "CORS: method %.*s%s is not allowed; allowed are " CORS_ALLOW_METHODS, n,
                        method.base, n == 0 ? "(unprintable)" : "");
        return 1;
    }
    util_buf_t echo;
    util_buf_init(&echo);
    if (header_of(req, H2O_STRLIT("access-control-request-headers"), &requested)) {
        h2o_iovec_t refused;
        if (!request_headers_allowed(requested, &echo, &refused)) {
            int n = printable_len(refused);
            http_send_error(hr, 403, "forbidden", "CORS: request header %.*s%s is not allowed", n, refused.base,
                            n == 0 ? "(unprintable)" : "");
            util_buf_dispose(&echo);
            return 1;
        }
    }
    http_add_header(hr, "access-control-allow-methods", CORS_ALLOW_METHODS);
    if (echo.len != 0)
        http_add_header(hr, "access-control-allow-headers", echo.base);
    http_add_header(hr, "access-control-max-age", CORS_MAX_AGE);
    util_buf_dispose(&echo);
    http_send_json(hr, 204, NULL, 0);
    return 1;
}

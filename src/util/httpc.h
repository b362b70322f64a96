/* A small blocking HTTP/1.1 client over TCP or TLS (JWKS fetches, rest-hook deliveries); call it off the event loops. */
#ifndef UTIL_HTTPC_H
#define UTIL_HTTPC_H

#include <stddef.h>
#include "util/str.h"

/** One exchange. Only `method` and `url` are required. */
typedef struct st_util_httpc_request_t {
    const char *method;         /* "GET", "POST", ... (a token) */
    const char *url;            /* http:// or https:// (no user:password@) */
    const char *const *headers; /* extra "Name: value" lines; refused: CR, LF or other control characters, a name that is
                                   not a token, Host, Content-Length, Transfer-Encoding, Connection (written here) */
    size_t nheaders;
    const char *body;           /* NULL: none (Content-Length: 0 is still sent for POST and PUT) */
    size_t body_len;
    const char *ca_file;        /* CAs for https (NULL: the system's); the host name is always verified */
    unsigned io_timeout_ms;     /* connect, and each read or write (0: 5000); less when total_timeout_ms is nearer */
    unsigned total_timeout_ms;  /* the whole exchange (0: 20000) */
    size_t max_body;            /* larger response bodies fail (0: 1 MiB) */
} util_httpc_request_t;

/** What came back. */
typedef struct st_util_httpc_response_t {
    int status;         /* the final status (1xx are skipped); 0 until the response head arrived */
    char location[256]; /* the Location header ("" when none), cut to 200 bytes */
} util_httpc_response_t;

/**
 * Sends `req` (Host, User-Agent: fhirsched/<version>, Connection: close, Content-Length for a body and for every POST and
 * PUT, then the extra headers) and reads the whole response: Content-Length, chunked or read-to-close bodies, no content
 * codings. Returns 0 when one arrived, whatever its status (the body is appended to `body` when not NULL); -1 on a
 * transport or protocol failure, a refused request or a body over `max_body`, with a message that starts with the URL
 * ("<url>: ... timed out ..." for timeouts). After a failure `res` still holds the status when the head had arrived.
 * Redirects are not followed. Blocking: at most about total_timeout_ms.
 */
int util_httpc_exchange(const util_httpc_request_t *req, util_httpc_response_t *res, util_buf_t *body, char *err, size_t errlen);

#endif

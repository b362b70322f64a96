/* A small blocking HTTP/1.1 client over TCP or TLS (JWKS fetches, rest-hook deliveries); call it off the event loops. */
#ifndef UTIL_HTTPC_H
#define UTIL_HTTPC_H

#include <stddef.h>
#include "util/str.h"

/** One exchange. Only `method` and `url` are required. */
typedef struct st_util_httpc_request_t {
    const char *method;         /* "GET", "POST", ... */
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* extra "Name: value" lines; a line with CR or LF is refused */
    size_t nheaders;
    const char *body; /* NULL: none (Content-Length: 0 is still sent for POST and PUT) */
    size_t body_len;
    const char *ca_file;        /* CAs for https (NULL: the system's); the host name is always verified */
    unsigned io_timeout_ms;     /* connect, and each read or write (0: 5000) */
    unsigned total_timeout_ms;  /* the whole exchange (0: 20000) */
    size_t max_body;            /* larger response bodies fail (0: 1 MiB) */
} util_httpc_request_t;

/** What came back. */
typedef struct st_util_httpc_response_t {
    int status;
    char location[256]; /* the Location header ("" when none), cut to fit */
} util_httpc_response_t;

/**
 * Sends `req` (Connection: close) and reads the whole response: 0 when one arrived, whatever its status (the body is
 * appended to `body` when not NULL); -1 on a transport or protocol failure, with a message that starts with the URL
 * ("... timed out ..." for timeouts). Redirects are not followed.
 */
int util_httpc_exchange(const util_httpc_request_t *req, util_httpc_response_t *res, util_buf_t *body, char *err, size_t errlen);

#endif

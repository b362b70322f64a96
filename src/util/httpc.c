/* The blocking HTTP/1.1 client (util/httpc.h): one exchange per connection, TLS through OpenSSL, timeouts everywhere. */
#include "util/httpc.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "util/time.h"

#define MODULE_NAME "util/httpc.c"

#define DEFAULT_IO_TIMEOUT_MS 5000
#define DEFAULT_TOTAL_TIMEOUT_MS 20000 /* a trickling server cannot hold the caller for long */
#define DEFAULT_MAX_BODY (1024 * 1024)
#define HTTP_MAX_HEADER 16384

typedef struct st_http_url_t {
    bool tls;
    char host[256]; /* without IPv6 brackets */
    char port[6];
    bool ip_literal;
    char *host_header;
    char *target; /* path and query */
} http_url_t;

static int url_parse(const char *url, http_url_t *u, char *err, size_t errlen)
{
    const char *p;
    memset(u, 0, sizeof(*u));
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        u->tls = true;
        p = url + 8;
    } else {
        snprintf(err, errlen, "%s: not an http:// or https:// URL", url);
        return -1;
    }
    for (const char *c = url; *c != '\0'; ++c) {
        /* no way to smuggle a second header line or request into ours */
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            snprintf(err, errlen, "%s: the URL contains spaces or control characters", url);
            return -1;
        }
    }
    size_t alen = strcspn(p, "/?#");
    const char *authority_end = p + alen, *port = NULL, *host = p, *host_end;
    if (memchr(p, '@', alen) != NULL) {
        snprintf(err, errlen, "%s: user names and passwords in the URL are not supported", url);
        return -1;
    }
    if (*p == '[') {
        host = p + 1;
        if ((host_end = memchr(p, ']', alen)) == NULL) {
            snprintf(err, errlen, "%s: bad IPv6 address", url);
            return -1;
        }
        if (host_end + 1 != authority_end) {
            if (host_end[1] != ':') {
                snprintf(err, errlen, "%s: bad IPv6 address", url);
                return -1;
            }
            port = host_end + 2;
        }
        u->ip_literal = true;
    } else {
        host_end = memchr(p, ':', alen);
        if (host_end != NULL)
            port = host_end + 1;
        else
            host_end = authority_end;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof(u->host)) {
        snprintf(err, errlen, "%s: no host name", url);
        return -1;
    }
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    if (!u->ip_literal) {
        struct in_addr a4;
        u->ip_literal = inet_pton(AF_INET, u->host, &a4) == 1;
    }
    unsigned long portnum = u->tls ? 443 : 80;
    if (port != NULL) {
        size_t plen = (size_t)(authority_end - port);
        char *end = NULL;
        portnum = plen != 0 && plen <= 5 && port[0] >= '0' && port[0] <= '9' ? strtoul(port, &end, 10) : 0;
        if (portnum == 0 || portnum > 65535 || end != authority_end) {
            snprintf(err, errlen, "%s: bad port", url);
            return -1;
        }
    }
    snprintf(u->port, sizeof(u->port), "%lu", portnum);
    const char *bracket_open = p[0] == '[' ? "[" : "", *bracket_close = p[0] == '[' ? "]" : "";
    if (port != NULL && portnum != (u->tls ? 443u : 80u))
        u->host_header = util_asprintf("%s%s%s:%lu", bracket_open, u->host, bracket_close, portnum);
    else
        u->host_header = util_asprintf("%s%s%s", bracket_open, u->host, bracket_close);
    /* the fragment stays with the client */
    size_t tlen = strcspn(authority_end, "#");
    u->target = util_asprintf("%s%.*s", *authority_end == '/' ? "" : "/", (int)tlen, authority_end);
    return 0;
}

static void url_dispose(http_url_t *u)
{
    free(u->host_header);
    free(u->target);
}

typedef struct st_http_conn_t {
    const char *url; /* for messages */
    int fd;
    SSL_CTX *ssl_ctx;
    SSL *ssl;
    uint64_t deadline;
    unsigned io_timeout_ms;
    size_t max_body;
    char *err;
    size_t errlen;
} http_conn_t;

/* How long the next wait may last: io_timeout_ms, or less when the whole exchange is due sooner; 0 when it is due. */
static unsigned conn_wait_ms(const http_conn_t *conn)
{
    uint64_t now = util_time_monotonic_ms();
    if (now >= conn->deadline)
        return 0;
    return conn->deadline - now < conn->io_timeout_ms ? (unsigned)(conn->deadline - now) : conn->io_timeout_ms;
}

static void set_socket_timeout(int fd, int option, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, option, &tv, sizeof(tv));
}

static int conn_connect(http_conn_t *conn, const http_url_t *u)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res, *ai;
    int gai = getaddrinfo(u->host, u->port, &hints, &res), saved = 0;
    if (gai != 0) {
        snprintf(conn->err, conn->errlen, "%s: cannot resolve %s: %s", conn->url, u->host, gai_strerror(gai));
        return -1;
    }
    bool timed_out = false;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            saved = errno;
            close(fd);
            continue;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int r = 0, soerr = 0;
        socklen_t sl = sizeof(soerr);
        unsigned wait_ms = conn_wait_ms(conn);
        if (wait_ms != 0)
            while ((r = poll(&pfd, 1, (int)wait_ms)) < 0 && errno == EINTR)
                ;
        if (r == 0) {
            timed_out = true;
            close(fd);
            continue;
        }
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            saved = r < 0 ? errno : soerr;
            close(fd);
            continue;
        }
        /* blocking from here on, each read and write bounded by the socket timeouts */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        set_socket_timeout(fd, SO_RCVTIMEO, conn->io_timeout_ms);
        set_socket_timeout(fd, SO_SNDTIMEO, conn->io_timeout_ms);
        conn->fd = fd;
        freeaddrinfo(res);
        return 0;
    }
    freeaddrinfo(res);
    if (saved == 0 && timed_out)
        snprintf(conn->err, conn->errlen, "%s: timed out connecting to %s port %s", conn->url, u->host, u->port);
    else
        snprintf(conn->err, conn->errlen, "%s: cannot connect to %s port %s: %s", conn->url, u->host, u->port, strerror(saved));
    return -1;
}

static void set_ssl_error(http_conn_t *conn, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(conn->err, conn->errlen, "%s: %s%s%s", conn->url, what, buf[0] != '\0' ? ": " : "", buf);
    ERR_clear_error();
}

static int conn_tls_start(http_conn_t *conn, const http_url_t *u, const char *ca_file)
{
    if ((conn->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        set_ssl_error(conn, "cannot set up TLS");
        return -1;
    }
    SSL_CTX_set_min_proto_version(conn->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(conn->ssl_ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file != NULL && ca_file[0] != '\0') {
        if (SSL_CTX_load_verify_locations(conn->ssl_ctx, ca_file, NULL) != 1) {
            char what[512];
            snprintf(what, sizeof(what), "cannot read the CA file %s", ca_file);
            set_ssl_error(conn, what);
            return -1;
        }
    } else if (SSL_CTX_set_default_verify_paths(conn->ssl_ctx) != 1) {
        set_ssl_error(conn, "cannot load the system CAs");
        return -1;
    }
    if ((conn->ssl = SSL_new(conn->ssl_ctx)) == NULL || SSL_set_fd(conn->ssl, conn->fd) != 1) {
        set_ssl_error(conn, "cannot set up TLS");
        return -1;
    }
    /* the certificate must name the host we asked for (SNI only for names, RFC 6066 3) */
    int ok = u->ip_literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(conn->ssl), u->host)
                           : SSL_set_tlsext_host_name(conn->ssl, u->host) == 1 && SSL_set1_host(conn->ssl, u->host) == 1;
    if (!ok) {
        set_ssl_error(conn, "cannot set the expected host name");
        return -1;
    }
    if (SSL_connect(conn->ssl) != 1) {
        long verify = SSL_get_verify_result(conn->ssl);
        if (verify != X509_V_OK) {
            snprintf(conn->err, conn->errlen, "%s: certificate refused: %s", conn->url, X509_verify_cert_error_string(verify));
            ERR_clear_error();
        } else if (ERR_peek_last_error() == 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            snprintf(conn->err, conn->errlen, "%s: timed out in the TLS handshake", conn->url);
        } else {
            set_ssl_error(conn, "TLS handshake failed");
        }
        return -1;
    }
    return 0;
}

static int conn_write_all(http_conn_t *conn, const char *data, size_t len)
{
    while (len != 0) {
        ssize_t n;
        if (conn->ssl != NULL) {
            size_t written;
            n = SSL_write_ex(conn->ssl, data, len, &written) == 1 ? (ssize_t)written : -1;
        } else {
            while ((n = send(conn->fd, data, len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
                ;
        }
        if (n <= 0) {
            snprintf(conn->err, conn->errlen, "%s: cannot send the request: %s", conn->url,
                     errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
            ERR_clear_error();
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Appends what arrives to `buf`: 0 when something was read, 1 at the end of the stream, -1 on error or timeout. */
static int conn_fill(http_conn_t *conn, util_buf_t *buf)
{
    char chunk[16384];
    size_t n = 0;
    unsigned wait_ms = conn_wait_ms(conn);
    if (wait_ms == 0) {
        snprintf(conn->err, conn->errlen, "%s: timed out reading the response", conn->url);
        return -1;
    }
    if (wait_ms < conn->io_timeout_ms)
        set_socket_timeout(conn->fd, SO_RCVTIMEO, wait_ms);
    if (conn->ssl != NULL) {
        errno = 0;
        if (SSL_read_ex(conn->ssl, chunk, sizeof(chunk), &n) != 1) {
            int e = SSL_get_error(conn->ssl, 0);
            if (e == SSL_ERROR_ZERO_RETURN) {
                ERR_clear_error();
                return 1;
            }
            if (ERR_peek_last_error() == 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                snprintf(conn->err, conn->errlen, "%s: timed out reading the response", conn->url);
                return -1;
            }
            /* includes a peer that closes without close_notify: the response may be truncated */
            set_ssl_error(conn, "cannot read the response");
            return -1;
        }
    } else {
        ssize_t r;
        while ((r = recv(conn->fd, chunk, sizeof(chunk), 0)) < 0 && errno == EINTR)
            ;
        if (r < 0) {
            snprintf(conn->err, conn->errlen, "%s: %s reading the response", conn->url,
                     errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
            return -1;
        }
        if (r == 0)
            return 1;
        n = (size_t)r;
    }
    util_buf_append(buf, chunk, n);
    return 0;
}

static void conn_close(http_conn_t *conn)
{
    if (conn->ssl != NULL) {
        SSL_free(conn->ssl);
        ERR_clear_error();
    }
    SSL_CTX_free(conn->ssl_ctx);
    if (conn->fd >= 0)
        close(conn->fd);
}

static bool header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen)
{
    size_t nlen = strlen(name);
    if (len <= nlen || line[nlen] != ':' || strncasecmp(line, name, nlen) != 0)
        return false;
    const char *v = line + nlen + 1, *end = line + len;
    while (v != end && (*v == ' ' || *v == '\t'))
        ++v;
    while (end != v && (end[-1] == ' ' || end[-1] == '\t'))
        --end;
    *value = v;
    *vlen = (size_t)(end - v);
    return true;
}

/* The chunked body that starts at raw->base[pos], into `body`. */
static int read_chunked(http_conn_t *conn, util_buf_t *raw, size_t pos, util_buf_t *body)
{
    for (;;) {
        char *eol;
        int r;
        while ((eol = memmem(raw->base + pos, raw->len - pos, "\r\n", 2)) == NULL) {
            if (raw->len - pos > 1024 || (r = conn_fill(conn, raw)) > 0) {
                snprintf(conn->err, conn->errlen, "%s: bad chunked encoding", conn->url);
                return -1;
            }
            if (r < 0)
                return -1;
        }
        size_t size = 0, digits = 0;
        const char *c = raw->base + pos;
        for (; c != eol; ++c, ++digits) {
            int v = *c >= '0' && *c <= '9' ? *c - '0' : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : *c >= 'A' && *c <= 'F' ? *c - 'A' + 10 : -1;
            if (v < 0)
                break;
            if (size > conn->max_body) {
                snprintf(conn->err, conn->errlen, "%s: the response is larger than %zu bytes", conn->url, conn->max_body);
                return -1;
            }
            size = size * 16 + (size_t)v;
        }
        /* chunk extensions (";name=value") are allowed and ignored */
        if (digits == 0 || (c != eol && *c != ';' && *c != ' ' && *c != '\t')) {
            snprintf(conn->err, conn->errlen, "%s: bad chunked encoding", conn->url);
            return -1;
        }
        pos = (size_t)(eol + 2 - raw->base);
        if (size == 0)
            return 0; /* trailers are not needed: the connection closes after this response */
        if (body->len + size > conn->max_body) {
            snprintf(conn->err, conn->errlen, "%s: the response is larger than %zu bytes", conn->url, conn->max_body);
            return -1;
        }
        while (raw->len - pos < size + 2) {
            if ((r = conn_fill(conn, raw)) > 0) {
                snprintf(conn->err, conn->errlen, "%s: the response ends within a chunk", conn->url);
                return -1;
            }
            if (r < 0)
                return -1;
        }
        if (memcmp(raw->base + pos + size, "\r\n", 2) != 0) {
            snprintf(conn->err, conn->errlen, "%s: bad chunked encoding", conn->url);
            return -1;
        }
        util_buf_append(body, raw->base + pos, size);
        pos += size + 2;
    }
}

/* Reads the response of `conn`: its status and Location (set as soon as the head is in), then the body unless the
 * request or the status rules one out. Interim (1xx) responses are skipped. */
static int read_response(http_conn_t *conn, bool head_request, util_httpc_response_t *out, util_buf_t *body)
{
    util_buf_t raw;
    char *hend;
    int r, status, ret = -1;

    util_buf_init(&raw);
    for (;;) {
        while ((hend = memmem(raw.base, raw.len, "\r\n\r\n", 4)) == NULL) {
            if (raw.len > HTTP_MAX_HEADER) {
                snprintf(conn->err, conn->errlen, "%s: the response headers are too long", conn->url);
                goto Exit;
            }
            if ((r = conn_fill(conn, &raw)) != 0) {
                if (r > 0)
                    snprintf(conn->err, conn->errlen, "%s: the connection closed %s", conn->url,
                             raw.len == 0 ? "without a response" : "within the response headers");
                goto Exit;
            }
        }
        status = 0;
        if (raw.len < 12 || memcmp(raw.base, "HTTP/1.", 7) != 0 || raw.base[8] != ' ' ||
            sscanf(raw.base + 9, "%3d", &status) != 1 || status < 100) {
            snprintf(conn->err, conn->errlen, "%s: the response is not HTTP/1.x", conn->url);
            goto Exit;
        }
        if (status >= 200 || status == 101)
            break;
        /* an interim response (100 Continue, 103 Early Hints): the final one follows */
        raw.len -= (size_t)(hend + 4 - raw.base);
        memmove(raw.base, hend + 4, raw.len);
        raw.base[raw.len] = '\0';
    }
    size_t body_start = (size_t)(hend + 4 - raw.base);
    bool chunked = false, has_length = false;
    size_t length = 0;
    const char *location = NULL;
    size_t location_len = 0;
    for (char *line = memmem(raw.base, raw.len, "\r\n", 2) + 2; line < hend + 2;) {
        char *eol = memmem(line, (size_t)(hend + 2 - line), "\r\n", 2);
        size_t len = (size_t)(eol - line), vlen;
        const char *v;
        if (header_is(line, len, "content-length", &v, &vlen)) {
            size_t n = 0, i;
            for (i = 0; i != vlen && v[i] >= '0' && v[i] <= '9'; ++i)
                n = n > conn->max_body ? n : n * 10 + (size_t)(v[i] - '0'); /* stops growing once too large */
            if (vlen == 0 || i != vlen || (has_length && n != length)) {
                snprintf(conn->err, conn->errlen, "%s: bad Content-Length", conn->url);
                goto Exit;
            }
            has_length = true;
            length = n;
        } else if (header_is(line, len, "transfer-encoding", &v, &vlen)) {
            if (!(vlen == 7 && strncasecmp(v, "chunked", 7) == 0) && !(vlen == 8 && strncasecmp(v, "identity", 8) == 0)) {
                snprintf(conn->err, conn->errlen, "%s: unsupported Transfer-Encoding %.*s", conn->url, (int)(vlen < 40 ? vlen : 40), v);
                goto Exit;
            }
            chunked |= vlen == 7;
        } else if (header_is(line, len, "content-encoding", &v, &vlen)) {
            if (!(vlen == 8 && strncasecmp(v, "identity", 8) == 0)) {
                snprintf(conn->err, conn->errlen, "%s: unsupported Content-Encoding %.*s", conn->url, (int)(vlen < 40 ? vlen : 40), v);
                goto Exit;
            }
        } else if (header_is(line, len, "location", &v, &vlen)) {
            location = v;
            location_len = vlen < 200 ? vlen : 200;
        }
        line = eol + 2;
    }
    out->status = status;
    if (location != NULL)
        snprintf(out->location, sizeof(out->location), "%.*s", (int)location_len, location);
    if (head_request || status == 204 || status == 304) {
        /* no body, whatever the headers say */
    } else if (chunked) {
        if (read_chunked(conn, &raw, body_start, body) != 0)
            goto Exit;
    } else if (has_length) {
        if (length > conn->max_body) {
            snprintf(conn->err, conn->errlen, "%s: the response is larger than %zu bytes", conn->url, conn->max_body);
            goto Exit;
        }
        while (raw.len - body_start < length) {
            if ((r = conn_fill(conn, &raw)) != 0) {
                if (r > 0)
                    snprintf(conn->err, conn->errlen, "%s: the response ends after %zu of %zu bytes", conn->url, raw.len - body_start,
                             length);
                goto Exit;
            }
        }
        util_buf_append(body, raw.base + body_start, length);
    } else {
        /* what came with the head counts too */
        for (r = 0; r == 0 && raw.len - body_start <= conn->max_body;)
            r = conn_fill(conn, &raw);
        if (raw.len - body_start > conn->max_body) {
            snprintf(conn->err, conn->errlen, "%s: the response is larger than %zu bytes", conn->url, conn->max_body);
            goto Exit;
        }
        if (r < 0)
            goto Exit;
        util_buf_append(body, raw.base + body_start, raw.len - body_start);
    }
    ret = 0;

Exit:
    util_buf_dispose(&raw);
    return ret;
}

/* The length of the token (RFC 9110 5.6.2) that `s` starts with. */
static size_t token_len(const char *s)
{
    size_t n = 0;
    for (char c; (c = s[n]) != '\0'; ++n)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr("!#$%&'*+-.^_`|~", c) != NULL))
            break;
    return n;
}

/* Why an extra header line cannot go out, or NULL. Lines come from users: "Name: value" with a token name, no line break
 * or other control character, and none of the headers that frame the message (written here, once). */
static const char *header_line_problem(const char *line, size_t name_len)
{
    static const char *const framing[] = {"host", "content-length", "transfer-encoding", "connection"};
    for (const char *p = line; *p != '\0'; ++p) {
        if (*p == '\r' || *p == '\n')
            return "contains a line break";
        if (((unsigned char)*p < ' ' && *p != '\t') || *p == 0x7f)
            return "contains a control character";
    }
    if (name_len == 0 || line[name_len] != ':')
        return "is not \"Name: value\"";
    for (size_t i = 0; i != sizeof(framing) / sizeof(framing[0]); ++i)
        if (strlen(framing[i]) == name_len && strncasecmp(line, framing[i], name_len) == 0)
            return "sets a header that the client writes itself";
    return NULL;
}

int util_httpc_exchange(const util_httpc_request_t *req, util_httpc_response_t *res, util_buf_t *body, char *err, size_t errlen)
{
    http_url_t u = {0};
    unsigned total = req->total_timeout_ms != 0 ? req->total_timeout_ms : DEFAULT_TOTAL_TIMEOUT_MS;
    http_conn_t conn = {.url = req->url,
                        .fd = -1,
                        .deadline = util_time_monotonic_ms() + total,
                        .io_timeout_ms = req->io_timeout_ms != 0 ? req->io_timeout_ms : DEFAULT_IO_TIMEOUT_MS,
                        .max_body = req->max_body != 0 ? req->max_body : DEFAULT_MAX_BODY,
                        .err = err,
                        .errlen = errlen};
    util_buf_t head, discard;
    int ret = -1;

    memset(res, 0, sizeof(*res));
    util_buf_init(&head);
    util_buf_init(&discard);
    if (req->method[0] == '\0' || req->method[token_len(req->method)] != '\0') {
        snprintf(err, errlen, "%s: bad method", req->url);
        goto Exit;
    }
    for (size_t i = 0; i != req->nheaders; ++i) {
        /* named by position and name only: values may be secrets */
        size_t name_len = token_len(req->headers[i]);
        const char *problem = header_line_problem(req->headers[i], name_len);
        if (problem != NULL) {
            int shown = (int)(name_len < 64 ? name_len : 64);
            snprintf(err, errlen, "%s: request header %zu%s%.*s%s %s", req->url, i, shown != 0 ? " (" : "", shown, req->headers[i],
                     shown != 0 ? ")" : "", problem);
            goto Exit;
        }
    }
    if (url_parse(req->url, &u, err, errlen) != 0)
        goto Exit;
    util_buf_printf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fhirsched/" FHIRSCHED_VERSION "\r\n"
                           "Accept-Encoding: identity\r\nConnection: close\r\n",
                    req->method, u.target, u.host_header);
    for (size_t i = 0; i != req->nheaders; ++i)
        util_buf_printf(&head, "%s\r\n", req->headers[i]);
    if (req->body != NULL || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0)
        util_buf_printf(&head, "Content-Length: %zu\r\n", req->body != NULL ? req->body_len : 0);
    util_buf_puts(&head, "\r\n");
    if (conn_connect(&conn, &u) != 0 || (u.tls && conn_tls_start(&conn, &u, req->ca_file) != 0))
        goto Exit;
    if (conn_write_all(&conn, head.base, head.len) != 0 || (req->body != NULL && conn_write_all(&conn, req->body, req->body_len) != 0))
        goto Exit;
    if (read_response(&conn, strcmp(req->method, "HEAD") == 0, res, body != NULL ? body : &discard) != 0)
        goto Exit;
    ret = 0;

Exit:
    conn_close(&conn);
    url_dispose(&u);
    util_buf_dispose(&head);
    util_buf_dispose(&discard);
    return ret;
}

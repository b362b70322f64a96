/* The blocking HTTP client (util/httpc.c) against a scripted server thread on 127.0.0.1: what goes out on the wire, what
 * comes back as a status or a body, and the failures (refused, timed out, refused headers, bodies over the limit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include "util/httpc.h"
#include "util/str.h"
#include "util/time.h"

#define MAX_STEPS 8
#define NUM(a) (sizeof(a) / sizeof((a)[0]))

/* What the server does with one connection. */
typedef struct st_step_t {
    const char *response; /* NULL: never answer, wait for the client to give up */
    unsigned pause_ms;    /* not 0: send the response one byte at a time, pausing this long after each */
} step_t;

/* One connection per step, in order; each request is kept as it arrived (head and body). */
typedef struct st_script_server_t {
    int fd;
    int port;
    pthread_t thread;
    const step_t *steps;
    size_t nsteps;
    util_buf_t seen[MAX_STEPS];
} script_server_t;

/* Reads one request: the head, then as many body bytes as its Content-Length says. */
static void read_request(int c, util_buf_t *seen)
{
    char chunk[4096];
    ssize_t n;
    const char *hend = NULL;
    while ((hend = seen->base != NULL ? strstr(seen->base, "\r\n\r\n") : NULL) == NULL) {
        if ((n = recv(c, chunk, sizeof(chunk), 0)) <= 0)
            return;
        util_buf_append(seen, chunk, (size_t)n);
    }
    size_t head_len = (size_t)(hend + 4 - seen->base), body_len = 0;
    const char *cl = strcasestr(seen->base, "\r\nContent-Length:");
    if (cl != NULL && cl < hend)
        body_len = strtoul(cl + strlen("\r\nContent-Length:"), NULL, 10);
    while (seen->len < head_len + body_len) {
        if ((n = recv(c, chunk, sizeof(chunk), 0)) <= 0)
            return;
        util_buf_append(seen, chunk, (size_t)n);
    }
}

static void answer(int c, const step_t *step)
{
    char byte;
    if (step->response == NULL) {
        /* silent until the client closes */
        while (recv(c, &byte, 1, 0) > 0)
            ;
        return;
    }
    size_t len = strlen(step->response);
    if (step->pause_ms != 0) {
        for (size_t i = 0; i != len; ++i) {
            if (send(c, step->response + i, 1, MSG_NOSIGNAL) != 1)
                return;
            usleep(step->pause_ms * 1000);
        }
        return;
    }
    /* in two writes, so the client reads more than once */
    size_t half = len / 2;
    if (send(c, step->response, half, MSG_NOSIGNAL) >= 0) {
        usleep(10000);
        send(c, step->response + half, len - half, MSG_NOSIGNAL);
    }
}

static void *serve(void *arg)
{
    script_server_t *s = arg;
    for (size_t i = 0; i != s->nsteps; ++i) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            break;
        read_request(c, &s->seen[i]);
        answer(c, &s->steps[i]);
        close(c);
    }
    return NULL;
}

/* A listening socket on 127.0.0.1 with an ephemeral port. */
static int listen_local(int *port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &alen), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Starts serving `steps`; `url` becomes http://127.0.0.1:<port><path>. */
static void server_start(script_server_t *s, const step_t *steps, size_t nsteps, const char *path, char *url, size_t urllen)
{
    assert_true(nsteps <= MAX_STEPS);
    memset(s, 0, sizeof(*s));
    s->steps = steps;
    s->nsteps = nsteps;
    for (size_t i = 0; i != MAX_STEPS; ++i)
        util_buf_init(&s->seen[i]);
    s->fd = listen_local(&s->port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
    snprintf(url, urllen, "http://127.0.0.1:%d%s", s->port, path);
}

/* Waits for the scripted steps to finish; what the server saw stays readable until server_dispose. */
static void server_stop(script_server_t *s)
{
    pthread_join(s->thread, NULL);
    close(s->fd);
}

static void server_dispose(script_server_t *s)
{
    for (size_t i = 0; i != MAX_STEPS; ++i)
        util_buf_dispose(&s->seen[i]);
}

/* The request as the server saw it, "" when none arrived. */
static const char *seen(const script_server_t *s, size_t i)
{
    return s->seen[i].base != NULL ? s->seen[i].base : "";
}

/* One exchange that must complete with `status` and, when `want_body` is not NULL, exactly that body. */
static util_httpc_response_t expect_status(const util_httpc_request_t *req, int status, const char *want_body)
{
    util_httpc_response_t res;
    util_buf_t body;
    char err[512];
    util_buf_init(&body);
    if (util_httpc_exchange(req, &res, want_body != NULL ? &body : NULL, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(res.status, status);
    if (want_body != NULL) {
        assert_int_equal(body.len, strlen(want_body));
        assert_string_equal(body.base, want_body);
    }
    util_buf_dispose(&body);
    return res;
}

/* One exchange that must fail with a message "<url>: ..." that contains `fragment`. */
static util_httpc_response_t expect_failure(const util_httpc_request_t *req, const char *fragment)
{
    util_httpc_response_t res;
    char err[512];
    assert_int_equal(util_httpc_exchange(req, &res, NULL, err, sizeof(err)), -1);
    size_t ulen = strlen(req->url);
    if (strncmp(err, req->url, ulen) != 0 || err[ulen] != ':' || strstr(err, fragment) == NULL)
        fail_msg("\"%s\" is not \"%s: ...%s...\"", err, req->url, fragment);
    return res;
}

/* `request` starts with the request line `line` and holds `header` ("Name: value") as a whole line. */
static void assert_request(const char *request, const char *line, const char *header)
{
    assert_int_equal(strncmp(request, line, strlen(line)), 0);
    if (header != NULL) {
        char *want = util_asprintf("\r\n%s\r\n", header);
        if (strstr(request, want) == NULL)
            fail_msg("no %s in\n%s", header, request);
        free(want);
    }
}

static void test_post_headers_and_body(void **state)
{
    static const char payload[] = "{\"resourceType\":\"Bundle\",\"type\":\"subscription-notification\"}";
    static const char line[] = "POST /hooks/a?x=1&y=%20 HTTP/1.1\r\n";
    const step_t steps[] = {
        {"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"},
        {"HTTP/1.1 204 No Content\r\n\r\n"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
    };
    script_server_t s;
    char url[128], want[128];
    server_start(&s, steps, NUM(steps), "/hooks/a?x=1&y=%20#frag", url, sizeof(url));
    const char *const headers[] = {"Content-Type: application/fhir+json", "Authorization: Bearer abc.def",
                                   "X-FHIR-Event:\tnotification"};
    util_httpc_request_t req = {
        .method = "POST", .url = url, .headers = headers, .nheaders = 3, .body = payload, .body_len = strlen(payload)};

    /* POST with headers and a body */
    assert_string_equal(expect_status(&req, 201, "ok").location, "");
    /* a body-less POST still says Content-Length: 0 */
    req.body = NULL;
    req.body_len = 0;
    req.nheaders = 0;
    expect_status(&req, 204, "");
    /* a GET has none */
    req.method = "GET";
    expect_status(&req, 200, "");
    server_stop(&s);

    const char *r = seen(&s, 0);
    snprintf(want, sizeof(want), "Host: 127.0.0.1:%d", s.port);
    assert_request(r, line, want);
    assert_request(r, line, "User-Agent: fhirsched/" FHIRSCHED_VERSION);
    assert_request(r, line, "Connection: close");
    for (size_t i = 0; i != NUM(headers); ++i)
        assert_request(r, line, headers[i]);
    snprintf(want, sizeof(want), "Content-Length: %zu", strlen(payload));
    assert_request(r, line, want);
    const char *hend = strstr(r, "\r\n\r\n");
    assert_non_null(hend);
    assert_string_equal(hend + 4, payload);
    assert_null(strstr(r, "#frag"));

    r = seen(&s, 1);
    assert_request(r, line, "Content-Length: 0");
    assert_null(strstr(r, "Authorization"));
    assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\n");

    r = seen(&s, 2);
    assert_request(r, "GET /hooks/a?x=1&y=%20 HTTP/1.1\r\n", NULL);
    assert_null(strcasestr(r, "Content-Length"));
    server_dispose(&s);
}

static void test_status_is_not_an_error(void **state)
{
    const step_t steps[] = {
        {"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"},
        {"HTTP/1.0 404 Not Found\r\n\r\nnot here"},
        {"HTTP/1.1 302 Found\r\nlocation:  https://elsewhere.example/hook \r\nContent-Length: 0\r\n\r\n"},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n"
         "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"},
    };
    script_server_t s;
    char url[128];
    server_start(&s, steps, NUM(steps), "", url, sizeof(url));
    util_httpc_request_t req = {.method = "POST", .url = url, .body = "{}", .body_len = 2};

    expect_status(&req, 500, "oops");
    /* read to close */
    expect_status(&req, 404, "not here");
    /* the Location comes back, trimmed */
    assert_string_equal(expect_status(&req, 302, NULL).location, "https://elsewhere.example/hook");
    /* interim responses are skipped */
    expect_status(&req, 202, "{}");
    server_stop(&s);
    /* a URL without a path asks for "/" */
    assert_request(seen(&s, 0), "POST / HTTP/1.1\r\n", NULL);
    server_dispose(&s);
}

static void test_chunked(void **state)
{
    const step_t steps[] = {
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n"},
        {"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
    };
    script_server_t s;
    char url[128];
    server_start(&s, steps, NUM(steps), "/c", url, sizeof(url));
    util_httpc_request_t req = {.method = "GET", .url = url};

    expect_status(&req, 200, "hello 0123456789");
    /* cut short, malformed, encoded */
    expect_failure(&req, "within a chunk");
    expect_failure(&req, "bad chunked encoding");
    expect_failure(&req, "Transfer-Encoding");
    server_stop(&s);
    server_dispose(&s);
}

static void test_connect_refused(void **state)
{
    int port, fd = listen_local(&port);
    close(fd); /* nobody listens on that port now */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
    util_httpc_request_t req = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    assert_int_equal(expect_failure(&req, "cannot connect").status, 0);
    req.url = "http://no-such-host.invalid/";
    expect_failure(&req, "cannot resolve");
}

static void test_timeouts(void **state)
{
    const step_t steps[] = {
        {NULL},
        {"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n0123456789012345678901234567890123456789", 50},
    };
    script_server_t s;
    char url[128];
    server_start(&s, steps, NUM(steps), "/slow", url, sizeof(url));
    util_httpc_request_t req = {
        .method = "POST", .url = url, .body = "{}", .body_len = 2, .io_timeout_ms = 200, .total_timeout_ms = 5000};

    /* a server that never answers: the read waits io_timeout_ms */
    uint64_t start = util_time_monotonic_ms();
    expect_failure(&req, "timed out");
    uint64_t took = util_time_monotonic_ms() - start;
    assert_true(took >= 150 && took < 3000);

    /* a server that trickles (a byte every 50 ms, each read well within io_timeout_ms) is cut by total_timeout_ms */
    req.io_timeout_ms = 1000;
    req.total_timeout_ms = 300;
    start = util_time_monotonic_ms();
    expect_failure(&req, "timed out");
    took = util_time_monotonic_ms() - start;
    assert_true(took >= 250 && took < 3000);
    server_stop(&s);
    server_dispose(&s);
}

static void test_bad_headers_refused(void **state)
{
    /* refused before any connection: the URL names a port where nobody listens */
    static const char *const bad[] = {
        "X-A: b\r\nX-B: c", "X-A: b\nX-B: c", "X-A: b\r", "X-A: \x01", "X-A b", ": b", "X A: b", "Content-Length: 5",
        "transfer-encoding: chunked", "Host: evil.example", "Connection: keep-alive",
    };
    for (size_t i = 0; i != NUM(bad); ++i) {
        const char *const headers[] = {"Accept: */*", bad[i]};
        util_httpc_request_t req = {.method = "POST", .url = "http://127.0.0.1:1/hook", .headers = headers, .nheaders = 2};
        expect_failure(&req, "request header 1");
    }
    const char *const line_break[] = {"X-A: b\r\nX-B: c"};
    util_httpc_request_t req = {.method = "POST", .url = "http://127.0.0.1:1/hook", .headers = line_break, .nheaders = 1};
    expect_failure(&req, "line break");
    req.nheaders = 0;
    req.method = "GET /x HTTP/1.1\r\nX:";
    expect_failure(&req, "bad method");
    /* and the URL: no way to a second line there either */
    req.method = "GET";
    req.url = "http://127.0.0.1:1/a\r\nX: y";
    expect_failure(&req, "control characters");
}

static void test_max_body(void **state)
{
    const step_t steps[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789A"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n6789A\r\n0\r\n\r\n"},
        {"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\n0123456789A"},
    };
    script_server_t s;
    char url[128];
    server_start(&s, steps, NUM(steps), "/big", url, sizeof(url));
    util_httpc_request_t req = {.method = "GET", .url = url, .max_body = 10};

    /* exactly the limit */
    expect_status(&req, 200, "0123456789");
    /* one over, by Content-Length, by a huge Content-Length, chunked, read to close; the status is known all the same */
    for (size_t i = 1; i != NUM(steps); ++i)
        assert_int_equal(expect_failure(&req, "larger than 10 bytes").status, i == 4 ? 500 : 200);
    server_stop(&s);
    server_dispose(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_headers_and_body),
        cmocka_unit_test(test_status_is_not_an_error),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_bad_headers_refused),
        cmocka_unit_test(test_max_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

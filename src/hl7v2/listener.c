/*
 * The MLLP listener: one SO_REUSEPORT socket per event loop, next to HTTP's. Each connection deframes what it reads
 * (mllp.c) and hands complete messages to inbound.c one at a time, in order; each ACK is written before the next
 * message starts. Bad framing costs only that connection.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "hl7v2/hl7.h"
#include "hl7v2/inbound.h"
#include "hl7v2/mllp.h"
#include "util/log.h"
#include "util/net.h"
#include "util/str.h"

#define MODULE_NAME "hl7v2/listener.c"
/* Messages read ahead of the one being applied; past this, reading pauses (the sender waits for ACKs anyway). */
#define MAX_QUEUED 32

typedef struct st_hl7_queued_t {
    char *data;
    size_t len;
    bool too_large;
    struct st_hl7_queued_t *next;
} hl7_queued_t;

typedef struct st_hl7_conn_t {
    h2o_socket_t *sock;
    hl7_mllp_t framer;
    h2o_linklist_t link;
    h2o_timeout_entry_t idle;
    hl7_queued_t *head, *tail;
    size_t queued;
    bool busy;        /* a message is being applied or its ACK written */
    bool closed;      /* the socket is gone; the message in progress finishes without an answer */
    bool reading;
    bool writing;     /* an ACK is on its way out */
    util_buf_t out;   /* the framed ACK being written */
    char peer[64];
} hl7_conn_t;

static struct {
    char *host;
    unsigned short port;
    SSL_CTX *ssl;
    unsigned idle_ms;
    size_t max_message;
} settings;

static __thread struct {
    h2o_loop_t *loop;
    store_pool_t *pool;
    h2o_socket_t *listener;
    h2o_linklist_t conns;
    h2o_timeout_t idle;
    bool started;
} L;

static atomic_ullong counter_inbound[3];
static atomic_long counter_connections;

hl7_counters_t hl7_counters(void)
{
    hl7_counters_t c;
    for (int i = 0; i != 3; ++i)
        c.inbound[i] = atomic_load(&counter_inbound[i]);
    c.connections = atomic_load(&counter_connections);
    return c;
}

bool hl7_listener_enabled(void)
{
    return settings.host != NULL;
}

int hl7_listener_configure(const char *listen, const char *cert_file, const char *key_file, unsigned idle_ms, size_t max_message,
                           char *err, size_t errlen)
{
    free(settings.host);
    settings.host = NULL;
    if (listen == NULL)
        return 0;
    if (util_config_split_hostport(listen, &settings.host, &settings.port) != 0) {
        snprintf(err, errlen, "hl7.listen must be host:port (got \"%s\")", listen);
        return -1;
    }
    settings.idle_ms = idle_ms;
    settings.max_message = max_message;
    if (cert_file != NULL) {
        settings.ssl = SSL_CTX_new(TLS_server_method());
        SSL_CTX_set_min_proto_version(settings.ssl, TLS1_2_VERSION);
        if (SSL_CTX_use_certificate_chain_file(settings.ssl, cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(settings.ssl, key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(settings.ssl) != 1) {
            char why[256];
            ERR_error_string_n(ERR_get_error(), why, sizeof(why));
            snprintf(err, errlen, "hl7.tls_cert_file/hl7.tls_key_file (%s, %s) cannot be used: %s", cert_file, key_file, why);
            SSL_CTX_free(settings.ssl);
            settings.ssl = NULL;
            return -1;
        }
    }
    return 0;
}

int hl7_listener_open(char *err, size_t errlen)
{
    return util_net_listen(settings.host, settings.port, "hl7.listen", err, errlen);
}

/* ---- connections ---- */

static void on_read(h2o_socket_t *sock, const char *err);
static void process_next(hl7_conn_t *conn);

static void conn_free_if_done(hl7_conn_t *conn)
{
    if (!conn->closed || conn->busy)
        return;
    while (conn->head != NULL) {
        hl7_queued_t *q = conn->head;
        conn->head = q->next;
        free(q->data);
        free(q);
    }
    hl7_mllp_dispose(&conn->framer);
    util_buf_dispose(&conn->out);
    free(conn);
}

static void conn_close(hl7_conn_t *conn)
{
    if (conn->closed)
        return;
    conn->closed = true;
    if (conn->writing) {
        /* h2o drops the write's callback with the socket: the ACK's message is done */
        conn->writing = false;
        conn->busy = false;
    }
    if (h2o_timeout_is_linked(&conn->idle))
        h2o_timeout_unlink(&conn->idle);
    if (h2o_linklist_is_linked(&conn->link))
        h2o_linklist_unlink(&conn->link);
    h2o_socket_close(conn->sock);
    conn->sock = NULL;
    atomic_fetch_sub(&counter_connections, 1);
    conn_free_if_done(conn);
}

static void touch(hl7_conn_t *conn)
{
    if (h2o_timeout_is_linked(&conn->idle))
        h2o_timeout_unlink(&conn->idle);
    h2o_timeout_link(L.loop, &L.idle, &conn->idle);
}

static void on_idle(h2o_timeout_entry_t *entry)
{
    hl7_conn_t *conn = H2O_STRUCT_FROM_MEMBER(hl7_conn_t, idle, entry);
    if (conn->busy) {
        touch(conn); /* the database is slow, not the sender */
        return;
    }
    conn_close(conn);
}

static void on_ack_written(h2o_socket_t *sock, const char *err)
{
    hl7_conn_t *conn = sock->data;
    conn->busy = false;
    conn->writing = false;
    if (err != NULL) {
        conn_close(conn);
        return;
    }
    touch(conn);
    process_next(conn);
}

static void on_processed(void *data, hl7_ack_code_t code, const char *ack)
{
    hl7_conn_t *conn = data;
    atomic_fetch_add(&counter_inbound[code], 1);
    if (conn->closed) {
        conn->busy = false;
        conn_free_if_done(conn);
        return;
    }
    conn->out.len = 0;
    hl7_mllp_wrap(&conn->out, ack, strlen(ack));
    h2o_iovec_t buf = h2o_iovec_init(conn->out.base, conn->out.len);
    conn->writing = true;
    h2o_socket_write(conn->sock, &buf, 1, on_ack_written);
}

static void process_next(hl7_conn_t *conn)
{
    if (conn->busy || conn->closed)
        return;
    if (conn->head == NULL) {
        if (!conn->reading) {
            conn->reading = true;
            h2o_socket_read_start(conn->sock, on_read);
        }
        return;
    }
    hl7_queued_t *q = conn->head;
    conn->head = q->next;
    if (conn->head == NULL)
        conn->tail = NULL;
    --conn->queued;
    conn->busy = true;
    hl7_inbound_process(L.pool, q->data, q->len, q->too_large, conn->peer, on_processed, conn);
    free(q->data);
    free(q);
}

static void enqueue(hl7_conn_t *conn, const char *data, size_t len, bool too_large)
{
    hl7_queued_t *q = util_xcalloc(1, sizeof(*q));
    q->data = util_xmalloc(len + 1);
    memcpy(q->data, data, len);
    q->len = len;
    q->too_large = too_large;
    if (conn->tail != NULL)
        conn->tail->next = q;
    else
        conn->head = q;
    conn->tail = q;
    ++conn->queued;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    hl7_conn_t *conn = sock->data;
    if (err != NULL) {
        conn_close(conn);
        return;
    }
    touch(conn);
    size_t off = 0, len = sock->input->size;
    while (off < len) {
        hl7_mllp_event_t ev;
        const char *message;
        size_t mlen;
        off += hl7_mllp_feed(&conn->framer, sock->input->bytes + off, len - off, &ev, &message, &mlen);
        if (ev == HL7_MLLP_GARBAGE) {
            LOG_WARN("closing HL7 connection from %s: bytes outside MLLP framing", conn->peer);
            conn_close(conn);
            return;
        }
        if (ev == HL7_MLLP_MESSAGE || ev == HL7_MLLP_TOO_LARGE)
            enqueue(conn, message, mlen, ev == HL7_MLLP_TOO_LARGE);
    }
    h2o_buffer_consume(&sock->input, len);
    if (conn->queued >= MAX_QUEUED) {
        h2o_socket_read_stop(sock);
        conn->reading = false;
    }
    process_next(conn);
}

static void conn_start(h2o_socket_t *sock)
{
    hl7_conn_t *conn = util_xcalloc(1, sizeof(*conn));
    conn->sock = sock;
    sock->data = conn;
    hl7_mllp_init(&conn->framer, settings.max_message);
    util_buf_init(&conn->out);
    conn->idle.cb = on_idle;
    struct sockaddr_storage ss;
    socklen_t sl = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (sl != 0 && getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(conn->peer, sizeof(conn->peer), "%.46s:%.8s", host, serv);
    h2o_linklist_insert(&L.conns, &conn->link);
    atomic_fetch_add(&counter_connections, 1);
    touch(conn);
    conn->reading = true;
    h2o_socket_read_start(sock, on_read);
    /* bytes that came with the end of a TLS handshake are already decrypted: no read event will announce them */
    if (sock->input->size != 0)
        on_read(sock, NULL);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    if (err != NULL) {
        h2o_socket_close(sock);
        return;
    }
    conn_start(sock);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock == NULL)
        return;
    if (settings.ssl != NULL)
        h2o_socket_ssl_handshake(sock, settings.ssl, NULL, on_handshake);
    else
        conn_start(sock);
}

void hl7_listener_start(h2o_loop_t *loop, int fd, store_pool_t *pool)
{
    L.loop = loop;
    L.pool = pool;
    h2o_linklist_init_anchor(&L.conns);
    h2o_timeout_init(loop, &L.idle, settings.idle_ms);
    L.listener = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(L.listener, on_accept);
    L.started = true;
}

void hl7_listener_stop(h2o_loop_t *loop)
{
    if (!L.started)
        return;
    if (L.listener != NULL) {
        h2o_socket_read_stop(L.listener);
        h2o_socket_close(L.listener);
        L.listener = NULL;
    }
    /* Idle connections go now; one applying a message closes once its ACK is out (or at the loop's end). */
    h2o_linklist_t *node = L.conns.next;
    while (node != &L.conns) {
        hl7_conn_t *conn = H2O_STRUCT_FROM_MEMBER(hl7_conn_t, link, node);
        node = node->next;
        if (!conn->busy)
            conn_close(conn);
    }
}

bool hl7_listener_busy(h2o_loop_t *loop)
{
    if (!L.started)
        return false;
    for (h2o_linklist_t *node = L.conns.next; node != &L.conns; node = node->next)
        if (H2O_STRUCT_FROM_MEMBER(hl7_conn_t, link, node)->busy)
            return true;
    return false;
}

void hl7_listener_dispose(h2o_loop_t *loop)
{
    if (!L.started)
        return;
    while (!h2o_linklist_is_empty(&L.conns)) {
        /* one still applying a message is freed when its answer arrives (the pool fails what it has queued) */
        conn_close(H2O_STRUCT_FROM_MEMBER(hl7_conn_t, link, L.conns.next));
    }
    h2o_timeout_dispose(loop, &L.idle);
    L.started = false;
}

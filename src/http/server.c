/*
 * Listeners and event loops: one h2o loop per thread, each with its own SO_REUSEPORT listener and database pool.
 * SIGTERM/SIGINT stop accepting, let requests that wait for the database finish, then stop the loops.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "fhir/interaction.h"
#include "http/http.h"
#include "auth/keys.h"
#include "http/ratelimit.h"
#include "hl7v2/hl7.h"
#include "sched/find.h"
#include "sched/ops.h"
#include "subs/subs.h"
#include "util/log.h"
#include "util/net.h"
#include "util/str.h"
#include "util/time.h"

#define MODULE_NAME "http/server.c"
/* Loops wake this often to notice a shutdown request. */
#define LOOP_TICK_MS 100
/* After the last database-bound request finished, keep flushing responses this long. */
#define SHUTDOWN_FLUSH_MS 200
/* h2o refuses larger bodies with its own plain-text 413; up to this margin above the limit we answer with an OperationOutcome. */
#define BODY_LIMIT_MARGIN (1024 * 1024)

const util_config_t *http_config;
static h2o_globalconf_t globalconf;
static atomic_int shutdown_requested;
/* Every module's statements, which each database connection prepares once when it connects. */
static store_stmt_t *statements;
static size_t nstatements;

static void collect_statements(void)
{
    const struct {
        const store_stmt_t *list;
        size_t n;
    } modules[] = {{fhir_ix_statements, fhir_ix_statement_count},
                   {sched_ops_statements, sched_ops_statement_count},
                   {hl7_inbound_statements, hl7_inbound_statement_count}};
    nstatements = 0;
    for (size_t i = 0; i != sizeof(modules) / sizeof(modules[0]); ++i)
        nstatements += modules[i].n;
    statements = util_xcalloc(nstatements, sizeof(*statements));
    size_t at = 0;
    for (size_t i = 0; i != sizeof(modules) / sizeof(modules[0]); ++i)
        for (size_t j = 0; j != modules[i].n; ++j)
            statements[at++] = modules[i].list[j];
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    http_thread_t *t = listener->data;
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(&t->accept_ctx, sock);
}

static bool thread_has_connections(http_thread_t *t)
{
    return !h2o_linklist_is_empty(&t->ctx.http1._conns) || !h2o_linklist_is_empty(&t->ctx.http2._conns);
}

static void *thread_main(void *arg)
{
    http_thread_t *t = arg;
    t->loop = h2o_evloop_create();
    h2o_context_init(&t->ctx, t->loop, &globalconf);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = globalconf.hosts;
    t->pool = store_pool_create(t->loop, http_config->database_url, http_config->database_pool_size,
                                http_config->database_queue_limit, http_config->database_query_timeout_ms, statements, nstatements);
    t->listener = h2o_evloop_socket_create(t->loop, t->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);
    if (t->runs_sweeper)
        sched_sweeper_start(t->loop, t->pool);
    if (t->hl7_fd >= 0)
        hl7_listener_start(t->loop, t->hl7_fd, t->pool);
    http_rest_thread_init(t);

    while (!atomic_load(&shutdown_requested))
        h2o_evloop_run(t->loop, LOOP_TICK_MS);

    /* Stop accepting, ask connections to wind down, and let requests that wait for the database finish. */
    if (t->runs_sweeper)
        sched_sweeper_stop();
    h2o_socket_read_stop(t->listener);
    h2o_socket_close(t->listener);
    t->listener = NULL;
    subs_ws_loop_shutdown(t->loop);
    hl7_listener_stop(t->loop);
    h2o_context_request_shutdown(&t->ctx);
    uint64_t deadline = util_time_monotonic_ms() + http_config->http_shutdown_grace_ms, idle_since = 0;
    bool closing_idle = false;
    while (thread_has_connections(t) && util_time_monotonic_ms() < deadline) {
        uint64_t now = util_time_monotonic_ms();
        if (t->inflight != 0 || hl7_listener_busy(t->loop)) {
            idle_since = 0;
        } else if (idle_since == 0) {
            idle_since = now;
        } else if (!closing_idle && now - idle_since >= SHUTDOWN_FLUSH_MS) {
            /* Every answer is out: expire the keep-alive and idle timers so idle connections close now rather than
             * after their full timeout (h2o 2.2.5 has no call to close them). */
            t->ctx.http1.req_timeout.timeout = 0;
            t->ctx.http2.idle_timeout.timeout = 0;
            t->ctx.http2.graceful_shutdown_timeout.timeout = 0;
            closing_idle = true;
        }
        h2o_evloop_run(t->loop, 20);
    }
    /* An HL7 message still being applied gets the rest of the grace period to commit and answer. */
    while (hl7_listener_busy(t->loop) && util_time_monotonic_ms() < deadline)
        h2o_evloop_run(t->loop, 20);
    hl7_listener_dispose(t->loop);
    http_rest_thread_dispose(t);
    sched_ops_thread_dispose();
    /* Let h2o run the deferred closes of the sockets it just shut. */
    h2o_evloop_run(t->loop, 0);
    if (thread_has_connections(t)) {
        /* Disposing a context with live connections trips h2o's assertions: leave them to process exit. */
        LOG_WARN("connections still open after the shutdown grace period; exiting anyway");
        store_pool_destroy(t->pool);
        t->pool = NULL;
        return NULL;
    }
    store_pool_destroy(t->pool);
    t->pool = NULL;
    /* Connections still open after the grace period are dropped with the loop. */
    /* h2o 2.2.5 arms its HTTP/2 graceful-shutdown timer even with no HTTP/2 connection left; disarm it so the context
     * can be disposed (h2o_timeout_dispose asserts that nothing is linked). */
    if (h2o_timeout_is_linked(&t->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&t->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&t->ctx);
    h2o_evloop_destroy(t->loop);
    return NULL;
}

static SSL_CTX *create_tls_context(const util_config_t *cfg, char *err, size_t errlen)
{
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    /* Our cipher order wins; no TLS 1.2 renegotiation (client-initiated renegotiation is a cheap CPU drain); no session
     * tickets: OpenSSL's ticket key would live, unrotated, as long as the process, and whoever reads it can decrypt
     * every TLS 1.2 session resumed with it. Resumption still works through the server-side session cache (and
     * stateful TLS 1.3 tickets). */
    SSL_CTX_set_options(ssl, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    /* TLS 1.2 only: forward-secret AEAD suites by default. TLS 1.3 has only AEAD suites and keeps OpenSSL's. */
    if (cfg->tls_ciphers != NULL && SSL_CTX_set_cipher_list(ssl, cfg->tls_ciphers) != 1) {
        snprintf(err, errlen, "tls.ciphers: no usable cipher in \"%s\" (an OpenSSL cipher list such as ECDHE+AESGCM)", cfg->tls_ciphers);
        SSL_CTX_free(ssl);
        return NULL;
    }
    /* The contract is forward-secret AEAD for TLS 1.2: an operator's list that strays from it is allowed, but said. */
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ssl);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
        int kx = SSL_CIPHER_get_kx_nid(c);
        if (strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") != 0 && (!SSL_CIPHER_is_aead(c) || (kx != NID_kx_ecdhe && kx != NID_kx_dhe))) {
            LOG_WARN("tls.ciphers allows %s, which is not a forward-secret AEAD cipher", SSL_CIPHER_get_name(c));
            break;
        }
    }
    if (SSL_CTX_set1_groups_list(ssl, "X25519:P-256:P-384") != 1) {
        snprintf(err, errlen, "tls: cannot set the key exchange groups: %s", ERR_error_string(ERR_get_error(), NULL));
        SSL_CTX_free(ssl);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ssl, cfg->tls_cert_file) != 1) {
        snprintf(err, errlen, "tls.cert_file: cannot load %s: %s", cfg->tls_cert_file, ERR_error_string(ERR_get_error(), NULL));
        SSL_CTX_free(ssl);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ssl) != 1) {
        snprintf(err, errlen, "tls.key_file: cannot load %s or it does not match the certificate: %s", cfg->tls_key_file,
                 ERR_error_string(ERR_get_error(), NULL));
        SSL_CTX_free(ssl);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ssl, h2o_http2_alpn_protocols);
    return ssl;
}

int http_server_run(const util_config_t *cfg)
{
    char err[512];
    http_config = cfg;
    fhir_base_url = cfg->base_url;
    fhir_search_limits = (fhir_search_limits_t){cfg->search_default_count < cfg->search_max_count ? cfg->search_default_count
                                                                                                   : cfg->search_max_count,
                                                cfg->search_max_count, cfg->search_max_includes};

    sched_tz_t *tz = sched_tz_load(cfg->scheduling_default_timezone, err, sizeof(err));
    if (tz == NULL) {
        fprintf(stderr, "fhirsched: scheduling.default_timezone: %s\n", err);
        return 1;
    }
    sched_tz_destroy(tz);
    sched_settings = (sched_settings_t){
        .default_timezone = cfg->scheduling_default_timezone,
        .hold_ttl = cfg->scheduling_hold_ttl_seconds,
        .proposal_ttl = cfg->scheduling_proposal_ttl_seconds,
        .default_duration = (int64_t)cfg->scheduling_default_duration_minutes * 60,
        .default_alignment = (int)cfg->scheduling_default_alignment_minutes,
        .cancellation_cutoff = (int64_t)cfg->scheduling_cancellation_cutoff_minutes * 60,
        .find_max_days = cfg->scheduling_find_max_days,
        .find_default_count = cfg->scheduling_find_default_count,
        .find_max_count = cfg->scheduling_find_max_count,
        .sweep_interval_ms = cfg->scheduling_sweep_interval_ms,
    };

    h2o_config_init(&globalconf);
    globalconf.server_name = h2o_iovec_init(H2O_STRLIT("fhirsched"));
    globalconf.max_request_entity_size = cfg->http_max_body_bytes + BODY_LIMIT_MARGIN;
    globalconf.http1.req_timeout = cfg->http_header_timeout_ms;
    globalconf.http2.idle_timeout = cfg->http_idle_timeout_ms;
    globalconf.http2.graceful_shutdown_timeout = cfg->http_shutdown_grace_ms;
    h2o_hostconf_t *host = h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = http_rest_on_req;

    SSL_CTX *ssl = NULL;
    if (cfg->tls_cert_file != NULL && (ssl = create_tls_context(cfg, err, sizeof(err))) == NULL) {
        fprintf(stderr, "fhirsched: %s\n", err);
        return 1;
    }
    if (http_auth_init(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "fhirsched: %s\n", err);
        if (ssl != NULL)
            SSL_CTX_free(ssl);
        return 1;
    }
    if (http_cors_init(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "fhirsched: %s\n", err);
        if (ssl != NULL)
            SSL_CTX_free(ssl);
        return 1;
    }
    http_ratelimit_init(cfg->rate_limit_per_second, cfg->rate_limit_burst);
    if (hl7_init(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "fhirsched: %s\n", err);
        if (ssl != NULL)
            SSL_CTX_free(ssl);
        return 1;
    }

    /* Signals go to the main thread only, which turns them into a flag the loops poll. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    unsigned n = cfg->threads;
    http_thread_t *threads = util_xcalloc(n, sizeof(*threads));
    for (unsigned i = 0; i != n; ++i) {
        if ((threads[i].listen_fd = util_net_listen(cfg->listen_host, cfg->listen_port, "listen", err, sizeof(err))) < 0) {
            fprintf(stderr, "fhirsched: %s\n", err);
            return 1;
        }
        threads[i].accept_ctx.ssl_ctx = ssl;
        threads[i].hl7_fd = -1;
        if (hl7_listener_enabled() && (threads[i].hl7_fd = hl7_listener_open(err, sizeof(err))) < 0) {
            fprintf(stderr, "fhirsched: %s\n", err);
            return 1;
        }
    }
    collect_statements();
    threads[0].runs_sweeper = true; /* one sweeper per instance is plenty */
    /* before the loops take requests: the first booking must find the outbound endpoints published */
    if (hl7_outbound_start(cfg->database_url, err, sizeof(err)) != 0)
        LOG_ERROR("%s; outbound HL7 messages will not be sent", err);
    for (unsigned i = 0; i != n; ++i)
        pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]);
    if (subs_dispatch_start(err, sizeof(err)) != 0)
        LOG_ERROR("%s; rest-hook Subscriptions will not be delivered", err);
    LOG_INFO("serving FHIR at %s (%u threads%s)", cfg->base_url, n, ssl != NULL ? ", TLS" : "");
    if (hl7_listener_enabled())
        LOG_INFO("accepting HL7 v2 over MLLP on %s", cfg->hl7_listen);

    int sig;
    sigwait(&sigs, &sig);
    LOG_INFO("received %s; finishing in-flight requests", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    atomic_store(&shutdown_requested, 1);
    for (unsigned i = 0; i != n; ++i)
        pthread_join(threads[i].tid, NULL);
    subs_dispatch_stop();
    hl7_outbound_stop();
    LOG_INFO("stopped");
    free(threads);
    free(statements);
    http_ratelimit_dispose();
    auth_keys_dispose();
    http_cors_dispose();
    h2o_config_dispose(&globalconf);
    if (ssl != NULL)
        SSL_CTX_free(ssl);
    return 0;
}

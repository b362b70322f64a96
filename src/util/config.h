/*
 * Configuration: built-in defaults, then an optional YAML file, then FHIRSCHED_* environment variables
 * (key "database.url" is FHIRSCHED_DATABASE_URL). Read once at start-up; read-only afterwards.
 */
#ifndef UTIL_CONFIG_H
#define UTIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct st_util_config_t {
    char *listen_host;          /* listen: "127.0.0.1:8080" */
    unsigned short listen_port;
    char *base_url;             /* base_url: public FHIR base, default http://<listen>/fhir */
    unsigned threads;           /* threads: event loops, default = number of cores */
    char *database_url;         /* database.url: libpq connection string or URI */
    unsigned database_pool_size;       /* database.pool_size: connections per loop thread */
    unsigned database_queue_limit;     /* database.queue_limit: queries and transactions waiting per loop thread before 503 */
    unsigned database_query_timeout_ms; /* database.query_timeout_ms */
    size_t http_max_body_bytes;         /* http.max_body_bytes (413 above) */
    size_t http_max_header_bytes;       /* http.max_header_bytes: request line + headers (431 above) */
    unsigned http_idle_timeout_ms;      /* http.idle_timeout_ms: idle HTTP/2 connections */
    unsigned http_header_timeout_ms;    /* http.header_timeout_ms: HTTP/1.1 request heads and idle keep-alive (one timer in h2o) */
    unsigned http_shutdown_grace_ms;    /* http.shutdown_grace_ms: in-flight requests may finish on SIGTERM */
    unsigned search_default_count; /* search.default_count: page size when _count is absent */
    unsigned search_max_count;     /* search.max_count: larger _count values are capped to this */
    unsigned search_max_includes;  /* search.max_includes: _include/_revinclude resources per page */
    char *scheduling_default_timezone;           /* scheduling.default_timezone: IANA zone of Locations without one */
    unsigned scheduling_hold_ttl_seconds;        /* scheduling.hold_ttl_seconds: how long a $hold lasts */
    unsigned scheduling_proposal_ttl_seconds;    /* scheduling.proposal_ttl_seconds: how long $find proposals resolve */
    unsigned scheduling_default_duration_minutes; /* scheduling.default_duration_minutes: services without service-duration */
    unsigned scheduling_default_alignment_minutes; /* scheduling.default_alignment_minutes: start grid without slot-alignment */
    unsigned scheduling_cancellation_cutoff_minutes; /* scheduling.cancellation_cutoff_minutes: later cancellations are flagged */
    unsigned scheduling_find_max_days;           /* scheduling.find_max_days: longest $find window */
    unsigned scheduling_find_default_count;      /* scheduling.find_default_count: proposals when _count is absent */
    unsigned scheduling_find_max_count;          /* scheduling.find_max_count: largest _count honoured */
    unsigned scheduling_sweep_interval_ms;       /* scheduling.sweep_interval_ms: how often expired holds are cancelled */
    char *tls_cert_file;        /* tls.cert_file: PEM; TLS (with ALPN h2) when set together with tls.key_file */
    char *tls_key_file;         /* tls.key_file */
    char *tls_ciphers;          /* tls.ciphers: OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's) */
    bool auth_enabled;          /* auth.enabled: false switches authorization off (development only; warned at every start) */
    char *auth_issuer;          /* auth.issuer: the identity provider's `iss` */
    char *auth_audience;        /* auth.audience: the `aud` tokens must carry; default base_url */
    char *auth_jwks_file;       /* auth.jwks_file: JWKS (JSON) with the issuer's public keys */
    char *auth_jwks_url;        /* auth.jwks_url: the same, fetched over HTTP(S) and refreshed on an unknown kid */
    char *auth_jwks_ca_file;    /* auth.jwks_ca_file: CA bundle for an https jwks_url (default: the system's) */
    unsigned auth_clock_skew_seconds;  /* auth.clock_skew_seconds: tolerance on exp/nbf/iat */
    unsigned auth_jwks_refresh_seconds; /* auth.jwks_refresh_seconds: least time between two key refreshes */
    char *auth_role_claim;      /* auth.role_claim: claim with the clinic role(s) */
    char *auth_locations_claim; /* auth.locations_claim: claim with the Location references a user is limited to */
    char *auth_authorize_url;   /* auth.authorize_url: the IdP's authorization endpoint (advertised) */
    char *auth_token_url;       /* auth.token_url: the IdP's token endpoint (advertised) */
    unsigned rate_limit_per_second; /* rate_limit.per_second: requests per second per client (0: no limit) */
    unsigned rate_limit_burst;      /* rate_limit.burst: requests a client may send at once */
    bool audit_enabled;             /* audit.enabled: record AuditEvents */
    unsigned audit_retention_days;  /* audit.retention_days: older AuditEvents are deleted (0: kept forever) */
    char *cors_allowed_origins;     /* cors.allowed_origins: comma-separated origins, or "*" (empty: no CORS) */
    char *subs_endpoint_allowlist;  /* subscriptions.endpoint_allowlist: comma-separated URL prefixes rest-hooks may call */
    unsigned subs_max_failures;     /* subscriptions.max_failures: failed attempts in a row before status error */
    unsigned subs_retry_base_ms;    /* subscriptions.retry_base_ms: first retry delay, doubled per failure */
    unsigned subs_retry_max_ms;     /* subscriptions.retry_max_ms: longest retry delay */
    unsigned subs_timeout_ms;       /* subscriptions.timeout_ms: a rest-hook request that takes longer failed */
    unsigned subs_heartbeat_seconds; /* subscriptions.heartbeat_seconds: websocket ping interval */
    unsigned subs_retention_hours;  /* subscriptions.retention_hours: changes kept for subscriptions that fall behind */
    char *subs_ca_file;             /* subscriptions.ca_file: CAs for https endpoints (default: the system's) */
    char *hl7_listen;               /* hl7.listen: host:port of the MLLP listener (unset: off) */
    char *hl7_tls_cert_file;        /* hl7.tls_cert_file: PEM; MLLP over TLS when set together with hl7.tls_key_file */
    char *hl7_tls_key_file;         /* hl7.tls_key_file */
    size_t hl7_max_message_bytes;   /* hl7.max_message_bytes: longer messages are rejected (AR) */
    unsigned hl7_idle_timeout_ms;   /* hl7.idle_timeout_ms: silent connections are closed */
    char *hl7_sending_application;  /* hl7.sending_application: our MSH-3 */
    char *hl7_sending_facility;     /* hl7.sending_facility: our MSH-4 */
    char *hl7_timezone;             /* hl7.timezone: zone of timestamps without an offset (default scheduling.default_timezone) */
    unsigned hl7_retention_days;    /* hl7.retention_days: inbound records and sent messages kept this long */
    char *hl7_outbound;             /* hl7.outbound: legacy endpoints, mllp://host:port?... separated by spaces or ";" */
    unsigned hl7_ack_timeout_ms;    /* hl7.ack_timeout_ms: an outbound message not acknowledged in time failed */
    unsigned hl7_retry_base_ms;     /* hl7.retry_base_ms: first retry delay, doubled per failure */
    unsigned hl7_retry_max_ms;      /* hl7.retry_max_ms: longest retry delay */
    unsigned hl7_max_attempts;      /* hl7.max_attempts: failed attempts before a message is parked */
    bool log_access;            /* log.access: JSON access log lines on stdout */
    char *log_level;            /* log.level: error|warn|info|debug */
} util_config_t;

/** Fills `cfg` with the built-in defaults. */
void util_config_defaults(util_config_t *cfg);
/**
 * Applies a YAML file (may be NULL) and then the environment (`envp`, NULL-terminated "K=V" strings; NULL = environ).
 * On a bad setting returns -1 and writes a message naming the key (and file:line) into `err` (size `errlen`).
 */
int util_config_load(util_config_t *cfg, const char *yaml_path, char *const *envp, char *err, size_t errlen);
/** Splits "host:port" ("[::1]:2575" too) into a host (caller frees) and a port. 0, or -1 when it is not one. */
int util_config_split_hostport(const char *value, char **host, unsigned short *port);
/** Frees the strings held by `cfg`. */
void util_config_dispose(util_config_t *cfg);

#endif

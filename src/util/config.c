#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>
#include "util/config.h"
#include "util/str.h"

extern char **environ;

/* CONFIG_LISTEN is the HTTP listener (split into listen_host/listen_port); CONFIG_HOSTPORT a checked "host:port" string. */
typedef enum { CONFIG_STRING, CONFIG_UINT, CONFIG_SIZE, CONFIG_BOOL, CONFIG_LISTEN, CONFIG_HOSTPORT, CONFIG_LOG_LEVEL } config_kind_t;

typedef struct st_config_key_t {
    const char *name;
    config_kind_t kind;
    size_t offset;
    unsigned long long min, max; /* for numbers */
} config_key_t;

#define KEY(name, kind, field, min, max) {name, kind, offsetof(util_config_t, field), min, max}

/* The single table behind the YAML keys, the environment variables and docs/configuration.md. */
static const config_key_t config_keys[] = {
    KEY("listen", CONFIG_LISTEN, listen_host, 0, 0),
    KEY("base_url", CONFIG_STRING, base_url, 0, 0),
    KEY("threads", CONFIG_UINT, threads, 1, 256),
    KEY("database.url", CONFIG_STRING, database_url, 0, 0),
    KEY("database.pool_size", CONFIG_UINT, database_pool_size, 1, 256),
    KEY("database.queue_limit", CONFIG_UINT, database_queue_limit, 1, 1000000),
    KEY("database.query_timeout_ms", CONFIG_UINT, database_query_timeout_ms, 10, 3600000),
    KEY("http.max_body_bytes", CONFIG_SIZE, http_max_body_bytes, 1024, 1ULL << 32),
    KEY("http.max_header_bytes", CONFIG_SIZE, http_max_header_bytes, 1024, 400 * 1024),
    KEY("http.idle_timeout_ms", CONFIG_UINT, http_idle_timeout_ms, 100, 3600000),
    KEY("http.header_timeout_ms", CONFIG_UINT, http_header_timeout_ms, 100, 3600000),
    KEY("http.shutdown_grace_ms", CONFIG_UINT, http_shutdown_grace_ms, 0, 3600000),
    KEY("search.default_count", CONFIG_UINT, search_default_count, 1, 10000),
    KEY("search.max_count", CONFIG_UINT, search_max_count, 1, 10000),
    KEY("search.max_includes", CONFIG_UINT, search_max_includes, 1, 100000),
    KEY("scheduling.default_timezone", CONFIG_STRING, scheduling_default_timezone, 0, 0),
    KEY("scheduling.hold_ttl_seconds", CONFIG_UINT, scheduling_hold_ttl_seconds, 1, 86400),
    KEY("scheduling.proposal_ttl_seconds", CONFIG_UINT, scheduling_proposal_ttl_seconds, 10, 604800),
    KEY("scheduling.default_duration_minutes", CONFIG_UINT, scheduling_default_duration_minutes, 1, 1440),
    KEY("scheduling.default_alignment_minutes", CONFIG_UINT, scheduling_default_alignment_minutes, 1, 1440),
    KEY("scheduling.cancellation_cutoff_minutes", CONFIG_UINT, scheduling_cancellation_cutoff_minutes, 0, 525600),
    KEY("scheduling.find_max_days", CONFIG_UINT, scheduling_find_max_days, 1, 731),
    KEY("scheduling.find_default_count", CONFIG_UINT, scheduling_find_default_count, 1, 1000),
    KEY("scheduling.find_max_count", CONFIG_UINT, scheduling_find_max_count, 1, 1000),
    KEY("scheduling.sweep_interval_ms", CONFIG_UINT, scheduling_sweep_interval_ms, 100, 3600000),
    KEY("tls.cert_file", CONFIG_STRING, tls_cert_file, 0, 0),
    KEY("tls.key_file", CONFIG_STRING, tls_key_file, 0, 0),
    KEY("tls.ciphers", CONFIG_STRING, tls_ciphers, 0, 0),
    KEY("auth.enabled", CONFIG_BOOL, auth_enabled, 0, 0),
    KEY("auth.issuer", CONFIG_STRING, auth_issuer, 0, 0),
    KEY("auth.audience", CONFIG_STRING, auth_audience, 0, 0),
    KEY("auth.jwks_file", CONFIG_STRING, auth_jwks_file, 0, 0),
    KEY("auth.jwks_url", CONFIG_STRING, auth_jwks_url, 0, 0),
    KEY("auth.jwks_ca_file", CONFIG_STRING, auth_jwks_ca_file, 0, 0),
    KEY("auth.clock_skew_seconds", CONFIG_UINT, auth_clock_skew_seconds, 0, 600),
    KEY("auth.jwks_refresh_seconds", CONFIG_UINT, auth_jwks_refresh_seconds, 0, 86400),
    KEY("auth.role_claim", CONFIG_STRING, auth_role_claim, 0, 0),
    KEY("auth.locations_claim", CONFIG_STRING, auth_locations_claim, 0, 0),
    KEY("auth.authorize_url", CONFIG_STRING, auth_authorize_url, 0, 0),
    KEY("auth.token_url", CONFIG_STRING, auth_token_url, 0, 0),
    KEY("rate_limit.per_second", CONFIG_UINT, rate_limit_per_second, 0, 1000000),
    KEY("rate_limit.burst", CONFIG_UINT, rate_limit_burst, 1, 1000000),
    KEY("audit.enabled", CONFIG_BOOL, audit_enabled, 0, 0),
    KEY("audit.retention_days", CONFIG_UINT, audit_retention_days, 0, 36500),
    KEY("cors.allowed_origins", CONFIG_STRING, cors_allowed_origins, 0, 0),
    KEY("subscriptions.endpoint_allowlist", CONFIG_STRING, subs_endpoint_allowlist, 0, 0),
    KEY("subscriptions.max_failures", CONFIG_UINT, subs_max_failures, 1, 1000),
    KEY("subscriptions.retry_base_ms", CONFIG_UINT, subs_retry_base_ms, 10, 3600000),
    KEY("subscriptions.retry_max_ms", CONFIG_UINT, subs_retry_max_ms, 10, 86400000),
    KEY("subscriptions.timeout_ms", CONFIG_UINT, subs_timeout_ms, 100, 600000),
    KEY("subscriptions.heartbeat_seconds", CONFIG_UINT, subs_heartbeat_seconds, 1, 3600),
    KEY("subscriptions.retention_hours", CONFIG_UINT, subs_retention_hours, 1, 8760),
    KEY("subscriptions.ca_file", CONFIG_STRING, subs_ca_file, 0, 0),
    KEY("hl7.listen", CONFIG_HOSTPORT, hl7_listen, 0, 0),
    KEY("hl7.tls_cert_file", CONFIG_STRING, hl7_tls_cert_file, 0, 0),
    KEY("hl7.tls_key_file", CONFIG_STRING, hl7_tls_key_file, 0, 0),
    KEY("hl7.max_message_bytes", CONFIG_SIZE, hl7_max_message_bytes, 1024, 64ULL << 20),
    KEY("hl7.idle_timeout_ms", CONFIG_UINT, hl7_idle_timeout_ms, 100, 86400000),
    KEY("hl7.sending_application", CONFIG_STRING, hl7_sending_application, 0, 0),
    KEY("hl7.sending_facility", CONFIG_STRING, hl7_sending_facility, 0, 0),
    KEY("hl7.timezone", CONFIG_STRING, hl7_timezone, 0, 0),
    KEY("hl7.retention_days", CONFIG_UINT, hl7_retention_days, 1, 36500),
    KEY("hl7.outbound", CONFIG_STRING, hl7_outbound, 0, 0),
    KEY("hl7.ack_timeout_ms", CONFIG_UINT, hl7_ack_timeout_ms, 100, 600000),
    KEY("hl7.retry_base_ms", CONFIG_UINT, hl7_retry_base_ms, 10, 3600000),
    KEY("hl7.retry_max_ms", CONFIG_UINT, hl7_retry_max_ms, 10, 86400000),
    KEY("hl7.max_attempts", CONFIG_UINT, hl7_max_attempts, 1, 1000),
    KEY("log.access", CONFIG_BOOL, log_access, 0, 0),
    KEY("log.level", CONFIG_LOG_LEVEL, log_level, 0, 0),
};
#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))

static void set_string(char **slot, const char *value)
{
    free(*slot);
    *slot = util_xstrdup(value);
}

void util_config_defaults(util_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    set_string(&cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 8080;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = cores > 0 ? (unsigned)cores : 1;
    set_string(&cfg->database_url, "postgresql://postgres@127.0.0.1:5432/fhirsched");
    cfg->database_pool_size = 4;
    cfg->database_queue_limit = 1024;
    cfg->database_query_timeout_ms = 30000;
    cfg->http_max_body_bytes = 8 * 1024 * 1024;
    cfg->search_default_count = 50;
    cfg->search_max_count = 1000;
    cfg->search_max_includes = 1000;
    cfg->http_max_header_bytes = 64 * 1024;
    cfg->http_idle_timeout_ms = 30000;
    cfg->http_header_timeout_ms = 10000;
    cfg->http_shutdown_grace_ms = 10000;
    set_string(&cfg->scheduling_default_timezone, "UTC");
    cfg->scheduling_hold_ttl_seconds = 300;
    cfg->scheduling_proposal_ttl_seconds = 1800;
    cfg->scheduling_default_duration_minutes = 30;
    cfg->scheduling_default_alignment_minutes = 15;
    cfg->scheduling_cancellation_cutoff_minutes = 1440;
    cfg->scheduling_find_max_days = 93;
    cfg->scheduling_find_default_count = 20;
    cfg->scheduling_find_max_count = 200;
    cfg->scheduling_sweep_interval_ms = 10000;
    set_string(&cfg->tls_ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                                  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    cfg->auth_enabled = true;
    cfg->auth_clock_skew_seconds = 60;
    cfg->auth_jwks_refresh_seconds = 30;
    set_string(&cfg->auth_role_claim, "fhirsched_role");
    set_string(&cfg->auth_locations_claim, "fhirsched_locations");
    cfg->rate_limit_per_second = 100;
    cfg->rate_limit_burst = 200;
    cfg->subs_max_failures = 10;
    cfg->subs_retry_base_ms = 1000;
    cfg->subs_retry_max_ms = 300000;
    cfg->subs_timeout_ms = 5000;
    cfg->subs_heartbeat_seconds = 30;
    cfg->subs_retention_hours = 72;
    cfg->hl7_max_message_bytes = 1024 * 1024;
    cfg->hl7_idle_timeout_ms = 600000;
    set_string(&cfg->hl7_sending_application, "FHIRSCHED");
    set_string(&cfg->hl7_sending_facility, "FHIRSCHED");
    cfg->hl7_retention_days = 30;
    cfg->hl7_ack_timeout_ms = 10000;
    cfg->hl7_retry_base_ms = 1000;
    cfg->hl7_retry_max_ms = 300000;
    cfg->hl7_max_attempts = 10;
    cfg->audit_enabled = true;
    cfg->audit_retention_days = 2190; /* six years, the HIPAA documentation period */
    cfg->log_access = true;
    set_string(&cfg->log_level, "info");
}

void util_config_dispose(util_config_t *cfg)
{
    for (size_t i = 0; i != CONFIG_KEY_COUNT; ++i) {
        config_kind_t kind = config_keys[i].kind;
        if (kind == CONFIG_STRING || kind == CONFIG_LISTEN || kind == CONFIG_HOSTPORT || kind == CONFIG_LOG_LEVEL) {
            char **slot = (char **)((char *)cfg + config_keys[i].offset);
            free(*slot);
            *slot = NULL;
        }
    }
}

/* A whole number; with `units`, a binary size suffix as people write them in YAML ("8MiB") is allowed. */
static int parse_number(const char *value, bool units, unsigned long long *out)
{
    char *end;
    if (value[0] == '\0' || !isdigit((unsigned char)value[0]))
        return -1;
    errno = 0;
    unsigned long long n = strtoull(value, &end, 10);
    if (errno != 0)
        return -1;
    unsigned shift = 0;
    if (units && (strcmp(end, "KiB") == 0 || strcmp(end, "k") == 0))
        shift = 10;
    else if (units && (strcmp(end, "MiB") == 0 || strcmp(end, "M") == 0))
        shift = 20;
    else if (units && (strcmp(end, "GiB") == 0 || strcmp(end, "G") == 0))
        shift = 30;
    else if (*end != '\0')
        return -1;
    if (shift != 0 && n > (~0ULL >> shift))
        return -1; /* would wrap around */
    *out = n << shift;
    return 0;
}

int util_config_split_hostport(const char *value, char **host, unsigned short *port)
{
    const char *colon = strrchr(value, ':');
    unsigned long long n;
    if (colon == NULL || colon == value || parse_number(colon + 1, false, &n) != 0 || n == 0 || n > 65535)
        return -1;
    const char *h = value;
    size_t hostlen = (size_t)(colon - value);
    /* "[::1]:8080" */
    if (h[0] == '[' && hostlen >= 2 && h[hostlen - 1] == ']') {
        ++h;
        hostlen -= 2;
    }
    *host = util_xstrndup(h, hostlen);
    *port = (unsigned short)n;
    return 0;
}

/* Applies one value; `where` names its origin (file:line or environment variable) for the error message. */
static int apply_value(util_config_t *cfg, const config_key_t *key, const char *value, const char *where, char *err, size_t errlen)
{
    char *field = (char *)cfg + key->offset;
    unsigned long long n;
    switch (key->kind) {
    case CONFIG_STRING:
        set_string((char **)field, value);
        return 0;
    case CONFIG_LOG_LEVEL:
        if (strcmp(value, "error") != 0 && strcmp(value, "warn") != 0 && strcmp(value, "info") != 0 && strcmp(value, "debug") != 0) {
            snprintf(err, errlen, "%s: %s must be one of error, warn, info, debug (got \"%s\")", where, key->name, value);
            return -1;
        }
        set_string((char **)field, value);
        return 0;
    case CONFIG_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "on") == 0 || strcmp(value, "1") == 0) {
            *(bool *)field = true;
        } else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "off") == 0 || strcmp(value, "0") == 0) {
            *(bool *)field = false;
        } else {
            snprintf(err, errlen, "%s: %s must be true or false (got \"%s\")", where, key->name, value);
            return -1;
        }
        return 0;
    case CONFIG_UINT:
    case CONFIG_SIZE:
        if (parse_number(value, key->kind == CONFIG_SIZE, &n) != 0 || n < key->min || n > key->max) {
            snprintf(err, errlen, "%s: %s must be a whole number from %llu to %llu%s (got \"%s\")", where, key->name, key->min,
                     key->max, key->kind == CONFIG_SIZE ? " (bytes; KiB/MiB/GiB suffixes allowed)" : "", value);
            return -1;
        }
        if (key->kind == CONFIG_UINT)
            *(unsigned *)field = (unsigned)n;
        else
            *(size_t *)field = (size_t)n;
        return 0;
    case CONFIG_LISTEN:
    case CONFIG_HOSTPORT: {
        char *host;
        unsigned short port;
        if (util_config_split_hostport(value, &host, &port) != 0) {
            snprintf(err, errlen, "%s: %s must be host:port, e.g. 127.0.0.1:%s (got \"%s\")", where, key->name,
                     key->kind == CONFIG_LISTEN ? "8080" : "2575", value);
            return -1;
        }
        if (key->kind == CONFIG_HOSTPORT) {
            free(host);
            set_string((char **)field, value);
            return 0;
        }
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
        return 0;
    }
    }
    return -1;
}

static const config_key_t *find_key(const char *name)
{
    for (size_t i = 0; i != CONFIG_KEY_COUNT; ++i)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

/* The dotted name of a key at `depth` ("database" then "url" gives "database.url"). */
static void config_path(char *full, size_t len, char prefix[][64], int depth, const char *key)
{
    full[0] = '\0';
    for (int i = 1; i < depth; ++i) {
        strncat(full, prefix[i], len - strlen(full) - 1);
        strncat(full, ".", len - strlen(full) - 1);
    }
    strncat(full, key, len - strlen(full) - 1);
}

/* Walks the YAML event stream keeping the path of mapping keys ("database" then "url" gives "database.url"). */
static int load_yaml(util_config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, fp);

    char prefix[8][64];
    int depth = 0;          /* number of open mappings */
    bool expect_key[9] = {true};
    char pending_key[64] = "";
    const config_key_t *list = NULL; /* inside the list of this key */
    util_buf_t list_items = {NULL};
    int ret = -1;

    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            snprintf(err, errlen, "%s:%zu: YAML syntax error: %s", path, parser.problem_mark.line + 1,
                     parser.problem != NULL ? parser.problem : "unknown");
            goto Exit;
        }
        char where[300];
        snprintf(where, sizeof(where), "%s:%zu", path, ev.start_mark.line + 1);
        int type = ev.type;
        if (type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        switch (type) {
        case YAML_MAPPING_START_EVENT:
            if (list != NULL) {
                snprintf(err, errlen, "%s: the items of %s are mllp://host:port?... URLs", where, list->name);
                yaml_event_delete(&ev);
                goto Exit;
            }
            if (depth > 0 && expect_key[depth]) {
                snprintf(err, errlen, "%s: a mapping cannot be a key", where);
                yaml_event_delete(&ev);
                goto Exit;
            }
            if (depth >= 7) {
                snprintf(err, errlen, "%s: configuration is nested too deeply", where);
                yaml_event_delete(&ev);
                goto Exit;
            }
            if (depth > 0)
                snprintf(prefix[depth], sizeof(prefix[depth]), "%s", pending_key);
            ++depth;
            expect_key[depth] = true;
            break;
        case YAML_MAPPING_END_EVENT:
            --depth;
            if (depth > 0)
                expect_key[depth] = true;
            break;
        case YAML_SEQUENCE_START_EVENT: {
            /* Only hl7.outbound takes a list (of endpoint URLs): its items are joined as if written on one line. */
            char full[256];
            config_path(full, sizeof(full), prefix, depth, pending_key);
            if (depth == 0 || expect_key[depth] || list != NULL || strcmp(full, "hl7.outbound") != 0) {
                snprintf(err, errlen, "%s: only hl7.outbound takes a list", where);
                yaml_event_delete(&ev);
                goto Exit;
            }
            list = find_key(full);
            util_buf_init(&list_items);
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
            if (list != NULL) {
                int failed = apply_value(cfg, list, list_items.base != NULL ? list_items.base : "", where, err, errlen);
                util_buf_dispose(&list_items);
                list = NULL;
                expect_key[depth] = true;
                if (failed != 0) {
                    yaml_event_delete(&ev);
                    goto Exit;
                }
            }
            break;
        case YAML_SCALAR_EVENT: {
            const char *value = (const char *)ev.data.scalar.value;
            if (depth == 0) {
                if (value[0] != '\0') {
                    snprintf(err, errlen, "%s: the configuration must be a mapping of settings", where);
                    yaml_event_delete(&ev);
                    goto Exit;
                }
                break;
            }
            if (list != NULL) {
                if (list_items.len != 0)
                    util_buf_puts(&list_items, " ");
                util_buf_puts(&list_items, value);
                break;
            }
            if (expect_key[depth]) {
                snprintf(pending_key, sizeof(pending_key), "%s", value);
                expect_key[depth] = false;
            } else {
                char full[256];
                config_path(full, sizeof(full), prefix, depth, pending_key);
                const config_key_t *key = find_key(full);
                if (key == NULL) {
                    snprintf(err, errlen, "%s: unknown setting \"%s\"", where, full);
                    yaml_event_delete(&ev);
                    goto Exit;
                }
                if (apply_value(cfg, key, value, where, err, errlen) != 0) {
                    yaml_event_delete(&ev);
                    goto Exit;
                }
                expect_key[depth] = true;
            }
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    ret = 0;
Exit:
    util_buf_dispose(&list_items);
    yaml_parser_delete(&parser);
    fclose(fp);
    return ret;
}

static void env_name_for(const char *key, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "FHIRSCHED_");
    for (const char *p = key; *p != '\0' && n + 1 < outlen; ++p)
        out[n++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

int util_config_load(util_config_t *cfg, const char *yaml_path, char *const *envp, char *err, size_t errlen)
{
    if (yaml_path != NULL && load_yaml(cfg, yaml_path, err, errlen) != 0)
        return -1;
    if (envp == NULL)
        envp = environ;
    bool base_url_set = cfg->base_url != NULL;
    for (size_t i = 0; i != CONFIG_KEY_COUNT; ++i) {
        char name[128];
        env_name_for(config_keys[i].name, name, sizeof(name));
        size_t namelen = strlen(name);
        for (char *const *e = envp; *e != NULL; ++e) {
            /* An empty variable counts as unset, as shells make it easy to export one by accident. */
            if (strncmp(*e, name, namelen) == 0 && (*e)[namelen] == '=' && (*e)[namelen + 1] != '\0') {
                if (apply_value(cfg, &config_keys[i], *e + namelen + 1, name, err, errlen) != 0)
                    return -1;
                if (config_keys[i].offset == offsetof(util_config_t, base_url))
                    base_url_set = true;
            }
        }
    }
    if ((cfg->tls_cert_file == NULL) != (cfg->tls_key_file == NULL)) {
        snprintf(err, errlen, "tls.cert_file and tls.key_file must be set together");
        return -1;
    }
    if ((cfg->hl7_tls_cert_file == NULL) != (cfg->hl7_tls_key_file == NULL)) {
        snprintf(err, errlen, "hl7.tls_cert_file and hl7.tls_key_file must be set together");
        return -1;
    }
    if (cfg->auth_jwks_file != NULL && cfg->auth_jwks_url != NULL) {
        snprintf(err, errlen, "auth.jwks_file and auth.jwks_url are alternatives: set one");
        return -1;
    }
    if (!base_url_set) {
        const char *host = strcmp(cfg->listen_host, "0.0.0.0") == 0 ? "127.0.0.1" : cfg->listen_host;
        bool v6 = strchr(host, ':') != NULL;
        cfg->base_url = util_asprintf("%s://%s%s%s:%u/fhir", cfg->tls_cert_file != NULL ? "https" : "http", v6 ? "[" : "", host,
                                      v6 ? "]" : "", cfg->listen_port);
    } else {
        /* Links are built as base + "/Type/id": a trailing slash would double it. */
        size_t n = strlen(cfg->base_url);
        while (n > 0 && cfg->base_url[n - 1] == '/')
            cfg->base_url[--n] = '\0';
    }
    if (cfg->auth_audience == NULL)
        cfg->auth_audience = util_xstrdup(cfg->base_url);
    return 0;
}

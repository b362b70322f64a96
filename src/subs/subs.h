/*
 * FHIR Subscriptions (docs/subscriptions.md). The database records every change a Subscription could care about in an
 * outbox (migrations/0006_subscriptions.sql); this module
 *   - checks and normalises Subscription resources before they are stored (check.c: criteria, channel, endpoint
 *     allowlist, status, sealed header values);
 *   - turns criteria into SQL that matches outbox rows with the search engine's own conditions (match.c);
 *   - sequences the outbox and delivers rest-hook notifications from its own threads, any number of instances sharing
 *     the work through PostgreSQL (dispatch.c);
 *   - serves the websocket channel inside the event loops (websocket.c).
 */
#ifndef SUBS_SUBS_H
#define SUBS_SUBS_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#define H2O_USE_LIBUV 0
#include <h2o.h>
#include "fhir/access.h"
#include "fhir/outcome.h"
#include "fhir/search.h"
#include "store/store.h"
#include "util/config.h"
#include "util/str.h"

/** The settings in force (set by subs_init). */
typedef struct st_subs_settings_t {
    char **allowlist; /* URL prefixes rest-hook endpoints must start with */
    size_t nallow;
    unsigned max_failures, retry_base_ms, retry_max_ms, timeout_ms, heartbeat_seconds, retention_hours;
    char *ca_file;
    char *dsn;
    unsigned char seal_key[32]; /* seals header values; derived from the database's shared server secret */
} subs_settings_t;

extern subs_settings_t subs_settings;

/** Reads the subscriptions.* settings and derives the sealing key from `secret`. 0, or -1 with a message naming the setting. */
int subs_init(const util_config_t *cfg, const char *secret, char *err, size_t errlen);
/** Forgets the settings. */
void subs_dispose(void);

/* ---- check.c ---- */

/**
 * Checks a Subscription about to be stored and rewrites it into its stored form: criteria parsed like a search, the
 * channel type and payload supported, a rest-hook endpoint on the allowlist, header values sealed, the status the
 * server manages. A rest-hook is delivered without anyone's row rules, so only a writer who may read every resource of
 * the criteria's type (`access` NULL or ALL for it) may store one (403 otherwise; websockets apply the binder's rules).
 * 0, or -1 with a 422 (or 403) issue in `oo`.
 */
int subs_check_subscription(json_t *resource, const fhir_access_t *access, fhir_outcome_t *oo);
/** Whether `url` starts with one of the allowed prefixes (scheme and host compared without case, at a boundary). */
bool subs_endpoint_allowed(const char *url);
/** "sealed:<base64url>" of `value`, bound to `endpoint` and `name` (caller frees). */
char *subs_seal(const char *endpoint, const char *name, const char *value);
/** The value of a sealed string, or NULL when it does not open for this endpoint and name (caller frees). */
char *subs_unseal(const char *endpoint, const char *name, const char *sealed);
/** A stored "Name: value" header as sent: sealed values opened. NULL when it cannot be (caller frees). */
char *subs_header_line(const char *endpoint, const char *stored);

/* ---- match.c ---- */

/** A set of search tokens (sorted, for bsearch). */
typedef struct st_subs_tokens_t {
    char **v;
    size_t n;
} subs_tokens_t;

/** The matcher of one criteria: SQL over the outbox plus its parameters. */
typedef struct st_subs_matcher_t {
    util_buf_t sql; /* rows: pos, res_type, id, version_id, event, body (with payload), whether the requester may see the
                       version the change made (the change matched on either side; the content is theirs only if so) */
    char **params;  /* nparams values; the last four (from, to, type, payload) are filled per run */
    int nparams;
    char *type;     /* the criteria's resource type */
    /* token sets the criteria require (one token of each on the same version): outbox rows without them cannot match */
    subs_tokens_t filters[FHIR_SEARCH_MAX_TOKEN_FILTERS];
    size_t nfilters;
} subs_matcher_t;

/** Maximum rows one run of a matcher returns (runs continue from the last row). */
#define SUBS_MATCH_BATCH 500

/**
 * Builds the matcher of `criteria` ("Type?query"), limited to the rows `access` lets the requester read (NULL: all).
 * 0, or -1 with the problem in `oo` (400/422 with the search engine's diagnostics; nothing to dispose then).
 */
int subs_matcher_init(subs_matcher_t *m, const char *criteria, const fhir_access_t *access, fhir_outcome_t *oo);
/** Sets the range (from, to] and whether bodies are wanted, for the next run. */
void subs_matcher_range(subs_matcher_t *m, int64_t from, int64_t to, bool payload);
/** Frees the matcher. */
void subs_matcher_dispose(subs_matcher_t *m);
/** Parses a PostgreSQL text[] literal ({a,"b c"}) into malloc'd strings, in order (caller frees each and the array). */
void subs_text_array_parse(const char *literal, char ***v, size_t *n);
/** The same as a sorted set (caller disposes). */
void subs_tokens_parse(subs_tokens_t *t, const char *literal);
/** Frees a set. */
void subs_tokens_dispose(subs_tokens_t *t);
/** Whether the version with search tokens `row` (sorted) can match `m` by its token filters (a necessary condition). */
bool subs_matcher_may_match(const subs_matcher_t *m, const subs_tokens_t *row);
/** Rejects criteria parameters that shape results (paging, includes, _summary...), which mean nothing to a Subscription. */
int subs_criteria_check(const char *criteria, const char **type, fhir_outcome_t *oo);

/* ---- dispatch.c ---- */

/** The newest outbox position this instance knows of (websocket listeners poll it). */
int64_t subs_head(void);
/** A number that changes whenever a Subscription was written (websocket bindings check theirs again). */
unsigned subs_generation(void);
/** Starts the sequencer/listener thread and the rest-hook delivery threads. 0, or -1 with a message. */
int subs_dispatch_start(char *err, size_t errlen);
/** Stops them (blocking until they exit). */
void subs_dispatch_stop(void);

/* ---- websocket.c ---- */

/** What a websocket connection may read, decided by the HTTP layer from the upgrade request's token. */
typedef struct st_subs_ws_auth_t {
    /* whether the requester may search `type`; *access gets its row rules (NULL: every row). With `why` on refusal. */
    bool (*may_search)(void *ctx, const char *type, const fhir_access_t **access, char *why, size_t whylen);
    void (*release)(void *ctx);
    void *ctx;
    int64_t expires; /* the token's exp (Unix seconds; 0: none): the socket is closed then */
} subs_ws_auth_t;

/** Whether `req` asks for a websocket upgrade. */
bool subs_ws_is_upgrade(h2o_req_t *req);
/** Upgrades `req` to the websocket channel (takes over `auth`); statements go to `pool` (the loop's). 0, or -1 when the
 * request cannot be upgraded (the caller answers 400). */
int subs_ws_accept(h2o_req_t *req, store_pool_t *pool, subs_ws_auth_t *auth);
/** Closes this loop's websocket connections with 1001 (server going away). */
void subs_ws_loop_shutdown(h2o_loop_t *loop);

#endif

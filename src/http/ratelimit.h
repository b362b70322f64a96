/*
 * Per-client request rate limit: a token bucket for each client key (the token's client id, else the peer address),
 * shared by every loop thread of the process. Pure logic: the caller supplies the time and answers 429 itself.
 */
#ifndef HTTP_RATELIMIT_H
#define HTTP_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Clients with a bucket of their own; beyond this, new clients share an overflow bucket (per lock stripe). */
#define HTTP_RATELIMIT_MAX_CLIENTS 100000
/* Longest client key kept; longer keys are cut to this many bytes. */
#define HTTP_RATELIMIT_MAX_KEY 256

/** Sets the rate (tokens per second; 0 = unlimited) and burst (bucket size). Call once before the loops run. */
void http_ratelimit_init(unsigned per_second, unsigned burst);
/** Takes one token for `client` at monotonic time `now_ms`; true when allowed, otherwise false and *retry_after_seconds (≥ 1, rounded up) says when one token will be there. */
bool http_ratelimit_take(const char *client, uint64_t now_ms, unsigned *retry_after_seconds);
/** Frees every bucket; http_ratelimit_take allows everything until the next init. */
void http_ratelimit_dispose(void);

/** For tests and metrics: the clients that currently hold a bucket of their own. */
size_t http_ratelimit__clients(void);
/** For tests: caps the clients with a bucket of their own (default HTTP_RATELIMIT_MAX_CLIENTS). Call after init, before any take. */
void http_ratelimit__set_max_clients(size_t max_clients);

#endif

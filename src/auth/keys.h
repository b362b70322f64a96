/* The process-wide set of token signing keys (JWKS from a file or a URL), refreshed on demand. Thread-safe. */
#ifndef AUTH_KEYS_H
#define AUTH_KEYS_H

#include <stddef.h>
#include "auth/jwt.h"

/** The largest JWKS document read from a file or a URL. */
#define AUTH_KEYS_MAX_JWKS (1024 * 1024)

/**
 * Loads the keys once at start-up (blocking): from `jwks_file`, or fetched from `jwks_url` (http:// or https://, verified
 * against `ca_file` or the system CAs, with hostname check). Exactly one of the two is set. Returns 0, or -1 with a message
 * naming the setting ("auth.jwks_url: http://...: HTTP 404").
 */
int auth_keys_init(const char *jwks_file, const char *jwks_url, const char *ca_file, unsigned refresh_seconds, char *err, size_t errlen);
/** The current key set, retained (caller releases). NULL before auth_keys_init. Thread-safe. */
auth_keyset_t *auth_keys_current(void);
/**
 * Re-reads the file / re-fetches the URL (blocking; call it off the event loop) unless the last refresh was less than
 * refresh_seconds ago. Returns 1 when a new set was installed, 0 when skipped (too soon), -1 on failure (message in err;
 * the old set stays). A failed attempt counts as a refresh, so a stream of unknown kids cannot hammer the IdP.
 */
int auth_keys_refresh(char *err, size_t errlen);
/** Drops the key set and the settings (tests, shutdown). */
void auth_keys_dispose(void);

/**
 * GETs `url` (http:// or https://) into a malloc'd, NUL-terminated buffer of at most AUTH_KEYS_MAX_JWKS bytes: 5 s
 * timeouts, status 200 required, Content-Length, chunked or read-to-close bodies, https verified against `ca_file` (NULL:
 * the system CAs) with hostname check. Returns 0, or -1 with a message that starts with the URL. Blocking.
 */
int auth_keys_http_get(const char *url, const char *ca_file, char **body, size_t *len, char *err, size_t errlen);

#endif

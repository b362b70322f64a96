/* Bearer token verification: compact JWS (RS256, RS384, ES256, ES384) against a JWKS. Pure logic, no I/O. */
#ifndef AUTH_JWT_H
#define AUTH_JWT_H

#include <stddef.h>
#include <time.h>
#include <jansson.h>

/** The longest token auth_jwt_verify looks at; longer ones are AUTH_JWT_MALFORMED. */
#define AUTH_JWT_MAX_LEN 16384

typedef enum {
    AUTH_JWT_OK = 0,
    AUTH_JWT_MALFORMED,     /* not three base64url parts, bad JSON, missing/odd claims types */
    AUTH_JWT_ALG_REFUSED,   /* none, HS*, unknown alg, or alg not matching the key's type/curve/size */
    AUTH_JWT_UNKNOWN_KEY,   /* no key with this kid (or, without kid, no key of the alg's type) */
    AUTH_JWT_BAD_SIGNATURE,
    AUTH_JWT_BAD_ISSUER,
    AUTH_JWT_BAD_AUDIENCE,
    AUTH_JWT_EXPIRED,
    AUTH_JWT_NOT_YET_VALID, /* nbf (or iat) in the future beyond the skew */
    AUTH_JWT_NO_EXPIRY,     /* exp missing */
} auth_jwt_status_t;

/** A short English explanation, safe to show a client ("the token has expired"). */
const char *auth_jwt_status_text(auth_jwt_status_t status);

typedef struct st_auth_keyset_t auth_keyset_t; /* immutable once parsed; reference counted (thread-safe atomics) */

/**
 * Parses a JWKS document ({"keys":[...]}); keys that cannot be used for verifying (use "enc", key_ops without "verify",
 * kty oct, unknown kty/crv, an alg other than RS256/RS384/ES256/ES384 or not fitting the key, RSA < 2048 or > 8192 bits,
 * EC points not on their curve) are skipped. NULL with a message when nothing usable remains or the JSON is bad. The
 * returned set has one reference.
 */
auth_keyset_t *auth_keyset_parse(const char *json, size_t len, char *err, size_t errlen);
/** Takes one more reference (NULL is ignored). */
void auth_keyset_retain(auth_keyset_t *keys);
/** Drops one reference; the last one frees the set (NULL is ignored). */
void auth_keyset_release(auth_keyset_t *keys);
/** The number of usable keys in the set. */
size_t auth_keyset_count(const auth_keyset_t *keys);

typedef struct st_auth_jwt_expect_t {
    const char *issuer;   /* exact match of iss (NULL: not checked; tools and tests only) */
    const char *audience; /* aud is this string, or an array containing it (NULL: not checked; tools and tests only) */
    unsigned skew_seconds;
    time_t now;
} auth_jwt_expect_t;

/**
 * Verifies a compact JWS: header alg/kid, signature with the matching key (RS256, RS384 = RSASSA-PKCS1-v1_5; ES256, ES384 =
 * ECDSA with the JWS raw r||s signature, P-256/P-384), then iss, aud, exp (required), nbf and iat (optional, not in the future).
 * Checks run in that order (signature before claims). On AUTH_JWT_OK *claims gets the payload object (caller decrefs); on
 * failure *claims is NULL. `kid` (may be NULL) receives the header kid (truncated to kidlen, bytes outside printable ASCII
 * replaced by '?', "" when absent) for logs/refresh decisions. Without a kid every key of the alg's type is tried.
 */
auth_jwt_status_t auth_jwt_verify(const char *token, size_t len, const auth_keyset_t *keys, const auth_jwt_expect_t *expect,
                                  json_t **claims, char *kid, size_t kidlen);

/** Decodes unpadded, canonical base64url into a malloc'd buffer (NUL-terminated, *outlen excludes it). NULL if invalid. */
unsigned char *auth_base64url_decode(const char *s, size_t len, size_t *outlen);
/** Encodes bytes as unpadded base64url into a malloc'd NUL-terminated string. */
char *auth_base64url_encode(const unsigned char *data, size_t len);

#endif

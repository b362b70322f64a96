/* `fhirsched token`: development keys, their JWKS and signed tokens. Not for production. */
#ifndef AUTH_TOKEN_H
#define AUTH_TOKEN_H

#include <stddef.h>
#include <jansson.h>
#include <openssl/evp.h>

/** Runs `fhirsched token ...`; argv[0] is "token". Returns the process exit status (0, 1 on failure, 2 on bad usage). */
int auth_token_cmd_run(int argc, char **argv);

/**
 * The public JWK of `key` (an RSA, P-256 or P-384 key, private or public): kty, n/e or crv/x/y, kid, alg, use "sig".
 * `alg` NULL picks RS256, ES256 or ES384 from the key; `kid` NULL is the RFC 7638 thumbprint. NULL with a message.
 */
json_t *auth_token_jwk(EVP_PKEY *key, const char *alg, const char *kid, char *err, size_t errlen);
/** The RFC 7638 JWK thumbprint of `key` (base64url SHA-256, 43 characters) into `out` (at least 44 bytes). 0 or -1. */
int auth_token_thumbprint(EVP_PKEY *key, char *out, size_t outlen);
/**
 * Signs `claims` as a compact JWS with the private `key`: header {"alg","typ":"JWT","kid"} (no kid when NULL); alg
 * RS256/RS384/ES256/ES384 fitting the key (NULL: the key's default). Returns a malloc'd token, or NULL with a message.
 */
char *auth_token_sign(EVP_PKEY *key, const char *alg, const char *kid, const json_t *claims, char *err, size_t errlen);

#endif

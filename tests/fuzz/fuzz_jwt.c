/*
 * libFuzzer target: bearer tokens and JWKS documents (auth_jwt_verify, auth_keyset_parse, auth_base64url_*).
 * Input: TOKEN, or TOKEN NUL JWKS. The token is verified against a fixed key set (an RSA 2048, a P-256 and a P-384 key
 * whose private halves signed the seeds in corpus/jwt/) at a fixed time; after a NUL, the rest is parsed as a JWKS and,
 * when usable, the token is verified against it too. Checks on the way: base64url decoding round-trips, a verified token
 * yields an object, the kid handed back is printable and terminated.
 */
#include "auth/jwt.h"
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the seeds' iat/nbf are 1800000000 and exp 1800003600 */
#define FUZZ_NOW 1800000100

static const char fixed_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"ikyQ3n6UB2RPW8FZFMxIz0jMAa0z4ndJbkmEOH1ixclQO9pLngQftX7vuhvLglfN"
    "HOxCwQ3hDVFCs5qmjp7zgY6v9FoV9rnstjS9O25K1hZhBbhsEmJUr55M-zH64AQAb3xDu_Gb1OT6WAWn38Ya2y3pmFsbFiT8F_fC"
    "s9BFRB7X76RaAFarx5nNnNmdccTjYu3LofjHv4p77JRJOkmljdIMCWRPeyrUmOLCiWhiXQIwF0ZWztCNWlBIiucCgVmqtjMvvY8C"
    "d32O9IJT87eoXW5HoEmO4CWUhg2wXIjKc4R4sJFZkfRlNrJq4ru7-0KYr_nICpYPrwOGnDwiYvANSQ\",\"e\":\"AQAB\",\"ki"
    "d\":\"fz-rsa\",\"use\":\"sig\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"4U8-hT_TMZIofxdOADAVSir6UX"
    "zyX3tvUb4D5uXIzWg\",\"y\":\"zcZ-1qG6X_Rk9jAS2dl-DkDz4uFgxV4unWbxJmQm_PM\",\"kid\":\"fz-ec256\",\"alg"
    "\":\"ES256\",\"use\":\"sig\"},{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"3A1LefxbVEWnpkK5dWUXCnLHZmZf"
    "tr4pbxbhuoiapiKy9jLuYfUTmsoxUvq7P7CW\",\"y\":\"AV_Sw-0UFNFkxBXMJO5_KHnsfdVEaog3fYxjG28E5ig2-a9GSDbr_"
    "pUa4DcyxUuj\",\"kid\":\"fz-ec384\",\"alg\":\"ES384\",\"use\":\"sig\"}]}";

static auth_keyset_t *fixed_keys;

static void check_kid(const char *kid, size_t size)
{
    size_t len = strnlen(kid, size);
    if (len == size)
        abort();
    for (size_t i = 0; i != len; ++i)
        if (kid[i] < 0x20 || kid[i] > 0x7e)
            abort();
}

static void verify(const char *token, size_t len, const auth_keyset_t *keys)
{
    static const auth_jwt_expect_t expect = {"https://idp.example/fuzz", "https://fhir.example/fhir", 60, FUZZ_NOW};
    json_t *claims = (json_t *)1;
    char kid[24];
    auth_jwt_status_t st = auth_jwt_verify(token, len, keys, &expect, &claims, kid, sizeof(kid));
    if (st == AUTH_JWT_OK ? !json_is_object(claims) : claims != NULL)
        abort();
    if (auth_jwt_status_text(st) == NULL)
        abort();
    check_kid(kid, sizeof(kid));
    json_decref(claims);
}

/* whatever decodes must encode back to the same text: one spelling per byte string */
static void check_base64url(const char *s, size_t len)
{
    size_t n;
    unsigned char *bytes = auth_base64url_decode(s, len, &n);
    if (bytes == NULL)
        return;
    char *again = auth_base64url_encode(bytes, n);
    if (strlen(again) != len || memcmp(again, s, len) != 0)
        abort();
    free(again);
    free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (fixed_keys == NULL && (fixed_keys = auth_keyset_parse(fixed_jwks, sizeof(fixed_jwks) - 1, err, sizeof(err))) == NULL)
        abort();

    const char *input = (const char *)data, *nul = memchr(input, '\0', size);
    size_t token_len = nul != NULL ? (size_t)(nul - input) : size;
    /* a copy of just the token, so reading past it is caught */
    char *token = malloc(token_len + 1);
    memcpy(token, input, token_len);
    verify(token, token_len, fixed_keys);
    const char *dot = memchr(token, '.', token_len);
    check_base64url(token, dot != NULL ? (size_t)(dot - token) : token_len);

    if (nul != NULL) {
        size_t jwks_len = size - token_len - 1;
        char *jwks = malloc(jwks_len + 1);
        memcpy(jwks, nul + 1, jwks_len);
        auth_keyset_t *keys = auth_keyset_parse(jwks, jwks_len, err, sizeof(err));
        if (keys != NULL) {
            if (auth_keyset_count(keys) == 0)
                abort();
            verify(token, token_len, keys);
            auth_keyset_release(keys);
        } else if (strnlen(err, sizeof(err)) == 0 || strnlen(err, sizeof(err)) == sizeof(err)) {
            abort();
        }
        free(jwks);
    }
    free(token);
    return 0;
}

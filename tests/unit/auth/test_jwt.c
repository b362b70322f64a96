/* Token verification (jwt.c), the key store (keys.c: file, refresh, the HTTP client) and `fhirsched token` (token_cmd.c).
 * Keys are generated here with OpenSSL and tokens signed here, independently of token_cmd.c's signer; the RFC 7515 A.3
 * ES256 example and the RFC 7638 thumbprint example pin both sides to outside vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include "auth/jwt.h"
#include "auth/keys.h"
#include "auth/token.h"
#include "util/str.h"

#define NOW 1800000000
#define ISS "https://idp.example/realms/clinic"
#define AUD "https://fhir.example/fhir"

static EVP_PKEY *k_rsa, *k_rsa_other, *k_small, *k_p256, *k_p256_other, *k_p384;
static auth_keyset_t *keyset;
static const auth_jwt_expect_t expect = {.issuer = ISS, .audience = AUD, .skew_seconds = 60, .now = NOW};
static char tmpdir[64];

/* keys and JWKs, built here without token_cmd.c */

static char *b64(const void *data, size_t len)
{
    return auth_base64url_encode(data, len);
}

static char *bn_b64(EVP_PKEY *k, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    int len = pad != 0 ? pad : BN_num_bytes(bn);
    unsigned char buf[1024];
    assert_int_equal(BN_bn2binpad(bn, buf, len), len);
    BN_free(bn);
    return b64(buf, (size_t)len);
}

/* {"kty":...,"kid":kid} plus `extra` members (a JSON object text, or NULL) */
static json_t *jwk_of(EVP_PKEY *k, const char *kid, const char *extra)
{
    json_t *jwk;
    char *a, *b;
    if (EVP_PKEY_is_a(k, "RSA")) {
        a = bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0);
        b = bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
        jwk = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", a, "e", b);
    } else {
        int coord = EVP_PKEY_get_bits(k) == 256 ? 32 : 48;
        a = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, coord);
        b = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, coord);
        jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", coord == 32 ? "P-256" : "P-384", "x", a, "y", b);
    }
    free(a);
    free(b);
    if (kid != NULL)
        json_object_set_new(jwk, "kid", json_string(kid));
    if (extra != NULL) {
        json_t *more = json_loads(extra, 0, NULL);
        assert_non_null(more);
        json_object_update(jwk, more);
        json_decref(more);
    }
    return jwk;
}

/* a JWKS text of the given JWKs (stolen) */
static char *jwks_of(json_t *first, ...)
{
    json_t *keys = json_array();
    va_list args;
    va_start(args, first);
    for (json_t *k = first; k != NULL; k = va_arg(args, json_t *))
        json_array_append_new(keys, k);
    va_end(args);
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static auth_keyset_t *parse_ok(const char *jwks)
{
    char err[512] = "";
    auth_keyset_t *keys = auth_keyset_parse(jwks, strlen(jwks), err, sizeof(err));
    if (keys == NULL)
        fail_msg("JWKS refused: %s", err);
    return keys;
}

/* signing, built here without token_cmd.c */

/* The JWS signature of `input`: RSASSA-PKCS1-v1_5, or ECDSA as raw r||s (`der` keeps OpenSSL's DER). */
static char *sign_input(EVP_PKEY *k, const char *digest, const char *input, int der)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t len = 0;
    assert_int_equal(EVP_DigestSignInit_ex(md, NULL, digest, NULL, NULL, k, NULL), 1);
    assert_int_equal(EVP_DigestSign(md, NULL, &len, (const unsigned char *)input, strlen(input)), 1);
    unsigned char *sig = malloc(len);
    assert_int_equal(EVP_DigestSign(md, sig, &len, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(md);
    char *out;
    if (EVP_PKEY_is_a(k, "EC") && !der) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
        const BIGNUM *r, *s;
        int coord = EVP_PKEY_get_bits(k) == 256 ? 32 : 48;
        unsigned char raw[96];
        assert_non_null(es);
        ECDSA_SIG_get0(es, &r, &s);
        BN_bn2binpad(r, raw, coord);
        BN_bn2binpad(s, raw + coord, coord);
        ECDSA_SIG_free(es);
        out = b64(raw, (size_t)coord * 2);
    } else {
        out = b64(sig, len);
    }
    free(sig);
    return out;
}

/* A compact JWS of the exact header and payload texts. */
static char *jws_text(EVP_PKEY *k, const char *digest, const char *header, const char *payload, int der)
{
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    char *input = util_asprintf("%s.%s", h, p), *sig = sign_input(k, digest, input, der);
    char *token = util_asprintf("%s.%s", input, sig);
    free(h);
    free(p);
    free(input);
    free(sig);
    return token;
}

/* A token with header {"alg","kid"} (no kid when NULL) over `claims` (decref'd). */
static char *jws(EVP_PKEY *k, const char *alg, const char *kid, json_t *claims)
{
    json_t *header = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
    if (kid != NULL)
        json_object_set_new(header, "kid", json_string(kid));
    char *h = json_dumps(header, JSON_COMPACT), *p = json_dumps(claims, JSON_COMPACT);
    char *token = jws_text(k, strstr(alg, "384") != NULL ? "SHA384" : "SHA256", h, p, 0);
    json_decref(header);
    json_decref(claims);
    free(h);
    free(p);
    return token;
}

static json_t *claims_base(void)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss", ISS, "aud", AUD, "sub", "user-1", "exp", (json_int_t)NOW + 300, "iat",
                     (json_int_t)NOW - 10, "nbf", (json_int_t)NOW - 10, "scope", "user/*.read");
}

/* claims_base as JSON text */
static char *claims_text(void)
{
    json_t *c = claims_base();
    char *text = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return text;
}

/* claims_base with the members of `changes` (a JSON object text) replaced; null members removed */
static json_t *claims_with(const char *changes)
{
    json_t *c = claims_base(), *ch = json_loads(changes, 0, NULL), *v;
    const char *name;
    assert_non_null(ch);
    json_object_foreach(ch, name, v)
    {
        if (json_is_null(v))
            json_object_del(c, name);
        else
            json_object_set(c, name, v);
    }
    json_decref(ch);
    return c;
}

static auth_jwt_status_t verify_with(const char *token, const auth_keyset_t *keys, const auth_jwt_expect_t *ex)
{
    json_t *claims = (json_t *)1;
    char kid[64];
    auth_jwt_status_t st = auth_jwt_verify(token, strlen(token), keys, ex, &claims, kid, sizeof(kid));
    if (st == AUTH_JWT_OK) {
        assert_true(json_is_object(claims));
        json_decref(claims);
    } else {
        assert_null(claims);
    }
    return st;
}

static auth_jwt_status_t verify(const char *token)
{
    return verify_with(token, keyset, &expect);
}

/* verifies and frees the token */
static void expect_status(char *token, auth_jwt_status_t want)
{
    auth_jwt_status_t got = verify(token);
    if (got != want)
        fail_msg("token %.120s...: got %d (%s), want %d (%s)", token, got, auth_jwt_status_text(got), want, auth_jwt_status_text(want));
    free(token);
}

static int group_setup(void **state)
{
    assert_non_null(k_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048));
    assert_non_null(k_rsa_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048));
    assert_non_null(k_small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024));
    assert_non_null(k_p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
    assert_non_null(k_p256_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
    assert_non_null(k_p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"));
    /* rsa-pinned is the same RSA key, restricted to RS256 by its JWK */
    char *text = jwks_of(jwk_of(k_rsa, "rsa1", "{\"use\":\"sig\"}"), jwk_of(k_rsa, "rsa-pinned", "{\"alg\":\"RS256\"}"),
                         jwk_of(k_p256, "ec256", "{\"alg\":\"ES256\",\"use\":\"sig\"}"), jwk_of(k_p384, "ec384", NULL), NULL);
    keyset = parse_ok(text);
    assert_int_equal(auth_keyset_count(keyset), 4);
    free(text);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fhirsched-test-jwt-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int group_teardown(void **state)
{
    auth_keyset_release(keyset);
    EVP_PKEY_free(k_rsa);
    EVP_PKEY_free(k_rsa_other);
    EVP_PKEY_free(k_small);
    EVP_PKEY_free(k_p256);
    EVP_PKEY_free(k_p256_other);
    EVP_PKEY_free(k_p384);
    char *cmd = util_asprintf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    free(cmd);
    return 0;
}

/* tests: jwt.c */

static void test_status_text(void **state)
{
    for (int s = AUTH_JWT_OK; s <= AUTH_JWT_NO_EXPIRY; ++s) {
        assert_non_null(auth_jwt_status_text(s));
        for (int t = AUTH_JWT_OK; t < s; ++t)
            assert_string_not_equal(auth_jwt_status_text(s), auth_jwt_status_text(t));
    }
    assert_string_equal(auth_jwt_status_text(AUTH_JWT_EXPIRED), "the token has expired");
}

static void test_base64url(void **state)
{
    static const char *const cases[][2] = {{"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"\xfb\xff", "-_8"}};
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        char *enc = b64(cases[i][0], strlen(cases[i][0]));
        assert_string_equal(enc, cases[i][1]);
        free(enc);
        size_t len;
        unsigned char *dec = auth_base64url_decode(cases[i][1], strlen(cases[i][1]), &len);
        assert_non_null(dec);
        assert_int_equal(len, strlen(cases[i][0]));
        assert_memory_equal(dec, cases[i][0], len);
        free(dec);
    }
    /* padding, the standard alphabet, a lone last character, unused bits set, spaces */
    static const char *const bad[] = {"Zg==", "Zm8=", "+/8", "Z", "Zm9vY", "Zh", "Zm9", "Zm 9v", "Zm9v\n", "Zm.v"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        size_t len;
        if (auth_base64url_decode(bad[i], strlen(bad[i]), &len) != NULL)
            fail_msg("\"%s\" decoded", bad[i]);
    }
}

static void test_valid_each_alg(void **state)
{
    static const struct {
        EVP_PKEY **key;
        const char *alg, *kid;
    } cases[] = {
        {&k_rsa, "RS256", "rsa1"}, {&k_rsa, "RS384", "rsa1"}, {&k_rsa, "RS256", "rsa-pinned"}, {&k_p256, "ES256", "ec256"},
        {&k_p384, "ES384", "ec384"}, {&k_rsa, "RS256", NULL},  {&k_rsa, "RS384", NULL},        {&k_p256, "ES256", NULL},
        {&k_p384, "ES384", NULL},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        char *token = jws(*cases[i].key, cases[i].alg, cases[i].kid, claims_base()), kid[64] = "x";
        json_t *claims = NULL;
        auth_jwt_status_t st = auth_jwt_verify(token, strlen(token), keyset, &expect, &claims, kid, sizeof(kid));
        if (st != AUTH_JWT_OK)
            fail_msg("%s kid %s: %s", cases[i].alg, cases[i].kid, auth_jwt_status_text(st));
        assert_string_equal(json_string_value(json_object_get(claims, "sub")), "user-1");
        assert_string_equal(kid, cases[i].kid != NULL ? cases[i].kid : "");
        json_decref(claims);
        /* every verifier call with the same input gives the same answer; kid may be NULL */
        assert_int_equal(auth_jwt_verify(token, strlen(token), keyset, &expect, &claims, NULL, 0), AUTH_JWT_OK);
        json_decref(claims);
        free(token);
    }
}

static void test_rfc7515_es256_example(void **state)
{
    static const char jwks[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                               "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
    static const char token[] = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb2"
                                "90Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    auth_keyset_t *keys = parse_ok(jwks);
    auth_jwt_expect_t ex = {.issuer = "joe", .skew_seconds = 0, .now = 1300819379};
    json_t *claims;
    assert_int_equal(auth_jwt_verify(token, strlen(token), keys, &ex, &claims, NULL, 0), AUTH_JWT_OK);
    assert_true(json_is_true(json_object_get(claims, "http://example.com/is_root")));
    json_decref(claims);
    ex.now = 1300819380;
    assert_int_equal(verify_with(token, keys, &ex), AUTH_JWT_EXPIRED);
    ex.skew_seconds = 60;
    assert_int_equal(verify_with(token, keys, &ex), AUTH_JWT_OK);
    ex.now = 1300819380 + 60;
    assert_int_equal(verify_with(token, keys, &ex), AUTH_JWT_EXPIRED);
    /* the example has no aud: a server that expects one refuses it */
    ex.now = 1300819000;
    ex.audience = AUD;
    assert_int_equal(verify_with(token, keys, &ex), AUTH_JWT_BAD_AUDIENCE);
    auth_keyset_release(keys);
}

static void test_audience(void **state)
{
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"aud\":[\"other\",\"" AUD "\"]}")), AUTH_JWT_OK);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"aud\":[\"" AUD "\"]}")), AUTH_JWT_OK);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"aud\":\"https://other.example/fhir\"}")), AUTH_JWT_BAD_AUDIENCE);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"aud\":[\"other\",\"" AUD "/\"]}")), AUTH_JWT_BAD_AUDIENCE);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"aud\":[]}")), AUTH_JWT_BAD_AUDIENCE);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"aud\":null}")), AUTH_JWT_BAD_AUDIENCE);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"aud\":42}")), AUTH_JWT_MALFORMED);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"aud\":[\"" AUD "\",42]}")), AUTH_JWT_MALFORMED);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"aud\":{\"" AUD "\":true}}")), AUTH_JWT_MALFORMED);
}

static void test_issuer(void **state)
{
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"iss\":\"https://evil.example/realms/clinic\"}")), AUTH_JWT_BAD_ISSUER);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"iss\":\"" ISS "/\"}")), AUTH_JWT_BAD_ISSUER);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"iss\":\"https://idp.example/realms/clinicX\"}")), AUTH_JWT_BAD_ISSUER);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"iss\":null}")), AUTH_JWT_BAD_ISSUER);
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"iss\":[\"" ISS "\"]}")), AUTH_JWT_MALFORMED);
    /* the issuer is checked before the audience */
    expect_status(jws(k_p256, "ES256", "ec256", claims_with("{\"iss\":\"x\",\"aud\":\"y\"}")), AUTH_JWT_BAD_ISSUER);
}

static void test_times(void **state)
{
    char changes[128];
    /* exp: the current time must be before exp + skew */
    snprintf(changes, sizeof(changes), "{\"exp\":%d}", NOW - 61);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with(changes)), AUTH_JWT_EXPIRED);
    snprintf(changes, sizeof(changes), "{\"exp\":%d}", NOW - 60);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with(changes)), AUTH_JWT_EXPIRED);
    snprintf(changes, sizeof(changes), "{\"exp\":%d}", NOW - 59);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with(changes)), AUTH_JWT_OK);
    snprintf(changes, sizeof(changes), "{\"exp\":%d.5}", NOW);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with(changes)), AUTH_JWT_OK);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with("{\"exp\":1e300}")), AUTH_JWT_OK);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with("{\"exp\":null}")), AUTH_JWT_NO_EXPIRY);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with("{\"exp\":\"1900000000\"}")), AUTH_JWT_MALFORMED);
    /* nbf and iat: not in the future beyond the skew */
    snprintf(changes, sizeof(changes), "{\"nbf\":%d}", NOW + 61);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with(changes)), AUTH_JWT_NOT_YET_VALID);
    snprintf(changes, sizeof(changes), "{\"nbf\":%d}", NOW + 60);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with(changes)), AUTH_JWT_OK);
    snprintf(changes, sizeof(changes), "{\"iat\":%d}", NOW + 120);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with(changes)), AUTH_JWT_NOT_YET_VALID);
    snprintf(changes, sizeof(changes), "{\"iat\":%d, \"nbf\":null}", NOW + 30);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with(changes)), AUTH_JWT_OK);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with("{\"iat\":null, \"nbf\":null}")), AUTH_JWT_OK);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with("{\"nbf\":\"soon\"}")), AUTH_JWT_MALFORMED);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with("{\"iat\":true}")), AUTH_JWT_MALFORMED);
    /* expired is reported before not-yet-valid; no skew at all */
    snprintf(changes, sizeof(changes), "{\"exp\":%d, \"nbf\":%d}", NOW - 1000, NOW + 1000);
    expect_status(jws(k_rsa, "RS256", "rsa1", claims_with(changes)), AUTH_JWT_EXPIRED);
    auth_jwt_expect_t strict = expect;
    strict.skew_seconds = 0;
    snprintf(changes, sizeof(changes), "{\"exp\":%d}", NOW);
    char *token = jws(k_rsa, "RS256", "rsa1", claims_with(changes));
    assert_int_equal(verify_with(token, keyset, &strict), AUTH_JWT_EXPIRED);
    free(token);
    snprintf(changes, sizeof(changes), "{\"nbf\":%d}", NOW + 1);
    token = jws(k_rsa, "RS256", "rsa1", claims_with(changes));
    assert_int_equal(verify_with(token, keyset, &strict), AUTH_JWT_NOT_YET_VALID);
    free(token);
}

/* `token` with its character at `pos` (counted from the start of `part`) replaced by a different base64url character */
static char *tamper(const char *token, int part, size_t pos)
{
    char *t = util_xstrdup(token), *p = t;
    for (int i = 0; i != part; ++i)
        p = strchr(p, '.') + 1;
    p[pos] = p[pos] == 'A' ? 'B' : 'A';
    return t;
}

static void test_tampering(void **state)
{
    EVP_PKEY *keys[] = {k_rsa, k_p256, k_p384};
    const char *algs[] = {"RS256", "ES256", "ES384"}, *kids[] = {"rsa1", "ec256", "ec384"};
    for (int i = 0; i != 3; ++i) {
        char *token = jws(keys[i], algs[i], kids[i], claims_base());
        assert_int_equal(verify(token), AUTH_JWT_OK);
        /* a payload of our choosing with the original signature */
        json_t *changed = claims_with("{\"scope\":\"user/*.*\"}");
        char *claims = json_dumps(changed, JSON_COMPACT), *p = b64(claims, strlen(claims));
        json_decref(changed);
        const char *dot1 = strchr(token, '.'), *dot2 = strchr(dot1 + 1, '.');
        char *forged = util_asprintf("%.*s.%s%s", (int)(dot1 - token), token, p, dot2);
        expect_status(forged, AUTH_JWT_BAD_SIGNATURE);
        free(p);
        free(claims);
        /* one character of the signature, of the payload */
        expect_status(tamper(token, 2, 10), AUTH_JWT_BAD_SIGNATURE);
        expect_status(tamper(token, 1, 5), AUTH_JWT_BAD_SIGNATURE);
        /* a signature three bytes short (its first four characters gone), or three bytes long */
        expect_status(util_asprintf("%.*s.%s", (int)(dot2 - token), token, dot2 + 5), AUTH_JWT_BAD_SIGNATURE);
        expect_status(util_asprintf("%sAAAA", token), AUTH_JWT_BAD_SIGNATURE);
        /* no signature at all */
        expect_status(util_asprintf("%.*s.", (int)(dot2 - token), token), AUTH_JWT_BAD_SIGNATURE);
        free(token);
    }
    /* another key under a known kid; without a kid, no key of the set fits */
    expect_status(jws(k_rsa_other, "RS256", "rsa1", claims_base()), AUTH_JWT_BAD_SIGNATURE);
    expect_status(jws(k_p256_other, "ES256", "ec256", claims_base()), AUTH_JWT_BAD_SIGNATURE);
    expect_status(jws(k_p256_other, "ES256", NULL, claims_base()), AUTH_JWT_BAD_SIGNATURE);
    /* ECDSA's r and s both zero ("psychic signatures") */
    char *h = b64("{\"alg\":\"ES256\",\"kid\":\"ec256\"}", 29), *p = b64("{}", 2);
    unsigned char zeros[64] = {0};
    char *z = b64(zeros, sizeof(zeros));
    expect_status(util_asprintf("%s.%s.%s", h, p, z), AUTH_JWT_BAD_SIGNATURE);
    free(h);
    free(p);
    free(z);
}

static void test_unknown_key(void **state)
{
    char *token = jws(k_p256, "ES256", "no-such-kid", claims_base()), kid[8];
    json_t *claims;
    assert_int_equal(auth_jwt_verify(token, strlen(token), keyset, &expect, &claims, kid, sizeof(kid)), AUTH_JWT_UNKNOWN_KEY);
    /* the kid comes back (truncated) for the log line and the refresh decision */
    assert_string_equal(kid, "no-such");
    assert_int_equal(verify_with(token, NULL, &expect), AUTH_JWT_UNKNOWN_KEY);
    free(token);
    /* a kid with control characters comes back printable */
    token = jws(k_p256, "ES256", "a\nb\x7f", claims_base());
    assert_int_equal(auth_jwt_verify(token, strlen(token), keyset, &expect, &claims, kid, sizeof(kid)), AUTH_JWT_UNKNOWN_KEY);
    assert_string_equal(kid, "a?b?");
    free(token);
    /* without a kid and no key of the alg's type in the set */
    char *jwks = jwks_of(jwk_of(k_p256, "ec256", NULL), NULL);
    auth_keyset_t *only_ec = parse_ok(jwks);
    token = jws(k_rsa, "RS256", NULL, claims_base());
    assert_int_equal(verify_with(token, only_ec, &expect), AUTH_JWT_UNKNOWN_KEY);
    free(token);
    token = jws(k_p384, "ES384", NULL, claims_base());
    assert_int_equal(verify_with(token, only_ec, &expect), AUTH_JWT_UNKNOWN_KEY);
    free(token);
    auth_keyset_release(only_ec);
    free(jwks);
}

static void test_alg_refused(void **state)
{
    char *p = b64("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1900000000}", strlen("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1900000000}"));
    /* unsecured tokens, however spelt */
    static const char *const none_headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\",\"kid\":\"rsa1\"}", "{\"alg\":\"NONE\"}", "{\"alg\":\"\"}"};
    for (size_t i = 0; i != sizeof(none_headers) / sizeof(none_headers[0]); ++i) {
        char *h = b64(none_headers[i], strlen(none_headers[i]));
        expect_status(util_asprintf("%s.%s.", h, p), AUTH_JWT_ALG_REFUSED);
        free(h);
    }
    /* HS256 keyed with the public key's PEM and DER (the classic RS256/HS256 confusion) */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k_rsa), 1);
    char *pem;
    long pemlen = BIO_get_mem_data(bio, &pem);
    unsigned char *der = NULL;
    int derlen = i2d_PUBKEY(k_rsa, &der);
    const struct {
        const void *secret;
        size_t len;
    } secrets[] = {{pem, (size_t)pemlen}, {der, (size_t)derlen}};
    static const char *const hmac_headers[] = {"{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", "{\"alg\":\"HS256\"}", "{\"alg\":\"HS384\"}",
                                               "{\"alg\":\"HS512\",\"kid\":\"rsa1\"}"};
    for (size_t s = 0; s != 2; ++s) {
        for (size_t i = 0; i != sizeof(hmac_headers) / sizeof(hmac_headers[0]); ++i) {
            char *h = b64(hmac_headers[i], strlen(hmac_headers[i])), *input = util_asprintf("%s.%s", h, p);
            unsigned char mac[64];
            size_t maclen = 0;
            const char *digest = strstr(hmac_headers[i], "384") != NULL ? "SHA384" : strstr(hmac_headers[i], "512") ? "SHA512" : "SHA256";
            assert_non_null(
                EVP_Q_mac(NULL, "HMAC", NULL, digest, NULL, secrets[s].secret, secrets[s].len, (const unsigned char *)input, strlen(input), mac, sizeof(mac), &maclen));
            char *m = b64(mac, maclen);
            expect_status(util_asprintf("%s.%s", input, m), AUTH_JWT_ALG_REFUSED);
            free(m);
            free(input);
            free(h);
        }
    }
    OPENSSL_free(der);
    BIO_free(bio);
    free(p);
    /* other JWS algorithms we do not take */
    static const char *const others[] = {"PS256", "ES512", "RS512", "EdDSA", "ES256K", "es256", "RS256 "};
    for (size_t i = 0; i != sizeof(others) / sizeof(others[0]); ++i) {
        char *header = util_asprintf("{\"alg\":\"%s\",\"kid\":\"rsa1\"}", others[i]);
        char *claims = claims_text();
        expect_status(jws_text(k_rsa, "SHA256", header, claims, 0), AUTH_JWT_ALG_REFUSED);
        free(header);
        free(claims);
    }
    /* the alg does not fit the key that kid names */
    expect_status(jws(k_rsa, "RS256", "ec256", claims_base()), AUTH_JWT_ALG_REFUSED);
    expect_status(jws(k_p384, "ES256", "ec384", claims_base()), AUTH_JWT_ALG_REFUSED);
    expect_status(jws(k_p256, "ES384", "ec256", claims_base()), AUTH_JWT_ALG_REFUSED);
    expect_status(jws(k_p256, "ES256", "rsa1", claims_base()), AUTH_JWT_ALG_REFUSED);
    /* the JWK says RS256 only */
    expect_status(jws(k_rsa, "RS384", "rsa-pinned", claims_base()), AUTH_JWT_ALG_REFUSED);
    /* ES256 signed by a P-384 key without a kid: tried against the P-256 keys only */
    expect_status(jws(k_p384, "ES256", NULL, claims_base()), AUTH_JWT_BAD_SIGNATURE);
}

static void test_der_ecdsa_refused(void **state)
{
    char *claims = claims_text();
    expect_status(jws_text(k_p256, "SHA256", "{\"alg\":\"ES256\",\"kid\":\"ec256\"}", claims, 1), AUTH_JWT_BAD_SIGNATURE);
    expect_status(jws_text(k_p384, "SHA384", "{\"alg\":\"ES384\",\"kid\":\"ec384\"}", claims, 1), AUTH_JWT_BAD_SIGNATURE);
    expect_status(jws_text(k_p256, "SHA256", "{\"alg\":\"ES256\"}", claims, 1), AUTH_JWT_BAD_SIGNATURE);
    /* the same signatures as r||s pass */
    expect_status(jws_text(k_p256, "SHA256", "{\"alg\":\"ES256\",\"kid\":\"ec256\"}", claims, 0), AUTH_JWT_OK);
    expect_status(jws_text(k_p384, "SHA384", "{\"alg\":\"ES384\",\"kid\":\"ec384\"}", claims, 0), AUTH_JWT_OK);
    free(claims);
}

static void test_malformed(void **state)
{
    static const char *const garbage[] = {"", ".", "..", "...", "abc", "a.b", "Bearer x.y.z", "a..c", ".b.c", "e30.e30.e30.e30",
                                          "e30=.e30.", "eyJhbGciOiJFUzI1NiJ9 .e30.", "eyJhbGciOiJFUzI1NiJ9.e3 0.", "\xff\xfe.e30.",
                                          "eyJhbGciOiJFUzI1NiJ9.e30.+/+/"};
    for (size_t i = 0; i != sizeof(garbage) / sizeof(garbage[0]); ++i) {
        if (verify(garbage[i]) != AUTH_JWT_MALFORMED)
            fail_msg("\"%s\" is not malformed", garbage[i]);
    }
    json_t *claims = (json_t *)1;
    assert_int_equal(auth_jwt_verify(NULL, 0, keyset, &expect, &claims, NULL, 0), AUTH_JWT_MALFORMED);
    assert_null(claims);
    /* a NUL inside */
    char *token = jws(k_p256, "ES256", "ec256", claims_base());
    char *nul = util_xstrdup(token);
    nul[3] = '\0';
    assert_int_equal(auth_jwt_verify(nul, strlen(token), keyset, &expect, &claims, NULL, 0), AUTH_JWT_MALFORMED);
    free(nul);
    /* only the first len bytes count: the buffer need not end there */
    char *longer = util_asprintf("%s.garbage", token);
    assert_int_equal(auth_jwt_verify(longer, strlen(token), keyset, &expect, &claims, NULL, 0), AUTH_JWT_OK);
    json_decref(claims);
    assert_int_equal(auth_jwt_verify(longer, strlen(longer), keyset, &expect, &claims, NULL, 0), AUTH_JWT_MALFORMED);
    free(longer);
    free(token);

    /* headers: not JSON, not an object, no alg, odd types, crit, duplicate members */
    static const char *const headers[] = {"{\"alg\":\"ES256\"", "[\"ES256\"]", "\"ES256\"", "{}", "{\"alg\":256}", "{\"alg\":null}",
                                          "{\"alg\":\"ES256\",\"kid\":7}", "{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}",
                                          "{\"alg\":\"ES256\",\"crit\":[]}", "{\"alg\":\"none\",\"alg\":\"ES256\"}", "{\"alg\":\"ES256\"} x"};
    char *payload = claims_text();
    for (size_t i = 0; i != sizeof(headers) / sizeof(headers[0]); ++i) {
        char *t = jws_text(k_p256, "SHA256", headers[i], payload, 0);
        if (verify(t) != AUTH_JWT_MALFORMED)
            fail_msg("header %s: %s", headers[i], auth_jwt_status_text(verify(t)));
        free(t);
    }
    free(payload);
    /* payloads, correctly signed: not JSON, not an object, duplicate claims */
    static const char *const payloads[] = {"not json", "[1,2]", "\"" ISS "\"",
                                           "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1900000000,\"exp\":1}", ""};
    for (size_t i = 0; i != sizeof(payloads) / sizeof(payloads[0]); ++i) {
        char *t = jws_text(k_p256, "SHA256", "{\"alg\":\"ES256\",\"kid\":\"ec256\"}", payloads[i], 0);
        if (verify(t) != AUTH_JWT_MALFORMED)
            fail_msg("payload %s: %s", payloads[i], auth_jwt_status_text(verify(t)));
        free(t);
    }
    /* over 16 KiB, however well signed; just under is fine */
    util_buf_t big;
    util_buf_init(&big);
    for (int i = 0; i != 1200; ++i)
        util_buf_puts(&big, "user/*.read ");
    json_t *c = claims_base();
    json_object_set_new(c, "scope", json_string(big.base));
    token = jws(k_p256, "ES256", "ec256", c);
    assert_true(strlen(token) > AUTH_JWT_MAX_LEN);
    expect_status(token, AUTH_JWT_MALFORMED);
    big.base[AUTH_JWT_MAX_LEN / 4 * 3 - 600] = '\0';
    c = claims_base();
    json_object_set_new(c, "scope", json_string(big.base));
    token = jws(k_p256, "ES256", "ec256", c);
    assert_true(strlen(token) <= AUTH_JWT_MAX_LEN);
    expect_status(token, AUTH_JWT_OK);
    util_buf_dispose(&big);
}

static void test_keyset_parse(void **state)
{
    char err[512], *text;
    auth_keyset_t *keys;

    /* unusable keys are skipped: use enc, symmetric, small RSA, other curves, key_ops without verify, foreign alg, alg not
     * fitting, off-curve points, short coordinates, e = 1, even n, missing members */
    json_t *off_curve = jwk_of(k_p256, "off", NULL), *short_x = jwk_of(k_p256, "short", NULL), *e1 = jwk_of(k_rsa, "e1", NULL);
    char *y = util_xstrdup(json_string_value(json_object_get(off_curve, "y")));
    y[5] = y[5] == 'A' ? 'B' : 'A';
    json_object_set_new(off_curve, "y", json_string(y));
    free(y);
    json_object_set_new(short_x, "x", json_string("AAAA"));
    json_object_set_new(e1, "e", json_string("AQ"));
    text = jwks_of(jwk_of(k_rsa, "enc", "{\"use\":\"enc\"}"), json_pack("{s:s, s:s, s:s}", "kty", "oct", "k", "c2VjcmV0", "kid", "hmac"),
                   jwk_of(k_small, "small", NULL), json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-521", "x", "AA", "y", "AA"),
                   jwk_of(k_p256, "ops-enc", "{\"key_ops\":[\"encrypt\"]}"), jwk_of(k_rsa, "oaep", "{\"alg\":\"RSA-OAEP\"}"),
                   jwk_of(k_rsa, "misfit", "{\"alg\":\"ES256\"}"), jwk_of(k_p256, "misfit2", "{\"alg\":\"ES384\"}"), off_curve, short_x, e1,
                   json_pack("{s:s}", "kty", "RSA"), json_pack("{s:s, s:s}", "kty", "OKP", "crv", "Ed25519"), json_string("not a key"),
                   jwk_of(k_rsa, "use-num", "{\"use\":1}"), jwk_of(k_rsa, "kid-num", NULL), NULL);
    /* all of them unusable (the last has a numeric kid) */
    char *fixed = strstr(text, "\"kid\":\"kid-num\"");
    assert_non_null(fixed);
    memcpy(fixed, "\"kid\":12345678 ", 15);
    assert_null(auth_keyset_parse(text, strlen(text), err, sizeof(err)));
    assert_non_null(strstr(err, "no usable signature key"));
    assert_non_null(strstr(err, "16 skipped"));
    free(text);

    /* the same with two usable keys among them */
    text = jwks_of(jwk_of(k_rsa, "enc", "{\"use\":\"enc\"}"), jwk_of(k_small, "small", NULL), jwk_of(k_p384, "ok1", "{\"key_ops\":[\"verify\"]}"),
                   json_pack("{s:s, s:s}", "kty", "oct", "k", "c2VjcmV0"), jwk_of(k_rsa, "ok2", "{\"alg\":\"RS384\",\"x5c\":[\"MII\"]}"), NULL);
    keys = parse_ok(text);
    assert_int_equal(auth_keyset_count(keys), 2);
    char *t = jws(k_rsa, "RS384", "ok2", claims_base());
    assert_int_equal(verify_with(t, keys, &expect), AUTH_JWT_OK);
    free(t);
    t = jws(k_rsa, "RS256", "enc", claims_base());
    assert_int_equal(verify_with(t, keys, &expect), AUTH_JWT_UNKNOWN_KEY);
    free(t);
    /* reference counting: the set outlives its first owner */
    auth_keyset_retain(keys);
    auth_keyset_release(keys);
    assert_int_equal(auth_keyset_count(keys), 2);
    auth_keyset_release(keys);
    auth_keyset_release(NULL);
    auth_keyset_retain(NULL);
    assert_int_equal(auth_keyset_count(NULL), 0);
    free(text);

    /* documents that are not a JWKS */
    static const struct {
        const char *doc, *msg;
    } bad[] = {
        {"", "not JSON"},
        {"{\"keys\":[}", "not JSON"},
        {"[]", "\"keys\" array"},
        {"{\"keys\":{}}", "\"keys\" array"},
        {"{\"kty\":\"EC\"}", "\"keys\" array"},
        {"{\"keys\":[]}", "no keys"},
        {"{\"keys\":[],\"keys\":[]}", "not JSON"},
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        err[0] = '\0';
        assert_null(auth_keyset_parse(bad[i].doc, strlen(bad[i].doc), err, sizeof(err)));
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("%s: \"%s\" does not say %s", bad[i].doc, err, bad[i].msg);
    }
}

/* tests: keys.c */

static void write_text(const char *path, const char *text)
{
    char *tmp = util_asprintf("%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    /* a rename, as deployment tools do, so a reader never sees half a file */
    assert_int_equal(rename(tmp, path), 0);
    free(tmp);
}

static void test_keys_file(void **state)
{
    char err[512], *path = util_asprintf("%s/jwks.json", tmpdir), *text;
    auth_keyset_t *keys, *old;

    assert_null(auth_keys_current());
    assert_int_equal(auth_keys_refresh(err, sizeof(err)), -1);
    assert_int_equal(auth_keys_init(NULL, NULL, NULL, 1, err, sizeof(err)), -1);
    assert_int_equal(auth_keys_init(path, "http://127.0.0.1:1/", NULL, 1, err, sizeof(err)), -1);
    assert_int_equal(auth_keys_init(path, NULL, NULL, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "auth.jwks_file: "));
    assert_non_null(strstr(err, path));

    text = jwks_of(jwk_of(k_p256, "a", NULL), NULL);
    write_text(path, text);
    free(text);
    assert_int_equal(auth_keys_init(path, NULL, NULL, 1, err, sizeof(err)), 0);
    old = auth_keys_current();
    assert_int_equal(auth_keyset_count(old), 1);
    char *token_b = jws(k_p384, "ES384", "b", claims_base());
    assert_int_equal(verify_with(token_b, old, &expect), AUTH_JWT_UNKNOWN_KEY);

    /* the IdP adds key b; a refresh right away is too soon */
    text = jwks_of(jwk_of(k_p256, "a", NULL), jwk_of(k_p384, "b", NULL), NULL);
    write_text(path, text);
    free(text);
    assert_int_equal(auth_keys_refresh(err, sizeof(err)), 0);
    keys = auth_keys_current();
    assert_ptr_equal(keys, old);
    auth_keyset_release(keys);
    usleep(1100 * 1000);
    assert_int_equal(auth_keys_refresh(err, sizeof(err)), 1);
    keys = auth_keys_current();
    assert_int_equal(auth_keyset_count(keys), 2);
    assert_int_equal(verify_with(token_b, keys, &expect), AUTH_JWT_OK);
    /* a caller still holding the old set keeps a working set */
    assert_int_equal(auth_keyset_count(old), 1);
    auth_keyset_release(old);

    /* a broken file later: the error names the setting and the file, and the last good set stays */
    write_text(path, "{\"keys\": [");
    usleep(1100 * 1000);
    assert_int_equal(auth_keys_refresh(err, sizeof(err)), -1);
    assert_non_null(strstr(err, "auth.jwks_file: "));
    assert_non_null(strstr(err, "not JSON"));
    /* the failed attempt counts: no second try within refresh_seconds */
    assert_int_equal(auth_keys_refresh(err, sizeof(err)), 0);
    old = keys;
    keys = auth_keys_current();
    assert_ptr_equal(keys, old);
    auth_keyset_release(old);
    auth_keyset_release(keys);

    /* refresh_seconds 0: every call reloads */
    text = jwks_of(jwk_of(k_rsa, "c", NULL), NULL);
    write_text(path, text);
    free(text);
    assert_int_equal(auth_keys_init(path, NULL, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(auth_keys_refresh(err, sizeof(err)), 1);
    assert_int_equal(auth_keys_refresh(err, sizeof(err)), 1);
    keys = auth_keys_current();
    assert_int_equal(auth_keyset_count(keys), 1);
    auth_keyset_release(keys);

    auth_keys_dispose();
    assert_null(auth_keys_current());
    assert_int_equal(auth_keys_refresh(err, sizeof(err)), -1);
    auth_keys_dispose();
    free(token_b);
    free(path);
}

/* A one-connection-at-a-time HTTP server on 127.0.0.1 that answers each request with the next canned response. */
typedef struct {
    int fd;
    int port;
    const char *const *responses;
    size_t count;
    char last_request[2048];
} canned_server_t;

static void *canned_serve(void *arg)
{
    canned_server_t *s = arg;
    for (size_t i = 0; i != s->count; ++i) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            break;
        size_t len = 0;
        ssize_t n;
        while (len < sizeof(s->last_request) - 1 && (n = read(c, s->last_request + len, sizeof(s->last_request) - 1 - len)) > 0) {
            len += (size_t)n;
            s->last_request[len] = '\0';
            if (strstr(s->last_request, "\r\n\r\n") != NULL)
                break;
        }
        const char *r = s->responses[i];
        /* a response in two writes, so the client has to read more than once */
        size_t half = strlen(r) / 2;
        if (send(c, r, half, MSG_NOSIGNAL) < 0 || (usleep(20000), send(c, r + half, strlen(r) - half, MSG_NOSIGNAL)) < 0)
            fprintf(stderr, "canned server: %s\n", strerror(errno));
        close(c);
    }
    return NULL;
}

static void canned_start(canned_server_t *s, pthread_t *thread, const char *const *responses, size_t count)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    memset(s, 0, sizeof(*s));
    s->responses = responses;
    s->count = count;
    assert_true((s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&addr, &alen), 0);
    s->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(thread, NULL, canned_serve, s), 0);
}

static void test_keys_url(void **state)
{
    char *jwks = jwks_of(jwk_of(k_p256, "u1", NULL), NULL), *jwks2 = jwks_of(jwk_of(k_p256, "u1", NULL), jwk_of(k_p384, "u2", NULL), NULL);
    size_t half = strlen(jwks2) / 2;
    char *r_length = util_asprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(jwks), jwks);
    char *r_chunked = util_asprintf("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n%zx;ext=1\r\n%.*s\r\n%zx\r\n%s\r\n0\r\n\r\n", half,
                                    (int)half, jwks2, strlen(jwks2) - half, jwks2 + half);
    char *r_close = util_asprintf("HTTP/1.0 200 OK\r\n\r\n%s", jwks);
    char *r_too_big = util_asprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n{", 2 * 1024 * 1024);
    const char *responses[] = {
        r_length,
        r_chunked,
        "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
        r_close,
        "HTTP/1.1 301 Moved Permanently\r\nLocation: https://idp.example/certs\r\nContent-Length: 0\r\n\r\n",
        r_too_big,
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"keys\":[]}",
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"keys\":[]}",
        r_length,
        r_chunked,
    };
    canned_server_t s;
    pthread_t thread;
    char err[512], url[128], *body;
    size_t len;
    canned_start(&s, &thread, responses, sizeof(responses) / sizeof(responses[0]));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/realms/clinic/protocol/openid-connect/certs?x=1#frag", s.port);

    /* Content-Length; the request names the path, the query and the host */
    assert_int_equal(auth_keys_http_get(url, NULL, &body, &len, err, sizeof(err)), 0);
    assert_string_equal(body, jwks);
    assert_int_equal(len, strlen(jwks));
    free(body);
    assert_non_null(strstr(s.last_request, "GET /realms/clinic/protocol/openid-connect/certs?x=1 HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", s.port);
    assert_non_null(strstr(s.last_request, host));
    /* chunked */
    assert_int_equal(auth_keys_http_get(url, NULL, &body, &len, err, sizeof(err)), 0);
    assert_string_equal(body, jwks2);
    free(body);
    /* a 404, named with the URL */
    assert_int_equal(auth_keys_http_get(url, NULL, &body, &len, err, sizeof(err)), -1);
    assert_null(body);
    char want[256];
    snprintf(want, sizeof(want), "%s: HTTP 404", url);
    assert_string_equal(err, want);
    /* read to close */
    assert_int_equal(auth_keys_http_get(url, NULL, &body, &len, err, sizeof(err)), 0);
    assert_string_equal(body, jwks);
    free(body);
    /* redirects are not followed, larger than 1 MiB, a short body, gzip, bad chunks */
    assert_int_equal(auth_keys_http_get(url, NULL, &body, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "HTTP 301"));
    assert_non_null(strstr(err, "https://idp.example/certs"));
    assert_int_equal(auth_keys_http_get(url, NULL, &body, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "larger than"));
    assert_int_equal(auth_keys_http_get(url, NULL, &body, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ends after 11 of 100 bytes"));
    assert_int_equal(auth_keys_http_get(url, NULL, &body, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Content-Encoding"));
    assert_int_equal(auth_keys_http_get(url, NULL, &body, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "chunked"));
    /* through the store: a JWKS without keys, then a good one, then a refresh that brings u2 */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/certs", s.port);
    assert_int_equal(auth_keys_init(NULL, url, NULL, 0, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "auth.jwks_url: %s: the JWKS has no keys", url);
    assert_string_equal(err, want);
    assert_int_equal(auth_keys_init(NULL, url, NULL, 0, err, sizeof(err)), 0);
    auth_keyset_t *keys = auth_keys_current();
    assert_int_equal(auth_keyset_count(keys), 1);
    auth_keyset_release(keys);
    assert_int_equal(auth_keys_refresh(err, sizeof(err)), 1);
    keys = auth_keys_current();
    assert_int_equal(auth_keyset_count(keys), 2);
    auth_keyset_release(keys);
    pthread_join(thread, NULL);
    close(s.fd);

    /* nobody listening any more; URLs we do not take */
    assert_int_equal(auth_keys_refresh(err, sizeof(err)), -1);
    assert_non_null(strstr(err, "auth.jwks_url: "));
    assert_non_null(strstr(err, "cannot connect"));
    auth_keys_dispose();
    static const char *const bad_urls[] = {"ftp://x/", "http://", "http://u:p@host/", "http://host:0/", "http://host:99999/",
                                           "http://host:8x/", "http://ho st/", "http://[::1/", "https://host/a\r\nX: y"};
    for (size_t i = 0; i != sizeof(bad_urls) / sizeof(bad_urls[0]); ++i) {
        assert_int_equal(auth_keys_http_get(bad_urls[i], NULL, &body, &len, err, sizeof(err)), -1);
        assert_int_equal(strncmp(err, bad_urls[i], strlen("http")), 0);
    }
    assert_int_equal(auth_keys_http_get("http://no-such-host.invalid/", NULL, &body, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot resolve"));

    free(jwks);
    free(jwks2);
    free(r_length);
    free(r_chunked);
    free(r_close);
    free(r_too_big);
}

/* tests: token_cmd.c */

/* Runs `fhirsched token ARGS...` with stdout captured into a malloc'd string; returns the exit status. */
static int run_token(char **out, ...)
{
    char *argv[32] = {"token"};
    int argc = 1;
    va_list args;
    va_start(args, out);
    for (char *a; (a = va_arg(args, char *)) != NULL;)
        argv[argc++] = a;
    va_end(args);
    char *path = util_asprintf("%s/stdout", tmpdir);
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    int ret = auth_token_cmd_run(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *fp = fopen(path, "r");
    util_buf_t buf;
    util_buf_init(&buf);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) != 0)
        util_buf_append(&buf, chunk, n);
    fclose(fp);
    free(path);
    if (out != NULL)
        *out = buf.base;
    else
        util_buf_dispose(&buf);
    return ret;
}

static void test_token_command(void **state)
{
    static const char *const algs[] = {"ES256", "ES384", "RS256"};
    unsetenv("FHIRSCHED_AUTH_ISSUER");
    unsetenv("FHIRSCHED_AUTH_AUDIENCE");
    unsetenv("FHIRSCHED_BASE_URL");
    for (size_t i = 0; i != sizeof(algs) / sizeof(algs[0]); ++i) {
        char *key = util_asprintf("%s/key-%s.pem", tmpdir, algs[i]), *out, err[512];
        struct stat st;
        assert_int_equal(run_token(&out, "--new-key", key, "--alg", algs[i], NULL), 0);
        assert_string_equal(out, "");
        free(out);
        assert_int_equal(stat(key, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        /* never overwritten */
        assert_int_equal(run_token(NULL, "--new-key", key, NULL), 1);
        assert_int_equal(stat(key, &st), 0);

        /* the JWKS: one key, kid = thumbprint, alg, use sig */
        assert_int_equal(run_token(&out, "--key", key, "--jwks", NULL), 0);
        auth_keyset_t *keys = auth_keyset_parse(out, strlen(out), err, sizeof(err));
        assert_non_null(keys);
        assert_int_equal(auth_keyset_count(keys), 1);
        json_t *doc = json_loads(out, 0, NULL), *jwk = json_array_get(json_object_get(doc, "keys"), 0);
        assert_string_equal(json_string_value(json_object_get(jwk, "alg")), algs[i]);
        assert_string_equal(json_string_value(json_object_get(jwk, "use")), "sig");
        assert_null(json_object_get(jwk, "d"));
        assert_int_equal(json_string_length(json_object_get(jwk, "kid")), 43);
        char *kid = util_xstrdup(json_string_value(json_object_get(jwk, "kid")));
        json_decref(doc);
        free(out);

        /* a token with every option; --claim replaces and removes */
        assert_int_equal(run_token(&out, "--key", key, "--iss", ISS, "--aud", AUD, "--sub", "u-7", "--scope", "user/*.read user/Appointment.write",
                                   "--role", "receptionist", "--role", "doctor", "--locations", "Location/a, Location/b", "--patient", "p1",
                                   "--fhir-user", "Practitioner/x", "--client-id", "portal", "--ttl", "120", "--claim", "x={\"y\":[1]}",
                                   "--claim", "jti=", NULL),
                         0);
        assert_int_equal(out[strlen(out) - 1], '\n');
        out[strlen(out) - 1] = '\0';
        auth_jwt_expect_t now = {.issuer = ISS, .audience = AUD, .skew_seconds = 0, .now = time(NULL)};
        json_t *claims;
        char got_kid[64];
        assert_int_equal(auth_jwt_verify(out, strlen(out), keys, &now, &claims, got_kid, sizeof(got_kid)), AUTH_JWT_OK);
        assert_string_equal(got_kid, kid);
        assert_string_equal(json_string_value(json_object_get(claims, "sub")), "u-7");
        assert_string_equal(json_string_value(json_object_get(claims, "client_id")), "portal");
        assert_string_equal(json_string_value(json_object_get(claims, "patient")), "p1");
        assert_string_equal(json_string_value(json_object_get(claims, "fhirUser")), "Practitioner/x");
        assert_string_equal(json_string_value(json_object_get(claims, "scope")), "user/*.read user/Appointment.write");
        assert_int_equal(json_array_size(json_object_get(claims, "fhirsched_role")), 2);
        assert_string_equal(json_string_value(json_array_get(json_object_get(claims, "fhirsched_locations"), 1)), "Location/b");
        assert_int_equal(json_integer_value(json_array_get(json_object_get(json_object_get(claims, "x"), "y"), 0)), 1);
        assert_null(json_object_get(claims, "jti"));
        assert_int_equal(json_integer_value(json_object_get(claims, "exp")) - json_integer_value(json_object_get(claims, "iat")), 120);
        assert_int_equal(json_integer_value(json_object_get(claims, "nbf")), json_integer_value(json_object_get(claims, "iat")));
        json_decref(claims);
        free(out);
        free(kid);

        /* defaults from the environment; one role is a string; --kid */
        setenv("FHIRSCHED_AUTH_ISSUER", ISS, 1);
        setenv("FHIRSCHED_BASE_URL", AUD, 1);
        assert_int_equal(run_token(&out, "--key", key, "--role", "doctor", "--kid", "mine", NULL), 0);
        out[strcspn(out, "\n")] = '\0';
        now.now = time(NULL);
        char *jwks = NULL;
        assert_int_equal(run_token(&jwks, "--key", key, "--jwks", "--kid", "mine", NULL), 0);
        auth_keyset_t *mine = parse_ok(jwks);
        assert_int_equal(auth_jwt_verify(out, strlen(out), mine, &now, &claims, got_kid, sizeof(got_kid)), AUTH_JWT_OK);
        assert_string_equal(got_kid, "mine");
        assert_string_equal(json_string_value(json_object_get(claims, "fhirsched_role")), "doctor");
        assert_non_null(json_object_get(claims, "jti"));
        json_decref(claims);
        auth_keyset_release(mine);
        free(jwks);
        free(out);
        unsetenv("FHIRSCHED_AUTH_ISSUER");
        unsetenv("FHIRSCHED_BASE_URL");

        /* no issuer; an alg that does not fit; bad --ttl and --claim */
        assert_int_equal(run_token(&out, "--key", key, NULL), 2);
        assert_string_equal(out, "");
        free(out);
        assert_int_equal(run_token(NULL, "--key", key, "--iss", ISS, "--alg", i == 2 ? "ES256" : "RS256", NULL), 1);
        assert_int_equal(run_token(NULL, "--key", key, "--iss", ISS, "--ttl", "0", NULL), 2);
        assert_int_equal(run_token(NULL, "--key", key, "--iss", ISS, "--ttl", "-5", NULL), 2);
        assert_int_equal(run_token(NULL, "--key", key, "--iss", ISS, "--claim", "x={", NULL), 2);
        assert_int_equal(run_token(NULL, "--key", key, "--iss", ISS, "--claim", "novalue", NULL), 2);
        auth_keyset_release(keys);
        free(key);
    }
    assert_int_equal(run_token(NULL, "--key", "/nonexistent/key.pem", "--jwks", NULL), 1);
    assert_int_equal(run_token(NULL, "--jwks", NULL), 2);
    assert_int_equal(run_token(NULL, "--new-key", "/tmp/x", "--alg", "HS256", NULL), 2);
    assert_int_equal(run_token(NULL, "--bogus", NULL), 2);
    char *help;
    assert_int_equal(run_token(&help, "--help", NULL), 0);
    assert_non_null(strstr(help, "NOT FOR PRODUCTION"));
    free(help);
}

/* auth_token_sign against the verifier, and the RFC 7638 3.1 thumbprint */
static void test_token_sign_and_thumbprint(void **state)
{
    char err[256], thumb[64];
    EVP_PKEY *keys[] = {k_rsa, k_rsa, k_p256, k_p384};
    const char *algs[] = {"RS256", "RS384", "ES256", "ES384"}, *kids[] = {"rsa1", "rsa1", "ec256", "ec384"};
    for (int i = 0; i != 4; ++i) {
        json_t *claims = claims_base();
        char *token = auth_token_sign(keys[i], algs[i], kids[i], claims, err, sizeof(err));
        json_decref(claims);
        assert_non_null(token);
        expect_status(token, AUTH_JWT_OK);
    }
    json_t *claims = claims_base();
    assert_null(auth_token_sign(k_p256, "RS256", NULL, claims, err, sizeof(err)));
    assert_null(auth_token_sign(k_small, NULL, NULL, claims, err, sizeof(err)));
    assert_non_null(strstr(err, "2048"));
    json_decref(claims);

    static const char n_b64[] = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
                                "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0"
                                "zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF4"
                                "4-csFCur-kEgU8awapJzKnqDKgw";
    size_t nlen;
    unsigned char *n = auth_base64url_decode(n_b64, strlen(n_b64), &nlen);
    assert_non_null(n);
    BIGNUM *nbn = BN_bin2bn(n, (int)nlen, NULL), *ebn = BN_new();
    BN_set_word(ebn, 65537);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, nbn);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, ebn);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pub = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pub, EVP_PKEY_PUBLIC_KEY, params), 1);
    assert_int_equal(auth_token_thumbprint(pub, thumb, sizeof(thumb)), 0);
    assert_string_equal(thumb, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    json_t *jwk = auth_token_jwk(pub, NULL, NULL, err, sizeof(err));
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")), thumb);
    assert_string_equal(json_string_value(json_object_get(jwk, "n")), n_b64);
    assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
    assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "RS256");
    /* a public key cannot sign */
    claims = claims_base();
    assert_null(auth_token_sign(pub, NULL, NULL, claims, err, sizeof(err)));
    json_decref(claims);
    json_decref(jwk);
    EVP_PKEY_free(pub);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(nbn);
    BN_free(ebn);
    free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_text),
        cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_valid_each_alg),
        cmocka_unit_test(test_rfc7515_es256_example),
        cmocka_unit_test(test_audience),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_alg_refused),
        cmocka_unit_test(test_der_ecdsa_refused),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_keyset_parse),
        cmocka_unit_test(test_keys_file),
        cmocka_unit_test(test_keys_url),
        cmocka_unit_test(test_token_command),
        cmocka_unit_test(test_token_sign_and_thumbprint),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

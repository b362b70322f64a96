/* JWS compact verification and JWKS parsing on OpenSSL 3's EVP APIs; no I/O, no custom crypto. */
#include "auth/jwt.h"
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include "util/str.h"

#define MODULE_NAME "auth/jwt.c"

/* Entries of a JWKS looked at; an IdP publishes a handful, so more is a broken or hostile document. */
#define AUTH_KEYSET_MAX_ENTRIES 100
#define AUTH_RSA_MIN_BITS 2048
#define AUTH_RSA_MAX_BITS 8192

typedef enum { KEY_RSA, KEY_P256, KEY_P384 } key_type_t;

typedef struct st_auth_jwt_alg_t {
    const char *name;
    key_type_t key_type;
    const char *digest;
    size_t raw_sig_len; /* ECDSA: r||s length; RSA: 0 (the modulus size) */
} auth_jwt_alg_t;

static const auth_jwt_alg_t algs[] = {
    {"RS256", KEY_RSA, "SHA256", 0},
    {"RS384", KEY_RSA, "SHA384", 0},
    {"ES256", KEY_P256, "SHA256", 64},
    {"ES384", KEY_P384, "SHA384", 96},
};

typedef struct st_auth_key_t {
    char *kid; /* NULL when the JWK has none */
    size_t kid_len;
    key_type_t type;
    const auth_jwt_alg_t *alg; /* the JWK's alg, NULL when it names none */
    EVP_PKEY *pkey;
} auth_key_t;

struct st_auth_keyset_t {
    atomic_uint refs;
    size_t count;
    auth_key_t keys[];
};

const char *auth_jwt_status_text(auth_jwt_status_t status)
{
    switch (status) {
    case AUTH_JWT_OK:
        return "the token is valid";
    case AUTH_JWT_MALFORMED:
        return "the token is malformed";
    case AUTH_JWT_ALG_REFUSED:
        return "the token's signature algorithm is not accepted";
    case AUTH_JWT_UNKNOWN_KEY:
        return "the token is signed with an unknown key";
    case AUTH_JWT_BAD_SIGNATURE:
        return "the token's signature is invalid";
    case AUTH_JWT_BAD_ISSUER:
        return "the token is from another issuer";
    case AUTH_JWT_BAD_AUDIENCE:
        return "the token is not meant for this server";
    case AUTH_JWT_EXPIRED:
        return "the token has expired";
    case AUTH_JWT_NOT_YET_VALID:
        return "the token is not valid yet";
    case AUTH_JWT_NO_EXPIRY:
        return "the token has no expiry time";
    }
    return "the token is invalid";
}

/* base64url */

static const char b64url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

unsigned char *auth_base64url_decode(const char *s, size_t len, size_t *outlen)
{
    /* one leftover character cannot carry a whole byte */
    if (len % 4 == 1)
        return NULL;
    unsigned char *out = util_xmalloc(len / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i != len; ++i) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            goto Error;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* canonical only: the unused low bits of the last character are zero, so each token has one spelling */
    if (acc != 0)
        goto Error;
    out[o] = '\0';
    *outlen = o;
    return out;
Error:
    free(out);
    return NULL;
}

char *auth_base64url_encode(const unsigned char *data, size_t len)
{
    char *out = util_xmalloc((len + 2) / 3 * 4 + 1), *p = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *p++ = b64url_chars[v >> 18];
        *p++ = b64url_chars[(v >> 12) & 63];
        *p++ = b64url_chars[(v >> 6) & 63];
        *p++ = b64url_chars[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        *p++ = b64url_chars[v >> 18];
        *p++ = b64url_chars[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        *p++ = b64url_chars[v >> 18];
        *p++ = b64url_chars[(v >> 12) & 63];
        *p++ = b64url_chars[(v >> 6) & 63];
    }
    *p = '\0';
    return out;
}

/* key set */

static const auth_jwt_alg_t *alg_find(const char *name, size_t len)
{
    for (size_t i = 0; i != sizeof(algs) / sizeof(algs[0]); ++i)
        if (strlen(algs[i].name) == len && memcmp(algs[i].name, name, len) == 0)
            return &algs[i];
    return NULL;
}

static void set_reason(char *reason, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_reason(char *reason, size_t len, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(reason, len, fmt, args);
    va_end(args);
}

/* Decodes a base64url JWK member; NULL (with a reason) when absent, not a string or not base64url. */
static unsigned char *jwk_bytes(json_t *jwk, const char *name, size_t *len, char *reason, size_t reasonlen)
{
    json_t *v = json_object_get(jwk, name);
    unsigned char *bytes;
    if (!json_is_string(v) || (bytes = auth_base64url_decode(json_string_value(v), json_string_length(v), len)) == NULL) {
        set_reason(reason, reasonlen, "\"%s\" is missing or not base64url", name);
        return NULL;
    }
    return bytes;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params != NULL ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pkey = NULL;
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *jwk_rsa_key(json_t *jwk, char *reason, size_t reasonlen)
{
    size_t nlen = 0, elen = 0;
    unsigned char *n = NULL, *e = NULL;
    BIGNUM *nbn = NULL, *ebn = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    if ((n = jwk_bytes(jwk, "n", &nlen, reason, reasonlen)) == NULL || (e = jwk_bytes(jwk, "e", &elen, reason, reasonlen)) == NULL)
        goto Exit;
    size_t noff = 0, eoff = 0;
    while (noff != nlen && n[noff] == 0)
        ++noff;
    while (eoff != elen && e[eoff] == 0)
        ++eoff;
    size_t nbits = 0;
    if (noff != nlen) {
        nbits = (nlen - noff - 1) * 8;
        for (unsigned c = n[noff]; c != 0; c >>= 1)
            ++nbits;
    }
    if (nbits < AUTH_RSA_MIN_BITS || nbits > AUTH_RSA_MAX_BITS) {
        set_reason(reason, reasonlen, "an RSA key of %zu bits (%d to %d are accepted)", nbits, AUTH_RSA_MIN_BITS, AUTH_RSA_MAX_BITS);
        goto Exit;
    }
    if ((n[nlen - 1] & 1) == 0) {
        set_reason(reason, reasonlen, "an RSA modulus that is even");
        goto Exit;
    }
    /* e = 1 would make every message its own signature; e beyond 64 bits is refused by OpenSSL for large moduli anyway */
    if (elen - eoff == 0 || elen - eoff > 8 || (e[elen - 1] & 1) == 0 || (elen - eoff == 1 && e[elen - 1] < 3)) {
        set_reason(reason, reasonlen, "an unusable RSA public exponent");
        goto Exit;
    }
    if ((nbn = BN_bin2bn(n + noff, (int)(nlen - noff), NULL)) == NULL || (ebn = BN_bin2bn(e + eoff, (int)(elen - eoff), NULL)) == NULL ||
        (bld = OSSL_PARAM_BLD_new()) == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, nbn) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, ebn) != 1 || (pkey = pkey_fromdata("RSA", bld)) == NULL)
        set_reason(reason, reasonlen, "OpenSSL cannot build this RSA key");

Exit:
    OSSL_PARAM_BLD_free(bld);
    BN_free(nbn);
    BN_free(ebn);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *jwk_ec_key(json_t *jwk, key_type_t type, char *reason, size_t reasonlen)
{
    size_t coord = type == KEY_P256 ? 32 : 48, xlen = 0, ylen = 0;
    unsigned char *x = NULL, *y = NULL, point[1 + 2 * 48];
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *check = NULL;

    if ((x = jwk_bytes(jwk, "x", &xlen, reason, reasonlen)) == NULL || (y = jwk_bytes(jwk, "y", &ylen, reason, reasonlen)) == NULL)
        goto Exit;
    /* RFC 7518 6.2.1.2: the coordinates are exactly the field size, leading zeros included */
    if (xlen != coord || ylen != coord) {
        set_reason(reason, reasonlen, "EC coordinates of %zu and %zu bytes (%zu needed)", xlen, ylen, coord);
        goto Exit;
    }
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, coord);
    memcpy(point + 1 + coord, y, coord);
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, type == KEY_P256 ? "prime256v1" : "secp384r1", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * coord) != 1 ||
        (pkey = pkey_fromdata("EC", bld)) == NULL) {
        set_reason(reason, reasonlen, "an EC point that is not on its curve");
        goto Exit;
    }
    /* on the curve, not the point at infinity, of the group's order */
    if ((check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL || EVP_PKEY_public_check(check) != 1) {
        set_reason(reason, reasonlen, "an EC public key that fails OpenSSL's check");
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

Exit:
    EVP_PKEY_CTX_free(check);
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

/* Fills `key` from one JWK; -1 with a reason when the key is not usable for verifying our algorithms. */
static int jwk_parse(json_t *jwk, auth_key_t *key, char *reason, size_t reasonlen)
{
    json_t *kty = json_object_get(jwk, "kty"), *use = json_object_get(jwk, "use"), *ops = json_object_get(jwk, "key_ops"),
           *alg = json_object_get(jwk, "alg"), *kid = json_object_get(jwk, "kid");

    memset(key, 0, sizeof(*key));
    if (!json_is_object(jwk)) {
        set_reason(reason, reasonlen, "not a JSON object");
        return -1;
    }
    if (!json_is_string(kty)) {
        set_reason(reason, reasonlen, "no \"kty\"");
        return -1;
    }
    if (use != NULL && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0)) {
        set_reason(reason, reasonlen, "\"use\" is not \"sig\"");
        return -1;
    }
    if (ops != NULL) {
        bool verify = false;
        size_t i;
        json_t *op;
        if (json_is_array(ops)) {
            json_array_foreach(ops, i, op)
            {
                verify |= json_is_string(op) && strcmp(json_string_value(op), "verify") == 0;
            }
        }
        if (!verify) {
            set_reason(reason, reasonlen, "\"key_ops\" without \"verify\"");
            return -1;
        }
    }
    if (kid != NULL && !json_is_string(kid)) {
        set_reason(reason, reasonlen, "\"kid\" is not a string");
        return -1;
    }
    if (alg != NULL && (!json_is_string(alg) || (key->alg = alg_find(json_string_value(alg), json_string_length(alg))) == NULL)) {
        set_reason(reason, reasonlen, "an unsupported \"alg\"");
        return -1;
    }

    const char *k = json_string_value(kty);
    if (strcmp(k, "RSA") == 0) {
        key->type = KEY_RSA;
    } else if (strcmp(k, "EC") == 0) {
        json_t *crv = json_object_get(jwk, "crv");
        const char *c = json_is_string(crv) ? json_string_value(crv) : "";
        if (strcmp(c, "P-256") == 0) {
            key->type = KEY_P256;
        } else if (strcmp(c, "P-384") == 0) {
            key->type = KEY_P384;
        } else {
            set_reason(reason, reasonlen, "an EC curve other than P-256 or P-384");
            return -1;
        }
    } else if (strcmp(k, "oct") == 0) {
        /* a symmetric secret in a public JWKS would let anyone who reads it mint tokens */
        set_reason(reason, reasonlen, "a symmetric (oct) key");
        return -1;
    } else {
        set_reason(reason, reasonlen, "an unsupported \"kty\"");
        return -1;
    }
    if (key->alg != NULL && key->alg->key_type != key->type) {
        set_reason(reason, reasonlen, "\"alg\" %s does not fit the key", key->alg->name);
        return -1;
    }

    key->pkey = key->type == KEY_RSA ? jwk_rsa_key(jwk, reason, reasonlen) : jwk_ec_key(jwk, key->type, reason, reasonlen);
    ERR_clear_error();
    if (key->pkey == NULL)
        return -1;
    if (kid != NULL) {
        key->kid_len = json_string_length(kid);
        key->kid = util_xstrndup(json_string_value(kid), key->kid_len);
    }
    return 0;
}

static void keyset_free(auth_keyset_t *keys)
{
    for (size_t i = 0; i != keys->count; ++i) {
        free(keys->keys[i].kid);
        EVP_PKEY_free(keys->keys[i].pkey);
    }
    free(keys);
}

auth_keyset_t *auth_keyset_parse(const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *entries;
    auth_keyset_t *keys = NULL;

    if (root == NULL) {
        snprintf(err, errlen, "the JWKS is not JSON (line %d: %s)", jerr.line, jerr.text);
        return NULL;
    }
    if (!json_is_object(root) || !json_is_array(entries = json_object_get(root, "keys"))) {
        snprintf(err, errlen, "the JWKS is not an object with a \"keys\" array");
        goto Exit;
    }
    size_t total = json_array_size(entries), n = total < AUTH_KEYSET_MAX_ENTRIES ? total : AUTH_KEYSET_MAX_ENTRIES, skipped = 0;
    char first_reason[200] = "";
    keys = util_xcalloc(1, sizeof(*keys) + n * sizeof(keys->keys[0]));
    atomic_init(&keys->refs, 1);
    for (size_t i = 0; i != n; ++i) {
        char reason[160];
        if (jwk_parse(json_array_get(entries, i), &keys->keys[keys->count], reason, sizeof(reason)) == 0) {
            ++keys->count;
        } else if (skipped++ == 0) {
            snprintf(first_reason, sizeof(first_reason), "key %zu: %s", i, reason);
        }
    }
    if (keys->count == 0) {
        if (total == 0)
            snprintf(err, errlen, "the JWKS has no keys");
        else
            snprintf(err, errlen, "the JWKS has no usable signature key (%zu skipped; %s)", skipped, first_reason);
        keyset_free(keys);
        keys = NULL;
    }

Exit:
    json_decref(root);
    return keys;
}

void auth_keyset_retain(auth_keyset_t *keys)
{
    if (keys != NULL)
        atomic_fetch_add_explicit(&keys->refs, 1, memory_order_relaxed);
}

void auth_keyset_release(auth_keyset_t *keys)
{
    if (keys != NULL && atomic_fetch_sub_explicit(&keys->refs, 1, memory_order_acq_rel) == 1)
        keyset_free(keys);
}

size_t auth_keyset_count(const auth_keyset_t *keys)
{
    return keys != NULL ? keys->count : 0;
}

/* verification */

/* 1 when `sig` is a valid signature of `input` under `key` with `alg`. Wrong lengths and OpenSSL errors are all "no". */
static int signature_verifies(const auth_jwt_alg_t *alg, EVP_PKEY *pkey, const char *input, size_t inlen, const unsigned char *sig,
                              size_t siglen)
{
    unsigned char *der = NULL;
    ECDSA_SIG *ecsig = NULL;
    BIGNUM *r = NULL, *s = NULL;
    EVP_MD_CTX *md = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    int ok = 0;

    if (alg->raw_sig_len != 0) {
        /* JWS carries ECDSA as fixed-size r||s (RFC 7518 3.4); OpenSSL verifies DER, so rebuild it. A DER signature (or
         * anything else) has the wrong length and fails here. */
        if (siglen != alg->raw_sig_len)
            goto Exit;
        size_t half = siglen / 2;
        int derlen;
        if ((ecsig = ECDSA_SIG_new()) == NULL || (r = BN_bin2bn(sig, (int)half, NULL)) == NULL ||
            (s = BN_bin2bn(sig + half, (int)half, NULL)) == NULL || ECDSA_SIG_set0(ecsig, r, s) != 1)
            goto Exit;
        r = s = NULL; /* owned by ecsig */
        if ((derlen = i2d_ECDSA_SIG(ecsig, &der)) <= 0)
            goto Exit;
        sig = der;
        siglen = (size_t)derlen;
    } else if (siglen != (size_t)EVP_PKEY_get_size(pkey)) {
        /* RFC 8017 8.2.2: a signature is exactly as long as the modulus (OpenSSL would accept a shorter one) */
        goto Exit;
    }
    if ((md = EVP_MD_CTX_new()) == NULL || EVP_DigestVerifyInit_ex(md, &pctx, alg->digest, NULL, NULL, pkey, NULL) != 1)
        goto Exit;
    if (alg->key_type == KEY_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        goto Exit;
    ok = EVP_DigestVerify(md, sig, siglen, (const unsigned char *)input, inlen) == 1;

Exit:
    /* failed verifications leave entries on this thread's error queue */
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(ecsig);
    BN_free(r);
    BN_free(s);
    return ok;
}

static bool key_fits(const auth_key_t *key, const auth_jwt_alg_t *alg)
{
    return key->type == alg->key_type && (key->alg == NULL || key->alg == alg);
}

/* The signature check against the key(s) the header designates. */
static auth_jwt_status_t verify_with_keys(const auth_keyset_t *keys, const auth_jwt_alg_t *alg, json_t *kid, const char *input,
                                          size_t inlen, const unsigned char *sig, size_t siglen)
{
    if (keys == NULL)
        return AUTH_JWT_UNKNOWN_KEY;
    if (kid != NULL) {
        bool kid_known = false;
        for (size_t i = 0; i != keys->count; ++i) {
            const auth_key_t *key = &keys->keys[i];
            if (key->kid == NULL || key->kid_len != json_string_length(kid) || memcmp(key->kid, json_string_value(kid), key->kid_len) != 0)
                continue;
            kid_known = true;
            if (key_fits(key, alg))
                return signature_verifies(alg, key->pkey, input, inlen, sig, siglen) ? AUTH_JWT_OK : AUTH_JWT_BAD_SIGNATURE;
        }
        /* the key exists but is of another type (RS256 over an EC key...): the algorithm is what is wrong */
        return kid_known ? AUTH_JWT_ALG_REFUSED : AUTH_JWT_UNKNOWN_KEY;
    }
    bool tried = false;
    for (size_t i = 0; i != keys->count; ++i) {
        if (!key_fits(&keys->keys[i], alg))
            continue;
        tried = true;
        if (signature_verifies(alg, keys->keys[i].pkey, input, inlen, sig, siglen))
            return AUTH_JWT_OK;
    }
    return tried ? AUTH_JWT_BAD_SIGNATURE : AUTH_JWT_UNKNOWN_KEY;
}

/* A NumericDate claim: 0 with *value, 1 when absent, -1 when not a number. */
static int numeric_date(json_t *claims, const char *name, double *value)
{
    json_t *v = json_object_get(claims, name);
    if (v == NULL)
        return 1;
    if (!json_is_number(v))
        return -1;
    *value = json_number_value(v);
    return 0;
}

static auth_jwt_status_t check_claims(json_t *claims, const auth_jwt_expect_t *expect)
{
    json_t *iss = json_object_get(claims, "iss"), *aud = json_object_get(claims, "aud");
    double now = (double)expect->now, skew = (double)expect->skew_seconds, exp, nbf, iat;
    int r;

    if (iss != NULL && !json_is_string(iss))
        return AUTH_JWT_MALFORMED;
    if (expect->issuer != NULL &&
        (iss == NULL || json_string_length(iss) != strlen(expect->issuer) || strcmp(json_string_value(iss), expect->issuer) != 0))
        return AUTH_JWT_BAD_ISSUER;

    bool aud_match = false;
    if (json_is_string(aud)) {
        aud_match = expect->audience != NULL && json_string_length(aud) == strlen(expect->audience) &&
                    strcmp(json_string_value(aud), expect->audience) == 0;
    } else if (json_is_array(aud)) {
        size_t i;
        json_t *a;
        json_array_foreach(aud, i, a)
        {
            if (!json_is_string(a))
                return AUTH_JWT_MALFORMED;
            aud_match |= expect->audience != NULL && json_string_length(a) == strlen(expect->audience) &&
                         strcmp(json_string_value(a), expect->audience) == 0;
        }
    } else if (aud != NULL) {
        return AUTH_JWT_MALFORMED;
    }
    if (expect->audience != NULL && !aud_match)
        return AUTH_JWT_BAD_AUDIENCE;

    if ((r = numeric_date(claims, "exp", &exp)) < 0)
        return AUTH_JWT_MALFORMED;
    if (r > 0)
        return AUTH_JWT_NO_EXPIRY;
    /* RFC 7519 4.1.4: the current time must be before exp */
    if (!(now < exp + skew))
        return AUTH_JWT_EXPIRED;
    if ((r = numeric_date(claims, "nbf", &nbf)) < 0)
        return AUTH_JWT_MALFORMED;
    if (r == 0 && nbf > now + skew)
        return AUTH_JWT_NOT_YET_VALID;
    if ((r = numeric_date(claims, "iat", &iat)) < 0)
        return AUTH_JWT_MALFORMED;
    if (r == 0 && iat > now + skew)
        return AUTH_JWT_NOT_YET_VALID;
    return AUTH_JWT_OK;
}

static void copy_kid(char *dst, size_t dstlen, json_t *kid)
{
    const char *s = json_string_value(kid);
    size_t len = json_string_length(kid), i;
    for (i = 0; i != len && i + 1 < dstlen; ++i)
        dst[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    dst[i] = '\0';
}

auth_jwt_status_t auth_jwt_verify(const char *token, size_t len, const auth_keyset_t *keys, const auth_jwt_expect_t *expect,
                                  json_t **claims, char *kid, size_t kidlen)
{
    unsigned char *header_bytes = NULL, *payload_bytes = NULL, *sig = NULL;
    size_t header_len, payload_len, sig_len;
    json_t *header = NULL, *payload = NULL;
    auth_jwt_status_t status = AUTH_JWT_MALFORMED;

    *claims = NULL;
    if (kid != NULL && kidlen != 0)
        kid[0] = '\0';
    if (token == NULL || len == 0 || len > AUTH_JWT_MAX_LEN)
        return AUTH_JWT_MALFORMED;

    /* three parts; a fourth '.' lands in the signature, which then is not base64url */
    const char *dot1 = memchr(token, '.', len), *dot2;
    if (dot1 == NULL || (dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))) == NULL)
        return AUTH_JWT_MALFORMED;
    size_t hlen = (size_t)(dot1 - token), plen = (size_t)(dot2 - dot1 - 1), slen = len - (size_t)(dot2 + 1 - token);
    if (hlen == 0 || plen == 0)
        return AUTH_JWT_MALFORMED;
    if ((header_bytes = auth_base64url_decode(token, hlen, &header_len)) == NULL ||
        (payload_bytes = auth_base64url_decode(dot1 + 1, plen, &payload_len)) == NULL ||
        (sig = auth_base64url_decode(dot2 + 1, slen, &sig_len)) == NULL)
        goto Exit;

    json_t *alg_name, *kid_value;
    if ((header = json_loadb((const char *)header_bytes, header_len, JSON_REJECT_DUPLICATES, NULL)) == NULL || !json_is_object(header) ||
        !json_is_string(alg_name = json_object_get(header, "alg")))
        goto Exit;
    if ((kid_value = json_object_get(header, "kid")) != NULL && !json_is_string(kid_value))
        goto Exit;
    if (kid_value != NULL && kid != NULL && kidlen != 0)
        copy_kid(kid, kidlen, kid_value);
    /* no extension is understood, so RFC 7515 4.1.11 makes any "crit" a reason to reject */
    if (json_object_get(header, "crit") != NULL)
        goto Exit;
    const auth_jwt_alg_t *alg = alg_find(json_string_value(alg_name), json_string_length(alg_name));
    if (alg == NULL) {
        status = AUTH_JWT_ALG_REFUSED;
        goto Exit;
    }

    /* the signature covers the ASCII of "header.payload" as sent */
    if ((status = verify_with_keys(keys, alg, kid_value, token, (size_t)(dot2 - token), sig, sig_len)) != AUTH_JWT_OK)
        goto Exit;

    /* duplicate claims are refused: two readers could otherwise see two different tokens */
    if ((payload = json_loadb((const char *)payload_bytes, payload_len, JSON_REJECT_DUPLICATES, NULL)) == NULL || !json_is_object(payload)) {
        status = AUTH_JWT_MALFORMED;
        goto Exit;
    }
    if ((status = check_claims(payload, expect)) == AUTH_JWT_OK) {
        *claims = payload;
        payload = NULL;
    }

Exit:
    json_decref(header);
    json_decref(payload);
    free(header_bytes);
    free(payload_bytes);
    free(sig);
    return status;
}

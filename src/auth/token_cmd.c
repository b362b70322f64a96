/* `fhirsched token`: mints development keys and tokens (the other side of jwt.c). Not for production. */
#include "auth/token.h"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include "auth/jwt.h"
#include "util/str.h"

#define MODULE_NAME "auth/token_cmd.c"

#define TOKEN_DEFAULT_TTL 3600
#define TOKEN_MAX_TTL (10u * 366 * 86400)

typedef enum { KIND_RSA, KIND_P256, KIND_P384 } key_kind_t;

static void set_openssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s%s%s", what, buf[0] != '\0' ? ": " : "", buf);
    ERR_clear_error();
}

static int key_kind(EVP_PKEY *key, key_kind_t *kind, char *err, size_t errlen)
{
    if (EVP_PKEY_is_a(key, "RSA")) {
        if (EVP_PKEY_get_bits(key) < 2048) {
            snprintf(err, errlen, "the RSA key has %d bits; at least 2048 are needed", EVP_PKEY_get_bits(key));
            return -1;
        }
        *kind = KIND_RSA;
        return 0;
    }
    char group[64] = "";
    if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) == 1) {
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0) {
            *kind = KIND_P256;
            return 0;
        }
        if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0) {
            *kind = KIND_P384;
            return 0;
        }
    }
    ERR_clear_error();
    snprintf(err, errlen, "the key is neither RSA nor EC P-256/P-384");
    return -1;
}

/* The alg for `key`: `alg` when it fits, else the key's default when `alg` is NULL. */
static const char *key_alg(EVP_PKEY *key, const char *alg, char *err, size_t errlen)
{
    key_kind_t kind;
    if (key_kind(key, &kind, err, errlen) != 0)
        return NULL;
    const char *fallback = kind == KIND_RSA ? "RS256" : kind == KIND_P256 ? "ES256" : "ES384";
    if (alg == NULL)
        return fallback;
    if ((kind == KIND_RSA && (strcmp(alg, "RS256") == 0 || strcmp(alg, "RS384") == 0)) ||
        (kind == KIND_P256 && strcmp(alg, "ES256") == 0) || (kind == KIND_P384 && strcmp(alg, "ES384") == 0))
        return alg;
    snprintf(err, errlen, "--alg %s does not fit this key (%s)", alg,
             kind == KIND_RSA ? "an RSA key: RS256 or RS384" : kind == KIND_P256 ? "a P-256 key: ES256" : "a P-384 key: ES384");
    return NULL;
}

/* A big-endian parameter of `key` as base64url, `pad` bytes wide (0: minimal). */
static char *key_param_b64(EVP_PKEY *key, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    char *out = NULL;
    if (EVP_PKEY_get_bn_param(key, name, &bn) == 1) {
        int len = pad != 0 ? pad : BN_num_bytes(bn);
        unsigned char *bytes = util_xmalloc((size_t)len + 1);
        if (BN_bn2binpad(bn, bytes, len) == len)
            out = auth_base64url_encode(bytes, (size_t)len);
        free(bytes);
    }
    BN_free(bn);
    ERR_clear_error();
    return out;
}

/* The members RFC 7638 hashes, as base64url strings: n, e (RSA) or x, y (EC). */
static int key_public_members(EVP_PKEY *key, key_kind_t kind, char **a, char **b)
{
    if (kind == KIND_RSA) {
        *a = key_param_b64(key, OSSL_PKEY_PARAM_RSA_N, 0);
        *b = key_param_b64(key, OSSL_PKEY_PARAM_RSA_E, 0);
    } else {
        int coord = kind == KIND_P256 ? 32 : 48;
        *a = key_param_b64(key, OSSL_PKEY_PARAM_EC_PUB_X, coord);
        *b = key_param_b64(key, OSSL_PKEY_PARAM_EC_PUB_Y, coord);
    }
    if (*a == NULL || *b == NULL) {
        free(*a);
        free(*b);
        return -1;
    }
    return 0;
}

int auth_token_thumbprint(EVP_PKEY *key, char *out, size_t outlen)
{
    key_kind_t kind;
    char err[128], *a, *b, *canonical;
    unsigned char digest[32];
    unsigned int dlen = 0;

    if (outlen < 44 || key_kind(key, &kind, err, sizeof(err)) != 0 || key_public_members(key, kind, &a, &b) != 0)
        return -1;
    /* RFC 7638 3.2: the required members only, in lexicographic order, no whitespace */
    if (kind == KIND_RSA)
        canonical = util_asprintf("{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", b, a);
    else
        canonical = util_asprintf("{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", kind == KIND_P256 ? "P-256" : "P-384", a, b);
    int ok = EVP_Digest(canonical, strlen(canonical), digest, &dlen, EVP_sha256(), NULL) == 1;
    free(canonical);
    free(a);
    free(b);
    if (!ok)
        return -1;
    char *t = auth_base64url_encode(digest, dlen);
    snprintf(out, outlen, "%s", t);
    free(t);
    return 0;
}

json_t *auth_token_jwk(EVP_PKEY *key, const char *alg, const char *kid, char *err, size_t errlen)
{
    key_kind_t kind;
    char *a, *b, thumb[64];

    if ((alg = key_alg(key, alg, err, errlen)) == NULL || key_kind(key, &kind, err, errlen) != 0)
        return NULL;
    if (key_public_members(key, kind, &a, &b) != 0 || (kid == NULL && auth_token_thumbprint(key, thumb, sizeof(thumb)) != 0)) {
        snprintf(err, errlen, "cannot read the public key");
        return NULL;
    }
    json_t *jwk = kind == KIND_RSA ? json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", a, "e", b)
                                   : json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", kind == KIND_P256 ? "P-256" : "P-384", "x", a,
                                               "y", b);
    json_object_set_new(jwk, "kid", json_string(kid != NULL ? kid : thumb));
    json_object_set_new(jwk, "alg", json_string(alg));
    json_object_set_new(jwk, "use", json_string("sig"));
    free(a);
    free(b);
    return jwk;
}

char *auth_token_sign(EVP_PKEY *key, const char *alg, const char *kid, const json_t *claims, char *err, size_t errlen)
{
    EVP_MD_CTX *md = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *sig = NULL, raw[96];
    ECDSA_SIG *ecsig = NULL;
    size_t siglen = 0;
    char *header_json = NULL, *claims_json = NULL, *h = NULL, *p = NULL, *input = NULL, *s = NULL, *token = NULL;
    key_kind_t kind;

    if ((alg = key_alg(key, alg, err, errlen)) == NULL || key_kind(key, &kind, err, errlen) != 0)
        goto Exit;
    json_t *header = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
    if (kid != NULL)
        json_object_set_new(header, "kid", json_string(kid));
    header_json = json_dumps(header, JSON_COMPACT);
    json_decref(header);
    if ((claims_json = json_dumps(claims, JSON_COMPACT)) == NULL) {
        snprintf(err, errlen, "the claims are not a JSON object");
        goto Exit;
    }
    h = auth_base64url_encode((const unsigned char *)header_json, strlen(header_json));
    p = auth_base64url_encode((const unsigned char *)claims_json, strlen(claims_json));
    input = util_asprintf("%s.%s", h, p);

    if ((md = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestSignInit_ex(md, &pctx, strcmp(alg + 2, "256") == 0 ? "SHA256" : "SHA384", NULL, NULL, key, NULL) != 1 ||
        (kind == KIND_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) ||
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input, strlen(input)) != 1 ||
        (sig = util_xmalloc(siglen), EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, strlen(input)) != 1)) {
        set_openssl_error(err, errlen, "cannot sign (is the key a private key?)");
        goto Exit;
    }
    if (kind == KIND_RSA) {
        s = auth_base64url_encode(sig, siglen);
    } else {
        /* OpenSSL signs ECDSA in DER; JWS wants r||s, each the size of the field (RFC 7518 3.4) */
        const unsigned char *der = sig;
        const BIGNUM *r, *ss;
        int coord = kind == KIND_P256 ? 32 : 48;
        if ((ecsig = d2i_ECDSA_SIG(NULL, &der, (long)siglen)) == NULL) {
            set_openssl_error(err, errlen, "cannot read the ECDSA signature");
            goto Exit;
        }
        ECDSA_SIG_get0(ecsig, &r, &ss);
        if (BN_bn2binpad(r, raw, coord) != coord || BN_bn2binpad(ss, raw + coord, coord) != coord) {
            snprintf(err, errlen, "cannot convert the ECDSA signature");
            goto Exit;
        }
        s = auth_base64url_encode(raw, (size_t)coord * 2);
    }
    token = util_asprintf("%s.%s", input, s);

Exit:
    ECDSA_SIG_free(ecsig);
    EVP_MD_CTX_free(md);
    free(sig);
    free(header_json);
    free(claims_json);
    free(h);
    free(p);
    free(input);
    free(s);
    return token;
}

/* the command */

static void usage(FILE *fp)
{
    fputs("usage: fhirsched token --new-key FILE [--alg ES256|ES384|RS256|RS384]\n"
          "       fhirsched token --key FILE --jwks [--kid K] [--alg A]\n"
          "       fhirsched token --key FILE [--iss URL] [--aud URL] [--scope \"a b\"] [--role R]... [claims...]\n"
          "\n"
          "Development and test tool, NOT FOR PRODUCTION: whoever holds the key can mint a token with any role for any\n"
          "patient. In production the identity provider issues the tokens (docs/security.md).\n"
          "\n"
          "  --new-key FILE      write a new private key (PEM, mode 0600; never overwrites FILE); default ES256\n"
          "  --key FILE          the private key (PEM) that signs\n"
          "  --jwks              print the public JWKS of --key, for auth.jwks_file\n"
          "  --kid K             key id (default: the key's RFC 7638 thumbprint)\n"
          "  --alg A             RS256 or RS384 (RSA keys), ES256 (P-256), ES384 (P-384); default from the key\n"
          "  --iss URL           issuer (default $FHIRSCHED_AUTH_ISSUER; required)\n"
          "  --aud URL           audience (default $FHIRSCHED_AUTH_AUDIENCE, then $FHIRSCHED_BASE_URL)\n"
          "  --sub S             subject (default \"dev\")\n"
          "  --scope \"a b\"       SMART scopes, space-separated (user/*.read patient/Appointment.rs ...)\n"
          "  --role R            clinic role (fhirsched_role); repeat for several\n"
          "  --locations L,L     clinics the user is limited to (fhirsched_locations): Location/a,Location/b\n"
          "  --patient ID        patient context (patient)\n"
          "  --fhir-user REF     the user's resource (fhirUser): Practitioner/x\n"
          "  --client-id C       client id (client_id)\n"
          "  --ttl SECONDS       lifetime (default 3600); iat = nbf = now, exp = now + ttl\n"
          "  --claim NAME=JSON   any other claim, or one of the above replaced (NAME= removes it); repeatable\n"
          "\n"
          "The token goes to stdout; messages go to stderr. Example:\n"
          "  fhirsched token --new-key var/dev-key.pem\n"
          "  fhirsched token --key var/dev-key.pem --jwks > var/dev-jwks.json     # auth.jwks_file\n"
          "  fhirsched token --key var/dev-key.pem --iss https://idp.example --scope 'user/*.*' --role receptionist\n",
          fp);
}

static int write_new_key(const char *path, const char *alg)
{
    EVP_PKEY *key;
    char err[512];
    if (strcmp(alg, "ES256") == 0) {
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    } else if (strcmp(alg, "ES384") == 0) {
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    } else if (strcmp(alg, "RS256") == 0 || strcmp(alg, "RS384") == 0) {
        /* RS384 is chosen for a security level above 112 bits: give it the modulus for that */
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)(strcmp(alg, "RS256") == 0 ? 2048 : 3072));
    } else {
        fprintf(stderr, "fhirsched token: --alg must be RS256, RS384, ES256 or ES384\n");
        return 2;
    }
    if (key == NULL) {
        set_openssl_error(err, sizeof(err), "cannot generate a key");
        fprintf(stderr, "fhirsched token: %s\n", err);
        return 1;
    }
    int ret = 1, fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fp == NULL) {
        fprintf(stderr, "fhirsched token: %s: %s%s\n", path, strerror(errno), errno == EEXIST ? " (not overwritten)" : "");
        if (fd >= 0)
            close(fd);
        goto Exit;
    }
    int written = PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(fp) != 0 || written != 1) {
        set_openssl_error(err, sizeof(err), "cannot write the key");
        fprintf(stderr, "fhirsched token: %s: %s\n", path, err);
        unlink(path);
        goto Exit;
    }
    char kid[64] = "?";
    auth_token_thumbprint(key, kid, sizeof(kid));
    fprintf(stderr, "fhirsched token: wrote a new %s key to %s (kid %s)\n", alg, path, kid);
    ret = 0;
Exit:
    EVP_PKEY_free(key);
    return ret;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "fhirsched token: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    if (key == NULL) {
        char err[512];
        set_openssl_error(err, sizeof(err), "not a PEM private key");
        fprintf(stderr, "fhirsched token: %s: %s\n", path, err);
    }
    return key;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : fallback;
}

static json_t *split_locations(const char *list)
{
    json_t *locations = json_array();
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        const char *b = p, *e = p + len;
        while (b != e && (*b == ' ' || *b == '\t'))
            ++b;
        while (e != b && (e[-1] == ' ' || e[-1] == '\t'))
            --e;
        if (e != b)
            json_array_append_new(locations, json_stringn(b, (size_t)(e - b)));
        p += len;
        if (*p == ',')
            ++p;
    }
    return locations;
}

enum {
    OPT_NEW_KEY = 256,
    OPT_KEY,
    OPT_JWKS,
    OPT_KID,
    OPT_ALG,
    OPT_ISS,
    OPT_AUD,
    OPT_SUB,
    OPT_SCOPE,
    OPT_ROLE,
    OPT_LOCATIONS,
    OPT_PATIENT,
    OPT_FHIR_USER,
    OPT_CLIENT_ID,
    OPT_TTL,
    OPT_CLAIM,
    OPT_HELP,
};

int auth_token_cmd_run(int argc, char **argv)
{
    static const struct option options[] = {
        {"new-key", required_argument, NULL, OPT_NEW_KEY},
        {"key", required_argument, NULL, OPT_KEY},
        {"jwks", no_argument, NULL, OPT_JWKS},
        {"kid", required_argument, NULL, OPT_KID},
        {"alg", required_argument, NULL, OPT_ALG},
        {"iss", required_argument, NULL, OPT_ISS},
        {"aud", required_argument, NULL, OPT_AUD},
        {"sub", required_argument, NULL, OPT_SUB},
        {"scope", required_argument, NULL, OPT_SCOPE},
        {"role", required_argument, NULL, OPT_ROLE},
        {"locations", required_argument, NULL, OPT_LOCATIONS},
        {"patient", required_argument, NULL, OPT_PATIENT},
        {"fhir-user", required_argument, NULL, OPT_FHIR_USER},
        {"client-id", required_argument, NULL, OPT_CLIENT_ID},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"claim", required_argument, NULL, OPT_CLAIM},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *new_key = NULL, *key_path = NULL, *kid = NULL, *alg = NULL, *iss = NULL, *aud = NULL, *sub = "dev", *scope = NULL,
               *locations = NULL, *patient = NULL, *fhir_user = NULL, *client_id = NULL;
    const char **roles = util_xcalloc((size_t)argc + 1, sizeof(*roles)), **extra = util_xcalloc((size_t)argc + 1, sizeof(*extra));
    size_t nroles = 0, nextra = 0;
    unsigned long ttl = TOKEN_DEFAULT_TTL;
    bool jwks = false;
    EVP_PKEY *key = NULL;
    json_t *out = NULL;
    char err[512], *text = NULL;
    int opt, ret = 2;

    optind = 1;
    opterr = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_NEW_KEY:
            new_key = optarg;
            break;
        case OPT_KEY:
            key_path = optarg;
            break;
        case OPT_JWKS:
            jwks = true;
            break;
        case OPT_KID:
            kid = optarg;
            break;
        case OPT_ALG:
            alg = optarg;
            break;
        case OPT_ISS:
            iss = optarg;
            break;
        case OPT_AUD:
            aud = optarg;
            break;
        case OPT_SUB:
            sub = optarg;
            break;
        case OPT_SCOPE:
            scope = optarg;
            break;
        case OPT_ROLE:
            roles[nroles++] = optarg;
            break;
        case OPT_LOCATIONS:
            locations = optarg;
            break;
        case OPT_PATIENT:
            patient = optarg;
            break;
        case OPT_FHIR_USER:
            fhir_user = optarg;
            break;
        case OPT_CLIENT_ID:
            client_id = optarg;
            break;
        case OPT_TTL: {
            char *end;
            errno = 0;
            ttl = strtoul(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || errno != 0 || ttl == 0 || ttl > TOKEN_MAX_TTL) {
                fprintf(stderr, "fhirsched token: --ttl takes seconds, 1 to %u\n", TOKEN_MAX_TTL);
                goto Exit;
            }
            break;
        }
        case OPT_CLAIM:
            if (strchr(optarg, '=') == NULL || optarg[0] == '=') {
                fprintf(stderr, "fhirsched token: --claim takes NAME=JSON (or NAME= to remove a claim)\n");
                goto Exit;
            }
            extra[nextra++] = optarg;
            break;
        case OPT_HELP:
        case 'h':
            usage(stdout);
            ret = 0;
            goto Exit;
        default:
            usage(stderr);
            goto Exit;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "fhirsched token: unexpected argument \"%s\"\n", argv[optind]);
        goto Exit;
    }
    if (new_key != NULL) {
        if (key_path != NULL || jwks) {
            fprintf(stderr, "fhirsched token: --new-key does not go with --key or --jwks\n");
            goto Exit;
        }
        ret = write_new_key(new_key, alg != NULL ? alg : "ES256");
        goto Exit;
    }
    if (key_path == NULL) {
        fprintf(stderr, "fhirsched token: --key FILE (or --new-key FILE) is needed; see fhirsched token --help\n");
        goto Exit;
    }
    ret = 1;
    if ((key = read_key(key_path)) == NULL)
        goto Exit;
    if ((alg = key_alg(key, alg, err, sizeof(err))) == NULL) {
        fprintf(stderr, "fhirsched token: %s: %s\n", key_path, err);
        goto Exit;
    }
    char thumb[64];
    if (kid == NULL) {
        if (auth_token_thumbprint(key, thumb, sizeof(thumb)) != 0) {
            fprintf(stderr, "fhirsched token: %s: cannot read the public key\n", key_path);
            goto Exit;
        }
        kid = thumb;
    }

    if (jwks) {
        json_t *jwk = auth_token_jwk(key, alg, kid, err, sizeof(err));
        if (jwk == NULL) {
            fprintf(stderr, "fhirsched token: %s: %s\n", key_path, err);
            goto Exit;
        }
        out = json_pack("{s:[o]}", "keys", jwk);
        text = json_dumps(out, JSON_COMPACT);
        printf("%s\n", text);
        ret = 0;
        goto Exit;
    }

    if (iss == NULL && (iss = env_or("FHIRSCHED_AUTH_ISSUER", NULL)) == NULL) {
        fprintf(stderr, "fhirsched token: no issuer: give --iss URL or set FHIRSCHED_AUTH_ISSUER (the server's auth.issuer)\n");
        ret = 2;
        goto Exit;
    }
    if (aud == NULL && (aud = env_or("FHIRSCHED_AUTH_AUDIENCE", env_or("FHIRSCHED_BASE_URL", NULL))) == NULL)
        fprintf(stderr, "fhirsched token: warning: no audience (--aud, FHIRSCHED_AUTH_AUDIENCE or FHIRSCHED_BASE_URL); the token has no aud\n");

    time_t now = time(NULL);
    unsigned char jti[16];
    if (RAND_bytes(jti, sizeof(jti)) != 1) {
        fprintf(stderr, "fhirsched token: no random bytes for jti\n");
        goto Exit;
    }
    char *jti_text = auth_base64url_encode(jti, sizeof(jti));
    out = json_object();
    json_object_set_new(out, "iss", json_string(iss));
    if (aud != NULL)
        json_object_set_new(out, "aud", json_string(aud));
    json_object_set_new(out, "sub", json_string(sub));
    json_object_set_new(out, "exp", json_integer((json_int_t)now + (json_int_t)ttl));
    json_object_set_new(out, "iat", json_integer((json_int_t)now));
    json_object_set_new(out, "nbf", json_integer((json_int_t)now));
    json_object_set_new(out, "jti", json_string(jti_text));
    free(jti_text);
    if (scope != NULL)
        json_object_set_new(out, "scope", json_string(scope));
    if (client_id != NULL)
        json_object_set_new(out, "client_id", json_string(client_id));
    if (patient != NULL)
        json_object_set_new(out, "patient", json_string(patient));
    if (fhir_user != NULL)
        json_object_set_new(out, "fhirUser", json_string(fhir_user));
    if (nroles == 1) {
        json_object_set_new(out, "fhirsched_role", json_string(roles[0]));
    } else if (nroles > 1) {
        json_t *a = json_array();
        for (size_t i = 0; i != nroles; ++i)
            json_array_append_new(a, json_string(roles[i]));
        json_object_set_new(out, "fhirsched_role", a);
    }
    if (locations != NULL)
        json_object_set_new(out, "fhirsched_locations", split_locations(locations));
    for (size_t i = 0; i != nextra; ++i) {
        const char *eq = strchr(extra[i], '=');
        char *name = util_xstrndup(extra[i], (size_t)(eq - extra[i]));
        if (eq[1] == '\0') {
            json_object_del(out, name);
        } else {
            json_error_t jerr;
            json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, &jerr);
            if (v == NULL) {
                fprintf(stderr, "fhirsched token: --claim %s: not JSON (%s); quote strings: --claim '%s=\"text\"'\n", name, jerr.text, name);
                free(name);
                ret = 2;
                goto Exit;
            }
            json_object_set_new(out, name, v);
        }
        free(name);
    }
    if ((text = auth_token_sign(key, alg, kid, out, err, sizeof(err))) == NULL) {
        fprintf(stderr, "fhirsched token: %s: %s\n", key_path, err);
        goto Exit;
    }
    printf("%s\n", text);
    ret = 0;

Exit:
    if (fflush(stdout) != 0 && ret == 0) {
        fprintf(stderr, "fhirsched token: cannot write to stdout: %s\n", strerror(errno));
        ret = 1;
    }
    free(text);
    json_decref(out);
    EVP_PKEY_free(key);
    free(roles);
    free(extra);
    return ret;
}

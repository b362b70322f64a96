/* Subscription resources on their way into the store: checked, normalised, header values sealed. */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "auth/jwt.h"
#include "fhir/search.h"
#include "fhir/types.h"
#include "subs/subs.h"

#define MODULE_NAME "subs/check.c"

#define SEALED_PREFIX "sealed:"
#define NONCE_LEN 12
#define TAG_LEN 16

subs_settings_t subs_settings;

/* ---- settings ---- */

static void allowlist_add(const char *item, size_t len)
{
    while (len != 0 && isspace((unsigned char)*item))
        ++item, --len;
    while (len != 0 && isspace((unsigned char)item[len - 1]))
        --len;
    if (len == 0)
        return;
    subs_settings.allowlist = util_xrealloc(subs_settings.allowlist, (subs_settings.nallow + 1) * sizeof(char *));
    subs_settings.allowlist[subs_settings.nallow++] = util_xstrndup(item, len);
}

static bool is_http_url(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

int subs_init(const util_config_t *cfg, const char *secret, char *err, size_t errlen)
{
    subs_dispose();
    const char *list = cfg->subs_endpoint_allowlist != NULL ? cfg->subs_endpoint_allowlist : "";
    for (const char *p = list;;) {
        size_t n = strcspn(p, ",");
        allowlist_add(p, n);
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    for (size_t i = 0; i != subs_settings.nallow; ++i) {
        const char *prefix = subs_settings.allowlist[i];
        const char *host = strstr(prefix, "://");
        if (!is_http_url(prefix) || host == NULL || host[3] == '\0' || host[3] == '/') {
            snprintf(err, errlen, "subscriptions.endpoint_allowlist: \"%s\" is not an http:// or https:// URL prefix with a host",
                     prefix);
            subs_dispose();
            return -1;
        }
    }
    subs_settings.max_failures = cfg->subs_max_failures;
    subs_settings.retry_base_ms = cfg->subs_retry_base_ms;
    subs_settings.retry_max_ms = cfg->subs_retry_max_ms < cfg->subs_retry_base_ms ? cfg->subs_retry_base_ms : cfg->subs_retry_max_ms;
    subs_settings.timeout_ms = cfg->subs_timeout_ms;
    subs_settings.heartbeat_seconds = cfg->subs_heartbeat_seconds;
    subs_settings.retention_hours = cfg->subs_retention_hours;
    subs_settings.ca_file = cfg->subs_ca_file != NULL ? util_xstrdup(cfg->subs_ca_file) : NULL;
    subs_settings.dsn = cfg->database_url != NULL ? util_xstrdup(cfg->database_url) : NULL;
    static const char label[] = "fhirsched subscription header seal v1";
    unsigned int keylen = sizeof(subs_settings.seal_key);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)label, sizeof(label) - 1, subs_settings.seal_key, &keylen);
    return 0;
}

void subs_dispose(void)
{
    for (size_t i = 0; i != subs_settings.nallow; ++i)
        free(subs_settings.allowlist[i]);
    free(subs_settings.allowlist);
    free(subs_settings.ca_file);
    free(subs_settings.dsn);
    OPENSSL_cleanse(subs_settings.seal_key, sizeof(subs_settings.seal_key));
    memset(&subs_settings, 0, sizeof(subs_settings));
}

/* ---- endpoint allowlist ---- */

bool subs_endpoint_allowed(const char *url)
{
    if (!is_http_url(url))
        return false;
    const char *authority = strstr(url, "://") + 3;
    size_t authority_len = strcspn(authority, "/?#");
    /* userinfo can make a URL read as one host and connect to another */
    if (memchr(authority, '@', authority_len) != NULL)
        return false;
    for (const char *p = url; *p != '\0'; ++p)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    size_t origin_len = (size_t)(authority - url) + authority_len;
    for (size_t i = 0; i != subs_settings.nallow; ++i) {
        const char *prefix = subs_settings.allowlist[i];
        size_t plen = strlen(prefix);
        if (strlen(url) < plen)
            continue;
        /* scheme and host without case, the path exactly */
        size_t ci = plen < origin_len ? plen : origin_len;
        if (strncasecmp(url, prefix, ci) != 0 || strncmp(url + ci, prefix + ci, plen - ci) != 0)
            continue;
        /* a prefix ends at a boundary: "http://a.example" must not allow "http://a.example.evil.net" */
        char next = url[plen];
        if (prefix[plen - 1] == '/' || next == '\0' || next == '/' || next == '?' || next == '#')
            return true;
    }
    return false;
}

/* ---- sealed header values ---- */

static void seal_aad(util_buf_t *aad, const char *endpoint, const char *name)
{
    util_buf_init(aad);
    util_buf_puts(aad, endpoint);
    util_buf_append(aad, "\n", 1);
    for (const char *p = name; *p != '\0'; ++p) {
        char c = (char)tolower((unsigned char)*p);
        util_buf_append(aad, &c, 1);
    }
}

char *subs_seal(const char *endpoint, const char *name, const char *value)
{
    size_t vlen = strlen(value);
    unsigned char *out = util_xmalloc(NONCE_LEN + vlen + TAG_LEN);
    util_buf_t aad;
    seal_aad(&aad, endpoint, name);
    RAND_bytes(out, NONCE_LEN);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, subs_settings.seal_key, out);
    EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)aad.base, (int)aad.len);
    EVP_EncryptUpdate(ctx, out + NONCE_LEN, &len, (const unsigned char *)value, (int)vlen);
    EVP_EncryptFinal_ex(ctx, out + NONCE_LEN + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + NONCE_LEN + vlen);
    EVP_CIPHER_CTX_free(ctx);
    util_buf_dispose(&aad);
    char *b64 = auth_base64url_encode(out, NONCE_LEN + vlen + TAG_LEN);
    free(out);
    char *sealed = util_asprintf(SEALED_PREFIX "%s", b64);
    free(b64);
    return sealed;
}

char *subs_unseal(const char *endpoint, const char *name, const char *sealed)
{
    if (strncmp(sealed, SEALED_PREFIX, strlen(SEALED_PREFIX)) != 0)
        return NULL;
    const char *b64 = sealed + strlen(SEALED_PREFIX);
    size_t n;
    unsigned char *raw = auth_base64url_decode(b64, strlen(b64), &n);
    if (raw == NULL || n < NONCE_LEN + TAG_LEN) {
        free(raw);
        return NULL;
    }
    size_t vlen = n - NONCE_LEN - TAG_LEN;
    char *value = util_xmalloc(vlen + 1);
    util_buf_t aad;
    seal_aad(&aad, endpoint, name);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, subs_settings.seal_key, raw) == 1 &&
                      EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)aad.base, (int)aad.len) == 1 &&
                      EVP_DecryptUpdate(ctx, (unsigned char *)value, &len, raw + NONCE_LEN, (int)vlen) == 1 &&
                      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + NONCE_LEN + vlen) == 1 &&
                      EVP_DecryptFinal_ex(ctx, (unsigned char *)value + len, &len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    util_buf_dispose(&aad);
    free(raw);
    if (!ok || memchr(value, '\0', vlen) != NULL) {
        free(value);
        return NULL;
    }
    value[vlen] = '\0';
    return value;
}

/* Splits "Name: value" (name a token, no control characters anywhere). -1 when malformed. */
static int header_split(const char *line, char **name, const char **value)
{
    const char *colon = strchr(line, ':');
    if (colon == NULL || colon == line)
        return -1;
    for (const char *p = line; p != colon; ++p)
        if (!(isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p) != NULL))
            return -1;
    for (const char *p = colon + 1; *p != '\0'; ++p)
        if (((unsigned char)*p < ' ' && *p != '\t') || *p == 0x7f)
            return -1;
    *name = util_xstrndup(line, (size_t)(colon - line));
    *value = colon + 1;
    while (**value == ' ' || **value == '\t')
        ++*value;
    return 0;
}

char *subs_header_line(const char *endpoint, const char *stored)
{
    char *name;
    const char *value;
    if (header_split(stored, &name, &value) != 0)
        return NULL;
    char *line = NULL;
    if (strncmp(value, SEALED_PREFIX, strlen(SEALED_PREFIX)) == 0) {
        char *open = endpoint != NULL ? subs_unseal(endpoint, name, value) : NULL;
        if (open != NULL)
            line = util_asprintf("%s: %s", name, open);
        free(open);
    } else {
        line = util_asprintf("%s: %s", name, value); /* stored before sealing existed */
    }
    free(name);
    return line;
}

/* ---- the resource ---- */

static const char *const criteria_controls[] = {"_count", "_sort", "_include", "_revinclude", "_summary", "_elements",
                                                "_total", "_cursor", "_contained", "_containedType", "_format", "_pretty"};

int subs_criteria_check(const char *criteria, const char **type, fhir_outcome_t *oo)
{
    size_t tlen = strcspn(criteria, "?");
    int ti = fhir_resource_type_index(criteria, tlen);
    if (ti < 0)
        return fhir_outcome_fail(oo, 422, "value", "Subscription.criteria",
                                 "criteria must start with a resource type this server stores (e.g. Appointment?status=booked)");
    *type = fhir_resource_types[ti];
    const char *q = criteria[tlen] == '?' ? criteria + tlen + 1 : criteria + tlen, *end = q + strlen(q);
    char *name, *value;
    int more;
    while ((more = fhir_query_next(&q, end, &name, &value)) > 0) {
        size_t nlen = strcspn(name, ":");
        bool control = false;
        for (size_t i = 0; i != sizeof(criteria_controls) / sizeof(criteria_controls[0]); ++i)
            control |= strlen(criteria_controls[i]) == nlen && strncmp(name, criteria_controls[i], nlen) == 0;
        if (control)
            fhir_outcome_fail(oo, 422, "value", "Subscription.criteria", "criteria: %s shapes search results and means nothing in a Subscription",
                              name);
        free(name);
        free(value);
        if (control)
            return -1;
    }
    if (more < 0)
        return fhir_outcome_fail(oo, 422, "value", "Subscription.criteria", "criteria: malformed percent-encoding");
    return 0;
}

static bool payload_supported(const char *payload)
{
    size_t n = strcspn(payload, ";");
    while (n != 0 && payload[n - 1] == ' ')
        --n;
    return n == 0 || (n == 21 && strncasecmp(payload, "application/fhir+json", 21) == 0) ||
           (n == 16 && strncasecmp(payload, "application/json", 16) == 0);
}

/* Seals every header value in place; a value sealed already must open for this endpoint. */
static int seal_headers(json_t *channel, const char *endpoint, fhir_outcome_t *oo)
{
    json_t *headers = json_object_get(channel, "header");
    size_t i;
    json_t *h;
    json_array_foreach(headers, i, h)
    {
        char *name;
        const char *value;
        if (!json_is_string(h) || header_split(json_string_value(h), &name, &value) != 0)
            return fhir_outcome_fail(oo, 422, "value", "Subscription.channel.header",
                                     "channel.header[%zu] must be \"Name: value\" with a token name and no control characters", i);
        /* the framing of the request is ours (util/httpc.c refuses them too) */
        static const char *const reserved[] = {"host", "content-length", "transfer-encoding", "connection", "content-type"};
        for (size_t r = 0; r != sizeof(reserved) / sizeof(reserved[0]); ++r) {
            if (strcasecmp(name, reserved[r]) == 0) {
                fhir_outcome_fail(oo, 422, "value", "Subscription.channel.header", "channel.header[%zu]: %s is set by the server", i, name);
                free(name);
                return -1;
            }
        }
        int ret = 0;
        char *sealed = NULL;
        if (strncmp(value, SEALED_PREFIX, strlen(SEALED_PREFIX)) == 0) {
            char *open = endpoint != NULL ? subs_unseal(endpoint, name, value) : NULL;
            if (open == NULL)
                ret = fhir_outcome_fail(oo, 422, "value", "Subscription.channel.header",
                                        "channel.header[%zu]: the sealed value of %s does not open for this endpoint; send the value itself", i,
                                        name);
            free(open);
        } else if (endpoint != NULL) {
            sealed = subs_seal(endpoint, name, value);
            char *line = util_asprintf("%s: %s", name, sealed);
            json_array_set_new(headers, i, json_string(line));
            free(line);
        }
        free(sealed);
        free(name);
        if (ret != 0)
            return ret;
    }
    return 0;
}

int subs_check_subscription(json_t *resource, const fhir_access_t *access, fhir_outcome_t *oo)
{
    const char *criteria = json_string_value(json_object_get(resource, "criteria"));
    if (criteria == NULL)
        return fhir_outcome_fail(oo, 422, "required", "Subscription.criteria", "a Subscription needs criteria");
    /* the criteria are usable when their matcher builds (which checks them as a strict search) */
    subs_matcher_t m;
    if (subs_matcher_init(&m, criteria, NULL, oo) != 0) {
        oo->status = 422;
        return -1;
    }
    const char *type = fhir_resource_types[fhir_resource_type_index(m.type, strlen(m.type))];
    subs_matcher_dispose(&m);

    json_t *channel = json_object_get(resource, "channel");
    const char *ctype = json_string_value(json_object_get(channel, "type"));
    const char *endpoint = json_string_value(json_object_get(channel, "endpoint"));
    const char *payload = json_string_value(json_object_get(channel, "payload"));
    bool rest_hook = ctype != NULL && strcmp(ctype, "rest-hook") == 0, websocket = ctype != NULL && strcmp(ctype, "websocket") == 0;
    if (!rest_hook && !websocket)
        return fhir_outcome_fail(oo, 422, "not-supported", "Subscription.channel.type",
                                 "channel.type %s is not supported here: use rest-hook or websocket", ctype != NULL ? ctype : "(none)");
    if (payload != NULL && !payload_supported(payload))
        return fhir_outcome_fail(oo, 422, "not-supported", "Subscription.channel.payload",
                                 "channel.payload %s is not supported: leave it empty or use application/fhir+json", payload);
    if (rest_hook) {
        if (endpoint == NULL || !is_http_url(endpoint))
            return fhir_outcome_fail(oo, 422, "required", "Subscription.channel.endpoint",
                                     "a rest-hook Subscription needs an http:// or https:// channel.endpoint");
        if (!subs_endpoint_allowed(endpoint))
            return fhir_outcome_fail(oo, 422, "security", "Subscription.channel.endpoint",
                                     "channel.endpoint is not on this server's allowlist (subscriptions.endpoint_allowlist)");
        if (fhir_access_rule(access, type, false)->level != FHIR_ACCESS_ALL)
            return fhir_outcome_fail(oo, 403, "forbidden", "Subscription.criteria",
                                     "a rest-hook Subscription sends every matching %s; this token may not read all of them "
                                     "(use the websocket channel, which applies the listener's own access)",
                                     type);
    }
    if (seal_headers(channel, rest_hook ? endpoint : NULL, oo) != 0)
        return -1;

    /* the server manages the status: a rest-hook proves its endpoint with a handshake first */
    const char *status = json_string_value(json_object_get(resource, "status"));
    bool wanted = status != NULL && (strcmp(status, "requested") == 0 || strcmp(status, "active") == 0);
    if (status != NULL && strcmp(status, "error") != 0)
        json_object_del(resource, "error");
    if (wanted)
        json_object_set_new(resource, "status", json_string(rest_hook ? "requested" : "active"));
    return 0;
}

/* The process-wide key store, filled from a JWKS file or URL. */
#include "auth/keys.h"
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "util/httpc.h"
#include "util/str.h"

#define MODULE_NAME "auth/keys.c"

static struct {
    pthread_mutex_t lock;         /* guards `current` */
    pthread_mutex_t refresh_lock; /* one load at a time; guards everything else */
    auth_keyset_t *current;
    bool initialised;
    char *file, *url, *ca_file;
    unsigned refresh_seconds;
    struct timespec last_load;
} store = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};

int auth_keys_http_get(const char *url, const char *ca_file, char **body, size_t *len, char *err, size_t errlen)
{
    util_httpc_request_t req = {.method = "GET",
                                .url = url,
                                .headers = (const char *const[]){"Accept: application/json, application/jwk-set+json"},
                                .nheaders = 1,
                                .ca_file = ca_file,
                                .max_body = AUTH_KEYS_MAX_JWKS};
    util_httpc_response_t res;
    util_buf_t buf;
    util_buf_init(&buf);
    *body = NULL;
    *len = 0;
    /* a non-200 is named as such even when its body then fails to arrive */
    if (util_httpc_exchange(&req, &res, &buf, err, errlen) != 0 && (res.status == 0 || res.status == 200)) {
        util_buf_dispose(&buf);
        return -1;
    }
    if (res.status != 200) {
        if (res.status >= 300 && res.status < 400 && res.location[0] != '\0')
            snprintf(err, errlen, "%s: HTTP %d (redirects are not followed; Location: %s)", url, res.status, res.location);
        else
            snprintf(err, errlen, "%s: HTTP %d", url, res.status);
        util_buf_dispose(&buf);
        return -1;
    }
    *len = buf.len;
    *body = buf.base != NULL ? buf.base : util_xstrdup("");
    return 0;
}

/* the store */

static int read_file(const char *path, char **body, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    util_buf_t buf;
    char chunk[8192];
    size_t n;

    if (fp == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    util_buf_init(&buf);
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) != 0) {
        if (buf.len + n > AUTH_KEYS_MAX_JWKS) {
            snprintf(err, errlen, "%s: larger than %d bytes", path, AUTH_KEYS_MAX_JWKS);
            goto Error;
        }
        util_buf_append(&buf, chunk, n);
    }
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto Error;
    }
    fclose(fp);
    *body = buf.base;
    *len = buf.len;
    return 0;
Error:
    fclose(fp);
    util_buf_dispose(&buf);
    return -1;
}

/* Reads or fetches the configured JWKS and parses it. Called with refresh_lock held (or before anyone else can run). */
static auth_keyset_t *load_keys(char *err, size_t errlen)
{
    const char *setting = store.file != NULL ? "auth.jwks_file" : "auth.jwks_url", *source = store.file != NULL ? store.file : store.url;
    char msg[768], *body;
    size_t len;
    int r = store.file != NULL ? read_file(store.file, &body, &len, msg, sizeof(msg))
                               : auth_keys_http_get(store.url, store.ca_file, &body, &len, msg, sizeof(msg));
    if (r != 0) {
        snprintf(err, errlen, "%s: %s", setting, msg);
        return NULL;
    }
    auth_keyset_t *keys = auth_keyset_parse(body, len, msg, sizeof(msg));
    free(body);
    if (keys == NULL)
        snprintf(err, errlen, "%s: %s: %s", setting, source, msg);
    return keys;
}

static void settings_clear(void)
{
    free(store.file);
    free(store.url);
    free(store.ca_file);
    store.file = store.url = store.ca_file = NULL;
    store.initialised = false;
}

int auth_keys_init(const char *jwks_file, const char *jwks_url, const char *ca_file, unsigned refresh_seconds, char *err, size_t errlen)
{
    bool has_file = jwks_file != NULL && jwks_file[0] != '\0', has_url = jwks_url != NULL && jwks_url[0] != '\0';
    if (has_file == has_url) {
        snprintf(err, errlen, has_file ? "auth.jwks_file and auth.jwks_url are alternatives: set one"
                                       : "auth.jwks_file or auth.jwks_url is needed to verify tokens");
        return -1;
    }
    auth_keys_dispose();

    pthread_mutex_lock(&store.refresh_lock);
    store.file = has_file ? util_xstrdup(jwks_file) : NULL;
    store.url = has_url ? util_xstrdup(jwks_url) : NULL;
    store.ca_file = ca_file != NULL && ca_file[0] != '\0' ? util_xstrdup(ca_file) : NULL;
    store.refresh_seconds = refresh_seconds;
    auth_keyset_t *keys = load_keys(err, errlen);
    if (keys == NULL) {
        settings_clear();
        pthread_mutex_unlock(&store.refresh_lock);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &store.last_load);
    store.initialised = true;
    pthread_mutex_lock(&store.lock);
    store.current = keys;
    pthread_mutex_unlock(&store.lock);
    pthread_mutex_unlock(&store.refresh_lock);
    return 0;
}

auth_keyset_t *auth_keys_current(void)
{
    pthread_mutex_lock(&store.lock);
    auth_keyset_t *keys = store.current;
    auth_keyset_retain(keys);
    pthread_mutex_unlock(&store.lock);
    return keys;
}

int auth_keys_refresh(char *err, size_t errlen)
{
    int ret;

    /* a caller that waited here for another refresh finds it too soon and uses the set that one installed */
    pthread_mutex_lock(&store.refresh_lock);
    if (!store.initialised) {
        snprintf(err, errlen, "auth: the keys were never loaded");
        ret = -1;
        goto Exit;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t elapsed_ms = (int64_t)(now.tv_sec - store.last_load.tv_sec) * 1000 + (now.tv_nsec - store.last_load.tv_nsec) / 1000000;
    if (elapsed_ms < (int64_t)store.refresh_seconds * 1000) {
        ret = 0;
        goto Exit;
    }
    store.last_load = now;
    auth_keyset_t *keys = load_keys(err, errlen);
    if (keys == NULL) {
        ret = -1;
        goto Exit;
    }
    pthread_mutex_lock(&store.lock);
    auth_keyset_t *old = store.current;
    store.current = keys;
    pthread_mutex_unlock(&store.lock);
    auth_keyset_release(old);
    ret = 1;

Exit:
    pthread_mutex_unlock(&store.refresh_lock);
    return ret;
}

void auth_keys_dispose(void)
{
    pthread_mutex_lock(&store.refresh_lock);
    pthread_mutex_lock(&store.lock);
    auth_keyset_t *old = store.current;
    store.current = NULL;
    pthread_mutex_unlock(&store.lock);
    auth_keyset_release(old);
    settings_clear();
    pthread_mutex_unlock(&store.refresh_lock);
}

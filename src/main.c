/* fhirsched: serve | migrate | version */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/token.h"
#include "fhir/capability.h"
#include "fhir/interaction.h"
#include "fhir/search.h"
#include "http/http.h"
#include "store/store.h"
#include "subs/subs.h"
#include "util/config.h"
#include "util/log.h"

#define MODULE_NAME "main.c"

static void usage(FILE *fp)
{
    fputs("usage: fhirsched <command> [--config FILE]\n"
          "\n"
          "commands:\n"
          "  serve     serve FHIR R4 over HTTP (refuses to start while migrations are pending)\n"
          "  migrate   apply pending database migrations and rebuild stale search indexes\n"
          "  search-params  print the supported search parameters (Markdown, as in docs/search.md)\n"
          "  token     mint development keys and tokens, NOT for production (fhirsched token --help)\n"
          "  version   print the version\n"
          "\n"
          "Every setting has a built-in default, may be set in the YAML file given with --config,\n"
          "and is overridden by an environment variable: database.url is FHIRSCHED_DATABASE_URL.\n"
          "See docs/configuration.md.\n",
          fp);
}

static int load_config(util_config_t *cfg, const char *path)
{
    char err[512];
    util_config_defaults(cfg);
    if (util_config_load(cfg, path, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "fhirsched: configuration error: %s\n", err);
        return -1;
    }
    util_log_set_level(cfg->log_level);
    return 0;
}

static int cmd_migrate(util_config_t *cfg)
{
    char err[1024];
    if (store_migrate_run(cfg->database_url, err, sizeof(err)) != 0) {
        fprintf(stderr, "fhirsched migrate: %s\n", err);
        return 1;
    }
    printf("database schema is at version %d\n", store_migrations_known());
    /* references to our own base are indexed relative to it */
    fhir_base_url = cfg->base_url;
    long reindexed;
    if (fhir_search_reindex(cfg->database_url, &reindexed, err, sizeof(err)) != 0) {
        fprintf(stderr, "fhirsched migrate: %s\n", err);
        return 1;
    }
    if (reindexed != 0)
        printf("search index rebuilt for %ld resources\n", reindexed);
    return 0;
}

static int cmd_serve(util_config_t *cfg)
{
    char err[1024];
    int version;
    if (store_migrate_current(cfg->database_url, &version, err, sizeof(err)) != 0) {
        fprintf(stderr, "fhirsched serve: %s\n", err);
        return 1;
    }
    if (version < store_migrations_known()) {
        fprintf(stderr, "fhirsched serve: the database schema is at version %d but this fhirsched needs %d; run `fhirsched migrate`\n",
                version, store_migrations_known());
        return 1;
    }
    if (version > store_migrations_known()) {
        fprintf(stderr, "fhirsched serve: the database schema is at version %d, newer than this fhirsched knows (%d); upgrade fhirsched\n",
                version, store_migrations_known());
        return 1;
    }
    long stale;
    if (fhir_search_stale_count(cfg->database_url, &stale, err, sizeof(err)) != 0) {
        fprintf(stderr, "fhirsched serve: %s\n", err);
        return 1;
    }
    if (stale != 0) {
        fprintf(stderr, "fhirsched serve: %ld resources have an out-of-date search index; run `fhirsched migrate`\n", stale);
        return 1;
    }
    char *secret;
    if (store_server_secret(cfg->database_url, &secret, err, sizeof(err)) != 0) {
        fprintf(stderr, "fhirsched serve: %s\n", err);
        return 1;
    }
    fhir_search_set_cursor_key(secret);
    int subs_ok = subs_init(cfg, secret, err, sizeof(err));
    free(secret);
    if (subs_ok != 0) {
        fprintf(stderr, "fhirsched serve: %s\n", err);
        return 1;
    }
    fhir_ix_set_body_check("Subscription", subs_check_subscription);
    fhir_capability_security = (fhir_capability_security_t){cfg->auth_enabled, cfg->cors_allowed_origins != NULL,
                                                             cfg->auth_authorize_url, cfg->auth_token_url};
    fhir_capability_init(cfg->base_url, FHIRSCHED_VERSION);
    int ret = http_server_run(cfg);
    fhir_capability_dispose();
    fhir_search_set_cursor_key(NULL);
    subs_dispose();
    return ret;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* a development tool with options of its own: no configuration, no database */
    if (strcmp(argv[1], "token") == 0)
        return auth_token_cmd_run(argc - 1, argv + 1);
    const char *command = argv[1], *config_path = NULL;
    static const struct option options[] = {{"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        if (opt == 'c') {
            config_path = optarg;
        } else {
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
        printf("fhirsched %s (FHIR R4 4.0.1, schema version %d)\n", FHIRSCHED_VERSION, store_migrations_known());
        return 0;
    }
    if (strcmp(command, "search-params") == 0) {
        util_buf_t md;
        util_buf_init(&md);
        fhir_search_registry_markdown(&md);
        fwrite(md.base, 1, md.len, stdout);
        util_buf_dispose(&md);
        return 0;
    }
    if (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(command, "serve") != 0 && strcmp(command, "migrate") != 0) {
        fprintf(stderr, "fhirsched: unknown command \"%s\"\n", command);
        usage(stderr);
        return 2;
    }
    util_config_t cfg;
    if (load_config(&cfg, config_path) != 0) {
        util_config_dispose(&cfg);
        return 2;
    }
    int ret = strcmp(command, "serve") == 0 ? cmd_serve(&cfg) : cmd_migrate(&cfg);
    util_config_dispose(&cfg);
    return ret;
}

/*
 * Schema migrations: blocking libpq, run by `fhirsched migrate` and checked by `fhirsched serve` before any event loop
 * starts. Each migration runs in its own transaction together with its schema_migrations row; an advisory lock keeps
 * two migrators from interleaving.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include "store/migrations.h"
#include "store/store.h"

/* Arbitrary constant shared by every fhirsched migrator. */
#define MIGRATE_LOCK_KEY "7245190381"

int store_migrations_known(void)
{
    return store_migration_count > 0 ? store_migrations[store_migration_count - 1].version : 0;
}

static PGconn *connect_blocking(const char *dsn, char *err, size_t errlen)
{
    PGconn *pg = PQconnectdb(dsn);
    if (PQstatus(pg) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to the database: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* Runs a statement without parameters; the result is checked and cleared. */
static int exec_ok(PGconn *pg, const char *sql, char *err, size_t errlen, const char *what)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s failed: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

static int read_version(PGconn *pg, int *version, char *err, size_t errlen)
{
    PGresult *res = PQexec(pg, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* undefined_table: nothing was ever migrated */
        if (strcmp(store_sqlstate(res), "42P01") == 0) {
            *version = 0;
            PQclear(res);
            return 0;
        }
        snprintf(err, errlen, "reading schema_migrations failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    *version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

int store_migrate_current(const char *dsn, int *version, char *err, size_t errlen)
{
    PGconn *pg = connect_blocking(dsn, err, errlen);
    if (pg == NULL)
        return -1;
    int ret = read_version(pg, version, err, errlen);
    PQfinish(pg);
    return ret;
}

int store_server_secret(const char *dsn, char **secret, char *err, size_t errlen)
{
    PGconn *pg = connect_blocking(dsn, err, errlen);
    if (pg == NULL)
        return -1;
    PGresult *res = PQexec(pg, "SELECT secret FROM server_secret");
    int ret = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        *secret = strdup(PQgetvalue(res, 0, 0));
        ret = *secret != NULL ? 0 : -1;
    } else {
        snprintf(err, errlen, "cannot read the server secret: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    PQfinish(pg);
    return ret;
}

int store_migrate_run(const char *dsn, char *err, size_t errlen)
{
    int ret = -1, current;
    PGconn *pg = connect_blocking(dsn, err, errlen);
    if (pg == NULL)
        return -1;
    if (exec_ok(pg, "SET client_min_messages = warning", err, errlen, "setting up") != 0 ||
        exec_ok(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, errlen, "taking the migration lock") != 0)
        goto Exit;
    if (exec_ok(pg,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())",
                err, errlen, "creating schema_migrations") != 0)
        goto Unlock;
    if (read_version(pg, &current, err, errlen) != 0)
        goto Unlock;
    if (current > store_migrations_known()) {
        snprintf(err, errlen, "the database schema is at version %d, newer than this fhirsched knows (%d); upgrade fhirsched",
                 current, store_migrations_known());
        goto Unlock;
    }
    for (int i = 0; i != store_migration_count; ++i) {
        const store_migration_t *m = &store_migrations[i];
        if (m->version <= current)
            continue;
        if (exec_ok(pg, "BEGIN", err, errlen, "BEGIN") != 0)
            goto Unlock;
        char what[128];
        snprintf(what, sizeof(what), "migration %s", m->name);
        if (exec_ok(pg, m->sql, err, errlen, what) != 0) {
            PQclear(PQexec(pg, "ROLLBACK"));
            goto Unlock;
        }
        char version[16];
        snprintf(version, sizeof(version), "%d", m->version);
        const char *params[] = {version, m->name};
        PGresult *res = PQexecParams(pg, "INSERT INTO schema_migrations (version, name) VALUES ($1::integer, $2)", 2, NULL, params,
                                     NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, errlen, "recording migration %s failed: %s", m->name, PQresultErrorMessage(res));
            PQclear(res);
            PQclear(PQexec(pg, "ROLLBACK"));
            goto Unlock;
        }
        PQclear(res);
        if (exec_ok(pg, "COMMIT", err, errlen, "COMMIT") != 0)
            goto Unlock;
        printf("applied migration %s\n", m->name);
    }
    ret = 0;
Unlock:
    PQclear(PQexec(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
Exit:
    PQfinish(pg);
    return ret;
}

/*
 * Re-extraction of stale search indexes by `fhirsched migrate` (blocking libpq, before any server runs a loop):
 * rows written before migration 0003, or by an older extraction (sp_version below FHIR_SEARCH_INDEX_VERSION), get
 * their search columns computed by the same code as live writes.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/search.h"
#include "store/store.h"

#define REINDEX_BATCH 1000

/* Each batch continues after the previous one's last key, so batches never rescan what is done. */
static const char stale_rows_sql[] = "SELECT res_type, id, body FROM resource WHERE NOT deleted AND sp_version <> $1::smallint "
                                     "AND (res_type, id) > ($2::text, $3::text) ORDER BY res_type, id LIMIT " /* batch size */;

static PGconn *connect_or_fail(const char *dsn, char *err, size_t errlen)
{
    PGconn *pg = PQconnectdb(dsn);
    if (PQstatus(pg) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to the database: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

int fhir_search_stale_count(const char *dsn, long *count, char *err, size_t errlen)
{
    PGconn *pg = connect_or_fail(dsn, err, errlen);
    if (pg == NULL)
        return -1;
    char version[16];
    snprintf(version, sizeof(version), "%d", FHIR_SEARCH_INDEX_VERSION);
    const char *params[] = {version};
    PGresult *res = PQexecParams(pg, "SELECT count(*) FROM resource WHERE NOT deleted AND sp_version <> $1::smallint", 1, NULL,
                                 params, NULL, NULL, 0);
    int ret = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
    if (ret == 0)
        *count = atol(PQgetvalue(res, 0, 0));
    else
        snprintf(err, errlen, "cannot check the search index: %s", PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(pg);
    return ret;
}

int fhir_search_reindex(const char *dsn, long *done, char *err, size_t errlen)
{
    *done = 0;
    PGconn *pg = connect_or_fail(dsn, err, errlen);
    if (pg == NULL)
        return -1;
    char version[16], sql[sizeof(stale_rows_sql) + 16];
    snprintf(version, sizeof(version), "%d", FHIR_SEARCH_INDEX_VERSION);
    snprintf(sql, sizeof(sql), "%s%d", stale_rows_sql, REINDEX_BATCH);
    int ret = 0;
    char *last_type = util_xstrdup(""), *last_id = util_xstrdup("");
    for (;;) {
        const char *params[] = {version, last_type, last_id};
        PGresult *rows = PQexecParams(pg, sql, 3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(rows) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "cannot read stale rows: %s", PQresultErrorMessage(rows));
            PQclear(rows);
            ret = -1;
            break;
        }
        int n = PQntuples(rows);
        if (n == 0) {
            PQclear(rows);
            break;
        }
        store_array_t types, ids, indexes;
        store_array_init(&types);
        store_array_init(&ids);
        store_array_init(&indexes);
        for (int i = 0; i != n; ++i) {
            const char *type = PQgetvalue(rows, i, 0);
            json_t *doc = json_loadb(PQgetvalue(rows, i, 2), (size_t)PQgetlength(rows, i, 2), 0, NULL);
            /* an unreadable body still gets the current version, so that it is not read again forever */
            char *index = doc != NULL ? fhir_search_index_text(type, doc) : util_asprintf("{\"v\":%d}", FHIR_SEARCH_INDEX_VERSION);
            json_decref(doc);
            store_array_add(&types, type);
            store_array_add(&ids, PQgetvalue(rows, i, 1));
            store_array_add(&indexes, index);
            free(index);
        }
        free(last_type);
        free(last_id);
        last_type = util_xstrdup(PQgetvalue(rows, n - 1, 0));
        last_id = util_xstrdup(PQgetvalue(rows, n - 1, 1));
        PQclear(rows);
        char *literals[] = {store_array_literal(&types), store_array_literal(&ids), store_array_literal(&indexes)};
        store_array_dispose(&types);
        store_array_dispose(&ids);
        store_array_dispose(&indexes);
        const char *update_params[] = {literals[0], literals[1], literals[2]};
        PGresult *res = PQexecParams(pg, "SELECT fhir_reindex($1::text[], $2::text[], $3::jsonb[])", 3, NULL, update_params, NULL,
                                     NULL, 0);
        for (int k = 0; k != 3; ++k)
            free(literals[k]);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "cannot store search indexes: %s", PQresultErrorMessage(res));
            ret = -1;
        } else {
            *done += atol(PQgetvalue(res, 0, 0));
        }
        PQclear(res);
        if (ret != 0)
            break;
    }
    free(last_type);
    free(last_id);
    /* the planner needs statistics of the new column values before it can choose the search indexes well */
    if (ret == 0 && *done != 0) {
        PGresult *res = PQexec(pg, "ANALYZE resource");
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, errlen, "cannot analyze the re-indexed rows: %s", PQresultErrorMessage(res));
            ret = -1;
        }
        PQclear(res);
    }
    PQfinish(pg);
    return ret;
}

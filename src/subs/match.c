/*
 * Criteria as SQL over the outbox. The search engine builds its conditions on the columns of `resource` (alias r); an
 * outbox row carries those columns twice, for the version before and the version after the change, so the same
 * conditions run over both sides and a change matches when either side does.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/interaction.h"
#include "fhir/search.h"
#include "subs/subs.h"

#define MODULE_NAME "subs/match.c"

int subs_matcher_init(subs_matcher_t *m, const char *criteria, const fhir_access_t *access, fhir_outcome_t *oo)
{
    memset(m, 0, sizeof(*m));
    util_buf_init(&m->sql);
    const char *type;
    if (subs_criteria_check(criteria, &type, oo) != 0) {
        subs_matcher_dispose(m);
        return -1;
    }
    const char *q = strchr(criteria, '?');
    q = q != NULL ? q + 1 : "";
    fhir_search_t s;
    int ret = fhir_search_build_for(&s, type, q, strlen(q), &fhir_search_limits, true, access, oo);
    if (ret != 0) {
        fhir_search_dispose(&s);
        /* the search engine speaks of the query; say that it is the criteria */
        for (size_t i = 0; i != oo->count; ++i)
            if (oo->issues[i].expression == NULL)
                oo->issues[i].expression = util_xstrdup("Subscription.criteria");
        subs_matcher_dispose(m);
        return -1;
    }
    /* where's parameters, then the visibility rule's (0 or 2), then from, to, type and payload (set per run) */
    int n = s.nparams_where;
    util_buf_t visible;
    util_buf_init(&visible);
    const char *vvalues[2];
    int nv = fhir_access_sql(&visible, fhir_access_rule(access, type, false), "c.id", "c.n_tokens", n + 1, vvalues);
    int run = n + nv; /* run parameters are $run+1 .. $run+4 */
    util_buf_printf(&m->sql,
                    "SELECT c.pos, c.res_type, c.id, c.version_id, c.event, CASE WHEN $%d::boolean THEN h.body END,"
                    " (NOT c.n_deleted AND %s)"
                    " FROM sub_change c LEFT JOIN resource_history h"
                    " ON h.res_type = c.res_type AND h.id = c.id AND h.version_id = c.version_id"
                    " WHERE c.pos > $%d::bigint AND c.pos <= $%d::bigint AND c.res_type = $%d::text AND EXISTS (SELECT 1 FROM (VALUES"
                    " (c.res_type, c.id, c.n_deleted, c.n_last_updated, c.n_tokens, c.n_text, c.n_date, c.n_sort, c.n_geo),"
                    " (c.res_type, c.id, c.o_deleted, c.o_last_updated, c.o_tokens, c.o_text, c.o_date, c.o_sort, c.o_geo))"
                    " AS r(res_type, id, deleted, last_updated, sp_tokens, sp_text, sp_date, sp_sort, sp_geo) WHERE ",
                    run + 4, visible.base, run + 1, run + 2, run + 3);
    util_buf_dispose(&visible);
    util_buf_append(&m->sql, s.where.base, s.where.len);
    util_buf_printf(&m->sql, ") ORDER BY c.pos LIMIT %d", SUBS_MATCH_BATCH);
    m->nparams = run + 4;
    m->params = util_xcalloc((size_t)m->nparams, sizeof(char *));
    for (int i = 0; i != n; ++i)
        m->params[i] = util_xstrdup(s.params[i]);
    for (int i = 0; i != nv; ++i)
        m->params[n + i] = util_xstrdup(vvalues[i]);
    m->params[run + 2] = util_xstrdup(type);
    m->type = util_xstrdup(type);
    for (size_t i = 0; i != s.ntoken_filters; ++i)
        subs_tokens_parse(&m->filters[m->nfilters++], s.params[s.token_filters[i]]);
    fhir_search_dispose(&s);
    return 0;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void subs_text_array_parse(const char *lit, char ***v, size_t *n)
{
    *v = NULL;
    *n = 0;
    const char *p = lit;
    if (*p++ != '{')
        return;
    while (*p != '\0' && *p != '}') {
        util_buf_t item;
        util_buf_init(&item);
        if (*p == '"') {
            for (++p; *p != '\0' && *p != '"'; ++p) {
                if (*p == '\\' && p[1] != '\0')
                    ++p;
                util_buf_append(&item, p, 1);
            }
            if (*p == '"')
                ++p;
        } else {
            size_t len = strcspn(p, ",}");
            util_buf_append(&item, p, len);
            p += len;
        }
        *v = util_xrealloc(*v, (*n + 1) * sizeof(char *));
        (*v)[(*n)++] = item.base;
        if (*p == ',')
            ++p;
    }
}

void subs_tokens_parse(subs_tokens_t *t, const char *lit)
{
    subs_text_array_parse(lit, &t->v, &t->n);
    if (t->n > 1)
        qsort(t->v, t->n, sizeof(char *), compare_strings);
}

void subs_tokens_dispose(subs_tokens_t *t)
{
    for (size_t i = 0; i != t->n; ++i)
        free(t->v[i]);
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

bool subs_matcher_may_match(const subs_matcher_t *m, const subs_tokens_t *row)
{
    for (size_t f = 0; f != m->nfilters; ++f) {
        const subs_tokens_t *want = &m->filters[f];
        bool any = false;
        for (size_t i = 0; i != want->n && !any; ++i)
            any = bsearch(&want->v[i], row->v, row->n, sizeof(char *), compare_strings) != NULL;
        if (!any)
            return false;
    }
    return true;
}

void subs_matcher_range(subs_matcher_t *m, int64_t from, int64_t to, bool payload)
{
    int n = m->nparams - 4;
    free(m->params[n]);
    free(m->params[n + 1]);
    free(m->params[n + 3]);
    m->params[n] = util_asprintf("%" PRId64, from);
    m->params[n + 1] = util_asprintf("%" PRId64, to);
    m->params[n + 3] = util_xstrdup(payload ? "true" : "false");
}

void subs_matcher_dispose(subs_matcher_t *m)
{
    for (int i = 0; i != m->nparams; ++i)
        free(m->params[i]);
    free(m->params);
    free(m->type);
    for (size_t i = 0; i != m->nfilters; ++i)
        subs_tokens_dispose(&m->filters[i]);
    util_buf_dispose(&m->sql);
    memset(m, 0, sizeof(*m));
}

#include <string.h>
#include "fhir/access.h"
#include "fhir/types.h"

#define TYPE_NAME(T) #T,
const char *const fhir_resource_types[FHIR_RESOURCE_TYPE_COUNT] = {FHIR_RESOURCE_TYPES(TYPE_NAME)};
_Static_assert(sizeof((const char *[]){FHIR_RESOURCE_TYPES(TYPE_NAME)}) / sizeof(const char *) == FHIR_RESOURCE_TYPE_COUNT,
               "FHIR_RESOURCE_TYPE_COUNT matches FHIR_RESOURCE_TYPES");

int fhir_resource_type_index(const char *name, size_t len)
{
    for (int i = 0; i != FHIR_RESOURCE_TYPE_COUNT; ++i)
        if (strlen(fhir_resource_types[i]) == len && memcmp(fhir_resource_types[i], name, len) == 0)
            return i;
    return -1;
}

const fhir_access_rule_t *fhir_access_rule(const fhir_access_t *access, const char *type, bool write)
{
    static const fhir_access_rule_t all = {FHIR_ACCESS_ALL, NULL, NULL};
    int i = access != NULL && type != NULL ? fhir_resource_type_index(type, strlen(type)) : -1;
    if (i < 0)
        return &all;
    return write ? &access->write[i] : &access->read[i];
}

int fhir_access_sql(util_buf_t *out, const fhir_access_rule_t *rule, const char *id_expr, const char *tokens_expr, int first,
                    const char *values[2])
{
    if (rule->level != FHIR_ACCESS_SOME) {
        util_buf_puts(out, rule->level == FHIR_ACCESS_ALL ? "true" : "false");
        return 0;
    }
    values[0] = rule->ids != NULL ? rule->ids : "{}";
    values[1] = rule->tokens != NULL ? rule->tokens : "{}";
    util_buf_printf(out, "(%s = ANY($%d::text[]) OR %s && $%d::text[])", id_expr, first, tokens_expr, first + 1);
    return 2;
}

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/outcome.h"
#include "util/str.h"

void fhir_outcome_init(fhir_outcome_t *oo)
{
    memset(oo, 0, sizeof(*oo));
}

void fhir_outcome_dispose(fhir_outcome_t *oo)
{
    for (size_t i = 0; i != oo->count; ++i) {
        free(oo->issues[i].code);
        free(oo->issues[i].diagnostics);
        free(oo->issues[i].expression);
    }
    free(oo->issues);
    memset(oo, 0, sizeof(*oo));
}

static void outcome_vadd(fhir_outcome_t *oo, fhir_severity_t severity, const char *code, const char *expression, const char *fmt,
                         va_list args)
{
    if (oo->count == oo->_capacity) {
        oo->_capacity = oo->_capacity ? oo->_capacity * 2 : 4;
        oo->issues = util_xrealloc(oo->issues, oo->_capacity * sizeof(*oo->issues));
    }
    fhir_issue_t *issue = &oo->issues[oo->count++];
    issue->severity = severity;
    issue->code = util_xstrdup(code);
    issue->expression = expression != NULL ? util_xstrdup(expression) : NULL;
    issue->diagnostics = util_vasprintf(fmt, args);
}

void fhir_outcome_add(fhir_outcome_t *oo, fhir_severity_t severity, const char *code, const char *expression, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    outcome_vadd(oo, severity, code, expression, fmt, args);
    va_end(args);
}

int fhir_outcome_fail(fhir_outcome_t *oo, int status, const char *code, const char *expression, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    outcome_vadd(oo, FHIR_SEV_ERROR, code, expression, fmt, args);
    va_end(args);
    if (oo->status == 0)
        oo->status = status;
    return -1;
}

size_t fhir_outcome_error_count(const fhir_outcome_t *oo)
{
    size_t n = 0;
    for (size_t i = 0; i != oo->count; ++i)
        if (oo->issues[i].severity == FHIR_SEV_ERROR || oo->issues[i].severity == FHIR_SEV_FATAL)
            ++n;
    return n;
}

const char *fhir_severity_code(fhir_severity_t severity)
{
    switch (severity) {
    case FHIR_SEV_FATAL:
        return "fatal";
    case FHIR_SEV_ERROR:
        return "error";
    case FHIR_SEV_WARNING:
        return "warning";
    default:
        return "information";
    }
}

json_t *fhir_outcome_to_json(const fhir_outcome_t *oo)
{
    json_t *issues = json_array();
    for (size_t i = 0; i != oo->count; ++i) {
        const fhir_issue_t *issue = &oo->issues[i];
        json_t *j = json_pack("{s:s, s:s}", "severity", fhir_severity_code(issue->severity), "code", issue->code);
        if (issue->diagnostics != NULL && issue->diagnostics[0] != '\0')
            json_object_set_new(j, "diagnostics", json_string(issue->diagnostics));
        if (issue->expression != NULL)
            json_object_set_new(j, "expression", json_pack("[s]", issue->expression));
        json_array_append_new(issues, j);
    }
    if (oo->count == 0)
        json_array_append_new(issues, json_pack("{s:s, s:s, s:s}", "severity", "information", "code", "informational", "diagnostics",
                                                "All OK"));
    return json_pack("{s:s, s:o}", "resourceType", "OperationOutcome", "issue", issues);
}

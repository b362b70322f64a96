#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

static util_log_level_t log_threshold = UTIL_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

int util_log_set_level(const char *name)
{
    for (int i = 0; i != 4; ++i) {
        if (strcmp(name, level_names[i]) == 0) {
            log_threshold = (util_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* Each line is built as a jansson object so that messages are always correctly escaped JSON. */
static void write_line(FILE *fp, json_t *line)
{
    char *text = json_dumps(line, JSON_COMPACT);
    if (text != NULL) {
        /* One fputs per line keeps lines from different threads whole (stdio locks the stream). */
        size_t n = strlen(text);
        text[n] = '\n';
        fwrite(text, 1, n + 1, fp);
        fflush(fp);
        free(text);
    }
    json_decref(line);
}

void util_log(util_log_level_t level, const char *module, const char *fmt, ...)
{
    if (level > log_threshold)
        return;
    char ts[40];
    util_time_format_now(ts, sizeof(ts));
    va_list args;
    va_start(args, fmt);
    char *msg = util_vasprintf(fmt, args);
    va_end(args);
    write_line(stderr, json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "module", module, "msg", msg));
    free(msg);
}

void util_log_access(const char *request_id, const char *method, const char *path, int status, double duration_ms, const char *protocol)
{
    char ts[40];
    util_time_format_now(ts, sizeof(ts));
    write_line(stdout, json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:s}", "ts", ts, "type", "access", "request_id", request_id,
                                 "method", method, "path", path, "status", status, "duration_ms", duration_ms, "protocol",
                                 protocol));
}

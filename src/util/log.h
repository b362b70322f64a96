/* Structured logging: one JSON object per line. Never log patient data: resource ids only. */
#ifndef UTIL_LOG_H
#define UTIL_LOG_H

typedef enum { UTIL_LOG_ERROR, UTIL_LOG_WARN, UTIL_LOG_INFO, UTIL_LOG_DEBUG } util_log_level_t;

/** Sets the threshold from a name (error|warn|info|debug). Returns -1 for an unknown name. */
int util_log_set_level(const char *name);
/** Writes {"ts":..,"level":..,"module":..,"msg":..} to stderr. */
void util_log(util_log_level_t level, const char *module, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Writes one access-log line to stdout. */
void util_log_access(const char *request_id, const char *method, const char *path, int status, double duration_ms, const char *protocol);

#define LOG_ERROR(...) util_log(UTIL_LOG_ERROR, MODULE_NAME, __VA_ARGS__)
#define LOG_WARN(...) util_log(UTIL_LOG_WARN, MODULE_NAME, __VA_ARGS__)
#define LOG_INFO(...) util_log(UTIL_LOG_INFO, MODULE_NAME, __VA_ARGS__)
#define LOG_DEBUG(...) util_log(UTIL_LOG_DEBUG, MODULE_NAME, __VA_ARGS__)

#endif

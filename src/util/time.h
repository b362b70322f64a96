/* Time helpers: FHIR instants and HTTP dates. */
#ifndef UTIL_TIME_H
#define UTIL_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/** Writes the current UTC time as an ISO 8601 instant with milliseconds. */
void util_time_format_now(char *buf, size_t len);
/** Monotonic milliseconds. */
uint64_t util_time_monotonic_ms(void);
/** Parses a FHIR instant/dateTime with time zone ("2026-01-02T03:04:05.123+01:00" or "...Z") into Unix seconds (fraction dropped). -1 on error or NULL. */
int util_time_parse_instant(const char *text, time_t *out);
/** Days since 1970-01-01 of the proleptic Gregorian date y-m-d (H. Hinnant's days_from_civil; m 1..12; d beyond the
 * month's length runs on). */
int64_t util_days_from_civil(int64_t y, unsigned m, unsigned d);
/** The proleptic Gregorian date of a day count since 1970-01-01 (the inverse of util_days_from_civil). */
void util_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
/** Formats Unix seconds as an HTTP-date (RFC 7231), e.g. "Sun, 06 Nov 1994 08:49:37 GMT". */
void util_time_format_http(time_t t, char *buf, size_t len);
/** Parses an HTTP-date (IMF-fixdate). -1 on error. */
int util_time_parse_http(const char *text, size_t len, time_t *out);

#endif

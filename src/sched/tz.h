/*
 * IANA time zones read from the system's TZif files, and proleptic Gregorian date arithmetic.
 *
 * Nothing here touches the process TZ variable, localtime() or mktime(): a loaded zone is an immutable value, so every
 * function may be called from any thread. Loaded zones are shared through a small process-wide cache.
 */
#ifndef SCHED_TZ_H
#define SCHED_TZ_H

#include <stddef.h>
#include <stdint.h>
#include "util/time.h" /* util_days_from_civil and util_civil_from_days */

/** First instant the scheduler accepts: 0001-01-01T00:00:00Z (the lower bound of a FHIR instant). */
#define SCHED_TIME_MIN INT64_C(-62135596800)
/** Last instant the scheduler accepts, exclusive end of FHIR's range: 10000-01-01T00:00:00Z. */
#define SCHED_TIME_MAX INT64_C(253402300800)
/** Directory the zones are read from. */
#define SCHED_TZ_DIR "/usr/share/zoneinfo"
/** Longest zone name accepted ("America/Argentina/ComodRivadavia" is 32). */
#define SCHED_TZ_NAME_MAX 128

/** A loaded time zone: immutable, reference counted, safe to share between threads. */
typedef struct st_sched_tz_t sched_tz_t;

/** How a local wall-clock time maps onto UTC. */
typedef enum {
    SCHED_TZ_LOCAL_UNIQUE,  /* exactly one instant shows this wall time */
    SCHED_TZ_LOCAL_GAP,     /* skipped by a forward change (02:30 on a spring-forward day) */
    SCHED_TZ_LOCAL_OVERLAP, /* shown twice by a backward change (01:30 on a fall-back day) */
} sched_tz_local_kind_t;

/** Every reading of one local wall time; see sched_tz_local_resolve. */
typedef struct st_sched_tz_local_t {
    sched_tz_local_kind_t kind;
    int64_t earlier; /* UNIQUE: the instant; OVERLAP: the first of the two; GAP: the instant the gap ends (the change) */
    int64_t later;   /* UNIQUE: the instant; OVERLAP: the second of the two; GAP: the wall time read with the offset in
                        force before the gap, i.e. shifted forward by the gap's length (02:30 -> 03:30) */
} sched_tz_local_t;

/**
 * Loads the zone `name` ("Europe/Berlin", "UTC") from SCHED_TZ_DIR. The name must be a relative path of letters, digits
 * and "_+-." without empty, "." or ".." components, and must resolve to a regular file inside SCHED_TZ_DIR (symbolic
 * links leading elsewhere are refused, as is "localtime", the host's own setting). Zones with leap-second records ("right/...") are
 * refused: FHIR instants are POSIX time. Repeated loads of one name share one copy. Returns NULL and writes a message to `err` (if
 * non-NULL) on failure. Release with sched_tz_destroy.
 */
sched_tz_t *sched_tz_load(const char *name, char *err, size_t errlen);
/**
 * Parses TZif data (RFC 8536, versions 1 to 4) held in memory and names the result `name`. Uses the 64-bit section and
 * the footer TZ string when the version has them. Not cached. Returns NULL and writes a message to `err` on failure.
 */
sched_tz_t *sched_tz_parse(const char *name, const uint8_t *data, size_t len, char *err, size_t errlen);
/** Drops a reference taken by sched_tz_load or sched_tz_parse (or sched_tz_retain). NULL is ignored. */
void sched_tz_destroy(sched_tz_t *tz);
/** Takes another reference to `tz` and returns it, for a caller that keeps the zone beyond its lender's lifetime. */
sched_tz_t *sched_tz_retain(sched_tz_t *tz);
/** Empties the zone cache (zones still referenced stay alive until destroyed). For shutdown and tests. */
void sched_tz_cache_clear(void);
/** The name the zone was loaded under. */
const char *sched_tz_name(const sched_tz_t *tz);
/** UTC offset in seconds east of Greenwich at the instant `utc` (Unix seconds); e.g. -18000 for New York in winter. */
int64_t sched_tz_offset_at_utc(const sched_tz_t *tz, int64_t utc);
/** Local wall-clock seconds (seconds since 1970-01-01T00:00 on the local calendar) at the instant `utc`. */
int64_t sched_tz_utc_to_local(const sched_tz_t *tz, int64_t utc);
/**
 * Classifies the local wall time `local` (seconds since 1970-01-01T00:00 local) and gives the instants it can mean.
 * Returns -1 when `local` lies outside [SCHED_TIME_MIN, SCHED_TIME_MAX].
 */
int sched_tz_local_resolve(const sched_tz_t *tz, int64_t local, sched_tz_local_t *out);
/**
 * Converts local wall-clock seconds to UTC. An ambiguous time (fall-back overlap) gives the earlier instant; a time that
 * does not exist (spring-forward gap) is moved forward by the length of the gap, so 02:30 on 2026-03-08 in New York
 * gives 03:30 EDT. Returns -1 when `local` is out of range, 0 otherwise.
 */
int sched_tz_local_to_utc(const sched_tz_t *tz, int64_t local, int64_t *utc);
/**
 * Finds the first instant after `utc` at which the zone's UTC offset changes (changes of abbreviation or DST flag alone
 * are skipped), using the transition table and then the footer rule. Returns -1 when the offset never changes again.
 */
int sched_tz_next_transition(const sched_tz_t *tz, int64_t utc, int64_t *next);

/** Day of the week of `days` since 1970-01-01: 0 = Monday ... 6 = Sunday (FHIR's mon..sun order). */
unsigned sched_civil_weekday(int64_t days);
/** Number of days in month m (1..12) of year y. */
unsigned sched_civil_days_in_month(int64_t y, unsigned m);
/** Floor division of seconds into days (correct for negative values, unlike `/`). */
int64_t sched_civil_day_of(int64_t seconds);

#endif

/*
 * Availability maths: sets of half-open UTC intervals [start, end) in Unix seconds, weekly rules expanded in a time zone,
 * and candidate start times. Pure functions over plain structures: no database, no FHIR; a caller maps
 * PractitionerRole.availableTime, Location.hoursOfOperation, notAvailable, Slots and busy rows onto them.
 */
#ifndef SCHED_AVAILABILITY_H
#define SCHED_AVAILABILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sched/tz.h"

/** Day-of-week bits of sched_avail_rule_t.days, in FHIR's mon..sun order (bit n is sched_civil_weekday() == n). */
#define SCHED_DAY_MON (1u << 0)
#define SCHED_DAY_TUE (1u << 1)
#define SCHED_DAY_WED (1u << 2)
#define SCHED_DAY_THU (1u << 3)
#define SCHED_DAY_FRI (1u << 4)
#define SCHED_DAY_SAT (1u << 5)
#define SCHED_DAY_SUN (1u << 6)
#define SCHED_DAY_ALL 0x7fu
/** Longest window sched_avail_rules_expand accepts (two years), which bounds its work to days x rules intervals. */
#define SCHED_AVAIL_MAX_DAYS 731
/** Longest appointment sched_avail_find_starts accepts. */
#define SCHED_AVAIL_MAX_DURATION (7 * 86400)
/** Longest buffer (before or after) accepted anywhere. */
#define SCHED_AVAIL_MAX_BUFFER 86400

/** One half-open interval [start, end) of UTC seconds. */
typedef struct st_sched_interval_t {
    int64_t start;
    int64_t end;
} sched_interval_t;

/** A set of instants kept as sorted, disjoint, non-adjacent, non-empty intervals (adjacent ones are merged). */
typedef struct st_sched_avail_set_t {
    sched_interval_t *items;
    size_t count;
    size_t _capacity;
} sched_avail_set_t;

/**
 * A weekly rule as FHIR's availableTime / hoursOfOperation: on the days in `days`, from `start` to `end` local wall
 * time (seconds after local midnight). `end` <= `start` means the period ends on the next day at `end` (so start == end
 * is a 24-hour period); `end` may be 86400 for "until midnight". `all_day` ignores start/end and takes the whole local
 * day, 23 or 25 hours on a DST change day.
 */
typedef struct st_sched_avail_rule_t {
    unsigned days; /* SCHED_DAY_* bits; 0 = no day */
    bool all_day;
    int32_t start; /* 0 .. 86399 */
    int32_t end;   /* 0 .. 86400 */
} sched_avail_rule_t;

/** What a candidate start must satisfy; see sched_avail_find_starts. All durations are seconds. */
typedef struct st_sched_avail_query_t {
    int64_t duration;      /* length of the appointment, 1 .. SCHED_AVAIL_MAX_DURATION */
    int64_t buffer_before; /* free time needed before the start, 0 .. SCHED_AVAIL_MAX_BUFFER */
    int64_t buffer_after;  /* free time needed after the end, 0 .. SCHED_AVAIL_MAX_BUFFER */
    int align_minutes;     /* starts fall on multiples of this many minutes after local midnight, 1 .. 1440 */
    int64_t now;           /* the current instant */
    int64_t min_notice;    /* earliest start is now + min_notice (>= 0) */
    int64_t max_horizon;   /* latest start is now + max_horizon (>= 0; INT64_MAX for none) */
} sched_avail_query_t;

/** Initialises an empty set. */
void sched_avail_set_init(sched_avail_set_t *set);
/** Frees the set's memory; it may be reused after sched_avail_set_init. */
void sched_avail_set_dispose(sched_avail_set_t *set);
/** Empties the set, keeping its memory. */
void sched_avail_set_clear(sched_avail_set_t *set);
/** Makes `dst` a copy of `src`. */
void sched_avail_set_copy(sched_avail_set_t *dst, const sched_avail_set_t *src);
/**
 * Adds [start, end), merging with what overlaps or touches it. Bounds are clamped to [SCHED_TIME_MIN, SCHED_TIME_MAX],
 * so open-ended periods may use INT64_MIN / INT64_MAX. An empty interval changes nothing. Returns -1 if start > end.
 */
int sched_avail_set_add(sched_avail_set_t *set, int64_t start, int64_t end);
/** out = a ∪ b. `out` may be `a` or `b`. */
void sched_avail_set_union(sched_avail_set_t *out, const sched_avail_set_t *a, const sched_avail_set_t *b);
/** out = a ∩ b. `out` may be `a` or `b`. */
void sched_avail_set_intersect(sched_avail_set_t *out, const sched_avail_set_t *a, const sched_avail_set_t *b);
/** out = a \ b. `out` may be `a` or `b`. */
void sched_avail_set_subtract(sched_avail_set_t *out, const sched_avail_set_t *a, const sched_avail_set_t *b);
/** Keeps only the part of `set` inside [start, end); start >= end empties it. */
void sched_avail_set_clip(sched_avail_set_t *set, int64_t start, int64_t end);
/** True when [start, end) (non-empty) lies wholly inside one interval of the set, e.g. a Slot or a booking request. */
bool sched_avail_set_contains(const sched_avail_set_t *set, int64_t start, int64_t end);
/** Total number of seconds in the set. */
int64_t sched_avail_set_total(const sched_avail_set_t *set);
/**
 * Intersects `n` sets (one per actor of a multi-resource appointment): a time is in `out` only when every actor is free.
 * `out` may be one of the inputs. Returns -1 and empties `out` when n is 0 (no actor is not "always free").
 */
int sched_avail_set_intersect_all(sched_avail_set_t *out, const sched_avail_set_t *const *sets, size_t n);
/**
 * Removes busy periods (appointments, holds, notAvailable, busy Slots) from `set`, each widened by `extend_before`
 * seconds before its start and `extend_after` after its end (0 for leave; the owner's buffers for appointments stored
 * without them). Intervals with end <= start are ignored. Returns -1 if an extension is outside 0..SCHED_AVAIL_MAX_BUFFER.
 */
int sched_avail_set_subtract_busy(sched_avail_set_t *set, const sched_interval_t *busy, size_t n, int64_t extend_before,
                                  int64_t extend_after);
/**
 * Expands weekly rules into `out` (replacing its contents): the union over every rule and every local date of the rule's
 * period, clipped to [from, to). Wall times are kept on DST change days (09:00-17:00 stays 09:00-17:00 local). A period
 * bound that falls in a DST gap moves to the instant the gap ends; one in an overlap takes the earlier instant. A rule
 * starting the day before `from` that runs past midnight is included. Rules with days == 0 add nothing.
 * Returns -1 (and an empty `out`) if from > to, the window is outside [SCHED_TIME_MIN, SCHED_TIME_MAX] or longer than
 * SCHED_AVAIL_MAX_DAYS, or a rule has bits beyond SCHED_DAY_ALL or times out of range; from == to gives an empty set.
 */
int sched_avail_rules_expand(sched_avail_set_t *out, const sched_avail_rule_t *rules, size_t n, const sched_tz_t *tz, int64_t from,
                             int64_t to);
/**
 * Lists candidate start times s, ascending, into starts[0 .. cap-1] and sets *count: [s - buffer_before,
 * s + duration + buffer_after) lies inside one interval of `avail`, s is on the alignment grid of local wall time in
 * `tz` (counted from each local midnight, so a 45-minute grid restarts at 00:00), and now + min_notice <= s <=
 * now + max_horizon. Both readings of a repeated wall time on a fall-back day are offered. Work is bounded by `cap` plus
 * the number of intervals and offset changes crossed. Returns -1 (count 0) on an invalid query, 0 otherwise.
 */
int sched_avail_find_starts(const sched_avail_set_t *avail, const sched_tz_t *tz, const sched_avail_query_t *query, int64_t *starts,
                            size_t cap, size_t *count);

#endif

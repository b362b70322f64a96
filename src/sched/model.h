/*
 * FHIR scheduling resources read for the availability maths: our extensions, Durations, references, codes,
 * availableTime / hoursOfOperation rules, notAvailable periods and FHIR dates in a clinic's time zone.
 * Pure functions over jansson values; no database.
 */
#ifndef SCHED_MODEL_H
#define SCHED_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "sched/availability.h"

/** Canonical base of our StructureDefinitions (extensions). */
#define SCHED_EXT_BASE "http://fhirsched.org/fhir/StructureDefinition/"
/** The time-zone extension on Location (IANA name in valueCode). */
#define SCHED_EXT_TIMEZONE "http://hl7.org/fhir/StructureDefinition/timezone"

/** The first of our extensions named `tail` on a resource (e.g. "buffer-before"), or NULL. */
json_t *sched_ext(const json_t *resource, const char *tail);
/** Seconds of a FHIR Duration/Quantity with UCUM s, min, h or d; -1 when absent or not a time. */
int64_t sched_duration_seconds(const json_t *duration);
/** Our Duration extension `tail` in seconds, or `dflt` when absent or unreadable. */
int64_t sched_ext_seconds(const json_t *resource, const char *tail, int64_t dflt);
/** Sets a Duration extension in whole minutes or seconds; seconds <= 0 removes it (zero buffers are not written). */
void sched_ext_set_duration(json_t *resource, const char *tail, int64_t seconds);
/** Sets our extension `tail` to {"url": ..., <value_key>: value} (value stolen), replacing an existing one. */
void sched_ext_set(json_t *resource, const char *tail, const char *value_key, json_t *value);
/** Removes our extension `tail`. */
void sched_ext_remove(json_t *resource, const char *tail);

/** "Type/id" of a reference string (relative, or absolute ending in Type/id, _history dropped) into buf; NULL if none. */
const char *sched_ref_key(const char *reference, char *buf, size_t len);
/** The "Type/id" a Reference object points to, into buf; NULL if none. */
const char *sched_reference_key(const json_t *reference, char *buf, size_t len);
/** Whether a Reference (or an array of them) points at `key` ("Type/id"). */
bool sched_refers_to(const json_t *refs, const char *key);
/**
 * Whether a CodeableConcept (or an array of them, or a Coding) has a coding matching `system`/`code`; a NULL or empty
 * system matches any system.
 */
bool sched_concept_matches(const json_t *concepts, const char *system, const char *code);
/** Whether any coding of `wanted` (CodeableConcept) matches `concepts` (see sched_concept_matches). */
bool sched_concept_overlaps(const json_t *concepts, const json_t *wanted);

/** "HH:MM[:SS]" as seconds after midnight (24:00:00 is 86400); -1 when malformed. */
int32_t sched_time_of_day(const char *text);
/**
 * Weekly rules from PractitionerRole/HealthcareService.availableTime (hours = false) or Location.hoursOfOperation
 * (hours = true). No daysOfWeek means every day. Returns the number of rules (malloc'd in *out, may be 0), -1 when an
 * entry is malformed.
 */
int sched_rules_read(const json_t *array, bool hours, sched_avail_rule_t **out);
/**
 * A FHIR date/dateTime/instant as Unix seconds. Dates and partial dates are local in `tz`; `upper` gives the end of
 * their precision (the start of the next day/month/year); a dateTime with a time is that instant either way. -1 when malformed.
 */
int sched_fhir_time(const char *text, const sched_tz_t *tz, bool upper, int64_t *out);
/** A Period as [lo, hi) (missing ends are unbounded); -1 when malformed. */
int sched_period_read(const json_t *period, const sched_tz_t *tz, int64_t *lo, int64_t *hi);
/** Adds the `during` periods of notAvailable entries to `set`; -1 when one is malformed. */
int sched_not_available_add(sched_avail_set_t *set, const json_t *not_available, const sched_tz_t *tz);
/** Formats Unix seconds as a FHIR instant in UTC ("2026-01-02T03:04:05Z"). */
void sched_format_instant(int64_t t, char *buf, size_t len);

#endif

/*
 * HL7 v2 messages in ER7 (pipe-and-hat) encoding: a parser that takes its delimiters from MSH-1/MSH-2 and converts the
 * text to UTF-8 (MSH-18), accessors that address a value the way the standard writes it (PID-3[2].4.1), and the
 * writing side (escaping) used for ACKs and outbound messages. Pure code: no I/O, no global state.
 */
#ifndef HL7V2_ER7_H
#define HL7V2_ER7_H

#include <stdbool.h>
#include <stddef.h>
#include "util/str.h"

/** The five delimiters of a message: MSH-1 and the characters of MSH-2 (component, repetition, escape, sub-component). */
typedef struct st_hl7_delims_t {
    char field;        /* '|' */
    char component;    /* '^' */
    char repetition;   /* '~' */
    char escape;       /* '\\' (0 when MSH-2 has none: nothing is unescaped) */
    char subcomponent; /* '&' (0 when MSH-2 has none) */
} hl7_delims_t;

/** The standard delimiters, "|^~\&". */
extern const hl7_delims_t hl7_default_delims;

/** Why a message could not be parsed, as the ERR segment of an AR reports it (HL7 table 0357). */
typedef enum {
    HL7_PARSE_OK = 0,
    HL7_PARSE_SEGMENT_SEQUENCE = 100, /* not an MSH first, or no segments */
    HL7_PARSE_REQUIRED_MISSING = 101, /* MSH-9, MSH-10 or MSH-12 empty */
    HL7_PARSE_DATA_TYPE = 102,        /* bad delimiters, a segment name that is not 3 upper-case letters or digits */
    HL7_PARSE_VERSION = 203,          /* MSH-12 not 2.3 ... 2.8 (2.3.1, 2.5.1 and the like included) */
    HL7_PARSE_CHARSET = 204,          /* MSH-18 names a character set we do not convert, or the bytes are not in it (the ERR
                                         code is 207: table 0357 has none for this) */
    HL7_PARSE_TOO_LARGE = 207,        /* more segments, fields or bytes than the limits below */
} hl7_parse_error_t;

/* Limits that keep a hostile message from costing much (a message is at most hl7.max_message_bytes anyway). */
#define HL7_MAX_SEGMENTS 5000
#define HL7_MAX_FIELDS 1000 /* per segment */

/** A parsed message. Opaque; every string it hands out lives as long as the message. */
typedef struct st_hl7_msg_t hl7_msg_t;

/**
 * Parses one message (without MLLP framing). Segments may end in "\r", "\n" or "\r\n"; empty lines are skipped. The text
 * is converted to UTF-8 according to MSH-18 (empty or "ASCII": bytes above 0x7F are taken as ISO 8859-1 unless the whole
 * message is valid UTF-8; "8859/1": ISO 8859-1; "UNICODE UTF-8": must be valid UTF-8). Returns NULL with *error set and a
 * human-readable reason in `why` when the message cannot be read; even then `hl7_peek_control_id` may find what an AR
 * needs.
 */
hl7_msg_t *hl7_parse(const char *data, size_t len, hl7_parse_error_t *error, char *why, size_t whylen);
/** Frees a message and everything it handed out. */
void hl7_free(hl7_msg_t *msg);

/** The delimiters the message uses. */
const hl7_delims_t *hl7_delims(const hl7_msg_t *msg);
/** Number of segments. */
size_t hl7_segment_count(const hl7_msg_t *msg);
/** Name of segment `seg` (0-based), "MSH", "PID", ... */
const char *hl7_segment_name(const hl7_msg_t *msg, size_t seg);
/** Index of the first segment named `name` at or after `from`, or -1. */
long hl7_find(const hl7_msg_t *msg, const char *name, size_t from);

/**
 * The value at segment `seg`, field `field`, repetition `rep`, component `comp`, sub-component `sub`, unescaped (HL7
 * numbering: all 1-based; in MSH, field 1 is the field separator and field 2 the encoding characters, as in the standard).
 * Escapes: \F\ \S\ \T\ \R\ \E\ give the delimiters, \Xhh...\ the bytes (in the message's character set), \.br\ a line
 * break; highlighting (\H\ \N\) and other formatting escapes are dropped. Returns NULL when the value is absent or empty;
 * the explicit null "" comes back as the two characters "\"\"".
 */
const char *hl7_get(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep, unsigned comp, unsigned sub);
/** hl7_get(msg, seg, field, 1, comp, 1): the first repetition's component. */
const char *hl7_val(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned comp);
/** Number of repetitions of a field (0 when empty). */
unsigned hl7_repetitions(const hl7_msg_t *msg, size_t seg, unsigned field);
/** Number of components in one repetition of a field (0 when empty). */
unsigned hl7_components(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep);
/** The whole field (all repetitions, components and sub-components) as received, still escaped; NULL when empty. */
const char *hl7_raw_field(const hl7_msg_t *msg, size_t seg, unsigned field);

/** Header shortcuts (NULL when empty): MSH-3.1, MSH-4.1, MSH-9.1, MSH-9.2, MSH-10, MSH-12.1. */
const char *hl7_sending_application(const hl7_msg_t *msg);
const char *hl7_sending_facility(const hl7_msg_t *msg);
const char *hl7_message_code(const hl7_msg_t *msg);
const char *hl7_trigger_event(const hl7_msg_t *msg);
const char *hl7_control_id(const hl7_msg_t *msg);
const char *hl7_version(const hl7_msg_t *msg);

/**
 * Best effort on bytes that did not parse: the MSH delimiters and MSH-3.1, MSH-4.1, MSH-10 and MSH-12.1 of the first
 * line, copied into the caller's buffers (each `fieldlen` bytes; "" when not found), raw (not unescaped, truncated).
 * Used to address an AR. Returns 0 when the data starts with "MSH" and a delimiter, -1 otherwise.
 */
int hl7_peek_header(const char *data, size_t len, hl7_delims_t *delims, char *app, char *fac, char *control_id,
                    char *version, size_t fieldlen);

/**
 * Best effort, like hl7_peek_header: component `comp` (0: the whole field) of MSH-`field` (3 or more) of the first line,
 * raw, into `out` ("" when absent). 0 when the data starts with an MSH header, -1 otherwise.
 */
int hl7_peek_field(const char *data, size_t len, unsigned field, unsigned comp, char *out, size_t outlen);

/** Appends `text` (UTF-8) escaped for a field value under `d`: delimiters become \F\ \S\ \T\ \R\ \E\, line breaks \.br\,
 * other control characters \Xhh\. */
void hl7_escape(util_buf_t *out, const char *text, const hl7_delims_t *d);

/**
 * An HL7 timestamp (DTM/TS: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]; a TS may carry a second component, ignored) as Unix
 * seconds. Without an offset the time is local to `default_offset_seconds` east of UTC. `*precision` gets the number of
 * digits given before any fraction (4, 6, 8, 10, 12 or 14). 0, or -1 when the text is not a timestamp.
 */
int hl7_parse_dtm(const char *text, int default_offset_seconds, long long *out, int *precision);
/** Formats Unix seconds as YYYYMMDDHHMMSS+0000 (UTC) into `buf` (at least 20 bytes). */
void hl7_format_dtm(long long t, char *buf, size_t len);

#endif

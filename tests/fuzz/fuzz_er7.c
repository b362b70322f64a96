/*
 * libFuzzer target: the ER7 parser (hl7v2/er7.c). Input: one message, as is. Also the header peek used for ARs.
 *
 * A message that parses is walked through every accessor: every segment, field, repetition, component and sub-component
 * (bounded, so one input stays fast). Each value must be non-empty UTF-8 without NUL, and asking again must give the same
 * pointer. Then a message is rebuilt with the same delimiters: MSH-10 is the control id escaped with hl7_escape, and an
 * NTE carries the first values seen, each escaped into a field of its own. It must parse, and give back the same control
 * id and the same values (CRLF comes back as LF; without an escape character delimiters become blanks, so only the
 * control id's presence is checked then). Timestamps that parse must format and parse back to the same instant.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl7v2/er7.h"

#define MAX_KEPT 200 /* values carried into the rebuilt message */

static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        size_t n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0)
            return false;
        for (size_t i = 1; i < n; ++i)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

/* `s` as hl7_parse gives it back after hl7_escape: a CR before a LF is dropped. */
static char *expected(const char *s)
{
    char *e = malloc(strlen(s) + 1), *q = e;
    for (; *s != '\0'; ++s)
        if (!(s[0] == '\r' && s[1] == '\n'))
            *q++ = *s;
    *q = '\0';
    return e;
}

static void check_dtm(const char *v)
{
    long long t, back;
    int precision, p2;
    if (hl7_parse_dtm(v, 0, &t, &precision) != 0)
        return;
    if (precision < 4 || precision > 14 || precision % 2 != 0)
        abort();
    if (t < -62167219200LL || t > 253402300799LL)
        return; /* outside years 0000-9999 after the offset: formatting clamps */
    char buf[32];
    hl7_format_dtm(t, buf, sizeof(buf));
    if (strlen(buf) != 19 || hl7_parse_dtm(buf, 0, &back, &p2) != 0 || back != t || p2 != 14)
        abort();
}

static void rebuild(const hl7_msg_t *m, const char *const *kept, size_t nkept)
{
    const hl7_delims_t *d = hl7_delims(m);
    const char *control = hl7_control_id(m);
    char f = d->field;
    util_buf_t b;
    util_buf_init(&b);
    util_buf_printf(&b, "MSH%c%c%c", f, d->component, d->repetition);
    if (d->escape != 0)
        util_buf_append(&b, &d->escape, 1);
    if (d->subcomponent != 0)
        util_buf_append(&b, &d->subcomponent, 1);
    util_buf_printf(&b, "%cA%cB%c%c%c20260101%c%cADT%cA04%c", f, f, f, f, f, f, f, d->component, f);
    hl7_escape(&b, control, d);
    /* the version and the character set escaped too: '.', '-' or ' ' may be delimiters */
    util_buf_printf(&b, "%cP%c", f, f);
    hl7_escape(&b, "2.5.1", d);
    util_buf_printf(&b, "%c%c%c%c%c%c", f, f, f, f, f, f);
    /* Without an escape character a delimiter among the name's characters ('-' or ' ') cannot be written, and the name
     * would arrive as an unknown character set: leave MSH-18 empty then, which reads every kept value alike (they are
     * valid UTF-8, which is what an empty MSH-18 is taken to be). */
    const char *charset = "UNICODE UTF-8";
    const char delims[] = {d->field, d->component, d->repetition, d->subcomponent, '\0'};
    if (d->escape != 0 || strpbrk(charset, delims) == NULL)
        hl7_escape(&b, charset, d);
    util_buf_puts(&b, "\rNTE");
    for (size_t i = 0; i != nkept; ++i) {
        util_buf_append(&b, &f, 1);
        hl7_escape(&b, kept[i], d);
    }
    util_buf_puts(&b, "\r");
    hl7_parse_error_t perr;
    char why[256];
    hl7_msg_t *r = hl7_parse(b.base, b.len, &perr, why, sizeof(why));
    if (r == NULL)
        abort(); /* what we write must always read back */
    const char *c = hl7_control_id(r);
    if (c == NULL)
        abort();
    if (d->escape != 0) {
        char *want = expected(control);
        if (strcmp(c, want) != 0)
            abort();
        free(want);
        for (size_t i = 0; i != nkept; ++i) {
            const char *v = hl7_get(r, 1, (unsigned)i + 1, 1, 1, 1);
            want = expected(kept[i]);
            if (want[0] == '\0' ? v != NULL : v == NULL || strcmp(v, want) != 0)
                abort();
            if (hl7_repetitions(r, 1, (unsigned)i + 1) > 1 || hl7_components(r, 1, (unsigned)i + 1, 1) > 1)
                abort();
            free(want);
        }
    }
    hl7_free(r);
    util_buf_dispose(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hl7_delims_t pd;
    char app[64], fac[64], ctrl[64], ver[64];
    int peeked = hl7_peek_header((const char *)data, size, &pd, app, fac, ctrl, ver, sizeof(app));
    if (strlen(app) >= sizeof(app) || strlen(ctrl) >= sizeof(ctrl))
        abort();

    hl7_parse_error_t perr = HL7_PARSE_OK;
    char why[256];
    hl7_msg_t *m = hl7_parse((const char *)data, size, &perr, why, sizeof(why));
    if (m == NULL) {
        if (perr == HL7_PARSE_OK || why[0] == '\0')
            abort();
        return 0;
    }
    if (perr != HL7_PARSE_OK || peeked != 0)
        abort(); /* whatever parses, the peek can read */
    if (memcmp(&pd, hl7_delims(m), sizeof(pd)) != 0)
        abort();
    if (hl7_message_code(m) == NULL || hl7_control_id(m) == NULL || hl7_version(m) == NULL)
        abort();
    if (strcmp(hl7_segment_name(m, 0), "MSH") != 0 || hl7_find(m, "MSH", 0) != 0 || hl7_find(m, "MSH", 1) != -1)
        abort();
    hl7_sending_application(m);
    hl7_sending_facility(m);
    hl7_trigger_event(m);

    const char *kept[MAX_KEPT];
    size_t nkept = 0;
    for (size_t s = 0; s < hl7_segment_count(m) && s < 48; ++s) {
        const char *name = hl7_segment_name(m, s);
        if (strlen(name) != 3 || hl7_find(m, name, s) != (long)s)
            abort();
        for (unsigned f = 1; f <= 48; ++f) {
            const char *raw = hl7_raw_field(m, s, f);
            unsigned reps = hl7_repetitions(m, s, f);
            if ((raw == NULL) != (reps == 0))
                abort();
            for (unsigned r = 1; r <= reps + 1 && r <= 6; ++r) {
                unsigned comps = hl7_components(m, s, f, r);
                if (r > reps && comps != 0)
                    abort();
                for (unsigned c = 1; c <= comps + 1 && c <= 12; ++c) {
                    for (unsigned sub = 1; sub <= 3; ++sub) {
                        const char *v = hl7_get(m, s, f, r, c, sub);
                        if (v == NULL)
                            continue;
                        if (v[0] == '\0' || !valid_utf8(v) || hl7_get(m, s, f, r, c, sub) != v)
                            abort();
                        if (c > comps || r > reps)
                            abort(); /* a value where the counts say there is none */
                        if (sub == 1 && c == 1 && r == 1 && strlen(v) < 64)
                            check_dtm(v);
                        if (nkept < MAX_KEPT && !(s == 0 && f <= 2))
                            kept[nkept++] = v;
                    }
                }
            }
        }
    }
    rebuild(m, kept, nkept);
    hl7_free(m);
    return 0;
}

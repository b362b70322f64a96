/*
 * Original-mode acknowledgements. The ACK uses the delimiters of the message it answers and copies its addressing
 * fields as received (still escaped), so the sender can match it however it encodes them.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hl7v2/hl7.h"

const char *hl7_ack_code_name(hl7_ack_code_t code)
{
    return code == HL7_ACK_AA ? "AA" : code == HL7_ACK_AE ? "AE" : "AR";
}

static const char *table0357_text(int code)
{
    switch (code) {
    case 100:
        return "Segment sequence error";
    case 101:
        return "Required field missing";
    case 102:
        return "Data type error";
    case 103:
        return "Table value not found";
    case 200:
        return "Unsupported message type";
    case 201:
        return "Unsupported event code";
    case 202:
        return "Unsupported processing id";
    case 203:
        return "Unsupported version id";
    case 204:
        return "Unknown key identifier";
    case 205:
        return "Duplicate key identifier";
    case 206:
        return "Application record locked";
    default:
        return "Application internal error";
    }
}

/* v2.5 moved the error into ERR-2..8; earlier versions have ERR-1 (and MSA-3 for the text). */
static bool modern_err(const char *version)
{
    int major = 0, minor = 0;
    return version != NULL && sscanf(version, "%d.%d", &major, &minor) == 2 && (major > 2 || (major == 2 && minor >= 5));
}

/* "2.2", "3.0": digits separated by single dots, none of them a delimiter of the message. */
static bool plausible_version(const char *v, const hl7_delims_t *d)
{
    if (!isdigit((unsigned char)v[0]) || strchr((char[]){d->component, d->repetition, d->escape, d->subcomponent, 0}, '.') != NULL)
        return false;
    for (const char *c = v; *c != '\0'; ++c)
        if (!isdigit((unsigned char)*c) && !(*c == '.' && isdigit((unsigned char)c[1])))
            return false;
    return true;
}

static void put_field(util_buf_t *out, char sep, const char *raw)
{
    util_buf_append(out, &sep, 1);
    if (raw != NULL)
        util_buf_puts(out, raw);
}

static void put_text(util_buf_t *out, char sep, const char *text, const hl7_delims_t *d)
{
    util_buf_append(out, &sep, 1);
    if (text != NULL)
        hl7_escape(out, text, d);
}

/* "SCH^1^11" written with the message's component separator. */
static void put_location(util_buf_t *out, const char *where, const hl7_delims_t *d)
{
    for (const char *c = where; *c != '\0'; ++c) {
        char ch = *c == '^' ? d->component : *c;
        util_buf_append(out, &ch, 1);
    }
}

char *hl7_ack_build(const hl7_msg_t *msg, const char *raw, size_t rawlen, hl7_ack_code_t code, const hl7_issue_t *issues,
                    size_t nissues, const char *our_application, const char *our_facility, const char *control_id)
{
    hl7_delims_t d = hl7_default_delims;
    char app[128] = "", fac[128] = "", ctrl[128] = "", version[128] = "";
    char peek_our_app[128], peek_our_fac[128], peek_event[16], peek_processing[16], peek_charset[64];
    const char *their_app, *their_fac, *our_app, *our_fac, *their_ctrl, *ver, *processing = NULL, *charset = NULL, *event = NULL;
    if (msg != NULL) {
        d = *hl7_delims(msg);
        their_app = hl7_raw_field(msg, 0, 3);
        their_fac = hl7_raw_field(msg, 0, 4);
        our_app = hl7_raw_field(msg, 0, 5);
        our_fac = hl7_raw_field(msg, 0, 6);
        their_ctrl = hl7_raw_field(msg, 0, 10);
        processing = hl7_raw_field(msg, 0, 11);
        ver = hl7_raw_field(msg, 0, 12);
        charset = hl7_raw_field(msg, 0, 18);
        event = hl7_trigger_event(msg);
    } else {
        if (hl7_peek_header(raw, rawlen, &d, app, fac, ctrl, version, sizeof(app)) != 0)
            d = hl7_default_delims;
        /* addressed as well as the first line allows: the sender's fields whole, its event and character set */
        hl7_peek_field(raw, rawlen, 3, 0, app, sizeof(app));
        hl7_peek_field(raw, rawlen, 4, 0, fac, sizeof(fac));
        hl7_peek_field(raw, rawlen, 5, 0, peek_our_app, sizeof(peek_our_app));
        hl7_peek_field(raw, rawlen, 6, 0, peek_our_fac, sizeof(peek_our_fac));
        hl7_peek_field(raw, rawlen, 9, 2, peek_event, sizeof(peek_event));
        hl7_peek_field(raw, rawlen, 11, 0, peek_processing, sizeof(peek_processing));
        hl7_peek_field(raw, rawlen, 18, 0, peek_charset, sizeof(peek_charset));
        their_app = app;
        their_fac = fac;
        our_app = peek_our_app[0] != '\0' ? peek_our_app : NULL;
        our_fac = peek_our_fac[0] != '\0' ? peek_our_fac : NULL;
        their_ctrl = ctrl;
        /* a version that is no version (the line was garbled) is not echoed */
        ver = plausible_version(version, &d) ? version : NULL;
        event = peek_event[0] != '\0' ? peek_event : NULL;
        processing = peek_processing[0] != '\0' ? peek_processing : NULL;
        charset = peek_charset[0] != '\0' ? peek_charset : NULL;
    }
    util_buf_t out;
    util_buf_init(&out);
    char sep = d.field, comp = d.component;
    util_buf_printf(&out, "MSH%c%c%c", sep, d.component, d.repetition);
    if (d.escape != 0)
        util_buf_append(&out, &d.escape, 1);
    if (d.subcomponent != 0)
        util_buf_append(&out, &d.subcomponent, 1);
    if (our_app != NULL)
        put_field(&out, sep, our_app);
    else
        put_text(&out, sep, our_application, &d);
    if (our_fac != NULL)
        put_field(&out, sep, our_fac);
    else
        put_text(&out, sep, our_facility, &d);
    put_field(&out, sep, their_app);
    put_field(&out, sep, their_fac);
    char now[32];
    hl7_format_dtm((long long)time(NULL), now, sizeof(now));
    put_text(&out, sep, now, &d); /* "+0000" when '+' is a delimiter */
    put_field(&out, sep, NULL);
    util_buf_printf(&out, "%cACK", sep);
    if (event != NULL) {
        util_buf_append(&out, &comp, 1);
        hl7_escape(&out, event, &d);
        util_buf_printf(&out, "%cACK", comp);
    }
    put_text(&out, sep, control_id, &d);
    put_field(&out, sep, processing != NULL ? processing : "P");
    /* An AR for an unsupported version still answers in the version asked for; that is what the sender reads. */
    put_field(&out, sep, ver != NULL ? ver : "2.5.1");
    if (charset != NULL) {
        for (int i = 13; i <= 17; ++i)
            put_field(&out, sep, NULL);
        put_field(&out, sep, charset);
    }
    util_buf_puts(&out, "\r");

    bool modern = modern_err(ver != NULL ? ver : "2.5.1");
    util_buf_printf(&out, "MSA%c%s", sep, hl7_ack_code_name(code));
    put_field(&out, sep, their_ctrl);
    if (!modern && nissues != 0 && !issues[0].warning)
        put_text(&out, sep, issues[0].text, &d);
    util_buf_puts(&out, "\r");

    for (size_t i = 0; i != nissues; ++i) {
        const hl7_issue_t *is = &issues[i];
        if (is->warning && !modern)
            continue; /* ERR-4 severity came with v2.5: older receivers would read a warning as an error */
        util_buf_printf(&out, "ERR%c", sep);
        if (!modern) {
            /* ERR-1 (ELD): segment^sequence^field^code&text&HL70357 */
            put_location(&out, is->where, &d);
            int comps = 0;
            for (const char *c = is->where; *c != '\0'; ++c)
                comps += *c == '^';
            for (; comps < 3; ++comps)
                util_buf_append(&out, &comp, 1);
            char sub = d.subcomponent != 0 ? d.subcomponent : comp;
            util_buf_printf(&out, "%d%c", is->code, sub);
            hl7_escape(&out, table0357_text(is->code), &d);
            util_buf_printf(&out, "%cHL70357\r", sub);
            continue;
        }
        /* ERR-1 empty, ERR-2 location, ERR-3 code^text^HL70357, ERR-4 severity, ERR-8 user message */
        util_buf_append(&out, &sep, 1);
        put_location(&out, is->where, &d);
        util_buf_printf(&out, "%c%d%c", sep, is->code, comp);
        hl7_escape(&out, table0357_text(is->code), &d);
        util_buf_printf(&out, "%cHL70357%c%c", comp, sep, is->warning ? 'W' : 'E');
        for (int f = 5; f <= 7; ++f)
            put_field(&out, sep, NULL);
        put_text(&out, sep, is->text, &d);
        util_buf_puts(&out, "\r");
    }
    return out.base;
}

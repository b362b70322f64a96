/*
 * ER7 parsing. The message is converted to UTF-8 once and split into segments; fields, repetitions, components and
 * sub-components are found on demand by scanning the segment (messages are a few KB), and unescaped values are kept in
 * a per-message arena so callers never free them.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "hl7v2/er7.h"

const hl7_delims_t hl7_default_delims = {'|', '^', '~', '\\', '&'};

typedef struct st_hl7_arena_t {
    struct st_hl7_arena_t *next;
    char data[];
} hl7_arena_t;

typedef struct st_hl7_seg_t {
    size_t off, len;
    char name[4];
} hl7_seg_t;

struct st_hl7_msg_t {
    char *text; /* UTF-8, NUL-terminated */
    size_t len;
    hl7_delims_t d;
    bool latin1; /* \Xhh\ bytes are ISO 8859-1 */
    hl7_seg_t *segs;
    size_t nseg;
    hl7_arena_t *arena;
};

typedef struct st_span_t {
    const char *p;
    size_t len;
} span_t;

static char *arena_strndup(hl7_msg_t *m, const char *s, size_t len)
{
    hl7_arena_t *a = malloc(sizeof(*a) + len + 1);
    if (a == NULL)
        abort();
    memcpy(a->data, s, len);
    a->data[len] = '\0';
    a->next = m->arena;
    m->arena = a;
    return a->data;
}

static void fail(hl7_parse_error_t *error, hl7_parse_error_t code, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void fail(hl7_parse_error_t *error, hl7_parse_error_t code, char *why, size_t whylen, const char *fmt, ...)
{
    *error = code;
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, whylen, fmt, args);
    va_end(args);
}

/* ---- character sets ---- */

/* Length of the valid UTF-8 sequence at p (no overlongs, no surrogates, at most U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || n > avail)
        return 0;
    for (size_t i = 1; i < n; ++i)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    uint32_t cp = n == 2 ? (uint32_t)(c & 0x1F) << 6 | (p[1] & 0x3F)
                  : n == 3 ? (uint32_t)(c & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F)
                           : (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static bool valid_utf8(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq((const unsigned char *)s + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static void put_latin1(util_buf_t *out, unsigned char c)
{
    if (c < 0x80) {
        util_buf_append(out, (const char *)&c, 1);
    } else {
        char two[2] = {(char)(0xC0 | (c >> 6)), (char)(0x80 | (c & 0x3F))};
        util_buf_append(out, two, 2);
    }
}

/* ---- splitting ---- */

/* The n-th (0-based) piece of `s` split at `sep`; false when there are fewer pieces. */
static bool piece(span_t s, char sep, size_t n, span_t *out)
{
    const char *p = s.p, *end = s.p + s.len;
    for (size_t i = 0; i < n; ++i) {
        const char *q = sep != 0 ? memchr(p, sep, (size_t)(end - p)) : NULL;
        if (q == NULL)
            return false;
        p = q + 1;
    }
    const char *q = sep != 0 ? memchr(p, sep, (size_t)(end - p)) : NULL;
    out->p = p;
    out->len = (size_t)((q != NULL ? q : end) - p);
    return true;
}

static size_t count_pieces(span_t s, char sep)
{
    if (s.len == 0)
        return 0;
    size_t n = 1;
    for (size_t i = 0; sep != 0 && i != s.len; ++i)
        n += s.p[i] == sep;
    return n;
}

static bool is_msh(const hl7_msg_t *m, size_t seg)
{
    return strcmp(m->segs[seg].name, "MSH") == 0;
}

/* The raw span of a field; MSH-1 is not in the text as a field and MSH-2 must not be split further. */
static bool field_span(const hl7_msg_t *m, size_t seg, unsigned field, span_t *out)
{
    if (seg >= m->nseg || field == 0)
        return false;
    span_t s = {m->text + m->segs[seg].off, m->segs[seg].len};
    if (is_msh(m, seg)) {
        if (field == 1)
            return false;
        return piece(s, m->d.field, field - 1, out);
    }
    return piece(s, m->d.field, field, out);
}

/* ---- escapes ---- */

static void put_hex_bytes(const hl7_msg_t *m, util_buf_t *out, const char *hex, size_t len)
{
    unsigned char bytes[256];
    size_t n = 0;
    for (size_t i = 0; i + 1 < len && n < sizeof(bytes); i += 2) { /* an odd last digit is ignored */
        char h[3] = {hex[i], hex[i + 1], 0};
        bytes[n++] = (unsigned char)strtol(h, NULL, 16);
    }
    if (m->latin1) {
        for (size_t i = 0; i != n; ++i)
            if (bytes[i] != 0)
                put_latin1(out, bytes[i]);
        return;
    }
    for (size_t i = 0; i < n;) {
        size_t k = bytes[i] != 0 ? utf8_seq(bytes + i, n - i) : 0;
        if (k == 0) {
            if (bytes[i] != 0)
                util_buf_puts(out, "\xEF\xBF\xBD"); /* U+FFFD */
            ++i;
            continue;
        }
        util_buf_append(out, (const char *)bytes + i, k);
        i += k;
    }
}

static bool all_hex(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return len != 0;
}

static const char *unescape(hl7_msg_t *m, span_t s)
{
    char e = m->d.escape;
    if (e == 0 || memchr(s.p, e, s.len) == NULL)
        return arena_strndup(m, s.p, s.len);
    util_buf_t out;
    util_buf_init(&out);
    const char *p = s.p, *end = s.p + s.len;
    while (p < end) {
        const char *q = memchr(p, e, (size_t)(end - p));
        if (q == NULL) {
            util_buf_append(&out, p, (size_t)(end - p));
            break;
        }
        util_buf_append(&out, p, (size_t)(q - p));
        const char *close = memchr(q + 1, e, (size_t)(end - q - 1));
        if (close == NULL) { /* unterminated: literal */
            util_buf_append(&out, q, (size_t)(end - q));
            break;
        }
        const char *body = q + 1;
        size_t blen = (size_t)(close - body);
        char one = 0;
        if (blen == 1 && (one = body[0] == 'F'   ? m->d.field
                                : body[0] == 'S' ? m->d.component
                                : body[0] == 'T' ? m->d.subcomponent
                                : body[0] == 'R' ? m->d.repetition
                                : body[0] == 'E' ? m->d.escape
                                                 : 0) != 0) {
            util_buf_append(&out, &one, 1);
        } else if (blen == 3 && memcmp(body, ".br", 3) == 0) {
            util_buf_puts(&out, "\n");
        } else if (blen >= 1 && body[0] == 'X' && all_hex(body + 1, blen - 1)) {
            put_hex_bytes(m, &out, body + 1, blen - 1);
        } else if ((blen == 1 && (body[0] == 'H' || body[0] == 'N')) ||
                   (blen >= 1 && (body[0] == 'Z' || body[0] == 'C' || body[0] == 'M')) || (blen >= 2 && body[0] == '.')) {
            /* highlighting and formatting: dropped */
        } else {
            util_buf_append(&out, q, (size_t)(close - q + 1)); /* unknown: literal */
        }
        p = close + 1;
    }
    const char *r = arena_strndup(m, out.base != NULL ? out.base : "", out.len);
    util_buf_dispose(&out);
    return r;
}

/* ---- accessors ---- */

const hl7_delims_t *hl7_delims(const hl7_msg_t *msg)
{
    return &msg->d;
}

size_t hl7_segment_count(const hl7_msg_t *msg)
{
    return msg->nseg;
}

const char *hl7_segment_name(const hl7_msg_t *msg, size_t seg)
{
    return seg < msg->nseg ? msg->segs[seg].name : "";
}

long hl7_find(const hl7_msg_t *msg, const char *name, size_t from)
{
    for (size_t i = from; i < msg->nseg; ++i)
        if (strcmp(msg->segs[i].name, name) == 0)
            return (long)i;
    return -1;
}

const char *hl7_get(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep, unsigned comp, unsigned sub)
{
    hl7_msg_t *m = (hl7_msg_t *)msg; /* the arena grows; the message does not change */
    if (seg >= m->nseg || rep == 0 || comp == 0 || sub == 0)
        return NULL;
    if (is_msh(m, seg) && field <= 2) {
        if (rep != 1 || comp != 1 || sub != 1)
            return NULL;
        if (field == 1)
            return arena_strndup(m, &m->d.field, 1);
        span_t f;
        return field_span(m, seg, 2, &f) && f.len != 0 ? arena_strndup(m, f.p, f.len) : NULL;
    }
    span_t f, r, c, s;
    if (!field_span(m, seg, field, &f) || !piece(f, m->d.repetition, rep - 1, &r) || !piece(r, m->d.component, comp - 1, &c))
        return NULL;
    if (m->d.subcomponent != 0) {
        if (!piece(c, m->d.subcomponent, sub - 1, &s))
            return NULL;
    } else if (sub != 1) {
        return NULL;
    } else {
        s = c;
    }
    if (s.len == 0)
        return NULL;
    const char *v = unescape(m, s);
    return v[0] != '\0' ? v : NULL;
}

const char *hl7_val(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned comp)
{
    return hl7_get(msg, seg, field, 1, comp, 1);
}

unsigned hl7_repetitions(const hl7_msg_t *msg, size_t seg, unsigned field)
{
    span_t f;
    if (is_msh(msg, seg) && field <= 2)
        return field_span(msg, seg, 2, &f) || field == 1 ? 1 : 0;
    return field_span(msg, seg, field, &f) ? (unsigned)count_pieces(f, msg->d.repetition) : 0;
}

unsigned hl7_components(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep)
{
    span_t f, r;
    if (rep == 0 || !field_span(msg, seg, field, &f) || !piece(f, msg->d.repetition, rep - 1, &r))
        return 0;
    return (unsigned)count_pieces(r, msg->d.component);
}

const char *hl7_raw_field(const hl7_msg_t *msg, size_t seg, unsigned field)
{
    span_t f;
    if (!field_span(msg, seg, field, &f) || f.len == 0)
        return NULL;
    return arena_strndup((hl7_msg_t *)msg, f.p, f.len);
}

static const char *first_component(const hl7_msg_t *msg, unsigned field)
{
    return hl7_get(msg, 0, field, 1, 1, 1);
}

const char *hl7_sending_application(const hl7_msg_t *msg)
{
    return first_component(msg, 3);
}

const char *hl7_sending_facility(const hl7_msg_t *msg)
{
    return first_component(msg, 4);
}

const char *hl7_message_code(const hl7_msg_t *msg)
{
    return first_component(msg, 9);
}

const char *hl7_trigger_event(const hl7_msg_t *msg)
{
    return hl7_get(msg, 0, 9, 1, 2, 1);
}

const char *hl7_control_id(const hl7_msg_t *msg)
{
    return first_component(msg, 10);
}

const char *hl7_version(const hl7_msg_t *msg)
{
    return first_component(msg, 12);
}

/* ---- parsing ---- */

void hl7_free(hl7_msg_t *msg)
{
    if (msg == NULL)
        return;
    while (msg->arena != NULL) {
        hl7_arena_t *next = msg->arena->next;
        free(msg->arena);
        msg->arena = next;
    }
    free(msg->segs);
    free(msg->text);
    free(msg);
}

static bool delimiter_ok(char c)
{
    return c > 0x20 && c < 0x7f && !isalnum((unsigned char)c);
}

/* Reads MSH-1 and MSH-2 at the start of `data`. The length of "MSH|^~\&", or 0. */
static size_t read_delims(const char *data, size_t len, hl7_delims_t *d)
{
    if (len < 6 || memcmp(data, "MSH", 3) != 0 || !delimiter_ok(data[3]))
        return 0;
    *d = (hl7_delims_t){.field = data[3]};
    size_t i = 4;
    char enc[5];
    size_t n = 0;
    while (i < len && data[i] != d->field && data[i] != '\r' && data[i] != '\n') {
        if (n == 5 || !delimiter_ok(data[i]))
            return 0;
        enc[n++] = data[i++];
    }
    if (n < 2)
        return 0;
    for (size_t a = 0; a < n; ++a) {
        if (enc[a] == d->field)
            return 0;
        for (size_t b = a + 1; b < n; ++b)
            if (enc[a] == enc[b])
                return 0;
    }
    d->component = enc[0];
    d->repetition = enc[1];
    d->escape = n > 2 ? enc[2] : 0;
    d->subcomponent = n > 3 ? enc[3] : 0;
    return i;
}

/* MSH-18's first component, raw, from the first line (before conversion: the name itself is ASCII). */
static void peek_charset(const char *data, size_t len, const hl7_delims_t *d, char *out, size_t outlen)
{
    out[0] = '\0';
    size_t eol = 0;
    while (eol < len && data[eol] != '\r' && data[eol] != '\n')
        ++eol;
    span_t line = {data, eol}, f;
    if (!piece(line, d->field, 17, &f))
        return;
    span_t r, c;
    piece(f, d->repetition, 0, &r);
    piece(r, d->component, 0, &c);
    while (c.len > 0 && c.p[0] == ' ')
        ++c.p, --c.len;
    while (c.len > 0 && c.p[c.len - 1] == ' ')
        --c.len;
    snprintf(out, outlen, "%.*s", (int)(c.len < outlen ? c.len : outlen - 1), c.p);
}

static bool supported_version(const char *v)
{
    static const char *const ok[] = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"};
    for (size_t i = 0; v != NULL && i != sizeof(ok) / sizeof(ok[0]); ++i)
        if (strcmp(v, ok[i]) == 0)
            return true;
    return false;
}

hl7_msg_t *hl7_parse(const char *data, size_t len, hl7_parse_error_t *error, char *why, size_t whylen)
{
    *error = HL7_PARSE_OK;
    why[0] = '\0';
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) { /* a BOM some editors add */
        data += 3;
        len -= 3;
    }
    hl7_delims_t d;
    if (len < 3 || memcmp(data, "MSH", 3) != 0) {
        fail(error, HL7_PARSE_SEGMENT_SEQUENCE, why, whylen, "the message does not start with an MSH segment");
        return NULL;
    }
    if (read_delims(data, len, &d) == 0) {
        fail(error, HL7_PARSE_DATA_TYPE, why, whylen,
             "MSH-1/MSH-2 do not name usable delimiters (distinct printable punctuation, at least a component and a repetition separator)");
        return NULL;
    }
    if (memchr(data, '\0', len) != NULL) {
        fail(error, HL7_PARSE_DATA_TYPE, why, whylen, "the message contains a NUL byte");
        return NULL;
    }
    char charset[32];
    peek_charset(data, len, &d, charset, sizeof(charset));
    bool latin1 = false;
    if (charset[0] == '\0' || strcasecmp(charset, "ASCII") == 0) {
        latin1 = !valid_utf8(data, len);
    } else if (strcasecmp(charset, "8859/1") == 0) {
        latin1 = true;
    } else if (strcasecmp(charset, "UNICODE UTF-8") == 0 || strcasecmp(charset, "UTF-8") == 0) {
        if (!valid_utf8(data, len)) {
            fail(error, HL7_PARSE_CHARSET, why, whylen, "MSH-18 says UNICODE UTF-8 but the message is not valid UTF-8");
            return NULL;
        }
    } else {
        fail(error, HL7_PARSE_CHARSET, why, whylen, "character set %s (MSH-18) is not supported (ASCII, 8859/1 and UNICODE UTF-8 are)",
             charset);
        return NULL;
    }
    hl7_msg_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        abort();
    m->d = d;
    m->latin1 = latin1;
    util_buf_t text;
    util_buf_init(&text);
    if (latin1) {
        for (size_t i = 0; i != len; ++i)
            put_latin1(&text, (unsigned char)data[i]);
    } else {
        util_buf_append(&text, data, len);
    }
    m->text = text.base;
    m->len = text.len;

    size_t cap = 0;
    for (size_t i = 0; i < m->len;) {
        size_t eol = i;
        while (eol < m->len && m->text[eol] != '\r' && m->text[eol] != '\n')
            ++eol;
        if (eol > i) {
            if (m->nseg == HL7_MAX_SEGMENTS) {
                fail(error, HL7_PARSE_TOO_LARGE, why, whylen, "the message has more than %d segments", HL7_MAX_SEGMENTS);
                goto Error;
            }
            const char *s = m->text + i;
            size_t slen = eol - i;
            bool named = slen >= 3 && (slen == 3 || s[3] == d.field);
            for (size_t k = 0; named && k != 3; ++k)
                named = isupper((unsigned char)s[k]) || isdigit((unsigned char)s[k]);
            if (!named) {
                fail(error, HL7_PARSE_DATA_TYPE, why, whylen, "segment %zu does not start with a segment name (three letters or digits)",
                     m->nseg + 1);
                goto Error;
            }
            size_t fields = 0;
            for (size_t k = 0; k != slen; ++k)
                fields += s[k] == d.field;
            if (fields > HL7_MAX_FIELDS) {
                fail(error, HL7_PARSE_TOO_LARGE, why, whylen, "segment %.3s has more than %d fields", s, HL7_MAX_FIELDS);
                goto Error;
            }
            if (m->nseg == cap) {
                cap = cap == 0 ? 16 : cap * 2;
                m->segs = realloc(m->segs, cap * sizeof(*m->segs));
                if (m->segs == NULL)
                    abort();
            }
            hl7_seg_t *seg = &m->segs[m->nseg++];
            seg->off = i;
            seg->len = slen;
            memcpy(seg->name, s, 3);
            seg->name[3] = '\0';
            if (m->nseg > 1 && strcmp(seg->name, "MSH") == 0) {
                fail(error, HL7_PARSE_SEGMENT_SEQUENCE, why, whylen, "a second MSH segment (batches are not supported)");
                goto Error;
            }
        }
        i = eol + 1;
    }
    if (m->nseg == 0) {
        fail(error, HL7_PARSE_SEGMENT_SEQUENCE, why, whylen, "the message has no segments");
        goto Error;
    }
    if (hl7_message_code(m) == NULL || hl7_control_id(m) == NULL || hl7_version(m) == NULL) {
        fail(error, HL7_PARSE_REQUIRED_MISSING, why, whylen, "MSH-%d (%s) is empty", hl7_message_code(m) == NULL ? 9 : hl7_control_id(m) == NULL ? 10 : 12,
             hl7_message_code(m) == NULL ? "message type" : hl7_control_id(m) == NULL ? "message control id" : "version id");
        goto Error;
    }
    if (!supported_version(hl7_version(m))) {
        fail(error, HL7_PARSE_VERSION, why, whylen, "HL7 version %s (MSH-12) is not supported (2.3 to 2.8 are)", hl7_version(m));
        goto Error;
    }
    return m;
Error:
    hl7_free(m);
    return NULL;
}

int hl7_peek_header(const char *data, size_t len, hl7_delims_t *delims, char *app, char *fac, char *control_id, char *version,
                    size_t fieldlen)
{
    app[0] = fac[0] = control_id[0] = version[0] = '\0';
    if (data == NULL || read_delims(data, len, delims) == 0)
        return -1;
    size_t eol = 0;
    while (eol < len && data[eol] != '\r' && data[eol] != '\n')
        ++eol;
    span_t line = {data, eol}, f;
    struct {
        size_t index;
        char *out;
        bool first_component;
    } wanted[] = {{2, app, true}, {3, fac, true}, {9, control_id, false}, {11, version, true}};
    for (size_t i = 0; i != 4; ++i) {
        if (!piece(line, delims->field, wanted[i].index, &f))
            continue;
        if (wanted[i].first_component)
            piece(f, delims->component, 0, &f);
        size_t n = f.len < fieldlen - 1 ? f.len : fieldlen - 1, k = 0;
        for (size_t j = 0; j != n; ++j)
            if ((unsigned char)f.p[j] >= 0x20 && f.p[j] != 0x7f)
                wanted[i].out[k++] = f.p[j];
        wanted[i].out[k] = '\0';
    }
    return 0;
}

void hl7_escape(util_buf_t *out, const char *text, const hl7_delims_t *d)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; ++p) {
        char c = (char)*p, code = c == d->field ? 'F' : c == d->component ? 'S' : c == d->subcomponent && c != 0 ? 'T' : c == d->repetition ? 'R' : c == d->escape && c != 0 ? 'E' : 0;
        if (code != 0 || *p < 0x20 || *p == 0x7f) {
            if (d->escape == 0) {
                util_buf_puts(out, " "); /* nothing to escape with */
                continue;
            }
            if (code != 0)
                util_buf_printf(out, "%c%c%c", d->escape, code, d->escape);
            else if (c == '\n')
                util_buf_printf(out, "%c.br%c", d->escape, d->escape);
            else
                util_buf_printf(out, "%cX%02X%c", d->escape, *p, d->escape);
            continue;
        }
        util_buf_append(out, &c, 1);
    }
}

/* ---- timestamps ---- */

static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static unsigned days_in_month(long long y, unsigned m)
{
    static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

int hl7_parse_dtm(const char *text, int default_offset_seconds, long long *out, int *precision)
{
    if (text == NULL)
        return -1;
    size_t digits = strspn(text, "0123456789");
    if (digits != 4 && digits != 6 && digits != 8 && digits != 10 && digits != 12 && digits != 14)
        return -1;
    /* year, then month, day, hour, minute, second as far as given; the rest at their minimum */
    unsigned v[6] = {0, 1, 1, 0, 0, 0};
    v[0] = (unsigned)((text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 + (text[3] - '0'));
    for (size_t i = 1, at = 4; at < digits; ++i, at += 2)
        v[i] = (unsigned)((text[at] - '0') * 10 + (text[at + 1] - '0'));
    const char *p = text + digits;
    if (*p == '.') {
        if (digits != 14)
            return -1;
        size_t f = strspn(p + 1, "0123456789");
        if (f < 1 || f > 4)
            return -1;
        p += 1 + f;
    }
    long long offset = default_offset_seconds;
    if (*p == '+' || *p == '-') {
        if (strspn(p + 1, "0123456789") != 4)
            return -1;
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[3] - '0') * 10 + (p[4] - '0');
        if (mm >= 60 || hh > 14)
            return -1;
        offset = (hh * 3600LL + mm * 60LL) * (*p == '-' ? -1 : 1);
        if (offset < -12 * 3600LL || offset > 14 * 3600LL)
            return -1;
        p += 5;
    }
    if (*p != '\0' && *p != '^')
        return -1;
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > days_in_month(v[0], v[1]) || v[3] > 23 || v[4] > 59 || v[5] > 59)
        return -1;
    *out = days_from_civil(v[0], v[1], v[2]) * 86400 + v[3] * 3600LL + v[4] * 60LL + v[5] - offset;
    if (precision != NULL)
        *precision = (int)digits;
    return 0;
}

void hl7_format_dtm(long long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y%m%d%H%M%S+0000", &tm);
}

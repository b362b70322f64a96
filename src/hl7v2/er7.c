/*
 * ER7 parsing. The message is converted to UTF-8 once and split into segments, with the start of every field noted;
 * repetitions, components and sub-components are found on demand by scanning the field, and what an accessor hands out is
 * copied into a per-message arena, once per distinct span, so callers never free anything and calling an accessor in a
 * loop does not make the message grow.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "hl7v2/er7.h"
#include "util/time.h"

const hl7_delims_t hl7_default_delims = {'|', '^', '~', '\\', '&'};

/* How bytes above 0x7F (in the text and in \Xhh\ escapes) are read. */
typedef enum {
    CS_ASCII_UTF8,   /* MSH-18 empty or ASCII, and the message happens to be valid UTF-8 */
    CS_ASCII_LATIN1, /* MSH-18 empty or ASCII, and it is not: ISO 8859-1 */
    CS_LATIN1,       /* 8859/1 */
    CS_UTF8,         /* UNICODE UTF-8: invalid bytes in \Xhh\ become U+FFFD */
} charset_t;

typedef struct st_hl7_chunk_t {
    struct st_hl7_chunk_t *next;
    size_t used, size;
    char data[];
} hl7_chunk_t;

#define CHUNK_SIZE 4096

typedef struct st_hl7_seg_t {
    size_t off, len;
    size_t first, nfields; /* where the field starts are in `fields`, and how many pieces follow the name */
    char name[4];
} hl7_seg_t;

/* A value handed out before: the span it came from and whether it was unescaped. */
typedef struct st_hl7_cached_t {
    size_t off, len; /* len == SIZE_MAX: free slot */
    bool raw;
    const char *value;
} hl7_cached_t;

struct st_hl7_msg_t {
    char *text; /* UTF-8, NUL-terminated */
    size_t len;
    hl7_delims_t d;
    char truncation; /* MSH-2's fifth character (v2.7+), 0 when absent: \P\ gives it back */
    char fs[2];      /* MSH-1 as a string */
    charset_t charset;
    hl7_seg_t *segs;
    size_t nseg;
    size_t *fields; /* offset in `text` of every piece after a segment name, segment after segment */
    size_t nfields;
    hl7_chunk_t *chunks;
    hl7_cached_t *cache;
    size_t cache_cap, cache_used;
};

typedef struct st_span_t {
    const char *p;
    size_t len;
} span_t;

static void set_why(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (why == NULL || whylen == 0)
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, whylen, fmt, args);
    va_end(args);
}

#define FAIL(code, ...)                                                                                                            \
    do {                                                                                                                           \
        *error = (code);                                                                                                           \
        set_why(why, whylen, __VA_ARGS__);                                                                                         \
    } while (0)

/* ---- the arena and the cache ---- */

static char *arena_strndup(hl7_msg_t *m, const char *s, size_t len)
{
    hl7_chunk_t *c = m->chunks;
    if (c == NULL || c->size - c->used < len + 1) {
        size_t size = len + 1 > CHUNK_SIZE ? len + 1 : CHUNK_SIZE;
        c = util_xmalloc(sizeof(*c) + size);
        c->size = size;
        c->used = 0;
        /* a big string gets a chunk of its own behind the current one, which keeps its free room */
        if (size > CHUNK_SIZE && m->chunks != NULL) {
            c->next = m->chunks->next;
            m->chunks->next = c;
        } else {
            c->next = m->chunks;
            m->chunks = c;
        }
    }
    char *r = c->data + c->used;
    memcpy(r, s, len);
    r[len] = '\0';
    c->used += len + 1;
    return r;
}

static size_t cache_slot(const hl7_msg_t *m, size_t off, size_t len, bool raw)
{
    uint64_t h = ((uint64_t)off * 0x9E3779B97F4A7C15u) ^ ((uint64_t)len * 0xC2B2AE3D27D4EB4Fu) ^ (raw ? 1u : 0u);
    size_t i = (size_t)(h ^ (h >> 29)) & (m->cache_cap - 1);
    while (m->cache[i].len != SIZE_MAX && (m->cache[i].off != off || m->cache[i].len != len || m->cache[i].raw != raw))
        i = (i + 1) & (m->cache_cap - 1);
    return i;
}

static const char **cache_find(hl7_msg_t *m, span_t s, bool raw, bool *found)
{
    if (m->cache_used + 1 > m->cache_cap / 2) {
        hl7_cached_t *old = m->cache;
        size_t oldcap = m->cache_cap;
        m->cache_cap = oldcap == 0 ? 64 : oldcap * 2;
        m->cache = util_xmalloc(m->cache_cap * sizeof(*m->cache));
        for (size_t i = 0; i != m->cache_cap; ++i)
            m->cache[i].len = SIZE_MAX;
        for (size_t i = 0; i != oldcap; ++i)
            if (old[i].len != SIZE_MAX)
                m->cache[cache_slot(m, old[i].off, old[i].len, old[i].raw)] = old[i];
        free(old);
    }
    size_t off = (size_t)(s.p - m->text), i = cache_slot(m, off, s.len, raw);
    *found = m->cache[i].len != SIZE_MAX;
    if (!*found) {
        m->cache[i] = (hl7_cached_t){.off = off, .len = s.len, .raw = raw, .value = NULL};
        ++m->cache_used;
    }
    return &m->cache[i].value;
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
                  : n == 3
                      ? (uint32_t)(c & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F)
                      : (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
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

/* The n-th (0-based) piece of `s` split at `sep` (sep 0: `s` is one piece); false when there are fewer pieces. */
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
    return m != NULL && seg < m->nseg && strcmp(m->segs[seg].name, "MSH") == 0;
}

/* The raw span of a field, field >= 1; in MSH, field 1 is the separator itself and not in the text, so MSH-2 is the first
 * piece after the name. */
static bool field_span(const hl7_msg_t *m, size_t seg, unsigned field, span_t *out)
{
    if (m == NULL || seg >= m->nseg || field == 0)
        return false;
    const hl7_seg_t *sg = &m->segs[seg];
    size_t n = is_msh(m, seg) ? field - 1 : field;
    if (n == 0 || n > sg->nfields)
        return false;
    size_t start = m->fields[sg->first + n - 1], end = n < sg->nfields ? m->fields[sg->first + n] - 1 : sg->off + sg->len;
    out->p = m->text + start;
    out->len = end - start;
    return true;
}

/* ---- escapes ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* \Xhh...\: `hex` is hex digits (an odd last one is ignored); the bytes are read in the message's character set. NUL
 * bytes are left out (values are C strings). */
static void put_hex_bytes(const hl7_msg_t *m, util_buf_t *out, const char *hex, size_t len)
{
    util_buf_t bytes;
    util_buf_init(&bytes);
    for (size_t i = 0; i + 1 < len; i += 2) {
        char b = (char)(hexval(hex[i]) << 4 | hexval(hex[i + 1]));
        if (b != 0)
            util_buf_append(&bytes, &b, 1);
    }
    const unsigned char *p = (const unsigned char *)bytes.base;
    size_t n = bytes.len;
    bool latin1 = m->charset == CS_LATIN1 || m->charset == CS_ASCII_LATIN1 ||
                  (m->charset == CS_ASCII_UTF8 && !valid_utf8(bytes.base, n)); /* the same guess as for the whole text */
    for (size_t i = 0; i < n;) {
        if (latin1) {
            put_latin1(out, p[i++]);
            continue;
        }
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0) {
            util_buf_puts(out, "\xEF\xBF\xBD"); /* U+FFFD */
            ++i;
            continue;
        }
        util_buf_append(out, (const char *)p + i, k);
        i += k;
    }
    util_buf_dispose(&bytes);
}

static bool all_hex(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i != len; ++i)
        if (hexval(s[i]) < 0)
            return false;
    return true;
}

/* Appends the unescaped `s`. */
static void unescape(const hl7_msg_t *m, span_t s, util_buf_t *out)
{
    char e = m->d.escape;
    const char *p = s.p, *end = s.p + s.len;
    while (p < end) {
        const char *q = memchr(p, e, (size_t)(end - p));
        if (q == NULL) {
            util_buf_append(out, p, (size_t)(end - p));
            break;
        }
        util_buf_append(out, p, (size_t)(q - p));
        const char *close = memchr(q + 1, e, (size_t)(end - q - 1));
        if (close == NULL) { /* unterminated: literal */
            util_buf_append(out, q, (size_t)(end - q));
            break;
        }
        const char *body = q + 1;
        size_t blen = (size_t)(close - body);
        char one = 0;
        if (blen == 1) {
            switch (body[0]) {
            case 'F':
                one = m->d.field;
                break;
            case 'S':
                one = m->d.component;
                break;
            case 'T':
                one = m->d.subcomponent;
                break;
            case 'R':
                one = m->d.repetition;
                break;
            case 'E':
                one = m->d.escape;
                break;
            case 'P':
                one = m->truncation;
                break;
            }
        }
        if (one != 0) {
            util_buf_append(out, &one, 1);
        } else if (blen == 3 && memcmp(body, ".br", 3) == 0) {
            util_buf_puts(out, "\n");
        } else if (blen >= 1 && body[0] == 'X' && all_hex(body + 1, blen - 1)) {
            put_hex_bytes(m, out, body + 1, blen - 1);
        } else if ((blen == 1 && (body[0] == 'H' || body[0] == 'N')) ||
                   (blen >= 2 && (body[0] == 'Z' || body[0] == 'C' || body[0] == 'M' || body[0] == '.'))) {
            /* highlighting, character set switches, locally defined escapes and formatting: dropped */
        } else {
            /* unknown: kept as written, so nothing the sender meant is lost */
            util_buf_append(out, q, (size_t)(close - q + 1));
        }
        p = close + 1;
    }
}

/* The value of span `s`, unescaped or raw, from the cache or into it; NULL when it is empty. */
static const char *value_of(const hl7_msg_t *msg, span_t s, bool raw)
{
    if (s.len == 0)
        return NULL;
    hl7_msg_t *m = (hl7_msg_t *)msg; /* the arena and the cache grow; what the message says does not change */
    bool found;
    const char **slot = cache_find(m, s, raw, &found);
    if (found)
        return *slot;
    const char *v;
    if (raw || m->d.escape == 0 || memchr(s.p, m->d.escape, s.len) == NULL) {
        v = arena_strndup(m, s.p, s.len);
    } else {
        util_buf_t out;
        util_buf_init(&out);
        unescape(m, s, &out);
        v = out.len != 0 ? arena_strndup(m, out.base, out.len) : NULL;
        util_buf_dispose(&out);
    }
    *slot = v; /* still in place: making the value does not touch the cache */
    return v;
}

/* ---- accessors ---- */

const hl7_delims_t *hl7_delims(const hl7_msg_t *msg)
{
    return msg != NULL ? &msg->d : &hl7_default_delims;
}

size_t hl7_segment_count(const hl7_msg_t *msg)
{
    return msg != NULL ? msg->nseg : 0;
}

const char *hl7_segment_name(const hl7_msg_t *msg, size_t seg)
{
    return msg != NULL && seg < msg->nseg ? msg->segs[seg].name : "";
}

long hl7_find(const hl7_msg_t *msg, const char *name, size_t from)
{
    for (size_t i = from; msg != NULL && name != NULL && i < msg->nseg; ++i)
        if (strcmp(msg->segs[i].name, name) == 0)
            return (long)i;
    return -1;
}

const char *hl7_get(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep, unsigned comp, unsigned sub)
{
    if (msg == NULL || seg >= msg->nseg || rep == 0 || comp == 0 || sub == 0)
        return NULL;
    if (is_msh(msg, seg) && field <= 2) {
        /* MSH-1 and MSH-2 hold the delimiters themselves: never split, never unescaped */
        if (rep != 1 || comp != 1 || sub != 1)
            return NULL;
        return hl7_raw_field(msg, seg, field);
    }
    span_t f, r, c, s;
    if (!field_span(msg, seg, field, &f) || !piece(f, msg->d.repetition, rep - 1, &r) ||
        !piece(r, msg->d.component, comp - 1, &c) || !piece(c, msg->d.subcomponent, sub - 1, &s))
        return NULL;
    return value_of(msg, s, false);
}

const char *hl7_val(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned comp)
{
    return hl7_get(msg, seg, field, 1, comp, 1);
}

unsigned hl7_repetitions(const hl7_msg_t *msg, size_t seg, unsigned field)
{
    span_t f;
    if (is_msh(msg, seg) && (field == 1 || field == 2))
        return hl7_raw_field(msg, seg, field) != NULL ? 1 : 0;
    return field_span(msg, seg, field, &f) ? (unsigned)count_pieces(f, msg->d.repetition) : 0;
}

unsigned hl7_components(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep)
{
    span_t f, r;
    if (rep == 0)
        return 0;
    if (is_msh(msg, seg) && (field == 1 || field == 2))
        return rep == 1 && hl7_raw_field(msg, seg, field) != NULL ? 1 : 0;
    if (!field_span(msg, seg, field, &f) || !piece(f, msg->d.repetition, rep - 1, &r))
        return 0;
    return (unsigned)count_pieces(r, msg->d.component);
}

const char *hl7_raw_field(const hl7_msg_t *msg, size_t seg, unsigned field)
{
    if (is_msh(msg, seg) && field == 1)
        return msg->fs;
    span_t f;
    return field_span(msg, seg, field, &f) ? value_of(msg, f, true) : NULL;
}

const char *hl7_sending_application(const hl7_msg_t *msg)
{
    return hl7_get(msg, 0, 3, 1, 1, 1);
}

const char *hl7_sending_facility(const hl7_msg_t *msg)
{
    return hl7_get(msg, 0, 4, 1, 1, 1);
}

const char *hl7_message_code(const hl7_msg_t *msg)
{
    return hl7_get(msg, 0, 9, 1, 1, 1);
}

const char *hl7_trigger_event(const hl7_msg_t *msg)
{
    return hl7_get(msg, 0, 9, 1, 2, 1);
}

const char *hl7_control_id(const hl7_msg_t *msg)
{
    return hl7_get(msg, 0, 10, 1, 1, 1);
}

const char *hl7_version(const hl7_msg_t *msg)
{
    return hl7_get(msg, 0, 12, 1, 1, 1);
}

/* ---- parsing ---- */

void hl7_free(hl7_msg_t *msg)
{
    if (msg == NULL)
        return;
    while (msg->chunks != NULL) {
        hl7_chunk_t *next = msg->chunks->next;
        free(msg->chunks);
        msg->chunks = next;
    }
    free(msg->cache);
    free(msg->segs);
    free(msg->fields);
    free(msg->text);
    free(msg);
}

static bool delimiter_ok(char c)
{
    return c > 0x20 && c < 0x7f && !isalnum((unsigned char)c);
}

/* A BOM some editors add, and blank lines before the MSH. */
static void skip_leading(const char **data, size_t *len)
{
    if (*len >= 3 && memcmp(*data, "\xEF\xBB\xBF", 3) == 0) {
        *data += 3;
        *len -= 3;
    }
    while (*len > 0 && (**data == '\r' || **data == '\n')) {
        ++*data;
        --*len;
    }
}

/* Reads MSH-1 and MSH-2 at the start of `data` ("MSH|^~\&", perhaps with the v2.7 truncation character as a fifth).
 * Returns the offset just after MSH-2, or 0 when they are not usable delimiters: printable, not alphanumeric, all
 * different, at least a component and a repetition separator. */
static size_t read_delims(const char *data, size_t len, hl7_delims_t *d, char *truncation)
{
    if (len < 6 || memcmp(data, "MSH", 3) != 0 || !delimiter_ok(data[3]))
        return 0;
    char enc[5];
    size_t n = 0, i = 4;
    for (; i < len && data[i] != data[3] && data[i] != '\r' && data[i] != '\n'; ++i) {
        if (n == 5 || !delimiter_ok(data[i]))
            return 0;
        enc[n++] = data[i];
    }
    if (n < 2)
        return 0;
    for (size_t a = 0; a < n; ++a)
        for (size_t b = a + 1; b < n; ++b)
            if (enc[a] == enc[b])
                return 0;
    *d = (hl7_delims_t){.field = data[3],
                        .component = enc[0],
                        .repetition = enc[1],
                        .escape = n > 2 ? enc[2] : 0,
                        .subcomponent = n > 3 ? enc[3] : 0};
    if (truncation != NULL)
        *truncation = n > 4 ? enc[4] : 0;
    return i;
}

/* MSH-18's first repetition, trimmed, from the first line, read before conversion (the names are ASCII). Only the
 * delimiter escapes are undone: a message whose delimiters include '-' or a space can still name UNICODE UTF-8. */
static void peek_charset(const char *data, size_t len, const hl7_delims_t *d, char *out, size_t outlen)
{
    out[0] = '\0';
    size_t eol = 0;
    while (eol < len && data[eol] != '\r' && data[eol] != '\n')
        ++eol;
    span_t line = {data, eol}, f, r;
    if (!piece(line, d->field, 17, &f))
        return;
    piece(f, d->repetition, 0, &r);
    while (r.len > 0 && (r.p[0] == ' ' || r.p[0] == '\t'))
        ++r.p, --r.len;
    size_t n = 0;
    for (size_t i = 0; i < r.len; ++i) {
        char c = r.p[i];
        if (d->escape != 0 && c == d->escape && i + 2 < r.len && r.p[i + 2] == d->escape) {
            char e = r.p[i + 1];
            char v = e == 'F'   ? d->field
                     : e == 'S' ? d->component
                     : e == 'T' ? d->subcomponent
                     : e == 'R' ? d->repetition
                     : e == 'E' ? d->escape
                                : 0;
            if (v != 0) {
                c = v;
                i += 2;
            }
        }
        if (n + 1 == outlen) { /* longer than any name we know: keep it unrecognisable rather than cut it into one */
            snprintf(out + outlen - 4, 4, "...");
            return;
        }
        out[n++] = c;
    }
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        --n;
    out[n] = '\0';
    size_t lead = strspn(out, " \t");
    memmove(out, out + lead, n - lead + 1);
}

static bool supported_version(const char *v)
{
    static const char *const ok[] = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"};
    for (size_t i = 0; v != NULL && i != sizeof(ok) / sizeof(ok[0]); ++i)
        if (strcmp(v, ok[i]) == 0)
            return true;
    return false;
}

/* A message's text as a printable quote for `why` (at most 16 characters). */
static const char *quote(const char *s, char *buf, size_t len)
{
    size_t k = 0;
    for (; s != NULL && *s != '\0' && k + 1 < len && k < 16; ++s)
        buf[k++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?';
    buf[k] = '\0';
    return buf;
}

hl7_msg_t *hl7_parse(const char *data, size_t len, hl7_parse_error_t *error, char *why, size_t whylen)
{
    hl7_parse_error_t ignored;
    if (error == NULL)
        error = &ignored;
    *error = HL7_PARSE_OK;
    set_why(why, whylen, "%s", "");
    if (data == NULL)
        len = 0;
    skip_leading(&data, &len);
    hl7_delims_t d;
    char truncation = 0;
    if (len < 3 || memcmp(data, "MSH", 3) != 0) {
        FAIL(HL7_PARSE_SEGMENT_SEQUENCE, "the message does not start with an MSH segment");
        return NULL;
    }
    if (read_delims(data, len, &d, &truncation) == 0) {
        FAIL(HL7_PARSE_DATA_TYPE, "MSH-1/MSH-2 do not name usable delimiters (distinct printable punctuation, at least a "
                                  "component and a repetition separator)");
        return NULL;
    }
    if (memchr(data, '\0', len) != NULL) {
        FAIL(HL7_PARSE_DATA_TYPE, "the message contains a NUL byte");
        return NULL;
    }
    char charset[32];
    peek_charset(data, len, &d, charset, sizeof(charset));
    charset_t cs;
    if (charset[0] == '\0' || strcasecmp(charset, "ASCII") == 0) {
        cs = valid_utf8(data, len) ? CS_ASCII_UTF8 : CS_ASCII_LATIN1;
    } else if (strcasecmp(charset, "8859/1") == 0) {
        cs = CS_LATIN1;
    } else if (strcasecmp(charset, "UNICODE UTF-8") == 0 || strcasecmp(charset, "UTF-8") == 0) {
        if (!valid_utf8(data, len)) {
            FAIL(HL7_PARSE_CHARSET, "MSH-18 says UNICODE UTF-8 but the message is not valid UTF-8");
            return NULL;
        }
        cs = CS_UTF8;
    } else {
        FAIL(HL7_PARSE_CHARSET, "character set \"%s\" (MSH-18) is not supported (ASCII, 8859/1 and UNICODE UTF-8 are)",
             quote(charset, (char[20]){0}, 20));
        return NULL;
    }

    hl7_msg_t *m = util_xcalloc(1, sizeof(*m));
    m->d = d;
    m->truncation = truncation;
    m->fs[0] = d.field;
    m->charset = cs;
    util_buf_t text;
    util_buf_init(&text);
    if (cs == CS_LATIN1 || cs == CS_ASCII_LATIN1) {
        for (size_t i = 0; i != len; ++i)
            put_latin1(&text, (unsigned char)data[i]);
    } else {
        util_buf_append(&text, data, len);
    }
    m->text = text.base;
    m->len = text.len;

    size_t cap = 0, fcap = 0;
    for (size_t i = 0; i < m->len;) {
        size_t eol = i;
        while (eol < m->len && m->text[eol] != '\r' && m->text[eol] != '\n')
            ++eol;
        if (eol > i) {
            if (m->nseg == HL7_MAX_SEGMENTS) {
                FAIL(HL7_PARSE_TOO_LARGE, "the message has more than %d segments", HL7_MAX_SEGMENTS);
                goto Error;
            }
            const char *s = m->text + i;
            size_t slen = eol - i;
            bool named = slen >= 3 && (slen == 3 || s[3] == d.field);
            for (size_t k = 0; named && k != 3; ++k)
                named = (s[k] >= 'A' && s[k] <= 'Z') || (s[k] >= '0' && s[k] <= '9');
            if (!named) {
                FAIL(HL7_PARSE_DATA_TYPE, "segment %zu does not start with a segment name (three upper-case letters or digits)",
                     m->nseg + 1);
                goto Error;
            }
            /* where each field starts, so that reading one is not a scan of the segment */
            size_t first = m->nfields;
            for (size_t k = 3; k != slen; ++k) {
                if (s[k] != d.field)
                    continue;
                if (m->nfields == fcap) {
                    fcap = fcap == 0 ? 64 : fcap * 2;
                    m->fields = util_xrealloc(m->fields, fcap * sizeof(*m->fields));
                }
                m->fields[m->nfields++] = i + k + 1;
            }
            /* MSH counts MSH-1, the separator after its name */
            if (m->nfields - first + (memcmp(s, "MSH", 3) == 0) > HL7_MAX_FIELDS) {
                FAIL(HL7_PARSE_TOO_LARGE, "segment %zu (%.3s) has more than %d fields", m->nseg + 1, s, HL7_MAX_FIELDS);
                goto Error;
            }
            if (m->nseg == cap) {
                cap = cap == 0 ? 16 : cap * 2;
                m->segs = util_xrealloc(m->segs, cap * sizeof(*m->segs));
            }
            hl7_seg_t *seg = &m->segs[m->nseg++];
            seg->off = i;
            seg->len = slen;
            seg->first = first;
            seg->nfields = m->nfields - first;
            memcpy(seg->name, s, 3);
            seg->name[3] = '\0';
            if (m->nseg > 1 && strcmp(seg->name, "MSH") == 0) {
                FAIL(HL7_PARSE_SEGMENT_SEQUENCE, "a second MSH segment (batches are not supported)");
                goto Error;
            }
        }
        i = eol + 1;
    }
    static const struct {
        unsigned field;
        const char *what;
    } required[] = {{9, "message type"}, {10, "message control id"}, {12, "version id"}};
    for (size_t i = 0; i != sizeof(required) / sizeof(required[0]); ++i) {
        if (hl7_get(m, 0, required[i].field, 1, 1, 1) == NULL) {
            FAIL(HL7_PARSE_REQUIRED_MISSING, "MSH-%u (%s) is empty", required[i].field, required[i].what);
            goto Error;
        }
    }
    if (!supported_version(hl7_version(m))) {
        FAIL(HL7_PARSE_VERSION, "HL7 version \"%s\" (MSH-12) is not supported (2.3 to 2.8.2 are)",
             quote(hl7_version(m), (char[20]){0}, 20));
        goto Error;
    }
    return m;
Error:
    hl7_free(m);
    return NULL;
}

/* Copies the raw `f` into `out` (fieldlen bytes), leaving out control characters. */
static void copy_raw(char *out, size_t fieldlen, span_t f)
{
    size_t k = 0;
    for (size_t j = 0; j != f.len && k + 1 < fieldlen; ++j)
        if ((unsigned char)f.p[j] >= 0x20 && f.p[j] != 0x7f)
            out[k++] = f.p[j];
    out[k] = '\0';
}

int hl7_peek_header(const char *data, size_t len, hl7_delims_t *delims, char *app, char *fac, char *control_id, char *version,
                    size_t fieldlen)
{
    char *outs[] = {app, fac, control_id, version};
    for (size_t i = 0; i != 4; ++i)
        if (outs[i] != NULL && fieldlen != 0)
            outs[i][0] = '\0';
    if (data == NULL)
        return -1;
    skip_leading(&data, &len);
    if (len < 4 || memcmp(data, "MSH", 3) != 0 || !delimiter_ok(data[3]))
        return -1;
    hl7_delims_t d;
    if (read_delims(data, len, &d, NULL) == 0) {
        /* MSH-2 is unusable: the field separator is enough to find the fields, and the rest are the standard characters
         * (or other punctuation where one collides), so an AR written with them is still well-formed */
        const char *candidates = "^~\\&$%*!#";
        char *slots[] = {&d.component, &d.repetition, &d.escape, &d.subcomponent};
        d.field = data[3];
        for (size_t s = 0, c = 0; s != 4; ++s) {
            while (candidates[c] == d.field)
                ++c;
            *slots[s] = candidates[c++];
        }
    }
    if (delims != NULL)
        *delims = d;
    size_t eol = 0;
    while (eol < len && data[eol] != '\r' && data[eol] != '\n')
        ++eol;
    span_t line = {data, eol}, f;
    const struct {
        size_t index; /* pieces after the name: MSH-3 is piece 2 */
        bool first_component;
    } wanted[] = {{2, true}, {3, true}, {9, false}, {11, true}};
    for (size_t i = 0; i != 4; ++i) {
        if (outs[i] == NULL || fieldlen == 0 || !piece(line, d.field, wanted[i].index, &f))
            continue;
        if (wanted[i].first_component)
            piece(f, d.component, 0, &f);
        copy_raw(outs[i], fieldlen, f);
    }
    return 0;
}

int hl7_peek_field(const char *data, size_t len, unsigned field, unsigned comp, char *out, size_t outlen)
{
    if (out != NULL && outlen != 0)
        out[0] = '\0';
    hl7_delims_t d;
    if (out == NULL || outlen == 0 || field < 3 || hl7_peek_header(data, len, &d, NULL, NULL, NULL, NULL, 0) != 0)
        return -1;
    skip_leading(&data, &len);
    size_t eol = 0;
    while (eol < len && data[eol] != '\r' && data[eol] != '\n')
        ++eol;
    span_t line = {data, eol}, f;
    if (!piece(line, d.field, field - 1, &f))
        return -1;
    if (comp != 0 && !piece(f, d.component, comp - 1, &f))
        return -1;
    copy_raw(out, outlen, f);
    return 0;
}

void hl7_escape(util_buf_t *out, const char *text, const hl7_delims_t *d)
{
    if (text == NULL)
        return;
    const unsigned char *p = (const unsigned char *)text;
    while (*p != '\0') {
        char c = (char)*p;
        char code = c == d->field                                  ? 'F'
                    : c == d->component                            ? 'S'
                    : d->subcomponent != 0 && c == d->subcomponent ? 'T'
                    : c == d->repetition                           ? 'R'
                    : d->escape != 0 && c == d->escape             ? 'E'
                                                                   : 0;
        if (code != 0 || *p < 0x20 || *p == 0x7f) {
            if (c == '\r' && p[1] == '\n') { /* CRLF is one line break */
                ++p;
                continue;
            }
            if (d->escape == 0)
                util_buf_puts(out, " "); /* nothing to escape with: the separator must not reach the wire */
            else if (code != 0)
                util_buf_printf(out, "%c%c%c", d->escape, code, d->escape);
            else if (c == '\n')
                util_buf_printf(out, "%c.br%c", d->escape, d->escape);
            else
                util_buf_printf(out, "%cX%02X%c", d->escape, *p, d->escape);
            ++p;
            continue;
        }
        if (*p < 0x80) {
            util_buf_append(out, &c, 1);
            ++p;
            continue;
        }
        size_t n = utf8_seq(p, strnlen((const char *)p, 4));
        if (n == 0) {
            util_buf_puts(out, "\xEF\xBF\xBD"); /* not UTF-8: what we write always is */
            ++p;
            continue;
        }
        util_buf_append(out, (const char *)p, n);
        p += n;
    }
}

/* ---- timestamps ---- */

static unsigned days_in_month(long long y, unsigned m)
{
    static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

static unsigned two(const char *p)
{
    return (unsigned)((p[0] - '0') * 10 + (p[1] - '0'));
}

int hl7_parse_dtm(const char *text, int default_offset_seconds, long long *out, int *precision)
{
    if (text == NULL)
        return -1;
    size_t digits = strspn(text, "0123456789");
    if (digits < 4 || digits > 14 || digits % 2 != 0)
        return -1;
    /* year, then month, day, hour, minute, second as far as given; the rest at their minimum */
    unsigned v[6] = {0, 1, 1, 0, 0, 0};
    v[0] = two(text) * 100 + two(text + 2);
    for (size_t i = 1, at = 4; at < digits; ++i, at += 2)
        v[i] = two(text + at);
    const char *p = text + digits;
    if (*p == '.') { /* fractions of a second: read, not kept */
        size_t f = strspn(p + 1, "0123456789");
        if (digits != 14 || f < 1 || f > 4)
            return -1;
        p += 1 + f;
    }
    long long offset = default_offset_seconds;
    if (*p == '+' || *p == '-') {
        if (strspn(p + 1, "0123456789") != 4)
            return -1;
        unsigned hh = two(p + 1), mm = two(p + 3);
        if (mm >= 60)
            return -1;
        offset = (hh * 3600LL + mm * 60LL) * (*p == '-' ? -1 : 1);
        if (offset < -12 * 3600LL || offset > 14 * 3600LL)
            return -1;
        p += 5;
    }
    /* the end, or the separator before a TS's second component (degree of precision), whatever the delimiters */
    if (*p != '\0' && (!ispunct((unsigned char)*p) || *p == '.' || *p == '+' || *p == '-'))
        return -1;
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > days_in_month(v[0], v[1]) || v[3] > 23 || v[4] > 59 || v[5] > 59)
        return -1;
    if (out != NULL)
        *out = util_days_from_civil(v[0], (unsigned)v[1], (unsigned)v[2]) * 86400 + v[3] * 3600LL + v[4] * 60LL + v[5] - offset;
    if (precision != NULL)
        *precision = (int)digits;
    return 0;
}

void hl7_format_dtm(long long t, char *buf, size_t len)
{
    /* years 0000 to 9999 are what the format can say */
    const long long lo = util_days_from_civil(0, 1, 1) * 86400, hi = util_days_from_civil(9999, 12, 31) * 86400 + 86399;
    t = t < lo ? lo : t > hi ? hi : t;
    long long days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400), secs = t - days * 86400;
    int64_t y;
    unsigned m, d;
    util_civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04lld%02u%02u%02lld%02lld%02lld+0000", (long long)y, m, d, secs / 3600, secs / 60 % 60, secs % 60);
}

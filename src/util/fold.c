#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "util/fold.h"

/*
 * U+00C0-U+017F folded to ASCII: the base letter of the canonical decomposition, lower case, and for letters without
 * one (Æ, Ø, Þ, ß, Đ, Ħ, ı, Ĳ, ĸ, Ŀ, Ł, ŉ, Ŋ, Œ, Ŧ, ſ) the letters a search user types for them. "" keeps × and ÷.
 */
static const char latin_fold[0x180 - 0xc0][3] = {
    /* U+00C0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    /* U+00D0 */ "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "ss",
    /* U+00E0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    /* U+00F0 */ "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "y",
    /* U+0100 */ "a", "a", "a", "a", "a", "a", "c", "c", "c", "c", "c", "c", "c", "c", "d", "d",
    /* U+0110 */ "d", "d", "e", "e", "e", "e", "e", "e", "e", "e", "e", "e", "g", "g", "g", "g",
    /* U+0120 */ "g", "g", "g", "g", "h", "h", "h", "h", "i", "i", "i", "i", "i", "i", "i", "i",
    /* U+0130 */ "i", "i", "ij", "ij", "j", "j", "k", "k", "k", "l", "l", "l", "l", "l", "l", "l",
    /* U+0140 */ "l", "l", "l", "n", "n", "n", "n", "n", "n", "n", "n", "n", "o", "o", "o", "o",
    /* U+0150 */ "o", "o", "oe", "oe", "r", "r", "r", "r", "r", "r", "s", "s", "s", "s", "s", "s",
    /* U+0160 */ "s", "s", "t", "t", "t", "t", "t", "t", "u", "u", "u", "u", "u", "u", "u", "u",
    /* U+0170 */ "u", "u", "u", "u", "w", "w", "y", "y", "y", "z", "z", "z", "z", "z", "z", "s",
};

/* Length of the well-formed UTF-8 sequence at `s` (RFC 3629: no overlongs, surrogates or values past U+10FFFF), with
 * its code point in `*cp`; 0 when `s` does not start one. Never reads at or past `end`. */
static size_t decode(const unsigned char *s, const unsigned char *end, uint32_t *cp)
{
    unsigned c = s[0], lo = 0x80, hi = 0xbf;
    size_t n;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i != n; ++i) {
        if (s[i] < lo || s[i] > hi)
            return 0;
        lo = 0x80;
        hi = 0xbf;
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return n;
}

/* Greek: capitals to lower case, tonos and dialytika removed (their decompositions end in combining marks). */
static uint32_t fold_greek(uint32_t cp)
{
    switch (cp) {
    case 0x0386: case 0x03ac:
        return 0x03b1;
    case 0x0388: case 0x03ad:
        return 0x03b5;
    case 0x0389: case 0x03ae:
        return 0x03b7;
    case 0x038a: case 0x0390: case 0x03aa: case 0x03af: case 0x03ca:
        return 0x03b9;
    case 0x038c: case 0x03cc:
        return 0x03bf;
    case 0x038e: case 0x03ab: case 0x03b0: case 0x03cb: case 0x03cd:
        return 0x03c5;
    case 0x038f: case 0x03ce:
        return 0x03c9;
    case 0x03c2: /* final sigma: the same letter as σ */
        return 0x03c3;
    }
    if (cp >= 0x0391 && cp <= 0x03a9 && cp != 0x03a2)
        return cp + 0x20;
    return cp;
}

/* Basic Cyrillic (U+0400-U+045F): capitals to lower case, letters with a canonical decomposition to their base. */
static uint32_t fold_cyrillic(uint32_t cp)
{
    if (cp <= 0x040f)
        cp += 0x50;
    else if (cp <= 0x042f)
        cp += 0x20;
    switch (cp) {
    case 0x0450: case 0x0451: /* ѐ ё */
        return 0x0435;
    case 0x0453: /* ѓ */
        return 0x0433;
    case 0x0457: /* ї */
        return 0x0456;
    case 0x045c: /* ќ */
        return 0x043a;
    case 0x0439: case 0x045d: /* й ѝ */
        return 0x0438;
    case 0x045e: /* ў */
        return 0x0443;
    }
    return cp;
}

/*
 * Folds `len` bytes from `src` into `dst` and returns the output length. Each code point's fold is no longer than its
 * encoding and is written only after the code point is read, so `dst` may equal `src` (folding in place).
 */
static size_t fold_span(char *dst, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src, *end = s + len;
    unsigned char *d = (unsigned char *)dst;

    while (s != end) {
        uint32_t cp;
        size_t n = decode(s, end, &cp);
        if (n == 0) {
            *d++ = *s++; /* not UTF-8: copied as it is */
            continue;
        }
        if (cp >= 'A' && cp <= 'Z') {
            *d++ = (unsigned char)(cp + ('a' - 'A'));
        } else if (cp >= 0xc0 && cp <= 0x17f && latin_fold[cp - 0xc0][0] != '\0') {
            const char *f = latin_fold[cp - 0xc0];
            *d++ = (unsigned char)f[0];
            if (f[1] != '\0')
                *d++ = (unsigned char)f[1];
        } else if (cp >= 0x0300 && cp <= 0x036f) {
            /* combining diacritical mark: dropped */
        } else if ((cp >= 0x0386 && cp <= 0x03ce) || (cp >= 0x0400 && cp <= 0x045f)) {
            uint32_t f = cp < 0x0400 ? fold_greek(cp) : fold_cyrillic(cp);
            *d++ = (unsigned char)(0xc0 | (f >> 6)); /* both blocks encode in two bytes */
            *d++ = (unsigned char)(0x80 | (f & 0x3f));
        } else {
            memmove(d, s, n);
            d += n;
        }
        s += n;
    }
    return (size_t)(d - (unsigned char *)dst);
}

char *util_fold(const char *utf8)
{
    size_t len = strlen(utf8);
    char *out = util_xmalloc(len + 1);
    out[fold_span(out, utf8, len)] = '\0';
    return out;
}

size_t util_fold_into(util_buf_t *buf, const char *utf8)
{
    size_t start = buf->len;
    /* Append as is, then fold those bytes in place: the fold never grows, so the space is already there. */
    util_buf_puts(buf, utf8);
    buf->len = start + fold_span(buf->base + start, buf->base + start, buf->len - start);
    buf->base[buf->len] = '\0';
    return buf->len - start;
}

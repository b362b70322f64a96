/*
 * Case and accent folding for string search: FHIR matches string parameters "case- and accent-insensitively", so both
 * the indexed value and the searched value go through the same fold before comparison.
 */
#ifndef UTIL_FOLD_H
#define UTIL_FOLD_H

#include <stddef.h>
#include "util/str.h"

/**
 * Returns a new NUL-terminated string (caller frees) holding `utf8` folded:
 *   - ASCII A-Z become a-z;
 *   - letters of Latin-1 Supplement and Latin Extended-A (U+00C0-U+017F) become their base ASCII letter(s), lower case
 *     (é → e, Ä → a, ß → ss, Æ → ae, œ → oe, ø → o, ł → l, þ → th, ĳ → ij); × and ÷ are kept;
 *   - Greek and Cyrillic capitals become lower case, and their accented letters lose the accent (Ά → α, Ё → е,
 *     й → и), final sigma becomes σ;
 *   - combining diacritical marks (U+0300-U+036F) are dropped, so decomposed and precomposed text fold alike;
 *   - every other code point, and every byte that is not part of valid UTF-8, is copied unchanged.
 * The result is never longer than the input.
 */
char *util_fold(const char *utf8);

/** Appends the fold of `utf8` (as util_fold) to `buf` and returns the number of bytes appended. */
size_t util_fold_into(util_buf_t *buf, const char *utf8);

#endif

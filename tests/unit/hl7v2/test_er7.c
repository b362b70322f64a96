/* The ER7 parser (hl7v2/er7.c): delimiters, segment terminators, addressing, character sets, escapes, versions, hostile
 * input, the header peek used for ARs, escaping for writing, and timestamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hl7v2/er7.h"

/* ---- helpers ---- */

static hl7_msg_t *parse_len(const char *text, size_t len)
{
    hl7_parse_error_t perr = (hl7_parse_error_t)-1;
    char why[256] = "x";
    hl7_msg_t *m = hl7_parse(text, len, &perr, why, sizeof(why));
    if (m == NULL)
        fail_msg("parse failed (%d): %s", (int)perr, why);
    assert_int_equal(perr, HL7_PARSE_OK);
    assert_string_equal(why, "");
    return m;
}

static hl7_msg_t *parse(const char *text)
{
    return parse_len(text, strlen(text));
}

/* Parses `len` bytes copied into a buffer of exactly that size, so ASan sees any read past the end. */
static hl7_parse_error_t refuse_len(const char *text, size_t len)
{
    char *copy = malloc(len != 0 ? len : 1);
    memcpy(copy, text, len);
    hl7_parse_error_t perr = HL7_PARSE_OK;
    char why[256] = "";
    hl7_msg_t *m = hl7_parse(copy, len, &perr, why, sizeof(why));
    free(copy);
    if (m != NULL) {
        hl7_free(m);
        fail_msg("parsed, but should not have: %.*s", (int)(len < 80 ? len : 80), text);
    }
    assert_int_not_equal(perr, HL7_PARSE_OK);
    assert_true(why[0] != '\0');
    return perr;
}

static hl7_parse_error_t refuse(const char *text)
{
    return refuse_len(text, strlen(text));
}

static char *read_sample(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/conformance/hl7v2/%s", FHIRSCHED_SOURCE_DIR, name);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        fail_msg("cannot open %s", path);
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, fp);
    fclose(fp);
    buf[*len] = '\0';
    return buf;
}

/* `s` with every "\n" replaced by `eol`. */
static char *with_eol(const char *s, const char *eol)
{
    util_buf_t b;
    util_buf_init(&b);
    for (; *s != '\0'; ++s) {
        if (*s == '\n')
            util_buf_puts(&b, eol);
        else
            util_buf_append(&b, s, 1);
    }
    return b.base;
}

#define HDR "MSH|^~\\&|APP|FAC|RAPP|RFAC|20260101120000||SIU^S12^SIU_S12|CTRL-1|P|2.5.1"
#define MSH_STD "MSH|^~\\&|APP|FAC|US|OURS|20240102030405||SIU^S12^SIU_S12|CTRL1|P|2.5.1"

/* ---- the sample messages ---- */

static const char *const samples[] = {
    "mieweb-outbound-SIU-S12-v25.hl7", "mieweb-outbound-SIU-S14-v25.hl7", "mieweb-outbound-SIU-S15-v25.hl7",
    "mieweb-sample-ADT-A04-v23.hl7",   "mieweb-sample-ADT-A08-v23.hl7",   "mieweb-sample-SIU-S12-v23.hl7",
    "mieweb-sample-SIU-S14-v23.hl7",   "mieweb-sample-SIU-S15-v23.hl7",   "msfhirconv-ADT-A04-01.hl7",
    "msfhirconv-ADT-A04-02.hl7",       "msfhirconv-ADT-A08-01.hl7",       "msfhirconv-ADT-A08-02.hl7",
    "msfhirconv-SIU-S12-01.hl7",       "msfhirconv-SIU-S12-02.hl7",       "msfhirconv-SIU-S12_1.hl7",
    "msfhirconv-SIU-S13-01.hl7",       "msfhirconv-SIU-S13-02.hl7",       "msfhirconv-SIU-S14-01.hl7",
    "msfhirconv-SIU-S14-02.hl7",       "msfhirconv-SIU-S15-01.hl7",       "msfhirconv-SIU-S15-02.hl7",
    "msfhirconv-SIU-S17-01.hl7",       "msfhirconv-SIU-S26-01.hl7",       "msfhirconv-SIU-S26-02.hl7"};

/* Every sample parses with its own line ends ("\n"), with "\r" and with "\r\n", into the same segments and values. */
static void test_samples_all(void **state)
{
    for (size_t i = 0; i != sizeof(samples) / sizeof(samples[0]); ++i) {
        size_t len;
        char *text = read_sample(samples[i], &len);
        assert_int_equal(strlen(text), len);
        hl7_msg_t *m = parse_len(text, len);
        assert_string_equal(hl7_segment_name(m, 0), "MSH");
        assert_true(hl7_segment_count(m) >= 4);
        assert_non_null(hl7_message_code(m));
        assert_non_null(hl7_trigger_event(m));
        assert_non_null(hl7_control_id(m));
        assert_non_null(hl7_version(m));
        assert_string_equal(hl7_get(m, 0, 1, 1, 1, 1), "|");
        assert_string_equal(hl7_get(m, 0, 2, 1, 1, 1), "^~\\&");
        const char *eols[] = {"\r", "\r\n", "\r\n\r\n"};
        for (size_t e = 0; e != 3; ++e) {
            char *other = with_eol(text, eols[e]);
            hl7_msg_t *o = parse(other);
            assert_int_equal(hl7_segment_count(o), hl7_segment_count(m));
            for (size_t s = 0; s != hl7_segment_count(m); ++s) {
                assert_string_equal(hl7_segment_name(o, s), hl7_segment_name(m, s));
                for (unsigned f = 1; f <= 30; ++f) {
                    const char *a = hl7_raw_field(m, s, f), *b = hl7_raw_field(o, s, f);
                    assert_true((a == NULL) == (b == NULL));
                    if (a != NULL)
                        assert_string_equal(a, b);
                }
            }
            assert_string_equal(hl7_control_id(o), hl7_control_id(m));
            hl7_free(o);
            free(other);
        }
        hl7_free(m);
        free(text);
    }
}

static void test_sample_values(void **state)
{
    size_t len;
    char *text = read_sample("msfhirconv-SIU-S12-01.hl7", &len);
    hl7_msg_t *m = parse_len(text, len);
    assert_string_equal(hl7_version(m), "2.8");
    assert_string_equal(hl7_sending_application(m), "SCHApp");
    assert_string_equal(hl7_sending_facility(m), "GHHSFacility");
    assert_string_equal(hl7_val(m, 0, 4, 2), "2.16.840.1.122848.1.30");
    assert_string_equal(hl7_message_code(m), "SIU");
    assert_string_equal(hl7_trigger_event(m), "S12");
    assert_string_equal(hl7_val(m, 0, 9, 3), "SIU_S12");
    assert_string_equal(hl7_control_id(m), "MSG00012");
    assert_string_equal(hl7_val(m, 0, 7, 1), "202109141120+0215");
    assert_null(hl7_val(m, 0, 18, 1)); /* no MSH-18: ASCII */
    assert_string_equal(hl7_val(m, 0, 19, 1), "en-US");
    long sch = hl7_find(m, "SCH", 0);
    assert_int_equal(sch, 1);
    assert_string_equal(hl7_val(m, (size_t)sch, 1, 1), "12345");
    assert_string_equal(hl7_val(m, (size_t)sch, 11, 4), "202010011126+0215");
    assert_string_equal(hl7_get(m, (size_t)sch, 12, 1, 2, 1), "Smith");
    assert_string_equal(hl7_get(m, (size_t)sch, 12, 1, 2, 2), "Mr.");
    assert_string_equal(hl7_get(m, (size_t)sch, 12, 1, 9, 2), "2.16.840.1.113883.4.6");
    assert_null(hl7_get(m, (size_t)sch, 12, 1, 9, 4));
    assert_string_equal(hl7_val(m, (size_t)sch, 25, 1), "Booked");
    long pid = hl7_find(m, "PID", 0);
    assert_true(pid > sch);
    assert_int_equal(hl7_repetitions(m, (size_t)pid, 3), 2);
    assert_int_equal(hl7_components(m, (size_t)pid, 3, 1), 6);
    assert_int_equal(hl7_components(m, (size_t)pid, 3, 2), 5);
    assert_string_equal(hl7_get(m, (size_t)pid, 3, 1, 4, 2), "2.16.1");
    assert_string_equal(hl7_get(m, (size_t)pid, 3, 2, 1, 1), "123456789");
    assert_string_equal(hl7_get(m, (size_t)pid, 3, 2, 4, 1), "USSSA");
    assert_string_equal(hl7_get(m, (size_t)pid, 3, 2, 5, 1), "SS");
    assert_null(hl7_get(m, (size_t)pid, 3, 3, 1, 1));
    assert_string_equal(hl7_get(m, (size_t)pid, 5, 2, 1, 5), "Bing");
    long tq1 = hl7_find(m, "TQ1", 0);
    assert_true(tq1 > 0);
    long long t;
    int precision;
    assert_int_equal(hl7_parse_dtm(hl7_val(m, (size_t)tq1, 7, 1), 0, &t, &precision), 0);
    assert_int_equal(precision, 14);
    assert_int_equal(t, 1632475800LL - 8100); /* 2021-09-24T09:30:00+02:15 */
    assert_int_equal(hl7_find(m, "ZZZ", 0), -1);
    assert_int_equal(hl7_find(m, "SCH", 2), -1);
    hl7_free(m);
    free(text);

    /* \X0A\ in a note: a line break */
    text = read_sample("mieweb-outbound-SIU-S14-v25.hl7", &len);
    m = parse_len(text, len);
    long nte = hl7_find(m, "NTE", 0);
    assert_true(nte > 0);
    assert_non_null(strstr(hl7_val(m, (size_t)nte, 3, 1), "appt, mc\n4/27lc; lm"));
    assert_non_null(strstr(hl7_raw_field(m, (size_t)nte, 3), "mc\\X0A\\4/27lc"));
    hl7_free(m);
    free(text);

    /* \T\ in a component: the sub-component separator, not a split */
    text = read_sample("msfhirconv-ADT-A04-01.hl7", &len);
    m = parse_len(text, len);
    long pv1 = hl7_find(m, "PV1", 0);
    assert_true(pv1 > 0);
    assert_string_equal(hl7_val(m, (size_t)pv1, 14, 1), "NHS Provider-General (inc.A&E-this Hosp)");
    hl7_free(m);
    free(text);

    /* v2.3 with trailing empty fields */
    text = read_sample("mieweb-sample-SIU-S12-v23.hl7", &len);
    m = parse_len(text, len);
    assert_string_equal(hl7_version(m), "2.3");
    assert_string_equal(hl7_control_id(m), "24916560");
    assert_null(hl7_trigger_event(m) == NULL ? NULL : hl7_val(m, 0, 9, 3));
    sch = hl7_find(m, "SCH", 0);
    assert_string_equal(hl7_val(m, (size_t)sch, 11, 4), "20110617084500");
    pid = hl7_find(m, "PID", 0);
    assert_string_equal(hl7_val(m, (size_t)pid, 5, 2), "ZAPHOD");
    long ail = hl7_find(m, "AIL", 0);
    assert_string_equal(hl7_val(m, (size_t)ail, 3, 1), "OFFICE");
    assert_string_equal(hl7_val(m, (size_t)ail, 3, 4), "OFFICE");
    assert_null(hl7_val(m, (size_t)ail, 3, 2));
    hl7_free(m);
    free(text);
}

/* ---- delimiters ---- */

static void test_delimiters_standard(void **state)
{
    hl7_msg_t *m = parse(MSH_STD "\rPID|1||A^B&C&D^E~F||x\\F\\y\\S\\z\\T\\w\\R\\v\\E\\u\r");
    const hl7_delims_t *d = hl7_delims(m);
    assert_int_equal(d->field, '|');
    assert_int_equal(d->component, '^');
    assert_int_equal(d->repetition, '~');
    assert_int_equal(d->escape, '\\');
    assert_int_equal(d->subcomponent, '&');
    assert_memory_equal(d, &hl7_default_delims, sizeof(*d));
    assert_string_equal(hl7_get(m, 1, 5, 1, 1, 1), "x|y^z&w~v\\u");
    assert_string_equal(hl7_raw_field(m, 1, 5), "x\\F\\y\\S\\z\\T\\w\\R\\v\\E\\u");
    hl7_free(m);
}

static void test_delimiters_nonstandard(void **state)
{
    /* field |, component $, repetition %, escape *, sub-component #, truncation ! (v2.7+) */
    hl7_msg_t *m = parse("MSH|$%*#!|APP$X|FAC|||20240102||ADT$A01|C*F*1|P|2.7\r"
                         "PID|1||id1$$$AUTH#1.2#ISO%id2$$$OTHER||Doe$John||*F**S**R**T**E**P*|a^b~c&d\\e");
    const hl7_delims_t *d = hl7_delims(m);
    assert_int_equal(d->field, '|');
    assert_int_equal(d->component, '$');
    assert_int_equal(d->repetition, '%');
    assert_int_equal(d->escape, '*');
    assert_int_equal(d->subcomponent, '#');
    assert_string_equal(hl7_get(m, 0, 1, 1, 1, 1), "|");
    assert_string_equal(hl7_get(m, 0, 2, 1, 1, 1), "$%*#!");
    assert_string_equal(hl7_sending_application(m), "APP");
    assert_string_equal(hl7_val(m, 0, 3, 2), "X");
    assert_string_equal(hl7_message_code(m), "ADT");
    assert_string_equal(hl7_trigger_event(m), "A01");
    assert_string_equal(hl7_control_id(m), "C|1");
    assert_int_equal(hl7_repetitions(m, 1, 3), 2);
    assert_string_equal(hl7_get(m, 1, 3, 1, 4, 2), "1.2");
    assert_string_equal(hl7_get(m, 1, 3, 2, 4, 1), "OTHER");
    assert_string_equal(hl7_val(m, 1, 5, 2), "John");
    assert_string_equal(hl7_val(m, 1, 7, 1), "|$%#*!");
    assert_string_equal(hl7_val(m, 1, 8, 1), "a^b~c&d\\e"); /* the standard characters are plain text here */
    hl7_free(m);

    /* any five distinct punctuation characters, "\n" line ends */
    m = parse("MSH#$%*!#A$x#F#R#RF#2026##SIU$S14#C9#P#2.4\nPID#1##V1$$$NS*9.9*ISO%V2\n");
    assert_int_equal(hl7_delims(m)->field, '#');
    assert_int_equal(hl7_delims(m)->subcomponent, '!');
    assert_string_equal(hl7_sending_application(m), "A");
    assert_string_equal(hl7_val(m, 0, 3, 2), "x");
    assert_string_equal(hl7_trigger_event(m), "S14");
    assert_string_equal(hl7_get(m, 1, 3, 1, 4, 1), "NS*9.9*ISO"); /* '*' is the escape: an unknown escape stays literal */
    assert_string_equal(hl7_get(m, 1, 3, 2, 1, 1), "V2");
    hl7_free(m);

    /* '#' as the field separator */
    m = parse("MSH#^~\\&#APP#FAC###20240102##SIU^S14#77#P#2.4\nNTE#1##a|b\\F\\c");
    assert_int_equal(hl7_delims(m)->field, '#');
    assert_string_equal(hl7_get(m, 0, 1, 1, 1, 1), "#");
    assert_string_equal(hl7_raw_field(m, 0, 1), "#");
    assert_string_equal(hl7_get(m, 0, 2, 1, 1, 1), "^~\\&");
    assert_string_equal(hl7_control_id(m), "77");
    assert_string_equal(hl7_version(m), "2.4");
    assert_string_equal(hl7_val(m, 1, 3, 1), "a|b#c");
    hl7_free(m);

    /* '+' as the field separator (timestamps with offsets then need escaping) */
    m = parse("MSH+^~\\&+APP+FAC+++20240102\\F\\0100++ADT^A04+9+P+2.3\r");
    assert_string_equal(hl7_val(m, 0, 7, 1), "20240102+0100");
    hl7_free(m);

    /* two encoding characters: no escape, no sub-components */
    m = parse("MSH|^~|A|B|||20240102||ADT^A04|1|P|2.5\rNTE|1||a\\F\\b&c^d");
    assert_int_equal(hl7_delims(m)->escape, 0);
    assert_int_equal(hl7_delims(m)->subcomponent, 0);
    assert_string_equal(hl7_val(m, 1, 3, 1), "a\\F\\b&c");
    assert_string_equal(hl7_get(m, 1, 3, 1, 1, 1), "a\\F\\b&c");
    assert_null(hl7_get(m, 1, 3, 1, 1, 2));
    assert_string_equal(hl7_val(m, 1, 3, 2), "d");
    hl7_free(m);

    /* three: an escape but no sub-components */
    m = parse("MSH|^~\\|A|B|||20240102||ADT^A04|1|P|2.5\rNTE|1||a\\T\\b&c\\S\\");
    assert_int_equal(hl7_delims(m)->escape, '\\');
    assert_int_equal(hl7_delims(m)->subcomponent, 0);
    assert_string_equal(hl7_val(m, 1, 3, 1), "a\\T\\b&c^");
    hl7_free(m);

    /* five: the truncation character is accepted and \P\ gives it back */
    m = parse("MSH|^~\\&#|A|B|||20240102||ADT^A04|1|P|2.8.2\rNTE|1||a\\P\\b#c");
    assert_string_equal(hl7_val(m, 1, 3, 1), "a#b#c");
    hl7_free(m);
    /* without a fifth character \P\ is unknown and stays */
    m = parse(MSH_STD "\rNTE|1||a\\P\\b");
    assert_string_equal(hl7_val(m, 1, 3, 1), "a\\P\\b");
    hl7_free(m);
}

static void test_delimiters_refused(void **state)
{
    /* alphanumeric */
    assert_int_equal(refuse("MSH|^~\\A|A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSHA^~\\&A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH1^~\\&1|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    /* control characters and space */
    assert_int_equal(refuse("MSH|^\x01\\&|A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH\t^~\\&\tA"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH ^~\\& A"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH|^~\x7f&|A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH|^~\\\xC3\xA9|A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    /* duplicates, among MSH-2 */
    assert_int_equal(refuse("MSH|^^\\&|A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH|^~\\&^|A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    /* fewer than two or more than five encoding characters */
    assert_int_equal(refuse("MSH|^|A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH||A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH|^~\\&#!|A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_DATA_TYPE);
    /* MSH-2 running into the end of the line */
    assert_int_equal(refuse("MSH|^\rPID|1"), HL7_PARSE_DATA_TYPE);
}

/* ---- addressing ---- */

static void test_addressing(void **state)
{
    hl7_msg_t *m = parse(MSH_STD "\r"
                                 "PID|1|\"\"|r1c1&s2^r1c2~r2c1^^r2c3~~r4c1|||a~|^|&\r"
                                 "ZX1\r"
                                 "ZX1|\r"
                                 "NTE|1||last");
    assert_int_equal(hl7_segment_count(m), 5);
    assert_string_equal(hl7_segment_name(m, 1), "PID");
    assert_string_equal(hl7_segment_name(m, 2), "ZX1");
    assert_string_equal(hl7_segment_name(m, 5), "");
    assert_int_equal(hl7_find(m, "ZX1", 0), 2);
    assert_int_equal(hl7_find(m, "ZX1", 3), 3);
    assert_int_equal(hl7_find(m, "ZX1", 4), -1);
    assert_int_equal(hl7_find(m, "MSH", 0), 0);
    assert_int_equal(hl7_find(m, "NTE", 99), -1);

    /* the explicit null */
    assert_string_equal(hl7_val(m, 1, 2, 1), "\"\"");
    /* repetitions, components, sub-components */
    assert_int_equal(hl7_repetitions(m, 1, 3), 4);
    assert_int_equal(hl7_components(m, 1, 3, 1), 2);
    assert_int_equal(hl7_components(m, 1, 3, 2), 3);
    assert_int_equal(hl7_components(m, 1, 3, 3), 0);
    assert_int_equal(hl7_components(m, 1, 3, 4), 1);
    assert_int_equal(hl7_components(m, 1, 3, 5), 0);
    assert_int_equal(hl7_components(m, 1, 3, 0), 0);
    assert_string_equal(hl7_get(m, 1, 3, 1, 1, 1), "r1c1");
    assert_string_equal(hl7_get(m, 1, 3, 1, 1, 2), "s2");
    assert_null(hl7_get(m, 1, 3, 1, 1, 3));
    assert_string_equal(hl7_get(m, 1, 3, 1, 2, 1), "r1c2");
    assert_null(hl7_get(m, 1, 3, 1, 3, 1));
    assert_string_equal(hl7_get(m, 1, 3, 2, 1, 1), "r2c1");
    assert_null(hl7_get(m, 1, 3, 2, 2, 1));
    assert_string_equal(hl7_get(m, 1, 3, 2, 3, 1), "r2c3");
    assert_null(hl7_get(m, 1, 3, 3, 1, 1));
    assert_string_equal(hl7_get(m, 1, 3, 4, 1, 1), "r4c1");
    assert_null(hl7_get(m, 1, 3, 5, 1, 1));
    assert_string_equal(hl7_val(m, 1, 3, 1), "r1c1");
    assert_string_equal(hl7_raw_field(m, 1, 3), "r1c1&s2^r1c2~r2c1^^r2c3~~r4c1");
    /* empty fields and separators only */
    assert_int_equal(hl7_repetitions(m, 1, 4), 0);
    assert_null(hl7_raw_field(m, 1, 4));
    assert_null(hl7_val(m, 1, 4, 1));
    assert_int_equal(hl7_repetitions(m, 1, 6), 2);
    assert_string_equal(hl7_get(m, 1, 6, 1, 1, 1), "a");
    assert_null(hl7_get(m, 1, 6, 2, 1, 1));
    assert_int_equal(hl7_components(m, 1, 7, 1), 2);
    assert_null(hl7_val(m, 1, 7, 1));
    assert_null(hl7_val(m, 1, 7, 2));
    assert_string_equal(hl7_raw_field(m, 1, 7), "^");
    assert_null(hl7_get(m, 1, 8, 1, 1, 1));
    assert_null(hl7_get(m, 1, 8, 1, 1, 2));
    /* past the end, and index 0 */
    assert_null(hl7_raw_field(m, 1, 9));
    assert_int_equal(hl7_repetitions(m, 1, 9), 0);
    assert_int_equal(hl7_repetitions(m, 1, 1000), 0);
    assert_null(hl7_get(m, 1, 0, 1, 1, 1));
    assert_null(hl7_get(m, 1, 3, 0, 1, 1));
    assert_null(hl7_get(m, 1, 3, 1, 0, 1));
    assert_null(hl7_get(m, 1, 3, 1, 1, 0));
    assert_null(hl7_get(m, 5, 1, 1, 1, 1));
    assert_null(hl7_get(m, (size_t)-1, 1, 1, 1, 1));
    assert_int_equal(hl7_repetitions(m, 99, 1), 0);
    assert_int_equal(hl7_components(m, 99, 1, 1), 0);
    assert_null(hl7_raw_field(m, 99, 1));
    /* a segment that is just its name, and one with an empty first field */
    assert_null(hl7_raw_field(m, 2, 1));
    assert_int_equal(hl7_repetitions(m, 2, 1), 0);
    assert_null(hl7_raw_field(m, 3, 1));
    assert_string_equal(hl7_val(m, 4, 3, 1), "last");

    /* MSH numbering: MSH-1 is the separator, MSH-2 the encoding characters, never split */
    assert_string_equal(hl7_get(m, 0, 1, 1, 1, 1), "|");
    assert_string_equal(hl7_val(m, 0, 1, 1), "|");
    assert_string_equal(hl7_raw_field(m, 0, 1), "|");
    assert_string_equal(hl7_get(m, 0, 2, 1, 1, 1), "^~\\&");
    assert_string_equal(hl7_raw_field(m, 0, 2), "^~\\&");
    assert_null(hl7_get(m, 0, 2, 1, 2, 1));
    assert_null(hl7_get(m, 0, 2, 2, 1, 1));
    assert_null(hl7_get(m, 0, 1, 1, 1, 2));
    assert_int_equal(hl7_repetitions(m, 0, 1), 1);
    assert_int_equal(hl7_repetitions(m, 0, 2), 1);
    assert_int_equal(hl7_components(m, 0, 2, 1), 1);
    assert_int_equal(hl7_components(m, 0, 2, 2), 0);
    assert_string_equal(hl7_val(m, 0, 3, 1), "APP");
    assert_string_equal(hl7_val(m, 0, 4, 1), "FAC");
    assert_string_equal(hl7_val(m, 0, 7, 1), "20240102030405");
    assert_null(hl7_val(m, 0, 8, 1));
    assert_string_equal(hl7_val(m, 0, 11, 1), "P");
    assert_string_equal(hl7_version(m), "2.5.1");
    assert_null(hl7_val(m, 0, 13, 1));

    /* pointers live as long as the message, and asking again gives the same one */
    const char *first = hl7_get(m, 1, 3, 1, 2, 1);
    for (int i = 0; i < 10000; ++i)
        assert_ptr_equal(hl7_get(m, 1, 3, 1, 2, 1), first);
    for (unsigned f = 1; f < 20; ++f)
        for (unsigned c = 1; c < 5; ++c)
            hl7_get(m, 1, f, 1, c, 1);
    assert_string_equal(first, "r1c2");
    /* a field and its only component are the same text */
    assert_string_equal(hl7_val(m, 4, 3, 1), hl7_raw_field(m, 4, 3));
    hl7_free(m);

    /* no message (a parse that failed): nothing, without crashing */
    hl7_free(NULL);
    assert_int_equal(hl7_segment_count(NULL), 0);
    assert_string_equal(hl7_segment_name(NULL, 0), "");
    assert_int_equal(hl7_find(NULL, "MSH", 0), -1);
    assert_null(hl7_get(NULL, 0, 1, 1, 1, 1));
    assert_null(hl7_raw_field(NULL, 0, 1));
    assert_null(hl7_control_id(NULL));
    assert_int_equal(hl7_repetitions(NULL, 0, 1), 0);
    assert_int_equal(hl7_components(NULL, 0, 1, 1), 0);
    assert_ptr_equal(hl7_delims(NULL), &hl7_default_delims);
}

static void test_addressing_pid(void **state)
{
    hl7_msg_t *m = parse(HDR "\rPID|1||A1^^^AUTH&1.2.3&ISO^MR~B2^^^OTHER||Doe^Jane^Q~Roe^Jo||19800102|F\r");
    assert_int_equal(hl7_segment_count(m), 2);
    assert_string_equal(hl7_segment_name(m, 1), "PID");
    assert_int_equal(hl7_find(m, "PID", 0), 1);
    assert_int_equal(hl7_find(m, "PID", 2), -1);
    assert_int_equal(hl7_find(m, "SCH", 0), -1);
    assert_string_equal(hl7_sending_application(m), "APP");
    assert_string_equal(hl7_sending_facility(m), "FAC");
    assert_string_equal(hl7_message_code(m), "SIU");
    assert_string_equal(hl7_trigger_event(m), "S12");
    assert_string_equal(hl7_val(m, 0, 9, 3), "SIU_S12");
    assert_string_equal(hl7_control_id(m), "CTRL-1");
    assert_int_equal(hl7_repetitions(m, 1, 3), 2);
    assert_string_equal(hl7_get(m, 1, 3, 1, 1, 1), "A1");
    assert_string_equal(hl7_get(m, 1, 3, 1, 4, 1), "AUTH");
    assert_string_equal(hl7_get(m, 1, 3, 1, 4, 2), "1.2.3");
    assert_string_equal(hl7_get(m, 1, 3, 1, 4, 3), "ISO");
    assert_string_equal(hl7_get(m, 1, 3, 1, 5, 1), "MR");
    assert_string_equal(hl7_get(m, 1, 3, 2, 1, 1), "B2");
    assert_int_equal(hl7_components(m, 1, 3, 1), 5);
    assert_null(hl7_get(m, 1, 3, 3, 1, 1));  /* no third repetition */
    assert_null(hl7_get(m, 1, 3, 1, 2, 1));  /* empty component */
    assert_null(hl7_get(m, 1, 3, 1, 9, 1));  /* beyond the last component */
    assert_null(hl7_get(m, 1, 40, 1, 1, 1)); /* beyond the last field */
    assert_int_equal(hl7_repetitions(m, 1, 2), 0);
    assert_string_equal(hl7_get(m, 1, 5, 2, 1, 1), "Roe");
    assert_string_equal(hl7_raw_field(m, 1, 3), "A1^^^AUTH&1.2.3&ISO^MR~B2^^^OTHER");
    assert_null(hl7_raw_field(m, 1, 2));
    hl7_free(m);
}

/* ---- segment terminators and names ---- */

static void test_terminators(void **state)
{
    const char *bodies[] = {MSH_STD "\rPID|1|A\rPV1|1|O\r",
                            MSH_STD "\nPID|1|A\nPV1|1|O\n",
                            MSH_STD "\r\nPID|1|A\r\nPV1|1|O\r\n",
                            MSH_STD "\r\nPID|1|A\nPV1|1|O",
                            MSH_STD "\r\r\n\nPID|1|A\n\n\rPV1|1|O\n\n",
                            "\r\n\r\n" MSH_STD "\rPID|1|A\rPV1|1|O",
                            "\xEF\xBB\xBF" MSH_STD "\rPID|1|A\rPV1|1|O"};
    for (size_t i = 0; i != sizeof(bodies) / sizeof(bodies[0]); ++i) {
        hl7_msg_t *m = parse(bodies[i]);
        assert_int_equal(hl7_segment_count(m), 3);
        assert_string_equal(hl7_segment_name(m, 1), "PID");
        assert_string_equal(hl7_val(m, 1, 2, 1), "A");
        assert_string_equal(hl7_val(m, 2, 2, 1), "O");
        assert_string_equal(hl7_version(m), "2.5.1");
        hl7_free(m);
    }
    /* the last segment without a terminator still has its last field whole */
    hl7_msg_t *m = parse(MSH_STD);
    assert_int_equal(hl7_segment_count(m), 1);
    assert_string_equal(hl7_version(m), "2.5.1");
    hl7_free(m);
}

static void test_segment_names(void **state)
{
    hl7_msg_t *m = parse(MSH_STD "\rZ01|x\rZAB|y\r123|z\rNTE");
    assert_int_equal(hl7_segment_count(m), 5);
    assert_string_equal(hl7_segment_name(m, 3), "123");
    assert_string_equal(hl7_segment_name(m, 4), "NTE");
    hl7_free(m);
    assert_int_equal(refuse(MSH_STD "\rpid|1"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse(MSH_STD "\rPI|1"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse(MSH_STD "\rPIDX|1"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse(MSH_STD "\rPI"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse(MSH_STD "\rP-D|1"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse(MSH_STD "\r PID|1"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse(MSH_STD "\rPID^1"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse(MSH_STD "\r\xC3\x89PI|1"), HL7_PARSE_DATA_TYPE);
    /* the first segment must be MSH, and there is only one */
    assert_int_equal(refuse("PID|1\r" MSH_STD), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(refuse("FHS|^~\\&\rBHS|^~\\&\r" MSH_STD), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(refuse(" " MSH_STD), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(refuse("msh|^~\\&|A|B|||20240102||ADT^A04|1|P|2.5"), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(refuse(MSH_STD "\r" MSH_STD), HL7_PARSE_SEGMENT_SEQUENCE);
}

/* ---- required fields and versions ---- */

static void test_required(void **state)
{
    assert_int_equal(refuse("MSH|^~\\&|A|B|||20240102|||1|P|2.5"), HL7_PARSE_REQUIRED_MISSING);
    assert_int_equal(refuse("MSH|^~\\&|A|B|||20240102||^A04|1|P|2.5"), HL7_PARSE_REQUIRED_MISSING);
    assert_int_equal(refuse("MSH|^~\\&|A|B|||20240102||ADT^A04||P|2.5"), HL7_PARSE_REQUIRED_MISSING);
    assert_int_equal(refuse("MSH|^~\\&|A|B|||20240102||ADT^A04|1|P|"), HL7_PARSE_REQUIRED_MISSING);
    assert_int_equal(refuse("MSH|^~\\&|A|B|||20240102||ADT^A04|1|P"), HL7_PARSE_REQUIRED_MISSING);
    assert_int_equal(refuse("MSH|^~\\&|A|B|||20240102||ADT^A04|1"), HL7_PARSE_REQUIRED_MISSING);
    assert_int_equal(refuse("MSH|^~\\&"), HL7_PARSE_REQUIRED_MISSING);
    assert_int_equal(refuse("MSH|^~\\&\rPID|1"), HL7_PARSE_REQUIRED_MISSING);
    /* the reason names the field */
    hl7_parse_error_t perr;
    char why[128];
    const char *text = "MSH|^~\\&|A|B|||20240102||ADT^A04||P|2.5";
    assert_null(hl7_parse(text, strlen(text), &perr, why, sizeof(why)));
    assert_non_null(strstr(why, "MSH-10"));
    /* only the control id's first component is required to be there */
    hl7_msg_t *m = parse("MSH|^~\\&|||||||ADT|X||2.3");
    assert_null(hl7_trigger_event(m));
    assert_null(hl7_sending_application(m));
    assert_null(hl7_sending_facility(m));
    hl7_free(m);
}

static void test_versions(void **state)
{
    const char *ok[] = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2", "2.5.1^USA^ISO"};
    char text[256];
    for (size_t i = 0; i != sizeof(ok) / sizeof(ok[0]); ++i) {
        snprintf(text, sizeof(text), "MSH|^~\\&|A|B|||20240102||ADT^A04|1|P|%s\rPID|1", ok[i]);
        hl7_msg_t *m = parse(text);
        assert_int_equal(strncmp(hl7_version(m), ok[i], strlen(hl7_version(m))), 0);
        hl7_free(m);
    }
    const char *refused[] = {"2.1",  "2.2",  "2.3.2",   "2.5.2", "2.9", "3.0", "2",        "v2.5",
                             "2.5 ", " 2.5", "2.5.1.1", "2.8.3", "25",  "2,5", "2.5\\F\\", "x"};
    for (size_t i = 0; i != sizeof(refused) / sizeof(refused[0]); ++i) {
        snprintf(text, sizeof(text), "MSH|^~\\&|A|B|||20240102||ADT^A04|1|P|%s\rPID|1", refused[i]);
        assert_int_equal(refuse(text), HL7_PARSE_VERSION);
    }
}

/* ---- character sets ---- */

static void test_charsets(void **state)
{
    hl7_msg_t *m;
    /* ASCII (or nothing): plain ASCII, then bytes that are valid UTF-8 (kept), then bytes that are not (ISO 8859-1) */
    m = parse(MSH_STD "||||||ASCII\rNTE|1||plain");
    assert_string_equal(hl7_val(m, 1, 3, 1), "plain");
    hl7_free(m);
    m = parse(MSH_STD "\rNTE|1||Ren\xC3\xA9\\XC3A9\\");
    assert_string_equal(hl7_val(m, 1, 3, 1), "Ren\xC3\xA9\xC3\xA9");
    hl7_free(m);
    m = parse(MSH_STD "||||||ascii\rNTE|1||Ren\xE9");
    assert_string_equal(hl7_val(m, 1, 3, 1), "Ren\xC3\xA9");
    hl7_free(m);
    /* \XE9\ in an ASCII message that is otherwise valid UTF-8: not UTF-8, so ISO 8859-1 like the text would be */
    m = parse(MSH_STD "\rNTE|1||Ren\\XE9\\");
    assert_string_equal(hl7_val(m, 1, 3, 1), "Ren\xC3\xA9");
    hl7_free(m);

    /* 8859/1: é as 0xE9, in the text and through \XE9\; trimmed and case-insensitive */
    m = parse(MSH_STD "||||||8859/1\rPID|1||||M\xFCller^Ren\xE9~\\XE9\\t\\XE9\\");
    assert_string_equal(hl7_val(m, 1, 5, 1), "M\xC3\xBCller");
    assert_string_equal(hl7_val(m, 1, 5, 2), "Ren\xC3\xA9");
    assert_string_equal(hl7_get(m, 1, 5, 2, 1, 1), "\xC3\xA9t\xC3\xA9");
    hl7_free(m);
    m = parse(MSH_STD "|||||| 8859/1 ~UNICODE UTF-8\rNTE|1||\xE9\xC3\xA9");
    assert_string_equal(hl7_val(m, 1, 3, 1), "\xC3\xA9\xC3\x83\xC2\xA9"); /* the first repetition rules */
    hl7_free(m);

    /* UNICODE UTF-8 (and UTF-8): must be UTF-8 */
    m = parse(MSH_STD "||||||UNICODE UTF-8\rNTE|1||Ren\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\\XC3A9\\");
    assert_string_equal(hl7_val(m, 1, 3, 1), "Ren\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\xC3\xA9");
    hl7_free(m);
    m = parse(MSH_STD "||||||unicode utf-8\rNTE|1||\\XE9\\x\\XC3\\\\XE282\\");
    assert_string_equal(hl7_val(m, 1, 3, 1), "\xEF\xBF\xBDx\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); /* U+FFFD per bad byte */
    hl7_free(m);
    m = parse(MSH_STD "||||||UNICODE UTF-8\rPID|1||X||\xE5\xB1\xB1\xE7\x94\xB0\r");
    assert_string_equal(hl7_val(m, 1, 5, 1), "\xE5\xB1\xB1\xE7\x94\xB0");
    hl7_free(m);
    m = parse(MSH_STD "||||||UTF-8\rNTE|1||\xC3\xA9");
    assert_string_equal(hl7_val(m, 1, 3, 1), "\xC3\xA9");
    hl7_free(m);
    assert_int_equal(refuse(MSH_STD "||||||UNICODE UTF-8\rNTE|1||Ren\xE9"), HL7_PARSE_CHARSET);
    assert_int_equal(refuse(MSH_STD "||||||UNICODE UTF-8\rNTE|1||\xC0\xAF"), HL7_PARSE_CHARSET);         /* overlong '/' */
    assert_int_equal(refuse(MSH_STD "||||||UNICODE UTF-8\rNTE|1||\xE0\x80\xAF"), HL7_PARSE_CHARSET);     /* overlong */
    assert_int_equal(refuse(MSH_STD "||||||UNICODE UTF-8\rNTE|1||\xED\xA0\x80"), HL7_PARSE_CHARSET);     /* surrogate */
    assert_int_equal(refuse(MSH_STD "||||||UNICODE UTF-8\rNTE|1||\xF4\x90\x80\x80"), HL7_PARSE_CHARSET); /* > U+10FFFF */
    assert_int_equal(refuse(MSH_STD "||||||UNICODE UTF-8\rNTE|1||\xE2\x82"), HL7_PARSE_CHARSET);         /* truncated */
    assert_int_equal(refuse(MSH_STD "||||||UNICODE UTF-8\rNTE|1||\xE2\x82"), HL7_PARSE_CHARSET);
    /* delimiter escapes in the name: '-' as the repetition separator */
    m = parse("MSH|^-\\&|A|B|||20240102||ADT^A04|1|P|2.5||||||UNICODE UTF\\R\\8\rNTE|1||\xC3\xA9-x");
    assert_string_equal(hl7_val(m, 1, 3, 1), "\xC3\xA9");
    assert_int_equal(hl7_repetitions(m, 1, 3), 2);
    hl7_free(m);
    assert_int_equal(refuse("MSH|^-\\&|A|B|||20240102||ADT^A04|1|P|2.5||||||UNICODE UTF\\R\\8\rNTE|1||\xE9"), HL7_PARSE_CHARSET);
    /* '.' as the component separator: the version has to be escaped */
    m = parse("MSH|.~\\&|A|B|||20240102||ADT.A04|1|P|2\\S\\5\\S\\1");
    assert_string_equal(hl7_version(m), "2.5.1");
    assert_string_equal(hl7_trigger_event(m), "A04");
    hl7_free(m);
    assert_int_equal(refuse("MSH|.~\\&|A|B|||20240102||ADT.A04|1|P|2.5.1"), HL7_PARSE_VERSION);
    /* anything else */
    assert_int_equal(refuse(MSH_STD "||||||ISO IR87\rNTE|1||x"), HL7_PARSE_CHARSET);
    assert_int_equal(refuse(MSH_STD "||||||UNICODE\rNTE|1||x"), HL7_PARSE_CHARSET);
    assert_int_equal(refuse(MSH_STD "||||||8859/15\rNTE|1||x"), HL7_PARSE_CHARSET);
    assert_int_equal(refuse(MSH_STD "||||||ASCIIASCIIASCIIASCIIASCIIASCIIASCIIASCII\rNTE|1||x"), HL7_PARSE_CHARSET);
    assert_int_equal(refuse(MSH_STD "||||||UNICODE UTF-8UNICODE UTF-8UNICODE UTF-8\rNTE|1||x"), HL7_PARSE_CHARSET);
    /* NUL bytes anywhere */
    static const char nul[] = MSH_STD "\rNTE|1||a\0b";
    assert_int_equal(refuse_len(nul, sizeof(nul) - 1), HL7_PARSE_DATA_TYPE);
    static const char nul_msh[] = "MSH|^~\\&|A\0|B|||20240102||ADT^A04|1|P|2.5";
    assert_int_equal(refuse_len(nul_msh, sizeof(nul_msh) - 1), HL7_PARSE_DATA_TYPE);
}

/* ---- escapes ---- */

static void test_escapes_fields(void **state)
{
    hl7_msg_t *m = parse(HDR "\rNTE|1||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f|x\\.br\\y|\\H\\bold\\N\\ normal|\\X41424344\\|tail\\|\\Q\\|"
                             "\\Zfoo\\z|\"\"\r");
    assert_string_equal(hl7_val(m, 1, 3, 1), "a|b^c&d~e\\f");
    assert_string_equal(hl7_val(m, 1, 4, 1), "x\ny");
    assert_string_equal(hl7_val(m, 1, 5, 1), "bold normal");
    assert_string_equal(hl7_val(m, 1, 6, 1), "ABCD");
    assert_string_equal(hl7_val(m, 1, 7, 1), "tail\\"); /* unterminated: literal */
    assert_string_equal(hl7_val(m, 1, 8, 1), "\\Q\\");  /* unknown: literal */
    assert_string_equal(hl7_val(m, 1, 9, 1), "z");      /* \Z..\ is dropped */
    assert_string_equal(hl7_val(m, 1, 10, 1), "\"\"");  /* the explicit null */
    hl7_free(m);
    /* \X..\ in a UTF-8 message: valid sequences pass, broken bytes become U+FFFD, an odd digit is ignored */
    m = parse(HDR "||||||UNICODE UTF-8\rNTE|1||\\XC3A9\\|\\XFF41\\|\\X414\\\r");
    assert_string_equal(hl7_val(m, 1, 3, 1), "\xC3\xA9");
    assert_string_equal(hl7_val(m, 1, 4, 1), "\357\277\275A"); /* U+FFFD, then A */
    assert_string_equal(hl7_val(m, 1, 5, 1), "A");
    hl7_free(m);
    /* a lone escape at the very end, \X with no digits */
    m = parse(HDR "\rNTE|1||end\\|\\X\\\r");
    assert_string_equal(hl7_val(m, 1, 3, 1), "end\\");
    assert_string_equal(hl7_val(m, 1, 4, 1), "\\X\\");
    hl7_free(m);
}

static const char *esc(hl7_msg_t **m, const char *value)
{
    char text[4096];
    snprintf(text, sizeof(text), MSH_STD "\rNTE|1||%s", value);
    hl7_free(*m);
    *m = parse(text);
    return hl7_val(*m, 1, 3, 1);
}

static void test_escapes(void **state)
{
    hl7_msg_t *m = NULL;
    assert_string_equal(esc(&m, "\\F\\\\S\\\\T\\\\R\\\\E\\"), "|^&~\\");
    assert_string_equal(esc(&m, "a\\.br\\b"), "a\nb");
    assert_string_equal(esc(&m, "\\X41424344\\"), "ABCD");
    assert_string_equal(esc(&m, "\\x41\\"), "\\x41\\"); /* escapes are case-sensitive */
    assert_string_equal(esc(&m, "\\Xe9\\"), "\xC3\xA9");
    assert_string_equal(esc(&m, "a\\X0D0A\\b"), "a\r\nb");
    assert_string_equal(esc(&m, "a\\X00\\b"), "ab");
    assert_null(esc(&m, "\\X00\\"));
    /* highlighting and formatting: dropped */
    assert_string_equal(esc(&m, "a\\H\\bold\\N\\z"), "aboldz");
    assert_string_equal(esc(&m, "a\\Zlocal\\b"), "ab");
    assert_string_equal(esc(&m, "a\\C2842\\b\\C2D41\\c"), "abc");
    assert_string_equal(esc(&m, "a\\M2442\\b"), "ab");
    assert_string_equal(esc(&m, "a\\.sp\\b\\.sp2\\c\\.in+4\\d\\.ti-2\\e\\.fi\\\\.nf\\\\.sk3\\\\.ce\\f"), "abcdef");
    assert_null(esc(&m, "\\H\\"));
    assert_null(esc(&m, "\\H\\\\N\\"));
    /* unknown or malformed: kept as written */
    assert_string_equal(esc(&m, "a\\Q\\b"), "a\\Q\\b");
    assert_string_equal(esc(&m, "a\\\\b"), "a\\\\b");
    assert_string_equal(esc(&m, "\\Fx\\"), "\\Fx\\");
    /* \X with an odd number of digits: the last one is ignored */
    assert_string_equal(esc(&m, "\\X414\\"), "A");
    assert_string_equal(esc(&m, "a\\X4\\b"), "ab");
    assert_string_equal(esc(&m, "\\X\\"), "\\X\\");
    assert_string_equal(esc(&m, "\\XGG\\"), "\\XGG\\");
    assert_string_equal(esc(&m, "\\C\\"), "\\C\\");
    assert_string_equal(esc(&m, "\\.\\"), "\\.\\");
    /* unterminated, and a lone escape at the very end */
    assert_string_equal(esc(&m, "abc\\F"), "abc\\F");
    assert_string_equal(esc(&m, "abc\\"), "abc\\");
    assert_string_equal(esc(&m, "\\"), "\\");
    assert_string_equal(esc(&m, "\\F\\x\\"), "|x\\");
    assert_string_equal(esc(&m, "\\E\\\\E\\"), "\\\\");
    assert_string_equal(esc(&m, "\\E\\F\\E\\"), "\\F\\");
    /* escapes in components and sub-components */
    esc(&m, "a\\S\\b^c\\T\\d&e");
    assert_string_equal(hl7_get(m, 1, 3, 1, 1, 1), "a^b");
    assert_string_equal(hl7_get(m, 1, 3, 1, 2, 1), "c&d");
    assert_string_equal(hl7_get(m, 1, 3, 1, 2, 2), "e");
    assert_int_equal(hl7_components(m, 1, 3, 1), 2);
    /* a long \X run */
    char value[1400] = "\\X";
    for (int i = 0; i < 600; ++i)
        strcat(value, i % 2 ? "42" : "41");
    strcat(value, "\\");
    const char *v = esc(&m, value);
    assert_int_equal(strlen(v), 600);
    assert_int_equal(strncmp(v, "ABABAB", 6), 0);
    assert_int_equal(v[599], 'B');
    hl7_free(m);

    /* escapes in MSH fields, except MSH-1 and MSH-2 */
    m = parse("MSH|^~\\&|A\\T\\B|F\\S\\G|||20240102||ADT^A04|\\E\\1|P|2.5");
    assert_string_equal(hl7_sending_application(m), "A&B");
    assert_string_equal(hl7_sending_facility(m), "F^G");
    assert_string_equal(hl7_control_id(m), "\\1");
    hl7_free(m);
}

/* ---- hostile and truncated input ---- */

static void test_hostile(void **state)
{
    assert_int_equal(refuse(""), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(refuse("\r\n\r\n"), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(refuse("M"), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(refuse("MS"), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(refuse("MSH"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH|"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH|^"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("MSH|^~"), HL7_PARSE_REQUIRED_MISSING);
    assert_int_equal(refuse("MSH|^~\\&|"), HL7_PARSE_REQUIRED_MISSING);
    assert_int_equal(refuse("MSH\r"), HL7_PARSE_DATA_TYPE);
    assert_int_equal(refuse("\xEF\xBB\xBF"), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(refuse("\xEF\xBB"), HL7_PARSE_SEGMENT_SEQUENCE);
    /* no data at all, and the out-parameters optional */
    hl7_parse_error_t perr;
    char why[64];
    assert_null(hl7_parse(NULL, 0, &perr, why, sizeof(why)));
    assert_int_equal(perr, HL7_PARSE_SEGMENT_SEQUENCE);
    assert_null(hl7_parse("PID", 3, NULL, NULL, 0));
    char tiny[1] = {'x'};
    assert_null(hl7_parse("PID", 3, &perr, tiny, 0));
    assert_int_equal(tiny[0], 'x');
    assert_null(hl7_parse("PID", 3, &perr, tiny, 1));
    assert_int_equal(tiny[0], '\0');

    /* every prefix of a message: refused or parsed, never read past the end */
    const char *full = MSH_STD "||||||8859/1\rPID|1||a^b&c~d||\\XE9\\\\F\\\\.br\\x\\";
    for (size_t n = 0; n <= strlen(full); ++n) {
        char *copy = malloc(n + 1);
        memcpy(copy, full, n);
        hl7_msg_t *m = hl7_parse(copy, n, &perr, why, sizeof(why));
        if (m != NULL) {
            for (size_t s = 0; s < hl7_segment_count(m); ++s)
                for (unsigned f = 1; f < 22; ++f)
                    for (unsigned c = 1; c < 4; ++c)
                        hl7_get(m, s, f, 1, c, 1);
            hl7_free(m);
        }
        free(copy);
    }

    /* field counts: 1000 fields pass, 1001 do not (MSH-1 counts) */
    util_buf_t b;
    util_buf_init(&b);
    util_buf_puts(&b, MSH_STD "\rOBX");
    for (int i = 0; i < HL7_MAX_FIELDS; ++i)
        util_buf_puts(&b, "|x");
    hl7_msg_t *m = parse_len(b.base, b.len);
    assert_string_equal(hl7_val(m, 1, HL7_MAX_FIELDS, 1), "x");
    assert_null(hl7_val(m, 1, HL7_MAX_FIELDS + 1, 1));
    hl7_free(m);
    util_buf_puts(&b, "|");
    assert_int_equal(refuse_len(b.base, b.len), HL7_PARSE_TOO_LARGE);
    b.len = 0;
    util_buf_puts(&b, MSH_STD);
    for (int i = 12; i < HL7_MAX_FIELDS; ++i)
        util_buf_puts(&b, "|");
    m = parse_len(b.base, b.len);
    hl7_free(m);
    util_buf_puts(&b, "|");
    assert_int_equal(refuse_len(b.base, b.len), HL7_PARSE_TOO_LARGE);
    /* a hundred thousand separators in one field */
    b.len = 0;
    util_buf_puts(&b, MSH_STD "\rNTE|1||");
    for (int i = 0; i < 100000; ++i)
        util_buf_puts(&b, "^~&\\");
    m = parse_len(b.base, b.len);
    assert_int_equal(hl7_repetitions(m, 1, 3), 100001);
    assert_int_equal(hl7_components(m, 1, 3, 1), 2);
    assert_null(hl7_get(m, 1, 3, 100001, 1, 1));
    assert_string_equal(hl7_get(m, 1, 3, 100001, 1, 2), "\\");
    hl7_free(m);

    /* segment counts */
    b.len = 0;
    util_buf_puts(&b, MSH_STD);
    for (int i = 1; i < HL7_MAX_SEGMENTS; ++i)
        util_buf_puts(&b, "\rNTE|1");
    m = parse_len(b.base, b.len);
    assert_int_equal(hl7_segment_count(m), HL7_MAX_SEGMENTS);
    hl7_free(m);
    util_buf_puts(&b, "\n\n\r\r"); /* blank lines are not segments */
    m = parse_len(b.base, b.len);
    hl7_free(m);
    util_buf_puts(&b, "NTE");
    assert_int_equal(refuse_len(b.base, b.len), HL7_PARSE_TOO_LARGE);
    /* a thousand escape characters in a row */
    b.len = 0;
    util_buf_puts(&b, MSH_STD "\rNTE|1||");
    for (int i = 0; i < 1001; ++i)
        util_buf_puts(&b, "\\");
    m = parse_len(b.base, b.len);
    assert_int_equal(strlen(hl7_val(m, 1, 3, 1)), 1001);
    hl7_free(m);
    util_buf_dispose(&b);
}

/* ---- the header peek ---- */

static void test_peek_header(void **state)
{
    hl7_delims_t d;
    char app[16], fac[16], ctrl[16], ver[16];
    const char *text = "MSH|^~\\&|APP^X|FAC^Y|||20240102||ADT^A04|CTRL^1|P|2.5.1^USA\rPID|1";
    assert_int_equal(hl7_peek_header(text, strlen(text), &d, app, fac, ctrl, ver, sizeof(app)), 0);
    assert_memory_equal(&d, &hl7_default_delims, sizeof(d));
    assert_string_equal(app, "APP");
    assert_string_equal(fac, "FAC");
    assert_string_equal(ctrl, "CTRL^1"); /* the whole field */
    assert_string_equal(ver, "2.5.1");

    text = "MSH|^~\\&|APP^x|FAC|R|F|2026||SIU^S12|CTRL-9|P|2.2\rgarbage";
    assert_int_equal(hl7_peek_header(text, strlen(text), &d, app, fac, ctrl, ver, sizeof(app)), 0);
    assert_string_equal(app, "APP");
    assert_string_equal(ctrl, "CTRL-9");
    assert_string_equal(ver, "2.2");

    /* a version we refuse, a charset we refuse: the AR still gets its header */
    text = "MSH|$%*#|A$1|F|||20240102||ADT$A04|C*F*|P|9.9|||||KOI8-R\rPID|1";
    assert_int_equal(hl7_peek_header(text, strlen(text), &d, app, fac, ctrl, ver, sizeof(app)), 0);
    assert_int_equal(d.component, '$');
    assert_int_equal(d.escape, '*');
    assert_string_equal(app, "A");
    assert_string_equal(ctrl, "C*F*"); /* raw */
    assert_string_equal(ver, "9.9");

    /* truncated to the buffer, control characters left out, only the first line */
    text = "\r\nMSH|^~\\&|APPLICATION-NAME-THAT-IS-LONG|F\x01\x7fG|||20240102||ADT^A04|1234567890123456789\n"
           "PID|1|||||||||||||||||||||||||||||||";
    assert_int_equal(hl7_peek_header(text, strlen(text), &d, app, fac, ctrl, ver, sizeof(app)), 0);
    assert_string_equal(app, "APPLICATION-NAM");
    assert_string_equal(fac, "FG");
    assert_string_equal(ctrl, "123456789012345");
    assert_string_equal(ver, "");

    /* unusable MSH-2: the field separator still finds the fields; the other delimiters are usable ones */
    text = "MSH|^^\\&|APP|FAC|||20240102||ADT^A04|77|P|2.4";
    assert_int_equal(hl7_peek_header(text, strlen(text), &d, app, fac, ctrl, ver, sizeof(app)), 0);
    assert_int_equal(d.field, '|');
    assert_memory_equal(&d, &hl7_default_delims, sizeof(d));
    assert_string_equal(ctrl, "77");
    assert_string_equal(ver, "2.4");
    text = "MSH^A";
    assert_int_equal(hl7_peek_header(text, strlen(text), &d, app, fac, ctrl, ver, sizeof(app)), 0);
    assert_int_equal(d.field, '^');
    const char all[] = {d.field, d.component, d.repetition, d.escape, d.subcomponent};
    for (size_t i = 0; i != 5; ++i)
        for (size_t j = i + 1; j != 5; ++j)
            assert_int_not_equal(all[i], all[j]);
    assert_string_equal(app, "");

    /* not a message at all */
    const char *bad[] = {"", "M", "MSH", "MSHA^~\\&", "PID|1||", "MSH ^~\\&|", "MSH\r^~"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        strcpy(app, "old");
        assert_int_equal(hl7_peek_header(bad[i], strlen(bad[i]), &d, app, fac, ctrl, ver, sizeof(app)), -1);
        assert_string_equal(app, "");
    }
    assert_int_equal(hl7_peek_header(NULL, 0, &d, app, fac, ctrl, ver, sizeof(app)), -1);
    /* the length is honoured: nothing past it is read */
    text = "MSH|^~\\&|APP|FAC";
    char *copy = malloc(12);
    memcpy(copy, text, 12);
    assert_int_equal(hl7_peek_header(copy, 12, &d, app, fac, ctrl, ver, sizeof(app)), 0);
    assert_string_equal(app, "APP");
    assert_string_equal(fac, "");
    free(copy);
}

/* ---- escaping for writing ---- */

static char *escaped(const char *text, const hl7_delims_t *d)
{
    util_buf_t b;
    util_buf_init(&b);
    hl7_escape(&b, text, d);
    return b.base;
}

static void test_escape_writing(void **state)
{
    char *s = escaped("a|b^c~d\\e&f\ng\th\x7fi\rj\r\nk\xC3\xA9l\xE9m", &hl7_default_delims);
    assert_string_equal(s, "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\.br\\g\\X09\\h\\X7F\\i\\X0D\\j\\.br\\k\xC3\xA9l\xEF\xBF\xBDm");
    free(s);
    s = escaped("", &hl7_default_delims);
    assert_string_equal(s, "");
    free(s);
    /* other delimiters: only theirs are escaped */
    const hl7_delims_t odd = {'#', '$', '%', '*', '!'};
    s = escaped("a|b^c#d$e%f*g!h\n", &odd);
    assert_string_equal(s, "a|b^c*F*d*S*e*R*f*E*g*T*h*.br*");
    free(s);
    /* without an escape character there is nothing to escape with: blanks */
    const hl7_delims_t plain = {'|', '^', '~', 0, 0};
    s = escaped("a|b^c~d\\e&f\ng\r\nh", &plain);
    assert_string_equal(s, "a b c d\\e&f g h");
    free(s);
}

/* Escaped text put into a message parses back to the same text (CRLF comes back as LF). */
static void test_escape_round_trip(void **state)
{
    const char *texts[] = {"plain",
                           "|^~\\&",
                           "\\F\\ literally",
                           "line 1\nline 2\r\nline 3\rend",
                           "tab\there, bell\a, esc\x1b, del\x7f",
                           "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
                           "\\",
                           "\\\\X41\\",
                           "\"\"",
                           "a^b~c&d|e\\f#g$h%i*j!k"};
    const hl7_delims_t sets[] = {
        hl7_default_delims, {'#', '$', '%', '*', '!'}, {'+', '^', '~', '\\', 0}, {'|', '^', '~', '\\', '&'}};
    const char *headers[] = {"|^~\\&", "#$%*!", "+^~\\", "|^~\\&"};
    const char *charsets[] = {"", "", "", "UNICODE UTF-8"};
    for (size_t k = 0; k != sizeof(sets) / sizeof(sets[0]); ++k) {
        const hl7_delims_t *d = &sets[k];
        for (size_t i = 0; i != sizeof(texts) / sizeof(texts[0]); ++i) {
            util_buf_t b;
            util_buf_init(&b);
            char f = d->field;
            util_buf_printf(&b, "MSH%s", headers[k]);
            util_buf_printf(&b, "%cA%cB%c%c%c20240102%c%cADT%cA04%c", f, f, f, f, f, f, f, d->component, f);
            hl7_escape(&b, texts[i], d); /* the control id */
            util_buf_printf(&b, "%cP%c2.5.1%c%c%c%c%c%c%s\rNTE%c1%c%c", f, f, f, f, f, f, f, f, charsets[k], f, f, f);
            hl7_escape(&b, texts[i], d);
            hl7_msg_t *m = parse_len(b.base, b.len);
            char want[256];
            size_t n = 0;
            for (const char *p = texts[i]; *p != '\0'; ++p)
                if (!(p[0] == '\r' && p[1] == '\n'))
                    want[n++] = *p;
            want[n] = '\0';
            assert_string_equal(hl7_control_id(m), want);
            assert_string_equal(hl7_val(m, 1, 3, 1), want);
            assert_int_equal(hl7_components(m, 1, 3, 1), 1);
            assert_int_equal(hl7_repetitions(m, 1, 3), 1);
            hl7_free(m);
            util_buf_dispose(&b);
        }
    }
}

/* ---- timestamps ---- */

static long long dtm(const char *text, int offset, int *precision)
{
    long long t = 0;
    int p = 0;
    if (hl7_parse_dtm(text, offset, &t, &p) != 0)
        fail_msg("%s should be a timestamp", text);
    if (precision != NULL)
        *precision = p;
    return t;
}

static void test_dtm(void **state)
{
    int p;
    assert_int_equal(dtm("19700101000000", 0, &p), 0);
    assert_int_equal(p, 14);
    assert_int_equal(dtm("20240229123456", 0, NULL), 1709210096LL);
    assert_int_equal(dtm("20240229123456.1234", 0, &p), 1709210096LL);
    assert_int_equal(p, 14);
    assert_int_equal(dtm("20240229123456.5+0000", 0, NULL), 1709210096LL);
    assert_int_equal(dtm("20240229123456-0500", 0, NULL), 1709210096LL + 5 * 3600);
    assert_int_equal(dtm("20240229123456+0530", 0, NULL), 1709210096LL - 5 * 3600 - 1800);
    assert_int_equal(dtm("20240229123456+1400", 0, NULL), 1709210096LL - 14 * 3600);
    assert_int_equal(dtm("20240229123456-1200", 0, NULL), 1709210096LL + 12 * 3600);
    assert_int_equal(dtm("20240229123456-0000", 0, NULL), 1709210096LL);
    /* precision: missing parts at their minimum */
    assert_int_equal(dtm("2024", 0, &p), 1704067200LL);
    assert_int_equal(p, 4);
    assert_int_equal(dtm("202402", 0, &p), 1706745600LL);
    assert_int_equal(p, 6);
    assert_int_equal(dtm("20240229", 0, &p), 1709164800LL);
    assert_int_equal(p, 8);
    assert_int_equal(dtm("2024022912", 0, &p), 1709164800LL + 12 * 3600);
    assert_int_equal(p, 10);
    assert_int_equal(dtm("202402291234", 0, &p), 1709164800LL + 12 * 3600 + 34 * 60);
    assert_int_equal(p, 12);
    assert_int_equal(dtm("202402291234+0100", 0, &p), 1709164800LL + 11 * 3600 + 34 * 60);
    assert_int_equal(dtm("20240229+0100", 0, &p), 1709164800LL - 3600);
    /* the default offset, east of UTC */
    assert_int_equal(dtm("20240229123456", 3600, NULL), 1709210096LL - 3600);
    assert_int_equal(dtm("20240229123456", -18000, NULL), 1709210096LL + 18000);
    assert_int_equal(dtm("20240229123456+0000", 3600, NULL), 1709210096LL);
    /* a TS's degree of precision (second component), whatever the component separator */
    assert_int_equal(dtm("20240229123456^S", 0, NULL), 1709210096LL);
    assert_int_equal(dtm("20240229123456+0100$M", 0, NULL), 1709210096LL - 3600);
    assert_int_equal(dtm("20240229^D", 0, NULL), 1709164800LL);
    /* calendar edges */
    assert_int_equal(dtm("20000229", 0, NULL), 951782400LL);
    assert_int_equal(dtm("19691231235959", 0, NULL), -1);
    assert_int_equal(dtm("00000101", 0, NULL), -62167219200LL);
    assert_int_equal(dtm("99991231235959", 0, NULL), 253402300799LL);
    assert_int_equal(dtm("20231231", 0, NULL), 1703980800LL);
    assert_int_equal(dtm("20240430", 0, NULL), 1714435200LL);

    assert_int_equal(dtm("20260302090000", 0, &p), 1772442000LL);
    assert_int_equal(dtm("202603020900+0100", 0, &p), 1772442000LL - 3600);
    assert_int_equal(p, 12);
    assert_int_equal(dtm("20260302090000.1234-0530", 0, &p), 1772442000LL + 5 * 3600 + 30 * 60);
    assert_int_equal(dtm("2026030209", 3600, &p), 1772442000LL - 3600);

    long long t = 42;
    p = 42;
    const char *bad[] = {"",
                         "2",
                         "202",
                         "20245",
                         "202402291",
                         "202402291234567",
                         "2024022912345678",
                         "20241301",
                         "20240001",
                         "20240100",
                         "20240132",
                         "20230229",
                         "19000229",
                         "20240431",
                         "2024022924",
                         "202402292360",
                         "20240229235960",
                         "20240229123456+1401",
                         "20240229123456-1201",
                         "20240229123456+0560",
                         "20240229123456+05",
                         "20240229123456+05000",
                         "20240229123456.",
                         "20240229123456.12345",
                         "202402291234.5",
                         "2024.5",
                         "20240229x",
                         "20240229 ",
                         "x2024",
                         "2024-02-29",
                         "20240229123456+0100x",
                         "20240229123456.1.2",
                         "20240229T1234",
                         "-2024",
                         "+2024",
                         "２０２４",
                         "20260230",
                         "20260302250000",
                         "20260302096000",
                         "20260302090060",
                         "2026030209+01",
                         "20260302090000+1260",
                         "20260302090000+1500"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        if (hl7_parse_dtm(bad[i], 0, &t, &p) == 0)
            fail_msg("\"%s\" should not be a timestamp", bad[i]);
    }
    assert_int_equal(hl7_parse_dtm(NULL, 0, &t, &p), -1);
    assert_int_equal(t, 42); /* untouched on failure */
    assert_int_equal(p, 42);
    assert_int_equal(hl7_parse_dtm("2024", 0, &t, NULL), 0);

    char buf[32];
    hl7_format_dtm(0, buf, sizeof(buf));
    assert_string_equal(buf, "19700101000000+0000");
    hl7_format_dtm(1709210096LL, buf, sizeof(buf));
    assert_string_equal(buf, "20240229123456+0000");
    hl7_format_dtm(-1, buf, sizeof(buf));
    assert_string_equal(buf, "19691231235959+0000");
    hl7_format_dtm(-62167219200LL, buf, sizeof(buf));
    assert_string_equal(buf, "00000101000000+0000");
    hl7_format_dtm(-62167219201LL, buf, sizeof(buf)); /* before year 0: clamped */
    assert_string_equal(buf, "00000101000000+0000");
    hl7_format_dtm(253402300799LL, buf, sizeof(buf));
    assert_string_equal(buf, "99991231235959+0000");
    hl7_format_dtm(1LL << 62, buf, sizeof(buf));
    assert_string_equal(buf, "99991231235959+0000");
    hl7_format_dtm(-(1LL << 62), buf, sizeof(buf));
    assert_string_equal(buf, "00000101000000+0000");
    hl7_format_dtm(0, buf, 20);
    assert_string_equal(buf, "19700101000000+0000");
    hl7_format_dtm(0, buf, 9); /* too small: truncated, still a string */
    assert_string_equal(buf, "19700101");
    /* formatting and parsing agree, day by day over four centuries' edges */
    for (long long x = -2208988800LL; x < 4102444800LL; x += 86400 * 7 + 3599) {
        hl7_format_dtm(x, buf, sizeof(buf));
        assert_int_equal(dtm(buf, 7200, &p), x);
        assert_int_equal(p, 14);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_all),
        cmocka_unit_test(test_sample_values),
        cmocka_unit_test(test_delimiters_standard),
        cmocka_unit_test(test_delimiters_nonstandard),
        cmocka_unit_test(test_delimiters_refused),
        cmocka_unit_test(test_addressing),
        cmocka_unit_test(test_addressing_pid),
        cmocka_unit_test(test_escapes_fields),
        cmocka_unit_test(test_terminators),
        cmocka_unit_test(test_segment_names),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_charsets),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_peek_header),
        cmocka_unit_test(test_escape_writing),
        cmocka_unit_test(test_escape_round_trip),
        cmocka_unit_test(test_dtm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

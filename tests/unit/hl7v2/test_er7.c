/* The ER7 parser (hl7v2/er7.c): delimiters, addressing, escapes, character sets, versions, hostile input, timestamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hl7v2/er7.h"

static hl7_msg_t *parse_ok(const char *text)
{
    hl7_parse_error_t perr;
    char why[256];
    hl7_msg_t *m = hl7_parse(text, strlen(text), &perr, why, sizeof(why));
    if (m == NULL)
        fail_msg("expected to parse, got %d: %s", perr, why);
    return m;
}

static hl7_parse_error_t parse_err(const char *text, size_t len)
{
    hl7_parse_error_t perr = HL7_PARSE_OK;
    char why[256];
    hl7_msg_t *m = hl7_parse(text, len, &perr, why, sizeof(why));
    if (m != NULL) {
        hl7_free(m);
        fail_msg("expected a parse error for %.40s", text);
    }
    assert_true(why[0] != '\0');
    return perr;
}

#define HDR "MSH|^~\\&|APP|FAC|RAPP|RFAC|20260101120000||SIU^S12^SIU_S12|CTRL-1|P|2.5.1"

static void test_addressing(void **state)
{
    hl7_msg_t *m = parse_ok(HDR "\rPID|1||A1^^^AUTH&1.2.3&ISO^MR~B2^^^OTHER||Doe^Jane^Q~Roe^Jo||19800102|F\r");
    assert_int_equal(hl7_segment_count(m), 2);
    assert_string_equal(hl7_segment_name(m, 1), "PID");
    assert_int_equal(hl7_find(m, "PID", 0), 1);
    assert_int_equal(hl7_find(m, "PID", 2), -1);
    assert_int_equal(hl7_find(m, "SCH", 0), -1);
    /* MSH-1 and MSH-2 as the standard numbers them */
    assert_string_equal(hl7_get(m, 0, 1, 1, 1, 1), "|");
    assert_string_equal(hl7_get(m, 0, 2, 1, 1, 1), "^~\\&");
    assert_string_equal(hl7_val(m, 0, 3, 1), "APP");
    assert_string_equal(hl7_sending_application(m), "APP");
    assert_string_equal(hl7_sending_facility(m), "FAC");
    assert_string_equal(hl7_message_code(m), "SIU");
    assert_string_equal(hl7_trigger_event(m), "S12");
    assert_string_equal(hl7_val(m, 0, 9, 3), "SIU_S12");
    assert_string_equal(hl7_control_id(m), "CTRL-1");
    assert_string_equal(hl7_version(m), "2.5.1");
    /* repetitions, components, sub-components */
    assert_int_equal(hl7_repetitions(m, 1, 3), 2);
    assert_string_equal(hl7_get(m, 1, 3, 1, 1, 1), "A1");
    assert_string_equal(hl7_get(m, 1, 3, 1, 4, 1), "AUTH");
    assert_string_equal(hl7_get(m, 1, 3, 1, 4, 2), "1.2.3");
    assert_string_equal(hl7_get(m, 1, 3, 1, 4, 3), "ISO");
    assert_string_equal(hl7_get(m, 1, 3, 1, 5, 1), "MR");
    assert_string_equal(hl7_get(m, 1, 3, 2, 1, 1), "B2");
    assert_int_equal(hl7_components(m, 1, 3, 1), 5);
    assert_null(hl7_get(m, 1, 3, 3, 1, 1));   /* no third repetition */
    assert_null(hl7_get(m, 1, 3, 1, 2, 1));   /* empty component */
    assert_null(hl7_get(m, 1, 3, 1, 9, 1));   /* beyond the last component */
    assert_null(hl7_get(m, 1, 40, 1, 1, 1));  /* beyond the last field */
    assert_null(hl7_get(m, 1, 3, 0, 1, 1));   /* numbering starts at 1 */
    assert_int_equal(hl7_repetitions(m, 1, 2), 0);
    assert_string_equal(hl7_get(m, 1, 5, 2, 1, 1), "Roe");
    assert_string_equal(hl7_raw_field(m, 1, 3), "A1^^^AUTH&1.2.3&ISO^MR~B2^^^OTHER");
    assert_null(hl7_raw_field(m, 1, 2));
    hl7_free(m);
}

static void test_other_delimiters(void **state)
{
    /* any five distinct punctuation characters */
    hl7_msg_t *m = parse_ok("MSH#$%*!#A$x#F#R#RF#2026##SIU$S14#C9#P#2.4\nPID#1##V1$$$NS*9.9*ISO%V2\n");
    assert_int_equal(hl7_delims(m)->field, '#');
    assert_int_equal(hl7_delims(m)->component, '$');
    assert_int_equal(hl7_delims(m)->repetition, '%');
    assert_int_equal(hl7_delims(m)->escape, '*');
    assert_int_equal(hl7_delims(m)->subcomponent, '!');
    assert_string_equal(hl7_sending_application(m), "A");
    assert_string_equal(hl7_val(m, 0, 3, 2), "x");
    assert_string_equal(hl7_trigger_event(m), "S14");
    assert_string_equal(hl7_get(m, 1, 3, 1, 4, 1), "NS*9.9*ISO"); /* '*' is the escape: an unknown escape stays literal */
    assert_string_equal(hl7_get(m, 1, 3, 2, 1, 1), "V2");
    hl7_free(m);
    /* only component and repetition given: no escapes, no sub-components */
    m = parse_ok("MSH|^~|A|B|C|D|2026||ADT^A04|C1|P|2.3\rPID|1||X\\F\\Y&Z\r");
    assert_int_equal(hl7_delims(m)->escape, 0);
    assert_int_equal(hl7_delims(m)->subcomponent, 0);
    assert_string_equal(hl7_get(m, 1, 3, 1, 1, 1), "X\\F\\Y&Z");
    assert_null(hl7_get(m, 1, 3, 1, 1, 2));
    hl7_free(m);
}

static void test_segment_ends(void **state)
{
    const char *forms[] = {HDR "\rPID|1||X\rPV1|1|O\r", HDR "\nPID|1||X\nPV1|1|O\n", HDR "\r\nPID|1||X\r\nPV1|1|O\r\n",
                           HDR "\r\r\nPID|1||X\n\nPV1|1|O"};
    for (size_t i = 0; i != sizeof(forms) / sizeof(forms[0]); ++i) {
        hl7_msg_t *m = parse_ok(forms[i]);
        assert_int_equal(hl7_segment_count(m), 3);
        assert_string_equal(hl7_val(m, 1, 3, 1), "X");
        assert_string_equal(hl7_val(m, 2, 2, 1), "O");
        hl7_free(m);
    }
}

static void test_escapes(void **state)
{
    hl7_msg_t *m = parse_ok(HDR "\rNTE|1||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f|x\\.br\\y|\\H\\bold\\N\\ normal|\\X41424344\\|tail\\|\\Q\\|\\Zfoo\\z|\"\"\r");
    assert_string_equal(hl7_val(m, 1, 3, 1), "a|b^c&d~e\\f");
    assert_string_equal(hl7_val(m, 1, 4, 1), "x\ny");
    assert_string_equal(hl7_val(m, 1, 5, 1), "bold normal");
    assert_string_equal(hl7_val(m, 1, 6, 1), "ABCD");
    assert_string_equal(hl7_val(m, 1, 7, 1), "tail\\");     /* unterminated: literal */
    assert_string_equal(hl7_val(m, 1, 8, 1), "\\Q\\");      /* unknown: literal */
    assert_string_equal(hl7_val(m, 1, 9, 1), "z");          /* \Z..\ is dropped */
    assert_string_equal(hl7_val(m, 1, 10, 1), "\"\"");      /* the explicit null */
    hl7_free(m);
    /* \X..\ in a UTF-8 message: valid sequences pass, broken bytes become U+FFFD, an odd digit is ignored */
    m = parse_ok(HDR "||||||UNICODE UTF-8\rNTE|1||\\XC3A9\\|\\XFF41\\|\\X414\\\r");
    assert_string_equal(hl7_val(m, 1, 3, 1), "\xC3\xA9");
    assert_string_equal(hl7_val(m, 1, 4, 1), "\xEF\xBF\xBD" "A");
    assert_string_equal(hl7_val(m, 1, 5, 1), "A");
    hl7_free(m);
}

static void test_charsets(void **state)
{
    /* 8859/1: é is one byte, stored as UTF-8; \XE9\ is the same letter */
    hl7_msg_t *m = parse_ok(HDR "||||||8859/1\rPID|1||X||Ren\xE9\\XE9\\\r");
    assert_string_equal(hl7_val(m, 1, 5, 1), "Ren\xC3\xA9\xC3\xA9");
    hl7_free(m);
    /* ASCII (or nothing) with a Latin-1 byte: read as 8859/1; with valid UTF-8: kept */
    m = parse_ok(HDR "\rPID|1||X||M\xFCller\r");
    assert_string_equal(hl7_val(m, 1, 5, 1), "M\xC3\xBCller");
    hl7_free(m);
    m = parse_ok(HDR "||||||ASCII\rPID|1||X||M\xC3\xBCller\r");
    assert_string_equal(hl7_val(m, 1, 5, 1), "M\xC3\xBCller");
    hl7_free(m);
    m = parse_ok(HDR "||||||UNICODE UTF-8\rPID|1||X||\xE5\xB1\xB1\xE7\x94\xB0\r");
    assert_string_equal(hl7_val(m, 1, 5, 1), "\xE5\xB1\xB1\xE7\x94\xB0");
    hl7_free(m);
    const char bad_utf8[] = HDR "||||||UNICODE UTF-8\rPID|1||X||M\xFCller\r";
    assert_int_equal(parse_err(bad_utf8, strlen(bad_utf8)), HL7_PARSE_CHARSET);
    const char overlong[] = HDR "||||||UNICODE UTF-8\rPID|1||X||\xC0\xAF\r";
    assert_int_equal(parse_err(overlong, strlen(overlong)), HL7_PARSE_CHARSET);
    const char other[] = HDR "||||||ISO IR87\rPID|1||X\r";
    assert_int_equal(parse_err(other, strlen(other)), HL7_PARSE_CHARSET);
}

static void test_versions(void **state)
{
    const char *ok[] = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"};
    for (size_t i = 0; i != sizeof(ok) / sizeof(ok[0]); ++i) {
        char text[128];
        snprintf(text, sizeof(text), "MSH|^~\\&|A|B|C|D|2026||ADT^A04|C|P|%s\rPID|1\r", ok[i]);
        hl7_msg_t *m = parse_ok(text);
        assert_string_equal(hl7_version(m), ok[i]);
        hl7_free(m);
    }
    const char *refused[] = {"2.2", "2.1", "3.0", "2.9", "x"};
    for (size_t i = 0; i != sizeof(refused) / sizeof(refused[0]); ++i) {
        char text[128];
        snprintf(text, sizeof(text), "MSH|^~\\&|A|B|C|D|2026||ADT^A04|C|P|%s\rPID|1\r", refused[i]);
        assert_int_equal(parse_err(text, strlen(text)), HL7_PARSE_VERSION);
    }
}

static void test_hostile(void **state)
{
    assert_int_equal(parse_err("", 0), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(parse_err("PID|1||X\r", 9), HL7_PARSE_SEGMENT_SEQUENCE);
    assert_int_equal(parse_err("MSH", 3), HL7_PARSE_DATA_TYPE);
    assert_int_equal(parse_err("MSH|", 4), HL7_PARSE_DATA_TYPE);
    assert_int_equal(parse_err("MSH|^", 5), HL7_PARSE_DATA_TYPE);
    assert_int_equal(parse_err("MSH|^^\\&|A", 10), HL7_PARSE_DATA_TYPE);  /* duplicate delimiter */
    assert_int_equal(parse_err("MSHA^~\\&|A", 10), HL7_PARSE_DATA_TYPE);  /* alphanumeric separator */
    assert_int_equal(parse_err("MSH|^~\\&|A|B|C|D|2026||||P|2.5\r", 30), HL7_PARSE_REQUIRED_MISSING);
    const char no_control[] = "MSH|^~\\&|A|B|C|D|2026||ADT^A04||P|2.5\r";
    assert_int_equal(parse_err(no_control, strlen(no_control)), HL7_PARSE_REQUIRED_MISSING);
    const char lower[] = HDR "\rpid|1\r";
    assert_int_equal(parse_err(lower, strlen(lower)), HL7_PARSE_DATA_TYPE);
    const char second_msh[] = HDR "\r" HDR "\r";
    assert_int_equal(parse_err(second_msh, strlen(second_msh)), HL7_PARSE_SEGMENT_SEQUENCE);
    const char nul[] = HDR "\rPID|1||X\0Y\r";
    assert_int_equal(parse_err(nul, sizeof(nul) - 1), HL7_PARSE_DATA_TYPE);
    /* too many fields, too many segments */
    util_buf_t b;
    util_buf_init(&b);
    util_buf_puts(&b, HDR "\rNTE");
    for (int i = 0; i <= HL7_MAX_FIELDS; ++i)
        util_buf_puts(&b, "|");
    assert_int_equal(parse_err(b.base, b.len), HL7_PARSE_TOO_LARGE);
    b.len = 0;
    util_buf_puts(&b, HDR);
    for (int i = 0; i <= HL7_MAX_SEGMENTS; ++i)
        util_buf_puts(&b, "\rNTE|1");
    assert_int_equal(parse_err(b.base, b.len), HL7_PARSE_TOO_LARGE);
    util_buf_dispose(&b);
    /* a lone escape at the very end, \X with no digits */
    hl7_msg_t *m = parse_ok(HDR "\rNTE|1||end\\|\\X\\\r");
    assert_string_equal(hl7_val(m, 1, 3, 1), "end\\");
    assert_string_equal(hl7_val(m, 1, 4, 1), "\\X\\");
    hl7_free(m);
}

static void test_peek_header(void **state)
{
    hl7_delims_t d;
    char app[16], fac[16], ctrl[16], ver[16];
    const char text[] = "MSH|^~\\&|APP^x|FAC|R|F|2026||SIU^S12|CTRL-9|P|2.2\rgarbage";
    assert_int_equal(hl7_peek_header(text, strlen(text), &d, app, fac, ctrl, ver, sizeof(app)), 0);
    assert_string_equal(app, "APP");
    assert_string_equal(fac, "FAC");
    assert_string_equal(ctrl, "CTRL-9");
    assert_string_equal(ver, "2.2");
    /* truncated to the buffers */
    const char longer[] = "MSH|^~\\&|AVERYLONGAPPLICATIONNAME|F|R|F|2026||SIU^S12|C|P|2.5";
    assert_int_equal(hl7_peek_header(longer, strlen(longer), &d, app, fac, ctrl, ver, sizeof(app)), 0);
    assert_int_equal(strlen(app), sizeof(app) - 1);
    assert_int_equal(hl7_peek_header("hello", 5, &d, app, fac, ctrl, ver, sizeof(app)), -1);
    assert_string_equal(app, "");
}

static void test_escape_round_trip(void **state)
{
    const char *values[] = {"plain", "a|b^c~d\\e&f", "line one\nline two", "tab\there", "caf\xC3\xA9"};
    for (size_t i = 0; i != sizeof(values) / sizeof(values[0]); ++i) {
        util_buf_t b;
        util_buf_init(&b);
        util_buf_puts(&b, HDR "\rNTE|1||");
        hl7_escape(&b, values[i], &hl7_default_delims);
        util_buf_puts(&b, "\r");
        hl7_msg_t *m = parse_ok(b.base);
        assert_string_equal(hl7_val(m, 1, 3, 1), values[i]); /* the tab travels as \X09\ */
        assert_int_equal(hl7_components(m, 1, 3, 1), 1);
        hl7_free(m);
        util_buf_dispose(&b);
    }
}

static void test_timestamps(void **state)
{
    long long t;
    int p;
    assert_int_equal(hl7_parse_dtm("20260302090000", 0, &t, &p), 0);
    assert_int_equal(t, 1772442000LL);
    assert_int_equal(p, 14);
    assert_int_equal(hl7_parse_dtm("202603020900+0100", 0, &t, &p), 0);
    assert_int_equal(t, 1772442000LL - 3600);
    assert_int_equal(p, 12);
    assert_int_equal(hl7_parse_dtm("20260302090000.1234-0530", 0, &t, &p), 0);
    assert_int_equal(t, 1772442000LL + 5 * 3600 + 30 * 60);
    assert_int_equal(hl7_parse_dtm("2026030209", 3600, &t, &p), 0); /* local to the default offset */
    assert_int_equal(t, 1772442000LL - 3600);
    assert_int_equal(hl7_parse_dtm("2026", 0, &t, &p), 0);
    assert_int_equal(p, 4);
    assert_int_equal(hl7_parse_dtm("20240229", 0, &t, &p), 0); /* leap day */
    assert_int_equal(hl7_parse_dtm("20260302090000^S", 0, &t, &p), 0); /* a TS's precision component */
    const char *bad[] = {"", "202", "20260230", "20230229", "20261301", "20260302250000", "20260302096000", "20260302090060",
                         "2026030209+01", "20260302090000+1260", "20260302090000+1500", "2026-03-02", "20260302090000x", "202603020900.5"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        if (hl7_parse_dtm(bad[i], 0, &t, &p) != -1)
            fail_msg("accepted %s", bad[i]);
    char buf[32];
    hl7_format_dtm(1772442000LL, buf, sizeof(buf));
    assert_string_equal(buf, "20260302090000+0000");
}

static void test_samples(void **state)
{
    /* every sample message of conformance/hl7v2 parses (some end their segments with \n only) */
    const char *names[] = {"mieweb-sample-SIU-S12-v23.hl7", "mieweb-sample-ADT-A08-v23.hl7", "mieweb-outbound-SIU-S14-v25.hl7",
                           "msfhirconv-SIU-S12-01.hl7",     "msfhirconv-ADT-A04-01.hl7",     "msfhirconv-SIU-S26-02.hl7"};
    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i) {
        char path[512];
        snprintf(path, sizeof(path), "%s/conformance/hl7v2/%s", FHIRSCHED_SOURCE_DIR, names[i]);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        char buf[32768];
        size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        hl7_msg_t *m = parse_ok(buf);
        assert_true(hl7_segment_count(m) >= 3);
        assert_non_null(hl7_control_id(m));
        hl7_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addressing), cmocka_unit_test(test_other_delimiters), cmocka_unit_test(test_segment_ends),
        cmocka_unit_test(test_escapes),    cmocka_unit_test(test_charsets),         cmocka_unit_test(test_versions),
        cmocka_unit_test(test_hostile),    cmocka_unit_test(test_peek_header),      cmocka_unit_test(test_escape_round_trip),
        cmocka_unit_test(test_timestamps), cmocka_unit_test(test_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

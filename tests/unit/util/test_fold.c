/* Case and accent folding (util_fold, util_fold_into). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "util/fold.h"

/* Folds `in` both ways and checks that they agree with `want`. */
static void check_fold(const char *in, const char *want)
{
    char *got = util_fold(in);
    assert_string_equal(got, want);
    free(got);

    util_buf_t buf;
    util_buf_init(&buf);
    util_buf_puts(&buf, "<");
    assert_int_equal(util_fold_into(&buf, in), strlen(want));
    util_buf_puts(&buf, ">");
    char *framed = util_asprintf("<%s>", want);
    assert_string_equal(buf.base, framed);
    assert_int_equal(buf.len, strlen(framed));
    free(framed);
    util_buf_dispose(&buf);
}

static void test_ascii(void **state)
{
    check_fold("", "");
    check_fold("Hello, WORLD 123 @[`{~", "hello, world 123 @[`{~");
    check_fold("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz");
    check_fold("already lower", "already lower");
}

static void test_latin1(void **state)
{
    check_fold("ÀÁÂÃÄÅàáâãäå", "aaaaaaaaaaaa");
    check_fold("Ææ Çç ÈÉÊË èéêë ÌÍÎÏ ìíîï", "aeae cc eeee eeee iiii iiii");
    check_fold("Ðð Ññ ÒÓÔÕÖØ òóôõöø", "dd nn oooooo oooooo");
    check_fold("ÙÚÛÜ ùúûü Ýýÿ Þþ ß", "uuuu uuuu yyy thth ss");
    check_fold("Müller-Lüdenscheidt", "muller-ludenscheidt");
    check_fold("Straße", "strasse");
    check_fold("François Pérez", "francois perez");
    /* × and ÷ are not letters: kept. */
    check_fold("2×3÷4", "2×3÷4");
    /* Below U+00C0 nothing changes (symbols, NBSP). */
    check_fold("©®°±µ¶·¿\u00a0", "©®°±µ¶·¿\u00a0");
}

static void test_latin_extended_a(void **state)
{
    check_fold("ĀāĂăĄą ĆćĈĉĊċČč ĎďĐđ", "aaaaaa cccccccc dddd");
    check_fold("ĒēĔĕĖėĘęĚě ĜĝĞğĠġĢģ ĤĥĦħ", "eeeeeeeeee gggggggg hhhh");
    check_fold("ĨĩĪīĬĭĮįİı Ĳĳ Ĵĵ Ķķĸ", "iiiiiiiiii ijij jj kkk");
    check_fold("ĹĺĻļĽľĿŀŁł ŃńŅņŇňŉŊŋ", "llllllllll nnnnnnnnn");
    check_fold("ŌōŎŏŐő Œœ ŔŕŖŗŘř ŚśŜŝŞşŠš", "oooooo oeoe rrrrrr ssssssss");
    check_fold("ŢţŤťŦŧ ŨũŪūŬŭŮůŰűŲų Ŵŵ ŶŷŸ ŹźŻżŽž ſ", "tttttt uuuuuuuuuuuu ww yyy zzzzzz s");
    check_fold("Łódź Dvořák Ærøskøbing Þórr", "lodz dvorak aeroskobing thorr");
}

/* Every code point of U+00C0-U+017F except × and ÷ folds to one or two ASCII lower-case letters. */
static void test_latin_range_is_ascii(void **state)
{
    for (unsigned cp = 0xc0; cp <= 0x17f; ++cp) {
        char in[3] = {(char)(0xc0 | (cp >> 6)), (char)(0x80 | (cp & 0x3f)), '\0'};
        char *got = util_fold(in);
        if (cp == 0xd7 || cp == 0xf7) {
            assert_string_equal(got, in);
        } else {
            size_t n = strlen(got);
            assert_true(n == 1 || n == 2);
            for (size_t i = 0; i != n; ++i)
                assert_true(got[i] >= 'a' && got[i] <= 'z');
        }
        free(got);
    }
}

static void test_combining_marks_dropped(void **state)
{
    check_fold("e\xcc\x81", "e");                        /* e + U+0301 */
    check_fold("E\xcc\x81tude", "etude");
    check_fold("a\xcc\x80\xcc\x81\xcd\xaf", "a");        /* several marks, up to U+036F */
    check_fold("\xcc\x80", "");                          /* a mark alone */
    check_fold("Jose\xcc\x81 = Jos\xc3\xa9", "jose = jose");
    check_fold("n\xcd\xb0", "n\xcd\xb0");                /* U+0370 is past the block: kept */
}

static void test_greek(void **state)
{
    check_fold("ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ", "αβγδεζηθικλμνξοπρστυφχψω");
    check_fold("αβγ", "αβγ");
    check_fold("ΆΈΉΊΌΎΏ άέήίόύώ", "αεηιουω αεηιουω");
    check_fold("ΪΫ ϊϋ ΐΰ", "ιυ ιυ ιυ");
    check_fold("ΟΔΥΣΣΕΥΣ Οδυσσεύς", "οδυσσευσ οδυσσευσ");
    check_fold("\xce\x91\xcc\x81", "α");                 /* Α + U+0301 = Ά */
    check_fold("ϐϑϕ", "ϐϑϕ");                            /* symbols past U+03CE: kept */
}

static void test_cyrillic(void **state)
{
    check_fold("АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ", "абвгдежзииклмнопрстуфхцчшщъыьэюя");
    check_fold("Иванов ПЕТРОВ", "иванов петров");
    check_fold("ЀЁЂЃЄЅІЇЈЉЊЋЌЍЎЏ", "ееђгєѕііјљњћкиуџ");
    check_fold("ёлка Ёлка е\xcc\x88лка", "елка елка елка");
    check_fold("Ѡѡ Ґґ", "Ѡѡ Ґґ");                        /* beyond U+045F: kept */
}

static void test_other_scripts_unchanged(void **state)
{
    check_fold("日本語 한국어 עברית العربية", "日本語 한국어 עברית العربية");
    check_fold("\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", "\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"); /* U+1F600, U+10FFFF */
    check_fold("\xef\xbf\xbd", "\xef\xbf\xbd");                                       /* U+FFFD */
    check_fold("Ǆ ǅ ǆ Ș ț", "Ǆ ǅ ǆ Ș ț");                                             /* Latin Extended-B */
}

static void test_invalid_utf8_copied(void **state)
{
    /* Lone continuation bytes and bytes that never start a sequence. */
    check_fold("A\x80Z", "a\x80z");
    check_fold("\xbf\xc0\xc1\xf5\xff\xfe", "\xbf\xc0\xc1\xf5\xff\xfe");
    /* Overlong encodings: "\xc1\x81" is an overlong 'A' and must not become 'a'. */
    check_fold("\xc1\x81\xe0\x80\x81\xf0\x80\x80\x81", "\xc1\x81\xe0\x80\x81\xf0\x80\x80\x81");
    /* Surrogates and code points past U+10FFFF. */
    check_fold("\xed\xa0\x80X", "\xed\xa0\x80x");
    check_fold("\xf4\x90\x80\x80", "\xf4\x90\x80\x80");
    /* A broken sequence does not swallow the valid byte that follows it. */
    check_fold("\xc3" "A", "\xc3" "a");
    check_fold("\xe2\x82" "\xc3\x89", "\xe2\x82" "e");
    check_fold("\xcc" "\x81", "");                       /* valid after all: U+0301 */
    check_fold("\xc3\xc3\x89", "\xc3" "e");
}

static void test_truncated_at_end(void **state)
{
    check_fold("caf\xc3", "caf\xc3");
    check_fold("x\xe2\x82", "x\xe2\x82");
    check_fold("x\xf0\x9f\x98", "x\xf0\x9f\x98");
    check_fold("\xf0", "\xf0");

    /* Heap copies of exactly the string's size, so ASan catches any read past the NUL. */
    const char *cases[] = {"\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xcc", "\xce", "\xd0"};
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        size_t n = strlen(cases[i]);
        char *in = malloc(n + 1);
        memcpy(in, cases[i], n + 1);
        char *got = util_fold(in);
        assert_memory_equal(got, cases[i], n + 1);
        free(got);
        free(in);
    }
}

static void test_never_longer(void **state)
{
    /* Every two-byte code point, alone and after ASCII: the fold is at most as long as the input. */
    for (unsigned cp = 0x80; cp < 0x800; ++cp) {
        char in[4] = {'Q', (char)(0xc0 | (cp >> 6)), (char)(0x80 | (cp & 0x3f)), '\0'};
        char *got = util_fold(in);
        assert_true(strlen(got) <= 3);
        assert_int_equal(got[0], 'q');
        free(got);
    }
}

static void test_fold_into_appends(void **state)
{
    util_buf_t buf;
    util_buf_init(&buf);
    assert_int_equal(util_fold_into(&buf, ""), 0);
    assert_int_equal(buf.len, 0);
    assert_string_equal(buf.base, "");
    /* Longer than the initial capacity, so the buffer grows. */
    for (int i = 0; i != 40; ++i)
        assert_int_equal(util_fold_into(&buf, "ÉCOLE "), 6);
    assert_int_equal(buf.len, 240);
    assert_memory_equal(buf.base, "ecole ecole ", 12);
    assert_int_equal(buf.base[buf.len], '\0');
    util_buf_dispose(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii),
        cmocka_unit_test(test_latin1),
        cmocka_unit_test(test_latin_extended_a),
        cmocka_unit_test(test_latin_range_is_ascii),
        cmocka_unit_test(test_combining_marks_dropped),
        cmocka_unit_test(test_greek),
        cmocka_unit_test(test_cyrillic),
        cmocka_unit_test(test_other_scripts_unchanged),
        cmocka_unit_test(test_invalid_utf8_copied),
        cmocka_unit_test(test_truncated_at_end),
        cmocka_unit_test(test_never_longer),
        cmocka_unit_test(test_fold_into_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_sanitize.c - table-driven tests of sanitize.c: the hostile names of
 * the MIME corpus (m19, m20, m23, m24, m26, m27) as literal inputs, device
 * names, control characters, invalid UTF-8 and length cuts.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/sanitize.h"
#include "testlib.h"

#define S(lit) lit, sizeof(lit) - 1	/* literal with embedded NULs */
#define ORD 7
#define MAX 255

struct name_case {
	const char *in;
	size_t inlen;
	size_t maxlen;
	const char *want;	/* NULL: check properties only */
};

static const struct name_case name_cases[] = {
	/* m20, after GMime joins the RFC 2231 sections */
	{ S("../../etc/passwd"), MAX, "passwd" },
	/* m23: Unix traversal, absolute, dot files, option-like */
	{ S("/etc/cron.d/evil"), MAX, "evil" },
	{ S("....//....//etc/x"), MAX, "x" },
	{ S("%2e%2e%2f%2e%2e%2fx"), MAX, "%2e%2e%2f%2e%2e%2fx" },
	{ S("d-7f3a9c2e/../../d-othertoken/report.pdf"), MAX, "report.pdf" },
	{ S("."), MAX, "attachment-7" },
	{ S(".."), MAX, "attachment-7" },
	{ S(".htaccess"), MAX, "htaccess" },
	{ S("-rf"), MAX, "rf" },
	{ S("~/.ssh/authorized_keys"), MAX, "authorized_keys" },
	{ S("a/b/c.txt"), MAX, "c.txt" },
	{ S("report.pdf/"), MAX, "report.pdf" },
	{ S("a/.."), MAX, "attachment-7" },
	/* m24: Windows separators, drive letters, UNC, devices, ADS */
	{ S("..\\..\\windows\\system32\\evil.dll"), MAX, "evil.dll" },
	{ S("C:\\Users\\Public\\evil.exe"), MAX, "evil.exe" },
	{ S("\\\\attacker\\share\\x.lnk"), MAX, "x.lnk" },
	{ S("CON"), MAX, "_CON" },
	{ S("NUL.txt"), MAX, "_NUL.txt" },
	{ S("COM1.pdf"), MAX, "_COM1.pdf" },
	{ S("aux"), MAX, "_aux" },
	{ S("evil.exe. . ."), MAX, "evil.exe" },
	{ S("file.txt:evil.exe"), MAX, "file.txt_evil.exe" },
	{ S("LPT9"), MAX, "_LPT9" },
	{ S("con.txt"), MAX, "_con.txt" },
	{ S("prn.tar.gz"), MAX, "_prn.tar.gz" },
	{ S("COM\xC2\xB9.txt"), MAX, "_COM\xC2\xB9.txt" },
	{ S("COM0"), MAX, "COM0" },
	{ S("CONSOLE.txt"), MAX, "CONSOLE.txt" },
	{ S("LPT10"), MAX, "LPT10" },
	/* m24 as GMime returns it: quoted-string unescaping ate '\' */
	{ S("....windowssystem32evil.dll"), MAX, "windowssystem32evil.dll" },
	/* m27: raw NUL, %00, =00 - the extension is never lost */
	{ S("report.pdf\0.exe"), MAX, "report.pdf.exe" },
	{ S("\"report.pdf"), MAX, "_report.pdf" },
	{ S("report.pdf?.exe"), MAX, "report.pdf_.exe" },
	/* m19: overlong '/' (C0 AF) and '.' (C0 AE) read as Latin-1 */
	{ S("\xC0\xAE\xC0\xAE\xC0\xAF" "etc" "\xC0\xAF" "passwd"), MAX,
	  "\xC3\x80\xC2\xAE\xC3\x80\xC2\xAE\xC3\x80\xC2\xAF" "etc"
	  "\xC3\x80\xC2\xAF" "passwd" },
	{ S("\xED\xA0\x80x"), MAX, "\xC3\xAD\xC2\xA0x" },	/* surrogate */
	{ S("abc\xC3"), MAX, "abc\xC3\x83" },		/* cut sequence */
	/* controls: CR LF NUL C0 DEL C1 NEL U+2028 U+2029 */
	{ S("a\r\nb.txt"), MAX, "ab.txt" },
	{ S("a\x01\x1f\x7f" "b"), MAX, "ab" },
	{ S("a\xC2\x85" "b"), MAX, "ab" },
	{ S("a\x85" "b"), MAX, "ab" },
	{ S("a\xE2\x80\xA8" "b\xE2\x80\xA9" "c"), MAX, "abc" },
	{ S("invoice\xE2\x80\xAE" "fdp.exe"), MAX, "invoicefdp.exe" },
	{ S("a<b>c|d?e*f\"g"), MAX, "a_b_c_d_e_f_g" },
	{ S("r\xC3\xA9sum\xC3\xA9.pdf"), MAX, "r\xC3\xA9sum\xC3\xA9.pdf" },
	{ S("name.txt   "), MAX, "name.txt" },
	{ S(""), MAX, "attachment-7" },
	{ S("   "), MAX, "attachment-7" },
	{ S("\x01\x02\r\n"), MAX, "attachment-7" },
	{ NULL, 0, MAX, "attachment-7" },
	/* length: cut at a character boundary, extension kept */
	{ S("abcdefghijkl.pdf"), 10, "abcdef.pdf" },
	{ S("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9.pdf"), 9, "\xC3\xA9\xC3\xA9.pdf" },
	{ S("abcdefghijkl"), 5, "abcde" },
	{ S("ab. . .cdefgh.pdf"), 8, "ab.pdf" },
	/* a 17-byte "ext" is none: the cut must not make up ".abc" */
	{ S("x.abcdefghijklmnopq"), 5, "x_abc" },
};

/* Properties every output has, whatever the input. */
static void
check_props(const char *out, size_t maxlen)
{
	size_t len = strlen(out), i;

	ck_assert_uint_gt(len, 0);
	ck_assert_uint_le(len, maxlen);
	ck_assert(sanitize_utf8_valid(out, len));
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)out[i];
		ck_assert_msg(c >= 0x20 && c != 0x7F, "control in output");
		ck_assert(strchr("/\\:<>|?*\"", c) == NULL);
	}
	ck_assert(out[0] != '.' && out[0] != '-' && out[0] != ' ');
	ck_assert(out[len - 1] != '.' && out[len - 1] != ' ');
}

START_TEST(test_filename_table)
{
	const struct name_case *c = &name_cases[_i];
	char out[MAX + 1];

	memset(out, 'Z', sizeof(out));
	sanitize_filename(c->in, c->inlen, ORD, c->maxlen, out, sizeof(out));
	check_props(out, c->maxlen);
	if (c->want != NULL)
		ck_assert_msg(strcmp(out, c->want) == 0, "row %d: got \"%s\","
		    " want \"%s\"", _i, out, c->want);
}
END_TEST

/* m26: 2048 x 'é' (4096 bytes) + ".pdf", and 300 ASCII + ".txt". */
START_TEST(test_filename_overlong)
{
	char in[4200], out[MAX + 1];
	size_t n = 0, len;
	int i;

	for (i = 0; i < 2048; i++) {
		in[n++] = (char)0xC3;
		in[n++] = (char)0xA9;
	}
	memcpy(in + n, ".pdf", 4);
	n += 4;
	sanitize_filename(in, n, ORD, MAX, out, sizeof(out));
	check_props(out, MAX);
	len = strlen(out);
	ck_assert_uint_eq(len, 254);	/* 125 x 'é' + ".pdf" */
	ck_assert_str_eq(out + len - 4, ".pdf");

	memset(in, 'A', 300);
	memcpy(in + 300, ".txt", 4);
	sanitize_filename(in, 304, ORD, MAX, out, sizeof(out));
	check_props(out, MAX);
	ck_assert_uint_eq(strlen(out), 255);
	ck_assert_str_eq(out + 251, ".txt");

	/* No extension at all: a plain cut, still at a boundary. */
	sanitize_filename(in, 300, ORD, MAX, out, sizeof(out));
	ck_assert_uint_eq(strlen(out), 255);
	sanitize_filename(in + 2, 2048, ORD, MAX, out, sizeof(out));
	check_props(out, MAX);

	/* An extension too long to keep: the cut must not make one up
	 * (A...A.vbs.<20 letters> stored as A...A.vbs got past filters). */
	memset(in, 'A', 251);
	memcpy(in + 251, ".vbs.", 5);
	memset(in + 256, 'x', 20);
	sanitize_filename(in, 276, ORD, MAX, out, sizeof(out));
	check_props(out, MAX);
	ck_assert_uint_eq(strlen(out), 255);
	ck_assert_ptr_null(strchr(out, '.'));
	ck_assert_str_eq(out + 251, "_vbs");
}
END_TEST

/* The output buffer, not only maxlen, bounds what is written. */
START_TEST(test_filename_small_buffer)
{
	char out[8];

	sanitize_filename(S("averyveryverylongname.txt"), ORD, 255, out,
	    sizeof(out));
	ck_assert_str_eq(out, "ave.txt");
	sanitize_filename(S(".."), 12345, 255, out, sizeof(out));
	ck_assert_str_eq(out, "attachm");
}
END_TEST

struct hdr_case {
	const char *in;
	size_t inlen;
	size_t maxlen;
	const char *want;
};

static const struct hdr_case hdr_cases[] = {
	{ S("Hello\r\n World"), 998, "Hello World" },
	{ S("  a\tb  "), 998, "a b" },
	{ S("a  b"), 998, "a  b" },
	{ S("x\0y"), 998, "xy" },
	{ S("a\xC2\x85" "b\x85" "c"), 998, "abc" },
	{ S("a\xE2\x80\xA8" "b\xE2\x80\xA9" "c\x7f"), 998, "abc" },
	{ S("\xC0\xAF"), 998, "\xC3\x80\xC2\xAF" },
	{ S("\xC3\xA9\xC3\xA9\xC3\xA9"), 5, "\xC3\xA9\xC3\xA9" },
	{ S("Eve\r\nBcc: all-staff@corp.example"), 998,
	  "Eve Bcc: all-staff@corp.example" },
	{ S("\r\n\t "), 998, "" },
	{ S("abcdef"), 3, "abc" },
	{ NULL, 0, 998, "" },
};

START_TEST(test_header_table)
{
	const struct hdr_case *c = &hdr_cases[_i];
	char *out = sanitize_header_value(c->in, c->inlen, c->maxlen);

	ck_assert_ptr_nonnull(out);
	ck_assert(sanitize_utf8_valid(out, strlen(out)));
	ck_assert_uint_le(strlen(out), c->maxlen);
	ck_assert_msg(strcmp(out, c->want) == 0, "row %d: got \"%s\"", _i,
	    out);
	free(out);
}
END_TEST

struct utf8_case {
	const char *in;
	size_t inlen;
	int valid;
};

static const struct utf8_case utf8_cases[] = {
	{ S("plain"), 1 },
	{ S("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), 1 },
	{ S("\xC0\xAF"), 0 },			/* overlong '/' */
	{ S("\xE0\x80\xAF"), 0 },		/* overlong, 3 bytes */
	{ S("\xED\xA0\x80"), 0 },		/* surrogate */
	{ S("\xF4\x90\x80\x80"), 0 },		/* > U+10FFFF */
	{ S("\xC3"), 0 },			/* truncated */
	{ S("\x80"), 0 },			/* lone continuation */
};

START_TEST(test_utf8_table)
{
	const struct utf8_case *c = &utf8_cases[_i];

	ck_assert_int_eq(sanitize_utf8_valid(c->in, c->inlen), c->valid);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
sanitize_suite(void)
{
	Suite *s = suite_create("sanitize");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_filename_table, 0, N(name_cases));
	tcase_add_test(tc, test_filename_overlong);
	tcase_add_test(tc, test_filename_small_buffer);
	tcase_add_loop_test(tc, test_header_table, 0, N(hdr_cases));
	tcase_add_loop_test(tc, test_utf8_table, 0, N(utf8_cases));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(sanitize_suite());
}

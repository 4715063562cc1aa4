/*
 * test_smtp_addr.c - table-driven tests of smtp_addr.c: MAIL/RCPT path
 * syntax, ESMTP parameters, SIZE overflow, and dossier token mapping,
 * including the RCPTs of corpus/smtp/30_* and the SIZEs of 23_*; item
 * addresses d-<token>+<slug> and the slug made from a label (accents,
 * punctuation, the 32-octet cut, the 64 octets of a local part).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/smtp_addr.h"

#define MAIL 1
#define RCPT 0
#define DOSSIERS "dossiers.example"

/* Rows built at run time: too long to write out. */
static char long_5000[5100];
static char local_64[128], local_65[128];
static char path_256[300], path_257[300], domain_256[300];

struct path_row {
	const char *arg;
	int from;
	enum addr_status st;
	const char *addr;		/* expected addr when ADDR_OK */
	int null_path, has_size;
	uint64_t size;
	int overflow, body_8bit, smtputf8;
};

#define OK_(a, f, ad)	{ a, f, ADDR_OK, ad, 0, 0, 0, 0, 0, 0 }
#define ERR(a, f, s)	{ a, f, s, NULL, 0, 0, 0, 0, 0, 0 }
#define SZ(a, n, o)	{ "FROM:<alice@sender.example> SIZE=" a, MAIL, \
			  ADDR_OK, "alice@sender.example", 0, 1, n, o, 0, 0 }
#define BADSZ(a)	ERR("FROM:<alice@sender.example> SIZE=" a, MAIL, \
			    ADDR_BAD_SIZE)
#define A "alice@sender.example"

static const struct path_row path_rows[] = {
	/* keyword and brackets (RFC 5321 4.1.1.2, 4.1.2) */
	OK_("FROM:<" A ">", MAIL, A),
	OK_("from:<" A ">", MAIL, A),
	OK_("FROM: <" A ">", MAIL, A),
	ERR("FROM:  <" A ">", MAIL, ADDR_SYNTAX),
	ERR("FROM:" A, MAIL, ADDR_SYNTAX),
	ERR("FROM:<" A, MAIL, ADDR_SYNTAX),
	ERR("FROM <" A ">", MAIL, ADDR_SYNTAX),
	ERR("TO:<" A ">", MAIL, ADDR_SYNTAX),
	ERR("FROM:<" A ">", RCPT, ADDR_SYNTAX),
	ERR("", MAIL, ADDR_SYNTAX),
	/* null reverse-path: MAIL only */
	{ "FROM:<>", MAIL, ADDR_OK, "", 1, 0, 0, 0, 0, 0 },
	{ "FROM:<> SIZE=100", MAIL, ADDR_OK, "", 1, 1, 100, 0, 0, 0 },
	ERR("TO:<>", RCPT, ADDR_SYNTAX),
	ERR("TO:<postmaster>", RCPT, ADDR_SYNTAX),
	/* source routes are dropped (RFC 5321 4.1.2, appendix C) */
	OK_("FROM:<@a.example,@b.example:u@d.example>", MAIL, "u@d.example"),
	OK_("TO:<@relay.example:d-7f3a9c2e@dossiers.example>", RCPT,
	    "d-7f3a9c2e@" DOSSIERS),
	ERR("FROM:<@a.example:>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<@a.example,b.example:u@d.example>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<@[192.0.2.1]:u@d.example>", MAIL, ADDR_SYNTAX),
	/* corpus/smtp/30_dossier_token_traversal.bin */
	ERR("TO:<../../etc/passwd@dossiers.example>", RCPT, ADDR_SYNTAX),
	OK_("TO:<\"d-7f3a9c2e/../../x\"@dossiers.example>", RCPT,
	    "\"d-7f3a9c2e/../../x\"@" DOSSIERS),
	OK_("TO:<D-7F3A9C2E@dossiers.example>", RCPT, "D-7F3A9C2E@" DOSSIERS),
	OK_("TO:<d-7f3a9c2e+x@dossiers.example>", RCPT,
	    "d-7f3a9c2e+x@" DOSSIERS),
	OK_("TO:<d-%2e%2e%2fx@dossiers.example>", RCPT,
	    "d-%2e%2e%2fx@" DOSSIERS),
	/* quoted local parts stay quoted */
	OK_("FROM:<\"john doe\"@example.com>", MAIL, "\"john doe\"@example.com"),
	OK_("FROM:<\"a\\\"b>\"@example.com>", MAIL, "\"a\\\"b>\"@example.com"),
	OK_("FROM:<\"\"@example.com>", MAIL, "\"\"@example.com"),
	ERR("FROM:<\"a\x01" "b\"@example.com>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<\"ab@example.com>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<\"a\"b@example.com>", MAIL, ADDR_SYNTAX),
	/* dot-string and domain syntax */
	ERR("FROM:<a..b@example.com>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<.a@example.com>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a.@example.com>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a@example.com.>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a@-example.com>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a@example-.com>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a@exa_mple.com>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a@>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a b@example.com>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a@b@example.com>", MAIL, ADDR_SYNTAX),
	OK_("FROM:<a@localhost>", MAIL, "a@localhost"),
	OK_("FROM:<a@[192.0.2.1]>", MAIL, "a@[192.0.2.1]"),
	OK_("FROM:<a@[IPv6:2001:db8::1]>", MAIL, "a@[IPv6:2001:db8::1]"),
	OK_("FROM:<a@[x-tag:abc]>", MAIL, "a@[x-tag:abc]"),
	ERR("FROM:<a@[999.1.1.1]>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a@[IPv6:zz::1]>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<a@[]>", MAIL, ADDR_SYNTAX),
	/* controls anywhere, CR/LF/TAB/DEL */
	ERR("FROM:<" A ">\r", MAIL, ADDR_SYNTAX),
	ERR("FROM:<" A ">\n", MAIL, ADDR_SYNTAX),
	ERR("FROM:<ali\rce@sender.example>", MAIL, ADDR_SYNTAX),
	ERR("FROM:<" A ">\tSIZE=1", MAIL, ADDR_SYNTAX),
	ERR("FROM:<ali\x7f" "ce@sender.example>", MAIL, ADDR_SYNTAX),
	/* 8-bit only with SMTPUTF8 (RFC 6531 3.3), and well-formed */
	ERR("FROM:<j\xc3\xb6rg@example.com>", MAIL, ADDR_SYNTAX),
	{ "FROM:<j\xc3\xb6rg@example.com> SMTPUTF8", MAIL, ADDR_OK,
	  "j\xc3\xb6rg@example.com", 0, 0, 0, 0, 0, 1 },
	{ "FROM:<a@b\xc3\xbc" "cher.example> SMTPUTF8", MAIL, ADDR_OK,
	  "a@b\xc3\xbc" "cher.example", 0, 0, 0, 0, 0, 1 },
	ERR("FROM:<j\xc3rg@example.com> SMTPUTF8", MAIL, ADDR_SYNTAX),
	ERR("FROM:<j\xc0\xafrg@example.com> SMTPUTF8", MAIL, ADDR_SYNTAX),
	ERR("FROM:<j\xed\xa0\x80@example.com> SMTPUTF8", MAIL, ADDR_SYNTAX),
	ERR("TO:<j\xc3\xb6rg@example.com>", RCPT, ADDR_SYNTAX),
	/* SIZE (RFC 1870), corpus/smtp/23_size_declared_too_big.bin */
	SZ("999999999999", UINT64_C(999999999999), 0),
	SZ("18446744073709551617", UINT64_MAX, 1),
	BADSZ("-1"),
	BADSZ("12abc"),
	SZ("0", 0, 0),
	SZ("18446744073709551615", UINT64_MAX, 1),
	SZ("99999999999999999999", UINT64_MAX, 1),
	SZ("9223372036854775807", UINT64_C(9223372036854775807), 0),
	SZ("9223372036854775808", UINT64_MAX, 1),
	BADSZ(""),
	BADSZ("000000000000000000001"),
	BADSZ("+5"),
	BADSZ(" 5"),
	ERR("FROM:<" A "> SIZE", MAIL, ADDR_BAD_SIZE),
	/* other MAIL parameters */
	{ "FROM:<" A "> BODY=8BITMIME", MAIL, ADDR_OK, A, 0, 0, 0, 0, 1, 0 },
	OK_("FROM:<" A "> body=7bit", MAIL, A),
	ERR("FROM:<" A "> BODY=BINARYMIME", MAIL, ADDR_BAD_PARAM),
	ERR("FROM:<" A "> BODY", MAIL, ADDR_BAD_PARAM),
	{ "FROM:<" A "> SMTPUTF8", MAIL, ADDR_OK, A, 0, 0, 0, 0, 0, 1 },
	ERR("FROM:<" A "> SMTPUTF8=yes", MAIL, ADDR_BAD_PARAM),
	{ "FROM:<" A "> size=1000 BODY=8BITMIME SMTPUTF8", MAIL, ADDR_OK, A,
	  0, 1, 1000, 0, 1, 1 },
	{ "FROM:<" A "> SIZE=1000 ", MAIL, ADDR_OK, A, 0, 1, 1000, 0, 0, 0 },
	ERR("FROM:<" A "> SIZE=1 SIZE=2", MAIL, ADDR_SYNTAX),
	ERR("FROM:<" A "> BODY=7BIT body=8BITMIME", MAIL, ADDR_SYNTAX),
	ERR("FROM:<" A "> AUTH=<>", MAIL, ADDR_BAD_PARAM),
	ERR("FROM:<" A "> XFOO", MAIL, ADDR_BAD_PARAM),
	ERR("FROM:<" A "> =x", MAIL, ADDR_SYNTAX),
	ERR("FROM:<" A ">SIZE=1", MAIL, ADDR_SYNTAX),
	/* RCPT takes no parameters here */
	OK_("TO:<d-7f3a9c2e@dossiers.example>", RCPT, "d-7f3a9c2e@" DOSSIERS),
	OK_("to: <d-7f3a9c2e@dossiers.example>  ", RCPT,
	    "d-7f3a9c2e@" DOSSIERS),
	ERR("TO:<d-7f3a9c2e@dossiers.example> SIZE=1", RCPT, ADDR_BAD_PARAM),
	ERR("TO:<d-7f3a9c2e@dossiers.example> NOTIFY=NEVER", RCPT,
	    ADDR_BAD_PARAM),
	/* lengths (RFC 5321 4.5.3.1.1-3) */
	ERR(long_5000, MAIL, ADDR_TOO_LONG),
	OK_(local_64, MAIL, NULL),
	ERR(local_65, MAIL, ADDR_TOO_LONG),
	OK_(path_256, RCPT, NULL),
	ERR(path_257, RCPT, ADDR_TOO_LONG),
	ERR(domain_256, RCPT, ADDR_TOO_LONG),
};
#define NPATH (int)(sizeof(path_rows) / sizeof(path_rows[0]))

/* "FROM:<" + n x 'a' + "@" + domain + ">" */
static void build_path(char *buf, const char *kw, size_t local,
    size_t domain)
{
	size_t n = strlen(kw), i;

	memcpy(buf, kw, n);
	for (i = 0; i < local; i++)
		buf[n++] = 'a';
	buf[n++] = '@';
	/* 63-octet labels joined by dots, ending in "x" */
	for (i = 0; i < domain - 1; i++)
		buf[n++] = (i % 64 == 63) ? '.' : 'b';
	buf[n++] = 'x';
	buf[n++] = '>';
	buf[n] = '\0';
}

static void build_rows(void)
{
	/* a 5000-octet address: a valid syntax, far too long */
	build_path(long_5000, "FROM:<", 4980, 12);
	build_path(local_64, "FROM:<", 64, 11);
	build_path(local_65, "FROM:<", 65, 11);
	/* "<" + 60 + "@" + 193 + ">" = 256 octets */
	build_path(path_256, "TO:<", 60, 193);
	build_path(path_257, "TO:<", 60, 194);
	build_path(domain_256, "TO:<", 1, 256);
}

static const char *status_name(enum addr_status st)
{
	static const char *const names[] = { "OK", "SYNTAX", "TOO_LONG",
	    "BAD_PARAM", "BAD_SIZE" };

	return (unsigned)st < 5 ? names[st] : "?";
}

START_TEST(test_path)
{
	const struct path_row *r = &path_rows[_i];
	struct smtp_path p;
	enum addr_status st;

	memset(&p, 0xa5, sizeof(p));
	st = smtp_path_parse(r->arg, r->from, &p);
	ck_assert_msg(st == r->st, "row %d \"%.60s\": got %s, want %s", _i,
	    r->arg, status_name(st), status_name(r->st));
	if (r->st != ADDR_OK) {
		ck_assert_str_eq(p.addr, "");	/* nothing half-parsed */
		return;
	}
	if (r->addr != NULL)
		ck_assert_str_eq(p.addr, r->addr);
	ck_assert_int_eq(p.null_path, r->null_path);
	ck_assert_int_eq(p.has_size, r->has_size);
	ck_assert_uint_eq(p.size, r->size);
	ck_assert_int_eq(p.size_overflow, r->overflow);
	ck_assert_int_eq(p.body_8bit, r->body_8bit);
	ck_assert_int_eq(p.smtputf8, r->smtputf8);
}
END_TEST

struct intake_row {
	const char *addr;
	int ok;
	const char *local;
};

static const struct intake_row intake_rows[] = {
	{ "d-7f3a9c2e@dossiers.example", 1, "d-7f3a9c2e" },
	{ "D-7F3A9C2E@DOSSIERS.Example", 1, "d-7f3a9c2e" },
	{ "d-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqr"
	  "@dossiers.example", 1,
	  "d-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqr" },
	{ "d-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrs"
	  "@dossiers.example", 0, NULL },
	{ "d-1234567@dossiers.example", 0, NULL },
	{ "d-7f3a9c2e+x@dossiers.example", 0, NULL },
	{ "\"d-7f3a9c2e/../../x\"@dossiers.example", 0, NULL },
	{ "\"d-7f3a9c2e\"@dossiers.example", 0, NULL },
	{ "../../etc/passwd@dossiers.example", 0, NULL },
	{ "d-%2e%2e%2fx@dossiers.example", 0, NULL },
	{ "d-7f3a9c2e.@dossiers.example", 0, NULL },
	{ "x-7f3a9c2e@dossiers.example", 0, NULL },
	{ "d-7f3a9c2e@other.example", 0, NULL },
	{ "d-7f3a9c2e@dossiers.example.evil", 0, NULL },
	{ "d-7f3a9c2e@sub.dossiers.example", 0, NULL },
	{ "d-7f3a9c2e", 0, NULL },
	{ "", 0, NULL },
};
#define NINTAKE (int)(sizeof(intake_rows) / sizeof(intake_rows[0]))

START_TEST(test_intake)
{
	const struct intake_row *r = &intake_rows[_i];
	char local[80] = "untouched";
	int ok;

	ok = smtp_addr_intake_local(r->addr, "dossiers.EXAMPLE", local,
	    sizeof(local));
	ck_assert_msg(ok == r->ok, "row %d \"%s\": got %d", _i, r->addr, ok);
	if (ok)
		ck_assert_str_eq(local, r->local);
}
END_TEST

START_TEST(test_intake_small_buffer)
{
	char local[11];

	/* "d-7f3a9c2e" needs 11 octets: refused, never truncated */
	ck_assert_int_eq(smtp_addr_intake_local("d-7f3a9c2e@x.example",
	    "x.example", local, sizeof(local) - 1), 0);
	ck_assert_int_eq(smtp_addr_intake_local("d-7f3a9c2e@x.example",
	    "x.example", local, sizeof(local)), 1);
	ck_assert_str_eq(local, "d-7f3a9c2e");
}
END_TEST

/* VERP bounce addresses: b-<token>@<bounce domain>, case-folded. */
static const struct {
	const char *addr;
	int ok;
	const char *token;
} bounce_rows[] = {
	{ "b-abcdefghijklmnopqrstuvwxyz@dossiers.example", 1,
	    "abcdefghijklmnopqrstuvwxyz" },
	{ "B-ABCDEFGHIJKLMNOPQRSTUVWXYZ@Dossiers.Example", 1,
	    "abcdefghijklmnopqrstuvwxyz" },
	{ "b-short@dossiers.example", 0, NULL },
	{ "b-abcdefghijklmnopqrstuvwxyz@other.example", 0, NULL },
	{ "b-abcdefghijklmnop/../qrstuvwx@dossiers.example", 0, NULL },
	{ "d-abcdefghijklmnopqrstuvwxyz@dossiers.example", 0, NULL },
	{ "b-abcdefghijklmnopqrstuvwxyz+x@dossiers.example", 0, NULL },
	{ "\"b-abcdefghijklmnopqrstuvwxyz\"@dossiers.example", 0, NULL },
};

START_TEST(test_bounce_token)
{
	char tok[72];
	int ok = smtp_addr_bounce_token(bounce_rows[_i].addr,
	    "dossiers.example", tok, sizeof(tok));

	ck_assert_msg(ok == bounce_rows[_i].ok, "%s", bounce_rows[_i].addr);
	if (ok)
		ck_assert_str_eq(tok, bounce_rows[_i].token);
}
END_TEST

START_TEST(test_domain)
{
	ck_assert_str_eq(smtp_addr_domain("a@b.example"), "b.example");
	ck_assert_str_eq(smtp_addr_domain("\"x@y\"@z.example"), "z.example");
	ck_assert_str_eq(smtp_addr_domain("a@[192.0.2.1]"), "[192.0.2.1]");
	ck_assert_str_eq(smtp_addr_domain("nodomain"), "");
	ck_assert_str_eq(smtp_addr_domain(""), "");
}
END_TEST

/* Corpus 30: the parse and the token check together decide the reply. */
START_TEST(test_corpus_30_pipeline)
{
	static const struct { const char *arg; int accept; } rows[] = {
		{ "TO:<../../etc/passwd@dossiers.example>", 0 },
		{ "TO:<\"d-7f3a9c2e/../../x\"@dossiers.example>", 0 },
		{ "TO:<D-7F3A9C2E@dossiers.example>", 1 },
		{ "TO:<d-7f3a9c2e+x@dossiers.example>", 0 },
		{ "TO:<d-%2e%2e%2fx@dossiers.example>", 0 },
		{ "TO:<@relay.example:d-7f3a9c2e@dossiers.example>", 1 },
	};
	struct smtp_path p;
	char local[70];
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int ok = smtp_path_parse(rows[i].arg, RCPT, &p) == ADDR_OK &&
		    smtp_addr_intake_local(p.addr, DOSSIERS, local,
		    sizeof(local));

		ck_assert_msg(ok == rows[i].accept, "%s", rows[i].arg);
		if (ok)
			ck_assert_str_eq(local, "d-7f3a9c2e");
	}
}
END_TEST

/* ---- items: d-<token>+<slug>, and the slug made from a label ---- */

static const struct { const char *label; const char *slug; } slug_rows[] = {
	{ "ID card", "id-card" },
	{ "Pi\xc3\xa8" "ce d'identit\xc3\xa9", "piece-d-identite" },
	{ "Justificatif de domicile", "justificatif-de-domicile" },
	{ "\xc3\x89tat des lieux", "etat-des-lieux" },	/* E acute */
	{ "\xc5\x92uvre", "oeuvre" },			/* OE ligature */
	{ "C\xc5\x93ur", "coeur" },			/* oe ligature */
	/* Y diaeresis, U+0178 */
	{ "L'HA\xc5\xb8-LES-ROSES", "l-hay-les-roses" },
	{ "Stra\xc3\x9f" "e", "strasse" },		/* sharp s */
	{ "STRA\xe1\xba\x9e" "E", "strasse" },		/* U+1E9E */
	{ "F\xc3\xbchrerschein", "fuhrerschein" },
	{ "\xc3\x86gir", "aegir" },
	{ "A\xc3\xb1o fiscal", "ano-fiscal" },
	{ "\xc5\x81\xc3\xb3" "d\xc5\xba", "lodz" },	/* Latin Ext-A */
	{ "  --ID   card!!  ", "id-card" },
	{ "a...b///c", "a-b-c" },
	{ "2024", "2024" },
	{ "PAYSLIP", "payslip" },
	/* the multiplication sign is no letter */
	{ "caf\xc3\xa9 \xc3\x97 2", "cafe-2" },
	{ "\xe6\x97\xa5\xe6\x9c\xac", "item" },	/* no Latin letter */
	{ "", "item" },
	{ "!!!", "item" },
	{ "bad \xc3\x28 utf8", "bad-utf8" },
	/* 32 octets at most, cut at a '-' in the last third */
	{ "Justificatif de domicile de moins de trois mois",
	  "justificatif-de-domicile-de" },
	{ "abcdefghijklmnopqrstuvwxyzabcdefghijkl",
	  "abcdefghijklmnopqrstuvwxyzabcdef" },
	{ "abcdefghijklmnopqrstuvwxyzabcdef ghi",
	  "abcdefghijklmnopqrstuvwxyzabcdef" },
	{ "abcdefghijklmnopqrstuvwxyzabcde ghi",
	  "abcdefghijklmnopqrstuvwxyzabcde" },
	{ "a bcdefghijklmnopqrstuvwxyzabcdefghi",
	  "a-bcdefghijklmnopqrstuvwxyzabcde" },
};

START_TEST(test_slug)
{
	char out[SMTP_ADDR_SLUG_MAX + 1];

	memset(out, 'x', sizeof(out));
	smtp_addr_slug(slug_rows[_i].label, out, sizeof(out));
	ck_assert_msg(strcmp(out, slug_rows[_i].slug) == 0,
	    "row %d \"%s\": got \"%s\"", _i, slug_rows[_i].label, out);
	ck_assert_int_eq(smtp_addr_slug_valid(out), 1);
}
END_TEST

START_TEST(test_slug_small_buffer)
{
	char out[8];

	smtp_addr_slug("Proof of address", out, sizeof(out));
	ck_assert_str_eq(out, "proof");
	smtp_addr_slug("Proofofaddress", out, sizeof(out));
	ck_assert_str_eq(out, "proofof");
}
END_TEST

static const struct { const char *s; int ok; } slug_valid_rows[] = {
	{ "id-card", 1 }, { "a", 1 }, { "2024", 1 },
	{ "abcdefghijklmnopqrstuvwxyzabcdef", 1 },	/* 32 */
	{ "abcdefghijklmnopqrstuvwxyzabcdefg", 0 },	/* 33 */
	{ "", 0 }, { "ID-card", 0 }, { "id card", 0 }, { "id_card", 0 },
	{ "id+card", 0 }, { "id.card", 0 }, { "pi\xc3\xa8" "ce", 0 },
	{ "../x", 0 },
};

START_TEST(test_slug_valid)
{
	ck_assert_msg(smtp_addr_slug_valid(slug_valid_rows[_i].s) ==
	    slug_valid_rows[_i].ok, "\"%s\"", slug_valid_rows[_i].s);
}
END_TEST

/* token of 26 (generated) and of 36 octets: with "d-" 28 and 38 */
#define TOK26 "d-abcdefghijklmnopqrstuvwxyz"
#define TOK36 "d-abcdefghijklmnopqrstuvwxyz0123456789"
static const struct {
	const char *addr;
	int ok;
	const char *local, *item;
} item_rows[] = {
	{ "d-7f3a9c2e@dossiers.example", 1, "d-7f3a9c2e", "" },
	{ "d-7f3a9c2e+id-card@dossiers.example", 1, "d-7f3a9c2e", "id-card" },
	{ "D-7F3A9C2E+ID-Card@Dossiers.EXAMPLE", 1, "d-7f3a9c2e", "id-card" },
	{ "d-7f3a9c2e+2024@dossiers.example", 1, "d-7f3a9c2e", "2024" },
	{ "d-7f3a9c2e+@dossiers.example", 0, NULL, NULL },
	{ "d-7f3a9c2e+id_card@dossiers.example", 0, NULL, NULL },
	{ "d-7f3a9c2e+id.card@dossiers.example", 0, NULL, NULL },
	{ "d-7f3a9c2e+a+b@dossiers.example", 0, NULL, NULL },
	{ "d-7f3a9c2e+../x@dossiers.example", 0, NULL, NULL },
	{ "d-7f3a9c2e+pi\xc3\xa8" "ce@dossiers.example", 0, NULL, NULL },
	{ "d-1234567+id-card@dossiers.example", 0, NULL, NULL },
	{ "+id-card@dossiers.example", 0, NULL, NULL },
	{ "x-7f3a9c2e+id-card@dossiers.example", 0, NULL, NULL },
	{ "d-7f3a9c2e+id-card@other.example", 0, NULL, NULL },
	{ "d-7f3a9c2e+id-card", 0, NULL, NULL },
	/* a slug of 33 */
	{ "d-7f3a9c2e+abcdefghijklmnopqrstuvwxyzabcdefg@dossiers.example", 0,
	  NULL, NULL },
	/* the local part of an item address: 64 octets at most (RFC 5321
	 * 4.5.3.1.1), as dossier_item_address makes them: 28 + 1 + 32 */
	{ TOK26 "+abcdefghijklmnopqrstuvwxyzabcdef@dossiers.example", 1,
	  TOK26, "abcdefghijklmnopqrstuvwxyzabcdef" },
	{ TOK36 "+abcdefghijklmnopqrstuvwxy@dossiers.example", 1, TOK36,
	  "abcdefghijklmnopqrstuvwxy" },			/* 64 */
	{ TOK36 "+abcdefghijklmnopqrstuvwxyz@dossiers.example", 0, NULL,
	  NULL },						/* 65 */
};

START_TEST(test_intake_item)
{
	char local[80] = "untouched", item[40] = "untouched";
	int ok = smtp_addr_intake_item(item_rows[_i].addr, "dossiers.example",
	    local, sizeof(local), item, sizeof(item));

	ck_assert_msg(ok == item_rows[_i].ok, "row %d \"%s\": got %d", _i,
	    item_rows[_i].addr, ok);
	if (!ok)
		return;
	ck_assert_str_eq(local, item_rows[_i].local);
	ck_assert_str_eq(item, item_rows[_i].item);
}
END_TEST

START_TEST(test_intake_item_small_buffer)
{
	char local[11], item[8];

	/* refused, never truncated */
	ck_assert_int_eq(smtp_addr_intake_item("d-7f3a9c2e+id-card@x.example",
	    "x.example", local, sizeof(local), item, 7), 0);
	ck_assert_int_eq(smtp_addr_intake_item("d-7f3a9c2e+id-card@x.example",
	    "x.example", local, 10, item, sizeof(item)), 0);
	ck_assert_int_eq(smtp_addr_intake_item("d-7f3a9c2e+id-card@x.example",
	    "x.example", local, sizeof(local), item, sizeof(item)), 1);
	ck_assert_str_eq(item, "id-card");
}
END_TEST

static Suite *smtp_addr_suite(void)
{
	Suite *s = suite_create("smtp_addr");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_path, 0, NPATH);
	tcase_add_loop_test(tc, test_intake, 0, NINTAKE);
	tcase_add_test(tc, test_intake_small_buffer);
	tcase_add_test(tc, test_domain);
	tcase_add_loop_test(tc, test_bounce_token, 0,
	    (int)(sizeof(bounce_rows) / sizeof(bounce_rows[0])));
	tcase_add_test(tc, test_corpus_30_pipeline);
	tcase_add_loop_test(tc, test_slug, 0,
	    (int)(sizeof(slug_rows) / sizeof(slug_rows[0])));
	tcase_add_test(tc, test_slug_small_buffer);
	tcase_add_loop_test(tc, test_slug_valid, 0,
	    (int)(sizeof(slug_valid_rows) / sizeof(slug_valid_rows[0])));
	tcase_add_loop_test(tc, test_intake_item, 0,
	    (int)(sizeof(item_rows) / sizeof(item_rows[0])));
	tcase_add_test(tc, test_intake_item_small_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	build_rows();
	sr = srunner_create(smtp_addr_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * test_outmsg.c - outmsg.c against the outbound injection corpus
 * (outbound_cases.json H01..H18, expectations of EXPECTED.md), address and
 * text-cleaning tables, MIME structure, Message-ID, line limits; and the
 * dkim plugin, loaded through the plugin ABI, whose signature must verify
 * with an independent verifier (python3-dkim) and break when tampered with.
 */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmime/gmime.h>
#include <jansson.h>
#include <libconfig.h>

#include "outbound/outmsg.h"
#include "testlib.h"
#include "lib/util.h"
#include "postdoc/plugin.h"

#define LINE_MAX_OCTETS 998
#define NAME_CAP 256
#define SUBJECT_CAP 255

static char tmp_dir[256];
static char corpus_path[1024];
static json_t *cases;		/* header_injection_values, or NULL */
static char plugin_path[1024];

/* ---- helpers ---------------------------------------------------------- */

static const struct outmsg_spec base_spec = {
	.from_name = "Dossiers ACME", .from_addr = "news@acme.example",
	.to_name = "Eve", .to_addr = "eve@client.example",
	.reply_to = NULL, .subject = "Invitation",
	.text = "Hello\nbye\n", .html = NULL, .msgid_domain = "acme.example",
	.extra = NULL, .n_extra = 0,
};

/* A fresh path per call: tests run in forked children, hence the pid. */
static void
new_path(char *out, size_t outlen)
{
	static unsigned n;

	snprintf(out, outlen, "%s/m-%ld-%u.eml", tmp_dir, (long)getpid(),
	    n++);
}

static int
build(const struct outmsg_spec *spec, char *path, size_t pathlen,
    char *msgid, char *err)
{
	new_path(path, pathlen);
	err[0] = '\0';
	return outmsg_build(spec, path, msgid, 300, err);
}

/* Independent of outmsg_file_canonical: CRLF only, lines <= 998. */
static void
assert_wire_clean(const char *buf, size_t n)
{
	size_t i, line = 0;

	for (i = 0; i < n; i++) {
		if (buf[i] == '\r') {
			ck_assert_msg(i + 1 < n && buf[i + 1] == '\n',
			    "bare CR at offset %zu", i);
			i++;
			line = 0;
		} else {
			ck_assert_msg(buf[i] != '\n', "bare LF at %zu", i);
			ck_assert_msg(buf[i] != '\0', "NUL at %zu", i);
			ck_assert_msg(++line <= LINE_MAX_OCTETS,
			    "line over 998 octets at %zu", i);
		}
	}
}

/* Headers we expect; anything else in the header block is an injection. */
static const char *known_fields[] = {
	"Date", "From", "To", "Reply-To", "Subject", "Message-Id",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"List-Unsubscribe", "List-Unsubscribe-Post", NULL
};

static int
field_count(const char *hdr, const char *name)
{
	const char *p = hdr;
	size_t n = strlen(name);
	int count = 0;

	while (*p) {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':')
			count++;
		p = strstr(p, "\r\n");
		if (p == NULL)
			break;
		p += 2;
	}
	return count;
}

/* Each header line: a known field name, or a continuation (SP/HTAB). */
static void
assert_header_block(const char *buf)
{
	const char *end = strstr(buf, "\r\n\r\n"), *p = buf;
	char *hdr;
	int i, ok;

	ck_assert_msg(end != NULL, "no end of header");
	hdr = xstrndup(buf, (size_t)(end - buf) + 2);
	for (p = hdr; *p; p = strstr(p, "\r\n") + 2) {
		ok = (*p == ' ' || *p == '\t');
		for (i = 0; !ok && known_fields[i]; i++)
			ok = strncasecmp(p, known_fields[i],
			    strlen(known_fields[i])) == 0 &&
			    p[strlen(known_fields[i])] == ':';
		ck_assert_msg(ok, "unexpected header line: %.60s", p);
	}
	ck_assert_int_eq(field_count(hdr, "From"), 1);
	ck_assert_int_eq(field_count(hdr, "To"), 1);
	ck_assert_int_eq(field_count(hdr, "Subject"), 1);
	ck_assert_int_eq(field_count(hdr, "Date"), 1);
	ck_assert_int_eq(field_count(hdr, "Message-Id"), 1);
	ck_assert_int_eq(field_count(hdr, "MIME-Version"), 1);
	ck_assert_int_eq(field_count(hdr, "Content-Type"), 1);
	ck_assert_int_eq(field_count(hdr, "Bcc"), 0);
	ck_assert_int_eq(field_count(hdr, "Cc"), 0);
	free(hdr);
}

static GMimeMessage *
parse(const char *path)
{
	int fd = open(path, O_RDONLY);
	GMimeStream *st;
	GMimeParser *p;
	GMimeMessage *m;

	ck_assert(fd >= 0);
	st = g_mime_stream_fs_new(fd);
	p = g_mime_parser_new_with_stream(st);
	m = g_mime_parser_construct_message(p, NULL);
	g_object_unref(p);
	g_object_unref(st);
	ck_assert_msg(m != NULL, "GMime cannot parse %s", path);
	return m;
}

/* The one To mailbox as a reader's client sees it. */
static void
assert_to(GMimeMessage *m, const char *name, const char *addr)
{
	InternetAddressList *l = g_mime_message_get_addresses(m,
	    GMIME_ADDRESS_TYPE_TO);
	InternetAddress *ia;
	const char *got;

	ck_assert_int_eq(internet_address_list_length(l), 1);
	ia = internet_address_list_get_address(l, 0);
	ck_assert(INTERNET_ADDRESS_IS_MAILBOX(ia));
	ck_assert_str_eq(internet_address_mailbox_get_addr(
	    INTERNET_ADDRESS_MAILBOX(ia)), addr);
	got = internet_address_get_name(ia);
	ck_assert_str_eq(got ? got : "", name);
}

/* Decoded text of the first text/plain part. */
static char *
plain_text(GMimeMessage *m)
{
	GMimeObject *body = g_mime_message_get_mime_part(m);

	if (GMIME_IS_MULTIPART(body))
		body = g_mime_multipart_get_part(GMIME_MULTIPART(body), 0);
	ck_assert(GMIME_IS_TEXT_PART(body));
	return g_mime_text_part_get_text(GMIME_TEXT_PART(body));
}

/* Build, then the checks every message must pass; returns the bytes. */
static char *
build_checked(const struct outmsg_spec *spec, char *path, size_t pathlen)
{
	char msgid[300], err[PD_ERRLEN], *buf;
	size_t n;

	ck_assert_msg(build(spec, path, pathlen, msgid, err) == 0,
	    "build: %s", err);
	ck_assert(outmsg_file_canonical(path));
	buf = tl_slurp(path, &n);
	assert_wire_clean(buf, n);
	assert_header_block(buf);
	return buf;
}

/* ---- the corpus: header_injection_values ------------------------------ */

enum field { F_NAME, F_SUBJECT, F_ADDR, F_HEADER, F_BODY };

struct h_case {
	const char *id;
	enum field field;
	int utf8_ok;		/* F_ADDR: valid with SMTPUTF8 */
};

/* EXPECTED.md's table: which field each value goes into. */
static const struct h_case h_cases[] = {
	{ "H01", F_NAME, 0 }, { "H02", F_NAME, 0 }, { "H03", F_NAME, 0 },
	{ "H04", F_NAME, 0 }, { "H06", F_SUBJECT, 0 },
	{ "H07", F_SUBJECT, 0 }, { "H08", F_ADDR, 0 }, { "H09", F_ADDR, 0 },
	{ "H11", F_ADDR, 1 }, { "H12", F_NAME, 0 }, { "H13", F_NAME, 0 },
	{ "H16", F_HEADER, 0 }, { "H18", F_BODY, 0 },
};

static const struct h_case *
h_lookup(const char *id)
{
	size_t i;

	for (i = 0; i < sizeof(h_cases) / sizeof(h_cases[0]); i++)
		if (strcmp(h_cases[i].id, id) == 0)
			return &h_cases[i];
	return NULL;
}

/* What a reader must see: the value minus CR, LF, NUL, controls. */
static char *
expected_clean(const char *v, size_t cap)
{
	char *tmp = xstrdup(v), *o = tmp;
	const char *p;

	for (p = v; *p; p++)
		if ((unsigned char)*p >= 0x20 && *p != 0x7F)
			*o++ = *p;
	*o = '\0';
	if (strlen(tmp) > cap)
		tmp[cap] = '\0';	/* the corpus' long values are ASCII */
	return tmp;
}

static void
case_addr(const struct h_case *hc, const char *v)
{
	struct outmsg_spec spec = base_spec;
	char path[512], msgid[300], err[PD_ERRLEN];

	ck_assert_msg(!outmsg_addr_valid(v, 0), "%s accepted", hc->id);
	ck_assert_int_eq(outmsg_addr_valid(v, 1), hc->utf8_ok);
	spec.to_addr = v;
	ck_assert_msg(build(&spec, path, sizeof(path), msgid, err) != 0,
	    "%s: built with a bad To", hc->id);
	ck_assert_msg(strstr(err, "To") != NULL, "%s: err '%s'", hc->id,
	    err);
	ck_assert(access(path, F_OK) != 0);	/* nothing left behind */
}

static void
case_name(const struct h_case *hc, const char *v)
{
	struct outmsg_spec spec = base_spec;
	char path[512], *buf, *want = expected_clean(v, NAME_CAP);
	GMimeMessage *m;

	spec.to_name = v;
	buf = build_checked(&spec, path, sizeof(path));
	m = parse(path);
	assert_to(m, want, spec.to_addr);
	ck_assert_msg(strstr(buf, "evil.example>") == NULL ||
	    strstr(buf, "To: \"") != NULL, "%s: name not quoted", hc->id);
	g_object_unref(m);
	free(want);
	free(buf);
}

static void
case_subject(const struct h_case *hc, const char *v)
{
	struct outmsg_spec spec = base_spec;
	char path[512], *buf, *want = expected_clean(v, SUBJECT_CAP);
	GMimeMessage *m;

	spec.subject = v;
	buf = build_checked(&spec, path, sizeof(path));
	m = parse(path);
	ck_assert_msg(strcmp(g_mime_message_get_subject(m), want) == 0,
	    "%s: subject '%s'", hc->id, g_mime_message_get_subject(m));
	ck_assert_msg(strstr(strstr(buf, "\r\n\r\n") + 4, "evil") == NULL,
	    "%s: reached the body", hc->id);
	g_object_unref(m);
	free(want);
	free(buf);
}

/* H16: the value is printable ASCII, so it can only ever be the one
 * header's value; with CR/LF it is refused, naming the header. */
static void
case_header(const struct h_case *hc, const char *v)
{
	struct outmsg_spec spec = base_spec;
	struct outmsg_header h = { "List-Unsubscribe", NULL };
	char path[512], msgid[300], err[PD_ERRLEN], *val, *buf;

	val = xasprintf("<https://u.acme.example/u/%s>", v);
	h.value = val;
	spec.extra = &h;
	spec.n_extra = 1;
	buf = build_checked(&spec, path, sizeof(path));
	ck_assert_int_eq(field_count(buf, "List-Unsubscribe"), 1);
	free(buf);
	free(val);
	val = xasprintf("<https://u.acme.example/u/%s>\r\nBcc: x@evil.example",
	    v);
	h.value = val;
	ck_assert(build(&spec, path, sizeof(path), msgid, err) != 0);
	ck_assert_msg(strstr(err, "List-Unsubscribe") != NULL, "%s: '%s'",
	    hc->id, err);
	free(val);
}

/* H18: multi-line data ends CRLF whatever it came with; the line "."
 * stays data (the transport dot-stuffs, RFC 5321 4.5.2). */
static void
case_body(const struct h_case *hc, const char *v)
{
	static const char *const nl[] = { "\r\n", "\n", "\r" };
	struct outmsg_spec spec = base_spec;
	char path[512], *buf, *text, *got;
	GMimeMessage *m;
	size_t i;

	for (i = 0; i < 3; i++) {
		text = xasprintf("Hello%s%s%sbye", nl[i], v, nl[i]);
		if (i > 0) {	/* the same value with other line ends */
			free(text);
			text = xasprintf("Hello%s.%sMAIL FROM:<x@evil.example>"
			    "%sbye", nl[i], nl[i], nl[i]);
		}
		spec.text = text;
		buf = build_checked(&spec, path, sizeof(path));
		ck_assert_msg(strstr(buf, "\r\n.\r\nMAIL FROM:<x@evil.example>"
		    "\r\n") != NULL, "%s: CRLF lines, '.' unstuffed", hc->id);
		m = parse(path);
		got = plain_text(m);
		/* a body always ends with a line end on the wire */
		ck_assert_str_eq(got, "Hello\r\n.\r\nMAIL FROM:<x@evil.example>"
		    "\r\nbye\r\n");
		g_free(got);
		g_object_unref(m);
		free(buf);
		free(text);
	}
	/* In a single-line field the same value loses its CR/LF. */
	case_subject(hc, v);
}

START_TEST(test_corpus_case)
{
	json_t *c = json_array_get(cases, (size_t)_i);
	const char *id = json_string_value(json_object_get(c, "id"));
	json_t *jv = json_object_get(c, "value");
	const char *v = json_string_value(jv);
	const struct h_case *hc;

	ck_assert_msg(id != NULL && v != NULL, "case %d malformed", _i);
	hc = h_lookup(id);
	ck_assert_msg(hc != NULL, "%s: no expectation in this test", id);
	/* H04: a C caller cannot pass the NUL; what reaches us is "Eve",
	 * which carries no header.  Check the corpus still holds the NUL. */
	if (strcmp(id, "H04") == 0)
		ck_assert(json_string_length(jv) > strlen(v));
	switch (hc->field) {
	case F_ADDR: case_addr(hc, v); break;
	case F_NAME: case_name(hc, v); break;
	case F_SUBJECT: case_subject(hc, v); break;
	case F_HEADER: case_header(hc, v); break;
	case F_BODY: case_body(hc, v); break;
	}
}
END_TEST

/* H12 in detail: a reader's parser finds one address, the real one. */
START_TEST(test_name_looks_like_address)
{
	struct outmsg_spec spec = base_spec;
	char path[512], *buf;
	GMimeMessage *m;

	spec.from_name = "\"Support\" <admin@dossiers.example>";
	spec.to_name = "a@b.example, c@evil.example";
	buf = build_checked(&spec, path, sizeof(path));
	m = parse(path);
	assert_to(m, spec.to_name, spec.to_addr);
	ck_assert_int_eq(internet_address_list_length(
	    g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_FROM)), 1);
	ck_assert_str_eq(internet_address_get_name(internet_address_list_get_address(
	    g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_FROM), 0)),
	    spec.from_name);
	g_object_unref(m);
	free(buf);
}
END_TEST

/* ---- addresses and cleaning ------------------------------------------- */

struct addr_case {
	const char *addr;
	int ascii, utf8;	/* expected with smtputf8 = 0 / 1 */
};

static const struct addr_case addr_cases[] = {
	{ "a@b.example", 1, 1 },
	{ "first.last+tag@sub.acme.example", 1, 1 },
	{ "o'brien@acme.example", 1, 1 },
	{ "x@xn--bcher-kva.example", 1, 1 },
	{ "", 0, 0 }, { "@b.example", 0, 0 }, { "a@", 0, 0 },
	{ "a@b@c.example", 0, 0 }, { "a@localhost", 0, 0 },
	{ ".a@b.example", 0, 0 }, { "a.@b.example", 0, 0 },
	{ "a..b@b.example", 0, 0 }, { "a@b..example", 0, 0 },
	{ "a@-b.example", 0, 0 }, { "a@b-.example", 0, 0 },
	{ "a@b.example.", 0, 0 }, { "a b@b.example", 0, 0 },
	{ "\"a\"@b.example", 0, 0 }, { "a@[192.0.2.1]", 0, 0 },
	{ "<a@b.example>", 0, 0 }, { "a@b.example,c@d.example", 0, 0 },
	{ "a;b@b.example", 0, 0 }, { "a@b.example\r\n", 0, 0 },
	{ "a\t@b.example", 0, 0 }, { "a@b_c.example", 0, 0 },
	{ "j\xC3\xB6rg@b\xC3\xBC" "cher.example", 0, 1 },
	{ "a\xC2\x85@b.example", 0, 0 },	/* NEL */
	{ "a\xE2\x80\xA8@b.example", 0, 0 },	/* U+2028 */
	{ "a\xFF@b.example", 0, 0 },		/* not UTF-8 */
	{ "a\xC0\xAE@b.example", 0, 0 },	/* overlong '.' */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "@b.example", 1, 1 },			/* local part 64 */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "@b.example", 0, 0 },			/* 65 */
	{ "a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  ".example", 0, 0 },			/* label 64 */
};

START_TEST(test_addr_valid)
{
	const struct addr_case *c = &addr_cases[_i];

	ck_assert_msg(outmsg_addr_valid(c->addr, 0) == c->ascii,
	    "'%s' ascii", c->addr);
	ck_assert_msg(outmsg_addr_valid(c->addr, 1) == c->utf8,
	    "'%s' smtputf8", c->addr);
}
END_TEST

struct clean_case {
	const char *in;
	size_t max;
	const char *want;
};

static const struct clean_case clean_cases[] = {
	{ "plain", 256, "plain" },
	{ "a\r\nb\rc\nd", 256, "abcd" },
	{ "tab\there", 256, "tabhere" },
	{ "del\x7f.", 256, "del." },
	{ "nel\xC2\x85.", 256, "nel." },		/* U+0085 */
	{ "c1\xC2\x9B.", 256, "c1." },		/* CSI */
	{ "ls\xE2\x80\xA8ps\xE2\x80\xA9.", 256, "lsps." },
	{ "raw\x85.", 256, "raw\xEF\xBF\xBD." },	/* Latin-1 NEL */
	{ "bad\xC0\xAF.", 256, "bad\xEF\xBF\xBD\xEF\xBF\xBD." },
	{ "sur\xED\xA0\x80.", 256, "sur\xEF\xBF\xBD\xEF\xBF\xBD"
	  "\xEF\xBF\xBD." },
	{ "cut\xE2\x80\x94", 4, "cut" },		/* no half em dash */
	{ "cut\xE2\x80\x94", 6, "cut\xE2\x80\x94" },
	{ "Pi\xC3\xA8" "ces", 3, "Pi" },
	{ "", 10, "" },
	{ "%s%n${HOME}", 256, "%s%n${HOME}" },
};

START_TEST(test_clean_text)
{
	const struct clean_case *c = &clean_cases[_i];
	char *got = outmsg_clean_text(c->in, c->max);

	ck_assert_msg(strcmp(got, c->want) == 0, "case %d: got '%s'", _i,
	    got);
	free(got);
}
END_TEST

/* ---- structure -------------------------------------------------------- */

START_TEST(test_utf8_subject_roundtrip)
{
	const char *subj = "Pi\xC3\xA8" "ces justificatives \xE2\x80\x94 "
	    "dossier";
	struct outmsg_spec spec = base_spec;
	char path[512], *buf;
	GMimeMessage *m;

	spec.subject = subj;
	spec.to_name = "Ren\xC3\xA9" "e M\xC3\xBCller";
	buf = build_checked(&spec, path, sizeof(path));
	ck_assert_msg(strstr(buf, "=?") != NULL, "subject not RFC 2047");
	m = parse(path);
	ck_assert_str_eq(g_mime_message_get_subject(m), subj);
	assert_to(m, spec.to_name, spec.to_addr);
	g_object_unref(m);
	free(buf);
}
END_TEST

START_TEST(test_long_subject)
{
	static const char *const unit[] = { "S", "\xC3\xA9", "word " };
	struct outmsg_spec spec = base_spec;
	char path[512], *buf, *subj;
	size_t i, u = strlen(unit[_i]);
	GMimeMessage *m;

	subj = xmalloc(5000 * u + 1);
	for (i = 0; i < 5000; i++)
		memcpy(subj + i * u, unit[_i], u);
	subj[5000 * u] = '\0';
	spec.subject = subj;
	buf = build_checked(&spec, path, sizeof(path));
	m = parse(path);
	ck_assert_uint_le(strlen(g_mime_message_get_subject(m)), SUBJECT_CAP);
	ck_assert(strncmp(g_mime_message_get_subject(m), subj, 200) == 0);
	g_object_unref(m);
	free(buf);
	free(subj);
}
END_TEST

static void
assert_text_part(GMimeObject *o, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);

	ck_assert(g_mime_content_type_is_type(ct, "text", subtype));
	ck_assert_str_eq(g_mime_content_type_get_parameter(ct, "charset"),
	    "utf-8");
	ck_assert_int_eq(g_mime_part_get_content_encoding(GMIME_PART(o)),
	    GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
}

START_TEST(test_alternative)
{
	struct outmsg_spec spec = base_spec;
	char path[512], *buf, *got;
	GMimeMessage *m;
	GMimeObject *top;
	GMimeMultipart *mp;

	spec.text = "Bonjour \xC3\xA9t\xC3\xA9\n";
	spec.html = "<p>Bonjour \xC3\xA9t\xC3\xA9</p>\n";
	buf = build_checked(&spec, path, sizeof(path));
	m = parse(path);
	top = g_mime_message_get_mime_part(m);
	ck_assert(g_mime_content_type_is_type(
	    g_mime_object_get_content_type(top), "multipart", "alternative"));
	mp = GMIME_MULTIPART(top);
	ck_assert_int_eq(g_mime_multipart_get_count(mp), 2);
	assert_text_part(g_mime_multipart_get_part(mp, 0), "plain");
	assert_text_part(g_mime_multipart_get_part(mp, 1), "html");
	got = plain_text(m);
	ck_assert_str_eq(got, "Bonjour \xC3\xA9t\xC3\xA9\r\n");
	g_free(got);
	ck_assert_str_eq(g_mime_object_get_header(GMIME_OBJECT(m),
	    "MIME-Version"), "1.0");
	g_object_unref(m);
	free(buf);
}
END_TEST

START_TEST(test_text_only)
{
	char path[512], *buf;
	GMimeMessage *m;

	buf = build_checked(&base_spec, path, sizeof(path));
	m = parse(path);
	assert_text_part(g_mime_message_get_mime_part(m), "plain");
	g_object_unref(m);
	free(buf);
}
END_TEST

START_TEST(test_message_id)
{
	char path[512], msgid[300], err[PD_ERRLEN], *buf, *hdr;
	regex_t re;
	GMimeMessage *m;
	struct stat st;

	ck_assert_int_eq(build(&base_spec, path, sizeof(path), msgid, err), 0);
	ck_assert_int_eq(regcomp(&re, "^[0-9a-f]{32}\\.[0-9]+@acme\\.example$",
	    REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_msg(regexec(&re, msgid, 0, NULL, 0) == 0, "'%s'", msgid);
	regfree(&re);
	buf = tl_slurp(path, NULL);
	hdr = xasprintf("\r\nMessage-Id: <%s>\r\n", msgid);
	ck_assert_msg(strstr(buf, hdr) != NULL, "header of %s", msgid);
	m = parse(path);
	ck_assert_str_eq(g_mime_message_get_message_id(m), msgid);
	ck_assert(g_mime_message_get_date(m) != NULL);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	g_object_unref(m);
	free(hdr);
	free(buf);
}
END_TEST

struct hdr_case {
	const char *name, *value;
	int ok;
};

static const struct hdr_case hdr_cases[] = {
	{ "List-Unsubscribe", "<https://u.acme.example/u/abc>", 1 },
	{ "List-Unsubscribe-Post", "List-Unsubscribe=One-Click", 1 },
	{ "X-Bad Name", "v", 0 }, { "X-Colon:", "v", 0 }, { "", "v", 0 },
	{ "X-Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  "v", 0 },				/* 65 */
	{ "X-Ok", "a\r\nBcc: x@evil.example", 0 },
	{ "X-Ok", "a\nb", 0 }, { "X-Ok", "tab\there", 0 },
	{ "X-Ok", "caf\xC3\xA9", 0 },
	{ "Bcc", "x@evil.example", 0 }, { "from", "x@evil.example", 0 },
	{ "Content-Type", "text/html", 0 },
};

START_TEST(test_extra_headers)
{
	const struct hdr_case *c = &hdr_cases[_i];
	struct outmsg_header h = { c->name, c->value };
	struct outmsg_spec spec = base_spec;
	char path[512], msgid[300], err[PD_ERRLEN], *buf;
	int rc;

	spec.extra = &h;
	spec.n_extra = 1;
	rc = build(&spec, path, sizeof(path), msgid, err);
	ck_assert_msg((rc == 0) == c->ok, "%s: rc %d err '%s'", c->name, rc,
	    err);
	if (!c->ok) {
		ck_assert_msg(c->name[0] == '\0' || strstr(err, c->name),
		    "error does not name the header: '%s'", err);
		return;
	}
	buf = tl_slurp(path, NULL);
	ck_assert_int_eq(field_count(buf, c->name), 1);
	free(buf);
}
END_TEST

START_TEST(test_file_safety)
{
	char path[512], link_path[512], msgid[300], err[PD_ERRLEN];

	ck_assert_int_eq(build(&base_spec, path, sizeof(path), msgid, err), 0);
	/* O_EXCL: an existing file is never overwritten */
	ck_assert(outmsg_build(&base_spec, path, msgid, 300, err) != 0);
	ck_assert(strstr(err, "File exists") != NULL);
	/* O_NOFOLLOW + O_EXCL: a planted symlink is not followed */
	snprintf(link_path, sizeof(link_path), "%s/link-%ld", tmp_dir,
	    (long)getpid());
	ck_assert_int_eq(symlink("/tmp/never-written", link_path), 0);
	ck_assert(outmsg_build(&base_spec, link_path, msgid, 300, err) != 0);
	ck_assert(access("/tmp/never-written", F_OK) != 0);
	/* an unusable spec leaves no file behind */
	new_path(path, sizeof(path));
	ck_assert(outmsg_build(&(struct outmsg_spec){ .from_addr = "x" }, path,
	    msgid, 300, err) != 0);
	ck_assert(access(path, F_OK) != 0);
}
END_TEST

START_TEST(test_canonical_check)
{
	static const struct { const char *bytes; int ok; } c[] = {
		{ "a\r\nb\r\n", 1 }, { "a\nb\r\n", 0 }, { "a\rb\r\n", 0 },
		{ "a\r\n\r", 0 }, { "", 1 },
	};
	char path[512], *big;
	size_t i;
	FILE *f;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		new_path(path, sizeof(path));
		f = fopen(path, "wb");
		fputs(c[i].bytes, f);
		fclose(f);
		ck_assert_msg(outmsg_file_canonical(path) == c[i].ok, "%zu",
		    i);
	}
	big = xmalloc(1002);
	memset(big, 'x', 999);
	memcpy(big + 999, "\r\n", 3);
	new_path(path, sizeof(path));
	f = fopen(path, "wb");
	fputs(big, f);
	fclose(f);
	ck_assert(!outmsg_file_canonical(path));	/* 999 octets */
	free(big);
}
END_TEST

/* ---- DKIM, through the plugin ABI ------------------------------------- */

struct dk_plugin {
	void *dl;
	const struct postdoc_plugin *p;
	void *state;
};

static void
dk_load(struct dk_plugin *dp, const char *settings)
{
	config_t cfg;
	char err[256] = "";

	dp->dl = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(dp->dl != NULL, "dlopen: %s", dlerror());
	dp->p = dlsym(dp->dl, POSTDOC_PLUGIN_SYMBOL);
	ck_assert(dp->p != NULL);
	ck_assert_int_eq(dp->p->abi, POSTDOC_PLUGIN_ABI);
	ck_assert_uint_ge(dp->p->size, sizeof(struct postdoc_plugin));
	ck_assert_str_eq(dp->p->name, "dkim");
	config_init(&cfg);
	ck_assert_msg(config_read_string(&cfg, settings) == CONFIG_TRUE,
	    "config: %s", config_error_text(&cfg));
	ck_assert_msg(dp->p->init(config_lookup(&cfg, "settings"), &dp->state,
	    err, sizeof(err)) == 0, "init: %s", err);
	config_destroy(&cfg);
}

static void
dk_unload(struct dk_plugin *dp)
{
	dp->p->deinit(dp->state);
	dlclose(dp->dl);
}

static enum postdoc_verdict
dk_run(struct dk_plugin *dp, const char *path, const char *domain,
    char *prepend, size_t len, struct postdoc_reply *r)
{
	struct postdoc_outbound_info m = {
		.id = 1, .account = "ACME", .kind = "invitation",
		.mail_from = "b-1@acme.example", .rcpt = "eve@client.example",
		.from_domain = domain, .path = path, .size = 0,
	};

	memset(r, 0, sizeof(*r));
	return dp->p->hooks.outbound(dp->state, &m, prepend, len, r);
}

/* The prepended field: CRLF lines, continuations start with WSP. */
static void
assert_prepend_syntax(const char *pre)
{
	const char *p;

	ck_assert_msg(strncmp(pre, "DKIM-Signature: ", 16) == 0, "'%.40s'",
	    pre);
	ck_assert(strlen(pre) > 2 && strcmp(pre + strlen(pre) - 2, "\r\n")
	    == 0);
	assert_wire_clean(pre, strlen(pre));
	for (p = strstr(pre, "\r\n"); p[2] != '\0'; p = strstr(p + 2, "\r\n"))
		ck_assert(p[2] == ' ' || p[2] == '\t');
}

static const char *verify_py =
    "import sys, dkim\n"
    "msg = open(sys.argv[1], 'rb').read()\n"
    "rec = open(sys.argv[2], 'rb').read().strip()\n"
    "def dns(name, timeout=5):\n"
    "    return rec if name == sys.argv[3].encode() else None\n"
    "def v(m):\n"
    "    return dkim.verify(m, dnsfunc=dns)\n"
    "hdr, body = msg.split(b'\\r\\n\\r\\n', 1)\n"
    "t1 = msg.replace(b'\\r\\nSubject: ', b'\\r\\nSubject: X', 1)\n"
    "t2 = msg.replace(b'/u/abc', b'/u/abd', 1)\n"
    "t3 = msg.replace(b'\\r\\nFrom: ', b'\\r\\nFrom: x@evil.example\\r\\n"
    "From: ', 1)\n"
    "t4 = hdr + b'\\r\\n\\r\\n' + body.replace(b'Hello', b'Hallo', 1)\n"
    "print(v(msg), v(t1), v(t2), v(t3), v(t4))\n";

/* The TXT record's strings joined, as a resolver would return them. */
static char *
txt_record(const char *txt_path)
{
	char *line = tl_slurp(txt_path, NULL), *out = xcalloc(1, strlen(line));
	const char *p = strchr(line, '"'), *q;

	ck_assert_msg(strstr(line, "IN TXT") != NULL, "'%s'", line);
	while (p != NULL && (q = strchr(p + 1, '"')) != NULL) {
		strncat(out, p + 1, (size_t)(q - p - 1));
		p = strchr(q + 1, '"');
	}
	ck_assert_msg(strncmp(out, "v=DKIM1; k=rsa; p=", 18) == 0, "'%s'",
	    out);
	free(line);
	return out;
}

static char *
run_verifier(const char *signed_path, const char *rec_path,
    const char *dns_name)
{
	char *cmd, out[256] = "";
	FILE *f;

	cmd = xasprintf("/usr/bin/python3 -c \"$PY\" '%s' '%s' '%s' 2>&1",
	    signed_path, rec_path, dns_name);
	setenv("PY", verify_py, 1);
	f = popen(cmd, "r");
	ck_assert(f != NULL);
	if (fgets(out, sizeof(out), f) == NULL)
		out[0] = '\0';
	pclose(f);
	free(cmd);
	out[strcspn(out, "\n")] = '\0';
	return xstrdup(out);
}

static void
write_file(const char *path, const char *a, const char *b, size_t blen)
{
	FILE *f = fopen(path, "wb");

	ck_assert(f != NULL);
	fputs(a, f);
	fwrite(b, 1, blen, f);
	fclose(f);
}

static void
dk_sign_and_verify(struct dk_plugin *dp, const char *dir)
{
	struct outmsg_header h[] = {
		{ "List-Unsubscribe", "<https://u.acme.example/u/abc>" },
		{ "List-Unsubscribe-Post", "List-Unsubscribe=One-Click" },
	};
	struct outmsg_spec spec = base_spec;
	char path[512], signed_path[600], rec_path[600], txt[600];
	char pre[4096], *msg, *rec, *got;
	struct postdoc_reply r;
	size_t n;

	spec.extra = h;
	spec.n_extra = 2;
	spec.html = "<p>Hello</p>";
	spec.subject = "Pi\xC3\xA8" "ces justificatives \xE2\x80\x94 dossier";
	msg = build_checked(&spec, path, sizeof(path));
	free(msg);
	ck_assert_msg(dk_run(dp, path, "ACME.example", pre, sizeof(pre), &r)
	    == POSTDOC_CONT, "outbound: %s", r.text);
	assert_prepend_syntax(pre);
	ck_assert_msg(strstr(pre, "d=acme.example") && strstr(pre, "s=t1") &&
	    strstr(pre, "c=relaxed/relaxed") && strstr(pre, "a=rsa-sha256"),
	    "%s", pre);
	msg = tl_slurp(path, &n);
	snprintf(signed_path, sizeof(signed_path), "%s/signed.eml", dir);
	write_file(signed_path, pre, msg, n);
	free(msg);
	snprintf(txt, sizeof(txt), "%s/acme.example.t1.txt", dir);
	rec = txt_record(txt);
	snprintf(rec_path, sizeof(rec_path), "%s/record", dir);
	write_file(rec_path, rec, "", 0);
	got = run_verifier(signed_path, rec_path, "t1._domainkey.acme.example.");
	/* valid; Subject, List-Unsubscribe, an added From, body tampered */
	ck_assert_msg(strcmp(got, "True False False False False") == 0,
	    "verifier said '%s'", got);
	free(got);
	free(rec);
}

START_TEST(test_dkim_sign_verify)
{
	struct dk_plugin dp;
	char dir[400], cfg[600], key[600];
	struct stat st, st2;

	snprintf(dir, sizeof(dir), "%s/dkim-%ld", tmp_dir, (long)getpid());
	snprintf(cfg, sizeof(cfg), "settings = { key_dir = \"%s\"; "
	    "selector = \"t1\"; };", dir);
	dk_load(&dp, cfg);
	dk_sign_and_verify(&dp, dir);
	snprintf(key, sizeof(key), "%s/acme.example.t1.key", dir);
	ck_assert_int_eq(stat(key, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	/* a second message reuses the key */
	dk_sign_and_verify(&dp, dir);
	ck_assert_int_eq(stat(key, &st2), 0);
	ck_assert(st.st_ino == st2.st_ino && st.st_mtime == st2.st_mtime);
	dk_unload(&dp);
}
END_TEST

struct dk_thread_arg {
	struct dk_plugin *dp;
	char path[512];
	enum postdoc_verdict v;
	char text[POSTDOC_PLUGIN_TEXT_MAX];
};

static void *
dk_thread(void *arg)
{
	struct dk_thread_arg *a = arg;
	struct postdoc_reply r;
	char pre[4096];

	a->v = dk_run(a->dp, a->path, "threads.example", pre, sizeof(pre), &r);
	memcpy(a->text, r.text, sizeof(a->text));
	return NULL;
}

/* Several threads hit a domain without a key: one key, all signed. */
START_TEST(test_dkim_threads)
{
	struct dk_plugin dp;
	struct dk_thread_arg a[6];
	pthread_t t[6];
	char dir[400], cfg[600], txt[600], *msg;
	int i, keys = 0;
	DIR *d;
	struct dirent *de;

	/* key_dir's parents are made too */
	snprintf(dir, sizeof(dir), "%s/var-%ld/dkim", tmp_dir, (long)getpid());
	snprintf(cfg, sizeof(cfg), "settings = { key_dir = \"%s\"; };", dir);
	dk_load(&dp, cfg);
	for (i = 0; i < 6; i++) {
		a[i].dp = &dp;
		msg = build_checked(&base_spec, a[i].path, sizeof(a[i].path));
		free(msg);
		ck_assert_int_eq(pthread_create(&t[i], NULL, dk_thread, &a[i]),
		    0);
	}
	for (i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(a[i].v == POSTDOC_CONT, "thread %d: %s", i,
		    a[i].text);
	}
	d = opendir(dir);
	ck_assert(d != NULL);
	while ((de = readdir(d)) != NULL) {
		ck_assert_msg(strstr(de->d_name, ".tmp.") == NULL, "left %s",
		    de->d_name);
		keys += strstr(de->d_name, ".key") != NULL;
	}
	closedir(d);
	ck_assert_int_eq(keys, 1);
	snprintf(txt, sizeof(txt), "%s/threads.example.postdoc.txt", dir);
	ck_assert_int_eq(access(txt, F_OK), 0);
	dk_unload(&dp);
}
END_TEST

START_TEST(test_dkim_errors)
{
	struct dk_plugin dp;
	struct postdoc_reply r;
	char cfg[1024], path[512], pre[4096], *msg;

	snprintf(cfg, sizeof(cfg), "settings = { key_dir = \"%s/dkim-e\"; "
	    "keys = ( { domain = \"acme.example\"; selector = \"s1\"; "
	    "key_file = \"%s/none.pem\"; } ); };", tmp_dir, tmp_dir);
	dk_load(&dp, cfg);
	msg = build_checked(&base_spec, path, sizeof(path));
	free(msg);
	ck_assert_int_eq(dk_run(&dp, path, "acme.example", pre, sizeof(pre),
	    &r), POSTDOC_DENYSOFT);
	ck_assert_msg(strstr(r.text, "dkim: cannot read key ") &&
	    strstr(r.text, "No such file"), "'%s'", r.text);
	ck_assert_str_eq(pre, "");
	/* From domains that are not DNS names never become file names */
	ck_assert_int_eq(dk_run(&dp, path, "../../etc", pre, sizeof(pre), &r),
	    POSTDOC_DENYSOFT);
	ck_assert_int_eq(dk_run(&dp, path, NULL, pre, sizeof(pre), &r),
	    POSTDOC_DENYSOFT);
	/* no room for the signature */
	ck_assert_int_eq(dk_run(&dp, path, "other.example", pre, 100, &r),
	    POSTDOC_DENYSOFT);
	ck_assert_msg(strstr(r.text, "does not fit"), "'%s'", r.text);
	ck_assert_int_eq(dk_run(&dp, "/nonexistent/m.eml", "other.example",
	    pre, sizeof(pre), &r), POSTDOC_DENYSOFT);
	ck_assert_msg(strstr(r.text, "/nonexistent/m.eml"), "'%s'", r.text);
	dk_unload(&dp);
}
END_TEST

/* ---- main ------------------------------------------------------------- */

static int
load_corpus(void)
{
	const char *shared = getenv("POSTDOC_SHARED");
	json_error_t je;
	json_t *root;

	if (shared && *shared)
		snprintf(corpus_path, sizeof(corpus_path),
		    "%s/corpus/outbound_cases.json", shared);
	else
		snprintf(corpus_path, sizeof(corpus_path), "%s",
		    TOP_SRCDIR "/../shared/corpus/outbound_cases.json");
	root = json_load_file(corpus_path, JSON_ALLOW_NUL, &je);
	if (root == NULL)
		return 0;
	cases = json_incref(json_object_get(root, "header_injection_values"));
	json_decref(root);
	return json_is_array(cases) && json_array_size(cases) > 0;
}

static int
find_plugin(void)
{
	const char *dir = getenv("POSTDOC_PLUGIN_DIR");

	if (dir == NULL || *dir == '\0')
		return 0;
	snprintf(plugin_path, sizeof(plugin_path), "%s/dkim.so", dir);
	return access(plugin_path, R_OK) == 0 &&
	    access("/usr/bin/python3", X_OK) == 0;
}

static int
rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static Suite *
outmsg_suite(int have_corpus, int have_plugin)
{
	Suite *s = suite_create("outmsg");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_addr_valid, 0,
	    sizeof(addr_cases) / sizeof(addr_cases[0]));
	tcase_add_loop_test(tc, test_clean_text, 0,
	    sizeof(clean_cases) / sizeof(clean_cases[0]));
	tcase_add_loop_test(tc, test_extra_headers, 0,
	    sizeof(hdr_cases) / sizeof(hdr_cases[0]));
	tcase_add_test(tc, test_name_looks_like_address);
	tcase_add_test(tc, test_utf8_subject_roundtrip);
	tcase_add_loop_test(tc, test_long_subject, 0, 3);
	tcase_add_test(tc, test_alternative);
	tcase_add_test(tc, test_text_only);
	tcase_add_test(tc, test_message_id);
	tcase_add_test(tc, test_file_safety);
	tcase_add_test(tc, test_canonical_check);
	suite_add_tcase(s, tc);
	if (have_corpus) {
		tc = tcase_create("corpus");
		tcase_add_loop_test(tc, test_corpus_case, 0,
		    (int)json_array_size(cases));
		suite_add_tcase(s, tc);
	}
	if (have_plugin) {
		tc = tcase_create("dkim");
		tcase_set_timeout(tc, 120);	/* RSA key generation */
		tcase_add_test(tc, test_dkim_sign_verify);
		tcase_add_test(tc, test_dkim_threads);
		tcase_add_test(tc, test_dkim_errors);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	int failed, have_corpus = load_corpus(), have_plugin = find_plugin();
	SRunner *sr;

	umask(022);
	g_mime_init();
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/test_outmsg.XXXXXX");
	if (mkdtemp(tmp_dir) == NULL)
		return EXIT_FAILURE;
	if (!have_corpus)
		printf("SKIP: corpus not found (%s)\n", corpus_path);
	if (!have_plugin)
		printf("SKIP: dkim plugin or python3 not found (set "
		    "POSTDOC_PLUGIN_DIR)\n");
	sr = srunner_create(outmsg_suite(have_corpus, have_plugin));
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	json_decref(cases);
	if (failed)
		return EXIT_FAILURE;
	return have_corpus && have_plugin ? EXIT_SUCCESS : 77;	/* SKIP */
}

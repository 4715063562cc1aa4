/*
 * test_mailtext.c - table-driven tests of mailtext.c, the text a sender
 * wrote as `dossier show`, the API and message.received webhooks show
 * it: the first inline text/plain (multipart/alternative: the plain
 * part), else the HTML without its tags, an attachment's text never,
 * charsets decoded to UTF-8, controls removed, blank lines folded, and
 * the cap (at a character boundary, then a "[...]" line).
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/mailtext.h"
#include "lib/util.h"
#include "testlib.h"

#define HDR "From: Zoe Martin <zoe@client.example>\r\n" \
	"To: d-abcdefgh@dossiers.example\r\nSubject: question\r\n" \
	"MIME-Version: 1.0\r\n"
#define ALT "Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n"
#define MIX "Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n"

struct text_row {
	const char *name;
	const char *msg;
	size_t max;
	const char *want;
};

static const struct text_row rows[] = {
	{ "plain",
	    HDR "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	    "I have no bank statement,\r\nmay I send a certificate?\r\n",
	    4000, "I have no bank statement,\nmay I send a certificate?" },
	{ "no MIME header at all: text/plain",
	    "From: a@b.example\r\nSubject: x\r\n\r\nhello\r\n", 4000,
	    "hello" },
	{ "multipart/alternative prefers the plain part",
	    HDR ALT "--a\r\nContent-Type: text/html\r\n\r\n<p>the html</p>\r\n"
	    "--a\r\nContent-Type: text/plain\r\n\r\nthe plain\r\n--a--\r\n",
	    4000, "the plain" },
	{ "html only: tags out, entities decoded, paragraphs as lines",
	    HDR "Content-Type: text/html; charset=utf-8\r\n\r\n"
	    "<html><head><style>p { color: red; }</style></head><body>"
	    "<p>Bonjour,</p><p>Fish &amp; chips&nbsp;<b>ok</b>?<br>"
	    "Merci</p><script>alert(1)</script></body></html>\r\n",
	    4000, "Bonjour,\nFish & chips ok?\nMerci" },
	{ "an attached text file is not what she wrote",
	    HDR MIX "--m\r\nContent-Type: text/plain\r\n"
	    "Content-Disposition: attachment; filename=\"notes.txt\"\r\n\r\n"
	    "attached notes\r\n--m\r\nContent-Type: text/plain\r\n\r\n"
	    "the body\r\n--m--\r\n",
	    4000, "the body" },
	{ "only an attachment: no text",
	    HDR MIX "--m\r\nContent-Type: text/plain\r\n"
	    "Content-Disposition: attachment; filename=\"notes.txt\"\r\n\r\n"
	    "attached notes\r\n--m\r\nContent-Type: application/pdf\r\n"
	    "Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\n"
	    "%PDF-1.4\r\n--m--\r\n",
	    4000, "" },
	{ "body inside mixed with alternative",
	    HDR MIX "--m\r\n" ALT "--a\r\nContent-Type: text/plain\r\n\r\n"
	    "nested plain\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>x</p>"
	    "\r\n--a--\r\n--m\r\nContent-Type: application/pdf\r\n"
	    "Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\n"
	    "%PDF-1.4\r\n--m--\r\n",
	    4000, "nested plain" },
	{ "latin-1 decoded to UTF-8",
	    HDR "Content-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "Pi=E8ce d'identit=E9 envoy=E9e\r\n",
	    4000, "Pi\xc3\xa8" "ce d'identit\xc3\xa9 envoy\xc3\xa9" "e" },
	{ "base64 UTF-8",
	    HDR "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    "Wm/DqSBNYXJ0aW4=\r\n",
	    4000, "Zo\xc3\xa9 Martin" },
	{ "controls removed, tab kept, blank lines folded",
	    HDR "Content-Type: text/plain\r\n\r\n"
	    "a\x01" "b\x1b[31mc\x7f" "d\te\r\n\r\n\r\n\r\n\r\nf\r\n\r\n",
	    4000, "ab[31mcd\te\n\nf" },
	{ "cap: at max bytes, then a [...] line",
	    HDR "Content-Type: text/plain\r\n\r\n"
	    "0123456789abcdefghij\r\n", 10, "0123456789\n[...]" },
	{ "cap: never inside a character",
	    HDR "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\r\n", 5,
	    "\xc3\xa9\xc3\xa9\n[...]" },
	{ "not a message at all: no text", "", 4000, "" },
};

static char tmpdir[256];

static void
setup(void)
{
	tl_tmpdir(tmpdir, sizeof(tmpdir), "mailtext");
}

static void
teardown(void)
{
	tl_rmtree(tmpdir);
}

static int
msg_fd(const char *msg)
{
	char path[512];
	size_t n = strlen(msg);
	int fd;

	snprintf(path, sizeof(path), "%s/m", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, msg, n), (ssize_t)n);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

START_TEST(test_text)
{
	const struct text_row *r = &rows[_i];
	char err[PD_ERRLEN], *text = NULL;
	int fd = msg_fd(r->msg);

	ck_assert_msg(mailtext_extract(fd, r->max, &text, err) == 0, "%s: %s",
	    r->name, err);
	close(fd);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(strcmp(text, r->want) == 0, "%s: got \"%s\", want "
	    "\"%s\"", r->name, text, r->want);
	free(text);
}
END_TEST

/* A long message: the cap holds (4000 bytes and the marker). */
START_TEST(test_cap_long)
{
	size_t n = 20000, h = strlen(HDR "\r\n");
	char *msg = xmalloc(h + n + 3), err[PD_ERRLEN], *text = NULL;
	int fd;

	memcpy(msg, HDR "\r\n", h);
	memset(msg + h, 'x', n);
	memcpy(msg + h + n, "\r\n", 3);
	fd = msg_fd(msg);
	ck_assert_int_eq(mailtext_extract(fd, 4000, &text, err), 0);
	close(fd);
	ck_assert_uint_eq(strlen(text), 4000 + strlen("\n[...]"));
	ck_assert_str_eq(text + 4000, "\n[...]");
	free(text);
	free(msg);
}
END_TEST

static Suite *
mailtext_suite(void)
{
	Suite *s = suite_create("mailtext");
	TCase *tc = tcase_create("mailtext");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_text, 0,
	    (int)(sizeof(rows) / sizeof(rows[0])));
	tcase_add_test(tc, test_cap_long);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(mailtext_suite());
}

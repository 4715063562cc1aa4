/*
 * test_dkim.c - the dkim plugin's signatures checked by an independent
 * verifier, libopendkim (which the plugin no longer uses): messages whose
 * relaxed canonical form differs from their bytes (folds, WSP runs, WSP
 * at line ends, trailing empty lines, an empty body, repeated fields, a
 * body longer than the plugin's read buffers with CRLFs across their
 * edges), a tampered copy refused, a body without its final CRLF refused
 * as before, and a replaced key file used from the next message on (the
 * plugin keeps parsed keys).
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <opendkim/dkim.h>

#include "postdoc/plugin.h"

static const struct postdoc_plugin *plug;
static void *state;
static char dir[256], cwd[1024];

static void
setup(void)
{
	const char *pdir = getenv("POSTDOC_PLUGIN_DIR");
	char path[2200], rel[1024];
	char err[512];
	void *h;

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	/* absolute: the test runs in its own directory */
	snprintf(rel, sizeof(rel), "%s", pdir ? pdir : "plugins/.libs");
	snprintf(path, sizeof(path), "%s%s%s/dkim.so", rel[0] == '/' ? "" :
	    cwd, rel[0] == '/' ? "" : "/", rel);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(h != NULL, "dlopen %s: %s", path, dlerror());
	plug = dlsym(h, POSTDOC_PLUGIN_SYMBOL);
	ck_assert_ptr_nonnull(plug);
	ck_assert_ptr_nonnull(plug->hooks.outbound);
	snprintf(dir, sizeof(dir), "/tmp/pd-dkim-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chdir(dir), 0);
	/* defaults: key_dir "var/dkim", selector "postdoc" */
	ck_assert_int_eq(plug->init(NULL, &state, err, sizeof(err)), 0);
}

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static void
teardown(void)
{
	plug->deinit(state);
	ck_assert_int_eq(chdir(cwd), 0);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
write_file(const char *path, const char *buf, size_t n)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

/* The p= of the plugin's zone-file line, as libopendkim's key file. */
static void
write_keyfile(const char *txt, const char *out)
{
	char line[8192], rec[8192];
	size_t n = 0;
	FILE *f = fopen(txt, "r");
	char *p;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	fclose(f);
	for (p = strchr(line, '"'); p != NULL; p = strchr(p + 1, '"')) {
		char *e = strchr(p + 1, '"');

		ck_assert_ptr_nonnull(e);
		memcpy(rec + n, p + 1, (size_t)(e - p - 1));
		n += (size_t)(e - p - 1);
		p = e;
	}
	rec[n] = '\0';
	f = fopen(out, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "postdoc._domainkey.example.org %s", rec);
	fclose(f);
}

/* Sign msg (n bytes) as the core does; returns prepend + msg. */
static char *
sign(const char *msg, size_t n, size_t *len_r)
{
	struct postdoc_outbound_info m = { .from_domain = "Example.ORG",
	    .path = "msg.eml", .kind = "newsletter", .account = "T" };
	struct postdoc_reply r = { .text = { 0 } };
	char pre[16384], *out;
	size_t plen;

	write_file("msg.eml", msg, n);
	ck_assert_int_eq(plug->hooks.outbound(state, &m, pre, sizeof(pre), &r),
	    POSTDOC_CONT);
	ck_assert_msg(strncmp(pre, "DKIM-Signature: v=1; a=rsa-sha256; "
	    "c=relaxed/relaxed; d=example.org;", 67) == 0, "%s", pre);
	plen = strlen(pre);
	out = malloc(plen + n + 1);	/* NUL-terminated for strstr, "%s" */
	memcpy(out, pre, plen);
	memcpy(out + plen, msg, n);
	out[plen + n] = '\0';
	*len_r = plen + n;
	return out;
}

/* libopendkim's verdict on buf, the key read from keyfile. */
static int
verify(const char *buf, size_t n, const char *keyfile)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	unsigned int q = DKIM_QUERY_FILE;
	DKIM_STAT s;
	DKIM_SIGINFO *sig;
	DKIM *d;
	int ok;

	ck_assert_ptr_nonnull(lib);
	ck_assert_int_eq(dkim_options(lib, DKIM_OP_SETOPT,
	    DKIM_OPTS_QUERYMETHOD, &q, sizeof(q)), DKIM_STAT_OK);
	ck_assert_int_eq(dkim_options(lib, DKIM_OP_SETOPT,
	    DKIM_OPTS_QUERYINFO, (void *)keyfile, strlen(keyfile)),
	    DKIM_STAT_OK);
	d = dkim_verify(lib, (const unsigned char *)"test", NULL, &s);
	ck_assert_ptr_nonnull(d);
	s = dkim_chunk(d, (unsigned char *)buf, n);
	if (s == DKIM_STAT_OK)
		s = dkim_chunk(d, NULL, 0);
	if (s == DKIM_STAT_OK)
		s = dkim_eom(d, NULL);
	sig = dkim_getsignature(d);
	ok = s == DKIM_STAT_OK && sig != NULL &&
	    dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH &&
	    (dkim_sig_getflags(sig) & DKIM_SIGFLAG_PASSED) != 0;
	dkim_free(d);
	dkim_close(lib);
	return ok;
}

static const char *msgs[] = {
	/* WSP runs, WSP at line ends, trailing empty lines */
	"From: A <a@example.org>\r\nTo: b@x.example\r\n"
	"Subject:  Hello   there \r\nDate: Thu, 26 Nov 2026 13:00:00 +0000\r\n"
	"Message-ID: <1@example.org>\r\n\r\nbody line  \r\n  indented\t\tline"
	"\r\n \t \r\nafter a blank one\r\n\r\n\r\n",
	/* folded fields, a field not signed, List-Unsubscribe */
	"From: A <a@example.org>\r\nSubject: folded\r\n  subject\r\n\tmore  "
	"\r\nTo: b@x.example,\r\n c@y.example\r\nReply-To: r@example.org\r\n"
	"List-Unsubscribe: <https://x/u/1>,\r\n <mailto:u@x>\r\n"
	"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nX-Other: no\r\n"
	"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nx\r\n",
	/* empty body */
	"From: A <a@example.org>\r\nTo: b@x.example\r\nSubject: empty\r\n\r\n",
	/* repeated fields: signed bottom-up (RFC 6376 5.4.2) */
	"From: A <a@example.org>\r\nTo: b@x.example\r\nTo: c@x.example\r\n"
	"Subject: one\r\nsubject: two\r\n\r\n\r\n \r\nend\r\n \t \r\n",
};

START_TEST(test_signatures_verify)
{
	size_t n;
	char *s = sign(msgs[_i], strlen(msgs[_i]), &n), *t;

	write_keyfile("var/dkim/example.org.postdoc.txt", "keys");
	ck_assert_msg(verify(s, n, "keys"), "not verified: %s", s);
	/* a changed body letter fails it */
	t = strstr(s, "\r\n\r\n");
	if (t[4] != '\0') {
		t[4] ^= 0x01;
		ck_assert(!verify(s, n, "keys"));
	}
	free(s);
}
END_TEST

/* A body not ending in CRLF is refused, as libopendkim refused it (and
 * refuses to verify it): outmsg never makes one. */
START_TEST(test_no_final_crlf_refused)
{
	const char *msg = "From: A <a@example.org>\r\nTo: b@x.example\r\n"
	    "Subject: n\r\n\r\nx";
	struct postdoc_outbound_info m = { .from_domain = "example.org",
	    .path = "msg.eml" };
	struct postdoc_reply r = { .text = { 0 } };
	char pre[16384];

	write_file("msg.eml", msg, strlen(msg));
	ck_assert_int_eq(plug->hooks.outbound(state, &m, pre, sizeof(pre), &r),
	    POSTDOC_DENYSOFT);
	ck_assert_str_eq(pre, "");
	ck_assert_ptr_nonnull(strstr(r.text, "CRLF at end of body missing"));
}
END_TEST

/* 300 KB: lines of varying length and WSP runs, so the 16 KB header
 * buffer and 8 KB hash chunks end inside CRLFs and WSP runs. */
START_TEST(test_long_body)
{
	const char *h = "From: A <a@example.org>\r\nTo: b@x.example\r\n"
	    "Subject: long\r\n\r\n";
	size_t cap = 320 * 1024, n = 0, i, len;
	char *m = malloc(cap), *s;

	n = (size_t)snprintf(m, cap, "%s", h);
	for (i = 0; n + 200 < cap - 1024; i++) {
		n += (size_t)snprintf(m + n, cap - n, "%zu%*s x  \t", i,
		    (int)(i % 7), "");
		memcpy(m + n, "\r\n\r\n" + (i % 3 == 0 ? 0 : 2),
		    i % 3 == 0 ? 4 : 2);
		n += i % 3 == 0 ? 4 : 2;
	}
	s = sign(m, n, &len);
	write_keyfile("var/dkim/example.org.postdoc.txt", "keys");
	ck_assert(verify(s, len, "keys"));
	free(s);
	free(m);
}
END_TEST

/* The plugin keeps parsed keys: a new key file is used from the next
 * message on, and the old key's record no longer verifies it. */
START_TEST(test_key_replaced)
{
	const char *msg = msgs[0];
	EVP_PKEY *pk = EVP_RSA_gen(2048);
	unsigned char *der = NULL;
	char b64[1024], *s;
	size_t n;
	int dlen;
	FILE *f;

	s = sign(msg, strlen(msg), &n);
	write_keyfile("var/dkim/example.org.postdoc.txt", "old-keys");
	ck_assert(verify(s, n, "old-keys"));
	free(s);
	/* a new key, put in place by rename as an operator would */
	ck_assert_ptr_nonnull(pk);
	f = fopen("new.key", "w");
	ck_assert(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL));
	fclose(f);
	ck_assert_int_eq(rename("new.key", "var/dkim/example.org.postdoc.key"),
	    0);
	dlen = i2d_PUBKEY(pk, &der);
	EVP_EncodeBlock((unsigned char *)b64, der, dlen);
	f = fopen("new-keys", "w");
	fprintf(f, "postdoc._domainkey.example.org v=DKIM1; k=rsa; p=%s", b64);
	fclose(f);
	s = sign(msg, strlen(msg), &n);
	ck_assert(verify(s, n, "new-keys"));
	ck_assert(!verify(s, n, "old-keys"));
	free(s);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dkim");
	TCase *tc = tcase_create("sign");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_signatures_verify, 0,
	    (int)(sizeof(msgs) / sizeof(msgs[0])));
	tcase_add_test(tc, test_no_final_crlf_refused);
	tcase_add_test(tc, test_long_body);
	tcase_add_test(tc, test_key_replaced);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

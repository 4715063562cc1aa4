/*
 * test_smtp_transport.c - the smtp transport plugin against real relays on
 * loopback: Postfix's smtp-sink (no STARTTLS) and aiosmtpd with STARTTLS
 * and AUTH, both started through tests/integration/smtp_peers.py.  Checks
 * what arrived byte for byte and that TLS/AUTH/G8 failures send nothing.
 * A missing peer fails the test: CI installs them.
 */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "postdoc/plugin.h"
#include "testlib.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif

#define NMSG 3

struct peer {
	pid_t pid;
	int port;
	char dir[256];
};

static const struct postdoc_plugin *plug;

static void
load_plugin(void)
{
	const char *dir = getenv("POSTDOC_PLUGIN_DIR");
	char path[512];
	void *h;

	snprintf(path, sizeof(path), "%s/smtp.so", dir ? dir : "plugins/.libs");
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(h != NULL, "dlopen %s: %s", path, dlerror());
	plug = dlsym(h, POSTDOC_PLUGIN_SYMBOL);
	ck_assert_ptr_nonnull(plug);
	ck_assert_uint_eq(plug->abi, POSTDOC_PLUGIN_ABI);
	ck_assert_ptr_nonnull(plug->hooks.deliver);
}

static void
make_tmpdir(char *out, size_t len)
{
	snprintf(out, len, "/tmp/pd-smtp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(out));
}

/* Start a peer; `kind` is "sink" or "tls", extra argv may follow. */
static void
peer_start(struct peer *p, const char *kind, const char *const *extra)
{
	const char *src = getenv("POSTDOC_SRCDIR");
	char script[512], line[32];
	const char *argv[16];
	int fds[2], n = 0, i;
	ssize_t r;

	make_tmpdir(p->dir, sizeof(p->dir));
	snprintf(script, sizeof(script), "%s/tests/integration/smtp_peers.py",
	    src ? src : TOP_SRCDIR);
	argv[n++] = "/usr/bin/python3";
	argv[n++] = script;
	argv[n++] = kind;
	for (i = 0; extra != NULL && extra[i] != NULL && n < 13; i++)
		argv[n++] = extra[i];
	argv[n++] = p->dir;
	argv[n] = NULL;
	ck_assert_int_eq(pipe(fds), 0);
	if ((p->pid = fork()) == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	for (n = 0; n < (int)sizeof(line) - 1 && (n == 0 ||
	    line[n - 1] != '\n'); n += (int)r)
		if ((r = read(fds[0], line + n, sizeof(line) - 1 - (size_t)n))
		    <= 0)
			break;
	close(fds[0]);
	line[n] = '\0';
	ck_assert_msg(n > 0 && line[n - 1] == '\n', "peer %s did not start "
	    "(missing binary?)", kind);
	p->port = atoi(line);
	ck_assert_int_gt(p->port, 0);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	return remove(path) == 0 ? 0 : 0;	/* best effort */
}

/* Stop the peer and remove its directory (messages, dumps, keys). */
static void
peer_stop(struct peer *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
	nftw(p->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void *
plugin_init_text(const char *text, char *err, size_t errlen)
{
	config_t cfg;
	void *state = NULL;
	int rc;

	config_init(&cfg);
	ck_assert_msg(config_read_string(&cfg, text) == CONFIG_TRUE,
	    "config: %s line %d", config_error_text(&cfg),
	    config_error_line(&cfg));
	err[0] = '\0';
	rc = plug->init(config_lookup(&cfg, "smtp"), &state, err, errlen);
	config_destroy(&cfg);
	return rc == 0 ? state : NULL;
}

static void *
plugin_init_ok(const char *text)
{
	char err[256];
	void *state = plugin_init_text(text, err, sizeof(err));

	ck_assert_msg(state != NULL, "init: %s", err);
	return state;
}

/*
 * A canonical message: the fields libESMTP insists on, a dot-leading line
 * (the relay must get it unstuffed), and a body long enough to cross the
 * transport's 8 KiB reads.
 */
static size_t
make_msg(char *buf, size_t len, int i, const char *rcpt)
{
	size_t n;
	int k;

	n = (size_t)snprintf(buf, len, "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "From: Postdoc <bounce@postdoc.test>\r\nTo: <%s>\r\n"
	    "Message-ID: <m%d@postdoc.test>\r\nSubject: test %d\r\n"
	    "MIME-Version: 1.0\r\n\r\n.leading dot\r\n..two dots\r\n", rcpt,
	    i, i);
	for (k = 0; n + 80 < len && k < 150 + i; k++)
		n += (size_t)snprintf(buf + n, len - n, "line %04d of message "
		    "%d: some words to fill the body up to a few KiB.\r\n", k, i);
	return n;
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

struct batch {
	struct postdoc_outbound_info info[NMSG];
	struct postdoc_delivery res[NMSG];
	char path[NMSG][300];
	char rcpt[NMSG][64];
	char data[NMSG][16384];
	size_t len[NMSG];
	size_t n;
};

static void
batch_add(struct batch *b, const char *dir, const char *rcpt)
{
	size_t i = b->n++;

	snprintf(b->rcpt[i], sizeof(b->rcpt[i]), "%s", rcpt);
	snprintf(b->path[i], sizeof(b->path[i]), "%s/out%zu.eml", dir, i);
	b->len[i] = make_msg(b->data[i], sizeof(b->data[i]), (int)i, rcpt);
	write_file(b->path[i], b->data[i], b->len[i]);
	memset(&b->info[i], 0, sizeof(b->info[i]));
	b->info[i].id = (int64_t)i + 1;
	b->info[i].mail_from = "bounce+1@postdoc.test";
	b->info[i].rcpt = b->rcpt[i];
	b->info[i].path = b->path[i];
	b->info[i].size = b->len[i];
}

static void
batch_deliver(struct batch *b, void *state)
{
	memset(b->res, 0, sizeof(b->res));
	plug->hooks.deliver(state, b->info, b->n, b->res);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* Files in dir ending in `suffix` (NULL: all), after a short settle. */
static int
count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	size_t l;

	while (d != NULL && (e = readdir(d)) != NULL) {
		l = strlen(e->d_name);
		if (e->d_name[0] == '.')
			continue;
		if (suffix == NULL || (l > strlen(suffix) &&
		    strcmp(e->d_name + l - strlen(suffix), suffix) == 0))
			n++;
	}
	if (d != NULL)
		closedir(d);
	return n;
}

/* smtp-sink's dump: its X-* lines and a 3-line Received:, then the
 * message with LF line ends, then one empty line. */
static int
sink_matches(const char *dump, const char *msg, size_t msglen)
{
	const char *p = strstr(dump, "\nReceived: ");
	char *lf = malloc(msglen + 2);
	size_t i, k = 0;
	int same, lines = 0;

	for (; p != NULL && *p != '\0' && lines < 4; p++)
		if (*p == '\n')
			lines++;
	for (i = 0; i < msglen; i++)
		if (!(msg[i] == '\r' && i + 1 < msglen && msg[i + 1] == '\n'))
			lf[k++] = msg[i];
	lf[k++] = '\n';
	same = p != NULL && strlen(p) == k && memcmp(p, lf, k) == 0;
	free(lf);
	return same;
}

/* Each dumped message equals exactly one message of the batch. */
static int
sink_received(const struct peer *p, const struct batch *b, int want)
{
	char dir[300], path[600];
	DIR *d;
	struct dirent *e;
	size_t len, i;
	char *dump;
	int found = 0, tries;

	snprintf(dir, sizeof(dir), "%s/sink", p->dir);
	for (tries = 0; tries < 40 && count_files(dir, NULL) < want; tries++)
		usleep(50000);
	d = opendir(dir);
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		dump = slurp(path, &len);
		for (i = 0; dump != NULL && i < b->n; i++)
			if (sink_matches(dump, b->data[i], b->len[i])) {
				found++;
				break;
			}
		free(dump);
	}
	if (d != NULL)
		closedir(d);
	return found;
}

static char *
sink_config(const struct peer *p, const char *tls, char *buf, size_t len)
{
	snprintf(buf, len, "smtp = { host = \"127.0.0.1\"; port = %d; "
	    "starttls = \"%s\"; timeout = 10; };", p->port, tls);
	return buf;
}

START_TEST(test_sink_batch_byte_identical)
{
	struct peer p;
	struct batch b;
	char cfg[512];
	void *st;
	size_t i;

	memset(&b, 0, sizeof(b));
	peer_start(&p, "sink", NULL);
	st = plugin_init_ok(sink_config(&p, "none", cfg, sizeof(cfg)));
	for (i = 0; i < NMSG; i++)
		batch_add(&b, p.dir, i == 1 ? "two@example.org" :
		    "one@example.org");
	batch_deliver(&b, st);
	for (i = 0; i < NMSG; i++)
		ck_assert_msg(b.res[i].code == 250, "msg %zu: %d %s", i,
		    b.res[i].code, b.res[i].text);
	ck_assert_int_eq(sink_received(&p, &b, NMSG), NMSG);
	plug->deinit(st);
	peer_stop(&p);
}
END_TEST

START_TEST(test_sink_starttls_required_refused)
{
	struct peer p;
	struct batch b;
	char cfg[512], dir[300];
	void *st;

	memset(&b, 0, sizeof(b));
	peer_start(&p, "sink", NULL);
	st = plugin_init_ok(sink_config(&p, "required", cfg, sizeof(cfg)));
	batch_add(&b, p.dir, "one@example.org");
	batch_add(&b, p.dir, "two@example.org");
	batch_deliver(&b, st);
	ck_assert_int_eq(b.res[0].code, 0);
	ck_assert_int_eq(b.res[1].code, 0);
	ck_assert_msg(strstr(b.res[0].text, "STARTTLS required but not "
	    "offered by 127.0.0.1:") != NULL, "%s", b.res[0].text);
	usleep(200000);
	snprintf(dir, sizeof(dir), "%s/sink", p.dir);
	ck_assert_int_eq(count_files(dir, NULL), 0);
	plug->deinit(st);
	peer_stop(&p);
}
END_TEST

/* G8: a bare LF fails that message only; a message libESMTP would rewrite
 * (no Date:) is refused rather than altered. */
START_TEST(test_sink_noncanonical_not_sent)
{
	struct peer p;
	struct batch b;
	char cfg[512];
	void *st;
	char *lf;

	memset(&b, 0, sizeof(b));
	peer_start(&p, "sink", NULL);
	st = plugin_init_ok(sink_config(&p, "none", cfg, sizeof(cfg)));
	batch_add(&b, p.dir, "one@example.org");
	batch_add(&b, p.dir, "two@example.org");
	batch_add(&b, p.dir, "three@example.org");
	lf = strstr(b.data[0], "\r\n..two");
	memmove(lf, lf + 1, b.len[0] - (size_t)(lf - b.data[0]));
	b.len[0]--;
	write_file(b.path[0], b.data[0], b.len[0]);
	lf = strstr(b.data[2], "\r\n") + 2;	/* drop the Date: line */
	write_file(b.path[2], lf, b.len[2] - (size_t)(lf - b.data[2]));
	batch_deliver(&b, st);
	ck_assert_int_eq(b.res[0].code, 0);
	ck_assert_msg(strstr(b.res[0].text, "non-canonical") != NULL, "%s",
	    b.res[0].text);
	ck_assert_int_eq(b.res[1].code, 250);
	ck_assert_int_eq(b.res[2].code, 0);
	ck_assert_msg(strstr(b.res[2].text, "Date") != NULL, "%s",
	    b.res[2].text);
	ck_assert_int_eq(sink_received(&p, &b, 1), 1);
	usleep(200000);
	ck_assert_int_eq(sink_received(&p, &b, 1), 1);
	plug->deinit(st);
	peer_stop(&p);
}
END_TEST

static char *
tls_config(const struct peer *p, const char *extra, char *buf, size_t len)
{
	snprintf(buf, len, "smtp = { host = \"127.0.0.1\"; port = %d; "
	    "starttls = \"required\"; ca_file = \"%s/cert.pem\"; timeout = 10; "
	    "user = \"postdoc\"; %s };", p->port, p->dir, extra);
	return buf;
}

/* The delivered files, compared with the batch in order. */
static int
tls_received(const struct peer *p, const struct batch *b, const size_t *idx,
    int n)
{
	char path[600], *got, *meta;
	size_t len, mlen;
	int i, ok = 0;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/mail/%04d.eml", p->dir, i + 1);
		got = slurp(path, &len);
		snprintf(path, sizeof(path), "%s/mail/%04d.json", p->dir, i + 1);
		meta = slurp(path, &mlen);
		if (got != NULL && meta != NULL && len == b->len[idx[i]] &&
		    memcmp(got, b->data[idx[i]], len) == 0 &&
		    strstr(meta, "\"tls\": true") != NULL &&
		    strstr(meta, "\"user\": \"postdoc\"") != NULL)
			ok++;
		free(got);
		free(meta);
	}
	return ok;
}

static int
tls_count(const struct peer *p)
{
	char dir[300];

	snprintf(dir, sizeof(dir), "%s/mail", p->dir);
	return count_files(dir, ".eml");
}

START_TEST(test_tls_auth_delivered)
{
	static const size_t idx[] = { 0, 1, 2 };
	struct peer p;
	struct batch b;
	char cfg[1024];
	void *st;
	size_t i;

	memset(&b, 0, sizeof(b));
	peer_start(&p, "tls", NULL);
	st = plugin_init_ok(tls_config(&p, "password = \"s3cret\";", cfg,
	    sizeof(cfg)));
	for (i = 0; i < NMSG; i++)
		batch_add(&b, p.dir, "rcpt@example.org");
	batch_deliver(&b, st);
	for (i = 0; i < NMSG; i++) {
		ck_assert_msg(b.res[i].code == 250, "msg %zu: %d %s", i,
		    b.res[i].code, b.res[i].text);
		ck_assert_str_eq(b.res[i].enhanced, "2.0.0");
	}
	ck_assert_int_eq(tls_received(&p, &b, idx, NMSG), NMSG);
	plug->deinit(st);
	peer_stop(&p);
}
END_TEST

START_TEST(test_tls_password_file)
{
	struct peer p;
	struct batch b;
	char cfg[1024], extra[400], pwfile[300], err[256];
	void *st;

	memset(&b, 0, sizeof(b));
	peer_start(&p, "tls", NULL);
	snprintf(pwfile, sizeof(pwfile), "%s/pw", p.dir);
	write_file(pwfile, "s3cret\n", 7);
	chmod(pwfile, 0644);
	snprintf(extra, sizeof(extra), "password_file = \"%s\";", pwfile);
	ck_assert_ptr_null(plugin_init_text(tls_config(&p, extra, cfg,
	    sizeof(cfg)), err, sizeof(err)));
	ck_assert_msg(strstr(err, "chmod 600") != NULL, "%s", err);
	chmod(pwfile, 0600);
	st = plugin_init_ok(cfg);
	batch_add(&b, p.dir, "rcpt@example.org");
	batch_deliver(&b, st);
	ck_assert_msg(b.res[0].code == 250, "%d %s", b.res[0].code,
	    b.res[0].text);
	plug->deinit(st);
	peer_stop(&p);
}
END_TEST

START_TEST(test_tls_wrong_password)
{
	struct peer p;
	struct batch b;
	char cfg[1024];
	void *st;

	memset(&b, 0, sizeof(b));
	peer_start(&p, "tls", NULL);
	st = plugin_init_ok(tls_config(&p, "password = \"wrong\";", cfg,
	    sizeof(cfg)));
	batch_add(&b, p.dir, "rcpt@example.org");
	batch_add(&b, p.dir, "rcpt2@example.org");
	batch_deliver(&b, st);
	ck_assert_int_eq(b.res[0].code, 0);
	ck_assert_int_eq(b.res[1].code, 0);
	ck_assert_msg(strstr(b.res[0].text, "AUTH failed: 535") != NULL, "%s",
	    b.res[0].text);
	usleep(200000);
	ck_assert_int_eq(tls_count(&p), 0);
	plug->deinit(st);
	peer_stop(&p);
}
END_TEST

START_TEST(test_tls_untrusted_certificate)
{
	struct peer p;
	struct batch b;
	char cfg[1024];
	void *st;

	memset(&b, 0, sizeof(b));
	peer_start(&p, "tls", NULL);
	/* The system store does not know our self-signed certificate. */
	snprintf(cfg, sizeof(cfg), "smtp = { host = \"127.0.0.1\"; port = %d; "
	    "starttls = \"required\"; verify = true; timeout = 10; "
	    "user = \"postdoc\"; password = \"s3cret\"; };", p.port);
	st = plugin_init_ok(cfg);
	batch_add(&b, p.dir, "rcpt@example.org");
	batch_deliver(&b, st);
	ck_assert_int_eq(b.res[0].code, 0);
	ck_assert_msg(strstr(b.res[0].text, "TLS certificate verify failed")
	    != NULL, "%s", b.res[0].text);
	usleep(200000);
	ck_assert_int_eq(tls_count(&p), 0);
	plug->deinit(st);
	peer_stop(&p);
}
END_TEST

START_TEST(test_tls_name_mismatch)
{
	struct peer p;
	struct batch b;
	char cfg[1024];
	void *st;

	memset(&b, 0, sizeof(b));
	static const char *const bind2[] = { "--bind", "127.0.0.2", NULL };

	peer_start(&p, "tls", bind2);
	/* Trusted chain, but the certificate does not name 127.0.0.2. */
	snprintf(cfg, sizeof(cfg), "smtp = { host = \"127.0.0.2\"; port = %d; "
	    "starttls = \"required\"; ca_file = \"%s/cert.pem\"; timeout = 10;"
	    " user = \"postdoc\"; password = \"s3cret\"; };", p.port, p.dir);
	st = plugin_init_ok(cfg);
	batch_add(&b, p.dir, "rcpt@example.org");
	batch_deliver(&b, st);
	ck_assert_int_eq(b.res[0].code, 0);
	ck_assert_msg(strstr(b.res[0].text, "TLS certificate verify failed: "
	    "IP address mismatch") != NULL, "%s", b.res[0].text);
	ck_assert_int_eq(tls_count(&p), 0);
	plug->deinit(st);
	peer_stop(&p);
}
END_TEST

START_TEST(test_tls_rejected_recipient)
{
	static const char *const extra[] = { "--reject", "bad@example.org",
	    NULL };
	static const size_t idx[] = { 0, 2 };
	struct peer p;
	struct batch b;
	char cfg[1024];
	void *st;

	memset(&b, 0, sizeof(b));
	peer_start(&p, "tls", extra);
	st = plugin_init_ok(tls_config(&p, "password = \"s3cret\";", cfg,
	    sizeof(cfg)));
	batch_add(&b, p.dir, "good@example.org");
	batch_add(&b, p.dir, "bad@example.org");
	batch_add(&b, p.dir, "good2@example.org");
	batch_deliver(&b, st);
	ck_assert_msg(b.res[0].code == 250, "%d %s", b.res[0].code,
	    b.res[0].text);
	ck_assert_int_eq(b.res[1].code, 550);
	ck_assert_str_eq(b.res[1].enhanced, "5.1.1");
	ck_assert_msg(strstr(b.res[1].text, "bad@example.org") != NULL, "%s",
	    b.res[1].text);
	ck_assert_msg(b.res[2].code == 250, "%d %s", b.res[2].code,
	    b.res[2].text);
	ck_assert_int_eq(tls_received(&p, &b, idx, 2), 2);
	ck_assert_int_eq(tls_count(&p), 2);
	plug->deinit(st);
	peer_stop(&p);
}
END_TEST

START_TEST(test_config_refusals)
{
	static const char *const bad[] = {
		"smtp = { strattls = \"none\"; };",
		"smtp = { starttls = \"maybe\"; };",
		"smtp = { port = 0; };",
		"smtp = { host = \"::1\"; };",
		"smtp = { starttls = \"none\"; user = \"u\"; password = \"p\"; };",
		"smtp = { user = \"u\"; };",
		"smtp = { password = \"p\"; };",
		NULL
	};
	char err[256];
	void *st;
	int i;

	for (i = 0; bad[i] != NULL; i++) {
		ck_assert_msg(plugin_init_text(bad[i], err, sizeof(err)) == NULL,
		    "accepted: %s", bad[i]);
		ck_assert_msg(err[0] != '\0', "no error text for %s", bad[i]);
	}
	st = plugin_init_ok("smtp = { };");
	plug->deinit(st);
}
END_TEST

/* One case per test, so CK_RUN_CASE=<name> runs one against its peer. */
static void
add_case(Suite *s, const char *name, const TTest *t)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, load_plugin, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

static Suite *
smtp_transport_suite(void)
{
	Suite *s = suite_create("smtp_transport");

	add_case(s, "config", test_config_refusals);
	add_case(s, "sink_batch", test_sink_batch_byte_identical);
	add_case(s, "sink_starttls", test_sink_starttls_required_refused);
	add_case(s, "sink_noncanonical", test_sink_noncanonical_not_sent);
	add_case(s, "tls_delivered", test_tls_auth_delivered);
	add_case(s, "tls_password_file", test_tls_password_file);
	add_case(s, "tls_wrong_password", test_tls_wrong_password);
	add_case(s, "tls_untrusted", test_tls_untrusted_certificate);
	add_case(s, "tls_name_mismatch", test_tls_name_mismatch);
	add_case(s, "tls_rejected_rcpt", test_tls_rejected_recipient);
	return s;
}

int
main(void)
{
	return tl_run(smtp_transport_suite());
}

/*
 * test_config.c - tests of config.c: embedded defaults, overrides from a
 * file, every kind of error reported as "file:line: message" (all of them
 * at once), @include relative to the file, and conf/postdoc.conf itself.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* By path: the build tree's autoconf config.h would shadow "config.h". */
#include "lib/config.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif

static char tmpdir[] = "/tmp/test_config.XXXXXX";
static char files[8][256];
static int nfiles;

static void setup(void)
{
	strcpy(tmpdir, "/tmp/test_config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	nfiles = 0;
}

static void teardown(void)
{
	while (nfiles > 0)
		unlink(files[--nfiles]);
	rmdir(tmpdir);
}

/* Write `text` to tmpdir/name; returns the path (valid until teardown). */
static const char *write_file(const char *name, const char *text)
{
	char *path;
	FILE *f;

	ck_assert_int_lt(nfiles, 8);
	path = files[nfiles++];
	snprintf(path, sizeof(files[0]), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

START_TEST(test_defaults)
{
	struct pd_config *cfg = NULL;
	char err[512] = "junk";

	ck_assert_int_eq(config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	ck_assert_ptr_null(cfg->file);
	ck_assert_str_eq(cfg->hostname, "postdoc.localhost");
	ck_assert_str_eq(cfg->smtp_listen, "127.0.0.1:2525");
	ck_assert_str_eq(cfg->lmtp_listen, "127.0.0.1:2424");
	ck_assert_str_eq(cfg->tls_cert, "");
	ck_assert_str_eq(cfg->tls_key, "");
	ck_assert_int_eq(cfg->workers, 16);
	ck_assert_str_eq(cfg->plugin_dir, PD_PLUGIN_DIR);
	ck_assert_str_eq(cfg->log_level, "info");
	ck_assert_str_eq(cfg->var_dir, "var");
	ck_assert_str_eq(cfg->db_path, "var/postdoc.db");
	ck_assert_str_eq(cfg->sync_mode, "full");
	ck_assert_str_eq(cfg->intake_domain, "dossiers.localhost");
	ck_assert_int_eq(cfg->line_max, 512);
	ck_assert_int_eq(cfg->data_line_max, 998);
	ck_assert_int_eq(cfg->rcpt_max, 100);
	ck_assert_int_eq(cfg->message_size_max, 26214400);
	ck_assert_int_eq(cfg->mime_depth_max, 32);
	ck_assert_int_eq(cfg->header_block_max, 1048576);
	ck_assert_int_eq(cfg->filename_max, 255);
	ck_assert_int_eq(cfg->session_timeout, 1800);
	ck_assert_int_eq(cfg->greet_pause_ms, 0);
	/* without a plugins list: the file transport and DKIM signing */
	ck_assert_int_eq(cfg->plugin_count, 2);
	ck_assert_str_eq(cfg->plugins[0].name, "file");
	ck_assert_str_eq(cfg->plugins[1].name, "dkim");
	ck_assert_str_eq(cfg->transport, "file");
	/* derived from the intake domain */
	ck_assert_str_eq(cfg->bounce_domain, "dossiers.localhost");
	ck_assert_str_eq(cfg->from_addr, "postdoc@dossiers.localhost");
	ck_assert_str_eq(cfg->reminder_days, "3,7");
	ck_assert_int_eq(cfg->receipts, 1);
	config_free(&cfg);
	ck_assert_ptr_null(cfg);
	config_free(&cfg);		/* freeing NULL is harmless */
}
END_TEST

static const char good_conf[] =
    "# comment\n"
    "server = {\n"
    "  hostname = \"mx.example.org\";\n"
    "  smtp_listen = \"[::1]:25\";\n"
    "  lmtp_listen = \"\";\n"
    "  tls_cert = \"/etc/ssl/c.pem\"; tls_key = \"/etc/ssl/k.pem\";\n"
    "  workers = 64;\n"
    "  log_level = \"debug\";\n"
    "};\n"
    "store = { var_dir = \"/srv/pd\"; sync = \"normal\"; };\n"
    "intake = { domain = \"in.example.org\"; };\n"
    "limits = {\n"
    "  rcpt_max = 10000;\n"
    "  message_size_max = 2147483648L;\n"
    "  line_max = 0x1000;\n"
    "  greet_pause_ms = 30000;\n"
    "};\n"
    "plugins = (\n"
    "  { name = \"filetype\"; settings = { allow = [ \"a/b\" ]; x = 1; }; },\n"
    "  { name = \"virus_scan2\"; path = \"/opt/vs.so\"; }\n"
    ");\n";

START_TEST(test_good_file)
{
	const char *path = write_file("good.conf", good_conf);
	struct pd_config *cfg = NULL;
	char err[512], want[4200];

	ck_assert_msg(config_load(path, &cfg, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_str_eq(cfg->file, path);
	ck_assert_str_eq(cfg->hostname, "mx.example.org");
	ck_assert_str_eq(cfg->smtp_listen, "[::1]:25");
	ck_assert_str_eq(cfg->lmtp_listen, "");
	ck_assert_str_eq(cfg->tls_key, "/etc/ssl/k.pem");
	ck_assert_int_eq(cfg->workers, 64);
	ck_assert_str_eq(cfg->log_level, "debug");
	ck_assert_str_eq(cfg->db_path, "/srv/pd/postdoc.db");
	ck_assert_str_eq(cfg->sync_mode, "normal");
	ck_assert_str_eq(cfg->intake_domain, "in.example.org");
	ck_assert_int_eq(cfg->rcpt_max, 10000);
	ck_assert_int_eq(cfg->message_size_max, INT64_C(2147483648));
	ck_assert_int_eq(cfg->line_max, 4096);
	ck_assert_int_eq(cfg->greet_pause_ms, 30000);
	ck_assert_int_eq(cfg->data_line_max, 998);	/* untouched default */
	ck_assert_int_eq(cfg->plugin_count, 2);
	ck_assert_str_eq(cfg->plugins[0].name, "filetype");
	ck_assert_ptr_null(cfg->plugins[0].path);
	ck_assert_ptr_nonnull(cfg->plugins[0].settings);
	ck_assert_ptr_nonnull(config_setting_get_member(
	    cfg->plugins[0].settings, "allow"));
	ck_assert_str_eq(cfg->plugins[1].name, "virus_scan2");
	ck_assert_str_eq(cfg->plugins[1].path, "/opt/vs.so");
	ck_assert_ptr_null(cfg->plugins[1].settings);
	/* plugin_host.c names an entry so when its load or init fails */
	snprintf(want, sizeof(want), "%s:19", path);
	ck_assert_str_eq(cfg->plugins[0].where, want);
	snprintf(want, sizeof(want), "%s:20", path);
	ck_assert_str_eq(cfg->plugins[1].where, want);
	config_free(&cfg);
}
END_TEST

/* A bad file and the exact lines expected, each after "path:". */
struct bad_row {
	const char *text;
	const char *want[3];
};

static const struct bad_row bad_rows[] = {
	{ "server = {\n  hostname = \"x\";\n  workers = = 2;\n};\n",
	  { "3: syntax error" } },
	{ "limits = {\n  rcpt_max = 10;\n  foo = 1;\n};\n",
	  { "3: unknown key 'limits.foo'" } },
	{ "limits = {\n  rcpt_max = \"many\";\n};\n",
	  { "2: limits.rcpt_max: expected an integer, got a string" } },
	{ "server = { hostname = 5; };\n",
	  { "1: server.hostname: expected a string, got an integer" } },
	{ "\n\nlimits = { rcpt_max = 0; };\n",
	  { "3: limits.rcpt_max = 0 is out of range 1..10000" } },
	{ "limits = {\n  message_size_max = 4294968320;\n};\n",
	  { "2: limits.message_size_max = 4294968320 does not fit in "
	    "32 bits; write it as 4294968320L" } },
	{ "limits = {\n  rcpt_max = 0;\n  line_max = 100000;\n};\n",
	  { "2: limits.rcpt_max = 0 is out of range 1..10000",
	    "3: limits.line_max = 100000 is out of range 512..65536" } },
	{ "server = {\n  workers = 0;\n  bogus = true;\n};\nfoo = { };\n",
	  { "2: server.workers = 0 is out of range 1..64",
	    "3: unknown key 'server.bogus'",
	    "5: unknown group 'foo'" } },
	{ "server = {\n  tls_cert = \"/c.pem\";\n};\n",
	  { "2: server.tls_cert is set but server.tls_key is not" } },
	{ "server = {\n\n  tls_key = \"/k.pem\";\n};\n",
	  { "3: server.tls_key is set but server.tls_cert is not" } },
	{ "server = {\n  smtp_listen = \"localhost\";\n};\n",
	  { "2: server.smtp_listen = \"localhost\" is not host:port "
	    "(IPv6 as [addr]:port)" } },
	{ "server = {\n  lmtp_listen = \"127.0.0.1:65536\";\n};\n",
	  { "2: server.lmtp_listen = \"127.0.0.1:65536\" needs a port "
	    "1..65535" } },
	{ "server = {\n  smtp_listen = \"::1:25\";\n};\n",
	  { "2: server.smtp_listen = \"::1:25\" is not host:port "
	    "(IPv6 as [addr]:port)" } },
	{ "server = { log_level = \"loud\"; };\n",
	  { "1: server.log_level = \"loud\" is not one of err, warn, "
	    "info, debug" } },
	{ "dns = {\n  server = \"resolver.example\";\n};\n",
	  { "2: dns.server = \"resolver.example\" is not an IP address or "
	    "IP@port (a resolver's address, not a name)" } },
	{ "dns = { server = \"127.0.0.1@0\"; timeout_ms = 5; };\n",
	  { "1: dns.server = \"127.0.0.1@0\" needs a port 1..65535 after @",
	    "1: dns.timeout_ms = 5 is out of range 100..60000" } },
	{ "store = { sync = \"off\"; };\n",
	  { "1: store.sync = \"off\" is not one of full, normal" } },
	{ "plugins = (\n  { path = \"x.so\"; },\n  { name = \"../x\"; }\n);\n",
	  { "2: plugins[0]: 'name' is required",
	    "3: plugins[1].name = \"../x\" is not [a-z0-9_]{1,64}" } },
	{ "plugins = (\n  { name = \"a\"; },\n  { name = \"a\"; color = 1; }\n"
	  ");\n",
	  { "3: unknown key 'plugins[1].color'",
	    "3: plugins[1]: plugin 'a' is listed twice" } },
	{ "plugins = { name = \"a\"; };\n",
	  { "1: plugins: expected a list ( {...}, ... ), got a group" } },
	{ "limits = 5;\n",
	  { "1: limits: expected a group, got an integer" } },
	/* serve would create both levels and run on an empty store */
	{ "store = {\n  var_dir = \"/nonexistent-pd/var\";\n};\n",
	  { "2: store.var_dir = \"/nonexistent-pd/var\": its parent "
	    "/nonexistent-pd does not exist (postdoc creates var_dir, never "
	    "the directories above it)" } },
	{ "store = { var_dir = \"/dev/null/var/\"; };\n",
	  { "1: store.var_dir = \"/dev/null/var/\": its parent /dev/null is "
	    "not a directory (postdoc creates var_dir, never the directories "
	    "above it)" } },
};
#define NBAD (int)(sizeof(bad_rows) / sizeof(bad_rows[0]))

START_TEST(test_bad_file)
{
	const struct bad_row *r = &bad_rows[_i];
	const char *path = write_file("bad.conf", r->text);
	struct pd_config *cfg = (struct pd_config *)&cfg;
	char err[2048], want[512];
	int k;

	ck_assert_int_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_null(cfg);
	for (k = 0; k < 3 && r->want[k] != NULL; k++) {
		snprintf(want, sizeof(want), "%s:%s\n", path, r->want[k]);
		ck_assert_msg(strstr(err, want) != NULL,
		    "row %d: want \"%s\" in:\n%s", _i, want, err);
	}
	ck_assert_msg(count_lines(err) == k, "row %d: %d lines, want %d:\n%s",
	    _i, count_lines(err), k, err);
}
END_TEST

START_TEST(test_too_many_plugins)
{
	char text[2048] = "plugins = (\n";
	struct pd_config *cfg;
	char err[512];
	int i;

	for (i = 0; i <= PD_MAX_PLUGINS; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
		    "%s{ name = \"p%d\"; }\n", i ? "," : "", i);
	strcat(text, ");\n");
	ck_assert_int_eq(config_load(write_file("many.conf", text), &cfg,
	    err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, ": plugins: 17 entries, at most "
	    "16 allowed\n"));
}
END_TEST

/* @include is relative to the including file's directory. */
START_TEST(test_include)
{
	const char *inc = write_file("limits.inc",
	    "limits = {\n  rcpt_max = 7;\n  data_timeout = 0;\n};\n");
	const char *main_conf = write_file("main.conf",
	    "@include \"limits.inc\"\n");
	struct pd_config *cfg;
	char err[512], want[512];

	ck_assert_int_eq(chdir("/"), 0);	/* not relative to the cwd */
	ck_assert_int_eq(config_load(main_conf, &cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:3: limits.data_timeout = 0 is out "
	    "of range 1..3600\n", inc);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
	ck_assert_ptr_nonnull(strstr(err, inc));
	inc = write_file("limits.inc", "limits = { rcpt_max = 7; };\n");
	ck_assert_msg(config_load(main_conf, &cfg, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_int_eq(cfg->rcpt_max, 7);
	config_free(&cfg);
}
END_TEST

START_TEST(test_missing_file)
{
	struct pd_config *cfg;
	char err[512];
	char path[300];

	snprintf(path, sizeof(path), "%s/nope.conf", tmpdir);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_ptr_nonnull(strstr(err, "cannot read"));
}
END_TEST

/* A small error buffer truncates, never overflows, always terminates. */
START_TEST(test_err_truncation)
{
	const char *path = write_file("many.conf", "limits = { a = 1; b = 2; "
	    "c = 3; d = 4; e = 5; f = 6; };\n");
	struct pd_config *cfg;
	char err[40];
	int i;

	memset(err, 'X', sizeof(err));
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof(err) - 8), -1);
	ck_assert_uint_lt(strlen(err), sizeof(err) - 8);
	for (i = (int)sizeof(err) - 8; i < (int)sizeof(err); i++)
		ck_assert_int_eq(err[i], 'X');
	ck_assert_int_eq(config_load(path, &cfg, NULL, 0), -1);
}
END_TEST

START_TEST(test_dump)
{
	struct pd_config *cfg;
	char err[512], *buf = NULL;
	size_t len = 0;
	FILE *out;

	ck_assert_int_eq(config_load(write_file("good.conf", good_conf), &cfg,
	    err, sizeof(err)), 0);
	out = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(out);
	config_dump(cfg, out);
	fclose(out);
	ck_assert_ptr_nonnull(strstr(buf, "server.hostname = "
	    "\"mx.example.org\"\n"));
	ck_assert_ptr_nonnull(strstr(buf, "store.db_path = "
	    "\"/srv/pd/postdoc.db\"\n"));
	ck_assert_ptr_nonnull(strstr(buf, "store.sync = \"normal\"\n"));
	ck_assert_ptr_nonnull(strstr(buf, "limits.message_size_max = "
	    "2147483648\n"));
	ck_assert_ptr_nonnull(strstr(buf, "limits.data_line_max = 998\n"));
	ck_assert_ptr_nonnull(strstr(buf, "plugins[1].path = "
	    "\"/opt/vs.so\"\n"));
	/* 77 parameters (57, web: 5, privacy: 7, api: 4, events: 4),
	 * 3 lines per plugin; issue 16: the DATA clock (3), web and api
	 * per-address limits and idle timeouts (2 + 2), dns (2), auth (1);
	 * issue 15: web.trusted_proxies (1) */
	ck_assert_int_eq(count_lines(buf), 77 + 2 * 3 + 7 + 3 + 1);
	ck_assert_ptr_nonnull(strstr(buf, "web.trusted_proxies = \"\"\n"));
	ck_assert_ptr_nonnull(strstr(buf, "dns.server = \"\"\n"));
	ck_assert_ptr_nonnull(strstr(buf, "auth.checks = true\n"));
	free(buf);
	config_free(&cfg);
}
END_TEST

/* accounts: identity per account, checked like everything else */
/* web.trusted_proxies: which peers' X-Forwarded-For is believed */
static const struct {
	const char *list, *ip;
	int want;
} proxies[] = {
	{ "", "127.0.0.1", 0 },
	{ "127.0.0.1", "127.0.0.1", 1 },
	{ "127.0.0.1", "127.0.0.2", 0 },
	{ "10.0.0.0/8, 192.0.2.1", "10.200.3.4", 1 },
	{ "10.0.0.0/8, 192.0.2.1", "192.0.2.1", 1 },
	{ "10.0.0.0/8, 192.0.2.1", "11.0.0.1", 0 },
	{ "192.0.2.128/25", "192.0.2.200", 1 },
	{ "192.0.2.128/25", "192.0.2.127", 0 },
	{ "0.0.0.0/0", "203.0.113.9", 1 },
	{ "fd00::/8 ::1", "::1", 1 },
	{ "fd00::/8", "fd12::5", 1 },
	{ "fd00::/8", "fe80::1", 0 },
	{ "fd00::/8", "10.0.0.1", 0 },
	{ "10.0.0.0/33", "10.0.0.1", -1 },
	{ "10.0.0.0/", "10.0.0.1", -1 },
	{ "proxy.example", "10.0.0.1", -1 },
	{ "10.0.0.1/8x", NULL, -1 },
	{ "10.0.0.1 ::1/128", NULL, 0 },
};

START_TEST(test_trusted_proxies)
{
	ck_assert_msg(config_addr_in_list(proxies[_i].list, proxies[_i].ip) ==
	    proxies[_i].want, "%s in \"%s\"", proxies[_i].ip,
	    proxies[_i].list);
}
END_TEST

START_TEST(test_accounts)
{
	struct pd_config *cfg = NULL;
	const struct pd_account_conf *a;
	char err[4096];

	ck_assert_int_eq(config_load(write_file("acc.conf",
	    "accounts = ( { name = \"ACME\"; legal_name = \"ACME SAS\";\n"
	    "  locale = \"fr\"; from_addr = \"docs@acme.example\";\n"
	    "  notify_completed = true; sender_auth = \"dmarc\";\n"
	    "  auth_fail = \"mark\"; refused_file = \"drop-file\"; },\n"
	    "  { name = \"B\"; } );\n"
	    "outbound = { reminder_days = \"2,5,9\"; rate = 0; };\n"),
	    &cfg, err, sizeof(err)), 0);
	a = config_account(cfg, "ACME");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->legal_name, "ACME SAS");
	ck_assert_str_eq(a->locale, "fr");
	ck_assert_str_eq(a->from_addr, "docs@acme.example");
	ck_assert_ptr_null(a->from_name);
	ck_assert_int_eq(a->notify_completed, 1);
	ck_assert_str_eq(a->sender_auth, "dmarc");
	ck_assert_str_eq(a->auth_fail, "mark");
	ck_assert_str_eq(a->refused_file, "drop-file");
	ck_assert_ptr_null(config_account(cfg, "B")->sender_auth);
	/* the completion message is asked for, never assumed */
	ck_assert_int_eq(config_account(cfg, "B")->notify_completed, 0);
	ck_assert_ptr_null(config_account(cfg, "OTHER"));
	ck_assert_str_eq(cfg->reminder_days, "2,5,9");
	config_free(&cfg);
	ck_assert_int_eq(config_load(write_file("acc2.conf",
	    "accounts = ( { legal_name = \"x\"; },\n"
	    "  { name = \"B\"; colour = \"red\"; locale = \"../fr\";"
	    " notify_completed = \"yes\";\n"
	    "  sender_auth = \"spf\"; auth_fail = \"drop\"; refused_file = 1; } );\n"
	    "outbound = { reminder_days = \"7,3\"; transport = \"a/b\"; };\n"),
	    &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "acc2.conf:1: accounts[0]: 'name' "
	    "is required"));
	ck_assert_ptr_nonnull(strstr(err, "acc2.conf:2: unknown key "
	    "'accounts[1].colour'"));
	ck_assert_ptr_nonnull(strstr(err, "acc2.conf:2: accounts[1].locale"));
	ck_assert_ptr_nonnull(strstr(err, "acc2.conf:2: accounts[1]."
	    "notify_completed: expected true or false"));
	ck_assert_ptr_nonnull(strstr(err, "acc2.conf:3: accounts[1].sender_auth "
	    "must be \"none\", \"spf-or-dkim\" or \"dmarc\""));
	ck_assert_ptr_nonnull(strstr(err, "acc2.conf:3: accounts[1].auth_fail "
	    "must be \"refuse\" or \"mark\""));
	ck_assert_ptr_nonnull(strstr(err, "acc2.conf:3: accounts[1].refused_file:"
	    " expected a string"));
	ck_assert_ptr_nonnull(strstr(err, "acc2.conf:4: outbound.reminder_days"));
	ck_assert_ptr_nonnull(strstr(err, "acc2.conf:4: outbound.transport"));
}
END_TEST

/* The shipped configuration must load clean and keep octet-stream out. */
START_TEST(test_shipped_conf)
{
	struct pd_config *cfg;
	const config_setting_t *allow;
	char err[1024];
	int i;

	ck_assert_msg(config_load(TOP_SRCDIR "/conf/postdoc.conf", &cfg, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(cfg->plugin_dir, "plugins/.libs");
	ck_assert_int_eq(cfg->rcpt_max, 100);
	ck_assert_int_eq(cfg->plugin_count, 3);
	ck_assert_str_eq(cfg->plugins[0].name, "filetype");
	ck_assert_str_eq(cfg->plugins[1].name, "file");
	ck_assert_str_eq(cfg->plugins[2].name, "dkim");
	ck_assert_str_eq(cfg->transport, "file");
	allow = config_setting_get_member(cfg->plugins[0].settings, "allow");
	ck_assert_ptr_nonnull(allow);
	ck_assert_int_ge(config_setting_length(allow), 10);
	for (i = 0; i < config_setting_length(allow); i++)
		ck_assert_str_ne(config_setting_get_string_elem(allow, i),
		    "application/octet-stream");
	config_free(&cfg);
}
END_TEST

/*
 * Issue 16, defects 4 and 5: the DATA clock and the HTTP listeners'
 * per-address limits and idle timeouts; defaults generous enough for a
 * 25 MiB message over a 256 kbit/s link, bounds refused with file:line.
 */
START_TEST(test_trickle_limits)
{
	static const struct { const char *text, *want; } rows[] = {
	    { "limits = {\n  data_rate_window = 0;\n};\n",
	      "2: limits.data_rate_window = 0 is out of range 1..3600" },
	    { "limits = { data_time_max = 86401; };\n",
	      "1: limits.data_time_max = 86401 is out of range 1..86400" },
	    { "limits = { data_rate_min = -1; };\n",
	      "1: limits.data_rate_min = -1 is out of range 0..1073741824" },
	    { "web = {\n\n  connections_per_ip_max = 0;\n};\n",
	      "3: web.connections_per_ip_max = 0 is out of range 1..10000" },
	    { "api = { idle_timeout = 0; };\n",
	      "1: api.idle_timeout = 0 is out of range 1..3600" },
	};
	struct pd_config *cfg = NULL;
	char err[1024], want[512];
	const char *path;
	size_t i;

	ck_assert_int_eq(config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg->data_rate_min, 500);
	ck_assert_int_eq(cfg->data_rate_window, 300);
	ck_assert_int_eq(cfg->data_time_max, 1200);
	/* 25 MiB at 256 kbit/s fits; the minimum is 4 kbit/s */
	ck_assert_int_lt(cfg->message_size_max / (256000 / 8),
	    cfg->data_time_max);
	ck_assert_int_le(cfg->data_rate_min * 8, 4000);
	ck_assert_int_eq(cfg->web_conn_per_ip, 16);
	ck_assert_int_eq(cfg->web_idle_timeout, 15);
	ck_assert_int_eq(cfg->api_conn_per_ip, 48);
	ck_assert_int_eq(cfg->api_idle_timeout, 30);
	config_free(&cfg);
	path = write_file("trickle.conf", "limits = { data_rate_min = 0; "
	    "data_rate_window = 10; data_time_max = 60; };\n"
	    "web = { connections_per_ip_max = 2; idle_timeout = 5; };\n");
	ck_assert_msg(config_load(path, &cfg, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_int_eq(cfg->data_rate_min, 0);	/* 0 = no minimum */
	ck_assert_int_eq(cfg->data_rate_window, 10);
	ck_assert_int_eq(cfg->data_time_max, 60);
	ck_assert_int_eq(cfg->web_conn_per_ip, 2);
	ck_assert_int_eq(cfg->web_idle_timeout, 5);
	config_free(&cfg);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		path = write_file("trickle.conf", rows[i].text);
		ck_assert_int_eq(config_load(path, &cfg, err, sizeof(err)),
		    -1);
		snprintf(want, sizeof(want), "%s:%s\n", path, rows[i].want);
		ck_assert_msg(strstr(err, want) != NULL, "row %zu: want "
		    "\"%s\" in:\n%s", i, want, err);
	}
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_good_file);
	tcase_add_loop_test(tc, test_bad_file, 0, NBAD);
	tcase_add_test(tc, test_too_many_plugins);
	tcase_add_test(tc, test_include);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_err_truncation);
	tcase_add_test(tc, test_dump);
	tcase_add_test(tc, test_accounts);
	tcase_add_loop_test(tc, test_trusted_proxies, 0,
	    (int)(sizeof(proxies) / sizeof(proxies[0])));
	tcase_add_test(tc, test_shipped_conf);
	tcase_add_test(tc, test_trickle_limits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

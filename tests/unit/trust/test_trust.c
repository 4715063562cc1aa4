/*
 * test_trust.c - trust/: the account's rule as a table (a forger's own
 * valid signature never speaks for another domain), organisational
 * domains, the RFC 8601 value, the From: domain, and a DNS server that
 * does not answer giving temperror, never pass.
 */
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/util.h"
#include "trust/trust.h"
#include "testlib.h"

struct rule_row {
	const char *rule, *mail_from;
	const char *spf, *dkim1, *d1, *dkim2, *d2, *dmarc, *from;
	enum trust_rule_result want;
	const char *check;
};

#define P TRUST_PASS
#define F TRUST_FAIL
#define T TRUST_TEMP
static const struct rule_row rule_rows[] = {
	/* spf-or-dkim: SPF for the envelope domain */
	{ "spf-or-dkim", "zoe@example.fr", "pass", NULL, NULL, NULL, NULL,
	  "none", "example.fr", P, "SPF/DKIM" },
	{ "spf-or-dkim", "zoe@example.fr", "fail", NULL, NULL, NULL, NULL,
	  "none", "example.fr", F, "SPF/DKIM" },
	{ "spf-or-dkim", "zoe@example.fr", "softfail", NULL, NULL, NULL,
	  NULL, "none", "example.fr", F, "SPF/DKIM" },
	{ "spf-or-dkim", "zoe@example.fr", "temperror", NULL, NULL, NULL,
	  NULL, "none", "example.fr", T, "SPF/DKIM" },
	/* DKIM of the envelope domain or a parent (relaxed) */
	{ "spf-or-dkim", "zoe@example.fr", "fail", "pass", "example.fr",
	  NULL, NULL, "none", "example.fr", P, "SPF/DKIM" },
	{ "spf-or-dkim", "zoe@mail.example.fr", "none", "pass",
	  "example.fr", NULL, NULL, "none", "example.fr", P, "SPF/DKIM" },
	/* a child's signature does not speak for the parent */
	{ "spf-or-dkim", "zoe@example.fr", "none", "pass",
	  "mail.example.fr", NULL, NULL, "none", "example.fr", F,
	  "SPF/DKIM" },
	/* the forger's own valid signature */
	{ "spf-or-dkim", "zoe@example.fr", "fail", "pass", "evil.example",
	  NULL, NULL, "none", "example.fr", F, "SPF/DKIM" },
	{ "spf-or-dkim", "zoe@example.fr", "none", "pass", "badexample.fr",
	  NULL, NULL, "none", "example.fr", F, "SPF/DKIM" },
	{ "spf-or-dkim", "zoe@example.fr", "none", "pass", "evil.example",
	  "fail", "example.fr", "fail", "example.fr", F, "SPF/DKIM" },
	{ "spf-or-dkim", "zoe@example.fr", "none", "fail", "evil.example",
	  "pass", "example.fr", "none", "example.fr", P, "SPF/DKIM" },
	/* a key we could not fetch: temporary, for our domain only */
	{ "spf-or-dkim", "zoe@example.fr", "fail", "temperror",
	  "example.fr", NULL, NULL, "none", "example.fr", T, "SPF/DKIM" },
	{ "spf-or-dkim", "zoe@example.fr", "fail", "temperror",
	  "evil.example", NULL, NULL, "none", "example.fr", F, "SPF/DKIM" },
	{ "spf-or-dkim", "", "pass", "pass", "example.fr", NULL, NULL,
	  "pass", "example.fr", F, "SPF/DKIM" },
	/* dmarc: pass for the From: domain, aligned with MAIL FROM */
	{ "dmarc", "zoe@example.fr", "pass", NULL, NULL, NULL, NULL,
	  "pass", "example.fr", P, "DMARC" },
	{ "dmarc", "zoe@bounce.example.fr", "pass", NULL, NULL, NULL, NULL,
	  "pass", "example.fr", P, "DMARC" },
	{ "dmarc", "zoe@example.fr", "pass", NULL, NULL, NULL, NULL,
	  "fail", "example.fr", F, "DMARC" },
	{ "dmarc", "zoe@example.fr", "pass", NULL, NULL, NULL, NULL,
	  "none", "example.fr", F, "DMARC" },
	{ "dmarc", "zoe@example.fr", "none", "pass", "evil.example", NULL,
	  NULL, "pass", "evil.example", F, "DMARC" },
	{ "dmarc", "zoe@example.fr", "temperror", NULL, NULL, NULL, NULL,
	  "temperror", "example.fr", T, "DMARC" },
	{ "dmarc", "zoe@example.co.uk", "pass", NULL, NULL, NULL, NULL,
	  "pass", "other.co.uk", F, "DMARC" },
};

START_TEST(test_rule)
{
	const struct rule_row *r = &rule_rows[_i];
	struct trust_verdict v;
	const char *check = NULL;

	memset(&v, 0, sizeof(v));
	snprintf(v.spf, sizeof(v.spf), "%s", r->spf);
	snprintf(v.dmarc, sizeof(v.dmarc), "%s", r->dmarc);
	trust_addr_domain(r->mail_from, v.spf_domain);
	snprintf(v.from_domain, sizeof(v.from_domain), "%s", r->from);
	if (r->dkim1 != NULL) {
		snprintf(v.sigs[0].result, 16, "%s", r->dkim1);
		snprintf(v.sigs[0].domain, TRUST_DOMAIN_MAX, "%s", r->d1);
		v.ndkim = 1;
	}
	if (r->dkim2 != NULL) {
		snprintf(v.sigs[1].result, 16, "%s", r->dkim2);
		snprintf(v.sigs[1].domain, TRUST_DOMAIN_MAX, "%s", r->d2);
		v.ndkim = 2;
	}
	ck_assert_msg(trust_rule(r->rule, &v, r->mail_from, &check) ==
	    r->want, "row %d", _i);
	ck_assert_str_eq(check, r->check);
}
END_TEST

static const char *const org_rows[][2] = {
	{ "example.fr", "example.fr" },
	{ "mail.example.fr", "example.fr" },
	{ "a.b.mail.example.fr", "example.fr" },
	{ "example.co.uk", "example.co.uk" },
	{ "mx.example.co.uk", "example.co.uk" },
	{ "example.com.au", "example.com.au" },
	{ "co.uk", "co.uk" },
	{ "localhost", "localhost" },
	{ "x.example.de", "example.de" },
};

START_TEST(test_org_domain)
{
	char out[TRUST_DOMAIN_MAX];

	trust_org_domain(org_rows[_i][0], out);
	ck_assert_str_eq(out, org_rows[_i][1]);
}
END_TEST

START_TEST(test_ar_format)
{
	struct trust_verdict v;

	memset(&v, 0, sizeof(v));
	strcpy(v.spf, "pass");
	strcpy(v.dkim, "pass");
	strcpy(v.dmarc, "pass");
	strcpy(v.spf_domain, "example.fr");
	strcpy(v.from_domain, "example.fr");
	strcpy(v.sigs[0].result, "pass");
	strcpy(v.sigs[0].domain, "example.fr");
	strcpy(v.sigs[1].result, "fail");
	strcpy(v.sigs[1].domain, "evil.example");
	v.ndkim = 2;
	trust_format_ar(&v, "postdoc.test", "zoe@example.fr");
	ck_assert_str_eq(v.ar, "postdoc.test; spf=pass "
	    "smtp.mailfrom=zoe@example.fr; dkim=pass header.d=example.fr; "
	    "dkim=fail header.d=evil.example; dmarc=pass "
	    "header.from=example.fr");
	/* no signature, no From:; a hostile d= stays one header body */
	memset(&v, 0, sizeof(v));
	strcpy(v.spf, "none");
	strcpy(v.dkim, "none");
	strcpy(v.dmarc, "permerror");
	strcpy(v.sigs[0].result, "fail");
	strcpy(v.sigs[0].domain, "x;\r\nBcc: y");
	trust_format_ar(&v, "postdoc.test", "a@b.example");
	ck_assert_str_eq(v.ar, "postdoc.test; spf=none "
	    "smtp.mailfrom=a@b.example; dkim=none; dmarc=permerror");
	v.ndkim = 1;
	trust_format_ar(&v, "postdoc.test", "a@b.example");
	ck_assert_ptr_null(strchr(v.ar, '\n'));
	ck_assert_ptr_nonnull(strstr(v.ar, "header.d=xBccy"));
}
END_TEST

static const struct { const char *msg, *dom; int count; } from_rows[] = {
	{ "From: Zoe <zoe@Example.FR>\r\nTo: x\r\n\r\nbody", "example.fr", 1 },
	{ "Subject: a\nFrom: zoe@example.fr\n\nFrom: x@evil.example\n",
	  "example.fr", 1 },
	{ "From: \"a@evil.example\"\r\n <zoe@example.fr>\r\n\r\n",
	  "example.fr", 1 },
	{ "From: a@x.example\r\nFrom: b@y.example\r\n\r\n", "x.example", 2 },
	{ "To: a@b\r\n\r\nFrom: zoe@example.fr\r\n", "", 0 },
};

START_TEST(test_from_domain)
{
	char out[TRUST_DOMAIN_MAX];
	int count = -1;

	trust_from_domain((const unsigned char *)from_rows[_i].msg,
	    strlen(from_rows[_i].msg), out, &count);
	ck_assert_str_eq(out, from_rows[_i].dom);
	ck_assert_int_eq(count, from_rows[_i].count);
}
END_TEST

/* A loopback UDP port nobody answers on (bound, then closed). */
static int
dead_port(void)
{
	struct sockaddr_in a;
	socklen_t n = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), port;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &n), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static const char signed_msg[] =
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.fr;"
    " s=sel; h=from:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"
    " b=dGVzdA==\r\n"
    "From: Zoe <zoe@example.fr>\r\nSubject: hi\r\n\r\nbody\r\n";

START_TEST(test_dns_down_temperror)
{
	struct trust_ctx *c = NULL;
	struct trust_input in = { "192.0.2.1", "mx.example.fr",
	    "zoe@example.fr", (const unsigned char *)signed_msg,
	    sizeof(signed_msg) - 1, "postdoc.test", 0 };
	struct trust_verdict v;
	char server[64], err[PD_ERRLEN];
	const char *check;

	snprintf(server, sizeof(server), "127.0.0.1@%d", dead_port());
	ck_assert_msg(trust_ctx_new(server, 300, &c, err) == 0, "%s", err);
	trust_check(c, &in, &v);
	ck_assert_str_eq(v.spf, "temperror");
	ck_assert_str_eq(v.dkim, "temperror");
	ck_assert_str_eq(v.dmarc, "temperror");
	ck_assert_str_eq(v.from_domain, "example.fr");
	ck_assert_ptr_nonnull(strstr(v.ar, "spf=temperror"));
	ck_assert_int_eq(trust_rule("spf-or-dkim", &v, in.mail_from, &check),
	    TRUST_TEMP);
	ck_assert_int_eq(trust_rule("dmarc", &v, in.mail_from, &check),
	    TRUST_TEMP);
	trust_ctx_free(&c);
	ck_assert_ptr_null(c);
}
END_TEST

/* The message's budget bounds the whole check, not each query. */
START_TEST(test_deadline)
{
	struct trust_ctx *c = NULL;
	struct trust_input in = { "192.0.2.1", "mx.example.fr",
	    "zoe@example.fr", (const unsigned char *)signed_msg,
	    sizeof(signed_msg) - 1, "postdoc.test", 0 };
	struct trust_verdict v;
	char server[64], err[PD_ERRLEN];
	int64_t t0;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a;
	socklen_t n = sizeof(a);

	/* A server that receives and never answers: each query would
	 * wait its whole 10 s timeout. */
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &n), 0);
	snprintf(server, sizeof(server), "127.0.0.1@%d", ntohs(a.sin_port));
	ck_assert_msg(trust_ctx_new(server, 10000, &c, err) == 0, "%s", err);
	t0 = pd_monotonic_ms();
	in.deadline_ms = t0 + 500;
	trust_check(c, &in, &v);
	ck_assert_int_lt(pd_monotonic_ms() - t0, 3000);
	ck_assert_str_eq(v.spf, "temperror");
	ck_assert_str_eq(v.dkim, "temperror");
	ck_assert_str_eq(v.dmarc, "temperror");
	trust_ctx_free(&c);
	close(fd);
}
END_TEST

START_TEST(test_bad_server)
{
	struct trust_ctx *c = NULL;
	char err[PD_ERRLEN];

	ck_assert_int_eq(trust_ctx_new("not an address", 300, &c, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "dns.server"));
	ck_assert_ptr_null(c);
}
END_TEST

static Suite *
trust_suite(void)
{
	Suite *s = suite_create("trust");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_rule, 0,
	    (int)(sizeof(rule_rows) / sizeof(rule_rows[0])));
	tcase_add_loop_test(tc, test_org_domain, 0,
	    (int)(sizeof(org_rows) / sizeof(org_rows[0])));
	tcase_add_test(tc, test_ar_format);
	tcase_add_loop_test(tc, test_from_domain, 0,
	    (int)(sizeof(from_rows) / sizeof(from_rows[0])));
	tcase_add_test(tc, test_dns_down_temperror);
	tcase_add_test(tc, test_deadline);
	tcase_add_test(tc, test_bad_server);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(trust_suite());
}

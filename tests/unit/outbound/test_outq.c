/*
 * test_outq.c - the queue's rules that need no transport: what a
 * transport's answer does to a row (outq_classify: sent, bounced and
 * suppressed, deferred with exponential backoff capped at a day, bounced
 * once retry_max_age has passed), how claimed rows become per-domain
 * batches (outq_split: one domain per batch, at most batch_max rows),
 * and the rate bucket's bounds.  Through the private outq_int.h: these
 * are the queue manager's own rules, not its public interface.
 */
#include <stdio.h>
#include <string.h>

#include <check.h>

#include "lib/config.h"
#include "outbound/outq_int.h"
#include "postdoc/plugin.h"
#include "store/records.h"
#include "testlib.h"

#define MIN 60
#define HOUR 3600

/* A transport's answer to a row of some age and attempts. */
static const struct classify_case {
	int code;
	const char *enhanced;
	int64_t age;		/* now - created */
	int attempts;		/* including this one */
	const char *state;
	int suppress;
	int64_t next;		/* next_attempt - now; 0: none */
} classify_cases[] = {
	{ 250, "2.0.0", 0, 1, "sent", 0, 0 },
	{ 251, "2.1.5", 5 * HOUR, 3, "sent", 0, 0 },
	{ 550, "5.1.1", 0, 1, "bounced", 1, 0 },
	{ 554, "5.7.1", 9 * 24 * HOUR, 7, "bounced", 1, 0 },
	/* 4xx: backoff retry_base (5 min) * 2^(attempts - 1), at most a day */
	{ 451, "4.3.0", 0, 1, "deferred", 0, 5 * MIN },
	{ 421, "4.4.2", HOUR, 2, "deferred", 0, 10 * MIN },
	{ 450, "4.2.0", HOUR, 4, "deferred", 0, 40 * MIN },
	{ 452, "4.3.1", 2 * HOUR, 9, "deferred", 0, 256 * 5 * MIN },
	{ 452, "4.3.1", 2 * HOUR, 10, "deferred", 0, 24 * HOUR },
	{ 451, "4.3.0", 2 * HOUR, 30, "deferred", 0, 24 * HOUR },
	/* a local failure (0) and nonsense are tried again like a 4xx */
	{ 0, "", 0, 1, "deferred", 0, 5 * MIN },
	{ 199, "", 0, 2, "deferred", 0, 10 * MIN },
	{ 600, "", 0, 1, "deferred", 0, 5 * MIN },
	/* past retry_max_age (5 days): bounced, not suppressed */
	{ 451, "4.3.0", 5 * 24 * HOUR + 1, 12, "bounced", 0, 0 },
	{ 0, "", 6 * 24 * HOUR, 13, "bounced", 0, 0 },
	/* exactly retry_max_age old: still deferred */
	{ 451, "4.3.0", 5 * 24 * HOUR, 12, "deferred", 0, 24 * HOUR },
	/* a 5xx is permanent however young */
	{ 500, "5.5.2", 0, 1, "bounced", 1, 0 },
};

static void
classify_cfg(struct pd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->retry_base = 5 * MIN;
	cfg->retry_max_age = 5 * 24 * HOUR;
}

START_TEST(test_classify)
{
	const struct classify_case *k = &classify_cases[_i];
	const int64_t now = 1800000000;
	struct pd_config cfg;
	struct store_outbound o;
	struct postdoc_delivery res;
	struct outq_outcome oc;

	classify_cfg(&cfg);
	memset(&o, 0, sizeof(o));
	o.created = now - k->age;
	o.attempts = k->attempts;
	memset(&res, 0, sizeof(res));
	res.code = k->code;
	snprintf(res.enhanced, sizeof(res.enhanced), "%s", k->enhanced);
	snprintf(res.text, sizeof(res.text), "reply %d", k->code);
	outq_classify(&cfg, &o, &res, now, &oc);
	ck_assert_msg(strcmp(oc.state, k->state) == 0, "row %d: %d -> %s, "
	    "want %s", _i, k->code, oc.state, k->state);
	ck_assert_int_eq(oc.suppress, k->suppress);
	ck_assert_int_eq(oc.code, k->code);
	if (k->next != 0)
		ck_assert_int_eq(oc.next_attempt - now, k->next);
	else
		ck_assert_int_eq(oc.next_attempt, 0);
	if (strcmp(k->state, "bounced") == 0 && !k->suppress)
		ck_assert_msg(strstr(oc.text, "undeliverable after") != NULL,
		    "row %d: %s", _i, oc.text);
	if (k->suppress)
		ck_assert_msg(strncmp(oc.reason, "5xx at delivery: ", 17) == 0,
		    "row %d: %s", _i, oc.reason);
}
END_TEST

/* Rows as claimed (domains, in arrival order) -> the batches handed out. */
static const struct split_case {
	int batch_max;
	const char *domains;	/* one letter per row: its domain */
	const char *batches;	/* each batch as domain letters, '|' apart */
} split_cases[] = {
	{ 100, "", "" },
	{ 100, "a", "a" },
	{ 100, "aaa", "aaa" },
	{ 100, "abab", "aa|bb" },
	{ 2, "aaaaa", "aa|aa|a" },
	{ 3, "abcabcab", "aaa|bbb|cc" },
	{ 1, "aab", "a|a|b" },
	{ 0, "aa", "a|a" },		/* batch_max 0 reads as 1 */
	{ 2, "cbacba", "aa|bb|cc" },
};

struct split_out {
	char got[64];
};

static void
split_cb(const struct store_outbound *rows, size_t n, void *ctx)
{
	struct split_out *s = ctx;
	size_t i, len = strlen(s->got);

	if (len > 0)
		s->got[len++] = '|';
	for (i = 0; i < n && len + 1 < sizeof(s->got); i++) {
		ck_assert_str_eq(rows[i].rcpt_domain, rows[0].rcpt_domain);
		s->got[len++] = rows[i].rcpt_domain[0];
	}
	s->got[len] = '\0';
}

START_TEST(test_split)
{
	const struct split_case *k = &split_cases[_i];
	struct store_outbound v[16];
	struct outq_rows r = { v, 0, 16 };
	struct pd_config cfg;
	struct split_out out = { "" };
	size_t i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.batch_max = k->batch_max;
	memset(v, 0, sizeof(v));
	for (i = 0; k->domains[i] != '\0'; i++) {
		v[i].id = (int64_t)i + 1;
		snprintf(v[i].rcpt_domain, sizeof(v[i].rcpt_domain),
		    "%c.example", k->domains[i]);
	}
	r.n = i;
	outq_split(&cfg, &r, split_cb, &out);
	ck_assert_msg(strcmp(out.got, k->batches) == 0, "row %d: %s -> %s, "
	    "want %s", _i, k->domains, out.got, k->batches);
}
END_TEST

/* The bucket never hands out more than a second's worth, and rate 0 is
 * no limit at all; time-dependent refill is left to the integration
 * tests (a unit test must not depend on the clock). */
START_TEST(test_bucket)
{
	struct outq_bucket b;

	outq_bucket_init(&b, 0);
	ck_assert_int_eq(outq_bucket_take(&b, 5000), 5000);
	outq_bucket_give(&b, 7);
	ck_assert_int_eq(outq_bucket_take(&b, 3), 3);

	outq_bucket_init(&b, 10);
	ck_assert_int_eq(outq_bucket_take(&b, 25), 10);
	outq_bucket_give(&b, 4);
	ck_assert_int_ge(outq_bucket_take(&b, 25), 4);
	ck_assert_int_le(b.tokens, 10.0);
}
END_TEST

static Suite *
outq_suite(void)
{
	Suite *s = suite_create("outq");
	TCase *tc = tcase_create("rules");

	tcase_add_loop_test(tc, test_classify, 0,
	    (int)(sizeof(classify_cases) / sizeof(classify_cases[0])));
	tcase_add_loop_test(tc, test_split, 0,
	    (int)(sizeof(split_cases) / sizeof(split_cases[0])));
	tcase_add_test(tc, test_bucket);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(outq_suite());
}

/*
 * test_campaign.c - the newsletter's rules (campaign.c): who is in the
 * audience (attested adult, latest record a grant for this purpose, not
 * suppressed now, never bounced, this account), that eligibility is
 * checked again per recipient when queueing, that the audience is fixed
 * once, and that a run stopped half way resumes without queueing anybody
 * twice.  Messages are queued, never delivered: no transport is loaded.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consent/campaign.h"
#include "consent/consent.h"
#include "lib/config.h"
#include "lib/util.h"
#include "outbound/outq.h"
#include "store/store.h"
#include "testlib.h"

static char tmpdir[256];
static struct pd_config *cfg;
static struct store *st;
static struct outq_ctx *q;
static char err[PD_ERRLEN];
static int64_t acme, beta, news, events, beta_news;

static void
setup(void)
{
	char e[PD_ERRLEN];

	tl_tmpdir(tmpdir, sizeof(tmpdir), "campaign");
	ck_assert_msg(config_load(NULL, &cfg, e, sizeof(e)) == 0, "%s", e);
	free(cfg->var_dir);
	cfg->var_dir = xasprintf("%s/var", tmpdir);
	free(cfg->db_path);
	cfg->db_path = xasprintf("%s/postdoc.db", tmpdir);
	free(cfg->template_dir);
	cfg->template_dir = xstrdup(TOP_SRCDIR "/templates");
	st = tl_store_open(cfg->db_path, "normal");
	ck_assert_msg(store_account_add(st, "acme", "any", &acme, err) == 0,
	    "%s", err);
	ck_assert_msg(store_account_add(st, "beta", "any", &beta, err) == 0,
	    "%s", err);
	ck_assert_msg(store_purpose_add(st, acme, "newsletter", &news, err)
	    == 0, "%s", err);
	ck_assert_msg(store_purpose_add(st, acme, "events", &events, err)
	    == 0, "%s", err);
	ck_assert_msg(store_purpose_add(st, beta, "newsletter", &beta_news,
	    err) == 0, "%s", err);
	ck_assert_msg(outq_ctx_new(cfg, NULL, &q, err) == 0, "%s", err);
}

static void
teardown(void)
{
	outq_ctx_free(&q);
	store_close(&st);
	config_free(&cfg);
	tl_rmtree(tmpdir);
}

static void
act(int64_t account_id, int64_t cid, int64_t pid, char a)
{
	struct consent_act ca = { .action = a == 'g' ? "grant" : "withdraw",
	    .basis = "consent", .source = "form" };

	ck_assert_msg(consent_apply(st, account_id, cid, pid, &ca, err) >= 0,
	    "%s", err);
}

/* A contact with its consent history ("gw") for pid and attestation. */
static int64_t
contact(int64_t account_id, const char *email, int64_t pid,
    const char *history, const char *adult)
{
	int64_t id = 0;

	ck_assert_msg(store_contact_ensure(st, account_id, email, &id, err)
	    == 0, "%s", err);
	for (; *history != '\0'; history++)
		act(account_id, id, pid, *history);
	if (strcmp(adult, "unknown") != 0)
		ck_assert_msg(store_contact_attest(st, account_id, id, adult,
		    "op", err) == 0, "%s", err);
	return id;
}

/* An earlier message to rcpt, left in `state` ("bounced"...). */
static void
earlier_mail(const char *rcpt, const char *state)
{
	char msg[600];
	int64_t id = 0;
	FILE *f;
	struct outq_item it = { .account_id = acme, .account = "acme",
	    .kind = "notice", .rcpt = rcpt, .from_domain = "acme.example",
	    .msg_path = msg, .message_id = "<earlier@acme.example>" };

	snprintf(msg, sizeof(msg), "%s/earlier.eml", tmpdir);
	f = fopen(msg, "w");
	ck_assert_ptr_nonnull(f);
	fputs("From: a@acme.example\r\nSubject: x\r\n\r\nx\r\n", f);
	fclose(f);
	ck_assert_msg(outq_enqueue(q, &it, &id, err) == 0, "%s", err);
	ck_assert_msg(store_outbound_update(st, id, state, 550, "5.1.1",
	    "no such user", 0, err) == 0, "%s", err);
}

/* The newsletters queued so far: how many, and to whom. */
struct sent {
	int n;
	char rcpt[128][320];
};

static int
sent_cb(const struct store_outbound *o, void *ctx)
{
	struct sent *s = ctx;

	if (strcmp(o->kind, "newsletter") == 0 && s->n < 128)
		snprintf(s->rcpt[s->n++], sizeof(s->rcpt[0]), "%s", o->rcpt);
	return 0;
}

static struct sent
sent(void)
{
	struct sent s;

	memset(&s, 0, sizeof(s));
	ck_assert_msg(store_outbound_list(st, 0, 0, NULL, sent_cb, &s, err)
	    == 0, "%s", err);
	return s;
}

static int
sent_to(const struct sent *s, const char *rcpt)
{
	int i, n = 0;

	for (i = 0; i < s->n; i++)
		n += strcmp(s->rcpt[i], rcpt) == 0;
	return n;
}

static int64_t
campaign(void)
{
	int64_t id = 0;

	ck_assert_msg(campaign_create(st, acme, news, "newsletter", "News",
	    "en", &id, err) == 0, "%s", err);
	return id;
}

static void
run(int64_t id, struct campaign_stats *s)
{
	ck_assert_msg(campaign_send(cfg, st, q, id, NULL, NULL, s, err) == 0,
	    "%s", err);
}

/* ---- the audience ---- */

enum { SUPP_NONE, SUPP_NOW, SUPP_EXPIRED };

static const struct {
	const char *name;
	const char *history;	/* consent records for the newsletter */
	const char *other;	/* ... for the other purpose */
	const char *adult;
	int suppressed;
	const char *earlier;	/* state of an earlier mail to them */
	int other_account;
	int in;
} audience[] = {
	{ "granted adult", "g", "", "yes", SUPP_NONE, NULL, 0, 1 },
	{ "granted minor", "g", "", "no", SUPP_NONE, NULL, 0, 0 },
	{ "granted, age unknown", "g", "", "unknown", SUPP_NONE, NULL, 0, 0 },
	{ "no consent", "", "", "yes", SUPP_NONE, NULL, 0, 0 },
	{ "withdrawn", "gw", "", "yes", SUPP_NONE, NULL, 0, 0 },
	{ "granted again", "gwg", "", "yes", SUPP_NONE, NULL, 0, 1 },
	{ "granted another purpose", "", "g", "yes", SUPP_NONE, NULL, 0, 0 },
	{ "withdrawn, other granted", "gw", "g", "yes", SUPP_NONE, NULL, 0, 0 },
	{ "suppressed", "g", "", "yes", SUPP_NOW, NULL, 0, 0 },
	{ "suppression expired", "g", "", "yes", SUPP_EXPIRED, NULL, 0, 1 },
	{ "bounced", "g", "", "yes", SUPP_NONE, "bounced", 0, 0 },
	{ "earlier mail failed", "g", "", "yes", SUPP_NONE, "failed", 0, 1 },
	{ "earlier mail sent", "g", "", "yes", SUPP_NONE, "sent", 0, 1 },
	{ "minor, withdrawn, bounced", "gw", "", "no", SUPP_NONE, "bounced", 0,
	    0 },
	{ "another account's contact", "g", "", "yes", SUPP_NONE, NULL, 1, 0 },
};

START_TEST(test_audience)
{
	const char *who = "who@example.org";
	int64_t a = audience[_i].other_account ? beta : acme, id;
	struct campaign_stats s;
	struct sent out;
	int in = audience[_i].in;

	/* a control recipient who is always in */
	contact(acme, "control@example.org", news, "g", "yes");
	/* in another account: granted its own newsletter purpose */
	contact(a, who, a == acme ? news : beta_news, audience[_i].history,
	    audience[_i].adult);
	if (audience[_i].other[0] != '\0')
		contact(a, who, events, audience[_i].other, "unknown");
	if (audience[_i].suppressed != SUPP_NONE)
		ck_assert_msg(store_suppression_add(st, acme, who, "test",
		    audience[_i].suppressed == SUPP_NOW ? pd_now() + 3600 :
		    pd_now() - 3600, err) == 0, "%s", err);
	if (audience[_i].earlier != NULL)
		earlier_mail(who, audience[_i].earlier);
	id = campaign();
	run(id, &s);
	ck_assert_msg(s.total == 1 + in, "%s: audience %lld",
	    audience[_i].name, (long long)s.total);
	ck_assert_int_eq(s.queued, 1 + in);
	ck_assert_int_eq(s.skipped, 0);
	out = sent();
	ck_assert_int_eq(out.n, 1 + in);
	ck_assert_int_eq(sent_to(&out, "control@example.org"), 1);
	ck_assert_msg(sent_to(&out, who) == in, "%s", audience[_i].name);
}
END_TEST

/* ---- eligibility checked again when queueing ---- */

static const struct {
	const char *name;
	int change;		/* after the start, before the queueing */
} rechecks[] = {
	{ "withdrawn", 'w' },
	{ "attested a minor", 'm' },
	{ "suppressed", 's' },
	{ "bounced", 'b' },
	{ "nothing changed", 0 },
};

static int
count_cb(const char *name, int64_t n, void *ctx)
{
	if (strcmp(name, "r.skipped") == 0)
		*(int64_t *)ctx = n;
	return 0;
}

START_TEST(test_recheck)
{
	const char *who = "who@example.org";
	int64_t cid = contact(acme, who, news, "g", "yes");
	int64_t id = campaign(), n = 0, skipped = 0;
	int out = rechecks[_i].change != 0;
	struct campaign_stats s;
	struct sent o;

	contact(acme, "control@example.org", news, "g", "yes");
	ck_assert_msg(store_campaign_start(st, id, pd_now(), &n, err) == 0,
	    "%s", err);
	ck_assert_int_eq(n, 2);
	switch (rechecks[_i].change) {
	case 'w':
		act(acme, cid, news, 'w');
		break;
	case 'm':
		ck_assert_int_eq(store_contact_attest(st, acme, cid, "no", "op",
		    err), 0);
		break;
	case 's':
		ck_assert_int_eq(store_suppression_add(st, acme, who, "test",
		    pd_now() + 3600, err), 0);
		break;
	case 'b':
		earlier_mail(who, "bounced");
		break;
	}
	run(id, &s);
	ck_assert_int_eq(s.total, 2);
	ck_assert_msg(s.skipped == out, "%s", rechecks[_i].name);
	ck_assert_int_eq(s.queued, 2 - out);
	o = sent();
	ck_assert_int_eq(sent_to(&o, who), !out);
	ck_assert_int_eq(store_campaign_counts(st, id, count_cb, &skipped,
	    err), 0);
	ck_assert_int_eq(skipped, out);
}
END_TEST

/* ---- fixed once ---- */

START_TEST(test_start_once)
{
	struct campaign_stats s;
	struct store_campaign c;
	int64_t id = campaign(), n = -1;

	contact(acme, "a@example.org", news, "g", "yes");
	contact(acme, "b@example.org", news, "g", "yes");
	run(id, &s);
	ck_assert_int_eq(s.total, 2);
	ck_assert_int_eq(s.queued, 2);
	ck_assert_int_eq(store_campaign_get(st, id, &c, err), 1);
	ck_assert_str_ne(c.state, "draft");
	/* someone who consents later is not added to a started campaign */
	contact(acme, "late@example.org", news, "g", "yes");
	ck_assert_int_eq(store_campaign_start(st, id, pd_now(), &n, err), 0);
	ck_assert_int_eq(n, 0);
	run(id, &s);
	ck_assert_int_eq(s.total, 2);
	ck_assert_int_eq(s.queued, 0);
	ck_assert_int_eq(sent().n, 2);
	/* a new campaign has them */
	run(campaign(), &s);
	ck_assert_int_eq(s.total, 3);
	ck_assert_int_eq(sent().n, 5);
}
END_TEST

/* ---- resuming ---- */

static int stop_after;		/* recipients, then the templates vanish */
static int stop_calls;		/* progress calls: one per recipient */

static void
stop_cb(int64_t done, int64_t total, void *ctx)
{
	(void)done;
	(void)total;
	(void)ctx;
	if (++stop_calls == stop_after) {
		free(cfg->template_dir);
		cfg->template_dir = xstrdup("/nonexistent/templates");
	}
}

static const struct {
	int contacts;
	int stop_after;		/* 0: never stops */
} stops[] = {
	{ 5, 1 }, { 5, 2 }, { 5, 4 }, { 3, 0 }, { 70, 65 }, { 70, 20 },
};

START_TEST(test_resume)
{
	struct campaign_stats s;
	struct sent out;
	char email[64];
	int64_t id = campaign();
	int i, n = stops[_i].contacts, first;

	for (i = 0; i < n; i++) {
		snprintf(email, sizeof(email), "r%02d@example.org", i);
		contact(acme, email, news, "g", "yes");
	}
	stop_after = stops[_i].stop_after;
	stop_calls = 0;
	first = campaign_send(cfg, st, q, id, stop_cb, NULL, &s, err);
	ck_assert_int_eq(first, stop_after ? -1 : 0);
	/* what was built before the failure is queued, nothing more */
	ck_assert_int_eq(s.queued, stop_after ? stop_after : n);
	ck_assert_int_eq(sent().n, stop_after ? stop_after : n);
	free(cfg->template_dir);
	cfg->template_dir = xstrdup(TOP_SRCDIR "/templates");
	stop_after = -1;
	run(id, &s);
	ck_assert_int_eq(s.total, n);
	ck_assert_int_eq(s.queued, stops[_i].stop_after ? n -
	    stops[_i].stop_after : 0);
	out = sent();
	ck_assert_int_eq(out.n, n);
	for (i = 0; i < n; i++) {
		snprintf(email, sizeof(email), "r%02d@example.org", i);
		ck_assert_msg(sent_to(&out, email) == 1, "%s queued %d times",
		    email, sent_to(&out, email));
	}
}
END_TEST

/* A run of an older version left rows "queuing": the outbound row with
 * the recorded Message-ID says whether it was queued. */
START_TEST(test_resume_queuing)
{
	struct campaign_stats s;
	struct sent out;
	char msg[600];
	int64_t id = campaign(), n = 0, oid = 0;
	FILE *f;
	struct outq_item it = { .account_id = acme, .account = "acme",
	    .kind = "newsletter", .rcpt = "a@example.org",
	    .from_domain = "acme.example", .msg_path = msg,
	    .message_id = "<half@acme.example>" };

	contact(acme, "a@example.org", news, "g", "yes");
	contact(acme, "b@example.org", news, "g", "yes");
	contact(acme, "c@example.org", news, "g", "yes");
	ck_assert_int_eq(store_campaign_start(st, id, pd_now(), &n, err), 0);
	ck_assert_int_eq(n, 3);
	/* recipients are rows 1..3 of a fresh store, in contact order */
	/* a: queuing, and its message was queued before the crash */
	snprintf(msg, sizeof(msg), "%s/half.eml", tmpdir);
	f = fopen(msg, "w");
	ck_assert_ptr_nonnull(f);
	fputs("From: a@acme.example\r\nSubject: x\r\n\r\nx\r\n", f);
	fclose(f);
	ck_assert_msg(outq_enqueue(q, &it, &oid, err) == 0, "%s", err);
	ck_assert_int_eq(store_campaign_rcpt_set(st, 1, "queuing",
	    "<half@acme.example>", 0, "", err), 0);
	/* b: queuing, but the crash came before the queue had it */
	ck_assert_int_eq(store_campaign_rcpt_set(st, 2, "queuing",
	    "<lost@acme.example>", 0, "", err), 0);
	run(id, &s);
	ck_assert_int_eq(s.total, 3);
	ck_assert_int_eq(s.resumed, 1);
	ck_assert_int_eq(s.queued, 2);
	out = sent();
	ck_assert_int_eq(out.n, 3);
	ck_assert_int_eq(sent_to(&out, "a@example.org"), 1);
	ck_assert_int_eq(sent_to(&out, "b@example.org"), 1);
	ck_assert_int_eq(sent_to(&out, "c@example.org"), 1);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
campaign_suite(void)
{
	Suite *s = suite_create("campaign");
	TCase *tc = tcase_create("campaign");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_audience, 0, N(audience));
	tcase_add_loop_test(tc, test_recheck, 0, N(rechecks));
	tcase_add_test(tc, test_start_once);
	tcase_add_loop_test(tc, test_resume, 0, N(stops));
	tcase_add_test(tc, test_resume_queuing);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(campaign_suite());
}

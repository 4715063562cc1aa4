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
#include "consent/campaign_view.h"
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
	const char *why;	/* left out: the reason the audience gives */
} audience[] = {
	{ "granted adult", "g", "", "yes", SUPP_NONE, NULL, 0, 1, "" },
	{ "granted minor", "g", "", "no", SUPP_NONE, NULL, 0, 0, "minor" },
	{ "granted, age unknown", "g", "", "unknown", SUPP_NONE, NULL, 0, 0,
	    "age unknown" },
	{ "no consent", "", "", "yes", SUPP_NONE, NULL, 0, 0, "no consent" },
	{ "withdrawn", "gw", "", "yes", SUPP_NONE, NULL, 0, 0, "withdrawn" },
	{ "granted again", "gwg", "", "yes", SUPP_NONE, NULL, 0, 1, "" },
	{ "granted another purpose", "", "g", "yes", SUPP_NONE, NULL, 0, 0,
	    "no consent" },
	{ "withdrawn, other granted", "gw", "g", "yes", SUPP_NONE, NULL, 0, 0,
	    "withdrawn" },
	{ "suppressed", "g", "", "yes", SUPP_NOW, NULL, 0, 0, "suppressed" },
	{ "suppression expired", "g", "", "yes", SUPP_EXPIRED, NULL, 0, 1,
	    "" },
	{ "bounced", "g", "", "yes", SUPP_NONE, "bounced", 0, 0, "bounced" },
	{ "earlier mail failed", "g", "", "yes", SUPP_NONE, "failed", 0, 1,
	    "" },
	{ "earlier mail sent", "g", "", "yes", SUPP_NONE, "sent", 0, 1, "" },
	{ "minor, withdrawn, bounced", "gw", "", "no", SUPP_NONE, "bounced", 0,
	    0, "minor" },
	{ "another account's contact", "g", "", "yes", SUPP_NONE, NULL, 1, 0,
	    "" },
};

/* The count of the reason called name in a's explanation. */
static int64_t
left_out(const struct campaign_audience *a, const char *name)
{
	const char *n;
	int i;

	for (i = 1; (n = campaign_why_name(i)) != NULL; i++)
		if (strcmp(n, name) == 0)
			return campaign_why_count(a, i);
	ck_abort_msg("no reason %s", name);
	return -1;
}

/* Every reason's count but one (name, or none for ""), which is 1. */
static void
explained(const struct campaign_audience *a, const char *name,
    const char *row)
{
	const char *n;
	int i;

	for (i = 1; (n = campaign_why_name(i)) != NULL; i++)
		ck_assert_msg(campaign_why_count(a, i) == (strcmp(n, name) == 0),
		    "%s: %s %lld", row, n, (long long)campaign_why_count(a, i));
}

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
	/* and the explanation: everyone counted once, for one reason */
	ck_assert_int_eq(s.audience.contacts,
	    audience[_i].other_account ? 1 : 2);
	ck_assert_int_eq(s.audience.eligible, 1 + in);
	explained(&s.audience, audience[_i].why, audience[_i].name);
}
END_TEST

/* ---- eligibility checked again when queueing ---- */

static const struct {
	const char *name;
	int change;		/* after the start, before the queueing */
	const char *why;	/* the skip's reason, in the audience's words */
} rechecks[] = {
	{ "withdrawn", 'w', "s.withdrawn" },
	{ "attested a minor", 'm', "s.minor" },
	{ "suppressed", 's', "s.suppressed" },
	{ "bounced", 'b', "s.bounced" },
	{ "nothing changed", 0, NULL },
};

static int recheck_i;

/* r.skipped, and the skips by reason: only the expected one. */
static int
count_cb(const char *name, int64_t n, void *ctx)
{
	if (strcmp(name, "r.skipped") == 0)
		*(int64_t *)ctx = n;
	if (strncmp(name, "s.", 2) == 0) {
		ck_assert_ptr_nonnull(rechecks[recheck_i].why);
		ck_assert_str_eq(name, rechecks[recheck_i].why);
		ck_assert_int_eq(n, 1);
	}
	return 0;
}

START_TEST(test_recheck)
{
	const char *who = "who@example.org";
	int64_t cid = contact(acme, who, news, "g", "yes");
	int64_t id = campaign(), skipped = 0;
	int out = rechecks[_i].change != 0;
	struct campaign_audience aud;
	struct campaign_stats s;
	struct sent o;

	contact(acme, "control@example.org", news, "g", "yes");
	ck_assert_msg(campaign_start(cfg, st, id, &aud, err) == 1, "%s", err);
	ck_assert_int_eq(aud.eligible, 2);
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
	recheck_i = _i;
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
	struct campaign_audience aud;
	int64_t id = campaign();

	contact(acme, "a@example.org", news, "g", "yes");
	contact(acme, "b@example.org", news, "g", "yes");
	run(id, &s);
	ck_assert_int_eq(s.total, 2);
	ck_assert_int_eq(s.queued, 2);
	ck_assert_int_eq(store_campaign_get(st, id, &c, err), 1);
	ck_assert_str_ne(c.state, "draft");
	/* someone who consents later is not added to a started campaign */
	contact(acme, "late@example.org", news, "g", "yes");
	ck_assert_int_eq(campaign_start(cfg, st, id, &aud, err), 0);
	ck_assert_int_eq(aud.eligible, 2);	/* as it was fixed */
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
	int64_t id = campaign(), oid = 0;
	struct campaign_audience aud;
	FILE *f;
	struct outq_item it = { .account_id = acme, .account = "acme",
	    .kind = "newsletter", .rcpt = "a@example.org",
	    .from_domain = "acme.example", .msg_path = msg,
	    .message_id = "<half@acme.example>" };

	contact(acme, "a@example.org", news, "g", "yes");
	contact(acme, "b@example.org", news, "g", "yes");
	contact(acme, "c@example.org", news, "g", "yes");
	ck_assert_int_eq(campaign_start(cfg, st, id, &aud, err), 1);
	ck_assert_int_eq(aud.eligible, 3);
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

/* ---- the audience explained (issue 15) ---- */

static int
name_cb(int64_t contact_id, const char *email, void *ctx)
{
	int *n = ctx;

	(void)contact_id;
	(void)email;
	(*n)++;
	return 0;
}

static int
any_cb(const char *name, int64_t n, void *ctx)
{
	(void)name;
	*(int64_t *)ctx += n;
	return 0;
}

/*
 * The case: two contacts with consent and no age attestation
 * made a campaign of 0 recipients with no word of why.  The audience
 * now says "age unknown: 2", fixed with the campaign; an account of
 * business contacts (adult_required false) reaches them.
 */
START_TEST(test_age_unknown_explained)
{
	struct campaign_audience a, back;
	struct store_campaign c;
	int64_t id = campaign();

	contact(acme, "one@example.org", news, "g", "unknown");
	contact(acme, "two@example.org", news, "g", "unknown");
	ck_assert_msg(campaign_start(cfg, st, id, &a, err) == 1, "%s", err);
	ck_assert_int_eq(a.contacts, 2);
	ck_assert_int_eq(a.eligible, 0);
	ck_assert_int_eq(left_out(&a, "age unknown"), 2);
	ck_assert_int_eq(store_campaign_get(st, id, &c, err), 1);
	ck_assert_int_eq(campaign_audience_load(c.audience, &back), 0);
	ck_assert_int_eq(memcmp(&a, &back, sizeof(a)), 0);

	ck_assert_int_eq(store_account_setting_set(st, acme, "adult_required",
	    "false", pd_now(), err), 0);
	id = campaign();
	ck_assert_msg(campaign_start(cfg, st, id, &a, err) == 1, "%s", err);
	ck_assert_int_eq(a.eligible, 2);
	ck_assert_int_eq(left_out(&a, "age unknown"), 0);
}
END_TEST

/* A dry run names who a send would reach and writes nothing. */
START_TEST(test_dry_run_changes_nothing)
{
	struct campaign_audience a, fixed;
	struct store_campaign c;
	struct campaign_stats s;
	int64_t id = campaign(), rows = 0;
	int n = 0, was_fixed = -1;

	contact(acme, "in@example.org", news, "g", "yes");
	contact(acme, "kid@example.org", news, "g", "no");
	contact(acme, "out@example.org", news, "gw", "yes");
	ck_assert_int_eq(store_campaign_get(st, id, &c, err), 1);
	ck_assert_msg(campaign_dry_run(cfg, st, &c, name_cb, &n, &a,
	    &was_fixed, err) == 0, "%s", err);
	ck_assert_int_eq(was_fixed, 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(a.eligible, 1);
	ck_assert_int_eq(left_out(&a, "minor"), 1);
	ck_assert_int_eq(left_out(&a, "withdrawn"), 1);
	ck_assert_int_eq(store_campaign_get(st, id, &c, err), 1);
	ck_assert_str_eq(c.state, "draft");
	ck_assert_str_eq(c.audience, "");
	ck_assert_int_eq(store_campaign_counts(st, id, any_cb, &rows, err), 0);
	ck_assert_int_eq(rows, 0);
	ck_assert_int_eq(sent().n, 0);
	/* the real send fixes what the dry run said */
	run(id, &s);
	ck_assert_int_eq(memcmp(&a, &s.audience, sizeof(a)), 0);
	/* once fixed, a dry run reports the stored audience and the
	 * recipients still pending (none) */
	ck_assert_int_eq(store_campaign_get(st, id, &c, err), 1);
	n = 0;
	ck_assert_int_eq(campaign_dry_run(cfg, st, &c, name_cb, &n, &fixed,
	    &was_fixed, err), 0);
	ck_assert_int_eq(was_fixed, 1);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(memcmp(&a, &fixed, sizeof(a)), 0);
}
END_TEST

static int
any_sent_cb(const struct store_outbound *o, void *ctx)
{
	(void)o;
	(void)ctx;
	ck_abort_msg("a dry run queued %s", o->rcpt);
	return 0;
}

static int
notice_cb(const char *email, const char *why, void *ctx)
{
	char *buf = ctx;
	size_t n = strlen(buf);

	snprintf(buf + n, 512 - n, "%s=%s;", email, why != NULL ? why : "");
	return 0;
}

/* A notice's dry run (q NULL): who and why, nothing queued. */
START_TEST(test_notice_dry_run)
{
	struct campaign_notice_stats ns;
	char names[512] = "";
	int64_t id = 0;

	contact(acme, "a@example.org", news, "", "unknown");
	contact(acme, "s@example.org", news, "", "unknown");
	ck_assert_int_eq(store_contact_ensure(st, acme, "no address", &id,
	    err), 0);
	ck_assert_int_eq(store_suppression_add(st, acme, "s@example.org",
	    "test", pd_now() + 3600, err), 0);
	ck_assert_msg(campaign_notice(cfg, st, NULL, "acme", acme,
	    "privacy-notice", NULL, notice_cb, names, &ns, err) == 0, "%s",
	    err);
	ck_assert_int_eq(ns.total, 3);
	ck_assert_int_eq(ns.queued, 1);
	ck_assert_int_eq(ns.suppressed, 1);
	ck_assert_int_eq(ns.invalid, 1);
	ck_assert_str_eq(names, "a@example.org=;s@example.org=suppressed;"
	    "no address=invalid address;");
	ck_assert_int_eq(sent().n, 0);
	ck_assert_int_eq(store_outbound_list(st, 0, 0, NULL, any_sent_cb,
	    &id, err), 0);
}
END_TEST

/* The true state from the row and the outcomes (campaign_view.c). */
static const struct {
	const char *row;
	struct campaign_outcomes o;
	const char *want;
} states[] = {
	{ "draft", { 0 }, "draft" },
	{ "sending", { .recipients = 3, .pending = 3 }, "sending" },
	{ "sending", { .recipients = 3, .pending = 1, .waiting = 2 },
	    "sending" },
	{ "queued", { .recipients = 3, .waiting = 3 }, "sending" },
	{ "queued", { .recipients = 3, .delivered = 2, .deferred = 1 },
	    "sending" },
	{ "queued", { .recipients = 3, .delivered = 1, .bounced = 1,
	    .failed = 1 }, "sent" },
	{ "queued", { .recipients = 3, .delivered = 2, .skipped = 1 },
	    "sent" },
	{ "queued", { 0 }, "sent" },		/* nobody was eligible */
	{ "sending", { .recipients = 2, .delivered = 2 }, "sent" },
};

START_TEST(test_state_rule)
{
	ck_assert_str_eq(campaign_view_state(states[_i].row, &states[_i].o),
	    states[_i].want);
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
	tcase_add_test(tc, test_age_unknown_explained);
	tcase_add_test(tc, test_dry_run_changes_nothing);
	tcase_add_test(tc, test_notice_dry_run);
	tcase_add_loop_test(tc, test_state_rule, 0, N(states));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(campaign_suite());
}

/*
 * test_eligible.c - eligible.c over every combination of the facts it
 * reads (consent none/granted/withdrawn, suppression none/active/expired,
 * erased or not, adult yes/no/unknown, bounced or not), for a newsletter,
 * a notice and a dossier's mail at each moment, against a table of which
 * rules apply in what order and the reason each gives.  A temp store per
 * test; the facts are written through the store's own functions.
 */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "outbound/eligible.h"
#include "privacy/privacy.h"
#include "store/store.h"
#include "store/store_privacy.h"
#include "testlib.h"
#include "lib/util.h"

#define NCOMBO (3 * 3 * 2 * 3 * 2)

static char tmpdir[256];
static char dbpath[512];
static struct store *st;
static struct pd_config cfg;
static char err[PD_ERRLEN];
static int64_t acct, purpose, campaign;

/* The facts about one address. */
struct facts {
	const char *consent;	/* NULL: no record; "grant"; "withdraw" */
	int supp;		/* 0 none, 1 active, 2 expired */
	int erased;
	const char *adult;	/* "yes", "no", "unknown" */
	int bounced;
};

/*
 * The specification: for each kind and moment, the rules in the order in
 * which the first that fails gives the verdict.  S suppressed, E erased,
 * A adult, C consent, B bounced.
 */
static const struct {
	enum eligible_kind kind;
	enum eligible_when when;
	const char *order;
} orders[] = {
	{ ELIGIBLE_NEWSLETTER, ELIGIBLE_CHOOSE, "ACSBE" },
	{ ELIGIBLE_NEWSLETTER, ELIGIBLE_QUEUE, "S" },
	{ ELIGIBLE_NEWSLETTER, ELIGIBLE_LEAVE, "SEACSB" },
	{ ELIGIBLE_NOTICE, ELIGIBLE_CHOOSE, "SBE" },
	{ ELIGIBLE_NOTICE, ELIGIBLE_QUEUE, "S" },
	{ ELIGIBLE_NOTICE, ELIGIBLE_LEAVE, "SE" },
	{ ELIGIBLE_DOSSIER, ELIGIBLE_CHOOSE, "S" },
	{ ELIGIBLE_DOSSIER, ELIGIBLE_QUEUE, "S" },
	{ ELIGIBLE_DOSSIER, ELIGIBLE_LEAVE, "S" },
};

/* The reasons rows, campaign recipients and logs have always shown. */
static const char *
rule_reason(char rule)
{
	switch (rule) {
	case 'S': return "suppressed";
	case 'E': return "erased subject";
	case 'A': return "not attested adult";
	case 'C': return "consent withdrawn";
	case 'B': return "bounced";
	}
	return "?";
}

static int
rule_fails(char rule, const struct facts *f)
{
	switch (rule) {
	case 'S': return f->supp == 1;
	case 'E': return f->erased;
	case 'A': return strcmp(f->adult, "yes") != 0;
	case 'C': return f->consent == NULL ||
	    strcmp(f->consent, "grant") != 0;
	case 'B': return f->bounced;
	}
	return 1;
}

/* NULL: eligible; else the reason expected. */
static const char *
expected(const char *order, const struct facts *f)
{
	for (; *order != '\0'; order++)
		if (rule_fails(*order, f))
			return rule_reason(*order);
	return NULL;
}

/* Combination i of the five facts. */
static struct facts
combo(int i)
{
	static const char *consent[] = { NULL, "grant", "withdraw" };
	static const char *adult[] = { "yes", "no", "unknown" };
	struct facts f;

	f.consent = consent[i % 3];
	f.supp = (i / 3) % 3;
	f.erased = (i / 9) % 2;
	f.adult = adult[(i / 18) % 3];
	f.bounced = (i / 54) % 2;
	return f;
}

static void
setup(void)
{
	struct store_campaign c;

	tl_tmpdir(tmpdir, sizeof(tmpdir), "eligible");
	snprintf(dbpath, sizeof(dbpath), "%s/postdoc.db", tmpdir);
	st = tl_store_open(dbpath, "full");
	memset(&cfg, 0, sizeof(cfg));
	cfg.var_dir = tmpdir;		/* privacy.c's key: var/keys/ */
	cfg.from_name = cfg.from_addr = (char *)"";	/* notify_identity */
	ck_assert_msg(store_account_add(st, "acme", "any", &acct, err) == 0,
	    "%s", err);
	ck_assert_msg(store_purpose_add(st, acct, "news", &purpose, err) == 0,
	    "%s", err);
	memset(&c, 0, sizeof(c));
	c.account_id = acct;
	c.purpose_id = purpose;
	snprintf(c.tmpl, sizeof(c.tmpl), "newsletter");
	snprintf(c.subject, sizeof(c.subject), "News");
	ck_assert_msg(store_campaign_add(st, &c, &campaign, err) == 0, "%s",
	    err);
}

static void
teardown(void)
{
	store_close(&st);
	tl_rmtree(tmpdir);
}

static void
add_consent(int64_t contact, const char *action)
{
	struct store_consent_rec r;

	memset(&r, 0, sizeof(r));
	r.contact_id = contact;
	r.purpose_id = purpose;
	snprintf(r.action, sizeof(r.action), "%s", action);
	snprintf(r.basis, sizeof(r.basis), "consent");
	snprintf(r.source, sizeof(r.source), "admin");
	ck_assert_msg(store_consent_add(st, acct, &r, NULL, err) == 0, "%s",
	    err);
}

/* A bounced message to email, as outq records one. */
static void
add_bounce(const char *email)
{
	static int n;
	struct store_outbound o;

	memset(&o, 0, sizeof(o));
	o.account_id = acct;
	snprintf(o.kind, sizeof(o.kind), "notice");
	snprintf(o.rcpt, sizeof(o.rcpt), "%s", email);
	snprintf(o.rcpt_domain, sizeof(o.rcpt_domain), "x.example");
	snprintf(o.verp_token, sizeof(o.verp_token), "tok%d", ++n);
	snprintf(o.mail_from, sizeof(o.mail_from), "b-tok%d@b.example", n);
	snprintf(o.message_id, sizeof(o.message_id), "<b%d@x>", n);
	snprintf(o.sha256, sizeof(o.sha256), "%064d", 0);
	snprintf(o.state, sizeof(o.state), "bounced");
	ck_assert_msg(store_outbound_add(st, &o, NULL, err) == 0, "%s", err);
}

static void
add_erased(const char *email)
{
	char h[65];

	ck_assert_msg(privacy_hash(&cfg, email, 1, h, err) == 0, "%s", err);
	ck_assert_msg(store_erased_add(st, acct, h, err) == 0, "%s", err);
}

/* The campaign recipient a queued newsletter's Message-ID names. */
static void
add_recipient(int64_t contact, const char *email, const char *msgid)
{
	sqlite3 *db;
	char *sql;

	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	sql = sqlite3_mprintf("INSERT INTO campaign_recipients (campaign_id,"
	    " contact_id, email, state, message_id, updated) VALUES (%lld,"
	    " %lld, %Q, 'queued', %Q, 1)", (long long)campaign,
	    (long long)contact, email, msgid);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_free(sql);
	sqlite3_close(db);
}

/* A contact at email with facts f, and the recipient row msgid names. */
static int64_t
add_subject(const char *email, const char *msgid, const struct facts *f)
{
	int64_t id = 0, now = pd_now();

	ck_assert_msg(store_contact_ensure(st, acct, email, &id, err) == 0,
	    "%s", err);
	ck_assert_int_eq(store_contact_attest(st, acct, id, f->adult, "test",
	    err), 0);
	if (f->consent != NULL && strcmp(f->consent, "withdraw") == 0)
		add_consent(id, "grant");	/* withdrawn: granted first */
	if (f->consent != NULL)
		add_consent(id, f->consent);
	if (f->supp != 0)
		ck_assert_int_eq(store_suppression_add(st, acct, email,
		    "5.1.1 no such user", f->supp == 1 ? now + 3600 : now - 1,
		    err), 0);
	if (f->erased)
		add_erased(email);
	if (f->bounced)
		add_bounce(email);
	add_recipient(id, email, msgid);
	return id;
}

static int
ask(enum eligible_kind kind, enum eligible_when when, const char *rcpt,
    int64_t contact, const char *msgid, struct eligible_verdict *v)
{
	struct eligible_ask a = { .kind = kind, .when = when,
	    .account_id = acct, .rcpt = rcpt, .now = pd_now() };

	if (kind == ELIGIBLE_NEWSLETTER && when == ELIGIBLE_CHOOSE) {
		a.contact_id = contact;
		a.purpose_id = purpose;
	}
	if (kind == ELIGIBLE_NEWSLETTER && when == ELIGIBLE_LEAVE)
		a.message_id = msgid;
	return eligible_check(&cfg, st, &a, v, err);
}

START_TEST(test_every_combination)
{
	char email[64], msgid[64];
	struct eligible_verdict v;
	int64_t id;
	size_t k;
	int i, rc;

	for (i = 0; i < NCOMBO; i++) {
		struct facts f = combo(i);

		snprintf(email, sizeof(email), "c%d@x.example", i);
		snprintf(msgid, sizeof(msgid), "<n%d@acme.example>", i);
		id = add_subject(email, msgid, &f);
		for (k = 0; k < sizeof(orders) / sizeof(orders[0]); k++) {
			const char *want = expected(orders[k].order, &f);

			rc = ask(orders[k].kind, orders[k].when, email, id,
			    msgid, &v);
			ck_assert_msg(rc == (want == NULL ? 1 : 0),
			    "combo %d order %s: rc %d (%s), want %s", i,
			    orders[k].order, rc, rc < 0 ? err : v.reason ?
			    v.reason : "eligible", want ? want : "eligible");
			if (want != NULL)
				ck_assert_msg(strcmp(v.reason, want) == 0,
				    "combo %d order %s: %s, want %s", i,
				    orders[k].order, v.reason, want);
			else
				ck_assert_ptr_null(v.reason);
		}
	}
}
END_TEST

/* A few verdicts spelt out, so the order above is not only derived. */
START_TEST(test_spelt_out)
{
	static const struct {
		struct facts f;
		enum eligible_kind kind;
		enum eligible_when when;
		const char *want;	/* NULL: eligible */
	} rows[] = {
		{ { "withdraw", 1, 0, "yes", 0 }, ELIGIBLE_NEWSLETTER,
		    ELIGIBLE_CHOOSE, "consent withdrawn" },
		{ { "withdraw", 1, 0, "yes", 0 }, ELIGIBLE_NEWSLETTER,
		    ELIGIBLE_LEAVE, "suppressed" },
		{ { "grant", 0, 1, "no", 0 }, ELIGIBLE_NEWSLETTER,
		    ELIGIBLE_CHOOSE, "not attested adult" },
		{ { "grant", 0, 1, "no", 0 }, ELIGIBLE_NEWSLETTER,
		    ELIGIBLE_LEAVE, "erased subject" },
		{ { "grant", 2, 0, "yes", 0 }, ELIGIBLE_NEWSLETTER,
		    ELIGIBLE_LEAVE, NULL },
		{ { NULL, 0, 0, "unknown", 0 }, ELIGIBLE_NEWSLETTER,
		    ELIGIBLE_CHOOSE, "not attested adult" },
		{ { NULL, 0, 0, "yes", 1 }, ELIGIBLE_NEWSLETTER,
		    ELIGIBLE_CHOOSE, "consent withdrawn" },
		{ { "grant", 0, 0, "yes", 1 }, ELIGIBLE_NEWSLETTER,
		    ELIGIBLE_QUEUE, NULL },
		{ { NULL, 0, 1, "no", 1 }, ELIGIBLE_NOTICE,
		    ELIGIBLE_CHOOSE, "bounced" },
		{ { NULL, 0, 1, "no", 1 }, ELIGIBLE_NOTICE,
		    ELIGIBLE_LEAVE, "erased subject" },
		{ { NULL, 0, 1, "no", 1 }, ELIGIBLE_DOSSIER,
		    ELIGIBLE_LEAVE, NULL },
		{ { NULL, 1, 1, "no", 1 }, ELIGIBLE_DOSSIER,
		    ELIGIBLE_QUEUE, "suppressed" },
	};
	char email[64], msgid[64];
	struct eligible_verdict v;
	size_t i;
	int64_t id;
	int rc;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(email, sizeof(email), "s%zu@x.example", i);
		snprintf(msgid, sizeof(msgid), "<s%zu@acme.example>", i);
		id = add_subject(email, msgid, &rows[i].f);
		rc = ask(rows[i].kind, rows[i].when, email, id, msgid, &v);
		ck_assert_msg(rc == (rows[i].want == NULL),
		    "row %zu: rc %d %s", i, rc, v.reason ? v.reason : "");
		if (rows[i].want != NULL)
			ck_assert_str_eq(v.reason, rows[i].want);
	}
}
END_TEST

/* The queue's refusal names the suppression's own reason and its end. */
START_TEST(test_suppression_detail)
{
	struct eligible_verdict v;
	int64_t until = pd_now() + 7200;

	ck_assert_int_eq(store_suppression_add(st, acct, "S@X.example",
	    "DSN 550 5.1.1 gone", until, err), 0);
	ck_assert_int_eq(ask(ELIGIBLE_DOSSIER, ELIGIBLE_QUEUE, "s@x.EXAMPLE",
	    0, NULL, &v), 0);
	ck_assert_str_eq(v.reason, "suppressed");
	ck_assert_str_eq(v.detail, "DSN 550 5.1.1 gone");
	ck_assert_int_eq(v.until, until);
	ck_assert_int_eq(ask(ELIGIBLE_DOSSIER, ELIGIBLE_QUEUE, "t@x.example",
	    0, NULL, &v), 1);
	ck_assert_ptr_null(v.reason);
	ck_assert_str_eq(v.detail, "");
}
END_TEST

/*
 * A newsletter's contact and purpose: by id when chosen, by Message-ID
 * as it leaves; an unknown one is refused, and once the contact is known
 * the rules look at its address, not at the envelope's.
 */
START_TEST(test_newsletter_contact)
{
	struct eligible_verdict v;
	int64_t id = 0, other_acct = 0, stranger = 0;

	ck_assert_int_eq(store_contact_ensure(st, acct, "fan@x.example", &id,
	    err), 0);
	ck_assert_int_eq(store_contact_attest(st, acct, id, "yes", "t", err),
	    0);
	add_consent(id, "grant");
	add_recipient(id, "fan@x.example", "<fan@acme.example>");
	ck_assert_int_eq(ask(ELIGIBLE_NEWSLETTER, ELIGIBLE_LEAVE,
	    "fan@x.example", 0, "<fan@acme.example>", &v), 1);
	ck_assert_int_eq(ask(ELIGIBLE_NEWSLETTER, ELIGIBLE_LEAVE,
	    "fan@x.example", 0, "<nobody@acme.example>", &v), 0);
	ck_assert_str_eq(v.reason, "no campaign recipient");
	ck_assert_int_eq(store_account_add(st, "other", "any", &other_acct,
	    err), 0);
	ck_assert_int_eq(store_contact_ensure(st, other_acct, "fan@x.example",
	    &stranger, err), 0);
	ck_assert_int_eq(ask(ELIGIBLE_NEWSLETTER, ELIGIBLE_CHOOSE,
	    "fan@x.example", stranger, NULL, &v), 0);
	ck_assert_str_eq(v.reason, "no such contact");
	ck_assert_int_eq(ask(ELIGIBLE_NEWSLETTER, ELIGIBLE_CHOOSE,
	    "fan@x.example", 999999, NULL, &v), 0);
	ck_assert_str_eq(v.reason, "no such contact");
	/* the envelope says another address; the contact's is suppressed */
	ck_assert_int_eq(store_suppression_add(st, acct, "fan@x.example", "t",
	    pd_now() + 60, err), 0);
	ck_assert_int_eq(ask(ELIGIBLE_NEWSLETTER, ELIGIBLE_CHOOSE,
	    "old@x.example", id, NULL, &v), 0);
	ck_assert_str_eq(v.reason, "suppressed");
	ck_assert_int_eq(ask(ELIGIBLE_NEWSLETTER, ELIGIBLE_LEAVE,
	    "old@x.example", 0, "<fan@acme.example>", &v), 0);
	ck_assert_str_eq(v.reason, "suppressed");
	ck_assert_int_eq(ask(ELIGIBLE_NOTICE, ELIGIBLE_LEAVE,
	    "old@x.example", 0, NULL, &v), 1);
}
END_TEST

/*
 * The audience's words (why): finer than the reason, one per fact, and
 * an account whose audience is business contacts (adult_required false,
 * here from its settings row) asks no age, as it is chosen and as it
 * leaves, while the other rules still hold.
 */
START_TEST(test_why_and_business_audience)
{
	static const struct {
		struct facts f;
		int business;		/* adult_required = false */
		const char *why;	/* "": eligible */
	} rows[] = {
		{ { "grant", 0, 0, "unknown", 0 }, 0, "age unknown" },
		{ { "grant", 0, 0, "no", 0 }, 0, "minor" },
		{ { NULL, 0, 0, "yes", 0 }, 0, "no consent" },
		{ { "withdraw", 0, 0, "yes", 0 }, 0, "withdrawn" },
		{ { "grant", 1, 0, "yes", 0 }, 0, "suppressed" },
		{ { "grant", 0, 0, "yes", 1 }, 0, "bounced" },
		{ { "grant", 0, 1, "yes", 0 }, 0, "erased" },
		{ { "grant", 0, 0, "yes", 0 }, 0, "" },
		{ { "grant", 0, 0, "unknown", 0 }, 1, "" },
		{ { "grant", 0, 0, "no", 0 }, 1, "" },
		{ { NULL, 0, 0, "unknown", 0 }, 1, "no consent" },
		{ { "grant", 1, 0, "unknown", 0 }, 1, "suppressed" },
	};
	char email[64], msgid[64];
	struct eligible_verdict v;
	size_t i;
	int64_t id;
	int rc;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ck_assert_int_eq(store_account_setting_set(st, acct,
		    "adult_required", rows[i].business ? "false" : "true", pd_now(),
		    err),
		    0);
		snprintf(email, sizeof(email), "w%zu@x.example", i);
		snprintf(msgid, sizeof(msgid), "<w%zu@acme.example>", i);
		id = add_subject(email, msgid, &rows[i].f);
		rc = ask(ELIGIBLE_NEWSLETTER, ELIGIBLE_CHOOSE, email, id, NULL,
		    &v);
		ck_assert_msg(rc == (rows[i].why[0] == '\0'), "row %zu: %d %s",
		    i, rc, eligible_why_name(v.why));
		ck_assert_str_eq(eligible_why_name(v.why), rows[i].why);
		if (!rows[i].f.erased && rows[i].f.supp == 0)
			ck_assert_int_eq(ask(ELIGIBLE_NEWSLETTER, ELIGIBLE_LEAVE,
			    email, 0, msgid, &v), rows[i].why[0] == '\0');
	}
}
END_TEST

START_TEST(test_kind_of_row)
{
	static const struct {
		const char *kind;
		int64_t dossier;
		enum eligible_kind want;
	} rows[] = {
		{ "newsletter", 0, ELIGIBLE_NEWSLETTER },
		{ "invitation", 7, ELIGIBLE_DOSSIER },
		{ "reminder", 7, ELIGIBLE_DOSSIER },
		{ "receipt", 7, ELIGIBLE_DOSSIER },
		{ "receipt", 0, ELIGIBLE_NOTICE },
		{ "notice", 0, ELIGIBLE_NOTICE },
		{ NULL, 0, ELIGIBLE_NOTICE },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		ck_assert_msg(eligible_kind_of(rows[i].kind, rows[i].dossier) ==
		    rows[i].want, "row %zu", i);
}
END_TEST

static Suite *
eligible_suite(void)
{
	Suite *s = suite_create("eligible");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_every_combination);
	tcase_add_test(tc, test_spelt_out);
	tcase_add_test(tc, test_suppression_detail);
	tcase_add_test(tc, test_newsletter_contact);
	tcase_add_test(tc, test_kind_of_row);
	tcase_add_test(tc, test_why_and_business_audience);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(eligible_suite());
}

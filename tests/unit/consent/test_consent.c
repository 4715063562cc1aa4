/*
 * test_consent.c - the consent ledger's rules (consent.c) and the tokens
 * behind them (unsub.c): a contact's status is its latest record; a
 * repeat of the current status records nothing, so a withdrawal is never
 * refused and never recorded twice in a row; the CSV import's outcome per
 * row; double opt-in queues a confirmation and grants nothing until the
 * request is confirmed, once; a mail to u-<token> withdraws, a forged or
 * misdirected token does not; and which tokens, addresses and CSRF
 * fields are accepted.  Tables, one row per case.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consent/consent.h"
#include "consent/unsub.h"
#include "lib/config.h"
#include "lib/util.h"
#include "outbound/outq.h"
#include "privacy/privacy.h"
#include "store/store.h"
#include "store/store_privacy.h"
#include "testlib.h"

static char tmpdir[256];
static struct pd_config *cfg;
static struct store *st;
static char err[PD_ERRLEN];
static int64_t acme, beta, news, events;

static void
setup(void)
{
	char e[PD_ERRLEN];

	tl_tmpdir(tmpdir, sizeof(tmpdir), "consent");
	ck_assert_msg(config_load(NULL, &cfg, e, sizeof(e)) == 0, "%s", e);
	free(cfg->var_dir);
	cfg->var_dir = xasprintf("%s/var", tmpdir);
	free(cfg->db_path);
	cfg->db_path = xasprintf("%s/postdoc.db", tmpdir);
	free(cfg->template_dir);
	cfg->template_dir = xstrdup(TOP_SRCDIR "/templates");
	free(cfg->web_list_domain);
	cfg->web_list_domain = xstrdup("list.example");
	st = tl_store_open(cfg->db_path, "normal");
	ck_assert_msg(store_account_add(st, "acme", "any", &acme, err) == 0,
	    "%s", err);
	ck_assert_msg(store_account_add(st, "beta", "any", &beta, err) == 0,
	    "%s", err);
	ck_assert_msg(store_purpose_add(st, acme, "newsletter", &news, err)
	    == 0, "%s", err);
	ck_assert_msg(store_purpose_add(st, acme, "events", &events, err)
	    == 0, "%s", err);
}

static void
teardown(void)
{
	store_close(&st);
	config_free(&cfg);
	tl_rmtree(tmpdir);
}

static int64_t
contact(int64_t account_id, const char *email)
{
	int64_t id = 0;

	ck_assert_msg(store_contact_ensure(st, account_id, email, &id, err)
	    == 0, "%s", err);
	return id;
}

/* "grant", "withdraw" or "" (no record) for (contact, purpose). */
static const char *
status(int64_t cid, int64_t pid)
{
	static char cur[12];
	int rc;

	cur[0] = '\0';
	rc = store_consent_latest(st, cid, pid, cur, sizeof(cur), err);
	ck_assert_msg(rc >= 0, "%s", err);
	return rc == 1 ? cur : "";
}

/* The ledger of a contact as one letter a record: "gwg". */
struct ledger {
	char seq[64];
	size_t n;
};

static int
ledger_cb(const struct store_consent_rec *r, void *ctx)
{
	struct ledger *l = ctx;

	if (l->n + 1 < sizeof(l->seq))
		l->seq[l->n++] = r->action[0];
	l->seq[l->n] = '\0';
	return 0;
}

static const char *
ledger(int64_t account_id, int64_t cid)
{
	static struct ledger l;

	memset(&l, 0, sizeof(l));
	ck_assert_msg(store_consent_list(st, account_id, cid, ledger_cb, &l,
	    err) == 0, "%s", err);
	return l.seq;
}

static int
apply(int64_t cid, int64_t pid, char action)
{
	struct consent_act a = { .action = action == 'g' ? "grant" :
	    "withdraw", .basis = "consent", .source = "form" };

	return consent_apply(st, acme, cid, pid, &a, err);
}

/* ---- status from the latest record; no repeats ---- */

static const struct {
	const char *acts;	/* g grant, w withdraw, in order */
	const char *rcs;	/* consent_apply's answer to each: 1 or 0 */
	const char *ledger;	/* what was recorded */
	const char *status;	/* the latest record, "" none */
} seqs[] = {
	{ "", "", "", "" },
	{ "g", "1", "g", "grant" },
	{ "w", "0", "", "" },		/* nothing to withdraw: not refused */
	{ "gg", "10", "g", "grant" },
	{ "gw", "11", "gw", "withdraw" },
	{ "gww", "110", "gw", "withdraw" },
	{ "gwg", "111", "gwg", "grant" },
	{ "gwgw", "1111", "gwgw", "withdraw" },
	{ "wg", "01", "g", "grant" },
	{ "wwgg", "0010", "g", "grant" },
	{ "ggwwgw", "101011", "gwgw", "withdraw" },
};

START_TEST(test_sequences)
{
	int64_t cid = contact(acme, "a@example.org");
	const char *acts = seqs[_i].acts;
	size_t k;
	char rcs[16] = "";
	const char *l;

	for (k = 0; acts[k] != '\0'; k++) {
		int rc = apply(cid, news, acts[k]);

		/* a withdrawal is never refused (-1), whatever came before */
		ck_assert_msg(rc == 0 || rc == 1, "%s: %s", acts, err);
		rcs[k] = (char)('0' + rc);
	}
	rcs[k] = '\0';
	ck_assert_msg(strcmp(rcs, seqs[_i].rcs) == 0, "%s: answers %s, want %s",
	    acts, rcs, seqs[_i].rcs);
	l = ledger(acme, cid);
	ck_assert_msg(strcmp(l, seqs[_i].ledger) == 0,
	    "%s: ledger %s, want %s", acts, l, seqs[_i].ledger);
	for (k = 1; l[k] != '\0'; k++)
		ck_assert_msg(l[k] != l[k - 1], "%s: %c twice in a row", acts,
		    l[k]);
	ck_assert_str_eq(status(cid, news), seqs[_i].status);
	/* one purpose's history says nothing about another's */
	ck_assert_str_eq(status(cid, events), "");
}
END_TEST

/* ---- CSV import: the outcome of each row ---- */

static const struct {
	const char *csv;
	unsigned rows, imported, unchanged, bad;
	const char *report;	/* substring of the report, "" = empty */
	const char *email;	/* then this contact's state, or NULL */
	const char *adult;
} imports[] = {
	{ "", 0, 0, 0, 0, "", NULL, NULL },
	{ "a@example.org\n", 1, 1, 0, 0, "", "a@example.org", "unknown" },
	/* a header names the columns; addresses are lower-cased */
	{ "email,adult\r\nA@Example.ORG,yes\r\n", 1, 1, 0, 0, "",
	    "a@example.org", "yes" },
	{ "Email,name,Adult\nb@example.org,Bee,no\n", 1, 1, 0, 0, "",
	    "b@example.org", "no" },
	/* without a header the second column is the attestation */
	{ "\"c@example.org\",yes\n", 1, 1, 0, 0, "", "c@example.org", "yes" },
	/* a header without adult: the second column is not read */
	{ "email,name\nd@example.org,yes\n", 1, 1, 0, 0, "", "d@example.org",
	    "unknown" },
	/* an attestation that is not a word we know refuses the row */
	{ "e@example.org,maybe\n", 1, 0, 0, 1, "line 1: adult is yes, no, "
	    "true, false, 1, 0, oui, non or unknown, not \"maybe\": refused",
	    NULL, NULL },
	{ "email,adult\ne@example.org,\n", 1, 0, 0, 1, "line 2: adult is",
	    NULL, NULL },
	/* the words, in any case */
	{ "e@example.org,TRUE\n", 1, 1, 0, 0, "", "e@example.org", "yes" },
	{ "e@example.org,Non\n", 1, 1, 0, 0, "", "e@example.org", "no" },
	{ "e@example.org,0\n", 1, 1, 0, 0, "", "e@example.org", "no" },
	{ "e@example.org,1\n", 1, 1, 0, 0, "", "e@example.org", "yes" },
	{ "e@example.org,\"Oui\"\n", 1, 1, 0, 0, "", "e@example.org",
	    "yes" },
	{ "e@example.org,False\n", 1, 1, 0, 0, "", "e@example.org", "no" },
	/* a French spreadsheet's ';', a TSV's tab: found from the header */
	{ "email;adult\nf@example.org;oui\n", 1, 1, 0, 0, "",
	    "f@example.org", "yes" },
	{ "Email\tNom\tAdult\nf@example.org\tF, G\tnon\n", 1, 1, 0, 0, "",
	    "f@example.org", "no" },
	/* ...and without a header, from the first row */
	{ "f@example.org;yes\ng@example.org;no\n", 2, 2, 0, 0, "",
	    "g@example.org", "no" },
	/* a separator inside quotes does not count */
	{ "email,\"a;b;c;d\",adult\nf@example.org,\"x;y\",yes\n", 1, 1, 0,
	    0, "", "f@example.org", "yes" },
	{ "not-an-address\n", 1, 0, 0, 1,
	    "line 1: bad address \"not-an-address\": refused", NULL, NULL },
	{ "a@b@example.org\nf@example.org\n", 2, 1, 0, 1,
	    "line 1: bad address", "f@example.org", "unknown" },
	{ "email\n,yes\n", 1, 0, 0, 1, "line 2: bad address \"\"", NULL, NULL },
	/* blank lines are not rows */
	{ "\n\ng@example.org\n\n", 1, 1, 0, 0, "", "g@example.org", NULL },
	/* the same address twice: granted once */
	{ "h@example.org\nH@example.org\n", 2, 1, 1, 0, "", "h@example.org",
	    NULL },
	/* already granted before the import (see test_import) */
	{ "granted@example.org\n", 1, 0, 1, 0, "", "granted@example.org",
	    NULL },
	/* withdrawn before: the import grants again */
	{ "withdrawn@example.org\n", 1, 1, 0, 0, "", "withdrawn@example.org",
	    NULL },
};

START_TEST(test_import)
{
	struct consent_act a = { .action = "grant", .basis = "consent",
	    .source = "import", .operator_ = "op" };
	struct consent_import_stats s;
	struct store_contact c;
	char csv[600], *rep = NULL;
	size_t replen = 0;
	FILE *f, *report;
	int64_t g = contact(acme, "granted@example.org");
	int64_t w = contact(acme, "withdrawn@example.org");

	ck_assert_int_eq(apply(g, news, 'g'), 1);
	ck_assert_int_eq(apply(w, news, 'g'), 1);
	ck_assert_int_eq(apply(w, news, 'w'), 1);
	snprintf(csv, sizeof(csv), "%s/in.csv", tmpdir);
	f = fopen(csv, "w");
	ck_assert_ptr_nonnull(f);
	fputs(imports[_i].csv, f);
	fclose(f);
	report = open_memstream(&rep, &replen);
	ck_assert_msg(consent_import(cfg, st, acme, news, csv, &a, report, &s,
	    err) == 0, "%s", err);
	fclose(report);
	ck_assert_uint_eq(s.rows, imports[_i].rows);
	ck_assert_uint_eq(s.imported, imports[_i].imported);
	ck_assert_uint_eq(s.unchanged, imports[_i].unchanged);
	ck_assert_uint_eq(s.bad, imports[_i].bad);
	if (imports[_i].report[0] == '\0')
		ck_assert_msg(replen == 0, "report: %s", rep);
	else
		ck_assert_msg(strstr(rep, imports[_i].report) != NULL,
		    "report: %s", rep);
	free(rep);
	if (imports[_i].email == NULL)
		return;
	ck_assert_int_eq(store_contact_find(st, acme, imports[_i].email, &c,
	    err), 1);
	ck_assert_str_eq(status(c.id, news), "grant");
	if (imports[_i].adult != NULL)
		ck_assert_str_eq(c.adult, imports[_i].adult);
}
END_TEST

/* A long line is reported and skipped; the rows after it still count. */
START_TEST(test_import_long_line)
{
	struct consent_act a = { .action = "grant", .basis = "consent",
	    .source = "import" };
	struct consent_import_stats s;
	char csv[600], *rep = NULL;
	size_t replen = 0;
	FILE *f, *report;
	int i;

	snprintf(csv, sizeof(csv), "%s/in.csv", tmpdir);
	f = fopen(csv, "w");
	ck_assert_ptr_nonnull(f);
	for (i = 0; i < 5000; i++)
		fputc('x', f);
	fputs("@example.org\nok@example.org\n", f);
	fclose(f);
	report = open_memstream(&rep, &replen);
	ck_assert_msg(consent_import(cfg, st, acme, news, csv, &a, report, &s,
	    err) == 0, "%s", err);
	fclose(report);
	ck_assert_uint_eq(s.rows, 2);
	ck_assert_uint_eq(s.bad, 1);
	ck_assert_uint_eq(s.imported, 1);
	ck_assert_msg(strstr(rep, "line 1: too long: refused") != NULL, "%s",
	    rep);
	free(rep);
}
END_TEST

/* ---- an erased address is not granted again silently ---- */

static const struct {
	char where;		/* erased in: a acme, b beta, * every account */
	int reconsent, import;
	int gate;		/* consent_erased_gate: 1 go on, 0 refused */
	int acme_after, beta_after;	/* still erased there afterwards */
} erased[] = {
	{ 'a', 0, 0, 0, 1, 0 },
	{ 'a', 0, 1, 0, 1, 0 },
	{ '*', 0, 0, 0, 1, 1 },
	{ 'a', 1, 0, 1, 0, 0 },
	{ 'a', 1, 1, 1, 0, 0 },
	/* one account's re-consent leaves every other account blocked */
	{ '*', 1, 0, 1, 0, 1 },
	{ '*', 1, 1, 1, 0, 1 },
	/* erased elsewhere: nothing to refuse, nothing lifted */
	{ 'b', 0, 0, 1, 0, 1 },
	{ 'b', 0, 1, 1, 0, 1 },
};

static int
method_cb(const struct store_consent_rec *r, void *ctx)
{
	snprintf(ctx, 64, "%s", r->method);
	return 0;
}

static int
erased_import(int reconsent, unsigned *bad_r, char **rep)
{
	struct consent_act a = { .action = "grant", .basis = "consent",
	    .source = "import", .operator_ = "op", .account = "acme",
	    .reconsent = reconsent };
	struct consent_import_stats s;
	size_t replen = 0;
	char csv[600];
	FILE *f, *report;

	snprintf(csv, sizeof(csv), "%s/in.csv", tmpdir);
	f = fopen(csv, "w");
	ck_assert_ptr_nonnull(f);
	fputs("email;adult\nok@example.org;oui\nGone@example.org;oui\n", f);
	fclose(f);
	report = open_memstream(rep, &replen);
	ck_assert_msg(consent_import(cfg, st, acme, news, csv, &a, report, &s,
	    err) == 0, "%s", err);
	fclose(report);
	*bad_r = s.bad;
	return s.imported;
}

START_TEST(test_erased)
{
	struct consent_act a = { .action = "grant", .basis = "consent",
	    .source = "admin", .operator_ = "op", .account = "acme" };
	char h[65], hash[65], why[400], method[64] = "", *rep = NULL;
	int64_t where = erased[_i].where == 'a' ? acme :
	    erased[_i].where == 'b' ? beta : 0, cid;
	unsigned bad;
	int rc;

	ck_assert_msg(privacy_hash(cfg, "gone@example.org", 1, h, err) == 0,
	    "%s", err);
	ck_assert_int_eq(store_erased_add(st, where, h, err), 0);
	rc = consent_erased_gate(cfg, st, acme, "gone@example.org",
	    erased[_i].reconsent, hash, why, sizeof(why), err);
	ck_assert_int_eq(rc, erased[_i].gate);
	if (rc == 0)
		ck_assert_msg(strstr(why, "gone@example.org was erased on 20")
		    != NULL, "%s", why);
	if (erased[_i].import) {
		rc = erased_import(erased[_i].reconsent, &bad, &rep);
		ck_assert_int_eq(rc, 1 + erased[_i].gate);
		ck_assert_uint_eq(bad, 1 - erased[_i].gate);
		if (!erased[_i].gate)
			ck_assert_msg(strstr(rep, "line 3: gone@example.org was "
			    "erased on") != NULL, "%s", rep);
		free(rep);
	} else if (rc == 1) {
		cid = contact(acme, "gone@example.org");
		a.lift_hash = hash[0] != '\0' ? hash : NULL;
		ck_assert_int_eq(consent_apply(st, acme, cid, news, &a, err), 1);
	}
	ck_assert_int_eq(store_erased_has(st, acme, h, err),
	    erased[_i].acme_after);
	ck_assert_int_eq(store_erased_has(st, beta, h, err),
	    erased[_i].beta_after);
	if (erased[_i].gate && erased[_i].where != 'b') {
		int64_t id = 0;

		ck_assert_int_eq(store_contact_ensure(st, acme,
		    "gone@example.org", &id, err), 0);
		ck_assert_int_eq(store_consent_list(st, acme, id, method_cb,
		    method, err), 0);
		ck_assert_msg(strncmp(method, "reconsent", 9) == 0, "%s",
		    method);
	}
}
END_TEST

/* ---- double opt-in ---- */

START_TEST(test_double_opt_in)
{
	struct store_consent_req req;
	struct store_outbound o;
	struct store_contact c;
	struct unsub_token t;
	struct outq_ctx *q;
	struct consent_act a = { .action = "grant", .basis = "consent",
	    .source = "double_opt_in" };
	char b64[UNSUB_TOKEN_MAX];
	int64_t oid = 0;
	int k;
	struct consent_optin in = { .account = "acme", .account_id = acme,
	    .email = "new@example.org", .purpose = "newsletter",
	    .purpose_id = news, .locale = "fr" };

	ck_assert_msg(outq_ctx_new(cfg, NULL, &q, err) == 0, "%s", err);
	ck_assert_msg(consent_request(cfg, st, q, &in, &oid, err) == 0, "%s",
	    err);
	outq_ctx_free(&q);
	/* a confirmation mail is queued, and nothing is granted yet */
	ck_assert_int_eq(store_outbound_get(st, acme, oid, &o, err), 1);
	ck_assert_str_eq(o.kind, "consent-request");
	ck_assert_str_eq(o.rcpt, "new@example.org");
	ck_assert_str_eq(o.state, "queued");
	ck_assert_int_eq(store_contact_find(st, acme, "new@example.org", &c,
	    err), 1);
	ck_assert_str_eq(c.locale, "fr");	/* the reader's language, kept */
	ck_assert_str_eq(c.adult, "unknown");
	ck_assert_str_eq(status(c.id, news), "");
	ck_assert_int_eq(store_consent_req_get(st, 1, &req, err), 1);
	ck_assert_int_eq(req.contact_id, c.id);
	ck_assert_int_eq(req.purpose_id, news);
	ck_assert_int_eq(req.confirmed, 0);
	/* its link carries a confirm token: never valid as an unsubscribe */
	ck_assert_msg(unsub_token_make(cfg, UNSUB_T_CONFIRM, acme, req.id,
	    news, b64, NULL, err) == 0, "%s", err);
	ck_assert_int_eq(unsub_token_parse(b64, &t), 1);
	ck_assert_int_eq(unsub_token_check(cfg, UNSUB_T_CONFIRM, acme, &t), 1);
	ck_assert_int_eq(unsub_token_check(cfg, UNSUB_T_UNSUB, acme, &t), 0);
	/* a stale link grants nothing and is not used up */
	ck_assert_int_eq(consent_confirm(st, &req, "192.0.2.1", "ua", 1,
	    req.created + CONSENT_REQUEST_TTL + 1, err), CONSENT_EXPIRED);
	ck_assert_str_eq(status(c.id, news), "");
	/* the link clicked twice: confirmed and granted once; the reader
	 * confirmed being an adult, recorded with the grant */
	for (k = 0; k < 2; k++)
		ck_assert_msg(consent_confirm(st, &req, "192.0.2.1", "ua", 1,
		    pd_now(), err) == (k == 0 ? 1 : 0), "click %d: %s", k, err);
	ck_assert_str_eq(ledger(acme, c.id), "g");
	ck_assert_int_eq(store_contact_find(st, acme, "new@example.org", &c,
	    err), 1);
	ck_assert_str_eq(c.adult, "yes");
	ck_assert_str_eq(c.adult_by, "double_opt_in request 1");
	ck_assert_str_eq(status(c.id, news), "grant");
	/* after a withdrawal, the old link clicked again grants nothing */
	a.action = "withdraw";
	ck_assert_int_eq(consent_apply(st, acme, c.id, news, &a, err), 1);
	ck_assert_int_eq(consent_confirm(st, &req, "192.0.2.1", "ua", 0,
	    pd_now(), err), 0);
	ck_assert_str_eq(status(c.id, news), "withdraw");
}
END_TEST

/* ---- the mailto: withdrawal ---- */

enum tok_kind {
	TK_VALID, TK_VALID_B64, TK_VALID_UPPER, TK_OTHER_PURPOSE, TK_FORGED,
	TK_CONFIRM, TK_OTHER_ACCOUNT, TK_NO_CONTACT, TK_GARBAGE
};

static const struct {
	const char *name;
	enum tok_kind kind;
	int rc;			/* consent_unsub_mail */
	const char *news;	/* then the newsletter's status */
	const char *events;	/* and the events purpose's */
} mails[] = {
	{ "valid", TK_VALID, 1, "withdraw", "grant" },
	{ "valid, URL form", TK_VALID_B64, 1, "withdraw", "grant" },
	{ "valid, upper case", TK_VALID_UPPER, 1, "withdraw", "grant" },
	{ "other purpose", TK_OTHER_PURPOSE, 1, "grant", "withdraw" },
	{ "forged MAC", TK_FORGED, 0, "grant", "grant" },
	{ "confirm token", TK_CONFIRM, 0, "grant", "grant" },
	{ "other account", TK_OTHER_ACCOUNT, 0, "grant", "grant" },
	{ "no such contact", TK_NO_CONTACT, 0, "grant", "grant" },
	{ "not a token", TK_GARBAGE, 0, "grant", "grant" },
};

static void
mail_token(enum tok_kind k, int64_t cid, char out[UNSUB_TOKEN_MAX])
{
	char b64[UNSUB_TOKEN_MAX], b32[UNSUB_TOKEN_MAX];
	enum unsub_type type = k == TK_CONFIRM ? UNSUB_T_CONFIRM :
	    UNSUB_T_UNSUB;
	int64_t a = k == TK_OTHER_ACCOUNT ? beta : acme;
	int64_t id = k == TK_NO_CONTACT ? cid + 1000 : cid;
	size_t i;

	ck_assert_msg(unsub_token_make(cfg, type, a, id, k == TK_OTHER_PURPOSE
	    ? events : news, b64, b32, err) == 0, "%s", err);
	snprintf(out, UNSUB_TOKEN_MAX, "%s", k == TK_VALID_B64 ? b64 : b32);
	if (k == TK_VALID_UPPER)
		for (i = 0; out[i] != '\0'; i++)
			if (out[i] >= 'a' && out[i] <= 'z')
				out[i] = (char)(out[i] - 'a' + 'A');
	if (k == TK_FORGED)	/* the MAC's first 5 bits */
		out[28] = out[28] == 'a' ? 'b' : 'a';
	if (k == TK_GARBAGE)
		snprintf(out, UNSUB_TOKEN_MAX, "unsubscribe-me-please");
}

START_TEST(test_unsub_mail)
{
	int64_t cid = contact(acme, "sub@example.org");
	char tok[UNSUB_TOKEN_MAX], before[64];
	int rc;

	ck_assert_int_eq(apply(cid, news, 'g'), 1);
	ck_assert_int_eq(apply(cid, events, 'g'), 1);
	mail_token(mails[_i].kind, cid, tok);
	rc = consent_unsub_mail(cfg, st, tok, "192.0.2.1", err);
	ck_assert_msg(rc == mails[_i].rc, "%s: %d (%s)", mails[_i].name, rc,
	    err);
	ck_assert_str_eq(status(cid, news), mails[_i].news);
	ck_assert_str_eq(status(cid, events), mails[_i].events);
	/* the same mail again (a retry): still done, nothing recorded */
	snprintf(before, sizeof(before), "%s", ledger(acme, cid));
	ck_assert_int_eq(consent_unsub_mail(cfg, st, tok, "192.0.2.1", err),
	    mails[_i].rc);
	ck_assert_str_eq(ledger(acme, cid), before);
}
END_TEST

/* ---- tokens ---- */

enum tok_edit {
	TE_NONE, TE_B32, TE_B32_UPPER, TE_MAC_LAST, TE_MAC_FIRST, TE_KID,
	TE_ID, TE_TRUNCATE, TE_EXTEND, TE_NOT_B64, TE_PADDED, TE_LEFTOVER,
	TE_EMPTY, TE_ID_ZERO
};

static const struct {
	const char *name;
	enum tok_edit edit;
	enum unsub_type check_as;
	int64_t account_delta;	/* checked for account + delta */
	int parse, check;
} toks[] = {
	{ "valid", TE_NONE, UNSUB_T_UNSUB, 0, 1, 1 },
	{ "valid, base32", TE_B32, UNSUB_T_UNSUB, 0, 1, 1 },
	{ "valid, base32 upper case", TE_B32_UPPER, UNSUB_T_UNSUB, 0, 1, 1 },
	{ "other account", TE_NONE, UNSUB_T_UNSUB, 1, 1, 0 },
	{ "account 0", TE_NONE, UNSUB_T_UNSUB, -1, 1, 0 },
	{ "wrong purpose (a confirm)", TE_NONE, UNSUB_T_CONFIRM, 0, 1, 0 },
	{ "tampered MAC, last byte", TE_MAC_LAST, UNSUB_T_UNSUB, 0, 1, 0 },
	{ "tampered MAC, first byte", TE_MAC_FIRST, UNSUB_T_UNSUB, 0, 1, 0 },
	{ "wrong kid", TE_KID, UNSUB_T_UNSUB, 0, 1, 0 },
	{ "other contact id", TE_ID, UNSUB_T_UNSUB, 0, 1, 0 },
	{ "truncated", TE_TRUNCATE, UNSUB_T_UNSUB, 0, 0, 0 },
	{ "one char too many", TE_EXTEND, UNSUB_T_UNSUB, 0, 0, 0 },
	{ "not base64url", TE_NOT_B64, UNSUB_T_UNSUB, 0, 0, 0 },
	{ "standard base64 padding", TE_PADDED, UNSUB_T_UNSUB, 0, 0, 0 },
	{ "base32 leftover bit set", TE_LEFTOVER, UNSUB_T_UNSUB, 0, 0, 0 },
	{ "empty", TE_EMPTY, UNSUB_T_UNSUB, 0, 0, 0 },
	{ "id 0", TE_ID_ZERO, UNSUB_T_UNSUB, 0, 0, 0 },
};

START_TEST(test_tokens)
{
	char b64[UNSUB_TOKEN_MAX], b32[UNSUB_TOKEN_MAX], s[UNSUB_TOKEN_MAX + 2];
	struct unsub_token t;
	int64_t id = toks[_i].edit == TE_ID_ZERO ? 0 : 42;
	size_t i, n;

	ck_assert_msg(unsub_token_make(cfg, UNSUB_T_UNSUB, acme, id, news, b64,
	    b32, err) == 0, "%s", err);
	ck_assert_uint_eq(strlen(b64), UNSUB_B64_LEN);
	ck_assert_uint_eq(strlen(b32), UNSUB_B32_LEN);
	snprintf(s, sizeof(s), "%s", b64);
	n = strlen(s);
	switch (toks[_i].edit) {
	case TE_B32:
		snprintf(s, sizeof(s), "%s", b32);
		break;
	case TE_B32_UPPER:
		for (i = 0; b32[i] != '\0'; i++)
			s[i] = (char)(b32[i] >= 'a' && b32[i] <= 'z' ?
			    b32[i] - 'a' + 'A' : b32[i]);
		s[i] = '\0';
		break;
	case TE_MAC_LAST:	/* 44 chars, 264 bits: all of the MAC's last */
		s[n - 2] = s[n - 2] == 'A' ? 'B' : 'A';
		break;
	case TE_MAC_FIRST:
		s[23] = s[23] == 'A' ? 'B' : 'A';
		break;
	case TE_KID:		/* first 6 bits of the kid byte */
		s[0] = s[0] == 'A' ? 'B' : 'A';
		break;
	case TE_ID:		/* inside the id */
		s[9] = s[9] == 'A' ? 'B' : 'A';
		break;
	case TE_TRUNCATE:
		s[n - 1] = '\0';
		break;
	case TE_EXTEND:
		s[n] = 'A';
		s[n + 1] = '\0';
		break;
	case TE_NOT_B64:
		s[5] = '+';
		break;
	case TE_PADDED:
		s[n - 1] = '=';
		break;
	case TE_LEFTOVER: {
		/* base32: 53 chars carry 265 bits for 264, the last one zero;
		 * setting it decodes to the same bytes, and is refused so
		 * that a token has one spelling */
		const char *abc = "abcdefghijklmnopqrstuvwxyz234567";
		size_t p;

		snprintf(s, sizeof(s), "%s", b32);
		n = strlen(s);
		p = (size_t)(strchr(abc, s[n - 1]) - abc);
		ck_assert_uint_eq(p % 2, 0);
		s[n - 1] = abc[p + 1];
		break;
	}
	case TE_EMPTY:
		s[0] = '\0';
		break;
	default:
		break;
	}
	ck_assert_msg(unsub_token_parse(s, &t) == toks[_i].parse,
	    "%s: parse %s", toks[_i].name, s);
	if (!toks[_i].parse)
		return;
	ck_assert_msg(unsub_token_check(cfg, toks[_i].check_as,
	    toks[_i].account_delta < 0 ? 0 : acme + toks[_i].account_delta,
	    &t) == toks[_i].check, "%s: check", toks[_i].name);
	if (toks[_i].check) {
		char back[UNSUB_TOKEN_MAX];

		ck_assert_int_eq(t.id, id);
		ck_assert_int_eq(t.purpose_id, news);
		unsub_token_b64(&t, back);
		ck_assert_str_eq(back, b64);
	}
}
END_TEST

/* Old keys stay valid after a rotation; a new token uses the new kid. */
START_TEST(test_key_rotation)
{
	char old[UNSUB_TOKEN_MAX], cur[UNSUB_TOKEN_MAX];
	struct unsub_token t;

	cfg->web_unsub_kid = 1;
	ck_assert_msg(unsub_token_make(cfg, UNSUB_T_UNSUB, acme, 7, news, old,
	    NULL, err) == 0, "%s", err);
	cfg->web_unsub_kid = 2;
	ck_assert_msg(unsub_token_make(cfg, UNSUB_T_UNSUB, acme, 7, news, cur,
	    NULL, err) == 0, "%s", err);
	ck_assert_str_ne(old, cur);
	ck_assert_int_eq(unsub_token_parse(old, &t), 1);
	ck_assert_uint_eq(t.kid, 1);
	ck_assert_int_eq(unsub_token_check(cfg, UNSUB_T_UNSUB, acme, &t), 1);
	ck_assert_int_eq(unsub_token_parse(cur, &t), 1);
	ck_assert_uint_eq(t.kid, 2);
	ck_assert_int_eq(unsub_token_check(cfg, UNSUB_T_UNSUB, acme, &t), 1);
}
END_TEST

/* ---- the u-<token> address ---- */

static const struct {
	const char *local_prefix;	/* before the token */
	int token_len;			/* chars of the token used */
	const char *domain;
	int ok;
} addrs[] = {
	{ "u-", UNSUB_B32_LEN, "list.example", 1 },
	{ "U-", UNSUB_B32_LEN, "LIST.Example", 1 },
	{ "u-", UNSUB_B32_LEN, "other.example", 0 },
	{ "u-", UNSUB_B32_LEN, "sub.list.example", 0 },
	{ "x-", UNSUB_B32_LEN, "list.example", 0 },
	{ "uu-", UNSUB_B32_LEN, "list.example", 0 },
	{ "u-", UNSUB_B32_LEN - 1, "list.example", 0 },
	{ "u-", 0, "list.example", 0 },
};

START_TEST(test_unsub_addr)
{
	char b32[UNSUB_TOKEN_MAX], addr[256], tok[UNSUB_TOKEN_MAX], up[80];
	size_t i;

	ck_assert_msg(unsub_token_make(cfg, UNSUB_T_UNSUB, acme, 5, news, NULL,
	    b32, err) == 0, "%s", err);
	ck_assert_str_eq(unsub_list_domain(cfg), "list.example");
	snprintf(up, sizeof(up), "%.*s", addrs[_i].token_len, b32);
	if (addrs[_i].local_prefix[0] == 'U')	/* upper-case token too */
		for (i = 0; up[i] != '\0'; i++)
			if (up[i] >= 'a' && up[i] <= 'z')
				up[i] = (char)(up[i] - 'a' + 'A');
	snprintf(addr, sizeof(addr), "%s%s@%s", addrs[_i].local_prefix, up,
	    addrs[_i].domain);
	ck_assert_msg(unsub_addr_token(addr, unsub_list_domain(cfg), tok,
	    sizeof(tok)) == addrs[_i].ok, "%s", addr);
	if (addrs[_i].ok)
		ck_assert_str_eq(tok, b32);	/* lower case */
}
END_TEST

/* ---- CSRF fields of the preference centre ---- */

static const struct {
	const char *name;
	int64_t made_at;	/* relative to now */
	const char *action;	/* checked for */
	const char *purpose;	/* checked for */
	int tamper;
	int ok;
} csrfs[] = {
	{ "fresh", 0, "grant", "newsletter", 0, 1 },
	{ "five minutes old", -300, "grant", "newsletter", 0, 1 },
	{ "an hour old (minutes, not hours)", -3600, "grant", "newsletter",
	    0, 0 },
	{ "at the limit", -UNSUB_CSRF_TTL, "grant", "newsletter", 0, 1 },
	{ "expired", -UNSUB_CSRF_TTL - 1, "grant", "newsletter", 0, 0 },
	{ "a minute ahead (clock skew)", 60, "grant", "newsletter", 0, 1 },
	{ "from the future", 61, "grant", "newsletter", 0, 0 },
	{ "other purpose", 0, "grant", "events", 0, 0 },
	{ "other action", 0, "withdraw", "newsletter", 0, 0 },
	{ "tampered", 0, "grant", "newsletter", 1, 0 },
};

START_TEST(test_csrf)
{
	const char *tok = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	char f[UNSUB_CSRF_MAX];
	int64_t now = 1700000000;
	size_t n;

	ck_assert_int_eq(unsub_csrf_make(cfg, tok, "grant", "newsletter",
	    now + csrfs[_i].made_at, f), 0);
	if (csrfs[_i].tamper) {
		n = strlen(f);
		f[n - 1] = f[n - 1] == 'A' ? 'B' : 'A';
	}
	ck_assert_msg(unsub_csrf_check(cfg, tok, csrfs[_i].action,
	    csrfs[_i].purpose, f, now) == csrfs[_i].ok, "%s: %s",
	    csrfs[_i].name, f);
	ck_assert_int_eq(unsub_csrf_check(cfg, "other", "grant", "newsletter",
	    f, now), 0);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
consent_suite(void)
{
	Suite *s = suite_create("consent");
	TCase *tl = tcase_create("ledger");
	TCase *tt = tcase_create("tokens");

	tcase_add_checked_fixture(tl, setup, teardown);
	tcase_add_loop_test(tl, test_sequences, 0, N(seqs));
	tcase_add_loop_test(tl, test_import, 0, N(imports));
	tcase_add_test(tl, test_import_long_line);
	tcase_add_loop_test(tl, test_erased, 0, N(erased));
	tcase_add_test(tl, test_double_opt_in);
	tcase_add_loop_test(tl, test_unsub_mail, 0, N(mails));
	suite_add_tcase(s, tl);
	tcase_add_checked_fixture(tt, setup, teardown);
	tcase_add_loop_test(tt, test_tokens, 0, N(toks));
	tcase_add_test(tt, test_key_rotation);
	tcase_add_loop_test(tt, test_unsub_addr, 0, N(addrs));
	tcase_add_loop_test(tt, test_csrf, 0, N(csrfs));
	suite_add_tcase(s, tt);
	return s;
}

int
main(void)
{
	return tl_run(consent_suite());
}

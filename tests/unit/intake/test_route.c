/*
 * test_route.c - the routing table of route.c, as RCPT and the mailbox
 * host see it: addresses (and envelope senders, and what the transaction
 * already holds) to an outcome and its reply code.  A temp store holds
 * three accounts (sender policies any, contact, domains), an open and a
 * closed dossier, an outbound message with its VERP token and a contact
 * with an unsubscribe token made under a key in the temp var/keys.  The
 * open dossiers have an item "id-card": its address d-<token>+id-card
 * routes like the plain one, with the item.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "consent/unsub.h"
#include "intake/route.h"
#include "store/store.h"
#include "testlib.h"
#include "lib/util.h"

#define VERP_OK "0123456789abcdef0123"
#define VERP_FORGED "fedcba98765432100123"

static char tmpdir[256];
static struct pd_config *cfg;
static struct store *st;
static char err[PD_ERRLEN];
static int64_t d_open, d_contact, d_domains, contact_id;
static int64_t i_open, i_contact;	/* their "id-card" items */
static char unsub_ok[UNSUB_TOKEN_MAX], unsub_forged[UNSUB_TOKEN_MAX];

static void
setup_config(void)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/postdoc.conf", tmpdir);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "store = { var_dir = \"%s\"; };\n"
	    "intake = { domain = \"dossiers.example\"; };\n"
	    "outbound = { bounce_domain = \"bounce.example\"; };\n"
	    "web = { list_domain = \"lists.example\"; };\n"
	    "plugins = ();\n", tmpdir);
	fclose(f);
	ck_assert_msg(config_load(path, &cfg, err, sizeof(err)) == 0, "%s",
	    err);
}

static void
setup_outbound(int64_t acct, int64_t dossier)
{
	struct store_outbound o;

	memset(&o, 0, sizeof(o));
	o.account_id = acct;
	o.dossier_id = dossier;
	snprintf(o.kind, sizeof(o.kind), "invite");
	snprintf(o.rcpt, sizeof(o.rcpt), "carol@client.example");
	snprintf(o.rcpt_domain, sizeof(o.rcpt_domain), "client.example");
	snprintf(o.mail_from, sizeof(o.mail_from), "b-%s@bounce.example",
	    VERP_OK);
	snprintf(o.verp_token, sizeof(o.verp_token), "%s", VERP_OK);
	memset(o.sha256, 'a', 64);
	snprintf(o.state, sizeof(o.state), "queued");
	ck_assert_msg(store_outbound_add(st, &o, NULL, err) == 0, "%s", err);
}

/* A valid token, and the same one with one character of its MAC
 * changed: well-formed, but not ours. */
static void
setup_unsub(int64_t acct)
{
	char b64[UNSUB_TOKEN_MAX];
	size_t n;

	ck_assert_msg(store_contact_ensure(st, acct, "carol@client.example",
	    &contact_id, err) == 0, "%s", err);
	ck_assert_msg(unsub_token_make(cfg, UNSUB_T_UNSUB, acct, contact_id, 7,
	    b64, unsub_ok, err) == 0, "%s", err);
	snprintf(unsub_forged, sizeof(unsub_forged), "%s", unsub_ok);
	n = strlen(unsub_forged);
	unsub_forged[n - 2] = unsub_forged[n - 2] == 'a' ? 'b' : 'a';
}

static int64_t
setup_item(int64_t acct, int64_t dossier)
{
	struct store_item it;
	int64_t id;

	memset(&it, 0, sizeof(it));
	snprintf(it.slug, sizeof(it.slug), "id-card");
	snprintf(it.label, sizeof(it.label), "ID card");
	it.required = 1;
	ck_assert_msg(store_item_add(st, acct, dossier, &it, &id, err) == 0,
	    "%s", err);
	return id;
}

static void
setup(void)
{
	int64_t any, contact, domains, closed;

	tl_tmpdir(tmpdir, sizeof(tmpdir), "route");
	setup_config();
	st = tl_store_open(cfg->db_path, "normal");
	ck_assert_int_eq(store_account_add(st, "ANY", "any", &any, err), 0);
	ck_assert_int_eq(store_account_add(st, "CONTACT", "contact", &contact,
	    err), 0);
	ck_assert_int_eq(store_account_add(st, "DOMAINS",
	    "domains:partner.example", &domains, err), 0);
	ck_assert_int_eq(store_dossier_create(st, any, "a@client.example",
	    "OPEN", "d-open0001", &d_open, err), 0);
	ck_assert_int_eq(store_dossier_create(st, any, "a@client.example",
	    "CLOSED", "d-closed01", &closed, err), 0);
	ck_assert_int_eq(store_dossier_close(st, any, closed, err), 0);
	ck_assert_int_eq(store_dossier_create(st, contact,
	    "alice@sender.example", "C1", "d-contact1", &d_contact, err), 0);
	ck_assert_int_eq(store_dossier_create(st, domains, "x@client.example",
	    "D1", "d-domains1", &d_domains, err), 0);
	i_open = setup_item(any, d_open);
	i_contact = setup_item(contact, d_contact);
	(void)setup_item(any, closed);
	setup_outbound(any, d_open);
	setup_unsub(any);
}

static void
teardown(void)
{
	store_close(&st);
	config_free(&cfg);
	tl_rmtree(tmpdir);
}

/* Tokens known only at run time: "%s" in a row's addr stands for one. */
enum tok { T_NONE, T_UNSUB, T_UNSUB_FORGED };

struct route_row {
	const char *addr;
	enum tok tok;
	const char *sender;
	enum route_kind txn;
	enum route_kind kind;
	enum route_why why;
	int code;			/* refusals */
	const char *enh;
	const char *account;		/* accepted: whose */
	const char *item;		/* ROUTE_DOSSIER: the part, or NULL */
	int known;			/* and whether it names the item */
};

#define DOSSIER(a, s, acct) \
	{ a, T_NONE, s, ROUTE_NONE, ROUTE_DOSSIER, ROUTE_OK, 0, "", acct, \
	    NULL, 0 }
#define REFUSED(a, t, s, txn, why, code, enh) \
	{ a, t, s, txn, ROUTE_REFUSED, why, code, enh, NULL, NULL, 0 }
#define UNKNOWN(a) REFUSED(a, T_NONE, "", ROUTE_NONE, ROUTE_UNKNOWN, 550, \
	"5.1.1")
#define SENDER(a, s) REFUSED(a, T_NONE, s, ROUTE_NONE, ROUTE_SENDER, 550, \
	"5.7.1")
#define MIXED(a, t, txn) REFUSED(a, t, "", txn, ROUTE_MIXED, 452, "4.5.3")
#define ITEM(a, s, acct, item, known) \
	{ a, T_NONE, s, ROUTE_NONE, ROUTE_DOSSIER, ROUTE_OK, 0, "", acct, \
	    item, known }

static const struct route_row rows[] = {
	/* dossiers: open, closed, unknown, malformed, not our domain */
	DOSSIER("d-open0001@dossiers.example", "x@y.example", "ANY"),
	DOSSIER("d-open0001@dossiers.example", "", "ANY"),
	DOSSIER("D-OPEN0001@Dossiers.Example", "x@y.example", "ANY"),
	UNKNOWN("d-closed01@dossiers.example"),
	UNKNOWN("d-nosuch01@dossiers.example"),
	UNKNOWN("d-open@dossiers.example"),
	UNKNOWN("x-open0001@dossiers.example"),
	UNKNOWN("d-open0001@elsewhere.example"),
	UNKNOWN("d-open0001@bounce.example"),
	/* an item's address: the same dossier, and the item it names; a
	 * part naming none is accepted too (filed unassigned); a part that
	 * is no item part at all is no address of ours */
	ITEM("d-open0001+id-card@dossiers.example", "x@y.example", "ANY",
	    "id-card", 1),
	ITEM("D-Open0001+ID-Card@DOSSIERS.example", "", "ANY", "id-card", 1),
	ITEM("d-open0001+payslip@dossiers.example", "x@y.example", "ANY",
	    "payslip", 0),
	UNKNOWN("d-open0001+id_card@dossiers.example"),
	UNKNOWN("d-open0001+id.card@dossiers.example"),
	UNKNOWN("d-open0001+@dossiers.example"),
	UNKNOWN("d-open0001+id+card@dossiers.example"),
	UNKNOWN("d-open0001+abcdefghijklmnopqrstuvwxyz0123456@dossiers.example"),
	UNKNOWN("d-closed01+id-card@dossiers.example"),
	UNKNOWN("d-nosuch01+id-card@dossiers.example"),
	UNKNOWN("d-open0001+id-card@elsewhere.example"),
	ITEM("d-contact1+id-card@dossiers.example", "alice@sender.example",
	    "CONTACT", "id-card", 1),
	SENDER("d-contact1+id-card@dossiers.example", "mallory@sender.example"),
	SENDER("d-contact1+nosuch@dossiers.example", "mallory@sender.example"),
	SENDER("d-domains1+id-card@dossiers.example", "bob@evil.example"),
	MIXED("d-open0001+id-card@dossiers.example", T_NONE, ROUTE_BOUNCE),
	/* sender policy: contact */
	DOSSIER("d-contact1@dossiers.example", "alice@sender.example",
	    "CONTACT"),
	SENDER("d-contact1@dossiers.example", "mallory@sender.example"),
	SENDER("d-contact1@dossiers.example", ""),
	/* sender policy: domains */
	DOSSIER("d-domains1@dossiers.example", "bob@partner.example",
	    "DOMAINS"),
	SENDER("d-domains1@dossiers.example", "bob@evil.example"),
	SENDER("d-domains1@dossiers.example", ""),
	/* VERP bounce reports: a token we issued, whatever the sender */
	{ "b-" VERP_OK "@bounce.example", T_NONE, "", ROUTE_NONE,
	    ROUTE_BOUNCE, ROUTE_OK, 0, "", "ANY", NULL, 0 },
	{ "B-" VERP_OK "@BOUNCE.example", T_NONE, "", ROUTE_BOUNCE,
	    ROUTE_BOUNCE, ROUTE_OK, 0, "", "ANY", NULL, 0 },
	UNKNOWN("b-" VERP_FORGED "@bounce.example"),
	UNKNOWN("b-" VERP_OK "@dossiers.example"),
	/* mailto: unsubscribe: a token with a valid MAC only */
	{ "u-%s@lists.example", T_UNSUB, "x@y.example", ROUTE_NONE,
	    ROUTE_UNSUB, ROUTE_OK, 0, "", "ANY", NULL, 0 },
	REFUSED("u-%s@lists.example", T_UNSUB_FORGED, "", ROUTE_NONE,
	    ROUTE_UNKNOWN, 550, "5.1.1"),
	UNKNOWN("u-%s@dossiers.example"),
	/* one kind per transaction, checked before any lookup */
	MIXED("b-" VERP_OK "@bounce.example", T_NONE, ROUTE_DOSSIER),
	MIXED("b-" VERP_FORGED "@bounce.example", T_NONE, ROUTE_UNSUB),
	MIXED("u-%s@lists.example", T_UNSUB, ROUTE_BOUNCE),
	MIXED("u-%s@lists.example", T_UNSUB_FORGED, ROUTE_DOSSIER),
	MIXED("d-open0001@dossiers.example", T_NONE, ROUTE_BOUNCE),
	MIXED("d-nosuch01@elsewhere.example", T_NONE, ROUTE_UNSUB),
};

static void
route_addr(char *out, size_t len, const char *addr, const char *token)
{
	const char *at = strstr(addr, "%s");

	if (at == NULL)
		snprintf(out, len, "%s", addr);
	else
		snprintf(out, len, "%.*s%s%s", (int)(at - addr), addr, token,
		    at + 2);
}

static void
route_check_accepted(const struct route_row *r, const struct route_outcome *o,
    size_t i)
{
	switch (r->kind) {
	case ROUTE_DOSSIER:
		ck_assert_msg(o->dossier_id == (strcmp(r->account, "ANY") == 0 ?
		    d_open : strcmp(r->account, "CONTACT") == 0 ? d_contact :
		    d_domains), "row %zu: dossier %lld", i,
		    (long long)o->dossier_id);
		ck_assert_str_eq(o->token, "");
		ck_assert_str_eq(o->account, r->account);
		ck_assert_msg(strcmp(o->item, r->item != NULL ? r->item : "")
		    == 0, "row %zu: item \"%s\"", i, o->item);
		ck_assert_msg(o->item_id == (!r->known ? 0 : o->dossier_id ==
		    d_open ? i_open : i_contact), "row %zu: item id %lld", i,
		    (long long)o->item_id);
		break;
	case ROUTE_BOUNCE:
		ck_assert_int_eq(o->dossier_id, d_open);
		ck_assert_str_eq(o->token, VERP_OK);
		ck_assert_str_eq(o->account, r->account);
		break;
	case ROUTE_UNSUB:
		ck_assert_int_eq(o->dossier_id, 0);
		ck_assert_int_eq(o->contact_id, contact_id);
		ck_assert_int_eq(o->purpose_id, 7);
		ck_assert_str_eq(o->token + 2, unsub_ok);
		ck_assert_str_eq(o->account, r->account);
		break;
	default:
		break;
	}
}

START_TEST(test_route_table)
{
	struct route_env env;
	struct route_outcome o;
	char addr[320];
	size_t i;

	env.cfg = cfg;
	env.st = st;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct route_row *r = &rows[i];

		route_addr(addr, sizeof(addr), r->addr,
		    r->tok == T_UNSUB_FORGED ? unsub_forged : unsub_ok);
		err[0] = '\0';
		ck_assert_msg(route_address(&env, addr, r->sender, r->txn, &o,
		    err) == r->kind, "row %zu <%s> from <%s>: kind %d, want %d "
		    "(%d %s %s)", i, addr, r->sender, o.kind, r->kind, o.code,
		    o.enhanced, o.text);
		ck_assert_msg(o.kind == r->kind && o.why == r->why,
		    "row %zu <%s>: why %d, want %d", i, addr, o.why, r->why);
		if (r->kind == ROUTE_REFUSED) {
			ck_assert_msg(o.code == r->code &&
			    strcmp(o.enhanced, r->enh) == 0, "row %zu <%s>: "
			    "%d %s, want %d %s", i, addr, o.code, o.enhanced,
			    r->code, r->enh);
			continue;
		}
		route_check_accepted(r, &o, i);
	}
}
END_TEST

/* The texts the session (after "Error: ") and the mailbox host send. */
START_TEST(test_route_texts)
{
	struct route_env env = { cfg, st };
	struct route_outcome o;

	route_address(&env, "d-nosuch01@dossiers.example", "", ROUTE_NONE,
	    &o, err);
	ck_assert_str_eq(o.text, "no such dossier here");
	route_address(&env, "d-contact1@dossiers.example", "m@evil.example",
	    ROUTE_NONE, &o, err);
	ck_assert_str_eq(o.text,
	    "sender <m@evil.example> may not file into this dossier");
	ck_assert_int_eq(o.dossier_id, d_contact);	/* mailbox drops it */
	route_address(&env, "b-" VERP_OK "@bounce.example", "",
	    ROUTE_DOSSIER, &o, err);
	ck_assert_str_eq(o.text,
	    "send bounce reports in a transaction of their own");
	route_address(&env, "d-open0001@dossiers.example", "", ROUTE_UNSUB,
	    &o, err);
	ck_assert_str_eq(o.text, "send dossier mail in a transaction of its own");
}
END_TEST

/*
 * No oracle: for every sender, an item address (known item or not) gets
 * what the plain address gets, code, enhanced code and text alike.
 */
START_TEST(test_route_item_like_plain)
{
	static const char *const locals[] = { "d-open0001", "d-contact1",
	    "d-domains1", "d-closed01", "d-nosuch01" };
	static const char *const senders[] = { "", "x@y.example",
	    "alice@sender.example", "mallory@sender.example",
	    "bob@partner.example", "bob@evil.example" };
	static const char *const items[] = { "id-card", "payslip" };
	struct route_env env = { cfg, st };
	struct route_outcome p, o;
	char plain[128], item[128];
	size_t l, k, j;

	for (l = 0; l < sizeof(locals) / sizeof(locals[0]); l++)
	for (k = 0; k < sizeof(senders) / sizeof(senders[0]); k++)
	for (j = 0; j < sizeof(items) / sizeof(items[0]); j++) {
		snprintf(plain, sizeof(plain), "%s@dossiers.example",
		    locals[l]);
		snprintf(item, sizeof(item), "%s+%s@dossiers.example",
		    locals[l], items[j]);
		route_address(&env, plain, senders[k], ROUTE_NONE, &p, err);
		route_address(&env, item, senders[k], ROUTE_NONE, &o, err);
		ck_assert_msg(p.kind == o.kind && p.why == o.why &&
		    p.code == o.code && strcmp(p.enhanced, o.enhanced) == 0 &&
		    strcmp(p.text, o.text) == 0 && p.dossier_id ==
		    o.dossier_id, "<%s> from <%s>: %d %s %s, plain %d %s %s",
		    item, senders[k], o.code, o.enhanced, o.text, p.code,
		    p.enhanced, p.text);
		ck_assert_str_eq(p.item, "");
		ck_assert_int_eq(p.item_id, 0);
	}
}
END_TEST

static Suite *
route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("route");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_route_table);
	tcase_add_test(tc, test_route_texts);
	tcase_add_test(tc, test_route_item_like_plain);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(route_suite());
}

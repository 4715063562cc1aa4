/*
 * test_dossier.c - unit tests of the dossier service (dossier/): the one
 * set of validators the CLI, the API and the web pages share (refs,
 * contacts, names, words, dates, sender policies, intake addresses), as
 * tables of input and verdict, and its rules over a fresh store: create
 * then get, a taken ref, another account's dossier is not found, closing
 * twice is fine, pages walk one account only; an account's identity
 * (`account set`): each key's check as a table, all or nothing, ""
 * removes, the audit trail, where each value comes from.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dossier/dossier.h"
#include "lib/config.h"
#include "lib/util.h"
#include "outbound/notify.h"
#include "privacy/privacy_audit.h"
#include "testlib.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct verdict {
	const char *in;
	int ok;
};

static char tmpdir[256];
static struct store *st;
static char err[PD_ERRLEN];
static int64_t acme, other;

static void
setup(void)
{
	char db[512];

	tl_tmpdir(tmpdir, sizeof(tmpdir), "dossier");
	snprintf(db, sizeof(db), "%s/postdoc.db", tmpdir);
	st = tl_store_open(db, "normal");
	ck_assert_int_eq(dossier_account_add(st, "ACME", "any", &acme, err),
	    0);
	ck_assert_int_eq(dossier_account_add(st, "OTHER", "contact", &other,
	    err), 0);
}

static void
teardown(void)
{
	dossier_conn_close(&st);
	tl_rmtree(tmpdir);
}

static void
check_table(const char *what, int (*fn)(const char *),
    const struct verdict *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ck_assert_msg(fn(t[i].in) == t[i].ok, "%s(\"%s\") should be %d",
		    what, t[i].in, t[i].ok);
}

static int
count_cb(const struct store_dossier *d, void *ctx)
{
	int *n = ctx;

	(void)d;
	(*n)++;
	return 0;
}

START_TEST(test_valid_ref)
{
	static const struct verdict t[] = {
		{ "REF-1", 1 },
		{ "Dossier Müller 2024/17", 1 },	/* UTF-8 text */
		{ "x", 1 },
		{ "", 0 },
		{ "tab\there", 0 },
		{ "new\nline", 0 },
		{ "del\x7f", 0 },
		{ "bad \xc3\x28 utf8", 0 },
		{ "\xff", 0 },
	};
	char longest[DOSSIER_REF_MAX + 2];

	check_table("dossier_valid_ref", dossier_valid_ref, t, NELEM(t));
	memset(longest, 'r', DOSSIER_REF_MAX);
	longest[DOSSIER_REF_MAX] = '\0';
	ck_assert_int_eq(dossier_valid_ref(longest), 1);
	longest[DOSSIER_REF_MAX] = 'r';
	longest[DOSSIER_REF_MAX + 1] = '\0';
	ck_assert_int_eq(dossier_valid_ref(longest), 0);
}
END_TEST

START_TEST(test_valid_contact)
{
	static const struct verdict t[] = {
		{ "alice@sender.example", 1 },
		{ "Zoe.Quartz@client.example", 1 },	/* stored as typed */
		{ "o'brien+tag@mail.example.org", 1 },
		{ "user@localhost", 0 },		/* no dotless hosts */
		{ "a..b@x.example", 0 },
		{ ".a@x.example", 0 },
		{ "a@b@x.example", 0 },
		{ "@x.example", 0 },
		{ "alice@", 0 },
		{ "alice", 0 },
		{ "al ice@x.example", 0 },
		{ "<alice@x.example>", 0 },
		{ "alice@-x.example", 0 },
		{ "alice@x_y.example", 0 },
		{ "\"q\"@x.example", 0 },		/* quoted: refused */
		{ "", 0 },
	};
	char big[300];

	check_table("dossier_valid_contact", dossier_valid_contact, t,
	    NELEM(t));
	/* RFC 5321 4.5.3.1.1: a local part of 65 octets is too long */
	memset(big, 'l', 65);
	snprintf(big + 65, sizeof(big) - 65, "@x.example");
	ck_assert_int_eq(dossier_valid_contact(big), 0);
	snprintf(big + 64, sizeof(big) - 64, "@x.example");	/* 64: fine */
	ck_assert_int_eq(dossier_valid_contact(big), 1);
}
END_TEST

START_TEST(test_valid_names)
{
	static const struct verdict names[] = {
		{ "ACME", 1 }, { "crm-sync_2.prod", 1 }, { "a", 1 },
		{ "", 0 }, { "with space", 0 }, { "slash/x", 0 },
		{ "caf\xc3\xa9", 0 },
		{ "0123456789012345678901234567890123456789012345678901234567"
		    "89012", 1 },			/* 63 */
		{ "0123456789012345678901234567890123456789012345678901234567"
		    "890123", 0 },			/* 64 */
	};
	static const struct verdict words[] = {
		{ "newsletter", 1 }, { "privacy-notice", 1 }, { "fr", 1 },
		{ "en_GB", 0 }, { "../etc", 0 }, { "", 0 }, { "a.b", 0 },
		{ "abcdefghijklmnopqrstuvwxyz012345", 1 },	/* 32 */
		{ "abcdefghijklmnopqrstuvwxyz0123456", 0 },	/* 33 */
	};
	static const struct verdict dues[] = {
		{ "2024-12-31", 1 }, { "2024-1-31", 0 }, { "2024-13-01", 0 },
		{ "2024-12-41", 0 }, { "2024-00-10", 0 }, { "2024-12-00", 0 },
		{ "2024-12-3x", 0 }, { "20241231", 0 }, { "", 0 },
		/* the calendar, not 31 days a month (2099-02-30 was March 2) */
		{ "2099-02-30", 0 }, { "2024-04-31", 0 }, { "2023-02-29", 0 },
		{ "2024-02-29", 1 }, { "2000-02-29", 1 }, { "2100-02-29", 0 },
		{ "+024-12-31", 0 }, { "1969-12-31", 0 }, { "9999-12-31", 1 },
	};

	check_table("dossier_valid_name", dossier_valid_name, names,
	    NELEM(names));
	check_table("dossier_valid_word", dossier_valid_word, words,
	    NELEM(words));
	check_table("dossier_valid_due", dossier_valid_due, dues, NELEM(dues));
}
END_TEST

/* pd_parse_when (lib/util.c): the one reader of --now and friends. */
START_TEST(test_parse_when)
{
	static const struct { const char *in; int ok; int64_t t; } t[] = {
		{ "2024-02-29", 1, 1709164800 }, { "1970-01-01", 1, 0 },
		{ "1", 1, 1 }, { "1700000000", 1, 1700000000 },
		{ "253402300799", 1, 253402300799LL },
		{ "253402300800", 0, 0 }, { "99999999999999999999", 0, 0 },
		{ "0", 0, 0 }, { "-5", 0, 0 }, { "+5", 0, 0 }, { " 5", 0, 0 },
		{ "5x", 0, 0 }, { "", 0, 0 }, { "2099-02-30", 0, 0 },
	};
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		int64_t v = -1;
		int rc = pd_parse_when(t[i].in, &v);

		ck_assert_msg((rc == 0) == t[i].ok, "pd_parse_when(\"%s\") = %d",
		    t[i].in, rc);
		if (t[i].ok)
			ck_assert_msg(v == t[i].t, "pd_parse_when(\"%s\") gave "
			    "%lld", t[i].in, (long long)v);
	}
}
END_TEST

START_TEST(test_valid_policy_and_address)
{
	static const struct { const char *in; const char *norm; } t[] = {
		{ "any", "any" },
		{ "contact", "contact" },
		{ "domains:A.Example,b.example", "domains:a.example,b.example" },
		{ "domains:", NULL },
		{ "domains:a.example,", NULL },
		{ "domains:-a.example", NULL },
		{ "everyone", NULL },
	};
	char out[512], local[80];
	int64_t id;
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		int ok = dossier_valid_policy(t[i].in, out, sizeof(out));

		ck_assert_msg(ok == (t[i].norm != NULL), "policy %s", t[i].in);
		if (ok)
			ck_assert_str_eq(out, t[i].norm);
	}
	ck_assert_int_eq(dossier_parse_address("in.example",
	    "D-ABCDEFGH12@IN.example", local, sizeof(local)), 1);
	ck_assert_str_eq(local, "d-abcdefgh12");
	ck_assert_int_eq(dossier_parse_address("in.example",
	    "d-abcdefgh12@other.example", local, sizeof(local)), 0);
	ck_assert_int_eq(dossier_parse_address("in.example",
	    "d-short@in.example", local, sizeof(local)), 0);
	ck_assert_int_eq(dossier_parse_address("in.example",
	    "x-abcdefgh12@in.example", local, sizeof(local)), 0);
	ck_assert_int_eq(dossier_parse_id("42", &id), 1);
	ck_assert_int_eq(id, 42);
	ck_assert_int_eq(dossier_parse_id("0", &id), 0);
	ck_assert_int_eq(dossier_parse_id("-3", &id), 0);
	ck_assert_int_eq(dossier_parse_id("4x", &id), 0);
}
END_TEST

START_TEST(test_create_get_scope)
{
	struct store_dossier d;
	int64_t id, again;

	ck_assert_int_eq(dossier_create(st, acme, "ann@client.example", "R-1",
	    NULL, &id, err), 0);
	ck_assert_int_eq(dossier_get(st, acme, id, &d, err), 1);
	ck_assert_str_eq(d.ref, "R-1");
	ck_assert_str_eq(d.contact, "ann@client.example");
	ck_assert_str_eq(d.status, "open");
	ck_assert_int_eq(strncmp(d.intake_local, "d-", 2), 0);
	/* the operator (account 0) sees it; another account does not */
	ck_assert_int_eq(dossier_get(st, 0, id, &d, err), 1);
	ck_assert_int_eq(dossier_get(st, other, id, &d, err), 0);
	ck_assert_int_eq(dossier_find(st, "in.example", other, d.intake_local,
	    &d, err), 0);
	ck_assert_int_eq(dossier_find(st, "in.example", acme, "R-1", &d, err),
	    0);				/* a ref is not a dossier spec */
	ck_assert_int_eq(dossier_get(st, acme, id, &d, err), 1);
	ck_assert_int_eq(dossier_find(st, "in.example", acme, d.intake_local,
	    &d, err), 1);
	ck_assert_int_eq(d.id, id);
	/* a ref is unique in its account, free in another */
	ck_assert_int_eq(dossier_create(st, acme, "bob@client.example", "R-1",
	    NULL, &again, err), 1);
	ck_assert_int_eq(again, id);
	ck_assert_ptr_nonnull(strstr(err, "already exists"));
	ck_assert_int_eq(dossier_create(st, other, "bob@client.example", "R-1",
	    NULL, &again, err), 0);
	ck_assert_int_ne(again, id);
}
END_TEST

START_TEST(test_create_refuses_invalid)
{
	static const struct { const char *contact, *ref; } t[] = {
		{ "user@localhost", "R" },
		{ "not an address", "R" },
		{ "ann@client.example", "" },
		{ "ann@client.example", "bad\nref" },
	};
	int64_t id;
	size_t i;
	int n = 0;

	for (i = 0; i < NELEM(t); i++)
		ck_assert_msg(dossier_create(st, acme, t[i].contact, t[i].ref,
		    NULL, &id, err) == -1, "row %zu accepted", i);
	ck_assert_int_eq(dossier_list(st, acme, NULL, count_cb, &n, err), 0);
	ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_close_twice)
{
	struct store_dossier d;
	int64_t id;
	int was;

	ck_assert_int_eq(dossier_create(st, acme, "ann@client.example", "C-1",
	    NULL, &id, err), 0);
	ck_assert_int_eq(dossier_close(st, acme, id, &was, &d, err), 0);
	ck_assert_int_eq(was, 0);
	ck_assert_str_eq(d.status, "closed");
	ck_assert_int_ne(d.closed, 0);
	ck_assert_int_eq(dossier_close(st, acme, id, &was, &d, err), 0);
	ck_assert_int_eq(was, 1);
	ck_assert_str_eq(d.status, "closed");
	/* another account cannot close it: not found */
	ck_assert_int_eq(dossier_close(st, other, id, &was, &d, err), -1);
}
END_TEST

START_TEST(test_list_and_page)
{
	struct store_api_filter all = { NULL, NULL, NULL };
	struct store_dossier d;
	int64_t id, next, after = 0;
	int i, n = 0, pages = 0, was;
	char ref[16];

	for (i = 0; i < 5; i++) {
		snprintf(ref, sizeof(ref), "P-%d", i);
		ck_assert_int_eq(dossier_create(st, acme, "ann@client.example",
		    ref, NULL, &id, err), 0);
	}
	ck_assert_int_eq(dossier_create(st, other, "ann@client.example", "P-0",
	    NULL, &id, err), 0);
	ck_assert_int_eq(dossier_close(st, other, id, &was, &d, err), 0);
	ck_assert_int_eq(dossier_list(st, acme, NULL, count_cb, &n, err), 0);
	ck_assert_int_eq(n, 5);
	n = 0;			/* account 0: every account in turn */
	ck_assert_int_eq(dossier_list(st, 0, NULL, count_cb, &n, err), 0);
	ck_assert_int_eq(n, 6);
	n = 0;
	ck_assert_int_eq(dossier_list(st, 0, "closed", count_cb, &n, err), 0);
	ck_assert_int_eq(n, 1);
	n = 0;			/* pages of 2: 2 + 2 + 1, then no cursor */
	do {
		ck_assert_int_eq(dossier_page(st, acme, &all, after, 2,
		    count_cb, &n, &next, err), 0);
		after = next;
		pages++;
	} while (next != 0);
	ck_assert_int_eq(n, 5);
	ck_assert_int_eq(pages, 3);
}
END_TEST

/* ---- an account's identity (dossier_account.c) ---- */

static struct pd_config *
test_cfg(void)
{
	struct pd_config *cfg = NULL;
	char e[4096];

	ck_assert_msg(config_load(NULL, &cfg, e, sizeof(e)) == 0, "%s", e);
	free(cfg->template_dir);
	cfg->template_dir = xstrdup(TOP_SRCDIR "/templates");
	return cfg;
}

START_TEST(test_account_setting_check)
{
	static const struct {
		const char *key, *value, *norm;	/* norm NULL: refused */
	} t[] = {
		{ "from_addr", "onboarding@acme.example",
		    "onboarding@acme.example" },
		{ "from_addr", "no-at-sign", NULL },
		{ "from_addr", "a@b@c.example", NULL },
		{ "from_addr", "a b@c.example", NULL },
		{ "from_addr", "a@c.example\r\nBcc: x@y.example", NULL },
		{ "locale", "fr", "fr" },
		{ "locale", "en", "en" },
		{ "locale", "de", NULL },		/* no such templates */
		{ "locale", "../fr", NULL },
		{ "locale", "FR", NULL },
		{ "locale", "abcdefghijklmnop", NULL },	/* 16 bytes */
		{ "privacy_url", "https://acme.example/privacy",
		    "https://acme.example/privacy" },
		{ "privacy_url", "http://acme.example", "http://acme.example" },
		{ "privacy_url", "https://", NULL },
		{ "privacy_url", "https:///path", NULL },
		{ "privacy_url", "ftp://acme.example", NULL },
		{ "privacy_url", "javascript:alert(1)", NULL },
		{ "privacy_url", "https://a.example/a b", NULL },
		{ "privacy_url", "https://a.example/\xc3\xa9", NULL },
		{ "legal_name", "ACME Conseil SARL", "ACME Conseil SARL" },
		{ "legal_name", "Soci\xc3\xa9t\xc3\xa9 G\xc3\xa9n\xc3\xa9rale",
		    "Soci\xc3\xa9t\xc3\xa9 G\xc3\xa9n\xc3\xa9rale" },
		{ "legal_name", "two\nlines", NULL },
		{ "legal_address", "tab\there", NULL },
		{ "from_name", "\xe9t\xe9", NULL },		/* not UTF-8 */
		{ "adult_required", "yes", "true" },
		{ "adult_required", "No", "false" },
		{ "adult_required", "1", "true" },
		{ "adult_required", "off", "false" },
		{ "adult_required", "maybe", NULL },
		{ "notify_completed", "true", "true" },
		{ "notify_completed", "2", NULL },
		{ "from_name", "", "" },		/* removes */
		{ "privacy_url", "", "" },
		{ "signer", "me", NULL },		/* not a key */
		{ "var_dir", "/tmp", NULL },
	};
	struct pd_config *cfg = test_cfg();
	char norm[512], name201[202];
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		int ok = dossier_account_setting_check(cfg, t[i].key,
		    t[i].value, norm, sizeof(norm), err);

		ck_assert_msg(ok == (t[i].norm != NULL), "%s=\"%s\": %d (%s)",
		    t[i].key, t[i].value, ok, err);
		if (ok)
			ck_assert_str_eq(norm, t[i].norm);
		else	/* the error names the key */
			ck_assert_int_eq(strncmp(err, t[i].key,
			    strlen(t[i].key)), 0);
	}
	memset(name201, 'x', 201);
	name201[201] = '\0';
	ck_assert_int_eq(dossier_account_setting_check(cfg, "from_name",
	    name201, norm, sizeof(norm), err), 0);
	name201[200] = '\0';
	ck_assert_int_eq(dossier_account_setting_check(cfg, "from_name",
	    name201, norm, sizeof(norm), err), 1);
	config_free(&cfg);
}
END_TEST

static int
audit_count_cb(const struct store_audit_row *r, void *ctx)
{
	int *n = ctx;

	if (strcmp(r->action, "account.set") == 0)
		(*n)++;
	return 0;
}

START_TEST(test_account_set_all_or_nothing)
{
	struct pd_config *cfg = test_cfg();
	struct dossier_env env = { cfg, st, NULL, "test" };
	const struct dossier_setting bad[] = { { "from_name", "Claire" },
	    { "locale", "de" } };
	const struct dossier_setting good[] = { { "from_name", "Claire" },
	    { "adult_required", "no" } };
	const struct dossier_setting rm[] = { { "from_name", "" } };
	const char *src[NOTIFY_ACCOUNT_NKEYS];
	struct notify_identity id;
	int audits = 0;

	ck_assert_int_eq(dossier_account_set(&env, acme, "ACME", bad, 2, err),
	    DOSSIER_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "locale"));
	ck_assert_int_eq(notify_identity_sources(cfg, st, "ACME", &id, src,
	    err), 0);
	ck_assert_str_eq(src[2], "default");	/* from_name: nothing written */
	ck_assert_int_eq(dossier_account_set(&env, acme, "ACME", good, 2, err),
	    0);
	ck_assert_int_eq(notify_identity_sources(cfg, st, "ACME", &id, src,
	    err), 0);
	ck_assert_str_eq(id.from_name, "Claire");
	ck_assert_str_eq(src[2], "set");
	ck_assert_int_eq(id.adult_required, 0);
	ck_assert_str_eq(src[6], "set");
	/* the other account is untouched */
	ck_assert_int_eq(notify_identity_sources(cfg, st, "OTHER", &id, src,
	    err), 0);
	ck_assert_str_eq(src[2], "default");
	ck_assert_int_eq(id.adult_required, 1);
	/* "" removes: back to the default (the legal name) */
	ck_assert_int_eq(dossier_account_set(&env, acme, "ACME", rm, 1, err),
	    0);
	ck_assert_int_eq(notify_identity_sources(cfg, st, "ACME", &id, src,
	    err), 0);
	ck_assert_str_eq(id.from_name, "ACME");
	ck_assert_str_eq(src[2], "default");
	ck_assert_int_eq(dossier_account_set(&env, acme, "ACME", rm, 0, err),
	    DOSSIER_EINVAL);
	ck_assert_int_eq(privacy_audit_list(st, audit_count_cb, &audits, err),
	    0);
	ck_assert_int_eq(audits, 3);		/* two set, one removed */
	config_free(&cfg);
}
END_TEST

static Suite *
dossier_suite(void)
{
	Suite *s = suite_create("dossier");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_valid_ref);
	tcase_add_test(tc, test_valid_contact);
	tcase_add_test(tc, test_valid_names);
	tcase_add_test(tc, test_parse_when);
	tcase_add_test(tc, test_valid_policy_and_address);
	tcase_add_test(tc, test_create_get_scope);
	tcase_add_test(tc, test_create_refuses_invalid);
	tcase_add_test(tc, test_close_twice);
	tcase_add_test(tc, test_list_and_page);
	tcase_add_test(tc, test_account_setting_check);
	tcase_add_test(tc, test_account_set_all_or_nothing);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(dossier_suite());
}

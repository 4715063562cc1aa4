/*
 * test_api.c - unit tests for the API's pieces that need no socket: the
 * token shape and hash (auth.c), the Content-Disposition of a download
 * (RFC 6266 / RFC 8187, api_res.c) and the SQL of store_api.c (tokens:
 * unique names, revoke, last use, account scope; the dossier page:
 * filters, cursor, tenant isolation), the completion rule the API shows
 * as "complete" and the dossier loop's routes.  Each test gets a fresh mkdtemp
 * dir; the HTTP side is tests/integration/test_api.py.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "api/api_int.h"
#include "auth/auth.h"
#include "store/store.h"
#include "store/store_api.h"
#include "testlib.h"
#include "lib/util.h"

/* sha256("abc"), FIPS 180-2 appendix B.1 */
#define SHA_ABC \
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define B43 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static char tmpdir[256];
static struct store *st;
static char err[PD_ERRLEN];
static int64_t acme, other;

static void
setup(void)
{
	char db[512];

	tl_tmpdir(tmpdir, sizeof(tmpdir), "api");
	snprintf(db, sizeof(db), "%s/postdoc.db", tmpdir);
	st = tl_store_open(db, "normal");
	ck_assert_int_eq(store_account_add(st, "ACME", "any", &acme, err), 0);
	ck_assert_int_eq(store_account_add(st, "OTHER", "any", &other, err),
	    0);
}

static void
teardown(void)
{
	store_close(&st);
	tl_rmtree(tmpdir);
}

START_TEST(test_token_shape)
{
	static const struct { const char *tok; int ok; } t[] = {
		{ "pdk_0123456789ab_" B43, 1 },
		{ "pdk_0123456789ab_-_09azAZ" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		    1 },
		{ "pdk_0123456789AB_" B43, 0 },		/* hex is lower case */
		{ "pdk_0123456789ab_" B43 "A", 0 },	/* too long */
		{ "pdk_0123456789ab_" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		    0 },				/* too short */
		{ "pdk_0123456789ab-" B43, 0 },
		{ "pdx_0123456789ab_" B43, 0 },
		{ "pdk_0123456789ab_" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0 },
		{ "pdk_0123456789ab_" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+", 0 },
		{ "", 0 },
	};
	char prefix[17];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ck_assert_msg(auth_token_prefix(t[i].tok, prefix) == t[i].ok,
		    "case %zu: %s", i, t[i].tok);
		if (t[i].ok)
			ck_assert_str_eq(prefix, "pdk_0123456789ab");
	}
}
END_TEST

START_TEST(test_token_hash)
{
	char h[65];

	auth_token_hash("abc", h);
	ck_assert_str_eq(h, SHA_ABC);
}
END_TEST

START_TEST(test_disposition)
{
	static const struct { const char *in, *out; } t[] = {
		{ "a.pdf", "attachment; filename=\"a.pdf\"; "
		    "filename*=UTF-8''a.pdf" },
		{ "a b.pdf", "attachment; filename=\"a b.pdf\"; "
		    "filename*=UTF-8''a%20b.pdf" },
		/* quote, backslash, % and non-ASCII never reach filename= */
		{ "\"x\\y%\xc3\xa9.txt", "attachment; filename=\"_x_y___.txt\"; "
		    "filename*=UTF-8''%22x%5Cy%25%C3%A9.txt" },
		{ "r\xc3\xa9sum\xc3\xa9 (1)'.pdf", "attachment; "
		    "filename=\"r__sum__ (1)'.pdf\"; "
		    "filename*=UTF-8''r%C3%A9sum%C3%A9%20%281%29%27.pdf" },
		{ "a\r\nX-Evil: 1", "attachment; filename=\"a__X-Evil: 1\"; "
		    "filename*=UTF-8''a%0D%0AX-Evil%3A%201" },
	};
	char out[512];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		api_disposition(t[i].in, out, sizeof(out));
		ck_assert_str_eq(out, t[i].out);
	}
	/* a small buffer truncates, never overflows */
	api_disposition("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", out, 40);
	ck_assert_uint_lt(strlen(out), 40);
}
END_TEST

struct count { int n; int64_t last_used, revoked; };

static int
count_cb(const struct store_api_token *t, void *ctx)
{
	struct count *c = ctx;

	c->n++;
	c->last_used = t->last_used;
	c->revoked = t->revoked;
	return 0;
}

START_TEST(test_token_rows)
{
	struct store_api_token t;
	struct count c = { 0, 0, 0 };
	int64_t id, id2;

	ck_assert_int_eq(store_api_token_add(st, acme, "crm", "pdk_aaaaaaaaaaaa",
	    SHA_ABC, &id, err), 0);
	/* a name is unique per account, not store-wide */
	ck_assert_int_eq(store_api_token_add(st, acme, "crm", "pdk_bbbbbbbbbbbb",
	    SHA_ABC, &id2, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "exists"));
	ck_assert_int_eq(store_api_token_add(st, other, "crm",
	    "pdk_cccccccccccc", SHA_ABC, &id2, err), 0);
	ck_assert_int_eq(store_api_token_by_prefix(st, "pdk_aaaaaaaaaaaa", &t,
	    err), 1);
	ck_assert_int_eq(t.account_id, acme);
	ck_assert_str_eq(t.account, "ACME");
	ck_assert_str_eq(t.hash, SHA_ABC);
	ck_assert_int_eq(t.last_used, 0);
	ck_assert_int_eq(store_api_token_by_prefix(st, "pdk_dddddddddddd", &t,
	    err), 0);
	ck_assert_int_eq(store_api_token_used(st, id, 1234, err), 0);
	/* revoke is scoped: OTHER's "crm" stays live */
	ck_assert_int_eq(store_api_token_revoke(st, acme, "crm", 99, err), 1);
	ck_assert_int_eq(store_api_token_revoke(st, acme, "crm", 100, err), 0);
	ck_assert_int_eq(store_api_token_list(st, acme, count_cb, &c, err), 0);
	ck_assert_int_eq(c.n, 1);
	ck_assert_int_eq(c.last_used, 1234);
	ck_assert_int_eq(c.revoked, 99);
	ck_assert_int_eq(store_api_token_by_prefix(st, "pdk_cccccccccccc", &t,
	    err), 1);
	ck_assert_int_eq(t.revoked, 0);
}
END_TEST

START_TEST(test_dossier_page)
{
	struct store_api_filter all = { NULL, NULL, NULL };
	struct store_api_filter bob = { NULL, "BOB@x.example", NULL };
	struct store_api_filter closed = { "closed", NULL, NULL };
	struct store_api_filter ref = { NULL, NULL, "R3" };
	int64_t ids[8], mine[6], after = 0, id;
	int i, n, seen = 0;
	char r[16];

	for (i = 0; i < 6; i++) {
		snprintf(r, sizeof(r), "R%d", i);
		ck_assert_int_eq(store_dossier_create(st, acme, i % 2 ?
		    "bob@x.example" : "amy@x.example", r, NULL, &mine[i], err),
		    0);
		ck_assert_int_eq(store_dossier_create(st, other,
		    "bob@x.example", r, NULL, &id, err), 0);
	}
	ck_assert_int_eq(store_dossier_close(st, acme, mine[4], err), 0);
	/* pages of 4 walk ACME's 6 once, in order, and none of OTHER's */
	do {
		ck_assert_int_eq(store_api_dossier_page(st, acme, &all, after, 4,
		    ids, &n, err), 0);
		for (i = 0; i < n; i++)
			ck_assert_int_eq(ids[i], mine[seen++]);
		after = n > 0 ? ids[n - 1] : after;
	} while (n == 4);
	ck_assert_int_eq(seen, 6);
	ck_assert_int_eq(store_api_dossier_page(st, acme, &bob, 0, 8, ids, &n,
	    err), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(ids[0], mine[1]);
	ck_assert_int_eq(store_api_dossier_page(st, acme, &closed, 0, 8, ids,
	    &n, err), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(ids[0], mine[4]);
	ck_assert_int_eq(store_api_dossier_page(st, acme, &ref, 0, 8, ids, &n,
	    err), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(ids[0], mine[3]);
}
END_TEST

/* "complete": at least one required item, every required one accepted;
 * optional items never count. */
START_TEST(test_items_complete)
{
	static const struct {
		const char *states;	/* one letter per item: r c a x */
		const char *required;	/* 1 required, 0 optional */
		int complete;
	} t[] = {
		{ "", "", 0 },			/* nothing asked */
		{ "a", "0", 0 },		/* only optional items */
		{ "a", "1", 1 },
		{ "aa", "11", 1 },
		{ "ar", "11", 0 },
		{ "ac", "11", 0 },		/* received is not accepted */
		{ "ax", "11", 0 },		/* rejected */
		{ "ar", "10", 1 },		/* optional outstanding */
		{ "rx", "00", 0 },
	};
	struct store_item v[4];
	size_t i, k, n;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		n = strlen(t[i].states);
		memset(v, 0, sizeof(v));
		for (k = 0; k < n; k++) {
			const char c = t[i].states[k];

			snprintf(v[k].state, sizeof(v[k].state), "%s", c == 'a' ?
			    "accepted" : c == 'c' ? "received" : c == 'x' ?
			    "rejected" : "requested");
			v[k].required = t[i].required[k] == '1';
		}
		ck_assert_msg(api_items_complete(v, n) == t[i].complete,
		    "case %zu (%s/%s)", i, t[i].states, t[i].required);
	}
}
END_TEST

/* The loop's routes are served once each, with the method the docs
 * give (test_api.py checks openapi.yaml against `api routes`). */
START_TEST(test_loop_routes)
{
	static const char *const want[] = {
		"GET /api/v1/dossiers/{id}/messages",
		"POST /api/v1/dossiers/{id}/items",
		"POST /api/v1/dossiers/{id}/close",
		"POST /api/v1/documents/{id}/assign",
		"POST /api/v1/documents/{id}/accept",
		"POST /api/v1/documents/{id}/reject",
		"GET /api/v1/checklists",
		"POST /api/v1/checklists",
	};
	const char *m, *p;
	char line[256];
	size_t i, k;
	int seen;

	for (k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		seen = 0;
		for (i = 0; api_route_at(i, &m, &p); i++) {
			snprintf(line, sizeof(line), "%s %s", m, p);
			seen += strcmp(line, want[k]) == 0;
		}
		ck_assert_msg(seen == 1, "%s served %d times", want[k], seen);
	}
	for (i = 0; i < api_nroutes; i++)
		ck_assert_int_eq(api_routes[i].auth,
		    strcmp(api_routes[i].path, "/metrics") != 0);
}
END_TEST

static Suite *
api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_token_shape);
	tcase_add_test(tc, test_token_hash);
	tcase_add_test(tc, test_disposition);
	tcase_add_test(tc, test_token_rows);
	tcase_add_test(tc, test_dossier_page);
	tcase_add_test(tc, test_items_complete);
	tcase_add_test(tc, test_loop_routes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(api_suite());
}

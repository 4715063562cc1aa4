/*
 * test_item.c - unit tests of the dossier loop's items (dossier_item.c):
 * what an operator types for an item (label, types, size) and its JSON
 * form, the CSV of invite --documents, adding items to a dossier (all or
 * none, a collision names both labels, 50 at most), finding one by slug
 * or id, its address, checklists, the contact as a person, and a new
 * dossier made with its checklist.  Tables of input and verdict over a
 * fresh store per test.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dossier/dossier.h"
#include "lib/smtp_addr.h"
#include "lib/util.h"
#include "store/store.h"
#include "testlib.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MB (1024 * 1024)

static char tmpdir[256];
static struct store *st;
static char err[PD_ERRLEN];
static int64_t acme, other, d1, d2, d3;

static void
setup(void)
{
	char db[512];

	tl_tmpdir(tmpdir, sizeof(tmpdir), "item");
	snprintf(db, sizeof(db), "%s/postdoc.db", tmpdir);
	st = tl_store_open(db, "normal");
	ck_assert_int_eq(dossier_account_add(st, "ACME", "any", &acme, err),
	    0);
	ck_assert_int_eq(dossier_account_add(st, "OTHER", "any", &other,
	    err), 0);
	ck_assert_msg(dossier_create(st, acme, "zoe@example.fr", "R1",
	    "d-aaaaaaaaaaaaaaaaaaaaaaaaaa", &d1, err) == 0, "%s", err);
	ck_assert_msg(dossier_create(st, acme, "zoe@example.fr", "R2", NULL,
	    &d2, err) == 0, "%s", err);
	ck_assert_msg(dossier_create(st, other, "max@example.de", "R3", NULL,
	    &d3, err) == 0, "%s", err);
}

static void
teardown(void)
{
	dossier_conn_close(&st);
	tl_rmtree(tmpdir);
}

static struct store_item
item(const char *spec, int required)
{
	struct store_item it;

	ck_assert_msg(dossier_item_parse(spec, required, &it, err) == 0,
	    "%s: %s", spec, err);
	return it;
}

struct items {
	struct store_item v[64];
	size_t n;
};

static int
items_cb(const struct store_item *it, void *ctx)
{
	struct items *l = ctx;

	ck_assert_uint_lt(l->n, NELEM(l->v));
	l->v[l->n++] = *it;
	return 0;
}

static struct items
items_of(int64_t account_id, int64_t dossier_id)
{
	struct items l;

	memset(&l, 0, sizeof(l));
	ck_assert_msg(dossier_items(st, account_id, dossier_id, items_cb, &l,
	    err) == 0, "%s", err);
	return l;
}

/* ---- dossier_item_parse ---- */

static const struct {
	const char *spec;
	int rc;
	const char *label, *slug, *types;
	int64_t max;
} parse_rows[] = {
	{ "Proof of address|pdf/jpeg|5MB", 0, "Proof of address",
	  "proof-of-address", "PDF, JPEG", 5 * MB },
	{ "ID card", 0, "ID card", "id-card", "", 0 },
	/* "none" unassigns in `document assign`: no item is called so */
	{ "None", 0, "None", "none-item", "", 0 },
	{ "  ID card  |  pdf , png |  500 KB ", 0, "ID card", "id-card",
	  "PDF, PNG", 500 * 1024 },
	{ "Payslip||2000000", 0, "Payslip", "payslip", "", 2000000 },
	{ "Payslip|pdf|", 0, "Payslip", "payslip", "PDF", 0 },
	{ "Payslip|pdf|1.5MB", 0, "Payslip", "payslip", "PDF", 3 * MB / 2 },
	{ "Payslip|pdf|5MiB", 0, "Payslip", "payslip", "PDF", 5 * MB },
	{ "Payslip|pdf|5 mb", 0, "Payslip", "payslip", "PDF", 5 * MB },
	{ "Payslip|pdf|2k", 0, "Payslip", "payslip", "PDF", 2048 },
	{ "Payslip|pdf|100b", 0, "Payslip", "payslip", "PDF", 100 },
	{ "Pi\xc3\xa8" "ce d'identit\xc3\xa9|PDF", 0,
	  "Pi\xc3\xa8" "ce d'identit\xc3\xa9", "piece-d-identite", "PDF", 0 },
	{ "Scan|image/jpeg", 0, "Scan", "scan", "IMAGE, JPEG", 0 },
	/* the label */
	{ "", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "|pdf", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "   |pdf|5MB", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "tab\there", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "new\nline", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "del\x7f", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "bad \xc3\x28 utf8", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	/* the types */
	{ "X|pdf;rm", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|5MB|more", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|a/b/c/d/e/f/g/h/i", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|abcdefghijklmnopq", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|<b>", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	/* eight words of sixteen letters do not fit what is shown: refused,
	 * never silently cut */
	{ "X|abcdefghijklmnop/abcdefghijklmnop/abcdefghijklmnop/"
	  "abcdefghijklmnop/abcdefghijklmnop/abcdefghijklmnop/"
	  "abcdefghijklmnop/abcdefghijklmnop", DOSSIER_EINVAL, NULL, NULL,
	  NULL, 0 },
	/* the size */
	{ "X|pdf|0", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|-5MB", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|5TB", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|5MBB", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|MB", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|five", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|nan", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|inf", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|0x10", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|1e3", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
	{ "X|pdf|0.1", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },	/* < 1 byte */
	{ "X|pdf|2000GB", DOSSIER_EINVAL, NULL, NULL, NULL, 0 },
};

START_TEST(test_item_parse)
{
	struct store_item it;
	int rc;

	memset(err, 0, sizeof(err));
	rc = dossier_item_parse(parse_rows[_i].spec, _i % 2, &it, err);
	ck_assert_msg(rc == parse_rows[_i].rc, "row %d \"%s\": %d (%s)", _i,
	    parse_rows[_i].spec, rc, err);
	if (rc != 0) {
		ck_assert_msg(err[0] != '\0', "row %d: no message", _i);
		return;
	}
	ck_assert_str_eq(it.label, parse_rows[_i].label);
	ck_assert_str_eq(it.slug, parse_rows[_i].slug);
	ck_assert_str_eq(it.types, parse_rows[_i].types);
	ck_assert_int_eq(it.max_size, parse_rows[_i].max);
	ck_assert_int_eq(it.required, _i % 2);
	ck_assert_str_eq(it.state, "requested");
}
END_TEST

START_TEST(test_item_parse_lengths)
{
	char spec[1100];
	struct store_item it;

	memset(spec, 'l', DOSSIER_LABEL_MAX);
	spec[DOSSIER_LABEL_MAX] = '\0';
	ck_assert_int_eq(dossier_item_parse(spec, 1, &it, err), 0);
	ck_assert_uint_eq(strlen(it.label), DOSSIER_LABEL_MAX);
	ck_assert_uint_eq(strlen(it.slug), SMTP_ADDR_SLUG_MAX);
	strcat(spec, "l");
	ck_assert_int_eq(dossier_item_parse(spec, 1, &it, err),
	    DOSSIER_EINVAL);
	/* a label is never cut to make it fit: "x   ...   y" is not "x" */
	memset(spec, ' ', 400);
	spec[0] = 'x';
	spec[399] = 'y';
	spec[400] = '\0';
	ck_assert_int_eq(dossier_item_parse(spec, 1, &it, err),
	    DOSSIER_EINVAL);
	/* and a spec past its buffer is refused whole */
	memset(spec, 'x', 1050);
	spec[1050] = '\0';
	ck_assert_int_eq(dossier_item_parse(spec, 1, &it, err),
	    DOSSIER_EINVAL);
}
END_TEST

/* ---- the JSON form ---- */

static const struct {
	const char *json;
	int rc;
	const char *label, *types;
	int required;
	int64_t max;
} json_rows[] = {
	{ "{\"label\": \"ID card\"}", 0, "ID card", "", 1, 0 },
	{ "{\"label\": \"ID card\", \"required\": false, \"types\": [\"pdf\","
	  " \"jpeg\"], \"max_size\": 5000}", 0, "ID card", "PDF, JPEG", 0,
	  5000 },
	{ "{\"label\": \" Payslip \", \"types\": \"pdf/png\", \"required\":"
	  " true}", 0, "Payslip", "PDF, PNG", 1, 0 },
	{ "{\"label\": \"x\", \"types\": null, \"max_size\": null}", 0, "x",
	  "", 1, 0 },
	{ "{\"label\": \"x\", \"types\": []}", 0, "x", "", 1, 0 },
	{ "{\"label\": \"\"}", DOSSIER_EINVAL, NULL, NULL, 0, 0 },
	{ "{\"label\": \"a\\nb\"}", DOSSIER_EINVAL, NULL, NULL, 0, 0 },
	{ "{}", DOSSIER_EINVAL, NULL, NULL, 0, 0 },
	{ "[]", DOSSIER_EINVAL, NULL, NULL, 0, 0 },
	{ "\"ID card\"", DOSSIER_EINVAL, NULL, NULL, 0, 0 },
	{ "{\"label\": 5}", DOSSIER_EINVAL, NULL, NULL, 0, 0 },
	{ "{\"label\": \"x\", \"required\": \"yes\"}", DOSSIER_EINVAL, NULL,
	  NULL, 0, 0 },
	{ "{\"label\": \"x\", \"required\": null}", DOSSIER_EINVAL, NULL,
	  NULL, 0, 0 },
	{ "{\"label\": \"x\", \"max_size\": -1}", DOSSIER_EINVAL, NULL, NULL,
	  0, 0 },
	{ "{\"label\": \"x\", \"max_size\": \"5MB\"}", DOSSIER_EINVAL, NULL,
	  NULL, 0, 0 },
	{ "{\"label\": \"x\", \"max_size\": 1.5}", DOSSIER_EINVAL, NULL,
	  NULL, 0, 0 },
	{ "{\"label\": \"x\", \"types\": 5}", DOSSIER_EINVAL, NULL, NULL, 0,
	  0 },
	{ "{\"label\": \"x\", \"types\": \"pdf;x\"}", DOSSIER_EINVAL, NULL,
	  NULL, 0, 0 },
	/* every element of the array is a type: none silently dropped */
	{ "{\"label\": \"x\", \"types\": [\"pdf\", 5]}", DOSSIER_EINVAL, NULL,
	  NULL, 0, 0 },
	{ "{\"label\": \"x\", \"types\": [\"pdf\", \"a/b\"]}", 0, "x",
	  "PDF, A, B", 1, 0 },
};

START_TEST(test_item_from_json)
{
	json_t *o = json_loads(json_rows[_i].json, JSON_DECODE_ANY, NULL);
	struct store_item it, back;
	json_t *spec;
	int rc;

	ck_assert_ptr_nonnull(o);
	rc = dossier_item_from_json(o, &it, err);
	json_decref(o);
	ck_assert_msg(rc == json_rows[_i].rc, "row %d %s: %d (%s)", _i,
	    json_rows[_i].json, rc, err);
	if (rc != 0)
		return;
	ck_assert_str_eq(it.label, json_rows[_i].label);
	ck_assert_str_eq(it.types, json_rows[_i].types);
	ck_assert_int_eq(it.required, json_rows[_i].required);
	ck_assert_int_eq(it.max_size, json_rows[_i].max);
	ck_assert_str_eq(it.state, "requested");
	/* what a checklist stores reads back the same */
	spec = dossier_item_spec_json(&it);
	ck_assert_ptr_nonnull(spec);
	ck_assert_int_eq(dossier_item_from_json(spec, &back, err), 0);
	json_decref(spec);
	ck_assert_str_eq(back.label, it.label);
	ck_assert_str_eq(back.slug, it.slug);
	ck_assert_str_eq(back.types, it.types);
	ck_assert_int_eq(back.required, it.required);
	ck_assert_int_eq(back.max_size, it.max_size);
}
END_TEST

/* ---- invite --documents ---- */

START_TEST(test_items_parse_csv)
{
	struct store_item *v = NULL;
	char csv[4096];
	size_t n = 99;
	int i;

	ck_assert_int_eq(dossier_items_parse_csv("ID card, Proof of address",
	    &v, &n, err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(v[0].label, "ID card");
	ck_assert_str_eq(v[1].slug, "proof-of-address");
	ck_assert_int_eq(v[1].required, 1);
	free(v);
	/* blanks between commas are nothing */
	ck_assert_int_eq(dossier_items_parse_csv(" , ,ID card,,  ,", &v, &n,
	    err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].label, "ID card");
	free(v);
	ck_assert_int_eq(dossier_items_parse_csv("", &v, &n, err), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(dossier_items_parse_csv(" , ", &v, &n, err), 0);
	ck_assert_uint_eq(n, 0);
	free(v);
	/* a bad one spoils the list: nothing returned */
	ck_assert_int_eq(dossier_items_parse_csv("ID card,a\tb", &v, &n,
	    err), DOSSIER_EINVAL);
	ck_assert_ptr_null(v);
	ck_assert_uint_eq(n, 0);
	/* 50 at most */
	csv[0] = '\0';
	for (i = 1; i <= DOSSIER_ITEMS_MAX; i++)
		snprintf(csv + strlen(csv), sizeof(csv) - strlen(csv),
		    "%sDoc %d", i > 1 ? "," : "", i);
	ck_assert_int_eq(dossier_items_parse_csv(csv, &v, &n, err), 0);
	ck_assert_uint_eq(n, DOSSIER_ITEMS_MAX);
	ck_assert_str_eq(v[49].slug, "doc-50");
	free(v);
	strcat(csv, ", ,");		/* blanks do not count */
	ck_assert_int_eq(dossier_items_parse_csv(csv, &v, &n, err), 0);
	ck_assert_uint_eq(n, DOSSIER_ITEMS_MAX);
	free(v);
	strcat(csv, "Doc 51");
	ck_assert_int_eq(dossier_items_parse_csv(csv, &v, &n, err),
	    DOSSIER_EINVAL);
	ck_assert_ptr_null(v);
	ck_assert_uint_eq(n, 0);
}
END_TEST

/* ---- a dossier's items ---- */

START_TEST(test_items_add)
{
	struct store_item v[3] = { item("ID card", 1), item("Payslip|pdf|2MB",
	    1), item("Bank details", 0) }, w[3];
	struct items l;
	unsigned added = 99;

	ck_assert_msg(dossier_items_add(st, acme, d1, v, 3, &added, err) == 0,
	    "%s", err);
	ck_assert_uint_eq(added, 3);
	l = items_of(acme, d1);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.v[0].slug, "id-card");
	ck_assert_int_eq(l.v[0].position, 1);
	ck_assert_str_eq(l.v[1].types, "PDF");
	ck_assert_int_eq(l.v[1].max_size, 2 * MB);
	ck_assert_int_eq(l.v[2].required, 0);
	ck_assert_int_eq(l.v[2].position, 3);
	ck_assert_str_eq(l.v[2].state, "requested");
	/* the same item again is skipped, a new one is added after */
	w[0] = item("id card", 1);
	w[1] = item("Tax notice", 1);
	ck_assert_msg(dossier_items_add(st, acme, d1, w, 2, &added, err) == 0,
	    "%s", err);
	ck_assert_uint_eq(added, 1);
	l = items_of(acme, d1);
	ck_assert_uint_eq(l.n, 4);
	ck_assert_str_eq(l.v[3].slug, "tax-notice");
	ck_assert_int_eq(l.v[3].position, 4);
	/* twice in one batch: once */
	w[0] = item("Lease", 1);
	w[1] = item("Lease", 1);
	ck_assert_int_eq(dossier_items_add(st, acme, d2, w, 2, &added, err),
	    0);
	ck_assert_uint_eq(added, 1);
	ck_assert_uint_eq(items_of(acme, d2).n, 1);
	/* another account reads none of them */
	ck_assert_uint_eq(items_of(other, d1).n, 0);
}
END_TEST

START_TEST(test_items_add_collision)
{
	struct store_item v[3] = { item("Lease", 1), item("ID card", 1),
	    item("ID-card", 1) };
	struct items l;
	unsigned added = 99;

	/* in one batch: an error naming both, and nothing of the batch */
	ck_assert_int_eq(dossier_items_add(st, acme, d1, v, 3, &added, err),
	    DOSSIER_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "\"ID card\""));
	ck_assert_ptr_nonnull(strstr(err, "\"ID-card\""));
	ck_assert_uint_eq(added, 0);
	ck_assert_uint_eq(items_of(acme, d1).n, 0);
	/* against what the dossier has */
	ck_assert_int_eq(dossier_items_add(st, acme, d1, v, 2, &added, err),
	    0);
	ck_assert_int_eq(dossier_items_add(st, acme, d1, &v[2], 1, &added,
	    err), DOSSIER_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "\"ID card\""));
	ck_assert_ptr_nonnull(strstr(err, "\"ID-card\""));
	l = items_of(acme, d1);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.v[1].label, "ID card");
}
END_TEST

/* A dry run's items: what add would add, by its rules, writing none. */
START_TEST(test_items_plan)
{
	struct store_item v[3] = { item("ID card", 1), item("Payslip", 1),
	    item("ID-card", 1) }, *nv = NULL;
	size_t n = 99;

	ck_assert_int_eq(dossier_items_add(st, acme, d1, v, 1, NULL, err), 0);
	ck_assert_msg(dossier_items_plan(st, acme, d1, v, 2, &nv, &n, err) ==
	    0, "%s", err);
	ck_assert_uint_eq(n, 1);		/* ID card is there already */
	ck_assert_str_eq(nv[0].slug, "payslip");
	free(nv);
	ck_assert_uint_eq(items_of(acme, d1).n, 1);	/* nothing written */
	/* the collision add refuses, named the same way */
	ck_assert_int_eq(dossier_items_plan(st, acme, d1, &v[2], 1, &nv, &n,
	    err), DOSSIER_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "\"ID-card\""));
	ck_assert_ptr_null(nv);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(items_of(acme, d1).n, 1);
}
END_TEST

START_TEST(test_items_add_max)
{
	struct store_item v[DOSSIER_ITEMS_MAX + 1];
	char label[32];
	unsigned added = 0;
	int i;

	for (i = 0; i <= DOSSIER_ITEMS_MAX; i++) {
		snprintf(label, sizeof(label), "Doc %d", i + 1);
		v[i] = item(label, 1);
	}
	ck_assert_int_eq(dossier_items_add(st, acme, d1, v,
	    DOSSIER_ITEMS_MAX + 1, &added, err), DOSSIER_EINVAL);
	ck_assert_uint_eq(items_of(acme, d1).n, 0);
	ck_assert_int_eq(dossier_items_add(st, acme, d1, v, 40, &added, err),
	    0);
	ck_assert_int_eq(dossier_items_add(st, acme, d1, v + 40, 11, &added,
	    err), DOSSIER_EINVAL);
	ck_assert_uint_eq(items_of(acme, d1).n, 40);
	/* what is there already does not count twice */
	ck_assert_int_eq(dossier_items_add(st, acme, d1, v, 50, &added, err),
	    0);
	ck_assert_uint_eq(added, 10);
	ck_assert_uint_eq(items_of(acme, d1).n, DOSSIER_ITEMS_MAX);
	ck_assert_int_eq(dossier_items_add(st, acme, d1, v + 50, 1, &added,
	    err), DOSSIER_EINVAL);
}
END_TEST

START_TEST(test_items_add_other_account)
{
	struct store_item v = item("ID card", 1);
	unsigned added = 99;

	/* a dossier of another account, or none: not found, nothing added */
	ck_assert_int_eq(dossier_items_add(st, acme, d3, &v, 1, &added, err),
	    DOSSIER_ENOTFOUND);
	ck_assert_int_eq(dossier_items_add(st, acme, 9999, &v, 1, &added,
	    err), DOSSIER_ENOTFOUND);
	ck_assert_uint_eq(added, 0);
	ck_assert_uint_eq(items_of(other, d3).n, 0);
}
END_TEST

START_TEST(test_item_find)
{
	struct store_item v[3] = { item("ID card", 1), item("2024", 1),
	    item("Payslip", 1) }, it;
	struct items l1, l2;
	char spec[32];

	ck_assert_int_eq(dossier_items_add(st, acme, d1, v, 3, NULL, err), 0);
	ck_assert_int_eq(dossier_items_add(st, acme, d2, v, 1, NULL, err), 0);
	l1 = items_of(acme, d1);
	l2 = items_of(acme, d2);
	ck_assert_int_eq(dossier_item_find(st, acme, d1, "id-card", &it, err),
	    1);
	ck_assert_int_eq(it.id, l1.v[0].id);
	ck_assert_int_eq(dossier_item_find(st, acme, d1, "ID-Card", &it, err),
	    1);
	ck_assert_int_eq(it.id, l1.v[0].id);
	snprintf(spec, sizeof(spec), "%lld", (long long)l1.v[2].id);
	ck_assert_int_eq(dossier_item_find(st, acme, d1, spec, &it, err), 1);
	ck_assert_str_eq(it.slug, "payslip");
	/* a slug of digits is found by its slug */
	ck_assert_int_eq(dossier_item_find(st, acme, d1, "2024", &it, err), 1);
	ck_assert_int_eq(it.id, l1.v[1].id);
	/* another dossier's item, by id or slug; another account */
	snprintf(spec, sizeof(spec), "%lld", (long long)l2.v[0].id);
	ck_assert_int_eq(dossier_item_find(st, acme, d1, spec, &it, err), 0);
	ck_assert_int_eq(dossier_item_find(st, acme, d2, "payslip", &it, err),
	    0);
	ck_assert_int_eq(dossier_item_find(st, other, d1, "id-card", &it,
	    err), 0);
	snprintf(spec, sizeof(spec), "%lld", (long long)l1.v[0].id);
	ck_assert_int_eq(dossier_item_find(st, other, d1, spec, &it, err), 0);
	/* what is no item */
	ck_assert_int_eq(dossier_item_find(st, acme, d1, "", &it, err), 0);
	ck_assert_int_eq(dossier_item_find(st, acme, d1, "0", &it, err), 0);
	ck_assert_int_eq(dossier_item_find(st, acme, d1, "-1", &it, err), 0);
	ck_assert_int_eq(dossier_item_find(st, acme, d1, "99999999999999999999"
	    "9999", &it, err), 0);
	ck_assert_int_eq(dossier_item_find(st, acme, d1, "none", &it, err), 0);
	ck_assert_int_eq(dossier_item_find(st, acme, d1, "id%", &it, err), 0);
	ck_assert_int_eq(dossier_item_find(st, acme, d1,
	    "abcdefghijklmnopqrstuvwxyzabcdefgh", &it, err), 0);
}
END_TEST

START_TEST(test_item_address)
{
	struct store_dossier d;
	struct store_item it = item("Proof of address", 1);
	char out[160];

	memset(&d, 0, sizeof(d));
	snprintf(d.intake_local, sizeof(d.intake_local), "%s",
	    "d-abcdefghijklmnopqrstuvwxyz");
	dossier_item_address("dossiers.example", &d, &it, out, sizeof(out));
	ck_assert_str_eq(out, "d-abcdefghijklmnopqrstuvwxyz+proof-of-address"
	    "@dossiers.example");
	dossier_item_address("dossiers.example", &d, NULL, out, sizeof(out));
	ck_assert_str_eq(out, "d-abcdefghijklmnopqrstuvwxyz@dossiers.example");
	/* 38 + 1 + 25 = 64 octets: the item address */
	snprintf(d.intake_local, sizeof(d.intake_local), "%s",
	    "d-abcdefghijklmnopqrstuvwxyz0123456789");
	snprintf(it.slug, sizeof(it.slug), "%s", "abcdefghijklmnopqrstuvwxy");
	dossier_item_address("dossiers.example", &d, &it, out, sizeof(out));
	ck_assert_str_eq(out, "d-abcdefghijklmnopqrstuvwxyz0123456789"
	    "+abcdefghijklmnopqrstuvwxy@dossiers.example");
	/* 65: the plain address, which still reaches the dossier */
	snprintf(it.slug, sizeof(it.slug), "%s", "abcdefghijklmnopqrstuvwxyz");
	dossier_item_address("dossiers.example", &d, &it, out, sizeof(out));
	ck_assert_str_eq(out, "d-abcdefghijklmnopqrstuvwxyz0123456789"
	    "@dossiers.example");
}
END_TEST

/* ---- checklists ---- */

struct names {
	char v[8][64];
	int n;
};

static int
names_cb(const struct store_checklist *c, void *ctx)
{
	struct names *l = ctx;

	ck_assert_int_lt(l->n, 8);
	snprintf(l->v[l->n++], sizeof(l->v[0]), "%s", c->name);
	return 0;
}

START_TEST(test_checklists)
{
	struct store_item v[3] = { item("ID card|pdf/jpeg|5MB", 1),
	    item("Proof of address", 1), item("Bank details", 0) }, *r = NULL,
	    dup[2] = { item("ID card", 1), item("ID-card", 1) },
	    same[2] = { item("ID card", 1), item("ID card", 1) };
	struct names l;
	size_t n = 99;

	ck_assert_msg(dossier_checklist_add(st, acme, "kyc-individual", v, 3,
	    err) == 0, "%s", err);
	ck_assert_msg(dossier_checklist_add(st, acme, "lease", v + 1, 1,
	    err) == 0, "%s", err);
	/* another account may use the same name */
	ck_assert_msg(dossier_checklist_add(st, other, "lease", v, 1,
	    err) == 0, "%s", err);
	/* a name taken in the account: refused, as bad input */
	ck_assert_int_eq(dossier_checklist_add(st, acme, "lease", v, 1, err),
	    DOSSIER_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "lease"));
	/* bad names, no items, too many, a collision, twice the same */
	ck_assert_int_eq(dossier_checklist_add(st, acme, "KYC", v, 1, err),
	    DOSSIER_EINVAL);
	ck_assert_int_eq(dossier_checklist_add(st, acme, "../x", v, 1, err),
	    DOSSIER_EINVAL);
	ck_assert_int_eq(dossier_checklist_add(st, acme, "", v, 1, err),
	    DOSSIER_EINVAL);
	ck_assert_int_eq(dossier_checklist_add(st, acme,
	    "abcdefghijklmnopqrstuvwxyzabcdefg", v, 1, err), DOSSIER_EINVAL);
	ck_assert_int_eq(dossier_checklist_add(st, acme, "empty", v, 0, err),
	    DOSSIER_EINVAL);
	ck_assert_int_eq(dossier_checklist_add(st, acme, "many", v,
	    DOSSIER_ITEMS_MAX + 1, err), DOSSIER_EINVAL);
	ck_assert_int_eq(dossier_checklist_add(st, acme, "dup", dup, 2, err),
	    DOSSIER_EINVAL);
	ck_assert_int_eq(dossier_checklist_add(st, acme, "same", same, 2,
	    err), DOSSIER_EINVAL);
	/* the list: the account's own, by name */
	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(dossier_checklist_list(st, acme, names_cb, &l, err),
	    0);
	ck_assert_int_eq(l.n, 2);
	ck_assert_str_eq(l.v[0], "kyc-individual");
	ck_assert_str_eq(l.v[1], "lease");
	/* the items round trip, in order */
	ck_assert_int_eq(dossier_checklist_items(st, acme, "kyc-individual",
	    &r, &n, err), 1);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(r[0].label, "ID card");
	ck_assert_str_eq(r[0].slug, "id-card");
	ck_assert_str_eq(r[0].types, "PDF, JPEG");
	ck_assert_int_eq(r[0].max_size, 5 * MB);
	ck_assert_int_eq(r[0].required, 1);
	ck_assert_str_eq(r[1].label, "Proof of address");
	ck_assert_str_eq(r[2].label, "Bank details");
	ck_assert_int_eq(r[2].required, 0);
	free(r);
	ck_assert_int_eq(dossier_checklist_items(st, acme, "nope", &r, &n,
	    err), 0);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(dossier_checklist_items(st, other, "kyc-individual",
	    &r, &n, err), 0);
}
END_TEST

/* ---- the contact as a person ---- */

static const struct {
	const char *in;
	int ok;
	const char *email, *name;
} contact_rows[] = {
	{ "Zo\xc3\xa9 Martin <zoe@example.fr>", 1, "zoe@example.fr",
	  "Zo\xc3\xa9 Martin" },
	{ "zoe@example.fr", 1, "zoe@example.fr", "" },
	{ "  zoe@example.fr  ", 1, "zoe@example.fr", "" },
	{ "<zoe@example.fr>", 1, "zoe@example.fr", "" },
	{ "\"Martin, Zo\xc3\xa9\" <zoe@example.fr>", 1, "zoe@example.fr",
	  "Martin, Zo\xc3\xa9" },
	{ "  Zo\xc3\xa9   <zoe@example.fr>", 1, "zoe@example.fr",
	  "Zo\xc3\xa9" },
	{ "Zo\xc3\xa9 Martin <zoe@example.fr>  ", 1, "zoe@example.fr",
	  "Zo\xc3\xa9 Martin" },
	{ "Zoe <Zoe.Martin@Example.FR>", 1, "Zoe.Martin@Example.FR", "Zoe" },
	/* a quoted-string's escapes (RFC 5322 3.2.4) are not the name's */
	{ "\"Zo\xc3\xa9 \\\"Z\\\" Martin\" <zoe@example.fr>", 1,
	  "zoe@example.fr", "Zo\xc3\xa9 \"Z\" Martin" },
	{ "\"a\\\\b\" <zoe@example.fr>", 1, "zoe@example.fr", "a\\b" },
	{ "", 0, NULL, NULL },
	{ "Zo\xc3\xa9 Martin", 0, NULL, NULL },
	{ "Zo\xc3\xa9 <zoe@example.fr", 0, NULL, NULL },
	{ "Zo\xc3\xa9 <zoe@example.fr> x", 0, NULL, NULL },
	{ "Zo\xc3\xa9 <>", 0, NULL, NULL },
	{ "Zo\xc3\xa9 <zoe>", 0, NULL, NULL },
	{ "Zo\xc3\xa9 <zoe@localhost>", 0, NULL, NULL },
	{ "Zo\xc3\xa9 <zoe@example.fr> <max@example.fr>", 0, NULL, NULL },
	{ "a <b> <zoe@example.fr>", 0, NULL, NULL },
	{ "Zo\ne <zoe@example.fr>", 0, NULL, NULL },
	{ "Zo\xc3 <zoe@example.fr>", 0, NULL, NULL },
	{ "zoe@example.fr, max@example.fr", 0, NULL, NULL },
};

START_TEST(test_parse_contact)
{
	char email[256] = "untouched", name[256] = "untouched";
	int ok = dossier_parse_contact(contact_rows[_i].in, email,
	    sizeof(email), name, sizeof(name));

	ck_assert_msg(ok == contact_rows[_i].ok, "row %d \"%s\": %d", _i,
	    contact_rows[_i].in, ok);
	if (!ok)
		return;
	ck_assert_str_eq(email, contact_rows[_i].email);
	ck_assert_str_eq(name, contact_rows[_i].name);
}
END_TEST

START_TEST(test_valid_locale)
{
	static const struct { const char *s; int ok; } t[] = {
		{ "fr", 1 }, { "en", 1 }, { "pt-BR", 1 }, { "de-CH", 1 },
		{ "ast", 1 }, { "zh-Hant", 1 }, { "sr-Latn1234", 1 },
		{ "es-419", 1 }, { "f", 0 }, { "", 0 }, { "FR", 0 },
		{ "fr-", 0 }, { "fr_FR", 0 }, { "fr-F", 0 }, { "fran", 0 },
		{ "../en", 0 }, { "en/x", 0 }, { "en-US-x", 0 }, { "fr ", 0 },
	};
	size_t i;

	for (i = 0; i < NELEM(t); i++)
		ck_assert_msg(dossier_valid_locale(t[i].s) == t[i].ok,
		    "\"%s\"", t[i].s);
}
END_TEST

/* ---- a new dossier with its checklist ---- */

static int
count_dossiers_cb(const struct store_dossier *d, void *ctx)
{
	(void)d;
	(*(int *)ctx)++;
	return 0;
}

START_TEST(test_create_with)
{
	struct store_item ck[2] = { item("ID card", 1), item("Bank details",
	    0) }, extra[2] = { item("Payslip|pdf", 1), item("ID card", 1) };
	struct dossier_new n = { .contact = "Zo\xc3\xa9 Martin "
	    "<Zoe@Example.fr>", .locale = "fr", .ref = "NEW-1",
	    .checklist = "kyc", .items = extra, .n_items = 2,
	    .due = "2026-12-20" };
	struct store_dossier d;
	struct items l;
	int64_t id = 0, again = 0;
	int count = 0;

	ck_assert_int_eq(dossier_checklist_add(st, acme, "kyc", ck, 2, err),
	    0);
	ck_assert_msg(dossier_create_with(st, acme, &n, &id, err) == 0, "%s",
	    err);
	ck_assert_int_eq(dossier_get(st, acme, id, &d, err), 1);
	ck_assert_str_eq(d.contact, "zoe@example.fr");
	ck_assert_str_eq(d.contact_name, "Zo\xc3\xa9 Martin");
	ck_assert_str_eq(d.contact_locale, "fr");
	ck_assert_str_eq(d.due, "2026-12-20");
	/* the checklist's items then the given ones, the same skipped */
	l = items_of(acme, id);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.v[0].slug, "id-card");
	ck_assert_str_eq(l.v[1].slug, "bank-details");
	ck_assert_int_eq(l.v[1].required, 0);
	ck_assert_str_eq(l.v[2].slug, "payslip");
	ck_assert_str_eq(l.v[2].types, "PDF");

	/* the ref is taken: 1 and that dossier, nothing else changes */
	n.checklist = NULL;
	n.contact = "Max <max@example.de>";
	ck_assert_int_eq(dossier_create_with(st, acme, &n, &again, err), 1);
	ck_assert_int_eq(again, id);
	ck_assert_uint_eq(items_of(acme, id).n, 3);

	/* an unknown checklist: not found, and no dossier */
	n.ref = "NEW-2";
	n.checklist = "nope";
	ck_assert_int_eq(dossier_create_with(st, acme, &n, &again, err),
	    DOSSIER_ENOTFOUND);
	ck_assert_int_eq(dossier_list(st, acme, NULL, count_dossiers_cb,
	    &count, err), 0);
	ck_assert_int_eq(count, 3);			/* R1, R2, NEW-1 */
	/* another account's checklist is not this one's */
	ck_assert_int_eq(dossier_create_with(st, other, &(struct dossier_new){
	    .contact = "max@example.de", .ref = "O-1", .checklist = "kyc" },
	    &again, err), DOSSIER_ENOTFOUND);
}
END_TEST

START_TEST(test_create_with_refused)
{
	struct store_item bad[2] = { item("ID card", 1), item("ID-card", 1) };
	struct dossier_new n = { .contact = "zoe@example.fr", .ref = "NEW-3" };
	int64_t id = 0;
	int count = 0;

	n.contact = "Zo\xc3\xa9 <zoe@localhost>";
	ck_assert_int_eq(dossier_create_with(st, acme, &n, &id, err),
	    DOSSIER_EINVAL);
	/* what a front end left out is bad input, not a crash */
	n.contact = NULL;
	ck_assert_int_eq(dossier_create_with(st, acme, &n, &id, err),
	    DOSSIER_EINVAL);
	n.contact = "zoe@example.fr";
	n.ref = NULL;
	ck_assert_int_eq(dossier_create_with(st, acme, &n, &id, err),
	    DOSSIER_EINVAL);
	n.ref = "";
	ck_assert_int_eq(dossier_create_with(st, acme, &n, &id, err),
	    DOSSIER_EINVAL);
	n.ref = "NEW-3";
	n.contact = "zoe@example.fr";
	n.locale = "French";
	ck_assert_int_eq(dossier_create_with(st, acme, &n, &id, err),
	    DOSSIER_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "French"));
	n.locale = NULL;
	n.due = "2026-02-30";
	ck_assert_int_eq(dossier_create_with(st, acme, &n, &id, err),
	    DOSSIER_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "2026-02-30"));
	n.due = NULL;
	/* a collision in the items: no dossier either */
	n.items = bad;
	n.n_items = 2;
	ck_assert_int_eq(dossier_create_with(st, acme, &n, &id, err),
	    DOSSIER_EINVAL);
	ck_assert_int_eq(dossier_list(st, acme, NULL, count_dossiers_cb,
	    &count, err), 0);
	ck_assert_int_eq(count, 2);			/* R1, R2 */
	/* an empty locale or due is none */
	n.items = NULL;
	n.n_items = 0;
	n.locale = "";
	n.due = "";
	ck_assert_msg(dossier_create_with(st, acme, &n, &id, err) == 0, "%s",
	    err);
}
END_TEST

START_TEST(test_contact_set)
{
	struct store_dossier d;

	ck_assert_int_eq(dossier_contact_set(st, acme, "ZOE@example.fr",
	    "Zo\xc3\xa9 Martin", "fr", err), 0);
	ck_assert_int_eq(dossier_get(st, acme, d1, &d, err), 1);
	ck_assert_str_eq(d.contact_name, "Zo\xc3\xa9 Martin");
	ck_assert_str_eq(d.contact_locale, "fr");
	/* NULL or "": kept */
	ck_assert_int_eq(dossier_contact_set(st, acme, "zoe@example.fr", "",
	    NULL, err), 0);
	ck_assert_int_eq(dossier_get(st, acme, d2, &d, err), 1);
	ck_assert_str_eq(d.contact_name, "Zo\xc3\xa9 Martin");
	ck_assert_str_eq(d.contact_locale, "fr");
	ck_assert_int_eq(dossier_contact_set(st, acme, "zoe@example.fr", NULL,
	    "FR", err), DOSSIER_EINVAL);
	ck_assert_int_eq(dossier_contact_set(st, acme, "zoe@example.fr",
	    "a\nb", NULL, err), DOSSIER_EINVAL);
	/* another account's contact of the same address is another person */
	ck_assert_int_eq(dossier_contact_set(st, other, "zoe@example.fr", "X",
	    "en", err), 0);
	ck_assert_int_eq(dossier_get(st, acme, d1, &d, err), 1);
	ck_assert_str_eq(d.contact_locale, "fr");
}
END_TEST

static Suite *
item_suite(void)
{
	Suite *s = suite_create("dossier_item");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_item_parse, 0, NELEM(parse_rows));
	tcase_add_test(tc, test_item_parse_lengths);
	tcase_add_loop_test(tc, test_item_from_json, 0, NELEM(json_rows));
	tcase_add_test(tc, test_items_parse_csv);
	tcase_add_test(tc, test_items_add);
	tcase_add_test(tc, test_items_add_collision);
	tcase_add_test(tc, test_items_plan);
	tcase_add_test(tc, test_items_add_max);
	tcase_add_test(tc, test_items_add_other_account);
	tcase_add_test(tc, test_item_find);
	tcase_add_test(tc, test_item_address);
	tcase_add_test(tc, test_checklists);
	tcase_add_loop_test(tc, test_parse_contact, 0, NELEM(contact_rows));
	tcase_add_test(tc, test_valid_locale);
	tcase_add_test(tc, test_create_with);
	tcase_add_test(tc, test_create_with_refused);
	tcase_add_test(tc, test_contact_set);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(item_suite());
}

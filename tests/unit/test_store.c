/*
 * test_store.c - unit tests for store.c (schema, migrations, accounts,
 * dossiers, tenant isolation, intake rows, events) and blob.c (writer,
 * dedup, adopt, digest validation).  Each test gets a fresh mkdtemp dir.
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "store.h"
#include "util.h"

/* sha256("abc"), FIPS 180-2 appendix B.1 */
#define SHA_ABC \
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char tmpdir[256];
static char dbpath[512];
static char blobroot[512];
static struct store *st;
static char err[PD_ERRLEN];

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pd-test-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/var/postdoc.db", tmpdir);
	snprintf(blobroot, sizeof(blobroot), "%s/var/blobs", tmpdir);
	ck_assert_msg(store_open(dbpath, "full", &st, err) == 0, "%s", err);
}

static int
rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

static void
teardown(void)
{
	store_close(&st);
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int64_t
add_account(const char *name)
{
	int64_t id = 0;

	ck_assert_msg(store_account_add(st, name, "any", &id, err) == 0,
	    "%s", err);
	ck_assert_int_gt(id, 0);
	return id;
}

static int64_t
add_dossier(int64_t acct, const char *ref, const char *local)
{
	int64_t id = 0;

	ck_assert_msg(store_dossier_create(st, acct, "Client@Example.ORG", ref,
	    local, &id, err) == 0, "%s", err);
	ck_assert_int_gt(id, 0);
	return id;
}

static int
count_cb(const void *row, void *ctx)
{
	(void)row;
	(*(int *)ctx)++;
	return 0;
}

/* ---- schema ---- */

START_TEST(test_migrations)
{
	ck_assert_int_eq(store_schema_version(st), STORE_SCHEMA_VERSION);
	add_account("acme");
	store_close(&st);
	/* Re-opening runs no migration twice and keeps the data. */
	ck_assert_msg(store_open(dbpath, "normal", &st, err) == 0, "%s", err);
	ck_assert_int_eq(store_schema_version(st), STORE_SCHEMA_VERSION);
	struct store_account a;
	ck_assert_int_eq(store_account_get(st, "acme", &a, err), 1);
}
END_TEST

/* ---- accounts ---- */

START_TEST(test_accounts)
{
	struct store_account a;
	int64_t id = add_account("acme"), id2;
	int n = 0;

	ck_assert_int_eq(store_account_get(st, "acme", &a, err), 1);
	ck_assert_int_eq(a.id, id);
	ck_assert_str_eq(a.name, "acme");
	ck_assert_str_eq(a.sender_policy, "any");
	ck_assert_int_eq(store_account_get(st, "nope", &a, err), 0);
	ck_assert_int_eq(store_account_add(st, "acme", "contact", &id2, err),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "already exists"));
	add_account("other");
	ck_assert_int_eq(store_account_list(st,
	    (store_account_cb)count_cb, &n, err), 0);
	ck_assert_int_eq(n, 2);
}
END_TEST

/* ---- dossiers ---- */

static int
is_base32_local(const char *s)
{
	size_t i;

	if (strlen(s) != 28 || strncmp(s, "d-", 2) != 0)
		return 0;
	for (i = 2; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '2' && s[i] <= '7')))
			return 0;
	return 1;
}

START_TEST(test_dossier_generated_local)
{
	int64_t acct = add_account("acme");
	int64_t id = add_dossier(acct, "CASE-1", NULL);
	int64_t id2 = add_dossier(acct, "CASE-2", NULL);
	struct store_dossier d, d2;

	ck_assert_int_eq(store_dossier_get(st, acct, id, &d, err), 1);
	ck_assert_msg(is_base32_local(d.intake_local), "bad local %s",
	    d.intake_local);
	ck_assert_str_eq(d.status, "open");
	ck_assert_str_eq(d.ref, "CASE-1");
	ck_assert_str_eq(d.account, "acme");
	ck_assert_str_eq(d.contact, "client@example.org");
	ck_assert_int_eq(store_dossier_get(st, acct, id2, &d2, err), 1);
	ck_assert_str_ne(d.intake_local, d2.intake_local);
	/* same ref twice in one account is refused */
	ck_assert_int_eq(store_dossier_create(st, acct, "x@example.org",
	    "CASE-1", NULL, NULL, err), -1);
}
END_TEST

START_TEST(test_dossier_by_local)
{
	int64_t acct = add_account("acme");
	int64_t id = add_dossier(acct, "R", "d-7f3a9c2e");
	struct store_dossier d;

	ck_assert_int_eq(store_dossier_by_local(st, "d-7f3a9c2e", &d, err), 1);
	ck_assert_int_eq(d.id, id);
	ck_assert_int_eq(d.account_id, acct);
	ck_assert_int_eq(store_dossier_by_local(st, "D-7F3A9C2E", &d, err), 1);
	ck_assert_int_eq(store_dossier_by_local(st, "d-00000000", &d, err), 0);
	/* the intake address is unique store-wide */
	ck_assert_int_eq(store_dossier_create(st, acct, "a@b.example", "R2",
	    "d-7f3a9c2e", NULL, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "already in use"));
}
END_TEST

START_TEST(test_tenant_isolation)
{
	int64_t a = add_account("alpha"), b = add_account("beta");
	int64_t id = add_dossier(a, "SHARED-REF", NULL);
	struct store_dossier d;
	struct store_message m = { 0 };
	int n = 0;

	ck_assert_int_eq(store_dossier_by_ref(st, a, "SHARED-REF", &d, err), 1);
	ck_assert_int_eq(store_dossier_by_ref(st, b, "SHARED-REF", &d, err), 0);
	ck_assert_int_eq(store_dossier_get(st, b, id, &d, err), 0);
	ck_assert_int_eq(store_dossier_get(st, 0, id, &d, err), 1);
	ck_assert_int_eq(store_dossier_close(st, b, id, err), -1);
	ck_assert_int_eq(store_dossier_get(st, a, id, &d, err), 1);
	ck_assert_str_eq(d.status, "open");
	/* another tenant may use the same ref for its own dossier */
	add_dossier(b, "SHARED-REF", NULL);
	ck_assert_int_eq(store_dossier_list(st, b, NULL,
	    (store_dossier_cb)count_cb, &n, err), 0);
	ck_assert_int_eq(n, 1);
	n = 0;
	ck_assert_int_eq(store_event_list(st, b, id,
	    (store_event_cb)count_cb, &n, err), 0);
	ck_assert_int_eq(n, 0);
	/* a row claiming beta's account for alpha's dossier is refused */
	m.account_id = b;
	m.dossier_id = id;
	m.size = 3;
	m.sha256 = SHA_ABC;
	ck_assert_int_eq(store_message_add(st, &m, NULL, err), -1);
}
END_TEST

START_TEST(test_dossier_close)
{
	int64_t acct = add_account("acme");
	int64_t id = add_dossier(acct, "R", NULL);
	struct store_dossier d;
	int n = 0;

	ck_assert_msg(store_dossier_close(st, acct, id, err) == 0, "%s", err);
	ck_assert_int_eq(store_dossier_get(st, acct, id, &d, err), 1);
	ck_assert_str_eq(d.status, "closed");
	ck_assert_int_gt(d.closed, 0);
	ck_assert_int_eq(store_dossier_close(st, acct, id, err), 0);
	ck_assert_int_eq(store_dossier_close(st, acct, id + 100, err), -1);
	ck_assert_int_eq(store_dossier_list(st, acct, "open",
	    (store_dossier_cb)count_cb, &n, err), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(store_dossier_list(st, acct, "closed",
	    (store_dossier_cb)count_cb, &n, err), 0);
	ck_assert_int_eq(n, 1);
}
END_TEST

/* ---- intake rows ---- */

static int64_t
add_message(int64_t acct, int64_t dossier, const char *sha)
{
	struct store_message m = {
		.account_id = acct, .dossier_id = dossier,
		.queue_id = "Q1", .mail_from = "client@example.org",
		.rcpt_to = "d-7f3a9c2e@dossiers.example", .helo = "mx",
		.client_ip = "192.0.2.1", .tls = 1, .message_id = "<m@x>",
		.subject = "Pièces", .size = 1234, .sha256 = sha,
		.parse_status = "ok", .anomalies = "",
	};
	int64_t id = 0;

	ck_assert_msg(store_message_add(st, &m, &id, err) == 0, "%s", err);
	return id;
}

START_TEST(test_message_document)
{
	int64_t acct = add_account("acme"), other = add_account("other");
	int64_t dos = add_dossier(acct, "R", NULL), mid, did, dup;
	struct store_document doc = { 0 };
	struct store_doc_row dr;
	struct store_msg_row mr;
	int n = 0;

	ck_assert_msg(store_begin(st, err) == 0, "%s", err);
	mid = add_message(acct, dos, SHA_A);
	ck_assert_int_eq(store_message_find_dup(st, dos, SHA_A, &dup, err), 1);
	ck_assert_int_eq(dup, mid);
	ck_assert_int_eq(store_message_find_dup(st, dos, SHA_B, &dup, err), 0);
	doc = (struct store_document){ .account_id = acct, .dossier_id = dos,
	    .message_id = mid, .filename = "scan.pdf", .stored_name = "doc-1.pdf",
	    .declared_type = "application/pdf", .sniffed_type = "application/pdf",
	    .size = 3, .sha256 = SHA_ABC, .part_path = "2" };
	ck_assert_msg(store_document_add(st, &doc, &did, err) == 0, "%s", err);
	/* the message's own parts are not duplicates of each other... */
	ck_assert_int_eq(store_document_find_dup(st, dos, mid, SHA_ABC, &dup,
	    err), 0);
	/* ...but a later message bringing the same bytes is */
	ck_assert_int_eq(store_document_find_dup(st, dos, mid + 1000, SHA_ABC,
	    &dup, err), 1);
	ck_assert_int_eq(dup, did);
	/* UNIQUE(message_id, part_path): one row per part */
	ck_assert_int_eq(store_document_add(st, &doc, NULL, err), -1);
	ck_assert_msg(store_commit(st, err) == 0, "%s", err);

	ck_assert_int_eq(store_document_list(st, acct, dos,
	    (store_doc_cb)count_cb, &n, err), 0);
	ck_assert_int_eq(n, 1);
	n = 0;
	ck_assert_int_eq(store_message_list(st, acct, dos,
	    (store_msg_cb)count_cb, &n, err), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(store_document_get(st, acct, did, &dr, err), 1);
	ck_assert_str_eq(dr.filename, "scan.pdf");
	ck_assert_str_eq(dr.sha256, SHA_ABC);
	ck_assert_int_eq(dr.message_id, mid);
	ck_assert_int_eq(store_document_get(st, other, did, &dr, err), 0);
	ck_assert_int_eq(store_message_get(st, acct, mid, &mr, err), 1);
	ck_assert_str_eq(mr.subject, "Pièces");
	ck_assert_int_eq(mr.tls, 1);
	ck_assert_int_eq(mr.size, 1234);
	ck_assert_int_eq(store_message_get(st, other, mid, &mr, err), 0);
}
END_TEST

START_TEST(test_rollback)
{
	int64_t acct = add_account("acme");
	int64_t dos = add_dossier(acct, "R", NULL);
	int n = 0;

	ck_assert_msg(store_begin(st, err) == 0, "%s", err);
	add_message(acct, dos, SHA_A);
	store_rollback(st);
	ck_assert_int_eq(store_message_list(st, acct, dos,
	    (store_msg_cb)count_cb, &n, err), 0);
	ck_assert_int_eq(n, 0);
}
END_TEST

struct ev_ctx {
	int n;
	char kinds[4][64];
};

static int
ev_cb(const struct store_event_row *r, void *ctx)
{
	struct ev_ctx *c = ctx;

	if (c->n < 4)
		snprintf(c->kinds[c->n], sizeof(c->kinds[0]), "%s", r->kind);
	c->n++;
	return 0;
}

START_TEST(test_events)
{
	int64_t acct = add_account("acme");
	int64_t dos = add_dossier(acct, "R", NULL);
	struct ev_ctx c = { 0 };

	ck_assert_msg(store_event_add(st, acct, dos, "message.received",
	    "queue Q1\r\nforged", err) == 0, "%s", err);
	ck_assert_msg(store_dossier_close(st, acct, dos, err) == 0, "%s", err);
	ck_assert_int_eq(store_event_list(st, acct, dos, ev_cb, &c, err), 0);
	ck_assert_int_eq(c.n, 3);
	ck_assert_str_eq(c.kinds[0], "dossier.created");
	ck_assert_str_eq(c.kinds[1], "message.received");
	ck_assert_str_eq(c.kinds[2], "dossier.closed");
}
END_TEST

/* ---- blobs ---- */

static void
write_blob(struct blob_store *bs, const char *data, char sha[65])
{
	struct blob_writer w;
	size_t len = strlen(data), half = len / 2;

	ck_assert_msg(blob_writer_begin(bs, &w, err) == 0, "%s", err);
	ck_assert_int_eq(blob_writer_write(&w, data, half), 0);
	ck_assert_int_eq(blob_writer_write(&w, data + half, len - half), 0);
	ck_assert_int_eq(w.size, len);
	ck_assert_msg(blob_writer_commit(bs, &w, sha, err) == 0, "%s", err);
}

static int
dir_entries(const char *path)
{
	char cmd[1024];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", path);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

START_TEST(test_blob_write)
{
	struct blob_store *bs;
	char sha[65], path[4096], buf[16] = "", expect[4096];
	FILE *f;

	ck_assert_msg(blob_store_open(blobroot, &bs, err) == 0, "%s", err);
	write_blob(bs, "abc", sha);
	ck_assert_str_eq(sha, SHA_ABC);
	ck_assert_int_eq(blob_exists(bs, sha), 1);
	blob_path(bs, sha, path, sizeof(path));
	snprintf(expect, sizeof(expect), "%s/ba/78/%s", blobroot, SHA_ABC);
	ck_assert_str_eq(path, expect);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(buf, 1, sizeof(buf) - 1, f), 3);
	fclose(f);
	ck_assert_str_eq(buf, "abc");
	ck_assert_int_eq(blob_remove(bs, sha), 0);
	ck_assert_int_eq(blob_exists(bs, sha), 0);
	blob_store_free(&bs);
	ck_assert_ptr_null(bs);
}
END_TEST

START_TEST(test_blob_dedup)
{
	struct blob_store *bs;
	char sha1[65], sha2[65], tmp[600], fan[600];

	ck_assert_msg(blob_store_open(blobroot, &bs, err) == 0, "%s", err);
	write_blob(bs, "same bytes", sha1);
	write_blob(bs, "same bytes", sha2);
	ck_assert_str_eq(sha1, sha2);
	snprintf(tmp, sizeof(tmp), "%s/tmp", blobroot);
	snprintf(fan, sizeof(fan), "%s/%.2s/%.2s", blobroot, sha1, sha1 + 2);
	ck_assert_int_eq(dir_entries(tmp), 0);
	ck_assert_int_eq(dir_entries(fan), 1);
	blob_store_free(&bs);
}
END_TEST

START_TEST(test_blob_abort)
{
	struct blob_store *bs;
	struct blob_writer w;
	char tmp[600];

	ck_assert_msg(blob_store_open(blobroot, &bs, err) == 0, "%s", err);
	ck_assert_int_eq(blob_writer_begin(bs, &w, err), 0);
	ck_assert_int_eq(blob_writer_write(&w, "x", 1), 0);
	blob_writer_abort(&w);
	snprintf(tmp, sizeof(tmp), "%s/tmp", blobroot);
	ck_assert_int_eq(dir_entries(tmp), 0);
	blob_store_free(&bs);
}
END_TEST

START_TEST(test_blob_adopt)
{
	struct blob_store *bs;
	char src[600];
	FILE *f;

	ck_assert_msg(blob_store_open(blobroot, &bs, err) == 0, "%s", err);
	snprintf(src, sizeof(src), "%s/tmp/spool-1", blobroot);
	f = fopen(src, "w");
	ck_assert_ptr_nonnull(f);
	fputs("abc", f);
	fclose(f);
	ck_assert_msg(blob_adopt(bs, src, SHA_ABC, err) == 0, "%s", err);
	ck_assert_int_eq(blob_exists(bs, SHA_ABC), 1);
	ck_assert_int_eq(access(src, F_OK), -1);
	blob_store_free(&bs);
}
END_TEST

/* Digests that must never become a path. */
static const char *const bad_shas[] = {
	"../../../../etc/passwd",
	"",
	"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0",
	"ba/816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	"..7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
};

START_TEST(test_blob_bad_sha)
{
	struct blob_store *bs;
	char path[4096] = "x", src[600];
	const char *sha = bad_shas[_i];
	FILE *f;

	ck_assert_msg(blob_store_open(blobroot, &bs, err) == 0, "%s", err);
	ck_assert_int_eq(blob_sha_valid(sha), 0);
	blob_path(bs, sha, path, sizeof(path));
	ck_assert_str_eq(path, "");
	ck_assert_int_eq(blob_exists(bs, sha), 0);
	ck_assert_int_eq(blob_remove(bs, sha), -1);
	snprintf(src, sizeof(src), "%s/tmp/spool-2", blobroot);
	f = fopen(src, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(blob_adopt(bs, src, sha, err), -1);
	ck_assert_int_eq(access(src, F_OK), 0);
	ck_assert_int_eq(blob_sha_valid(SHA_ABC), 1);
	blob_store_free(&bs);
}
END_TEST

static Suite *
store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	TCase *tb = tcase_create("blob");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_migrations);
	tcase_add_test(tc, test_accounts);
	tcase_add_test(tc, test_dossier_generated_local);
	tcase_add_test(tc, test_dossier_by_local);
	tcase_add_test(tc, test_tenant_isolation);
	tcase_add_test(tc, test_dossier_close);
	tcase_add_test(tc, test_message_document);
	tcase_add_test(tc, test_rollback);
	tcase_add_test(tc, test_events);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tb, setup, teardown);
	tcase_add_test(tb, test_blob_write);
	tcase_add_test(tb, test_blob_dedup);
	tcase_add_test(tb, test_blob_abort);
	tcase_add_test(tb, test_blob_adopt);
	tcase_add_loop_test(tb, test_blob_bad_sha, 0,
	    (int)(sizeof(bad_shas) / sizeof(bad_shas[0])));
	suite_add_tcase(s, tb);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * test_store.c - unit tests for store.c (schema, migrations, accounts,
 * dossiers, tenant isolation, intake rows, events; v2: document requests,
 * the outbound queue and its claim across processes, suppressions),
 * blob.c (writer, dedup, adopt, digest validation) and outq.c over them
 * (queueing, bounces, delivery and the runner through the real `file`
 * plugin when the build tree has it), rawmsg.c (a small raw message
 * inline in the store, else a blob file); v8: a v7 file's requested
 * names become items.  Each test gets a fresh mkdtemp dir.
 */
#include <check.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/blob.h"
#include "lib/config.h"
#include "outbound/outq.h"
#include "plugin/plugin_host.h"
#include "store/rawmsg.h"
#include "store/store.h"
#include "testlib.h"
#include "lib/util.h"

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
	tl_tmpdir(tmpdir, sizeof(tmpdir), "store");
	snprintf(dbpath, sizeof(dbpath), "%s/var/postdoc.db", tmpdir);
	snprintf(blobroot, sizeof(blobroot), "%s/var/blobs", tmpdir);
	st = tl_store_open(dbpath, "full");
}

static void
teardown(void)
{
	store_close(&st);
	tl_rmtree(tmpdir);
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

/* A reader in another connection holds the WAL: truncation waits for
 * nobody and says "busy"; once the reader is gone the file is empty. */
START_TEST(test_wal_truncate)
{
	int64_t acct = add_account("acme");
	sqlite3 *rd = NULL;
	int i;

	ck_assert_int_eq(sqlite3_open_v2(dbpath, &rd, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(rd, "BEGIN; SELECT count(*) FROM "
	    "accounts;", NULL, NULL, NULL), SQLITE_OK);
	for (i = 0; i < 50; i++) {
		char ref[16];

		snprintf(ref, sizeof(ref), "R%d", i);
		add_dossier(acct, ref, NULL);
	}
	ck_assert_int_gt(store_wal_size(dbpath), 0);
	ck_assert_int_eq(store_wal_truncate(st, err), 1);
	ck_assert_int_gt(store_wal_size(dbpath), 0);
	sqlite3_exec(rd, "COMMIT", NULL, NULL, NULL);
	ck_assert_msg(store_wal_truncate(st, err) == 0, "%s", err);
	ck_assert_int_eq(store_wal_size(dbpath), 0);
	sqlite3_close(rd);
	ck_assert_int_eq(store_wal_size("/nonexistent/postdoc.db"), 0);
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


/* ---- schema v2 ---- */

/*
 * Migration 1 exactly as shipped, so a database written by the previous
 * postdoc can be built here and opened by this one.
 */
static const char v1_sql[] =
	"CREATE TABLE accounts (id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE, sender_policy TEXT NOT NULL DEFAULT 'any',"
	" created INTEGER NOT NULL);"
	"CREATE TABLE contacts (id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" email TEXT NOT NULL, name TEXT, created INTEGER NOT NULL,"
	" UNIQUE (account_id, email), UNIQUE (id, account_id));"
	"CREATE TABLE dossiers (id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" contact_id INTEGER NOT NULL, ref TEXT NOT NULL,"
	" intake_local TEXT NOT NULL UNIQUE,"
	" status TEXT NOT NULL DEFAULT 'open'"
	"  CHECK (status IN ('open', 'closed')),"
	" created INTEGER NOT NULL, closed INTEGER,"
	" UNIQUE (account_id, ref), UNIQUE (id, account_id),"
	" FOREIGN KEY (contact_id, account_id)"
	"  REFERENCES contacts(id, account_id));"
	"CREATE INDEX dossiers_account_status ON dossiers (account_id, status);"
	"CREATE TABLE messages (id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL, dossier_id INTEGER NOT NULL,"
	" queue_id TEXT NOT NULL DEFAULT '', mail_from TEXT NOT NULL DEFAULT '',"
	" rcpt_to TEXT NOT NULL DEFAULT '', helo TEXT, client_ip TEXT,"
	" tls INTEGER NOT NULL DEFAULT 0, lmtp INTEGER NOT NULL DEFAULT 0,"
	" message_id TEXT, subject TEXT, from_header TEXT,"
	" size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
	" parse_status TEXT NOT NULL DEFAULT 'ok',"
	" anomalies TEXT NOT NULL DEFAULT '', received INTEGER NOT NULL,"
	" FOREIGN KEY (dossier_id, account_id)"
	"  REFERENCES dossiers(id, account_id));"
	"CREATE INDEX messages_dossier_sha ON messages (dossier_id, sha256);"
	"CREATE INDEX messages_account ON messages (account_id);"
	"CREATE TABLE documents (id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL, dossier_id INTEGER NOT NULL,"
	" message_id INTEGER REFERENCES messages(id),"
	" filename TEXT NOT NULL DEFAULT '', stored_name TEXT NOT NULL DEFAULT '',"
	" declared_type TEXT, sniffed_type TEXT, size INTEGER NOT NULL,"
	" sha256 TEXT NOT NULL, part_path TEXT, created INTEGER NOT NULL,"
	" UNIQUE (message_id, part_path),"
	" FOREIGN KEY (dossier_id, account_id)"
	"  REFERENCES dossiers(id, account_id));"
	"CREATE INDEX documents_dossier_sha ON documents (dossier_id, sha256);"
	"CREATE INDEX documents_message ON documents (message_id);"
	"CREATE INDEX documents_account ON documents (account_id);"
	"CREATE TABLE events (id INTEGER PRIMARY KEY,"
	" account_id INTEGER REFERENCES accounts(id),"
	" dossier_id INTEGER REFERENCES dossiers(id),"
	" at INTEGER NOT NULL, kind TEXT NOT NULL,"
	" detail TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX events_dossier ON events (dossier_id, at);"
	"INSERT INTO accounts VALUES (1, 'acme', 'contact', 100);"
	"INSERT INTO contacts VALUES (1, 1, 'client@example.org', NULL, 100);"
	"INSERT INTO dossiers VALUES (1, 1, 1, 'OLD-1', 'd-old', 'open', 100,"
	" NULL);"
	"INSERT INTO messages (id, account_id, dossier_id, size, sha256,"
	" received) VALUES (1, 1, 1, 3, '" SHA_ABC "', 100);"
	"PRAGMA user_version = 1;";

START_TEST(test_migrate_v1_to_v2)
{
	char path[600];
	sqlite3 *db;
	struct store *old;
	struct store_dossier d;
	struct store_msg_row mr;
	struct store_account a;

	snprintf(path, sizeof(path), "%s/v1.db", tmpdir);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, v1_sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_msg(store_open(path, "full", &old, err) == 0, "%s", err);
	/* a v1 file goes through every later migration, not only v2 */
	ck_assert_int_eq(store_schema_version(old), STORE_SCHEMA_VERSION);
	ck_assert_int_eq(store_account_get(old, "acme", &a, err), 1);
	ck_assert_str_eq(a.sender_policy, "contact");
	ck_assert_int_eq(store_dossier_by_local(old, "d-old", &d, err), 1);
	ck_assert_str_eq(d.ref, "OLD-1");
	ck_assert_str_eq(d.contact, "client@example.org");
	ck_assert_str_eq(d.requested, "");
	ck_assert_str_eq(d.due, "");
	ck_assert_int_eq(store_message_get(old, 1, 1, &mr, err), 1);
	ck_assert_str_eq(mr.sha256, SHA_ABC);
	/* the new tables work on the migrated file */
	ck_assert_msg(store_dossier_set_request(old, 1, 1, "[\"ID\"]",
	    "2030-01-31", err) == 0, "%s", err);
	ck_assert_int_eq(store_suppression_add(old, 1, "x@example.org", "t",
	    pd_now() + 60, err), 0);
	store_close(&old);
	/* and re-opening migrates nothing twice */
	ck_assert_msg(store_open(path, "full", &old, err) == 0, "%s", err);
	ck_assert_int_eq(store_dossier_get(old, 1, 1, &d, err), 1);
	ck_assert_str_eq(d.requested, "[\"ID\"]");
	ck_assert_str_eq(d.due, "2030-01-31");
	ck_assert_int_eq(store_suppressed(old, 1, "X@example.org", pd_now(),
	    err), 1);
	store_close(&old);
}
END_TEST

/* ---- schema v8: the dossier loop ---- */

struct v8_items {
	char slug[8][40], label[8][256];
	int required[8], position[8];
	char state[8][12];
	int n;
};

static int
v8_items_cb(const struct store_item *it, void *ctx)
{
	struct v8_items *l = ctx;

	ck_assert_int_lt(l->n, 8);
	snprintf(l->slug[l->n], sizeof(l->slug[0]), "%s", it->slug);
	snprintf(l->label[l->n], sizeof(l->label[0]), "%s", it->label);
	snprintf(l->state[l->n], sizeof(l->state[0]), "%s", it->state);
	l->required[l->n] = it->required;
	l->position[l->n++] = it->position;
	return 0;
}

static struct v8_items
v8_items_of(struct store *s, int64_t dossier_id)
{
	struct v8_items l;

	memset(&l, 0, sizeof(l));
	ck_assert_msg(store_item_list(s, 1, dossier_id, v8_items_cb, &l,
	    err) == 0, "%s", err);
	return l;
}

/* Old dossiers as a v7 postdoc wrote them: `requested` a JSON array of
 * names (invite --documents), or empty, or anything a hand edit left. */
static const char v7_rows[] =
	"INSERT INTO accounts VALUES (1, 'acme', 'any', 100);"
	"INSERT INTO contacts (id, account_id, email, name, created)"
	" VALUES (1, 1, 'zoe@example.fr', NULL, 100);"
	"INSERT INTO dossiers (id, account_id, contact_id, ref, intake_local,"
	" created, requested, due) VALUES"
	" (1, 1, 1, 'R1', 'd-aaaaaaaa', 100,"
	"  '[\"ID card\",\"Payslip\",\"Payslip\"]', '2026-12-20'),"
	" (2, 1, 1, 'R2', 'd-bbbbbbbb', 100, '[]', ''),"
	" (3, 1, 1, 'R3', 'd-cccccccc', 100, '', ''),"
	" (4, 1, 1, 'R4', 'd-dddddddd', 100, 'not json', ''),"
	" (5, 1, 1, 'R5', 'd-eeeeeeee', 100, '{\"a\": \"b\"}', ''),"
	" (6, 1, 1, 'R6', 'd-ffffffff', 100,"
	"  '[\"  \", 5, \" Pi\xc3\xa8" "ce d''identit\xc3\xa9 \", null,"
	"  \"!!!\", \"V8 3\"]', ''),"
	" (7, 1, 1, 'R7', 'd-gggggggg', 100, '[\"V8 2\", \"Lease\"]', '');"
	"INSERT INTO messages (id, account_id, dossier_id, size, sha256,"
	" received) VALUES (1, 1, 1, 3, '" SHA_ABC "', 100);"
	"INSERT INTO documents (id, account_id, dossier_id, message_id,"
	" filename, stored_name, size, sha256, part_path, created) VALUES"
	" (1, 1, 1, 1, 'id.pdf', 'doc-1.pdf', 3, '" SHA_ABC "', '2', 100);";

START_TEST(test_migrate_v7_to_v8)
{
	char path[600], *schema;
	sqlite3 *db;
	struct store *old;
	struct store_dossier d;
	struct store_doc_row dr;
	struct v8_items l;
	int64_t id;

	schema = tl_slurp(TOP_SRCDIR "/tests/unit/store/schema-v7.sql", NULL);
	snprintf(path, sizeof(path), "%s/v7.db", tmpdir);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db, schema, NULL, NULL, NULL) == SQLITE_OK,
	    "%s", sqlite3_errmsg(db));
	ck_assert_msg(sqlite3_exec(db, v7_rows, NULL, NULL, NULL) == SQLITE_OK,
	    "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
	free(schema);
	ck_assert_msg(store_open(path, "full", &old, err) == 0, "%s", err);
	ck_assert_int_eq(store_schema_version(old), STORE_SCHEMA_VERSION);

	/* the names become required items, in order, each its own slug */
	l = v8_items_of(old, 1);
	ck_assert_int_eq(l.n, 3);
	ck_assert_str_eq(l.slug[0], "id-card");
	ck_assert_str_eq(l.label[0], "ID card");
	ck_assert_str_eq(l.slug[1], "payslip");
	ck_assert_str_eq(l.slug[2], "payslip-2");
	ck_assert_str_eq(l.label[2], "Payslip");
	ck_assert_int_eq(l.position[0], 1);
	ck_assert_int_eq(l.position[2], 3);
	ck_assert_int_eq(l.required[1], 1);
	ck_assert_str_eq(l.state[0], "requested");
	/* nothing for an empty list, nothing, or what is not a list */
	ck_assert_int_eq(v8_items_of(old, 2).n, 0);
	ck_assert_int_eq(v8_items_of(old, 3).n, 0);
	ck_assert_int_eq(v8_items_of(old, 4).n, 0);
	ck_assert_int_eq(v8_items_of(old, 5).n, 0);
	/* names only: blanks and non-strings skipped, labels trimmed */
	l = v8_items_of(old, 6);
	ck_assert_int_eq(l.n, 3);
	ck_assert_str_eq(l.label[0], "Pi\xc3\xa8" "ce d'identit\xc3\xa9");
	ck_assert_str_eq(l.slug[0], "piece-d-identite");
	ck_assert_str_eq(l.slug[1], "item");
	ck_assert_str_eq(l.slug[2], "v8-3");
	/* a label may look like the migration's own placeholders */
	l = v8_items_of(old, 7);
	ck_assert_int_eq(l.n, 2);
	ck_assert_str_eq(l.slug[0], "v8-2");
	ck_assert_str_eq(l.slug[1], "lease");
	/* old documents stay unfiled, pending review */
	ck_assert_int_eq(store_document_get(old, 1, 1, &dr, err), 1);
	ck_assert_int_eq(dr.item_id, 0);
	ck_assert_str_eq(dr.review, "pending");
	ck_assert_int_eq(store_dossier_get(old, 1, 1, &d, err), 1);
	ck_assert_str_eq(d.due, "2026-12-20");
	ck_assert_str_eq(d.contact_locale, "");
	ck_assert_int_eq(d.reminded_at, 0);
	/* the new tables work on the migrated file */
	ck_assert_msg(store_checklist_add(old, 1, "kyc", "[]", &id, err) == 0,
	    "%s", err);
	store_close(&old);
	/* and re-opening migrates nothing twice */
	ck_assert_msg(store_open(path, "full", &old, err) == 0, "%s", err);
	ck_assert_int_eq(v8_items_of(old, 1).n, 3);
	store_close(&old);
}
END_TEST

START_TEST(test_dossier_request)
{
	int64_t acct = add_account("acme"), other = add_account("other");
	int64_t dos = add_dossier(acct, "R", NULL), n = -1;
	struct store_dossier d;
	char big[3000];

	ck_assert_msg(store_dossier_set_request(st, acct, dos,
	    "[\"passport\",\"payslip\"]", "2031-12-01", err) == 0, "%s", err);
	ck_assert_int_eq(store_dossier_get(st, acct, dos, &d, err), 1);
	ck_assert_str_eq(d.requested, "[\"passport\",\"payslip\"]");
	ck_assert_str_eq(d.due, "2031-12-01");
	/* another tenant cannot touch it; bad shapes are refused */
	ck_assert_int_eq(store_dossier_set_request(st, other, dos, "[]", "",
	    err), -1);
	ck_assert_int_eq(store_dossier_set_request(st, acct, dos, "[]",
	    "31/12/2031", err), -1);
	ck_assert_int_eq(store_dossier_set_request(st, acct, dos, "x", "",
	    err), -1);
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '[';
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(store_dossier_set_request(st, acct, dos, big, "",
	    err), -1);
	ck_assert_int_eq(store_dossier_set_request(st, acct, dos, "", "",
	    err), 0);
	ck_assert_int_eq(store_dossier_get(st, acct, dos, &d, err), 1);
	ck_assert_str_eq(d.requested, "");
	/* documents counted from a moment on */
	ck_assert_int_eq(store_document_count_since(st, dos, 0, &n, err), 0);
	ck_assert_int_eq(n, 0);
	{
		int64_t mid = add_message(acct, dos, SHA_A);
		struct store_document doc = { .account_id = acct,
		    .dossier_id = dos, .message_id = mid, .size = 3,
		    .sha256 = SHA_ABC, .part_path = "2" };

		ck_assert_int_eq(store_document_add(st, &doc, NULL, err), 0);
	}
	ck_assert_int_eq(store_document_count_since(st, dos, 0, &n, err), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(store_document_count_since(st, dos, pd_now() + 10, &n,
	    err), 0);
	ck_assert_int_eq(n, 0);
}
END_TEST

static int64_t
add_outbound(int64_t acct, int64_t dossier, const char *token,
    const char *rcpt, int64_t next_attempt)
{
	struct store_outbound o;
	int64_t id = 0;

	memset(&o, 0, sizeof(o));
	o.account_id = acct;
	o.dossier_id = dossier;
	snprintf(o.kind, sizeof(o.kind), "invitation");
	snprintf(o.rcpt, sizeof(o.rcpt), "%s", rcpt);
	snprintf(o.rcpt_domain, sizeof(o.rcpt_domain), "%s",
	    strchr(rcpt, '@') + 1);
	snprintf(o.mail_from, sizeof(o.mail_from), "b-%s@bounce.example",
	    token);
	snprintf(o.verp_token, sizeof(o.verp_token), "%s", token);
	snprintf(o.message_id, sizeof(o.message_id), "<%s@x>", token);
	snprintf(o.from_domain, sizeof(o.from_domain), "acme.example");
	snprintf(o.sha256, sizeof(o.sha256), "%s", SHA_ABC);
	o.size = 3;
	snprintf(o.state, sizeof(o.state), "queued");
	o.next_attempt = next_attempt;
	ck_assert_msg(store_outbound_add(st, &o, &id, err) == 0, "%s", err);
	ck_assert_int_gt(id, 0);
	return id;
}

START_TEST(test_outbound_rows)
{
	int64_t acct = add_account("acme"), other = add_account("other");
	int64_t dos = add_dossier(acct, "R", NULL), id, id2, n, first, last;
	struct store_outbound o;
	int cnt = 0;

	id = add_outbound(acct, dos, "tok1", "Client@Example.org", 10);
	id2 = add_outbound(acct, 0, "tok2", "b@example.net", 10);
	ck_assert_int_eq(store_outbound_get(st, acct, id, &o, err), 1);
	ck_assert_str_eq(o.account, "acme");
	ck_assert_str_eq(o.state, "queued");
	ck_assert_int_eq(o.attempts, 0);
	ck_assert_int_eq(o.dossier_id, dos);
	ck_assert_str_eq(o.sha256, SHA_ABC);
	ck_assert_int_eq(store_outbound_get(st, other, id, &o, err), 0);
	ck_assert_int_eq(store_outbound_get(st, 0, id2, &o, err), 1);
	ck_assert_int_eq(o.dossier_id, 0);
	ck_assert_int_eq(store_outbound_by_verp(st, "TOK1", &o, err), 1);
	ck_assert_int_eq(o.id, id);
	ck_assert_int_eq(store_outbound_by_verp(st, "nope", &o, err), 0);
	/* the VERP token is unique; another tenant's dossier is refused */
	ck_assert_int_eq(store_outbound_add(st, &o, NULL, err), -1);
	snprintf(o.verp_token, sizeof(o.verp_token), "tok3");
	o.account_id = other;
	ck_assert_int_eq(store_outbound_add(st, &o, NULL, err), -1);
	ck_assert_msg(store_outbound_update(st, id, "deferred", 451, "4.4.1",
	    "try\r\nlater", 99, err) == 0, "%s", err);
	ck_assert_int_eq(store_outbound_get(st, acct, id, &o, err), 1);
	ck_assert_str_eq(o.state, "deferred");
	ck_assert_int_eq(o.last_code, 451);
	ck_assert_str_eq(o.last_enhanced, "4.4.1");
	ck_assert_str_eq(o.last_text, "try??later");
	ck_assert_int_eq(o.next_attempt, 99);
	/* the CHECK keeps states to the six known ones */
	ck_assert_int_eq(store_outbound_update(st, id, "lost", 0, "", "", 0,
	    err), -1);
	ck_assert_int_eq(store_outbound_update(st, id + 99, "sent", 250, "",
	    "", 0, err), -1);
	ck_assert_int_eq(store_outbound_list(st, acct, 0, NULL,
	    (store_outbound_cb)count_cb, &cnt, err), 0);
	ck_assert_int_eq(cnt, 2);
	cnt = 0;
	ck_assert_int_eq(store_outbound_list(st, acct, dos, "deferred",
	    (store_outbound_cb)count_cb, &cnt, err), 0);
	ck_assert_int_eq(cnt, 1);
	cnt = 0;
	ck_assert_int_eq(store_outbound_list(st, other, 0, NULL,
	    (store_outbound_cb)count_cb, &cnt, err), 0);
	ck_assert_int_eq(cnt, 0);
	ck_assert_int_eq(store_outbound_count(st, dos, "invitation", &n,
	    &first, &last, err), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_gt(first, 0);
	ck_assert_int_eq(first, last);
	ck_assert_int_eq(store_outbound_count(st, dos, "reminder", &n,
	    &first, &last, err), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(first, 0);
}
END_TEST

/* v11: addresses compare as lower(x) = lower(?) in both engines, and an
 * index on the expression still serves the bounce check. */
START_TEST(test_bounced_rcpt_lower)
{
	int64_t acct = add_account("acme"), other = add_account("other");
	int64_t id = add_outbound(acct, 0, "tok1", "Client@Example.org", 10);
	sqlite3 *rd = NULL;
	sqlite3_stmt *q = NULL;
	int used = 0;

	ck_assert_int_eq(store_contact_bounced(st, acct, "client@example.ORG",
	    err), 0);
	ck_assert_msg(store_outbound_update(st, id, "bounced", 550, "5.1.1",
	    "no such user", 99, err) == 0, "%s", err);
	ck_assert_int_eq(store_contact_bounced(st, acct, "client@example.ORG",
	    err), 1);
	ck_assert_int_eq(store_contact_bounced(st, other, "client@example.org",
	    err), 0);
	ck_assert_int_eq(sqlite3_open_v2(dbpath, &rd, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(rd, "EXPLAIN QUERY PLAN SELECT 1"
	    " FROM outbound o WHERE o.account_id = ?1 AND lower(o.rcpt) ="
	    " lower(?2) AND o.state = 'bounced'", -1, &q, NULL), SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW)
		used |= strstr((const char *)sqlite3_column_text(q, 3),
		    "outbound_rcpt_lower") != NULL;
	sqlite3_finalize(q);
	sqlite3_close(rd);
	ck_assert_msg(used, "the bounce check does not use outbound_rcpt_lower");
}
END_TEST

struct claim_ctx {
	int n;
	int64_t ids[64];
	int attempts[64];
};

static int
claim_cb(const struct store_outbound *o, void *ctx)
{
	struct claim_ctx *c = ctx;

	ck_assert_str_eq(o->state, "sending");
	if (c->n < 64) {
		c->attempts[c->n] = o->attempts;
		c->ids[c->n] = o->id;
	}
	c->n++;
	return 0;
}

START_TEST(test_outbound_claim)
{
	int64_t acct = add_account("acme");
	int64_t a = add_outbound(acct, 0, "t1", "a@x.example", 30);
	int64_t b = add_outbound(acct, 0, "t2", "b@x.example", 10);
	int64_t c = add_outbound(acct, 0, "t3", "c@x.example", 500);
	struct claim_ctx cc = { 0 };
	struct store_outbound o;
	int n = -1;

	/* due rows only, oldest next_attempt first, at most max */
	ck_assert_int_eq(store_outbound_claim(st, 100, 1, claim_cb, &cc, err),
	    0);
	ck_assert_int_eq(cc.n, 1);
	ck_assert_int_eq(cc.ids[0], b);
	ck_assert_int_eq(cc.attempts[0], 1);
	memset(&cc, 0, sizeof(cc));
	ck_assert_int_eq(store_outbound_claim(st, 100, 10, claim_cb, &cc, err),
	    0);
	ck_assert_int_eq(cc.n, 1);
	ck_assert_int_eq(cc.ids[0], a);
	memset(&cc, 0, sizeof(cc));
	ck_assert_int_eq(store_outbound_claim(st, 100, 10, claim_cb, &cc, err),
	    0);
	ck_assert_int_eq(cc.n, 0);
	ck_assert_int_eq(store_outbound_get(st, acct, c, &o, err), 1);
	ck_assert_str_eq(o.state, "queued");
	/* a crash leaves a and b "sending": recovery makes them due now */
	ck_assert_int_eq(store_outbound_recover(st, 200, &n, err), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(store_outbound_get(st, acct, a, &o, err), 1);
	ck_assert_str_eq(o.state, "deferred");
	ck_assert_int_eq(o.next_attempt, 200);
	memset(&cc, 0, sizeof(cc));
	ck_assert_int_eq(store_outbound_claim(st, 200, 10, claim_cb, &cc, err),
	    0);
	ck_assert_int_eq(cc.n, 2);
	ck_assert_int_eq(cc.attempts[0], 2);
	/* final states are never claimed again */
	ck_assert_int_eq(store_outbound_update(st, a, "sent", 250, "2.0.0",
	    "ok", 0, err), 0);
	ck_assert_int_eq(store_outbound_update(st, b, "bounced", 550, "5.1.1",
	    "no", 0, err), 0);
	ck_assert_int_eq(store_outbound_recover(st, 900, &n, err), 0);
	ck_assert_int_eq(n, 0);
	memset(&cc, 0, sizeof(cc));
	ck_assert_int_eq(store_outbound_claim(st, 900, 10, claim_cb, &cc, err),
	    0);
	ck_assert_int_eq(cc.n, 1);
	ck_assert_int_eq(cc.ids[0], c);
}
END_TEST

/* Child: claim in small bites until nothing is due; write ids to fd. */
struct child_ctx {
	int fd;
	int got;
};

static int
claim_child_cb(const struct store_outbound *o, void *ctx)
{
	struct child_ctx *c = ctx;
	int64_t id = o->id;

	c->got++;
	return write(c->fd, &id, sizeof(id)) == (ssize_t)sizeof(id) ? 0 : 1;
}

static void
claim_child(int fd)
{
	struct child_ctx c = { .fd = fd };
	struct store *cst;
	char cerr[PD_ERRLEN];

	if (store_open(dbpath, "full", &cst, cerr) != 0)
		_exit(2);
	do {
		c.got = 0;
		if (store_outbound_claim(cst, pd_now(), 3, claim_child_cb, &c,
		    cerr) != 0)
			_exit(3);
	} while (c.got > 0);
	store_close(&cst);
	_exit(0);
}

/* Four processes claiming at once: every row goes to exactly one. */
START_TEST(test_outbound_claim_processes)
{
	enum { ROWS = 120, KIDS = 4 };
	int64_t acct = add_account("acme"), id;
	int seen[ROWS + 1] = { 0 };
	int pfd[2], i, status;
	char tok[32];
	pid_t kids[KIDS];

	for (i = 0; i < ROWS; i++) {
		snprintf(tok, sizeof(tok), "tok%d", i);
		add_outbound(acct, 0, tok, "a@x.example", 0);
	}
	ck_assert_int_eq(pipe(pfd), 0);
	for (i = 0; i < KIDS; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0) {
			close(pfd[0]);
			claim_child(pfd[1]);
		}
	}
	close(pfd[1]);
	while (read(pfd[0], &id, sizeof(id)) == (ssize_t)sizeof(id)) {
		ck_assert(id >= 1 && id <= ROWS);
		seen[id]++;
	}
	close(pfd[0]);
	for (i = 0; i < KIDS; i++) {
		ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "child %d status %d", i, status);
	}
	for (i = 1; i <= ROWS; i++)
		ck_assert_msg(seen[i] == 1, "row %d claimed %d times", i,
		    seen[i]);
}
END_TEST

START_TEST(test_suppressions)
{
	int64_t acct = add_account("acme"), other = add_account("other");
	char reason[256];
	int64_t expires = 0, now = pd_now();

	ck_assert_int_eq(store_suppressed(st, acct, "a@x.example", now, err),
	    0);
	ck_assert_msg(store_suppression_add(st, acct, "A@X.example",
	    "5xx at delivery: 5.1.1 no such user", now + 100, err) == 0, "%s",
	    err);
	ck_assert_int_eq(store_suppressed(st, acct, "a@x.EXAMPLE", now, err),
	    1);
	ck_assert_int_eq(store_suppressed(st, other, "a@x.example", now, err),
	    0);
	ck_assert_int_eq(store_suppression_get(st, acct, "a@x.example", now,
	    reason, sizeof(reason), &expires, err), 1);
	ck_assert_str_eq(reason, "5xx at delivery: 5.1.1 no such user");
	ck_assert_int_eq(expires, now + 100);
	/* expired entries no longer count */
	ck_assert_int_eq(store_suppressed(st, acct, "a@x.example", now + 100,
	    err), 0);
	/* adding again refreshes reason and expiry instead of failing */
	ck_assert_int_eq(store_suppression_add(st, acct, "a@x.example",
	    "dsn 5.2.2", now + 500, err), 0);
	ck_assert_int_eq(store_suppression_get(st, acct, "a@x.example",
	    now + 100, reason, sizeof(reason), &expires, err), 1);
	ck_assert_str_eq(reason, "dsn 5.2.2");
	ck_assert_int_eq(expires, now + 500);
	ck_assert_int_eq(store_suppression_add(st, 0, "a@x.example", "", 1,
	    err), -1);
}
END_TEST


/* ---- outq over the store ---- */

static char plugin_so[4096];	/* absolute, found before any chdir */

static struct pd_config *
outq_cfg(int with_file_plugin)
{
	struct pd_config *cfg;
	char e[PD_ERRLEN];
	int k;

	ck_assert_msg(config_load(NULL, &cfg, e, sizeof(e)) == 0, "%s", e);
	free(cfg->var_dir);
	cfg->var_dir = xasprintf("%s/var", tmpdir);
	free(cfg->db_path);
	cfg->db_path = xstrdup(dbpath);
	free(cfg->bounce_domain);
	cfg->bounce_domain = xstrdup("bounce.example");
	free(cfg->transport);
	cfg->transport = xstrdup("file");
	for (k = 0; k < cfg->plugin_count; k++) {
		free(cfg->plugins[k].name);
		free(cfg->plugins[k].path);
		free(cfg->plugins[k].where);
		cfg->plugins[k].where = NULL;
	}
	cfg->plugin_count = 0;
	if (with_file_plugin) {
		cfg->plugin_count = 1;
		cfg->plugins[0].name = xstrdup("file");
		cfg->plugins[0].path = xstrdup(plugin_so);
		cfg->plugins[0].settings = NULL;	/* dir = var/outbox */
	}
	cfg->rate = 0;
	cfg->batch_max = 3;
	cfg->delivery_threads = 3;
	cfg->domain_concurrency = 1;
	cfg->retry_base = 300;
	cfg->retry_max_age = 86400;
	cfg->queue_interval_ms = 50;
	cfg->suppression_days = 10;
	return cfg;
}

static void
write_msg(const char *path, const char *body)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "From: a@acme.example\r\nTo: c@example.org\r\n"
	    "Subject: x\r\n\r\n%s\r\n", body);
	fclose(f);
}

static int64_t
enqueue(struct outq_ctx *q, int64_t acct, int64_t dos, const char *rcpt,
    const char *body, int expect_ok)
{
	char msg[600];
	int64_t id = 0;
	struct outq_item it = { .account_id = acct, .account = "acme",
	    .dossier_id = dos, .kind = "invitation", .rcpt = rcpt,
	    .from_domain = "acme.example", .msg_path = msg,
	    .message_id = "<m@acme.example>" };
	int rc;

	snprintf(msg, sizeof(msg), "%s/msg.eml", tmpdir);
	write_msg(msg, body);
	rc = outq_enqueue(q, &it, &id, err);
	/* consumed either way */
	ck_assert_int_eq(access(msg, F_OK), -1);
	if (expect_ok)
		ck_assert_msg(rc == 0 && id > 0, "%s", err);
	else
		ck_assert_int_eq(rc, -1);
	return id;
}

static int
is_verp(const char *mail_from, const char *token)
{
	size_t i;

	if (strlen(token) != 26 || strncmp(mail_from, "b-", 2) != 0 ||
	    strncmp(mail_from + 2, token, 26) != 0 ||
	    strcmp(mail_from + 28, "@bounce.example") != 0)
		return 0;
	for (i = 0; i < 26; i++)
		if (!((token[i] >= 'a' && token[i] <= 'z') ||
		    (token[i] >= '2' && token[i] <= '7')))
			return 0;
	return 1;
}

START_TEST(test_outq_enqueue)
{
	struct pd_config *cfg = outq_cfg(0);
	int64_t acct = add_account("acme");
	int64_t dos = add_dossier(acct, "R", NULL), id;
	struct outq_ctx *q;
	struct store_outbound o;
	struct blob_store *bs;
	struct ev_ctx c = { 0 };
	struct outq_stats sts;
	char path[4096], buf[256] = "", msg[600];
	FILE *f;

	ck_assert_msg(outq_ctx_new(cfg, NULL, &q, err) == 0, "%s", err);
	id = enqueue(q, acct, dos, "Client@Example.ORG", "hello", 1);
	ck_assert_int_eq(store_outbound_get(st, acct, id, &o, err), 1);
	ck_assert_str_eq(o.state, "queued");
	ck_assert_str_eq(o.kind, "invitation");
	ck_assert_str_eq(o.rcpt_domain, "example.org");
	ck_assert_msg(is_verp(o.mail_from, o.verp_token), "bad VERP %s",
	    o.mail_from);
	ck_assert_int_le(o.next_attempt, pd_now());
	/* the blob is the message, byte for byte */
	ck_assert_msg(blob_store_open(blobroot, &bs, err) == 0, "%s", err);
	blob_path(bs, o.sha256, path, sizeof(path));
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(buf, 1, sizeof(buf) - 1, f), o.size);
	fclose(f);
	ck_assert_str_eq(buf, "From: a@acme.example\r\nTo: c@example.org\r\n"
	    "Subject: x\r\n\r\nhello\r\n");
	blob_store_free(&bs);
	ck_assert_int_eq(store_event_list(st, acct, dos, ev_cb, &c, err), 0);
	ck_assert_int_eq(c.n, 2);
	ck_assert_str_eq(c.kinds[1], "outbound.queued");
	/* a suppressed recipient is refused, with the reason and the date */
	ck_assert_int_eq(store_suppression_add(st, acct, "gone@example.org",
	    "5xx at delivery: 5.1.1 no such user", pd_now() + 86400, err), 0);
	enqueue(q, acct, 0, "GONE@example.org", "x", 0);
	ck_assert_msg(strstr(err, "recipient GONE@example.org is suppressed "
	    "until 2") != NULL && strstr(err, ": 5xx at delivery: 5.1.1 no "
	    "such user") != NULL, "%s", err);
	/* a message with a bare LF is not queued */
	snprintf(msg, sizeof(msg), "%s/msg.eml", tmpdir);
	f = fopen(msg, "w");
	fputs("Subject: x\r\n\r\nbare\nLF\r\n", f);
	fclose(f);
	{
		struct outq_item it = { .account_id = acct, .account = "acme",
		    .kind = "receipt", .rcpt = "c@example.org",
		    .msg_path = msg };

		ck_assert_int_eq(outq_enqueue(q, &it, NULL, err), -1);
		ck_assert_ptr_nonnull(strstr(err, "CRLF"));
	}
	/* no transport loaded: nothing is claimed */
	ck_assert_int_eq(outq_run_once(q, &sts, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a loaded plugin"));
	ck_assert_int_eq(store_outbound_get(st, acct, id, &o, err), 1);
	ck_assert_str_eq(o.state, "queued");
	outq_ctx_free(&q);
	config_free(&cfg);
}
END_TEST

START_TEST(test_outq_bounce)
{
	struct pd_config *cfg = outq_cfg(0);
	int64_t acct = add_account("acme");
	int64_t dos = add_dossier(acct, "R", NULL), a, b;
	struct outq_ctx *q;
	struct store_outbound o;
	struct ev_ctx c = { 0 };
	char tok[64];

	ck_assert_msg(outq_ctx_new(cfg, NULL, &q, err) == 0, "%s", err);
	a = enqueue(q, acct, dos, "a@example.org", "a", 1);
	b = enqueue(q, acct, 0, "b@example.org", "b", 1);
	ck_assert_int_eq(store_outbound_update(st, a, "sent", 250, "2.0.0",
	    "ok", 0, err), 0);
	ck_assert_int_eq(store_outbound_get(st, acct, a, &o, err), 1);
	snprintf(tok, sizeof(tok), "%s", o.verp_token);
	/* a DSN after the relay accepted: bounced, and the address is out */
	ck_assert_int_eq(outq_bounce(st, cfg, tok, 550, "5.1.1",
	    "user unknown", err), 1);
	ck_assert_int_eq(store_outbound_get(st, acct, a, &o, err), 1);
	ck_assert_str_eq(o.state, "bounced");
	ck_assert_int_eq(o.last_code, 550);
	ck_assert_str_eq(o.last_enhanced, "5.1.1");
	ck_assert_int_eq(store_suppressed(st, acct, "A@example.org", pd_now(),
	    err), 1);
	ck_assert_int_eq(store_suppressed(st, acct, "a@example.org",
	    pd_now() + 11 * 86400, err), 0);
	ck_assert_int_eq(store_event_list(st, acct, dos, ev_cb, &c, err), 0);
	/* the dossier's history, then the public event plugins see */
	ck_assert_str_eq(c.kinds[c.n - 2], "outbound.bounced");
	ck_assert_str_eq(c.kinds[c.n - 1], "message.bounced");
	/* a transient DSN marks the row but suppresses nobody */
	ck_assert_int_eq(store_outbound_get(st, acct, b, &o, err), 1);
	ck_assert_int_eq(outq_bounce(st, cfg, o.verp_token, 450, "4.2.2",
	    "mailbox full", err), 1);
	ck_assert_int_eq(store_outbound_get(st, acct, b, &o, err), 1);
	ck_assert_str_eq(o.state, "bounced");
	ck_assert_int_eq(store_suppressed(st, acct, "b@example.org", pd_now(),
	    err), 0);
	ck_assert_int_eq(outq_bounce(st, cfg, "nosuchtoken", 550, "5.1.1", "",
	    err), 0);
	/* and the hard-bounced address is refused from now on */
	enqueue(q, acct, dos, "a@example.org", "again", 0);
	outq_ctx_free(&q);
	config_free(&cfg);
}
END_TEST

static int
file_bytes_eq(const char *a, const char *b)
{
	char cmd[9000];

	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
	return system(cmd) == 0;
}

/* The file transport: sent rows are files, identical to the blob. */
START_TEST(test_outq_deliver_file)
{
	struct pd_config *cfg;
	struct plugin_host *ph;
	struct outq_ctx *q;
	struct outq_stats sts;
	struct store_outbound o;
	struct blob_store *bs;
	int64_t acct, dos, ids[5], gone, late;
	char eml[4096], blob[4096], outbox[600];
	int i, fd;

	if (plugin_so[0] == '\0')
		return;		/* no build tree: covered by integration */
	ck_assert_int_eq(chdir(tmpdir), 0);
	cfg = outq_cfg(1);
	ck_assert_msg(plugin_host_load(cfg, &ph, err) == 0, "%s", err);
	ck_assert_msg(outq_ctx_new(cfg, ph, &q, err) == 0, "%s", err);
	acct = add_account("acme");
	dos = add_dossier(acct, "R", NULL);
	for (i = 0; i < 5; i++) {
		char rcpt[64], body[32];

		snprintf(rcpt, sizeof(rcpt), "u%d@d%d.example", i, i % 2);
		snprintf(body, sizeof(body), "body %d", i);
		ids[i] = enqueue(q, acct, dos, rcpt, body, 1);
	}
	gone = enqueue(q, acct, dos, "gone@d0.example", "g", 1);
	/* suppressed after queueing: checked again at delivery */
	ck_assert_int_eq(store_suppression_add(st, acct, "gone@d0.example",
	    "test", pd_now() + 60, err), 0);
	ck_assert_msg(outq_run_once(q, &sts, err) == 0, "%s", err);
	ck_assert_uint_eq(sts.sent, 5);
	ck_assert_uint_eq(sts.failed, 1);
	ck_assert_msg(blob_store_open(blobroot, &bs, err) == 0, "%s", err);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(store_outbound_get(st, acct, ids[i], &o, err),
		    1);
		ck_assert_str_eq(o.state, "sent");
		ck_assert_int_eq(o.attempts, 1);
		ck_assert_int_eq(o.last_code, 250);
		snprintf(eml, sizeof(eml), "%s/var/outbox/%lld-u%d@d%d.example"
		    ".eml", tmpdir, (long long)ids[i], i, i % 2);
		blob_path(bs, o.sha256, blob, sizeof(blob));
		ck_assert_msg(file_bytes_eq(eml, blob), "%s differs", eml);
		eml[strlen(eml) - 3] = '\0';
		strcat(eml, "json");
		ck_assert_int_eq(access(eml, F_OK), 0);
	}
	blob_store_free(&bs);
	ck_assert_int_eq(store_outbound_get(st, acct, gone, &o, err), 1);
	ck_assert_str_eq(o.state, "failed");
	ck_assert_str_eq(o.last_text, "suppressed");
	/* a local failure (a file where the outbox was: deliver makes a
	 * missing outbox again, not this) defers with backoff... */
	snprintf(outbox, sizeof(outbox), "%s/var/outbox", tmpdir);
	tl_rmtree(outbox);
	fd = open(outbox, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	late = enqueue(q, acct, dos, "late@d1.example", "l", 1);
	ck_assert_msg(outq_run_once(q, &sts, err) == 0, "%s", err);
	ck_assert_uint_eq(sts.deferred, 1);
	ck_assert_int_eq(store_outbound_get(st, acct, late, &o, err), 1);
	ck_assert_str_eq(o.state, "deferred");
	ck_assert_int_eq(o.last_code, 0);
	ck_assert_int_ge(o.next_attempt, o.updated + 300);
	ck_assert_int_le(o.next_attempt, o.updated + 301);
	/* ...not due again yet, then past retry_max_age it bounces */
	ck_assert_msg(outq_run_once(q, &sts, err) == 0, "%s", err);
	ck_assert_uint_eq(sts.deferred + sts.bounced, 0);
	ck_assert_int_eq(store_outbound_update(st, late, "deferred", 0, "",
	    "x", 0, err), 0);
	cfg->retry_max_age = -1;
	ck_assert_msg(outq_run_once(q, &sts, err) == 0, "%s", err);
	ck_assert_uint_eq(sts.bounced, 1);
	ck_assert_int_eq(store_outbound_get(st, acct, late, &o, err), 1);
	ck_assert_str_eq(o.state, "bounced");
	ck_assert_msg(strncmp(o.last_text, "undeliverable after 2 attempts",
	    30) == 0, "%s", o.last_text);
	/* an undeliverable message does not suppress the address */
	ck_assert_int_eq(store_suppressed(st, acct, "late@d1.example",
	    pd_now(), err), 0);
	outq_ctx_free(&q);
	plugin_host_free(&ph);
	config_free(&cfg);
}
END_TEST

/* The runner's threads deliver everything and stop cleanly. */
START_TEST(test_outq_runner)
{
	struct pd_config *cfg;
	struct plugin_host *ph;
	struct outq_ctx *q;
	struct outq_runner *r;
	int64_t acct;
	int i, sent = 0, busy = 0;

	if (plugin_so[0] == '\0')
		return;
	ck_assert_int_eq(chdir(tmpdir), 0);
	cfg = outq_cfg(1);
	ck_assert_msg(plugin_host_load(cfg, &ph, err) == 0, "%s", err);
	ck_assert_msg(outq_ctx_new(cfg, ph, &q, err) == 0, "%s", err);
	acct = add_account("acme");
	for (i = 0; i < 40; i++) {
		char rcpt[64];

		snprintf(rcpt, sizeof(rcpt), "u%d@d%d.example", i, i % 4);
		enqueue(q, acct, 0, rcpt, "b", 1);
	}
	ck_assert_msg(outq_runner_start(cfg, ph, &r, err) == 0, "%s", err);
	for (i = 0; i < 200 && sent < 40; i++) {
		usleep(50 * 1000);
		sent = 0;
		ck_assert_int_eq(store_outbound_list(st, acct, 0, "sent",
		    (store_outbound_cb)count_cb, &sent, err), 0);
	}
	outq_runner_stop(&r);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(sent, 40);
	ck_assert_int_eq(store_outbound_list(st, 0, 0, "sending",
	    (store_outbound_cb)count_cb, &busy, err), 0);
	ck_assert_int_eq(busy, 0);
	outq_ctx_free(&q);
	plugin_host_free(&ph);
	config_free(&cfg);
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
	snprintf(expect, sizeof(expect), "%s/ba/%s", blobroot, SHA_ABC);
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
	snprintf(fan, sizeof(fan), "%s/%.2s", blobroot, sha1);
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

/* Read an fd to the end into buf; the length. */
static size_t
read_all(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t r;

	while (n < cap && (r = read(fd, buf + n, cap - n)) > 0)
		n += (size_t)r;
	return n;
}

START_TEST(test_raw_inline)
{
	struct blob_store *bs;
	char src[600], buf[64];
	void *data = NULL;
	size_t len = 0;
	int fd;
	FILE *f;

	ck_assert_msg(blob_store_open(blobroot, &bs, err) == 0, "%s", err);
	/* Neither inline nor a file: not there (purged), not an error. */
	ck_assert_int_eq(rawmsg_open(st, bs, SHA_ABC, &fd, err), 0);
	ck_assert_int_eq(rawmsg_open(st, bs, "", &fd, err), 0);
	/* Loaded from a spool file: the digest is checked again. */
	snprintf(src, sizeof(src), "%s/tmp/spool-1", blobroot);
	f = fopen(src, "w");
	ck_assert_ptr_nonnull(f);
	fputs("abc", f);
	fclose(f);
	fd = open(src, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rawmsg_load(fd, 3, SHA_A, &data, err), -1);
	ck_assert_int_eq(rawmsg_load(fd, 4, SHA_ABC, &data, err), -1);
	ck_assert_msg(rawmsg_load(fd, 3, SHA_ABC, &data, err) == 0, "%s", err);
	close(fd);
	/* Put twice (a second message with the same bytes): one row. */
	ck_assert_msg(store_raw_put(st, SHA_ABC, data, 3, err) == 0, "%s", err);
	ck_assert_msg(store_raw_put(st, SHA_ABC, "xyz", 3, err) == 0, "%s",
	    err);
	free(data);
	ck_assert_int_eq(store_raw_get(st, SHA_ABC, &data, &len, err), 1);
	ck_assert_int_eq(len, 3);
	ck_assert_int_eq(memcmp(data, "abc", 3), 0);
	free(data);
	/* Readers get one fd either way. */
	ck_assert_int_eq(rawmsg_open(st, bs, SHA_ABC, &fd, err), 1);
	ck_assert_int_eq(read_all(fd, buf, sizeof(buf)), 3);
	ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
	close(fd);
	ck_assert_msg(store_raw_delete(st, SHA_ABC, err) == 0, "%s", err);
	ck_assert_int_eq(store_raw_get(st, SHA_ABC, &data, &len, err), 0);
	ck_assert_int_eq(rawmsg_open(st, bs, SHA_ABC, &fd, err), 0);
	/* A larger message is a blob file: found there. */
	ck_assert_msg(blob_adopt(bs, src, SHA_ABC, err) == 0, "%s", err);
	ck_assert_int_eq(rawmsg_open(st, bs, SHA_ABC, &fd, err), 1);
	ck_assert_int_eq(read_all(fd, buf, sizeof(buf)), 3);
	close(fd);
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
	tcase_add_test(tc, test_wal_truncate);
	tcase_add_test(tc, test_events);
	tcase_add_test(tc, test_migrate_v1_to_v2);
	tcase_add_test(tc, test_migrate_v7_to_v8);
	tcase_add_test(tc, test_dossier_request);
	tcase_add_test(tc, test_outbound_rows);
	tcase_add_test(tc, test_bounced_rcpt_lower);
	tcase_add_test(tc, test_outbound_claim);
	tcase_add_test(tc, test_outbound_claim_processes);
	tcase_add_test(tc, test_suppressions);
	tcase_add_test(tc, test_outq_enqueue);
	tcase_add_test(tc, test_outq_bounce);
	tcase_add_test(tc, test_outq_deliver_file);
	tcase_add_test(tc, test_outq_runner);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tb, setup, teardown);
	tcase_add_test(tb, test_blob_write);
	tcase_add_test(tb, test_blob_dedup);
	tcase_add_test(tb, test_blob_abort);
	tcase_add_test(tb, test_blob_adopt);
	tcase_add_test(tb, test_raw_inline);
	tcase_add_loop_test(tb, test_blob_bad_sha, 0,
	    (int)(sizeof(bad_shas) / sizeof(bad_shas[0])));
	suite_add_tcase(s, tb);
	return s;
}

int
main(void)
{
	/* make check runs us from the build tree, where libtool leaves the
	 * plugin; elsewhere the delivery tests have nothing to load. */
	if (realpath("plugins/.libs/file.so", plugin_so) == NULL)
		plugin_so[0] = '\0';
	return tl_run(store_suite());
}

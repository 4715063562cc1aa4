/*
 * store_privacy.c - the SQL behind store_privacy.h: a data subject's rows
 * (found by address, scoped by account), their erasure under legal holds,
 * rectification, retention purges, the audit trail and the keyed hashes
 * of erased addresses.  Like store.c, data reaches SQL only as bound
 * parameters; SQL text is built solely from the constants in this file.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_int.h"
#include "store_privacy.h"
#include "lib/util.h"

const char *const store_erase_names[STORE_ERASE_NCOUNTS] = {
	"documents", "messages", "events", "outbound", "campaign_recipients",
	"consent_records", "consent_requests", "dossiers", "suppressions",
	"contacts", "blobs",
};

/* ---- helpers ---- */

/* The store's one preparer: binds by a format, 'i' int64, 't' text. */
#define sp_prep store_cx_prep

#define sp_fail store_fail	/* store_int.h */

/* Run to completion; changes_r (may be NULL): rows changed. */
static int
sp_run(struct store *st, struct db_stmt *s, int64_t *changes_r, char *err,
    const char *what)
{
	int n = 0;

	if (store_cx_exec(st, s, &n, err, what) != 0)
		return -1;
	if (changes_r != NULL)
		*changes_r = n;
	return 0;
}

static int
sp_exec(struct store *st, const char *sql, char *err)
{
	if (db_exec(store_db(st), sql) != DB_OK) {
		pd_err(err, "%s", db_errmsg(store_db(st)));
		return -1;
	}
	return 0;
}

/* Each row as an object keyed by column name, appended to arr. */
static int
sp_rows_json(struct store *st, struct db_stmt *s, json_t *arr, char *err)
{
	int rc, i, n;

	if (s == NULL)
		return -1;
	n = db_col_count(s);
	while ((rc = db_step(s)) == DB_ROW) {
		json_t *o = json_object();

		for (i = 0; i < n; i++) {
			const char *k = db_col_name(s, i);
			json_t *v;

			switch (db_col_type(s, i)) {
			case DB_INTEGER:
				v = json_integer(db_col_int64(s, i));
				break;
			case DB_NULL:
				v = json_null();
				break;
			default:
				v = json_stringn(db_col_text(s, i),
				    (size_t)db_col_bytes(s, i));
				if (v == NULL)	/* not UTF-8: keep it visible */
					v = json_string("(invalid UTF-8)");
			}
			json_object_set_new(o, k, v);
		}
		json_array_append_new(arr, o);
	}
	db_finalize(s);
	if (rc != DB_DONE)
		return sp_fail(st, err, "export");
	return 0;
}

/* ---- export ---- */

/* ?1 account (0 = any), ?2 lower-cased address. */
#define SUBJ \
	"WITH subj AS (SELECT id FROM contacts WHERE lower(email) = ?2" \
	" AND (?1 = 0 OR account_id = ?1))," \
	" dos AS (SELECT id FROM dossiers WHERE contact_id IN" \
	" (SELECT id FROM subj))," \
	" msgs AS (SELECT id FROM messages WHERE dossier_id IN" \
	" (SELECT id FROM dos) OR ((?1 = 0 OR account_id = ?1) AND" \
	" (lower(mail_from) = ?2 OR" \
	" instr(lower(COALESCE(from_header, '')), ?2) > 0))) "

static const struct {
	const char *name, *sql;
} sp_export[] = {
	{ "contacts", SUBJ "SELECT c.id, a.name AS account, c.email, c.name,"
	    " c.created, c.adult, c.adult_at, c.adult_by FROM contacts c"
	    " JOIN accounts a ON a.id = c.account_id"
	    " WHERE c.id IN (SELECT id FROM subj) ORDER BY c.id" },
	{ "dossiers", SUBJ "SELECT d.id, a.name AS account, d.ref,"
	    " d.intake_local, d.status, d.created, d.closed, d.requested,"
	    " d.due FROM dossiers d JOIN accounts a ON a.id = d.account_id"
	    " WHERE d.id IN (SELECT id FROM dos) ORDER BY d.id" },
	{ "messages", SUBJ "SELECT id, dossier_id, queue_id, mail_from,"
	    " rcpt_to, helo, client_ip, tls, lmtp, message_id, subject,"
	    " from_header, size, sha256, parse_status, anomalies, received,"
	    " auth_results, spf, dkim, dmarc, sender_pass"
	    " FROM messages WHERE id IN (SELECT id FROM msgs) ORDER BY id" },
	{ "documents", SUBJ "SELECT id, dossier_id, message_id, filename,"
	    " stored_name, declared_type, sniffed_type, size, sha256,"
	    " part_path, created FROM documents WHERE dossier_id IN"
	    " (SELECT id FROM dos) OR message_id IN (SELECT id FROM msgs)"
	    " ORDER BY id" },
	{ "consent_records", SUBJ "SELECT r.id, r.contact_id, p.name AS"
	    " purpose, r.action, r.basis, r.source, r.method, r.at, r.ip,"
	    " r.user_agent, r.operator, t.sha256 AS text_sha256, t.body AS"
	    " text FROM consent_records r JOIN purposes p ON p.id ="
	    " r.purpose_id LEFT JOIN consent_texts t ON t.id = r.text_id"
	    " WHERE r.contact_id IN (SELECT id FROM subj) ORDER BY r.id" },
	{ "consent_requests", SUBJ "SELECT q.id, q.contact_id, p.name AS"
	    " purpose, q.created, q.confirmed, t.body AS text FROM"
	    " consent_requests q JOIN purposes p ON p.id = q.purpose_id"
	    " LEFT JOIN consent_texts t ON t.id = q.text_id"
	    " WHERE q.contact_id IN (SELECT id FROM subj) ORDER BY q.id" },
	{ "campaign_recipients", SUBJ "SELECT r.id, r.campaign_id,"
	    " c.subject AS campaign_subject, r.email, r.state, r.message_id,"
	    " r.outbound_id, r.detail FROM campaign_recipients r"
	    " JOIN campaigns c ON c.id = r.campaign_id"
	    " WHERE r.contact_id IN (SELECT id FROM subj) ORDER BY r.id" },
	{ "outbound", SUBJ "SELECT o.id, a.name AS account, o.dossier_id,"
	    " o.kind, o.rcpt, o.mail_from, o.message_id, o.sha256, o.size,"
	    " o.state, o.attempts, o.created, o.updated, o.last_code,"
	    " o.last_enhanced, o.last_text FROM outbound o"
	    " JOIN accounts a ON a.id = o.account_id"
	    " WHERE ((?1 = 0 OR o.account_id = ?1) AND lower(o.rcpt) = ?2)"
	    " OR o.dossier_id IN (SELECT id FROM dos) ORDER BY o.id" },
	{ "events", SUBJ "SELECT id, dossier_id, at, kind, detail FROM events"
	    " WHERE dossier_id IN (SELECT id FROM dos) OR"
	    " ((?1 = 0 OR account_id = ?1) AND instr(lower(detail), ?2) > 0)"
	    " ORDER BY id" },
	{ "suppressions", SUBJ "SELECT s.id, a.name AS account, s.email,"
	    " s.reason, s.created, s.expires FROM suppressions s"
	    " JOIN accounts a ON a.id = s.account_id"
	    " WHERE (?1 = 0 OR s.account_id = ?1) AND lower(s.email) = ?2"
	    " ORDER BY s.id" },
};
#define SP_NEXPORT (sizeof(sp_export) / sizeof(sp_export[0]))

int
store_subject_export(struct store *st, int64_t account_id, const char *email,
    json_t **doc_r, char *err)
{
	json_t *doc = json_object();
	size_t i;

	*doc_r = NULL;
	for (i = 0; i < SP_NEXPORT; i++) {
		json_t *arr = json_array();

		json_object_set_new(doc, sp_export[i].name, arr);
		if (sp_rows_json(st, sp_prep(st, sp_export[i].sql, err, "it",
		    account_id, email), arr, err) != 0) {
			json_decref(doc);
			return -1;
		}
	}
	*doc_r = doc;
	return 0;
}

int
store_subject_accounts(struct store *st, int64_t account_id,
    const char *email, store_subject_acct_cb cb, void *ctx, char *err)
{
	struct db_stmt *s = sp_prep(st, "SELECT a.id, a.name FROM accounts a"
	    " WHERE (?1 = 0 OR a.id = ?1) AND (EXISTS (SELECT 1 FROM contacts"
	    " c WHERE c.account_id = a.id AND lower(c.email) = ?2) OR EXISTS"
	    " (SELECT 1 FROM outbound o WHERE o.account_id = a.id AND"
	    " lower(o.rcpt) = ?2) OR EXISTS (SELECT 1 FROM messages m WHERE"
	    " m.account_id = a.id AND (lower(m.mail_from) = ?2 OR"
	    " instr(lower(COALESCE(m.from_header, '')), ?2) > 0)) OR EXISTS"
	    " (SELECT 1 FROM suppressions x WHERE x.account_id = a.id AND"
	    " lower(x.email) = ?2)) ORDER BY a.id", err, "it", account_id,
	    email);
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW)
		if (cb(db_col_int64(s, 0),
		    db_col_text(s, 1), ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	db_finalize(s);
	return rc == DB_DONE ? 0 : sp_fail(st, err, "subject accounts");
}

/* ---- erasure ---- */

/*
 * ?1 account, ?2 address, ?3 dossier hold cutoff, ?4 outbound hold
 * cutoff, ?5 consent hold cutoff (0: no hold).  The temp tables name the
 * rows to go, so counting, collecting blob hashes and deleting all see
 * the same set.
 */
#define HELD_D "(?3 > 0 AND (closed IS NULL OR closed >= ?3))"
#define CONSENT_HELD(c) \
	"(?5 > 0 AND EXISTS (SELECT 1 FROM consent_records r WHERE" \
	" r.contact_id = " c " AND r.at >= ?5))"

/*
 * The working tables, per engine: SQLite's INTEGER PRIMARY KEY is the
 * rowid itself (no second index), PostgreSQL's integer is 32 bits.
 * Named without "temp.": both engines look in the session's temporary
 * tables first (PostgreSQL: pg_temp heads search_path).
 */
#define SP_ERASE_TABLES(id) \
	"CREATE TEMP TABLE IF NOT EXISTS pe_c (id " id " PRIMARY KEY);" \
	"CREATE TEMP TABLE IF NOT EXISTS pe_cc (id " id " PRIMARY KEY);" \
	"CREATE TEMP TABLE IF NOT EXISTS pe_d (id " id " PRIMARY KEY);" \
	"CREATE TEMP TABLE IF NOT EXISTS pe_h (id " id " PRIMARY KEY);" \
	"CREATE TEMP TABLE IF NOT EXISTS pe_m (id " id " PRIMARY KEY);" \
	"CREATE TEMP TABLE IF NOT EXISTS pe_doc (id " id " PRIMARY KEY);" \
	"CREATE TEMP TABLE IF NOT EXISTS pe_o (id " id " PRIMARY KEY)"
#define SP_PURGE_TABLE(id) \
	"CREATE TEMP TABLE IF NOT EXISTS pp (id " id " PRIMARY KEY)"

static const char sp_erase_tables_sqlite[] = SP_ERASE_TABLES("INTEGER");
static const char sp_erase_tables_pg[] = SP_ERASE_TABLES("BIGINT");

static const char *const sp_erase_setup[] = {
	"DELETE FROM pe_c", "DELETE FROM pe_cc",
	"DELETE FROM pe_d", "DELETE FROM pe_h",
	"DELETE FROM pe_m", "DELETE FROM pe_doc",
	"DELETE FROM pe_o",
	"INSERT INTO pe_c SELECT id FROM contacts WHERE account_id = ?1"
	" AND lower(email) = ?2",
	/* contacts whose consent ledger goes (no hold keeps it) */
	"INSERT INTO pe_cc SELECT id FROM pe_c WHERE NOT "
	CONSENT_HELD("pe_c.id"),
	"INSERT INTO pe_h SELECT id FROM dossiers WHERE account_id = ?1"
	" AND " HELD_D,
	"INSERT INTO pe_d SELECT id FROM dossiers WHERE account_id = ?1"
	" AND contact_id IN (SELECT id FROM pe_c)"
	" AND id NOT IN (SELECT id FROM pe_h)",
	"INSERT INTO pe_m SELECT id FROM messages WHERE account_id = ?1"
	" AND (dossier_id IN (SELECT id FROM pe_d) OR"
	" ((lower(mail_from) = ?2 OR"
	" instr(lower(COALESCE(from_header, '')), ?2) > 0)"
	" AND dossier_id NOT IN (SELECT id FROM pe_h)))",
	"INSERT INTO pe_doc SELECT id FROM documents WHERE account_id = ?1"
	" AND (dossier_id IN (SELECT id FROM pe_d) OR"
	" message_id IN (SELECT id FROM pe_m))",
	"INSERT INTO pe_o SELECT id FROM outbound WHERE account_id = ?1"
	" AND (dossier_id IN (SELECT id FROM pe_d) OR"
	" (lower(rcpt) = ?2 AND NOT (?4 > 0 AND created >= ?4)"
	" AND (dossier_id IS NULL OR"
	" dossier_id NOT IN (SELECT id FROM pe_h))))",
};

/* In store_erase_names order (but "blobs", counted by the caller). */
static const char *const sp_erase_del[STORE_ERASE_NCOUNTS - 1] = {
	"DELETE FROM documents WHERE id IN (SELECT id FROM pe_doc)",
	"DELETE FROM messages WHERE id IN (SELECT id FROM pe_m)",
	"DELETE FROM events WHERE account_id = ?1 AND (dossier_id IN"
	" (SELECT id FROM pe_d) OR ((dossier_id IS NULL OR dossier_id"
	" NOT IN (SELECT id FROM pe_h)) AND (instr(lower(detail), ?2)"
	" > 0 OR EXISTS (SELECT 1 FROM contacts c WHERE c.id IN (SELECT id"
	" FROM pe_c) AND COALESCE(c.name, '') <> '' AND"
	" instr(lower(detail), lower(c.name)) > 0))))",
	"DELETE FROM outbound WHERE id IN (SELECT id FROM pe_o)",
	"DELETE FROM campaign_recipients WHERE contact_id IN"
	" (SELECT id FROM pe_cc)",
	/* The append-only trigger lets through privacy_erasing's rows. */
	"DELETE FROM consent_records WHERE contact_id IN"
	" (SELECT contact_id FROM privacy_erasing)",
	"DELETE FROM consent_requests WHERE contact_id IN"
	" (SELECT id FROM pe_cc)",
	"DELETE FROM dossiers WHERE id IN (SELECT id FROM pe_d)",
	"DELETE FROM suppressions WHERE account_id = ?1 AND lower(email) = ?2",
	"DELETE FROM contacts WHERE id IN (SELECT id FROM pe_c) AND"
	" NOT EXISTS (SELECT 1 FROM dossiers d WHERE d.contact_id ="
	" contacts.id) AND NOT EXISTS (SELECT 1 FROM consent_records r WHERE"
	" r.contact_id = contacts.id) AND NOT EXISTS (SELECT 1 FROM"
	" consent_requests q WHERE q.contact_id = contacts.id) AND NOT EXISTS"
	" (SELECT 1 FROM campaign_recipients x WHERE x.contact_id ="
	" contacts.id)",
};

static int
sp_erase_held(struct store *st, const struct store_erase_holds *h,
    int64_t account_id, const char *email, struct store_erase_counts *c,
    char *err)
{
	if (store_cx_int(st, sp_prep(st, "SELECT COUNT(*) FROM dossiers WHERE"
	    " contact_id IN (SELECT id FROM pe_c) AND id IN"
	    " (SELECT id FROM pe_h)", err, ""), &c->held_dossiers, err,
	    "held dossiers") < 0)
		return -1;
	if (store_cx_int(st, sp_prep(st, "SELECT COUNT(*) FROM outbound WHERE"
	    " account_id = ?1 AND lower(rcpt) = ?2 AND id NOT IN"
	    " (SELECT id FROM pe_o)", err, "it", account_id, email),
	    &c->held_outbound, err, "held outbound") < 0)
		return -1;
	(void)h;
	return store_cx_int(st, sp_prep(st, "SELECT COUNT(*) FROM consent_records"
	    " WHERE contact_id IN (SELECT id FROM pe_c) AND contact_id"
	    " NOT IN (SELECT id FROM pe_cc)", err, ""),
	    &c->held_consent, err, "held consent") < 0 ? -1 : 0;
}

static int
sp_erase_blobs(struct store *st, store_sha_cb cb, void *ctx, char *err)
{
	struct db_stmt *s = sp_prep(st, "SELECT sha256 FROM messages WHERE id IN"
	    " (SELECT id FROM pe_m) UNION SELECT sha256 FROM documents"
	    " WHERE id IN (SELECT id FROM pe_doc) UNION SELECT sha256"
	    " FROM outbound WHERE id IN (SELECT id FROM pe_o)", err, "");
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW) {
		const char *sha = db_col_text(s, 0);

		if (sha != NULL && sha[0] != '\0' && cb != NULL)
			cb(sha, ctx);
	}
	db_finalize(s);
	return rc == DB_DONE ? 0 : sp_fail(st, err, "erase blobs");
}

int
store_subject_erase(struct store *st, int64_t account_id, const char *email,
    const struct store_erase_holds *h, struct store_erase_counts *c,
    store_sha_cb blob_cb, void *ctx, char *err)
{
	int64_t before = 0, n;
	size_t i;

	memset(c, 0, sizeof(*c));
	if (sp_exec(st, store_on_pg(st) ? sp_erase_tables_pg :
	    sp_erase_tables_sqlite, err) != 0)
		return -1;
	for (i = 0; i < sizeof(sp_erase_setup) / sizeof(sp_erase_setup[0]);
	    i++)
		if (sp_run(st, sp_prep(st, sp_erase_setup[i], err, "itiii",
		    account_id, email, h->dossiers, h->outbound, h->consent),
		    NULL, err, "erase: select") != 0)
			return -1;
	if (sp_erase_held(st, h, account_id, email, c, err) != 0 ||
	    sp_erase_blobs(st, blob_cb, ctx, err) != 0)
		return -1;
	if (store_cx_int(st, sp_prep(st, "SELECT COUNT(*) FROM pe_c", err, ""),
	    &before, err, "erase: contacts") < 0)
		return -1;
	if (sp_exec(st, "INSERT INTO privacy_erasing SELECT id FROM"
	    " pe_cc", err) != 0)
		return -1;
	for (i = 0; i < STORE_ERASE_NCOUNTS - 1; i++) {
		if (sp_run(st, sp_prep(st, sp_erase_del[i], err, "it",
		    account_id, email), &n, err, store_erase_names[i]) != 0)
			return -1;
		c->n[i] = n;
	}
	if (sp_exec(st, "DELETE FROM privacy_erasing", err) != 0)
		return -1;
	c->contact_kept = before > c->n[9];
	return 0;
}

int
store_subject_rectify(struct store *st, int64_t account_id, const char *email,
    const char *name, const char *new_email, int *n_r, char *err)
{
	int64_t n = 0;
	struct db_stmt *s = sp_prep(st, "UPDATE contacts SET name ="
	    " COALESCE(?3, name), email = COALESCE(?4, email) WHERE"
	    " (?1 = 0 OR account_id = ?1) AND lower(email) = ?2", err, "itt",
	    account_id, email, name);
	int rc;

	if (s == NULL)
		return -1;
	if (new_email != NULL)
		db_bind_text(s, 4, new_email, -1);
	else
		db_bind_null(s, 4);
	rc = db_step(s);
	db_finalize(s);
	if ((rc & 0xff) == DB_CONSTRAINT) {
		pd_err(err, "%s is already a contact of that account",
		    new_email != NULL ? new_email : "?");
		return -1;
	}
	if (rc != DB_DONE)
		return sp_fail(st, err, "rectify");
	n = db_changes(store_db(st));
	if (new_email != NULL && n > 0 && sp_run(st, sp_prep(st,
	    "UPDATE campaign_recipients SET email = ?2 WHERE state IN"
	    " ('pending', 'queuing') AND contact_id IN (SELECT id FROM"
	    " contacts WHERE (?1 = 0 OR account_id = ?1) AND email = ?2)",
	    err, "it", account_id, new_email), NULL, err,
	    "rectify campaigns") != 0)
		return -1;
	*n_r = (int)n;
	return 0;
}

int
store_blob_referenced(struct store *st, const char *sha, char *err)
{
	return store_cx_int(st, sp_prep(st, "SELECT 1 WHERE EXISTS (SELECT 1 FROM"
	    " messages WHERE sha256 = ?1) OR EXISTS (SELECT 1 FROM documents"
	    " WHERE sha256 = ?1) OR EXISTS (SELECT 1 FROM outbound WHERE"
	    " sha256 = ?1)", err, "t", sha), NULL, err, "blob references");
}

/* Each text of column 0 to cb; the statement is finalised. */
static int
sp_each_sha(struct store *st, struct db_stmt *s, store_sha_cb cb, void *ctx,
    char *err, const char *what)
{
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW) {
		const char *sha = db_col_text(s, 0);

		if (sha != NULL && sha[0] != '\0' && cb(sha, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	if (rc != DB_DONE) {
		sp_fail(st, err, what);
		db_finalize(s);
		return -1;
	}
	db_finalize(s);
	return 0;
}

int
store_blob_names(struct store *st, store_sha_cb cb, void *ctx, char *err)
{
	return sp_each_sha(st, sp_prep(st, "SELECT sha256 FROM messages UNION"
	    " SELECT sha256 FROM documents UNION SELECT sha256 FROM outbound",
	    err, ""), cb, ctx, err, "blob names");
}

/*
 * One pass over each table whatever the number of hashes: "x IN
 * (SELECT ...)" is evaluated once into a temporary index, where asking
 * per hash (store_blob_referenced) scans the tables each time (sha256
 * alone is not indexed).  The JSON array's elements: json_each in SQLite,
 * jsonb_array_elements_text in PostgreSQL (15 docs, 9.16.1).
 */
#define SP_UNNAMED(from) "SELECT value FROM " from \
	" WHERE value NOT IN (SELECT sha256 FROM messages) AND value NOT" \
	" IN (SELECT sha256 FROM documents) AND value NOT IN (SELECT" \
	" sha256 FROM outbound)"

int
store_blobs_unnamed(struct store *st, const char *json_shas,
    store_sha_cb cb, void *ctx, char *err)
{
	return sp_each_sha(st, sp_prep(st, store_on_pg(st) ?
	    SP_UNNAMED("jsonb_array_elements_text(CAST(?1 AS jsonb))"
	    " AS j (value)") :
	    SP_UNNAMED("json_each(?1)"), err, "t", json_shas), cb, ctx, err,
	    "unnamed blobs");
}

/* PostgreSQL has no such setting: a deleted row's bytes stay in its page
 * until VACUUM reuses the space (store_compact). */
int
store_secure_delete(struct store *st, char *err)
{
	if (store_on_pg(st))
		return 0;
	return sp_exec(st, "PRAGMA secure_delete = ON", err);
}

/* wal_checkpoint answers (busy, log frames, checkpointed frames). */
static int
sp_checkpoint(struct store *st, int *busy_r, char *err)
{
	struct db_stmt *s = sp_prep(st, "PRAGMA wal_checkpoint(TRUNCATE)", err,
	    "");
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	*busy_r = rc == DB_ROW ? db_col_int(s, 0) : 1;
	db_finalize(s);
	return rc == DB_ROW ? 0 : sp_fail(st, err, "wal_checkpoint");
}

/*
 * Free pages were zeroed by secure_delete, but the WAL still holds the
 * old pages until a checkpoint, and VACUUM rewrites the file without the
 * free list.  A reader in another process can hold the checkpoint back:
 * retry for a few seconds, then report it.
 */
int
store_compact(struct store *st, int vacuum, char *err)
{
	int busy = 1, tries;

	/* PostgreSQL recycles its own WAL (a CHECKPOINT needs a privileged
	 * role); VACUUM FULL would lock every table against intake, so a
	 * plain VACUUM marks the deleted rows' space for reuse. */
	if (store_on_pg(st))
		return vacuum ? sp_exec(st, "VACUUM", err) : 0;
	if (sp_checkpoint(st, &busy, err) != 0 ||
	    (vacuum && sp_exec(st, "VACUUM", err) != 0))
		return -1;
	for (tries = 0; tries < 50; tries++) {
		if (sp_checkpoint(st, &busy, err) != 0)
			return -1;
		if (!busy)
			return 0;
		usleep(100000);
	}
	pd_err(err, "the WAL could not be truncated (a reader is active): "
	    "run `postdoc purge` again when idle");
	return 1;
}

/* ---- retention ---- */

/* A message whose raw copy retention takes says so, and since when
 * (the purge's wall clock, not its --now: the day it happened): ?1. */
#define RAW_BY_RETENTION "raw_removed = 'retention', raw_removed_at = ?1"

static const char sp_purge_table_sqlite[] = SP_PURGE_TABLE("INTEGER");
static const char sp_purge_table_pg[] = SP_PURGE_TABLE("BIGINT");

static const struct {
	const char *cls;
	const char *select;	/* ids into pp */
	const char *shas;	/* blob hashes of pp's rows */
	const char *apply[2];	/* in turn, ?1 the wall clock */
} sp_purge[] = {
	{ "raw_messages",
	  "INSERT INTO pp SELECT id FROM messages WHERE"
	  " (?1 = 0 OR account_id = ?1) AND received < ?2 AND sha256 <> ''"
	  " AND dossier_id NOT IN (SELECT id FROM dossiers WHERE " HELD_D ")",
	  "SELECT sha256 FROM messages WHERE id IN (SELECT id FROM pp)",
	  { "UPDATE messages SET sha256 = '', " RAW_BY_RETENTION " WHERE id IN"
	  " (SELECT id FROM pp)" } },
	{ "documents",
	  "INSERT INTO pp SELECT id FROM documents WHERE"
	  " (?1 = 0 OR account_id = ?1) AND dossier_id IN (SELECT id FROM"
	  " dossiers WHERE status = 'closed' AND closed < ?2 AND NOT " HELD_D
	  ")",
	  "SELECT sha256 FROM documents WHERE id IN (SELECT id FROM pp)"
	  " UNION SELECT m.sha256 FROM messages m JOIN documents d ON"
	  " d.message_id = m.id WHERE d.id IN (SELECT id FROM pp)",
	  /* the raw message carries the same bytes: it goes too */
	  { "UPDATE messages SET sha256 = '', " RAW_BY_RETENTION " WHERE id IN"
	  " (SELECT message_id FROM documents WHERE id IN"
	  " (SELECT id FROM pp))",
	  "DELETE FROM documents WHERE id IN (SELECT id FROM pp)" } },
	{ "outbound_bodies",
	  "INSERT INTO pp SELECT id FROM outbound WHERE"
	  " (?1 = 0 OR account_id = ?1) AND created < ?2 AND sha256 <> ''"
	  " AND state IN ('sent', 'bounced', 'failed')",
	  "SELECT sha256 FROM outbound WHERE id IN (SELECT id FROM pp)",
	  { "UPDATE outbound SET sha256 = '' WHERE id IN"
	  " (SELECT id FROM pp)" } },
	{ "history",
	  "INSERT INTO pp SELECT id FROM events WHERE"
	  " (?1 = 0 OR account_id = ?1) AND at < ?2 AND (dossier_id IS NULL"
	  " OR dossier_id NOT IN (SELECT id FROM dossiers WHERE " HELD_D "))",
	  NULL,
	  { "DELETE FROM events WHERE id IN (SELECT id FROM pp)" } },
};

int
store_purge_class(struct store *st, int64_t account_id, const char *cls,
    int64_t cutoff, const struct store_erase_holds *h, int dry_run,
    int64_t *n_r, store_sha_cb blob_cb, void *ctx, char *err)
{
	size_t i, j;
	struct db_stmt *s;
	int rc;

	for (i = 0; i < sizeof(sp_purge) / sizeof(sp_purge[0]); i++)
		if (strcmp(sp_purge[i].cls, cls) == 0)
			break;
	if (i == sizeof(sp_purge) / sizeof(sp_purge[0])) {
		pd_err(err, "unknown data class %s", cls);
		return -1;
	}
	if (sp_exec(st, store_on_pg(st) ? sp_purge_table_pg :
	    sp_purge_table_sqlite, err) != 0 ||
	    sp_exec(st, "DELETE FROM pp", err) != 0 ||
	    sp_run(st, sp_prep(st, sp_purge[i].select, err, "iii", account_id,
	    cutoff, h->dossiers), NULL, err, cls) != 0 ||
	    store_cx_int(st, sp_prep(st, "SELECT COUNT(*) FROM pp", err, ""),
	    n_r, err, cls) < 0)
		return -1;
	if (dry_run)
		return 0;
	if (sp_purge[i].shas != NULL) {
		if ((s = sp_prep(st, sp_purge[i].shas, err, "")) == NULL)
			return -1;
		while ((rc = db_step(s)) == DB_ROW) {
			const char *sha = db_col_text(s, 0);

			if (sha != NULL && sha[0] != '\0' && blob_cb != NULL)
				blob_cb(sha, ctx);
		}
		db_finalize(s);
		if (rc != DB_DONE)
			return sp_fail(st, err, cls);
	}
	for (j = 0; j < 2 && sp_purge[i].apply[j] != NULL; j++)
		if (sp_run(st, sp_prep(st, sp_purge[i].apply[j], err, "i",
		    pd_now()), NULL, err, cls) != 0)
			return -1;
	return 0;
}

int
store_minors(struct store *st, int64_t account_id, store_minor_cb cb,
    void *ctx, char *err)
{
	struct db_stmt *s = sp_prep(st, "SELECT account_id, email FROM contacts"
	    " WHERE adult = 'no' AND (?1 = 0 OR account_id = ?1) ORDER BY id",
	    err, "i", account_id);
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW)
		if (cb(db_col_int64(s, 0),
		    db_col_text(s, 1), ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	db_finalize(s);
	return rc == DB_DONE ? 0 : sp_fail(st, err, "minors");
}

/* ---- erased addresses, erasure records, audit ---- */

int
store_erased_add(struct store *st, int64_t account_id, const char *hash,
    char *err)
{
	return sp_run(st, sp_prep(st, "INSERT INTO erased_subjects"
	    " (account_id, hash, created) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT DO NOTHING", err, "iti",
	    account_id, hash, pd_now()), NULL, err, "erased subject");
}

int
store_erased_has(struct store *st, int64_t account_id, const char *hash,
    char *err)
{
	return store_cx_int(st, sp_prep(st, "SELECT 1 FROM erased_subjects WHERE"
	    " (account_id = 0 OR account_id = ?1) AND hash = ?2 LIMIT 1", err,
	    "it", account_id, hash), NULL, err, "erased subject");
}

/* When the address was first erased in the account (or in every
 * account): 1 with *at_r, 0 if it was not. */
int
store_erased_at(struct store *st, int64_t account_id, const char *hash,
    int64_t *at_r, char *err)
{
	return store_cx_int(st, sp_prep(st, "SELECT MIN(created) FROM"
	    " erased_subjects WHERE (account_id = 0 OR account_id = ?1) AND"
	    " hash = ?2 HAVING COUNT(*) > 0", err, "it", account_id, hash),
	    at_r, err, "erased subject");
}

/*
 * The person came back to this account on their own: the hash stops
 * blocking it.  An erasure for every account (account_id 0) is first
 * split into one row per other account, so it keeps blocking them.
 */
int
store_erased_lift(struct store *st, int64_t account_id, const char *hash,
    char *err)
{
	if (sp_run(st, sp_prep(st, "INSERT INTO erased_subjects"
	    " (account_id, hash, created) SELECT a.id, e.hash, e.created FROM"
	    " accounts a, erased_subjects e WHERE e.account_id = 0 AND"
	    " e.hash = ?2 AND a.id <> ?1 ON CONFLICT DO NOTHING", err, "it",
	    account_id, hash), NULL, err, "erased subject") != 0)
		return -1;
	return sp_run(st, sp_prep(st, "DELETE FROM erased_subjects WHERE"
	    " hash = ?2 AND account_id IN (0, ?1)", err, "it", account_id,
	    hash), NULL, err, "erased subject");
}

int
store_erasure_add(struct store *st, const char *actor, const char *account,
    const char *hash, const char *detail, char *err)
{
	return sp_run(st, sp_prep(st, "INSERT INTO erasures (at, actor,"
	    " account, subject_hash, detail) VALUES (?1, ?2, ?3, ?4, ?5)", err,
	    "itttt", pd_now(), actor, account, hash, detail), NULL, err,
	    "erasure record");
}

int
store_audit_add(struct store *st, const char *actor, const char *action,
    const char *account, const char *subject_hash, const char *detail,
    char *err)
{
	return sp_run(st, sp_prep(st, "INSERT INTO audit (at, actor, action,"
	    " account, subject_hash, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	    err, "ittttt", pd_now(), actor, action, account != NULL ? account :
	    "", subject_hash != NULL ? subject_hash : "", detail != NULL ?
	    detail : ""), NULL, err, "audit");
}

static void
sp_copy(char *dst, size_t len, struct db_stmt *s, int col)
{
	const char *t = db_col_text(s, col);

	snprintf(dst, len, "%s", t != NULL ? t : "");
}

static int
sp_audit_rows(struct store *st, const char *sql, store_audit_cb cb,
    void *ctx, char *err)
{
	struct db_stmt *s = sp_prep(st, sql, err, "");
	struct store_audit_row r;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW) {
		memset(&r, 0, sizeof(r));
		r.id = db_col_int64(s, 0);
		r.at = db_col_int64(s, 1);
		sp_copy(r.actor, sizeof(r.actor), s, 2);
		sp_copy(r.action, sizeof(r.action), s, 3);
		sp_copy(r.account, sizeof(r.account), s, 4);
		sp_copy(r.subject_hash, sizeof(r.subject_hash), s, 5);
		sp_copy(r.detail, sizeof(r.detail), s, 6);
		if (cb(&r, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_finalize(s);
	return rc == DB_DONE ? 0 : sp_fail(st, err, "audit list");
}

int
store_audit_list(struct store *st, store_audit_cb cb, void *ctx, char *err)
{
	return sp_audit_rows(st, "SELECT id, at, actor, action, account,"
	    " subject_hash, detail FROM audit ORDER BY id", cb, ctx, err);
}

int
store_erasure_list(struct store *st, store_erasure_cb cb, void *ctx,
    char *err)
{
	return sp_audit_rows(st, "SELECT id, at, actor, 'erasure', account,"
	    " subject_hash, detail FROM erasures ORDER BY id", cb, ctx, err);
}

/*
 * store.c - the SQLite backend behind store.h: connection setup (WAL,
 * synchronous, foreign keys), versioned migrations, and every query
 * Postdoc runs.  Data only ever reaches SQL as bound parameters; SQL text
 * is built solely from the constants in this file.  Tenant data is read
 * and written scoped by account.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store.h"
#include "store_int.h"
#include "lib/util.h"

/* Single-row statements, prepared once per connection and reused. */
enum store_stmt_id {
	S_ACCOUNT_ADD,
	S_ACCOUNT_GET,
	S_CONTACT_ADD,
	S_CONTACT_GET,
	S_DOSSIER_ADD,
	S_DOSSIER_GET,
	S_DOSSIER_BY_REF,
	S_DOSSIER_BY_LOCAL,
	S_DOSSIER_CLOSE,
	S_MESSAGE_DUP,
	S_MESSAGE_ADD,
	S_MESSAGE_GET,
	S_DOCUMENT_DUP,
	S_DOCUMENT_ADD,
	S_DOCUMENT_GET,
	S_EVENT_ADD,
	S_DOSSIER_SET_REQUEST,
	S_DOCUMENT_COUNT_SINCE,
	S_OUTBOUND_ADD,
	S_OUTBOUND_GET,
	S_OUTBOUND_BY_VERP,
	S_OUTBOUND_DUE,
	S_OUTBOUND_TAKE,
	S_OUTBOUND_UPDATE,
	S_OUTBOUND_RECOVER,
	S_OUTBOUND_COUNT,
	S_SUPPRESSION_ADD,
	S_SUPPRESSION_GET,
	S_RAW_PUT,
	S_COUNT
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
};

#define ACCOUNT_COLS "SELECT id, name, sender_policy, created FROM accounts "

#define DOSSIER_COLS \
	"SELECT d.id, d.account_id, a.name, a.sender_policy, d.ref, " \
	"c.email, d.intake_local, d.status, d.created, " \
	"COALESCE(d.closed, 0), d.requested, d.due FROM dossiers d " \
	"JOIN accounts a ON a.id = d.account_id " \
	"JOIN contacts c ON c.id = d.contact_id "

#define DOC_COLS \
	"SELECT d.id, d.dossier_id, COALESCE(d.message_id, 0), d.filename, " \
	"d.stored_name, d.declared_type, d.sniffed_type, d.size, d.sha256, " \
	"COALESCE(m.received, d.created) FROM documents d " \
	"LEFT JOIN messages m ON m.id = d.message_id "

#define MSG_COLS \
	"SELECT id, queue_id, mail_from, rcpt_to, client_ip, helo, tls, " \
	"lmtp, message_id, subject, size, sha256, parse_status, anomalies, " \
	"received FROM messages "

#define OUTBOUND_COLS \
	"SELECT o.id, o.account_id, COALESCE(o.dossier_id, 0), a.name, " \
	"o.kind, o.rcpt, o.rcpt_domain, o.mail_from, o.verp_token, " \
	"o.message_id, o.from_domain, o.sha256, o.size, o.state, o.attempts, " \
	"o.next_attempt, o.created, o.updated, o.last_code, o.last_enhanced, " \
	"o.last_text FROM outbound o JOIN accounts a ON a.id = o.account_id "

static const char *const store_sql[S_COUNT] = {
	[S_ACCOUNT_ADD] = "INSERT INTO accounts (name, sender_policy, created)"
	    " VALUES (?1, ?2, ?3)",
	[S_ACCOUNT_GET] = ACCOUNT_COLS "WHERE name = ?1",
	[S_CONTACT_ADD] = "INSERT OR IGNORE INTO contacts"
	    " (account_id, email, created) VALUES (?1, ?2, ?3)",
	[S_CONTACT_GET] = "SELECT id FROM contacts"
	    " WHERE account_id = ?1 AND email = ?2",
	[S_DOSSIER_ADD] = "INSERT INTO dossiers (account_id, contact_id, ref,"
	    " intake_local, status, created)"
	    " VALUES (?1, ?2, ?3, ?4, 'open', ?5)",
	[S_DOSSIER_GET] = DOSSIER_COLS
	    "WHERE d.id = ?1 AND (?2 = 0 OR d.account_id = ?2)",
	[S_DOSSIER_BY_REF] = DOSSIER_COLS
	    "WHERE d.account_id = ?1 AND d.ref = ?2",
	[S_DOSSIER_BY_LOCAL] = DOSSIER_COLS "WHERE d.intake_local = ?1",
	[S_DOSSIER_CLOSE] = "UPDATE dossiers SET status = 'closed',"
	    " closed = ?3 WHERE id = ?1 AND account_id = ?2"
	    " AND status = 'open'",
	[S_MESSAGE_DUP] = "SELECT id FROM messages WHERE dossier_id = ?1"
	    " AND sha256 = ?2 ORDER BY id LIMIT 1",
	[S_MESSAGE_ADD] = "INSERT INTO messages (account_id, dossier_id,"
	    " queue_id, mail_from, rcpt_to, helo, client_ip, tls, lmtp,"
	    " message_id, subject, from_header, size, sha256, parse_status,"
	    " anomalies, received) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
	    " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
	[S_MESSAGE_GET] = MSG_COLS
	    "WHERE id = ?1 AND (?2 = 0 OR account_id = ?2)",
	[S_DOCUMENT_DUP] = "SELECT id FROM documents WHERE dossier_id = ?1"
	    " AND sha256 = ?2 AND message_id <> ?3 LIMIT 1",
	[S_DOCUMENT_ADD] = "INSERT INTO documents (account_id, dossier_id,"
	    " message_id, filename, stored_name, declared_type, sniffed_type,"
	    " size, sha256, part_path, created) VALUES (?1, ?2, ?3, ?4, ?5,"
	    " ?6, ?7, ?8, ?9, ?10, ?11)",
	[S_DOCUMENT_GET] = DOC_COLS
	    "WHERE d.id = ?1 AND (?2 = 0 OR d.account_id = ?2)",
	/* Ids never go back, even after an erasure or a purge deleted the
	 * newest rows: evq's cursors (event_cursors) would skip a reused id. */
	[S_EVENT_ADD] = "INSERT INTO events (id, account_id, dossier_id, at,"
	    " kind, detail) VALUES (1 + max(COALESCE((SELECT MAX(id) FROM"
	    " events), 0), COALESCE((SELECT MAX(last_event) FROM"
	    " event_cursors), 0)), ?1, ?2, ?3, ?4, ?5)",
	[S_DOSSIER_SET_REQUEST] = "UPDATE dossiers SET requested = ?3,"
	    " due = ?4 WHERE id = ?1 AND account_id = ?2",
	[S_DOCUMENT_COUNT_SINCE] = "SELECT COUNT(*) FROM documents"
	    " WHERE dossier_id = ?1 AND created >= ?2",
	[S_OUTBOUND_ADD] = "INSERT INTO outbound (account_id, dossier_id,"
	    " kind, rcpt, rcpt_domain, mail_from, verp_token, message_id,"
	    " from_domain, sha256, size, state, attempts, next_attempt,"
	    " created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
	    " ?10, ?11, ?12, 0, ?13, ?14, ?14)",
	[S_OUTBOUND_GET] = OUTBOUND_COLS
	    "WHERE o.id = ?1 AND (?2 = 0 OR o.account_id = ?2)",
	[S_OUTBOUND_BY_VERP] = OUTBOUND_COLS "WHERE o.verp_token = ?1",
	/* Served by outbound_due (state, next_attempt). */
	[S_OUTBOUND_DUE] = OUTBOUND_COLS
	    "WHERE o.state IN ('queued', 'deferred') AND o.next_attempt <= ?1"
	    " ORDER BY o.next_attempt, o.id LIMIT ?2",
	[S_OUTBOUND_TAKE] = "UPDATE outbound SET state = 'sending',"
	    " attempts = attempts + 1, updated = ?2"
	    " WHERE id = ?1 AND state IN ('queued', 'deferred')",
	[S_OUTBOUND_UPDATE] = "UPDATE outbound SET state = ?2,"
	    " last_code = ?3, last_enhanced = ?4, last_text = ?5,"
	    " next_attempt = ?6, updated = ?7 WHERE id = ?1",
	[S_OUTBOUND_RECOVER] = "UPDATE outbound SET state = 'deferred',"
	    " next_attempt = ?1, updated = ?1 WHERE state = 'sending'",
	[S_OUTBOUND_COUNT] = "SELECT COUNT(*), COALESCE(MIN(created), 0),"
	    " COALESCE(MAX(created), 0) FROM outbound WHERE dossier_id = ?1"
	    " AND (?2 IS NULL OR kind = ?2)",
	/* Adding an address again refreshes the reason and the expiry: a
	 * new hard bounce restarts the quarantine. */
	[S_SUPPRESSION_ADD] = "INSERT INTO suppressions (account_id, email,"
	    " reason, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)"
	    " ON CONFLICT (account_id, email) DO UPDATE SET"
	    " reason = excluded.reason, expires = excluded.expires",
	[S_SUPPRESSION_GET] = "SELECT reason, expires FROM suppressions"
	    " WHERE account_id = ?1 AND email = ?2 AND expires > ?3",
	/* content-addressed: a second message with the same bytes shares it */
	[S_RAW_PUT] = "INSERT OR IGNORE INTO raw_inline (sha256, data)"
	    " VALUES (?1, ?2)",
};

/*
 * Migrations: entry N brings the schema from version N-1 to N.  Never
 * edit a shipped entry; append a new one and bump STORE_SCHEMA_VERSION.
 * Composite foreign keys on (dossier_id, account_id) make it impossible
 * for a row to name another tenant's dossier, whatever a caller passes.
 */
static const char *const store_migrations[STORE_SCHEMA_VERSION + 1] = {
	[1] =
	"CREATE TABLE accounts ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" sender_policy TEXT NOT NULL DEFAULT 'any',"
	" created INTEGER NOT NULL);"
	"CREATE TABLE contacts ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" email TEXT NOT NULL,"
	" name TEXT,"
	" created INTEGER NOT NULL,"
	" UNIQUE (account_id, email),"
	" UNIQUE (id, account_id));"
	"CREATE TABLE dossiers ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" contact_id INTEGER NOT NULL,"
	" ref TEXT NOT NULL,"
	" intake_local TEXT NOT NULL UNIQUE,"
	" status TEXT NOT NULL DEFAULT 'open'"
	"  CHECK (status IN ('open', 'closed')),"
	" created INTEGER NOT NULL,"
	" closed INTEGER,"
	" UNIQUE (account_id, ref),"
	" UNIQUE (id, account_id),"
	" FOREIGN KEY (contact_id, account_id)"
	"  REFERENCES contacts(id, account_id));"
	"CREATE INDEX dossiers_account_status ON dossiers (account_id, status);"
	"CREATE TABLE messages ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL,"
	" dossier_id INTEGER NOT NULL,"
	" queue_id TEXT NOT NULL DEFAULT '',"
	" mail_from TEXT NOT NULL DEFAULT '',"
	" rcpt_to TEXT NOT NULL DEFAULT '',"
	" helo TEXT, client_ip TEXT,"
	" tls INTEGER NOT NULL DEFAULT 0,"
	" lmtp INTEGER NOT NULL DEFAULT 0,"
	" message_id TEXT, subject TEXT, from_header TEXT,"
	" size INTEGER NOT NULL,"
	" sha256 TEXT NOT NULL,"
	" parse_status TEXT NOT NULL DEFAULT 'ok',"
	" anomalies TEXT NOT NULL DEFAULT '',"
	" received INTEGER NOT NULL,"
	" FOREIGN KEY (dossier_id, account_id)"
	"  REFERENCES dossiers(id, account_id));"
	"CREATE INDEX messages_dossier_sha ON messages (dossier_id, sha256);"
	"CREATE INDEX messages_account ON messages (account_id);"
	"CREATE TABLE documents ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL,"
	" dossier_id INTEGER NOT NULL,"
	" message_id INTEGER REFERENCES messages(id),"
	" filename TEXT NOT NULL DEFAULT '',"
	" stored_name TEXT NOT NULL DEFAULT '',"
	" declared_type TEXT, sniffed_type TEXT,"
	" size INTEGER NOT NULL,"
	" sha256 TEXT NOT NULL,"
	" part_path TEXT,"
	" created INTEGER NOT NULL,"
	" UNIQUE (message_id, part_path),"
	" FOREIGN KEY (dossier_id, account_id)"
	"  REFERENCES dossiers(id, account_id));"
	"CREATE INDEX documents_dossier_sha ON documents (dossier_id, sha256);"
	"CREATE INDEX documents_message ON documents (message_id);"
	"CREATE INDEX documents_account ON documents (account_id);"
	"CREATE TABLE events ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER REFERENCES accounts(id),"
	" dossier_id INTEGER REFERENCES dossiers(id),"
	" at INTEGER NOT NULL,"
	" kind TEXT NOT NULL,"
	" detail TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX events_dossier ON events (dossier_id, at);",
	/*
	 * v2: outbound queue and suppressions.  A NULL dossier_id (mail not
	 * tied to a dossier) disables the composite key for that row only.
	 */
	[2] =
	"ALTER TABLE dossiers ADD COLUMN requested TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE dossiers ADD COLUMN due TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE outbound ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" dossier_id INTEGER,"
	" kind TEXT NOT NULL,"
	" rcpt TEXT NOT NULL,"
	" rcpt_domain TEXT NOT NULL,"
	" mail_from TEXT NOT NULL,"
	" verp_token TEXT NOT NULL UNIQUE,"
	" message_id TEXT NOT NULL DEFAULT '',"
	" from_domain TEXT NOT NULL DEFAULT '',"
	" sha256 TEXT NOT NULL,"
	" size INTEGER NOT NULL,"
	" state TEXT NOT NULL DEFAULT 'queued'"
	"  CHECK (state IN ('queued', 'sending', 'sent', 'deferred',"
	"  'bounced', 'failed')),"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt INTEGER NOT NULL,"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL,"
	" last_code INTEGER NOT NULL DEFAULT 0,"
	" last_enhanced TEXT NOT NULL DEFAULT '',"
	" last_text TEXT NOT NULL DEFAULT '',"
	" FOREIGN KEY (dossier_id, account_id)"
	"  REFERENCES dossiers(id, account_id));"
	"CREATE INDEX outbound_due ON outbound (state, next_attempt);"
	"CREATE INDEX outbound_dossier ON outbound (dossier_id, kind);"
	"CREATE INDEX outbound_account ON outbound (account_id);"
	"CREATE TABLE suppressions ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" email TEXT NOT NULL,"
	" reason TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL,"
	" expires INTEGER NOT NULL,"
	" UNIQUE (account_id, email));",
	/*
	 * v3: the consent ledger (purposes, versioned consent texts stored
	 * once, append-only records: triggers refuse UPDATE and DELETE),
	 * age attestation on contacts, double opt-in requests, campaigns
	 * with one recipient row each (resumable sending).
	 */
	[3] =
	"ALTER TABLE contacts ADD COLUMN adult TEXT NOT NULL DEFAULT 'unknown'"
	"  CHECK (adult IN ('yes', 'no', 'unknown'));"
	"ALTER TABLE contacts ADD COLUMN adult_at INTEGER;"
	"ALTER TABLE contacts ADD COLUMN adult_by TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE purposes ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" name TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" UNIQUE (account_id, name),"
	" UNIQUE (id, account_id));"
	"CREATE TABLE consent_texts ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" sha256 TEXT NOT NULL,"
	" body TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" UNIQUE (account_id, sha256));"
	"CREATE TABLE consent_records ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL,"
	" contact_id INTEGER NOT NULL,"
	" purpose_id INTEGER NOT NULL,"
	" action TEXT NOT NULL CHECK (action IN ('grant', 'withdraw')),"
	" basis TEXT NOT NULL CHECK (basis IN ('consent', 'contract',"
	"  'legitimate_interest')),"
	" source TEXT NOT NULL CHECK (source IN ('form', 'api', 'import',"
	"  'double_opt_in', 'one_click', 'mailto', 'admin')),"
	" method TEXT NOT NULL DEFAULT '',"
	" at INTEGER NOT NULL,"
	" ip TEXT NOT NULL DEFAULT '',"
	" user_agent TEXT NOT NULL DEFAULT '',"
	" operator TEXT NOT NULL DEFAULT '',"
	" text_id INTEGER REFERENCES consent_texts(id),"
	" FOREIGN KEY (contact_id, account_id)"
	"  REFERENCES contacts(id, account_id),"
	" FOREIGN KEY (purpose_id, account_id)"
	"  REFERENCES purposes(id, account_id));"
	"CREATE INDEX consent_latest ON consent_records"
	" (contact_id, purpose_id, id);"
	"CREATE TRIGGER consent_records_no_update BEFORE UPDATE ON"
	" consent_records BEGIN SELECT RAISE(ABORT,"
	" 'consent records are append-only'); END;"
	"CREATE TRIGGER consent_records_no_delete BEFORE DELETE ON"
	" consent_records BEGIN SELECT RAISE(ABORT,"
	" 'consent records are append-only'); END;"
	"CREATE TABLE consent_requests ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL,"
	" contact_id INTEGER NOT NULL,"
	" purpose_id INTEGER NOT NULL,"
	" text_id INTEGER REFERENCES consent_texts(id),"
	" created INTEGER NOT NULL,"
	" confirmed INTEGER,"
	" FOREIGN KEY (contact_id, account_id)"
	"  REFERENCES contacts(id, account_id),"
	" FOREIGN KEY (purpose_id, account_id)"
	"  REFERENCES purposes(id, account_id));"
	"CREATE TABLE campaigns ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL,"
	" purpose_id INTEGER NOT NULL,"
	" template TEXT NOT NULL,"
	" subject TEXT NOT NULL,"
	" locale TEXT NOT NULL DEFAULT '',"
	" state TEXT NOT NULL DEFAULT 'draft'"
	"  CHECK (state IN ('draft', 'sending', 'queued')),"
	" created INTEGER NOT NULL,"
	" started INTEGER,"
	" finished INTEGER,"
	" FOREIGN KEY (purpose_id, account_id)"
	"  REFERENCES purposes(id, account_id));"
	"CREATE TABLE campaign_recipients ("
	" id INTEGER PRIMARY KEY,"
	" campaign_id INTEGER NOT NULL REFERENCES campaigns(id),"
	" contact_id INTEGER NOT NULL REFERENCES contacts(id),"
	" email TEXT NOT NULL,"
	" state TEXT NOT NULL DEFAULT 'pending'"
	"  CHECK (state IN ('pending', 'queuing', 'queued', 'skipped')),"
	" message_id TEXT,"
	" outbound_id INTEGER,"
	" detail TEXT NOT NULL DEFAULT '',"
	" updated INTEGER NOT NULL,"
	" UNIQUE (campaign_id, contact_id));"
	"CREATE INDEX campaign_recipients_state ON campaign_recipients"
	" (campaign_id, state, id);"
	"CREATE INDEX campaign_recipients_msgid ON campaign_recipients"
	" (message_id);"
	"CREATE INDEX outbound_rcpt ON outbound (account_id, rcpt COLLATE NOCASE);",
	/*
	 * v4: privacy rights (privacy.c): the audit trail, erasure records,
	 * keyed hashes of erased addresses (marketing never reaches them
	 * again), and an erasure's consent records may be deleted - only
	 * those of a contact listed in privacy_erasing by the same
	 * transaction; any other DELETE is still refused.
	 */
	[4] =
	"CREATE TABLE audit ("
	" id INTEGER PRIMARY KEY,"
	" at INTEGER NOT NULL,"
	" actor TEXT NOT NULL,"
	" action TEXT NOT NULL,"
	" account TEXT NOT NULL DEFAULT '',"
	" subject_hash TEXT NOT NULL DEFAULT '',"
	" detail TEXT NOT NULL DEFAULT '');"
	"CREATE TABLE erasures ("
	" id INTEGER PRIMARY KEY,"
	" at INTEGER NOT NULL,"
	" actor TEXT NOT NULL,"
	" account TEXT NOT NULL DEFAULT '',"
	" subject_hash TEXT NOT NULL,"
	" detail TEXT NOT NULL DEFAULT '');"
	"CREATE TABLE erased_subjects ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL DEFAULT 0,"
	" hash TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" UNIQUE (hash, account_id));"
	"CREATE TABLE privacy_erasing (contact_id INTEGER PRIMARY KEY);"
	"DROP TRIGGER consent_records_no_delete;"
	"CREATE TRIGGER consent_records_no_delete BEFORE DELETE ON"
	" consent_records WHEN OLD.contact_id NOT IN"
	" (SELECT contact_id FROM privacy_erasing) BEGIN SELECT RAISE(ABORT,"
	" 'consent records are append-only'); END;",
	/*
	 * v5: integration.  API bearer tokens (store_api.c): only a SHA-256
	 * of the secret is kept, looked up by its public prefix.  Event
	 * delivery to plugins (store_evq.c): serve copies each new event row
	 * (after the consumer's cursor) into one delivery row per consumer;
	 * `stream` orders them ("d<dossier id>", else "a<account id>").  No
	 * foreign key on event_id: retention and erasure delete events, and
	 * a delivery whose event is gone is dropped.
	 */
	[5] =
	"CREATE TABLE api_tokens ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" name TEXT NOT NULL,"
	" prefix TEXT NOT NULL UNIQUE,"
	" hash TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" last_used INTEGER NOT NULL DEFAULT 0,"
	" revoked INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (account_id, name));"
	"CREATE TABLE event_cursors ("
	" consumer TEXT PRIMARY KEY,"
	" last_event INTEGER NOT NULL);"
	"CREATE TABLE event_deliveries ("
	" id INTEGER PRIMARY KEY,"
	" consumer TEXT NOT NULL,"
	" hook TEXT NOT NULL,"
	" event_id INTEGER NOT NULL,"
	" stream TEXT NOT NULL,"
	" state TEXT NOT NULL DEFAULT 'pending',"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt INTEGER NOT NULL,"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL,"
	" last_error TEXT NOT NULL DEFAULT '',"
	" UNIQUE (consumer, hook, event_id));"
	"CREATE INDEX event_deliveries_due ON event_deliveries"
	" (consumer, hook, state, stream, id);",
	/*
	 * Small raw messages (store.inline_max) live here instead of a blob
	 * file: written in the committer's transaction with the message's
	 * rows, they are durable by the batch's one WAL fsync.  Keyed like
	 * the blob store, by sha256, so messages with the same bytes share
	 * one row; a row no message names is deleted with the blob files.
	 * A rowid table, not WITHOUT ROWID: there a record is an index key,
	 * whose in-page payload is capped near 1000 octets, so a 2 KB
	 * message took a page and a half (overflow) instead of half a page.
	 */
	[6] =
	"CREATE TABLE raw_inline ("
	" sha256 TEXT NOT NULL UNIQUE,"
	" data BLOB NOT NULL);",
};

/* ---- small helpers ---- */

static int
store_fail(struct store *st, char *err, const char *what)
{
	pd_err(err, "%s: %s", what, sqlite3_errmsg(st->db));
	return -1;
}

/* Copy a text column into a fixed buffer, cut at a UTF-8 boundary. */
static void
store_col_copy(char *dst, size_t dstlen, sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	size_t n;

	if (t == NULL) {
		dst[0] = '\0';
		return;
	}
	n = (size_t)sqlite3_column_bytes(s, col);
	if (n >= dstlen) {
		n = dstlen - 1;
		while (n > 0 && (t[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, t, n);
	dst[n] = '\0';
}

#define COPY_COL(field, s, col) \
	store_col_copy((field), sizeof(field), (s), (col))

static int
store_bind_text(sqlite3_stmt *s, int idx, const char *v)
{
	if (v == NULL)
		return sqlite3_bind_null(s, idx);
	return sqlite3_bind_text(s, idx, v, -1, SQLITE_TRANSIENT);
}

/* Ids of 0 mean "none" to callers; in SQL that is NULL. */
static int
store_bind_id(sqlite3_stmt *s, int idx, int64_t id)
{
	if (id == 0)
		return sqlite3_bind_null(s, idx);
	return sqlite3_bind_int64(s, idx, id);
}

/* The cached statement for id, reset and with no bindings. */
static sqlite3_stmt *
store_stmt(struct store *st, enum store_stmt_id id, char *err)
{
	sqlite3_stmt *s = st->stmt[id];

	if (s == NULL) {
		if (sqlite3_prepare_v2(st->db, store_sql[id], -1, &s,
		    NULL) != SQLITE_OK) {
			store_fail(st, err, "prepare");
			return NULL;
		}
		st->stmt[id] = s;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Prepare a one-off statement (lists: callbacks may re-enter the store). */
static sqlite3_stmt *
store_stmt_once(struct store *st, const char *sql, char *err)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_fail(st, err, "prepare");
		return NULL;
	}
	return s;
}

/*
 * Step a statement that returns no rows (or whose rows we ignore) and
 * reset it, so no cached statement holds a WAL read snapshot open.
 */
static int
store_exec_stmt(struct store *st, sqlite3_stmt *s, char *err,
    const char *what)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		pd_err(err, "%s: %s", what, sqlite3_errmsg(st->db));
		sqlite3_reset(s);
		return -1;
	}
	sqlite3_reset(s);
	return 0;
}

/* Run a single-id lookup: 1 found (*id_r set), 0 not found, -1 error. */
static int
store_lookup_id(struct store *st, sqlite3_stmt *s, int64_t *id_r, char *err,
    const char *what)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW) {
		if (id_r != NULL)
			*id_r = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		return 1;
	}
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return 0;
	}
	pd_err(err, "%s: %s", what, sqlite3_errmsg(st->db));
	sqlite3_reset(s);
	return -1;
}

static int
store_exec(struct store *st, const char *sql, char *err, const char *what)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		pd_err(err, "%s: %s", what, msg != NULL ? msg :
		    sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static void
store_lower(char *dst, size_t dstlen, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < dstlen && src[i] != '\0'; i++) {
		char c = src[i];

		dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	dst[i] = '\0';
}

/* ---- connection and migrations ---- */

static int
store_pragma_int(struct store *st, const char *sql, int *v_r, char *err)
{
	sqlite3_stmt *s = store_stmt_once(st, sql, err);
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*v_r = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return store_fail(st, err, sql);
	return 0;
}

/* WAL lets readers (CLI, RCPT lookups) run while intake writes. */
static int
store_set_wal(struct store *st, char *err)
{
	sqlite3_stmt *s = store_stmt_once(st, "PRAGMA journal_mode=WAL", err);
	char mode[16] = "";
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		COPY_COL(mode, s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return store_fail(st, err, "PRAGMA journal_mode");
	if (strcmp(mode, "wal") != 0) {
		pd_err(err, "PRAGMA journal_mode: got \"%s\", need wal", mode);
		return -1;
	}
	return 0;
}

static int
store_configure(struct store *st, const char *sync_mode, char *err)
{
	const char *sync = "PRAGMA synchronous=FULL";

	/* NORMAL in WAL mode can lose the last commits on power loss, so it
	 * is only used when the operator asked for it explicitly. */
	if (sync_mode != NULL && strcmp(sync_mode, "normal") == 0)
		sync = "PRAGMA synchronous=NORMAL";
	sqlite3_extended_result_codes(st->db, 1);
	if (sqlite3_busy_timeout(st->db, 10000) != SQLITE_OK)
		return store_fail(st, err, "busy_timeout");
	if (store_exec(st, "PRAGMA busy_timeout=10000", err, "busy_timeout")
	    != 0 || store_set_wal(st, err) != 0 ||
	    store_exec(st, sync, err, "PRAGMA synchronous") != 0 ||
	    store_exec(st, "PRAGMA foreign_keys=ON", err,
	    "PRAGMA foreign_keys") != 0)
		return -1;
	return 0;
}

/* Apply migration v inside the caller's transaction. */
static int
store_migrate_one(struct store *st, int v, char *err)
{
	char sql[64], what[64];

	snprintf(what, sizeof(what), "migration %d", v);
	if (store_exec(st, store_migrations[v], err, what) != 0)
		return -1;
	/* The version is our own integer, not data: PRAGMA cannot bind. */
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	return store_exec(st, sql, err, what);
}

/*
 * Bring the schema up to STORE_SCHEMA_VERSION.  The version is re-read
 * after BEGIN IMMEDIATE so several connections opening at once (worker
 * threads at start) migrate exactly once: the others wait on the write
 * lock and then find nothing left to do.
 */
static int
store_migrate(struct store *st, char *err)
{
	int v;

	if (store_exec(st, "BEGIN IMMEDIATE", err, "migrations: begin") != 0)
		return -1;
	if (store_pragma_int(st, "PRAGMA user_version", &v, err) != 0)
		goto fail;
	if (v > STORE_SCHEMA_VERSION) {
		pd_err(err, "database schema version %d is newer than this "
		    "postdoc (%d)", v, STORE_SCHEMA_VERSION);
		goto fail;
	}
	for (v = v + 1; v <= STORE_SCHEMA_VERSION; v++)
		if (store_migrate_one(st, v, err) != 0)
			goto fail;
	if (store_exec(st, "COMMIT", err, "migrations: commit") != 0)
		goto fail;
	return 0;
fail:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int
store_make_parent(const char *db_path, char *err)
{
	char dir[4096];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", db_path) >= (int)sizeof(dir)) {
		pd_err(err, "database path too long");
		return -1;
	}
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (pd_mkdirs(dir, 0750) != 0) {
		pd_err(err, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int
store_open(const char *db_path, const char *sync_mode, struct store **st_r,
    char *err)
{
	struct store *st;
	int rc;

	*st_r = NULL;
	if (store_make_parent(db_path, err) != 0)
		return -1;
	st = xcalloc(1, sizeof(*st));
	/* One connection per thread: SQLite's own mutexes are not needed. */
	rc = sqlite3_open_v2(db_path, &st->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		pd_err(err, "%s: %s", db_path, st->db != NULL ?
		    sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		store_close(&st);
		return -1;
	}
	/* Before the WAL exists: SQLite gives -wal and -shm the database
	 * file's owner when it runs as root. */
	pd_own_path(db_path);
	if (store_configure(st, sync_mode, err) != 0 ||
	    store_migrate(st, err) != 0) {
		store_close(&st);
		return -1;
	}
	*st_r = st;
	return 0;
}

void
store_close(struct store **stp)
{
	struct store *st;
	int i;

	if (stp == NULL || *stp == NULL)
		return;
	st = *stp;
	for (i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	free(st);
	*stp = NULL;
}

int
store_schema_version(struct store *st)
{
	int v = -1;

	if (store_pragma_int(st, "PRAGMA user_version", &v, NULL) != 0)
		return -1;
	return v;
}

/* ---- transactions ---- */

int
store_begin(struct store *st, char *err)
{
	/* IMMEDIATE takes the write lock now, so a delivery never fails
	 * half-way with SQLITE_BUSY on its first write. */
	return store_exec(st, "BEGIN IMMEDIATE", err, "begin");
}

int
store_commit(struct store *st, char *err)
{
	return store_exec(st, "COMMIT", err, "commit");
}

void
store_rollback(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* One delivery inside a group commit's transaction: its rows stand or
 * fall together without taking the rest of the batch with them. */
int
store_delivery_begin(struct store *st, char *err)
{
	return store_exec(st, "SAVEPOINT delivery", err, "savepoint");
}

int
store_delivery_end(struct store *st, int ok, char *err)
{
	if (ok)
		return store_exec(st, "RELEASE delivery", err, "release");
	sqlite3_exec(st->db, "ROLLBACK TO delivery; RELEASE delivery",
	    NULL, NULL, NULL);
	return 0;
}

/*
 * Multi-statement operations (dossier create, close) run in a savepoint:
 * atomic on their own, and nested correctly inside a caller's BEGIN.
 */
static int
store_sp_begin(struct store *st, char *err)
{
	return store_exec(st, "SAVEPOINT store_op", err, "savepoint");
}

static int
store_sp_end(struct store *st, int ok, char *err)
{
	if (ok)
		return store_exec(st, "RELEASE store_op", err, "release");
	sqlite3_exec(st->db, "ROLLBACK TO store_op; RELEASE store_op",
	    NULL, NULL, NULL);
	return -1;
}

/* ---- accounts ---- */

int
store_account_add(struct store *st, const char *name,
    const char *sender_policy, int64_t *id_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_ACCOUNT_ADD, err);
	int rc;

	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, name) || store_bind_text(s, 2,
	    sender_policy != NULL ? sender_policy : "any") ||
	    sqlite3_bind_int64(s, 3, pd_now()))
		return store_fail(st, err, "account add: bind");
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		pd_err(err, "account \"%s\" already exists", name);
		return -1;
	}
	if (rc != SQLITE_DONE)
		return store_fail(st, err, "account add");
	if (id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(st->db);
	return 0;
}

static void
store_account_row(sqlite3_stmt *s, struct store_account *a)
{
	memset(a, 0, sizeof(*a));
	a->id = sqlite3_column_int64(s, 0);
	COPY_COL(a->name, s, 1);
	COPY_COL(a->sender_policy, s, 2);
	a->created = sqlite3_column_int64(s, 3);
}

int
store_account_get(struct store *st, const char *name,
    struct store_account *a_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_ACCOUNT_GET, err);
	int rc;

	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, name))
		return store_fail(st, err, "account get: bind");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		store_account_row(s, a_r);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, err, "account get");
}

int
store_account_list(struct store *st, store_account_cb cb, void *ctx,
    char *err)
{
	sqlite3_stmt *s = store_stmt_once(st, ACCOUNT_COLS "ORDER BY name",
	    err);
	struct store_account a;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_account_row(s, &a);
		if (cb(&a, ctx) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		store_fail(st, err, "account list");
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- dossiers ---- */

/* 128 random bits as 26 chars of RFC 4648 base32, lower case: "d-..." */
static int
store_gen_local(char *out, size_t outlen, char *err)
{
	static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char rnd[16];
	unsigned bits = 0, acc = 0;
	size_t i, o = 2;

	if (outlen < 29 || pd_random(rnd, sizeof(rnd)) != 0) {
		pd_err(err, "dossier create: no random bytes for an address");
		return -1;
	}
	out[0] = 'd';
	out[1] = '-';
	for (i = 0; i < sizeof(rnd); i++) {
		acc = (acc << 8) | rnd[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = b32[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return 0;
}

/* Find or create the contact row for (account, lower-cased email). */
static int
store_contact_id(struct store *st, int64_t account_id, const char *email,
    int64_t *id_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_CONTACT_ADD, err);
	int rc;

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, account_id) ||
	    store_bind_text(s, 2, email) || sqlite3_bind_int64(s, 3, pd_now()))
		return store_fail(st, err, "contact add: bind");
	if (store_exec_stmt(st, s, err, "contact add") != 0)
		return -1;
	if ((s = store_stmt(st, S_CONTACT_GET, err)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, account_id) || store_bind_text(s, 2, email))
		return store_fail(st, err, "contact get: bind");
	rc = store_lookup_id(st, s, id_r, err, "contact get");
	if (rc == 0)
		pd_err(err, "contact get: row vanished");
	return rc == 1 ? 0 : -1;
}

/* Turn a UNIQUE failure on dossiers into a message an operator can act on. */
static int
store_dossier_insert_error(struct store *st, int rc, const char *ref,
    const char *local, char *err)
{
	const char *msg = sqlite3_errmsg(st->db);

	if ((rc & 0xff) == SQLITE_CONSTRAINT &&
	    strstr(msg, "intake_local") != NULL)
		pd_err(err, "intake address \"%s\" is already in use", local);
	else if ((rc & 0xff) == SQLITE_CONSTRAINT &&
	    strstr(msg, "dossiers.ref") != NULL)
		pd_err(err, "dossier ref \"%s\" already exists in this account",
		    ref);
	else if ((rc & 0xff) == SQLITE_CONSTRAINT)
		pd_err(err, "dossier create: no such account (%s)", msg);
	else
		pd_err(err, "dossier create: %s", msg);
	return -1;
}

static int
store_dossier_insert(struct store *st, int64_t account_id, int64_t contact_id,
    const char *ref, const char *local, int64_t *id_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_DOSSIER_ADD, err);
	int rc;

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, account_id) ||
	    sqlite3_bind_int64(s, 2, contact_id) ||
	    store_bind_text(s, 3, ref) || store_bind_text(s, 4, local) ||
	    sqlite3_bind_int64(s, 5, pd_now()))
		return store_fail(st, err, "dossier create: bind");
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_dossier_insert_error(st, rc, ref, local, err);
	*id_r = sqlite3_last_insert_rowid(st->db);
	return 0;
}

static int
store_dossier_create_sp(struct store *st, int64_t account_id,
    const char *email, const char *ref, const char *local, int64_t *id_r,
    char *err)
{
	int64_t contact_id;
	char detail[1024];

	if (store_contact_id(st, account_id, email, &contact_id, err) != 0 ||
	    store_dossier_insert(st, account_id, contact_id, ref, local, id_r,
	    err) != 0)
		return -1;
	snprintf(detail, sizeof(detail), "ref %s, contact %s, address %s",
	    ref, email, local);
	return store_event_add(st, account_id, *id_r, "dossier.created",
	    detail, err);
}

int
store_dossier_create(struct store *st, int64_t account_id,
    const char *contact, const char *ref, const char *intake_local,
    int64_t *id_r, char *err)
{
	char email[256], local[80];
	int64_t id = 0;
	int rc;

	if (contact == NULL || ref == NULL || account_id <= 0) {
		pd_err(err, "dossier create: account, contact and ref needed");
		return -1;
	}
	/* Refuse rather than truncate: a cut address is a different one. */
	if (strlen(contact) >= sizeof(email) || (intake_local != NULL &&
	    strlen(intake_local) >= sizeof(local))) {
		pd_err(err, "dossier create: contact or address too long");
		return -1;
	}
	store_lower(email, sizeof(email), contact);
	if (intake_local != NULL)
		store_lower(local, sizeof(local), intake_local);
	else if (store_gen_local(local, sizeof(local), err) != 0)
		return -1;
	if (store_sp_begin(st, err) != 0)
		return -1;
	rc = store_dossier_create_sp(st, account_id, email, ref, local, &id,
	    err);
	if (store_sp_end(st, rc == 0, err) != 0)
		return -1;
	if (id_r != NULL)
		*id_r = id;
	return 0;
}

static void
store_dossier_row(sqlite3_stmt *s, struct store_dossier *d)
{
	memset(d, 0, sizeof(*d));
	d->id = sqlite3_column_int64(s, 0);
	d->account_id = sqlite3_column_int64(s, 1);
	COPY_COL(d->account, s, 2);
	COPY_COL(d->sender_policy, s, 3);
	COPY_COL(d->ref, s, 4);
	COPY_COL(d->contact, s, 5);
	COPY_COL(d->intake_local, s, 6);
	COPY_COL(d->status, s, 7);
	d->created = sqlite3_column_int64(s, 8);
	d->closed = sqlite3_column_int64(s, 9);
	COPY_COL(d->requested, s, 10);
	COPY_COL(d->due, s, 11);
}

/* Step a bound dossier query: 1 found, 0 not found, -1 error. */
static int
store_dossier_fetch(struct store *st, sqlite3_stmt *s,
    struct store_dossier *d_r, char *err)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		store_dossier_row(s, d_r);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, err, "dossier lookup");
}

int
store_dossier_get(struct store *st, int64_t account_id, int64_t id,
    struct store_dossier *d_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_DOSSIER_GET, err);

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, id) || sqlite3_bind_int64(s, 2, account_id))
		return store_fail(st, err, "dossier get: bind");
	return store_dossier_fetch(st, s, d_r, err);
}

int
store_dossier_by_ref(struct store *st, int64_t account_id, const char *ref,
    struct store_dossier *d_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_DOSSIER_BY_REF, err);

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, account_id) || store_bind_text(s, 2, ref))
		return store_fail(st, err, "dossier by ref: bind");
	return store_dossier_fetch(st, s, d_r, err);
}

int
store_dossier_by_local(struct store *st, const char *intake_local,
    struct store_dossier *d_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_DOSSIER_BY_LOCAL, err);
	char local[80];

	if (s == NULL)
		return -1;
	/* Addresses are stored lower-case; RCPT may arrive in any case. */
	if (strlen(intake_local) >= sizeof(local))
		return 0;
	store_lower(local, sizeof(local), intake_local);
	if (store_bind_text(s, 1, local))
		return store_fail(st, err, "dossier by local: bind");
	return store_dossier_fetch(st, s, d_r, err);
}

static int
store_dossier_close_sp(struct store *st, int64_t account_id, int64_t id,
    char *err)
{
	sqlite3_stmt *s;
	struct store_dossier d;
	int rc;

	/* 0 means "any" for reads only; a write must name its tenant. */
	if (account_id <= 0) {
		pd_err(err, "dossier close: no account given");
		return -1;
	}
	if ((s = store_stmt(st, S_DOSSIER_CLOSE, err)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, id) || sqlite3_bind_int64(s, 2,
	    account_id) || sqlite3_bind_int64(s, 3, pd_now()))
		return store_fail(st, err, "dossier close: bind");
	if (store_exec_stmt(st, s, err, "dossier close") != 0)
		return -1;
	if (sqlite3_changes(st->db) == 1)
		return store_event_add(st, account_id, id, "dossier.closed",
		    "", err);
	/* Nothing changed: closing twice is fine, a missing id is not. */
	rc = store_dossier_get(st, account_id, id, &d, err);
	if (rc == 0)
		pd_err(err, "dossier %lld not found", (long long)id);
	return rc == 1 ? 0 : -1;
}

int
store_dossier_close(struct store *st, int64_t account_id, int64_t id,
    char *err)
{
	int rc;

	if (store_sp_begin(st, err) != 0)
		return -1;
	rc = store_dossier_close_sp(st, account_id, id, err);
	return store_sp_end(st, rc == 0, err);
}

int
store_dossier_list(struct store *st, int64_t account_id, const char *status,
    store_dossier_cb cb, void *ctx, char *err)
{
	sqlite3_stmt *s = store_stmt_once(st, DOSSIER_COLS
	    "WHERE d.account_id = ?1 AND (?2 IS NULL OR d.status = ?2) "
	    "ORDER BY d.id", err);
	struct store_dossier d;
	int rc;

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, account_id) ||
	    store_bind_text(s, 2, status)) {
		sqlite3_finalize(s);
		return store_fail(st, err, "dossier list: bind");
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_dossier_row(s, &d);
		if (cb(&d, ctx) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		store_fail(st, err, "dossier list");
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- intake: messages, documents, events ---- */

static int
store_find_dup(struct store *st, enum store_stmt_id id, int64_t dossier_id,
    const char *sha256, int64_t *id_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, id, err);

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, dossier_id) ||
	    store_bind_text(s, 2, sha256))
		return store_fail(st, err, "find duplicate: bind");
	return store_lookup_id(st, s, id_r, err, "find duplicate");
}

int
store_message_find_dup(struct store *st, int64_t dossier_id,
    const char *sha256, int64_t *id_r, char *err)
{
	return store_find_dup(st, S_MESSAGE_DUP, dossier_id, sha256, id_r,
	    err);
}

/* ---- raw messages kept inline (schema 6) ---- */

int
store_raw_put(struct store *st, const char *sha256, const void *data,
    size_t len, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_RAW_PUT, err);

	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, sha256) ||
	    sqlite3_bind_blob64(s, 2, data, len, SQLITE_STATIC))
		return store_fail(st, err, "raw put: bind");
	return store_exec_stmt(st, s, err, "raw put");
}

int
store_raw_get(struct store *st, const char *sha256, void **data_r,
    size_t *len_r, char *err)
{
	sqlite3_stmt *s = store_stmt_once(st, "SELECT data FROM raw_inline"
	    " WHERE sha256 = ?1", err);
	int rc;

	*data_r = NULL;
	*len_r = 0;
	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, sha256) != 0) {
		sqlite3_finalize(s);
		return store_fail(st, err, "raw get: bind");
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*len_r = (size_t)sqlite3_column_bytes(s, 0);
		*data_r = xmalloc(*len_r + 1);	/* +1: never malloc(0) */
		if (*len_r > 0)
			memcpy(*data_r, sqlite3_column_blob(s, 0), *len_r);
	} else if (rc != SQLITE_DONE)
		store_fail(st, err, "raw get");
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
store_raw_delete(struct store *st, const char *sha256, char *err)
{
	sqlite3_stmt *s = store_stmt_once(st, "DELETE FROM raw_inline"
	    " WHERE sha256 = ?1", err);

	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, sha256) != 0) {
		sqlite3_finalize(s);
		return store_fail(st, err, "raw delete: bind");
	}
	return store_cx_exec(st, s, NULL, err, "raw delete");
}

/*
 * A document is a duplicate when an earlier message already brought the
 * same bytes into the dossier; parts of one message are all kept (m29:
 * four empty attachments are four documents).
 */
int
store_document_find_dup(struct store *st, int64_t dossier_id,
    int64_t message_id, const char *sha256, int64_t *id_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_DOCUMENT_DUP, err);

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, dossier_id) ||
	    store_bind_text(s, 2, sha256) ||
	    sqlite3_bind_int64(s, 3, message_id))
		return store_fail(st, err, "find duplicate: bind");
	return store_lookup_id(st, s, id_r, err, "find duplicate");
}

static int
store_message_bind(sqlite3_stmt *s, const struct store_message *m)
{
	return sqlite3_bind_int64(s, 1, m->account_id) ||
	    sqlite3_bind_int64(s, 2, m->dossier_id) ||
	    store_bind_text(s, 3, m->queue_id ? m->queue_id : "") ||
	    store_bind_text(s, 4, m->mail_from ? m->mail_from : "") ||
	    store_bind_text(s, 5, m->rcpt_to ? m->rcpt_to : "") ||
	    store_bind_text(s, 6, m->helo) ||
	    store_bind_text(s, 7, m->client_ip) ||
	    sqlite3_bind_int(s, 8, m->tls != 0) ||
	    sqlite3_bind_int(s, 9, m->lmtp != 0) ||
	    store_bind_text(s, 10, m->message_id) ||
	    store_bind_text(s, 11, m->subject) ||
	    store_bind_text(s, 12, m->from_header) ||
	    sqlite3_bind_int64(s, 13, (sqlite3_int64)m->size) ||
	    store_bind_text(s, 14, m->sha256) ||
	    store_bind_text(s, 15, m->parse_status ? m->parse_status : "ok") ||
	    store_bind_text(s, 16, m->anomalies ? m->anomalies : "") ||
	    sqlite3_bind_int64(s, 17, m->received ? m->received : pd_now());
}

int
store_message_add(struct store *st, const struct store_message *m,
    int64_t *id_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_MESSAGE_ADD, err);

	if (s == NULL)
		return -1;
	if (store_message_bind(s, m) != 0)
		return store_fail(st, err, "message add: bind");
	if (store_exec_stmt(st, s, err, "message add") != 0)
		return -1;
	if (id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(st->db);
	return 0;
}

static int
store_document_bind(sqlite3_stmt *s, const struct store_document *d)
{
	return sqlite3_bind_int64(s, 1, d->account_id) ||
	    sqlite3_bind_int64(s, 2, d->dossier_id) ||
	    store_bind_id(s, 3, d->message_id) ||
	    store_bind_text(s, 4, d->filename ? d->filename : "") ||
	    store_bind_text(s, 5, d->stored_name ? d->stored_name : "") ||
	    store_bind_text(s, 6, d->declared_type) ||
	    store_bind_text(s, 7, d->sniffed_type) ||
	    sqlite3_bind_int64(s, 8, (sqlite3_int64)d->size) ||
	    store_bind_text(s, 9, d->sha256) ||
	    store_bind_text(s, 10, d->part_path) ||
	    sqlite3_bind_int64(s, 11, pd_now());
}

int
store_document_add(struct store *st, const struct store_document *d,
    int64_t *id_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_DOCUMENT_ADD, err);

	if (s == NULL)
		return -1;
	if (store_document_bind(s, d) != 0)
		return store_fail(st, err, "document add: bind");
	if (store_exec_stmt(st, s, err, "document add") != 0)
		return -1;
	if (id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int
store_event_add(struct store *st, int64_t account_id, int64_t dossier_id,
    const char *kind, const char *detail, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_EVENT_ADD, err);

	if (s == NULL)
		return -1;
	if (store_bind_id(s, 1, account_id) || store_bind_id(s, 2, dossier_id)
	    || sqlite3_bind_int64(s, 3, pd_now()) ||
	    store_bind_text(s, 4, kind) ||
	    store_bind_text(s, 5, detail ? detail : ""))
		return store_fail(st, err, "event add: bind");
	return store_exec_stmt(st, s, err, "event add");
}

/* ---- reading back ---- */

static void
store_doc_row(sqlite3_stmt *s, struct store_doc_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(s, 0);
	r->dossier_id = sqlite3_column_int64(s, 1);
	r->message_id = sqlite3_column_int64(s, 2);
	COPY_COL(r->filename, s, 3);
	COPY_COL(r->stored_name, s, 4);
	COPY_COL(r->declared_type, s, 5);
	COPY_COL(r->sniffed_type, s, 6);
	r->size = (uint64_t)sqlite3_column_int64(s, 7);
	COPY_COL(r->sha256, s, 8);
	r->received = sqlite3_column_int64(s, 9);
}

static void
store_msg_row(sqlite3_stmt *s, struct store_msg_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(s, 0);
	COPY_COL(r->queue_id, s, 1);
	COPY_COL(r->mail_from, s, 2);
	COPY_COL(r->rcpt_to, s, 3);
	COPY_COL(r->client_ip, s, 4);
	COPY_COL(r->helo, s, 5);
	r->tls = sqlite3_column_int(s, 6);
	r->lmtp = sqlite3_column_int(s, 7);
	COPY_COL(r->message_id, s, 8);
	COPY_COL(r->subject, s, 9);
	r->size = (uint64_t)sqlite3_column_int64(s, 10);
	COPY_COL(r->sha256, s, 11);
	COPY_COL(r->parse_status, s, 12);
	COPY_COL(r->anomalies, s, 13);
	r->received = sqlite3_column_int64(s, 14);
}

static void
store_event_row(sqlite3_stmt *s, struct store_event_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(s, 0);
	r->at = sqlite3_column_int64(s, 1);
	COPY_COL(r->kind, s, 2);
	COPY_COL(r->detail, s, 3);
}

/* The three per-dossier lists differ only in SQL and row type. */
enum store_list_kind { L_DOC, L_MSG, L_EVENT };

static int
store_list_emit(sqlite3_stmt *s, enum store_list_kind k, void *cb,
    void *ctx)
{
	struct store_doc_row dr;
	struct store_msg_row mr;
	struct store_event_row er;

	switch (k) {
	case L_DOC:
		store_doc_row(s, &dr);
		return ((store_doc_cb)cb)(&dr, ctx);
	case L_MSG:
		store_msg_row(s, &mr);
		return ((store_msg_cb)cb)(&mr, ctx);
	case L_EVENT:
		store_event_row(s, &er);
		return ((store_event_cb)cb)(&er, ctx);
	}
	pd_fatal("store_list_emit: bad kind %d", (int)k);
}

static int
store_list(struct store *st, enum store_list_kind k, int64_t account_id,
    int64_t dossier_id, void *cb, void *ctx, char *err)
{
	static const char *const sql[] = {
		[L_DOC] = DOC_COLS "WHERE d.dossier_id = ?1 AND "
		    "d.account_id = ?2 ORDER BY d.id",
		[L_MSG] = MSG_COLS "WHERE dossier_id = ?1 AND account_id = ?2 "
		    "ORDER BY id",
		[L_EVENT] = "SELECT id, at, kind, detail FROM events "
		    "WHERE dossier_id = ?1 AND account_id = ?2 ORDER BY at, id",
	};
	sqlite3_stmt *s = store_stmt_once(st, sql[k], err);
	int rc;

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, dossier_id) ||
	    sqlite3_bind_int64(s, 2, account_id)) {
		sqlite3_finalize(s);
		return store_fail(st, err, "list: bind");
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (store_list_emit(s, k, cb, ctx) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	if (rc != SQLITE_DONE)
		store_fail(st, err, "list");
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_document_list(struct store *st, int64_t account_id, int64_t dossier_id,
    store_doc_cb cb, void *ctx, char *err)
{
	return store_list(st, L_DOC, account_id, dossier_id, (void *)cb, ctx,
	    err);
}

int
store_message_list(struct store *st, int64_t account_id, int64_t dossier_id,
    store_msg_cb cb, void *ctx, char *err)
{
	return store_list(st, L_MSG, account_id, dossier_id, (void *)cb, ctx,
	    err);
}

int
store_event_list(struct store *st, int64_t account_id, int64_t dossier_id,
    store_event_cb cb, void *ctx, char *err)
{
	return store_list(st, L_EVENT, account_id, dossier_id, (void *)cb, ctx,
	    err);
}

int
store_document_get(struct store *st, int64_t account_id, int64_t id,
    struct store_doc_row *r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_DOCUMENT_GET, err);
	int rc;

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, id) || sqlite3_bind_int64(s, 2, account_id))
		return store_fail(st, err, "document get: bind");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		store_doc_row(s, r);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, err, "document get");
}

int
store_message_get(struct store *st, int64_t account_id, int64_t id,
    struct store_msg_row *r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_MESSAGE_GET, err);
	int rc;

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, id) || sqlite3_bind_int64(s, 2, account_id))
		return store_fail(st, err, "message get: bind");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		store_msg_row(s, r);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, err, "message get");
}

/* ---- schema v2: document requests ---- */

/* "YYYY-MM-DD" shape only; the calendar is the caller's business. */
static int
store_date_valid(const char *d)
{
	static const char shape[] = "dddd-dd-dd";
	size_t i;

	if (d[0] == '\0')
		return 1;
	for (i = 0; shape[i] != '\0'; i++)
		if (shape[i] == 'd' ? !(d[i] >= '0' && d[i] <= '9') :
		    d[i] != '-')
			return 0;
	return d[i] == '\0';
}

int
store_dossier_set_request(struct store *st, int64_t account_id,
    int64_t dossier_id, const char *requested_json, const char *due,
    char *err)
{
	sqlite3_stmt *s;
	const char *req = requested_json != NULL ? requested_json : "";

	if (due == NULL)
		due = "";
	/* Refuse rather than truncate: store_dossier holds 2048 bytes. */
	if (strlen(req) >= sizeof(((struct store_dossier *)0)->requested) ||
	    (req[0] != '\0' && req[0] != '[') || !store_date_valid(due)) {
		pd_err(err, "dossier request: need a JSON array shorter than "
		    "2048 bytes and a YYYY-MM-DD date");
		return -1;
	}
	if (account_id <= 0) {
		pd_err(err, "dossier request: no account given");
		return -1;
	}
	if ((s = store_stmt(st, S_DOSSIER_SET_REQUEST, err)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, dossier_id) ||
	    sqlite3_bind_int64(s, 2, account_id) ||
	    store_bind_text(s, 3, req) || store_bind_text(s, 4, due))
		return store_fail(st, err, "dossier request: bind");
	if (store_exec_stmt(st, s, err, "dossier request") != 0)
		return -1;
	if (sqlite3_changes(st->db) != 1) {
		pd_err(err, "dossier %lld not found", (long long)dossier_id);
		return -1;
	}
	return 0;
}

/* Step a statement whose single row holds up to three integers. */
static int
store_ints(struct store *st, sqlite3_stmt *s, int64_t *a, int64_t *b,
    int64_t *c, char *err, const char *what)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW) {
		if (a != NULL)
			*a = sqlite3_column_int64(s, 0);
		if (b != NULL)
			*b = sqlite3_column_int64(s, 1);
		if (c != NULL)
			*c = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return store_fail(st, err, what);
	return 0;
}

int
store_document_count_since(struct store *st, int64_t dossier_id,
    int64_t since, int64_t *n_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_DOCUMENT_COUNT_SINCE, err);

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, dossier_id) ||
	    sqlite3_bind_int64(s, 2, since))
		return store_fail(st, err, "document count: bind");
	return store_ints(st, s, n_r, NULL, NULL, err, "document count");
}

/* ---- schema v2: outbound queue ---- */

static void
store_outbound_row(sqlite3_stmt *s, struct store_outbound *o)
{
	memset(o, 0, sizeof(*o));
	o->id = sqlite3_column_int64(s, 0);
	o->account_id = sqlite3_column_int64(s, 1);
	o->dossier_id = sqlite3_column_int64(s, 2);
	COPY_COL(o->account, s, 3);
	COPY_COL(o->kind, s, 4);
	COPY_COL(o->rcpt, s, 5);
	COPY_COL(o->rcpt_domain, s, 6);
	COPY_COL(o->mail_from, s, 7);
	COPY_COL(o->verp_token, s, 8);
	COPY_COL(o->message_id, s, 9);
	COPY_COL(o->from_domain, s, 10);
	COPY_COL(o->sha256, s, 11);
	o->size = (uint64_t)sqlite3_column_int64(s, 12);
	COPY_COL(o->state, s, 13);
	o->attempts = sqlite3_column_int(s, 14);
	o->next_attempt = sqlite3_column_int64(s, 15);
	o->created = sqlite3_column_int64(s, 16);
	o->updated = sqlite3_column_int64(s, 17);
	o->last_code = sqlite3_column_int(s, 18);
	COPY_COL(o->last_enhanced, s, 19);
	COPY_COL(o->last_text, s, 20);
}

/* Queue rows name a blob: accept only what blob.c would accept. */
static int
store_sha_valid(const char *sha)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((sha[i] >= '0' && sha[i] <= '9') ||
		    (sha[i] >= 'a' && sha[i] <= 'f')))
			return 0;
	return sha[64] == '\0';
}

static int
store_outbound_bind(sqlite3_stmt *s, const struct store_outbound *o,
    int64_t now)
{
	return sqlite3_bind_int64(s, 1, o->account_id) ||
	    store_bind_id(s, 2, o->dossier_id) ||
	    store_bind_text(s, 3, o->kind) ||
	    store_bind_text(s, 4, o->rcpt) ||
	    store_bind_text(s, 5, o->rcpt_domain) ||
	    store_bind_text(s, 6, o->mail_from) ||
	    store_bind_text(s, 7, o->verp_token) ||
	    store_bind_text(s, 8, o->message_id) ||
	    store_bind_text(s, 9, o->from_domain) ||
	    store_bind_text(s, 10, o->sha256) ||
	    sqlite3_bind_int64(s, 11, (sqlite3_int64)o->size) ||
	    store_bind_text(s, 12, o->state[0] != '\0' ? o->state : "queued") ||
	    sqlite3_bind_int64(s, 13, o->next_attempt) ||
	    sqlite3_bind_int64(s, 14, o->created != 0 ? o->created : now);
}

int
store_outbound_add(struct store *st, const struct store_outbound *o,
    int64_t *id_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_OUTBOUND_ADD, err);
	int rc;

	if (s == NULL)
		return -1;
	if (o->account_id <= 0 || !store_sha_valid(o->sha256) ||
	    o->verp_token[0] == '\0') {
		pd_err(err, "outbound add: account, sha256 and token needed");
		return -1;
	}
	if (store_outbound_bind(s, o, pd_now()) != 0)
		return store_fail(st, err, "outbound add: bind");
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, err, "outbound add");
	if (id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(st->db);
	return 0;
}

/* Step a bound outbound query: 1 found, 0 not found, -1 error. */
static int
store_outbound_fetch(struct store *st, sqlite3_stmt *s,
    struct store_outbound *o_r, char *err)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		store_outbound_row(s, o_r);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, err, "outbound lookup");
}

int
store_outbound_get(struct store *st, int64_t account_id, int64_t id,
    struct store_outbound *o_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_OUTBOUND_GET, err);

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, id) || sqlite3_bind_int64(s, 2, account_id))
		return store_fail(st, err, "outbound get: bind");
	return store_outbound_fetch(st, s, o_r, err);
}

int
store_outbound_by_verp(struct store *st, const char *token,
    struct store_outbound *o_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_OUTBOUND_BY_VERP, err);
	char tok[64];

	if (s == NULL)
		return -1;
	/* Tokens are generated lower-case; a bounce may come back in any. */
	if (token == NULL || strlen(token) >= sizeof(tok))
		return 0;
	store_lower(tok, sizeof(tok), token);
	if (store_bind_text(s, 1, tok))
		return store_fail(st, err, "outbound by verp: bind");
	return store_outbound_fetch(st, s, o_r, err);
}

/* Read the due rows (inside the claim's transaction) into rows[]. */
static int
store_outbound_due(struct store *st, int64_t now, int max,
    struct store_outbound *rows, int *n_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_OUTBOUND_DUE, err);
	int rc = SQLITE_DONE, n = 0;

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, now) || sqlite3_bind_int(s, 2, max))
		return store_fail(st, err, "outbound claim: bind");
	while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW)
		store_outbound_row(s, &rows[n++]);
	if (n < max && rc != SQLITE_DONE) {
		sqlite3_reset(s);
		return store_fail(st, err, "outbound claim");
	}
	sqlite3_reset(s);
	*n_r = n;
	return 0;
}

static int
store_outbound_take(struct store *st, struct store_outbound *o, int64_t now,
    char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_OUTBOUND_TAKE, err);

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, o->id) || sqlite3_bind_int64(s, 2, now))
		return store_fail(st, err, "outbound claim: bind");
	if (store_exec_stmt(st, s, err, "outbound claim") != 0)
		return -1;
	/* The write lock is ours since BEGIN IMMEDIATE: nobody else can
	 * have taken the row between our SELECT and this UPDATE. */
	if (sqlite3_changes(st->db) != 1)
		pd_fatal("outbound claim: row %lld changed under the write lock",
		    (long long)o->id);
	snprintf(o->state, sizeof(o->state), "sending");
	o->attempts++;
	o->updated = now;
	return 0;
}

/*
 * BEGIN IMMEDIATE makes select-then-update one step against every other
 * connection, in this process or another (`queue run` beside `serve`):
 * a row is handed to exactly one claimer.  The callbacks run after the
 * commit so they may write to the store themselves.
 */
#define STORE_CLAIM_MAX 1024

int
store_outbound_claim(struct store *st, int64_t now, int max,
    store_outbound_cb cb, void *ctx, char *err)
{
	struct store_outbound *rows;
	int i, n = 0;

	if (max <= 0)
		return 0;
	if (max > STORE_CLAIM_MAX)
		max = STORE_CLAIM_MAX;
	rows = xcalloc((size_t)max, sizeof(*rows));
	if (store_begin(st, err) != 0)
		goto fail;
	if (store_outbound_due(st, now, max, rows, &n, err) != 0)
		goto rollback;
	for (i = 0; i < n; i++)
		if (store_outbound_take(st, &rows[i], now, err) != 0)
			goto rollback;
	if (store_commit(st, err) != 0)
		goto rollback;
	for (i = 0; i < n; i++)
		if (cb(&rows[i], ctx) != 0)
			break;
	free(rows);
	return 0;
rollback:
	store_rollback(st);
fail:
	free(rows);
	return -1;
}

int
store_outbound_update(struct store *st, int64_t id, const char *state,
    int code, const char *enhanced, const char *text, int64_t next_attempt,
    char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_OUTBOUND_UPDATE, err);
	char clean[256];

	if (s == NULL)
		return -1;
	/* Relay text is peer data: keep it printable and bounded. */
	pd_ascii_clean(clean, sizeof(clean), text != NULL ? text : "");
	if (sqlite3_bind_int64(s, 1, id) || store_bind_text(s, 2, state) ||
	    sqlite3_bind_int(s, 3, code) ||
	    store_bind_text(s, 4, enhanced != NULL ? enhanced : "") ||
	    store_bind_text(s, 5, clean) ||
	    sqlite3_bind_int64(s, 6, next_attempt) ||
	    sqlite3_bind_int64(s, 7, pd_now()))
		return store_fail(st, err, "outbound update: bind");
	if (store_exec_stmt(st, s, err, "outbound update") != 0)
		return -1;
	if (sqlite3_changes(st->db) != 1) {
		pd_err(err, "outbound %lld not found", (long long)id);
		return -1;
	}
	return 0;
}

int
store_outbound_recover(struct store *st, int64_t now, int *n_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_OUTBOUND_RECOVER, err);

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, now))
		return store_fail(st, err, "outbound recover: bind");
	if (store_exec_stmt(st, s, err, "outbound recover") != 0)
		return -1;
	if (n_r != NULL)
		*n_r = sqlite3_changes(st->db);
	return 0;
}

int
store_outbound_list(struct store *st, int64_t account_id, int64_t dossier_id,
    const char *state, store_outbound_cb cb, void *ctx, char *err)
{
	sqlite3_stmt *s = store_stmt_once(st, OUTBOUND_COLS
	    "WHERE (?1 = 0 OR o.account_id = ?1) AND"
	    " (?2 = 0 OR o.dossier_id = ?2) AND (?3 IS NULL OR o.state = ?3)"
	    " ORDER BY o.id", err);
	struct store_outbound o;
	int rc;

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, account_id) ||
	    sqlite3_bind_int64(s, 2, dossier_id) ||
	    store_bind_text(s, 3, state)) {
		sqlite3_finalize(s);
		return store_fail(st, err, "outbound list: bind");
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_outbound_row(s, &o);
		if (cb(&o, ctx) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		store_fail(st, err, "outbound list");
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_outbound_count(struct store *st, int64_t dossier_id, const char *kind,
    int64_t *n_r, int64_t *first_r, int64_t *last_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_OUTBOUND_COUNT, err);

	if (s == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, dossier_id) || store_bind_text(s, 2, kind))
		return store_fail(st, err, "outbound count: bind");
	return store_ints(st, s, n_r, first_r, last_r, err, "outbound count");
}

/* ---- schema v2: suppressions ---- */

int
store_suppression_add(struct store *st, int64_t account_id,
    const char *email, const char *reason, int64_t expires, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_SUPPRESSION_ADD, err);
	char addr[320], clean[256];

	if (s == NULL)
		return -1;
	if (account_id <= 0 || email == NULL || strlen(email) >= sizeof(addr)) {
		pd_err(err, "suppression add: account and address needed");
		return -1;
	}
	store_lower(addr, sizeof(addr), email);
	pd_ascii_clean(clean, sizeof(clean), reason != NULL ? reason : "");
	if (sqlite3_bind_int64(s, 1, account_id) ||
	    store_bind_text(s, 2, addr) || store_bind_text(s, 3, clean) ||
	    sqlite3_bind_int64(s, 4, pd_now()) ||
	    sqlite3_bind_int64(s, 5, expires))
		return store_fail(st, err, "suppression add: bind");
	return store_exec_stmt(st, s, err, "suppression add");
}

int
store_suppression_get(struct store *st, int64_t account_id,
    const char *email, int64_t now, char *reason_r, size_t reason_len,
    int64_t *expires_r, char *err)
{
	sqlite3_stmt *s = store_stmt(st, S_SUPPRESSION_GET, err);
	char addr[320];
	int rc;

	if (s == NULL)
		return -1;
	if (email == NULL || strlen(email) >= sizeof(addr))
		return 0;
	store_lower(addr, sizeof(addr), email);
	if (sqlite3_bind_int64(s, 1, account_id) ||
	    store_bind_text(s, 2, addr) || sqlite3_bind_int64(s, 3, now))
		return store_fail(st, err, "suppression get: bind");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (reason_r != NULL && reason_len > 0)
			store_col_copy(reason_r, reason_len, s, 0);
		if (expires_r != NULL)
			*expires_r = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, err, "suppression get");
}

int
store_suppressed(struct store *st, int64_t account_id, const char *email,
    int64_t now, char *err)
{
	return store_suppression_get(st, account_id, email, now, NULL, 0, NULL,
	    err);
}

/* ---- schema v3: consent ledger, campaigns ---- */

/*
 * Bind by a format: 'i' int64, 'I' id (0 = NULL), 't' text.  These
 * statements are one-offs (prepared per call): the ledger's rate is that
 * of people clicking, and campaigns prepare a handful per recipient.
 */
static sqlite3_stmt *
store_cx(struct store *st, const char *sql, char *err, const char *fmt, ...)
{
	sqlite3_stmt *s = store_stmt_once(st, sql, err);
	va_list ap;
	int i, rc = 0;

	if (s == NULL)
		return NULL;
	va_start(ap, fmt);
	for (i = 0; fmt[i] != '\0' && rc == 0; i++) {
		if (fmt[i] == 'i')
			rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
		else if (fmt[i] == 'I')
			rc = store_bind_id(s, i + 1, va_arg(ap, int64_t));
		else
			rc = store_bind_text(s, i + 1, va_arg(ap, const char *));
	}
	va_end(ap);
	if (rc != 0) {
		store_fail(st, err, "bind");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

sqlite3_stmt *
store_cx_prep(struct store *st, const char *sql, char *err, const char *fmt,
    ...)
{
	sqlite3_stmt *s = NULL;
	va_list ap;
	int i, n, rc = SQLITE_OK;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_fail(st, err, "prepare");
		return NULL;
	}
	n = sqlite3_bind_parameter_count(s);
	va_start(ap, fmt);
	for (i = 0; fmt[i] != '\0' && rc == SQLITE_OK; i++) {
		if (fmt[i] == 'i') {
			int64_t v = va_arg(ap, int64_t);

			if (i < n)
				rc = sqlite3_bind_int64(s, i + 1, v);
		} else {
			const char *v = va_arg(ap, const char *);

			if (i < n)
				rc = v == NULL ? sqlite3_bind_null(s, i + 1) :
				    sqlite3_bind_text(s, i + 1, v, -1,
				    SQLITE_TRANSIENT);
		}
	}
	va_end(ap);
	if (rc != SQLITE_OK) {
		store_fail(st, err, "bind");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

/* Run to completion; 0 or -1.  changes_r: rows changed. */
int
store_cx_exec(struct store *st, sqlite3_stmt *s, int *changes_r, char *err,
    const char *what)
{
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, err, what);
	if (changes_r != NULL)
		*changes_r = sqlite3_changes(st->db);
	return 0;
}

/* First column of the first row as an int64: 1 found, 0 none, -1. */
int
store_cx_int(struct store *st, sqlite3_stmt *s, int64_t *v_r, char *err,
    const char *what)
{
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && v_r != NULL)
		*v_r = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, err, what);
}

int
store_purpose_add(struct store *st, int64_t account_id, const char *name,
    int64_t *id_r, char *err)
{
	sqlite3_stmt *s = store_cx(st, "INSERT INTO purposes (account_id,"
	    " name, created) VALUES (?1, ?2, ?3)", err, "iti", account_id,
	    name, pd_now());
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		pd_err(err, "purpose \"%s\" already exists", name);
		return -1;
	}
	if (rc != SQLITE_DONE)
		return store_fail(st, err, "purpose add");
	if (id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int
store_purpose_get(struct store *st, int64_t account_id, const char *name,
    int64_t *id_r, char *err)
{
	return store_cx_int(st, store_cx(st, "SELECT id FROM purposes"
	    " WHERE account_id = ?1 AND name = ?2", err, "it", account_id,
	    name), id_r, err, "purpose get");
}

int
store_purpose_name(struct store *st, int64_t account_id, int64_t id,
    char *name_r, size_t len, char *err)
{
	sqlite3_stmt *s = store_cx(st, "SELECT name FROM purposes"
	    " WHERE id = ?1 AND account_id = ?2", err, "ii", id, account_id);
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		store_col_copy(name_r, len, s, 0);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : store_fail(st, err, "purpose name");
}

int
store_purpose_list(struct store *st, int64_t account_id, store_purpose_cb cb,
    void *ctx, char *err)
{
	sqlite3_stmt *s = store_cx(st, "SELECT id, name FROM purposes"
	    " WHERE account_id = ?1 ORDER BY name", err, "i", account_id);
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (cb(sqlite3_column_int64(s, 0),
		    (const char *)sqlite3_column_text(s, 1), ctx) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : store_fail(st, err, "purpose list");
}

#define CONTACT_COLS \
	"SELECT c.id, c.account_id, a.name, c.email, c.adult," \
	" COALESCE(c.adult_at, 0), c.adult_by FROM contacts c" \
	" JOIN accounts a ON a.id = c.account_id "

static void
store_contact_row(sqlite3_stmt *s, struct store_contact *c)
{
	memset(c, 0, sizeof(*c));
	c->id = sqlite3_column_int64(s, 0);
	c->account_id = sqlite3_column_int64(s, 1);
	COPY_COL(c->account, s, 2);
	COPY_COL(c->email, s, 3);
	COPY_COL(c->adult, s, 4);
	c->adult_at = sqlite3_column_int64(s, 5);
	COPY_COL(c->adult_by, s, 6);
}

static int
store_contact_fetch(struct store *st, sqlite3_stmt *s,
    struct store_contact *c_r, char *err)
{
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		store_contact_row(s, c_r);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : store_fail(st, err, "contact get");
}

int
store_contact_ensure(struct store *st, int64_t account_id, const char *email,
    int64_t *id_r, char *err)
{
	if (store_cx_exec(st, store_cx(st, "INSERT OR IGNORE INTO contacts"
	    " (account_id, email, created) VALUES (?1, ?2, ?3)", err, "iti",
	    account_id, email, pd_now()), NULL, err, "contact add") != 0)
		return -1;
	if (store_cx_int(st, store_cx(st, "SELECT id FROM contacts WHERE"
	    " account_id = ?1 AND email = ?2", err, "it", account_id, email),
	    id_r, err, "contact get") != 1) {
		if (err != NULL && err[0] == '\0')
			pd_err(err, "contact %s vanished", email);
		return -1;
	}
	return 0;
}

int
store_contact_find(struct store *st, int64_t account_id, const char *email,
    struct store_contact *c_r, char *err)
{
	return store_contact_fetch(st, store_cx(st, CONTACT_COLS
	    "WHERE c.account_id = ?1 AND c.email = ?2", err, "it", account_id,
	    email), c_r, err);
}

int
store_contact_by_id(struct store *st, int64_t id, struct store_contact *c_r,
    char *err)
{
	return store_contact_fetch(st, store_cx(st, CONTACT_COLS
	    "WHERE c.id = ?1", err, "i", id), c_r, err);
}

int
store_contact_attest(struct store *st, int64_t account_id, int64_t contact_id,
    const char *adult, const char *by, char *err)
{
	char clean[64];

	pd_ascii_clean(clean, sizeof(clean), by != NULL ? by : "");
	return store_cx_exec(st, store_cx(st, "UPDATE contacts SET adult = ?3,"
	    " adult_at = ?4, adult_by = ?5 WHERE id = ?1 AND account_id = ?2",
	    err, "iitit", contact_id, account_id, adult, pd_now(), clean),
	    NULL, err, "contact attest");
}

int
store_contact_list(struct store *st, int64_t account_id, store_contact_cb cb,
    void *ctx, char *err)
{
	sqlite3_stmt *s = store_cx(st, CONTACT_COLS "WHERE c.account_id = ?1"
	    " ORDER BY c.id", err, "i", account_id);
	struct store_contact c;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_contact_row(s, &c);
		if (cb(&c, ctx) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : store_fail(st, err, "contact list");
}

#define STORE_BOUNCED_SQL \
	"EXISTS (SELECT 1 FROM outbound o WHERE o.account_id = ?1" \
	" AND o.rcpt = ?2 COLLATE NOCASE AND o.state = 'bounced')"

int
store_contact_bounced(struct store *st, int64_t account_id, const char *email,
    char *err)
{
	int64_t v = 0;

	if (store_cx_int(st, store_cx(st, "SELECT " STORE_BOUNCED_SQL, err,
	    "it", account_id, email), &v, err, "bounced") < 0)
		return -1;
	return v != 0;
}

int
store_consent_text_put(struct store *st, int64_t account_id,
    const char *sha256, const char *body, int64_t *id_r, char *err)
{
	if (!store_sha_valid(sha256)) {
		pd_err(err, "consent text: bad sha256");
		return -1;
	}
	if (store_cx_exec(st, store_cx(st, "INSERT OR IGNORE INTO"
	    " consent_texts (account_id, sha256, body, created) VALUES"
	    " (?1, ?2, ?3, ?4)", err, "itti", account_id, sha256, body,
	    pd_now()), NULL, err, "consent text add") != 0)
		return -1;
	return store_cx_int(st, store_cx(st, "SELECT id FROM consent_texts"
	    " WHERE account_id = ?1 AND sha256 = ?2", err, "it", account_id,
	    sha256), id_r, err, "consent text get") == 1 ? 0 : -1;
}

int
store_consent_add(struct store *st, int64_t account_id,
    const struct store_consent_rec *r, int64_t *id_r, char *err)
{
	char method[64], ip[64], ua[256], op[64];

	pd_ascii_clean(method, sizeof(method), r->method);
	pd_ascii_clean(ip, sizeof(ip), r->ip);
	pd_ascii_clean(ua, sizeof(ua), r->user_agent);
	pd_ascii_clean(op, sizeof(op), r->operator_);
	if (store_cx_exec(st, store_cx(st, "INSERT INTO consent_records"
	    " (account_id, contact_id, purpose_id, action, basis, source,"
	    " method, at, ip, user_agent, operator, text_id) VALUES (?1, ?2,"
	    " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", err, "iiittttittt"
	    "I", account_id, r->contact_id, r->purpose_id, r->action, r->basis,
	    r->source, method, r->at != 0 ? r->at : pd_now(), ip, ua, op,
	    r->text_id), NULL, err, "consent add") != 0)
		return -1;
	if (id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int
store_consent_latest(struct store *st, int64_t contact_id, int64_t purpose_id,
    char *action_r, size_t len, char *err)
{
	sqlite3_stmt *s = store_cx(st, "SELECT action FROM consent_records"
	    " WHERE contact_id = ?1 AND purpose_id = ?2 ORDER BY id DESC"
	    " LIMIT 1", err, "ii", contact_id, purpose_id);
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		store_col_copy(action_r, len, s, 0);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : store_fail(st, err, "consent latest");
}

int
store_consent_list(struct store *st, int64_t account_id, int64_t contact_id,
    store_consent_cb cb, void *ctx, char *err)
{
	sqlite3_stmt *s = store_cx(st, "SELECT r.id, r.contact_id,"
	    " r.purpose_id, p.name, r.action, r.basis, r.source, r.method,"
	    " r.at, r.ip, r.user_agent, r.operator, COALESCE(r.text_id, 0),"
	    " COALESCE(t.sha256, ''), t.body FROM consent_records r"
	    " JOIN purposes p ON p.id = r.purpose_id"
	    " LEFT JOIN consent_texts t ON t.id = r.text_id"
	    " WHERE r.account_id = ?1 AND r.contact_id = ?2 ORDER BY r.id",
	    err, "ii", account_id, contact_id);
	struct store_consent_rec r;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&r, 0, sizeof(r));
		r.id = sqlite3_column_int64(s, 0);
		r.contact_id = sqlite3_column_int64(s, 1);
		r.purpose_id = sqlite3_column_int64(s, 2);
		COPY_COL(r.purpose, s, 3);
		COPY_COL(r.action, s, 4);
		COPY_COL(r.basis, s, 5);
		COPY_COL(r.source, s, 6);
		COPY_COL(r.method, s, 7);
		r.at = sqlite3_column_int64(s, 8);
		COPY_COL(r.ip, s, 9);
		COPY_COL(r.user_agent, s, 10);
		COPY_COL(r.operator_, s, 11);
		r.text_id = sqlite3_column_int64(s, 12);
		COPY_COL(r.text_sha256, s, 13);
		r.text = (char *)sqlite3_column_text(s, 14);
		if (cb(&r, ctx) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : store_fail(st, err, "consent list");
}

int
store_consent_req_add(struct store *st, const struct store_consent_req *r,
    int64_t *id_r, char *err)
{
	if (store_cx_exec(st, store_cx(st, "INSERT INTO consent_requests"
	    " (account_id, contact_id, purpose_id, text_id, created) VALUES"
	    " (?1, ?2, ?3, ?4, ?5)", err, "iiiIi", r->account_id,
	    r->contact_id, r->purpose_id, r->text_id, pd_now()), NULL, err,
	    "consent request add") != 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int
store_consent_req_get(struct store *st, int64_t id,
    struct store_consent_req *r_r, char *err)
{
	sqlite3_stmt *s = store_cx(st, "SELECT id, account_id, contact_id,"
	    " purpose_id, COALESCE(text_id, 0), created, COALESCE(confirmed,"
	    " 0) FROM consent_requests WHERE id = ?1", err, "i", id);
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		r_r->id = sqlite3_column_int64(s, 0);
		r_r->account_id = sqlite3_column_int64(s, 1);
		r_r->contact_id = sqlite3_column_int64(s, 2);
		r_r->purpose_id = sqlite3_column_int64(s, 3);
		r_r->text_id = sqlite3_column_int64(s, 4);
		r_r->created = sqlite3_column_int64(s, 5);
		r_r->confirmed = sqlite3_column_int64(s, 6);
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : store_fail(st, err, "consent request");
}

int
store_consent_req_confirm(struct store *st, int64_t id, int64_t now,
    char *err)
{
	int n = 0;

	if (store_cx_exec(st, store_cx(st, "UPDATE consent_requests SET"
	    " confirmed = ?2 WHERE id = ?1 AND confirmed IS NULL", err, "ii",
	    id, now), &n, err, "consent confirm") != 0)
		return -1;
	return n == 1;
}

int
store_campaign_rcpt_by_msgid(struct store *st, int64_t account_id,
    const char *message_id, int64_t *contact_r, int64_t *purpose_r,
    char *err)
{
	sqlite3_stmt *s = store_cx(st, "SELECT r.contact_id, c.purpose_id"
	    " FROM campaign_recipients r JOIN campaigns c ON c.id ="
	    " r.campaign_id WHERE r.message_id = ?1 AND c.account_id = ?2"
	    " LIMIT 1", err, "ti", message_id, account_id);
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*contact_r = sqlite3_column_int64(s, 0);
		*purpose_r = sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : store_fail(st, err, "marketing check");
}

#define CAMPAIGN_COLS \
	"SELECT c.id, c.account_id, a.name, c.purpose_id, p.name," \
	" c.template, c.subject, c.locale, c.state, c.created," \
	" COALESCE(c.started, 0), COALESCE(c.finished, 0) FROM campaigns c" \
	" JOIN accounts a ON a.id = c.account_id" \
	" JOIN purposes p ON p.id = c.purpose_id "

int
store_campaign_add(struct store *st, const struct store_campaign *c,
    int64_t *id_r, char *err)
{
	if (store_cx_exec(st, store_cx(st, "INSERT INTO campaigns (account_id,"
	    " purpose_id, template, subject, locale, created) VALUES (?1, ?2,"
	    " ?3, ?4, ?5, ?6)", err, "iitttI", c->account_id, c->purpose_id,
	    c->tmpl, c->subject, c->locale, pd_now()), NULL, err,
	    "campaign add") != 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int
store_campaign_get(struct store *st, int64_t id, struct store_campaign *c_r,
    char *err)
{
	sqlite3_stmt *s = store_cx(st, CAMPAIGN_COLS "WHERE c.id = ?1", err,
	    "i", id);
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		memset(c_r, 0, sizeof(*c_r));
		c_r->id = sqlite3_column_int64(s, 0);
		c_r->account_id = sqlite3_column_int64(s, 1);
		COPY_COL(c_r->account, s, 2);
		c_r->purpose_id = sqlite3_column_int64(s, 3);
		COPY_COL(c_r->purpose, s, 4);
		COPY_COL(c_r->tmpl, s, 5);
		COPY_COL(c_r->subject, s, 6);
		COPY_COL(c_r->locale, s, 7);
		COPY_COL(c_r->state, s, 8);
		c_r->created = sqlite3_column_int64(s, 9);
		c_r->started = sqlite3_column_int64(s, 10);
		c_r->finished = sqlite3_column_int64(s, 11);
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : store_fail(st, err, "campaign get");
}

/* The audience: outbound/eligible.c's rules for choosing a newsletter's
 * recipients, as one query. */
#define STORE_AUDIENCE_SQL \
	"INSERT INTO campaign_recipients (campaign_id, contact_id, email," \
	" state, updated) SELECT ?3, c.id, c.email, 'pending', ?4" \
	" FROM contacts c WHERE c.account_id = ?1 AND c.adult = 'yes'" \
	" AND (SELECT r.action FROM consent_records r WHERE r.contact_id =" \
	" c.id AND r.purpose_id = ?2 ORDER BY r.id DESC LIMIT 1) = 'grant'" \
	" AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.account_id =" \
	" ?1 AND s.email = lower(c.email) AND s.expires > ?4)" \
	" AND NOT EXISTS (SELECT 1 FROM outbound o WHERE o.account_id = ?1" \
	" AND o.rcpt = c.email COLLATE NOCASE AND o.state = 'bounced')" \
	" ORDER BY c.id"

int
store_campaign_start(struct store *st, int64_t id, int64_t now, int64_t *n_r,
    char *err)
{
	struct store_campaign c;
	int n = 0, rc;

	*n_r = 0;
	if (store_begin(st, err) != 0)
		return -1;
	if ((rc = store_campaign_get(st, id, &c, err)) != 1) {
		if (rc == 0)
			pd_err(err, "no campaign %lld", (long long)id);
		goto fail;
	}
	if (strcmp(c.state, "draft") != 0) {
		store_rollback(st);
		return 0;
	}
	if (store_cx_exec(st, store_cx(st, STORE_AUDIENCE_SQL, err, "iiii",
	    c.account_id, c.purpose_id, id, now), &n, err,
	    "campaign audience") != 0 ||
	    store_cx_exec(st, store_cx(st, "UPDATE campaigns SET state ="
	    " 'sending', started = ?2 WHERE id = ?1", err, "ii", id, now),
	    NULL, err, "campaign start") != 0 ||
	    store_commit(st, err) != 0)
		goto fail;
	*n_r = n;
	return 0;
fail:
	store_rollback(st);
	return -1;
}

int
store_campaign_finish(struct store *st, int64_t id, int64_t now, char *err)
{
	return store_cx_exec(st, store_cx(st, "UPDATE campaigns SET state ="
	    " 'queued', finished = ?2 WHERE id = ?1 AND state = 'sending'",
	    err, "ii", id, now), NULL, err, "campaign finish");
}

int
store_campaign_rcpt_next(struct store *st, int64_t campaign_id,
    int64_t after_id, int max, store_campaign_rcpt_cb cb, void *ctx,
    char *err)
{
	sqlite3_stmt *s = store_cx(st, "SELECT id, contact_id, email, state,"
	    " COALESCE(message_id, ''), COALESCE(outbound_id, 0), detail"
	    " FROM campaign_recipients WHERE campaign_id = ?1 AND id > ?2"
	    " AND state IN ('pending', 'queuing') ORDER BY id LIMIT ?3", err,
	    "iii", campaign_id, after_id, (int64_t)max);
	struct store_campaign_rcpt *rows;
	int rc, n = 0, i;

	if (s == NULL)
		return -1;
	/* Read the page first: callbacks write to the same tables. */
	rows = xcalloc((size_t)(max > 0 ? max : 1), sizeof(*rows));
	while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_campaign_rcpt *r = &rows[n++];

		r->id = sqlite3_column_int64(s, 0);
		r->contact_id = sqlite3_column_int64(s, 1);
		COPY_COL(r->email, s, 2);
		COPY_COL(r->state, s, 3);
		COPY_COL(r->message_id, s, 4);
		r->outbound_id = sqlite3_column_int64(s, 5);
		COPY_COL(r->detail, s, 6);
	}
	if (n < max && rc != SQLITE_DONE) {
		store_fail(st, err, "campaign recipients");
		sqlite3_finalize(s);
		free(rows);
		return -1;
	}
	sqlite3_finalize(s);
	for (i = 0; i < n; i++)
		if (cb(&rows[i], ctx) != 0)
			break;
	free(rows);
	return n;
}

int
store_campaign_rcpt_set(struct store *st, int64_t id, const char *state,
    const char *message_id, int64_t outbound_id, const char *detail,
    char *err)
{
	char clean[256];

	pd_ascii_clean(clean, sizeof(clean), detail != NULL ? detail : "");
	return store_cx_exec(st, store_cx(st, "UPDATE campaign_recipients SET"
	    " state = ?2, message_id = ?3, outbound_id = ?4, detail = ?5,"
	    " updated = ?6 WHERE id = ?1", err, "ittIti", id, state,
	    message_id, outbound_id, clean, pd_now()), NULL, err,
	    "campaign recipient");
}

int
store_outbound_by_msgid(struct store *st, int64_t account_id,
    const char *message_id, int64_t *id_r, char *err)
{
	return store_cx_int(st, store_cx(st, "SELECT id FROM outbound WHERE"
	    " account_id = ?1 AND message_id = ?2 ORDER BY id LIMIT 1", err,
	    "it", account_id, message_id), id_r, err, "outbound by msgid");
}

int
store_campaign_counts(struct store *st, int64_t id, store_count_cb cb,
    void *ctx, char *err)
{
	sqlite3_stmt *s = store_cx(st, "SELECT 'r.' || state, COUNT(*) FROM"
	    " campaign_recipients WHERE campaign_id = ?1 GROUP BY state"
	    " UNION ALL SELECT 'o.' || o.state, COUNT(*) FROM"
	    " campaign_recipients r JOIN outbound o ON o.id = r.outbound_id"
	    " WHERE r.campaign_id = ?1 GROUP BY o.state", err, "i", id);
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (cb((const char *)sqlite3_column_text(s, 0),
		    sqlite3_column_int64(s, 1), ctx) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : store_fail(st, err, "campaign counts");
}

/* For store_privacy.c (store_int.h): the same connection, same thread. */
sqlite3 *
store_sqlite(struct store *st)
{
	return st->db;
}

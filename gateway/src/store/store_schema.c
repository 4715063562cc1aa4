/*
 * store_schema.c - the schema and its migrations (PRAGMA user_version):
 * one entry per version, each named by what it adds.  Never edits a
 * shipped entry; a change to the schema is a new entry.
 *
 * Two engines: the SQLite texts below, and store_schema_pg.c for
 * PostgreSQL (one base text at version STORE_PG_BASE, then one entry per
 * later version).  A future migration is written twice, here and in
 * store_pg_migrations, and checked with scripts/check-pg-sql.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "lib/smtp_addr.h"
#include "lib/util.h"

/*
 * Migrations: store_vN_<what it adds> brings the schema from version
 * N-1 to N.  Never edit a shipped one; add the next, list it in
 * store_migrations and bump STORE_SCHEMA_VERSION (store.h).
 * Composite foreign keys on (dossier_id, account_id) make it impossible
 * for a row to name another tenant's dossier, whatever a caller passes.
 */

/*
 * v1: tenants and what intake files for them: accounts, contacts,
 * dossiers, messages, documents, events.
 */
static const char store_v1_dossiers[] =
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
	"CREATE INDEX events_dossier ON events (dossier_id, at);";

/*
 * v2: outbound queue and suppressions.  A NULL dossier_id (mail not
 * tied to a dossier) disables the composite key for that row only.
 */
static const char store_v2_outbound[] =
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
	" UNIQUE (account_id, email));";

/*
 * v3: the consent ledger (purposes, versioned consent texts stored
 * once, append-only records: triggers refuse UPDATE and DELETE),
 * age attestation on contacts, double opt-in requests, campaigns
 * with one recipient row each (resumable sending).
 */
static const char store_v3_consent[] =
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
	"CREATE INDEX outbound_rcpt ON outbound (account_id, rcpt COLLATE NOCASE);";

/*
 * v4: privacy rights (privacy.c): the audit trail, erasure records,
 * keyed hashes of erased addresses (marketing never reaches them
 * again), and an erasure's consent records may be deleted - only
 * those of a contact listed in privacy_erasing by the same
 * transaction; any other DELETE is still refused.
 */
static const char store_v4_privacy[] =
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
	" 'consent records are append-only'); END;";

/*
 * v5: integration.  API bearer tokens (store_api.c): only a SHA-256
 * of the secret is kept, looked up by its public prefix.  Event
 * delivery to plugins (store_evq.c): serve copies each new event row
 * (after the consumer's cursor) into one delivery row per consumer;
 * `stream` orders them ("d<dossier id>", else "a<account id>").  No
 * foreign key on event_id: retention and erasure delete events, and
 * a delivery whose event is gone is dropped.
 */
static const char store_v5_integration[] =
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
	" (consumer, hook, state, stream, id);";

/*
 * v6: small raw messages (store.inline_max) live here instead of a blob
 * file: written in the committer's transaction with the message's
 * rows, they are durable by the batch's one WAL fsync.  Keyed like
 * the blob store, by sha256, so messages with the same bytes share
 * one row; a row no message names is deleted with the blob files.
 * A rowid table, not WITHOUT ROWID: there a record is an index key,
 * whose in-page payload is capped near 1000 octets, so a 2 KB
 * message took a page and a half (overflow) instead of half a page.
 */
static const char store_v6_raw_inline[] =
	"CREATE TABLE raw_inline ("
	" sha256 TEXT NOT NULL UNIQUE,"
	" data BLOB NOT NULL);";

/*
 * v7: why and when a message lost its raw copy (sha256 = ''), so that
 * asking for it is answered "purged on DATE by retention", not "blob
 * missing".  Rows emptied by an earlier purge (the only way sha256
 * became '') are marked retention, their date unknown (0).
 */
static const char store_v7_raw_removed[] =
	"ALTER TABLE messages ADD COLUMN raw_removed TEXT NOT NULL"
	" DEFAULT '';"
	"ALTER TABLE messages ADD COLUMN raw_removed_at INTEGER NOT NULL"
	" DEFAULT 0;"
	"UPDATE messages SET raw_removed = 'retention' WHERE sha256 = '';";

/*
 * v8: the dossier loop.  A dossier's requested documents become items
 * (label, required, the types and size shown to the client, a state
 * kept by store_item_refresh from the documents filed under it, and the
 * address part d-<token>+<slug>); documents get the item they answer
 * and a review (who, when, why); an account's named checklists; the
 * contact's language; the time the last reminder was for, so that two
 * are never closer than the schedule's gap.  The old `requested` names
 * become required items; their slugs are made in C (store_v8_slugs).
 * Erasing a dossier takes its items with it (ON DELETE CASCADE).
 */
static const char store_v8_items[] =
	"CREATE TABLE checklists ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" name TEXT NOT NULL,"
	" items TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" UNIQUE (account_id, name));"
	"CREATE TABLE dossier_items ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL,"
	" dossier_id INTEGER NOT NULL,"
	" position INTEGER NOT NULL,"
	" slug TEXT NOT NULL,"
	" label TEXT NOT NULL,"
	" required INTEGER NOT NULL DEFAULT 1,"
	" types TEXT NOT NULL DEFAULT '',"
	" max_size INTEGER NOT NULL DEFAULT 0,"
	" state TEXT NOT NULL DEFAULT 'requested'"
	"  CHECK (state IN ('requested', 'received', 'accepted',"
	"  'rejected')),"
	" reason TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL,"
	" UNIQUE (dossier_id, slug),"
	" UNIQUE (id, account_id),"
	" FOREIGN KEY (dossier_id, account_id)"
	"  REFERENCES dossiers(id, account_id) ON DELETE CASCADE);"
	"ALTER TABLE documents ADD COLUMN item_id INTEGER"
	" REFERENCES dossier_items(id) ON DELETE SET NULL;"
	"ALTER TABLE documents ADD COLUMN review TEXT NOT NULL"
	" DEFAULT 'pending' CHECK (review IN ('pending', 'accepted',"
	" 'rejected'));"
	"ALTER TABLE documents ADD COLUMN review_reason TEXT NOT NULL"
	" DEFAULT '';"
	"ALTER TABLE documents ADD COLUMN reviewed_by TEXT NOT NULL"
	" DEFAULT '';"
	"ALTER TABLE documents ADD COLUMN reviewed_at INTEGER NOT NULL"
	" DEFAULT 0;"
	"CREATE INDEX documents_item ON documents (item_id);"
	"ALTER TABLE contacts ADD COLUMN locale TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE dossiers ADD COLUMN reminded_at INTEGER NOT NULL"
	" DEFAULT 0;"
	"INSERT INTO dossier_items (account_id, dossier_id, position, slug,"
	" label, required, created, updated)"
	" SELECT d.account_id, d.id, j.key + 1, 'v8+' || (j.key + 1),"
	" trim(j.value), 1, d.created, d.created"
	" FROM dossiers d, json_each(CASE WHEN json_valid(d.requested) AND"
	" d.requested LIKE '[%' THEN d.requested ELSE '[]' END) j"
	" WHERE j.type = 'text' AND trim(j.value) <> '';";

/* The migrated items' slugs, from their labels, unique per dossier
 * (a second "Payslip" becomes payslip-2).  The SQL's placeholders
 * ("v8+1") hold a '+', so no slug made here can collide with one not yet
 * replaced (a label "V8 2" gets the slug v8-2). */
static int
store_v8_slugs(struct store *st, char *err)
{
	struct db_stmt *s = store_stmt_once(st, "SELECT id, dossier_id, label"
	    " FROM dossier_items WHERE slug LIKE 'v8+%' ORDER BY id", err);
	struct db_stmt *u;
	char slug[SMTP_ADDR_SLUG_MAX + 1], try[SMTP_ADDR_SLUG_MAX + 8];
	int rc, n, urc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW) {
		smtp_addr_slug(db_col_text(s, 2), slug,
		    sizeof(slug));
		snprintf(try, sizeof(try), "%s", slug);
		for (n = 2, urc = DB_CONSTRAINT; n < 100 &&
		    (urc & 0xff) == DB_CONSTRAINT; n++) {
			u = store_cx(st, "UPDATE dossier_items SET slug = ?1"
			    " WHERE id = ?2", err, "ti", try,
			    db_col_int64(s, 0));
			if (u == NULL)
				break;
			urc = db_step(u);
			db_finalize(u);
			snprintf(try, sizeof(try), "%.*s-%d",
			    SMTP_ADDR_SLUG_MAX - 3, slug, n);
		}
		if (urc != DB_DONE) {
			db_finalize(s);
			return store_fail(st, err, "migration 8: item slugs");
		}
	}
	db_finalize(s);
	return rc == DB_DONE ? 0 : store_fail(st, err, "migration 8");
}

/*
 * v9: inbound trust.  A message records how its sender authenticated
 * (the RFC 8601 Authentication-Results value and the SPF, DKIM and
 * DMARC results apart; sender_pass 1 passed what the account asks, -1
 * did not, 0 not checked), whether it was signed (S/MIME, PGP: the
 * signature part is kept with the raw message, not filed), and the
 * files refused out of it under refused_file = "drop-file" (a JSON
 * array of {filename, type, reason}).  A document records what intake
 * noticed about its part (flags: "truncated", "no-header-break"...) and
 * the malware scan ("clean", "unscanned" when the scanner could not be
 * asked and the account accepts that; "" when no scanner runs).
 */
static const char store_v9_trust[] =
	"ALTER TABLE messages ADD COLUMN auth_results TEXT NOT NULL"
	" DEFAULT '';"
	"ALTER TABLE messages ADD COLUMN spf TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE messages ADD COLUMN dkim TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE messages ADD COLUMN dmarc TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE messages ADD COLUMN sender_pass INTEGER NOT NULL"
	" DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN signed TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE messages ADD COLUMN refused TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE documents ADD COLUMN flags TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE documents ADD COLUMN scan TEXT NOT NULL DEFAULT '';";

/*
 * v10: newsletters an editor writes (issue 15).  A campaign carries its
 * own Markdown body (empty: the template route) and, once its audience
 * is fixed, the contacts left out by reason as a JSON object
 * ({"eligible": N, "no consent": N, ...}).  A purpose has a display name
 * per locale.  An account's identity and settings set with `account
 * set` or the API live in account_settings (one row per key) and win
 * over the config file's account block.
 */
static const char store_v10_campaigns[] =
	"ALTER TABLE campaigns ADD COLUMN body_md TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE campaigns ADD COLUMN audience TEXT NOT NULL"
	" DEFAULT '';"
	"CREATE TABLE purpose_labels ("
	" purpose_id INTEGER NOT NULL REFERENCES purposes(id),"
	" locale TEXT NOT NULL,"
	" label TEXT NOT NULL,"
	" PRIMARY KEY (purpose_id, locale));"
	"CREATE TABLE account_settings ("
	" account_id INTEGER NOT NULL REFERENCES accounts(id),"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" updated INTEGER NOT NULL,"
	" PRIMARY KEY (account_id, key));";

/*
 * v11: addresses compare as lower(x) = lower(?), which both engines can
 * serve from an index on the expression; COLLATE NOCASE was SQLite's
 * alone.
 */
static const char store_v11_rcpt_lower[] =
	"DROP INDEX outbound_rcpt;"
	"CREATE INDEX outbound_rcpt_lower ON outbound (account_id,"
	" lower(rcpt));";

/* Entry N brings the schema from version N-1 to N. */
static const char *const store_migrations[STORE_SCHEMA_VERSION + 1] = {
	[1] = store_v1_dossiers,
	[2] = store_v2_outbound,
	[3] = store_v3_consent,
	[4] = store_v4_privacy,
	[5] = store_v5_integration,
	[6] = store_v6_raw_inline,
	[7] = store_v7_raw_removed,
	[8] = store_v8_items,
	[9] = store_v9_trust,
	[10] = store_v10_campaigns,
	[11] = store_v11_rcpt_lower,
};

/* What a migration does in C after its SQL, when SQL cannot say it. */
static int (*const store_migration_fn[STORE_SCHEMA_VERSION + 1])(
    struct store *, char *) = {
	[8] = store_v8_slugs,
};

static int
store_pragma_int(struct store *st, const char *sql, int *v_r, char *err)
{
	struct db_stmt *s = store_stmt_once(st, sql, err);
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW)
		*v_r = db_col_int(s, 0);
	db_finalize(s);
	if (rc != DB_ROW)
		return store_fail(st, err, sql);
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
	if (store_migration_fn[v] != NULL && store_migration_fn[v](st, err)
	    != 0)
		return -1;
	/* The version is our own integer, not data: PRAGMA cannot bind. */
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	return store_exec(st, sql, err, what);
}

/* ---- PostgreSQL ---- */

/*
 * The advisory lock every gateway takes to migrate ("postdoc" in ASCII):
 * a transaction-level lock (PostgreSQL 15 docs, 9.27.10 "Advisory Lock
 * Functions"), released by the COMMIT or ROLLBACK that ends the
 * migration, even when the connection dies.
 */
#define STORE_PG_MIGRATE_LOCK "31647739056254819"	/* 0x706f7374646f63 */

/* The version in schema_version, 0 for a database the store never saw. */
static int
store_pg_version(struct store *st, int *v_r, char *err)
{
	if (store_exec(st, "CREATE TABLE IF NOT EXISTS schema_version"
	    " (version BIGINT NOT NULL)", err, "schema_version") != 0)
		return -1;
	return store_pragma_int(st, "SELECT COALESCE(MAX(version), 0) FROM"
	    " schema_version", v_r, err);
}

/* Inside the caller's transaction: the base text or the later entries,
 * then the version (one row, rewritten). */
static int
store_pg_migrate_from(struct store *st, int v, char *err)
{
	char what[64];

	if (v == 0) {
		if (store_exec(st, store_schema_pg, err, "postgresql schema")
		    != 0)
			return -1;
		v = STORE_PG_BASE;
	}
	for (v = v + 1; v <= STORE_SCHEMA_VERSION; v++) {
		snprintf(what, sizeof(what), "postgresql migration %d", v);
		if (store_pg_migrations[v] == NULL) {
			pd_err(err, "%s: no PostgreSQL text", what);
			return -1;
		}
		if (store_exec(st, store_pg_migrations[v], err, what) != 0)
			return -1;
	}
	if (store_exec(st, "DELETE FROM schema_version", err,
	    "schema_version") != 0)
		return -1;
	return store_cx_exec(st, store_cx(st, "INSERT INTO schema_version"
	    " (version) VALUES (?1)", err, "i", (int64_t)STORE_SCHEMA_VERSION),
	    NULL, err, "schema_version");
}

/*
 * The store compares and sorts text byte by byte and lower() folds ASCII
 * only, as SQLite does (BINARY collation, no ICU).  A database whose
 * collation or character classes are a locale's would sort names
 * otherwise and, worse, fold a non-ASCII capital in lower(email) where
 * the C code folded only ASCII: an erasure could miss the subject's
 * rows.  So the database must be created C (PostgreSQL 15 docs, 24.1
 * "Locale Support": LC_COLLATE and LC_CTYPE are fixed per database).
 */
static int
store_pg_locale(struct store *st, char *err)
{
	int ok = 0;

	if (store_pragma_int(st, "SELECT CASE WHEN datcollate IN ('C',"
	    " 'POSIX') AND datctype IN ('C', 'POSIX') THEN 1 ELSE 0 END FROM"
	    " pg_database WHERE datname = current_database()", &ok, err) != 0)
		return -1;
	if (!ok) {
		pd_err(err, "the PostgreSQL database must use the C locale "
		    "(CREATE DATABASE ... TEMPLATE template0 LOCALE 'C'): the "
		    "store compares text byte by byte, as SQLite does");
		return -1;
	}
	return 0;
}

/*
 * PostgreSQL: DDL is transactional, so a migration is all or nothing;
 * two gateways starting together queue on the advisory lock, and the
 * second reads the version the first committed and does nothing.
 */
static int
store_migrate_pg(struct store *st, char *err)
{
	int v;

	if (store_exec(st, "BEGIN", err, "migrations: begin") != 0)
		return -1;
	if (store_pg_locale(st, err) != 0 ||
	    store_exec(st, "SELECT pg_advisory_xact_lock("
	    STORE_PG_MIGRATE_LOCK ")", err, "migrations: lock") != 0 ||
	    store_pg_version(st, &v, err) != 0)
		goto fail;
	if (v > STORE_SCHEMA_VERSION) {
		pd_err(err, "database schema version %d is newer than this "
		    "postdoc (%d)", v, STORE_SCHEMA_VERSION);
		goto fail;
	}
	if (v < STORE_SCHEMA_VERSION && store_pg_migrate_from(st, v, err) != 0)
		goto fail;
	if (store_exec(st, "COMMIT", err, "migrations: commit") != 0)
		goto fail;
	return 0;
fail:
	db_exec(store_db(st), "ROLLBACK");
	return -1;
}

/* ---- both ---- */

/*
 * Bring the schema up to STORE_SCHEMA_VERSION.  The version is re-read
 * after BEGIN IMMEDIATE so several connections opening at once (worker
 * threads at start) migrate exactly once: the others wait on the write
 * lock and then find nothing left to do.
 */
int
store_migrate(struct store *st, char *err)
{
	int v;

	if (store_on_pg(st))
		return store_migrate_pg(st, err);
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
	db_exec(store_db(st), "ROLLBACK");
	return -1;
}

int
store_schema_version(struct store *st)
{
	int v = -1;

	if (store_pragma_int(st, store_on_pg(st) ? "SELECT"
	    " COALESCE(MAX(version), 0) FROM schema_version" :
	    "PRAGMA user_version", &v, NULL) != 0)
		return -1;
	return v;
}

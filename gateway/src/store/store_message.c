/*
 * store_message.c - the SQL of what intake stores and operators read
 * back: messages, documents, raw messages kept inline, events.  Called
 * inside the committer's transaction; never begins one itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "lib/util.h"

#define DOC_COLS \
	"SELECT d.id, d.dossier_id, COALESCE(d.message_id, 0), d.filename, " \
	"d.stored_name, d.declared_type, d.sniffed_type, d.size, d.sha256, " \
	"COALESCE(m.received, d.created), COALESCE(d.item_id, 0), " \
	"COALESCE(i.slug, ''), COALESCE(i.label, ''), d.review, " \
	"d.review_reason, d.reviewed_by, d.reviewed_at, d.flags, d.scan " \
	"FROM documents d " \
	"LEFT JOIN messages m ON m.id = d.message_id " \
	"LEFT JOIN dossier_items i ON i.id = d.item_id "

#define MSG_COLS \
	"SELECT id, queue_id, mail_from, rcpt_to, client_ip, helo, tls, " \
	"lmtp, message_id, subject, size, sha256, parse_status, anomalies, " \
	"received, raw_removed, raw_removed_at, auth_results, spf, dkim, " \
	"dmarc, sender_pass, signed, refused FROM messages "

/* This file's cached statements (their slots: store_int.h). */
static const char *const store_message_sql[S_COUNT] = {
	[S_MESSAGE_DUP] = "SELECT id FROM messages WHERE dossier_id = ?1"
	    " AND sha256 = ?2 ORDER BY id LIMIT 1",
	[S_MESSAGE_ADD] = "INSERT INTO messages (account_id, dossier_id,"
	    " queue_id, mail_from, rcpt_to, helo, client_ip, tls, lmtp,"
	    " message_id, subject, from_header, size, sha256, parse_status,"
	    " anomalies, received, auth_results, spf, dkim, dmarc,"
	    " sender_pass, signed, refused) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
	    " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
	    " ?20, ?21, ?22, ?23, ?24) RETURNING id",
	[S_MESSAGE_GET] = MSG_COLS
	    "WHERE id = ?1 AND (?2 = 0 OR account_id = ?2)",
	[S_DOCUMENT_DUP] = "SELECT id FROM documents WHERE dossier_id = ?1"
	    " AND sha256 = ?2 AND message_id <> ?3 LIMIT 1",
	[S_DOCUMENT_ADD] = "INSERT INTO documents (account_id, dossier_id,"
	    " message_id, filename, stored_name, declared_type, sniffed_type,"
	    " size, sha256, part_path, created, item_id, flags, scan) VALUES"
	    " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
	    " RETURNING id",
	[S_DOCUMENT_GET] = DOC_COLS
	    "WHERE d.id = ?1 AND (?2 = 0 OR d.account_id = ?2)",
	[S_DOCUMENT_COUNT_SINCE] = "SELECT COUNT(*) FROM documents"
	    " WHERE dossier_id = ?1 AND created >= ?2",
	/* Ids never go back, even after an erasure or a purge deleted the
	 * newest rows: evq's cursors (event_cursors) would skip a reused id.
	 * The larger of the two through the aggregate MAX: the scalar form
	 * is max() in SQLite, GREATEST in PostgreSQL. */
	[S_EVENT_ADD] = "INSERT INTO events (id, account_id, dossier_id, at,"
	    " kind, detail) VALUES ((SELECT 1 + MAX(n) FROM (SELECT MAX(id)"
	    " AS n FROM events UNION ALL SELECT MAX(last_event) FROM"
	    " event_cursors UNION ALL SELECT 0) AS m), ?1, ?2, ?3, ?4, ?5)",
	/* content-addressed: a second message with the same bytes shares it */
	[S_RAW_PUT] = "INSERT INTO raw_inline (sha256, data)"
	    " VALUES (?1, ?2) ON CONFLICT DO NOTHING",
};

/* ---- intake: messages, documents, events ---- */

static int
store_find_dup(struct store *st, enum store_stmt_id id, int64_t dossier_id,
    const char *sha256, int64_t *id_r, char *err)
{
	struct db_stmt *s = store_stmt(st, id, store_message_sql, err);

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, dossier_id) ||
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

/*
 * A document is a duplicate when an earlier message already brought the
 * same bytes into the dossier; parts of one message are all kept (m29:
 * four empty attachments are four documents).
 */
int
store_document_find_dup(struct store *st, int64_t dossier_id,
    int64_t message_id, const char *sha256, int64_t *id_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_DOCUMENT_DUP,
	    store_message_sql, err);

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, dossier_id) ||
	    store_bind_text(s, 2, sha256) ||
	    db_bind_int64(s, 3, message_id))
		return store_fail(st, err, "find duplicate: bind");
	return store_lookup_id(st, s, id_r, err, "find duplicate");
}

static int
store_message_bind(struct db_stmt *s, const struct store_message *m)
{
	return db_bind_int64(s, 1, m->account_id) ||
	    db_bind_int64(s, 2, m->dossier_id) ||
	    store_bind_text(s, 3, m->queue_id ? m->queue_id : "") ||
	    store_bind_text(s, 4, m->mail_from ? m->mail_from : "") ||
	    store_bind_text(s, 5, m->rcpt_to ? m->rcpt_to : "") ||
	    store_bind_text(s, 6, m->helo) ||
	    store_bind_text(s, 7, m->client_ip) ||
	    db_bind_int64(s, 8, m->tls != 0) ||
	    db_bind_int64(s, 9, m->lmtp != 0) ||
	    store_bind_text(s, 10, m->message_id) ||
	    store_bind_text(s, 11, m->subject) ||
	    store_bind_text(s, 12, m->from_header) ||
	    db_bind_int64(s, 13, (int64_t)m->size) ||
	    store_bind_text(s, 14, m->sha256) ||
	    store_bind_text(s, 15, m->parse_status ? m->parse_status : "ok") ||
	    store_bind_text(s, 16, m->anomalies ? m->anomalies : "") ||
	    db_bind_int64(s, 17, m->received ? m->received : pd_now()) ||
	    store_bind_text(s, 18, m->auth_results ? m->auth_results : "") ||
	    store_bind_text(s, 19, m->spf ? m->spf : "") ||
	    store_bind_text(s, 20, m->dkim ? m->dkim : "") ||
	    store_bind_text(s, 21, m->dmarc ? m->dmarc : "") ||
	    db_bind_int64(s, 22, m->sender_pass) ||
	    store_bind_text(s, 23, m->signed_ ? m->signed_ : "") ||
	    store_bind_text(s, 24, m->refused ? m->refused : "");
}

int
store_message_add(struct store *st, const struct store_message *m,
    int64_t *id_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_MESSAGE_ADD, store_message_sql, err);

	if (s == NULL)
		return -1;
	if (store_message_bind(s, m) != 0)
		return store_fail(st, err, "message add: bind");
	return store_lookup_id(st, s, id_r, err, "message add") == 1 ? 0 : -1;
}

static int
store_document_bind(struct db_stmt *s, const struct store_document *d)
{
	return db_bind_int64(s, 1, d->account_id) ||
	    db_bind_int64(s, 2, d->dossier_id) ||
	    store_bind_id(s, 3, d->message_id) ||
	    store_bind_text(s, 4, d->filename ? d->filename : "") ||
	    store_bind_text(s, 5, d->stored_name ? d->stored_name : "") ||
	    store_bind_text(s, 6, d->declared_type) ||
	    store_bind_text(s, 7, d->sniffed_type) ||
	    db_bind_int64(s, 8, (int64_t)d->size) ||
	    store_bind_text(s, 9, d->sha256) ||
	    store_bind_text(s, 10, d->part_path) ||
	    db_bind_int64(s, 11, pd_now()) ||
	    store_bind_id(s, 12, d->item_id) ||
	    store_bind_text(s, 13, d->flags ? d->flags : "") ||
	    store_bind_text(s, 14, d->scan ? d->scan : "");
}

int
store_document_add(struct store *st, const struct store_document *d,
    int64_t *id_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_DOCUMENT_ADD,
	    store_message_sql, err);

	if (s == NULL)
		return -1;
	if (store_document_bind(s, d) != 0)
		return store_fail(st, err, "document add: bind");
	return store_lookup_id(st, s, id_r, err, "document add") == 1 ? 0 :
	    -1;
}

int
store_event_add(struct store *st, int64_t account_id, int64_t dossier_id,
    const char *kind, const char *detail, char *err)
{
	struct db_stmt *s = store_stmt(st, S_EVENT_ADD, store_message_sql, err);

	if (s == NULL)
		return -1;
	if (store_bind_id(s, 1, account_id) || store_bind_id(s, 2, dossier_id)
	    || db_bind_int64(s, 3, pd_now()) ||
	    store_bind_text(s, 4, kind) ||
	    store_bind_text(s, 5, detail ? detail : ""))
		return store_fail(st, err, "event add: bind");
	return store_exec_stmt(st, s, err, "event add");
}

/* ---- raw messages kept inline (raw_inline) ---- */

int
store_raw_put(struct store *st, const char *sha256, const void *data,
    size_t len, char *err)
{
	struct db_stmt *s = store_stmt(st, S_RAW_PUT, store_message_sql, err);

	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, sha256) ||
	    db_bind_blob(s, 2, data, len))
		return store_fail(st, err, "raw put: bind");
	return store_exec_stmt(st, s, err, "raw put");
}

int
store_raw_get(struct store *st, const char *sha256, void **data_r,
    size_t *len_r, char *err)
{
	struct db_stmt *s = store_stmt_once(st, "SELECT data FROM raw_inline"
	    " WHERE sha256 = ?1", err);
	int rc;

	*data_r = NULL;
	*len_r = 0;
	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, sha256) != 0) {
		db_finalize(s);
		return store_fail(st, err, "raw get: bind");
	}
	rc = db_step(s);
	if (rc == DB_ROW) {
		*len_r = (size_t)db_col_bytes(s, 0);
		*data_r = xmalloc(*len_r + 1);	/* +1: never malloc(0) */
		if (*len_r > 0)
			memcpy(*data_r, db_col_blob(s, 0), *len_r);
	} else if (rc != DB_DONE)
		store_fail(st, err, "raw get");
	db_finalize(s);
	return rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : -1;
}

int
store_raw_delete(struct store *st, const char *sha256, char *err)
{
	struct db_stmt *s = store_stmt_once(st, "DELETE FROM raw_inline"
	    " WHERE sha256 = ?1", err);

	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, sha256) != 0) {
		db_finalize(s);
		return store_fail(st, err, "raw delete: bind");
	}
	return store_cx_exec(st, s, NULL, err, "raw delete");
}

/* ---- reading back ---- */

static void
store_doc_row(struct db_stmt *s, struct store_doc_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = db_col_int64(s, 0);
	r->dossier_id = db_col_int64(s, 1);
	r->message_id = db_col_int64(s, 2);
	COPY_COL(r->filename, s, 3);
	COPY_COL(r->stored_name, s, 4);
	COPY_COL(r->declared_type, s, 5);
	COPY_COL(r->sniffed_type, s, 6);
	r->size = (uint64_t)db_col_int64(s, 7);
	COPY_COL(r->sha256, s, 8);
	r->received = db_col_int64(s, 9);
	r->item_id = db_col_int64(s, 10);
	COPY_COL(r->item_slug, s, 11);
	COPY_COL(r->item_label, s, 12);
	COPY_COL(r->review, s, 13);
	COPY_COL(r->review_reason, s, 14);
	COPY_COL(r->reviewed_by, s, 15);
	r->reviewed_at = db_col_int64(s, 16);
	COPY_COL(r->flags, s, 17);
	COPY_COL(r->scan, s, 18);
}

static void
store_msg_row(struct db_stmt *s, struct store_msg_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = db_col_int64(s, 0);
	COPY_COL(r->queue_id, s, 1);
	COPY_COL(r->mail_from, s, 2);
	COPY_COL(r->rcpt_to, s, 3);
	COPY_COL(r->client_ip, s, 4);
	COPY_COL(r->helo, s, 5);
	r->tls = db_col_int(s, 6);
	r->lmtp = db_col_int(s, 7);
	COPY_COL(r->message_id, s, 8);
	COPY_COL(r->subject, s, 9);
	r->size = (uint64_t)db_col_int64(s, 10);
	COPY_COL(r->sha256, s, 11);
	COPY_COL(r->parse_status, s, 12);
	COPY_COL(r->anomalies, s, 13);
	r->received = db_col_int64(s, 14);
	COPY_COL(r->raw_removed, s, 15);
	r->raw_removed_at = db_col_int64(s, 16);
	COPY_COL(r->auth_results, s, 17);
	COPY_COL(r->spf, s, 18);
	COPY_COL(r->dkim, s, 19);
	COPY_COL(r->dmarc, s, 20);
	r->sender_pass = db_col_int(s, 21);
	COPY_COL(r->signed_, s, 22);
	COPY_COL(r->refused, s, 23);
}

static void
store_event_row(struct db_stmt *s, struct store_event_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = db_col_int64(s, 0);
	r->at = db_col_int64(s, 1);
	COPY_COL(r->kind, s, 2);
	COPY_COL(r->detail, s, 3);
}

/* The three per-dossier lists differ only in SQL and row type. */
enum store_list_kind { L_DOC, L_MSG, L_EVENT };

static int
store_list_emit(struct db_stmt *s, enum store_list_kind k, void *cb,
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
	struct db_stmt *s = store_stmt_once(st, sql[k], err);
	int rc;

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, dossier_id) ||
	    db_bind_int64(s, 2, account_id)) {
		db_finalize(s);
		return store_fail(st, err, "list: bind");
	}
	while ((rc = db_step(s)) == DB_ROW)
		if (store_list_emit(s, k, cb, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	if (rc != DB_DONE)
		store_fail(st, err, "list");
	db_finalize(s);
	return rc == DB_DONE ? 0 : -1;
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
	struct db_stmt *s = store_stmt(st, S_DOCUMENT_GET,
	    store_message_sql, err);
	int rc;

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, id) || db_bind_int64(s, 2, account_id))
		return store_fail(st, err, "document get: bind");
	rc = db_step(s);
	if (rc == DB_ROW)
		store_doc_row(s, r);
	db_reset(s);
	if (rc == DB_ROW)
		return 1;
	if (rc == DB_DONE)
		return 0;
	return store_fail(st, err, "document get");
}

int
store_message_get(struct store *st, int64_t account_id, int64_t id,
    struct store_msg_row *r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_MESSAGE_GET, store_message_sql, err);
	int rc;

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, id) || db_bind_int64(s, 2, account_id))
		return store_fail(st, err, "message get: bind");
	rc = db_step(s);
	if (rc == DB_ROW)
		store_msg_row(s, r);
	db_reset(s);
	if (rc == DB_ROW)
		return 1;
	if (rc == DB_DONE)
		return 0;
	return store_fail(st, err, "message get");
}

int
store_document_count_since(struct store *st, int64_t dossier_id,
    int64_t since, int64_t *n_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_DOCUMENT_COUNT_SINCE,
	    store_message_sql, err);

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, dossier_id) ||
	    db_bind_int64(s, 2, since))
		return store_fail(st, err, "document count: bind");
	return store_ints(st, s, n_r, NULL, NULL, err, "document count");
}

/*
 * store_evq.c - the SQL behind store_evq.h: event cursors, deliveries,
 * the claim of each stream's head and verdicts.  Like store.c, data
 * reaches SQL only as bound parameters; SQL text is built solely from the
 * constants in this file.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store_evq.h"
#include "store_int.h"
#include "lib/util.h"

const char *const store_evq_public[STORE_EVQ_NPUBLIC] = {
	"document.received", "dossier.completed", "invitation.sent",
	"message.bounced", "consent.granted", "consent.withdrawn",
	"subject.erased", "message.received", "item.received",
	"document.accepted", "document.rejected",
};

#define EVQ_PUBLIC_IN "('document.received', 'dossier.completed'," \
	" 'invitation.sent', 'message.bounced', 'consent.granted'," \
	" 'consent.withdrawn', 'subject.erased', 'message.received'," \
	" 'item.received', 'document.accepted', 'document.rejected')"
#define EVQ_SYNC_IN "('document.received')"

/* The store's one preparer: binds by a format, 'i' int64, 't' text. */
#define se_prep store_cx_prep

#define se_fail store_fail	/* store_int.h */

static void
se_col(char *dst, size_t len, struct db_stmt *s, int col)
{
	const char *t = db_col_text(s, col);

	snprintf(dst, len, "%s", t != NULL ? (const char *)t : "");
}

/* ---- fan-out ---- */

static int
se_fanout_tx(struct store *st, const char *key, const char *consumer,
    const char *hook, int sync, int64_t now, int *added_r, char *err)
{
	int64_t cursor = 0;
	int r, n = 0;

	r = store_cx_int(st, se_prep(st, "SELECT last_event FROM"
	    " event_cursors WHERE consumer = ?1", err, "t", key), &cursor,
	    err, "evq cursor");
	if (r < 0)
		return -1;
	if (r == 0)	/* new consumer: from now on, no replay */
		return store_cx_exec(st, se_prep(st, "INSERT INTO"
		    " event_cursors (consumer, last_event) VALUES (?1,"
		    " COALESCE((SELECT MAX(id) FROM events), 0))", err, "t",
		    key), NULL, err, "evq cursor add");
	if (store_cx_exec(st, se_prep(st, sync ?
	    "INSERT INTO event_deliveries (consumer, hook,"
	    " event_id, stream, next_attempt, created, updated)"
	    " SELECT ?1, ?2, e.id, CASE WHEN e.dossier_id IS NULL"
	    " THEN 'a' || COALESCE(e.account_id, 0) ELSE 'd' || e.dossier_id"
	    " END, ?3, ?3, ?3 FROM events e WHERE e.id > ?4 AND e.kind IN "
	    EVQ_SYNC_IN " ORDER BY e.id ON CONFLICT DO NOTHING" :
	    "INSERT INTO event_deliveries (consumer, hook,"
	    " event_id, stream, next_attempt, created, updated)"
	    " SELECT ?1, ?2, e.id, CASE WHEN e.dossier_id IS NULL"
	    " THEN 'a' || COALESCE(e.account_id, 0) ELSE 'd' || e.dossier_id"
	    " END, ?3, ?3, ?3 FROM events e WHERE e.id > ?4 AND e.kind IN "
	    EVQ_PUBLIC_IN " ORDER BY e.id ON CONFLICT DO NOTHING", err,
	    "ttii", consumer, hook, now, cursor), &n, err, "evq fan-out") != 0)
		return -1;
	*added_r = n;
	/* Only forward: no scalar max() both engines know (PostgreSQL says
	 * GREATEST), so the newer id is a condition. */
	return store_cx_exec(st, se_prep(st, "UPDATE event_cursors SET"
	    " last_event = (SELECT MAX(id) FROM events) WHERE consumer = ?1"
	    " AND last_event < (SELECT MAX(id) FROM events)", err, "t", key),
	    NULL, err, "evq cursor advance");
}

/* 1 when the cursor exists and no event is newer: no write lock then. */
static int
se_idle(struct store *st, const char *key, char *err)
{
	int64_t v = 0;
	int r = store_cx_int(st, se_prep(st, "SELECT CASE WHEN (SELECT"
	    " last_event FROM event_cursors WHERE consumer = ?1) >= (SELECT"
	    " COALESCE(MAX(id), 0) FROM events) THEN 1 ELSE 0 END", err, "t",
	    key), &v, err, "evq idle");

	return r < 0 ? -1 : r == 1 && v == 1;
}

int
store_evq_fanout(struct store *st, const char *consumer, const char *hook,
    int sync, int64_t now, int *added_r, char *err)
{
	char key[160];
	int idle;

	*added_r = 0;
	/* One cursor per (plugin, hook): a plugin may have both hooks. */
	snprintf(key, sizeof(key), "%s:%s", consumer, hook);
	/* Polled every interval: take intake's write lock only when an
	 * event is waiting. */
	if ((idle = se_idle(st, key, err)) != 0)
		return idle < 0 ? -1 : 0;
	if (store_begin(st, err) != 0)
		return -1;
	if (se_fanout_tx(st, key, consumer, hook, sync, now, added_r, err)
	    != 0) {
		store_rollback(st);
		return -1;
	}
	return store_commit(st, err);
}

/* ---- claim and verdict ---- */

static void
se_item(struct db_stmt *s, struct store_evq_item *it)
{
	memset(it, 0, sizeof(*it));
	it->id = db_col_int64(s, 0);
	it->event_id = db_col_int64(s, 1);
	it->attempts = (unsigned)db_col_int64(s, 2);
	it->gone = db_col_int(s, 3);
	it->at = db_col_int64(s, 4);
	it->account_id = db_col_int64(s, 5);
	se_col(it->account, sizeof(it->account), s, 6);
	it->dossier_id = db_col_int64(s, 7);
	se_col(it->dossier_ref, sizeof(it->dossier_ref), s, 8);
	se_col(it->kind, sizeof(it->kind), s, 9);
	se_col(it->detail, sizeof(it->detail), s, 10);
}

int
store_evq_due(struct store *st, const char *consumer, const char *hook,
    int64_t now, struct store_evq_item *items, size_t max, size_t *n_r,
    char *err)
{
	/* Strict order per stream: only a stream's lowest pending row may
	 * run; a failing head keeps the rest of its stream waiting. */
	struct db_stmt *s = se_prep(st, "SELECT d.id, d.event_id, d.attempts,"
	    " CASE WHEN e.id IS NULL THEN 1 ELSE 0 END,"
	    " COALESCE(e.at, d.created),"
	    " COALESCE(e.account_id, 0), COALESCE(a.name, ''),"
	    " COALESCE(e.dossier_id, 0), COALESCE(x.ref, ''),"
	    " COALESCE(e.kind, ''), COALESCE(e.detail, '')"
	    " FROM event_deliveries d"
	    " LEFT JOIN events e ON e.id = d.event_id"
	    " LEFT JOIN accounts a ON a.id = e.account_id"
	    " LEFT JOIN dossiers x ON x.id = e.dossier_id"
	    " WHERE d.consumer = ?1 AND d.hook = ?2 AND d.state = 'pending'"
	    " AND d.next_attempt <= ?3 AND d.id = (SELECT MIN(h.id) FROM"
	    " event_deliveries h WHERE h.consumer = d.consumer AND"
	    " h.hook = d.hook AND h.state = 'pending' AND"
	    " h.stream = d.stream) ORDER BY d.id LIMIT ?4", err, "ttii",
	    consumer, hook, now, (int64_t)max);
	int rc = DB_DONE;

	*n_r = 0;
	if (s == NULL)
		return -1;
	while (*n_r < max && (rc = db_step(s)) == DB_ROW)
		se_item(s, &items[(*n_r)++]);
	if (*n_r < max && rc != DB_DONE) {
		se_fail(st, err, "evq due");
		db_finalize(s);
		return -1;
	}
	db_finalize(s);
	return 0;
}

int
store_evq_record(struct store *st, int64_t id, const char *state,
    unsigned attempts, int64_t next_attempt, const char *last_error,
    int64_t now, char *err)
{
	return store_cx_exec(st, se_prep(st, "UPDATE event_deliveries SET"
	    " state = ?2, attempts = ?3, next_attempt = ?4, last_error = ?5,"
	    " updated = ?6 WHERE id = ?1", err, "itiiti", id, state,
	    (int64_t)attempts, next_attempt, last_error != NULL ? last_error :
	    "", now), NULL, err, "evq record");
}

int
store_evq_document(struct store *st, int64_t account_id, int64_t doc_id,
    struct store_evq_doc *d, char *err)
{
	struct db_stmt *s = se_prep(st, "SELECT id, filename, stored_name,"
	    " COALESCE(sniffed_type, declared_type, ''), size, sha256,"
	    " created FROM documents WHERE id = ?1 AND account_id = ?2", err,
	    "ii", doc_id, account_id);
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW) {
		memset(d, 0, sizeof(*d));
		d->id = db_col_int64(s, 0);
		se_col(d->filename, sizeof(d->filename), s, 1);
		se_col(d->stored_name, sizeof(d->stored_name), s, 2);
		se_col(d->content_type, sizeof(d->content_type), s, 3);
		d->size = (uint64_t)db_col_int64(s, 4);
		se_col(d->sha256, sizeof(d->sha256), s, 5);
		d->received = db_col_int64(s, 6);
	}
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : se_fail(st, err, "evq document");
}

int
store_evq_consent_event(struct store *st, int64_t account_id,
    int64_t contact_id, int64_t purpose_id, const char *action,
    const char *source, char *err)
{
	struct db_stmt *s = se_prep(st, "SELECT c.email, p.name FROM contacts c,"
	    " purposes p WHERE c.id = ?1 AND p.id = ?2", err, "ii", contact_id,
	    purpose_id);
	char email[320] = "", purpose[128] = "", detail[640];
	int rc;

	if (s == NULL)
		return -1;
	if ((rc = db_step(s)) == DB_ROW) {
		se_col(email, sizeof(email), s, 0);
		se_col(purpose, sizeof(purpose), s, 1);
	}
	db_finalize(s);
	if (rc != DB_ROW && rc != DB_DONE)
		return se_fail(st, err, "consent event");
	/* The address is in the detail so an erasure finds and deletes the
	 * event (store_privacy.c matches details on the address). */
	snprintf(detail, sizeof(detail), "contact=%s source=%s purpose=%s",
	    email, source != NULL ? source : "", purpose);
	return store_event_add(st, account_id, 0, strcmp(action, "grant") == 0 ?
	    "consent.granted" : "consent.withdrawn", detail, err);
}

/* ---- operators ---- */

int
store_evq_list(struct store *st, const char *consumer, const char *state,
    struct store_evq_row *rows, size_t max, size_t *n_r, char *err)
{
	struct db_stmt *s = se_prep(st, "SELECT d.id, d.event_id, d.consumer,"
	    " d.hook, d.stream, d.state, COALESCE(e.kind, '(gone)'),"
	    " d.attempts, d.next_attempt, d.created, d.updated, d.last_error"
	    " FROM event_deliveries d LEFT JOIN events e ON e.id = d.event_id"
	    " WHERE (CAST(?1 AS TEXT) IS NULL OR d.consumer = ?1) AND"
	    " (CAST(?2 AS TEXT) IS NULL OR d.state = ?2)"
	    " ORDER BY d.id DESC LIMIT ?3", err, "tti",
	    consumer, state, (int64_t)max);
	int rc = DB_DONE;

	*n_r = 0;
	if (s == NULL)
		return -1;
	while (*n_r < max && (rc = db_step(s)) == DB_ROW) {
		struct store_evq_row *r = &rows[(*n_r)++];

		memset(r, 0, sizeof(*r));
		r->id = db_col_int64(s, 0);
		r->event_id = db_col_int64(s, 1);
		se_col(r->consumer, sizeof(r->consumer), s, 2);
		se_col(r->hook, sizeof(r->hook), s, 3);
		se_col(r->stream, sizeof(r->stream), s, 4);
		se_col(r->state, sizeof(r->state), s, 5);
		se_col(r->kind, sizeof(r->kind), s, 6);
		r->attempts = (unsigned)db_col_int64(s, 7);
		r->next_attempt = db_col_int64(s, 8);
		r->created = db_col_int64(s, 9);
		r->updated = db_col_int64(s, 10);
		se_col(r->last_error, sizeof(r->last_error), s, 11);
	}
	db_finalize(s);
	if (rc != DB_ROW && rc != DB_DONE)
		return se_fail(st, err, "evq list");
	return 0;
}

int
store_evq_retry(struct store *st, int64_t id, int64_t now, char *err)
{
	int n = 0;

	if (store_cx_exec(st, se_prep(st, "UPDATE event_deliveries SET"
	    " state = 'pending', next_attempt = ?2, updated = ?2 WHERE"
	    " id = ?1 AND state IN ('failed', 'expired')", err, "ii", id, now), &n, err, "evq retry") != 0)
		return -1;
	return n > 0;
}

int
store_evq_prune(struct store *st, const char *consumer, const char *hook,
    int64_t done_before, int64_t failed_before, int *n_r, char *err)
{
	*n_r = 0;
	return store_cx_exec(st, se_prep(st, "DELETE FROM event_deliveries"
	    " WHERE consumer = ?1 AND hook = ?2 AND ((state IN ('done',"
	    " 'dropped') AND updated < ?3) OR (state IN ('failed', 'expired')"
	    " AND updated < ?4))", err, "ssii", consumer, hook, done_before,
	    failed_before), n_r, err, "evq prune");
}

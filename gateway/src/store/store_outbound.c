/*
 * store_outbound.c - the SQL of the outbound queue (add, claim, update,
 * recover, list) and of suppressions.  Never decides a retry or a
 * bounce: outq does, and records it here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "lib/util.h"

#define OUTBOUND_COLS \
	"SELECT o.id, o.account_id, COALESCE(o.dossier_id, 0), a.name, " \
	"o.kind, o.rcpt, o.rcpt_domain, o.mail_from, o.verp_token, " \
	"o.message_id, o.from_domain, o.sha256, o.size, o.state, o.attempts, " \
	"o.next_attempt, o.created, o.updated, o.last_code, o.last_enhanced, " \
	"o.last_text FROM outbound o JOIN accounts a ON a.id = o.account_id "

/* This file's cached statements (their slots: store_int.h). */
static const char *const store_outbound_sql[S_COUNT] = {
	[S_OUTBOUND_ADD] = "INSERT INTO outbound (account_id, dossier_id,"
	    " kind, rcpt, rcpt_domain, mail_from, verp_token, message_id,"
	    " from_domain, sha256, size, state, attempts, next_attempt,"
	    " created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
	    " ?10, ?11, ?12, 0, ?13, ?14, ?14) RETURNING id",
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
	    " AND (CAST(?2 AS TEXT) IS NULL OR kind = ?2)",
	/* Adding an address again refreshes the reason and the expiry: a
	 * new hard bounce restarts the quarantine. */
	[S_SUPPRESSION_ADD] = "INSERT INTO suppressions (account_id, email,"
	    " reason, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)"
	    " ON CONFLICT (account_id, email) DO UPDATE SET"
	    " reason = excluded.reason, expires = excluded.expires",
	[S_SUPPRESSION_GET] = "SELECT reason, expires FROM suppressions"
	    " WHERE account_id = ?1 AND email = ?2 AND expires > ?3",
};

/* ---- outbound queue ---- */

static void
store_outbound_row(struct db_stmt *s, struct store_outbound *o)
{
	memset(o, 0, sizeof(*o));
	o->id = db_col_int64(s, 0);
	o->account_id = db_col_int64(s, 1);
	o->dossier_id = db_col_int64(s, 2);
	COPY_COL(o->account, s, 3);
	COPY_COL(o->kind, s, 4);
	COPY_COL(o->rcpt, s, 5);
	COPY_COL(o->rcpt_domain, s, 6);
	COPY_COL(o->mail_from, s, 7);
	COPY_COL(o->verp_token, s, 8);
	COPY_COL(o->message_id, s, 9);
	COPY_COL(o->from_domain, s, 10);
	COPY_COL(o->sha256, s, 11);
	o->size = (uint64_t)db_col_int64(s, 12);
	COPY_COL(o->state, s, 13);
	o->attempts = db_col_int(s, 14);
	o->next_attempt = db_col_int64(s, 15);
	o->created = db_col_int64(s, 16);
	o->updated = db_col_int64(s, 17);
	o->last_code = db_col_int(s, 18);
	COPY_COL(o->last_enhanced, s, 19);
	COPY_COL(o->last_text, s, 20);
}

static int
store_outbound_bind(struct db_stmt *s, const struct store_outbound *o,
    int64_t now)
{
	return db_bind_int64(s, 1, o->account_id) ||
	    store_bind_id(s, 2, o->dossier_id) ||
	    store_bind_text(s, 3, o->kind) ||
	    store_bind_text(s, 4, o->rcpt) ||
	    store_bind_text(s, 5, o->rcpt_domain) ||
	    store_bind_text(s, 6, o->mail_from) ||
	    store_bind_text(s, 7, o->verp_token) ||
	    store_bind_text(s, 8, o->message_id) ||
	    store_bind_text(s, 9, o->from_domain) ||
	    store_bind_text(s, 10, o->sha256) ||
	    db_bind_int64(s, 11, (int64_t)o->size) ||
	    store_bind_text(s, 12, o->state[0] != '\0' ? o->state : "queued") ||
	    db_bind_int64(s, 13, o->next_attempt) ||
	    db_bind_int64(s, 14, o->created != 0 ? o->created : now);
}

int
store_outbound_add(struct store *st, const struct store_outbound *o,
    int64_t *id_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_OUTBOUND_ADD,
	    store_outbound_sql, err);
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
	rc = store_step_id(s, id_r);
	db_reset(s);
	if (rc != DB_DONE)
		return store_fail(st, err, "outbound add");
	return 0;
}

/* Step a bound outbound query: 1 found, 0 not found, -1 error. */
static int
store_outbound_fetch(struct store *st, struct db_stmt *s,
    struct store_outbound *o_r, char *err)
{
	int rc = db_step(s);

	if (rc == DB_ROW)
		store_outbound_row(s, o_r);
	db_reset(s);
	if (rc == DB_ROW)
		return 1;
	if (rc == DB_DONE)
		return 0;
	return store_fail(st, err, "outbound lookup");
}

int
store_outbound_get(struct store *st, int64_t account_id, int64_t id,
    struct store_outbound *o_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_OUTBOUND_GET,
	    store_outbound_sql, err);

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, id) || db_bind_int64(s, 2, account_id))
		return store_fail(st, err, "outbound get: bind");
	return store_outbound_fetch(st, s, o_r, err);
}

int
store_outbound_by_verp(struct store *st, const char *token,
    struct store_outbound *o_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_OUTBOUND_BY_VERP,
	    store_outbound_sql, err);
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
	struct db_stmt *s = store_stmt(st, S_OUTBOUND_DUE,
	    store_outbound_sql, err);
	int rc = DB_DONE, n = 0;

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, now) || db_bind_int64(s, 2, max))
		return store_fail(st, err, "outbound claim: bind");
	while (n < max && (rc = db_step(s)) == DB_ROW)
		store_outbound_row(s, &rows[n++]);
	if (n < max && rc != DB_DONE) {
		db_reset(s);
		return store_fail(st, err, "outbound claim");
	}
	db_reset(s);
	*n_r = n;
	return 0;
}

static int
store_outbound_take(struct store *st, struct store_outbound *o, int64_t now,
    char *err)
{
	struct db_stmt *s = store_stmt(st, S_OUTBOUND_TAKE,
	    store_outbound_sql, err);

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, o->id) || db_bind_int64(s, 2, now))
		return store_fail(st, err, "outbound claim: bind");
	if (store_exec_stmt(st, s, err, "outbound claim") != 0)
		return -1;
	/* The write lock is ours since BEGIN IMMEDIATE: nobody else can
	 * have taken the row between our SELECT and this UPDATE. */
	if (db_changes(store_db(st)) != 1)
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
	struct db_stmt *s = store_stmt(st, S_OUTBOUND_UPDATE,
	    store_outbound_sql, err);
	char clean[256];

	if (s == NULL)
		return -1;
	/* Relay text is peer data: keep it printable and bounded. */
	pd_ascii_clean(clean, sizeof(clean), text != NULL ? text : "");
	if (db_bind_int64(s, 1, id) || store_bind_text(s, 2, state) ||
	    db_bind_int64(s, 3, code) ||
	    store_bind_text(s, 4, enhanced != NULL ? enhanced : "") ||
	    store_bind_text(s, 5, clean) ||
	    db_bind_int64(s, 6, next_attempt) ||
	    db_bind_int64(s, 7, pd_now()))
		return store_fail(st, err, "outbound update: bind");
	if (store_exec_stmt(st, s, err, "outbound update") != 0)
		return -1;
	if (db_changes(store_db(st)) != 1) {
		pd_err(err, "outbound %lld not found", (long long)id);
		return -1;
	}
	return 0;
}

int
store_outbound_recover(struct store *st, int64_t now, int *n_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_OUTBOUND_RECOVER,
	    store_outbound_sql, err);

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, now))
		return store_fail(st, err, "outbound recover: bind");
	if (store_exec_stmt(st, s, err, "outbound recover") != 0)
		return -1;
	if (n_r != NULL)
		*n_r = db_changes(store_db(st));
	return 0;
}

int
store_outbound_list(struct store *st, int64_t account_id, int64_t dossier_id,
    const char *state, store_outbound_cb cb, void *ctx, char *err)
{
	struct db_stmt *s = store_stmt_once(st, OUTBOUND_COLS
	    "WHERE (?1 = 0 OR o.account_id = ?1) AND"
	    " (?2 = 0 OR o.dossier_id = ?2) AND"
	    " (CAST(?3 AS TEXT) IS NULL OR o.state = ?3)"
	    " ORDER BY o.id", err);
	struct store_outbound o;
	int rc;

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, account_id) ||
	    db_bind_int64(s, 2, dossier_id) ||
	    store_bind_text(s, 3, state)) {
		db_finalize(s);
		return store_fail(st, err, "outbound list: bind");
	}
	while ((rc = db_step(s)) == DB_ROW) {
		store_outbound_row(s, &o);
		if (cb(&o, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	if (rc != DB_DONE)
		store_fail(st, err, "outbound list");
	db_finalize(s);
	return rc == DB_DONE ? 0 : -1;
}

int
store_outbound_count(struct store *st, int64_t dossier_id, const char *kind,
    int64_t *n_r, int64_t *first_r, int64_t *last_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_OUTBOUND_COUNT,
	    store_outbound_sql, err);

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, dossier_id) || store_bind_text(s, 2, kind))
		return store_fail(st, err, "outbound count: bind");
	return store_ints(st, s, n_r, first_r, last_r, err, "outbound count");
}

int
store_outbound_by_msgid(struct store *st, int64_t account_id,
    const char *message_id, int64_t *id_r, char *err)
{
	return store_cx_int(st, store_cx(st, "SELECT id FROM outbound WHERE"
	    " account_id = ?1 AND message_id = ?2 ORDER BY id LIMIT 1", err,
	    "it", account_id, message_id), id_r, err, "outbound by msgid");
}

/* ---- suppressions ---- */

int
store_suppression_add(struct store *st, int64_t account_id,
    const char *email, const char *reason, int64_t expires, char *err)
{
	struct db_stmt *s = store_stmt(st, S_SUPPRESSION_ADD,
	    store_outbound_sql, err);
	char addr[320], clean[256];

	if (s == NULL)
		return -1;
	if (account_id <= 0 || email == NULL || strlen(email) >= sizeof(addr)) {
		pd_err(err, "suppression add: account and address needed");
		return -1;
	}
	store_lower(addr, sizeof(addr), email);
	pd_ascii_clean(clean, sizeof(clean), reason != NULL ? reason : "");
	if (db_bind_int64(s, 1, account_id) ||
	    store_bind_text(s, 2, addr) || store_bind_text(s, 3, clean) ||
	    db_bind_int64(s, 4, pd_now()) ||
	    db_bind_int64(s, 5, expires))
		return store_fail(st, err, "suppression add: bind");
	return store_exec_stmt(st, s, err, "suppression add");
}

int
store_suppression_get(struct store *st, int64_t account_id,
    const char *email, int64_t now, char *reason_r, size_t reason_len,
    int64_t *expires_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_SUPPRESSION_GET,
	    store_outbound_sql, err);
	char addr[320];
	int rc;

	if (s == NULL)
		return -1;
	if (email == NULL || strlen(email) >= sizeof(addr))
		return 0;
	store_lower(addr, sizeof(addr), email);
	if (db_bind_int64(s, 1, account_id) ||
	    store_bind_text(s, 2, addr) || db_bind_int64(s, 3, now))
		return store_fail(st, err, "suppression get: bind");
	rc = db_step(s);
	if (rc == DB_ROW) {
		if (reason_r != NULL && reason_len > 0)
			store_col_copy(reason_r, reason_len, s, 0);
		if (expires_r != NULL)
			*expires_r = db_col_int64(s, 1);
	}
	db_reset(s);
	if (rc == DB_ROW)
		return 1;
	if (rc == DB_DONE)
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

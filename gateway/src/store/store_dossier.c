/*
 * store_dossier.c - the SQL of dossiers: create (with its contact and
 * intake address), look up by id, ref or address, close, list, and the
 * document request an invitation records.  Never touches messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "lib/util.h"

#define DOSSIER_COLS \
	"SELECT d.id, d.account_id, a.name, a.sender_policy, d.ref, " \
	"c.email, d.intake_local, d.status, d.created, " \
	"COALESCE(d.closed, 0), d.requested, d.due, COALESCE(c.name, ''), " \
	"c.locale, d.reminded_at FROM dossiers d " \
	"JOIN accounts a ON a.id = d.account_id " \
	"JOIN contacts c ON c.id = d.contact_id "

/* This file's cached statements (their slots: store_int.h). */
static const char *const store_dossier_sql[S_COUNT] = {
	[S_DOSSIER_ADD] = "INSERT INTO dossiers (account_id, contact_id, ref,"
	    " intake_local, status, created)"
	    " VALUES (?1, ?2, ?3, ?4, 'open', ?5) RETURNING id",
	[S_DOSSIER_GET] = DOSSIER_COLS
	    "WHERE d.id = ?1 AND (?2 = 0 OR d.account_id = ?2)",
	[S_DOSSIER_BY_REF] = DOSSIER_COLS
	    "WHERE d.account_id = ?1 AND d.ref = ?2",
	[S_DOSSIER_BY_LOCAL] = DOSSIER_COLS "WHERE d.intake_local = ?1",
	[S_DOSSIER_CLOSE] = "UPDATE dossiers SET status = 'closed',"
	    " closed = ?3 WHERE id = ?1 AND account_id = ?2"
	    " AND status = 'open'",
	[S_DOSSIER_SET_REQUEST] = "UPDATE dossiers SET requested = ?3,"
	    " due = ?4 WHERE id = ?1 AND account_id = ?2",
};

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

/* Turn a UNIQUE failure on dossiers into a message an operator can act on:
 * SQLite names the columns ("dossiers.ref"), PostgreSQL the constraint
 * (store_schema_pg.c names it dossiers_ref_key). */
static int
store_dossier_insert_error(struct store *st, int rc, const char *ref,
    const char *local, char *err)
{
	const char *msg = db_errmsg(store_db(st));

	if ((rc & 0xff) == DB_CONSTRAINT &&
	    strstr(msg, "intake_local") != NULL)
		pd_err(err, "intake address \"%s\" is already in use", local);
	else if ((rc & 0xff) == DB_CONSTRAINT &&
	    (strstr(msg, "dossiers.ref") != NULL ||
	    strstr(msg, "dossiers_ref_key") != NULL))
		pd_err(err, "dossier ref \"%s\" already exists in this account",
		    ref);
	else if ((rc & 0xff) == DB_CONSTRAINT)
		pd_err(err, "dossier create: no such account (%s)", msg);
	else
		pd_err(err, "dossier create: %s", msg);
	return -1;
}

static int
store_dossier_insert(struct store *st, int64_t account_id, int64_t contact_id,
    const char *ref, const char *local, int64_t *id_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_DOSSIER_ADD, store_dossier_sql, err);
	int rc;

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, account_id) ||
	    db_bind_int64(s, 2, contact_id) ||
	    store_bind_text(s, 3, ref) || store_bind_text(s, 4, local) ||
	    db_bind_int64(s, 5, pd_now()))
		return store_fail(st, err, "dossier create: bind");
	rc = store_step_id(s, id_r);
	db_reset(s);
	if (rc != DB_DONE)
		return store_dossier_insert_error(st, rc, ref, local, err);
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
store_dossier_row(struct db_stmt *s, struct store_dossier *d)
{
	memset(d, 0, sizeof(*d));
	d->id = db_col_int64(s, 0);
	d->account_id = db_col_int64(s, 1);
	COPY_COL(d->account, s, 2);
	COPY_COL(d->sender_policy, s, 3);
	COPY_COL(d->ref, s, 4);
	COPY_COL(d->contact, s, 5);
	COPY_COL(d->intake_local, s, 6);
	COPY_COL(d->status, s, 7);
	d->created = db_col_int64(s, 8);
	d->closed = db_col_int64(s, 9);
	COPY_COL(d->requested, s, 10);
	COPY_COL(d->due, s, 11);
	COPY_COL(d->contact_name, s, 12);
	COPY_COL(d->contact_locale, s, 13);
	d->reminded_at = db_col_int64(s, 14);
}

/* Step a bound dossier query: 1 found, 0 not found, -1 error. */
static int
store_dossier_fetch(struct store *st, struct db_stmt *s,
    struct store_dossier *d_r, char *err)
{
	int rc = db_step(s);

	if (rc == DB_ROW)
		store_dossier_row(s, d_r);
	db_reset(s);
	if (rc == DB_ROW)
		return 1;
	if (rc == DB_DONE)
		return 0;
	return store_fail(st, err, "dossier lookup");
}

int
store_dossier_get(struct store *st, int64_t account_id, int64_t id,
    struct store_dossier *d_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_DOSSIER_GET, store_dossier_sql, err);

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, id) || db_bind_int64(s, 2, account_id))
		return store_fail(st, err, "dossier get: bind");
	return store_dossier_fetch(st, s, d_r, err);
}

int
store_dossier_by_ref(struct store *st, int64_t account_id, const char *ref,
    struct store_dossier *d_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_DOSSIER_BY_REF,
	    store_dossier_sql, err);

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, account_id) || store_bind_text(s, 2, ref))
		return store_fail(st, err, "dossier by ref: bind");
	return store_dossier_fetch(st, s, d_r, err);
}

int
store_dossier_by_local(struct store *st, const char *intake_local,
    struct store_dossier *d_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_DOSSIER_BY_LOCAL,
	    store_dossier_sql, err);
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
	struct db_stmt *s;
	struct store_dossier d;
	int rc;

	/* 0 means "any" for reads only; a write must name its tenant. */
	if (account_id <= 0) {
		pd_err(err, "dossier close: no account given");
		return -1;
	}
	if ((s = store_stmt(st, S_DOSSIER_CLOSE,
	    store_dossier_sql, err)) == NULL)
		return -1;
	if (db_bind_int64(s, 1, id) || db_bind_int64(s, 2,
	    account_id) || db_bind_int64(s, 3, pd_now()))
		return store_fail(st, err, "dossier close: bind");
	if (store_exec_stmt(st, s, err, "dossier close") != 0)
		return -1;
	if (db_changes(store_db(st)) == 1)
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
	struct db_stmt *s = store_stmt_once(st, DOSSIER_COLS
	    "WHERE d.account_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR "
	    "d.status = ?2) "
	    "ORDER BY d.id", err);
	struct store_dossier d;
	int rc;

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, account_id) ||
	    store_bind_text(s, 2, status)) {
		db_finalize(s);
		return store_fail(st, err, "dossier list: bind");
	}
	while ((rc = db_step(s)) == DB_ROW) {
		store_dossier_row(s, &d);
		if (cb(&d, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	if (rc != DB_DONE)
		store_fail(st, err, "dossier list");
	db_finalize(s);
	return rc == DB_DONE ? 0 : -1;
}

/* ---- document requests ---- */

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
	struct db_stmt *s;
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
	if ((s = store_stmt(st, S_DOSSIER_SET_REQUEST,
	    store_dossier_sql, err)) == NULL)
		return -1;
	if (db_bind_int64(s, 1, dossier_id) ||
	    db_bind_int64(s, 2, account_id) ||
	    store_bind_text(s, 3, req) || store_bind_text(s, 4, due))
		return store_fail(st, err, "dossier request: bind");
	if (store_exec_stmt(st, s, err, "dossier request") != 0)
		return -1;
	if (db_changes(store_db(st)) != 1) {
		pd_err(err, "dossier %lld not found", (long long)dossier_id);
		return -1;
	}
	return 0;
}

/*
 * store_consent.c - the SQL of the consent ledger: purposes, contacts,
 * consent texts, records and double opt-in requests (the facts that
 * outbound/eligible.c's rules read).  Records are only ever appended,
 * never updated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "lib/util.h"

/* This file's cached statements (their slots: store_int.h). */
static const char *const store_consent_sql[S_COUNT] = {
	[S_CONTACT_ADD] = "INSERT INTO contacts"
	    " (account_id, email, created) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT DO NOTHING",
	[S_CONTACT_GET] = "SELECT id FROM contacts"
	    " WHERE account_id = ?1 AND email = ?2",
};

/* ---- purposes ---- */

int
store_purpose_add(struct store *st, int64_t account_id, const char *name,
    int64_t *id_r, char *err)
{
	struct db_stmt *s = store_cx(st, "INSERT INTO purposes (account_id,"
	    " name, created) VALUES (?1, ?2, ?3) RETURNING id", err, "iti",
	    account_id, name, pd_now());
	int rc;

	if (s == NULL)
		return -1;
	rc = store_step_id(s, id_r);
	db_finalize(s);
	if ((rc & 0xff) == DB_CONSTRAINT) {
		pd_err(err, "purpose \"%s\" already exists", name);
		return -1;
	}
	if (rc != DB_DONE)
		return store_fail(st, err, "purpose add");
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
	struct db_stmt *s = store_cx(st, "SELECT name FROM purposes"
	    " WHERE id = ?1 AND account_id = ?2", err, "ii", id, account_id);
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW)
		store_col_copy(name_r, len, s, 0);
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail(st, err, "purpose name");
}

int
store_purpose_list(struct store *st, int64_t account_id, store_purpose_cb cb,
    void *ctx, char *err)
{
	struct db_stmt *s = store_cx(st, "SELECT id, name FROM purposes"
	    " WHERE account_id = ?1 ORDER BY name", err, "i", account_id);
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
	return rc == DB_DONE ? 0 : store_fail(st, err, "purpose list");
}

/* ---- contacts ---- */

#define CONTACT_COLS \
	"SELECT c.id, c.account_id, a.name, c.email, c.adult," \
	" COALESCE(c.adult_at, 0), c.adult_by, c.locale FROM contacts c" \
	" JOIN accounts a ON a.id = c.account_id "

static void
store_contact_row(struct db_stmt *s, struct store_contact *c)
{
	memset(c, 0, sizeof(*c));
	c->id = db_col_int64(s, 0);
	c->account_id = db_col_int64(s, 1);
	COPY_COL(c->account, s, 2);
	COPY_COL(c->email, s, 3);
	COPY_COL(c->adult, s, 4);
	c->adult_at = db_col_int64(s, 5);
	COPY_COL(c->adult_by, s, 6);
	COPY_COL(c->locale, s, 7);
}

static int
store_contact_fetch(struct store *st, struct db_stmt *s,
    struct store_contact *c_r, char *err)
{
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW)
		store_contact_row(s, c_r);
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail(st, err, "contact get");
}

/* Find or create the contact row for (account, lower-cased email). */
int
store_contact_id(struct store *st, int64_t account_id, const char *email,
    int64_t *id_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_CONTACT_ADD, store_consent_sql, err);
	int rc;

	if (s == NULL)
		return -1;
	if (db_bind_int64(s, 1, account_id) ||
	    store_bind_text(s, 2, email) || db_bind_int64(s, 3, pd_now()))
		return store_fail(st, err, "contact add: bind");
	if (store_exec_stmt(st, s, err, "contact add") != 0)
		return -1;
	if ((s = store_stmt(st, S_CONTACT_GET, store_consent_sql, err)) == NULL)
		return -1;
	if (db_bind_int64(s, 1, account_id) || store_bind_text(s, 2, email))
		return store_fail(st, err, "contact get: bind");
	rc = store_lookup_id(st, s, id_r, err, "contact get");
	if (rc == 0)
		pd_err(err, "contact get: row vanished");
	return rc == 1 ? 0 : -1;
}

int
store_contact_ensure(struct store *st, int64_t account_id, const char *email,
    int64_t *id_r, char *err)
{
	if (store_cx_exec(st, store_cx(st, "INSERT INTO contacts"
	    " (account_id, email, created) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT DO NOTHING", err, "iti",
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
	struct db_stmt *s = store_cx(st, CONTACT_COLS "WHERE c.account_id = ?1"
	    " ORDER BY c.id", err, "i", account_id);
	struct store_contact c;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW) {
		store_contact_row(s, &c);
		if (cb(&c, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_finalize(s);
	return rc == DB_DONE ? 0 : store_fail(st, err, "contact list");
}

/* Served by outbound_rcpt_lower (account_id, lower(rcpt)); an integer,
 * not a boolean, for both engines. */
#define STORE_BOUNCED_SQL \
	"CASE WHEN EXISTS (SELECT 1 FROM outbound o WHERE o.account_id = ?1" \
	" AND lower(o.rcpt) = lower(?2) AND o.state = 'bounced')" \
	" THEN 1 ELSE 0 END"

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

/* ---- consent texts and records ---- */

int
store_consent_text_put(struct store *st, int64_t account_id,
    const char *sha256, const char *body, int64_t *id_r, char *err)
{
	if (!store_sha_valid(sha256)) {
		pd_err(err, "consent text: bad sha256");
		return -1;
	}
	if (store_cx_exec(st, store_cx(st, "INSERT INTO"
	    " consent_texts (account_id, sha256, body, created) VALUES"
	    " (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING", err, "itti",
	    account_id, sha256, body, pd_now()), NULL, err,
	    "consent text add") != 0)
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
	return store_cx_int(st, store_cx(st, "INSERT INTO consent_records"
	    " (account_id, contact_id, purpose_id, action, basis, source,"
	    " method, at, ip, user_agent, operator, text_id) VALUES (?1, ?2,"
	    " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id", err,
	    "iiittttittt" "I", account_id, r->contact_id, r->purpose_id,
	    r->action, r->basis, r->source, method, r->at != 0 ? r->at :
	    pd_now(), ip, ua, op, r->text_id), id_r, err, "consent add") == 1 ?
	    0 : -1;
}

int
store_consent_latest(struct store *st, int64_t contact_id, int64_t purpose_id,
    char *action_r, size_t len, char *err)
{
	struct db_stmt *s = store_cx(st, "SELECT action FROM consent_records"
	    " WHERE contact_id = ?1 AND purpose_id = ?2 ORDER BY id DESC"
	    " LIMIT 1", err, "ii", contact_id, purpose_id);
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW)
		store_col_copy(action_r, len, s, 0);
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail(st, err, "consent latest");
}

int
store_consent_list(struct store *st, int64_t account_id, int64_t contact_id,
    store_consent_cb cb, void *ctx, char *err)
{
	struct db_stmt *s = store_cx(st, "SELECT r.id, r.contact_id,"
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
	while ((rc = db_step(s)) == DB_ROW) {
		memset(&r, 0, sizeof(r));
		r.id = db_col_int64(s, 0);
		r.contact_id = db_col_int64(s, 1);
		r.purpose_id = db_col_int64(s, 2);
		COPY_COL(r.purpose, s, 3);
		COPY_COL(r.action, s, 4);
		COPY_COL(r.basis, s, 5);
		COPY_COL(r.source, s, 6);
		COPY_COL(r.method, s, 7);
		r.at = db_col_int64(s, 8);
		COPY_COL(r.ip, s, 9);
		COPY_COL(r.user_agent, s, 10);
		COPY_COL(r.operator_, s, 11);
		r.text_id = db_col_int64(s, 12);
		COPY_COL(r.text_sha256, s, 13);
		r.text = (char *)db_col_text(s, 14);
		if (cb(&r, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_finalize(s);
	return rc == DB_DONE ? 0 : store_fail(st, err, "consent list");
}

/* ---- double opt-in requests ---- */

int
store_consent_req_add(struct store *st, const struct store_consent_req *r,
    int64_t *id_r, char *err)
{
	return store_cx_int(st, store_cx(st, "INSERT INTO consent_requests"
	    " (account_id, contact_id, purpose_id, text_id, created) VALUES"
	    " (?1, ?2, ?3, ?4, ?5) RETURNING id", err, "iiiIi", r->account_id,
	    r->contact_id, r->purpose_id, r->text_id, pd_now()), id_r, err,
	    "consent request add") == 1 ? 0 : -1;
}

int
store_consent_req_get(struct store *st, int64_t id,
    struct store_consent_req *r_r, char *err)
{
	struct db_stmt *s = store_cx(st, "SELECT id, account_id, contact_id,"
	    " purpose_id, COALESCE(text_id, 0), created, COALESCE(confirmed,"
	    " 0) FROM consent_requests WHERE id = ?1", err, "i", id);
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW) {
		r_r->id = db_col_int64(s, 0);
		r_r->account_id = db_col_int64(s, 1);
		r_r->contact_id = db_col_int64(s, 2);
		r_r->purpose_id = db_col_int64(s, 3);
		r_r->text_id = db_col_int64(s, 4);
		r_r->created = db_col_int64(s, 5);
		r_r->confirmed = db_col_int64(s, 6);
	}
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail(st, err, "consent request");
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
store_purpose_label_set(struct store *st, int64_t purpose_id,
    const char *locale, const char *label, char *err)
{
	if (label == NULL)
		return store_cx_exec(st, store_cx(st, "DELETE FROM"
		    " purpose_labels WHERE purpose_id = ?1 AND locale = ?2",
		    err, "it", purpose_id, locale), NULL, err,
		    "purpose label");
	return store_cx_exec(st, store_cx(st, "INSERT INTO purpose_labels"
	    " (purpose_id, locale, label) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (purpose_id, locale) DO UPDATE SET label ="
	    " excluded.label", err, "itt", purpose_id, locale, label), NULL,
	    err, "purpose label");
}

int
store_purpose_label(struct store *st, int64_t purpose_id, const char *locale,
    char *label_r, size_t len, char *err)
{
	struct db_stmt *s = store_cx(st, "SELECT label FROM purpose_labels"
	    " WHERE purpose_id = ?1 AND locale = ?2", err, "it", purpose_id,
	    locale);
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW)
		store_col_copy(label_r, len, s, 0);
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail(st, err, "purpose label");
}

/* Shared by the two key/value tables: rows of (key, value) into cb. */
int
store_pairs(struct store *st, struct db_stmt *s, store_pair_cb cb, void *ctx,
    char *err, const char *what)
{
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW)
		if (cb(db_col_text(s, 0),
		    db_col_text(s, 1), ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	db_finalize(s);
	return rc == DB_DONE ? 0 : store_fail(st, err, what);
}

int
store_purpose_labels(struct store *st, int64_t purpose_id, store_pair_cb cb,
    void *ctx, char *err)
{
	return store_pairs(st, store_cx(st, "SELECT locale, label FROM"
	    " purpose_labels WHERE purpose_id = ?1 ORDER BY locale", err, "i",
	    purpose_id), cb, ctx, err, "purpose labels");
}

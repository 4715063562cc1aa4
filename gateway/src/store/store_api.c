/*
 * store_api.c - the SQL behind store_api.h: API tokens and the dossier
 * page.  Like store.c, data reaches SQL only as bound parameters, every
 * query is scoped by account, and the SQL text is constants of this file.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store_api.h"
#include "store_int.h"
#include "lib/util.h"

#define SA_TOKEN_COLS "SELECT t.id, t.account_id, a.name, t.name," \
	" t.prefix, t.hash, t.created, t.last_used, t.revoked" \
	" FROM api_tokens t JOIN accounts a ON a.id = t.account_id "

/* The store's one preparer: binds by a format, 'i' int64, 't' text. */
#define sa_prep store_cx_prep

#define sa_fail store_fail	/* store_int.h */

static void
sa_col(char *dst, size_t len, struct db_stmt *s, int i)
{
	const char *v = db_col_text(s, i);

	snprintf(dst, len, "%s", v != NULL ? (const char *)v : "");
}

static void
sa_token_row(struct db_stmt *s, struct store_api_token *t)
{
	memset(t, 0, sizeof(*t));
	t->id = db_col_int64(s, 0);
	t->account_id = db_col_int64(s, 1);
	sa_col(t->account, sizeof(t->account), s, 2);
	sa_col(t->name, sizeof(t->name), s, 3);
	sa_col(t->prefix, sizeof(t->prefix), s, 4);
	sa_col(t->hash, sizeof(t->hash), s, 5);
	t->created = db_col_int64(s, 6);
	t->last_used = db_col_int64(s, 7);
	t->revoked = db_col_int64(s, 8);
}

int
store_api_token_add(struct store *st, int64_t account_id, const char *name,
    const char *prefix, const char *hash, int64_t *id_r, char *err)
{
	struct db_stmt *s = sa_prep(st, "INSERT INTO api_tokens (account_id,"
	    " name, prefix, hash, created) VALUES (?1, ?2, ?3, ?4, ?5)"
	    " RETURNING id", err,
	    "itt" "ti", account_id, name, prefix, hash, pd_now());
	int rc;

	if (s == NULL)
		return -1;
	rc = store_step_id(s, id_r);
	db_finalize(s);
	if ((rc & 0xff) == DB_CONSTRAINT) {
		/* Names stay taken after a revoke: list shows who was who. */
		pd_err(err, "a token named \"%s\" exists in this account", name);
		return -1;
	}
	if (rc != DB_DONE)
		return sa_fail(st, err, "token add");
	return 0;
}

int
store_api_token_by_prefix(struct store *st, const char *prefix,
    struct store_api_token *t_r, char *err)
{
	struct db_stmt *s = sa_prep(st, SA_TOKEN_COLS "WHERE t.prefix = ?1",
	    err, "t", prefix);
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW)
		sa_token_row(s, t_r);
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : sa_fail(st, err, "token get");
}

int
store_api_token_list(struct store *st, int64_t account_id,
    store_api_token_cb cb, void *ctx, char *err)
{
	struct db_stmt *s = sa_prep(st, SA_TOKEN_COLS "WHERE t.account_id = ?1"
	    " ORDER BY t.id", err, "i", account_id);
	struct store_api_token t;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW) {
		sa_token_row(s, &t);
		if (cb(&t, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_finalize(s);
	return rc == DB_DONE ? 0 : sa_fail(st, err, "token list");
}

int
store_api_token_revoke(struct store *st, int64_t account_id,
    const char *name, int64_t now, char *err)
{
	struct db_stmt *s = sa_prep(st, "UPDATE api_tokens SET revoked = ?3"
	    " WHERE account_id = ?1 AND name = ?2 AND revoked = 0", err,
	    "iti", account_id, name, now);
	int n = 0;

	if (s == NULL || store_cx_exec(st, s, &n, err, "token revoke") != 0)
		return -1;
	return n > 0;
}

int
store_api_token_used(struct store *st, int64_t id, int64_t now, char *err)
{
	struct db_stmt *s = sa_prep(st, "UPDATE api_tokens SET last_used = ?2"
	    " WHERE id = ?1", err, "ii", id, now);

	if (s == NULL)
		return -1;
	return store_cx_exec(st, s, NULL, err, "token used");
}

int
store_api_dossier_page(struct store *st, int64_t account_id,
    const struct store_api_filter *f, int64_t after, int max,
    int64_t *ids_r, int *n_r, char *err)
{
	struct db_stmt *s = sa_prep(st, "SELECT d.id FROM dossiers d"
	    " JOIN contacts c ON c.id = d.contact_id"
	    " WHERE d.account_id = ?1 AND d.id > ?2"
	    " AND (CAST(?3 AS TEXT) IS NULL OR d.status = ?3)"
	    " AND (CAST(?4 AS TEXT) IS NULL OR lower(c.email) = lower(?4))"
	    " AND (CAST(?5 AS TEXT) IS NULL OR d.ref = ?5)"
	    " ORDER BY d.id LIMIT ?6", err, "iittti", account_id, after,
	    f->status, f->contact, f->ref, (int64_t)max);
	int rc;

	*n_r = 0;
	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW && *n_r < max)
		ids_r[(*n_r)++] = db_col_int64(s, 0);
	db_finalize(s);
	return rc == DB_DONE || rc == DB_ROW ? 0 :
	    sa_fail(st, err, "dossier page");
}

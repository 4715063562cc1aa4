/*
 * store_account.c - the SQL of accounts (tenants): add, look up, list.
 * Never reads or writes a tenant's data; that is the other domains'.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "lib/util.h"

#define ACCOUNT_COLS "SELECT id, name, sender_policy, created FROM accounts "

/* This file's cached statements (their slots: store_int.h). */
static const char *const store_account_sql[S_COUNT] = {
	[S_ACCOUNT_ADD] = "INSERT INTO accounts (name, sender_policy, created)"
	    " VALUES (?1, ?2, ?3) RETURNING id",
	[S_ACCOUNT_GET] = ACCOUNT_COLS "WHERE name = ?1",
};

/* ---- accounts ---- */

int
store_account_add(struct store *st, const char *name,
    const char *sender_policy, int64_t *id_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_ACCOUNT_ADD, store_account_sql, err);
	int rc;

	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, name) || store_bind_text(s, 2,
	    sender_policy != NULL ? sender_policy : "any") ||
	    db_bind_int64(s, 3, pd_now()))
		return store_fail(st, err, "account add: bind");
	rc = store_step_id(s, id_r);
	db_reset(s);
	if ((rc & 0xff) == DB_CONSTRAINT) {
		pd_err(err, "account \"%s\" already exists", name);
		return -1;
	}
	if (rc != DB_DONE)
		return store_fail(st, err, "account add");
	return 0;
}

static void
store_account_row(struct db_stmt *s, struct store_account *a)
{
	memset(a, 0, sizeof(*a));
	a->id = db_col_int64(s, 0);
	COPY_COL(a->name, s, 1);
	COPY_COL(a->sender_policy, s, 2);
	a->created = db_col_int64(s, 3);
}

int
store_account_get(struct store *st, const char *name,
    struct store_account *a_r, char *err)
{
	struct db_stmt *s = store_stmt(st, S_ACCOUNT_GET, store_account_sql, err);
	int rc;

	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, name))
		return store_fail(st, err, "account get: bind");
	rc = db_step(s);
	if (rc == DB_ROW)
		store_account_row(s, a_r);
	db_reset(s);
	if (rc == DB_ROW)
		return 1;
	if (rc == DB_DONE)
		return 0;
	return store_fail(st, err, "account get");
}

int
store_account_list(struct store *st, store_account_cb cb, void *ctx,
    char *err)
{
	struct db_stmt *s = store_stmt_once(st, ACCOUNT_COLS "ORDER BY name",
	    err);
	struct store_account a;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW) {
		store_account_row(s, &a);
		if (cb(&a, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	if (rc != DB_DONE)
		store_fail(st, err, "account list");
	db_finalize(s);
	return rc == DB_DONE ? 0 : -1;
}

int
store_account_setting_set(struct store *st, int64_t account_id,
    const char *key, const char *value, int64_t now, char *err)
{
	if (value == NULL)
		return store_cx_exec(st, store_cx(st, "DELETE FROM"
		    " account_settings WHERE account_id = ?1 AND key = ?2",
		    err, "it", account_id, key), NULL, err, "account setting");
	return store_cx_exec(st, store_cx(st, "INSERT INTO account_settings"
	    " (account_id, key, value, updated) VALUES (?1, ?2, ?3, ?4)"
	    " ON CONFLICT (account_id, key) DO UPDATE SET value ="
	    " excluded.value, updated = excluded.updated", err, "itti",
	    account_id, key, value, now), NULL, err, "account setting");
}

int
store_account_settings(struct store *st, int64_t account_id,
    store_pair_cb cb, void *ctx, char *err)
{
	return store_pairs(st, store_cx(st, "SELECT key, value FROM"
	    " account_settings WHERE account_id = ?1 ORDER BY key", err, "i",
	    account_id), cb, ctx, err, "account settings");
}

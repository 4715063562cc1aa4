/*
 * db_sqlite.c - the store's embedded driver: SQLite behind db.h.  A thin
 * pass-through (db.h's codes are SQLite's numbers); what only SQLite has
 * (busy timeout, WAL checkpoints, the OS errno) is named db_sqlite_*.
 */
#include <stdlib.h>

#include <sqlite3.h>

#include "db.h"
#include "lib/util.h"

struct db_sq {
	struct db base;
	sqlite3 *h;
};

struct db_sq_stmt {
	struct db_stmt base;
	sqlite3_stmt *s;
};

#define H(db) (((struct db_sq *)(db))->h)
#define S(st) (((struct db_sq_stmt *)(st))->s)

static const struct db_ops db_sq_ops;

static void
db_sq_close(struct db *db)
{
	sqlite3_close(H(db));
	free(db);
}

static int
db_sq_prepare(struct db *db, const char *sql, struct db_stmt **s_r)
{
	sqlite3_stmt *s = NULL;
	struct db_sq_stmt *w;
	int rc = sqlite3_prepare_v2(H(db), sql, -1, &s, NULL);

	*s_r = NULL;
	if (rc != SQLITE_OK)
		return rc;
	w = xcalloc(1, sizeof(*w));
	w->base.ops = &db_sq_ops;
	w->s = s;
	*s_r = &w->base;
	return DB_OK;
}

static int
db_sq_exec(struct db *db, const char *sql)
{
	return sqlite3_exec(H(db), sql, NULL, NULL, NULL);
}

static int64_t
db_sq_changes(struct db *db)
{
	return sqlite3_changes(H(db));
}

static int64_t
db_sq_last_insert_id(struct db *db)
{
	return sqlite3_last_insert_rowid(H(db));
}

static const char *
db_sq_errmsg(struct db *db)
{
	return sqlite3_errmsg(H(db));
}

static int
db_sq_errcode(struct db *db)
{
	return sqlite3_extended_errcode(H(db));
}

static int
db_sq_in_transaction(struct db *db)
{
	return !sqlite3_get_autocommit(H(db));
}

static int
db_sq_step(struct db_stmt *s)
{
	return sqlite3_step(S(s));
}

static int
db_sq_reset(struct db_stmt *s)
{
	return sqlite3_reset(S(s));
}

static int
db_sq_clear_bindings(struct db_stmt *s)
{
	return sqlite3_clear_bindings(S(s));
}

static int
db_sq_finalize(struct db_stmt *s)
{
	int rc = sqlite3_finalize(S(s));

	free(s);
	return rc;
}

static int
db_sq_param_count(struct db_stmt *s)
{
	return sqlite3_bind_parameter_count(S(s));
}

static int
db_sq_bind_int64(struct db_stmt *s, int idx, int64_t v)
{
	return sqlite3_bind_int64(S(s), idx, v);
}

static int
db_sq_bind_text(struct db_stmt *s, int idx, const char *v, int len)
{
	return sqlite3_bind_text(S(s), idx, v, len, SQLITE_TRANSIENT);
}

static int
db_sq_bind_blob(struct db_stmt *s, int idx, const void *v, size_t len)
{
	return sqlite3_bind_blob64(S(s), idx, v, len, SQLITE_TRANSIENT);
}

static int
db_sq_bind_null(struct db_stmt *s, int idx)
{
	return sqlite3_bind_null(S(s), idx);
}

static int
db_sq_col_count(struct db_stmt *s)
{
	return sqlite3_column_count(S(s));
}

static const char *
db_sq_col_name(struct db_stmt *s, int col)
{
	return sqlite3_column_name(S(s), col);
}

static int
db_sq_col_type(struct db_stmt *s, int col)
{
	return sqlite3_column_type(S(s), col);
}

static int64_t
db_sq_col_int64(struct db_stmt *s, int col)
{
	return sqlite3_column_int64(S(s), col);
}

static const char *
db_sq_col_text(struct db_stmt *s, int col)
{
	return (const char *)sqlite3_column_text(S(s), col);
}

static const void *
db_sq_col_blob(struct db_stmt *s, int col)
{
	return sqlite3_column_blob(S(s), col);
}

static int
db_sq_col_bytes(struct db_stmt *s, int col)
{
	return sqlite3_column_bytes(S(s), col);
}

static const struct db_ops db_sq_ops = {
	.name = "sqlite",
	.close = db_sq_close,
	.prepare = db_sq_prepare,
	.exec = db_sq_exec,
	.changes = db_sq_changes,
	.last_insert_id = db_sq_last_insert_id,
	.errmsg = db_sq_errmsg,
	.errcode = db_sq_errcode,
	.in_transaction = db_sq_in_transaction,
	.step = db_sq_step,
	.reset = db_sq_reset,
	.clear_bindings = db_sq_clear_bindings,
	.finalize = db_sq_finalize,
	.param_count = db_sq_param_count,
	.bind_int64 = db_sq_bind_int64,
	.bind_text = db_sq_bind_text,
	.bind_blob = db_sq_bind_blob,
	.bind_null = db_sq_bind_null,
	.col_count = db_sq_col_count,
	.col_name = db_sq_col_name,
	.col_type = db_sq_col_type,
	.col_int64 = db_sq_col_int64,
	.col_text = db_sq_col_text,
	.col_blob = db_sq_col_blob,
	.col_bytes = db_sq_col_bytes,
};

int
db_sqlite_open(const char *path, struct db **db_r)
{
	struct db_sq *d = xcalloc(1, sizeof(*d));
	int rc;

	d->base.ops = &db_sq_ops;
	/* One connection per thread: SQLite's own mutexes are not needed. */
	rc = sqlite3_open_v2(path, &d->h, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (d->h == NULL) {
		free(d);
		*db_r = NULL;
		return rc != SQLITE_OK ? rc : SQLITE_NOMEM;
	}
	*db_r = &d->base;
	if (rc == SQLITE_OK)
		sqlite3_extended_result_codes(d->h, 1);
	return rc;
}

int
db_is_sqlite(const struct db *db)
{
	return db != NULL && db->ops == &db_sq_ops;
}

int
db_sqlite_busy_timeout(struct db *db, int ms)
{
	return sqlite3_busy_timeout(H(db), ms);
}

int
db_sqlite_checkpoint(struct db *db, int truncate, int *nlog, int *nckpt)
{
	return sqlite3_wal_checkpoint_v2(H(db), NULL, truncate ?
	    SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE, nlog,
	    nckpt);
}

int
db_sqlite_system_errno(struct db *db)
{
	return sqlite3_system_errno(H(db));
}

const char *
db_codestr(int code)
{
	return sqlite3_errstr(code);
}

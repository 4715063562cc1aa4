/*
 * db.h - the store's statement driver (store/ only): one small vtable
 * behind which an SQL engine runs the store's statements, the way
 * OpenSMTPD puts its queue and table backends behind theirs.  The store's
 * domain files prepare, bind, step and read columns through it and never
 * name an engine; db_sqlite.c is the embedded default, and the
 * PostgreSQL driver (issue 18, docs/postgresql-plan.md) plugs in here.
 *
 * The codes are SQLite's numbers, so the SQLite driver passes them
 * through and a second driver maps its own errors onto them.  SQL text
 * uses ?N parameters; a driver whose engine spells them otherwise
 * rewrites them when it prepares.  Text binds are always copied.
 */
#ifndef PD_STORE_DB_H
#define PD_STORE_DB_H

#include <stddef.h>
#include <stdint.h>

enum db_code {
	DB_OK = 0,
	DB_ERROR = 1,
	DB_BUSY = 5,		/* locked by another connection: try later */
	DB_IOERR = 10,
	DB_FULL = 13,		/* the disk (or the database) is full */
	DB_CONSTRAINT = 19,	/* a UNIQUE, CHECK or foreign key refused */
	DB_ROW = 100,		/* db_step: a row is ready */
	DB_DONE = 101,		/* db_step: no more rows */
};

enum db_type {
	DB_INTEGER = 1, DB_FLOAT = 2, DB_TEXT = 3, DB_BLOB = 4, DB_NULL = 5,
};

struct db;
struct db_stmt;

struct db_ops {
	const char *name;			/* "sqlite", "postgresql" */
	void (*close)(struct db *db);
	int (*prepare)(struct db *db, const char *sql, struct db_stmt **s_r);
	int (*exec)(struct db *db, const char *sql);
	int64_t (*changes)(struct db *db);
	int64_t (*last_insert_id)(struct db *db);
	const char *(*errmsg)(struct db *db);
	int (*errcode)(struct db *db);		/* extended, for logs */
	int (*in_transaction)(struct db *db);
	/* statements */
	int (*step)(struct db_stmt *s);
	int (*reset)(struct db_stmt *s);
	int (*clear_bindings)(struct db_stmt *s);
	int (*finalize)(struct db_stmt *s);
	int (*param_count)(struct db_stmt *s);
	int (*bind_int64)(struct db_stmt *s, int idx, int64_t v);
	int (*bind_text)(struct db_stmt *s, int idx, const char *v, int len);
	int (*bind_blob)(struct db_stmt *s, int idx, const void *v,
	    size_t len);
	int (*bind_null)(struct db_stmt *s, int idx);
	int (*col_count)(struct db_stmt *s);
	const char *(*col_name)(struct db_stmt *s, int col);
	int (*col_type)(struct db_stmt *s, int col);
	int64_t (*col_int64)(struct db_stmt *s, int col);
	const char *(*col_text)(struct db_stmt *s, int col);
	const void *(*col_blob)(struct db_stmt *s, int col);
	int (*col_bytes)(struct db_stmt *s, int col);
};

/* Every driver's connection and statement start with these. */
struct db {
	const struct db_ops *ops;
};
struct db_stmt {
	const struct db_ops *ops;
};

/* ---- the embedded default (db_sqlite.c) ---- */

/* Open (creating) the database file at path: DB_OK and *db_r, or a code
 * with *db_r set for db_errmsg (close it) or NULL (out of memory). */
int db_sqlite_open(const char *path, struct db **db_r);
/* What only SQLite has: the busy timeout (ms), a WAL checkpoint (truncate
 * 1: TRUNCATE, 0: PASSIVE; frames in the log and checkpointed), and the
 * OS errno of the last failure.  Called on an SQLite connection only. */
int db_sqlite_busy_timeout(struct db *db, int ms);
int db_sqlite_checkpoint(struct db *db, int truncate, int *nlog,
    int *nckpt);
int db_sqlite_system_errno(struct db *db);
/* 1 if db is an SQLite connection. */
int db_is_sqlite(const struct db *db);
/* The message of a code (sqlite3_errstr), for failures with no db. */
const char *db_codestr(int code);

/* ---- PostgreSQL (db_pg.c, issue 18) ---- */

/*
 * Connect with a libpq connection string or URI ("host=/run/pg
 * dbname=postdoc", "postgresql://u@db1/postdoc"): DB_OK and *db_r, or
 * DB_ERROR (the DSN does not parse) or DB_IOERR (no server there, or it
 * refused us) with *db_r NULL and err (PD_ERRLEN) naming the host or
 * socket and libpq's reason, never the DSN (it may hold a password).
 * What differs from SQLite behind the same calls: SQL errors surface at
 * the first db_step, not at db_prepare (nothing is sent before);
 * db_last_insert_id is -1 (use INSERT ... RETURNING id); a bare '?' is
 * refused (only ?N); booleans read as 0/1, bytea as blobs; errcode is
 * db.h's code mapped from the SQLSTATE, and errmsg ends in [SQLSTATE].
 */
int db_pg_open(const char *dsn, struct db **db_r, char *err);
/* A PostgreSQL connection that failed with DB_IOERR, connected again
 * with the same parameters: DB_OK, or DB_IOERR with err as db_pg_open's.
 * A transaction open when it broke is gone: the server rolled it back. */
int db_pg_reconnect(struct db *db, char *err);
/* 1 if db is a PostgreSQL connection. */
int db_is_pg(const struct db *db);

/* ---- dispatch: the calls the store's files make ---- */

static inline void db_close(struct db *db)
{ if (db != NULL) db->ops->close(db); }
static inline int db_prepare(struct db *db, const char *sql,
    struct db_stmt **s_r)
{ return db->ops->prepare(db, sql, s_r); }
static inline int db_exec(struct db *db, const char *sql)
{ return db->ops->exec(db, sql); }
static inline int64_t db_changes(struct db *db)
{ return db->ops->changes(db); }
static inline int64_t db_last_insert_id(struct db *db)
{ return db->ops->last_insert_id(db); }
static inline const char *db_errmsg(struct db *db)
{ return db->ops->errmsg(db); }
static inline int db_errcode(struct db *db)
{ return db->ops->errcode(db); }
static inline int db_in_transaction(struct db *db)
{ return db->ops->in_transaction(db); }

static inline int db_step(struct db_stmt *s)
{ return s->ops->step(s); }
static inline int db_reset(struct db_stmt *s)
{ return s->ops->reset(s); }
static inline int db_clear_bindings(struct db_stmt *s)
{ return s->ops->clear_bindings(s); }
static inline int db_finalize(struct db_stmt *s)
{ return s != NULL ? s->ops->finalize(s) : DB_OK; }
static inline int db_param_count(struct db_stmt *s)
{ return s->ops->param_count(s); }
static inline int db_bind_int64(struct db_stmt *s, int idx, int64_t v)
{ return s->ops->bind_int64(s, idx, v); }
static inline int db_bind_text(struct db_stmt *s, int idx, const char *v,
    int len)
{ return s->ops->bind_text(s, idx, v, len); }
static inline int db_bind_blob(struct db_stmt *s, int idx, const void *v,
    size_t len)
{ return s->ops->bind_blob(s, idx, v, len); }
static inline int db_bind_null(struct db_stmt *s, int idx)
{ return s->ops->bind_null(s, idx); }
static inline int db_col_count(struct db_stmt *s)
{ return s->ops->col_count(s); }
static inline const char *db_col_name(struct db_stmt *s, int col)
{ return s->ops->col_name(s, col); }
static inline int db_col_type(struct db_stmt *s, int col)
{ return s->ops->col_type(s, col); }
static inline int64_t db_col_int64(struct db_stmt *s, int col)
{ return s->ops->col_int64(s, col); }
static inline int db_col_int(struct db_stmt *s, int col)
{ return (int)s->ops->col_int64(s, col); }
static inline const char *db_col_text(struct db_stmt *s, int col)
{ return s->ops->col_text(s, col); }
static inline const void *db_col_blob(struct db_stmt *s, int col)
{ return s->ops->col_blob(s, col); }
static inline int db_col_bytes(struct db_stmt *s, int col)
{ return s->ops->col_bytes(s, col); }

#endif

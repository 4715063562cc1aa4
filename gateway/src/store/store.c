/*
 * store.c - the SQLite connection behind store.h: open (WAL, synchronous,
 * foreign keys, then store_schema.c's migrations), close, the statement
 * cache and the helpers the domain files share (store_int.h), and
 * transactions.  It holds no domain's query: those live in
 * store_<domain>.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "store_int.h"
#include "lib/util.h"

/* How long a statement waits for a lock (PRAGMA busy_timeout below). */
#define STORE_BUSY_MS 10000

/* One connection and its cache of prepared single-row statements. */
struct store {
	struct db *db;
	struct db_stmt *stmt[S_COUNT];
	int nest;		/* store_begin calls inside an open transaction */
	int sp_depth;		/* store_sp_begin calls not yet ended */
	int sp_began;		/* the depth whose sp_begin said BEGIN (0: none) */
};

/* ---- statements ---- */

/* The cached statement of slot id, prepared from sql[id] (the calling
 * domain's table) on first use; reset and with no bindings. */
struct db_stmt *
store_stmt(struct store *st, enum store_stmt_id id, const char *const *sql,
    char *err)
{
	struct db_stmt *s = st->stmt[id];

	if (s == NULL) {
		/* A slot of another domain's table: our bug, not the data's. */
		if (sql[id] == NULL)
			pd_fatal("store_stmt: no SQL for statement %d",
			    (int)id);
		if (db_prepare(st->db, sql[id], &s) != DB_OK) {
			store_fail(st, err, "prepare");
			return NULL;
		}
		st->stmt[id] = s;
	}
	db_reset(s);
	db_clear_bindings(s);
	return s;
}

/* Prepare a one-off statement (lists: callbacks may re-enter the store). */
struct db_stmt *
store_stmt_once(struct store *st, const char *sql, char *err)
{
	struct db_stmt *s = NULL;

	if (db_prepare(st->db, sql, &s) != DB_OK) {
		store_fail(st, err, "prepare");
		return NULL;
	}
	return s;
}

/* Bind parameter idx (of the statement's n) by its format letter; the
 * argument of a parameter past n is consumed and skipped. */
static int
store_cx_bind(struct db_stmt *s, int idx, int n, char f, va_list *ap)
{
	int64_t v;
	const char *t;

	if (f == 'i' || f == 'I') {
		v = va_arg(*ap, int64_t);
		if (idx > n)
			return DB_OK;
		return f == 'i' ? db_bind_int64(s, idx, v) :
		    store_bind_id(s, idx, v);
	}
	t = va_arg(*ap, const char *);
	return idx > n ? DB_OK : store_bind_text(s, idx, t);
}

/*
 * These statements are one-offs (prepared per call): the ledger's rate
 * is that of people clicking, and campaigns prepare a handful per
 * recipient.
 */
struct db_stmt *
store_cx(struct store *st, const char *sql, char *err, const char *fmt, ...)
{
	struct db_stmt *s = store_stmt_once(st, sql, err);
	va_list ap;
	int i, n, rc = DB_OK;

	if (s == NULL)
		return NULL;
	n = db_param_count(s);
	va_start(ap, fmt);
	for (i = 0; fmt[i] != '\0' && rc == DB_OK; i++)
		rc = store_cx_bind(s, i + 1, n, fmt[i], &ap);
	va_end(ap);
	if (rc != DB_OK) {
		store_fail(st, err, "bind");
		db_finalize(s);
		return NULL;
	}
	return s;
}

/* Run to completion; 0 or -1.  changes_r: rows changed. */
int
store_cx_exec(struct store *st, struct db_stmt *s, int *changes_r, char *err,
    const char *what)
{
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW)
		;
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail(st, err, what);
	if (changes_r != NULL)
		*changes_r = db_changes(st->db);
	return 0;
}

/* First column of the first row as an int64: 1 found, 0 none, -1. */
int
store_cx_int(struct store *st, struct db_stmt *s, int64_t *v_r, char *err,
    const char *what)
{
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW && v_r != NULL)
		*v_r = db_col_int64(s, 0);
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	if (rc == DB_DONE)
		return 0;
	return store_fail(st, err, what);
}

/*
 * Step a statement that returns no rows (or whose rows we ignore) and
 * reset it, so no cached statement holds a WAL read snapshot open.
 */
int
store_exec_stmt(struct store *st, struct db_stmt *s, char *err,
    const char *what)
{
	int rc = db_step(s);

	if (rc != DB_DONE && rc != DB_ROW) {
		pd_err(err, "%s: %s", what, db_errmsg(st->db));
		db_reset(s);
		return -1;
	}
	db_reset(s);
	return 0;
}

/*
 * Step an INSERT ... RETURNING id once: DB_DONE with *id_r set (may be
 * NULL) when the row went in, else the step's code.  RETURNING, not the
 * connection's last insert id, so one text serves both engines (SQLite
 * 3.35+, PostgreSQL).  The caller resets or finalizes s.
 */
int
store_step_id(struct db_stmt *s, int64_t *id_r)
{
	int rc = db_step(s);

	if (rc != DB_ROW)
		return rc;
	if (id_r != NULL)
		*id_r = db_col_int64(s, 0);
	return DB_DONE;
}

/* Run a single-id lookup: 1 found (*id_r set), 0 not found, -1 error. */
int
store_lookup_id(struct store *st, struct db_stmt *s, int64_t *id_r, char *err,
    const char *what)
{
	int rc = db_step(s);

	if (rc == DB_ROW) {
		if (id_r != NULL)
			*id_r = db_col_int64(s, 0);
		db_reset(s);
		return 1;
	}
	if (rc == DB_DONE) {
		db_reset(s);
		return 0;
	}
	pd_err(err, "%s: %s", what, db_errmsg(st->db));
	db_reset(s);
	return -1;
}

/* Step a statement whose single row holds up to three integers. */
int
store_ints(struct store *st, struct db_stmt *s, int64_t *a, int64_t *b,
    int64_t *c, char *err, const char *what)
{
	int rc = db_step(s);

	if (rc == DB_ROW) {
		if (a != NULL)
			*a = db_col_int64(s, 0);
		if (b != NULL)
			*b = db_col_int64(s, 1);
		if (c != NULL)
			*c = db_col_int64(s, 2);
	}
	db_reset(s);
	if (rc != DB_ROW)
		return store_fail(st, err, what);
	return 0;
}

int
store_exec(struct store *st, const char *sql, char *err, const char *what)
{
	if (db_exec(st->db, sql) != DB_OK) {
		pd_err(err, "%s: %s", what, db_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* ---- values ---- */

int
store_fail(struct store *st, char *err, const char *what)
{
	pd_err(err, "%s: %s", what, db_errmsg(st->db));
	return -1;
}

/* Copy a text column into a fixed buffer, cut at a UTF-8 boundary. */
void
store_col_copy(char *dst, size_t dstlen, struct db_stmt *s, int col)
{
	const char *t = db_col_text(s, col);
	size_t n;

	if (t == NULL) {
		dst[0] = '\0';
		return;
	}
	n = (size_t)db_col_bytes(s, col);
	if (n >= dstlen) {
		n = dstlen - 1;
		while (n > 0 && (t[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, t, n);
	dst[n] = '\0';
}

int
store_bind_text(struct db_stmt *s, int idx, const char *v)
{
	if (v == NULL)
		return db_bind_null(s, idx);
	return db_bind_text(s, idx, v, -1);
}

/* Ids of 0 mean "none" to callers; in SQL that is NULL. */
int
store_bind_id(struct db_stmt *s, int idx, int64_t id)
{
	if (id == 0)
		return db_bind_null(s, idx);
	return db_bind_int64(s, idx, id);
}

void
store_lower(char *dst, size_t dstlen, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < dstlen && src[i] != '\0'; i++) {
		char c = src[i];

		dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	dst[i] = '\0';
}

/* Queue rows name a blob: accept only what blob.c would accept. */
int
store_sha_valid(const char *sha)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((sha[i] >= '0' && sha[i] <= '9') ||
		    (sha[i] >= 'a' && sha[i] <= 'f')))
			return 0;
	return sha[64] == '\0';
}

/* ---- connection ---- */

/* WAL lets readers (CLI, RCPT lookups) run while intake writes. */
static int
store_set_wal(struct store *st, char *err)
{
	struct db_stmt *s = store_stmt_once(st, "PRAGMA journal_mode=WAL", err);
	char mode[16] = "";
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW)
		COPY_COL(mode, s, 0);
	db_finalize(s);
	if (rc != DB_ROW)
		return store_fail(st, err, "PRAGMA journal_mode");
	if (strcmp(mode, "wal") != 0) {
		pd_err(err, "PRAGMA journal_mode: got \"%s\", need wal", mode);
		return -1;
	}
	return 0;
}

static int
store_configure(struct store *st, const char *sync_mode, char *err)
{
	const char *sync = "PRAGMA synchronous=FULL";

	/* NORMAL in WAL mode can lose the last commits on power loss, so it
	 * is only used when the operator asked for it explicitly. */
	if (sync_mode != NULL && strcmp(sync_mode, "normal") == 0)
		sync = "PRAGMA synchronous=NORMAL";
	if (db_sqlite_busy_timeout(st->db, STORE_BUSY_MS) != DB_OK)
		return store_fail(st, err, "busy_timeout");
	if (store_exec(st, "PRAGMA busy_timeout=10000", err, "busy_timeout")
	    != 0 || store_set_wal(st, err) != 0 ||
	    store_exec(st, sync, err, "PRAGMA synchronous") != 0 ||
	    store_exec(st, "PRAGMA foreign_keys=ON", err,
	    "PRAGMA foreign_keys") != 0)
		return -1;
	return 0;
}

static int
store_make_parent(const char *db_path, char *err)
{
	char dir[4096];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", db_path) >= (int)sizeof(dir)) {
		pd_err(err, "database path too long");
		return -1;
	}
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (pd_mkdirs(dir, 0750) != 0) {
		pd_err(err, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int
store_open(const char *db_path, const char *sync_mode, struct store **st_r,
    char *err)
{
	struct store *st;
	int rc;

	*st_r = NULL;
	if (store_make_parent(db_path, err) != 0)
		return -1;
	st = xcalloc(1, sizeof(*st));
	rc = db_sqlite_open(db_path, &st->db);
	if (rc != DB_OK) {
		pd_err(err, "%s: %s", db_path, st->db != NULL ?
		    db_errmsg(st->db) : db_codestr(rc));
		store_close(&st);
		return -1;
	}
	/* Before the WAL exists: SQLite gives -wal and -shm the database
	 * file's owner when it runs as root. */
	pd_own_path(db_path);
	if (store_configure(st, sync_mode, err) != 0 ||
	    store_migrate(st, err) != 0) {
		store_close(&st);
		return -1;
	}
	*st_r = st;
	return 0;
}

void
store_close(struct store **stp)
{
	struct store *st;
	int i;

	if (stp == NULL || *stp == NULL)
		return;
	st = *stp;
	for (i = 0; i < S_COUNT; i++)
		db_finalize(st->stmt[i]);
	db_close(st->db);
	free(st);
	*stp = NULL;
}

int64_t
store_wal_size(const char *db_path)
{
	char wal[4200];
	struct stat sb;

	snprintf(wal, sizeof(wal), "%s-wal", db_path);
	return stat(wal, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

/*
 * SQLite reuses the WAL from its start once every frame is back in the
 * database and no reader needs them, but never makes the file shorter; a
 * long reader (a backup, an export) lets it grow without end.  PASSIVE
 * first copies what it can without blocking anyone; only when nothing
 * is held back does TRUNCATE run, with no busy wait, so it holds the
 * writer lock for the few frames committed meanwhile and a commit
 * waiting behind it is not held up.
 */
int
store_wal_truncate(struct store *st, char *err)
{
	int nlog = 0, nckpt = 0, rc;

	rc = db_sqlite_checkpoint(st->db, 0, &nlog, &nckpt);
	if ((rc & 0xff) == DB_BUSY || (rc == DB_OK && nckpt < nlog))
		return 1;	/* a reader holds frames back */
	if (rc != DB_OK)
		return store_fail(st, err, "wal_checkpoint(PASSIVE)");
	db_sqlite_busy_timeout(st->db, 0);
	rc = db_sqlite_checkpoint(st->db, 1, &nlog, &nckpt);
	db_sqlite_busy_timeout(st->db, STORE_BUSY_MS);
	if ((rc & 0xff) == DB_BUSY)
		return 1;
	if (rc != DB_OK)
		return store_fail(st, err, "wal_checkpoint(TRUNCATE)");
	return 0;
}

/* The one place the store asks which engine runs (store_int.h). */
int
store_on_pg(struct store *st)
{
	return strcmp(st->db->ops->name, "postgresql") == 0;
}

/* For store_privacy.c (store_int.h): the same connection, same thread. */
struct db *
store_db(struct store *st)
{
	return st->db;
}

/* ---- transactions ---- */

/*
 * Inside a transaction already open on this connection (a service that
 * records a review and queues the mail it sends in one savepoint),
 * begin/commit/rollback nest as a savepoint, so the caller's outcome
 * decides for both.
 */
int
store_begin(struct store *st, char *err)
{
	if (db_in_transaction(st->db)) {
		if (store_exec(st, "SAVEPOINT store_nest", err, "begin") != 0)
			return -1;
		st->nest++;
		return 0;
	}
	/* IMMEDIATE takes the write lock now, so a delivery never fails
	 * half-way with DB_BUSY on its first write.  PostgreSQL has no
	 * database write lock: its writers take row locks as they go, and
	 * where the store relied on the write lock to exclude the others
	 * (docs/postgresql-plan.md, step 4) it must lock rows itself. */
	return store_exec(st, store_on_pg(st) ? "BEGIN" : "BEGIN IMMEDIATE",
	    err, "begin");
}

int
store_commit(struct store *st, char *err)
{
	/* A failed RELEASE leaves the savepoint for the caller's
	 * store_rollback, as a failed COMMIT leaves the transaction (the
	 * committer reads the error, disk full or not, before it rolls
	 * back). */
	if (st->nest > 0) {
		if (store_exec(st, "RELEASE store_nest", err, "commit") != 0)
			return -1;
		st->nest--;
		return 0;
	}
	return store_exec(st, "COMMIT", err, "commit");
}

void
store_rollback(struct store *st)
{
	if (st->nest > 0) {
		st->nest--;
		db_exec(st->db, "ROLLBACK TO store_nest; RELEASE store_nest");
		return;
	}
	if (db_in_transaction(st->db))
		db_exec(st->db, "ROLLBACK");
}

int
store_full(struct store *st)
{
	int code = db_errcode(st->db) & 0xff;
	int e = db_is_sqlite(st->db) ? db_sqlite_system_errno(st->db) : 0;

	/* A write error SQLite did not map to DB_FULL (fsync, say). */
	return code == DB_FULL || (code == DB_IOERR &&
	    (e == ENOSPC || e == EDQUOT));
}

/* One delivery inside a group commit's transaction: its rows stand or
 * fall together without taking the rest of the batch with them. */
int
store_delivery_begin(struct store *st, char *err)
{
	return store_exec(st, "SAVEPOINT delivery", err, "savepoint");
}

int
store_delivery_end(struct store *st, int ok, char *err)
{
	if (ok)
		return store_exec(st, "RELEASE delivery", err, "release");
	db_exec(st->db, "ROLLBACK TO delivery; RELEASE delivery");
	return 0;
}

/*
 * Multi-statement operations (dossier create, close) run in a savepoint:
 * atomic on their own, and nested correctly inside a caller's BEGIN.
 * Outside a transaction SQLite's SAVEPOINT begins one; PostgreSQL's is
 * refused (25P01, "SAVEPOINT can only be used in transaction blocks"),
 * so there the outermost one is a BEGIN and its end a COMMIT.
 */
int
store_sp_begin(struct store *st, char *err)
{
	if (store_on_pg(st) && !db_in_transaction(st->db)) {
		if (store_exec(st, "BEGIN", err, "savepoint") != 0)
			return -1;
		st->sp_began = ++st->sp_depth;
		return 0;
	}
	if (store_exec(st, "SAVEPOINT store_op", err, "savepoint") != 0)
		return -1;
	st->sp_depth++;
	return 0;
}

int
store_sp_end(struct store *st, int ok, char *err)
{
	if (st->sp_began > 0 && st->sp_began == st->sp_depth) {
		st->sp_began = 0;
		st->sp_depth--;
		if (ok && store_exec(st, "COMMIT", err, "commit") == 0)
			return 0;
		db_exec(st->db, "ROLLBACK");
		return -1;
	}
	st->sp_depth--;
	if (ok)
		return store_exec(st, "RELEASE store_op", err, "release");
	db_exec(st->db, "ROLLBACK TO store_op; RELEASE store_op");
	return -1;
}

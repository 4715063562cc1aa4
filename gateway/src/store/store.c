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

#include <sqlite3.h>

#include "store.h"
#include "store_int.h"
#include "lib/util.h"

/* How long a statement waits for a lock (PRAGMA busy_timeout below). */
#define STORE_BUSY_MS 10000

/* One connection and its cache of prepared single-row statements. */
struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	int nest;		/* store_begin calls inside an open transaction */
};

/* ---- statements ---- */

/* The cached statement of slot id, prepared from sql[id] (the calling
 * domain's table) on first use; reset and with no bindings. */
sqlite3_stmt *
store_stmt(struct store *st, enum store_stmt_id id, const char *const *sql,
    char *err)
{
	sqlite3_stmt *s = st->stmt[id];

	if (s == NULL) {
		/* A slot of another domain's table: our bug, not the data's. */
		if (sql[id] == NULL)
			pd_fatal("store_stmt: no SQL for statement %d",
			    (int)id);
		if (sqlite3_prepare_v2(st->db, sql[id], -1, &s,
		    NULL) != SQLITE_OK) {
			store_fail(st, err, "prepare");
			return NULL;
		}
		st->stmt[id] = s;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Prepare a one-off statement (lists: callbacks may re-enter the store). */
sqlite3_stmt *
store_stmt_once(struct store *st, const char *sql, char *err)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_fail(st, err, "prepare");
		return NULL;
	}
	return s;
}

/* Bind parameter idx (of the statement's n) by its format letter; the
 * argument of a parameter past n is consumed and skipped. */
static int
store_cx_bind(sqlite3_stmt *s, int idx, int n, char f, va_list *ap)
{
	int64_t v;
	const char *t;

	if (f == 'i' || f == 'I') {
		v = va_arg(*ap, int64_t);
		if (idx > n)
			return SQLITE_OK;
		return f == 'i' ? sqlite3_bind_int64(s, idx, v) :
		    store_bind_id(s, idx, v);
	}
	t = va_arg(*ap, const char *);
	return idx > n ? SQLITE_OK : store_bind_text(s, idx, t);
}

/*
 * These statements are one-offs (prepared per call): the ledger's rate
 * is that of people clicking, and campaigns prepare a handful per
 * recipient.
 */
sqlite3_stmt *
store_cx(struct store *st, const char *sql, char *err, const char *fmt, ...)
{
	sqlite3_stmt *s = store_stmt_once(st, sql, err);
	va_list ap;
	int i, n, rc = SQLITE_OK;

	if (s == NULL)
		return NULL;
	n = sqlite3_bind_parameter_count(s);
	va_start(ap, fmt);
	for (i = 0; fmt[i] != '\0' && rc == SQLITE_OK; i++)
		rc = store_cx_bind(s, i + 1, n, fmt[i], &ap);
	va_end(ap);
	if (rc != SQLITE_OK) {
		store_fail(st, err, "bind");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

/* Run to completion; 0 or -1.  changes_r: rows changed. */
int
store_cx_exec(struct store *st, sqlite3_stmt *s, int *changes_r, char *err,
    const char *what)
{
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, err, what);
	if (changes_r != NULL)
		*changes_r = sqlite3_changes(st->db);
	return 0;
}

/* First column of the first row as an int64: 1 found, 0 none, -1. */
int
store_cx_int(struct store *st, sqlite3_stmt *s, int64_t *v_r, char *err,
    const char *what)
{
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && v_r != NULL)
		*v_r = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, err, what);
}

/*
 * Step a statement that returns no rows (or whose rows we ignore) and
 * reset it, so no cached statement holds a WAL read snapshot open.
 */
int
store_exec_stmt(struct store *st, sqlite3_stmt *s, char *err,
    const char *what)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		pd_err(err, "%s: %s", what, sqlite3_errmsg(st->db));
		sqlite3_reset(s);
		return -1;
	}
	sqlite3_reset(s);
	return 0;
}

/* Run a single-id lookup: 1 found (*id_r set), 0 not found, -1 error. */
int
store_lookup_id(struct store *st, sqlite3_stmt *s, int64_t *id_r, char *err,
    const char *what)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW) {
		if (id_r != NULL)
			*id_r = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		return 1;
	}
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return 0;
	}
	pd_err(err, "%s: %s", what, sqlite3_errmsg(st->db));
	sqlite3_reset(s);
	return -1;
}

/* Step a statement whose single row holds up to three integers. */
int
store_ints(struct store *st, sqlite3_stmt *s, int64_t *a, int64_t *b,
    int64_t *c, char *err, const char *what)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW) {
		if (a != NULL)
			*a = sqlite3_column_int64(s, 0);
		if (b != NULL)
			*b = sqlite3_column_int64(s, 1);
		if (c != NULL)
			*c = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return store_fail(st, err, what);
	return 0;
}

int
store_exec(struct store *st, const char *sql, char *err, const char *what)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		pd_err(err, "%s: %s", what, msg != NULL ? msg :
		    sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* ---- values ---- */

int
store_fail(struct store *st, char *err, const char *what)
{
	pd_err(err, "%s: %s", what, sqlite3_errmsg(st->db));
	return -1;
}

/* Copy a text column into a fixed buffer, cut at a UTF-8 boundary. */
void
store_col_copy(char *dst, size_t dstlen, sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	size_t n;

	if (t == NULL) {
		dst[0] = '\0';
		return;
	}
	n = (size_t)sqlite3_column_bytes(s, col);
	if (n >= dstlen) {
		n = dstlen - 1;
		while (n > 0 && (t[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, t, n);
	dst[n] = '\0';
}

int
store_bind_text(sqlite3_stmt *s, int idx, const char *v)
{
	if (v == NULL)
		return sqlite3_bind_null(s, idx);
	return sqlite3_bind_text(s, idx, v, -1, SQLITE_TRANSIENT);
}

/* Ids of 0 mean "none" to callers; in SQL that is NULL. */
int
store_bind_id(sqlite3_stmt *s, int idx, int64_t id)
{
	if (id == 0)
		return sqlite3_bind_null(s, idx);
	return sqlite3_bind_int64(s, idx, id);
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
	sqlite3_stmt *s = store_stmt_once(st, "PRAGMA journal_mode=WAL", err);
	char mode[16] = "";
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		COPY_COL(mode, s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
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
	sqlite3_extended_result_codes(st->db, 1);
	if (sqlite3_busy_timeout(st->db, STORE_BUSY_MS) != SQLITE_OK)
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
	/* One connection per thread: SQLite's own mutexes are not needed. */
	rc = sqlite3_open_v2(db_path, &st->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		pd_err(err, "%s: %s", db_path, st->db != NULL ?
		    sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
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
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
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

	rc = sqlite3_wal_checkpoint_v2(st->db, NULL,
	    SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
	if ((rc & 0xff) == SQLITE_BUSY || (rc == SQLITE_OK && nckpt < nlog))
		return 1;	/* a reader holds frames back */
	if (rc != SQLITE_OK)
		return store_fail(st, err, "wal_checkpoint(PASSIVE)");
	sqlite3_busy_timeout(st->db, 0);
	rc = sqlite3_wal_checkpoint_v2(st->db, NULL,
	    SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt);
	sqlite3_busy_timeout(st->db, STORE_BUSY_MS);
	if ((rc & 0xff) == SQLITE_BUSY)
		return 1;
	if (rc != SQLITE_OK)
		return store_fail(st, err, "wal_checkpoint(TRUNCATE)");
	return 0;
}

/* For store_privacy.c (store_int.h): the same connection, same thread. */
sqlite3 *
store_sqlite(struct store *st)
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
	if (!sqlite3_get_autocommit(st->db)) {
		if (store_exec(st, "SAVEPOINT store_nest", err, "begin") != 0)
			return -1;
		st->nest++;
		return 0;
	}
	/* IMMEDIATE takes the write lock now, so a delivery never fails
	 * half-way with SQLITE_BUSY on its first write. */
	return store_exec(st, "BEGIN IMMEDIATE", err, "begin");
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
		sqlite3_exec(st->db, "ROLLBACK TO store_nest; RELEASE "
		    "store_nest", NULL, NULL, NULL);
		return;
	}
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

int
store_full(struct store *st)
{
	int code = sqlite3_extended_errcode(st->db) & 0xff;
	int e = sqlite3_system_errno(st->db);

	/* A write error SQLite did not map to SQLITE_FULL (fsync, say). */
	return code == SQLITE_FULL || (code == SQLITE_IOERR &&
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
	sqlite3_exec(st->db, "ROLLBACK TO delivery; RELEASE delivery",
	    NULL, NULL, NULL);
	return 0;
}

/*
 * Multi-statement operations (dossier create, close) run in a savepoint:
 * atomic on their own, and nested correctly inside a caller's BEGIN.
 */
int
store_sp_begin(struct store *st, char *err)
{
	return store_exec(st, "SAVEPOINT store_op", err, "savepoint");
}

int
store_sp_end(struct store *st, int ok, char *err)
{
	if (ok)
		return store_exec(st, "RELEASE store_op", err, "release");
	sqlite3_exec(st->db, "ROLLBACK TO store_op; RELEASE store_op",
	    NULL, NULL, NULL);
	return -1;
}

/*
 * test_db_pg.c - the PostgreSQL driver (db_pg.c) against a real server
 * that tests/pg-server starts in a temporary directory for this run and
 * stops at the end: ?N parameters, values of every kind there and back,
 * rows and done, changes, SQLSTATEs mapped onto db.h's codes,
 * transactions with savepoints, reset with new binds, and a server that
 * is absent or goes away.  Skips (77) only when the PostgreSQL binaries
 * are not installed, and says so.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/db.h"
#include "testlib.h"
#include "lib/util.h"

#define PG_SERVER TOP_SRCDIR "/tests/pg-server"

static char srvdir[256], srv2dir[300], dsn[512];
static struct db *db;

/* ---- the server: one for the run, started before any test ---- */

/* `tests/pg-server CMD DIR`; its stdout's first line into out (if not
 * NULL); the script's exit status. */
static int
pg_server(const char *cmd, const char *dir, char *out, size_t outlen)
{
	char line[1024];
	FILE *p;
	int st;

	snprintf(line, sizeof(line), "'%s' %s '%s'", PG_SERVER, cmd, dir);
	if ((p = popen(line, "r")) == NULL)
		return -1;
	if (out != NULL) {
		out[0] = '\0';
		if (fgets(out, (int)outlen, p) != NULL)
			out[strcspn(out, "\n")] = '\0';
	}
	while (fgets(line, sizeof(line), p) != NULL)
		;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- per test: a fresh connection (temp tables die with it) ---- */

static void
setup(void)
{
	char err[PD_ERRLEN];

	ck_assert_msg(db_pg_open(dsn, &db, err) == DB_OK, "%s", err);
}

static void
teardown(void)
{
	db_close(db);
	db = NULL;
}

static void
ex(const char *sql)
{
	ck_assert_msg(db_exec(db, sql) == DB_OK, "%s: %s", sql, db_errmsg(db));
}

static struct db_stmt *
prep(const char *sql)
{
	struct db_stmt *s = NULL;

	ck_assert_msg(db_prepare(db, sql, &s) == DB_OK, "%s: %s", sql,
	    db_errmsg(db));
	return s;
}

static void
step_is(struct db_stmt *s, int want)
{
	int rc = db_step(s);

	ck_assert_msg(rc == want, "step %d, want %d: %s", rc, want,
	    db_errmsg(db));
}

/* ---- the tests ---- */

/* ?N becomes $N; a '?' inside a literal, an identifier or a comment is
 * text and stays; a bare ? is refused at prepare. */
START_TEST(test_rewrite)
{
	struct db_stmt *s = prep("SELECT ?2 || '?' || ?1 || 'it''s ?3', "
	    "'?1' AS \"what?\" -- ?9 in a comment\n"
	    ", /* ? /* nested ?8 */ ? */ ?1");

	ck_assert_int_eq(db_param_count(s), 2);
	ck_assert_int_eq(db_bind_text(s, 1, "a", -1), DB_OK);
	ck_assert_int_eq(db_bind_text(s, 2, "b", -1), DB_OK);
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_count(s), 3);
	ck_assert_str_eq(db_col_text(s, 0), "b?ait's ?3");
	ck_assert_str_eq(db_col_text(s, 1), "?1");
	ck_assert_str_eq(db_col_name(s, 1), "what?");
	ck_assert_str_eq(db_col_text(s, 2), "a");
	step_is(s, DB_DONE);
	db_finalize(s);

	s = (struct db_stmt *)1;
	ck_assert_int_eq(db_prepare(db, "SELECT 1 WHERE 2 = ?", &s),
	    DB_ERROR);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(db_errmsg(db), "bare '?'") != NULL, "%s",
	    db_errmsg(db));
	ck_assert_int_eq(db_errcode(db), DB_ERROR);
	/* A number the SQL skips (SQLite allows it) is bound, unused. */
	s = prep("SELECT ?1, ?3");
	ck_assert_int_eq(db_param_count(s), 3);
	ck_assert_int_eq(db_bind_text(s, 1, "a", -1), DB_OK);
	ck_assert_int_eq(db_bind_text(s, 3, "c", -1), DB_OK);
	step_is(s, DB_ROW);
	ck_assert_str_eq(db_col_text(s, 1), "c");
	db_finalize(s);
	/* A bind beyond the statement's parameters is refused. */
	s = prep("SELECT ?1");
	ck_assert_int_eq(db_bind_int64(s, 2, 1), DB_ERROR);
	ck_assert_int_eq(db_bind_int64(s, 0, 1), DB_ERROR);
	db_finalize(s);
}
END_TEST

START_TEST(test_int64)
{
	static const int64_t v[] = { 0, -1, 2147483648LL, 5000000000LL,
	    INT64_MAX, INT64_MIN };
	struct db_stmt *s;
	size_t i;

	ex("CREATE TEMP TABLE n (v bigint)");
	s = prep("INSERT INTO n (v) VALUES (?1)");
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		ck_assert_int_eq(db_bind_int64(s, 1, v[i]), DB_OK);
		step_is(s, DB_DONE);
		ck_assert_int_eq(db_changes(db), 1);
		db_reset(s);
	}
	db_finalize(s);
	s = prep("SELECT v FROM n ORDER BY v");
	ck_assert_int_eq(db_col_count(s), 1);	/* described before a step */
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_type(s, 0), DB_INTEGER);
	ck_assert_int_eq(db_col_int64(s, 0), INT64_MIN);
	for (i = 0; i < 4; i++)
		step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_int64(s, 0), 5000000000LL);
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_int64(s, 0), INT64_MAX);
	step_is(s, DB_DONE);
	db_finalize(s);

	/* An int bind is int8: arithmetic beyond 2^31 needs no cast. */
	s = prep("SELECT ?1 + 1, ?1 > 2147483647, sum(x) FROM "
	    "(VALUES (?1), (2)) AS t(x)");
	ck_assert_int_eq(db_bind_int64(s, 1, 4294967296LL), DB_OK);
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_int64(s, 0), 4294967297LL);
	ck_assert_int_eq(db_col_type(s, 1), DB_INTEGER);	/* boolean */
	ck_assert_int_eq(db_col_int64(s, 1), 1);
	ck_assert_int_eq(db_col_type(s, 2), DB_INTEGER);	/* numeric */
	ck_assert_int_eq(db_col_int64(s, 2), 4294967298LL);
	db_finalize(s);
}
END_TEST

START_TEST(test_text)
{
	const char *t = "Zo\xc3\xab's \"quoted\" \xe2\x80\x94 \xe2\x9c\x93 "
	    "\xf0\x9f\x98\x80 ; DROP TABLE x; --";
	struct db_stmt *s;

	ex("CREATE TEMP TABLE x (t text NOT NULL)");
	s = prep("INSERT INTO x (t) VALUES (?1), (?2)");
	ck_assert_int_eq(db_bind_text(s, 1, t, -1), DB_OK);
	ck_assert_int_eq(db_bind_text(s, 2, "abcdef", 3), DB_OK);
	step_is(s, DB_DONE);
	ck_assert_int_eq(db_changes(db), 2);
	db_finalize(s);
	s = prep("SELECT t, length(t) FROM x WHERE t = ?1 OR t = 'abc' "
	    "ORDER BY length(t) DESC");
	ck_assert_int_eq(db_bind_text(s, 1, t, -1), DB_OK);
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_type(s, 0), DB_TEXT);
	ck_assert_str_eq(db_col_text(s, 0), t);
	ck_assert_int_eq(db_col_bytes(s, 0), (int)strlen(t));
	ck_assert_int_eq(db_col_int64(s, 1), 39);	/* characters */
	step_is(s, DB_ROW);
	ck_assert_str_eq(db_col_text(s, 0), "abc");
	step_is(s, DB_DONE);
	db_finalize(s);
}
END_TEST

START_TEST(test_null)
{
	struct db_stmt *s = prep("SELECT ?1::text, ?2::bigint, ?3::text");

	ck_assert_int_eq(db_bind_null(s, 1), DB_OK);
	ck_assert_int_eq(db_bind_text(s, 2, NULL, -1), DB_OK);
	/* ?3 never bound: NULL, as in SQLite */
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_type(s, 0), DB_NULL);
	ck_assert_ptr_null(db_col_text(s, 0));
	ck_assert_int_eq(db_col_bytes(s, 0), 0);
	ck_assert_int_eq(db_col_type(s, 1), DB_NULL);
	ck_assert_int_eq(db_col_int64(s, 1), 0);
	ck_assert_int_eq(db_col_type(s, 2), DB_NULL);
	db_finalize(s);
}
END_TEST

START_TEST(test_blob)
{
	unsigned char b[300];
	struct db_stmt *s;
	size_t i;

	for (i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)(i * 7);	/* NUL bytes included */
	ex("CREATE TEMP TABLE b (k int, d bytea)");
	s = prep("INSERT INTO b (k, d) VALUES (1, ?1), (2, ?2)");
	ck_assert_int_eq(db_bind_blob(s, 1, b, sizeof(b)), DB_OK);
	ck_assert_int_eq(db_bind_blob(s, 2, "", 0), DB_OK);
	step_is(s, DB_DONE);
	db_finalize(s);
	s = prep("SELECT d, length(d), d IS NULL FROM b ORDER BY k");
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_type(s, 0), DB_BLOB);
	ck_assert_int_eq(db_col_bytes(s, 0), (int)sizeof(b));
	ck_assert_int_eq(memcmp(db_col_blob(s, 0), b, sizeof(b)), 0);
	ck_assert_int_eq(db_col_bytes(s, 0), (int)sizeof(b));	/* again */
	ck_assert_int_eq(db_col_int64(s, 1), (int64_t)sizeof(b));
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_type(s, 0), DB_BLOB);	/* empty, not NULL */
	ck_assert_int_eq(db_col_bytes(s, 0), 0);
	ck_assert_int_eq(db_col_int64(s, 2), 0);
	step_is(s, DB_DONE);
	db_finalize(s);
}
END_TEST

/* Rows then done; a command is done at once; a step after done runs
 * the statement again (sqlite3_step's auto-reset). */
START_TEST(test_rows)
{
	struct db_stmt *s = prep("SELECT g FROM generate_series(1, ?1) g");
	int i;

	ck_assert_int_eq(db_bind_int64(s, 1, 3), DB_OK);
	for (i = 1; i <= 3; i++) {
		step_is(s, DB_ROW);
		ck_assert_int_eq(db_col_int(s, 0), i);
	}
	step_is(s, DB_DONE);
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_int(s, 0), 1);
	db_finalize(s);

	s = prep("SELECT 1 WHERE false");
	step_is(s, DB_DONE);
	db_finalize(s);
}
END_TEST

/* changes: rows of the last INSERT, UPDATE or DELETE; a SELECT leaves
 * it; RETURNING rows come back as rows and count as changes. */
START_TEST(test_changes)
{
	struct db_stmt *s;

	ex("CREATE TEMP TABLE c (id bigint GENERATED ALWAYS AS IDENTITY, "
	    "v int)");
	ex("INSERT INTO c (v) VALUES (1), (2), (3)");
	ck_assert_int_eq(db_changes(db), 3);
	s = prep("UPDATE c SET v = v + 10 WHERE v >= ?1");
	ck_assert_int_eq(db_bind_int64(s, 1, 2), DB_OK);
	step_is(s, DB_DONE);
	ck_assert_int_eq(db_changes(db), 2);
	db_finalize(s);
	s = prep("SELECT v FROM c");
	step_is(s, DB_ROW);
	db_finalize(s);
	ck_assert_int_eq(db_changes(db), 2);
	s = prep("INSERT INTO c (v) VALUES (?1) RETURNING id");
	ck_assert_int_eq(db_bind_int64(s, 1, 9), DB_OK);
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_int64(s, 0), 4);
	step_is(s, DB_DONE);
	db_finalize(s);
	ck_assert_int_eq(db_changes(db), 1);
	ck_assert_int_eq(db_last_insert_id(db), -1);
	s = prep("DELETE FROM c WHERE v = 99");
	step_is(s, DB_DONE);
	ck_assert_int_eq(db_changes(db), 0);
	db_finalize(s);
}
END_TEST

START_TEST(test_constraint)
{
	struct db_stmt *s;

	ex("CREATE TEMP TABLE u (k text PRIMARY KEY, v int NOT NULL "
	    "CHECK (v > 0))");
	ex("INSERT INTO u VALUES ('a', 1)");
	s = prep("INSERT INTO u (k, v) VALUES (?1, ?2)");
	ck_assert_int_eq(db_bind_text(s, 1, "a", -1), DB_OK);
	ck_assert_int_eq(db_bind_int64(s, 2, 1), DB_OK);
	ck_assert_int_eq(db_step(s), DB_CONSTRAINT);
	ck_assert_int_eq(db_errcode(db), DB_CONSTRAINT);
	/* One line, the constraint named, the row's values not quoted. */
	ck_assert_msg(strstr(db_errmsg(db), "duplicate key") != NULL &&
	    strstr(db_errmsg(db), "u_pkey") != NULL &&
	    strstr(db_errmsg(db), "[23505]") != NULL &&
	    strstr(db_errmsg(db), "(a)") == NULL &&
	    strchr(db_errmsg(db), '\n') == NULL, "%s", db_errmsg(db));
	db_reset(s);
	ck_assert_int_eq(db_bind_text(s, 1, "b", -1), DB_OK);
	ck_assert_int_eq(db_bind_null(s, 2), DB_OK);
	ck_assert_int_eq(db_step(s), DB_CONSTRAINT);		/* 23502 */
	db_reset(s);
	ck_assert_int_eq(db_bind_int64(s, 2, -5), DB_OK);
	ck_assert_int_eq(db_step(s), DB_CONSTRAINT);		/* 23514 */
	db_reset(s);
	ck_assert_int_eq(db_bind_int64(s, 2, 5), DB_OK);
	step_is(s, DB_DONE);
	ck_assert_int_eq(db_errcode(db), DB_OK);
	ck_assert_str_eq(db_errmsg(db), "not an error");
	db_finalize(s);
	/* An SQL error is an error, seen at the first step. */
	s = prep("SELECT nosuchcolumn FROM u");
	ck_assert_int_eq(db_step(s), DB_ERROR);
	ck_assert_msg(strstr(db_errmsg(db), "[42703]") != NULL, "%s",
	    db_errmsg(db));
	db_finalize(s);
}
END_TEST

START_TEST(test_transaction)
{
	struct db_stmt *s;

	ex("CREATE TEMP TABLE tx (v int UNIQUE)");
	ck_assert_int_eq(db_in_transaction(db), 0);
	ex("BEGIN");
	ck_assert_int_eq(db_in_transaction(db), 1);
	ex("INSERT INTO tx VALUES (1)");
	ex("SAVEPOINT d1");
	ex("INSERT INTO tx VALUES (2)");
	ex("ROLLBACK TO SAVEPOINT d1");
	ex("RELEASE SAVEPOINT d1");
	/* A failed statement fails the transaction until a ROLLBACK TO. */
	ex("SAVEPOINT d2");
	ck_assert_int_eq(db_exec(db, "INSERT INTO tx VALUES (1)"),
	    DB_CONSTRAINT);
	ck_assert_int_eq(db_in_transaction(db), 1);
	ex("ROLLBACK TO SAVEPOINT d2");
	ex("INSERT INTO tx VALUES (3)");
	ex("COMMIT");
	ck_assert_int_eq(db_in_transaction(db), 0);
	s = prep("SELECT string_agg(v::text, ',' ORDER BY v) FROM tx");
	step_is(s, DB_ROW);
	ck_assert_str_eq(db_col_text(s, 0), "1,3");
	db_finalize(s);
	ex("BEGIN; INSERT INTO tx VALUES (4); ROLLBACK");
	ck_assert_int_eq(db_in_transaction(db), 0);
}
END_TEST

/* A row another connection holds: lock_not_available is BUSY. */
START_TEST(test_busy)
{
	struct db *other = NULL;
	char err[PD_ERRLEN];
	struct db_stmt *s;

	ex("CREATE TABLE IF NOT EXISTS busy (k int PRIMARY KEY)");
	ex("INSERT INTO busy VALUES (1) ON CONFLICT DO NOTHING");
	ck_assert_msg(db_pg_open(dsn, &other, err) == DB_OK, "%s", err);
	ck_assert_int_eq(db_exec(other, "BEGIN; SELECT * FROM busy "
	    "WHERE k = 1 FOR UPDATE"), DB_OK);
	s = prep("SELECT k FROM busy WHERE k = ?1 FOR UPDATE NOWAIT");
	ck_assert_int_eq(db_bind_int64(s, 1, 1), DB_OK);
	ck_assert_int_eq(db_step(s), DB_BUSY);
	ck_assert_msg(strstr(db_errmsg(db), "[55P03]") != NULL, "%s",
	    db_errmsg(db));
	db_finalize(s);
	db_close(other);
}
END_TEST

/* reset keeps the binds and runs again; new binds give new rows;
 * clear_bindings leaves NULLs. */
START_TEST(test_reset)
{
	struct db_stmt *s = prep("SELECT ?1 * 2, ?2");

	ck_assert_int_eq(db_bind_int64(s, 1, 21), DB_OK);
	ck_assert_int_eq(db_bind_text(s, 2, "x", -1), DB_OK);
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_int64(s, 0), 42);
	db_reset(s);
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_int64(s, 0), 42);
	db_reset(s);
	ck_assert_int_eq(db_bind_int64(s, 1, 3000000000LL), DB_OK);
	ck_assert_int_eq(db_bind_text(s, 2, "y", -1), DB_OK);
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_int64(s, 0), 6000000000LL);
	ck_assert_str_eq(db_col_text(s, 1), "y");
	db_reset(s);
	db_clear_bindings(s);
	step_is(s, DB_ROW);
	ck_assert_int_eq(db_col_type(s, 0), DB_NULL);
	ck_assert_int_eq(db_col_type(s, 1), DB_NULL);
	db_finalize(s);
}
END_TEST

/* A server's notices are not the driver's to print; the session keeps
 * synchronous_commit on even when the server's default says off. */
START_TEST(test_session)
{
	struct db *other = NULL;
	char err[PD_ERRLEN], path[] = "/tmp/pd-test-pgerr-XXXXXX";
	struct db_stmt *s;
	struct stat sb;
	int fd, saved;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	saved = dup(2);
	dup2(fd, 2);
	ex("CREATE TEMP TABLE IF NOT EXISTS q (v int)");
	ex("CREATE TEMP TABLE IF NOT EXISTS q (v int)");	/* NOTICE */
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	close(fd);
	unlink(path);
	ck_assert_int_eq((int)sb.st_size, 0);

	ex("ALTER DATABASE postdoc SET synchronous_commit = off");
	ck_assert_msg(db_pg_open(dsn, &other, err) == DB_OK, "%s", err);
	ex("ALTER DATABASE postdoc RESET synchronous_commit");
	ck_assert_int_eq(db_prepare(other, "SHOW synchronous_commit", &s),
	    DB_OK);
	ck_assert_int_eq(db_step(s), DB_ROW);
	ck_assert_str_eq(db_col_text(s, 0), "on");
	db_finalize(s);
	db_close(other);
}
END_TEST

/* No server at that socket, a DSN that does not parse, a server that
 * stops under an open connection: clear errors naming where. */
START_TEST(test_down)
{
	char err[PD_ERRLEN], bad[600], dsn2[512], want[400];
	struct db *d = (struct db *)1;
	struct db_stmt *s;

	snprintf(bad, sizeof(bad), "host=%s port=1 dbname=postdoc "
	    "user=postgres", srvdir);
	ck_assert_int_eq(db_pg_open(bad, &d, err), DB_IOERR);
	ck_assert_ptr_null(d);
	snprintf(want, sizeof(want), "socket %s/.s.PGSQL.1", srvdir);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);

	ck_assert_int_eq(db_pg_open("host=/tmp port=5432 bogus=1 "
	    "password=hunter2", &d, err), DB_ERROR);
	ck_assert_msg(strstr(err, "invalid DSN") != NULL &&
	    strstr(err, "bogus") != NULL && strstr(err, "hunter2") == NULL,
	    "%s", err);

	/* A second server (main stops it if this test cannot), stopped
	 * while a connection is open: IOERR, then a reconnect once it is
	 * back; killed (a crash): IOERR at the first statement. */
	ck_assert_int_eq(pg_server("start", srv2dir, dsn2, sizeof(dsn2)), 0);
	ck_assert_msg(db_pg_open(dsn2, &d, err) == DB_OK, "%s", err);
	ck_assert_int_eq(pg_server("stop", srv2dir, NULL, 0), 0);
	ck_assert_int_eq(db_prepare(d, "SELECT 1", &s), DB_OK);
	ck_assert_int_eq(db_step(s), DB_IOERR);
	ck_assert_int_eq(db_errcode(d), DB_IOERR);
	ck_assert_msg(*db_errmsg(d) != '\0', "no message");
	snprintf(want, sizeof(want), "socket %s/.s.PGSQL.", srv2dir);
	ck_assert_int_eq(db_pg_reconnect(d, err), DB_IOERR);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);

	ck_assert_int_eq(pg_server("start", srv2dir, dsn2, sizeof(dsn2)), 0);
	ck_assert_msg(db_pg_reconnect(d, err) == DB_OK, "%s", err);
	db_reset(s);
	ck_assert_int_eq(db_step(s), DB_ROW);
	db_reset(s);
	ck_assert_int_eq(pg_server("kill", srv2dir, NULL, 0), 0);
	ck_assert_int_eq(db_step(s), DB_IOERR);
	db_finalize(s);
	db_close(d);
	ck_assert_int_eq(db_pg_open(dsn2, &d, err), DB_IOERR);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
}
END_TEST

static Suite *
db_pg_suite(void)
{
	Suite *s = suite_create("db_pg");
	TCase *tc = tcase_create("driver");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rewrite);
	tcase_add_test(tc, test_int64);
	tcase_add_test(tc, test_text);
	tcase_add_test(tc, test_null);
	tcase_add_test(tc, test_blob);
	tcase_add_test(tc, test_rows);
	tcase_add_test(tc, test_changes);
	tcase_add_test(tc, test_constraint);
	tcase_add_test(tc, test_transaction);
	tcase_add_test(tc, test_busy);
	tcase_add_test(tc, test_reset);
	tcase_add_test(tc, test_session);
	tcase_add_test(tc, test_down);
	suite_add_tcase(s, tc);
	return s;
}

/* The server is the run's fixture: started before the suite, stopped
 * and removed after it whatever the tests did (each runs in a child). */
int
main(void)
{
	char pidfile[400];
	int rc;

	snprintf(srvdir, sizeof(srvdir), "/tmp/pd-test-pg-XXXXXX");
	if (mkdtemp(srvdir) == NULL) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	rc = pg_server("start", srvdir, dsn, sizeof(dsn));
	if (rc == 77 || rc != 0) {
		tl_rmtree(srvdir);
		if (rc == 77)
			printf("SKIP: test_db_pg: the PostgreSQL server "
			    "binaries are not installed (see tests/pg-server)\n");
		else
			fprintf(stderr, "test_db_pg: tests/pg-server start "
			    "failed (%d)\n", rc);
		return rc == 77 ? 77 : EXIT_FAILURE;
	}
	snprintf(srv2dir, sizeof(srv2dir), "%s/second", srvdir);
	rc = tl_run(db_pg_suite());
	snprintf(pidfile, sizeof(pidfile), "%s/data/postmaster.pid", srv2dir);
	if (access(pidfile, F_OK) == 0)
		(void)pg_server("stop", srv2dir, NULL, 0);
	if (pg_server("stop", srvdir, NULL, 0) != 0)
		rc = EXIT_FAILURE;
	tl_rmtree(srvdir);
	return rc;
}

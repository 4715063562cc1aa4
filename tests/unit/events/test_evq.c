/*
 * test_evq.c - unit tests for store_evq.c, the SQL under the event runner:
 * a new consumer does not replay history, only public (or, for sync,
 * document.received) events fan out, event ids are never reused after
 * the newest rows were deleted (a cursor would skip them), only each
 * stream's head is due, a deferred head holds its stream and not others,
 * an erased event shows as gone, and retry.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_evq.h"
#include "store/store_int.h"
#include "testlib.h"
#include "lib/util.h"

static char tmpdir[256];
static struct store *st;
static char err[PD_ERRLEN];
static int64_t acct_id, d1, d2;

static void
setup(void)
{
	char db[512];

	tl_tmpdir(tmpdir, sizeof(tmpdir), "evq");
	snprintf(db, sizeof(db), "%s/postdoc.db", tmpdir);
	st = tl_store_open(db, "normal");
	ck_assert_msg(store_account_add(st, "acme", "any", &acct_id, err) == 0,
	    "%s", err);
	ck_assert_msg(store_dossier_create(st, acct_id, "c@example.org", "R1",
	    NULL, &d1, err) == 0, "%s", err);
	ck_assert_msg(store_dossier_create(st, acct_id, "c@example.org", "R2",
	    NULL, &d2, err) == 0, "%s", err);
}

static void
teardown(void)
{
	store_close(&st);
	tl_rmtree(tmpdir);
}

/* The event's id: the newest row (ids only grow), read with SQL both
 * engines run, where db_last_insert_id is SQLite's alone. */
static int64_t
ev(int64_t dossier, const char *kind, const char *detail)
{
	struct db_stmt *s;
	int64_t id = -1;

	ck_assert_msg(store_event_add(st, acct_id, dossier, kind, detail, err)
	    == 0, "%s", err);
	ck_assert_int_eq(db_prepare(store_db(st), "SELECT MAX(id) FROM events",
	    &s), DB_OK);
	if (db_step(s) == DB_ROW)
		id = db_col_int64(s, 0);
	db_finalize(s);
	return id;
}

static int
fanout(const char *hook)
{
	int added = -1;

	ck_assert_msg(store_evq_fanout(st, "hook", hook, strcmp(hook, "sync")
	    == 0, pd_now(), &added, err) == 0, "%s", err);
	return added;
}

static size_t
due(struct store_evq_item *it, size_t max, int64_t now)
{
	size_t n = 0;

	ck_assert_msg(store_evq_due(st, "hook", "event", now, it, max, &n,
	    err) == 0, "%s", err);
	return n;
}

START_TEST(test_no_replay_and_filters)
{
	ev(d1, "document.received", "document=1");
	ck_assert_int_eq(fanout("event"), 0);	/* cursor created at the end */
	ck_assert_int_eq(fanout("sync"), 0);
	ev(d1, "message.duplicate", "queue_id=x");	/* internal */
	ev(d1, "item.unknown", "item=payslip");		/* internal */
	ev(d1, "document.assigned", "document=2 item=id-card from=none "
	    "by=cli:ops");				/* internal */
	ev(d1, "document.received", "document=2");
	ev(0, "consent.granted", "contact=a@example.org");
	/* the dossier loop's, public since issue 14 */
	ev(d1, "message.received", "queue_id=x message=1 documents=0");
	ev(d1, "item.received", "item=id-card document=2 state=received");
	ev(d1, "document.accepted", "document=2 item=id-card by=cli:ops");
	ev(d1, "document.rejected", "document=2 item=id-card by=cli:ops "
	    "reason=The scan is cut off");
	ev(d1, "dossier.completed", "");
	ck_assert_int_eq(fanout("event"), 7);
	ck_assert_int_eq(fanout("sync"), 1);
	ck_assert_int_eq(fanout("event"), 0);	/* the cursor moved */
}
END_TEST

START_TEST(test_ids_never_reused)
{
	int64_t a, b;

	ck_assert_int_eq(fanout("event"), 0);
	a = ev(d1, "document.received", "document=1");
	ck_assert_int_eq(fanout("event"), 1);
	/* an erasure deletes the newest rows, then records its own event */
	ck_assert_int_eq(db_exec(store_db(st), "DELETE FROM events"),
	    DB_OK);
	b = ev(0, "subject.erased", "subject_hash=00");
	ck_assert_int_gt(b, a);
	ck_assert_int_eq(fanout("event"), 1);
}
END_TEST

START_TEST(test_stream_heads)
{
	struct store_evq_item it[8];
	int64_t e1, e2, e3;

	ck_assert_int_eq(fanout("event"), 0);
	e1 = ev(d1, "document.received", "document=1");
	e2 = ev(d1, "document.received", "document=2");
	e3 = ev(d2, "document.received", "document=3 stored_name=a b.pdf");
	ck_assert_int_eq(fanout("event"), 3);
	ck_assert_uint_eq(due(it, 8, pd_now()), 2);
	ck_assert_int_eq(it[0].event_id, e1);
	ck_assert_int_eq(it[1].event_id, e3);
	ck_assert_str_eq(it[1].dossier_ref, "R2");
	ck_assert_str_eq(it[1].account, "acme");
	/* e1 deferred: d1 waits behind it, d2 goes on */
	ck_assert_int_eq(store_evq_record(st, it[0].id, "pending", 1,
	    pd_now() + 60, "HTTP 500", pd_now(), err), 0);
	ck_assert_int_eq(store_evq_record(st, it[1].id, "done", 1, pd_now(),
	    "", pd_now(), err), 0);
	ck_assert_uint_eq(due(it, 8, pd_now()), 0);
	ck_assert_uint_eq(due(it, 8, pd_now() + 61), 1);
	ck_assert_int_eq(it[0].event_id, e1);
	ck_assert_uint_eq(it[0].attempts, 1);
	ck_assert_int_eq(store_evq_record(st, it[0].id, "done", 2, pd_now(),
	    "", pd_now(), err), 0);
	ck_assert_uint_eq(due(it, 8, pd_now()), 1);
	ck_assert_int_eq(it[0].event_id, e2);
	ck_assert_int_eq(it[0].gone, 0);
	/* erased before delivery: gone */
	ck_assert_int_eq(db_exec(store_db(st), "DELETE FROM events"),
	    DB_OK);
	ck_assert_uint_eq(due(it, 8, pd_now()), 1);
	ck_assert_int_eq(it[0].gone, 1);
}
END_TEST

START_TEST(test_retry_only_given_up)
{
	struct store_evq_item it[2];

	ck_assert_int_eq(fanout("event"), 0);
	ev(d1, "document.received", "document=1");
	ck_assert_int_eq(fanout("event"), 1);
	ck_assert_uint_eq(due(it, 2, pd_now()), 1);
	ck_assert_int_eq(store_evq_retry(st, it[0].id, pd_now(), err), 0);
	ck_assert_int_eq(store_evq_record(st, it[0].id, "expired", 5, pd_now(),
	    "timeout", pd_now(), err), 0);
	ck_assert_uint_eq(due(it + 1, 1, pd_now()), 0);
	ck_assert_int_eq(store_evq_retry(st, it[0].id, pd_now(), err), 1);
	ck_assert_uint_eq(due(it + 1, 1, pd_now()), 1);
	ck_assert_uint_eq(it[1].attempts, 5);
}
END_TEST

static int64_t
count_rows(void)
{
	int64_t n = -1;
	struct db_stmt *s;

	ck_assert_int_eq(db_prepare(store_db(st), "SELECT count(*)"
	    " FROM event_deliveries", &s), DB_OK);
	if (db_step(s) == DB_ROW)
		n = db_col_int64(s, 0);
	db_finalize(s);
	return n;
}

START_TEST(test_prune_settled_only)
{
	struct store_evq_item it[4];
	int64_t now = pd_now();
	int n = -1;

	ck_assert_int_eq(fanout("event"), 0);
	ev(d1, "document.received", "document=1");
	ev(d2, "document.received", "document=2");
	ev(0, "consent.granted", "contact=1");
	ck_assert_int_eq(fanout("event"), 3);
	ck_assert_uint_eq(due(it, 4, now), 3);
	ck_assert_int_eq(store_evq_record(st, it[0].id, "done", 1, now, "",
	    now - 100, err), 0);
	ck_assert_int_eq(store_evq_record(st, it[1].id, "expired", 9, now,
	    "timeout", now - 100, err), 0);
	/* it[2] stays pending, however old */
	ck_assert_msg(store_evq_prune(st, "hook", "event", now - 200, now - 200,
	    &n, err) == 0, "%s", err);
	ck_assert_int_eq(n, 0);
	ck_assert_msg(store_evq_prune(st, "hook", "event", now, now - 200, &n,
	    err) == 0, "%s", err);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(count_rows(), 2);
	ck_assert_msg(store_evq_prune(st, "other", "event", now + 9, now + 9,
	    &n, err) == 0, "%s", err);
	ck_assert_int_eq(n, 0);
	ck_assert_msg(store_evq_prune(st, "hook", "event", now + 9, now + 9,
	    &n, err) == 0, "%s", err);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(count_rows(), 1);
}
END_TEST

static Suite *
evq_suite(void)
{
	Suite *s = suite_create("evq");
	TCase *tc = tcase_create("store_evq");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_no_replay_and_filters);
	tcase_add_test(tc, test_ids_never_reused);
	tcase_add_test(tc, test_stream_heads);
	tcase_add_test(tc, test_retry_only_given_up);
	tcase_add_test(tc, test_prune_settled_only);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(evq_suite());
}

/*
 * test_notify.c - the rules of notify.c that decide *when* Postdoc
 * writes, without a store or a queue: the reminder schedule (a table of
 * schedules, invitation and reminder counts, clocks and document counts
 * -> which reminder, if any, and whether the documents were counted at
 * all), and whom a receipt may go to.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbound/notify.h"
#include "store/store.h"
#include "testlib.h"
#include "lib/util.h"

#define T0 1700000000LL		/* the first invitation */
#define DAY 86400LL

/* A document count the table dictates, and what the rule asked. */
struct counter {
	int64_t docs;
	int fail;
	int calls;
	int64_t since;
};

static int
count_cb(void *ctx, int64_t since, int64_t *n_r, char *err)
{
	struct counter *c = ctx;

	c->calls++;
	c->since = since;
	if (c->fail) {
		pd_err(err, "count failed");
		return -1;
	}
	*n_r = c->docs;
	return 0;
}

START_TEST(test_reminder_schedule)
{
	static const struct {
		const char *days;
		int64_t invitations, sent, now;
		const char *requested;
		int64_t docs;
		int want;		/* reminder number, 0 none */
		int64_t want_days;	/* when want > 0 */
		int counted;		/* the documents were counted */
	} rows[] = {
		/* the first reminder: 3 days after the invitation */
		{ "3,7", 1, 0, T0 + 3 * DAY - 1, "[]", 0, 0, 0, 0 },
		{ "3,7", 1, 0, T0 + 3 * DAY, "[]", 0, 1, 3, 1 },
		{ "3,7", 1, 0, T0 + 5 * DAY, "", 0, 1, 3, 1 },
		/* nothing asked for: one document is enough */
		{ "3,7", 1, 0, T0 + 3 * DAY, "[]", 1, 0, 0, 1 },
		{ "3,7", 1, 0, T0 + 3 * DAY, "not json", 1, 0, 0, 1 },
		/* two asked for: one is not enough, two are */
		{ "3,7", 1, 0, T0 + 3 * DAY, "[\"ID\",\"Proof\"]", 1, 1, 3, 1 },
		{ "3,7", 1, 0, T0 + 3 * DAY, "[\"ID\",\"Proof\"]", 2, 0, 0, 1 },
		{ "3,7", 1, 0, T0 + 3 * DAY, "[\"ID\",\"Proof\"]", 5, 0, 0, 1 },
		/* the second reminder: 7 days after the invitation */
		{ "3,7", 1, 1, T0 + 6 * DAY, "[]", 0, 0, 0, 0 },
		{ "3,7", 1, 1, T0 + 7 * DAY, "[]", 0, 2, 7, 1 },
		{ "3, 7", 1, 1, T0 + 7 * DAY, "[]", 0, 2, 7, 1 },
		/* the schedule is exhausted, empty, or nobody was invited */
		{ "3,7", 1, 2, T0 + 90 * DAY, "[]", 0, 0, 0, 0 },
		{ "", 1, 0, T0 + 90 * DAY, "[]", 0, 0, 0, 0 },
		{ "3,7", 0, 0, T0 + 90 * DAY, "[]", 0, 0, 0, 0 },
		/* late: the reminder owed is the next one, not a catch-up */
		{ "1,2,4", 1, 0, T0 + 30 * DAY, "[]", 0, 1, 1, 1 },
		{ "1,2,4", 1, 2, T0 + 30 * DAY, "[]", 0, 3, 4, 1 },
	};
	char err[PD_ERRLEN];
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct notify_schedule s = { .days = rows[i].days,
		    .invitations = rows[i].invitations, .invited = T0,
		    .sent = rows[i].sent, .requested = rows[i].requested };
		struct counter c = { rows[i].docs, 0, 0, 0 };
		int64_t days = -1;
		int n = notify_reminder_number(&s, rows[i].now, count_cb, &c,
		    &days, err);

		ck_assert_msg(n == rows[i].want, "row %zu: reminder %d, want "
		    "%d", i, n, rows[i].want);
		if (rows[i].want > 0)
			ck_assert_msg(days == rows[i].want_days, "row %zu: days "
			    "%lld", i, (long long)days);
		ck_assert_msg((c.calls > 0) == rows[i].counted, "row %zu: "
		    "counted %d times", i, c.calls);
		if (c.calls > 0)
			ck_assert_msg(c.since == T0, "row %zu: documents since "
			    "%lld, not since the first invitation", i,
			    (long long)c.since);
	}
}
END_TEST

START_TEST(test_reminder_count_fails)
{
	struct notify_schedule s = { .days = "3", .invitations = 1,
	    .invited = T0, .sent = 0, .requested = "[]" };
	struct counter c = { 0, 1, 0, 0 };
	char err[PD_ERRLEN] = "";
	int64_t days = 0;

	ck_assert_int_eq(notify_reminder_number(&s, T0 + 3 * DAY, count_cb,
	    &c, &days, err), -1);
	ck_assert_str_eq(err, "count failed");
}
END_TEST

START_TEST(test_receipt_vouched)
{
	static const struct {
		const char *contact, *policy, *sender;
		int want;
	} rows[] = {
		{ "ann@x.example", "contact", "ann@x.example", 1 },
		{ "Ann@X.example", "contact", "ann@x.EXAMPLE", 1 },
		{ "ann@x.example", "contact", "bob@x.example", 0 },
		{ "ann@x.example", "contact", "ann@x.example.evil", 0 },
		{ "ann@x.example", "any", "bob@y.example", 0 },
		{ "ann@x.example", "domains:x.example", "bob@x.example", 1 },
	};
	struct store_dossier d;
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		memset(&d, 0, sizeof(d));
		snprintf(d.contact, sizeof(d.contact), "%s", rows[i].contact);
		snprintf(d.sender_policy, sizeof(d.sender_policy), "%s",
		    rows[i].policy);
		ck_assert_msg(notify_vouched(&d, rows[i].sender) ==
		    rows[i].want, "row %zu", i);
	}
}
END_TEST

static Suite *
notify_suite(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("rules");

	tcase_add_test(tc, test_reminder_schedule);
	tcase_add_test(tc, test_reminder_count_fails);
	tcase_add_test(tc, test_receipt_vouched);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(notify_suite());
}

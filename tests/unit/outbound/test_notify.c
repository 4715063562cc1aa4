/*
 * test_notify.c - the rules of notify that decide *when* Postdoc writes,
 * without a store or a queue: the reminder schedule (a table of
 * schedules, reminder counts, clocks and outstanding items -> which
 * reminder, if any), whom a receipt may go to, and how dates, sizes and
 * links are written.
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

START_TEST(test_reminder_schedule)
{
	static const struct {
		const char *days;
		int64_t invitations, sent, last, outstanding, now;
		int want;		/* reminder number, 0 none */
		int64_t want_days;	/* when want > 0 */
	} rows[] = {
		/* the first reminder: 3 days after the invitation */
		{ "3,7", 1, 0, 0, 2, T0 + 3 * DAY - 1, 0, 0 },
		{ "3,7", 1, 0, 0, 2, T0 + 3 * DAY, 1, 3 },
		{ "3,7", 1, 0, 0, 1, T0 + 5 * DAY, 1, 3 },
		/* nothing required is missing: none, whatever the clock */
		{ "3,7", 1, 0, 0, 0, T0 + 3 * DAY, 0, 0 },
		{ "3,7", 1, 1, T0 + 3 * DAY, 0, T0 + 30 * DAY, 0, 0 },
		/* the second reminder: 7 days after the invitation and 4 (the
		 * gap) after the first */
		{ "3,7", 1, 1, T0 + 3 * DAY, 1, T0 + 6 * DAY, 0, 0 },
		{ "3,7", 1, 1, T0 + 3 * DAY, 1, T0 + 7 * DAY, 2, 7 },
		{ "3, 7", 1, 1, T0 + 3 * DAY, 1, T0 + 7 * DAY, 2, 7 },
		/* the first went late (day 6): the second waits the gap */
		{ "3,7", 1, 1, T0 + 6 * DAY, 1, T0 + 7 * DAY, 0, 0 },
		{ "3,7", 1, 1, T0 + 6 * DAY, 1, T0 + 10 * DAY - 1, 0, 0 },
		{ "3,7", 1, 1, T0 + 6 * DAY, 1, T0 + 10 * DAY, 2, 7 },
		/* `remind --now X` twice: the clock is X, the second waits */
		{ "3,7", 1, 1, T0 + 90 * DAY, 1, T0 + 90 * DAY, 0, 0 },
		{ "3,7", 1, 1, T0 + 90 * DAY, 1, T0 + 94 * DAY, 2, 7 },
		/* an outage: one reminder, the next one gap later, never a
		 * catch-up of everything owed */
		{ "1,2,4", 1, 0, 0, 1, T0 + 30 * DAY, 1, 1 },
		{ "1,2,4", 1, 1, T0 + 30 * DAY, 1, T0 + 30 * DAY, 0, 0 },
		{ "1,2,4", 1, 1, T0 + 30 * DAY, 1, T0 + 31 * DAY - 1, 0, 0 },
		{ "1,2,4", 1, 1, T0 + 30 * DAY, 1, T0 + 31 * DAY, 2, 2 },
		{ "1,2,4", 1, 2, T0 + 31 * DAY, 1, T0 + 32 * DAY, 0, 0 },
		{ "1,2,4", 1, 2, T0 + 31 * DAY, 1, T0 + 33 * DAY, 3, 4 },
		/* the schedule is exhausted, empty, or nobody was invited */
		{ "3,7", 1, 2, T0 + 7 * DAY, 1, T0 + 90 * DAY, 0, 0 },
		{ "", 1, 0, 0, 1, T0 + 90 * DAY, 0, 0 },
		{ "3,7", 0, 0, 0, 1, T0 + 90 * DAY, 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct notify_schedule s = { .days = rows[i].days,
		    .invitations = rows[i].invitations, .invited = T0,
		    .sent = rows[i].sent, .last = rows[i].last,
		    .outstanding = rows[i].outstanding };
		int64_t days = -1;
		int n = notify_reminder_number(&s, rows[i].now, &days);

		ck_assert_msg(n == rows[i].want, "row %zu: reminder %d, want "
		    "%d", i, n, rows[i].want);
		if (rows[i].want > 0)
			ck_assert_msg(days == rows[i].want_days, "row %zu: days "
			    "%lld", i, (long long)days);
	}
}
END_TEST

/* Dates, sizes and links written the way the reader writes them. */
START_TEST(test_words)
{
	static const struct {
		const char *day, *locale, *want;
		int rc;
	} days[] = {
		{ "2026-12-20", "fr", "20 d\xC3\xA9" "cembre 2026", 0 },
		{ "2026-12-20", "en", "20 December 2026", 0 },
		{ "2027-05-01", "fr", "1er mai 2027", 0 },
		{ "2027-08-01", "en", "1 August 2027", 0 },
		{ "2028-02-29", "fr", "29 f\xC3\xA9vrier 2028", 0 },
		{ "2026-12-20", "de", "2026-12-20", 0 },
		{ "2026-02-30", "fr", "2026-02-30", -1 },
		{ "soon", "en", "soon", -1 },
	};
	static const struct {
		int64_t n;
		const char *locale, *want;
	} sizes[] = {
		{ 5 * 1024 * 1024, "fr", "5 Mo" }, { 5 * 1024 * 1024, "en",
		"5 MB" }, { 1536 * 1024, "fr", "1,5 Mo" }, { 1536 * 1024,
		"en", "1.5 MB" }, { 500 * 1024, "en", "500 KB" }, { 12, "fr",
		"12 octets" }, { 12, "en", "12 bytes" },
	};
	static const struct {
		const char *addr, *subject, *want;
	} links[] = {
		{ "d-abc+id-card@in.example", "K-1 - ID card",
		  "mailto:d-abc+id-card@in.example?subject=K-1%20-%20ID%20card" },
		/* UTF-8 octets, '&', '+', '=', '#', '?' and '%' never leak */
		{ "d-abc@in.example", "Pi\xC3\xA8" "ce d'identit\xC3\xA9 & co+1=2#?%",
		  "mailto:d-abc@in.example?subject=Pi%C3%A8ce%20d%27identit%C3%A9"
		  "%20%26%20co%2B1%3D2%23%3F%25" },
		{ "d-abc@in.example", "", "mailto:d-abc@in.example" },
	};
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
		ck_assert_int_eq(notify_day_text(days[i].day, days[i].locale,
		    out, sizeof(out)), days[i].rc);
		ck_assert_str_eq(out, days[i].want);
	}
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		notify_size_text(sizes[i].n, sizes[i].locale, out, sizeof(out));
		ck_assert_str_eq(out, sizes[i].want);
	}
	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		ck_assert_int_eq(notify_mailto(links[i].addr, links[i].subject,
		    out, sizeof(out)), 0);
		ck_assert_str_eq(out, links[i].want);
	}
	ck_assert_int_eq(notify_mailto(links[0].addr, links[0].subject, out,
	    20), -1);
}
END_TEST

/* An item's address: the plain one when the local part would pass 64. */
START_TEST(test_item_address)
{
	struct store_dossier d;
	struct store_item it;
	char out[512];

	memset(&d, 0, sizeof(d));
	memset(&it, 0, sizeof(it));
	snprintf(d.intake_local, sizeof(d.intake_local), "d-%s",
	    "abcdefghijklmnopqrstuvwxyz");
	snprintf(it.slug, sizeof(it.slug), "id-card");
	notify_item_address("in.example", &d, &it, out, sizeof(out));
	ck_assert_str_eq(out, "d-abcdefghijklmnopqrstuvwxyz+id-card@in.example");
	notify_item_address("in.example", &d, NULL, out, sizeof(out));
	ck_assert_str_eq(out, "d-abcdefghijklmnopqrstuvwxyz@in.example");
	/* 28 + 1 + 35 = 64 octets: still the item's; 65: the plain one */
	snprintf(it.slug, sizeof(it.slug), "%035d", 0);
	notify_item_address("in.example", &d, &it, out, sizeof(out));
	ck_assert_ptr_nonnull(strchr(out, '+'));
	snprintf(it.slug, sizeof(it.slug), "%036d", 0);
	notify_item_address("in.example", &d, &it, out, sizeof(out));
	ck_assert_str_eq(out, "d-abcdefghijklmnopqrstuvwxyz@in.example");
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
	tcase_add_test(tc, test_words);
	tcase_add_test(tc, test_item_address);
	tcase_add_test(tc, test_receipt_vouched);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(notify_suite());
}

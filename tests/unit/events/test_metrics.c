/*
 * test_metrics.c - unit tests for metrics.c and store_stats.c: counters
 * move by exactly what was counted, the exposition follows the text
 * format 0.0.4 line by line (HELP and TYPE before every sample, counters
 * named *_total), and the queue gauges count the store's rows by state.
 */
#include <check.h>
#include <pthread.h>
#include <regex.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "events/metrics.h"
#include "store/store.h"
#include "store/store_stats.h"
#include "testlib.h"
#include "lib/util.h"

static char tmpdir[256], dbpath[512], err[PD_ERRLEN];
static struct store *st;

static void
setup(void)
{
	tl_tmpdir(tmpdir, sizeof(tmpdir), "metrics");
	snprintf(dbpath, sizeof(dbpath), "%s/postdoc.db", tmpdir);
	st = tl_store_open(dbpath, "full");
	metrics_reset();
}

static void
teardown(void)
{
	store_close(&st);
	tl_rmtree(tmpdir);
}

/* Render and check every line against the format; returns the text. */
static char *
render_strict(struct store *s)
{
	regex_t help, type, sample;
	char *out, *line, *save = NULL, typed[128] = "";
	size_t len;

	ck_assert_msg(metrics_render(s, &out, &len, err) == 0, "%s", err);
	ck_assert_uint_eq(strlen(out), len);
	ck_assert(len > 0 && out[len - 1] == '\n');
	ck_assert_int_eq(regcomp(&help, "^# HELP ([a-z_]+) [^\n]+$",
	    REG_EXTENDED), 0);
	ck_assert_int_eq(regcomp(&type, "^# TYPE ([a-z_]+) (counter|gauge)$",
	    REG_EXTENDED), 0);
	ck_assert_int_eq(regcomp(&sample, "^([a-z_]+)(\\{[a-z_]+=\"[a-z_]*\""
	    "\\})? [0-9]+$", REG_EXTENDED), 0);
	char *copy = xstrdup(out);
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		regmatch_t m[3];

		if (regexec(&help, line, 2, m, 0) == 0)
			continue;
		if (regexec(&type, line, 3, m, 0) == 0) {
			snprintf(typed, sizeof(typed), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			if (strncmp(line + m[2].rm_so, "counter", 7) == 0)
				ck_assert_msg(strstr(typed, "_total") != NULL,
				    "counter %s not named *_total", typed);
			continue;
		}
		ck_assert_msg(regexec(&sample, line, 3, m, 0) == 0,
		    "bad line: %s", line);
		/* A sample belongs to the family last TYPEd. */
		ck_assert_msg((size_t)(m[1].rm_eo - m[1].rm_so) ==
		    strlen(typed) && strncmp(line, typed, strlen(typed)) == 0,
		    "sample outside its family: %s", line);
	}
	free(copy);
	regfree(&help);
	regfree(&type);
	regfree(&sample);
	return out;
}

/* The value of one series ("name" or "name{l=\"v\"}"), -1 if absent. */
static long long
value_of(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while ((p = strstr(p, series)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return atoll(p + n + 1);
		p += n;
	}
	return -1;
}

START_TEST(test_counters_exact)
{
	char *out;
	int i;

	out = render_strict(NULL);
	ck_assert_int_eq(value_of(out, "postdoc_messages_accepted_total"
	    "{proto=\"smtp\"}"), 0);
	ck_assert_int_eq(value_of(out, "postdoc_messages_refused_total"
	    "{reason=\"unknown_recipient\"}"), 0);
	/* Store gauges need a store: absent without one. */
	ck_assert_int_eq(value_of(out, "postdoc_event_deliveries_pending"),
	    -1);
	free(out);
	metrics_connection(MP_SMTP, MC_ACCEPTED);
	metrics_connection(MP_LMTP, MC_REFUSED_LIMIT);
	for (i = 0; i < 3; i++)
		metrics_accepted(MP_SMTP);
	metrics_accepted(MP_MAILBOX);
	metrics_refused(MR_UNKNOWN_RECIPIENT);
	metrics_refused(MR_SIZE);
	metrics_refused(MR_SIZE);
	metrics_documents(5);
	metrics_delivery(MD_SENT);
	metrics_delivery(MD_DEFERRED);
	metrics_unsubscribe(MU_ONE_CLICK);
	out = render_strict(NULL);
	ck_assert_int_eq(value_of(out, "postdoc_connections_total"
	    "{proto=\"smtp\"}"), 1);
	ck_assert_int_eq(value_of(out, "postdoc_connections_total"
	    "{proto=\"lmtp\"}"), 0);
	ck_assert_int_eq(value_of(out, "postdoc_connections_refused_total"
	    "{reason=\"limit\"}"), 1);
	ck_assert_int_eq(value_of(out, "postdoc_messages_accepted_total"
	    "{proto=\"smtp\"}"), 3);
	ck_assert_int_eq(value_of(out, "postdoc_messages_accepted_total"
	    "{proto=\"mailbox\"}"), 1);
	ck_assert_int_eq(value_of(out, "postdoc_messages_refused_total"
	    "{reason=\"unknown_recipient\"}"), 1);
	ck_assert_int_eq(value_of(out, "postdoc_messages_refused_total"
	    "{reason=\"size\"}"), 2);
	ck_assert_int_eq(value_of(out, "postdoc_messages_refused_total"
	    "{reason=\"plugin\"}"), 0);
	ck_assert_int_eq(value_of(out, "postdoc_documents_stored_total"), 5);
	ck_assert_int_eq(value_of(out, "postdoc_deliveries_total"
	    "{result=\"sent\"}"), 1);
	ck_assert_int_eq(value_of(out, "postdoc_deliveries_total"
	    "{result=\"bounced\"}"), 0);
	ck_assert_int_eq(value_of(out, "postdoc_unsubscribes_total"
	    "{method=\"one_click\"}"), 1);
	ck_assert(value_of(out, "postdoc_start_time_seconds") > 1700000000);
	free(out);
}
END_TEST

static void
exec_sql(const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;

	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK,
	    "%s", msg != NULL ? msg : "?");
	sqlite3_close(db);
}

START_TEST(test_store_gauges)
{
	static const char *const states[] = { "queued", "queued", "sending",
	    "deferred", "deferred", "deferred", "sent", "bounced", "failed" };
	char sql[1024], *out;
	int64_t acct;
	struct store_stats ss;
	size_t i;

	ck_assert_int_eq(store_stats_read(st, &ss, err), 0);
	ck_assert_int_eq(ss.outbound[0] + ss.outbound[1] + ss.outbound[2] +
	    ss.events_pending, 0);
	ck_assert_msg(store_account_add(st, "acme", "any", &acct, err) == 0,
	    "%s", err);
	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO outbound (account_id,"
		    " kind, rcpt, rcpt_domain, mail_from, verp_token, sha256,"
		    " size, state, next_attempt, created, updated) VALUES"
		    " (%lld, 'invite', 'a@b.example', 'b.example', 'x@y',"
		    " 'tok%zu', 'abc', 1, '%s', 0, 0, 0)", (long long)acct, i,
		    states[i]);
		exec_sql(sql);
	}
	exec_sql("INSERT INTO event_deliveries (consumer, hook, event_id,"
	    " stream, state, next_attempt, created, updated) VALUES"
	    " ('webhook', 'event', 1, 's', 'pending', 0, 0, 0),"
	    " ('webhook', 'event', 2, 's', 'pending', 0, 0, 0),"
	    " ('webhook', 'event', 3, 's', 'done', 0, 0, 0)");
	out = render_strict(st);
	ck_assert_int_eq(value_of(out, "postdoc_outbound_queue"
	    "{state=\"queued\"}"), 2);
	ck_assert_int_eq(value_of(out, "postdoc_outbound_queue"
	    "{state=\"sending\"}"), 1);
	ck_assert_int_eq(value_of(out, "postdoc_outbound_queue"
	    "{state=\"deferred\"}"), 3);
	/* Terminal states are not queue depth. */
	ck_assert_int_eq(value_of(out, "postdoc_outbound_queue"
	    "{state=\"sent\"}"), -1);
	ck_assert_int_eq(value_of(out, "postdoc_event_deliveries_pending"),
	    2);
	free(out);
}
END_TEST

#define NTHREADS 4
#define NINC 100000

static void *
inc_thread(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < NINC; i++) {
		metrics_accepted(MP_LMTP);
		metrics_documents(2);
	}
	return NULL;
}

/* Workers, the loop and the delivery threads count at once: no
 * increment may be lost. */
START_TEST(test_concurrent_increments)
{
	pthread_t th[NTHREADS];
	char *out;
	int i;

	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, inc_thread,
		    NULL), 0);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	out = render_strict(NULL);
	ck_assert_int_eq(value_of(out, "postdoc_messages_accepted_total"
	    "{proto=\"lmtp\"}"), NTHREADS * NINC);
	ck_assert_int_eq(value_of(out, "postdoc_documents_stored_total"),
	    2LL * NTHREADS * NINC);
	free(out);
}
END_TEST

START_TEST(test_refusal_names)
{
	int r;

	for (r = 0; r < MR_COUNT; r++)
		ck_assert_str_ne(metrics_refusal_name(r), "unknown");
	ck_assert_str_eq(metrics_refusal_name(MR_UNKNOWN_RECIPIENT),
	    "unknown_recipient");
	ck_assert_str_eq(metrics_refusal_name(MR_COUNT), "unknown");
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_counters_exact);
	tcase_add_test(tc, test_store_gauges);
	tcase_add_test(tc, test_refusal_names);
	tcase_add_test(tc, test_concurrent_increments);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(metrics_suite());
}

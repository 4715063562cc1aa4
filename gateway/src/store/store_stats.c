/*
 * store_stats.c - scrape-time counts for /metrics (see store_stats.h).
 * Aggregates only: no row content leaves here, so a scrape can never
 * expose an address or a file name.
 */
#include <string.h>

#include "store_int.h"
#include "store_stats.h"
#include "lib/util.h"

const char *const store_stats_queue_states[STORE_STATS_NQUEUE] = {
	"queued", "sending", "deferred"
};

#define store_stats_fail store_fail	/* store_int.h */

static int
store_stats_outbound(struct store *st, struct store_stats *r, char *err)
{
	struct db_stmt *s;
	const char *state;
	int rc, i;

	if (db_prepare(store_db(st), "SELECT state, count(*)"
	    " FROM outbound WHERE state IN ('queued', 'sending', 'deferred')"
	    " GROUP BY state", &s) != DB_OK)
		return store_stats_fail(st, err, "outbound depth");
	while ((rc = db_step(s)) == DB_ROW) {
		state = db_col_text(s, 0);
		for (i = 0; i < STORE_STATS_NQUEUE; i++)
			if (state != NULL &&
			    strcmp(state, store_stats_queue_states[i]) == 0)
				r->outbound[i] = db_col_int64(s, 1);
	}
	db_finalize(s);
	return rc == DB_DONE ? 0 :
	    store_stats_fail(st, err, "outbound depth");
}

int
store_stats_read(struct store *st, struct store_stats *r, char *err)
{
	struct db_stmt *s;

	memset(r, 0, sizeof(*r));
	if (store_stats_outbound(st, r, err) != 0)
		return -1;
	if (db_prepare(store_db(st), "SELECT count(*) FROM"
	    " event_deliveries WHERE state = 'pending'", &s)
	    != DB_OK)
		return store_stats_fail(st, err, "event deliveries");
	return store_cx_int(st, s, &r->events_pending, err,
	    "event deliveries") < 0 ? -1 : 0;
}

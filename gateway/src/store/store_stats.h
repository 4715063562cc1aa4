/*
 * store_stats.h - the few counts /metrics reads from the store at
 * scrape time (metrics.c): outbound rows still in the queue, by state,
 * and event deliveries still pending.  Read-only; one statement each.
 */
#ifndef PD_STORE_STATS_H
#define PD_STORE_STATS_H

#include <stdint.h>

struct store;

/* The queue's live states, in the order of store_stats.outbound. */
#define STORE_STATS_NQUEUE 3
extern const char *const store_stats_queue_states[STORE_STATS_NQUEUE];

struct store_stats {
	int64_t outbound[STORE_STATS_NQUEUE];	/* rows per live state */
	int64_t events_pending;		/* event_deliveries 'pending' */
};

/* 0, or -1 with err. */
int store_stats_read(struct store *st, struct store_stats *r, char *err);

#endif

/*
 * store_evq.h - the SQL behind evq.c: per-consumer cursors over the
 * `events` log, the `event_deliveries` rows they fan out into (one per
 * consumer, hook and event, in a stream per dossier or per account), the
 * claim of each stream's head and the record of a hook's verdict.
 */
#ifndef PD_STORE_EVQ_H
#define PD_STORE_EVQ_H

#include <stddef.h>
#include <stdint.h>

#include "records.h"

struct store;

/* The public types, the only ones an `event` hook ever sees. */
extern const char *const store_evq_public[];
#define STORE_EVQ_NPUBLIC 11

/*
 * Copy events after this consumer's cursor into pending deliveries (only
 * document.received when sync is set) and advance the cursor, in one
 * transaction.  A consumer without a cursor starts at the newest event:
 * it does not replay history.  *added_r: deliveries created.
 */
int store_evq_fanout(struct store *st, const char *consumer,
    const char *hook, int sync, int64_t now, int *added_r, char *err);

/* A due delivery with its event (gone = 1 when the event row is erased). */
struct store_evq_item {
	int64_t id;		/* event_deliveries row */
	int64_t event_id;
	unsigned attempts;	/* before this call */
	int gone;
	int64_t at;		/* event time */
	int64_t account_id;
	char account[128];
	int64_t dossier_id;	/* 0: account-level */
	char dossier_ref[128];
	char kind[64];
	char detail[1024];
};

/* The head of each stream (its lowest pending delivery) if it is due,
 * oldest first, at most max. */
int store_evq_due(struct store *st, const char *consumer, const char *hook,
    int64_t now, struct store_evq_item *items, size_t max, size_t *n_r,
    char *err);

/* Record a verdict: state "pending" (with next_attempt), "done",
 * "failed", "expired" or "dropped". */
int store_evq_record(struct store *st, int64_t id, const char *state,
    unsigned attempts, int64_t next_attempt, const char *last_error,
    int64_t now, char *err);

struct store_evq_doc {
	int64_t id;
	char filename[512];
	char stored_name[512];
	char content_type[128];
	uint64_t size;
	char sha256[65];
	int64_t received;
};

/* The document of a document.received event: 1 found, 0 gone, -1. */
int store_evq_document(struct store *st, int64_t account_id, int64_t doc_id,
    struct store_evq_doc *d, char *err);

/* consent.granted / consent.withdrawn (action "grant" / "withdraw") for
 * a contact and purpose, account-level; inside the consent record's
 * transaction. */
int store_evq_consent_event(struct store *st, int64_t account_id,
    int64_t contact_id, int64_t purpose_id, const char *action,
    const char *source, char *err);

/* consumer/state may be NULL (any); at most max rows into rows. */
int store_evq_list(struct store *st, const char *consumer, const char *state,
    struct store_evq_row *rows, size_t max, size_t *n_r, char *err);
/* A failed or expired delivery back to pending, due now, attempts kept:
 * 1 done, 0 no such row in those states. */
int store_evq_retry(struct store *st, int64_t id, int64_t now, char *err);

/* Forget one consumer's settled deliveries: done or dropped last updated
 * before done_before, failed or expired before failed_before.  Pending
 * rows are never touched.  *n_r: rows deleted. */
int store_evq_prune(struct store *st, const char *consumer, const char *hook,
    int64_t done_before, int64_t failed_before, int *n_r, char *err);

#endif

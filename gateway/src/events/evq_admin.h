/*
 * evq_admin.h - what an operator does with event deliveries outside
 * `serve` (`postdoc events list|retry`): read them, and send a given-up
 * one again.  Delivering is evq.c's, in serve only.
 */
#ifndef PD_EVQ_ADMIN_H
#define PD_EVQ_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "store/records.h"

struct store;

/* A delivery's states (NULL-terminated): what a list filter may name. */
extern const char *const evq_admin_states[];

/* Newest first; consumer and state may be NULL (any); at most max. */
int evq_admin_list(struct store *st, const char *consumer, const char *state,
    struct store_evq_row *rows, size_t max, size_t *n_r, char *err);
/* A failed or expired delivery back to pending, due now: 1 done, 0 no
 * such delivery in those states, -1 error. */
int evq_admin_retry(struct store *st, int64_t id, int64_t now, char *err);

#endif

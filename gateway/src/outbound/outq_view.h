/*
 * outq_view.h - the outbound queue as the front ends read it (`queue
 * list`, the row an invitation queued).  Queueing and delivering are
 * outq.h's.
 */
#ifndef PD_OUTQ_VIEW_H
#define PD_OUTQ_VIEW_H

#include <stdint.h>

#include "store/records.h"

struct store;

/* account_id 0: any.  1 found, 0 not, -1 error. */
int outq_view_get(struct store *st, int64_t account_id, int64_t id,
    struct store_outbound *o_r, char *err);
/* The states a row can be in (NULL-terminated): what a list filter
 * may name. */
extern const char *const outq_view_states[];

/* account_id 0 / state NULL: any. */
int outq_view_list(struct store *st, int64_t account_id, const char *state,
    store_outbound_cb cb, void *ctx, char *err);

#endif

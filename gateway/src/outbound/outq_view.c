/*
 * outq_view.c - reads of the outbound queue for operators and clients.
 * Never changes a row: the queue's state is outq.c's alone.
 */
#include "outq_view.h"
#include "store/store.h"

/* As the outbound table's CHECK (store_schema.c) has them. */
const char *const outq_view_states[] = { "queued", "sending", "sent",
	"deferred", "bounced", "failed", NULL };

int
outq_view_get(struct store *st, int64_t account_id, int64_t id,
    struct store_outbound *o_r, char *err)
{
	return store_outbound_get(st, account_id, id, o_r, err);
}

int
outq_view_list(struct store *st, int64_t account_id, const char *state,
    store_outbound_cb cb, void *ctx, char *err)
{
	return store_outbound_list(st, account_id, 0, state, cb, ctx, err);
}

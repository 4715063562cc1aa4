/*
 * evq_admin.c - the operator's view of event deliveries: list them and
 * put a failed or expired one back in its stream.  Never delivers, never
 * fans out (evq.c does, in serve).
 */
#include "evq_admin.h"
#include "store/store_evq.h"

const char *const evq_admin_states[] = { "pending", "done", "failed",
	"expired", "dropped", NULL };

int
evq_admin_list(struct store *st, const char *consumer, const char *state,
    struct store_evq_row *rows, size_t max, size_t *n_r, char *err)
{
	return store_evq_list(st, consumer, state, rows, max, n_r, err);
}

int
evq_admin_retry(struct store *st, int64_t id, int64_t now, char *err)
{
	return store_evq_retry(st, id, now, err);
}

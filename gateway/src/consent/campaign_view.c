/*
 * campaign_view.c - a campaign as the front ends show it: the row, only
 * to its own account, and the counts of its recipients and messages.
 * Reads only; never queues (campaign.c).
 */
#include "campaign_view.h"
#include "store/store.h"

int
campaign_view_get(struct store *st, int64_t account_id, int64_t id,
    struct store_campaign *k_r, char *err)
{
	int rc = store_campaign_get(st, id, k_r, err);

	if (rc == 1 && account_id != 0 && k_r->account_id != account_id)
		return 0;
	return rc;
}

int
campaign_view_counts(struct store *st, int64_t id, store_count_cb cb,
    void *ctx, char *err)
{
	return store_campaign_counts(st, id, cb, ctx, err);
}

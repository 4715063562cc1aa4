/*
 * campaign_view.h - reading a campaign back for the front ends: its row
 * (scoped to an account, so another account's campaign is "not found"),
 * its true state, its outcomes and its audience explained.  Sending is
 * campaign.h's.
 */
#ifndef PD_CAMPAIGN_VIEW_H
#define PD_CAMPAIGN_VIEW_H

#include <stdint.h>

#include <jansson.h>

#include "store/records.h"

struct store;

/* account_id 0: any account (the operator's CLI).  1, 0, -1. */
int campaign_view_get(struct store *st, int64_t account_id, int64_t id,
    struct store_campaign *k_r, char *err);
/* Recipients by state ("r.pending"...), then their outbound rows by
 * state ("o.sent"...), then skips by reason ("s.withdrawn"), through
 * cb(name, n). */
int campaign_view_counts(struct store *st, int64_t id, store_count_cb cb,
    void *ctx, char *err);

/*
 * The account's campaigns, newest first, each with its purpose's display
 * name in the campaign's language (label) and its report as
 * campaign_view_report gives it (state, outcomes, audience, recipients,
 * messages; borrowed for the call).  cb non-zero stops.
 */
struct pd_config;
typedef int (*campaign_view_cb)(const struct store_campaign *c,
    const char *label, json_t *counts, void *ctx);
int campaign_view_list(const struct pd_config *cfg, struct store *st,
    int64_t account_id, campaign_view_cb cb, void *ctx, char *err);
/* What became of a campaign's recipients and their messages. */
struct campaign_outcomes {
	int64_t recipients;	/* the audience fixed at the start */
	int64_t pending;	/* not queued yet (pending, queuing) */
	int64_t skipped;	/* no longer eligible when queued */
	int64_t waiting;	/* in the queue: queued, sending */
	int64_t delivered;	/* the receiving server took it */
	int64_t deferred;	/* to be tried again */
	int64_t bounced;
	int64_t failed;
};

/*
 * The state a reader means, whatever the row says ("queued" in the row
 * only says queueing is done): "draft" until the audience is fixed;
 * "sending" while a recipient is not queued yet or a message is not
 * settled by the queue (waiting, deferred); "sent" when every recipient
 * is settled and every message sent, bounced or failed.
 */
const char *campaign_view_state(const char *row_state,
    const struct campaign_outcomes *o);

/*
 * {state, outcomes: {pending, waiting, delivered, deferred, bounced,
 * failed, skipped, skipped_by_reason: {...}}, audience: {...} or null,
 * recipients: {...}, messages: {...}}: what `campaign show` and GET
 * /api/v1/campaigns/{id} add to the row.  NULL with err on failure.
 */
json_t *campaign_view_report(struct store *st, const struct store_campaign *k,
    char *err);

#endif

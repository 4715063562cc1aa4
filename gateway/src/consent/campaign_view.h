/*
 * campaign_view.h - reading a campaign back for the front ends: its row
 * (scoped to an account, so another account's campaign is "not found")
 * and its progress counts.  Sending is campaign.h's.
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
 * state ("o.sent"...), through cb(name, n). */
int campaign_view_counts(struct store *st, int64_t id, store_count_cb cb,
    void *ctx, char *err);

/*
 * The account's campaigns, newest first, each with its purpose's display
 * name in the campaign's language (label) and its counts as
 * campaign_view_counts gives them, in a JSON object {"recipients": {...},
 * "messages": {...}} (borrowed for the call).  cb non-zero stops.
 */
struct pd_config;
typedef int (*campaign_view_cb)(const struct store_campaign *c,
    const char *label, json_t *counts, void *ctx);
int campaign_view_list(const struct pd_config *cfg, struct store *st,
    int64_t account_id, campaign_view_cb cb, void *ctx, char *err);

#endif

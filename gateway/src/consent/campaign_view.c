/*
 * campaign_view.c - a campaign as the front ends show it: the row, only
 * to its own account, and the counts of its recipients and messages.
 * Reads only; never queues (campaign.c).  The list names each
 * campaign's purpose by its display name.
 */
#include <stdlib.h>

#include "campaign_int.h"
#include "campaign_view.h"
#include "contact.h"
#include "lib/util.h"
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

struct campaign_view_rows {
	struct store_campaign *v;
	size_t n, cap;
};

static int
campaign_view_row_cb(const struct store_campaign *c, void *ctx)
{
	struct campaign_view_rows *l = ctx;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = *c;
	return 0;
}

static int
campaign_view_count_cb(const char *name, int64_t n, void *ctx)
{
	json_t *grp = json_object_get(ctx, name[0] == 'r' ? "recipients" :
	    "messages");

	json_object_set_new(grp, name + 2, json_integer(n));
	return 0;
}

/* The rows first, then each one's label and counts: no statement is
 * left open under the callback. */
int
campaign_view_list(const struct pd_config *cfg, struct store *st,
    int64_t account_id, campaign_view_cb cb, void *ctx, char *err)
{
	struct campaign_view_rows l = { NULL, 0, 0 };
	char locale[16], label[256];
	json_t *counts;
	size_t i;
	int rc = 0;

	if (store_campaign_list(st, account_id, campaign_view_row_cb, &l,
	    err) != 0)
		return -1;
	for (i = 0; i < l.n && rc == 0; i++) {
		counts = json_pack("{s:{}, s:{}}", "recipients", "messages");
		if (campaign_locale(cfg, st, &l.v[i], locale, sizeof(locale),
		    err) != 0 || consent_purpose_label(st, account_id,
		    l.v[i].purpose_id, locale, label, sizeof(label), err) < 0 ||
		    store_campaign_counts(st, l.v[i].id, campaign_view_count_cb,
		    counts, err) != 0)
			rc = -1;
		else if (cb(&l.v[i], label, counts, ctx) != 0)
			rc = 1;
		json_decref(counts);
	}
	free(l.v);
	return rc < 0 ? -1 : 0;
}

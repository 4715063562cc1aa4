/*
 * campaign_view.c - a campaign as the front ends show it: the row, only
 * to its own account, its true state from its recipients and messages,
 * the outcomes counted, and the audience as explained when it was fixed;
 * the account's list, each purpose by its display name.  Reads only;
 * never queues (campaign.c).
 */
#include <stdlib.h>
#include <string.h>

#include "campaign.h"
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
		counts = NULL;
		if (campaign_locale(cfg, st, &l.v[i], locale, sizeof(locale),
		    err) != 0 || consent_purpose_label(st, account_id,
		    l.v[i].purpose_id, locale, label, sizeof(label), err) < 0 ||
		    (counts = campaign_view_report(st, &l.v[i], err)) == NULL)
			rc = -1;
		else if (cb(&l.v[i], label, counts, ctx) != 0)
			rc = 1;
		json_decref(counts);
	}
	free(l.v);
	return rc < 0 ? -1 : 0;
}

const char *
campaign_view_state(const char *row_state, const struct campaign_outcomes *o)
{
	if (strcmp(row_state, "draft") == 0)
		return "draft";
	if (o->pending > 0 || o->waiting > 0 || o->deferred > 0)
		return "sending";
	return "sent";
}

struct campaign_view_acc {
	struct campaign_outcomes o;
	json_t *recipients, *messages, *skipped;
};

/* The counts' names are the store's states: r. recipients, o. their
 * outbound rows, s. skips by reason. */
static int
campaign_view_count_cb(const char *name, int64_t n, void *ctx)
{
	struct campaign_view_acc *a = ctx;
	const char *v = name + 2;

	if (strncmp(name, "r.", 2) == 0) {
		json_object_set_new(a->recipients, v, json_integer(n));
		a->o.recipients += n;
		if (strcmp(v, "pending") == 0 || strcmp(v, "queuing") == 0)
			a->o.pending += n;
		else if (strcmp(v, "skipped") == 0)
			a->o.skipped += n;
	} else if (strncmp(name, "o.", 2) == 0) {
		json_object_set_new(a->messages, v, json_integer(n));
		if (strcmp(v, "queued") == 0 || strcmp(v, "sending") == 0)
			a->o.waiting += n;
		else if (strcmp(v, "sent") == 0)
			a->o.delivered += n;
		else if (strcmp(v, "deferred") == 0)
			a->o.deferred += n;
		else if (strcmp(v, "bounced") == 0)
			a->o.bounced += n;
		else if (strcmp(v, "failed") == 0)
			a->o.failed += n;
	} else if (strncmp(name, "s.", 2) == 0) {
		json_object_set_new(a->skipped, v[0] != '\0' ? v : "other",
		    json_integer(n));
	}
	return 0;
}

json_t *
campaign_view_report(struct store *st, const struct store_campaign *k,
    char *err)
{
	struct campaign_view_acc a;
	struct campaign_audience aud;
	const struct campaign_outcomes *o = &a.o;
	json_t *out;

	memset(&a, 0, sizeof(a));
	a.recipients = json_object();
	a.messages = json_object();
	a.skipped = json_object();
	if (store_campaign_counts(st, k->id, campaign_view_count_cb, &a, err)
	    != 0) {
		json_decref(a.recipients);
		json_decref(a.messages);
		json_decref(a.skipped);
		return NULL;
	}
	out = json_pack("{s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
	    " s:o}, s:o, s:o, s:o}", "state", campaign_view_state(k->state, o),
	    "outcomes", "recipients", (json_int_t)o->recipients, "pending",
	    (json_int_t)o->pending, "waiting", (json_int_t)o->waiting,
	    "delivered", (json_int_t)o->delivered, "deferred",
	    (json_int_t)o->deferred, "bounced", (json_int_t)o->bounced,
	    "failed", (json_int_t)o->failed, "skipped",
	    (json_int_t)o->skipped, "skipped_by_reason", a.skipped,
	    "audience", campaign_audience_load(k->audience, &aud) == 0 ?
	    campaign_audience_json(&aud) : json_null(), "recipients",
	    a.recipients, "messages", a.messages);
	return out;
}

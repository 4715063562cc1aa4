/*
 * campaign_audience.c - who a newsletter reaches and why everyone else
 * is left out: each contact of the account goes through eligible_check,
 * the one rule the sender and the queue also ask, so the audience fixed
 * at the start, its explanation and a dry run never disagree with what
 * is sent.  Fixing writes recipients and the explanation in one
 * transaction; a dry run writes nothing.  Never queues (campaign.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign.h"
#include "outbound/eligible.h"
#include "store/store.h"
#include "lib/util.h"

_Static_assert(CAMPAIGN_WHY_MAX == EW_COUNT,
    "campaign_audience.left_out is indexed by enum eligible_why");

/* The reasons in the order eligible.c asks a newsletter's rules. */
static const enum eligible_why campaign_whys[] = {
	EW_AGE_UNKNOWN, EW_MINOR, EW_NO_CONSENT, EW_WITHDRAWN, EW_SUPPRESSED,
	EW_BOUNCED, EW_ERASED,
};
#define CAMPAIGN_NWHY (sizeof(campaign_whys) / sizeof(campaign_whys[0]))

const char *
campaign_why_name(int i)
{
	if (i < 1 || (size_t)i > CAMPAIGN_NWHY)
		return NULL;
	return eligible_why_name(campaign_whys[i - 1]);
}

int64_t
campaign_why_count(const struct campaign_audience *a, int i)
{
	if (i < 1 || (size_t)i > CAMPAIGN_NWHY)
		return 0;
	return a->left_out[campaign_whys[i - 1]];
}

struct campaign_classify {
	const struct pd_config *cfg;
	struct store *st;
	const struct store_campaign *c;
	struct campaign_audience *a;
	campaign_rcpt_fn cb;
	void *ctx;
	int failed;
	char *err;
};

static int
campaign_classify_cb(const struct store_contact *k, void *ctx)
{
	struct campaign_classify *x = ctx;
	struct eligible_ask ask = { .kind = ELIGIBLE_NEWSLETTER,
	    .when = ELIGIBLE_CHOOSE, .account_id = x->c->account_id,
	    .rcpt = k->email, .contact_id = k->id,
	    .purpose_id = x->c->purpose_id, .now = pd_now() };
	struct eligible_verdict v;
	int ok = eligible_check(x->cfg, x->st, &ask, &v, x->err);

	if (ok < 0) {
		x->failed = 1;
		return 1;
	}
	x->a->contacts++;
	if (ok == 0) {
		x->a->left_out[v.why]++;
		return 0;
	}
	x->a->eligible++;
	if (x->cb != NULL && x->cb(k->id, k->email, x->ctx) != 0) {
		x->failed = 1;
		return 1;
	}
	return 0;
}

int
campaign_audience_now(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, campaign_rcpt_fn cb, void *ctx,
    struct campaign_audience *a_r, char *err)
{
	struct campaign_classify x = { cfg, st, c, a_r, cb, ctx, 0, err };

	memset(a_r, 0, sizeof(*a_r));
	if (store_contact_list(st, c->account_id, campaign_classify_cb, &x,
	    err) != 0 || x.failed)
		return -1;
	return 0;
}

/* JSON keys are the words with '_' for ' '. */
static void
campaign_why_key(const char *name, char *out, size_t len)
{
	size_t i;

	for (i = 0; name[i] != '\0' && i + 1 < len; i++)
		out[i] = name[i] == ' ' ? '_' : name[i];
	out[i] = '\0';
}

json_t *
campaign_audience_json(const struct campaign_audience *a)
{
	json_t *left = json_object();
	char key[40];
	size_t i;

	for (i = 0; i < CAMPAIGN_NWHY; i++) {
		campaign_why_key(eligible_why_name(campaign_whys[i]), key,
		    sizeof(key));
		json_object_set_new(left, key,
		    json_integer(a->left_out[campaign_whys[i]]));
	}
	/* Only a rule outside the list (none today) lands here. */
	if (a->left_out[EW_NO_CONTACT] > 0)
		json_object_set_new(left, "no_such_contact",
		    json_integer(a->left_out[EW_NO_CONTACT]));
	return json_pack("{s:I, s:I, s:o}", "contacts",
	    (json_int_t)a->contacts, "eligible", (json_int_t)a->eligible,
	    "left_out", left);
}

int
campaign_audience_load(const char *text, struct campaign_audience *a_r)
{
	json_t *j, *left;
	char key[40];
	size_t i;

	memset(a_r, 0, sizeof(*a_r));
	if (text == NULL || text[0] == '\0' ||
	    (j = json_loads(text, 0, NULL)) == NULL)
		return -1;
	a_r->contacts = json_integer_value(json_object_get(j, "contacts"));
	a_r->eligible = json_integer_value(json_object_get(j, "eligible"));
	left = json_object_get(j, "left_out");
	for (i = 0; i < CAMPAIGN_NWHY; i++) {
		campaign_why_key(eligible_why_name(campaign_whys[i]), key,
		    sizeof(key));
		a_r->left_out[campaign_whys[i]] =
		    json_integer_value(json_object_get(left, key));
	}
	a_r->left_out[EW_NO_CONTACT] = json_integer_value(json_object_get(left,
	    "no_such_contact"));
	json_decref(j);
	return 0;
}

/* ---- fixing the audience ---- */

struct campaign_fix {
	struct store *st;
	int64_t id, now;
	char *err;
};

static int
campaign_fix_cb(int64_t contact_id, const char *email, void *ctx)
{
	struct campaign_fix *f = ctx;

	return store_campaign_rcpt_add(f->st, f->id, contact_id, email, f->now,
	    f->err);
}

/*
 * Classifying and writing share one transaction (BEGIN IMMEDIATE): no
 * withdrawal can land between the count and the rows, so the stored
 * explanation adds up to the recipients.
 */
int
campaign_start(const struct pd_config *cfg, struct store *st, int64_t id,
    struct campaign_audience *a_r, char *err)
{
	struct store_campaign c;
	struct campaign_fix f = { st, id, pd_now(), err };
	char *json = NULL;
	json_t *j;
	int rc;

	memset(a_r, 0, sizeof(*a_r));
	if (store_begin(st, err) != 0)
		return -1;
	if ((rc = store_campaign_get(st, id, &c, err)) != 1) {
		if (rc == 0)
			pd_err(err, "no campaign %lld", (long long)id);
		goto fail;
	}
	if (strcmp(c.state, "draft") != 0) {
		store_rollback(st);
		(void)campaign_audience_load(c.audience, a_r);
		return 0;
	}
	if (campaign_audience_now(cfg, st, &c, campaign_fix_cb, &f, a_r,
	    err) != 0)
		goto fail;
	j = campaign_audience_json(a_r);
	json = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (json == NULL) {
		pd_err(err, "campaign %lld: audience: out of memory",
		    (long long)id);
		goto fail;
	}
	if (store_campaign_set_audience(st, id, json, err) != 0 ||
	    store_campaign_start(st, id, f.now, err) != 1 ||
	    store_commit(st, err) != 0)
		goto fail;
	free(json);
	return 1;
fail:
	free(json);
	store_rollback(st);
	return -1;
}

/* ---- dry runs ---- */

struct campaign_pending {
	campaign_rcpt_fn cb;
	void *ctx;
	int64_t last_id;
	int stop;
};

static int
campaign_pending_cb(const struct store_campaign_rcpt *rc, void *ctx)
{
	struct campaign_pending *p = ctx;

	p->last_id = rc->id;
	if (p->cb != NULL && p->cb(rc->contact_id, rc->email, p->ctx) != 0) {
		p->stop = 1;
		return 1;
	}
	return 0;
}

int
campaign_dry_run(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, campaign_rcpt_fn cb, void *ctx,
    struct campaign_audience *a_r, int *fixed_r, char *err)
{
	struct campaign_pending p = { cb, ctx, 0, 0 };
	int rc;

	*fixed_r = strcmp(c->state, "draft") != 0;
	if (!*fixed_r)
		return campaign_audience_now(cfg, st, c, cb, ctx, a_r, err);
	(void)campaign_audience_load(c->audience, a_r);
	do {
		rc = store_campaign_rcpt_next(st, c->id, p.last_id, 256,
		    campaign_pending_cb, &p, err);
	} while (rc > 0 && !p.stop);
	return rc < 0 ? -1 : 0;
}

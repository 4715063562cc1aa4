/*
 * campaign.c - sending a newsletter to its audience and a notice to an
 * account's contacts: per recipient, re-check eligibility, render with
 * the recipient's unsubscribe link, put List-Unsubscribe and
 * List-Unsubscribe-Post (RFC 2369, RFC 8058) in the headers DKIM signs,
 * record the Message-ID, queue.  Never delivers: the queue does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "campaign.h"
#include "campaign_int.h"
#include "contact.h"
#include "lib/config.h"
#include "outbound/eligible.h"
#include "outbound/markdown.h"
#include "outbound/notify.h"
#include "outbound/outmsg.h"
#include "outbound/outq.h"
#include "store/store.h"
#include "unsub.h"
#include "lib/util.h"

#define CAMPAIGN_PAGE 256
/*
 * Recipients queued per transaction: one WAL commit and one fsync per
 * fan-out dir per batch instead of three commits and a dir fsync per
 * recipient.  A crash loses at most the batch being built; its rows are
 * still pending and are queued again on resume.
 */
#define CAMPAIGN_BATCH 64

int
campaign_create(struct store *st, int64_t account_id, int64_t purpose_id,
    const char *tmpl, const char *subject, const char *locale,
    int64_t *id_r, char *err)
{
	struct store_campaign c;
	char *clean = outmsg_clean_text(subject, 400);
	int rc;

	memset(&c, 0, sizeof(c));
	c.account_id = account_id;
	c.purpose_id = purpose_id;
	snprintf(c.tmpl, sizeof(c.tmpl), "%s", tmpl);
	snprintf(c.subject, sizeof(c.subject), "%s", clean);
	snprintf(c.locale, sizeof(c.locale), "%s", locale != NULL ? locale :
	    "");
	free(clean);
	if (c.subject[0] == '\0') {
		pd_err(err, "a campaign needs a subject");
		return -1;
	}
	rc = store_campaign_add(st, &c, id_r, err);
	return rc;
}

/*
 * The body is checked (markdown_check: UTF-8, no NUL, not empty, at most
 * 256 KiB) and stored with the campaign in one transaction: a campaign
 * row without its body would send the layout alone.
 */
int
campaign_create_body(struct store *st, int64_t account_id,
    int64_t purpose_id, const char *md, size_t len, const char *subject,
    const char *locale, int64_t *id_r, char *err)
{
	char *copy;

	if (markdown_check(md, len, err) != 0)
		return -1;
	if (store_begin(st, err) != 0)
		return -1;
	copy = xstrndup(md, len);
	if (campaign_create(st, account_id, purpose_id, CAMPAIGN_BODY_TMPL,
	    subject, locale, id_r, err) != 0 ||
	    store_campaign_set_body(st, *id_r, copy, err) != 0 ||
	    store_commit(st, err) != 0) {
		store_rollback(st);
		free(copy);
		return -1;
	}
	free(copy);
	return 0;
}

int
campaign_body_load(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, struct campaign_body *b, char *err)
{
	char *md = NULL;
	size_t n;
	int rc;

	memset(b, 0, sizeof(*b));
	if (campaign_locale(cfg, st, c, b->locale, sizeof(b->locale), err)
	    != 0 || consent_purpose_label(st, c->account_id, c->purpose_id,
	    b->locale, b->label, sizeof(b->label), err) < 0)
		return -1;
	if ((rc = store_campaign_body(st, c->id, &md, err)) != 1) {
		if (rc == 0)
			pd_err(err, "no campaign %lld", (long long)c->id);
		return -1;
	}
	if (md[0] == '\0') {
		free(md);
		return 0;
	}
	rc = markdown_render(md, strlen(md), &b->html, &b->text, err);
	free(md);
	if (rc != 0)
		return -1;
	/* The layout puts its own line end after the body. */
	n = strlen(b->text);
	while (n > 0 && b->text[n - 1] == '\n')
		b->text[--n] = '\0';
	return 0;
}

void
campaign_body_free(struct campaign_body *b)
{
	free(b->html);
	free(b->text);
	b->html = b->text = NULL;
}

int
campaign_locale(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, char *out, size_t len, char *err)
{
	struct notify_identity id;

	if (c->locale[0] != '\0') {
		snprintf(out, len, "%s", c->locale);
		return 0;
	}
	if (notify_identity(cfg, st, c->account, &id, err) != 0)
		return -1;
	snprintf(out, len, "%s", id.locale[0] ? id.locale :
	    cfg->default_locale != NULL && cfg->default_locale[0] ?
	    cfg->default_locale : "en");
	return 0;
}

/*
 * The template's data: the reader, the purpose by its display name in
 * the message's language (never its internal id), the campaign, her
 * unsubscribe link and, for a Markdown campaign, the body's two parts.
 */
static json_t *
campaign_data(const struct store_campaign *c, const struct campaign_body *body,
    const char *email, const char *url)
{
	json_t *data = json_pack("{s:{s:s}, s:{s:s, s:s}, s:{s:I, s:s},"
	    " s:s, s:s}", "contact", "email", email, "purpose", "name",
	    c->purpose, "label", body->label, "campaign", "id",
	    (json_int_t)c->id, "subject", c->subject, "unsubscribe_url", url,
	    "locale", body->locale);

	if (body->html != NULL) {
		json_object_set_new(data, "body_html",
		    json_string(body->html));
		json_object_set_new(data, "body_text",
		    json_string(body->text));
	}
	return data;
}

int
campaign_message(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, const struct campaign_body *body,
    const struct campaign_to *to, struct notify_built *b, char *err)
{
	char tok[UNSUB_TOKEN_MAX], tok32[UNSUB_TOKEN_MAX], url[512], lu[700];
	struct outmsg_header hdr[2];
	struct notify_mail m;
	json_t *data;
	int ret;

	if (unsub_token_make(cfg, UNSUB_T_UNSUB, c->account_id,
	    to->contact_id, c->purpose_id, tok, tok32, err) != 0)
		return -1;
	snprintf(url, sizeof(url), "%s/u/%s", cfg->web_base_url, tok);
	/* Exactly one https (or http) URI, then the mailto (RFC 8058 3.1). */
	snprintf(lu, sizeof(lu), "<%s>, <mailto:u-%s@%s>", url, tok32,
	    unsub_list_domain(cfg));
	hdr[0] = (struct outmsg_header){ "List-Unsubscribe", lu };
	hdr[1] = (struct outmsg_header){ "List-Unsubscribe-Post",
	    "List-Unsubscribe=One-Click" };
	data = campaign_data(c, body, to->email, url);
	m = (struct notify_mail){ .st = st, .account = c->account,
	    .tmpl = c->tmpl, .locale = body->locale, .to = to->email,
	    .data = data,
	    .extra = hdr, .n_extra = 2,
	    .subject_prefix = to->test ? "[TEST] " : NULL,
	    .keep_parts = to->keep_parts };
	ret = notify_build_mail(cfg, &m, b, err);
	json_decref(data);
	return ret;
}

struct campaign_run {
	const struct pd_config *cfg;
	struct store *st;
	struct outq_ctx *q;
	const struct store_campaign *c;
	struct campaign_body body;	/* rendered once per run */
	struct campaign_stats *stats;
	campaign_progress_fn progress;
	void *pctx;
	int64_t base;			/* settled before this run */
	int64_t done;			/* settled and committed so far */
	int64_t last_id;
	int failed;
	char *err;
	struct campaign_pend {		/* added to q's batch, not committed */
		int64_t rcpt_id;
		char message_id[256];
	} pend[CAMPAIGN_BATCH];
	size_t npend;
};

/* Build the newsletter for one recipient into b. */
static int
campaign_build(struct campaign_run *r, const struct store_campaign_rcpt *rc,
    struct notify_built *b)
{
	struct campaign_to to = { .contact_id = rc->contact_id,
	    .email = rc->email };

	return campaign_message(r->cfg, r->st, r->c, &r->body, &to, b,
	    r->err);
}

/* Inside the batch's transaction: the recipient and its row together. */
static int
campaign_queued_cb(struct store *st, size_t i, int64_t oid, void *ctx,
    char *err)
{
	struct campaign_run *r = ctx;

	if (i >= r->npend) {
		pd_err(err, "campaign: batch row %zu of %zu", i, r->npend);
		return -1;
	}
	return store_campaign_rcpt_set(st, r->pend[i].rcpt_id, "queued",
	    r->pend[i].message_id, oid, "", err);
}

/*
 * Progress counts what is committed: recipients queued in a batch
 * whose transaction is done, or skipped and resumed (each its own
 * write).  A recipient built and added to a batch that then fails to
 * commit was never queued, and is never reported as such.
 */
static void
campaign_progress(struct campaign_run *r)
{
	r->done = r->base + r->stats->queued + r->stats->skipped +
	    r->stats->resumed;
	if (r->progress != NULL)
		r->progress(r->done, r->stats->total, r->pctx);
}

static int
campaign_flush(struct campaign_run *r, char *err)
{
	size_t n = 0;
	int rc = outq_enqueue_commit(r->q, campaign_queued_cb, r, &n, err);

	r->npend = 0;
	r->stats->queued += n;
	return rc != 0 ? -1 : 0;
}

/*
 * pending/queuing -> queued (or skipped), exactly once.  A queued
 * recipient's state changes in the transaction that inserts its row
 * (campaign_flush), so there is no window where one is true without the
 * other; "queuing" rows are left only by runs of older versions.
 */
static int
campaign_one(struct campaign_run *r, const struct store_campaign_rcpt *rc)
{
	struct notify_built b;
	struct outq_item it;
	struct eligible_ask a;
	struct eligible_verdict v;
	int64_t oid = 0;
	int ok;

	/* A run killed between recording the Message-ID and queueing: the
	 * outbound row tells whether the queueing happened. */
	if (strcmp(rc->state, "queuing") == 0 && rc->message_id[0] != '\0') {
		ok = store_outbound_by_msgid(r->st, r->c->account_id,
		    rc->message_id, &oid, r->err);
		if (ok < 0)
			return -1;
		if (ok == 1) {
			r->stats->resumed++;
			return store_campaign_rcpt_set(r->st, rc->id, "queued",
			    rc->message_id, oid, "", r->err);
		}
	}
	a = (struct eligible_ask){ .kind = ELIGIBLE_NEWSLETTER,
	    .when = ELIGIBLE_CHOOSE, .account_id = r->c->account_id,
	    .rcpt = rc->email, .contact_id = rc->contact_id,
	    .purpose_id = r->c->purpose_id, .now = pd_now() };
	ok = eligible_check(r->cfg, r->st, &a, &v, r->err);
	if (ok < 0)
		return -1;
	if (ok == 0) {
		/* The audience's word, so `campaign show` counts skips by
		 * the reasons it explains the audience with. */
		r->stats->skipped++;
		return store_campaign_rcpt_set(r->st, rc->id, "skipped", NULL, 0,
		    eligible_why_name(v.why), r->err);
	}
	if (campaign_build(r, rc, &b) != 0)
		return -1;
	it = (struct outq_item){ .account_id = r->c->account_id,
	    .account = r->c->account, .dossier_id = 0, .kind = "newsletter",
	    .rcpt = rc->email, .from_domain = b.from_domain,
	    .msg_path = b.path, .message_id = b.message_id };
	if (outq_enqueue_add(r->q, &it, r->err) != 0)
		return -1;
	r->pend[r->npend].rcpt_id = rc->id;
	snprintf(r->pend[r->npend].message_id,
	    sizeof(r->pend[r->npend].message_id), "%s", b.message_id);
	r->npend++;
	if (r->npend == CAMPAIGN_BATCH)
		return campaign_flush(r, r->err);
	return 0;
}

static int
campaign_rcpt_cb(const struct store_campaign_rcpt *rc, void *ctx)
{
	struct campaign_run *r = ctx;

	r->last_id = rc->id;
	if (campaign_one(r, rc) != 0) {
		r->failed = 1;
		return 1;
	}
	campaign_progress(r);
	return 0;
}

static int
campaign_count_cb(const char *name, int64_t n, void *ctx)
{
	int64_t *v = ctx;

	if (strncmp(name, "r.", 2) == 0) {
		v[0] += n;
		if (strcmp(name, "r.pending") != 0 &&
		    strcmp(name, "r.queuing") != 0)
			v[1] += n;
	}
	return 0;
}

/* Queue every recipient not yet settled, page by page, then finish. */
static int
campaign_run_all(struct campaign_run *r, int64_t id, char *err)
{
	int rc;

	for (;;) {
		rc = store_campaign_rcpt_next(r->st, id, r->last_id,
		    CAMPAIGN_PAGE, campaign_rcpt_cb, r, err);
		if (rc < 0 || r->failed) {
			/* Keep what was built before the failure; err stays
			 * the first failure's. */
			char err2[PD_ERRLEN];

			if (campaign_flush(r, err2) != 0)
				log_warn("campaign %lld: %s", (long long)id,
				    err2);
			campaign_progress(r);
			return -1;
		}
		if (rc == 0)
			break;
	}
	if (campaign_flush(r, err) != 0) {
		campaign_progress(r);
		return -1;
	}
	campaign_progress(r);
	return store_campaign_finish(r->st, id, pd_now(), err);
}

int
campaign_send(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, int64_t id, campaign_progress_fn progress,
    void *ctx, struct campaign_stats *stats, char *err)
{
	struct store_campaign c;
	struct campaign_run r;
	int64_t counts[2] = { 0, 0 };
	int rc;

	memset(stats, 0, sizeof(*stats));
	if (campaign_start(cfg, st, id, &stats->audience, err) < 0)
		return -1;
	if ((rc = store_campaign_get(st, id, &c, err)) != 1) {
		if (rc == 0)
			pd_err(err, "no campaign %lld", (long long)id);
		return -1;
	}
	if (store_campaign_counts(st, id, campaign_count_cb, counts, err) != 0)
		return -1;
	stats->total = counts[0];
	memset(&r, 0, sizeof(r));
	r = (struct campaign_run){ .cfg = cfg, .st = st, .q = q, .c = &c,
	    .stats = stats, .progress = progress, .pctx = ctx,
	    .base = counts[1], .done = counts[1], .err = err };
	if (campaign_body_load(cfg, st, &c, &r.body, err) != 0)
		return -1;
	rc = campaign_run_all(&r, id, err);
	campaign_body_free(&r.body);
	return rc;
}

/* ---- notices ---- */

struct campaign_notice_run {
	const struct pd_config *cfg;
	struct outq_ctx *q;		/* NULL: a dry run */
	struct store *st;
	const char *account;
	int64_t account_id;
	const char *tmpl;
	const char *locale;
	campaign_notice_fn each;
	void *ctx;
	struct campaign_notice_stats *stats;
	char *err;
	int failed;
};

static int
campaign_notice_queue(struct campaign_notice_run *n, const char *email)
{
	struct outmsg_header auto_sub = { "Auto-Submitted", "auto-generated" };
	struct notify_mail m;
	struct notify_built b;
	struct outq_item it;
	json_t *data = json_pack("{s:{s:s}}", "contact", "email", email);
	int rc;

	m = (struct notify_mail){ .st = n->st, .account = n->account,
	    .tmpl = n->tmpl, .locale = n->locale, .to = email,
	    .data = data, .extra = &auto_sub, .n_extra = 1 };
	rc = notify_build_mail(n->cfg, &m, &b, n->err);
	json_decref(data);
	if (rc != 0)
		return -1;
	it = (struct outq_item){ .account_id = n->account_id,
	    .account = n->account, .kind = "notice", .rcpt = email,
	    .from_domain = b.from_domain, .msg_path = b.path,
	    .message_id = b.message_id };
	return outq_enqueue(n->q, &it, NULL, n->err);
}

/* Why this contact gets no notice: NULL (it does), or the reason. */
static const char *
campaign_notice_why(struct campaign_notice_run *n,
    const struct store_contact *c, int *failed)
{
	struct eligible_ask a = { .kind = ELIGIBLE_NOTICE,
	    .when = ELIGIBLE_CHOOSE, .account_id = n->account_id,
	    .rcpt = c->email, .now = pd_now() };
	struct eligible_verdict v;
	int ok = eligible_check(n->cfg, n->st, &a, &v, n->err);

	if (ok < 0) {
		*failed = 1;
		return NULL;
	}
	if (ok == 0) {
		if (v.why == EW_BOUNCED)
			n->stats->bounced++;
		else if (v.why == EW_ERASED)
			n->stats->erased++;
		else
			n->stats->suppressed++;
		return eligible_why_name(v.why);
	}
	if (!outmsg_addr_valid(c->email, 0)) {
		n->stats->invalid++;
		return "invalid address";
	}
	return NULL;
}

static int
campaign_notice_cb(const struct store_contact *c, void *ctx)
{
	struct campaign_notice_run *n = ctx;
	const char *why;
	int failed = 0;

	n->stats->total++;
	why = campaign_notice_why(n, c, &failed);
	if (failed || (n->each != NULL && n->each(c->email, why, n->ctx) != 0))
		goto fail;
	if (why != NULL)
		return 0;
	if (n->q != NULL && campaign_notice_queue(n, c->email) != 0)
		goto fail;
	n->stats->queued++;
	return 0;
fail:
	n->failed = 1;
	return 1;
}

int
campaign_notice(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, const char *account, int64_t account_id,
    const char *tmpl, const char *locale, campaign_notice_fn each,
    void *ctx, struct campaign_notice_stats *stats, char *err)
{
	struct campaign_notice_run n = { cfg, q, st, account, account_id, tmpl,
	    locale, each, ctx, stats, err, 0 };

	memset(stats, 0, sizeof(*stats));
	if (store_contact_list(st, account_id, campaign_notice_cb, &n, err) != 0
	    || n.failed)
		return -1;
	return 0;
}

/*
 * dossier_review.c - a person's decisions on a dossier: file a document
 * under an item, accept it, reject it with a reason, close the dossier.
 * Each change is one savepoint with everything it sets off (the item's
 * state, the history naming who, dossier.completed once, the message
 * to the contact), so a failure changes nothing and a success leaves
 * nothing half done.  With a queue, all of it runs on the queue's own
 * store connection: the message and the change commit together, and no
 * second connection waits on the first one's write lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dossier.h"
#include "lib/util.h"
#include "outbound/notify.h"
#include "outbound/outq.h"
#include "store/store.h"

#define REVIEW_REASON_MAX 1000

/* The environment a change runs in: env itself, on the queue's store
 * connection when there is a queue (outq_enqueue's BEGIN then nests as
 * a savepoint of ours). */
static void
dr_env(const struct dossier_env *env, struct dossier_env *e)
{
	*e = *env;
	if (env->q != NULL)
		e->st = outq_store(env->q);
}

/* The document, its open dossier and its item (it_r->id 0: none). */
static int
dr_load(const struct dossier_env *env, int64_t account_id, int64_t doc_id,
    struct store_doc_row *doc, struct store_dossier *d,
    struct store_item *it, char *err)
{
	int rc;

	memset(it, 0, sizeof(*it));
	if (account_id <= 0) {
		pd_err(err, "no account given");
		return DOSSIER_EINVAL;
	}
	rc = store_document_get(env->st, account_id, doc_id, doc, err);
	if (rc == 0) {
		pd_err(err, "document %lld not found", (long long)doc_id);
		return DOSSIER_ENOTFOUND;
	}
	if (rc < 0 || (rc = store_dossier_get(env->st, account_id,
	    doc->dossier_id, d, err)) < 0)
		return -1;
	if (rc == 0) {
		pd_err(err, "document %lld not found", (long long)doc_id);
		return DOSSIER_ENOTFOUND;
	}
	if (strcmp(d->status, "open") != 0) {
		pd_err(err, "dossier %s is closed: reopen is not possible, its "
		    "documents stay as they are", d->ref);
		return DOSSIER_EINVAL;
	}
	if (doc->item_id != 0 && store_item_by_id(env->st, account_id,
	    doc->item_id, it, err) < 0)
		return -1;
	return 0;
}

/* Re-read what the front end shows after the change. */
static int
dr_result(const struct dossier_env *env, int64_t account_id, int64_t doc_id,
    struct dossier_review *r, char *err)
{
	memset(&r->item, 0, sizeof(r->item));
	if (store_document_get(env->st, account_id, doc_id, &r->doc, err) != 1)
		return -1;
	if (r->doc.item_id != 0 && store_item_by_id(env->st, account_id,
	    r->doc.item_id, &r->item, err) != 1)
		return -1;
	return 0;
}

static int
dr_event(const struct dossier_env *env, const struct store_dossier *d,
    const char *kind, const char *detail, char *err)
{
	return store_event_add(env->st, d->account_id, d->id, kind, detail,
	    err);
}

/*
 * After a change that may complete the dossier: dossier.completed once,
 * and the completion message when the account asks for it.
 */
static int
dr_completion(const struct dossier_env *env, const struct store_dossier *d,
    struct dossier_review *r, char *err)
{
	struct notify_env ne = { env->cfg, env->st, env->q };
	int complete, announced;

	if (store_dossier_completion(env->st, d->id, &complete, &announced,
	    err) != 0)
		return -1;
	if (!complete || announced)
		return 0;
	r->completed = 1;
	if (dr_event(env, d, "dossier.completed", "", err) != 0)
		return -1;
	if (env->cfg == NULL || !notify_wants_completion(env->cfg,
	    env->st, d->account))
		return 0;
	/* Announced is for good: without a queue the message would never
	 * go, so the change that completes the dossier waits for one. */
	if (env->q == NULL) {
		pd_err(err, "no outbound queue to tell the contact her dossier "
		    "is complete");
		return -1;
	}
	return notify_completed(&ne, d, &r->mail_id, err);
}

/* item.received when an item now waits for review because of doc. */
static int
dr_item_event(const struct dossier_env *env, const struct store_dossier *d,
    int64_t item_id, int64_t doc_id, char *err)
{
	struct store_item it;
	char detail[256];

	if (item_id == 0 || store_item_by_id(env->st, d->account_id, item_id,
	    &it, err) != 1 || strcmp(it.state, "received") != 0)
		return 0;
	snprintf(detail, sizeof(detail), "item=%s document=%lld state=%s",
	    it.slug, (long long)doc_id, it.state);
	return dr_event(env, d, "item.received", detail, err);
}

/* ---- assign ---- */

static int
dr_assign_sp(const struct dossier_env *env, const struct store_dossier *d,
    const struct store_doc_row *doc, const struct store_item *to,
    struct dossier_review *r, char *err)
{
	char detail[256];
	int changed = 0;

	snprintf(detail, sizeof(detail), "document=%lld item=%s from=%s by=%s",
	    (long long)doc->id, to->id ? to->slug : "none", doc->item_id ?
	    doc->item_slug : "none", env->actor ? env->actor : "");
	if (store_document_set_item(env->st, d->account_id, doc->id, to->id,
	    err) != 0 ||
	    (doc->item_id != 0 && store_item_refresh(env->st, doc->item_id,
	    &changed, err) != 0) ||
	    (to->id != 0 && store_item_refresh(env->st, to->id, &changed,
	    err) != 0) ||
	    dr_event(env, d, "document.assigned", detail, err) != 0 ||
	    (changed && dr_item_event(env, d, to->id, doc->id, err) != 0))
		return -1;
	return dr_completion(env, d, r, err);
}

static int
dr_assign(const struct dossier_env *env, int64_t account_id,
    int64_t doc_id, const char *item, struct dossier_review *r, char *err)
{
	struct store_doc_row doc;
	struct store_dossier d;
	struct store_item cur, to;
	int rc;

	memset(r, 0, sizeof(*r));
	memset(&to, 0, sizeof(to));
	if ((rc = dr_load(env, account_id, doc_id, &doc, &d, &cur, err)) != 0)
		return rc;
	/* NULL (the API's "item": null) is "none". */
	if (item != NULL && strcmp(item, "none") != 0) {
		rc = dossier_item_find(env->st, account_id, d.id, item, &to,
		    err);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			pd_err(err, "dossier %s has no item \"%s\" (see "
			    "`postdoc dossier show %lld`)", d.ref, item,
			    (long long)d.id);
			return DOSSIER_ENOTFOUND;
		}
	}
	if (to.id == doc.item_id) {
		r->unchanged = 1;
		return dr_result(env, account_id, doc_id, r, err);
	}
	if (store_begin(env->st, err) != 0)
		return -1;
	rc = dr_assign_sp(env, &d, &doc, &to, r, err);
	if (dossier_tx_end(env->st, rc == 0, err) != 0)
		return -1;
	return dr_result(env, account_id, doc_id, r, err);
}

int
dossier_document_assign(const struct dossier_env *env, int64_t account_id,
    int64_t doc_id, const char *item, struct dossier_review *r, char *err)
{
	struct dossier_env e;

	dr_env(env, &e);
	return dr_assign(&e, account_id, doc_id, item, r, err);
}

/* ---- accept, reject ---- */

static int
dr_review_sp(const struct dossier_env *env, const struct store_dossier *d,
    const struct store_doc_row *doc, const struct store_item *it,
    const char *reason, struct dossier_review *r, char *err)
{
	struct notify_env ne = { env->cfg, env->st, env->q };
	const char *verdict = reason != NULL ? "rejected" : "accepted";
	char detail[1400];
	int changed = 0;

	snprintf(detail, sizeof(detail), "document=%lld item=%s by=%s%s%s",
	    (long long)doc->id, it->id ? it->slug : "none", env->actor ?
	    env->actor : "", reason ? " reason=" : "", reason ? reason : "");
	if (store_document_review(env->st, d->account_id, doc->id, verdict,
	    reason, env->actor, err) != 0 ||
	    (it->id != 0 && store_item_refresh(env->st, it->id, &changed,
	    err) != 0) ||
	    dr_event(env, d, reason ? "document.rejected" :
	    "document.accepted", detail, err) != 0)
		return -1;
	if (reason != NULL) {
		struct store_doc_row now;
		struct store_item it_now;

		/* The message describes the document and its item as they
		 * are now: rejected, asked again. */
		if (store_document_get(env->st, d->account_id, doc->id, &now,
		    err) != 1 || (it->id != 0 && store_item_by_id(env->st,
		    d->account_id, it->id, &it_now, err) != 1))
			return -1;
		return notify_rejection(&ne, d, &now, it->id ? &it_now : NULL,
		    reason, &r->mail_id, err);
	}
	return dr_completion(env, d, r, err);
}

static int
dr_review(const struct dossier_env *env_in, int64_t account_id,
    int64_t doc_id, const char *reason, struct dossier_review *r, char *err)
{
	const struct dossier_env *env;
	struct dossier_env e;
	struct store_doc_row doc;
	struct store_dossier d;
	struct store_item it;
	int rc;

	memset(r, 0, sizeof(*r));
	dr_env(env_in, &e);
	env = &e;
	if ((rc = dr_load(env, account_id, doc_id, &doc, &d, &it, err)) != 0)
		return rc;
	if (reason == NULL && doc.item_id == 0) {
		pd_err(err, "document %lld is not filed under an item of "
		    "dossier %s: assign it first (postdoc document assign "
		    "%lld ITEM)", (long long)doc_id, d.ref, (long long)doc_id);
		return DOSSIER_EINVAL;
	}
	if (strcmp(doc.review, reason ? "rejected" : "accepted") == 0) {
		r->unchanged = 1;
		return dr_result(env, account_id, doc_id, r, err);
	}
	if (reason != NULL && env->q == NULL) {
		pd_err(err, "no outbound queue to tell the contact");
		return -1;
	}
	if (store_begin(env->st, err) != 0)
		return -1;
	rc = dr_review_sp(env, &d, &doc, &it, reason, r, err);
	if (dossier_tx_end(env->st, rc == 0, err) != 0)
		return -1;
	return dr_result(env, account_id, doc_id, r, err);
}

int
dossier_document_accept(const struct dossier_env *env, int64_t account_id,
    int64_t doc_id, struct dossier_review *r, char *err)
{
	return dr_review(env, account_id, doc_id, NULL, r, err);
}

int
dossier_document_reject(const struct dossier_env *env, int64_t account_id,
    int64_t doc_id, const char *reason, struct dossier_review *r, char *err)
{
	char buf[REVIEW_REASON_MAX + 1];
	size_t n, i = 0;

	memset(r, 0, sizeof(*r));
	if (reason == NULL || strlen(reason) > REVIEW_REASON_MAX) {
		pd_err(err, "a rejection needs a reason of at most %d bytes: "
		    "it is sent to the contact", REVIEW_REASON_MAX);
		return DOSSIER_EINVAL;
	}
	while (reason[i] == ' ' || reason[i] == '\t')
		i++;
	snprintf(buf, sizeof(buf), "%s", reason + i);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	/* A reason is one paragraph: newlines would break the history's
	 * lines and the message's layout. */
	if (n == 0 || !dossier_valid_text(buf, REVIEW_REASON_MAX)) {
		pd_err(err, "a rejection needs a reason (text, no control "
		    "characters or line breaks): it is sent to the contact");
		return DOSSIER_EINVAL;
	}
	return dr_review(env, account_id, doc_id, buf, r, err);
}

/* ---- close ---- */

int
dossier_close_with(const struct dossier_env *env_in, int64_t account_id,
    int64_t id, int notify, int *was_closed_r, struct store_dossier *d_r,
    int64_t *mail_id_r, char *err)
{
	struct dossier_env e;
	const struct dossier_env *env = &e;
	struct notify_env ne;
	int rc;

	dr_env(env_in, &e);
	ne = (struct notify_env){ env->cfg, env->st, env->q };
	*mail_id_r = 0;
	if (notify && env->q == NULL) {
		pd_err(err, "no outbound queue to tell the contact");
		return -1;
	}
	/* Another account's dossier, or none: not found, as for a review
	 * (account_id 0: any, the operator's CLI, as dossier_close). */
	rc = store_dossier_get(env->st, account_id, id, d_r, err);
	if (rc <= 0) {
		if (rc == 0)
			pd_err(err, "dossier %lld not found", (long long)id);
		return rc == 0 ? DOSSIER_ENOTFOUND : -1;
	}
	if (store_begin(env->st, err) != 0)
		return -1;
	rc = dossier_close(env->st, account_id, id, was_closed_r, d_r, err);
	if (rc == 0 && notify && !*was_closed_r)
		rc = notify_closing(&ne, d_r, mail_id_r, err);
	if (dossier_tx_end(env->st, rc == 0, err) != 0)
		return -1;
	return rc;
}

/*
 * outq_deliver.c - one delivery: the last look before the transport
 * (eligible.c's verdict, the blob), the transport's deliver
 * hook for a batch of one domain, and recording each outcome (row,
 * suppression, events) durably before counting and logging it: into
 * the journal first, then the store (an outcome the store refuses is
 * kept and retried: outq_journal.c).  Never claims rows: the runners
 * hand them over.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/blob.h"
#include "lib/config.h"
#include "eligible.h"
#include "events/metrics.h"
#include "outq.h"
#include "outq_int.h"
#include "plugin/plugin_host.h"
#include "store/store.h"
#include "lib/util.h"

/* ---- outcomes ---- */

static void
outq_stats_add(struct outq_stats *s, const char *state)
{
	if (s == NULL)
		return;
	if (strcmp(state, "sent") == 0)
		s->sent++;
	else if (strcmp(state, "deferred") == 0)
		s->deferred++;
	else if (strcmp(state, "bounced") == 0)
		s->bounced++;
	else if (strcmp(state, "failed") == 0)
		s->failed++;
}

/*
 * The public events plugins see (evq.c, docs/webhooks.md), in the
 * transaction of the change: invitation.sent, message.bounced (also for
 * mail not tied to a dossier: then account-level).  "reason" goes last:
 * it is free text and runs to the end of the detail.
 */
static int
outq_public_event(struct store *st, const struct store_outbound *o,
    const struct outq_outcome *oc, char *err)
{
	char detail[1024];

	if (strcmp(oc->state, "sent") == 0 &&
	    strcmp(o->kind, "invitation") == 0) {
		snprintf(detail, sizeof(detail), "outbound=%lld rcpt=%s",
		    (long long)o->id, o->rcpt);
		return store_event_add(st, o->account_id, o->dossier_id,
		    "invitation.sent", detail, err);
	}
	if (strcmp(oc->state, "bounced") != 0)
		return 0;
	snprintf(detail, sizeof(detail), "outbound=%lld kind=%s rcpt=%s "
	    "code=%d enhanced=%s reason=%s", (long long)o->id, o->kind,
	    o->rcpt, oc->code, oc->enhanced[0] != '\0' ? oc->enhanced : "-",
	    oc->text);
	return store_event_add(st, o->account_id, o->dossier_id,
	    "message.bounced", detail, err);
}

/* A row's outcome: state, suppression, events; in the caller's BEGIN. */
static int
outq_record_rows(struct store *st, const struct pd_config *cfg,
    const struct store_outbound *o, const struct outq_outcome *oc, char *err)
{
	char detail[1024];

	if (store_outbound_update(st, o->id, oc->state, oc->code,
	    oc->enhanced, oc->text, oc->next_attempt, err) != 0)
		return -1;
	if (oc->suppress && store_suppression_add(st, o->account_id, o->rcpt,
	    oc->reason, pd_now() + cfg->suppression_days * OUTQ_DAY, err) != 0)
		return -1;
	snprintf(detail, sizeof(detail), "id=%lld rcpt=%s: %d %s %s",
	    (long long)o->id, o->rcpt, oc->code, oc->enhanced, oc->text);
	if (o->dossier_id != 0 && store_event_add(st, o->account_id,
	    o->dossier_id, oc->event, detail, err) != 0)
		return -1;
	return outq_public_event(st, o, oc, err);
}

/*
 * Row update, suppression and dossier event in one transaction: a row
 * recorded "bounced" always has its suppression, and a crash before the
 * commit leaves the row "sending", to be retried after recovery.
 */
int
outq_record(struct store *st, const struct pd_config *cfg,
    const struct store_outbound *o, const struct outq_outcome *oc, char *err)
{
	if (store_begin(st, err) != 0)
		return -1;
	if (outq_record_rows(st, cfg, o, oc, err) != 0 ||
	    store_commit(st, err) != 0) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

/* postdoc_deliveries_total{result} for a recorded outcome. */
void
outq_count(const char *state)
{
	if (strcmp(state, "sent") == 0)
		metrics_delivery(MD_SENT);
	else if (strcmp(state, "deferred") == 0)
		metrics_delivery(MD_DEFERRED);
	else if (strcmp(state, "bounced") == 0)
		metrics_delivery(MD_BOUNCED);
	else if (strcmp(state, "failed") == 0)
		metrics_delivery(MD_FAILED);
}

/* After the outcome is durable: counters and the log line. */
static void
outq_done(const struct store_outbound *o, const struct outq_outcome *oc,
    struct outq_stats *stats)
{
	outq_stats_add(stats, oc->state);
	outq_count(oc->state);
	log_info("out-%lld: to=<%s> status=%s %d %s %s", (long long)o->id,
	    o->rcpt, oc->state, oc->code, oc->enhanced, oc->text);
}

/*
 * The store refused the outcome (disk full, locked past the busy
 * timeout).  The transport may have accepted the message: keep the
 * outcome (in its journal slot, or in memory if it has none) and record
 * it later, so the row never goes back to "deferred" and out again.
 */
static void
outq_keep(struct outq_ctx *q, const struct store_outbound *o,
    const struct outq_outcome *oc, int slot, const char *why)
{
	struct outq_jrec rec;

	if (q->jn == NULL) {
		/* Left "sending": recovery retries it. */
		log_err("out-%lld: cannot record %s: %s", (long long)o->id,
		    oc->state, why);
		return;
	}
	log_err("out-%lld: cannot record %s: %s; kept %s and retried",
	    (long long)o->id, oc->state, why, slot >= 0 ? "in the journal" :
	    "in memory");
	outq_jrec_pack(&rec, o, oc);
	outq_journal_keep(q->jn, slot, &rec);
}

static void
outq_finish(struct outq_ctx *q, const struct store_outbound *o,
    const struct outq_outcome *oc, int slot, struct outq_stats *stats)
{
	char err[PD_ERRLEN];

	if (outq_record(q->st, q->cfg, o, oc, err) != 0) {
		outq_keep(q, o, oc, slot, err);
		return;
	}
	if (q->jn != NULL)
		outq_journal_clear(q->jn, slot);
	outq_done(o, oc, stats);
}

/*
 * A delivered batch's outcomes in one transaction: one WAL commit for
 * the session instead of one per message.  Every outcome of the batch
 * is in the journal before the transaction starts, so a crash at any
 * point after the transport answered loses none of them.  If the
 * transaction fails, each outcome is recorded on its own, so one bad
 * row does not hold back the others.
 */
static void
outq_finish_batch(struct outq_ctx *q, const struct store_outbound *rows,
    const size_t *map, const struct outq_outcome *oc, const int *slots,
    size_t k, struct outq_stats *stats)
{
	char err[PD_ERRLEN];
	size_t i;

	if (k == 0)
		return;
	if (store_begin(q->st, err) != 0)
		goto one_by_one;
	for (i = 0; i < k; i++)
		if (outq_record_rows(q->st, q->cfg, &rows[map[i]], &oc[i],
		    err) != 0)
			break;
	if (i < k || store_commit(q->st, err) != 0) {
		store_rollback(q->st);
		goto one_by_one;
	}
	for (i = 0; i < k; i++) {
		if (q->jn != NULL)
			outq_journal_clear(q->jn, slots[i]);
		outq_done(&rows[map[i]], &oc[i], stats);
	}
	return;
one_by_one:
	log_warn("outbound: recording %zu outcomes at once: %s; one by one",
	    k, err);
	for (i = 0; i < k; i++)
		outq_finish(q, &rows[map[i]], &oc[i], slots[i], stats);
}

/*
 * An outcome the journal kept: recorded only if its row is still in
 * the attempt it belongs to ("sending", same attempt number), so a
 * stale record can never overwrite a later attempt.  1 recorded, 0
 * stale (dropped), -1 the store still refuses it.
 */
int
outq_replay(struct outq_ctx *q, const struct outq_jrec *r,
    struct outq_stats *stats)
{
	struct store_outbound row, o;
	struct outq_outcome oc;
	char err[PD_ERRLEN];
	int rc;

	outq_jrec_unpack(r, &o, &oc);
	if (store_begin(q->st, err) != 0)
		goto fail;
	if ((rc = store_outbound_get(q->st, 0, o.id, &row, err)) < 0)
		goto rollback;
	if (rc == 0 || strcmp(row.state, "sending") != 0 ||
	    row.attempts != o.attempts) {
		store_rollback(q->st);
		log_info("out-%lld: kept outcome %s of attempt %d dropped: "
		    "the row is %s (attempt %d)", (long long)o.id, oc.state,
		    o.attempts, rc == 0 ? "gone" : row.state, row.attempts);
		return 0;
	}
	if (outq_record_rows(q->st, q->cfg, &o, &oc, err) != 0 ||
	    store_commit(q->st, err) != 0)
		goto rollback;
	outq_done(&o, &oc, stats);
	return 1;
rollback:
	store_rollback(q->st);
fail:
	log_err("out-%lld: cannot record %s yet: %s", (long long)o.id,
	    oc.state, err);
	return -1;
}

static void
outq_fail_row(struct outq_ctx *q, const struct store_outbound *o,
    const char *state, const char *text, struct outq_stats *stats)
{
	struct postdoc_delivery res;
	struct outq_outcome oc;

	if (strcmp(state, "failed") == 0) {
		memset(&oc, 0, sizeof(oc));
		oc.state = "failed";
		oc.event = "outbound.failed";
		oc.enhanced = "";
		snprintf(oc.text, sizeof(oc.text), "%s", text);
	} else {
		memset(&res, 0, sizeof(res));
		snprintf(res.text, sizeof(res.text), "%s", text);
		outq_classify(q->cfg, o, &res, pd_now(), &oc);
	}
	outq_finish(q, o, &oc, -1, stats);
}

/*
 * Last look before the transport: an address suppressed since the row
 * was queued (a DSN for another message) must not be mailed again; an
 * erased address (privacy.c: only its keyed hash is left) gets nothing
 * that is not about one of its dossiers, so no marketing; and for a
 * newsletter consent, age attestation and bounces are checked again as
 * the message leaves, so a withdrawal beats the queue (eligible.c).
 */
static int
outq_precheck(struct outq_ctx *q, const struct store_outbound *o,
    struct outq_stats *stats)
{
	struct eligible_ask a = { .kind = eligible_kind_of(o->kind,
	    o->dossier_id), .when = ELIGIBLE_LEAVE, .account_id =
	    o->account_id, .rcpt = o->rcpt, .message_id = o->message_id,
	    .now = pd_now() };
	struct eligible_verdict v;
	char err[PD_ERRLEN];
	int rc = eligible_check(q->cfg, q->st, &a, &v, err);

	if (rc != 1) {
		outq_fail_row(q, o, rc < 0 ? "deferred" : "failed", rc < 0 ?
		    err : v.reason, stats);
		return 0;
	}
	if (!blob_exists(q->bs, o->sha256)) {
		outq_fail_row(q, o, "failed", "queued message file is missing",
		    stats);
		return 0;
	}
	return 1;
}

/*
 * A journal slot for each row about to go out.  A row without one
 * (every slot holds an outcome the store refused) is not handed to the
 * transport: deferred, it goes out once the outcomes are recorded.
 */
static size_t
outq_reserve(struct outq_ctx *q, const struct store_outbound *rows,
    const size_t *map, int *slots, size_t k, struct outq_stats *stats)
{
	size_t got, i;

	if (q->jn == NULL) {
		for (i = 0; i < k; i++)
			slots[i] = -1;
		return k;
	}
	got = outq_journal_reserve(q->jn, slots, k);
	for (i = got; i < k; i++)
		outq_fail_row(q, &rows[map[i]], "deferred",
		    "no free slot in the outcome journal", stats);
	return got;
}

/* Outcomes into the journal, fdatasync'd, before the store sees them. */
static void
outq_journal_batch(struct outq_ctx *q, const struct store_outbound *rows,
    const size_t *map, const struct outq_outcome *oc, int *slots, size_t k)
{
	struct outq_jrec *recs;
	size_t i;

	if (q->jn == NULL || k == 0)
		return;
	recs = xcalloc(k, sizeof(*recs));
	for (i = 0; i < k; i++)
		outq_jrec_pack(&recs[i], &rows[map[i]], &oc[i]);
	outq_journal_write(q->jn, slots, recs, k);
	free(recs);
}

/* One transport call for rows of one domain (n <= batch_max). */
void
outq_deliver_batch(struct outq_ctx *q, const struct store_outbound *rows,
    size_t n, struct outq_stats *stats)
{
	struct postdoc_outbound_info *info = xcalloc(n, sizeof(*info));
	struct postdoc_delivery *res = xcalloc(n, sizeof(*res));
	char (*paths)[OUTQ_PATH_MAX] = xcalloc(n, OUTQ_PATH_MAX);
	size_t *map = xcalloc(n, sizeof(*map));
	int *slots = xcalloc(n, sizeof(*slots));
	struct outq_outcome *oc = xcalloc(n, sizeof(*oc));
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (outq_precheck(q, &rows[i], stats))
			map[k++] = i;
	k = outq_reserve(q, rows, map, slots, k, stats);
	for (i = 0; i < k; i++) {
		const struct store_outbound *o = &rows[map[i]];

		blob_path(q->bs, o->sha256, paths[i], OUTQ_PATH_MAX);
		info[i] = (struct postdoc_outbound_info){ .id = o->id,
		    .account = o->account, .kind = o->kind,
		    .mail_from = o->mail_from, .rcpt = o->rcpt,
		    .from_domain = o->from_domain, .path = paths[i],
		    .size = o->size };
	}
	if (k > 0)
		plugin_deliver(q->ph, q->cfg->transport, info, k, res);
	for (i = 0; i < k; i++)
		outq_classify(q->cfg, &rows[map[i]], &res[i], pd_now(), &oc[i]);
	outq_journal_batch(q, rows, map, oc, slots, k);
	outq_finish_batch(q, rows, map, oc, slots, k, stats);
	free(oc);
	free(slots);
	free(map);
	free(paths);
	free(res);
	free(info);
}

/*
 * outq_runner.c - the runner of `postdoc serve`: a scheduler thread claims
 * due rows (at the configured rate, once it holds var/outq.lock), splits
 * them into batches by recipient domain, and delivery threads take the
 * batches within outbound.domain_concurrency.  While outcomes wait for
 * the store (outq_journal.c) it retries them and claims nothing.  Also
 * the claiming helpers `queue run` shares.  Never records an outcome
 * itself: outq_deliver.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/config.h"
#include "outq.h"
#include "outq_int.h"
#include "store/store.h"
#include "lib/util.h"

/* ---- claiming and batching ---- */

int
outq_rows_add_cb(const struct store_outbound *o, void *ctx)
{
	struct outq_rows *r = ctx;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
	}
	r->v[r->n++] = *o;
	return 0;
}

static int
outq_row_cmp(const void *a, const void *b)
{
	const struct store_outbound *x = a, *y = b;
	int c = strcmp(x->rcpt_domain, y->rcpt_domain);

	if (c != 0)
		return c;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Group rows by recipient domain into batches of at most batch_max. */
void
outq_split(const struct pd_config *cfg, struct outq_rows *r,
    outq_batch_fn fn, void *ctx)
{
	size_t max = cfg->batch_max > 0 ? (size_t)cfg->batch_max : 1;
	size_t i = 0, j;

	if (r->n == 0)
		return;		/* qsort(NULL, 0) is undefined behaviour */
	qsort(r->v, r->n, sizeof(*r->v), outq_row_cmp);
	while (i < r->n) {
		for (j = i + 1; j < r->n && j - i < max &&
		    strcmp(r->v[j].rcpt_domain, r->v[i].rcpt_domain) == 0; j++)
			;
		fn(&r->v[i], j - i, ctx);
		i = j;
	}
}

void
outq_bucket_init(struct outq_bucket *b, int64_t rate)
{
	b->rate = rate > 0 ? (double)rate : 0;
	b->tokens = b->rate;
	b->last_ms = pd_monotonic_ms();
}

/* Take up to want tokens now (all of them when the rate is unlimited). */
int
outq_bucket_take(struct outq_bucket *b, int want)
{
	int64_t now = pd_monotonic_ms();
	int n;

	if (b->rate <= 0)
		return want;
	b->tokens += (double)(now - b->last_ms) * b->rate / 1000.0;
	if (b->tokens > b->rate)
		b->tokens = b->rate;
	b->last_ms = now;
	n = b->tokens < (double)want ? (int)b->tokens : want;
	b->tokens -= n;
	return n;
}

/* Tokens taken for rows that were not there to claim. */
void
outq_bucket_give(struct outq_bucket *b, int n)
{
	if (b->rate > 0 && n > 0)
		b->tokens += n;
}

/* ---- the runner of `postdoc serve` ---- */

struct outq_batch {
	struct outq_batch *next;
	size_t n;
	struct store_outbound *rows;	/* one domain, owned */
};

struct outq_domain {
	char name[256];
	int inflight;
};

struct outq_worker {
	struct outq_runner *r;
	struct outq_ctx *q;
	pthread_t tid;
	int started;
};

struct outq_runner {
	const struct pd_config *cfg;
	struct plugin_host *ph;
	pthread_mutex_t mu;
	pthread_cond_t work;	/* a batch queued, a domain slot freed, stop */
	pthread_cond_t tick;	/* the scheduler's sleep, cut short by kick */
	int stopping;
	int kick;		/* workers drained the list: claim again now */
	struct outq_batch *head, *tail;	/* claimed, not started */
	size_t pending;			/* rows in that list */
	struct outq_domain *domains;
	size_t ndomains;
	struct outq_journal *jn;	/* shared by every delivery thread */
	/* scheduler thread only */
	struct outq_ctx *sq;
	struct outq_bucket bucket;
	int lockfd;
	int recovered;			/* since the lock was taken */
	int jn_failed;			/* journal open failure logged */
	pthread_t sched;
	int sched_started;
	int nworkers;
	struct outq_worker *workers;
};

/* Slot for a domain's in-flight count; mu held. */
static struct outq_domain *
outq_domain_slot(struct outq_runner *r, const char *name)
{
	struct outq_domain *free_slot = NULL;
	size_t i;

	for (i = 0; i < r->ndomains; i++) {
		if (strcmp(r->domains[i].name, name) == 0)
			return &r->domains[i];
		if (r->domains[i].inflight == 0 && free_slot == NULL)
			free_slot = &r->domains[i];
	}
	if (free_slot == NULL) {
		r->domains = xrealloc(r->domains, (r->ndomains + 1) *
		    sizeof(*r->domains));
		free_slot = &r->domains[r->ndomains++];
	}
	snprintf(free_slot->name, sizeof(free_slot->name), "%s", name);
	free_slot->inflight = 0;
	return free_slot;
}

/* First queued batch whose domain has a free slot; mu held. */
static struct outq_batch *
outq_batch_take(struct outq_runner *r)
{
	struct outq_batch *prev = NULL, *b;
	struct outq_domain *d;

	for (b = r->head; b != NULL; prev = b, b = b->next) {
		d = outq_domain_slot(r, b->rows[0].rcpt_domain);
		if (d->inflight >= r->cfg->domain_concurrency)
			continue;
		d->inflight++;
		if (prev != NULL)
			prev->next = b->next;
		else
			r->head = b->next;
		if (r->tail == b)
			r->tail = prev;
		r->pending -= b->n;
		return b;
	}
	return NULL;
}

static void
outq_batch_free(struct outq_batch *b)
{
	free(b->rows);
	free(b);
}

static void *
outq_worker_main(void *arg)
{
	struct outq_worker *w = arg;
	struct outq_runner *r = w->r;
	struct outq_batch *b = NULL;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->stopping && (b = outq_batch_take(r)) == NULL)
			pthread_cond_wait(&r->work, &r->mu);
		if (r->stopping)
			break;
		pthread_mutex_unlock(&r->mu);
		outq_deliver_batch(w->q, b->rows, b->n, NULL);
		pthread_mutex_lock(&r->mu);
		outq_domain_slot(r, b->rows[0].rcpt_domain)->inflight--;
		outq_batch_free(b);
		pthread_cond_broadcast(&r->work);
		/* Nothing left to start: do not idle until the next tick. */
		if (r->head == NULL) {
			r->kick = 1;
			pthread_cond_signal(&r->tick);
		}
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void
outq_runner_batch(const struct store_outbound *rows, size_t n, void *ctx)
{
	struct outq_runner *r = ctx;
	struct outq_batch *b = xcalloc(1, sizeof(*b));

	b->n = n;
	b->rows = xmalloc(n * sizeof(*rows));
	memcpy(b->rows, rows, n * sizeof(*rows));
	pthread_mutex_lock(&r->mu);
	if (r->tail != NULL)
		r->tail->next = b;
	else
		r->head = b;
	r->tail = b;
	r->pending += n;
	pthread_cond_broadcast(&r->work);
	pthread_mutex_unlock(&r->mu);
}

/*
 * One scheduler pass: claim no more than the delivery threads can start
 * (two rounds of full batches) and the rate allows, then queue batches.
 * Until it holds var/outq.lock the runner claims nothing, so rows it
 * recovers can never be its own.
 */
static void
outq_sched_tick(struct outq_runner *r)
{
	struct outq_rows rows = { NULL, 0, 0 };
	char err[PD_ERRLEN];
	int64_t room;
	int want;

	if (outq_journal_open(r->jn, err) != 0) {
		/* Without it an outcome the store refuses would be lost. */
		if (!r->jn_failed)
			log_err("outbound: nothing is sent: %s", err);
		r->jn_failed = 1;
		return;
	}
	r->jn_failed = 0;
	if (r->lockfd < 0) {
		if ((r->lockfd = outq_lock_try(r->cfg)) < 0)
			return;
		r->recovered = 0;
	}
	if (!r->recovered && outq_recover(r->sq) != 0)
		return;
	r->recovered = 1;
	/* Nothing new goes out while an outcome waits for the store. */
	if (outq_journal_retry(r->jn, r->sq, NULL, 0) > 0)
		return;
	pthread_mutex_lock(&r->mu);
	room = 2 * (int64_t)r->nworkers * r->cfg->batch_max -
	    (int64_t)r->pending;
	pthread_mutex_unlock(&r->mu);
	if (room <= 0)
		return;
	want = outq_bucket_take(&r->bucket, room > OUTQ_CHUNK ? OUTQ_CHUNK :
	    (int)room);
	if (want == 0)
		return;
	if (store_outbound_claim(r->sq->st, pd_now(), want, outq_rows_add_cb,
	    &rows, err) != 0)
		log_err("outbound: claim failed: %s", err);
	outq_bucket_give(&r->bucket, want - (int)rows.n);
	outq_split(r->cfg, &rows, outq_runner_batch, r);
	free(rows.v);
}

static void *
outq_sched_main(void *arg)
{
	struct outq_runner *r = arg;
	struct timespec ts;

	pthread_mutex_lock(&r->mu);
	while (!r->stopping) {
		pthread_mutex_unlock(&r->mu);
		outq_sched_tick(r);
		pthread_mutex_lock(&r->mu);
		pd_deadline_ms(&ts, r->cfg->queue_interval_ms);
		while (!r->stopping && !r->kick &&
		    pthread_cond_timedwait(&r->tick, &r->mu, &ts) != ETIMEDOUT)
			;
		r->kick = 0;
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Claimed but never handed to the transport: back to "queued", due now. */
static void
outq_requeue(struct outq_runner *r)
{
	struct outq_batch *b;
	char err[PD_ERRLEN];
	size_t i;

	while ((b = r->head) != NULL) {
		r->head = b->next;
		for (i = 0; i < b->n; i++)
			if (store_outbound_update(r->sq->st, b->rows[i].id,
			    "queued", b->rows[i].last_code,
			    b->rows[i].last_enhanced, b->rows[i].last_text,
			    pd_now(), err) != 0)
				log_err("out-%lld: cannot requeue: %s",
				    (long long)b->rows[i].id, err);
		outq_batch_free(b);
	}
	r->tail = NULL;
	r->pending = 0;
}

/* At stop: one last try; what the store still refuses stays journaled. */
static void
outq_runner_settle(struct outq_runner *r)
{
	size_t left;

	if (r->jn == NULL || outq_journal_pending(r->jn) == 0)
		return;
	if ((left = outq_journal_retry(r->jn, r->sq, NULL, 1)) > 0)
		log_warn("outbound: %zu outcome(s) left in the journal, "
		    "recorded at the next start", left);
}

static int
outq_runner_init(struct outq_runner *r, char *err)
{
	pthread_condattr_t ca;
	int i;

	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->work, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->tick, &ca);
	pthread_condattr_destroy(&ca);
	r->lockfd = -1;
	outq_bucket_init(&r->bucket, r->cfg->rate);
	r->nworkers = r->cfg->delivery_threads > 0 ?
	    (int)r->cfg->delivery_threads : 1;
	r->workers = xcalloc((size_t)r->nworkers, sizeof(*r->workers));
	r->jn = outq_journal_new(r->cfg);
	if (outq_ctx_new(r->cfg, r->ph, &r->sq, err) != 0 ||
	    outq_transport_check(r->sq, err) != 0)
		return -1;
	r->sq->jn = r->jn;
	for (i = 0; i < r->nworkers; i++) {
		r->workers[i].r = r;
		if (outq_ctx_new(r->cfg, r->ph, &r->workers[i].q, err) != 0)
			return -1;
		r->workers[i].q->jn = r->jn;
	}
	return 0;
}

static int
outq_runner_spawn(struct outq_runner *r, char *err)
{
	int i, rc;

	for (i = 0; i < r->nworkers; i++) {
		rc = pthread_create(&r->workers[i].tid, NULL, outq_worker_main,
		    &r->workers[i]);
		if (rc != 0) {
			pd_err(err, "outbound: pthread_create: %s",
			    strerror(rc));
			return -1;
		}
		r->workers[i].started = 1;
	}
	rc = pthread_create(&r->sched, NULL, outq_sched_main, r);
	if (rc != 0) {
		pd_err(err, "outbound: pthread_create: %s", strerror(rc));
		return -1;
	}
	r->sched_started = 1;
	return 0;
}

int
outq_runner_start(const struct pd_config *cfg, struct plugin_host *ph,
    struct outq_runner **r_r, char *err)
{
	struct outq_runner *r = xcalloc(1, sizeof(*r));

	*r_r = NULL;
	r->cfg = cfg;
	r->ph = ph;
	if (outq_runner_init(r, err) != 0 || outq_runner_spawn(r, err) != 0) {
		outq_runner_stop(&r);
		return -1;
	}
	*r_r = r;
	return 0;
}

void
outq_runner_stop(struct outq_runner **rp)
{
	struct outq_runner *r;
	int i;

	if (rp == NULL || *rp == NULL)
		return;
	r = *rp;
	pthread_mutex_lock(&r->mu);
	r->stopping = 1;
	pthread_cond_broadcast(&r->work);
	pthread_cond_broadcast(&r->tick);
	pthread_mutex_unlock(&r->mu);
	/* The scheduler first: after it, no batch is added any more. */
	if (r->sched_started)
		pthread_join(r->sched, NULL);
	for (i = 0; i < r->nworkers; i++)
		if (r->workers[i].started)
			pthread_join(r->workers[i].tid, NULL);
	if (r->sq != NULL) {
		outq_requeue(r);
		outq_runner_settle(r);
	}
	for (i = 0; i < r->nworkers; i++)
		outq_ctx_free(&r->workers[i].q);
	outq_ctx_free(&r->sq);
	outq_journal_free(&r->jn);
	if (r->lockfd >= 0)
		close(r->lockfd);
	pthread_cond_destroy(&r->tick);
	pthread_cond_destroy(&r->work);
	pthread_mutex_destroy(&r->mu);
	free(r->domains);
	free(r->workers);
	free(r);
	*rp = NULL;
}

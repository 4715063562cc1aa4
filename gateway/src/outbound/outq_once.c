/*
 * outq_once.c - `postdoc queue run`: deliver every due message once,
 * blocking, on outbound.delivery_threads threads with a context each,
 * one domain's batches on one thread.  Never retries a delivery within
 * a run; retries recording an outcome the store refused, for a while,
 * and claims nothing more meanwhile.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/config.h"
#include "outq.h"
#include "outq_int.h"
#include "store/store.h"
#include "lib/util.h"


/*
 * `queue run` delivers on outbound.delivery_threads threads, like serve's
 * runner: each claimed chunk is split into batches; all the batches of
 * one domain go to one thread, one after another (so a domain never has
 * more than one session, within domain_concurrency), different domains
 * at once.  Each thread has its own outq_ctx (store connection).
 */
struct outq_span {
	const struct store_outbound *rows;
	size_t n;
};

struct outq_once {
	struct outq_ctx **qs;		/* one per thread; qs[0] is the caller's */
	int nq;
	struct outq_span *spans;	/* batches of the chunk, by domain */
	size_t nspans, cap;
	size_t next;			/* next span to take, under mu */
	pthread_mutex_t mu;
	struct outq_stats *stats;	/* merged under mu */
};

static void
outq_once_batch(const struct store_outbound *rows, size_t n, void *ctx)
{
	struct outq_once *o = ctx;

	if (o->nspans == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 16;
		o->spans = xrealloc(o->spans, o->cap * sizeof(*o->spans));
	}
	o->spans[o->nspans++] = (struct outq_span){ rows, n };
}

/* The next domain's batches: [*i, *j) of the spans. */
static int
outq_once_take(struct outq_once *o, size_t *i, size_t *j)
{
	pthread_mutex_lock(&o->mu);
	*i = *j = o->next;
	while (*j < o->nspans && (*j == *i ||
	    strcmp(o->spans[*j].rows[0].rcpt_domain,
	    o->spans[*i].rows[0].rcpt_domain) == 0))
		(*j)++;
	o->next = *j;
	pthread_mutex_unlock(&o->mu);
	return *i < *j;
}

struct outq_once_arg {
	struct outq_once *o;
	struct outq_ctx *q;
};

static void *
outq_once_main(void *arg)
{
	struct outq_once_arg *a = arg;
	struct outq_stats st = { 0, 0, 0, 0 };
	size_t i, j, k;

	while (outq_once_take(a->o, &i, &j))
		for (k = i; k < j; k++)
			outq_deliver_batch(a->q, a->o->spans[k].rows,
			    a->o->spans[k].n, &st);
	pthread_mutex_lock(&a->o->mu);
	a->o->stats->sent += st.sent;
	a->o->stats->deferred += st.deferred;
	a->o->stats->bounced += st.bounced;
	a->o->stats->failed += st.failed;
	pthread_mutex_unlock(&a->o->mu);
	return NULL;
}

/* Deliver the chunk's batches on the threads; back when all are done. */
static void
outq_once_run(struct outq_once *o)
{
	pthread_t th[64];
	struct outq_once_arg args[64];
	int i, started = 0;

	o->next = 0;
	for (i = 1; i < o->nq; i++) {
		args[i] = (struct outq_once_arg){ o, o->qs[i] };
		if (pthread_create(&th[i], NULL, outq_once_main, &args[i]) != 0)
			break;
		started = i;
	}
	args[0] = (struct outq_once_arg){ o, o->qs[0] };
	outq_once_main(&args[0]);
	for (i = 1; i <= started; i++)
		pthread_join(th[i], NULL);
	o->nspans = 0;
}

/* Contexts for the extra threads; fewer if one cannot be opened. */
static void
outq_once_init(struct outq_once *o, struct outq_ctx *q,
    struct outq_stats *stats)
{
	int n = q->cfg->delivery_threads > 0 ? (int)q->cfg->delivery_threads :
	    1;
	char err[PD_ERRLEN];

	memset(o, 0, sizeof(*o));
	pthread_mutex_init(&o->mu, NULL);
	o->stats = stats;
	o->qs = xcalloc((size_t)(n < 64 ? n : 64), sizeof(*o->qs));
	o->qs[0] = q;
	for (o->nq = 1; o->nq < n && o->nq < 64; o->nq++) {
		if (outq_ctx_new(q->cfg, q->ph, &o->qs[o->nq], err) != 0) {
			log_warn("outbound: queue run on %d threads: %s",
			    o->nq, err);
			break;
		}
		o->qs[o->nq]->jn = q->jn;
	}
}

static void
outq_once_free(struct outq_once *o)
{
	int i;

	for (i = 1; i < o->nq; i++)
		outq_ctx_free(&o->qs[i]);
	free(o->qs);
	free(o->spans);
	pthread_mutex_destroy(&o->mu);
}

/* Claim and deliver everything due at `start`, at the configured rate. */
static int
outq_drain(struct outq_ctx *q, int64_t start, struct outq_stats *stats,
    char *err)
{
	struct outq_once once;
	struct outq_rows r = { NULL, 0, 0 };
	struct outq_bucket b;
	int want, rc = 0;

	outq_once_init(&once, q, stats);
	outq_bucket_init(&b, q->cfg->rate);
	for (;;) {
		/* An outcome the store refused: send nothing more for now. */
		if (outq_journal_retry(q->jn, q, stats, 0) > 0)
			break;
		while ((want = outq_bucket_take(&b, OUTQ_CHUNK)) == 0)
			usleep(50 * 1000);
		r.n = 0;
		if ((rc = store_outbound_claim(q->st, start, want,
		    outq_rows_add_cb, &r, err)) != 0 || r.n == 0)
			break;
		outq_bucket_give(&b, want - (int)r.n);
		outq_split(q->cfg, &r, outq_once_batch, &once);
		outq_once_run(&once);
	}
	outq_once_free(&once);
	free(r.v);
	return rc;
}

/*
 * Outcomes the store refused during the run: retried with the journal's
 * backoff for OUTQ_SETTLE_MS, then left in the journal for the next run
 * or serve's start, with an error saying so.
 */
#define OUTQ_SETTLE_MS 15000

static int
outq_settle(struct outq_ctx *q, struct outq_stats *stats, char *err)
{
	int64_t until = pd_monotonic_ms() + OUTQ_SETTLE_MS;
	size_t left;

	while ((left = outq_journal_retry(q->jn, q, stats, 0)) > 0 &&
	    pd_monotonic_ms() < until)
		usleep(50 * 1000);
	if (left == 0)
		return 0;
	pd_err(err, "%zu outcome(s) could not be recorded (see the log); "
	    "kept in %s/outq.journal and recorded by the next run", left,
	    q->cfg->var_dir);
	return -1;
}

int
outq_run_once(struct outq_ctx *q, struct outq_stats *stats, char *err)
{
	struct outq_stats local;
	int fd, rc;

	if (stats == NULL)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	if (outq_transport_check(q, err) != 0)
		return -1;
	q->jn = outq_journal_new(q->cfg);
	if (outq_journal_open(q->jn, err) != 0) {
		outq_journal_free(&q->jn);
		return -1;
	}
	if ((fd = outq_lock_try(q->cfg)) >= 0 && outq_recover(q) != 0)
		log_warn("outbound: rows left \"sending\" are not retried "
		    "by this run");
	/* Rows deferred during the run are due later than `start`, so each
	 * message is tried at most once per run. */
	rc = outq_drain(q, pd_now(), stats, err);
	if (outq_settle(q, stats, rc == 0 ? err : NULL) != 0 && rc == 0)
		rc = -1;
	if (fd >= 0)
		close(fd);
	outq_journal_free(&q->jn);
	return rc;
}

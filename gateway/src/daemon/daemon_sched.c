/*
 * daemon_sched.c - what `serve` does on a clock: once a minute, the
 * reminder check (notify.c); at start and every privacy.purge_interval,
 * the retention purge (privacy.c) or, without retention, the sweep of
 * unnamed blobs alone; every 5 seconds a look at the WAL's size,
 * truncated past store.wal_size_max.  Each runs as a job on a worker
 * with its own store connection.  It decides when, never what: the
 * rules are theirs.
 */
#include <stdio.h>

#include <event2/event.h>

#include "lib/config.h"
#include "daemon_int.h"
#include "outbound/notify.h"
#include "outbound/outq.h"
#include "privacy/privacy.h"
#include "store/blob.h"
#include "store/store.h"
#include "lib/util.h"
#include "lib/worker.h"

/* ---- reminders: a worker job once a minute ---- */

#define DAEMON_REMIND_SECONDS 60

/* Worker thread: its own store and queue handles, for this run only. */
static void
daemon_remind_run(void *tctx, void *arg)
{
	struct daemon_ctx *d = arg;
	struct notify_env env = { d->cfg, NULL, NULL };
	char err[PD_ERRLEN];
	unsigned n = 0;

	if (store_open(d->cfg->db_path, d->cfg->sync_mode, &env.st, err)
	    != 0 || outq_ctx_new(d->cfg, d->plugins, &env.q, err) != 0 ||
	    notify_reminders(&env, pd_now(), &n, err) != 0)
		log_err("reminders: %s", err);
	else if (n > 0)
		log_info("reminders: %u queued", n);
	outq_ctx_free(&env.q);
	store_close(&env.st);
}

/*
 * Retention (privacy.c) rides on the same minute timer, every
 * privacy.purge_interval, when a class has an age.  No VACUUM here: it
 * would stall intake; `postdoc purge` does that.
 */
static void
daemon_purge_run(void *tctx, void *arg)
{
	struct daemon_ctx *d = arg;
	struct privacy_env env = { d->cfg, NULL, NULL, "postdoc-serve" };
	char err[PD_ERRLEN], blobs[4200];
	json_t *rep = NULL;

	snprintf(blobs, sizeof(blobs), "%s/blobs", d->cfg->var_dir);
	if (store_open(d->cfg->db_path, d->cfg->sync_mode, &env.st, err)
	    != 0 || blob_store_open(blobs, &env.bs, err) != 0 ||
	    privacy_purge(&env, pd_now(), 0, 0, 0, &rep, err) != 0)
		log_err("retention purge: %s", err);
	else
		log_info("retention purge: done");
	json_decref(rep);
	blob_store_free(&env.bs);
	store_close(&env.st);
}

/*
 * Without retention the purge never runs, but blobs a crash left between
 * file and row must still go: the sweep alone (privacy_sweep), at start
 * and every privacy.purge_interval.  The purge sweeps too.
 */
static void
daemon_sweep_run(void *tctx, void *arg)
{
	struct daemon_ctx *d = arg;
	struct privacy_env env = { d->cfg, NULL, NULL, "postdoc-serve" };
	char err[PD_ERRLEN], blobs[4200];
	size_t n = 0;

	snprintf(blobs, sizeof(blobs), "%s/blobs", d->cfg->var_dir);
	if (store_open(d->cfg->db_path, d->cfg->sync_mode, &env.st, err)
	    != 0 || blob_store_open(blobs, &env.bs, err) != 0 ||
	    privacy_sweep(&env, pd_now(), &n, err) != 0)
		log_err("blob sweep: %s", err);
	else if (n > 0)
		log_info("blob sweep: removed %zu blob(s) no row names, older "
		    "than %llds", n, (long long)d->cfg->blob_grace);
	blob_store_free(&env.bs);
	store_close(&env.st);
}

static void
daemon_remind_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_ctx *d = arg;
	struct timeval tv = { DAEMON_REMIND_SECONDS, 0 };
	const struct pd_config *c = d->cfg;
	int retention = c->keep_raw_messages || c->keep_documents ||
	    c->keep_outbound_bodies || c->keep_history || c->keep_logs;

	worker_submit(d->workers, daemon_remind_run, NULL, d);
	if (pd_now() - d->purge_last >= c->purge_interval) {
		d->purge_last = pd_now();
		worker_submit(d->workers, retention ? daemon_purge_run :
		    daemon_sweep_run, NULL, d);
	}
	evtimer_add(d->remind_ev, &tv);
}

/* ---- the WAL: truncated past store.wal_size_max ---- */

/*
 * A stat every few seconds costs nothing on the loop; only a WAL over the
 * limit gets a worker, one job at a time.  Not in the committer: a
 * checkpoint there would sit between a commit and its 250.
 */
#define DAEMON_WAL_SECONDS 5

static void
daemon_wal_run(void *tctx, void *arg)
{
	struct daemon_ctx *d = arg;
	struct store *st = NULL;
	char err[PD_ERRLEN];
	int64_t before = store_wal_size(d->cfg->db_path);
	int rc = -1;

	(void)tctx;
	if (store_open(d->cfg->db_path, d->cfg->sync_mode, &st, err) == 0)
		rc = store_wal_truncate(st, err);
	store_close(&st);
	if (rc < 0)
		log_err("WAL truncation: %s", err);
	else if (rc == 0)
		log_info("WAL truncated: %lld octets checkpointed into the "
		    "database", (long long)before);
	/* Said once while a reader holds it, not every 5 seconds. */
	else if (d->wal_waiting++ == 0)
		log_info("WAL is %lld octets, over store.wal_size_max; a "
		    "reader holds it: truncating once it is done",
		    (long long)before);
	if (rc == 0)
		d->wal_waiting = 0;
}

static void
daemon_wal_done(void *arg)
{
	struct daemon_ctx *d = arg;

	d->wal_job = 0;
}

static void
daemon_wal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_ctx *d = arg;
	struct timeval tv = { DAEMON_WAL_SECONDS, 0 };

	(void)fd;
	(void)what;
	if (!d->wal_job &&
	    store_wal_size(d->cfg->db_path) > d->cfg->wal_size_max) {
		d->wal_job = 1;
		worker_submit(d->workers, daemon_wal_run, daemon_wal_done, d);
	}
	evtimer_add(d->wal_ev, &tv);
}

void
daemon_sched_start(struct daemon_ctx *d)
{
	struct timeval tv = { DAEMON_WAL_SECONDS, 0 };

	d->remind_ev = evtimer_new(d->base, daemon_remind_cb, d);
	daemon_remind_cb(-1, 0, d);
	d->wal_ev = evtimer_new(d->base, daemon_wal_cb, d);
	evtimer_add(d->wal_ev, &tv);
}

void
daemon_sched_stop(struct daemon_ctx *d)
{
	if (d->remind_ev != NULL)
		event_free(d->remind_ev);
	d->remind_ev = NULL;
	if (d->wal_ev != NULL)
		event_free(d->wal_ev);
	d->wal_ev = NULL;
}

/*
 * worker.h - a fixed pool of threads for blocking work (parsing, fsync,
 * SQLite commits).  Jobs are queued from the event loop; when a job is
 * done its completion callback runs back on the event loop thread.
 */
#ifndef PD_WORKER_H
#define PD_WORKER_H

struct event_base;
struct worker_pool;

/* Runs on a worker thread; `tctx` is that thread's own context. */
typedef void (*worker_fn)(void *tctx, void *arg);
/* Runs on the event loop after worker_fn returned. */
typedef void (*worker_done_fn)(void *arg);
/* Per-thread context constructor/destructor. */
typedef void *(*worker_init_fn)(void *init_arg);
typedef void (*worker_fini_fn)(void *tctx);

struct worker_pool *worker_pool_new(struct event_base *base, int nthreads,
    worker_init_fn init, worker_fini_fn fini, void *init_arg);
void worker_submit(struct worker_pool *wp, worker_fn fn,
    worker_done_fn done, void *arg);
/* Waits for queued jobs, joins the threads. */
void worker_pool_free(struct worker_pool **wp);
int worker_pool_pending(const struct worker_pool *wp);

#endif

/*
 * worker.c - fixed thread pool for blocking work.  The event loop never
 * waits on disk or SQLite: it queues a job here and gets its completion
 * callback back on the loop through one libevent event made active from
 * the worker (libevent is set up for pthreads by the server).
 */
#include <pthread.h>
#include <stdlib.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "util.h"
#include "worker.h"

struct job {
	worker_fn fn;
	worker_done_fn done;
	void *arg;
	struct job *next;
};

struct job_queue {
	struct job *head, *tail;
};

struct worker_pool {
	struct event_base *base;
	struct event *done_ev;		/* activated when done_q gains jobs */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job_queue todo_q, done_q;
	int pending;			/* queued or running, not yet done */
	int stopping;
	int nthreads;
	pthread_t *threads;
	worker_init_fn init;
	worker_fini_fn fini;
	void *init_arg;
};

static void
queue_push(struct job_queue *q, struct job *j)
{
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct job *
queue_pop(struct job_queue *q)
{
	struct job *j = q->head;

	if (j != NULL) {
		q->head = j->next;
		if (q->head == NULL)
			q->tail = NULL;
	}
	return j;
}

static void *
worker_main(void *arg)
{
	struct worker_pool *wp = arg;
	void *tctx = wp->init != NULL ? wp->init(wp->init_arg) : NULL;
	struct job *j;

	pthread_mutex_lock(&wp->mu);
	for (;;) {
		while ((j = queue_pop(&wp->todo_q)) == NULL && !wp->stopping)
			pthread_cond_wait(&wp->cv, &wp->mu);
		if (j == NULL)
			break;
		pthread_mutex_unlock(&wp->mu);
		j->fn(tctx, j->arg);
		pthread_mutex_lock(&wp->mu);
		queue_push(&wp->done_q, j);
		event_active(wp->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&wp->mu);
	if (wp->fini != NULL)
		wp->fini(tctx);
	return NULL;
}

/* On the loop: run completion callbacks outside the lock. */
static void
worker_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker_pool *wp = arg;
	struct job_queue q;
	struct job *j;

	pthread_mutex_lock(&wp->mu);
	q = wp->done_q;
	wp->done_q.head = wp->done_q.tail = NULL;
	pthread_mutex_unlock(&wp->mu);
	while ((j = queue_pop(&q)) != NULL) {
		pthread_mutex_lock(&wp->mu);
		wp->pending--;
		pthread_mutex_unlock(&wp->mu);
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

struct worker_pool *
worker_pool_new(struct event_base *base, int nthreads, worker_init_fn init,
    worker_fini_fn fini, void *init_arg)
{
	struct worker_pool *wp = xcalloc(1, sizeof(*wp));
	int i;

	wp->base = base;
	wp->init = init;
	wp->fini = fini;
	wp->init_arg = init_arg;
	wp->nthreads = nthreads;
	pthread_mutex_init(&wp->mu, NULL);
	pthread_cond_init(&wp->cv, NULL);
	wp->done_ev = event_new(base, -1, 0, worker_done_cb, wp);
	if (wp->done_ev == NULL)
		pd_fatal("worker: event_new failed");
	wp->threads = xcalloc((size_t)nthreads, sizeof(pthread_t));
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&wp->threads[i], NULL, worker_main, wp) != 0)
			pd_fatal("worker: pthread_create failed");
	return wp;
}

void
worker_submit(struct worker_pool *wp, worker_fn fn, worker_done_fn done,
    void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->fn = fn;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&wp->mu);
	queue_push(&wp->todo_q, j);
	wp->pending++;
	pthread_cond_signal(&wp->cv);
	pthread_mutex_unlock(&wp->mu);
}

int
worker_pool_pending(const struct worker_pool *wp)
{
	return wp->pending;
}

void
worker_pool_free(struct worker_pool **wpp)
{
	struct worker_pool *wp = *wpp;
	int i;

	if (wp == NULL)
		return;
	pthread_mutex_lock(&wp->mu);
	wp->stopping = 1;
	pthread_cond_broadcast(&wp->cv);
	pthread_mutex_unlock(&wp->mu);
	/* Threads drain the todo queue before they see `stopping`. */
	for (i = 0; i < wp->nthreads; i++)
		pthread_join(wp->threads[i], NULL);
	worker_done_cb(-1, 0, wp);
	event_free(wp->done_ev);
	pthread_mutex_destroy(&wp->mu);
	pthread_cond_destroy(&wp->cv);
	free(wp->threads);
	free(wp);
	*wpp = NULL;
}

/*
 * commit.c - group commit: the one thread that writes delivery rows.
 * Workers used to commit one message each, every one paying a WAL fsync
 * and queueing on SQLite's write lock (whose busy handler sleeps in
 * milliseconds).  Here every delivery waiting is taken at once: their
 * rows in one transaction with a savepoint each, one durable COMMIT
 * (synchronous=FULL: one WAL fsync for the batch), then each is woken
 * with its own result.  A delivery is never told "durable" before its batch's COMMIT
 * returned; a failed COMMIT fails every delivery in the batch.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "store.h"
#include "lib/util.h"

struct committer {
	char db_path[4096];
	struct store *st;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work_cv;		/* items queued, or stopping */
	struct commit_item *head, *tail;
	int stopping;
	int refs;
	struct committer *next;		/* the process's list */
};

static pthread_mutex_t commit_list_mu = PTHREAD_MUTEX_INITIALIZER;
static struct committer *commit_list;

static void
commit_batch(struct committer *c, struct commit_item *batch)
{
	struct commit_item *it;
	char err[PD_ERRLEN];
	int ok, full = 0;

	if (store_begin(c->st, err) != 0)
		goto fail_all;
	for (it = batch; it != NULL; it = it->next) {
		if (it->result != 0)
			continue;
		if (store_delivery_begin(c->st, it->err) != 0) {
			it->result = -1;
			continue;
		}
		ok = it->rows(c->st, it->arg, it->err) == 0;
		/* Read before the rollback replaces the connection's error. */
		it->full = !ok && store_full(c->st);
		if (store_delivery_end(c->st, ok, ok ? it->err : err) != 0)
			ok = 0;
		if (!ok)
			it->result = -1;
	}
	if (store_commit(c->st, err) == 0)
		return;
	full = store_full(c->st);
	store_rollback(c->st);
fail_all:
	for (it = batch; it != NULL; it = it->next)
		if (it->result == 0) {
			it->result = -1;
			it->full = full;
			pd_err(it->err, "%s", err);
		}
}

static void *
commit_main(void *arg)
{
	struct committer *c = arg;
	struct commit_item *batch, *it, *next;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (c->head == NULL && !c->stopping)
			pthread_cond_wait(&c->work_cv, &c->mu);
		if (c->head == NULL)
			break;
		batch = c->head;
		c->head = c->tail = NULL;
		pthread_mutex_unlock(&c->mu);
		commit_batch(c, batch);
		pthread_mutex_lock(&c->mu);
		/*
		 * Each waiter on its own condition: one broadcast woke every
		 * worker waiting, those of the next batch too, only to sleep
		 * again (16 workers: most wake-ups were for nothing).  it->next
		 * is read before the signal: the woken worker may free it.
		 */
		for (it = batch; it != NULL; it = next) {
			next = it->next;
			it->done = 1;
			pthread_cond_signal(&it->done_cv);
		}
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int
commit_wait(struct committer *c, struct commit_item *it)
{
	it->result = 0;
	it->full = 0;
	it->err[0] = '\0';
	it->done = 0;
	it->next = NULL;
	pthread_cond_init(&it->done_cv, NULL);
	pthread_mutex_lock(&c->mu);
	if (c->tail != NULL)
		c->tail->next = it;
	else
		c->head = it;
	c->tail = it;
	pthread_cond_signal(&c->work_cv);
	while (!it->done)
		pthread_cond_wait(&it->done_cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	pthread_cond_destroy(&it->done_cv);
	return it->result;
}

int
commit_acquire(const char *db_path, const char *sync_mode,
    struct committer **c_r, char *err)
{
	struct committer *c;

	pthread_mutex_lock(&commit_list_mu);
	for (c = commit_list; c != NULL; c = c->next)
		if (strcmp(c->db_path, db_path) == 0)
			break;
	if (c != NULL) {
		c->refs++;
		pthread_mutex_unlock(&commit_list_mu);
		*c_r = c;
		return 0;
	}
	c = xcalloc(1, sizeof(*c));
	snprintf(c->db_path, sizeof(c->db_path), "%s", db_path);
	if (store_open(db_path, sync_mode, &c->st, err) != 0) {
		pthread_mutex_unlock(&commit_list_mu);
		free(c);
		return -1;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->work_cv, NULL);
	c->refs = 1;
	if (pthread_create(&c->thread, NULL, commit_main, c) != 0)
		pd_fatal("commit: pthread_create failed");
	c->next = commit_list;
	commit_list = c;
	pthread_mutex_unlock(&commit_list_mu);
	*c_r = c;
	return 0;
}

void
commit_release(struct committer **cp)
{
	struct committer *c = *cp, **pp;

	if (c == NULL)
		return;
	*cp = NULL;
	pthread_mutex_lock(&commit_list_mu);
	if (--c->refs > 0) {
		pthread_mutex_unlock(&commit_list_mu);
		return;
	}
	for (pp = &commit_list; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	pthread_mutex_unlock(&commit_list_mu);
	pthread_mutex_lock(&c->mu);
	c->stopping = 1;
	pthread_cond_signal(&c->work_cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);	/* it drains the queue first */
	store_close(&c->st);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->work_cv);
	free(c);
}

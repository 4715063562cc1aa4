/*
 * commit.h - group commit for deliveries.  One thread per database owns a
 * store connection; intake workers hand it their delivery (a rows
 * callback and the blob directories to make durable) and wait.  It takes
 * every delivery waiting, writes all their rows in one transaction (a
 * savepoint per delivery) and wakes each with its own result only after
 * the COMMIT is durable.  Blobs are the worker's: fsync'd and in place
 * (directory fsync'd) before it submits.
 */
#ifndef PD_COMMIT_H
#define PD_COMMIT_H

#include <pthread.h>

#include "lib/util.h"

struct store;
struct committer;

/* Writes one delivery's rows; runs on the committer thread while the
 * submitting thread waits.  0, or -1 with err set. */
typedef int (*commit_rows_fn)(struct store *st, void *arg, char *err);

struct commit_item {
	commit_rows_fn rows;
	void *arg;
	/* Filled by the committer. */
	int result;			/* 0 durable, -1 failed */
	int full;			/* failed because the disk is full */
	char err[PD_ERRLEN];
	int done;
	pthread_cond_t done_cv;		/* this item's batch finished */
	struct commit_item *next;
};

/* The committer of db_path, started on first use; one per database per
 * process, shared by reference. */
int commit_acquire(const char *db_path, const char *sync_mode,
    struct committer **c_r, char *err);
void commit_release(struct committer **c);

/* Submit and wait until the item's batch is durable (or failed). */
int commit_wait(struct committer *c, struct commit_item *it);

#endif

/*
 * outq.c - the durable outbound queue's context (one store connection
 * and blob store per thread), the delivery lock var/outq.lock with the
 * recovery it allows, and the transport check.  Never runs on the event
 * loop.  Queueing is outq_enqueue.c, one delivery outq_deliver.c, what a
 * refusal or a DSN does outq_bounce.c, the runners outq_runner.c and
 * outq_once.c.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "store/blob.h"
#include "lib/config.h"
#include "outq.h"
#include "outq_int.h"
#include "plugin/plugin_host.h"
#include "store/store.h"
#include "lib/util.h"

/* ---- contexts ---- */

int
outq_ctx_new(const struct pd_config *cfg, struct plugin_host *ph,
    struct outq_ctx **q_r, char *err)
{
	struct outq_ctx *q = xcalloc(1, sizeof(*q));
	char root[OUTQ_PATH_MAX];

	*q_r = NULL;
	q->cfg = cfg;
	q->ph = ph;
	snprintf(root, sizeof(root), "%s/blobs", cfg->var_dir);
	if (store_open(cfg->db_path, cfg->sync_mode, &q->st, err) != 0 ||
	    blob_store_open(root, &q->bs, err) != 0) {
		outq_ctx_free(&q);
		return -1;
	}
	*q_r = q;
	return 0;
}

void
outq_ctx_free(struct outq_ctx **qp)
{
	struct outq_ctx *q;

	if (qp == NULL || *qp == NULL)
		return;
	q = *qp;
	outq_batch_reset(q);
	outq_pool_stop(q);
	store_close(&q->st);
	blob_store_free(&q->bs);
	free(q->pend);
	free(q->jobs);
	free(q);
	*qp = NULL;
}

/*
 * var/outq.lock is held by whoever delivers with the right to recover:
 * rows "sending" while nobody holds it were left by a crash.  Without
 * the lock (another process is delivering) we still claim, since a claim
 * is atomic, but we never touch the other process's "sending" rows.
 */
int
outq_lock_try(const struct pd_config *cfg)
{
	char path[OUTQ_PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/outq.lock", cfg->var_dir);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	pd_own_fd(fd);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Rows left "sending" go back to "deferred" only after every outcome the
 * journal kept is recorded: one of them may say the transport accepted
 * the message, and sending it again would deliver it twice.  -1: not
 * now (the store refuses, or another process is delivering); the caller
 * claims nothing and tries again later.
 */
int
outq_recover(struct outq_ctx *q)
{
	char err[PD_ERRLEN];
	int n = 0;

	if (q->jn != NULL && outq_journal_recover(q->jn, q) != 0)
		return -1;
	if (store_outbound_recover(q->st, pd_now(), &n, err) != 0) {
		log_err("outbound: recovery failed: %s", err);
		return -1;
	}
	if (n > 0)
		log_warn("outbound: %d message(s) interrupted by a stop or a "
		    "crash will be retried", n);
	return 0;
}

int
outq_transport_check(struct outq_ctx *q, char *err)
{
	void *state = NULL;

	if (q->cfg->transport == NULL ||
	    plugin_find(q->ph, q->cfg->transport, &state) == NULL) {
		pd_err(err, "outbound.transport \"%s\" is not a loaded plugin",
		    q->cfg->transport != NULL ? q->cfg->transport : "");
		return -1;
	}
	return 0;
}

struct store *
outq_store(struct outq_ctx *q)
{
	return q->st;
}

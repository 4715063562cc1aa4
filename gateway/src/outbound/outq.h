/*
 * outq.h - the durable outbound queue.  A message is queued as a complete,
 * signed file (stored as a blob) plus a row in the store; delivery threads
 * hand due messages to the transport plugin and record each outcome:
 * queued -> sending -> sent | deferred (retried with exponential backoff
 * until outbound.retry_max_age) | bounced | failed.  A row still "sending"
 * after a crash is retried (never recorded as sent, so never sent twice
 * knowingly).  Suppressions are checked when a message leaves the queue,
 * not only when it is queued.
 */
#ifndef PD_OUTQ_H
#define PD_OUTQ_H

#include <stdint.h>

struct pd_config;
struct plugin_host;
struct store;
struct outq_ctx;
struct outq_runner;

struct outq_item {
	int64_t account_id;
	const char *account;		/* name, for plugins */
	int64_t dossier_id;		/* 0: none */
	const char *kind;		/* "invitation", "reminder", "receipt" */
	const char *rcpt;		/* validated by outmsg_addr_valid */
	const char *from_domain;	/* DKIM d= */
	const char *msg_path;		/* built by outmsg_build; consumed */
	const char *message_id;
};

struct outq_stats {
	unsigned sent, deferred, bounced, failed;
};

/* Opens its own store connection and blob store: one per thread. */
int outq_ctx_new(const struct pd_config *cfg, struct plugin_host *ph,
    struct outq_ctx **q_r, char *err);
void outq_ctx_free(struct outq_ctx **q);
/* The queue's own store connection: a caller whose writes must commit
 * with a queued message writes through it (store_begin nests, and
 * outq_enqueue's BEGIN becomes a savepoint of the caller's). */
struct store *outq_store(struct outq_ctx *q);

/*
 * Queue a message: makes the VERP envelope sender
 * b-<token>@<outbound.bounce_domain>, runs the plugins' outbound hooks
 * (DKIM signs here), checks the result is CRLF-canonical, stores it as a
 * blob and inserts the row, in that order.  The recipient must not be
 * suppressed for the account (refused with a message otherwise).
 */
int outq_enqueue(struct outq_ctx *q, const struct outq_item *it,
    int64_t *id_r, char *err);

/*
 * The same in batches (campaigns): add checks the recipient and makes the
 * row's fields, then hands the hooks (DKIM) and the blob (file and dir
 * fsync'd) to one of outbound.queue_threads threads; commit waits for
 * them and inserts every added row in ONE transaction, calling fn(st, i,
 * id) for the i-th added message inside it so the caller's own state
 * changes commit with the rows.  If a message's hooks or blob failed,
 * the ones added before it are committed, *n_r says how many, and its
 * error is returned.  Until commit returns, nothing of the batch is
 * queued.  add consumes msg_path like outq_enqueue; abort forgets the
 * added rows (their blobs stay, unnamed, as after a crash).
 */
typedef int (*outq_queued_fn)(struct store *st, size_t i, int64_t id,
    void *ctx, char *err);
int outq_enqueue_add(struct outq_ctx *q, const struct outq_item *it,
    char *err);
size_t outq_enqueue_pending(const struct outq_ctx *q);
int outq_enqueue_commit(struct outq_ctx *q, outq_queued_fn fn, void *ctx,
    size_t *n_r, char *err);
void outq_enqueue_abort(struct outq_ctx *q);

/* Deliver every due message once, blocking (CLI: `queue run`, `invite`). */
int outq_run_once(struct outq_ctx *q, struct outq_stats *st, char *err);

/*
 * A DSN or a 5xx for the message whose VERP token this is: mark it
 * bounced with the status; a permanent failure (5.x.x) puts the address
 * on the account's suppression list for outbound.suppression_days.
 * Returns 1 if the token named a message, 0 if not.
 */
int outq_bounce(struct store *st, const struct pd_config *cfg,
    const char *verp_token, int code, const char *enhanced,
    const char *text, char *err);

/* The runner of `postdoc serve`: its own threads, polling the store. */
int outq_runner_start(const struct pd_config *cfg, struct plugin_host *ph,
    struct outq_runner **r_r, char *err);
void outq_runner_stop(struct outq_runner **r);	/* lets deliveries finish */

#endif

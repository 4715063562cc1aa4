/*
 * outq_int.h - what the files of the outbound queue share and nobody
 * else may see: the context, an outcome, claimed rows, the rate bucket,
 * and the functions one outq_*.c file calls in another.  Never include it
 * outside gateway/src/outbound/outq*.c: outq.h is the queue's interface.
 */
#ifndef PD_OUTQ_INT_H
#define PD_OUTQ_INT_H

#include <stddef.h>
#include <stdint.h>

#define OUTQ_CHUNK 256		/* rows `queue run` claims at a time */
#define OUTQ_DAY 86400
#define OUTQ_PATH_MAX 4096

struct blob_store;
struct plugin_host;
struct pd_config;
struct postdoc_delivery;
struct store;
struct store_outbound;
struct outq_job;
struct outq_journal;
struct outq_pool;
struct outq_stats;

struct outq_ctx {
	const struct pd_config *cfg;
	struct plugin_host *ph;
	struct store *st;
	struct blob_store *bs;
	struct store_outbound *pend;	/* outq_enqueue_add: rows not yet */
	struct outq_job *jobs;		/* inserted, their jobs */
	size_t npend, cappend;
	size_t named;			/* pend[0..named) committed */
	int held;			/* the batch holds bs's removal lock */
	struct outq_pool *pool;		/* started by the first add */
	struct outq_journal *jn;	/* borrowed: the delivering process's */
};

/* What one attempt (or a DSN) did to a row. */
struct outq_outcome {
	const char *state;
	const char *event;	/* "outbound.sent", ... */
	int code;
	const char *enhanced;
	char text[512];
	int64_t next_attempt;
	int suppress;		/* put the recipient on the list */
	char reason[256];
};

/* Rows claimed from the store, in arrival order. */
struct outq_rows {
	struct store_outbound *v;
	size_t n, cap;
};

/* Global rate: `rate` tokens a second, at most one second's worth banked. */
struct outq_bucket {
	double rate;		/* 0: unlimited */
	double tokens;
	int64_t last_ms;
};

typedef void (*outq_batch_fn)(const struct store_outbound *rows, size_t n,
    void *ctx);

/* One slot on disk: fixed widths, no implicit padding. */
struct outq_jrec {
	uint32_t magic;
	uint32_t sum;		/* FNV-1a of what follows: a torn write */
	int64_t id, account_id, dossier_id, next_attempt;
	int32_t attempts, code, suppress, pad;
	char kind[32], state[16], event[32], enhanced[12];
	char rcpt[320], text[256], reason[256];
	char spare[44];
};
_Static_assert(sizeof(struct outq_jrec) == 1024, "journal slot size");

/* outq.c */
int outq_lock_try(const struct pd_config *cfg);
int outq_recover(struct outq_ctx *q);
int outq_transport_check(struct outq_ctx *q, char *err);

/* outq_enqueue.c */
void outq_batch_reset(struct outq_ctx *q);
void outq_pool_stop(struct outq_ctx *q);

/* outq_deliver.c */
int outq_record(struct store *st, const struct pd_config *cfg,
    const struct store_outbound *o, const struct outq_outcome *oc,
    char *err);
void outq_count(const char *state);
void outq_deliver_batch(struct outq_ctx *q,
    const struct store_outbound *rows, size_t n, struct outq_stats *stats);
int outq_replay(struct outq_ctx *q, const struct outq_jrec *r,
    struct outq_stats *stats);

/* outq_journal.c: outcomes kept until the store has recorded them */
struct outq_journal *outq_journal_new(const struct pd_config *cfg);
void outq_journal_free(struct outq_journal **jn);
int outq_journal_open(struct outq_journal *jn, char *err);
size_t outq_journal_reserve(struct outq_journal *jn, int *slots, size_t n);
void outq_journal_write(struct outq_journal *jn, int *slots,
    const struct outq_jrec *recs, size_t n);
void outq_journal_clear(struct outq_journal *jn, int slot);
void outq_journal_keep(struct outq_journal *jn, int slot,
    const struct outq_jrec *r);
size_t outq_journal_pending(struct outq_journal *jn);
size_t outq_journal_retry(struct outq_journal *jn, struct outq_ctx *q,
    struct outq_stats *stats, int force);
int outq_journal_recover(struct outq_journal *jn, struct outq_ctx *q);
void outq_jrec_pack(struct outq_jrec *r, const struct store_outbound *o,
    const struct outq_outcome *oc);
void outq_jrec_unpack(const struct outq_jrec *r, struct store_outbound *o,
    struct outq_outcome *oc);

/* outq_bounce.c */
void outq_classify(const struct pd_config *cfg,
    const struct store_outbound *o, const struct postdoc_delivery *res,
    int64_t now, struct outq_outcome *oc);

/* outq_runner.c: claiming and batching, shared with outq_once.c */
int outq_rows_add_cb(const struct store_outbound *o, void *ctx);
void outq_split(const struct pd_config *cfg, struct outq_rows *r,
    outq_batch_fn fn, void *ctx);
void outq_bucket_init(struct outq_bucket *b, int64_t rate);
int outq_bucket_take(struct outq_bucket *b, int want);
void outq_bucket_give(struct outq_bucket *b, int n);

#endif

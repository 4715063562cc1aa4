/*
 * outq.c - the durable outbound queue: queueing (VERP sender, outbound
 * hooks, header-syntax check, blob, row), delivery of due rows through
 * the transport plugin with backoff, bounces and suppressions, and the
 * runner threads of `postdoc serve`.  Never runs on the event loop; every
 * thread has its own outq_ctx and so its own store connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/blob.h"
#include "lib/config.h"
#include "events/metrics.h"
#include "outq.h"
#include "privacy/privacy.h"
#include "plugin/plugin_host.h"
#include "store/store.h"
#include "lib/util.h"

#define OUTQ_PREPEND_MAX 16384	/* all plugins' header lines together */
#define OUTQ_LINE_MAX 998	/* RFC 5322 2.1.1, without the CRLF */
#define OUTQ_CHUNK 256		/* rows `queue run` claims at a time */
#define OUTQ_DAY 86400
#define OUTQ_PATH_MAX 4096

/*
 * What a queueing thread does for one added message: the outbound hooks
 * (DKIM) and the blob, fsync'd file and dir.  It fills its row's sha256
 * and size; the row itself is inserted by outq_enqueue_commit.
 */
struct outq_job {
	char *account;
	char *msg_path;
	int rc;
	char err[PD_ERRLEN];
};

/*
 * The threads of one outq_ctx's batches.  A campaign's time is signing
 * (CPU) and fsyncs (waiting): done for several messages at once they
 * overlap.  Jobs are the indexes nsub..., taken in order under mu.
 */
struct outq_pool {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	pthread_t *th;
	int nth;
	size_t nsub, next, ndone;
	int stop;
};

struct outq_ctx {
	const struct pd_config *cfg;
	struct plugin_host *ph;
	struct store *st;
	struct blob_store *bs;
	struct store_outbound *pend;	/* outq_enqueue_add: rows not yet */
	struct outq_job *jobs;		/* inserted, their jobs */
	size_t npend, cappend;
	struct outq_pool *pool;		/* started by the first add */
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

/* ---- contexts ---- */

static void outq_batch_reset(struct outq_ctx *q);
static void outq_pool_stop(struct outq_ctx *q);

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

/* ---- queueing ---- */

/* 128 random bits as 26 chars of RFC 4648 base32, lower case. */
static int
outq_token(char out[27], char *err)
{
	static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char rnd[16];
	unsigned bits = 0, acc = 0;
	size_t i, o = 0;

	if (pd_random(rnd, sizeof(rnd)) != 0) {
		pd_err(err, "outbound: no random bytes for a VERP token");
		return -1;
	}
	for (i = 0; i < sizeof(rnd); i++) {
		acc = (acc << 8) | rnd[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	out[o++] = b32[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return 0;
}

static void
outq_lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void
outq_date(char *out, size_t outlen, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, outlen, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(out, outlen, "@%lld", (long long)t);
}

/* Refuse a suppressed recipient with the reason and the end date. */
static int
outq_check_suppressed(struct store *st, int64_t account_id,
    const char *rcpt, char *err)
{
	char reason[256], until[64];
	int64_t expires = 0;
	int rc = store_suppression_get(st, account_id, rcpt, pd_now(), reason,
	    sizeof(reason), &expires, err);

	if (rc == 1) {
		outq_date(until, sizeof(until), expires);
		pd_err(err, "recipient %s is suppressed until %s: %s", rcpt,
		    until, reason);
		return -1;
	}
	return rc;
}

/*
 * The plugins' header lines are put in front of a message we signed off
 * on, so they must be header lines and nothing else: each CRLF-terminated,
 * at most 998 octets, printable ASCII (or tab), a field starting "Name: "
 * and continuations starting with a space or tab.  Anything else could
 * end the header block early or smuggle a body.
 */
static int
outq_prepend_line_ok(const char *l, size_t len, int first)
{
	size_t i, colon = 0;
	int blank = 1;

	if (len == 0 || len > OUTQ_LINE_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)l[i];

		if (c != '\t' && (c < 0x20 || c > 0x7e))
			return 0;
		if (c != ' ' && c != '\t')
			blank = 0;
		if (c == ':' && colon == 0)
			colon = i;
	}
	if (l[0] == ' ' || l[0] == '\t')
		return !first && !blank;
	/* field-name: printable ASCII except ':' and space (RFC 5322 3.6.8) */
	if (colon == 0 || colon + 1 >= len || l[colon + 1] != ' ')
		return 0;
	for (i = 0; i < colon; i++)
		if (l[i] == ' ' || l[i] == '\t')
			return 0;
	return 1;
}

static int
outq_prepend_valid(const char *p, size_t len, char *err)
{
	size_t off = 0;

	while (off < len) {
		const char *crlf = memmem(p + off, len - off, "\r\n", 2);
		size_t l = crlf != NULL ? (size_t)(crlf - (p + off)) : len - off;

		if (crlf == NULL || !outq_prepend_line_ok(p + off, l, off == 0)) {
			pd_err(err, "outbound: a plugin's header line %zu bytes "
			    "in is not a valid header line", off);
			return -1;
		}
		off += l + 2;
	}
	return 0;
}

/* Bare CR or LF anywhere, tracked across read chunks. */
struct outq_crlf {
	int prev_cr;
	int bad;
};

static void
outq_crlf_scan(struct outq_crlf *c, const char *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n && !c->bad; i++) {
		if (buf[i] == '\n' && !c->prev_cr)
			c->bad = 1;
		else if (c->prev_cr && buf[i] != '\n')
			c->bad = 1;
		c->prev_cr = buf[i] == '\r';
	}
}

/* Stream prepend + message file into a blob; never whole in memory. */
static int
outq_write_blob(struct outq_ctx *q, const char *prepend, size_t plen,
    const char *msg_path, char sha_r[65], uint64_t *size_r, char *err)
{
	struct blob_writer w;
	struct outq_crlf c = { 0, 0 };
	char buf[65536];
	ssize_t n = 0;
	int fd = open(msg_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		pd_err(err, "outbound: %s: %s", msg_path, strerror(errno));
		return -1;
	}
	if (blob_writer_begin(q->bs, &w, err) != 0) {
		close(fd);
		return -1;
	}
	if (plen > 0 && blob_writer_write(&w, prepend, plen) != 0)
		n = -1;
	while (n >= 0 && !c.bad) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n <= 0)
			break;
		outq_crlf_scan(&c, buf, (size_t)n);
		if (blob_writer_write(&w, buf, (size_t)n) != 0)
			n = -1;
	}
	close(fd);
	if (n < 0 || c.bad || c.prev_cr) {
		pd_err(err, "outbound: %s", n < 0 ? "cannot copy the message "
		    "into the queue" : "message is not CRLF-canonical");
		blob_writer_abort(&w);
		return -1;
	}
	*size_r = w.size;
	return blob_writer_commit(q->bs, &w, sha_r, err);
}

/* Fill the row's text fields, refusing anything that would be cut. */
static int
outq_row_fill(struct store_outbound *o, const struct outq_item *it,
    const char *bounce_domain, const char *token, char *err)
{
	const char *at = strrchr(it->rcpt, '@');
	int bad = 0;

	memset(o, 0, sizeof(*o));
	o->account_id = it->account_id;
	o->dossier_id = it->dossier_id;
#define OUTQ_SET(field, ...) \
	bad |= snprintf(field, sizeof(field), __VA_ARGS__) >= \
	    (int)sizeof(field)
	OUTQ_SET(o->kind, "%s", it->kind);
	OUTQ_SET(o->rcpt, "%s", it->rcpt);
	OUTQ_SET(o->rcpt_domain, "%s", at != NULL ? at + 1 : "");
	OUTQ_SET(o->mail_from, "b-%s@%s", token, bounce_domain);
	OUTQ_SET(o->verp_token, "%s", token);
	OUTQ_SET(o->message_id, "%s", it->message_id ? it->message_id : "");
	OUTQ_SET(o->from_domain, "%s", it->from_domain ? it->from_domain :
	    "");
#undef OUTQ_SET
	if (bad || at == NULL || at[1] == '\0') {
		pd_err(err, "outbound: recipient, kind or message id too long "
		    "or malformed");
		return -1;
	}
	outq_lower(o->rcpt_domain);
	snprintf(o->state, sizeof(o->state), "queued");
	return 0;
}

/* Run the outbound hooks and check what they want prepended. */
static int
outq_hooks(struct outq_ctx *q, const struct store_outbound *o,
    const struct outq_item *it, char *prepend, char *err)
{
	struct postdoc_outbound_info info;
	struct plugin_outcome oc;
	struct stat sb;

	prepend[0] = '\0';
	if (q->ph == NULL)
		return 0;
	if (stat(it->msg_path, &sb) != 0) {
		pd_err(err, "outbound: %s: %s", it->msg_path, strerror(errno));
		return -1;
	}
	info = (struct postdoc_outbound_info){ .id = 0, .account = it->account,
	    .kind = o->kind, .mail_from = o->mail_from, .rcpt = o->rcpt,
	    .from_domain = o->from_domain, .path = it->msg_path,
	    .size = (uint64_t)sb.st_size };
	if (plugin_run_outbound(q->ph, &info, prepend, OUTQ_PREPEND_MAX,
	    &oc) != 0 || oc.verdict == POSTDOC_DENY ||
	    oc.verdict == POSTDOC_DENYSOFT || oc.verdict == POSTDOC_DISCONNECT) {
		pd_err(err, "outbound: refused by a plugin: %s", oc.text);
		return -1;
	}
	return outq_prepend_valid(prepend, strnlen(prepend, OUTQ_PREPEND_MAX),
	    err);
}

/* The row and its "outbound.queued" event, inside the caller's BEGIN. */
static int
outq_insert_row(struct outq_ctx *q, const struct store_outbound *o,
    int64_t *id_r, char *err)
{
	char detail[512];

	if (store_outbound_add(q->st, o, id_r, err) != 0)
		return -1;
	snprintf(detail, sizeof(detail), "id=%lld kind=%s rcpt=%s",
	    (long long)*id_r, o->kind, o->rcpt);
	if (o->dossier_id != 0 && store_event_add(q->st, o->account_id,
	    o->dossier_id, "outbound.queued", detail, err) != 0)
		return -1;
	return 0;
}

/* The row and its "outbound.queued" event commit together. */
static int
outq_insert(struct outq_ctx *q, const struct store_outbound *o,
    int64_t *id_r, char *err)
{
	if (store_begin(q->st, err) != 0)
		return -1;
	if (outq_insert_row(q, o, id_r, err) != 0 ||
	    store_commit(q->st, err) != 0) {
		store_rollback(q->st);
		return -1;
	}
	return 0;
}

/* The checks, VERP token and row fields: what needs the store. */
static int
outq_prepare_row(struct outq_ctx *q, const struct outq_item *it,
    struct store_outbound *o, char *err)
{
	char token[27];

	if (q->cfg->bounce_domain == NULL || q->cfg->bounce_domain[0] == '\0') {
		pd_err(err, "outbound: outbound.bounce_domain is not set");
		return -1;
	}
	if (it->account_id <= 0 || it->rcpt == NULL || it->kind == NULL ||
	    it->msg_path == NULL) {
		pd_err(err, "outbound: account, kind, recipient and message "
		    "needed");
		return -1;
	}
	if (outq_check_suppressed(q->st, it->account_id, it->rcpt, err) != 0 ||
	    outq_token(token, err) != 0 ||
	    outq_row_fill(o, it, q->cfg->bounce_domain, token, err) != 0)
		return -1;
	return 0;
}

/* Hooks and blob (durable, dir included): no store, any thread. */
static int
outq_prepare_blob(struct outq_ctx *q, const struct outq_item *it,
    struct store_outbound *o, char *err)
{
	char *prepend = xmalloc(OUTQ_PREPEND_MAX);
	int rc = -1;

	if (outq_hooks(q, o, it, prepend, err) == 0 &&
	    outq_write_blob(q, prepend, strlen(prepend), it->msg_path,
	    o->sha256, &o->size, err) == 0) {
		o->next_attempt = pd_now();
		rc = 0;
	}
	free(prepend);
	return rc;
}

static int
outq_enqueue_file(struct outq_ctx *q, const struct outq_item *it,
    int64_t *id_r, char *err)
{
	struct store_outbound o;

	if (outq_prepare_row(q, it, &o, err) != 0 ||
	    outq_prepare_blob(q, it, &o, err) != 0)
		return -1;
	return outq_insert(q, &o, id_r, err);
}

/*
 * msg_path is consumed whatever happens: after success its bytes live in
 * the blob; after a refusal the caller builds a new message anyway.
 */
int
outq_enqueue(struct outq_ctx *q, const struct outq_item *it, int64_t *id_r,
    char *err)
{
	int64_t id = 0;
	int rc = outq_enqueue_file(q, it, &id, err);

	if (it->msg_path != NULL && unlink(it->msg_path) != 0 && rc == 0)
		log_warn("outbound: cannot remove %s: %s", it->msg_path,
		    strerror(errno));
	if (rc == 0) {
		/* out-<row id> is the outbound message's queue id in logs. */
		log_info("out-%lld: queued kind=%s to=<%s>", (long long)id,
		    it->kind, it->rcpt);
		if (id_r != NULL)
			*id_r = id;
	}
	return rc;
}

/* ---- queueing in batches ---- */

/* One job: what outq_enqueue does between the row's fields and the row. */
static void
outq_job_run(struct outq_ctx *q, size_t i)
{
	struct outq_job *j = &q->jobs[i];
	struct outq_item it = { .account = j->account,
	    .msg_path = j->msg_path };

	j->err[0] = '\0';
	j->rc = outq_prepare_blob(q, &it, &q->pend[i], j->err);
	if (unlink(j->msg_path) != 0 && j->rc == 0)
		log_warn("outbound: cannot remove %s: %s", j->msg_path,
		    strerror(errno));
}

static void *
outq_pool_main(void *arg)
{
	struct outq_ctx *q = arg;
	struct outq_pool *p = q->pool;
	size_t i;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->next >= p->nsub)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->next >= p->nsub)
			break;
		i = p->next++;
		pthread_mutex_unlock(&p->mu);
		outq_job_run(q, i);
		pthread_mutex_lock(&p->mu);
		p->ndone++;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int
outq_pool_start(struct outq_ctx *q, char *err)
{
	struct outq_pool *p = xcalloc(1, sizeof(*p));
	int n = q->cfg->queue_threads > 0 ? (int)q->cfg->queue_threads : 1;

	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->th = xcalloc((size_t)n, sizeof(*p->th));
	q->pool = p;
	for (p->nth = 0; p->nth < n; p->nth++)
		if (pthread_create(&p->th[p->nth], NULL, outq_pool_main, q)
		    != 0)
			break;
	if (p->nth == 0) {
		pd_err(err, "outbound: cannot start a queueing thread");
		outq_pool_stop(q);
		return -1;
	}
	return 0;
}

/* Until every submitted job has run: their rows and files are ours again. */
static void
outq_pool_wait(struct outq_ctx *q)
{
	struct outq_pool *p = q->pool;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	while (p->ndone < p->nsub)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

static void
outq_pool_stop(struct outq_ctx *q)
{
	struct outq_pool *p = q->pool;
	int i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	pthread_cond_destroy(&p->done);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->mu);
	free(p->th);
	free(p);
	q->pool = NULL;
}

/* Forget the batch: waits for its jobs, frees their names. */
static void
outq_batch_reset(struct outq_ctx *q)
{
	size_t i;

	outq_pool_wait(q);
	for (i = 0; i < q->npend; i++) {
		free(q->jobs[i].account);
		free(q->jobs[i].msg_path);
	}
	q->npend = 0;
	if (q->pool != NULL) {
		pthread_mutex_lock(&q->pool->mu);
		q->pool->nsub = q->pool->next = q->pool->ndone = 0;
		pthread_mutex_unlock(&q->pool->mu);
	}
}

/*
 * A batch costs one WAL commit instead of one per message, and its
 * messages are signed and stored by the queueing threads at the same
 * time.  Each blob is durable (file and dir fsync'd) before commit
 * inserts the row that names it, as in outq_enqueue.  A crash before the
 * commit leaves blobs no row names (as a crash between blob and row
 * always could) and no rows.
 */
int
outq_enqueue_add(struct outq_ctx *q, const struct outq_item *it, char *err)
{
	struct store_outbound o;

	if (outq_prepare_row(q, it, &o, err) != 0) {
		if (it->msg_path != NULL)
			unlink(it->msg_path);
		return -1;
	}
	if (q->pool == NULL && outq_pool_start(q, err) != 0) {
		unlink(it->msg_path);
		return -1;
	}
	if (q->npend == q->cappend) {
		outq_pool_wait(q);	/* no job may hold pend while it moves */
		q->cappend = q->cappend ? q->cappend * 2 : 64;
		q->pend = xrealloc(q->pend, q->cappend * sizeof(*q->pend));
		q->jobs = xrealloc(q->jobs, q->cappend * sizeof(*q->jobs));
	}
	q->pend[q->npend] = o;
	q->jobs[q->npend] = (struct outq_job){ .account = xstrdup(it->account
	    ? it->account : ""), .msg_path = xstrdup(it->msg_path), .rc = -1 };
	q->npend++;
	pthread_mutex_lock(&q->pool->mu);
	q->pool->nsub = q->npend;
	pthread_cond_signal(&q->pool->work);
	pthread_mutex_unlock(&q->pool->mu);
	return 0;
}

size_t
outq_enqueue_pending(const struct outq_ctx *q)
{
	return q->npend;
}

/* The rows of jobs 0..n-1 and the caller's changes, in one transaction. */
static int
outq_batch_insert(struct outq_ctx *q, size_t n, outq_queued_fn fn,
    void *ctx, char *err)
{
	size_t i;
	int64_t id = 0;

	if (n == 0)
		return 0;
	if (store_begin(q->st, err) != 0)
		return -1;
	for (i = 0; i < n; i++)
		if (outq_insert_row(q, &q->pend[i], &id, err) != 0 ||
		    (fn != NULL && fn(q->st, i, id, ctx, err) != 0)) {
			store_rollback(q->st);
			return -1;
		}
	if (store_commit(q->st, err) != 0) {
		store_rollback(q->st);
		return -1;
	}
	log_info("outbound: %zu messages queued (ids up to %lld)", n,
	    (long long)id);
	return 0;
}

/*
 * Waits for the batch's jobs.  If one failed, the messages added before
 * it are committed all the same (as when add itself failed, before the
 * jobs ran on threads) and its error is returned; the later ones are
 * dropped, their blobs unnamed.
 */
int
outq_enqueue_commit(struct outq_ctx *q, outq_queued_fn fn, void *ctx,
    size_t *n_r, char *err)
{
	size_t k;
	int rc;

	*n_r = 0;
	outq_pool_wait(q);
	for (k = 0; k < q->npend && q->jobs[k].rc == 0; k++)
		;
	rc = outq_batch_insert(q, k, fn, ctx, err);
	if (rc == 0)
		*n_r = k;
	if (rc == 0 && k < q->npend) {
		pd_err(err, "%s", q->jobs[k].err);
		rc = -1;
	}
	outq_batch_reset(q);
	return rc;
}

void
outq_enqueue_abort(struct outq_ctx *q)
{
	outq_batch_reset(q);
}

/* ---- outcomes ---- */

static void
outq_stats_add(struct outq_stats *s, const char *state)
{
	if (s == NULL)
		return;
	if (strcmp(state, "sent") == 0)
		s->sent++;
	else if (strcmp(state, "deferred") == 0)
		s->deferred++;
	else if (strcmp(state, "bounced") == 0)
		s->bounced++;
	else if (strcmp(state, "failed") == 0)
		s->failed++;
}

/*
 * The public events plugins see (evq.c, docs/webhooks.md), in the
 * transaction of the change: invitation.sent, message.bounced (also for
 * mail not tied to a dossier: then account-level).  "reason" goes last:
 * it is free text and runs to the end of the detail.
 */
static int
outq_public_event(struct store *st, const struct store_outbound *o,
    const struct outq_outcome *oc, char *err)
{
	char detail[1024];

	if (strcmp(oc->state, "sent") == 0 &&
	    strcmp(o->kind, "invitation") == 0) {
		snprintf(detail, sizeof(detail), "outbound=%lld rcpt=%s",
		    (long long)o->id, o->rcpt);
		return store_event_add(st, o->account_id, o->dossier_id,
		    "invitation.sent", detail, err);
	}
	if (strcmp(oc->state, "bounced") != 0)
		return 0;
	snprintf(detail, sizeof(detail), "outbound=%lld kind=%s rcpt=%s "
	    "code=%d enhanced=%s reason=%s", (long long)o->id, o->kind,
	    o->rcpt, oc->code, oc->enhanced[0] != '\0' ? oc->enhanced : "-",
	    oc->text);
	return store_event_add(st, o->account_id, o->dossier_id,
	    "message.bounced", detail, err);
}

/*
 * Row update, suppression and dossier event in one transaction: a row
 * recorded "bounced" always has its suppression, and a crash before the
 * commit leaves the row "sending", to be retried after recovery.
 */
/* A row's outcome: state, suppression, events; in the caller's BEGIN. */
static int
outq_record_rows(struct store *st, const struct pd_config *cfg,
    const struct store_outbound *o, const struct outq_outcome *oc, char *err)
{
	char detail[1024];

	if (store_outbound_update(st, o->id, oc->state, oc->code,
	    oc->enhanced, oc->text, oc->next_attempt, err) != 0)
		return -1;
	if (oc->suppress && store_suppression_add(st, o->account_id, o->rcpt,
	    oc->reason, pd_now() + cfg->suppression_days * OUTQ_DAY, err) != 0)
		return -1;
	snprintf(detail, sizeof(detail), "id=%lld rcpt=%s: %d %s %s",
	    (long long)o->id, o->rcpt, oc->code, oc->enhanced, oc->text);
	if (o->dossier_id != 0 && store_event_add(st, o->account_id,
	    o->dossier_id, oc->event, detail, err) != 0)
		return -1;
	return outq_public_event(st, o, oc, err);
}

static int
outq_record(struct store *st, const struct pd_config *cfg,
    const struct store_outbound *o, const struct outq_outcome *oc, char *err)
{
	if (store_begin(st, err) != 0)
		return -1;
	if (outq_record_rows(st, cfg, o, oc, err) != 0 ||
	    store_commit(st, err) != 0) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

static int64_t
outq_backoff(const struct pd_config *cfg, int attempts)
{
	int64_t d = cfg->retry_base > 0 ? cfg->retry_base : 1;
	int i;

	for (i = 1; i < attempts && d < OUTQ_DAY; i++)
		d *= 2;
	return d < OUTQ_DAY ? d : OUTQ_DAY;
}

/* Turn a transport's answer into the row's next state. */
static void
outq_classify(const struct pd_config *cfg, const struct store_outbound *o,
    const struct postdoc_delivery *res, int64_t now, struct outq_outcome *oc)
{
	memset(oc, 0, sizeof(*oc));
	oc->code = res->code;
	oc->enhanced = res->enhanced;
	snprintf(oc->text, sizeof(oc->text), "%s", res->text);
	if (res->code >= 200 && res->code < 300) {
		oc->state = "sent";
		oc->event = "outbound.sent";
	} else if (res->code >= 500 && res->code < 600) {
		oc->state = "bounced";
		oc->event = "outbound.bounced";
		oc->suppress = 1;
		snprintf(oc->reason, sizeof(oc->reason),
		    "5xx at delivery: %s %s", res->enhanced, res->text);
	} else if (now - o->created > cfg->retry_max_age) {
		oc->state = "bounced";
		oc->event = "outbound.bounced";
		snprintf(oc->text, sizeof(oc->text), "undeliverable after %d "
		    "attempts: %d %s %s", o->attempts, res->code,
		    res->enhanced, res->text);
	} else {
		/* 4xx, a local failure (0) or nonsense: try again later */
		oc->state = "deferred";
		oc->event = "outbound.deferred";
		oc->next_attempt = now + outq_backoff(cfg, o->attempts);
	}
}

/* postdoc_deliveries_total{result} for a recorded outcome. */
static void
outq_count(const char *state)
{
	if (strcmp(state, "sent") == 0)
		metrics_delivery(MD_SENT);
	else if (strcmp(state, "deferred") == 0)
		metrics_delivery(MD_DEFERRED);
	else if (strcmp(state, "bounced") == 0)
		metrics_delivery(MD_BOUNCED);
	else if (strcmp(state, "failed") == 0)
		metrics_delivery(MD_FAILED);
}

/* After the outcome is durable: counters and the log line. */
static void
outq_done(const struct store_outbound *o, const struct outq_outcome *oc,
    struct outq_stats *stats)
{
	outq_stats_add(stats, oc->state);
	outq_count(oc->state);
	log_info("out-%lld: to=<%s> status=%s %d %s %s", (long long)o->id,
	    o->rcpt, oc->state, oc->code, oc->enhanced, oc->text);
}

static void
outq_finish(struct outq_ctx *q, const struct store_outbound *o,
    const struct outq_outcome *oc, struct outq_stats *stats)
{
	char err[PD_ERRLEN];

	if (outq_record(q->st, q->cfg, o, oc, err) != 0) {
		/* Left "sending": recovery retries it; never lost. */
		log_err("out-%lld: cannot record %s: %s", (long long)o->id,
		    oc->state, err);
		return;
	}
	outq_done(o, oc, stats);
}

/*
 * A delivered batch's outcomes in one transaction: one WAL commit for
 * the session instead of one per message.  Every message of the batch
 * was handed to the transport before the first outcome was written, so
 * a crash leaves the same messages "sending" (and retried) as before.
 * If the transaction fails, each outcome is recorded on its own, so one
 * bad row does not hold back the others.
 */
static void
outq_finish_batch(struct outq_ctx *q, const struct store_outbound *rows,
    const size_t *map, const struct outq_outcome *oc, size_t k,
    struct outq_stats *stats)
{
	char err[PD_ERRLEN];
	size_t i;

	if (k == 0)
		return;
	if (store_begin(q->st, err) != 0)
		goto one_by_one;
	for (i = 0; i < k; i++)
		if (outq_record_rows(q->st, q->cfg, &rows[map[i]], &oc[i],
		    err) != 0)
			break;
	if (i < k || store_commit(q->st, err) != 0) {
		store_rollback(q->st);
		goto one_by_one;
	}
	for (i = 0; i < k; i++)
		outq_done(&rows[map[i]], &oc[i], stats);
	return;
one_by_one:
	log_warn("outbound: recording %zu outcomes at once: %s; one by one",
	    k, err);
	for (i = 0; i < k; i++)
		outq_finish(q, &rows[map[i]], &oc[i], stats);
}

static void
outq_fail_row(struct outq_ctx *q, const struct store_outbound *o,
    const char *state, const char *text, struct outq_stats *stats)
{
	struct postdoc_delivery res;
	struct outq_outcome oc;

	if (strcmp(state, "failed") == 0) {
		memset(&oc, 0, sizeof(oc));
		oc.state = "failed";
		oc.event = "outbound.failed";
		oc.enhanced = "";
		snprintf(oc.text, sizeof(oc.text), "%s", text);
	} else {
		memset(&res, 0, sizeof(res));
		snprintf(res.text, sizeof(res.text), "%s", text);
		outq_classify(q->cfg, o, &res, pd_now(), &oc);
	}
	outq_finish(q, o, &oc, stats);
}

/*
 * Last look before the transport: an address suppressed since the row
 * was queued (a DSN for another message) must not be mailed again.
 */
static int
outq_precheck(struct outq_ctx *q, const struct store_outbound *o,
    struct outq_stats *stats)
{
	char err[PD_ERRLEN], why[128];
	int rc = store_suppressed(q->st, o->account_id, o->rcpt, pd_now(),
	    err);

	if (rc < 0) {
		outq_fail_row(q, o, "deferred", err, stats);
		return 0;
	}
	if (rc == 1) {
		outq_fail_row(q, o, "failed", "suppressed", stats);
		return 0;
	}
	/* An erased address (privacy.c: only its keyed hash is left) gets
	 * nothing that is not about one of its dossiers: no marketing. */
	if (o->dossier_id == 0 &&
	    (rc = privacy_erased(q->cfg, q->st, o->account_id, o->rcpt, err))
	    != 0) {
		outq_fail_row(q, o, rc < 0 ? "deferred" : "failed", rc < 0 ?
		    err : "erased subject", stats);
		return 0;
	}
	/* Marketing: consent, age attestation and bounces are checked
	 * again as the message leaves, so a withdrawal beats the queue. */
	if (strcmp(o->kind, "newsletter") == 0 &&
	    (rc = store_marketing_ok_msgid(q->st, o->account_id,
	    o->message_id, pd_now(), why, sizeof(why), err)) != 1) {
		if (rc < 0)
			outq_fail_row(q, o, "deferred", err, stats);
		else
			outq_fail_row(q, o, "failed", why, stats);
		return 0;
	}
	if (!blob_exists(q->bs, o->sha256)) {
		outq_fail_row(q, o, "failed", "queued message file is missing",
		    stats);
		return 0;
	}
	return 1;
}

/* One transport call for rows of one domain (n <= batch_max). */
static void
outq_deliver_batch(struct outq_ctx *q, const struct store_outbound *rows,
    size_t n, struct outq_stats *stats)
{
	struct postdoc_outbound_info *info = xcalloc(n, sizeof(*info));
	struct postdoc_delivery *res = xcalloc(n, sizeof(*res));
	char (*paths)[OUTQ_PATH_MAX] = xcalloc(n, OUTQ_PATH_MAX);
	size_t *map = xcalloc(n, sizeof(*map));
	struct outq_outcome *oc = xcalloc(n, sizeof(*oc));
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		const struct store_outbound *o = &rows[i];

		if (!outq_precheck(q, o, stats))
			continue;
		blob_path(q->bs, o->sha256, paths[k], OUTQ_PATH_MAX);
		info[k] = (struct postdoc_outbound_info){ .id = o->id,
		    .account = o->account, .kind = o->kind,
		    .mail_from = o->mail_from, .rcpt = o->rcpt,
		    .from_domain = o->from_domain, .path = paths[k],
		    .size = o->size };
		map[k++] = i;
	}
	if (k > 0)
		plugin_deliver(q->ph, q->cfg->transport, info, k, res);
	for (i = 0; i < k; i++)
		outq_classify(q->cfg, &rows[map[i]], &res[i], pd_now(), &oc[i]);
	outq_finish_batch(q, rows, map, oc, k, stats);
	free(oc);
	free(map);
	free(paths);
	free(res);
	free(info);
}

/* ---- claiming and batching ---- */

static int
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

typedef void (*outq_batch_fn)(const struct store_outbound *rows, size_t n,
    void *ctx);

/* Group rows by recipient domain into batches of at most batch_max. */
static void
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

static void
outq_bucket_init(struct outq_bucket *b, int64_t rate)
{
	b->rate = rate > 0 ? (double)rate : 0;
	b->tokens = b->rate;
	b->last_ms = pd_monotonic_ms();
}

/* Take up to want tokens now (all of them when the rate is unlimited). */
static int
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
static void
outq_bucket_give(struct outq_bucket *b, int n)
{
	if (b->rate > 0 && n > 0)
		b->tokens += n;
}

/*
 * var/outq.lock is held by whoever delivers with the right to recover:
 * rows "sending" while nobody holds it were left by a crash.  Without
 * the lock (another process is delivering) we still claim, since a claim
 * is atomic, but we never touch the other process's "sending" rows.
 */
static int
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

static void
outq_recover(struct outq_ctx *q)
{
	char err[PD_ERRLEN];
	int n = 0;

	if (store_outbound_recover(q->st, pd_now(), &n, err) != 0)
		log_err("outbound: recovery failed: %s", err);
	else if (n > 0)
		log_warn("outbound: %d message(s) interrupted by a stop or a "
		    "crash will be retried", n);
}

static int
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
	for (o->nq = 1; o->nq < n && o->nq < 64; o->nq++)
		if (outq_ctx_new(q->cfg, q->ph, &o->qs[o->nq], err) != 0) {
			log_warn("outbound: queue run on %d threads: %s",
			    o->nq, err);
			break;
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
	if ((fd = outq_lock_try(q->cfg)) >= 0)
		outq_recover(q);
	/* Rows deferred during the run are due later than `start`, so each
	 * message is tried at most once per run. */
	rc = outq_drain(q, pd_now(), stats, err);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- bounces ---- */

int
outq_bounce(struct store *st, const struct pd_config *cfg,
    const char *verp_token, int code, const char *enhanced,
    const char *text, char *err)
{
	struct store_outbound o;
	struct outq_outcome oc;
	int rc = store_outbound_by_verp(st, verp_token, &o, err);

	if (rc != 1)
		return rc;
	memset(&oc, 0, sizeof(oc));
	/* Even a "sent" row: a DSN arrives after the relay accepted it. */
	oc.state = "bounced";
	oc.event = "outbound.bounced";
	oc.code = code;
	oc.enhanced = enhanced != NULL ? enhanced : "";
	snprintf(oc.text, sizeof(oc.text), "%s", text != NULL ? text : "");
	oc.suppress = strncmp(oc.enhanced, "5.", 2) == 0 || code >= 500;
	snprintf(oc.reason, sizeof(oc.reason), "DSN %d %.11s %.200s", code,
	    oc.enhanced, oc.text);
	if (outq_record(st, cfg, &o, &oc, err) != 0)
		return -1;
	outq_count("bounced");
	log_info("out-%lld: to=<%s> status=bounced (DSN) %d %s %s",
	    (long long)o.id, o.rcpt, code, oc.enhanced, oc.text);
	return 1;
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
	/* scheduler thread only */
	struct outq_ctx *sq;
	struct outq_bucket bucket;
	int lockfd;
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

	if (r->lockfd < 0) {
		if ((r->lockfd = outq_lock_try(r->cfg)) < 0)
			return;
		outq_recover(r->sq);
	}
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
	if (outq_ctx_new(r->cfg, r->ph, &r->sq, err) != 0 ||
	    outq_transport_check(r->sq, err) != 0)
		return -1;
	for (i = 0; i < r->nworkers; i++) {
		r->workers[i].r = r;
		if (outq_ctx_new(r->cfg, r->ph, &r->workers[i].q, err) != 0)
			return -1;
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
	if (r->sq != NULL)
		outq_requeue(r);
	for (i = 0; i < r->nworkers; i++)
		outq_ctx_free(&r->workers[i].q);
	outq_ctx_free(&r->sq);
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

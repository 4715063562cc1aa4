/*
 * outq_enqueue.c - putting a message in the queue: the VERP sender, the
 * plugins' outbound hooks (DKIM) and the check of what they prepend, the
 * CRLF-canonical blob, the row; one at a time or in batches whose hooks
 * and blobs run on queueing threads and whose rows commit together.
 * Never delivers, and never inserts a row before its blob is durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/blob.h"
#include "store/blob_gc.h"
#include "lib/config.h"
#include "eligible.h"
#include "outq.h"
#include "outq_int.h"
#include "plugin/plugin_host.h"
#include "store/store.h"
#include "lib/util.h"

#define OUTQ_PREPEND_MAX 16384	/* all plugins' header lines together */
#define OUTQ_LINE_MAX 998	/* RFC 5322 2.1.1, without the CRLF */

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

/*
 * Refuse a recipient the queue may not take (eligible.c: a suppressed
 * one), with the suppression's own reason and its end date.
 */
static int
outq_check_eligible(struct outq_ctx *q, const struct outq_item *it,
    char *err)
{
	struct eligible_ask a = { .kind = eligible_kind_of(it->kind,
	    it->dossier_id), .when = ELIGIBLE_QUEUE, .account_id =
	    it->account_id, .rcpt = it->rcpt, .message_id = it->message_id,
	    .now = pd_now() };
	struct eligible_verdict v;
	char until[64];
	int rc = eligible_check(q->cfg, q->st, &a, &v, err);

	if (rc != 0)
		return rc == 1 ? 0 : -1;
	if (strcmp(v.reason, "suppressed") == 0) {
		outq_date(until, sizeof(until), v.until);
		pd_err(err, "recipient %s is suppressed until %s: %s", it->rcpt,
		    until, v.detail);
	} else
		pd_err(err, "recipient %s: %s", it->rcpt, v.reason);
	return -1;
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
	if (outq_check_eligible(q, it, err) != 0 ||
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

/*
 * Blobs a failed queueing placed and no row names: removed now (under
 * the removal lock, blob_gc.h), not left to outlive an erasure.
 */
static void
outq_unplace(struct outq_ctx *q, const char (*sha)[65], size_t n)
{
	char err[PD_ERRLEN];
	size_t removed = 0;

	if (n == 0)
		return;
	if (blob_gc_remove(q->st, q->bs, sha, n, &removed, err) != 0)
		log_warn("outbound: unnamed blobs left for the sweep: %s", err);
	else if (removed > 0)
		log_info("outbound: removed %zu blob(s) no row names", removed);
}

/* The removal lock is held from the blob until its row is in (blob.h). */
static int
outq_enqueue_file(struct outq_ctx *q, const struct outq_item *it,
    int64_t *id_r, char *err)
{
	struct store_outbound o;
	int rc;

	if (outq_prepare_row(q, it, &o, err) != 0 ||
	    blob_hold(q->bs, BLOB_GC_WAIT_MS, err) != 0)
		return -1;
	o.sha256[0] = '\0';
	rc = outq_prepare_blob(q, it, &o, err) == 0 &&
	    outq_insert(q, &o, id_r, err) == 0 ? 0 : -1;
	blob_unhold(q->bs);
	if (rc != 0 && blob_sha_valid(o.sha256))
		outq_unplace(q, (const char (*)[65])&o.sha256, 1);
	return rc;
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

void
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

/* The blobs of jobs named..npend-1 that were placed: no row names them. */
static void
outq_batch_unplace(struct outq_ctx *q)
{
	char (*sha)[65] = xcalloc(q->npend + 1, 65);
	size_t i, n = 0;

	for (i = q->named; i < q->npend; i++)
		if (q->jobs[i].rc == 0 && blob_sha_valid(q->pend[i].sha256))
			memcpy(sha[n++], q->pend[i].sha256, 65);
	outq_unplace(q, (const char (*)[65])sha, n);
	free(sha);
}

/* Forget the batch: waits for its jobs, releases the removal lock,
 * removes the blobs of the rows that were not committed, frees names. */
void
outq_batch_reset(struct outq_ctx *q)
{
	size_t i;

	outq_pool_wait(q);
	if (q->held) {
		blob_unhold(q->bs);
		q->held = 0;
	}
	outq_batch_unplace(q);
	q->named = 0;
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
 * inserts the row that names it, as in outq_enqueue.  The batch holds
 * the blob store's removal lock from its first add until its rows commit
 * or fail (outq_batch_reset), and a failed batch's blobs are removed; a
 * crash before the commit leaves blobs no row names, for the sweep.
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
	if ((q->pool == NULL && outq_pool_start(q, err) != 0) ||
	    (!q->held && blob_hold(q->bs, BLOB_GC_WAIT_MS, err) != 0)) {
		unlink(it->msg_path);
		return -1;
	}
	q->held = 1;	/* until the batch's rows commit or fail */
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
 * dropped, and the blobs no row names are removed (outq_batch_reset).
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
		*n_r = q->named = k;
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

/*
 * outq_journal.c - outcomes a transport gave that the store has not
 * recorded yet: var/outq.journal, written and fdatasync'd before the
 * outcome's transaction, cleared once it commits, replayed before any
 * row goes back from "sending" to "deferred"; and the same outcomes in
 * memory, retried with backoff while the store refuses them (disk full,
 * locked).  Never decides what an outcome means (outq_deliver.c).
 *
 * The file is made full size (zeros, fsync'd) when first opened, and a
 * slot is only ever overwritten in place, so on ext4, xfs or tmpfs a
 * full disk that stops SQLite does not stop the journal.  It has
 * OUTQ_JREGIONS regions of OUTQ_JSLOTS slots: each delivering process
 * (serve, `queue run`, `invite`) holds one region with an OFD write
 * lock, so a region that can be locked belongs to a process that died.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/config.h"
#include "outq_int.h"
#include "store/records.h"
#include "lib/util.h"

#define OUTQ_JMAGIC 0x4a51504fU		/* "OPQJ": a live record */
#define OUTQ_JREGIONS 8
#define OUTQ_JSLOTS 512
#define OUTQ_JREGION ((off_t)OUTQ_JSLOTS * (off_t)sizeof(struct outq_jrec))
#define OUTQ_JSIZE (OUTQ_JREGIONS * OUTQ_JREGION)
#define OUTQ_JRETRY_MIN 250		/* ms: first retry of a record */
#define OUTQ_JRETRY_MAX 30000


/* An outcome waiting for the store; slot -1: in memory only. */
struct outq_jpend {
	int slot;
	struct outq_jrec rec;
};

struct outq_journal {
	const struct pd_config *cfg;
	char path[OUTQ_PATH_MAX];
	int fd;
	int region;
	pthread_mutex_t mu;
	unsigned char used[OUTQ_JSLOTS];	/* 0 free, 1 taken */
	struct outq_jpend *pend;
	size_t npend, cappend;
	int64_t delay_ms, next_ms;		/* retry backoff */
	int64_t rdelay_ms, rnext_ms;		/* recovery's backoff */
	int waiting_logged;
};

static uint32_t
outq_jsum(const struct outq_jrec *r)
{
	const unsigned char *p = (const unsigned char *)r + 8;
	uint32_t h = 2166136261U;
	size_t i;

	for (i = 8; i < sizeof(*r); i++)
		h = (h ^ *p++) * 16777619U;
	return h;
}

static int
outq_jvalid(const struct outq_jrec *r)
{
	return r->magic == OUTQ_JMAGIC && r->sum == outq_jsum(r) && r->id > 0;
}

static off_t
outq_joff(int region, int slot)
{
	return (off_t)region * OUTQ_JREGION +
	    (off_t)slot * (off_t)sizeof(struct outq_jrec);
}

/* ---- records ---- */

void
outq_jrec_pack(struct outq_jrec *r, const struct store_outbound *o,
    const struct outq_outcome *oc)
{
	memset(r, 0, sizeof(*r));
	r->id = o->id;
	r->account_id = o->account_id;
	r->dossier_id = o->dossier_id;
	r->attempts = o->attempts;
	r->next_attempt = oc->next_attempt;
	r->code = oc->code;
	r->suppress = oc->suppress;
	snprintf(r->kind, sizeof(r->kind), "%s", o->kind);
	snprintf(r->rcpt, sizeof(r->rcpt), "%s", o->rcpt);
	snprintf(r->state, sizeof(r->state), "%s", oc->state);
	snprintf(r->event, sizeof(r->event), "%s", oc->event);
	snprintf(r->enhanced, sizeof(r->enhanced), "%s",
	    oc->enhanced != NULL ? oc->enhanced : "");
	snprintf(r->text, sizeof(r->text), "%.*s", (int)sizeof(r->text) - 1,
	    oc->text);
	snprintf(r->reason, sizeof(r->reason), "%s", oc->reason);
	r->magic = OUTQ_JMAGIC;
	r->sum = outq_jsum(r);
}

/* The row and outcome a record stands for; pointers into r. */
void
outq_jrec_unpack(const struct outq_jrec *r, struct store_outbound *o,
    struct outq_outcome *oc)
{
	memset(o, 0, sizeof(*o));
	memset(oc, 0, sizeof(*oc));
	o->id = r->id;
	o->account_id = r->account_id;
	o->dossier_id = r->dossier_id;
	o->attempts = r->attempts;
	snprintf(o->kind, sizeof(o->kind), "%.*s", (int)sizeof(r->kind) - 1,
	    r->kind);
	snprintf(o->rcpt, sizeof(o->rcpt), "%.*s", (int)sizeof(r->rcpt) - 1,
	    r->rcpt);
	oc->state = r->state;
	oc->event = r->event;
	oc->enhanced = r->enhanced;
	oc->code = r->code;
	oc->next_attempt = r->next_attempt;
	oc->suppress = r->suppress;
	snprintf(oc->text, sizeof(oc->text), "%.*s", (int)sizeof(r->text) - 1,
	    r->text);
	snprintf(oc->reason, sizeof(oc->reason), "%.*s",
	    (int)sizeof(r->reason) - 1, r->reason);
}

/* ---- the file ---- */

struct outq_journal *
outq_journal_new(const struct pd_config *cfg)
{
	struct outq_journal *jn = xcalloc(1, sizeof(*jn));

	jn->cfg = cfg;
	jn->fd = -1;
	jn->region = -1;
	snprintf(jn->path, sizeof(jn->path), "%s/outq.journal", cfg->var_dir);
	pthread_mutex_init(&jn->mu, NULL);
	return jn;
}

void
outq_journal_free(struct outq_journal **jp)
{
	struct outq_journal *jn;

	if (jp == NULL || *jp == NULL)
		return;
	jn = *jp;
	if (jn->fd >= 0)
		close(jn->fd);		/* drops the region's lock */
	pthread_mutex_destroy(&jn->mu);
	free(jn->pend);
	free(jn);
	*jp = NULL;
}

/* Zeros up to the full size, fsync'd: later writes need no new blocks. */
static int
outq_journal_fill(struct outq_journal *jn, char *err)
{
	static const char zero[65536];
	struct stat sb;
	off_t at;
	ssize_t n;

	if (fstat(jn->fd, &sb) != 0) {
		pd_err(err, "%s: %s", jn->path, strerror(errno));
		return -1;
	}
	if (sb.st_size >= OUTQ_JSIZE)
		return 0;
	for (at = sb.st_size; at < OUTQ_JSIZE; at += n) {
		n = pwrite(jn->fd, zero, (size_t)(OUTQ_JSIZE - at) <
		    sizeof(zero) ? (size_t)(OUTQ_JSIZE - at) : sizeof(zero),
		    at);
		if (n < 0 && errno == EINTR)
			n = 0;
		else if (n <= 0) {
			pd_err(err, "%s: making it %lld octets: %s", jn->path,
			    (long long)OUTQ_JSIZE, strerror(errno));
			return -1;
		}
	}
	if (fsync(jn->fd) != 0 || pd_fsync_dir(jn->cfg->var_dir) != 0) {
		pd_err(err, "%s: fsync: %s", jn->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* OFD lock (per open file, not per process) on one region. */
static int
outq_journal_lock(int fd, int region, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)region * OUTQ_JREGION;
	fl.l_len = OUTQ_JREGION;
	return fcntl(fd, F_OFD_SETLK, &fl);
}

static int
outq_journal_read(int fd, int region, struct outq_jrec *v, char *err,
    const char *path)
{
	size_t want = (size_t)OUTQ_JREGION, got = 0;
	ssize_t n;

	while (got < want) {
		n = pread(fd, (char *)v + got, want - got,
		    outq_joff(region, 0) + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			pd_err(err, "%s: read: %s", path, n < 0 ?
			    strerror(errno) : "short file");
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

static void
outq_journal_pend_add(struct outq_journal *jn, int slot,
    const struct outq_jrec *r)
{
	if (jn->npend == jn->cappend) {
		jn->cappend = jn->cappend ? jn->cappend * 2 : 16;
		jn->pend = xrealloc(jn->pend, jn->cappend * sizeof(*jn->pend));
	}
	jn->pend[jn->npend].slot = slot;
	jn->pend[jn->npend++].rec = *r;
	if (jn->delay_ms == 0) {
		jn->delay_ms = OUTQ_JRETRY_MIN;
		jn->next_ms = pd_monotonic_ms();	/* first retry: now */
	}
}

/* Records a dead owner left in the region we now hold: ours to record. */
static int
outq_journal_load(struct outq_journal *jn, char *err)
{
	struct outq_jrec *v = xmalloc((size_t)OUTQ_JREGION);
	int i;

	if (outq_journal_read(jn->fd, jn->region, v, err, jn->path) != 0) {
		free(v);
		return -1;
	}
	for (i = 0; i < OUTQ_JSLOTS; i++)
		if (outq_jvalid(&v[i])) {
			jn->used[i] = 1;
			outq_journal_pend_add(jn, i, &v[i]);
		}
	free(v);
	if (jn->npend > 0)
		log_warn("outbound: %zu outcome(s) from %s to record",
		    jn->npend, jn->path);
	return 0;
}

int
outq_journal_open(struct outq_journal *jn, char *err)
{
	int r;

	if (jn->fd >= 0)
		return 0;
	jn->fd = open(jn->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0640);
	if (jn->fd < 0) {
		pd_err(err, "%s: %s", jn->path, strerror(errno));
		return -1;
	}
	pd_own_fd(jn->fd);
	if (outq_journal_fill(jn, err) != 0)
		goto fail;
	for (r = 0; r < OUTQ_JREGIONS; r++)
		if (outq_journal_lock(jn->fd, r, F_WRLCK) == 0)
			break;
	if (r == OUTQ_JREGIONS) {
		pd_err(err, "%s: all %d regions are held by other delivering "
		    "processes", jn->path, OUTQ_JREGIONS);
		goto fail;
	}
	jn->region = r;
	if (outq_journal_load(jn, err) == 0)
		return 0;
fail:
	close(jn->fd);
	jn->fd = -1;
	jn->region = -1;
	return -1;
}

/* ---- slots ---- */

/* Up to n free slots for outcomes about to exist; -1 for the rest. */
size_t
outq_journal_reserve(struct outq_journal *jn, int *slots, size_t n)
{
	size_t k = 0;
	int i;

	pthread_mutex_lock(&jn->mu);
	for (i = 0; i < OUTQ_JSLOTS && k < n && jn->fd >= 0; i++)
		if (!jn->used[i]) {
			jn->used[i] = 1;
			slots[k++] = i;
		}
	pthread_mutex_unlock(&jn->mu);
	for (i = (int)k; i < (int)n; i++)
		slots[i] = -1;
	return k;
}

/*
 * Zeros over the whole slot, not just the magic: a recipient's address
 * must not outlive its row (privacy.c's erasure leaves no residue).  A
 * clear that fails leaves a record replay ignores by its attempt.
 */
static void
outq_journal_zero(struct outq_journal *jn, int region, int slot)
{
	static const struct outq_jrec zero;

	if (pwrite(jn->fd, &zero, sizeof(zero), outq_joff(region, slot)) !=
	    (ssize_t)sizeof(zero))
		log_warn("%s: clearing a slot: %s", jn->path, strerror(errno));
}

void
outq_journal_clear(struct outq_journal *jn, int slot)
{
	if (slot < 0)
		return;
	outq_journal_zero(jn, jn->region, slot);
	pthread_mutex_lock(&jn->mu);
	jn->used[slot] = 0;
	pthread_mutex_unlock(&jn->mu);
}

/*
 * Each outcome into its slot, then one fdatasync: durable before the
 * store hears of it.  A slot that cannot be written is given up (-1):
 * the outcome still goes to the store, as before the journal existed.
 */
void
outq_journal_write(struct outq_journal *jn, int *slots,
    const struct outq_jrec *recs, size_t n)
{
	size_t i, wrote = 0;

	for (i = 0; i < n; i++) {
		if (slots[i] < 0)
			continue;
		if (pwrite(jn->fd, &recs[i], sizeof(recs[i]),
		    outq_joff(jn->region, slots[i])) == (ssize_t)sizeof(recs[i])) {
			wrote++;
			continue;
		}
		log_err("%s: out-%lld: %s", jn->path, (long long)recs[i].id,
		    strerror(errno));
		outq_journal_clear(jn, slots[i]);
		slots[i] = -1;
	}
	if (wrote > 0 && fdatasync(jn->fd) != 0)
		log_err("%s: fdatasync: %s", jn->path, strerror(errno));
}

/* ---- outcomes waiting for the store ---- */

void
outq_journal_keep(struct outq_journal *jn, int slot,
    const struct outq_jrec *r)
{
	pthread_mutex_lock(&jn->mu);
	outq_journal_pend_add(jn, slot, r);
	pthread_mutex_unlock(&jn->mu);
}

size_t
outq_journal_pending(struct outq_journal *jn)
{
	size_t n;

	pthread_mutex_lock(&jn->mu);
	n = jn->npend;
	pthread_mutex_unlock(&jn->mu);
	return n;
}

/* Backoff after a failed round, reset once nothing waits; mu held. */
static void
outq_journal_backoff(struct outq_journal *jn, int failed)
{
	if (!failed && jn->npend == 0) {
		jn->delay_ms = 0;
		return;
	}
	jn->next_ms = pd_monotonic_ms() + jn->delay_ms;
	jn->delay_ms = jn->delay_ms * 2 > OUTQ_JRETRY_MAX ? OUTQ_JRETRY_MAX :
	    jn->delay_ms * 2;
}

/*
 * Record what waits, if its retry is due.  The list is taken out under
 * the lock and what fails goes back, so delivery threads can keep
 * adding meanwhile.  Returns how many still wait.
 */
size_t
outq_journal_retry(struct outq_journal *jn, struct outq_ctx *q,
    struct outq_stats *stats, int force)
{
	struct outq_jpend *v;
	size_t n, i, failed = 0;

	pthread_mutex_lock(&jn->mu);
	if (jn->npend == 0 || (!force && pd_monotonic_ms() < jn->next_ms)) {
		n = jn->npend;
		pthread_mutex_unlock(&jn->mu);
		return n;
	}
	v = jn->pend;
	n = jn->npend;
	jn->pend = NULL;
	jn->npend = jn->cappend = 0;
	pthread_mutex_unlock(&jn->mu);
	for (i = 0; i < n; i++) {
		if (outq_replay(q, &v[i].rec, stats) < 0) {
			outq_journal_keep(jn, v[i].slot, &v[i].rec);
			failed++;
			continue;
		}
		outq_journal_clear(jn, v[i].slot);
	}
	free(v);
	pthread_mutex_lock(&jn->mu);
	outq_journal_backoff(jn, failed > 0);
	n = jn->npend;
	pthread_mutex_unlock(&jn->mu);
	if (failed > 0)
		log_warn("outbound: %zu outcome(s) wait for the store; next "
		    "try in %lld ms", n, (long long)(jn->delay_ms / 2));
	return n;
}

/* Record a dead process's region, then let it go. */
static int
outq_journal_adopt(struct outq_journal *jn, struct outq_ctx *q, int region,
    struct outq_jrec *v, char *err)
{
	int i, rc = 0;

	if (outq_journal_read(jn->fd, region, v, err, jn->path) != 0)
		rc = -1;
	for (i = 0; rc == 0 && i < OUTQ_JSLOTS; i++) {
		if (!outq_jvalid(&v[i]))
			continue;
		if (outq_replay(q, &v[i], NULL) < 0) {
			pd_err(err, "out-%lld: the store refuses its journaled "
			    "outcome", (long long)v[i].id);
			rc = -1;
			break;
		}
		outq_journal_zero(jn, region, i);
	}
	outq_journal_lock(jn->fd, region, F_UNLCK);
	return rc;
}

/*
 * Before rows "sending" may go back to "deferred": every outcome in the
 * journal (ours, and the regions of processes that died) is recorded,
 * and no other process holds a region (it may be sending some of those
 * rows right now).  0: recovery may proceed; -1: try again later.
 */
int
outq_journal_recover(struct outq_journal *jn, struct outq_ctx *q)
{
	struct outq_jrec *v;
	char err[PD_ERRLEN];
	int r, live = 0, rc = 0;

	if (outq_journal_retry(jn, q, NULL, 0) > 0 ||
	    pd_monotonic_ms() < jn->rnext_ms)
		return -1;
	v = xmalloc((size_t)OUTQ_JREGION);
	for (r = 0; r < OUTQ_JREGIONS && rc == 0; r++) {
		if (r == jn->region)
			continue;
		if (outq_journal_lock(jn->fd, r, F_WRLCK) != 0)
			live++;
		else if ((rc = outq_journal_adopt(jn, q, r, v, err)) != 0)
			log_err("outbound: recovery waits: %s", err);
	}
	free(v);
	if (rc != 0) {
		/* Reading every region each tick while the disk is full
		 * would only fill the log: back off as the records do. */
		jn->rdelay_ms = jn->rdelay_ms == 0 ? OUTQ_JRETRY_MIN :
		    jn->rdelay_ms * 2 > OUTQ_JRETRY_MAX ? OUTQ_JRETRY_MAX :
		    jn->rdelay_ms * 2;
		jn->rnext_ms = pd_monotonic_ms() + jn->rdelay_ms;
		return -1;
	}
	jn->rdelay_ms = 0;
	if (live > 0 && !jn->waiting_logged)
		log_warn("outbound: recovery waits for %d other delivering "
		    "process(es)", live);
	jn->waiting_logged = live > 0;
	return live > 0 ? -1 : 0;
}

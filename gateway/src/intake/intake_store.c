/*
 * intake_store.c - making a delivery durable: each recipient's message,
 * documents (filed under the item its address names), events and item
 * states as rows in the committer's transaction; blobs placed before the
 * rows name them and removed again when the rows do not commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gmime/gmime.h>
#include <magic.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "store/blob.h"
#include "store/blob_gc.h"
#include "store/commit.h"
#include "lib/config.h"
#include "consent/consent.h"
#include "dsn.h"
#include "intake.h"
#include "events/metrics.h"
#include "outbound/notify.h"
#include "outbound/outq.h"
#include "plugin/plugin_host.h"
#include "store/rawmsg.h"
#include "lib/sanitize.h"
#include "lib/smtp_addr.h"
#include "store/store.h"
#include "lib/util.h"
#include "intake_int.h"

/* ---- durability ------------------------------------------------------- */

/*
 * Bytes an earlier message already brought into the dossier are recorded
 * as an event, not stored twice; every part of this message is kept (m29:
 * four empty files are four documents).
 */
static int
intake_doc_dup(struct intake_msg *m, const struct intake_rcpt *rc,
    const struct intake_doc *d, int64_t msg_id, char *err)
{
	char detail[256];
	int64_t id;
	int r;

	r = store_document_find_dup(m->st, rc->dossier_id, msg_id, d->sha,
	    &id, err);
	if (r != 1)
		return r;
	snprintf(detail, sizeof(detail), "sha256=%s document=%lld part=%s",
	    d->sha, (long long)id, d->path);
	if (store_event_add(m->st, rc->account_id, rc->dossier_id,
	    "document.duplicate", detail, err) != 0)
		return -1;
	return 1;
}

static int
intake_store_docs(struct intake_msg *m, const struct intake_rcpt *rc,
    const struct intake_filing *f, int64_t msg_id, unsigned *added_r,
    char *err)
{
	struct store_document sd;
	unsigned i;
	int r;

	*added_r = 0;
	for (i = 0; i < m->ndocs; i++) {
		struct intake_doc *d = &m->docs[i];
		const struct intake_verdict *v = intake_verdict_of(m,
		    (size_t)(rc - m->job->rcpts), i);

		d->row_id = -1;
		if (v->refused)
			continue;	/* left out: messages.refused says so */
		if ((r = intake_doc_dup(m, rc, d, msg_id, err)) < 0)
			return -1;
		if (r == 1)
			continue;
		memset(&sd, 0, sizeof(sd));
		sd.account_id = rc->account_id;
		sd.dossier_id = rc->dossier_id;
		sd.message_id = msg_id;
		sd.filename = d->filename;
		sd.stored_name = d->stored_name;
		sd.declared_type = d->declared;
		sd.sniffed_type = d->sniffed;
		sd.size = d->size;
		sd.sha256 = d->sha;
		sd.part_path = d->path;
		sd.item_id = f->item_id;
		sd.flags = d->flags;
		sd.scan = v->scan;
		if (store_document_add(m->st, &sd, &d->row_id, err) != 0)
			return -1;
		(*added_r)++;
	}
	return 0;
}

/*
 * The item this recipient's documents are filed under (struct
 * intake_filing).  An item part that names no item of the dossier files
 * unassigned: routing accepted it like the plain address, and the
 * history says what was asked for (item.unknown).
 */
static int
intake_pick_item(struct intake_msg *m, const struct intake_rcpt *rc,
    struct intake_filing *f, char *err)
{
	struct store_item it;
	char local[80], part[40];
	int64_t n = 0;
	int r;

	memset(f, 0, sizeof(*f));
	if (!smtp_addr_intake_item(rc->address, m->ctx->cfg->intake_domain,
	    local, sizeof(local), part, sizeof(part)))
		part[0] = '\0';
	if (part[0] != '\0') {
		r = store_item_by_slug(m->st, rc->account_id, rc->dossier_id,
		    part, &it, err);
		if (r < 0)
			return -1;
		if (r == 0) {
			f->unknown = 1;
			snprintf(f->slug, sizeof(f->slug), "%s", part);
			return 0;
		}
	} else {
		/* The plain address: only when one item is missing is it
		 * clear which one the sender answers. */
		if (store_item_outstanding(m->st, rc->dossier_id, &n, &it, err)
		    != 0)
			return -1;
		if (n != 1)
			return 0;
	}
	f->item_id = it.id;
	snprintf(f->slug, sizeof(f->slug), "%s", it.slug);
	snprintf(f->label, sizeof(f->label), "%s", it.label);
	return 0;
}

/*
 * After this message's documents: the item's state from its documents;
 * while it waits for review (received), item.received names each new
 * document filed under it, so a reviewer hears of every version.
 */
static int
intake_item_events(struct intake_msg *m, const struct intake_rcpt *rc,
    const struct intake_filing *f, char *err)
{
	struct store_item it;
	char detail[160];
	unsigned i;
	int r;

	if (store_item_refresh(m->st, f->item_id, NULL, err) != 0)
		return -1;
	r = store_item_by_id(m->st, rc->account_id, f->item_id, &it, err);
	if (r <= 0)
		return r;
	if (strcmp(it.state, "received") != 0)
		return 0;
	for (i = 0; i < m->ndocs; i++) {
		if (m->docs[i].row_id <= 0)
			continue;	/* a duplicate */
		snprintf(detail, sizeof(detail), "item=%s document=%lld "
		    "state=received", it.slug, (long long)m->docs[i].row_id);
		if (store_event_add(m->st, rc->account_id, rc->dossier_id,
		    "item.received", detail, err) != 0)
			return -1;
	}
	return 0;
}

/*
 * messages.refused: [{filename, type, reason, kind}] of the files left out
 * for recipient r, in part order.  The store reads back 2047 bytes, so
 * entries that would not fit are counted in a last {"more": N} entry
 * rather than cut mid-string.
 */
void
intake_refused_json(const struct intake_msg *m, size_t r, char *buf,
    size_t len)
{
	json_t *a = json_array();
	size_t used = 2, more = 0;	/* "[]" */
	unsigned i;
	char *s;

	buf[0] = '\0';
	for (i = 0; i < m->ndocs; i++) {
		const struct intake_verdict *v = intake_verdict_of(m, r, i);
		json_t *e;
		char *one;

		if (!v->refused)
			continue;
		e = json_pack("{s:s, s:s, s:s, s:s}", "filename",
		    m->docs[i].filename, "type", m->docs[i].sniffed, "reason",
		    v->reason, "kind", v->kind);
		one = json_dumps(e, JSON_COMPACT);
		if (more == 0 && one != NULL && used + strlen(one) + 1 + 20 <
		    len && used + strlen(one) + 1 + 20 < 2047) {
			used += strlen(one) + 1;
			json_array_append(a, e);
		} else
			more++;
		free(one);
		json_decref(e);
	}
	if (more > 0)
		json_array_append_new(a, json_pack("{s:I}", "more",
		    (json_int_t)more));
	if (json_array_size(a) > 0 && (s = json_dumps(a, JSON_COMPACT)) !=
	    NULL) {
		snprintf(buf, len, "%s", s);
		free(s);
	}
	json_decref(a);
}

/* A history line per file left out (document.refused). */
static int
intake_refused_events(struct intake_msg *m, const struct intake_rcpt *rc,
    char *err)
{
	char detail[600];
	unsigned i;

	for (i = 0; i < m->ndocs; i++) {
		const struct intake_verdict *v = intake_verdict_of(m,
		    (size_t)(rc - m->job->rcpts), i);

		if (!v->refused)
			continue;
		snprintf(detail, sizeof(detail), "queue_id=%s part=%s "
		    "kind=%s type=%s filename=%.300s", m->job->queue_id,
		    m->docs[i].path, v->kind, m->docs[i].sniffed,
		    m->docs[i].filename);
		if (store_event_add(m->st, rc->account_id, rc->dossier_id,
		    "document.refused", detail, err) != 0)
			return -1;
	}
	return 0;
}

static int
intake_store_events(struct intake_msg *m, const struct intake_rcpt *rc,
    const struct intake_filing *f, int64_t msg_id, unsigned added,
    char *err)
{
	char detail[200];
	unsigned i;

	snprintf(detail, sizeof(detail), "queue_id=%s message=%lld "
	    "documents=%u", m->job->queue_id, (long long)msg_id, added);
	if (store_event_add(m->st, rc->account_id, rc->dossier_id,
	    "message.received", detail, err) != 0 ||
	    intake_refused_events(m, rc, err) != 0)
		return -1;
	for (i = 0; i < m->ndocs; i++) {
		if (m->docs[i].row_id <= 0)
			continue;	/* a duplicate */
		snprintf(detail, sizeof(detail), "document=%lld stored_name=%s",
		    (long long)m->docs[i].row_id, m->docs[i].stored_name);
		if (store_event_add(m->st, rc->account_id,
		    rc->dossier_id, "document.received", detail, err) != 0)
			return -1;
	}
	if (f->unknown) {
		snprintf(detail, sizeof(detail), "item=%s", f->slug);
		if (store_event_add(m->st, rc->account_id, rc->dossier_id,
		    "item.unknown", detail, err) != 0)
			return -1;
	}
	/* Completion is the reviewer's call now (dossier_review.c): a
	 * document received is not a document accepted. */
	return f->item_id != 0 && added > 0 ?
	    intake_item_events(m, rc, f, err) : 0;
}

/* Rows for one recipient dossier; *id_r = 0 for a duplicate delivery. */
static int
intake_store_rcpt(struct intake_msg *m, const struct intake_rcpt *rc,
    struct intake_filing *f, int64_t *id_r, unsigned *added_r, char *err)
{
	const struct intake_job *job = m->job;
	struct store_message sm;
	char detail[160], refused[2048];
	int64_t id;
	int r;

	*id_r = 0;
	*added_r = 0;
	r = store_message_find_dup(m->st, rc->dossier_id, job->sha256,
	    &id, err);
	if (r < 0)
		return -1;
	if (r == 1) {
		/* Same bytes again (a client retrying after a lost 250). */
		snprintf(detail, sizeof(detail), "queue_id=%s message=%lld",
		    job->queue_id, (long long)id);
		return store_event_add(m->st, rc->account_id,
		    rc->dossier_id, "message.duplicate", detail, err);
	}
	memset(&sm, 0, sizeof(sm));
	sm.account_id = rc->account_id;
	sm.dossier_id = rc->dossier_id;
	sm.queue_id = job->queue_id;
	sm.mail_from = job->mail_from;
	sm.rcpt_to = rc->address;
	sm.helo = job->helo ? job->helo : "";
	sm.client_ip = job->client_ip ? job->client_ip : "";
	sm.tls = job->tls;
	sm.lmtp = job->lmtp;
	sm.message_id = m->message_id;
	sm.subject = m->subject;
	sm.from_header = m->from;
	sm.size = job->size;
	sm.sha256 = job->sha256;
	sm.parse_status = m->parse_status;
	sm.anomalies = m->anomaly_text;
	sm.received = pd_now();
	sm.signed_ = m->signed_;
	intake_refused_json(m, (size_t)(rc - job->rcpts), refused,
	    sizeof(refused));
	sm.refused = refused;
	if (m->auth_checked) {		/* v9: the verdict, per message */
		sm.auth_results = m->auth.ar;
		sm.spf = m->auth.spf;
		sm.dkim = m->auth.dkim;
		sm.dmarc = m->auth.dmarc;
	}
	sm.sender_pass = m->sender_pass[rc - job->rcpts];
	if ((m->raw != NULL && store_raw_put(m->st, job->sha256, m->raw,
	    m->raw_len, err) != 0) ||
	    store_message_add(m->st, &sm, id_r, err) != 0 ||
	    intake_pick_item(m, rc, f, err) != 0 ||
	    intake_store_docs(m, rc, f, *id_r, added_r, err) != 0 ||
	    intake_store_events(m, rc, f, *id_r, *added_r, err) != 0)
		return -1;
	return 0;
}

/* One delivery's rows, run by the committer inside its batch. */
struct intake_rows {
	struct intake_msg *m;
	const char *ok;
	int64_t *ids;
	unsigned *added;
	struct intake_filing *files;
};

static int
intake_rows_cb(struct store *st, void *arg, char *err)
{
	struct intake_rows *r = arg;
	struct intake_msg *m = r->m;
	size_t i;

	m->st = st;
	for (i = 0; i < m->job->rcpt_count; i++)
		if (r->ok[i] && intake_store_rcpt(m, &m->job->rcpts[i],
		    &r->files[i], &r->ids[i], &r->added[i], err) != 0)
			return -1;
	return 0;
}

/*
 * The raw message: up to store.inline_max octets it goes into the
 * database with the rows (raw_inline), durable by the batch's one WAL
 * fsync instead of its own file, rename and directory fsyncs; the spool
 * file, never fsync'd, is unlinked after the commit (intake_cleanup).
 * Larger, it is moved into the blob store like a document.
 */
static int
intake_store_raw(struct intake_msg *m, char *err)
{
	const struct intake_job *job = m->job;
	struct intake_ctx *c = m->ctx;

	if (job->spool_mem != NULL && job->size <=
	    (uint64_t)c->cfg->inline_max) {	/* the session kept it */
		m->raw = job->spool_mem;
		m->raw_len = (size_t)job->size;
		return 0;
	}
	if (job->spool_mem != NULL)
		return blob_put_mem(c->bs, job->spool_mem, (size_t)job->size,
		    job->sha256, err);
	if (job->size > 0 && job->size <= (uint64_t)c->cfg->inline_max) {
		if (rawmsg_load(m->fd, job->size, job->sha256, &m->raw_owned,
		    err) != 0)
			return -1;
		m->raw = m->raw_owned;
		m->raw_len = (size_t)job->size;
		return 0;
	}
	if (blob_adopt(c->bs, job->spool_path, job->sha256, err) != 0)
		return -1;
	m->spool_gone = 1;
	return 0;
}

/*
 * A delivery that failed after placing blobs: nothing will name them (a
 * retry writes them again), and an erased sender's bytes must not
 * survive in an unnamed file.  Only files no row names go, checked under
 * the removal lock: the same bytes may be an older message's, or another
 * delivery's in flight (blob_gc.h).
 */
static void
intake_unplace(struct intake_msg *m, const char (*sha)[65], size_t n)
{
	char err[PD_ERRLEN];
	size_t removed = 0;

	if (n == 0)
		return;
	if (blob_gc_remove(m->ctx->st, m->ctx->bs, sha, n, &removed, err)
	    != 0)
		log_warn("%s: intake: unnamed blobs left for the sweep: %s",
		    m->job->queue_id, err);
	else if (removed > 0)
		log_info("%s: intake: removed %zu blob(s) no row names",
		    m->job->queue_id, removed);
}

/* Place the documents' blobs and the raw message; placed[] gets each
 * hash placed (m->ndocs + 1 slots).  0, or -1 with m->fail set. */
static int
intake_place(struct intake_msg *m, char (*placed)[65], size_t *np)
{
	struct intake_ctx *c = m->ctx;
	char err[PD_ERRLEN], sha[65];
	size_t i;

	for (i = 0; i < m->ndocs; i++) {
		m->docs[i].writing = 0;	/* commit finishes the writer */
		if (blob_writer_commit(c->bs, &m->docs[i].w, sha, err) != 0) {
			intake_store_error(m, "store", err,
			    intake_errno_full(errno), errno);
			return -1;
		}
		if (strcmp(sha, m->docs[i].sha) != 0)
			pd_fatal("intake: blob digest changed at commit");
		memcpy(placed[(*np)++], sha, 65);
	}
	if (intake_store_raw(m, err) != 0) {
		intake_store_error(m, "store", err, intake_errno_full(errno),
		    errno);
		return -1;
	}
	if (m->raw == NULL)	/* a blob, not a raw_inline row */
		memcpy(placed[(*np)++], m->job->sha256, 65);
	return 0;
}

/*
 * Blobs first (each fsync'd, renamed, its directory fsync'd: here, so the
 * workers' fsyncs overlap; done by the committer one after another they
 * were its bottleneck), then the rows that name them (and a small raw
 * message's bytes), in one transaction with the rest of the committer's
 * batch.  A crash leaves at worst an orphan blob, never a row without
 * its bytes (G2); the sweep removes it later.  From placing the blobs
 * until the rows are in, the removal lock is held shared, so no erasure
 * or sweep takes a blob this delivery found already stored; if the rows
 * fail, the blobs no row names are removed before the answer.
 */
int
intake_store(struct intake_msg *m, const char *ok, int64_t *ids,
    unsigned *added, struct intake_filing *files)
{
	struct intake_ctx *c = m->ctx;
	struct intake_rows rows = { m, ok, ids, added, files };
	struct commit_item it;
	char err[PD_ERRLEN], (*placed)[65] = xcalloc(m->ndocs + 1, 65);
	size_t np = 0;
	int rc = -1;

	memset(&it, 0, sizeof(it));
	if (blob_hold(c->bs, BLOB_GC_WAIT_MS, err) != 0) {
		intake_local_error(m, "store", err);
		free(placed);
		return -1;
	}
	if (intake_place(m, placed, &np) == 0) {
		it.rows = intake_rows_cb;
		it.arg = &rows;
		if (commit_wait(c->commit, &it) != 0)
			intake_store_error(m, "store", it.err, it.full, 0);
		else
			rc = 0;
	}
	m->st = c->st;
	blob_unhold(c->bs);
	if (rc != 0)
		intake_unplace(m, (const char (*)[65])placed, np);
	free(placed);
	return rc;
}


/*
 * intake.c - owns delivery on worker threads: parse a spooled message with
 * GMime under our own limits, decode its documents into blobs, ask the
 * plugins, then make blobs and rows durable in that order (a small raw
 * message goes into the database with its rows), each document filed
 * under the item its recipient address names, and answer.
 * It never names a file after the message, never calls a GMime boundary
 * getter or setter (GMime issue #165, corpus m52) and never leaves half a
 * delivery: on any refusal or failure the temp blobs and spool file go.
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

static pthread_once_t intake_gmime_once = PTHREAD_ONCE_INIT;

static void
intake_gmime_init(void)
{
	g_mime_init();	/* process-wide; never shut down under workers */
}

void
intake_reply(struct intake_result *r, int code, const char *enh,
    const char *fmt, ...)
{
	char tmp[sizeof(r->text)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enh);
	/* Replies are printable ASCII: plugin text and refs pass through. */
	pd_ascii_clean(r->text, sizeof(r->text), tmp);
}

void
intake_local_error(struct intake_msg *m, const char *what, const char *err)
{
	log_err("%s: intake: %s: %s", m->job->queue_id, what, err);
	intake_reply(&m->fail, 451, "4.3.0", "local error, try again later");
}

int
intake_errno_full(int e)
{
	return e == ENOSPC || e == EDQUOT;
}

/*
 * A write that failed: with the disk full, RFC 5321 4.2.3's "452
 * insufficient system storage" and RFC 3463 3.4's X.3.1 "mail system
 * full" (transient: the client retries when space returns); the log line
 * names the errno so the operator knows which.
 */
void
intake_store_error(struct intake_msg *m, const char *what, const char *err,
    int full, int errnum)
{
	if (!full) {
		intake_local_error(m, what, err);
		return;
	}
	log_err("%s: intake: %s: %s (%s: the disk is full)", m->job->queue_id,
	    what, err, errnum == EDQUOT ? "EDQUOT" : errnum == ENOSPC ?
	    "ENOSPC" : "SQLITE_FULL");
	intake_reply(&m->fail, 452, "4.3.1", "insufficient system storage, "
	    "try again later");
}

int
intake_ctx_new(const struct pd_config *cfg, struct plugin_host *ph,
    struct intake_ctx **ctx_r, char *err)
{
	struct intake_ctx *c;
	char root[4096];

	pthread_once(&intake_gmime_once, intake_gmime_init);
	c = xcalloc(1, sizeof(*c));
	c->cfg = cfg;
	c->ph = ph;
	c->buf = xmalloc(INTAKE_BUF);
	c->sniff = xmalloc(INTAKE_BUF);
	if (store_open(cfg->db_path, cfg->sync_mode, &c->st, err) != 0)
		goto fail;
	snprintf(root, sizeof(root), "%s/blobs", cfg->var_dir);
	if (blob_store_open(root, &c->bs, err) != 0)
		goto fail;
	if (commit_acquire(cfg->db_path, cfg->sync_mode, &c->commit, err)
	    != 0)
		goto fail;
	c->magic = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
	if (c->magic == NULL || magic_load(c->magic, NULL) != 0) {
		pd_err(err, "libmagic: %s", c->magic != NULL ?
		    magic_error(c->magic) : "magic_open failed");
		goto fail;
	}
	*ctx_r = c;
	return 0;
fail:
	intake_ctx_free(&c);
	return -1;
}

void
intake_ctx_free(struct intake_ctx **ctx)
{
	struct intake_ctx *c = *ctx;

	if (c == NULL)
		return;
	if (c->magic != NULL)
		magic_close(c->magic);
	outq_ctx_free(&c->q);
	trust_ctx_free(&c->trust);
	commit_release(&c->commit);
	blob_store_free(&c->bs);
	store_close(&c->st);
	free(c->buf);
	free(c->sniff);
	free(c);
	*ctx = NULL;
}

/* ---- plugins ---------------------------------------------------------- */

/* The core, not the plugin, picks the code (plugin.h contract). */
static int
intake_refused(const struct plugin_outcome *o, struct intake_result *r)
{
	const char *t = o->text[0] ? o->text : NULL;

	switch (o->verdict) {
	case POSTDOC_DENY:
		intake_reply(r, 554, "5.7.1", "%s", t ? t : "message refused");
		return 1;
	case POSTDOC_DENYSOFT:
		intake_reply(r, 451, "4.7.1", "%s", t ? t :
		    "message deferred, try again later");
		return 1;
	case POSTDOC_DISCONNECT:
		intake_reply(r, 421, "4.7.0", "%s", t ? t :
		    "closing connection");
		return 1;
	default:
		return 0;	/* CONT or OK: go on */
	}
}

static const struct intake_verdict intake_no_verdict = { 0, NULL, "", "" };

const struct intake_verdict *
intake_verdict_of(const struct intake_msg *m, size_t r, unsigned i)
{
	if (m->verdicts == NULL || r >= m->job->rcpt_count || i >= m->ndocs)
		return &intake_no_verdict;
	return &m->verdicts[r * m->ndocs + i];
}

/* The account's refused_file: drop the file, or (default) the message. */
static int
intake_drops_files(const struct intake_msg *m, const struct intake_rcpt *rc)
{
	const struct pd_account_conf *a = config_account(m->ctx->cfg,
	    rc->account);

	return a != NULL && a->refused_file != NULL &&
	    strcmp(a->refused_file, "drop-file") == 0;
}

/*
 * One attachment's chain for one recipient.  A permanent refusal of the
 * file (its type, or malware) under refused_file = "drop-file" leaves the
 * file out and the message goes on; any other refusal is the message's.
 * The scanners' mark goes on the document row: "unscanned" only when a
 * scanner could not look and let the file through (on_error = accept).
 */
static int
intake_ask_attachment(struct intake_msg *m, const struct intake_rcpt *rc,
    struct intake_verdict *v, const struct postdoc_attachment_info *ai,
    struct intake_result *r)
{
	struct plugin_outcome o;

	memset(&o, 0, sizeof(o));
	plugin_run_attachment(m->ctx->ph, ai, &o);
	if (o.verdict == POSTDOC_DENY && intake_drops_files(m, rc)) {
		v->refused = 1;
		v->kind = o.scan == POSTDOC_SCAN_INFECTED ? "malware" : "type";
		snprintf(v->reason, sizeof(v->reason), "%s", o.text);
		log_info("%s: %s: attachment %s left out (%s): %s",
		    m->job->queue_id, rc->dossier_ref, ai->filename, v->kind,
		    o.text);
		return 0;
	}
	if (intake_refused(&o, r))
		return -1;
	v->scan = o.scan == POSTDOC_SCAN_CLEAN ? "clean" :
	    o.scan == POSTDOC_SCAN_UNSCANNED ? "unscanned" : "";
	return 0;
}

static int
intake_ask_plugins(struct intake_msg *m, const struct intake_rcpt *rc,
    struct intake_result *r)
{
	struct plugin_host *ph = m->ctx->ph;
	struct postdoc_message_info mi;
	struct postdoc_attachment_info ai;
	struct plugin_outcome o;
	size_t ri = (size_t)(rc - m->job->rcpts);
	unsigned i;

	if (ph == NULL)
		return 0;
	memset(&mi, 0, sizeof(mi));
	mi.queue_id = m->job->queue_id;
	mi.mail_from = m->job->mail_from;
	mi.message_id = m->message_id;
	mi.subject = m->subject;
	mi.size = m->job->size;
	mi.account = rc->account;
	mi.dossier_ref = rc->dossier_ref;
	mi.part_count = (unsigned)m->parts;
	mi.attachment_count = m->ndocs;
	memset(&o, 0, sizeof(o));
	plugin_run_message(ph, &mi, &o);
	if (intake_refused(&o, r))
		return -1;
	if (m->verdicts == NULL && m->ndocs > 0)
		m->verdicts = xcalloc(m->job->rcpt_count * m->ndocs,
		    sizeof(*m->verdicts));
	for (i = 0; i < m->ndocs; i++) {
		const struct intake_doc *d = &m->docs[i];
		struct intake_verdict *v = &m->verdicts[ri * m->ndocs + i];

		memset(v, 0, sizeof(*v));
		v->scan = "";
		ai.account = rc->account;
		ai.dossier_ref = rc->dossier_ref;
		ai.filename = d->filename;
		ai.declared_type = d->declared;
		ai.sniffed_type = d->sniffed;
		ai.size = d->size;
		ai.sha256 = d->sha;
		ai.path = d->w.tmp_path;
		if (intake_ask_attachment(m, rc, v, &ai, r) != 0)
			return -1;
	}
	return 0;
}

/* ---- the job ---------------------------------------------------------- */

static void
intake_reply_all(const struct intake_job *job, struct intake_result *res,
    const struct intake_result *r)
{
	size_t i, n = job->lmtp ? job->rcpt_count : 1;

	for (i = 0; i < n; i++)
		res[i] = *r;
}

/* A failure after the plugins' decision: only the accepted get it. */
static void
intake_reply_accepted(const struct intake_job *job, struct intake_result *res,
    const char *ok, const struct intake_result *r)
{
	size_t i;

	if (!job->lmtp) {
		res[0] = *r;
		return;
	}
	for (i = 0; i < job->rcpt_count; i++)
		if (ok[i])
			res[i] = *r;
}

/* Ask the plugins per recipient; ok[i] says who may be stored. */
static int
intake_decide(struct intake_msg *m, char *ok, struct intake_result *res)
{
	const struct intake_job *job = m->job;
	struct intake_result r;
	size_t i;
	int any = 0;

	for (i = 0; i < job->rcpt_count; i++) {
		/* The account's sender_auth first: a forged sender gets no
		 * plugin run, no row, no receipt. */
		ok[i] = intake_sender_rule(m, i, &r) == 0 &&
		    intake_ask_plugins(m, &job->rcpts[i], &r) == 0;
		if (!ok[i] && !job->lmtp) {
			/* SMTP: one reply for all recipients (RFC 5321 3.3). */
			res[0] = r;
			return 0;
		}
		if (!ok[i])
			res[i] = r;
		any |= ok[i];
	}
	return any;
}

/* ---- bounce reports and receipts ---------------------------------------- */

/*
 * A transaction to VERP addresses (smtp_session keeps them apart from
 * dossier mail): read the DSN and let the queue record the bounce.  What
 * is not a DSN (an auto-reply to the envelope sender) is acknowledged
 * and dropped: nobody asked us to keep it, and it is not a document.
 */
static void
intake_bounces(struct intake_msg *m, struct intake_result *res)
{
	const struct intake_job *job = m->job;
	struct dsn_report r;
	char err[PD_ERRLEN];
	size_t i, n = job->lmtp ? job->rcpt_count : 1;
	int dsn = dsn_parse(m->msg, &r);

	for (i = 0; i < job->rcpt_count; i++) {
		if (!dsn)
			log_info("%s: mail to bounce address %s is not a "
			    "delivery status notification; dropped",
			    job->queue_id, job->rcpts[i].address);
		else if (strcasecmp(r.action, "failed") != 0)
			log_info("%s: DSN action %s for %s: noted",
			    job->queue_id, r.action, job->rcpts[i].address);
		else if (outq_bounce(m->ctx->st, m->ctx->cfg,
		    job->rcpts[i].verp_token, r.code, r.status, r.diagnostic,
		    err) < 0) {
			intake_local_error(m, "bounce", err);
			return;
		}
	}
	for (i = 0; i < n; i++)
		intake_reply(&res[i], 250, "2.0.0", "Ok: bounce report %s",
		    dsn ? "recorded" : "ignored");
}

/*
 * Mail to u-<token>@<list domain> (RFC 2369): the token withdraws its
 * purpose; the message itself is not kept and nobody is answered.
 */
static void
intake_unsubscribes(struct intake_msg *m, struct intake_result *res)
{
	const struct intake_job *job = m->job;
	char err[PD_ERRLEN];
	size_t i, n = job->lmtp ? job->rcpt_count : 1;

	for (i = 0; i < job->rcpt_count; i++)
		if (consent_unsub_mail(m->ctx->cfg, m->ctx->st,
		    job->rcpts[i].verp_token + 2, job->client_ip, err) < 0) {
			intake_local_error(m, "unsubscribe", err);
			return;
		}
	for (i = 0; i < n; i++)
		intake_reply(&res[i], 250, "2.0.0", "Ok: unsubscribed");
}

/* After the commit: a receipt to a sender the policy vouches for, each
 * file with the item it was filed under.  Its failure is logged, never
 * turned into a refusal of what is stored. */
static void
intake_receipt(struct intake_msg *m, const struct intake_rcpt *rc,
    const struct intake_filing *f)
{
	struct intake_ctx *c = m->ctx;
	struct notify_env env;
	struct store_dossier d;
	char err[PD_ERRLEN];
	json_t *got;
	unsigned i;

	if (!c->cfg->receipts || m->ndocs == 0 || m->job->mail_from[0] == '\0')
		return;
	/* A sender the account checked and who did not pass gets nothing
	 * that echoes what was sent (file names): no backscatter to the
	 * real owner of a forged address. */
	if (m->sender_pass[rc - m->job->rcpts] < 0)
		return;
	if (c->q == NULL && outq_ctx_new(c->cfg, c->ph, &c->q, err) != 0) {
		log_warn("%s: receipt: %s", m->job->queue_id, err);
		return;
	}
	if (store_dossier_get(c->st, rc->account_id, rc->dossier_id, &d, err)
	    != 1)
		return;
	got = json_array();
	for (i = 0; i < m->ndocs; i++) {
		const struct intake_verdict *v = intake_verdict_of(m,
		    (size_t)(rc - m->job->rcpts), i);
		json_t *file = json_pack("{s:s, s:I}", "filename",
		    m->docs[i].filename, "size", (json_int_t)m->docs[i].size);

		if (v->refused) {
			/* Named with why, never filed (notify.h). */
			json_object_set_new(file, "refused", json_pack(
			    "{s:s, s:s, s:s}", "kind", v->kind, "type",
			    m->docs[i].sniffed, "reason", v->reason));
		} else if (f->item_id != 0) {
			json_object_set_new(file, "item", json_string(f->slug));
			json_object_set_new(file, "item_label",
			    json_string(f->label));
		}
		json_array_append_new(got, file);
	}
	env = (struct notify_env){ c->cfg, c->st, c->q };
	if (notify_receipt(&env, &d, m->job->mail_from, got, err) < 0)
		log_warn("%s: receipt: %s", m->job->queue_id, err);
	json_decref(got);
}

static void
intake_success(struct intake_msg *m, const char *ok, const int64_t *ids,
    const unsigned *added, const struct intake_filing *files,
    struct intake_result *res)
{
	const struct intake_job *job = m->job;
	struct postdoc_stored_info si;
	size_t i;

	if (!job->lmtp)
		intake_reply(&res[0], 250, "2.0.0", "Ok: queued as %s",
		    job->queue_id);
	for (i = 0; i < job->rcpt_count; i++) {
		if (!ok[i])
			continue;
		if (job->lmtp)
			intake_reply(&res[i], 250, "2.0.0",
			    "%s delivered to dossier %s", job->queue_id,
			    job->rcpts[i].dossier_ref);
		if (ids[i] == 0)
			continue;	/* duplicate: nothing new stored */
		metrics_documents(added[i]);
		intake_receipt(m, &job->rcpts[i], &files[i]);
		if (m->ctx->ph == NULL)
			continue;
		si.queue_id = job->queue_id;
		si.account = job->rcpts[i].account;
		si.dossier_ref = job->rcpts[i].dossier_ref;
		si.message_id = ids[i];
		si.document_count = added[i];
		plugin_run_stored(m->ctx->ph, &si);
	}
}

void
intake_cleanup(struct intake_msg *m)
{
	unsigned i;

	for (i = 0; i < m->ndocs; i++) {
		if (m->docs[i].writing)
			blob_writer_abort(&m->docs[i].w);
		free(m->docs[i].filename);
	}
	free(m->docs);
	free(m->verdicts);
	if (m->signed_inner != NULL)
		g_object_unref(m->signed_inner);
	if (m->signed_parser != NULL)
		g_object_unref(m->signed_parser);
	if (m->signed_stream != NULL)
		g_object_unref(m->signed_stream);
	if (m->msg != NULL)
		g_object_unref(m->msg);
	if (m->parser != NULL)
		g_object_unref(m->parser);
	if (m->stream != NULL)
		g_object_unref(m->stream);
	if (m->mem != NULL)
		(void)g_byte_array_free(m->mem, FALSE);
	if (m->fd >= 0)
		close(m->fd);
	/* Refused or failed: the spool copy must not outlive the answer. */
	if (m->job->spool_mem == NULL && !m->spool_gone &&
	    unlink(m->job->spool_path) != 0)
		log_warn("%s: intake: unlink spool: %s", m->job->queue_id,
		    strerror(errno));
	free(m->raw_owned);
	free(m->subject);
	free(m->message_id);
	free(m->from);
	free(m->sender_pass);
}

/* A parsed message: the sender's verdict (end of data), each
 * recipient's decision, then the rows. */
static void
intake_deliver(struct intake_msg *m, char *ok, int64_t *ids,
    unsigned *added, struct intake_filing *files,
    struct intake_result *results)
{
	intake_authenticate(m);
	if (!intake_decide(m, ok, results))
		return;
	if (intake_store(m, ok, ids, added, files) == 0)
		intake_success(m, ok, ids, added, files, results);
	else
		intake_reply_accepted(m->job, results, ok, &m->fail);
	m->fail.code = 0;	/* refused recipients keep their reply */
}

void
intake_process(struct intake_ctx *ctx, const struct intake_job *job,
    struct intake_result *results)
{
	struct intake_msg m;
	size_t n = job->rcpt_count ? job->rcpt_count : 1;
	char *ok = xcalloc(n, 1);
	int64_t *ids = xcalloc(n, sizeof(*ids));
	unsigned *added = xcalloc(n, sizeof(*added));
	struct intake_filing *files = xcalloc(n, sizeof(*files));

	memset(&m, 0, sizeof(m));
	m.sender_pass = xcalloc(n, sizeof(*m.sender_pass));
	/* Plugins' host->log lines during the hooks carry the queue id. */
	pd_log_context_set(job->queue_id);
	m.ctx = ctx;
	m.job = job;
	m.st = ctx->st;
	m.fd = -1;
	if (job->rcpt_count == 0)
		intake_reply(&m.fail, 503, "5.5.1", "no valid recipients");
	else if (job->size == 0)	/* m56; RFC 5322 needs a header */
		intake_reply(&m.fail, 554, "5.6.0", "empty message");
	else if (job->rcpts[0].verp_token != NULL &&
	    strncmp(job->rcpts[0].verp_token, "u-", 2) == 0)
		intake_unsubscribes(&m, results);
	else if (job->rcpts[0].verp_token != NULL) {
		if (intake_parse(&m) == 0)
			intake_bounces(&m, results);
	} else if (intake_parse(&m) == 0)
		intake_deliver(&m, ok, ids, added, files, results);
	if (m.fail.code != 0)
		intake_reply_all(job, results, &m.fail);
	intake_cleanup(&m);
	pd_log_context_set(NULL);
	free(ok);
	free(ids);
	free(added);
	free(files);
}


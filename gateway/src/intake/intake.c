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

#define INTAKE_BUF (64 * 1024)	/* decode chunk and libmagic window */
#define INTAKE_HDR_CAP 998	/* RFC 5322 section 2.1.1 line limit */
#define INTAKE_TYPE_MAX 128

struct intake_ctx {
	const struct pd_config *cfg;
	struct plugin_host *ph;
	struct store *st;
	struct blob_store *bs;
	struct committer *commit;	/* the process's group commit */
	magic_t magic;			/* libmagic is not thread-safe */
	struct outq_ctx *q;		/* receipts; opened on first use */
	unsigned char *buf;		/* decode chunks */
	unsigned char *sniff;		/* first INTAKE_BUF decoded bytes */
};

struct intake_doc {
	GMimePart *part;		/* borrowed from the parsed message */
	char path[128];			/* MIME part path, "1.2" */
	char *filename;			/* sanitised display name */
	char declared[INTAKE_TYPE_MAX];
	char sniffed[INTAKE_TYPE_MAX];
	char sha[65];
	char stored_name[40];
	uint64_t size;
	int64_t row_id;			/* per recipient; -1 = duplicate */
	int writing;			/* w owns a temp file */
	struct blob_writer w;
};

/*
 * Where one recipient's documents go, decided inside the delivery's
 * transaction: the item its address names (d-<token>+<item>), or for
 * the plain address the dossier's only outstanding item, else none.
 */
struct intake_filing {
	int64_t item_id;		/* 0: unassigned */
	char slug[40];			/* the item's; or the part as sent */
	char label[256];
	int unknown;			/* the part named no item of it */
};

/* Anomalies, rendered in this order into messages.anomalies. */
static const char *const intake_anomaly_names[] = {
	"duplicate-content-type", "duplicate-content-transfer-encoding",
	"multipart-without-boundary", "multipart-without-parts",
	"filename-conflict",
};
enum {
	AN_DUP_CT = 1 << 0, AN_DUP_CTE = 1 << 1, AN_NO_BOUNDARY = 1 << 2,
	AN_NO_PARTS = 1 << 3, AN_NAME_CONFLICT = 1 << 4,
};

struct intake_msg {
	struct intake_ctx *ctx;
	const struct intake_job *job;
	struct store *st;		/* rows go here (the committer's) */
	int fd;
	GByteArray *mem;		/* borrows job->spool_mem */
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;
	char *subject, *message_id, *from;
	const char *parse_status;
	unsigned anomalies;
	char anomaly_text[256];
	int64_t parts;
	uint64_t header_bytes;
	struct intake_doc *docs;
	unsigned ndocs, docs_cap;
	int spool_gone;			/* adopted into the blob store */
	const void *raw;		/* inline bytes (store.inline_max): */
	void *raw_owned;		/* read from the spool, or NULL */
	size_t raw_len;
	struct intake_result fail;	/* why processing stopped */
};

static pthread_once_t intake_gmime_once = PTHREAD_ONCE_INIT;

static void
intake_gmime_init(void)
{
	g_mime_init();	/* process-wide; never shut down under workers */
}

static void
intake_reply(struct intake_result *r, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
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

static void
intake_local_error(struct intake_msg *m, const char *what, const char *err)
{
	log_err("%s: intake: %s: %s", m->job->queue_id, what, err);
	intake_reply(&m->fail, 451, "4.3.0", "local error, try again later");
}

static int
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
static void
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
	commit_release(&c->commit);
	blob_store_free(&c->bs);
	store_close(&c->st);
	free(c->buf);
	free(c->sniff);
	free(c);
	*ctx = NULL;
}

/* ---- limits and the walk ------------------------------------------ */

static int
intake_time_ok(struct intake_msg *m)
{
	if (m->job->deadline_ms > 0 && pd_monotonic_ms() > m->job->deadline_ms) {
		intake_reply(&m->fail, 451, "4.3.0",
		    "message processing time exceeded");
		return 0;
	}
	return 1;
}

static int
intake_limit(struct intake_msg *m, const char *what, int64_t limit)
{
	/* RFC 3463 5.3.4: message too big for system. */
	intake_reply(&m->fail, 552, "5.3.4", "%s (limit %lld)", what,
	    (long long)limit);
	return -1;
}

/*
 * GMime keeps every header it reads (corpus m04: 100,000; m05: one of
 * 600 KB), so count and measure them ourselves, per part and in total.
 */
static int
intake_check_headers(struct intake_msg *m, GMimeObject *o)
{
	const struct pd_config *cfg = m->ctx->cfg;
	GMimeHeaderList *hl = g_mime_object_get_header_list(o);
	int i, n = hl != NULL ? g_mime_header_list_get_count(hl) : 0;
	unsigned nct = 0, ncte = 0;

	if (n > cfg->header_count_max)
		return intake_limit(m, "too many header fields in one part",
		    cfg->header_count_max);
	for (i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h);
		const char *raw = g_mime_header_get_raw_value(h);
		uint64_t len = strlen(name ? name : "") + strlen(raw ? raw : "");

		if (len > (uint64_t)cfg->header_size_max)
			return intake_limit(m, "header field too long",
			    cfg->header_size_max);
		m->header_bytes += len;
		if (m->header_bytes > (uint64_t)cfg->header_block_max)
			return intake_limit(m, "header block too large",
			    cfg->header_block_max);
		if (name != NULL && strcasecmp(name, "Content-Type") == 0)
			nct++;
		if (name != NULL &&
		    strcasecmp(name, "Content-Transfer-Encoding") == 0)
			ncte++;
	}
	/* m12: parsers disagree on which duplicate wins; flag for review. */
	if (nct > 1)
		m->anomalies |= AN_DUP_CT;
	if (ncte > 1)
		m->anomalies |= AN_DUP_CTE;
	return 0;
}

/* Does any candidate in list named `name` differ from *first? */
static int
intake_params_differ(GMimeParamList *pl, const char *name,
    const char **first)
{
	int i, n = pl != NULL ? g_mime_param_list_length(pl) : 0;

	for (i = 0; i < n; i++) {
		GMimeParam *p = g_mime_param_list_get_parameter_at(pl, i);
		const char *pn = g_mime_param_get_name(p);
		const char *v = g_mime_param_get_value(p);

		if (pn == NULL || v == NULL || strcasecmp(pn, name) != 0)
			continue;
		if (*first == NULL)
			*first = v;
		else if (strcmp(*first, v) != 0)
			return 1;
	}
	return 0;
}

/*
 * m21: filename= vs filename*= vs Content-Type name= can name different
 * files; a filter checking one and a client saving another is a bypass.
 */
static void
intake_check_names(struct intake_msg *m, GMimeObject *o)
{
	GMimeContentDisposition *cd = g_mime_object_get_content_disposition(o);
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	const char *first = NULL;

	if ((cd != NULL && intake_params_differ(
	    g_mime_content_disposition_get_parameters(cd), "filename",
	    &first)) || (ct != NULL && intake_params_differ(
	    g_mime_content_type_get_parameters(ct), "name", &first)))
		m->anomalies |= AN_NAME_CONFLICT;
}

static int intake_walk(struct intake_msg *m, GMimeObject *obj,
    int64_t depth, const char *path);

static int
intake_walk_multipart(struct intake_msg *m, GMimeMultipart *mp,
    int64_t depth, const char *path)
{
	char sub[128];
	int i, n = g_mime_multipart_get_count(mp);

	/* RFC 2046 section 5.1.1: the boundary parameter is mandatory (m07).
	 * A plain parameter lookup: never g_mime_multipart_get_boundary. */
	if (g_mime_object_get_content_type_parameter(GMIME_OBJECT(mp),
	    "boundary") == NULL)
		m->anomalies |= AN_NO_BOUNDARY;
	if (n == 0)
		m->anomalies |= AN_NO_PARTS;	/* m08: all preamble */
	for (i = 0; i < n; i++) {
		snprintf(sub, sizeof(sub), "%s%s%d", path, *path ? "." : "",
		    i + 1);
		if (intake_walk(m, g_mime_multipart_get_part(mp, i), depth + 1,
		    sub) != 0)
			return -1;
	}
	return 0;
}

static int
intake_walk_message(struct intake_msg *m, GMimeMessagePart *mp,
    int64_t depth, const char *path)
{
	GMimeMessage *inner = g_mime_message_part_get_message(mp);
	GMimeObject *body;
	char sub[128];

	if (inner == NULL)
		return 0;
	if (intake_check_headers(m, GMIME_OBJECT(inner)) != 0)
		return -1;
	body = g_mime_message_get_mime_part(inner);
	if (body == NULL)
		return 0;
	/* IMAP-style numbering: a single inner body is "<path>.1". */
	snprintf(sub, sizeof(sub), "%s%s", path,
	    GMIME_IS_MULTIPART(body) ? "" : ".1");
	return intake_walk(m, body, depth + 1, sub);
}

static int intake_leaf(struct intake_msg *m, GMimePart *part,
    const char *path);

/*
 * Recursion is bounded by mime_depth_max, checked before descending
 * (multipart and message/rfc822 levels count alike, EXPECTED G6).
 */
static int
intake_walk(struct intake_msg *m, GMimeObject *obj, int64_t depth,
    const char *path)
{
	const struct pd_config *cfg = m->ctx->cfg;

	if (!intake_time_ok(m))
		return -1;
	if (depth > cfg->mime_depth_max)
		return intake_limit(m, "MIME nesting too deep",
		    cfg->mime_depth_max);
	if (++m->parts > cfg->mime_parts_max)
		return intake_limit(m, "too many MIME parts",
		    cfg->mime_parts_max);
	if (intake_check_headers(m, obj) != 0)
		return -1;
	if (GMIME_IS_MESSAGE_PART(obj))
		return intake_walk_message(m, GMIME_MESSAGE_PART(obj), depth,
		    path);
	if (GMIME_IS_MULTIPART(obj))
		return intake_walk_multipart(m, GMIME_MULTIPART(obj), depth,
		    path);
	if (GMIME_IS_PART(obj))
		return intake_leaf(m, GMIME_PART(obj), *path ? path : "1");
	return 0;
}

/* A media type token (RFC 2045 section 5.1), lower-cased; anything
 * else is dropped.  slash: keep '/' (a whole "type/subtype"). */
static void
intake_type_token(char *out, size_t outlen, const char *in, int slash)
{
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o + 1 < outlen; in++) {
		char c = *in;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    (c != '\0' && strchr("!#$&^_.+-", c) != NULL) ||
		    (slash && c == '/'))
			out[o++] = c;
	}
	out[o] = '\0';
}

static void
intake_declared_type(GMimeObject *o, char *out, size_t outlen)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	char type[60], sub[60];

	intake_type_token(type, sizeof(type), ct != NULL ?
	    g_mime_content_type_get_media_type(ct) : NULL, 0);
	intake_type_token(sub, sizeof(sub), ct != NULL ?
	    g_mime_content_type_get_media_subtype(ct) : NULL, 0);
	if (type[0] == '\0' || sub[0] == '\0')
		snprintf(out, outlen, "application/octet-stream");
	else
		snprintf(out, outlen, "%s/%s", type, sub);
}

/*
 * A leaf is a document when it is an attachment, has any name, or is not
 * text; text body parts stay in the raw message only.
 */
static int
intake_leaf(struct intake_msg *m, GMimePart *part, const char *path)
{
	const struct pd_config *cfg = m->ctx->cfg;
	GMimeObject *o = GMIME_OBJECT(part);
	GMimeContentDisposition *cd = g_mime_object_get_content_disposition(o);
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	const char *mt = ct != NULL ? g_mime_content_type_get_media_type(ct) :
	    NULL;
	struct intake_doc *d;

	intake_check_names(m, o);
	if (!(cd != NULL && g_mime_content_disposition_is_attachment(cd)) &&
	    g_mime_part_get_filename(part) == NULL &&
	    (mt == NULL || strcasecmp(mt, "text") == 0))
		return 0;
	if ((int64_t)m->ndocs >= cfg->attachments_max)
		return intake_limit(m, "too many attachments",
		    cfg->attachments_max);
	if (m->ndocs == m->docs_cap) {
		m->docs_cap = m->docs_cap ? m->docs_cap * 2 : 8;
		m->docs = xrealloc(m->docs, m->docs_cap * sizeof(*m->docs));
	}
	d = &m->docs[m->ndocs++];
	memset(d, 0, sizeof(*d));
	d->part = part;
	snprintf(d->path, sizeof(d->path), "%s", path);
	intake_declared_type(o, d->declared, sizeof(d->declared));
	return 0;
}

/* ---- decoding documents into blobs ---------------------------------- */

/*
 * The part's content stream is a window on the message (persistent
 * parse), so decoding pulls it through GMime's transfer-decoding filter
 * one chunk at a time: memory stays at INTAKE_BUF whatever the size.
 */
static int
intake_pump(struct intake_msg *m, struct intake_doc *d, size_t *sniffed)
{
	struct intake_ctx *c = m->ctx;
	GMimeDataWrapper *dw = g_mime_part_get_content(d->part);
	GMimeStream *src, *fs;
	GMimeContentEncoding enc;
	ssize_t n;
	int rc = 0;

	if (dw == NULL || (src = g_mime_data_wrapper_get_stream(dw)) == NULL)
		return 0;	/* no body at all: a zero-length document */
	enc = g_mime_data_wrapper_get_encoding(dw);
	g_mime_stream_reset(src);
	fs = g_mime_stream_filter_new(src);
	if (enc == GMIME_CONTENT_ENCODING_BASE64 ||
	    enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	    enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE);

		g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
		g_object_unref(f);
	}
	while ((n = g_mime_stream_read(fs, (char *)c->buf, INTAKE_BUF)) > 0) {
		if (*sniffed < INTAKE_BUF) {
			size_t k = INTAKE_BUF - *sniffed;

			k = (size_t)n < k ? (size_t)n : k;
			memcpy(c->sniff + *sniffed, c->buf, k);
			*sniffed += k;
		}
		if (blob_writer_write(&d->w, c->buf, (size_t)n) != 0) {
			char why[PD_ERRLEN];

			pd_err(why, "%s: %s", d->w.tmp_path,
			    strerror(d->w.errnum));
			intake_store_error(m, "blob write", why,
			    intake_errno_full(d->w.errnum), d->w.errnum);
			rc = -1;
			break;
		}
		if (!intake_time_ok(m)) {
			rc = -1;
			break;
		}
	}
	if (rc == 0 && n < 0) {
		intake_local_error(m, "decode", "read from spool failed");
		rc = -1;
	}
	g_object_unref(fs);
	return rc;
}

/* The writer's running sha256, read without finishing it. */
static int
intake_peek_sha(struct blob_writer *w, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_MD_CTX *cp = EVP_MD_CTX_new();
	int ok = cp != NULL && EVP_MD_CTX_copy_ex(cp, w->md) == 1 &&
	    EVP_DigestFinal_ex(cp, md, &len) == 1 && len == 32;

	EVP_MD_CTX_free(cp);
	if (ok)
		pd_hex(out, md, len);
	return ok ? 0 : -1;
}

static int
intake_decode(struct intake_msg *m, struct intake_doc *d, unsigned ordinal)
{
	struct intake_ctx *c = m->ctx;
	size_t fmax = (size_t)c->cfg->filename_max, sniffed = 0;
	const char *name = g_mime_part_get_filename(d->part), *mt;
	char err[PD_ERRLEN];

	d->filename = xmalloc(fmax + 1);
	sanitize_filename(name, name ? strlen(name) : 0, ordinal, fmax,
	    d->filename, fmax + 1);
	if (blob_writer_begin(c->bs, &d->w, err) != 0) {
		intake_store_error(m, "blob", err, intake_errno_full(errno),
		    errno);
		return -1;
	}
	d->writing = 1;
	if (intake_pump(m, d, &sniffed) != 0)
		return -1;
	if (intake_peek_sha(&d->w, d->sha) != 0) {
		intake_local_error(m, "sha256", "digest failed");
		return -1;
	}
	d->size = d->w.size;
	mt = magic_buffer(c->magic, c->sniff, sniffed);
	intake_type_token(d->sniffed, sizeof(d->sniffed), mt != NULL &&
	    strchr(mt, '/') != NULL ? mt : "application/octet-stream", 1);
	/* Server-generated: digest prefix and ordinal, nothing from mail. */
	snprintf(d->stored_name, sizeof(d->stored_name), "%.16s-%u", d->sha,
	    ordinal);
	return 0;
}

/* ---- parsing ---------------------------------------------------------- */

static char *
intake_meta(const char *s)
{
	return sanitize_header_value(s, s ? strlen(s) : 0, INTAKE_HDR_CAP);
}

static void
intake_read_meta(struct intake_msg *m)
{
	InternetAddressList *from = g_mime_message_get_from(m->msg);
	char *f = NULL;

	/* internet_address_list_to_string(.., FALSE): decoded, unfolded. */
	if (from != NULL && internet_address_list_length(from) > 0)
		f = internet_address_list_to_string(from, NULL, FALSE);
	m->from = intake_meta(f);
	g_free(f);
	m->subject = intake_meta(g_mime_message_get_subject(m->msg));
	m->message_id = intake_meta(g_mime_message_get_message_id(m->msg));
}

static void
intake_render_anomalies(struct intake_msg *m)
{
	size_t i, o = 0;

	m->anomaly_text[0] = '\0';
	for (i = 0; i < sizeof(intake_anomaly_names) /
	    sizeof(intake_anomaly_names[0]); i++) {
		if (!(m->anomalies & (1u << i)))
			continue;
		o += (size_t)snprintf(m->anomaly_text + o,
		    sizeof(m->anomaly_text) - o, "%s%s", o ? "," : "",
		    intake_anomaly_names[i]);
	}
	if (m->anomalies != 0)
		m->parse_status = "review";
}

/*
 * A stream over the session's buffer, not a copy of it.  The GByteArray
 * only borrows the bytes: the stream does not own the array, and
 * intake_cleanup frees the array with free_segment FALSE, so glib never
 * frees memory the session allocated (the job's owner frees it).
 */
static GMimeStream *
intake_mem_stream(struct intake_msg *m)
{
	GMimeStream *st;

	m->mem = g_byte_array_new_take((guint8 *)m->job->spool_mem,
	    (gsize)m->job->size);
	st = g_mime_stream_mem_new_with_byte_array(m->mem);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(st), FALSE);
	return st;
}

/*
 * Parse from the session's buffer or the spool fd (persistent stream:
 * parts are windows on it, so a 20 MB attachment in a spool file is not
 * copied into memory), walk it under our limits, then decode the
 * documents.  0, or -1 with m->fail set.
 */
static int
intake_parse(struct intake_msg *m)
{
	GMimeObject *body;
	unsigned i;

	if (m->job->spool_mem != NULL)
		m->stream = intake_mem_stream(m);
	else {
		m->fd = open(m->job->spool_path, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (m->fd < 0) {
			intake_local_error(m, "open spool",
			    m->job->spool_path);
			return -1;
		}
		m->stream = g_mime_stream_fs_new(m->fd);
		g_mime_stream_fs_set_owner(GMIME_STREAM_FS(m->stream), FALSE);
	}
	m->parser = g_mime_parser_new_with_stream(m->stream);
	g_mime_parser_set_persist_stream(m->parser, TRUE);
	m->msg = g_mime_parser_construct_message(m->parser, NULL);
	m->parse_status = "ok";
	if (m->msg == NULL) {
		/* m06, m56: GMime gives up; keep the raw bytes for review. */
		m->parse_status = "unparsed";
		m->subject = intake_meta(NULL);
		m->message_id = intake_meta(NULL);
		m->from = intake_meta(NULL);
		return 0;
	}
	intake_read_meta(m);
	if (intake_check_headers(m, GMIME_OBJECT(m->msg)) != 0)
		return -1;
	body = g_mime_message_get_mime_part(m->msg);
	if (body != NULL && intake_walk(m, body, 1, "") != 0)
		return -1;
	for (i = 0; i < m->ndocs; i++)
		if (intake_decode(m, &m->docs[i], i + 1) != 0)
			return -1;
	intake_render_anomalies(m);
	return 0;
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

static int
intake_ask_plugins(struct intake_msg *m, const struct intake_rcpt *rc,
    struct intake_result *r)
{
	struct plugin_host *ph = m->ctx->ph;
	struct postdoc_message_info mi;
	struct postdoc_attachment_info ai;
	struct plugin_outcome o;
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
	for (i = 0; i < m->ndocs; i++) {
		const struct intake_doc *d = &m->docs[i];

		ai.account = rc->account;
		ai.dossier_ref = rc->dossier_ref;
		ai.filename = d->filename;
		ai.declared_type = d->declared;
		ai.sniffed_type = d->sniffed;
		ai.size = d->size;
		ai.sha256 = d->sha;
		ai.path = d->w.tmp_path;
		memset(&o, 0, sizeof(o));
		plugin_run_attachment(ph, &ai, &o);
		if (intake_refused(&o, r))
			return -1;
	}
	return 0;
}

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

		d->row_id = -1;
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
	    "message.received", detail, err) != 0)
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
	char detail[160];
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
static int
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
		ok[i] = intake_ask_plugins(m, &job->rcpts[i], &r) == 0;
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
	if (c->q == NULL && outq_ctx_new(c->cfg, c->ph, &c->q, err) != 0) {
		log_warn("%s: receipt: %s", m->job->queue_id, err);
		return;
	}
	if (store_dossier_get(c->st, rc->account_id, rc->dossier_id, &d, err)
	    != 1)
		return;
	got = json_array();
	for (i = 0; i < m->ndocs; i++) {
		json_t *file = json_pack("{s:s, s:I}", "filename",
		    m->docs[i].filename, "size", (json_int_t)m->docs[i].size);

		if (f->item_id != 0) {
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

static void
intake_cleanup(struct intake_msg *m)
{
	unsigned i;

	for (i = 0; i < m->ndocs; i++) {
		if (m->docs[i].writing)
			blob_writer_abort(&m->docs[i].w);
		free(m->docs[i].filename);
	}
	free(m->docs);
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
	} else if (intake_parse(&m) == 0 && intake_decide(&m, ok, results)) {
		if (intake_store(&m, ok, ids, added, files) == 0)
			intake_success(&m, ok, ids, added, files, results);
		else
			intake_reply_accepted(job, results, ok, &m.fail);
		m.fail.code = 0;	/* refused recipients keep their reply */
	}
	if (m.fail.code != 0)
		intake_reply_all(job, results, &m.fail);
	intake_cleanup(&m);
	pd_log_context_set(NULL);
	free(ok);
	free(ids);
	free(added);
	free(files);
}

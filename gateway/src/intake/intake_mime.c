/*
 * intake_mime.c - one message's MIME side: our limits (time, parts,
 * depth, header bytes), the walk of the tree, each leaf a document,
 * decoding its body into a blob with its sniffed type, and the parse of
 * the spooled bytes.  It never names a file after the message and never
 * calls a GMime boundary getter or setter (GMime issue #165).
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
#include <openssl/cms.h>
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
 * A signature, not a document (RFC 8551 3.5 application/pkcs7-signature
 * in multipart/signed, 3.4 application/pkcs7-mime; smime-type=signed-data;
 * RFC 3156 5 application/pgp-signature; the x- forms older clients
 * send): "smime" or "pgp", else NULL.  It stays in the raw message, where
 * it can be verified against the bytes it signs; filing it alone would
 * make every signed message run into the allow-list (smime.p7s).
 */
static const char *
intake_signature_kind(GMimeObject *o)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	const char *type = ct != NULL ?
	    g_mime_content_type_get_media_type(ct) : NULL;
	const char *sub = ct != NULL ?
	    g_mime_content_type_get_media_subtype(ct) : NULL;
	const char *st;

	if (type == NULL || sub == NULL || strcasecmp(type, "application"))
		return NULL;
	if (strcasecmp(sub, "pgp-signature") == 0)
		return "pgp";
	if (strcasecmp(sub, "pkcs7-signature") == 0 ||
	    strcasecmp(sub, "x-pkcs7-signature") == 0)
		return "smime";
	if (strcasecmp(sub, "pkcs7-mime") != 0 &&
	    strcasecmp(sub, "x-pkcs7-mime") != 0)
		return NULL;
	st = g_mime_content_type_get_parameter(ct, "smime-type");
	return st != NULL && strcasecmp(st, "signed-data") == 0 ? "smime" :
	    NULL;
}

/*
 * RFC 8551 3.4.2: an opaque signed-data part (application/pkcs7-mime;
 * smime-type=signed-data, "smime.p7m") carries the signed entity inside
 * the CMS structure: a signed invoice is in there, not beside it.  Take
 * the encapsulated content out (OpenSSL's CMS parser; the signature is
 * not verified: "signed" says one was carried, not that it is good) and
 * walk it like any body, so its documents are filed.  One level only: a
 * signed-data inside it stays a signature envelope, so nesting cannot
 * recurse past the walk's own depth limit.  The part's bytes are
 * decoded in memory, at most the message's size (message_size_max).
 */
static int
intake_walk_signed_data(struct intake_msg *m, GMimePart *part,
    const char *path)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeStream *der;
	GByteArray *ba;
	CMS_ContentInfo *cms = NULL;
	ASN1_OCTET_STRING **content;
	const unsigned char *p;
	char sub[128];

	if (m->signed_inner != NULL || dw == NULL)
		return 0;	/* already unwrapped one: kept as is */
	der = g_mime_stream_mem_new();
	if (g_mime_data_wrapper_write_to_stream(dw, der) < 0)
		goto done;
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(der));
	p = ba->data;
	if (ba->len == 0 || (cms = d2i_CMS_ContentInfo(NULL, &p,
	    (long)ba->len)) == NULL ||
	    OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
	    (content = CMS_get0_content(cms)) == NULL || *content == NULL)
		goto done;
	m->signed_stream = g_mime_stream_mem_new_with_buffer(
	    (const char *)ASN1_STRING_get0_data(*content),
	    (size_t)ASN1_STRING_length(*content));
	m->signed_parser = g_mime_parser_new_with_stream(m->signed_stream);
	m->signed_inner = g_mime_parser_construct_part(m->signed_parser,
	    NULL);
done:
	if (cms != NULL)
		CMS_ContentInfo_free(cms);
	g_object_unref(der);
	if (m->signed_inner == NULL)
		return 0;	/* not CMS we can read: the raw copy keeps it */
	snprintf(sub, sizeof(sub), "%s.1", path);
	/* Below the part: depth 2 at least; the inner walk counts its own
	 * levels and parts against the same limits. */
	return intake_walk(m, m->signed_inner, 2, sub);
}

/*
 * A leaf is a document when it is an attachment, has any name, or is not
 * text; text body parts stay in the raw message only, and so do
 * signatures (message.signed says the message carried one).
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
	const char *sig;
	struct intake_doc *d;

	intake_check_names(m, o);
	if ((sig = intake_signature_kind(o)) != NULL) {
		m->signed_ = sig;
		/* signed-data is the one signature with content inside */
		return strcasestr(g_mime_content_type_get_media_subtype(ct),
		    "pkcs7-mime") != NULL ? intake_walk_signed_data(m, part,
		    path) : 0;
	}
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
int
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


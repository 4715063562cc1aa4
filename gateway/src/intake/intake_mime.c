/*
 * intake_mime.c - one message's MIME side: our limits (time, parts,
 * depth, header bytes), the walk of the tree, each leaf a document,
 * decoding its body into a blob with its sniffed type, and the parse of
 * the spooled bytes.  It never names a file after the message and never
 * calls a GMime boundary getter or setter (GMime issue #165).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
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

/*
 * RFC 2046 section 5.1.1: boundary := 0*69<bchars> bcharsnospace, one
 * to 70 characters.  boundary="" (corpus m14) makes every line "--" a
 * delimiter, and GMime splits on them: such a multipart is one opaque
 * body kept in the raw message, flagged, its "parts" never documents.
 */
static int
intake_boundary_invalid(struct intake_msg *m, GMimeMultipart *mp)
{
	const char *b = g_mime_object_get_content_type_parameter(
	    GMIME_OBJECT(mp), "boundary");

	while (b != NULL && (*b == ' ' || *b == '\t'))
		b++;
	if (b == NULL || *b != '\0')
		return 0;
	m->anomalies |= AN_BAD_BOUNDARY;
	return 1;
}

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
	if (intake_boundary_invalid(m, mp))
		return 0;
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

static int intake_prescan_bytes(struct intake_msg *m,
    const unsigned char *mem, uint64_t size);
static int intake_parse_inner(struct intake_msg *m);

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
 * The content is hostile input like the message around it: the same
 * pre-scan (a part bomb inside is refused before GMime builds a part)
 * and the same parser options and warning checks (a part with no
 * header break inside is refused, 554 5.6.0).
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
	int rc = 0;

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
	    (content = CMS_get0_content(cms)) == NULL || *content == NULL ||
	    ASN1_STRING_length(*content) <= 0)
		goto done;	/* (an empty source would mean the spool file) */
	if ((rc = intake_prescan_bytes(m, ASN1_STRING_get0_data(*content),
	    (uint64_t)ASN1_STRING_length(*content))) != 0)
		goto done;
	m->signed_stream = g_mime_stream_mem_new_with_buffer(
	    (const char *)ASN1_STRING_get0_data(*content),
	    (size_t)ASN1_STRING_length(*content));
	rc = intake_parse_inner(m);
done:
	if (cms != NULL)
		CMS_ContentInfo_free(cms);
	g_object_unref(der);
	if (rc != 0)
		return -1;
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

/*
 * A document whose bytes were cut gets the flag "truncated" and the
 * message the anomaly; GMime decodes what is there and says nothing of
 * it.  Two signs: the part runs to the end of the message inside a
 * multipart whose close delimiter never came (RFC 2046 section 5.1.1;
 * corpus m09, GMime's TRUNCATED_MESSAGE warning), or its base64 does not
 * fill whole 4-character quanta (RFC 2045 section 6.8).
 */
static void
intake_flag_truncated(struct intake_msg *m, struct intake_doc *d)
{
	snprintf(d->flags, sizeof(d->flags), "truncated");
	m->anomalies |= AN_TRUNCATED;
}

/*
 * Did the part whose content window is src run to the end of the bytes
 * it was parsed from, inside a multipart never closed?  Both parses keep
 * their stream (persistent), so src is a window on the message or on a
 * signed-data part's content, and measured against that one.
 */
static int
intake_ran_to_end(struct intake_msg *m, GMimeStream *src)
{
	int inner = m->signed_stream != NULL &&
	    src->super_stream == m->signed_stream;
	GMimeObject *top = inner ? m->signed_inner :
	    g_mime_message_get_mime_part(m->msg);
	uint64_t size = inner ? (uint64_t)g_mime_stream_length(
	    m->signed_stream) : m->job->size;

	if (!(inner ? m->signed_cut_short : m->cut_short) ||
	    !GMIME_IS_MULTIPART(top))
		return 0;
	return src->bound_end < 0 ||
	    (uint64_t)src->bound_end + 2 >= size;	/* + CRLF */
}

static int
intake_check_truncated(struct intake_msg *m, struct intake_doc *d)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(d->part);
	GMimeStream *src;
	uint64_t quantum = 0;
	ssize_t n, i;

	if (dw == NULL || (src = g_mime_data_wrapper_get_stream(dw)) == NULL)
		return 0;
	if (intake_ran_to_end(m, src))
		intake_flag_truncated(m, d);
	if (g_mime_data_wrapper_get_encoding(dw) !=
	    GMIME_CONTENT_ENCODING_BASE64)
		return 0;
	g_mime_stream_reset(src);
	while ((n = g_mime_stream_read(src, (char *)m->ctx->buf,
	    INTAKE_BUF)) > 0)
		for (i = 0; i < n; i++) {
			unsigned char c = m->ctx->buf[i];

			quantum += g_ascii_isalnum(c) || c == '+' ||
			    c == '/' || c == '=';
		}
	/* GMime's fs stream answers -1 at the end of its window */
	if (n < 0 && !g_mime_stream_eos(src)) {
		intake_local_error(m, "decode", "read from spool failed");
		return -1;
	}
	if (quantum % 4 != 0)
		intake_flag_truncated(m, d);
	return 0;
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
	if (intake_pump(m, d, &sniffed) != 0 ||
	    intake_check_truncated(m, d) != 0)
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

/* ---- the pre-scan: limits before GMime builds a tree ------------------ */

/*
 * GMime builds every part and keeps every header it reads before we can
 * count them (corpus m03: 100,000 empty parts in 700 KB took RSS from 62
 * to 190 MB, never given back; m04: 100,000 header fields).  So one
 * linear pass over the raw bytes counts what the tree would hold: the
 * delimiter lines of every boundary the message declares (each opens a
 * part) and the fields of every header block (the message's, each
 * part's, each message/rfc822 body's), and refuses with the same replies
 * as the walk before a single part is built.  It over-counts at worst (a
 * text that quotes a delimiter line), never under-counts what GMime
 * splits on; the walk checks the tree again afterwards.
 */
#define PRESCAN_BOUNDARY_MAX 256	/* longer: never a delimiter we count */
#define PRESCAN_DASH_FACTOR 16		/* lines "--..." per part allowed */
#define PRESCAN_HEAD 320		/* of a line: what the rules read */
#define PRESCAN_CARRY 1024		/* a boundary parameter, whole */

struct prescan {
	struct intake_msg *m;
	const unsigned char *mem;	/* the bytes, or NULL: read m->fd */
	uint64_t size;
	GHashTable *bounds;		/* declared boundary values */
	int in_headers;			/* in a header block */
	int next_is_message;		/* the block declared message/rfc822 */
	int64_t delims, fields, dashes;
	uint64_t field_len, header_bytes, lines;
	unsigned char head[PRESCAN_HEAD];	/* the line being read */
	size_t hlen, len;
	int cr;				/* its last byte so far is CR */
	unsigned char *scratch;		/* carry + a chunk, pass 1 */
};

/*
 * The value after "boundary" at p (n bytes left): quoted or a token,
 * also in the RFC 2231 forms boundary*= (its charset'language' prefix
 * skipped) and boundary*0= (the first section; a boundary split into
 * sections or percent-encoded is not recognised here, which is why
 * prescan_line also caps every line that begins with "--").
 */
static void
prescan_boundary(struct prescan *ps, const unsigned char *p, size_t n)
{
	const unsigned char *q;
	size_t i = 8, b, e;
	int ext = 0;

	if (i < n && p[i] == '*') {
		ext = 1;
		for (i++; i < n && (p[i] == '*' || g_ascii_isdigit(p[i])); i++)
			;
	}
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i >= n || p[i++] != '=')
		return;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i < n && p[i] == '"') {
		for (b = e = ++i; e < n && p[e] != '"' && p[e] != '\r' &&
		    p[e] != '\n'; e++)
			;
	} else
		for (b = e = i; e < n && p[e] > ' ' && p[e] < 0x7f &&
		    strchr(";\"()<>,", p[e]) == NULL; e++)
			;
	/* charset'language'value */
	if (ext && e > b && (q = memchr(p + b, '\'', e - b)) != NULL &&
	    (q = memchr(q + 1, '\'', (size_t)(p + e - (q + 1)))) != NULL)
		b = (size_t)(q + 1 - p);
	if (e > b && e - b <= PRESCAN_BOUNDARY_MAX)
		g_hash_table_add(ps->bounds, g_strndup((const char *)p + b,
		    e - b));
}

/*
 * Every boundary the bytes declare, one chunk at a time; a chunk is
 * searched after the last PRESCAN_CARRY bytes of the one before, and a
 * "boundary" starting in those last bytes waits for the next round, so a
 * value cut by the chunk's end is read whole.  More boundaries than
 * parts allowed is a refusal too (each is a multipart), and keeps the
 * set small.
 */
static int
prescan_collect(struct prescan *ps, const unsigned char *p, size_t n,
    int last)
{
	const struct pd_config *cfg = ps->m->ctx->cfg;
	size_t i, stop = last ? n : n > PRESCAN_CARRY ? n - PRESCAN_CARRY : 0;

	for (i = 0; i < stop && i + 8 <= n; i++) {
		if ((p[i] | 0x20) != 'b' ||
		    g_ascii_strncasecmp((const char *)p + i, "boundary", 8) != 0)
			continue;
		prescan_boundary(ps, p + i, n - i);
		if (g_hash_table_size(ps->bounds) > (guint)cfg->mime_parts_max)
			return intake_limit(ps->m, "too many MIME parts",
			    cfg->mime_parts_max);
	}
	return 0;
}

/* 1: an opening delimiter, 2: a closing one, 0: neither. */
static int
prescan_delimiter(struct prescan *ps, const unsigned char *l, size_t len)
{
	char key[PRESCAN_BOUNDARY_MAX + 3];	/* and a close's "--" */

	if (len < 3 || l[0] != '-' || l[1] != '-')
		return 0;
	l += 2;
	len -= 2;
	while (len > 0 && (l[len - 1] == ' ' || l[len - 1] == '\t'))
		len--;	/* RFC 2046 5.1.1: transport padding */
	if (len == 0 || len > PRESCAN_BOUNDARY_MAX + 2)
		return 0;
	memcpy(key, l, len);
	key[len] = '\0';
	if (len <= PRESCAN_BOUNDARY_MAX &&
	    g_hash_table_contains(ps->bounds, key))
		return 1;
	if (len > 2 && key[len - 1] == '-' && key[len - 2] == '-') {
		key[len - 2] = '\0';
		if (g_hash_table_contains(ps->bounds, key))
			return 2;
	}
	return 0;
}

/* Does this Content-Type line (len bytes) declare an inner message,
 * whose body is one more header block? */
static int
prescan_is_message(const unsigned char *l, size_t len)
{
	size_t i = 13;	/* after "Content-Type:" */

	while (i < len && (l[i] == ' ' || l[i] == '\t'))
		i++;
	return i + 14 <= len && (g_ascii_strncasecmp((const char *)l + i,
	    "message/rfc822", 14) == 0 || g_ascii_strncasecmp(
	    (const char *)l + i, "message/global", 14) == 0);
}

/* One line of a header block: its first hlen bytes at l, len in all
 * (without its line break). */
static int
prescan_header_line(struct prescan *ps, const unsigned char *l,
    size_t hlen, size_t len)
{
	const struct pd_config *cfg = ps->m->ctx->cfg;

	if (len == 0) {			/* the block ends */
		ps->in_headers = ps->next_is_message;
		ps->next_is_message = 0;
		ps->fields = 0;
		ps->field_len = 0;
		return 0;
	}
	ps->header_bytes += len;
	if (ps->header_bytes > (uint64_t)cfg->header_block_max)
		return intake_limit(ps->m, "header block too large",
		    cfg->header_block_max);
	if (l[0] == ' ' || l[0] == '\t')
		ps->field_len += len;	/* a folded continuation */
	else {
		ps->field_len = len;
		if (++ps->fields > cfg->header_count_max)
			return intake_limit(ps->m,
			    "too many header fields in one part",
			    cfg->header_count_max);
		if (hlen > 13 && g_ascii_strncasecmp((const char *)l,
		    "content-type:", 13) == 0)
			ps->next_is_message = prescan_is_message(l, hlen);
	}
	if (ps->field_len > (uint64_t)cfg->header_size_max)
		return intake_limit(ps->m, "header field too long",
		    cfg->header_size_max);
	return 0;
}

/* One line: its first hlen bytes at l, len in all (without CR LF). */
static int
prescan_line(struct prescan *ps, const unsigned char *l, size_t hlen,
    size_t len)
{
	const struct pd_config *cfg = ps->m->ctx->cfg;
	int d = 0;

	/* a catch-all for boundaries declared in a form not collected */
	if (len >= 2 && l[0] == '-' && l[1] == '-' &&
	    ++ps->dashes > PRESCAN_DASH_FACTOR * cfg->mime_parts_max)
		return intake_limit(ps->m, "too many MIME parts",
		    cfg->mime_parts_max);
	if (hlen == len)		/* a delimiter line is short */
		d = prescan_delimiter(ps, l, len);
	if (d == 1) {
		if (++ps->delims >= cfg->mime_parts_max)
			return intake_limit(ps->m, "too many MIME parts",
			    cfg->mime_parts_max);
		ps->in_headers = 1;	/* a part's header block follows */
		ps->next_is_message = 0;
		ps->fields = 0;
		ps->field_len = 0;
		return 0;
	}
	if (d == 2) {
		ps->in_headers = 0;
		return 0;
	}
	return ps->in_headers ? prescan_header_line(ps, l, hlen, len) : 0;
}

/* The line in ps->head is complete. */
static int
prescan_line_end(struct prescan *ps)
{
	int rc;

	if (ps->cr)		/* CR LF; a bare LF ends a line too */
		ps->len--;
	rc = prescan_line(ps, ps->head, ps->hlen < ps->len ? ps->hlen :
	    ps->len, ps->len);
	ps->hlen = ps->len = 0;
	ps->cr = 0;
	if (rc == 0 && ++ps->lines % 65536 == 0 && !intake_time_ok(ps->m))
		rc = -1;
	return rc;
}

/*
 * Cut a chunk into lines; a line's first PRESCAN_HEAD bytes are all any
 * rule reads (its length counts in full), so a line of megabytes (m53)
 * costs no memory.  A line the chunk does not finish waits in ps.
 */
static int
prescan_lines(struct prescan *ps, const unsigned char *p, size_t n)
{
	const unsigned char *nl;
	size_t off = 0, seg, k;
	int rc = 0;

	while (rc == 0 && off < n) {
		nl = memchr(p + off, '\n', n - off);
		seg = nl != NULL ? (size_t)(nl - (p + off)) : n - off;
		k = seg < PRESCAN_HEAD - ps->hlen ? seg : PRESCAN_HEAD -
		    ps->hlen;
		memcpy(ps->head + ps->hlen, p + off, k);
		ps->hlen += k;
		ps->len += seg;
		if (seg > 0)
			ps->cr = p[off + seg - 1] == '\r';
		off += seg;
		if (nl == NULL)
			break;		/* the line goes on in the next chunk */
		off++;
		rc = prescan_line_end(ps);
	}
	return rc;
}

/*
 * The next chunk of the bytes at off: a window on bytes in memory (the
 * session's buffer, a signed-data part's content), or read from the
 * spool file into the worker's buffer (never mapped: a mapped 20 MB
 * file would count 20 MB in the process's RSS).
 */
static ssize_t
prescan_chunk(struct prescan *ps, uint64_t off, const unsigned char **p_r)
{
	struct intake_msg *m = ps->m;
	size_t want = INTAKE_BUF;
	ssize_t n;

	if (ps->mem != NULL) {
		if (off >= ps->size)
			return 0;
		if (ps->size - off < want)
			want = (size_t)(ps->size - off);
		*p_r = ps->mem + off;
		return (ssize_t)want;
	}
	do
		n = pread(m->fd, m->ctx->buf, want, (off_t)off);
	while (n < 0 && errno == EINTR);
	*p_r = m->ctx->buf;
	return n;
}

/* Pass 1 collects the boundaries, pass 2 reads the lines. */
static int
prescan_pass(struct prescan *ps, int pass)
{
	struct intake_msg *m = ps->m;
	unsigned char *carry = ps->scratch;
	const unsigned char *p;
	uint64_t off = 0;
	size_t keep = 0;
	ssize_t n;
	int rc = 0;

	while (rc == 0 && (n = prescan_chunk(ps, off, &p)) > 0) {
		off += (uint64_t)n;
		if (pass == 2) {
			rc = prescan_lines(ps, p, (size_t)n);
			continue;
		}
		memcpy(carry + keep, p, (size_t)n);
		rc = prescan_collect(ps, carry, keep + (size_t)n, 0);
		keep += (size_t)n;
		if (keep > PRESCAN_CARRY) {
			memmove(carry, carry + keep - PRESCAN_CARRY,
			    PRESCAN_CARRY);
			keep = PRESCAN_CARRY;
		}
	}
	if (rc == 0 && n < 0) {
		intake_local_error(m, "pre-scan", strerror(errno));
		return -1;
	}
	if (rc != 0)
		return rc;
	if (pass == 1)
		return prescan_collect(ps, carry, keep, 1);
	/* the last line, when the message does not end with a line break */
	return ps->hlen > 0 || ps->len > 0 ? prescan_line_end(ps) : 0;
}

/*
 * Any byte source that GMime is about to parse as MIME: mem (size
 * bytes), or with mem NULL the spool file m->fd.  0, or -1 with m->fail
 * set (552 5.3.4, as the walk answers).
 */
static int
intake_prescan_bytes(struct intake_msg *m, const unsigned char *mem,
    uint64_t size)
{
	struct prescan ps;
	int rc;

	memset(&ps, 0, sizeof(ps));
	ps.m = m;
	ps.mem = mem;
	ps.size = size;
	ps.in_headers = 1;		/* the message's own header block */
	ps.bounds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	    NULL);
	ps.scratch = xmalloc(PRESCAN_CARRY + INTAKE_BUF);
	rc = prescan_pass(&ps, 1);
	if (rc == 0)
		rc = prescan_pass(&ps, 2);
	free(ps.scratch);
	g_hash_table_destroy(ps.bounds);
	return rc;
}

/* The spooled message: the session's buffer, or the spool file. */
static int
intake_prescan(struct intake_msg *m)
{
	return intake_prescan_bytes(m, (const unsigned char *)
	    m->job->spool_mem, m->job->size);
}

/* ---- what GMime's parser could not place ------------------------------ */

/*
 * GMime reports through one callback per options object, with no way to
 * stop the parse; one process-wide object (never freed: header lists
 * keep a pointer to it), and the message being parsed on this thread.
 */
static __thread struct intake_msg *intake_parsing;
static GMimeParserOptions *intake_popts;
static pthread_once_t intake_popts_once = PTHREAD_ONCE_INIT;

static void
intake_warning_cb(gint64 offset, GMimeParserWarning code, const gchar *item,
    gpointer unused)
{
	struct intake_msg *m = intake_parsing;

	(void)item;
	(void)unused;
	if (m == NULL)
		return;
	if (code == GMIME_CRIT_INVALID_HEADER_NAME && m->lost_lines++ == 0)
		m->lost_line_at = offset;
	else if (code == GMIME_WARN_MALFORMED_MESSAGE)
		m->malformed = 1;
	else if (code == GMIME_WARN_TRUNCATED_MESSAGE)
		m->cut_short = 1;
}

static void
intake_popts_init(void)
{
	intake_popts = g_mime_parser_options_new();
	g_mime_parser_options_set_warning_callback(intake_popts,
	    intake_warning_cb, NULL);
}

/*
 * A part whose header block runs into its body (no empty line between
 * them): GMime drops each body line as a bad header field, so the part
 * comes out empty (0 bytes, application/x-empty) while the raw message
 * still carries the bytes; with a line over GMime's 4 KB scan buffer the
 * part disappears from the tree altogether (MALFORMED_MESSAGE).  An
 * executable passed the type filter that way.  A structure we cannot
 * read as the sender's client will is refused (RFC 3463 5.6.0); only a
 * stray line inside the message's own header block, which ended with
 * its empty line as RFC 5322 section 2.1 wants, costs nothing but that
 * line: the message is kept for review, the line in the raw copy.
 */
static int
intake_check_lost(struct intake_msg *m, gint64 hend)
{
	if (m->malformed) {
		intake_reply(&m->fail, 554, "5.6.0", "malformed MIME "
		    "structure: a part could not be read");
		return -1;
	}
	if (m->lost_lines == 0)
		return 0;
	if (hend >= 0 && m->lost_line_at >= 0 && m->lost_line_at < hend) {
		m->anomalies |= AN_LOST_LINE;
		return 0;
	}
	intake_reply(&m->fail, 554, "5.6.0", "malformed MIME structure: "
	    "a header block holds a line that is not a header field (no "
	    "empty line before the body?)");
	return -1;
}

/*
 * The content of a signed-data part (m->signed_stream), parsed like the
 * message: the process's options, the warnings counted afresh (the
 * message's own were checked already).  It is a MIME entity, not a
 * message, so no header block of it may lose a line: hend -1.  GMime
 * warns MALFORMED_MESSAGE only from construct_message, when the parse
 * stopped short of the end (a line over its scan buffer loses the part
 * and the rest); construct_part says nothing, so ask the parser.
 */
static int
intake_parse_inner(struct intake_msg *m)
{
	int outer_cut_short = m->cut_short;

	m->lost_lines = 0;
	m->lost_line_at = -1;
	m->malformed = 0;
	m->cut_short = 0;
	m->signed_parser = g_mime_parser_new_with_stream(m->signed_stream);
	/* parts are windows on the content, as on the message: no copies,
	 * and their bounds say where each one ended (intake_ran_to_end) */
	g_mime_parser_set_persist_stream(m->signed_parser, TRUE);
	intake_parsing = m;
	m->signed_inner = g_mime_parser_construct_part(m->signed_parser,
	    intake_popts);
	intake_parsing = NULL;
	m->signed_cut_short = m->cut_short;
	m->cut_short = outer_cut_short;
	if (m->signed_inner == NULL)
		return 0;
	if (!g_mime_parser_eos(m->signed_parser))
		m->malformed = 1;
	return intake_check_lost(m, -1);
}

/*
 * GMime frees a large tree into the allocator, which keeps it (four
 * part bombs at once: 546 MB, never returned).  The destroy notify of
 * data set on the message runs at the end of its finalize, after its
 * parts are freed, wherever the last reference goes (intake_cleanup).
 */
#define INTAKE_TRIM_SIZE (1024 * 1024)	/* message bytes */
#define INTAKE_TRIM_PARTS 256

static void
intake_trim_cb(gpointer unused)
{
	(void)unused;
	(void)malloc_trim(0);
}

static void
intake_trim_later(struct intake_msg *m)
{
	static char key;

	if (m->job->size < INTAKE_TRIM_SIZE && m->parts < INTAKE_TRIM_PARTS &&
	    m->header_bytes < INTAKE_TRIM_SIZE)
		return;
	g_object_set_data_full(G_OBJECT(m->msg), "postdoc-trim", &key,
	    intake_trim_cb);
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
	int rc;

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
	if (intake_prescan(m) != 0)
		return -1;
	pthread_once(&intake_popts_once, intake_popts_init);
	m->parser = g_mime_parser_new_with_stream(m->stream);
	g_mime_parser_set_persist_stream(m->parser, TRUE);
	intake_parsing = m;
	m->msg = g_mime_parser_construct_message(m->parser, intake_popts);
	intake_parsing = NULL;
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
	body = g_mime_message_get_mime_part(m->msg);
	rc = intake_check_lost(m, g_mime_parser_get_headers_end(m->parser)) !=
	    0 ||
	    intake_check_headers(m, GMIME_OBJECT(m->msg)) != 0 ||
	    (body != NULL && intake_walk(m, body, 1, "") != 0);
	intake_trim_later(m);
	if (rc)
		return -1;
	for (i = 0; i < m->ndocs; i++)
		if (intake_decode(m, &m->docs[i], i + 1) != 0)
			return -1;
	intake_render_anomalies(m);
	return 0;
}


/*
 * outmsg.c - builds one outbound message with GMime and writes it to a
 * file, CRLF-canonical (a temporary: outq makes it durable as a blob).
 * Owns address validation and the cleaning of display names and subjects.
 * Never builds a header by string concatenation: addresses, names and the
 * subject go through GMime, which quotes and RFC 2047-encodes them, so
 * data can never become syntax.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "outmsg.h"
#include "lib/util.h"

#define OUTMSG_NAME_MAX 256	/* display names, bytes */
#define OUTMSG_SUBJECT_MAX 255	/* bytes; GMime folds what remains */
#define OUTMSG_LINE_MAX 998	/* RFC 5322 2.1.1, excluding CRLF */
#define OUTMSG_HNAME_MAX 64
#define OUTMSG_HVALUE_MAX 900	/* leaves room for "Name: " on one line */
#define OUTMSG_LOCAL_MAX 64	/* RFC 5321 4.5.3.1.1 */
#define OUTMSG_DOMAIN_MAX 255	/* RFC 5321 4.5.3.1.2 */
#define OUTMSG_PATH_MAX 254	/* RFC 5321 4.5.3.1.3: 256 with <> */
#define OUTMSG_LABEL_MAX 63	/* RFC 1035 2.3.4 */
#define OUTMSG_REPLACEMENT 0xFFFD

static pthread_once_t outmsg_gmime_once = PTHREAD_ONCE_INIT;

static void
outmsg_gmime_init(void)
{
	g_mime_init();	/* process-wide; never shut down under other threads */
}

/* ---- UTF-8 ---------------------------------------------------------- */

/*
 * Decode one UTF-8 sequence at s (n bytes available).  Returns its length
 * and the code point in *cp, or 0 when the bytes are not well-formed
 * (overlong, surrogate, above U+10FFFF, truncated): RFC 3629 section 4.
 */
static size_t
outmsg_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len, i;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		len = 2;
		c = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		len = 3;
		c = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		len = 4;
		c = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

static size_t
outmsg_utf8_encode(uint32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xC0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xE0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		out[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	out[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

/*
 * Characters that may end or split a line for some reader: C0 (CR, LF,
 * NUL...), DEL, C1 (NEL U+0085 is a newline to ISO 6429 readers), and the
 * Unicode line/paragraph separators U+2028/U+2029.
 */
static int
outmsg_is_breaking(uint32_t c)
{
	return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 ||
	    c == 0x2029;
}

char *
outmsg_clean_text(const char *in, size_t maxlen)
{
	const unsigned char *s = (const unsigned char *)(in ? in : "");
	size_t n = strlen((const char *)s), i = 0, o = 0, k;
	char *out, enc[4];
	uint32_t c;

	/* each input byte yields at most 3 output bytes (U+FFFD) */
	if (maxlen > n * 3)
		maxlen = n * 3;
	out = xmalloc(maxlen + 1);

	while (i < n) {
		k = outmsg_utf8_decode(s + i, n - i, &c);
		if (k == 0) {
			c = OUTMSG_REPLACEMENT;
			k = 1;
		}
		i += k;
		if (outmsg_is_breaking(c))
			continue;
		k = outmsg_utf8_encode(c, enc);
		if (o + k > maxlen)
			break;	/* cut at a character boundary */
		memcpy(out + o, enc, k);
		o += k;
	}
	out[o] = '\0';
	return out;
}

/* ---- addresses ------------------------------------------------------ */

/* RFC 5322 3.2.3 atext, minus nothing: a dot-atom local part only. */
static int
outmsg_is_atext(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", ch)
	    != NULL;
}

/*
 * One run of characters between dots; non-ASCII only with SMTPUTF8
 * (RFC 6531 3.3) and then only well-formed, non-breaking UTF-8.
 */
static int
outmsg_run_valid(const unsigned char *s, size_t n, int smtputf8,
    int is_domain)
{
	size_t i = 0, k;
	uint32_t c;

	while (i < n) {
		if (s[i] >= 0x80) {
			if (!smtputf8)
				return 0;
			k = outmsg_utf8_decode(s + i, n - i, &c);
			if (k == 0 || outmsg_is_breaking(c) || c == 0xFEFF)
				return 0;
			i += k;
			continue;
		}
		if (is_domain ? !(g_ascii_isalnum(s[i]) || s[i] == '-') :
		    !outmsg_is_atext(s[i]))
			return 0;
		i++;
	}
	return 1;
}

/* Dot-separated runs, none empty (no leading, trailing or double dot). */
static int
outmsg_dotted_valid(const char *s, size_t n, int smtputf8, int is_domain)
{
	const char *p = s, *end = s + n, *dot;
	size_t len;
	int labels = 0;

	while (p <= end) {
		dot = memchr(p, '.', (size_t)(end - p));
		len = (size_t)((dot ? dot : end) - p);
		if (len == 0 || !outmsg_run_valid((const unsigned char *)p,
		    len, smtputf8, is_domain))
			return 0;
		/* RFC 1035 2.3.1: labels neither start nor end with '-' */
		if (is_domain && (len > OUTMSG_LABEL_MAX || p[0] == '-' ||
		    p[len - 1] == '-'))
			return 0;
		labels++;
		if (dot == NULL)
			break;
		p = dot + 1;
	}
	/* Outbound mail goes to the public DNS: no dotless hosts. */
	return !is_domain || labels >= 2;
}

static int
outmsg_domain_valid(const char *d, int smtputf8)
{
	size_t n = strlen(d);

	return n > 0 && n <= OUTMSG_DOMAIN_MAX &&
	    outmsg_dotted_valid(d, n, smtputf8, 1);
}

int
outmsg_addr_valid(const char *addr, int smtputf8)
{
	const char *at;
	size_t n, local;

	if (addr == NULL)
		return 0;
	n = strlen(addr);
	at = strchr(addr, '@');
	/* Exactly one '@': quoted local parts are refused, not parsed. */
	if (n == 0 || n > OUTMSG_PATH_MAX || at == NULL ||
	    strchr(at + 1, '@') != NULL)
		return 0;
	local = (size_t)(at - addr);
	if (local == 0 || local > OUTMSG_LOCAL_MAX ||
	    !outmsg_dotted_valid(addr, local, smtputf8, 0))
		return 0;
	return outmsg_domain_valid(at + 1, smtputf8);
}

/* ---- extra headers -------------------------------------------------- */

/* Headers this module owns; an extra one would duplicate or override. */
static const char *const outmsg_reserved[] = {
	"From", "To", "Cc", "Bcc", "Reply-To", "Sender", "Subject", "Date",
	"Message-ID", "MIME-Version", "Return-Path", "DKIM-Signature", NULL
};

static int
outmsg_header_name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > OUTMSG_HNAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!g_ascii_isalnum(name[i]) && name[i] != '-')
			return 0;
	for (i = 0; outmsg_reserved[i] != NULL; i++)
		if (g_ascii_strcasecmp(name, outmsg_reserved[i]) == 0)
			return 0;
	return g_ascii_strncasecmp(name, "Content-", 8) != 0;
}

static int
outmsg_header_value_ok(const char *value)
{
	size_t i, n = strlen(value);

	if (n > OUTMSG_HVALUE_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (value[i] < 0x20 || value[i] > 0x7E)
			return 0;
	return 1;
}

static int
outmsg_check_spec(const struct outmsg_spec *spec, char *err)
{
	size_t i;

	if (!outmsg_addr_valid(spec->from_addr, 0))
		return pd_err(err, "From address is not valid"), -1;
	if (!outmsg_addr_valid(spec->to_addr, 0))
		return pd_err(err, "To address is not valid"), -1;
	if (spec->reply_to != NULL && !outmsg_addr_valid(spec->reply_to, 0))
		return pd_err(err, "Reply-To address is not valid"), -1;
	if (spec->msgid_domain == NULL ||
	    !outmsg_domain_valid(spec->msgid_domain, 0))
		return pd_err(err, "Message-ID domain is not valid"), -1;
	if (spec->text == NULL)
		return pd_err(err, "a text body is required"), -1;
	for (i = 0; i < spec->n_extra; i++) {
		const struct outmsg_header *h = &spec->extra[i];
		char shown[OUTMSG_HNAME_MAX + 32];	/* shows overlong names */

		pd_ascii_clean(shown, sizeof(shown), h->name ? h->name : "");
		if (h->name == NULL || !outmsg_header_name_ok(h->name))
			return pd_err(err, "header name \"%s\" is refused",
			    shown), -1;
		if (h->value == NULL || !outmsg_header_value_ok(h->value))
			return pd_err(err, "header %s: value is not printable "
			    "ASCII of at most %d octets", shown,
			    OUTMSG_HVALUE_MAX), -1;
	}
	return 0;
}

/* ---- building ------------------------------------------------------- */

/*
 * Body text as GMime should see it: LF line ends (the DOS newline filter
 * makes them CRLF, so CRLF, bare CR and bare LF all end as CRLF: no bare
 * CR or LF can reach a relay), no NUL, invalid UTF-8 replaced.  A line
 * "." stays data: dot-stuffing is the transport's job (RFC 5321 4.5.2).
 */
static GByteArray *
outmsg_body_bytes(const char *in)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = strlen(in), i = 0, k;
	GByteArray *b = g_byte_array_sized_new((guint)n + 1);
	char enc[4];
	uint32_t c;

	while (i < n) {
		if (s[i] == '\r') {
			i += (i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
			g_byte_array_append(b, (const guint8 *)"\n", 1);
			continue;
		}
		k = outmsg_utf8_decode(s + i, n - i, &c);
		if (k == 0) {
			c = OUTMSG_REPLACEMENT;
			k = 1;
		}
		i += k;
		if (c == '\n' || c == '\t' || !outmsg_is_breaking(c))
			g_byte_array_append(b, (const guint8 *)enc,
			    (guint)outmsg_utf8_encode(c, enc));
	}
	return b;
}

/*
 * One text part.  Content comes from a stream, because
 * g_mime_text_part_set_text() transcodes UTF-8 to iso-8859-1 when it can.
 * Quoted-printable keeps it 7-bit with lines <= 76 (RFC 2045 6.7), so no
 * relay re-encodes it and breaks the DKIM body hash.
 */
static GMimeObject *
outmsg_text_part(const char *subtype, const char *text)
{
	GMimePart *part = g_mime_part_new_with_type("text", subtype);
	GByteArray *bytes = outmsg_body_bytes(text);
	GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(bytes);
	GMimeDataWrapper *dw = g_mime_data_wrapper_new_with_stream(mem,
	    GMIME_CONTENT_ENCODING_DEFAULT);

	g_mime_object_set_content_type_parameter(GMIME_OBJECT(part),
	    "charset", "utf-8");
	g_mime_part_set_content(part, dw);
	g_mime_part_set_content_encoding(part,
	    GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	g_object_unref(dw);
	g_object_unref(mem);	/* owns bytes */
	return GMIME_OBJECT(part);
}

/* text/plain first: RFC 2046 5.1.4, the last part is the preferred one. */
static GMimeObject *
outmsg_body(const struct outmsg_spec *spec)
{
	GMimeMultipart *alt;
	GMimeObject *part;

	if (spec->html == NULL)
		return outmsg_text_part("plain", spec->text);
	alt = g_mime_multipart_new_with_subtype("alternative");
	part = outmsg_text_part("plain", spec->text);
	g_mime_multipart_add(alt, part);
	g_object_unref(part);
	part = outmsg_text_part("html", spec->html);
	g_mime_multipart_add(alt, part);
	g_object_unref(part);
	return GMIME_OBJECT(alt);
}

/* Name and address as GMime objects: GMime quotes/encodes the name. */
static void
outmsg_add_mailbox(GMimeMessage *msg, GMimeAddressType type,
    const char *name, const char *addr)
{
	char *clean = outmsg_clean_text(name, OUTMSG_NAME_MAX);
	InternetAddress *ia = internet_address_mailbox_new(
	    clean[0] ? clean : NULL, addr);

	internet_address_list_add(g_mime_message_get_addresses(msg, type), ia);
	g_object_unref(ia);
	free(clean);
}

/* "<128 random bits in hex>.<unix time>@domain": unique without state. */
static int
outmsg_make_msgid(const char *domain, char *out, size_t outlen)
{
	unsigned char rnd[16];
	char hex[sizeof(rnd) * 2 + 1];
	int n;

	if (pd_random(rnd, sizeof(rnd)) != 0)
		return -1;
	pd_hex(hex, rnd, sizeof(rnd));
	n = snprintf(out, outlen, "%s.%lld@%s", hex, (long long)pd_now(),
	    domain);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}


/*
 * Extra headers are already printable ASCII.  Set as raw values, folded
 * only after ", " (RFC 5322 2.2.3), so GMime never RFC 2047-encodes a
 * long word: an encoded "<mailto:...>" in List-Unsubscribe (RFC 2369)
 * would be no URI at all.  Each piece is at most OUTMSG_HVALUE_MAX.
 */
static void
outmsg_append_extra(GMimeMessage *msg, const struct outmsg_header *h)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(msg));
	GMimeHeader *hdr;
	GString *raw = g_string_new(" ");
	size_t col = strlen(h->name) + 2, n;
	const char *p = h->value;

	while (*p != '\0') {
		const char *sep = strstr(p, ", ");

		n = sep != NULL ? (size_t)(sep - p) + 1 : strlen(p);
		if (p != h->value) {
			/* the space after the comma, or a fold instead */
			g_string_append(raw, col + 1 + n > 78 ? "\n " : " ");
			col = col + 1 + n > 78 ? 1 : col + 1;
		}
		g_string_append_len(raw, p, (gssize)n);
		col += n;
		p += n;
		if (*p == ' ')
			p++;
	}
	g_string_append_c(raw, '\n');
	g_mime_object_append_header(GMIME_OBJECT(msg), h->name, h->value,
	    NULL);
	hdr = g_mime_header_list_get_header_at(hl,
	    g_mime_header_list_get_count(hl) - 1);
	g_mime_header_set_raw_value(hdr, raw->str);
	g_string_free(raw, TRUE);
}

static GMimeMessage *
outmsg_message(const struct outmsg_spec *spec, const char *msgid)
{
	GMimeMessage *msg = g_mime_message_new(TRUE);
	GDateTime *now = g_date_time_new_now_local();
	GMimeObject *body = outmsg_body(spec);
	char *subject = outmsg_clean_text(spec->subject, OUTMSG_SUBJECT_MAX);
	size_t i;

	outmsg_add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, spec->from_name,
	    spec->from_addr);
	outmsg_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, spec->to_name,
	    spec->to_addr);
	if (spec->reply_to != NULL)
		outmsg_add_mailbox(msg, GMIME_ADDRESS_TYPE_REPLY_TO, NULL,
		    spec->reply_to);
	g_mime_message_set_subject(msg, subject, "utf-8");
	g_mime_message_set_date(msg, now);
	g_mime_message_set_message_id(msg, msgid);
	g_mime_object_set_header(GMIME_OBJECT(msg), "MIME-Version", "1.0",
	    NULL);
	for (i = 0; i < spec->n_extra; i++)
		outmsg_append_extra(msg, &spec->extra[i]);
	g_mime_message_set_mime_part(msg, body);
	g_object_unref(body);
	g_date_time_unref(now);
	free(subject);
	return msg;
}

/* CRLF only, no line over 998 octets (RFC 5322 2.1.1, 2.3). */
struct outmsg_canon {
	size_t line;
	int prev_cr, ok;
};

static void
outmsg_canon_scan(struct outmsg_canon *k, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && k->ok; i++) {
		if (k->prev_cr && p[i] != '\n')
			k->ok = 0;		/* bare CR */
		else if (p[i] == '\n') {
			k->ok = k->prev_cr;	/* bare LF otherwise */
			k->line = 0;
		} else if (p[i] != '\r' && ++k->line > OUTMSG_LINE_MAX)
			k->ok = 0;
		k->prev_cr = (p[i] == '\r');
	}
}

/*
 * Render with CRLF line ends (RFC 5321 2.3.8) into memory, check it there
 * and write it with one write(): a GMimeStreamFs is unbuffered (a write
 * and an lseek per header and part, ~50 syscalls a message).  No fsync:
 * the file is a temporary that outq copies into a blob (fsync'd there)
 * and unlinks, or a preview.  Our messages are templates, not archives:
 * a few KB in memory.
 */
static int
outmsg_write(GMimeMessage *msg, int fd, const char *path, char *err)
{
	GMimeFormatOptions *fo = g_mime_format_options_new();
	GMimeStream *st = g_mime_stream_mem_new();
	struct outmsg_canon k = { 0, 0, 1 };
	GByteArray *ba;
	int rc = -1;

	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	if (g_mime_object_write_to_stream(GMIME_OBJECT(msg), fo, st) < 0) {
		pd_err(err, "cannot render %s", path);
		goto out;
	}
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(st));
	outmsg_canon_scan(&k, ba->data, ba->len);
	if (!k.ok || k.prev_cr)
		pd_err(err, "%s is not CRLF-canonical with lines <= %d octets",
		    path, OUTMSG_LINE_MAX);
	else if (pd_write_all(fd, ba->data, ba->len) != 0)
		pd_err(err, "cannot write %s: %s", path, strerror(errno));
	else
		rc = 0;
out:
	g_object_unref(st);
	g_mime_format_options_free(fo);
	return rc;
}

int
outmsg_build(const struct outmsg_spec *spec, const char *path,
    char *msgid_r, size_t msgid_len, char *err)
{
	GMimeMessage *msg;
	char msgid[OUTMSG_DOMAIN_MAX + 64];
	int fd, rc;

	pthread_once(&outmsg_gmime_once, outmsg_gmime_init);
	if (outmsg_check_spec(spec, err) != 0)
		return -1;
	if (outmsg_make_msgid(spec->msgid_domain, msgid, sizeof(msgid)) != 0
	    || strlen(msgid) >= msgid_len)
		return pd_err(err, "cannot make a Message-ID"), -1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0640);
	if (fd < 0)
		return pd_err(err, "cannot create %s: %s", path,
		    strerror(errno)), -1;
	msg = outmsg_message(spec, msgid);
	rc = outmsg_write(msg, fd, path, err);
	g_object_unref(msg);
	if (close(fd) != 0 && rc == 0) {
		pd_err(err, "cannot close %s: %s", path, strerror(errno));
		rc = -1;
	}
	if (rc != 0) {
		unlink(path);
		return -1;
	}
	snprintf(msgid_r, msgid_len, "%s", msgid);
	return 0;
}

/* ---- the final check ------------------------------------------------ */

int
outmsg_file_canonical(const char *path)
{
	struct outmsg_canon k = { 0, 0, 1 };
	unsigned char buf[65536];
	ssize_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	while (k.ok && ((n = read(fd, buf, sizeof(buf))) > 0 ||
	    (n < 0 && errno == EINTR)))
		if (n > 0)
			outmsg_canon_scan(&k, buf, (size_t)n);
	if (n < 0)
		k.ok = 0;
	close(fd);
	return k.ok && !k.prev_cr;
}

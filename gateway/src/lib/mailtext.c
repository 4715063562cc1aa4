/*
 * mailtext.c - what a person wrote in a stored message, as plain text
 * safe to show: the first text/plain part that is not an attachment
 * (else the first text/html, its tags removed), decoded to UTF-8 by
 * GMime, controls removed, blank lines folded, capped.  Reads an fd;
 * never writes, never follows anything the message links to.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "mailtext.h"
#include "sanitize.h"
#include "util.h"

static pthread_once_t mailtext_once = PTHREAD_ONCE_INIT;

static void
mailtext_gmime_init(void)
{
	g_mime_init();	/* process-wide; never shut down under other threads */
}

/* The first inline text part of the wanted subtype, depth first. */
static GMimeTextPart *
mailtext_find(GMimeObject *o, const char *subtype, int depth)
{
	GMimeContentType *ct;
	const char *disp;
	int i, n;

	if (o == NULL || depth > 16)
		return NULL;
	if (GMIME_IS_MULTIPART(o)) {
		n = g_mime_multipart_get_count(GMIME_MULTIPART(o));
		for (i = 0; i < n; i++) {
			GMimeTextPart *t = mailtext_find(
			    g_mime_multipart_get_part(GMIME_MULTIPART(o), i),
			    subtype, depth + 1);

			if (t != NULL)
				return t;
		}
		return NULL;
	}
	if (!GMIME_IS_TEXT_PART(o))
		return NULL;
	ct = g_mime_object_get_content_type(o);
	disp = g_mime_object_get_disposition(o);
	if (!g_mime_content_type_is_type(ct, "text", subtype) ||
	    (disp != NULL && strcasecmp(disp, "attachment") == 0))
		return NULL;
	return GMIME_TEXT_PART(o);
}

/* Tags out, the five common entities decoded, <br> and </p> as lines. */
static void
mailtext_unhtml(char *s)
{
	static const struct { const char *e, *c; } ent[] = {
		{ "&amp;", "&" }, { "&lt;", "<" }, { "&gt;", ">" },
		{ "&quot;", "\"" }, { "&#39;", "'" }, { "&nbsp;", " " },
	};
	char *r = s, *w = s;
	size_t i;

	while (*r != '\0') {
		if (*r == '<') {
			const char *close = strncasecmp(r, "<style", 6) == 0 ?
			    "</style>" : strncasecmp(r, "<script", 7) == 0 ?
			    "</script>" : ">";
			int nl = strncasecmp(r, "<br", 3) == 0 ||
			    strncasecmp(r, "</p", 3) == 0 ||
			    strncasecmp(r, "</div", 5) == 0;
			char *end = strcasestr(r, close);

			if (end == NULL)
				break;
			r = end + strlen(close);
			if (nl)
				*w++ = '\n';
			continue;
		}
		for (i = 0; *r == '&' && i < sizeof(ent) / sizeof(ent[0]); i++)
			if (strncmp(r, ent[i].e, strlen(ent[i].e)) == 0)
				break;
		if (*r == '&' && i < sizeof(ent) / sizeof(ent[0])) {
			*w++ = ent[i].c[0];
			r += strlen(ent[i].e);
			continue;
		}
		*w++ = *r++;
	}
	*w = '\0';
}

/*
 * Controls out (but newline and tab), CR dropped, invalid UTF-8 bytes
 * as '?', runs of blank lines as one, trimmed, at most max bytes cut at
 * a character boundary.
 */
static char *
mailtext_clean(const char *in, size_t max)
{
	size_t n = strlen(in), o = 0, i, k, len;
	char *out = xmalloc(n + 8);
	int nl = 0;

	for (i = 0; i < n; i += len) {
		unsigned char c = (unsigned char)in[i];

		len = 1;
		if (c >= 0x80) {
			len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
			if (i + len > n || len == 1 ||
			    !sanitize_utf8_valid(in + i, len)) {
				out[o++] = '?';
				len = 1;
				continue;
			}
			memcpy(out + o, in + i, len);
			o += len;
			nl = 0;
			continue;
		}
		if (c == '\n') {
			if (++nl <= 2 && o > 0)
				out[o++] = '\n';
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			continue;
		if (c != ' ' && c != '\t')
			nl = 0;
		out[o++] = (char)c;
	}
	while (o > 0 && (out[o - 1] == '\n' || out[o - 1] == ' '))
		o--;
	out[o] = '\0';
	if (o > max) {
		for (k = max; k > 0 && ((unsigned char)out[k] & 0xC0) == 0x80;
		    k--)
			;
		snprintf(out + k, o + 8 - k, "\n[...]");
	}
	return out;
}

int
mailtext_extract(int fd, size_t max, char **text_r, char *err)
{
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;
	GMimeTextPart *t;
	char *raw;
	int html = 0, dfd;

	*text_r = NULL;
	pthread_once(&mailtext_once, mailtext_gmime_init);
	if ((dfd = dup(fd)) < 0) {
		pd_err(err, "message text: cannot read the message");
		return -1;
	}
	stream = g_mime_stream_fs_new(dfd);
	parser = g_mime_parser_new_with_stream(stream);
	msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	if (msg == NULL) {
		*text_r = xstrdup("");
		return 0;
	}
	t = mailtext_find(g_mime_message_get_mime_part(msg), "plain", 0);
	if (t == NULL && (t = mailtext_find(g_mime_message_get_mime_part(msg),
	    "html", 0)) != NULL)
		html = 1;
	raw = t != NULL ? g_mime_text_part_get_text(t) : NULL;
	if (raw != NULL && html)
		mailtext_unhtml(raw);
	*text_r = mailtext_clean(raw != NULL ? raw : "", max);
	g_free(raw);
	g_object_unref(msg);
	return 0;
}

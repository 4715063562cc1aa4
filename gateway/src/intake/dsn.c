/*
 * dsn.c - RFC 3464 delivery status notifications: finds the
 * message/delivery-status part and reads the first per-recipient block.
 * The part is peer data: it is read bounded (64 KiB) and every value is
 * cleaned to printable ASCII before it leaves this module.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dsn.h"
#include "lib/util.h"

#define DSN_MAX (64 * 1024)

static GMimePart *
dsn_find(GMimeObject *o, int depth)
{
	GMimeContentType *ct;
	int i, n;

	if (o == NULL || depth > 8)
		return NULL;
	if (GMIME_IS_MULTIPART(o)) {
		n = g_mime_multipart_get_count(GMIME_MULTIPART(o));
		for (i = 0; i < n; i++) {
			GMimePart *p = dsn_find(g_mime_multipart_get_part(
			    GMIME_MULTIPART(o), i), depth + 1);

			if (p != NULL)
				return p;
		}
		return NULL;
	}
	ct = g_mime_object_get_content_type(o);
	if (GMIME_IS_PART(o) && ct != NULL &&
	    g_mime_content_type_is_type(ct, "message", "delivery-status"))
		return GMIME_PART(o);
	return NULL;
}

/* The decoded part, NUL-terminated, at most DSN_MAX bytes. */
static char *
dsn_text(GMimePart *p)
{
	GMimeDataWrapper *w = g_mime_part_get_content(p);
	GMimeStream *mem;
	GByteArray *a;
	char *s;
	size_t n;

	if (w == NULL)
		return NULL;
	mem = g_mime_stream_mem_new();
	g_mime_data_wrapper_write_to_stream(w, mem);
	a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	n = a->len < DSN_MAX ? a->len : DSN_MAX;
	s = xmalloc(n + 1);
	memcpy(s, a->data, n);
	s[n] = '\0';
	g_object_unref(mem);
	return s;
}

/* "Name: value" (folded lines joined); value cleaned into out. */
static int
dsn_field(const char *line, const char *name, char *out, size_t len)
{
	size_t n = strlen(name);

	if (strncasecmp(line, name, n) != 0 || line[n] != ':')
		return 0;
	line += n + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	pd_ascii_clean(out, len, line);
	return 1;
}

/* "smtp; 550 5.1.1 ..." gives 550; otherwise the Status class. */
static int
dsn_code(const char *diag, const char *status)
{
	const char *p = strchr(diag, ';');

	if (p != NULL) {
		while (*++p == ' ')
			;
		if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])
		    && isdigit((unsigned char)p[2]) && p[0] >= '2' &&
		    p[0] <= '5')
			return (p[0] - '0') * 100 + (p[1] - '0') * 10 +
			    (p[2] - '0');
	}
	return status[0] == '5' ? 550 : status[0] == '4' ? 450 :
	    status[0] == '2' ? 250 : 0;
}

/* Walk the fields line by line, unfolding continuations. */
static void
dsn_scan(char *text, struct dsn_report *r)
{
	char *line = text, *next;

	while (line != NULL && *line != '\0') {
		next = strchr(line, '\n');
		while (next != NULL && (next[1] == ' ' || next[1] == '\t')) {
			*next = ' ';	/* folded: join */
			if (next > line && next[-1] == '\r')
				next[-1] = ' ';
			next = strchr(next, '\n');
		}
		if (next != NULL) {
			*next++ = '\0';
			if (next - 2 >= line && next[-2] == '\r')
				next[-2] = '\0';
		}
		if (r->action[0] == '\0')
			dsn_field(line, "Action", r->action, sizeof(r->action));
		if (r->status[0] == '\0')
			dsn_field(line, "Status", r->status, sizeof(r->status));
		if (r->diagnostic[0] == '\0')
			dsn_field(line, "Diagnostic-Code", r->diagnostic,
			    sizeof(r->diagnostic));
		line = next;
	}
}

int
dsn_parse(GMimeMessage *msg, struct dsn_report *r)
{
	GMimePart *p;
	char *text;

	memset(r, 0, sizeof(*r));
	if (msg == NULL ||
	    (p = dsn_find(g_mime_message_get_mime_part(msg), 0)) == NULL ||
	    (text = dsn_text(p)) == NULL)
		return 0;
	dsn_scan(text, r);
	free(text);
	if (r->action[0] == '\0' || r->status[0] == '\0')
		return 0;
	r->code = dsn_code(r->diagnostic, r->status);
	return 1;
}

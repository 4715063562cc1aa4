/*
 * sync_name.h - the names sync_dir and sync_webdav give to what they
 * mirror: <root>/<account>/<dossier ref>/<document id>-<filename>.  Shared
 * by both plugins (static functions, no library) so a dossier looks the
 * same on a share and on a WebDAV server.  Every segment is built here
 * and never taken verbatim from a peer: no '/', no leading '.', no
 * control byte, nothing Windows-based stores (OneDrive, SharePoint, SMB)
 * refuse, bounded length.
 */
#ifndef POSTDOC_SYNC_NAME_H
#define POSTDOC_SYNC_NAME_H

#include <stdio.h>
#include <string.h>

#include "postdoc/plugin.h"

/* 255 is the name limit of every common file system; leave room for the
 * "<id>-" prefix and a " (NN)" suffix in the file name. */
#define SYNC_SEGMENT_MAX 200
#define SYNC_FILENAME_MAX 160
#define SYNC_EXT_MAX 16
/* Candidate names tried for one document before giving up. */
#define SYNC_CANDIDATES_MAX 20

/*
 * Bytes a file name must not contain: '/' (a path), controls, and what
 * Windows, OneDrive and SharePoint refuse in a name (\ : * ? " < > |).
 * Bytes >= 0x80 pass: the core hands us UTF-8.
 */
static inline int
sync_name_unsafe(unsigned char c)
{
	return c < 0x20 || c == 0x7f || strchr("/\\:*?\"<>|", c) != NULL;
}

/* Cut at most `max` bytes without splitting a UTF-8 sequence. */
static inline size_t
sync_name_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	len = max;
	while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
		len--;
	return len;
}

/*
 * One safe path segment from `in` (len bytes) into out: unsafe bytes
 * become '_', and so do a leading '.' (hidden files, "." and "..") and
 * trailing dots and spaces (Windows strips them, which would merge two
 * names).  Never empty.
 */
static inline void
sync_name_segment(char *out, size_t outlen, const char *in, size_t len,
    size_t max)
{
	size_t i, n;

	if (max >= outlen)
		max = outlen - 1;
	n = sync_name_cut(in, len, max);
	for (i = 0; i < n; i++)
		out[i] = sync_name_unsafe((unsigned char)in[i]) ? '_' : in[i];
	out[n] = '\0';
	if (n == 0) {
		snprintf(out, outlen, "_");
		return;
	}
	if (out[0] == '.')
		out[0] = '_';
	for (i = n; i > 0 && (out[i - 1] == '.' || out[i - 1] == ' '); i--)
		out[i - 1] = '_';
}

/*
 * The last extension of in[0..len) ('.' included), or 0 when there is
 * none worth keeping: no dot, a dot first (".profile"), a bare trailing
 * dot, or longer than SYNC_EXT_MAX (not an extension a program opens
 * files by).
 */
static inline size_t
sync_name_ext(const char *in, size_t len)
{
	size_t i = len;

	while (i > 0 && in[i - 1] != '.')
		i--;
	if (i <= 1 || len - (i - 1) < 2 || len - (i - 1) > SYNC_EXT_MAX)
		return 0;
	return len - (i - 1);
}

/*
 * A document's file name, cut to SYNC_FILENAME_MAX bytes the way the
 * desktop that opens it will read it: the stem is cut (at a UTF-8
 * character boundary) and the last extension kept whole, so
 * "A...A.vbs.txt" stays a ".txt" and never becomes "A...A.vbs" (issue 16,
 * defect 2: the type a user double-clicks must be the type that was let
 * in).  When the last extension is too long to keep, every dot left in
 * the cut name becomes '_': a cut must never make up an extension.
 * out must hold SYNC_FILENAME_MAX + 1 bytes.
 */
static inline void
sync_name_filename(char *out, size_t outlen, const char *in, size_t len)
{
	char buf[SYNC_FILENAME_MAX + 1];
	size_t ext, stem, i;

	if (len <= SYNC_FILENAME_MAX) {
		sync_name_segment(out, outlen, in, len, SYNC_FILENAME_MAX);
		return;
	}
	if ((ext = sync_name_ext(in, len)) == 0) {
		sync_name_segment(out, outlen, in, len, SYNC_FILENAME_MAX);
		for (i = 0; out[i] != '\0'; i++)
			if (out[i] == '.')
				out[i] = '_';
		return;
	}
	stem = sync_name_cut(in, len - ext, SYNC_FILENAME_MAX - ext);
	memcpy(buf, in, stem);
	memcpy(buf + stem, in + len - ext, ext);
	sync_name_segment(out, outlen, buf, stem + ext, SYNC_FILENAME_MAX);
}

/*
 * Candidate `n` (1, 2, ...) for a document's file name:
 * "<id>-<filename>" and then "<id>-<stem> (n)<ext>".  The document id
 * makes the name unique in the dossier whatever the sender called two
 * files; the counter only serves when something else (a file the user
 * put there) already holds the name with other bytes.  The rule depends
 * on nothing but the document and the folder, so a repeated call walks
 * the same candidates and finds its own copy.
 */
static inline void
sync_name_file(char *out, size_t outlen, const struct postdoc_document *d,
    unsigned n)
{
	const char *src = d->filename != NULL && d->filename[0] != '\0' ?
	    d->filename : (d->stored_name != NULL ? d->stored_name : "");
	char name[SYNC_FILENAME_MAX + 1];
	const char *dot;
	size_t stem;

	sync_name_filename(name, sizeof(name), src, strlen(src));
	if (n <= 1) {
		snprintf(out, outlen, "%lld-%s", (long long)d->id, name);
		return;
	}
	dot = strrchr(name, '.');
	if (dot == NULL || dot == name || strlen(dot) > SYNC_EXT_MAX)
		dot = name + strlen(name);
	stem = (size_t)(dot - name);
	snprintf(out, outlen, "%lld-%.*s (%u)%s", (long long)d->id, (int)stem,
	    name, n, dot);
}

#endif

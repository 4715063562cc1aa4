/*
 * sanitize.h - turn decoded, attacker-controlled strings (filenames, header
 * values) into safe UTF-8 metadata.  Pure functions; no I/O, no allocation
 * except where a function says it returns a malloc'd string.
 */
#ifndef PD_SANITIZE_H
#define PD_SANITIZE_H

#include <stddef.h>

#include <jansson.h>

/*
 * Display/metadata name for an attachment.  `in` may hold NUL, CR, LF, C0
 * and C1 controls, invalid UTF-8, '/' '\\' ':' and Windows device names.
 * Result: valid UTF-8, basename only, no control or separator characters,
 * no leading '.' or '-', no trailing dots/spaces, reserved device names
 * prefixed with '_', at most maxlen bytes (cut at a character boundary,
 * extension kept), never empty ("attachment-<ordinal>" instead).
 * out must hold at least maxlen+1 bytes.
 */
void sanitize_filename(const char *in, size_t inlen, unsigned ordinal,
    size_t maxlen, char *out, size_t outlen);

/*
 * A header value for storage and display: valid UTF-8 (invalid sequences
 * read as Latin-1), CR/LF/TAB runs folded to one space, other C0/C1
 * controls, DEL, NEL, U+2028 and U+2029 removed, trimmed, capped at maxlen
 * bytes at a character boundary.  Returns a malloc'd string (never NULL).
 */
char *sanitize_header_value(const char *in, size_t inlen, size_t maxlen);

/* 1 if s (len bytes) is valid UTF-8 without overlongs or surrogates. */
int sanitize_utf8_valid(const char *s, size_t len);

/* A JSON string of s (NULL: null); bytes that are not UTF-8 make it an
 * ASCII copy with '?' for them.  Never NULL. */
json_t *sanitize_json_str(const char *s);

#endif

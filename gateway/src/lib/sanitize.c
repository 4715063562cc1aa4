/*
 * sanitize.c - owns the conversion of decoded, attacker-controlled strings
 * (attachment names, header values) into valid UTF-8 metadata that is safe
 * to store, log and show.  Pure functions: it never touches the file
 * system, and a sanitized name is display metadata only, never a path.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sanitize.h"
#include "util.h"

/*
 * Decode one code point at s (len > 0 bytes).  Well-formed UTF-8 (RFC 3629
 * section 4: no overlongs, no surrogates, <= U+10FFFF) is taken as such;
 * any other byte is read as Latin-1, so decoding never fails and an
 * overlong '/' (C0 AF) becomes U+00C0 U+00AF, never a separator.
 * Returns the number of bytes consumed.
 */
static size_t
sanitize_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2; c &= 0x1F; min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3; c &= 0x0F; min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4; c &= 0x07; min = 0x10000;
	} else
		goto latin1;
	if (len < n)
		goto latin1;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			goto latin1;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		goto latin1;
	*cp = c;
	return n;
latin1:
	*cp = s[0];
	return 1;
}

static size_t
sanitize_u8len(uint32_t cp)
{
	if (cp < 0x80)
		return 1;
	if (cp < 0x800)
		return 2;
	if (cp < 0x10000)
		return 3;
	return 4;
}

static size_t
sanitize_put(char *out, uint32_t cp)
{
	unsigned char *o = (unsigned char *)out;

	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * C0, DEL, C1 (which includes NEL U+0085) and the Unicode line/paragraph
 * separators: each can end or split a line in some consumer (log, header,
 * JSON, a terminal), so none survives into metadata.
 */
static int
sanitize_is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) ||
	    cp == 0x2028 || cp == 0x2029;
}

/*
 * Bidirectional overrides and marks let "invoice\u202Efdp.exe" display as
 * "invoiceexe.pdf" (the RTLO extension spoof); a file name never needs them.
 */
static int
sanitize_is_bidi(uint32_t cp)
{
	return cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
	    (cp >= 0x2066 && cp <= 0x2069);
}

/* Valid means: every byte decodes without the Latin-1 fallback. */
int
sanitize_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;
	uint32_t cp;

	while (i < len) {
		n = sanitize_next(p + i, len - i, &cp);
		if (n == 1 && p[i] >= 0x80)
			return 0;	/* fell back to Latin-1: invalid */
		i += n;
	}
	return 1;
}

/*
 * Map one code point of a file name: 0 drops it, otherwise the code point
 * to keep.  Characters Windows forbids in names (and ':' which selects an
 * NTFS alternate data stream) become '_' so the name stays readable.
 */
static uint32_t
sanitize_name_map(uint32_t cp)
{
	if (sanitize_is_control(cp) || sanitize_is_bidi(cp))
		return 0;
	if (cp == 0xFEFF)	/* zero-width no-break space: invisible */
		return 0;
	if (cp < 0x80 && strchr(":<>\"|?*", (int)cp) != NULL)
		return '_';
	return cp;
}

/* Where the kept part of one path component lies, in input offsets. */
struct sanitize_scan {
	size_t start, end;	/* content after leading/trailing trims */
	size_t dot;		/* last '.' inside [start,end), or SIZE_MAX */
	size_t kept;		/* code points kept (before the trims) */
	size_t out_dot, out_end; /* output bytes before dot / up to end */
};

/*
 * One forward pass over a component: leading '.', '-' and ' ' go (hidden
 * files, options to a shell command), trailing '.' and ' ' go (Windows
 * drops them silently, so "evil.exe. ." would be "evil.exe" there).
 */
static void
sanitize_scan(const unsigned char *s, size_t len, struct sanitize_scan *sc)
{
	size_t i = 0, n, olen = 0, pending = SIZE_MAX, pending_out = 0;
	int content = 0;
	uint32_t cp;

	memset(sc, 0, sizeof(*sc));
	sc->dot = SIZE_MAX;
	while (i < len) {
		n = sanitize_next(s + i, len - i, &cp);
		cp = sanitize_name_map(cp);
		if (cp != 0)
			sc->kept++;
		if (cp == 0 || (!content && (cp == '.' || cp == '-' ||
		    cp == ' '))) {
			i += n;
			continue;
		}
		if (!content) {
			content = 1;
			sc->start = i;
		}
		if (cp == '.') {
			pending = i;
			pending_out = olen;
		}
		olen += sanitize_u8len(cp);
		if (cp != '.' && cp != ' ') {
			sc->end = i + n;
			sc->out_end = olen;
			sc->dot = pending;
			sc->out_dot = pending_out;
		}
		i += n;
	}
	if (!content)
		sc->start = sc->end = 0;
}

/* Emit the kept code points of s[from,to) into out, at most cap bytes. */
static size_t
sanitize_emit(const unsigned char *s, size_t from, size_t to, char *out,
    size_t cap)
{
	size_t i = from, n, o = 0;
	uint32_t cp;

	while (i < to) {
		n = sanitize_next(s + i, to - i, &cp);
		i += n;
		cp = sanitize_name_map(cp);
		if (cp == 0)
			continue;
		if (o + sanitize_u8len(cp) > cap)
			break;
		o += sanitize_put(out + o, cp);
	}
	return o;
}

/*
 * Windows device names are devices in every directory and with any
 * extension ("con.txt" opens the console), compared case-insensitively
 * on the part before the first dot, trailing spaces ignored.
 */
static int
sanitize_reserved(const char *name)
{
	static const char *const dev[] = { "CON", "PRN", "AUX", "NUL" };
	size_t n = strcspn(name, "."), i;
	char stem[8];

	while (n > 0 && name[n - 1] == ' ')
		n--;
	if (n < 3 || n > 6)
		return 0;
	for (i = 0; i < n; i++)
		stem[i] = (char)((name[i] >= 'a' && name[i] <= 'z') ?
		    name[i] - 32 : name[i]);
	stem[n] = '\0';
	for (i = 0; i < 4; i++)
		if (strcmp(stem, dev[i]) == 0)
			return 1;
	if (strncmp(stem, "COM", 3) != 0 && strncmp(stem, "LPT", 3) != 0)
		return 0;
	/* COM1-9, LPT1-9, and the superscript digits Windows also maps. */
	if (n == 4)
		return stem[3] >= '1' && stem[3] <= '9';
	return n == 5 && (unsigned char)stem[3] == 0xC2 &&
	    ((unsigned char)stem[4] == 0xB9 || (unsigned char)stem[4] == 0xB2 ||
	    (unsigned char)stem[4] == 0xB3);
}

/*
 * Build the name from one component into out (room for lim bytes + NUL):
 * a stem cut at a character boundary, then the extension when it is short
 * enough to be one (<= 16 bytes after the dot) and fits.
 */
static size_t
sanitize_build(const unsigned char *s, const struct sanitize_scan *sc,
    char *out, size_t lim)
{
	size_t o, i, extlen = 0, stem_to = sc->end;

	if (sc->dot != SIZE_MAX) {
		extlen = sc->out_end - sc->out_dot;
		if (extlen - 1 > 16 || extlen >= lim || sc->out_end <= lim)
			extlen = 0;
		else
			stem_to = sc->dot;
	}
	o = sanitize_emit(s, sc->start, stem_to, out, lim - extlen);
	/* A cut stem may now end in dots or spaces: trim again. */
	while (o > 0 && (out[o - 1] == '.' || out[o - 1] == ' '))
		o--;
	/* A cut that could not keep the last extension must not make one
	 * up: "A...A.vbs.<20 letters>" would be stored as "A...A.vbs". */
	if (extlen == 0 && sc->out_end > lim)
		for (i = 0; i < o; i++)
			if (out[i] == '.')
				out[i] = '_';
	if (extlen > 0 && o > 0)
		o += sanitize_emit(s, sc->dot, sc->end, out + o, extlen);
	out[o] = '\0';
	return o;
}

/* Pick the basename: the last component that keeps any character. */
static size_t
sanitize_basename(const unsigned char *s, size_t len,
    struct sanitize_scan *sc)
{
	size_t to = len, from;

	for (;;) {
		from = to;
		while (from > 0 && s[from - 1] != '/' && s[from - 1] != '\\')
			from--;
		sanitize_scan(s + from, to - from, sc);
		if (sc->kept > 0 || from == 0)
			break;
		to = from - 1;	/* skip the separator: "report.pdf/" */
	}
	return from;
}

void
sanitize_filename(const char *in, size_t inlen, unsigned ordinal,
    size_t maxlen, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)(in ? in : "");
	struct sanitize_scan sc;
	size_t from, lim, n = 0;
	char tmp[32];
	int k;

	if (outlen == 0)
		return;
	lim = maxlen < outlen - 1 ? maxlen : outlen - 1;
	if (in == NULL)
		inlen = 0;
	from = sanitize_basename(s, inlen, &sc);
	if (sc.end > sc.start && lim > 0) {
		n = sanitize_build(s + from, &sc, out, lim);
		if (n > 0 && sanitize_reserved(out)) {
			/* Room for the '_' prefix: rebuild one byte shorter. */
			n = lim > 1 ? sanitize_build(s + from, &sc, out + 1,
			    lim - 1) : 0;
			if (n > 0) {
				out[0] = '_';
				n++;
			}
		}
	}
	if (n > 0)
		return;
	/* Nothing left ("", ".", "..", only controls): a generated name,
	 * cut to the limit if the limit is tiny. */
	k = snprintf(tmp, sizeof(tmp), "attachment-%u", ordinal);
	n = (size_t)k < lim ? (size_t)k : lim;
	memcpy(out, tmp, n);
	out[n] = '\0';
}

/* Whitespace that RFC 5322 section 3.2.2 folding may leave in a value. */
static int
sanitize_is_fws(uint32_t cp)
{
	return cp == '\r' || cp == '\n' || cp == '\t' || cp == ' ';
}

char *
sanitize_header_value(const char *in, size_t inlen, size_t maxlen)
{
	const unsigned char *s = (const unsigned char *)(in ? in : "");
	size_t i = 0, n, o = 0, cap, spaces = 0, need;
	int folded = 0;
	uint32_t cp;
	char *out;

	if (in == NULL)
		inlen = 0;
	/* Output never exceeds maxlen, nor 2 bytes per input byte. */
	cap = inlen <= maxlen / 2 ? inlen * 2 : maxlen;
	out = malloc(cap + 1);
	if (out == NULL)
		abort();	/* out of memory is not a peer's doing */
	while (i < inlen) {
		n = sanitize_next(s + i, inlen - i, &cp);
		i += n;
		if (sanitize_is_fws(cp)) {
			spaces++;
			folded |= cp != ' ';
			continue;
		}
		if (sanitize_is_control(cp))
			continue;
		/* A run with CR, LF or TAB is folding: one space. */
		if (o == 0)
			spaces = 0;	/* leading whitespace is trimmed */
		else if (folded)
			spaces = 1;
		need = spaces + sanitize_u8len(cp);
		if (o + need > cap)
			break;
		memset(out + o, ' ', spaces);
		o += spaces;
		o += sanitize_put(out + o, cp);
		spaces = 0;
		folded = 0;
	}
	out[o] = '\0';
	return out;
}

json_t *
sanitize_json_str(const char *s)
{
	json_t *j;
	char *tmp;

	if (s == NULL)
		return json_null();
	if (sanitize_utf8_valid(s, strlen(s)) && (j = json_string(s)) != NULL)
		return j;
	tmp = xmalloc(strlen(s) + 1);
	pd_ascii_clean(tmp, strlen(s) + 1, s);
	j = json_string(tmp);
	free(tmp);
	return j != NULL ? j : json_null();
}

/*
 * mustache.c - the Mustache renderer: a linear scanner that turns a template
 * into a flat token list (standalone lines and set delimiters are settled
 * while scanning), then a renderer that walks the tokens over a jansson
 * context stack.  It never parses a rendered value as a template, never uses
 * data as a format, and bounds section nesting, partial depth and output.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mustache.h"
#include "util.h"

#define MS_SECTION_MAX 64	/* nested sections in one template */
#define MS_PARTIAL_MAX 32	/* partials within partials */
#define MS_DELIM_MAX 16		/* bytes of a custom delimiter */
#define MS_NAME_MAX 128		/* bytes of a tag name */
#define MS_OUT_MAX (16u << 20)	/* a mail body, not a denial of service */
/*
 * Tokens visited in one render.  Sections over lists nest: 40 empty
 * {{#list}} over a 2-item list visit 2^40 tokens and write nothing, so
 * the output bound never stops them (found by fuzz_mustache).  A
 * newsletter listing 1,000 items of 20 tags each is 20,000 visits.
 */
#define MS_STEPS_MAX (1u << 22)

enum ms_kind { MS_TEXT, MS_VAR, MS_RAW, MS_SECTION, MS_INVERTED, MS_PARTIAL };

struct ms_tok {
	enum ms_kind kind;
	const char *s;		/* text, or the tag name (not NUL-terminated) */
	size_t len;
	size_t end;		/* sections: index of the token after the close */
	const char *indent;	/* standalone partials: the line's indentation */
	size_t indent_len;
};

struct ms_tpl {
	struct ms_tok *tok;
	size_t n, cap;
};

struct ms_parser {
	const char *src;
	char otag[MS_DELIM_MAX + 1], ctag[MS_DELIM_MAX + 2];
	size_t olen, clen;
	const char *lc_pos;	/* newlines are counted up to here... */
	size_t lc_line;		/* ...and this is the line there */
	size_t open[MS_SECTION_MAX];	/* token index of open sections */
	size_t open_line[MS_SECTION_MAX];
	size_t depth;
	struct ms_tpl *t;
	char *err;
};

struct ms_buf {
	char *s;
	size_t len, cap;
};

struct ms_render {
	json_t **stack;		/* the context stack, borrowed values */
	size_t n, cap;
	mustache_partial_fn partial;
	void *pctx;
	struct ms_buf out;
	int pdepth;
	size_t steps;		/* tokens visited, bounded by MS_STEPS_MAX */
	char *err;
};

/* ---- scanning ---- */

/* Line of ptr; ptr only moves forward, so counting stays linear. */
static size_t
ms_line(struct ms_parser *p, const char *ptr)
{
	for (; p->lc_pos < ptr; p->lc_pos++)
		if (*p->lc_pos == '\n')
			p->lc_line++;
	return p->lc_line;
}

static struct ms_tok *
ms_push_tok(struct ms_tpl *t, enum ms_kind kind, const char *s, size_t len)
{
	struct ms_tok *k;

	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 32;
		t->tok = xrealloc(t->tok, t->cap * sizeof(*t->tok));
	}
	k = &t->tok[t->n++];
	memset(k, 0, sizeof(*k));
	k->kind = kind;
	k->s = s;
	k->len = len;
	return k;
}

static void
ms_trim(const char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

static int
ms_check_name(struct ms_parser *p, const char *tag, const char *s,
    size_t len)
{
	size_t i;

	if (len == 0) {
		pd_err(p->err, "line %zu: empty tag", ms_line(p, tag));
		return -1;
	}
	if (len > MS_NAME_MAX) {
		pd_err(p->err, "line %zu: tag name longer than %d bytes",
		    ms_line(p, tag), MS_NAME_MAX);
		return -1;
	}
	for (i = 0; i < len; i++)
		if (isspace((unsigned char)s[i])) {
			pd_err(p->err, "line %zu: tag name contains a space",
			    ms_line(p, tag));
			return -1;
		}
	return 0;
}

/* {{=<% %>=}}: two delimiters, no whitespace or '=' inside either. */
static int
ms_set_delims(struct ms_parser *p, const char *tag, const char *s, size_t len)
{
	size_t a = 0, b, c;

	ms_trim(&s, &len);
	while (a < len && !isspace((unsigned char)s[a]) && s[a] != '=')
		a++;
	b = a;
	while (b < len && isspace((unsigned char)s[b]))
		b++;
	for (c = b; c < len; c++)
		if (isspace((unsigned char)s[c]) || s[c] == '=')
			break;
	if (a == 0 || a > MS_DELIM_MAX || b == a || c != len || c == b ||
	    c - b > MS_DELIM_MAX) {
		pd_err(p->err, "line %zu: bad delimiter change",
		    ms_line(p, tag));
		return -1;
	}
	memcpy(p->otag, s, a);
	p->otag[a] = '\0';
	p->olen = a;
	memcpy(p->ctag, s + b, c - b);
	p->ctag[c - b] = '\0';
	p->clen = c - b;
	return 0;
}

static int
ms_open_section(struct ms_parser *p, const char *tag, enum ms_kind kind,
    const char *name, size_t len)
{
	if (p->depth == MS_SECTION_MAX) {
		pd_err(p->err, "line %zu: sections nested deeper than %d",
		    ms_line(p, tag), MS_SECTION_MAX);
		return -1;
	}
	p->open_line[p->depth] = ms_line(p, tag);
	p->open[p->depth++] = p->t->n;
	ms_push_tok(p->t, kind, name, len);
	return 0;
}

static int
ms_close_section(struct ms_parser *p, const char *tag, const char *name,
    size_t len)
{
	struct ms_tok *k;

	if (p->depth == 0) {
		pd_err(p->err, "line %zu: closing tag '%.*s' without a section",
		    ms_line(p, tag), (int)len, name);
		return -1;
	}
	k = &p->t->tok[p->open[p->depth - 1]];
	if (k->len != len || memcmp(k->s, name, len) != 0) {
		pd_err(p->err, "line %zu: closing tag '%.*s' does not match "
		    "section '%.*s' opened on line %zu", ms_line(p, tag),
		    (int)len, name, (int)k->len, k->s,
		    p->open_line[p->depth - 1]);
		return -1;
	}
	k->end = p->t->n;
	p->depth--;
	return 0;
}

/*
 * Standalone rule: a section, inverted, close, comment, partial or
 * delimiter tag alone on its line (only spaces/tabs around it) takes the
 * whole line with it, newline included.  Returns the line's start (the
 * indentation begins there) and sets *next past the line, or NULL.
 * Both scans stop at the first non-blank byte, so the whole pass stays
 * linear.
 */
static const char *
ms_standalone(const char *src, const char *tag, const char *tag_end,
    const char **next)
{
	const char *ls = tag, *te = tag_end;

	while (ls > src && (ls[-1] == ' ' || ls[-1] == '\t'))
		ls--;
	if (ls != src && ls[-1] != '\n')
		return NULL;
	while (*te == ' ' || *te == '\t')
		te++;
	if (*te == '\n')
		te++;
	else if (te[0] == '\r' && te[1] == '\n')
		te += 2;
	else if (*te != '\0')
		return NULL;
	*next = te;
	return ls;
}

/* Finds the end of the tag starting at `tag`; sets *cs, *cl to its
 * content and returns the byte after the closing delimiter. */
static const char *
ms_tag_end(struct ms_parser *p, const char *tag, const char **cs,
    size_t *cl)
{
	char close[MS_DELIM_MAX + 2];
	const char *q = tag + p->olen, *e;
	char sig = *q;

	if (sig == '{' || sig == '=') {
		close[0] = sig == '{' ? '}' : '=';
		memcpy(close + 1, p->ctag, p->clen + 1);
	} else {
		memcpy(close, p->ctag, p->clen + 1);
	}
	e = strstr(q, close);
	if (e == NULL)
		return NULL;
	*cs = q;
	*cl = (size_t)(e - q);
	return e + strlen(close);
}

static int
ms_tag(struct ms_parser *p, const char *tag, const char *cs, size_t cl,
    const char *indent, size_t indent_len)
{
	char sig = *cs;
	const char *name = cs + 1;
	size_t len = cl ? cl - 1 : 0;
	struct ms_tok *k;

	if (sig == '!')
		return 0;
	if (sig == '=')
		return ms_set_delims(p, tag, name, len);
	if (strchr("{&#^/>", sig) == NULL || sig == '\0') {
		name = cs;
		len = cl;
	}
	ms_trim(&name, &len);
	if (ms_check_name(p, tag, name, len) < 0)
		return -1;
	switch (sig) {
	case '{':
	case '&':
		ms_push_tok(p->t, MS_RAW, name, len);
		return 0;
	case '#':
		return ms_open_section(p, tag, MS_SECTION, name, len);
	case '^':
		return ms_open_section(p, tag, MS_INVERTED, name, len);
	case '/':
		return ms_close_section(p, tag, name, len);
	case '>':
		k = ms_push_tok(p->t, MS_PARTIAL, name, len);
		k->indent = indent;
		k->indent_len = indent_len;
		return 0;
	default:
		ms_push_tok(p->t, MS_VAR, name, len);
		return 0;
	}
}

static void
ms_text(struct ms_tpl *t, const char *s, const char *e)
{
	if (e > s)
		ms_push_tok(t, MS_TEXT, s, (size_t)(e - s));
}

/* One pass over src; the tokens point into src, which must outlive t. */
static int
ms_parse(const char *src, struct ms_tpl *t, char *err)
{
	struct ms_parser p;
	const char *pos = src, *tag, *cs, *end, *ls, *next;
	size_t cl;

	memset(&p, 0, sizeof(p));
	p.src = src;
	p.lc_pos = src;
	p.lc_line = 1;
	p.t = t;
	p.err = err;
	strcpy(p.otag, "{{");
	strcpy(p.ctag, "}}");
	p.olen = p.clen = 2;
	while ((tag = strstr(pos, p.otag)) != NULL) {
		end = ms_tag_end(&p, tag, &cs, &cl);
		if (end == NULL) {
			pd_err(err, "line %zu: unclosed tag", ms_line(&p, tag));
			return -1;
		}
		ls = NULL;
		if (cl > 0 && strchr("#^/!>=", *cs) != NULL)
			ls = ms_standalone(src, tag, end, &next);
		ms_text(t, pos, ls ? ls : tag);
		if (ms_tag(&p, tag, cs, cl, ls, ls ? (size_t)(tag - ls) : 0) < 0)
			return -1;
		pos = ls ? next : end;
	}
	ms_text(t, pos, pos + strlen(pos));
	if (p.depth > 0) {
		struct ms_tok *k = &t->tok[p.open[p.depth - 1]];

		pd_err(err, "line %zu: section '%.*s' is never closed",
		    p.open_line[p.depth - 1], (int)k->len, k->s);
		return -1;
	}
	return 0;
}

/* ---- rendering ---- */

static int
ms_put(struct ms_render *r, const char *s, size_t len)
{
	struct ms_buf *b = &r->out;

	if (len > MS_OUT_MAX - b->len) {
		pd_err(r->err, "rendered output larger than %u bytes",
		    MS_OUT_MAX);
		return -1;
	}
	if (b->len + len + 1 > b->cap) {
		while (b->len + len + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 1024;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, len);
	b->len += len;
	b->s[b->len] = '\0';
	return 0;
}

/* The spec's set: & " < >.  NUL bytes (jansson allows \u0000) are dropped
 * so a value can never cut the C string short. */
static int
ms_put_value(struct ms_render *r, const char *s, size_t len, int escape)
{
	size_t i, run = 0;
	const char *rep;

	for (i = 0; i < len; i++) {
		switch (s[i]) {
		case '&': rep = escape ? "&amp;" : NULL; break;
		case '"': rep = escape ? "&quot;" : NULL; break;
		case '<': rep = escape ? "&lt;" : NULL; break;
		case '>': rep = escape ? "&gt;" : NULL; break;
		case '\0': rep = ""; break;
		default: rep = NULL; break;
		}
		if (rep == NULL)
			continue;
		if (ms_put(r, s + run, i - run) < 0 ||
		    ms_put(r, rep, strlen(rep)) < 0)
			return -1;
		run = i + 1;
	}
	return ms_put(r, s + run, len - run);
}

/* Shortest %g that reads back as the same double: 1.21, not 1.2099... */
static void
ms_real(char *buf, size_t len, double d)
{
	int prec;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

static int
ms_interpolate(struct ms_render *r, json_t *v, int escape)
{
	char num[64];

	if (v == NULL)		/* a miss renders as nothing */
		return 0;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return ms_put_value(r, json_string_value(v),
		    json_string_length(v), escape);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		return ms_put(r, num, strlen(num));
	case JSON_REAL:
		ms_real(num, sizeof(num), json_real_value(v));
		return ms_put(r, num, strlen(num));
	case JSON_TRUE:
		return ms_put(r, "true", 4);
	case JSON_FALSE:
		return ms_put(r, "false", 5);
	default:		/* null, objects and arrays render as nothing */
		return 0;
	}
}

/*
 * Name resolution per the spec: "." is the top of the stack; otherwise the
 * first part of a dotted name is looked up from the top of the stack down,
 * and the rest only inside what it found (a broken chain is a miss, never a
 * fall back to outer contexts).
 */
static json_t *
ms_lookup(struct ms_render *r, const char *name, size_t len)
{
	char key[MS_NAME_MAX + 1];
	json_t *v = NULL;
	size_t i, seg;
	int first = 1;

	if (len == 1 && name[0] == '.')
		return r->stack[r->n - 1];
	while (len > 0) {
		for (seg = 0; seg < len && name[seg] != '.'; seg++)
			;
		if (seg == 0)
			return NULL;
		memcpy(key, name, seg);
		key[seg] = '\0';
		if (first) {
			for (i = r->n; i-- > 0 && v == NULL;)
				v = json_object_get(r->stack[i], key);
			first = 0;
		} else {
			v = json_object_get(v, key);
		}
		if (v == NULL)
			return NULL;
		name += seg;
		len -= seg;
		if (len == 0)
			break;
		name++;		/* the '.' */
		if (--len == 0)
			return NULL;	/* "a." ends on an empty part */
	}
	return v;
}

/* false, null, a miss, an empty list, and (as !!"" in the spec's own
 * example) an empty string. */
static int
ms_falsey(json_t *v)
{
	return v == NULL || json_is_false(v) || json_is_null(v) ||
	    (json_is_array(v) && json_array_size(v) == 0) ||
	    (json_is_string(v) && json_string_length(v) == 0);
}

static int ms_render_range(struct ms_render *, const struct ms_tpl *,
    size_t, size_t);

static void
ms_push_ctx(struct ms_render *r, json_t *v)
{
	if (r->n == r->cap) {
		r->cap *= 2;
		r->stack = xrealloc(r->stack, r->cap * sizeof(*r->stack));
	}
	r->stack[r->n++] = v;
}

static int
ms_section(struct ms_render *r, const struct ms_tpl *t, size_t i)
{
	const struct ms_tok *k = &t->tok[i];
	json_t *v = ms_lookup(r, k->s, k->len), *el;
	size_t j;
	int rc = 0;

	if (k->kind == MS_INVERTED)
		return ms_falsey(v) ? ms_render_range(r, t, i + 1, k->end) : 0;
	if (ms_falsey(v))
		return 0;
	if (!json_is_array(v)) {
		ms_push_ctx(r, v);
		rc = ms_render_range(r, t, i + 1, k->end);
		r->n--;
		return rc;
	}
	json_array_foreach(v, j, el) {
		ms_push_ctx(r, el);
		rc = ms_render_range(r, t, i + 1, k->end);
		r->n--;
		if (rc < 0)
			break;
	}
	return rc;
}

/* The partial's text with `indent` after every newline that is not the
 * last byte (and before the first line): the spec indents the template,
 * not the rendered values. */
static char *
ms_indent(const char *text, const char *indent, size_t ilen)
{
	size_t n = 0, len = strlen(text), i, o = 0;
	char *out;

	for (i = 0; i < len; i++)
		if (text[i] == '\n' && i + 1 < len)
			n++;
	out = xmalloc(len + (n + 1) * ilen + 1);
	memcpy(out, indent, ilen);
	o = ilen;
	for (i = 0; i < len; i++) {
		out[o++] = text[i];
		if (text[i] == '\n' && i + 1 < len) {
			memcpy(out + o, indent, ilen);
			o += ilen;
		}
	}
	out[o] = '\0';
	return out;
}

static int
ms_partial(struct ms_render *r, const struct ms_tok *k)
{
	char name[MS_NAME_MAX + 1], perr[PD_ERRLEN];
	struct ms_tpl pt = { NULL, 0, 0 };
	char *text, *src;
	int rc;

	if (r->partial == NULL)
		return 0;
	memcpy(name, k->s, k->len);
	name[k->len] = '\0';
	if (r->pdepth >= MS_PARTIAL_MAX) {
		pd_err(r->err, "partial '%s': partials nested deeper than %d",
		    name, MS_PARTIAL_MAX);
		return -1;
	}
	if ((text = r->partial(name, r->pctx)) == NULL)
		return 0;	/* the spec: an unknown partial is empty */
	src = k->indent_len ? ms_indent(text, k->indent, k->indent_len) : text;
	if (src != text)
		free(text);
	if ((rc = ms_parse(src, &pt, perr)) == 0) {
		r->pdepth++;
		rc = ms_render_range(r, &pt, 0, pt.n);
		r->pdepth--;
	} else {
		pd_err(r->err, "partial '%s': %s", name, perr);
	}
	free(pt.tok);
	free(src);
	return rc;
}

static int
ms_render_range(struct ms_render *r, const struct ms_tpl *t, size_t from,
    size_t to)
{
	const struct ms_tok *k;
	size_t i;
	int rc = 0;

	for (i = from; i < to && rc == 0; i++) {
		k = &t->tok[i];
		if (++r->steps > MS_STEPS_MAX) {
			pd_err(r->err, "template too costly to render (more "
			    "than %u tags and texts visited: sections nested "
			    "over lists?)", MS_STEPS_MAX);
			return -1;
		}
		switch (k->kind) {
		case MS_TEXT:
			rc = ms_put(r, k->s, k->len);
			break;
		case MS_VAR:
		case MS_RAW:
			rc = ms_interpolate(r, ms_lookup(r, k->s, k->len),
			    k->kind == MS_VAR);
			break;
		case MS_SECTION:
		case MS_INVERTED:
			rc = ms_section(r, t, i);
			i = k->end - 1;
			break;
		case MS_PARTIAL:
			rc = ms_partial(r, k);
			break;
		}
	}
	return rc;
}

char *
mustache_render(const char *tmpl, json_t *data, mustache_partial_fn partial,
    void *partial_ctx, char *err)
{
	struct ms_tpl t = { NULL, 0, 0 };
	struct ms_render r;
	int rc;

	if (ms_parse(tmpl, &t, err) < 0) {
		free(t.tok);
		return NULL;
	}
	memset(&r, 0, sizeof(r));
	r.cap = 16;
	r.stack = xmalloc(r.cap * sizeof(*r.stack));
	r.stack[r.n++] = data;
	r.partial = partial;
	r.pctx = partial_ctx;
	r.err = err;
	rc = ms_put(&r, "", 0);
	if (rc == 0)
		rc = ms_render_range(&r, &t, 0, t.n);
	free(t.tok);
	free(r.stack);
	if (rc < 0) {
		free(r.out.s);
		return NULL;
	}
	return r.out.s;
}

/*
 * markdown.c - a campaign body in Markdown to the message's HTML and
 * plain-text parts, both from one cmark parse tree.  The HTML is cmark's
 * safe renderer (raw HTML and dangerous link schemes dropped); the text
 * is our own walk of the tree, wrapped for a mail reader.  Never sets
 * CMARK_OPT_UNSAFE; never reads or writes anything but memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmark.h>

#include "lib/sanitize.h"
#include "lib/util.h"
#include "markdown.h"

/*
 * Containers (quotes, lists, items) deeper than this still render, but
 * indent no further: the prefix of every line is bounded, so a hostile
 * "> > > ..." cannot make the text part quadratic in the input.
 */
#define MD_DEPTH 16
#define MD_LINKS 8		/* a link's text may hold an image: 2 */

struct md_buf {
	char *p;
	size_t n, cap;
};

struct md_frame {
	char first[16];		/* the container's first line: "- ", "> " */
	char rest[16];		/* its other lines: "  ", "> " */
	int used;		/* first was written */
	int list;		/* a list: numbers its items */
	int ordered, paren;
	long next;		/* the next item's number */
};

struct md_text {
	struct md_buf out;
	struct md_buf inl;	/* the paragraph or heading being read */
	struct md_frame fr[MD_DEPTH];
	int depth;		/* containers open (may pass MD_DEPTH) */
	int need_blank;		/* a blank line before the next block */
	size_t link[MD_LINKS];
	int nlink;
};

static void
md_put(struct md_buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void
md_puts(struct md_buf *b, const char *s)
{
	md_put(b, s, strlen(s));
}

/* Columns of n bytes of UTF-8: its characters (no wide glyphs here). */
static size_t
md_cols(const char *s, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			c++;
	return c;
}

static int
md_open(const struct md_text *t)
{
	return t->depth < MD_DEPTH ? t->depth : MD_DEPTH;
}

/* The prefix of the next line, without writing it. */
static size_t
md_prefix_cols(const struct md_text *t)
{
	size_t c = 0;
	int i;

	for (i = 0; i < md_open(t); i++)
		c += strlen(t->fr[i].used ? t->fr[i].rest : t->fr[i].first);
	return c;
}

/* One line: the containers' prefix (a new item's marker once), text,
 * no trailing blanks. */
static void
md_line(struct md_text *t, const char *s, size_t n)
{
	int i;

	for (i = 0; i < md_open(t); i++) {
		md_puts(&t->out, t->fr[i].used ? t->fr[i].rest :
		    t->fr[i].first);
		t->fr[i].used = 1;
	}
	md_put(&t->out, s, n);
	while (t->out.n > 0 && t->out.p[t->out.n - 1] == ' ')
		t->out.n--;
	md_put(&t->out, "\n", 1);
}

/* Before a block: the blank line that separates it from the one before,
 * inside the containers already started ("> " of a quote), not a new
 * item's marker. */
static void
md_block_start(struct md_text *t)
{
	int i;

	if (t->need_blank && t->out.n > 0) {
		for (i = 0; i < md_open(t) && t->fr[i].used; i++)
			md_puts(&t->out, t->fr[i].rest);
		while (t->out.n > 0 && t->out.p[t->out.n - 1] == ' ')
			t->out.n--;
		md_put(&t->out, "\n", 1);
	}
	t->need_blank = 0;
}

/* A block in an item of a tight list is followed by no blank line. */
static int
md_tight(cmark_node *n)
{
	cmark_node *p = cmark_node_parent(n);
	cmark_node *g = p != NULL ? cmark_node_parent(p) : NULL;

	return p != NULL && cmark_node_get_type(p) == CMARK_NODE_ITEM &&
	    g != NULL && cmark_node_get_list_tight(g);
}

/*
 * The inline text in lines of at most MARKDOWN_WIDTH columns, prefix
 * included; a word longer than that (a URL) has a line of its own.  A
 * hard break ("\n") ends a line.  Returns the widest line's columns.
 */
static size_t
md_wrap(struct md_text *t, const char *s, size_t n)
{
	struct md_buf line = { NULL, 0, 0 };
	size_t i = 0, w, lc = 0, widest = 0;

	while (i <= n) {
		if (i == n || s[i] == '\n') {
			if (line.n > 0 || (i < n && lc == 0)) {
				md_line(t, line.p ? line.p : "", line.n);
				widest = lc > widest ? lc : widest;
			}
			line.n = 0;
			lc = 0;
			i++;
			continue;
		}
		if (s[i] == ' ') {
			i++;
			continue;
		}
		for (w = i; w < n && s[w] != ' ' && s[w] != '\n'; w++)
			;
		if (line.n > 0 && md_prefix_cols(t) + lc + 1 +
		    md_cols(s + i, w - i) > MARKDOWN_WIDTH) {
			md_line(t, line.p, line.n);
			widest = lc > widest ? lc : widest;
			line.n = 0;
			lc = 0;
		}
		if (line.n > 0) {
			md_put(&line, " ", 1);
			lc++;
		}
		md_put(&line, s + i, w - i);
		lc += md_cols(s + i, w - i);
		i = w;
	}
	free(line.p);
	return widest;
}

/* cmark's own rule (safe mode): these schemes never become a link. */
static int
md_url_safe(const char *u)
{
	static const char *const bad[] = { "javascript:", "vbscript:",
	    "file:" };
	static const char *const img[] = { "data:image/png", "data:image/gif",
	    "data:image/jpeg", "data:image/webp" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strncasecmp(u, bad[i], strlen(bad[i])) == 0)
			return 0;
	if (strncasecmp(u, "data:", 5) != 0)
		return 1;
	for (i = 0; i < sizeof(img) / sizeof(img[0]); i++)
		if (strncasecmp(u, img[i], strlen(img[i])) == 0)
			return 1;
	return 0;
}

/* A link: "text <url>", the url alone when it is the text (an autolink);
 * an image: "[alt] <url>".  An unsafe url is left out, as in the HTML. */
static void
md_link_exit(struct md_text *t, cmark_node *n, int image)
{
	const char *url = cmark_node_get_url(n);
	size_t start;
	char *txt;

	if (--t->nlink >= MD_LINKS)
		return;
	start = t->link[t->nlink];
	if (url == NULL || url[0] == '\0' || !md_url_safe(url))
		return;
	txt = xstrndup(t->inl.p + start, t->inl.n - start);
	t->inl.n = start;
	if (image && txt[0] != '\0') {
		md_puts(&t->inl, "[");
		md_puts(&t->inl, txt);
		md_puts(&t->inl, "] ");
	} else if (!image && strcmp(txt, url) != 0 &&
	    !(strncasecmp(url, "mailto:", 7) == 0 && strcmp(txt, url + 7) ==
	    0)) {
		md_puts(&t->inl, txt);
		md_puts(&t->inl, " ");
	}
	md_puts(&t->inl, "<");
	md_puts(&t->inl, url);
	md_puts(&t->inl, ">");
	free(txt);
}

static void
md_push(struct md_text *t, cmark_node *n)
{
	struct md_frame *f, *l;
	cmark_node_type ty = cmark_node_get_type(n);

	if (t->depth++ >= MD_DEPTH)
		return;
	f = &t->fr[t->depth - 1];
	memset(f, 0, sizeof(*f));
	if (ty == CMARK_NODE_BLOCK_QUOTE) {
		snprintf(f->first, sizeof(f->first), "> ");
		snprintf(f->rest, sizeof(f->rest), "> ");
	} else if (ty == CMARK_NODE_LIST) {
		f->list = 1;
		f->used = 1;
		f->ordered = cmark_node_get_list_type(n) == CMARK_ORDERED_LIST;
		f->paren = cmark_node_get_list_delim(n) == CMARK_PAREN_DELIM;
		f->next = cmark_node_get_list_start(n);
	} else if (t->depth >= 2 && (l = &t->fr[t->depth - 2])->list) {
		if (l->ordered)
			snprintf(f->first, sizeof(f->first), "%ld%c ",
			    l->next++ % 1000000000L, l->paren ? ')' : '.');
		else
			snprintf(f->first, sizeof(f->first), "- ");
		memset(f->rest, ' ', strlen(f->first));
	}
}

static void
md_pop(struct md_text *t)
{
	if (t->depth <= MD_DEPTH && t->depth > 0 && !t->fr[t->depth - 1].used)
		md_line(t, "", 0);	/* an empty item still shows */
	t->depth--;
}

static void
md_leaf(struct md_text *t, cmark_node *n)
{
	const char *lit = cmark_node_get_literal(n), *p, *e;

	switch (cmark_node_get_type(n)) {
	case CMARK_NODE_TEXT:
	case CMARK_NODE_CODE:
		md_puts(&t->inl, lit != NULL ? lit : "");
		break;
	case CMARK_NODE_SOFTBREAK:
		md_put(&t->inl, " ", 1);
		break;
	case CMARK_NODE_LINEBREAK:
		md_put(&t->inl, "\n", 1);
		break;
	case CMARK_NODE_CODE_BLOCK:
		md_block_start(t);
		for (p = lit != NULL ? lit : ""; *p != '\0'; p = e + (*e != 0)) {
			struct md_buf l = { NULL, 0, 0 };

			e = strchr(p, '\n');
			if (e == NULL)
				e = p + strlen(p);
			md_puts(&l, "    ");
			md_put(&l, p, (size_t)(e - p));
			md_line(t, l.p, l.n);
			free(l.p);
		}
		t->need_blank = !md_tight(n);
		break;
	case CMARK_NODE_THEMATIC_BREAK:
		md_block_start(t);
		md_line(t, "------------------------", 24);
		t->need_blank = !md_tight(n);
		break;
	default:	/* raw HTML (block or inline) never reaches the text */
		break;
	}
}

/* A heading: level 1 and 2 underlined (= and -), others "### text". */
static void
md_heading_exit(struct md_text *t, cmark_node *n)
{
	int level = cmark_node_get_heading_level(n);
	size_t w;
	char *u;

	if (level >= 3) {
		char *txt = xstrndup(t->inl.p ? t->inl.p : "", t->inl.n);

		t->inl.n = 0;
		md_put(&t->inl, "######", (size_t)(level < 6 ? level : 6));
		md_put(&t->inl, " ", 1);
		md_puts(&t->inl, txt);
		free(txt);
		md_wrap(t, t->inl.p, t->inl.n);
		return;
	}
	w = md_wrap(t, t->inl.p ? t->inl.p : "", t->inl.n);
	if (w == 0)
		return;
	u = xmalloc(w);
	memset(u, level == 1 ? '=' : '-', w);
	md_line(t, u, w);
	free(u);
}

static void
md_event(struct md_text *t, cmark_event_type ev, cmark_node *n)
{
	cmark_node_type ty = cmark_node_get_type(n);

	switch (ty) {
	case CMARK_NODE_BLOCK_QUOTE:
	case CMARK_NODE_LIST:
	case CMARK_NODE_ITEM:
		if (ev == CMARK_EVENT_ENTER)
			md_push(t, n);
		else {
			md_pop(t);
			if (ty != CMARK_NODE_ITEM)
				t->need_blank = !md_tight(n);
		}
		break;
	case CMARK_NODE_PARAGRAPH:
	case CMARK_NODE_HEADING:
		if (ev == CMARK_EVENT_ENTER) {
			md_block_start(t);
			t->inl.n = 0;
			t->nlink = 0;
			break;
		}
		if (ty == CMARK_NODE_HEADING)
			md_heading_exit(t, n);
		else
			md_wrap(t, t->inl.p ? t->inl.p : "", t->inl.n);
		t->need_blank = !md_tight(n);
		break;
	case CMARK_NODE_LINK:
	case CMARK_NODE_IMAGE:
		if (ev == CMARK_EVENT_ENTER) {
			if (t->nlink < MD_LINKS)
				t->link[t->nlink] = t->inl.n;
			t->nlink++;
		} else
			md_link_exit(t, n, ty == CMARK_NODE_IMAGE);
		break;
	case CMARK_NODE_DOCUMENT:
	case CMARK_NODE_EMPH:
	case CMARK_NODE_STRONG:
		break;		/* emphasis: the words as they are */
	default:
		if (ev == CMARK_EVENT_ENTER)
			md_leaf(t, n);
		break;
	}
}

static char *
md_text_render(cmark_node *doc)
{
	struct md_text t;
	cmark_iter *it = cmark_iter_new(doc);
	cmark_event_type ev;

	memset(&t, 0, sizeof(t));
	if (it == NULL)
		pd_fatal("markdown: out of memory");
	while ((ev = cmark_iter_next(it)) != CMARK_EVENT_DONE)
		md_event(&t, ev, cmark_iter_get_node(it));
	cmark_iter_free(it);
	free(t.inl.p);
	if (t.out.n == 0)
		md_put(&t.out, "\n", 1);
	return t.out.p;
}

/*
 * A link or image whose URL cmark's safe mode would blank ("javascript:")
 * becomes its text: an <a href=""> would still look like a link, and an
 * <img src=""> like a broken picture.  Collected first, then replaced, so
 * the iterator never walks a tree being changed.
 */
static void
md_defuse(cmark_node *doc)
{
	cmark_iter *it = cmark_iter_new(doc);
	cmark_node **bad = NULL, *n, *ch;
	size_t nbad = 0, cap = 0, i;
	cmark_event_type ev;

	if (it == NULL)
		pd_fatal("markdown: out of memory");
	while ((ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
		n = cmark_iter_get_node(it);
		if (ev != CMARK_EVENT_ENTER ||
		    (cmark_node_get_type(n) != CMARK_NODE_LINK &&
		    cmark_node_get_type(n) != CMARK_NODE_IMAGE) ||
		    md_url_safe(cmark_node_get_url(n) ?
		    cmark_node_get_url(n) : ""))
			continue;
		if (nbad == cap) {
			cap = cap ? cap * 2 : 16;
			bad = xrealloc(bad, cap * sizeof(*bad));
		}
		bad[nbad++] = n;
	}
	cmark_iter_free(it);
	/* Innermost last: an image inside a link moves with its text. */
	for (i = nbad; i-- > 0;) {
		while ((ch = cmark_node_first_child(bad[i])) != NULL)
			cmark_node_insert_before(bad[i], ch);
		cmark_node_free(bad[i]);
	}
	free(bad);
}

/*
 * An image becomes a link to it, its alt text the link's text (the URL
 * when there is none): a newsletter loads nothing from elsewhere when it
 * is opened, so it neither reveals who read it nor breaks in a client
 * that blocks remote content (templates/README.md: no images).  Runs
 * before md_defuse, which then treats the link as any other.
 */
static int
md_in_link(cmark_node *n)
{
	while ((n = cmark_node_parent(n)) != NULL)
		if (cmark_node_get_type(n) == CMARK_NODE_LINK)
			return 1;
	return 0;
}

static void
md_unimage(cmark_node *doc)
{
	cmark_iter *it = cmark_iter_new(doc);
	cmark_node **img = NULL, *n, *ln, *ch;
	size_t nimg = 0, cap = 0, i;
	const char *url, *title;

	if (it == NULL)
		pd_fatal("markdown: out of memory");
	while (cmark_iter_next(it) != CMARK_EVENT_DONE) {
		n = cmark_iter_get_node(it);
		if (cmark_node_get_type(n) != CMARK_NODE_IMAGE ||
		    cmark_iter_get_event_type(it) != CMARK_EVENT_ENTER)
			continue;
		if (nimg == cap) {
			cap = cap ? cap * 2 : 16;
			img = xrealloc(img, cap * sizeof(*img));
		}
		img[nimg++] = n;
	}
	cmark_iter_free(it);
	for (i = nimg; i-- > 0;) {
		url = cmark_node_get_url(img[i]);
		title = cmark_node_get_title(img[i]);
		if (md_in_link(img[i])) {
			/* A link's picture: its alt text, in the link. */
			while ((ch = cmark_node_first_child(img[i])) != NULL)
				cmark_node_insert_before(img[i], ch);
			cmark_node_free(img[i]);
			continue;
		}
		if ((ln = cmark_node_new(CMARK_NODE_LINK)) == NULL)
			pd_fatal("markdown: out of memory");
		cmark_node_set_url(ln, url != NULL ? url : "");
		cmark_node_set_title(ln, title != NULL ? title : "");
		while ((ch = cmark_node_first_child(img[i])) != NULL)
			cmark_node_append_child(ln, ch);
		if (cmark_node_first_child(ln) == NULL) {
			if ((ch = cmark_node_new(CMARK_NODE_TEXT)) == NULL)
				pd_fatal("markdown: out of memory");
			cmark_node_set_literal(ch, url != NULL ? url : "");
			cmark_node_append_child(ln, ch);
		}
		cmark_node_insert_before(img[i], ln);
		cmark_node_free(img[i]);
	}
	free(img);
}

int
markdown_check(const char *md, size_t len, char *err)
{
	size_t i;

	if (len > MARKDOWN_MAX) {
		pd_err(err, "the body is %zu bytes, more than %u KiB", len,
		    MARKDOWN_MAX / 1024);
		return -1;
	}
	if (memchr(md, '\0', len) != NULL) {
		pd_err(err, "the body holds a NUL byte (a binary file?)");
		return -1;
	}
	if (!sanitize_utf8_valid(md, len)) {
		pd_err(err, "the body is not valid UTF-8");
		return -1;
	}
	for (i = 0; i < len; i++)
		if (md[i] != ' ' && md[i] != '\t' && md[i] != '\r' &&
		    md[i] != '\n')
			return 0;
	pd_err(err, "the body is empty");
	return -1;
}

int
markdown_render(const char *md, size_t len, char **html_r, char **text_r,
    char *err)
{
	cmark_node *doc;

	*html_r = NULL;
	*text_r = NULL;
	if (markdown_check(md, len, err) != 0)
		return -1;
	/* CMARK_OPT_DEFAULT is safe: raw HTML becomes a comment saying it
	 * was omitted, javascript:/vbscript:/file:/data: URLs become "". */
	if ((doc = cmark_parse_document(md, len, CMARK_OPT_DEFAULT)) == NULL)
		pd_fatal("markdown: out of memory");
	md_unimage(doc);
	md_defuse(doc);
	*html_r = cmark_render_html(doc, CMARK_OPT_DEFAULT);
	if (*html_r == NULL)
		pd_fatal("markdown: out of memory");
	*text_r = md_text_render(doc);
	cmark_node_free(doc);
	return 0;
}

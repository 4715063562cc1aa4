/*
 * test_markdown.c - markdown.c: the HTML part is cmark's safe rendering
 * (no raw HTML, no javascript:/vbscript:/file:/data: link), the text part
 * is a readable walk of the same tree (golden strings, table-driven), and
 * hostile input (NUL, invalid UTF-8, too big, deep nesting, long words)
 * is refused or stays bounded.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "outbound/markdown.h"
#include "testlib.h"

static char err[PD_ERRLEN];

/* Markdown in, the text part out (exactly). */
static const struct {
	const char *md, *text;
} text_cases[] = {
	{ "Hello *world*, **strong** `code`.\n",
	    "Hello world, strong code.\n" },
	{ "# Title\n\nBody.\n", "Title\n=====\n\nBody.\n" },
	{ "## Sub\n", "Sub\n---\n" },
	{ "### Third\n", "### Third\n" },
	{ "- one\n- two\n  - nested\n- three\n",
	    "- one\n- two\n  - nested\n- three\n" },
	{ "1. first\n2. second\n", "1. first\n2. second\n" },
	{ "3) a\n4) b\n", "3) a\n4) b\n" },
	{ "- loose\n\n- list\n", "- loose\n\n- list\n" },
	{ "> quoted\n> text\n\nafter\n", "> quoted text\n\nafter\n" },
	{ "> a\n>\n> b\n", "> a\n>\n> b\n" },
	{ "    code  line\n    second\n", "    code  line\n    second\n" },
	{ "```\nfenced\n```\n", "    fenced\n" },
	{ "a\n\n---\n\nb\n", "a\n\n------------------------\n\nb\n" },
	{ "[our site](https://example.org/x)\n",
	    "our site <https://example.org/x>\n" },
	{ "<https://example.org/>\n", "<https://example.org/>\n" },
	{ "<someone@example.org>\n", "<mailto:someone@example.org>\n" },
	{ "![a logo](https://example.org/l.png)\n",
	    "a logo <https://example.org/l.png>\n" },
	{ "[![badge](https://example.org/b.png)](https://example.org/)\n",
	    "badge <https://example.org/>\n" },
	{ "[click](javascript:alert(1))\n", "click\n" },
	{ "[x](vbscript:msgbox)\n", "x\n" },
	{ "[f](file:///etc/passwd)\n", "f\n" },
	{ "[d](data:text/html;base64,PHNjcmlwdD4=)\n", "d\n" },
	{ "line one  \nline two\n", "line one\nline two\n" },
	{ "soft\nbreak\n", "soft break\n" },
	{ "<script>alert(1)</script>\n\ntext <b>bold</b>\n", "text bold\n" },
	{ "- \n- b\n", "-\n- b\n" },
	{ "Caf\xc3\xa9 cr\xc3\xa8me.\n", "Caf\xc3\xa9 cr\xc3\xa8me.\n" },
	{ "1. item\n\n   > quote in item\n",
	    "1. item\n\n   > quote in item\n" },
};

START_TEST(test_text)
{
	const char *md = text_cases[_i].md;
	char *html, *text;

	ck_assert_int_eq(markdown_render(md, strlen(md), &html, &text, err),
	    0);
	ck_assert_str_eq(text, text_cases[_i].text);
	free(html);
	free(text);
}
END_TEST

/* A paragraph wraps at 72 columns (characters, not bytes), words kept
 * whole; a word longer than a line has its own. */
START_TEST(test_wrap)
{
	struct { const char *md; } c;
	char md[4096], *html, *text, *line, *save = NULL;
	size_t o = 0;
	int i, lines = 0;

	for (i = 0; i < 60; i++)
		o += (size_t)snprintf(md + o, sizeof(md) - o, "\xc3\xa9t\xc3\xa9 ");
	o += (size_t)snprintf(md + o, sizeof(md) - o, "https://example.org/"
	    "%0100d end\n", 0);
	c.md = md;
	ck_assert_int_eq(markdown_render(c.md, strlen(c.md), &html, &text,
	    err), 0);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		size_t cols = 0, j;

		for (j = 0; line[j] != '\0'; j++)
			cols += ((unsigned char)line[j] & 0xC0) != 0x80;
		if (strncmp(line, "https://", 8) != 0)
			ck_assert_uint_le(cols, 72);
		ck_assert(line[strlen(line) - 1] != ' ');
		lines++;
	}
	ck_assert_int_ge(lines, 4);
	free(html);
	free(text);
}
END_TEST

/* The HTML is cmark's safe output: no script, no handler, no dangerous
 * scheme, the structure kept. */
START_TEST(test_html_safe)
{
	const char *md = "# Hi\n\n<script>alert(1)</script>\n\n"
	    "<img src=x onerror=alert(1)>\n\n"
	    "[a](javascript:alert(1)) [b](JAVASCRIPT:x) [c](vbscript:x) "
	    "[d](file:///etc/passwd) [e](data:text/html,x) "
	    "![i](javascript:x) <a href=\"javascript:x\">raw</a>\n\n"
	    "- *em* and **strong**\n- [ok](https://example.org/?a=1&b=2)\n";
	char *html, *text;

	ck_assert_int_eq(markdown_render(md, strlen(md), &html, &text, err),
	    0);
	ck_assert_ptr_null(strstr(html, "<script"));
	ck_assert_ptr_null(strcasestr(html, "javascript:"));
	ck_assert_ptr_null(strcasestr(html, "vbscript:"));
	ck_assert_ptr_null(strstr(html, "file:"));
	ck_assert_ptr_null(strstr(html, "data:"));
	ck_assert_ptr_null(strstr(html, "onerror"));
	ck_assert_ptr_null(strstr(html, "<img src=x"));
	/* a blanked link is no link: its text stays, as text */
	ck_assert_ptr_null(strstr(html, "href=\"\""));
	ck_assert_ptr_null(strstr(html, "src=\"\""));
	ck_assert_ptr_nonnull(strstr(html, "<p>a b c d e i "));
	ck_assert_ptr_nonnull(strstr(html, "<h1>Hi</h1>"));
	ck_assert_ptr_nonnull(strstr(html, "<em>em</em>"));
	ck_assert_ptr_nonnull(strstr(html, "<strong>strong</strong>"));
	ck_assert_ptr_nonnull(strstr(html,
	    "<a href=\"https://example.org/?a=1&amp;b=2\">ok</a>"));
	ck_assert_ptr_null(strstr(text, "script"));
	ck_assert_ptr_null(strcasestr(text, "javascript"));
	free(html);
	free(text);
}
END_TEST

/* Refused, with a reason: empty, blank, NUL, invalid UTF-8, too big. */
static const struct {
	const char *md;
	size_t len;
	const char *why;
} bad_cases[] = {
	{ "", 0, "empty" },
	{ " \n\t\r\n", 5, "empty" },
	{ "a\0b", 3, "NUL" },
	{ "caf\xe9\n", 5, "UTF-8" },
	{ "\xed\xa0\x80\n", 4, "UTF-8" },	/* a surrogate */
	{ "\xc0\xaf\n", 3, "UTF-8" },		/* overlong '/' */
};

/* Images become links: opening a newsletter loads nothing remote. */
START_TEST(test_no_images)
{
	const char *md = "![a logo](https://example.org/l.png \"Logo\")\n\n"
	    "![](https://example.org/e.png)\n\n"
	    "[![badge](https://example.org/b.png)](https://example.org/)\n";
	char *html, *text;

	ck_assert_int_eq(markdown_render(md, strlen(md), &html, &text, err),
	    0);
	ck_assert_ptr_null(strstr(html, "<img"));
	ck_assert_ptr_nonnull(strstr(html, "<a href=\"https://example.org/l.png\""
	    " title=\"Logo\">a logo</a>"));
	ck_assert_ptr_nonnull(strstr(html, "<a href=\"https://example.org/e.png\">"
	    "https://example.org/e.png</a>"));
	ck_assert_ptr_nonnull(strstr(html, "<a href=\"https://example.org/\">"
	    "badge</a>"));
	free(html);
	free(text);
}
END_TEST

START_TEST(test_refused)
{
	char *html = (char *)1, *text = (char *)1;

	err[0] = '\0';
	ck_assert_int_eq(markdown_render(bad_cases[_i].md, bad_cases[_i].len,
	    &html, &text, err), -1);
	ck_assert_ptr_null(html);
	ck_assert_ptr_null(text);
	ck_assert_msg(strstr(err, bad_cases[_i].why) != NULL, "%s", err);
}
END_TEST

START_TEST(test_size)
{
	size_t n = MARKDOWN_MAX;
	char *md = xmalloc(n + 2), *html, *text;

	memset(md, 'a', n + 1);
	md[n + 1] = '\0';
	ck_assert_int_eq(markdown_render(md, n + 1, &html, &text, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "256 KiB"));
	/* Exactly the limit: rendered (one 256 KiB word on its own line). */
	ck_assert_int_eq(markdown_render(md, n, &html, &text, err), 0);
	ck_assert_uint_eq(strlen(text), n + 1);
	free(html);
	free(text);
	free(md);
}
END_TEST

/*
 * Deep nesting: quotes, lists and emphasis 40000 deep render, and the
 * text's prefix stops growing (16 levels), so the output stays linear.
 */
START_TEST(test_deep)
{
	static const char *const unit[] = { "> ", "- ", "*", "[" };
	size_t n = 120000, u, i, o;
	char *md = xmalloc(n + 16), *html, *text;

	for (u = 0; u < sizeof(unit) / sizeof(unit[0]); u++) {
		size_t ul = strlen(unit[u]);

		for (o = 0, i = 0; o + ul < n; i++, o += ul)
			memcpy(md + o, unit[u], ul);
		memcpy(md + o, "deep\n", 6);
		ck_assert_int_eq(markdown_render(md, strlen(md), &html, &text,
		    err), 0);
		ck_assert_ptr_nonnull(strstr(text, "deep"));
		ck_assert_uint_lt(strlen(text), 4 * n);
		free(html);
		free(text);
	}
	free(md);
}
END_TEST

static Suite *
markdown_suite(void)
{
	Suite *s = suite_create("markdown");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_text, 0,
	    (int)(sizeof(text_cases) / sizeof(text_cases[0])));
	tcase_add_test(tc, test_wrap);
	tcase_add_test(tc, test_html_safe);
	tcase_add_loop_test(tc, test_refused, 0,
	    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, test_size);
	tcase_add_test(tc, test_no_images);
	tcase_add_test(tc, test_deep);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(markdown_suite());
}

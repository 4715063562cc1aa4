/*
 * markdown.h - a campaign's own body, written in Markdown (CommonMark),
 * rendered to the HTML part and to the plain-text part of the message
 * from one parse tree (cmark).  Pure: no store, no files, no template.
 * Never lets raw HTML or a javascript:/vbscript:/file:/data: link through
 * (cmark's safe default, CMARK_OPT_UNSAFE is never set).
 */
#ifndef PD_MARKDOWN_H
#define PD_MARKDOWN_H

#include <stddef.h>

/* A body larger than this is refused (the message carries it twice). */
#define MARKDOWN_MAX (256u * 1024u)
/* Text part lines are wrapped at this many characters. */
#define MARKDOWN_WIDTH 72

/*
 * Render len bytes of md (valid UTF-8, no NUL, 1..MARKDOWN_MAX bytes,
 * not only white space) into a malloc'd HTML fragment *html_r and a
 * malloc'd plain text *text_r (LF line ends, ending with one LF).
 * 0, or -1 with err (PD_ERRLEN) naming the problem; *html_r and *text_r
 * are then NULL.
 */
int markdown_render(const char *md, size_t len, char **html_r, char **text_r,
    char *err);

/* Only the check markdown_render starts with: 0, or -1 with err. */
int markdown_check(const char *md, size_t len, char *err);

#endif

/*
 * mustache.h - a Mustache renderer (https://mustache.github.io/mustache.5.html)
 * over jansson values: variables HTML-escaped by default, triple mustache
 * and {{& }} raw, sections, inverted sections, comments, partials, set
 * delimiters, dotted names, implicit iterator, standalone-line rules.  It
 * passes the official spec (comments, delimiters, interpolation, inverted,
 * partials, sections).  Values are never re-parsed as templates (a value
 * holding "{{x}}" renders literally) and nothing is a printf format.
 */
#ifndef PD_MUSTACHE_H
#define PD_MUSTACHE_H

#include <jansson.h>

/* Looks up a partial by name; returns a malloc'd template text or NULL
 * (an unknown partial renders as nothing, per the spec). */
typedef char *(*mustache_partial_fn)(const char *name, void *ctx);

/*
 * Render `tmpl` with `data` (the root context).  Returns a malloc'd
 * string, or NULL with a message in err (PD_ERRLEN) naming the line of a
 * syntax error (unclosed tag or section, mismatched section end, bad
 * delimiter change).  Partial recursion is bounded (depth 32).
 */
char *mustache_render(const char *tmpl, json_t *data,
    mustache_partial_fn partial, void *partial_ctx, char *err);

#endif

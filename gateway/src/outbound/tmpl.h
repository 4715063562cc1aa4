/*
 * tmpl.h - message templates on disk: templates/<name>/<locale>/
 * {subject,text,html}.mustache and shared partials in templates/partials/
 * (header, footer...).  Chooses the locale (asked, then the account's
 * default, then "en"), renders the three parts with Mustache, and checks
 * what it renders (UTF-8, no control characters in the subject).
 */
#ifndef PD_TMPL_H
#define PD_TMPL_H

#include <jansson.h>

struct tmpl_output {
	char locale[16];	/* the locale actually used */
	char *subject;		/* one line, UTF-8, controls removed */
	char *text;		/* text/plain body, UTF-8 */
	char *html;		/* text/html body, or NULL if none */
};

/*
 * name and locales must match [a-z0-9_-]{1,32} (never a path).  locale or
 * account_locale may be NULL.  Returns 0, or -1 with err (PD_ERRLEN)
 * naming the template file and line.
 */
int tmpl_render(const char *dir, const char *name, const char *locale,
    const char *account_locale, json_t *data, struct tmpl_output *out,
    char *err);
void tmpl_output_free(struct tmpl_output *out);

#endif

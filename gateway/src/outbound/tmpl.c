/*
 * tmpl.c - message templates on disk: validates template and locale names
 * (they are path components, so never anything but [a-z0-9_-]{1,32}), picks
 * the locale, finds partials, renders subject/text/html with mustache.c and
 * checks the result.  It never builds a path from data and never writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/mustache.h"
#include "lib/sanitize.h"
#include "tmpl.h"
#include "lib/util.h"

#define TMPL_NAME_MAX 32
#define TMPL_FILE_MAX (256u << 10)	/* a template, not a data file */
#define TMPL_SUBJECT_MAX 900		/* before RFC 2047 encoding */
#define TMPL_PARTIALS 16		/* remembered for error messages */

struct tmpl_ctx {
	const char *dir, *name, *locale;
	char err[PD_ERRLEN];	/* the first partial that went wrong */
	char path[PATH_MAX];	/* scratch: keeps the callback's frame small,
				 * since partials nest 32 deep */
	struct {		/* name -> file of the partials loaded */
		char name[TMPL_NAME_MAX + 1];
		char path[PATH_MAX];
	} loaded[TMPL_PARTIALS];
	unsigned nloaded;
};

/* ^[a-z0-9_-]{1,32}$: a single path component that cannot be "." or "..". */
static int
tmpl_name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i == TMPL_NAME_MAX)
			return 0;
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return 0;
	}
	return i > 0;
}

static int
tmpl_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
tmpl_path(char *buf, const char *dir, const char *a, const char *b,
    const char *c, char *err)
{
	int n;

	if (c != NULL)
		n = snprintf(buf, PATH_MAX, "%s/%s/%s/%s", dir, a, b, c);
	else if (b != NULL)
		n = snprintf(buf, PATH_MAX, "%s/%s/%s", dir, a, b);
	else
		n = snprintf(buf, PATH_MAX, "%s/%s", dir, a);
	if (n < 0 || n >= PATH_MAX) {
		pd_err(err, "%s: template path too long", dir);
		return -1;
	}
	return 0;
}

static int
tmpl_read_fd(int fd, const char *path, char **text_r, size_t *len_r,
    char *err)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	ssize_t n;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		pd_err(err, "%s: not a regular file", path);
		return -1;
	}
	if ((size_t)st.st_size > TMPL_FILE_MAX) {
		pd_err(err, "%s: larger than %u bytes", path, TMPL_FILE_MAX);
		return -1;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size &&
	    (n = read(fd, buf + got, (size_t)st.st_size - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pd_err(err, "%s: %s", path, strerror(errno));
			free(buf);
			return -1;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*text_r = buf;
	*len_r = got;
	return 0;
}

/* Reads a template file: 0, 1 if it does not exist, -1 with err.  A
 * template is text: no NUL, valid UTF-8. */
static int
tmpl_read(const char *path, char **text_r, char *err)
{
	size_t len = 0;
	int fd, rc;

	*text_r = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 1;
		pd_err(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	rc = tmpl_read_fd(fd, path, text_r, &len, err);
	close(fd);
	if (rc < 0)
		return -1;
	if (strlen(*text_r) != len || !sanitize_utf8_valid(*text_r, len)) {
		pd_err(err, "%s: not valid UTF-8 text", path);
		free(*text_r);
		*text_r = NULL;
		return -1;
	}
	return 0;
}

static void
tmpl_remember(struct tmpl_ctx *c, const char *name, const char *path)
{
	unsigned i = c->nloaded++ % TMPL_PARTIALS;
	size_t n = strlen(path);	/* < PATH_MAX: tmpl_path checked */

	snprintf(c->loaded[i].name, sizeof(c->loaded[i].name), "%s", name);
	if (n >= sizeof(c->loaded[i].path))
		n = sizeof(c->loaded[i].path) - 1;
	memcpy(c->loaded[i].path, path, n);
	c->loaded[i].path[n] = '\0';
}

/*
 * Partials: the template's own directory first (a locale may override a
 * shared piece), then templates/partials/<locale>/, then
 * templates/partials/.  Unlike the spec's "unknown is empty", a missing
 * partial is an error here: the footer carries the sender's legal
 * identity and must not silently vanish.
 */
static int
tmpl_partial_path(struct tmpl_ctx *c, int i, const char *file, char *err)
{
	if (i == 0)
		return tmpl_path(c->path, c->dir, c->name, c->locale, file, err);
	if (i == 1)
		return tmpl_path(c->path, c->dir, "partials", c->locale, file,
		    err);
	return tmpl_path(c->path, c->dir, "partials", file, NULL, err);
}

static char *
tmpl_partial_cb(const char *pname, void *arg)
{
	struct tmpl_ctx *c = arg;
	char file[TMPL_NAME_MAX + 16], err[PD_ERRLEN];
	char *text;
	int i, rc;

	if (c->err[0] != '\0')
		return NULL;
	if (!tmpl_name_ok(pname)) {
		pd_err(c->err, "partial name '%.40s' is not [a-z0-9_-]{1,32}",
		    pname);
		return NULL;
	}
	snprintf(file, sizeof(file), "%s.mustache", pname);
	for (i = 0; i < 3; i++) {
		if (tmpl_partial_path(c, i, file, err) < 0 ||
		    (rc = tmpl_read(c->path, &text, err)) < 0) {
			pd_err(c->err, "%s", err);
			return NULL;
		}
		if (rc == 0) {
			tmpl_remember(c, pname, c->path);
			return text;
		}
	}
	pd_err(c->err, "partial '%s' not found in %s/%s/%s/, %s/partials/%s/ "
	    "or %s/partials/", pname, c->dir, c->name, c->locale, c->dir,
	    c->locale, c->dir);
	return NULL;
}

/* mustache.c reports "partial 'x': line N: ..." for an error inside a
 * partial; name the partial's file instead, which is what one edits. */
static void
tmpl_syntax_err(struct tmpl_ctx *c, const char *path, const char *merr,
    char *err)
{
	const char *p = NULL, *q, *s;
	unsigned i;

	for (s = merr; (q = strstr(s, "partial '")) != NULL; s = q + 1)
		p = q;
	if (p != NULL && (q = strstr(p + 9, "': ")) != NULL) {
		for (i = 0; i < TMPL_PARTIALS && i < c->nloaded; i++) {
			if (strlen(c->loaded[i].name) == (size_t)(q - p - 9) &&
			    strncmp(c->loaded[i].name, p + 9, q - p - 9) == 0) {
				pd_err(err, "%s: %s (included from %s)",
				    c->loaded[i].path, q + 3, path);
				return;
			}
		}
	}
	pd_err(err, "%s: %s", path, merr);
}

/* Renders one file; *out_r is NULL (and 0 returned) when an optional file
 * does not exist. */
static int
tmpl_part(struct tmpl_ctx *c, const char *file, int required, json_t *data,
    char **out_r, char *err)
{
	char path[PATH_MAX], merr[PD_ERRLEN];
	char *text, *out;
	int rc;

	*out_r = NULL;
	if (tmpl_path(path, c->dir, c->name, c->locale, file, err) < 0)
		return -1;
	if ((rc = tmpl_read(path, &text, err)) != 0) {
		if (rc > 0 && required)
			pd_err(err, "%s: missing", path);
		return rc > 0 && !required ? 0 : -1;
	}
	out = mustache_render(text, data, tmpl_partial_cb, c, merr);
	free(text);
	if (c->err[0] != '\0') {
		pd_err(err, "%s: %s", path, c->err);
		free(out);
		return -1;
	}
	if (out == NULL) {
		tmpl_syntax_err(c, path, merr, err);
		return -1;
	}
	if (!sanitize_utf8_valid(out, strlen(out))) {
		pd_err(err, "%s: renders invalid UTF-8", path);
		free(out);
		return -1;
	}
	*out_r = out;
	return 0;
}

/* CRLF and lone CR become LF, in place; the message builder makes CRLF. */
static void
tmpl_lf(char *s)
{
	char *w = s;

	for (; *s != '\0'; s++) {
		if (*s == '\r') {
			*w++ = '\n';
			if (s[1] == '\n')
				s++;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* The subject is one header line: trimmed, CR/LF/TAB runs to one space,
 * other controls (C0, DEL, C1, U+2028/9) removed. */
static int
tmpl_subject(char **subject, const struct tmpl_ctx *c, char *err)
{
	char *clean = sanitize_header_value(*subject, strlen(*subject),
	    TMPL_SUBJECT_MAX);

	free(*subject);
	*subject = clean;
	if (clean[0] == '\0') {
		pd_err(err, "%s/%s/%s/subject.mustache: renders an empty subject",
		    c->dir, c->name, c->locale);
		return -1;
	}
	return 0;
}

static int
tmpl_pick_locale(const char *dir, const char *name, const char *locale,
    const char *account_locale, char picked[16], char *err)
{
	const char *cand[3] = { locale, account_locale, "en" };
	char path[PATH_MAX];
	int i;

	/* The name rule, and short enough for tmpl_output.locale. */
	for (i = 0; i < 2; i++)
		if (cand[i] != NULL && (!tmpl_name_ok(cand[i]) ||
		    strlen(cand[i]) >= sizeof(((struct tmpl_output *)0)->locale))) {
			pd_err(err, "locale '%.40s' refused: not "
			    "[a-z0-9_-]{1,15}", cand[i]);
			return -1;
		}
	if (tmpl_path(path, dir, name, NULL, NULL, err) < 0)
		return -1;
	if (!tmpl_is_dir(path)) {
		pd_err(err, "%s: no such template", path);
		return -1;
	}
	for (i = 0; i < 3; i++) {
		if (cand[i] == NULL ||
		    tmpl_path(path, dir, name, cand[i], NULL, err) < 0)
			continue;
		if (tmpl_is_dir(path)) {
			snprintf(picked, 16, "%s", cand[i]);
			return 0;
		}
	}
	pd_err(err, "%s/%s: no locale among %s, %s, en", dir, name,
	    locale ? locale : "(none)",
	    account_locale ? account_locale : "(none)");
	return -1;
}

int
tmpl_render(const char *dir, const char *name, const char *locale,
    const char *account_locale, json_t *data, struct tmpl_output *out,
    char *err)
{
	struct tmpl_ctx *c;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!tmpl_name_ok(name)) {
		pd_err(err, "template name '%.40s' refused: not "
		    "[a-z0-9_-]{1,32}", name);
		return -1;
	}
	if (tmpl_pick_locale(dir, name, locale, account_locale, out->locale,
	    err) < 0)
		return -1;
	c = xcalloc(1, sizeof(*c));	/* paths make it too big for a stack */
	c->dir = dir;
	c->name = name;
	c->locale = out->locale;
	if (tmpl_part(c, "subject.mustache", 1, data, &out->subject, err) == 0 &&
	    tmpl_subject(&out->subject, c, err) == 0 &&
	    tmpl_part(c, "text.mustache", 1, data, &out->text, err) == 0 &&
	    tmpl_part(c, "html.mustache", 0, data, &out->html, err) == 0)
		rc = 0;
	free(c);
	if (rc < 0) {
		tmpl_output_free(out);
		return -1;
	}
	tmpl_lf(out->text);
	if (out->html != NULL)
		tmpl_lf(out->html);
	return 0;
}

void
tmpl_output_free(struct tmpl_output *out)
{
	if (out == NULL)
		return;
	free(out->subject);
	free(out->text);
	free(out->html);
	out->subject = out->text = out->html = NULL;
}

/*
 * test_mustache.c - mustache.c against the official Mustache spec (one
 * Check test per spec file, every case in it) and our own table: escaping,
 * values that look like templates or formats, numbers, and syntax errors
 * that must name their line.  Then tmpl.c: every shipped template in every
 * locale with hostile data, locale fallback, refused names, and errors that
 * name the file.  A missing spec directory is a SKIP, not a pass.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/mustache.h"
#include "outbound/tmpl.h"
#include "testlib.h"
#include "lib/util.h"

static const char *spec_files[] = {
	"comments", "delimiters", "interpolation", "inverted", "partials",
	"sections",
};
#define NSPEC (sizeof(spec_files) / sizeof(spec_files[0]))

static char spec_dir[4096];

/* The spec's partials come from the test's "partials" object. */
static char *
spec_partial(const char *name, void *ctx)
{
	const char *s = json_string_value(json_object_get(ctx, name));

	return s ? xstrdup(s) : NULL;
}

/* Runs one spec test; returns 1 if it passed, else prints why. */
static int
spec_case(const char *file, json_t *tc, char *first, size_t firstlen)
{
	const char *name = json_string_value(json_object_get(tc, "name"));
	const char *tmpl = json_string_value(json_object_get(tc, "template"));
	const char *want = json_string_value(json_object_get(tc, "expected"));
	char err[PD_ERRLEN] = "";
	char *got;
	int ok;

	got = mustache_render(tmpl, json_object_get(tc, "data"), spec_partial,
	    json_object_get(tc, "partials"), err);
	ok = got != NULL && strcmp(got, want) == 0;
	if (!ok) {
		fprintf(stderr, "FAIL %s: \"%s\"\n  template: [%s]\n"
		    "  expected: [%s]\n  got:      [%s]%s%s\n", file, name,
		    tmpl, want, got ? got : "(null)", got ? "" : " error: ",
		    got ? "" : err);
		if (first[0] == '\0')
			snprintf(first, firstlen, "%s: template [%s] expected "
			    "[%s] got [%s]", name, tmpl, want,
			    got ? got : err);
	}
	free(got);
	return ok;
}

START_TEST(test_spec_file)
{
	char path[4200], first[2048] = "";
	json_error_t jerr;
	json_t *root, *tests, *tc;
	size_t i, passed = 0;

	snprintf(path, sizeof(path), "%s/%s.json", spec_dir,
	    spec_files[_i]);
	root = json_load_file(path, 0, &jerr);
	ck_assert_msg(root != NULL, "%s: %s", path, jerr.text);
	tests = json_object_get(root, "tests");
	ck_assert_msg(json_array_size(tests) > 0, "%s: no tests", path);
	json_array_foreach(tests, i, tc)
		passed += spec_case(spec_files[_i], tc, first, sizeof(first));
	printf("spec %s: %zu/%zu\n", spec_files[_i], passed,
	    json_array_size(tests));
	ck_assert_msg(passed == json_array_size(tests), "%s: %zu/%zu passed; "
	    "first failure: %s", spec_files[_i], passed,
	    json_array_size(tests), first);
	json_decref(root);
}
END_TEST

struct render_case {
	const char *tmpl;
	const char *data;	/* JSON */
	const char *want;	/* NULL: an error is expected... */
	const char *err;	/* ...containing this */
};

static const struct render_case cases[] = {
	/* escaping: the spec's set, and only in double mustache */
	{ "{{x}}", "{\"x\":\"a&b\\\"c<d>e'f\"}", "a&amp;b&quot;c&lt;d&gt;e'f",
	  NULL },
	{ "{{{x}}}", "{\"x\":\"<b>&\"}", "<b>&", NULL },
	{ "{{&x}}", "{\"x\":\"<b>&\"}", "<b>&", NULL },
	{ "{{x}}", "{\"x\":\"&amp;\"}", "&amp;amp;", NULL },
	/* values are never templates, formats or string ends */
	{ "{{x}}", "{\"x\":\"{{y}}\",\"y\":\"no\"}", "{{y}}", NULL },
	{ "{{{x}}}", "{\"x\":\"%s%n%x\"}", "%s%n%x", NULL },
	{ "[{{x}}]", "{\"x\":\"a\\u0000b\"}", "[ab]", NULL },
	{ "{{#l}}{{.}}{{/l}}", "{\"l\":[\"{{#l}}\",\"{{/l}}\"]}",
	  "{{#l}}{{/l}}", NULL },
	/* numbers, booleans, containers */
	{ "{{i}} {{r}} {{s}} {{b}}", "{\"i\":-42,\"r\":0.1,\"s\":1.5e300,"
	  "\"b\":true}", "-42 0.1 1.5e+300 true", NULL },
	{ "[{{o}}{{a}}{{n}}]", "{\"o\":{},\"a\":[1],\"n\":null}", "[]", NULL },
	/* falsey: empty string too; zero is a value */
	{ "{{#e}}x{{/e}}{{^e}}y{{/e}}{{#z}}{{z}}{{/z}}",
	  "{\"e\":\"\",\"z\":0}", "y0", NULL },
	/* UTF-8 passes through untouched */
	{ "{{x}} é", "{\"x\":\"Société\"}", "Société é", NULL },
	/* errors name the line */
	{ "a\nb\n{{x", "{}", NULL, "line 3: unclosed tag" },
	{ "a\n{{{x}}", "{}", NULL, "line 2: unclosed tag" },
	{ "{{#a}}\n\n{{b}}", "{}", NULL, "line 1: section 'a' is never closed" },
	{ "{{#a}}\n{{/b}}", "{}", NULL, "line 2: closing tag 'b' does not" },
	{ "x\n{{/a}}", "{}", NULL, "line 2: closing tag 'a' without" },
	{ "\n{{=<% %>=}}\n<%x", "{}", NULL, "line 3: unclosed tag" },
	{ "{{=<%=}}", "{}", NULL, "line 1: bad delimiter change" },
	{ "{{= a b c =}}", "{}", NULL, "line 1: bad delimiter change" },
	{ "\n\n{{ }}", "{}", NULL, "line 3: empty tag" },
	{ "{{a b}}", "{}", NULL, "line 1: tag name contains a space" },
};

START_TEST(test_render_table)
{
	const struct render_case *c = &cases[_i];
	char err[PD_ERRLEN] = "";
	json_error_t jerr;
	json_t *data = json_loads(c->data, JSON_ALLOW_NUL, &jerr);
	char *got;

	ck_assert_msg(data != NULL, "case %d: bad JSON: %s", _i, jerr.text);
	got = mustache_render(c->tmpl, data, NULL, NULL, err);
	if (c->want != NULL) {
		ck_assert_msg(got != NULL, "case %d [%s]: error %s", _i,
		    c->tmpl, err);
		ck_assert_msg(strcmp(got, c->want) == 0, "case %d [%s]: "
		    "expected [%s] got [%s]", _i, c->tmpl, c->want, got);
	} else {
		ck_assert_msg(got == NULL, "case %d [%s]: expected an error, "
		    "got [%s]", _i, c->tmpl, got);
		ck_assert_msg(strstr(err, c->err) != NULL, "case %d [%s]: "
		    "error [%s] does not contain [%s]", _i, c->tmpl, err,
		    c->err);
	}
	free(got);
	json_decref(data);
}
END_TEST

static char *
self_partial(const char *name, void *ctx)
{
	return xstrdup(strcmp(name, "loop") == 0 ? "{{>loop}}" :
	    "{{#a}\n");
}

/* Bounds: recursion through partials and nesting of sections end in an
 * error, not a stack overflow. */
START_TEST(test_bounds)
{
	char err[PD_ERRLEN] = "", *got, *deep;
	json_t *data = json_pack("{s:b}", "a", 1);
	size_t i, n = 65;

	got = mustache_render("{{>loop}}", data, self_partial, NULL, err);
	ck_assert_msg(got == NULL && strstr(err, "nested deeper than 32"),
	    "partial recursion: %s", err);
	got = mustache_render("x\n{{>bad}}", data, self_partial, NULL, err);
	ck_assert_msg(got == NULL && strstr(err, "partial 'bad': line 1"),
	    "partial syntax error: %s", err);
	deep = xmalloc(n * 12 + 1);
	deep[0] = '\0';
	for (i = 0; i < n; i++)
		strcat(deep, "{{#a}}");
	for (i = 0; i < n; i++)
		strcat(deep, "{{/a}}");
	got = mustache_render(deep, data, NULL, NULL, err);
	ck_assert_msg(got == NULL && strstr(err, "nested deeper than 64"),
	    "deep sections: %s", err);
	deep[strlen(deep) - 6] = '\0';	/* 64 deep renders */
	memmove(deep, deep + 6, strlen(deep + 6) + 1);
	got = mustache_render(deep, data, NULL, NULL, err);
	ck_assert_msg(got != NULL && got[0] == '\0', "64 deep: %s", err);
	free(got);
	free(deep);
	json_decref(data);
}
END_TEST

/*
 * tests/regress/mustache/: templates fuzz_mustache found, rendered with
 * that fuzzer's data and partials (its partial "self" is the template).
 * Each must come back, with output or an error, well inside the check
 * timeout: the first of them took minutes before MS_STEPS_MAX.
 */
static const char *regress_self;

static char *
regress_partial(const char *name, void *ctx)
{
	(void)ctx;
	return xstrdup(strcmp(name, "self") == 0 ? regress_self : "<p>");
}

START_TEST(test_fuzz_regressions)
{
	const char *src = getenv("POSTDOC_SRCDIR");
	char dir[1024], path[2048], err[PD_ERRLEN], *tmpl, *got;
	struct dirent *e;
	DIR *d;
	int n = 0;
	json_t *data = json_pack("{s:s, s:i, s:b, s:[{s:s},{s:s}], "
	    "s:{s:{s:s}}, s:n}", "name", "<Alice & \"Bob\">", "n", 3, "yes", 1,
	    "list", "x", "1", "x", "2", "a", "b", "c", "deep", "none");

	snprintf(dir, sizeof(dir), "%s/tests/regress/mustache",
	    src != NULL ? src : ".");
	d = opendir(dir);
	ck_assert_msg(d != NULL, "%s: %s (set POSTDOC_SRCDIR)", dir,
	    strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		tmpl = tl_slurp(path, NULL);
		regress_self = tmpl;
		got = mustache_render(tmpl, data, regress_partial, NULL, err);
		free(got);
		free(tmpl);
		n++;
	}
	closedir(d);
	ck_assert_msg(n > 0, "no templates in %s", dir);
	json_decref(data);
}
END_TEST

/* Work, not just depth and size: 40 empty sections nested over a 2-item
 * list would visit 2^40 tokens and write nothing (fuzz_mustache found a
 * 2 KB template taking minutes).  It must stop with an error, quickly. */
START_TEST(test_bounds_work)
{
	char err[PD_ERRLEN] = "", *got, *t;
	json_t *data = json_pack("{s:[{s:i},{s:i}]}", "l", "x", 1, "x", 2);
	size_t i, n = 40;

	t = xmalloc(n * 16 + 1);
	t[0] = '\0';
	for (i = 0; i < n; i++)
		strcat(t, "{{#l}}");
	for (i = 0; i < n; i++)
		strcat(t, "{{/l}}");
	got = mustache_render(t, data, NULL, NULL, err);
	ck_assert_msg(got == NULL && strstr(err, "too costly to render"),
	    "nested sections over a list: %s", got ? "rendered" : err);
	/* Twelve deep is 2^12 = 4096 visits: renders. */
	t[0] = '\0';
	for (i = 0; i < 12; i++)
		strcat(t, "{{#l}}");
	strcat(t, "{{x}}");
	for (i = 0; i < 12; i++)
		strcat(t, "{{/l}}");
	got = mustache_render(t, data, NULL, NULL, err);
	ck_assert_msg(got != NULL && strlen(got) == 4096, "12 deep: %s", err);
	free(got);
	free(t);
	json_decref(data);
}
END_TEST

/* ---- tmpl.c ---- */

static const char *tmpl_data_json =
    "{\"account\":{\"name\":\"Martin & Fils\",\"legal_name\":\"Martin & "
    "Fils SAS\",\"legal_address\":\"12 rue de la Paix, 75002 Paris\","
    "\"from_name\":\"Claire\",\"from_addr\":\"c@martin.example\"},"
    "\"contact\":{\"name\":\"<script>alert(1)</script> \\\"q\\\"\","
    "\"email\":\"j@example.org\"},"
    "\"dossier\":{\"ref\":\"D-42\",\"address\":\"d-7f3a@in.example\","
    "\"due\":\"2026-12-15\",\"has_due\":true,\"documents\":[{\"name\":"
    "\"<b>ID</b>\"}],\"has_documents\":true},"
    "\"receipt\":{\"received\":[{\"filename\":\"a&b.pdf\",\"size_human\":"
    "\"1.2 MB\",\"received_at\":\"2026-11-26 10:40\"}],\"count\":1},"
    "\"reminder\":{\"number\":2,\"days_since_invitation\":9},"
    "\"now\":\"2026-11-26\"}";

static const char *shipped[] = { "invitation", "reminder", "receipt",
    "rejection", "completed", "closing" };

/* Every shipped template, fr and en: renders, keeps the legal identity,
 * escapes data in HTML and leaves it alone in text. */
START_TEST(test_tmpl_shipped)
{
	const char *locale = _i % 2 ? "en" : "fr";
	struct tmpl_output o;
	char err[PD_ERRLEN] = "";
	json_t *data = json_loads(tmpl_data_json, 0, NULL);

	ck_assert_msg(data != NULL, "test data");
	ck_assert_msg(tmpl_render(TOP_SRCDIR "/templates", shipped[_i / 2],
	    locale, NULL, data, &o, err) == 0, "%s/%s: %s", shipped[_i / 2],
	    locale, err);
	ck_assert_str_eq(o.locale, locale);
	ck_assert_msg(strstr(o.subject, "D-42") && !strpbrk(o.subject, "\r\n"),
	    "subject [%s]", o.subject);
	ck_assert_msg(strstr(o.text, "Martin & Fils SAS\n12 rue de la Paix"),
	    "text lacks the legal identity:\n%s", o.text);
	ck_assert_msg(strstr(o.text, "d-7f3a@in.example") &&
	    strstr(o.text, "<script>alert(1)</script> \"q\"") &&
	    !strchr(o.text, '\r') && !strstr(o.text, "&amp;"),
	    "text:\n%s", o.text);
	ck_assert_msg(o.html != NULL, "no html");
	ck_assert_msg(!strstr(o.html, "<script") && !strstr(o.html, "<b>") &&
	    strstr(o.html, "&lt;script&gt;alert(1)&lt;/script&gt; &quot;q") &&
	    strstr(o.html, "Martin &amp; Fils SAS"), "html:\n%s", o.html);
	tmpl_output_free(&o);
	json_decref(data);
}
END_TEST

/* The escaping rule of templates/README.md, enforced: HTML files never
 * insert a raw value; text files never HTML-escape one. */
START_TEST(test_tmpl_escaping_rule)
{
	static const struct {
		const char *dir, *file;	/* dir NULL: partials/<file> */
		int html;
	} files[] = {
		{ "invitation", "html", 1 }, { "reminder", "html", 1 },
		{ "receipt", "html", 1 }, { "partials", "header_html", 1 },
		{ "partials", "footer_html", 1 }, { NULL, "footer_html", 1 },
		{ "invitation", "text", 0 }, { "invitation", "subject", 0 },
		{ "reminder", "text", 0 }, { "reminder", "subject", 0 },
		{ "receipt", "text", 0 }, { "receipt", "subject", 0 },
		{ "partials", "header", 0 }, { "partials", "footer", 0 },
		{ NULL, "footer", 0 },
		{ "rejection", "html", 1 }, { "rejection", "text", 0 },
		{ "rejection", "subject", 0 }, { "completed", "html", 1 },
		{ "completed", "text", 0 }, { "completed", "subject", 0 },
		{ "closing", "html", 1 }, { "closing", "text", 0 },
		{ "closing", "subject", 0 },
	};
	const char *locale = _i ? "en" : "fr", *p;
	char path[512], buf[8192];
	size_t i, n;
	FILE *f;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i].dir != NULL)
			snprintf(path, sizeof(path), "%s/templates/%s/%s/%s"
			    ".mustache", TOP_SRCDIR, files[i].dir, locale,
			    files[i].file);
		else
			snprintf(path, sizeof(path), "%s/templates/partials/"
			    "%s.mustache", TOP_SRCDIR, files[i].file);
		ck_assert_msg((f = fopen(path, "r")) != NULL, "%s", path);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		for (p = buf; (p = strstr(p, "{{")) != NULL; p += 2)
			ck_assert_msg(files[i].html ? !strchr("{&", p[2]) :
			    strchr("&#^/>!", p[2]) != NULL, "%s: %.20s", path, p);
	}
}
END_TEST

struct locale_case {
	const char *locale, *account_locale, *want;
};

static const struct locale_case locale_cases[] = {
	{ "fr", "en", "fr" }, { "de", "fr", "fr" }, { "de", NULL, "en" },
	{ NULL, NULL, "en" }, { NULL, "fr", "fr" }, { "de", "it", "en" },
};

START_TEST(test_tmpl_locale)
{
	const struct locale_case *c = &locale_cases[_i];
	struct tmpl_output o;
	char err[PD_ERRLEN] = "";
	json_t *data = json_loads(tmpl_data_json, 0, NULL);

	ck_assert_msg(tmpl_render(TOP_SRCDIR "/templates", "invitation",
	    c->locale, c->account_locale, data, &o, err) == 0, "%s", err);
	ck_assert_str_eq(o.locale, c->want);
	tmpl_output_free(&o);
	json_decref(data);
}
END_TEST

struct refuse_case {
	const char *name, *locale, *account_locale, *err;
};

static const struct refuse_case refuse_cases[] = {
	{ "../invitation", "fr", NULL, "template name '../invitation' refused" },
	{ "", "fr", NULL, "refused" },
	{ "Invitation", "fr", NULL, "refused" },
	{ "invitation", "../fr", NULL, "locale '../fr' refused" },
	{ "invitation", "fr/..", NULL, "refused" },
	{ "invitation", "fr", "..", "locale '..' refused" },
	{ "invitation", "a23456789012345678", NULL, "refused" },
	{ "nosuch", "fr", NULL, "nosuch: no such template" },
};

START_TEST(test_tmpl_refused)
{
	const struct refuse_case *c = &refuse_cases[_i];
	struct tmpl_output o;
	char err[PD_ERRLEN] = "";
	json_t *data = json_object();

	ck_assert_int_eq(tmpl_render(TOP_SRCDIR "/templates", c->name,
	    c->locale, c->account_locale, data, &o, err), -1);
	ck_assert_msg(strstr(err, c->err) != NULL, "[%s] not in [%s]",
	    c->err, err);
	ck_assert_msg(o.subject == NULL && o.text == NULL && o.html == NULL,
	    "output left behind");
	json_decref(data);
}
END_TEST

static char tmpdir[64];

static void
put_file(const char *rel, const char *text)
{
	char path[256], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	slash = strrchr(path, '/');
	*slash = '\0';
	ck_assert_int_eq(pd_mkdirs(path, 0700), 0);
	*slash = '/';
	f = fopen(path, "w");
	ck_assert_msg(f != NULL, "%s", path);
	fputs(text, f);
	fclose(f);
}

struct file_case {
	const char *subject, *text;	/* t/xx/{subject,text}.mustache */
	const char *want_subject, *want_text;	/* NULL: an error... */
	const char *err;	/* ...containing this */
};

static const struct file_case file_cases[] = {
	{ " \tHi\t\t{{& x}} \r\n", "a\r\nb\rc\n{{> p}}",
	  "Hi a bc d", "a\nb\nc\nlocal\n", NULL },
	{ "{{& y}}", "t", "z", "t", NULL },	/* y is "z\u0085\u2028" */
	{ "s", "1\n2\n{{#x}}", NULL, NULL, "t/xx/text.mustache: line 3: "
	  "section 'x' is never closed" },
	{ "s", "{{> bad}}", NULL, NULL, "partials/bad.mustache: line 2: "
	  "unclosed tag (included from" },
	{ "s", "{{> none}}", NULL, NULL, "partial 'none' not found" },
	{ "s", "{{> ../x}}", NULL, NULL, "partial name '../x' is not" },
	{ "s", "caf\xe9", NULL, NULL, "t/xx/text.mustache: not valid UTF-8" },
	{ "{{& e}}", "t", NULL, NULL, "renders an empty subject" },
	{ "s", NULL, NULL, NULL, "t/xx/text.mustache: missing" },
};

/* Templates written to a temporary directory: normalisation and errors. */
START_TEST(test_tmpl_files)
{
	const struct file_case *c = &file_cases[_i];
	struct tmpl_output o;
	char err[PD_ERRLEN] = "", cmd[128];
	json_t *data = json_pack("{s:s,s:s,s:s}", "x", "a\r\nb\001c\x7f d",
	    "y", "z\xc2\x85\xe2\x80\xa8", "e", " \t ");
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_tmpl.XXXXXX");
	ck_assert_msg(mkdtemp(tmpdir) != NULL, "mkdtemp");
	put_file("t/xx/subject.mustache", c->subject);
	if (c->text)
		put_file("t/xx/text.mustache", c->text);
	put_file("t/xx/p.mustache", "local\n");
	put_file("partials/xx/p.mustache", "by locale\n");
	put_file("partials/p.mustache", "shared\n");
	put_file("partials/bad.mustache", "x\n{{oops\n");
	rc = tmpl_render(tmpdir, "t", "xx", NULL, data, &o, err);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	if (c->want_subject) {
		ck_assert_msg(rc == 0, "case %d: %s", _i, err);
		ck_assert_str_eq(o.subject, c->want_subject);
		ck_assert_str_eq(o.text, c->want_text);
		ck_assert_msg(o.html == NULL, "html without html.mustache");
		tmpl_output_free(&o);
	} else {
		ck_assert_msg(rc == -1 && strstr(err, c->err), "case %d: "
		    "[%s] not in [%s]", _i, c->err, err);
	}
	json_decref(data);
}
END_TEST

/* $POSTDOC_SHARED, else the shared directory beside the checkout. */
static int
find_spec_dir(void)
{
	const char *shared = getenv("POSTDOC_SHARED");
	struct stat st;

	snprintf(spec_dir, sizeof(spec_dir), "%s/spec/mustache",
	    shared && *shared ? shared : TOP_SRCDIR "/../shared");
	return stat(spec_dir, &st) == 0 && S_ISDIR(st.st_mode);
}

int
main(void)
{
	Suite *s = suite_create("mustache");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed, have_spec = find_spec_dir();

	tcase_add_loop_test(tc, test_render_table, 0,
	    sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_bounds_work);
	tcase_add_test(tc, test_fuzz_regressions);
	suite_add_tcase(s, tc);
	tc = tcase_create("tmpl");
	tcase_add_loop_test(tc, test_tmpl_shipped, 0, 2 * 3);
	tcase_add_loop_test(tc, test_tmpl_escaping_rule, 0, 2);
	tcase_add_loop_test(tc, test_tmpl_locale, 0,
	    sizeof(locale_cases) / sizeof(locale_cases[0]));
	tcase_add_loop_test(tc, test_tmpl_refused, 0,
	    sizeof(refuse_cases) / sizeof(refuse_cases[0]));
	tcase_add_loop_test(tc, test_tmpl_files, 0,
	    sizeof(file_cases) / sizeof(file_cases[0]));
	suite_add_tcase(s, tc);
	if (have_spec) {
		TCase *spec = tcase_create("spec");

		tcase_add_loop_test(spec, test_spec_file, 0, NSPEC);
		suite_add_tcase(s, spec);
	} else {
		printf("SKIP: spec not found (%s)\n", spec_dir);
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed)
		return EXIT_FAILURE;
	return have_spec ? EXIT_SUCCESS : 77;	/* automake's SKIP */
}

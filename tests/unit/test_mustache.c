/*
 * test_mustache.c - mustache.c against the official Mustache spec (one
 * Check test per spec file, every case in it) and our own table: escaping,
 * values that look like templates or formats, numbers, and syntax errors
 * that must name their line.  A missing spec directory is a SKIP, not a pass.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mustache.h"
#include "util.h"

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

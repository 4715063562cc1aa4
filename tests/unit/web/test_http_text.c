/*
 * test_http_text.c - the web pages' languages: every table has every
 * text, and the reader's language comes from the contact, else from
 * Accept-Language weighed by q-values (RFC 9110 12.5.4), else from the
 * account, else English.
 */
#include <check.h>
#include <stddef.h>
#include <string.h>

#include "testlib.h"
#include "web/http_text.h"

struct al_row {
	const char *al;
	const char *want;	/* NULL: none of ours */
};

static const struct al_row al_rows[] = {
	{ "fr", "fr" },
	{ "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "fr" },
	{ "en-US,en;q=0.9,fr;q=0.8", "en" },
	{ "de-DE, fr;q=0.5, en;q=0.4", "fr" },	/* not the first listed */
	{ "en;q=0.2, fr;q=0.9", "fr" },		/* order is not weight */
	{ "en;q=0, fr;q=0.1", "fr" },		/* q=0: not acceptable */
	{ "fr;q=0", NULL },
	{ "*", "en" },
	{ "*;q=0.5, en;q=0.1", "fr" },		/* * stands for the others */
	{ "fr;q=0, *;q=0.3", "en" },
	{ "en, fr", "en" },			/* a tie: the first listed */
	{ "fr, en", "fr" },
	{ "FR-ca", "fr" },
	{ "fr;q=1.0", "fr" },
	{ "fr; q=0.500, en;q=0.499", "fr" },
	{ "fr;q=2, en;q=0.1", "en" },		/* bad q: element dropped */
	{ "fr;q=0.1234, en;q=0.1", "en" },
	{ "fr;q=abc, en;q=0.1", "en" },
	{ "fra, english", NULL },		/* primary subtags only */
	{ "de, es", NULL },
	{ "", NULL },
	{ ",,, ;q=1", NULL },
	{ NULL, NULL },
};

START_TEST(test_accept)
{
	const struct al_row *r = &al_rows[_i];
	const struct http_lang *l = http_lang_accept(r->al);

	if (r->want == NULL)
		ck_assert_msg(l == NULL, "\"%s\": got %s", r->al ? r->al :
		    "(null)", l ? l->tag : "");
	else
		ck_assert_msg(l != NULL && strcmp(l->tag, r->want) == 0,
		    "\"%s\": got %s, want %s", r->al, l ? l->tag : "none",
		    r->want);
}
END_TEST

START_TEST(test_pick)
{
	/* the contact's language wins over the browser's */
	ck_assert_str_eq(http_lang_pick("fr", "en", "en")->tag, "fr");
	ck_assert_str_eq(http_lang_pick("en", "fr", "fr")->tag, "en");
	/* a contact's language we do not speak: the browser's */
	ck_assert_str_eq(http_lang_pick("de", "fr;q=0.8", "en")->tag, "fr");
	ck_assert_str_eq(http_lang_pick("", "fr", NULL)->tag, "fr");
	/* no usable header: the account's, else English */
	ck_assert_str_eq(http_lang_pick(NULL, "de", "fr")->tag, "fr");
	ck_assert_str_eq(http_lang_pick(NULL, NULL, "fr")->tag, "fr");
	ck_assert_str_eq(http_lang_pick(NULL, "de", "de")->tag, "en");
	ck_assert_str_eq(http_lang_pick(NULL, NULL, NULL)->tag, "en");
}
END_TEST

/* Every table has every text, and none shows a placeholder we do not
 * fill in. */
START_TEST(test_tables_complete)
{
	static const char *const tags[] = { "en", "fr" };
	const struct http_lang *l;
	const char *p;
	int i, t;

	for (i = 0; i < 2; i++) {
		l = http_lang_get(tags[i]);
		ck_assert_ptr_nonnull(l);
		for (t = 0; t < HT_COUNT; t++) {
			ck_assert_msg(l->t[t] != NULL && l->t[t][0] != '\0',
			    "%s: text %d missing", tags[i], t);
			for (p = strchr(l->t[t], '{'); p != NULL;
			    p = strchr(p + 1, '{'))
				ck_assert_msg(strncmp(p, "{email}", 7) == 0 ||
				    strncmp(p, "{purpose}", 9) == 0 ||
				    strncmp(p, "{account}", 9) == 0,
				    "%s: text %d: %s", tags[i], t, p);
		}
	}
}
END_TEST

static Suite *
http_text_suite(void)
{
	Suite *s = suite_create("http_text");
	TCase *tc = tcase_create("http_text");

	tcase_add_loop_test(tc, test_accept, 0,
	    (int)(sizeof(al_rows) / sizeof(al_rows[0])));
	tcase_add_test(tc, test_pick);
	tcase_add_test(tc, test_tables_complete);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(http_text_suite());
}

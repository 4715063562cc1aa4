/*
 * test_sync_name.c - the names sync_dir and sync_webdav give a document
 * (plugins/common/sync_name.h), table-driven: a name past 160 bytes is
 * cut in its stem and keeps its last extension whole (issue 16, defect
 * 2: "A...A.vbs.txt" must never become "A...A.vbs"), at a UTF-8
 * character boundary; an extension too long to keep leaves no dot; the
 * " (n)" candidates keep the same extension.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../plugins/common/sync_name.h"

static char *
rep(const char *unit, int n, const char *tail)
{
	size_t u = strlen(unit), t = strlen(tail);
	char *s = malloc(u * (size_t)n + t + 1);
	int i;

	for (i = 0; i < n; i++)
		memcpy(s + u * (size_t)i, unit, u);
	memcpy(s + u * (size_t)n, tail, t + 1);
	return s;
}

static const struct row {
	const char *unit;	/* repeated n times, then tail */
	int n;
	const char *tail;
	const char *want_unit;	/* the expected name, the same way */
	int want_n;
	const char *want_tail;
} rows[] = {
	/* short: untouched */
	{ "a", 1, "short.vbs.pdf", "", 0, "ashort.vbs.pdf" },
	/* exactly 160: untouched */
	{ "A", 156, ".pdf", "A", 156, ".pdf" },
	/* the spoof: the stem is cut, .pdf stays */
	{ "A", 156, ".vbs.pdf", "A", 156, ".pdf" },
	{ "A", 300, ".vbs.txt", "A", 156, ".txt" },
	/* two-byte letters: 156 bytes of stem is 78 whole letters */
	{ "\xc3\xa9", 100, ".vbs.pdf", "\xc3\xa9", 78, ".pdf" },
	/* three-byte letters: 155 bytes of stem, the 52nd would split */
	{ "\xe2\x82\xac", 60, ".docx", "\xe2\x82\xac", 51, ".docx" },
	/* a multibyte extension is kept whole too */
	{ "B", 200, ".\xc3\xa9t\xc3\xa9", "B", 154, ".\xc3\xa9t\xc3\xa9" },
	/* last extension too long (20 bytes): no dot survives the cut */
	{ "C", 156, ".vbs.xxxxxxxxxxxxxxxxxxxx", "C", 156, "_vbs" },
	/* no extension at all: a plain cut */
	{ "D", 200, "", "D", 160, "" },
	/* unsafe bytes in the kept extension still become '_' */
	{ "E", 200, ".p:f", "E", 156, ".p_f" },
};
#define NROWS (int)(sizeof(rows) / sizeof(rows[0]))

START_TEST(test_filename)
{
	const struct row *r = &rows[_i];
	char *in = rep(r->unit, r->n, r->tail);
	char *want = rep(r->want_unit, r->want_n, r->want_tail);
	char out[SYNC_FILENAME_MAX + 1];

	sync_name_filename(out, sizeof(out), in, strlen(in));
	ck_assert_msg(strcmp(out, want) == 0, "row %d: got %s", _i, out);
	ck_assert_int_le(strlen(out), SYNC_FILENAME_MAX);
	free(in);
	free(want);
}
END_TEST

START_TEST(test_candidates_keep_the_extension)
{
	char *name = rep("A", 156, ".vbs.pdf"), out[SYNC_SEGMENT_MAX + 32];
	char *want1 = rep("A", 156, ".pdf"), *want2 = rep("A", 156, " (2).pdf");
	char buf[SYNC_SEGMENT_MAX + 32];
	struct postdoc_document d = { .id = 117, .filename = name };

	sync_name_file(out, sizeof(out), &d, 1);
	snprintf(buf, sizeof(buf), "117-%s", want1);
	ck_assert_str_eq(out, buf);
	sync_name_file(out, sizeof(out), &d, 2);
	snprintf(buf, sizeof(buf), "117-%s", want2);
	ck_assert_str_eq(out, buf);
	free(name);
	free(want1);
	free(want2);
}
END_TEST

static Suite *
sync_name_suite(void)
{
	Suite *s = suite_create("sync_name");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_filename, 0, NROWS);
	tcase_add_test(tc, test_candidates_keep_the_extension);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sync_name_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

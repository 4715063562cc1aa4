/*
 * test_blob.c - the blob store's layout: new blobs at "<root>/ab/<sha>"
 * in 256 dirs made at open; blobs of stores written with the old
 * "<root>/ab/cd/<sha>" layout still found, deduplicated against and
 * removed; a lost fan-out dir made again; temp files never left behind.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/blob.h"
#include "testlib.h"
#include "lib/util.h"

/* sha256("abc") */
#define SHA_ABC \
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static char tmpdir[256], root[512], err[PD_ERRLEN];

static void
setup(void)
{
	tl_tmpdir(tmpdir, sizeof(tmpdir), "blob");
	snprintf(root, sizeof(root), "%s/blobs", tmpdir);
}

static void
teardown(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static int
dir_entries(const char *path)
{
	char cmd[1024];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", path);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static int
is_file(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static void
write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, strlen(data), f), strlen(data));
	ck_assert_int_eq(fclose(f), 0);
}

static void
read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void
write_blob(struct blob_store *bs, const char *data, char sha[65])
{
	struct blob_writer w;

	ck_assert_msg(blob_writer_begin(bs, &w, err) == 0, "%s", err);
	ck_assert_int_eq(blob_writer_write(&w, data, strlen(data)), 0);
	ck_assert_msg(blob_writer_commit(bs, &w, sha, err) == 0, "%s", err);
}

/* What a store written before the one-level fan-out holds for "abc". */
static void
plant_old_abc(char *path, size_t len)
{
	char d[600];

	snprintf(d, sizeof(d), "%s/ba/78", root);
	ck_assert_int_eq(pd_mkdirs(d, 0750), 0);
	snprintf(path, len, "%s/%s", d, SHA_ABC);
	write_file(path, "abc");
}

START_TEST(test_open_makes_256_dirs)
{
	struct blob_store *bs;
	char d[600];
	struct stat sb;
	unsigned i;

	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	/* 00..ff and tmp */
	ck_assert_int_eq(dir_entries(root), 257);
	for (i = 0; i < 256; i++) {
		snprintf(d, sizeof(d), "%s/%02x", root, i);
		ck_assert_msg(lstat(d, &sb) == 0 && S_ISDIR(sb.st_mode), "%s",
		    d);
	}
	blob_store_free(&bs);
	/* A second open of the same store is fine and adds nothing. */
	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	ck_assert_int_eq(dir_entries(root), 257);
	blob_store_free(&bs);
}
END_TEST

START_TEST(test_new_blob_one_level)
{
	struct blob_store *bs;
	char sha[65], path[4096], expect[4096], buf[16], d[600];

	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	write_blob(bs, "abc", sha);
	ck_assert_str_eq(sha, SHA_ABC);
	snprintf(expect, sizeof(expect), "%s/ba/%s", root, SHA_ABC);
	ck_assert(is_file(expect));
	blob_path(bs, sha, path, sizeof(path));
	ck_assert_str_eq(path, expect);
	read_file(path, buf, sizeof(buf));
	ck_assert_str_eq(buf, "abc");
	/* No second level made, no temp left. */
	snprintf(d, sizeof(d), "%s/ba", root);
	ck_assert_int_eq(dir_entries(d), 1);
	snprintf(d, sizeof(d), "%s/tmp", root);
	ck_assert_int_eq(dir_entries(d), 0);
	/* Written again: deduplicated, still one file. */
	write_blob(bs, "abc", sha);
	snprintf(d, sizeof(d), "%s/ba", root);
	ck_assert_int_eq(dir_entries(d), 1);
	snprintf(d, sizeof(d), "%s/tmp", root);
	ck_assert_int_eq(dir_entries(d), 0);
	blob_store_free(&bs);
}
END_TEST

START_TEST(test_old_layout_found_and_removed)
{
	struct blob_store *bs;
	char old[4096], path[4096], buf[16];

	/* The old blob exists before the store is opened, as after upgrade. */
	ck_assert_int_eq(pd_mkdirs(root, 0750), 0);
	plant_old_abc(old, sizeof(old));
	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	ck_assert_int_eq(blob_exists(bs, SHA_ABC), 1);
	blob_path(bs, SHA_ABC, path, sizeof(path));
	ck_assert_str_eq(path, old);
	read_file(path, buf, sizeof(buf));
	ck_assert_str_eq(buf, "abc");
	ck_assert_int_eq(blob_remove(bs, SHA_ABC), 0);
	ck_assert(!is_file(old));
	ck_assert_int_eq(blob_exists(bs, SHA_ABC), 0);
	/* Gone already: still success (purges are rerun). */
	ck_assert_int_eq(blob_remove(bs, SHA_ABC), 0);
	blob_store_free(&bs);
}
END_TEST

START_TEST(test_old_layout_dedups_new_writes)
{
	struct blob_store *bs;
	char old[4096], sha[65], newp[4096], d[600], spool[600];

	ck_assert_int_eq(pd_mkdirs(root, 0750), 0);
	plant_old_abc(old, sizeof(old));
	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	/* Through a writer... */
	write_blob(bs, "abc", sha);
	ck_assert_str_eq(sha, SHA_ABC);
	snprintf(newp, sizeof(newp), "%s/ba/%s", root, SHA_ABC);
	ck_assert(!is_file(newp));
	ck_assert(is_file(old));
	/* ...and adopted (a spool file moved in): dropped, not stored twice. */
	snprintf(spool, sizeof(spool), "%s/spool-abc", tmpdir);
	write_file(spool, "abc");
	ck_assert_msg(blob_adopt(bs, spool, SHA_ABC, err) == 0, "%s", err);
	ck_assert(!is_file(spool));
	ck_assert(!is_file(newp));
	snprintf(d, sizeof(d), "%s/tmp", root);
	ck_assert_int_eq(dir_entries(d), 0);
	blob_store_free(&bs);
}
END_TEST

START_TEST(test_both_layouts_removed)
{
	struct blob_store *bs;
	char old[4096], newp[4096];

	ck_assert_int_eq(pd_mkdirs(root, 0750), 0);
	plant_old_abc(old, sizeof(old));
	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	/* A copy under the new layout too (e.g. written by hand): both go. */
	snprintf(newp, sizeof(newp), "%s/ba/%s", root, SHA_ABC);
	write_file(newp, "abc");
	ck_assert_int_eq(blob_remove(bs, SHA_ABC), 0);
	ck_assert(!is_file(old));
	ck_assert(!is_file(newp));
	ck_assert_int_eq(blob_exists(bs, SHA_ABC), 0);
	blob_store_free(&bs);
}
END_TEST

START_TEST(test_lost_fanout_dir_made_again)
{
	struct blob_store *bs;
	char sha[65], d[600], path[4096], buf[16];

	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	snprintf(d, sizeof(d), "%s/ba", root);
	ck_assert_int_eq(rmdir(d), 0);
	write_blob(bs, "abc", sha);
	blob_path(bs, sha, path, sizeof(path));
	read_file(path, buf, sizeof(buf));
	ck_assert_str_eq(buf, "abc");
	ck_assert_int_eq(dir_entries(d), 1);
	blob_store_free(&bs);
}
END_TEST

START_TEST(test_adopt_moves_spool)
{
	struct blob_store *bs;
	char spool[600], path[4096], buf[16];

	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	snprintf(spool, sizeof(spool), "%s/spool-1", tmpdir);
	write_file(spool, "abc");
	ck_assert_msg(blob_adopt(bs, spool, SHA_ABC, err) == 0, "%s", err);
	ck_assert(!is_file(spool));
	blob_path(bs, SHA_ABC, path, sizeof(path));
	ck_assert(strstr(path, "/ba/" SHA_ABC) != NULL);
	ck_assert(strstr(path, "/ba/78/") == NULL);
	read_file(path, buf, sizeof(buf));
	ck_assert_str_eq(buf, "abc");
	/* The same bytes again: the spool file is dropped, the blob stays. */
	write_file(spool, "abc");
	ck_assert_msg(blob_adopt(bs, spool, SHA_ABC, err) == 0, "%s", err);
	ck_assert(!is_file(spool));
	ck_assert(is_file(path));
	blob_store_free(&bs);
}
END_TEST

START_TEST(test_abort_leaves_nothing)
{
	struct blob_store *bs;
	struct blob_writer w;
	char d[600];

	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	ck_assert_int_eq(blob_writer_begin(bs, &w, err), 0);
	ck_assert_int_eq(blob_writer_write(&w, "abc", 3), 0);
	blob_writer_abort(&w);
	snprintf(d, sizeof(d), "%s/tmp", root);
	ck_assert_int_eq(dir_entries(d), 0);
	snprintf(d, sizeof(d), "%s/ba", root);
	ck_assert_int_eq(dir_entries(d), 0);
	ck_assert_int_eq(blob_exists(bs, SHA_ABC), 0);
	blob_store_free(&bs);
}
END_TEST

START_TEST(test_same_dir)
{
	ck_assert_int_eq(blob_same_dir(SHA_ABC,
	    "ba00000000000000000000000000000000000000000000000000000000000000"),
	    1);
	/* Same first four digits mattered for the old layout, not now. */
	ck_assert_int_eq(blob_same_dir(SHA_ABC,
	    "bb7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
	    0);
}
END_TEST

START_TEST(test_batch_sync_dir)
{
	struct blob_store *bs;
	struct blob_writer w;
	char sha[65], path[4096];

	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	ck_assert_int_eq(blob_writer_begin(bs, &w, err), 0);
	ck_assert_int_eq(blob_writer_write(&w, "abc", 3), 0);
	ck_assert_msg(blob_writer_commit_nodirsync(bs, &w, sha, err) == 0,
	    "%s", err);
	ck_assert_str_eq(sha, SHA_ABC);
	ck_assert_msg(blob_sync_dir(bs, sha, err) == 0, "%s", err);
	blob_path(bs, sha, path, sizeof(path));
	ck_assert(is_file(path));
	blob_store_free(&bs);
}
END_TEST

static Suite *
blob_suite(void)
{
	Suite *s = suite_create("blob");
	TCase *tc = tcase_create("layout");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_makes_256_dirs);
	tcase_add_test(tc, test_new_blob_one_level);
	tcase_add_test(tc, test_old_layout_found_and_removed);
	tcase_add_test(tc, test_old_layout_dedups_new_writes);
	tcase_add_test(tc, test_both_layouts_removed);
	tcase_add_test(tc, test_lost_fanout_dir_made_again);
	tcase_add_test(tc, test_adopt_moves_spool);
	tcase_add_test(tc, test_abort_leaves_nothing);
	tcase_add_test(tc, test_same_dir);
	tcase_add_test(tc, test_batch_sync_dir);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(blob_suite());
}

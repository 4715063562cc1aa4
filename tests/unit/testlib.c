/*
 * testlib.c - the unit tests' shared fixtures (see testlib.h).  Test
 * support only: linked into each tests/unit program, never the binary.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"
#include "testlib.h"
#include "lib/util.h"

void
tl_tmpdir(char *dir, size_t len, const char *name)
{
	snprintf(dir, len, "/tmp/pd-test-%s-XXXXXX", name);
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int
tl_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

void
tl_rmtree(const char *dir)
{
	nftw(dir, tl_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct store *
tl_store_open(const char *path, const char *sync)
{
	struct store *st = NULL;
	char err[PD_ERRLEN];

	ck_assert_msg(store_open(path, sync, &st, err) == 0, "%s", err);
	return st;
}

int
tl_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

char *
tl_slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = xmalloc((size_t)n + 1);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len_r)
		*len_r = (size_t)n;
	return buf;
}

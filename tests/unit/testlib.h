/*
 * testlib.h - what the Check unit tests share: a fresh mkdtemp directory
 * per test and its removal with everything under it, a store opened in
 * it, and main()'s run of one suite.  Failures are Check assertions, so
 * a fixture that cannot be set up fails the test that needed it.
 */
#ifndef PD_TESTLIB_H
#define PD_TESTLIB_H

#include <stddef.h>

#include <check.h>

struct store;

/* mkdtemp("/tmp/pd-test-NAME-XXXXXX") into dir[len]. */
void tl_tmpdir(char *dir, size_t len, const char *name);

/* dir and everything below it, links not followed. */
void tl_rmtree(const char *dir);

/* store_open(path, sync) or the test fails with the store's error. */
struct store *tl_store_open(const char *path, const char *sync);

/* A whole file, NUL-terminated (*len_r: its length, if not NULL); a
 * file that cannot be read fails the test. */
char *tl_slurp(const char *path, size_t *len_r);

/* Run every test of s; EXIT_SUCCESS when none failed. */
int tl_run(Suite *s);

#endif

/*
 * store_int.h - for the store's own other files (store_privacy.c) only:
 * the SQLite handle behind a struct store.  Callers outside the store
 * layer use store.h and never see SQL.
 */
#ifndef PD_STORE_INT_H
#define PD_STORE_INT_H

#include <sqlite3.h>

#include "store.h"

sqlite3 *store_sqlite(struct store *st);

/* Prepare a one-off statement and bind its parameters by a format: 'i'
 * an int64_t, 't' a text (NULL binds NULL); parameters the statement
 * does not use are skipped.  NULL with err set on failure. */
sqlite3_stmt *store_cx_prep(struct store *st, const char *sql, char *err,
    const char *fmt, ...);

/* Step a one-off statement to completion and finalize it; 0 or -1 with
 * err naming `what`.  changes_r (may be NULL): rows changed. */
int store_cx_exec(struct store *st, sqlite3_stmt *s, int *changes_r,
    char *err, const char *what);
/* Step a one-off statement once and finalize it: its first column as an
 * int64 in *v_r (may be NULL); 1 found, 0 no row, -1 error. */
int store_cx_int(struct store *st, sqlite3_stmt *s, int64_t *v_r, char *err,
    const char *what);

#endif

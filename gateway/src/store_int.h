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

#endif

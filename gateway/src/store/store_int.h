/*
 * store_int.h - for the store's own files (gateway/src/store) only: the
 * statement cache's slots and the helpers every domain file shares to
 * prepare, bind, step and copy.  Callers outside the store layer use
 * store.h (and store_*.h) and never see SQL; nothing outside store/ may
 * include this header.  Every store file keeps the same rules: data only
 * ever reaches SQL as bound parameters, SQL text is built solely from
 * that file's constants, and tenant data is read and written scoped by
 * account.
 */
#ifndef PD_STORE_INT_H
#define PD_STORE_INT_H

#include "db.h"
#include "store.h"

/*
 * Slots of each connection's statement cache: single-row statements,
 * prepared once per connection and reused.  The SQL of a slot lives in
 * its domain's file, in a table indexed by this enum.
 */
enum store_stmt_id {
	/* store_account.c */
	S_ACCOUNT_ADD,
	S_ACCOUNT_GET,
	/* store_dossier.c */
	S_DOSSIER_ADD,
	S_DOSSIER_GET,
	S_DOSSIER_BY_REF,
	S_DOSSIER_BY_LOCAL,
	S_DOSSIER_CLOSE,
	S_DOSSIER_SET_REQUEST,
	/* store_message.c */
	S_MESSAGE_DUP,
	S_MESSAGE_ADD,
	S_MESSAGE_GET,
	S_DOCUMENT_DUP,
	S_DOCUMENT_ADD,
	S_DOCUMENT_GET,
	S_DOCUMENT_COUNT_SINCE,
	S_EVENT_ADD,
	S_RAW_PUT,
	/* store_outbound.c */
	S_OUTBOUND_ADD,
	S_OUTBOUND_GET,
	S_OUTBOUND_BY_VERP,
	S_OUTBOUND_DUE,
	S_OUTBOUND_TAKE,
	S_OUTBOUND_UPDATE,
	S_OUTBOUND_RECOVER,
	S_OUTBOUND_COUNT,
	S_SUPPRESSION_ADD,
	S_SUPPRESSION_GET,
	/* store_consent.c */
	S_CONTACT_ADD,
	S_CONTACT_GET,
	S_COUNT
};

/* The driver connection behind a struct store (same connection, same
 * thread). */
struct db *store_db(struct store *st);

/* ---- statements (store.c) ---- */

/* The cached statement of slot id, prepared from sql[id] (the calling
 * domain's table) on first use; reset and with no bindings. */
struct db_stmt *store_stmt(struct store *st, enum store_stmt_id id,
    const char *const *sql, char *err);
/* Prepare a one-off statement (lists: callbacks may re-enter the store). */
struct db_stmt *store_stmt_once(struct store *st, const char *sql, char *err);

/* Prepare a one-off statement and bind its parameters by a format: 'i'
 * an int64_t, 'I' an id (int64_t, 0 binds NULL), 't' a text (NULL binds
 * NULL); parameters the statement does not use are skipped.  NULL with
 * err set on failure. */
struct db_stmt *store_cx(struct store *st, const char *sql, char *err,
    const char *fmt, ...);
/* The name store_api.c, store_evq.c and store_privacy.c call it by. */
#define store_cx_prep store_cx
/* Step a one-off statement to completion and finalize it; 0 or -1 with
 * err naming `what`.  changes_r (may be NULL): rows changed. */
int store_cx_exec(struct store *st, struct db_stmt *s, int *changes_r,
    char *err, const char *what);
/* Step a one-off statement once and finalize it: its first column as an
 * int64 in *v_r (may be NULL); 1 found, 0 no row, -1 error. */
int store_cx_int(struct store *st, struct db_stmt *s, int64_t *v_r, char *err,
    const char *what);

/* Step a cached statement that returns no rows (or whose rows we ignore)
 * and reset it; 0 or -1. */
int store_exec_stmt(struct store *st, struct db_stmt *s, char *err,
    const char *what);
/* Step an INSERT ... RETURNING id once: DB_DONE and *id_r (may be NULL),
 * or the step's code; the caller resets or finalizes s. */
int store_step_id(struct db_stmt *s, int64_t *id_r);
/* Step a cached single-id lookup: 1 found (*id_r set), 0 not, -1 error. */
int store_lookup_id(struct store *st, struct db_stmt *s, int64_t *id_r,
    char *err, const char *what);
/* Step a cached statement whose single row holds up to three integers. */
int store_ints(struct store *st, struct db_stmt *s, int64_t *a, int64_t *b,
    int64_t *c, char *err, const char *what);
/* Run SQL text without parameters (pragmas, BEGIN, SAVEPOINT). */
int store_exec(struct store *st, const char *sql, char *err,
    const char *what);

/* ---- values (store.c) ---- */

/* err = "what: <SQLite's message>"; returns -1. */
int store_fail(struct store *st, char *err, const char *what);
int store_bind_text(struct db_stmt *s, int idx, const char *v);
/* Ids of 0 mean "none" to callers; in SQL that is NULL. */
int store_bind_id(struct db_stmt *s, int idx, int64_t id);
/* Copy a text column into a fixed buffer, cut at a UTF-8 boundary. */
void store_col_copy(char *dst, size_t dstlen, struct db_stmt *s, int col);
/* Step s (finalized here) calling cb(col 0, col 1) per row; 0 or -1. */
int store_pairs(struct store *st, struct db_stmt *s, store_pair_cb cb,
    void *ctx, char *err, const char *what);
#define COPY_COL(field, s, col) \
	store_col_copy((field), sizeof(field), (s), (col))
void store_lower(char *dst, size_t dstlen, const char *src);
/* 64 lower-case hex digits: what blob.c accepts as a name. */
int store_sha_valid(const char *sha);

/* ---- transactions (store.c) ---- */

/* Multi-statement operations run in a savepoint: atomic on their own,
 * and nested correctly inside a caller's BEGIN.  end releases it (ok) or
 * rolls it back and returns -1. */
int store_sp_begin(struct store *st, char *err);
int store_sp_end(struct store *st, int ok, char *err);

/* ---- across domains ---- */

/* store_schema.c: bring the schema up to STORE_SCHEMA_VERSION. */
int store_migrate(struct store *st, char *err);
/* store_schema_pg.c: the PostgreSQL schema at version STORE_PG_BASE, and
 * the PostgreSQL text of each migration after it. */
#define STORE_PG_BASE 11
extern const char store_schema_pg[];
extern const char *const store_pg_migrations[STORE_SCHEMA_VERSION + 1];
/* store.c: 1 on a PostgreSQL connection.  The one place the store asks
 * which engine runs, for the few statements each engine spells its own
 * way (docs/postgresql-plan.md, step 2). */
int store_on_pg(struct store *st);
/* store_consent.c: find or create the contact row for (account,
 * lower-cased email); dossier create calls it. */
int store_contact_id(struct store *st, int64_t account_id, const char *email,
    int64_t *id_r, char *err);

#endif

/*
 * store_int.h - for the store's own other files (store_privacy.c) only:
 * the SQLite handle behind a struct store.  Callers outside the store
 * layer use store.h and never see SQL.
 */
#ifndef PD_STORE_INT_H
#define PD_STORE_INT_H

#include <sqlite3.h>

#include "store.h"

/* Single-row statements, prepared once per connection and reused. */
enum store_stmt_id {
	S_ACCOUNT_ADD,
	S_ACCOUNT_GET,
	S_CONTACT_ADD,
	S_CONTACT_GET,
	S_DOSSIER_ADD,
	S_DOSSIER_GET,
	S_DOSSIER_BY_REF,
	S_DOSSIER_BY_LOCAL,
	S_DOSSIER_CLOSE,
	S_MESSAGE_DUP,
	S_MESSAGE_ADD,
	S_MESSAGE_GET,
	S_DOCUMENT_DUP,
	S_DOCUMENT_ADD,
	S_DOCUMENT_GET,
	S_EVENT_ADD,
	S_DOSSIER_SET_REQUEST,
	S_DOCUMENT_COUNT_SINCE,
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
	S_RAW_PUT,
	S_COUNT
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
};

#define ACCOUNT_COLS "SELECT id, name, sender_policy, created FROM accounts "

#define DOSSIER_COLS \
	"SELECT d.id, d.account_id, a.name, a.sender_policy, d.ref, " \
	"c.email, d.intake_local, d.status, d.created, " \
	"COALESCE(d.closed, 0), d.requested, d.due FROM dossiers d " \
	"JOIN accounts a ON a.id = d.account_id " \
	"JOIN contacts c ON c.id = d.contact_id "

#define DOC_COLS \
	"SELECT d.id, d.dossier_id, COALESCE(d.message_id, 0), d.filename, " \
	"d.stored_name, d.declared_type, d.sniffed_type, d.size, d.sha256, " \
	"COALESCE(m.received, d.created) FROM documents d " \
	"LEFT JOIN messages m ON m.id = d.message_id "

#define MSG_COLS \
	"SELECT id, queue_id, mail_from, rcpt_to, client_ip, helo, tls, " \
	"lmtp, message_id, subject, size, sha256, parse_status, anomalies, " \
	"received FROM messages "

#define OUTBOUND_COLS \
	"SELECT o.id, o.account_id, COALESCE(o.dossier_id, 0), a.name, " \
	"o.kind, o.rcpt, o.rcpt_domain, o.mail_from, o.verp_token, " \
	"o.message_id, o.from_domain, o.sha256, o.size, o.state, o.attempts, " \
	"o.next_attempt, o.created, o.updated, o.last_code, o.last_enhanced, " \
	"o.last_text FROM outbound o JOIN accounts a ON a.id = o.account_id "

#define COPY_COL(field, s, col) \
	store_col_copy((field), sizeof(field), (s), (col))

/* Shared by the store's files (store.c defines them). */
int store_fail(struct store *st, char *err, const char *what);
void store_col_copy(char *dst, size_t dstlen, sqlite3_stmt *s, int col);
int store_bind_text(sqlite3_stmt *s, int idx, const char *v);
int store_bind_id(sqlite3_stmt *s, int idx, int64_t id);
sqlite3_stmt *store_stmt(struct store *st, enum store_stmt_id id, char *err);
sqlite3_stmt *store_stmt_once(struct store *st, const char *sql, char *err);
int store_exec_stmt(struct store *st, sqlite3_stmt *s, char *err,
    const char *what);
int store_lookup_id(struct store *st, sqlite3_stmt *s, int64_t *id_r,
    char *err, const char *what);
int store_exec(struct store *st, const char *sql, char *err,
    const char *what);
void store_lower(char *dst, size_t dstlen, const char *src);
int store_ints(struct store *st, sqlite3_stmt *s, int64_t *a, int64_t *b,
    int64_t *c, char *err, const char *what);
int store_sha_valid(const char *sha);
sqlite3_stmt *store_cx(struct store *st, const char *sql, char *err,
    const char *fmt, ...);
int store_sp_begin(struct store *st, char *err);
int store_sp_end(struct store *st, int ok, char *err);
/* store_schema.c */
int store_migrate(struct store *st, char *err);
/* store_consent.c */
int store_contact_id(struct store *st, int64_t account_id, const char *email,
    int64_t *id_r, char *err);

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

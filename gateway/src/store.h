/*
 * store.h - the only door to SQL.  Every query Postdoc runs lives behind
 * these functions, so another backend (PostgreSQL) can be added without
 * touching callers.  One `struct store` is one connection, used by one
 * thread at a time.  Every query is scoped by account where it reads or
 * writes tenant data.  Functions return 0 on success, -1 on error with a
 * message in err (PD_ERRLEN), and lookups return 1 when found, 0 when not.
 */
#ifndef PD_STORE_H
#define PD_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

#define STORE_SCHEMA_VERSION 3

struct store_account {
	int64_t id;
	char name[64];
	char sender_policy[512];	/* "any", "contact", "domains:a,b" */
	int64_t created;
};

struct store_dossier {
	int64_t id;
	int64_t account_id;
	char account[64];
	char sender_policy[512];	/* of the account */
	char ref[128];
	char contact[256];
	char intake_local[80];		/* local part of the intake address */
	char status[8];			/* "open" / "closed" */
	int64_t created;
	int64_t closed;
	char requested[2048];		/* JSON array of document names, or "" */
	char due[16];			/* "YYYY-MM-DD" or "" */
};

struct store_message {
	int64_t id;
	int64_t account_id;
	int64_t dossier_id;
	const char *queue_id;
	const char *mail_from;
	const char *rcpt_to;		/* the recipient that names the dossier */
	const char *helo;
	const char *client_ip;
	int tls;
	int lmtp;
	const char *message_id;
	const char *subject;
	const char *from_header;
	uint64_t size;
	const char *sha256;		/* raw blob */
	const char *parse_status;	/* "ok", "review", "unparsed" */
	const char *anomalies;		/* comma list, may be "" */
	int64_t received;
};

struct store_document {
	int64_t id;
	int64_t account_id;
	int64_t dossier_id;
	int64_t message_id;
	const char *filename;		/* sanitised original name */
	const char *stored_name;	/* server-generated */
	const char *declared_type;
	const char *sniffed_type;
	uint64_t size;
	const char *sha256;
	const char *part_path;		/* MIME path, e.g. "1.2" */
};

/* Open (creating dirs/file), set WAL + synchronous, run migrations. */
int store_open(const char *db_path, const char *sync_mode,
    struct store **st_r, char *err);
void store_close(struct store **st);
int store_schema_version(struct store *st);

int store_begin(struct store *st, char *err);	/* BEGIN IMMEDIATE */
int store_commit(struct store *st, char *err);
void store_rollback(struct store *st);

/* accounts */
int store_account_add(struct store *st, const char *name,
    const char *sender_policy, int64_t *id_r, char *err);
int store_account_get(struct store *st, const char *name,
    struct store_account *a_r, char *err);
/* List callbacks return nonzero to stop early (the list still returns 0);
 * they may call other store functions on the same connection. */
typedef int (*store_account_cb)(const struct store_account *a, void *ctx);
int store_account_list(struct store *st, store_account_cb cb, void *ctx,
    char *err);

/* dossiers */
int store_dossier_create(struct store *st, int64_t account_id,
    const char *contact, const char *ref, const char *intake_local,
    int64_t *id_r, char *err);
int store_dossier_get(struct store *st, int64_t account_id, int64_t id,
    struct store_dossier *d_r, char *err);	/* account_id 0 = any */
int store_dossier_by_ref(struct store *st, int64_t account_id,
    const char *ref, struct store_dossier *d_r, char *err);
/* Routing lookup at RCPT: the intake local part is unique store-wide
 * (matched case-insensitively: locals are stored lower-case). */
int store_dossier_by_local(struct store *st, const char *intake_local,
    struct store_dossier *d_r, char *err);
/* account_id must be the owner (no "any"); closing twice returns 0.
 * Adds a "dossier.closed" event, as create adds "dossier.created". */
int store_dossier_close(struct store *st, int64_t account_id, int64_t id,
    char *err);
typedef int (*store_dossier_cb)(const struct store_dossier *d, void *ctx);
int store_dossier_list(struct store *st, int64_t account_id,
    const char *status, store_dossier_cb cb, void *ctx, char *err);

/* intake: call between store_begin and store_commit */
/* Returns 1 and sets *id_r to the existing row when this dossier already
 * holds a message with the same raw sha256 (duplicate delivery). */
int store_message_find_dup(struct store *st, int64_t dossier_id,
    const char *sha256, int64_t *id_r, char *err);
int store_message_add(struct store *st, const struct store_message *m,
    int64_t *id_r, char *err);
/* Returns 1 when a message other than message_id already brought a
 * document with this sha256 into the dossier. */
int store_document_find_dup(struct store *st, int64_t dossier_id,
    int64_t message_id, const char *sha256, int64_t *id_r, char *err);
int store_document_add(struct store *st, const struct store_document *d,
    int64_t *id_r, char *err);
int store_event_add(struct store *st, int64_t account_id, int64_t dossier_id,
    const char *kind, const char *detail, char *err);

/* reading back, for `dossier show` and `document get` */
struct store_doc_row {
	int64_t id;
	int64_t dossier_id;
	int64_t message_id;
	char filename[512];
	char stored_name[80];
	char declared_type[128];
	char sniffed_type[128];
	uint64_t size;
	char sha256[65];
	int64_t received;
};
struct store_msg_row {
	int64_t id;
	char queue_id[40];
	char mail_from[320];
	char rcpt_to[320];
	char client_ip[64];
	char helo[256];
	int tls;
	int lmtp;
	char message_id[512];
	char subject[1024];
	uint64_t size;
	char sha256[65];
	char parse_status[16];
	char anomalies[256];
	int64_t received;
};
struct store_event_row {
	int64_t id;
	int64_t at;
	char kind[64];
	char detail[1024];
};
typedef int (*store_doc_cb)(const struct store_doc_row *r, void *ctx);
typedef int (*store_msg_cb)(const struct store_msg_row *r, void *ctx);
typedef int (*store_event_cb)(const struct store_event_row *r, void *ctx);
int store_document_list(struct store *st, int64_t account_id,
    int64_t dossier_id, store_doc_cb cb, void *ctx, char *err);
int store_message_list(struct store *st, int64_t account_id,
    int64_t dossier_id, store_msg_cb cb, void *ctx, char *err);
int store_event_list(struct store *st, int64_t account_id,
    int64_t dossier_id, store_event_cb cb, void *ctx, char *err);
/* account_id 0 = any (operator CLI); 1 found, 0 not found, -1 error. */
int store_document_get(struct store *st, int64_t account_id, int64_t id,
    struct store_doc_row *r, char *err);
/* A message's row (its raw blob is r->sha256); account_id 0 = any. */
int store_message_get(struct store *st, int64_t account_id, int64_t id,
    struct store_msg_row *r, char *err);

/* ---- schema v2: outbound queue, suppressions, document requests ---- */

/* What an invitation asked for; requested_json is a JSON array of
 * strings, due "YYYY-MM-DD" or "". */
int store_dossier_set_request(struct store *st, int64_t account_id,
    int64_t dossier_id, const char *requested_json, const char *due,
    char *err);
int store_document_count_since(struct store *st, int64_t dossier_id,
    int64_t since, int64_t *n_r, char *err);

struct store_outbound {
	int64_t id;
	int64_t account_id;
	int64_t dossier_id;		/* 0: none */
	char account[64];
	char kind[32];
	char rcpt[320];
	char rcpt_domain[256];
	char mail_from[320];		/* VERP address */
	char verp_token[64];
	char message_id[256];
	char from_domain[256];
	char sha256[65];		/* the queued message blob */
	uint64_t size;
	char state[16];	/* queued sending sent deferred bounced failed */
	int attempts;
	int64_t next_attempt;
	int64_t created;
	int64_t updated;
	int last_code;
	char last_enhanced[12];
	char last_text[256];
};

int store_outbound_add(struct store *st, const struct store_outbound *o,
    int64_t *id_r, char *err);
int store_outbound_get(struct store *st, int64_t account_id, int64_t id,
    struct store_outbound *o_r, char *err);	/* account_id 0 = any */
int store_outbound_by_verp(struct store *st, const char *token,
    struct store_outbound *o_r, char *err);
/* Atomically move up to `max` due rows (queued/deferred with
 * next_attempt <= now) to "sending" and return them through cb. */
typedef int (*store_outbound_cb)(const struct store_outbound *o, void *ctx);
int store_outbound_claim(struct store *st, int64_t now, int max,
    store_outbound_cb cb, void *ctx, char *err);
/* Record an attempt's outcome: state, reply and the next attempt time. */
int store_outbound_update(struct store *st, int64_t id, const char *state,
    int code, const char *enhanced, const char *text, int64_t next_attempt,
    char *err);
/* Rows left "sending" by a crash go back to "deferred" (due now). */
int store_outbound_recover(struct store *st, int64_t now, int *n_r,
    char *err);
int store_outbound_list(struct store *st, int64_t account_id,
    int64_t dossier_id, const char *state, store_outbound_cb cb, void *ctx,
    char *err);			/* 0 = any account / any dossier / state */
/* Count rows of a kind for a dossier, with the first and last creation. */
int store_outbound_count(struct store *st, int64_t dossier_id,
    const char *kind, int64_t *n_r, int64_t *first_r, int64_t *last_r,
    char *err);

/* Suppression list, per account; email compared lower-cased. */
int store_suppression_add(struct store *st, int64_t account_id,
    const char *email, const char *reason, int64_t expires, char *err);
/* 1 if suppressed now (an unexpired entry), 0 if not. */
int store_suppressed(struct store *st, int64_t account_id,
    const char *email, int64_t now, char *err);
/* The same, with the entry's reason and expiry for a refusal message. */
int store_suppression_get(struct store *st, int64_t account_id,
    const char *email, int64_t now, char *reason_r, size_t reason_len,
    int64_t *expires_r, char *err);

#endif

/*
 * store_privacy.h - the SQL of privacy rights (privacy.c): everything held
 * about one data subject (an address in an account) as JSON, its erasure,
 * rectification, retention purges, the audit trail, erasure records and
 * the keyed hashes of erased addresses.  Every function is scoped by
 * account; account_id 0 means "every account" only where it says so.
 * Addresses are compared lower-cased (callers pass them lower-cased).
 */
#ifndef PD_STORE_PRIVACY_H
#define PD_STORE_PRIVACY_H

#include <stdint.h>

#include <jansson.h>

#include "store.h"

/* Everything about email (account_id 0: all accounts) as one JSON object
 * of arrays: contacts, dossiers, messages, documents, consent_records
 * (with the text shown), consent_requests, campaign_recipients, outbound,
 * events, suppressions.  Each row is an object keyed by column name. */
int store_subject_export(struct store *st, int64_t account_id,
    const char *email, json_t **doc_r, char *err);

/* Accounts holding anything about email, through cb(id, name). */
typedef int (*store_subject_acct_cb)(int64_t id, const char *name, void *ctx);
int store_subject_accounts(struct store *st, int64_t account_id,
    const char *email, store_subject_acct_cb cb, void *ctx, char *err);

/* Holds: rows at or after a cutoff are kept (0: no hold on that class). */
struct store_erase_holds {
	int64_t dossiers;	/* open dossiers, or closed since */
	int64_t outbound;	/* created since */
	int64_t consent;	/* any record since: the whole ledger kept */
};

#define STORE_ERASE_NCOUNTS 11
extern const char *const store_erase_names[STORE_ERASE_NCOUNTS];
struct store_erase_counts {
	int64_t n[STORE_ERASE_NCOUNTS];	/* erased, by store_erase_names */
	int64_t held_dossiers, held_outbound, held_consent;
	int contact_kept;		/* a hold still needs the contact row */
};

/* Erase email in one account, inside the caller's transaction; blob
 * hashes the deleted rows named go to blob_cb (check store_blob_referenced
 * after the commit before removing a file). */
typedef int (*store_sha_cb)(const char *sha256, void *ctx);
int store_subject_erase(struct store *st, int64_t account_id,
    const char *email, const struct store_erase_holds *holds,
    struct store_erase_counts *c_r, store_sha_cb blob_cb, void *ctx,
    char *err);

/* New name (NULL: unchanged) and address (NULL: unchanged) of the
 * contact; n_r contacts changed.  -1 if new_email is already a contact. */
int store_subject_rectify(struct store *st, int64_t account_id,
    const char *email, const char *name, const char *new_email, int *n_r,
    char *err);

/* 1 if any row still names this blob (messages, documents, outbound). */
int store_blob_referenced(struct store *st, const char *sha256, char *err);
/* Every hash a row names (messages, documents, outbound), once each;
 * cb returns nonzero to stop. */
int store_blob_names(struct store *st, store_sha_cb cb, void *ctx,
    char *err);
/* Of the hashes in json_shas (a JSON array of strings), those no row
 * names, each to cb. */
int store_blobs_unnamed(struct store *st, const char *json_shas,
    store_sha_cb cb, void *ctx, char *err);

/* Secure delete on this connection; then, after the erasing commit, fold
 * the WAL into the file, VACUUM, and truncate the WAL to zero. */
int store_secure_delete(struct store *st, char *err);
int store_compact(struct store *st, int vacuum, char *err);

/* Retention: a class's rows older than cutoff (account_id 0: all);
 * dry_run only counts.  Classes: raw_messages, documents (of dossiers
 * closed before cutoff), outbound_bodies, history.  hold_* as above,
 * per account (the caller runs one call per account). */
int store_purge_class(struct store *st, int64_t account_id, const char *cls,
    int64_t cutoff, const struct store_erase_holds *holds, int dry_run,
    int64_t *n_r, store_sha_cb blob_cb, void *ctx, char *err);

/* Contacts attested minors (adult = 'no'), through cb(account, email). */
typedef int (*store_minor_cb)(int64_t account_id, const char *email,
    void *ctx);
int store_minors(struct store *st, int64_t account_id, store_minor_cb cb,
    void *ctx, char *err);

/* Keyed hashes of erased addresses (account_id 0: every account). */
int store_erased_add(struct store *st, int64_t account_id, const char *hash,
    char *err);
int store_erased_has(struct store *st, int64_t account_id, const char *hash,
    char *err);
/* First erasure time for the account (or every account): 1, 0 none. */
int store_erased_at(struct store *st, int64_t account_id, const char *hash,
    int64_t *at_r, char *err);
/* Stop the hash blocking the account (a re-consent); others stay. */
int store_erased_lift(struct store *st, int64_t account_id, const char *hash,
    char *err);
int store_erasure_add(struct store *st, const char *actor,
    const char *account, const char *hash, const char *detail, char *err);

int store_audit_add(struct store *st, const char *actor, const char *action,
    const char *account, const char *subject_hash, const char *detail,
    char *err);
int store_audit_list(struct store *st, store_audit_cb cb, void *ctx,
    char *err);
typedef int (*store_erasure_cb)(const struct store_audit_row *r, void *ctx);
int store_erasure_list(struct store *st, store_erasure_cb cb, void *ctx,
    char *err);

#endif

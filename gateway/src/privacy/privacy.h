/*
 * privacy.h - data subjects' rights and retention: export (access,
 * portability), erasure (with legal holds and zero residue), rectification,
 * the retention purge (per data class, minors), the keyed hash that keeps
 * an erased address out of marketing, and the audit trail of it all.
 * SQL is store_privacy.c; files are blob.c; this module decides.
 */
#ifndef PD_PRIVACY_H
#define PD_PRIVACY_H

#include <stdint.h>

#include <jansson.h>

#include "lib/config.h"

struct store;
struct blob_store;

struct privacy_env {
	const struct pd_config *cfg;
	struct store *st;
	struct blob_store *bs;
	const char *actor;		/* operator name, for the audit trail */
};

/* HMAC-SHA256 (key var/keys/privacy.key, made on first use when create)
 * of the lower-cased address, as 64 hex digits.  0, or -1; 1 when there
 * is no key yet and create is 0 (nothing was ever erased). */
int privacy_hash(const struct pd_config *cfg, const char *email, int create,
    char out[65], char *err);
/* 1 if email was erased in the account (or in every account), 0 if not. */
int privacy_erased(const struct pd_config *cfg, struct store *st,
    int64_t account_id, const char *email, char *err);
/* One audit row; email may be NULL (no subject). */
/*
 * Remove the blob files no row names whose mtime is older than
 * store.blob_grace (what a crash between file and row leaves); *n_r
 * files removed.  Run by serve at start and with each purge.
 */
int privacy_sweep(const struct privacy_env *env, int64_t now, size_t *n_r,
    char *err);

int privacy_audit(const struct privacy_env *env, const char *action,
    const char *account, const char *email, const char *detail, char *err);

/* account_id 0: every account.  0 ok, 1 nothing held, -1 error.  The
 * report (JSON, caller frees) counts what was exported / erased. */
int privacy_export(const struct privacy_env *env, int64_t account_id,
    const char *account, const char *email, const char *out_path,
    json_t **report_r, char *err);
int privacy_erase(const struct privacy_env *env, int64_t account_id,
    const char *account, const char *email, const char *reason,
    json_t **report_r, char *err);
int privacy_rectify(const struct privacy_env *env, int64_t account_id,
    const char *account, const char *email, const char *name,
    const char *new_email, json_t **report_r, char *err);
/* Retention: every class older than its configured age at `now`; with
 * minors, every contact attested a minor is erased too. */
int privacy_purge(const struct privacy_env *env, int64_t now, int dry_run,
    int minors, int vacuum, json_t **report_r, char *err);

#endif

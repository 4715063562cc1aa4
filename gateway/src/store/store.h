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

#include "records.h"

struct store;

#define STORE_SCHEMA_VERSION 11

/* Open (creating dirs/file), set WAL + synchronous, run migrations. */
int store_open(const char *db_path, const char *sync_mode,
    struct store **st_r, char *err);
void store_close(struct store **st);
/* Octets in db_path's WAL file (db_path-wal); 0 when there is none. */
int64_t store_wal_size(const char *db_path);
/*
 * Checkpoint the whole WAL and truncate it to 0 octets, never waiting:
 * 0 done, 1 busy (a reader still uses the WAL, or a writer holds its
 * lock: try again later), -1 error.
 */
int store_wal_truncate(struct store *st, char *err);
int store_schema_version(struct store *st);

int store_begin(struct store *st, char *err);	/* BEGIN IMMEDIATE */
int store_commit(struct store *st, char *err);
void store_rollback(struct store *st);
/* 1 if the connection's last failure was the disk being full (SQLITE_FULL,
 * ENOSPC, EDQUOT): what intake answers 452 4.3.1 rather than 451 4.3.0. */
int store_full(struct store *st);
/* A savepoint per delivery in a batch; ok == 0 rolls it back. */
int store_delivery_begin(struct store *st, char *err);
int store_delivery_end(struct store *st, int ok, char *err);

/* ---- accounts ---- */
int store_account_add(struct store *st, const char *name,
    const char *sender_policy, int64_t *id_r, char *err);
int store_account_get(struct store *st, const char *name,
    struct store_account *a_r, char *err);
/* List callbacks return nonzero to stop early (the list still returns 0);
 * they may call other store functions on the same connection. */
int store_account_list(struct store *st, store_account_cb cb, void *ctx,
    char *err);
/* An account's settings (`account set`; they win over the config file):
 * value NULL removes the key; list calls cb(key, value, ctx) by key. */
int store_account_setting_set(struct store *st, int64_t account_id,
    const char *key, const char *value, int64_t now, char *err);
int store_account_settings(struct store *st, int64_t account_id,
    store_pair_cb cb, void *ctx, char *err);

/* ---- dossiers ---- */
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
int store_dossier_list(struct store *st, int64_t account_id,
    const char *status, store_dossier_cb cb, void *ctx, char *err);

/* ---- the dossier loop (store_item.c) ---- */

/* Items: add (position after the last; a taken slug is an error naming
 * it), list in order, look up (1, 0 not found, -1). */
int store_item_add(struct store *st, int64_t account_id, int64_t dossier_id,
    const struct store_item *it, int64_t *id_r, char *err);
int store_item_list(struct store *st, int64_t account_id, int64_t dossier_id,
    store_item_cb cb, void *ctx, char *err);
int store_item_by_slug(struct store *st, int64_t account_id,
    int64_t dossier_id, const char *slug, struct store_item *it_r,
    char *err);			/* account_id 0 = any */
int store_item_by_id(struct store *st, int64_t account_id, int64_t id,
    struct store_item *it_r, char *err);
/* Outstanding (requested or rejected) items: how many, and the first. */
int store_item_outstanding(struct store *st, int64_t dossier_id,
    int64_t *n_r, struct store_item *first_r, char *err);
/* Recompute an item's state and reason from its documents. */
int store_item_refresh(struct store *st, int64_t item_id, int *changed_r,
    char *err);
/* A document's item (0: unassigned) and review ("pending", "accepted",
 * "rejected"; reason and actor recorded with the time). */
int store_document_set_item(struct store *st, int64_t account_id,
    int64_t doc_id, int64_t item_id, char *err);
int store_document_review(struct store *st, int64_t account_id,
    int64_t doc_id, const char *review, const char *reason,
    const char *actor, char *err);
/* Every required item accepted (and one at least); dossier.completed
 * already recorded. */
int store_dossier_completion(struct store *st, int64_t dossier_id,
    int *complete_r, int *announced_r, char *err);
/* An account's named checklists (items: a JSON array). */
int store_checklist_add(struct store *st, int64_t account_id,
    const char *name, const char *items_json, int64_t *id_r, char *err);
int store_checklist_get(struct store *st, int64_t account_id,
    const char *name, struct store_checklist *c_r, char *err);
int store_checklist_list(struct store *st, int64_t account_id,
    store_checklist_cb cb, void *ctx, char *err);
/* The contact's name and language (NULL: keep what is there). */
int store_contact_set_person(struct store *st, int64_t account_id,
    const char *email, const char *name, const char *locale, char *err);
/* The time the last reminder was for (the schedule's clock, which
 * `remind --now` moves). */
int store_dossier_set_reminded(struct store *st, int64_t dossier_id,
    int64_t at, char *err);

/* ---- messages, documents, raw messages, events ---- */

/*
 * A raw message kept in the database (store.inline_max) instead of a
 * blob file, by sha256.  put: inside the transaction that adds the
 * message's row (an existing row with the same hash is kept).  get: 1
 * and a malloc'd copy the caller frees, 0 if not inline, -1 error.
 * delete: when no row names the hash any more (erasure, retention).
 */
int store_raw_put(struct store *st, const char *sha256, const void *data,
    size_t len, char *err);
int store_raw_get(struct store *st, const char *sha256, void **data_r,
    size_t *len_r, char *err);
int store_raw_delete(struct store *st, const char *sha256, char *err);

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

/* ---- document requests; outbound queue and suppressions ---- */

/* What an invitation asked for; requested_json is a JSON array of
 * strings, due "YYYY-MM-DD" or "". */
int store_dossier_set_request(struct store *st, int64_t account_id,
    int64_t dossier_id, const char *requested_json, const char *due,
    char *err);
int store_document_count_since(struct store *st, int64_t dossier_id,
    int64_t since, int64_t *n_r, char *err);

int store_outbound_add(struct store *st, const struct store_outbound *o,
    int64_t *id_r, char *err);
int store_outbound_get(struct store *st, int64_t account_id, int64_t id,
    struct store_outbound *o_r, char *err);	/* account_id 0 = any */
int store_outbound_by_verp(struct store *st, const char *token,
    struct store_outbound *o_r, char *err);
/* Atomically move up to `max` due rows (queued/deferred with
 * next_attempt <= now) to "sending" and return them through cb. */
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

/* ---- consent ledger; campaigns ---- */

/* Purposes of an account ("newsletter"); names are [a-z0-9_-]. */
int store_purpose_add(struct store *st, int64_t account_id, const char *name,
    int64_t *id_r, char *err);
int store_purpose_get(struct store *st, int64_t account_id, const char *name,
    int64_t *id_r, char *err);
int store_purpose_name(struct store *st, int64_t account_id, int64_t id,
    char *name_r, size_t len, char *err);
int store_purpose_list(struct store *st, int64_t account_id,
    store_purpose_cb cb, void *ctx, char *err);
/* A purpose's display name in a locale: set (label NULL removes it),
 * read (1 found, 0 none) and list (cb(locale, label, ctx), by locale). */
int store_purpose_label_set(struct store *st, int64_t purpose_id,
    const char *locale, const char *label, char *err);
int store_purpose_label(struct store *st, int64_t purpose_id,
    const char *locale, char *label_r, size_t len, char *err);
int store_purpose_labels(struct store *st, int64_t purpose_id,
    store_pair_cb cb, void *ctx, char *err);

/* email must already be lower-cased and valid. */
int store_contact_ensure(struct store *st, int64_t account_id,
    const char *email, int64_t *id_r, char *err);
int store_contact_find(struct store *st, int64_t account_id,
    const char *email, struct store_contact *c_r, char *err);
/* By id alone (a token names a contact): 1 found, 0 not. */
int store_contact_by_id(struct store *st, int64_t id,
    struct store_contact *c_r, char *err);
int store_contact_attest(struct store *st, int64_t account_id,
    int64_t contact_id, const char *adult, const char *by, char *err);
int store_contact_list(struct store *st, int64_t account_id,
    store_contact_cb cb, void *ctx, char *err);
/* 1 if any message to email bounced for the account (hard or expired). */
int store_contact_bounced(struct store *st, int64_t account_id,
    const char *email, char *err);

/* Consent texts: stored once per account and sha256; returns the id. */
int store_consent_text_put(struct store *st, int64_t account_id,
    const char *sha256, const char *body, int64_t *id_r, char *err);

/* Append a record (text fields are cleaned to printable ASCII). */
int store_consent_add(struct store *st, int64_t account_id,
    const struct store_consent_rec *r, int64_t *id_r, char *err);
/* The latest action for (contact, purpose) into action_r: 1, or 0. */
int store_consent_latest(struct store *st, int64_t contact_id,
    int64_t purpose_id, char *action_r, size_t len, char *err);
int store_consent_list(struct store *st, int64_t account_id,
    int64_t contact_id, store_consent_cb cb, void *ctx, char *err);

int store_consent_req_add(struct store *st, const struct store_consent_req *r,
    int64_t *id_r, char *err);
int store_consent_req_get(struct store *st, int64_t id,
    struct store_consent_req *r_r, char *err);
/* 1 if this call confirmed it, 0 if it already was. */
int store_consent_req_confirm(struct store *st, int64_t id, int64_t now,
    char *err);

/* The contact and purpose of the campaign recipient a newsletter's
 * Message-ID names: 1, or 0 if no recipient of the account's campaigns
 * has it.  The rules themselves are outbound/eligible.c's. */
int store_campaign_rcpt_by_msgid(struct store *st, int64_t account_id,
    const char *message_id, int64_t *contact_r, int64_t *purpose_r,
    char *err);

int store_campaign_add(struct store *st, const struct store_campaign *c,
    int64_t *id_r, char *err);
int store_campaign_get(struct store *st, int64_t id, struct store_campaign *c_r,
    char *err);
/*
 * A draft campaign becomes "sending" at now: 1, or 0 if it was not a
 * draft.  Called inside the caller's transaction, which also adds the
 * audience's recipients (campaign.c decides who: eligible.c's rules).
 */
int store_campaign_start(struct store *st, int64_t id, int64_t now,
    char *err);
/* One "pending" recipient of the campaign. */
int store_campaign_rcpt_add(struct store *st, int64_t campaign_id,
    int64_t contact_id, const char *email, int64_t now, char *err);
int store_campaign_finish(struct store *st, int64_t id, int64_t now,
    char *err);

/* Up to max rows not yet settled (pending, queuing) after id after_id. */
int store_campaign_rcpt_next(struct store *st, int64_t campaign_id,
    int64_t after_id, int max, store_campaign_rcpt_cb cb, void *ctx,
    char *err);
int store_campaign_rcpt_set(struct store *st, int64_t id, const char *state,
    const char *message_id, int64_t outbound_id, const char *detail,
    char *err);
/* The outbound row carrying message_id for the account: 1, or 0. */
int store_outbound_by_msgid(struct store *st, int64_t account_id,
    const char *message_id, int64_t *id_r, char *err);
/* The campaign's Markdown body ("" for a template campaign), malloc'd
 * into *md_r; 1 found, 0 no such campaign. */
int store_campaign_body(struct store *st, int64_t id, char **md_r,
    char *err);
int store_campaign_set_body(struct store *st, int64_t id, const char *md,
    char *err);
/* Who was left out when the audience was fixed, by reason (JSON). */
int store_campaign_set_audience(struct store *st, int64_t id,
    const char *json, char *err);
/* The account's campaigns, newest first (cb returns non-zero: stop). */
int store_campaign_list(struct store *st, int64_t account_id,
    store_campaign_cb cb, void *ctx, char *err);
/* Counts for `campaign show`: recipients by state, then their outbound
 * rows by state ("r.pending", "o.sent"...), then the recipients skipped
 * at send time by their detail ("s.withdrawn"), through cb(name, n). */
int store_campaign_counts(struct store *st, int64_t id, store_count_cb cb,
    void *ctx, char *err);

#endif

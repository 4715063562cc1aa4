/*
 * contact.h - a front end's door to an account's contacts and purposes:
 * find, create on first use, age attestation, suppression, the purposes
 * of an account, and reading one contact's ledger.  Addresses are passed
 * already normalised (consent_email_norm).  Lookups return 1 found, 0
 * not, -1 error; the rest 0 or -1, with err.
 */
#ifndef PD_CONSENT_CONTACT_H
#define PD_CONSENT_CONTACT_H

#include <stddef.h>
#include <stdint.h>

#include "store/records.h"

struct store;

int consent_contact_find(struct store *st, int64_t account_id,
    const char *email, struct store_contact *c_r, char *err);
/* By id alone (a web token names a contact): any account. */
int consent_contact_by_id(struct store *st, int64_t id,
    struct store_contact *c_r, char *err);
int consent_contact_ensure(struct store *st, int64_t account_id,
    const char *email, int64_t *id_r, char *err);
/* The contact (made if new) attested adult "yes", "no" or "unknown". */
int consent_contact_attest(struct store *st, int64_t account_id,
    const char *email, const char *adult, const char *by, char *err);
/* No mail to email from the account until expires. */
int consent_contact_suppress(struct store *st, int64_t account_id,
    const char *email, const char *reason, int64_t expires, char *err);

/* Purposes: names are [a-z0-9_-]{1,32} (dossier_valid_word). */
int consent_purpose_add(struct store *st, int64_t account_id,
    const char *name, int64_t *id_r, char *err);
int consent_purpose_get(struct store *st, int64_t account_id,
    const char *name, int64_t *id_r, char *err);
int consent_purpose_name(struct store *st, int64_t account_id, int64_t id,
    char *name_r, size_t len, char *err);
int consent_purpose_list(struct store *st, int64_t account_id,
    store_purpose_cb cb, void *ctx, char *err);
/*
 * What a reader sees for a purpose: its display name in `locale`, else
 * in English, else its internal name.  1 found, 0 no such purpose.
 */
int consent_purpose_label(struct store *st, int64_t account_id, int64_t id,
    const char *locale, char *label_r, size_t len, char *err);
/* Set (label NULL or "": remove) a display name; list them by locale. */
int consent_purpose_label_set(struct store *st, int64_t account_id,
    int64_t id, const char *locale, const char *label, char *err);
int consent_purpose_labels(struct store *st, int64_t id, store_pair_cb cb,
    void *ctx, char *err);
/* Add a purpose with its display names (label NULL: skipped), all or
 * nothing. */
struct consent_label {
	const char *locale, *label;
};
int consent_purpose_add_labelled(struct store *st, int64_t account_id,
    const char *name, const struct consent_label *labels, size_t n,
    int64_t *id_r, char *err);

/* The contact's records, oldest first (text borrowed for the call). */
int consent_records(struct store *st, int64_t account_id,
    int64_t contact_id, store_consent_cb cb, void *ctx, char *err);
/* 1 when the latest record of (contact, purpose) is a grant. */
int consent_granted(struct store *st, int64_t contact_id,
    int64_t purpose_id, char *err);
/* The consent text shown, stored once per account by its sha256. */
int consent_text_put(struct store *st, int64_t account_id, const char *text,
    int64_t *id_r, char *err);

/* Double opt-in requests, for the confirmation page. */
int consent_req_get(struct store *st, int64_t id,
    struct store_consent_req *r_r, char *err);
/* 1 if this call confirmed it, 0 if it already was. */
int consent_req_confirm(struct store *st, int64_t id, int64_t now,
    char *err);

#endif

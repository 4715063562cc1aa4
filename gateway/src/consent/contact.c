/*
 * contact.c - what the front ends read and change of an account's
 * contacts, purposes and ledger, outside the ledger's own rules
 * (consent.c appends records; this file never does): lookups, a contact
 * made on first use, attestation, suppression, texts and opt-in
 * requests.  SQL is the store's.
 */
#include <string.h>

#include <openssl/evp.h>

#include "contact.h"
#include "lib/util.h"
#include "store/store.h"

int
consent_contact_find(struct store *st, int64_t account_id, const char *email,
    struct store_contact *c_r, char *err)
{
	return store_contact_find(st, account_id, email, c_r, err);
}

int
consent_contact_by_id(struct store *st, int64_t id, struct store_contact *c_r,
    char *err)
{
	return store_contact_by_id(st, id, c_r, err);
}

int
consent_contact_ensure(struct store *st, int64_t account_id,
    const char *email, int64_t *id_r, char *err)
{
	return store_contact_ensure(st, account_id, email, id_r, err);
}

int
consent_contact_attest(struct store *st, int64_t account_id,
    const char *email, const char *adult, const char *by, char *err)
{
	int64_t cid;

	if (strcmp(adult, "yes") != 0 && strcmp(adult, "no") != 0 &&
	    strcmp(adult, "unknown") != 0) {
		pd_err(err, "adult is yes, no or unknown");
		return -1;
	}
	if (store_contact_ensure(st, account_id, email, &cid, err) != 0)
		return -1;
	return store_contact_attest(st, account_id, cid, adult, by, err);
}

int
consent_contact_suppress(struct store *st, int64_t account_id,
    const char *email, const char *reason, int64_t expires, char *err)
{
	return store_suppression_add(st, account_id, email, reason, expires,
	    err);
}

int
consent_purpose_add(struct store *st, int64_t account_id, const char *name,
    int64_t *id_r, char *err)
{
	return store_purpose_add(st, account_id, name, id_r, err);
}

int
consent_purpose_get(struct store *st, int64_t account_id, const char *name,
    int64_t *id_r, char *err)
{
	return store_purpose_get(st, account_id, name, id_r, err);
}

int
consent_purpose_name(struct store *st, int64_t account_id, int64_t id,
    char *name_r, size_t len, char *err)
{
	return store_purpose_name(st, account_id, id, name_r, len, err);
}

int
consent_purpose_list(struct store *st, int64_t account_id,
    store_purpose_cb cb, void *ctx, char *err)
{
	return store_purpose_list(st, account_id, cb, ctx, err);
}

int
consent_records(struct store *st, int64_t account_id, int64_t contact_id,
    store_consent_cb cb, void *ctx, char *err)
{
	return store_consent_list(st, account_id, contact_id, cb, ctx, err);
}

int
consent_granted(struct store *st, int64_t contact_id, int64_t purpose_id,
    char *err)
{
	char action[12] = "";
	int rc = store_consent_latest(st, contact_id, purpose_id, action,
	    sizeof(action), err);

	if (rc < 0)
		return -1;
	return rc == 1 && strcmp(action, "grant") == 0;
}

int
consent_text_put(struct store *st, int64_t account_id, const char *text,
    int64_t *id_r, char *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	char hex[65];

	if (EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL) != 1)
		pd_fatal("sha256 failed");
	pd_hex(hex, md, 32);
	return store_consent_text_put(st, account_id, hex, text, id_r, err);
}

int
consent_req_get(struct store *st, int64_t id, struct store_consent_req *r_r,
    char *err)
{
	return store_consent_req_get(st, id, r_r, err);
}

int
consent_req_confirm(struct store *st, int64_t id, int64_t now, char *err)
{
	return store_consent_req_confirm(st, id, now, err);
}

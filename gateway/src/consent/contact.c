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
#include "lib/sanitize.h"
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
consent_purpose_label(struct store *st, int64_t account_id, int64_t id,
    const char *locale, char *label_r, size_t len, char *err)
{
	const char *try[2] = { locale, "en" };
	int i, rc;

	if ((rc = store_purpose_name(st, account_id, id, label_r, len, err))
	    != 1)
		return rc;
	for (i = 0; i < 2; i++) {
		if (try[i] == NULL || try[i][0] == '\0')
			continue;
		rc = store_purpose_label(st, id, try[i], label_r, len, err);
		if (rc != 0)
			return rc;
	}
	return 1;
}

/* [a-z0-9_-]{1,15}, as template locales. */
static int
consent_locale_ok(const char *l)
{
	size_t n = strspn(l, "abcdefghijklmnopqrstuvwxyz0123456789_-");

	return n > 0 && n <= 15 && l[n] == '\0';
}

/* One line of UTF-8 text, 1 to max bytes, no control characters. */
static int
consent_label_ok(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > max || !sanitize_utf8_valid(s, n))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

int
consent_purpose_label_set(struct store *st, int64_t account_id, int64_t id,
    const char *locale, const char *label, char *err)
{
	char name[64];
	int rc;

	if (!consent_locale_ok(locale)) {
		pd_err(err, "locale '%.40s' refused: not [a-z0-9_-]{1,15}",
		    locale);
		return -1;
	}
	if (label != NULL && label[0] != '\0' &&
	    !consent_label_ok(label, 200)) {
		pd_err(err, "a purpose label is one line of at most 200 "
		    "bytes");
		return -1;
	}
	if ((rc = store_purpose_name(st, account_id, id, name, sizeof(name),
	    err)) != 1) {
		if (rc == 0)
			pd_err(err, "no purpose %lld", (long long)id);
		return -1;
	}
	return store_purpose_label_set(st, id, locale,
	    label != NULL && label[0] != '\0' ? label : NULL, err);
}

int
consent_purpose_add_labelled(struct store *st, int64_t account_id,
    const char *name, const struct consent_label *labels, size_t n,
    int64_t *id_r, char *err)
{
	size_t i;

	/* One transaction: a refused label leaves no purpose behind. */
	if (store_begin(st, err) != 0)
		return -1;
	if (store_purpose_add(st, account_id, name, id_r, err) != 0)
		goto fail;
	for (i = 0; i < n; i++)
		if (labels[i].label != NULL && consent_purpose_label_set(st,
		    account_id, *id_r, labels[i].locale, labels[i].label,
		    err) != 0)
			goto fail;
	if (store_commit(st, err) == 0)
		return 0;
fail:
	store_rollback(st);
	return -1;
}

int
consent_purpose_labels(struct store *st, int64_t id, store_pair_cb cb,
    void *ctx, char *err)
{
	return store_purpose_labels(st, id, cb, ctx, err);
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

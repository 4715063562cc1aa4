/*
 * unsub.h - the tokens behind one-click unsubscribe, the mailto: address,
 * the double opt-in confirmation link and the preference centre's CSRF
 * field.  A token is kid | id | purpose id | HMAC-SHA256 truncated to 16
 * bytes, the MAC keyed by var/keys/unsub-<kid>.key and computed over the
 * token type, the key id, the account and both ids: forging one needs the
 * key, and a token of one type is never valid as another.  Old keys stay
 * on disk, so mail sent before a rotation keeps working.  Pure computation
 * plus the key files; it never touches the store.
 */
#ifndef PD_UNSUB_H
#define PD_UNSUB_H

#include <stddef.h>
#include <stdint.h>

struct pd_config;

enum unsub_type {
	UNSUB_T_UNSUB = 'u',	/* id = contact, purpose = purpose */
	UNSUB_T_CONFIRM = 'c'	/* id = consent request, purpose = purpose */
};

#define UNSUB_RAW_LEN 33	/* 1 + 8 + 8 + 16 */
#define UNSUB_B64_LEN 44	/* base64url, no padding */
#define UNSUB_B32_LEN 53	/* base32, lower case: mailto local parts */
#define UNSUB_TOKEN_MAX 64	/* buffer for either, with the NUL */
#define UNSUB_CSRF_MAX 64

struct unsub_token {
	unsigned kid;
	int64_t id;
	int64_t purpose_id;
	unsigned char mac[16];
};

/* Make a token with the configured current key (made on first use). */
int unsub_token_make(const struct pd_config *cfg, enum unsub_type type,
    int64_t account_id, int64_t id, int64_t purpose_id,
    char b64_r[UNSUB_TOKEN_MAX], char b32_r[UNSUB_TOKEN_MAX], char *err);

/*
 * Decode a base64url (URL) or base32 (mailto) token; 1 if it has the
 * right shape, 0 if not.  Says nothing about validity.
 */
int unsub_token_parse(const char *s, struct unsub_token *t_r);

/*
 * 1 if the MAC is right for (type, account, ids) under the token's key,
 * 0 otherwise (including an unknown key id).  Constant time in the MAC.
 * Call it even when the id names nothing (with account_id 0), so an
 * unknown token costs what an invalid one does.
 */
int unsub_token_check(const struct pd_config *cfg, enum unsub_type type,
    int64_t account_id, const struct unsub_token *t);

/* The URL form of a parsed token (for links made from a mailto token). */
void unsub_token_b64(const struct unsub_token *t, char out[UNSUB_TOKEN_MAX]);

/*
 * The preference centre's CSRF field for (token, action, purpose) at
 * time now: "<now>.<mac>", valid for UNSUB_CSRF_TTL seconds.  Bound to
 * the action ("grant" / "withdraw") and the purpose, so the field of a
 * withdraw button never subscribes, and short-lived, so a field copied
 * out of a page does not stay a standing permission.  check: 1 valid.
 */
#define UNSUB_CSRF_TTL 600
int unsub_csrf_make(const struct pd_config *cfg, const char *token,
    const char *action, const char *purpose, int64_t now,
    char out[UNSUB_CSRF_MAX]);
int unsub_csrf_check(const struct pd_config *cfg, const char *token,
    const char *action, const char *purpose, const char *csrf, int64_t now);

/*
 * If addr is "u-<base32 token>@<domain>" (case-insensitive), write the
 * token into token_r (lower case) and return 1; else 0.
 */
int unsub_addr_token(const char *addr, const char *domain, char *token_r,
    size_t token_len);

/* The list domain of the mailto: address (web.list_domain or intake). */
const char *unsub_list_domain(const struct pd_config *cfg);

#endif

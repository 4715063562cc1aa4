/*
 * auth.h - the credentials of the JSON API: bearer tokens scoped to one
 * account (RFC 6750).  The CLI mints, lists and revokes them; the API
 * checks them; both through here, neither through the store.  A token's
 * secret is shown once and never kept.
 */
#ifndef PD_AUTH_H
#define PD_AUTH_H

#include <stdint.h>

#include "store/records.h"

struct store;

/* Tokens look like pdk_<12 hex>_<43 base64url>; the first 16 characters
 * are the public prefix.  1 and out set if tok has that shape. */
#define AUTH_TOKEN_LEN 60
int auth_token_prefix(const char *tok, char out[17]);
/* SHA-256 of the whole token as 64 hex digits (what the store keeps). */
void auth_token_hash(const char *tok, char out[65]);

/* A new token named name (dossier_valid_name) in the account: the secret
 * into tok_r, to be shown once.  0, or -1 ("exists" if the name was
 * ever used in the account). */
int auth_token_mint(struct store *st, int64_t account_id, const char *name,
    char tok_r[AUTH_TOKEN_LEN + 1], char prefix_r[17], int64_t *id_r,
    char *err);
int auth_token_list(struct store *st, int64_t account_id,
    store_api_token_cb cb, void *ctx, char *err);
/* 1 revoked now, 0 no live token of that name, -1 error. */
int auth_token_revoke(struct store *st, int64_t account_id, const char *name,
    int64_t now, char *err);
/* 1 and the token's row when tok is live (its last use noted, at most
 * once a minute), 0 malformed, unknown or revoked, -1 error. */
int auth_token_check(struct store *st, const char *tok,
    struct store_api_token *t_r, char *err);

#endif

/*
 * store_api.h - the SQL of the JSON API: bearer tokens (only a prefix and
 * the SHA-256 of the whole secret are stored) and the API-only queries
 * (a page of dossiers).  Same conventions as store.h: 0 ok, -1 error with
 * err; lookups 1 found, 0 not found.
 */
#ifndef PD_STORE_API_H
#define PD_STORE_API_H

#include <stdint.h>

#include "records.h"

struct store;

/* A new token row; a live or revoked token of that name: -1 "exists". */
int store_api_token_add(struct store *st, int64_t account_id,
    const char *name, const char *prefix, const char *hash, int64_t *id_r,
    char *err);
/* By prefix (unique store-wide), revoked or not: 1, or 0. */
int store_api_token_by_prefix(struct store *st, const char *prefix,
    struct store_api_token *t_r, char *err);
int store_api_token_list(struct store *st, int64_t account_id,
    store_api_token_cb cb, void *ctx, char *err);
/* 1 revoked now, 0 no live token of that name. */
int store_api_token_revoke(struct store *st, int64_t account_id,
    const char *name, int64_t now, char *err);
int store_api_token_used(struct store *st, int64_t id, int64_t now,
    char *err);

/* Ids of the account's dossiers after `after` in id order, at most max.
 * ids_r holds max. */
int store_api_dossier_page(struct store *st, int64_t account_id,
    const struct store_api_filter *f, int64_t after, int max,
    int64_t *ids_r, int *n_r, char *err);

#endif

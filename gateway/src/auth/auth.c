/*
 * auth.c - the API's bearer tokens, minted, listed, revoked and checked
 * in one place: pdk_<12 hex>_<43 base64url>, of which the store keeps
 * only the public prefix and the SHA-256 of the whole.  The CLI's `token`
 * commands and the API's authentication both come here, so the format
 * and the check never drift apart.  A secret is returned once, at
 * minting; it is never logged or stored.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth.h"
#include "lib/util.h"
#include "store/store_api.h"

/* last_used is a hint, not an audit log: one write a minute at most. */
#define AUTH_USED_EVERY 60

/* SHA-256 hex of the whole secret: what the store keeps. */
void
auth_token_hash(const char *tok, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	if (EVP_Digest(tok, strlen(tok), md, &n, EVP_sha256(), NULL) != 1)
		pd_fatal("sha256 failed");
	pd_hex(out, md, 32);
}

/* "pdk_<12 hex>" of a token shaped pdk_<12 hex>_<43 base64url>. */
int
auth_token_prefix(const char *tok, char out[17])
{
	size_t n = strlen(tok);

	if (n != 60 || strncmp(tok, "pdk_", 4) != 0 || tok[16] != '_' ||
	    strspn(tok + 4, "0123456789abcdef") != 12 ||
	    strspn(tok + 17, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	    "qrstuvwxyz0123456789-_") != 43)
		return 0;
	memcpy(out, tok, 16);
	out[16] = '\0';
	return 1;
}

/* RFC 4648 5 base64url without padding: 32 bytes -> 43 characters. */
static void
auth_token_b64url(const unsigned char *in, char out[44])
{
	unsigned char b64[48];
	int i, n = EVP_EncodeBlock(b64, in, 32);

	for (i = 0; i < n && i < 43; i++)
		out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' :
		    (char)b64[i];
	out[43] = '\0';
}

int
auth_token_mint(struct store *st, int64_t account_id, const char *name,
    char tok_r[AUTH_TOKEN_LEN + 1], char prefix_r[17], int64_t *id_r,
    char *err)
{
	unsigned char pre[6], secret[32];
	char hexp[13], b64[44], hash[65];

	if (RAND_bytes(pre, sizeof(pre)) != 1 ||
	    RAND_bytes(secret, sizeof(secret)) != 1) {
		pd_err(err, "no randomness");
		return -1;
	}
	pd_hex(hexp, pre, sizeof(pre));
	auth_token_b64url(secret, b64);
	snprintf(tok_r, AUTH_TOKEN_LEN + 1, "pdk_%s_%s", hexp, b64);
	if (!auth_token_prefix(tok_r, prefix_r))
		pd_fatal("token shape");
	auth_token_hash(tok_r, hash);
	return store_api_token_add(st, account_id, name, prefix_r, hash, id_r,
	    err);
}

int
auth_token_list(struct store *st, int64_t account_id, store_api_token_cb cb,
    void *ctx, char *err)
{
	return store_api_token_list(st, account_id, cb, ctx, err);
}

int
auth_token_revoke(struct store *st, int64_t account_id, const char *name,
    int64_t now, char *err)
{
	return store_api_token_revoke(st, account_id, name, now, err);
}

/* The hash compared in constant time; a revoked token is unknown. */
int
auth_token_check(struct store *st, const char *tok, struct store_api_token *t_r,
    char *err)
{
	char prefix[17], hash[65], uerr[PD_ERRLEN];
	int64_t now = pd_now();
	int rc;

	if (!auth_token_prefix(tok, prefix))
		return 0;
	rc = store_api_token_by_prefix(st, prefix, t_r, err);
	if (rc != 1)
		return rc;
	auth_token_hash(tok, hash);
	if (CRYPTO_memcmp(hash, t_r->hash, 64) != 0 || t_r->revoked != 0)
		return 0;
	if (now - t_r->last_used >= AUTH_USED_EVERY &&
	    store_api_token_used(st, t_r->id, now, uerr) != 0)
		log_warn("api: token %s: last use not recorded: %s", prefix,
		    uerr);
	return 1;
}

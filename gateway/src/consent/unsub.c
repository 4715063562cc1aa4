/*
 * unsub.c - HMAC-SHA256 tokens for unsubscribe links, mailto: addresses,
 * double opt-in confirmations and CSRF fields, and the key files behind
 * them (var/keys/unsub-<kid>.key: 32 random bytes, mode 0600, made on
 * first use of the current key id, kept forever so old mail still works).
 * Never says why a token is refused: unknown and forged look the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/config.h"
#include "unsub.h"
#include "lib/util.h"

#define UNSUB_KEY_LEN 32
#define UNSUB_MAC_LEN 16	/* 128 bits: U10 asks for >= 128 */

/* Keys are read once per process; the HTTP thread, the SMTP loop and
 * the workers all verify tokens. */
static pthread_mutex_t unsub_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int state;		/* 0 not tried, 1 loaded, -1 absent */
	unsigned char key[UNSUB_KEY_LEN];
} unsub_keys[256];

static const char unsub_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char unsub_b32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* ---- key files ---- */

static int
unsub_key_read(const char *path, unsigned char *key)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, key, UNSUB_KEY_LEN);
	close(fd);
	return n == UNSUB_KEY_LEN ? 0 : -1;
}

/* Create the key with O_EXCL: two processes racing keep the first one. */
static int
unsub_key_create(const char *dir, const char *path, unsigned char *key,
    char *err)
{
	int fd;

	if (pd_mkdirs(dir, 0700) != 0) {
		pd_err(err, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (pd_random(key, UNSUB_KEY_LEN) != 0) {
		pd_err(err, "no random bytes for an unsubscribe key");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd >= 0)
		pd_own_fd(fd);
	if (fd < 0) {
		if (errno == EEXIST && unsub_key_read(path, key) == 0)
			return 0;
		pd_err(err, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	if (write(fd, key, UNSUB_KEY_LEN) != UNSUB_KEY_LEN || fsync(fd) != 0) {
		pd_err(err, "cannot write %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	pd_fsync_dir(dir);
	log_info("unsubscribe key %s created", path);
	return 0;
}

/* The key for kid, loading (or, if create, making) it once. */
static const unsigned char *
unsub_key(const struct pd_config *cfg, unsigned kid, int create, char *err)
{
	char dir[4096], path[4200];
	const unsigned char *k = NULL;

	if (kid > 255)
		return NULL;
	pthread_mutex_lock(&unsub_mu);
	if (unsub_keys[kid].state == 1) {
		k = unsub_keys[kid].key;
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s/keys", cfg->var_dir);
	snprintf(path, sizeof(path), "%s/unsub-%u.key", dir, kid);
	if (unsub_key_read(path, unsub_keys[kid].key) == 0 ||
	    (create && unsub_key_create(dir, path, unsub_keys[kid].key,
	    err) == 0)) {
		unsub_keys[kid].state = 1;
		k = unsub_keys[kid].key;
	} else if (!create && err != NULL)
		pd_err(err, "no unsubscribe key %u", kid);
out:
	pthread_mutex_unlock(&unsub_mu);
	return k;
}

/* ---- MAC ---- */

static void
unsub_put64(unsigned char *p, int64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (unsigned char)((uint64_t)v & 0xff);
		v = (int64_t)((uint64_t)v >> 8);
	}
}

static int64_t
unsub_get64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return (int64_t)v;
}

static void
unsub_mac(const unsigned char *key, enum unsub_type type, unsigned kid,
    int64_t account_id, int64_t id, int64_t purpose_id,
    unsigned char mac[UNSUB_MAC_LEN])
{
	unsigned char msg[2 + 24], full[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	msg[0] = (unsigned char)type;
	msg[1] = (unsigned char)kid;
	unsub_put64(msg + 2, account_id);
	unsub_put64(msg + 10, id);
	unsub_put64(msg + 18, purpose_id);
	if (HMAC(EVP_sha256(), key, UNSUB_KEY_LEN, msg, sizeof(msg), full,
	    &len) == NULL || len < UNSUB_MAC_LEN)
		pd_fatal("HMAC-SHA256 failed");
	memcpy(mac, full, UNSUB_MAC_LEN);
}

/* ---- encodings ---- */

static void
unsub_enc64(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;
	unsigned acc = 0, bits = 0;

	for (i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			out[o++] = unsub_b64[(acc >> (bits - 6)) & 63];
			bits -= 6;
		}
	}
	if (bits > 0)
		out[o++] = unsub_b64[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

static void
unsub_enc32(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;
	unsigned acc = 0, bits = 0;

	for (i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = unsub_b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = unsub_b32[(acc << (5 - bits)) & 31];
	out[o] = '\0';
}

/* Decode exactly `want` bytes from s in alphabet abc (bits per char). */
static int
unsub_dec(const char *s, size_t slen, const char *abc, unsigned w,
    unsigned char *out, size_t want)
{
	size_t i, o = 0;
	unsigned acc = 0, bits = 0;
	const char *p;

	for (i = 0; i < slen; i++) {
		char ch = s[i];

		if (w == 5 && ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch == '\0' || (p = strchr(abc, ch)) == NULL)
			return 0;
		acc = (acc << w) | (unsigned)(p - abc);
		bits += w;
		if (bits >= 8) {
			if (o == want)
				return 0;
			out[o++] = (unsigned char)(acc >> (bits - 8));
			bits -= 8;
		}
		acc &= (1u << bits) - 1;
	}
	/* Leftover bits must be zero: one encoding per token. */
	return o == want && acc == 0;
}

static void
unsub_pack(const struct unsub_token *t, unsigned char raw[UNSUB_RAW_LEN])
{
	raw[0] = (unsigned char)t->kid;
	unsub_put64(raw + 1, t->id);
	unsub_put64(raw + 9, t->purpose_id);
	memcpy(raw + 17, t->mac, UNSUB_MAC_LEN);
}

/* ---- tokens ---- */

int
unsub_token_make(const struct pd_config *cfg, enum unsub_type type,
    int64_t account_id, int64_t id, int64_t purpose_id,
    char b64_r[UNSUB_TOKEN_MAX], char b32_r[UNSUB_TOKEN_MAX], char *err)
{
	struct unsub_token t;
	unsigned char raw[UNSUB_RAW_LEN];
	const unsigned char *key;

	t.kid = (unsigned)cfg->web_unsub_kid;
	t.id = id;
	t.purpose_id = purpose_id;
	if ((key = unsub_key(cfg, t.kid, 1, err)) == NULL)
		return -1;
	unsub_mac(key, type, t.kid, account_id, id, purpose_id, t.mac);
	unsub_pack(&t, raw);
	if (b64_r != NULL)
		unsub_enc64(raw, sizeof(raw), b64_r);
	if (b32_r != NULL)
		unsub_enc32(raw, sizeof(raw), b32_r);
	return 0;
}

void
unsub_token_b64(const struct unsub_token *t, char out[UNSUB_TOKEN_MAX])
{
	unsigned char raw[UNSUB_RAW_LEN];

	unsub_pack(t, raw);
	unsub_enc64(raw, sizeof(raw), out);
}

int
unsub_token_parse(const char *s, struct unsub_token *t_r)
{
	unsigned char raw[UNSUB_RAW_LEN];
	size_t n = strnlen(s, UNSUB_TOKEN_MAX);

	memset(t_r, 0, sizeof(*t_r));
	if (n == UNSUB_B64_LEN) {
		if (!unsub_dec(s, n, unsub_b64, 6, raw, sizeof(raw)))
			return 0;
	} else if (n == UNSUB_B32_LEN) {
		if (!unsub_dec(s, n, unsub_b32, 5, raw, sizeof(raw)))
			return 0;
	} else
		return 0;
	t_r->kid = raw[0];
	t_r->id = unsub_get64(raw + 1);
	t_r->purpose_id = unsub_get64(raw + 9);
	memcpy(t_r->mac, raw + 17, UNSUB_MAC_LEN);
	return t_r->id > 0 && t_r->purpose_id > 0;
}

int
unsub_token_check(const struct pd_config *cfg, enum unsub_type type,
    int64_t account_id, const struct unsub_token *t)
{
	static const unsigned char zero[UNSUB_KEY_LEN];
	const unsigned char *key = unsub_key(cfg, t->kid, 0, NULL);
	unsigned char mac[UNSUB_MAC_LEN];
	int ok;

	/* An unknown key id still costs one HMAC: no timing oracle. */
	unsub_mac(key != NULL ? key : zero, type, t->kid, account_id, t->id,
	    t->purpose_id, mac);
	ok = CRYPTO_memcmp(mac, t->mac, UNSUB_MAC_LEN) == 0;
	return ok && key != NULL && account_id > 0;
}

/* ---- CSRF ---- */

static int
unsub_csrf_mac(const struct pd_config *cfg, const char *token,
    const char *action, const char *purpose, long long ts,
    char out[UNSUB_CSRF_MAX])
{
	const unsigned char *key = unsub_key(cfg, (unsigned)cfg->web_unsub_kid,
	    1, NULL);
	unsigned char full[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	char msg[512];
	int n;

	if (key == NULL)
		return -1;
	n = snprintf(msg, sizeof(msg), "csrf2\n%s\n%s\n%s\n%lld", token,
	    action, purpose, ts);
	if (n < 0 || n >= (int)sizeof(msg))
		return -1;
	if (HMAC(EVP_sha256(), key, UNSUB_KEY_LEN, (unsigned char *)msg,
	    (size_t)n, full, &len) == NULL)
		pd_fatal("HMAC-SHA256 failed");
	n = snprintf(out, UNSUB_CSRF_MAX, "%lld.", ts);
	unsub_enc64(full, 18, out + n);
	return 0;
}

int
unsub_csrf_make(const struct pd_config *cfg, const char *token,
    const char *action, const char *purpose, int64_t now,
    char out[UNSUB_CSRF_MAX])
{
	return unsub_csrf_mac(cfg, token, action, purpose, (long long)now, out);
}

int
unsub_csrf_check(const struct pd_config *cfg, const char *token,
    const char *action, const char *purpose, const char *csrf, int64_t now)
{
	char want[UNSUB_CSRF_MAX], *end;
	long long ts;

	if (csrf == NULL || strnlen(csrf, UNSUB_CSRF_MAX) >= UNSUB_CSRF_MAX)
		return 0;
	errno = 0;
	ts = strtoll(csrf, &end, 10);
	if (errno != 0 || end == csrf || *end != '.' || ts > now + 60 ||
	    now - ts > UNSUB_CSRF_TTL)
		return 0;
	if (unsub_csrf_mac(cfg, token, action, purpose, ts, want) != 0 ||
	    strlen(want) != strlen(csrf))
		return 0;
	return CRYPTO_memcmp(want, csrf, strlen(want)) == 0;
}

/* ---- mailto ---- */

const char *
unsub_list_domain(const struct pd_config *cfg)
{
	return cfg->web_list_domain != NULL && cfg->web_list_domain[0] != '\0'
	    ? cfg->web_list_domain : cfg->intake_domain;
}

int
unsub_addr_token(const char *addr, const char *domain, char *token_r,
    size_t token_len)
{
	const char *at = strrchr(addr, '@');
	size_t n, i;

	if (at == NULL || (addr[0] != 'u' && addr[0] != 'U') || addr[1] != '-')
		return 0;
	if (strcasecmp(at + 1, domain) != 0)
		return 0;
	n = (size_t)(at - addr) - 2;
	if (n != UNSUB_B32_LEN || n >= token_len)
		return 0;
	for (i = 0; i < n; i++) {
		char ch = addr[2 + i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (strchr(unsub_b32, ch) == NULL || ch == '\0')
			return 0;
		token_r[i] = ch;
	}
	token_r[n] = '\0';
	return 1;
}

/*
 * dkim.c - the `dkim` plugin: signs each outbound message (RFC 6376,
 * rsa-sha256, relaxed/relaxed; canonicalization here, RSA by OpenSSL with
 * each key parsed once) and hands the DKIM-Signature field back to the
 * core to prepend.  Owns the signing keys:
 * configured ones, or one generated per From domain on first use in
 * key_dir, with the DNS TXT record to publish beside it.  It never rewrites
 * the message file, and never names a file after an unchecked domain.
 *
 * settings = { key_dir = "var/dkim"; selector = "postdoc";
 *   keys = ( { domain = "acme.example"; selector = "s1";
 *              key_file = "/etc/postdoc/acme.pem"; } ); };
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "postdoc/plugin.h"

#define DK_MAX_KEYS 256
#define DK_DOMAIN_MAX 253	/* RFC 1035 2.3.4, without the root dot */
#define DK_LABEL_MAX 63
#define DK_KEY_MAX 65536	/* a PEM key is ~1.7 KB; refuse anything huge */
#define DK_RSA_BITS 2048	/* RFC 8301 3.2: at least 1024, 2048 advised */
#define DK_TXT_CHUNK 255	/* RFC 1035 3.3.14: one character-string */
#define DK_HDR "DKIM-Signature"
#define DK_HDRS_MAX (1024 * 1024)	/* a header block we sign; ours ~2 KB */
#define DK_CACHE_MAX 512	/* parsed keys kept; more are parsed each time */

struct dk_key {
	char *domain;
	char *selector;
	char *key_file;
};

/* A parsed key and the version of its file it came from. */
struct dk_cached {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	EVP_PKEY *pk;
};

struct dk_state {
	char *key_dir;
	char *selector;
	int nkeys;
	struct dk_key keys[DK_MAX_KEYS];
	pthread_mutex_t gen_lock;	/* lazy key creation, per process */
	pthread_mutex_t cache_lock;
	int ncache;
	struct dk_cached cache[DK_CACHE_MAX];
};

/*
 * What is signed (RFC 6376 5.4.1 recommends From, To, Subject, Date,
 * Message-ID and the MIME fields; RFC 8058 3.3 requires the
 * List-Unsubscribe pair to be covered).  Absent ones are skipped.
 */
static const char *dk_sign_hdrs[] = {
	"from", "to", "subject", "date", "message-id", "reply-to",
	"mime-version", "content-type", "list-unsubscribe",
	"list-unsubscribe-post", NULL
};
/* Over-signing From (RFC 6376 8.15) makes an added second From break the
 * signature instead of being displayed to the reader. */
static const char *dk_oversign_hdrs[] = { "from", NULL };

/* Error texts go through here: a long path is cut, which is fine. */
static void dk_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
dk_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- names ----------------------------------------------------------- */

/* LDH labels separated by dots: safe both as d=/s= and in a file name. */
static int
dk_name_ok(const char *s, int allow_dots)
{
	size_t i, n = strlen(s), label = 0;

	if (n == 0 || n > DK_DOMAIN_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.' && allow_dots) {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return 0;
		if ((label == 0 && c == '-') || ++label > DK_LABEL_MAX)
			return 0;
	}
	return label > 0 && s[n - 1] != '-';
}

static char *
dk_lower_dup(const char *s)
{
	char *d = strdup(s);
	size_t i;

	for (i = 0; d != NULL && d[i] != '\0'; i++)
		if (d[i] >= 'A' && d[i] <= 'Z')
			d[i] = (char)(d[i] - 'A' + 'a');
	return d;
}

/* ---- configuration --------------------------------------------------- */

static void
dk_deinit(void *state)
{
	struct dk_state *st = state;
	int i;

	if (st == NULL)
		return;
	for (i = 0; i < st->nkeys; i++) {
		free(st->keys[i].domain);
		free(st->keys[i].selector);
		free(st->keys[i].key_file);
	}
	for (i = 0; i < st->ncache; i++) {
		free(st->cache[i].path);
		EVP_PKEY_free(st->cache[i].pk);
	}
	pthread_mutex_destroy(&st->cache_lock);
	pthread_mutex_destroy(&st->gen_lock);
	free(st->key_dir);
	free(st->selector);
	free(st);
}

static int
dk_key_read(const config_setting_t *k, struct dk_state *st, char *err,
    size_t errlen)
{
	const char *domain, *file, *sel = st->selector;
	struct dk_key *key = &st->keys[st->nkeys];

	if (config_setting_lookup_string(k, "domain", &domain) != CONFIG_TRUE
	    || config_setting_lookup_string(k, "key_file", &file) !=
	    CONFIG_TRUE) {
		dk_err(err, errlen, "line %d: each key needs domain and "
		    "key_file", config_setting_source_line(k));
		return -1;
	}
	config_setting_lookup_string(k, "selector", &sel);
	if (!dk_name_ok(domain, 1) || !dk_name_ok(sel, 1)) {
		dk_err(err, errlen, "line %d: domain or selector is not a "
		    "DNS name", config_setting_source_line(k));
		return -1;
	}
	key->domain = dk_lower_dup(domain);
	key->selector = strdup(sel);
	key->key_file = strdup(file);
	st->nkeys++;
	return 0;
}

static int
dk_keys_read(const config_setting_t *list, struct dk_state *st, char *err,
    size_t errlen)
{
	int i, n = config_setting_length(list);

	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		dk_err(err, errlen, "line %d: 'keys' must be a list",
		    config_setting_source_line(list));
		return -1;
	}
	if (n > DK_MAX_KEYS) {
		dk_err(err, errlen, "line %d: more than %d keys",
		    config_setting_source_line(list), DK_MAX_KEYS);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (dk_key_read(config_setting_get_elem(list, (unsigned)i), st,
		    err, errlen) != 0)
			return -1;
	return 0;
}

static int
dk_settings_read(const config_setting_t *settings, struct dk_state *st,
    char *err, size_t errlen)
{
	const char *dir = "var/dkim", *sel = "postdoc";
	const config_setting_t *keys = NULL;

	if (settings != NULL) {
		config_setting_lookup_string(settings, "key_dir", &dir);
		config_setting_lookup_string(settings, "selector", &sel);
		keys = config_setting_get_member(settings, "keys");
	}
	if (!dk_name_ok(sel, 1)) {
		dk_err(err, errlen, "selector \"%.64s\" is not a DNS name",
		    sel);
		return -1;
	}
	st->key_dir = strdup(dir);
	st->selector = strdup(sel);
	if (keys != NULL && dk_keys_read(keys, st, err, errlen) != 0)
		return -1;
	return 0;
}

static int
dk_init(const config_setting_t *settings, void **state_r, char *err,
    size_t errlen)
{
	struct dk_state *st = calloc(1, sizeof(*st));

	if (st == NULL) {
		dk_err(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&st->gen_lock, NULL);
	pthread_mutex_init(&st->cache_lock, NULL);
	if (dk_settings_read(settings, st, err, errlen) != 0) {
		dk_deinit(st);
		return -1;
	}
	*state_r = st;
	return 0;
}

/* ---- key generation -------------------------------------------------- */

static int
dk_write_all(int fd, const char *buf, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* mkdir -p, private: the directory holds private keys. */
static int
dk_mkdirs(const char *dir)
{
	char path[4096], *p;

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* A new file that nobody else can have opened: O_EXCL, no symlink. */
static int
dk_write_new(const char *path, const char *buf, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode);
	int rc;

	if (fd < 0)
		return -1;
	rc = dk_write_all(fd, buf, n) == 0 && fsync(fd) == 0 ? 0 : -1;
	if (close(fd) != 0)
		rc = -1;
	if (rc != 0)
		unlink(path);
	return rc;
}

/* Temp name in the same directory, so link()/rename() stay atomic. */
static void
dk_tmp_name(char *out, size_t outlen, const char *final)
{
	unsigned char rnd[8];
	unsigned long long v = 0;
	size_t i;

	if (RAND_bytes(rnd, sizeof(rnd)) == 1)
		for (i = 0; i < sizeof(rnd); i++)
			v = (v << 8) | rnd[i];
	snprintf(out, outlen, "%s.tmp.%ld.%llx", final, (long)getpid(), v);
}

/* PEM private key and base64 SubjectPublicKeyInfo (RFC 6376 3.6.1 p=). */
static int
dk_keygen_pem(char **pem_r, size_t *pemlen_r, char **pub_r)
{
	EVP_PKEY *pk = EVP_RSA_gen(DK_RSA_BITS);
	BIO *bio = BIO_new(BIO_s_mem());
	unsigned char *der = NULL;
	char *mem;
	long n;
	int dlen, rc = -1;

	if (pk == NULL || bio == NULL ||
	    !PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) ||
	    (dlen = i2d_PUBKEY(pk, &der)) <= 0)
		goto out;
	n = BIO_get_mem_data(bio, &mem);
	*pem_r = malloc((size_t)n);
	*pub_r = malloc(((size_t)dlen + 2) / 3 * 4 + 1);
	if (*pem_r == NULL || *pub_r == NULL) {
		free(*pem_r);
		free(*pub_r);
		goto out;
	}
	memcpy(*pem_r, mem, (size_t)n);
	*pemlen_r = (size_t)n;
	EVP_EncodeBlock((unsigned char *)*pub_r, der, dlen);
	rc = 0;
out:
	OPENSSL_free(der);
	BIO_free(bio);
	EVP_PKEY_free(pk);
	return rc;
}

/*
 * The zone-file line to publish.  A TXT character-string holds at most
 * 255 octets, so p= of a 2048-bit key is split into several strings,
 * which resolvers concatenate (RFC 6376 3.6.2.2).
 */
static int
dk_write_txt(const char *path, const char *sel, const char *domain,
    const char *pub)
{
	char *rec = NULL, *line = NULL, tmp[4096];
	size_t reclen, off, n = 0, cap;
	int rc = -1;

	if (asprintf(&rec, "v=DKIM1; k=rsa; p=%s", pub) < 0)
		return -1;
	reclen = strlen(rec);
	cap = reclen + reclen / DK_TXT_CHUNK * 3 + strlen(sel) +
	    strlen(domain) + 64;
	if ((line = malloc(cap)) == NULL)
		goto out;
	n = (size_t)snprintf(line, cap, "%s._domainkey.%s IN TXT", sel,
	    domain);
	for (off = 0; off < reclen; off += DK_TXT_CHUNK)
		n += (size_t)snprintf(line + n, cap - n, " \"%.*s\"",
		    DK_TXT_CHUNK, rec + off);
	n += (size_t)snprintf(line + n, cap - n, "\n");
	dk_tmp_name(tmp, sizeof(tmp), path);
	if (dk_write_new(tmp, line, n, 0644) == 0) {
		rc = rename(tmp, path);
		if (rc != 0)
			unlink(tmp);
	}
out:
	free(rec);
	free(line);
	return rc;
}

/*
 * Create key_dir/<domain>.<selector>.key once.  The key is written to a
 * temp file and link()ed into place: unlike rename(), link() refuses to
 * replace a key another process created meanwhile, so two processes never
 * sign with two different keys for one selector.
 */
static int
dk_key_create(const struct dk_state *st, const char *path,
    const char *domain, char *err, size_t errlen)
{
	char tmp[4096], txt[4096], *pem = NULL, *pub = NULL;
	size_t pemlen = 0;
	int rc = -1, won;

	if (dk_mkdirs(st->key_dir) != 0) {
		dk_err(err, errlen, "dkim: cannot create %s: %s",
		    st->key_dir, strerror(errno));
		return -1;
	}
	if (dk_keygen_pem(&pem, &pemlen, &pub) != 0) {
		dk_err(err, errlen, "dkim: RSA key generation failed");
		return -1;
	}
	dk_tmp_name(tmp, sizeof(tmp), path);
	if (dk_write_new(tmp, pem, pemlen, 0600) != 0) {
		dk_err(err, errlen, "dkim: cannot write %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	won = link(tmp, path) == 0;
	if (!won && errno != EEXIST) {
		dk_err(err, errlen, "dkim: cannot create %s: %s", path,
		    strerror(errno));
		unlink(tmp);
		goto out;
	}
	unlink(tmp);
	rc = 0;
	if (won) {	/* only the creator publishes and logs */
		snprintf(txt, sizeof(txt), "%s/%s.%s.txt", st->key_dir, domain,
		    st->selector);
		if (dk_write_txt(txt, st->selector, domain, pub) == 0)
			fprintf(stderr, "dkim: new key %s for %s; publish the "
			    "DNS record in %s\n", path, domain, txt);
		else
			fprintf(stderr, "dkim: new key %s for %s; cannot "
			    "write %s: %s\n", path, domain, txt,
			    strerror(errno));
	}
out:
	free(pem);
	free(pub);
	return rc;
}

/* ---- keys ------------------------------------------------------------ */

/* The PEM text of an open key file, at most DK_KEY_MAX bytes. */
static char *
dk_read_key(int fd, const char *path, char *err, size_t errlen)
{
	char *buf = malloc(DK_KEY_MAX + 1);
	ssize_t n = buf != NULL ? read(fd, buf, DK_KEY_MAX + 1) : -1;

	if (n < 0 || n > DK_KEY_MAX) {
		dk_err(err, errlen, "dkim: cannot read key %s: %s", path,
		    n < 0 ? strerror(errno) : "larger than 64 KB");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static int
dk_same_file(const struct dk_cached *c, const char *path,
    const struct stat *sb)
{
	return c->path != NULL && strcmp(c->path, path) == 0 &&
	    c->dev == sb->st_dev && c->ino == sb->st_ino &&
	    c->size == sb->st_size &&
	    c->mtime.tv_sec == sb->st_mtim.tv_sec &&
	    c->mtime.tv_nsec == sb->st_mtim.tv_nsec;
}

/* The cached key for this very file (same inode, size, mtime), or NULL. */
static EVP_PKEY *
dk_cache_get(struct dk_state *st, const char *path, const struct stat *sb)
{
	EVP_PKEY *pk = NULL;
	int i;

	pthread_mutex_lock(&st->cache_lock);
	for (i = 0; i < st->ncache && pk == NULL; i++)
		if (dk_same_file(&st->cache[i], path, sb) &&
		    EVP_PKEY_up_ref(st->cache[i].pk) == 1)
			pk = st->cache[i].pk;
	pthread_mutex_unlock(&st->cache_lock);
	return pk;
}

/* Remember pk for path (replacing an older version of the file). */
static void
dk_cache_put(struct dk_state *st, const char *path, const struct stat *sb,
    EVP_PKEY *pk)
{
	struct dk_cached *c = NULL;
	int i;

	pthread_mutex_lock(&st->cache_lock);
	for (i = 0; i < st->ncache && c == NULL; i++)
		if (strcmp(st->cache[i].path, path) == 0)
			c = &st->cache[i];
	if (c == NULL && st->ncache < DK_CACHE_MAX &&
	    (st->cache[st->ncache].path = strdup(path)) != NULL)
		c = &st->cache[st->ncache++];
	if (c != NULL && EVP_PKEY_up_ref(pk) == 1) {
		EVP_PKEY_free(c->pk);
		c->pk = pk;
		c->dev = sb->st_dev;
		c->ino = sb->st_ino;
		c->size = sb->st_size;
		c->mtime = sb->st_mtim;
	}
	pthread_mutex_unlock(&st->cache_lock);
}

/* An RSA private key from a PEM file (PKCS#8 or PKCS#1). */
static EVP_PKEY *
dk_parse_key(int fd, const char *path, char *err, size_t errlen)
{
	char *pem = dk_read_key(fd, path, err, errlen);
	BIO *bio;
	EVP_PKEY *pk = NULL;

	if (pem == NULL)
		return NULL;
	if ((bio = BIO_new_mem_buf(pem, -1)) != NULL)
		pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	if (pk != NULL && EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pk);
		pk = NULL;
	}
	if (pk == NULL)
		dk_err(err, errlen, "dkim: %s is not a PEM RSA private key",
		    path);
	return pk;
}

/*
 * The key in path, parsed once per version of the file: parsing a PEM
 * key and setting up its RSA blinding cost ~0.6 ms a message, twice the
 * signature itself (bench/README.md).  A replaced file is read again.
 */
static EVP_PKEY *
dk_load_key(struct dk_state *st, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	EVP_PKEY *pk = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &sb) != 0) {
		dk_err(err, errlen, "dkim: cannot read key %s: %s", path,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if ((pk = dk_cache_get(st, path, &sb)) == NULL &&
	    (pk = dk_parse_key(fd, path, err, errlen)) != NULL)
		dk_cache_put(st, path, &sb, pk);
	close(fd);
	return pk;
}

/* The key for a domain: configured, else key_dir's, made on first use. */
static EVP_PKEY *
dk_key_for(struct dk_state *st, const char *domain, const char **sel_r,
    char *err, size_t errlen)
{
	char path[4096];
	int i, rc = 0;

	for (i = 0; i < st->nkeys; i++)
		if (strcasecmp(st->keys[i].domain, domain) == 0) {
			*sel_r = st->keys[i].selector;
			return dk_load_key(st, st->keys[i].key_file, err,
			    errlen);
		}
	*sel_r = st->selector;
	snprintf(path, sizeof(path), "%s/%s.%s.key", st->key_dir, domain,
	    st->selector);
	pthread_mutex_lock(&st->gen_lock);
	if (access(path, F_OK) != 0)
		rc = dk_key_create(st, path, domain, err, errlen);
	pthread_mutex_unlock(&st->gen_lock);
	return rc == 0 ? dk_load_key(st, path, err, errlen) : NULL;
}

/* ---- canonicalization (RFC 6376 3.4.2, 3.4.4: relaxed) ---------------- */

/* The body hash's input, written in chunks. */
struct dk_body {
	EVP_MD_CTX *md;
	unsigned char out[8192];
	size_t n;
	size_t crlf;	/* line ends not written yet: maybe trailing empty lines */
	int wsp;	/* WSP seen since the last text of this line */
	int cr;		/* a CR, maybe of a CRLF */
	int any;	/* some text was written */
	size_t raw;	/* body bytes read */
	unsigned char last[2];	/* the last two of them */
};

static void
dk_body_out(struct dk_body *b, const char *s, size_t len)
{
	if (b->n + len > sizeof(b->out)) {
		EVP_DigestUpdate(b->md, b->out, b->n);
		b->n = 0;
	}
	memcpy(b->out + b->n, s, len);
	b->n += len;
}

/* Text: the line ends held back were not trailing after all, and a run
 * of WSP inside a line is one SP (3.4.4 b). */
static void
dk_body_text(struct dk_body *b, unsigned char c)
{
	for (; b->crlf > 0; b->crlf--)
		dk_body_out(b, "\r\n", 2);
	if (b->wsp)
		dk_body_out(b, " ", 1);
	b->wsp = 0;
	dk_body_out(b, (const char *)&c, 1);
	b->any = 1;
}

/* WSP at the end of a line is dropped (3.4.4 a): held until text. */
static void
dk_body_feed(struct dk_body *b, const unsigned char *p, size_t n)
{
	size_t i;

	if (n >= 2)
		memcpy(b->last, p + n - 2, 2);
	else if (n == 1) {
		b->last[0] = b->last[1];
		b->last[1] = p[0];
	}
	b->raw += n;
	for (i = 0; i < n; i++) {
		if (b->cr) {
			b->cr = 0;
			if (p[i] == '\n') {
				b->crlf++;
				b->wsp = 0;
				continue;
			}
			dk_body_text(b, '\r');
		}
		if (p[i] == '\r')
			b->cr = 1;
		else if (p[i] == ' ' || p[i] == '\t')
			b->wsp = 1;
		else
			dk_body_text(b, p[i]);
	}
}

/* Empty lines at the end are dropped; a non-empty body ends in CRLF
 * (3.4.4 c); an empty one hashes as nothing (3.4.4, errata 3192). */
static void
dk_body_end(struct dk_body *b)
{
	if (b->cr)
		dk_body_text(b, '\r');
	if (b->any)
		dk_body_out(b, "\r\n", 2);
	EVP_DigestUpdate(b->md, b->out, b->n);
	b->n = 0;
}

/*
 * One header field (name, colon, value with its folds; no final CRLF)
 * relaxed: name lower case, no WSP around the colon, unfolded, WSP runs
 * as one SP, none at either end of the value.  crlf: append CRLF (every
 * field but the DKIM-Signature being made).
 */
static int
dk_hdr_update(EVP_MD_CTX *md, const char *f, size_t len, int crlf)
{
	char *o = malloc(len + 3);
	size_t i, n = 0, colon;
	int wsp = 0, text = 0, rc;

	if (o == NULL)
		return -1;
	for (colon = 0; colon < len && f[colon] != ':'; colon++)
		;
	for (i = 0; i < colon; i++)
		o[n++] = (char)(f[i] >= 'A' && f[i] <= 'Z' ? f[i] - 'A' + 'a' :
		    f[i]);
	while (n > 0 && (o[n - 1] == ' ' || o[n - 1] == '\t'))
		n--;
	o[n++] = ':';
	for (i = colon + 1; i < len; i++) {
		if (f[i] == '\r' || f[i] == '\n')
			continue;
		if (f[i] == ' ' || f[i] == '\t') {
			wsp = 1;
			continue;
		}
		if (wsp && text)
			o[n++] = ' ';
		wsp = 0;
		text = 1;
		o[n++] = f[i];
	}
	if (crlf) {
		o[n++] = '\r';
		o[n++] = '\n';
	}
	rc = EVP_DigestUpdate(md, o, n) == 1 ? 0 : -1;
	free(o);
	return rc;
}

/* ---- the header block ------------------------------------------------ */

struct dk_field {
	size_t off, len;	/* in the header block, without the CRLF */
	size_t namelen;		/* up to the colon, WSP before it dropped */
	int used;		/* already hashed (RFC 6376 5.4.2) */
};

struct dk_msg {
	char *hdr;		/* the header block, through the last CRLF */
	size_t hlen;
	struct dk_field *f;
	size_t nf;
	unsigned char bh[EVP_MAX_MD_SIZE];	/* body hash */
	unsigned int bhlen;
};

static void
dk_msg_free(struct dk_msg *m)
{
	free(m->hdr);
	free(m->f);
}

/* Split the header block into fields; a line starting with WSP goes on. */
static int
dk_fields(struct dk_msg *m)
{
	size_t i = 0, e, cap = 0;

	while (i < m->hlen) {
		for (e = i; e + 1 < m->hlen &&
		    !(m->hdr[e] == '\r' && m->hdr[e + 1] == '\n'); e++)
			;
		if ((m->hdr[i] == ' ' || m->hdr[i] == '\t') && m->nf > 0)
			m->f[m->nf - 1].len = e - m->f[m->nf - 1].off;
		else {
			if (m->nf == cap) {
				struct dk_field *nf;

				cap = cap ? cap * 2 : 32;
				if ((nf = realloc(m->f, cap * sizeof(*nf))) ==
				    NULL)
					return -1;
				m->f = nf;
			}
			m->f[m->nf] = (struct dk_field){ .off = i,
			    .len = e - i };
			m->nf++;
		}
		i = e + 2;
	}
	for (i = 0; i < m->nf; i++) {
		const char *s = m->hdr + m->f[i].off;
		size_t n = 0;

		while (n < m->f[i].len && s[n] != ':')
			n++;
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		m->f[i].namelen = n;
	}
	return 0;
}

/*
 * Read the message: the header block into memory (it ends at the first
 * empty line), the body through the relaxed body hash, never whole.
 */
static int
dk_read_msg(const char *path, struct dk_msg *m, char *err, size_t errlen)
{
	struct dk_body b = { 0 };
	size_t cap = 16384, have = 0;
	char *end = NULL;
	ssize_t n = 1;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

	memset(m, 0, sizeof(*m));
	if (fd < 0 || (m->hdr = malloc(cap)) == NULL ||
	    (b.md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(b.md, EVP_sha256(), NULL) != 1)
		goto out;
	while (end == NULL && (n = read(fd, m->hdr + have, cap - have)) > 0) {
		have += (size_t)n;
		end = memmem(m->hdr, have, "\r\n\r\n", 4);
		if (end == NULL && have == cap) {
			char *h = cap < DK_HDRS_MAX ? realloc(m->hdr, cap * 2) :
			    NULL;

			if (h == NULL)
				goto out;
			m->hdr = h;
			cap *= 2;
		}
	}
	m->hlen = end != NULL ? (size_t)(end - m->hdr) + 2 : have;
	if (end != NULL)
		dk_body_feed(&b, (unsigned char *)end + 4, have - m->hlen - 2);
	while (n > 0 && (n = read(fd, m->hdr + m->hlen, cap - m->hlen)) > 0)
		dk_body_feed(&b, (unsigned char *)m->hdr + m->hlen, (size_t)n);
	dk_body_end(&b);
	/* As libopendkim did: a body that does not end in CRLF is refused
	 * (outmsg always ends one), not signed with a CRLF it lacks. */
	if (n == 0 && b.raw > 0 && memcmp(b.last, "\r\n", 2) != 0)
		dk_err(err, errlen, "dkim: signing %s: CRLF at end of body "
		    "missing", path);
	else if (n == 0 && EVP_DigestFinal_ex(b.md, m->bh, &m->bhlen) == 1 &&
	    dk_fields(m) == 0)
		rc = 0;
out:
	if (rc != 0 && err[0] == '\0')
		dk_err(err, errlen, "dkim: cannot read %s: %s", path, fd < 0 ||
		    n < 0 ? strerror(errno) : "header block too large");
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(b.md);
	if (rc != 0)
		dk_msg_free(m);		/* the caller frees only a message read */
	return rc;
}

static int
dk_signed_name(const char *name, size_t len)
{
	int i;

	for (i = 0; dk_sign_hdrs[i] != NULL; i++)
		if (strlen(dk_sign_hdrs[i]) == len &&
		    strncasecmp(dk_sign_hdrs[i], name, len) == 0)
			return 1;
	return 0;
}

/* The bottom-most instance of a name not hashed yet (RFC 6376 5.4.2). */
static struct dk_field *
dk_pick(struct dk_msg *m, const char *name, size_t len)
{
	size_t i;

	for (i = m->nf; i > 0; i--) {
		struct dk_field *f = &m->f[i - 1];

		if (!f->used && f->namelen == len &&
		    strncasecmp(m->hdr + f->off, name, len) == 0) {
			f->used = 1;
			return f;
		}
	}
	return NULL;
}

/* ---- the DKIM-Signature field ----------------------------------------- */

/*
 * The field being written, folded as libopendkim folded it: lines end by
 * column 75 (a tab counts 8), a tag that does not fit starts a line with
 * a tab, a header name or base64 that does not fit goes on with tab and
 * space (FWS inside h= and b=, RFC 6376 3.5).
 */
#define DK_MARGIN 75

struct dk_out {
	char *p;
	size_t n, cap, col;
};

static void
dk_raw(struct dk_out *o, const char *s, size_t len)
{
	if (o->n + len >= o->cap) {
		o->n = o->cap;		/* too long: the caller fails */
		return;
	}
	memcpy(o->p + o->n, s, len);
	o->n += len;
	o->p[o->n] = '\0';
	o->col += len;
}

/* A piece of a value: on this line if it fits, else after CRLF TAB SP. */
static void
dk_piece(struct dk_out *o, const char *s, size_t len)
{
	if (o->col + len > DK_MARGIN) {
		dk_raw(o, "\r\n\t ", 4);
		o->col = 9;
	}
	dk_raw(o, s, len);
}

/* A tag: after a space if it fits, else on a new line after a tab;
 * h= and b= always start a line. */
static void
dk_tag(struct dk_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
dk_tag(struct dk_out *o, const char *fmt, ...)
{
	char tok[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tok, sizeof(tok), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tok)) {
		o->n = o->cap;
		return;
	}
	if (o->col + 1 + (size_t)n > DK_MARGIN || tok[0] == 'h' ||
	    tok[0] == 'b') {
		dk_raw(o, "\r\n\t", 3);
		o->col = 8;
	} else
		dk_raw(o, " ", 1);
	dk_raw(o, tok, (size_t)n);
}

/*
 * Everything up to "b=" (RFC 6376 3.5: v, a, c, d, s, t, bh, h), and
 * the header list in message order; From is signed once more than it
 * occurs (8.15).
 */
static void
dk_sig_head(struct dk_out *o, const struct dk_msg *m, const char *domain,
    const char *sel)
{
	char bh[EVP_MAX_MD_SIZE * 2], name[DK_LABEL_MAX * 4 + 8];
	size_t i;
	int k, first = 1;

	EVP_EncodeBlock((unsigned char *)bh, m->bh, (int)m->bhlen);
	dk_raw(o, DK_HDR ":", strlen(DK_HDR) + 1);
	dk_tag(o, "v=1;");
	dk_tag(o, "a=rsa-sha256;");
	dk_tag(o, "c=relaxed/relaxed;");
	dk_tag(o, "d=%s;", domain);
	dk_tag(o, "s=%s;", sel);
	dk_tag(o, "t=%lld;", (long long)time(NULL));
	dk_tag(o, "bh=%s;", bh);
	for (i = 0; i < m->nf; i++) {
		if (!dk_signed_name(m->hdr + m->f[i].off, m->f[i].namelen))
			continue;
		snprintf(name, sizeof(name), "%.*s:", (int)m->f[i].namelen,
		    m->hdr + m->f[i].off);
		if (first)
			dk_tag(o, "h=%s", name);
		else
			dk_piece(o, name, strlen(name));
		first = 0;
	}
	for (k = 0; dk_oversign_hdrs[k] != NULL; k++) {
		snprintf(name, sizeof(name), "%s%s", dk_oversign_hdrs[k],
		    dk_oversign_hdrs[k + 1] != NULL ? ":" : ";");
		if (first)
			dk_tag(o, "h=%s", name);
		else
			dk_piece(o, name, strlen(name));
		first = 0;
	}
	dk_tag(o, "b=");
}

/*
 * The signed headers in h='s order, each name's bottom-most instance not
 * hashed yet (5.4.2; the extra From finds none and adds nothing), then
 * this field up to "b=" without CRLF (3.7).
 */
static int
dk_hash_headers(EVP_MD_CTX *md, struct dk_msg *m, const struct dk_out *o)
{
	struct dk_field *f;
	size_t i, nf = m->nf;
	int k;

	for (i = 0; i < nf; i++) {
		const char *name = m->hdr + m->f[i].off;
		size_t len = m->f[i].namelen;

		if (dk_signed_name(name, len) && (f = dk_pick(m, name, len)) !=
		    NULL && dk_hdr_update(md, m->hdr + f->off, f->len, 1) != 0)
			return -1;
	}
	for (k = 0; dk_oversign_hdrs[k] != NULL; k++)
		if ((f = dk_pick(m, dk_oversign_hdrs[k],
		    strlen(dk_oversign_hdrs[k]))) != NULL &&
		    dk_hdr_update(md, m->hdr + f->off, f->len, 1) != 0)
			return -1;
	return dk_hdr_update(md, o->p, o->n, 0);
}

/* b=: RSASSA-PKCS1-v1_5 with SHA-256 (RFC 6376 3.3.1), base64, folded. */
static int
dk_sig_b(EVP_PKEY *pk, struct dk_msg *m, struct dk_out *o)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char sig[1024], b64[1400];
	size_t siglen = sizeof(sig), i, n;
	int rc = -1;

	if (md != NULL && EVP_PKEY_get_size(pk) <= (int)sizeof(sig) &&
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
	    dk_hash_headers(md, m, o) == 0 &&
	    EVP_DigestSignFinal(md, sig, &siglen) == 1) {
		n = (size_t)EVP_EncodeBlock(b64, sig, (int)siglen);
		for (i = 0; i < n; i++)
			dk_piece(o, (const char *)b64 + i, 1);
		dk_raw(o, "\r\n", 2);
		rc = o->n < o->cap ? 0 : -1;
	}
	EVP_MD_CTX_free(md);
	return rc;
}

static int
dk_sign(EVP_PKEY *pk, const struct postdoc_outbound_info *info,
    const char *sel, const char *domain, char *prepend, size_t prepend_len,
    char *err, size_t errlen)
{
	struct dk_msg m;
	struct dk_out o = { prepend, 0, prepend_len, 0 };
	int rc = -1;

	if (prepend_len < 2 || dk_read_msg(info->path, &m, err, errlen) != 0)
		return -1;
	prepend[0] = '\0';
	dk_sig_head(&o, &m, domain, sel);
	if (o.n >= o.cap)
		dk_err(err, errlen, "dkim: the signature does not fit in %zu "
		    "bytes", prepend_len);
	else if (dk_sig_b(pk, &m, &o) != 0)
		dk_err(err, errlen, "dkim: signing %s for %s failed",
		    info->path, domain);
	else
		rc = 0;
	dk_msg_free(&m);
	return rc;
}

static enum postdoc_verdict
dk_outbound(void *state, const struct postdoc_outbound_info *m,
    char *prepend, size_t prepend_len, struct postdoc_reply *r)
{
	struct dk_state *st = state;
	char *domain;
	EVP_PKEY *pk = NULL;
	const char *sel = NULL;
	int rc = -1;

	r->text[0] = '\0';
	if (prepend_len > 0)
		prepend[0] = '\0';
	if (m->from_domain == NULL || !dk_name_ok(m->from_domain, 1)) {
		snprintf(r->text, sizeof(r->text), "dkim: From domain is not "
		    "a DNS name");
		return POSTDOC_DENYSOFT;
	}
	if ((domain = dk_lower_dup(m->from_domain)) == NULL) {
		snprintf(r->text, sizeof(r->text), "dkim: out of memory");
		return POSTDOC_DENYSOFT;
	}
	pk = dk_key_for(st, domain, &sel, r->text, sizeof(r->text));
	if (pk != NULL)
		rc = dk_sign(pk, m, sel, domain, prepend, prepend_len, r->text,
		    sizeof(r->text));
	if (rc != 0 && prepend_len > 0)
		prepend[0] = '\0';
	EVP_PKEY_free(pk);
	free(domain);
	return rc == 0 ? POSTDOC_CONT : POSTDOC_DENYSOFT;
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "dkim",
	.version = "1.1",
	.init = dk_init,
	.deinit = dk_deinit,
	.hooks = {
		.outbound = dk_outbound,
	},
};

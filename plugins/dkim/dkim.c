/*
 * dkim.c - the `dkim` plugin: signs each outbound message (RFC 6376,
 * rsa-sha256, relaxed/relaxed) with libopendkim and hands the
 * DKIM-Signature field back to the core to prepend.  Owns the signing keys:
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
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <opendkim/dkim.h>

#include "postdoc/plugin.h"

#define DK_MAX_KEYS 256
#define DK_DOMAIN_MAX 253	/* RFC 1035 2.3.4, without the root dot */
#define DK_LABEL_MAX 63
#define DK_KEY_MAX 65536	/* a PEM key is ~1.7 KB; refuse anything huge */
#define DK_RSA_BITS 2048	/* RFC 8301 3.2: at least 1024, 2048 advised */
#define DK_TXT_CHUNK 255	/* RFC 1035 3.3.14: one character-string */
#define DK_HDR "DKIM-Signature"

struct dk_key {
	char *domain;
	char *selector;
	char *key_file;
};

struct dk_state {
	DKIM_LIB *lib;
	char *key_dir;
	char *selector;
	int nkeys;
	struct dk_key keys[DK_MAX_KEYS];
	pthread_mutex_t gen_lock;	/* lazy key creation, per process */
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
	if (st->lib != NULL)
		dkim_close(st->lib);
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

/* The library-wide options are set once here, before any thread signs:
 * libopendkim only reads them afterwards. */
static int
dk_lib_open(struct dk_state *st, char *err, size_t errlen)
{
	st->lib = dkim_init(NULL, NULL);
	if (st->lib == NULL) {
		dk_err(err, errlen, "dkim_init failed");
		return -1;
	}
	if (dkim_options(st->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
	    dk_sign_hdrs, sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(st->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
	    dk_oversign_hdrs, sizeof(char **)) != DKIM_STAT_OK) {
		dk_err(err, errlen, "cannot set the signed header list");
		return -1;
	}
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
	if (dk_settings_read(settings, st, err, errlen) != 0 ||
	    dk_lib_open(st, err, errlen) != 0) {
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

/* ---- signing --------------------------------------------------------- */

static char *
dk_read_key(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	ssize_t n;

	if (fd < 0) {
		dk_err(err, errlen, "dkim: cannot read key %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	buf = malloc(DK_KEY_MAX + 1);
	n = buf != NULL ? read(fd, buf, DK_KEY_MAX + 1) : -1;
	if (n < 0 || n > DK_KEY_MAX) {
		dk_err(err, errlen, "dkim: cannot read key %s: %s", path,
		    n < 0 ? strerror(errno) : "larger than 64 KB");
		free(buf);
		buf = NULL;
	} else
		buf[n] = '\0';
	close(fd);
	return buf;
}

/* The key for a domain: configured, else key_dir's, made on first use. */
static char *
dk_key_for(struct dk_state *st, const char *domain, const char **sel_r,
    char *err, size_t errlen)
{
	char path[4096];
	int i, rc = 0;

	for (i = 0; i < st->nkeys; i++)
		if (strcasecmp(st->keys[i].domain, domain) == 0) {
			*sel_r = st->keys[i].selector;
			return dk_read_key(st->keys[i].key_file, err, errlen);
		}
	*sel_r = st->selector;
	snprintf(path, sizeof(path), "%s/%s.%s.key", st->key_dir, domain,
	    st->selector);
	pthread_mutex_lock(&st->gen_lock);
	if (access(path, F_OK) != 0)
		rc = dk_key_create(st, path, domain, err, errlen);
	pthread_mutex_unlock(&st->gen_lock);
	return rc == 0 ? dk_read_key(path, err, errlen) : NULL;
}

/* Feed the whole file: dkim_chunk() splits headers and body itself. */
static DKIM_STAT
dk_feed(DKIM *d, const char *path, char *err, size_t errlen)
{
	unsigned char buf[65536];
	ssize_t n = 0;
	DKIM_STAT s = DKIM_STAT_OK;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		dk_err(err, errlen, "dkim: cannot read %s: %s", path,
		    strerror(errno));
		return DKIM_STAT_INTERNAL;
	}
	while (s == DKIM_STAT_OK && (n = read(fd, buf, sizeof(buf))) > 0)
		s = dkim_chunk(d, buf, (size_t)n);
	if (n < 0) {
		dk_err(err, errlen, "dkim: cannot read %s: %s", path,
		    strerror(errno));
		s = DKIM_STAT_INTERNAL;
	}
	close(fd);
	if (s == DKIM_STAT_OK && (s = dkim_chunk(d, NULL, 0)) == DKIM_STAT_OK)
		s = dkim_eom(d, NULL);
	if (s != DKIM_STAT_OK && err[0] == '\0')
		dk_err(err, errlen, "dkim: signing %s: %s", path,
		    dkim_geterror(d) ? dkim_geterror(d) :
		    dkim_getresultstr(s));
	return s;
}

/*
 * "DKIM-Signature: value\r\n" into out.  libopendkim folds with bare LF
 * followed by a tab; each LF becomes CRLF (the message is CRLF, RFC 5322
 * 2.2.3), which relaxed canonicalisation treats the same (RFC 6376 3.4.2).
 */
static int
dk_format(const unsigned char *v, size_t vlen, char *out, size_t outlen)
{
	size_t i, o;

	o = (size_t)snprintf(out, outlen, "%s: ", DK_HDR);
	for (i = 0; i < vlen && o + 4 < outlen; i++) {
		if (v[i] == '\r')
			continue;
		if (v[i] == '\n')
			out[o++] = '\r';
		else if (v[i] != '\t' && (v[i] < 0x20 || v[i] > 0x7E))
			return -1;
		out[o++] = (char)v[i];
	}
	if (i < vlen || o + 3 > outlen)
		return -1;
	memcpy(out + o, "\r\n", 3);
	return 0;
}

static int
dk_sign(struct dk_state *st, const struct postdoc_outbound_info *m,
    const char *key, const char *sel, const char *domain, char *prepend,
    size_t prepend_len, char *err, size_t errlen)
{
	DKIM_STAT s;
	DKIM *d;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	int rc = -1;

	d = dkim_sign(st->lib, (const unsigned char *)"postdoc", NULL,
	    (dkim_sigkey_t)key, (const unsigned char *)sel,
	    (const unsigned char *)domain, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &s);
	if (d == NULL) {
		dk_err(err, errlen, "dkim: cannot start signing for %s: %s",
		    domain, dkim_getresultstr(s));
		return -1;
	}
	if (dk_feed(d, m->path, err, errlen) == DKIM_STAT_OK) {
		s = dkim_getsighdr_d(d, strlen(DK_HDR) + 2, &sig, &siglen);
		if (s != DKIM_STAT_OK)
			dk_err(err, errlen, "dkim: no signature for %s: %s",
			    domain, dkim_getresultstr(s));
		else if (dk_format(sig, siglen, prepend, prepend_len) != 0)
			dk_err(err, errlen, "dkim: the signature does not "
			    "fit in %zu bytes", prepend_len);
		else
			rc = 0;
	}
	dkim_free(d);
	return rc;
}

static enum postdoc_verdict
dk_outbound(void *state, const struct postdoc_outbound_info *m,
    char *prepend, size_t prepend_len, struct postdoc_reply *r)
{
	struct dk_state *st = state;
	char *domain, *key = NULL;
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
	key = dk_key_for(st, domain, &sel, r->text, sizeof(r->text));
	if (key != NULL)
		rc = dk_sign(st, m, key, sel, domain, prepend, prepend_len,
		    r->text, sizeof(r->text));
	if (rc != 0 && prepend_len > 0)
		prepend[0] = '\0';
	free(key);
	free(domain);
	return rc == 0 ? POSTDOC_CONT : POSTDOC_DENYSOFT;
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "dkim",
	.version = "1.0",
	.init = dk_init,
	.deinit = dk_deinit,
	.hooks = {
		.outbound = dk_outbound,
	},
};

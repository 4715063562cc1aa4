/*
 * privacy.c - the data subject's rights and the retention purge.  It
 * decides what is held (legal holds from config), writes the export
 * archive (ustar: export.json plus the original files), removes blobs no
 * row names any more, and leaves no residue in the database (secure
 * delete, then checkpoint + VACUUM + WAL truncated).  It never writes SQL
 * (store_privacy.c) and never names a file after anything a peer sent.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "privacy.h"
#include "store/blob.h"
#include "store/blob_gc.h"
#include "store/rawmsg.h"
#include "store/store_privacy.h"
#include "lib/util.h"

#define PRIVACY_KEY_LEN 32
#define PRIVACY_YEAR (365 * 86400 + 86400 / 4)

/* ---- the key and the keyed hash ---- */

static pthread_mutex_t privacy_key_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char privacy_key_buf[PRIVACY_KEY_LEN];
static int privacy_key_loaded;

static int
privacy_key_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, privacy_key_buf, PRIVACY_KEY_LEN);
	close(fd);
	return n == PRIVACY_KEY_LEN ? 0 : -1;
}

/* O_EXCL: two processes racing keep the first key. */
static int
privacy_key_create(const char *dir, const char *path, char *err)
{
	int fd;

	if (pd_mkdirs(dir, 0700) != 0) {
		pd_err(err, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (pd_random(privacy_key_buf, PRIVACY_KEY_LEN) != 0) {
		pd_err(err, "no random bytes for the privacy key");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		pd_own_fd(fd);
	if (fd < 0) {
		if (errno == EEXIST && privacy_key_read(path) == 0)
			return 0;
		pd_err(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (write(fd, privacy_key_buf, PRIVACY_KEY_LEN) != PRIVACY_KEY_LEN ||
	    fsync(fd) != 0) {
		pd_err(err, "%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	pd_fsync_dir(dir);
	return 0;
}

/* 0 loaded, 1 absent (and not created), -1 error.  Caller holds the mutex. */
static int
privacy_key(const struct pd_config *cfg, int create, char *err)
{
	char dir[4096], path[4200];

	if (privacy_key_loaded)
		return 0;
	snprintf(dir, sizeof(dir), "%s/keys", cfg->var_dir);
	snprintf(path, sizeof(path), "%s/privacy.key", dir);
	if (privacy_key_read(path) != 0) {
		if (!create)
			return access(path, F_OK) == 0 ? (pd_err(err,
			    "%s: unreadable or short", path), -1) : 1;
		if (privacy_key_create(dir, path, err) != 0)
			return -1;
	}
	privacy_key_loaded = 1;
	return 0;
}

int
privacy_hash(const struct pd_config *cfg, const char *email, int create,
    char out[65], char *err)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char low[512];
	size_t i;
	int rc;

	for (i = 0; email[i] != '\0' && i + 1 < sizeof(low); i++)
		low[i] = (email[i] >= 'A' && email[i] <= 'Z') ?
		    (char)(email[i] - 'A' + 'a') : email[i];
	low[i] = '\0';
	pthread_mutex_lock(&privacy_key_mu);
	rc = privacy_key(cfg, create, err);
	if (rc == 0 && HMAC(EVP_sha256(), privacy_key_buf, PRIVACY_KEY_LEN,
	    (const unsigned char *)low, strlen(low), mac, &maclen) == NULL)
		pd_fatal("HMAC-SHA256 failed");
	pthread_mutex_unlock(&privacy_key_mu);
	if (rc != 0)
		return rc;
	pd_hex(out, mac, 32);
	return 0;
}

int
privacy_erased(const struct pd_config *cfg, struct store *st,
    int64_t account_id, const char *email, char *err)
{
	char h[65];
	int rc = privacy_hash(cfg, email, 0, h, err);

	if (rc != 0)
		return rc < 0 ? -1 : 0;	/* no key: nobody was erased */
	return store_erased_has(st, account_id, h, err);
}

int
privacy_audit(const struct privacy_env *env, const char *action,
    const char *account, const char *email, const char *detail, char *err)
{
	char h[65] = "";

	if (email != NULL && privacy_hash(env->cfg, email, 1, h, err) != 0)
		return -1;
	return store_audit_add(env->st, env->actor, action, account, h,
	    detail, err);
}

static void
privacy_lower(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < len; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ?
		    (char)(src[i] - 'A' + 'a') : src[i];
	dst[i] = '\0';
}

static char *
privacy_dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	if (s == NULL)
		pd_fatal("out of memory");
	return s;
}

/* ---- ustar writer ---- */

struct tarw {
	int fd;
	int failed;
};

static void
tar_write(struct tarw *t, const void *p, size_t n)
{
	const char *b = p;

	while (n > 0 && !t->failed) {
		ssize_t w = write(t->fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			t->failed = errno != 0 ? errno : EIO;
			return;
		}
		b += w;
		n -= (size_t)w;
	}
}

static void
tar_pad(struct tarw *t, uint64_t size)
{
	static const char zero[512];

	if (size % 512 != 0)
		tar_write(t, zero, 512 - (size_t)(size % 512));
}

/* One ustar header; names are ours ("messages/12.eml"), under 100 bytes. */
static void
tar_header(struct tarw *t, const char *name, uint64_t size, int64_t mtime)
{
	unsigned char h[512];
	unsigned sum = 0;
	size_t i;

	memset(h, 0, sizeof(h));
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", 0600);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
	snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)mtime);
	memset(h + 148, ' ', 8);
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	snprintf((char *)h + 265, 32, "postdoc");
	snprintf((char *)h + 297, 32, "postdoc");
	for (i = 0; i < sizeof(h); i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
	tar_write(t, h, sizeof(h));
}

static void
tar_mem(struct tarw *t, const char *name, const char *data, size_t n)
{
	tar_header(t, name, n, pd_now());
	tar_write(t, data, n);
	tar_pad(t, n);
}

/* A blob into the archive (a small raw message's bytes come from the
 * database: rawmsg.h); 0 if it is not there (purged). */
static int
tar_blob(struct tarw *t, const struct privacy_env *env, const char *name,
    const char *sha)
{
	char buf[65536], err[PD_ERRLEN];
	struct stat sb;
	uint64_t left;
	int fd;

	if (rawmsg_open(env->st, env->bs, sha, &fd, err) < 0)
		log_warn("export: %s", err);
	if (fd < 0)
		return 0;
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return 0;
	}
	tar_header(t, name, (uint64_t)sb.st_size, sb.st_mtime);
	for (left = (uint64_t)sb.st_size; left > 0 && !t->failed;) {
		ssize_t n = read(fd, buf, left < sizeof(buf) ? left :
		    sizeof(buf));

		if (n <= 0) {	/* shrank under us: keep the archive valid */
			memset(buf, 0, sizeof(buf));
			n = (ssize_t)(left < sizeof(buf) ? left : sizeof(buf));
		}
		tar_write(t, buf, (size_t)n);
		left -= (uint64_t)n;
	}
	tar_pad(t, (uint64_t)sb.st_size);
	close(fd);
	return 1;
}

/* ---- export ---- */

/* Add each row's blob as dir/<id><ext> and name it in the row's "file". */
static int
privacy_export_files(struct tarw *t, const struct privacy_env *env,
    json_t *rows, const char *dir, const char *ext)
{
	size_t i;
	json_t *r;
	int n = 0;

	json_array_foreach(rows, i, r) {
		const char *sha = json_string_value(json_object_get(r,
		    "sha256"));
		char name[100];

		snprintf(name, sizeof(name), "%s/%lld%s", dir, (long long)
		    json_integer_value(json_object_get(r, "id")), ext);
		if (sha != NULL && tar_blob(t, env, name, sha)) {
			json_object_set_new(r, "file", json_string(name));
			n++;
		} else
			json_object_set_new(r, "file", json_null());
	}
	return n;
}

static int
privacy_empty(json_t *doc)
{
	const char *k;
	json_t *v;

	json_object_foreach(doc, k, v)
		if (json_array_size(v) > 0)
			return 0;
	return 1;
}

static json_t *
privacy_counts(json_t *doc)
{
	json_t *c = json_object();
	const char *k;
	json_t *v;

	json_object_foreach(doc, k, v)
		if (json_is_array(v))
			json_object_set_new(c, k, json_integer(
			    (json_int_t)json_array_size(v)));
	return c;
}

int
privacy_export(const struct privacy_env *env, int64_t account_id,
    const char *account, const char *email, const char *out_path,
    json_t **report_r, char *err)
{
	char low[512], tmp[4200], *js;
	struct tarw t = { -1, 0 };
	struct stat sb;
	int direct;
	json_t *doc = NULL, *top, *rep;
	static const char zero[1024];
	int nfiles;

	*report_r = NULL;
	privacy_lower(low, sizeof(low), email);
	if (store_subject_export(env->st, account_id, low, &doc, err) != 0)
		return -1;
	if (privacy_empty(doc)) {
		json_decref(doc);
		pd_err(err, "not found: nothing held about %s%s%s", email,
		    account != NULL ? " in account " : "",
		    account != NULL ? account : "");
		return 1;
	}
	/* A device or a pipe (-o /dev/stdout, a FIFO) is written as it is:
	 * the temp file renamed over it would replace /dev/null itself. */
	direct = stat(out_path, &sb) == 0 && !S_ISREG(sb.st_mode);
	snprintf(tmp, sizeof(tmp), "%s%s", out_path, direct ? "" : ".tmp");
	t.fd = direct ? open(tmp, O_WRONLY | O_CLOEXEC) : open(tmp, O_WRONLY |
	    O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (t.fd < 0) {
		pd_err(err, "%s: %s", tmp, strerror(errno));
		json_decref(doc);
		return -1;
	}
	nfiles = privacy_export_files(&t, env, json_object_get(doc,
	    "messages"), "messages", ".eml");
	nfiles += privacy_export_files(&t, env, json_object_get(doc,
	    "documents"), "documents", "");
	nfiles += privacy_export_files(&t, env, json_object_get(doc,
	    "outbound"), "outbound", ".eml");
	rep = privacy_counts(doc);
	json_object_set_new(rep, "files", json_integer(nfiles));
	top = json_pack("{s:s, s:s, s:s?, s:I, s:o}", "format",
	    "postdoc-subject-export/1", "subject", low, "account", account,
	    "generated", (json_int_t)pd_now(), "data", doc);
	js = json_dumps(top, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(top);
	if (js == NULL)
		pd_fatal("out of memory");
	tar_mem(&t, "export.json", js, strlen(js));
	free(js);
	tar_write(&t, zero, sizeof(zero));
	if (!direct && !t.failed && fsync(t.fd) != 0)
		t.failed = errno;
	close(t.fd);
	if (t.failed || (!direct && rename(tmp, out_path) != 0)) {
		pd_err(err, "%s: %s", out_path, strerror(t.failed ? t.failed :
		    errno));
		if (!direct)
			unlink(tmp);
		json_decref(rep);
		return -1;
	}
	js = privacy_dump(rep);
	if (privacy_audit(env, "subject.export", account, low, js, err) != 0) {
		free(js);
		json_decref(rep);
		return -1;
	}
	free(js);
	*report_r = rep;
	return 0;
}

/* ---- holds ---- */

static int
privacy_hold_applies(const struct pd_hold *h, const char *account,
    const char *cls)
{
	return strcmp(h->account, account) == 0 &&
	    (strcmp(h->cls, "all") == 0 || strcmp(h->cls, cls) == 0);
}

/* The cutoffs of an account's holds at now: rows since are kept. */
static void
privacy_holds(const struct pd_config *cfg, const char *account, int64_t now,
    struct store_erase_holds *h)
{
	int i;

	memset(h, 0, sizeof(*h));
	for (i = 0; i < cfg->hold_count; i++) {
		const struct pd_hold *x = &cfg->holds[i];
		int64_t cut = now - x->years * PRIVACY_YEAR;

		if (cut < 1)
			cut = 1;
		if (privacy_hold_applies(x, account, "dossiers") &&
		    (h->dossiers == 0 || cut < h->dossiers))
			h->dossiers = cut;
		if (privacy_hold_applies(x, account, "outbound") &&
		    (h->outbound == 0 || cut < h->outbound))
			h->outbound = cut;
		if (privacy_hold_applies(x, account, "consent") &&
		    (h->consent == 0 || cut < h->consent))
			h->consent = cut;
	}
}

/* ---- blobs no row names any more ---- */

struct privacy_shas {
	char (*sha)[65];
	size_t n, cap;
};

static int
privacy_sha_cb(const char *sha, void *ctx)
{
	struct privacy_shas *s = ctx;

	if (!blob_sha_valid(sha))
		return 0;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->sha = xrealloc(s->sha, s->cap * sizeof(*s->sha));
	}
	snprintf(s->sha[s->n++], 65, "%s", sha);
	return 0;
}

/* Inside the transaction: keep only the hashes no row still names. */
static int
privacy_shas_orphans(struct store *st, struct privacy_shas *s, char *err)
{
	size_t i, j = 0;
	int rc;

	for (i = 0; i < s->n; i++) {
		if ((rc = store_blob_referenced(st, s->sha[i], err)) < 0)
			return -1;
		/* Unnamed now: an inline raw copy goes in this transaction
		 * (secure_delete is on), its file after the commit. */
		if (rc == 0 && store_raw_delete(st, s->sha[i], err) != 0)
			return -1;
		if (rc == 0 && (j == 0 || strcmp(s->sha[j - 1], s->sha[i])))
			memmove(s->sha[j++], s->sha[i], 65);
	}
	s->n = j;
	return 0;
}

/*
 * After the commit, under the removal lock: a delivery of the same bytes
 * may have found the blob in place before our commit and named it since
 * (blob_gc.h checks the names again).  A blob the lock's wait left is
 * reported, and the sweep removes it later.
 */
static int
privacy_shas_remove(const struct privacy_env *env, struct privacy_shas *s,
    char *err)
{
	int rc = blob_gc_remove(env->st, env->bs, (const char (*)[65])s->sha,
	    s->n, NULL, err);

	free(s->sha);
	memset(s, 0, sizeof(*s));
	return rc;
}

/* The sweep (blob_gc.h): unnamed blobs older than store.blob_grace. */
int
privacy_sweep(const struct privacy_env *env, int64_t now, size_t *n_r,
    char *err)
{
	return blob_gc_sweep(env->st, env->bs, now, env->cfg->blob_grace, n_r,
	    err);
}

/* ---- erasure ---- */

struct privacy_accts {
	int64_t id[PD_MAX_ACCOUNTS * 4];
	char name[PD_MAX_ACCOUNTS * 4][64];
	int n;
};

static int
privacy_acct_cb(int64_t id, const char *name, void *ctx)
{
	struct privacy_accts *a = ctx;

	if (a->n == (int)(sizeof(a->id) / sizeof(a->id[0])))
		return 1;
	a->id[a->n] = id;
	snprintf(a->name[a->n++], 64, "%s", name);
	return 0;
}

static void
privacy_add_counts(json_t *erased, json_t *held,
    const struct store_erase_counts *c)
{
	int i;

	for (i = 0; i < STORE_ERASE_NCOUNTS - 1; i++) {
		json_t *v = json_object_get(erased, store_erase_names[i]);

		json_object_set_new(erased, store_erase_names[i], json_integer(
		    json_integer_value(v) + c->n[i]));
	}
#define ADD(k, x) json_object_set_new(held, k, json_integer( \
	json_integer_value(json_object_get(held, k)) + (x)))
	ADD("dossiers", c->held_dossiers);
	ADD("outbound", c->held_outbound);
	ADD("consent_records", c->held_consent);
	ADD("contacts", c->contact_kept);
#undef ADD
}

/* The deletes, the hash and the erasure record: one transaction. */
static int
privacy_erase_tx(const struct privacy_env *env, int64_t account_id,
    const char *account, const char *low, const char *hash,
    const char *reason, struct privacy_shas *shas, json_t *rep, char *err)
{
	struct privacy_accts accts;
	struct store_erase_counts c;
	struct store_erase_holds h;
	json_t *erased = json_object(), *held = json_object();
	json_t *names = json_array();
	char *js, detail[256];
	int i;

	memset(&accts, 0, sizeof(accts));
	json_object_set_new(rep, "erased", erased);
	json_object_set_new(rep, "held", held);
	json_object_set_new(rep, "accounts", names);
	json_object_set_new(rep, "reason", json_string(reason));
	if (store_subject_accounts(env->st, account_id, low, privacy_acct_cb,
	    &accts, err) != 0)
		return -1;
	if (accts.n == 0)
		return 1;
	for (i = 0; i < accts.n; i++) {
		privacy_holds(env->cfg, accts.name[i], pd_now(), &h);
		if (store_subject_erase(env->st, accts.id[i], low, &h, &c,
		    privacy_sha_cb, shas, err) != 0)
			return -1;
		privacy_add_counts(erased, held, &c);
		json_array_append_new(names, json_string(accts.name[i]));
		if (account_id == 0 && store_erased_add(env->st, accts.id[i],
		    hash, err) != 0)
			return -1;
		/* For plugins (webhook): the keyed hash, never the address. */
		snprintf(detail, sizeof(detail), "subject_hash=%s reason=%s",
		    hash, reason);
		if (store_event_add(env->st, accts.id[i], 0, "subject.erased",
		    detail, err) != 0)
			return -1;
	}
	if (store_erased_add(env->st, account_id, hash, err) != 0 ||
	    privacy_shas_orphans(env->st, shas, err) != 0)
		return -1;
	json_object_set_new(erased, "blobs", json_integer((json_int_t)shas->n));
	js = privacy_dump(rep);
	if (store_erasure_add(env->st, env->actor, account != NULL ? account :
	    "", hash, js, err) != 0 || store_audit_add(env->st, env->actor,
	    "subject.erase", account, hash, js, err) != 0) {
		free(js);
		return -1;
	}
	free(js);
	return 0;
}

int
privacy_erase(const struct privacy_env *env, int64_t account_id,
    const char *account, const char *email, const char *reason,
    json_t **report_r, char *err)
{
	struct privacy_shas shas = { NULL, 0, 0 };
	char low[512], hash[65], cerr[PD_ERRLEN];
	json_t *rep = json_object();
	int rc;

	*report_r = NULL;
	privacy_lower(low, sizeof(low), email);
	if (privacy_hash(env->cfg, low, 1, hash, err) != 0 ||
	    store_secure_delete(env->st, err) != 0 ||
	    store_begin(env->st, err) != 0) {
		json_decref(rep);
		return -1;
	}
	rc = privacy_erase_tx(env, account_id, account, low, hash, reason,
	    &shas, rep, err);
	if (rc != 0) {
		store_rollback(env->st);
		free(shas.sha);
		json_decref(rep);
		if (rc == 1)
			pd_err(err, "not found: nothing held about %s%s%s",
			    email, account != NULL ? " in account " : "",
			    account != NULL ? account : "");
		return rc;
	}
	if (store_commit(env->st, err) != 0) {
		free(shas.sha);
		json_decref(rep);
		return -1;
	}
	if (privacy_shas_remove(env, &shas, cerr) != 0)
		json_object_set_new(rep, "warning", json_string(cerr));
	if ((rc = store_compact(env->st, 1, cerr)) != 0)
		json_object_set_new(rep, "warning", json_string(cerr));
	json_object_set_new(rep, "subject_hash", json_string(hash));
	*report_r = rep;
	return rc < 0 ? -1 : 0;
}

/* ---- rectification ---- */

int
privacy_rectify(const struct privacy_env *env, int64_t account_id,
    const char *account, const char *email, const char *name,
    const char *new_email, json_t **report_r, char *err)
{
	char low[512], nlow[512];
	json_t *d;
	char *js;
	int n = 0;

	*report_r = NULL;
	privacy_lower(low, sizeof(low), email);
	if (new_email != NULL)
		privacy_lower(nlow, sizeof(nlow), new_email);
	if (store_begin(env->st, err) != 0)
		return -1;
	if (store_subject_rectify(env->st, account_id, low, name,
	    new_email != NULL ? nlow : NULL, &n, err) != 0)
		goto fail;
	if (n == 0) {
		store_rollback(env->st);
		pd_err(err, "not found: no contact %s%s%s", email,
		    account != NULL ? " in account " : "",
		    account != NULL ? account : "");
		return 1;
	}
	/* The detail names what changed, not the values (they are personal
	 * data the audit trail must not keep after an erasure). */
	d = json_pack("{s:i, s:b, s:b}", "contacts", n, "name", name != NULL,
	    "email", new_email != NULL);
	js = privacy_dump(d);
	*report_r = d;
	if (privacy_audit(env, "subject.rectify", account, low, js, err) != 0 ||
	    store_commit(env->st, err) != 0) {
		free(js);
		json_decref(d);
		*report_r = NULL;
		goto fail;
	}
	free(js);
	return 0;
fail:
	store_rollback(env->st);
	return -1;
}

/* ---- retention purge ---- */

static const struct {
	const char *cls;
	size_t off;		/* days, in struct pd_config */
	const char *hold;	/* the hold class that protects it */
} privacy_classes[] = {
	{ "raw_messages", offsetof(struct pd_config, keep_raw_messages),
	    "dossiers" },
	{ "documents", offsetof(struct pd_config, keep_documents), "dossiers" },
	{ "outbound_bodies", offsetof(struct pd_config, keep_outbound_bodies),
	    "outbound" },
	{ "history", offsetof(struct pd_config, keep_history), "dossiers" },
};

static int64_t
privacy_days(const struct pd_config *cfg, size_t off)
{
	return *(const int64_t *)(const void *)((const char *)cfg + off);
}

struct privacy_purge_ctx {
	const struct privacy_env *env;
	int64_t now;
	int dry_run;
	json_t *classes;
	struct privacy_shas shas;
	char *err;
};

static int
privacy_purge_acct_cb(const struct store_account *a, void *arg)
{
	struct privacy_purge_ctx *p = arg;
	struct store_erase_holds h;
	size_t i;

	privacy_holds(p->env->cfg, a->name, p->now, &h);
	for (i = 0; i < sizeof(privacy_classes) / sizeof(privacy_classes[0]);
	    i++) {
		int64_t days = privacy_days(p->env->cfg,
		    privacy_classes[i].off), cut, n = 0;
		json_t *v;

		if (days == 0)
			continue;
		cut = p->now - days * 86400;
		/* outbound hold: nothing newer than the hold's start goes */
		if (strcmp(privacy_classes[i].hold, "outbound") == 0 &&
		    h.outbound > 0 && h.outbound < cut)
			cut = h.outbound;
		/* A dry run applies too, and privacy_purge_tx rolls back:
		 * that is how it knows which blobs would be left unnamed. */
		if (store_purge_class(p->env->st, a->id, privacy_classes[i].cls,
		    cut, &h, 0, &n, privacy_sha_cb, &p->shas, p->err) != 0)
			return -1;
		v = json_object_get(p->classes, privacy_classes[i].cls);
		json_object_set_new(p->classes, privacy_classes[i].cls,
		    json_integer(json_integer_value(v) + n));
	}
	return 0;
}

/* Files in the log directory older than logs_days. */
static int64_t
privacy_purge_logs(const struct pd_config *cfg, int64_t now, int dry_run)
{
	char dir[4096], path[4400];
	struct dirent *de;
	struct stat sb;
	int64_t n = 0;
	DIR *d;

	if (cfg->keep_logs == 0)
		return 0;
	if (cfg->log_dir != NULL && cfg->log_dir[0] != '\0')
		snprintf(dir, sizeof(dir), "%s", cfg->log_dir);
	else
		snprintf(dir, sizeof(dir), "%s/log", cfg->var_dir);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode) ||
		    sb.st_mtime >= now - cfg->keep_logs * 86400)
			continue;
		if (dry_run || unlink(path) == 0)
			n++;
	}
	closedir(d);
	return n;
}

struct privacy_minors {
	int64_t acct[256];
	char email[256][320];
	int n;
};

static int
privacy_minor_cb(int64_t account_id, const char *email, void *ctx)
{
	struct privacy_minors *m = ctx;

	if (m->n == 256)
		return 1;
	m->acct[m->n] = account_id;
	snprintf(m->email[m->n++], 320, "%s", email);
	return 0;
}

static int
privacy_purge_minors(const struct privacy_env *env, int dry_run,
    json_t *rep, char *err)
{
	struct privacy_minors *m = xcalloc(1, sizeof(*m));
	int i, rc = 0;

	if (store_minors(env->st, 0, privacy_minor_cb, m, err) != 0) {
		free(m);
		return -1;
	}
	json_object_set_new(rep, "minors", json_integer(m->n));
	for (i = 0; i < m->n && !dry_run && rc == 0; i++) {
		json_t *r = NULL;

		/* The account's name is in the erasure record's detail. */
		rc = privacy_erase(env, m->acct[i], NULL, m->email[i], "minor",
		    &r, err);
		json_decref(r);
		if (rc == 1)
			rc = 0;
	}
	free(m);
	return rc;
}

/*
 * Blobs a crash left between file and row: the purge removes what ages
 * out, so it also removes what nobody named (with the wall clock, not
 * --now: the grace is about deliveries in flight, not retention).
 */
static int
privacy_purge_sweep(const struct privacy_env *env, json_t *rep, char *err)
{
	size_t n = 0;
	int rc;

	rc = privacy_sweep(env, pd_now(), &n, err);
	json_object_set_new(rep, "swept_blobs", json_integer((json_int_t)n));
	return rc;
}

static int
privacy_purge_tx(struct privacy_purge_ctx *p, char *err)
{
	if (store_begin(p->env->st, err) != 0)
		return -1;
	if (store_account_list(p->env->st, privacy_purge_acct_cb, p, err)
	    != 0 || err[0] != '\0' || privacy_shas_orphans(p->env->st,
	    &p->shas, err) != 0) {
		store_rollback(p->env->st);
		return -1;
	}
	json_object_set_new(p->classes, "blobs", json_integer(
	    (json_int_t)p->shas.n));
	if (p->dry_run) {
		store_rollback(p->env->st);
		return 0;
	}
	return store_commit(p->env->st, err);
}

int
privacy_purge(const struct privacy_env *env, int64_t now, int dry_run,
    int minors, int vacuum, json_t **report_r, char *err)
{
	struct privacy_purge_ctx p;
	json_t *rep = json_object();
	char *js, cerr[PD_ERRLEN];

	*report_r = NULL;
	memset(&p, 0, sizeof(p));
	p.env = env;
	p.now = now;
	p.dry_run = dry_run;
	p.classes = json_object();
	p.err = err;
	err[0] = '\0';
	json_object_set_new(rep, "now", json_integer(now));
	json_object_set_new(rep, "dry_run", json_boolean(dry_run));
	json_object_set_new(rep, "purged", p.classes);
	if (store_secure_delete(env->st, err) != 0 ||
	    privacy_purge_tx(&p, err) != 0)
		goto fail;
	if (!dry_run && (privacy_shas_remove(env, &p.shas, cerr) != 0 ||
	    privacy_purge_sweep(env, rep, cerr) != 0))
		json_object_set_new(rep, "warning", json_string(cerr));
	free(p.shas.sha);
	json_object_set_new(p.classes, "logs", json_integer(
	    privacy_purge_logs(env->cfg, now, dry_run)));
	if (minors && privacy_purge_minors(env, dry_run, rep, err) != 0)
		goto fail;
	js = privacy_dump(rep);
	if (privacy_audit(env, dry_run ? "purge.dry-run" : "purge", NULL, NULL,
	    js, err) != 0) {
		free(js);
		goto fail;
	}
	free(js);
	if (!dry_run && store_compact(env->st, vacuum, cerr) != 0)
		json_object_set_new(rep, "warning", json_string(cerr));
	*report_r = rep;
	return 0;
fail:
	free(p.shas.sha);
	json_decref(rep);
	return -1;
}

/*
 * blob.c - the content-addressed file store: "<root>/tmp/" for files being
 * written, "<root>/ab/cd/<sha256>" for finished ones.  Owns every path
 * under the root.  A path is only ever built from a validated 64-char
 * lowercase hex digest, never from a name a peer or a user supplied.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blob.h"
#include "util.h"

#define BLOB_PATH_MAX 4096
/* Leaves room for "/ab/cd/<64 hex>" and "/tmp/<32 hex>.tmp" after it. */
#define BLOB_ROOT_MAX (BLOB_PATH_MAX - 128)

struct blob_store {
	char root[BLOB_ROOT_MAX];
	char tmp[BLOB_ROOT_MAX + 8];
};

int
blob_sha_valid(const char *sha)
{
	size_t i;

	if (sha == NULL)
		return 0;
	for (i = 0; i < 64; i++) {
		char c = sha[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return sha[64] == '\0';
}

int
blob_store_open(const char *root, struct blob_store **bs_r, char *err)
{
	struct blob_store *bs;
	int n;

	*bs_r = NULL;
	bs = xcalloc(1, sizeof(*bs));
	n = snprintf(bs->root, sizeof(bs->root), "%s", root);
	if (n < 0 || (size_t)n >= sizeof(bs->root)) {
		pd_err(err, "blob store %s: path too long", root);
		free(bs);
		return -1;
	}
	snprintf(bs->tmp, sizeof(bs->tmp), "%s/tmp", bs->root);
	if (pd_mkdirs(bs->tmp, 0750) != 0) {
		pd_err(err, "blob store %s: %s", bs->tmp, strerror(errno));
		free(bs);
		return -1;
	}
	*bs_r = bs;
	return 0;
}

void
blob_store_free(struct blob_store **bs)
{
	if (bs == NULL || *bs == NULL)
		return;
	free(*bs);
	*bs = NULL;
}

void
blob_path(const struct blob_store *bs, const char *sha, char *out,
    size_t outlen)
{
	if (outlen == 0)
		return;
	/* An invalid digest yields "" so no caller can open outside root. */
	if (!blob_sha_valid(sha)) {
		out[0] = '\0';
		return;
	}
	snprintf(out, outlen, "%s/%.2s/%.2s/%s", bs->root, sha, sha + 2, sha);
}

int
blob_exists(const struct blob_store *bs, const char *sha)
{
	char path[BLOB_PATH_MAX];
	struct stat sb;

	if (!blob_sha_valid(sha))
		return 0;
	blob_path(bs, sha, path, sizeof(path));
	return lstat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int
blob_remove(struct blob_store *bs, const char *sha)
{
	char path[BLOB_PATH_MAX];

	if (!blob_sha_valid(sha)) {
		errno = EINVAL;
		return -1;
	}
	blob_path(bs, sha, path, sizeof(path));
	/* Removing what is already gone is success: purges must be rerunnable. */
	if (unlink(path) != 0 && errno != ENOENT)
		return -1;
	return 0;
}

int
blob_writer_begin(struct blob_store *bs, struct blob_writer *w, char *err)
{
	unsigned char rnd[16];
	char hex[33];

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (pd_random(rnd, sizeof(rnd)) != 0) {
		pd_err(err, "blob writer: no random bytes for a temp name");
		return -1;
	}
	pd_hex(hex, rnd, sizeof(rnd));
	snprintf(w->tmp_path, sizeof(w->tmp_path), "%s/%s.tmp", bs->tmp, hex);
	w->fd = open(w->tmp_path,
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (w->fd < 0) {
		pd_err(err, "blob writer: %s: %s", w->tmp_path, strerror(errno));
		w->tmp_path[0] = '\0';
		return -1;
	}
	w->md = EVP_MD_CTX_new();
	if (w->md == NULL || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
		pd_err(err, "blob writer: cannot initialise sha256");
		blob_writer_abort(w);
		return -1;
	}
	return 0;
}

int
blob_writer_write(struct blob_writer *w, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t off = 0;

	if (w->failed || w->fd < 0)
		return -1;
	if (EVP_DigestUpdate(w->md, buf, len) != 1) {
		w->failed = 1;
		return -1;
	}
	while (off < len) {
		ssize_t n = write(w->fd, p + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			w->failed = 1;
			return -1;
		}
		off += (size_t)n;
	}
	w->size += len;
	return 0;
}

void
blob_writer_abort(struct blob_writer *w)
{
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	if (w->tmp_path[0] != '\0') {
		unlink(w->tmp_path);
		w->tmp_path[0] = '\0';
	}
	if (w->md != NULL) {
		EVP_MD_CTX_free(w->md);
		w->md = NULL;
	}
}

/*
 * mkdir one fan-out level.  A directory we create is a new entry in its
 * parent, so the parent is fsync'd too or a crash could lose the whole
 * subtree the blob's rename is about to land in.
 */
static int
blob_mkdir_level(const char *dir, const char *parent, char *err)
{
	if (mkdir(dir, 0750) == 0) {
		if (pd_fsync_dir(parent) != 0) {
			pd_err(err, "blob store: fsync %s: %s", parent,
			    strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno != EEXIST) {
		pd_err(err, "blob store: mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Move a complete, fsync'd file at src into its place for sha: create the
 * fan-out, drop src if the blob is already there (same digest, same
 * bytes), otherwise rename, then fsync the fan-out dir so the name is
 * durable before any row that names the blob is committed.  A batch
 * caller (sync_dir 0) fsyncs the dir itself, once, through
 * blob_sync_dir, before its rows commit.
 */
static int
blob_place(struct blob_store *bs, const char *src, const char *sha,
    int sync_dir, char *err)
{
	char d1[BLOB_PATH_MAX], d2[BLOB_PATH_MAX], final[BLOB_PATH_MAX];
	struct stat sb;

	snprintf(d1, sizeof(d1), "%s/%.2s", bs->root, sha);
	snprintf(d2, sizeof(d2), "%s/%.2s/%.2s", bs->root, sha, sha + 2);
	blob_path(bs, sha, final, sizeof(final));
	if (blob_mkdir_level(d1, bs->root, err) != 0 ||
	    blob_mkdir_level(d2, d1, err) != 0)
		return -1;
	if (lstat(final, &sb) == 0 && S_ISREG(sb.st_mode)) {
		if (unlink(src) != 0) {
			pd_err(err, "blob store: unlink %s: %s", src,
			    strerror(errno));
			return -1;
		}
		return 0;
	}
	if (rename(src, final) != 0) {
		pd_err(err, "blob store: rename %s -> %s: %s", src, final,
		    strerror(errno));
		return -1;
	}
	if (sync_dir && pd_fsync_dir(d2) != 0) {
		pd_err(err, "blob store: fsync %s: %s", d2, strerror(errno));
		return -1;
	}
	return 0;
}

int
blob_sync_dir(struct blob_store *bs, const char *sha, char *err)
{
	char d2[BLOB_PATH_MAX];

	snprintf(d2, sizeof(d2), "%s/%.2s/%.2s", bs->root, sha, sha + 2);
	if (pd_fsync_dir(d2) != 0) {
		pd_err(err, "blob store: fsync %s: %s", d2, strerror(errno));
		return -1;
	}
	return 0;
}

static int
blob_writer_finish(struct blob_store *bs, struct blob_writer *w,
    char sha_r[65], int sync_dir, char *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	sha_r[0] = '\0';
	if (w->failed || w->fd < 0) {
		pd_err(err, "blob writer: a write failed, not committing");
		goto fail;
	}
	if (fsync(w->fd) != 0) {
		pd_err(err, "blob writer: fsync %s: %s", w->tmp_path,
		    strerror(errno));
		goto fail;
	}
	if (close(w->fd) != 0) {
		w->fd = -1;
		pd_err(err, "blob writer: close %s: %s", w->tmp_path,
		    strerror(errno));
		goto fail;
	}
	w->fd = -1;
	if (EVP_DigestFinal_ex(w->md, md, &mdlen) != 1 || mdlen != 32) {
		pd_err(err, "blob writer: sha256 failed");
		goto fail;
	}
	pd_hex(sha_r, md, mdlen);
	if (blob_place(bs, w->tmp_path, sha_r, sync_dir, err) != 0)
		goto fail;
	w->tmp_path[0] = '\0';	/* moved or dropped: nothing to unlink */
	blob_writer_abort(w);
	return 0;
fail:
	sha_r[0] = '\0';
	blob_writer_abort(w);
	return -1;
}

int
blob_writer_commit(struct blob_store *bs, struct blob_writer *w,
    char sha_r[65], char *err)
{
	return blob_writer_finish(bs, w, sha_r, 1, err);
}

int
blob_writer_commit_nodirsync(struct blob_store *bs, struct blob_writer *w,
    char sha_r[65], char *err)
{
	return blob_writer_finish(bs, w, sha_r, 0, err);
}

int
blob_adopt(struct blob_store *bs, const char *path, const char *sha,
    char *err)
{
	int fd, rc;

	if (!blob_sha_valid(sha)) {
		pd_err(err, "blob adopt: invalid sha256 digest");
		return -1;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		pd_err(err, "blob adopt: open %s: %s", path, strerror(errno));
		return -1;
	}
	rc = fsync(fd);
	if (rc != 0)
		pd_err(err, "blob adopt: fsync %s: %s", path, strerror(errno));
	close(fd);
	if (rc != 0)
		return -1;
	return blob_place(bs, path, sha, 1, err);
}

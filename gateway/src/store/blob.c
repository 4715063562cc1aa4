/*
 * blob.c - the content-addressed file store: "<root>/tmp/" for files being
 * written, "<root>/ab/<sha256>" for finished ones (stores written before
 * this layout keep theirs at "<root>/ab/cd/<sha256>": read, deduplicated
 * against and removed there, never written).  Owns every path
 * under the root.  A path is only ever built from a validated 64-char
 * lowercase hex digest, never from a name a peer or a user supplied.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blob.h"
#include "lib/util.h"

#define BLOB_PATH_MAX 4096
/* Leaves room for "/ab/cd/<64 hex>" and "/tmp/<32 hex>.tmp" after it. */
#define BLOB_ROOT_MAX (BLOB_PATH_MAX - 128)

struct blob_store {
	char root[BLOB_ROOT_MAX];
	char tmp[BLOB_ROOT_MAX + 8];
	/* The removal lock (blob_hold, blob_lock_excl): fds of root and
	 * tmp, opened on first use. */
	pthread_mutex_t mu;
	int gate_fd, lock_fd;
	unsigned holds;		/* threads of this store holding it shared */
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

/*
 * The 256 fan-out dirs are made when the store is opened, not as blobs
 * arrive: with "<root>/ab/cd/" nearly every blob of a young store paid a
 * mkdir and an fsync of the parent (bench/README.md, "Blob fan-out").
 * "ff" is made last, so a store that has it needs no loop; a dir that a
 * crash lost anyway is made again by blob_place.  The root is fsync'd
 * every time: another process may have made the dirs and not yet synced
 * them, and a blob must never land in a dir whose entry is not durable.
 */
/* A fan-out dir (root's, made var's owner's): 0, also if it exists. */
static int
blob_mkdir(const char *dir, char *err)
{
	if (mkdir(dir, 0750) == 0)
		pd_own_path(dir);
	else if (errno != EEXIST) {
		pd_err(err, "blob store: mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int
blob_sync_root(struct blob_store *bs, char *err)
{
	if (pd_fsync_dir(bs->root) != 0) {
		pd_err(err, "blob store: fsync %s: %s", bs->root,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
blob_fanout_init(struct blob_store *bs, char *err)
{
	char d[BLOB_PATH_MAX];
	struct stat sb;
	unsigned i;

	snprintf(d, sizeof(d), "%s/ff", bs->root);
	if (lstat(d, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		for (i = 0; i < 256; i++) {
			snprintf(d, sizeof(d), "%s/%02x", bs->root, i);
			if (blob_mkdir(d, err) != 0)
				return -1;
		}
	}
	return blob_sync_root(bs, err);
}

int
blob_store_open(const char *root, struct blob_store **bs_r, char *err)
{
	struct blob_store *bs;
	int n;

	*bs_r = NULL;
	bs = xcalloc(1, sizeof(*bs));
	pthread_mutex_init(&bs->mu, NULL);
	bs->gate_fd = bs->lock_fd = -1;
	n = snprintf(bs->root, sizeof(bs->root), "%s", root);
	if (n < 0 || (size_t)n >= sizeof(bs->root)) {
		pd_err(err, "blob store %s: path too long", root);
		blob_store_free(&bs);
		return -1;
	}
	snprintf(bs->tmp, sizeof(bs->tmp), "%s/tmp", bs->root);
	if (pd_mkdirs(bs->tmp, 0750) != 0) {
		pd_err(err, "blob store %s: %s", bs->tmp, strerror(errno));
		blob_store_free(&bs);
		return -1;
	}
	if (blob_fanout_init(bs, err) != 0) {
		blob_store_free(&bs);
		return -1;
	}
	*bs_r = bs;
	return 0;
}

void
blob_store_free(struct blob_store **bsp)
{
	struct blob_store *bs;

	if (bsp == NULL || (bs = *bsp) == NULL)
		return;
	if (bs->lock_fd >= 0)
		close(bs->lock_fd);	/* releases what this store held */
	if (bs->gate_fd >= 0)
		close(bs->gate_fd);
	pthread_mutex_destroy(&bs->mu);
	free(bs);
	*bsp = NULL;
}

/* Where new blobs go: "<root>/ab/<sha>"; sha already validated. */
static void
blob_path_new(const struct blob_store *bs, const char *sha, char *out,
    size_t outlen)
{
	snprintf(out, outlen, "%s/%.2s/%s", bs->root, sha, sha);
}

/* Where stores written before the one-level fan-out kept them. */
static void
blob_path_old(const struct blob_store *bs, const char *sha, char *out,
    size_t outlen)
{
	snprintf(out, outlen, "%s/%.2s/%.2s/%s", bs->root, sha, sha + 2, sha);
}

static int
blob_is_file(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

void
blob_path(const struct blob_store *bs, const char *sha, char *out,
    size_t outlen)
{
	char old[BLOB_PATH_MAX];

	if (outlen == 0)
		return;
	/* An invalid digest yields "" so no caller can open outside root. */
	if (!blob_sha_valid(sha)) {
		out[0] = '\0';
		return;
	}
	blob_path_new(bs, sha, out, outlen);
	if (blob_is_file(out))
		return;
	blob_path_old(bs, sha, old, sizeof(old));
	if (blob_is_file(old))
		snprintf(out, outlen, "%s", old);
}

int
blob_exists(const struct blob_store *bs, const char *sha)
{
	char path[BLOB_PATH_MAX];

	if (!blob_sha_valid(sha))
		return 0;
	blob_path_new(bs, sha, path, sizeof(path));
	if (blob_is_file(path))
		return 1;
	blob_path_old(bs, sha, path, sizeof(path));
	return blob_is_file(path);
}

int
blob_same_dir(const char *a, const char *b)
{
	return a[0] == b[0] && a[1] == b[1];
}

int
blob_remove(struct blob_store *bs, const char *sha)
{
	char path[BLOB_PATH_MAX];
	int rc = 0;

	if (!blob_sha_valid(sha)) {
		errno = EINVAL;
		return -1;
	}
	/* Both layouts: a blob may have been stored again under the new one. */
	/* Removing what is already gone is success: purges must be rerunnable. */
	blob_path_new(bs, sha, path, sizeof(path));
	if (unlink(path) != 0 && errno != ENOENT)
		rc = -1;
	blob_path_old(bs, sha, path, sizeof(path));
	if (unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR)
		rc = -1;
	return rc;
}

/* A new temp file under blobs/tmp: its fd, its name in path; -1. */
static int
blob_tmp_open(struct blob_store *bs, char path[BLOB_PATH_MAX], char *err)
{
	unsigned char rnd[16];
	char hex[33];
	int fd;

	path[0] = '\0';
	if (pd_random(rnd, sizeof(rnd)) != 0) {
		pd_err(err, "blob store: no random bytes for a temp name");
		return -1;
	}
	pd_hex(hex, rnd, sizeof(rnd));
	snprintf(path, BLOB_PATH_MAX, "%s/%s.tmp", bs->tmp, hex);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0640);
	if (fd < 0) {
		int e = errno;	/* ENOSPC: the caller answers "full" */

		pd_err(err, "blob store: %s: %s", path, strerror(e));
		path[0] = '\0';
		errno = e;
	} else
		pd_own_fd(fd);
	return fd;
}

int
blob_writer_begin(struct blob_store *bs, struct blob_writer *w, char *err)
{
	memset(w, 0, sizeof(*w));
	if ((w->fd = blob_tmp_open(bs, w->tmp_path, err)) < 0)
		return -1;
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
	if (w->failed || w->fd < 0)
		return -1;
	if (EVP_DigestUpdate(w->md, buf, len) != 1) {
		w->failed = 1;
		w->errnum = EIO;
		return -1;
	}
	if (pd_write_all(w->fd, buf, len) != 0) {
		w->failed = 1;
		w->errnum = errno;	/* ENOSPC: the disk is full */
		return -1;
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
 * A fan-out dir missing although the store was opened: lost by a crash
 * before its entry reached the disk, or removed by hand.  Made again and
 * its parent fsync'd, so the blob about to land in it cannot vanish with
 * it.
 */
static int
blob_mkdir_again(struct blob_store *bs, const char *dir, char *err)
{
	if (blob_mkdir(dir, err) != 0)
		return -1;
	return blob_sync_root(bs, err);
}

/*
 * rename without replacing: 1 if dst already existed (src untouched),
 * 0 if moved, -1 with errno.  RENAME_NOREPLACE answers "already there"
 * in the same call; a filesystem without it gets a check then a rename
 * (a blob that exists is complete, so replacing it would be harmless).
 */
static int
blob_rename_new(const char *src, const char *dst)
{
	if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST)
		return 1;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (blob_is_file(dst))
		return 1;
	return rename(src, dst) == 0 ? 0 : -1;
}

/*
 * Move a complete, fsync'd file at src into its place for sha: drop src if
 * the blob is already there (same digest, same bytes; under either
 * layout), otherwise rename; then fsync the fan-out dir so the name is
 * durable before any row that names the blob is committed.  A batch
 * caller (sync_dir 0) fsyncs the dir itself, once, through
 * blob_sync_dir, before its rows commit.
 */
static int
blob_place(struct blob_store *bs, const char *src, const char *sha,
    int sync_dir, char *err)
{
	char dir[BLOB_PATH_MAX], final[BLOB_PATH_MAX];
	int rc, old = 0;

	snprintf(dir, sizeof(dir), "%s/%.2s", bs->root, sha);
	blob_path_old(bs, sha, final, sizeof(final));
	if (blob_is_file(final))
		rc = old = 1;
	else {
		blob_path_new(bs, sha, final, sizeof(final));
		rc = blob_rename_new(src, final);
		if (rc < 0 && errno == ENOENT && access(src, F_OK) == 0) {
			if (blob_mkdir_again(bs, dir, err) != 0)
				return -1;
			rc = blob_rename_new(src, final);
		}
	}
	if (rc < 0) {
		rc = errno;
		pd_err(err, "blob store: rename %s -> %s: %s", src, final,
		    strerror(rc));
		errno = rc;
		return -1;
	}
	if (rc == 1 && unlink(src) != 0) {
		rc = errno;
		pd_err(err, "blob store: unlink %s: %s", src, strerror(rc));
		errno = rc;
		return -1;
	}
	/*
	 * Found already there, the dir is fsync'd all the same: the writer
	 * that renamed it in (another worker, now) may not have synced the
	 * dir yet, and our row could commit first.  Old-layout blobs were
	 * placed by an earlier run and are durable.
	 */
	if (sync_dir && !old && pd_fsync_dir(dir) != 0) {
		rc = errno;
		pd_err(err, "blob store: fsync %s: %s", dir, strerror(rc));
		errno = rc;
		return -1;
	}
	return 0;
}

int
blob_sync_dir(struct blob_store *bs, const char *sha, char *err)
{
	char dir[BLOB_PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/%.2s", bs->root, sha);
	if (pd_fsync_dir(dir) != 0) {
		pd_err(err, "blob store: fsync %s: %s", dir, strerror(errno));
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
		pd_err(err, "blob writer: write %s: %s", w->tmp_path,
		    strerror(w->errnum ? w->errnum : EIO));
		goto fail;
	}
	if (EVP_DigestFinal_ex(w->md, md, &mdlen) != 1 || mdlen != 32) {
		pd_err(err, "blob writer: sha256 failed");
		goto fail;
	}
	pd_hex(sha_r, md, mdlen);
	/* A copy already in place is durable: its writer fsync'd it before
	 * the rename.  This copy is about to be dropped, so don't sync it. */
	if (!blob_exists(bs, sha_r) && fsync(w->fd) != 0) {
		w->errnum = errno;
		pd_err(err, "blob writer: fsync %s: %s", w->tmp_path,
		    strerror(w->errnum));
		goto fail;
	}
	if (close(w->fd) != 0) {
		w->fd = -1;
		w->errnum = errno;
		pd_err(err, "blob writer: close %s: %s", w->tmp_path,
		    strerror(w->errnum));
		goto fail;
	}
	w->fd = -1;
	if (blob_place(bs, w->tmp_path, sha_r, sync_dir, err) != 0) {
		w->errnum = errno;
		goto fail;
	}
	w->tmp_path[0] = '\0';	/* moved or dropped: nothing to unlink */
	blob_writer_abort(w);
	return 0;
fail:
	sha_r[0] = '\0';
	blob_writer_abort(w);
	errno = w->errnum ? w->errnum : EIO;
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
	/* Already stored (durable, see blob_writer_finish): place drops it. */
	if (blob_exists(bs, sha))
		return blob_place(bs, path, sha, 1, err);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		pd_err(err, "blob adopt: open %s: %s", path, strerror(errno));
		return -1;
	}
	if ((rc = fsync(fd) != 0 ? errno : 0) != 0)
		pd_err(err, "blob adopt: fsync %s: %s", path, strerror(rc));
	close(fd);
	if (rc != 0) {
		errno = rc;	/* ENOSPC: the disk is full */
		return -1;
	}
	return blob_place(bs, path, sha, 1, err);
}

int
blob_put_mem(struct blob_store *bs, const void *buf, size_t len,
    const char *sha, char *err)
{
	char tmp_path[BLOB_PATH_MAX];
	int fd, saved;

	if (!blob_sha_valid(sha)) {
		pd_err(err, "blob put: invalid sha256 digest");
		return -1;
	}
	if (blob_exists(bs, sha))	/* durable; place's dir fsync, alone */
		return blob_sync_dir(bs, sha, err);
	/* Not through a blob_writer: it would hash the bytes again. */
	if ((fd = blob_tmp_open(bs, tmp_path, err)) < 0)
		return -1;
	if (pd_write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
		saved = errno;	/* ENOSPC: the disk is full */
		pd_err(err, "blob put: %s: %s", tmp_path, strerror(saved));
		close(fd);
		goto fail;
	}
	if (close(fd) != 0) {
		saved = errno;
		pd_err(err, "blob put: close %s: %s", tmp_path,
		    strerror(saved));
		goto fail;
	}
	if (blob_place(bs, tmp_path, sha, 1, err) != 0) {
		saved = errno;
		goto fail;
	}
	return 0;
fail:
	unlink(tmp_path);
	errno = saved;
	return -1;
}

/* ---- the removal lock ---- */

/*
 * Blobs are shared by content: a delivery may find the bytes it wrote
 * already in place (deduplicated), and commit a row naming them a moment
 * later.  Whoever removes a blob no row names (a failed delivery's
 * cleanup, erasure, the purge, the sweep) must not do it in that moment,
 * or the row would name a file that is gone.  So a delivery holds
 * "<root>/.lock" shared from placing its blobs until its rows commit or
 * fail, and a remover holds it exclusive while it checks names and
 * unlinks.  flock(2) on "<root>", not a mutex: the CLI (erase, purge,
 * campaign send) is another process.  flock grants shared locks while an
 * exclusive one waits, so a busy intake could starve the remover: a gate,
 * flock on "<root>/tmp", is taken exclusive by the remover first, and
 * briefly shared by a delivery on its way to the lock, so new deliveries
 * queue behind a waiting remover.  Every wait is bounded (ETIMEDOUT).  flock locks belong to
 * the open file, so each blob_store has its own files, and threads that
 * share one store share its hold (counted).
 */
static int
blob_lock_open(const char *dir, int *fd_r, char *err)
{
	if (*fd_r >= 0)
		return 0;
	*fd_r = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd_r < 0) {
		pd_err(err, "blob store: %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* flock with a bound: 0, or -1 with errno (ETIMEDOUT when it waited). */
static int
blob_flock(int fd, int op, int64_t until_ms)
{
	struct timespec nap = { 0, 2 * 1000 * 1000 };

	for (;;) {
		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return -1;
		if (pd_monotonic_ms() >= until_ms) {
			errno = ETIMEDOUT;
			return -1;
		}
		nanosleep(&nap, NULL);
	}
}

/* The locks are on the directories themselves: no file of ours to
 * create, own, or mistake for a blob. */
static int
blob_lock_files(struct blob_store *bs, char *err)
{
	return blob_lock_open(bs->tmp, &bs->gate_fd, err) != 0 ||
	    blob_lock_open(bs->root, &bs->lock_fd, err) != 0 ? -1 : 0;
}

int
blob_hold(struct blob_store *bs, int64_t wait_ms, char *err)
{
	int64_t until = pd_monotonic_ms() + wait_ms;
	int rc = 0;

	pthread_mutex_lock(&bs->mu);
	if (bs->holds > 0) {
		bs->holds++;
		pthread_mutex_unlock(&bs->mu);
		return 0;
	}
	if (blob_lock_files(bs, err) != 0)
		rc = -1;
	else if (blob_flock(bs->gate_fd, LOCK_SH, until) != 0 ||
	    blob_flock(bs->lock_fd, LOCK_SH, until) != 0) {
		pd_err(err, "blob store: waiting for a removal of unnamed "
		    "blobs: %s", strerror(errno));
		rc = -1;
	}
	if (bs->gate_fd >= 0)
		flock(bs->gate_fd, LOCK_UN);
	if (rc == 0)
		bs->holds = 1;
	pthread_mutex_unlock(&bs->mu);
	return rc;
}

void
blob_unhold(struct blob_store *bs)
{
	pthread_mutex_lock(&bs->mu);
	if (bs->holds == 0)
		pd_fatal("blob_unhold without blob_hold");
	if (--bs->holds == 0)
		flock(bs->lock_fd, LOCK_UN);
	pthread_mutex_unlock(&bs->mu);
}

int
blob_lock_excl(struct blob_store *bs, int64_t wait_ms, char *err)
{
	int64_t until = pd_monotonic_ms() + wait_ms;
	int rc = -1;

	pthread_mutex_lock(&bs->mu);
	/* The same open file would convert our shared lock, not wait. */
	if (bs->holds > 0) {
		pd_err(err, "blob store: a delivery of this store still holds "
		    "the removal lock");
		goto out;
	}
	if (blob_lock_files(bs, err) != 0)
		goto out;
	if (blob_flock(bs->gate_fd, LOCK_EX, until) != 0) {
		pd_err(err, "blob store: gate: %s", strerror(errno));
		goto out;
	}
	if (blob_flock(bs->lock_fd, LOCK_EX, until) != 0) {
		pd_err(err, "blob store: waiting for deliveries in flight: %s",
		    strerror(errno));
		flock(bs->gate_fd, LOCK_UN);
		goto out;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&bs->mu);
	return rc;
}

void
blob_unlock_excl(struct blob_store *bs)
{
	flock(bs->lock_fd, LOCK_UN);
	flock(bs->gate_fd, LOCK_UN);
}

/* ---- walking every blob ---- */

/* One fan-out dir: its blobs, and (old layout) its sub-dirs' blobs. */
static int
blob_walk_dir(const char *dir, int depth, blob_walk_cb cb, void *ctx,
    char *err)
{
	char path[BLOB_PATH_MAX];
	struct dirent *de;
	struct stat sb;
	DIR *d = opendir(dir);
	int rc = 0;

	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		pd_err(err, "blob store: %s: %s", dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len != 64 && !(len == 2 && depth == 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &sb) != 0)
			continue;	/* removed meanwhile */
		if (len == 2 && S_ISDIR(sb.st_mode))
			rc = blob_walk_dir(path, 1, cb, ctx, err);
		else if (len == 64 && S_ISREG(sb.st_mode) &&
		    blob_sha_valid(de->d_name))
			rc = cb(de->d_name, (int64_t)sb.st_mtime, ctx) != 0 ?
			    1 : 0;
	}
	closedir(d);
	return rc;	/* 1: the callback stopped the walk */
}

int
blob_walk(struct blob_store *bs, blob_walk_cb cb, void *ctx, char *err)
{
	char dir[BLOB_PATH_MAX];
	unsigned i;
	int rc;

	for (i = 0; i < 256; i++) {
		snprintf(dir, sizeof(dir), "%s/%02x", bs->root, i);
		if ((rc = blob_walk_dir(dir, 0, cb, ctx, err)) != 0)
			return rc < 0 ? -1 : 0;
	}
	return 0;
}

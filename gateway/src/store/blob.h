/*
 * blob.h - the content-addressed file store under var/blobs: raw messages
 * and decoded documents, named by their sha256, never by anything a peer
 * sent.  Writes go to a temp file, are fsync'd, renamed into place and the
 * directory fsync'd, so a blob that exists is complete.  New blobs go to
 * "<root>/ab/<sha256>" (256 dirs, made when the store is opened); blobs of
 * older stores at "<root>/ab/cd/<sha256>" are still found and removed.
 * A function that fails leaves errno saying why (ENOSPC, EDQUOT: the disk
 * is full), so its caller can answer "452 4.3.1" rather than "451 4.3.0".
 */
#ifndef PD_BLOB_H
#define PD_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <openssl/evp.h>

struct blob_store;

int blob_store_open(const char *root, struct blob_store **bs_r, char *err);
void blob_store_free(struct blob_store **bs);

/* A blob being written: temp file + running sha256. */
struct blob_writer {
	int fd;
	char tmp_path[4096];
	uint64_t size;
	EVP_MD_CTX *md;
	int failed;		/* a write failed: commit will refuse */
	int errnum;		/* why it failed (ENOSPC: the disk is full) */
};

int blob_writer_begin(struct blob_store *bs, struct blob_writer *w, char *err);
int blob_writer_write(struct blob_writer *w, const void *buf, size_t len);
/*
 * Finish: fsync, compute the hex digest into sha_r (65 bytes), move into
 * place (dedup: if the blob exists the temp is dropped), fsync the dir.
 */
int blob_writer_commit(struct blob_store *bs, struct blob_writer *w,
    char sha_r[65], char *err);
/*
 * The same without the fan-out dir's fsync: for batches, which must call
 * blob_sync_dir for each blob's dir (once per distinct dir) before any
 * row naming one of them commits.
 */
int blob_writer_commit_nodirsync(struct blob_store *bs,
    struct blob_writer *w, char sha_r[65], char *err);
int blob_sync_dir(struct blob_store *bs, const char *sha, char *err);
/* 1 if two digests' blobs share a fan-out dir (one blob_sync_dir covers both). */
int blob_same_dir(const char *a, const char *b);
void blob_writer_abort(struct blob_writer *w);

/* Store bytes in memory whose digest is known (computed by the caller
 * over the same bytes): nothing is written if the blob is already there. */
int blob_put_mem(struct blob_store *bs, const void *buf, size_t len,
    const char *sha, char *err);
/* Store an existing file (moved in, not copied) whose digest is known. */
int blob_adopt(struct blob_store *bs, const char *path, const char *sha,
    char *err);
/*
 * Path of a blob, for reading: "<root>/ab/<sha>", or "<root>/ab/cd/<sha>"
 * when only the old layout has it.  "" for an invalid digest.
 */
void blob_path(const struct blob_store *bs, const char *sha, char *out,
    size_t outlen);
/* 1 if the blob is a file under either layout. */
int blob_exists(const struct blob_store *bs, const char *sha);
/* 1 if sha is exactly 64 lowercase hex digits: the only names we store. */
int blob_sha_valid(const char *sha);
/* Delete a blob under both layouts (erase/purge); gone already is success.
 * Only under blob_lock_excl, after checking that no row names it. */
int blob_remove(struct blob_store *bs, const char *sha);

/*
 * The removal lock (see blob.c).  A writer holds it shared from placing
 * its blobs until the rows naming them are committed or have failed:
 * blob_hold/blob_unhold, counted per store (threads sharing a store share
 * the hold).  A remover of unnamed blobs holds it exclusive while it
 * checks names and unlinks (refused while this store holds it shared).
 * Both wait at most wait_ms: -1 with err (ETIMEDOUT) after that.
 */
int blob_hold(struct blob_store *bs, int64_t wait_ms, char *err);
void blob_unhold(struct blob_store *bs);
int blob_lock_excl(struct blob_store *bs, int64_t wait_ms, char *err);
void blob_unlock_excl(struct blob_store *bs);

/* Every blob file under both layouts, with its mtime; cb returns nonzero
 * to stop.  0, or -1 with err if a fan-out dir cannot be read. */
typedef int (*blob_walk_cb)(const char *sha, int64_t mtime, void *ctx);
int blob_walk(struct blob_store *bs, blob_walk_cb cb, void *ctx, char *err);

#endif

/*
 * blob_gc.h - removing blob files no row names.  A delivery or a queueing
 * batch whose rows failed removes the blobs it placed (blob_gc_remove),
 * erasure and retention remove those their deleted rows named, and the
 * sweep (blob_gc_sweep: serve's start, the purge) removes unnamed blobs
 * older than store.blob_grace, which only a crash between blob and row
 * can leave.  Names are checked and files unlinked under the removal lock
 * held exclusive (blob.h), so a delivery reusing the same bytes has either
 * committed the row naming them or not yet placed them.
 */
#ifndef PD_BLOB_GC_H
#define PD_BLOB_GC_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct blob_store;

/* Bound on waiting for the removal lock: deliveries in flight finish
 * within their own timeouts (SQLite's busy timeout is 10 s). */
#define BLOB_GC_WAIT_MS 30000

/*
 * Of the n hashes, remove the blobs no row names (duplicates and hashes
 * with no file are harmless).  The caller must not hold the lock shared
 * on bs.  *removed_r (may be NULL): files unlinked.  0, or -1 with err
 * (the files are then left to the sweep).
 */
int blob_gc_remove(struct store *st, struct blob_store *bs,
    const char (*sha)[65], size_t n, size_t *removed_r, char *err);

/* Remove every unnamed blob whose mtime is before now - grace. */
int blob_gc_sweep(struct store *st, struct blob_store *bs, int64_t now,
    int64_t grace, size_t *removed_r, char *err);

#endif

/*
 * rawmsg.h - where a stored message's raw bytes live: inside the database
 * (raw_inline, up to store.inline_max octets: durable with the rows, no
 * file or fsync of their own) or, larger, a blob file under var/blobs.
 * Readers open them here and never look in only one place.  Never writes
 * SQL (store.c) nor places blob files (blob.c).
 */
#ifndef PD_RAWMSG_H
#define PD_RAWMSG_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct blob_store;

/*
 * Read a spool file of `size` octets whose sha256 is `sha` into memory
 * for raw_inline; *buf_r is malloc'd (caller frees).  The digest is
 * checked again so the database can never hold bytes its rows do not
 * name.  0, or -1 with err set.
 */
int rawmsg_load(int fd, uint64_t size, const char *sha, void **buf_r,
    char *err);

/*
 * A readable fd positioned at 0 on the raw message `sha`: the blob file,
 * or an anonymous memory file holding the inline copy.  1 with *fd_r,
 * 0 if the store holds neither (purged, erased), -1 with err set.
 */
int rawmsg_open(struct store *st, struct blob_store *bs, const char *sha,
    int *fd_r, char *err);

#endif

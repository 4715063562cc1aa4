/*
 * rawmsg.c - a stored message's raw bytes, wherever they live (see
 * rawmsg.h): loading a small spool file for the database, and opening a
 * message for readers (`message get`, the privacy export) as one fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blob.h"
#include "rawmsg.h"
#include "store.h"
#include "lib/util.h"

int
rawmsg_load(int fd, uint64_t size, const char *sha, void **buf_r,
    char *err)
{
	unsigned char md[EVP_MAX_MD_SIZE], *buf = xmalloc(size + 1);
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	uint64_t got = 0;
	ssize_t n;

	while (got < size) {
		n = pread(fd, buf + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			pd_err(err, "read spool: %s", n < 0 ? strerror(errno) :
			    "short file");
			goto fail;
		}
		got += (uint64_t)n;
	}
	if (EVP_Digest(buf, size, md, &mdlen, EVP_sha256(), NULL) != 1)
		pd_fatal("sha256 failed");
	pd_hex(hex, md, mdlen);
	if (strcmp(hex, sha) != 0) {
		pd_err(err, "spool file changed (sha256 %s, expected %s)", hex,
		    sha);
		goto fail;
	}
	*buf_r = buf;
	return 0;
fail:
	free(buf);
	return -1;
}

/* The inline copy as an fd: readers stream files, and fstat gives them
 * the size, so a memory file keeps them to one code path. */
static int
rawmsg_memfd(const void *data, size_t len, char *err)
{
	const unsigned char *p = data;
	int fd = memfd_create("postdoc-raw", MFD_CLOEXEC);
	size_t off = 0;
	ssize_t n;

	if (fd < 0) {
		pd_err(err, "memfd_create: %s", strerror(errno));
		return -1;
	}
	while (off < len) {
		n = write(fd, p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pd_err(err, "memfd write: %s", strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) != 0) {
		pd_err(err, "memfd seek: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
rawmsg_open(struct store *st, struct blob_store *bs, const char *sha,
    int *fd_r, char *err)
{
	char path[4096];
	void *data;
	size_t len;
	int rc;

	*fd_r = -1;
	if (!blob_sha_valid(sha))
		return 0;	/* purged rows keep sha256 = '' */
	if ((rc = store_raw_get(st, sha, &data, &len, err)) < 0)
		return -1;
	if (rc == 1) {
		*fd_r = rawmsg_memfd(data, len, err);
		free(data);
		return *fd_r < 0 ? -1 : 1;
	}
	blob_path(bs, sha, path, sizeof(path));
	*fd_r = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd_r >= 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	pd_err(err, "%s: %s", path, strerror(errno));
	return -1;
}

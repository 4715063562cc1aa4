/*
 * sync_dir - mirrors each stored document into a directory tree (a
 * mounted drive or share): <root>/<account>/<dossier ref>/<id>-<file>,
 * names from sync_name.h.  It only ever creates: folders with mkdirat,
 * files through a temporary name published with a no-replace rename, so
 * nothing already in the tree is overwritten, deleted or read beyond the
 * one name it is about to take.  It never follows a symlink below root,
 * and never writes into the bare mount point of an unmounted share.
 *
 * settings = { root = "/mnt/share/postdoc"; };
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postdoc/plugin.h"
#include "../common/sync_name.h"

#define SDIR_PATH_MAX 4096
#define SDIR_CHUNK 32768

struct sdir_state {
	char root[SDIR_PATH_MAX];
	int mountpoint;		/* root was a mount point at start */
};

/* What one call works on: the dossier folder and the temporary file. */
struct sdir_job {
	const struct postdoc_document *doc;
	int dirfd;
	char tmp[64];
	int tmp_made;
};

/* Root on another device than its parent: a mounted share. */
static int
sdir_is_mountpoint(const char *root, const struct stat *sb)
{
	char parent[SDIR_PATH_MAX + 4];
	struct stat pb;

	snprintf(parent, sizeof(parent), "%s/..", root);
	return stat(parent, &pb) == 0 && pb.st_dev != sb->st_dev;
}

static int
sdir_init(const config_setting_t *settings, void **state_r, char *err,
    size_t errlen)
{
	const char *root = NULL;
	struct sdir_state *st;
	struct stat sb;

	if (settings == NULL ||
	    !config_setting_lookup_string(settings, "root", &root) ||
	    root[0] != '/') {
		snprintf(err, errlen, "sync_dir: settings.root must be an "
		    "absolute path (line %d)", settings != NULL ?
		    config_setting_source_line(settings) : 0);
		return -1;
	}
	if (strlen(root) >= SDIR_PATH_MAX) {
		snprintf(err, errlen, "sync_dir: root is too long");
		return -1;
	}
	/* The root is the operator's: it must exist, we never create it
	 * (an unmounted share must not silently become a local folder). */
	if (stat(root, &sb) != 0) {
		snprintf(err, errlen, "sync_dir: root %s: %s", root,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "sync_dir: root %s: not a directory",
		    root);
		return -1;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "sync_dir: out of memory");
		return -1;
	}
	snprintf(st->root, sizeof(st->root), "%s", root);
	st->mountpoint = sdir_is_mountpoint(root, &sb);
	*state_r = st;
	return 0;
}

static void
sdir_deinit(void *state)
{
	free(state);
}

/*
 * Open (creating if missing, mode 0750) the folder `name` in parent.
 * O_NOFOLLOW: a symlink planted in its place fails (ENOTDIR, as
 * O_DIRECTORY sees the link itself) instead of leading us out of root.
 */
static int
sdir_subdir(int parent, const char *name)
{
	int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(parent, name, flags);

	if (fd >= 0 || errno != ENOENT)
		return fd;
	if (mkdirat(parent, name, 0750) != 0 && errno != EEXIST)
		return -1;
	if (fsync(parent) != 0)
		return -1;
	return openat(parent, name, flags);
}

static ssize_t
sdir_read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* 1 if the two open files hold the same bytes, 0 if not, -1 on error. */
static int
sdir_same_bytes(int a, int b)
{
	char ba[SDIR_CHUNK], bb[SDIR_CHUNK];

	for (;;) {
		ssize_t na = sdir_read_full(a, ba, sizeof(ba));
		ssize_t nb = sdir_read_full(b, bb, sizeof(bb));

		if (na < 0 || nb < 0)
			return -1;
		if (na != nb || memcmp(ba, bb, (size_t)na) != 0)
			return 0;
		if (na == 0)
			return 1;
	}
}

/*
 * Does `name` in the dossier folder already hold this document?  1 yes
 * (a repeated call), 0 something else is there, 2 nothing is there, -1
 * error.  Opened with O_NOFOLLOW (a symlink counts as "something else")
 * and O_NONBLOCK (a FIFO planted there must not hang us).
 */
static int
sdir_holds(const struct sdir_job *job, const char *name)
{
	int fd = openat(job->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_NOCTTY | O_CLOEXEC);
	struct stat sb;
	int src, rc, saved;

	if (fd < 0) {
		if (errno == ENOENT)
			return 2;
		return errno == ELOOP || errno == EACCES || errno == EPERM ||
		    errno == ENXIO ? 0 : -1;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size != job->doc->size) {
		close(fd);
		return 0;
	}
	if ((src = open(job->doc->path, O_RDONLY | O_CLOEXEC)) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	rc = sdir_same_bytes(fd, src);
	saved = errno;
	close(fd);
	close(src);
	errno = saved;
	return rc;
}

static int
sdir_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Copy the document's bytes to fd; EIO if they are not `size` bytes. */
static int
sdir_copy(const struct postdoc_document *doc, int fd)
{
	char buf[SDIR_CHUNK];
	uint64_t total = 0;
	int src = open(doc->path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	int saved;

	if (src < 0)
		return -1;
	while ((n = sdir_read_full(src, buf, sizeof(buf))) > 0) {
		if (sdir_write_all(fd, buf, (size_t)n) != 0)
			break;
		total += (uint64_t)n;
	}
	saved = errno;
	close(src);
	if (n == 0 && total != doc->size)
		saved = EIO;
	errno = saved;
	return n == 0 && total == doc->size ? 0 : -1;
}

/*
 * The temporary copy, ".postdoc-<id>.tmp" in the dossier folder (a dot
 * name: published names never start with '.', so it cannot be one, and
 * file browsers hide it).  One exists already only if a crash cut an
 * earlier copy of this same document short: it is ours, replace it.
 */
static int
sdir_write_tmp(struct sdir_job *job)
{
	int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd, rc, saved;

	snprintf(job->tmp, sizeof(job->tmp), ".postdoc-%lld.tmp",
	    (long long)job->doc->id);
	fd = openat(job->dirfd, job->tmp, flags, 0640);
	if (fd < 0 && errno == EEXIST &&
	    unlinkat(job->dirfd, job->tmp, 0) == 0)
		fd = openat(job->dirfd, job->tmp, flags, 0640);
	if (fd < 0)
		return -1;
	job->tmp_made = 1;
	rc = sdir_copy(job->doc, fd);
	if (rc == 0)
		rc = fsync(fd);
	saved = errno;
	if (close(fd) != 0 && rc == 0) {
		saved = errno;
		rc = -1;
	}
	errno = saved;
	return rc;
}

/*
 * Give the temporary file its final name without ever replacing one:
 * renameat2(RENAME_NOREPLACE), or where the file system lacks it (some
 * network and FUSE mounts) a hard link, which fails with EEXIST too.
 */
static int
sdir_publish(struct sdir_job *job, const char *name)
{
	if (renameat2(job->dirfd, job->tmp, job->dirfd, name,
	    RENAME_NOREPLACE) == 0) {
		job->tmp_made = 0;
		return 0;
	}
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return -1;
	if (linkat(job->dirfd, job->tmp, job->dirfd, name, 0) != 0)
		return -1;
	if (unlinkat(job->dirfd, job->tmp, 0) == 0)
		job->tmp_made = 0;
	return 0;
}

static enum postdoc_verdict
sdir_soft(struct postdoc_reply *r, const char *what, const char *name)
{
	snprintf(r->text, sizeof(r->text), "sync_dir: %s %.120s: %s", what,
	    name, strerror(errno));
	return POSTDOC_DENYSOFT;
}

/*
 * Try candidate names in order: the first that holds our bytes means a
 * repeated call (done); the first that is free gets the copy; one that
 * holds anything else is left alone.  A name taken between our look and
 * our publish (EEXIST) is looked at again.
 */
static enum postdoc_verdict
sdir_place(struct sdir_job *job, struct postdoc_reply *r)
{
	char name[SYNC_SEGMENT_MAX + 32];
	unsigned n;
	int rc, races = 0;

	for (n = 1; n <= SYNC_CANDIDATES_MAX; n++) {
		sync_name_file(name, sizeof(name), job->doc, n);
		rc = sdir_holds(job, name);
		if (rc == 1) {
			snprintf(r->text, sizeof(r->text), "sync_dir: already "
			    "mirrored as %.160s", name);
			return POSTDOC_OK;
		}
		if (rc == 0)
			continue;
		if (rc < 0)
			return sdir_soft(r, "cannot read", name);
		if (!job->tmp_made && sdir_write_tmp(job) != 0)
			return sdir_soft(r, "cannot write a copy of", name);
		if (sdir_publish(job, name) == 0) {
			if (fsync(job->dirfd) != 0)
				return sdir_soft(r, "cannot fsync folder of",
				    name);
			snprintf(r->text, sizeof(r->text), "sync_dir: "
			    "mirrored as %.160s", name);
			return POSTDOC_OK;
		}
		if (errno != EEXIST)
			return sdir_soft(r, "cannot publish", name);
		if (races++ < 3)
			n--;	/* look at the same name again */
	}
	snprintf(r->text, sizeof(r->text), "sync_dir: the first %d names for "
	    "document %lld are all taken by other files", SYNC_CANDIDATES_MAX,
	    (long long)job->doc->id);
	return POSTDOC_DENY;
}

/*
 * A root that was a mount point at start and now sits on its parent's
 * device is the empty directory under an unmounted share: writing there
 * would fill the local disk and hide the files from the customer.  A
 * remount (a new device number) still counts as mounted.
 */
static int
sdir_still_mounted(int root)
{
	struct stat sb, pb;

	if (fstat(root, &sb) != 0 || fstatat(root, "..", &pb, 0) != 0)
		return 0;
	return sb.st_dev != pb.st_dev;
}

/* Open <root>/<account>/<ref>, creating the two folders as needed. */
static int
sdir_open_dossier(const struct sdir_state *st, const struct postdoc_event *ev,
    struct postdoc_reply *r)
{
	char acct[SYNC_SEGMENT_MAX + 1], ref[SYNC_SEGMENT_MAX + 1];
	int root, afd, dfd;
	const char *a = ev->account != NULL ? ev->account : "";
	const char *d = ev->dossier_ref != NULL ? ev->dossier_ref : "";

	sync_name_segment(acct, sizeof(acct), a, strlen(a), SYNC_SEGMENT_MAX);
	sync_name_segment(ref, sizeof(ref), d, strlen(d), SYNC_SEGMENT_MAX);
	if ((root = open(st->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		sdir_soft(r, "root", st->root);
		return -1;
	}
	if (st->mountpoint && !sdir_still_mounted(root)) {
		snprintf(r->text, sizeof(r->text), "sync_dir: root %.120s is "
		    "no longer a mount point (share unmounted?)", st->root);
		close(root);
		return -1;
	}
	afd = sdir_subdir(root, acct);
	if (afd < 0)
		sdir_soft(r, "folder (a symlink is never followed)", acct);
	close(root);
	if (afd < 0)
		return -1;
	dfd = sdir_subdir(afd, ref);
	if (dfd < 0)
		sdir_soft(r, "folder (a symlink is never followed)", ref);
	close(afd);
	return dfd;
}

/* The core's event thread for this plugin, one document at a time. */
static enum postdoc_verdict
sdir_sync(void *state, const struct postdoc_event *ev,
    struct postdoc_reply *r)
{
	struct sdir_job job = { .doc = ev->document, .dirfd = -1 };
	enum postdoc_verdict v;

	if (job.doc == NULL || job.doc->path == NULL)
		return POSTDOC_OK;	/* nothing to mirror */
	if ((job.dirfd = sdir_open_dossier(state, ev, r)) < 0)
		return POSTDOC_DENYSOFT;
	v = sdir_place(&job, r);
	if (job.tmp_made)
		unlinkat(job.dirfd, job.tmp, 0);
	close(job.dirfd);
	return v;
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "sync_dir",
	.version = "1.0",
	.init = sdir_init,
	.deinit = sdir_deinit,
	.hooks = {
		.sync = sdir_sync,
	},
};

/*
 * file.c - the `file` transport: "delivers" each outbound message by
 * copying it, byte for byte, to <dir>/<id>-<rcpt>.eml, with the envelope
 * in a sidecar <id>-<rcpt>.json.  For tests and for sites that hand mail
 * on by other means.  A file that exists is complete (temp, fsync,
 * rename, fsync dir); file names are built from our row id and a
 * sanitised recipient, never taken verbatim from anything a peer sent.
 *
 * settings = { dir = "var/outbox"; };
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postdoc/plugin.h"

#define FILE_PATH_MAX 4096
#define FILE_RCPT_MAX 128	/* of the recipient in a file name */

struct file_state {
	char dir[FILE_PATH_MAX - 512];	/* room for "/<id>-<rcpt>.json.tmp" */
};

/* mkdir -p: each missing component with mode 0750. */
static int
file_mkdirs(const char *path)
{
	char buf[FILE_PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0750) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0750) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int
file_init(const config_setting_t *settings, void **state_r, char *err,
    size_t errlen)
{
	struct file_state *st = calloc(1, sizeof(*st));
	const char *dir = "var/outbox";

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (settings != NULL)
		config_setting_lookup_string(settings, "dir", &dir);
	if (dir[0] == '\0' || strlen(dir) >= sizeof(st->dir)) {
		snprintf(err, errlen, "dir must be a path shorter than %zu "
		    "bytes", sizeof(st->dir));
		free(st);
		return -1;
	}
	/* No mkdir here: init only checks settings (check-config runs it,
	 * maybe as another user); deliver makes the directory. */
	snprintf(st->dir, sizeof(st->dir), "%s", dir);
	*state_r = st;
	return 0;
}

static void
file_deinit(void *state)
{
	free(state);
}

/*
 * The recipient as a file name part: letters, digits and ".-_+@" kept,
 * everything else '_'.  No '/' survives, and the "<id>-" prefix means
 * no name can start with '.' or be "..".
 */
static void
file_rcpt_name(char *out, size_t outlen, const char *rcpt)
{
	size_t i;

	for (i = 0; i + 1 < outlen && i < FILE_RCPT_MAX && rcpt[i] != '\0';
	    i++) {
		char c = rcpt[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		    c == '_' || c == '+' || c == '@')
			out[i] = c;
		else
			out[i] = '_';
	}
	out[i] = '\0';
}

static int
file_write_all(int fd, const char *buf, size_t len)
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

/* Copy src to fd in chunks: messages are never held whole in memory. */
static int
file_copy(const char *src, int fd)
{
	char buf[65536];
	int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n;
	int saved;

	if (in < 0)
		return -1;
	for (;;) {
		n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || file_write_all(fd, buf, (size_t)n) != 0)
			break;
	}
	saved = errno;
	close(in);
	errno = saved;
	return n == 0 ? 0 : -1;
}

/* JSON string body: quote, backslash and controls escaped; ASCII only
 * reaches here (addresses were validated by the core). */
static void
file_json_str(FILE *f, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

static int
file_json_write(int fd, const struct postdoc_outbound_info *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int rc;

	if (f == NULL)
		return -1;
	fputs("{\"mail_from\":\"", f);
	file_json_str(f, m->mail_from);
	fputs("\",\"rcpt\":\"", f);
	file_json_str(f, m->rcpt);
	fprintf(f, "\",\"id\":%lld,\"kind\":\"", (long long)m->id);
	file_json_str(f, m->kind);
	fputs("\",\"account\":\"", f);
	file_json_str(f, m->account);
	fputs("\"}\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return -1;
	}
	rc = file_write_all(fd, buf, len);
	free(buf);
	return rc;
}

/* Write one file through a temp name: fill, fsync, rename into place. */
static int
file_put(const char *final, const struct postdoc_outbound_info *m,
    int sidecar)
{
	char tmp[FILE_PATH_MAX];
	int fd, rc, saved;

	snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0640);
	if (fd < 0)
		return -1;
	rc = sidecar ? file_json_write(fd, m) : file_copy(m->path, fd);
	if (rc == 0)
		rc = fsync(fd);
	saved = errno;
	if (close(fd) != 0 && rc == 0) {
		saved = errno;
		rc = -1;
	}
	if (rc == 0 && rename(tmp, final) == 0)
		return 0;
	if (rc == 0)
		saved = errno;
	unlink(tmp);
	errno = saved;
	return -1;
}

static int
file_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc, saved;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/*
 * The sidecar goes first: an .eml that exists always has its envelope.
 * The directory is fsync'd before we answer 250, since the core records
 * "sent" on that answer and never writes the file again.
 */
static void
file_deliver_one(const struct file_state *st,
    const struct postdoc_outbound_info *m, struct postdoc_delivery *res)
{
	char rcpt[FILE_RCPT_MAX + 1], eml[FILE_PATH_MAX], json[FILE_PATH_MAX];
	const char *base;

	file_rcpt_name(rcpt, sizeof(rcpt), m->rcpt != NULL ? m->rcpt : "");
	snprintf(eml, sizeof(eml), "%s/%lld-%s.eml", st->dir,
	    (long long)m->id, rcpt);
	snprintf(json, sizeof(json), "%s/%lld-%s.json", st->dir,
	    (long long)m->id, rcpt);
	base = strrchr(eml, '/') + 1;
	if (file_put(json, m, 1) != 0 || file_put(eml, m, 0) != 0 ||
	    file_fsync_dir(st->dir) != 0) {
		/* code 0: a local failure, deferred and retried by the core */
		res->code = 0;
		snprintf(res->text, sizeof(res->text), "%.120s: %.70s", base,
		    strerror(errno));
		return;
	}
	res->code = 250;
	snprintf(res->enhanced, sizeof(res->enhanced), "2.0.0");
	snprintf(res->text, sizeof(res->text), "written to %.180s", base);
}

/* Called from several delivery threads at once: state is read-only. */
static void
file_deliver(void *state, const struct postdoc_outbound_info *msgs, size_t n,
    struct postdoc_delivery *results)
{
	const struct file_state *st = state;
	size_t i;

	/* Made on first use (and again if an operator removed it); mkdir
	 * of what exists is EEXIST, harmless from several threads. */
	if (file_mkdirs(st->dir) != 0) {
		for (i = 0; i < n; i++) {
			results[i].code = 0;	/* local: deferred, retried */
			snprintf(results[i].text, sizeof(results[i].text),
			    "cannot create %.100s: %.80s", st->dir,
			    strerror(errno));
		}
		return;
	}
	for (i = 0; i < n; i++)
		file_deliver_one(st, &msgs[i], &results[i]);
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "file",
	.version = "1.0",
	.init = file_init,
	.deinit = file_deinit,
	.hooks = {
		.deliver = file_deliver,
	},
};

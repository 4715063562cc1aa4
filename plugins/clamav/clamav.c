/*
 * clamav.c - the `clamav` plugin: streams each attachment's decoded bytes
 * to clamd (INSTREAM over its Unix socket, one connection per file, one
 * chunk in memory at a time) and refuses an infected file, naming it and
 * the signature.  When clamd cannot answer (down, slow, over its
 * StreamMaxLength) the setting on_error decides: "tempfail" (451, the
 * sender retries) or "accept" (the file is filed and marked unscanned).
 * It never passes a file it could not scan as clean.
 *
 * settings = { socket = "/run/clamav/clamd.ctl"; timeout = 30;
 *              on_error = "tempfail"; };
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "postdoc/plugin.h"

#define CLAM_CHUNK (64 * 1024)	/* bytes per INSTREAM chunk */
#define CLAM_REPLY_MAX 512
#define CLAM_TIMEOUT_MAX 3600

struct clam_state {
	char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int timeout_ms;		/* one file's whole conversation */
	int accept_on_error;	/* on_error = "accept" */
	const struct postdoc_host *host;	/* serve only: the log */
};

/* One conversation with clamd: the socket and when it must be over. */
struct clam_conn {
	int fd;
	int64_t deadline;	/* CLOCK_MONOTONIC, ms */
};

static int64_t
clam_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- settings ------------------------------------------------------- */

static int
clam_read_settings(const config_setting_t *s, struct clam_state *st,
    char *err, size_t errlen)
{
	const char *sock = NULL, *on_error = "tempfail";
	int timeout = 30;

	if (s == NULL || config_setting_lookup_string(s, "socket", &sock)
	    != CONFIG_TRUE || sock[0] != '/') {
		snprintf(err, errlen, "line %d: 'socket' must name clamd's "
		    "LocalSocket (an absolute path)", s != NULL ?
		    config_setting_source_line(s) : 0);
		return -1;
	}
	if (strlen(sock) >= sizeof(st->socket)) {
		snprintf(err, errlen, "line %d: 'socket' is longer than %zu "
		    "bytes", config_setting_source_line(s),
		    sizeof(st->socket) - 1);
		return -1;
	}
	if (config_setting_get_member(s, "timeout") != NULL &&
	    (config_setting_lookup_int(s, "timeout", &timeout) != CONFIG_TRUE
	    || timeout < 1 || timeout > CLAM_TIMEOUT_MAX)) {
		snprintf(err, errlen, "line %d: 'timeout' must be seconds, "
		    "1 to %d", config_setting_source_line(
		    config_setting_get_member(s, "timeout")), CLAM_TIMEOUT_MAX);
		return -1;
	}
	if (config_setting_get_member(s, "on_error") != NULL &&
	    (config_setting_lookup_string(s, "on_error", &on_error) !=
	    CONFIG_TRUE || (strcmp(on_error, "tempfail") != 0 &&
	    strcmp(on_error, "accept") != 0))) {
		snprintf(err, errlen, "line %d: 'on_error' must be "
		    "\"tempfail\" or \"accept\"", config_setting_source_line(
		    config_setting_get_member(s, "on_error")));
		return -1;
	}
	snprintf(st->socket, sizeof(st->socket), "%s", sock);
	st->timeout_ms = timeout * 1000;
	st->accept_on_error = strcmp(on_error, "accept") == 0;
	return 0;
}

static int
clam_init(const config_setting_t *settings, void **state_r, char *err,
    size_t errlen)
{
	struct clam_state *st = calloc(1, sizeof(*st));

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Only the settings: clamd may start after us (check-config). */
	if (clam_read_settings(settings, st, err, errlen) != 0) {
		free(st);
		return -1;
	}
	*state_r = st;
	return 0;
}

static void
clam_deinit(void *state)
{
	free(state);
}

/* serve: keep the host for the log (hooks run on intake workers). */
static int
clam_start(void *state, const struct postdoc_host *host, char *err,
    size_t errlen)
{
	struct clam_state *st = state;

	(void)err;
	(void)errlen;
	__atomic_store_n(&st->host, host, __ATOMIC_RELEASE);
	return 0;
}

static void
clam_stop(void *state)
{
	struct clam_state *st = state;

	__atomic_store_n(&st->host, NULL, __ATOMIC_RELEASE);
}

/* ---- the conversation ---------------------------------------------- */

/* Wait until fd is ready for `events` or the deadline passes. */
static int
clam_wait(struct clam_conn *c, short events, char *why, size_t whylen)
{
	struct pollfd p = { c->fd, events, 0 };
	int64_t left = c->deadline - clam_now_ms();
	int r;

	do
		r = poll(&p, 1, left > 0 ? (int)left : 0);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		return 0;
	snprintf(why, whylen, r == 0 ? "clamd did not answer in time" :
	    "poll: %s", strerror(errno));
	return -1;
}

static int
clam_connect(const struct clam_state *st, struct clam_conn *c, char *why,
    size_t whylen)
{
	struct sockaddr_un sun;
	int err = 0;
	socklen_t len = sizeof(err);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, st->socket, strlen(st->socket) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (c->fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EAGAIN) {
		snprintf(why, whylen, "cannot connect to clamd: %s",
		    strerror(errno));
		return -1;
	}
	if (clam_wait(c, POLLOUT, why, whylen) != 0)
		return -1;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
	    err != 0) {
		snprintf(why, whylen, "cannot connect to clamd: %s",
		    strerror(err != 0 ? err : errno));
		return -1;
	}
	return 0;
}

/* All of buf, or -1 (the peer closed early: maybe with a reply). */
static int
clam_send(struct clam_conn *c, const void *buf, size_t len, char *why,
    size_t whylen)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		if (clam_wait(c, POLLOUT, why, whylen) != 0)
			return -1;
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			snprintf(why, whylen, "send to clamd: %s",
			    strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The reply up to its NUL (z-commands) or the peer's close. */
static int
clam_recv(struct clam_conn *c, char *reply, size_t len, char *why,
    size_t whylen)
{
	size_t got = 0;
	ssize_t n;

	while (got + 1 < len) {
		if (clam_wait(c, POLLIN, why, whylen) != 0)
			return -1;
		n = recv(c->fd, reply + got, len - 1 - got, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			snprintf(why, whylen, "read from clamd: %s",
			    strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (memchr(reply + got - n, '\0', (size_t)n) != NULL)
			break;
	}
	reply[got] = '\0';
	if (got == 0) {
		snprintf(why, whylen, "clamd closed without an answer");
		return -1;
	}
	return 0;
}

/*
 * INSTREAM (clamd(8)): "zINSTREAM\0", then chunks, each a 4-byte
 * network-order length and the bytes, then a zero length.  clamd
 * answers once, after the last chunk, or early ("INSTREAM size limit
 * exceeded") when the file passes its StreamMaxLength, and closes: a
 * send that fails is followed by a read of that answer.
 */
static int
clam_stream(struct clam_conn *c, int file, char *reply, size_t rlen,
    char *why, size_t whylen)
{
	static const char cmd[] = "zINSTREAM";
	unsigned char *buf = malloc(4 + CLAM_CHUNK);
	uint32_t be;
	ssize_t n;
	int rc = -1;

	if (buf == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if (clam_send(c, cmd, sizeof(cmd), why, whylen) != 0)
		goto out;
	for (;;) {
		n = read(file, buf + 4, CLAM_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, whylen, "read attachment: %s",
			    strerror(errno));
			goto out;
		}
		be = htonl((uint32_t)n);
		memcpy(buf, &be, 4);
		if (clam_send(c, buf, 4 + (size_t)n, why, whylen) != 0) {
			/* clamd may have answered early and closed (its
			 * StreamMaxLength): that answer says why. */
			char ignored[8];

			rc = clam_recv(c, reply, rlen, ignored,
			    sizeof(ignored));
			goto out;
		}
		if (n == 0)
			break;
	}
	rc = clam_recv(c, reply, rlen, why, whylen);
out:
	free(buf);
	return rc;
}

/* ---- the verdict ----------------------------------------------------- */

/*
 * "stream: OK", "stream: <signature> FOUND", or an error ("INSTREAM
 * size limit exceeded. ERROR", "... ERROR").  1 clean, 2 infected (sig
 * set), 0 anything else (why set).
 */
static int
clam_parse(const char *reply, char *sig, size_t siglen, char *why,
    size_t whylen)
{
	static const char pfx[] = "stream: ";
	const char *p = reply;
	size_t n = strlen(reply);

	while (n > 0 && (reply[n - 1] == '\n' || reply[n - 1] == ' '))
		n--;
	if (strncmp(p, pfx, sizeof(pfx) - 1) == 0) {
		p += sizeof(pfx) - 1;
		n -= sizeof(pfx) - 1;
		if (n == 2 && strncmp(p, "OK", 2) == 0)
			return 1;
		if (n > 6 && strncmp(p + n - 6, " FOUND", 6) == 0) {
			snprintf(sig, siglen, "%.*s", (int)(n - 6), p);
			return 2;
		}
	}
	snprintf(why, whylen, "clamd: %.*s", (int)(n < 120 ? n : 120),
	    reply);
	return 0;
}

/* 1 clean, 2 infected, 0 could not scan (why set). */
static int
clam_scan(const struct clam_state *st, const char *path, char *sig,
    size_t siglen, char *why, size_t whylen)
{
	struct clam_conn c = { -1, clam_now_ms() + st->timeout_ms };
	char reply[CLAM_REPLY_MAX];
	int file, r = 0;

	file = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (file < 0) {
		snprintf(why, whylen, "open attachment: %s", strerror(errno));
		return 0;
	}
	if (clam_connect(st, &c, why, whylen) == 0 &&
	    clam_stream(&c, file, reply, sizeof(reply), why, whylen) == 0)
		r = clam_parse(reply, sig, siglen, why, whylen);
	if (c.fd >= 0)
		close(c.fd);
	close(file);
	return r;
}

static enum postdoc_verdict
clam_attachment(void *state, const struct postdoc_attachment_info *a,
    struct postdoc_reply *r)
{
	const struct clam_state *st = state;
	const struct postdoc_host *host;
	char sig[128] = "", why[160] = "";

	switch (clam_scan(st, a->path, sig, sizeof(sig), why, sizeof(why))) {
	case 1:
		r->scan = POSTDOC_SCAN_CLEAN;
		return POSTDOC_CONT;	/* other plugins still decide */
	case 2:
		r->scan = POSTDOC_SCAN_INFECTED;
		snprintf(r->text, sizeof(r->text), "attachment \"%.80s\" "
		    "contains malware (%s)", a->filename, sig);
		return POSTDOC_DENY;
	default:
		r->scan = POSTDOC_SCAN_UNSCANNED;
		host = __atomic_load_n(&st->host, __ATOMIC_ACQUIRE);
		/* The operator must hear of it: "unscanned" marks alone
		 * would hide a clamd that is down. */
		if (host != NULL)
			host->log(host->ctx, POSTDOC_LOG_WARN, "clamav: %s not "
			    "scanned (%s): %s", a->filename, why,
			    st->accept_on_error ? "accepted, marked unscanned" :
			    "deferred (451)");
		if (st->accept_on_error)
			return POSTDOC_CONT;	/* filed, marked unscanned */
		snprintf(r->text, sizeof(r->text), "attachment \"%.80s\" "
		    "could not be scanned for malware (%s), try again later",
		    a->filename, why);
		return POSTDOC_DENYSOFT;
	}
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "clamav",
	.version = "1.0",
	.init = clam_init,
	.deinit = clam_deinit,
	.start = clam_start,
	.stop = clam_stop,
	.hooks = {
		.attachment = clam_attachment,
	},
};

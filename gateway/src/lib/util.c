/*
 * util.c - the small helpers every module shares: error buffers, escaped
 * logging, allocation that aborts on exhaustion, time, hex, randomness and
 * directory durability.  Holds no state but the log level and destination
 * (stderr, a log file reopened on request, or syslog); never exits on
 * anything a peer sent (only on our own broken invariants and OOM).
 */
#include <dirent.h>
#include <netdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "util.h"

/* Atomic because worker threads log while the main thread may reconfigure. */
static _Atomic int pd_log_level = PD_LOG_INFO;
static _Atomic int pd_log_to_syslog;
/* Where lines go when not to syslog: stderr, or the log file.  The
 * file's descriptor number never changes once open: a reopen dup3()s the
 * new file onto it, so a thread writing while SIGHUP is handled writes
 * to the old file or the new one, never to a descriptor closed and
 * reused for a socket in between. */
static _Atomic int pd_log_fd = STDERR_FILENO;
static char pd_log_path[4096];	/* set once, before threads; "" = none */
static _Thread_local const char *pd_log_ctx;

/* Longest log line we emit; longer messages are cut, never split. */
#define PD_LOG_MAX 4096

void
pd_err(char *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err, PD_ERRLEN, fmt, ap);
	va_end(ap);
}

void
pd_log_set_level(enum pd_log_level lvl)
{
	atomic_store(&pd_log_level, (int)lvl);
}

static const char *
pd_log_level_name(enum pd_log_level lvl)
{
	switch (lvl) {
	case PD_LOG_ERR:
		return "ERROR";
	case PD_LOG_WARN:
		return "WARN";
	case PD_LOG_INFO:
		return "INFO";
	case PD_LOG_DEBUG:
		return "DEBUG";
	}
	return "unknown";
}

/*
 * Append msg to line escaping every control byte and every non-ASCII
 * byte as \xNN: a peer who puts CR/LF or terminal escapes into a header
 * we log must not be able to forge a log line or drive the operator's
 * terminal.  Returns the new length; never exceeds cap - 2 so "\n" fits.
 */
static size_t
pd_log_escape(char *line, size_t len, size_t cap, const char *msg)
{
	static const char hexd[] = "0123456789abcdef";
	const unsigned char *p;

	for (p = (const unsigned char *)msg; *p != '\0'; p++) {
		if (*p >= 0x20 && *p < 0x7f) {
			if (len + 1 > cap - 2)
				break;
			line[len++] = (char)*p;
			continue;
		}
		if (len + 4 > cap - 2)
			break;
		line[len++] = '\\';
		line[len++] = 'x';
		line[len++] = hexd[*p >> 4];
		line[len++] = hexd[*p & 0x0f];
	}
	return len;
}

/* RFC 5424 6.2.1 severities; the facility (mail) came with openlog. */
static int
pd_log_priority(enum pd_log_level lvl)
{
	switch (lvl) {
	case PD_LOG_ERR:
		return LOG_ERR;
	case PD_LOG_WARN:
		return LOG_WARNING;
	case PD_LOG_INFO:
		return LOG_INFO;
	default:
		return LOG_DEBUG;
	}
}

static void
pd_vlog(enum pd_log_level lvl, const char *fmt, va_list ap)
{
	char msg[PD_LOG_MAX], line[PD_LOG_MAX];
	int n = 0;
	size_t len;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (atomic_load(&pd_log_to_syslog)) {
		/* syslog adds the tag and pid; the escaped text only. */
		len = pd_log_escape(line, 0, sizeof(line), msg);
		line[len] = '\0';
		syslog(pd_log_priority(lvl), "%s", line);
		return;
	}
	n = snprintf(line, sizeof(line), "postdoc[%ld]: %s: ",
	    (long)getpid(), pd_log_level_name(lvl));
	if (n < 0)
		return;
	len = pd_log_escape(line, (size_t)n, sizeof(line), msg);
	line[len++] = '\n';
	/* One write per line: concurrent threads never interleave (the
	 * file is O_APPEND, so neither do two processes). */
	while (write(atomic_load(&pd_log_fd), line, len) < 0 && errno == EINTR)
		;
}

void
pd_log_syslog(const char *ident)
{
	/* NDELAY: connect to /dev/log now, before a chroot or privilege
	 * drop could hide it. */
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	atomic_store(&pd_log_to_syslog, 1);
}

static int
pd_log_open(const char *path, char *err)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOCTTY, 0640);

	if (fd < 0)
		pd_err(err, "cannot open log file %s: %s", path,
		    strerror(errno));
	return fd;
}

int
pd_log_file(const char *path, char *err)
{
	int fd;

	if (strlen(path) >= sizeof(pd_log_path)) {
		pd_err(err, "log file name too long: %s", path);
		return -1;
	}
	if ((fd = pd_log_open(path, err)) < 0)
		return -1;
	snprintf(pd_log_path, sizeof(pd_log_path), "%s", path);
	atomic_store(&pd_log_fd, fd);
	return 0;
}

/*
 * logrotate's convention (and newsyslog's): the file was renamed, and
 * SIGHUP asks us to write to a new file under the old name.  On failure
 * lines keep going to the renamed file, which is better than nowhere.
 */
int
pd_log_reopen(char *err)
{
	int fd, cur = atomic_load(&pd_log_fd);

	if (pd_log_path[0] == '\0' || atomic_load(&pd_log_to_syslog))
		return 0;
	if ((fd = pd_log_open(pd_log_path, err)) < 0)
		return -1;
	if (dup3(fd, cur, O_CLOEXEC) < 0) {
		pd_err(err, "cannot reopen log file %s: %s", pd_log_path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 1;
}

void
pd_log_context_set(const char *id)
{
	pd_log_ctx = id;
}

const char *
pd_log_context(void)
{
	return pd_log_ctx;
}

void
pd_log(enum pd_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if ((int)lvl > atomic_load(&pd_log_level))
		return;
	va_start(ap, fmt);
	pd_vlog(lvl, fmt, ap);
	va_end(ap);
}

void
pd_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pd_vlog(PD_LOG_ERR, fmt, ap);
	va_end(ap);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);

	if (p == NULL)
		pd_fatal("out of memory (%zu bytes)", n);
	return p;
}

void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n == 0 ? 1 : n, sz == 0 ? 1 : sz);

	if (p == NULL)
		pd_fatal("out of memory (%zu x %zu bytes)", n, sz);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n == 0 ? 1 : n);

	if (q == NULL)
		pd_fatal("out of memory (%zu bytes)", n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		pd_fatal("out of memory (asprintf)");
	return s;
}

void
pd_ascii_clean(char *dst, size_t dstlen, const char *src)
{
	size_t i;

	if (dstlen == 0)
		return;
	for (i = 0; i + 1 < dstlen && src[i] != '\0'; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

int64_t
pd_now(void)
{
	return (int64_t)time(NULL);
}

int64_t
pd_monotonic_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		pd_fatal("clock_gettime(CLOCK_MONOTONIC): %s", strerror(errno));
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
pd_month_days(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return days[m - 1] + (m == 2 && leap);
}

/* Digits only (no sign, no space: strtol's leniency is the bug). */
static int
pd_digits(const char *s, size_t n, int *v_r)
{
	size_t i;
	int v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*v_r = v;
	return 0;
}

int
pd_parse_day(const char *s, int64_t *t_r)
{
	struct tm tm;
	int y, m, d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
	    pd_digits(s, 4, &y) != 0 || pd_digits(s + 5, 2, &m) != 0 ||
	    pd_digits(s + 8, 2, &d) != 0)
		return -1;
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > pd_month_days(y, m))
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	*t_r = (int64_t)timegm(&tm);
	return 0;
}

int
pd_parse_when(const char *s, int64_t *t_r)
{
	size_t n = strlen(s), i;
	int64_t v = 0;

	if (pd_parse_day(s, t_r) == 0)
		return 0;
	/* 12 digits hold PD_TIME_MAX; more would need the clamp we refuse. */
	if (n == 0 || n > 12)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > PD_TIME_MAX)
		return -1;
	*t_r = v;
	return 0;
}

void
pd_hex(char *out, const unsigned char *in, size_t n)
{
	static const char hexd[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hexd[in[i] >> 4];
		out[2 * i + 1] = hexd[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

int
pd_random(void *buf, size_t n)
{
	/* RAND_bytes takes an int; callers ask for tens of bytes, not GBs. */
	if (n > (size_t)0x7fffffff)
		return -1;
	if (n == 0)
		return 0;
	return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

int
pd_mkdirs(const char *path, unsigned mode)
{
	char buf[4096];
	size_t len = strlen(path), i;
	struct stat sb;

	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	/* Create each prefix in turn; an existing directory is fine. */
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		if (buf[i - 1] == '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, (mode_t)mode) == 0)
			pd_own_path(buf);
		else if (errno != EEXIST)
			return -1;
		buf[i] = path[i];
	}
	/* EEXIST above may have been a file: the result must be a directory. */
	if (stat(path, &sb) != 0)
		return -1;
	if (!S_ISDIR(sb.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int
pd_fsync_dir(const char *path)
{
	int fd, rc, saved;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
pd_dir_clear(const char *dir)
{
	struct dirent *de;
	char path[4096 + 512];
	DIR *d = opendir(dir);
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int
pd_beside_exe(const char *rel, char *out, size_t outlen)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;
	int len;

	if (n <= 0)
		return 0;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return 0;
	*slash = '\0';
	len = snprintf(out, outlen, "%s/%s", exe, rel);
	return len > 0 && (size_t)len < outlen && access(out, F_OK) == 0;
}

/* A listener setting ("host:port", "[v6]:port", numeric only: no DNS at
 * start) as a socket address; key names the setting in errors. */
int
pd_listen_addr(const char *key, const char *listen,
    struct sockaddr_storage *ss, char *err)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	struct addrinfo hints, *ai = NULL;
	size_t n;

	if (colon == NULL || (n = (size_t)(colon - listen)) >= sizeof(host)) {
		pd_err(err, "%s \"%s\" is not host:port", key, listen);
		return -1;
	}
	memcpy(host, listen, n);
	host[n] = '\0';
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL) {
		pd_err(err, "%s \"%s\": not a numeric address", key,
		    listen);
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

void
pd_deadline_ms(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int
pd_write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static uid_t pd_var_uid;
static gid_t pd_var_gid;
static int pd_var_chown;	/* 0: nothing to hand over */

void
pd_var_owner_init(const char *var_dir)
{
	struct stat sb;

	pd_var_chown = geteuid() == 0 && stat(var_dir, &sb) == 0 &&
	    sb.st_uid != 0;
	if (pd_var_chown) {
		pd_var_uid = sb.st_uid;
		pd_var_gid = sb.st_gid;
	}
}

void
pd_own_fd(int fd)
{
	struct stat sb;

	if (pd_var_chown && fstat(fd, &sb) == 0 && sb.st_uid == 0)
		(void)fchown(fd, pd_var_uid, pd_var_gid);
}

void
pd_own_path(const char *path)
{
	struct stat sb;

	if (pd_var_chown && lstat(path, &sb) == 0 && sb.st_uid == 0 &&
	    !S_ISLNK(sb.st_mode))
		(void)lchown(path, pd_var_uid, pd_var_gid);
}

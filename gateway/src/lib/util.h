/*
 * util.h - small shared helpers: error buffers, logging, time, hex.
 * Owns no state except the log level; never exits on peer input.
 */
#ifndef PD_UTIL_H
#define PD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <time.h>

/* Every `char *err` parameter points at a buffer of this size. */
#define PD_ERRLEN 512

void pd_err(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

enum pd_log_level { PD_LOG_ERR, PD_LOG_WARN, PD_LOG_INFO, PD_LOG_DEBUG };
void pd_log_set_level(enum pd_log_level lvl);
/* Logs to stderr ("postdoc[pid]: LEVEL: text") or, once
 * pd_log_syslog() ran, to syslog (facility mail, tag postdoc[pid]); the
 * message is escaped so peer bytes cannot forge lines.  Lines about one
 * message begin with its queue id ("<id>: ..."), see docs/operations.md. */
void pd_log(enum pd_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* From now on log to syslog: openlog(ident, LOG_PID | LOG_NDELAY,
 * LOG_MAIL).  Serve only: CLI commands keep stderr for their operator. */
void pd_log_syslog(const char *ident);
/* From now on log to the file path (appended, created 0640).  Serve
 * only, before its threads start.  -1 with err. */
int pd_log_file(const char *path, char *err);
/* Open the log file's name again (after a rename by logrotate): 1 done,
 * 0 when logging to stderr or syslog, -1 with err (the old file stays). */
int pd_log_reopen(char *err);
/* The id of what this thread works on (a queue id, an outbound id or a
 * session id), for log lines written by code that does not know it:
 * plugins' host->log.  Borrowed until cleared with NULL; per thread. */
void pd_log_context_set(const char *id);
const char *pd_log_context(void);	/* NULL if none */
/* "<context>: " or nothing, for a line that may run inside a hook:
 * log_info(PD_CTX_FMT "text", PD_CTX). */
#define PD_CTX_FMT "%s%s"
#define PD_CTX (pd_log_context() != NULL ? pd_log_context() : ""), \
	(pd_log_context() != NULL ? ": " : "")
#define log_err(...) pd_log(PD_LOG_ERR, __VA_ARGS__)
#define log_warn(...) pd_log(PD_LOG_WARN, __VA_ARGS__)
#define log_info(...) pd_log(PD_LOG_INFO, __VA_ARGS__)
#define log_debug(...) pd_log(PD_LOG_DEBUG, __VA_ARGS__)

/* Broken invariant of our own: log and abort. */
void pd_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copy printable ASCII of src into dst (size dstlen), others as '?'. */
void pd_ascii_clean(char *dst, size_t dstlen, const char *src);

int64_t pd_now(void);			/* seconds since the epoch */

/*
 * The one reading of a date people type (--now, --due, the API's due):
 * "YYYY-MM-DD" must be a day of the calendar (no 2099-02-30 rolled
 * into March), years 1970-9999, midnight UTC into *t_r.  pd_parse_when
 * also takes epoch seconds, 1 to PD_TIME_MAX, digits only: a value out
 * of range is refused, never clamped.  0 ok, -1 not.
 */
#define PD_TIME_MAX 253402300799LL	/* 9999-12-31T23:59:59Z */
#define PD_WHEN_FORMS "YYYY-MM-DD (a calendar day) or epoch seconds " \
	"(1 to 253402300799)"
int pd_parse_day(const char *s, int64_t *t_r);
int pd_parse_when(const char *s, int64_t *t_r);
int64_t pd_monotonic_ms(void);		/* CLOCK_MONOTONIC, milliseconds */
void pd_hex(char *out, const unsigned char *in, size_t n); /* 2n+1 bytes */
/* Fill buf with n cryptographically random bytes; -1 on failure. */
int pd_random(void *buf, size_t n);
/* mkdir -p with mode; 0 on success */
int pd_mkdirs(const char *path, unsigned mode);
/* Remove the regular files directly inside dir (not subdirectories);
 * returns how many, or -1 if dir cannot be read. */
int pd_dir_clear(const char *dir);
/*
 * A relative resource path (templates, plugins) as seen from a build
 * tree: "<directory of the running binary>/<rel>" if that exists.
 * Returns 1 and fills out, or 0.
 */
int pd_beside_exe(const char *rel, char *out, size_t outlen);
/* fsync a directory by path */
int pd_fsync_dir(const char *path);
/*
 * Files root creates under var_dir belong to var_dir's owner.  An
 * operator who runs a CLI command as root (or serve as root without
 * server.user) next to a serve running as that owner must not leave it
 * directories and files it cannot use: blobs/ made by `account add`
 * before serve's workers got to it made every delivery answer 451.
 * pd_var_owner_init: once, after the configuration is read; the rest
 * are no-ops unless we run as root and var_dir belongs to another user.
 * They only hand over what root owns, never another user's file.
 */
void pd_var_owner_init(const char *var_dir);
void pd_own_fd(int fd);
void pd_own_path(const char *path);

/* write() all of buf, retrying EINTR and short writes: 0, or -1/errno. */
int pd_write_all(int fd, const void *buf, size_t len);

/* "host:port" or "[v6]:port", numeric, into ss; -1 with err naming key. */
int pd_listen_addr(const char *key, const char *listen,
    struct sockaddr_storage *ss, char *err);

/* CLOCK_MONOTONIC now + ms, for pthread_cond_timedwait on a condition
 * variable whose clock is CLOCK_MONOTONIC. */
void pd_deadline_ms(struct timespec *ts, int64_t ms);

#endif

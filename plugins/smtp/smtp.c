/*
 * smtp.c - the `smtp` transport: hands a batch of outbound messages to one
 * relay in one libESMTP session and reports each message's fate.  It owns
 * the relay policy (STARTTLS, certificate and name checks, AUTH) and must
 * never let libESMTP alter a message, emit a bare CR or LF (G8), send
 * content unauthenticated when credentials are set, or read ~/.authenticate.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* libESMTP declares its TLS and AUTH API only when these come first. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <auth-client.h>
#include <libesmtp.h>

#include "postdoc/plugin.h"

#define SMTP_CHUNK 8192
#define SMTP_ERR_LEN 600
#define SMTP_REPLY_LEN 256
#define SMTP_LINE_MAX 512
#define SMTP_SECRET_MAX 1024
#define SMTP_ADDR_MAX 256

enum smtp_tls_mode { SMTP_TLS_NONE, SMTP_TLS_OPPORTUNISTIC, SMTP_TLS_REQUIRED };

/* Built once at init, then only read: safe to share between threads. */
struct smtp_state {
	char *host;
	int port;
	char hostport[264];
	enum smtp_tls_mode tls;
	int verify;
	char *helo;
	char *user;		/* NULL: no AUTH */
	char *password;
	long timeout_ms;
	SSL_CTX *ctx;
};

enum smtp_auth_state { SMTP_AUTH_NONE, SMTP_AUTH_PENDING, SMTP_AUTH_OK,
	SMTP_AUTH_FAILED };

/* One deliver call: lives on the delivering thread's stack. */
struct smtp_run {
	const struct smtp_state *st;
	int greeted;		/* the relay said something */
	int tls_ok;
	int tls_missing;
	char tls_error[SMTP_ERR_LEN];
	enum smtp_auth_state auth;
	int auth_offered;
	char auth_text[SMTP_REPLY_LEN];
	char last_reply[SMTP_REPLY_LEN];
	char line[SMTP_LINE_MAX];
	size_t linelen;
	unsigned char buf[SMTP_CHUNK + 1];
};

/* One message of the batch, streamed from the fd opened by the check. */
struct smtp_msg {
	struct smtp_run *run;
	int fd;
	int carry_cr;		/* a CR held back until we see its LF */
	int last_lf;
	int failed;		/* non-canonical bytes seen while sending */
	smtp_message_t m;
	smtp_recipient_t r;
};

/* Set by OpenSSL's verify callback during the handshake on this thread;
 * libESMTP gives us no other way to learn why a handshake failed. */
static _Thread_local char smtp_verify_error[SMTP_ERR_LEN];

static void
smtp_state_free(struct smtp_state *st)
{
	if (st == NULL)
		return;
	free(st->host);
	free(st->helo);
	free(st->user);
	if (st->password != NULL) {
		explicit_bzero(st->password, strlen(st->password));
		free(st->password);
	}
	SSL_CTX_free(st->ctx);
	free(st);
}

static void
smtp_deinit(void *state)
{
	smtp_state_free(state);
}

/* ---- settings ---------------------------------------------------------- */

static const char *smtp_known_keys[] = {
	"host", "port", "starttls", "ca_file", "ca_dir", "verify", "helo",
	"user", "password", "password_file", "timeout", NULL
};

/* Unknown keys are refused: a typo in "starttls" must not mean cleartext. */
static int
smtp_cfg_check_keys(const config_setting_t *s, char *err, size_t errlen)
{
	int i, k, n = s == NULL ? 0 : config_setting_length(s);
	const config_setting_t *e;

	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		for (k = 0; smtp_known_keys[k] != NULL; k++)
			if (config_setting_name(e) != NULL &&
			    strcmp(config_setting_name(e), smtp_known_keys[k]) == 0)
				break;
		if (smtp_known_keys[k] == NULL) {
			snprintf(err, errlen, "line %d: unknown setting '%s'",
			    config_setting_source_line(e),
			    config_setting_name(e) ? config_setting_name(e) : "?");
			return -1;
		}
	}
	return 0;
}

static int
smtp_cfg_string(const config_setting_t *s, const char *name,
    const char *def, const char **out, char *err, size_t errlen)
{
	const config_setting_t *e = s ? config_setting_get_member(s, name) : NULL;

	*out = def;
	if (e == NULL)
		return 0;
	if ((*out = config_setting_get_string(e)) == NULL) {
		snprintf(err, errlen, "line %d: '%s' must be a string",
		    config_setting_source_line(e), name);
		return -1;
	}
	return 0;
}

static int
smtp_cfg_int(const config_setting_t *s, const char *name, int def, int min,
    int max, int *out, char *err, size_t errlen)
{
	const config_setting_t *e = s ? config_setting_get_member(s, name) : NULL;

	*out = def;
	if (e == NULL)
		return 0;
	if (config_setting_type(e) != CONFIG_TYPE_INT ||
	    (*out = config_setting_get_int(e)) < min || *out > max) {
		snprintf(err, errlen, "line %d: '%s' must be an integer from "
		    "%d to %d", config_setting_source_line(e), name, min, max);
		return -1;
	}
	return 0;
}

static int
smtp_cfg_bool(const config_setting_t *s, const char *name, int def,
    int *out, char *err, size_t errlen)
{
	const config_setting_t *e = s ? config_setting_get_member(s, name) : NULL;

	*out = def;
	if (e == NULL)
		return 0;
	if (config_setting_type(e) != CONFIG_TYPE_BOOL) {
		snprintf(err, errlen, "line %d: '%s' must be true or false",
		    config_setting_source_line(e), name);
		return -1;
	}
	*out = config_setting_get_bool(e);
	return 0;
}

/* A value that reaches an SMTP command line: printable, no spaces. */
static int
smtp_token_ok(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (s[i] <= ' ' || s[i] > '~' || i >= max)
			return 0;
	return 1;
}

/*
 * The password file must be ours alone: a secret that group or other can
 * read is already leaked, and refusing at init says so before any mail.
 */
static int
smtp_read_password_file(const char *path, char **out, char *err,
    size_t errlen)
{
	char buf[SMTP_SECRET_MAX + 2];
	struct stat sb;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &sb) != 0) {
		snprintf(err, errlen, "password_file %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode) || (sb.st_mode & (S_IRWXG | S_IRWXO))) {
		snprintf(err, errlen, "password_file %s: mode %04o lets group "
		    "or other at it (or not a regular file); chmod 600",
		    path, (unsigned)(sb.st_mode & 07777));
		goto fail;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0 || n > SMTP_SECRET_MAX) {
		snprintf(err, errlen, "password_file %s: unreadable or longer "
		    "than %d bytes", path, SMTP_SECRET_MAX);
		goto fail;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';	/* one line; editors add LF */
	close(fd);
	*out = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	explicit_bzero(buf, sizeof(buf));
	return -1;
}

static int
smtp_tls_mode(const char *s, enum smtp_tls_mode *out)
{
	if (strcmp(s, "required") == 0)
		*out = SMTP_TLS_REQUIRED;
	else if (strcmp(s, "opportunistic") == 0)
		*out = SMTP_TLS_OPPORTUNISTIC;
	else if (strcmp(s, "none") == 0)
		*out = SMTP_TLS_NONE;
	else
		return -1;
	return 0;
}

static int
smtp_init_relay(struct smtp_state *st, const config_setting_t *s, char *err,
    size_t errlen)
{
	const char *host, *helo, *tls;
	int timeout;

	if (smtp_cfg_string(s, "host", "127.0.0.1", &host, err, errlen) ||
	    smtp_cfg_int(s, "port", 25, 1, 65535, &st->port, err, errlen) ||
	    smtp_cfg_string(s, "helo", "postdoc.localhost", &helo, err,
	    errlen) ||
	    smtp_cfg_string(s, "starttls", "required", &tls, err, errlen) ||
	    smtp_cfg_bool(s, "verify", 1, &st->verify, err, errlen) ||
	    smtp_cfg_int(s, "timeout", 60, 1, 3600, &timeout, err, errlen))
		return -1;
	/* libESMTP splits "host:port" at the first colon: no IPv6 literals. */
	if (host[0] == '\0' || strchr(host, ':') != NULL ||
	    !smtp_token_ok(host, 255)) {
		snprintf(err, errlen, "host '%s' must be a name or an IPv4 "
		    "address", host);
		return -1;
	}
	if (!smtp_token_ok(helo, 255) || helo[0] == '\0') {
		snprintf(err, errlen, "helo '%s' is not a host name", helo);
		return -1;
	}
	if (smtp_tls_mode(tls, &st->tls) != 0) {
		snprintf(err, errlen, "starttls must be \"required\", "
		    "\"opportunistic\" or \"none\", not \"%s\"", tls);
		return -1;
	}
	st->host = strdup(host);
	st->helo = strdup(helo);
	st->timeout_ms = timeout * 1000L;
	snprintf(st->hostport, sizeof(st->hostport), "%s:%d", host, st->port);
	return 0;
}

static int
smtp_init_auth(struct smtp_state *st, const config_setting_t *s, char *err,
    size_t errlen)
{
	const char *user, *pw, *pwfile;

	if (smtp_cfg_string(s, "user", "", &user, err, errlen) ||
	    smtp_cfg_string(s, "password", "", &pw, err, errlen) ||
	    smtp_cfg_string(s, "password_file", "", &pwfile, err, errlen))
		return -1;
	if (user[0] == '\0') {
		if (pw[0] != '\0' || pwfile[0] != '\0') {
			snprintf(err, errlen, "a password without a user");
			return -1;
		}
		return 0;
	}
	if ((pw[0] != '\0') == (pwfile[0] != '\0')) {
		snprintf(err, errlen, "user '%s' needs exactly one of password "
		    "and password_file", user);
		return -1;
	}
	/* PLAIN/LOGIN put the password on the wire as base64. */
	if (st->tls != SMTP_TLS_REQUIRED) {
		snprintf(err, errlen, "AUTH credentials need starttls = "
		    "\"required\": refusing to send a password in clear text");
		return -1;
	}
	st->user = strdup(user);
	if (pwfile[0] != '\0')
		return smtp_read_password_file(pwfile, &st->password, err,
		    errlen);
	st->password = strdup(pw);
	return 0;
}

/* Remember why the chain failed; the handshake error alone says nothing. */
static int
smtp_verify_cb(int ok, X509_STORE_CTX *x)
{
	if (!ok && smtp_verify_error[0] == '\0')
		snprintf(smtp_verify_error, sizeof(smtp_verify_error),
		    "TLS certificate verify failed: %s (depth %d)",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)),
		    X509_STORE_CTX_get_error_depth(x));
	return ok;
}

/* Our own trust store and name check, so libESMTP never builds one from
 * the user's home directory. */
static int
smtp_init_tls(struct smtp_state *st, const config_setting_t *s, char *err,
    size_t errlen)
{
	const char *cafile, *cadir;
	X509_VERIFY_PARAM *param;
	unsigned char addr[16];
	int r;

	if (smtp_cfg_string(s, "ca_file", "", &cafile, err, errlen) ||
	    smtp_cfg_string(s, "ca_dir", "", &cadir, err, errlen))
		return -1;
	/* TLS 1.2 at most: with 1.3 the relay's post-handshake tickets make
	 * libESMTP 1.1 drop the session after the second EHLO now and then
	 * (seen against aiosmtpd, about one session in thirty). */
	if ((st->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    !SSL_CTX_set_min_proto_version(st->ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(st->ctx, TLS1_2_VERSION)) {
		snprintf(err, errlen, "cannot create a TLS context");
		return -1;
	}
	if (cafile[0] != '\0' || cadir[0] != '\0')
		r = SSL_CTX_load_verify_locations(st->ctx,
		    cafile[0] ? cafile : NULL, cadir[0] ? cadir : NULL);
	else
		r = SSL_CTX_set_default_verify_paths(st->ctx);
	if (r != 1) {
		snprintf(err, errlen, "cannot load CA certificates from "
		    "'%s' / '%s'", cafile, cadir);
		return -1;
	}
	if (!st->verify) {
		SSL_CTX_set_verify(st->ctx, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	param = SSL_CTX_get0_param(st->ctx);
	if (inet_pton(AF_INET, st->host, addr) == 1)
		r = X509_VERIFY_PARAM_set1_ip_asc(param, st->host);
	else
		r = X509_VERIFY_PARAM_set1_host(param, st->host, 0);
	if (r != 1) {
		snprintf(err, errlen, "cannot set TLS name check for %s",
		    st->host);
		return -1;
	}
	SSL_CTX_set_verify(st->ctx, SSL_VERIFY_PEER, smtp_verify_cb);
	return 0;
}

static int
smtp_init(const config_setting_t *settings, void **state_r, char *err,
    size_t errlen)
{
	struct smtp_state *st = calloc(1, sizeof(*st));

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (smtp_cfg_check_keys(settings, err, errlen) ||
	    smtp_init_relay(st, settings, err, errlen) ||
	    smtp_init_auth(st, settings, err, errlen) ||
	    smtp_init_tls(st, settings, err, errlen)) {
		smtp_state_free(st);
		return -1;
	}
	auth_client_init();
	*state_r = st;
	return 0;
}

/* ---- message checks ---------------------------------------------------- */

/*
 * libESMTP rewrites headers it knows: it adds Date/From/Message-Id when
 * missing, strips Return-Path/Original-Recipient, and drops a second copy
 * of the single-valued ones.  Header options cannot stop it (Date and From
 * are REQUIRE, and prohibiting Message-Id strips ours), so we refuse any
 * message it would touch: the relay must get our bytes exactly.
 */
static const struct {
	const char *name;
	int min, max;
} smtp_hdr_rules[] = {
	{ "Date", 1, 1 }, { "From", 1, 1 }, { "Message-Id", 1, 1 },
	{ "Return-Path", 0, 0 }, { "Original-Recipient", 0, 0 },
	{ "Sender", 0, 1 }, { "To", 0, 1 }, { "Cc", 0, 1 }, { "Bcc", 0, 1 },
	{ "Reply-To", 0, 1 }, { "Disposition-Notification-To", 0, 1 },
};
#define SMTP_NRULES (sizeof(smtp_hdr_rules) / sizeof(smtp_hdr_rules[0]))

struct smtp_scan {
	int prev_cr;
	int in_header;
	int bol;		/* at the start of a line */
	int blank_seen;		/* header/body separator found */
	char name[40];
	size_t namelen;
	int name_done;
	int counts[SMTP_NRULES];
	uint64_t total;
	const char *bad;
};

static void
smtp_scan_header_name(struct smtp_scan *sc)
{
	size_t k;

	for (k = 0; k < SMTP_NRULES; k++)
		if (strlen(smtp_hdr_rules[k].name) == sc->namelen &&
		    strncasecmp(sc->name, smtp_hdr_rules[k].name,
		    sc->namelen) == 0)
			sc->counts[k]++;
}

/* Header bytes: collect each field name up to its colon. */
static void
smtp_scan_header_byte(struct smtp_scan *sc, unsigned char c)
{
	if (sc->bol) {
		sc->bol = 0;
		sc->namelen = 0;
		sc->name_done = (c == ' ' || c == '\t');  /* continuation */
		if (c == '\r') {	/* the empty line ends the header */
			sc->in_header = 0;
			sc->blank_seen = 1;
			return;
		}
	}
	if (sc->name_done || c == '\r' || c == '\n') {
		if (c == '\r' && !sc->name_done)
			sc->bad = "a header line without a colon";
		return;
	}
	if (c == ':') {
		sc->name_done = 1;
		smtp_scan_header_name(sc);
	} else if (sc->namelen < sizeof(sc->name))
		sc->name[sc->namelen++] = (char)c;
}

static void
smtp_scan_bytes(struct smtp_scan *sc, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && sc->bad == NULL; i++) {
		if (sc->prev_cr != (p[i] == '\n')) {
			sc->bad = "refusing to send non-canonical message "
			    "(bare CR or LF)";
			return;
		}
		sc->prev_cr = (p[i] == '\r');
		if (sc->in_header)
			smtp_scan_header_byte(sc, p[i]);
		if (p[i] == '\n')
			sc->bol = 1;
	}
	sc->total += n;
}

static const char *
smtp_scan_verdict(struct smtp_scan *sc, char *buf, size_t len)
{
	size_t k;

	if (sc->bad != NULL)
		return sc->bad;
	if (sc->prev_cr || !sc->bol || sc->total == 0)
		return "refusing to send non-canonical message (does not end "
		    "with CRLF)";
	if (!sc->blank_seen)
		return "message has no empty line after its header";
	for (k = 0; k < SMTP_NRULES; k++)
		if (sc->counts[k] < smtp_hdr_rules[k].min ||
		    sc->counts[k] > smtp_hdr_rules[k].max) {
			snprintf(buf, len, "message has %d %s: field(s); "
			    "libESMTP would rewrite it, refusing to alter the "
			    "message", sc->counts[k], smtp_hdr_rules[k].name);
			return buf;
		}
	return NULL;
}

/*
 * Read the whole file once before the session: a message we would refuse
 * never enters it, so nothing of it reaches the wire.  The fd stays open
 * and is what we send, so a rename under us changes nothing.
 */
static int
smtp_msg_open(const char *path, int *fd_r, char *why, size_t whylen)
{
	struct smtp_scan sc;
	unsigned char buf[SMTP_CHUNK];
	const char *bad;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(why, whylen, "cannot open message: %s",
		    strerror(errno));
		return -1;
	}
	memset(&sc, 0, sizeof(sc));
	sc.in_header = sc.bol = 1;
	while ((n = read(fd, buf, sizeof(buf))) > 0 && sc.bad == NULL)
		smtp_scan_bytes(&sc, buf, (size_t)n);
	if (n < 0)
		sc.bad = "cannot read message";
	if ((bad = smtp_scan_verdict(&sc, why, whylen)) != NULL) {
		if (bad != why)
			snprintf(why, whylen, "%s", bad);
		close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

/* An envelope address goes into "MAIL FROM:<%s>" verbatim. */
static int
smtp_addr_ok(const char *a, int empty_ok)
{
	if (a == NULL || (a[0] == '\0' && !empty_ok))
		return 0;
	return smtp_token_ok(a, SMTP_ADDR_MAX) && strpbrk(a, "<>") == NULL;
}

/* ---- libESMTP callbacks ------------------------------------------------ */

/* Content may flow only once the relay is what the settings demand. */
static int
smtp_run_may_send(const struct smtp_run *run)
{
	if (run->st->tls == SMTP_TLS_REQUIRED && !run->tls_ok)
		return 0;
	if (run->st->user != NULL && run->auth != SMTP_AUTH_OK)
		return 0;
	return 1;
}

/* Validate a chunk before libESMTP sees it; a trailing CR is held back
 * so a bare CR split across reads is still caught before it is sent. */
static int
smtp_msg_chunk_ok(struct smtp_msg *m, size_t *have)
{
	const unsigned char *b = m->run->buf;
	size_t i;

	for (i = 0; i < *have; i++) {
		if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
			return 0;
		if (b[i] == '\r' && i + 1 < *have && b[i + 1] != '\n')
			return 0;
	}
	if (*have > 0 && b[*have - 1] == '\r') {
		m->carry_cr = 1;
		(*have)--;
	}
	if (*have > 0)
		m->last_lf = (b[*have - 1] == '\n');
	return 1;
}

static const char *
smtp_msg_read(struct smtp_msg *m, int *len)
{
	size_t have;
	ssize_t n;

	do {
		have = 0;
		if (m->carry_cr) {
			m->run->buf[have++] = '\r';
			m->carry_cr = 0;
		}
		while ((n = read(m->fd, m->run->buf + have,
		    SMTP_CHUNK - have)) < 0 && errno == EINTR)
			;
		if (n < 0 || (n == 0 && (have > 0 || !m->last_lf)))
			return NULL;	/* read error, or ends without CRLF */
		if (n == 0) {
			*len = 0;
			return (const char *)m->run->buf;
		}
		have += (size_t)n;
		if (!smtp_msg_chunk_ok(m, &have))
			return NULL;
	} while (have == 0);
	*len = (int)have;
	return (const char *)m->run->buf;
}

/*
 * libESMTP's message source.  Failing must not look like end of file (it
 * would send "." and the relay would accept a truncated message): we set
 * errno and keep failing, and libESMTP then drops the connection without
 * the final dot, so the relay discards the transaction.
 */
static const char *
smtp_msg_cb(void **ctx, int *len, void *arg)
{
	struct smtp_msg *m = arg;
	const char *p;

	if (len == NULL) {
		m->carry_cr = 0;
		m->last_lf = 0;
		lseek(m->fd, 0, SEEK_SET);
		return NULL;
	}
	if (m->failed || !smtp_run_may_send(m->run) ||
	    (p = smtp_msg_read(m, len)) == NULL) {
		m->failed = m->failed || smtp_run_may_send(m->run);
		*len = 0;
		errno = EPROTO;
		return NULL;
	}
	return p;
}

static void
smtp_copy_clean(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; len > 0 && i < len - 1 && src[i] != '\0'; i++)
		dst[i] = (src[i] >= ' ' && src[i] <= '~') ? src[i] : ' ';
	if (len > 0)
		dst[i] = '\0';
	while (i > 0 && dst[i - 1] == ' ')
		dst[--i] = '\0';
}

/* One complete reply line from the relay (CRLF stripped). */
static void
smtp_monitor_line(struct smtp_run *run, const char *l)
{
	int code;

	if (strlen(l) < 3 || l[0] < '1' || l[0] > '5')
		return;
	if ((l[3] == ' ' || l[3] == '-') && strncasecmp(l + 4, "AUTH", 4) == 0
	    && (l[8] == ' ' || l[8] == '=' || l[8] == '\0'))
		run->auth_offered = 1;
	if (l[3] == '-')
		return;		/* not the last line of a reply */
	run->greeted = 1;
	smtp_copy_clean(run->last_reply, sizeof(run->last_reply), l);
	if (run->auth != SMTP_AUTH_PENDING)
		return;
	code = atoi(l);
	if (code == 334)
		return;		/* challenge: the exchange goes on */
	run->auth = (code / 100 == 2) ? SMTP_AUTH_OK : SMTP_AUTH_FAILED;
	smtp_copy_clean(run->auth_text, sizeof(run->auth_text), l);
}

/*
 * libESMTP 1.1 has no AUTH result event and carries on to MAIL after a
 * failed AUTH, so we watch the dialogue (cleartext, after TLS) to learn
 * whether AUTH succeeded and to keep the relay's last words for errors.
 */
static void
smtp_monitor_cb(const char *buf, int len, int writing, void *arg)
{
	struct smtp_run *run = arg;
	int i;

	if (writing) {
		if (len >= 5 && strncasecmp(buf, "AUTH ", 5) == 0)
			run->auth = SMTP_AUTH_PENDING;
		else if (len >= 5 && strncasecmp(buf, "EHLO ", 5) == 0)
			run->auth_offered = 0;
		return;
	}
	for (i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			run->line[run->linelen] = '\0';
			if (run->linelen > 0 &&
			    run->line[run->linelen - 1] == '\r')
				run->line[run->linelen - 1] = '\0';
			smtp_monitor_line(run, run->line);
			run->linelen = 0;
		} else if (run->linelen < sizeof(run->line) - 1)
			run->line[run->linelen++] = buf[i];
	}
}

/* Certificate events: with verify on, OpenSSL has already checked chain
 * and name (set on the context); libESMTP's own matcher cannot handle IP
 * addresses, so its name complaint is overridden only after OpenSSL's. */
static void
smtp_event_cert(struct smtp_run *run, int ev, va_list ap)
{
	long vr;
	int *ok;
	SSL *ssl;

	if (ev == SMTP_EV_INVALID_PEER_CERTIFICATE) {
		vr = va_arg(ap, long);
		ok = va_arg(ap, int *);
		if (run->st->verify)
			snprintf(run->tls_error, sizeof(run->tls_error),
			    "TLS certificate verify failed: %s",
			    X509_verify_cert_error_string(vr));
	} else if (ev == SMTP_EV_WRONG_PEER_CERTIFICATE) {
		ok = va_arg(ap, int *);
		(void)va_arg(ap, char *);
		ssl = va_arg(ap, SSL *);
		if (run->st->verify && SSL_get_verify_result(ssl) != X509_V_OK)
			snprintf(run->tls_error, sizeof(run->tls_error),
			    "TLS certificate does not name %s", run->st->host);
		else if (run->st->verify)
			*ok = 1;
	} else {
		ok = va_arg(ap, int *);
		if (run->st->verify)
			snprintf(run->tls_error, sizeof(run->tls_error),
			    "relay %s presented no TLS certificate",
			    run->st->hostport);
	}
	if (!run->st->verify)
		*ok = 1;
}

/*
 * TCP_NODELAY on the relay connection.  libESMTP writes a message in
 * 2048-octet chunks and the last, short one is then held by Nagle's
 * algorithm until the relay ACKs the previous chunk, which a relay that
 * answers only at the end of data delays (delayed ACK): ~40 ms lost per
 * message, measured as a 21 msg/s ceiling per session.  libESMTP does
 * not expose its socket, so on SMTP_EV_CONNECT (fired on this thread
 * right after connect) every TCP socket of the process whose peer is
 * the relay's port gets the option; on any other TCP socket it is
 * harmless.
 */
static void
smtp_nodelay_relay(const struct smtp_state *st)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct dirent *de;
	DIR *d;
	int fd, one = 1, type;
	socklen_t tl;
	uint16_t port;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		fd = atoi(de->d_name);
		tl = sizeof(type);
		sl = sizeof(ss);
		if (fd == dirfd(d) || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type,
		    &tl) != 0 || type != SOCK_STREAM ||
		    getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
			continue;
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		else
			continue;
		if (port == st->port)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
	}
	closedir(d);
}

static void
smtp_event_cb(smtp_session_t session, int ev, void *arg, ...)
{
	struct smtp_run *run = arg;
	va_list ap;
	int bits;

	va_start(ap, arg);
	switch (ev) {
	case SMTP_EV_CONNECT:
		smtp_nodelay_relay(run->st);
		break;
	case SMTP_EV_STARTTLS_OK:
		run->tls_ok = 1;
		break;
	case SMTP_EV_EXTNA_STARTTLS:
		run->tls_missing = 1;
		break;
	case SMTP_EV_INVALID_PEER_CERTIFICATE:
	case SMTP_EV_WRONG_PEER_CERTIFICATE:
	case SMTP_EV_NO_PEER_CERTIFICATE:
		smtp_event_cert(run, ev, ap);
		break;
	case SMTP_EV_WEAK_CIPHER:
		bits = va_arg(ap, int);
		snprintf(run->tls_error, sizeof(run->tls_error),
		    "TLS cipher too weak (%d bits)", bits);
		break;
	case SMTP_EV_UNUSABLE_CLIENT_CERTIFICATE:
	case SMTP_EV_NO_CLIENT_CERTIFICATE:
	case SMTP_EV_UNUSABLE_CA_LIST:
		snprintf(run->tls_error, sizeof(run->tls_error),
		    "libESMTP found an unusable certificate file (event %d)",
		    ev);
		break;
	default:
		break;
	}
	va_end(ap);
}

/* Credentials only over TLS, whatever libESMTP decided to try. */
static int
smtp_auth_interact_cb(auth_client_request_t req, char **result, int fields,
    void *arg)
{
	struct smtp_run *run = arg;
	int i;

	if (!run->tls_ok)
		return 0;
	for (i = 0; i < fields; i++) {
		if (req[i].flags & AUTH_USER)
			result[i] = run->st->user;
		else if (req[i].flags & AUTH_PASS)
			result[i] = run->st->password;
		else
			return 0;	/* realm etc.: not configured */
	}
	return 1;
}

/* ---- the session -------------------------------------------------------- */

static void
smtp_fail(struct postdoc_delivery *res, const char *text)
{
	res->code = 0;
	res->enhanced[0] = '\0';
	smtp_copy_clean(res->text, sizeof(res->text), text);
}

static void
smtp_fail_all(struct postdoc_delivery *results, size_t n, const char *text)
{
	size_t i;

	for (i = 0; i < n; i++)
		smtp_fail(&results[i], text);
}

static smtp_session_t
smtp_session_new(struct smtp_run *run, auth_context_t *auth_r)
{
	const struct smtp_state *st = run->st;
	static const int kinds[] = { Timeout_GREETING, Timeout_ENVELOPE,
	    Timeout_DATA, Timeout_TRANSFER, Timeout_DATA2 };
	smtp_session_t s = smtp_create_session();
	size_t k;

	*auth_r = NULL;
	if (s == NULL)
		return NULL;
	smtp_set_server(s, st->hostport);
	smtp_set_hostname(s, st->helo);
	smtp_starttls_enable(s, st->tls == SMTP_TLS_REQUIRED ?
	    Starttls_REQUIRED : st->tls == SMTP_TLS_OPPORTUNISTIC ?
	    Starttls_ENABLED : Starttls_DISABLED);
	smtp_starttls_set_ctx(s, st->ctx);
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		smtp_set_timeout(s, kinds[k] | Timeout_OVERRIDE_RFC2822_MINIMUM,
		    st->timeout_ms);
	smtp_set_eventcb(s, smtp_event_cb, run);
	smtp_set_monitorcb(s, smtp_monitor_cb, run, 0);
	if (st->user != NULL && (*auth_r = auth_create_context()) != NULL) {
		auth_set_mechanism_flags(*auth_r, AUTH_PLUGIN_PLAIN, 0);
		auth_set_interact_cb(*auth_r, smtp_auth_interact_cb, run);
		smtp_auth_set_context(s, *auth_r);
	}
	return s;
}

/* Returns 1 if the message entered the session. */
static int
smtp_add(smtp_session_t s, struct smtp_msg *m,
    const struct postdoc_outbound_info *info, struct postdoc_delivery *res)
{
	char why[POSTDOC_PLUGIN_TEXT_MAX];

	if (!smtp_addr_ok(info->mail_from, 1) || !smtp_addr_ok(info->rcpt, 0)) {
		smtp_fail(res, "envelope address unfit for an SMTP command");
		return 0;
	}
	if (smtp_msg_open(info->path, &m->fd, why, sizeof(why)) != 0) {
		smtp_fail(res, why);
		return 0;
	}
	if ((m->m = smtp_add_message(s)) == NULL ||
	    !smtp_set_reverse_path(m->m, info->mail_from) ||
	    (m->r = smtp_add_recipient(m->m, info->rcpt)) == NULL ||
	    !smtp_set_messagecb(m->m, smtp_msg_cb, m)) {
		smtp_fail(res, "libESMTP refused the message (out of memory?)");
		m->m = NULL;
		return 0;
	}
	smtp_size_set_estimate(m->m, (unsigned long)info->size);
	return 1;
}

/* Why the session as a whole must not count: TLS or AUTH not as asked. */
static int
smtp_session_failure(const struct smtp_run *run, char *buf, size_t len)
{
	const struct smtp_state *st = run->st;

	if (run->tls_error[0] != '\0')
		snprintf(buf, len, "%s", run->tls_error);
	else if (smtp_verify_error[0] != '\0')
		snprintf(buf, len, "%s", smtp_verify_error);
	else if (!run->greeted)
		return 0;	/* never reached it: the connection error says */
	else if (run->tls_missing)
		snprintf(buf, len, "STARTTLS required but not offered by %s",
		    st->hostport);
	else if (st->tls == SMTP_TLS_REQUIRED && !run->tls_ok)
		snprintf(buf, len, "STARTTLS required but TLS was not "
		    "established with %s", st->hostport);
	else if (st->user != NULL && run->auth == SMTP_AUTH_FAILED)
		snprintf(buf, len, "AUTH failed: %s", run->auth_text);
	else if (st->user != NULL && run->auth != SMTP_AUTH_OK &&
	    !run->auth_offered)
		snprintf(buf, len, "relay %s offers no AUTH", st->hostport);
	else if (st->user != NULL && run->auth != SMTP_AUTH_OK)
		snprintf(buf, len, "AUTH not done: relay %s offers no usable "
		    "mechanism (PLAIN/LOGIN)", st->hostport);
	else
		return 0;
	return 1;
}

/* Relays often lead their text with an enhanced code without announcing
 * ENHANCEDSTATUSCODES, and libESMTP then leaves it there: lift it out. */
static void
smtp_enhanced_from_text(struct postdoc_delivery *res)
{
	int c, sub, det, used = 0;
	char *t = res->text;

	if (res->enhanced[0] != '\0' || t[0] < '2' || t[0] > '5')
		return;
	if (sscanf(t, "%1d.%3d.%3d%n", &c, &sub, &det, &used) != 3 ||
	    used == 0 || (t[used] != ' ' && t[used] != '\0') ||
	    c != res->code / 100 || sub < 0 || det < 0 || sub > 999 ||
	    det > 999 || c < 2 || c > 5)
		return;
	snprintf(res->enhanced, sizeof(res->enhanced), "%d.%d.%d", c, sub,
	    det);
	used += (t[used] == ' ');
	memmove(t, t + used, strlen(t + used) + 1);
}

static int
smtp_status_fill(struct postdoc_delivery *res, const smtp_status_t *s)
{
	if (s == NULL || s->code == 0)
		return 0;
	res->code = s->code;
	res->enhanced[0] = '\0';
	if ((s->enh_class == 2 || s->enh_class == 4 || s->enh_class == 5) &&
	    s->enh_subject >= 0 && s->enh_subject < 1000 &&
	    s->enh_detail >= 0 && s->enh_detail < 1000)
		snprintf(res->enhanced, sizeof(res->enhanced), "%d.%d.%d",
		    s->enh_class, s->enh_subject, s->enh_detail);
	smtp_copy_clean(res->text, sizeof(res->text),
	    s->text != NULL ? s->text : "");
	smtp_enhanced_from_text(res);
	return 1;
}

static int
smtp_is_2xx(const smtp_status_t *s)
{
	return s != NULL && s->code >= 200 && s->code <= 299;
}

static void
smtp_result_one(const struct smtp_msg *m, const char *session_err,
    const char *lost, struct postdoc_delivery *res)
{
	const smtp_status_t *mail = smtp_reverse_path_status(m->m);
	const smtp_status_t *rcpt = smtp_recipient_status(m->r);
	const smtp_status_t *data = smtp_message_transfer_status(m->m);

	if (smtp_is_2xx(data) && smtp_is_2xx(rcpt))
		smtp_status_fill(res, data);	/* the relay has it */
	else if (session_err != NULL)
		smtp_fail(res, session_err);
	else if (m->failed)
		smtp_fail(res, "refusing to send non-canonical message "
		    "(file changed while sending)");
	else if (!smtp_is_2xx(mail) && smtp_status_fill(res, mail))
		;
	else if (!smtp_is_2xx(rcpt) && smtp_status_fill(res, rcpt))
		;
	else if (!smtp_is_2xx(data) && smtp_status_fill(res, data))
		;
	else
		smtp_fail(res, lost);
}

static void
smtp_results(const struct smtp_run *run, struct smtp_msg *ms, size_t n,
    int started, struct postdoc_delivery *results)
{
	char serr[SMTP_ERR_LEN], lost[1024], e[100];
	int have_serr = smtp_session_failure(run, serr, sizeof(serr));
	int err = smtp_errno();
	size_t i;

	snprintf(lost, sizeof(lost), "no reply for this message from %s: %s%s%s",
	    run->st->hostport,
	    err != 0 ? smtp_strerror(err, e, sizeof(e)) :
	    started ? "session ended early" : "session did not start",
	    run->last_reply[0] ? "; last reply: " : "", run->last_reply);
	for (i = 0; i < n; i++)
		if (ms[i].m != NULL)
			smtp_result_one(&ms[i], have_serr ? serr : NULL, lost,
			    &results[i]);
}

/*
 * libESMTP writes with write(2): a relay that hangs up would raise SIGPIPE.
 * Block it on this thread only and swallow any that arrived, so a plugin
 * never changes the process's signal dispositions.
 */
static void
smtp_sigpipe_block(sigset_t *old)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &s, old);
}

static void
smtp_sigpipe_restore(const sigset_t *old)
{
	sigset_t s, pend;
	struct timespec zero = { 0, 0 };

	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	if (sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) &&
	    !sigismember(old, SIGPIPE))
		(void)sigtimedwait(&s, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static void
smtp_run_session(struct smtp_run *run, const struct postdoc_outbound_info *msgs,
    struct smtp_msg *ms, size_t n, struct postdoc_delivery *results)
{
	auth_context_t auth;
	smtp_session_t s = smtp_session_new(run, &auth);
	size_t i, added = 0;
	sigset_t old;
	int started = 0;

	if (s == NULL) {
		smtp_fail_all(results, n, "libESMTP cannot create a session");
		return;
	}
	for (i = 0; i < n; i++) {
		ms[i].run = run;
		ms[i].fd = -1;
		added += (size_t)smtp_add(s, &ms[i], &msgs[i], &results[i]);
	}
	if (added > 0) {
		smtp_verify_error[0] = '\0';
		ERR_clear_error();
		smtp_sigpipe_block(&old);
		started = smtp_start_session(s);
		smtp_sigpipe_restore(&old);
		smtp_results(run, ms, n, started, results);
	}
	smtp_destroy_session(s);
	if (auth != NULL)
		auth_destroy_context(auth);
	for (i = 0; i < n; i++)
		if (ms[i].fd >= 0)
			close(ms[i].fd);
}

/* One session for the whole batch: the relay sees one connection,
 * pipelined, and each message gets its own status. */
static void
smtp_deliver(void *state, const struct postdoc_outbound_info *msgs,
    size_t n, struct postdoc_delivery *results)
{
	struct smtp_run *run;
	struct smtp_msg *ms;

	if (n == 0)
		return;
	run = calloc(1, sizeof(*run));
	ms = calloc(n, sizeof(*ms));
	if (run == NULL || ms == NULL) {
		smtp_fail_all(results, n, "out of memory");
		free(run);
		free(ms);
		return;
	}
	run->st = state;
	smtp_run_session(run, msgs, ms, n, results);
	free(ms);
	free(run);
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "smtp",
	.version = "1.0",
	.init = smtp_init,
	.deinit = smtp_deinit,
	.hooks = {
		.deliver = smtp_deliver,
	},
};

/*
 * mailbox.c - the `mailbox` poller: fetches mail from IMAP and POP3
 * mailboxes (libetpan) and files it through the core's intake pipeline
 * (host->submit), exactly as if it had arrived over SMTP.  One thread and
 * one libetpan session per mailbox; a failing mailbox backs off (1 s .. 5
 * min) and never touches the others.  A message is moved or deleted on
 * the server only after the core answered 250 (durably filed or a
 * duplicate), so a crash in between means a refetch that deduplication
 * absorbs.  It never trusts libetpan's TLS: the peer certificate is
 * verified here (OpenSSL, against ca_file and the host name) before login.
 *
 * settings = {
 *   state_dir = "var/mailbox";
 *   mailboxes = ( { name = "docs"; protocol = "imap"; host = "mail.example";
 *     port = 993; tls = "implicit"; ca_file = ""; verify = true;
 *     user = "documents"; password_file = "/etc/postdoc/docs.pw";
 *     folder = "INBOX"; after = "move"; move_to = "Filed";
 *     unmatched_folder = "Unmatched"; default_dossier = "";
 *     poll_interval = 60; idle = true; } );
 * };
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libetpan/libetpan.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "postdoc/plugin.h"

#define MB_MAX 32			/* mailboxes */
#define MB_STR 256
#define MB_PATH 4096
#define MB_NET_TIMEOUT 30		/* seconds, every libetpan wait */
#define MB_IDLE_MAX 300			/* longest IDLE (RFC 2177: < 29 min) */
#define MB_BACKOFF_MAX 300
#define MB_UIDL_MAX 70			/* RFC 1939 section 7 */

enum mb_tls { MB_TLS_IMPLICIT, MB_TLS_STARTTLS, MB_TLS_NONE };

struct mb_plugin;

struct mailbox {
	struct mb_plugin *pl;
	char name[64];
	int pop3;
	char host[MB_STR];
	uint16_t port;
	enum mb_tls tls;
	char ca_file[MB_PATH];
	int verify;
	char user[MB_STR];
	char password[MB_STR];
	char folder[MB_STR];
	int after_delete;
	char move_to[MB_STR];
	char unmatched[MB_STR];
	char default_dossier[MB_STR];
	int poll_interval;
	int idle;
	char source[80];		/* "imap:docs" */
	char state_path[MB_PATH];
	char tmp_path[MB_PATH];
	/* IMAP state */
	uint32_t uidvalidity, last_uid;
	/* POP3 state: UIDLs filed (and maybe not yet deleted) or skipped */
	char (*uidl)[MB_UIDL_MAX + 2];	/* first char: 'f' filed, 's' skip */
	size_t nuidl;
	int defer;			/* a 4xx: poll, do not IDLE */
	pthread_t th;
	int started;
	int fd;				/* the live session's socket, or -1 */
};

struct mb_plugin {
	const struct postdoc_host *host;
	char state_dir[MB_PATH - 128];	/* room for "/<name>.state.tmp" */
	struct mailbox mb[MB_MAX];
	int n;
	atomic_int stopping;
	pthread_mutex_t lock;		/* fd fields; the sleep condition */
	pthread_cond_t wake;
};

/* ---- logging ---- */

static void mb_log(struct mailbox *m, enum postdoc_log_level lvl,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
mb_log(struct mailbox *m, enum postdoc_log_level lvl, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (m->pl->host != NULL)
		m->pl->host->log(m->pl->host->ctx, lvl, "mailbox %s: %s",
		    m->name, line);
	else if (lvl <= POSTDOC_LOG_WARN)
		fprintf(stderr, "mailbox %s: %s\n", m->name, line);
}

/* libetpan's last server text, for a log line. */
static const char *
mb_imap_text(mailimap *imap)
{
	return imap != NULL && imap->imap_response != NULL ?
	    imap->imap_response : "";
}

/* ---- settings ---- */

static int
mb_str(const config_setting_t *g, const char *key, char *dst, size_t len,
    const char *def, char *err, size_t errlen)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	const char *v = def;

	if (s != NULL) {
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			snprintf(err, errlen, "%s:%d: %s: expected a string",
			    config_setting_source_file(s) ?
			    config_setting_source_file(s) : "config",
			    config_setting_source_line(s), key);
			return -1;
		}
		v = config_setting_get_string(s);
	}
	if (strlen(v) >= len) {
		snprintf(err, errlen, "%s: too long", key);
		return -1;
	}
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int
mb_int(const config_setting_t *g, const char *key, int *dst, int def,
    int min, int max, char *err, size_t errlen)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	long long v = def;

	if (s != NULL) {
		if (config_setting_type(s) == CONFIG_TYPE_BOOL)
			v = config_setting_get_bool(s);
		else if (config_setting_type(s) == CONFIG_TYPE_INT ||
		    config_setting_type(s) == CONFIG_TYPE_INT64)
			v = config_setting_get_int64(s);
		else {
			snprintf(err, errlen, "line %d: %s: expected a number",
			    config_setting_source_line(s), key);
			return -1;
		}
	}
	if (v < min || v > max) {
		snprintf(err, errlen, "%s = %lld: must be %d..%d", key, v, min,
		    max);
		return -1;
	}
	*dst = (int)v;
	return 0;
}

/* A password file must be readable by Postdoc only (0600 or 0400). */
static int
mb_password_file(struct mailbox *m, const char *path, char *err,
    size_t errlen)
{
	struct stat sb;
	FILE *f;
	size_t n;

	if ((f = fopen(path, "r")) == NULL || fstat(fileno(f), &sb) != 0) {
		snprintf(err, errlen, "%s: password_file %s: %s", m->name, path,
		    strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	if (!S_ISREG(sb.st_mode) || (sb.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: password_file %s has mode %03o: "
		    "refused (make it 0600, readable by postdoc only)",
		    m->name, path, (unsigned)(sb.st_mode & 0777));
		fclose(f);
		return -1;
	}
	if (fgets(m->password, sizeof(m->password), f) == NULL)
		m->password[0] = '\0';
	fclose(f);
	n = strcspn(m->password, "\r\n");
	m->password[n] = '\0';
	return 0;
}

static const char *const mb_keys[] = {
	"name", "protocol", "host", "port", "tls", "ca_file", "verify", "user",
	"password", "password_file", "folder", "after", "move_to",
	"unmatched_folder", "default_dossier", "poll_interval", "idle", NULL
};

static int
mb_known_keys(const config_setting_t *g, char *err, size_t errlen)
{
	int i, k;

	for (i = 0; i < config_setting_length(g); i++) {
		const char *key = config_setting_name(
		    config_setting_get_elem(g, (unsigned)i));

		for (k = 0; mb_keys[k] != NULL; k++)
			if (strcmp(mb_keys[k], key) == 0)
				break;
		if (mb_keys[k] == NULL) {
			snprintf(err, errlen, "mailboxes: unknown key '%s'",
			    key);
			return -1;
		}
	}
	return 0;
}

static int
mb_parse_modes(struct mailbox *m, const config_setting_t *g, char *err,
    size_t errlen)
{
	char proto[16], tls[16], after[16], pwfile[MB_PATH];
	int port;

	if (mb_str(g, "protocol", proto, sizeof(proto), "imap", err, errlen) ||
	    mb_str(g, "tls", tls, sizeof(tls), "implicit", err, errlen) ||
	    mb_str(g, "after", after, sizeof(after), "move", err, errlen) ||
	    mb_str(g, "password_file", pwfile, sizeof(pwfile), "", err,
	    errlen))
		return -1;
	if (strcmp(proto, "imap") != 0 && strcmp(proto, "pop3") != 0) {
		snprintf(err, errlen, "%s: protocol must be imap or pop3",
		    m->name);
		return -1;
	}
	m->pop3 = proto[0] == 'p';
	if (strcmp(tls, "implicit") == 0)
		m->tls = MB_TLS_IMPLICIT;
	else if (strcmp(tls, "starttls") == 0)
		m->tls = MB_TLS_STARTTLS;
	else if (strcmp(tls, "none") == 0)
		m->tls = MB_TLS_NONE;
	else {
		snprintf(err, errlen, "%s: tls must be implicit, starttls or "
		    "none", m->name);
		return -1;
	}
	if (strcmp(after, "move") != 0 && strcmp(after, "delete") != 0) {
		snprintf(err, errlen, "%s: after must be move or delete",
		    m->name);
		return -1;
	}
	m->after_delete = after[0] == 'd' || m->pop3;
	if (mb_int(g, "port", &port, m->tls == MB_TLS_IMPLICIT ?
	    (m->pop3 ? 995 : 993) : (m->pop3 ? 110 : 143), 1, 65535, err,
	    errlen) != 0)
		return -1;
	m->port = (uint16_t)port;
	if (pwfile[0] != '\0')
		return mb_password_file(m, pwfile, err, errlen);
	return 0;
}

static int
mb_parse_one(struct mb_plugin *pl, struct mailbox *m,
    const config_setting_t *g, char *err, size_t errlen)
{
	size_t i;

	m->pl = pl;
	m->fd = -1;
	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		snprintf(err, errlen, "mailboxes: expected groups { ... }");
		return -1;
	}
	if (mb_known_keys(g, err, errlen) ||
	    mb_str(g, "name", m->name, sizeof(m->name), "", err, errlen))
		return -1;
	for (i = 0; m->name[i] != '\0'; i++)
		if (!((m->name[i] >= 'a' && m->name[i] <= 'z') ||
		    (m->name[i] >= '0' && m->name[i] <= '9') ||
		    m->name[i] == '_' || m->name[i] == '-'))
			break;
	if (i == 0 || m->name[i] != '\0') {
		snprintf(err, errlen, "mailboxes: name \"%s\" must be "
		    "[a-z0-9_-]+ (it names the state file)", m->name);
		return -1;
	}
	if (mb_str(g, "host", m->host, sizeof(m->host), "", err, errlen) ||
	    mb_str(g, "ca_file", m->ca_file, sizeof(m->ca_file), "", err,
	    errlen) ||
	    mb_str(g, "user", m->user, sizeof(m->user), "", err, errlen) ||
	    mb_str(g, "password", m->password, sizeof(m->password), "", err,
	    errlen) ||
	    mb_str(g, "folder", m->folder, sizeof(m->folder), "INBOX", err,
	    errlen) ||
	    mb_str(g, "move_to", m->move_to, sizeof(m->move_to), "Filed", err,
	    errlen) ||
	    mb_str(g, "unmatched_folder", m->unmatched, sizeof(m->unmatched),
	    "Unmatched", err, errlen) ||
	    mb_str(g, "default_dossier", m->default_dossier,
	    sizeof(m->default_dossier), "", err, errlen) ||
	    mb_int(g, "verify", &m->verify, 1, 0, 1, err, errlen) ||
	    mb_int(g, "idle", &m->idle, 1, 0, 1, err, errlen) ||
	    mb_int(g, "poll_interval", &m->poll_interval, 60, 1, 86400, err,
	    errlen) || mb_parse_modes(m, g, err, errlen))
		return -1;
	if (m->host[0] == '\0' || m->user[0] == '\0') {
		snprintf(err, errlen, "%s: host and user are required",
		    m->name);
		return -1;
	}
	if (config_setting_get_member(g, "password") != NULL &&
	    config_setting_get_member(g, "password_file") != NULL) {
		snprintf(err, errlen, "%s: give password or password_file, "
		    "not both", m->name);
		return -1;
	}
	snprintf(m->source, sizeof(m->source), "%s:%s",
	    m->pop3 ? "pop3" : "imap", m->name);
	snprintf(m->state_path, sizeof(m->state_path), "%s/%s.state",
	    pl->state_dir, m->name);
	snprintf(m->tmp_path, sizeof(m->tmp_path), "%s/%s.fetch",
	    pl->state_dir, m->name);
	return 0;
}

static int
mb_parse(struct mb_plugin *pl, const config_setting_t *settings, char *err,
    size_t errlen)
{
	const config_setting_t *list;
	int i, j;

	snprintf(pl->state_dir, sizeof(pl->state_dir), "var/mailbox");
	if (settings == NULL)
		return 0;
	if (mb_str(settings, "state_dir", pl->state_dir,
	    sizeof(pl->state_dir), "var/mailbox", err, errlen) != 0)
		return -1;
	list = config_setting_get_member(settings, "mailboxes");
	if (list == NULL)
		return 0;
	if (config_setting_type(list) != CONFIG_TYPE_LIST ||
	    config_setting_length(list) > MB_MAX) {
		snprintf(err, errlen, "mailboxes: expected a list ( {...} ) of "
		    "at most %d", MB_MAX);
		return -1;
	}
	for (i = 0; i < config_setting_length(list); i++) {
		if (mb_parse_one(pl, &pl->mb[i],
		    config_setting_get_elem(list, (unsigned)i), err, errlen))
			return -1;
		for (j = 0; j < i; j++)
			if (strcmp(pl->mb[j].name, pl->mb[i].name) == 0) {
				snprintf(err, errlen, "mailbox %s is listed "
				    "twice", pl->mb[i].name);
				return -1;
			}
		pl->n = i + 1;
	}
	return 0;
}

/* ---- state files: temp, fsync, rename, fsync dir ---- */

static int
mb_mkdirs(const char *path)
{
	char buf[MB_PATH];
	char *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static int
mb_state_save(struct mailbox *m)
{
	char tmp[MB_PATH + 8];
	FILE *f;
	size_t i;
	int fd, ok;

	snprintf(tmp, sizeof(tmp), "%s.tmp", m->state_path);
	if ((f = fopen(tmp, "w")) == NULL) {
		mb_log(m, POSTDOC_LOG_ERR, "state %s: %s", tmp,
		    strerror(errno));
		return -1;
	}
	if (m->pop3)
		for (i = 0; i < m->nuidl; i++)
			fprintf(f, "%s %s\n", m->uidl[i][0] == 'f' ? "filed" :
			    "skip", m->uidl[i] + 1);
	else
		fprintf(f, "uidvalidity %u\nlast_uid %u\n", m->uidvalidity,
		    m->last_uid);
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, m->state_path) != 0) {
		mb_log(m, POSTDOC_LOG_ERR, "state %s: %s", m->state_path,
		    strerror(errno));
		unlink(tmp);
		return -1;
	}
	if ((fd = open(m->pl->state_dir, O_RDONLY | O_DIRECTORY)) >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

static void
mb_uidl_add(struct mailbox *m, char kind, const char *uidl)
{
	m->uidl = realloc(m->uidl, (m->nuidl + 1) * sizeof(*m->uidl));
	if (m->uidl == NULL)
		abort();	/* no memory for a few bytes: nothing to save */
	m->uidl[m->nuidl][0] = kind;
	snprintf(m->uidl[m->nuidl] + 1, MB_UIDL_MAX + 1, "%s", uidl);
	m->nuidl++;
}

static int
mb_state_load(struct mailbox *m)
{
	char line[256], key[32], val[128];
	FILE *f = fopen(m->state_path, "r");

	m->uidvalidity = m->last_uid = 0;
	m->nuidl = 0;
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%31s %127s", key, val) != 2)
			continue;
		if (strcmp(key, "uidvalidity") == 0)
			m->uidvalidity = (uint32_t)strtoul(val, NULL, 10);
		else if (strcmp(key, "last_uid") == 0)
			m->last_uid = (uint32_t)strtoul(val, NULL, 10);
		else if (strcmp(key, "filed") == 0 || strcmp(key, "skip") == 0)
			mb_uidl_add(m, key[0] == 'f' ? 'f' : 's', val);
	}
	fclose(f);
	return 0;
}

/* ---- sleeping that stop() interrupts ---- */

/* Returns 1 when the plugin is stopping. */
static int
mb_sleep(struct mb_plugin *pl, int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&pl->lock);
	while (!atomic_load(&pl->stopping) &&
	    pthread_cond_timedwait(&pl->wake, &pl->lock, &ts) == 0)
		;
	pthread_mutex_unlock(&pl->lock);
	return atomic_load(&pl->stopping);
}

static void
mb_set_fd(struct mailbox *m, mailstream *s)
{
	pthread_mutex_lock(&m->pl->lock);
	m->fd = s != NULL ? mailstream_low_get_fd(mailstream_get_low(s)) : -1;
	pthread_mutex_unlock(&m->pl->lock);
}

/* ---- TLS: libetpan does not verify; we do, before any login ---- */

static void
mb_sni_cb(struct mailstream_ssl_context *ctx, void *data)
{
	struct mailbox *m = data;
	struct in6_addr a6;
	struct in_addr a4;

	/* RFC 6066 section 3: no IP literals in server_name. */
	if (inet_pton(AF_INET, m->host, &a4) != 1 &&
	    inet_pton(AF_INET6, m->host, &a6) != 1)
		mailstream_ssl_set_server_name(ctx, m->host);
}

static int
mb_verify_chain(struct mailbox *m, carray *chain, char *why, size_t len)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	X509 *leaf = NULL;
	X509_VERIFY_PARAM *vp;
	unsigned i;
	int ok = 0;

	for (i = 0; i < carray_count(chain); i++) {
		MMAPString *der = carray_get(chain, i);
		const unsigned char *p = (const unsigned char *)der->str;
		X509 *x = d2i_X509(NULL, &p, (long)der->len);

		if (x == NULL)
			continue;
		if (leaf == NULL)
			leaf = x;
		else
			sk_X509_push(untrusted, x);
	}
	if (store == NULL || vctx == NULL || untrusted == NULL || leaf == NULL) {
		snprintf(why, len, "no peer certificate");
		goto out;
	}
	if ((m->ca_file[0] != '\0' ? X509_STORE_load_file(store, m->ca_file) :
	    X509_STORE_set_default_paths(store)) != 1) {
		snprintf(why, len, "cannot load CA file %.200s", m->ca_file);
		goto out;
	}
	X509_STORE_CTX_init(vctx, store, leaf, untrusted);
	vp = X509_STORE_CTX_get0_param(vctx);
	if (X509_VERIFY_PARAM_set1_ip_asc(vp, m->host) != 1)
		X509_VERIFY_PARAM_set1_host(vp, m->host, 0);
	ok = X509_verify_cert(vctx) == 1;
	if (!ok)
		snprintf(why, len, "%s", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(vctx)));
out:
	X509_free(leaf);
	sk_X509_pop_free(untrusted, X509_free);
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok ? 0 : -1;
}

static int
mb_verify(struct mailbox *m, mailstream *s)
{
	carray *chain;
	char why[256];
	int rc;

	if (m->tls == MB_TLS_NONE || !m->verify)
		return 0;
	chain = mailstream_get_certificate_chain(s);
	if (chain == NULL) {
		mb_log(m, POSTDOC_LOG_ERR, "certificate of %s: none presented; "
		    "not logging in", m->host);
		return -1;
	}
	rc = mb_verify_chain(m, chain, why, sizeof(why));
	mailstream_certificate_chain_free(chain);
	if (rc != 0)
		mb_log(m, POSTDOC_LOG_ERR, "certificate of %s:%u does not "
		    "verify (%s); not logging in", m->host, m->port, why);
	return rc;
}

/* ---- IMAP ---- */

static int
mb_imap_connect(struct mailbox *m, mailimap *imap)
{
	int r;

	if (m->tls == MB_TLS_IMPLICIT)
		r = mailimap_ssl_connect_with_callback(imap, m->host, m->port,
		    mb_sni_cb, m);
	else
		r = mailimap_socket_connect(imap, m->host, m->port);
	if (r == MAILIMAP_NO_ERROR_AUTHENTICATED ||
	    r == MAILIMAP_NO_ERROR_NON_AUTHENTICATED)
		r = MAILIMAP_NO_ERROR;
	if (r == MAILIMAP_NO_ERROR && m->tls == MB_TLS_STARTTLS)
		r = mailimap_socket_starttls_with_callback(imap, mb_sni_cb, m);
	if (r != MAILIMAP_NO_ERROR) {
		mb_log(m, POSTDOC_LOG_ERR, "cannot connect to %s:%u (libetpan "
		    "error %d)", m->host, m->port, r);
		return -1;
	}
	mb_set_fd(m, imap->imap_stream);
	if (mb_verify(m, imap->imap_stream) != 0)
		return -1;
	r = mailimap_login(imap, m->user, m->password);
	if (r != MAILIMAP_NO_ERROR) {
		mb_log(m, POSTDOC_LOG_ERR, "login as %s failed: %s", m->user,
		    r == MAILIMAP_ERROR_LOGIN ? mb_imap_text(imap) :
		    "connection error");
		return -1;
	}
	/* The capabilities after login (MOVE, UIDPLUS, IDLE). */
	{
		struct mailimap_capability_data *cap = NULL;

		if (mailimap_capability(imap, &cap) == MAILIMAP_NO_ERROR)
			mailimap_capability_data_free(cap);
	}
	return 0;
}

/* UIDs above last_uid, ascending, into *uids_r (count *n_r). */
static int
mb_imap_search(mailimap *imap, uint32_t last, uint32_t **uids_r,
    size_t *n_r)
{
	struct mailimap_search_key *key = mailimap_search_key_new_uid(
	    mailimap_set_new_interval(last + 1, 0));
	clist *res = NULL;
	clistiter *it;
	size_t n = 0, i, j;
	uint32_t *u;
	int r = mailimap_uid_search(imap, NULL, key, &res);

	mailimap_search_key_free(key);
	*uids_r = NULL;
	*n_r = 0;
	if (r != MAILIMAP_NO_ERROR)
		return -1;
	u = calloc((size_t)clist_count(res) + 1, sizeof(*u));
	for (it = clist_begin(res); u != NULL && it != NULL;
	    it = clist_next(it)) {
		uint32_t v = *(uint32_t *)clist_content(it);

		if (v > last)	/* "n:*" also names the last message */
			u[n++] = v;
	}
	mailimap_search_result_free(res);
	if (u == NULL)
		return -1;
	for (i = 1; i < n; i++)		/* few: insertion sort */
		for (j = i; j > 0 && u[j - 1] > u[j]; j--) {
			uint32_t t = u[j];

			u[j] = u[j - 1];
			u[j - 1] = t;
		}
	*uids_r = u;
	*n_r = n;
	return 0;
}

struct mb_body {
	int fd;
	uint64_t size;
	int failed;
};

/* libetpan hands the literal over as it arrives: straight to the file. */
static bool
mb_body_cb(int att_type, struct mailimap_msg_att_body_section *section,
    const char *bytes, size_t len, void *arg)
{
	struct mb_body *b = arg;

	(void)att_type;
	(void)section;
	if (b->failed)
		return false;
	while (len > 0) {
		ssize_t w = write(b->fd, bytes, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			b->failed = 1;
			return false;
		}
		bytes += w;
		len -= (size_t)w;
		b->size += (uint64_t)w;
	}
	return true;
}

/* UID FETCH uid BODY.PEEK[] into tmp_path.  1 fetched, 0 gone, -1 error. */
static int
mb_imap_fetch(struct mailbox *m, mailimap *imap, uint32_t uid)
{
	struct mailimap_fetch_type *ft =
	    mailimap_fetch_type_new_fetch_att_list_empty();
	struct mailimap_set *set = mailimap_set_new_single(uid);
	struct mb_body b = { -1, 0, 0 };
	clist *res = NULL;
	int r, got;

	mailimap_fetch_type_new_fetch_att_list_add(ft,
	    mailimap_fetch_att_new_body_peek_section(
	    mailimap_section_new(NULL)));
	b.fd = open(m->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (b.fd < 0) {
		mb_log(m, POSTDOC_LOG_ERR, "%s: %s", m->tmp_path,
		    strerror(errno));
		mailimap_fetch_type_free(ft);
		mailimap_set_free(set);
		return -1;
	}
	mailimap_set_msg_body_handler(imap, mb_body_cb, &b);
	r = mailimap_uid_fetch(imap, set, ft, &res);
	mailimap_set_msg_body_handler(imap, NULL, NULL);
	got = r == MAILIMAP_NO_ERROR && res != NULL && clist_count(res) > 0;
	if (res != NULL)
		mailimap_fetch_list_free(res);
	mailimap_fetch_type_free(ft);
	mailimap_set_free(set);
	if (close(b.fd) != 0)
		b.failed = 1;
	if (r != MAILIMAP_NO_ERROR || b.failed) {
		mb_log(m, POSTDOC_LOG_ERR, "fetch uid %u failed%s: %s", uid,
		    b.failed ? " (writing the temp file)" : "",
		    mb_imap_text(imap));
		return -1;
	}
	mb_log(m, POSTDOC_LOG_DEBUG, "fetched uid %u, %llu octets", uid,
	    (unsigned long long)b.size);
	return got ? 1 : 0;
}

static int
mb_imap_expunge(mailimap *imap, struct mailimap_set *set)
{
	struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
	struct mailimap_store_att_flags *sf;
	int r;

	mailimap_flag_list_add(fl, mailimap_flag_new_deleted());
	sf = mailimap_store_att_flags_new_add_flags_silent(fl);
	r = mailimap_uid_store(imap, set, sf);
	mailimap_store_att_flags_free(sf);
	if (r != MAILIMAP_NO_ERROR)
		return r;
	/* Without UIDPLUS a plain EXPUNGE would also remove messages
	 * someone else marked \Deleted: acceptable for a dedicated box. */
	return mailimap_has_uidplus(imap) ? mailimap_uid_expunge(imap, set) :
	    mailimap_expunge(imap);
}

static int
mb_imap_move1(mailimap *imap, struct mailimap_set *set, const char *to)
{
	int r;

	if (mailimap_has_extension(imap, "MOVE"))
		return mailimap_uid_move(imap, set, to);
	r = mailimap_uid_copy(imap, set, to);
	return r != MAILIMAP_NO_ERROR ? r : mb_imap_expunge(imap, set);
}

/* Move uid to folder `to` (created on first need) or delete it. */
static int
mb_imap_dispose(struct mailbox *m, mailimap *imap, uint32_t uid,
    const char *to)
{
	struct mailimap_set *set = mailimap_set_new_single(uid);
	int r;

	if (to == NULL)
		r = mb_imap_expunge(imap, set);
	else if ((r = mb_imap_move1(imap, set, to)) == MAILIMAP_ERROR_UID_MOVE
	    || r == MAILIMAP_ERROR_UID_COPY) {
		/* [TRYCREATE] (RFC 3501 6.4.7): the folder is new. */
		mailimap_create(imap, to);
		r = mb_imap_move1(imap, set, to);
	}
	mailimap_set_free(set);
	if (r != MAILIMAP_NO_ERROR) {
		mb_log(m, POSTDOC_LOG_ERR, "%s uid %u%s%s failed: %s",
		    to != NULL ? "move" : "delete", uid, to != NULL ? " to " :
		    "", to != NULL ? to : "", mb_imap_text(imap));
		return -1;
	}
	return 0;
}

/*
 * Hand the fetched file to the core and act on its answer.  Returns 0
 * when the message is done with (filed and moved, or set aside), 1 when
 * the core said "later" (4xx), -1 on a session error.
 */
static int
mb_file(struct mailbox *m, const char *what, struct postdoc_delivery *res)
{
	const struct postdoc_host *h = m->pl->host;
	struct postdoc_submit sub = {
		.path = m->tmp_path, .source = m->source, .peer = m->host,
		.tls = m->tls != MB_TLS_NONE && m->verify,
		.default_dossier = m->default_dossier,
	};

	memset(res, 0, sizeof(*res));
	h->submit(h->ctx, &sub, res);
	unlink(m->tmp_path);
	if (res->code >= 200 && res->code < 300)
		return 0;
	if (res->code >= 500 && res->code < 600) {
		if (strcmp(res->enhanced, POSTDOC_SUBMIT_NO_DOSSIER) == 0)
			mb_log(m, POSTDOC_LOG_WARN, "%s: no dossier: set "
			    "aside", what);
		else
			mb_log(m, POSTDOC_LOG_WARN, "%s refused (%d %s %s): "
			    "set aside", what, res->code, res->enhanced,
			    res->text);
		return 0;
	}
	mb_log(m, POSTDOC_LOG_WARN, "%s: intake says try later (%d %s %s)",
	    what, res->code, res->enhanced, res->text);
	return 1;
}

static int
mb_imap_one(struct mailbox *m, mailimap *imap, uint32_t uid)
{
	struct postdoc_delivery res;
	char what[32];
	int r;

	if ((r = mb_imap_fetch(m, imap, uid)) < 0)
		return -1;
	if (r > 0) {
		snprintf(what, sizeof(what), "uid %u", uid);
		if ((r = mb_file(m, what, &res)) != 0)
			return r;
		/* Filed (or refused): only now may it leave the folder. */
		if (mb_imap_dispose(m, imap, uid, res.code < 300 ?
		    (m->after_delete ? NULL : m->move_to) : m->unmatched) != 0)
			return -1;
	}
	m->last_uid = uid;
	return mb_state_save(m);
}

/* File every message above last_uid; 1 if one was deferred. */
static int
mb_imap_fetch_new(struct mailbox *m, mailimap *imap)
{
	uint32_t *uids;
	size_t n, i;
	int r = 0;

	if (mb_imap_search(imap, m->last_uid, &uids, &n) != 0) {
		mb_log(m, POSTDOC_LOG_ERR, "UID SEARCH failed: %s",
		    mb_imap_text(imap));
		return -1;
	}
	for (i = 0; i < n && r == 0 && !atomic_load(&m->pl->stopping); i++)
		r = mb_imap_one(m, imap, uids[i]);
	free(uids);
	return r;
}

static int
mb_imap_select(struct mailbox *m, mailimap *imap, int readonly)
{
	uint32_t v;

	if ((readonly ? mailimap_examine(imap, m->folder) :
	    mailimap_select(imap, m->folder)) != MAILIMAP_NO_ERROR ||
	    imap->imap_selection_info == NULL) {
		mb_log(m, POSTDOC_LOG_ERR, "cannot select %s: %s", m->folder,
		    mb_imap_text(imap));
		return -1;
	}
	v = imap->imap_selection_info->sel_uidvalidity;
	if (!readonly && v != m->uidvalidity) {
		/* RFC 3501 2.3.1.1: the old UIDs mean nothing now.  Refetch
		 * from the start; deduplication absorbs what was filed. */
		if (m->uidvalidity != 0)
			mb_log(m, POSTDOC_LOG_WARN, "UIDVALIDITY changed "
			    "(%u -> %u): fetching %s again from the start",
			    m->uidvalidity, v, m->folder);
		m->uidvalidity = v;
		m->last_uid = 0;
		return mb_state_save(m);
	}
	return 0;
}

/* IDLE until the server speaks, the plugin stops, or MB_IDLE_MAX. */
static int
mb_imap_idle(struct mailbox *m, mailimap *imap)
{
	/* A notification can hide where poll() cannot see it (read along
	 * with the continuation into libetpan's buffer, or inside a TLS
	 * record): leave IDLE at least every poll interval (30 s .. 5 min)
	 * so a missed one costs no more than polling would. */
	int64_t left = 1000 * (int64_t)(m->poll_interval < 30 ? 30 :
	    m->poll_interval > MB_IDLE_MAX ? MB_IDLE_MAX : m->poll_interval);
	struct pollfd pfd;

	mailimap_idle_set_delay(imap, MB_IDLE_MAX);
	if (mailimap_idle(imap) != MAILIMAP_NO_ERROR) {
		mb_log(m, POSTDOC_LOG_ERR, "IDLE failed: %s",
		    mb_imap_text(imap));
		return -1;
	}
	pfd.fd = mailimap_idle_get_fd(imap);
	pfd.events = POLLIN;
	if (imap->imap_stream->read_buffer_len > 0)
		left = 0;	/* the server already spoke */
	while (left > 0 && !atomic_load(&m->pl->stopping)) {
		pfd.revents = 0;
		if (poll(&pfd, 1, 200) != 0)
			break;	/* data (EXISTS), or an error DONE reports */
		left -= 200;
	}
	if (mailimap_idle_done(imap) != MAILIMAP_NO_ERROR) {
		mb_log(m, POSTDOC_LOG_ERR, "IDLE DONE failed: %s",
		    mb_imap_text(imap));
		return -1;
	}
	return 0;
}

/* One IMAP session; returns 0 after a clean stop, -1 on error (with a
 * flag in *logged_in_r saying whether the login worked). */
static int
mb_imap_session(struct mailbox *m, int *logged_in_r)
{
	mailimap *imap = mailimap_new(0, NULL);
	int r = -1;

	if (imap == NULL)
		return -1;
	mailimap_set_timeout(imap, MB_NET_TIMEOUT);
	if (mb_imap_connect(m, imap) != 0 ||
	    mb_imap_select(m, imap, 0) != 0)
		goto out;
	*logged_in_r = 1;
	mb_log(m, POSTDOC_LOG_INFO, "logged in to %s:%u as %s, watching %s "
	    "(%s)", m->host, m->port, m->user, m->folder, m->idle &&
	    mailimap_has_idle(imap) ? "IDLE" : "polling");
	while (!atomic_load(&m->pl->stopping)) {
		int d = mb_imap_fetch_new(m, imap);

		if (d < 0 || atomic_load(&m->pl->stopping))
			break;
		if (d == 0 && m->idle && mailimap_has_idle(imap)) {
			if (mb_imap_idle(m, imap) != 0)
				break;
		} else if (mb_sleep(m->pl, (int64_t)m->poll_interval * 1000) ||
		    mailimap_noop(imap) != MAILIMAP_NO_ERROR)
			break;
	}
	r = atomic_load(&m->pl->stopping) ? 0 : -1;
	if (r == 0)
		mailimap_logout(imap);
out:
	mb_set_fd(m, NULL);
	mailimap_free(imap);
	return r;
}

/* ---- POP3 ---- */

static int
mb_pop3_connect(struct mailbox *m, mailpop3 *pop)
{
	int r;

	if (m->tls == MB_TLS_IMPLICIT)
		r = mailpop3_ssl_connect_with_callback(pop, m->host, m->port,
		    mb_sni_cb, m);
	else
		r = mailpop3_socket_connect(pop, m->host, m->port);
	if (r == MAILPOP3_NO_ERROR && m->tls == MB_TLS_STARTTLS)
		r = mailpop3_socket_starttls_with_callback(pop, mb_sni_cb, m);
	if (r != MAILPOP3_NO_ERROR) {
		mb_log(m, POSTDOC_LOG_ERR, "cannot connect to %s:%u (libetpan "
		    "error %d)", m->host, m->port, r);
		return -1;
	}
	mb_set_fd(m, pop->pop3_stream);
	if (mb_verify(m, pop->pop3_stream) != 0)
		return -1;
	if (mailpop3_user(pop, m->user) != MAILPOP3_NO_ERROR ||
	    mailpop3_pass(pop, m->password) != MAILPOP3_NO_ERROR) {
		mb_log(m, POSTDOC_LOG_ERR, "login as %s failed: %s", m->user,
		    pop->pop3_response != NULL ? pop->pop3_response : "");
		return -1;
	}
	return 0;
}

static char
mb_uidl_kind(const struct mailbox *m, const char *uidl)
{
	size_t i;

	for (i = 0; i < m->nuidl; i++)
		if (strcmp(m->uidl[i] + 1, uidl) == 0)
			return m->uidl[i][0];
	return 0;
}

/* Forget UIDLs the server no longer lists (deleted at our QUIT). */
static void
mb_uidl_prune(struct mailbox *m, carray *list)
{
	size_t i, k = 0;
	unsigned j;

	for (i = 0; i < m->nuidl; i++) {
		for (j = 0; j < carray_count(list); j++) {
			struct mailpop3_msg_info *mi = carray_get(list, j);

			if (mi != NULL && mi->msg_uidl != NULL &&
			    strcmp(mi->msg_uidl, m->uidl[i] + 1) == 0)
				break;
		}
		if (j < carray_count(list))
			memmove(m->uidl[k++], m->uidl[i], sizeof(m->uidl[0]));
	}
	m->nuidl = k;
}

/*
 * RETR holds the whole message in memory (libetpan has no streaming
 * RETR): the message is in memory once, while it is written out; POP3
 * mailboxes with huge messages are better served over IMAP.
 */
static int
mb_pop3_retr(struct mailbox *m, mailpop3 *pop, unsigned idx)
{
	char *msg = NULL;
	size_t len = 0, off = 0;
	int fd, ok;

	if (mailpop3_retr(pop, idx, &msg, &len) != MAILPOP3_NO_ERROR) {
		mb_log(m, POSTDOC_LOG_ERR, "RETR %u failed: %s", idx,
		    pop->pop3_response != NULL ? pop->pop3_response : "");
		return -1;
	}
	fd = open(m->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ok = fd >= 0;
	while (ok && off < len) {
		ssize_t w = write(fd, msg + off, len - off);

		ok = w > 0 || (w < 0 && errno == EINTR);
		off += w > 0 ? (size_t)w : 0;
	}
	if (fd >= 0 && close(fd) != 0)
		ok = 0;
	mailpop3_retr_free(msg);
	if (!ok)
		mb_log(m, POSTDOC_LOG_ERR, "%s: %s", m->tmp_path,
		    strerror(errno));
	return ok ? 0 : -1;
}

static int
mb_pop3_one(struct mailbox *m, mailpop3 *pop, struct mailpop3_msg_info *mi)
{
	struct postdoc_delivery res;
	char what[MB_UIDL_MAX + 16];
	char kind = mb_uidl_kind(m, mi->msg_uidl);
	int r;

	if (kind == 's')
		return 0;	/* set aside earlier: stays on the server */
	if (kind == 'f')	/* filed, but our DELE never committed */
		return mailpop3_dele(pop, mi->msg_index) == MAILPOP3_NO_ERROR ?
		    0 : -1;
	if (mb_pop3_retr(m, pop, mi->msg_index) != 0)
		return -1;
	snprintf(what, sizeof(what), "uidl %s", mi->msg_uidl);
	if ((r = mb_file(m, what, &res)) != 0)
		return r;
	/* POP3 has no folders: what matched no dossier stays on the
	 * server, remembered so it is not fetched again. */
	mb_uidl_add(m, res.code < 300 ? 'f' : 's', mi->msg_uidl);
	if (mb_state_save(m) != 0)
		return -1;
	if (res.code < 300 &&
	    mailpop3_dele(pop, mi->msg_index) != MAILPOP3_NO_ERROR)
		return -1;
	return 0;
}

static int
mb_uidl_ok(const char *u)
{
	size_t i;

	for (i = 0; u != NULL && u[i] != '\0'; i++)
		if (u[i] < 0x21 || u[i] > 0x7e)
			return 0;
	return u != NULL && i > 0 && i <= MB_UIDL_MAX;
}

/* One POP3 session: file what is new, DELE it, QUIT to commit. */
static int
mb_pop3_session(struct mailbox *m, int *logged_in_r)
{
	mailpop3 *pop = mailpop3_new(0, NULL);
	carray *list = NULL;
	unsigned i;
	int r = -1;

	if (pop == NULL)
		return -1;
	mailpop3_set_timeout(pop, MB_NET_TIMEOUT);
	if (mb_pop3_connect(m, pop) != 0)
		goto out;
	*logged_in_r = 1;
	if (mailpop3_list(pop, &list) != MAILPOP3_NO_ERROR) {
		mb_log(m, POSTDOC_LOG_ERR, "LIST/UIDL failed");
		goto out;
	}
	r = 0;
	m->defer = 0;
	for (i = 0; i < carray_count(list) && r == 0 &&
	    !atomic_load(&m->pl->stopping); i++) {
		struct mailpop3_msg_info *mi = carray_get(list, i);

		if (mi == NULL || mi->msg_deleted)
			continue;
		if (!mb_uidl_ok(mi->msg_uidl)) {
			mb_log(m, POSTDOC_LOG_ERR, "message %u: no usable UIDL "
			    "(the server must offer UIDL): skipped",
			    mi->msg_index);
			continue;
		}
		r = mb_pop3_one(m, pop, mi);
	}
	m->defer = r == 1;
	if (r >= 0) {
		/* Drop UIDLs the server no longer lists (deleted at an
		 * earlier QUIT), while the listing is still ours. */
		mb_uidl_prune(m, list);
		r = mailpop3_quit(pop) == MAILPOP3_NO_ERROR ? 0 : -1;
	}
out:
	mb_set_fd(m, NULL);
	mailpop3_free(pop);
	return r;
}

/* ---- the mailbox thread ---- */

static void *
mb_thread(void *arg)
{
	struct mailbox *m = arg;
	int backoff = 1;

	while (!atomic_load(&m->pl->stopping)) {
		int logged_in = 0, r;

		r = m->pop3 ? mb_pop3_session(m, &logged_in) :
		    mb_imap_session(m, &logged_in);
		if (atomic_load(&m->pl->stopping))
			break;
		if (r == 0 && m->pop3) {
			backoff = 1;
			mb_sleep(m->pl, (int64_t)m->poll_interval * 1000);
			continue;
		}
		if (logged_in)
			backoff = 1;
		mb_log(m, POSTDOC_LOG_WARN, "session ended; retry in %ds",
		    backoff);
		if (mb_sleep(m->pl, (int64_t)backoff * 1000))
			break;
		backoff = backoff * 2 > MB_BACKOFF_MAX ? MB_BACKOFF_MAX :
		    backoff * 2;
	}
	return NULL;
}

/* ---- `postdoc mailbox check NAME` ---- */

static void
mb_check_imap_sizes(mailimap *imap, const uint32_t *uids, size_t n,
    FILE *out, unsigned long long *total)
{
	struct mailimap_fetch_type *ft;
	struct mailimap_set *set;
	clist *res = NULL;
	clistiter *it, *a;
	size_t i;

	if (n == 0)
		return;
	ft = mailimap_fetch_type_new_fetch_att_list_empty();
	mailimap_fetch_type_new_fetch_att_list_add(ft,
	    mailimap_fetch_att_new_uid());
	mailimap_fetch_type_new_fetch_att_list_add(ft,
	    mailimap_fetch_att_new_rfc822_size());
	set = mailimap_set_new_empty();
	for (i = 0; i < n; i++)
		mailimap_set_add_single(set, uids[i]);
	if (mailimap_uid_fetch(imap, set, ft, &res) == MAILIMAP_NO_ERROR) {
		for (it = clist_begin(res); it != NULL; it = clist_next(it)) {
			struct mailimap_msg_att *ma = clist_content(it);
			uint32_t uid = 0, size = 0;

			for (a = clist_begin(ma->att_list); a != NULL;
			    a = clist_next(a)) {
				struct mailimap_msg_att_item *item =
				    clist_content(a);

				if (item->att_type !=
				    MAILIMAP_MSG_ATT_ITEM_STATIC)
					continue;
				if (item->att_data.att_static->att_type ==
				    MAILIMAP_MSG_ATT_UID)
					uid = item->att_data.att_static->
					    att_data.att_uid;
				else if (item->att_data.att_static->att_type
				    == MAILIMAP_MSG_ATT_RFC822_SIZE)
					size = item->att_data.att_static->
					    att_data.att_rfc822_size;
			}
			if (uid != 0) {
				fprintf(out, "  uid %u: %u octets\n", uid,
				    size);
				*total += size;
			}
		}
		mailimap_fetch_list_free(res);
	}
	mailimap_fetch_type_free(ft);
	mailimap_set_free(set);
}

static int
mb_check_imap(struct mailbox *m, FILE *out, char *err, size_t errlen)
{
	mailimap *imap = mailimap_new(0, NULL);
	uint32_t *uids = NULL, from;
	unsigned long long total = 0;
	size_t n = 0;
	int rc = -1;

	mailimap_set_timeout(imap, MB_NET_TIMEOUT);
	if (mb_imap_connect(m, imap) != 0 || mb_imap_select(m, imap, 1) != 0) {
		snprintf(err, errlen, "mailbox %s: check failed (see above)",
		    m->name);
		goto out;
	}
	fprintf(out, "mailbox %s: imap %s:%u tls=%s, logged in as %s\n",
	    m->name, m->host, m->port, m->tls == MB_TLS_NONE ? "none" :
	    m->verify ? "verified" : "unverified", m->user);
	fprintf(out, "folder %s: uidvalidity %u, %u message(s); state: "
	    "uidvalidity %u, last uid %u\n", m->folder,
	    imap->imap_selection_info->sel_uidvalidity,
	    imap->imap_selection_info->sel_exists, m->uidvalidity,
	    m->last_uid);
	fprintf(out, "capabilities: IDLE %s, MOVE %s, UIDPLUS %s\n",
	    mailimap_has_idle(imap) ? "yes" : "no",
	    mailimap_has_extension(imap, "MOVE") ? "yes" : "no",
	    mailimap_has_uidplus(imap) ? "yes" : "no");
	from = imap->imap_selection_info->sel_uidvalidity == m->uidvalidity ?
	    m->last_uid : 0;
	if (mb_imap_search(imap, from, &uids, &n) != 0) {
		snprintf(err, errlen, "UID SEARCH failed: %s",
		    mb_imap_text(imap));
		goto out;
	}
	fprintf(out, "would fetch %zu message(s)\n", n);
	mb_check_imap_sizes(imap, uids, n, out, &total);
	fprintf(out, "total %llu octets; after filing: %s\n", total,
	    m->after_delete ? "delete" : m->move_to);
	mailimap_logout(imap);
	rc = 0;
out:
	free(uids);
	mailimap_free(imap);
	return rc;
}

static int
mb_check_pop3(struct mailbox *m, FILE *out, char *err, size_t errlen)
{
	mailpop3 *pop = mailpop3_new(0, NULL);
	carray *list = NULL;
	unsigned long long total = 0;
	unsigned i, n = 0;
	int rc = -1;

	mailpop3_set_timeout(pop, MB_NET_TIMEOUT);
	if (mb_pop3_connect(m, pop) != 0 ||
	    mailpop3_list(pop, &list) != MAILPOP3_NO_ERROR) {
		snprintf(err, errlen, "mailbox %s: check failed (see above)",
		    m->name);
		goto out;
	}
	fprintf(out, "mailbox %s: pop3 %s:%u tls=%s, logged in as %s\n",
	    m->name, m->host, m->port, m->tls == MB_TLS_NONE ? "none" :
	    m->verify ? "verified" : "unverified", m->user);
	for (i = 0; i < carray_count(list); i++) {
		struct mailpop3_msg_info *mi = carray_get(list, i);

		if (mi == NULL || !mb_uidl_ok(mi->msg_uidl) ||
		    mb_uidl_kind(m, mi->msg_uidl) != 0)
			continue;
		fprintf(out, "  uidl %s: %u octets\n", mi->msg_uidl,
		    mi->msg_size);
		total += mi->msg_size;
		n++;
	}
	fprintf(out, "would fetch %u of %u message(s), total %llu octets; "
	    "after filing: delete\n", n, carray_count(list), total);
	rc = 0;
	/* RSET-free: nothing was marked; QUIT changes nothing. */
	mailpop3_quit(pop);
out:
	mailpop3_free(pop);
	return rc;
}

static int
mb_command(void *state, int argc, const char *const *argv, FILE *out,
    char *err, size_t errlen)
{
	struct mb_plugin *pl = state;
	int i;

	if (argc != 2 || strcmp(argv[0], "check") != 0) {
		snprintf(err, errlen, "usage: postdoc mailbox check NAME");
		return -2;
	}
	for (i = 0; i < pl->n; i++) {
		struct mailbox *m = &pl->mb[i];

		if (strcmp(m->name, argv[1]) != 0)
			continue;
		if (mb_state_load(m) != 0)
			fprintf(out, "state %s unreadable: %s\n",
			    m->state_path, strerror(errno));
		return m->pop3 ? mb_check_pop3(m, out, err, errlen) :
		    mb_check_imap(m, out, err, errlen);
	}
	snprintf(err, errlen, "no mailbox named \"%s\" in the mailbox "
	    "plugin's settings", argv[1]);
	return -1;
}

/* ---- plugin entry points ---- */

static int
mb_init(const config_setting_t *settings, void **state_r, char *err,
    size_t errlen)
{
	struct mb_plugin *pl = calloc(1, sizeof(*pl));

	if (pl == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->wake, NULL);
	if (mb_parse(pl, settings, err, errlen) != 0) {
		free(pl);
		return -1;
	}
	*state_r = pl;
	return 0;
}

static int
mb_start(void *state, const struct postdoc_host *host, char *err,
    size_t errlen)
{
	struct mb_plugin *pl = state;
	int i;

	if (host == NULL || host->abi != POSTDOC_PLUGIN_ABI) {
		snprintf(err, errlen, "host API mismatch");
		return -1;
	}
	pl->host = host;
	atomic_store(&pl->stopping, 0);
	if (pl->n > 0 && mb_mkdirs(pl->state_dir) != 0) {
		snprintf(err, errlen, "cannot create %s: %s", pl->state_dir,
		    strerror(errno));
		return -1;
	}
	for (i = 0; i < pl->n; i++) {
		struct mailbox *m = &pl->mb[i];

		if (mb_state_load(m) != 0) {
			snprintf(err, errlen, "%s: %s", m->state_path,
			    strerror(errno));
			return -1;
		}
		unlink(m->tmp_path);
		if (pthread_create(&m->th, NULL, mb_thread, m) != 0) {
			snprintf(err, errlen, "%s: cannot start a thread",
			    m->name);
			return -1;	/* the core calls stop: joins others */
		}
		m->started = 1;
	}
	return 0;
}

static void
mb_stop(void *state)
{
	struct mb_plugin *pl = state;
	int i;

	pthread_mutex_lock(&pl->lock);
	atomic_store(&pl->stopping, 1);
	pthread_cond_broadcast(&pl->wake);
	/* A thread blocked in a network read wakes up now, not after the
	 * libetpan timeout; nothing is lost (move follows filing). */
	for (i = 0; i < pl->n; i++)
		if (pl->mb[i].fd >= 0)
			shutdown(pl->mb[i].fd, SHUT_RDWR);
	pthread_mutex_unlock(&pl->lock);
	for (i = 0; i < pl->n; i++)
		if (pl->mb[i].started) {
			pthread_join(pl->mb[i].th, NULL);
			pl->mb[i].started = 0;
		}
	pl->host = NULL;
}

static void
mb_deinit(void *state)
{
	struct mb_plugin *pl = state;
	int i;

	if (pl == NULL)
		return;
	for (i = 0; i < pl->n; i++) {
		explicit_bzero(pl->mb[i].password, sizeof(pl->mb[i].password));
		free(pl->mb[i].uidl);
	}
	pthread_cond_destroy(&pl->wake);
	pthread_mutex_destroy(&pl->lock);
	free(pl);
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "mailbox",
	.version = "1.0",
	.init = mb_init,
	.deinit = mb_deinit,
	.start = mb_start,
	.stop = mb_stop,
	.command = mb_command,
};

/*
 * config.c - owns Postdoc's configuration: the one table declaring every
 * parameter (group, key, type, default, bounds, help), loading a libconfig
 * file over those defaults, and reporting every problem as "file:line: msg".
 * It never prints, never exits, and never keeps a value it did not check.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#ifndef PD_PLUGIN_DIR
#define PD_PLUGIN_DIR "/usr/local/lib/postdoc"
#endif

enum cf_type { CF_STR, CF_INT, CF_BOOL };

/* A value check beyond type and bounds; returns why it failed or NULL. */
typedef const char *(*cf_check_fn)(const char *value);

struct cf_param {
	const char *group;
	const char *key;
	enum cf_type type;
	size_t off;			/* offset in struct pd_config */
	const char *def_s;		/* CF_STR default */
	int64_t def_i;			/* CF_INT / CF_BOOL default */
	int64_t min, max;		/* CF_INT bounds, inclusive */
	const char *const *choices;	/* CF_STR enum, NULL-terminated */
	cf_check_fn check;		/* CF_STR syntax check or NULL */
	const char *help;
};

static const char *cf_check_listen(const char *v);
static const char *cf_check_domain(const char *v);
static const char *cf_check_nonempty(const char *v);
static const char *cf_check_domain_or_empty(const char *v);
static const char *cf_check_addr_or_empty(const char *v);
static const char *cf_check_days(const char *v);
static const char *cf_check_name(const char *v);
static const char *cf_check_url(const char *v);
static const char *cf_check_dns_server(const char *v);
static const char *cf_check_cidr_list(const char *v);

static const char *const cf_log_levels[] =
    { "err", "warn", "info", "debug", NULL };
static const char *const cf_sync_modes[] = { "full", "normal", NULL };
static const char *const cf_log_outputs[] =
    { "stderr", "syslog", "file", NULL };

#define OFF(f) offsetof(struct pd_config, f)
#define STR(g, k, f, d, chk, h) \
	{ g, k, CF_STR, OFF(f), d, 0, 0, 0, NULL, chk, h }
#define ENUM(g, k, f, d, ch, h) \
	{ g, k, CF_STR, OFF(f), d, 0, 0, 0, ch, NULL, h }
#define INT(g, k, f, d, lo, hi, h) \
	{ g, k, CF_INT, OFF(f), NULL, d, lo, hi, NULL, NULL, h }
#define BOOL(g, k, f, d, h) \
	{ g, k, CF_BOOL, OFF(f), NULL, d, 0, 1, NULL, NULL, h }

/*
 * Every parameter, declared once (the Postfix way).  Limits follow
 * RFC 5321 4.5.3.1: the minimums are what the RFC requires us to accept,
 * the maximums are what we can afford per connection.
 */
static const struct cf_param cf_params[] = {
	STR("server", "hostname", hostname, "postdoc.localhost",
	    cf_check_domain, "name in the greeting and Received: lines"),
	STR("server", "smtp_listen", smtp_listen, "127.0.0.1:2525",
	    cf_check_listen, "SMTP listener host:port, \"\" = off"),
	STR("server", "lmtp_listen", lmtp_listen, "127.0.0.1:2424",
	    cf_check_listen, "LMTP listener host:port, \"\" = off"),
	/* 0: what the kernel allows (net.core.somaxconn, read at bind):
	 * a burst of clients waits in the queue instead of being refused
	 * by the kernel before the loop has accepted the last ones. */
	INT("server", "listen_backlog", listen_backlog, 0, 0, 65535,
	    "listen(2) queue of the SMTP/LMTP listeners; 0 = the system "
	    "maximum (net.core.somaxconn)"),
	STR("server", "tls_cert", tls_cert, "", NULL,
	    "PEM certificate for STARTTLS (needs tls_key)"),
	STR("server", "tls_key", tls_key, "", NULL,
	    "PEM private key for STARTTLS (needs tls_cert)"),
	INT("server", "workers", workers, 16, 1, 64,
	    "worker threads for blocking work"),
	STR("server", "plugin_dir", plugin_dir, PD_PLUGIN_DIR,
	    cf_check_nonempty, "where plugins/<name>.so are found"),
	ENUM("server", "log_level", log_level, "info", cf_log_levels,
	    "err, warn, info or debug"),
	STR("server", "user", user, "", NULL,
	    "serve started as root drops to this user after binding"),
	ENUM("server", "log", log_output, "stderr", cf_log_outputs,
	    "stderr, syslog (facility mail), or file (log_file)"),
	STR("server", "log_file", log_file, "", NULL,
	    "with log = \"file\": reopened on SIGHUP; "
	    "\"\" = <var_dir>/log/postdoc.log"),
	STR("store", "var_dir", var_dir, "var", cf_check_nonempty,
	    "root of the database, blobs and spool"),
	STR("store", "db_path", db_path, "", NULL,
	    "SQLite database; \"\" = <var_dir>/postdoc.db"),
	ENUM("store", "sync", sync_mode, "full", cf_sync_modes,
	    "SQLite synchronous mode: full or normal"),
	INT("store", "wal_size_max", wal_size_max, 67108864, 1048576,
	    INT64_C(1099511627776), "octets of WAL file past which serve "
	    "checkpoints and truncates it once no reader holds it"),
	INT("store", "inline_max", inline_max, 65536, 0, 1048576,
	    "raw messages up to this size live in the database; 0 = never"),
	INT("store", "blob_grace", blob_grace, 3600, 60, 2592000,
	    "seconds an unnamed blob is kept before the sweep removes it"),
	STR("intake", "domain", intake_domain, "dossiers.localhost",
	    cf_check_domain, "domain of dossier addresses"),
	INT("limits", "line_max", line_max, 512, 512, 65536,
	    "command line octets incl. CRLF (RFC 5321 4.5.3.1.4)"),
	INT("limits", "data_line_max", data_line_max, 998, 998, 16777216,
	    "text line octets excl. CRLF (RFC 5321 4.5.3.1.6)"),
	INT("limits", "rcpt_max", rcpt_max, 100, 1, 10000,
	    "recipients per message (RFC 5321 4.5.3.1.8)"),
	INT("limits", "message_size_max", message_size_max, 26214400,
	    1024, INT64_C(2147483648), "message octets (RFC 1870 SIZE)"),
	INT("limits", "spool_memory_max", spool_memory_max, 67108864, 0,
	    INT64_C(17179869184), "octets of incoming messages held in "
	    "memory, all sessions; beyond it they spool to files"),
	INT("limits", "mime_depth_max", mime_depth_max, 32, 1, 256,
	    "MIME nesting depth"),
	INT("limits", "mime_parts_max", mime_parts_max, 1000, 1, 100000,
	    "MIME parts per message"),
	INT("limits", "attachments_max", attachments_max, 200, 1, 10000,
	    "attachments stored per message"),
	INT("limits", "header_count_max", header_count_max, 1000, 10, 100000,
	    "header fields per part"),
	INT("limits", "header_size_max", header_size_max, 65536, 1024,
	    16777216, "octets of one unfolded header field"),
	INT("limits", "header_block_max", header_block_max, 1048576, 4096,
	    67108864, "octets of one header block"),
	INT("limits", "filename_max", filename_max, 255, 32, 255,
	    "octets of a stored attachment name"),
	INT("limits", "error_limit", error_limit, 20, 1, 1000,
	    "protocol errors before disconnect"),
	INT("limits", "rcpt_reject_limit", rcpt_reject_limit, 100, 1, 100000,
	    "rejected recipients before disconnect"),
	INT("limits", "command_timeout", command_timeout, 300, 1, 3600,
	    "seconds to wait for a command (RFC 5321 4.5.3.2.7)"),
	INT("limits", "data_timeout", data_timeout, 180, 1, 3600,
	    "seconds to wait for a DATA block (RFC 5321 4.5.3.2.5)"),
	/*
	 * Issue 16, defect 4: a client trickling one byte every few seconds
	 * resets data_timeout forever.  DATA must also make progress over a
	 * window (sendmail's DATA_PROGRESS_TIMEOUT is 300 s; Postfix's
	 * smtpd_min_data_rate is 500 B/s) and end within data_time_max.
	 * Generous: 500 B/s is 4 kbit/s; 25 MiB in 1200 s is ~180 kbit/s.
	 */
	INT("limits", "data_rate_min", data_rate_min, 500, 0, 1073741824,
	    "octets/s a DATA must average over each data_rate_window, "
	    "else 421 4.4.2; 0 = no minimum"),
	INT("limits", "data_rate_window", data_rate_window, 300, 1, 3600,
	    "seconds over which data_rate_min is measured"),
	INT("limits", "data_time_max", data_time_max, 1200, 1, 86400,
	    "seconds from 354 to the final dot, else 421 4.4.2"),
	INT("limits", "session_timeout", session_timeout, 1800, 10, 86400,
	    "seconds a connection may last"),
	INT("limits", "connections_max", connections_max, 500, 1, 100000,
	    "concurrent connections"),
	INT("limits", "connections_per_ip_max", connections_per_ip_max, 50,
	    1, 100000, "concurrent connections per client address"),
	INT("limits", "message_time_max", message_time_max, 60, 1, 3600,
	    "seconds to parse and store one message"),
	INT("limits", "greet_pause_ms", greet_pause_ms, 0, 0, 30000,
	    "milliseconds before the greeting (early-talker check)"),
	STR("outbound", "transport", transport, "file", cf_check_name,
	    "plugin that delivers outbound mail (file, smtp)"),
	STR("outbound", "from_name", from_name, "", NULL,
	    "default From: display name"),
	STR("outbound", "from_addr", from_addr, "", cf_check_addr_or_empty,
	    "default From: address; \"\" = postdoc@<intake domain>"),
	STR("outbound", "bounce_domain", bounce_domain, "",
	    cf_check_domain_or_empty,
	    "VERP bounce addresses b-<token>@here; \"\" = intake domain"),
	STR("outbound", "template_dir", template_dir, "templates",
	    cf_check_nonempty, "templates/<name>/<locale>/*.mustache"),
	STR("outbound", "default_locale", default_locale, "en",
	    cf_check_name, "locale when neither asked nor the account's"),
	INT("outbound", "rate", rate, 10, 0, 100000,
	    "messages per second, all domains; 0 = unlimited"),
	INT("outbound", "domain_concurrency", domain_concurrency, 2, 1, 100,
	    "transport sessions at once per recipient domain"),
	INT("outbound", "delivery_threads", delivery_threads, 2, 1, 64,
	    "threads delivering outbound mail"),
	INT("outbound", "queue_threads", queue_threads, 4, 1, 64,
	    "threads signing and storing a campaign's messages at once"),
	INT("outbound", "batch_max", batch_max, 20, 1, 1000,
	    "messages per transport session"),
	INT("outbound", "retry_base", retry_base, 300, 1, 86400,
	    "seconds before the first retry; doubles each time"),
	INT("outbound", "retry_max_age", retry_max_age, 432000, 60, 2592000,
	    "seconds after which a deferred message is given up"),
	INT("outbound", "queue_interval_ms", queue_interval_ms, 1000, 50,
	    60000, "how often the queue runner looks for due mail"),
	STR("outbound", "reminder_days", reminder_days, "3,7", cf_check_days,
	    "days after an invitation to remind, \"\" = never"),
	INT("outbound", "suppression_days", suppression_days, 180, 1, 3650,
	    "days a hard-bounced address stays suppressed"),
	BOOL("outbound", "receipts", receipts, 1,
	    "acknowledge filed documents to a sender the policy vouches for"),
	/* Off unless configured (conf/postdoc.conf: 127.0.0.1:8025): a
	 * second `serve` on the same host must not fight for the port. */
	STR("web", "listen", web_listen, "", cf_check_listen,
	    "HTTP listener (unsubscribe, preferences) host:port, \"\" = off"),
	STR("web", "base_url", web_base_url, "http://127.0.0.1:8025",
	    cf_check_url, "public base of the links in mail (no trailing /)"),
	STR("web", "list_domain", web_list_domain, "",
	    cf_check_domain_or_empty,
	    "mailto:u-<token>@here; \"\" = intake domain"),
	INT("web", "unsub_key_id", web_unsub_kid, 1, 0, 255,
	    "current key var/keys/unsub-<id>.key; older ones stay valid"),
	INT("web", "bad_token_limit", web_bad_token_limit, 60, 1, 1000000,
	    "unknown tokens per client IP per minute, then 429"),
	/* Issue 16, defect 5: idle sockets from a few addresses filled
	 * libmicrohttpd's connection table; each listener now bounds them. */
	INT("web", "connections_per_ip_max", web_conn_per_ip, 16, 1, 10000,
	    "concurrent connections per client address"),
	INT("web", "idle_timeout", web_idle_timeout, 15, 1, 3600,
	    "seconds a connection may stay idle before it is closed"),
	/* Issue 15: behind a reverse proxy every reader has its address;
	 * X-Forwarded-For is believed only from these peers. */
	STR("web", "trusted_proxies", web_trusted_proxies, "",
	    cf_check_cidr_list,
	    "proxies (IPs/CIDRs) whose X-Forwarded-For names the client"),
	/* Retention (privacy.c): 0 keeps a class forever. */
	INT("privacy", "raw_messages_days", keep_raw_messages, 0, 0, 36500,
	    "days raw received messages (.eml) are kept, 0 = forever"),
	INT("privacy", "documents_days", keep_documents, 0, 0, 36500,
	    "days documents are kept after their dossier closed, 0 = forever"),
	INT("privacy", "outbound_bodies_days", keep_outbound_bodies, 0, 0,
	    36500, "days sent messages' bodies are kept, 0 = forever"),
	INT("privacy", "history_days", keep_history, 0, 0, 36500,
	    "days history events are kept, 0 = forever"),
	INT("privacy", "logs_days", keep_logs, 0, 0, 36500,
	    "days files in log_dir are kept, 0 = forever"),
	STR("privacy", "log_dir", log_dir, "", NULL,
	    "log files the retention purge ages out, \"\" = var_dir/log"),
	INT("privacy", "purge_interval", purge_interval, 3600, 60, 604800,
	    "seconds between the retention purges `serve` runs"),
	/* JSON API (api.c) and /metrics: off unless configured. */
	STR("api", "listen", api_listen, "", cf_check_listen,
	    "HTTP API listener (/api/v1, /metrics) host:port, \"\" = off"),
	INT("api", "page_max", api_page_max, 500, 1, 10000,
	    "largest page a list endpoint returns"),
	INT("api", "body_max", api_body_max, 1048576, 1024, 67108864,
	    "largest request body, octets"),
	BOOL("api", "metrics", api_metrics, 1,
	    "answer GET /metrics (Prometheus text) on the API listener"),
	/* Issue 16, defect 5: as for web above.  libmicrohttpd counts a
	 * closed connection against its address until a pool thread has
	 * cleaned it up, so a client doing short requests back to back
	 * holds more slots than it has sockets open: 8 threads of a CRM
	 * were reset at 16. */
	INT("api", "connections_per_ip_max", api_conn_per_ip, 48, 1, 10000,
	    "concurrent connections per client address"),
	INT("api", "idle_timeout", api_idle_timeout, 30, 1, 3600,
	    "seconds a connection may stay idle before it is closed"),
	/* Event delivery to plugins (evq.c): webhooks, storage sync. */
	INT("events", "retry_base", ev_retry_base, 30, 1, 86400,
	    "first retry delay, seconds; doubles up to retry_cap"),
	INT("events", "retry_cap", ev_retry_cap, 3600, 1, 604800,
	    "longest delay between two retries, seconds"),
	INT("events", "max_age", ev_max_age, 259200, 1, 31536000,
	    "an event still failing after this many seconds is given up"),
	INT("events", "interval_ms", ev_interval_ms, 1000, 10, 60000,
	    "how often the event runner looks for new events"),
	/* Sender authentication (trust/): one resolver for SPF, DKIM and
	 * DMARC; a query it cannot answer in time is temperror (451). */
	STR("dns", "server", dns_server, "", cf_check_dns_server,
	    "resolver for SPF/DKIM/DMARC: \"\" = /etc/resolv.conf, else a "
	    "forwarder IP or IP@port (\"127.0.0.1@5353\")"),
	INT("dns", "timeout_ms", dns_timeout_ms, 5000, 100, 60000,
	    "milliseconds one DNS query may take; then temperror"),
	BOOL("auth", "checks", auth_checks, 1,
	    "check SPF, DKIM and DMARC on every inbound message and record "
	    "the verdict; accounts' sender_auth decides what follows"),
};
#define CF_NPARAMS (sizeof(cf_params) / sizeof(cf_params[0]))

static const char *const cf_groups[] =
    { "server", "store", "intake", "limits", "outbound", "web", "privacy",
    "api", "events", "dns", "auth", NULL };

/* Error sink: every problem is appended, the buffer is never overrun. */
struct cf_errs {
	char *buf;
	size_t len, used;
	int count;
	const char *file;		/* default file name for messages */
	const char *incdir;		/* where @include names resolve */
};

/* Load state: where each parameter was set (0 = default). */
struct cf_load {
	struct pd_config *cfg;
	struct cf_errs *errs;
	const config_setting_t *set[CF_NPARAMS];
	int plugins_set;		/* the file has a plugins list */
};

/* Append to the error buffer; once it is full, everything else is cut. */
static void cf_append(struct cf_errs *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void cf_append(struct cf_errs *e, const char *fmt, ...)
{
	size_t room = e->len - e->used;
	va_list ap;
	int n;

	if (e->buf == NULL || e->len == 0 || e->used >= e->len - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(e->buf + e->used, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		e->used = e->len - 1;	/* truncated, still terminated */
	else
		e->used += (size_t)n;
}

/* libconfig names an @include'd file as written: show where it is. */
static int cf_in_incdir(const struct cf_errs *e, const char *file)
{
	return file[0] != '/' && strcmp(file, e->file) != 0 &&
	    e->incdir != NULL;
}

static void cf_verr(struct cf_errs *e, const char *file, int line,
    const char *fmt, va_list ap)
{
	char msg[512];

	e->count++;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (file == NULL)
		file = e->file;
	if (cf_in_incdir(e, file))
		cf_append(e, "%s/", e->incdir);
	if (line > 0)
		cf_append(e, "%s:%d: %s\n", file, line, msg);
	else
		cf_append(e, "%s: %s\n", file, msg);
}

static void cf_err(struct cf_errs *e, const char *file, int line,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void cf_err(struct cf_errs *e, const char *file, int line,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cf_verr(e, file, line, fmt, ap);
	va_end(ap);
}

/* Report a problem at a setting's own file:line (may be an @include). */
static void cf_serr(struct cf_errs *e, const config_setting_t *s,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void cf_serr(struct cf_errs *e, const config_setting_t *s,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cf_verr(e, config_setting_source_file(s),
	    (int)config_setting_source_line(s), fmt, ap);
	va_end(ap);
}

/* Out of memory while configuring is not survivable: fail loudly. */
static char *cf_strdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

/* Copy v for an error message: printable ASCII only, bounded. */
static const char *cf_quote(char *buf, size_t len, const char *v)
{
	size_t i;

	for (i = 0; v[i] != '\0' && i + 4 < len; i++)
		buf[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
	if (v[i] != '\0' && i >= 3) {
		memcpy(buf + i - 3, "...", 3);
	}
	buf[i] = '\0';
	return buf;
}

static const char *cf_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:	return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:	return "an integer";
	case CONFIG_TYPE_FLOAT:	return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL:	return "a boolean";
	case CONFIG_TYPE_ARRAY:	return "an array";
	case CONFIG_TYPE_LIST:	return "a list";
	default:		return "nothing";
	}
}

static int cf_type_ok(enum cf_type want, int type)
{
	switch (want) {
	case CF_STR:	return type == CONFIG_TYPE_STRING;
	case CF_INT:	return type == CONFIG_TYPE_INT ||
			    type == CONFIG_TYPE_INT64;
	case CF_BOOL:	return type == CONFIG_TYPE_BOOL;
	}
	return 0;
}

static const char *cf_want_name(enum cf_type want)
{
	return want == CF_STR ? "a string" :
	    want == CF_INT ? "an integer" : "a boolean";
}

/* Port 1..65535 as plain decimal digits, nothing else. */
static int cf_port_ok(const char *p)
{
	long port = 0;

	if (*p == '\0' || strlen(p) > 5)
		return 0;
	for (; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return 0;
		port = port * 10 + (*p - '0');
	}
	return port >= 1 && port <= 65535;
}

/* "host:port", "[v6]:port" or "" (listener disabled). */
static const char *cf_check_listen(const char *v)
{
	const char *colon, *p;

	if (*v == '\0')
		return NULL;
	if (*v == '[') {
		colon = strchr(v, ']');
		if (colon == NULL || colon == v + 1 || colon[1] != ':')
			return "is not host:port or [ipv6]:port";
		colon++;
	} else {
		colon = strchr(v, ':');
		if (colon == NULL || colon == v || strchr(colon + 1, ':'))
			return "is not host:port (IPv6 as [addr]:port)";
	}
	for (p = v; p < colon; p++)
		if (!isgraph((unsigned char)*p))
			return "has a space or control character in the host";
	if (!cf_port_ok(colon + 1))
		return "needs a port 1..65535";
	return NULL;
}

/* "" or an IP address, optionally @port: what ub_ctx_set_fwd takes. */
static const char *cf_check_dns_server(const char *v)
{
	const char *at = strchr(v, '@');
	char ip[64];
	unsigned char buf[16];
	size_t n = at != NULL ? (size_t)(at - v) : strlen(v);

	if (*v == '\0')
		return NULL;
	if (n == 0 || n >= sizeof(ip))
		return "is not an IP address or IP@port";
	memcpy(ip, v, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET, ip, buf) != 1 &&
	    inet_pton(AF_INET6, ip, buf) != 1)
		return "is not an IP address or IP@port (a resolver's "
		    "address, not a name)";
	if (at != NULL && !cf_port_ok(at + 1))
		return "needs a port 1..65535 after @";
	return NULL;
}

/* Dot-separated labels of [A-Za-z0-9-] (RFC 5321 4.1.2 Domain). */
static const char *cf_check_domain(const char *v)
{
	size_t label = 0, total = 0;

	for (; *v != '\0'; v++, total++) {
		if (*v == '.') {
			if (label == 0)
				return "has an empty label";
			label = 0;
		} else if (isalnum((unsigned char)*v) || *v == '-') {
			if (++label > 63)
				return "has a label over 63 octets";
		} else {
			return "is not a domain name ([A-Za-z0-9-] labels)";
		}
	}
	if (total == 0 || label == 0)
		return "is not a domain name (empty or trailing dot)";
	if (total > 255)
		return "is longer than 255 octets";
	return NULL;
}

static const char *cf_check_nonempty(const char *v)
{
	return *v == '\0' ? "must not be empty" : NULL;
}

static const char *cf_check_domain_or_empty(const char *v)
{
	return v[0] == '\0' ? NULL : cf_check_domain(v);
}

/* One "ip" or "ip/len" of a trusted-proxy list against ip (or NULL). */
static int
cf_cidr_match(const char *ent, size_t n, const char *ip)
{
	unsigned char net[16], a[16];
	char buf[64], *slash, *end;
	int fam, bits, full, i;
	long len;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, ent, n);
	buf[n] = '\0';
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	fam = strchr(buf, ':') != NULL ? AF_INET6 : AF_INET;
	bits = fam == AF_INET6 ? 128 : 32;
	if (inet_pton(fam, buf, net) != 1)
		return -1;
	len = bits;
	if (slash != NULL) {
		errno = 0;
		len = strtol(slash + 1, &end, 10);
		if (errno != 0 || end == slash + 1 || *end != '\0' || len < 0 ||
		    len > bits)
			return -1;
	}
	if (ip == NULL || inet_pton(fam, ip, a) != 1)
		return 0;
	full = (int)len / 8;
	for (i = 0; i < full; i++)
		if (a[i] != net[i])
			return 0;
	if (len % 8 != 0 && ((a[full] ^ net[full]) &
	    (0xff << (8 - len % 8)) & 0xff) != 0)
		return 0;
	return 1;
}

int
config_addr_in_list(const char *list, const char *ip)
{
	const char *p = list != NULL ? list : "";
	int found = 0, r;
	size_t n;

	for (;;) {
		p += strspn(p, " ,\t");
		if (*p == '\0')
			return found;
		n = strcspn(p, " ,\t");
		if ((r = cf_cidr_match(p, n, ip)) < 0)
			return -1;
		found = found || r == 1;
		p += n;
	}
}

static const char *cf_check_cidr_list(const char *v)
{
	return config_addr_in_list(v, NULL) < 0 ?
	    "is not a list of IP addresses or CIDRs (\"10.0.0.1 fd00::/8\")" :
	    NULL;
}

/* A plain local@domain, ASCII; the message builder re-checks it. */
static const char *cf_check_addr_or_empty(const char *v)
{
	const char *at = strrchr(v, '@');
	size_t i;

	if (v[0] == '\0')
		return NULL;
	if (at == NULL || at == v || at - v > 64)
		return "is not an address local@domain";
	for (i = 0; v + i < at; i++)
		if (!isalnum((unsigned char)v[i]) &&
		    strchr("!#$%&'*+-/=?^_`{|}~.", v[i]) == NULL)
			return "has a character not allowed in a local part";
	return cf_check_domain(at + 1);
}

/* "3,7": increasing days, each 1..365; "" for none. */
static const char *cf_check_days(const char *v)
{
	long prev = 0, d;
	char *end;

	while (*v != '\0') {
		if (!isdigit((unsigned char)*v))
			return "is not a comma-separated list of days";
		d = strtol(v, &end, 10);
		if (d < 1 || d > 365 || d <= prev)
			return "needs increasing days between 1 and 365";
		prev = d;
		v = end;
		if (*v == ',')
			v++;
		else if (*v != '\0')
			return "is not a comma-separated list of days";
	}
	return NULL;
}

/* Names that become file or directory names: [a-z0-9_-]{1,32}. */
static const char *cf_check_name(const char *v)
{
	size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_-");

	return n > 0 && n <= 32 && v[n] == '\0' ? NULL :
	    "is not [a-z0-9_-]{1,32}";
}

/* A base URL goes into headers and HTML: http(s)://, then printable
 * ASCII without quotes, spaces, '<' '>' or a trailing '/'. */
static const char *cf_check_url(const char *v)
{
	size_t i, n = strlen(v);

	if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0)
		return "must start with https:// or http://";
	for (i = 0; i < n; i++)
		if (v[i] <= 0x20 || v[i] >= 0x7f || strchr("\"'<>\\`", v[i]))
			return "contains a character not allowed in a URL";
	if (n > 200 || v[n - 1] == '/')
		return "must be at most 200 characters, without a trailing /";
	return NULL;
}

static char **cf_str_field(struct pd_config *cfg, const struct cf_param *p)
{
	return (char **)(void *)((char *)cfg + p->off);
}

static int64_t *cf_int_field(struct pd_config *cfg, const struct cf_param *p)
{
	return (int64_t *)(void *)((char *)cfg + p->off);
}

static void cf_set_defaults(struct pd_config *cfg)
{
	size_t i;

	for (i = 0; i < CF_NPARAMS; i++) {
		const struct cf_param *p = &cf_params[i];

		if (p->type == CF_STR)
			*cf_str_field(cfg, p) = cf_strdup(p->def_s);
		else
			*cf_int_field(cfg, p) = p->def_i;
	}
}

static const struct cf_param *cf_find(const char *group, const char *key,
    size_t *idx_r)
{
	size_t i;

	for (i = 0; i < CF_NPARAMS; i++) {
		if (strcmp(cf_params[i].group, group) == 0 &&
		    strcmp(cf_params[i].key, key) == 0) {
			*idx_r = i;
			return &cf_params[i];
		}
	}
	return NULL;
}

/* Check a string against the param's enum or syntax check. */
static int cf_check_str(struct cf_errs *e, const config_setting_t *s,
    const struct cf_param *p, const char *v)
{
	const char *why = NULL;
	char q[80], list[128] = "is not one of ";
	size_t i;

	if (p->choices != NULL) {
		for (i = 0; p->choices[i] != NULL; i++) {
			if (strcmp(p->choices[i], v) == 0)
				return 0;
			snprintf(list + strlen(list), sizeof(list) -
			    strlen(list), "%s%s", i ? ", " : "", p->choices[i]);
		}
		why = list;
	} else if (p->check != NULL) {
		why = p->check(v);
	}
	if (why == NULL)
		return 0;
	cf_serr(e, s, "%s.%s = \"%s\" %s", p->group, p->key,
	    cf_quote(q, sizeof(q), v), why);
	return -1;
}

/*
 * libconfig 1.5 reads an integer without the L suffix with atoi(), so
 * 4294968320 silently becomes 1024.  Re-read the literal from the source
 * line and refuse a value that did not survive, rather than run with a
 * limit nobody wrote.  Returns 0 if it could not tell (e.g. no file).
 */
static int cf_int_wrapped(const config_setting_t *s, long long *lit_r)
{
	const char *file = config_setting_source_file(s), *p;
	unsigned line = config_setting_source_line(s), n = 0;
	char buf[1024], *end;
	size_t klen = strlen(config_setting_name(s));
	FILE *f;

	if (config_setting_type(s) != CONFIG_TYPE_INT || file == NULL ||
	    (f = fopen(file, "r")) == NULL)
		return 0;
	while (fgets(buf, sizeof(buf), f) != NULL && ++n < line)
		;
	fclose(f);
	if (n != line)
		return 0;
	for (p = buf; (p = strstr(p, config_setting_name(s))) != NULL; p++) {
		const char *q = p + klen + strspn(p + klen, " \t");

		if ((*q != '=' && *q != ':') || (p > buf &&
		    (isalnum((unsigned char)p[-1]) || p[-1] == '_')))
			continue;
		q += 1 + strspn(q + 1, " \t");
		errno = 0;
		*lit_r = strtoll(q, &end, (q[0] == '0' && (q[1] == 'x' ||
		    q[1] == 'X')) || ((q[0] == '-' || q[0] == '+') &&
		    q[1] == '0' && (q[2] == 'x' || q[2] == 'X')) ? 16 : 10);
		if (end == q)
			return 0;
		return errno == ERANGE ||
		    *lit_r != (long long)config_setting_get_int(s);
	}
	return 0;
}

/* Store one setting into cfg if its type, bounds and syntax are right. */
static void cf_apply(struct cf_load *ld, const config_setting_t *s,
    const struct cf_param *p)
{
	int type = config_setting_type(s);
	long long lit;
	int64_t v;

	if (!cf_type_ok(p->type, type)) {
		cf_serr(ld->errs, s, "%s.%s: expected %s, got %s", p->group,
		    p->key, cf_want_name(p->type), cf_type_name(type));
		return;
	}
	if (p->type == CF_STR) {
		const char *sv = config_setting_get_string(s);

		if (cf_check_str(ld->errs, s, p, sv) < 0)
			return;
		free(*cf_str_field(ld->cfg, p));
		*cf_str_field(ld->cfg, p) = cf_strdup(sv);
		return;
	}
	if (p->type == CF_BOOL) {
		*cf_int_field(ld->cfg, p) = config_setting_get_bool(s) != 0;
		return;
	}
	if (cf_int_wrapped(s, &lit)) {
		cf_serr(ld->errs, s, "%s.%s = %lld does not fit in 32 bits; "
		    "write it as %lldL", p->group, p->key, lit, lit);
		return;
	}
	v = config_setting_get_int64(s);
	if (v < p->min || v > p->max) {
		cf_serr(ld->errs, s, "%s.%s = %" PRId64 " is out of range %"
		    PRId64 "..%" PRId64, p->group, p->key, v, p->min, p->max);
		return;
	}
	*cf_int_field(ld->cfg, p) = v;
}

/* privacy.holds = ( { account = "ACME"; years = 10; class = "all"; } ) */
static void cf_load_hold(struct cf_load *ld, const config_setting_t *ent,
    int i)
{
	static const char *const classes[] = { "all", "dossiers", "outbound",
	    "consent", NULL };
	struct pd_hold *h = &ld->cfg->holds[ld->cfg->hold_count];
	const char *acct = NULL, *cls = "all";
	int years = 0, k;

	if (!config_setting_is_group(ent) ||
	    !config_setting_lookup_string(ent, "account", &acct) ||
	    !config_setting_lookup_int(ent, "years", &years)) {
		cf_serr(ld->errs, ent, "privacy.holds[%d]: expected { account = "
		    "\"NAME\"; years = N; [class = \"...\";] }", i);
		return;
	}
	config_setting_lookup_string(ent, "class", &cls);
	for (k = 0; classes[k] != NULL && strcmp(classes[k], cls) != 0; k++)
		;
	if (classes[k] == NULL || years < 1 || years > 100 ||
	    config_setting_length(ent) > 3) {
		cf_serr(ld->errs, ent, "privacy.holds[%d]: years 1..100, class "
		    "all|dossiers|outbound|consent, no other keys", i);
		return;
	}
	h->account = cf_strdup(acct);
	h->cls = cf_strdup(cls);
	h->years = years;
	ld->cfg->hold_count++;
}

static void cf_load_holds(struct cf_load *ld, const config_setting_t *l)
{
	int i, n = config_setting_length(l);

	if (!config_setting_is_list(l)) {
		cf_serr(ld->errs, l, "privacy.holds: expected a list ( {...} )");
		return;
	}
	for (i = 0; i < n && ld->cfg->hold_count < PD_MAX_HOLDS; i++)
		cf_load_hold(ld, config_setting_get_elem(l, i), i);
}

static void cf_load_group(struct cf_load *ld, const config_setting_t *g)
{
	const char *gname = config_setting_name(g);
	const struct cf_param *p;
	int i, n = config_setting_length(g);
	size_t idx;

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, i);
		const char *key = config_setting_name(s);

		if (strcmp(gname, "privacy") == 0 &&
		    strcmp(key, "holds") == 0) {
			cf_load_holds(ld, s);
			continue;
		}
		p = cf_find(gname, key, &idx);
		if (p == NULL) {
			cf_serr(ld->errs, s, "unknown key '%s.%s'", gname, key);
			continue;
		}
		ld->set[idx] = s;
		cf_apply(ld, s, p);
	}
}

/* A plugin name becomes a file name: keep it to [a-z0-9_]{1,64}. */
static int cf_plugin_name_ok(const char *name)
{
	size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_");

	return n > 0 && n <= 64 && name[n] == '\0';
}

/* Fetch plugins[i].key as a string, reporting a wrong type. */
static const char *cf_plugin_str(struct cf_errs *e,
    const config_setting_t *s, int i)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		cf_serr(e, s, "plugins[%d].%s: expected a string, got %s", i,
		    config_setting_name(s), cf_type_name(config_setting_type(s)));
		return NULL;
	}
	return config_setting_get_string(s);
}

/* Walk one plugin entry's keys; NULL name means "missing". */
static void cf_plugin_keys(struct cf_errs *e, const config_setting_t *ent,
    int i, const char **name_r, const char **path_r,
    const config_setting_t **settings_r)
{
	int k, n = config_setting_length(ent);

	for (k = 0; k < n; k++) {
		const config_setting_t *s = config_setting_get_elem(ent, k);
		const char *key = config_setting_name(s);

		if (strcmp(key, "name") == 0)
			*name_r = cf_plugin_str(e, s, i);
		else if (strcmp(key, "path") == 0)
			*path_r = cf_plugin_str(e, s, i);
		else if (strcmp(key, "settings") != 0)
			cf_serr(e, s, "unknown key 'plugins[%d].%s'", i, key);
		else if (config_setting_is_group(s))
			*settings_r = s; /* its contents are the plugin's */
		else
			cf_serr(e, s, "plugins[%d].settings: expected a group, "
			    "got %s", i, cf_type_name(config_setting_type(s)));
	}
}

static int cf_plugin_dup(const struct pd_config *cfg, const char *name)
{
	int i;

	for (i = 0; i < cfg->plugin_count; i++)
		if (strcmp(cfg->plugins[i].name, name) == 0)
			return 1;
	return 0;
}

/*
 * "file:line" of a setting, as errors print it: a plugin's load and
 * init run after config_load (plugin_host.c) and name its entry so.
 */
static char *cf_where_dup(const struct cf_errs *e, const config_setting_t *s)
{
	const char *file = config_setting_source_file(s);
	char buf[4200];

	if (file == NULL)
		file = e->file;
	snprintf(buf, sizeof(buf), "%s%s%s:%u",
	    cf_in_incdir(e, file) ? e->incdir : "",
	    cf_in_incdir(e, file) ? "/" : "", file,
	    config_setting_source_line(s));
	return cf_strdup(buf);
}

static void cf_load_plugin(struct cf_load *ld, const config_setting_t *ent,
    int i)
{
	const char *name = NULL, *path = NULL;
	const config_setting_t *settings = NULL;
	struct pd_plugin_conf *pc;
	char q[80];

	if (!config_setting_is_group(ent)) {
		cf_serr(ld->errs, ent, "plugins[%d]: expected a group, got %s",
		    i, cf_type_name(config_setting_type(ent)));
		return;
	}
	cf_plugin_keys(ld->errs, ent, i, &name, &path, &settings);
	if (config_setting_get_member(ent, "name") == NULL)
		cf_serr(ld->errs, ent, "plugins[%d]: 'name' is required", i);
	if (name != NULL && !cf_plugin_name_ok(name)) {
		cf_serr(ld->errs, ent, "plugins[%d].name = \"%s\" is not "
		    "[a-z0-9_]{1,64}", i, cf_quote(q, sizeof(q), name));
		name = NULL;
	}
	if (path != NULL && *path == '\0') {
		cf_serr(ld->errs, ent, "plugins[%d].path must not be empty", i);
		name = NULL;
	}
	if (name != NULL && cf_plugin_dup(ld->cfg, name)) {
		cf_serr(ld->errs, ent, "plugins[%d]: plugin '%s' is listed "
		    "twice", i, name);
		name = NULL;
	}
	if (name == NULL)
		return;
	pc = &ld->cfg->plugins[ld->cfg->plugin_count++];
	pc->name = cf_strdup(name);
	pc->path = path != NULL ? cf_strdup(path) : NULL;
	pc->settings = settings;
	pc->where = cf_where_dup(ld->errs, ent);
}

static void cf_load_plugins(struct cf_load *ld, const config_setting_t *l)
{
	int i, n;

	if (!config_setting_is_list(l)) {
		cf_serr(ld->errs, l, "plugins: expected a list ( {...}, ... ), "
		    "got %s", cf_type_name(config_setting_type(l)));
		return;
	}
	n = config_setting_length(l);
	if (n > PD_MAX_PLUGINS) {
		cf_serr(ld->errs, l, "plugins: %d entries, at most %d allowed",
		    n, PD_MAX_PLUGINS);
		n = PD_MAX_PLUGINS;
	}
	for (i = 0; i < n; i++)
		cf_load_plugin(ld, config_setting_get_elem(l, i), i);
}

/* accounts = ( { name = "ACME"; legal_name = "..."; ... } ): outbound
 * identity per account; every key is an optional string but name, and
 * the booleans notify_completed and adult_required (kept apart). */
static const char *const cf_account_keys[] = { "name", "legal_name",
    "legal_address", "locale", "from_name", "from_addr", "sender_auth",
    "auth_fail", "refused_file", "privacy_url", NULL };

static char **cf_account_field(struct pd_account_conf *a, int k)
{
	char **f[] = { &a->name, &a->legal_name, &a->legal_address,
	    &a->locale, &a->from_name, &a->from_addr, &a->sender_auth,
	    &a->auth_fail, &a->refused_file, &a->privacy_url };

	return f[k];
}

/* The inbound-trust choices of an account (issue 16): NULL if v is one
 * of them, else what to say. */
static const char *cf_check_account_choice(int k, const char *v)
{
	static const char *const choices[][4] = {
		[6] = { "none", "spf-or-dkim", "dmarc", NULL },
		[7] = { "refuse", "mark", NULL },
		[8] = { "reject-message", "drop-file", NULL },
	};
	int i;

	for (i = 0; choices[k][i] != NULL; i++)
		if (strcmp(v, choices[k][i]) == 0)
			return NULL;
	return k == 6 ? "must be \"none\", \"spf-or-dkim\" or \"dmarc\"" :
	    k == 7 ? "must be \"refuse\" or \"mark\"" :
	    "must be \"reject-message\" or \"drop-file\"";
}

/* The boolean keys of an account (notify_completed, adult_required):
 * 1 if s is one of them (loaded or reported), 0 if not. */
static int cf_account_bool(struct cf_load *ld, const config_setting_t *s,
    int i, struct pd_account_conf *a)
{
	const char *name = config_setting_name(s);
	int *v = strcmp(name, "notify_completed") == 0 ? &a->notify_completed :
	    strcmp(name, "adult_required") == 0 ? &a->adult_required : NULL;

	if (v == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		cf_serr(ld->errs, s, "accounts[%d].%s: expected true or false,"
		    " got %s", i, name, cf_type_name(config_setting_type(s)));
	else
		*v = config_setting_get_bool(s);
	return 1;
}

static void cf_load_account(struct cf_load *ld, const config_setting_t *ent,
    int i)
{
	struct pd_account_conf *a = &ld->cfg->accounts[ld->cfg->account_count];
	int k, j, n = config_setting_length(ent);
	const char *why;

	if (!config_setting_is_group(ent)) {
		cf_serr(ld->errs, ent, "accounts[%d]: expected a group", i);
		return;
	}
	a->adult_required = 1;
	for (j = 0; j < n; j++) {
		const config_setting_t *s = config_setting_get_elem(ent, j);

		if (cf_account_bool(ld, s, i, a))
			continue;
		for (k = 0; cf_account_keys[k] != NULL; k++)
			if (strcmp(config_setting_name(s), cf_account_keys[k])
			    == 0)
				break;
		if (cf_account_keys[k] == NULL)
			cf_serr(ld->errs, s, "unknown key 'accounts[%d].%s'", i,
			    config_setting_name(s));
		else if (config_setting_type(s) != CONFIG_TYPE_STRING)
			cf_serr(ld->errs, s, "accounts[%d].%s: expected a "
			    "string, got %s", i, cf_account_keys[k],
			    cf_type_name(config_setting_type(s)));
		else if ((k == 3 && (why = cf_check_name(
		    config_setting_get_string(s))) != NULL) ||
		    (k == 5 && (why = cf_check_addr_or_empty(
		    config_setting_get_string(s))) != NULL) ||
		    (k >= 6 && k <= 8 && (why = cf_check_account_choice(k,
		    config_setting_get_string(s))) != NULL))
			cf_serr(ld->errs, s, "accounts[%d].%s %s", i,
			    cf_account_keys[k], why);
		else
			*cf_account_field(a, k) =
			    cf_strdup(config_setting_get_string(s));
	}
	if (a->name == NULL || a->name[0] == '\0') {
		cf_serr(ld->errs, ent, "accounts[%d]: 'name' is required", i);
		for (k = 0; cf_account_keys[k] != NULL; k++) {
			free(*cf_account_field(a, k));
			*cf_account_field(a, k) = NULL;
		}
		a->notify_completed = 0;
		a->adult_required = 0;
		return;
	}
	ld->cfg->account_count++;
}

static void cf_load_accounts(struct cf_load *ld, const config_setting_t *l)
{
	int i, n;

	if (!config_setting_is_list(l)) {
		cf_serr(ld->errs, l, "accounts: expected a list ( {...}, ... ), "
		    "got %s", cf_type_name(config_setting_type(l)));
		return;
	}
	n = config_setting_length(l);
	if (n > PD_MAX_ACCOUNTS) {
		cf_serr(ld->errs, l, "accounts: %d entries, at most %d allowed",
		    n, PD_MAX_ACCOUNTS);
		n = PD_MAX_ACCOUNTS;
	}
	for (i = 0; i < n; i++)
		cf_load_account(ld, config_setting_get_elem(l, i), i);
}

const struct pd_account_conf *config_account(const struct pd_config *cfg,
    const char *name)
{
	int i;

	for (i = 0; name != NULL && i < cfg->account_count; i++)
		if (strcmp(cfg->accounts[i].name, name) == 0)
			return &cfg->accounts[i];
	return NULL;
}

static int cf_known_group(const char *name)
{
	int i;

	for (i = 0; cf_groups[i] != NULL; i++)
		if (strcmp(cf_groups[i], name) == 0)
			return 1;
	return 0;
}

static void cf_load_root(struct cf_load *ld, const config_setting_t *root)
{
	int i, n = config_setting_length(root);

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(root, i);
		const char *name = config_setting_name(s);

		if (strcmp(name, "plugins") == 0) {
			ld->plugins_set = 1;
			cf_load_plugins(ld, s);
		} else if (strcmp(name, "accounts") == 0) {
			cf_load_accounts(ld, s);
		} else if (!cf_known_group(name)) {
			cf_serr(ld->errs, s, "unknown group '%s'", name);
		} else if (!config_setting_is_group(s)) {
			cf_serr(ld->errs, s, "%s: expected a group, got %s",
			    name, cf_type_name(config_setting_type(s)));
		} else {
			cf_load_group(ld, s);
		}
	}
}

/* Where a parameter came from, for cross-checks: its line or its group's. */
static const config_setting_t *cf_where(const struct cf_load *ld,
    const char *group, const char *key)
{
	size_t idx;

	if (cf_find(group, key, &idx) == NULL)
		return NULL;
	return ld->set[idx];
}

/* STARTTLS needs both halves (RFC 3207); one alone is a typo. */
static void cf_check_tls(struct cf_load *ld)
{
	const struct pd_config *cfg = ld->cfg;
	const config_setting_t *s;
	int cert = cfg->tls_cert[0] != '\0', key = cfg->tls_key[0] != '\0';

	if (cert == key)
		return;
	s = cf_where(ld, "server", cert ? "tls_cert" : "tls_key");
	cf_err(ld->errs, s ? config_setting_source_file(s) : NULL,
	    s ? (int)config_setting_source_line(s) : 0,
	    "server.%s is set but server.%s is not",
	    cert ? "tls_cert" : "tls_key", cert ? "tls_key" : "tls_cert");
}

/* The directory above path ("." for a bare name); -1 if too long. */
static int cf_parent_dir(const char *path, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s", path);
	char *slash;

	if (n >= len)
		return -1;
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	if ((slash = strrchr(buf, '/')) == NULL)
		snprintf(buf, len, ".");
	else
		slash[slash == buf ? 1 : 0] = '\0';
	return 0;
}

/*
 * serve and the commands create var_dir when it is missing (a first
 * start), never the directories above it: a mistyped or unmounted
 * parent would otherwise become an empty store that answers 550 for
 * every dossier.  The parent must be there (a stat, no side effect).
 */
static void cf_check_var_dir(struct cf_load *ld)
{
	const config_setting_t *s = cf_where(ld, "store", "var_dir");
	char parent[4096], q[256], qp[256];
	const char *why = NULL;
	struct stat sb;

	if (cf_parent_dir(ld->cfg->var_dir, parent, sizeof(parent)) != 0)
		why = "is too long";	/* parent holds its first 4095 bytes */
	else if (stat(parent, &sb) != 0)
		why = errno == ENOENT ? "does not exist" : strerror(errno);
	else if (!S_ISDIR(sb.st_mode))
		why = "is not a directory";
	if (why == NULL)
		return;
	cf_err(ld->errs, s ? config_setting_source_file(s) : NULL,
	    s ? (int)config_setting_source_line(s) : 0,
	    "store.var_dir = \"%s\": its parent %s %s (postdoc creates "
	    "var_dir, never the directories above it)",
	    cf_quote(q, sizeof(q), ld->cfg->var_dir),
	    cf_quote(qp, sizeof(qp), parent), why);
}

/* Replace an empty string parameter by a value made from others. */
static void cf_derive(char **field, const char *a, const char *b)
{
	size_t n;

	if ((*field)[0] != '\0')
		return;
	n = strlen(a) + strlen(b) + 1;
	free(*field);
	*field = malloc(n);
	if (*field == NULL)
		abort();
	snprintf(*field, n, "%s%s", a, b);
}

/*
 * Without a plugins list the embedded defaults deliver: the file
 * transport (no relay to set up) and DKIM signing with a key made on
 * first use.
 */
static void cf_default_plugins(struct cf_load *ld)
{
	static const char *const names[] = { "file", "dkim" };
	size_t i;

	if (ld->plugins_set)
		return;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct pd_plugin_conf *pc =
		    &ld->cfg->plugins[ld->cfg->plugin_count++];

		pc->name = cf_strdup(names[i]);
		pc->where = cf_strdup(ld->errs->file);	/* no line: implied */
	}
}

static void cf_finish(struct cf_load *ld)
{
	struct pd_config *cfg = ld->cfg;

	cf_derive(&cfg->db_path, cfg->var_dir, "/postdoc.db");
	cf_derive(&cfg->log_file, cfg->var_dir, "/log/postdoc.log");
	cf_derive(&cfg->bounce_domain, cfg->intake_domain, "");
	cf_derive(&cfg->from_addr, "postdoc@", cfg->intake_domain);
	cf_default_plugins(ld);
}

/* @include resolves against the include dir: make it the file's own. */
static void cf_set_include_dir(config_t *lc, const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;

	if (slash == NULL) {
		config_set_include_dir(lc, ".");
		return;
	}
	dir = slash == path ? cf_strdup("/") : strndup(path, slash - path);
	if (dir == NULL)
		abort();
	config_set_include_dir(lc, dir);	/* libconfig copies it */
	free(dir);
}

static int cf_read(struct pd_config *cfg, const char *path,
    struct cf_errs *e)
{
	const char *file;

	cf_set_include_dir(&cfg->lc, path);
	e->incdir = config_get_include_dir(&cfg->lc);
	if (config_read_file(&cfg->lc, path) == CONFIG_TRUE)
		return 0;
	if (config_error_type(&cfg->lc) == CONFIG_ERR_FILE_IO &&
	    config_error_line(&cfg->lc) == 0) {
		cf_err(e, path, 0, "cannot read: %s", strerror(errno));
		return -1;
	}
	file = config_error_file(&cfg->lc);
	cf_err(e, file != NULL ? file : path, config_error_line(&cfg->lc),
	    "%s", config_error_text(&cfg->lc));
	return -1;
}

int config_load(const char *path, struct pd_config **cfg_r,
    char *err, size_t errlen)
{
	struct cf_errs errs = { err, errlen, 0, 0, path ? path : "(defaults)",
	    NULL };
	struct cf_load ld;
	struct pd_config *cfg;

	*cfg_r = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		abort();
	config_init(&cfg->lc);
	cfg->lc_loaded = 1;
	cf_set_defaults(cfg);
	memset(&ld, 0, sizeof(ld));
	ld.cfg = cfg;
	ld.errs = &errs;
	if (path != NULL) {
		cfg->file = cf_strdup(path);
		if (cf_read(cfg, path, &errs) == 0)
			cf_load_root(&ld, config_root_setting(&cfg->lc));
	}
	cf_check_tls(&ld);
	if (errs.count == 0)
		cf_check_var_dir(&ld);
	if (errs.count > 0) {
		config_free(&cfg);
		return -1;
	}
	cf_finish(&ld);
	*cfg_r = cfg;
	return 0;
}

void config_free(struct pd_config **cfgp)
{
	struct pd_config *cfg = *cfgp;
	size_t i;
	int k;

	if (cfg == NULL)
		return;
	for (i = 0; i < CF_NPARAMS; i++)
		if (cf_params[i].type == CF_STR)
			free(*cf_str_field(cfg, &cf_params[i]));
	for (k = 0; k < cfg->plugin_count; k++) {
		free(cfg->plugins[k].name);
		free(cfg->plugins[k].path);
		free(cfg->plugins[k].where);
	}
	for (k = 0; k < cfg->account_count; k++) {
		int f;

		for (f = 0; cf_account_keys[f] != NULL; f++)
			free(*cf_account_field(&cfg->accounts[k], f));
	}
	for (k = 0; k < cfg->hold_count; k++) {
		free(cfg->holds[k].account);
		free(cfg->holds[k].cls);
	}
	if (cfg->lc_loaded)
		config_destroy(&cfg->lc);
	free(cfg->file);
	free(cfg);
	*cfgp = NULL;
}

/* Strings are written as libconfig would read them back. */
static void cf_dump_esc(FILE *out, const char *v)
{
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\x%02x", c);
		else
			fputc(c, out);
	}
}

static void cf_dump_str(FILE *out, const char *name, const char *v)
{
	fprintf(out, "%s = \"", name);
	cf_dump_esc(out, v);
	fputs("\"\n", out);
}

void config_dump(const struct pd_config *cfg, FILE *out)
{
	struct pd_config *c = (struct pd_config *)cfg; /* field access only */
	char name[96];
	size_t i;
	int k;

	for (i = 0; i < CF_NPARAMS; i++) {
		const struct cf_param *p = &cf_params[i];

		snprintf(name, sizeof(name), "%s.%s", p->group, p->key);
		if (p->type == CF_STR)
			cf_dump_str(out, name, *cf_str_field(c, p));
		else if (p->type == CF_BOOL)
			fprintf(out, "%s = %s\n", name,
			    *cf_int_field(c, p) ? "true" : "false");
		else
			fprintf(out, "%s = %" PRId64 "\n", name,
			    *cf_int_field(c, p));
	}
	for (k = 0; k < cfg->plugin_count; k++) {
		const struct pd_plugin_conf *pc = &cfg->plugins[k];

		snprintf(name, sizeof(name), "plugins[%d].name", k);
		cf_dump_str(out, name, pc->name);
		snprintf(name, sizeof(name), "plugins[%d].path", k);
		if (pc->path != NULL) {
			cf_dump_str(out, name, pc->path);
		} else {
			fprintf(out, "%s = \"", name);
			cf_dump_esc(out, cfg->plugin_dir);
			fprintf(out, "/%s.so\"\n", pc->name);
		}
		fprintf(out, "plugins[%d].settings = %s\n", k,
		    pc->settings != NULL ? "{ ... }" : "none");
	}
	for (k = 0; k < cfg->account_count; k++) {
		int f;

		for (f = 0; cf_account_keys[f] != NULL; f++) {
			const char *v = *cf_account_field(&c->accounts[k], f);

			snprintf(name, sizeof(name), "accounts[%d].%s", k,
			    cf_account_keys[f]);
			if (v != NULL)
				cf_dump_str(out, name, v);
		}
		fprintf(out, "accounts[%d].notify_completed = %s\n", k,
		    c->accounts[k].notify_completed ? "true" : "false");
		fprintf(out, "accounts[%d].adult_required = %s\n", k,
		    c->accounts[k].adult_required ? "true" : "false");
	}
}

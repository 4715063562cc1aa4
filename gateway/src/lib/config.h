/*
 * config.h - Postdoc's configuration: every parameter declared once with a
 * default and bounds (config.c's table), loaded from a libconfig file.
 * Errors name file:line; unknown keys and type errors are errors too.
 */
#ifndef PD_CONFIG_H
#define PD_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <libconfig.h>

#define PD_MAX_PLUGINS 16
#define PD_MAX_ACCOUNTS 64

/* An account's identity for outbound mail (config `accounts` list). */
struct pd_account_conf {
	char *name;		/* as in `postdoc account add` */
	char *legal_name;	/* sender's legal identity, for footers */
	char *legal_address;
	char *locale;		/* default template locale, or NULL */
	char *from_name;	/* From: display name, or NULL */
	char *from_addr;	/* From: address, or NULL (outbound.from_addr) */
	int notify_completed;	/* tell the contact her dossier is complete */
	int adult_required;	/* newsletters only to attested adults (1);
				 * 0: business contacts, age not asked */
	char *privacy_url;	/* the account's privacy policy, or NULL */
	/* Inbound trust (NULL: the default in parentheses). */
	char *sender_auth;	/* ("none"), "spf-or-dkim", "dmarc" */
	char *auth_fail;	/* ("refuse") with 550 5.7.1, or "mark" */
	char *refused_file;	/* ("reject-message"), "drop-file" */
};

/* A legal hold (config privacy.holds): the account's data of a class
 * ("all", "dossiers", "outbound", "consent") is kept `years` years. */
struct pd_hold {
	char *account;
	char *cls;
	int64_t years;
};
#define PD_MAX_HOLDS 32

struct pd_plugin_conf {
	char *name;			/* plugin name, e.g. "filetype" */
	char *path;			/* .so path; NULL = plugin_dir/name.so */
	const config_setting_t *settings; /* its "settings" group or NULL */
	char *where;			/* "file:line" of its entry, for errors */
};

struct pd_config {
	char *file;			/* path read, or NULL for defaults */
	/* server */
	char *hostname;
	char *smtp_listen;		/* "host:port" or "" to disable */
	char *lmtp_listen;
	int64_t listen_backlog;		/* 0 = net.core.somaxconn */
	char *tls_cert;			/* STARTTLS offered only if both set */
	char *tls_key;
	int64_t workers;
	char *plugin_dir;
	char *log_level;
	char *user;			/* serve as root: drop to it; "" = stay */
	char *log_output;		/* "stderr", "syslog" or "file" */
	char *log_file;			/* default var_dir/log/postdoc.log */
	/* store */
	char *var_dir;			/* var/ root: db, blobs, spool */
	char *db_path;			/* default var_dir/postdoc.db */
	char *sync_mode;		/* "full" or "normal" */
	int64_t inline_max;		/* raw message in the db up to this */
	int64_t blob_grace;		/* sweep: unnamed blobs older than */
	int64_t wal_size_max;		/* serve truncates the WAL past this */
	/* intake */
	char *intake_domain;
	/* limits (see config.c for defaults and bounds) */
	int64_t line_max;
	int64_t data_line_max;
	int64_t rcpt_max;
	int64_t message_size_max;
	int64_t spool_memory_max;
	int64_t mime_depth_max;
	int64_t mime_parts_max;
	int64_t attachments_max;
	int64_t header_count_max;
	int64_t header_size_max;
	int64_t header_block_max;
	int64_t filename_max;
	int64_t error_limit;
	int64_t rcpt_reject_limit;
	int64_t command_timeout;
	int64_t data_timeout;
	int64_t data_rate_min;		/* octets/s over data_rate_window */
	int64_t data_rate_window;	/* seconds */
	int64_t data_time_max;		/* seconds from 354 to the dot */
	int64_t session_timeout;
	int64_t connections_max;
	int64_t connections_per_ip_max;
	int64_t message_time_max;
	int64_t greet_pause_ms;
	/* outbound */
	char *transport;		/* plugin that delivers ("file") */
	char *from_name;		/* default From: display name */
	char *from_addr;		/* default From: address */
	char *bounce_domain;		/* VERP: b-<token>@bounce_domain */
	char *template_dir;
	char *default_locale;
	int64_t rate;			/* messages per second, all domains */
	int64_t domain_concurrency;	/* sessions per recipient domain */
	int64_t delivery_threads;
	int64_t queue_threads;		/* campaign: sign + store at once */
	int64_t batch_max;		/* messages per transport session */
	int64_t retry_base;		/* first retry delay, seconds; doubles */
	int64_t retry_max_age;		/* then bounced as undeliverable */
	int64_t queue_interval_ms;	/* how often the runner looks */
	char *reminder_days;		/* "3,7": days after the invitation */
	int64_t suppression_days;	/* hard bounce keeps an address out */
	int64_t receipts;		/* bool: acknowledge intake to the sender */
	/* web: one-click unsubscribe, preferences, double opt-in */
	char *web_listen;		/* "host:port" or "" to disable */
	char *web_base_url;		/* public https://host of the links */
	char *web_list_domain;		/* mailto:u-<token>@here; "" = intake */
	int64_t web_unsub_kid;		/* current var/keys/unsub-<kid>.key */
	int64_t web_bad_token_limit;	/* unknown tokens per IP per minute */
	int64_t web_conn_per_ip;	/* MHD per-address connection limit */
	int64_t web_idle_timeout;	/* seconds before MHD closes idle */
	char *web_trusted_proxies;	/* IPs/CIDRs whose X-Forwarded-For
					 * we believe; "" = none */
	/* privacy: retention per data class, in days (0 = keep), holds */
	int64_t keep_raw_messages;
	int64_t keep_documents;		/* after the dossier closed */
	int64_t keep_outbound_bodies;
	int64_t keep_history;
	int64_t keep_logs;
	char *log_dir;			/* "" = var_dir/log */
	int64_t purge_interval;		/* seconds between serve's purges */
	/* api: JSON API and /metrics (api.c) */
	char *api_listen;		/* "host:port" or "" to disable */
	int64_t api_page_max;
	int64_t api_body_max;
	int64_t api_metrics;		/* bool */
	int64_t api_conn_per_ip;	/* MHD per-address connection limit */
	int64_t api_idle_timeout;	/* seconds before MHD closes idle */
	/* events: delivery to event/sync plugins (evq.c) */
	int64_t ev_retry_base;
	int64_t ev_retry_cap;
	int64_t ev_max_age;
	int64_t ev_interval_ms;
	/* dns, auth: sender authentication (trust/) */
	char *dns_server;		/* "" = resolv.conf, else IP[@port] */
	int64_t dns_timeout_ms;		/* per query; then temperror */
	int64_t auth_checks;		/* bool: SPF/DKIM/DMARC on intake */
	int hold_count;
	struct pd_hold holds[PD_MAX_HOLDS];
	/* accounts' outbound identity */
	int account_count;
	struct pd_account_conf accounts[PD_MAX_ACCOUNTS];
	/* plugins, in order */
	int plugin_count;
	struct pd_plugin_conf plugins[PD_MAX_PLUGINS];
	/* private */
	config_t lc;
	int lc_loaded;
};

/*
 * Load `path` (NULL: embedded defaults only).  On failure returns -1 and
 * writes every problem, one per line "file:line: message", into err
 * (errlen bytes).
 */
int config_load(const char *path, struct pd_config **cfg_r,
    char *err, size_t errlen);
void config_free(struct pd_config **cfg);
/* Writes the effective configuration, for `postdoc check-config -v`. */
/* The identity configured for account `name`, or NULL. */
const struct pd_account_conf *config_account(const struct pd_config *cfg,
    const char *name);
void config_dump(const struct pd_config *cfg, FILE *out);

/*
 * Is `ip` (a numeric IPv4 or IPv6 address) in `list`, IPs and CIDRs
 * separated by spaces or commas (web.trusted_proxies)?  1 yes, 0 no,
 * -1 the list is malformed.  ip NULL only checks the list.
 */
int config_addr_in_list(const char *list, const char *ip);

#endif

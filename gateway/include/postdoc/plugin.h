/*
 * postdoc/plugin.h - the whole contract between Postdoc and its plugins.
 *
 * A plugin is a shared object exporting one symbol, POSTDOC_PLUGIN_SYMBOL,
 * of type `const struct postdoc_plugin`.  The core refuses it at load time
 * when `abi` differs from POSTDOC_PLUGIN_ABI or `size` is smaller than the
 * core's struct.  Hooks answer a verdict and may write a short text; the
 * core, never the plugin, chooses the SMTP reply code and enhanced status
 * code, and it strips the text to printable ASCII before it reaches a peer.
 *
 * Threads: connect/helo/mail_from/rcpt_to run on the event loop and must not
 * block; message/attachment/stored run on intake worker threads, possibly
 * several at once, so they must be thread-safe (keep per-call state on the
 * stack or lock it).  outbound runs on the thread that queues a message
 * (a CLI command or a worker); deliver runs on outbound delivery threads,
 * may block (it talks to a relay) and must bound every wait.  All hook
 * arguments are borrowed for the call only.
 *
 * Pollers (ABI 3): a plugin that fetches mail itself (the mailbox plugin)
 * gets a `struct postdoc_host` in start() and runs its own threads until
 * stop(); host->submit files one fetched message through the same intake
 * pipeline as SMTP, synchronously, on the calling thread.  command() runs
 * an operator subcommand (`postdoc mailbox check NAME`) in the CLI, where
 * no host is given.
 *
 * Events (ABI 4): `postdoc serve` records durable events (a document
 * received, a consent withdrawn...) and hands each one, in order per
 * dossier, to every plugin with an event hook (webhook), and each stored
 * document to every plugin with a sync hook (sync_dir, sync_webdav).  Both
 * run on the core's event thread, one per plugin, may block but must bound
 * every wait; OK marks the event done, DENYSOFT retries it later with
 * backoff (later events of the same dossier wait behind it), DENY gives it
 * up.  Delivery is at least once: a crash between the hook and the
 * record of its verdict calls the hook again for the same event id.
 *
 * Scanners (ABI 5): an attachment hook may say, besides its verdict,
 * what it found of the file (struct postdoc_reply's `scan`): clean,
 * could not scan (with CONT: accept the file and mark it "unscanned"),
 * or infected (with DENY: the core records the refusal as malware).
 *
 * ABI history: 1 intake hooks; 2 adds outbound and deliver; 3 adds the
 * host API (submit, log) and the start, stop and command entry points;
 * 4 adds the event and sync hooks; 5 adds the reply's scan field.  The
 * core still loads ABI 4 plugins: ABI 5 only grows the reply the core
 * allocates, after the text an ABI 4 plugin writes.
 */
#ifndef POSTDOC_PLUGIN_H
#define POSTDOC_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <libconfig.h>

#define POSTDOC_PLUGIN_ABI 5
#define POSTDOC_PLUGIN_ABI_MIN 4	/* the oldest ABI the core still loads */
#define POSTDOC_PLUGIN_SYMBOL "postdoc_plugin"
#define POSTDOC_PLUGIN_TEXT_MAX 200

enum postdoc_verdict {
	POSTDOC_CONT = 0,	/* no opinion: next plugin, then the core */
	POSTDOC_OK,		/* accept this step; skip later plugins */
	POSTDOC_DENY,		/* permanent refusal (5xx) */
	POSTDOC_DENYSOFT,	/* temporary refusal (4xx) */
	POSTDOC_DISCONNECT	/* refuse and close the session (421) */
};

/* ABI 5: what a scanner found of one attachment (the attachment hook's
 * reply; the core ignores it from any other hook). */
enum postdoc_scan {
	POSTDOC_SCAN_NONE = 0,	/* not a scanner, or nothing to say */
	POSTDOC_SCAN_CLEAN,	/* scanned, nothing found: "clean" */
	POSTDOC_SCAN_UNSCANNED,	/* could not scan; with CONT the file is
				 * accepted and marked "unscanned" */
	POSTDOC_SCAN_INFECTED	/* with DENY: malware (text names it) */
};

/* Where a hook writes its explanation; `text` is NUL-terminated.  The
 * core zeroes the whole reply before each call. */
struct postdoc_reply {
	char text[POSTDOC_PLUGIN_TEXT_MAX];
	enum postdoc_scan scan;	/* ABI 5, attachment hook only */
};

struct postdoc_session_info {
	const char *client_ip;
	uint16_t client_port;
	const char *helo;	/* NULL before HELO/EHLO */
	int tls;		/* 1 once STARTTLS completed */
	int lmtp;		/* 1 on the LMTP listener */
};

struct postdoc_rcpt_info {
	const char *address;	/* normalised recipient address */
	const char *account;	/* account (tenant) owning the dossier */
	const char *dossier_ref;
	int64_t dossier_id;
};

struct postdoc_message_info {
	const char *queue_id;
	const char *mail_from;
	const char *message_id;	/* sanitised, may be "" */
	const char *subject;	/* sanitised UTF-8, may be "" */
	uint64_t size;		/* raw size in octets */
	const char *account;	/* the delivery being decided */
	const char *dossier_ref;
	unsigned part_count;
	unsigned attachment_count;
};

struct postdoc_attachment_info {
	const char *account;
	const char *dossier_ref;
	const char *filename;		/* sanitised original name */
	const char *declared_type;	/* from Content-Type, lower case */
	const char *sniffed_type;	/* libmagic MIME type of the bytes */
	uint64_t size;			/* decoded size */
	const char *sha256;		/* hex */
	const char *path;		/* read-only decoded bytes, for scanners */
};

struct postdoc_stored_info {
	const char *queue_id;
	const char *account;
	const char *dossier_ref;
	int64_t message_id;	/* row id in the store */
	unsigned document_count;
};

/* One outbound message, complete and CRLF-canonical, in a file. */
struct postdoc_outbound_info {
	int64_t id;		/* outbound queue row */
	const char *account;
	const char *kind;	/* "invitation", "reminder", "receipt", ... */
	const char *mail_from;	/* envelope sender: the VERP bounce address */
	const char *rcpt;	/* envelope recipient (one per message) */
	const char *from_domain; /* domain of the From: header (DKIM d=) */
	const char *path;	/* the message as it will be sent */
	uint64_t size;
};

/* What a transport reports for one message.  code: the relay's reply
 * (250 sent, 4xx deferred, 5xx bounced), or 0 for a local failure
 * (connection, TLS, AUTH: deferred and retried). */
struct postdoc_delivery {
	int code;
	char enhanced[12];
	char text[POSTDOC_PLUGIN_TEXT_MAX];
};

/*
 * One message a poller fetched, for host->submit.  The core copies `path`
 * into its spool (the plugin keeps and removes its own file) and routes it
 * by the first of Delivered-To, X-Original-To, To, Cc that names an open
 * dossier of the intake domain, else by default_dossier.
 */
struct postdoc_submit {
	const char *path;		/* the raw message, as fetched */
	const char *source;		/* "imap:docs", "pop3:docs" */
	const char *peer;		/* the server it came from */
	int tls;			/* 1 if fetched over verified TLS */
	const char *default_dossier;	/* intake address, or "" / NULL */
};

/*
 * submit's answer (in a struct postdoc_delivery): 250 filed (stored, or a
 * duplicate of what the dossier already holds: safe to move or delete on
 * the server); 550 with enhanced "5.1.1" when no open dossier matched;
 * another 5xx when intake refused the message; 4xx to try again later.
 */
#define POSTDOC_SUBMIT_NO_DOSSIER "5.1.1"

/* A stored document, as the sync hook sees it (ABI 4). */
struct postdoc_document {
	int64_t id;		/* documents row */
	const char *filename;	/* sanitised original name */
	const char *stored_name; /* server-generated, unique in the dossier */
	const char *content_type; /* sniffed (libmagic) MIME type */
	uint64_t size;
	const char *sha256;	/* hex */
	const char *path;	/* read-only bytes (the content blob) */
	int64_t received;	/* unix time */
};

/*
 * One durable event (ABI 4).  Types: document.received,
 * dossier.completed, invitation.sent, message.bounced, consent.granted,
 * consent.withdrawn, subject.erased.  `json` is the whole event as one
 * JSON object, the body a webhook POSTs:
 *   {"id":..., "type":"...", "created":<unix>, "account":"...",
 *    "dossier":{"id":...,"ref":"..."} or null, "data":{...}}
 */
struct postdoc_event {
	int64_t id;		/* increasing and unique store-wide */
	const char *type;
	const char *account;
	int64_t dossier_id;	/* 0: not about one dossier */
	const char *dossier_ref; /* "" when dossier_id is 0 */
	int64_t created;	/* unix time the event was recorded */
	const char *json;
	unsigned attempt;	/* 1 on the first call for this event */
	/* document.received only (else NULL): the document to mirror */
	const struct postdoc_document *document;
};

enum postdoc_log_level {
	POSTDOC_LOG_ERR = 0, POSTDOC_LOG_WARN, POSTDOC_LOG_INFO,
	POSTDOC_LOG_DEBUG
};

/* What the core hands to a poller's start(); valid until stop returns. */
struct postdoc_host {
	uint32_t abi;			/* POSTDOC_PLUGIN_ABI */
	void *ctx;
	/* Any thread; blocks until the message is filed or refused.  Keeps
	 * per-thread intake resources, released when the thread exits. */
	void (*submit)(void *ctx, const struct postdoc_submit *msg,
	    struct postdoc_delivery *result);
	/* The core's log (escaped, leveled); any thread. */
	void (*log)(void *ctx, enum postdoc_log_level level, const char *fmt,
	    ...) __attribute__((format(printf, 3, 4)));
};

struct postdoc_hooks {
	enum postdoc_verdict (*connect)(void *state,
	    const struct postdoc_session_info *s, struct postdoc_reply *r);
	enum postdoc_verdict (*helo)(void *state,
	    const struct postdoc_session_info *s, struct postdoc_reply *r);
	enum postdoc_verdict (*mail_from)(void *state,
	    const struct postdoc_session_info *s, const char *sender,
	    struct postdoc_reply *r);
	enum postdoc_verdict (*rcpt_to)(void *state,
	    const struct postdoc_session_info *s, const char *sender,
	    const struct postdoc_rcpt_info *rcpt, struct postdoc_reply *r);
	/* After parsing, once per recipient dossier. */
	enum postdoc_verdict (*message)(void *state,
	    const struct postdoc_message_info *m, struct postdoc_reply *r);
	/* Once per attachment per recipient dossier, before anything commits. */
	enum postdoc_verdict (*attachment)(void *state,
	    const struct postdoc_attachment_info *a, struct postdoc_reply *r);
	/* After the commit; the verdict is ignored (the 250 is owed). */
	void (*stored)(void *state, const struct postdoc_stored_info *st);
	/*
	 * Before an outbound message is queued.  A plugin may write header
	 * fields to put in front of the message into `prepend` (at most
	 * prepend_len bytes, each line CRLF-terminated, continuation lines
	 * starting with a space or tab: DKIM-Signature), or refuse it.  The
	 * core checks the syntax of what is prepended.
	 */
	enum postdoc_verdict (*outbound)(void *state,
	    const struct postdoc_outbound_info *m, char *prepend,
	    size_t prepend_len, struct postdoc_reply *r);
	/*
	 * Transports only (the plugin named by outbound.transport): deliver
	 * n messages, all for recipients in one domain, in one session if
	 * the transport has sessions, and fill results[i] for each.
	 */
	void (*deliver)(void *state, const struct postdoc_outbound_info *msgs,
	    size_t n, struct postdoc_delivery *results);
	/* ABI 4, serve's event thread for this plugin: every event. */
	enum postdoc_verdict (*event)(void *state, const struct postdoc_event *ev,
	    struct postdoc_reply *r);
	/* ABI 4, serve's event thread for this plugin: each stored document
	 * (ev->type "document.received", ev->document set). */
	enum postdoc_verdict (*sync)(void *state, const struct postdoc_event *ev,
	    struct postdoc_reply *r);
};

struct postdoc_plugin {
	uint32_t abi;		/* POSTDOC_PLUGIN_ABI */
	uint32_t size;		/* sizeof(struct postdoc_plugin) */
	const char *name;
	const char *version;
	/*
	 * Called once at load with the plugin's own settings group (may be
	 * NULL).  Return 0 and set *state_r, or -1 with a message in err
	 * (errlen bytes, NUL-terminated).  It only reads and checks the
	 * settings: `postdoc check-config` calls init then deinit, never
	 * start, so init creates no file, thread or connection (start or
	 * the first hook call does).
	 */
	int (*init)(const config_setting_t *settings, void **state_r,
	    char *err, size_t errlen);
	void (*deinit)(void *state);	/* in reverse load order */
	struct postdoc_hooks hooks;
	/*
	 * `postdoc serve` only: start after every plugin is loaded and the
	 * intake workers run (return 0, or -1 with err: serve does not
	 * start); stop before unloading, in reverse order, and must return
	 * promptly (join the plugin's threads, bounding every wait).
	 */
	int (*start)(void *state, const struct postdoc_host *host, char *err,
	    size_t errlen);
	void (*stop)(void *state);
	/*
	 * `postdoc <plugin name> ARGS...` in the CLI: print to out and return
	 * 0; -1 with err on failure; -2 with the usage in err.
	 */
	int (*command)(void *state, int argc, const char *const *argv,
	    FILE *out, char *err, size_t errlen);
};

#endif

/*
 * notify.h - the mail Postdoc sends about a dossier: invitations,
 * reminders and receipts.  It gathers what a template may show (dossier,
 * contact, the account's legal identity), renders the template, builds
 * the message and queues it; delivery is the queue's job.  Blocking (SQL,
 * files, signing): call it from a CLI command or a worker thread.
 */
#ifndef PD_NOTIFY_H
#define PD_NOTIFY_H

#include <stdint.h>
#include <jansson.h>

struct pd_config;
struct store;
struct outq_ctx;
struct store_dossier;

struct notify_env {
	const struct pd_config *cfg;
	struct store *st;
	struct outq_ctx *q;
};

struct notify_invite_req {
	const char *tmpl;		/* default "invitation" */
	const char *locale;		/* NULL: account default, then "en" */
	const char *documents;		/* "ID card,Proof of address" or NULL */
	const char *due;		/* "YYYY-MM-DD" or NULL */
};

/* Invite the dossier's contact; Reply-To is the intake address.  The
 * request (documents, due date) is recorded on the dossier. */
int notify_invite(const struct notify_env *env, const struct store_dossier *d,
    const struct notify_invite_req *req, int64_t *outbound_id_r, char *err);

/*
 * Queue the reminders that are due at `now` (outbound.reminder_days after
 * the first invitation) for open dossiers where fewer documents arrived
 * since the invitation than were asked for (at least one).
 */
int notify_reminders(const struct notify_env *env, int64_t now,
    unsigned *queued_r, char *err);

/*
 * Acknowledge documents filed from `sender` into d.  `received` is a
 * JSON array of {"filename", "size"}.  Sends only when the account's
 * sender policy vouches for the sender (it is the dossier's contact, or
 * the policy names its domain): never backscatter to a forged sender.
 * Returns 1 if queued, 0 if not warranted, -1 on error.
 */
int notify_receipt(const struct notify_env *env, const struct store_dossier *d,
    const char *sender, json_t *received, char *err);

/*
 * `postdoc template render`: render `tmpl` with `data` for `account` and
 * build the message into path exactly as it would be queued (before the
 * outbound plugins' headers).  to may be NULL (the data's contact.email).
 */
int notify_preview(const struct pd_config *cfg, const char *tmpl,
    const char *locale, const char *account, json_t *data, const char *to,
    const char *path, char *err);

/*
 * Mail not tied to a dossier (newsletters, notices, consent requests):
 * render `tmpl` with data (plus "account", the account's identity) and
 * build it with the extra headers into a spool file.  The caller queues
 * it (outq_enqueue, which consumes the file) and may first record the
 * Message-ID.
 */
struct outmsg_header;
struct notify_mail {
	const char *account;
	const char *tmpl;
	const char *locale;		/* NULL: account default, then "en" */
	const char *to;
	json_t *data;			/* borrowed */
	const struct outmsg_header *extra;
	size_t n_extra;
};
struct notify_built {
	char path[4200];
	char message_id[256];
	char from_domain[256];
};
int notify_build_mail(const struct pd_config *cfg, const struct notify_mail *m,
    struct notify_built *b, char *err);

#endif

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
 * The reminder schedule as a rule, without the store (notify_reminders
 * reads the facts and counts through count): the number (1-based) of the
 * reminder due at now, or 0.  Reminder n+1 is due `days`'s n-th entry
 * days after the first invitation (*days_r), while fewer documents
 * arrived since that invitation than requested asks for (at least one);
 * none without an invitation or past the schedule's end.  count is
 * called only once a reminder is due by the clock; -1 if it fails.
 */
struct notify_schedule {
	const char *days;		/* outbound.reminder_days: "3,7" */
	int64_t invitations;		/* invitations queued for the dossier */
	int64_t invited;		/* the first one's creation time */
	int64_t sent;			/* reminders queued so far */
	const char *requested;		/* the dossier's request: JSON array */
};
typedef int (*notify_count_fn)(void *ctx, int64_t since, int64_t *n_r,
    char *err);
int notify_reminder_number(const struct notify_schedule *s, int64_t now,
    notify_count_fn count, void *ctx, int64_t *days_r, char *err);

/* A receipt goes only to a sender the policy vouches for: the dossier's
 * contact (any case), or anyone when the policy names domains. */
int notify_vouched(const struct store_dossier *d, const char *sender);

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
 * The dossier loop's messages to the dossier's contact, in her language
 * (contact_locale, else the account's), greeting her by name:
 * - rejection: names the document (its file name), the reason and the
 *   address to send a new version to (the item's, else the dossier's);
 * - completed: every required item is accepted (sent only when the
 *   account asks for it: notify_wants_completion);
 * - closing: the dossier is closed (`dossier close --notify`).
 * Each queues one message (*id_r its outbound id); -1 on error.
 */
struct store_doc_row;
struct store_item;
int notify_rejection(const struct notify_env *env,
    const struct store_dossier *d, const struct store_doc_row *doc,
    const struct store_item *it, const char *reason, int64_t *id_r,
    char *err);
int notify_completed(const struct notify_env *env,
    const struct store_dossier *d, int64_t *id_r, char *err);
int notify_closing(const struct notify_env *env,
    const struct store_dossier *d, int64_t *id_r, char *err);
int notify_wants_completion(const struct pd_config *cfg,
    const char *account);

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

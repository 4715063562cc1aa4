/*
 * notify.h - the mail Postdoc sends about a dossier: invitations,
 * reminders, receipts, and the dossier loop's rejection, completion and
 * closing messages, each in the contact's language.  It gathers what a
 * template may show (dossier, items, contact, the account's legal
 * identity), renders the template, builds the message and queues it;
 * delivery is the queue's job.  Blocking (SQL,
 * files, signing): call it from a CLI command or a worker thread.
 */
#ifndef PD_NOTIFY_H
#define PD_NOTIFY_H

#include <stddef.h>
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
	const char *locale;		/* used when the contact has none */
	const char *due;		/* "YYYY-MM-DD" or NULL */
};

/* Invite the dossier's contact to send each item, each to its own
 * address; Reply-To is the plain intake address.  A due date given is
 * recorded on the dossier. */
int notify_invite(const struct notify_env *env, const struct store_dossier *d,
    const struct notify_invite_req *req, int64_t *outbound_id_r, char *err);

/*
 * Queue the reminders that are due at `now` (outbound.reminder_days
 * after the first invitation) for open dossiers with required items
 * still missing, each listing only those.  A queued reminder moves the
 * dossier's reminder clock (reminded_at) to now.
 */
int notify_reminders(const struct notify_env *env, int64_t now,
    unsigned *queued_r, char *err);

/*
 * The invitation notify_invite would queue, validated and rendered but
 * written nowhere (`invite --dry-run`): the dossier's items and `extra`
 * (items the caller is about to add, dossier_items_plan), the due date
 * and language of req as if recorded.  refused: the queue would refuse
 * the recipient (suppressed...), "" when it would take it.  0, or -1
 * with err (closed dossier, bad due date, a template that does not
 * render...).  notify_draft_free releases it.
 */
struct store_item;
struct notify_draft {
	char from_name[256], from_addr[320];
	char to[320], to_name[256], reply_to[512];
	char locale[16];		/* the template's locale used */
	char refused[320];
	char *subject, *text;
	json_t *items;			/* the items as the template saw them */
};
int notify_invite_draft(const struct notify_env *env,
    const struct store_dossier *d, const struct notify_invite_req *req,
    const struct store_item *extra, size_t n_extra, struct notify_draft *dr,
    char *err);
void notify_draft_free(struct notify_draft *dr);

/* 1 when the templates have messages in `locale` ([a-z0-9_-]{1,15} and
 * an invitation/<locale> folder), else 0: what `account set --locale`
 * may name. */
int notify_has_locale(const struct pd_config *cfg, const char *locale);

/*
 * What `remind` decides at `now` for each dossier of every account, open
 * (and closed ones too with with_closed), changing nothing: `remind --dry-run` prints it and
 * notify_reminders acts on it.  number > 0: reminder `number` is due
 * (its schedule entry `days`), unless `refused` says the queue would
 * refuse the contact (suppressed...).  number 0: `why` not ("closed",
 * "not invited yet", "nothing outstanding", "not due yet" with `next`
 * the time it will be, "every reminder of the schedule was sent",
 * "reminders are off ...").  labels: the required items still missing
 * (strings); borrowed for the callback only, as is d.  A callback's
 * non-zero return stops the walk and is returned.
 */
struct notify_remind_plan {
	const struct store_dossier *d;
	int number;
	int64_t days;
	const char *why;
	int64_t next;
	int64_t outstanding;
	json_t *labels;
	char refused[320];
};
typedef int (*notify_remind_cb)(const struct notify_remind_plan *p,
    void *ctx);
int notify_reminders_plan(const struct notify_env *env, int64_t now,
    int with_closed, notify_remind_cb cb, void *ctx, char *err);

/*
 * The reminder schedule as a rule, without the store: the number
 * (1-based) of the reminder due at now, or 0; *days_r its schedule entry.
 * Reminder n is due when something required is outstanding, now >=
 * invited + days[n] and now >= last + (days[n] - days[n-1]): two
 * reminders are never closer than the schedule's gap, whatever clock
 * `remind --now` is given and however long an outage lasted (an outage
 * yields one reminder, the next one gap later, never a catch-up).  None
 * without an invitation or past the schedule's end.
 */
struct notify_schedule {
	const char *days;		/* outbound.reminder_days: "3,7" */
	int64_t invitations;		/* invitations queued for the dossier */
	int64_t invited;		/* the first one's creation time */
	int64_t sent;			/* reminders queued so far */
	int64_t last;			/* the last reminder: max(its creation,
					 * dossiers.reminded_at); 0 none */
	int64_t outstanding;		/* required items still missing */
};
int notify_reminder_number(const struct notify_schedule *s, int64_t now,
    int64_t *days_r);

/* What the messages write, exposed for their tests: "20 décembre 2026",
 * "1er mai 2027", "20 December 2026" (ISO for a language without month
 * names; -1 and the input copied if it is no day); "5 Mo", "1,5 Mo",
 * "5 MB"; a mailto URI (RFC 6068) with a percent-encoded subject (-1 if
 * out is too small); an item's own address (dossier_item_address's
 * rule: the plain address past 64 octets of local part). */
int notify_day_text(const char *day, const char *locale, char *out,
    size_t len);
void notify_size_text(int64_t n, const char *locale, char *out, size_t len);
int notify_mailto(const char *addr, const char *subject, char *out,
    size_t len);
struct store_item;
void notify_item_address(const char *intake_domain,
    const struct store_dossier *d, const struct store_item *it, char *out,
    size_t len);

/* A receipt goes only to a sender the policy vouches for: the dossier's
 * contact (any case), or anyone when the policy names domains. */
int notify_vouched(const struct store_dossier *d, const char *sender);

/*
 * Acknowledge documents filed from `sender` into d.  `received` is a
 * JSON array of {"filename", "size"} with, when intake knows them,
 * "item" (slug), "item_label" and "document" (id); without them the
 * dossier's documents say which item each file went to.  An entry with
 * "refused": {"kind" ("type"|"malware"), "type", "reason"} is a file
 * left out under refused_file = "drop-file": the receipt names it and
 * why, with the types the dossier's items ask for; a receipt may list
 * only such files (nothing filed).  Reply-To is the
 * dossier's address; the receipt says what required items are missing.  Sends only when the account's
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
 * Each queues one message (*id_r its outbound id, id_r may be NULL),
 * Reply-To the dossier's address (a rejection: the item's, so that a
 * reply files the new version under it); -1 on error, and without an
 * outbound queue (env->q NULL) so that the caller's transaction rolls
 * back rather than record a review nobody is told about.
 * notify_wants_completion: the account's notify_completed setting.
 */
struct store_doc_row;
int notify_rejection(const struct notify_env *env,
    const struct store_dossier *d, const struct store_doc_row *doc,
    const struct store_item *it, const char *reason, int64_t *id_r,
    char *err);
int notify_completed(const struct notify_env *env,
    const struct store_dossier *d, int64_t *id_r, char *err);
int notify_closing(const struct notify_env *env,
    const struct store_dossier *d, int64_t *id_r, char *err);
int notify_wants_completion(const struct pd_config *cfg, struct store *st,
    const char *account);

/*
 * `postdoc template render`: render `tmpl` with `data` for `account` and
 * build the message into path exactly as it would be queued (before the
 * outbound plugins' headers).  to may be NULL (the data's contact.email).
 */
int notify_preview(const struct pd_config *cfg, struct store *st,
    const char *tmpl,
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
/*
 * An account's identity and settings as messages and pages use them:
 * the config file's account block, then what `account set` or the API
 * stored (account_settings, which wins), then the defaults.  The keys
 * `account set` takes are NOTIFY_ACCOUNT_KEYS.
 */
struct notify_identity {
	char legal_name[256];
	char legal_address[512];
	char from_name[256];
	char from_addr[320];
	char locale[16];	/* "" none */
	char signer[256];	/* the account's own from_name, else "": a
				 * message is never signed by the default */
	char privacy_url[512];	/* "" none */
	int adult_required;	/* newsletters to attested adults only */
	int notify_completed;
};
#define NOTIFY_ACCOUNT_KEYS { "legal_name", "legal_address", "from_name", \
	"from_addr", "locale", "privacy_url", "adult_required", \
	"notify_completed", NULL }

/* st NULL: the config file alone.  0, or -1 with err (store failure). */
int notify_identity(const struct pd_config *cfg, struct store *st,
    const char *account, struct notify_identity *id, char *err);
/* The same, and where each value comes from, src[i] for the i-th of
 * NOTIFY_ACCOUNT_KEYS: "set" (account_settings: `account set`, the
 * API), "config" (the account's block) or "default". */
#define NOTIFY_ACCOUNT_NKEYS 8
int notify_identity_sources(const struct pd_config *cfg, struct store *st,
    const char *account, struct notify_identity *id,
    const char *src[NOTIFY_ACCOUNT_NKEYS], char *err);

struct notify_mail {
	struct store *st;		/* account settings; NULL: config only */
	const char *account;
	const char *tmpl;
	const char *locale;		/* NULL: account default, then "en" */
	const char *to;
	json_t *data;			/* borrowed */
	const struct outmsg_header *extra;
	size_t n_extra;
	const char *subject_prefix;	/* NULL, or "[TEST] " before the
					 * rendered subject */
	int keep_parts;			/* a preview: b->subject, text, html */
};
struct notify_built {
	char path[4200];
	char message_id[256];
	char from_domain[256];
	char *subject, *text, *html;	/* keep_parts only (html may be
					 * NULL): notify_built_free */
};
int notify_build_mail(const struct pd_config *cfg, const struct notify_mail *m,
    struct notify_built *b, char *err);
void notify_built_free(struct notify_built *b);

#endif

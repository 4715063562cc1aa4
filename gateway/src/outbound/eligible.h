/*
 * eligible.h - the one answer to "may we send this message to this
 * address now?": suppression, erasure, consent, age and bounces.  Which
 * of these rules apply depends on the kind of message and on who asks
 * (a sender choosing recipients, the queue taking a message, the queue
 * letting one leave); the table in eligible.c says which, in what order.
 * Age counts only where the account requires adults (adult_required,
 * notify_identity): a business audience is not asked its age.
 */
#ifndef PD_ELIGIBLE_H
#define PD_ELIGIBLE_H

#include <stdint.h>

struct pd_config;
struct store;

enum eligible_kind {
	ELIGIBLE_DOSSIER,	/* about one of the recipient's dossiers */
	ELIGIBLE_NOTICE,	/* transactional, about no dossier */
	ELIGIBLE_NEWSLETTER,	/* marketing, for a purpose */
};

enum eligible_when {
	ELIGIBLE_CHOOSE,	/* a sender picks recipients (campaign.c) */
	ELIGIBLE_QUEUE,		/* the queue takes the message (outq_enqueue) */
	ELIGIBLE_LEAVE,		/* the message leaves the queue (outq precheck) */
};

struct eligible_ask {
	enum eligible_kind kind;
	enum eligible_when when;
	int64_t account_id;
	const char *rcpt;
	int64_t contact_id;	/* a newsletter being chosen: its contact */
	int64_t purpose_id;	/* and purpose */
	const char *message_id;	/* a newsletter leaving: names both */
	int64_t now;
};

/*
 * Why a contact is left out, in the words a newsletter's audience is
 * explained in (campaign show, campaign send --dry-run).  Finer than
 * the reason: age unknown and minor are both "not attested adult", no
 * consent and withdrawn both "consent withdrawn".
 */
enum eligible_why {
	EW_NONE,		/* eligible */
	EW_NO_CONSENT,		/* never granted */
	EW_WITHDRAWN,		/* the latest record is a withdrawal */
	EW_AGE_UNKNOWN,		/* adult "unknown", and the account asks */
	EW_MINOR,		/* adult "no", and the account asks */
	EW_SUPPRESSED,
	EW_BOUNCED,
	EW_ERASED,
	EW_NO_CONTACT,		/* no such contact, or no campaign recipient */
	EW_COUNT
};

struct eligible_verdict {
	const char *reason;	/* NULL, or "suppressed", "bounced", ... */
	enum eligible_why why;	/* EW_NONE when eligible */
	char detail[256];	/* suppressed: the entry's own reason */
	int64_t until;		/* suppressed: when the entry ends */
};

/* 1 may send, 0 may not (v_r->reason says why), -1 error in err. */
int eligible_check(const struct pd_config *cfg, struct store *st,
    const struct eligible_ask *a, struct eligible_verdict *v_r, char *err);

/* "no consent", "age unknown"...; "" for EW_NONE. */
const char *eligible_why_name(enum eligible_why why);

/* The kind of a queued row from its kind and dossier. */
enum eligible_kind eligible_kind_of(const char *kind, int64_t dossier_id);

#endif

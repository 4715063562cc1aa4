/*
 * eligible.c - whether a message may go to an address now, and why not:
 * one table of the rules (suppression, erasure, campaign recipient,
 * contact, age, consent, bounces) for each kind of message and each
 * moment, and one function that walks it.  Never sends, queues or
 * changes a row: it reads facts from the store and privacy's hash.
 */
#include <stdio.h>
#include <string.h>

#include "eligible.h"
#include "notify.h"
#include "privacy/privacy.h"
#include "store/store.h"
#include "lib/util.h"

enum eligible_rule {
	ER_END,		/* 0: a row's unused slots end it */
	ER_SUPPRESSED,	/* an unexpired suppression of the address */
	ER_ERASED,	/* the address's keyed hash in erased_subjects */
	ER_CAMPAIGN,	/* a campaign recipient with the Message-ID */
	ER_CONTACT,	/* the contact exists, in the account */
	ER_ADULT,	/* adult attested "yes", or the account asks no age */
	ER_CONSENT,	/* the latest consent record is a grant */
	ER_BOUNCED,	/* no message to the address ever bounced */
};

#define ER_MAX 8

/*
 * Each caller's checks as they were before this table, in their order,
 * so every verdict and reason stayed the same.  A rule about the
 * address looks at the recipient until the contact is known, then at
 * the contact's current address (rectification may have changed it).
 * A newsletter leaving the queue checks suppression twice for that
 * reason.  Erasure is checked as mail about no dossier leaves (a
 * subject's own dossiers may still write to it) and, last, as a
 * newsletter's or a notice's recipients are chosen: erasure deletes the
 * contact unless a legal hold keeps its consent records, and such a
 * contact must be left out as "erased" (and a dry run say so), not
 * chosen and refused later.  Last, so no other verdict changed.
 */
static const enum eligible_rule
eligible_table[3][3][ER_MAX] = {
	[ELIGIBLE_CHOOSE] = {
		[ELIGIBLE_DOSSIER] = { ER_SUPPRESSED },
		[ELIGIBLE_NOTICE] = { ER_SUPPRESSED, ER_BOUNCED, ER_ERASED },
		[ELIGIBLE_NEWSLETTER] = { ER_CONTACT, ER_ADULT, ER_CONSENT,
		    ER_SUPPRESSED, ER_BOUNCED, ER_ERASED },
	},
	[ELIGIBLE_QUEUE] = {
		[ELIGIBLE_DOSSIER] = { ER_SUPPRESSED },
		[ELIGIBLE_NOTICE] = { ER_SUPPRESSED },
		[ELIGIBLE_NEWSLETTER] = { ER_SUPPRESSED },
	},
	[ELIGIBLE_LEAVE] = {
		[ELIGIBLE_DOSSIER] = { ER_SUPPRESSED },
		[ELIGIBLE_NOTICE] = { ER_SUPPRESSED, ER_ERASED },
		[ELIGIBLE_NEWSLETTER] = { ER_SUPPRESSED, ER_ERASED,
		    ER_CAMPAIGN, ER_CONTACT, ER_ADULT, ER_CONSENT,
		    ER_SUPPRESSED, ER_BOUNCED },
	},
};

/* What the walk has learnt so far. */
struct eligible_run {
	const struct pd_config *cfg;
	struct store *st;
	const struct eligible_ask *a;
	struct eligible_verdict *v;
	const char *addr;		/* rcpt, then the contact's */
	int64_t contact_id, purpose_id;
	struct store_contact c;
};

/* Each rule: 1 passed, 0 refused, -1 error in err. */
static int
eligible_suppressed(struct eligible_run *r, char *err)
{
	int rc = store_suppression_get(r->st, r->a->account_id, r->addr,
	    r->a->now, r->v->detail, sizeof(r->v->detail), &r->v->until, err);

	return rc < 0 ? -1 : !rc;
}

static int
eligible_erased(struct eligible_run *r, char *err)
{
	int rc = privacy_erased(r->cfg, r->st, r->a->account_id, r->addr,
	    err);

	return rc < 0 ? -1 : !rc;
}

static int
eligible_campaign(struct eligible_run *r, char *err)
{
	const char *msgid = r->a->message_id;

	return store_campaign_rcpt_by_msgid(r->st, r->a->account_id,
	    msgid != NULL ? msgid : "", &r->contact_id, &r->purpose_id, err);
}

/* From here on, rules about the address look at the contact's. */
static int
eligible_contact(struct eligible_run *r, char *err)
{
	int rc = store_contact_by_id(r->st, r->contact_id, &r->c, err);

	if (rc != 1)
		return rc;
	if (r->c.account_id != r->a->account_id)
		return 0;
	r->addr = r->c.email;
	return 1;
}

/*
 * The one age rule, for choosing and for leaving alike.  An account
 * whose audience is business contacts (adult_required false) asks no
 * age: "unknown" and "no" pass.  The identity is read only for a
 * contact not attested adult, so an adult costs no lookup.
 */
static int
eligible_adult(struct eligible_run *r, char *err)
{
	struct notify_identity id;

	if (strcmp(r->c.adult, "yes") == 0)
		return 1;
	if (notify_identity(r->cfg, r->st, r->c.account, &id, err) != 0)
		return -1;
	if (!id.adult_required)
		return 1;
	r->v->why = strcmp(r->c.adult, "no") == 0 ? EW_MINOR : EW_AGE_UNKNOWN;
	return 0;
}

/* No record at all counts as withdrawn: consent is never presumed. */
static int
eligible_consent(struct eligible_run *r, char *err)
{
	char action[12] = "";
	int rc = store_consent_latest(r->st, r->contact_id, r->purpose_id,
	    action, sizeof(action), err);

	if (rc < 0)
		return -1;
	if (rc == 1 && strcmp(action, "grant") == 0)
		return 1;
	r->v->why = rc == 1 ? EW_WITHDRAWN : EW_NO_CONSENT;
	return 0;
}

static int
eligible_bounced(struct eligible_run *r, char *err)
{
	int rc = store_contact_bounced(r->st, r->a->account_id, r->addr, err);

	return rc < 0 ? -1 : !rc;
}

/* The reasons are the texts rows and logs have always shown; why is
 * the audience's word, unless the rule said a finer one. */
static const struct {
	int (*fn)(struct eligible_run *r, char *err);
	const char *reason;
	enum eligible_why why;
} eligible_rules[] = {
	[ER_SUPPRESSED] = { eligible_suppressed, "suppressed", EW_SUPPRESSED },
	[ER_ERASED] = { eligible_erased, "erased subject", EW_ERASED },
	[ER_CAMPAIGN] = { eligible_campaign, "no campaign recipient",
	    EW_NO_CONTACT },
	[ER_CONTACT] = { eligible_contact, "no such contact", EW_NO_CONTACT },
	[ER_ADULT] = { eligible_adult, "not attested adult", EW_AGE_UNKNOWN },
	[ER_CONSENT] = { eligible_consent, "consent withdrawn", EW_NO_CONSENT },
	[ER_BOUNCED] = { eligible_bounced, "bounced", EW_BOUNCED },
};

static const char *const eligible_why_names[EW_COUNT] = {
	[EW_NONE] = "", [EW_NO_CONSENT] = "no consent",
	[EW_WITHDRAWN] = "withdrawn", [EW_AGE_UNKNOWN] = "age unknown",
	[EW_MINOR] = "minor", [EW_SUPPRESSED] = "suppressed",
	[EW_BOUNCED] = "bounced", [EW_ERASED] = "erased",
	[EW_NO_CONTACT] = "no such contact",
};

const char *
eligible_why_name(enum eligible_why why)
{
	if ((unsigned)why >= EW_COUNT)
		pd_fatal("eligible_why_name: %d", (int)why);
	return eligible_why_names[why];
}

int
eligible_check(const struct pd_config *cfg, struct store *st,
    const struct eligible_ask *a, struct eligible_verdict *v_r, char *err)
{
	struct eligible_run r = { .cfg = cfg, .st = st, .a = a, .v = v_r,
	    .addr = a->rcpt != NULL ? a->rcpt : "",
	    .contact_id = a->contact_id, .purpose_id = a->purpose_id };
	const enum eligible_rule *rule;
	int i, rc;

	if ((unsigned)a->when > ELIGIBLE_LEAVE ||
	    (unsigned)a->kind > ELIGIBLE_NEWSLETTER)
		pd_fatal("eligible_check: kind %d at moment %d", (int)a->kind,
		    (int)a->when);
	rule = eligible_table[a->when][a->kind];
	for (i = 0; i < ER_MAX && rule[i] != ER_END; i++) {
		memset(v_r, 0, sizeof(*v_r));
		if ((rc = eligible_rules[rule[i]].fn(&r, err)) != 1) {
			if (rc == 0) {
				v_r->reason = eligible_rules[rule[i]].reason;
				if (v_r->why == EW_NONE)
					v_r->why = eligible_rules[rule[i]].why;
			}
			return rc;
		}
	}
	memset(v_r, 0, sizeof(*v_r));
	return 1;
}

/* Only campaigns queue newsletters, and never about a dossier. */
enum eligible_kind
eligible_kind_of(const char *kind, int64_t dossier_id)
{
	if (kind != NULL && strcmp(kind, "newsletter") == 0)
		return ELIGIBLE_NEWSLETTER;
	return dossier_id != 0 ? ELIGIBLE_DOSSIER : ELIGIBLE_NOTICE;
}

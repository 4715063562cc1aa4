/*
 * route.h - where an address delivers: an open dossier (or one of its
 * items, d-<token>+<item>), a bounce report
 * for a message we sent (VERP), an unsubscribe request by mail, or a
 * refusal with its reply code.  The one routing rule that the SMTP/LMTP
 * session (RCPT) and the mailbox host (fetched mail) both call, with the
 * account's sender policy.  It answers; it never writes a reply, logs or
 * counts: the caller does, in its own words.
 */
#ifndef PD_ROUTE_H
#define PD_ROUTE_H

#include <stdint.h>

struct pd_config;
struct store;

/* What a caller needs to route: both borrowed, one thread at a time (the
 * store connection is the calling thread's). */
struct route_env {
	const struct pd_config *cfg;
	struct store *st;
};

enum route_kind {
	ROUTE_NONE = 0,		/* as `txn`: the transaction is still empty */
	ROUTE_DOSSIER,		/* mail to file into an open dossier */
	ROUTE_BOUNCE,		/* a report on an outbound message (VERP) */
	ROUTE_UNSUB,		/* a mailto: unsubscribe (RFC 2369) */
	ROUTE_REFUSED		/* code, enhanced and text say why */
};

/* Why a refusal, for the caller's log and counters. */
enum route_why {
	ROUTE_OK = 0,
	ROUTE_UNKNOWN,		/* 550 5.1.1: nothing of ours has that name */
	ROUTE_TEMPORARY,	/* 451 4.3.0: the lookup failed, err says why */
	ROUTE_SENDER,		/* 550 5.7.1: the account's sender policy */
	ROUTE_MIXED		/* 452 4.5.3: not in this transaction */
};

struct route_outcome {
	enum route_kind kind;
	enum route_why why;
	int code;			/* ROUTE_REFUSED: 550, 451, 452 */
	char enhanced[12];		/* "5.1.1" */
	char text[512];			/* without the session's "Error: " */
	/* ROUTE_DOSSIER, and ROUTE_REFUSED by ROUTE_SENDER: the dossier.
	 * ROUTE_BOUNCE: the outbound message's (dossier_id may be 0).
	 * ROUTE_UNSUB: the contact's account. */
	int64_t dossier_id;
	int64_t account_id;
	char account[64];
	char ref[128];
	char intake_local[80];
	/* ROUTE_DOSSIER: the item part of d-<token>+<item> as sent (folded;
	 * "" for the plain address) and the item it names in this dossier,
	 * or 0 when it names none (intake files unassigned and notes it). */
	char item[40];
	int64_t item_id;
	/* ROUTE_BOUNCE: the VERP token; ROUTE_UNSUB: "u-<token>" */
	char token[72];
	int64_t contact_id;		/* ROUTE_UNSUB: the token's contact */
	int64_t purpose_id;		/* and purpose */
};

/*
 * Route addr (a forward-path, normalised) for the envelope sender
 * (""  = the null sender).  txn is the kind of the recipients already
 * accepted in this transaction (ROUTE_NONE if none): a transaction holds
 * dossier mail, bounce reports or unsubscribe requests, never two of them
 * (RFC 5321 4.5.3.1.10: the client sends the others later).  Fills *o and
 * returns o->kind; on ROUTE_TEMPORARY, err says what failed.
 */
enum route_kind route_address(const struct route_env *env, const char *addr,
    const char *sender, enum route_kind txn, struct route_outcome *o,
    char *err);

#endif

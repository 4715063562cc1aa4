/*
 * route.c - routing an address: b-<token>@<bounce domain> (VERP) to the
 * outbound message it names, u-<token>@<list domain> to the contact and
 * purpose of a valid unsubscribe token, d-<token>@<intake domain> to an
 * open dossier whose account's sender policy admits the sender, and
 * d-<token>+<item>@<intake domain> to the same dossier and that item.
 * Every other answer is a refusal with its code.  It reads the store through the
 * caller's connection and never writes, replies, logs or counts.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/config.h"
#include "lib/smtp_addr.h"
#include "consent/unsub.h"
#include "route.h"
#include "store/store.h"
#include "lib/util.h"

static enum route_kind
route_refuse(struct route_outcome *o, enum route_why why, int code,
    const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static enum route_kind
route_refuse(struct route_outcome *o, enum route_why why, int code,
    const char *enh, const char *fmt, ...)
{
	va_list ap;

	o->kind = ROUTE_REFUSED;
	o->why = why;
	o->code = code;
	snprintf(o->enhanced, sizeof(o->enhanced), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(o->text, sizeof(o->text), fmt, ap);
	va_end(ap);
	return o->kind;
}

static enum route_kind
route_unknown(struct route_outcome *o)
{
	return route_refuse(o, ROUTE_UNKNOWN, 550, "5.1.1",
	    "no such dossier here");
}

static enum route_kind
route_temporary(struct route_outcome *o)
{
	return route_refuse(o, ROUTE_TEMPORARY, 451, "4.3.0",
	    "temporary lookup failure");
}

/*
 * Bounce reports: accepted only for a token we issued, whatever the
 * sender (DSNs come from <>).  The mixing rule is checked before the
 * lookup, so a report in the wrong transaction costs no query.
 */
static enum route_kind
route_bounce(const struct route_env *env, const char *token,
    enum route_kind txn, struct route_outcome *o, char *err)
{
	struct store_outbound ob;
	int found;

	if (txn != ROUTE_NONE && txn != ROUTE_BOUNCE)
		return route_refuse(o, ROUTE_MIXED, 452, "4.5.3", "send bounce "
		    "reports in a transaction of their own");
	found = store_outbound_by_verp(env->st, token, &ob, err);
	if (found < 0)
		return route_temporary(o);
	if (found == 0)
		return route_unknown(o);
	o->kind = ROUTE_BOUNCE;
	o->dossier_id = ob.dossier_id;
	o->account_id = ob.account_id;
	snprintf(o->account, sizeof(o->account), "%s", ob.account);
	snprintf(o->token, sizeof(o->token), "%s", token);
	return o->kind;
}

/*
 * Unsubscribe by mail (RFC 2369 mailto:): the token authenticates, never
 * the sender.  unsub_token_check runs even when the contact is unknown,
 * so an unknown token costs what a forged one does.
 */
static enum route_kind
route_unsub(const struct route_env *env, const char *token,
    enum route_kind txn, struct route_outcome *o, char *err)
{
	struct store_contact c;
	struct unsub_token t;
	int found = 0;

	if (txn != ROUTE_NONE && txn != ROUTE_UNSUB)
		return route_refuse(o, ROUTE_MIXED, 452, "4.5.3", "send "
		    "unsubscribe requests in a transaction of their own");
	memset(&t, 0, sizeof(t));
	if (unsub_token_parse(token, &t) &&
	    (found = store_contact_by_id(env->st, t.id, &c, err)) < 0)
		return route_temporary(o);
	if (!unsub_token_check(env->cfg, UNSUB_T_UNSUB, found == 1 ?
	    c.account_id : 0, &t) || found != 1)
		return route_unknown(o);
	o->kind = ROUTE_UNSUB;
	o->account_id = c.account_id;
	snprintf(o->account, sizeof(o->account), "%s", c.account);
	snprintf(o->token, sizeof(o->token), "u-%s", token);
	o->contact_id = t.id;
	o->purpose_id = t.purpose_id;
	return o->kind;
}

/*
 * The item an item address names: its id, or 0 for a part that names no
 * item of this dossier.  Looked up only once the plain address would be
 * accepted, and accepted whatever it finds: an unknown item is filed
 * unassigned (nothing lost), and RCPT tells nobody which items exist.
 */
static enum route_kind
route_item(const struct route_env *env, struct route_outcome *o, char *err)
{
	struct store_item it;
	int found;

	if (o->item[0] == '\0')
		return o->kind;
	found = store_item_by_slug(env->st, o->account_id, o->dossier_id,
	    o->item, &it, err);
	if (found < 0)
		return route_temporary(o);
	o->item_id = found == 1 ? it.id : 0;
	return o->kind;
}

/* An open dossier, then the account's sender policy on the sender, then
 * the item when the address names one. */
static enum route_kind
route_dossier(const struct route_env *env, const char *addr,
    const char *sender, enum route_kind txn, struct route_outcome *o,
    char *err)
{
	struct store_dossier d;
	char local[80];
	int found;

	if (txn != ROUTE_NONE && txn != ROUTE_DOSSIER)
		return route_refuse(o, ROUTE_MIXED, 452, "4.5.3", "send "
		    "dossier mail in a transaction of its own");
	/* A malformed item part (not [a-z0-9-], too long) is no address
	 * of ours, whatever the token: refused before any lookup. */
	if (!smtp_addr_intake_item(addr, env->cfg->intake_domain, local,
	    sizeof(local), o->item, sizeof(o->item)))
		return route_unknown(o);
	found = store_dossier_by_local(env->st, local, &d, err);
	if (found < 0)
		return route_temporary(o);
	if (found == 0 || strcmp(d.status, "open") != 0)
		return route_unknown(o);
	o->dossier_id = d.id;
	o->account_id = d.account_id;
	snprintf(o->account, sizeof(o->account), "%s", d.account);
	snprintf(o->ref, sizeof(o->ref), "%s", d.ref);
	snprintf(o->intake_local, sizeof(o->intake_local), "%s",
	    d.intake_local);
	if (!smtp_addr_sender_allowed(d.sender_policy, sender, d.contact))
		return route_refuse(o, ROUTE_SENDER, 550, "5.7.1", "sender "
		    "<%s> may not file into this dossier", sender);
	o->kind = ROUTE_DOSSIER;
	return route_item(env, o, err);
}

enum route_kind
route_address(const struct route_env *env, const char *addr,
    const char *sender, enum route_kind txn, struct route_outcome *o,
    char *err)
{
	char verp[72], unsub[UNSUB_TOKEN_MAX];

	memset(o, 0, sizeof(*o));
	if (smtp_addr_bounce_token(addr, env->cfg->bounce_domain, verp,
	    sizeof(verp)))
		return route_bounce(env, verp, txn, o, err);
	if (unsub_addr_token(addr, unsub_list_domain(env->cfg), unsub,
	    sizeof(unsub)))
		return route_unsub(env, unsub, txn, o, err);
	return route_dossier(env, addr, sender, txn, o, err);
}

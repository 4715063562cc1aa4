/*
 * consent.h - the consent ledger's rules: purposes per account, records
 * that are only ever appended (grant / withdraw, with basis, source,
 * method, time, IP, user agent, operator and the exact text shown), a
 * contact's status derived from its latest record, age attestation,
 * CSV import and double opt-in requests.  Withdrawing is never refused
 * and never recorded twice in a row; SQL lives in store.c.
 */
#ifndef PD_CONSENT_H
#define PD_CONSENT_H

#include <stdint.h>
#include <stdio.h>

struct pd_config;
struct store;
struct outq_ctx;
struct store_consent_req;

struct consent_act {
	const char *action;	/* "grant" / "withdraw" */
	const char *basis;	/* consent, contract, legitimate_interest */
	const char *source;	/* form api import double_opt_in one_click
				 * mailto admin */
	const char *method;	/* e.g. "rfc8058-one-click", or NULL */
	const char *ip;
	const char *user_agent;
	const char *operator_;
	int64_t text_id;	/* 0: none */
	/* An erased address granting again: the keyed hash to lift (set
	 * by consent_erased_gate), the account's name for the audit. */
	const char *lift_hash;
	const char *account;
	int reconsent;		/* import: lift erased addresses, not refuse */
};

/* 1 if v is one of the words the ledger accepts for that field. */
int consent_basis_valid(const char *v);
int consent_source_valid(const char *v);
/* An address as the ledger keys it: valid, lower-cased into out. */
int consent_email_norm(const char *in, char *out, size_t outlen);

/*
 * Privacy erasure keeps a keyed hash of the address (erased_subjects);
 * a grant for it is refused unless the operator says the person came
 * back on their own (reconsent).  1: go on (hash_r is then the hash to
 * put in consent_act.lift_hash, or "" when never erased); 0: refused,
 * why_r says "ADDR was erased on YYYY-MM-DD"; -1 error.
 */
int consent_erased_gate(const struct pd_config *cfg, struct store *st,
    int64_t account_id, const char *email, int reconsent, char hash_r[65],
    char *why_r, size_t whylen, char *err);

/*
 * Append a record for (contact, purpose) in its own transaction, unless
 * it would repeat the current status (a withdrawal when not granted, a
 * grant when granted).  With a->lift_hash, the same transaction removes
 * the account's erased_subjects row, writes a subject.reconsent audit
 * entry and records the grant's method as "reconsent".  Returns 1
 * recorded, 0 nothing to do, -1 error.
 */
int consent_apply(struct store *st, int64_t account_id, int64_t contact_id,
    int64_t purpose_id, const struct consent_act *a, char *err);

/* Read a consent text file (UTF-8, <= 64 KiB) and store it once. */
int consent_text_load(struct store *st, int64_t account_id, const char *path,
    int64_t *id_r, char *err);

struct consent_import_stats {
	unsigned rows, imported, unchanged, bad;
};
/*
 * Import "email[,adult]" rows (a first line starting "email" is a
 * header) as grants for the purpose.  The separator (",", ";" or tab)
 * is the one the first line uses most outside quotes.  adult is
 * yes/no/true/false/1/0/oui/non/unknown in any case.  A row with a bad
 * address, a bad adult value or an erased address (unless
 * a->reconsent: then it is lifted as by consent_apply) is refused and
 * reported on report, one line each with the line number and why; the
 * other rows are still imported.
 */
int consent_import(const struct pd_config *cfg, struct store *st,
    int64_t account_id, int64_t purpose_id, const char *path,
    const struct consent_act *a, FILE *report,
    struct consent_import_stats *stats, char *err);

/*
 * Double opt-in: record a request and queue the confirmation mail
 * (template consent-request, in the contact's language: `locale` when
 * given is recorded as hers, else what she had, else the account's) with
 * the purpose's display name in that language and a link to
 * <base_url>/c/<token>.  An erased address is refused (CONSENT_ERASED,
 * err "ADDR was erased on DAY") unless reconsent: the operator says the
 * person came back on their own, and the erasure is lifted for the
 * account with an audit entry (operator_, source) before the mail goes.
 */
struct consent_optin {
	const char *account;
	int64_t account_id;
	const char *email;		/* normalised */
	const char *purpose;
	int64_t purpose_id;
	int64_t text_id;		/* 0: none */
	const char *locale;		/* NULL or "": keep the contact's */
	int reconsent;
	const char *source;		/* for the audit: "admin", "api"... */
	const char *operator_;
};
#define CONSENT_ERASED (-3)
int consent_request(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, const struct consent_optin *in,
    int64_t *outbound_id_r, char *err);

/* Confirmation requests older than this are refused (a stale link). */
#define CONSENT_REQUEST_TTL (7 * 86400)

/*
 * The reader confirmed request `req` (the POST behind its link): mark it
 * confirmed and grant its purpose, one transaction, with the request's
 * consent text; ip and user_agent say who.  adult: the page asked and
 * the reader confirmed being an adult (the account requires it): the
 * same transaction attests the contact adult = "yes", adult_by naming
 * the request, and the record's method says so.  1 granted, 0 already
 * confirmed before (an old link clicked again after a withdrawal grants
 * nothing), CONSENT_EXPIRED past CONSENT_REQUEST_TTL, -1 error.
 */
#define CONSENT_EXPIRED (-2)
int consent_confirm(struct store *st, const struct store_consent_req *req,
    const char *ip, const char *user_agent, int adult, int64_t now,
    char *err);

/*
 * A mail to u-<token>@<list domain> (intake, worker thread): withdraw the
 * token's purpose.  1 done (or already so), 0 token not valid, -1 error.
 */
int consent_unsub_mail(const struct pd_config *cfg, struct store *st,
    const char *token, const char *client_ip, char *err);

#endif

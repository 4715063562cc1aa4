/*
 * trust.h - sender authentication: SPF (RFC 7208), DKIM (RFC 6376) and
 * DMARC (RFC 7489) verdicts for one received message, through one
 * resolver (libunbound) whose server is a config entry, and the
 * account's rule on them.  Blocking: call it on worker threads only
 * (intake's workers, the CLI), one trust_ctx per thread.
 * It never turns a DNS failure into a pass (RFC 7208 2.6.6 temperror).
 */
#ifndef PD_TRUST_H
#define PD_TRUST_H

#include <stddef.h>
#include <stdint.h>

struct trust_ctx;

#define TRUST_DOMAIN_MAX 256
#define TRUST_DKIM_MAX 8		/* signatures reported per message */
#define TRUST_AR_MAX 1024

/* What the SMTP session saw, and the message as received. */
struct trust_input {
	const char *client_ip;		/* "192.0.2.1" or "2001:db8::1" */
	const char *helo;		/* may be "" */
	const char *mail_from;		/* envelope sender, "" = null sender */
	const unsigned char *raw;	/* the message, headers and body */
	size_t raw_len;
	const char *authserv_id;	/* server.hostname (RFC 8601 2.5) */
	int64_t deadline_ms;		/* pd_monotonic_ms() end of the whole
					 * check (the message's budget), 0 =
					 * only the per-query timeout */
};

/* One DKIM signature's result (RFC 8601 2.7.1 names). */
struct trust_dkim_sig {
	char result[16];		/* pass fail neutral temperror permerror */
	char domain[TRUST_DOMAIN_MAX];	/* d= */
};

struct trust_verdict {
	/* RFC 8601 result words: pass fail softfail neutral none
	 * temperror permerror; "" = not checked. */
	char spf[16], dkim[16], dmarc[16];
	char spf_domain[TRUST_DOMAIN_MAX];	/* MAIL FROM (or HELO) domain */
	char from_domain[TRUST_DOMAIN_MAX];	/* RFC 5322 From: domain */
	unsigned ndkim;
	struct trust_dkim_sig sigs[TRUST_DKIM_MAX];
	char ar[TRUST_AR_MAX];		/* Authentication-Results value */
};

/* The account's rule on a verdict. */
enum trust_rule_result { TRUST_PASS = 1, TRUST_FAIL = -1, TRUST_TEMP = 0 };

/*
 * dns_server: "" = the system's /etc/resolv.conf, else a forwarder
 * "IP" or "IP@PORT"; timeout_ms bounds each query.  On failure returns
 * -1 with a message in err (PD_ERRLEN).
 */
int trust_ctx_new(const char *dns_server, int timeout_ms,
    struct trust_ctx **ctx_r, char *err);
void trust_ctx_free(struct trust_ctx **ctx);

/* Check SPF, DKIM and DMARC and fill v (including v->ar).  Returns 0;
 * DNS trouble shows as temperror in v, never as an error return. */
int trust_check(struct trust_ctx *ctx, const struct trust_input *in,
    struct trust_verdict *v);

/* ---- pure functions (trust_verdict.c), no DNS ------------------------ */

/*
 * The account's rule (sender_auth "spf-or-dkim" or "dmarc") on v for
 * the envelope sender mail_from.  "spf-or-dkim": SPF pass for the MAIL
 * FROM domain, or a passing DKIM signature whose d= is that domain or a
 * parent of it; "dmarc": DMARC pass for the From: domain, that domain
 * aligned (relaxed) with the MAIL FROM domain.  *check_r names the
 * check that failed ("SPF/DKIM", "DMARC") for the reply.
 */
enum trust_rule_result trust_rule(const char *rule,
    const struct trust_verdict *v, const char *mail_from,
    const char **check_r);

/* RFC 8601 value of v into v->ar: "<authserv-id>; spf=... ". */
void trust_format_ar(struct trust_verdict *v, const char *authserv_id,
    const char *mail_from);

/* Organisational domain (RFC 7489 3.2) without a Public Suffix List:
 * the last two labels, three under a two-letter ccTLD's generic
 * second level (co.uk, com.au...).  Writes into out (TRUST_DOMAIN_MAX). */
void trust_org_domain(const char *domain, char *out);

/* Relaxed alignment (RFC 7489 3.1): same organisational domain. */
int trust_aligned(const char *a, const char *b);

/* The domain of an address ("" if none), lower-cased, into out. */
void trust_addr_domain(const char *addr, char *out);

/* The RFC 5322 From: domain of a raw message (the first From: field's
 * address) into out; *count_r: how many From: fields (DMARC wants 1). */
void trust_from_domain(const unsigned char *raw, size_t len, char *out,
    int *count_r);

#endif

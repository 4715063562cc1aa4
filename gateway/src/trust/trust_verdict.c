/*
 * trust_verdict.c - owns the pure side of sender authentication: the
 * account's rule on a verdict, the RFC 8601 Authentication-Results
 * value, organisational domains and relaxed alignment (RFC 7489 3.1).
 * It never resolves anything: unit-tested as tables.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "trust.h"

void
trust_addr_domain(const char *addr, char *out)
{
	const char *at = strrchr(addr, '@');
	size_t o = 0;

	out[0] = '\0';
	if (at == NULL)
		return;
	for (at++; *at != '\0' && o + 1 < TRUST_DOMAIN_MAX; at++) {
		unsigned char ch = (unsigned char)*at;

		if (ch == '>' || ch == ' ' || ch == '\t' || ch == ';' ||
		    ch == ',' || ch == ')' || ch == '(')
			break;
		out[o++] = (char)tolower(ch);
	}
	while (o > 0 && out[o - 1] == '.')	/* a trailing root dot */
		o--;
	out[o] = '\0';
}

/* Generic second levels under two-letter ccTLDs (co.uk, com.au...). */
static int
trust_generic_sld(const char *label, size_t n)
{
	static const char *const sld[] = { "co", "com", "net", "org", "ac",
	    "gov", "edu", "gouv", "or", "ne", "go", NULL };
	unsigned i;

	for (i = 0; sld[i] != NULL; i++)
		if (strlen(sld[i]) == n && strncasecmp(label, sld[i], n) == 0)
			return 1;
	return 0;
}

void
trust_org_domain(const char *domain, char *out)
{
	const char *dots[3] = { NULL, NULL, NULL };	/* last three '.' */
	const char *p, *start;
	size_t tld;

	for (p = domain; *p != '\0'; p++)
		if (*p == '.') {
			dots[2] = dots[1];
			dots[1] = dots[0];
			dots[0] = p;
		}
	start = domain;
	if (dots[1] != NULL) {
		tld = strlen(dots[0] + 1);
		start = dots[1] + 1;
		if (tld == 2 && trust_generic_sld(start,
		    (size_t)(dots[0] - start)))
			start = dots[2] != NULL ? dots[2] + 1 : domain;
	}
	snprintf(out, TRUST_DOMAIN_MAX, "%s", start);
}

int
trust_aligned(const char *a, const char *b)
{
	char oa[TRUST_DOMAIN_MAX], ob[TRUST_DOMAIN_MAX];

	if (a[0] == '\0' || b[0] == '\0')
		return 0;
	trust_org_domain(a, oa);
	trust_org_domain(b, ob);
	return strcasecmp(oa, ob) == 0;
}

/* d is dom or a parent of it: "example.fr" for "mail.example.fr". */
static int
trust_parent_or_same(const char *d, const char *dom)
{
	size_t ld = strlen(d), ln = strlen(dom);

	if (ld == 0 || ld > ln)
		return 0;
	if (strcasecmp(dom + ln - ld, d) != 0)
		return 0;
	return ld == ln || dom[ln - ld - 1] == '.';
}

/* spf-or-dkim: the envelope sender's domain vouched for by SPF, or by
 * a DKIM signature of that domain or a parent (a forger's own valid
 * signature, d=evil.example, does not speak for example.fr). */
static enum trust_rule_result
trust_rule_spf_dkim(const struct trust_verdict *v, const char *dom)
{
	int temp = strcmp(v->spf, "temperror") == 0;
	unsigned i;

	if (strcmp(v->spf, "pass") == 0 && strcasecmp(v->spf_domain, dom) == 0)
		return TRUST_PASS;
	for (i = 0; i < v->ndkim; i++) {
		if (!trust_parent_or_same(v->sigs[i].domain, dom))
			continue;
		if (strcmp(v->sigs[i].result, "pass") == 0)
			return TRUST_PASS;
		temp |= strcmp(v->sigs[i].result, "temperror") == 0;
	}
	return temp ? TRUST_TEMP : TRUST_FAIL;
}

enum trust_rule_result
trust_rule(const char *rule, const struct trust_verdict *v,
    const char *mail_from, const char **check_r)
{
	char dom[TRUST_DOMAIN_MAX];

	trust_addr_domain(mail_from, dom);
	if (rule != NULL && strcmp(rule, "dmarc") == 0) {
		*check_r = "DMARC";
		if (strcmp(v->dmarc, "temperror") == 0)
			return TRUST_TEMP;
		return strcmp(v->dmarc, "pass") == 0 && dom[0] != '\0' &&
		    trust_aligned(v->from_domain, dom) ? TRUST_PASS :
		    TRUST_FAIL;
	}
	*check_r = "SPF/DKIM";
	if (dom[0] == '\0')
		return TRUST_FAIL;	/* the null sender vouches for no one */
	return trust_rule_spf_dkim(v, dom);
}

/* Append to the value, never past its end. */
static void trust_ar_add(char *ar, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
trust_ar_add(char *ar, const char *fmt, ...)
{
	size_t n = strlen(ar);
	va_list ap;

	if (n + 1 >= TRUST_AR_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(ar + n, TRUST_AR_MAX - n, fmt, ap);
	va_end(ap);
}

/* A property value (RFC 8601 2.2): a domain or address here; anything
 * else is dropped so the value stays one well-formed header body. */
static void
trust_ar_clean(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (; *in != '\0' && o + 1 < cap; in++)
		if (isalnum((unsigned char)*in) || strchr(".-_@+", *in))
			out[o++] = *in;
	out[o] = '\0';
}

void
trust_format_ar(struct trust_verdict *v, const char *authserv_id,
    const char *mail_from)
{
	char a[TRUST_DOMAIN_MAX + 300], b[TRUST_DOMAIN_MAX];
	unsigned i;

	trust_ar_clean(authserv_id, b, sizeof(b));
	snprintf(v->ar, TRUST_AR_MAX, "%s", b);
	/* RFC 8601 2.7.2: smtp.mailfrom, the null sender's HELO domain. */
	trust_ar_clean(mail_from[0] ? mail_from : v->spf_domain, a, sizeof(a));
	trust_ar_add(v->ar, "; spf=%s smtp.mailfrom=%s", v->spf, a);
	if (v->ndkim == 0)
		trust_ar_add(v->ar, "; dkim=%s", v->dkim);
	for (i = 0; i < v->ndkim; i++) {
		trust_ar_clean(v->sigs[i].domain, b, sizeof(b));
		trust_ar_add(v->ar, "; dkim=%s header.d=%s",
		    v->sigs[i].result, b);
	}
	trust_ar_clean(v->from_domain, b, sizeof(b));
	if (b[0] != '\0')
		trust_ar_add(v->ar, "; dmarc=%s header.from=%s", v->dmarc, b);
	else
		trust_ar_add(v->ar, "; dmarc=%s", v->dmarc);
}

/*
 * trust_dmarc.c - owns DMARC (RFC 7489): the RFC 5322 From: domain, the
 * _dmarc TXT record we fetch (the From: domain's, else its
 * organisational domain's, 6.6.3), and libopendmarc's evaluation of
 * that record against our SPF and DKIM results.
 * It never lets libopendmarc query DNS itself (it would use the system
 * resolver, not dns.server).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <opendmarc/dmarc.h>

#include "lib/util.h"
#include "trust_int.h"

static pthread_once_t trust_dmarc_once = PTHREAD_ONCE_INIT;
static OPENDMARC_LIB_T trust_dmarc_lib;

static void
trust_dmarc_init(void)
{
	/* No Public Suffix List: trust_org_domain's rule (trust.h). */
	memset(&trust_dmarc_lib, 0, sizeof(trust_dmarc_lib));
	trust_dmarc_lib.tld_type = OPENDMARC_TLD_TYPE_NONE;
	(void)opendmarc_policy_library_init(&trust_dmarc_lib);
}

/* The value of the header block's From: fields (unfolded), how many. */
static void
trust_from_value(const unsigned char *raw, size_t len, char *val,
    size_t cap, int *count_r)
{
	size_t i = 0, o = 0;
	int in_from = 0;

	*count_r = 0;
	val[0] = '\0';
	while (i < len) {
		size_t e = i;

		while (e < len && raw[e] != '\n')
			e++;
		if (e == i || (e == i + 1 && raw[i] == '\r'))
			break;			/* end of the header block */
		if (raw[i] == ' ' || raw[i] == '\t') {
			if (in_from)
				goto copy;
		} else if (e - i >= 5 && strncasecmp((const char *)raw + i,
		    "from:", 5) == 0) {
			in_from = ++*count_r == 1;
			if (in_from) {
				i += 5;
				goto copy;
			}
		} else
			in_from = 0;
		i = e + 1;
		continue;
copy:
		for (; i < e && o + 1 < cap; i++)
			if (raw[i] != '\r')
				val[o++] = (char)raw[i];
		val[o] = '\0';
		i = e + 1;
	}
}

void
trust_from_domain(const unsigned char *raw, size_t len, char *out,
    int *count_r)
{
	char val[1024], *lt, *gt;

	trust_from_value(raw, len, val, sizeof(val), count_r);
	/* "Name <a@b>": the angle-addr; else the bare addr-spec. */
	lt = strrchr(val, '<');
	if (lt != NULL && (gt = strchr(lt, '>')) != NULL) {
		*gt = '\0';
		trust_addr_domain(lt + 1, out);
	} else
		trust_addr_domain(val, out);
}

struct trust_rec {
	char rec[1024];
	int found;
};

static void
trust_dmarc_txt(const char *txt, size_t len, void *arg)
{
	struct trust_rec *r = arg;

	(void)len;
	/* RFC 7489 6.6.3: records not starting "v=DMARC1" are ignored;
	 * more than one DMARC record means none. */
	if (strncmp(txt, "v=DMARC1", 8) != 0)
		return;
	if (r->found++ == 0)
		snprintf(r->rec, sizeof(r->rec), "%s", txt);
}

/* 0: found, 1: none, -1: temporary failure. */
static int
trust_dmarc_fetch(struct trust_ctx *c, const char *domain,
    struct trust_rec *r)
{
	char name[TRUST_DOMAIN_MAX + 8];
	enum trust_dns st;

	memset(r, 0, sizeof(*r));
	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	st = trust_dns_txt(c, name, trust_dmarc_txt, r);
	if (st == TRUST_DNS_TEMP)
		return -1;
	return r->found == 1 ? 0 : 1;
}

static int
trust_dmarc_spf(const char *w)
{
	if (strcmp(w, "pass") == 0)
		return DMARC_POLICY_SPF_OUTCOME_PASS;
	if (strcmp(w, "temperror") == 0)
		return DMARC_POLICY_SPF_OUTCOME_TMPFAIL;
	if (strcmp(w, "fail") == 0 || strcmp(w, "softfail") == 0)
		return DMARC_POLICY_SPF_OUTCOME_FAIL;
	return DMARC_POLICY_SPF_OUTCOME_NONE;
}

static int
trust_dmarc_dkim(const char *w)
{
	if (strcmp(w, "pass") == 0)
		return DMARC_POLICY_DKIM_OUTCOME_PASS;
	if (strcmp(w, "temperror") == 0)
		return DMARC_POLICY_DKIM_OUTCOME_TMPFAIL;
	if (strcmp(w, "fail") == 0)
		return DMARC_POLICY_DKIM_OUTCOME_FAIL;
	return DMARC_POLICY_DKIM_OUTCOME_NONE;
}

/* libopendmarc's verdict on the record we fetched. */
static const char *
trust_dmarc_eval(const struct trust_input *in, const struct trust_verdict *v,
    const char *rec, const char *org)
{
	int v6 = strchr(in->client_ip, ':') != NULL;
	/* libopendmarc wants an address; it only reports it (RFC 7489 7). */
	DMARC_POLICY_T *p = opendmarc_policy_connect_init(
	    (u_char *)(in->client_ip[0] ? in->client_ip : "0.0.0.0"),
	    v6 ? DMARC_POLICY_IP_TYPE_IPV6 : DMARC_POLICY_IP_TYPE_IPV4);
	int pol = -1;
	unsigned i;

	if (p == NULL)
		return "temperror";
	if (opendmarc_policy_store_from_domain(p, (u_char *)v->from_domain)
	    != DMARC_PARSE_OKAY ||
	    opendmarc_policy_store_dmarc(p, (u_char *)rec,
	    (u_char *)v->from_domain, (u_char *)org) != DMARC_PARSE_OKAY) {
		opendmarc_policy_connect_shutdown(p);
		return "permerror";
	}
	(void)opendmarc_policy_store_spf(p, (u_char *)v->spf_domain,
	    trust_dmarc_spf(v->spf), in->mail_from[0] ?
	    DMARC_POLICY_SPF_ORIGIN_MAILFROM : DMARC_POLICY_SPF_ORIGIN_HELO,
	    NULL);
	for (i = 0; i < v->ndkim; i++)
		(void)opendmarc_policy_store_dkim(p,
		    (u_char *)v->sigs[i].domain, NULL,
		    trust_dmarc_dkim(v->sigs[i].result), NULL);
	pol = opendmarc_get_policy_to_enforce(p);
	opendmarc_policy_connect_shutdown(p);
	return pol == DMARC_POLICY_PASS ? "pass" : "fail";
}

void
trust_dmarc_check(struct trust_ctx *c, const struct trust_input *in,
    struct trust_verdict *v)
{
	struct trust_rec r;
	char org[TRUST_DOMAIN_MAX];
	int count, st;

	pthread_once(&trust_dmarc_once, trust_dmarc_init);
	trust_from_domain(in->raw, in->raw_len, v->from_domain, &count);
	if (count != 1 || v->from_domain[0] == '\0') {
		/* RFC 7489 6.6.1: no single From: domain to evaluate. */
		snprintf(v->dmarc, sizeof(v->dmarc), "permerror");
		return;
	}
	trust_org_domain(v->from_domain, org);
	st = trust_dmarc_fetch(c, v->from_domain, &r);
	if (st == 1 && strcasecmp(org, v->from_domain) != 0)
		st = trust_dmarc_fetch(c, org, &r);
	if (st < 0)
		snprintf(v->dmarc, sizeof(v->dmarc), "temperror");
	else if (st == 1)
		snprintf(v->dmarc, sizeof(v->dmarc), "none");
	else
		snprintf(v->dmarc, sizeof(v->dmarc), "%s",
		    trust_dmarc_eval(in, v, r.rec, org));
	/* Not passing while a check it rests on had DNS trouble: we do
	 * not know, so temperror, never a fail we cannot stand behind. */
	if (strcmp(v->dmarc, "fail") == 0 && (strcmp(v->spf, "temperror")
	    == 0 || strcmp(v->dkim, "temperror") == 0))
		snprintf(v->dmarc, sizeof(v->dmarc), "temperror");
}

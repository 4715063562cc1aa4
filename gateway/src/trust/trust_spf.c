/*
 * trust_spf.c - owns SPF (RFC 7208) through libspf2 with a DNS layer of
 * our own over libunbound (libspf2's resolv layer reads only the
 * system's resolver: it cannot be pointed at dns.server).
 * It never reports a DNS failure as anything but temperror (2.6.6).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "lib/util.h"
#include "trust_int.h"

/* A wire-format domain name (unbound hands rdata names uncompressed)
 * as text, into out (NI_MAXHOST). */
static int
trust_wire_name(const unsigned char *p, size_t n, char *out, size_t cap)
{
	size_t i = 0, o = 0;

	while (i < n && p[i] != 0) {
		size_t l = p[i++];

		if (l > 63 || l > n - i || o + l + 2 > cap)
			return -1;
		if (o > 0)
			out[o++] = '.';
		memcpy(out + o, p + i, l);
		o += l;
		i += l;
	}
	out[o] = '\0';
	return 0;
}

/* Copy one RR of r into rr slot idx as libspf2 wants it. */
static int
trust_spf_rr(SPF_dns_rr_t *rr, int idx, ns_type t, const unsigned char *d,
    size_t n)
{
	char name[NI_MAXHOST];

	switch (t) {
	case ns_t_a:
		if (n != 4 || SPF_dns_rr_buf_realloc(rr, idx, 4) != 0)
			return -1;
		memcpy(&rr->rr[idx]->a, d, 4);
		return 0;
	case ns_t_aaaa:
		if (n != 16 || SPF_dns_rr_buf_realloc(rr, idx, 16) != 0)
			return -1;
		memcpy(&rr->rr[idx]->aaaa, d, 16);
		return 0;
	case ns_t_mx:		/* preference, then the exchange */
		if (n < 3 || trust_wire_name(d + 2, n - 2, name,
		    sizeof(name)) != 0)
			return -1;
		break;
	case ns_t_ptr:
		if (trust_wire_name(d, n, name, sizeof(name)) != 0)
			return -1;
		break;
	default: {		/* TXT and SPF (99): joined strings */
		char *txt = xmalloc(n + 1);
		size_t o = trust_txt_join(d, n, txt);

		if (SPF_dns_rr_buf_realloc(rr, idx, o + 1) != 0) {
			free(txt);
			return -1;
		}
		memcpy(rr->rr[idx]->txt, txt, o + 1);
		free(txt);
		return 0;
	}
	}
	if (SPF_dns_rr_buf_realloc(rr, idx, strlen(name) + 1) != 0)
		return -1;
	strcpy(rr->rr[idx]->mx, name);	/* mx and ptr share the slot */
	return 0;
}

/* SPF_dns_lookup_t: every query libspf2 makes comes here. */
static SPF_dns_rr_t *
trust_spf_lookup(SPF_dns_server_t *s, const char *domain, ns_type t,
    int should_cache)
{
	struct trust_ctx *c = s->hook;
	struct ub_result *r;
	SPF_dns_rr_t *rr;
	int i, n = 0;

	(void)should_cache;	/* unbound caches */
	switch (trust_dns_query(c, domain, (int)t, &r)) {
	case TRUST_DNS_NXDOMAIN:
		return SPF_dns_rr_new_init(s, domain, t, 0, HOST_NOT_FOUND);
	case TRUST_DNS_NODATA:
		return SPF_dns_rr_new_init(s, domain, t, 0, NO_DATA);
	case TRUST_DNS_TEMP:
		return SPF_dns_rr_new_init(s, domain, t, 0, TRY_AGAIN);
	case TRUST_DNS_OK:
		break;
	}
	rr = SPF_dns_rr_new_init(s, domain, t, r->ttl, NETDB_SUCCESS);
	for (i = 0; rr != NULL && r->data[i] != NULL; i++)
		if (trust_spf_rr(rr, n, t, (const unsigned char *)r->data[i],
		    (size_t)r->len[i]) == 0)
			n++;
	if (rr != NULL) {
		rr->num_rr = n;
		if (n == 0)
			rr->herrno = NO_DATA;
	}
	ub_resolve_free(r);
	return rr;
}

int
trust_spf_init(struct trust_ctx *c, char *err)
{
	SPF_dns_server_t *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		pd_err(err, "libspf2: out of memory");
		return -1;
	}
	s->destroy = NULL;	/* ours: freed by trust_spf_free */
	s->lookup = trust_spf_lookup;
	s->name = "postdoc-unbound";
	s->hook = c;
	c->spf_layer = s;
	c->spf = SPF_server_new_dns(s, 0);
	if (c->spf == NULL) {
		pd_err(err, "libspf2: cannot create a server");
		return -1;
	}
	return 0;
}

void
trust_spf_free(struct trust_ctx *c)
{
	if (c->spf != NULL)
		SPF_server_free(c->spf);
	c->spf = NULL;
	free(c->spf_layer);
	c->spf_layer = NULL;
}

static const char *
trust_spf_word(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS: return "pass";
	case SPF_RESULT_FAIL: return "fail";
	case SPF_RESULT_SOFTFAIL: return "softfail";
	case SPF_RESULT_NEUTRAL: return "neutral";
	case SPF_RESULT_NONE: return "none";
	case SPF_RESULT_TEMPERROR: return "temperror";
	default: return "permerror";
	}
}

/* libspf2 reports a lookup that failed (TRY_AGAIN) as permerror with
 * SPF_E_DNS_ERROR among its messages; RFC 7208 4.4 and 2.6.6 make it
 * temperror. */
static int
trust_spf_dns_failed(SPF_response_t *rp)
{
	int i, n = SPF_response_messages(rp);

	if (SPF_response_errcode(rp) == SPF_E_DNS_ERROR)
		return 1;
	for (i = 0; i < n; i++)
		if (SPF_error_code(SPF_response_message(rp, i)) ==
		    SPF_E_DNS_ERROR)
			return 1;
	return 0;
}

/*
 * RFC 7208 2.4: the MAIL FROM identity; for the null sender, the HELO
 * identity as postmaster@helo.  libspf2 derives the domain itself.
 * libspf2 passes any loopback client without reading the record ("a
 * free ride", SPF_REASON_LOCALHOST): behind a local relay that would
 * vouch for every forged sender.  SPF says nothing about a client on
 * this host, so that is "none" here, and DKIM must vouch.
 */
void
trust_spf_check(struct trust_ctx *c, const struct trust_input *in,
    struct trust_verdict *v)
{
	SPF_request_t *rq = SPF_request_new(c->spf);
	SPF_response_t *rp = NULL;
	const char *helo = in->helo ? in->helo : "";
	char from[600];
	int ok;

	if (in->mail_from[0] != '\0')
		snprintf(from, sizeof(from), "%s", in->mail_from);
	else
		snprintf(from, sizeof(from), "postmaster@%s", helo);
	trust_addr_domain(from, v->spf_domain);
	if (in->client_ip[0] == '\0') {
		/* No SMTP client known (fetched mail): nothing to check. */
		snprintf(v->spf, sizeof(v->spf), "none");
		SPF_request_free(rq);
		return;
	}
	ok = strchr(in->client_ip, ':') != NULL ?
	    SPF_request_set_ipv6_str(rq, in->client_ip) == 0 :
	    SPF_request_set_ipv4_str(rq, in->client_ip) == 0;
	if (ok && helo[0] != '\0')
		(void)SPF_request_set_helo_dom(rq, helo);
	if (ok && SPF_request_set_env_from(rq, from) == 0) {
		(void)SPF_request_query_mailfrom(rq, &rp);
		snprintf(v->spf, sizeof(v->spf), "%s", rp == NULL ||
		    trust_spf_dns_failed(rp) ? "temperror" :
		    SPF_response_reason(rp) == SPF_REASON_LOCALHOST ? "none" :
		    trust_spf_word(SPF_response_result(rp)));
	} else
		snprintf(v->spf, sizeof(v->spf), "permerror");
	if (rp != NULL)
		SPF_response_free(rp);
	SPF_request_free(rq);
}

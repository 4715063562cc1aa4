/*
 * trust_dkim.c - owns DKIM verification (RFC 6376) through libopendkim,
 * its key queries answered by our libunbound context through the
 * library's query-service hooks (dkim_dns_set_query_*).
 * It never treats a key it could not fetch as a failure of the
 * signature: that is temperror (RFC 6376 6.1.2, RFC 8601 2.7.1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <opendkim/dkim.h>

#include "lib/util.h"
#include "trust_int.h"

/* One query: done synchronously at start, handed over at waitreply. */
struct trust_dkim_q {
	int status;			/* DKIM_DNS_SUCCESS or _ERROR */
	size_t len;
};

static int
trust_dkim_start(void *srv, int type, unsigned char *query,
    unsigned char *buf, size_t buflen, void **qh)
{
	struct trust_ctx *c = srv;
	struct trust_dkim_q *q = xcalloc(1, sizeof(*q));
	struct ub_result *r = NULL;

	/* The reply packet itself: libopendkim parses it (NXDOMAIN and
	 * NODATA included, which it reports as no key). */
	q->status = DKIM_DNS_ERROR;
	if (trust_dns_answer(c, (const char *)query, type, &r) !=
	    TRUST_DNS_TEMP && r->answer_packet != NULL &&
	    (size_t)r->answer_len <= buflen) {
		memcpy(buf, r->answer_packet, (size_t)r->answer_len);
		q->len = (size_t)r->answer_len;
		q->status = DKIM_DNS_SUCCESS;
	}
	if (r != NULL)
		ub_resolve_free(r);
	*qh = q;
	return 0;
}

static int
trust_dkim_cancel(void *srv, void *qh)
{
	(void)srv;
	free(qh);
	return 0;
}

static int
trust_dkim_wait(void *srv, void *qh, struct timeval *to, size_t *bytes,
    int *error, int *dnssec)
{
	struct trust_dkim_q *q = qh;

	(void)srv;
	(void)to;
	if (bytes != NULL)
		*bytes = q->len;
	if (error != NULL)
		*error = q->status == DKIM_DNS_SUCCESS ? 0 : -1;
	if (dnssec != NULL)
		*dnssec = 0;		/* DKIM_DNSSEC_UNKNOWN */
	return q->status;
}

/* The service is our trust_ctx: the library must not close it (its
 * default close is res_nclose on what it thinks is a resolver). */
static void
trust_dkim_close(void *srv)
{
	(void)srv;
}

int
trust_dkim_init(struct trust_ctx *c, char *err)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);

	if (lib == NULL) {
		pd_err(err, "libopendkim: dkim_init failed");
		return -1;
	}
	dkim_dns_set_init(lib, NULL);
	dkim_dns_set_close(lib, trust_dkim_close);
	dkim_dns_set_query_service(lib, c);
	dkim_dns_set_query_start(lib, trust_dkim_start);
	dkim_dns_set_query_cancel(lib, trust_dkim_cancel);
	dkim_dns_set_query_waitreply(lib, trust_dkim_wait);
	c->dkim = (struct dkim_lib *)lib;
	return 0;
}

void
trust_dkim_free(struct trust_ctx *c)
{
	if (c->dkim != NULL)
		dkim_close((DKIM_LIB *)c->dkim);
	c->dkim = NULL;
}

/* RFC 8601 2.7.1 word for one verified (or not) signature. */
static const char *
trust_dkim_word(DKIM_SIGINFO *s)
{
	int e = dkim_sig_geterror(s);

	if (DKIM_SIG_CHECK(s))
		return "pass";
	if (e == DKIM_SIGERROR_KEYFAIL)
		return "temperror";
	if ((dkim_sig_getflags(s) & DKIM_SIGFLAG_PROCESSED) == 0 ||
	    e == DKIM_SIGERROR_NOKEY || e == DKIM_SIGERROR_DNSSYNTAX ||
	    e == DKIM_SIGERROR_VERSION || e == DKIM_SIGERROR_INVALID_HC ||
	    e == DKIM_SIGERROR_MISSING_V || e == DKIM_SIGERROR_KEYDECODE ||
	    e == DKIM_SIGERROR_KEYREVOKED)
		return "permerror";
	return "fail";
}

/* pass beats temperror beats fail beats permerror (RFC 6376 6.1: a
 * message passes when any signature verifies). */
static int
trust_dkim_rank(const char *w)
{
	static const char *const order[] = { "pass", "temperror", "fail",
	    "permerror", "neutral", "none" };
	unsigned i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (strcmp(w, order[i]) == 0)
			return (int)i;
	return 5;
}

static void
trust_dkim_collect(DKIM *d, struct trust_verdict *v)
{
	DKIM_SIGINFO **sigs;
	int n = 0, i;

	snprintf(v->dkim, sizeof(v->dkim), "none");
	if (dkim_getsiglist(d, &sigs, &n) != DKIM_STAT_OK)
		return;
	for (i = 0; i < n; i++) {
		const char *w = trust_dkim_word(sigs[i]);
		const unsigned char *dom = dkim_sig_getdomain(sigs[i]);

		if (trust_dkim_rank(w) < trust_dkim_rank(v->dkim))
			snprintf(v->dkim, sizeof(v->dkim), "%s", w);
		if (v->ndkim == TRUST_DKIM_MAX)
			continue;
		snprintf(v->sigs[v->ndkim].result,
		    sizeof(v->sigs[0].result), "%s", w);
		snprintf(v->sigs[v->ndkim].domain, TRUST_DOMAIN_MAX, "%s",
		    dom != NULL ? (const char *)dom : "");
		v->ndkim++;
	}
}

void
trust_dkim_check(struct trust_ctx *c, const struct trust_input *in,
    struct trust_verdict *v)
{
	DKIM_STAT st;
	DKIM *d = dkim_verify((DKIM_LIB *)c->dkim,
	    (const unsigned char *)"postdoc", NULL, &st);

	snprintf(v->dkim, sizeof(v->dkim), "none");
	if (d == NULL) {
		snprintf(v->dkim, sizeof(v->dkim), "temperror");
		return;
	}
	/* dkim_chunk parses the header block itself and copes with bare
	 * LF line ends; a NULL chunk ends the message. */
	st = dkim_chunk(d, (unsigned char *)in->raw, in->raw_len);
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(d, NULL, 0);
	if (st == DKIM_STAT_OK)
		st = dkim_eom(d, NULL);
	if (st != DKIM_STAT_NOSIG)
		trust_dkim_collect(d, v);
	dkim_free(d);
}

/*
 * trust_dns.c - owns the per-thread libunbound context every check
 * resolves through: the forwarder (dns.server) or the system's
 * resolv.conf, the per-query timeout, unbound's own cache.
 * It never answers from anything but the resolver: a query that times
 * out or fails is TRUST_DNS_TEMP (RFC 7208 2.6.6, RFC 6376 6.1.2).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <unbound.h>

#include "lib/util.h"
#include "trust_int.h"

#define TRUST_RCODE_NXDOMAIN 3

static int
trust_ub_setup(struct ub_ctx *ub, const char *server, char *err)
{
	int rc;

	/* Threaded async mode: the default forks a process per context. */
	if ((rc = ub_ctx_async(ub, 1)) != 0)
		goto fail;
	if (server == NULL || server[0] == '\0') {
		if ((rc = ub_ctx_resolvconf(ub, NULL)) != 0)
			goto fail;
		return 0;
	}
	if ((rc = ub_ctx_set_fwd(ub, server)) != 0)
		goto fail;
	/* A forwarder on loopback (a local cache, a test server) is what
	 * the operator asked for: unbound skips localhost by default. */
	if ((rc = ub_ctx_set_option(ub, "do-not-query-localhost:", "no")) != 0)
		goto fail;
	return 0;
fail:
	pd_err(err, "dns.server \"%s\": libunbound: %s", server ? server : "",
	    ub_strerror(rc));
	return -1;
}

int
trust_ctx_new(const char *dns_server, int timeout_ms,
    struct trust_ctx **ctx_r, char *err)
{
	struct trust_ctx *c = xcalloc(1, sizeof(*c));

	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	c->ub = ub_ctx_create();
	if (c->ub == NULL) {
		pd_err(err, "libunbound: cannot create a context");
		goto fail;
	}
	if (trust_ub_setup(c->ub, dns_server, err) != 0 ||
	    trust_spf_init(c, err) != 0 || trust_dkim_init(c, err) != 0)
		goto fail;
	*ctx_r = c;
	return 0;
fail:
	trust_ctx_free(&c);
	return -1;
}

void
trust_ctx_free(struct trust_ctx **ctx)
{
	struct trust_ctx *c = *ctx;

	if (c == NULL)
		return;
	trust_dkim_free(c);
	trust_spf_free(c);
	if (c->ub != NULL)
		ub_ctx_delete(c->ub);
	free(c);
	*ctx = NULL;
}

struct trust_q {
	int done, err;
	struct ub_result *res;
};

static void
trust_dns_cb(void *arg, int err, struct ub_result *res)
{
	struct trust_q *q = arg;

	q->done = 1;
	q->err = err;
	q->res = res;
}

/* Wait for q within the timeout and the check's deadline (a message
 * has limits.message_time_max in all: SPF alone may make ten lookups,
 * RFC 7208 4.6.4); a late answer is cancelled. */
static void
trust_dns_wait(struct trust_ctx *c, struct trust_q *q, int id)
{
	int64_t end = pd_monotonic_ms() + c->timeout_ms, left;
	struct pollfd p = { .fd = ub_fd(c->ub), .events = POLLIN };

	if (c->deadline_ms > 0 && c->deadline_ms < end)
		end = c->deadline_ms;
	while (!q->done && (left = end - pd_monotonic_ms()) > 0) {
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			break;
		if (ub_process(c->ub) != 0)
			break;
	}
	if (!q->done)
		(void)ub_cancel(c->ub, id);
}

enum trust_dns
trust_dns_answer(struct trust_ctx *c, const char *name, int type,
    struct ub_result **res_r)
{
	struct trust_q q = { 0, 0, NULL };
	int id;

	*res_r = NULL;
	if (ub_resolve_async(c->ub, name, type, 1 /* IN */, &q, trust_dns_cb,
	    &id) != 0)
		return TRUST_DNS_TEMP;
	trust_dns_wait(c, &q, id);
	if (!q.done || q.err != 0 || q.res == NULL) {
		if (q.res != NULL)
			ub_resolve_free(q.res);
		return TRUST_DNS_TEMP;
	}
	if (q.res->rcode != 0 && q.res->rcode != TRUST_RCODE_NXDOMAIN) {
		ub_resolve_free(q.res);		/* SERVFAIL, REFUSED... */
		return TRUST_DNS_TEMP;
	}
	*res_r = q.res;
	if (q.res->nxdomain || q.res->rcode == TRUST_RCODE_NXDOMAIN)
		return TRUST_DNS_NXDOMAIN;
	return q.res->havedata ? TRUST_DNS_OK : TRUST_DNS_NODATA;
}

enum trust_dns
trust_dns_query(struct trust_ctx *c, const char *name, int type,
    struct ub_result **res_r)
{
	enum trust_dns st = trust_dns_answer(c, name, type, res_r);

	if (st != TRUST_DNS_OK && *res_r != NULL) {
		ub_resolve_free(*res_r);
		*res_r = NULL;
	}
	return st;
}

/* One TXT RR's character-strings, joined (RFC 7208 3.3, RFC 6376
 * 3.6.2.2); a length byte that overruns the RR ends it. */
size_t
trust_txt_join(const unsigned char *rd, size_t n, char *out)
{
	size_t i = 0, o = 0;

	while (i < n) {
		size_t l = rd[i++];

		if (l > n - i)
			break;
		memcpy(out + o, rd + i, l);
		o += l;
		i += l;
	}
	out[o] = '\0';
	return o;
}

enum trust_dns
trust_dns_txt(struct trust_ctx *c, const char *name,
    void (*cb)(const char *txt, size_t len, void *arg), void *arg)
{
	struct ub_result *r;
	enum trust_dns st = trust_dns_query(c, name, 16 /* TXT */, &r);
	int i;

	if (st != TRUST_DNS_OK)
		return st;
	for (i = 0; r->data[i] != NULL; i++) {
		char *txt = xmalloc((size_t)r->len[i] + 1);
		size_t n = trust_txt_join((const unsigned char *)r->data[i],
		    (size_t)r->len[i], txt);

		cb(txt, n, arg);
		free(txt);
	}
	ub_resolve_free(r);
	return TRUST_DNS_OK;
}

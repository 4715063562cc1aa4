/*
 * outq_bounce.c - what a refusal does to a queued message: a 5xx bounces
 * it and suppresses the address, a 4xx or a local failure defers it with
 * exponential backoff until outbound.retry_max_age, and a DSN for a VERP
 * token bounces it even after it was sent.  Never talks to a transport.
 */
#include <stdio.h>
#include <string.h>

#include "lib/config.h"
#include "outq.h"
#include "outq_int.h"
#include "plugin/plugin_host.h"
#include "store/store.h"
#include "lib/util.h"

/* ---- a transport's answer ---- */

static int64_t
outq_backoff(const struct pd_config *cfg, int attempts)
{
	int64_t d = cfg->retry_base > 0 ? cfg->retry_base : 1;
	int i;

	for (i = 1; i < attempts && d < OUTQ_DAY; i++)
		d *= 2;
	return d < OUTQ_DAY ? d : OUTQ_DAY;
}

/* Turn a transport's answer into the row's next state. */
void
outq_classify(const struct pd_config *cfg, const struct store_outbound *o,
    const struct postdoc_delivery *res, int64_t now, struct outq_outcome *oc)
{
	memset(oc, 0, sizeof(*oc));
	oc->code = res->code;
	oc->enhanced = res->enhanced;
	snprintf(oc->text, sizeof(oc->text), "%s", res->text);
	if (res->code >= 200 && res->code < 300) {
		oc->state = "sent";
		oc->event = "outbound.sent";
	} else if (res->code >= 500 && res->code < 600) {
		oc->state = "bounced";
		oc->event = "outbound.bounced";
		oc->suppress = 1;
		snprintf(oc->reason, sizeof(oc->reason),
		    "5xx at delivery: %s %s", res->enhanced, res->text);
	} else if (now - o->created > cfg->retry_max_age) {
		oc->state = "bounced";
		oc->event = "outbound.bounced";
		snprintf(oc->text, sizeof(oc->text), "undeliverable after %d "
		    "attempts: %d %s %s", o->attempts, res->code,
		    res->enhanced, res->text);
	} else {
		/* 4xx, a local failure (0) or nonsense: try again later */
		oc->state = "deferred";
		oc->event = "outbound.deferred";
		oc->next_attempt = now + outq_backoff(cfg, o->attempts);
	}
}

/* ---- bounces ---- */

int
outq_bounce(struct store *st, const struct pd_config *cfg,
    const char *verp_token, int code, const char *enhanced,
    const char *text, char *err)
{
	struct store_outbound o;
	struct outq_outcome oc;
	int rc = store_outbound_by_verp(st, verp_token, &o, err);

	if (rc != 1)
		return rc;
	memset(&oc, 0, sizeof(oc));
	/* Even a "sent" row: a DSN arrives after the relay accepted it. */
	oc.state = "bounced";
	oc.event = "outbound.bounced";
	oc.code = code;
	oc.enhanced = enhanced != NULL ? enhanced : "";
	snprintf(oc.text, sizeof(oc.text), "%s", text != NULL ? text : "");
	oc.suppress = strncmp(oc.enhanced, "5.", 2) == 0 || code >= 500;
	snprintf(oc.reason, sizeof(oc.reason), "DSN %d %.11s %.200s", code,
	    oc.enhanced, oc.text);
	if (outq_record(st, cfg, &o, &oc, err) != 0)
		return -1;
	outq_count("bounced");
	log_info("out-%lld: to=<%s> status=bounced (DSN) %d %s %s",
	    (long long)o.id, o.rcpt, code, oc.enhanced, oc.text);
	return 1;
}

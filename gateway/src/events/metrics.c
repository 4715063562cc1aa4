/*
 * metrics.c - the counters behind /metrics and their exposition in the
 * Prometheus text format 0.0.4 (see metrics.h).  Counters are relaxed
 * C11 atomics: an increment is one instruction on the hot path and a
 * scrape may see one family a few events ahead of another, which
 * Prometheus tolerates.  Never blocks and never allocates but to render.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "store/store_stats.h"
#include "lib/util.h"

typedef _Atomic uint64_t metrics_ctr;

static metrics_ctr m_conn[MP_COUNT], m_conn_refused[MC_COUNT];
static metrics_ctr m_accepted[MP_COUNT], m_refused[MR_COUNT];
static metrics_ctr m_documents, m_delivery[MD_COUNT], m_unsub[MU_COUNT];
static _Atomic int64_t m_start;
static _Atomic uint64_t m_spool_mem;

static const char *const m_proto_names[MP_COUNT] = {
	"smtp", "lmtp", "mailbox"
};
static const char *const m_refusal_names[MR_COUNT] = {
	"unknown_recipient", "sender_policy", "size", "syntax", "protocol",
	"limit", "plugin", "content", "timeout", "disconnect", "temporary"
};
static const char *const m_delivery_names[MD_COUNT] = {
	"sent", "deferred", "bounced", "failed"
};
static const char *const m_unsub_names[MU_COUNT] = {
	"one_click", "mailto", "preferences"
};
/* MC_ACCEPTED is counted per protocol in m_conn; the rest here. */
static const char *const m_conn_names[MC_COUNT] = {
	"", "limit", "plugin"
};

static void
metrics_inc(metrics_ctr *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void
metrics_spool_memory(uint64_t octets)
{
	atomic_store_explicit(&m_spool_mem, octets, memory_order_relaxed);
}

void
metrics_start(void)
{
	int64_t zero = 0;

	atomic_compare_exchange_strong(&m_start, &zero, pd_now());
}

void
metrics_connection(enum metrics_proto p, enum metrics_conn c)
{
	if (c == MC_ACCEPTED)
		metrics_inc(&m_conn[p], 1);
	else
		metrics_inc(&m_conn_refused[c], 1);
}

void
metrics_accepted(enum metrics_proto p)
{
	metrics_inc(&m_accepted[p], 1);
}

void
metrics_refused(enum metrics_refusal r)
{
	metrics_inc(&m_refused[r], 1);
}

void
metrics_documents(uint64_t n)
{
	metrics_inc(&m_documents, n);
}

void
metrics_delivery(enum metrics_delivery d)
{
	metrics_inc(&m_delivery[d], 1);
}

void
metrics_unsubscribe(enum metrics_unsub u)
{
	metrics_inc(&m_unsub[u], 1);
}

const char *
metrics_refusal_name(enum metrics_refusal r)
{
	return (unsigned)r < MR_COUNT ? m_refusal_names[r] : "unknown";
}

void
metrics_reset(void)
{
	memset((void *)m_conn, 0, sizeof(m_conn));
	memset((void *)m_conn_refused, 0, sizeof(m_conn_refused));
	memset((void *)m_accepted, 0, sizeof(m_accepted));
	memset((void *)m_refused, 0, sizeof(m_refused));
	memset((void *)m_delivery, 0, sizeof(m_delivery));
	memset((void *)m_unsub, 0, sizeof(m_unsub));
	atomic_store(&m_documents, 0);
}

/* ---- exposition (text format 0.0.4) ---- */

/* A label value: backslash, double quote and line feed escaped, as the
 * format requires; store-derived values pass through here too. */
static void
metrics_label(FILE *f, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			fputs("\\\\", f);
		else if (*v == '"')
			fputs("\\\"", f);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void
metrics_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
metrics_sample(FILE *f, const char *name, const char *label,
    const char *value, uint64_t n)
{
	fputs(name, f);
	if (label != NULL) {
		fprintf(f, "{%s=\"", label);
		metrics_label(f, value);
		fputs("\"}", f);
	}
	fprintf(f, " %llu\n", (unsigned long long)n);
}

/* One counter family with one label over a fixed set of values; from
 * `first` on (skips a value that another family counts). */
static void
metrics_family(FILE *f, const char *name, const char *help,
    const char *label, const char *const *values, metrics_ctr *c,
    size_t first, size_t n)
{
	size_t i;

	metrics_head(f, name, "counter", help);
	for (i = first; i < n; i++)
		metrics_sample(f, name, label, values[i], atomic_load(&c[i]));
}

static void
metrics_counters(FILE *f)
{
	metrics_family(f, "postdoc_connections_total", "SMTP and LMTP "
	    "connections admitted.", "proto", m_proto_names, m_conn, 0,
	    MP_LMTP + 1);
	metrics_family(f, "postdoc_connections_refused_total", "Connections "
	    "refused before the banner, by reason.", "reason", m_conn_names,
	    m_conn_refused, MC_REFUSED_LIMIT, MC_COUNT);
	metrics_family(f, "postdoc_messages_accepted_total", "Messages "
	    "acknowledged with 2xx after the commit (LMTP and mailbox: per "
	    "recipient).", "proto", m_proto_names, m_accepted, 0, MP_COUNT);
	metrics_family(f, "postdoc_messages_refused_total", "Refusals of a "
	    "MAIL, a RCPT or a message (LMTP: per recipient), by reason.",
	    "reason", m_refusal_names, m_refused, 0, MR_COUNT);
	metrics_head(f, "postdoc_documents_stored_total", "counter",
	    "Documents (attachments) newly stored in dossiers.");
	metrics_sample(f, "postdoc_documents_stored_total", NULL, NULL,
	    atomic_load(&m_documents));
	metrics_family(f, "postdoc_deliveries_total", "Outbound delivery "
	    "attempts by result.", "result", m_delivery_names, m_delivery, 0,
	    MD_COUNT);
	metrics_family(f, "postdoc_unsubscribes_total", "Consent "
	    "withdrawals recorded, by channel.", "method", m_unsub_names,
	    m_unsub, 0, MU_COUNT);
}

static int
metrics_gauges(FILE *f, struct store *st, char *err)
{
	struct store_stats ss;
	size_t i;

	metrics_head(f, "postdoc_start_time_seconds", "gauge", "When this "
	    "process began counting (Unix time).");
	metrics_sample(f, "postdoc_start_time_seconds", NULL, NULL,
	    (uint64_t)atomic_load(&m_start));
	metrics_head(f, "postdoc_spool_memory_bytes", "gauge", "Octets of "
	    "incoming messages held in memory beyond each session's first "
	    "buffer (bounded by limits.spool_memory_max).");
	metrics_sample(f, "postdoc_spool_memory_bytes", NULL, NULL,
	    atomic_load(&m_spool_mem));
	if (st == NULL)
		return 0;
	if (store_stats_read(st, &ss, err) != 0)
		return -1;
	metrics_head(f, "postdoc_outbound_queue", "gauge", "Outbound "
	    "messages waiting in the queue, by state.");
	for (i = 0; i < STORE_STATS_NQUEUE; i++)
		metrics_sample(f, "postdoc_outbound_queue", "state",
		    store_stats_queue_states[i], (uint64_t)ss.outbound[i]);
	metrics_head(f, "postdoc_event_deliveries_pending", "gauge", "Event "
	    "deliveries to plugins not yet done.");
	metrics_sample(f, "postdoc_event_deliveries_pending", NULL, NULL,
	    (uint64_t)ss.events_pending);
	return 0;
}

int
metrics_render(struct store *st, char **out, size_t *len, char *err)
{
	FILE *f;
	int rc;

	*out = NULL;
	*len = 0;
	metrics_start();
	if ((f = open_memstream(out, len)) == NULL) {
		pd_err(err, "metrics: out of memory");
		return -1;
	}
	metrics_counters(f);
	rc = metrics_gauges(f, st, err);
	if (fclose(f) != 0 && rc == 0) {
		pd_err(err, "metrics: out of memory");
		rc = -1;
	}
	if (rc != 0) {
		free(*out);
		*out = NULL;
		*len = 0;
	}
	return rc;
}

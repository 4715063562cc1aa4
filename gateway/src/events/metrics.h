/*
 * metrics.h - process-wide counters of `postdoc serve` and their
 * exposition for /metrics (Prometheus text format 0.0.4).  Increments
 * are lock-free (C11 atomics) and safe from any thread; gauges that live
 * in the store (queue depth) are read at scrape time.  Short-lived CLI
 * commands count too, but nobody scrapes them: only serve's numbers are
 * visible.
 */
#ifndef PD_METRICS_H
#define PD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* How a message (or one recipient of it) came in. */
enum metrics_proto { MP_SMTP, MP_LMTP, MP_MAILBOX, MP_COUNT };

/* Why a transaction step was refused (docs/operations.md lists them). */
enum metrics_refusal {
	MR_UNKNOWN_RECIPIENT,	/* 550 5.1.1: no open dossier, bad token */
	MR_SENDER_POLICY,	/* 550 5.7.1: the dossier's sender policy */
	MR_SIZE,		/* 552 5.3.4: SIZE= or data over the limit */
	MR_SYNTAX,		/* 501/555 paths, long lines, NUL, bare LF */
	MR_PROTOCOL,		/* 452/554 sequence: mixed transactions */
	MR_LIMIT,		/* 452 4.5.3: too many recipients */
	MR_PLUGIN,		/* a mail_from/rcpt_to hook refused */
	MR_CONTENT,		/* intake refused the message (MIME, hooks) */
	MR_TIMEOUT,		/* data or intake timeout */
	MR_DISCONNECT,		/* the client left in the middle of DATA */
	MR_TEMPORARY,		/* 451: our own lookup, spool or store error */
	MR_COUNT
};

enum metrics_delivery { MD_SENT, MD_DEFERRED, MD_BOUNCED, MD_FAILED,
	MD_COUNT };

enum metrics_unsub { MU_ONE_CLICK, MU_MAILTO, MU_PREFERENCES, MU_COUNT };

enum metrics_conn { MC_ACCEPTED, MC_REFUSED_LIMIT, MC_REFUSED_PLUGIN,
	MC_COUNT };

/* Stamp postdoc_start_time_seconds (serve calls it once at start). */
void metrics_start(void);

void metrics_connection(enum metrics_proto p, enum metrics_conn c);
void metrics_accepted(enum metrics_proto p);
void metrics_refused(enum metrics_refusal r);
void metrics_documents(uint64_t n);
void metrics_delivery(enum metrics_delivery d);
void metrics_unsubscribe(enum metrics_unsub u);
/* Octets of incoming messages the sessions hold in memory beyond their
 * first buffer (limits.spool_memory_max), set by the loop thread. */
void metrics_spool_memory(uint64_t octets);

/* Label value of a refusal reason, for log lines ("size", ...). */
const char *metrics_refusal_name(enum metrics_refusal r);

/* The whole exposition, malloc'd into *out (caller frees); gauges that
 * live in the store (queue depth) are read through st (NULL: counters
 * only).  0, or -1 with err. */
int metrics_render(struct store *st, char **out, size_t *len, char *err);

/* Zero every counter: for unit tests only. */
void metrics_reset(void);

#endif

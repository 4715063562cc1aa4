/*
 * intake.h - from a spooled message to rows and blobs in the store.  Runs
 * on worker threads only (it parses, decodes, fsyncs and commits): the
 * SMTP/LMTP session hands it a job and sends the replies it produces.
 * It never writes a path derived from the message and never leaves half a
 * delivery behind: blobs are committed before the rows that name them,
 * rows in one transaction per delivery.
 */
#ifndef PD_INTAKE_H
#define PD_INTAKE_H

#include <stdint.h>
#include <stddef.h>

struct pd_config;
struct plugin_host;
struct intake_ctx;

struct intake_rcpt {
	const char *address;	/* as accepted at RCPT, normalised; its
				 * item part (d-<token>+<item>) picks the
				 * item the documents are filed under */
	int64_t dossier_id;
	int64_t account_id;
	const char *account;
	const char *dossier_ref;
	const char *verp_token;	/* a bounce report for this outbound
				 * message (dossier_id may be 0), or NULL */
};

struct intake_job {
	const char *queue_id;
	const char *helo;
	const char *client_ip;
	int tls;
	int lmtp;
	const char *mail_from;		/* "" for the null sender */
	size_t rcpt_count;
	const struct intake_rcpt *rcpts;
	const char *spool_path;		/* raw message as received, unstuffed */
	const unsigned char *spool_mem;	/* or, when not NULL, in memory (then
					 * spool_path names no file) */
	uint64_t size;
	const char *sha256;		/* hex digest of the spool file */
	int64_t deadline_ms;		/* pd_monotonic_ms() budget end */
	/* Fetched from a mailbox (IMAP/POP3): client_ip is the mailbox
	 * server's, not the sender's, so SPF has no client to judge. */
	int fetched;
};

struct intake_result {
	int code;		/* 250, 451, 552, 554... */
	char enhanced[12];	/* "2.0.0" */
	char text[256];		/* printable ASCII */
};

/* One per worker thread: opens its own store connection and libmagic. */
int intake_ctx_new(const struct pd_config *cfg, struct plugin_host *ph,
    struct intake_ctx **ctx_r, char *err);
void intake_ctx_free(struct intake_ctx **ctx);

/*
 * Deliver the job.  For SMTP (job->lmtp == 0) fills results[0] with the
 * one reply for the whole message (all recipients or none).  For LMTP
 * fills results[i] for each recipient (RFC 2033 section 4.2).  The spool
 * file is consumed (moved into the blob store, or removed: refused, or
 * copied into the database up to store.inline_max) either way.
 */
void intake_process(struct intake_ctx *ctx, const struct intake_job *job,
    struct intake_result *results);

int64_t pd_monotonic_ms(void);

#endif

/*
 * campaign.h - newsletters to the contacts who consented, and notices to
 * every contact.  A campaign's audience is fixed when sending starts (one
 * campaign_recipients row per contact); each recipient then moves
 * pending -> queuing (Message-ID recorded) -> queued (outbound row), so a
 * crash or a restart resumes where it stopped, queuing nobody twice and
 * skipping nobody.  Consent is checked again per recipient here and once
 * more by the queue when the message leaves (outq.c).
 */
#ifndef PD_CAMPAIGN_H
#define PD_CAMPAIGN_H

#include <stddef.h>
#include <stdint.h>

struct pd_config;
struct store;
struct outq_ctx;

struct campaign_stats {
	int64_t total;		/* recipients in the audience */
	int64_t queued;		/* by this run */
	int64_t skipped;	/* by this run: no longer eligible */
	int64_t resumed;	/* found already queued by an earlier run */
};

/* Called after each recipient and once after the last commit: done is
 * the recipients settled (queued, skipped, found queued) and committed
 * so far (a batch commits every 64), of total. */
typedef void (*campaign_progress_fn)(int64_t done, int64_t total, void *ctx);

int campaign_create(struct store *st, int64_t account_id, int64_t purpose_id,
    const char *tmpl, const char *subject, const char *locale,
    int64_t *id_r, char *err);

/*
 * A campaign whose body is its own Markdown (len bytes of md: UTF-8, no
 * NUL, not blank, at most 256 KiB), stored with it in one transaction and
 * sent inside the account's newsletter layout, CAMPAIGN_BODY_TMPL.
 */
#define CAMPAIGN_BODY_TMPL "newsletter-body"
int campaign_create_body(struct store *st, int64_t account_id,
    int64_t purpose_id, const char *md, size_t len, const char *subject,
    const char *locale, int64_t *id_r, char *err);

/*
 * The message one reader would get, built into a spool file the caller
 * reads and removes (campaign_preview_free): to a contact of the account,
 * with her unsubscribe link; to anyone else (to NULL: a sample address),
 * with a link that unsubscribes nobody (sample set).  Changes nothing in
 * the store.  account_id 0: any account.  1, 0 (no such campaign), -1.
 */
struct campaign_preview {
	char path[4200];		/* the message, as it would be queued */
	char to[320];
	char locale[16];
	int sample;			/* the link names no contact */
	char *subject, *text, *html;	/* its parts (html may be NULL) */
};
int campaign_preview(const struct pd_config *cfg, struct store *st,
    int64_t account_id, int64_t id, const char *to,
    struct campaign_preview *p_r, char *err);
void campaign_preview_free(struct campaign_preview *p);

/*
 * Queue one copy of the campaign to `to`, marked as a test: subject
 * "[TEST] ...", outbound kind "campaign-test", no recipient row, no
 * change to the campaign's state or counts, whatever the address's
 * consent.  Refused (1, err saying why, nothing queued) when the address
 * is suppressed for the account or an erased subject's.  0 queued
 * (*outbound_id_r), -1 failure, -2 no such campaign (in account_id, 0:
 * any).
 */
#define CAMPAIGN_TEST_KIND "campaign-test"
int campaign_test(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, int64_t account_id, int64_t id, const char *to,
    int64_t *outbound_id_r, char *err);

/* Fix the audience (first run) and queue every recipient not yet queued. */
int campaign_send(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, int64_t id, campaign_progress_fn progress,
    void *ctx, struct campaign_stats *stats, char *err);

/*
 * A transactional notice (template tmpl, kind "notice") to every contact
 * of the account, whatever their marketing consent, except suppressed
 * and bounced addresses.
 */
int campaign_notice(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, const char *account, int64_t account_id,
    const char *tmpl, const char *locale, struct campaign_stats *stats,
    char *err);

#endif

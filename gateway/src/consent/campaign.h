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

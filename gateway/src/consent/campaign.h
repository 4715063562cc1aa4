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

#include <jansson.h>

struct pd_config;
struct store;
struct outq_ctx;
struct store_campaign;

/*
 * A newsletter's audience explained: each contact of the account is
 * eligible or left out for one reason, the first rule of eligible.c
 * that refuses it (so the reason is the one the sender would give).
 * left_out is indexed by enum eligible_why (outbound/eligible.h).
 */
#define CAMPAIGN_WHY_MAX 9
struct campaign_audience {
	int64_t contacts;	/* of the account, when it was counted */
	int64_t eligible;
	int64_t left_out[CAMPAIGN_WHY_MAX];
};

struct campaign_stats {
	int64_t total;		/* recipients in the audience */
	int64_t queued;		/* by this run */
	int64_t skipped;	/* by this run: no longer eligible */
	int64_t resumed;	/* found already queued by an earlier run */
	struct campaign_audience audience;	/* as fixed */
};

/* A recipient the audience has (or would have); non-zero stops. */
typedef int (*campaign_rcpt_fn)(int64_t contact_id, const char *email,
    void *ctx);

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

/*
 * Fix a draft's audience: in one transaction, a "pending" recipient for
 * each eligible contact, the explanation in campaigns.audience, state
 * "sending".  1 fixed now, 0 fixed before (a_r: as it was then), -1.
 */
int campaign_start(const struct pd_config *cfg, struct store *st,
    int64_t id, struct campaign_audience *a_r, char *err);

/*
 * Who the campaign's audience would be now, changing nothing: every
 * contact classified as campaign_start would (cb, may be NULL, gets
 * each eligible one).  0 or -1.
 */
int campaign_audience_now(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, campaign_rcpt_fn cb, void *ctx,
    struct campaign_audience *a_r, char *err);

/* The explanation as JSON: {contacts, eligible, left_out: {no_consent,
 * withdrawn, age_unknown, minor, suppressed, bounced, erased}}; and
 * back from a campaign's stored text (0, or -1 if there is none). */
json_t *campaign_audience_json(const struct campaign_audience *a);
int campaign_audience_load(const char *json, struct campaign_audience *a_r);
/* "age unknown"... for i in 1..CAMPAIGN_WHY_MAX-1, in eligible.c's order
 * of rules for a newsletter; NULL past the end. */
const char *campaign_why_name(int i);
int64_t campaign_why_count(const struct campaign_audience *a, int i);

/*
 * `campaign send --dry-run`: for a draft, the audience a send would fix
 * now (cb: each eligible contact); for a campaign already fixed, the
 * stored explanation (cb: each recipient still pending).  Writes
 * nothing.  fixed_r: 1 if the audience was fixed before.
 */
int campaign_dry_run(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, campaign_rcpt_fn cb, void *ctx,
    struct campaign_audience *a_r, int *fixed_r, char *err);

/* Fix the audience (first run) and queue every recipient not yet queued. */
int campaign_send(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, int64_t id, campaign_progress_fn progress,
    void *ctx, struct campaign_stats *stats, char *err);

/*
 * A transactional notice (template tmpl, kind "notice") to every contact
 * of the account, whatever their marketing consent, except suppressed,
 * bounced and erased addresses and addresses that are not valid.  q
 * NULL: a dry run, which queues nothing and writes nothing.  each (may
 * be NULL) is told every contact: why NULL for one who gets it, else the
 * reason ("suppressed", "bounced", "erased", "invalid address").
 */
struct campaign_notice_stats {
	int64_t total;		/* contacts */
	int64_t queued;		/* or, in a dry run, would be */
	int64_t suppressed, bounced, erased, invalid;
};
typedef int (*campaign_notice_fn)(const char *email, const char *why,
    void *ctx);
int campaign_notice(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, const char *account, int64_t account_id,
    const char *tmpl, const char *locale, campaign_notice_fn each,
    void *ctx, struct campaign_notice_stats *stats, char *err);

#endif

/*
 * campaign_int.h - what campaign.c shares with campaign_try.c: a
 * campaign's body rendered once, and the message one recipient gets,
 * built the same way for a send, a preview and a test copy.
 */
#ifndef PD_CAMPAIGN_INT_H
#define PD_CAMPAIGN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "store/records.h"

struct pd_config;
struct store;
struct notify_built;

/*
 * What every message of a campaign shares, worked out once per run: its
 * language, the purpose's display name in it, and a Markdown campaign's
 * parts (both NULL for a template campaign).
 */
struct campaign_body {
	char locale[16];
	char label[256];
	char *html;
	char *text;		/* without its last line end */
};

int campaign_body_load(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, struct campaign_body *b, char *err);
void campaign_body_free(struct campaign_body *b);

struct campaign_to {
	int64_t contact_id;	/* her unsubscribe token; 0: a token that
				 * names nobody (a sample address) */
	const char *email;
	int test;		/* a test copy: "[TEST] " subject */
	int keep_parts;		/* a preview: the rendered parts too */
};

/* Into b (notify_build_mail's spool file), with List-Unsubscribe and
 * List-Unsubscribe-Post, in the campaign's language. */
int campaign_message(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, const struct campaign_body *body,
    const struct campaign_to *to, struct notify_built *b, char *err);

/* The campaign's language: its own, else the account's, else the
 * configured default, else "en". */
int campaign_locale(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, char *out, size_t len, char *err);

#endif

/*
 * campaign_try.c - a campaign tried before it is sent: the preview (the
 * message one reader would get, built and shown, nothing stored) and the
 * test copy (one message queued as "campaign-test": no recipient row, no
 * change to the campaign, never to a suppressed or erased address).
 * The message itself is campaign.c's campaign_message, as in a send.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "campaign.h"
#include "campaign_int.h"
#include "campaign_view.h"
#include "consent.h"
#include "contact.h"
#include "lib/util.h"
#include "outbound/eligible.h"
#include "outbound/notify.h"
#include "outbound/outmsg.h"
#include "outbound/outq.h"

/* A preview without --to: an address nobody reads (RFC 2606). */
#define CAMPAIGN_SAMPLE_TO "reader@example.org"

/*
 * The campaign (in the account, 0: any) and who the copy is for: a
 * contact of the account (her token), or nobody (contact_id 0, whose
 * token the unsubscribe page knows as no one's).
 */
static int
campaign_try_open(struct store *st, int64_t account_id, int64_t id,
    const char *to, struct store_campaign *c, char *norm, size_t len,
    int64_t *contact_r, char *err)
{
	struct store_contact k;
	int rc;

	if ((rc = campaign_view_get(st, account_id, id, c, err)) != 1)
		return rc;
	if (!consent_email_norm(to, norm, len) || !outmsg_addr_valid(norm,
	    0)) {
		pd_err(err, "not a valid address: %.100s", to);
		return -1;
	}
	*contact_r = 0;
	if ((rc = consent_contact_find(st, c->account_id, norm, &k, err)) < 0)
		return -1;
	if (rc == 1)
		*contact_r = k.id;
	return 1;
}

int
campaign_preview(const struct pd_config *cfg, struct store *st,
    int64_t account_id, int64_t id, const char *to,
    struct campaign_preview *p_r, char *err)
{
	struct store_campaign c;
	struct campaign_body body;
	struct campaign_to t = { .keep_parts = 1 };
	struct notify_built b;
	int rc;

	memset(p_r, 0, sizeof(*p_r));
	rc = campaign_try_open(st, account_id, id, to != NULL ? to :
	    CAMPAIGN_SAMPLE_TO, &c, p_r->to, sizeof(p_r->to), &t.contact_id,
	    err);
	if (rc != 1)
		return rc;
	p_r->sample = t.contact_id == 0;
	t.email = p_r->to;
	if (campaign_body_load(cfg, st, &c, &body, err) != 0)
		return -1;
	snprintf(p_r->locale, sizeof(p_r->locale), "%s", body.locale);
	rc = campaign_message(cfg, st, &c, &body, &t, &b, err);
	campaign_body_free(&body);
	if (rc != 0)
		return -1;
	snprintf(p_r->path, sizeof(p_r->path), "%s", b.path);
	p_r->subject = b.subject;
	p_r->text = b.text;
	p_r->html = b.html;
	return 1;
}

void
campaign_preview_free(struct campaign_preview *p)
{
	if (p->path[0] != '\0')
		unlink(p->path);
	p->path[0] = '\0';
	free(p->subject);
	free(p->text);
	free(p->html);
	p->subject = p->text = p->html = NULL;
}

/*
 * Consent is not asked (the editor sends to herself), but the rules the
 * queue applies to such a message as it leaves are, now, so that the
 * editor hears "suppressed" or "erased" instead of a copy that never
 * arrives: suppression for the account and the erased subjects' hashes
 * (eligible.c, a notice leaving the queue).
 */
static int
campaign_test_allowed(const struct pd_config *cfg, struct store *st,
    const struct store_campaign *c, const char *to, char *err)
{
	struct eligible_ask a = { .kind = ELIGIBLE_NOTICE,
	    .when = ELIGIBLE_LEAVE, .account_id = c->account_id, .rcpt = to,
	    .now = pd_now() };
	struct eligible_verdict v;
	int rc = eligible_check(cfg, st, &a, &v, err);

	if (rc != 0)
		return rc;
	if (strcmp(v.reason, "suppressed") == 0)
		pd_err(err, "%s is suppressed for account %s (%s): no test "
		    "copy is sent to it", to, c->account, v.detail[0] ?
		    v.detail : "no reason given");
	else if (strcmp(v.reason, "erased subject") == 0)
		pd_err(err, "%s was erased from account %s (privacy erase): "
		    "no test copy is sent to it", to, c->account);
	else
		pd_err(err, "%s may not be written to: %s", to, v.reason);
	return 0;
}

int
campaign_test(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, int64_t account_id, int64_t id, const char *to,
    int64_t *outbound_id_r, char *err)
{
	struct store_campaign c;
	struct campaign_body body;
	struct campaign_to t = { .test = 1 };
	struct notify_built b;
	struct outq_item it;
	char norm[320];
	int rc;

	*outbound_id_r = 0;
	rc = campaign_try_open(st, account_id, id, to, &c, norm, sizeof(norm),
	    &t.contact_id, err);
	if (rc != 1)
		return rc == 0 ? -2 : -1;
	if ((rc = campaign_test_allowed(cfg, st, &c, norm, err)) != 1)
		return rc == 0 ? 1 : -1;
	t.email = norm;
	if (campaign_body_load(cfg, st, &c, &body, err) != 0)
		return -1;
	rc = campaign_message(cfg, st, &c, &body, &t, &b, err);
	campaign_body_free(&body);
	if (rc != 0)
		return -1;
	it = (struct outq_item){ .account_id = c.account_id,
	    .account = c.account, .dossier_id = 0, .kind = CAMPAIGN_TEST_KIND,
	    .rcpt = norm, .from_domain = b.from_domain, .msg_path = b.path,
	    .message_id = b.message_id };
	rc = outq_enqueue(q, &it, outbound_id_r, err);
	unlink(b.path);		/* consumed on success; garbage otherwise */
	return rc == 0 ? 0 : -1;
}

/*
 * trust.c - owns one message's sender authentication: SPF, then DKIM,
 * then DMARC (which rests on both), and the Authentication-Results
 * value.  It never refuses anything itself: the account's rule
 * (trust_rule) and intake decide.
 */
#include <string.h>

#include "trust_int.h"

int
trust_check(struct trust_ctx *c, const struct trust_input *in,
    struct trust_verdict *v)
{
	memset(v, 0, sizeof(*v));
	c->deadline_ms = in->deadline_ms;
	trust_spf_check(c, in, v);
	trust_dkim_check(c, in, v);
	trust_dmarc_check(c, in, v);
	trust_format_ar(v, in->authserv_id, in->mail_from);
	return 0;
}

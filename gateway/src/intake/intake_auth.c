/*
 * intake_auth.c - owns sender authentication at intake: the SPF, DKIM
 * and DMARC verdict, computed once per message on the worker at the end
 * of data, and each recipient account's rule on it (sender_auth,
 * auth_fail): refuse 550 5.7.1 naming the check, 451 4.7.x on DNS
 * trouble, or accept and mark.
 * SPF is computed here too, not at MAIL FROM as RFC 7208 2.4 allows:
 * at MAIL FROM it would block the event loop (or need async plumbing
 * into the session), and the decision needs DKIM, known only now.
 * It never vouches for a sender on a DNS failure (temperror).
 */
#include <string.h>
#include <sys/mman.h>

#include "intake_int.h"
#include "lib/config.h"
#include "lib/util.h"
#include "store/records.h"
#include "store/store.h"

/* The account's sender_auth, or NULL when it checks nothing. */
static const char *
intake_auth_rule(const struct pd_config *cfg, const char *account)
{
	const struct pd_account_conf *a = config_account(cfg, account);

	if (a == NULL || a->sender_auth == NULL ||
	    strcmp(a->sender_auth, "none") == 0)
		return NULL;
	return a->sender_auth;
}

/* Checks run when configured for every message, and always when a
 * recipient's account needs them: auth.checks = false never silently
 * drops an account's requirement. */
static int
intake_auth_wanted(const struct intake_msg *m)
{
	size_t i;

	if (m->ctx->cfg->auth_checks)
		return 1;
	for (i = 0; i < m->job->rcpt_count; i++)
		if (intake_auth_rule(m->ctx->cfg, m->job->rcpts[i].account))
			return 1;
	return 0;
}

/* A verdict of temperror everywhere: the resolver could not be set up. */
static void
intake_auth_temp(struct intake_msg *m)
{
	struct trust_verdict *v = &m->auth;

	memset(v, 0, sizeof(*v));
	strcpy(v->spf, "temperror");
	strcpy(v->dkim, "temperror");
	strcpy(v->dmarc, "temperror");
	trust_format_ar(v, m->ctx->cfg->hostname, m->job->mail_from);
}

static void
intake_auth_run(struct intake_msg *m, const unsigned char *raw)
{
	const struct intake_job *job = m->job;
	/* Fetched mail: the peer is the mailbox server, so no client IP and
	 * SPF "none" (DKIM must vouch), rather than judging the wrong host. */
	struct trust_input in = { job->client_ip && !job->fetched ?
	    job->client_ip : "",
	    job->helo ? job->helo : "", job->mail_from, raw,
	    (size_t)job->size, m->ctx->cfg->hostname, job->deadline_ms };

	(void)trust_check(m->ctx->trust, &in, &m->auth);
}

void
intake_authenticate(struct intake_msg *m)
{
	struct intake_ctx *c = m->ctx;
	const struct intake_job *job = m->job;
	char err[PD_ERRLEN];
	void *map;

	if (!intake_auth_wanted(m))
		return;
	m->auth_checked = 1;
	if (c->trust == NULL && trust_ctx_new(c->cfg->dns_server,
	    (int)c->cfg->dns_timeout_ms, &c->trust, err) != 0) {
		log_err("%s: sender authentication: %s", job->queue_id, err);
		intake_auth_temp(m);
		return;
	}
	if (job->spool_mem != NULL)
		intake_auth_run(m, job->spool_mem);
	else {
		/* The spool file, read in place: GMime holds the fd's
		 * offset, a mapping does not move it. */
		map = mmap(NULL, (size_t)job->size, PROT_READ, MAP_PRIVATE,
		    m->fd, 0);
		if (map == MAP_FAILED) {
			log_err("%s: sender authentication: mmap spool",
			    job->queue_id);
			intake_auth_temp(m);
			return;
		}
		intake_auth_run(m, map);
		munmap(map, (size_t)job->size);
	}
	log_info("%s: Authentication-Results: %s", job->queue_id, m->auth.ar);
}

/* Only `contact` and `domains:` vouch for someone: with `any` the rule
 * has nobody to authenticate. */
static int
intake_policy_vouches(struct intake_msg *m, const struct intake_rcpt *rc)
{
	struct store_dossier d;
	char err[PD_ERRLEN];

	if (store_dossier_get(m->ctx->st, rc->account_id, rc->dossier_id, &d,
	    err) != 1)
		return 1;	/* unknown here: check rather than not */
	return strcmp(d.sender_policy, "any") != 0;
}

int
intake_sender_rule(struct intake_msg *m, size_t i, struct intake_result *r)
{
	const struct intake_rcpt *rc = &m->job->rcpts[i];
	const struct pd_account_conf *a = config_account(m->ctx->cfg,
	    rc->account);
	const char *rule = intake_auth_rule(m->ctx->cfg, rc->account);
	const char *check = "";
	enum trust_rule_result res;

	m->sender_pass[i] = 0;
	if (rule == NULL || !m->auth_checked || !intake_policy_vouches(m, rc))
		return 0;
	res = trust_rule(rule, &m->auth, m->job->mail_from, &check);
	if (res == TRUST_PASS) {
		m->sender_pass[i] = 1;
		return 0;
	}
	if (res == TRUST_TEMP) {
		/* RFC 3463 3.8 X.7.0, transient: a security check that
		 * may pass once DNS answers (RFC 7208 2.6.6). */
		intake_reply(r, 451, "4.7.0", "%s could not be checked for "
		    "<%s> (DNS), try again later", check, m->job->mail_from);
		return -1;
	}
	m->sender_pass[i] = -1;
	if (a->auth_fail != NULL && strcmp(a->auth_fail, "mark") == 0) {
		log_info("%s: %s did not authenticate <%s>: marked",
		    m->job->queue_id, check, m->job->mail_from);
		return 0;
	}
	intake_reply(r, 550, "5.7.1", "%s did not authenticate <%s>", check,
	    m->job->mail_from);
	return -1;
}

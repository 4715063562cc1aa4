/*
 * mailhost.c - files messages that poller plugins (mailbox: IMAP, POP3)
 * fetched, through the same intake pipeline as SMTP.  Each calling thread
 * gets its own intake context and store connection (both are one-thread
 * objects), released when the thread exits.  A message is copied into the
 * spool (intake consumes the spool file) while it is hashed and its
 * header block is kept for routing (an item's address, d-<token>+<item>,
 * routes as RCPT does); nothing is held whole in memory.
 * It never decides what the plugin does on the server: it only answers
 * 250 (filed or duplicate), 550 5.1.1 (no dossier), 5xx or 4xx.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/config.h"
#include "intake.h"
#include "mailhost.h"
#include "events/metrics.h"
#include "route.h"
#include "lib/smtp_addr.h"
#include "store/store.h"
#include "lib/util.h"

#define MAILHOST_BUF 65536
#define MAILHOST_RCPT_MAX 16	/* dossiers one fetched message may name */

struct mailhost {
	const struct pd_config *cfg;
	struct plugin_host *ph;
	struct postdoc_host api;
	pthread_key_t key;
	char spool_dir[4096];
};

/* One per calling thread. */
struct mailhost_thread {
	struct intake_ctx *ictx;
	struct store *st;
};

/* What one submit gathers on its way to intake_process. */
struct mailhost_msg {
	struct mailhost *mh;
	struct mailhost_thread *t;
	const struct postdoc_submit *in;
	char queue_id[24];
	char spool[4096 + 32];
	char sha[65];
	uint64_t size;
	char *hdr;			/* the header block, bounded */
	size_t hdr_len;
	char mail_from[257];		/* from Return-Path, or "" */
	/* Dossiers named, in order: routed (ROUTE_DOSSIER) or refused by
	 * their sender policy (ROUTE_REFUSED), which mailhost_policy drops. */
	struct route_outcome d[MAILHOST_RCPT_MAX];
	size_t nd;
	int lookup_failed;
};

static void
mailhost_thread_free(void *arg)
{
	struct mailhost_thread *t = arg;

	intake_ctx_free(&t->ictx);
	store_close(&t->st);
	free(t);
}

static struct mailhost_thread *
mailhost_thread_get(struct mailhost *mh, char *err)
{
	struct mailhost_thread *t = pthread_getspecific(mh->key);

	if (t != NULL)
		return t;
	t = xcalloc(1, sizeof(*t));
	if (intake_ctx_new(mh->cfg, mh->ph, &t->ictx, err) != 0 ||
	    store_open(mh->cfg->db_path, mh->cfg->sync_mode, &t->st, err)
	    != 0) {
		mailhost_thread_free(t);
		return NULL;
	}
	pthread_setspecific(mh->key, t);
	return t;
}

static void
mailhost_reply(struct postdoc_delivery *r, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
mailhost_reply(struct postdoc_delivery *r, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* ---- routing: addresses in the header block ---- */

static const char *const mailhost_fields[] = {
	"Delivered-To", "X-Original-To", "To", "Cc"
};

static int
mailhost_addr_char(char c, int domain)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-')
		return 1;
	return !domain && (c == '_' || c == '+' || c == '=');
}

/*
 * The local part routing sees: "d-<token>" or, for an item's address,
 * "d-<token>+<item>" (folded).  1, or 0 when addr is not ours.
 */
static int
mailhost_local(const char *addr, const char *domain, char *out, size_t len)
{
	char local[80], item[40];

	if (!smtp_addr_intake_item(addr, domain, local, sizeof(local), item,
	    sizeof(item)))
		return 0;
	return snprintf(out, len, "%s%s%s", local, item[0] ? "+" : "", item)
	    < (int)len;
}

/* Every local@domain in v[0..n) whose domain is ours; count cb's yeses. */
static int
mailhost_scan_value(const char *v, size_t n, const char *domain,
    mailhost_addr_cb cb, void *ctx)
{
	char addr[257], local[128];
	size_t i, a, b;
	int yes = 0;

	for (i = 0; i < n; i++) {
		if (v[i] != '@')
			continue;
		for (a = i; a > 0 && mailhost_addr_char(v[a - 1], 0); a--)
			;
		for (b = i + 1; b < n && mailhost_addr_char(v[b], 1); b++)
			;
		if (a == i || b == i + 1 || b - a >= sizeof(addr))
			continue;
		memcpy(addr, v + a, b - a);
		addr[b - a] = '\0';
		if (mailhost_local(addr, domain, local, sizeof(local)) &&
		    cb(local, ctx))
			yes++;
	}
	return yes;
}

/* Length of the field starting at p (through its continuation lines). */
static size_t
mailhost_field_len(const char *p, const char *end)
{
	const char *q = p;

	for (;;) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));

		if (nl == NULL)
			return (size_t)(end - p);
		q = nl + 1;
		if (q >= end || (*q != ' ' && *q != '\t'))
			return (size_t)(q - p);
	}
}

static int
mailhost_scan_field(const char *hdr, size_t len, const char *name,
    const char *domain, mailhost_addr_cb cb, void *ctx)
{
	const char *p = hdr, *end = hdr + len;
	size_t nl = strlen(name);
	int yes = 0;

	while (p < end) {
		size_t fl = mailhost_field_len(p, end);

		if (fl <= 2 && (*p == '\r' || *p == '\n'))
			break;		/* the blank line ends the header */
		if (fl > nl && strncasecmp(p, name, nl) == 0) {
			const char *c = p + nl;

			while (c < p + fl && (*c == ' ' || *c == '\t'))
				c++;
			if (c < p + fl && *c == ':')
				yes += mailhost_scan_value(c + 1,
				    (size_t)(p + fl - c - 1), domain, cb, ctx);
		}
		p += fl;
	}
	return yes;
}

int
mailhost_route(const char *hdr, size_t len, const char *domain,
    mailhost_addr_cb cb, void *ctx)
{
	size_t i;

	for (i = 0; i < sizeof(mailhost_fields) / sizeof(mailhost_fields[0]);
	    i++)
		if (mailhost_scan_field(hdr, len, mailhost_fields[i], domain,
		    cb, ctx) > 0)
			return (int)i;
	return -1;
}

/*
 * cb for mailhost_route: an open dossier, once (the first address naming
 * it decides the item, as the first RCPT does in SMTP).  Routing
 * (route.c, as for RCPT) applies the sender policy too; a dossier it
 * refuses still names the message's field, and is dropped by
 * mailhost_policy.
 */
static int
mailhost_dossier_cb(const char *local, void *arg)
{
	struct mailhost_msg *m = arg;
	struct route_env env = { m->mh->cfg, m->t->st };
	struct route_outcome o;
	char addr[512], err[PD_ERRLEN];
	size_t i;

	snprintf(addr, sizeof(addr), "%s@%s", local, env.cfg->intake_domain);
	err[0] = '\0';
	route_address(&env, addr, m->mail_from, ROUTE_NONE, &o, err);
	if (o.why == ROUTE_TEMPORARY) {
		log_err("%s: dossier lookup: %s", m->queue_id, err);
		m->lookup_failed = 1;
		return 0;
	}
	if (o.kind != ROUTE_DOSSIER && o.why != ROUTE_SENDER)
		return 0;
	for (i = 0; i < m->nd; i++)
		if (m->d[i].dossier_id == o.dossier_id)
			return 1;
	if (m->nd < MAILHOST_RCPT_MAX)
		m->d[m->nd++] = o;
	return 1;
}

/* Return-Path: <addr> - the envelope sender the mailbox's MTA saw. */
static void
mailhost_return_path(struct mailhost_msg *m)
{
	const char *p = m->hdr, *end = m->hdr + m->hdr_len;

	m->mail_from[0] = '\0';
	while (p < end) {
		size_t fl = mailhost_field_len(p, end);
		const char *lt, *gt;

		if (fl <= 2 && (*p == '\r' || *p == '\n'))
			return;
		if (fl > 12 && strncasecmp(p, "Return-Path:", 12) == 0 &&
		    (lt = memchr(p, '<', fl)) != NULL &&
		    (gt = memchr(lt, '>', (size_t)(p + fl - lt))) != NULL &&
		    (size_t)(gt - lt - 1) < sizeof(m->mail_from)) {
			memcpy(m->mail_from, lt + 1, (size_t)(gt - lt - 1));
			m->mail_from[gt - lt - 1] = '\0';
			pd_ascii_clean(m->mail_from, sizeof(m->mail_from),
			    m->mail_from);
			return;
		}
		p += fl;
	}
}

/* ---- the spool copy ---- */

static int
mailhost_hdr_done(const struct mailhost_msg *m)
{
	size_t i;

	for (i = 1; i < m->hdr_len; i++)
		if (m->hdr[i - 1] == '\n' && (m->hdr[i] == '\n' ||
		    (m->hdr[i] == '\r' && i + 1 < m->hdr_len &&
		    m->hdr[i + 1] == '\n')))
			return 1;
	return m->hdr_len > 0 && (m->hdr[0] == '\n' || m->hdr[0] == '\r');
}

/* Keep the first header_block_max bytes (the header lives there). */
static void
mailhost_hdr_add(struct mailhost_msg *m, const char *buf, size_t n,
    size_t cap)
{
	if (m->hdr_len >= cap || (m->hdr_len > 0 && mailhost_hdr_done(m)))
		return;
	if (n > cap - m->hdr_len)
		n = cap - m->hdr_len;
	m->hdr = xrealloc(m->hdr, m->hdr_len + n + 1);
	memcpy(m->hdr + m->hdr_len, buf, n);
	m->hdr_len += n;
	m->hdr[m->hdr_len] = '\0';
}

static int
mailhost_copy_fds(struct mailhost_msg *m, int in, int out, EVP_MD_CTX *md,
    struct postdoc_delivery *r)
{
	const struct pd_config *cfg = m->mh->cfg;
	char *buf = xmalloc(MAILHOST_BUF);
	unsigned char dig[32];
	ssize_t n;
	int rc = -1;

	while ((n = read(in, buf, MAILHOST_BUF)) > 0) {
		m->size += (uint64_t)n;
		if (m->size > (uint64_t)cfg->message_size_max) {
			mailhost_reply(r, 552, "5.3.4", "message larger than "
			    "%lld octets", (long long)cfg->message_size_max);
			goto out;
		}
		mailhost_hdr_add(m, buf, (size_t)n,
		    (size_t)cfg->header_block_max);
		if (EVP_DigestUpdate(md, buf, (size_t)n) != 1 ||
		    write(out, buf, (size_t)n) != n) {
			mailhost_reply(r, 451, "4.3.0", "cannot spool: %s",
			    strerror(errno));
			goto out;
		}
	}
	if (n < 0 || EVP_DigestFinal_ex(md, dig, NULL) != 1) {
		mailhost_reply(r, 451, "4.3.0", "cannot read %s: %s",
		    m->in->path, strerror(errno));
		goto out;
	}
	pd_hex(m->sha, dig, sizeof(dig));
	rc = 0;
out:
	free(buf);
	return rc;
}

/* Copy the plugin's file into var/spool/<queue id>, hashing it. */
static int
mailhost_spool(struct mailhost_msg *m, struct postdoc_delivery *r)
{
	unsigned char rnd[8];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int in = -1, out = -1, rc = -1;

	if (pd_random(rnd, sizeof(rnd)) != 0)
		pd_fatal("no randomness for queue ids");
	pd_hex(m->queue_id, rnd, sizeof(rnd));
	snprintf(m->spool, sizeof(m->spool), "%s/%s", m->mh->spool_dir,
	    m->queue_id);
	in = open(m->in->path, O_RDONLY | O_CLOEXEC);
	out = open(m->spool, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (in < 0 || out < 0 || md == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		mailhost_reply(r, 451, "4.3.0", "cannot spool %s: %s",
		    in < 0 ? m->in->path : m->spool, strerror(errno));
	else
		rc = mailhost_copy_fds(m, in, out, md, r);
	if (out >= 0 && close(out) != 0 && rc == 0) {
		mailhost_reply(r, 451, "4.3.0", "cannot spool: %s",
		    strerror(errno));
		rc = -1;
	}
	if (in >= 0)
		close(in);
	EVP_MD_CTX_free(md);
	if (rc != 0 && out >= 0)
		unlink(m->spool);
	return rc;
}

/* ---- submit ---- */

/*
 * The account's sender policy, as SMTP applies it at RCPT, on the
 * envelope sender the mailbox's MTA recorded (Return-Path): a dossier
 * whose policy refuses the sender is dropped, like a refused RCPT.
 * Routing decided it (mailhost_dossier_cb); the refusal is its reply.
 */
static int
mailhost_policy(struct mailhost_msg *m, struct postdoc_delivery *r)
{
	size_t i, k = 0;

	for (i = 0; i < m->nd; i++)
		if (m->d[i].kind == ROUTE_DOSSIER)
			m->d[k++] = m->d[i];
	if (k == 0) {
		mailhost_reply(r, m->d[0].code, m->d[0].enhanced, "%s",
		    m->d[0].text);
		m->nd = 0;
		return -1;
	}
	m->nd = k;
	return 0;
}

/* Route; on failure fills r and returns -1 (the spool file is left). */
static int
mailhost_pick(struct mailhost_msg *m, struct postdoc_delivery *r)
{
	const char *dom = m->mh->cfg->intake_domain;
	const char *def = m->in->default_dossier;
	int field = mailhost_route(m->hdr != NULL ? m->hdr : "", m->hdr_len,
	    dom, mailhost_dossier_cb, m);
	char local[128];

	if (field < 0 && !m->lookup_failed && def != NULL && def[0] != '\0') {
		if (mailhost_local(def, dom, local, sizeof(local)))
			mailhost_dossier_cb(local, m);
		if (m->nd == 0)
			log_warn("%s: %s: default dossier <%s> is not an open "
			    "dossier", m->queue_id, m->in->source, def);
	}
	if (m->lookup_failed && m->nd == 0) {
		mailhost_reply(r, 451, "4.3.0", "temporary lookup failure");
		return -1;
	}
	if (m->nd == 0) {
		mailhost_reply(r, 550, POSTDOC_SUBMIT_NO_DOSSIER,
		    "no open dossier named in Delivered-To, X-Original-To, "
		    "To or Cc, and no default dossier");
		return -1;
	}
	log_debug("%s: %s routed by %s", m->queue_id, m->in->source,
	    field >= 0 ? mailhost_fields[field] : "default_dossier");
	return mailhost_policy(m, r);
}

static void
mailhost_intake(struct mailhost_msg *m, struct postdoc_delivery *r)
{
	struct intake_rcpt rc[MAILHOST_RCPT_MAX];
	struct intake_result res;
	struct intake_job job;
	char addr[MAILHOST_RCPT_MAX][512];
	size_t i;

	memset(rc, 0, sizeof(rc));
	for (i = 0; i < m->nd; i++) {
		/* As routed: intake files by the item part (intake.c). */
		snprintf(addr[i], sizeof(addr[i]), "%s%s%s@%s",
		    m->d[i].intake_local, m->d[i].item[0] ? "+" : "",
		    m->d[i].item, m->mh->cfg->intake_domain);
		rc[i].address = addr[i];
		rc[i].dossier_id = m->d[i].dossier_id;
		rc[i].account_id = m->d[i].account_id;
		rc[i].account = m->d[i].account;
		rc[i].dossier_ref = m->d[i].ref;
	}
	memset(&job, 0, sizeof(job));
	job.queue_id = m->queue_id;
	job.helo = m->in->source;
	job.client_ip = m->in->peer != NULL ? m->in->peer : "";
	job.fetched = 1;
	job.tls = m->in->tls;
	job.mail_from = m->mail_from;
	job.rcpt_count = m->nd;
	job.rcpts = rc;
	job.spool_path = m->spool;
	job.size = m->size;
	job.sha256 = m->sha;
	job.deadline_ms = pd_monotonic_ms() + m->mh->cfg->message_time_max *
	    1000;
	memset(&res, 0, sizeof(res));
	intake_process(m->t->ictx, &job, &res);
	r->code = res.code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", res.enhanced);
	pd_ascii_clean(r->text, sizeof(r->text), res.text);
}

static void
mailhost_submit(void *ctx, const struct postdoc_submit *in,
    struct postdoc_delivery *r)
{
	struct mailhost *mh = ctx;
	struct mailhost_msg m;
	char err[PD_ERRLEN];

	memset(&m, 0, sizeof(m));
	memset(r, 0, sizeof(*r));
	m.mh = mh;
	m.in = in;
	if ((m.t = mailhost_thread_get(mh, err)) == NULL) {
		log_err("%s: intake unavailable: %s", in->source, err);
		mailhost_reply(r, 451, "4.3.0", "intake unavailable");
		return;
	}
	if (mailhost_spool(&m, r) == 0) {
		mailhost_return_path(&m);
		if (mailhost_pick(&m, r) == 0)
			mailhost_intake(&m, r);	/* consumes the spool file */
		else
			unlink(m.spool);
	}
	if (r->code / 100 == 2)
		metrics_accepted(MP_MAILBOX);
	log_info("%s: from=<%s> source=%s peer=%s%s size=%llu status=%d %s %s",
	    m.queue_id[0] ? m.queue_id : "-", m.mail_from, in->source,
	    in->peer != NULL ? in->peer : "", m.nd > 1 ? " (+more)" : "",
	    (unsigned long long)m.size, r->code, r->enhanced, r->text);
	free(m.hdr);
}

static void
mailhost_log(void *ctx, enum postdoc_log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	(void)ctx;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Inside a hook the line is about that message: prefix its id. */
	pd_log(level <= POSTDOC_LOG_ERR ? PD_LOG_ERR :
	    level == POSTDOC_LOG_WARN ? PD_LOG_WARN :
	    level == POSTDOC_LOG_INFO ? PD_LOG_INFO : PD_LOG_DEBUG,
	    PD_CTX_FMT "%s", PD_CTX, line);
}

int
mailhost_new(const struct pd_config *cfg, struct plugin_host *ph,
    struct mailhost **mh_r, char *err)
{
	struct mailhost *mh = xcalloc(1, sizeof(*mh));

	mh->cfg = cfg;
	mh->ph = ph;
	snprintf(mh->spool_dir, sizeof(mh->spool_dir), "%s/spool",
	    cfg->var_dir);
	if (pthread_key_create(&mh->key, mailhost_thread_free) != 0) {
		pd_err(err, "pthread_key_create failed");
		free(mh);
		return -1;
	}
	mh->api.abi = POSTDOC_PLUGIN_ABI;
	mh->api.ctx = mh;
	mh->api.submit = mailhost_submit;
	mh->api.log = mailhost_log;
	*mh_r = mh;
	return 0;
}

const struct postdoc_host *
mailhost_api(struct mailhost *mh)
{
	return &mh->api;
}

void
mailhost_free(struct mailhost **mhp)
{
	struct mailhost *mh = *mhp;

	if (mh == NULL)
		return;
	pthread_key_delete(mh->key);
	free(mh);
	*mhp = NULL;
}

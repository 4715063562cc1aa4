/*
 * smtp_session.c - one SMTP (RFC 5321) or LMTP (RFC 2033) conversation.
 * Commands dispatch from a {verb, check, proceed} table; DATA is streamed
 * through a byte machine into a spool file; a finished message goes to an
 * intake worker and the session waits, reading nothing, for its verdict.
 * Peer mistakes become replies with enhanced status codes (RFC 3463);
 * nothing here blocks on fsync or a database write.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "lib/config.h"
#include "intake/intake.h"
#include "events/metrics.h"
#include "plugin/plugin_host.h"
#include "lib/smtp_addr.h"
#include "smtp_session.h"
#include "store/store.h"
#include "consent/unsub.h"
#include "lib/util.h"
#include "lib/worker.h"

/* Output we let a client pile up (pipelining without reading) before we
 * stop reading from it. */
#define SMTP_OUT_HIGH (256 * 1024)
#define SMTP_SPOOL_BUF 65536		/* every DATA's first buffer */
#define SMTP_MEM_MSG_MAX (1024 * 1024)	/* a buffer grows to this at most */

enum sess_state {
	SS_GREETING,	/* greet pause: the client must stay silent */
	SS_CMD,
	SS_DATA,
	SS_BUSY,	/* an intake worker holds the message */
	SS_CLOSING	/* last reply being flushed */
};

struct sess_rcpt {
	char addr[257];
	char verp[72];			/* bounce report for this token, or "" */
	int64_t dossier_id;
	int64_t account_id;
	char account[64];
	char ref[128];
};

/*
 * DATA byte machine and spool (allocated for DATA only).  buf starts at
 * SMTP_SPOOL_BUF and doubles up to SMTP_MEM_MSG_MAX while the server's
 * limits.spool_memory_max allows; the spool file is opened only when buf
 * must be flushed.  A message that ends in memory goes to the worker as
 * it is: it becomes an inline row or a blob file directly, where a spool
 * file would be created, read back by GMime and then unlinked or renamed
 * (or, for bytes already stored, only unlinked).
 */
struct data_state {
	int fd;			/* -1 until the first flush */
	size_t held;		/* octets of buf counted in srv->spool_mem */
	char path[4096];
	EVP_MD_CTX *md;
	uint64_t size;		/* octets written (after unstuffing) */
	uint64_t line_len;	/* octets of the current wire line */
	int bol, dot, cr;	/* at line start / line began with '.' / CR seen */
	int too_big, line_long, nul, io_error;
	size_t blen, bcap;
	unsigned char *buf;
};

struct intake_task;

struct smtp_session {
	struct smtp_server_ctx *srv;
	struct smtp_session *prev, *next;
	struct bufferevent *bev;
	struct event *timer;		/* greet, command, data or busy */
	struct event *life_timer;	/* whole-session cap */
	struct event *close_timer;	/* TLS flush on close */
	enum sess_state state;
	int lmtp, tls, esmtp, close_tries;
	int direct;	/* plaintext: replies written by smtp_flush, EV_WRITE
			 * enabled only while libevent finishes a short write */
	int hold;	/* replies being composed: smtp_flush waits */
	int peer_eof;	/* the client shut its side while intake worked */
	char client_ip[64];
	uint16_t client_port;
	char helo[256];
	int discarding;			/* inside an overlong command line */
	unsigned errors, rcpt_rejects;
	int in_mail, smtputf8;
	char mail_from[257];
	struct sess_rcpt *rcpts;
	size_t nrcpt, rcpt_cap, rcpt_cmds;
	struct data_state *d;
	struct intake_task *task;
	const char *verb;		/* command being handled, for logs */
	/* Log prefix: the queue id from MAIL to the end of the transaction,
	 * the session id before and between transactions. */
	char queue_id[24], sid[16];
};

struct intake_task {
	struct smtp_session *sess;	/* NULL once the session is gone */
	struct intake_job job;
	struct intake_rcpt *rcpts;
	struct sess_rcpt *rcopy;
	struct intake_result *results;
	char queue_id[24], helo[256], client_ip[64], mail_from[257];
	char spool_path[4096], sha[65];
	unsigned char *mem;		/* the message, when not spooled */
	size_t mem_held;		/* its share of srv->spool_mem */
	struct smtp_server_ctx *srv;
};

struct smtp_cmd {
	const char *verb;
	/* Syntax and sequence; replies itself and returns -1 to stop. */
	int (*check)(struct smtp_session *s, const char *arg);
	/* The effect; runs only when check passed. */
	void (*proceed)(struct smtp_session *s, const char *arg);
};

/* One command line at a time, on the loop thread only. */
static char smtp_linebuf[65536 + 8];

static void smtp_read_cb(struct bufferevent *bev, void *arg);
static void smtp_write_cb(struct bufferevent *bev, void *arg);
static void smtp_event_cb(struct bufferevent *bev, short what, void *arg);
static void smtp_free(struct smtp_session *s);
static void smtp_process(struct smtp_session *s);
static void smtp_lost_in_data(struct smtp_session *s);

/* ---- replies and the log ---- */

/*
 * A bufferevent freezes the front of its output buffer so only it drains
 * it; its own write callback thaws it around the write, and so do we.
 */
static void
smtp_write_now(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	evbuffer_unfreeze(out, 1);
	(void)evbuffer_write(out, bufferevent_getfd(bev));
	evbuffer_freeze(out, 1);
}

/*
 * Plaintext replies are written here, at once, not by libevent's write
 * event: that one is added to epoll when a reply is queued and removed
 * when it is sent, two epoll_ctl and one more epoll_wait round per reply,
 * 9% of the loop thread's CPU at 2 KB messages, and the reply waits for
 * the next turn of the loop.  Replies to pipelined commands (RFC 2920)
 * still leave together: while another complete command is waiting, or
 * while s->hold, the flush waits for the last reply.  Whatever the
 * socket does not take now is left to libevent (EV_WRITE until drained,
 * then smtp_write_cb turns it off again); so are errors, which libevent
 * then reports through smtp_event_cb.  Never frees the session.
 */
static void
smtp_flush(struct smtp_session *s)
{
	struct evbuffer *in, *out;
	struct evbuffer_ptr eol;
	size_t eol_len = 0;

	if (!s->direct || s->hold ||
	    (bufferevent_get_enabled(s->bev) & EV_WRITE))
		return;
	out = bufferevent_get_output(s->bev);
	if (evbuffer_get_length(out) == 0)
		return;
	if (s->state == SS_CMD) {
		in = bufferevent_get_input(s->bev);
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos >= 0)
			return;		/* its reply will carry ours */
	}
	smtp_write_now(s->bev);
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(s->bev, EV_WRITE);
}

/* What lines about this session start with (Postfix's "<queue id>: "). */
static const char *
smtp_log_id(const struct smtp_session *s)
{
	return s->queue_id[0] != '\0' ? s->queue_id : s->sid;
}

static void
smtp_reply(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%d %s%s%s\r\n",
	    code, enh, enh[0] != '\0' ? " " : "", text);
	log_debug("%s: > %d %s%s%s", smtp_log_id(s), code, enh,
	    enh[0] != '\0' ? " " : "", text);
	smtp_flush(s);
}

static void
smtp_timer_arm(struct smtp_session *s, int64_t seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	evtimer_add(s->timer, &tv);
}

/* Send nothing more; free once the output reached the socket. */
static void
smtp_close(struct smtp_session *s)
{
	if (s->state == SS_CLOSING)
		return;
	s->state = SS_CLOSING;
	evtimer_del(s->timer);
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_enable(s->bev, EV_WRITE);
	/*
	 * Nothing left to send (smtp_flush wrote it): free from the loop,
	 * never from here, since the caller may still be inside a command
	 * of this session.  With output pending, libevent's write callback
	 * frees it once drained.
	 */
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		struct timeval now = { 0, 0 };

		evtimer_add(s->close_timer, &now);
	}
}

/* A protocol error: counts toward error_limit (Postfix's
 * smtpd_hard_error_limit), after which we hang up. */
static void
smtp_error_count(struct smtp_session *s)
{
	if (++s->errors >= (unsigned)s->srv->cfg->error_limit) {
		smtp_reply(s, 421, "4.7.0", "%s Error: too many errors",
		    s->srv->cfg->hostname);
		smtp_close(s);
	}
}

static void
smtp_error(struct smtp_session *s, int code, const char *enh,
    const char *text)
{
	smtp_reply(s, code, enh, "%s", text);
	smtp_error_count(s);
}

/*
 * A step of a transaction refused: the reply, one "reject:" line under
 * the queue id with the envelope so far (as Postfix logs it, so a grep
 * for the id finds why), and the refusal counted by reason.  rcpt is
 * the refused recipient, or NULL.
 */
static void
smtp_refuse(struct smtp_session *s, enum metrics_refusal why,
    const char *rcpt, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
smtp_refuse(struct smtp_session *s, enum metrics_refusal why,
    const char *rcpt, int code, const char *enh, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_reply(s, code, enh, "%s", text);
	metrics_refused(why);
	log_info("%s: reject: %s from %s: %d %s %s; from=<%s>%s%s%s "
	    "reason=%s", smtp_log_id(s), s->verb != NULL ? s->verb : "-",
	    s->client_ip, code, enh, text, s->mail_from,
	    rcpt != NULL ? " to=<" : "", rcpt != NULL ? rcpt : "",
	    rcpt != NULL ? ">" : "", metrics_refusal_name(why));
}

static void
smtp_info(const struct smtp_session *s, struct postdoc_session_info *i)
{
	i->client_ip = s->client_ip;
	i->client_port = s->client_port;
	i->helo = s->helo[0] != '\0' ? s->helo : NULL;
	i->tls = s->tls;
	i->lmtp = s->lmtp;
	/* A hook follows: its host->log lines carry our id. */
	pd_log_context_set(smtp_log_id(s));
}

/* Map a plugin verdict at an SMTP stage to our reply; 1 if refused.
 * Inside a transaction (MAIL, RCPT) the refusal is logged and counted. */
static int
smtp_plugin_refused(struct smtp_session *s, const struct plugin_outcome *o,
    const char *rcpt)
{
	int code;
	const char *enh;

	switch (o->verdict) {
	case POSTDOC_DENY:
		code = 550, enh = "5.7.1";
		break;
	case POSTDOC_DENYSOFT:
		code = 450, enh = "4.7.1";
		break;
	case POSTDOC_DISCONNECT:
		code = 421, enh = "4.7.0";
		break;
	default:
		return 0;
	}
	if (s->queue_id[0] != '\0')
		smtp_refuse(s, MR_PLUGIN, rcpt, code, enh, "%s", o->text);
	else {
		log_info("%s: reject: %s from %s: %d %s %s", s->sid,
		    s->verb != NULL ? s->verb : "-", s->client_ip, code, enh,
		    o->text);
		smtp_reply(s, code, enh, "%s", o->text);
	}
	if (code == 421)
		smtp_close(s);
	return 1;
}

/* ---- transaction state ---- */

/* srv->spool_mem (loop thread only) and its gauge on /metrics. */
static void
smtp_spool_mem_add(struct smtp_server_ctx *srv, size_t add, size_t sub)
{
	srv->spool_mem += add;
	srv->spool_mem -= sub;
	metrics_spool_memory(srv->spool_mem);
}

static void
smtp_data_discard(struct smtp_session *s)
{
	if (s->d == NULL)
		return;
	if (s->d->fd >= 0) {
		close(s->d->fd);
		unlink(s->d->path);
	}
	/* Never opened (io_error with fd -1): no file to remove. */
	EVP_MD_CTX_free(s->d->md);
	smtp_spool_mem_add(s->srv, 0, s->d->held);
	free(s->d->buf);
	free(s->d);
	s->d = NULL;
}

static void
smtp_txn_reset(struct smtp_session *s)
{
	s->in_mail = 0;
	s->smtputf8 = 0;
	s->mail_from[0] = '\0';
	s->nrcpt = 0;
	s->rcpt_cmds = 0;
	smtp_data_discard(s);
	s->queue_id[0] = '\0';
}

/* ---- commands: HELO / EHLO / LHLO ---- */

/* A greeting argument: one printable token (RFC 5321 4.1.1.1). */
static int
smtp_check_hello(struct smtp_session *s, const char *arg, int lmtp_verb)
{
	size_t i;

	if (lmtp_verb != s->lmtp) {
		smtp_error(s, 500, "5.5.1", s->lmtp ? "Error: this is LMTP, "
		    "use LHLO" : "Error: command unrecognized");
		return -1;
	}
	for (i = 0; arg[i] != '\0'; i++)
		if (arg[i] <= ' ' || arg[i] >= 0x7f)
			break;
	if (i == 0 || arg[i] != '\0' || i >= sizeof(s->helo)) {
		smtp_error(s, 501, "5.5.4", "Syntax: EHLO hostname");
		return -1;
	}
	return 0;
}

static int
smtp_check_helo(struct smtp_session *s, const char *arg)
{
	return smtp_check_hello(s, arg, 0);
}

static int
smtp_check_lhlo(struct smtp_session *s, const char *arg)
{
	return smtp_check_hello(s, arg, 1);
}

/*
 * RFC 2920 section 3.1: EHLO and DATA end a pipelined group.  Bytes
 * already waiting behind them mean the client did not wait for our
 * answer: an early talker or a smuggling attempt.  Refuse and hang up.
 */
static int
smtp_pipelining_violated(struct smtp_session *s)
{
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) == 0)
		return 0;
	smtp_reply(s, 554, "5.5.0", "Error: improper use of SMTP command "
	    "pipelining");
	smtp_close(s);
	return 1;
}

static int
smtp_hello_common(struct smtp_session *s, const char *arg)
{
	struct postdoc_session_info info;
	struct plugin_outcome o;

	snprintf(s->helo, sizeof(s->helo), "%s", arg);
	smtp_txn_reset(s);
	smtp_info(s, &info);
	plugin_run_helo(s->srv->plugins, &info, &o);
	if (smtp_plugin_refused(s, &o, NULL)) {
		s->helo[0] = '\0';
		return -1;
	}
	return smtp_pipelining_violated(s) ? -1 : 0;
}

static void
smtp_do_helo(struct smtp_session *s, const char *arg)
{
	if (smtp_hello_common(s, arg) != 0)
		return;
	s->esmtp = 0;
	evbuffer_add_printf(bufferevent_get_output(s->bev), "250 %s\r\n",
	    s->srv->cfg->hostname);
	smtp_flush(s);
}

/* Advertise only what is implemented: no CHUNKING, no AUTH. */
static void
smtp_do_ehlo(struct smtp_session *s, const char *arg)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	const struct pd_config *cfg = s->srv->cfg;

	if (smtp_hello_common(s, arg) != 0)
		return;
	s->esmtp = 1;
	evbuffer_add_printf(out, "250-%s\r\n", cfg->hostname);
	evbuffer_add_printf(out, "250-PIPELINING\r\n");
	evbuffer_add_printf(out, "250-SIZE %lld\r\n",
	    (long long)cfg->message_size_max);
	if (s->srv->ssl_ctx != NULL && !s->tls)
		evbuffer_add_printf(out, "250-STARTTLS\r\n");
	evbuffer_add_printf(out, "250-8BITMIME\r\n");
	evbuffer_add_printf(out, "250-SMTPUTF8\r\n");
	evbuffer_add_printf(out, "250 ENHANCEDSTATUSCODES\r\n");
	smtp_flush(s);
}

/* ---- MAIL ---- */

static int
smtp_need_hello(struct smtp_session *s)
{
	if (s->helo[0] != '\0')
		return 0;
	smtp_error(s, 503, "5.5.1", s->lmtp ? "Error: send LHLO first" :
	    "Error: send HELO/EHLO first");
	return -1;
}

static int
smtp_path_error(struct smtp_session *s, enum addr_status st, int from)
{
	switch (st) {
	case ADDR_OK:
		return 0;
	case ADDR_TOO_LONG:
		smtp_refuse(s, MR_SYNTAX, NULL, 501, from ? "5.1.7" : "5.1.3",
		    "Error: address too long");
		break;
	case ADDR_BAD_PARAM:
		smtp_refuse(s, MR_SYNTAX, NULL, 555, "5.5.4",
		    "Error: unsupported parameter");
		break;
	case ADDR_BAD_SIZE:
		smtp_refuse(s, MR_SYNTAX, NULL, 501, "5.5.4",
		    "Error: bad SIZE value");
		break;
	default:
		smtp_refuse(s, MR_SYNTAX, NULL, 501, from ? "5.1.7" : "5.1.3",
		    "Error: bad address syntax");
		break;
	}
	smtp_error_count(s);
	return -1;
}

static void
smtp_new_queue_id(struct smtp_session *s)
{
	unsigned char rnd[8];

	if (pd_random(rnd, sizeof(rnd)) != 0)
		pd_fatal("no randomness for queue ids");
	pd_hex(s->queue_id, rnd, sizeof(rnd));
}

static int
smtp_check_mail(struct smtp_session *s, const char *arg)
{
	struct smtp_path p;

	if (smtp_need_hello(s) != 0)
		return -1;
	if (s->in_mail) {
		smtp_error(s, 503, "5.5.1", "Error: nested MAIL command");
		return -1;
	}
	if (smtp_path_error(s, smtp_path_parse(arg, 1, &p), 1) != 0)
		return -1;
	/* RFC 1870: refuse up front what the limit would refuse later; an
	 * overflowed SIZE is never a small number. */
	if (p.has_size && (p.size_overflow ||
	    p.size > (uint64_t)s->srv->cfg->message_size_max)) {
		smtp_refuse(s, MR_SIZE, NULL, 552, "5.3.4", "Error: message "
		    "size exceeds fixed limit of %lld octets",
		    (long long)s->srv->cfg->message_size_max);
		return -1;
	}
	return 0;
}

static void
smtp_do_mail(struct smtp_session *s, const char *arg)
{
	struct postdoc_session_info info;
	struct plugin_outcome o;
	struct smtp_path p;

	smtp_path_parse(arg, 1, &p);
	smtp_info(s, &info);
	/* The reject line shows the sender the hook refused. */
	snprintf(s->mail_from, sizeof(s->mail_from), "%s", p.addr);
	plugin_run_mail_from(s->srv->plugins, &info, p.addr, &o);
	if (smtp_plugin_refused(s, &o, NULL)) {
		s->mail_from[0] = '\0';
		return;
	}
	s->smtputf8 = p.smtputf8;
	s->in_mail = 1;
	smtp_reply(s, 250, "2.1.0", "Ok");
}

/* ---- RCPT ---- */

static int
smtp_check_rcpt(struct smtp_session *s, const char *arg)
{
	struct smtp_path p;

	if (!s->in_mail) {
		smtp_error(s, 503, "5.5.1", "Error: need MAIL command");
		return -1;
	}
	if (smtp_path_error(s, smtp_path_parse(arg, 0, &p), 0) != 0)
		return -1;
	/* RFC 5321 4.5.3.1.8 and 4.5.3.1.10: past our limit, 452 and the
	 * client sends the rest in another transaction. */
	if (s->rcpt_cmds >= (size_t)s->srv->cfg->rcpt_max) {
		smtp_refuse(s, MR_LIMIT, p.addr, 452, "4.5.3",
		    "Error: too many recipients");
		return -1;
	}
	s->rcpt_cmds++;
	return 0;
}

static void
smtp_rcpt_unknown(struct smtp_session *s, const char *addr)
{
	smtp_refuse(s, MR_UNKNOWN_RECIPIENT, addr, 550, "5.1.1",
	    "Error: no such dossier here");
	if (++s->rcpt_rejects > (unsigned)s->srv->cfg->rcpt_reject_limit) {
		smtp_reply(s, 421, "4.7.0", "%s Error: too many unknown "
		    "recipients", s->srv->cfg->hostname);
		smtp_close(s);
	}
}

/* Find the open dossier an address names; replies and returns -1 if
 * there is none. */
static int
smtp_rcpt_dossier(struct smtp_session *s, const char *addr,
    struct store_dossier *d)
{
	char local[80], err[PD_ERRLEN];
	int found;

	if (!smtp_addr_intake_local(addr, s->srv->cfg->intake_domain, local,
	    sizeof(local))) {
		smtp_rcpt_unknown(s, addr);
		return -1;
	}
	found = store_dossier_by_local(s->srv->store, local, d, err);
	if (found < 0) {
		log_err("%s: rcpt lookup: %s", smtp_log_id(s), err);
		smtp_refuse(s, MR_TEMPORARY, addr, 451, "4.3.0",
		    "Error: temporary lookup failure");
		return -1;
	}
	if (found == 0 || strcmp(d->status, "open") != 0) {
		smtp_rcpt_unknown(s, addr);
		return -1;
	}
	return 0;
}

static void
smtp_rcpt_add(struct smtp_session *s, const char *addr,
    const struct store_dossier *d, const char *verp)
{
	struct sess_rcpt *r;
	size_t i;

	/* SMTP owes one reply per message: a repeated dossier is one
	 * delivery.  LMTP owes one reply per RCPT, so it keeps them all. */
	for (i = 0; !s->lmtp && verp == NULL && i < s->nrcpt; i++)
		if (s->rcpts[i].dossier_id == d->id)
			return;
	if (s->nrcpt == s->rcpt_cap) {
		s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
		s->rcpts = xrealloc(s->rcpts, s->rcpt_cap * sizeof(*r));
	}
	r = &s->rcpts[s->nrcpt++];
	snprintf(r->addr, sizeof(r->addr), "%s", addr);
	snprintf(r->verp, sizeof(r->verp), "%s", verp != NULL ? verp : "");
	r->dossier_id = d->id;
	r->account_id = d->account_id;
	snprintf(r->account, sizeof(r->account), "%s", d->account);
	snprintf(r->ref, sizeof(r->ref), "%s", d->ref);
}

/*
 * Bounce reports arrive at b-<token>@<bounce domain> (VERP): accepted
 * only for a token we issued, whatever the sender (DSNs come from <>).
 * A transaction holds either bounce reports or dossier mail, so each
 * gets its own handling; the other kind is told to come back (452,
 * RFC 5321 4.5.3.1.10).  Returns 1 if addr was a bounce address.
 */
static int
smtp_rcpt_bounce(struct smtp_session *s, const char *addr)
{
	struct store_outbound o;
	struct store_dossier d;
	char token[72], err[PD_ERRLEN];
	int found;

	if (!smtp_addr_bounce_token(addr, s->srv->cfg->bounce_domain, token,
	    sizeof(token)))
		return 0;
	if (s->nrcpt > 0 && (s->rcpts[0].verp[0] == '\0' ||
	    strncmp(s->rcpts[0].verp, "u-", 2) == 0)) {
		smtp_refuse(s, MR_PROTOCOL, addr, 452, "4.5.3", "Error: send "
		    "bounce reports in a transaction of their own");
		return 1;
	}
	found = store_outbound_by_verp(s->srv->store, token, &o, err);
	if (found < 0) {
		log_err("%s: rcpt lookup: %s", smtp_log_id(s), err);
		smtp_refuse(s, MR_TEMPORARY, addr, 451, "4.3.0",
		    "Error: temporary lookup failure");
		return 1;
	}
	if (found == 0) {
		smtp_rcpt_unknown(s, addr);
		return 1;
	}
	memset(&d, 0, sizeof(d));
	d.id = o.dossier_id;
	d.account_id = o.account_id;
	snprintf(d.account, sizeof(d.account), "%s", o.account);
	smtp_rcpt_add(s, addr, &d, token);
	smtp_reply(s, 250, "2.1.5", "Ok");
	return 1;
}

/*
 * Unsubscribe by mail (RFC 2369 mailto:): u-<token>@<list domain> is
 * accepted only for a valid token, in a transaction of its own like
 * bounce reports; the token authenticates, never the sender.  The rcpt
 * carries "u-<token>" where a bounce carries its VERP token.
 */
static int
smtp_rcpt_unsub(struct smtp_session *s, const char *addr)
{
	struct store_contact c;
	struct store_dossier d;
	struct unsub_token t;
	char token[UNSUB_TOKEN_MAX], verp[72], err[PD_ERRLEN];
	int found = 0;

	if (!unsub_addr_token(addr, unsub_list_domain(s->srv->cfg), token,
	    sizeof(token)))
		return 0;
	if (s->nrcpt > 0 && strncmp(s->rcpts[0].verp, "u-", 2) != 0) {
		smtp_refuse(s, MR_PROTOCOL, addr, 452, "4.5.3", "Error: send "
		    "unsubscribe requests in a transaction of their own");
		return 1;
	}
	if (unsub_token_parse(token, &t) &&
	    (found = store_contact_by_id(s->srv->store, t.id, &c, err)) < 0) {
		log_err("%s: rcpt lookup: %s", smtp_log_id(s), err);
		smtp_refuse(s, MR_TEMPORARY, addr, 451, "4.3.0",
		    "Error: temporary lookup failure");
		return 1;
	}
	if (!unsub_token_check(s->srv->cfg, UNSUB_T_UNSUB, found == 1 ?
	    c.account_id : 0, &t) || found != 1) {
		smtp_rcpt_unknown(s, addr);
		return 1;
	}
	memset(&d, 0, sizeof(d));
	d.account_id = c.account_id;
	snprintf(d.account, sizeof(d.account), "%s", c.account);
	snprintf(verp, sizeof(verp), "u-%s", token);
	smtp_rcpt_add(s, addr, &d, verp);
	smtp_reply(s, 250, "2.1.5", "Ok");
	return 1;
}

static void
smtp_do_rcpt(struct smtp_session *s, const char *arg)
{
	struct postdoc_session_info info;
	struct postdoc_rcpt_info ri;
	struct plugin_outcome o;
	struct store_dossier d;
	struct smtp_path p;

	smtp_path_parse(arg, 0, &p);
	if (smtp_rcpt_bounce(s, p.addr))
		return;
	if (smtp_rcpt_unsub(s, p.addr))
		return;
	if (s->nrcpt > 0 && s->rcpts[0].verp[0] != '\0') {
		smtp_refuse(s, MR_PROTOCOL, p.addr, 452, "4.5.3", "Error: "
		    "send dossier mail in a transaction of its own");
		return;
	}
	if (smtp_rcpt_dossier(s, p.addr, &d) != 0)
		return;
	if (!smtp_addr_sender_allowed(d.sender_policy, s->mail_from,
	    d.contact)) {
		smtp_refuse(s, MR_SENDER_POLICY, p.addr, 550, "5.7.1",
		    "Error: sender <%s> may not file into this dossier",
		    s->mail_from);
		return;
	}
	smtp_info(s, &info);
	ri.address = p.addr;
	ri.account = d.account;
	ri.dossier_ref = d.ref;
	ri.dossier_id = d.id;
	plugin_run_rcpt_to(s->srv->plugins, &info, s->mail_from, &ri, &o);
	if (smtp_plugin_refused(s, &o, p.addr))
		return;
	smtp_rcpt_add(s, p.addr, &d, NULL);
	smtp_reply(s, 250, "2.1.5", "Ok");
}

/* ---- DATA ---- */

static int
smtp_check_data(struct smtp_session *s, const char *arg)
{
	if (arg[0] != '\0') {
		smtp_error(s, 501, "5.5.4", "Syntax: DATA");
		return -1;
	}
	if (!s->in_mail) {
		smtp_error(s, 503, "5.5.1", "Error: need MAIL command");
		return -1;
	}
	if (s->nrcpt == 0) {
		/* RFC 5321 3.3: no valid recipients */
		smtp_refuse(s, MR_PROTOCOL, NULL, 554, "5.5.1",
		    "Error: no valid recipients");
		smtp_error_count(s);
		return -1;
	}
	return 0;
}

static int
smtp_spool_open(struct smtp_session *s)
{
	struct data_state *d = xcalloc(1, sizeof(*d));

	if (s->queue_id[0] == '\0')	/* MAIL drew it; never reached */
		smtp_new_queue_id(s);
	if ((size_t)snprintf(d->path, sizeof(d->path), "%s/%s",
	    s->srv->spool_dir, s->queue_id) >= sizeof(d->path))
		pd_fatal("spool path too long");
	d->fd = -1;
	d->bcap = SMTP_SPOOL_BUF;
	d->buf = xmalloc(d->bcap);
	d->md = EVP_MD_CTX_new();
	d->bol = 1;
	s->d = d;
	if (d->md == NULL ||
	    EVP_DigestInit_ex(d->md, EVP_sha256(), NULL) != 1) {
		log_err("%s: spool: cannot initialise sha256", s->queue_id);
		smtp_data_discard(s);
		return -1;
	}
	return 0;
}

static void
smtp_do_data(struct smtp_session *s, const char *arg)
{
	if (smtp_pipelining_violated(s))
		return;
	if (smtp_spool_open(s) != 0) {
		smtp_refuse(s, MR_TEMPORARY, NULL, 451, "4.3.0", "Error: "
		    "cannot spool message, try again later");
		return;
	}
	s->state = SS_DATA;
	smtp_reply(s, 354, "", "End data with <CR><LF>.<CR><LF>");
	smtp_timer_arm(s, s->srv->cfg->data_timeout);
}

/* ---- RSET NOOP QUIT HELP and the unimplemented ---- */

static int
smtp_check_noarg(struct smtp_session *s, const char *arg)
{
	if (arg[0] == '\0')
		return 0;
	smtp_error(s, 501, "5.5.4", "Syntax: no parameters allowed");
	return -1;
}

static void
smtp_do_rset(struct smtp_session *s, const char *arg)
{
	smtp_txn_reset(s);
	smtp_reply(s, 250, "2.0.0", "Ok");
}

static void
smtp_do_noop(struct smtp_session *s, const char *arg)
{
	smtp_reply(s, 250, "2.0.0", "Ok");
}

static void
smtp_do_quit(struct smtp_session *s, const char *arg)
{
	smtp_reply(s, 221, "2.0.0", "Bye");
	smtp_close(s);
}

static void
smtp_do_help(struct smtp_session *s, const char *arg)
{
	smtp_reply(s, 214, "2.0.0", "Postdoc: send documents to your "
	    "dossier address; see RFC 5321");
}

/* VRFY would confirm which dossier addresses exist; AUTH, BDAT and the
 * rest are not implemented, hence not advertised (RFC 5321 4.2.4). */
static int
smtp_check_unimplemented(struct smtp_session *s, const char *arg)
{
	smtp_error(s, 502, "5.5.1", "Error: command not implemented");
	return -1;
}

/* ---- STARTTLS (RFC 3207) ---- */

static int
smtp_check_starttls(struct smtp_session *s, const char *arg)
{
	if (s->srv->ssl_ctx == NULL) {
		smtp_error(s, 502, "5.5.1", "Error: command not implemented");
		return -1;
	}
	if (s->tls) {
		smtp_error(s, 503, "5.5.1", "Error: TLS already active");
		return -1;
	}
	return smtp_check_noarg(s, arg);
}

static void
smtp_do_starttls(struct smtp_session *s, const char *arg)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct bufferevent *tb;
	SSL *ssl = SSL_new(s->srv->ssl_ctx);

	if (ssl == NULL) {
		smtp_reply(s, 454, "4.7.0", "TLS not available due to "
		    "temporary reason");
		return;
	}
	/* CVE-2011-0411: plaintext sent behind STARTTLS must not be read
	 * as if it had come through the TLS tunnel. */
	evbuffer_drain(in, evbuffer_get_length(in));
	smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* The filter writes through the socket's bufferevent from now on. */
	s->direct = 0;
	bufferevent_enable(s->bev, EV_WRITE);
	tb = bufferevent_openssl_filter_new(s->srv->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		smtp_close(s);
		return;
	}
	s->bev = tb;
	s->tls = 1;
	/* RFC 3207 4.2: forget everything learnt before the handshake. */
	s->helo[0] = '\0';
	smtp_txn_reset(s);
	bufferevent_setcb(tb, smtp_read_cb, smtp_write_cb, smtp_event_cb, s);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
}

static const struct smtp_cmd smtp_cmds[] = {
	{ "HELO", smtp_check_helo, smtp_do_helo },
	{ "EHLO", smtp_check_helo, smtp_do_ehlo },
	{ "LHLO", smtp_check_lhlo, smtp_do_ehlo },
	{ "MAIL", smtp_check_mail, smtp_do_mail },
	{ "RCPT", smtp_check_rcpt, smtp_do_rcpt },
	{ "DATA", smtp_check_data, smtp_do_data },
	{ "RSET", smtp_check_noarg, smtp_do_rset },
	{ "NOOP", NULL, smtp_do_noop },
	{ "QUIT", NULL, smtp_do_quit },
	{ "HELP", NULL, smtp_do_help },
	{ "STARTTLS", smtp_check_starttls, smtp_do_starttls },
	{ "VRFY", smtp_check_unimplemented, NULL },
	{ "EXPN", smtp_check_unimplemented, NULL },
	{ "AUTH", smtp_check_unimplemented, NULL },
	{ "BDAT", smtp_check_unimplemented, NULL },
	{ "ETRN", smtp_check_unimplemented, NULL },
	{ "TURN", smtp_check_unimplemented, NULL },
	{ NULL, NULL, NULL }
};

static void
smtp_dispatch(struct smtp_session *s, char *line)
{
	const struct smtp_cmd *c;
	size_t vlen = strcspn(line, " ");
	const char *arg = line[vlen] == ' ' ? line + vlen + 1 : "";

	for (c = smtp_cmds; c->verb != NULL; c++)
		if (strlen(c->verb) == vlen &&
		    strncasecmp(c->verb, line, vlen) == 0)
			break;
	/* A transaction's id from its MAIL on: every line about it, this
	 * one and its refusals included, carries it; the spool file is named
	 * after it and the 250 at the end of data quotes it.  A MAIL that
	 * opens nothing loses it below; a transaction, at reset. */
	if (c->proceed == smtp_do_mail && !s->in_mail)
		smtp_new_queue_id(s);
	log_debug("%s: < %s", smtp_log_id(s), line);
	if (c->verb == NULL) {
		smtp_error(s, 500, "5.5.1", "Error: command unrecognized");
		return;
	}
	s->verb = c->verb;
	if (c->check == NULL || c->check(s, arg) == 0) {
		if (c->proceed != NULL)
			c->proceed(s, arg);
	}
	/* A refused MAIL opened no transaction: its id goes with it. */
	if (!s->in_mail && s->state == SS_CMD)
		s->queue_id[0] = '\0';
	pd_log_context_set(NULL);
}

/* ---- reading commands ---- */

/* An overlong line: answer once, then drop bytes up to the next LF
 * without buffering them (RFC 5321 4.5.3.1.4). */
static void
smtp_line_too_long(struct smtp_session *s, struct evbuffer *in)
{
	evbuffer_drain(in, evbuffer_get_length(in));
	if (s->discarding)
		return;
	s->discarding = 1;
	smtp_error(s, 500, "5.5.2", "Error: line too long");
}

/*
 * Take one command line from the input.  Returns 1 with the line (CRLF
 * removed) in smtp_linebuf, 0 when more bytes are needed, -1 when the
 * session was closed or the line was consumed as an error.
 */
static int
smtp_read_line(struct smtp_session *s, struct evbuffer *in, size_t *len_r)
{
	size_t max = (size_t)s->srv->cfg->line_max, len;
	struct evbuffer_ptr eol;
	char *line = smtp_linebuf;

	eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) > max || s->discarding)
			smtp_line_too_long(s, in);
		return 0;
	}
	len = (size_t)eol.pos + 1;
	if (s->discarding || len > max) {
		evbuffer_drain(in, len);
		if (!s->discarding)
			smtp_error(s, 500, "5.5.2", "Error: line too long");
		s->discarding = 0;
		return -1;
	}
	evbuffer_remove(in, line, len);
	/* Bare LF / bare CR: the SMTP smuggling family (Postfix 3.9
	 * smtpd_forbid_bare_newline=reject).  Refuse and hang up. */
	if (len < 2 || line[len - 2] != '\r' ||
	    memchr(line, '\r', len - 2) != NULL) {
		smtp_reply(s, 550, "5.5.2", "Error: bare <LF> or <CR> "
		    "received");
		smtp_close(s);
		return -1;
	}
	line[len - 2] = '\0';
	if (memchr(line, '\0', len - 2) != NULL) {
		smtp_error(s, 500, "5.5.2", "Error: NUL in command");
		return -1;
	}
	*len_r = len - 2;
	return 1;
}

static void
smtp_process_commands(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer *out;
	size_t len;
	int r;

	while (s->state == SS_CMD) {
		out = bufferevent_get_output(s->bev);
		if (evbuffer_get_length(out) > SMTP_OUT_HIGH) {
			/* The client is not reading its replies. */
			bufferevent_disable(s->bev, EV_READ);
			bufferevent_enable(s->bev, EV_WRITE);
			return;
		}
		r = smtp_read_line(s, in, &len);
		if (r == 0)
			return;
		if (r > 0)
			smtp_dispatch(s, smtp_linebuf);
		/* A complete line, even a refused one, restarts the clock;
		 * bytes trickling in without one do not (slowloris). */
		if (s->state == SS_CMD)
			smtp_timer_arm(s, s->srv->cfg->command_timeout);
	}
}

/* ---- DATA: the byte machine ---- */

static void
smtp_spool_flush(struct data_state *d)
{
	size_t off = 0;
	ssize_t n;

	if (d->blen == 0)
		return;
	EVP_DigestUpdate(d->md, d->buf, d->blen);
	if (d->fd < 0 && !d->io_error) {
		d->fd = open(d->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (d->fd < 0) {
			log_err("%s: spool %s: %s", strrchr(d->path, '/') + 1,
			    d->path, strerror(errno));
			d->io_error = 1;
		}
	}
	while (!d->io_error && off < d->blen) {
		n = write(d->fd, d->buf + off, d->blen - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* The spool file is named after the queue id. */
			log_err("%s: spool write: %s", strrchr(d->path, '/') +
			    1, strerror(errno));
			d->io_error = 1;
			break;
		}
		off += (size_t)n;
	}
	d->blen = 0;
}

/* Double a full, never flushed buf if the memory budget allows: 0. */
static int
smtp_spool_grow(struct smtp_session *s, struct data_state *d)
{
	size_t more = d->bcap;

	if (d->fd >= 0 || d->io_error || d->bcap * 2 > SMTP_MEM_MSG_MAX ||
	    s->srv->spool_mem + more >
	    (uint64_t)s->srv->cfg->spool_memory_max)
		return -1;
	d->buf = xrealloc(d->buf, d->bcap * 2);
	d->bcap *= 2;
	d->held += more;
	smtp_spool_mem_add(s->srv, more, 0);
	return 0;
}

static void
smtp_spool_put(struct smtp_session *s, struct data_state *d,
    const char *p, size_t n)
{
	if (d->too_big)
		return;
	/* Enforced while streaming (RFC 1870 6.3): past the limit we keep
	 * reading to the end of data but store nothing more. */
	if (d->size + n > (uint64_t)s->srv->cfg->message_size_max) {
		d->too_big = 1;
		return;
	}
	d->size += n;
	while (n > 0) {
		size_t room = d->bcap - d->blen, k = n < room ? n : room;

		memcpy(d->buf + d->blen, p, k);
		d->blen += k;
		p += k;
		n -= k;
		if (d->blen == d->bcap && smtp_spool_grow(s, d) != 0)
			smtp_spool_flush(d);
	}
}

enum data_step { DATA_MORE, DATA_END, DATA_BARE };

/*
 * Feed wire bytes.  RFC 5321 4.1.1.4 and 4.5.2: only CRLF.CRLF ends the
 * data; a leading '.' is removed from any other line.  A CR not followed
 * by LF, or an LF not preceded by CR, is refused (the smuggling class):
 * every other byte, NUL included, is kept exactly.  *used_r tells how many
 * bytes were consumed.
 */
static enum data_step
smtp_data_feed(struct smtp_session *s, const unsigned char *p, size_t n,
    size_t *used_r)
{
	struct data_state *d = s->d;
	uint64_t line_max = (uint64_t)s->srv->cfg->data_line_max;
	size_t i = 0, run = 0;	/* p[run..i) is plain text not yet spooled */
	const unsigned char *cr;
	size_t end, seg;

	while (i < n) {
		if (d->cr) {
			if (p[i] != '\n')
				return DATA_BARE;
			d->cr = 0;
			run = ++i;
			if (d->dot && d->line_len == 1) {
				*used_r = i;
				return DATA_END;
			}
			smtp_spool_put(s, d, "\r\n", 2);
			d->bol = 1;
			d->dot = 0;
			d->line_len = 0;
			continue;
		}
		if (d->bol && p[i] != '\r') {
			d->bol = 0;
			if (p[i] == '.') {
				d->dot = 1;	/* stuffing or terminator */
				run = i + 1;
			}
		}
		/* The rest of the line up to its CR, scanned a block at a
		 * time (memchr) rather than a byte at a time: this loop sees
		 * every octet of every message. */
		cr = memchr(p + i, '\r', n - i);
		end = cr != NULL ? (size_t)(cr - p) : n;
		seg = end - i;
		if (seg > 0) {
			if (memchr(p + i, '\n', seg) != NULL)
				return DATA_BARE;
			if (!d->nul && memchr(p + i, '\0', seg) != NULL)
				d->nul = 1;
			d->line_len += seg;
			if (d->line_len > line_max)
				d->line_long = 1;
		}
		i = end;
		if (cr != NULL) {
			if (i > run)
				smtp_spool_put(s, d, (const char *)p + run,
				    i - run);
			run = ++i;
			d->cr = 1;
		}
	}
	if (n > run)
		smtp_spool_put(s, d, (const char *)p + run, n - run);
	*used_r = n;
	return DATA_MORE;
}

/* ---- end of data: checks, then the intake worker ---- */

/* A refusal of the message: one reply for SMTP, the same reply for
 * each recipient in LMTP (each logged and counted). */
static void
smtp_reply_all(struct smtp_session *s, enum metrics_refusal why, int code,
    const char *enh, const char *text)
{
	size_t i, n = s->lmtp ? s->nrcpt : 1;

	for (i = 0; i < n; i++)
		smtp_refuse(s, why, s->nrcpt > i ? s->rcpts[i].addr : NULL,
		    code, enh, "%s", text);
}

static void
smtp_task_free(struct intake_task *t)
{
	free(t->rcpts);
	free(t->rcopy);
	free(t->results);
	free(t->mem);
	smtp_spool_mem_add(t->srv, 0, t->mem_held);
	free(t);
}

static struct intake_task *
smtp_task_new(struct smtp_session *s)
{
	struct intake_task *t = xcalloc(1, sizeof(*t));
	size_t i, n = s->nrcpt;

	t->sess = s;
	t->srv = s->srv;
	snprintf(t->queue_id, sizeof(t->queue_id), "%s", s->queue_id);
	snprintf(t->helo, sizeof(t->helo), "%s", s->helo);
	snprintf(t->client_ip, sizeof(t->client_ip), "%s", s->client_ip);
	snprintf(t->mail_from, sizeof(t->mail_from), "%s", s->mail_from);
	snprintf(t->spool_path, sizeof(t->spool_path), "%s", s->d->path);
	if (s->d->fd < 0) {	/* all of it still in buf: the task takes buf */
		t->mem = s->d->buf;
		t->mem_held = s->d->held;
		s->d->buf = NULL;
		s->d->held = 0;
	}
	t->rcopy = xcalloc(n, sizeof(*t->rcopy));
	memcpy(t->rcopy, s->rcpts, n * sizeof(*t->rcopy));
	t->rcpts = xcalloc(n, sizeof(*t->rcpts));
	t->results = xcalloc(n, sizeof(*t->results));
	for (i = 0; i < n; i++) {
		t->rcpts[i].address = t->rcopy[i].addr;
		t->rcpts[i].dossier_id = t->rcopy[i].dossier_id;
		t->rcpts[i].account_id = t->rcopy[i].account_id;
		t->rcpts[i].account = t->rcopy[i].account;
		t->rcpts[i].dossier_ref = t->rcopy[i].ref;
		t->rcpts[i].verp_token = t->rcopy[i].verp[0] != '\0' ?
		    t->rcopy[i].verp : NULL;
	}
	t->job = (struct intake_job){
		.queue_id = t->queue_id, .helo = t->helo,
		.client_ip = t->client_ip, .tls = s->tls, .lmtp = s->lmtp,
		.mail_from = t->mail_from, .rcpt_count = n,
		.rcpts = t->rcpts, .spool_path = t->spool_path,
		.spool_mem = t->mem,
		.size = s->d->size, .sha256 = t->sha,
		.deadline_ms = pd_monotonic_ms() +
		    s->srv->cfg->message_time_max * 1000,
	};
	return t;
}

/* Worker thread: tctx is that thread's intake context. */
static void
smtp_task_run(void *tctx, void *arg)
{
	struct intake_task *t = arg;
	size_t i, n = t->job.lmtp ? t->job.rcpt_count : 1;

	if (tctx == NULL) {
		for (i = 0; i < n; i++)
			t->results[i] = (struct intake_result){ 451, "4.3.0",
			    "Error: intake unavailable, try again later" };
		if (t->mem == NULL)
			unlink(t->spool_path);
		return;
	}
	intake_process(tctx, &t->job, t->results);
}

static void
smtp_log_delivery(struct smtp_session *s, const struct intake_task *t)
{
	size_t i;

	for (i = 0; i < (s->lmtp ? t->job.rcpt_count : 1); i++)
		log_info("%s: from=<%s> to=<%s>%s size=%llu client=%s "
		    "session=%s status=%d %s %s", t->queue_id, t->mail_from,
		    t->rcopy[i].addr, !s->lmtp && t->job.rcpt_count > 1 ?
		    " (+more)" : "", (unsigned long long)t->job.size,
		    t->client_ip, s->sid, t->results[i].code,
		    t->results[i].enhanced, t->results[i].text);
}

/* Loop thread: the worker is done; answer and resume reading. */
static void
smtp_task_done(void *arg)
{
	struct intake_task *t = arg;
	struct smtp_session *s = t->sess;
	size_t i, n = t->job.lmtp ? t->job.rcpt_count : 1;
	int hangup = 0;

	if (s == NULL) {	/* the client left while we worked */
		smtp_task_free(t);
		return;
	}
	s->task = NULL;
	smtp_log_delivery(s, t);
	s->hold = 1;	/* LMTP: one reply per recipient, one write */
	for (i = 0; i < n; i++) {
		smtp_reply(s, t->results[i].code, t->results[i].enhanced,
		    "%s", t->results[i].text);
		if (t->results[i].code == 421)
			hangup = 1;
		if (t->results[i].code / 100 == 2) {
			s->srv->nmessages++;
			metrics_accepted(s->lmtp ? MP_LMTP : MP_SMTP);
		} else	/* intake refused: MIME limits, hooks, or ours */
			metrics_refused(t->results[i].code / 100 == 4 ?
			    MR_TEMPORARY : MR_CONTENT);
	}
	smtp_task_free(t);
	smtp_txn_reset(s);
	s->hold = 0;
	if (hangup) {
		smtp_close(s);
		return;
	}
	s->state = SS_CMD;
	smtp_timer_arm(s, s->srv->cfg->command_timeout);
	if (!s->peer_eof)
		bufferevent_enable(s->bev, EV_READ);
	smtp_flush(s);		/* unless a pipelined command will */
	smtp_process(s);	/* commands pipelined behind the data */
	/* smtp_close never frees at once: s is still ours here. */
	if (s->peer_eof && (s->state == SS_CMD || s->state == SS_DATA)) {
		smtp_lost_in_data(s);
		smtp_close(s);
	}
}

/* A refusal decided from the stream itself; the session goes on. */
static int
smtp_data_refusal(struct smtp_session *s)
{
	struct data_state *d = s->d;
	char text[128];

	if (d->too_big) {
		snprintf(text, sizeof(text), "Error: message size exceeds "
		    "fixed limit of %lld octets",
		    (long long)s->srv->cfg->message_size_max);
		smtp_reply_all(s, MR_SIZE, 552, "5.3.4", text);
	} else if (d->line_long)
		smtp_reply_all(s, MR_SYNTAX, 554, "5.6.0", "Error: line longer "
		    "than RFC 5321 allows (1000 octets with CRLF)");
	else if (d->nul)
		smtp_reply_all(s, MR_SYNTAX, 554, "5.6.0", "Error: NUL "
		    "character in message");
	else if (d->io_error)
		smtp_reply_all(s, MR_TEMPORARY, 451, "4.3.0", "Error: local "
		    "error writing the spool, try again later");
	else
		return 0;
	return 1;
}

static void
smtp_data_end(struct smtp_session *s)
{
	struct data_state *d = s->d;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct intake_task *t;

	/* Never flushed: the whole message is in buf and stays there. */
	if (d->fd < 0 && !d->io_error)
		EVP_DigestUpdate(d->md, d->buf, d->blen);
	else
		smtp_spool_flush(d);
	s->verb = "END-OF-DATA";
	/* The refusal leaves once the message's buffer (and its share of
	 * spool_memory_max) is released: a client that reads it may send
	 * the next message at once, and /metrics must not lag behind. */
	s->hold = 1;
	if (smtp_data_refusal(s)) {
		smtp_txn_reset(s);
		s->state = SS_CMD;
		smtp_timer_arm(s, s->srv->cfg->command_timeout);
		s->hold = 0;
		smtp_flush(s);
		return;
	}
	s->hold = 0;
	t = smtp_task_new(s);
	EVP_DigestFinal_ex(d->md, md, &mdlen);
	pd_hex(t->sha, md, mdlen);
	/* The worker owns the spool file from here (it fsyncs it). */
	if (d->fd >= 0)
		close(d->fd);
	EVP_MD_CTX_free(d->md);
	smtp_spool_mem_add(s->srv, 0, d->held);
	free(d->buf);
	free(d);
	s->d = NULL;
	s->task = t;
	/*
	 * Reading goes on while intake works (pausing it cost two epoll_ctl
	 * a message): smtp_read_cb leaves SS_BUSY input alone, the 256 KiB
	 * read watermark bounds it, and an EOF waits for the replies
	 * (smtp_event_cb, smtp_task_done).
	 */
	s->state = SS_BUSY;
	/* The worker watches its own deadline; this is the backstop. */
	smtp_timer_arm(s, s->srv->cfg->message_time_max + 10);
	worker_submit(s->srv->workers, smtp_task_run, smtp_task_done, t);
}

static void
smtp_process_data(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v[8];
	enum data_step st = DATA_MORE;
	size_t used = 0, total;
	int i, nv;

	while (s->state == SS_DATA && evbuffer_get_length(in) > 0) {
		nv = evbuffer_peek(in, -1, NULL, v, 8);
		total = 0;
		for (i = 0; i < nv && i < 8 && st == DATA_MORE; i++) {
			st = smtp_data_feed(s, v[i].iov_base, v[i].iov_len,
			    &used);
			total += used;
		}
		evbuffer_drain(in, total);
		if (st == DATA_BARE) {
			s->verb = "END-OF-DATA";
			smtp_reply_all(s, MR_SYNTAX, 550, "5.5.2", "Error: bare "
			    "<CR> or <LF> received in message data");
			smtp_txn_reset(s);
			smtp_close(s);
			return;
		}
		if (st == DATA_END) {
			smtp_data_end(s);
			return;
		}
	}
	if (s->state == SS_DATA)
		smtp_timer_arm(s, s->srv->cfg->data_timeout);
}

/* ---- libevent callbacks ---- */

/* Run the input through whichever machine the state selects, again
 * after each switch: commands pipelined behind a refused DATA, or data
 * right behind the DATA command, are already in the buffer. */
static void
smtp_process(struct smtp_session *s)
{
	enum sess_state prev;

	do {
		prev = s->state;
		if (s->state == SS_CMD)
			smtp_process_commands(s);
		else if (s->state == SS_DATA)
			smtp_process_data(s);
	} while (s->state != prev &&
	    (s->state == SS_CMD || s->state == SS_DATA));
}

static void
smtp_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	switch (s->state) {
	case SS_GREETING:
		/* Talking before the banner: a bot or a smuggler. */
		evbuffer_drain(in, evbuffer_get_length(in));
		smtp_reply(s, 554, "5.5.0", "Error: SMTP protocol "
		    "synchronization");
		smtp_close(s);
		break;
	case SS_CMD:
	case SS_DATA:
		smtp_process(s);
		break;
	default:
		break;
	}
}

/* TLS: the filter hands bytes to the socket bufferevent; wait for that
 * one to drain too before freeing. */
static void
smtp_close_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	smtp_write_cb(s->bev, s);
}

static void
smtp_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	struct bufferevent *under = bufferevent_get_underlying(bev);
	struct timeval tv = { 0, 20000 };

	if (s->state != SS_CLOSING) {
		if (s->direct)	/* drained: smtp_flush writes again */
			bufferevent_disable(bev, EV_WRITE);
		/* Output drained: resume a client we paused for not reading. */
		if (s->state == SS_CMD && !(bufferevent_get_enabled(bev) &
		    EV_READ)) {
			bufferevent_enable(bev, EV_READ);
			smtp_process(s);
		}
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (under != NULL && evbuffer_get_length(
	    bufferevent_get_output(under)) > 0 && s->close_tries++ < 100) {
		evtimer_add(s->close_timer, &tv);
		return;
	}
	smtp_free(s);
}

static void
smtp_lost_in_data(struct smtp_session *s)
{
	if (s->state != SS_DATA)
		return;
	metrics_refused(MR_DISCONNECT);
	log_info("%s: lost connection in DATA from %s, nothing stored; "
	    "from=<%s> reason=%s", s->queue_id, s->client_ip, s->mail_from,
	    metrics_refusal_name(MR_DISCONNECT));
}

static void
smtp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	unsigned long e;

	if (what & BEV_EVENT_ERROR) {
		while ((e = bufferevent_get_openssl_error(bev)) != 0)
			log_info("%s: TLS: %s", smtp_log_id(s),
			    ERR_reason_error_string(e));
	}
	/* A half-close behind a message (QUIT pipelined, then shutdown):
	 * its replies are still owed and the socket still writable. */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    s->state == SS_BUSY) {
		s->peer_eof = 1;
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		smtp_lost_in_data(s);
		smtp_free(s);
	}
}

static void
smtp_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	switch (s->state) {
	case SS_GREETING:
		smtp_reply(s, 220, "", "%s ESMTP Postdoc%s",
		    s->srv->cfg->hostname, s->lmtp ? " LMTP" : "");
		s->state = SS_CMD;
		smtp_timer_arm(s, s->srv->cfg->command_timeout);
		smtp_process(s);
		return;
	case SS_BUSY:
		log_err("%s: intake did not answer in time", s->queue_id);
		smtp_reply_all(s, MR_TIMEOUT, 451, "4.3.0", "Error: timeout "
		    "processing the message, try again later");
		break;
	default:
		/* RFC 5321 4.5.3.2: the server may close after its timeout.
		 * Inside a transaction it is the message that is lost. */
		if (s->in_mail) {
			s->verb = s->state == SS_DATA ? "DATA" : s->verb;
			smtp_refuse(s, MR_TIMEOUT, NULL, 421, "4.4.2", "%s "
			    "Error: timeout exceeded", s->srv->cfg->hostname);
			break;
		}
		log_info("%s: timeout after %s from %s", s->sid,
		    s->verb != NULL ? s->verb : "CONNECT", s->client_ip);
		smtp_reply(s, 421, "4.4.2", "%s Error: timeout exceeded",
		    s->srv->cfg->hostname);
		break;
	}
	smtp_close(s);
}

static void
smtp_life_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == SS_BUSY || s->state == SS_CLOSING)
		return;	/* the verdict is owed; the busy timer bounds it */
	smtp_reply(s, 421, "4.4.2", "%s Error: session too long",
	    s->srv->cfg->hostname);
	smtp_close(s);
}

/* ---- life cycle ---- */

static void
smtp_link(struct smtp_server_ctx *srv, struct smtp_session *s)
{
	s->next = srv->sessions;
	if (srv->sessions != NULL)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
}

static void
smtp_free(struct smtp_session *s)
{
	struct smtp_server_ctx *srv = s->srv;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->nsessions--;
	if (s->task != NULL)
		s->task->sess = NULL;	/* the worker finishes alone */
	smtp_data_discard(s);
	event_free(s->timer);
	event_free(s->life_timer);
	event_free(s->close_timer);
	bufferevent_free(s->bev);
	free(s->rcpts);
	log_info("%s: disconnect from %s", s->sid, s->client_ip);
	free(s);
}

static unsigned
smtp_count_ip(const struct smtp_server_ctx *srv, const char *ip)
{
	const struct smtp_session *s;
	unsigned n = 0;

	for (s = srv->sessions; s != NULL; s = s->next)
		if (strcmp(s->client_ip, ip) == 0)
			n++;
	return n;
}

static void
smtp_peer_name(struct smtp_session *s, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const void *)sa;

		inet_ntop(AF_INET6, &a6->sin6_addr, s->client_ip,
		    sizeof(s->client_ip));
		s->client_port = ntohs(a6->sin6_port);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a4 = (const void *)sa;

		inet_ntop(AF_INET, &a4->sin_addr, s->client_ip,
		    sizeof(s->client_ip));
		s->client_port = ntohs(a4->sin_port);
	} else
		snprintf(s->client_ip, sizeof(s->client_ip), "local");
}

/* Session ids name the lines before and between transactions; 12 hex
 * digits, so they never look like a 16-digit queue id. */
static void
smtp_new_session_id(struct smtp_session *s)
{
	unsigned char rnd[6];

	if (pd_random(rnd, sizeof(rnd)) != 0)
		pd_fatal("no randomness for session ids");
	pd_hex(s->sid, rnd, sizeof(rnd));
}

/* Refuse a connection over the limits or refused by a plugin; 1 if so. */
static int
smtp_admission_refused(struct smtp_session *s)
{
	const struct pd_config *cfg = s->srv->cfg;
	struct postdoc_session_info info;
	struct plugin_outcome o;

	if (s->srv->nsessions > cfg->connections_max ||
	    smtp_count_ip(s->srv, s->client_ip) >
	    (unsigned)cfg->connections_per_ip_max) {
		log_info("%s: reject: CONNECT from %s: too many connections",
		    s->sid, s->client_ip);
		metrics_connection(s->lmtp ? MP_LMTP : MP_SMTP,
		    MC_REFUSED_LIMIT);
		smtp_reply(s, 421, "4.7.0", "%s Error: too many connections",
		    cfg->hostname);
		return 1;
	}
	smtp_info(s, &info);
	plugin_run_connect(s->srv->plugins, &info, &o);
	pd_log_context_set(NULL);
	if (o.verdict == POSTDOC_DENY || o.verdict == POSTDOC_DENYSOFT ||
	    o.verdict == POSTDOC_DISCONNECT) {
		log_info("%s: reject: CONNECT from %s: %s", s->sid,
		    s->client_ip, o.text);
		metrics_connection(s->lmtp ? MP_LMTP : MP_SMTP,
		    MC_REFUSED_PLUGIN);
	}
	if (o.verdict == POSTDOC_DENY) {
		smtp_reply(s, 554, "5.7.1", "%s", o.text);
		return 1;
	}
	if (o.verdict == POSTDOC_DENYSOFT || o.verdict == POSTDOC_DISCONNECT) {
		smtp_reply(s, 421, "4.7.0", "%s", o.text);
		return 1;
	}
	metrics_connection(s->lmtp ? MP_LMTP : MP_SMTP, MC_ACCEPTED);
	return 0;
}

void
smtp_session_start(struct smtp_server_ctx *srv, evutil_socket_t fd,
    const struct sockaddr *sa, int salen, int lmtp)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	const struct pd_config *cfg = srv->cfg;
	struct timeval life = { (time_t)cfg->session_timeout, 0 };
	char peek;

	s->srv = srv;
	s->lmtp = lmtp;
	smtp_peer_name(s, sa);
	smtp_new_session_id(s);
	evutil_make_socket_nonblocking(fd);
	s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		pd_fatal("bufferevent_socket_new failed");
	s->timer = evtimer_new(srv->base, smtp_timer_cb, s);
	s->life_timer = evtimer_new(srv->base, smtp_life_cb, s);
	s->close_timer = evtimer_new(srv->base, smtp_close_timer_cb, s);
	smtp_link(srv, s);
	bufferevent_setcb(s->bev, smtp_read_cb, smtp_write_cb, smtp_event_cb,
	    s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, 256 * 1024);
	s->direct = 1;
	bufferevent_disable(s->bev, EV_WRITE);	/* on by default */
	bufferevent_enable(s->bev, EV_READ);
	evtimer_add(s->life_timer, &life);
	log_info("%s: connect from %s:%u (%s)", s->sid, s->client_ip,
	    (unsigned)s->client_port, lmtp ? "lmtp" : "smtp");
	if (smtp_admission_refused(s)) {
		smtp_close(s);
		return;
	}
	s->state = SS_GREETING;
	if (cfg->greet_pause_ms > 0) {
		struct timeval tv = { (time_t)(cfg->greet_pause_ms / 1000),
		    (suseconds_t)(cfg->greet_pause_ms % 1000) * 1000 };

		evtimer_add(s->timer, &tv);
		return;
	}
	/* Without a pause we can still catch a client already talking. */
	if (recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
		smtp_read_cb(s->bev, s);
		return;
	}
	smtp_timer_cb(-1, 0, s);
}

void
smtp_session_close_all(struct smtp_server_ctx *srv)
{
	struct smtp_session *s;

	while ((s = srv->sessions) != NULL) {
		/* Best effort, plaintext sessions only: a TLS session would
		 * need the loop to run again. */
		if (s->state != SS_CLOSING && !s->tls) {
			struct evbuffer *out = bufferevent_get_output(s->bev);

			evbuffer_add_printf(out, "421 4.3.2 %s Service "
			    "shutting down\r\n", srv->cfg->hostname);
			smtp_write_now(s->bev);
		}
		smtp_free(s);
	}
}

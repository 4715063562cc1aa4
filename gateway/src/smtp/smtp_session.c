/*
 * smtp_session.c - one SMTP (RFC 5321) or LMTP (RFC 2033) conversation:
 * its life (admission, greeting, timers, close), its I/O (replies written
 * at once, pipelining, the libevent callbacks) and the reply helpers the
 * command table (smtp_cmd.c) and the DATA machine (smtp_data.c) use.
 * Peer mistakes become replies with enhanced status codes (RFC 3463);
 * nothing here blocks on fsync or a database write.
 */
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "lib/config.h"
#include "smtp_int.h"
#include "lib/util.h"

static void smtp_free(struct smtp_session *s);

/* ---- replies and the log ---- */

/*
 * A bufferevent freezes the front of its output buffer so only it drains
 * it; its own write callback thaws it around the write, and so do we.
 */
void
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
void
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
const char *
smtp_log_id(const struct smtp_session *s)
{
	return s->queue_id[0] != '\0' ? s->queue_id : s->sid;
}

void
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

void
smtp_timer_arm(struct smtp_session *s, int64_t seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	evtimer_add(s->timer, &tv);
}

/*
 * Send nothing more; free once the output reached the socket.  The
 * session stops counting against connections_max and the per-address
 * limit now, not when it is freed: a client that read our 221 and
 * connects again at once (smtp-source -s 32 does, 32 at a time) must
 * find its slot free, although the free waits for a later turn of the
 * loop (the close timer below, run after that turn's accepts).  The
 * linger timer bounds how long a client that stopped reading can keep
 * an uncounted socket.
 */
void
smtp_close(struct smtp_session *s)
{
	if (s->state == SS_CLOSING)
		return;
	s->state = SS_CLOSING;
	s->srv->nsessions--;
	smtp_timer_arm(s, SMTP_CLOSE_LINGER);
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
void
smtp_error_count(struct smtp_session *s)
{
	if (++s->errors >= (unsigned)s->srv->cfg->error_limit) {
		smtp_reply(s, 421, "4.7.0", "%s Error: too many errors",
		    s->srv->cfg->hostname);
		smtp_close(s);
	}
}

void
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
void
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

void
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
int
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

void
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

/* ---- libevent callbacks ---- */

/* Run the input through whichever machine the state selects, again
 * after each switch: commands pipelined behind a refused DATA, or data
 * right behind the DATA command, are already in the buffer. */
void
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

void
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

void
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

void
smtp_lost_in_data(struct smtp_session *s)
{
	if (s->state != SS_DATA)
		return;
	metrics_refused(MR_DISCONNECT);
	log_info("%s: lost connection in DATA from %s, nothing stored; "
	    "from=<%s> reason=%s", s->queue_id, s->client_ip, s->mail_from,
	    metrics_refusal_name(MR_DISCONNECT));
}

void
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
	case SS_CLOSING:	/* the client never read its last reply */
		log_info("%s: %s stopped reading: closing", s->sid,
		    s->client_ip);
		smtp_free(s);
		return;
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
	if (s->state != SS_CLOSING)
		srv->nsessions--;	/* smtp_close uncounted the others */
	if (s->task != NULL)
		s->task->sess = NULL;	/* the worker finishes alone */
	smtp_data_discard(s);
	event_free(s->timer);
	event_free(s->life_timer);
	event_free(s->close_timer);
	event_free(s->data_timer);
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
		if (s->state != SS_CLOSING && strcmp(s->client_ip, ip) == 0)
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
	s->data_timer = evtimer_new(srv->base, smtp_data_clock_cb, s);
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


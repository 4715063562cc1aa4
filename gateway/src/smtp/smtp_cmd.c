/*
 * smtp_cmd.c - the SMTP/LMTP commands: a {verb, check, proceed} table
 * (check: syntax and sequence, proceed: the effect), the dispatch of one
 * command line and the reading of command lines.  Every refusal is a
 * reply with an enhanced status code; it never touches the DATA bytes
 * (smtp_data.c) or the socket's life (smtp_session.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "lib/config.h"
#include "intake/route.h"
#include "lib/smtp_addr.h"
#include "smtp_int.h"
#include "lib/util.h"

struct smtp_cmd {
	const char *verb;
	/* Syntax and sequence; replies itself and returns -1 to stop. */
	int (*check)(struct smtp_session *s, const char *arg);
	/* The effect; runs only when check passed. */
	void (*proceed)(struct smtp_session *s, const char *arg);
};

/* One command line at a time, on the loop thread only. */
static char smtp_linebuf[65536 + 8];

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

void
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

/* What the transaction holds so far: its first recipient says (a bounce
 * carries its VERP token, an unsubscribe "u-<token>", a dossier ""). */
static enum route_kind
smtp_txn_kind(const struct smtp_session *s)
{
	if (s->nrcpt == 0)
		return ROUTE_NONE;
	if (s->rcpts[0].verp[0] == '\0')
		return ROUTE_DOSSIER;
	return strncmp(s->rcpts[0].verp, "u-", 2) == 0 ? ROUTE_UNSUB :
	    ROUTE_BOUNCE;
}

/* Routing said no: its reply in the session's words, logged and counted
 * by reason. */
static void
smtp_rcpt_refused(struct smtp_session *s, const char *addr,
    const struct route_outcome *o, const char *err)
{
	switch (o->why) {
	case ROUTE_UNKNOWN:
		smtp_rcpt_unknown(s, addr);
		return;
	case ROUTE_TEMPORARY:
		log_err("%s: rcpt lookup: %s", smtp_log_id(s), err);
		smtp_refuse(s, MR_TEMPORARY, addr, o->code, o->enhanced,
		    "Error: %s", o->text);
		return;
	case ROUTE_SENDER:
		smtp_refuse(s, MR_SENDER_POLICY, addr, o->code, o->enhanced,
		    "Error: %s", o->text);
		return;
	default:
		smtp_refuse(s, MR_PROTOCOL, addr, o->code, o->enhanced,
		    "Error: %s", o->text);
		return;
	}
}

static void
smtp_rcpt_add(struct smtp_session *s, const char *addr,
    const struct route_outcome *o)
{
	struct sess_rcpt *r;
	size_t i;

	/* One message to two item addresses of a dossier (d-x+id-card and
	 * d-x+payslip): which file answers which item is unknowable, so it
	 * is filed as sent to the plain address (the one outstanding item,
	 * else unassigned).  Only the first recipient of a dossier files. */
	for (i = 0; o->kind == ROUTE_DOSSIER && i < s->nrcpt; i++)
		if (s->rcpts[i].dossier_id == o->dossier_id &&
		    strcasecmp(s->rcpts[i].addr, addr) != 0)
			snprintf(s->rcpts[i].addr, sizeof(s->rcpts[i].addr),
			    "%s@%s", o->intake_local, s->srv->cfg->intake_domain);
	/* SMTP owes one reply per message: a repeated dossier is one
	 * delivery.  LMTP owes one reply per RCPT, so it keeps them all. */
	for (i = 0; !s->lmtp && o->kind == ROUTE_DOSSIER && i < s->nrcpt; i++)
		if (s->rcpts[i].dossier_id == o->dossier_id)
			return;
	if (s->nrcpt == s->rcpt_cap) {
		s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
		s->rcpts = xrealloc(s->rcpts, s->rcpt_cap * sizeof(*r));
	}
	r = &s->rcpts[s->nrcpt++];
	snprintf(r->addr, sizeof(r->addr), "%s", addr);
	snprintf(r->verp, sizeof(r->verp), "%s", o->token);
	r->dossier_id = o->dossier_id;
	r->account_id = o->account_id;
	snprintf(r->account, sizeof(r->account), "%s", o->account);
	snprintf(r->ref, sizeof(r->ref), "%s", o->ref);
}

/* The rcpt_to hooks see dossier mail only; 1 if a plugin refused. */
static int
smtp_rcpt_hooks(struct smtp_session *s, const char *addr,
    const struct route_outcome *d)
{
	struct postdoc_session_info info;
	struct postdoc_rcpt_info ri;
	struct plugin_outcome o;

	smtp_info(s, &info);
	ri.address = addr;
	ri.account = d->account;
	ri.dossier_ref = d->ref;
	ri.dossier_id = d->dossier_id;
	plugin_run_rcpt_to(s->srv->plugins, &info, s->mail_from, &ri, &o);
	return smtp_plugin_refused(s, &o, addr);
}

/*
 * Where the recipient delivers is routing's answer (route.c): a dossier,
 * a bounce report for a message we sent, an unsubscribe request, or a
 * refusal.  A transaction holds one kind; the others are told to come
 * back (452, RFC 5321 4.5.3.1.10).
 */
static void
smtp_do_rcpt(struct smtp_session *s, const char *arg)
{
	struct route_env env = { s->srv->cfg, s->srv->store };
	struct route_outcome o;
	struct smtp_path p;
	char err[PD_ERRLEN];

	smtp_path_parse(arg, 0, &p);
	err[0] = '\0';
	if (route_address(&env, p.addr, s->mail_from, smtp_txn_kind(s), &o,
	    err) == ROUTE_REFUSED) {
		smtp_rcpt_refused(s, p.addr, &o, err);
		return;
	}
	if (o.kind == ROUTE_DOSSIER && smtp_rcpt_hooks(s, p.addr, &o))
		return;
	smtp_rcpt_add(s, p.addr, &o);
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
	smtp_data_clock_start(s);
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

void
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


/*
 * http.c - the web endpoint: routes, pages and POST handling for
 * unsubscribe, preferences and opt-in confirmation over libmicrohttpd.
 * Every token is checked by unsub.c; an unknown, forged or malformed
 * token gets the same 404 body, and an IP that sends too many of them
 * gets 429 for a minute on its bad tokens only: a valid token is never
 * refused (behind a proxy, readers share an address; the client is the
 * X-Forwarded-For hop a web.trusted_proxies peer added).  No cookies, no
 * redirects, no authentication headers read: the token in the URL is the
 * whole context (RFC 8058 3.2).  The preference centre's POSTs must come
 * from our own pages (Origin/Referer, a short-lived field bound to the
 * action and purpose), and subscribing there only mails a confirmation.
 * Every page and answer is HTML in the reader's language (http_text.c:
 * her contact's, else Accept-Language, else the account's), names the
 * purpose by its label, never its internal id, and the account by its
 * legal name; the double opt-in page asks for the adult box when the
 * account requires it.
 * Never builds SQL or paths from the request, and never calls the store:
 * contacts, purposes and requests come from consent/ (contact.c), the
 * connection from the dossier service; peer bytes are logged escaped.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "consent/consent.h"
#include "consent/contact.h"
#include "consent/unsub.h"
#include "dossier/dossier.h"
#include "events/metrics.h"
#include "http.h"
#include "lib/config.h"
#include "lib/util.h"
#include "outbound/notify.h"
#include "outbound/outq.h"
#include "http_text.h"

#define HTTP_BODY_MAX 65536	/* POST bodies are read and dropped past */
#define HTTP_FIELD_MAX 256
#define HTTP_RATE_SLOTS 1024
#define HTTP_PAGE_MAX 32768
#define HTTP_OPTIN_SLOTS 1024
#define HTTP_OPTIN_GAP 600	/* seconds between two confirmation mails */

static const char http_not_found[] = "Not found\n";

struct http_rate {
	char ip[64];
	int64_t window;		/* minute */
	int64_t bad;
};

/* The last confirmation mail the preference centre sent a contact. */
struct http_optin {
	int64_t contact_id, purpose_id, sent;
};

struct http_server {
	const struct pd_config *cfg;
	struct MHD_Daemon *d;
	struct store *st;	/* used only by MHD's one polling thread */
	struct outq_ctx *q;	/* double opt-in mail, same thread */
	pthread_mutex_t mu;	/* rate table and store, to be safe */
	struct http_rate rate[HTTP_RATE_SLOTS];
	struct http_optin optin[HTTP_OPTIN_SLOTS];
};

/* One request, across MHD's calls for its body. */
struct http_req {
	struct MHD_PostProcessor *pp;
	size_t body;
	int too_big;
	char purpose[HTTP_FIELD_MAX];
	char action[HTTP_FIELD_MAX];
	char csrf[HTTP_FIELD_MAX];
	char lu[HTTP_FIELD_MAX];	/* List-Unsubscribe=... if sent */
	char adult[HTTP_FIELD_MAX];	/* "yes": the confirm page's box */
};

/* What a request is about, once its token checked out. */
struct http_subject {
	enum unsub_type type;
	char token[UNSUB_TOKEN_MAX];
	struct store_contact c;
	int64_t purpose_id;
	char purpose[64];
	struct store_consent_req req;	/* confirm tokens */
};

/* ---- small output helpers ---- */

struct http_buf {
	char b[HTTP_PAGE_MAX];
	size_t n;
};

static void http_printf(struct http_buf *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
http_printf(struct http_buf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->n >= sizeof(o->b) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->b + o->n, sizeof(o->b) - o->n, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->n += (size_t)n < sizeof(o->b) - o->n ? (size_t)n :
		    sizeof(o->b) - o->n - 1;
}

/* HTML-escape s into o (names come from the store, never raw). */
static void
http_esc(struct http_buf *o, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '<': http_printf(o, "&lt;"); break;
		case '>': http_printf(o, "&gt;"); break;
		case '&': http_printf(o, "&amp;"); break;
		case '"': http_printf(o, "&quot;"); break;
		case '\'': http_printf(o, "&#39;"); break;
		default: http_printf(o, "%c", *s);
		}
	}
}

static enum MHD_Result
http_send(struct MHD_Connection *con, unsigned status, const char *ctype,
    const char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len,
	    (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	/* same-origin, not no-referrer: under no-referrer a browser sends
	 * "Origin: null" with our own forms, and the preference centre
	 * tells its own POSTs from a cross-site one by Origin. */
	MHD_add_response_header(r, "Referrer-Policy", "same-origin");
	MHD_add_response_header(r, "Content-Security-Policy",
	    "default-src 'none'; style-src 'unsafe-inline'; "
	    "form-action 'self'; frame-ancestors 'none'");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD, POST");
	ret = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
http_text(struct MHD_Connection *con, unsigned status, const char *text)
{
	return http_send(con, status, "text/plain; charset=utf-8", text,
	    strlen(text));
}

/*
 * The client behind a trusted proxy: walk X-Forwarded-For from its end
 * while the hop we believe is itself a trusted proxy.  Only a peer in
 * web.trusted_proxies is believed, so a reader cannot pick the address
 * its failures are counted against.
 */
static void
http_forwarded_ip(struct http_server *h, struct MHD_Connection *con,
    char *ip, size_t len)
{
	const char *xff = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	    "X-Forwarded-For");
	unsigned char a[16];
	char hop[64];
	size_t end, beg, n;

	if (xff == NULL)
		return;
	end = strlen(xff);
	while (config_addr_in_list(h->cfg->web_trusted_proxies, ip) == 1) {
		while (end > 0 && strchr(" \t,", xff[end - 1]) != NULL)
			end--;
		for (beg = end; beg > 0 && xff[beg - 1] != ','; beg--)
			;
		while (beg < end && strchr(" \t", xff[beg]) != NULL)
			beg++;
		n = end - beg;
		if (n == 0 || n >= sizeof(hop))
			return;
		memcpy(hop, xff + beg, n);
		hop[n] = '\0';
		if (inet_pton(strchr(hop, ':') != NULL ? AF_INET6 : AF_INET,
		    hop, a) != 1)
			return;		/* garbage: keep the proxy's hop */
		snprintf(ip, len, "%s", hop);
		end = beg;
	}
}

static void
http_client_ip(struct MHD_Connection *con, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(con,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

	snprintf(out, len, "?");
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, out, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr, out, (socklen_t)len);
}

/* ---- per-IP limit on bad tokens (U10) ---- */

static struct http_rate *
http_rate_slot(struct http_server *h, const char *ip)
{
	unsigned hsh = 5381;
	const char *p;

	for (p = ip; *p != '\0'; p++)
		hsh = hsh * 33 + (unsigned char)*p;
	return &h->rate[hsh % HTTP_RATE_SLOTS];
}

static int
http_rate_blocked(struct http_server *h, const char *ip)
{
	struct http_rate *r = http_rate_slot(h, ip);
	int64_t minute = pd_now() / 60;

	return strcmp(r->ip, ip) == 0 && r->window == minute &&
	    r->bad >= h->cfg->web_bad_token_limit;
}

static void
http_rate_bad(struct http_server *h, const char *ip)
{
	struct http_rate *r = http_rate_slot(h, ip);
	int64_t minute = pd_now() / 60;

	if (strcmp(r->ip, ip) != 0 || r->window != minute) {
		snprintf(r->ip, sizeof(r->ip), "%s", ip);
		r->window = minute;
		r->bad = 0;
	}
	r->bad++;
}

/* ---- tokens ---- */

/*
 * Resolve a token of `type` to its contact and purpose.  Every failure
 * (shape, key, MAC, unknown row, other tenant) is the same 0, and the
 * MAC is always computed once.
 */
static int
http_resolve(struct http_server *h, enum unsub_type type, const char *tok,
    struct http_subject *s)
{
	struct unsub_token t;
	char err[PD_ERRLEN];
	int64_t account = 0, contact = 0;
	int found = 0;

	memset(s, 0, sizeof(*s));
	if (!unsub_token_parse(tok, &t))
		return 0;
	if (type == UNSUB_T_CONFIRM) {
		found = consent_req_get(h->st, t.id, &s->req, err) == 1 &&
		    s->req.purpose_id == t.purpose_id;
		account = found ? s->req.account_id : 0;
		contact = s->req.contact_id;
	} else {
		contact = t.id;
		found = 1;
	}
	found = found && consent_contact_by_id(h->st, contact, &s->c, err) == 1;
	if (type == UNSUB_T_UNSUB)
		account = found ? s->c.account_id : 0;
	if (!unsub_token_check(h->cfg, type, account, &t) || !found ||
	    s->c.account_id != account)
		return 0;
	if (consent_purpose_name(h->st, account, t.purpose_id, s->purpose,
	    sizeof(s->purpose), err) != 1)
		return 0;
	s->type = type;
	s->purpose_id = t.purpose_id;
	unsub_token_b64(&t, s->token);
	return 1;
}

/* ---- pages ---- */

/*
 * What a page shows a reader, in her language: the purpose by its
 * display name, the account by its legal name, its privacy policy, and
 * the token of her preference centre when the request allows one.
 */
struct http_view {
	const struct http_lang *lang;
	const char *email;		/* "" without a token */
	char label[256];		/* the purpose's display name */
	char account[256];		/* legal name, else the account's */
	char privacy_url[512];		/* "" none */
	char prefs[UNSUB_TOKEN_MAX];	/* "" none */
	const char *confirm;		/* the /c/ token, confirm pages */
	int adult_required;
};

static struct http_buf http_page_buf;	/* one polling thread, mutex held */

static const char *
http_al(struct MHD_Connection *con)
{
	return MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_ACCEPT_LANGUAGE);
}

/* A view with no token behind it: the browser's language, no names. */
static void
http_view_anon(struct MHD_Connection *con, struct http_view *v)
{
	memset(v, 0, sizeof(*v));
	v->lang = http_lang_pick(NULL, http_al(con), NULL);
	v->email = "";
}

/*
 * The view of a resolved token.  The preference centre's token is the
 * unsubscribe one; a confirmation link (it reached the mailbox) gets one
 * made for the same contact and purpose.  -1 on a store failure.
 */
static int
http_view_make(struct http_server *h, struct MHD_Connection *con,
    const struct http_subject *s, struct http_view *v)
{
	struct notify_identity id;
	char err[PD_ERRLEN];

	http_view_anon(con, v);
	v->email = s->c.email;
	if (notify_identity(h->cfg, h->st, s->c.account, &id, err) != 0) {
		log_err("http: account %s: %s", s->c.account, err);
		return -1;
	}
	v->lang = http_lang_pick(s->c.locale, http_al(con), id.locale);
	snprintf(v->account, sizeof(v->account), "%s", id.legal_name[0] ?
	    id.legal_name : s->c.account);
	snprintf(v->privacy_url, sizeof(v->privacy_url), "%s",
	    id.privacy_url);
	v->adult_required = id.adult_required;
	if (consent_purpose_label(h->st, s->c.account_id, s->purpose_id,
	    v->lang->tag, v->label, sizeof(v->label), err) != 1) {
		log_err("http: purpose %lld: %s", (long long)s->purpose_id, err);
		return -1;
	}
	if (s->type == UNSUB_T_UNSUB)
		snprintf(v->prefs, sizeof(v->prefs), "%s", s->token);
	else {
		v->confirm = s->token;
		if (unsub_token_make(h->cfg, UNSUB_T_UNSUB, s->c.account_id,
		    s->c.id, s->purpose_id, v->prefs, NULL, err) != 0)
			v->prefs[0] = '\0';	/* the page, without the link */
	}
	return 0;
}

/* Text t of the reader's language, its {email} {purpose} {account}
 * filled in; all of it HTML-escaped. */
static void
http_say(struct http_buf *o, const struct http_view *v, enum http_t t)
{
	static const char *const keys[] = { "{email}", "{purpose}",
	    "{account}" };
	const char *vals[] = { v->email, v->label, v->account };
	const char *p = v->lang->t[t];
	char one[2] = "";
	size_t i, k;

	while (*p != '\0') {
		for (i = 0; i < 3; i++) {
			k = strlen(keys[i]);
			if (strncmp(p, keys[i], k) == 0)
				break;
		}
		if (i < 3) {
			http_esc(o, vals[i]);
			p += k;
			continue;
		}
		one[0] = *p++;
		http_esc(o, one);
	}
}

static void
http_page_open(struct http_buf *o, const struct http_view *v, enum http_t t)
{
	o->n = 0;
	http_printf(o, "<!DOCTYPE html>\n<html lang=\"%s\"><head>"
	    "<meta charset=\"utf-8\"><meta name=\"viewport\" content=\""
	    "width=device-width, initial-scale=1\"><title>", v->lang->tag);
	http_say(o, v, t);
	http_printf(o, "</title></head><body style=\"font-family:Arial,"
	    "sans-serif;max-width:560px;margin:40px auto;padding:0 16px;"
	    "color:#1f2328\">\n<h1>");
	http_say(o, v, t);
	http_printf(o, "</h1>\n");
}

/* The links every page ends with, and who speaks. */
static void
http_page_close(struct http_buf *o, const struct http_view *v)
{
	http_printf(o, "<p class=\"links\">");
	if (v->prefs[0] != '\0') {
		http_printf(o, "<a id=\"prefs\" href=\"/prefs/%s\">", v->prefs);
		http_say(o, v, HT_PREFS_LINK);
		http_printf(o, "</a>");
	}
	if (v->privacy_url[0] != '\0') {
		if (v->prefs[0] != '\0')
			http_printf(o, " &middot; ");
		http_printf(o, "<a id=\"privacy\" href=\"");
		http_esc(o, v->privacy_url);
		http_printf(o, "\">");
		http_say(o, v, HT_PRIVACY_LINK);
		http_printf(o, "</a>");
	}
	http_printf(o, "</p>\n");
	if (v->account[0] != '\0') {
		http_printf(o, "<footer style=\"color:#57606a\">");
		http_esc(o, v->account);
		http_printf(o, "</footer>\n");
	}
	http_printf(o, "</body></html>\n");
}

static enum MHD_Result
http_page_send(struct MHD_Connection *con, unsigned status,
    const struct http_buf *o)
{
	return http_send(con, status, "text/html; charset=utf-8", o->b, o->n);
}

/* An answer: a title, one paragraph, the links. */
static enum MHD_Result
http_answer(struct MHD_Connection *con, unsigned status,
    const struct http_view *v, enum http_t title, enum http_t text)
{
	struct http_buf *o = &http_page_buf;

	http_page_open(o, v, title);
	http_printf(o, "<p id=\"message\">");
	http_say(o, v, text);
	http_printf(o, "</p>\n");
	if (v->confirm != NULL && text == HT_NOADULT_TEXT) {
		http_printf(o, "<p><a id=\"back\" href=\"/c/%s\">", v->confirm);
		http_say(o, v, HT_BACK_TO_CONFIRM);
		http_printf(o, "</a></p>\n");
	}
	http_page_close(o, v);
	return http_page_send(con, status, o);
}

/* No token to speak of (a bad link, too many of them). */
static enum MHD_Result
http_answer_anon(struct MHD_Connection *con, unsigned status,
    enum http_t title, enum http_t text)
{
	struct http_view v;

	http_view_anon(con, &v);
	return http_answer(con, status, &v, title, text);
}

static enum MHD_Result
http_unavailable(struct MHD_Connection *con, const struct http_view *v)
{
	struct http_view anon;

	if (v == NULL) {
		http_view_anon(con, &anon);
		v = &anon;
	}
	return http_answer(con, MHD_HTTP_SERVICE_UNAVAILABLE, v,
	    HT_UNAVAIL_TITLE, HT_UNAVAIL_TEXT);
}

struct http_prefs {
	struct http_server *h;
	const struct http_subject *s;
	const struct http_view *v;
	struct http_buf *o;
};

static int
http_prefs_row_cb(int64_t id, const char *name, void *ctx)
{
	struct http_prefs *p = ctx;
	char err[PD_ERRLEN], csrf[UNSUB_CSRF_MAX], label[256];
	int on = consent_granted(p->h->st, p->s->c.id, id, err) == 1;

	if (unsub_csrf_make(p->h->cfg, p->s->token, on ? "withdraw" : "grant",
	    name, pd_now(), csrf) != 0 ||
	    consent_purpose_label(p->h->st, p->s->c.account_id, id,
	    p->v->lang->tag, label, sizeof(label), err) != 1)
		return 1;
	http_printf(p->o, "<li><form method=\"post\" action=\"/prefs/%s\">"
	    "<strong class=\"purpose\">", p->s->token);
	http_esc(p->o, label);
	http_printf(p->o, "</strong>: <span class=\"status\">");
	http_say(p->o, p->v, on ? HT_SUBSCRIBED : HT_NOT_SUBSCRIBED);
	/* The internal name goes back in the form, never on screen. */
	http_printf(p->o, "</span> <input type=\"hidden\" name=\"purpose\" "
	    "value=\"");
	http_esc(p->o, name);
	http_printf(p->o, "\"><input type=\"hidden\" name=\"action\" "
	    "value=\"%s\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
	    "<button type=\"submit\">", on ? "withdraw" : "grant", csrf);
	http_say(p->o, p->v, on ? HT_BTN_WITHDRAW : HT_BTN_GRANT);
	http_printf(p->o, "</button></form></li>\n");
	return 0;
}

static enum MHD_Result
http_unsub_page(struct http_server *h, struct MHD_Connection *con,
    const struct http_subject *s, const struct http_view *v)
{
	struct http_buf *o = &http_page_buf;
	struct http_prefs p = { h, s, v, o };
	char err[PD_ERRLEN];

	http_page_open(o, v, HT_UNSUB_TITLE);
	http_printf(o, "<p id=\"intro\">");
	http_say(o, v, HT_UNSUB_INTRO);
	http_printf(o, "</p>\n<form method=\"post\" action=\"/u/%s\">"
	    "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\""
	    "One-Click\"><button id=\"unsubscribe\" type=\"submit\">",
	    s->token);
	http_say(o, v, HT_UNSUB_BUTTON);
	http_printf(o, "</button></form>\n<h2>");
	http_say(o, v, HT_PREFS_TITLE);
	http_printf(o, "</h2>\n<ul>\n");
	if (consent_purpose_list(h->st, s->c.account_id, http_prefs_row_cb, &p,
	    err) != 0) {
		log_err("http: preferences of contact %lld: %s",
		    (long long)s->c.id, err);
		return http_unavailable(con, v);
	}
	http_printf(o, "</ul>\n");
	http_page_close(o, v);
	return http_page_send(con, MHD_HTTP_OK, o);
}

/* The double opt-in page; the adult box when the account requires it
 * (`required`: a browser will not submit without it, and the POST
 * checks again). */
static enum MHD_Result
http_confirm_page(struct MHD_Connection *con, const struct http_subject *s,
    const struct http_view *v)
{
	struct http_buf *o = &http_page_buf;

	http_page_open(o, v, HT_CONFIRM_TITLE);
	http_printf(o, "<p id=\"intro\">");
	http_say(o, v, HT_CONFIRM_INTRO);
	http_printf(o, "</p>\n<form method=\"post\" action=\"/c/%s\">",
	    s->token);
	if (v->adult_required) {
		http_printf(o, "<p><label><input type=\"checkbox\" id=\"adult\""
		    " name=\"adult\" value=\"yes\" required> ");
		http_say(o, v, HT_ADULT_BOX);
		http_printf(o, "</label></p>");
	}
	http_printf(o, "<button id=\"confirm\" type=\"submit\">");
	http_say(o, v, HT_CONFIRM_BUTTON);
	http_printf(o, "</button></form>\n");
	http_page_close(o, v);
	return http_page_send(con, MHD_HTTP_OK, o);
}

/* ---- actions ---- */

static enum MHD_Result
http_do_unsub(struct http_server *h, struct MHD_Connection *con,
    const struct http_subject *s, const struct http_view *v, const char *ip)
{
	const char *ua = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_USER_AGENT);
	struct consent_act a = { .action = "withdraw", .basis = "consent",
	    .source = "one_click", .method = "rfc8058-one-click", .ip = ip,
	    .user_agent = ua, .operator_ = "" };
	char err[PD_ERRLEN];
	int rc = consent_apply(h->st, s->c.account_id, s->c.id, s->purpose_id,
	    &a, err);

	if (rc < 0) {
		log_err("http: unsubscribe contact %lld: %s",
		    (long long)s->c.id, err);
		return http_unavailable(con, v);
	}
	/* Replays are answered the same but logged once (U09). */
	if (rc == 1) {
		metrics_unsubscribe(MU_ONE_CLICK);
		log_info("http: contact %lld withdrew %s (one-click, %s)",
		    (long long)s->c.id, s->purpose, ip);
	}
	return http_answer(con, MHD_HTTP_OK, v, HT_UNSUBSCRIBED_TITLE,
	    HT_UNSUBSCRIBED_TEXT);
}

/*
 * A browser names the page a POST comes from (Origin, else Referer).
 * Either, when sent, must be our own web.base_url: a form on another
 * site cannot change a reader's preferences, whatever it copied.  A
 * client that sends neither is no browser a CSRF could ride.
 */
static int
http_same_origin(struct http_server *h, struct MHD_Connection *con)
{
	const char *base = h->cfg->web_base_url, *sch = strstr(base, "://");
	const char *o = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	    "Origin");
	const char *r = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_REFERER);
	size_t n;

	if (sch == NULL)
		return 0;
	n = (size_t)(strchrnul(sch + 3, '/') - base);	/* scheme://host */
	if (o != NULL)
		return strlen(o) == n && strncasecmp(o, base, n) == 0;
	if (r != NULL)
		return strncasecmp(r, base, n) == 0 &&
		    (r[n] == '/' || r[n] == '\0');
	return 1;
}

/*
 * Subscribing from the preference centre: the page's link may have
 * been forwarded, so the address confirms by mail (double opt-in, the
 * request machinery of `consent request`); nothing is granted here.
 */
/*
 * Whoever holds the link could press Subscribe in a loop and mail the
 * reader a confirmation each time: one mail per contact and purpose per
 * HTTP_OPTIN_GAP.  The slot to note a sent mail in, or NULL if one went
 * too recently.
 */
static struct http_optin *
http_optin_slot(struct http_server *h, int64_t contact, int64_t purpose)
{
	struct http_optin *o = &h->optin[(uint64_t)(contact * 31 + purpose) %
	    HTTP_OPTIN_SLOTS];

	if (o->contact_id == contact && o->purpose_id == purpose &&
	    pd_now() - o->sent < HTTP_OPTIN_GAP)
		return NULL;
	return o;
}

static enum MHD_Result
http_prefs_grant(struct http_server *h, struct MHD_Connection *con,
    const struct http_subject *s, struct http_view *v, const char *purpose,
    int64_t pid)
{
	struct http_optin *slot;
	struct consent_optin in = { .account = s->c.account,
	    .account_id = s->c.account_id, .email = s->c.email,
	    .purpose = purpose, .purpose_id = pid, .source = "form",
	    .operator_ = "",
	    /* her browser's language becomes hers if she had none */
	    .locale = s->c.locale[0] == '\0' ? v->lang->tag : NULL };
	char err[PD_ERRLEN];
	int64_t oid = 0;
	int rc;

	/* The answer names the purpose asked for, not the page's. */
	if (consent_purpose_label(h->st, s->c.account_id, pid, v->lang->tag,
	    v->label, sizeof(v->label), err) != 1)
		return http_unavailable(con, v);
	if (consent_granted(h->st, s->c.id, pid, err) == 1)
		return http_answer(con, MHD_HTTP_OK, v, HT_ALREADY_TITLE,
		    HT_ALREADY_TEXT);
	if ((slot = http_optin_slot(h, s->c.id, pid)) == NULL)
		goto sent;
	rc = consent_request(h->cfg, h->st, h->q, &in, &oid, err);
	if (rc == CONSENT_ERASED) {
		log_info("http: preferences of contact %lld: %s refused (%s)",
		    (long long)s->c.id, purpose, err);
		return http_answer(con, MHD_HTTP_CONFLICT, v, HT_ERASED_TITLE,
		    HT_ERASED_TEXT);
	}
	if (rc != 0) {
		log_err("http: preferences of contact %lld: the confirmation "
		    "for %s was not queued: %s", (long long)s->c.id, purpose,
		    err);
		return http_answer(con, MHD_HTTP_SERVICE_UNAVAILABLE, v,
		    HT_NOMAIL_TITLE, HT_NOMAIL_TEXT);
	}
	log_info("http: contact %lld asked for %s (preferences, outbound "
	    "%lld): confirmation sent", (long long)s->c.id, purpose,
	    (long long)oid);
	*slot = (struct http_optin){ s->c.id, pid, pd_now() };
sent:
	return http_answer(con, MHD_HTTP_OK, v, HT_SENT_TITLE, HT_SENT_TEXT);
}

static enum MHD_Result
http_do_prefs(struct http_server *h, struct MHD_Connection *con,
    const struct http_subject *s, struct http_view *v,
    const struct http_req *rq, const char *ip)
{
	const char *ua = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_USER_AGENT);
	struct consent_act a = { .action = "withdraw", .basis = "consent",
	    .source = "form", .method = "preference-centre", .ip = ip,
	    .user_agent = ua };
	char err[PD_ERRLEN];
	int64_t pid;
	int rc;

	if (!http_same_origin(h, con)) {
		log_info("http: preferences of contact %lld: cross-site POST "
		    "refused (%s)", (long long)s->c.id, ip);
		return http_answer(con, MHD_HTTP_FORBIDDEN, v, HT_CROSS_TITLE,
		    HT_CROSS_TEXT);
	}
	/* U16, issue 15: the field of a page we served minutes ago, for
	 * this token, this purpose and this very action. */
	if ((strcmp(rq->action, "grant") != 0 &&
	    strcmp(rq->action, "withdraw") != 0) ||
	    !unsub_csrf_check(h->cfg, s->token, rq->action, rq->purpose,
	    rq->csrf, pd_now()) ||
	    consent_purpose_get(h->st, s->c.account_id, rq->purpose, &pid,
	    err) != 1)
		return http_answer(con, MHD_HTTP_FORBIDDEN, v, HT_STALE_TITLE,
		    HT_STALE_TEXT);
	if (strcmp(rq->action, "grant") == 0)
		return http_prefs_grant(h, con, s, v, rq->purpose, pid);
	if (consent_purpose_label(h->st, s->c.account_id, pid, v->lang->tag,
	    v->label, sizeof(v->label), err) != 1 ||
	    (rc = consent_apply(h->st, s->c.account_id, s->c.id, pid, &a,
	    err)) < 0) {
		log_err("http: preferences of contact %lld: %s",
		    (long long)s->c.id, err);
		return http_unavailable(con, v);
	}
	if (rc == 1) {
		metrics_unsubscribe(MU_PREFERENCES);
		log_info("http: contact %lld withdrew %s (preferences, %s)",
		    (long long)s->c.id, rq->purpose, ip);
	}
	return http_answer(con, MHD_HTTP_OK, v, HT_SAVED_TITLE, HT_SAVED_TEXT);
}

/*
 * The reader pressed Confirm.  Where the account asks adults only, the
 * box must have been ticked (a browser enforces `required`; a script
 * is checked here): unticked, nothing is recorded and the page says why
 * and how to come back.
 */
static enum MHD_Result
http_do_confirm(struct http_server *h, struct MHD_Connection *con,
    const struct http_subject *s, const struct http_view *v,
    const struct http_req *rq, const char *ip)
{
	const char *ua = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_USER_AGENT);
	char err[PD_ERRLEN];
	int rc;

	if (v->adult_required && strcmp(rq->adult, "yes") != 0) {
		log_info("http: confirm request %lld: adult not confirmed, "
		    "nothing recorded (%s)", (long long)s->req.id, ip);
		return http_answer(con, MHD_HTTP_OK, v, HT_NOADULT_TITLE,
		    HT_NOADULT_TEXT);
	}
	rc = consent_confirm(h->st, &s->req, ip, ua, v->adult_required,
	    pd_now(), err);
	if (rc == CONSENT_EXPIRED)
		return http_answer(con, MHD_HTTP_GONE, v, HT_EXPIRED_TITLE,
		    HT_EXPIRED_TEXT);
	if (rc < 0) {
		log_err("http: confirm request %lld: %s", (long long)s->req.id,
		    err);
		return http_unavailable(con, v);
	}
	if (rc == 1)
		log_info("http: contact %lld confirmed %s (double opt-in%s, %s)",
		    (long long)s->c.id, s->purpose, v->adult_required ?
		    ", adult confirmed" : "", ip);
	return http_answer(con, MHD_HTTP_OK, v, HT_CONFIRMED_TITLE,
	    HT_CONFIRMED_TEXT);
}

/* ---- routing ---- */

static enum MHD_Result
http_post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *filename, const char *content_type,
    const char *transfer_encoding, const char *data, uint64_t off,
    size_t size)
{
	struct http_req *rq = cls;
	char *dst = NULL;
	size_t have;

	if (strcmp(key, "purpose") == 0)
		dst = rq->purpose;
	else if (strcmp(key, "action") == 0)
		dst = rq->action;
	else if (strcmp(key, "csrf") == 0)
		dst = rq->csrf;
	else if (strcmp(key, "List-Unsubscribe") == 0)
		dst = rq->lu;
	else if (strcmp(key, "adult") == 0)
		dst = rq->adult;
	if (dst == NULL || size == 0)
		return MHD_YES;
	have = strlen(dst);
	if (off != have || have + size >= HTTP_FIELD_MAX)
		return MHD_YES;	/* too long: left incomplete, refused later */
	memcpy(dst + have, data, size);
	dst[have + size] = '\0';
	return MHD_YES;
}

static enum MHD_Result
http_route(struct http_server *h, struct MHD_Connection *con,
    const char *url, const char *method, struct http_req *rq)
{
	struct http_subject s;
	struct http_view v;
	char ip[64];
	const char *tok = NULL;
	enum unsub_type type = UNSUB_T_UNSUB;
	int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0, prefs = 0;

	if (strncmp(url, "/u/", 3) == 0)
		tok = url + 3;
	else if (strncmp(url, "/prefs/", 7) == 0) {
		tok = url + 7;
		prefs = 1;
	} else if (strncmp(url, "/c/", 3) == 0) {
		tok = url + 3;
		type = UNSUB_T_CONFIRM;
	}
	if (tok == NULL)
		return http_text(con, MHD_HTTP_NOT_FOUND, http_not_found);
	if (!post && strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return http_text(con, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "Method not allowed\n");
	if (rq->too_big)
		return http_text(con, MHD_HTTP_CONTENT_TOO_LARGE,
		    "Request body too large\n");
	http_client_ip(con, ip, sizeof(ip));
	http_forwarded_ip(h, con, ip, sizeof(ip));
	/* Issue 15: only failures are limited; a valid token always works,
	 * even from an address (a shared proxy) that sent bad ones. */
	if (!http_resolve(h, type, tok, &s)) {
		if (http_rate_blocked(h, ip))
			return http_answer_anon(con,
			    MHD_HTTP_TOO_MANY_REQUESTS, HT_TOOMANY_TITLE,
			    HT_TOOMANY_TEXT);
		http_rate_bad(h, ip);
		/* pd_log escapes: %00, CR LF and the like stay visible. */
		log_info("http: %s %.*s: unknown token (%s)", method, 200,
		    url, ip);
		return http_answer_anon(con, MHD_HTTP_NOT_FOUND,
		    HT_BADLINK_TITLE, HT_BADLINK_TEXT);
	}
	if (http_view_make(h, con, &s, &v) != 0)
		return http_unavailable(con, NULL);
	if (!post)
		return type == UNSUB_T_CONFIRM ? http_confirm_page(con, &s, &v) :
		    http_unsub_page(h, con, &s, &v);
	if (prefs)
		return http_do_prefs(h, con, &s, &v, rq, ip);
	if (type == UNSUB_T_CONFIRM)
		return http_do_confirm(h, con, &s, &v, rq, ip);
	/* RFC 8058: the body should say List-Unsubscribe=One-Click; we
	 * accept the valid token alone (U11), the body is only noted. */
	return http_do_unsub(h, con, &s, &v, ip);
}

static enum MHD_Result
http_access_cb(void *cls, struct MHD_Connection *con, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct http_server *h = cls;
	struct http_req *rq = *con_cls;
	enum MHD_Result ret;

	if (rq == NULL) {
		rq = xcalloc(1, sizeof(*rq));
		if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
			rq->pp = MHD_create_post_processor(con, 4096,
			    http_post_iter, rq);
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		rq->body += *upload_data_size;
		if (rq->body > HTTP_BODY_MAX)
			rq->too_big = 1;
		else if (rq->pp != NULL)
			MHD_post_process(rq->pp, upload_data,
			    *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&h->mu);
	ret = http_route(h, con, url, method, rq);
	pthread_mutex_unlock(&h->mu);
	return ret;
}

static void
http_done_cb(void *cls, struct MHD_Connection *con, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_req *rq = *con_cls;

	if (rq == NULL)
		return;
	if (rq->pp != NULL)
		MHD_destroy_post_processor(rq->pp);
	free(rq);
	*con_cls = NULL;
}

/* ---- start and stop ---- */

int
http_start(const struct pd_config *cfg, struct plugin_host *ph,
    struct http_server **h_r, char *err)
{
	struct http_server *h;
	struct sockaddr_storage ss;
	char kerr[PD_ERRLEN], b[UNSUB_TOKEN_MAX];

	*h_r = NULL;
	if (cfg->web_listen == NULL || cfg->web_listen[0] == '\0')
		return 0;
	memset(&ss, 0, sizeof(ss));
	if (pd_listen_addr("web.listen", cfg->web_listen, &ss, err) != 0)
		return -1;
	/* Make the current key now, not on the first click. */
	if (unsub_token_make(cfg, UNSUB_T_UNSUB, 1, 1, 1, b, NULL, kerr) != 0) {
		pd_err(err, "web: %s", kerr);
		return -1;
	}
	h = xcalloc(1, sizeof(*h));
	h->cfg = cfg;
	pthread_mutex_init(&h->mu, NULL);
	if (dossier_conn_open(cfg, &h->st, err) != 0 ||
	    outq_ctx_new(cfg, ph, &h->q, err) != 0) {
		http_stop(&h);
		return -1;
	}
	h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_EPOLL | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	    0, NULL, NULL, http_access_cb, h,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_NOTIFY_COMPLETED, http_done_cb, h,
	    /* Issue 16, defect 5: idle sockets from a few addresses must not
	     * fill the table; each address gets a share, idle ones go. */
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->web_idle_timeout,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)cfg->web_conn_per_ip,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
	    MHD_OPTION_END);
	if (h->d == NULL) {
		pd_err(err, "web: cannot listen on %s", cfg->web_listen);
		http_stop(&h);
		return -1;
	}
	log_info("web: listening on %s (links: %s)", cfg->web_listen,
	    cfg->web_base_url);
	*h_r = h;
	return 0;
}

void
http_stop(struct http_server **hp)
{
	struct http_server *h;

	if (hp == NULL || *hp == NULL)
		return;
	h = *hp;
	if (h->d != NULL)
		MHD_stop_daemon(h->d);
	dossier_conn_close(&h->st);
	outq_ctx_free(&h->q);
	pthread_mutex_destroy(&h->mu);
	free(h);
	*hp = NULL;
}

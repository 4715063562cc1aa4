/*
 * smtp_server.c - the SMTP and LMTP listeners, the STARTTLS context and
 * the state every session shares (the sessions, their memory, the count
 * of accepted messages).  The daemon (daemon/) opens the store, plugins
 * and workers and hands them in; this module never opens them, never
 * parses a command, and never knows what else the daemon runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/config.h"
#include "smtp_server.h"
#include "smtp_session.h"
#include "lib/util.h"

struct listener {
	struct smtp_server_ctx *srv;
	struct evconnlistener *l;
	int lmtp;
};

struct smtp_server {
	struct smtp_server_ctx ctx;	/* what the sessions share */
	struct listener smtp, lmtp;
};

static void
server_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener *li = arg;

	smtp_session_start(li->srv, fd, sa, salen, li->lmtp);
}

static void
server_accept_error_cb(struct evconnlistener *l, void *arg)
{
	/* EMFILE and friends: log and keep listening. */
	log_err("accept: %s", evutil_socket_error_to_string(
	    EVUTIL_SOCKET_ERROR()));
}

/* The kernel's cap on any listen(2) backlog; SOMAXCONN if unreadable. */
static int
server_somaxconn(void)
{
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
	int n = 0;

	if (f != NULL) {
		if (fscanf(f, "%d", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n > 0 ? n : SOMAXCONN;
}

/* server.listen_backlog, 0 meaning the system maximum.  The kernel
 * silently caps a larger one (listen(2)): say so. */
static int
server_backlog(const struct pd_config *cfg)
{
	int max = server_somaxconn();

	if (cfg->listen_backlog == 0)
		return max;
	if (cfg->listen_backlog > max)
		log_warn("server.listen_backlog %d is above "
		    "net.core.somaxconn %d: the kernel queues %d",
		    (int)cfg->listen_backlog, max, max);
	return (int)cfg->listen_backlog;
}

static int
server_listen(struct smtp_server_ctx *srv, struct listener *li,
    const char *addr, int lmtp, char *err)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);

	li->srv = srv;
	li->lmtp = lmtp;
	if (addr == NULL || addr[0] == '\0')
		return 0;	/* listener disabled */
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen)
	    != 0) {
		pd_err(err, "cannot parse listen address '%s'", addr);
		return -1;
	}
	li->l = evconnlistener_new_bind(srv->base, server_accept_cb, li,
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	    server_backlog(srv->cfg), (struct sockaddr *)&ss, sslen);
	if (li->l == NULL) {
		pd_err(err, "cannot listen on %s: %s", addr, strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(li->l, server_accept_error_cb);
	return 0;
}

static SSL_CTX *
server_tls_ctx(const struct pd_config *cfg, char *err)
{
	SSL_CTX *ctx;
	char e[256];

	if (cfg->tls_cert == NULL || cfg->tls_cert[0] == '\0')
		return NULL;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM)
	    != 1 || SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	return ctx;
fail:
	ERR_error_string_n(ERR_get_error(), e, sizeof(e));
	/* The queue is the loop thread's: leave nothing a session's TLS
	 * error report would read as its own (a reload runs there). */
	ERR_clear_error();
	pd_err(err, "TLS certificate %s / key %s: %s", cfg->tls_cert,
	    cfg->tls_key, e);
	SSL_CTX_free(ctx);
	return NULL;
}

void
smtp_server_new(const struct pd_config *cfg, struct event_base *base,
    struct smtp_server **srv_r)
{
	struct smtp_server *s = xcalloc(1, sizeof(*s));

	s->ctx.cfg = cfg;
	s->ctx.base = base;
	/* The daemon creates and clears it (daemon_spool_prepare). */
	snprintf(s->ctx.spool_dir, sizeof(s->ctx.spool_dir), "%s/spool",
	    cfg->var_dir);
	*srv_r = s;
}

int
smtp_server_listen(struct smtp_server *s, char *err)
{
	const struct pd_config *cfg = s->ctx.cfg;

	if (server_listen(&s->ctx, &s->smtp, cfg->smtp_listen, 0, err) != 0 ||
	    server_listen(&s->ctx, &s->lmtp, cfg->lmtp_listen, 1, err) != 0)
		return -1;
	return 0;
}

int
smtp_server_tls(struct smtp_server *s, char *err)
{
	const struct pd_config *cfg = s->ctx.cfg;

	s->ctx.ssl_ctx = server_tls_ctx(cfg, err);
	if (s->ctx.ssl_ctx == NULL && cfg->tls_cert != NULL &&
	    cfg->tls_cert[0] != '\0')
		return -1;
	return 0;
}

/*
 * SIGHUP: new STARTTLS sessions get the certificate and key now on disk
 * (a renewed certificate needs no restart).  Sessions already in TLS
 * keep theirs: each SSL holds a reference on the context it came from.
 * A pair that does not load leaves the old context in place.
 */
int
smtp_server_tls_reload(struct smtp_server *s, char *err)
{
	SSL_CTX *ctx;

	if (s->ctx.ssl_ctx == NULL)
		return 0;
	if ((ctx = server_tls_ctx(s->ctx.cfg, err)) == NULL)
		return -1;
	SSL_CTX_free(s->ctx.ssl_ctx);
	s->ctx.ssl_ctx = ctx;
	return 1;
}

int
smtp_server_tls_check(const struct pd_config *cfg, char *err)
{
	SSL_CTX *ctx = server_tls_ctx(cfg, err);

	if (ctx == NULL && cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0')
		return -1;
	SSL_CTX_free(ctx);
	return 0;
}

void
smtp_server_attach(struct smtp_server *s, struct store *st,
    struct plugin_host *ph, struct worker_pool *wp)
{
	s->ctx.store = st;
	s->ctx.plugins = ph;
	s->ctx.workers = wp;
}

void
smtp_server_unlisten(struct smtp_server *s)
{
	if (s->smtp.l != NULL)
		evconnlistener_free(s->smtp.l);
	if (s->lmtp.l != NULL)
		evconnlistener_free(s->lmtp.l);
	s->smtp.l = s->lmtp.l = NULL;
}

int
smtp_server_starttls(const struct smtp_server *s)
{
	return s->ctx.ssl_ctx != NULL;
}

uint64_t
smtp_server_accepted(const struct smtp_server *s)
{
	return s->ctx.nmessages;
}

void
smtp_server_close_sessions(struct smtp_server *s)
{
	smtp_session_close_all(&s->ctx);
}

void
smtp_server_free(struct smtp_server **sp)
{
	struct smtp_server *s = *sp;

	if (s == NULL)
		return;
	smtp_server_unlisten(s);
	smtp_session_close_all(&s->ctx);
	SSL_CTX_free(s->ctx.ssl_ctx);
	free(s);
	*sp = NULL;
}

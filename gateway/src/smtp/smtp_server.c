/*
 * smtp_server.c - `postdoc serve`: sets up the event loop, the store, the
 * plugins, the TLS context and the intake workers, binds the SMTP and LMTP
 * listeners and runs until SIGTERM/SIGINT.  On stop it lets messages in
 * flight finish (their 250 is owed) before it closes sessions.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/config.h"
#include "api/api.h"
#include "events/evq.h"
#include "web/http.h"
#include "intake/intake.h"
#include "intake/mailhost.h"
#include "events/metrics.h"
#include "outbound/notify.h"
#include "outbound/outq.h"
#include "plugin/plugin_host.h"
#include "privacy/privacy.h"
#include "smtp_server.h"
#include "smtp_session.h"
#include "store/store.h"
#include "lib/util.h"
#include "lib/worker.h"

struct listener {
	struct smtp_server_ctx *srv;
	struct evconnlistener *l;
	int lmtp;
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
	    511, (struct sockaddr *)&ss, sslen);
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
	pd_err(err, "TLS certificate %s / key %s: %s", cfg->tls_cert,
	    cfg->tls_key, e);
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * Spool files and half-written blobs left by a crash belong to messages
 * that were never acknowledged: the client still holds them and will
 * retry.  Only this process writes there, so at start they can all go.
 */
static int
server_spool_prepare(struct smtp_server_ctx *srv, char *err)
{
	char tmp[4096 + 16];
	int n;

	snprintf(srv->spool_dir, sizeof(srv->spool_dir), "%s/spool",
	    srv->cfg->var_dir);
	snprintf(tmp, sizeof(tmp), "%s/blobs/tmp", srv->cfg->var_dir);
	if (pd_mkdirs(srv->spool_dir, 0700) != 0) {
		pd_err(err, "cannot create %s: %s", srv->spool_dir,
		    strerror(errno));
		return -1;
	}
	if ((n = pd_dir_clear(srv->spool_dir)) < 0) {
		pd_err(err, "cannot read %s: %s", srv->spool_dir,
		    strerror(errno));
		return -1;
	}
	if (n > 0)
		log_info("removed %d unacknowledged spool file(s)", n);
	if ((n = pd_dir_clear(tmp)) > 0)
		log_info("removed %d unfinished blob(s) from %s", n, tmp);
	return 0;
}

static void *
server_worker_init(void *arg)
{
	struct smtp_server_ctx *srv = arg;
	struct intake_ctx *ictx = NULL;
	char err[PD_ERRLEN];

	if (intake_ctx_new(srv->cfg, srv->plugins, &ictx, err) != 0) {
		log_err("intake worker: %s", err);
		return NULL;
	}
	return ictx;
}

static void
server_worker_fini(void *tctx)
{
	struct intake_ctx *ictx = tctx;

	intake_ctx_free(&ictx);
}

/* ---- reminders: a worker job once a minute ---- */

#define SERVER_REMIND_SECONDS 60

/* Worker thread: its own store and queue handles, for this run only. */
static void
server_remind_run(void *tctx, void *arg)
{
	struct smtp_server_ctx *srv = arg;
	struct notify_env env = { srv->cfg, NULL, NULL };
	char err[PD_ERRLEN];
	unsigned n = 0;

	if (store_open(srv->cfg->db_path, srv->cfg->sync_mode, &env.st, err)
	    != 0 || outq_ctx_new(srv->cfg, srv->plugins, &env.q, err) != 0 ||
	    notify_reminders(&env, pd_now(), &n, err) != 0)
		log_err("reminders: %s", err);
	else if (n > 0)
		log_info("reminders: %u queued", n);
	outq_ctx_free(&env.q);
	store_close(&env.st);
}

/*
 * Retention (privacy.c) rides on the same minute timer, every
 * privacy.purge_interval, when a class has an age.  No VACUUM here: it
 * would stall intake; `postdoc purge` does that.
 */
static int64_t server_purge_last;

static void
server_purge_run(void *tctx, void *arg)
{
	struct smtp_server_ctx *srv = arg;
	struct privacy_env env = { srv->cfg, NULL, NULL, "postdoc-serve" };
	char err[PD_ERRLEN], blobs[4200];
	json_t *rep = NULL;

	snprintf(blobs, sizeof(blobs), "%s/blobs", srv->cfg->var_dir);
	if (store_open(srv->cfg->db_path, srv->cfg->sync_mode, &env.st, err)
	    != 0 || blob_store_open(blobs, &env.bs, err) != 0 ||
	    privacy_purge(&env, pd_now(), 0, 0, 0, &rep, err) != 0)
		log_err("retention purge: %s", err);
	else
		log_info("retention purge: done");
	json_decref(rep);
	blob_store_free(&env.bs);
	store_close(&env.st);
}

static void
server_remind_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server_ctx *srv = arg;
	struct timeval tv = { SERVER_REMIND_SECONDS, 0 };
	const struct pd_config *c = srv->cfg;

	worker_submit(srv->workers, server_remind_run, NULL, srv);
	if ((c->keep_raw_messages || c->keep_documents ||
	    c->keep_outbound_bodies || c->keep_history || c->keep_logs) &&
	    pd_now() - server_purge_last >= c->purge_interval) {
		server_purge_last = pd_now();
		worker_submit(srv->workers, server_purge_run, NULL, srv);
	}
	evtimer_add(srv->remind_ev, &tv);
}

static void
server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;

	log_info("signal %d: stopping", (int)sig);
	event_base_loopbreak(base);
}

static enum pd_log_level
server_log_level(const char *s)
{
	if (strcmp(s, "err") == 0)
		return PD_LOG_ERR;
	if (strcmp(s, "warn") == 0)
		return PD_LOG_WARN;
	if (strcmp(s, "debug") == 0)
		return PD_LOG_DEBUG;
	return PD_LOG_INFO;
}

/* Let in-flight intake jobs finish and answer before sessions close. */
static void
server_drain(struct smtp_server_ctx *srv)
{
	int64_t until = pd_monotonic_ms() + 1000 * (srv->cfg->message_time_max
	    + 5);

	while (worker_pool_pending(srv->workers) > 0 &&
	    pd_monotonic_ms() < until)
		event_base_loop(srv->base, EVLOOP_ONCE);
}

/* The web endpoint: one per process, like the signal handlers. */
static struct http_server *server_http;

static int
server_setup(struct smtp_server_ctx *srv, char *err)
{
	const struct pd_config *cfg = srv->cfg;

	pd_var_owner_init(cfg->var_dir);	/* root without server.user */
	if (server_spool_prepare(srv, err) != 0)
		return -1;
	if (store_open(cfg->db_path, cfg->sync_mode, &srv->store, err) != 0)
		return -1;
	if (plugin_host_load(cfg, &srv->plugins, err) != 0)
		return -1;
	srv->ssl_ctx = server_tls_ctx(cfg, err);
	if (srv->ssl_ctx == NULL && cfg->tls_cert != NULL &&
	    cfg->tls_cert[0] != '\0')
		return -1;
	srv->workers = worker_pool_new(srv->base, (int)cfg->workers,
	    server_worker_init, server_worker_fini, srv);
	/* Intake does not depend on outbound: without the transport, mail
	 * waits in the queue and intake goes on. */
	if (plugin_find(srv->plugins, cfg->transport, NULL) == NULL)
		log_warn("outbound.transport '%s' is not a loaded plugin: "
		    "outbound mail stays queued", cfg->transport);
	else if (outq_runner_start(cfg, srv->plugins, &srv->outq, err) != 0)
		return -1;
	srv->remind_ev = evtimer_new(srv->base, server_remind_cb, srv);
	server_remind_cb(-1, 0, srv);
	/* Unsubscribe and preferences: MHD's own thread, its own store. */
	if (http_start(cfg, &server_http, err) != 0)
		return -1;
	/* JSON API and /metrics: MHD's own thread, its own store. */
	if (api_start(cfg, srv->plugins, &srv->api, err) != 0)
		return -1;
	/* Pollers (mailbox) file on their own threads through mailhost. */
	if (mailhost_new(cfg, srv->plugins, &srv->mailhost, err) != 0 ||
	    plugin_host_start(srv->plugins, mailhost_api(srv->mailhost), err)
	    != 0)
		return -1;
	/* Events to webhook/sync plugins, their own threads and store: hooks
	 * run only between a plugin's start() and stop(). */
	if (evq_start(cfg, srv->plugins, &srv->evq, err) != 0)
		return -1;
	return 0;
}

static void
server_teardown(struct smtp_server_ctx *srv)
{
	http_stop(&server_http);	/* no more clicks while stopping */
	api_stop(&srv->api);
	evq_stop(&srv->evq);	/* no hook call after a plugin's stop() */
	plugin_host_stop(srv->plugins);	/* pollers first: they file */
	mailhost_free(&srv->mailhost);
	if (srv->remind_ev != NULL)
		event_free(srv->remind_ev);
	outq_runner_stop(&srv->outq);
	if (srv->workers != NULL) {
		server_drain(srv);
		smtp_session_close_all(srv);
		worker_pool_free(&srv->workers);
	} else
		smtp_session_close_all(srv);
	plugin_host_free(&srv->plugins);
	store_close(&srv->store);
	SSL_CTX_free(srv->ssl_ctx);
}

/*
 * Root is needed only to bind (port 25): give it up for good before the
 * store, the plugins or any thread exist, so every file serve creates
 * belongs to server.user and no plugin ever runs as root.
 */
static int
server_drop_privileges(const struct pd_config *cfg, char *err)
{
	struct passwd *pw;

	if (cfg->user == NULL || cfg->user[0] == '\0')
		return 0;
	errno = 0;
	if ((pw = getpwnam(cfg->user)) == NULL) {
		pd_err(err, "server.user: no user '%s'%s%s", cfg->user,
		    errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
		return -1;
	}
	if (geteuid() != 0) {
		if (geteuid() == pw->pw_uid)
			return 0;
		pd_err(err, "server.user is '%s': start postdoc serve as root "
		    "or as that user", cfg->user);
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		pd_err(err, "cannot become %s: %s", cfg->user, strerror(errno));
		return -1;
	}
	if (pw->pw_uid != 0 && setuid(0) == 0)
		pd_fatal("could become root again after dropping to %s",
		    cfg->user);
	log_info("running as %s (uid %u, gid %u)", cfg->user,
	    (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
	return 0;
}

int
server_run(struct pd_config *cfg, char *err)
{
	struct smtp_server_ctx srv;
	struct listener smtp = { 0 }, lmtp = { 0 };
	struct event *sigterm, *sigint;
	int rc = -1;

	memset(&srv, 0, sizeof(srv));
	srv.cfg = cfg;
	pd_log_set_level(server_log_level(cfg->log_level));
	if (strcmp(cfg->log_output, "syslog") == 0)
		pd_log_syslog("postdoc");
	metrics_start();
	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN);
	srv.base = event_base_new();
	if (srv.base == NULL) {
		pd_err(err, "event_base_new failed");
		return -1;
	}
	sigterm = evsignal_new(srv.base, SIGTERM, server_signal_cb, srv.base);
	sigint = evsignal_new(srv.base, SIGINT, server_signal_cb, srv.base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	/* Bind first (the loop does not accept before dispatch), then drop
	 * root, then open everything else.  A user that does not exist is
	 * refused before any port is bound. */
	if ((cfg->user != NULL && cfg->user[0] != '\0' &&
	    getpwnam(cfg->user) == NULL &&
	    server_drop_privileges(cfg, err) != 0) ||
	    server_listen(&srv, &smtp, cfg->smtp_listen, 0, err) != 0 ||
	    server_listen(&srv, &lmtp, cfg->lmtp_listen, 1, err) != 0 ||
	    server_drop_privileges(cfg, err) != 0 ||
	    server_setup(&srv, err) != 0)
		goto out;
	log_info("postdoc ready: smtp=%s lmtp=%s starttls=%s store=%s",
	    cfg->smtp_listen[0] ? cfg->smtp_listen : "off",
	    cfg->lmtp_listen[0] ? cfg->lmtp_listen : "off",
	    srv.ssl_ctx != NULL ? "yes" : "no", cfg->db_path);
	event_base_dispatch(srv.base);
	rc = 0;
out:
	if (smtp.l != NULL)
		evconnlistener_free(smtp.l);
	if (lmtp.l != NULL)
		evconnlistener_free(lmtp.l);
	server_teardown(&srv);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(srv.base);
	log_info("postdoc stopped (%llu messages accepted)",
	    (unsigned long long)srv.nmessages);
	return rc;
}

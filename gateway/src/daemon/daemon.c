/*
 * daemon.c - `postdoc serve`: binds the listeners while root, drops
 * privileges, opens the store and plugins, starts the intake workers,
 * the outbound runner, the schedulers, the web pages, the JSON API, the
 * mailbox pollers and event delivery, and runs the loop until SIGTERM or
 * SIGINT; SIGHUP reopens the log file and reloads the TLS certificate.
 * On stop it lets messages in flight finish (their 250 is owed)
 * before it closes sessions.  It wires services; it never speaks SMTP.
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
#include <event2/thread.h>

#include "lib/config.h"
#include "api/api.h"
#include "daemon.h"
#include "daemon_int.h"
#include "events/evq.h"
#include "web/http.h"
#include "intake/intake.h"
#include "intake/mailhost.h"
#include "events/metrics.h"
#include "outbound/outq.h"
#include "plugin/plugin_host.h"
#include "smtp/smtp_server.h"
#include "store/store.h"
#include "lib/util.h"
#include "lib/worker.h"

/*
 * Spool files and half-written blobs left by a crash belong to messages
 * that were never acknowledged: the client still holds them and will
 * retry.  Only this process writes there, so at start they can all go.
 */
static int
daemon_spool_prepare(const struct pd_config *cfg, char *err)
{
	char spool[4096], tmp[4096 + 16];
	int n;

	snprintf(spool, sizeof(spool), "%s/spool", cfg->var_dir);
	snprintf(tmp, sizeof(tmp), "%s/blobs/tmp", cfg->var_dir);
	if (pd_mkdirs(spool, 0700) != 0) {
		pd_err(err, "cannot create %s: %s", spool, strerror(errno));
		return -1;
	}
	if ((n = pd_dir_clear(spool)) < 0) {
		pd_err(err, "cannot read %s: %s", spool, strerror(errno));
		return -1;
	}
	if (n > 0)
		log_info("removed %d unacknowledged spool file(s)", n);
	if ((n = pd_dir_clear(tmp)) > 0)
		log_info("removed %d unfinished blob(s) from %s", n, tmp);
	return 0;
}

static void *
daemon_worker_init(void *arg)
{
	struct daemon_ctx *d = arg;
	struct intake_ctx *ictx = NULL;
	char err[PD_ERRLEN];

	if (intake_ctx_new(d->cfg, d->plugins, &ictx, err) != 0) {
		log_err("intake worker: %s", err);
		return NULL;
	}
	return ictx;
}

static void
daemon_worker_fini(void *tctx)
{
	struct intake_ctx *ictx = tctx;

	intake_ctx_free(&ictx);
}

static void
daemon_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;

	log_info("signal %d: stopping", (int)sig);
	event_base_loopbreak(base);
}

/*
 * SIGHUP, the daemon convention: reopen the log file (logrotate renamed
 * it) and load again what can change safely under a running serve, the
 * STARTTLS certificate and key (renewed certificates).  Templates need
 * nothing: they are read from template_dir at each use.  The rest of the
 * configuration needs a restart.  One line says what was done; what
 * failed keeps the old state and says why.
 */
static void
daemon_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_ctx *d = arg;
	const struct pd_config *cfg = d->cfg;
	char err[PD_ERRLEN], logs[PD_ERRLEN + 64], tls[PD_ERRLEN + 64];
	int lr, tr;

	if ((lr = pd_log_reopen(err)) > 0)
		snprintf(logs, sizeof(logs), "log file reopened");
	else if (lr == 0)
		snprintf(logs, sizeof(logs), "log to %s: nothing to reopen",
		    cfg->log_output);
	else
		snprintf(logs, sizeof(logs), "old log file kept: %s", err);
	if ((tr = smtp_server_tls_reload(d->smtp, err)) > 0)
		snprintf(tls, sizeof(tls), "TLS certificate reloaded");
	else if (tr == 0)
		snprintf(tls, sizeof(tls), "no STARTTLS");
	else
		snprintf(tls, sizeof(tls), "old TLS certificate kept: %s",
		    err);
	pd_log(lr < 0 || tr < 0 ? PD_LOG_WARN : PD_LOG_INFO, "SIGHUP: %s; "
	    "%s; templates are read at each use; other settings need a "
	    "restart", logs, tls);
}

/* server.log = "file": lines go there from the privilege drop on, so
 * the files logrotate renames belong to server.user, who reopens them. */
static int
daemon_log_file(const struct pd_config *cfg, char *err)
{
	char dir[4096];

	if (strcmp(cfg->log_output, "file") != 0)
		return 0;
	snprintf(dir, sizeof(dir), "%s/log/postdoc.log", cfg->var_dir);
	if (strcmp(cfg->log_file, dir) == 0) {	/* the default: ours */
		snprintf(dir, sizeof(dir), "%s/log", cfg->var_dir);
		if (pd_mkdirs(dir, 0750) != 0) {
			pd_err(err, "cannot create %s: %s", dir,
			    strerror(errno));
			return -1;
		}
	}
	if (pd_log_file(cfg->log_file, err) != 0)
		return -1;
	log_info("logging to %s (reopened on SIGHUP)", cfg->log_file);
	return 0;
}

static enum pd_log_level
daemon_log_level(const char *s)
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
daemon_drain(struct daemon_ctx *d)
{
	int64_t until = pd_monotonic_ms() + 1000 * (d->cfg->message_time_max
	    + 5);

	while (worker_pool_pending(d->workers) > 0 &&
	    pd_monotonic_ms() < until)
		event_base_loop(d->base, EVLOOP_ONCE);
}

/* The front ends and runners beside SMTP, each on threads of its own. */
static int
daemon_start_services(struct daemon_ctx *d, char *err)
{
	const struct pd_config *cfg = d->cfg;

	/* Intake does not depend on outbound: without the transport, mail
	 * waits in the queue and intake goes on. */
	if (plugin_find(d->plugins, cfg->transport, NULL) == NULL)
		log_warn("outbound.transport '%s' is not a loaded plugin: "
		    "outbound mail stays queued", cfg->transport);
	else if (outq_runner_start(cfg, d->plugins, &d->outq, err) != 0)
		return -1;
	daemon_sched_start(d);
	/* Unsubscribe and preferences: MHD's own thread, its own store. */
	if (http_start(cfg, d->plugins, &d->http, err) != 0)
		return -1;
	/* JSON API and /metrics: MHD's own thread, its own store. */
	if (api_start(cfg, d->plugins, &d->api, err) != 0)
		return -1;
	/* Pollers (mailbox) file on their own threads through mailhost. */
	if (mailhost_new(cfg, d->plugins, &d->mailhost, err) != 0 ||
	    plugin_host_start(d->plugins, mailhost_api(d->mailhost), err)
	    != 0)
		return -1;
	/* Events to webhook/sync plugins, their own threads and store: hooks
	 * run only between a plugin's start() and stop(). */
	if (evq_start(cfg, d->plugins, &d->evq, err) != 0)
		return -1;
	return 0;
}

static int
daemon_setup(struct daemon_ctx *d, char *err)
{
	const struct pd_config *cfg = d->cfg;

	pd_var_owner_init(cfg->var_dir);	/* root without server.user */
	if (daemon_log_file(cfg, err) != 0 ||
	    daemon_spool_prepare(cfg, err) != 0)
		return -1;
	if (store_open(cfg->db_path, cfg->sync_mode, &d->store, err) != 0)
		return -1;
	if (plugin_host_load(cfg, &d->plugins, err) != 0)
		return -1;
	if (smtp_server_tls(d->smtp, err) != 0)
		return -1;
	d->workers = worker_pool_new(d->base, (int)cfg->workers,
	    daemon_worker_init, daemon_worker_fini, d);
	smtp_server_attach(d->smtp, d->store, d->plugins, d->workers);
	return daemon_start_services(d, err);
}

static void
daemon_teardown(struct daemon_ctx *d)
{
	http_stop(&d->http);	/* no more clicks while stopping */
	api_stop(&d->api);
	evq_stop(&d->evq);	/* no hook call after a plugin's stop() */
	plugin_host_stop(d->plugins);	/* pollers first: they file */
	mailhost_free(&d->mailhost);
	daemon_sched_stop(d);
	outq_runner_stop(&d->outq);
	if (d->workers != NULL) {
		daemon_drain(d);
		smtp_server_close_sessions(d->smtp);
		worker_pool_free(&d->workers);
	} else
		smtp_server_close_sessions(d->smtp);
	plugin_host_free(&d->plugins);
	store_close(&d->store);
}

/*
 * Root is needed only to bind (port 25): give it up for good before the
 * store, the plugins or any thread exist, so every file serve creates
 * belongs to server.user and no plugin ever runs as root.
 */
static int
daemon_drop_privileges(const struct pd_config *cfg, char *err)
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
daemon_check(const struct pd_config *cfg, char *err)
{
	struct plugin_host *ph = NULL;

	errno = 0;
	if (cfg->user != NULL && cfg->user[0] != '\0' &&
	    getpwnam(cfg->user) == NULL) {
		pd_err(err, "server.user: no user '%s'%s%s", cfg->user,
		    errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
		return -1;
	}
	if (smtp_server_tls_check(cfg, err) != 0)
		return -1;
	/* init only parses and checks settings (postdoc/plugin.h): files,
	 * threads and connections wait for start(), which serve alone calls */
	if (plugin_host_load(cfg, &ph, err) != 0)
		return -1;
	plugin_host_free(&ph);
	return 0;
}

/* Logging, threads and SIGPIPE: before anything can log or spawn. */
static void
daemon_process_init(const struct pd_config *cfg)
{
	pd_log_set_level(daemon_log_level(cfg->log_level));
	if (strcmp(cfg->log_output, "syslog") == 0)
		pd_log_syslog("postdoc");
	metrics_start();
	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN);
}

int
daemon_run(struct pd_config *cfg, char *err)
{
	struct daemon_ctx d;
	struct event *sigterm, *sigint, *sighup;
	uint64_t accepted;
	int rc = -1;

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	daemon_process_init(cfg);
	d.base = event_base_new();
	if (d.base == NULL) {
		pd_err(err, "event_base_new failed");
		return -1;
	}
	sigterm = evsignal_new(d.base, SIGTERM, daemon_signal_cb, d.base);
	sigint = evsignal_new(d.base, SIGINT, daemon_signal_cb, d.base);
	sighup = evsignal_new(d.base, SIGHUP, daemon_hup_cb, &d);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sighup, NULL);
	smtp_server_new(cfg, d.base, &d.smtp);
	/* Bind first (the loop does not accept before dispatch), then drop
	 * root, then open everything else.  A user that does not exist is
	 * refused before any port is bound. */
	if ((cfg->user != NULL && cfg->user[0] != '\0' &&
	    getpwnam(cfg->user) == NULL &&
	    daemon_drop_privileges(cfg, err) != 0) ||
	    smtp_server_listen(d.smtp, err) != 0 ||
	    daemon_drop_privileges(cfg, err) != 0 ||
	    daemon_setup(&d, err) != 0)
		goto out;
	log_info("postdoc ready: smtp=%s lmtp=%s starttls=%s store=%s",
	    cfg->smtp_listen[0] ? cfg->smtp_listen : "off",
	    cfg->lmtp_listen[0] ? cfg->lmtp_listen : "off",
	    smtp_server_starttls(d.smtp) ? "yes" : "no", cfg->db_path);
	event_base_dispatch(d.base);
	rc = 0;
out:
	/* The reason first: what the teardown logs after it is noise. */
	if (rc != 0)
		log_err("not started: %s", err);
	smtp_server_unlisten(d.smtp);
	daemon_teardown(&d);
	accepted = smtp_server_accepted(d.smtp);
	smtp_server_free(&d.smtp);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	event_base_free(d.base);
	log_info("postdoc stopped (%llu messages accepted)",
	    (unsigned long long)accepted);
	return rc;
}

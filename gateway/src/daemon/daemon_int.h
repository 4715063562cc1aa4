/*
 * daemon_int.h - for the daemon's own files only: what `postdoc serve`
 * holds while it runs (the loop, the store, the plugins, the workers and
 * every front end and runner it started).  Nothing else includes it.
 */
#ifndef PD_DAEMON_INT_H
#define PD_DAEMON_INT_H

#include <stdint.h>

struct api_server;
struct event;
struct event_base;
struct evq;
struct http_server;
struct mailhost;
struct outq_runner;
struct pd_config;
struct plugin_host;
struct smtp_server;
struct store;
struct worker_pool;

struct daemon_ctx {
	const struct pd_config *cfg;
	struct event_base *base;
	struct store *store;		/* loop-side connection: routing */
	struct plugin_host *plugins;
	struct worker_pool *workers;	/* intake, reminders, purge */
	struct smtp_server *smtp;	/* SMTP and LMTP listeners */
	struct outq_runner *outq;	/* outbound delivery threads */
	struct api_server *api;		/* JSON API and /metrics */
	struct http_server *http;	/* unsubscribe and preferences */
	struct evq *evq;		/* events to webhook/sync plugins */
	struct mailhost *mailhost;	/* poller plugins' intake (ABI 3) */
	struct event *remind_ev;	/* the once-a-minute schedulers */
	int64_t purge_last;		/* last retention purge (pd_now) */
	struct event *wal_ev;		/* every 5 s: the WAL's size */
	int wal_job;			/* loop: a truncation job is queued */
	unsigned wal_waiting;		/* that job: busy rounds in a row */
};

/* daemon_sched.c: reminders and the retention purge, on a worker once a
 * minute (start runs the first round at once); the WAL truncated past
 * store.wal_size_max, looked at every 5 seconds. */
void daemon_sched_start(struct daemon_ctx *d);
void daemon_sched_stop(struct daemon_ctx *d);

#endif

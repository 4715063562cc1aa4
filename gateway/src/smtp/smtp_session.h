/*
 * smtp_session.h - one SMTP or LMTP conversation: the command table, the
 * DATA stream (dot-unstuffing, bare CR/LF detection, size and line limits,
 * spooling) and the hand-off of a complete message to an intake worker,
 * in smtp_session.c, smtp_cmd.c and smtp_data.c.  For smtp_server.c (the
 * listeners, which own the shared state) and the session fuzzer only; the
 * session never blocks the loop on disk or SQL writes.
 */
#ifndef PD_SMTP_SESSION_H
#define PD_SMTP_SESSION_H

#include <sys/socket.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <event2/util.h>

struct pd_config;
struct store;
struct plugin_host;
struct worker_pool;
struct smtp_session;

/* State shared by every session of one server; owned by smtp_server.c,
 * its services borrowed from the daemon (smtp_server_attach). */
struct smtp_server_ctx {
	const struct pd_config *cfg;
	struct event_base *base;
	struct store *store;		/* loop-side connection: routing */
	struct plugin_host *plugins;
	struct worker_pool *workers;
	SSL_CTX *ssl_ctx;		/* NULL: no STARTTLS */
	char spool_dir[4096];
	struct smtp_session *sessions;	/* all live sessions */
	int nsessions;			/* those that count against the
					 * limits: not yet closing */
	uint64_t nmessages;		/* accepted, for the log */
	uint64_t spool_mem;		/* DATA octets held in memory beyond
					 * each session's first buffer */
};

/* Take ownership of an accepted socket. */
void smtp_session_start(struct smtp_server_ctx *srv, evutil_socket_t fd,
    const struct sockaddr *sa, int salen, int lmtp);
/* Server shutdown: close every session (421) and free them. */
void smtp_session_close_all(struct smtp_server_ctx *srv);

#endif

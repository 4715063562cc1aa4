/*
 * smtp_server.h - the SMTP and LMTP listeners and what their sessions
 * share: the STARTTLS context, the session list and its accounting.  The
 * daemon builds it in the order serve needs (bind while root, then TLS
 * and the services); sessions themselves live in smtp_session.c.
 */
#ifndef PD_SMTP_SERVER_H
#define PD_SMTP_SERVER_H

#include <stdint.h>

struct event_base;
struct pd_config;
struct plugin_host;
struct smtp_server;
struct store;
struct worker_pool;

/* cfg and base must outlive the server; nothing is bound yet. */
void smtp_server_new(const struct pd_config *cfg, struct event_base *base,
    struct smtp_server **srv_r);
/* Bind smtp.listen and lmtp.listen (an empty address: none); the loop
 * accepts once it runs.  -1 with err. */
int smtp_server_listen(struct smtp_server *srv, char *err);
/* Load server.tls_cert/tls_key for STARTTLS (none configured: none
 * offered).  -1 with err when the files do not make a context. */
int smtp_server_tls(struct smtp_server *srv, char *err);
/* Load tls_cert/tls_key again for new STARTTLS sessions (SIGHUP): 1
 * done, 0 without STARTTLS, -1 with err when the files do not make a
 * context (the old one stays).  On the loop thread. */
int smtp_server_tls_reload(struct smtp_server *srv, char *err);
/* check-config: would smtp_server_tls succeed?  Loads and frees. */
int smtp_server_tls_check(const struct pd_config *cfg, char *err);
/* What sessions use, borrowed until smtp_server_free: the loop's store
 * connection (routing at RCPT), the plugins and the intake workers.
 * Before the loop runs. */
void smtp_server_attach(struct smtp_server *srv, struct store *st,
    struct plugin_host *ph, struct worker_pool *wp);
/* Stop accepting; sessions go on. */
void smtp_server_unlisten(struct smtp_server *srv);
/* Close every session (421): after the workers drained, before they go. */
void smtp_server_close_sessions(struct smtp_server *srv);
/* 1 if STARTTLS is offered. */
int smtp_server_starttls(const struct smtp_server *srv);
/* Messages accepted so far (for the log). */
uint64_t smtp_server_accepted(const struct smtp_server *srv);
/* Unlisten, close what sessions are left, free; *srv = NULL. */
void smtp_server_free(struct smtp_server **srv);

#endif

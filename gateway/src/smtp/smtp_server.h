/*
 * smtp_server.h - `postdoc serve`: the libevent loop, the SMTP and LMTP
 * listeners, connection limits, TLS context and the intake worker pool.
 * Sessions themselves live in smtp_session.c.
 */
#ifndef PD_SMTP_SERVER_H
#define PD_SMTP_SERVER_H

struct pd_config;

/* Runs until SIGTERM/SIGINT; returns 0 on a clean stop, -1 with err. */
int server_run(struct pd_config *cfg, char *err);

#endif

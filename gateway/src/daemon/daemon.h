/*
 * daemon.h - `postdoc serve`: the process that runs the SMTP/LMTP
 * listeners, the intake workers, the outbound runner, event delivery,
 * the web pages, the JSON API, the mailbox pollers and the schedulers,
 * until SIGTERM or SIGINT (SIGHUP: reopen the log file, reload the TLS
 * certificate).
 */
#ifndef PD_DAEMON_H
#define PD_DAEMON_H

struct pd_config;

/* Runs until SIGTERM/SIGINT; returns 0 on a clean stop, -1 with err. */
int daemon_run(struct pd_config *cfg, char *err);
/*
 * `check-config`: what serve would refuse at start, checked without
 * starting anything: server.user exists, the STARTTLS certificate and
 * key load, and every plugin loads and accepts its settings (init, then
 * deinit; no start).  0, or -1 with
 * err ("FILE:LINE: plugin NAME: why" for a plugin).
 */
int daemon_check(const struct pd_config *cfg, char *err);

#endif

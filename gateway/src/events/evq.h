/*
 * evq.h - delivery of durable events to plugins (`postdoc serve` only):
 * one thread per plugin with an event or sync hook, in order per dossier,
 * retried with backoff until events.max_age, never blocking intake.
 */
#ifndef PD_EVQ_H
#define PD_EVQ_H

struct pd_config;
struct plugin_host;
struct evq;

/* No plugin with an event or sync hook: nothing started, *q_r NULL. */
int evq_start(const struct pd_config *cfg, struct plugin_host *ph,
    struct evq **q_r, char *err);
void evq_stop(struct evq **q);

#endif

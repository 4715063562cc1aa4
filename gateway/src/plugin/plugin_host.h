/*
 * plugin_host.h - loads plugins (dlopen), checks their ABI, and runs hook
 * chains: the first non-CONT verdict ends a chain.  Turns verdicts into
 * reply codes chosen by the core, never by a plugin.
 */
#ifndef PD_PLUGIN_HOST_H
#define PD_PLUGIN_HOST_H

#include <stdio.h>

#include "postdoc/plugin.h"

struct pd_config;
struct plugin_host;

int plugin_host_load(const struct pd_config *cfg, struct plugin_host **ph_r,
    char *err);
void plugin_host_free(struct plugin_host **ph);	/* deinit in reverse */
int plugin_host_count(const struct plugin_host *ph);

/* Outcome of a chain: verdict plus the sanitized text of the deciding
 * plugin, prefixed by its name when the plugin gave no text. */
struct plugin_outcome {
	enum postdoc_verdict verdict;
	char text[POSTDOC_PLUGIN_TEXT_MAX + 64];
	/* attachment chain only: the scanners' worst answer (ABI 5) */
	enum postdoc_scan scan;
};

void plugin_run_connect(struct plugin_host *ph,
    const struct postdoc_session_info *s, struct plugin_outcome *o);
void plugin_run_helo(struct plugin_host *ph,
    const struct postdoc_session_info *s, struct plugin_outcome *o);
void plugin_run_mail_from(struct plugin_host *ph,
    const struct postdoc_session_info *s, const char *sender,
    struct plugin_outcome *o);
void plugin_run_rcpt_to(struct plugin_host *ph,
    const struct postdoc_session_info *s, const char *sender,
    const struct postdoc_rcpt_info *r, struct plugin_outcome *o);
void plugin_run_message(struct plugin_host *ph,
    const struct postdoc_message_info *m, struct plugin_outcome *o);
void plugin_run_attachment(struct plugin_host *ph,
    const struct postdoc_attachment_info *a, struct plugin_outcome *o);
void plugin_run_stored(struct plugin_host *ph,
    const struct postdoc_stored_info *st);

/*
 * Outbound: every plugin's outbound hook in order, their header lines
 * concatenated into prepend (NUL-terminated); DENY or DENYSOFT stops the
 * chain.  A plugin that would overflow prepend_len gets DENYSOFT.
 */
int plugin_run_outbound(struct plugin_host *ph,
    const struct postdoc_outbound_info *m, char *prepend, size_t prepend_len,
    struct plugin_outcome *o);
/* The loaded plugin called `name` (and its state), or NULL. */
const struct postdoc_plugin *plugin_find(struct plugin_host *ph,
    const char *name, void **state_r);
/* Hand n messages to the transport plugin `transport`; without such a
 * plugin (or hook) every result is code 0 with the reason. */
void plugin_deliver(struct plugin_host *ph, const char *transport,
    const struct postdoc_outbound_info *msgs, size_t n,
    struct postdoc_delivery *results);

/* evq: the i-th loaded plugin (0-based) with its state; 0, or -1 past
 * the end. */
int plugin_at(struct plugin_host *ph, int i,
    const struct postdoc_plugin **desc_r, void **state_r);
/*
 * evq: call one plugin's event hook (sync = 0) or sync hook (sync = 1).
 * CONT counts as OK (nothing to do for this event); DISCONNECT and
 * unknown verdicts become DENYSOFT; the text is cleaned to ASCII.
 */
void plugin_run_event(const struct postdoc_plugin *desc, void *state,
    int sync, const struct postdoc_event *ev, struct plugin_outcome *o);

/* serve: start every plugin that has a start() (host borrowed until
 * plugin_host_stop), in load order; -1 with err if one refuses. */
int plugin_host_start(struct plugin_host *ph, const struct postdoc_host *host,
    char *err);
/* stop() the started plugins in reverse order; idempotent. */
void plugin_host_stop(struct plugin_host *ph);
/* CLI: run plugin `name`'s command(); -1 with err if it has none. */
int plugin_command(struct plugin_host *ph, const char *name, int argc,
    const char *const *argv, FILE *out, char *err);

#endif

/*
 * plugin_host.h - loads plugins (dlopen), checks their ABI, and runs hook
 * chains: the first non-CONT verdict ends a chain.  Turns verdicts into
 * reply codes chosen by the core, never by a plugin.
 */
#ifndef PD_PLUGIN_HOST_H
#define PD_PLUGIN_HOST_H

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

#endif

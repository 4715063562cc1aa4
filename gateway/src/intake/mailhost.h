/*
 * mailhost.h - the host side of the poller API (postdoc/plugin.h, ABI 3):
 * a message a plugin fetched from a mailbox is copied into the spool,
 * routed to its dossier by its headers and filed through intake_process
 * on the plugin's own thread.  Never touches the event loop.
 */
#ifndef PD_MAILHOST_H
#define PD_MAILHOST_H

#include "postdoc/plugin.h"

struct pd_config;
struct plugin_host;
struct mailhost;

/* cfg and ph must outlive the mailhost; the spool directory must exist. */
int mailhost_new(const struct pd_config *cfg, struct plugin_host *ph,
    struct mailhost **mh_r, char *err);
/* Call after every thread using the API has ended (plugin_host_stop). */
void mailhost_free(struct mailhost **mh);
/* The table handed to plugins' start(); lives as long as mh. */
const struct postdoc_host *mailhost_api(struct mailhost *mh);

/*
 * Routing, exposed for tests: scan a raw header block (as in the message,
 * folded or not) for addresses of `domain` in the fields Delivered-To,
 * X-Original-To, To and Cc.  Calls cb(local part, ctx) ("d-<token>", or
 * "d-<token>+<item>" for an item's address; folded) for each address
 * of the first of these fields (in that order, all occurrences of a field
 * name together) for which cb returns nonzero at least once.  Returns the
 * index of the winning field (0..3) or -1 when none matched.
 */
typedef int (*mailhost_addr_cb)(const char *local, void *ctx);
int mailhost_route(const char *hdr, size_t len, const char *domain,
    mailhost_addr_cb cb, void *ctx);

#endif

/*
 * http.h - the web endpoint of `postdoc serve` (libmicrohttpd, its own
 * polling thread): one-click unsubscribe (RFC 8058) at /u/<token>, the
 * preference centre at /prefs/<token>, double opt-in confirmation at
 * /c/<token>.  A GET or HEAD never changes anything; only POST does, and
 * only unsubscribing works without a page's CSRF field.  Subscribing from
 * the preference centre only sends a confirmation mail (double opt-in).
 */
#ifndef PD_HTTP_H
#define PD_HTTP_H

struct pd_config;
struct http_server;
struct plugin_host;

/*
 * Listens on web.listen ("" = nothing started, *h_r stays NULL).  The
 * plugins sign the confirmation mail a subscription from the preference
 * centre sends (double opt-in).
 */
int http_start(const struct pd_config *cfg, struct plugin_host *ph,
    struct http_server **h_r, char *err);
void http_stop(struct http_server **h);

#endif

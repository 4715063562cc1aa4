/*
 * http.h - the web endpoint of `postdoc serve` (libmicrohttpd, its own
 * polling thread): one-click unsubscribe (RFC 8058) at /u/<token>, the
 * preference centre at /prefs/<token>, double opt-in confirmation at
 * /c/<token>.  A GET or HEAD never changes anything; only POST does, and
 * only unsubscribing works without a page's CSRF field.
 */
#ifndef PD_HTTP_H
#define PD_HTTP_H

struct pd_config;
struct http_server;

/* Listens on web.listen ("" = nothing started, *h_r stays NULL). */
int http_start(const struct pd_config *cfg, struct http_server **h_r,
    char *err);
void http_stop(struct http_server **h);

#endif

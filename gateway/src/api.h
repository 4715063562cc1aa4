/*
 * api.h - the JSON API of `postdoc serve` (/api/v1) and /metrics, on
 * api.listen (libmicrohttpd, its own thread and store connection).
 * Bearer tokens scope every request to one account.
 */
#ifndef PD_API_H
#define PD_API_H

struct pd_config;
struct api_server;

/* Listens on api.listen ("" = nothing started, *a_r stays NULL). */
int api_start(const struct pd_config *cfg, struct api_server **a_r,
    char *err);
void api_stop(struct api_server **a);

#endif

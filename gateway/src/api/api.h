/*
 * api.h - the JSON API of `postdoc serve` (/api/v1) and /metrics, on
 * api.listen (libmicrohttpd: a pool of threads, each with its own store
 * connection).
 * Bearer tokens scope every request to one account.
 */
#ifndef PD_API_H
#define PD_API_H

#include <stddef.h>

struct pd_config;
struct plugin_host;
struct api_server;

/* Listens on api.listen ("" = nothing started, *a_r stays NULL).  ph
 * (borrowed, outlives the server) runs the outbound hooks of what the
 * API queues. */
int api_start(const struct pd_config *cfg, struct plugin_host *ph,
    struct api_server **a_r, char *err);
void api_stop(struct api_server **a);

/* Bearer tokens are auth/auth.h's (the CLI mints them there too). */

/* The route table, for `postdoc api routes`: i-th METHOD and PATH, or 0
 * past the end. */
int api_route_at(size_t i, const char **method_r, const char **path_r);

#endif

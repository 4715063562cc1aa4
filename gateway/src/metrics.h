/*
 * metrics.h - process-wide counters for /metrics (Prometheus text
 * format).  Lock-free increments from any thread.
 */
#ifndef PD_METRICS_H
#define PD_METRICS_H

#include <stddef.h>

struct store;

/* The whole exposition, malloc'd into *out (caller frees); gauges that
 * live in the store (queue depth) are read through st.  0 or -1. */
int metrics_render(struct store *st, char **out, size_t *len, char *err);

#endif

/*
 * evq.c - event delivery to plugins (see evq.h).  Not written yet.
 */
#include <stddef.h>

#include "evq.h"

int
evq_start(const struct pd_config *cfg, struct plugin_host *ph,
    struct evq **q_r, char *err)
{
	(void)cfg;
	(void)ph;
	(void)err;
	*q_r = NULL;
	return 0;
}

void
evq_stop(struct evq **q)
{
	*q = NULL;
}

/*
 * api.c - JSON API under /api/v1 (see api.h).  Not written yet.
 */
#include <stddef.h>

#include "api.h"
#include "config.h"

int
api_start(const struct pd_config *cfg, struct api_server **a_r, char *err)
{
	(void)cfg;
	(void)err;
	*a_r = NULL;
	return 0;
}

void
api_stop(struct api_server **a)
{
	*a = NULL;
}

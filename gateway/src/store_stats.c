/*
 * store_stats.c - not written yet.
 */
#include "store_stats.h"

int store_stats_placeholder(void);

int
store_stats_placeholder(void)
{
	return 0;
}

/*
 * store_api.c - not written yet.
 */
#include "store_api.h"

int store_api_placeholder(void);

int
store_api_placeholder(void)
{
	return 0;
}

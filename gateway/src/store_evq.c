/*
 * store_evq.c - not written yet.
 */
#include "store_evq.h"

int store_evq_placeholder(void);

int
store_evq_placeholder(void)
{
	return 0;
}

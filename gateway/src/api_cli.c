/*
 * api_cli.c - not written yet.
 */
#include "api_cli.h"

int api_cli_placeholder(void);

int
api_cli_placeholder(void)
{
	return 0;
}

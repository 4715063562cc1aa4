/*
 * trust_cli.h - `postdoc auth check`: a message's SPF, DKIM and DMARC
 * verdict through the configured resolver, as a command family that
 * cli.c runs.
 */
#ifndef PD_TRUST_CLI_H
#define PD_TRUST_CLI_H

#include "cli_args.h"

extern const struct cli_family trust_cli_family;

#endif

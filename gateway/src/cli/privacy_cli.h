/*
 * privacy_cli.h - operator commands of data subjects' rights and
 * retention (subject, purge, audit), as a command family that cli.c runs.
 */
#ifndef PD_PRIVACY_CLI_H
#define PD_PRIVACY_CLI_H

#include "cli_args.h"

extern const struct cli_family privacy_cli_family;

#endif

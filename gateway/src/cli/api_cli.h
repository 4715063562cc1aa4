/*
 * api_cli.h - the operator commands of the JSON API: `token create|list|
 * revoke` (bearer tokens scoped to one account) and `api routes` (the
 * server's route table, one "METHOD PATH" a line), as a command family
 * that cli.c runs.
 */
#ifndef PD_API_CLI_H
#define PD_API_CLI_H

#include "cli_args.h"

extern const struct cli_family api_cli_family;

#endif

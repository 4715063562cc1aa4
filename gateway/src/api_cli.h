/*
 * api_cli.h - the operator commands of the JSON API: `token create|list|
 * revoke` (bearer tokens scoped to one account) and `api routes` (the
 * server's route table, one "METHOD PATH" a line).
 */
#ifndef PD_API_CLI_H
#define PD_API_CLI_H

#include <stdio.h>

int api_cli_handles(int argc, char **argv);
int api_cli_main(int argc, char **argv);
void api_cli_usage(FILE *out);

#endif

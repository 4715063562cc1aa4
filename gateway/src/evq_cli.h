/*
 * evq_cli.h - the operator commands of event delivery: `events list`
 * (deliveries to plugins, newest first, by consumer and state) and
 * `events retry ID` (a failed or expired delivery back to pending).
 */
#ifndef PD_EVQ_CLI_H
#define PD_EVQ_CLI_H

#include <stdio.h>

int evq_cli_handles(int argc, char **argv);
int evq_cli_main(int argc, char **argv);
void evq_cli_usage(FILE *out);

#endif

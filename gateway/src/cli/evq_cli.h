/*
 * evq_cli.h - the operator commands of event delivery: `events list`
 * (deliveries to plugins, newest first, by consumer and state) and
 * `events retry ID` (a failed or expired delivery back to pending), as a
 * command family that cli.c runs.
 */
#ifndef PD_EVQ_CLI_H
#define PD_EVQ_CLI_H

#include "cli_args.h"

extern const struct cli_family evq_cli_family;

#endif

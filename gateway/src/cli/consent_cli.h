/*
 * consent_cli.h - operator commands of the consent ledger and campaigns
 * (purpose, consent, contact, campaign, notice), as a command family
 * that cli.c runs.
 */
#ifndef PD_CONSENT_CLI_H
#define PD_CONSENT_CLI_H

#include "cli_args.h"

extern const struct cli_family consent_cli_family;

#endif

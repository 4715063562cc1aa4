/*
 * consent_cli.h - operator commands of the consent ledger and campaigns
 * (purpose, consent, contact, campaign, notice); cli.c hands them over.
 */
#ifndef PD_CONSENT_CLI_H
#define PD_CONSENT_CLI_H

#include <stdio.h>

/* 1 if argv names one of these command groups. */
int consent_cli_handles(int argc, char **argv);
int consent_cli_main(int argc, char **argv);
void consent_cli_usage(FILE *out);

#endif

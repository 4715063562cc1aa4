/*
 * privacy_cli.h - operator commands of data subjects' rights and
 * retention (subject, purge, audit); cli.c hands them over.
 */
#ifndef PD_PRIVACY_CLI_H
#define PD_PRIVACY_CLI_H

#include <stdio.h>

/* 1 if argv names one of these command groups. */
int privacy_cli_handles(int argc, char **argv);
int privacy_cli_main(int argc, char **argv);
void privacy_cli_usage(FILE *out);

#endif

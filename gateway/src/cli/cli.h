/*
 * cli.h - the `postdoc` command line: argument parsing and the operator
 * commands (account, dossier, document, check-config, serve).  Prints to
 * stdout/stderr; everything else is done by the modules it calls.
 */
#ifndef PD_CLI_H
#define PD_CLI_H

int cli_main(int argc, char **argv);

#endif

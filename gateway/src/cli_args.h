/*
 * cli_args.h - the one argument parser of the `postdoc` command families
 * (cli.c, consent_cli.c, privacy_cli.c): per-family option tables, with
 * --config, --json (and --help where asked) global and accepted anywhere,
 * "--opt value", "--opt=value", and "--" ending the options.  Parsing
 * only; each family checks its commands.
 */
#ifndef PD_CLI_ARGS_H
#define PD_CLI_ARGS_H

#include <stddef.h>

struct cli_optdef {
	const char *name;	/* "--account" */
	const char *alias;	/* "-o" or NULL */
	int has_value;
};

/* Where the parse goes: the caller's own fields. */
struct cli_args_out {
	const char **config;	/* --config value */
	int *json;		/* --json seen */
	unsigned *seen;		/* bit i: option i given */
	const char **val;	/* val[i]: option i's value */
	int *npos;
	const char **pos;	/* positional words */
	int maxpos;
	int *help;		/* --help / -h seen; NULL: not an option */
};

/* Index of the option named a[0..len) in defs, or -1. */
int cli_args_find(const struct cli_optdef *defs, int ndefs, const char *a,
    size_t len);

/* Parse argv[1..]; 0, or -1 with a usage message in err. */
int cli_args_parse(const struct cli_optdef *defs, int ndefs, int argc,
    char **argv, const struct cli_args_out *out, char *err, size_t errlen);

/* The first positional word (the command group), skipping options and
 * their values; NULL if none. */
const char *cli_args_group(const struct cli_optdef *defs, int ndefs,
    int argc, char **argv);

#endif

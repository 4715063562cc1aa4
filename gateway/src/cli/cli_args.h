/*
 * cli_args.h - what every `postdoc` command family shares (cli.c,
 * consent_cli.c, privacy_cli.c, api_cli.c, evq_cli.c): the argument
 * parser (per-family option tables; --config, --json, -v/--verbose, and
 * --help where asked, global and accepted anywhere; "--opt value",
 * "--opt=value", "--" ending the options; repeatable options such as
 * --item and --optional kept in the order given, across each other) and
 * the family runner (cli_family_*): a family is a
 * table of {group, verb, nargs, options, needs, handler, synopsis} rows;
 * the runner picks the row, reports usage errors, opens the configuration,
 * the store and what else the row needs, runs it, and closes.
 * Exit 0 ok, 1 error, 2 usage.  It knows no command.
 */
#ifndef PD_CLI_ARGS_H
#define PD_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/util.h"

#define CLI_OK 0
#define CLI_ERR 1
#define CLI_USAGE 2
#define CLI_MAX_POS 6		/* group, verb, four arguments (purpose label) */
#define CLI_MAX_OPTS 32		/* options are bits of an unsigned */
#define CLI_MAX_REPEAT 64	/* occurrences of repeatable options */
#define CLI_DEFAULT_CONFIG "conf/postdoc.conf"

struct cli_optdef {
	const char *name;	/* "--account" */
	const char *alias;	/* "-o" or NULL */
	int has_value;
	int repeat;		/* may be given again: each value is kept,
				 * in order, with the other repeatable
				 * options' (--item A --optional B --item C) */
};

/* Where the parse goes: the caller's own fields. */
struct cli_args_out {
	const char **config;	/* --config value */
	int *json;		/* --json seen */
	int *verbose;		/* -v / --verbose seen */
	unsigned *seen;		/* bit i: option i given */
	const char **val;	/* val[i]: option i's value */
	int *npos;
	const char **pos;	/* positional words */
	int maxpos;
	int *help;		/* --help / -h seen; NULL: not an option */
	int *nrep;		/* repeatable options, in argv order: */
	int *rep_opt;		/* rep_opt[k] the option, */
	const char **rep_val;	/* rep_val[k] its value */
};

/* Index of the option named a[0..len) in defs, or -1. */
int cli_args_find(const struct cli_optdef *defs, int ndefs, const char *a,
    size_t len);

/* Parse argv[1..]; 0, or -1 with a usage message in err, or -2 for an
 * option that is gone (--no-send): an error, not a usage slip. */
int cli_args_parse(const struct cli_optdef *defs, int ndefs, int argc,
    char **argv, const struct cli_args_out *out, char *err, size_t errlen);

/* The first positional word (the command group), skipping options and
 * their values; NULL if none. */
const char *cli_args_group(const struct cli_optdef *defs, int ndefs,
    int argc, char **argv);

/* ---- command families ---- */

/* What a row needs before its handler runs; any of them loads the
 * configuration first.  0: nothing, not even the configuration. */
#define CLI_NEED_CONFIG 1u
#define CLI_NEED_STORE 2u
#define CLI_NEED_BLOBS 4u	/* the blob store under var_dir */
#define CLI_NEED_OUTBOUND 8u	/* plugins and the outbound queue */

struct cli_ctx;

struct cli_cmd {
	const char *group, *verb;	/* verb NULL: a one-word command */
	int nargs;			/* positional words after the verb */
	unsigned allowed, required;	/* bit i: option i */
	unsigned needs;			/* CLI_NEED_* */
	int (*run)(struct cli_ctx *c);	/* CLI_OK, CLI_ERR or CLI_USAGE */
	const char *synopsis;		/* help line, after "postdoc " */
};

struct cli_family {
	const struct cli_optdef *opts;
	int nopts;			/* at most CLI_MAX_OPTS */
	const struct cli_cmd *cmds;
	size_t ncmds;
	/* Optional, NULL for none.  pick: the family checks the words
	 * itself (its own usage messages) instead of the table.  open: its
	 * own setup once the row's needs are open (not for needs 0); -1
	 * with c->err set, or config errors already printed.  help: the
	 * root family's usage, printed for `help`, --help/-h and a bare
	 * `postdoc`; the root also names an unknown subcommand. */
	int (*pick)(struct cli_ctx *c, const struct cli_cmd **cmd_r);
	int (*open)(struct cli_ctx *c);
	void (*help)(FILE *out);
};

/* One run of one command; the runner owns and frees what it opened. */
struct cli_ctx {
	const struct cli_family *fam;
	const char *config;		/* --config, or NULL */
	int json;
	int verbose;			/* -v: INFO lines on stderr too */
	int help;
	unsigned seen;			/* bit i: option i given */
	const char *val[CLI_MAX_OPTS];	/* option values (borrowed argv);
					 * a repeated option: the last */
	int nrep;			/* repeatable options in order */
	int rep_opt[CLI_MAX_REPEAT];
	const char *rep_val[CLI_MAX_REPEAT];
	int npos;
	const char *pos[CLI_MAX_POS];
	struct pd_config *cfg;
	struct store *st;
	struct blob_store *bs;		/* CLI_NEED_BLOBS */
	struct plugin_host *ph;		/* CLI_NEED_OUTBOUND, or the handler */
	struct outq_ctx *q;		/* CLI_NEED_OUTBOUND */
	int64_t account_id;		/* the family's account lookup */
	char actor[64];			/* who runs it, for ledger and audit */
	char err[PD_ERRLEN];		/* printed once, by the runner */
};

/* The plugins and the outbound queue, for a row that needs them only
 * sometimes (a dry run loads no plugin and opens no queue): 0, or -1
 * with c->err.  Closed with the rest by the runner. */
int cli_ctx_open_outbound(struct cli_ctx *c);

/* 1 if argv's command group is one of the family's rows. */
int cli_family_handles(const struct cli_family *f, int argc, char **argv);

/* Parse, pick, open, run, close; the exit status. */
int cli_family_run(const struct cli_family *f, int argc, char **argv);

/* One "  postdoc SYNOPSIS" line per row. */
void cli_family_usage(const struct cli_family *f, FILE *out);

/* Format a usage error into c->err; returns CLI_USAGE. */
int cli_usage_err(struct cli_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A date or time the operator typed (pd_parse_when): 0, or CLI_USAGE
 * with c->err naming the option, the value and the forms taken. */
int cli_parse_when(struct cli_ctx *c, const char *opt, const char *v,
    int64_t *t_r);

/* v must be one of ok (NULL-terminated): 0, or CLI_USAGE with c->err
 * "invalid OPT \"V\" (a, b or c)". */
int cli_check_choice(struct cli_ctx *c, const char *opt, const char *v,
    const char *const *ok);

/* A list's column names, tab-separated, when stdout is a terminal and
 * not --json: a person reads it; a script reading a pipe gets rows only. */
void cli_list_header(const struct cli_ctx *c, const char *cols);

/* The store's account `name` into c->account_id: 0, or -1 with
 * c->err "no account \"NAME\"" (or the store's error). */
int cli_ctx_account(struct cli_ctx *c, const char *name);

/* s made safe for a terminal (controls and C1 become '?'); one of a few
 * rotating static buffers, so no printf may use more than 8 results. */
const char *cli_safe(const char *s);

#endif

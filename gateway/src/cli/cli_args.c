/*
 * cli_args.c - parses `postdoc` argument vectors against an option table,
 * and runs a command family's table (see cli_args.h).  The parser never
 * prints; the runner prints a command's error once, on stderr.  No
 * command lives here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli_args.h"
#include "dossier/dossier.h"
#include "lib/config.h"
#include "outbound/outq.h"
#include "plugin/plugin_host.h"
#include "lib/sanitize.h"

int
cli_args_find(const struct cli_optdef *defs, int ndefs, const char *a,
    size_t len)
{
	int i;

	for (i = 0; i < ndefs; i++)
		if ((strlen(defs[i].name) == len &&
		    strncmp(defs[i].name, a, len) == 0) ||
		    (defs[i].alias != NULL && strlen(defs[i].alias) == len &&
		    strncmp(defs[i].alias, a, len) == 0))
			return i;
	return -1;
}

/* "--flag=value" for an option without a value is a mistake. */
static int
o_takes_none(const struct cli_optdef *defs, int ndefs, const char *a,
    size_t len, const char *eq)
{
	int o = cli_args_find(defs, ndefs, a, len);

	return eq != NULL && o >= 0 && !defs[o].has_value;
}

/* One more value of a repeatable option, kept in argv order. */
static int
cli_args_repeat(const struct cli_args_out *out, int o, const char *v,
    char *err, size_t errlen)
{
	if (out->nrep == NULL || *out->nrep == CLI_MAX_REPEAT) {
		snprintf(err, errlen, "at most %d repeated options",
		    CLI_MAX_REPEAT);
		return -1;
	}
	out->rep_opt[*out->nrep] = o;
	out->rep_val[(*out->nrep)++] = v;
	return 0;
}

static int
cli_args_option(const struct cli_optdef *defs, int ndefs, int argc,
    char **argv, int *i, const struct cli_args_out *out, char *err,
    size_t errlen)
{
	const char *a = argv[*i], *eq = strchr(a, '='), *v;
	size_t len = eq != NULL ? (size_t)(eq - a) : strlen(a);
	int o;

	if (strcmp(a, "--json") == 0) {
		*out->json = 1;
		return 0;
	}
	if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
		*out->verbose = 1;
		return 0;
	}
	if (out->help != NULL && (strcmp(a, "--help") == 0 ||
	    strcmp(a, "-h") == 0)) {
		*out->help = 1;
		return 0;
	}
	if (o_takes_none(defs, ndefs, a, len, eq)) {
		snprintf(err, errlen, "option %s takes no value", a);
		return -1;
	}
	o = cli_args_find(defs, ndefs, a, len);
	/* The old name queued what the running server then delivered: it
	 * never meant "send nothing", so it is refused, not mapped. */
	if (o < 0 && len == 9 && strncmp(a, "--no-send", 9) == 0) {
		snprintf(err, errlen, "--no-send is gone: use --dry-run to "
		    "change nothing, or --queue-only to leave delivery to the "
		    "running server");
		return -2;
	}
	if (o < 0 && !(len == 8 && strncmp(a, "--config", 8) == 0)) {
		snprintf(err, errlen, "unknown option %s", a);
		return -1;
	}
	if (o >= 0 && !defs[o].has_value) {
		*out->seen |= 1u << o;
		return 0;
	}
	v = eq != NULL ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
	if (v == NULL) {
		snprintf(err, errlen, "option %s needs a value", a);
		return -1;
	}
	if (o < 0)
		*out->config = v;
	else if (defs[o].repeat && cli_args_repeat(out, o, v, err,
	    errlen) != 0)
		return -1;
	else {
		*out->seen |= 1u << o;
		out->val[o] = v;
	}
	return 0;
}

int
cli_args_parse(const struct cli_optdef *defs, int ndefs, int argc,
    char **argv, const struct cli_args_out *out, char *err, size_t errlen)
{
	int i, rc, opts_done = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!opts_done && strcmp(a, "--") == 0) {
			opts_done = 1;
			continue;
		}
		if (opts_done || a[0] != '-' || a[1] == '\0') {
			if (*out->npos == out->maxpos) {
				snprintf(err, errlen, "unexpected argument %s", a);
				return -1;
			}
			out->pos[(*out->npos)++] = a;
			continue;
		}
		if ((rc = cli_args_option(defs, ndefs, argc, argv, &i, out,
		    err, errlen)) != 0)
			return rc;
	}
	return 0;
}

const char *
cli_args_group(const struct cli_optdef *defs, int ndefs, int argc,
    char **argv)
{
	int i, o;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		size_t len = strcspn(a, "=");

		if (a[0] != '-' || a[1] == '\0')
			return a;
		if (strcmp(a, "--json") == 0 || strcmp(a, "--verbose") == 0 ||
		    strcmp(a, "-v") == 0 || a[len] == '=')
			continue;
		o = cli_args_find(defs, ndefs, a, len);
		if ((o >= 0 && defs[o].has_value) ||
		    strcmp(a, "--config") == 0)
			i++;
	}
	return NULL;
}

/* ---- command families ---- */

int
cli_family_handles(const struct cli_family *f, int argc, char **argv)
{
	const char *g = cli_args_group(f->opts, f->nopts, argc, argv);
	size_t i;

	for (i = 0; g != NULL && i < f->ncmds; i++)
		if (strcmp(f->cmds[i].group, g) == 0)
			return 1;
	return 0;
}

void
cli_family_usage(const struct cli_family *f, FILE *out)
{
	size_t i;

	for (i = 0; i < f->ncmds; i++)
		fprintf(out, "  postdoc %s\n", f->cmds[i].synopsis);
}

int
cli_usage_err(struct cli_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return CLI_USAGE;
}

/* The row's argument count and options. */
static int
cli_cmd_check(struct cli_ctx *c, const struct cli_cmd *cmd)
{
	const struct cli_optdef *opts = c->fam->opts;
	int o, words = cmd->verb != NULL ? 2 : 1;

	if (c->npos != words + cmd->nargs)
		return cli_usage_err(c, "usage: postdoc %s", cmd->synopsis);
	for (o = 0; o < c->fam->nopts; o++) {
		if ((c->seen & (1u << o)) && !(cmd->allowed & (1u << o)))
			return cli_usage_err(c, "option %s is not valid here",
			    opts[o].name);
		if ((cmd->required & (1u << o)) && !(c->seen & (1u << o)))
			return cli_usage_err(c, "option %s is required",
			    opts[o].name);
	}
	return 0;
}

/* The first row of the group whose verb matches (or has none). */
static int
cli_family_pick(struct cli_ctx *c, const struct cli_cmd **cmd_r)
{
	const struct cli_family *f = c->fam;
	size_t i;
	int group = 0;

	for (i = 0; i < f->ncmds && c->npos > 0; i++) {
		const struct cli_cmd *k = &f->cmds[i];

		if (strcmp(k->group, c->pos[0]) != 0)
			continue;
		group = 1;
		if (k->verb == NULL ||
		    (c->npos > 1 && strcmp(k->verb, c->pos[1]) == 0)) {
			*cmd_r = k;
			return cli_cmd_check(c, k);
		}
	}
	if (!group)
		return cli_usage_err(c, "unknown command \"%s\"",
		    c->npos > 0 ? cli_safe(c->pos[0]) : "");
	if (f->help == NULL)
		return cli_usage_err(c, "unknown %s subcommand", c->pos[0]);
	return cli_usage_err(c, "unknown %s subcommand \"%s\"", c->pos[0],
	    c->npos > 1 ? cli_safe(c->pos[1]) : "");
}

static int
cli_ctx_load_config(struct cli_ctx *c)
{
	const char *path = c->config;
	char errbuf[8192];
	size_t n;

	/* Only the implicit default may be absent; an explicit file must be
	 * there, or the operator would silently run on defaults. */
	if (path == NULL && access(CLI_DEFAULT_CONFIG, F_OK) == 0)
		path = CLI_DEFAULT_CONFIG;
	if (config_load(path, &c->cfg, errbuf, sizeof(errbuf)) == 0)
		return 0;
	/* config.c's text is already "file:line: message" lines. */
	n = strlen(errbuf);
	fputs(n > 0 ? errbuf : "configuration could not be loaded", stderr);
	if (n == 0 || errbuf[n - 1] != '\n')
		fputc('\n', stderr);
	return -1;
}

/* What the row needs, in order; -1 with c->err set (or config printed). */
static int
cli_ctx_open(struct cli_ctx *c, const struct cli_cmd *cmd)
{
	/* An operator command's stderr is for what needs the operator's
	 * eye: errors and warnings.  Plugins' "loaded" lines and the
	 * queue's progress are INFO, shown with -v (serve takes its level
	 * from server.log_level). */
	pd_log_set_level(c->verbose ? PD_LOG_INFO : PD_LOG_WARN);
	if (cmd->needs == 0)
		return 0;
	if (cli_ctx_load_config(c) != 0)
		return -1;
	pd_var_owner_init(c->cfg->var_dir);
	/* The store and blobs through the service layer's door: the CLI
	 * holds them as handles for services and never opens SQL itself. */
	if ((cmd->needs & CLI_NEED_STORE) && dossier_conn_open(c->cfg, &c->st,
	    c->err) != 0)
		return -1;
	if ((cmd->needs & CLI_NEED_BLOBS) && dossier_blobs_open(c->cfg, &c->bs,
	    c->err) != 0)
		return -1;
	/* Outbound commands queue (DKIM signs) and deliver. */
	if ((cmd->needs & CLI_NEED_OUTBOUND) && cli_ctx_open_outbound(c) != 0)
		return -1;
	return c->fam->open != NULL ? c->fam->open(c) : 0;
}

int
cli_ctx_open_outbound(struct cli_ctx *c)
{
	if (c->q != NULL)
		return 0;
	return plugin_host_load(c->cfg, &c->ph, c->err) != 0 ||
	    outq_ctx_new(c->cfg, c->ph, &c->q, c->err) != 0 ? -1 : 0;
}

static void
cli_ctx_close(struct cli_ctx *c)
{
	outq_ctx_free(&c->q);
	plugin_host_free(&c->ph);
	dossier_blobs_close(&c->bs);
	dossier_conn_close(&c->st);
	config_free(&c->cfg);
}

static int
cli_ctx_run(struct cli_ctx *c, const struct cli_cmd *cmd)
{
	int rc;

	if (cli_ctx_open(c, cmd) != 0)
		return CLI_ERR;
	rc = cmd->run(c);
	/* A full disk or closed pipe on stdout is a failure, not success. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (rc == CLI_OK)
			snprintf(c->err, sizeof(c->err), "writing output: %s",
			    strerror(errno));
		rc = CLI_ERR;
	}
	return rc;
}

/* The root family's help: -1 when argv asks for none. */
static int
cli_family_help(struct cli_ctx *c)
{
	if (c->fam->help == NULL)
		return -1;
	if (c->help || (c->npos > 0 && strcmp(c->pos[0], "help") == 0)) {
		c->fam->help(stdout);
		return CLI_OK;
	}
	if (c->npos == 0) {
		c->fam->help(stderr);
		return CLI_USAGE;
	}
	return -1;
}

int
cli_family_run(const struct cli_family *f, int argc, char **argv)
{
	struct cli_ctx c;
	struct cli_args_out out = { &c.config, &c.json, &c.verbose, &c.seen,
	    c.val, &c.npos, c.pos, CLI_MAX_POS, f->help != NULL ? &c.help :
	    NULL, &c.nrep, c.rep_opt, c.rep_val };
	const struct cli_cmd *cmd = NULL;
	int rc, help;

	if (f->nopts > CLI_MAX_OPTS)
		pd_fatal("a command family with %d options", f->nopts);
	memset(&c, 0, sizeof(c));
	c.fam = f;
	rc = cli_args_parse(f->opts, f->nopts, argc, argv, &out, c.err,
	    sizeof(c.err));
	rc = rc == -2 ? CLI_ERR : rc != 0 ? CLI_USAGE : 0;
	if (rc == 0 && (help = cli_family_help(&c)) >= 0)
		return help;
	if (rc == 0)
		rc = (f->pick != NULL ? f->pick : cli_family_pick)(&c, &cmd);
	if (rc == 0)
		rc = cli_ctx_run(&c, cmd);
	cli_ctx_close(&c);
	if (rc != CLI_OK && c.err[0] != '\0')
		fprintf(stderr, "postdoc: %s\n", c.err);
	if (rc == CLI_USAGE)
		fputs("try 'postdoc help'\n", stderr);
	return rc;
}

int
cli_parse_when(struct cli_ctx *c, const char *opt, const char *v,
    int64_t *t_r)
{
	if (pd_parse_when(v, t_r) == 0)
		return 0;
	return cli_usage_err(c, "invalid %s \"%s\": not " PD_WHEN_FORMS, opt,
	    cli_safe(v));
}

int
cli_check_choice(struct cli_ctx *c, const char *opt, const char *v,
    const char *const *ok)
{
	char list[256];
	size_t i, n = 0, len = 0;

	for (i = 0; ok[i] != NULL; i++)
		if (strcmp(v, ok[i]) == 0)
			return 0;
	for (n = 0; ok[n] != NULL; n++)
		;
	list[0] = '\0';
	for (i = 0; i < n && len < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
		    i == 0 ? "" : i + 1 == n ? " or " : ", ", ok[i]);
	return cli_usage_err(c, "invalid %s \"%s\" (%s)", opt, cli_safe(v),
	    list);
}

void
cli_list_header(const struct cli_ctx *c, const char *cols)
{
	if (!c->json && isatty(STDOUT_FILENO))
		printf("%s\n", cols);
}

int
cli_ctx_account(struct cli_ctx *c, const char *name)
{
	struct store_account a;
	int rc = dossier_account_get(c->st, name, &a, c->err);

	if (rc == 0)
		snprintf(c->err, sizeof(c->err), "no account \"%.64s\"", name);
	if (rc != 1)
		return -1;
	c->account_id = a.id;
	return 0;
}

/*
 * Strings from the store came from peers (subjects, filenames, event
 * details): for a terminal, controls and C1 (U+0080..U+009F) become '?'
 * so a crafted subject cannot drive the operator's terminal.  Rotating
 * static buffers: the CLI is single-threaded, and no one printf uses more
 * than CLI_SAFE_BUFS results.
 */
#define CLI_SAFE_BUFS 8
const char *
cli_safe(const char *s)
{
	static char bufs[CLI_SAFE_BUFS][2048];
	static unsigned next;
	char *b = bufs[next++ % CLI_SAFE_BUFS];
	size_t i, o = 0;

	if (!sanitize_utf8_valid(s, strlen(s))) {
		pd_ascii_clean(b, sizeof(bufs[0]), s);
		return b;
	}
	for (i = 0; s[i] != '\0' && o + 1 < sizeof(bufs[0]); i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((unsigned char)s[i] == 0xc2 &&
		    ((unsigned char)s[i + 1] & 0xe0) == 0x80) {
			b[o++] = '?';
			i++;
			continue;
		}
		b[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	b[o] = '\0';
	return b;
}

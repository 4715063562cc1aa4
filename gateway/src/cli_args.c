/*
 * cli_args.c - parses `postdoc` argument vectors against an option table
 * (see cli_args.h).  Never prints; errors are returned as text.
 */
#include <stdio.h>
#include <string.h>

#include "cli_args.h"

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
	int i, opts_done = 0;

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
		if (cli_args_option(defs, ndefs, argc, argv, &i, out, err,
		    errlen) != 0)
			return -1;
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
		if (strcmp(a, "--json") == 0 || a[len] == '=')
			continue;
		o = cli_args_find(defs, ndefs, a, len);
		if ((o >= 0 && defs[o].has_value) ||
		    strcmp(a, "--config") == 0)
			i++;
	}
	return NULL;
}

/*
 * api_cli.c - `token create|list|revoke` and `api routes`, a command
 * family (cli_args.h).  A token is printed once, at creation; minting,
 * listing and revoking are auth.c's, the one door to tokens that the
 * API's own check uses too.  No SQL, no token format here.
 * Exit 0 ok, 1 error, 2 usage.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api/api.h"
#include "api_cli.h"
#include "auth/auth.h"
#include "cli_args.h"
#include "dossier/dossier.h"
#include "lib/util.h"

enum ac_opt { AO_ACCOUNT, AO_NAME, AO_COUNT };

static const struct cli_optdef ac_opts[AO_COUNT] = {
	[AO_ACCOUNT] = { "--account", NULL, 1 },
	[AO_NAME] = { "--name", NULL, 1 },
};

#define A(x) (1u << (x))

static int ac_token_create(struct cli_ctx *c);
static int ac_token_list(struct cli_ctx *c);
static int ac_token_revoke(struct cli_ctx *c);
static int ac_routes(struct cli_ctx *c);

static const struct cli_cmd ac_cmds[] = {
	{ "token", "create", 0, A(AO_ACCOUNT) | A(AO_NAME), A(AO_ACCOUNT) |
	    A(AO_NAME), CLI_NEED_STORE, ac_token_create,
	    "token create --account A --name NAME [--json]   (printed once)" },
	{ "token", "list", 0, A(AO_ACCOUNT), A(AO_ACCOUNT), CLI_NEED_STORE,
	    ac_token_list,
	    "token list --account A [--json]" },
	{ "token", "revoke", 0, A(AO_ACCOUNT) | A(AO_NAME), A(AO_ACCOUNT) |
	    A(AO_NAME), CLI_NEED_STORE, ac_token_revoke,
	    "token revoke --account A --name NAME" },
	{ "api", "routes", 0, 0, 0, 0, ac_routes,
	    "api routes   (METHOD PATH of every route the API answers)" },
};

static int ac_open(struct cli_ctx *c);

const struct cli_family api_cli_family = {
	ac_opts, AO_COUNT, ac_cmds, sizeof(ac_cmds) / sizeof(ac_cmds[0]),
	NULL, ac_open, NULL
};

/* Every token command is scoped to its --account. */
static int
ac_open(struct cli_ctx *c)
{
	if (c->val[AO_ACCOUNT] == NULL)
		return 0;
	return cli_ctx_account(c, c->val[AO_ACCOUNT]);
}

/* ---- commands ---- */

static int
ac_token_create(struct cli_ctx *c)
{
	char tok[AUTH_TOKEN_LEN + 1], prefix[17];
	const char *name = c->val[AO_NAME];
	int64_t id;

	if (!dossier_valid_name(name))
		return cli_usage_err(c, "--name is 1-63 of A-Z a-z 0-9 _ . -");
	if (auth_token_mint(c->st, c->account_id, name, tok, prefix, &id,
	    c->err) != 0)
		return CLI_ERR;
	if (c->json)
		printf("{\"id\": %lld, \"account\": \"%s\", \"name\": \"%s\", "
		    "\"prefix\": \"%s\", \"token\": \"%s\"}\n", (long long)id,
		    c->val[AO_ACCOUNT], name, prefix, tok);
	else
		printf("%s\n", tok);
	if (!c->json && isatty(STDOUT_FILENO))
		fprintf(stderr, "postdoc: this token is shown once; it "
		    "cannot be recovered, only revoked\n");
	return CLI_OK;
}

static const char *
ac_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL)
		return "-";
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static int
ac_token_row_cb(const struct store_api_token *t, void *ctx)
{
	json_t *arr = ctx;
	char a[32], b[32], r[32];

	if (arr != NULL) {
		json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:I, s:o,"
		    " s:o}", "id", (json_int_t)t->id, "name", t->name, "prefix",
		    t->prefix, "created", (json_int_t)t->created, "last_used",
		    t->last_used ? json_integer(t->last_used) : json_null(),
		    "revoked", t->revoked ? json_integer(t->revoked) :
		    json_null()));
		return 0;
	}
	printf("%s\t%s\tcreated %s\tlast used %s\t%s%s\n", t->name, t->prefix,
	    ac_time(t->created, a, sizeof(a)), ac_time(t->last_used, b,
	    sizeof(b)), t->revoked ? "revoked " : "live",
	    t->revoked ? ac_time(t->revoked, r, sizeof(r)) : "");
	return 0;
}

static int
ac_token_list(struct cli_ctx *c)
{
	json_t *arr = c->json ? json_array() : NULL;

	cli_list_header(c, "NAME\tPREFIX\tCREATED\tLAST USED\tSTATE");
	if (auth_token_list(c->st, c->account_id, ac_token_row_cb, arr,
	    c->err) != 0) {
		json_decref(arr);
		return CLI_ERR;
	}
	if (arr != NULL) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(arr);
	}
	return CLI_OK;
}

static int
ac_token_revoke(struct cli_ctx *c)
{
	int rc = auth_token_revoke(c->st, c->account_id, c->val[AO_NAME],
	    pd_now(), c->err);

	if (rc < 0)
		return CLI_ERR;
	if (rc == 0) {
		snprintf(c->err, sizeof(c->err), "no live token \"%.64s\" in "
		    "account %.64s", c->val[AO_NAME], c->val[AO_ACCOUNT]);
		return CLI_ERR;
	}
	printf("token %s revoked\n", c->val[AO_NAME]);
	return CLI_OK;
}

static int
ac_routes(struct cli_ctx *c)
{
	const char *m, *p;
	size_t i;

	(void)c;
	for (i = 0; api_route_at(i, &m, &p); i++)
		printf("%s %s\n", m, p);
	return CLI_OK;
}

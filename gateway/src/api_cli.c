/*
 * api_cli.c - `token create|list|revoke` and `api routes`, as a table
 * like cli.c's.  A token is printed once, at creation; the store keeps
 * its prefix and the SHA-256 of the whole (store_api.c).  No SQL here.
 * Exit 0 ok, 1 error, 2 usage.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "api.h"
#include "api_cli.h"
#include "cli_args.h"
#include "config.h"
#include "store.h"
#include "store_api.h"
#include "util.h"

#define AC_DEFAULT_CONFIG "conf/postdoc.conf"
#define AC_OK 0
#define AC_ERR 1
#define AC_USAGE 2
#define AC_MAX_POS 4

enum ac_opt { AO_ACCOUNT, AO_NAME, AO_COUNT };

static const struct cli_optdef ac_opts[AO_COUNT] = {
	[AO_ACCOUNT] = { "--account", NULL, 1 },
	[AO_NAME] = { "--name", NULL, 1 },
};

struct ac {
	const char *config;
	int json;
	unsigned seen;
	const char *val[AO_COUNT];
	int npos;
	const char *pos[AC_MAX_POS];
	struct pd_config *cfg;
	struct store *st;
	int64_t account_id;
	char err[PD_ERRLEN];
};

#define A(x) (1u << (x))

struct ac_cmd {
	const char *group, *verb;
	unsigned allowed, required;
	int need_store;
	int (*run)(struct ac *c);
	const char *synopsis;
};

static int ac_token_create(struct ac *c);
static int ac_token_list(struct ac *c);
static int ac_token_revoke(struct ac *c);
static int ac_routes(struct ac *c);

static const struct ac_cmd ac_cmds[] = {
	{ "token", "create", A(AO_ACCOUNT) | A(AO_NAME), A(AO_ACCOUNT) |
	    A(AO_NAME), 1, ac_token_create,
	    "token create --account A --name NAME [--json]   (printed once)" },
	{ "token", "list", A(AO_ACCOUNT), A(AO_ACCOUNT), 1, ac_token_list,
	    "token list --account A [--json]" },
	{ "token", "revoke", A(AO_ACCOUNT) | A(AO_NAME), A(AO_ACCOUNT) |
	    A(AO_NAME), 1, ac_token_revoke,
	    "token revoke --account A --name NAME" },
	{ "api", "routes", 0, 0, 0, ac_routes,
	    "api routes   (METHOD PATH of every route the API answers)" },
};
#define AC_NCMDS (sizeof(ac_cmds) / sizeof(ac_cmds[0]))

void
api_cli_usage(FILE *out)
{
	size_t i;

	for (i = 0; i < AC_NCMDS; i++)
		fprintf(out, "  postdoc %s\n", ac_cmds[i].synopsis);
}

int
api_cli_handles(int argc, char **argv)
{
	const char *g = cli_args_group(ac_opts, AO_COUNT, argc, argv);

	return g != NULL && (strcmp(g, "token") == 0 || strcmp(g, "api") == 0);
}

static int ac_usage(struct ac *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
ac_usage(struct ac *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return AC_USAGE;
}

static int
ac_pick(struct ac *c, const struct ac_cmd **cmd_r)
{
	size_t i;
	int o;

	for (i = 0; i < AC_NCMDS; i++) {
		const struct ac_cmd *k = &ac_cmds[i];

		if (c->npos < 2 || strcmp(k->group, c->pos[0]) != 0 ||
		    strcmp(k->verb, c->pos[1]) != 0)
			continue;
		if (c->npos != 2)
			return ac_usage(c, "usage: postdoc %s", k->synopsis);
		for (o = 0; o < AO_COUNT; o++) {
			if ((c->seen & A(o)) && !(k->allowed & A(o)))
				return ac_usage(c, "option %s is not valid "
				    "here", ac_opts[o].name);
			if ((k->required & A(o)) && !(c->seen & A(o)))
				return ac_usage(c, "option %s is required",
				    ac_opts[o].name);
		}
		*cmd_r = k;
		return 0;
	}
	return ac_usage(c, "unknown %s subcommand", c->npos > 0 ? c->pos[0] :
	    "token");
}

static int
ac_open(struct ac *c)
{
	const char *path = c->config;
	char errbuf[8192];
	struct store_account a;
	int rc;

	if (path == NULL && access(AC_DEFAULT_CONFIG, F_OK) == 0)
		path = AC_DEFAULT_CONFIG;
	if (config_load(path, &c->cfg, errbuf, sizeof(errbuf)) != 0) {
		fputs(errbuf[0] != '\0' ? errbuf : "configuration could not be "
		    "loaded\n", stderr);
		return -1;
	}
	if (store_open(c->cfg->db_path, c->cfg->sync_mode, &c->st, c->err) != 0)
		return -1;
	if (c->val[AO_ACCOUNT] == NULL)
		return 0;
	rc = store_account_get(c->st, c->val[AO_ACCOUNT], &a, c->err);
	if (rc == 0)
		snprintf(c->err, sizeof(c->err), "no account \"%.64s\"",
		    c->val[AO_ACCOUNT]);
	if (rc != 1)
		return -1;
	c->account_id = a.id;
	return 0;
}

/* ---- commands ---- */

/* RFC 4648 5 base64url without padding: 32 bytes -> 43 characters. */
static void
ac_b64url(const unsigned char *in, char out[44])
{
	unsigned char b64[48];
	int i, n = EVP_EncodeBlock(b64, in, 32);

	for (i = 0; i < n && i < 43; i++)
		out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' :
		    (char)b64[i];
	out[43] = '\0';
}

static int
ac_token_create(struct ac *c)
{
	unsigned char pre[6], secret[32];
	char hexp[13], b64[44], tok[API_TOKEN_LEN + 1], prefix[17], hash[65];
	const char *name = c->val[AO_NAME];
	size_t n = strlen(name);
	int64_t id;

	if (n == 0 || n > 63 || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789_.-") != n)
		return ac_usage(c, "--name is 1-63 of A-Z a-z 0-9 _ . -");
	if (RAND_bytes(pre, sizeof(pre)) != 1 ||
	    RAND_bytes(secret, sizeof(secret)) != 1) {
		snprintf(c->err, sizeof(c->err), "no randomness");
		return AC_ERR;
	}
	pd_hex(hexp, pre, sizeof(pre));
	ac_b64url(secret, b64);
	snprintf(tok, sizeof(tok), "pdk_%s_%s", hexp, b64);
	if (!api_token_prefix(tok, prefix))
		pd_fatal("token shape");
	api_token_hash(tok, hash);
	if (store_api_token_add(c->st, c->account_id, name, prefix, hash, &id,
	    c->err) != 0)
		return AC_ERR;
	if (c->json)
		printf("{\"id\": %lld, \"account\": \"%s\", \"name\": \"%s\", "
		    "\"prefix\": \"%s\", \"token\": \"%s\"}\n", (long long)id,
		    c->val[AO_ACCOUNT], name, prefix, tok);
	else
		printf("%s\n", tok);
	if (!c->json && isatty(STDOUT_FILENO))
		fprintf(stderr, "postdoc: this token is shown once; it "
		    "cannot be recovered, only revoked\n");
	return AC_OK;
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
ac_token_list(struct ac *c)
{
	json_t *arr = c->json ? json_array() : NULL;

	if (store_api_token_list(c->st, c->account_id, ac_token_row_cb, arr,
	    c->err) != 0) {
		json_decref(arr);
		return AC_ERR;
	}
	if (arr != NULL) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(arr);
	}
	return AC_OK;
}

static int
ac_token_revoke(struct ac *c)
{
	int rc = store_api_token_revoke(c->st, c->account_id, c->val[AO_NAME],
	    pd_now(), c->err);

	if (rc < 0)
		return AC_ERR;
	if (rc == 0) {
		snprintf(c->err, sizeof(c->err), "no live token \"%.64s\" in "
		    "account %.64s", c->val[AO_NAME], c->val[AO_ACCOUNT]);
		return AC_ERR;
	}
	printf("token %s revoked\n", c->val[AO_NAME]);
	return AC_OK;
}

static int
ac_routes(struct ac *c)
{
	const char *m, *p;
	size_t i;

	(void)c;
	for (i = 0; api_route_at(i, &m, &p); i++)
		printf("%s %s\n", m, p);
	return AC_OK;
}

int
api_cli_main(int argc, char **argv)
{
	struct ac c;
	const struct ac_cmd *cmd = NULL;
	struct cli_args_out out = { &c.config, &c.json, &c.seen, c.val,
	    &c.npos, c.pos, AC_MAX_POS, NULL };
	int rc = 0;

	memset(&c, 0, sizeof(c));
	if (cli_args_parse(ac_opts, AO_COUNT, argc, argv, &out, c.err,
	    sizeof(c.err)) != 0)
		rc = AC_USAGE;
	if (rc == 0)
		rc = ac_pick(&c, &cmd);
	if (rc == 0 && cmd->need_store && ac_open(&c) != 0)
		rc = AC_ERR;
	if (rc == 0)
		rc = cmd->run(&c);
	if (fflush(stdout) != 0 && rc == AC_OK)
		rc = AC_ERR;
	store_close(&c.st);
	config_free(&c.cfg);
	if (rc != AC_OK && c.err[0] != '\0')
		fprintf(stderr, "postdoc: %s\n", c.err);
	if (rc == AC_USAGE)
		fputs("try 'postdoc help'\n", stderr);
	return rc;
}

/*
 * privacy_cli.c - the operator commands of data subjects' rights and
 * retention (subject export|erase|rectify, purge, audit list), a command
 * family (cli_args.h).  It owns no rules (privacy.c, privacy_audit.c)
 * and calls no store function: accounts come from the dossier service.
 * Exit 0 ok, 1 error or not found, 2 usage.
 */
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_args.h"
#include "dossier/dossier.h"
#include "lib/util.h"
#include "privacy/privacy.h"
#include "privacy/privacy_audit.h"
#include "privacy_cli.h"

enum pc_opt {
	PO_ACCOUNT, PO_OPERATOR, PO_OUTPUT, PO_NAME, PO_NEW_EMAIL, PO_MINOR,
	PO_DRY_RUN, PO_NOW, PO_MINORS, PO_COUNT
};

static const struct cli_optdef pc_opts[PO_COUNT] = {
	[PO_ACCOUNT] = { "--account", NULL, 1 },
	[PO_OPERATOR] = { "--operator", NULL, 1 },
	[PO_OUTPUT] = { "--output", "-o", 1 },
	[PO_NAME] = { "--name", NULL, 1 },
	[PO_NEW_EMAIL] = { "--new-email", NULL, 1 },
	[PO_MINOR] = { "--minor", NULL, 0 },
	[PO_DRY_RUN] = { "--dry-run", NULL, 0 },
	[PO_NOW] = { "--now", NULL, 1 },
	[PO_MINORS] = { "--minors", NULL, 0 },
};

#define P(x) (1u << (x))
#define PC_NEEDS (CLI_NEED_STORE | CLI_NEED_BLOBS)

static int pc_export(struct cli_ctx *c);
static int pc_erase(struct cli_ctx *c);
static int pc_rectify(struct cli_ctx *c);
static int pc_purge(struct cli_ctx *c);
static int pc_audit_list(struct cli_ctx *c);

static const struct cli_cmd pc_cmds[] = {
	{ "subject", "export", 1, P(PO_ACCOUNT) | P(PO_OPERATOR) |
	    P(PO_OUTPUT), P(PO_OUTPUT), PC_NEEDS, pc_export,
	    "subject export EMAIL [--account A] [--operator NAME] -o FILE.tar"
	    "   (access, portability)" },
	{ "subject", "erase", 1, P(PO_ACCOUNT) | P(PO_OPERATOR) | P(PO_MINOR),
	    0, PC_NEEDS, pc_erase, "subject erase EMAIL [--account A] "
	    "[--operator NAME] [--minor]   (erasure, objection: never "
	    "marketed again)" },
	{ "subject", "rectify", 1, P(PO_ACCOUNT) | P(PO_OPERATOR) |
	    P(PO_NAME) | P(PO_NEW_EMAIL), 0, PC_NEEDS, pc_rectify,
	    "subject rectify EMAIL [--account A] [--name NAME] "
	    "[--new-email EMAIL] [--operator NAME]" },
	{ "purge", NULL, 0, P(PO_DRY_RUN) | P(PO_NOW) | P(PO_MINORS) |
	    P(PO_OPERATOR), 0, PC_NEEDS, pc_purge,
	    "purge [--dry-run] [--now YYYY-MM-DD|EPOCH] [--minors]   "
	    "(retention)" },
	{ "audit", "list", 0, 0, 0, PC_NEEDS, pc_audit_list,
	    "audit list [--json]   (exports, erasures, rectifications, "
	    "consent changes, purges)" },
};

static int pc_open(struct cli_ctx *c);

const struct cli_family privacy_cli_family = {
	pc_opts, PO_COUNT, pc_cmds, sizeof(pc_cmds) / sizeof(pc_cmds[0]),
	NULL, pc_open, NULL
};

/* ---- environment ---- */

/* Who did it: --operator, else the human behind sudo, else us. */
static int
pc_open(struct cli_ctx *c)
{
	const char *who = c->val[PO_OPERATOR];
	struct passwd *pw = getpwuid(getuid());

	if (who == NULL)
		who = getenv("SUDO_USER");
	if (who == NULL)
		who = getenv("USER");
	if (who == NULL)
		who = pw != NULL ? pw->pw_name : "?";
	pd_ascii_clean(c->actor, sizeof(c->actor), who);
	return 0;
}

static int
pc_account(struct cli_ctx *c)
{
	struct store_account a;
	int rc;

	c->account_id = 0;
	if (c->val[PO_ACCOUNT] == NULL)
		return 0;
	rc = dossier_account_get(c->st, c->val[PO_ACCOUNT], &a, c->err);
	if (rc == 0)
		snprintf(c->err, sizeof(c->err), "not found: no account "
		    "\"%.64s\"", c->val[PO_ACCOUNT]);
	if (rc != 1)
		return -1;
	c->account_id = a.id;
	return 0;
}

static int
pc_email_ok(struct cli_ctx *c, const char *s)
{
	size_t n = strlen(s);
	const char *at = strchr(s, '@');

	if (n == 0 || n > 254 || at == NULL || at == s || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL || strpbrk(s, " \t\r\n<>\"") != NULL) {
		snprintf(c->err, sizeof(c->err), "not a valid address: %.100s",
		    s);
		return 0;
	}
	return 1;
}

static void
pc_env(struct cli_ctx *c, struct privacy_env *env)
{
	env->cfg = c->cfg;
	env->st = c->st;
	env->bs = c->bs;
	env->actor = c->actor;
}

/* The report as JSON, or one "key: value" line per entry. */
static void
pc_report(struct cli_ctx *c, const char *head, json_t *rep)
{
	const char *k;
	json_t *v;

	if (c->json) {
		json_dumpf(rep, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		return;
	}
	printf("%s\n", head);
	json_object_foreach(rep, k, v) {
		char *s = json_is_string(v) ? NULL : json_dumps(v,
		    JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

		printf("  %s: %s\n", k, s != NULL ? s : json_string_value(v));
		free(s);
	}
}

/* ---- commands ---- */

static int
pc_subject_common(struct cli_ctx *c, struct privacy_env *env)
{
	if (!pc_email_ok(c, c->pos[2]) || pc_account(c) != 0)
		return -1;
	pc_env(c, env);
	return 0;
}

static int
pc_export(struct cli_ctx *c)
{
	struct privacy_env env;
	json_t *rep = NULL;

	if (pc_subject_common(c, &env) != 0 || privacy_export(&env,
	    c->account_id, c->val[PO_ACCOUNT], c->pos[2], c->val[PO_OUTPUT],
	    &rep, c->err) != 0)
		return CLI_ERR;
	pc_report(c, "exported to archive:", rep);
	json_decref(rep);
	return CLI_OK;
}

static int
pc_erase(struct cli_ctx *c)
{
	struct privacy_env env;
	json_t *rep = NULL;
	int rc;

	if (pc_subject_common(c, &env) != 0)
		return CLI_ERR;
	rc = privacy_erase(&env, c->account_id, c->val[PO_ACCOUNT], c->pos[2],
	    (c->seen & P(PO_MINOR)) ? "minor" : "request", &rep, c->err);
	if (rc != 0)
		return CLI_ERR;
	pc_report(c, "erased (held data, if any, is listed under held):",
	    rep);
	json_decref(rep);
	return CLI_OK;
}

static int
pc_rectify(struct cli_ctx *c)
{
	struct privacy_env env;
	json_t *rep = NULL;

	if (!(c->seen & (P(PO_NAME) | P(PO_NEW_EMAIL))))
		return cli_usage_err(c, "rectify needs --name or --new-email");
	if (pc_subject_common(c, &env) != 0 || (c->val[PO_NEW_EMAIL] != NULL
	    && !pc_email_ok(c, c->val[PO_NEW_EMAIL])))
		return CLI_ERR;
	if (privacy_rectify(&env, c->account_id, c->val[PO_ACCOUNT],
	    c->pos[2], c->val[PO_NAME], c->val[PO_NEW_EMAIL], &rep, c->err)
	    != 0)
		return CLI_ERR;
	pc_report(c, "rectified:", rep);
	json_decref(rep);
	return CLI_OK;
}

static int
pc_purge(struct cli_ctx *c)
{
	struct privacy_env env;
	json_t *rep = NULL;
	int64_t now = pd_now();
	int rc;

	if (c->val[PO_NOW] != NULL &&
	    (rc = cli_parse_when(c, "--now", c->val[PO_NOW], &now)) != 0)
		return rc;
	pc_env(c, &env);
	if (privacy_purge(&env, now, (c->seen & P(PO_DRY_RUN)) != 0,
	    (c->seen & P(PO_MINORS)) != 0, 1, &rep, c->err) != 0)
		return CLI_ERR;
	pc_report(c, (c->seen & P(PO_DRY_RUN)) ? "would purge:" : "purged:",
	    rep);
	json_decref(rep);
	return CLI_OK;
}

struct pc_audit {
	json_t *arr;
};

static int
pc_audit_row(const struct store_audit_row *r, void *ctx)
{
	struct pc_audit *a = ctx;
	char when[32];
	time_t t = (time_t)r->at;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (a->arr != NULL) {
		json_t *d = json_loads(r->detail, 0, NULL);

		json_array_append_new(a->arr, json_pack("{s:I, s:s, s:I, s:s,"
		    " s:s, s:s, s:s, s:o}", "id", (json_int_t)r->id, "time",
		    when, "at", (json_int_t)r->at, "actor", r->actor, "action",
		    r->action, "account", r->account, "subject_hash",
		    r->subject_hash, "detail", d != NULL ? d :
		    json_string(r->detail)));
	} else {
		char safe[2048];

		pd_ascii_clean(safe, sizeof(safe), r->detail);
		printf("%" PRId64 "\t%s\t%s\t%s\t%s\t%.16s\t%s\n", r->id, when,
		    r->actor, r->action, r->account[0] ? r->account : "-",
		    r->subject_hash[0] ? r->subject_hash : "-", safe);
	}
	return 0;
}

static int
pc_audit_list(struct cli_ctx *c)
{
	struct pc_audit a = { c->json ? json_array() : NULL };
	int rc;

	cli_list_header(c, "ID\tTIME\tACTOR\tACTION\tACCOUNT\tSUBJECT\t"
	    "DETAIL");
	rc = privacy_audit_list(c->st, pc_audit_row, &a, c->err);

	if (a.arr != NULL) {
		json_dumpf(a.arr, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(a.arr);
	}
	return rc == 0 ? CLI_OK : CLI_ERR;
}

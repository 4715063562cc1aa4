/*
 * evq_cli.c - `postdoc events list|retry`: what the event runner (evq.c)
 * did with each event per plugin, and a way to send a given-up event
 * again, a command family (cli_args.h).  It reads and retries through
 * evq_admin.c, never the store; delivery is serve's.
 * Exit 0 ok, 1 error or not found, 2 usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_args.h"
#include "evq_cli.h"
#include "events/evq_admin.h"
#include "lib/util.h"

#define EC_LIST_MAX 1000

enum ec_opt { EO_CONSUMER, EO_STATE, EO_COUNT };

static const struct cli_optdef ec_opts[EO_COUNT] = {
	[EO_CONSUMER] = { "--consumer", NULL, 1 },
	[EO_STATE] = { "--state", NULL, 1 },
};

static int ec_list(struct cli_ctx *c);
static int ec_retry(struct cli_ctx *c);

static const struct cli_cmd ec_cmds[] = {
	{ "events", "list", 0, (1u << EO_CONSUMER) | (1u << EO_STATE), 0,
	    CLI_NEED_STORE, ec_list, "events list [--consumer PLUGIN] "
	    "[--state pending|done|failed|expired|dropped] [--json]" },
	{ "events", "retry", 1, 0, 0, CLI_NEED_STORE, ec_retry,
	    "events retry ID   (a failed or expired delivery, sent again by "
	    "serve)" },
};

static int ec_pick(struct cli_ctx *c, const struct cli_cmd **cmd_r);

const struct cli_family evq_cli_family = {
	ec_opts, EO_COUNT, ec_cmds, sizeof(ec_cmds) / sizeof(ec_cmds[0]),
	ec_pick, NULL, NULL
};

static void
ec_print(const struct cli_ctx *c, const struct store_evq_row *r, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++) {
		if (!c->json) {
			printf("%" PRId64 "\tevent=%" PRId64 "\t%s\t%s/%s\t%s\t"
			    "%s\tattempts=%u\t%s\n", r[i].id, r[i].event_id,
			    r[i].kind, r[i].consumer, r[i].hook, r[i].stream,
			    r[i].state, r[i].attempts, r[i].last_error);
			continue;
		}
		json_array_append_new(a, json_pack("{s:I, s:I, s:s, s:s, s:s,"
		    " s:s, s:s, s:i, s:I, s:I, s:I, s:s}", "id",
		    (json_int_t)r[i].id, "event_id", (json_int_t)r[i].event_id,
		    "type", r[i].kind, "consumer", r[i].consumer, "hook",
		    r[i].hook, "stream", r[i].stream, "state", r[i].state,
		    "attempts", (int)r[i].attempts, "next_attempt",
		    (json_int_t)r[i].next_attempt, "created",
		    (json_int_t)r[i].created, "updated",
		    (json_int_t)r[i].updated, "last_error", r[i].last_error));
	}
	if (c->json) {
		json_dumpf(a, stdout, JSON_INDENT(1));
		putchar('\n');
	}
	json_decref(a);
}

static int
ec_list(struct cli_ctx *c)
{
	struct store_evq_row *rows;
	size_t n = 0;
	int rc = CLI_OK;

	if (c->val[EO_STATE] != NULL && (rc = cli_check_choice(c, "--state",
	    c->val[EO_STATE], evq_admin_states)) != 0)
		return rc;
	rows = xcalloc(EC_LIST_MAX, sizeof(*rows));
	cli_list_header(c, "ID\tEVENT\tTYPE\tCONSUMER/HOOK\tSTREAM\t"
	    "STATE\tATTEMPTS\tLAST ERROR");
	if (evq_admin_list(c->st, c->val[EO_CONSUMER], c->val[EO_STATE], rows,
	    EC_LIST_MAX, &n, c->err) != 0)
		rc = CLI_ERR;
	else
		ec_print(c, rows, n);
	free(rows);
	return rc;
}

static int
ec_retry(struct cli_ctx *c)
{
	char *end;
	long long id = strtoll(c->pos[2], &end, 10);
	int r;

	if (*end != '\0' || id <= 0) {
		pd_err(c->err, "'%s' is not a delivery id", c->pos[2]);
		return CLI_USAGE;
	}
	r = evq_admin_retry(c->st, (int64_t)id, pd_now(), c->err);
	if (r < 0)
		return CLI_ERR;
	if (r == 0) {
		pd_err(c->err, "no failed or expired delivery %lld", id);
		return CLI_ERR;
	}
	printf("delivery %lld pending\n", id);
	return CLI_OK;
}

/* The words checked here, not by the table: these usage messages
 * predate it. */
static int
ec_pick(struct cli_ctx *c, const struct cli_cmd **cmd_r)
{
	int list = c->npos == 2 && strcmp(c->pos[1], "list") == 0;
	int retry = c->npos == 3 && strcmp(c->pos[1], "retry") == 0;

	if (!list && !retry)
		return cli_usage_err(c, "usage: postdoc events list|retry ID");
	if (retry && c->seen != 0)
		return cli_usage_err(c, "events retry takes no options");
	*cmd_r = &ec_cmds[list ? 0 : 1];
	return 0;
}

/*
 * evq_cli.c - `postdoc events list|retry`: what the event runner (evq.c)
 * did with each event per plugin, and a way to send a given-up event
 * again.  No SQL here (store_evq.c), no delivery (serve does it).
 * Exit 0 ok, 1 error or not found, 2 usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_args.h"
#include "config.h"
#include "evq_cli.h"
#include "store.h"
#include "store_evq.h"
#include "util.h"

#define EC_DEFAULT_CONFIG "conf/postdoc.conf"
#define EC_MAX_POS 4
#define EC_LIST_MAX 1000

enum ec_opt { EO_CONSUMER, EO_STATE, EO_COUNT };

static const struct cli_optdef ec_opts[EO_COUNT] = {
	[EO_CONSUMER] = { "--consumer", NULL, 1 },
	[EO_STATE] = { "--state", NULL, 1 },
};

struct ec {
	const char *config;
	int json;
	unsigned seen;
	const char *val[EO_COUNT];
	int npos;
	const char *pos[EC_MAX_POS];
	struct pd_config *cfg;
	struct store *st;
	char err[PD_ERRLEN];
};

void
evq_cli_usage(FILE *out)
{
	fputs("  postdoc events list [--consumer PLUGIN] "
	    "[--state pending|done|failed|expired|dropped] [--json]\n"
	    "  postdoc events retry ID   (a failed or expired delivery, "
	    "sent again by serve)\n", out);
}

int
evq_cli_handles(int argc, char **argv)
{
	const char *g = cli_args_group(ec_opts, EO_COUNT, argc, argv);

	return g != NULL && strcmp(g, "events") == 0;
}

static int
ec_open(struct ec *c)
{
	const char *path = c->config;
	char errbuf[8192];

	if (path == NULL && access(EC_DEFAULT_CONFIG, F_OK) == 0)
		path = EC_DEFAULT_CONFIG;
	if (config_load(path, &c->cfg, errbuf, sizeof(errbuf)) != 0) {
		fputs(errbuf[0] != '\0' ? errbuf : "configuration could not be "
		    "loaded\n", stderr);
		return -1;
	}
	return store_open(c->cfg->db_path, c->cfg->sync_mode, &c->st, c->err);
}

static void
ec_print(const struct ec *c, const struct store_evq_row *r, size_t n)
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
ec_list(struct ec *c)
{
	struct store_evq_row *rows = xcalloc(EC_LIST_MAX, sizeof(*rows));
	size_t n = 0;
	int rc = 0;

	if (store_evq_list(c->st, c->val[EO_CONSUMER], c->val[EO_STATE], rows,
	    EC_LIST_MAX, &n, c->err) != 0)
		rc = 1;
	else
		ec_print(c, rows, n);
	free(rows);
	return rc;
}

static int
ec_retry(struct ec *c)
{
	char *end;
	long long id = strtoll(c->pos[2], &end, 10);
	int r;

	if (*end != '\0' || id <= 0) {
		pd_err(c->err, "'%s' is not a delivery id", c->pos[2]);
		return 2;
	}
	r = store_evq_retry(c->st, (int64_t)id, pd_now(), c->err);
	if (r < 0)
		return 1;
	if (r == 0) {
		pd_err(c->err, "no failed or expired delivery %lld", id);
		return 1;
	}
	printf("delivery %lld pending\n", id);
	return 0;
}

static int
ec_pick(struct ec *c, int (**run_r)(struct ec *))
{
	int list = c->npos == 2 && strcmp(c->pos[1], "list") == 0;
	int retry = c->npos == 3 && strcmp(c->pos[1], "retry") == 0;

	if (!list && !retry) {
		pd_err(c->err, "usage: postdoc events list|retry ID");
		return 2;
	}
	if (retry && c->seen != 0) {
		pd_err(c->err, "events retry takes no options");
		return 2;
	}
	*run_r = list ? ec_list : ec_retry;
	return 0;
}

int
evq_cli_main(int argc, char **argv)
{
	struct ec c;
	struct cli_args_out out = { &c.config, &c.json, &c.seen, c.val,
	    &c.npos, c.pos, EC_MAX_POS, NULL };
	int (*run)(struct ec *) = NULL;
	int rc = 0;

	memset(&c, 0, sizeof(c));
	if (cli_args_parse(ec_opts, EO_COUNT, argc, argv, &out, c.err,
	    sizeof(c.err)) != 0)
		rc = 2;
	if (rc == 0)
		rc = ec_pick(&c, &run);
	if (rc == 0)
		rc = ec_open(&c) != 0 ? 1 : run(&c);
	if (fflush(stdout) != 0 && rc == 0)
		rc = 1;
	store_close(&c.st);
	config_free(&c.cfg);
	if (rc != 0 && c.err[0] != '\0')
		fprintf(stderr, "postdoc: %s\n", c.err);
	if (rc == 2)
		fputs("try 'postdoc help'\n", stderr);
	return rc;
}

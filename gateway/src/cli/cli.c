/*
 * cli.c - the `postdoc` command line: hands each command group to its
 * family (consent_cli.c, privacy_cli.c, api_cli.c, evq_cli.c), and is the
 * root family itself: serve, check-config, account, checklist, dossier,
 * document, message, invite, remind, queue, template, mailbox, with their
 * text/JSON output and `postdoc help` (the dossier loop's commands,
 * checklist, dossier create/show/close and document review, are in
 * dossier_cli.c).  It owns no data and no rules: it calls
 * services (dossier/ for accounts, dossiers, their files and the
 * validators; outbound/ for the queue), never the store; parsing,
 * opening and the one error line on stderr are cli_args.c's.
 * Exit 0 ok, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "api_cli.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_int.h"
#include "consent_cli.h"
#include "daemon/daemon.h"
#include "dossier/dossier.h"
#include "evq_cli.h"
#include "lib/config.h"
#include "lib/sanitize.h"
#include "lib/util.h"
#include "outbound/notify.h"
#include "outbound/outq.h"
#include "outbound/outq_view.h"
#include "plugin/plugin_host.h"
#include "privacy_cli.h"
#include "trust_cli.h"

static const struct cli_optdef cli_opts[OPT_COUNT] = {
	[OPT_ACCOUNT] = { "--account", NULL, 1 },
	[OPT_CONTACT] = { "--contact", NULL, 1 },
	[OPT_REF] = { "--ref", NULL, 1 },
	[OPT_ADDRESS] = { "--address", NULL, 1 },
	[OPT_STATUS] = { "--status", NULL, 1 },
	[OPT_OUTPUT] = { "--output", "-o", 1 },
	[OPT_POLICY] = { "--sender-policy", NULL, 1 },
	[OPT_TEMPLATE] = { "--template", NULL, 1 },
	[OPT_LOCALE] = { "--locale", NULL, 1 },
	[OPT_DOCUMENTS] = { "--documents", NULL, 1 },
	[OPT_DUE] = { "--due", NULL, 1 },
	[OPT_QUEUE_ONLY] = { "--queue-only", NULL, 0 },
	[OPT_DRY_RUN] = { "--dry-run", NULL, 0 },
	[OPT_NOW] = { "--now", NULL, 1 },
	[OPT_DATA] = { "--data", NULL, 1 },
	[OPT_TO] = { "--to", NULL, 1 },
	[OPT_ITEM] = { "--item", NULL, 1, 1 },
	[OPT_OPTIONAL] = { "--optional", NULL, 1, 1 },
	[OPT_CHECKLIST] = { "--checklist", NULL, 1 },
	[OPT_REASON] = { "--reason", NULL, 1 },
	[OPT_NOTIFY] = { "--notify", NULL, 0 },
	[OPT_LEGAL_NAME] = { "--legal-name", NULL, 1 },
	[OPT_LEGAL_ADDRESS] = { "--legal-address", NULL, 1 },
	[OPT_FROM_NAME] = { "--from-name", NULL, 1 },
	[OPT_FROM_ADDR] = { "--from-addr", NULL, 1 },
	[OPT_PRIVACY_URL] = { "--privacy-url", NULL, 1 },
	[OPT_ADULT_REQUIRED] = { "--adult-required", NULL, 1 },
	[OPT_NOTIFY_COMPLETED] = { "--notify-completed", NULL, 1 },
};

/* account set: each option and the setting it writes. */
static const struct { int opt; const char *key; } cli_account_opts[] = {
	{ OPT_LEGAL_NAME, "legal_name" },
	{ OPT_LEGAL_ADDRESS, "legal_address" },
	{ OPT_FROM_NAME, "from_name" },
	{ OPT_FROM_ADDR, "from_addr" },
	{ OPT_LOCALE, "locale" },
	{ OPT_PRIVACY_URL, "privacy_url" },
	{ OPT_ADULT_REQUIRED, "adult_required" },
	{ OPT_NOTIFY_COMPLETED, "notify_completed" },
};
#define CLI_ACCOUNT_SET_OPTS (B(OPT_LEGAL_NAME) | B(OPT_LEGAL_ADDRESS) | \
	B(OPT_FROM_NAME) | B(OPT_FROM_ADDR) | B(OPT_LOCALE) | \
	B(OPT_PRIVACY_URL) | B(OPT_ADULT_REQUIRED) | B(OPT_NOTIFY_COMPLETED))

static int cli_serve(struct cli_ctx *c);
static int cli_check_config(struct cli_ctx *c);
static int cli_account_add(struct cli_ctx *c);
static int cli_account_list(struct cli_ctx *c);
static int cli_account_set(struct cli_ctx *c);
static int cli_account_show(struct cli_ctx *c);
static int cli_dossier_list(struct cli_ctx *c);
static int cli_document_get(struct cli_ctx *c);
static int cli_message_get(struct cli_ctx *c);
static int cli_invite(struct cli_ctx *c);
static int cli_remind(struct cli_ctx *c);
static int cli_queue_run(struct cli_ctx *c);
static int cli_queue_list(struct cli_ctx *c);
static int cli_template_render(struct cli_ctx *c);
static int cli_mailbox_check(struct cli_ctx *c);

static const struct cli_cmd cli_cmds[] = {
	{ "serve", NULL, 0, 0, 0, N_CFG, cli_serve,
	    "serve" },
	{ "check-config", NULL, 0, 0, 0, N_CFG, cli_check_config,
	    "check-config [-v]" },
	{ "account", "add", 1, B(OPT_POLICY), 0, N_STORE, cli_account_add,
	    "account add NAME [--sender-policy any|contact|domains:D1,D2]" },
	{ "account", "list", 0, 0, 0, N_STORE, cli_account_list,
	    "account list [--json]" },
	{ "account", "set", 1, CLI_ACCOUNT_SET_OPTS, 0, N_CFG | CLI_NEED_STORE,
	    cli_account_set,
	    "account set ACCOUNT [--legal-name TEXT] [--legal-address TEXT] "
	    "[--from-name TEXT] [--from-addr ADDR] [--locale fr] "
	    "[--privacy-url URL] [--adult-required yes|no] "
	    "[--notify-completed yes|no]   (\"\" removes one: back to the "
	    "config file)" },
	{ "account", "show", 1, 0, 0, N_CFG | CLI_NEED_STORE, cli_account_show,
	    "account show ACCOUNT [--json]   (the identity messages use, and "
	    "where each value comes from)" },
	{ "checklist", "add", 2, B(OPT_ITEM) | B(OPT_OPTIONAL), 0, N_STORE,
	    cli_checklist_add,
	    "checklist add ACCOUNT NAME --item SPEC [--item SPEC]... "
	    "[--optional SPEC]... [--json]" },
	{ "checklist", "list", 0, B(OPT_ACCOUNT), 0, N_STORE,
	    cli_checklist_list,
	    "checklist list [--account NAME] [--json]" },
	{ "dossier", "create", 0,
	    B(OPT_ACCOUNT) | B(OPT_CONTACT) | B(OPT_REF) | B(OPT_ADDRESS) |
	    B(OPT_LOCALE) | B(OPT_CHECKLIST) | B(OPT_ITEM) | B(OPT_OPTIONAL) |
	    B(OPT_DUE), B(OPT_ACCOUNT) | B(OPT_CONTACT) | B(OPT_REF), N_STORE,
	    cli_dossier_create,
	    "dossier create --account NAME --contact EMAIL|\"NAME <EMAIL>\" "
	    "--ref REF [--locale fr] [--checklist NAME] [--item SPEC]... "
	    "[--optional SPEC]... [--due YYYY-MM-DD] [--address LOCAL@DOMAIN] "
	    "[--json]" },
	{ "dossier", "list", 0, B(OPT_ACCOUNT) | B(OPT_STATUS), 0, N_STORE,
	    cli_dossier_list,
	    "dossier list [--account NAME] [--status open|closed] [--json]" },
	{ "dossier", "show", 1, B(OPT_ACCOUNT), 0, N_STORE, cli_dossier_show,
	    "dossier show ID|ADDRESS [--account NAME] [--json]" },
	{ "dossier", "close", 1, B(OPT_ACCOUNT) | B(OPT_NOTIFY) |
	    B(OPT_QUEUE_ONLY), 0, N_STORE, cli_dossier_close,
	    "dossier close ID|ADDRESS [--notify [--queue-only]] [--account NAME] "
	    "[--json]" },
	{ "document", "get", 1, B(OPT_ACCOUNT) | B(OPT_OUTPUT), 0,
	    N_STORE, cli_document_get,
	    "document get ID [--account NAME] [-o FILE|-]   (no -o: its own "
	    "name, here)" },
	{ "document", "assign", 2, B(OPT_ACCOUNT), 0, N_OUT,
	    cli_document_assign,
	    "document assign ID ITEM|none [--account NAME] [--json]" },
	{ "document", "accept", 1, B(OPT_ACCOUNT) | B(OPT_QUEUE_ONLY), 0, N_OUT,
	    cli_document_accept,
	    "document accept ID [--account NAME] [--queue-only] [--json]" },
	{ "document", "reject", 1, B(OPT_ACCOUNT) | B(OPT_REASON) |
	    B(OPT_QUEUE_ONLY), B(OPT_REASON), N_OUT, cli_document_reject,
	    "document reject ID --reason TEXT [--account NAME] [--queue-only] "
	    "[--json]   (the contact is told why)" },
	{ "message", "get", 1, B(OPT_ACCOUNT) | B(OPT_OUTPUT), B(OPT_OUTPUT),
	    N_STORE, cli_message_get,
	    "message get ID [--account NAME] -o FILE|-" },
	/* N_STORE: a dry run loads no plugin and opens no queue; the real
	 * run opens them itself (cli_ctx_open_outbound). */
	{ "invite", NULL, 1, B(OPT_ACCOUNT) | B(OPT_TEMPLATE) | B(OPT_LOCALE) |
	    B(OPT_DOCUMENTS) | B(OPT_DUE) | B(OPT_QUEUE_ONLY) | B(OPT_DRY_RUN),
	    0, N_STORE, cli_invite,
	    "invite DOSSIER [--account NAME] [--template invitation] "
	    "[--locale fr] [--documents \"ID card,Proof of address\"] "
	    "[--due YYYY-MM-DD] [--queue-only | --dry-run] [--json]" },
	{ "remind", NULL, 0, B(OPT_NOW) | B(OPT_QUEUE_ONLY) | B(OPT_DRY_RUN), 0,
	    N_STORE, cli_remind,
	    "remind [--now YYYY-MM-DD|EPOCH] [--queue-only | --dry-run] "
	    "[--json]" },
	{ "queue", "run", 0, 0, 0, N_OUT, cli_queue_run,
	    "queue run [--json]" },
	{ "queue", "list", 0, B(OPT_ACCOUNT) | B(OPT_STATUS), 0, N_STORE,
	    cli_queue_list,
	    "queue list [--account NAME] [--status queued|sending|sent|"
	    "deferred|bounced|failed] [--json]" },
	{ "template", "render", 1, B(OPT_LOCALE) | B(OPT_ACCOUNT) |
	    B(OPT_DATA) | B(OPT_TO), B(OPT_DATA), N_CFG, cli_template_render,
	    "template render NAME --data FILE.json [--locale fr] "
	    "[--account NAME] [--to ADDRESS]" },
	{ "mailbox", "check", 1, 0, 0, N_CFG, cli_mailbox_check,
	    "mailbox check NAME" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- usage and the family ---- */

static void cli_usage(FILE *out);

/* The root family: --help, `help` and unknown words are answered here. */
static const struct cli_family cli_root = {
	cli_opts, OPT_COUNT, cli_cmds, NELEM(cli_cmds), NULL, NULL, cli_usage
};

static void
cli_usage(FILE *out)
{
	fputs("usage: postdoc [--config FILE] [--json] [-v] COMMAND ...\n\n"
	    "commands:\n", out);
	cli_family_usage(&cli_root, out);
	cli_family_usage(&consent_cli_family, out);
	cli_family_usage(&api_cli_family, out);
	cli_family_usage(&privacy_cli_family, out);
	cli_family_usage(&evq_cli_family, out);
	cli_family_usage(&trust_cli_family, out);
	fputs("  postdoc help\n\n"
	    "SPEC (--item, --optional): \"LABEL[|TYPES][|MAX]\", e.g. "
	    "\"Proof of address|pdf/jpeg|5MB\";\n"
	    "an item's documents go to d-<token>+<slug>@<intake domain> "
	    "(dossier show).\n"
	    "--config defaults to " CLI_DEFAULT_CONFIG " (built-in defaults "
	    "if that file is absent).\n"
	    "-v, --verbose: INFO log lines too (plugins loaded, batches "
	    "queued); errors\nand warnings are always printed.\n"
	    "--dry-run (invite, remind, campaign send, notice send): print "
	    "what would be\nqueued and to whom, change nothing.\n"
	    "--queue-only: queue only; the running server delivers.\n"
	    "A list prints a header row when its output is a terminal.\n"
	    "exit status: 0 ok, 1 failure, 2 usage error\n", out);
}

/* ---- output helpers ---- */

const char *
cli_time(int64_t t)
{
	static char bufs[4][32];
	static unsigned next;
	char *b = bufs[next++ % 4];
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL)
		return "-";
	strftime(b, sizeof(bufs[0]), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return b;
}

/* A JSON string; bytes that are not UTF-8 are shown as '?'. */
json_t *
cli_jstr(const char *s)
{
	return sanitize_json_str(s);
}

json_t *
cli_jtime(int64_t t)
{
	return t == 0 ? json_null() : json_integer(t);
}

void
cli_jset(json_t *o, const char *key, json_t *v)
{
	if (json_object_set_new(o, key, v != NULL ? v : json_null()) != 0)
		pd_fatal("json_object_set_new(%s) failed", key);
}

void
cli_json_print(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(j);
}

void
cli_address(const struct cli_ctx *c, const struct store_dossier *d, char *out,
    size_t outlen)
{
	snprintf(out, outlen, "%s@%s", d->intake_local, c->cfg->intake_domain);
}

json_t *
cli_dossier_json(const struct cli_ctx *c, const struct store_dossier *d)
{
	json_t *o = json_object();
	char addr[512];

	cli_address(c, d, addr, sizeof(addr));
	cli_jset(o, "id", json_integer(d->id));
	cli_jset(o, "account", cli_jstr(d->account));
	cli_jset(o, "ref", cli_jstr(d->ref));
	cli_jset(o, "contact", cli_jstr(d->contact));
	cli_jset(o, "address", cli_jstr(addr));
	cli_jset(o, "status", cli_jstr(d->status));
	cli_jset(o, "created", cli_jtime(d->created));
	cli_jset(o, "closed", cli_jtime(d->closed));
	return o;
}

/* ---- commands: serve, check-config ---- */

static int
cli_serve(struct cli_ctx *c)
{
	if (daemon_run(c->cfg, c->err) != 0) {
		if (c->err[0] == '\0')
			snprintf(c->err, sizeof(c->err), "server failed");
		return CLI_ERR;
	}
	return CLI_OK;
}

/* What serve checks before it starts (daemon_check), then "config OK". */
static int
cli_check_config(struct cli_ctx *c)
{
	if (daemon_check(c->cfg, c->err) != 0) {
		/* Bare, as config errors print: "FILE:LINE: plugin ...". */
		fprintf(stderr, "%s\n", c->err);
		c->err[0] = '\0';
		return CLI_ERR;
	}
	printf("config OK: %s\n", c->cfg->file != NULL ? c->cfg->file :
	    "(embedded defaults)");
	if (c->verbose)
		config_dump(c->cfg, stdout);
	return CLI_OK;
}

/* ---- commands: account ---- */

static int
cli_account_add(struct cli_ctx *c)
{
	const char *name = c->pos[2];
	const char *policy = c->val[OPT_POLICY] ? c->val[OPT_POLICY] : "any";
	char norm[512];
	int64_t id;

	if (!dossier_valid_name(name))
		return cli_usage_err(c, "invalid account name \"%s\" "
		    "(1-63 of A-Z a-z 0-9 _ . -)", cli_safe(name));
	if (!dossier_valid_policy(policy, norm, sizeof(norm)))
		return cli_usage_err(c, "invalid sender policy \"%s\" (any, "
		    "contact or domains:a.example,b.example)", cli_safe(policy));
	if (dossier_account_add(c->st, name, norm, &id, c->err) != 0)
		return CLI_ERR;
	if (c->json) {
		json_t *o = json_object();

		cli_jset(o, "id", json_integer(id));
		cli_jset(o, "name", cli_jstr(name));
		cli_jset(o, "sender_policy", cli_jstr(norm));
		cli_json_print(o);
	} else
		printf("account %s added (sender policy %s)\n", name, norm);
	return CLI_OK;
}

static int
cli_account_row_cb(const struct store_account *a, void *ctx)
{
	json_t *arr = ctx, *o;

	if (arr == NULL) {
		printf("%s\t%s\n", cli_safe(a->name), cli_safe(a->sender_policy));
		return 0;
	}
	o = json_object();
	cli_jset(o, "id", json_integer(a->id));
	cli_jset(o, "name", cli_jstr(a->name));
	cli_jset(o, "sender_policy", cli_jstr(a->sender_policy));
	cli_jset(o, "created", cli_jtime(a->created));
	json_array_append_new(arr, o);
	return 0;
}

static int
cli_account_list(struct cli_ctx *c)
{
	json_t *arr = c->json ? json_array() : NULL;

	cli_list_header(c, "NAME\tSENDER POLICY");
	if (dossier_account_list(c->st, cli_account_row_cb, arr, c->err) != 0) {
		json_decref(arr);
		return CLI_ERR;
	}
	if (arr != NULL)
		cli_json_print(arr);
	return CLI_OK;
}

/* Who acts, for the audit trail: "cli:<login name>". */
static void
cli_actor(struct cli_ctx *c)
{
	struct passwd *pw = getpwuid(getuid());
	char who[48];

	if (pw != NULL)
		pd_ascii_clean(who, sizeof(who), pw->pw_name);
	else
		snprintf(who, sizeof(who), "uid%u", (unsigned)getuid());
	snprintf(c->actor, sizeof(c->actor), "cli:%s", who);
}

static int
cli_account_set(struct cli_ctx *c)
{
	struct dossier_setting v[NELEM(cli_account_opts)];
	struct dossier_env env;
	struct store_account a;
	size_t i, n = 0;
	int rc;

	for (i = 0; i < NELEM(cli_account_opts); i++)
		if (c->seen & B(cli_account_opts[i].opt))
			v[n++] = (struct dossier_setting){
			    cli_account_opts[i].key,
			    c->val[cli_account_opts[i].opt] };
	if (n == 0)
		return cli_usage_err(c, "account set: name at least one "
		    "setting (postdoc help)");
	if ((rc = dossier_account_get(c->st, c->pos[2], &a, c->err)) != 1) {
		if (rc == 0)
			snprintf(c->err, sizeof(c->err), "account \"%s\" not "
			    "found", cli_safe(c->pos[2]));
		return CLI_ERR;
	}
	cli_actor(c);
	env = (struct dossier_env){ c->cfg, c->st, NULL, c->actor };
	if (dossier_account_set(&env, a.id, a.name, v, n, c->err) != 0)
		return CLI_ERR;
	return cli_account_show(c);
}

static int
cli_account_show(struct cli_ctx *c)
{
	static const char *const keys[] = NOTIFY_ACCOUNT_KEYS;
	const char *src[NOTIFY_ACCOUNT_NKEYS];
	struct notify_identity id;
	struct store_account a;
	char vals[NOTIFY_ACCOUNT_NKEYS][512];
	json_t *o, *srcs;
	size_t i;
	int rc;

	if ((rc = dossier_account_get(c->st, c->pos[2], &a, c->err)) != 1) {
		if (rc == 0)
			snprintf(c->err, sizeof(c->err), "account \"%s\" not "
			    "found", cli_safe(c->pos[2]));
		return CLI_ERR;
	}
	if (notify_identity_sources(c->cfg, c->st, a.name, &id, src,
	    c->err) != 0)
		return CLI_ERR;
	snprintf(vals[0], sizeof(vals[0]), "%s", id.legal_name);
	snprintf(vals[1], sizeof(vals[1]), "%s", id.legal_address);
	snprintf(vals[2], sizeof(vals[2]), "%s", id.from_name);
	snprintf(vals[3], sizeof(vals[3]), "%s", id.from_addr);
	snprintf(vals[4], sizeof(vals[4]), "%s", id.locale);
	snprintf(vals[5], sizeof(vals[5]), "%s", id.privacy_url);
	snprintf(vals[6], sizeof(vals[6]), "%s", id.adult_required ? "yes" :
	    "no");
	snprintf(vals[7], sizeof(vals[7]), "%s", id.notify_completed ? "yes" :
	    "no");
	if (!c->json) {
		printf("account %s\n", cli_safe(a.name));
		for (i = 0; i < NOTIFY_ACCOUNT_NKEYS; i++)
			printf("  %-17s %-8s %s\n", keys[i], src[i],
			    vals[i][0] ? cli_safe(vals[i]) : "-");
		return CLI_OK;
	}
	o = json_object();
	srcs = json_object();
	cli_jset(o, "account", cli_jstr(a.name));
	for (i = 0; i < NOTIFY_ACCOUNT_NKEYS; i++) {
		if (i >= 6)
			cli_jset(o, keys[i], json_boolean(strcmp(vals[i],
			    "yes") == 0));
		else
			cli_jset(o, keys[i], vals[i][0] ? cli_jstr(vals[i]) :
			    json_null());
		cli_jset(srcs, keys[i], json_string(src[i]));
	}
	cli_jset(o, "source", srcs);
	cli_json_print(o);
	return CLI_OK;
}

/* --account NAME, if given: 1 and *id_r set; 0 absent; -1 unknown name. */
int
cli_account_scope(struct cli_ctx *c, int64_t *id_r)
{
	struct store_account a;
	const char *name = c->val[OPT_ACCOUNT];
	int rc;

	*id_r = 0;
	if (name == NULL)
		return 0;
	rc = dossier_account_get(c->st, name, &a, c->err);
	if (rc == 0)
		snprintf(c->err, sizeof(c->err), "account \"%s\" not found",
		    cli_safe(name));
	if (rc != 1)
		return -1;
	*id_r = a.id;
	return 1;
}

/* ---- commands: dossier ---- */

struct cli_list_ctx {
	struct cli_ctx *c;
	json_t *arr;			/* NULL: text output */
};

static int
cli_dossier_row_cb(const struct store_dossier *d, void *ctx)
{
	struct cli_list_ctx *l = ctx;
	char addr[512];

	if (l->arr != NULL) {
		json_array_append_new(l->arr, cli_dossier_json(l->c, d));
		return 0;
	}
	cli_address(l->c, d, addr, sizeof(addr));
	printf("%" PRId64 "\t%s\t%s\t%s\t%s\t%s\n", d->id, cli_safe(d->account),
	    cli_safe(d->ref), d->status, cli_safe(addr), cli_safe(d->contact));
	return 0;
}

/* Without --account, every account in turn (dossier_list). */
static int
cli_dossier_list(struct cli_ctx *c)
{
	struct cli_list_ctx l = { c, NULL };
	const char *status = c->val[OPT_STATUS];
	int64_t acct;

	int rc;

	if (status != NULL && (rc = cli_check_choice(c, "--status", status,
	    dossier_statuses)) != 0)
		return rc;
	if (cli_account_scope(c, &acct) < 0)
		return CLI_ERR;
	l.arr = c->json ? json_array() : NULL;
	cli_list_header(c, "ID\tACCOUNT\tREF\tSTATUS\tADDRESS\tCONTACT");
	if (dossier_list(c->st, acct, status, cli_dossier_row_cb, &l,
	    c->err) != 0) {
		json_decref(l.arr);
		return CLI_ERR;
	}
	if (l.arr != NULL)
		cli_json_print(l.arr);
	return CLI_OK;
}

/*
 * The dossier named by ID (a number) or by its intake address / local
 * part, within --account if given.  1 found, 0 not (err set), -1 error.
 */
int
cli_find_dossier(struct cli_ctx *c, const char *spec, struct store_dossier *d)
{
	int64_t acct;
	int rc;

	if (cli_account_scope(c, &acct) < 0)
		return -1;
	rc = dossier_find(c->st, c->cfg->intake_domain, acct, spec, d, c->err);
	if (rc == 0)
		snprintf(c->err, sizeof(c->err), "dossier %s not found%s%s",
		    cli_safe(spec), acct ? " in account " : "",
		    acct ? cli_safe(c->val[OPT_ACCOUNT]) : "");
	return rc;
}

/* ---- commands: document get, message get ---- */

static int
cli_write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Copy blob `in` to `out`, hashing on the way: a blob whose bytes no
 * longer match its name is reported, never handed out as if intact.
 */
static int
cli_copy_verified(struct cli_ctx *c, int in, int out, const char *sha)
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ssize_t n;
	int rc = -1;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto end;
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || EVP_DigestUpdate(ctx, buf, (size_t)n) != 1 ||
		    cli_write_all(out, buf, (size_t)n) != 0) {
			snprintf(c->err, sizeof(c->err), "copy failed: %s",
			    strerror(errno));
			goto end;
		}
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		goto end;
	pd_hex(hex, md, mdlen);
	if (strcmp(hex, sha) != 0) {
		snprintf(c->err, sizeof(c->err), "blob %s is corrupt (its "
		    "content hashes to %s)", sha, hex);
		goto end;
	}
	rc = 0;
end:
	if (rc != 0 && c->err[0] == '\0')
		snprintf(c->err, sizeof(c->err), "sha256 failed");
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* A document's blob file, or a message's raw bytes wherever they live
 * (the database for small ones), through the dossier service. */
static int
cli_open_blob(struct cli_ctx *c, const char *sha, int raw, const char *what)
{
	int in = -1, rc;

	rc = raw ? dossier_message_open(c->st, c->bs, sha, &in, c->err) :
	    dossier_document_open(c->bs, sha, &in);
	if (rc < 0)
		return -1;
	if (rc == 0 || in < 0)
		snprintf(c->err, sizeof(c->err), "%s: blob %s is missing from "
		    "the store", what, sha);
	return in;
}

/* Where the bytes go: "-" is stdout; a name we chose (excl) is never
 * an existing file, so nothing of the operator's is overwritten. */
static int
cli_open_dest(struct cli_ctx *c, const char *dest, int excl)
{
	int out;

	if (strcmp(dest, "-") == 0)
		return STDOUT_FILENO;
	out = open(dest, O_WRONLY | O_CREAT | O_CLOEXEC | (excl ? O_EXCL |
	    O_NOFOLLOW : O_TRUNC), 0640);
	if (out < 0 && excl && errno == EEXIST)
		snprintf(c->err, sizeof(c->err), "%s already exists; not "
		    "overwritten (name another file with -o FILE)",
		    cli_safe(dest));
	else if (out < 0)
		snprintf(c->err, sizeof(c->err), "%s: %s", cli_safe(dest),
		    strerror(errno));
	return out;
}

static int
cli_get_blob(struct cli_ctx *c, const char *sha, int raw,
    const char *what, const char *dest, int excl)
{
	int in, out, rc;

	if ((in = cli_open_blob(c, sha, raw, what)) < 0)
		return CLI_ERR;
	if ((out = cli_open_dest(c, dest, excl)) < 0) {
		close(in);
		return CLI_ERR;
	}
	rc = cli_copy_verified(c, in, out, sha);
	close(in);
	if (out != STDOUT_FILENO && close(out) != 0 && rc == 0) {
		snprintf(c->err, sizeof(c->err), "%s: %s", dest,
		    strerror(errno));
		rc = -1;
	}
	if (rc != 0 && out != STDOUT_FILENO)
		unlink(dest);	/* never leave a partial copy behind */
	return rc == 0 ? CLI_OK : CLI_ERR;
}

/* A message row kept without its raw copy: say what took it, when. */
static int
cli_raw_gone(struct cli_ctx *c, const struct store_msg_row *mr,
    const char *label)
{
	const char *why = mr->raw_removed;

	if (strcmp(why, "retention") == 0 && mr->raw_removed_at != 0)
		snprintf(c->err, sizeof(c->err), "%s: its raw copy was purged "
		    "on %s by retention", label, cli_time(mr->raw_removed_at));
	else if (strcmp(why, "retention") == 0)
		snprintf(c->err, sizeof(c->err), "%s: its raw copy was purged "
		    "by retention (before postdoc recorded the date)", label);
	else
		snprintf(c->err, sizeof(c->err), "%s: its raw copy is no longer "
		    "in the store (%s)", label, why[0] ? cli_safe(why) :
		    "reason not recorded");
	return CLI_ERR;
}

/* Without -o, a document goes to a file of its own name here. */
static int
cli_get_doc(struct cli_ctx *c, const struct store_doc_row *dr,
    const char *label)
{
	char name[512];
	int rc;

	if (c->val[OPT_OUTPUT] != NULL)
		return cli_get_blob(c, dr->sha256, 0, label, c->val[OPT_OUTPUT],
		    0);
	dossier_document_filename(dr, name, sizeof(name));
	rc = cli_get_blob(c, dr->sha256, 0, label, name, 1);
	if (rc == CLI_OK)
		printf("%s\n", cli_safe(name));
	return rc;
}

/* Shared by `document get` and `message get`: which = 0 doc, 1 message. */
static int
cli_get_common(struct cli_ctx *c, int which)
{
	const char *what = which == 0 ? "document" : "message";
	struct store_doc_row dr;
	struct store_msg_row mr;
	char label[64];
	int64_t acct, id;
	int rc;

	if (!dossier_parse_id(c->pos[2], &id))
		return cli_usage_err(c, "invalid id \"%s\"", cli_safe(c->pos[2]));
	if (cli_account_scope(c, &acct) < 0)
		return CLI_ERR;
	rc = which == 0 ? dossier_document_get(c->st, acct, id, &dr, c->err) :
	    dossier_message_get(c->st, acct, id, &mr, c->err);
	snprintf(label, sizeof(label), "%s %" PRId64, what, id);
	if (rc == 0)
		snprintf(c->err, sizeof(c->err), "%s not found%s%s", label,
		    acct ? " in account " : "",
		    acct ? cli_safe(c->val[OPT_ACCOUNT]) : "");
	if (rc != 1)
		return CLI_ERR;
	if (which == 0)
		return cli_get_doc(c, &dr, label);
	if (mr.sha256[0] == '\0')
		return cli_raw_gone(c, &mr, label);
	return cli_get_blob(c, mr.sha256, 1, label, c->val[OPT_OUTPUT], 0);
}

static int
cli_document_get(struct cli_ctx *c)
{
	return cli_get_common(c, 0);
}

static int
cli_message_get(struct cli_ctx *c)
{
	return cli_get_common(c, 1);
}

/* ---- entry point ---- */

/* ---- outbound: invite, remind, queue, template ---- */

static json_t *
cli_outbound_json(const struct store_outbound *o)
{
	json_t *j = json_object();

	cli_jset(j, "id", json_integer(o->id));
	cli_jset(j, "account", cli_jstr(o->account));
	cli_jset(j, "dossier_id", o->dossier_id ? json_integer(o->dossier_id) :
	    json_null());
	cli_jset(j, "kind", cli_jstr(o->kind));
	cli_jset(j, "rcpt", cli_jstr(o->rcpt));
	cli_jset(j, "mail_from", cli_jstr(o->mail_from));
	cli_jset(j, "message_id", cli_jstr(o->message_id));
	cli_jset(j, "sha256", cli_jstr(o->sha256));
	cli_jset(j, "size", json_integer((json_int_t)o->size));
	cli_jset(j, "state", cli_jstr(o->state));
	cli_jset(j, "attempts", json_integer(o->attempts));
	cli_jset(j, "next_attempt", cli_jtime(o->next_attempt));
	cli_jset(j, "created", cli_jtime(o->created));
	cli_jset(j, "updated", cli_jtime(o->updated));
	cli_jset(j, "last_code", json_integer(o->last_code));
	cli_jset(j, "last_enhanced", cli_jstr(o->last_enhanced));
	cli_jset(j, "last_text", cli_jstr(o->last_text));
	return j;
}

static void
cli_outbound_text(const struct store_outbound *o)
{
	printf("%lld\t%s\t%s\t%s\t%s\t%d %s %s\n", (long long)o->id,
	    cli_safe(o->kind), cli_safe(o->rcpt), cli_safe(o->state),
	    cli_time(o->updated), o->last_code, cli_safe(o->last_enhanced),
	    cli_safe(o->last_text));
}

static int
cli_print_outbound(struct cli_ctx *c, int64_t id)
{
	struct store_outbound o;

	if (outq_view_get(c->st, 0, id, &o, c->err) != 1) {
		if (c->err[0] == '\0')
			snprintf(c->err, sizeof(c->err), "outbound %lld "
			    "vanished", (long long)id);
		return CLI_ERR;
	}
	if (c->json)
		cli_json_print(cli_outbound_json(&o));
	else
		cli_outbound_text(&o);
	return CLI_OK;
}

/* Deliver what is due now, unless --queue-only: the queue is the record. */
int
cli_deliver_now(struct cli_ctx *c)
{
	struct outq_stats st;

	memset(&st, 0, sizeof(st));
	if (c->seen & B(OPT_QUEUE_ONLY))
		return 0;
	return outq_run_once(c->q, &st, c->err);
}

/* ---- invite and remind, and their dry runs ---- */

/* A message's text for a terminal: each line through cli_safe. */
static void
cli_put_text(const char *s)
{
	char line[2048];
	size_t n;

	while (*s != '\0') {
		n = strcspn(s, "\n");
		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ?
		    n : sizeof(line) - 1), s);
		if (n > 0 && line[strlen(line) - 1] == '\r')
			line[strlen(line) - 1] = '\0';
		printf("%s\n", cli_safe(line));
		s += n + (s[n] == '\n');
	}
}

/* The items --documents would add, by the dossier service's rules. */
static int
cli_invite_new_items(struct cli_ctx *c, const struct store_dossier *d,
    struct store_item **new_r, size_t *n_r)
{
	struct store_item *v = NULL;
	int rc = 0;
	size_t n = 0;

	*new_r = NULL;
	*n_r = 0;
	if (c->val[OPT_DOCUMENTS] == NULL)
		return 0;
	rc = dossier_items_parse_csv(c->val[OPT_DOCUMENTS], &v, &n, c->err);
	if (rc == 0 && n > 0)
		rc = dossier_items_plan(c->st, d->account_id, d->id, v, n,
		    new_r, n_r, c->err);
	free(v);
	return rc == 0 ? 0 : -1;
}

static int
cli_item_is_new(const struct store_item *v, size_t n, const char *slug)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].slug, slug) == 0)
			return 1;
	return 0;
}

static void
cli_draft_text(const struct notify_draft *dr, const struct store_item *nv,
    size_t nn)
{
	json_t *it;
	size_t i;

	printf("dry run: nothing queued, nothing recorded\n"
	    "From: %s <%s>\nTo: %s%s%s%s\nReply-To: %s\nSubject: %s\n"
	    "Language: %s\n", cli_safe(dr->from_name),
	    cli_safe(dr->from_addr), cli_safe(dr->to_name),
	    dr->to_name[0] ? " <" : "", cli_safe(dr->to),
	    dr->to_name[0] ? ">" : "", cli_safe(dr->reply_to),
	    cli_safe(dr->subject), dr->locale);
	if (json_array_size(dr->items) > 0)
		printf("Items, each to its own address:\n");
	json_array_foreach(dr->items, i, it) {
		const char *slug = json_string_value(json_object_get(it,
		    "slug"));

		printf("  %s (%s): %s%s\n", cli_safe(json_string_value(
		    json_object_get(it, "label"))), json_is_true(
		    json_object_get(it, "required")) ? "required" : "optional",
		    cli_safe(json_string_value(json_object_get(it,
		    "address"))), cli_item_is_new(nv, nn, slug ? slug : "") ?
		    "  (new: --documents adds it)" : "");
	}
	printf("\n");
	cli_put_text(dr->text);
}

static json_t *
cli_draft_json(const struct notify_draft *dr, const struct store_item *nv,
    size_t nn)
{
	json_t *o = json_object(), *arr = json_array(), *it;
	size_t i;

	json_array_foreach(dr->items, i, it) {
		const char *slug = json_string_value(json_object_get(it,
		    "slug"));

		json_array_append_new(arr, json_pack("{s:O, s:O, s:O, s:b}",
		    "label", json_object_get(it, "label"), "address",
		    json_object_get(it, "address"), "required",
		    json_object_get(it, "required"), "new",
		    cli_item_is_new(nv, nn, slug ? slug : "")));
	}
	cli_jset(o, "dry_run", json_true());
	cli_jset(o, "from_name", cli_jstr(dr->from_name));
	cli_jset(o, "from_addr", cli_jstr(dr->from_addr));
	cli_jset(o, "to", cli_jstr(dr->to));
	cli_jset(o, "to_name", cli_jstr(dr->to_name));
	cli_jset(o, "reply_to", cli_jstr(dr->reply_to));
	cli_jset(o, "subject", cli_jstr(dr->subject));
	cli_jset(o, "locale", cli_jstr(dr->locale));
	cli_jset(o, "items", arr);
	cli_jset(o, "text", cli_jstr(dr->text));
	return o;
}

/* Everything the real run checks, and the message it would queue. */
static int
cli_invite_dry(struct cli_ctx *c, const struct store_dossier *d,
    const struct notify_invite_req *req)
{
	struct notify_env env = { c->cfg, c->st, NULL };
	struct notify_draft dr;
	struct store_item *nv = NULL;
	size_t nn = 0;

	if (cli_invite_new_items(c, d, &nv, &nn) != 0 ||
	    notify_invite_draft(&env, d, req, nv, nn, &dr, c->err) != 0) {
		free(nv);
		return CLI_ERR;
	}
	if (dr.refused[0] != '\0') {
		snprintf(c->err, sizeof(c->err), "invite would fail: the queue "
		    "refuses %s (%s)", cli_safe(dr.to), cli_safe(dr.refused));
		notify_draft_free(&dr);
		free(nv);
		return CLI_ERR;
	}
	if (c->json)
		cli_json_print(cli_draft_json(&dr, nv, nn));
	else
		cli_draft_text(&dr, nv, nn);
	notify_draft_free(&dr);
	free(nv);
	return CLI_OK;
}

static int
cli_invite(struct cli_ctx *c)
{
	struct notify_env env = { c->cfg, c->st, NULL };
	/* The documents asked for are the dossier's items now (added
	 * first, by the dossier service), not the invitation's text. */
	struct notify_invite_req req = { c->val[OPT_TEMPLATE],
	    c->val[OPT_LOCALE], c->val[OPT_DUE] };
	struct store_dossier d;
	int64_t id = 0;

	if ((c->seen & B(OPT_DRY_RUN)) && (c->seen & B(OPT_QUEUE_ONLY)))
		return cli_usage_err(c, "--dry-run queues nothing: it does "
		    "not go with --queue-only");
	if (c->val[OPT_DUE] != NULL && !dossier_valid_due(c->val[OPT_DUE]))
		return cli_usage_err(c, "invalid --due \"%s\": not a calendar "
		    "day YYYY-MM-DD", cli_safe(c->val[OPT_DUE]));
	if (c->val[OPT_LOCALE] != NULL &&
	    !dossier_valid_locale(c->val[OPT_LOCALE]))
		return cli_usage_err(c, "invalid --locale \"%s\": a language "
		    "tag like fr or en", cli_safe(c->val[OPT_LOCALE]));
	if (c->val[OPT_TEMPLATE] != NULL &&
	    !dossier_valid_word(c->val[OPT_TEMPLATE]))
		return cli_usage_err(c, "invalid --template \"%s\" (1-32 of "
		    "a-z 0-9 _ -)", cli_safe(c->val[OPT_TEMPLATE]));
	if (cli_find_dossier(c, c->pos[1], &d) != 1)
		return CLI_ERR;
	if (c->seen & B(OPT_DRY_RUN))
		return cli_invite_dry(c, &d, &req);
	if (cli_ctx_open_outbound(c) != 0 || cli_invite_prepare(c, &d) != 0)
		return CLI_ERR;
	env.q = c->q;
	if (notify_invite(&env, &d, &req, &id, c->err) != 0 ||
	    cli_deliver_now(c) != 0)
		return CLI_ERR;
	return cli_print_outbound(c, id);
}

struct cli_remind_dry {
	struct cli_ctx *c;
	json_t *arr;			/* --json: one object per dossier */
	unsigned would, closed;
};

static void
cli_remind_line(const struct notify_remind_plan *p, const char *labels)
{
	const struct store_dossier *d = p->d;

	printf("dossier %" PRId64 " %s/%s %s: ", d->id, cli_safe(d->account),
	    cli_safe(d->ref), cli_safe(d->contact));
	if (p->number > 0 && p->refused[0] != '\0')
		printf("reminder %d is due but the queue refuses the contact "
		    "(%s)\n", p->number, cli_safe(p->refused));
	else if (p->number > 0)
		printf("reminder %d would be queued (%" PRId64 " days after "
		    "the invitation); outstanding: %s\n", p->number, p->days,
		    labels);
	else if (p->next > 0)
		printf("not reminded: not due until %s; outstanding: %s\n",
		    cli_time(p->next), labels);
	else
		printf("not reminded: %s\n", p->why);
}

static int
cli_remind_dry_cb(const struct notify_remind_plan *p, void *ctx)
{
	struct cli_remind_dry *r = ctx;
	char labels[1024] = "";
	size_t i, o = 0;
	json_t *v;

	if (p->number > 0 && p->refused[0] == '\0')
		r->would++;
	json_array_foreach(p->labels, i, v)
		if (o < sizeof(labels))
			o += (size_t)snprintf(labels + o, sizeof(labels) - o,
			    "%s%s", i ? ", " : "", json_string_value(v));
	if (o == 0)
		snprintf(labels, sizeof(labels), p->outstanding > 0 ?
		    "(no items: a document)" : "none");
	if (r->arr != NULL) {
		json_t *j = cli_dossier_json(r->c, p->d);

		cli_jset(j, "remind", json_boolean(p->number > 0 &&
		    p->refused[0] == '\0'));
		cli_jset(j, "number", json_integer(p->number));
		cli_jset(j, "reason", p->number > 0 ? json_null() :
		    cli_jstr(p->why));
		cli_jset(j, "refused", p->refused[0] ? cli_jstr(p->refused) :
		    json_null());
		cli_jset(j, "next_due", cli_jtime(p->next));
		cli_jset(j, "outstanding", json_deep_copy(p->labels));
		json_array_append_new(r->arr, j);
	} else if (strcmp(p->d->status, "open") != 0)
		r->closed++;	/* one line for them all, below */
	else
		cli_remind_line(p, labels);
	return 0;
}

static int
cli_remind_dry(struct cli_ctx *c, int64_t now)
{
	struct notify_env env = { c->cfg, c->st, NULL };
	struct cli_remind_dry r = { c, c->json ? json_array() : NULL, 0, 0 };

	if (!c->json)
		printf("dry run at %s: nothing queued, nothing changed\n",
		    cli_time(now));
	if (notify_reminders_plan(&env, now, 1, cli_remind_dry_cb, &r,
	    c->err) != 0) {
		json_decref(r.arr);
		return CLI_ERR;
	}
	if (c->json) {
		cli_json_print(json_pack("{s:b, s:I, s:i, s:o}", "dry_run", 1,
		    "now", (json_int_t)now, "would_queue", (int)r.would,
		    "dossiers", r.arr));
		return CLI_OK;
	}
	if (r.closed > 0)
		printf("%u closed dossier%s: never reminded\n", r.closed,
		    r.closed == 1 ? "" : "s");
	if (c->cfg->reminder_days[0] == '\0')
		printf("reminders are off: outbound.reminder_days is empty\n");
	printf("%u reminder%s would be queued\n", r.would,
	    r.would == 1 ? "" : "s");
	return CLI_OK;
}

static int
cli_remind(struct cli_ctx *c)
{
	struct notify_env env = { c->cfg, c->st, NULL };
	unsigned n = 0;
	int64_t now = pd_now();
	int rc;

	if ((c->seen & B(OPT_DRY_RUN)) && (c->seen & B(OPT_QUEUE_ONLY)))
		return cli_usage_err(c, "--dry-run queues nothing: it does "
		    "not go with --queue-only");
	if (c->val[OPT_NOW] != NULL &&
	    (rc = cli_parse_when(c, "--now", c->val[OPT_NOW], &now)) != 0)
		return rc;
	if (c->seen & B(OPT_DRY_RUN))
		return cli_remind_dry(c, now);
	if (cli_ctx_open_outbound(c) != 0)
		return CLI_ERR;
	env.q = c->q;
	if (notify_reminders(&env, now, &n, c->err) != 0 ||
	    cli_deliver_now(c) != 0)
		return CLI_ERR;
	if (c->json)
		cli_json_print(json_pack("{s:i}", "queued", (int)n));
	else
		printf("%u reminder%s queued\n", n, n == 1 ? "" : "s");
	return CLI_OK;
}

static int
cli_queue_run(struct cli_ctx *c)
{
	struct outq_stats st;

	memset(&st, 0, sizeof(st));
	if (outq_run_once(c->q, &st, c->err) != 0)
		return CLI_ERR;
	if (c->json)
		cli_json_print(json_pack("{s:i, s:i, s:i, s:i}", "sent",
		    (int)st.sent, "deferred", (int)st.deferred, "bounced",
		    (int)st.bounced, "failed", (int)st.failed));
	else
		printf("sent %u, deferred %u, bounced %u, failed %u\n",
		    st.sent, st.deferred, st.bounced, st.failed);
	return CLI_OK;
}

static int
cli_queue_row_cb(const struct store_outbound *o, void *ctx)
{
	json_t *arr = ctx;

	if (arr != NULL)
		json_array_append_new(arr, cli_outbound_json(o));
	else
		cli_outbound_text(o);
	return 0;
}

static int
cli_queue_list(struct cli_ctx *c)
{
	json_t *arr;
	int64_t acct;
	int rc;

	if (c->val[OPT_STATUS] != NULL && (rc = cli_check_choice(c,
	    "--status", c->val[OPT_STATUS], outq_view_states)) != 0)
		return rc;
	if (cli_account_scope(c, &acct) < 0)
		return CLI_ERR;
	arr = c->json ? json_array() : NULL;
	cli_list_header(c, "ID\tKIND\tRECIPIENT\tSTATE\tUPDATED\t"
	    "LAST REPLY");
	if (outq_view_list(c->st, acct, c->val[OPT_STATUS], cli_queue_row_cb,
	    arr, c->err) != 0) {
		json_decref(arr);
		return CLI_ERR;
	}
	if (arr != NULL)
		cli_json_print(arr);
	return CLI_OK;
}

static int
cli_cat(struct cli_ctx *c, const char *path)
{
	char buf[65536];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL) {
		snprintf(c->err, sizeof(c->err), "%s: %s", path,
		    strerror(errno));
		return CLI_ERR;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	fclose(f);
	return CLI_OK;
}

/* The message exactly as it would be queued (before DKIM signing). */
static int
cli_template_render(struct cli_ctx *c)
{
	char dir[] = "/tmp/postdoc-preview-XXXXXX", path[64];
	json_error_t je;
	json_t *data = json_load_file(c->val[OPT_DATA], 0, &je);
	int rc = CLI_ERR;

	if (data == NULL || !json_is_object(data)) {
		snprintf(c->err, sizeof(c->err), "%s:%d: %s", c->val[OPT_DATA],
		    je.line, data == NULL ? je.text : "not a JSON object");
		json_decref(data);
		return CLI_ERR;
	}
	if (mkdtemp(dir) == NULL) {
		snprintf(c->err, sizeof(c->err), "mkdtemp: %s",
		    strerror(errno));
		json_decref(data);
		return CLI_ERR;
	}
	snprintf(path, sizeof(path), "%s/preview.eml", dir);
	if (notify_preview(c->cfg, c->st, c->pos[2], c->val[OPT_LOCALE],
	    c->val[OPT_ACCOUNT] ? c->val[OPT_ACCOUNT] : "", data,
	    c->val[OPT_TO], path, c->err) == 0)
		rc = cli_cat(c, path);
	unlink(path);
	rmdir(dir);
	json_decref(data);
	return rc;
}

/* The mailbox plugin connects and reports; it changes nothing there. */
static int
cli_mailbox_check(struct cli_ctx *c)
{
	const char *argv[] = { "check", c->pos[2] };
	int rc;

	if (plugin_host_load(c->cfg, &c->ph, c->err) != 0)
		return CLI_ERR;
	rc = plugin_command(c->ph, "mailbox", 2, argv, stdout, c->err);
	return rc == 0 ? CLI_OK : rc == -2 ? CLI_USAGE : CLI_ERR;
}

/* The other families answer their own groups, tried in this order. */
static const struct cli_family *const cli_families[] = {
	&consent_cli_family,	/* the consent ledger and campaigns */
	&privacy_cli_family,	/* data subjects' rights, retention, audit */
	&api_cli_family,	/* API tokens and the API's route table */
	&evq_cli_family,	/* event deliveries to plugins */
	&trust_cli_family,	/* sender authentication, checked by hand */
};

int
cli_main(int argc, char **argv)
{
	size_t i;

	for (i = 0; i < NELEM(cli_families); i++)
		if (cli_family_handles(cli_families[i], argc, argv))
			return cli_family_run(cli_families[i], argc, argv);
	return cli_family_run(&cli_root, argc, argv);
}

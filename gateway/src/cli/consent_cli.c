/*
 * consent_cli.c - the operator commands of the consent ledger and of
 * campaigns (purpose, consent, contact, campaign, notice), a command
 * family (cli_args.h).  It owns no data and no rules: the ledger is
 * consent.c, contacts and purposes contact.c, sending campaign.c, reads
 * campaign_view.c, names dossier_valid_*; it never calls the store.
 * Exit 0 ok, 1 error, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_args.h"
#include "cli_int.h"
#include "consent/campaign.h"
#include "consent/campaign_view.h"
#include "consent/consent.h"
#include "consent/contact.h"
#include "consent_cli.h"
#include "dossier/dossier.h"
#include "lib/util.h"
#include "outbound/markdown.h"
#include "outbound/outq.h"
#include "privacy/privacy.h"

enum cc_opt {
	CO_ACCOUNT, CO_PURPOSE, CO_BASIS, CO_SOURCE, CO_TEXT, CO_METHOD,
	CO_ADULT, CO_TEMPLATE, CO_SUBJECT, CO_LOCALE, CO_DAYS, CO_REASON,
	CO_QUEUE_ONLY, CO_RECONSENT, CO_DRY_RUN, CO_BODY, CO_TO,
	CO_LABEL_FR, CO_LABEL_EN, CO_COUNT
};

static const struct cli_optdef cc_opts[CO_COUNT] = {
	[CO_ACCOUNT] = { "--account", NULL, 1 }, [CO_PURPOSE] = { "--purpose", NULL, 1 },
	[CO_BASIS] = { "--basis", NULL, 1 }, [CO_SOURCE] = { "--source", NULL, 1 },
	[CO_TEXT] = { "--text-file", NULL, 1 }, [CO_METHOD] = { "--method", NULL, 1 },
	[CO_ADULT] = { "--adult", NULL, 1 }, [CO_TEMPLATE] = { "--template", NULL, 1 },
	[CO_SUBJECT] = { "--subject", NULL, 1 }, [CO_LOCALE] = { "--locale", NULL, 1 },
	[CO_DAYS] = { "--days", NULL, 1 }, [CO_REASON] = { "--reason", NULL, 1 },
	[CO_QUEUE_ONLY] = { "--queue-only", NULL, 0 },
	[CO_RECONSENT] = { "--reconsent", NULL, 0 },
	[CO_DRY_RUN] = { "--dry-run", NULL, 0 },
	[CO_BODY] = { "--body", NULL, 1 }, [CO_TO] = { "--to", NULL, 1 },
	[CO_LABEL_FR] = { "--label-fr", NULL, 1 },
	[CO_LABEL_EN] = { "--label-en", NULL, 1 },
};

#define O(x) (1u << (x))
#define CC_STORE CLI_NEED_STORE
#define CC_OUT (CLI_NEED_STORE | CLI_NEED_OUTBOUND)	/* queue, deliver */

static int cc_purpose_add(struct cli_ctx *c);
static int cc_purpose_list(struct cli_ctx *c);
static int cc_purpose_label(struct cli_ctx *c);
static int cc_consent_change(struct cli_ctx *c);
static int cc_consent_show(struct cli_ctx *c);
static int cc_consent_import(struct cli_ctx *c);
static int cc_consent_request(struct cli_ctx *c);
static int cc_contact_attest(struct cli_ctx *c);
static int cc_contact_suppress(struct cli_ctx *c);
static int cc_campaign_create(struct cli_ctx *c);
static int cc_campaign_send(struct cli_ctx *c);
static int cc_campaign_show(struct cli_ctx *c);
static int cc_campaign_preview(struct cli_ctx *c);
static int cc_campaign_test(struct cli_ctx *c);
static int cc_campaign_list(struct cli_ctx *c);
static int cc_notice_send(struct cli_ctx *c);

#define CC_LEDGER O(CO_ACCOUNT) | O(CO_PURPOSE) | O(CO_BASIS) | \
	O(CO_SOURCE) | O(CO_TEXT) | O(CO_METHOD)
#define CC_GRANT (CC_LEDGER | O(CO_RECONSENT))

static const struct cli_cmd cc_cmds[] = {
	{ "purpose", "add", 2, O(CO_LABEL_FR) | O(CO_LABEL_EN), 0, CC_STORE,
	    cc_purpose_add, "purpose add ACCOUNT NAME [--label-fr TEXT] "
	    "[--label-en TEXT]" },
	{ "purpose", "label", 4, 0, 0, CC_STORE, cc_purpose_label,
	    "purpose label ACCOUNT NAME LOCALE TEXT   (\"\" removes it)" },
	{ "purpose", "list", 1, 0, 0, CC_STORE, cc_purpose_list,
	    "purpose list ACCOUNT [--json]" },
	{ "consent", "grant", 1, CC_GRANT, O(CO_ACCOUNT) | O(CO_PURPOSE),
	    CC_STORE, cc_consent_change, "consent grant EMAIL --account A "
	    "--purpose P [--basis consent|contract|legitimate_interest] "
	    "[--source admin] [--text-file F] [--reconsent]" },
	{ "consent", "withdraw", 1, CC_LEDGER, O(CO_ACCOUNT) | O(CO_PURPOSE),
	    CC_STORE, cc_consent_change, "consent withdraw EMAIL --account A "
	    "--purpose P [--source admin]" },
	{ "consent", "show", 1, O(CO_ACCOUNT), O(CO_ACCOUNT), CC_STORE,
	    cc_consent_show, "consent show EMAIL --account A [--json]" },
	{ "consent", "import", 1, CC_GRANT, O(CO_ACCOUNT) | O(CO_PURPOSE) |
	    O(CO_TEXT), CC_STORE, cc_consent_import, "consent import FILE.csv "
	    "--account A --purpose P --text-file F [--source import] "
	    "[--reconsent]" },
	{ "consent", "request", 1, O(CO_ACCOUNT) | O(CO_PURPOSE) | O(CO_TEXT) |
	    O(CO_QUEUE_ONLY) | O(CO_LOCALE) | O(CO_RECONSENT), O(CO_ACCOUNT) |
	    O(CO_PURPOSE), CC_OUT, cc_consent_request, "consent request EMAIL "
	    "--account A --purpose P [--text-file F] [--locale fr] "
	    "[--reconsent] [--queue-only]" },
	{ "contact", "attest", 1, O(CO_ACCOUNT) | O(CO_ADULT), O(CO_ACCOUNT) |
	    O(CO_ADULT), CC_STORE, cc_contact_attest,
	    "contact attest EMAIL --account A --adult yes|no|unknown" },
	{ "contact", "suppress", 1, O(CO_ACCOUNT) | O(CO_DAYS) | O(CO_REASON),
	    O(CO_ACCOUNT), CC_STORE, cc_contact_suppress,
	    "contact suppress EMAIL --account A [--days N] [--reason TEXT]" },
	{ "campaign", "create", 0, O(CO_ACCOUNT) | O(CO_PURPOSE) |
	    O(CO_TEMPLATE) | O(CO_BODY) | O(CO_SUBJECT) | O(CO_LOCALE),
	    O(CO_ACCOUNT) | O(CO_PURPOSE) | O(CO_SUBJECT), CC_STORE,
	    cc_campaign_create,
	    "campaign create --account A --purpose P --subject TEXT "
	    "--body FILE.md|--template newsletter [--locale fr] [--json]" },
	{ "campaign", "preview", 1, O(CO_TO), 0, CC_STORE,
	    cc_campaign_preview, "campaign preview ID [--to EMAIL] [--json]   "
	    "(the message one reader gets; nothing stored)" },
	{ "campaign", "test", 1, O(CO_TO) | O(CO_QUEUE_ONLY), O(CO_TO), CC_OUT,
	    cc_campaign_test, "campaign test ID --to EMAIL [--queue-only]   "
	    "(one copy, subject \"[TEST] ...\", not counted)" },
	{ "campaign", "list", 0, O(CO_ACCOUNT), O(CO_ACCOUNT), CC_STORE,
	    cc_campaign_list, "campaign list --account A [--json]" },
	{ "campaign", "send", 1, O(CO_QUEUE_ONLY) | O(CO_DRY_RUN), 0, CC_STORE,
	    cc_campaign_send, "campaign send ID [--dry-run [--json]] "
	    "[--queue-only]   (fixes the audience, says who is left out and "
	    "why, queues and delivers; --dry-run: who would get it, changes "
	    "nothing; --queue-only: queue only, the running server "
	    "delivers)" },
	{ "campaign", "show", 1, 0, 0, CC_STORE, cc_campaign_show,
	    "campaign show ID [--json]   (state draft, sending or sent; "
	    "outcomes; who was left out and why)" },
	{ "notice", "send", 0, O(CO_ACCOUNT) | O(CO_TEMPLATE) | O(CO_LOCALE) |
	    O(CO_QUEUE_ONLY) | O(CO_DRY_RUN), O(CO_ACCOUNT) | O(CO_TEMPLATE),
	    CC_STORE, cc_notice_send,
	    "notice send --account A --template privacy-notice [--locale fr] "
	    "[--dry-run [--json]] [--queue-only]   (to every contact but "
	    "suppressed, bounced, erased and invalid addresses; --dry-run: "
	    "who would get it, changes nothing; --queue-only: queue only, "
	    "the running server delivers)" },
};

static int cc_open(struct cli_ctx *c);

const struct cli_family consent_cli_family = {
	cc_opts, CO_COUNT, cc_cmds, sizeof(cc_cmds) / sizeof(cc_cmds[0]),
	NULL, cc_open, NULL
};

/* ---- environment ---- */

/* Who did it, for the ledger's admin records. */
static int
cc_open(struct cli_ctx *c)
{
	struct passwd *pw = getpwuid(getuid());
	const char *who = getenv("SUDO_USER");

	pd_ascii_clean(c->actor, sizeof(c->actor), who != NULL ? who :
	    pw != NULL ? pw->pw_name : "?");
	return 0;
}

static int
cc_purpose(struct cli_ctx *c, int64_t *id_r)
{
	int rc = consent_purpose_get(c->st, c->account_id, c->val[CO_PURPOSE],
	    id_r, c->err);

	if (rc == 0)
		snprintf(c->err, sizeof(c->err), "no purpose \"%.64s\" in "
		    "account %s (postdoc purpose add)", c->val[CO_PURPOSE],
		    c->val[CO_ACCOUNT]);
	return rc == 1 ? 0 : -1;
}

static int
cc_email(struct cli_ctx *c, const char *in, char *out, size_t len)
{
	if (consent_email_norm(in, out, len))
		return 0;
	snprintf(c->err, sizeof(c->err), "not a valid address: %.100s", in);
	return -1;
}

static int
cc_deliver(struct cli_ctx *c)
{
	struct outq_stats s;

	if (c->seen & O(CO_QUEUE_ONLY))
		return 0;
	if (outq_run_once(c->q, &s, c->err) != 0)
		return -1;
	if (!c->json)
		printf("delivered: %u sent, %u deferred, %u bounced, %u failed\n",
		    s.sent, s.deferred, s.bounced, s.failed);
	return 0;
}

/* ---- purposes ---- */

/*
 * A purpose's internal name is for operators and URLs; readers see its
 * display name in their language (--label-fr, --label-en, `purpose
 * label` for any other), the English one else, the name last.
 */
static int
cc_purpose_add(struct cli_ctx *c)
{
	const struct consent_label labels[] = {
		{ "fr", c->val[CO_LABEL_FR] }, { "en", c->val[CO_LABEL_EN] } };
	int64_t id;

	if (!dossier_valid_word(c->pos[3]))
		return cli_usage_err(c, "a purpose name is [a-z0-9_-]{1,32}: "
		    "%s", c->pos[3]);
	if (cli_ctx_account(c, c->pos[2]) != 0 ||
	    consent_purpose_add_labelled(c->st, c->account_id, c->pos[3],
	    labels, 2, &id, c->err) != 0)
		return CLI_ERR;
	if (c->json)
		printf("{\"id\": %" PRId64 ", \"name\": \"%s\"}\n", id,
		    c->pos[3]);
	else
		printf("purpose %s added to %s (id %" PRId64 ")\n", c->pos[3],
		    c->pos[2], id);
	return CLI_OK;
}

static int
cc_purpose_label(struct cli_ctx *c)
{
	const char *locale = c->pos[4], *label = c->pos[5];
	int64_t id;
	int rc;

	if (cli_ctx_account(c, c->pos[2]) != 0)
		return CLI_ERR;
	rc = consent_purpose_get(c->st, c->account_id, c->pos[3], &id, c->err);
	if (rc == 0)
		snprintf(c->err, sizeof(c->err), "no purpose \"%.64s\" in "
		    "account %s (postdoc purpose list %s)", c->pos[3],
		    c->pos[2], c->pos[2]);
	if (rc != 1 || consent_purpose_label_set(c->st, c->account_id, id,
	    locale, label, c->err) != 0)
		return CLI_ERR;
	if (label[0] == '\0')
		printf("purpose %s: %s label removed\n", c->pos[3], locale);
	else
		printf("purpose %s: %s label set\n", c->pos[3], locale);
	return CLI_OK;
}

struct cc_purposes {
	struct cli_ctx *c;
	json_t *arr;
	json_t *labels;			/* of the row being listed */
	char text[1024];
};

static int
cc_label_row(const char *locale, const char *label, void *ctx)
{
	struct cc_purposes *p = ctx;
	size_t n = strlen(p->text);

	if (p->arr != NULL)
		json_object_set_new(p->labels, locale, json_string(label));
	else
		snprintf(p->text + n, sizeof(p->text) - n, "%s%s=%s",
		    n > 0 ? "  " : "", locale, label);
	return 0;
}

static int
cc_purpose_row(int64_t id, const char *name, void *ctx)
{
	struct cc_purposes *p = ctx;

	p->text[0] = '\0';
	p->labels = json_object();
	if (consent_purpose_labels(p->c->st, id, cc_label_row, p, p->c->err)
	    != 0) {
		json_decref(p->labels);
		return -1;
	}
	if (p->arr != NULL)
		json_array_append_new(p->arr, json_pack("{s:I, s:s, s:o}",
		    "id", (json_int_t)id, "name", name, "labels", p->labels));
	else {
		json_decref(p->labels);
		printf("%" PRId64 "\t%s\t%s\n", id, name, p->text[0] != '\0' ?
		    cli_safe(p->text) : "-");
	}
	return 0;
}

static int
cc_purpose_list(struct cli_ctx *c)
{
	struct cc_purposes p = { c, c->json ? json_array() : NULL, NULL, "" };
	int rc;

	if (cli_ctx_account(c, c->pos[2]) != 0) {
		json_decref(p.arr);
		return CLI_ERR;
	}
	cli_list_header(c, "ID\tNAME\tLABELS");
	rc = consent_purpose_list(c->st, c->account_id, cc_purpose_row, &p,
	    c->err);
	if (p.arr != NULL) {
		if (rc == 0) {
			json_dumpf(p.arr, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
		}
		json_decref(p.arr);
	}
	return rc == 0 ? CLI_OK : CLI_ERR;
}

/* ---- ledger ---- */

static int
cc_act(struct cli_ctx *c, struct consent_act *a, const char *action,
    const char *def_source)
{
	memset(a, 0, sizeof(*a));
	a->action = action;
	a->basis = c->val[CO_BASIS] != NULL ? c->val[CO_BASIS] : "consent";
	a->source = c->val[CO_SOURCE] != NULL ? c->val[CO_SOURCE] : def_source;
	a->method = c->val[CO_METHOD];
	a->operator_ = c->actor;
	a->account = c->val[CO_ACCOUNT];
	a->reconsent = (c->seen & O(CO_RECONSENT)) != 0;
	if (!consent_basis_valid(a->basis))
		return cli_usage_err(c, "--basis is consent, contract or "
		    "legitimate_interest, not %s", a->basis);
	if (!consent_source_valid(a->source))
		return cli_usage_err(c, "--source is form, api, import, "
		    "double_opt_in, one_click, mailto or admin, not %s",
		    a->source);
	if (c->val[CO_TEXT] != NULL && consent_text_load(c->st,
	    c->account_id, c->val[CO_TEXT], &a->text_id, c->err) != 0)
		return CLI_ERR;
	return 0;
}

/* An operator's change, on the audit trail (privacy.c). */
static int
cc_audit(struct cli_ctx *c, const char *action, const char *email,
    const char *what)
{
	struct privacy_env env = { c->cfg, c->st, NULL, c->actor };
	json_t *d = json_pack("{s:s, s:s?}", "change", what, "purpose",
	    c->val[CO_PURPOSE]);
	char *js = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
	int rc = privacy_audit(&env, action, c->val[CO_ACCOUNT], email,
	    js != NULL ? js : "", c->err);

	free(js);
	json_decref(d);
	return rc;
}

/*
 * An erased address is granted again only when the operator says the
 * person came back on their own (--reconsent); the grant then lifts
 * the erasure for this account (consent_apply, one transaction).
 */
static int
cc_erased_gate(struct cli_ctx *c, struct consent_act *a, const char *email,
    char hash[65])
{
	char why[400];
	int rc = consent_erased_gate(c->cfg, c->st, c->account_id, email,
	    a->reconsent, hash, why, sizeof(why), c->err);

	if (rc < 0)
		return CLI_ERR;
	if (rc == 0) {
		pd_err(c->err, "%s from account %s: consent is not granted "
		    "again silently; if the person came back on their own, "
		    "run it again with --reconsent (recorded with its source)",
		    why, c->val[CO_ACCOUNT]);
		return CLI_ERR;
	}
	a->lift_hash = hash[0] != '\0' ? hash : NULL;
	return CLI_OK;
}

static int
cc_consent_change(struct cli_ctx *c)
{
	struct consent_act a;
	char email[320], hash[65] = "";
	int64_t pid, cid;
	int rc;

	if (cli_ctx_account(c, c->val[CO_ACCOUNT]) != 0 ||
	    cc_purpose(c, &pid) != 0 ||
	    cc_email(c, c->pos[2], email, sizeof(email)) != 0)
		return CLI_ERR;
	if ((rc = cc_act(c, &a, c->pos[1], "admin")) != 0)
		return rc;
	if (strcmp(a.action, "grant") == 0 &&
	    (rc = cc_erased_gate(c, &a, email, hash)) != CLI_OK)
		return rc;
	if (consent_contact_ensure(c->st, c->account_id, email, &cid, c->err)
	    != 0 || (rc = consent_apply(c->st, c->account_id, cid, pid, &a,
	    c->err)) < 0)
		return CLI_ERR;
	if (rc > 0 && cc_audit(c, "consent.change", email, a.action) != 0)
		return CLI_ERR;
	printf("%s %s %s%s%s\n", email, strcmp(a.action, "grant") == 0 ?
	    "granted" : "withdrew", c->val[CO_PURPOSE], rc == 0 ?
	    " (unchanged: already so)" : "", rc > 0 && hash[0] != '\0' ?
	    " (re-consent after erasure: recorded; the erasure no longer "
	    "blocks this account)" : "");
	return CLI_OK;
}

struct cc_show {
	json_t *records;
	json_t *status;
};

static int
cc_show_row(const struct store_consent_rec *r, void *ctx)
{
	struct cc_show *s = ctx;
	char when[32];
	time_t t = (time_t)r->at;
	struct tm tm;

	json_object_set_new(s->status, r->purpose, json_string(
	    strcmp(r->action, "grant") == 0 ? "granted" : "withdrawn"));
	if (s->records != NULL) {
		json_array_append_new(s->records, json_pack("{s:I, s:s, s:s,"
		    " s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:o}", "id",
		    (json_int_t)r->id, "purpose", r->purpose, "action",
		    r->action, "basis", r->basis, "source", r->source,
		    "method", r->method, "at", (json_int_t)r->at, "ip", r->ip,
		    "user_agent", r->user_agent, "operator", r->operator_,
		    "text", r->text_id == 0 ? json_null() : json_pack(
		    "{s:I, s:s, s:s?}", "id", (json_int_t)r->text_id, "sha256",
		    r->text_sha256, "body", r->text)));
		return 0;
	}
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("  %s  %-8s %-16s %-8s basis=%s source=%s method=%s ip=%s "
	    "operator=%s", when, r->action, r->purpose, "", r->basis,
	    r->source, r->method[0] ? r->method : "-", r->ip[0] ? r->ip : "-",
	    r->operator_[0] ? r->operator_ : "-");
	if (r->text_id != 0)
		printf(" text=%" PRId64 " sha256=%s", r->text_id,
		    r->text_sha256);
	putchar('\n');
	return 0;
}

static int
cc_consent_show(struct cli_ctx *c)
{
	struct store_contact ct;
	struct cc_show s = { NULL, json_object() };
	char email[320];
	int rc;

	if (cli_ctx_account(c, c->val[CO_ACCOUNT]) != 0 ||
	    cc_email(c, c->pos[2], email, sizeof(email)) != 0)
		goto err;
	rc = consent_contact_find(c->st, c->account_id, email, &ct, c->err);
	if (rc != 1) {
		if (rc == 0)
			snprintf(c->err, sizeof(c->err), "no contact %s in %s",
			    email, c->val[CO_ACCOUNT]);
		goto err;
	}
	if (c->json)
		s.records = json_array();
	else
		printf("%s (account %s) adult=%s\nhistory:\n", ct.email,
		    ct.account, ct.adult);
	if (consent_records(c->st, c->account_id, ct.id, cc_show_row, &s,
	    c->err) != 0)
		goto err;
	if (c->json) {
		json_t *j = json_pack("{s:s, s:s, s:{s:s, s:I, s:s}, s:O, s:O}",
		    "email", ct.email, "account", ct.account, "adult", "value",
		    ct.adult, "at", (json_int_t)ct.adult_at, "by", ct.adult_by,
		    "status", s.status, "records", s.records);

		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(j);
	} else {
		const char *k;
		json_t *v;

		printf("status:\n");
		json_object_foreach(s.status, k, v)
			printf("  %s: %s\n", k, json_string_value(v));
	}
	json_decref(s.records);
	json_decref(s.status);
	return CLI_OK;
err:
	json_decref(s.records);
	json_decref(s.status);
	return CLI_ERR;
}

static int
cc_consent_import(struct cli_ctx *c)
{
	struct consent_import_stats s;
	struct consent_act a;
	int64_t pid;
	int rc;

	if (cli_ctx_account(c, c->val[CO_ACCOUNT]) != 0 ||
	    cc_purpose(c, &pid) != 0)
		return CLI_ERR;
	if ((rc = cc_act(c, &a, "grant", "import")) != 0)
		return rc;
	/* Refused lines lead the summary (stdout), or stderr beside JSON. */
	if (consent_import(c->cfg, c->st, c->account_id, pid, c->pos[2], &a,
	    c->json ? stderr : stdout, &s, c->err) != 0)
		return CLI_ERR;
	if (c->json)
		printf("{\"rows\": %u, \"imported\": %u, \"unchanged\": %u, "
		    "\"bad\": %u}\n", s.rows, s.imported, s.unchanged, s.bad);
	else
		printf("%u rows: %u imported, %u already granted, %u refused%s"
		    "\n", s.rows, s.imported, s.unchanged, s.bad, s.bad > 0 ?
		    " (the lines above; the other rows were imported)" : "");
	/* A refused row is an error a script must see. */
	return s.bad > 0 ? CLI_ERR : CLI_OK;
}

/*
 * Double opt-in by mail.  --locale is the reader's language (the form
 * she filled in): her mail and pages use it.  An erased address is
 * refused unless --reconsent, as for `consent grant`.
 */
static int
cc_consent_request(struct cli_ctx *c)
{
	char email[320];
	int64_t pid, oid = 0;
	struct consent_optin in = { .account = c->val[CO_ACCOUNT],
	    .purpose = c->val[CO_PURPOSE], .email = email,
	    .locale = c->val[CO_LOCALE], .source = "admin",
	    .operator_ = c->actor,
	    .reconsent = (c->seen & O(CO_RECONSENT)) != 0 };
	int rc;

	if (in.locale != NULL && !dossier_valid_word(in.locale))
		return cli_usage_err(c, "--locale is a language tag such as fr "
		    "or en, not %s", in.locale);
	if (cli_ctx_account(c, c->val[CO_ACCOUNT]) != 0 ||
	    cc_purpose(c, &pid) != 0 ||
	    cc_email(c, c->pos[2], email, sizeof(email)) != 0)
		return CLI_ERR;
	in.account_id = c->account_id;
	in.purpose_id = pid;
	if (c->val[CO_TEXT] != NULL && consent_text_load(c->st, c->account_id,
	    c->val[CO_TEXT], &in.text_id, c->err) != 0)
		return CLI_ERR;
	rc = consent_request(c->cfg, c->st, c->q, &in, &oid, c->err);
	if (rc == CONSENT_ERASED) {
		char why[PD_ERRLEN];

		memcpy(why, c->err, sizeof(why));
		pd_err(c->err, "%s from account %s: no confirmation request "
		    "goes to an erased address; if the person came back on "
		    "their own, run it again with --reconsent (recorded with "
		    "its source)", why, c->val[CO_ACCOUNT]);
		return CLI_ERR;
	}
	if (rc != 0)
		return CLI_ERR;
	printf("confirmation request queued for %s (outbound %" PRId64 ")\n",
	    email, oid);
	return cc_deliver(c) == 0 ? CLI_OK : CLI_ERR;
}

static int
cc_contact_attest(struct cli_ctx *c)
{
	const char *v = c->val[CO_ADULT];
	char email[320];

	if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0 &&
	    strcmp(v, "unknown") != 0)
		return cli_usage_err(c, "--adult is yes, no or unknown, not "
		    "%s", v);
	if (cli_ctx_account(c, c->val[CO_ACCOUNT]) != 0 ||
	    cc_email(c, c->pos[2], email, sizeof(email)) != 0 ||
	    consent_contact_attest(c->st, c->account_id, email, v, c->actor,
	    c->err) != 0 ||
	    cc_audit(c, "contact.attest", email, v) != 0)
		return CLI_ERR;
	printf("%s adult=%s\n", email, v);
	return CLI_OK;
}

static int
cc_contact_suppress(struct cli_ctx *c)
{
	char email[320], *end;
	long days = c->val[CO_DAYS] != NULL ? strtol(c->val[CO_DAYS], &end,
	    10) : (long)c->cfg->suppression_days;

	if (c->val[CO_DAYS] != NULL && (*end != '\0' || days < 1 ||
	    days > 36500))
		return cli_usage_err(c, "--days is 1..36500, not %s",
		    c->val[CO_DAYS]);
	if (cli_ctx_account(c, c->val[CO_ACCOUNT]) != 0 ||
	    cc_email(c, c->pos[2], email, sizeof(email)) != 0 ||
	    consent_contact_suppress(c->st, c->account_id, email,
	    c->val[CO_REASON] != NULL ? c->val[CO_REASON] : "operator",
	    pd_now() + (int64_t)days * 86400, c->err) != 0)
		return CLI_ERR;
	printf("%s suppressed for %ld days\n", email, days);
	return CLI_OK;
}

/* ---- campaigns ---- */

/*
 * A body file, whole: its errors name it (missing, unreadable, too big,
 * not UTF-8, empty), so the editor knows which file to fix.
 */
static int
cc_body_read(struct cli_ctx *c, const char *path, char **md_r, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *md;
	size_t n;
	int bad;

	if (f == NULL) {
		snprintf(c->err, sizeof(c->err), "%s: %s", path,
		    strerror(errno));
		return -1;
	}
	md = xmalloc(MARKDOWN_MAX + 2);
	n = fread(md, 1, MARKDOWN_MAX + 1, f);
	bad = ferror(f);
	fclose(f);
	if (bad) {
		snprintf(c->err, sizeof(c->err), "%s: cannot be read (a "
		    "directory?)", path);
		free(md);
		return -1;
	}
	md[n] = '\0';
	if (markdown_check(md, n, c->err) != 0) {
		char why[PD_ERRLEN];

		snprintf(why, sizeof(why), "%s", c->err);
		snprintf(c->err, sizeof(c->err), "%.200s: %.250s", path,
		    n > MARKDOWN_MAX ? "the body is more than 256 KiB" : why);
		free(md);
		return -1;
	}
	*md_r = md;
	*len_r = n;
	return 0;
}

static int
cc_campaign_create(struct cli_ctx *c)
{
	const char *tmpl = c->val[CO_TEMPLATE] ? c->val[CO_TEMPLATE] :
	    "newsletter";
	char *md = NULL;
	size_t len = 0;
	int64_t pid, id;
	int rc;

	if (c->val[CO_TEMPLATE] != NULL && c->val[CO_BODY] != NULL)
		return cli_usage_err(c, "--body (the campaign's own Markdown) "
		    "and --template (a template folder) exclude each other");
	if (!dossier_valid_word(tmpl) || (c->val[CO_LOCALE] != NULL &&
	    !dossier_valid_word(c->val[CO_LOCALE])))
		return cli_usage_err(c, "template and locale names are "
		    "[a-z0-9_-]{1,32}");
	if (cli_ctx_account(c, c->val[CO_ACCOUNT]) != 0 ||
	    cc_purpose(c, &pid) != 0)
		return CLI_ERR;
	if (c->val[CO_BODY] != NULL) {
		if (cc_body_read(c, c->val[CO_BODY], &md, &len) != 0)
			return CLI_ERR;
		rc = campaign_create_body(c->st, c->account_id, pid, md, len,
		    c->val[CO_SUBJECT], c->val[CO_LOCALE], &id, c->err);
		free(md);
	} else
		rc = campaign_create(c->st, c->account_id, pid, tmpl,
		    c->val[CO_SUBJECT], c->val[CO_LOCALE], &id, c->err);
	if (rc != 0)
		return CLI_ERR;
	if (c->json)
		printf("{\"id\": %" PRId64 "}\n", id);
	else
		printf("campaign %" PRId64 " created (draft)\n", id);
	return CLI_OK;
}

static int
cc_id(struct cli_ctx *c, const char *s, int64_t *id_r)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return cli_usage_err(c, "not an id: %s", s);
	*id_r = v;
	return 0;
}

struct cc_progress {
	int tty;		/* a bar on stderr */
	int64_t last;		/* the count last shown; -1: none yet */
	int64_t tenth;		/* the last tenth printed on a pipe */
};

/*
 * A bar on a terminal; on a pipe, a line each time a tenth more is
 * done, and at the end.  done counts committed recipients only
 * (campaign.c): it moves by whole batches, so a tenth is crossed, not
 * hit, and the same count comes many times.
 */
static void
cc_progress(int64_t done, int64_t total, void *ctx)
{
	struct cc_progress *p = ctx;
	int w = 40, i, fill;

	if (done == p->last)
		return;
	p->last = done;
	if (p->tty) {
		fill = total > 0 ? (int)(done * w / total) : w;
		fputs("\rqueueing [", stderr);
		for (i = 0; i < w; i++)
			fputc(i < fill ? '#' : '.', stderr);
		fprintf(stderr, "] %" PRId64 "/%" PRId64, done, total);
		if (done >= total)
			fputc('\n', stderr);
		fflush(stderr);
	} else if (done >= total || done * 10 / total > p->tenth) {
		p->tenth = done >= total ? 10 : done * 10 / total;
		printf("queued %" PRId64 "/%" PRId64 "\n", done, total);
		fflush(stdout);
	}
}

/* Recipients a dry run names without --json (which lists them all). */
#define CC_SHOW_MAX 20
/* A campaign started before the audience was explained (store v10). */
#define CC_UNEXPLAINED "fixed before Postdoc kept who was left out and why"

/* "2 of 9 contacts eligible; left out: 1 no consent, 2 age unknown" */
static void
cc_audience_print(const struct campaign_audience *a, const char *account)
{
	const char *name;
	int i, any = 0;

	printf("%" PRId64 " of %" PRId64 " contacts eligible; left out:",
	    a->eligible, a->contacts);
	for (i = 1; (name = campaign_why_name(i)) != NULL; i++)
		if (campaign_why_count(a, i) > 0) {
			printf("%s %" PRId64 " %s", any ? "," : "",
			    campaign_why_count(a, i), name);
			any = 1;
		}
	printf("%s\n", any ? "" : " none");
	/* campaign_why_name(1) is "age unknown": the silent zero */
	if (campaign_why_count(a, 1) > 0)
		printf("age unknown: account %s sends newsletters to attested "
		    "adults only; attest with `postdoc contact attest EMAIL "
		    "--account %s --adult yes`, or set adult_required = false "
		    "for an audience of business contacts\n", account, account);
}

/* The addresses a dry run names: all in JSON, else the first few. */
struct cc_names {
	json_t *all;		/* --json */
	int64_t n;
	char first[CC_SHOW_MAX][320];
};

static int
cc_name_cb(int64_t contact_id, const char *email, void *ctx)
{
	struct cc_names *l = ctx;

	(void)contact_id;
	if (l->all != NULL)
		json_array_append_new(l->all, json_string(email));
	else if (l->n < CC_SHOW_MAX)
		snprintf(l->first[l->n], sizeof(l->first[0]), "%s", email);
	l->n++;
	return 0;
}

static void
cc_names_print(const struct cc_names *l, const char *what)
{
	int64_t i;

	printf("%s: %" PRId64 "\n", what, l->n);
	for (i = 0; i < l->n && i < CC_SHOW_MAX; i++)
		printf("  %s\n", l->first[i]);
	if (l->n > CC_SHOW_MAX)
		printf("  ... and %" PRId64 " more (--json lists them all)\n",
		    l->n - CC_SHOW_MAX);
}

/* `campaign send ID --dry-run`: reads only, whatever the state. */
static int
cc_campaign_dry(struct cli_ctx *c, int64_t id)
{
	struct store_campaign k;
	struct campaign_audience a;
	struct cc_names *l = xcalloc(1, sizeof(*l));
	int fixed = 0, rc;

	if ((rc = campaign_view_get(c->st, 0, id, &k, c->err)) != 1) {
		if (rc == 0)
			snprintf(c->err, sizeof(c->err), "no campaign %lld",
			    (long long)id);
		free(l);
		return CLI_ERR;
	}
	l->all = c->json ? json_array() : NULL;
	if (campaign_dry_run(c->cfg, c->st, &k, cc_name_cb, l, &a, &fixed,
	    c->err) != 0) {
		json_decref(l->all);
		free(l);
		return CLI_ERR;
	}
	if (c->json) {
		json_t *j = json_pack("{s:I, s:b, s:b, s:o, s:s, s:o}", "id",
		    (json_int_t)id, "dry_run", 1, "fixed", fixed, "audience",
		    campaign_audience_json(&a), "recipients_are", fixed ?
		    "pending" : "eligible", "recipients", l->all);

		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(j);
	} else {
		printf("campaign %" PRId64 " dry run, nothing changed%s\n", id,
		    fixed ? "; audience fixed when sending started:" : ":");
		if (!fixed || k.audience[0] != '\0')
			cc_audience_print(&a, k.account);
		else
			printf("%s\n", CC_UNEXPLAINED);
		cc_names_print(l, fixed ? "still pending (would be queued)" :
		    "would be queued");
	}
	free(l);
	return CLI_OK;
}

static int
cc_campaign_send(struct cli_ctx *c)
{
	struct campaign_stats s;
	struct campaign_audience a;
	struct store_campaign k;
	struct cc_progress p = { isatty(STDERR_FILENO) && !c->json, -1, 0 };
	int64_t id;
	int rc;

	if ((rc = cc_id(c, c->pos[2], &id)) != 0)
		return rc;
	if (c->seen & O(CO_DRY_RUN)) {
		if (c->seen & O(CO_QUEUE_ONLY))
			return cli_usage_err(c, "--dry-run queues nothing: "
			    "drop --queue-only");
		return cc_campaign_dry(c, id);
	}
	/* Only a real run loads the plugins (DKIM may make its key) and
	 * opens the queue: a dry run leaves no file behind. */
	if (cli_ctx_open_outbound(c) != 0)
		return CLI_ERR;
	/* The audience explained before anything is queued. */
	if (campaign_start(c->cfg, c->st, id, &a, c->err) < 0 ||
	    campaign_view_get(c->st, 0, id, &k, c->err) != 1)
		return CLI_ERR;
	printf("campaign %" PRId64 ": ", id);
	if (k.audience[0] != '\0')
		cc_audience_print(&a, k.account);
	else
		printf("%s\n", CC_UNEXPLAINED);
	fflush(stdout);
	if (campaign_send(c->cfg, c->st, c->q, id, cc_progress, &p, &s,
	    c->err) != 0)
		return CLI_ERR;
	printf("campaign %" PRId64 ": %" PRId64 " recipients, %" PRId64
	    " queued now, %" PRId64 " skipped (no longer eligible), %" PRId64
	    " found queued\n", id, s.total, s.queued, s.skipped, s.resumed);
	fflush(stdout);
	return cc_deliver(c) == 0 ? CLI_OK : CLI_ERR;
}

/* "1 delivered, 2 waiting in the queue, 1 skipped (withdrawn 1)" */
static void
cc_outcomes_print(json_t *o)
{
	const char *key;
	json_t *v;
	int any = 0;

	printf("outcomes: %" JSON_INTEGER_FORMAT " delivered, %"
	    JSON_INTEGER_FORMAT " deferred, %" JSON_INTEGER_FORMAT
	    " bounced, %" JSON_INTEGER_FORMAT " failed, %" JSON_INTEGER_FORMAT
	    " waiting in the queue, %" JSON_INTEGER_FORMAT " not queued yet, %"
	    JSON_INTEGER_FORMAT " skipped at send time",
	    json_integer_value(json_object_get(o, "delivered")),
	    json_integer_value(json_object_get(o, "deferred")),
	    json_integer_value(json_object_get(o, "bounced")),
	    json_integer_value(json_object_get(o, "failed")),
	    json_integer_value(json_object_get(o, "waiting")),
	    json_integer_value(json_object_get(o, "pending")),
	    json_integer_value(json_object_get(o, "skipped")));
	json_object_foreach(json_object_get(o, "skipped_by_reason"), key, v) {
		printf("%s%s %" JSON_INTEGER_FORMAT, any ? ", " : " (", key,
		    json_integer_value(v));
		any = 1;
	}
	printf("%s\n", any ? ")" : "");
}

static int
cc_campaign_show(struct cli_ctx *c)
{
	struct store_campaign k;
	struct campaign_audience a;
	int64_t id;
	json_t *j, *r;
	int rc;

	if ((rc = cc_id(c, c->pos[2], &id)) != 0)
		return rc;
	if ((rc = campaign_view_get(c->st, 0, id, &k, c->err)) != 1) {
		if (rc == 0)
			snprintf(c->err, sizeof(c->err), "no campaign %lld",
			    (long long)id);
		return CLI_ERR;
	}
	if ((r = campaign_view_report(c->st, &k, c->err)) == NULL)
		return CLI_ERR;
	j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "id",
	    (json_int_t)k.id, "account", k.account, "purpose", k.purpose,
	    "template", k.tmpl, "subject", k.subject, "locale", k.locale,
	    "created", (json_int_t)k.created, "started", (json_int_t)k.started,
	    "finished", (json_int_t)k.finished);
	json_object_update(j, r);
	json_decref(r);
	if (c->json) {
		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	} else {
		printf("campaign %" PRId64 " (%s/%s) template=%s state=%s\n"
		    "subject: %s\n", k.id, k.account, k.purpose, k.tmpl,
		    json_string_value(json_object_get(j, "state")), k.subject);
		if (strcmp(k.state, "draft") == 0)
			printf("audience: not fixed yet (`postdoc campaign "
			    "send %" PRId64 " --dry-run` shows it now)\n", id);
		else if (campaign_audience_load(k.audience, &a) == 0) {
			printf("audience: ");
			cc_audience_print(&a, k.account);
		} else
			printf("audience: %s\n", CC_UNEXPLAINED);
		if (strcmp(k.state, "draft") != 0)
			cc_outcomes_print(json_object_get(j, "outcomes"));
	}
	json_decref(j);
	return CLI_OK;
}

struct cc_notice_names {
	json_t *all;		/* --json: [{email, left_out}] */
	int64_t shown;
};

/* A dry run names each contact: who gets it, who is left out and why. */
static int
cc_notice_cb(const char *email, const char *why, void *ctx)
{
	struct cc_notice_names *l = ctx;

	if (l->all != NULL) {
		json_array_append_new(l->all, json_pack("{s:s, s:o}", "email",
		    email, "left_out", why != NULL ? json_string(why) :
		    json_null()));
		return 0;
	}
	if (l->shown++ < CC_SHOW_MAX)
		printf("  %s%s%s%s\n", email, why != NULL ? " (left out: " :
		    "", why != NULL ? why : "", why != NULL ? ")" : "");
	else if (l->shown == CC_SHOW_MAX + 1)
		printf("  ... (--json lists every contact)\n");
	return 0;
}

static int
cc_notice_send(struct cli_ctx *c)
{
	struct campaign_notice_stats s;
	struct cc_notice_names l = { NULL, 0 };
	int dry = (c->seen & O(CO_DRY_RUN)) != 0;

	if (!dossier_valid_word(c->val[CO_TEMPLATE]))
		return cli_usage_err(c, "not a template name: %s",
		    c->val[CO_TEMPLATE]);
	if (dry && (c->seen & O(CO_QUEUE_ONLY)))
		return cli_usage_err(c, "--dry-run queues nothing: drop "
		    "--queue-only");
	if (cli_ctx_account(c, c->val[CO_ACCOUNT]) != 0 ||
	    (!dry && cli_ctx_open_outbound(c) != 0))
		return CLI_ERR;
	if (dry && c->json)
		l.all = json_array();
	else if (dry)
		printf("notice %s dry run, nothing changed; contacts:\n",
		    c->val[CO_TEMPLATE]);
	if (campaign_notice(c->cfg, c->st, dry ? NULL : c->q,
	    c->val[CO_ACCOUNT], c->account_id, c->val[CO_TEMPLATE],
	    c->val[CO_LOCALE], dry ? cc_notice_cb : NULL, &l, &s, c->err)
	    != 0) {
		json_decref(l.all);
		return CLI_ERR;
	}
	if (dry && c->json) {
		json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:{s:I, s:I, s:I,"
		    " s:I}, s:o}", "template", c->val[CO_TEMPLATE], "dry_run", 1,
		    "contacts", (json_int_t)s.total, "would_send",
		    (json_int_t)s.queued, "left_out", "suppressed",
		    (json_int_t)s.suppressed, "bounced", (json_int_t)s.bounced,
		    "erased", (json_int_t)s.erased, "invalid_address",
		    (json_int_t)s.invalid, "recipients", l.all);

		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(j);
		return CLI_OK;
	}
	printf("notice %s: %" PRId64 " contacts, %" PRId64 " %s; left out: %"
	    PRId64 " suppressed, %" PRId64 " bounced, %" PRId64 " erased, %"
	    PRId64 " invalid address\n", c->val[CO_TEMPLATE], s.total,
	    s.queued, dry ? "would get it" : "queued", s.suppressed, s.bounced,
	    s.erased, s.invalid);
	if (dry)
		return CLI_OK;
	return cc_deliver(c) == 0 ? CLI_OK : CLI_ERR;
}

/* ---- trying a campaign: preview, test copy; the list ---- */

/* The built message, whole (it is at most a few times the 256 KiB body). */
static char *
cc_slurp(struct cli_ctx *c, const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, got;

	if (f == NULL) {
		snprintf(c->err, sizeof(c->err), "%.300s: %s", path,
		    strerror(errno));
		return NULL;
	}
	do {
		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 131072;
			buf = xrealloc(buf, cap + 1);
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static int
cc_campaign_preview(struct cli_ctx *c)
{
	struct campaign_preview p;
	int64_t id;
	json_t *j;
	char *raw;
	int rc;

	if ((rc = cc_id(c, c->pos[2], &id)) != 0)
		return rc;
	if ((rc = campaign_preview(c->cfg, c->st, 0, id, c->val[CO_TO], &p,
	    c->err)) != 1) {
		if (rc == 0)
			snprintf(c->err, sizeof(c->err), "no campaign %lld",
			    (long long)id);
		return CLI_ERR;
	}
	if (p.sample)
		fprintf(stderr, "note: %s is no contact of the account: its "
		    "unsubscribe link names nobody and unsubscribes nobody\n",
		    p.to);
	raw = cc_slurp(c, p.path);
	if (raw == NULL || !c->json) {
		if (raw != NULL)
			fputs(raw, stdout);
		free(raw);
		campaign_preview_free(&p);
		return raw != NULL ? CLI_OK : CLI_ERR;
	}
	j = json_pack("{s:I, s:s, s:s, s:b, s:s, s:s, s:s?, s:s?}", "id",
	    (json_int_t)id, "to", p.to, "locale", p.locale, "sample",
	    p.sample, "subject", p.subject, "text", p.text, "html", p.html,
	    "message", raw);
	json_dumpf(j, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(j);
	free(raw);
	campaign_preview_free(&p);
	return CLI_OK;
}

static int
cc_campaign_test(struct cli_ctx *c)
{
	int64_t id, oid;
	int rc;

	if ((rc = cc_id(c, c->pos[2], &id)) != 0)
		return rc;
	rc = campaign_test(c->cfg, c->st, c->q, 0, id, c->val[CO_TO], &oid,
	    c->err);
	if (rc == -2)
		snprintf(c->err, sizeof(c->err), "no campaign %lld",
		    (long long)id);
	if (rc != 0)
		return CLI_ERR;
	if (c->json)
		printf("{\"campaign\": %" PRId64 ", \"outbound\": %" PRId64
		    "}\n", id, oid);
	else
		printf("campaign %" PRId64 ": test copy queued to %s (out-%"
		    PRId64 "), not counted in the campaign\n", id,
		    c->val[CO_TO], oid);
	fflush(stdout);
	return cc_deliver(c) == 0 ? CLI_OK : CLI_ERR;
}

/* "sent=2 queued=1": a group of counts on one line. */
static void
cc_counts_line(json_t *grp)
{
	const char *key;
	json_t *v;
	int first = 1;

	json_object_foreach(grp, key, v) {
		printf("%s%s=%" JSON_INTEGER_FORMAT, first ? "" : " ", key,
		    json_integer_value(v));
		first = 0;
	}
	if (first)
		fputs("-", stdout);
}

/* One campaign of the list, with its true state and its counts (the
 * report campaign_view_report makes, as `campaign show` has it). */
static int
cc_campaign_row(const struct store_campaign *k, const char *label,
    json_t *report, void *ctx)
{
	json_t *arr = ctx, *row;
	const char *state = json_string_value(json_object_get(report,
	    "state"));

	if (arr != NULL) {
		row = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I}", "id",
		    (json_int_t)k->id, "purpose", k->purpose, "purpose_label",
		    label, "subject", k->subject, "body", k->has_body ?
		    "markdown" : "template", "template", k->tmpl, "created",
		    (json_int_t)k->created);
		json_object_update(row, report);
		json_array_append_new(arr, row);
		return 0;
	}
	printf("%" PRId64 "\t%s\t%s\t%s\t%s\t", k->id, label,
	    state != NULL ? state : k->state, cli_time(k->created),
	    k->subject);
	cc_counts_line(json_object_get(report, "recipients"));
	putchar('\t');
	cc_counts_line(json_object_get(report, "messages"));
	putchar('\n');
	return 0;
}

static int
cc_campaign_list(struct cli_ctx *c)
{
	json_t *arr = c->json ? json_array() : NULL;
	int rc;

	if (cli_ctx_account(c, c->val[CO_ACCOUNT]) != 0) {
		json_decref(arr);
		return CLI_ERR;
	}
	cli_list_header(c, "ID\tPURPOSE\tSTATE\tCREATED\tSUBJECT\t"
	    "RECIPIENTS\tMESSAGES");
	rc = campaign_view_list(c->cfg, c->st, c->account_id,
	    cc_campaign_row, arr, c->err);
	if (arr != NULL) {
		if (rc == 0) {
			json_dumpf(arr, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
		}
		json_decref(arr);
	}
	return rc == 0 ? CLI_OK : CLI_ERR;
}

/*
 * dossier_cli.c - the dossier loop at the operator's terminal: an
 * account's named checklists, `dossier create` (the contact as a person,
 * the items asked for), `dossier show` (the checklist first, documents
 * with their review, what the client wrote, the history), `dossier close
 * --notify`, and the review of documents (assign, accept, reject).  Every
 * decision is the dossier service's; this file words the outcome in one
 * line (or JSON) and never decides a rule itself.
 */
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_args.h"
#include "cli_int.h"
#include "dossier/dossier.h"
#include "lib/config.h"
#include "lib/util.h"
#include "outbound/outq.h"
#include "plugin/plugin_host.h"

#define DC_TEXT_MAX 2000	/* what the client wrote, on a terminal */
#define DC_JSON_TEXT_MAX 8000	/* and for a program */
#define DC_WIDTH 78		/* free text wraps to an 80-column terminal */

/* ---- small shared pieces ---- */

/* Who acts, for the history: "cli:<login name>". */
static void
dc_env(struct cli_ctx *c, struct dossier_env *env)
{
	struct passwd *pw = getpwuid(getuid());
	char who[48];

	if (pw != NULL)
		pd_ascii_clean(who, sizeof(who), pw->pw_name);
	else
		snprintf(who, sizeof(who), "uid%u", (unsigned)getuid());
	snprintf(c->actor, sizeof(c->actor), "cli:%s", who);
	*env = (struct dossier_env){ c->cfg, c->st, c->q, c->actor };
}

/* A service's answer: 0 ok, anything else has c->err (exit 1). */
static int
dc_fail(struct cli_ctx *c, const char *what)
{
	if (c->err[0] == '\0')
		snprintf(c->err, sizeof(c->err), "%s failed", what);
	return CLI_ERR;
}

/* "5 MB", "500 KB", "1234 bytes": how an item's limit reads. */
static void
dc_size(int64_t n, char *out, size_t len)
{
	if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
		snprintf(out, len, "%" PRId64 " MB", n / (1024 * 1024));
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(out, len, "%" PRId64 " KB", n / 1024);
	else
		snprintf(out, len, "%" PRId64 " bytes", n);
}

/* "required; PDF, JPEG; at most 5 MB" */
static void
dc_item_terms(const struct store_item *it, char *out, size_t len)
{
	char size[32];
	size_t o;

	o = (size_t)snprintf(out, len, "%s", it->required ? "required" :
	    "optional");
	if (it->types[0] != '\0' && o < len)
		o += (size_t)snprintf(out + o, len - o, "; %s", it->types);
	if (it->max_size > 0 && o < len) {
		dc_size(it->max_size, size, sizeof(size));
		snprintf(out + o, len - o, "; at most %s", size);
	}
}

/* An item's state, said to the operator. */
static const char *
dc_state_words(const char *state)
{
	if (strcmp(state, "requested") == 0)
		return "requested, nothing received yet";
	if (strcmp(state, "received") == 0)
		return "received, to review";
	if (strcmp(state, "rejected") == 0)
		return "rejected, asked again";
	return state;
}

/* --item and --optional, in the order given. */
static int
dc_items(struct cli_ctx *c, struct store_item **v_r, size_t *n_r)
{
	char e[PD_ERRLEN];
	int k, o;

	*n_r = 0;
	*v_r = xcalloc((size_t)c->nrep + 1, sizeof(**v_r));
	for (k = 0; k < c->nrep; k++) {
		o = c->rep_opt[k];
		if (o != OPT_ITEM && o != OPT_OPTIONAL)
			continue;
		e[0] = '\0';
		if (dossier_item_parse(c->rep_val[k], o == OPT_ITEM,
		    &(*v_r)[*n_r], e) != 0) {
			free(*v_r);
			*v_r = NULL;
			return cli_usage_err(c, "invalid %s \"%s\": %s",
			    o == OPT_ITEM ? "--item" : "--optional",
			    cli_safe(c->rep_val[k]), e);
		}
		(*n_r)++;
	}
	return 0;
}

struct dc_items_v {
	struct store_item *v;
	size_t n;
	int complete;			/* dossier_complete: the service's rule */
};

static int
dc_item_cb(const struct store_item *it, void *ctx)
{
	struct dc_items_v *l = ctx;

	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = *it;
	return 0;
}

static int
dc_load_items(struct cli_ctx *c, const struct store_dossier *d,
    struct dc_items_v *l)
{
	l->v = NULL;
	l->n = 0;
	if (dossier_items(c->st, d->account_id, d->id, dc_item_cb, l,
	    c->err) != 0)
		return -1;
	return dossier_complete(c->st, d->account_id, d->id, &l->complete,
	    c->err) == 0 ? 0 : -1;
}

/* How many required items there are and how many are accepted: words
 * for the operator ("1 of 2"); whether that is complete is
 * dossier_complete's to say. */
static void
dc_progress(const struct dc_items_v *l, unsigned *req_r, unsigned *ok_r)
{
	size_t i;

	*req_r = *ok_r = 0;
	for (i = 0; i < l->n; i++) {
		if (!l->v[i].required)
			continue;
		(*req_r)++;
		if (strcmp(l->v[i].state, "accepted") == 0)
			(*ok_r)++;
	}
}

static json_t *
dc_item_json(const struct cli_ctx *c, const struct store_dossier *d,
    const struct store_item *it)
{
	json_t *o = json_object();
	char addr[512];

	dossier_item_address(c->cfg->intake_domain, d, it, addr, sizeof(addr));
	cli_jset(o, "id", json_integer(it->id));
	cli_jset(o, "slug", cli_jstr(it->slug));
	cli_jset(o, "label", cli_jstr(it->label));
	cli_jset(o, "required", json_boolean(it->required));
	cli_jset(o, "types", it->types[0] ? cli_jstr(it->types) : json_null());
	cli_jset(o, "max_size", it->max_size > 0 ?
	    json_integer(it->max_size) : json_null());
	cli_jset(o, "state", cli_jstr(it->state));
	cli_jset(o, "reason", it->reason[0] ? cli_jstr(it->reason) :
	    json_null());
	cli_jset(o, "address", cli_jstr(addr));
	return o;
}

static json_t *
dc_doc_json(const struct store_doc_row *r)
{
	json_t *o = json_object();

	cli_jset(o, "id", json_integer(r->id));
	cli_jset(o, "filename", cli_jstr(r->filename));
	cli_jset(o, "stored_name", cli_jstr(r->stored_name));
	cli_jset(o, "declared_type", cli_jstr(r->declared_type));
	cli_jset(o, "sniffed_type", cli_jstr(r->sniffed_type));
	cli_jset(o, "size", json_integer((json_int_t)r->size));
	cli_jset(o, "sha256", cli_jstr(r->sha256));
	cli_jset(o, "message_id", r->message_id ?
	    json_integer(r->message_id) : json_null());
	cli_jset(o, "received", cli_jtime(r->received));
	cli_jset(o, "item", r->item_id ? cli_jstr(r->item_slug) : json_null());
	cli_jset(o, "review", cli_jstr(r->review));
	cli_jset(o, "review_reason", r->review_reason[0] ?
	    cli_jstr(r->review_reason) : json_null());
	cli_jset(o, "reviewed_by", r->reviewed_by[0] ?
	    cli_jstr(r->reviewed_by) : json_null());
	cli_jset(o, "scan", r->scan[0] ? cli_jstr(r->scan) : json_null());
	cli_jset(o, "flags", cli_jstr(r->flags));
	cli_jset(o, "reviewed_at", cli_jtime(r->reviewed_at));
	return o;
}

/*
 * Free text (a reason, what a client wrote) for an 80-column terminal:
 * every line indented, long lines broken between words, tabs as
 * spaces; each word through cli_safe.
 */
static void
dc_wrap(const char *indent, const char *text)
{
	char *buf = xstrdup(text), *line, *save = NULL, *w;
	size_t width = DC_WIDTH - strlen(indent), col, n, i;

	for (i = 0; buf[i] != '\0'; i++)
		if (buf[i] == '\t' || buf[i] == '\r')
			buf[i] = ' ';
	for (line = buf; line != NULL; line = save) {
		save = strchr(line, '\n');
		if (save != NULL)
			*save++ = '\0';
		if (line[strspn(line, " ")] == '\0') {
			/* An empty line: the indent without its trailing
			 * blanks. */
			n = strlen(indent);
			while (n > 0 && indent[n - 1] == ' ')
				n--;
			printf("%.*s\n", (int)n, indent);
			continue;
		}
		fputs(indent, stdout);
		col = 0;
		for (w = strtok(line, " "); w != NULL; w = strtok(NULL, " ")) {
			for (n = 0, i = 0; w[i] != '\0'; i++)
				n += ((unsigned char)w[i] & 0xc0) != 0x80;
			if (col > 0 && col + 1 + n > width) {
				printf("\n%s", indent);
				col = 0;
			}
			printf("%s%s", col > 0 ? " " : "", cli_safe(w));
			col += n + (col > 0);
		}
		putchar('\n');
	}
	free(buf);
}

/* ---- checklist add, list ---- */

static json_t *
dc_items_spec_json(const struct store_item *v, size_t n)
{
	json_t *arr = json_array(), *o;
	size_t i;

	for (i = 0; i < n; i++) {
		o = dossier_item_spec_json(&v[i]);
		cli_jset(o, "slug", cli_jstr(v[i].slug));
		json_array_append_new(arr, o);
	}
	return arr;
}

/* "ID card; Proof of address (PDF; at most 5 MB); Bank details
 * (optional)" */
static void
dc_items_line(const struct store_item *v, size_t n)
{
	char terms[256];
	size_t i;

	for (i = 0; i < n; i++) {
		dc_item_terms(&v[i], terms, sizeof(terms));
		printf("%s%s", i ? "; " : "", cli_safe(v[i].label));
		if (strcmp(terms, "required") != 0)
			printf(" (%s)", strncmp(terms, "required; ", 10) == 0 ?
			    terms + 10 : terms);
	}
}

int
cli_checklist_add(struct cli_ctx *c)
{
	const char *name = c->pos[3];
	struct store_item *v = NULL;
	size_t n;
	int rc;

	if (!dossier_valid_word(name))
		return cli_usage_err(c, "invalid checklist name \"%s\" (1-32 "
		    "of a-z 0-9 _ -)", cli_safe(name));
	if ((rc = dc_items(c, &v, &n)) != 0)
		return rc;
	if (n == 0) {
		free(v);
		return cli_usage_err(c, "checklist add needs its items: "
		    "--item \"LABEL[|TYPES][|MAX]\" (required) or --optional");
	}
	if (cli_ctx_account(c, c->pos[2]) != 0 ||
	    dossier_checklist_add(c->st, c->account_id, name, v, n,
	    c->err) != 0) {
		free(v);
		return dc_fail(c, "checklist add");
	}
	if (c->json) {
		json_t *o = json_object();

		cli_jset(o, "account", cli_jstr(c->pos[2]));
		cli_jset(o, "name", cli_jstr(name));
		cli_jset(o, "items", dc_items_spec_json(v, n));
		cli_json_print(o);
	} else {
		printf("checklist %s added to %s: ", name, cli_safe(c->pos[2]));
		dc_items_line(v, n);
		putchar('\n');
	}
	free(v);
	return CLI_OK;
}

struct dc_ck_list {
	const char *account;
	json_t *arr;			/* NULL: text */
};

static int
dc_checklist_cb(const struct store_checklist *ck, void *ctx)
{
	struct dc_ck_list *l = ctx;
	json_t *items = json_loads(ck->items, 0, NULL), *e, *o;
	struct store_item *v = xcalloc(json_array_size(items) + 1, sizeof(*v));
	char err[PD_ERRLEN];
	size_t i, n = 0;

	json_array_foreach(items, i, e)
		if (dossier_item_from_json(e, &v[n], err) == 0)
			n++;
	json_decref(items);
	if (l->arr == NULL) {
		printf("%s\t%s\t", cli_safe(l->account), cli_safe(ck->name));
		dc_items_line(v, n);
		putchar('\n');
	} else {
		o = json_object();
		cli_jset(o, "account", cli_jstr(l->account));
		cli_jset(o, "name", cli_jstr(ck->name));
		cli_jset(o, "created", cli_jtime(ck->created));
		cli_jset(o, "items", dc_items_spec_json(v, n));
		json_array_append_new(l->arr, o);
	}
	free(v);
	return 0;
}

struct dc_accounts {
	struct store_account *v;
	size_t n;
};

static int
dc_account_cb(const struct store_account *a, void *ctx)
{
	struct dc_accounts *l = ctx;

	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = *a;
	return 0;
}

/* Without --account, every account's checklists in turn. */
int
cli_checklist_list(struct cli_ctx *c)
{
	struct dc_accounts accts = { NULL, 0 };
	struct dc_ck_list l = { NULL, c->json ? json_array() : NULL };
	size_t i;
	int rc = 0;

	if (c->val[OPT_ACCOUNT] != NULL) {
		if (cli_ctx_account(c, c->val[OPT_ACCOUNT]) != 0) {
			json_decref(l.arr);
			return CLI_ERR;
		}
		accts.v = xcalloc(1, sizeof(*accts.v));
		accts.v[0].id = c->account_id;
		snprintf(accts.v[0].name, sizeof(accts.v[0].name), "%s",
		    c->val[OPT_ACCOUNT]);
		accts.n = 1;
	} else if (dossier_account_list(c->st, dc_account_cb, &accts,
	    c->err) != 0)
		rc = -1;
	cli_list_header(c, "ACCOUNT\tNAME\tITEMS");
	for (i = 0; i < accts.n && rc == 0; i++) {
		l.account = accts.v[i].name;
		rc = dossier_checklist_list(c->st, accts.v[i].id,
		    dc_checklist_cb, &l, c->err);
	}
	free(accts.v);
	if (rc != 0) {
		json_decref(l.arr);
		return dc_fail(c, "checklist list");
	}
	if (l.arr != NULL)
		cli_json_print(l.arr);
	return CLI_OK;
}

/* ---- dossier create ---- */

static int
dc_create_args(struct cli_ctx *c, char *local, size_t locallen)
{
	const char *addr = c->val[OPT_ADDRESS], *v;
	char email[DOSSIER_CONTACT_MAX + 2], name[256];

	if (!dossier_parse_contact(c->val[OPT_CONTACT], email, sizeof(email),
	    name, sizeof(name)))
		return cli_usage_err(c, "invalid --contact \"%s\": give an "
		    "address, or \"Name <address>\"",
		    cli_safe(c->val[OPT_CONTACT]));
	if (!dossier_valid_ref(c->val[OPT_REF]))
		return cli_usage_err(c, "invalid ref \"%s\" (1-127 bytes of "
		    "UTF-8 text, no control characters)",
		    cli_safe(c->val[OPT_REF]));
	if ((v = c->val[OPT_LOCALE]) != NULL && !dossier_valid_locale(v))
		return cli_usage_err(c, "invalid --locale \"%s\": a language "
		    "tag like fr or en", cli_safe(v));
	if ((v = c->val[OPT_DUE]) != NULL && !dossier_valid_due(v))
		return cli_usage_err(c, "invalid --due \"%s\": not a calendar "
		    "day YYYY-MM-DD", cli_safe(v));
	if ((v = c->val[OPT_CHECKLIST]) != NULL && !dossier_valid_word(v))
		return cli_usage_err(c, "invalid --checklist \"%s\" (1-32 of "
		    "a-z 0-9 _ -)", cli_safe(v));
	local[0] = '\0';
	if (addr != NULL && !dossier_parse_address(c->cfg->intake_domain, addr,
	    local, locallen))
		return cli_usage_err(c, "invalid --address \"%s\": must look "
		    "like d-<8-64 of a-z0-9>@%s", cli_safe(addr),
		    c->cfg->intake_domain);
	return 0;
}

/* The dossier's header fields of the loop, for create and show. */
static void
dc_dossier_loop_json(json_t *o, const struct store_dossier *d,
    const struct dc_items_v *items, json_t *item_arr)
{
	cli_jset(o, "contact_name", d->contact_name[0] ?
	    cli_jstr(d->contact_name) : json_null());
	cli_jset(o, "locale", d->contact_locale[0] ?
	    cli_jstr(d->contact_locale) : json_null());
	cli_jset(o, "due", d->due[0] ? cli_jstr(d->due) : json_null());
	cli_jset(o, "complete", json_boolean(items->complete));
	cli_jset(o, "items", item_arr);
}

int
cli_dossier_create(struct cli_ctx *c)
{
	struct store_dossier d;
	struct store_item *v = NULL;
	struct dc_items_v items;
	struct dossier_new nd;
	char local[80], addr[512];
	int64_t acct, id;
	size_t n = 0, i;
	json_t *o, *arr;
	int rc;

	if ((rc = dc_create_args(c, local, sizeof(local))) != 0 ||
	    (rc = dc_items(c, &v, &n)) != 0)
		return rc;
	nd = (struct dossier_new){ c->val[OPT_CONTACT], c->val[OPT_LOCALE],
	    c->val[OPT_REF], local[0] ? local : NULL, c->val[OPT_CHECKLIST],
	    v, n, c->val[OPT_DUE] };
	if (cli_account_scope(c, &acct) != 1 ||
	    dossier_create_with(c->st, acct, &nd, &id, c->err) != 0) {
		free(v);
		return dc_fail(c, "dossier create");
	}
	free(v);
	if (dossier_get(c->st, acct, id, &d, c->err) != 1)
		return dc_fail(c, "reading the new dossier");
	if (!c->json) {
		cli_address(c, &d, addr, sizeof(addr));
		printf("%s\n", addr);
		return CLI_OK;
	}
	if (dc_load_items(c, &d, &items) != 0)
		return dc_fail(c, "reading its items");
	o = cli_dossier_json(c, &d);
	json_object_del(o, "created");
	json_object_del(o, "closed");
	arr = json_array();
	for (i = 0; i < items.n; i++)
		json_array_append_new(arr, dc_item_json(c, &d, &items.v[i]));
	dc_dossier_loop_json(o, &d, &items, arr);
	free(items.v);
	cli_json_print(o);
	return CLI_OK;
}

/* ---- invite: its items and the contact's language first ---- */

int
cli_invite_prepare(struct cli_ctx *c, const struct store_dossier *d)
{
	struct store_item *v = NULL;
	size_t n = 0;
	int rc = 0;

	if (c->val[OPT_DOCUMENTS] != NULL) {
		rc = dossier_items_parse_csv(c->val[OPT_DOCUMENTS], &v, &n,
		    c->err);
		if (rc == 0 && n > 0)
			rc = dossier_items_add(c->st, d->account_id, d->id, v,
			    n, NULL, c->err);
		free(v);
	}
	if (rc == 0 && c->val[OPT_LOCALE] != NULL)
		rc = dossier_contact_set(c->st, d->account_id, d->contact,
		    NULL, c->val[OPT_LOCALE], c->err);
	if (rc != 0 && c->err[0] == '\0')
		snprintf(c->err, sizeof(c->err), "invite: the dossier's items "
		    "could not be recorded");
	return rc == 0 ? 0 : -1;
}

/* ---- dossier show ---- */

struct dc_docs {
	struct store_doc_row *v;
	size_t n;
};

static int
dc_doc_cb(const struct store_doc_row *r, void *ctx)
{
	struct dc_docs *l = ctx;

	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = *r;
	return 0;
}

struct dc_msgs {
	struct store_msg_row *v;
	size_t n;
};

static int
dc_msg_cb(const struct store_msg_row *r, void *ctx)
{
	struct dc_msgs *l = ctx;

	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = *r;
	return 0;
}

/* Everything show prints, read before anything is printed (a reader's
 * statement is never interleaved with another of the same connection). */
struct dc_show {
	struct store_dossier d;
	struct dc_items_v items;
	struct dc_docs docs;
	struct dc_msgs msgs;
};

static int
dc_show_load(struct cli_ctx *c, struct dc_show *s)
{
	if (dc_load_items(c, &s->d, &s->items) != 0 ||
	    dossier_documents(c->st, s->d.account_id, s->d.id, dc_doc_cb,
	    &s->docs, c->err) != 0 ||
	    dossier_messages(c->st, s->d.account_id, s->d.id, dc_msg_cb,
	    &s->msgs, c->err) != 0)
		return -1;
	return 0;
}

static void
dc_show_free(struct dc_show *s)
{
	free(s->items.v);
	free(s->docs.v);
	free(s->msgs.v);
}

static void
dc_show_header(const struct cli_ctx *c, const struct dc_show *s)
{
	const struct store_dossier *d = &s->d;
	char addr[512];
	unsigned req, ok;

	cli_address(c, d, addr, sizeof(addr));
	dc_progress(&s->items, &req, &ok);
	printf("Dossier %" PRId64 "\n  account:  %s\n  ref:      %s\n",
	    d->id, cli_safe(d->account), cli_safe(d->ref));
	if (d->contact_name[0] != '\0')
		printf("  contact:  %s <%s>\n", cli_safe(d->contact_name),
		    cli_safe(d->contact));
	else
		printf("  contact:  %s\n", cli_safe(d->contact));
	printf("  language: %s\n  address:  %s\n  status:   %s\n"
	    "  due:      %s\n", d->contact_locale[0] ?
	    cli_safe(d->contact_locale) : "- (the account's default)",
	    cli_safe(addr), d->status, d->due[0] ? cli_safe(d->due) : "-");
	if (req == 0)
		printf("  complete: no (no required item)\n");
	else
		printf("  complete: %s (%u of %u required item%s accepted)\n",
		    s->items.complete ? "yes" : "no", ok, req, req == 1 ? "" :
		    "s");
	printf("  created:  %s\n  closed:   %s\n", cli_time(d->created),
	    cli_time(d->closed));
}

/* A document's review, said to the operator. */
static const char *
dc_review_words(const char *review)
{
	return review[0] == '\0' || strcmp(review, "pending") == 0 ?
	    "to review" : review;
}

static void
dc_show_item_text(const struct cli_ctx *c, const struct dc_show *s,
    size_t k)
{
	const struct store_item *it = &s->items.v[k];
	char terms[256], addr[512];
	size_t i;
	int any = 0;

	dc_item_terms(it, terms, sizeof(terms));
	dossier_item_address(c->cfg->intake_domain, &s->d, it, addr,
	    sizeof(addr));
	printf("  %zu. %s: %s\n     %s\n     send to %s\n", k + 1,
	    cli_safe(it->label), dc_state_words(it->state), terms,
	    cli_safe(addr));
	if (strcmp(it->state, "rejected") == 0 && it->reason[0] != '\0') {
		printf("     why:\n");
		dc_wrap("       ", it->reason);
	}
	for (i = 0; i < s->docs.n; i++) {
		if (s->docs.v[i].item_id != it->id)
			continue;
		printf("     #%" PRId64 " %s (%s)\n", s->docs.v[i].id,
		    cli_safe(s->docs.v[i].filename),
		    dc_review_words(s->docs.v[i].review));
		any = 1;
	}
	if (!any)
		printf("     no document yet\n");
}

static void
dc_show_doc_text(const struct store_doc_row *r)
{
	printf("  #%" PRId64 "  %s\n", r->id, cli_safe(r->filename));
	if (r->item_id != 0)
		printf("      item:   \"%s\"\n", cli_safe(r->item_label));
	else
		printf("      item:   none (postdoc document assign %" PRId64
		    " ITEM)\n", r->id);
	if (r->reviewed_at == 0)
		printf("      review: %s\n", dc_review_words(r->review));
	else
		printf("      review: %s by %s, %s\n", r->review,
		    cli_safe(r->reviewed_by), cli_time(r->reviewed_at));
	if (r->review_reason[0] != '\0' && strcmp(r->review, "rejected") == 0) {
		printf("      why:\n");
		dc_wrap("        ", r->review_reason);
	}
	printf("      %s, %" PRIu64 " bytes, received %s in message #%"
	    PRId64 "\n      sha256 %s\n      stored as %s, declared %s\n",
	    cli_safe(r->sniffed_type), r->size, cli_time(r->received),
	    r->message_id, r->sha256, cli_safe(r->stored_name),
	    cli_safe(r->declared_type));
	if (r->scan[0] != '\0')
		printf("      malware scan: %s\n", cli_safe(r->scan));
	/* what intake noticed about the part: "truncated" above all */
	if (r->flags[0] != '\0')
		printf("      flags: %s\n", cli_safe(r->flags));
}

/* messages.refused (drop-file): each file left out, with why. */
static void
dc_show_refused_text(const char *refused)
{
	json_t *a = refused[0] ? json_loads(refused, 0, NULL) : NULL, *e;
	size_t i;

	json_array_foreach(a, i, e) {
		const char *name = json_string_value(json_object_get(e,
		    "filename"));

		if (name == NULL) {
			printf("      left out: %" JSON_INTEGER_FORMAT
			    " more file(s)\n", json_integer_value(
			    json_object_get(e, "more")));
			continue;
		}
		printf("      left out: \"%s\" (%s, %s)\n", cli_safe(name),
		    cli_safe(json_string_value(json_object_get(e, "type"))),
		    cli_safe(json_string_value(json_object_get(e, "kind"))));
		dc_wrap("        ", cli_safe(json_string_value(
		    json_object_get(e, "reason"))));
	}
	json_decref(a);
}

/* The d= of the first passing signature in an RFC 8601 value, or "". */
static void
dc_ar_dkim_domain(const char *ar, char *out, size_t cap)
{
	const char *p = strstr(ar, "dkim=pass header.d=");
	size_t n = 0;

	out[0] = '\0';
	if (p == NULL)
		return;
	for (p += strlen("dkim=pass header.d="); p[n] != '\0' &&
	    p[n] != ';' && p[n] != ' '; n++)
		;
	snprintf(out, cap, "%.*s", (int)n, p);
}

/* "auth: spf=pass dkim=pass (example.fr) dmarc=pass", and whether the
 * account's rule passed the sender, when the message was checked. */
static void
dc_show_msg_auth(const struct store_msg_row *r)
{
	char d[256];

	if (r->auth_results[0] == '\0')
		return;
	dc_ar_dkim_domain(r->auth_results, d, sizeof(d));
	printf("      auth: spf=%s dkim=%s%s%s%s dmarc=%s%s\n",
	    cli_safe(r->spf), cli_safe(r->dkim), d[0] ? " (" : "",
	    cli_safe(d), d[0] ? ")" : "", cli_safe(r->dmarc),
	    r->sender_pass > 0 ? ", sender passed" : r->sender_pass < 0 ?
	    ", sender NOT authenticated (marked)" : "");
}

static json_t *
dc_msg_auth_json(const struct store_msg_row *r)
{
	json_t *o;

	if (r->auth_results[0] == '\0' && r->sender_pass == 0)
		return json_null();
	o = json_object();
	cli_jset(o, "spf", cli_jstr(r->spf));
	cli_jset(o, "dkim", cli_jstr(r->dkim));
	cli_jset(o, "dmarc", cli_jstr(r->dmarc));
	/* true passed the account's rule, false did not (marked), null:
	 * the account checks nothing. */
	cli_jset(o, "pass", r->sender_pass == 0 ? json_null() :
	    json_boolean(r->sender_pass > 0));
	cli_jset(o, "authentication_results", cli_jstr(r->auth_results));
	return o;
}

/* The envelope and what the sender wrote (mailtext: sanitised). */
static void
dc_show_msg_text(struct cli_ctx *c, const struct store_dossier *d,
    const struct store_msg_row *r)
{
	char *text = NULL, err[PD_ERRLEN];
	int rc;

	printf("  #%" PRId64 "  %s  from <%s>\n      to <%s>\n"
	    "      subject: %s\n", r->id, cli_time(r->received),
	    cli_safe(r->mail_from), cli_safe(r->rcpt_to),
	    cli_safe(r->subject));
	printf("      %s%s from %s (helo %s), queue %s\n", r->lmtp ? "lmtp" :
	    "smtp", r->tls ? "+tls" : "", cli_safe(r->client_ip),
	    cli_safe(r->helo), cli_safe(r->queue_id));
	printf("      %" PRIu64 " bytes, parse %s%s%s\n", r->size,
	    cli_safe(r->parse_status), r->anomalies[0] ? ", anomalies " : "",
	    cli_safe(r->anomalies));
	if (r->message_id[0] != '\0')
		printf("      message-id %s\n", cli_safe(r->message_id));
	dc_show_msg_auth(r);
	if (r->signed_[0] != '\0')
		printf("      signed (%s): the signature is kept with the raw "
		    "message\n", cli_safe(r->signed_));
	dc_show_refused_text(r->refused);
	if (r->sha256[0] == '\0') {
		printf("      raw copy removed by %s on %s: its text is gone "
		    "too\n", r->raw_removed[0] ? cli_safe(r->raw_removed) : "?",
		    cli_time(r->raw_removed_at));
		return;
	}
	printf("      sha256 %s\n", r->sha256);
	err[0] = '\0';
	rc = dossier_message_text(c->st, c->bs, d->account_id, r->id,
	    DC_TEXT_MAX, &text, err);
	if (rc == 1 && text[0] != '\0') {
		printf("      wrote:\n");
		dc_wrap("      | ", text);
	} else if (rc == 1)
		printf("      (no text)\n");
	else
		printf("      (its text cannot be read: %s)\n", rc == 0 ?
		    "the raw copy is gone" : cli_safe(err));
	free(text);
}

static int
dc_event_cb(const struct store_event_row *r, void *ctx)
{
	json_t *arr = ctx, *o;

	if (arr == NULL) {
		/* One line when it fits in 80 columns, else the detail
		 * (a reason, a reply text) wrapped under it. */
		if (2 + 20 + 2 + strlen(r->kind) + 2 + strlen(r->detail) <=
		    DC_WIDTH)
			printf("  %s  %s  %s\n", cli_time(r->at),
			    cli_safe(r->kind), cli_safe(r->detail));
		else {
			printf("  %s  %s\n", cli_time(r->at),
			    cli_safe(r->kind));
			if (r->detail[0] != '\0')
				dc_wrap("      ", r->detail);
		}
		return 0;
	}
	o = json_object();
	cli_jset(o, "at", cli_jtime(r->at));
	cli_jset(o, "kind", cli_jstr(r->kind));
	cli_jset(o, "detail", cli_jstr(r->detail));
	json_array_append_new(arr, o);
	return 0;
}

static int
dc_show_text(struct cli_ctx *c, struct dc_show *s)
{
	size_t i;

	dc_show_header(c, s);
	printf("\nChecklist:\n");
	for (i = 0; i < s->items.n; i++)
		dc_show_item_text(c, s, i);
	if (s->items.n == 0)
		printf("  (nothing asked for yet: invite --documents, or "
		    "dossier create --checklist)\n");
	printf("\nDocuments:\n");
	for (i = 0; i < s->docs.n; i++)
		dc_show_doc_text(&s->docs.v[i]);
	if (s->docs.n == 0)
		printf("  (none)\n");
	printf("\nMessages:\n");
	for (i = 0; i < s->msgs.n; i++)
		dc_show_msg_text(c, &s->d, &s->msgs.v[i]);
	if (s->msgs.n == 0)
		printf("  (none)\n");
	printf("\nHistory:\n");
	if (dossier_history(c->st, s->d.account_id, s->d.id,
	    dc_event_cb, NULL, c->err) != 0)
		return -1;
	return 0;
}

static json_t *
dc_msg_json(struct cli_ctx *c, const struct store_dossier *d,
    const struct store_msg_row *r)
{
	json_t *o = json_object(), *refused;
	char *text = NULL, err[PD_ERRLEN];

	cli_jset(o, "id", json_integer(r->id));
	cli_jset(o, "queue_id", cli_jstr(r->queue_id));
	cli_jset(o, "mail_from", cli_jstr(r->mail_from));
	cli_jset(o, "rcpt_to", cli_jstr(r->rcpt_to));
	cli_jset(o, "client_ip", cli_jstr(r->client_ip));
	cli_jset(o, "helo", cli_jstr(r->helo));
	cli_jset(o, "tls", json_boolean(r->tls));
	cli_jset(o, "lmtp", json_boolean(r->lmtp));
	cli_jset(o, "message_id", cli_jstr(r->message_id));
	cli_jset(o, "subject", cli_jstr(r->subject));
	cli_jset(o, "size", json_integer((json_int_t)r->size));
	cli_jset(o, "sha256", cli_jstr(r->sha256));
	cli_jset(o, "parse_status", cli_jstr(r->parse_status));
	cli_jset(o, "anomalies", cli_jstr(r->anomalies));
	cli_jset(o, "signed", r->signed_[0] ? cli_jstr(r->signed_) :
	    json_null());
	refused = r->refused[0] ? json_loads(r->refused, 0, NULL) : NULL;
	cli_jset(o, "refused", refused != NULL ? refused : json_array());
	cli_jset(o, "received", cli_jtime(r->received));
	cli_jset(o, "auth", dc_msg_auth_json(r));
	if (r->sha256[0] == '\0') {
		cli_jset(o, "raw_removed", cli_jstr(r->raw_removed));
		cli_jset(o, "raw_removed_at", cli_jtime(r->raw_removed_at));
	}
	if (r->sha256[0] != '\0' && dossier_message_text(c->st, c->bs,
	    d->account_id, r->id, DC_JSON_TEXT_MAX, &text, err) == 1)
		cli_jset(o, "text", cli_jstr(text));
	else
		cli_jset(o, "text", json_null());
	free(text);
	return o;
}

static int
dc_show_json(struct cli_ctx *c, struct dc_show *s)
{
	json_t *o = cli_dossier_json(c, &s->d), *items = json_array(),
	    *docs = json_array(), *msgs = json_array(), *ev = json_array(),
	    *it, *ids;
	size_t i, k;

	for (k = 0; k < s->items.n; k++) {
		it = dc_item_json(c, &s->d, &s->items.v[k]);
		ids = json_array();
		for (i = 0; i < s->docs.n; i++)
			if (s->docs.v[i].item_id == s->items.v[k].id)
				json_array_append_new(ids,
				    json_integer(s->docs.v[i].id));
		cli_jset(it, "documents", ids);
		json_array_append_new(items, it);
	}
	dc_dossier_loop_json(o, &s->d, &s->items, items);
	for (i = 0; i < s->docs.n; i++)
		json_array_append_new(docs, dc_doc_json(&s->docs.v[i]));
	for (i = 0; i < s->msgs.n; i++)
		json_array_append_new(msgs, dc_msg_json(c, &s->d,
		    &s->msgs.v[i]));
	cli_jset(o, "documents", docs);
	cli_jset(o, "messages", msgs);
	cli_jset(o, "events", ev);
	if (dossier_history(c->st, s->d.account_id, s->d.id, dc_event_cb, ev,
	    c->err) != 0) {
		json_decref(o);
		return -1;
	}
	cli_json_print(o);
	return 0;
}

int
cli_dossier_show(struct cli_ctx *c)
{
	struct dc_show s;
	int rc;

	memset(&s, 0, sizeof(s));
	if (cli_find_dossier(c, c->pos[2], &s.d) != 1)
		return CLI_ERR;
	rc = dc_show_load(c, &s);
	if (rc == 0)
		rc = c->json ? dc_show_json(c, &s) : dc_show_text(c, &s);
	dc_show_free(&s);
	return rc == 0 ? CLI_OK : dc_fail(c, "dossier show");
}

/* ---- dossier close [--notify] ---- */

int
cli_dossier_close(struct cli_ctx *c)
{
	struct dossier_env env;
	struct store_dossier d;
	int64_t mail = 0;
	int was_closed, notify = (c->seen & B(OPT_NOTIFY)) != 0;

	if (cli_find_dossier(c, c->pos[2], &d) != 1)
		return CLI_ERR;
	/* Only a message needs the plugins (DKIM) and the queue: a plain
	 * close opens neither (the runner frees what is opened here). */
	if (notify && (plugin_host_load(c->cfg, &c->ph, c->err) != 0 ||
	    outq_ctx_new(c->cfg, c->ph, &c->q, c->err) != 0))
		return dc_fail(c, "opening the outbound queue");
	dc_env(c, &env);
	if (dossier_close_with(&env, d.account_id, d.id, notify, &was_closed,
	    &d, &mail, c->err) != 0)
		return dc_fail(c, "dossier close");
	if (c->json) {
		json_t *o = cli_dossier_json(c, &d);

		cli_jset(o, "message", mail ? json_integer(mail) : json_null());
		cli_json_print(o);
	} else if (was_closed)
		printf("dossier %" PRId64 " (%s) was already closed%s\n", d.id,
		    cli_safe(d.ref), notify ? ": nothing sent" : "");
	else if (mail != 0)
		printf("dossier %" PRId64 " (%s) closed: the contact was told "
		    "(message %" PRId64 " queued)\n", d.id, cli_safe(d.ref),
		    mail);
	else
		printf("dossier %" PRId64 " (%s) closed\n", d.id,
		    cli_safe(d.ref));
	return mail != 0 && cli_deliver_now(c) != 0 ? CLI_ERR : CLI_OK;
}

/* ---- document assign, accept, reject ---- */

/*
 * The document's account: --account's, checked, or the one it belongs
 * to (the operator's CLI sees every account).  "not found" either way.
 */
static int
dc_doc_account(struct cli_ctx *c, int64_t *doc_r, int64_t *acct_r)
{
	struct store_doc_row dr;
	struct store_dossier d;
	int64_t scope;
	int rc;

	if (!dossier_parse_id(c->pos[2], doc_r))
		return cli_usage_err(c, "invalid document id \"%s\"",
		    cli_safe(c->pos[2]));
	if (cli_account_scope(c, &scope) < 0)
		return CLI_ERR;
	rc = dossier_document_get(c->st, scope, *doc_r, &dr, c->err);
	if (rc == 1)
		rc = dossier_get(c->st, scope, dr.dossier_id, &d, c->err);
	if (rc == 0)
		snprintf(c->err, sizeof(c->err), "document %" PRId64 " not "
		    "found%s%s", *doc_r, scope ? " in account " : "",
		    scope ? cli_safe(c->val[OPT_ACCOUNT]) : "");
	if (rc != 1)
		return CLI_ERR;
	*acct_r = d.account_id;
	return 0;
}

/* The required items not accepted yet, "A, B", for the outcome line. */
static void
dc_missing(const struct dc_items_v *l, char *out, size_t len)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < l->n && o < len; i++)
		if (l->v[i].required && strcmp(l->v[i].state, "accepted") != 0)
			o += (size_t)snprintf(out + o, len - o, "%s\"%s\"",
			    o ? ", " : "", cli_safe(l->v[i].label));
}

struct dc_outcome {
	const char *verb;		/* "accept", "reject", "assign" */
	int64_t doc_id, account_id;
	const struct dossier_review *r;
};

static int
dc_outcome_json(struct cli_ctx *c, const struct dc_outcome *oc,
    const struct store_dossier *d, const struct dc_items_v *items)
{
	json_t *o = json_object(), *dj = json_object();

	cli_jset(o, "document", dc_doc_json(&oc->r->doc));
	cli_jset(o, "item", oc->r->item.id ? dc_item_json(c, d,
	    &oc->r->item) : json_null());
	cli_jset(dj, "id", json_integer(d->id));
	cli_jset(dj, "ref", cli_jstr(d->ref));
	cli_jset(dj, "complete", json_boolean(items->complete));
	cli_jset(o, "dossier", dj);
	cli_jset(o, "unchanged", json_boolean(oc->r->unchanged));
	cli_jset(o, "completed", json_boolean(oc->r->completed));
	cli_jset(o, "message", oc->r->mail_id ? json_integer(oc->r->mail_id) :
	    json_null());
	cli_json_print(o);
	return 0;
}

/* " - dossier REF is complete" or " - dossier REF still needs "A"". */
static void
dc_dossier_tail(const struct store_dossier *d, const struct dc_items_v *l,
    const struct dossier_review *r)
{
	char missing[1024];

	dc_missing(l, missing, sizeof(missing));
	if (l->complete)
		printf(" - dossier %s is complete", cli_safe(d->ref));
	else if (missing[0] != '\0')
		printf(" - dossier %s still needs %s", cli_safe(d->ref),
		    missing);
	if (r->completed && r->mail_id != 0)
		printf(" (completion message %" PRId64 " queued)", r->mail_id);
}

static void
dc_outcome_text(const struct dc_outcome *oc, const struct store_dossier *d,
    const struct dc_items_v *items)
{
	const struct dossier_review *r = oc->r;
	const char *label = r->item.id ? r->item.label : "";

	printf("document %" PRId64 " (%s) ", r->doc.id,
	    cli_safe(r->doc.filename));
	if (strcmp(oc->verb, "reject") == 0) {
		if (r->unchanged)
			printf("was already rejected: nothing sent\n");
		else
			printf("rejected: the contact was told (message %"
			    PRId64 " queued)\n", r->mail_id);
		return;
	}
	if (strcmp(oc->verb, "assign") == 0 && r->item.id == 0)
		printf("%s\n", r->unchanged ? "is already unassigned" :
		    "is now unassigned");
	else if (strcmp(oc->verb, "assign") == 0)
		printf("%s \"%s\"", r->unchanged ? "is already under" :
		    "filed under", cli_safe(label));
	else
		printf("%s \"%s\"", r->unchanged ? "was already accepted under" :
		    "accepted under", cli_safe(label));
	if (r->item.id == 0)
		return;
	/* Filing says what is left only when it completed the dossier
	 * (an accepted document moved); a review always does. */
	if (strcmp(oc->verb, "assign") != 0 || r->completed)
		dc_dossier_tail(d, items, r);
	putchar('\n');
}

static int
dc_review_done(struct cli_ctx *c, const struct dc_outcome *oc)
{
	struct store_dossier d;
	struct dc_items_v items = { NULL, 0, 0 };
	int rc;

	if (dossier_get(c->st, oc->account_id, oc->r->doc.dossier_id, &d,
	    c->err) != 1 || dc_load_items(c, &d, &items) != 0)
		return dc_fail(c, "reading the dossier back");
	if (c->json)
		rc = dc_outcome_json(c, oc, &d, &items);
	else {
		dc_outcome_text(oc, &d, &items);
		rc = 0;
	}
	free(items.v);
	if (rc == 0 && oc->r->mail_id != 0 && cli_deliver_now(c) != 0)
		return dc_fail(c, "delivering the message");
	return rc == 0 ? CLI_OK : CLI_ERR;
}

static int
dc_review(struct cli_ctx *c, const char *verb)
{
	struct dossier_review r;
	struct dossier_env env;
	struct dc_outcome oc = { verb, 0, 0, &r };
	int rc;

	if ((rc = dc_doc_account(c, &oc.doc_id, &oc.account_id)) != 0)
		return rc;
	dc_env(c, &env);
	if (strcmp(verb, "accept") == 0)
		rc = dossier_document_accept(&env, oc.account_id, oc.doc_id,
		    &r, c->err);
	else if (strcmp(verb, "reject") == 0)
		rc = dossier_document_reject(&env, oc.account_id, oc.doc_id,
		    c->val[OPT_REASON], &r, c->err);
	else
		rc = dossier_document_assign(&env, oc.account_id, oc.doc_id,
		    c->pos[3], &r, c->err);
	if (rc != 0)
		return dc_fail(c, verb);
	return dc_review_done(c, &oc);
}

int
cli_document_assign(struct cli_ctx *c)
{
	return dc_review(c, "assign");
}

int
cli_document_accept(struct cli_ctx *c)
{
	return dc_review(c, "accept");
}

/* A reason is what the contact reads: one without words is a usage
 * error, and nothing changes. */
int
cli_document_reject(struct cli_ctx *c)
{
	const char *why = c->val[OPT_REASON];

	if (why[strspn(why, " \t")] == '\0')
		return cli_usage_err(c, "--reason must say why the document is "
		    "rejected: it is sent to the contact");
	return dc_review(c, "reject");
}

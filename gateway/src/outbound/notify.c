/*
 * notify.c - invitations, reminders and receipts: the template data of a
 * dossier, then render (tmpl), build (outmsg) and queue (outq).  Owns the
 * rules of *when* such mail is sent (reminder schedule, receipt only to a
 * vouched-for sender); never delivers anything itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/config.h"
#include "notify.h"
#include "outmsg.h"
#include "outq.h"
#include "store/store.h"
#include "tmpl.h"
#include "lib/util.h"

/* Who an account writes as: config `accounts`, else the defaults. */
struct notify_identity {
	const char *legal_name;
	const char *legal_address;
	const char *from_name;
	const char *from_addr;
	const char *locale;
};

static void
notify_identity(const struct pd_config *cfg, const char *account,
    struct notify_identity *id)
{
	const struct pd_account_conf *a = config_account(cfg, account);

	id->legal_name = a && a->legal_name ? a->legal_name : account;
	id->legal_address = a && a->legal_address ? a->legal_address : "";
	id->from_name = a && a->from_name ? a->from_name : cfg->from_name;
	id->from_addr = a && a->from_addr ? a->from_addr : cfg->from_addr;
	id->locale = a ? a->locale : NULL;
}

static void
notify_date(char *out, size_t len, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, len, "%Y-%m-%d", &tm);
}

static json_t *
notify_account_json(const char *account, const struct notify_identity *id)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", account,
	    "legal_name", id->legal_name, "legal_address", id->legal_address,
	    "from_name", id->from_name, "from_addr", id->from_addr);
}

/* The requested documents recorded on the dossier, as [{"name"}]. */
static json_t *
notify_requested(const char *requested_json)
{
	json_t *names = json_loads(requested_json, 0, NULL), *out = json_array();
	json_t *v;
	size_t i;

	json_array_foreach(names, i, v)
		if (json_is_string(v))
			json_array_append_new(out, json_pack("{s:s}", "name",
			    json_string_value(v)));
	json_decref(names);
	return out;
}

/* Everything a template of this dossier may show. */
static json_t *
notify_data(const struct pd_config *cfg, const struct store_dossier *d,
    const struct notify_identity *id, int64_t now)
{
	char addr[512], today[16];
	json_t *docs = notify_requested(d->requested);

	snprintf(addr, sizeof(addr), "%s@%s", d->intake_local,
	    cfg->intake_domain);
	notify_date(today, sizeof(today), now);
	return json_pack("{s:o, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:b, s:o, s:b},"
	    " s:s}",
	    "account", notify_account_json(d->account, id),
	    "contact", "name", "", "email", d->contact,
	    "dossier", "ref", d->ref, "address", addr, "due", d->due,
	    "has_due", d->due[0] != '\0', "documents", docs,
	    "has_documents", json_array_size(docs) > 0,
	    "now", today);
}

static const char *
notify_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : addr;
}

/* A private file name in the spool for a message being built. */
static int
notify_tmp_path(const struct pd_config *cfg, char *path, size_t len,
    char *err)
{
	unsigned char rnd[12];
	char hex[25], dir[4096];

	snprintf(dir, sizeof(dir), "%s/spool", cfg->var_dir);
	if (pd_mkdirs(dir, 0700) != 0 || pd_random(rnd, sizeof(rnd)) != 0) {
		pd_err(err, "cannot prepare %s: %s", dir, strerror(errno));
		return -1;
	}
	pd_hex(hex, rnd, sizeof(rnd));
	snprintf(path, len, "%s/out-%s.eml", dir, hex);
	return 0;
}

struct notify_msg {
	const char *tmpl;
	const char *locale;
	const char *kind;
	const char *to;
	const char *reply_to;		/* NULL: none */
};

#ifndef PD_TEMPLATE_DIR
#define PD_TEMPLATE_DIR "/usr/local/share/postdoc/templates"
#endif

/*
 * The configured template directory; when that relative path is not
 * there (a command run outside the checkout), the one beside the binary
 * in a build tree, then the installed one.
 */
static const char *
notify_template_dir(const struct pd_config *cfg, char *buf, size_t len)
{
	if (cfg->template_dir[0] == '/' || access(cfg->template_dir, F_OK) == 0)
		return cfg->template_dir;
	if (pd_beside_exe(cfg->template_dir, buf, len))
		return buf;
	return access(PD_TEMPLATE_DIR, F_OK) == 0 ? PD_TEMPLATE_DIR :
	    cfg->template_dir;
}

/* Render, build, queue. */
static int
notify_send(const struct notify_env *env, const struct store_dossier *d,
    const struct notify_msg *nm, json_t *data, int64_t *id_r, char *err)
{
	const struct pd_config *cfg = env->cfg;
	struct notify_identity id;
	struct tmpl_output out;
	struct outmsg_header auto_sub = { "Auto-Submitted", "auto-generated" };
	struct outmsg_spec spec;
	struct outq_item it;
	char path[4200], msgid[256], tdir[4096];
	int rc = -1;

	memset(&out, 0, sizeof(out));
	notify_identity(cfg, d->account, &id);
	if (tmpl_render(notify_template_dir(cfg, tdir, sizeof(tdir)), nm->tmpl, nm->locale, id.locale,
	    data, &out, err) != 0)
		return -1;
	memset(&spec, 0, sizeof(spec));
	spec.from_name = id.from_name;
	spec.from_addr = id.from_addr;
	spec.to_name = "";
	spec.to_addr = nm->to;
	spec.reply_to = nm->reply_to;
	spec.subject = out.subject;
	spec.text = out.text;
	spec.html = out.html;
	spec.msgid_domain = notify_domain(id.from_addr);
	/* RFC 3834: no auto-responder should answer us. */
	spec.extra = &auto_sub;
	spec.n_extra = 1;
	if (notify_tmp_path(cfg, path, sizeof(path), err) != 0 ||
	    outmsg_build(&spec, path, msgid, sizeof(msgid), err) != 0)
		goto out;
	it = (struct outq_item){ .account_id = d->account_id,
	    .account = d->account, .dossier_id = d->id, .kind = nm->kind,
	    .rcpt = nm->to, .from_domain = notify_domain(id.from_addr),
	    .msg_path = path, .message_id = msgid };
	rc = outq_enqueue(env->q, &it, id_r, err);
	unlink(path);	/* consumed on success; garbage otherwise */
out:
	tmpl_output_free(&out);
	return rc;
}

/* "ID card, Proof of address" -> ["ID card","Proof of address"]. */
static char *
notify_documents_json(const char *csv)
{
	json_t *arr = json_array();
	const char *p = csv;
	char *s;
	size_t n;

	while (p != NULL && *p != '\0') {
		n = strcspn(p, ",");
		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0)
			json_array_append_new(arr, json_stringn(p, n));
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	s = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return s;
}

static int
notify_valid_due(const char *due)
{
	int64_t t;

	return pd_parse_day(due, &t) == 0;
}

int
notify_invite(const struct notify_env *env, const struct store_dossier *d,
    const struct notify_invite_req *req, int64_t *outbound_id_r, char *err)
{
	struct store_dossier nd = *d;
	struct notify_identity id;
	struct notify_msg nm;
	char addr[512], *docs = NULL;
	json_t *data;
	int rc;

	if (strcmp(d->status, "open") != 0) {
		pd_err(err, "dossier %s is closed", d->ref);
		return -1;
	}
	if (req->due != NULL && req->due[0] != '\0' &&
	    !notify_valid_due(req->due)) {
		pd_err(err, "due date '%s' is not a calendar day YYYY-MM-DD",
		    req->due);
		return -1;
	}
	if (req->documents != NULL || req->due != NULL) {
		docs = notify_documents_json(req->documents ? req->documents :
		    "");
		snprintf(nd.requested, sizeof(nd.requested), "%s", docs);
		snprintf(nd.due, sizeof(nd.due), "%s", req->due ? req->due : "");
		rc = store_dossier_set_request(env->st, d->account_id, d->id,
		    nd.requested, nd.due, err);
		free(docs);
		if (rc != 0)
			return -1;
	}
	notify_identity(env->cfg, d->account, &id);
	snprintf(addr, sizeof(addr), "%s@%s", d->intake_local,
	    env->cfg->intake_domain);
	nm = (struct notify_msg){ req->tmpl ? req->tmpl : "invitation",
	    req->locale, "invitation", d->contact, addr };
	data = notify_data(env->cfg, &nd, &id, pd_now());
	rc = notify_send(env, &nd, &nm, data, outbound_id_r, err);
	json_decref(data);
	return rc;
}

/* ---- reminders ---- */

struct notify_dossiers {
	struct store_dossier *v;
	size_t n, cap;
};

static int
notify_collect_cb(const struct store_dossier *d, void *ctx)
{
	struct notify_dossiers *l = ctx;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = *d;
	return 0;
}

static int
notify_collect_account_cb(const struct store_account *a, void *ctx)
{
	char err[PD_ERRLEN];
	void **args = ctx;

	return store_dossier_list(args[0], a->id, "open", notify_collect_cb,
	    args[1], err) != 0 ? -1 : 0;
}

/* The n-th entry (0-based) of "3,7,14" into *days_r: 1, or 0 past the end. */
static int
notify_schedule_step(const char *p, int64_t n, int64_t *days_r)
{
	int64_t k;

	for (k = 0; *p != '\0' && k < n; k++)
		p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',');
	if (*p == '\0')
		return 0;			/* schedule exhausted */
	*days_r = strtoll(p, NULL, 10);
	return 1;
}

int
notify_reminder_number(const struct notify_schedule *s, int64_t now,
    notify_count_fn count, void *ctx, int64_t *days_r, char *err)
{
	int64_t n_docs, wanted;
	json_t *req;

	if (s->invitations == 0 ||
	    !notify_schedule_step(s->days, s->sent, days_r))
		return 0;
	if (now < s->invited + *days_r * 86400)
		return 0;
	if (count(ctx, s->invited, &n_docs, err) != 0)
		return -1;
	req = json_loads(s->requested, 0, NULL);
	wanted = json_array_size(req) > 0 ? (int64_t)json_array_size(req) : 1;
	json_decref(req);
	return n_docs >= wanted ? 0 : (int)(s->sent + 1);
}

struct notify_count_ctx {
	struct store *st;
	int64_t dossier_id;
};

static int
notify_count_cb(void *ctx, int64_t since, int64_t *n_r, char *err)
{
	struct notify_count_ctx *c = ctx;

	return store_document_count_since(c->st, c->dossier_id, since, n_r,
	    err);
}

/* The reminder number (1-based) due for d at `now`, or 0. */
static int
notify_reminder_due(const struct notify_env *env,
    const struct store_dossier *d, int64_t now, int64_t *days_r, char *err)
{
	struct notify_schedule s = { .days = env->cfg->reminder_days,
	    .requested = d->requested };
	struct notify_count_ctx c = { env->st, d->id };
	int64_t last, r_first, r_last;

	if (store_outbound_count(env->st, d->id, "invitation", &s.invitations,
	    &s.invited, &last, err) != 0)
		return -1;
	if (s.invitations == 0)
		return 0;
	if (store_outbound_count(env->st, d->id, "reminder", &s.sent, &r_first,
	    &r_last, err) != 0)
		return -1;
	return notify_reminder_number(&s, now, notify_count_cb, &c, days_r,
	    err);
}

static int
notify_remind_one(const struct notify_env *env, const struct store_dossier *d,
    int number, int64_t days, int64_t now, char *err)
{
	struct notify_identity id;
	struct notify_msg nm;
	char addr[512];
	json_t *data;
	int rc;

	notify_identity(env->cfg, d->account, &id);
	snprintf(addr, sizeof(addr), "%s@%s", d->intake_local,
	    env->cfg->intake_domain);
	nm = (struct notify_msg){ "reminder", NULL, "reminder", d->contact,
	    addr };
	data = notify_data(env->cfg, d, &id, now);
	json_object_set_new(data, "reminder", json_pack("{s:i, s:I}",
	    "number", number, "days_since_invitation", (json_int_t)days));
	rc = notify_send(env, d, &nm, data, NULL, err);
	json_decref(data);
	return rc;
}

int
notify_reminders(const struct notify_env *env, int64_t now,
    unsigned *queued_r, char *err)
{
	struct notify_dossiers l = { NULL, 0, 0 };
	void *args[2] = { env->st, &l };
	int64_t days = 0;
	size_t i;
	int k, rc = 0;

	*queued_r = 0;
	if (env->cfg->reminder_days[0] == '\0')
		return 0;
	/* Collect first: queuing writes while a listing is open is asking
	 * for surprises. */
	if (store_account_list(env->st, notify_collect_account_cb, args, err)
	    != 0) {
		free(l.v);
		return -1;
	}
	for (i = 0; i < l.n && rc == 0; i++) {
		k = notify_reminder_due(env, &l.v[i], now, &days, err);
		if (k < 0)
			rc = -1;
		else if (k > 0 && notify_remind_one(env, &l.v[i], k, days, now,
		    err) == 0)
			(*queued_r)++;
		else if (k > 0)	/* one dossier's problem is not the rest's */
			log_warn("reminder for dossier %lld: %s",
			    (long long)l.v[i].id, err);
	}
	free(l.v);
	return rc;
}

/* ---- receipts ---- */

static void
notify_size_human(char *out, size_t len, json_int_t n)
{
	if (n < 1024)
		snprintf(out, len, "%lld B", (long long)n);
	else if (n < 1024 * 1024)
		snprintf(out, len, "%.1f KiB", (double)n / 1024);
	else
		snprintf(out, len, "%.1f MiB", (double)n / (1024 * 1024));
}

/* The policy vouches for sender: it is the contact, or the account names
 * its domain (the session refused any other at RCPT). */
int
notify_vouched(const struct store_dossier *d, const char *sender)
{
	return strcasecmp(sender, d->contact) == 0 ||
	    strncmp(d->sender_policy, "domains:", 8) == 0;
}

int
notify_receipt(const struct notify_env *env, const struct store_dossier *d,
    const char *sender, json_t *received, char *err)
{
	struct notify_identity id;
	struct notify_msg nm;
	json_t *data, *list = json_array(), *v;
	char size[32], today[16];
	int64_t have = 0;
	json_int_t asked;
	size_t i;
	int rc;

	if (!env->cfg->receipts || sender[0] == '\0' ||
	    !outmsg_addr_valid(sender, 0) || !notify_vouched(d, sender) ||
	    json_array_size(received) == 0) {
		json_decref(list);
		return 0;
	}
	notify_identity(env->cfg, d->account, &id);
	notify_date(today, sizeof(today), pd_now());
	json_array_foreach(received, i, v) {
		notify_size_human(size, sizeof(size), json_integer_value(
		    json_object_get(v, "size")));
		json_array_append_new(list, json_pack("{s:O, s:s, s:s}",
		    "filename", json_object_get(v, "filename"),
		    "size_human", size, "received_at", today));
	}
	nm = (struct notify_msg){ "receipt", NULL, "receipt", sender, NULL };
	data = notify_data(env->cfg, d, &id, pd_now());
	/* Which file answers which request is unknowable: compare counts. */
	if (store_document_count_since(env->st, d->id, 0, &have, err) != 0) {
		json_decref(data);
		json_decref(list);
		return -1;
	}
	asked = (json_int_t)json_array_size(json_object_get(json_object_get(
	    data, "dossier"), "documents"));
	json_object_set_new(data, "receipt", json_pack("{s:o, s:I, s:b, s:b}",
	    "received", list, "count", (json_int_t)json_array_size(received),
	    "pending", asked > 0 && have < asked,
	    "complete", asked > 0 && have >= asked));
	rc = notify_send(env, d, &nm, data, NULL, err);
	json_decref(data);
	return rc == 0 ? 1 : -1;
}

/* ---- preview ---- */

int
notify_preview(const struct pd_config *cfg, const char *tmpl,
    const char *locale, const char *account, json_t *data, const char *to,
    const char *path, char *err)
{
	struct notify_identity id;
	struct tmpl_output out;
	struct outmsg_header auto_sub = { "Auto-Submitted", "auto-generated" };
	struct outmsg_spec spec;
	const char *reply_to;
	char msgid[256], tdir[4096];
	int rc;

	memset(&out, 0, sizeof(out));
	notify_identity(cfg, account, &id);
	if (to == NULL)
		to = json_string_value(json_object_get(json_object_get(data,
		    "contact"), "email"));
	if (to == NULL) {
		pd_err(err, "no recipient: give --to or contact.email in the "
		    "data");
		return -1;
	}
	if (tmpl_render(notify_template_dir(cfg, tdir, sizeof(tdir)), tmpl,
	    locale, id.locale, data, &out, err) != 0)
		return -1;
	reply_to = json_string_value(json_object_get(json_object_get(data,
	    "dossier"), "address"));
	memset(&spec, 0, sizeof(spec));
	spec = (struct outmsg_spec){ .from_name = id.from_name,
	    .from_addr = id.from_addr, .to_name = "", .to_addr = to,
	    .reply_to = reply_to, .subject = out.subject, .text = out.text,
	    .html = out.html, .msgid_domain = notify_domain(id.from_addr),
	    .extra = &auto_sub, .n_extra = 1 };
	rc = outmsg_build(&spec, path, msgid, sizeof(msgid), err);
	tmpl_output_free(&out);
	return rc;
}

/* ---- mail that is not about a dossier (newsletters, notices) ---- */

int
notify_build_mail(const struct pd_config *cfg, const struct notify_mail *m,
    struct notify_built *b, char *err)
{
	struct notify_identity id;
	struct tmpl_output out;
	struct outmsg_spec spec;
	char tdir[4096];
	json_t *data = json_deep_copy(m->data);
	int rc = -1;

	memset(&out, 0, sizeof(out));
	memset(b, 0, sizeof(*b));
	notify_identity(cfg, m->account, &id);
	json_object_set_new(data, "account", notify_account_json(m->account,
	    &id));
	if (tmpl_render(notify_template_dir(cfg, tdir, sizeof(tdir)), m->tmpl,
	    m->locale, id.locale, data, &out, err) != 0)
		goto out;
	spec = (struct outmsg_spec){ .from_name = id.from_name,
	    .from_addr = id.from_addr, .to_name = "", .to_addr = m->to,
	    .reply_to = NULL, .subject = out.subject, .text = out.text,
	    .html = out.html, .msgid_domain = notify_domain(id.from_addr),
	    .extra = m->extra, .n_extra = m->n_extra };
	snprintf(b->from_domain, sizeof(b->from_domain), "%s",
	    notify_domain(id.from_addr));
	if (notify_tmp_path(cfg, b->path, sizeof(b->path), err) == 0 &&
	    outmsg_build(&spec, b->path, b->message_id,
	    sizeof(b->message_id), err) == 0)
		rc = 0;
	else if (b->path[0] != '\0')
		unlink(b->path);
out:
	tmpl_output_free(&out);
	json_decref(data);
	return rc;
}

/* ---- the dossier loop (stubs until the templates land) ---- */

int
notify_rejection(const struct notify_env *env, const struct store_dossier *d,
    const struct store_doc_row *doc, const struct store_item *it,
    const char *reason, int64_t *id_r, char *err)
{
	(void)env; (void)d; (void)doc; (void)it; (void)reason; (void)id_r;
	pd_err(err, "rejection message: not yet");
	return -1;
}

int
notify_completed(const struct notify_env *env, const struct store_dossier *d,
    int64_t *id_r, char *err)
{
	(void)env; (void)d; (void)id_r;
	pd_err(err, "completion message: not yet");
	return -1;
}

int
notify_closing(const struct notify_env *env, const struct store_dossier *d,
    int64_t *id_r, char *err)
{
	(void)env; (void)d; (void)id_r;
	pd_err(err, "closing message: not yet");
	return -1;
}

int
notify_wants_completion(const struct pd_config *cfg, const char *account)
{
	(void)cfg; (void)account;
	return 0;
}

/*
 * notify.c - render (tmpl), build (outmsg) and queue (outq) a message
 * about a dossier; invitations and receipts (receipt only to a
 * vouched-for sender), previews and mail not tied to a dossier.  The
 * data is notify_data.c's, reminders notify_remind.c's, the review's
 * messages notify_loop.c's.  Never delivers anything itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "eligible.h"
#include "lib/config.h"
#include "notify_int.h"
#include "outmsg.h"
#include "outq.h"
#include "store/store.h"
#include "tmpl.h"
#include "lib/util.h"

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

int
notify_has_locale(const struct pd_config *cfg, const char *locale)
{
	char tdir[4096], path[4200];

	if (locale[0] == '\0' || strlen(locale) > 15 ||
	    strspn(locale, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
	    strlen(locale))
		return 0;
	snprintf(path, sizeof(path), "%s/invitation/%s",
	    notify_template_dir(cfg, tdir, sizeof(tdir)), locale);
	return access(path, F_OK) == 0;
}

/* The account's identity and the rendered template: what every message
 * about a dossier is made of, written nowhere. */
static int
notify_render(const struct notify_env *env, const struct store_dossier *d,
    const struct notify_msg *nm, json_t *data, struct notify_identity *id,
    struct tmpl_output *out, char *err)
{
	char tdir[4096];

	memset(out, 0, sizeof(*out));
	if (notify_identity(env->cfg, env->st, d->account, id, err) != 0)
		return -1;
	return tmpl_render(notify_template_dir(env->cfg, tdir, sizeof(tdir)),
	    nm->tmpl, nm->locale, id->locale[0] ? id->locale : NULL, data, out,
	    err);
}

/* Render, build, queue. */
int
notify_send(const struct notify_env *env, const struct store_dossier *d,
    const struct notify_msg *nm, json_t *data, int64_t *id_r, char *err)
{
	const struct pd_config *cfg = env->cfg;
	struct notify_identity id;
	struct tmpl_output out;
	struct outmsg_header auto_sub = { "Auto-Submitted", "auto-generated" };
	struct outmsg_spec spec;
	struct outq_item it;
	char path[4200], msgid[256];
	int rc = -1;

	if (env->q == NULL) {
		pd_err(err, "no outbound queue to write to %s", nm->to);
		return -1;
	}
	if (notify_render(env, d, nm, data, &id, &out, err) != 0)
		goto out;
	memset(&spec, 0, sizeof(spec));
	spec.from_name = id.from_name;
	spec.from_addr = id.from_addr;
	/* To: names her when the message goes to the contact herself */
	spec.to_name = strcasecmp(nm->to, d->contact) == 0 ?
	    d->contact_name : "";
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

static int
notify_valid_due(const char *due)
{
	int64_t t;

	return pd_parse_day(due, &t) == 0;
}

/* What an invitation is, decided before anything is written: the
 * dossier as it will be (its due date, the language asked for), the
 * message and its data (the dossier's items and `extra`, items about
 * to be added). */
struct notify_invite_plan {
	struct store_dossier nd;
	char addr[512], locale[16];
	struct notify_msg nm;
	json_t *data;
};

static int
notify_invite_plan(const struct notify_env *env, const struct store_dossier *d,
    const struct notify_invite_req *req, const struct store_item *extra,
    size_t n_extra, struct notify_invite_plan *p, char *err)
{
	memset(p, 0, sizeof(*p));
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
	p->nd = *d;
	if (req->due != NULL)
		snprintf(p->nd.due, sizeof(p->nd.due), "%s", req->due);
	/* --locale is recorded as the contact's language (invite's front
	 * end does it first): this invitation already speaks it. */
	if (req->locale != NULL && req->locale[0] != '\0')
		snprintf(p->nd.contact_locale, sizeof(p->nd.contact_locale),
		    "%s", req->locale);
	notify_dossier_address(env->cfg, d, p->addr, sizeof(p->addr));
	notify_locale(env->cfg, env->st, &p->nd, req->locale, p->locale,
	    sizeof(p->locale));
	p->nm = (struct notify_msg){ req->tmpl ? req->tmpl : "invitation",
	    p->locale, "invitation", d->contact, p->addr };
	p->data = notify_data_with(env, &p->nd, p->locale, pd_now(), extra,
	    n_extra, err);
	return p->data != NULL ? 0 : -1;
}

int
notify_invite(const struct notify_env *env, const struct store_dossier *d,
    const struct notify_invite_req *req, int64_t *outbound_id_r, char *err)
{
	struct notify_invite_plan p;
	int rc;

	if (notify_invite_plan(env, d, req, NULL, 0, &p, err) != 0)
		return -1;
	/* The items are the request (callers add them first with
	 * dossier_items_add); only the due date is recorded here. */
	rc = req->due == NULL ? 0 : store_dossier_set_request(env->st,
	    d->account_id, d->id, d->requested[0] != '\0' ? d->requested :
	    "[]", p.nd.due, err);
	if (rc == 0)
		rc = notify_send(env, &p.nd, &p.nm, p.data, outbound_id_r, err);
	json_decref(p.data);
	return rc;
}

/* The queue's answer for the recipient, asked without queuing. */
static int
notify_draft_eligible(const struct notify_env *env,
    const struct store_dossier *d, struct notify_draft *dr, char *err)
{
	struct eligible_ask a = { .kind = ELIGIBLE_DOSSIER,
	    .when = ELIGIBLE_QUEUE, .account_id = d->account_id,
	    .rcpt = d->contact, .now = pd_now() };
	struct eligible_verdict v;
	int rc = eligible_check(env->cfg, env->st, &a, &v, err);

	if (rc == 0)
		snprintf(dr->refused, sizeof(dr->refused), "%s%s%s", v.reason,
		    v.detail[0] ? ": " : "", v.detail);
	return rc < 0 ? -1 : 0;
}

int
notify_invite_draft(const struct notify_env *env,
    const struct store_dossier *d, const struct notify_invite_req *req,
    const struct store_item *extra, size_t n_extra, struct notify_draft *dr,
    char *err)
{
	struct notify_invite_plan p;
	struct notify_identity id;
	struct tmpl_output out;
	int rc;

	memset(dr, 0, sizeof(*dr));
	if (notify_invite_plan(env, d, req, extra, n_extra, &p, err) != 0)
		return -1;
	rc = notify_render(env, &p.nd, &p.nm, p.data, &id, &out, err);
	if (rc == 0 && !outmsg_addr_valid(d->contact, 0)) {
		pd_err(err, "the contact's address %s cannot be written to",
		    d->contact);
		rc = -1;
	}
	if (rc == 0)
		rc = notify_draft_eligible(env, d, dr, err);
	if (rc == 0) {
		snprintf(dr->from_name, sizeof(dr->from_name), "%s",
		    id.from_name);
		snprintf(dr->from_addr, sizeof(dr->from_addr), "%s",
		    id.from_addr);
		snprintf(dr->to, sizeof(dr->to), "%s", d->contact);
		snprintf(dr->to_name, sizeof(dr->to_name), "%s",
		    d->contact_name);
		snprintf(dr->reply_to, sizeof(dr->reply_to), "%s", p.addr);
		snprintf(dr->locale, sizeof(dr->locale), "%s", out.locale);
		dr->subject = xstrdup(out.subject);
		dr->text = xstrdup(out.text);
		dr->items = json_incref(json_object_get(p.data, "items"));
	}
	tmpl_output_free(&out);
	json_decref(p.data);
	return rc;
}

void
notify_draft_free(struct notify_draft *dr)
{
	free(dr->subject);
	free(dr->text);
	json_decref(dr->items);
	memset(dr, 0, sizeof(*dr));
}

/* ---- receipts ---- */

/* The policy vouches for sender: it is the contact, or the account names
 * its domain (the session refused any other at RCPT). */
int
notify_vouched(const struct store_dossier *d, const char *sender)
{
	return strcasecmp(sender, d->contact) == 0 ||
	    strncmp(d->sender_policy, "domains:", 8) == 0;
}

/* The documents of d, to tell which item a received file went to when
 * intake did not say. */
struct notify_docs {
	struct store_doc_row *v;
	size_t n, cap;
};

static int
notify_doc_cb(const struct store_doc_row *r, void *ctx)
{
	struct notify_docs *l = ctx;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = *r;
	return 0;
}

/* The document a received entry is: by id, else the latest of that name
 * and size (the one just filed). */
static const struct store_doc_row *
notify_doc_of(const struct notify_docs *l, json_t *v)
{
	json_int_t id = json_integer_value(json_object_get(v, "document"));
	const char *name = json_string_value(json_object_get(v, "filename"));
	json_int_t size = json_integer_value(json_object_get(v, "size"));
	const struct store_doc_row *best = NULL;
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (id > 0 && l->v[i].id == id)
			return &l->v[i];
		if (id <= 0 && name != NULL && strcmp(l->v[i].filename, name)
		    == 0 && (json_int_t)l->v[i].size == size &&
		    (best == NULL || l->v[i].id > best->id))
			best = &l->v[i];
	}
	return best;
}

/* One line of the receipt: the file, its size, the day, its item. */
static json_t *
notify_received_json(const struct notify_docs *l, json_t *v,
    const char *locale, const char *today)
{
	const struct store_doc_row *doc = notify_doc_of(l, v);
	const char *label = json_string_value(json_object_get(v,
	    "item_label"));
	char size[32];

	if (label == NULL && doc != NULL && doc->item_id != 0)
		label = doc->item_label;
	notify_size_text(json_integer_value(json_object_get(v, "size")),
	    locale, size, sizeof(size));
	return json_pack("{s:s, s:s, s:s, s:s, s:b}", "filename",
	    json_string_value(json_object_get(v, "filename")) ?
	    json_string_value(json_object_get(v, "filename")) : "",
	    "size_human", size, "received_at", today,
	    "item_label", label ? label : "", "has_item",
	    label != NULL && label[0] != '\0');
}

/*
 * The types the dossier asks for, as its items show them to the client
 * ("PDF, JPEG"), each once; "" when no item names any.
 */
static void
notify_accepted_types(json_t *data, char *out, size_t len)
{
	json_t *it;
	size_t i, o = 0;

	out[0] = '\0';
	json_array_foreach(json_object_get(data, "items"), i, it) {
		const char *t = json_string_value(json_object_get(it,
		    "types"));

		if (t == NULL || t[0] == '\0' || strstr(out, t) != NULL ||
		    o + strlen(t) + 3 >= len)
			continue;
		o += (size_t)snprintf(out + o, len - o, "%s%s", o ? ", " : "",
		    t);
	}
}

/* A file left out under refused_file = "drop-file": its name, its type
 * and why, for the reader (the plugin's text, in its words, is in
 * messages.refused and the history). */
static json_t *
notify_refused_json(json_t *v, const char *accepts)
{
	json_t *r = json_object_get(v, "refused");
	const char *kind = json_string_value(json_object_get(r, "kind"));
	const char *type = json_string_value(json_object_get(r, "type"));
	const char *name = json_string_value(json_object_get(v, "filename"));
	int malware = kind != NULL && strcmp(kind, "malware") == 0;

	return json_pack("{s:s, s:s, s:b, s:b, s:s, s:b}", "filename",
	    name ? name : "", "type", type ? type : "", "malware", malware,
	    "by_type", !malware, "accepts", accepts, "has_accepts",
	    !malware && accepts[0] != '\0');
}

int
notify_receipt(const struct notify_env *env, const struct store_dossier *d,
    const char *sender, json_t *received, char *err)
{
	struct notify_docs docs = { NULL, 0, 0 };
	struct notify_msg nm;
	json_t *data, *list, *refused, *v;
	char today[64], locale[16], addr[512], accepts[512];
	size_t i;
	int rc = -1, outstanding;

	if (!env->cfg->receipts || sender[0] == '\0' ||
	    !outmsg_addr_valid(sender, 0) || !notify_vouched(d, sender) ||
	    json_array_size(received) == 0)
		return 0;
	notify_locale(env->cfg, env->st, d, NULL, locale, sizeof(locale));
	notify_when_text(pd_now(), locale, today, sizeof(today));
	if (store_document_list(env->st, d->account_id, d->id, notify_doc_cb,
	    &docs, err) != 0 ||
	    (data = notify_data(env, d, locale, pd_now(), err)) == NULL) {
		free(docs.v);
		return -1;
	}
	list = json_array();
	refused = json_array();
	notify_accepted_types(data, accepts, sizeof(accepts));
	json_array_foreach(received, i, v) {
		if (json_object_get(v, "refused") != NULL)
			json_array_append_new(refused, notify_refused_json(v,
			    accepts));
		else
			json_array_append_new(list, notify_received_json(
			    &docs, v, locale, today));
	}
	free(docs.v);
	outstanding = json_is_true(json_object_get(data, "has_outstanding"));
	/* complete: every required item has something to review (nothing
	 * is missing); pending: something is.  Neither without items. */
	json_object_set_new(data, "receipt", json_pack("{s:O, s:I, s:b, s:b,"
	    " s:O, s:b, s:b, s:b}", "received", list, "count",
	    (json_int_t)json_array_size(list), "pending", outstanding,
	    "complete", !outstanding && json_is_true(json_object_get(data,
	    "has_items")), "refused", refused, "has_refused",
	    json_array_size(refused) > 0, "has_received",
	    json_array_size(list) > 0, "nothing_filed",
	    json_array_size(list) == 0));
	json_decref(list);
	json_decref(refused);
	/* A reply must reach the dossier (it bounced without Reply-To). */
	notify_dossier_address(env->cfg, d, addr, sizeof(addr));
	nm = (struct notify_msg){ "receipt", locale, "receipt", sender, addr };
	rc = notify_send(env, d, &nm, data, NULL, err);
	json_decref(data);
	return rc == 0 ? 1 : -1;
}

/* ---- preview ---- */

int
notify_preview(const struct pd_config *cfg, struct store *st,
    const char *tmpl,
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
	if (notify_identity(cfg, st, account, &id, err) != 0)
		return -1;
	if (to == NULL)
		to = json_string_value(json_object_get(json_object_get(data,
		    "contact"), "email"));
	if (to == NULL) {
		pd_err(err, "no recipient: give --to or contact.email in the "
		    "data");
		return -1;
	}
	if (tmpl_render(notify_template_dir(cfg, tdir, sizeof(tdir)), tmpl,
	    locale, id.locale[0] ? id.locale : NULL, data, &out, err) != 0)
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
	if (notify_identity(cfg, m->st, m->account, &id, err) != 0) {
		json_decref(data);
		return -1;
	}
	json_object_set_new(data, "account", notify_account_json(m->account,
	    &id));
	if (tmpl_render(notify_template_dir(cfg, tdir, sizeof(tdir)), m->tmpl,
	    m->locale, id.locale[0] ? id.locale : NULL, data, &out, err) != 0)
		goto out;
	if (m->subject_prefix != NULL) {
		char *s = xasprintf("%s%s", m->subject_prefix, out.subject);

		free(out.subject);
		out.subject = s;
	}
	spec = (struct outmsg_spec){ .from_name = id.from_name,
	    .from_addr = id.from_addr, .to_name = "", .to_addr = m->to,
	    .reply_to = NULL, .subject = out.subject, .text = out.text,
	    .html = out.html, .msgid_domain = notify_domain(id.from_addr),
	    .extra = m->extra, .n_extra = m->n_extra };
	/* A domain is at most 255 octets (RFC 1035 2.3.4). */
	snprintf(b->from_domain, sizeof(b->from_domain), "%.255s",
	    notify_domain(id.from_addr));
	if (notify_tmp_path(cfg, b->path, sizeof(b->path), err) == 0 &&
	    outmsg_build(&spec, b->path, b->message_id,
	    sizeof(b->message_id), err) == 0)
		rc = 0;
	else if (b->path[0] != '\0')
		unlink(b->path);
	if (rc == 0 && m->keep_parts) {
		b->subject = xstrdup(out.subject);
		b->text = xstrdup(out.text);
		b->html = out.html != NULL ? xstrdup(out.html) : NULL;
	}
out:
	tmpl_output_free(&out);
	json_decref(data);
	return rc;
}

void
notify_built_free(struct notify_built *b)
{
	free(b->subject);
	free(b->text);
	free(b->html);
	b->subject = b->text = b->html = NULL;
}

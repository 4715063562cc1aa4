/*
 * api_loop.c - the dossier loop over the JSON API: a dossier as every
 * route shows it (its items with their state, address and documents,
 * the contact as a person, complete or not), new dossiers from a
 * checklist and items, the review of documents (assign, accept, reject
 * with a reason), the messages the client wrote, closing with a message,
 * and the account's named checklists.  Like api_res.c it calls the
 * dossier service (the one the CLI calls) as "api:<token name>", and
 * never a store header: the service decides, this file speaks HTTP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api_int.h"
#include "dossier/dossier.h"
#include "lib/config.h"
#include "lib/util.h"

/* What the reader of a message gets in the API (the CLI's JSON too). */
#define API_MESSAGE_TEXT_MAX 8000
#define API_REASON_MAX 1000

static json_t *
api_jopt(const char *s)
{
	return s[0] != '\0' ? api_jstr(s) : json_null();
}

/* ---- a dossier's items and documents, collected ---- */

struct api_items {
	struct store_item *v;
	size_t n;
};

struct api_docs {
	struct store_doc_row *v;
	size_t n;
};

static int
api_item_cb(const struct store_item *it, void *ctx)
{
	struct api_items *l = ctx;

	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = *it;
	return 0;
}

static int
api_docrow_cb(const struct store_doc_row *r, void *ctx)
{
	struct api_docs *l = ctx;

	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = *r;
	return 0;
}

int
api_items_complete(const struct store_item *v, size_t n)
{
	size_t i, required = 0;

	for (i = 0; i < n; i++) {
		if (!v[i].required)
			continue;
		if (strcmp(v[i].state, "accepted") != 0)
			return 0;
		required++;
	}
	return required > 0;
}

/* One item as the API and `dossier show --json` show it. */
static json_t *
api_item_json(struct api_ctx *x, const struct store_dossier *d,
    const struct store_item *it, const struct api_docs *docs)
{
	json_t *ids = json_array();
	char addr[512];
	size_t i;

	dossier_item_address(x->s->cfg->intake_domain, d, it, addr,
	    sizeof(addr));
	for (i = 0; docs != NULL && i < docs->n; i++)
		if (docs->v[i].item_id == it->id)
			json_array_append_new(ids, json_integer(docs->v[i].id));
	return json_pack("{s:I, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "id", (json_int_t)it->id, "slug", api_jstr(it->slug), "label",
	    api_jstr(it->label), "required", it->required, "types",
	    api_jopt(it->types), "max_size", it->max_size > 0 ?
	    json_integer(it->max_size) : json_null(), "state",
	    api_jstr(it->state), "reason", strcmp(it->state, "rejected") == 0 ?
	    api_jopt(it->reason) : json_null(), "address", api_jstr(addr),
	    "documents", ids);
}

static int
api_collect(struct api_ctx *x, int64_t dossier_id, struct api_items *items,
    struct api_docs *docs, char *err)
{
	memset(items, 0, sizeof(*items));
	memset(docs, 0, sizeof(*docs));
	if (dossier_items(x->st, x->account_id, dossier_id, api_item_cb, items,
	    err) != 0 || dossier_documents(x->st, x->account_id, dossier_id,
	    api_docrow_cb, docs, err) != 0) {
		free(items->v);
		free(docs->v);
		return -1;
	}
	return 0;
}

json_t *
api_dossier_json(struct api_ctx *x, const struct store_dossier *d,
    char *err)
{
	struct api_items items;
	struct api_docs docs;
	json_t *ja = json_array(), *req = json_array();
	char addr[512];
	size_t i;

	if (api_collect(x, d->id, &items, &docs, err) != 0) {
		json_decref(ja);
		json_decref(req);
		return NULL;
	}
	for (i = 0; i < items.n; i++) {
		json_array_append_new(ja, api_item_json(x, d, &items.v[i],
		    &docs));
		/* "requested", the older field: the required items' labels. */
		if (items.v[i].required)
			json_array_append_new(req, api_jstr(items.v[i].label));
	}
	snprintf(addr, sizeof(addr), "%s@%s", d->intake_local,
	    x->s->cfg->intake_domain);
	free(docs.v);
	i = (size_t)api_items_complete(items.v, items.n);
	free(items.v);
	return json_pack("{s:I, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:o,"
	    " s:o, s:b, s:o}",
	    "id", (json_int_t)d->id, "ref", api_jstr(d->ref), "contact",
	    api_jstr(d->contact), "contact_name", api_jopt(d->contact_name),
	    "locale", api_jopt(d->contact_locale), "status", d->status,
	    "address", api_jstr(addr), "created", api_jtime(d->created),
	    "closed", api_jtime(d->closed), "requested", req, "due",
	    api_jopt(d->due), "complete", (int)i, "items", ja);
}

static enum MHD_Result
api_dossier_reply(struct api_ctx *x, unsigned status, int64_t id)
{
	struct store_dossier d;
	char err[PD_ERRLEN] = "";
	json_t *j;

	if (dossier_get(x->st, x->account_id, id, &d, err) != 1)
		return api_internal(x, err[0] ? err : "dossier vanished");
	if ((j = api_dossier_json(x, &d, err)) == NULL)
		return api_internal(x, err);
	return api_json(x, status, j);
}

/* ---- items from a body ---- */

static void
api_items_push(struct store_item **v, size_t *n, const struct store_item *it)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = *it;
}

int
api_body_items(struct api_ctx *x, const char *field, struct store_item **v_r,
    size_t *n_r, enum MHD_Result *ret)
{
	json_t *a = x->body != NULL ? json_object_get(x->body, field) : NULL;
	json_t *o, *e;
	struct store_item it;
	char err[PD_ERRLEN] = "", why[PD_ERRLEN + 32];
	int names = strcmp(field, "requested") == 0, rc;
	size_t i;

	if (a == NULL || json_is_null(a))
		return 1;
	if (!json_is_array(a) || json_array_size(a) > DOSSIER_ITEMS_MAX) {
		*ret = api_invalid(x, field, names ? "an array of at most 50 "
		    "document names" : "an array of at most 50 items "
		    "{label, required, types, max_size}");
		goto fail;
	}
	json_array_foreach(a, i, e) {
		/* A name is a label, never "LABEL|TYPES|MAX": what a CRM
		 * sends is taken as it is. */
		if (names && !json_is_string(e)) {
			*ret = api_invalid(x, field, "an array of document "
			    "names (strings)");
			goto fail;
		}
		o = names ? json_pack("{s:O}", "label", e) : json_incref(e);
		rc = dossier_item_from_json(o, &it, err);
		json_decref(o);
		if (rc != 0) {
			snprintf(why, sizeof(why), "[%zu]: %s", i, err);
			*ret = api_invalid(x, field, why);
			goto fail;
		}
		api_items_push(v_r, n_r, &it);
	}
	return 1;
fail:
	free(*v_r);
	*v_r = NULL;
	*n_r = 0;
	return 0;
}

/* ---- dossiers ---- */

/* The contact of a new dossier: "contact" ("addr" or "Name <addr>"),
 * with "contact_name" naming the person when given. */
static int
api_contact(struct api_ctx *x, char *out, size_t outlen,
    enum MHD_Result *ret)
{
	const char *contact, *name;
	char email[DOSSIER_CONTACT_MAX + 2], parsed[256];

	if (!api_field_str(x, "contact", 1, 512, &contact) ||
	    !dossier_parse_contact(contact, email, sizeof(email), parsed,
	    sizeof(parsed))) {
		*ret = api_invalid(x, "contact", "an e-mail address is "
		    "required: \"claire@client.example\" or \"Claire Martin "
		    "<claire@client.example>\"");
		return 0;
	}
	if (!api_field_str(x, "contact_name", 0, 200, &name) || (name &&
	    name[0] != '\0' && (!dossier_valid_text(name, 200) ||
	    strpbrk(name, "<>\"") != NULL))) {
		*ret = api_invalid(x, "contact_name", "the contact's name, "
		    "1-200 bytes of text without <, > or \"");
		return 0;
	}
	if (name != NULL && name[0] != '\0')
		snprintf(out, outlen, "%s <%s>", name, email);
	else
		snprintf(out, outlen, "%s", contact);
	return 1;
}

enum MHD_Result
api_dossier_create(struct api_ctx *x)
{
	struct dossier_new n;
	struct store_item *v = NULL;
	const char *locale, *checklist;
	char err[PD_ERRLEN] = "", contact[768];
	enum MHD_Result ret;
	size_t nv = 0;
	int64_t id = 0;
	int rc;

	memset(&n, 0, sizeof(n));
	if (!api_contact(x, contact, sizeof(contact), &ret))
		return ret;
	if (!api_field_str(x, "ref", 1, DOSSIER_REF_MAX, &n.ref) ||
	    !dossier_valid_ref(n.ref))
		return api_invalid(x, "ref", "1-127 bytes of UTF-8 text, no "
		    "control characters");
	if (!api_field_str(x, "due", 0, 10, &n.due) || (n.due &&
	    !dossier_valid_due(n.due)))
		return api_invalid(x, "due", "a date YYYY-MM-DD");
	if (!api_field_str(x, "locale", 0, 16, &locale) || (locale &&
	    !dossier_valid_locale(locale)))
		return api_invalid(x, "locale", "a language tag like fr, en "
		    "or pt-BR");
	if (!api_field_str(x, "checklist", 0, 32, &checklist) || (checklist &&
	    !dossier_valid_word(checklist)))
		return api_invalid(x, "checklist", "the name of one of the "
		    "account's checklists ([a-z0-9_-]{1,32})");
	/* The older "requested" names first, then "items": one batch,
	 * all added or none. */
	if (!api_body_items(x, "requested", &v, &nv, &ret))
		return ret;
	{
		struct store_item *w = NULL;
		size_t nw = 0, i;

		if (!api_body_items(x, "items", &w, &nw, &ret)) {
			free(v);
			return ret;
		}
		for (i = 0; i < nw; i++)
			api_items_push(&v, &nv, &w[i]);
		free(w);
	}
	n.contact = contact;
	n.locale = locale;
	n.checklist = checklist;
	n.items = v;
	n.n_items = nv;
	rc = dossier_create_with(x->st, x->account_id, &n, &id, err);
	free(v);
	switch (rc) {
	case 0:
		return api_dossier_reply(x, MHD_HTTP_CREATED, id);
	case 1:
		return api_error(x, MHD_HTTP_CONFLICT, "conflict", "a dossier "
		    "with this ref exists (id %lld)", (long long)id);
	case DOSSIER_ENOTFOUND:
		return api_invalid(x, "checklist", err);
	case DOSSIER_EINVAL:
		/* Contact, locale and due were checked above: what is left
		 * is the items (a slug two labels share). */
		return api_invalid(x, "items", err);
	default:
		return api_internal(x, err);
	}
}

/* 409 dossier_closed, as an invitation to a closed dossier. */
static enum MHD_Result
api_closed(struct api_ctx *x, const struct store_dossier *d)
{
	return api_error(x, MHD_HTTP_CONFLICT, "dossier_closed", "dossier "
	    "%lld is closed: its items and documents stay as they are",
	    (long long)d->id);
}

enum MHD_Result
api_dossier_items_add(struct api_ctx *x)
{
	struct store_dossier d;
	struct store_item *v = NULL;
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret;
	size_t n = 0;
	int rc;

	if (!api_find_dossier(x, &d, &ret))
		return ret;
	if (!api_body_items(x, "items", &v, &n, &ret))
		return ret;
	if (n == 0)
		return api_invalid(x, "items", "an array of 1 to 50 items "
		    "{label, required, types, max_size}");
	if (strcmp(d.status, "open") != 0) {
		free(v);
		return api_closed(x, &d);
	}
	rc = dossier_items_add(x->st, x->account_id, d.id, v, n, NULL, err);
	free(v);
	if (rc == DOSSIER_EINVAL)
		return api_invalid(x, "items", err);
	if (rc != 0)
		return api_internal(x, err);
	return api_dossier_reply(x, MHD_HTTP_OK, d.id);
}

enum MHD_Result
api_dossier_close(struct api_ctx *x)
{
	struct dossier_env env = { x->s->cfg, x->st, x->q, x->actor };
	struct store_dossier d;
	json_t *nv = x->body != NULL ? json_object_get(x->body, "notify") :
	    NULL;
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret;
	int64_t mail_id;
	int was_closed, rc;

	if (nv != NULL && !json_is_null(nv) && !json_is_boolean(nv))
		return api_invalid(x, "notify", "true to send the contact the "
		    "closing message, false (the default) not to");
	if (!api_find_dossier(x, &d, &ret))
		return ret;
	rc = dossier_close_with(&env, x->account_id, d.id, json_is_true(nv),
	    &was_closed, &d, &mail_id, err);
	if (rc == DOSSIER_EINVAL)
		return api_invalid(x, "notify", err);
	if (rc != 0)
		return api_internal(x, err);
	return api_dossier_reply(x, MHD_HTTP_OK, d.id);
}

/* ---- messages ---- */

struct api_msgs {
	struct store_msg_row *v;
	size_t n;
};

static int
api_msg_cb(const struct store_msg_row *m, void *ctx)
{
	struct api_msgs *l = ctx;

	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = *m;
	return 0;
}

/* The sender's authentication recorded at intake: null when not
 * checked; "pass" null when the account checks nothing, else whether
 * its rule (sender_auth) passed the sender. */
static json_t *
api_msg_auth(const struct store_msg_row *m)
{
	if (m->auth_results[0] == '\0' && m->sender_pass == 0)
		return json_null();
	return json_pack("{s:o, s:o, s:o, s:o, s:o}", "spf", api_jstr(m->spf),
	    "dkim", api_jstr(m->dkim), "dmarc", api_jstr(m->dmarc), "pass",
	    m->sender_pass == 0 ? json_null() :
	    json_boolean(m->sender_pass > 0), "authentication_results",
	    api_jstr(m->auth_results));
}

/* One message: what the client wrote (sanitised text of the stored raw
 * message, null once the raw copy is gone) and the documents it
 * brought. */
static json_t *
api_msg_json(struct api_ctx *x, const struct store_msg_row *m,
    const struct api_docs *docs, char *err)
{
	json_t *ids = json_array();
	char *text = NULL;
	size_t i;
	int rc;

	rc = dossier_message_text(x->st, x->bs, x->account_id, m->id,
	    API_MESSAGE_TEXT_MAX, &text, err);
	if (rc < 0) {
		json_decref(ids);
		return NULL;
	}
	for (i = 0; i < docs->n; i++)
		if (docs->v[i].message_id == m->id)
			json_array_append_new(ids, json_integer(docs->v[i].id));
	{
		json_t *refused = m->refused[0] ? json_loads(m->refused, 0,
		    NULL) : NULL;
		json_t *j = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
		    " s:o}", "id", (json_int_t)m->id, "from", api_jstr(m->mail_from),
		    "subject", api_jstr(m->subject), "received",
		    api_jtime(m->received), "documents", ids, "text",
		    rc == 1 && text != NULL ? api_jstr(text) : json_null(),
		    "signed", api_jopt(m->signed_), "refused",
		    refused != NULL ? refused : json_array(), "auth",
		    api_msg_auth(m));

		free(text);
		return j;
	}
}

enum MHD_Result
api_dossier_messages(struct api_ctx *x)
{
	struct store_dossier d;
	struct api_msgs msgs = { NULL, 0 };
	struct api_items items;
	struct api_docs docs;
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret;
	json_t *data, *j;
	size_t i;

	if (!api_find_dossier(x, &d, &ret))
		return ret;
	if (api_collect(x, d.id, &items, &docs, err) != 0)
		return api_internal(x, err);
	free(items.v);
	data = json_array();
	if (dossier_messages(x->st, x->account_id, d.id, api_msg_cb, &msgs,
	    err) != 0)
		goto fail;
	for (i = 0; i < msgs.n; i++) {
		if ((j = api_msg_json(x, &msgs.v[i], &docs, err)) == NULL)
			goto fail;
		json_array_append_new(data, j);
	}
	free(msgs.v);
	free(docs.v);
	return api_json(x, MHD_HTTP_OK, json_pack("{s:o}", "data", data));
fail:
	free(msgs.v);
	free(docs.v);
	json_decref(data);
	return api_internal(x, err);
}

/* ---- review ---- */

/* The token's document x->id and its open dossier: 1, or 0 with the
 * 404 (another account's document too) or the 409 queued. */
static int
api_review_target(struct api_ctx *x, struct store_doc_row *doc,
    struct store_dossier *d, enum MHD_Result *ret)
{
	char err[PD_ERRLEN] = "";
	int rc;

	if (!api_find_doc(x, doc, ret))
		return 0;
	rc = dossier_get(x->st, x->account_id, doc->dossier_id, d, err);
	if (rc != 1) {
		*ret = rc == 0 ? api_not_found(x, "document") :
		    api_internal(x, err);
		return 0;
	}
	if (strcmp(d->status, "open") != 0) {
		*ret = api_closed(x, d);
		return 0;
	}
	return 1;
}

/* What changed: the document, its item, whether the dossier is complete
 * now, and the message queued to the contact. */
static enum MHD_Result
api_review_reply(struct api_ctx *x, const struct store_dossier *d,
    const struct dossier_review *r)
{
	struct api_items items;
	struct api_docs docs;
	char err[PD_ERRLEN] = "";
	json_t *item = json_null();
	size_t i;
	int complete;

	if (api_collect(x, d->id, &items, &docs, err) != 0)
		return api_internal(x, err);
	for (i = 0; i < items.n; i++)
		if (r->item.id != 0 && items.v[i].id == r->item.id) {
			json_decref(item);
			item = api_item_json(x, d, &items.v[i], &docs);
		}
	complete = api_items_complete(items.v, items.n);
	free(items.v);
	free(docs.v);
	return api_json(x, MHD_HTTP_OK, json_pack("{s:o, s:o, s:b, s:b, s:b,"
	    " s:o}", "document", api_doc_json(&r->doc), "item", item,
	    "unchanged", r->unchanged, "completed", r->completed,
	    "complete", complete, "outbound_id", r->mail_id != 0 ?
	    json_integer(r->mail_id) : json_null()));
}

enum MHD_Result
api_document_assign(struct api_ctx *x)
{
	struct dossier_env env = { x->s->cfg, x->st, x->q, x->actor };
	struct dossier_review r;
	struct store_doc_row doc;
	struct store_dossier d;
	json_t *iv = x->body != NULL ? json_object_get(x->body, "item") : NULL;
	char err[PD_ERRLEN] = "", why[PD_ERRLEN + 128];
	enum MHD_Result ret;
	const char *item;
	int rc;

	/* null unassigns; absent is a mistake, not a silent unassign. */
	if (iv == NULL || (!json_is_null(iv) && (!json_is_string(iv) ||
	    json_string_length(iv) == 0 || json_string_length(iv) > 40)))
		return api_invalid(x, "item", "the slug (or id) of one of the "
		    "dossier's items, or null to leave the document "
		    "unassigned");
	item = json_is_null(iv) ? "none" : json_string_value(iv);
	if (!api_review_target(x, &doc, &d, &ret))
		return ret;
	rc = dossier_document_assign(&env, x->account_id, doc.id, item, &r,
	    err);
	if (rc == DOSSIER_ENOTFOUND) {
		/* The document exists (it is the path's): the body names an
		 * item the dossier does not have, an invalid field. */
		snprintf(why, sizeof(why), "dossier %lld has no item \"%s\" "
		    "(GET /api/v1/dossiers/%lld lists its items)",
		    (long long)d.id, item, (long long)d.id);
		return api_invalid(x, "item", why);
	}
	if (rc == DOSSIER_EINVAL)
		return api_invalid(x, "item", err);
	if (rc != 0)
		return api_internal(x, err);
	return api_review_reply(x, &d, &r);
}

/* The service's answer to a review, as HTTP: not found is the path's
 * document, a refusal names `field`. */
static enum MHD_Result
api_review_answer(struct api_ctx *x, const struct store_dossier *d,
    const struct dossier_review *r, int rc, const char *field,
    const char *err)
{
	if (rc == DOSSIER_ENOTFOUND)
		return api_not_found(x, "document");
	if (rc == DOSSIER_EINVAL)
		return api_invalid(x, field, err);
	if (rc != 0)
		return api_internal(x, err);
	return api_review_reply(x, d, r);
}

enum MHD_Result
api_document_accept(struct api_ctx *x)
{
	struct dossier_env env = { x->s->cfg, x->st, x->q, x->actor };
	struct dossier_review r;
	struct store_doc_row doc;
	struct store_dossier d;
	char err[PD_ERRLEN] = "", why[256];
	enum MHD_Result ret;
	int rc;

	if (!api_review_target(x, &doc, &d, &ret))
		return ret;
	if (doc.item_id == 0) {
		/* What is accepted is an answer to an item: say how to
		 * file it first. */
		snprintf(why, sizeof(why), "document %lld is not filed under "
		    "an item: assign it first (POST /api/v1/documents/%lld/"
		    "assign {\"item\": \"<slug>\"})", (long long)doc.id,
		    (long long)doc.id);
		return api_invalid(x, "item", why);
	}
	rc = dossier_document_accept(&env, x->account_id, doc.id, &r, err);
	return api_review_answer(x, &d, &r, rc, "item", err);
}

enum MHD_Result
api_document_reject(struct api_ctx *x)
{
	struct dossier_env env = { x->s->cfg, x->st, x->q, x->actor };
	struct dossier_review r;
	struct store_doc_row doc;
	struct store_dossier d;
	const char *reason;
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret;
	int rc;

	/* The reason is sent to the contact: never reject without one. */
	if (!api_field_str(x, "reason", 1, API_REASON_MAX, &reason) ||
	    strspn(reason, " \t") == strlen(reason))
		return api_invalid(x, "reason", "why the document is rejected, "
		    "1-1000 bytes of text on one line: it is sent to the "
		    "contact");
	if (!api_review_target(x, &doc, &d, &ret))
		return ret;
	rc = dossier_document_reject(&env, x->account_id, doc.id, reason, &r,
	    err);
	return api_review_answer(x, &d, &r, rc, "reason", err);
}

/* ---- checklists ---- */

struct api_cks {
	json_t *data;
	const char *only;	/* one name, or NULL: all */
};

static int
api_checklist_cb(const struct store_checklist *c, void *ctx)
{
	struct api_cks *l = ctx;
	json_t *items;

	if (l->only != NULL && strcmp(l->only, c->name) != 0)
		return 0;
	items = json_loads(c->items, 0, NULL);
	if (!json_is_array(items)) {
		json_decref(items);
		items = json_array();
	}
	json_array_append_new(l->data, json_pack("{s:o, s:o, s:o}", "name",
	    api_jstr(c->name), "items", items, "created",
	    api_jtime(c->created)));
	return 0;
}

enum MHD_Result
api_checklist_list(struct api_ctx *x)
{
	struct api_cks l = { json_array(), NULL };
	char err[PD_ERRLEN] = "";

	if (dossier_checklist_list(x->st, x->account_id, api_checklist_cb, &l,
	    err) != 0) {
		json_decref(l.data);
		return api_internal(x, err);
	}
	return api_json(x, MHD_HTTP_OK, json_pack("{s:o}", "data", l.data));
}

enum MHD_Result
api_checklist_create(struct api_ctx *x)
{
	struct api_cks l = { NULL, NULL };
	struct store_item *v = NULL, *have = NULL;
	const char *name;
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret;
	size_t n = 0, nh = 0;
	int rc;

	if (!api_field_str(x, "name", 1, 32, &name) ||
	    !dossier_valid_word(name))
		return api_invalid(x, "name", "1-32 of a-z 0-9 _ -");
	if (!api_body_items(x, "items", &v, &n, &ret))
		return ret;
	if (n == 0)
		return api_invalid(x, "items", "an array of 1 to 50 items "
		    "{label, required, types, max_size}");
	rc = dossier_checklist_items(x->st, x->account_id, name, &have, &nh,
	    err);
	free(have);
	if (rc == 1) {
		free(v);
		return api_error(x, MHD_HTTP_CONFLICT, "conflict", "checklist "
		    "\"%s\" exists in this account", name);
	}
	rc = rc < 0 ? -1 : dossier_checklist_add(x->st, x->account_id, name,
	    v, n, err);
	free(v);
	if (rc == DOSSIER_EINVAL)
		return api_invalid(x, "items", err);
	if (rc != 0)
		return api_internal(x, err);
	l.data = json_array();
	l.only = name;
	if (dossier_checklist_list(x->st, x->account_id, api_checklist_cb, &l,
	    err) != 0 || json_array_size(l.data) != 1) {
		json_decref(l.data);
		return api_internal(x, err[0] ? err : "checklist vanished");
	}
	ret = api_json(x, MHD_HTTP_CREATED, json_incref(json_array_get(l.data,
	    0)));
	json_decref(l.data);
	return ret;
}

/*
 * api_res.c - the resources of the JSON API: dossiers (lists), documents,
 * invitations, consent, campaigns, data subjects, /metrics; the dossier
 * loop (a dossier's items, reviews, messages, checklists) is
 * api_loop.c.  Each
 * handler validates its input (422 naming the field), scopes every
 * lookup by the token's account (another account's object is 404) and
 * calls the same module the CLI command calls, recording the actor as
 * "api:<token name>".  It calls services only (dossier/, consent/,
 * privacy/, outbound/notify, events/metrics) and never a store header:
 * no SQL, no rules, no validators of its own (dossier_valid_*).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api_int.h"
#include "consent/campaign.h"
#include "consent/campaign_view.h"
#include "consent/consent.h"
#include "consent/contact.h"
#include "dossier/dossier.h"
#include "events/metrics.h"
#include "lib/config.h"
#include "lib/sanitize.h"
#include "lib/util.h"
#include "outbound/markdown.h"
#include "outbound/notify.h"
#include "privacy/privacy.h"

#define API_PAGE_DEFAULT 50
#define API_CONSENT_TEXT_MAX 65536

/* ---- /metrics ---- */

enum MHD_Result
api_metrics(struct api_ctx *x)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char err[PD_ERRLEN] = "", *out = NULL;
	size_t len = 0;

	if (metrics_render(x->st, &out, &len, err) != 0)
		return api_internal(x, err);
	r = MHD_create_response_from_buffer(len, out != NULL ? out : "",
	    MHD_RESPMEM_MUST_COPY);
	free(out);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	ret = MHD_queue_response(x->con, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- dossiers ---- */

int
api_find_dossier(struct api_ctx *x, struct store_dossier *d,
    enum MHD_Result *ret)
{
	char err[PD_ERRLEN] = "";
	int rc = dossier_get(x->st, x->account_id, x->id, d, err);

	if (rc == 1)
		return 1;
	*ret = rc == 0 ? api_not_found(x, "dossier") : api_internal(x, err);
	return 0;
}

/* limit and after of a page: 1 ok, 0 with the 422 queued. */
static int
api_page_args(struct api_ctx *x, int *limit_r, int64_t *after_r,
    enum MHD_Result *ret)
{
	const char *l = api_query(x, "limit"), *a = api_query(x, "after");
	int64_t max = x->s->cfg->api_page_max;
	char *end;
	long long v;

	*limit_r = (int)(max < API_PAGE_DEFAULT ? max : API_PAGE_DEFAULT);
	*after_r = 0;
	if (l != NULL) {
		errno = 0;
		v = strtoll(l, &end, 10);
		if (errno != 0 || *end != '\0' || end == l || v < 1 || v > max) {
			*ret = api_invalid(x, "limit", "an integer from 1 to "
			    "api.page_max");
			return 0;
		}
		*limit_r = (int)v;
	}
	if (a != NULL) {
		errno = 0;
		v = strtoll(a, &end, 10);
		if (errno != 0 || *end != '\0' || end == a || v < 0) {
			*ret = api_invalid(x, "after", "an id (the next_after "
			    "of the previous page)");
			return 0;
		}
		*after_r = v;
	}
	return 1;
}

/* A page's rows, rendered once the page's query is done (each row's
 * items and documents are more queries). */
struct api_page {
	struct store_dossier *v;
	size_t n;
};

static int
api_dossier_row_cb(const struct store_dossier *d, void *ctx)
{
	struct api_page *p = ctx;

	p->v = xrealloc(p->v, (p->n + 1) * sizeof(*p->v));
	p->v[p->n++] = *d;
	return 0;
}

enum MHD_Result
api_dossier_list(struct api_ctx *x)
{
	struct store_api_filter f = { api_query(x, "status"),
	    api_query(x, "contact"), api_query(x, "ref") };
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret = MHD_NO;
	int64_t after, next;
	int limit;
	struct api_page p;
	json_t *data, *j;
	size_t i;

	if (f.status != NULL && strcmp(f.status, "open") != 0 &&
	    strcmp(f.status, "closed") != 0)
		return api_invalid(x, "status", "open or closed");
	if (f.contact != NULL && strlen(f.contact) > 320)
		return api_invalid(x, "contact", "an e-mail address");
	if (f.ref != NULL && strlen(f.ref) > DOSSIER_REF_MAX)
		return api_invalid(x, "ref", "a dossier ref");
	if (!api_page_args(x, &limit, &after, &ret))
		return ret;
	memset(&p, 0, sizeof(p));
	data = json_array();
	if (dossier_page(x->st, x->account_id, &f, after, limit,
	    api_dossier_row_cb, &p, &next, err) != 0)
		goto fail;
	for (i = 0; i < p.n; i++) {
		if ((j = api_dossier_json(x, &p.v[i], err)) == NULL)
			goto fail;
		json_array_append_new(data, j);
	}
	free(p.v);
	return api_json(x, MHD_HTTP_OK, json_pack("{s:o, s:o}", "data", data,
	    "next_after", next != 0 ? json_integer(next) : json_null()));
fail:
	free(p.v);
	json_decref(data);
	return api_internal(x, err);
}

enum MHD_Result
api_dossier_get(struct api_ctx *x)
{
	struct store_dossier d;
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret;
	json_t *j;

	if (!api_find_dossier(x, &d, &ret))
		return ret;
	if ((j = api_dossier_json(x, &d, err)) == NULL)
		return api_internal(x, err);
	return api_json(x, MHD_HTTP_OK, j);
}

/* ---- documents ---- */

/* "" as null. */
static json_t *
api_jopt(const char *s)
{
	return s[0] != '\0' ? api_jstr(s) : json_null();
}

/* A document with the item it is filed under (slug, null: unassigned),
 * its review, and what intake saw of it: flags ("truncated", "" when
 * none) and the malware scan. */
json_t *
api_doc_json(const struct store_doc_row *r)
{
	return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:I, s:s, s:o, s:o,"
	    " s:s, s:o, s:o, s:o, s:o, s:o}",
	    "id", (json_int_t)r->id, "dossier_id", (json_int_t)r->dossier_id,
	    "message_id", r->message_id ? json_integer(r->message_id) :
	    json_null(), "filename", api_jstr(r->filename), "content_type",
	    api_jstr(r->sniffed_type), "declared_type",
	    api_jstr(r->declared_type), "size", (json_int_t)r->size,
	    "sha256", r->sha256, "received", api_jtime(r->received),
	    "item", r->item_id != 0 ? api_jstr(r->item_slug) : json_null(),
	    "review", r->review[0] ? r->review : "pending", "review_reason",
	    api_jopt(r->review_reason), "reviewed_by",
	    api_jopt(r->reviewed_by), "reviewed_at",
	    api_jtime(r->reviewed_at), "scan", api_jopt(r->scan), "flags",
	    api_jstr(r->flags));
}

static int
api_doc_row_cb(const struct store_doc_row *r, void *ctx)
{
	json_array_append_new(ctx, api_doc_json(r));
	return 0;
}

enum MHD_Result
api_dossier_documents(struct api_ctx *x)
{
	struct store_dossier d;
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret;
	json_t *data;

	if (!api_find_dossier(x, &d, &ret))
		return ret;
	data = json_array();
	if (dossier_documents(x->st, x->account_id, d.id, api_doc_row_cb,
	    data, err) != 0) {
		json_decref(data);
		return api_internal(x, err);
	}
	return api_json(x, MHD_HTTP_OK, json_pack("{s:o}", "data", data));
}

int
api_find_doc(struct api_ctx *x, struct store_doc_row *r, enum MHD_Result *ret)
{
	char err[PD_ERRLEN] = "";
	int rc = dossier_document_get(x->st, x->account_id, x->id, r, err);

	if (rc == 1)
		return 1;
	*ret = rc == 0 ? api_not_found(x, "document") : api_internal(x, err);
	return 0;
}

enum MHD_Result
api_document_get(struct api_ctx *x)
{
	struct store_doc_row r;
	enum MHD_Result ret;

	if (!api_find_doc(x, &r, &ret))
		return ret;
	return api_json(x, MHD_HTTP_OK, api_doc_json(&r));
}

/*
 * RFC 6266 4.1 with RFC 8187 3.2: an ASCII fallback in filename= (no
 * quote, backslash or control byte survives) and the exact UTF-8 name,
 * percent-encoded outside attr-char, in filename*.
 */
void
api_disposition(const char *name, char *out, size_t len)
{
	static const char attr[] = "!#$&+-.^_`|~";
	size_t o;
	const unsigned char *p;

	o = (size_t)snprintf(out, len, "attachment; filename=\"");
	for (p = (const unsigned char *)name; *p && o + 2 < len; p++)
		out[o++] = (*p >= 0x20 && *p < 0x7f && *p != '"' &&
		    *p != '\\' && *p != '%') ? (char)*p : '_';
	o += (size_t)snprintf(out + o, len - o, "\"; filename*=UTF-8''");
	for (p = (const unsigned char *)name; *p && o + 4 < len; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || (*p < 0x7f &&
		    strchr(attr, *p) != NULL))
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, len - o, "%%%02X", *p);
	}
	out[o < len ? o : len - 1] = '\0';
}

/* A media type as libmagic spells it: type/subtype, token characters. */
static const char *
api_ctype(const char *t)
{
	static const char tok[] = "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&^_.+-";
	size_t a = strspn(t, tok);

	if (a == 0 || t[a] != '/' || strspn(t + a + 1, tok) == 0 ||
	    t[a + 1 + strspn(t + a + 1, tok)] != '\0')
		return "application/octet-stream";
	return t;
}

enum MHD_Result
api_document_content(struct api_ctx *x)
{
	struct store_doc_row r;
	struct MHD_Response *resp;
	struct stat sb;
	enum MHD_Result ret;
	char disp[2048];
	int fd;

	if (!api_find_doc(x, &r, &ret))
		return ret;
	if (!dossier_document_open(x->bs, r.sha256, &fd) ||
	    fstat(fd, &sb) != 0) {
		if (fd >= 0)
			close(fd);
		return api_internal(x, "document blob missing");
	}
	resp = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
	if (resp == NULL) {
		close(fd);
		return MHD_NO;
	}
	api_disposition(r.filename[0] ? r.filename : r.stored_name, disp,
	    sizeof(disp));
	MHD_add_response_header(resp, "Content-Type", api_ctype(r.sniffed_type));
	MHD_add_response_header(resp, "Content-Disposition", disp);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	ret = MHD_queue_response(x->con, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- invitations ---- */

/*
 * "requested" adds required items to the dossier (those it has are
 * kept), all or none, before the invitation is queued: the invitation
 * lists the dossier's items, each with its own address.  A locale that
 * names a language is remembered on the contact, for every later
 * message to them.
 */
enum MHD_Result
api_dossier_invite(struct api_ctx *x)
{
	struct notify_env env = { x->s->cfg, x->st, x->q };
	struct notify_invite_req req;
	struct store_dossier d;
	struct store_item *v = NULL;
	const char *tmpl, *locale, *due;
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret;
	size_t n = 0;
	int64_t oid = 0;
	int rc;

	if (!api_find_dossier(x, &d, &ret))
		return ret;
	if (!api_field_str(x, "template", 0, 32, &tmpl) ||
	    (tmpl && !dossier_valid_word(tmpl)))
		return api_invalid(x, "template", "a name of [a-z0-9_-]{1,32}");
	if (!api_field_str(x, "locale", 0, 32, &locale) ||
	    (locale && !dossier_valid_word(locale)))
		return api_invalid(x, "locale", "a name of [a-z0-9_-]{1,32}");
	if (!api_field_str(x, "due", 0, 10, &due) || (due && !dossier_valid_due(due)))
		return api_invalid(x, "due", "a date YYYY-MM-DD");
	if (!api_body_items(x, "requested", &v, &n, &ret))
		return ret;
	if (strcmp(d.status, "open") != 0) {
		free(v);
		return api_error(x, MHD_HTTP_CONFLICT, "dossier_closed",
		    "dossier %lld is closed", (long long)d.id);
	}
	rc = n > 0 ? dossier_items_add(x->st, x->account_id, d.id, v, n, NULL,
	    err) : 0;
	free(v);
	if (rc == DOSSIER_EINVAL)
		return api_invalid(x, "requested", err);
	if (rc == 0 && locale != NULL && dossier_valid_locale(locale))
		rc = dossier_contact_set(x->st, x->account_id, d.contact, NULL,
		    locale, err);
	if (rc != 0)
		return api_internal(x, err);
	req = (struct notify_invite_req){ tmpl, locale, due };
	/* Queued only: serve's runner delivers it, as the reminder check. */
	rc = notify_invite(&env, &d, &req, &oid, err);
	if (rc != 0) {
		log_warn("api: %s: invitation for dossier %lld: %s", x->account,
		    (long long)d.id, err);
		return api_error(x, MHD_HTTP_CONFLICT, "not_queued", "%s", err);
	}
	return api_json(x, MHD_HTTP_ACCEPTED, json_pack("{s:I, s:I, s:s}",
	    "outbound_id", (json_int_t)oid, "dossier_id", (json_int_t)d.id,
	    "state", "queued"));
}

/* ---- contacts and consent ---- */

/* An operator's change on the audit trail, as consent_cli.c records. */
static int
api_audit(struct api_ctx *x, const char *action, const char *email,
    const char *what, const char *purpose, char *err)
{
	struct privacy_env env = { x->s->cfg, x->st, NULL, x->actor };
	json_t *d = json_pack("{s:s, s:s?}", "change", what, "purpose",
	    purpose);
	char *js = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
	int rc = privacy_audit(&env, action, x->account, email,
	    js != NULL ? js : "", err);

	free(js);
	json_decref(d);
	return rc;
}

/* The proof fields of a record: 1 ok, 0 with the 422 queued. */
static int
api_consent_act(struct api_ctx *x, struct consent_act *a, enum MHD_Result *r)
{
	const char *f = NULL;

	if (!api_field_str(x, f = "basis", 0, 24, &a->basis) ||
	    (a->basis != NULL && !consent_basis_valid(a->basis)) ||
	    !api_field_str(x, f = "source", 0, 16, &a->source) ||
	    (a->source != NULL && !consent_source_valid(a->source)) ||
	    !api_field_str(x, f = "method", 0, 64, &a->method) ||
	    !api_field_str(x, f = "ip", 0, 64, &a->ip) ||
	    !api_field_str(x, f = "user_agent", 0, 256, &a->user_agent)) {
		*r = api_invalid(x, f, strcmp(f, "basis") == 0 ? "consent, "
		    "contract or legitimate_interest" : strcmp(f, "source") ==
		    0 ? "form, api, import, double_opt_in, one_click, mailto "
		    "or admin" : "a string (too long?)");
		return 0;
	}
	if (a->basis == NULL)
		a->basis = "consent";
	if (a->source == NULL)
		a->source = "api";
	a->operator_ = x->actor;
	return 1;
}

/*
 * A grant to an erased address: refused (409 erased) unless the body
 * says "reconsent": true, the person came back on their own; the grant
 * then lifts the erasure for this account.  1 go on, 0 *ret answered.
 */
static int
api_consent_erased(struct api_ctx *x, struct consent_act *a,
    const char *norm, char hash[65], enum MHD_Result *ret)
{
	json_t *rv = x->body != NULL ? json_object_get(x->body, "reconsent") :
	    NULL;
	char err[PD_ERRLEN] = "", why[400];
	int rc;

	if (rv != NULL && !json_is_null(rv) && !json_is_boolean(rv)) {
		*ret = api_invalid(x, "reconsent", "true when the person, once "
		    "erased, came back on their own; false (the default)");
		return 0;
	}
	a->reconsent = json_is_true(rv);
	rc = consent_erased_gate(x->s->cfg, x->st, x->account_id, norm,
	    a->reconsent, hash, why, sizeof(why), err);
	if (rc < 0) {
		*ret = api_internal(x, err);
		return 0;
	}
	if (rc == 0) {
		*ret = api_error(x, MHD_HTTP_CONFLICT, "erased", "%s; consent "
		    "is not granted again silently: send \"reconsent\": true "
		    "if the person came back on their own", why);
		return 0;
	}
	a->lift_hash = hash[0] != '\0' ? hash : NULL;
	a->account = x->account;
	return 1;
}

static enum MHD_Result
api_consent_change(struct api_ctx *x, const char *action)
{
	struct consent_act a = { .action = action };
	const char *email, *purpose, *text;
	char err[PD_ERRLEN] = "", norm[320], hash[65] = "";
	enum MHD_Result ret;
	json_t *j;
	int64_t pid, cid;
	int rc;

	if (!api_field_str(x, "email", 1, 254, &email) ||
	    !consent_email_norm(email, norm, sizeof(norm)))
		return api_invalid(x, "email", "an e-mail address is required");
	if (!api_field_str(x, "purpose", 1, 32, &purpose))
		return api_invalid(x, "purpose", "a purpose name is required");
	if (!api_consent_act(x, &a, &ret))
		return ret;
	if (strcmp(action, "grant") == 0 &&
	    !api_consent_erased(x, &a, norm, hash, &ret))
		return ret;
	if (!api_field_str(x, "text", 0, API_CONSENT_TEXT_MAX, &text) ||
	    (text != NULL && (text[0] == '\0' ||
	    !sanitize_utf8_valid(text, strlen(text)))))
		return api_invalid(x, "text", "the consent text shown, 1 byte "
		    "to 64 KiB of UTF-8");
	rc = consent_purpose_get(x->st, x->account_id, purpose, &pid, err);
	if (rc == 0)
		return api_invalid(x, "purpose", "no such purpose in this "
		    "account");
	if (rc < 0 || (text != NULL && consent_text_put(x->st,
	    x->account_id, text, &a.text_id, err) != 0) ||
	    consent_contact_ensure(x->st, x->account_id, norm, &cid, err) != 0 ||
	    (rc = consent_apply(x->st, x->account_id, cid, pid, &a, err)) < 0 ||
	    (rc > 0 && api_audit(x, "consent.change", norm, action, purpose,
	    err) != 0))
		return api_internal(x, err);
	j = json_pack("{s:s, s:s, s:s, s:b}", "email", norm, "purpose",
	    purpose, "status", strcmp(action, "grant") == 0 ? "granted" :
	    "withdrawn", "changed", rc > 0);
	if (rc > 0 && hash[0] != '\0')	/* only when an erasure was lifted */
		json_object_set_new(j, "reconsent", json_true());
	return api_json(x, MHD_HTTP_OK, j);
}

enum MHD_Result
api_consent_grant(struct api_ctx *x)
{
	return api_consent_change(x, "grant");
}

enum MHD_Result
api_consent_withdraw(struct api_ctx *x)
{
	return api_consent_change(x, "withdraw");
}

struct api_consent_show {
	json_t *records, *status;
};

static int
api_consent_row_cb(const struct store_consent_rec *r, void *ctx)
{
	struct api_consent_show *s = ctx;

	json_object_set_new(s->status, r->purpose, json_string(
	    strcmp(r->action, "grant") == 0 ? "granted" : "withdrawn"));
	json_array_append_new(s->records, json_pack("{s:I, s:s, s:s, s:s,"
	    " s:s, s:o, s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)r->id,
	    "purpose", r->purpose, "action", r->action, "basis", r->basis,
	    "source", r->source, "method", api_jstr(r->method), "at",
	    (json_int_t)r->at, "ip", api_jstr(r->ip), "user_agent",
	    api_jstr(r->user_agent), "operator", api_jstr(r->operator_),
	    "text", r->text_id == 0 ? json_null() : json_pack("{s:I, s:s, "
	    "s:o}", "id", (json_int_t)r->text_id, "sha256", r->text_sha256,
	    "body", api_jstr(r->text))));
	return 0;
}

static int
api_find_contact(struct api_ctx *x, struct store_contact *c,
    enum MHD_Result *ret)
{
	char err[PD_ERRLEN] = "", norm[320];
	int rc;

	if (!consent_email_norm(x->key, norm, sizeof(norm))) {
		*ret = api_not_found(x, "contact");
		return 0;
	}
	rc = consent_contact_find(x->st, x->account_id, norm, c, err);
	if (rc == 1)
		return 1;
	*ret = rc == 0 ? api_not_found(x, "contact") : api_internal(x, err);
	return 0;
}

/* ---- purposes ---- */

struct api_purposes {
	struct store *st;
	json_t *data;
	char *err;
};

static int
api_label_cb(const char *locale, const char *label, void *ctx)
{
	json_object_set_new(ctx, locale, json_string(label));
	return 0;
}

static int
api_purpose_cb(int64_t id, const char *name, void *ctx)
{
	struct api_purposes *p = ctx;
	json_t *labels = json_object();

	if (consent_purpose_labels(p->st, id, api_label_cb, labels, p->err)
	    != 0) {
		json_decref(labels);
		return -1;
	}
	json_array_append_new(p->data, json_pack("{s:s, s:o}", "name", name,
	    "labels", labels));
	return 0;
}

/* The account's purposes: the name a form or a grant uses, and what a
 * reader is shown instead, by locale. */
enum MHD_Result
api_purpose_list(struct api_ctx *x)
{
	char err[PD_ERRLEN] = "";
	struct api_purposes p = { x->st, json_array(), err };

	if (consent_purpose_list(x->st, x->account_id, api_purpose_cb, &p,
	    err) != 0) {
		json_decref(p.data);
		return api_internal(x, err);
	}
	return api_json(x, MHD_HTTP_OK, json_pack("{s:o}", "data", p.data));
}

enum MHD_Result
api_contact_consent(struct api_ctx *x)
{
	struct store_contact c;
	struct api_consent_show s;
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret;

	if (!api_find_contact(x, &c, &ret))
		return ret;
	s.records = json_array();
	s.status = json_object();
	if (consent_records(x->st, x->account_id, c.id,
	    api_consent_row_cb, &s, err) != 0) {
		json_decref(s.records);
		json_decref(s.status);
		return api_internal(x, err);
	}
	return api_json(x, MHD_HTTP_OK, json_pack("{s:o, s:{s:s, s:o, s:o}, "
	    "s:o, s:o}", "email", api_jstr(c.email), "adult", "value", c.adult,
	    "at", api_jtime(c.adult_at), "by", api_jstr(c.adult_by), "status",
	    s.status, "records", s.records));
}

enum MHD_Result
api_contact_attest(struct api_ctx *x)
{
	const char *v;
	char err[PD_ERRLEN] = "", norm[320];

	if (!consent_email_norm(x->key, norm, sizeof(norm)))
		return api_not_found(x, "contact");
	if (!api_field_str(x, "adult", 1, 8, &v) || (strcmp(v, "yes") != 0 &&
	    strcmp(v, "no") != 0 && strcmp(v, "unknown") != 0))
		return api_invalid(x, "adult", "yes, no or unknown");
	if (consent_contact_attest(x->st, x->account_id, norm, v, x->actor,
	    err) != 0 || api_audit(x, "contact.attest", norm, v, NULL, err) != 0)
		return api_internal(x, err);
	return api_json(x, MHD_HTTP_OK, json_pack("{s:s, s:s}", "email", norm,
	    "adult", v));
}

/* ---- campaigns ---- */

/* The campaign x->id of the token's account: its row, true state,
 * outcomes and audience (campaign_view_report). */
static enum MHD_Result
api_campaign_reply(struct api_ctx *x, unsigned status)
{
	struct store_campaign k;
	char err[PD_ERRLEN] = "";
	json_t *j, *r;
	int rc = campaign_view_get(x->st, x->account_id, x->id, &k, err);

	if (rc == 0)
		return api_not_found(x, "campaign");
	if (rc < 0 || (r = campaign_view_report(x->st, &k, err)) == NULL)
		return api_internal(x, err);
	j = json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "id",
	    (json_int_t)k.id, "purpose", k.purpose, "template", k.tmpl,
	    "body", k.has_body ? "markdown" : "template",
	    "subject", api_jstr(k.subject), "locale", k.locale[0] ?
	    json_string(k.locale) : json_null(), "created",
	    api_jtime(k.created), "started", api_jtime(k.started), "finished",
	    api_jtime(k.finished));
	json_object_update(j, r);
	json_decref(r);
	return api_json(x, status, j);
}

enum MHD_Result
api_campaign_create(struct api_ctx *x)
{
	const char *purpose, *subject, *tmpl, *locale, *md;
	char err[PD_ERRLEN] = "";
	int64_t pid;
	int rc;

	if (!api_field_str(x, "purpose", 1, 32, &purpose))
		return api_invalid(x, "purpose", "a purpose name is required");
	if (!api_field_str(x, "subject", 1, 500, &subject) ||
	    !dossier_valid_text(subject, 500))
		return api_invalid(x, "subject", "1-500 bytes of UTF-8 text");
	if (!api_field_str(x, "template", 0, 32, &tmpl) ||
	    (tmpl && !dossier_valid_word(tmpl)))
		return api_invalid(x, "template", "a name of [a-z0-9_-]{1,32}");
	if (!api_field_str(x, "locale", 0, 32, &locale) ||
	    (locale && !dossier_valid_word(locale)))
		return api_invalid(x, "locale", "a name of [a-z0-9_-]{1,32}");
	if (!api_field_str(x, "body_markdown", 0, MARKDOWN_MAX, &md) ||
	    (md != NULL && markdown_check(md, strlen(md), err) != 0))
		return api_invalid(x, "body_markdown", "Markdown text, 1 byte "
		    "to 256 KiB, not blank");
	if (md != NULL && tmpl != NULL)
		return api_invalid(x, "body_markdown", "give body_markdown or "
		    "template, not both");
	rc = consent_purpose_get(x->st, x->account_id, purpose, &pid, err);
	if (rc == 0)
		return api_invalid(x, "purpose", "no such purpose in this "
		    "account");
	if (rc < 0)
		return api_internal(x, err);
	if (md != NULL)
		rc = campaign_create_body(x->st, x->account_id, pid, md,
		    strlen(md), subject, locale, &x->id, err);
	else
		rc = campaign_create(x->st, x->account_id, pid,
		    tmpl ? tmpl : "newsletter", subject, locale, &x->id, err);
	if (rc != 0)
		return api_internal(x, err);
	return api_campaign_reply(x, MHD_HTTP_CREATED);
}

/* A row of the list: the campaign and its report (the true state,
 * outcomes, audience), as GET /campaigns/{id} gives them. */
static int
api_campaign_row_cb(const struct store_campaign *k, const char *label,
    json_t *report, void *ctx)
{
	json_t *row = json_pack("{s:I, s:s, s:o, s:s, s:s, s:o, s:o, s:o,"
	    " s:o, s:o}", "id", (json_int_t)k->id, "purpose", k->purpose,
	    "purpose_label", api_jstr(label), "template", k->tmpl, "body",
	    k->has_body ? "markdown" : "template", "subject",
	    api_jstr(k->subject), "locale", k->locale[0] ?
	    json_string(k->locale) : json_null(), "created",
	    api_jtime(k->created), "started", api_jtime(k->started),
	    "finished", api_jtime(k->finished));

	json_object_update(row, report);
	json_array_append_new(ctx, row);
	return 0;
}

/* The token's account's campaigns, newest first. */
enum MHD_Result
api_campaign_list(struct api_ctx *x)
{
	char err[PD_ERRLEN] = "";
	json_t *arr = json_array();

	if (campaign_view_list(x->s->cfg, x->st, x->account_id,
	    api_campaign_row_cb, arr, err) != 0) {
		json_decref(arr);
		return api_internal(x, err);
	}
	return api_json(x, MHD_HTTP_OK, json_pack("{s:o}", "campaigns", arr));
}

/*
 * One copy to "to", marked as a test (campaign.h): 202 with the
 * outbound id; 409 suppressed_or_erased when the address may not be
 * written to, before anything is queued.
 */
enum MHD_Result
api_campaign_test(struct api_ctx *x)
{
	const char *to;
	char err[PD_ERRLEN] = "", norm[320];
	int64_t oid = 0;
	int rc;

	if (!api_field_str(x, "to", 1, 254, &to) ||
	    !consent_email_norm(to, norm, sizeof(norm)))
		return api_invalid(x, "to", "an e-mail address is required");
	rc = campaign_test(x->s->cfg, x->st, x->q, x->account_id, x->id, norm,
	    &oid, err);
	if (rc == -2)
		return api_not_found(x, "campaign");
	if (rc == 1)
		return api_error(x, MHD_HTTP_CONFLICT, "not_deliverable", "%s",
		    err);
	if (rc != 0)
		return api_internal(x, err);
	return api_json(x, MHD_HTTP_ACCEPTED, json_pack("{s:I, s:s, s:I,"
	    " s:s}", "campaign", (json_int_t)x->id, "to", norm, "outbound",
	    (json_int_t)oid, "kind", CAMPAIGN_TEST_KIND));
}

enum MHD_Result
api_campaign_get(struct api_ctx *x)
{
	return api_campaign_reply(x, MHD_HTTP_OK);
}

/* ?dry_run=1 or {"dry_run": true}: 1 yes, 0 no, -1 neither (answered). */
static int
api_dry_run(struct api_ctx *x, enum MHD_Result *ret)
{
	const char *q = api_query(x, "dry_run");
	json_t *v = x->body != NULL ? json_object_get(x->body, "dry_run") :
	    NULL;

	if (q != NULL && strcmp(q, "1") != 0 && strcmp(q, "0") != 0 &&
	    strcmp(q, "true") != 0 && strcmp(q, "false") != 0) {
		*ret = api_invalid(x, "dry_run", "1 or true: show the audience "
		    "a send would fix, change nothing; 0 or false");
		return -1;
	}
	if (v != NULL && !json_is_null(v) && !json_is_boolean(v)) {
		*ret = api_invalid(x, "dry_run", "true: show the audience a "
		    "send would fix, change nothing; false (the default)");
		return -1;
	}
	return json_is_true(v) || (q != NULL && (strcmp(q, "1") == 0 ||
	    strcmp(q, "true") == 0));
}

static int
api_rcpt_cb(int64_t contact_id, const char *email, void *ctx)
{
	(void)contact_id;
	return json_array_append_new(ctx, json_string(email));
}

/* Who a send would reach now; nothing is written. */
static enum MHD_Result
api_campaign_dry(struct api_ctx *x, const struct store_campaign *k)
{
	struct campaign_audience a;
	char err[PD_ERRLEN] = "";
	json_t *rcpts = json_array();
	int fixed = 0;

	if (campaign_dry_run(x->s->cfg, x->st, k, api_rcpt_cb, rcpts, &a,
	    &fixed, err) != 0) {
		json_decref(rcpts);
		return api_internal(x, err);
	}
	return api_json(x, MHD_HTTP_OK, json_pack("{s:I, s:b, s:b, s:o, s:s,"
	    " s:o}", "id", (json_int_t)k->id, "dry_run", 1, "fixed", fixed,
	    "audience", campaign_audience_json(&a), "recipients_are", fixed ?
	    "pending" : "eligible", "recipients", rcpts));
}

/*
 * Fixes the audience and queues every recipient before answering (the
 * queue, not this request, delivers).  Resumable like the CLI's: sending
 * again queues whoever is still pending.  A dry run answers 200 with
 * the audience and changes nothing.
 */
enum MHD_Result
api_campaign_send(struct api_ctx *x)
{
	struct store_campaign k;
	struct campaign_stats st;
	enum MHD_Result ret;
	char err[PD_ERRLEN] = "";
	int dry, rc = campaign_view_get(x->st, x->account_id, x->id, &k, err);

	if (rc == 0)
		return api_not_found(x, "campaign");
	if (rc < 0)
		return api_internal(x, err);
	if ((dry = api_dry_run(x, &ret)) < 0)
		return ret;
	if (dry)
		return api_campaign_dry(x, &k);
	memset(&st, 0, sizeof(st));
	if (campaign_send(x->s->cfg, x->st, x->q, k.id, NULL, NULL, &st,
	    err) != 0)
		return api_internal(x, err);
	return api_json(x, MHD_HTTP_ACCEPTED, json_pack("{s:I, s:I, s:I, s:I,"
	    " s:I, s:o}", "id", (json_int_t)k.id, "total",
	    (json_int_t)st.total, "queued", (json_int_t)st.queued, "skipped",
	    (json_int_t)st.skipped, "resumed", (json_int_t)st.resumed,
	    "audience", campaign_audience_json(&st.audience)));
}

/* ---- data subjects ---- */

static int
api_subject_email(struct api_ctx *x, const char **email_r,
    enum MHD_Result *ret)
{
	char norm[320];

	if (!api_field_str(x, "email", 1, 254, email_r) ||
	    !consent_email_norm(*email_r, norm, sizeof(norm))) {
		*ret = api_invalid(x, "email", "an e-mail address is required");
		return 0;
	}
	return 1;
}

/* The archive `subject export` writes, sent from an unlinked file. */
enum MHD_Result
api_subject_export(struct api_ctx *x)
{
	struct privacy_env env = { x->s->cfg, x->st, x->bs, x->actor };
	struct MHD_Response *resp;
	struct stat sb;
	const char *email;
	char err[PD_ERRLEN] = "", path[4200];
	enum MHD_Result ret;
	json_t *rep = NULL;
	int rc, fd;

	if (!api_subject_email(x, &email, &ret))
		return ret;
	snprintf(path, sizeof(path), "%s/spool/api-export-XXXXXX",
	    x->s->cfg->var_dir);
	if ((fd = mkstemp(path)) < 0)
		return api_internal(x, strerror(errno));
	close(fd);
	rc = privacy_export(&env, x->account_id, x->account, email, path, &rep,
	    err);
	json_decref(rep);
	fd = rc == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	unlink(path);
	if (rc == 1)
		return api_not_found(x, "subject");
	if (fd < 0 || fstat(fd, &sb) != 0) {
		if (fd >= 0)
			close(fd);
		return api_internal(x, err[0] ? err : strerror(errno));
	}
	if ((resp = MHD_create_response_from_fd((uint64_t)sb.st_size, fd)) ==
	    NULL) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/x-tar");
	MHD_add_response_header(resp, "Content-Disposition",
	    "attachment; filename=\"subject-export.tar\"");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	ret = MHD_queue_response(x->con, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result
api_subject_erase(struct api_ctx *x)
{
	struct privacy_env env = { x->s->cfg, x->st, x->bs, x->actor };
	const char *email;
	char err[PD_ERRLEN] = "";
	enum MHD_Result ret;
	json_t *rep = NULL;
	int rc;

	if (!api_subject_email(x, &email, &ret))
		return ret;
	rc = privacy_erase(&env, x->account_id, x->account, email, "request",
	    &rep, err);
	if (rc == 1)
		return api_not_found(x, "subject");
	if (rc != 0)
		return api_internal(x, err);
	return api_json(x, MHD_HTTP_OK, rep);
}

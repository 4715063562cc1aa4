/*
 * dossier_item.c - the dossier loop's rules: what an item is (label,
 * required, the types and size shown to the client, its address part),
 * checklists, the contact as a person, and the review of documents
 * (assign, accept, reject) with what each change sets off: the item's
 * state, the history, dossier.completed once, the message to the
 * contact.  SQL is the store's, wording the front ends', mail notify's.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dossier.h"
#include "lib/config.h"
#include "lib/smtp_addr.h"
#include "lib/util.h"
#include "outbound/notify.h"
#include "store/store.h"

int
dossier_tx_end(struct store *st, int ok, char *err)
{
	if (ok && store_commit(st, err) == 0)
		return 0;
	store_rollback(st);
	return -1;
}

/* ---- items from what people type ---- */

static void
di_trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	while (isspace((unsigned char)s[i]))
		i++;
	memmove(s, s + i, n - i + 1);
}

/* "pdf/jpeg, png" -> "PDF, JPEG, PNG": words of [a-z0-9.+-]. */
static int
di_types(const char *in, char *out, size_t outlen, char *err)
{
	char buf[256], *tok, *save = NULL;
	size_t o = 0, i, n = 0;

	out[0] = '\0';
	if (strlen(in) >= sizeof(buf)) {
		pd_err(err, "types \"%.40s...\": too long", in);
		return DOSSIER_EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", in);
	for (tok = strtok_r(buf, "/, ", &save); tok != NULL;
	    tok = strtok_r(NULL, "/, ", &save)) {
		if (strlen(tok) > 16 || ++n > 8) {
			pd_err(err, "types \"%s\": at most 8 words of at most "
			    "16 letters", in);
			return DOSSIER_EINVAL;
		}
		for (i = 0; tok[i] != '\0'; i++)
			if (!isalnum((unsigned char)tok[i]) && tok[i] != '.' &&
			    tok[i] != '+' && tok[i] != '-') {
				pd_err(err, "types \"%s\": \"%s\" is not a "
				    "file type (pdf, jpeg, png...)", in, tok);
				return DOSSIER_EINVAL;
			}
		/* What is shown is what was asked: refuse, never drop one. */
		if (o + strlen(tok) + 3 > outlen) {
			pd_err(err, "types \"%s\": too long to show", in);
			return DOSSIER_EINVAL;
		}
		o += (size_t)snprintf(out + o, outlen - o, "%s", o ? ", " : "");
		for (i = 0; tok[i] != '\0'; i++)
			out[o++] = (char)toupper((unsigned char)tok[i]);
		out[o] = '\0';
	}
	return 0;
}

/*
 * "5MB", "500 KB", "1.5 MiB", "2000000" -> bytes (K, M and G are
 * 1024-based).  Decimal digits only: strtod would also take "nan", "inf",
 * "0x10" and "1e3", none of which is a size a person means.  At least one
 * byte, at most 1 TB.
 */
static int
di_size(const char *in, int64_t *v_r, char *err)
{
	const char *p = in;
	double v = 0, scale = 0.1;
	int64_t mul = 1;
	int digits = 0;

	for (; *p >= '0' && *p <= '9' && digits < 15; p++, digits++)
		v = v * 10 + (*p - '0');
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9' && digits < 15; p++,
		    digits++, scale /= 10)
			v += (*p - '0') * scale;
	while (*p == ' ')
		p++;
	if (*p == 'k' || *p == 'K')
		mul = 1024, p++;
	else if (*p == 'm' || *p == 'M')
		mul = 1024 * 1024, p++;
	else if (*p == 'g' || *p == 'G')
		mul = 1024 * 1024 * 1024, p++;
	if (mul > 1 && strncasecmp(p, "ib", 2) == 0)
		p += 2;
	else if (*p == 'b' || *p == 'B')
		p++;
	if (digits == 0 || *p != '\0' || v * mul < 1 || v * mul > 1e12) {
		pd_err(err, "size \"%s\": give bytes or a size like 5MB", in);
		return DOSSIER_EINVAL;
	}
	*v_r = (int64_t)(v * mul);
	return 0;
}

static int
di_label(const char *label, struct store_item *it, char *err)
{
	char buf[DOSSIER_LABEL_MAX + 64];

	/* Never cut to fit: "x <300 spaces> y" is not the label "x". */
	snprintf(buf, sizeof(buf), "%.*s", (int)sizeof(buf) - 1, label);
	di_trim(buf);
	if (strlen(label) >= sizeof(buf) || buf[0] == '\0' ||
	    !dossier_valid_text(buf, DOSSIER_LABEL_MAX)) {
		pd_err(err, "item label \"%s\": 1-%d bytes of text, no "
		    "control characters", label, DOSSIER_LABEL_MAX);
		return DOSSIER_EINVAL;
	}
	snprintf(it->label, sizeof(it->label), "%.*s",
	    (int)sizeof(it->label) - 1, buf);
	smtp_addr_slug(it->label, it->slug, sizeof(it->slug));
	/* `document assign DOC none` unassigns: no item may be called so. */
	if (strcmp(it->slug, "none") == 0)
		snprintf(it->slug, sizeof(it->slug), "none-item");
	return 0;
}

int
dossier_item_parse(const char *spec, int required, struct store_item *it_r,
    char *err)
{
	char buf[1024], *types = NULL, *max = NULL;
	int rc;

	memset(it_r, 0, sizeof(*it_r));
	it_r->required = required != 0;
	snprintf(it_r->state, sizeof(it_r->state), "requested");
	if (strlen(spec) >= sizeof(buf)) {
		pd_err(err, "item \"%.40s...\" is too long", spec);
		return DOSSIER_EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	if ((types = strchr(buf, '|')) != NULL) {
		*types++ = '\0';
		if ((max = strchr(types, '|')) != NULL)
			*max++ = '\0';
	}
	if ((rc = di_label(buf, it_r, err)) != 0)
		return rc;
	if (types != NULL && (rc = di_types(types, it_r->types,
	    sizeof(it_r->types), err)) != 0)
		return rc;
	if (max != NULL) {
		di_trim(max);
		if (max[0] != '\0' && (rc = di_size(max, &it_r->max_size,
		    err)) != 0)
			return rc;
	}
	return 0;
}

int
dossier_item_from_json(json_t *o, struct store_item *it_r, char *err)
{
	json_t *l = json_object_get(o, "label"), *t = json_object_get(o,
	    "types"), *r = json_object_get(o, "required"), *m =
	    json_object_get(o, "max_size"), *v;
	char types[256] = "";
	size_t i, n = 0;
	int rc;

	memset(it_r, 0, sizeof(*it_r));
	snprintf(it_r->state, sizeof(it_r->state), "requested");
	if (!json_is_object(o) || !json_is_string(l)) {
		pd_err(err, "an item is an object with a \"label\" string");
		return DOSSIER_EINVAL;
	}
	if ((r != NULL && !json_is_boolean(r)) || (m != NULL &&
	    !json_is_null(m) && (!json_is_integer(m) ||
	    json_integer_value(m) < 0))) {
		pd_err(err, "item \"required\" is a boolean and \"max_size\" "
		    "a number of bytes");
		return DOSSIER_EINVAL;
	}
	it_r->required = r == NULL || json_is_true(r);
	it_r->max_size = json_is_integer(m) ? json_integer_value(m) : 0;
	if ((rc = di_label(json_string_value(l), it_r, err)) != 0)
		return rc;
	if (t != NULL && !json_is_null(t) && !json_is_string(t) &&
	    !json_is_array(t)) {
		pd_err(err, "item \"types\" is a string or an array of "
		    "strings");
		return DOSSIER_EINVAL;
	}
	if (json_is_string(t))
		snprintf(types, sizeof(types), "%s", json_string_value(t));
	json_array_foreach(t, i, v) {
		if (!json_is_string(v) || n + strlen(json_string_value(v)) +
		    2 >= sizeof(types)) {
			pd_err(err, "item \"types\": a few file types as "
			    "strings (\"pdf\", \"jpeg\")");
			return DOSSIER_EINVAL;
		}
		n += (size_t)snprintf(types + n, sizeof(types) - n, "%s%s",
		    n ? "/" : "", json_string_value(v));
	}
	return types[0] != '\0' ? di_types(types, it_r->types,
	    sizeof(it_r->types), err) : 0;
}

json_t *
dossier_item_spec_json(const struct store_item *it)
{
	return json_pack("{s:s, s:b, s:s, s:I}", "label", it->label,
	    "required", it->required, "types", it->types, "max_size",
	    (json_int_t)it->max_size);
}

int
dossier_items_parse_csv(const char *csv, struct store_item **v_r,
    size_t *n_r, char *err)
{
	const char *p = csv;
	char label[DOSSIER_LABEL_MAX + 64];
	size_t n;
	int rc;

	*v_r = NULL;
	*n_r = 0;
	while (p != NULL && *p != '\0') {
		n = strcspn(p, ",");
		snprintf(label, sizeof(label), "%.*s", (int)(n < sizeof(label) ?
		    n : sizeof(label) - 1), p);
		p += n + (p[n] == ',');
		di_trim(label);
		if (label[0] == '\0')
			continue;
		if (*n_r == DOSSIER_ITEMS_MAX) {
			pd_err(err, "at most %d documents may be requested",
			    DOSSIER_ITEMS_MAX);
			rc = DOSSIER_EINVAL;
			goto fail;
		}
		*v_r = xrealloc(*v_r, (*n_r + 1) * sizeof(**v_r));
		if ((rc = dossier_item_parse(label, 1, &(*v_r)[*n_r], err)) !=
		    0)
			goto fail;
		(*n_r)++;
	}
	return 0;
fail:
	free(*v_r);
	*v_r = NULL;
	*n_r = 0;
	return rc;
}

/* ---- a dossier's items ---- */

struct di_list {
	struct store_item *v;
	size_t n;
};

static int
di_collect_cb(const struct store_item *it, void *ctx)
{
	struct di_list *l = ctx;

	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = *it;
	return 0;
}

/* The batch against itself and what the dossier has: 1 add, 0 skip (the
 * same item is there), DOSSIER_EINVAL a collision. */
static int
di_check_one(const struct di_list *have, const struct store_item *v,
    size_t k, char *err)
{
	size_t i;

	for (i = 0; i < k; i++)
		if (strcmp(v[i].slug, v[k].slug) == 0 &&
		    strcasecmp(v[i].label, v[k].label) != 0) {
			pd_err(err, "items \"%s\" and \"%s\" would share the "
			    "address part \"+%s\": rename one", v[i].label,
			    v[k].label, v[k].slug);
			return DOSSIER_EINVAL;
		} else if (strcmp(v[i].slug, v[k].slug) == 0)
			return 0;
	for (i = 0; i < have->n; i++)
		if (strcmp(have->v[i].slug, v[k].slug) == 0) {
			if (strcasecmp(have->v[i].label, v[k].label) == 0)
				return 0;
			pd_err(err, "item \"%s\" would share the address part "
			    "\"+%s\" with the dossier's item \"%s\": rename "
			    "it", v[k].label, v[k].slug, have->v[i].label);
			return DOSSIER_EINVAL;
		}
	return 1;
}

static int
di_add_sp(struct store *st, int64_t account_id, int64_t dossier_id,
    const struct store_item *v, size_t n, unsigned *added_r, char *err)
{
	struct di_list have = { NULL, 0 };
	size_t k;
	int rc = 0;

	if (store_item_list(st, account_id, dossier_id, di_collect_cb, &have,
	    err) != 0)
		return -1;
	for (k = 0; k < n && rc >= 0; k++) {
		rc = di_check_one(&have, v, k, err);
		if (rc == 1 && have.n + *added_r >= DOSSIER_ITEMS_MAX) {
			pd_err(err, "a dossier asks for at most %d items",
			    DOSSIER_ITEMS_MAX);
			rc = DOSSIER_EINVAL;
		} else if (rc == 1 && store_item_add(st, account_id, dossier_id,
		    &v[k], NULL, err) != 0)
			rc = -1;
		else if (rc == 1)
			(*added_r)++;
	}
	free(have.v);
	return rc < 0 ? rc : 0;
}

int
dossier_items_add(struct store *st, int64_t account_id, int64_t dossier_id,
    const struct store_item *v, size_t n, unsigned *added_r, char *err)
{
	struct store_dossier *d;
	unsigned added = 0;
	int rc;

	if (added_r != NULL)
		*added_r = 0;
	/* Items of another account's dossier (or none): not found, as a
	 * read of it would be, rather than a constraint's message. */
	d = xmalloc(sizeof(*d));
	rc = account_id > 0 ? store_dossier_get(st, account_id, dossier_id,
	    d, err) : 0;
	free(d);
	if (rc <= 0) {
		if (rc == 0)
			pd_err(err, "dossier %lld not found",
			    (long long)dossier_id);
		return rc == 0 ? DOSSIER_ENOTFOUND : -1;
	}
	if (store_begin(st, err) != 0)
		return -1;
	rc = di_add_sp(st, account_id, dossier_id, v, n, &added, err);
	if (dossier_tx_end(st, rc == 0, err) != 0 && rc == 0)
		rc = -1;
	if (added_r != NULL)
		*added_r = rc == 0 ? added : 0;
	return rc;
}

int
dossier_items_plan(struct store *st, int64_t account_id, int64_t dossier_id,
    const struct store_item *v, size_t n, struct store_item **new_r,
    size_t *n_new_r, char *err)
{
	struct di_list have = { NULL, 0 };
	size_t k;
	int rc = 0;

	*new_r = NULL;
	*n_new_r = 0;
	if (store_item_list(st, account_id, dossier_id, di_collect_cb, &have,
	    err) != 0)
		return -1;
	for (k = 0; k < n && rc >= 0; k++) {
		rc = di_check_one(&have, v, k, err);
		if (rc == 1 && have.n + *n_new_r >= DOSSIER_ITEMS_MAX) {
			pd_err(err, "a dossier asks for at most %d items",
			    DOSSIER_ITEMS_MAX);
			rc = DOSSIER_EINVAL;
		} else if (rc == 1) {
			*new_r = xrealloc(*new_r, (*n_new_r + 1) *
			    sizeof(**new_r));
			(*new_r)[(*n_new_r)++] = v[k];
		}
	}
	free(have.v);
	if (rc < 0) {
		free(*new_r);
		*new_r = NULL;
		*n_new_r = 0;
	}
	return rc < 0 ? rc : 0;
}

int
dossier_items(struct store *st, int64_t account_id, int64_t dossier_id,
    store_item_cb cb, void *ctx, char *err)
{
	return store_item_list(st, account_id, dossier_id, cb, ctx, err);
}

int
dossier_item_find(struct store *st, int64_t account_id, int64_t dossier_id,
    const char *spec, struct store_item *it_r, char *err)
{
	int64_t id;
	int rc = 0;

	/* The slug first: a label "2024" has the slug "2024", which must
	 * not be taken for an item id. */
	if (spec[0] != '\0' && strlen(spec) <= SMTP_ADDR_SLUG_MAX &&
	    (rc = store_item_by_slug(st, account_id, dossier_id, spec, it_r,
	    err)) != 0)
		return rc;
	if (spec[0] == '\0' || strspn(spec, "0123456789") != strlen(spec) ||
	    !dossier_parse_id(spec, &id))
		return 0;
	rc = store_item_by_id(st, account_id, id, it_r, err);
	return rc == 1 && it_r->dossier_id != dossier_id ? 0 : rc;
}

void
dossier_item_address(const char *intake_domain,
    const struct store_dossier *d, const struct store_item *it, char *out,
    size_t len)
{
	if (it == NULL || it->slug[0] == '\0' ||
	    strlen(d->intake_local) + 1 + strlen(it->slug) > 64)
		snprintf(out, len, "%s@%s", d->intake_local, intake_domain);
	else
		snprintf(out, len, "%s+%s@%s", d->intake_local, it->slug,
		    intake_domain);
}

/* ---- checklists ---- */

/* 0 free, DOSSIER_EINVAL the account has one of that name, -1. */
static int
di_checklist_taken(struct store *st, int64_t account_id, const char *name,
    char *err)
{
	struct store_checklist *c = xmalloc(sizeof(*c));	/* 8 KB */
	int rc = store_checklist_get(st, account_id, name, c, err);

	free(c);
	if (rc == 1) {
		pd_err(err, "checklist \"%s\" already exists in this account",
		    name);
		return DOSSIER_EINVAL;
	}
	return rc;
}

int
dossier_checklist_add(struct store *st, int64_t account_id, const char *name,
    const struct store_item *v, size_t n, char *err)
{
	struct di_list none = { NULL, 0 };
	json_t *arr;
	char *s;
	size_t k;
	int rc;

	if (!dossier_valid_word(name)) {
		pd_err(err, "checklist name \"%s\": 1-32 of a-z 0-9 _ -",
		    name);
		return DOSSIER_EINVAL;
	}
	if (n == 0 || n > DOSSIER_ITEMS_MAX) {
		pd_err(err, "a checklist has 1 to %d items", DOSSIER_ITEMS_MAX);
		return DOSSIER_EINVAL;
	}
	arr = json_array();
	for (k = 0; k < n; k++) {
		if ((rc = di_check_one(&none, v, k, err)) <= 0) {
			if (rc == 0)
				pd_err(err, "item \"%s\" is listed twice",
				    v[k].label);
			json_decref(arr);
			return DOSSIER_EINVAL;
		}
		json_array_append_new(arr, dossier_item_spec_json(&v[k]));
	}
	s = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	if (s == NULL || strlen(s) >= sizeof(((struct store_checklist *)0)->
	    items)) {
		free(s);
		pd_err(err, "checklist \"%s\" is too long", name);
		return DOSSIER_EINVAL;
	}
	rc = di_checklist_taken(st, account_id, name, err);
	if (rc == 0)
		rc = store_checklist_add(st, account_id, name, s, NULL, err);
	free(s);
	return rc;
}

int
dossier_checklist_list(struct store *st, int64_t account_id,
    store_checklist_cb cb, void *ctx, char *err)
{
	return store_checklist_list(st, account_id, cb, ctx, err);
}

int
dossier_checklist_items(struct store *st, int64_t account_id,
    const char *name, struct store_item **v_r, size_t *n_r, char *err)
{
	struct store_checklist *c = xmalloc(sizeof(*c));
	json_t *arr, *o;
	size_t i;
	int rc;

	*v_r = NULL;
	*n_r = 0;
	rc = store_checklist_get(st, account_id, name, c, err);
	arr = rc == 1 ? json_loads(c->items, 0, NULL) : NULL;
	free(c);
	if (rc != 1)
		return rc;
	*v_r = xcalloc(json_array_size(arr) + 1, sizeof(**v_r));
	json_array_foreach(arr, i, o)
		if (dossier_item_from_json(o, &(*v_r)[(*n_r)], err) == 0)
			(*n_r)++;
	json_decref(arr);
	return 1;
}

/* ---- the contact as a person ---- */

/* A quoted-string of n bytes, its quotes and its quoted-pairs'
 * backslashes removed in place: "Zoé \"Z\"" -> Zoé "Z". */
static void
di_unquote(char *buf, size_t n)
{
	size_t i, o = 0;

	for (i = 1; i + 1 < n; i++) {
		if (buf[i] == '\\' && i + 2 < n)
			i++;
		buf[o++] = buf[i];
	}
	buf[o] = '\0';
}

int
dossier_parse_contact(const char *s, char *email, size_t emaillen,
    char *name, size_t namelen)
{
	char in[DOSSIER_CONTACT_MAX + 256], buf[512];
	const char *lt, *gt;
	size_t n;

	name[0] = '\0';
	if (strlen(s) >= sizeof(in))
		return 0;
	snprintf(in, sizeof(in), "%s", s);
	di_trim(in);
	if ((lt = strrchr(in, '<')) == NULL) {
		if (!dossier_valid_contact(in) || strlen(in) >= emaillen)
			return 0;
		snprintf(email, emaillen, "%s", in);
		return 1;
	}
	gt = strchr(lt, '>');
	if (gt == NULL || gt[1] != '\0' || (size_t)(gt - lt - 1) >= emaillen ||
	    (size_t)(lt - in) >= sizeof(buf))
		return 0;
	snprintf(email, emaillen, "%.*s", (int)(gt - lt - 1), lt + 1);
	snprintf(buf, sizeof(buf), "%.*s", (int)(lt - in), in);
	di_trim(buf);
	/* A second address in the name ("a <b> <c>"): garbage, not a name
	 * to greet anyone by. */
	if (strpbrk(buf, "<>") != NULL)
		return 0;
	/* A quoted display name ("Martin, Zoé") loses its quotes and the
	 * backslashes of its quoted-pairs (RFC 5322 3.2.4). */
	n = strlen(buf);
	if (n >= 2 && buf[0] == '"' && buf[n - 1] == '"')
		di_unquote(buf, n);
	if (!dossier_valid_contact(email) || (buf[0] != '\0' &&
	    (!dossier_valid_text(buf, 200) || strlen(buf) >= namelen)))
		return 0;
	snprintf(name, namelen, "%s", buf);
	return 1;
}

int
dossier_valid_locale(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz"), m;

	if (n < 2 || n > 3)
		return 0;
	if (s[n] == '\0')
		return 1;
	if (s[n] != '-')
		return 0;
	m = strspn(s + n + 1, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
	return m >= 2 && m <= 8 && s[n + 1 + m] == '\0';
}

int
dossier_contact_set(struct store *st, int64_t account_id, const char *email,
    const char *name, const char *locale, char *err)
{
	if (locale != NULL && locale[0] != '\0' &&
	    !dossier_valid_locale(locale)) {
		pd_err(err, "locale \"%s\": a language tag like fr or en",
		    locale);
		return DOSSIER_EINVAL;
	}
	if (name != NULL && name[0] != '\0' && !dossier_valid_text(name,
	    200)) {
		pd_err(err, "contact name: 1-200 bytes of text");
		return DOSSIER_EINVAL;
	}
	return store_contact_set_person(st, account_id, email,
	    name != NULL && name[0] != '\0' ? name : NULL,
	    locale != NULL && locale[0] != '\0' ? locale : NULL, err);
}

/* ---- a new dossier with its checklist ---- */

static int
di_create_sp(struct store *st, int64_t account_id, const struct dossier_new *n,
    const char *email, const char *name, const struct store_item *ck,
    size_t nck, int64_t *id_r, char *err)
{
	int rc;

	rc = dossier_create(st, account_id, email, n->ref, n->intake_local,
	    id_r, err);
	if (rc != 0)
		return rc;
	if ((rc = dossier_contact_set(st, account_id, email, name, n->locale,
	    err)) != 0 ||
	    (nck > 0 && (rc = dossier_items_add(st, account_id, *id_r, ck,
	    nck, NULL, err)) != 0) ||
	    (n->n_items > 0 && (rc = dossier_items_add(st, account_id, *id_r,
	    n->items, n->n_items, NULL, err)) != 0))
		return rc;
	if (n->due != NULL && n->due[0] != '\0')
		return store_dossier_set_request(st, account_id, *id_r, "",
		    n->due, err);
	return 0;
}

int
dossier_create_with(struct store *st, int64_t account_id,
    const struct dossier_new *n, int64_t *id_r, char *err)
{
	char email[DOSSIER_CONTACT_MAX + 2], name[256];
	struct store_item *ck = NULL;
	size_t nck = 0;
	int64_t t;
	int rc;

	if (n->ref == NULL || !dossier_valid_ref(n->ref)) {
		pd_err(err, "invalid ref: 1-%d bytes of text",
		    DOSSIER_REF_MAX);
		return DOSSIER_EINVAL;
	}
	if (n->contact == NULL || !dossier_parse_contact(n->contact, email,
	    sizeof(email), name, sizeof(name))) {
		pd_err(err, "invalid contact \"%s\": give an address, or "
		    "\"Name <address>\"", n->contact ? n->contact : "");
		return DOSSIER_EINVAL;
	}
	if ((n->locale != NULL && n->locale[0] != '\0' &&
	    !dossier_valid_locale(n->locale)) ||
	    (n->due != NULL && n->due[0] != '\0' && pd_parse_day(n->due, &t)
	    != 0)) {
		int bad_locale = n->locale != NULL && n->locale[0] != '\0' &&
		    !dossier_valid_locale(n->locale);

		pd_err(err, "invalid %s \"%s\"", bad_locale ? "locale (fr, "
		    "en...)" : "due date (YYYY-MM-DD)", bad_locale ? n->locale :
		    n->due);
		return DOSSIER_EINVAL;
	}
	if (n->checklist != NULL && (rc = dossier_checklist_items(st,
	    account_id, n->checklist, &ck, &nck, err)) != 1) {
		if (rc == 0)
			pd_err(err, "this account has no checklist \"%s\"",
			    n->checklist);
		return rc == 0 ? DOSSIER_ENOTFOUND : -1;
	}
	if (store_begin(st, err) != 0) {
		free(ck);
		return -1;
	}
	rc = di_create_sp(st, account_id, n, email, name, ck, nck, id_r, err);
	free(ck);
	if (dossier_tx_end(st, rc == 0, err) != 0 && rc == 0)
		return -1;
	return rc;
}

/*
 * notify_data.c - what a message about a dossier may say: the contact as
 * a person (name, language), the dossier's items with their own address
 * and mailto link, what is still missing, dates and sizes written the way
 * the reader writes them.  Reads the store; never renders or queues.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/config.h"
#include "lib/util.h"
#include "notify_int.h"
#include "store/store.h"

/* A stored setting over the config's value (store_pair_cb). */
static int
notify_setting_cb(const char *key, const char *value, void *ctx)
{
	struct notify_identity *id = ctx;
	struct { const char *key; char *dst; size_t len; } f[] = {
		{ "legal_name", id->legal_name, sizeof(id->legal_name) },
		{ "legal_address", id->legal_address,
		    sizeof(id->legal_address) },
		{ "from_name", id->from_name, sizeof(id->from_name) },
		{ "from_addr", id->from_addr, sizeof(id->from_addr) },
		{ "locale", id->locale, sizeof(id->locale) },
		{ "privacy_url", id->privacy_url, sizeof(id->privacy_url) },
	};
	size_t i;

	if (strcmp(key, "adult_required") == 0)
		id->adult_required = strcmp(value, "true") == 0;
	else if (strcmp(key, "notify_completed") == 0)
		id->notify_completed = strcmp(value, "true") == 0;
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (strcmp(key, f[i].key) == 0)
			snprintf(f[i].dst, f[i].len, "%s", value);
	/* A from_name set here signs the messages, as in the config. */
	if (strcmp(key, "from_name") == 0)
		snprintf(id->signer, sizeof(id->signer), "%s", value);
	return 0;
}

#define NOTIFY_SET(field, v) snprintf((field), sizeof(field), "%s", (v))

int
notify_identity(const struct pd_config *cfg, struct store *st,
    const char *account, struct notify_identity *id, char *err)
{
	const struct pd_account_conf *a = config_account(cfg, account);
	struct store_account acc;
	int rc;

	memset(id, 0, sizeof(*id));
	NOTIFY_SET(id->legal_name, a && a->legal_name ? a->legal_name :
	    account);
	NOTIFY_SET(id->legal_address, a && a->legal_address ?
	    a->legal_address : "");
	NOTIFY_SET(id->from_name, a && a->from_name ? a->from_name : "");
	NOTIFY_SET(id->from_addr, a && a->from_addr ? a->from_addr :
	    cfg->from_addr != NULL ? cfg->from_addr : "");
	NOTIFY_SET(id->locale, a && a->locale ? a->locale : "");
	NOTIFY_SET(id->signer, a && a->from_name ? a->from_name : "");
	NOTIFY_SET(id->privacy_url, a && a->privacy_url ? a->privacy_url :
	    "");
	id->adult_required = a != NULL ? a->adult_required : 1;
	id->notify_completed = a != NULL && a->notify_completed;
	if (st != NULL) {
		if ((rc = store_account_get(st, account, &acc, err)) < 0)
			return -1;
		if (rc == 1 && store_account_settings(st, acc.id,
		    notify_setting_cb, id, err) != 0)
			return -1;
	}
	if (id->from_name[0] == '\0')
		NOTIFY_SET(id->from_name, cfg->from_name != NULL &&
		    cfg->from_name[0] != '\0' ? cfg->from_name :
		    id->legal_name);
	if (strcmp(id->signer, id->legal_name) == 0)
		id->signer[0] = '\0';
	return 0;
}

/* A stored key marks its source "set". */
static int
notify_source_cb(const char *key, const char *value, void *ctx)
{
	static const char *const keys[] = NOTIFY_ACCOUNT_KEYS;
	const char **src = ctx;
	size_t i;

	(void)value;
	for (i = 0; keys[i] != NULL && i < NOTIFY_ACCOUNT_NKEYS; i++)
		if (strcmp(key, keys[i]) == 0)
			src[i] = "set";
	return 0;
}

int
notify_identity_sources(const struct pd_config *cfg, struct store *st,
    const char *account, struct notify_identity *id,
    const char *src[NOTIFY_ACCOUNT_NKEYS], char *err)
{
	const struct pd_account_conf *a = config_account(cfg, account);
	/* NOTIFY_ACCOUNT_KEYS' order; booleans: the block's value when it
	 * is not the default (the block cannot say it left one out). */
	int conf[NOTIFY_ACCOUNT_NKEYS] = { a && a->legal_name,
	    a && a->legal_address, a && a->from_name, a && a->from_addr,
	    a && a->locale, a && a->privacy_url, a && !a->adult_required,
	    a && a->notify_completed };
	struct store_account acc;
	size_t i;
	int rc;

	if (notify_identity(cfg, st, account, id, err) != 0)
		return -1;
	for (i = 0; i < NOTIFY_ACCOUNT_NKEYS; i++)
		src[i] = conf[i] ? "config" : "default";
	if ((rc = store_account_get(st, account, &acc, err)) < 0)
		return -1;
	return rc == 1 ? store_account_settings(st, acc.id, notify_source_cb,
	    src, err) : 0;
}

void
notify_locale(const struct pd_config *cfg, struct store *st,
    const struct store_dossier *d, const char *hint, char *out, size_t len)
{
	struct notify_identity id;
	char err[PD_ERRLEN];
	const char *l = d->contact_locale;

	/* A store that cannot be read leaves the config's locale. */
	if (notify_identity(cfg, st, d->account, &id, err) != 0)
		(void)notify_identity(cfg, NULL, d->account, &id, err);
	if (l[0] == '\0')
		l = hint;
	if (l == NULL || l[0] == '\0')
		l = id.locale;
	if (l == NULL || l[0] == '\0')
		l = cfg->default_locale;
	if (l == NULL || l[0] == '\0')
		l = "en";
	snprintf(out, len, "%s", l);
}

/* ---- words in the reader's language ---- */

static const char *const notify_months_fr[12] = { "janvier", "février",
    "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre" };
static const char *const notify_months_en[12] = { "January", "February",
    "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December" };

/* Month names are ours, not setlocale's: the daemon's locale is not the
 * reader's, and a thread must not switch it under the others. */
int
notify_day_text(const char *day, const char *locale, char *out, size_t len)
{
	int64_t t;
	time_t tt;
	struct tm tm;

	if (day == NULL || pd_parse_day(day, &t) != 0) {
		snprintf(out, len, "%s", day ? day : "");
		return -1;
	}
	tt = (time_t)t;
	gmtime_r(&tt, &tm);
	if (strcmp(locale, "fr") == 0)
		snprintf(out, len, "%d%s %s %d", tm.tm_mday, tm.tm_mday == 1 ?
		    "er" : "", notify_months_fr[tm.tm_mon], tm.tm_year + 1900);
	else if (strcmp(locale, "en") == 0)
		snprintf(out, len, "%d %s %d", tm.tm_mday,
		    notify_months_en[tm.tm_mon], tm.tm_year + 1900);
	else	/* a language we have no month names for: ISO is unambiguous */
		snprintf(out, len, "%s", day);
	return 0;
}

static void
notify_time_text(int64_t t, const char *locale, char *out, size_t len)
{
	char day[16];
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	notify_day_text(day, locale, out, len);
}

/* 1024-based like the sizes an item is given with ("5MB"); French writes
 * octets and a decimal comma. */
void
notify_size_text(int64_t n, const char *locale, char *out, size_t len)
{
	static const char *const fr[] = { "octets", "Ko", "Mo", "Go" };
	static const char *const en[] = { "bytes", "KB", "MB", "GB" };
	const char *const *u = strcmp(locale, "fr") == 0 ? fr : en;
	double v = (double)n;
	int k = 0;
	char *p;

	while (v >= 1024 && k < 3) {
		v /= 1024;
		k++;
	}
	if (k == 0 || v >= 100 || v == (double)(int64_t)v)
		snprintf(out, len, "%.0f %s", v, u[k]);
	else
		snprintf(out, len, "%.1f %s", v, u[k]);
	if (u == fr && (p = strchr(out, '.')) != NULL)
		*p = ',';
}

/*
 * RFC 6068: a mailto URI with a subject.  The address keeps the
 * characters a "to" may carry as they are (an intake address is letters,
 * digits, '-', '+', '.', '@'); everything else, and every byte of the
 * subject but the unreserved ones, is percent-encoded (UTF-8 octets, a
 * space as %20: '+' would read as a plus).  -1 if out is too small.
 */
static int
notify_pct(const char *s, const char *keep, char *out, size_t len, size_t *o)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL ||
		    strchr(keep, *p) != NULL) {
			if (*o + 1 >= len)
				return -1;
			out[(*o)++] = (char)*p;
		} else {
			if (*o + 3 >= len)
				return -1;
			out[(*o)++] = '%';
			out[(*o)++] = hex[*p >> 4];
			out[(*o)++] = hex[*p & 15];
		}
	}
	out[*o] = '\0';
	return 0;
}

int
notify_mailto(const char *addr, const char *subject, char *out, size_t len)
{
	size_t o = 0;

	if (len < 8)
		return -1;
	memcpy(out, "mailto:", 8);
	o = 7;
	if (notify_pct(addr, "@+", out, len, &o) != 0)
		return -1;
	if (subject == NULL || subject[0] == '\0')
		return 0;
	if (o + 9 >= len)
		return -1;
	memcpy(out + o, "?subject=", 10);
	o += 9;
	return notify_pct(subject, "", out, len, &o);
}

/* The same rule as dossier_item_address (dossier/ is above us): the
 * plain address when the local part would pass RFC 5321's 64 octets. */
void
notify_item_address(const char *intake_domain, const struct store_dossier *d,
    const struct store_item *it, char *out, size_t len)
{
	if (it == NULL || it->slug[0] == '\0' ||
	    strlen(d->intake_local) + 1 + strlen(it->slug) > 64)
		snprintf(out, len, "%s@%s", d->intake_local, intake_domain);
	else
		snprintf(out, len, "%s+%s@%s", d->intake_local, it->slug,
		    intake_domain);
}

void
notify_dossier_address(const struct pd_config *cfg,
    const struct store_dossier *d, char *out, size_t len)
{
	snprintf(out, len, "%s@%s", d->intake_local, cfg->intake_domain);
}

/* ---- the data ---- */

json_t *
notify_account_json(const char *account, const struct notify_identity *id)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "name",
	    account, "legal_name", id->legal_name, "legal_address",
	    id->legal_address, "from_name", id->from_name, "from_addr",
	    id->from_addr, "signer", id->signer, "privacy_url",
	    id->privacy_url, "has_privacy_url", id->privacy_url[0] != '\0');
}

json_t *
notify_item_json(const struct pd_config *cfg, const struct store_dossier *d,
    const struct store_item *it, const char *locale)
{
	char addr[512], mailto[2048], subj[512], size[32] = "";
	int rejected = strcmp(it->state, "rejected") == 0;

	notify_item_address(cfg->intake_domain, d, it, addr, sizeof(addr));
	snprintf(subj, sizeof(subj), "%s - %s", d->ref, it->label);
	if (notify_mailto(addr, subj, mailto, sizeof(mailto)) != 0)
		notify_mailto(addr, d->ref, mailto, sizeof(mailto));
	if (it->max_size > 0)
		notify_size_text(it->max_size, locale, size, sizeof(size));
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:b, s:s, s:b,"
	    " s:b, s:b, s:s, s:b, s:b, s:b, s:b, s:s, s:b}",
	    "label", it->label, "slug", it->slug, "address", addr,
	    "mailto", mailto, "required", it->required != 0,
	    "optional", it->required == 0, "types", it->types,
	    "has_types", it->types[0] != '\0', "max_size_text", size,
	    "has_max_size", it->max_size > 0,
	    "has_details", it->types[0] != '\0' || it->max_size > 0,
	    "has_both", it->types[0] != '\0' && it->max_size > 0,
	    "state", it->state, "requested", strcmp(it->state, "requested")
	    == 0, "received", strcmp(it->state, "received") == 0,
	    "accepted", strcmp(it->state, "accepted") == 0,
	    "rejected", rejected, "reason", rejected ? it->reason : "",
	    "has_reason", rejected && it->reason[0] != '\0');
}

struct notify_items {
	const struct pd_config *cfg;
	const struct store_dossier *d;
	const char *locale;
	json_t *all, *outstanding, *optional, *names;
};

static int
notify_item_cb(const struct store_item *it, void *ctx)
{
	struct notify_items *c = ctx;
	json_t *j = notify_item_json(c->cfg, c->d, it, c->locale);
	int missing = strcmp(it->state, "requested") == 0 ||
	    strcmp(it->state, "rejected") == 0;

	if (missing && it->required) {
		json_array_append(c->outstanding, j);
		json_array_append_new(c->names, json_pack("{s:s}", "name",
		    it->label));
	} else if (missing)
		json_array_append(c->optional, j);
	json_array_append_new(c->all, j);
	return 0;
}

static json_t *
notify_contact_json(const struct store_dossier *d)
{
	char name[256];
	size_t n;

	/* a name is shown as given, without the blanks around it */
	snprintf(name, sizeof(name), "%s", d->contact_name +
	    strspn(d->contact_name, " \t"));
	n = strlen(name);
	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		name[--n] = '\0';
	return json_pack("{s:s, s:s, s:s, s:b}", "email", d->contact,
	    "name", name, "greeting_name", name, "has_name", n > 0);
}

static json_t *
notify_dossier_json(const struct pd_config *cfg,
    const struct store_dossier *d, const char *locale, json_t *names)
{
	char addr[512], mailto[1024], due[64] = "";

	notify_dossier_address(cfg, d, addr, sizeof(addr));
	if (notify_mailto(addr, d->ref, mailto, sizeof(mailto)) != 0)
		notify_mailto(addr, NULL, mailto, sizeof(mailto));
	if (d->due[0] != '\0')
		notify_day_text(d->due, locale, due, sizeof(due));
	/* documents: the outstanding required labels, for templates written
	 * before items (a custom template keeps working). */
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o, s:b}",
	    "ref", d->ref, "address", addr, "mailto", mailto, "due", d->due,
	    "due_text", due, "has_due", d->due[0] != '\0', "documents", names,
	    "has_documents", json_array_size(names) > 0);
}

json_t *
notify_data(const struct notify_env *env, const struct store_dossier *d,
    const char *locale, int64_t now, char *err)
{
	return notify_data_with(env, d, locale, now, NULL, 0, err);
}

json_t *
notify_data_with(const struct notify_env *env, const struct store_dossier *d,
    const char *locale, int64_t now, const struct store_item *extra,
    size_t n_extra, char *err)
{
	struct notify_identity id;
	struct notify_items c = { env->cfg, d, locale, json_array(),
	    json_array(), json_array(), json_array() };
	char today[16], today_text[64];
	time_t tt = (time_t)now;
	struct tm tm;
	size_t i;

	if (store_item_list(env->st, d->account_id, d->id, notify_item_cb, &c,
	    err) != 0) {
		json_decref(c.all);
		json_decref(c.outstanding);
		json_decref(c.optional);
		json_decref(c.names);
		return NULL;
	}
	for (i = 0; i < n_extra; i++)
		(void)notify_item_cb(&extra[i], &c);
	if (notify_identity(env->cfg, env->st, d->account, &id, err) != 0) {
		json_decref(c.all);
		json_decref(c.outstanding);
		json_decref(c.optional);
		json_decref(c.names);
		return NULL;
	}
	gmtime_r(&tt, &tm);
	strftime(today, sizeof(today), "%Y-%m-%d", &tm);
	notify_time_text(now, locale, today_text, sizeof(today_text));
	return json_pack("{s:o, s:o, s:s, s:o, s:o, s:b, s:o, s:b, s:b, s:o,"
	    " s:b, s:s, s:s}",
	    "account", notify_account_json(d->account, &id),
	    "contact", notify_contact_json(d), "locale", locale,
	    "dossier", notify_dossier_json(env->cfg, d, locale, c.names),
	    "items", c.all, "has_items", json_array_size(c.all) > 0,
	    "outstanding", c.outstanding,
	    "has_outstanding", json_array_size(c.outstanding) > 0,
	    "one_outstanding", json_array_size(c.outstanding) == 1,
	    "optional_outstanding", c.optional,
	    "has_optional_outstanding", json_array_size(c.optional) > 0,
	    "now", today, "now_text", today_text);
}

/* A day at `t` in the reader's words, for receipts ("received on"). */
void
notify_when_text(int64_t t, const char *locale, char *out, size_t len)
{
	notify_time_text(t, locale, out, len);
}

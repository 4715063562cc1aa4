/*
 * dossier_account.c - an account's identity set at run time (`account
 * set`, PATCH /api/v1/account): which keys there are, what each may hold
 * (one line of text, an address we can write From: with, a language the
 * templates speak, an http(s) URL, a yes/no), and writing them all or
 * none, each change in the audit trail.  The effective identity (these
 * over the config file over the defaults) is notify_identity's; this
 * file never formats an answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "dossier.h"
#include "lib/util.h"
#include "outbound/notify.h"
#include "outbound/outmsg.h"
#include "privacy/privacy.h"
#include "store/store.h"

#define DA_TEXT_MAX 200		/* a name or an address line */
#define DA_URL_MAX 500

const char *const dossier_account_keys[] = NOTIFY_ACCOUNT_KEYS;

/* "https://host[/...]" or "http://...": printable ASCII, a host. */
static int
da_valid_url(const char *v)
{
	size_t i, skip = strncmp(v, "https://", 8) == 0 ? 8 :
	    strncmp(v, "http://", 7) == 0 ? 7 : 0;

	if (skip == 0 || strlen(v) > DA_URL_MAX || v[skip] == '\0' ||
	    v[skip] == '/' || v[skip] == '?' || v[skip] == '#')
		return 0;
	for (i = 0; v[i] != '\0'; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return 0;
	return 1;
}

/* yes/no, true/false, on/off, 1/0 as the stored "true"/"false". */
static int
da_bool(const char *v, char *norm, size_t len)
{
	static const char *const yes[] = { "yes", "true", "on", "1", NULL };
	static const char *const no[] = { "no", "false", "off", "0", NULL };
	size_t i;

	for (i = 0; yes[i] != NULL; i++)
		if (strcasecmp(v, yes[i]) == 0) {
			snprintf(norm, len, "true");
			return 1;
		}
	for (i = 0; no[i] != NULL; i++)
		if (strcasecmp(v, no[i]) == 0) {
			snprintf(norm, len, "false");
			return 1;
		}
	return 0;
}

static int
da_is_text(const char *key)
{
	return strcmp(key, "legal_name") == 0 || strcmp(key,
	    "legal_address") == 0 || strcmp(key, "from_name") == 0;
}

int
dossier_account_key_valid(const char *key)
{
	size_t i;

	for (i = 0; dossier_account_keys[i] != NULL; i++)
		if (strcmp(key, dossier_account_keys[i]) == 0)
			return 1;
	return 0;
}

int
dossier_account_setting_check(const struct pd_config *cfg, const char *key,
    const char *value, char *norm, size_t len, char *err)
{
	snprintf(norm, len, "%s", value != NULL ? value : "");
	if (!dossier_account_key_valid(key)) {
		pd_err(err, "%s: not an account setting", key);
		return 0;
	}
	if (value == NULL || value[0] == '\0')
		return 1;			/* removes it */
	if (strcmp(key, "from_addr") == 0 && !outmsg_addr_valid(value, 0))
		pd_err(err, "from_addr: \"%.100s\" is not an address mail can "
		    "be sent from (local@domain, ASCII)", value);
	else if (strcmp(key, "locale") == 0 && !notify_has_locale(cfg, value))
		pd_err(err, "locale: \"%.40s\" is not a language the templates "
		    "have (a folder like templates/invitation/fr)", value);
	else if (strcmp(key, "privacy_url") == 0 && !da_valid_url(value))
		pd_err(err, "privacy_url: \"%.100s\" is not an http:// or "
		    "https:// URL of at most %d bytes", value, DA_URL_MAX);
	else if ((strcmp(key, "adult_required") == 0 ||
	    strcmp(key, "notify_completed") == 0) && !da_bool(value, norm,
	    len))
		pd_err(err, "%s: \"%.40s\" is not yes or no", key, value);
	else if (da_is_text(key) && !dossier_valid_text(value, DA_TEXT_MAX))
		pd_err(err, "%s: one line of UTF-8 text, at most %d bytes, no "
		    "control characters", key, DA_TEXT_MAX);
	else
		return 1;
	return 0;
}

/* One change, written and audited: {"key": K, "value": V or null}. */
static int
da_set_one(const struct dossier_env *env, int64_t account_id,
    const char *account, const char *key, const char *norm, char *err)
{
	struct privacy_env penv = { env->cfg, env->st, NULL, env->actor };
	json_t *j = json_pack("{s:s, s:o}", "key", key, "value", norm[0] ?
	    json_string(norm) : json_null());
	char *detail = json_dumps(j, JSON_COMPACT);
	int rc;

	rc = store_account_setting_set(env->st, account_id, key, norm[0] ?
	    norm : NULL, pd_now(), err);
	if (rc == 0)
		rc = privacy_audit(&penv, "account.set", account, NULL,
		    detail != NULL ? detail : "", err);
	free(detail);
	json_decref(j);
	return rc;
}

int
dossier_account_set(const struct dossier_env *env, int64_t account_id,
    const char *account, const struct dossier_setting *v, size_t n,
    char *err)
{
	char (*norm)[DA_URL_MAX + 1];
	size_t i;
	int rc = 0;

	if (n == 0) {
		pd_err(err, "nothing to set");
		return DOSSIER_EINVAL;
	}
	norm = xcalloc(n, sizeof(*norm));
	for (i = 0; i < n && rc == 0; i++)
		if (!dossier_account_setting_check(env->cfg, v[i].key,
		    v[i].value, norm[i], sizeof(norm[i]), err))
			rc = DOSSIER_EINVAL;
	if (rc == 0 && store_begin(env->st, err) != 0)
		rc = -1;
	else if (rc == 0) {
		for (i = 0; i < n && rc == 0; i++)
			rc = da_set_one(env, account_id, account, v[i].key,
			    norm[i], err);
		if (dossier_tx_end(env->st, rc == 0, err) != 0 && rc == 0)
			rc = -1;
	}
	free(norm);
	return rc;
}

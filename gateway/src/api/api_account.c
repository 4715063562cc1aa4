/*
 * api_account.c - the token's own account over the API: GET
 * /api/v1/account (the identity messages and pages use, and where each
 * value comes from) and PATCH /api/v1/account (the keys of `account
 * set`; null removes one).  The checks and the writing are the dossier
 * service's (dossier_account_set); no other account is ever named.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api_int.h"
#include "dossier/dossier.h"
#include "lib/util.h"
#include "outbound/notify.h"

/* The answer of both routes: as `account show --json`. */
static enum MHD_Result
api_account_reply(struct api_ctx *x)
{
	static const char *const keys[] = NOTIFY_ACCOUNT_KEYS;
	const char *src[NOTIFY_ACCOUNT_NKEYS];
	const char *text[6];
	struct notify_identity id;
	char err[PD_ERRLEN] = "";
	json_t *o, *s;
	size_t i;

	if (notify_identity_sources(x->s->cfg, x->st, x->account, &id, src,
	    err) != 0)
		return api_internal(x, err);
	text[0] = id.legal_name;
	text[1] = id.legal_address;
	text[2] = id.from_name;
	text[3] = id.from_addr;
	text[4] = id.locale;
	text[5] = id.privacy_url;
	o = json_pack("{s:s}", "account", x->account);
	s = json_object();
	for (i = 0; i < NOTIFY_ACCOUNT_NKEYS; i++) {
		if (i < 6)
			json_object_set_new(o, keys[i], text[i][0] ?
			    api_jstr(text[i]) : json_null());
		json_object_set_new(s, keys[i], json_string(src[i]));
	}
	json_object_set_new(o, "adult_required",
	    json_boolean(id.adult_required));
	json_object_set_new(o, "notify_completed",
	    json_boolean(id.notify_completed));
	json_object_set_new(o, "source", s);
	return api_json(x, MHD_HTTP_OK, o);
}

enum MHD_Result
api_account_get(struct api_ctx *x)
{
	return api_account_reply(x);
}

/* One field of the body as a setting's text: a string, a boolean for
 * the yes/no keys, null to remove.  0 with *why when it is none. */
static int
api_account_value(const char *key, json_t *v, const char **value_r,
    const char **why)
{
	int boolean = strcmp(key, "adult_required") == 0 ||
	    strcmp(key, "notify_completed") == 0;

	if (json_is_null(v))
		*value_r = NULL;
	else if (json_is_string(v))
		*value_r = json_string_value(v);
	else if (boolean && json_is_boolean(v))
		*value_r = json_is_true(v) ? "true" : "false";
	else {
		*why = boolean ? "true, false or null" : "a string or null";
		return 0;
	}
	return 1;
}

enum MHD_Result
api_account_patch(struct api_ctx *x)
{
	struct dossier_setting v[NOTIFY_ACCOUNT_NKEYS];
	struct dossier_env env = { x->s->cfg, x->st, NULL, x->actor };
	char err[PD_ERRLEN] = "", norm[512];
	const char *key, *why = NULL;
	size_t n = 0, klen;
	json_t *val;
	int rc;

	json_object_foreach(x->body, key, val) {
		if (!dossier_account_key_valid(key))
			return api_invalid(x, key, "not an account setting");
		if (n == NOTIFY_ACCOUNT_NKEYS ||
		    !api_account_value(key, val, &v[n].value, &why))
			return api_invalid(x, key, why ? why : "given twice");
		v[n].key = key;
		/* every value checked before anything is written */
		if (!dossier_account_setting_check(x->s->cfg, key, v[n].value,
		    norm, sizeof(norm), err)) {
			klen = strlen(key);
			return api_invalid(x, key, strncmp(err, key, klen) == 0 &&
			    strncmp(err + klen, ": ", 2) == 0 ? err + klen + 2 :
			    err);
		}
		n++;
	}
	if (n == 0)
		return api_invalid(x, "body", "name at least one setting");
	rc = dossier_account_set(&env, x->account_id, x->account, v, n, err);
	if (rc == DOSSIER_EINVAL)
		return api_invalid(x, "body", err);
	if (rc != 0)
		return api_internal(x, err);
	return api_account_reply(x);
}

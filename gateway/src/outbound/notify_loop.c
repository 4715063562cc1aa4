/*
 * notify_loop.c - the dossier loop's messages to the contact: a rejected
 * document (what, why, where to send a new version), the dossier
 * complete (when the account asks for it), the dossier closed.  Each is
 * queued while the caller's review or closing is being recorded, so a
 * failure here undoes it; never decides whether a review or a closing is
 * allowed (the dossier service does).
 */
#include <stdio.h>
#include <string.h>

#include "lib/config.h"
#include "lib/util.h"
#include "notify_int.h"
#include "store/store.h"

/* The contact, her language, a Reply-To; data gets the message's part. */
static int
notify_loop_send(const struct notify_env *env, const struct store_dossier *d,
    const char *kind, const char *reply_to, const char *key, json_t *part,
    int64_t *id_r, char *err)
{
	struct notify_msg nm;
	char addr[512], locale[16];
	json_t *data;
	int rc;

	if (id_r != NULL)
		*id_r = 0;
	if (env->q == NULL) {
		json_decref(part);
		pd_err(err, "no outbound queue to tell %s", d->contact);
		return -1;
	}
	notify_dossier_address(env->cfg, d, addr, sizeof(addr));
	notify_locale(env->cfg, env->st, d, NULL, locale, sizeof(locale));
	if ((data = notify_data(env, d, locale, pd_now(), err)) == NULL) {
		json_decref(part);
		return -1;
	}
	if (part != NULL)
		json_object_set_new(data, key, part);
	/* A closed dossier's address refuses mail (550 5.1.1): its message
	 * names no address and sets no Reply-To, so a reply reaches the
	 * firm (From:) instead of bouncing. */
	if (strcmp(d->status, "open") != 0) {
		json_object_set_new(json_object_get(data, "dossier"), "address",
		    json_string(""));
		reply_to = NULL;
		addr[0] = '\0';
	}
	nm = (struct notify_msg){ kind, locale, kind, d->contact,
	    reply_to != NULL ? reply_to : addr[0] ? addr : NULL };
	rc = notify_send(env, d, &nm, data, id_r, err);
	json_decref(data);
	return rc;
}

int
notify_rejection(const struct notify_env *env, const struct store_dossier *d,
    const struct store_doc_row *doc, const struct store_item *it,
    const char *reason, int64_t *id_r, char *err)
{
	char addr[512], locale[16];
	json_t *part;

	notify_item_address(env->cfg->intake_domain, d, it, addr,
	    sizeof(addr));
	notify_locale(env->cfg, env->st, d, NULL, locale, sizeof(locale));
	/* the item as it is now (rejected, asked again), its address; the
	 * document's name is data, never a link */
	part = json_pack("{s:s, s:s, s:o, s:b, s:s}", "filename",
	    doc->filename, "reason", reason ? reason : "", "item",
	    it != NULL ? notify_item_json(env->cfg, d, it, locale) :
	    json_object(), "has_item", it != NULL, "address", addr);
	json_object_set_new(part, "mailto", json_incref(json_object_get(
	    json_object_get(part, "item"), "mailto")));
	if (it == NULL) {
		char m[1024];

		if (notify_mailto(addr, d->ref, m, sizeof(m)) != 0)
			notify_mailto(addr, NULL, m, sizeof(m));
		json_object_set_new(part, "mailto", json_string(m));
	}
	return notify_loop_send(env, d, "rejection", addr, "rejection", part,
	    id_r, err);
}

int
notify_completed(const struct notify_env *env, const struct store_dossier *d,
    int64_t *id_r, char *err)
{
	return notify_loop_send(env, d, "completed", NULL, NULL, NULL, id_r,
	    err);
}

int
notify_closing(const struct notify_env *env, const struct store_dossier *d,
    int64_t *id_r, char *err)
{
	return notify_loop_send(env, d, "closing", NULL, NULL, NULL, id_r,
	    err);
}

int
notify_wants_completion(const struct pd_config *cfg, struct store *st,
    const char *account)
{
	struct notify_identity id;
	char err[PD_ERRLEN];

	/* Unreadable settings: the config file's answer. */
	if (notify_identity(cfg, st, account, &id, err) != 0)
		(void)notify_identity(cfg, NULL, account, &id, err);
	return id.notify_completed;
}

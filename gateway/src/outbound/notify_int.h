/*
 * notify_int.h - what the notify_*.c files share and nobody else sees:
 * the account's identity, the template data of a dossier (notify_data.c)
 * and render-build-queue (notify.c).  Front ends and services use
 * notify.h only.
 */
#ifndef PD_NOTIFY_INT_H
#define PD_NOTIFY_INT_H

#include <stdint.h>
#include <jansson.h>

#include "notify.h"

struct store_dossier;
struct store_item;

/* Who an account writes as: config `accounts`, else the defaults. */

/*
 * The language of every message about d: the contact's, else `hint` (an
 * invitation's --locale), else the account's, else the configured
 * default, else "en".  Copied into out (16 bytes).
 */
void notify_locale(const struct pd_config *cfg, struct store *st,
    const struct store_dossier *d, const char *hint, char *out, size_t len);

/*
 * Everything a template about d may show (templates/README.md, "Data
 * contract"): account, contact, locale, dossier, items, outstanding...
 * Reads the dossier's items.  NULL with err on failure.
 */
json_t *notify_data(const struct notify_env *env,
    const struct store_dossier *d, const char *locale, int64_t now,
    char *err);
/* The same with `extra` items after the dossier's own (a dry run's
 * items not yet added). */
json_t *notify_data_with(const struct notify_env *env,
    const struct store_dossier *d, const char *locale, int64_t now,
    const struct store_item *extra, size_t n_extra, char *err);

/* account: {name, legal_name, legal_address, from_name, from_addr}. */
json_t *notify_account_json(const char *account,
    const struct notify_identity *id);

/* One item as a template sees it (address, mailto, state, reason...). */
json_t *notify_item_json(const struct pd_config *cfg,
    const struct store_dossier *d, const struct store_item *it,
    const char *locale);

/* A day at t in the reader's words ("20 décembre 2026"). */
void notify_when_text(int64_t t, const char *locale, char *out, size_t len);

struct notify_msg {
	const char *tmpl;
	const char *locale;		/* already resolved (notify_locale) */
	const char *kind;		/* the outbound queue's kind */
	const char *to;
	const char *reply_to;		/* NULL: none */
};

/* Render, build, queue (outq_enqueue, through the queue's store). */
int notify_send(const struct notify_env *env, const struct store_dossier *d,
    const struct notify_msg *nm, json_t *data, int64_t *id_r, char *err);

/* The dossier's plain intake address. */
void notify_dossier_address(const struct pd_config *cfg,
    const struct store_dossier *d, char *out, size_t len);

#endif

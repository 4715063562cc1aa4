/*
 * cli_int.h - private to cli/: what the root family (cli.c) shares with
 * the dossier loop's commands (dossier_cli.c): the root's option table
 * indexes, what a row opens, the output helpers and the dossier lookup.
 * Never included outside cli/.
 */
#ifndef PD_CLI_INT_H
#define PD_CLI_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cli_args.h"
#include "store/records.h"

/* The root family's options; --config, --json, -v and --help are
 * global.  --item and --optional are repeatable (their order kept). */
enum cli_opt_id {
	OPT_ACCOUNT, OPT_CONTACT, OPT_REF, OPT_ADDRESS, OPT_STATUS,
	OPT_OUTPUT, OPT_POLICY, OPT_TEMPLATE, OPT_LOCALE,
	OPT_DOCUMENTS, OPT_DUE, OPT_QUEUE_ONLY, OPT_NOW, OPT_DATA, OPT_TO,
	OPT_ITEM, OPT_OPTIONAL, OPT_CHECKLIST, OPT_REASON, OPT_NOTIFY,
	OPT_DRY_RUN, OPT_LEGAL_NAME, OPT_LEGAL_ADDRESS, OPT_FROM_NAME,
	OPT_FROM_ADDR, OPT_PRIVACY_URL, OPT_ADULT_REQUIRED,
	OPT_NOTIFY_COMPLETED, OPT_COUNT
};
#define B(o) (1u << (o))

/* What a row opens: configuration; + store and blobs; + outbound. */
#define N_CFG CLI_NEED_CONFIG
#define N_STORE (CLI_NEED_STORE | CLI_NEED_BLOBS)
#define N_OUT (N_STORE | CLI_NEED_OUTBOUND)

/* ---- output (cli.c) ---- */
/* "2026-12-07T22:04:18Z", or "-" for 0; four rotating buffers. */
const char *cli_time(int64_t t);
json_t *cli_jstr(const char *s);
json_t *cli_jtime(int64_t t);
void cli_jset(json_t *o, const char *key, json_t *v);
/* Print (indented) and release. */
void cli_json_print(json_t *j);
void cli_address(const struct cli_ctx *c, const struct store_dossier *d,
    char *out, size_t outlen);
json_t *cli_dossier_json(const struct cli_ctx *c,
    const struct store_dossier *d);

/* ---- lookups (cli.c) ---- */
/* --account NAME, if given: 1 and *id_r set; 0 absent; -1 unknown. */
int cli_account_scope(struct cli_ctx *c, int64_t *id_r);
/* The dossier by ID or address within --account: 1, 0 (err), -1. */
int cli_find_dossier(struct cli_ctx *c, const char *spec,
    struct store_dossier *d);
/* Deliver what is due now, unless --queue-only. */
int cli_deliver_now(struct cli_ctx *c);

/* ---- the dossier loop's commands (dossier_cli.c) ---- */
int cli_checklist_add(struct cli_ctx *c);
int cli_checklist_list(struct cli_ctx *c);
int cli_dossier_create(struct cli_ctx *c);
int cli_dossier_show(struct cli_ctx *c);
int cli_dossier_close(struct cli_ctx *c);
int cli_document_assign(struct cli_ctx *c);
int cli_document_accept(struct cli_ctx *c);
int cli_document_reject(struct cli_ctx *c);
/* invite --documents and --locale: items added and the language
 * remembered before the invitation is rendered. */
int cli_invite_prepare(struct cli_ctx *c, const struct store_dossier *d);

#endif

/*
 * dossier.h - the dossier service that every front end (the CLI, the
 * JSON API, the web pages) calls: the store connection a front end holds,
 * accounts, dossiers (create, find, list, close), their documents,
 * messages and history, the bytes to download, and the one set of
 * validators for what an operator or a client types.  It decides; the
 * store keeps the rows.  Never prints, never speaks HTTP, never formats.
 */
#ifndef PD_DOSSIER_H
#define PD_DOSSIER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/records.h"

struct pd_config;
struct store;
struct blob_store;
struct outq_ctx;

/* ---- connections (dossier_conn.c) ----
 * A front end never opens the store itself: it asks here for a
 * connection (one per thread: SQLite connections are not shared) and the
 * blob store, holds them as opaque handles and hands them to services. */
int dossier_conn_open(const struct pd_config *cfg, struct store **st_r,
    char *err);
void dossier_conn_close(struct store **st);
int dossier_blobs_open(const struct pd_config *cfg, struct blob_store **bs_r,
    char *err);
void dossier_blobs_close(struct blob_store **bs);

/* ---- validators (dossier_valid.c): 1 valid, 0 not ---- */

#define DOSSIER_REF_MAX 127
#define DOSSIER_CONTACT_MAX 254

/* Printable UTF-8 of 1 to max bytes: no C0 control, no DEL. */
int dossier_valid_text(const char *s, size_t max);
/* A dossier's ref: text of 1-127 bytes. */
int dossier_valid_ref(const char *s);
/* A contact: a plain addr-spec, dot-atom local part of at most 64
 * octets, a DNS domain of two labels or more (mail to it must leave),
 * 254 octets in all (RFC 5321 4.5.3.1). */
int dossier_valid_contact(const char *s);
/* An account or token name: 1-63 of A-Z a-z 0-9 _ . - */
int dossier_valid_name(const char *s);
/* A word that names a file family: template, locale, purpose:
 * [a-z0-9_-]{1,32}, never a path. */
int dossier_valid_word(const char *s);
/* A dossier's statuses (NULL-terminated): what a list filter may name. */
extern const char *const dossier_statuses[];
/* A due date "YYYY-MM-DD", a day of the calendar. */
int dossier_valid_due(const char *s);
/* A sender policy: "any", "contact" or "domains:a.example,b.example";
 * the normal form (lower-cased) into out. */
int dossier_valid_policy(const char *p, char *out, size_t outlen);
/* A positive decimal id. */
int dossier_parse_id(const char *s, int64_t *id_r);
/* LOCAL@DOMAIN with DOMAIN our intake domain and LOCAL of the shape
 * routing expects (d-[a-z0-9]{8,64} once lower-cased, into local). */
int dossier_parse_address(const char *intake_domain, const char *addr,
    char *local, size_t locallen);

/* ---- accounts (dossier.c): lookups 1 found, 0 not, -1 error ---- */

int dossier_account_add(struct store *st, const char *name,
    const char *policy, int64_t *id_r, char *err);
int dossier_account_get(struct store *st, const char *name,
    struct store_account *a_r, char *err);
int dossier_account_list(struct store *st, store_account_cb cb, void *ctx,
    char *err);

/* ---- an account's identity (dossier_account.c) ----
 * The keys `account set` and PATCH /api/v1/account take
 * (NOTIFY_ACCOUNT_KEYS, NULL-terminated); they win over the config
 * file's account block (notify_identity_sources says where each value
 * comes from). */
extern const char *const dossier_account_keys[];
int dossier_account_key_valid(const char *key);
/*
 * One value for key: from_addr an address we send from, locale one the
 * templates have (notify_has_locale), privacy_url http(s), the names
 * and legal_address one line of text of at most 200 bytes, the booleans
 * yes/no/true/false/on/off/1/0.  The stored form into norm ("true",
 * "false" for booleans; "" or NULL value: "", the key is removed).
 * 1 valid, 0 not with err "KEY: why".
 */
int dossier_account_setting_check(const struct pd_config *cfg,
    const char *key, const char *value, char *norm, size_t len, char *err);
struct dossier_setting {
	const char *key;
	const char *value;		/* NULL or "": back to config/default */
};
struct dossier_env;
/* Every value checked, then all written in one transaction, each with
 * an "account.set" line in the audit trail (env->actor, {"key",
 * "value"}).  0, DOSSIER_EINVAL (err names the key; nothing written),
 * -1. */
int dossier_account_set(const struct dossier_env *env, int64_t account_id,
    const char *account, const struct dossier_setting *v, size_t n,
    char *err);

/* ---- dossiers ---- */

/*
 * A new dossier (contact and ref validated again here; intake_local NULL
 * draws one).  0 created (*id_r), 1 the ref is taken in the account
 * (*id_r that dossier, err says so), -1 error.
 */
int dossier_create(struct store *st, int64_t account_id, const char *contact,
    const char *ref, const char *intake_local, int64_t *id_r, char *err);
/* What an invitation asks for: requested_json a JSON array, due or "". */
int dossier_set_request(struct store *st, int64_t account_id, int64_t id,
    const char *requested_json, const char *due, char *err);
/* account_id 0: any account (the operator's CLI). */
int dossier_get(struct store *st, int64_t account_id, int64_t id,
    struct store_dossier *d_r, char *err);
/* By id, by intake address LOCAL@intake_domain or by a bare d-local
 * part; scoped to account_id unless 0.  1, 0 not found, -1 error. */
int dossier_find(struct store *st, const char *intake_domain,
    int64_t account_id, const char *spec, struct store_dossier *d_r,
    char *err);
/* status NULL, "open" or "closed"; account_id 0: every account in turn
 * (reads stay tenant-scoped). */
int dossier_list(struct store *st, int64_t account_id, const char *status,
    store_dossier_cb cb, void *ctx, char *err);
/* A page: up to limit dossiers after id `after`, in id order, through
 * cb; *next_after_r the cursor of the next page, 0 when this is the
 * last. */
int dossier_page(struct store *st, int64_t account_id,
    const struct store_api_filter *f, int64_t after, int limit,
    store_dossier_cb cb, void *ctx, int64_t *next_after_r, char *err);
/* The owner's dossier closed (closing twice is fine: *was_closed_r
 * says so) and its row read back into d_r. */
int dossier_close(struct store *st, int64_t account_id, int64_t id,
    int *was_closed_r, struct store_dossier *d_r, char *err);

/* ---- what a dossier holds ---- */

int dossier_documents(struct store *st, int64_t account_id,
    int64_t dossier_id, store_doc_cb cb, void *ctx, char *err);
int dossier_messages(struct store *st, int64_t account_id,
    int64_t dossier_id, store_msg_cb cb, void *ctx, char *err);
int dossier_history(struct store *st, int64_t account_id,
    int64_t dossier_id, store_event_cb cb, void *ctx, char *err);
/* account_id 0: any account.  1, 0 not found, -1 error. */
int dossier_document_get(struct store *st, int64_t account_id, int64_t id,
    struct store_doc_row *r, char *err);
int dossier_message_get(struct store *st, int64_t account_id, int64_t id,
    struct store_msg_row *r, char *err);
/*
 * The name to save a document under in a directory: its sanitised file
 * name (intake kept the base name only), else its server-made stored
 * name; never a path: '/', '\\', controls and a leading '.' become '_'.
 */
void dossier_document_filename(const struct store_doc_row *r, char *out,
    size_t outlen);
/* A readable fd on a document's blob, or on a message's raw bytes
 * wherever they live (the database or a blob).  1 with *fd_r, 0 the
 * store holds no such bytes (purged, erased), -1 error. */
int dossier_document_open(struct blob_store *bs, const char *sha256,
    int *fd_r);
int dossier_message_open(struct store *st, struct blob_store *bs,
    const char *sha256, int *fd_r, char *err);
/* What the sender wrote in a message of the dossier (lib/mailtext.h:
 * sanitised text, at most max bytes) into *text_r (malloc'd).  1, 0 the
 * raw copy is gone (purged, erased: *text_r NULL), -1 error. */
int dossier_message_text(struct store *st, struct blob_store *bs,
    int64_t account_id, int64_t message_id, size_t max, char **text_r,
    char *err);

/* ---- the dossier loop (dossier_item.c) ----
 * A dossier asks for items; each document is filed under one item (or
 * none), is reviewed (accepted, or rejected with a reason), and the
 * dossier is complete when every required item is accepted.  Functions
 * that change something return 0, or one of these with err saying what:
 */
#define DOSSIER_ENOTFOUND (-2)	/* no such document, item, checklist */
#define DOSSIER_EINVAL (-3)	/* bad input or not allowed now: nothing
				 * changed */
#define DOSSIER_ITEMS_MAX 50
#define DOSSIER_LABEL_MAX 200

/* What a review or an assignment needs: the store, and the queue for
 * the message it sends (NULL: no message can go; q is needed by reject,
 * by accept when it completes the dossier, by close with notify), and
 * who acts ("cli:alice", "api:crm"), recorded in the history.  With a
 * queue the change runs on the queue's own store connection
 * (outq_store), so the message commits with it; st is then unused. */
struct dossier_env {
	const struct pd_config *cfg;
	struct store *st;
	struct outq_ctx *q;
	const char *actor;
};

/* End what store_begin began (a savepoint when nested): commit when ok,
 * else roll back and return -1. */
int dossier_tx_end(struct store *st, int ok, char *err);

/*
 * An item from what an operator types: "LABEL[|TYPES][|MAX]", TYPES
 * words joined by '/' or ',' ("pdf/jpeg"; shown "PDF, JPEG"), MAX a
 * size ("5MB", "500KB", "2000000").  The slug is made from the label.
 * 0 or DOSSIER_EINVAL.
 */
int dossier_item_parse(const char *spec, int required,
    struct store_item *it_r, char *err);
/* The same from JSON: {"label", "required" (default true), "types" (a
 * string or an array of strings), "max_size" (bytes)}. */
int dossier_item_from_json(json_t *o, struct store_item *it_r, char *err);
json_t *dossier_item_spec_json(const struct store_item *it);
/* "ID card, Proof of address" (invite --documents): required items.
 * *v_r is the caller's to free. */
int dossier_items_parse_csv(const char *csv, struct store_item **v_r,
    size_t *n_r, char *err);
/*
 * Add items to a dossier, all or none.  An item whose slug and label
 * are already there is skipped (*added_r counts the new ones); a slug
 * that another label of the dossier or of the batch has is an error
 * naming both labels.  0, DOSSIER_EINVAL, DOSSIER_ENOTFOUND (not a
 * dossier of the account), -1.
 */
int dossier_items_add(struct store *st, int64_t account_id,
    int64_t dossier_id, const struct store_item *v, size_t n,
    unsigned *added_r, char *err);
/* What dossier_items_add would add, by the same rules, writing
 * nothing (a dry run): the new items into *new_r (the caller frees).
 * 0, DOSSIER_EINVAL (err names the collision), -1. */
int dossier_items_plan(struct store *st, int64_t account_id,
    int64_t dossier_id, const struct store_item *v, size_t n,
    struct store_item **new_r, size_t *n_new_r, char *err);
int dossier_items(struct store *st, int64_t account_id, int64_t dossier_id,
    store_item_cb cb, void *ctx, char *err);
/* By slug (any case), else by id (a slug of digits, "2024", is its
 * slug first): 1, 0 not found, -1. */
int dossier_item_find(struct store *st, int64_t account_id,
    int64_t dossier_id, const char *spec, struct store_item *it_r,
    char *err);
/* The item's own address d-<token>+<slug>@domain (the plain address
 * when that would pass the 64 octets of a local part, RFC 5321
 * 4.5.3.1.1). */
void dossier_item_address(const char *intake_domain,
    const struct store_dossier *d, const struct store_item *it, char *out,
    size_t len);

/* An account's named checklists: name [a-z0-9_-]{1,32}; a name the
 * account has already is DOSSIER_EINVAL. */
int dossier_checklist_add(struct store *st, int64_t account_id,
    const char *name, const struct store_item *v, size_t n, char *err);
int dossier_checklist_list(struct store *st, int64_t account_id,
    store_checklist_cb cb, void *ctx, char *err);
/* A checklist's items (*v_r the caller's to free): 1, 0 no such
 * checklist, -1. */
int dossier_checklist_items(struct store *st, int64_t account_id,
    const char *name, struct store_item **v_r, size_t *n_r, char *err);

/* "Zoé Martin <zoe@example.fr>" or "zoe@example.fr": the address into
 * email and the display name (may be "") into name; 1 valid, 0 not. */
int dossier_parse_contact(const char *s, char *email, size_t emaillen,
    char *name, size_t namelen);
/* A language tag we have messages for the shape of: "fr", "en", "pt-BR"
 * ([a-z]{2,3}(-[A-Za-z0-9]{2,8})?). */
int dossier_valid_locale(const char *s);
/* Remember the contact's name and language (NULL or "": keep). */
int dossier_contact_set(struct store *st, int64_t account_id,
    const char *email, const char *name, const char *locale, char *err);

/*
 * What a new dossier starts with (dossier_create_with): the contact
 * as a person, and its items from a checklist of the account and/or
 * given items.  All or nothing.
 */
struct dossier_new {
	const char *contact;		/* "Name <addr>" or addr */
	const char *locale;		/* NULL: none */
	const char *ref;
	const char *intake_local;	/* NULL: drawn */
	const char *checklist;		/* NULL: none */
	const struct store_item *items;
	size_t n_items;
	const char *due;		/* "YYYY-MM-DD" or NULL */
};
/* 0 created (*id_r), 1 the ref is taken (*id_r that dossier),
 * DOSSIER_ENOTFOUND no such checklist, DOSSIER_EINVAL, -1. */
int dossier_create_with(struct store *st, int64_t account_id,
    const struct dossier_new *n, int64_t *id_r, char *err);

/* 1 in *complete_r when every required item is accepted (and there is
 * one at least): the one rule front ends show as "complete". */
int dossier_complete(struct store *st, int64_t account_id, int64_t id,
    int *complete_r, char *err);

/* The result of a review or an assignment, for the front end to show. */
struct dossier_review {
	int unchanged;			/* it was so already: nothing done */
	int completed;			/* this completed the dossier */
	int64_t mail_id;		/* the message queued (0: none) */
	struct store_doc_row doc;	/* after the change */
	struct store_item item;		/* its item after (id 0: none) */
};
/* File a document under an item (slug or id; "none" or NULL:
 * unassigned).  The review is kept; both items' states follow. */
int dossier_document_assign(const struct dossier_env *env,
    int64_t account_id, int64_t doc_id, const char *item,
    struct dossier_review *r, char *err);
/* Accept (the document must be filed under an item). */
int dossier_document_accept(const struct dossier_env *env,
    int64_t account_id, int64_t doc_id, struct dossier_review *r,
    char *err);
/* Reject with a reason (1-1000 bytes of text): the contact is told, in
 * one transaction with the review. */
int dossier_document_reject(const struct dossier_env *env,
    int64_t account_id, int64_t doc_id, const char *reason,
    struct dossier_review *r, char *err);
/* Close, and with notify queue the closing message to the contact.
 * account_id 0: any account's; DOSSIER_ENOTFOUND when not the account's
 * or none. */
int dossier_close_with(const struct dossier_env *env, int64_t account_id,
    int64_t id, int notify, int *was_closed_r, struct store_dossier *d_r,
    int64_t *mail_id_r, char *err);

#endif

/*
 * api_int.h - shared by api.c (server, routing, auth, replies) and
 * api_res.c (the resources).  Nothing outside the API includes it.
 */
#ifndef PD_API_INT_H
#define PD_API_INT_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

struct pd_config;
struct store;
struct blob_store;
struct outq_ctx;
struct plugin_host;

struct api_server {
	const struct pd_config *cfg;
	struct plugin_host *ph;	/* borrowed: the outbound hooks */
	struct MHD_Daemon *d;
	pthread_key_t key;	/* each pool thread's struct api_thread */
};

/* What one MHD pool thread uses, made on its first request and freed
 * when it ends: a store connection is used by one thread at a time. */
struct api_thread {
	struct store *st;
	struct blob_store *bs;
	struct outq_ctx *q;	/* its own store connection */
};

/* One authenticated request, as a handler sees it. */
struct api_ctx {
	struct api_server *s;
	struct MHD_Connection *con;
	struct store *st;	/* this thread's (struct api_thread) */
	struct blob_store *bs;
	struct outq_ctx *q;
	int64_t account_id;
	char account[64];
	char actor[80];		/* "api:<token name>", for ledgers */
	int64_t id;		/* the {id} of the path, if any */
	char key[320];		/* the {email} of the path, if any */
	json_t *body;		/* POST, PATCH: a JSON object (maybe empty) */
};

typedef enum MHD_Result (*api_handler)(struct api_ctx *x);

struct api_route {
	const char *method;
	const char *path;	/* {id}: a positive integer; {email}: any */
	api_handler fn;
	int auth;		/* 0: /metrics only */
};

extern const struct api_route api_routes[];
extern const size_t api_nroutes;

/* Replies.  api_json steals j.  Every error body is
 * {"error": {"code", "message"[, "field"]}}. */
enum MHD_Result api_json(struct api_ctx *x, unsigned status, json_t *j);
enum MHD_Result api_error(struct api_ctx *x, unsigned status,
    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
enum MHD_Result api_invalid(struct api_ctx *x, const char *field,
    const char *why);
enum MHD_Result api_not_found(struct api_ctx *x, const char *what);
enum MHD_Result api_internal(struct api_ctx *x, const char *err);

/* Body fields: 1 ok (*v_r NULL when absent and optional), 0 invalid. */
int api_field_str(struct api_ctx *x, const char *name, int required,
    size_t max, const char **v_r);
/* A query argument, or NULL. */
const char *api_query(struct api_ctx *x, const char *name);

/* JSON helpers: a string with non-UTF-8 bytes cleaned; 0 time = null. */
json_t *api_jstr(const char *s);
json_t *api_jtime(int64_t t);

/* Content-Disposition: attachment for a UTF-8 file name (api_res.c). */
void api_disposition(const char *name, char *out, size_t len);

/* api_res.c: one handler per route of api.c's table. */
enum MHD_Result api_metrics(struct api_ctx *x);
enum MHD_Result api_dossier_create(struct api_ctx *x);
enum MHD_Result api_dossier_list(struct api_ctx *x);
enum MHD_Result api_dossier_get(struct api_ctx *x);
enum MHD_Result api_dossier_close(struct api_ctx *x);
enum MHD_Result api_dossier_documents(struct api_ctx *x);
enum MHD_Result api_dossier_invite(struct api_ctx *x);
enum MHD_Result api_document_get(struct api_ctx *x);
enum MHD_Result api_document_content(struct api_ctx *x);
enum MHD_Result api_purpose_list(struct api_ctx *x);
enum MHD_Result api_consent_grant(struct api_ctx *x);
enum MHD_Result api_consent_withdraw(struct api_ctx *x);
enum MHD_Result api_contact_consent(struct api_ctx *x);
enum MHD_Result api_contact_attest(struct api_ctx *x);
enum MHD_Result api_campaign_create(struct api_ctx *x);
enum MHD_Result api_campaign_get(struct api_ctx *x);
enum MHD_Result api_campaign_send(struct api_ctx *x);
enum MHD_Result api_campaign_list(struct api_ctx *x);
enum MHD_Result api_campaign_test(struct api_ctx *x);
enum MHD_Result api_subject_export(struct api_ctx *x);
enum MHD_Result api_subject_erase(struct api_ctx *x);

/* api_account.c: the token's own account's identity. */
enum MHD_Result api_account_get(struct api_ctx *x);
enum MHD_Result api_account_patch(struct api_ctx *x);

/* Shared by api_res.c and api_loop.c. */
struct store_dossier;
struct store_doc_row;
struct store_item;
/* The token's dossier x->id (or document x->id): 1, or 0 with the 404
 * (or 500) queued. */
int api_find_dossier(struct api_ctx *x, struct store_dossier *d,
    enum MHD_Result *ret);
int api_find_doc(struct api_ctx *x, struct store_doc_row *r,
    enum MHD_Result *ret);
json_t *api_doc_json(const struct store_doc_row *r);
/* A dossier as every route shows it: with its items, the contact's name
 * and language, the due date and whether it is complete.  NULL with err
 * when the store failed. */
json_t *api_dossier_json(struct api_ctx *x, const struct store_dossier *d,
    char *err);
/* "items" (objects) or "requested" (names, the older form: required
 * items) of the body as items: 1 ok (*v_r malloc'd or NULL), 0 with the
 * 422 naming the field queued. */
int api_body_items(struct api_ctx *x, const char *field,
    struct store_item **v_r, size_t *n_r, enum MHD_Result *ret);
/* The completion rule shown as "complete": at least one required item,
 * every required item accepted (dossier_review.c fires
 * dossier.completed on the same rule). */
int api_items_complete(const struct store_item *v, size_t n);

/* api_loop.c: the dossier loop (items, review, messages, checklists). */
enum MHD_Result api_dossier_messages(struct api_ctx *x);
enum MHD_Result api_dossier_items_add(struct api_ctx *x);
enum MHD_Result api_document_assign(struct api_ctx *x);
enum MHD_Result api_document_accept(struct api_ctx *x);
enum MHD_Result api_document_reject(struct api_ctx *x);
enum MHD_Result api_checklist_list(struct api_ctx *x);
enum MHD_Result api_checklist_create(struct api_ctx *x);

#endif

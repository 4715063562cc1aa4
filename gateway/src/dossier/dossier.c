/*
 * dossier.c - the rules of accounts and dossiers that every front end
 * shares: a dossier is created only with a valid contact and ref, a ref
 * is unique in its account, every read is scoped to one account (another
 * account's dossier is "not found"), closing is idempotent, and the
 * bytes handed out are the store's (blob or inline raw message).  SQL is
 * the store's; wording and output are the front ends'.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dossier.h"
#include "lib/mailtext.h"
#include "lib/util.h"
#include "store/blob.h"
#include "store/rawmsg.h"
#include "store/store.h"
#include "store/store_api.h"

/* ---- accounts ---- */

int
dossier_account_add(struct store *st, const char *name, const char *policy,
    int64_t *id_r, char *err)
{
	char norm[512];

	if (!dossier_valid_name(name) ||
	    !dossier_valid_policy(policy, norm, sizeof(norm))) {
		pd_err(err, "invalid account name or sender policy");
		return -1;
	}
	return store_account_add(st, name, norm, id_r, err);
}

int
dossier_account_get(struct store *st, const char *name,
    struct store_account *a_r, char *err)
{
	return store_account_get(st, name, a_r, err);
}

int
dossier_account_list(struct store *st, store_account_cb cb, void *ctx,
    char *err)
{
	return store_account_list(st, cb, ctx, err);
}

/* ---- dossiers ---- */

int
dossier_create(struct store *st, int64_t account_id, const char *contact,
    const char *ref, const char *intake_local, int64_t *id_r, char *err)
{
	struct store_dossier d;
	char again[PD_ERRLEN];
	int rc;

	if (!dossier_valid_contact(contact) || !dossier_valid_ref(ref)) {
		pd_err(err, "dossier create: invalid contact or ref");
		return -1;
	}
	rc = store_dossier_by_ref(st, account_id, ref, &d, err);
	if (rc < 0)
		return -1;
	if (rc == 0 && store_dossier_create(st, account_id, contact, ref,
	    intake_local, id_r, err) == 0)
		return 0;
	/* Taken before we looked, or by another writer since (then the
	 * create's own error is kept if the ref is not there either). */
	if (rc == 1 || store_dossier_by_ref(st, account_id, ref, &d,
	    again) == 1) {
		*id_r = d.id;
		pd_err(err, "dossier ref \"%s\" already exists in this account",
		    ref);
		return 1;
	}
	return -1;
}

int
dossier_set_request(struct store *st, int64_t account_id, int64_t id,
    const char *requested_json, const char *due, char *err)
{
	return store_dossier_set_request(st, account_id, id, requested_json,
	    due, err);
}

int
dossier_get(struct store *st, int64_t account_id, int64_t id,
    struct store_dossier *d_r, char *err)
{
	return store_dossier_get(st, account_id, id, d_r, err);
}

int
dossier_find(struct store *st, const char *intake_domain, int64_t account_id,
    const char *spec, struct store_dossier *d_r, char *err)
{
	const char *at = strrchr(spec, '@');
	char local[80];
	int64_t id;
	int rc;

	if (dossier_parse_id(spec, &id))
		rc = store_dossier_get(st, account_id, id, d_r, err);
	else if (at != NULL && dossier_parse_address(intake_domain, spec,
	    local, sizeof(local)))
		rc = store_dossier_by_local(st, local, d_r, err);
	else if (at == NULL && strncmp(spec, "d-", 2) == 0)
		rc = store_dossier_by_local(st, spec, d_r, err);
	else
		rc = 0;
	/* The routing lookup is store-wide; the account still scopes it. */
	if (rc == 1 && account_id != 0 && d_r->account_id != account_id)
		rc = 0;
	return rc;
}

struct dossier_list_ctx {
	struct store *st;
	const char *status;
	store_dossier_cb cb;
	void *ctx;
	char *err;
	int failed;
};

static int
dossier_list_account_cb(const struct store_account *a, void *ctx)
{
	struct dossier_list_ctx *l = ctx;

	if (store_dossier_list(l->st, a->id, l->status, l->cb, l->ctx,
	    l->err) != 0) {
		l->failed = 1;
		return 1;
	}
	return 0;
}

int
dossier_list(struct store *st, int64_t account_id, const char *status,
    store_dossier_cb cb, void *ctx, char *err)
{
	struct dossier_list_ctx l = { st, status, cb, ctx, err, 0 };

	if (account_id != 0)
		return store_dossier_list(st, account_id, status, cb, ctx, err);
	if (store_account_list(st, dossier_list_account_cb, &l, err) != 0)
		return -1;
	return l.failed ? -1 : 0;
}

int
dossier_page(struct store *st, int64_t account_id,
    const struct store_api_filter *f, int64_t after, int limit,
    store_dossier_cb cb, void *ctx, int64_t *next_after_r, char *err)
{
	struct store_dossier d;
	int64_t *ids;
	int n = 0, i;

	*next_after_r = 0;
	/* One more than asked: whether a next page exists. */
	ids = xcalloc((size_t)limit + 1, sizeof(*ids));
	if (store_api_dossier_page(st, account_id, f, after, limit + 1, ids,
	    &n, err) != 0) {
		free(ids);
		return -1;
	}
	for (i = 0; i < n && i < limit; i++)
		if (store_dossier_get(st, account_id, ids[i], &d, err) == 1 &&
		    cb(&d, ctx) != 0)
			break;
	if (n > limit)
		*next_after_r = ids[limit - 1];
	free(ids);
	return 0;
}

int
dossier_close(struct store *st, int64_t account_id, int64_t id,
    int *was_closed_r, struct store_dossier *d_r, char *err)
{
	int rc = store_dossier_get(st, account_id, id, d_r, err);

	if (rc != 1) {
		if (rc == 0)
			pd_err(err, "dossier %lld not found", (long long)id);
		return -1;
	}
	*was_closed_r = strcmp(d_r->status, "closed") == 0;
	if (store_dossier_close(st, d_r->account_id, id, err) != 0)
		return -1;
	rc = store_dossier_get(st, d_r->account_id, id, d_r, err);
	if (rc == 0)
		pd_err(err, "dossier %lld vanished", (long long)id);
	return rc == 1 ? 0 : -1;
}

/* ---- what a dossier holds ---- */

int
dossier_documents(struct store *st, int64_t account_id, int64_t dossier_id,
    store_doc_cb cb, void *ctx, char *err)
{
	return store_document_list(st, account_id, dossier_id, cb, ctx, err);
}

int
dossier_messages(struct store *st, int64_t account_id, int64_t dossier_id,
    store_msg_cb cb, void *ctx, char *err)
{
	return store_message_list(st, account_id, dossier_id, cb, ctx, err);
}

int
dossier_history(struct store *st, int64_t account_id, int64_t dossier_id,
    store_event_cb cb, void *ctx, char *err)
{
	return store_event_list(st, account_id, dossier_id, cb, ctx, err);
}

int
dossier_document_get(struct store *st, int64_t account_id, int64_t id,
    struct store_doc_row *r, char *err)
{
	return store_document_get(st, account_id, id, r, err);
}

int
dossier_message_get(struct store *st, int64_t account_id, int64_t id,
    struct store_msg_row *r, char *err)
{
	return store_message_get(st, account_id, id, r, err);
}

void
dossier_document_filename(const struct store_doc_row *r, char *out,
    size_t outlen)
{
	const char *s = r->filename[0] != '\0' ? r->filename : r->stored_name;
	size_t i;

	if (outlen == 0)
		return;
	snprintf(out, outlen, "%s", s[0] != '\0' ? s : "document");
	/* Intake's sanitiser already did this; a name from an older
	 * store, or one bent by a bug, must still never be a path. */
	for (i = 0; out[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)out[i];

		if (ch < 0x20 || ch == 0x7f || ch == '/' || ch == '\\' ||
		    (i == 0 && ch == '.'))
			out[i] = '_';
	}
}

/* No link followed: a blob is a file we placed, by its digest. */
int
dossier_document_open(struct blob_store *bs, const char *sha256, int *fd_r)
{
	char path[4200];

	blob_path(bs, sha256, path, sizeof(path));
	*fd_r = path[0] ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	return *fd_r >= 0;
}

int
dossier_message_open(struct store *st, struct blob_store *bs,
    const char *sha256, int *fd_r, char *err)
{
	*fd_r = -1;
	return rawmsg_open(st, bs, sha256, fd_r, err);
}

int
dossier_message_text(struct store *st, struct blob_store *bs,
    int64_t account_id, int64_t message_id, size_t max, char **text_r,
    char *err)
{
	struct store_msg_row *m = xmalloc(sizeof(*m));
	int fd = -1, rc;

	*text_r = NULL;
	rc = store_message_get(st, account_id, message_id, m, err);
	if (rc == 1 && m->sha256[0] == '\0')
		rc = 0;
	if (rc == 1)
		rc = dossier_message_open(st, bs, m->sha256, &fd, err);
	free(m);
	if (rc != 1)
		return rc;
	rc = mailtext_extract(fd, max, text_r, err) == 0 ? 1 : -1;
	close(fd);
	return rc;
}

int
dossier_complete(struct store *st, int64_t account_id, int64_t id,
    int *complete_r, char *err)
{
	struct store_dossier d;
	int announced, rc;

	*complete_r = 0;
	rc = store_dossier_get(st, account_id, id, &d, err);
	if (rc != 1)
		return rc == 0 ? DOSSIER_ENOTFOUND : -1;
	return store_dossier_completion(st, id, complete_r, &announced, err);
}

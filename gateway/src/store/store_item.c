/*
 * store_item.c - the SQL of the dossier loop: a dossier's items (what it
 * asks for), the item and review of each document, an item's state kept
 * from its documents, completion, an account's named checklists, the
 * contact's name and language, the time of the last reminder.  Rules
 * (what a slug may be, who may review, what goes out) are the dossier
 * service's; this file keeps rows, bound parameters only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "lib/util.h"

#define ITEM_COLS \
	"SELECT id, dossier_id, position, slug, label, required, types, " \
	"max_size, state, reason, updated FROM dossier_items "

static void
store_item_row(struct db_stmt *s, struct store_item *it)
{
	memset(it, 0, sizeof(*it));
	it->id = db_col_int64(s, 0);
	it->dossier_id = db_col_int64(s, 1);
	it->position = db_col_int(s, 2);
	COPY_COL(it->slug, s, 3);
	COPY_COL(it->label, s, 4);
	it->required = db_col_int(s, 5);
	COPY_COL(it->types, s, 6);
	it->max_size = db_col_int64(s, 7);
	COPY_COL(it->state, s, 8);
	COPY_COL(it->reason, s, 9);
	it->updated = db_col_int64(s, 10);
}

/* Step a one-off item query once: 1 found, 0 not, -1 error. */
static int
store_item_fetch(struct store *st, struct db_stmt *s, struct store_item *it,
    char *err)
{
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW)
		store_item_row(s, it);
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail(st, err, "item lookup");
}

int
store_item_add(struct store *st, int64_t account_id, int64_t dossier_id,
    const struct store_item *it, int64_t *id_r, char *err)
{
	int64_t now = pd_now();
	struct db_stmt *s;
	int rc;

	if (account_id <= 0) {
		pd_err(err, "item add: no account given");
		return -1;
	}
	s = store_cx(st, "INSERT INTO dossier_items (account_id, dossier_id,"
	    " position, slug, label, required, types, max_size, created,"
	    " updated) VALUES (?1, ?2, 1 + (SELECT COALESCE(MAX(position), 0)"
	    " FROM dossier_items WHERE dossier_id = ?2), ?3, ?4, ?5, ?6, ?7,"
	    " ?8, ?8) RETURNING id", err, "iittitii", account_id, dossier_id,
	    it->slug, it->label, (int64_t)(it->required != 0), it->types,
	    it->max_size, now);
	if (s == NULL)
		return -1;
	rc = store_step_id(s, id_r);
	db_finalize(s);
	if ((rc & 0xff) == DB_CONSTRAINT) {
		pd_err(err, "dossier %lld already has an item \"%s\"",
		    (long long)dossier_id, it->slug);
		return -1;
	}
	if (rc != DB_DONE)
		return store_fail(st, err, "item add");
	return 0;
}

int
store_item_list(struct store *st, int64_t account_id, int64_t dossier_id,
    store_item_cb cb, void *ctx, char *err)
{
	struct db_stmt *s = store_cx(st, ITEM_COLS "WHERE dossier_id = ?1 AND"
	    " account_id = ?2 ORDER BY position, id", err, "ii", dossier_id,
	    account_id);
	struct store_item it;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW) {
		store_item_row(s, &it);
		if (cb(&it, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_finalize(s);
	return rc == DB_DONE ? 0 : store_fail(st, err, "item list");
}

int
store_item_by_slug(struct store *st, int64_t account_id, int64_t dossier_id,
    const char *slug, struct store_item *it_r, char *err)
{
	return store_item_fetch(st, store_cx(st, ITEM_COLS "WHERE dossier_id"
	    " = ?1 AND (?2 = 0 OR account_id = ?2) AND slug = lower(?3)",
	    err, "iit", dossier_id, account_id, slug), it_r, err);
}

int
store_item_by_id(struct store *st, int64_t account_id, int64_t id,
    struct store_item *it_r, char *err)
{
	return store_item_fetch(st, store_cx(st, ITEM_COLS "WHERE id = ?1"
	    " AND (?2 = 0 OR account_id = ?2)", err, "ii", id, account_id),
	    it_r, err);
}

/*
 * The outstanding items (requested or rejected, required or not):
 * *n_r how many, and the first into first_r (may be NULL).
 */
int
store_item_outstanding(struct store *st, int64_t dossier_id, int64_t *n_r,
    struct store_item *first_r, char *err)
{
	struct store_item tmp;
	int r;

	if (store_cx_int(st, store_cx(st, "SELECT COUNT(*) FROM dossier_items"
	    " WHERE dossier_id = ?1 AND state IN ('requested', 'rejected')",
	    err, "i", dossier_id), n_r, err, "items outstanding") < 0)
		return -1;
	if (first_r == NULL)
		return 0;
	r = store_item_fetch(st, store_cx(st, ITEM_COLS "WHERE dossier_id ="
	    " ?1 AND state IN ('requested', 'rejected') ORDER BY position, id"
	    " LIMIT 1", err, "i", dossier_id), &tmp, err);
	if (r < 0)
		return -1;
	if (r == 1)
		*first_r = tmp;
	return 0;
}

/*
 * An item's state from its documents: accepted if one is, else received
 * if one waits for review, else rejected (reason: the latest) if it has
 * any, else requested.  Only a rejected item keeps a reason.  *changed_r:
 * 1 when the state or the reason moved.  One UPDATE with a WITH clause
 * rather than UPDATE ... FROM, whose forms differ between the engines.
 */
int
store_item_refresh(struct store *st, int64_t item_id, int *changed_r,
    char *err)
{
	int changes = 0;

	if (store_cx_exec(st, store_cx(st, "WITH s (state) AS (SELECT"
	    " CASE WHEN EXISTS (SELECT 1 FROM documents WHERE item_id = ?1"
	    "  AND review = 'accepted') THEN 'accepted'"
	    " WHEN EXISTS (SELECT 1 FROM documents WHERE item_id = ?1 AND"
	    "  review = 'pending') THEN 'received'"
	    " WHEN EXISTS (SELECT 1 FROM documents WHERE item_id = ?1) THEN"
	    "  'rejected' ELSE 'requested' END),"
	    " n (state, reason) AS (SELECT state, CASE WHEN state = 'rejected'"
	    "  THEN COALESCE((SELECT review_reason FROM documents WHERE"
	    "  item_id = ?1 AND review = 'rejected' ORDER BY reviewed_at DESC,"
	    "  id DESC LIMIT 1), '') ELSE '' END FROM s)"
	    " UPDATE dossier_items SET state = (SELECT state FROM n),"
	    " reason = (SELECT reason FROM n), updated = ?2"
	    " WHERE id = ?1 AND (state <> (SELECT state FROM n) OR"
	    " reason <> (SELECT reason FROM n))", err, "ii", item_id,
	    pd_now()), &changes, err, "item refresh") != 0)
		return -1;
	if (changed_r != NULL)
		*changed_r = changes > 0;
	return 0;
}

/* ---- documents: item and review ---- */

int
store_document_set_item(struct store *st, int64_t account_id, int64_t doc_id,
    int64_t item_id, char *err)
{
	int changes = 0;

	/* Only under an item of the document's own dossier: the foreign key
	 * names an item, not whose it is. */
	if (store_cx_exec(st, store_cx(st, "UPDATE documents SET item_id = ?3"
	    " WHERE id = ?1 AND account_id = ?2 AND (CAST(?3 AS BIGINT) IS NULL"
	    " OR EXISTS"
	    " (SELECT 1 FROM dossier_items i WHERE i.id = ?3 AND"
	    " i.dossier_id = documents.dossier_id AND i.account_id = ?2))",
	    err, "iiI", doc_id, account_id, item_id), &changes, err,
	    "document assign") != 0)
		return -1;
	if (changes != 1) {
		pd_err(err, "document %lld (or that item of its dossier) not "
		    "found", (long long)doc_id);
		return -1;
	}
	return 0;
}

int
store_document_review(struct store *st, int64_t account_id, int64_t doc_id,
    const char *review, const char *reason, const char *actor, char *err)
{
	int changes = 0;

	if (store_cx_exec(st, store_cx(st, "UPDATE documents SET review = ?3,"
	    " review_reason = ?4, reviewed_by = ?5, reviewed_at = ?6 WHERE"
	    " id = ?1 AND account_id = ?2", err, "iittti", doc_id, account_id,
	    review, reason != NULL ? reason : "", actor != NULL ? actor : "",
	    pd_now()), &changes, err, "document review") != 0)
		return -1;
	if (changes != 1) {
		pd_err(err, "document %lld not found", (long long)doc_id);
		return -1;
	}
	return 0;
}

/*
 * Completion: *complete_r 1 when the dossier has a required item and
 * every required item is accepted; *announced_r 1 when dossier.completed
 * was already recorded (it fires once).
 */
int
store_dossier_completion(struct store *st, int64_t dossier_id,
    int *complete_r, int *announced_r, char *err)
{
	/* CASE: integers, where PostgreSQL would answer booleans. */
	struct db_stmt *s = store_cx(st, "SELECT CASE WHEN"
	    " EXISTS (SELECT 1 FROM dossier_items WHERE dossier_id = ?1 AND"
	    "  required = 1) AND NOT EXISTS (SELECT 1 FROM dossier_items"
	    "  WHERE dossier_id = ?1 AND required = 1 AND state <> 'accepted')"
	    " THEN 1 ELSE 0 END,"
	    " CASE WHEN EXISTS (SELECT 1 FROM events WHERE dossier_id = ?1 AND"
	    "  kind = 'dossier.completed') THEN 1 ELSE 0 END", err, "i",
	    dossier_id);
	int rc;

	*complete_r = *announced_r = 0;
	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW) {
		*complete_r = db_col_int(s, 0);
		*announced_r = db_col_int(s, 1);
	}
	db_finalize(s);
	return rc == DB_ROW ? 0 : store_fail(st, err, "completion");
}

/* ---- checklists ---- */

int
store_checklist_add(struct store *st, int64_t account_id, const char *name,
    const char *items_json, int64_t *id_r, char *err)
{
	struct db_stmt *s = store_cx(st, "INSERT INTO checklists (account_id,"
	    " name, items, created) VALUES (?1, ?2, ?3, ?4) RETURNING id", err,
	    "itti",
	    account_id, name, items_json, pd_now());
	int rc;

	if (s == NULL)
		return -1;
	rc = store_step_id(s, id_r);
	db_finalize(s);
	if ((rc & 0xff) == DB_CONSTRAINT) {
		pd_err(err, "checklist \"%s\" already exists in this account",
		    name);
		return -1;
	}
	if (rc != DB_DONE)
		return store_fail(st, err, "checklist add");
	return 0;
}

#define CHECKLIST_COLS "SELECT id, account_id, name, items, created " \
	"FROM checklists "

static void
store_checklist_row(struct db_stmt *s, struct store_checklist *c)
{
	memset(c, 0, sizeof(*c));
	c->id = db_col_int64(s, 0);
	c->account_id = db_col_int64(s, 1);
	COPY_COL(c->name, s, 2);
	COPY_COL(c->items, s, 3);
	c->created = db_col_int64(s, 4);
}

int
store_checklist_get(struct store *st, int64_t account_id, const char *name,
    struct store_checklist *c_r, char *err)
{
	struct db_stmt *s = store_cx(st, CHECKLIST_COLS "WHERE account_id = ?1"
	    " AND name = ?2", err, "it", account_id, name);
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW)
		store_checklist_row(s, c_r);
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail(st, err, "checklist get");
}

int
store_checklist_list(struct store *st, int64_t account_id,
    store_checklist_cb cb, void *ctx, char *err)
{
	struct db_stmt *s = store_cx(st, CHECKLIST_COLS "WHERE account_id = ?1"
	    " ORDER BY name", err, "i", account_id);
	struct store_checklist *c;
	int rc;

	if (s == NULL)
		return -1;
	c = xmalloc(sizeof(*c));	/* 8 KB: not on a thread's stack */
	while ((rc = db_step(s)) == DB_ROW) {
		store_checklist_row(s, c);
		if (cb(c, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	free(c);
	db_finalize(s);
	return rc == DB_DONE ? 0 : store_fail(st, err, "checklist list");
}

/* ---- the contact as a person; the reminder clock ---- */

int
store_contact_set_person(struct store *st, int64_t account_id,
    const char *email, const char *name, const char *locale, char *err)
{
	return store_cx_exec(st, store_cx(st, "UPDATE contacts SET"
	    " name = COALESCE(?3, name), locale = COALESCE(?4, locale)"
	    " WHERE account_id = ?1 AND email = lower(?2)", err, "ittt",
	    account_id, email, name, locale), NULL, err, "contact update");
}

int
store_dossier_set_reminded(struct store *st, int64_t dossier_id, int64_t at,
    char *err)
{
	return store_cx_exec(st, store_cx(st, "UPDATE dossiers SET"
	    " reminded_at = ?2 WHERE id = ?1", err, "ii", dossier_id, at),
	    NULL, err, "dossier reminded");
}

/*
 * store_campaign.c - the SQL of campaigns and their recipients: add,
 * start, a recipient, pages of recipients, counts.  Never decides who is
 * eligible (eligible.c does, for campaign.c, which fixes the audience in
 * its transaction) and never sends; campaign.c queues through outq.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "lib/util.h"

#define CAMPAIGN_COLS \
	"SELECT c.id, c.account_id, a.name, c.purpose_id, p.name," \
	" c.template, c.subject, c.locale, c.state, c.created," \
	" COALESCE(c.started, 0), COALESCE(c.finished, 0), c.audience," \
	" CASE WHEN c.body_md <> '' THEN 1 ELSE 0 END" \
	" FROM campaigns c" \
	" JOIN accounts a ON a.id = c.account_id" \
	" JOIN purposes p ON p.id = c.purpose_id "

int
store_campaign_add(struct store *st, const struct store_campaign *c,
    int64_t *id_r, char *err)
{
	return store_cx_int(st, store_cx(st, "INSERT INTO campaigns"
	    " (account_id, purpose_id, template, subject, locale, created)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id", err, "iitttI",
	    c->account_id, c->purpose_id, c->tmpl, c->subject, c->locale,
	    pd_now()), id_r, err, "campaign add") == 1 ? 0 : -1;
}

static void
store_campaign_row(struct db_stmt *s, struct store_campaign *c_r)
{
	memset(c_r, 0, sizeof(*c_r));
	c_r->id = db_col_int64(s, 0);
	c_r->account_id = db_col_int64(s, 1);
	COPY_COL(c_r->account, s, 2);
	c_r->purpose_id = db_col_int64(s, 3);
	COPY_COL(c_r->purpose, s, 4);
	COPY_COL(c_r->tmpl, s, 5);
	COPY_COL(c_r->subject, s, 6);
	COPY_COL(c_r->locale, s, 7);
	COPY_COL(c_r->state, s, 8);
	c_r->created = db_col_int64(s, 9);
	c_r->started = db_col_int64(s, 10);
	c_r->finished = db_col_int64(s, 11);
	COPY_COL(c_r->audience, s, 12);
	c_r->has_body = db_col_int(s, 13) != 0;
}

int
store_campaign_get(struct store *st, int64_t id, struct store_campaign *c_r,
    char *err)
{
	struct db_stmt *s = store_cx(st, CAMPAIGN_COLS "WHERE c.id = ?1", err,
	    "i", id);
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW)
		store_campaign_row(s, c_r);
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail(st, err, "campaign get");
}

int
store_campaign_start(struct store *st, int64_t id, int64_t now, char *err)
{
	int n = 0;

	if (store_cx_exec(st, store_cx(st, "UPDATE campaigns SET state ="
	    " 'sending', started = ?2 WHERE id = ?1 AND state = 'draft'", err,
	    "ii", id, now), &n, err, "campaign start") != 0)
		return -1;
	return n > 0;
}

int
store_campaign_rcpt_add(struct store *st, int64_t campaign_id,
    int64_t contact_id, const char *email, int64_t now, char *err)
{
	return store_cx_exec(st, store_cx(st, "INSERT INTO campaign_recipients"
	    " (campaign_id, contact_id, email, state, updated) VALUES (?1, ?2,"
	    " ?3, 'pending', ?4)", err, "iiti", campaign_id, contact_id, email,
	    now), NULL, err, "campaign recipient");
}

int
store_campaign_finish(struct store *st, int64_t id, int64_t now, char *err)
{
	return store_cx_exec(st, store_cx(st, "UPDATE campaigns SET state ="
	    " 'queued', finished = ?2 WHERE id = ?1 AND state = 'sending'",
	    err, "ii", id, now), NULL, err, "campaign finish");
}

int
store_campaign_rcpt_next(struct store *st, int64_t campaign_id,
    int64_t after_id, int max, store_campaign_rcpt_cb cb, void *ctx,
    char *err)
{
	struct db_stmt *s = store_cx(st, "SELECT id, contact_id, email, state,"
	    " COALESCE(message_id, ''), COALESCE(outbound_id, 0), detail"
	    " FROM campaign_recipients WHERE campaign_id = ?1 AND id > ?2"
	    " AND state IN ('pending', 'queuing') ORDER BY id LIMIT ?3", err,
	    "iii", campaign_id, after_id, (int64_t)max);
	struct store_campaign_rcpt *rows;
	int rc, n = 0, i;

	if (s == NULL)
		return -1;
	/* Read the page first: callbacks write to the same tables. */
	rows = xcalloc((size_t)(max > 0 ? max : 1), sizeof(*rows));
	while (n < max && (rc = db_step(s)) == DB_ROW) {
		struct store_campaign_rcpt *r = &rows[n++];

		r->id = db_col_int64(s, 0);
		r->contact_id = db_col_int64(s, 1);
		COPY_COL(r->email, s, 2);
		COPY_COL(r->state, s, 3);
		COPY_COL(r->message_id, s, 4);
		r->outbound_id = db_col_int64(s, 5);
		COPY_COL(r->detail, s, 6);
	}
	if (n < max && rc != DB_DONE) {
		store_fail(st, err, "campaign recipients");
		db_finalize(s);
		free(rows);
		return -1;
	}
	db_finalize(s);
	for (i = 0; i < n; i++)
		if (cb(&rows[i], ctx) != 0)
			break;
	free(rows);
	return n;
}

int
store_campaign_rcpt_set(struct store *st, int64_t id, const char *state,
    const char *message_id, int64_t outbound_id, const char *detail,
    char *err)
{
	char clean[256];

	pd_ascii_clean(clean, sizeof(clean), detail != NULL ? detail : "");
	return store_cx_exec(st, store_cx(st, "UPDATE campaign_recipients SET"
	    " state = ?2, message_id = ?3, outbound_id = ?4, detail = ?5,"
	    " updated = ?6 WHERE id = ?1", err, "ittIti", id, state,
	    message_id, outbound_id, clean, pd_now()), NULL, err,
	    "campaign recipient");
}

int
store_campaign_counts(struct store *st, int64_t id, store_count_cb cb,
    void *ctx, char *err)
{
	struct db_stmt *s = store_cx(st, "SELECT 'r.' || state, COUNT(*) FROM"
	    " campaign_recipients WHERE campaign_id = ?1 GROUP BY state"
	    " UNION ALL SELECT 'o.' || o.state, COUNT(*) FROM"
	    " campaign_recipients r JOIN outbound o ON o.id = r.outbound_id"
	    " WHERE r.campaign_id = ?1 GROUP BY o.state"
	    " UNION ALL SELECT 's.' || detail, COUNT(*) FROM"
	    " campaign_recipients WHERE campaign_id = ?1 AND state = 'skipped'"
	    " GROUP BY detail", err, "i", id);
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW)
		if (cb(db_col_text(s, 0),
		    db_col_int64(s, 1), ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	db_finalize(s);
	return rc == DB_DONE ? 0 : store_fail(st, err, "campaign counts");
}

int
store_campaign_rcpt_by_msgid(struct store *st, int64_t account_id,
    const char *message_id, int64_t *contact_r, int64_t *purpose_r,
    char *err)
{
	struct db_stmt *s = store_cx(st, "SELECT r.contact_id, c.purpose_id"
	    " FROM campaign_recipients r JOIN campaigns c ON c.id ="
	    " r.campaign_id WHERE r.message_id = ?1 AND c.account_id = ?2"
	    " LIMIT 1", err, "ti", message_id, account_id);
	int rc;

	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW) {
		*contact_r = db_col_int64(s, 0);
		*purpose_r = db_col_int64(s, 1);
	}
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail(st, err, "marketing check");
}

int
store_campaign_body(struct store *st, int64_t id, char **md_r, char *err)
{
	struct db_stmt *s = store_cx(st, "SELECT body_md FROM campaigns"
	    " WHERE id = ?1", err, "i", id);
	const char *t;
	int rc;

	*md_r = NULL;
	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc == DB_ROW) {
		t = db_col_text(s, 0);
		*md_r = xstrdup(t != NULL ? t : "");
	}
	db_finalize(s);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail(st, err, "campaign body");
}

int
store_campaign_set_body(struct store *st, int64_t id, const char *md,
    char *err)
{
	return store_cx_exec(st, store_cx(st, "UPDATE campaigns SET body_md ="
	    " ?2 WHERE id = ?1", err, "it", id, md), NULL, err,
	    "campaign body");
}

int
store_campaign_set_audience(struct store *st, int64_t id, const char *json,
    char *err)
{
	return store_cx_exec(st, store_cx(st, "UPDATE campaigns SET audience ="
	    " ?2 WHERE id = ?1", err, "it", id, json), NULL, err,
	    "campaign audience");
}

int
store_campaign_list(struct store *st, int64_t account_id,
    store_campaign_cb cb, void *ctx, char *err)
{
	struct db_stmt *s = store_cx(st, CAMPAIGN_COLS "WHERE c.account_id = ?1"
	    " ORDER BY c.id DESC", err, "i", account_id);
	struct store_campaign c;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW) {
		store_campaign_row(s, &c);
		if (cb(&c, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_finalize(s);
	return rc == DB_DONE ? 0 : store_fail(st, err, "campaign list");
}

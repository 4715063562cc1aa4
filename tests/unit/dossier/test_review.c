/*
 * test_review.c - unit tests of the review of documents (dossier_review.c)
 * over a real store: filing a document under an item, moving it,
 * unfiling it; accepting (only what is filed) and dossier.completed
 * exactly once; rejecting needs a one-line reason and a queue; a closed
 * dossier and another account's document are refused and nothing
 * changes.  Also the store under it: an item's state from its documents
 * (store_item_refresh) and store_begin nesting as a savepoint.  The
 * "core" case runs with q NULL; "queue" with a real outbound queue (its
 * own store connection, the shipped templates): the rejection, the
 * completion and the closing messages queue with the change or not at
 * all.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dossier/dossier.h"
#include "lib/config.h"
#include "lib/util.h"
#include "outbound/outq.h"
#include "store/store.h"
#include "testlib.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static char tmpdir[256];
static struct store *st;
static char err[PD_ERRLEN];
static int64_t acme, other, dos, msg;
/* the dossier's items: two required, one optional */
static struct store_item id_card, proof, bank;
static const struct dossier_env env_ = { NULL, NULL, NULL, "cli:alice" };
static struct dossier_env env;
/* the "queue" case */
static struct pd_config *cfg;
static struct outq_ctx *q;

static struct store_item
find(const char *slug)
{
	struct store_item it;

	ck_assert_msg(dossier_item_find(st, acme, dos, slug, &it, err) == 1,
	    "%s: %s", slug, err);
	return it;
}

static void
setup_in(const char *db)
{
	struct store_message m = {
		.account_id = 0, .queue_id = "Q1",
		.mail_from = "zoe@example.fr",
		.rcpt_to = "d-x@dossiers.example",
		.helo = "mx", .client_ip = "192.0.2.1", .subject = "Pieces",
		.size = 100, .sha256 = SHA_A, .parse_status = "ok",
		.anomalies = "",
	};
	struct store_item v[3];

	st = tl_store_open(db, "normal");
	env = env_;
	env.st = st;
	ck_assert_int_eq(dossier_account_add(st, "acme", "any", &acme, err),
	    0);
	ck_assert_int_eq(dossier_account_add(st, "OTHER", "any", &other,
	    err), 0);
	ck_assert_msg(dossier_create(st, acme, "zoe@example.fr", "R1", NULL,
	    &dos, err) == 0, "%s", err);
	ck_assert_int_eq(dossier_item_parse("ID card", 1, &v[0], err), 0);
	ck_assert_int_eq(dossier_item_parse("Proof of address", 1, &v[1],
	    err), 0);
	ck_assert_int_eq(dossier_item_parse("Bank details", 0, &v[2], err),
	    0);
	ck_assert_msg(dossier_items_add(st, acme, dos, v, 3, NULL, err) == 0,
	    "%s", err);
	id_card = find("id-card");
	proof = find("proof-of-address");
	bank = find("bank-details");
	m.account_id = acme;
	m.dossier_id = dos;
	ck_assert_msg(store_message_add(st, &m, &msg, err) == 0, "%s", err);
}

static void
setup(void)
{
	char db[512];

	tl_tmpdir(tmpdir, sizeof(tmpdir), "review");
	snprintf(db, sizeof(db), "%s/postdoc.db", tmpdir);
	setup_in(db);
}

static void
teardown(void)
{
	dossier_conn_close(&st);
	tl_rmtree(tmpdir);
}

/* The account's identity and the shipped templates, the file transport
 * never reached (nothing is delivered here, only queued). */
static void
setup_queue(void)
{
	char e[PD_ERRLEN];

	tl_tmpdir(tmpdir, sizeof(tmpdir), "review-q");
	ck_assert_msg(config_load(NULL, &cfg, e, sizeof(e)) == 0, "%s", e);
	free(cfg->var_dir);
	cfg->var_dir = xasprintf("%s/var", tmpdir);
	free(cfg->db_path);
	cfg->db_path = xasprintf("%s/postdoc.db", tmpdir);
	free(cfg->template_dir);
	cfg->template_dir = xstrdup(TOP_SRCDIR "/templates");
	free(cfg->intake_domain);
	cfg->intake_domain = xstrdup("dossiers.example");
	cfg->accounts[0] = (struct pd_account_conf){ .name = xstrdup("acme"),
	    .legal_name = xstrdup("ACME SAS"),
	    .legal_address = xstrdup("1 rue de la Paix, 75002 Paris"),
	    .from_name = xstrdup("Claire Dubois"),
	    .from_addr = xstrdup("docs@acme.example") };
	cfg->account_count = 1;
	setup_in(cfg->db_path);
	ck_assert_msg(outq_ctx_new(cfg, NULL, &q, err) == 0, "%s", err);
	env.cfg = cfg;
	env.q = q;
}

static void
teardown_queue(void)
{
	outq_ctx_free(&q);
	dossier_conn_close(&st);
	config_free(&cfg);
	tl_rmtree(tmpdir);
}

/* A document of a message of dossier dossier_id, filed under item_id
 * (0: none). */
static int64_t
add_doc_in(int64_t dossier_id, int64_t message_id, int64_t item_id)
{
	static int part;
	char path[16], name[32];
	struct store_document d = {
		.account_id = acme, .dossier_id = dossier_id,
		.message_id = message_id,
		.filename = name, .stored_name = name,
		.declared_type = "application/pdf",
		.sniffed_type = "application/pdf", .size = 3, .sha256 = SHA_A,
		.part_path = path, .item_id = item_id,
	};
	int64_t id = 0;

	snprintf(path, sizeof(path), "%d", ++part);
	snprintf(name, sizeof(name), "scan-%d.pdf", part);
	ck_assert_msg(store_document_add(st, &d, &id, err) == 0, "%s", err);
	if (item_id != 0)
		ck_assert_int_eq(store_item_refresh(st, item_id, NULL, err), 0);
	return id;
}

static int64_t
add_doc(int64_t item_id)
{
	return add_doc_in(dos, msg, item_id);
}

static const char *
state_of(const struct store_item *it)
{
	static struct store_item now;

	ck_assert_int_eq(store_item_by_id(st, acme, it->id, &now, err), 1);
	return now.state;
}

static struct store_doc_row
doc(int64_t id)
{
	struct store_doc_row r;

	ck_assert_int_eq(store_document_get(st, acme, id, &r, err), 1);
	return r;
}

struct events {
	char kind[64][64];
	char detail[64][1536];
	int n;
};

static int
events_cb(const struct store_event_row *e, void *ctx)
{
	struct events *l = ctx;

	ck_assert_int_lt(l->n, 64);
	snprintf(l->kind[l->n], sizeof(l->kind[0]), "%s", e->kind);
	snprintf(l->detail[l->n++], sizeof(l->detail[0]), "%s", e->detail);
	return 0;
}

static struct events *
events(void)
{
	static struct events l;

	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(store_event_list(st, acme, dos, events_cb, &l, err),
	    0);
	return &l;
}

/* How many events of kind; *detail_r the last one's detail. */
static int
count(const char *kind, const char **detail_r)
{
	struct events *l = events();
	int i, n = 0;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->kind[i], kind) == 0) {
			n++;
			if (detail_r != NULL)
				*detail_r = l->detail[i];
		}
	return n;
}

/* ---- assign ---- */

START_TEST(test_assign)
{
	struct dossier_review r;
	int64_t d = add_doc(0);
	const char *detail;
	char want[256];

	ck_assert_str_eq(state_of(&id_card), "requested");
	ck_assert_msg(dossier_document_assign(&env, acme, d, "id-card", &r,
	    err) == 0, "%s", err);
	ck_assert_int_eq(r.unchanged, 0);
	ck_assert_int_eq(r.completed, 0);
	ck_assert_int_eq(r.doc.item_id, id_card.id);
	ck_assert_str_eq(r.doc.item_slug, "id-card");
	ck_assert_int_eq(r.item.id, id_card.id);
	ck_assert_str_eq(r.item.state, "received");
	ck_assert_str_eq(state_of(&id_card), "received");
	ck_assert_int_eq(count("document.assigned", &detail), 1);
	snprintf(want, sizeof(want), "document=%lld item=id-card from=none "
	    "by=cli:alice", (long long)d);
	ck_assert_str_eq(detail, want);
	ck_assert_int_eq(count("item.received", &detail), 1);
	snprintf(want, sizeof(want), "item=id-card document=%lld "
	    "state=received", (long long)d);
	ck_assert_str_eq(detail, want);
	/* again: unchanged, nothing recorded; by id: the same item */
	snprintf(want, sizeof(want), "%lld", (long long)id_card.id);
	ck_assert_int_eq(dossier_document_assign(&env, acme, d, want, &r, err),
	    0);
	ck_assert_int_eq(r.unchanged, 1);
	ck_assert_int_eq(r.item.id, id_card.id);
	ck_assert_int_eq(count("document.assigned", NULL), 1);
	/* a second document under a received item: no second item.received */
	ck_assert_int_eq(dossier_document_assign(&env, acme, add_doc(0),
	    "id-card", &r, err), 0);
	ck_assert_int_eq(count("item.received", NULL), 1);
	/* an unknown item: not found, nothing changed */
	ck_assert_int_eq(dossier_document_assign(&env, acme, d, "payslip", &r,
	    err), DOSSIER_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(err, "payslip"));
	ck_assert_int_eq(doc(d).item_id, id_card.id);
	ck_assert_int_eq(count("document.assigned", NULL), 2);
}
END_TEST

START_TEST(test_move_unassign)
{
	struct dossier_review r;
	int64_t d = add_doc(id_card.id);
	const char *detail;
	char want[256];

	ck_assert_str_eq(state_of(&id_card), "received");
	ck_assert_int_eq(dossier_document_assign(&env, acme, d,
	    "PROOF-of-address", &r, err), 0);
	ck_assert_str_eq(state_of(&id_card), "requested");
	ck_assert_str_eq(state_of(&proof), "received");
	ck_assert_str_eq(r.item.slug, "proof-of-address");
	ck_assert_int_eq(count("document.assigned", &detail), 1);
	snprintf(want, sizeof(want), "document=%lld item=proof-of-address "
	    "from=id-card by=cli:alice", (long long)d);
	ck_assert_str_eq(detail, want);
	ck_assert_int_eq(count("item.received", &detail), 1);
	ck_assert_ptr_nonnull(strstr(detail, "item=proof-of-address"));
	/* the review is kept when a document moves */
	ck_assert_int_eq(dossier_document_accept(&env, acme, d, &r, err), 0);
	ck_assert_int_eq(dossier_document_assign(&env, acme, d, "bank-details",
	    &r, err), 0);
	ck_assert_str_eq(r.doc.review, "accepted");
	ck_assert_str_eq(state_of(&proof), "requested");
	ck_assert_str_eq(state_of(&bank), "accepted");
	/* unfiled */
	ck_assert_int_eq(dossier_document_assign(&env, acme, d, "none", &r,
	    err), 0);
	ck_assert_int_eq(r.doc.item_id, 0);
	ck_assert_int_eq(r.item.id, 0);
	ck_assert_str_eq(state_of(&bank), "requested");
	ck_assert_int_eq(count("document.assigned", &detail), 3);
	snprintf(want, sizeof(want), "document=%lld item=none "
	    "from=bank-details by=cli:alice", (long long)d);
	ck_assert_str_eq(detail, want);
	ck_assert_int_eq(dossier_document_assign(&env, acme, d, "none", &r,
	    err), 0);
	ck_assert_int_eq(r.unchanged, 1);
	/* NULL (the API's "item": null) is none too */
	ck_assert_int_eq(dossier_document_assign(&env, acme, d, "id-card", &r,
	    err), 0);
	ck_assert_int_eq(dossier_document_assign(&env, acme, d, NULL, &r,
	    err), 0);
	ck_assert_int_eq(r.unchanged, 0);
	ck_assert_int_eq(r.doc.item_id, 0);
}
END_TEST

START_TEST(test_outstanding)
{
	struct store_item first;
	int64_t n = -1;

	/* requested or rejected, required or not, first in order */
	ck_assert_int_eq(store_item_outstanding(st, dos, &n, &first, err), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(first.slug, "id-card");
	add_doc(id_card.id);
	ck_assert_int_eq(store_item_outstanding(st, dos, &n, &first, err), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(first.slug, "proof-of-address");
	add_doc(proof.id);
	ck_assert_int_eq(store_item_outstanding(st, dos, &n, NULL, err), 0);
	ck_assert_int_eq(n, 1);
}
END_TEST

/* ---- accept ---- */

START_TEST(test_accept)
{
	struct dossier_review r;
	int64_t d = add_doc(0);
	const char *detail;
	char want[256];

	/* unfiled: refused with the way out */
	ck_assert_int_eq(dossier_document_accept(&env, acme, d, &r, err),
	    DOSSIER_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "assign"));
	ck_assert_str_eq(doc(d).review, "pending");
	ck_assert_int_eq(count("document.accepted", NULL), 0);

	ck_assert_int_eq(dossier_document_assign(&env, acme, d, "id-card", &r,
	    err), 0);
	ck_assert_msg(dossier_document_accept(&env, acme, d, &r, err) == 0,
	    "%s", err);
	ck_assert_int_eq(r.unchanged, 0);
	ck_assert_int_eq(r.completed, 0);
	ck_assert_int_eq(r.mail_id, 0);
	ck_assert_str_eq(r.doc.review, "accepted");
	ck_assert_str_eq(r.doc.reviewed_by, "cli:alice");
	ck_assert_int_gt(r.doc.reviewed_at, 0);
	ck_assert_str_eq(r.item.state, "accepted");
	ck_assert_str_eq(state_of(&id_card), "accepted");
	ck_assert_int_eq(count("document.accepted", &detail), 1);
	snprintf(want, sizeof(want), "document=%lld item=id-card by=cli:alice",
	    (long long)d);
	ck_assert_str_eq(detail, want);
	/* again: unchanged, nothing recorded */
	ck_assert_int_eq(dossier_document_accept(&env, acme, d, &r, err), 0);
	ck_assert_int_eq(r.unchanged, 1);
	ck_assert_int_eq(count("document.accepted", NULL), 1);
}
END_TEST

START_TEST(test_completion_once)
{
	struct dossier_review r;
	int64_t a = add_doc(id_card.id), b = add_doc(proof.id);
	int64_t b2 = add_doc(proof.id);
	const char *detail;

	ck_assert_int_eq(dossier_document_accept(&env, acme, a, &r, err), 0);
	ck_assert_int_eq(r.completed, 0);
	ck_assert_int_eq(count("dossier.completed", NULL), 0);
	/* the optional item (nothing received) does not hold it back */
	ck_assert_int_eq(dossier_document_accept(&env, acme, b, &r, err), 0);
	ck_assert_int_eq(r.completed, 1);
	ck_assert_int_eq(r.mail_id, 0);		/* q NULL, not wanted */
	ck_assert_int_eq(count("dossier.completed", &detail), 1);
	ck_assert_str_eq(detail, "");
	ck_assert_str_eq(state_of(&bank), "requested");
	/* a second document of the item accepted: still once */
	ck_assert_int_eq(dossier_document_accept(&env, acme, b2, &r, err), 0);
	ck_assert_int_eq(r.completed, 0);
	/* rejected then accepted again (the rejection as the store records
	 * it: the rejection's message is notify's) */
	ck_assert_int_eq(store_document_review(st, acme, a, "rejected", "cut",
	    "cli:bob", err), 0);
	ck_assert_int_eq(store_item_refresh(st, id_card.id, NULL, err), 0);
	ck_assert_str_eq(state_of(&id_card), "rejected");
	ck_assert_int_eq(dossier_document_accept(&env, acme, a, &r, err), 0);
	ck_assert_int_eq(r.completed, 0);
	ck_assert_str_eq(state_of(&id_card), "accepted");
	/* moving an accepted document away and back: still once */
	ck_assert_int_eq(dossier_document_assign(&env, acme, a, "none", &r,
	    err), 0);
	ck_assert_int_eq(dossier_document_assign(&env, acme, a, "id-card", &r,
	    err), 0);
	ck_assert_int_eq(r.completed, 0);
	ck_assert_int_eq(count("dossier.completed", NULL), 1);
}
END_TEST

START_TEST(test_completion_by_assign)
{
	struct dossier_review r;
	int64_t a = add_doc(id_card.id), b = add_doc(0);

	ck_assert_int_eq(dossier_document_accept(&env, acme, a, &r, err), 0);
	/* an accepted document filed under the last item completes it */
	ck_assert_int_eq(dossier_document_assign(&env, acme, b,
	    "proof-of-address", &r, err), 0);
	ck_assert_int_eq(dossier_document_accept(&env, acme, b, &r, err), 0);
	ck_assert_int_eq(r.completed, 1);
	ck_assert_int_eq(count("dossier.completed", NULL), 1);
}
END_TEST

START_TEST(test_completion_needs_required)
{
	struct store_message m = {
		.account_id = 0, .queue_id = "Q2", .mail_from = "",
		.rcpt_to = "", .subject = "", .size = 1, .sha256 = SHA_A,
		.parse_status = "ok", .anomalies = "",
	};
	struct dossier_review r;
	struct store_item v;
	int64_t d2, m2, a;
	int complete = -1, announced = -1;

	/* a dossier of optional items only is never "complete" */
	ck_assert_int_eq(dossier_create(st, acme, "zoe@example.fr", "R2", NULL,
	    &d2, err), 0);
	ck_assert_int_eq(store_dossier_completion(st, d2, &complete,
	    &announced, err), 0);
	ck_assert_int_eq(complete, 0);
	ck_assert_int_eq(dossier_item_parse("Extra", 0, &v, err), 0);
	ck_assert_int_eq(dossier_items_add(st, acme, d2, &v, 1, NULL, err), 0);
	m.account_id = acme;
	m.dossier_id = d2;
	ck_assert_int_eq(store_message_add(st, &m, &m2, err), 0);
	a = add_doc_in(d2, m2, 0);
	ck_assert_int_eq(dossier_document_assign(&env, acme, a, "extra", &r,
	    err), 0);
	ck_assert_int_eq(dossier_document_accept(&env, acme, a, &r, err), 0);
	ck_assert_int_eq(r.completed, 0);
	ck_assert_str_eq(r.item.state, "accepted");
	ck_assert_int_eq(store_dossier_completion(st, d2, &complete,
	    &announced, err), 0);
	ck_assert_int_eq(complete, 0);
	/* a document of one dossier cannot be filed under another's item */
	ck_assert_int_eq(dossier_document_assign(&env, acme, add_doc(0),
	    "extra", &r, err), DOSSIER_ENOTFOUND);
}
END_TEST

/* ---- refusals: nothing changes ---- */

START_TEST(test_closed_refuses)
{
	struct dossier_review r;
	struct store_dossier dd;
	int64_t a = add_doc(id_card.id), b = add_doc(0), mail = 99;
	int was = 0, n;

	ck_assert_int_eq(dossier_close_with(&env, acme, dos, 0, &was, &dd,
	    &mail, err), 0);
	ck_assert_int_eq(was, 0);
	ck_assert_int_eq(mail, 0);
	ck_assert_str_eq(dd.status, "closed");
	n = events()->n;
	ck_assert_int_eq(dossier_document_accept(&env, acme, a, &r, err),
	    DOSSIER_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "closed"));
	ck_assert_int_eq(dossier_document_assign(&env, acme, b, "id-card", &r,
	    err), DOSSIER_EINVAL);
	ck_assert_int_eq(dossier_document_reject(&env, acme, a, "Cut off", &r,
	    err), DOSSIER_EINVAL);
	ck_assert_str_eq(doc(a).review, "pending");
	ck_assert_int_eq(doc(b).item_id, 0);
	ck_assert_int_eq(events()->n, n);
	/* closing twice is fine */
	ck_assert_int_eq(dossier_close_with(&env, acme, dos, 0, &was, &dd,
	    &mail, err), 0);
	ck_assert_int_eq(was, 1);
}
END_TEST

START_TEST(test_close_refused)
{
	struct store_dossier dd;
	int64_t mail = 99;
	int was = 0;

	/* the contact cannot be told without a queue: nothing closes */
	ck_assert_int_eq(dossier_close_with(&env, acme, dos, 1, &was, &dd,
	    &mail, err), -1);
	ck_assert_int_eq(dossier_get(st, acme, dos, &dd, err), 1);
	ck_assert_str_eq(dd.status, "open");
	/* another account's dossier, or none: not found */
	ck_assert_int_eq(dossier_close_with(&env, other, dos, 0, &was, &dd,
	    &mail, err), DOSSIER_ENOTFOUND);
	ck_assert_int_eq(dossier_close_with(&env, acme, 9999, 0, &was, &dd,
	    &mail, err), DOSSIER_ENOTFOUND);
	ck_assert_int_eq(dossier_get(st, acme, dos, &dd, err), 1);
	ck_assert_str_eq(dd.status, "open");
	/* account 0: any account's (the operator's CLI) */
	ck_assert_int_eq(dossier_close_with(&env, 0, dos, 0, &was, &dd, &mail,
	    err), 0);
	ck_assert_str_eq(dd.status, "closed");
}
END_TEST

START_TEST(test_other_account)
{
	struct dossier_review r;
	int64_t a = add_doc(id_card.id), n = events()->n;

	ck_assert_int_eq(dossier_document_accept(&env, other, a, &r, err),
	    DOSSIER_ENOTFOUND);
	ck_assert_int_eq(dossier_document_assign(&env, other, a, "none", &r,
	    err), DOSSIER_ENOTFOUND);
	ck_assert_int_eq(dossier_document_reject(&env, other, a, "No", &r,
	    err), DOSSIER_ENOTFOUND);
	ck_assert_int_eq(dossier_document_accept(&env, acme, 9999, &r, err),
	    DOSSIER_ENOTFOUND);
	ck_assert_int_eq(dossier_document_accept(&env, 0, a, &r, err),
	    DOSSIER_EINVAL);
	ck_assert_str_eq(doc(a).review, "pending");
	ck_assert_int_eq(doc(a).item_id, id_card.id);
	ck_assert_int_eq(events()->n, n);
}
END_TEST

START_TEST(test_reject_reason)
{
	static const char *const bad[] = {
		"", " ", "  \t ", "Cut off\nat the bottom", "line\r", "a\x01",
		"bad \xc3\x28 utf8",
	};
	struct dossier_review r;
	int64_t a = add_doc(id_card.id), n = events()->n;
	char big[1100];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(dossier_document_reject(&env, acme, a, bad[i], &r,
		    err) == DOSSIER_EINVAL, "\"%s\"", bad[i]);
	ck_assert_int_eq(dossier_document_reject(&env, acme, a, NULL, &r,
	    err), DOSSIER_EINVAL);
	memset(big, 'x', 1001);
	big[1001] = '\0';
	ck_assert_int_eq(dossier_document_reject(&env, acme, a, big, &r, err),
	    DOSSIER_EINVAL);
	ck_assert_str_eq(doc(a).review, "pending");
	ck_assert_str_eq(state_of(&id_card), "received");
	ck_assert_int_eq(events()->n, n);
}
END_TEST

START_TEST(test_reject_without_queue)
{
	struct dossier_review r;
	int64_t a = add_doc(id_card.id), n = events()->n;

	/* a good reason, but the contact cannot be told: nothing changes */
	ck_assert_int_eq(dossier_document_reject(&env, acme, a, "  The scan "
	    "is cut off at the bottom ", &r, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "queue"));
	ck_assert_str_eq(doc(a).review, "pending");
	ck_assert_str_eq(doc(a).review_reason, "");
	ck_assert_str_eq(state_of(&id_card), "received");
	ck_assert_int_eq(events()->n, n);
	ck_assert_int_eq(r.mail_id, 0);
}
END_TEST

/* ---- the store under it ---- */

/* An item's state from its documents' reviews: accepted > pending
 * (received) > rejected > none (requested). */
static const struct {
	const char *reviews[3];
	const char *state, *reason;
} refresh_rows[] = {
	{ { NULL }, "requested", "" },
	{ { "pending" }, "received", "" },
	{ { "rejected" }, "rejected", "r1" },
	{ { "accepted" }, "accepted", "" },
	{ { "rejected", "pending" }, "received", "" },
	{ { "pending", "rejected" }, "received", "" },
	{ { "rejected", "accepted" }, "accepted", "" },
	{ { "accepted", "pending" }, "accepted", "" },
	{ { "rejected", "pending", "accepted" }, "accepted", "" },
	{ { "rejected", "rejected" }, "rejected", "r2" },	/* the latest */
};

START_TEST(test_refresh)
{
	struct store_item it;
	int64_t d;
	int i, changed = -1;

	for (i = 0; i < 3 && refresh_rows[_i].reviews[i] != NULL; i++) {
		char reason[8];

		d = add_doc(0);
		snprintf(reason, sizeof(reason), "r%d", i + 1);
		ck_assert_int_eq(store_document_set_item(st, acme, d, bank.id,
		    err), 0);
		ck_assert_int_eq(store_document_review(st, acme, d,
		    refresh_rows[_i].reviews[i], strcmp(refresh_rows[_i].
		    reviews[i], "rejected") == 0 ? reason : NULL, "t", err),
		    0);
	}
	ck_assert_int_eq(store_item_refresh(st, bank.id, &changed, err), 0);
	ck_assert_int_eq(changed, strcmp(refresh_rows[_i].state,
	    "requested") != 0);
	ck_assert_int_eq(store_item_by_id(st, acme, bank.id, &it, err), 1);
	ck_assert_str_eq(it.state, refresh_rows[_i].state);
	ck_assert_str_eq(it.reason, refresh_rows[_i].reason);
	/* again: nothing moves */
	ck_assert_int_eq(store_item_refresh(st, bank.id, &changed, err), 0);
	ck_assert_int_eq(changed, 0);
}
END_TEST

START_TEST(test_set_item_same_dossier)
{
	struct store_item v;
	int64_t d2, d = add_doc(0);

	/* the store itself never files a document under another dossier's
	 * item, whatever a caller passes */
	ck_assert_int_eq(dossier_create(st, acme, "zoe@example.fr", "R2", NULL,
	    &d2, err), 0);
	ck_assert_int_eq(dossier_item_parse("Lease", 1, &v, err), 0);
	ck_assert_int_eq(dossier_items_add(st, acme, d2, &v, 1, NULL, err), 0);
	ck_assert_int_eq(dossier_item_find(st, acme, d2, "lease", &v, err), 1);
	ck_assert_int_eq(store_document_set_item(st, acme, d, v.id, err), -1);
	ck_assert_int_eq(doc(d).item_id, 0);
	ck_assert_int_eq(store_document_set_item(st, acme, d, 424242, err),
	    -1);
	ck_assert_int_eq(store_document_set_item(st, acme, d, proof.id, err),
	    0);
	ck_assert_int_eq(doc(d).item_id, proof.id);
	ck_assert_int_eq(store_document_set_item(st, acme, d, 0, err), 0);
	ck_assert_int_eq(doc(d).item_id, 0);
}
END_TEST

START_TEST(test_refresh_reason_follows)
{
	struct store_item it;
	int64_t d = add_doc(bank.id);
	int changed = 0;

	ck_assert_int_eq(store_document_review(st, acme, d, "rejected",
	    "blurred", "t", err), 0);
	ck_assert_int_eq(store_item_refresh(st, bank.id, &changed, err), 0);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(store_item_by_id(st, acme, bank.id, &it, err), 1);
	ck_assert_str_eq(it.reason, "blurred");
	/* the same state with another reason is a change */
	ck_assert_int_eq(store_document_review(st, acme, d, "rejected",
	    "cut off", "t", err), 0);
	ck_assert_int_eq(store_item_refresh(st, bank.id, &changed, err), 0);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(store_item_by_id(st, acme, bank.id, &it, err), 1);
	ck_assert_str_eq(it.reason, "cut off");
	/* only a rejected item keeps a reason */
	ck_assert_int_eq(store_document_review(st, acme, d, "accepted", NULL,
	    "t", err), 0);
	ck_assert_int_eq(store_item_refresh(st, bank.id, &changed, err), 0);
	ck_assert_int_eq(store_item_by_id(st, acme, bank.id, &it, err), 1);
	ck_assert_str_eq(it.state, "accepted");
	ck_assert_str_eq(it.reason, "");
}
END_TEST

static int
account_exists(const char *name)
{
	struct store_account a;

	return store_account_get(st, name, &a, err);
}

START_TEST(test_begin_nests)
{
	int64_t id;

	/* a savepoint inside BEGIN rolls back alone */
	ck_assert_int_eq(store_begin(st, err), 0);
	ck_assert_int_eq(store_account_add(st, "outer", "any", &id, err), 0);
	ck_assert_int_eq(store_begin(st, err), 0);
	ck_assert_int_eq(store_account_add(st, "inner", "any", &id, err), 0);
	ck_assert_int_eq(account_exists("inner"), 1);
	store_rollback(st);
	ck_assert_int_eq(account_exists("inner"), 0);
	ck_assert_int_eq(account_exists("outer"), 1);
	/* a second savepoint commits (releases) into the outer one */
	ck_assert_int_eq(store_begin(st, err), 0);
	ck_assert_int_eq(store_account_add(st, "inner2", "any", &id, err), 0);
	ck_assert_int_eq(store_commit(st, err), 0);
	ck_assert_int_eq(store_commit(st, err), 0);
	ck_assert_int_eq(account_exists("outer"), 1);
	ck_assert_int_eq(account_exists("inner2"), 1);
	ck_assert_int_eq(account_exists("inner"), 0);
	/* a released savepoint goes with the outer rollback */
	ck_assert_int_eq(store_begin(st, err), 0);
	ck_assert_int_eq(store_begin(st, err), 0);
	ck_assert_int_eq(store_account_add(st, "gone", "any", &id, err), 0);
	ck_assert_int_eq(store_commit(st, err), 0);
	store_rollback(st);
	ck_assert_int_eq(account_exists("gone"), 0);
	/* and the connection is out of any transaction again */
	ck_assert_int_eq(store_begin(st, err), 0);
	ck_assert_int_eq(store_account_add(st, "last", "any", &id, err), 0);
	ck_assert_int_eq(store_commit(st, err), 0);
	ck_assert_int_eq(account_exists("last"), 1);
}
END_TEST

/* ---- with the outbound queue ---- */

static void
queued(int64_t id, const char *kind)
{
	struct store_outbound o;

	ck_assert_int_gt(id, 0);
	ck_assert_int_eq(store_outbound_get(st, acme, id, &o, err), 1);
	ck_assert_str_eq(o.kind, kind);
	ck_assert_str_eq(o.rcpt, "zoe@example.fr");
	ck_assert_int_eq(o.dossier_id, dos);
}

START_TEST(test_reject_queued)
{
	struct dossier_review r;
	int64_t a = add_doc(id_card.id);
	const char *detail;
	char want[256];

	ck_assert_msg(dossier_document_reject(&env, acme, a, "  The scan is "
	    "cut off at the bottom ", &r, err) == 0, "%s", err);
	queued(r.mail_id, "rejection");
	ck_assert_str_eq(r.doc.review, "rejected");
	ck_assert_str_eq(r.doc.review_reason, "The scan is cut off at the "
	    "bottom");
	ck_assert_str_eq(r.doc.reviewed_by, "cli:alice");
	ck_assert_str_eq(r.item.state, "rejected");
	ck_assert_str_eq(r.item.reason, "The scan is cut off at the bottom");
	ck_assert_int_eq(count("document.rejected", &detail), 1);
	snprintf(want, sizeof(want), "document=%lld item=id-card by=cli:alice "
	    "reason=The scan is cut off at the bottom", (long long)a);
	ck_assert_str_eq(detail, want);
	/* again: unchanged, no second message */
	ck_assert_int_eq(dossier_document_reject(&env, acme, a, "Again", &r,
	    err), 0);
	ck_assert_int_eq(r.unchanged, 1);
	ck_assert_int_eq(r.mail_id, 0);
	ck_assert_int_eq(count("document.rejected", NULL), 1);
	/* an unfiled document may be rejected too */
	a = add_doc(0);
	ck_assert_msg(dossier_document_reject(&env, acme, a, "Unreadable", &r,
	    err) == 0, "%s", err);
	queued(r.mail_id, "rejection");
	ck_assert_int_eq(count("document.rejected", &detail), 2);
	ck_assert_ptr_nonnull(strstr(detail, "item=none"));
}
END_TEST

START_TEST(test_reject_then_accept_once)
{
	struct dossier_review r;
	int64_t a = add_doc(id_card.id), b = add_doc(proof.id), c;

	ck_assert_int_eq(dossier_document_accept(&env, acme, a, &r, err), 0);
	ck_assert_int_eq(dossier_document_accept(&env, acme, b, &r, err), 0);
	ck_assert_int_eq(r.completed, 1);
	ck_assert_int_eq(r.mail_id, 0);		/* the account did not ask */
	/* the accepted ID card turns out unreadable: rejected, asked again */
	ck_assert_msg(dossier_document_reject(&env, acme, a, "Unreadable", &r,
	    err) == 0, "%s", err);
	ck_assert_str_eq(state_of(&id_card), "rejected");
	/* she sends a new one; accepted: complete again, announced once */
	c = add_doc(id_card.id);
	ck_assert_str_eq(state_of(&id_card), "received");
	ck_assert_int_eq(dossier_document_accept(&env, acme, c, &r, err), 0);
	ck_assert_int_eq(r.completed, 0);
	ck_assert_int_eq(count("dossier.completed", NULL), 1);
}
END_TEST

START_TEST(test_completion_message)
{
	struct dossier_review r;
	int64_t a = add_doc(id_card.id), b = add_doc(proof.id);

	cfg->accounts[0].notify_completed = 1;
	ck_assert_int_eq(dossier_document_accept(&env, acme, a, &r, err), 0);
	ck_assert_int_eq(r.mail_id, 0);
	ck_assert_msg(dossier_document_accept(&env, acme, b, &r, err) == 0,
	    "%s", err);
	ck_assert_int_eq(r.completed, 1);
	queued(r.mail_id, "completed");
}
END_TEST

START_TEST(test_completion_message_needs_queue)
{
	struct dossier_review r;
	int64_t a = add_doc(id_card.id), b = add_doc(proof.id);

	/* the account wants the message and no queue can take it: the
	 * accept that would complete the dossier is refused, not recorded,
	 * rather than completing it silently for good */
	cfg->accounts[0].notify_completed = 1;
	ck_assert_int_eq(dossier_document_accept(&env, acme, a, &r, err), 0);
	env.q = NULL;
	ck_assert_int_eq(dossier_document_accept(&env, acme, b, &r, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "queue"));
	ck_assert_str_eq(doc(b).review, "pending");
	ck_assert_int_eq(count("dossier.completed", NULL), 0);
	env.q = q;
	ck_assert_int_eq(dossier_document_accept(&env, acme, b, &r, err), 0);
	ck_assert_int_eq(r.completed, 1);
	queued(r.mail_id, "completed");
}
END_TEST

START_TEST(test_close_notify)
{
	struct store_dossier dd;
	int64_t mail = 0;
	int was = -1;

	ck_assert_msg(dossier_close_with(&env, acme, dos, 1, &was, &dd, &mail,
	    err) == 0, "%s", err);
	ck_assert_int_eq(was, 0);
	ck_assert_str_eq(dd.status, "closed");
	queued(mail, "closing");
	/* closing twice tells her once */
	ck_assert_int_eq(dossier_close_with(&env, acme, dos, 1, &was, &dd,
	    &mail, err), 0);
	ck_assert_int_eq(was, 1);
	ck_assert_int_eq(mail, 0);
}
END_TEST

START_TEST(test_reject_rolled_back)
{
	struct dossier_review r;
	struct store_dossier dd;
	int64_t a = add_doc(id_card.id), n = events()->n, mail = 0;
	int was = -1;

	/* the message cannot be queued (the contact is suppressed): the
	 * review is not recorded either */
	ck_assert_int_eq(store_suppression_add(st, acme, "zoe@example.fr",
	    "5.1.1 no such user", pd_now() + 86400, err), 0);
	ck_assert_int_eq(dossier_document_reject(&env, acme, a, "Unreadable",
	    &r, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "suppressed"));
	ck_assert_str_eq(doc(a).review, "pending");
	ck_assert_str_eq(state_of(&id_card), "received");
	ck_assert_int_eq(events()->n, n);
	/* nor is the closing */
	ck_assert_int_eq(dossier_close_with(&env, acme, dos, 1, &was, &dd,
	    &mail, err), -1);
	ck_assert_int_eq(dossier_get(st, acme, dos, &dd, err), 1);
	ck_assert_str_eq(dd.status, "open");
	/* and the connection is not left inside a transaction */
	ck_assert_int_eq(dossier_document_accept(&env, acme, a, &r, err), 0);
	ck_assert_str_eq(doc(a).review, "accepted");
}
END_TEST

static Suite *
review_suite(void)
{
	Suite *s = suite_create("dossier_review");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_assign);
	tcase_add_test(tc, test_move_unassign);
	tcase_add_test(tc, test_outstanding);
	tcase_add_test(tc, test_accept);
	tcase_add_test(tc, test_completion_once);
	tcase_add_test(tc, test_completion_by_assign);
	tcase_add_test(tc, test_completion_needs_required);
	tcase_add_test(tc, test_closed_refuses);
	tcase_add_test(tc, test_close_refused);
	tcase_add_test(tc, test_other_account);
	tcase_add_test(tc, test_reject_reason);
	tcase_add_test(tc, test_reject_without_queue);
	tcase_add_loop_test(tc, test_refresh, 0,
	    (int)(sizeof(refresh_rows) / sizeof(refresh_rows[0])));
	tcase_add_test(tc, test_refresh_reason_follows);
	tcase_add_test(tc, test_set_item_same_dossier);
	tcase_add_test(tc, test_begin_nests);
	suite_add_tcase(s, tc);

	tc = tcase_create("queue");
	tcase_add_checked_fixture(tc, setup_queue, teardown_queue);
	tcase_add_test(tc, test_reject_queued);
	tcase_add_test(tc, test_reject_then_accept_once);
	tcase_add_test(tc, test_completion_message);
	tcase_add_test(tc, test_completion_message_needs_queue);
	tcase_add_test(tc, test_close_notify);
	tcase_add_test(tc, test_reject_rolled_back);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(review_suite());
}

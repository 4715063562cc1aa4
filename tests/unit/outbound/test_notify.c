/*
 * test_notify.c - the rules of notify that decide *when* Postdoc writes,
 * without a store or a queue: the reminder schedule (a table of
 * schedules, reminder counts, clocks and outstanding items -> which
 * reminder, if any), whom a receipt may go to, and how dates, sizes and
 * links are written.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "outbound/notify.h"
#include "outbound/outq.h"
#include "store/store.h"
#include "testlib.h"
#include "lib/util.h"

#define T0 1700000000LL		/* the first invitation */
#define DAY 86400LL

START_TEST(test_reminder_schedule)
{
	static const struct {
		const char *days;
		int64_t invitations, sent, last, outstanding, now;
		int want;		/* reminder number, 0 none */
		int64_t want_days;	/* when want > 0 */
	} rows[] = {
		/* the first reminder: 3 days after the invitation */
		{ "3,7", 1, 0, 0, 2, T0 + 3 * DAY - 1, 0, 0 },
		{ "3,7", 1, 0, 0, 2, T0 + 3 * DAY, 1, 3 },
		{ "3,7", 1, 0, 0, 1, T0 + 5 * DAY, 1, 3 },
		/* nothing required is missing: none, whatever the clock */
		{ "3,7", 1, 0, 0, 0, T0 + 3 * DAY, 0, 0 },
		{ "3,7", 1, 1, T0 + 3 * DAY, 0, T0 + 30 * DAY, 0, 0 },
		/* the second reminder: 7 days after the invitation and 4 (the
		 * gap) after the first */
		{ "3,7", 1, 1, T0 + 3 * DAY, 1, T0 + 6 * DAY, 0, 0 },
		{ "3,7", 1, 1, T0 + 3 * DAY, 1, T0 + 7 * DAY, 2, 7 },
		{ "3, 7", 1, 1, T0 + 3 * DAY, 1, T0 + 7 * DAY, 2, 7 },
		/* the first went late (day 6): the second waits the gap */
		{ "3,7", 1, 1, T0 + 6 * DAY, 1, T0 + 7 * DAY, 0, 0 },
		{ "3,7", 1, 1, T0 + 6 * DAY, 1, T0 + 10 * DAY - 1, 0, 0 },
		{ "3,7", 1, 1, T0 + 6 * DAY, 1, T0 + 10 * DAY, 2, 7 },
		/* `remind --now X` twice: the clock is X, the second waits */
		{ "3,7", 1, 1, T0 + 90 * DAY, 1, T0 + 90 * DAY, 0, 0 },
		{ "3,7", 1, 1, T0 + 90 * DAY, 1, T0 + 94 * DAY, 2, 7 },
		/* an outage: one reminder, the next one gap later, never a
		 * catch-up of everything owed */
		{ "1,2,4", 1, 0, 0, 1, T0 + 30 * DAY, 1, 1 },
		{ "1,2,4", 1, 1, T0 + 30 * DAY, 1, T0 + 30 * DAY, 0, 0 },
		{ "1,2,4", 1, 1, T0 + 30 * DAY, 1, T0 + 31 * DAY - 1, 0, 0 },
		{ "1,2,4", 1, 1, T0 + 30 * DAY, 1, T0 + 31 * DAY, 2, 2 },
		{ "1,2,4", 1, 2, T0 + 31 * DAY, 1, T0 + 32 * DAY, 0, 0 },
		{ "1,2,4", 1, 2, T0 + 31 * DAY, 1, T0 + 33 * DAY, 3, 4 },
		/* the schedule is exhausted, empty, or nobody was invited */
		{ "3,7", 1, 2, T0 + 7 * DAY, 1, T0 + 90 * DAY, 0, 0 },
		{ "", 1, 0, 0, 1, T0 + 90 * DAY, 0, 0 },
		{ "3,7", 0, 0, 0, 1, T0 + 90 * DAY, 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct notify_schedule s = { .days = rows[i].days,
		    .invitations = rows[i].invitations, .invited = T0,
		    .sent = rows[i].sent, .last = rows[i].last,
		    .outstanding = rows[i].outstanding };
		int64_t days = -1;
		int n = notify_reminder_number(&s, rows[i].now, &days);

		ck_assert_msg(n == rows[i].want, "row %zu: reminder %d, want "
		    "%d", i, n, rows[i].want);
		if (rows[i].want > 0)
			ck_assert_msg(days == rows[i].want_days, "row %zu: days "
			    "%lld", i, (long long)days);
	}
}
END_TEST

/* Dates, sizes and links written the way the reader writes them. */
START_TEST(test_words)
{
	static const struct {
		const char *day, *locale, *want;
		int rc;
	} days[] = {
		{ "2026-12-20", "fr", "20 d\xC3\xA9" "cembre 2026", 0 },
		{ "2026-12-20", "en", "20 December 2026", 0 },
		{ "2027-05-01", "fr", "1er mai 2027", 0 },
		{ "2027-08-01", "en", "1 August 2027", 0 },
		{ "2028-02-29", "fr", "29 f\xC3\xA9vrier 2028", 0 },
		{ "2026-12-20", "de", "2026-12-20", 0 },
		{ "2026-02-30", "fr", "2026-02-30", -1 },
		{ "soon", "en", "soon", -1 },
	};
	static const struct {
		int64_t n;
		const char *locale, *want;
	} sizes[] = {
		{ 5 * 1024 * 1024, "fr", "5 Mo" }, { 5 * 1024 * 1024, "en",
		"5 MB" }, { 1536 * 1024, "fr", "1,5 Mo" }, { 1536 * 1024,
		"en", "1.5 MB" }, { 500 * 1024, "en", "500 KB" }, { 12, "fr",
		"12 octets" }, { 12, "en", "12 bytes" },
	};
	static const struct {
		const char *addr, *subject, *want;
	} links[] = {
		{ "d-abc+id-card@in.example", "K-1 - ID card",
		  "mailto:d-abc+id-card@in.example?subject=K-1%20-%20ID%20card" },
		/* UTF-8 octets, '&', '+', '=', '#', '?' and '%' never leak */
		{ "d-abc@in.example", "Pi\xC3\xA8" "ce d'identit\xC3\xA9 & co+1=2#?%",
		  "mailto:d-abc@in.example?subject=Pi%C3%A8ce%20d%27identit%C3%A9"
		  "%20%26%20co%2B1%3D2%23%3F%25" },
		{ "d-abc@in.example", "", "mailto:d-abc@in.example" },
	};
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
		ck_assert_int_eq(notify_day_text(days[i].day, days[i].locale,
		    out, sizeof(out)), days[i].rc);
		ck_assert_str_eq(out, days[i].want);
	}
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		notify_size_text(sizes[i].n, sizes[i].locale, out, sizeof(out));
		ck_assert_str_eq(out, sizes[i].want);
	}
	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		ck_assert_int_eq(notify_mailto(links[i].addr, links[i].subject,
		    out, sizeof(out)), 0);
		ck_assert_str_eq(out, links[i].want);
	}
	ck_assert_int_eq(notify_mailto(links[0].addr, links[0].subject, out,
	    20), -1);
}
END_TEST

/* An item's address: the plain one when the local part would pass 64. */
START_TEST(test_item_address)
{
	struct store_dossier d;
	struct store_item it;
	char out[512];

	memset(&d, 0, sizeof(d));
	memset(&it, 0, sizeof(it));
	snprintf(d.intake_local, sizeof(d.intake_local), "d-%s",
	    "abcdefghijklmnopqrstuvwxyz");
	snprintf(it.slug, sizeof(it.slug), "id-card");
	notify_item_address("in.example", &d, &it, out, sizeof(out));
	ck_assert_str_eq(out, "d-abcdefghijklmnopqrstuvwxyz+id-card@in.example");
	notify_item_address("in.example", &d, NULL, out, sizeof(out));
	ck_assert_str_eq(out, "d-abcdefghijklmnopqrstuvwxyz@in.example");
	/* 28 + 1 + 35 = 64 octets: still the item's; 65: the plain one */
	snprintf(it.slug, sizeof(it.slug), "%035d", 0);
	notify_item_address("in.example", &d, &it, out, sizeof(out));
	ck_assert_ptr_nonnull(strchr(out, '+'));
	snprintf(it.slug, sizeof(it.slug), "%036d", 0);
	notify_item_address("in.example", &d, &it, out, sizeof(out));
	ck_assert_str_eq(out, "d-abcdefghijklmnopqrstuvwxyz@in.example");
}
END_TEST

START_TEST(test_receipt_vouched)
{
	static const struct {
		const char *contact, *policy, *sender;
		int want;
	} rows[] = {
		{ "ann@x.example", "contact", "ann@x.example", 1 },
		{ "Ann@X.example", "contact", "ann@x.EXAMPLE", 1 },
		{ "ann@x.example", "contact", "bob@x.example", 0 },
		{ "ann@x.example", "contact", "ann@x.example.evil", 0 },
		{ "ann@x.example", "any", "bob@y.example", 0 },
		{ "ann@x.example", "domains:x.example", "bob@x.example", 1 },
	};
	struct store_dossier d;
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		memset(&d, 0, sizeof(d));
		snprintf(d.contact, sizeof(d.contact), "%s", rows[i].contact);
		snprintf(d.sender_policy, sizeof(d.sender_policy), "%s",
		    rows[i].policy);
		ck_assert_msg(notify_vouched(&d, rows[i].sender) ==
		    rows[i].want, "row %zu", i);
	}
}
END_TEST

/* ---- the messages themselves: a real store and queue ---- */

static char tmpdir[256];
static struct pd_config *cfg;
static struct store *st;
static struct outq_ctx *q;
static struct notify_env env;
static struct store_dossier dz;
static int64_t acme, piece, domicile, rib;
static char err[PD_ERRLEN];

#define LOCAL "d-abcdefghijklmnopqrstuvwxyz"
#define PLAIN LOCAL "@in.example"
#define A_PIECE LOCAL "+piece-d-identite@in.example"
#define A_DOMICILE LOCAL "+justificatif-de-domicile@in.example"
#define A_RIB LOCAL "+rib@in.example"

static int64_t
add_item(const char *slug, const char *label, int required,
    const char *types, int64_t max)
{
	struct store_item it;
	int64_t id = 0;

	memset(&it, 0, sizeof(it));
	snprintf(it.slug, sizeof(it.slug), "%s", slug);
	snprintf(it.label, sizeof(it.label), "%s", label);
	snprintf(it.types, sizeof(it.types), "%s", types);
	it.required = required;
	it.max_size = max;
	ck_assert_msg(store_item_add(st, acme, dz.id, &it, &id, err) == 0,
	    "%s", err);
	return id;
}

static void
reload(void)
{
	ck_assert_int_eq(store_dossier_get(st, acme, dz.id, &dz, err), 1);
}

static void
msg_setup(void)
{
	char e[PD_ERRLEN];
	int64_t did = 0;

	tl_tmpdir(tmpdir, sizeof(tmpdir), "notify");
	ck_assert_msg(config_load(NULL, &cfg, e, sizeof(e)) == 0, "%s", e);
	free(cfg->var_dir);
	cfg->var_dir = xasprintf("%s/var", tmpdir);
	free(cfg->db_path);
	cfg->db_path = xasprintf("%s/postdoc.db", tmpdir);
	free(cfg->template_dir);
	cfg->template_dir = xstrdup(TOP_SRCDIR "/templates");
	free(cfg->intake_domain);
	cfg->intake_domain = xstrdup("in.example");
	free(cfg->reminder_days);
	cfg->reminder_days = xstrdup("3,7");
	cfg->receipts = 1;
	cfg->accounts[0] = (struct pd_account_conf){ .name = xstrdup("acme"),
	    .legal_name = xstrdup("ACME SAS"),
	    .legal_address = xstrdup("1 rue de la Paix, 75002 Paris"),
	    .from_name = xstrdup("Claire Dubois"),
	    .from_addr = xstrdup("docs@acme.example") };
	cfg->account_count = 1;
	st = tl_store_open(cfg->db_path, "normal");
	ck_assert_msg(store_account_add(st, "acme", "contact", &acme, err) ==
	    0, "%s", err);
	ck_assert_msg(store_dossier_create(st, acme, "zoe@example.fr", "K-42",
	    LOCAL, &did, err) == 0, "%s", err);
	ck_assert_msg(store_contact_set_person(st, acme, "zoe@example.fr",
	    "Zo\xC3\xA9 Martin", "fr", err) == 0, "%s", err);
	dz.id = did;
	piece = add_item("piece-d-identite", "Pi\xC3\xA8" "ce d'identit\xC3\xA9",
	    1, "PDF, JPEG", 5 * 1024 * 1024);
	domicile = add_item("justificatif-de-domicile",
	    "Justificatif de domicile", 1, "", 0);
	rib = add_item("rib", "RIB", 0, "", 0);
	reload();
	ck_assert_msg(outq_ctx_new(cfg, NULL, &q, err) == 0, "%s", err);
	env = (struct notify_env){ cfg, st, q };
}

static void
msg_teardown(void)
{
	outq_ctx_free(&q);
	store_close(&st);
	config_free(&cfg);
	tl_rmtree(tmpdir);
}

/* Quoted-printable undone (bodies are QP): "=\r\n" joins, "=XX" is XX. */
static char *
qp_decode(const char *in)
{
	char *out = xmalloc(strlen(in) + 1), *o = out;
	unsigned v;

	while (*in != '\0') {
		if (in[0] == '=' && in[1] == '\r' && in[2] == '\n')
			in += 3;
		else if (in[0] == '=' && sscanf(in + 1, "%2X", &v) == 1 &&
		    strspn(in + 1, "0123456789ABCDEF") >= 2) {
			*o++ = (char)v;
			in += 3;
		} else
			*o++ = *in++;
	}
	*o = '\0';
	return out;
}

struct last_row {
	const char *kind;
	struct store_outbound o;
	int n;
};

static int
last_cb(const struct store_outbound *o, void *ctx)
{
	struct last_row *l = ctx;

	if (strcmp(o->kind, l->kind) == 0) {
		if (l->n == 0 || o->id > l->o.id)
			l->o = *o;
		l->n++;
	}
	return 0;
}

/* How many `kind` messages the dossier has; the last one, decoded, in
 * *msg_r (NULL: not wanted).  NOTIFY_DUMP=dir keeps a copy to read. */
static int
queued(const char *kind, char **msg_r)
{
	struct last_row l = { kind, { 0 }, 0 };
	char path[1024], *raw;
	const char *dump = getenv("NOTIFY_DUMP");
	FILE *f;

	ck_assert_msg(store_outbound_list(st, acme, dz.id, NULL, last_cb, &l,
	    err) == 0, "%s", err);
	if (msg_r == NULL || l.n == 0)
		return l.n;
	snprintf(path, sizeof(path), "%s/blobs/%.2s/%s", cfg->var_dir,
	    l.o.sha256, l.o.sha256);
	raw = tl_slurp(path, NULL);
	ck_assert_ptr_nonnull(raw);
	*msg_r = qp_decode(raw);
	if (dump != NULL) {
		snprintf(path, sizeof(path), "%s/%s-%lld.eml", dump, kind,
		    (long long)l.o.id);
		if ((f = fopen(path, "w")) != NULL) {
			fputs(raw, f);
			fclose(f);
		}
	}
	free(raw);
	return l.n;
}

#define HAS(m, s) ck_assert_msg(strstr((m), (s)) != NULL, \
    "no [%s] in:\n%s", (s), (m))
#define HASNT(m, s) ck_assert_msg(strstr((m), (s)) == NULL, \
    "[%s] in:\n%s", (s), (m))

/* A document under an item, reviewed or not, the item's state after. */
static int64_t
file_doc(const char *name, int64_t item, const char *review,
    const char *reason)
{
	static int n;
	char sha[65], qid[32];
	struct store_message m;
	struct store_document d;
	int64_t mid = 0, did = 0;
	int changed;

	snprintf(sha, sizeof(sha), "%064d", ++n);
	snprintf(qid, sizeof(qid), "Q%d", n);
	memset(&m, 0, sizeof(m));
	m = (struct store_message){ .account_id = acme, .dossier_id = dz.id,
	    .queue_id = qid, .mail_from = "zoe@example.fr", .rcpt_to = PLAIN,
	    .helo = "x", .client_ip = "127.0.0.1", .message_id = "",
	    .subject = "", .from_header = "", .size = 10, .sha256 = sha,
	    .parse_status = "ok", .anomalies = "", .received = pd_now() };
	ck_assert_msg(store_message_add(st, &m, &mid, err) == 0, "%s", err);
	d = (struct store_document){ .account_id = acme, .dossier_id = dz.id,
	    .message_id = mid, .filename = name, .stored_name = qid,
	    .declared_type = "application/pdf", .sniffed_type =
	    "application/pdf", .size = 120000, .sha256 = sha, .part_path =
	    "2", .item_id = item };
	ck_assert_msg(store_document_add(st, &d, &did, err) == 0, "%s", err);
	if (review != NULL)
		ck_assert_msg(store_document_review(st, acme, did, review,
		    reason, "cli:test", err) == 0, "%s", err);
	ck_assert_msg(store_item_refresh(st, item, &changed, err) == 0, "%s",
	    err);
	return did;
}

/* The invitation: her language and name, each item its own address and
 * link, the due date in French, signed by the account, never Postdoc. */
START_TEST(test_invitation_items)
{
	struct notify_invite_req req = { NULL, NULL, "2026-12-20" };
	int64_t id = 0;
	char *m, *body;

	ck_assert_msg(notify_invite(&env, &dz, &req, &id, err) == 0, "%s",
	    err);
	ck_assert_int_eq(queued("invitation", &m), 1);
	HAS(m, "Reply-To: " PLAIN);
	HAS(m, " <zoe@example.fr>\r\n");
	body = strstr(m, "\r\n\r\n");
	HAS(body, "Bonjour Zo\xC3\xA9 Martin,");
	HAS(body, "  - Pi\xC3\xA8" "ce d'identit\xC3\xA9 : \xC3\xA0 envoyer "
	    "\xC3\xA0\r\n    " A_PIECE "\r\n    (PDF, JPEG, 5 Mo maximum)");
	HAS(body, "  - Justificatif de domicile : \xC3\xA0 envoyer \xC3\xA0"
	    "\r\n    " A_DOMICILE "\r\n");
	HAS(body, "  - RIB (facultatif) : \xC3\xA0 envoyer \xC3\xA0\r\n    "
	    A_RIB);
	HAS(body, "au plus tard le\r\n20 d\xC3\xA9" "cembre 2026.");
	HAS(body, "href=\"mailto:" A_PIECE "?subject=K-42%20-%20Pi%C3%A8"
	    "ce%20d%27identit%C3%A9\"");
	HAS(body, "Claire Dubois\r\nACME SAS\r\n1 rue de la Paix");
	HASNT(body, "Postdoc");
	HASNT(body, "ignored");
	free(m);
	/* the due date is recorded; the request's names are not */
	reload();
	ck_assert_str_eq(dz.due, "2026-12-20");
}
END_TEST

/* The dry run's draft: the invitation as it would go, with an item the
 * caller is about to add and the due date as if recorded, written
 * nowhere (no row, no due date, no spool file). */
START_TEST(test_invitation_draft)
{
	struct notify_invite_req req = { NULL, "en", "2026-12-20" };
	struct store_item extra;
	struct notify_draft dr;
	json_t *it;
	size_t i;
	int found = 0;

	memset(&extra, 0, sizeof(extra));
	snprintf(extra.label, sizeof(extra.label), "Payslip");
	snprintf(extra.slug, sizeof(extra.slug), "payslip");
	snprintf(extra.state, sizeof(extra.state), "requested");
	extra.required = 1;
	ck_assert_msg(notify_invite_draft(&env, &dz, &req, &extra, 1, &dr,
	    err) == 0, "%s", err);
	ck_assert_str_eq(dr.to, "zoe@example.fr");
	ck_assert_str_eq(dr.reply_to, PLAIN);
	ck_assert_str_eq(dr.locale, "en");	/* --locale wins */
	ck_assert_str_eq(dr.refused, "");
	HAS(dr.text, "20 December 2026");
	HAS(dr.text, "Payslip");
	json_array_foreach(dr.items, i, it)
		if (strcmp(json_string_value(json_object_get(it, "slug")),
		    "payslip") == 0)
			found = 1;
	ck_assert_int_eq(found, 1);
	ck_assert_uint_eq(json_array_size(dr.items), 4);
	notify_draft_free(&dr);
	ck_assert_int_eq(queued("invitation", NULL), 0);
	reload();
	ck_assert_str_eq(dz.due, "");
	/* what the real run refuses, the draft refuses */
	req.due = "2026-02-30";
	ck_assert_int_eq(notify_invite_draft(&env, &dz, &req, NULL, 0, &dr,
	    err), -1);
	HAS(err, "2026-02-30");
	req = (struct notify_invite_req){ "no-such", NULL, NULL };
	ck_assert_int_eq(notify_invite_draft(&env, &dz, &req, NULL, 0, &dr,
	    err), -1);
	HAS(err, "no-such");
}
END_TEST

/* Rejection: her name, the file, the item, the reason, the item's address
 * (Reply-To too, so that a reply files the new version under it). */
START_TEST(test_rejection)
{
	struct store_doc_row doc;
	struct store_item it;
	int64_t did, id = 0;
	char *m, *body;
	struct notify_env none = { cfg, st, NULL };

	did = file_doc("scan-cni.pdf", piece, "rejected",
	    "Le scan est coup\xC3\xA9 en bas");
	ck_assert_int_eq(store_document_get(st, acme, did, &doc, err), 1);
	ck_assert_int_eq(store_item_by_id(st, acme, piece, &it, err), 1);
	ck_assert_int_eq(notify_rejection(&none, &dz, &doc, &it,
	    "Le scan est coup\xC3\xA9 en bas", &id, err), -1);
	ck_assert_int_eq(queued("rejection", NULL), 0);
	ck_assert_msg(notify_rejection(&env, &dz, &doc, &it,
	    "Le scan est coup\xC3\xA9 en bas", &id, err) == 0, "%s", err);
	ck_assert_int_gt(id, 0);
	ck_assert_int_eq(queued("rejection", &m), 1);
	HAS(m, "Reply-To: " A_PIECE);
	body = strstr(m, "\r\n\r\n");
	HAS(body, "Bonjour Zo\xC3\xA9 Martin,");
	HAS(body, "\xC2\xAB scan-cni.pdf \xC2\xBB");
	HAS(body, "\xC2\xAB Pi\xC3\xA8" "ce d'identit\xC3\xA9 \xC2\xBB");
	HAS(body, "\r\n  Le scan est coup\xC3\xA9 en bas\r\n");
	HAS(body, "\r\n  " A_PIECE "\r\n");
	HAS(body, "href=\"mailto:" A_PIECE "?subject=");
	HASNT(body, "Postdoc");
	free(m);
}
END_TEST

/* Reminders list the required items still missing (a rejected one with
 * its reason), never a received or optional one; none when nothing
 * required is missing; never two closer than the gap. */
START_TEST(test_reminders_outstanding)
{
	struct notify_invite_req req = { NULL, NULL, NULL };
	int64_t t0 = pd_now(), id;
	unsigned n = 9;
	char *m, *body;

	ck_assert_msg(notify_invite(&env, &dz, &req, &id, err) == 0, "%s",
	    err);
	file_doc("scan-cni.pdf", piece, "rejected", "Illisible");
	ck_assert_msg(notify_reminders(&env, t0 + 3 * DAY - 60, &n, err) ==
	    0, "%s", err);
	ck_assert_uint_eq(n, 0);
	ck_assert_msg(notify_reminders(&env, t0 + 3 * DAY + 60, &n, err) ==
	    0, "%s", err);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(queued("reminder", &m), 1);
	HAS(m, "Reply-To: " PLAIN);
	body = strstr(m, "\r\n\r\n");
	HAS(body, "Bonjour Zo\xC3\xA9 Martin,");
	HAS(body, A_PIECE);
	HAS(body, "Illisible");
	HAS(body, A_DOMICILE);
	HASNT(body, A_RIB);
	free(m);
	reload();
	ck_assert_int_eq(dz.reminded_at, t0 + 3 * DAY + 60);
	/* run again at the same time, or a day later: nothing */
	ck_assert_int_eq(notify_reminders(&env, t0 + 3 * DAY + 60, &n, err),
	    0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(notify_reminders(&env, t0 + 4 * DAY, &n, err), 0);
	ck_assert_uint_eq(n, 0);
	/* the proof of address arrives: the next lists only the ID */
	file_doc("facture.pdf", domicile, NULL, NULL);
	ck_assert_int_eq(notify_reminders(&env, t0 + 8 * DAY, &n, err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(queued("reminder", &m), 2);
	body = strstr(m, "\r\n\r\n");
	HAS(body, A_PIECE);
	HASNT(body, A_DOMICILE);
	HASNT(body, A_RIB);
	free(m);
}
END_TEST

START_TEST(test_reminders_none_when_nothing_missing)
{
	struct notify_invite_req req = { NULL, NULL, NULL };
	int64_t t0 = pd_now(), id;
	unsigned n = 9;

	ck_assert_int_eq(notify_invite(&env, &dz, &req, &id, err), 0);
	file_doc("cni.pdf", piece, "accepted", NULL);
	file_doc("facture.pdf", domicile, NULL, NULL);
	/* the optional RIB is still requested: no reason to chase */
	ck_assert_int_eq(notify_reminders(&env, t0 + 30 * DAY, &n, err), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(queued("reminder", NULL), 0);
}
END_TEST

/* The plan `remind --dry-run` prints and the real run acts on: one
 * decision for the dossier, why not now and until when, and nothing
 * written while deciding. */
struct plan_seen {
	int n, number;
	char why[64];
	int64_t next;
	size_t labels;
};

static int
plan_cb(const struct notify_remind_plan *p, void *ctx)
{
	struct plan_seen *s = ctx;

	s->n++;
	s->number = p->number;
	snprintf(s->why, sizeof(s->why), "%s", p->why ? p->why : "");
	s->next = p->next;
	s->labels = json_array_size(p->labels);
	return 0;
}

static struct plan_seen
plan_at(int64_t now)
{
	struct plan_seen s;

	memset(&s, 0, sizeof(s));
	ck_assert_msg(notify_reminders_plan(&env, now, 1, plan_cb, &s, err) ==
	    0, "%s", err);
	ck_assert_int_eq(s.n, 1);
	return s;
}

START_TEST(test_reminders_plan)
{
	struct notify_invite_req req = { NULL, NULL, NULL };
	int64_t t0 = pd_now(), id, clock;
	unsigned n = 9;
	struct plan_seen s;

	s = plan_at(t0 + 30 * DAY);
	ck_assert_str_eq(s.why, "not invited yet");
	ck_assert_msg(notify_invite(&env, &dz, &req, &id, err) == 0, "%s",
	    err);
	s = plan_at(t0 + DAY);
	ck_assert_int_eq(s.number, 0);
	ck_assert_str_eq(s.why, "not due yet");
	ck_assert_int_ge(s.next, t0 + 3 * DAY);
	ck_assert_int_le(s.next, t0 + 3 * DAY + 60);
	ck_assert_uint_eq(s.labels, 2);		/* the two required */
	s = plan_at(t0 + 3 * DAY + 60);
	ck_assert_int_eq(s.number, 1);
	ck_assert_uint_eq(s.labels, 2);
	/* deciding wrote nothing: no reminder, the clock where it was */
	clock = dz.reminded_at;
	reload();
	ck_assert_int_eq(dz.reminded_at, clock);
	ck_assert_int_eq(queued("reminder", NULL), 0);
	/* the real run does what the plan said, and moves the clock */
	ck_assert_int_eq(notify_reminders(&env, t0 + 3 * DAY + 60, &n, err),
	    0);
	ck_assert_uint_eq(n, 1);
	s = plan_at(t0 + 4 * DAY);
	ck_assert_str_eq(s.why, "not due yet");
	ck_assert_int_eq(s.next, t0 + 3 * DAY + 60 + 4 * DAY);
	file_doc("cni.pdf", piece, "accepted", NULL);
	file_doc("facture.pdf", domicile, NULL, NULL);
	s = plan_at(t0 + 30 * DAY);
	ck_assert_str_eq(s.why, "nothing outstanding");
	ck_assert_uint_eq(s.labels, 0);
}
END_TEST

/* The receipt: Reply-To the dossier, each file's item, what is missing;
 * only to a sender the policy vouches for. */
START_TEST(test_receipt_items)
{
	json_t *got = json_pack("[{s:s, s:i, s:s, s:s}, {s:s, s:i}]",
	    "filename", "cni.pdf", "size", 120 * 1024, "item",
	    "piece-d-identite", "item_label", "Pi\xC3\xA8" "ce d'identit\xC3\xA9",
	    "filename", "<b>autre</b>.pdf", "size", 12);
	char *m, *body;

	ck_assert_int_eq(notify_receipt(&env, &dz, "eve@evil.example", got,
	    err), 0);
	ck_assert_int_eq(notify_receipt(&env, &dz, "Zoe@Example.fr", got,
	    err), 1);
	ck_assert_int_eq(queued("receipt", &m), 1);
	HAS(m, "Reply-To: " PLAIN);
	body = strstr(m, "\r\n\r\n");
	HAS(body, "Bonjour Zo\xC3\xA9 Martin,");
	HAS(body, "  - cni.pdf (120 Ko), re\xC3\xA7u pour \xC2\xAB Pi\xC3\xA8"
	    "ce d'identit\xC3\xA9 \xC2\xBB\r\n");
	HAS(body, "  - <b>autre</b>.pdf (12 octets)\r\n");
	/* in HTML a file name is text, never markup or a link */
	HAS(body, "&lt;b&gt;autre&lt;/b&gt;.pdf");
	HAS(body, "Il nous manque encore");
	HAS(body, A_DOMICILE);
	free(m);
	json_decref(got);
}
END_TEST

START_TEST(test_completed_closing)
{
	int64_t id = 0;
	char *m;

	ck_assert_int_eq(notify_wants_completion(cfg, NULL, "acme"), 0);
	ck_assert_int_eq(notify_wants_completion(cfg, NULL, "other"), 0);
	cfg->accounts[0].notify_completed = 1;
	ck_assert_int_eq(notify_wants_completion(cfg, NULL, "acme"), 1);
	ck_assert_msg(notify_completed(&env, &dz, &id, err) == 0, "%s", err);
	ck_assert_int_eq(queued("completed", &m), 1);
	HAS(m, "Reply-To: " PLAIN);
	HAS(m, "Bonjour Zo\xC3\xA9 Martin,");
	HAS(m, "est complet");
	free(m);
	ck_assert_msg(notify_closing(&env, &dz, &id, err) == 0, "%s", err);
	ck_assert_int_eq(queued("closing", &m), 1);
	HAS(m, "cl\xC3\xB4tur\xC3\xA9");
	free(m);
}
END_TEST

/* Without a name or a language: a neutral greeting, the account's or
 * the default language, English dates. */
START_TEST(test_english_no_name)
{
	struct notify_invite_req req = { NULL, NULL, "2026-12-20" };
	int64_t id = 0;
	char *m, *body;

	ck_assert_msg(store_contact_set_person(st, acme, "zoe@example.fr", "",
	    "en", err) == 0, "%s", err);
	reload();
	ck_assert_int_eq(notify_invite(&env, &dz, &req, &id, err), 0);
	ck_assert_int_eq(queued("invitation", &m), 1);
	body = strstr(m, "\r\n\r\n");
	HAS(body, "Hello,\r\n");
	HAS(body, "by 20 December 2026.");
	HAS(body, "  - RIB (optional): send to\r\n    " A_RIB);
	free(m);
}
END_TEST

static Suite *
notify_suite(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("rules");

	tcase_add_test(tc, test_reminder_schedule);
	tcase_add_test(tc, test_words);
	tcase_add_test(tc, test_item_address);
	tcase_add_test(tc, test_receipt_vouched);
	suite_add_tcase(s, tc);
	tc = tcase_create("messages");
	tcase_add_checked_fixture(tc, msg_setup, msg_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_invitation_items);
	tcase_add_test(tc, test_invitation_draft);
	tcase_add_test(tc, test_rejection);
	tcase_add_test(tc, test_reminders_outstanding);
	tcase_add_test(tc, test_reminders_none_when_nothing_missing);
	tcase_add_test(tc, test_reminders_plan);
	tcase_add_test(tc, test_receipt_items);
	tcase_add_test(tc, test_completed_closing);
	tcase_add_test(tc, test_english_no_name);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(notify_suite());
}

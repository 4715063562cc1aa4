/*
 * test_privacy.c - the rules of privacy.c: the retention purge per data
 * class (raw messages, documents of closed dossiers, bodies of settled
 * outbound mail, history, log files) against privacy.*_days, 0 meaning
 * forever; legal holds keeping a class or an account; a dry run that
 * changes nothing; erasure's reach and counts; the keyed hash of an
 * erased address, the same whatever its case.  Ages are not faked in
 * the rows: the purge is asked about a later `now`.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "lib/config.h"
#include "lib/util.h"
#include "outbound/outq.h"
#include "privacy/privacy.h"
#include "store/blob.h"
#include "store/store.h"
#include "testlib.h"

#define DAY 86400

static char tmpdir[256];
static struct pd_config *cfg;
static struct store *st;
static struct blob_store *bs;
static struct privacy_env env;
static char err[PD_ERRLEN];
static int64_t acme, beta;

static void
setup(void)
{
	char e[PD_ERRLEN], root[600];

	tl_tmpdir(tmpdir, sizeof(tmpdir), "privacy");
	ck_assert_msg(config_load(NULL, &cfg, e, sizeof(e)) == 0, "%s", e);
	free(cfg->var_dir);
	cfg->var_dir = xasprintf("%s/var", tmpdir);
	free(cfg->db_path);
	cfg->db_path = xasprintf("%s/postdoc.db", tmpdir);
	free(cfg->log_dir);
	cfg->log_dir = xasprintf("%s/log", tmpdir);
	ck_assert_int_eq(mkdir(cfg->log_dir, 0700), 0);
	st = tl_store_open(cfg->db_path, "normal");
	snprintf(root, sizeof(root), "%s/var/blobs", tmpdir);
	ck_assert_msg(blob_store_open(root, &bs, err) == 0, "%s", err);
	env = (struct privacy_env){ cfg, st, bs, "tester" };
	ck_assert_msg(store_account_add(st, "acme", "any", &acme, err) == 0,
	    "%s", err);
	ck_assert_msg(store_account_add(st, "beta", "any", &beta, err) == 0,
	    "%s", err);
}

static void
teardown(void)
{
	blob_store_free(&bs);
	store_close(&st);
	config_free(&cfg);
	tl_rmtree(tmpdir);
}

/* ---- one account's rows of every class ---- */

struct rows {
	int64_t account_id;
	int64_t open_d, closed_d;	/* dossiers */
	int64_t raw_msg;		/* message in the open dossier */
	int64_t doc;			/* document of the closed dossier */
	int64_t sent, queued;		/* outbound */
	char raw_sha[65];		/* raw_msg's blob */
	char log[600];			/* a log file */
};

static void
sha_hex(const char *s, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	ck_assert_int_eq(EVP_Digest(s, strlen(s), md, &len, EVP_sha256(),
	    NULL), 1);
	pd_hex(out, md, len);
}

static int64_t
message(int64_t account_id, int64_t dossier, const char *body, char sha[65])
{
	struct store_message m;
	int64_t id = 0;

	sha_hex(body, sha);
	ck_assert_msg(blob_put_mem(bs, body, strlen(body), sha, err) == 0,
	    "%s", err);
	memset(&m, 0, sizeof(m));
	m.account_id = account_id;
	m.dossier_id = dossier;
	m.queue_id = "Q1";
	m.mail_from = "client@example.org";
	m.rcpt_to = "d-x@intake.example";
	m.helo = m.client_ip = m.message_id = m.subject = m.from_header = "";
	m.size = strlen(body);
	m.sha256 = sha;
	m.parse_status = "ok";
	m.anomalies = "";
	m.received = pd_now();
	ck_assert_msg(store_begin(st, err) == 0 && store_message_add(st, &m,
	    &id, err) == 0 && store_commit(st, err) == 0, "%s", err);
	return id;
}

static int64_t
outbound(struct outq_ctx *q, int64_t account_id, const char *account,
    const char *rcpt, const char *state)
{
	char msg[600];
	int64_t id = 0;
	FILE *f;
	struct outq_item it = { .account_id = account_id, .account = account,
	    .kind = "notice", .rcpt = rcpt, .from_domain = "acme.example",
	    .msg_path = msg, .message_id = "<m@acme.example>" };

	snprintf(msg, sizeof(msg), "%s/out.eml", tmpdir);
	f = fopen(msg, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "From: a@acme.example\r\nTo: %s\r\nSubject: x\r\n\r\n%s "
	    "%s\r\n", rcpt, account, state);
	fclose(f);
	ck_assert_msg(outq_enqueue(q, &it, &id, err) == 0, "%s", err);
	if (strcmp(state, "queued") != 0)
		ck_assert_msg(store_outbound_update(st, id, state, 250,
		    "2.0.0", "ok", 0, err) == 0, "%s", err);
	return id;
}

static void
populate(struct rows *r, int64_t account_id, const char *account)
{
	struct store_document d;
	struct outq_ctx *q;
	char sha[65], dsha[65], body[128];
	int64_t mid;
	FILE *f;

	memset(r, 0, sizeof(*r));
	r->account_id = account_id;
	ck_assert_msg(store_dossier_create(st, account_id, "c@example.org",
	    "OPEN", NULL, &r->open_d, err) == 0, "%s", err);
	ck_assert_msg(store_dossier_create(st, account_id, "c@example.org",
	    "CLOSED", NULL, &r->closed_d, err) == 0, "%s", err);
	snprintf(body, sizeof(body), "Subject: raw %s\r\n\r\nx\r\n", account);
	r->raw_msg = message(account_id, r->open_d, body, r->raw_sha);
	snprintf(body, sizeof(body), "Subject: doc %s\r\n\r\ny\r\n", account);
	mid = message(account_id, r->closed_d, body, sha);
	snprintf(body, sizeof(body), "%%PDF-1.4 %s", account);
	sha_hex(body, dsha);
	ck_assert_int_eq(blob_put_mem(bs, body, strlen(body), dsha, err), 0);
	memset(&d, 0, sizeof(d));
	d.account_id = account_id;
	d.dossier_id = r->closed_d;
	d.message_id = mid;
	d.filename = d.stored_name = "a.pdf";
	d.declared_type = d.sniffed_type = "application/pdf";
	d.size = strlen(body);
	d.sha256 = dsha;
	d.part_path = "2";
	ck_assert_msg(store_begin(st, err) == 0 && store_document_add(st, &d,
	    &r->doc, err) == 0 && store_commit(st, err) == 0, "%s", err);
	ck_assert_int_eq(store_dossier_close(st, account_id, r->closed_d, err),
	    0);
	ck_assert_msg(outq_ctx_new(cfg, NULL, &q, err) == 0, "%s", err);
	r->sent = outbound(q, account_id, account, "s@example.org", "sent");
	r->queued = outbound(q, account_id, account, "q@example.org",
	    "queued");
	outq_ctx_free(&q);
	snprintf(r->log, sizeof(r->log), "%s/%s.log", cfg->log_dir, account);
	f = fopen(r->log, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
}

static int
count_cb(const struct store_event_row *e, void *ctx)
{
	(void)e;
	(*(int *)ctx)++;
	return 0;
}

/* "rdohl": each class k(ept) or p(urged), in that order. */
static void
classes(const struct rows *r, char out[6])
{
	struct store_msg_row m;
	struct store_doc_row d;
	struct store_outbound o;
	int n = 0;

	ck_assert_int_eq(store_message_get(st, r->account_id, r->raw_msg, &m,
	    err), 1);
	out[0] = m.sha256[0] != '\0' ? 'k' : 'p';
	if (m.sha256[0] != '\0')	/* named: its blob stays */
		ck_assert_int_eq(blob_exists(bs, r->raw_sha), 1);
	out[1] = store_document_get(st, r->account_id, r->doc, &d, err) == 1 ?
	    'k' : 'p';
	ck_assert_int_eq(store_outbound_get(st, r->account_id, r->sent, &o,
	    err), 1);
	out[2] = o.sha256[0] != '\0' ? 'k' : 'p';
	ck_assert_int_eq(store_event_list(st, r->account_id, r->open_d,
	    count_cb, &n, err), 0);
	out[3] = n > 0 ? 'k' : 'p';
	out[4] = access(r->log, F_OK) == 0 ? 'k' : 'p';
	out[5] = '\0';
	/* never purged: a message still waiting to leave */
	ck_assert_int_eq(store_outbound_get(st, r->account_id, r->queued, &o,
	    err), 1);
	ck_assert_str_ne(o.sha256, "");
}

static json_t *
purge(int64_t now, int dry_run)
{
	json_t *rep = NULL;

	ck_assert_msg(privacy_purge(&env, now, dry_run, 0, 0, &rep, err) == 0,
	    "%s", err);
	return rep;
}

/* ---- retention per data class ---- */

static const struct {
	int64_t raw, docs, outbound, history, logs;	/* days, 0 = keep */
	int64_t age;		/* days since the rows were made */
	const char *want;	/* raw docs outbound history logs */
} retention[] = {
	{ 30, 30, 30, 30, 30, 31, "ppppp" },
	{ 30, 30, 30, 30, 30, 29, "kkkkk" },
	{ 0, 0, 0, 0, 0, 36500, "kkkkk" },	/* 0: forever */
	{ 0, 30, 0, 30, 0, 31, "kpkpk" },
	{ 30, 0, 30, 0, 30, 31, "pkpkp" },
	{ 30, 60, 90, 120, 150, 61, "ppkkk" },
	{ 30, 60, 90, 120, 150, 121, "ppppk" },
	{ 150, 120, 90, 60, 30, 91, "kkppp" },
	{ 1, 1, 1, 1, 1, 2, "ppppp" },
	{ 3650, 3650, 3650, 3650, 3650, 3649, "kkkkk" },
};

START_TEST(test_retention)
{
	struct rows r;
	char got[6];
	int64_t t0;
	json_t *rep;

	cfg->keep_raw_messages = retention[_i].raw;
	cfg->keep_documents = retention[_i].docs;
	cfg->keep_outbound_bodies = retention[_i].outbound;
	cfg->keep_history = retention[_i].history;
	cfg->keep_logs = retention[_i].logs;
	populate(&r, acme, "acme");
	t0 = pd_now();
	classes(&r, got);
	ck_assert_str_eq(got, "kkkkk");
	rep = purge(t0 + retention[_i].age * DAY, 0);
	json_decref(rep);
	classes(&r, got);
	ck_assert_msg(strcmp(got, retention[_i].want) == 0,
	    "row %d: %s, want %s", _i, got, retention[_i].want);
	/* a purged raw message's blob, named by nothing else, is gone */
	if (got[0] == 'p' && got[1] == 'p')
		ck_assert_int_eq(blob_exists(bs, r.raw_sha), 0);
}
END_TEST

/* ---- legal holds ---- */

static const struct {
	const char *account;	/* NULL: no hold */
	const char *cls;
	int64_t years;
	const char *acme, *beta;	/* raw docs outbound history logs */
} holds[] = {
	{ NULL, NULL, 0, "ppppp", "ppppp" },
	{ "acme", "all", 10, "kkkkp", "ppppp" },
	{ "beta", "all", 10, "ppppp", "kkkkp" },
	{ "acme", "dossiers", 10, "kkpkp", "ppppp" },
	{ "acme", "outbound", 10, "ppkpp", "ppppp" },
	{ "acme", "consent", 10, "ppppp", "ppppp" },
	/* rows are 400 days old: a 1-year outbound hold has let them go,
	 * a 2-year one has not */
	{ "acme", "outbound", 1, "ppppp", "ppppp" },
	{ "acme", "outbound", 2, "ppkpp", "ppppp" },
	/* an open dossier is held, whatever the hold's length; documents
	 * of a dossier closed before the hold's start are not */
	{ "acme", "dossiers", 1, "kppkp", "ppppp" },
};

START_TEST(test_holds)
{
	struct rows a, b;
	char got[6];
	int64_t t0;

	cfg->keep_raw_messages = cfg->keep_documents = 30;
	cfg->keep_outbound_bodies = cfg->keep_history = cfg->keep_logs = 30;
	if (holds[_i].account != NULL) {
		cfg->holds[0].account = xstrdup(holds[_i].account);
		cfg->holds[0].cls = xstrdup(holds[_i].cls);
		cfg->holds[0].years = holds[_i].years;
		cfg->hold_count = 1;
	}
	populate(&a, acme, "acme");
	populate(&b, beta, "beta");
	t0 = pd_now();
	json_decref(purge(t0 + 400 * DAY, 0));
	classes(&a, got);
	ck_assert_msg(strcmp(got, holds[_i].acme) == 0, "row %d acme: %s, want"
	    " %s", _i, got, holds[_i].acme);
	classes(&b, got);
	ck_assert_msg(strcmp(got, holds[_i].beta) == 0, "row %d beta: %s, want"
	    " %s", _i, got, holds[_i].beta);
}
END_TEST

/* ---- a dry run changes nothing, and reports what the run does ---- */

START_TEST(test_dry_run)
{
	struct rows a;
	char got[6];
	json_t *dry, *real;
	int64_t t0;
	char *d, *r;

	cfg->keep_raw_messages = cfg->keep_documents = 30;
	cfg->keep_outbound_bodies = cfg->keep_history = cfg->keep_logs = 30;
	populate(&a, acme, "acme");
	t0 = pd_now();
	dry = purge(t0 + 400 * DAY, 1);
	classes(&a, got);
	ck_assert_str_eq(got, "kkkkk");
	ck_assert_int_eq(blob_exists(bs, a.raw_sha), 1);
	ck_assert(json_is_true(json_object_get(dry, "dry_run")));
	real = purge(t0 + 400 * DAY, 0);
	classes(&a, got);
	ck_assert_str_eq(got, "ppppp");
	ck_assert_int_eq(blob_exists(bs, a.raw_sha), 0);
	d = json_dumps(json_object_get(dry, "purged"), JSON_SORT_KEYS);
	r = json_dumps(json_object_get(real, "purged"), JSON_SORT_KEYS);
	ck_assert_str_eq(d, r);
	ck_assert_int_gt(json_integer_value(json_object_get(json_object_get(
	    real, "purged"), "blobs")), 0);
	free(d);
	free(r);
	json_decref(dry);
	json_decref(real);
}
END_TEST

/* ---- erasure ---- */

static const struct {
	const char *name;
	const char *erase;	/* as typed by the operator */
	int all_accounts;	/* account_id 0 */
	const char *hold;	/* acme's hold class, or NULL */
	int rc;
	int64_t dossiers, documents, contacts, consent, suppressions;
	int64_t held_dossiers;
	int erased_acme, erased_beta;	/* privacy_erased afterwards */
} erasures[] = {
	{ "lower case, one account", "sub@example.org", 0, NULL, 0,
	    1, 1, 1, 1, 1, 0, 1, 0 },
	{ "upper case, one account", "SUB@EXAMPLE.ORG", 0, NULL, 0,
	    1, 1, 1, 1, 1, 0, 1, 0 },
	{ "mixed case, every account", "Sub@Example.Org", 1, NULL, 0,
	    1, 1, 2, 1, 1, 0, 1, 1 },
	/* the held dossier keeps its documents and the contact row it
	 * needs; the ledger and the suppression go */
	{ "dossiers held", "sub@example.org", 0, "dossiers", 0,
	    0, 0, 0, 1, 1, 1, 1, 0 },
	{ "nobody", "nobody@example.org", 0, NULL, 1,
	    0, 0, 0, 0, 0, 0, 0, 0 },
};

static int64_t
count(json_t *rep, const char *part, const char *name)
{
	return json_integer_value(json_object_get(json_object_get(rep, part),
	    name));
}

START_TEST(test_erase)
{
	struct store_dossier dos;
	struct store_consent_rec cr;
	int64_t sub_d, other_d, cid, pid, id;
	json_t *rep = NULL;
	char h1[65], h2[65], h3[65];
	int rc;

	if (erasures[_i].hold != NULL) {
		cfg->holds[0].account = xstrdup("acme");
		cfg->holds[0].cls = xstrdup(erasures[_i].hold);
		cfg->holds[0].years = 10;
		cfg->hold_count = 1;
	}
	ck_assert_int_eq(store_dossier_create(st, acme, "sub@example.org", "S",
	    NULL, &sub_d, err), 0);
	ck_assert_int_eq(store_dossier_create(st, acme, "other@example.org",
	    "O", NULL, &other_d, err), 0);
	{
		char sha[65];
		struct store_document d;

		id = message(acme, sub_d, "Subject: s\r\n\r\ns\r\n", sha);
		memset(&d, 0, sizeof(d));
		d.account_id = acme;
		d.dossier_id = sub_d;
		d.message_id = id;
		d.filename = d.stored_name = "id.pdf";
		d.declared_type = d.sniffed_type = "application/pdf";
		d.sha256 = sha;
		d.part_path = "2";
		ck_assert(store_begin(st, err) == 0 && store_document_add(st,
		    &d, &id, err) == 0 && store_commit(st, err) == 0);
	}
	ck_assert_int_eq(store_purpose_add(st, acme, "news", &pid, err), 0);
	ck_assert_int_eq(store_contact_ensure(st, acme, "sub@example.org", &cid,
	    err), 0);
	memset(&cr, 0, sizeof(cr));
	cr.contact_id = cid;
	cr.purpose_id = pid;
	snprintf(cr.action, sizeof(cr.action), "grant");
	snprintf(cr.basis, sizeof(cr.basis), "consent");
	snprintf(cr.source, sizeof(cr.source), "form");
	cr.at = pd_now();
	ck_assert_int_eq(store_consent_add(st, acme, &cr, NULL, err), 0);
	ck_assert_int_eq(store_suppression_add(st, acme, "sub@example.org",
	    "test", pd_now() + DAY, err), 0);
	ck_assert_int_eq(store_contact_ensure(st, beta, "sub@example.org", &cid,
	    err), 0);
	/* nothing erased yet: no key, or no record */
	ck_assert_int_eq(privacy_erased(cfg, st, acme, "sub@example.org", err),
	    0);
	rc = privacy_erase(&env, erasures[_i].all_accounts ? 0 : acme,
	    erasures[_i].all_accounts ? NULL : "acme", erasures[_i].erase,
	    "request", &rep, err);
	ck_assert_msg(rc == erasures[_i].rc, "%s: %d %s", erasures[_i].name,
	    rc, err);
	if (rc == 0) {
		ck_assert_int_eq(count(rep, "erased", "dossiers"),
		    erasures[_i].dossiers);
		ck_assert_int_eq(count(rep, "erased", "documents"),
		    erasures[_i].documents);
		ck_assert_int_eq(count(rep, "erased", "contacts"),
		    erasures[_i].contacts);
		ck_assert_int_eq(count(rep, "erased", "consent_records"),
		    erasures[_i].consent);
		ck_assert_int_eq(count(rep, "erased", "suppressions"),
		    erasures[_i].suppressions);
		ck_assert_int_eq(count(rep, "held", "dossiers"),
		    erasures[_i].held_dossiers);
	}
	json_decref(rep);
	ck_assert_int_eq(store_dossier_get(st, acme, sub_d, &dos, err),
	    erasures[_i].dossiers == 0 ? 1 : 0);
	/* somebody else's dossier is untouched */
	ck_assert_int_eq(store_dossier_get(st, acme, other_d, &dos, err), 1);
	/* the keyed hash: case does not matter, the address does */
	ck_assert_int_eq(privacy_erased(cfg, st, acme, "sub@example.org", err),
	    erasures[_i].erased_acme);
	ck_assert_int_eq(privacy_erased(cfg, st, acme, "SUB@Example.ORG", err),
	    erasures[_i].erased_acme);
	ck_assert_int_eq(privacy_erased(cfg, st, beta, "sub@example.org", err),
	    erasures[_i].erased_beta);
	ck_assert_int_eq(privacy_erased(cfg, st, acme, "other@example.org",
	    err), 0);
	ck_assert_int_eq(privacy_hash(cfg, "Sub@Example.ORG", 1, h1, err), 0);
	ck_assert_int_eq(privacy_hash(cfg, "sub@example.org", 1, h2, err), 0);
	ck_assert_int_eq(privacy_hash(cfg, "other@example.org", 1, h3, err), 0);
	ck_assert_str_eq(h1, h2);
	ck_assert_str_ne(h1, h3);
	ck_assert_uint_eq(strlen(h1), 64);
	ck_assert_uint_eq(strspn(h1, "0123456789abcdef"), 64);
	/* a second request finds nothing more */
	if (rc == 0 && erasures[_i].hold == NULL) {
		ck_assert_int_eq(privacy_erase(&env, erasures[_i].all_accounts
		    ? 0 : acme, NULL, erasures[_i].erase, "request", &rep, err),
		    1);
		json_decref(rep);
	}
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
privacy_suite(void)
{
	Suite *s = suite_create("privacy");
	TCase *tc = tcase_create("privacy");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_retention, 0, N(retention));
	tcase_add_loop_test(tc, test_holds, 0, N(holds));
	tcase_add_test(tc, test_dry_run);
	tcase_add_loop_test(tc, test_erase, 0, N(erasures));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(privacy_suite());
}

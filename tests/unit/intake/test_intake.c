/*
 * test_intake.c - the rules of the intake pipeline, through
 * intake_process as the SMTP session and the mailbox host call it: which
 * MIME leaves become documents, the limits (depth, parts, attachments,
 * header fields) answered 552 5.3.4 with nothing stored, parse_status,
 * the empty message and the recipient-less job, a duplicate delivery
 * that adds an event and no rows, the same attachment in a second
 * message, the spool file consumed whatever the outcome, a mail to
 * u-<token> that withdraws consent, and filing by item: an item's address
 * files under that item (item.received), the plain address under the only
 * outstanding item or unassigned, an unknown item part unassigned with
 * item.unknown, and no completion at intake; an opaque S/MIME
 * signed-data part's content under the message's own checks.  Messages
 * are built in the test.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "consent/consent.h"
#include "consent/unsub.h"
#include "intake/intake.h"
#include "lib/config.h"
#include "lib/util.h"
#include "store/store.h"
#include "testlib.h"

static char tmpdir[256];
static struct pd_config *cfg;
static struct store *st;
static struct intake_ctx *ictx;
static char err[PD_ERRLEN];
static int64_t acme, dos;

static void
setup(void)
{
	char e[PD_ERRLEN];

	tl_tmpdir(tmpdir, sizeof(tmpdir), "intake");
	ck_assert_msg(config_load(NULL, &cfg, e, sizeof(e)) == 0, "%s", e);
	free(cfg->var_dir);
	cfg->var_dir = xasprintf("%s/var", tmpdir);
	free(cfg->db_path);
	cfg->db_path = xasprintf("%s/postdoc.db", tmpdir);
	cfg->mime_depth_max = 4;
	cfg->mime_parts_max = 8;
	cfg->attachments_max = 3;
	cfg->header_count_max = 12;
	cfg->receipts = 0;
	cfg->auth_checks = 0;	/* no resolver in unit tests */
	free(cfg->intake_domain);
	cfg->intake_domain = xstrdup("intake.example");
	st = tl_store_open(cfg->db_path, "normal");
	ck_assert_msg(store_account_add(st, "acme", "any", &acme, err) == 0,
	    "%s", err);
	ck_assert_msg(store_dossier_create(st, acme, "c@example.org", "R1",
	    NULL, &dos, err) == 0, "%s", err);
	ck_assert_msg(intake_ctx_new(cfg, NULL, &ictx, err) == 0, "%s", err);
}

static void
teardown(void)
{
	intake_ctx_free(&ictx);
	store_close(&st);
	config_free(&cfg);
	tl_rmtree(tmpdir);
}

static void
sha_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	ck_assert_int_eq(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
	pd_hex(out, md, len);
}

/*
 * Deliver msg (CRLF text) to the dossier, or to the u-<token> address
 * when unsub_token is not NULL; from a spool file when from_file.
 */
static int next_fetched;	/* the next delivery comes from a mailbox */

static struct intake_result
deliver_to(const char *msg, int from_file, const char *unsub_token,
    size_t nrcpt, const char *address)
{
	static int seq;
	struct intake_rcpt rc = { .address = address,
	    .dossier_id = dos, .account_id = acme, .account = "acme",
	    .dossier_ref = "R1" };
	struct intake_result res;
	struct intake_job job;
	char qid[32], spool[600], sha[65], verp[80];
	size_t n = strlen(msg);
	unsigned char *mem = NULL;
	FILE *f;

	snprintf(qid, sizeof(qid), "Q%d", ++seq);
	sha_hex(msg, n, sha);
	if (unsub_token != NULL) {
		snprintf(verp, sizeof(verp), "u-%s", unsub_token);
		rc.verp_token = verp;
		rc.dossier_id = 0;
	}
	memset(&job, 0, sizeof(job));
	job.queue_id = qid;
	job.helo = "client.example";
	job.client_ip = "192.0.2.1";
	job.mail_from = "c@example.org";
	job.fetched = next_fetched;
	job.rcpt_count = nrcpt;
	job.rcpts = &rc;
	job.size = n;
	job.sha256 = sha;
	snprintf(spool, sizeof(spool), "%s/spool-%s", tmpdir, qid);
	job.spool_path = spool;
	if (from_file) {
		f = fopen(spool, "w");
		ck_assert_ptr_nonnull(f);
		fwrite(msg, 1, n, f);
		fclose(f);
	} else {
		mem = xmalloc(n + 1);
		memcpy(mem, msg, n);
		job.spool_mem = mem;
	}
	memset(&res, 0, sizeof(res));
	intake_process(ictx, &job, &res);
	/* the spool file never outlives the answer */
	ck_assert_int_eq(access(spool, F_OK), -1);
	free(mem);
	return res;
}

static struct intake_result
deliver(const char *msg, int from_file, const char *unsub_token,
    size_t nrcpt)
{
	return deliver_to(msg, from_file, unsub_token, nrcpt,
	    "d-r1@intake.example");
}

struct counts {
	int messages, documents, events;
	char parse_status[16];
	char sniffed[128];
	char kinds[512];
	char anomalies[256];
	char flags[128];	/* the last document's */
	char spf[16];		/* the last message's */
};

static int
msg_cb(const struct store_msg_row *r, void *ctx)
{
	struct counts *c = ctx;

	c->messages++;
	snprintf(c->parse_status, sizeof(c->parse_status), "%s",
	    r->parse_status);
	snprintf(c->anomalies, sizeof(c->anomalies), "%s", r->anomalies);
	snprintf(c->spf, sizeof(c->spf), "%s", r->spf);
	return 0;
}

static int
doc_cb(const struct store_doc_row *r, void *ctx)
{
	struct counts *c = ctx;

	c->documents++;
	snprintf(c->sniffed, sizeof(c->sniffed), "%s", r->sniffed_type);
	snprintf(c->flags, sizeof(c->flags), "%s", r->flags);
	return 0;
}

static int
ev_cb(const struct store_event_row *r, void *ctx)
{
	struct counts *c = ctx;
	size_t n = strlen(c->kinds);

	c->events++;
	snprintf(c->kinds + n, sizeof(c->kinds) - n, "%s ", r->kind);
	return 0;
}

static struct counts
counts(void)
{
	struct counts c;

	memset(&c, 0, sizeof(c));
	ck_assert(store_message_list(st, acme, dos, msg_cb, &c, err) == 0);
	ck_assert(store_document_list(st, acme, dos, doc_cb, &c, err) == 0);
	ck_assert(store_event_list(st, acme, dos, ev_cb, &c, err) == 0);
	return c;
}

/* ---- messages ---- */

#define HDR "From: Client <c@example.org>\r\nTo: d-r1@intake.example\r\n" \
	"Subject: papers\r\nMessage-ID: <m@example.org>\r\n" \
	"MIME-Version: 1.0\r\n"
#define PDF_B64 "JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9n" \
	"Pj4KZW5kb2JqCnRyYWlsZXIKPDwvUm9vdCAxIDAgUj4+CiUlRU9GCg==\r\n"
#define MP(b) "Content-Type: multipart/mixed; boundary=\"" b "\"\r\n\r\n"
#define TEXT_PART(b) "--" b "\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
#define PDF_PART(b, name) "--" b "\r\nContent-Type: application/pdf\r\n" \
	"Content-Disposition: attachment; filename=\"" name "\"\r\n" \
	"Content-Transfer-Encoding: base64\r\n\r\n" PDF_B64
#define END(b) "--" b "--\r\n"
#define DASH4 "--\r\n--\r\n--\r\n--\r\n"
#define DASH32 DASH4 DASH4 DASH4 DASH4 DASH4 DASH4 DASH4 DASH4

static const struct {
	const char *name;
	const char *msg;
	int code;
	const char *enhanced;
	int documents;		/* -1: no message row at all */
	const char *status;	/* parse_status */
} msgs[] = {
	{ "plain text, no attachment",
	    HDR "Content-Type: text/plain\r\n\r\nno papers today\r\n",
	    250, "2.0.0", 0, "ok" },
	{ "one PDF",
	    HDR MP("b") TEXT_PART("b") PDF_PART("b", "id.pdf") END("b"),
	    250, "2.0.0", 1, "ok" },
	{ "two attachments",
	    HDR MP("b") TEXT_PART("b") PDF_PART("b", "id.pdf")
	    "--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment;"
	    " filename=\"pay.csv\"\r\n\r\na,b\r\n" END("b"),
	    250, "2.0.0", 2, "ok" },
	{ "a named text part is a document",
	    HDR MP("b") TEXT_PART("b") "--b\r\nContent-Type: text/plain;"
	    " name=\"notes.txt\"\r\n\r\nnotes\r\n" END("b"),
	    250, "2.0.0", 1, "ok" },
	{ "an inline image is a document",
	    HDR MP("b") TEXT_PART("b") "--b\r\nContent-Type: image/png\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n" END("b"),
	    250, "2.0.0", 1, "ok" },
	{ "alternative text and html: no document",
	    HDR "Content-Type: multipart/alternative; boundary=a\r\n\r\n"
	    "--a\r\nContent-Type: text/plain\r\n\r\nhi\r\n--a\r\n"
	    "Content-Type: text/html\r\n\r\n<p>hi</p>\r\n--a--\r\n",
	    250, "2.0.0", 0, "ok" },
	{ "three attachments: at the limit",
	    HDR MP("b") PDF_PART("b", "1.pdf") PDF_PART("b", "2.pdf")
	    PDF_PART("b", "3.pdf") END("b"),
	    250, "2.0.0", 3, "ok" },
	{ "four attachments: over the limit",
	    HDR MP("b") PDF_PART("b", "1.pdf") PDF_PART("b", "2.pdf")
	    PDF_PART("b", "3.pdf") PDF_PART("b", "4.pdf") END("b"),
	    552, "5.3.4", -1, NULL },
	{ "nesting at the limit (4)",
	    HDR MP("l1") "--l1\r\n" MP("l2") "--l2\r\n" MP("l3") "--l3\r\n"
	    "Content-Type: text/plain\r\n\r\ndeep\r\n"
	    END("l3") END("l2") END("l1"),
	    250, "2.0.0", 0, "ok" },
	{ "nesting too deep (5)",
	    HDR MP("l1") "--l1\r\n" MP("l2") "--l2\r\n" MP("l3") "--l3\r\n"
	    MP("l4") "--l4\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"
	    END("l4") END("l3") END("l2") END("l1"),
	    552, "5.3.4", -1, NULL },
	{ "nested message/rfc822 counts as a level",
	    HDR MP("l1") "--l1\r\n" MP("l2") "--l2\r\n"
	    "Content-Type: message/rfc822\r\n\r\n"
	    "Subject: inner\r\n" MP("l4") "--l4\r\n"
	    "Content-Type: text/plain\r\n\r\ndeep\r\n" END("l4")
	    END("l2") END("l1"),
	    552, "5.3.4", -1, NULL },
	{ "too many parts (9 > 8)",
	    HDR MP("b") TEXT_PART("b") TEXT_PART("b") TEXT_PART("b")
	    TEXT_PART("b") TEXT_PART("b") TEXT_PART("b") TEXT_PART("b")
	    TEXT_PART("b") END("b"),
	    552, "5.3.4", -1, NULL },
	{ "too many header fields",
	    HDR "X-1: a\r\nX-2: a\r\nX-3: a\r\nX-4: a\r\nX-5: a\r\nX-6: a\r\n"
	    "X-7: a\r\nX-8: a\r\nContent-Type: text/plain\r\n\r\nx\r\n",
	    552, "5.3.4", -1, NULL },
	/* parsers disagree on which one wins (GMime: the last, so this
	 * leaf is not text and is a document) */
	{ "two Content-Type fields: kept for review",
	    HDR "Content-Type: text/plain\r\nContent-Type: application/pdf\r\n"
	    "\r\nx\r\n",
	    250, "2.0.0", 1, "review" },
	{ "multipart without parts: kept for review",
	    HDR MP("b") "only a preamble\r\n",
	    250, "2.0.0", 0, "review" },
	{ "conflicting file names: kept for review",
	    HDR MP("b") "--b\r\nContent-Type: application/pdf; name=\"a.pdf\""
	    "\r\nContent-Disposition: attachment; filename=\"b.exe\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n" PDF_B64 END("b"),
	    250, "2.0.0", 1, "review" },
	{ "empty message", "", 554, "5.6.0", -1, NULL },
	/* issue 16, hostile input 1: no empty line after a part's headers;
	 * GMime dropped the body as bad header lines, leaving an empty
	 * document while the raw message carried an executable */
	{ "a part without an empty line before its body: refused",
	    HDR MP("b") TEXT_PART("b") "--b\r\nContent-Type: "
	    "application/octet-stream\r\nContent-Disposition: attachment; "
	    "filename=\"x.exe\"\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAA\r\n"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAA\r\n" END("b"),
	    554, "5.6.0", -1, NULL },
	{ "the message's body without an empty line: refused",
	    HDR "Content-Type: application/octet-stream\r\n"
	    "Content-Disposition: attachment; filename=\"x.exe\"\r\n"
	    "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAA\r\n",
	    554, "5.6.0", -1, NULL },
	{ "a stray line in the message's header block: kept for review",
	    "From: Client <c@example.org>\r\nnot a header\r\n"
	    "Subject: papers\r\nMIME-Version: 1.0\r\n" MP("b")
	    PDF_PART("b", "id.pdf") END("b"),
	    250, "2.0.0", 1, "review" },
	/* corpus m14: never split on every "--" line */
	{ "boundary=\"\": one opaque body, no documents, for review",
	    HDR MP("") "--\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
	    "--\r\nContent-Type: application/octet-stream\r\n"
	    "Content-Disposition: attachment; filename=\"e.exe\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nTVo=\r\n----\r\n",
	    250, "2.0.0", 0, "review" },
	{ "too many header fields in a part: refused before the parse",
	    HDR MP("b") "--b\r\nX-1: a\r\nX-2: a\r\nX-3: a\r\nX-4: a\r\n"
	    "X-5: a\r\nX-6: a\r\nX-7: a\r\nX-8: a\r\nX-9: a\r\nX-10: a\r\n"
	    "X-11: a\r\nX-12: a\r\nX-13: a\r\n\r\nx\r\n" END("b"),
	    552, "5.3.4", -1, NULL },
	{ "too many header fields in an inner message: refused",
	    HDR MP("b") "--b\r\nContent-Type: message/rfc822\r\n\r\n"
	    "X-1: a\r\nX-2: a\r\nX-3: a\r\nX-4: a\r\n"
	    "X-5: a\r\nX-6: a\r\nX-7: a\r\nX-8: a\r\nX-9: a\r\nX-10: a\r\n"
	    "X-11: a\r\nX-12: a\r\nX-13: a\r\n\r\nx\r\n" END("b"),
	    552, "5.3.4", -1, NULL },
	{ "delimiter lines of an undeclared boundary are text",
	    HDR MP("b") "--b\r\nContent-Type: text/plain\r\n\r\n"
	    "--c\r\n--c\r\n--c\r\n--c\r\n--c\r\n--c\r\n--c\r\n--c\r\n--c\r\n"
	    END("b"),
	    250, "2.0.0", 0, "ok" },
	/* the pre-scan's catch-all for boundaries in forms it does not
	 * read: 16 lines "--..." per part allowed (8 here) */
	{ "129 lines beginning with \"--\": refused",
	    HDR "Content-Type: text/plain\r\n\r\n"
	    DASH32 DASH32 DASH32 DASH32 "--\r\n",
	    552, "5.3.4", -1, NULL },
};

START_TEST(test_messages)
{
	int k;

	/* from the session's buffer, then from a spool file */
	for (k = 0; k < 2; k++) {
		struct intake_result r = deliver(msgs[_i].msg, k, NULL, 1);
		struct counts c = counts();

		ck_assert_msg(r.code == msgs[_i].code, "%s (%s): %d %s %s",
		    msgs[_i].name, k ? "file" : "memory", r.code, r.enhanced,
		    r.text);
		ck_assert_str_eq(r.enhanced, msgs[_i].enhanced);
		if (msgs[_i].documents < 0) {
			ck_assert_int_eq(c.messages, 0);
			ck_assert_int_eq(c.documents, 0);
			continue;
		}
		/* the second delivery of the same bytes: a duplicate */
		ck_assert_int_eq(c.messages, 1);
		ck_assert_msg(c.documents == msgs[_i].documents, "%s: %d docs",
		    msgs[_i].name, c.documents);
		ck_assert_str_eq(c.parse_status, msgs[_i].status);
	}
}
END_TEST

/*
 * Issue 16, hostile input 1, the second form: a body line longer than
 * GMime's 4 KB scan buffer right after a part's headers made the part
 * disappear from the tree (no document at all, status ok).
 */
START_TEST(test_long_line_part)
{
	size_t n = 8192;
	char *msg = xmalloc(n);
	char line[4401];
	struct intake_result r;

	memset(line, 'A', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	memcpy(line, "TVqQ", 4);
	snprintf(msg, n, HDR MP("b") TEXT_PART("b") "--b\r\nContent-Type: "
	    "application/octet-stream\r\nContent-Disposition: attachment; "
	    "filename=\"x.exe\"\r\n%s\r\n" END("b"), line);
	r = deliver(msg, 1, NULL, 1);
	ck_assert_msg(r.code == 554, "%d %s %s", r.code, r.enhanced, r.text);
	ck_assert_str_eq(r.enhanced, "5.6.0");
	ck_assert_int_eq(counts().messages, 0);
	free(msg);
}
END_TEST

/* Corpus m09: base64 cut mid-quantum: the document is kept, flagged. */
START_TEST(test_truncated_base64)
{
	struct intake_result r = deliver(HDR MP("b") TEXT_PART("b")
	    "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: "
	    "attachment; filename=\"cut.pdf\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfs===",
	    0, NULL, 1);
	struct counts c = counts();

	ck_assert_int_eq(r.code, 250);
	ck_assert_int_eq(c.documents, 1);
	ck_assert_str_eq(c.flags, "truncated");
	ck_assert_str_eq(c.parse_status, "review");
	ck_assert_ptr_nonnull(strstr(c.anomalies, "truncated-part"));
	/* whole quanta, but the part runs to the end: no close delimiter
	 * (corpus m09 exactly) */
	r = deliver(HDR "Subject: 2\r\n" MP("b") TEXT_PART("b")
	    "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: "
	    "attachment; filename=\"cut.pdf\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjUKJcfs\r\n",
	    1, NULL, 1);
	ck_assert_int_eq(r.code, 250);
	c = counts();
	ck_assert_int_eq(c.documents, 2);
	ck_assert_str_eq(c.flags, "truncated");
	/* whole quanta and a close delimiter: no flag */
	r = deliver(HDR MP("b") PDF_PART("b", "id.pdf") END("b"), 1, NULL, 1);
	ck_assert_int_eq(r.code, 250);
	ck_assert_str_eq(counts().flags, "");
}
END_TEST

/* boundary="" (m14) and a stray header line are named. */
START_TEST(test_anomaly_names)
{
	ck_assert_int_eq(deliver(HDR MP("") "--\r\nContent-Type: "
	    "application/pdf\r\n\r\nx\r\n----\r\n", 0, NULL, 1).code, 250);
	ck_assert_str_eq(counts().anomalies, "invalid-boundary");
}
END_TEST

/* No recipient: nothing to deliver to. */
START_TEST(test_no_rcpt)
{
	struct intake_result r = deliver(HDR "\r\nx\r\n", 1, NULL, 0);

	ck_assert_int_eq(r.code, 503);
	ck_assert_str_eq(r.enhanced, "5.5.1");
	ck_assert_int_eq(counts().messages, 0);
}
END_TEST

/*
 * Fetched mail: the peer is the mailbox server, so SPF has no client to
 * judge ("none", no lookup), where an SMTP client's is looked up (here
 * against a resolver that does not answer: temperror).
 */
START_TEST(test_fetched_spf_none)
{
	const char *m = HDR MP("b") TEXT_PART("b") PDF_PART("b", "id.pdf")
	    END("b");
	const char *m2 = HDR "X-Fetched: yes\r\n" MP("b") TEXT_PART("b")
	    PDF_PART("b", "id2.pdf") END("b");
	struct intake_result r;
	struct counts c;

	cfg->auth_checks = 1;
	free(cfg->dns_server);
	cfg->dns_server = xstrdup("127.0.0.1@9");	/* discard: no DNS */
	cfg->dns_timeout_ms = 200;
	r = deliver(m, 0, NULL, 1);
	ck_assert_int_eq(r.code, 250);
	c = counts();
	ck_assert_str_eq(c.spf, "temperror");
	next_fetched = 1;
	r = deliver(m2, 0, NULL, 1);
	next_fetched = 0;
	ck_assert_int_eq(r.code, 250);
	c = counts();
	ck_assert_int_eq(c.messages, 2);
	ck_assert_str_eq(c.spf, "none");
}
END_TEST

/* The same bytes twice: one message, one document, a duplicate event. */
START_TEST(test_duplicate)
{
	const char *m = HDR MP("b") TEXT_PART("b") PDF_PART("b", "id.pdf")
	    END("b");
	const char *m2 = HDR "X-Resent: yes\r\n" MP("b") TEXT_PART("b")
	    PDF_PART("b", "copy.pdf") END("b");
	struct intake_result r;
	struct counts c;

	r = deliver(m, 0, NULL, 1);
	ck_assert_int_eq(r.code, 250);
	c = counts();
	ck_assert_int_eq(c.messages, 1);
	ck_assert_int_eq(c.documents, 1);
	ck_assert_str_eq(c.sniffed, "application/pdf");
	ck_assert_ptr_null(strstr(c.kinds, "message.duplicate"));
	r = deliver(m, 1, NULL, 1);
	ck_assert_int_eq(r.code, 250);
	c = counts();
	ck_assert_int_eq(c.messages, 1);
	ck_assert_int_eq(c.documents, 1);
	ck_assert_ptr_nonnull(strstr(c.kinds, "message.duplicate"));
	/* other bytes, same attachment: a new message, no new document */
	r = deliver(m2, 0, NULL, 1);
	ck_assert_int_eq(r.code, 250);
	c = counts();
	ck_assert_int_eq(c.messages, 2);
	ck_assert_int_eq(c.documents, 1);
	ck_assert_ptr_nonnull(strstr(c.kinds, "document.duplicate"));
}
END_TEST

/* Mail to u-<token>@<list domain>: the token withdraws, nothing kept. */
static const struct {
	int forge;
	const char *status;
} unsubs[] = {
	{ 0, "withdraw" },
	{ 1, "grant" },
};

START_TEST(test_unsubscribe)
{
	struct consent_act a = { .action = "grant", .basis = "consent",
	    .source = "form" };
	char b32[UNSUB_TOKEN_MAX], cur[12] = "";
	struct intake_result r;
	int64_t pid, cid;

	ck_assert_int_eq(store_purpose_add(st, acme, "news", &pid, err), 0);
	ck_assert_int_eq(store_contact_ensure(st, acme, "c@example.org", &cid,
	    err), 0);
	ck_assert_int_eq(consent_apply(st, acme, cid, pid, &a, err), 1);
	ck_assert_msg(unsub_token_make(cfg, UNSUB_T_UNSUB, acme, cid, pid,
	    NULL, b32, err) == 0, "%s", err);
	if (unsubs[_i].forge)
		b32[30] = b32[30] == 'a' ? 'b' : 'a';
	r = deliver(HDR "Content-Type: text/plain\r\n\r\nunsubscribe\r\n", 1,
	    b32, 1);
	/* the same answer either way: a forger learns nothing */
	ck_assert_int_eq(r.code, 250);
	ck_assert_str_eq(r.text, "Ok: unsubscribed");
	ck_assert_int_eq(store_consent_latest(st, cid, pid, cur, sizeof(cur),
	    err), 1);
	ck_assert_str_eq(cur, unsubs[_i].status);
	ck_assert_int_eq(counts().messages, 0);
}
END_TEST

/* ---- filing by item ---- */

#define CSV_PART(b, body) "--" b "\r\nContent-Type: text/csv\r\n" \
	"Content-Disposition: attachment; filename=\"x.csv\"\r\n\r\n" body \
	"\r\n"

/* The dossier's items, in order, each required. */
static int64_t
add_item(const char *slug, const char *label)
{
	struct store_item it;
	int64_t id;

	memset(&it, 0, sizeof(it));
	snprintf(it.slug, sizeof(it.slug), "%s", slug);
	snprintf(it.label, sizeof(it.label), "%s", label);
	it.required = 1;
	ck_assert_msg(store_item_add(st, acme, dos, &it, &id, err) == 0, "%s",
	    err);
	return id;
}

struct filed {
	int n;
	char item[40];		/* the last document's item slug */
	int64_t id;		/* and its id */
	int64_t message_id;
};

static int
filed_cb(const struct store_doc_row *r, void *ctx)
{
	struct filed *f = ctx;

	f->n++;
	snprintf(f->item, sizeof(f->item), "%s", r->item_id != 0 ?
	    r->item_slug : "");
	f->id = r->id;
	f->message_id = r->message_id;
	return 0;
}

static struct filed
filed(void)
{
	struct filed f;

	memset(&f, 0, sizeof(f));
	ck_assert(store_document_list(st, acme, dos, filed_cb, &f, err) == 0);
	return f;
}

struct evs {
	char all[4096];		/* "kind detail\n" each */
};

static int
evs_cb(const struct store_event_row *r, void *ctx)
{
	struct evs *e = ctx;
	size_t n = strlen(e->all);

	snprintf(e->all + n, sizeof(e->all) - n, "%s %s\n", r->kind,
	    r->detail);
	return 0;
}

static struct evs
evs(void)
{
	struct evs e;

	memset(&e, 0, sizeof(e));
	ck_assert(store_event_list(st, acme, dos, evs_cb, &e, err) == 0);
	return e;
}

static const char *
item_state(int64_t id)
{
	static struct store_item it;

	ck_assert_int_eq(store_item_by_id(st, acme, id, &it, err), 1);
	return it.state;
}

static const struct {
	const char *name;
	const char *items;	/* slugs to create, "a,b" */
	const char *to;		/* the local part */
	const char *want;	/* the document's item, "" unassigned */
	const char *unknown;	/* item.unknown's part, or NULL */
} filings[] = {
	{ "an item's address", "id-card,proof", "d-filing01+proof", "proof",
	    NULL },
	{ "an item's address, upper case", "id-card,proof",
	    "D-Filing01+PROOF", "proof", NULL },
	{ "the plain address, one item outstanding", "id-card",
	    "d-filing01", "id-card", NULL },
	{ "the plain address, two items outstanding", "id-card,proof",
	    "d-filing01", "", NULL },
	{ "the plain address, no items", "", "d-filing01", "", NULL },
	{ "an unknown item", "id-card", "d-filing01+payslip", "", "payslip" },
	{ "an unknown item, no items", "", "d-filing01+id-card", "",
	    "id-card" },
};

START_TEST(test_filing)
{
	char items[64], addr[128], want[160], *slug, *save = NULL;
	struct intake_result r;
	struct filed f;
	struct evs e;
	int64_t id = 0;

	snprintf(items, sizeof(items), "%s", filings[_i].items);
	for (slug = strtok_r(items, ",", &save); slug != NULL;
	    slug = strtok_r(NULL, ",", &save)) {
		int64_t x = add_item(slug, slug);

		if (strcmp(slug, filings[_i].want) == 0)
			id = x;
	}
	snprintf(addr, sizeof(addr), "%s@intake.example", filings[_i].to);
	r = deliver_to(HDR MP("b") TEXT_PART("b") PDF_PART("b", "id.pdf")
	    END("b"), _i % 2, NULL, 1, addr);
	ck_assert_msg(r.code == 250, "%s: %d %s", filings[_i].name, r.code,
	    r.text);
	f = filed();
	e = evs();
	ck_assert_int_eq(f.n, 1);
	ck_assert_msg(strcmp(f.item, filings[_i].want) == 0, "%s: filed "
	    "under \"%s\"", filings[_i].name, f.item);
	snprintf(want, sizeof(want), "message.received queue_id=Q");
	ck_assert_ptr_nonnull(strstr(e.all, want));
	snprintf(want, sizeof(want), "message=%lld documents=1\n",
	    (long long)f.message_id);
	ck_assert_msg(strstr(e.all, want) != NULL, "%s", e.all);
	if (id != 0) {
		ck_assert_str_eq(item_state(id), "received");
		snprintf(want, sizeof(want), "item.received item=%s "
		    "document=%lld state=received\n", filings[_i].want,
		    (long long)f.id);
		ck_assert_msg(strstr(e.all, want) != NULL, "%s", e.all);
	} else
		ck_assert_ptr_null(strstr(e.all, "item.received"));
	if (filings[_i].unknown != NULL) {
		snprintf(want, sizeof(want), "item.unknown item=%s\n",
		    filings[_i].unknown);
		ck_assert_msg(strstr(e.all, want) != NULL, "%s", e.all);
	} else
		ck_assert_ptr_null(strstr(e.all, "item.unknown"));
	/* completion is a review's outcome, never a count at intake */
	ck_assert_ptr_null(strstr(e.all, "dossier.completed"));
}
END_TEST

/*
 * The journey's plain-address case: once one of two items has a
 * document, the other is the only one outstanding, and a file sent to
 * the plain address answers it.  A second version to an item waiting
 * for review is announced again (one item.received per document).
 */
START_TEST(test_filing_sequence)
{
	int64_t card = add_item("id-card", "ID card");
	int64_t proof = add_item("proof", "Proof of address");
	struct evs e;

	ck_assert_int_eq(deliver_to(HDR MP("b") PDF_PART("b", "id.pdf")
	    END("b"), 0, NULL, 1, "d-filing01+id-card@intake.example").code,
	    250);
	ck_assert_str_eq(filed().item, "id-card");
	ck_assert_str_eq(item_state(card), "received");
	ck_assert_str_eq(item_state(proof), "requested");
	ck_assert_int_eq(deliver_to(HDR MP("b") CSV_PART("b", "a,b") END("b"),
	    0, NULL, 1, "d-filing01@intake.example").code, 250);
	ck_assert_str_eq(filed().item, "proof");
	ck_assert_str_eq(item_state(proof), "received");
	ck_assert_int_eq(deliver_to(HDR MP("b") CSV_PART("b", "c,d") END("b"),
	    1, NULL, 1, "d-filing01+proof@intake.example").code, 250);
	e = evs();
	ck_assert_int_eq(filed().n, 3);
	ck_assert_str_eq(filed().item, "proof");
	ck_assert_msg(strstr(strstr(e.all, "item.received item=proof") + 1,
	    "item.received item=proof") != NULL, "%s", e.all);
	/* both received, none outstanding: the plain address files
	 * unassigned */
	ck_assert_int_eq(deliver_to(HDR MP("b") CSV_PART("b", "e,f") END("b"),
	    0, NULL, 1, "d-filing01@intake.example").code, 250);
	ck_assert_str_eq(filed().item, "");
}
END_TEST

/* A dossier that requested two names (the old column) and holds two
 * documents is not complete: nobody accepted them. */
START_TEST(test_no_completion_by_count)
{
	ck_assert_int_eq(store_dossier_set_request(st, acme, dos,
	    "[\"ID card\", \"Payslip\"]", "", err), 0);
	ck_assert_int_eq(deliver(HDR MP("b") PDF_PART("b", "id.pdf")
	    CSV_PART("b", "a,b") END("b"), 0, NULL, 1).code, 250);
	ck_assert_int_eq(filed().n, 2);
	ck_assert_ptr_null(strstr(evs().all, "dossier.completed"));
}
END_TEST

/* A throw-away P-256 key and a self-signed certificate for it. */
static X509 *
test_cert(EVP_PKEY **key_r)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *nm;

	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	nm = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)"c@example.org", -1, -1, 0);
	X509_set_issuer_name(x, nm);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	*key_r = key;
	return x;
}

/*
 * An opaque S/MIME signed-data message (RFC 8551 3.4.2) carrying inner
 * byte for byte (CMS_BINARY: no canonicalisation), signed with a
 * throw-away key (intake takes the content out and never verifies),
 * base64 in 76-column lines.
 */
static char *
signed_data_msg(const char *inner)
{
	BIO *in = BIO_new_mem_buf(inner, (int)strlen(inner));
	EVP_PKEY *key;
	X509 *cert = test_cert(&key);
	CMS_ContentInfo *cms = CMS_sign(cert, key, NULL, in, CMS_BINARY |
	    CMS_NOSMIMECAP);
	unsigned char *der = NULL;
	char *b64, *msg, *o;
	int n, i, blen;

	ck_assert_ptr_nonnull(cms);
	n = i2d_CMS_ContentInfo(cms, &der);
	ck_assert_int_gt(n, 0);
	b64 = xmalloc((size_t)n * 2 + 8);
	blen = EVP_EncodeBlock((unsigned char *)b64, der, n);
	msg = xmalloc((size_t)blen * 2 + 1024);
	o = msg + sprintf(msg, HDR "Content-Type: application/pkcs7-mime; "
	    "smime-type=signed-data; name=smime.p7m\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n");
	for (i = 0; i < blen; i += 76)
		o += sprintf(o, "%.*s\r\n", blen - i < 76 ? blen - i : 76,
		    b64 + i);
	free(b64);
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	X509_free(cert);
	EVP_PKEY_free(key);
	BIO_free(in);
	return msg;
}

#define LONG_LINE_100 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define LONG_LINE_1K LONG_LINE_100 LONG_LINE_100 LONG_LINE_100 \
	LONG_LINE_100 LONG_LINE_100 LONG_LINE_100 LONG_LINE_100 \
	LONG_LINE_100 LONG_LINE_100 LONG_LINE_100

/*
 * Issue 16 follow-up: the content of a signed-data part was parsed by a
 * parser of its own, past the pre-scan and the parser's warnings; it
 * answers as the same bytes at the top level would.
 */
static const struct {
	const char *name;
	const char *inner;
	int code;
	const char *enhanced;
	int documents;
} signeds[] = {
	{ "a PDF inside: filed",
	    MP("b") TEXT_PART("b") PDF_PART("b", "id.pdf") END("b"),
	    250, "2.0.0", 1 },
	{ "too many parts inside (9 > 8)",
	    MP("b") TEXT_PART("b") TEXT_PART("b") TEXT_PART("b")
	    TEXT_PART("b") TEXT_PART("b") TEXT_PART("b") TEXT_PART("b")
	    TEXT_PART("b") END("b"),
	    552, "5.3.4", -1 },
	/* only the pre-scan counts these: the walk sees one text part */
	{ "129 lines beginning with \"--\" inside: refused",
	    "Content-Type: text/plain\r\n\r\n"
	    DASH32 DASH32 DASH32 DASH32 "--\r\n",
	    552, "5.3.4", -1 },
	{ "a part without an empty line inside: refused",
	    MP("b") TEXT_PART("b") "--b\r\nContent-Type: "
	    "application/octet-stream\r\nContent-Disposition: attachment; "
	    "filename=\"x.exe\"\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAA\r\n"
	    END("b"),
	    554, "5.6.0", -1 },
	{ "a part whose long first line GMime loses: refused",
	    MP("b") TEXT_PART("b") "--b\r\nContent-Type: "
	    "application/octet-stream\r\nContent-Disposition: attachment; "
	    "filename=\"x.exe\"\r\nTVqQ" LONG_LINE_1K LONG_LINE_1K
	    LONG_LINE_1K LONG_LINE_1K LONG_LINE_1K "\r\n" END("b"),
	    554, "5.6.0", -1 },
};

/* The truncated flag inside: a multipart never closed, its last part
 * running to the end of the content. */
START_TEST(test_signed_data_truncated)
{
	char *msg = signed_data_msg(MP("b") TEXT_PART("b")
	    "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: "
	    "attachment; filename=\"cut.pdf\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfs\r\n");
	struct intake_result r = deliver(msg, 0, NULL, 1);
	struct counts c = counts();

	ck_assert_int_eq(r.code, 250);
	ck_assert_int_eq(c.documents, 1);
	ck_assert_str_eq(c.flags, "truncated");
	ck_assert_ptr_nonnull(strstr(c.anomalies, "truncated-part"));
	free(msg);
}
END_TEST

START_TEST(test_signed_data)
{
	char *msg = signed_data_msg(signeds[_i].inner);
	struct intake_result r = deliver(msg, 0, NULL, 1);
	struct counts c = counts();

	ck_assert_msg(r.code == signeds[_i].code, "%s: %d %s %s",
	    signeds[_i].name, r.code, r.enhanced, r.text);
	ck_assert_str_eq(r.enhanced, signeds[_i].enhanced);
	if (signeds[_i].documents < 0)
		ck_assert_int_eq(c.messages, 0);
	else
		ck_assert_int_eq(c.documents, signeds[_i].documents);
	free(msg);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
intake_suite(void)
{
	Suite *s = suite_create("intake");
	TCase *tc = tcase_create("intake");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_messages, 0, N(msgs));
	tcase_add_test(tc, test_no_rcpt);
	tcase_add_test(tc, test_long_line_part);
	tcase_add_test(tc, test_truncated_base64);
	tcase_add_loop_test(tc, test_signed_data, 0, N(signeds));
	tcase_add_test(tc, test_signed_data_truncated);
	tcase_add_test(tc, test_anomaly_names);
	tcase_add_test(tc, test_duplicate);
	tcase_add_test(tc, test_fetched_spf_none);
	tcase_add_loop_test(tc, test_unsubscribe, 0, N(unsubs));
	tcase_add_loop_test(tc, test_filing, 0, N(filings));
	tcase_add_test(tc, test_filing_sequence);
	tcase_add_test(tc, test_no_completion_by_count);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tl_run(intake_suite());
}

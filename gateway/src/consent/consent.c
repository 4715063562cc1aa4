/*
 * consent.c - the consent ledger's rules over store.c: records are
 * appended in their own transaction after reading the current status, so
 * replays (a one-click POST sent 100 times, a mailto retried) add
 * nothing; texts are hashed and stored once; imports run in one
 * transaction and refuse bad rows with their line number and why; an
 * erased address is never granted again unless the operator says the
 * person came back (reconsent); double opt-in queues a confirmation
 * mail whose link carries a confirm token.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "lib/config.h"
#include "consent.h"
#include "contact.h"
#include "events/metrics.h"
#include "outbound/notify.h"
#include "outbound/outmsg.h"
#include "outbound/outq.h"
#include "lib/sanitize.h"
#include "privacy/privacy.h"
#include "store/store_privacy.h"
#include "store/store.h"
#include "store/store_evq.h"
#include "unsub.h"
#include "lib/util.h"

#define CONSENT_TEXT_MAX 65536

int
consent_basis_valid(const char *v)
{
	return v != NULL && (strcmp(v, "consent") == 0 ||
	    strcmp(v, "contract") == 0 ||
	    strcmp(v, "legitimate_interest") == 0);
}

int
consent_source_valid(const char *v)
{
	static const char *const ok[] = { "form", "api", "import",
	    "double_opt_in", "one_click", "mailto", "admin", NULL };
	int i;

	for (i = 0; v != NULL && ok[i] != NULL; i++)
		if (strcmp(v, ok[i]) == 0)
			return 1;
	return 0;
}

int
consent_email_norm(const char *in, char *out, size_t outlen)
{
	size_t i, n = strlen(in);

	if (n == 0 || n >= outlen || !outmsg_addr_valid(in, 0))
		return 0;
	for (i = 0; i <= n; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ?
		    (char)(in[i] - 'A' + 'a') : in[i];
	return 1;
}

int
consent_erased_gate(const struct pd_config *cfg, struct store *st,
    int64_t account_id, const char *email, int reconsent, char hash_r[65],
    char *why_r, size_t whylen, char *err)
{
	char day[16];
	int64_t at = 0;
	time_t t;
	struct tm tm;
	int rc = privacy_hash(cfg, email, 0, hash_r, err);

	if (rc != 0) {
		hash_r[0] = '\0';
		return rc < 0 ? -1 : 1;	/* no key: nobody was ever erased */
	}
	rc = store_erased_at(st, account_id, hash_r, &at, err);
	if (rc <= 0) {
		hash_r[0] = '\0';
		return rc < 0 ? -1 : 1;
	}
	if (reconsent)
		return 1;
	t = (time_t)at;
	gmtime_r(&t, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	snprintf(why_r, whylen, "%s was erased on %s", email, day);
	return 0;
}

/*
 * Inside the caller's transaction: the erased hash stops blocking the
 * account, and the audit trail says who lifted it and why.
 */
static int
consent_lift(struct store *st, int64_t account_id,
    const struct consent_act *a, char *err)
{
	char detail[128];

	snprintf(detail, sizeof(detail), "{\"reconsent\":true,"
	    "\"source\":\"%s\"}", a->source);
	if (store_erased_lift(st, account_id, a->lift_hash, err) != 0)
		return -1;
	return store_audit_add(st, a->operator_ != NULL ? a->operator_ : "",
	    "subject.reconsent", a->account != NULL ? a->account : "",
	    a->lift_hash, detail, err);
}

/* The ledger's method: a re-consent says so, whatever else it was. */
static void
consent_method(char *out, size_t len, const struct consent_act *a,
    const char *def)
{
	const char *m = a->method != NULL && a->method[0] != '\0' ?
	    a->method : def;

	if (a->lift_hash != NULL && a->lift_hash[0] != '\0')
		snprintf(out, len, "reconsent%s%s", m[0] != '\0' ? ":" : "",
		    m);
	else
		snprintf(out, len, "%s", m);
}

int
consent_apply(struct store *st, int64_t account_id, int64_t contact_id,
    int64_t purpose_id, const struct consent_act *a, char *err)
{
	struct store_consent_rec r;
	char cur[12] = "";
	int rc, granted;

	if (store_begin(st, err) != 0)
		return -1;
	rc = store_consent_latest(st, contact_id, purpose_id, cur, sizeof(cur),
	    err);
	if (rc < 0)
		goto fail;
	granted = rc == 1 && strcmp(cur, "grant") == 0;
	if (granted == (strcmp(a->action, "grant") == 0)) {
		/* Never the case after an erasure (the records went with the
		 * contact), so nothing to lift either. */
		store_rollback(st);
		return 0;
	}
	memset(&r, 0, sizeof(r));
	r.contact_id = contact_id;
	r.purpose_id = purpose_id;
	snprintf(r.action, sizeof(r.action), "%s", a->action);
	snprintf(r.basis, sizeof(r.basis), "%s", a->basis != NULL ?
	    a->basis : "consent");
	snprintf(r.source, sizeof(r.source), "%s", a->source);
	consent_method(r.method, sizeof(r.method), a, "");
	if (a->lift_hash != NULL && a->lift_hash[0] != '\0' &&
	    strcmp(a->action, "grant") == 0 &&
	    consent_lift(st, account_id, a, err) != 0)
		goto fail;
	snprintf(r.ip, sizeof(r.ip), "%s", a->ip != NULL ? a->ip : "");
	snprintf(r.user_agent, sizeof(r.user_agent), "%s",
	    a->user_agent != NULL ? a->user_agent : "");
	snprintf(r.operator_, sizeof(r.operator_), "%s",
	    a->operator_ != NULL ? a->operator_ : "");
	r.text_id = a->text_id;
	r.at = pd_now();
	if (store_consent_add(st, account_id, &r, NULL, err) != 0 ||
	    store_evq_consent_event(st, account_id, contact_id, purpose_id,
	    r.action, r.source, err) != 0 || store_commit(st, err) != 0)
		goto fail;
	return 1;
fail:
	store_rollback(st);
	return -1;
}

int
consent_text_load(struct store *st, int64_t account_id, const char *path,
    int64_t *id_r, char *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char *buf = xmalloc(CONSENT_TEXT_MAX + 1), hex[65];
	ssize_t n, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

	if (fd < 0) {
		pd_err(err, "%s: %s", path, strerror(errno));
		free(buf);
		return -1;
	}
	while ((n = read(fd, buf + got, CONSENT_TEXT_MAX + 1 - got)) > 0)
		got += n;
	close(fd);
	if (n < 0 || got > CONSENT_TEXT_MAX || got == 0 ||
	    memchr(buf, '\0', (size_t)got) != NULL ||
	    !sanitize_utf8_valid(buf, (size_t)got)) {
		pd_err(err, "%s: a consent text is 1 byte to 64 KiB of UTF-8",
		    path);
		goto out;
	}
	buf[got] = '\0';
	if (EVP_Digest(buf, (size_t)got, md, &mdlen, EVP_sha256(), NULL) != 1)
		pd_fatal("sha256 failed");
	pd_hex(hex, md, 32);
	rc = store_consent_text_put(st, account_id, hex, buf, id_r, err);
out:
	free(buf);
	return rc;
}

/* ---- import ---- */

/* One import's state: the file's separator and adult column. */
struct consent_import_run {
	const struct pd_config *cfg;
	struct store *st;
	int64_t account_id, purpose_id;
	const struct consent_act *a;
	FILE *report;
	struct consent_import_stats *stats;
	char sep;
	int adult_col;
};

/* Field k (0-based) of a CSV line into out; quotes allowed. 1 if there. */
static int
consent_csv_field(const char *line, char sep, int k, char *out,
    size_t outlen)
{
	const char *p = line;
	size_t o = 0;
	int f = 0, q;

	while (f < k) {
		q = 0;
		for (; *p != '\0' && (q || *p != sep); p++)
			if (*p == '"')
				q = !q;
		if (*p != sep)
			return 0;
		p++;
		f++;
	}
	while (*p == ' ')
		p++;
	q = *p == '"';
	if (q)
		p++;
	for (; *p != '\0' && o + 1 < outlen; p++) {
		if (q && p[0] == '"' && p[1] == '"') {
			out[o++] = '"';
			p++;
		} else if (q && *p == '"')
			break;
		else if (!q && (*p == sep || *p == '\r' || *p == '\n'))
			break;
		else
			out[o++] = *p;
	}
	while (!q && o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return 1;
}

/*
 * The separator the first line uses most outside quotes: ',' by
 * default, ';' from a French spreadsheet, tab from a TSV export.
 */
static char
consent_csv_sep(const char *line)
{
	static const char seps[] = { ',', ';', '\t' };
	unsigned n[3] = { 0, 0, 0 }, i, best = 0;
	int q = 0;

	for (; *line != '\0'; line++) {
		if (*line == '"')
			q = !q;
		for (i = 0; !q && i < 3; i++)
			n[i] += *line == seps[i];
	}
	for (i = 1; i < 3; i++)
		if (n[i] > n[best])
			best = i;
	return seps[best];
}

/* An adult cell as the ledger's word, or NULL if it is none of ours. */
static const char *
consent_adult_word(const char *v)
{
	static const char *const yes[] = { "yes", "true", "1", "oui", NULL };
	static const char *const no[] = { "no", "false", "0", "non", NULL };
	int i;

	for (i = 0; yes[i] != NULL; i++)
		if (strcasecmp(v, yes[i]) == 0)
			return "yes";
	for (i = 0; no[i] != NULL; i++)
		if (strcasecmp(v, no[i]) == 0)
			return "no";
	return strcasecmp(v, "unknown") == 0 ? "unknown" : NULL;
}

static int
consent_import_refuse(struct consent_import_run *r, unsigned lineno,
    const char *why, const char *raw)
{
	char shown[128];

	pd_ascii_clean(shown, sizeof(shown), raw);
	fprintf(r->report, "line %u: %s \"%s\": refused\n", lineno, why,
	    shown);
	r->stats->bad++;
	return 0;
}

/* The row's grant, once it passed its checks (lift: the erased hash). */
static int
consent_import_grant(struct consent_import_run *r, int64_t cid,
    const char *lift, char *err)
{
	struct consent_act a = *r->a;
	struct store_consent_rec rec;
	char cur[12];
	int rc;

	rc = store_consent_latest(r->st, cid, r->purpose_id, cur, sizeof(cur),
	    err);
	if (rc < 0)
		return -1;
	if (rc == 1 && strcmp(cur, "grant") == 0) {
		r->stats->unchanged++;
		return 0;
	}
	a.lift_hash = lift;
	if (lift[0] != '\0' && consent_lift(r->st, r->account_id, &a, err) != 0)
		return -1;
	memset(&rec, 0, sizeof(rec));
	rec.contact_id = cid;
	rec.purpose_id = r->purpose_id;
	snprintf(rec.action, sizeof(rec.action), "grant");
	snprintf(rec.basis, sizeof(rec.basis), "%s", a.basis);
	snprintf(rec.source, sizeof(rec.source), "%s", a.source);
	consent_method(rec.method, sizeof(rec.method), &a, "csv-import");
	snprintf(rec.operator_, sizeof(rec.operator_), "%s", a.operator_ ?
	    a.operator_ : "");
	rec.text_id = a.text_id;
	rec.at = pd_now();
	if (store_consent_add(r->st, r->account_id, &rec, NULL, err) != 0 ||
	    store_evq_consent_event(r->st, r->account_id, cid, r->purpose_id,
	    "grant", rec.source, err) != 0)
		return -1;
	r->stats->imported++;
	return 0;
}

static int
consent_import_row(struct consent_import_run *r, const char *line,
    unsigned lineno, char *err)
{
	char raw[512], email[320], adult[64], hash[65], why[400];
	const char *word = NULL;
	int64_t cid;
	int rc;

	r->stats->rows++;
	if (!consent_csv_field(line, r->sep, 0, raw, sizeof(raw)) ||
	    !consent_email_norm(raw, email, sizeof(email)))
		return consent_import_refuse(r, lineno, "bad address", raw);
	if (r->adult_col >= 0 && consent_csv_field(line, r->sep, r->adult_col,
	    adult, sizeof(adult)) && (word = consent_adult_word(adult)) == NULL)
		return consent_import_refuse(r, lineno, "adult is yes, no, "
		    "true, false, 1, 0, oui, non or unknown, not", adult);
	rc = consent_erased_gate(r->cfg, r->st, r->account_id, email,
	    r->a->reconsent, hash, why, sizeof(why), err);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		fprintf(r->report, "line %u: %s: refused (--reconsent if the "
		    "person came back on their own)\n", lineno, why);
		r->stats->bad++;
		return 0;
	}
	if (store_contact_ensure(r->st, r->account_id, email, &cid, err) != 0)
		return -1;
	if (word != NULL && store_contact_attest(r->st, r->account_id, cid,
	    word, r->a->operator_, err) != 0)
		return -1;
	return consent_import_grant(r, cid, hash, err);
}

/* Column index of "adult" in a header line, or -1. */
static int
consent_header_adult(const char *line, char sep)
{
	char f[64];
	int k;

	for (k = 0; k < 32 && consent_csv_field(line, sep, k, f, sizeof(f));
	    k++)
		if (strcasecmp(f, "adult") == 0)
			return k;
	return -1;
}

/* The first line: its separator, and whether it is a header. 1 if so. */
static int
consent_import_first(struct consent_import_run *r, const char *line)
{
	char first[64];

	r->sep = consent_csv_sep(line);
	if (!consent_csv_field(line, r->sep, 0, first, sizeof(first)) ||
	    strcasecmp(first, "email") != 0)
		return 0;
	r->adult_col = consent_header_adult(line, r->sep);
	return 1;
}

int
consent_import(const struct pd_config *cfg, struct store *st,
    int64_t account_id, int64_t purpose_id, const char *path,
    const struct consent_act *a, FILE *report,
    struct consent_import_stats *stats, char *err)
{
	struct consent_import_run r = { cfg, st, account_id, purpose_id, a,
	    report, stats, ',', 1 };
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	int rc = 0, seen = 0;

	memset(stats, 0, sizeof(*stats));
	if (f == NULL) {
		pd_err(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* One transaction: an import is all there or not at all. */
	if (store_begin(st, err) != 0) {
		fclose(f);
		return -1;
	}
	while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (n > 4096) {
			fprintf(report, "line %u: too long: refused\n", lineno);
			stats->rows++;
			stats->bad++;
			continue;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (!seen++ && consent_import_first(&r, line))
			continue;
		rc = consent_import_row(&r, line, lineno, err);
	}
	free(line);
	fclose(f);
	if (rc == 0 && store_commit(st, err) == 0)
		return 0;
	store_rollback(st);
	return -1;
}

/* ---- double opt-in ---- */

/*
 * The erased gate of a request: refused unless in->reconsent, and then
 * the erasure is lifted now, with its audit entry (the operator vouches
 * that the person came back; the grant itself waits for her click).
 */
static int
consent_request_gate(const struct pd_config *cfg, struct store *st,
    const struct consent_optin *in, char *err)
{
	struct consent_act a = { .action = "grant", .account = in->account,
	    .source = in->source != NULL ? in->source : "admin",
	    .operator_ = in->operator_ };
	char hash[65], why[400];
	int rc = consent_erased_gate(cfg, st, in->account_id, in->email,
	    in->reconsent, hash, why, sizeof(why), err);

	if (rc < 0)
		return -1;
	if (rc == 0) {
		pd_err(err, "%s", why);
		return CONSENT_ERASED;
	}
	if (hash[0] == '\0')
		return 0;
	a.lift_hash = hash;
	if (store_begin(st, err) != 0)
		return -1;
	if (consent_lift(st, in->account_id, &a, err) != 0 ||
	    store_commit(st, err) != 0) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

/* The message's language: the contact's, else the account's. */
static void
consent_request_locale(const struct pd_config *cfg, struct store *st,
    const struct consent_optin *in, char *out, size_t len)
{
	struct notify_identity id;
	struct store_contact c;
	char err[PD_ERRLEN];

	out[0] = '\0';
	if (store_contact_find(st, in->account_id, in->email, &c, err) == 1)
		snprintf(out, len, "%s", c.locale);
	if (out[0] == '\0' && notify_identity(cfg, st, in->account, &id,
	    err) == 0)
		snprintf(out, len, "%s", id.locale);
}

int
consent_request(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, const struct consent_optin *in,
    int64_t *outbound_id_r, char *err)
{
	struct store_consent_req req;
	struct outmsg_header auto_sub = { "Auto-Submitted", "auto-generated" };
	struct notify_mail m;
	struct notify_built b;
	struct outq_item it;
	char tok[UNSUB_TOKEN_MAX], url[512], locale[16], label[256];
	int64_t cid, rid;
	json_t *data;
	int rc;

	if ((rc = consent_request_gate(cfg, st, in, err)) != 0)
		return rc;
	if (store_contact_ensure(st, in->account_id, in->email, &cid, err) != 0
	    || (in->locale != NULL && in->locale[0] != '\0' &&
	    store_contact_set_person(st, in->account_id, in->email, NULL,
	    in->locale, err) != 0))
		return -1;
	consent_request_locale(cfg, st, in, locale, sizeof(locale));
	if (consent_purpose_label(st, in->account_id, in->purpose_id, locale,
	    label, sizeof(label), err) != 1)
		return -1;
	memset(&req, 0, sizeof(req));
	req.account_id = in->account_id;
	req.contact_id = cid;
	req.purpose_id = in->purpose_id;
	req.text_id = in->text_id;
	if (store_consent_req_add(st, &req, &rid, err) != 0 ||
	    unsub_token_make(cfg, UNSUB_T_CONFIRM, in->account_id, rid,
	    in->purpose_id, tok, NULL, err) != 0)
		return -1;
	snprintf(url, sizeof(url), "%s/c/%s", cfg->web_base_url, tok);
	/* purpose.name stays for templates written before labels; the
	 * shipped ones show purpose.label, never the internal id. */
	data = json_pack("{s:{s:s}, s:{s:s, s:s}, s:s}", "contact", "email",
	    in->email, "purpose", "name", in->purpose, "label", label,
	    "confirm_url", url);
	m = (struct notify_mail){ .st = st, .account = in->account,
	    .tmpl = "consent-request", .locale = locale[0] ? locale : NULL,
	    .to = in->email, .data = data, .extra = &auto_sub, .n_extra = 1 };
	rc = notify_build_mail(cfg, &m, &b, err);
	json_decref(data);
	if (rc != 0)
		return -1;
	it = (struct outq_item){ .account_id = in->account_id,
	    .account = in->account, .dossier_id = 0, .kind = "consent-request",
	    .rcpt = in->email, .from_domain = b.from_domain,
	    .msg_path = b.path, .message_id = b.message_id };
	return outq_enqueue(q, &it, outbound_id_r, err);
}

/* adult_by names the request the reader confirmed on (64 bytes). */
static int
consent_confirm_attest(struct store *st, const struct store_consent_req *req,
    char *err)
{
	char by[64];

	snprintf(by, sizeof(by), "double_opt_in request %lld",
	    (long long)req->id);
	return store_contact_attest(st, req->account_id, req->contact_id,
	    "yes", by, err);
}

int
consent_confirm(struct store *st, const struct store_consent_req *req,
    const char *ip, const char *user_agent, int adult, int64_t now,
    char *err)
{
	struct consent_act a = { .action = "grant", .basis = "consent",
	    .source = "double_opt_in", .method = adult ?
	    "double-opt-in-confirm+adult-confirmed" : "double-opt-in-confirm",
	    .ip = ip, .user_agent = user_agent, .text_id = req->text_id };
	int rc;

	if (now - req->created > CONSENT_REQUEST_TTL)
		return CONSENT_EXPIRED;
	if (store_begin(st, err) != 0)
		return -1;
	rc = store_consent_req_confirm(st, req->id, now, err);
	if (rc == 1 && adult && consent_confirm_attest(st, req, err) != 0)
		rc = -1;
	if (rc == 1)
		rc = consent_apply(st, req->account_id, req->contact_id,
		    req->purpose_id, &a, err) < 0 ? -1 : 1;
	if (rc < 0 || store_commit(st, err) != 0) {
		store_rollback(st);
		return -1;
	}
	return rc;
}

/* ---- the mailto: path (RFC 2369) ---- */

int
consent_unsub_mail(const struct pd_config *cfg, struct store *st,
    const char *token, const char *client_ip, char *err)
{
	struct consent_act a = { .action = "withdraw", .basis = "consent",
	    .source = "mailto", .method = "rfc2369-mailto", .ip = client_ip,
	    .operator_ = "" };
	struct store_contact c;
	struct unsub_token t;
	int found, rc;

	if (!unsub_token_parse(token, &t))
		return 0;
	found = store_contact_by_id(st, t.id, &c, err);
	if (found < 0)
		return -1;
	if (!unsub_token_check(cfg, UNSUB_T_UNSUB, found ? c.account_id : 0,
	    &t) || !found)
		return 0;
	/* The token authenticates; From is never looked at, and nothing
	 * is sent back (a forged sender gets no confirmation). */
	rc = consent_apply(st, c.account_id, c.id, t.purpose_id, &a, err);
	if (rc == 1) {
		metrics_unsubscribe(MU_MAILTO);
		/* Inside intake: the line carries the queue id. */
		log_info(PD_CTX_FMT "contact %lld withdrew purpose %lld by "
		    "mail", PD_CTX, (long long)c.id, (long long)t.purpose_id);
	}
	return rc < 0 ? -1 : 1;
}

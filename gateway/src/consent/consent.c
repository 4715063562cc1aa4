/*
 * consent.c - the consent ledger's rules over store.c: records are
 * appended in their own transaction after reading the current status, so
 * replays (a one-click POST sent 100 times, a mailto retried) add
 * nothing; texts are hashed and stored once; imports run in one
 * transaction and skip bad rows with their line number; double opt-in
 * queues a confirmation mail whose link carries a confirm token.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "lib/config.h"
#include "consent.h"
#include "events/metrics.h"
#include "outbound/notify.h"
#include "outbound/outmsg.h"
#include "outbound/outq.h"
#include "lib/sanitize.h"
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
	snprintf(r.method, sizeof(r.method), "%s", a->method != NULL ?
	    a->method : "");
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

/* Field k (0-based) of a CSV line into out; quotes allowed. 1 if there. */
static int
consent_csv_field(const char *line, int k, char *out, size_t outlen)
{
	const char *p = line;
	size_t o = 0;
	int f = 0, q;

	while (f < k) {
		q = 0;
		for (; *p != '\0' && (q || *p != ','); p++)
			if (*p == '"')
				q = !q;
		if (*p != ',')
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
		else if (!q && (*p == ',' || *p == '\r' || *p == '\n'))
			break;
		else
			out[o++] = *p;
	}
	while (!q && o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return 1;
}

static int
consent_import_row(struct store *st, int64_t account_id, int64_t purpose_id,
    const char *line, unsigned lineno, int adult_col,
    const struct consent_act *a, FILE *report,
    struct consent_import_stats *stats, char *err)
{
	char raw[512], email[320], adult[16], cur[12];
	int64_t cid;
	struct store_consent_rec r;
	int rc;

	stats->rows++;
	if (!consent_csv_field(line, 0, raw, sizeof(raw)) ||
	    !consent_email_norm(raw, email, sizeof(email))) {
		char shown[128];

		pd_ascii_clean(shown, sizeof(shown), raw);
		fprintf(report, "line %u: bad address \"%s\": skipped\n",
		    lineno, shown);
		stats->bad++;
		return 0;
	}
	if (store_contact_ensure(st, account_id, email, &cid, err) != 0)
		return -1;
	if (adult_col >= 0 && consent_csv_field(line, adult_col, adult,
	    sizeof(adult)) && (strcmp(adult, "yes") == 0 ||
	    strcmp(adult, "no") == 0 || strcmp(adult, "unknown") == 0) &&
	    store_contact_attest(st, account_id, cid, adult, a->operator_,
	    err) != 0)
		return -1;
	rc = store_consent_latest(st, cid, purpose_id, cur, sizeof(cur), err);
	if (rc < 0)
		return -1;
	if (rc == 1 && strcmp(cur, "grant") == 0) {
		stats->unchanged++;
		return 0;
	}
	memset(&r, 0, sizeof(r));
	r.contact_id = cid;
	r.purpose_id = purpose_id;
	snprintf(r.action, sizeof(r.action), "grant");
	snprintf(r.basis, sizeof(r.basis), "%s", a->basis);
	snprintf(r.source, sizeof(r.source), "%s", a->source);
	snprintf(r.method, sizeof(r.method), "%s", a->method ? a->method :
	    "csv-import");
	snprintf(r.operator_, sizeof(r.operator_), "%s", a->operator_ ?
	    a->operator_ : "");
	r.text_id = a->text_id;
	r.at = pd_now();
	if (store_consent_add(st, account_id, &r, NULL, err) != 0 ||
	    store_evq_consent_event(st, account_id, cid, purpose_id, "grant",
	    r.source, err) != 0)
		return -1;
	stats->imported++;
	return 0;
}

/* Column index of "adult" in a header line, or -1. */
static int
consent_header_adult(const char *line)
{
	char f[64];
	int k;

	for (k = 0; k < 32 && consent_csv_field(line, k, f, sizeof(f)); k++)
		if (strcasecmp(f, "adult") == 0)
			return k;
	return -1;
}

int
consent_import(struct store *st, int64_t account_id, int64_t purpose_id,
    const char *path, const struct consent_act *a, FILE *report,
    struct consent_import_stats *stats, char *err)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, first[64];
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	int adult_col = 1, rc = 0;

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
			fprintf(report, "line %u: too long: skipped\n", lineno);
			stats->rows++;
			stats->bad++;
			continue;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (lineno == 1 && consent_csv_field(line, 0, first,
		    sizeof(first)) && strcasecmp(first, "email") == 0) {
			adult_col = consent_header_adult(line);
			continue;
		}
		rc = consent_import_row(st, account_id, purpose_id, line,
		    lineno, adult_col, a, report, stats, err);
	}
	free(line);
	fclose(f);
	if (rc == 0 && store_commit(st, err) == 0)
		return 0;
	store_rollback(st);
	return -1;
}

/* ---- double opt-in ---- */

int
consent_request(const struct pd_config *cfg, struct store *st,
    struct outq_ctx *q, const char *account, int64_t account_id,
    const char *email, const char *purpose, int64_t purpose_id,
    int64_t text_id, int64_t *outbound_id_r, char *err)
{
	struct store_consent_req req;
	struct outmsg_header auto_sub = { "Auto-Submitted", "auto-generated" };
	struct notify_mail m;
	struct notify_built b;
	struct outq_item it;
	char tok[UNSUB_TOKEN_MAX], url[512];
	int64_t cid, rid;
	json_t *data;
	int rc;

	if (store_contact_ensure(st, account_id, email, &cid, err) != 0)
		return -1;
	memset(&req, 0, sizeof(req));
	req.account_id = account_id;
	req.contact_id = cid;
	req.purpose_id = purpose_id;
	req.text_id = text_id;
	if (store_consent_req_add(st, &req, &rid, err) != 0 ||
	    unsub_token_make(cfg, UNSUB_T_CONFIRM, account_id, rid, purpose_id,
	    tok, NULL, err) != 0)
		return -1;
	snprintf(url, sizeof(url), "%s/c/%s", cfg->web_base_url, tok);
	data = json_pack("{s:{s:s}, s:{s:s}, s:s}", "contact", "email", email,
	    "purpose", "name", purpose, "confirm_url", url);
	m = (struct notify_mail){ .account = account, .tmpl = "consent-request",
	    .locale = NULL, .to = email, .data = data, .extra = &auto_sub,
	    .n_extra = 1 };
	rc = notify_build_mail(cfg, &m, &b, err);
	json_decref(data);
	if (rc != 0)
		return -1;
	it = (struct outq_item){ .account_id = account_id, .account = account,
	    .dossier_id = 0, .kind = "consent-request", .rcpt = email,
	    .from_domain = b.from_domain, .msg_path = b.path,
	    .message_id = b.message_id };
	return outq_enqueue(q, &it, outbound_id_r, err);
}

int
consent_confirm(struct store *st, const struct store_consent_req *req,
    const char *ip, const char *user_agent, int64_t now, char *err)
{
	struct consent_act a = { .action = "grant", .basis = "consent",
	    .source = "double_opt_in", .method = "double-opt-in-confirm",
	    .ip = ip, .user_agent = user_agent, .text_id = req->text_id };
	int rc;

	if (now - req->created > CONSENT_REQUEST_TTL)
		return CONSENT_EXPIRED;
	if (store_begin(st, err) != 0)
		return -1;
	rc = store_consent_req_confirm(st, req->id, now, err);
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

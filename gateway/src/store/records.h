/*
 * records.h - the plain data the store reads and writes: one struct per
 * row kind and the callback types of its lists.  No function and no
 * handle lives here, so services may hand these records to the front
 * ends (CLI, API, web pages), which include this header and never
 * store.h: they call services, never SQL.
 */
#ifndef PD_STORE_RECORDS_H
#define PD_STORE_RECORDS_H

#include <stddef.h>
#include <stdint.h>

struct store;

struct store_account {
	int64_t id;
	char name[64];
	char sender_policy[512];	/* "any", "contact", "domains:a,b" */
	int64_t created;
};

struct store_dossier {
	int64_t id;
	int64_t account_id;
	char account[64];
	char sender_policy[512];	/* of the account */
	char ref[128];
	char contact[256];
	char intake_local[80];		/* local part of the intake address */
	char status[8];			/* "open" / "closed" */
	int64_t created;
	int64_t closed;
	char requested[2048];		/* before v8: JSON array of names */
	char due[16];			/* "YYYY-MM-DD" or "" */
	char contact_name[256];		/* "" when not known */
	char contact_locale[16];	/* "fr", "en"... or "" */
	int64_t reminded_at;		/* the time the last reminder was for */
};

/*
 * One requested document of a dossier (v8).  state: "requested" (nothing
 * filed under it), "received" (a document waits for review), "accepted",
 * "rejected" (every document filed under it was rejected: asked again,
 * reason the latest rejection's).  Outstanding = requested or rejected.
 */
struct store_item {
	int64_t id;
	int64_t dossier_id;
	int position;			/* 1, 2... the order asked in */
	char slug[40];			/* the address part: d-<token>+<slug> */
	char label[256];		/* as shown to the client */
	int required;
	char types[128];		/* shown to the client: "PDF, JPEG" or "" */
	int64_t max_size;		/* shown to the client; 0 none */
	char state[12];
	char reason[1024];		/* state "rejected": why (<= 1000) */
	int64_t updated;
};
typedef int (*store_item_cb)(const struct store_item *it, void *ctx);

/* A named checklist of an account: items is a JSON array of
 * {"label", "required", "types", "max_size"}. */
struct store_checklist {
	int64_t id;
	int64_t account_id;
	char name[64];
	char items[8192];
	int64_t created;
};
typedef int (*store_checklist_cb)(const struct store_checklist *c,
    void *ctx);

struct store_message {
	int64_t id;
	int64_t account_id;
	int64_t dossier_id;
	const char *queue_id;
	const char *mail_from;
	const char *rcpt_to;		/* the recipient that names the dossier */
	const char *helo;
	const char *client_ip;
	int tls;
	int lmtp;
	const char *message_id;
	const char *subject;
	const char *from_header;
	uint64_t size;
	const char *sha256;		/* raw blob */
	const char *parse_status;	/* "ok", "review", "unparsed" */
	const char *anomalies;		/* comma list, may be "" */
	int64_t received;
	/* v9, inbound trust (NULL: "") */
	const char *auth_results;	/* RFC 8601 value, without the header */
	const char *spf, *dkim, *dmarc;	/* "pass", "fail", "none"... */
	int sender_pass;		/* 1 passed, -1 did not, 0 not checked */
	const char *signed_;		/* "smime", "pgp" or "" */
	const char *refused;		/* JSON [{filename,type,reason}] or "" */
};

struct store_document {
	int64_t id;
	int64_t account_id;
	int64_t dossier_id;
	int64_t message_id;
	const char *filename;		/* sanitised original name */
	const char *stored_name;	/* server-generated */
	const char *declared_type;
	const char *sniffed_type;
	uint64_t size;
	const char *sha256;
	const char *part_path;		/* MIME path, e.g. "1.2" */
	int64_t item_id;		/* 0: unassigned */
	const char *flags;		/* v9: "truncated,..." or NULL */
	const char *scan;		/* v9: "clean", "unscanned" or NULL */
};

/* A key and its value (account settings, purpose labels by locale). */
typedef int (*store_pair_cb)(const char *key, const char *value, void *ctx);
typedef int (*store_account_cb)(const struct store_account *a, void *ctx);
typedef int (*store_dossier_cb)(const struct store_dossier *d, void *ctx);
/* reading back, for `dossier show` and `document get` */
struct store_doc_row {
	int64_t id;
	int64_t dossier_id;
	int64_t message_id;
	char filename[512];
	char stored_name[80];
	char declared_type[128];
	char sniffed_type[128];
	uint64_t size;
	char sha256[65];
	int64_t received;
	int64_t item_id;		/* 0: unassigned */
	char item_slug[40];
	char item_label[256];
	char review[12];		/* pending / accepted / rejected */
	char review_reason[1024];	/* <= 1000 bytes */
	char reviewed_by[64];
	int64_t reviewed_at;
	char flags[128];		/* v9 */
	char scan[16];
};

struct store_msg_row {
	int64_t id;
	char queue_id[40];
	char mail_from[320];
	char rcpt_to[320];
	char client_ip[64];
	char helo[256];
	int tls;
	int lmtp;
	char message_id[512];
	char subject[1024];
	uint64_t size;
	char sha256[65];
	char parse_status[16];
	char anomalies[256];
	int64_t received;
	/* sha256 "": why the raw copy went ("retention") and when (0:
	 * before v7 recorded it). */
	char raw_removed[16];
	int64_t raw_removed_at;
	/* v9, inbound trust */
	char auth_results[1024];
	char spf[16], dkim[16], dmarc[16];
	int sender_pass;		/* 1 passed, -1 did not, 0 not checked */
	char signed_[16];
	char refused[2048];
};

struct store_event_row {
	int64_t id;
	int64_t at;
	char kind[64];
	char detail[1536];		/* a rejection's reason is 1000 */
};

typedef int (*store_doc_cb)(const struct store_doc_row *r, void *ctx);
typedef int (*store_msg_cb)(const struct store_msg_row *r, void *ctx);
typedef int (*store_event_cb)(const struct store_event_row *r, void *ctx);
struct store_outbound {
	int64_t id;
	int64_t account_id;
	int64_t dossier_id;		/* 0: none */
	char account[64];
	char kind[32];
	char rcpt[320];
	char rcpt_domain[256];
	char mail_from[320];		/* VERP address */
	char verp_token[64];
	char message_id[256];
	char from_domain[256];
	char sha256[65];		/* the queued message blob */
	uint64_t size;
	char state[16];	/* queued sending sent deferred bounced failed */
	int attempts;
	int64_t next_attempt;
	int64_t created;
	int64_t updated;
	int last_code;
	char last_enhanced[12];
	char last_text[256];
};

typedef int (*store_outbound_cb)(const struct store_outbound *o, void *ctx);
typedef int (*store_purpose_cb)(int64_t id, const char *name, void *ctx);
struct store_contact {
	int64_t id;
	int64_t account_id;
	char account[64];
	char email[320];
	char adult[8];			/* yes / no / unknown */
	int64_t adult_at;
	char adult_by[64];
	char locale[16];		/* the reader's language, "" unknown */
};

typedef int (*store_contact_cb)(const struct store_contact *c, void *ctx);
struct store_consent_rec {
	int64_t id;
	int64_t contact_id;
	int64_t purpose_id;
	char purpose[64];
	char action[12];		/* grant / withdraw */
	char basis[24];
	char source[16];
	char method[64];
	int64_t at;
	char ip[64];
	char user_agent[256];
	char operator_[64];
	int64_t text_id;		/* 0: none */
	char text_sha256[65];
	char *text;			/* list only: borrowed for the callback */
};

typedef int (*store_consent_cb)(const struct store_consent_rec *r, void *ctx);
struct store_consent_req {
	int64_t id;
	int64_t account_id;
	int64_t contact_id;
	int64_t purpose_id;
	int64_t text_id;
	int64_t created;
	int64_t confirmed;		/* 0: not yet */
};

struct store_campaign {
	int64_t id;
	int64_t account_id;
	char account[64];
	int64_t purpose_id;
	char purpose[64];
	char tmpl[40];
	char subject[512];
	char locale[16];
	char state[12];			/* draft / sending / queued */
	char audience[1024];		/* left out by reason (JSON), or "" */
	int has_body;			/* its own Markdown body (body_md) */
	int64_t created;
	int64_t started;
	int64_t finished;
};

struct store_campaign_rcpt {
	int64_t id;
	int64_t contact_id;
	char email[320];
	char state[12];		/* pending queuing queued skipped */
	char message_id[256];
	int64_t outbound_id;
	char detail[256];
};

typedef int (*store_campaign_rcpt_cb)(const struct store_campaign_rcpt *r,
    void *ctx);
typedef int (*store_count_cb)(const char *name, int64_t n, void *ctx);
typedef int (*store_campaign_cb)(const struct store_campaign *c, void *ctx);

/* API bearer tokens (store_api.c): only a prefix and a hash are kept. */
struct store_api_token {
	int64_t id;
	int64_t account_id;
	char account[64];
	char name[64];
	char prefix[32];
	char hash[65];			/* SHA-256 hex of the whole token */
	int64_t created;
	int64_t last_used;		/* 0: never */
	int64_t revoked;		/* 0: live, else when */
};
typedef int (*store_api_token_cb)(const struct store_api_token *t,
    void *ctx);

/* What a page of dossiers is filtered by (NULL: any). */
struct store_api_filter {
	const char *status;		/* "open" / "closed" */
	const char *contact;		/* address, compared case-insensitively */
	const char *ref;		/* exact */
};

/* `postdoc events list`: one event delivery to a plugin (store_evq.c). */
struct store_evq_row {
	int64_t id, event_id;
	char consumer[64], hook[8], stream[32], state[16], kind[64];
	unsigned attempts;
	int64_t next_attempt, created, updated;
	char last_error[256];
};

/* The audit trail of privacy rights and operators' changes. */
struct store_audit_row {
	int64_t id;
	int64_t at;
	char actor[64];
	char action[32];
	char account[64];
	char subject_hash[65];
	char detail[2048];
};
typedef int (*store_audit_cb)(const struct store_audit_row *r, void *ctx);

#endif

/*
 * intake_int.h - for intake/'s own files only: one delivery's state
 * (struct intake_msg and its documents), the worker's context, and the
 * functions the pipeline's files share: intake.c (the job, plugins,
 * replies, receipts), intake_mime.c (limits, the MIME walk, decoding
 * documents into blobs, parsing) and intake_store.c (rows, items and
 * the commit).
 */
#ifndef PD_INTAKE_INT_H
#define PD_INTAKE_INT_H

#include <stdint.h>

#include <gmime/gmime.h>
#include <magic.h>

#include "intake.h"
#include "store/blob.h"
#include "trust/trust.h"
#include "postdoc/plugin.h"

struct committer;
struct outq_ctx;
struct plugin_host;
struct pd_config;
struct store;

#define INTAKE_BUF (64 * 1024)	/* decode chunk and libmagic window */
#define INTAKE_HDR_CAP 998	/* RFC 5322 section 2.1.1 line limit */
#define INTAKE_TYPE_MAX 128

struct intake_ctx {
	const struct pd_config *cfg;
	struct plugin_host *ph;
	struct store *st;
	struct blob_store *bs;
	struct committer *commit;	/* the process's group commit */
	magic_t magic;			/* libmagic is not thread-safe */
	struct outq_ctx *q;		/* receipts; opened on first use */
	unsigned char *buf;		/* decode chunks */
	unsigned char *sniff;		/* first INTAKE_BUF decoded bytes */
	struct trust_ctx *trust;	/* SPF/DKIM/DMARC; opened on first use */
};

struct intake_doc {
	GMimePart *part;		/* borrowed from the parsed message */
	char path[128];			/* MIME part path, "1.2" */
	char *filename;			/* sanitised display name */
	char declared[INTAKE_TYPE_MAX];
	char sniffed[INTAKE_TYPE_MAX];
	char sha[65];
	char stored_name[40];
	uint64_t size;
	int64_t row_id;			/* per recipient; -1 = duplicate */
	int writing;			/* w owns a temp file */
	struct blob_writer w;
	char flags[64];			/* documents.flags: "truncated" */
};

/*
 * Where one recipient's documents go, decided inside the delivery's
 * transaction: the item its address names (d-<token>+<item>), or for
 * the plain address the dossier's only outstanding item, else none.
 */
struct intake_filing {
	int64_t item_id;		/* 0: unassigned */
	char slug[40];			/* the item's; or the part as sent */
	char label[256];
	int unknown;			/* the part named no item of it */
};

/* Anomalies, rendered in this order into messages.anomalies. */
static const char *const intake_anomaly_names[] = {
	"duplicate-content-type", "duplicate-content-transfer-encoding",
	"multipart-without-boundary", "multipart-without-parts",
	"filename-conflict", "invalid-boundary", "truncated-part",
	"header-line-dropped",
};
enum {
	AN_DUP_CT = 1 << 0, AN_DUP_CTE = 1 << 1, AN_NO_BOUNDARY = 1 << 2,
	AN_NO_PARTS = 1 << 3, AN_NAME_CONFLICT = 1 << 4,
	AN_BAD_BOUNDARY = 1 << 5, AN_TRUNCATED = 1 << 6,
	AN_LOST_LINE = 1 << 7,
};

/*
 * What the attachment hooks said of one document for one recipient
 * (m->verdicts[rcpt * ndocs + doc]): left out under refused_file =
 * "drop-file" (kind "type" or "malware", the plugin's reason), and the
 * scanners' mark for the documents row ("clean", "unscanned", "").
 */
struct intake_verdict {
	int refused;
	const char *kind;		/* "type", "malware" (static) */
	const char *scan;		/* "clean", "unscanned", "" (static) */
	char reason[POSTDOC_PLUGIN_TEXT_MAX + 64];
};

struct intake_msg {
	struct intake_ctx *ctx;
	const struct intake_job *job;
	struct store *st;		/* rows go here (the committer's) */
	int fd;
	GByteArray *mem;		/* borrows job->spool_mem */
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;
	char *subject, *message_id, *from;
	const char *parse_status;
	unsigned anomalies;
	char anomaly_text[256];
	int64_t parts;
	uint64_t header_bytes;
	struct intake_doc *docs;
	unsigned ndocs, docs_cap;
	int spool_gone;			/* adopted into the blob store */
	const void *raw;		/* inline bytes (store.inline_max): */
	void *raw_owned;		/* read from the spool, or NULL */
	size_t raw_len;
	struct intake_result fail;	/* why processing stopped */
	const char *signed_;		/* "smime", "pgp" or "" (static) */
	/* The content of an opaque S/MIME signed-data part, parsed: its
	 * documents' parts live in it (intake_mime.c; one level only). */
	GMimeStream *signed_stream;
	GMimeParser *signed_parser;
	GMimeObject *signed_inner;
	struct intake_verdict *verdicts; /* rcpt_count x ndocs, or NULL */
	/* intake_mime.c: what GMime's parser warned of (the bytes it could
	 * not place in the tree), read after the parse. */
	unsigned lost_lines;		/* lines neither header nor body */
	int64_t lost_line_at;		/* the first one's offset */
	int malformed;			/* GMime lost a part (overlong line) */
	int cut_short;			/* a multipart ran to the end (m09) */
	/* Sender authentication (intake_auth.c): the verdict, when
	 * checked, and per recipient 1 passed, -1 did not, 0 not checked. */
	int auth_checked;
	struct trust_verdict auth;
	int *sender_pass;
	int signed_cut_short;		/* the same, inside signed_inner */
};

/* intake.c: the verdict on document i for recipient r (never NULL). */
const struct intake_verdict *intake_verdict_of(const struct intake_msg *m,
    size_t r, unsigned i);
/* intake_store.c: recipient r's refused files as the JSON of
 * messages.refused ("" when none), in buf. */
void intake_refused_json(const struct intake_msg *m, size_t r, char *buf,
    size_t len);

/* intake.c */
void intake_reply(struct intake_result *r, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void intake_local_error(struct intake_msg *m, const char *what,
    const char *err);
int intake_errno_full(int e);
void intake_store_error(struct intake_msg *m, const char *what,
    const char *err, int full, int errnum);
void intake_cleanup(struct intake_msg *m);
/* intake_auth.c: the verdict once per message, the accounts' rules */
void intake_authenticate(struct intake_msg *m);
int intake_sender_rule(struct intake_msg *m, size_t i,
    struct intake_result *r);
/* intake_mime.c: parse the spooled message, walk it, decode documents */
int intake_parse(struct intake_msg *m);
/* intake_store.c: place blobs, then the rows through the committer */
int intake_store(struct intake_msg *m, const char *ok, int64_t *ids,
    unsigned *added, struct intake_filing *files);

#endif

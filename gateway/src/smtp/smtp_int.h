/*
 * smtp_int.h - for the files of one SMTP/LMTP session only (smtp_session.c,
 * smtp_cmd.c, smtp_data.c): the session, its transaction and DATA state,
 * and the calls they make across files.  Nothing outside smtp/ includes
 * it; the server and tests use smtp_session.h.
 */
#ifndef PD_SMTP_INT_H
#define PD_SMTP_INT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <openssl/evp.h>

#include "events/metrics.h"
#include "intake/intake.h"
#include "plugin/plugin_host.h"
#include "smtp_session.h"

#define SMTP_OUT_HIGH (256 * 1024)
#define SMTP_SPOOL_BUF 65536		/* every DATA's first buffer */
#define SMTP_MEM_MSG_MAX (1024 * 1024)	/* a buffer grows to this at most */
#define SMTP_CLOSE_LINGER 10	/* seconds the last reply may take to
				 * reach a client, once we hung up */

enum sess_state {
	SS_GREETING,	/* greet pause: the client must stay silent */
	SS_CMD,
	SS_DATA,
	SS_BUSY,	/* an intake worker holds the message */
	SS_CLOSING	/* last reply being flushed */
};

struct sess_rcpt {
	char addr[257];
	char verp[72];			/* bounce report for this token, or "" */
	int64_t dossier_id;
	int64_t account_id;
	char account[64];
	char ref[128];
};

/*
 * DATA byte machine and spool (allocated for DATA only).  buf starts at
 * SMTP_SPOOL_BUF and doubles up to SMTP_MEM_MSG_MAX while the server's
 * limits.spool_memory_max allows; the spool file is opened only when buf
 * must be flushed.  A message that ends in memory goes to the worker as
 * it is: it becomes an inline row or a blob file directly, where a spool
 * file would be created, read back by GMime and then unlinked or renamed
 * (or, for bytes already stored, only unlinked).
 */
struct data_state {
	int fd;			/* -1 until the first flush */
	size_t held;		/* octets of buf counted in srv->spool_mem */
	char path[4096];
	EVP_MD_CTX *md;
	uint64_t size;		/* octets written (after unstuffing) */
	uint64_t line_len;	/* octets of the current wire line */
	int bol, dot, cr;	/* at line start / line began with '.' / CR seen */
	int too_big, line_long, nul;
	int io_error;		/* errno of the spool's failure, 0 */
	/* The DATA clock (issue 16, defect 4): wire octets in the current
	 * data_rate_window and when the 354 went out. */
	uint64_t win_octets;
	int64_t start_ms;
	int clock_final;	/* the next tick is data_time_max's */
	size_t blen, bcap;
	unsigned char *buf;
};

struct intake_task;

struct smtp_session {
	struct smtp_server_ctx *srv;
	struct smtp_session *prev, *next;
	struct bufferevent *bev;
	struct event *timer;		/* greet, command, data or busy */
	struct event *life_timer;	/* whole-session cap */
	struct event *close_timer;	/* TLS flush on close */
	struct event *data_timer;	/* DATA: rate window, time limit */
	enum sess_state state;
	int lmtp, tls, esmtp, close_tries;
	int direct;	/* plaintext: replies written by smtp_flush, EV_WRITE
			 * enabled only while libevent finishes a short write */
	int hold;	/* replies being composed: smtp_flush waits */
	int peer_eof;	/* the client shut its side while intake worked */
	char client_ip[64];
	uint16_t client_port;
	char helo[256];
	int discarding;			/* inside an overlong command line */
	unsigned errors, rcpt_rejects;
	int in_mail, smtputf8;
	char mail_from[257];
	struct sess_rcpt *rcpts;
	size_t nrcpt, rcpt_cap, rcpt_cmds;
	struct data_state *d;
	struct intake_task *task;
	const char *verb;		/* command being handled, for logs */
	/* Log prefix: the queue id from MAIL to the end of the transaction,
	 * the session id before and between transactions. */
	char queue_id[24], sid[16];
};

struct intake_task {
	struct smtp_session *sess;	/* NULL once the session is gone */
	struct intake_job job;
	struct intake_rcpt *rcpts;
	struct sess_rcpt *rcopy;
	struct intake_result *results;
	char queue_id[24], helo[256], client_ip[64], mail_from[257];
	char spool_path[4096], sha[65];
	unsigned char *mem;		/* the message, when not spooled */
	size_t mem_held;		/* its share of srv->spool_mem */
	struct smtp_server_ctx *srv;
};

/* smtp_session.c: replies, the log, timers, the session's life */
void smtp_write_now(struct bufferevent *bev);
void smtp_flush(struct smtp_session *s);
const char *smtp_log_id(const struct smtp_session *s);
void smtp_reply(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void smtp_timer_arm(struct smtp_session *s, int64_t seconds);
void smtp_close(struct smtp_session *s);
void smtp_error_count(struct smtp_session *s);
void smtp_error(struct smtp_session *s, int code, const char *enh,
    const char *text);
void smtp_refuse(struct smtp_session *s, enum metrics_refusal why,
    const char *rcpt, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void smtp_info(const struct smtp_session *s,
    struct postdoc_session_info *i);
int smtp_plugin_refused(struct smtp_session *s,
    const struct plugin_outcome *o, const char *rcpt);
void smtp_txn_reset(struct smtp_session *s);
void smtp_process(struct smtp_session *s);
void smtp_lost_in_data(struct smtp_session *s);
void smtp_read_cb(struct bufferevent *bev, void *arg);
void smtp_write_cb(struct bufferevent *bev, void *arg);
void smtp_event_cb(struct bufferevent *bev, short what, void *arg);

/* smtp_cmd.c: the command table and the command lines */
void smtp_new_queue_id(struct smtp_session *s);
void smtp_process_commands(struct smtp_session *s);

/* smtp_data.c: the DATA byte machine, the spool, the intake hand-off */
int smtp_spool_open(struct smtp_session *s);
void smtp_data_discard(struct smtp_session *s);
void smtp_process_data(struct smtp_session *s);
void smtp_data_clock_start(struct smtp_session *s);
void smtp_data_clock_cb(evutil_socket_t fd, short what, void *arg);
void smtp_reply_all(struct smtp_session *s, enum metrics_refusal why,
    int code, const char *enh, const char *text);

#endif

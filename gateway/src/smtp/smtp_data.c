/*
 * smtp_data.c - the DATA phase of one session: the byte machine
 * (dot-unstuffing, CRLF.CRLF only, bare CR/LF refused, line, NUL and size
 * limits), the message held in memory or spooled to var/spool/<queue id>,
 * and the hand-off to an intake worker whose verdict becomes the reply.
 * It never blocks the loop on disk beyond the spool write, never on SQL.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/evp.h>

#include "lib/config.h"
#include "smtp_int.h"
#include "lib/util.h"
#include "lib/worker.h"

/* ---- the message's memory and its discard ---- */

/* srv->spool_mem (loop thread only) and its gauge on /metrics. */
static void
smtp_spool_mem_add(struct smtp_server_ctx *srv, size_t add, size_t sub)
{
	srv->spool_mem += add;
	srv->spool_mem -= sub;
	metrics_spool_memory(srv->spool_mem);
}

void
smtp_data_discard(struct smtp_session *s)
{
	if (s->d == NULL)
		return;
	evtimer_del(s->data_timer);
	if (s->d->fd >= 0) {
		close(s->d->fd);
		unlink(s->d->path);
	}
	/* Never opened (io_error with fd -1): no file to remove. */
	EVP_MD_CTX_free(s->d->md);
	smtp_spool_mem_add(s->srv, 0, s->d->held);
	free(s->d->buf);
	free(s->d);
	s->d = NULL;
}

int
smtp_spool_open(struct smtp_session *s)
{
	struct data_state *d = xcalloc(1, sizeof(*d));

	if (s->queue_id[0] == '\0')	/* MAIL drew it; never reached */
		smtp_new_queue_id(s);
	if ((size_t)snprintf(d->path, sizeof(d->path), "%s/%s",
	    s->srv->spool_dir, s->queue_id) >= sizeof(d->path))
		pd_fatal("spool path too long");
	d->fd = -1;
	d->bcap = SMTP_SPOOL_BUF;
	d->buf = xmalloc(d->bcap);
	d->md = EVP_MD_CTX_new();
	d->bol = 1;
	s->d = d;
	if (d->md == NULL ||
	    EVP_DigestInit_ex(d->md, EVP_sha256(), NULL) != 1) {
		log_err("%s: spool: cannot initialise sha256", s->queue_id);
		smtp_data_discard(s);
		return -1;
	}
	return 0;
}


/* ---- DATA: the byte machine ---- */

static void
smtp_spool_flush(struct data_state *d)
{
	size_t off = 0;
	ssize_t n;

	if (d->blen == 0)
		return;
	EVP_DigestUpdate(d->md, d->buf, d->blen);
	if (d->fd < 0 && !d->io_error) {
		d->fd = open(d->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (d->fd < 0) {
			d->io_error = errno != 0 ? errno : EIO;
			log_err("%s: spool %s: %s", strrchr(d->path, '/') + 1,
			    d->path, strerror(d->io_error));
		}
	}
	while (!d->io_error && off < d->blen) {
		n = write(d->fd, d->buf + off, d->blen - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* The spool file is named after the queue id. */
			d->io_error = n < 0 && errno != 0 ? errno : EIO;
			log_err("%s: spool write: %s%s", strrchr(d->path, '/') +
			    1, strerror(d->io_error), d->io_error == ENOSPC ?
			    " (ENOSPC: the disk is full)" : d->io_error ==
			    EDQUOT ? " (EDQUOT: the disk is full)" : "");
			break;
		}
		off += (size_t)n;
	}
	d->blen = 0;
}

/* Double a full, never flushed buf if the memory budget allows: 0. */
static int
smtp_spool_grow(struct smtp_session *s, struct data_state *d)
{
	size_t more = d->bcap;

	if (d->fd >= 0 || d->io_error || d->bcap * 2 > SMTP_MEM_MSG_MAX ||
	    s->srv->spool_mem + more >
	    (uint64_t)s->srv->cfg->spool_memory_max)
		return -1;
	d->buf = xrealloc(d->buf, d->bcap * 2);
	d->bcap *= 2;
	d->held += more;
	smtp_spool_mem_add(s->srv, more, 0);
	return 0;
}

static void
smtp_spool_put(struct smtp_session *s, struct data_state *d,
    const char *p, size_t n)
{
	if (d->too_big)
		return;
	/* Enforced while streaming (RFC 1870 6.3): past the limit we keep
	 * reading to the end of data but store nothing more. */
	if (d->size + n > (uint64_t)s->srv->cfg->message_size_max) {
		d->too_big = 1;
		return;
	}
	d->size += n;
	while (n > 0) {
		size_t room = d->bcap - d->blen, k = n < room ? n : room;

		memcpy(d->buf + d->blen, p, k);
		d->blen += k;
		p += k;
		n -= k;
		if (d->blen == d->bcap && smtp_spool_grow(s, d) != 0)
			smtp_spool_flush(d);
	}
}

enum data_step { DATA_MORE, DATA_END, DATA_BARE };

/*
 * Feed wire bytes.  RFC 5321 4.1.1.4 and 4.5.2: only CRLF.CRLF ends the
 * data; a leading '.' is removed from any other line.  A CR not followed
 * by LF, or an LF not preceded by CR, is refused (the smuggling class):
 * every other byte, NUL included, is kept exactly.  *used_r tells how many
 * bytes were consumed.
 */
static enum data_step
smtp_data_feed(struct smtp_session *s, const unsigned char *p, size_t n,
    size_t *used_r)
{
	struct data_state *d = s->d;
	uint64_t line_max = (uint64_t)s->srv->cfg->data_line_max;
	size_t i = 0, run = 0;	/* p[run..i) is plain text not yet spooled */
	const unsigned char *cr;
	size_t end, seg;

	while (i < n) {
		if (d->cr) {
			if (p[i] != '\n')
				return DATA_BARE;
			d->cr = 0;
			run = ++i;
			if (d->dot && d->line_len == 1) {
				*used_r = i;
				return DATA_END;
			}
			smtp_spool_put(s, d, "\r\n", 2);
			d->bol = 1;
			d->dot = 0;
			d->line_len = 0;
			continue;
		}
		if (d->bol && p[i] != '\r') {
			d->bol = 0;
			if (p[i] == '.') {
				d->dot = 1;	/* stuffing or terminator */
				run = i + 1;
			}
		}
		/* The rest of the line up to its CR, scanned a block at a
		 * time (memchr) rather than a byte at a time: this loop sees
		 * every octet of every message. */
		cr = memchr(p + i, '\r', n - i);
		end = cr != NULL ? (size_t)(cr - p) : n;
		seg = end - i;
		if (seg > 0) {
			if (memchr(p + i, '\n', seg) != NULL)
				return DATA_BARE;
			if (!d->nul && memchr(p + i, '\0', seg) != NULL)
				d->nul = 1;
			d->line_len += seg;
			if (d->line_len > line_max)
				d->line_long = 1;
		}
		i = end;
		if (cr != NULL) {
			if (i > run)
				smtp_spool_put(s, d, (const char *)p + run,
				    i - run);
			run = ++i;
			d->cr = 1;
		}
	}
	if (n > run)
		smtp_spool_put(s, d, (const char *)p + run, n - run);
	*used_r = n;
	return DATA_MORE;
}

/* ---- end of data: checks, then the intake worker ---- */

/* A refusal of the message: one reply for SMTP, the same reply for
 * each recipient in LMTP (each logged and counted). */
void
smtp_reply_all(struct smtp_session *s, enum metrics_refusal why, int code,
    const char *enh, const char *text)
{
	size_t i, n = s->lmtp ? s->nrcpt : 1;

	for (i = 0; i < n; i++)
		smtp_refuse(s, why, s->nrcpt > i ? s->rcpts[i].addr : NULL,
		    code, enh, "%s", text);
}

static void
smtp_task_free(struct intake_task *t)
{
	free(t->rcpts);
	free(t->rcopy);
	free(t->results);
	free(t->mem);
	smtp_spool_mem_add(t->srv, 0, t->mem_held);
	free(t);
}

static struct intake_task *
smtp_task_new(struct smtp_session *s)
{
	struct intake_task *t = xcalloc(1, sizeof(*t));
	size_t i, n = s->nrcpt;

	t->sess = s;
	t->srv = s->srv;
	snprintf(t->queue_id, sizeof(t->queue_id), "%s", s->queue_id);
	snprintf(t->helo, sizeof(t->helo), "%s", s->helo);
	snprintf(t->client_ip, sizeof(t->client_ip), "%s", s->client_ip);
	snprintf(t->mail_from, sizeof(t->mail_from), "%s", s->mail_from);
	snprintf(t->spool_path, sizeof(t->spool_path), "%s", s->d->path);
	if (s->d->fd < 0) {	/* all of it still in buf: the task takes buf */
		t->mem = s->d->buf;
		t->mem_held = s->d->held;
		s->d->buf = NULL;
		s->d->held = 0;
	}
	t->rcopy = xcalloc(n, sizeof(*t->rcopy));
	memcpy(t->rcopy, s->rcpts, n * sizeof(*t->rcopy));
	t->rcpts = xcalloc(n, sizeof(*t->rcpts));
	t->results = xcalloc(n, sizeof(*t->results));
	for (i = 0; i < n; i++) {
		t->rcpts[i].address = t->rcopy[i].addr;
		t->rcpts[i].dossier_id = t->rcopy[i].dossier_id;
		t->rcpts[i].account_id = t->rcopy[i].account_id;
		t->rcpts[i].account = t->rcopy[i].account;
		t->rcpts[i].dossier_ref = t->rcopy[i].ref;
		t->rcpts[i].verp_token = t->rcopy[i].verp[0] != '\0' ?
		    t->rcopy[i].verp : NULL;
	}
	t->job = (struct intake_job){
		.queue_id = t->queue_id, .helo = t->helo,
		.client_ip = t->client_ip, .tls = s->tls, .lmtp = s->lmtp,
		.mail_from = t->mail_from, .rcpt_count = n,
		.rcpts = t->rcpts, .spool_path = t->spool_path,
		.spool_mem = t->mem,
		.size = s->d->size, .sha256 = t->sha,
		.deadline_ms = pd_monotonic_ms() +
		    s->srv->cfg->message_time_max * 1000,
	};
	return t;
}

/* Worker thread: tctx is that thread's intake context. */
static void
smtp_task_run(void *tctx, void *arg)
{
	struct intake_task *t = arg;
	size_t i, n = t->job.lmtp ? t->job.rcpt_count : 1;

	if (tctx == NULL) {
		for (i = 0; i < n; i++)
			t->results[i] = (struct intake_result){ 451, "4.3.0",
			    "Error: intake unavailable, try again later" };
		if (t->mem == NULL)
			unlink(t->spool_path);
		return;
	}
	intake_process(tctx, &t->job, t->results);
}

static void
smtp_log_delivery(struct smtp_session *s, const struct intake_task *t)
{
	size_t i;

	for (i = 0; i < (s->lmtp ? t->job.rcpt_count : 1); i++)
		log_info("%s: from=<%s> to=<%s>%s size=%llu client=%s "
		    "session=%s status=%d %s %s", t->queue_id, t->mail_from,
		    t->rcopy[i].addr, !s->lmtp && t->job.rcpt_count > 1 ?
		    " (+more)" : "", (unsigned long long)t->job.size,
		    t->client_ip, s->sid, t->results[i].code,
		    t->results[i].enhanced, t->results[i].text);
}

/* Loop thread: the worker is done; answer and resume reading. */
static void
smtp_task_done(void *arg)
{
	struct intake_task *t = arg;
	struct smtp_session *s = t->sess;
	size_t i, n = t->job.lmtp ? t->job.rcpt_count : 1;
	int hangup = 0;

	if (s == NULL) {	/* the client left while we worked */
		smtp_task_free(t);
		return;
	}
	s->task = NULL;
	smtp_log_delivery(s, t);
	s->hold = 1;	/* LMTP: one reply per recipient, one write */
	for (i = 0; i < n; i++) {
		smtp_reply(s, t->results[i].code, t->results[i].enhanced,
		    "%s", t->results[i].text);
		if (t->results[i].code == 421)
			hangup = 1;
		if (t->results[i].code / 100 == 2) {
			s->srv->nmessages++;
			metrics_accepted(s->lmtp ? MP_LMTP : MP_SMTP);
		} else	/* intake refused: MIME limits, hooks, or ours */
			metrics_refused(t->results[i].code / 100 == 4 ?
			    MR_TEMPORARY : MR_CONTENT);
	}
	smtp_task_free(t);
	smtp_txn_reset(s);
	s->hold = 0;
	if (hangup) {
		smtp_close(s);
		return;
	}
	s->state = SS_CMD;
	smtp_timer_arm(s, s->srv->cfg->command_timeout);
	if (!s->peer_eof)
		bufferevent_enable(s->bev, EV_READ);
	smtp_flush(s);		/* unless a pipelined command will */
	smtp_process(s);	/* commands pipelined behind the data */
	/* smtp_close never frees at once: s is still ours here. */
	if (s->peer_eof && (s->state == SS_CMD || s->state == SS_DATA)) {
		smtp_lost_in_data(s);
		smtp_close(s);
	}
}

/* A refusal decided from the stream itself; the session goes on. */
static int
smtp_data_refusal(struct smtp_session *s)
{
	struct data_state *d = s->d;
	char text[128];

	if (d->too_big) {
		snprintf(text, sizeof(text), "Error: message size exceeds "
		    "fixed limit of %lld octets",
		    (long long)s->srv->cfg->message_size_max);
		smtp_reply_all(s, MR_SIZE, 552, "5.3.4", text);
	} else if (d->line_long)
		smtp_reply_all(s, MR_SYNTAX, 554, "5.6.0", "Error: line longer "
		    "than RFC 5321 allows (1000 octets with CRLF)");
	else if (d->nul)
		smtp_reply_all(s, MR_SYNTAX, 554, "5.6.0", "Error: NUL "
		    "character in message");
	else if (d->io_error == ENOSPC || d->io_error == EDQUOT)
		/* RFC 5321 4.2.3 452; RFC 3463 3.4 X.3.1 mail system full. */
		smtp_reply_all(s, MR_TEMPORARY, 452, "4.3.1", "Error: "
		    "insufficient system storage, try again later");
	else if (d->io_error)
		smtp_reply_all(s, MR_TEMPORARY, 451, "4.3.0", "Error: local "
		    "error writing the spool, try again later");
	else
		return 0;
	return 1;
}

static void
smtp_data_end(struct smtp_session *s)
{
	struct data_state *d = s->d;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct intake_task *t;

	/* Never flushed: the whole message is in buf and stays there. */
	if (d->fd < 0 && !d->io_error)
		EVP_DigestUpdate(d->md, d->buf, d->blen);
	else
		smtp_spool_flush(d);
	s->verb = "END-OF-DATA";
	/* The refusal leaves once the message's buffer (and its share of
	 * spool_memory_max) is released: a client that reads it may send
	 * the next message at once, and /metrics must not lag behind. */
	s->hold = 1;
	if (smtp_data_refusal(s)) {
		smtp_txn_reset(s);
		s->state = SS_CMD;
		smtp_timer_arm(s, s->srv->cfg->command_timeout);
		s->hold = 0;
		smtp_flush(s);
		return;
	}
	s->hold = 0;
	t = smtp_task_new(s);
	EVP_DigestFinal_ex(d->md, md, &mdlen);
	pd_hex(t->sha, md, mdlen);
	/* The worker owns the spool file from here (it fsyncs it). */
	if (d->fd >= 0)
		close(d->fd);
	EVP_MD_CTX_free(d->md);
	smtp_spool_mem_add(s->srv, 0, d->held);
	free(d->buf);
	free(d);
	s->d = NULL;
	evtimer_del(s->data_timer);	/* the final dot came in time */
	s->task = t;
	/*
	 * Reading goes on while intake works (pausing it cost two epoll_ctl
	 * a message): smtp_read_cb leaves SS_BUSY input alone, the 256 KiB
	 * read watermark bounds it, and an EOF waits for the replies
	 * (smtp_event_cb, smtp_task_done).
	 */
	s->state = SS_BUSY;
	/* The worker watches its own deadline; this is the backstop. */
	smtp_timer_arm(s, s->srv->cfg->message_time_max + 10);
	worker_submit(s->srv->workers, smtp_task_run, smtp_task_done, t);
}

/* ---- the DATA clock: a minimum rate and a time limit ---- */

/*
 * RFC 5321 4.5.3.2 sizes timeouts per command and per data block, so a
 * transfer's total time grows with the message; data_timeout (4.5.3.2.5)
 * is that per-block timer, and alone it lets a client that sends one
 * byte every few seconds hold its slot until session_timeout (issue 16,
 * defect 4).  So a DATA must also show progress, as sendmail's
 * DATA_PROGRESS_TIMEOUT and Postfix's smtpd_min_data_rate ask: at least
 * data_rate_min octets a second over each data_rate_window (tumbling
 * windows from the 354), and the final dot within data_time_max.  The
 * defaults are far below any honest link; see docs/postdoc.conf.5.
 */
static int64_t
smtp_data_clock_next(struct smtp_session *s, int64_t now_ms)
{
	const struct pd_config *cfg = s->srv->cfg;
	int64_t left = s->d->start_ms + cfg->data_time_max * 1000 - now_ms;
	int64_t win = cfg->data_rate_window * 1000;

	/* Which check the next tick makes, whatever the clock's rounding. */
	s->d->clock_final = !(cfg->data_rate_min > 0 && win < left);
	if (!s->d->clock_final)
		return win;
	return left > 0 ? left : 0;
}

static void
smtp_data_clock_arm(struct smtp_session *s, int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
	    (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(s->data_timer, &tv);
}

void
smtp_data_clock_start(struct smtp_session *s)
{
	int64_t now = pd_monotonic_ms();

	s->d->start_ms = now;
	s->d->win_octets = 0;
	smtp_data_clock_arm(s, smtp_data_clock_next(s, now));
}

/*
 * The clock ran out: 421 4.4.2 (RFC 3463 "bad connection", as for our
 * other timeouts) and the connection closed, the message lost (RFC 5321
 * 3.8: a server that must end a session answers 421 and closes).
 */
static void
smtp_data_too_slow(struct smtp_session *s, const char *why)
{
	s->verb = "DATA";
	smtp_refuse(s, MR_TIMEOUT, NULL, 421, "4.4.2", "%s Error: %s",
	    s->srv->cfg->hostname, why);
	smtp_txn_reset(s);
	smtp_close(s);
}

void
smtp_data_clock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	const struct pd_config *cfg = s->srv->cfg;
	int64_t now = pd_monotonic_ms();
	char why[96];

	(void)fd;
	(void)what;
	if (s->state != SS_DATA || s->d == NULL)
		return;
	if (s->d->clock_final) {
		snprintf(why, sizeof(why), "DATA time limit of %llds exceeded",
		    (long long)cfg->data_time_max);
		smtp_data_too_slow(s, why);
		return;
	}
	if (cfg->data_rate_min > 0 && s->d->win_octets <
	    (uint64_t)(cfg->data_rate_min * cfg->data_rate_window)) {
		snprintf(why, sizeof(why), "data rate below %lld octets/s "
		    "over %llds", (long long)cfg->data_rate_min,
		    (long long)cfg->data_rate_window);
		smtp_data_too_slow(s, why);
		return;
	}
	s->d->win_octets = 0;
	smtp_data_clock_arm(s, smtp_data_clock_next(s, now));
}

void
smtp_process_data(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v[8];
	enum data_step st = DATA_MORE;
	size_t used = 0, total;
	int i, nv;

	while (s->state == SS_DATA && evbuffer_get_length(in) > 0) {
		nv = evbuffer_peek(in, -1, NULL, v, 8);
		total = 0;
		for (i = 0; i < nv && i < 8 && st == DATA_MORE; i++) {
			st = smtp_data_feed(s, v[i].iov_base, v[i].iov_len,
			    &used);
			total += used;
		}
		evbuffer_drain(in, total);
		s->d->win_octets += total;
		if (st == DATA_BARE) {
			s->verb = "END-OF-DATA";
			smtp_reply_all(s, MR_SYNTAX, 550, "5.5.2", "Error: bare "
			    "<CR> or <LF> received in message data");
			smtp_txn_reset(s);
			smtp_close(s);
			return;
		}
		if (st == DATA_END) {
			smtp_data_end(s);
			return;
		}
	}
	if (s->state == SS_DATA)
		smtp_timer_arm(s, s->srv->cfg->data_timeout);
}


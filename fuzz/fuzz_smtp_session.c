/*
 * fuzz_smtp_session.c - libFuzzer target: the real SMTP/LMTP session
 * (command table, smtp_read_line, the DATA byte machine, the hand-off to
 * an intake worker) fed arbitrary byte streams over a socketpair.  No
 * seam: one server context per process (temp store with one account and
 * dossier, no plugins, one worker thread, no TLS) is reused across inputs;
 * each input is one connection, run until the session has freed itself.
 *
 * Input: raw client bytes, written one line at a time (a client that
 * waits for each reply, so corpus sessions get past the EHLO/DATA
 * pipelining checks).  A first byte >= 0xf0 is a header instead:
 * bit 0 = LMTP, bit 1 = fixed-size chunks of data[1] + 1 bytes (the
 * second byte is then header too), bit 2 = pipeline everything at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "lib/config.h"
#include "intake/intake.h"
#include "plugin/plugin_host.h"
#include "smtp/smtp_session.h"
#include "store/store.h"
#include "lib/util.h"
#include "lib/worker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stored messages pile up in the store and blobs: start afresh now and
 * then so a long run does not slow down or fill the disk. */
#define FZ_RESET_EVERY 2048
#define FZ_ROUNDS_MAX 4096	/* loop iterations per chunk, a backstop */

static struct pd_config *fz_cfg;
static struct smtp_server_ctx fz_srv;
static char fz_dir[128];
static unsigned fz_runs;

static void *
fz_worker_init(void *arg)
{
	struct intake_ctx *ictx = NULL;
	char err[PD_ERRLEN];

	if (intake_ctx_new(fz_cfg, fz_srv.plugins, &ictx, err) != 0) {
		fprintf(stderr, "fuzz_smtp_session worker: %s\n", err);
		abort();
	}
	return ictx;
}

static void
fz_worker_fini(void *tctx)
{
	struct intake_ctx *ictx = tctx;

	intake_ctx_free(&ictx);
}

/* A fresh var_dir: store with the dossiers the corpus writes to. */
static void
fz_server_up(void)
{
	struct store *st = NULL;
	char err[PD_ERRLEN], cmd[300];
	int64_t acct, dossier;

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fz_dir);
	if (system(cmd) != 0 || pd_mkdirs(fz_dir, 0700) != 0)
		abort();
	snprintf(fz_srv.spool_dir, sizeof(fz_srv.spool_dir), "%s/spool",
	    fz_dir);
	if (pd_mkdirs(fz_srv.spool_dir, 0700) != 0 ||
	    store_open(fz_cfg->db_path, fz_cfg->sync_mode, &st, err) != 0 ||
	    store_account_add(st, "FUZZ", "any", &acct, err) != 0 ||
	    store_dossier_create(st, acct, "alice@sender.example", "REF",
	    "d-7f3a9c2e", &dossier, err) != 0 ||
	    store_dossier_create(st, acct, "a@b.example", "REF2",
	    "d-aaaaaaaaaaaaaaaaaaaaaaaaaa", &dossier, err) != 0 ||
	    store_open(fz_cfg->db_path, fz_cfg->sync_mode, &fz_srv.store, err)
	    != 0 || plugin_host_load(fz_cfg, &fz_srv.plugins, err) != 0) {
		fprintf(stderr, "fuzz_smtp_session setup: %s\n", err);
		abort();
	}
	store_close(&st);
	fz_srv.workers = worker_pool_new(fz_srv.base, 1, fz_worker_init,
	    fz_worker_fini, &fz_srv);
}

static void
fz_server_down(void)
{
	smtp_session_close_all(&fz_srv);
	worker_pool_free(&fz_srv.workers);
	plugin_host_free(&fz_srv.plugins);
	store_close(&fz_srv.store);
}

static void
fz_setup(void)
{
	char err[8192], conf[256];
	FILE *f;

	snprintf(fz_dir, sizeof(fz_dir), "/tmp/fuzz-smtp-%d", (int)getpid());
	snprintf(conf, sizeof(conf), "%s.conf", fz_dir);
	if ((f = fopen(conf, "w")) == NULL)
		abort();
	/* The corpus writes to d-...@dossiers.example; intake gets 2 s. */
	fprintf(f, "store = { var_dir = \"%s\"; sync = \"normal\"; };\n"
	    "server = { log_level = \"err\"; workers = 1; };\n"
	    "intake = { domain = \"dossiers.example\"; };\n"
	    "limits = { message_time_max = 2; greet_pause_ms = 0; "
	    "message_size_max = 1048576; };\n"
	    "outbound = { receipts = false; };\nauth = { checks = false; };\nplugins = ();\n", fz_dir);
	fclose(f);
	if (config_load(conf, &fz_cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_smtp_session config: %s\n", err);
		abort();
	}
	unlink(conf);
	pd_log_set_level(PD_LOG_ERR);
	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN);
	fz_srv.cfg = fz_cfg;
	if ((fz_srv.base = event_base_new()) == NULL)
		abort();
	fz_server_up();
}

/* Read and drop the server's replies (FUZZ_SMTP_ECHO=1: to stderr, to
 * follow one input); 1 if any came. */
static int
fz_drain(int fd)
{
	static int echo = -1;
	char buf[16384];
	ssize_t n;
	int got = 0;

	if (echo < 0)
		echo = getenv("FUZZ_SMTP_ECHO") != NULL;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (echo)
			fwrite(buf, 1, (size_t)n, stderr);
		got = 1;
	}
	return got;
}

/*
 * Run the loop until the session has nothing left to do: no worker job
 * pending, no unread bytes on its socket and a round without replies.
 * A pending intake job blocks in EVLOOP_ONCE: its completion wakes us.
 */
static void
fz_pump(int cfd, int sfd)
{
	int64_t until = pd_monotonic_ms() + 1000 * (fz_cfg->message_time_max
	    + 15);
	int i, quiet = 0, unread;

	for (i = 0; i < FZ_ROUNDS_MAX && quiet < 2; i++) {
		if (worker_pool_pending(fz_srv.workers) > 0) {
			if (pd_monotonic_ms() > until)
				break;
			event_base_loop(fz_srv.base, EVLOOP_ONCE);
			quiet = 0;
			continue;
		}
		event_base_loop(fz_srv.base, EVLOOP_NONBLOCK);
		unread = 0;
		/* While the session lives it owns sfd, so sfd is ours to ask. */
		if (fz_srv.nsessions > 0 && ioctl(sfd, FIONREAD, &unread) != 0)
			unread = 0;
		if (fz_drain(cfd) || unread > 0)
			quiet = 0;
		else
			quiet++;
	}
}

/* Write all of p, pumping while the socket is full; 0 if the server
 * stopped reading for good. */
static int
fz_send(int cfd, int sfd, const uint8_t *p, size_t n)
{
	int stalls = 0;
	ssize_t w;

	while (n > 0) {
		w = write(cfd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			stalls = 0;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return 0;	/* EPIPE: the session hung up */
		fz_pump(cfd, sfd);
		if (fz_srv.nsessions == 0 || ++stalls > 64)
			return 0;
	}
	fz_pump(cfd, sfd);
	return fz_srv.nsessions > 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sin;
	size_t off = 0, n, chunk = 0;
	int sv[2], lmtp = 0, whole = 0, i;
	const uint8_t *lf;

	if (fz_cfg == NULL)
		fz_setup();
	if (++fz_runs % FZ_RESET_EVERY == 0) {
		fz_server_down();
		fz_server_up();
	}
	if (size > 0 && data[0] >= 0xf0) {
		lmtp = data[0] & 1;
		whole = (data[0] & 4) != 0;
		off = 1;
		if ((data[0] & 2) && size > 1) {
			chunk = (size_t)data[1] + 1;
			off = 2;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	evutil_make_socket_nonblocking(sv[1]);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	smtp_session_start(&fz_srv, sv[0], (struct sockaddr *)&sin,
	    sizeof(sin), lmtp);
	fz_pump(sv[1], sv[0]);	/* the banner */
	while (off < size && fz_srv.nsessions > 0) {
		if (whole)
			n = size - off;
		else if (chunk > 0)
			n = size - off < chunk ? size - off : chunk;
		else {
			lf = memchr(data + off, '\n', size - off);
			n = lf != NULL ? (size_t)(lf - (data + off)) + 1 :
			    size - off;
		}
		if (!fz_send(sv[1], sv[0], data + off, n))
			break;
		off += n;
	}
	/* The client leaves; the session frees itself on EOF (after an
	 * intake job still running has answered). */
	close(sv[1]);
	for (i = 0; i < 8 && fz_srv.nsessions > 0; i++) {
		fz_pump(-1, sv[0]);
		if (worker_pool_pending(fz_srv.workers) == 0)
			event_base_loop(fz_srv.base, EVLOOP_NONBLOCK);
	}
	if (fz_srv.nsessions > 0) {
		fprintf(stderr, "fuzz_smtp_session: session did not end\n");
		abort();
	}
	return 0;
}

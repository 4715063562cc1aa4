/*
 * blast - the benchmark's SMTP driver: like Postfix's smtp-source -d
 * (N connections, each reused for its share of the messages, one command
 * at a time, no pipelining) but every message is unique.  smtp-source -F
 * sends one file over and over, and Postdoc files identical bytes as a
 * duplicate (an event instead of rows and blobs): a benchmark driven that
 * way measures a path real mail rarely takes.
 *
 *   blast -s SESSIONS -m COUNT -F FILE -f FROM -t TO HOST:PORT
 *
 * FILE is the message, CRLF line ends, dot-stuffed, ending in CRLF.  Each
 * occurrence of SEQSEQSEQSEQ (12 octets, base64-safe) is replaced by the
 * message's 12-digit sequence number, so headers and attachment bytes
 * differ from one message to the next.  Exits 0 when every message got a
 * 250, else 1 with a count of failures on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define PH "SEQSEQSEQSEQ"
#define PH_LEN 12

static const char *tmpl;
static size_t tlen;
static size_t *ph_at;
static size_t nph;
static long count;
static const char *mail_from, *rcpt_to;
static struct sockaddr_in peer;
static atomic_long next_seq;
static atomic_long failures;

struct conn {
	int fd;
	char in[8192];
	size_t have;
	char *msg;		/* this thread's copy of the template */
};

static int
write_all(int fd, const struct iovec *iov, int n)
{
	struct iovec v[4];
	ssize_t w;
	int i;

	memcpy(v, iov, (size_t)n * sizeof(*v));
	for (i = 0; i < n;) {
		if ((w = writev(fd, v + i, n - i)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (i < n && (size_t)w >= v[i].iov_len)
			w -= (ssize_t)v[i++].iov_len;
		if (i < n) {
			v[i].iov_base = (char *)v[i].iov_base + w;
			v[i].iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Read one whole reply (the last line has a space after the code). */
static int
reply(struct conn *c)
{
	char *eol, *line;
	ssize_t r;

	for (;;) {
		line = c->in;
		while ((eol = memchr(line, '\n', c->have - (size_t)(line - c->in)))
		    != NULL) {
			if (eol - line >= 4 && line[3] == ' ') {
				int code = atoi(line);
				size_t used = (size_t)(eol + 1 - c->in);

				memmove(c->in, eol + 1, c->have - used);
				c->have -= used;
				return code;
			}
			line = eol + 1;
		}
		if (c->have == sizeof(c->in))
			return -1;
		r = read(c->fd, c->in + c->have, sizeof(c->in) - c->have);
		if (r <= 0)
			return -1;
		c->have += (size_t)r;
	}
}

static int
cmd(struct conn *c, const char *line, int want)
{
	struct iovec v[2] = { { (void *)line, strlen(line) },
	    { (void *)"\r\n", 2 } };

	if (write_all(c->fd, v, 2) != 0)
		return -1;
	return reply(c) / 100 == want ? 0 : -1;
}

static int
send_one(struct conn *c, long seq)
{
	char num[32], line[1024];
	struct iovec v[2];
	size_t i;

	snprintf(num, sizeof(num), "%012ld", seq % 1000000000000L);
	for (i = 0; i < nph; i++)
		memcpy(c->msg + ph_at[i], num, PH_LEN);
	snprintf(line, sizeof(line), "MAIL FROM:<%s>", mail_from);
	if (cmd(c, line, 2) != 0)
		return -1;
	snprintf(line, sizeof(line), "RCPT TO:<%s>", rcpt_to);
	if (cmd(c, line, 2) != 0 || cmd(c, "DATA", 3) != 0)
		return -1;
	v[0] = (struct iovec){ c->msg, tlen };
	v[1] = (struct iovec){ (void *)".\r\n", 3 };
	if (write_all(c->fd, v, 2) != 0)
		return -1;
	return reply(c) == 250 ? 0 : -1;
}

static void *
session(void *arg)
{
	struct conn c = { .fd = -1 };
	long seq;
	int one = 1;

	(void)arg;
	c.msg = malloc(tlen);
	if (c.msg == NULL)
		goto fail;
	memcpy(c.msg, tmpl, tlen);
	if ((c.fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    connect(c.fd, (struct sockaddr *)&peer, sizeof(peer)) != 0)
		goto fail;
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (reply(&c) != 220 || cmd(&c, "EHLO client.bench", 2) != 0)
		goto fail;
	while ((seq = atomic_fetch_add(&next_seq, 1)) < count)
		if (send_one(&c, seq) != 0)
			goto fail;
	cmd(&c, "QUIT", 2);
	close(c.fd);
	free(c.msg);
	return NULL;
fail:
	/* The messages this session would have sent are not sent either. */
	if (c.fd >= 0)
		close(c.fd);
	free(c.msg);
	atomic_fetch_add(&failures, 1);
	return NULL;
}

static int
load(const char *path)
{
	FILE *f = fopen(path, "rb");
	const char *p;
	long n;
	char *buf;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)n)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		return -1;
	}
	fclose(f);
	tmpl = buf;
	tlen = (size_t)n;
	ph_at = calloc(tlen / PH_LEN + 1, sizeof(*ph_at));
	for (p = tmpl; (p = memmem(p, tlen - (size_t)(p - tmpl), PH, PH_LEN))
	    != NULL; p += PH_LEN)
		ph_at[nph++] = (size_t)(p - tmpl);
	return 0;
}

int
main(int argc, char **argv)
{
	int opt, sessions = 1, i;
	const char *file = NULL;
	char host[256], *colon;
	pthread_t *th;

	while ((opt = getopt(argc, argv, "s:m:F:f:t:")) != -1) {
		switch (opt) {
		case 's': sessions = atoi(optarg); break;
		case 'm': count = atol(optarg); break;
		case 'F': file = optarg; break;
		case 'f': mail_from = optarg; break;
		case 't': rcpt_to = optarg; break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || file == NULL || mail_from == NULL ||
	    rcpt_to == NULL || sessions < 1 || count < 1)
		goto usage;
	snprintf(host, sizeof(host), "%s", argv[optind]);
	if ((colon = strrchr(host, ':')) == NULL)
		goto usage;
	*colon = '\0';
	peer.sin_family = AF_INET;
	peer.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &peer.sin_addr) != 1 || load(file) != 0)
		goto usage;
	th = calloc((size_t)sessions, sizeof(*th));
	for (i = 0; i < sessions; i++)
		pthread_create(&th[i], NULL, session, NULL);
	for (i = 0; i < sessions; i++)
		pthread_join(th[i], NULL);
	if (failures > 0) {
		fprintf(stderr, "blast: %ld session(s) failed\n",
		    (long)failures);
		return 1;
	}
	return 0;
usage:
	fprintf(stderr, "usage: blast -s SESSIONS -m COUNT -F FILE -f FROM "
	    "-t TO IPV4:PORT\n");
	return 2;
}

/*
 * sync_webdav - mirrors each stored document to a WebDAV folder
 * (Nextcloud, ownCloud, SharePoint, Apache or nginx DAV) with libcurl:
 * <url>/<account>/<dossier ref>/<id>-<file>, names from sync_name.h.
 * It only creates: MKCOL for missing collections and a PUT after a HEAD
 * saw the name free, guarded again by If-None-Match: * (RFC 7232 section
 * 3.2) where the server honours it (Apache, Nextcloud; nginx ignores it
 * on PUT, so there the HEAD is the guard).  It never sends DELETE,
 * PROPFIND, MOVE or COPY, never follows a redirect, and reads (HEAD,
 * GET) only the one name it is about to take.
 *
 * settings = { url = "https://dav.example/remote.php/dav/files/postdoc/";
 *              username = "postdoc"; password = "..."; timeout = 20;
 *              ca_file = "/etc/ssl/private-ca.pem"; };   (all but url
 *              optional)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "postdoc/plugin.h"
#include "../common/sync_name.h"

#define DAV_BASE_MAX 2048
/* base + 3 encoded segments (each byte at most "%XX") + slashes */
#define DAV_URL_MAX (DAV_BASE_MAX + 3 * (3 * SYNC_SEGMENT_MAX + 96) + 8)
#define DAV_TIMEOUT_DEFAULT 20
#define DAV_CHUNK 32768
/* Bodies go at least this fast, or the request times out (seconds). */
#define DAV_MIN_RATE 65536

struct dav_state {
	char *url;		/* the dedicated folder, ending in '/' */
	char *username, *password, *ca_file;
	long timeout;
	const struct postdoc_host *host;	/* serve only, after start */
};

/* One sync call: its handle (connections reused across its requests). */
struct dav_call {
	const struct dav_state *st;
	const struct postdoc_document *doc;
	CURL *h;
	const char *method;	/* of the last request, for messages */
	char errbuf[CURL_ERROR_SIZE];
	long status;
	curl_off_t length;	/* Content-Length of a HEAD, -1 unknown */
};

/* What GET compares the remote body against. */
struct dav_cmp {
	CURL *h;
	FILE *local;
	int differ;
};

static char *
dav_setting(const config_setting_t *s, const char *name)
{
	const char *v = NULL;

	if (s == NULL || !config_setting_lookup_string(s, name, &v))
		return NULL;
	return strdup(v);
}

static void
dav_deinit(void *state)
{
	struct dav_state *st = state;

	if (st == NULL)
		return;
	free(st->url);
	free(st->username);
	free(st->password);
	free(st->ca_file);
	free(st);
	curl_global_cleanup();
}

/* The URL names the folder; credentials in it would end up in logs. */
static const char *
dav_check_url(const char *url)
{
	const char *auth, *end;

	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		return "must start with http:// or https://";
	if (strlen(url) + 2 > DAV_BASE_MAX)
		return "is too long";
	auth = strstr(url, "://") + 3;
	end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(end - auth)) != NULL)
		return "must not hold credentials (use username, password)";
	if (strpbrk(url, "?# \t\r\n") != NULL)
		return "must not hold a query, a fragment or spaces";
	return NULL;
}

static int
dav_init(const config_setting_t *settings, void **state_r, char *err,
    size_t errlen)
{
	struct dav_state *st;
	const char *why;
	int line = settings != NULL ? config_setting_source_line(settings) : 0;
	int t = DAV_TIMEOUT_DEFAULT;
	size_t n;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "sync_webdav: curl_global_init failed");
		return -1;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "sync_webdav: out of memory");
		curl_global_cleanup();
		return -1;
	}
	st->url = dav_setting(settings, "url");
	st->username = dav_setting(settings, "username");
	st->password = dav_setting(settings, "password");
	st->ca_file = dav_setting(settings, "ca_file");
	if (settings != NULL)
		config_setting_lookup_int(settings, "timeout", &t);
	why = st->url == NULL ? "is required" : dav_check_url(st->url);
	if (why == NULL && (t < 1 || t > 600))
		why = "is fine, but timeout must be 1..600 seconds";
	if (why == NULL && (st->username == NULL) != (st->password == NULL))
		why = "is fine, but username and password go together";
	if (why != NULL) {
		snprintf(err, errlen, "sync_webdav: settings (line %d): url %s",
		    line, why);
		dav_deinit(st);
		return -1;
	}
	n = strlen(st->url);
	if (st->url[n - 1] != '/') {
		char *u = realloc(st->url, n + 2);

		if (u == NULL) {
			snprintf(err, errlen, "sync_webdav: out of memory");
			dav_deinit(st);
			return -1;
		}
		memcpy(u + n, "/", 2);
		st->url = u;
	}
	st->timeout = t;
	*state_r = st;
	return 0;
}

/* The core's log, once serve has started us; written by start/stop on
 * the main thread and read on the event thread, hence atomics. */
static int
dav_start(void *state, const struct postdoc_host *host, char *err,
    size_t errlen)
{
	struct dav_state *st = state;

	(void)err;
	(void)errlen;
	__atomic_store_n(&st->host, host, __ATOMIC_RELEASE);
	return 0;
}

static void
dav_stop(void *state)
{
	struct dav_state *st = state;

	__atomic_store_n(&st->host, NULL, __ATOMIC_RELEASE);
}

/* RFC 3986 section 2.3: only unreserved characters stay as they are. */
static void
dav_append_segment(char *url, size_t urlen, const char *seg, int dir)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(url);

	for (; *seg != '\0' && n + 4 < urlen; seg++) {
		unsigned char c = (unsigned char)*seg;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-._~", c) != NULL) {
			url[n++] = (char)c;
		} else {
			url[n++] = '%';
			url[n++] = hex[c >> 4];
			url[n++] = hex[c & 15];
		}
	}
	if (dir && n + 1 < urlen)
		url[n++] = '/';
	url[n] = '\0';
}

static size_t
dav_discard_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * nmemb;
}

/*
 * GET body against the local bytes; a difference aborts the transfer.
 * Only a 200's body is content: an error page says nothing about what
 * the name holds.
 */
static size_t
dav_compare_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct dav_cmp *cmp = arg;
	size_t len = size * nmemb, off = 0;
	long status = 0;
	char buf[DAV_CHUNK];

	curl_easy_getinfo(cmp->h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		return len;

	while (off < len) {
		size_t want = len - off < sizeof(buf) ? len - off : sizeof(buf);

		if (fread(buf, 1, want, cmp->local) != want ||
		    memcmp(buf, ptr + off, want) != 0) {
			cmp->differ = 1;
			return 0;
		}
		off += want;
	}
	return len;
}

/* Options every request gets, from a clean handle. */
static void
dav_prepare(struct dav_call *c, const char *method, const char *url,
    uint64_t body)
{
	const struct dav_state *st = c->st;

	curl_easy_reset(c->h);
	c->method = method;
	c->errbuf[0] = '\0';
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, st->timeout);
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT,
	    st->timeout + (long)(body / DAV_MIN_RATE));
	curl_easy_setopt(c->h, CURLOPT_USERAGENT, "postdoc-sync_webdav/1.0");
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, dav_discard_cb);
	if (st->username != NULL) {
		curl_easy_setopt(c->h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c->h, CURLOPT_USERNAME, st->username);
		curl_easy_setopt(c->h, CURLOPT_PASSWORD, st->password);
	}
	if (st->ca_file != NULL)
		curl_easy_setopt(c->h, CURLOPT_CAINFO, st->ca_file);
}

static CURLcode
dav_perform(struct dav_call *c)
{
	CURLcode rc = curl_easy_perform(c->h);

	c->status = 0;
	c->length = -1;
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
	curl_easy_getinfo(c->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &c->length);
	return rc;
}

/*
 * A failed request as the verdict's text, always DENYSOFT: a server
 * error, a timeout or refused credentials can all be fixed without us,
 * and the core retries with backoff.  401/403 also go to the log at
 * warning level, since only an operator can fix those.
 */
static enum postdoc_verdict
dav_soft(struct dav_call *c, CURLcode rc, const char *what,
    struct postdoc_reply *r)
{
	const char *method = c->method != NULL ? c->method : "request";
	const struct postdoc_host *host =
	    __atomic_load_n(&c->st->host, __ATOMIC_ACQUIRE);

	if (rc != CURLE_OK)
		snprintf(r->text, sizeof(r->text), "sync_webdav: %s %.80s: "
		    "%.90s", method, what, c->errbuf[0] != '\0' ? c->errbuf :
		    curl_easy_strerror(rc));
	else
		snprintf(r->text, sizeof(r->text), "sync_webdav: %s %.80s: "
		    "HTTP %ld", method, what, c->status);
	if (rc == CURLE_OK && (c->status == 401 || c->status == 403) &&
	    host != NULL && host->log != NULL)
		host->log(host->ctx, POSTDOC_LOG_WARN, "sync_webdav: %s "
		    "refused our credentials (HTTP %ld): check username and "
		    "password; retrying with backoff", c->st->url, c->status);
	return POSTDOC_DENYSOFT;
}

/* 1 if the GET body at url is the document's bytes, 0 if not, -1 error. */
static int
dav_same(struct dav_call *c, const char *url, CURLcode *rc_r)
{
	struct dav_cmp cmp = { .h = c->h, .local = fopen(c->doc->path, "rb") };
	CURLcode rc;

	if (cmp.local == NULL) {
		snprintf(c->errbuf, sizeof(c->errbuf), "cannot read the "
		    "document's bytes");
		*rc_r = CURLE_READ_ERROR;
		return -1;
	}
	dav_prepare(c, "GET", url, c->doc->size);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, dav_compare_cb);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &cmp);
	rc = *rc_r = dav_perform(c);
	if (rc == CURLE_OK && c->status == 200 && !cmp.differ &&
	    fgetc(cmp.local) == EOF) {
		fclose(cmp.local);
		return 1;
	}
	fclose(cmp.local);
	if (c->status == 200 && (cmp.differ || rc == CURLE_OK))
		return 0;
	return -1;
}

/*
 * Does url already hold this document?  1 yes (a repeated call), 0
 * something else is there, 2 nothing is, -1 the server failed us.  HEAD
 * first, so another file is read only when its size matches.
 */
static int
dav_holds(struct dav_call *c, const char *url, CURLcode *rc_r)
{
	dav_prepare(c, "HEAD", url, 0);
	curl_easy_setopt(c->h, CURLOPT_NOBODY, 1L);
	if ((*rc_r = dav_perform(c)) != CURLE_OK)
		return -1;
	if (c->status == 404 || c->status == 410)
		return 2;
	if (c->status >= 300 && c->status < 400)
		return 0;	/* a collection, or a redirect we never follow */
	if (c->status != 200)
		return -1;
	if (c->length >= 0 && (uint64_t)c->length != c->doc->size)
		return 0;
	return dav_same(c, url, rc_r);
}

/* PUT the bytes, never over an existing resource.  Answers the status. */
static CURLcode
dav_put(struct dav_call *c, const char *url)
{
	const char *type = c->doc->content_type;
	struct curl_slist *hdr = NULL, *h;
	char ctype[160];
	FILE *in = fopen(c->doc->path, "rb");
	CURLcode rc;
	size_t i;

	c->method = "PUT";
	if (in == NULL) {
		snprintf(c->errbuf, sizeof(c->errbuf), "cannot read the "
		    "document's bytes");
		return CURLE_READ_ERROR;
	}
	/* The sniffed type comes from libmagic; keep a header-safe one. */
	if (type == NULL || type[0] == '\0' || strlen(type) > 100)
		type = "application/octet-stream";
	for (i = 0; type[i] != '\0'; i++)
		if ((unsigned char)type[i] <= ' ' ||
		    (unsigned char)type[i] >= 0x7f)
			break;
	if (type[i] != '\0')
		type = "application/octet-stream";
	snprintf(ctype, sizeof(ctype), "Content-Type: %s", type);
	/* "Expect:" drops curl's 100-continue wait before the body. */
	if ((hdr = curl_slist_append(NULL, "If-None-Match: *")) == NULL ||
	    (h = curl_slist_append(hdr, ctype)) == NULL ||
	    (h = curl_slist_append(hdr, "Expect:")) == NULL) {
		curl_slist_free_all(hdr);
		fclose(in);
		return CURLE_OUT_OF_MEMORY;
	}
	dav_prepare(c, "PUT", url, c->doc->size);
	curl_easy_setopt(c->h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c->h, CURLOPT_READDATA, in);
	curl_easy_setopt(c->h, CURLOPT_INFILESIZE_LARGE,
	    (curl_off_t)c->doc->size);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdr);
	rc = dav_perform(c);
	curl_slist_free_all(hdr);
	fclose(in);
	return rc;
}

/*
 * MKCOL each level below the folder, top down (RFC 4918 section 9.3.1:
 * 201 created, 405 it exists, 409 its parent is missing).  A 409 for the
 * account collection means the configured folder itself is missing: it
 * is the operator's to create, as sync_dir's root is.
 */
static enum postdoc_verdict
dav_mkcols(struct dav_call *c, const char *acct_url, const char *ref_url,
    struct postdoc_reply *r)
{
	const char *urls[2] = { acct_url, ref_url };
	CURLcode rc;
	int i;

	for (i = 0; i < 2; i++) {
		dav_prepare(c, "MKCOL", urls[i], 0);
		curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, "MKCOL");
		rc = dav_perform(c);
		if (rc == CURLE_OK && (c->status == 201 || c->status == 405))
			continue;
		if (rc == CURLE_OK && c->status == 409 && i == 0) {
			snprintf(r->text, sizeof(r->text), "sync_webdav: the "
			    "folder %.150s does not exist", c->st->url);
			return POSTDOC_DENYSOFT;
		}
		return dav_soft(c, rc, urls[i] + strlen(c->st->url), r);
	}
	return POSTDOC_OK;
}

/*
 * PUT to a name the HEAD found free.  The collections are made first,
 * every time: servers disagree on what a PUT under a missing collection
 * answers (409 in RFC 4918 section 9.7.1, but nginx says 500), and two
 * MKCOLs answered 405 cost less than guessing.  OK, DENYSOFT, or CONT
 * on 412: the name was taken since our HEAD, look again.
 */
static enum postdoc_verdict
dav_create(struct dav_call *c, const char *url, const char *name,
    const char *acct_url, const char *ref_url, struct postdoc_reply *r)
{
	enum postdoc_verdict v;
	CURLcode rc;

	if ((v = dav_mkcols(c, acct_url, ref_url, r)) != POSTDOC_OK)
		return v;
	rc = dav_put(c, url);
	if (rc == CURLE_OK && (c->status == 201 || c->status == 204)) {
		snprintf(r->text, sizeof(r->text), "sync_webdav: mirrored as "
		    "%.160s", name);
		return POSTDOC_OK;
	}
	if (rc == CURLE_OK && c->status == 412)
		return POSTDOC_CONT;
	return dav_soft(c, rc, name, r);
}

/* Candidate names in order, as sync_dir does (see sync_name_file). */
static enum postdoc_verdict
dav_place(struct dav_call *c, const char *acct_url, const char *ref_url,
    struct postdoc_reply *r)
{
	char name[SYNC_SEGMENT_MAX + 32], url[DAV_URL_MAX];
	enum postdoc_verdict v;
	unsigned n;
	int held, races = 0;
	CURLcode rc;

	for (n = 1; n <= SYNC_CANDIDATES_MAX; n++) {
		sync_name_file(name, sizeof(name), c->doc, n);
		snprintf(url, sizeof(url), "%s", ref_url);
		dav_append_segment(url, sizeof(url), name, 0);
		held = dav_holds(c, url, &rc);
		if (held == 1) {
			snprintf(r->text, sizeof(r->text), "sync_webdav: "
			    "already mirrored as %.160s", name);
			return POSTDOC_OK;
		}
		if (held < 0)
			return dav_soft(c, rc, name, r);
		if (held == 0)
			continue;
		v = dav_create(c, url, name, acct_url, ref_url, r);
		if (v != POSTDOC_CONT)
			return v;
		if (races++ < 3)
			n--;	/* 412: look at the same name again */
	}
	snprintf(r->text, sizeof(r->text), "sync_webdav: the first %d names "
	    "for document %lld are all taken by other files",
	    SYNC_CANDIDATES_MAX, (long long)c->doc->id);
	return POSTDOC_DENY;
}

/* The core's event thread for this plugin, one document at a time. */
static enum postdoc_verdict
dav_sync(void *state, const struct postdoc_event *ev, struct postdoc_reply *r)
{
	struct dav_call c = { .st = state, .doc = ev->document };
	char seg[SYNC_SEGMENT_MAX + 1], acct_url[DAV_URL_MAX],
	    ref_url[DAV_URL_MAX];
	const char *a = ev->account != NULL ? ev->account : "";
	const char *d = ev->dossier_ref != NULL ? ev->dossier_ref : "";
	enum postdoc_verdict v;

	if (c.doc == NULL || c.doc->path == NULL)
		return POSTDOC_OK;	/* nothing to mirror */
	if ((c.h = curl_easy_init()) == NULL) {
		snprintf(r->text, sizeof(r->text), "sync_webdav: out of "
		    "memory");
		return POSTDOC_DENYSOFT;
	}
	snprintf(acct_url, sizeof(acct_url), "%s", c.st->url);
	sync_name_segment(seg, sizeof(seg), a, strlen(a), SYNC_SEGMENT_MAX);
	dav_append_segment(acct_url, sizeof(acct_url), seg, 1);
	snprintf(ref_url, sizeof(ref_url), "%s", acct_url);
	sync_name_segment(seg, sizeof(seg), d, strlen(d), SYNC_SEGMENT_MAX);
	dav_append_segment(ref_url, sizeof(ref_url), seg, 1);
	v = dav_place(&c, acct_url, ref_url, r);
	curl_easy_cleanup(c.h);
	return v;
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "sync_webdav",
	.version = "1.0",
	.init = dav_init,
	.deinit = dav_deinit,
	.start = dav_start,
	.stop = dav_stop,
	.hooks = {
		.sync = dav_sync,
	},
};

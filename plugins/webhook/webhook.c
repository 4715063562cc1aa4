/*
 * webhook.c - the `webhook` plugin: POSTs each durable event (the core's
 * JSON, byte for byte) to its account's endpoint, signed Stripe-style:
 *   Postdoc-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "t.body")>
 * so a receiver can check the body came from us and refuse old t (replay).
 * 2xx is OK; any other status, a timeout or a connection error is
 * DENYSOFT (the core retries with backoff); redirects are not followed.
 * An account without an endpoint: CONT (nothing to do).
 *
 * settings = { endpoints = ( { account = "ACME";
 *     url = "https://crm.example/hooks/postdoc"; secret = "..."; } );
 *   timeout = 10; };	(seconds, 1..300)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "postdoc/plugin.h"

/* The release this plugin ships with, from its own compile line (the
 * build passes -DPOSTDOC_VERSION; a plugin sees no core header). */
#ifndef POSTDOC_VERSION
#error "build with -DPOSTDOC_VERSION='\"x.y.z\"' (pkg-config --modversion postdoc-plugin)"
#endif

#define WH_MAX_ENDPOINTS 64

struct wh_endpoint {
	char *account;
	char *url;
	char *secret;
};

struct wh_state {
	long timeout_ms;
	int n;
	struct wh_endpoint ep[WH_MAX_ENDPOINTS];
};

static void
wh_free(struct wh_state *s)
{
	int i;

	for (i = 0; i < s->n; i++) {
		free(s->ep[i].account);
		free(s->ep[i].url);
		if (s->ep[i].secret != NULL) {
			OPENSSL_cleanse(s->ep[i].secret,
			    strlen(s->ep[i].secret));
			free(s->ep[i].secret);
		}
	}
	free(s);
}

/* One endpoints entry; `line` names it in errors. */
static int
wh_endpoint_read(const config_setting_t *g, struct wh_endpoint *ep, char *err,
    size_t errlen)
{
	const char *account = NULL, *url = NULL, *secret = NULL;
	int line = config_setting_source_line(g);

	if (!config_setting_is_group(g) ||
	    !config_setting_lookup_string(g, "account", &account) ||
	    !config_setting_lookup_string(g, "url", &url) ||
	    !config_setting_lookup_string(g, "secret", &secret)) {
		snprintf(err, errlen, "line %d: an endpoint needs account, "
		    "url and secret (strings)", line);
		return -1;
	}
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7)
	    != 0) {
		snprintf(err, errlen, "line %d: url must be http:// or "
		    "https://", line);
		return -1;
	}
	if (strlen(secret) < 16) {
		snprintf(err, errlen, "line %d: secret must be at least 16 "
		    "characters", line);
		return -1;
	}
	ep->account = strdup(account);
	ep->url = strdup(url);
	ep->secret = strdup(secret);
	return 0;
}

static int
wh_config(const config_setting_t *set, struct wh_state *s, char *err,
    size_t errlen)
{
	const config_setting_t *eps;
	int timeout = 10, i, n;

	if (set == NULL)
		return 0;
	if (config_setting_lookup_int(set, "timeout", &timeout) &&
	    (timeout < 1 || timeout > 300)) {
		snprintf(err, errlen, "timeout must be 1..300 seconds");
		return -1;
	}
	s->timeout_ms = timeout * 1000L;
	eps = config_setting_get_member(set, "endpoints");
	if (eps == NULL)
		return 0;
	n = config_setting_length(eps);
	if (!config_setting_is_list(eps) || n > WH_MAX_ENDPOINTS) {
		snprintf(err, errlen, "endpoints must be a list of at most %d "
		    "groups", WH_MAX_ENDPOINTS);
		return -1;
	}
	for (i = 0; i < n; i++, s->n++)
		if (wh_endpoint_read(config_setting_get_elem(eps, i),
		    &s->ep[i], err, errlen) != 0)
			return -1;
	return 0;
}

static int
wh_init(const config_setting_t *settings, void **state_r, char *err,
    size_t errlen)
{
	struct wh_state *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->timeout_ms = 10000;
	if (wh_config(settings, s, err, errlen) != 0) {
		wh_free(s);
		return -1;
	}
	/* Once, before any thread: curl_global_init is not thread-safe. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init failed");
		wh_free(s);
		return -1;
	}
	*state_r = s;
	return 0;
}

static void
wh_deinit(void *state)
{
	if (state != NULL)
		wh_free(state);
	curl_global_cleanup();
}

static const struct wh_endpoint *
wh_find(const struct wh_state *s, const char *account)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->ep[i].account, account) == 0)
			return &s->ep[i];
	return NULL;
}

/* "t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>" into out. */
static int
wh_sign(const char *secret, long long t, const char *body, char *out,
    size_t outlen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0, i;
	char hex[2 * EVP_MAX_MD_SIZE + 1], *msg;
	size_t len = strlen(body) + 32;

	if ((msg = malloc(len)) == NULL)
		return -1;
	snprintf(msg, len, "%lld.%s", t, body);
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)msg, strlen(msg), mac, &maclen) == NULL) {
		free(msg);
		return -1;
	}
	free(msg);
	for (i = 0; i < maclen; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	snprintf(out, outlen, "t=%lld,v1=%s", t, hex);
	return 0;
}

/* The receiver's answer body is not ours to keep. */
static size_t
wh_discard_cb(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static struct curl_slist *
wh_headers(const struct postdoc_event *ev, const char *sig)
{
	struct curl_slist *h = NULL;
	char line[512];

	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");	/* no 100-continue wait */
	snprintf(line, sizeof(line), "Postdoc-Event: %s", ev->type);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "Postdoc-Event-Id: %lld",
	    (long long)ev->id);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "Postdoc-Signature: %s", sig);
	h = curl_slist_append(h, line);
	return h;
}

/* POST; the HTTP status, or 0 with the curl error in r. */
static long
wh_post(const struct wh_state *s, const struct wh_endpoint *ep,
    const struct postdoc_event *ev, const char *sig, struct postdoc_reply *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = wh_headers(ev, sig);
	char cerr[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode rc;

	if (c == NULL || h == NULL) {
		snprintf(r->text, sizeof(r->text), "webhook: out of memory");
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
		return 0;
	}
	curl_easy_setopt(c, CURLOPT_URL, ep->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);	/* threads */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "postdoc/" POSTDOC_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, ev->json);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)strlen(ev->json));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, wh_discard_cb);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(r->text, sizeof(r->text), "webhook: %s",
		    cerr[0] != '\0' ? cerr : curl_easy_strerror(rc));
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static enum postdoc_verdict
wh_event(void *state, const struct postdoc_event *ev, struct postdoc_reply *r)
{
	const struct wh_state *s = state;
	const struct wh_endpoint *ep = wh_find(s, ev->account);
	char sig[160];
	long status;

	if (ep == NULL)
		return POSTDOC_CONT;	/* this account has no endpoint */
	if (wh_sign(ep->secret, (long long)time(NULL), ev->json, sig,
	    sizeof(sig)) != 0) {
		snprintf(r->text, sizeof(r->text), "webhook: HMAC failed");
		return POSTDOC_DENYSOFT;
	}
	status = wh_post(s, ep, ev, sig, r);
	if (status >= 200 && status < 300)
		return POSTDOC_OK;
	if (status != 0)
		snprintf(r->text, sizeof(r->text), "webhook: HTTP %ld from "
		    "the endpoint", status);
	return POSTDOC_DENYSOFT;
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "webhook",
	.version = POSTDOC_VERSION,
	.init = wh_init,
	.deinit = wh_deinit,
	.hooks = {
		.event = wh_event,
	},
};

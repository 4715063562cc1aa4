/*
 * api.c - the JSON API (/api/v1) and /metrics on api.listen, over
 * libmicrohttpd: a pool of threads, each with its own store connection
 * and outbound queue context.  Owns the route table, request bodies (bounded
 * by api.body_max), bearer-token authentication and the JSON replies;
 * the resources are api_res.c.  Never builds SQL or paths from a
 * request; a token is scoped to one account and another account's
 * objects are "not found", never "forbidden".
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api.h"
#include "api_int.h"
#include "auth/auth.h"
#include "dossier/dossier.h"
#include "lib/config.h"
#include "outbound/outq.h"
#include "lib/sanitize.h"
#include "lib/util.h"

#define API_TOKEN_MAX 128
/* A campaign send or an erasure holds its thread for a while; the
 * others (and /metrics scrapes) go on. */
#define API_THREADS 4

const struct api_route api_routes[] = {
	{ "GET", "/metrics", api_metrics, 0 },
	{ "POST", "/api/v1/dossiers", api_dossier_create, 1 },
	{ "GET", "/api/v1/dossiers", api_dossier_list, 1 },
	{ "GET", "/api/v1/dossiers/{id}", api_dossier_get, 1 },
	{ "POST", "/api/v1/dossiers/{id}/close", api_dossier_close, 1 },
	{ "GET", "/api/v1/dossiers/{id}/documents", api_dossier_documents, 1 },
	{ "POST", "/api/v1/dossiers/{id}/invitations", api_dossier_invite, 1 },
	{ "GET", "/api/v1/dossiers/{id}/messages", api_dossier_messages, 1 },
	{ "POST", "/api/v1/dossiers/{id}/items", api_dossier_items_add, 1 },
	{ "GET", "/api/v1/documents/{id}", api_document_get, 1 },
	{ "GET", "/api/v1/documents/{id}/content", api_document_content, 1 },
	{ "POST", "/api/v1/documents/{id}/assign", api_document_assign, 1 },
	{ "POST", "/api/v1/documents/{id}/accept", api_document_accept, 1 },
	{ "POST", "/api/v1/documents/{id}/reject", api_document_reject, 1 },
	{ "GET", "/api/v1/checklists", api_checklist_list, 1 },
	{ "POST", "/api/v1/checklists", api_checklist_create, 1 },
	{ "GET", "/api/v1/purposes", api_purpose_list, 1 },
	{ "POST", "/api/v1/consents", api_consent_grant, 1 },
	{ "POST", "/api/v1/consents/withdraw", api_consent_withdraw, 1 },
	{ "GET", "/api/v1/contacts/{email}/consent", api_contact_consent, 1 },
	{ "POST", "/api/v1/contacts/{email}/attest", api_contact_attest, 1 },
	{ "POST", "/api/v1/campaigns", api_campaign_create, 1 },
	{ "GET", "/api/v1/campaigns", api_campaign_list, 1 },
	{ "GET", "/api/v1/campaigns/{id}", api_campaign_get, 1 },
	{ "POST", "/api/v1/campaigns/{id}/test", api_campaign_test, 1 },
	{ "POST", "/api/v1/campaigns/{id}/send", api_campaign_send, 1 },
	{ "POST", "/api/v1/subjects/export", api_subject_export, 1 },
	{ "POST", "/api/v1/subjects/erase", api_subject_erase, 1 },
	{ "GET", "/api/v1/account", api_account_get, 1 },
	{ "PATCH", "/api/v1/account", api_account_patch, 1 },
};
const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);

/* One request across MHD's calls for its body. */
struct api_req {
	char *body;
	size_t len;
	int too_big;
};

/* ---- replies ---- */

static enum MHD_Result
api_send(struct MHD_Connection *con, unsigned status, const char *ctype,
    const char *body, size_t len, const char *hname, const char *hval)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len,
	    (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (hname != NULL)
		MHD_add_response_header(r, hname, hval);
	ret = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
api_json_h(struct MHD_Connection *con, unsigned status, json_t *j,
    const char *hname, const char *hval)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	enum MHD_Result ret;

	json_decref(j);
	if (s == NULL) {	/* a json_pack that failed: our bug, not theirs */
		log_err("api: a %u answer could not be encoded", status);
		s = xstrdup("{\"error\":{\"code\":\"internal\",\"message\":"
		    "\"internal error, see the server log\"}}");
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
	ret = api_send(con, status, "application/json; charset=utf-8", s,
	    strlen(s), hname, hval);
	free(s);
	return ret;
}

enum MHD_Result
api_json(struct api_ctx *x, unsigned status, json_t *j)
{
	return api_json_h(x->con, status, j, NULL, NULL);
}

static json_t *
api_error_body(const char *code, const char *msg, const char *field)
{
	json_t *e = json_pack("{s:s, s:o}", "code", code, "message",
	    api_jstr(msg));

	if (field != NULL)
		json_object_set_new(e, "field", json_string(field));
	return json_pack("{s:o}", "error", e);
}

static enum MHD_Result
api_error_con(struct MHD_Connection *con, unsigned status, const char *code,
    const char *msg, const char *hname, const char *hval)
{
	return api_json_h(con, status, api_error_body(code, msg, NULL), hname,
	    hval);
}

enum MHD_Result
api_error(struct api_ctx *x, unsigned status, const char *code,
    const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return api_error_con(x->con, status, code, msg, NULL, NULL);
}

enum MHD_Result
api_invalid(struct api_ctx *x, const char *field, const char *why)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s: %s", field, why);
	return api_json(x, MHD_HTTP_UNPROCESSABLE_CONTENT,
	    api_error_body("invalid_field", msg, field));
}

enum MHD_Result
api_not_found(struct api_ctx *x, const char *what)
{
	return api_error(x, MHD_HTTP_NOT_FOUND, "not_found", "%s not found",
	    what);
}

/* The details go to the log; the client learns only that it failed. */
enum MHD_Result
api_internal(struct api_ctx *x, const char *err)
{
	log_err("api: %s: %s", x->account, err);
	return api_error(x, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
	    "internal error, see the server log");
}

/* ---- small helpers for handlers ---- */

json_t *
api_jstr(const char *s)
{
	return sanitize_json_str(s);
}

json_t *
api_jtime(int64_t t)
{
	return t == 0 ? json_null() : json_integer(t);
}

int
api_field_str(struct api_ctx *x, const char *name, int required, size_t max,
    const char **v_r)
{
	json_t *v = x->body != NULL ? json_object_get(x->body, name) : NULL;

	*v_r = NULL;
	if (v == NULL || json_is_null(v))
		return !required;
	if (!json_is_string(v) || json_string_length(v) > max ||
	    (required && json_string_length(v) == 0) ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return 0;
	*v_r = json_string_value(v);
	return 1;
}

const char *
api_query(struct api_ctx *x, const char *name)
{
	return MHD_lookup_connection_value(x->con, MHD_GET_ARGUMENT_KIND,
	    name);
}

/* ---- routing ---- */

/* Does path match the pattern?  Fills the {id}/{email} of x. */
static int
api_match(const char *pat, const char *path, struct api_ctx *x)
{
	while (*pat != '\0') {
		size_t n = strcspn(path, "/");

		if (strncmp(pat, "{id}", 4) == 0) {
			char *end;
			long long v;

			if (n == 0 || n > 18 || path[0] < '1' || path[0] > '9')
				return 0;
			v = strtoll(path, &end, 10);
			if (end != path + n)
				return 0;
			x->id = v;
			pat += 4;
			path += n;
		} else if (strncmp(pat, "{email}", 7) == 0) {
			if (n == 0 || n >= sizeof(x->key))
				return 0;
			memcpy(x->key, path, n);
			x->key[n] = '\0';
			pat += 7;
			path += n;
		} else if (*pat++ != *path++)
			return 0;
	}
	return *path == '\0';
}

/* The route for method and path; *allow_r lists the path's methods. */
static const struct api_route *
api_lookup(const char *method, const char *path, struct api_ctx *x,
    char *allow, size_t allowlen)
{
	const struct api_route *found = NULL;
	size_t i;

	allow[0] = '\0';
	/* HEAD is GET without the body (RFC 9110 9.3.2); MHD drops it. */
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (i = 0; i < api_nroutes; i++) {
		if (!api_match(api_routes[i].path, path, x))
			continue;
		if (strcmp(api_routes[i].method, method) == 0)
			found = &api_routes[i];
		snprintf(allow + strlen(allow), allowlen - strlen(allow),
		    "%s%s", allow[0] ? ", " : "", api_routes[i].method);
	}
	if (found != NULL)	/* the {id} of the route we run */
		api_match(found->path, path, x);
	return found;
}

/* ---- bearer tokens (RFC 6750): auth.c checks them ---- */

/* 1 and x's account set, 0 refused (*why_r: what to say), -1 error. */
static int
api_auth_token(const char *tok, struct api_ctx *x, char *err)
{
	struct store_api_token t;
	int rc = auth_token_check(x->st, tok, &t, err);

	if (rc != 1)
		return rc;
	x->account_id = t.account_id;
	snprintf(x->account, sizeof(x->account), "%s", t.account);
	snprintf(x->actor, sizeof(x->actor), "api:%s", t.name);
	return 1;
}

static enum MHD_Result
api_auth(struct api_ctx *x, int *ok_r)
{
	const char *h = MHD_lookup_connection_value(x->con, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	char err[PD_ERRLEN] = "";
	int rc;

	*ok_r = 0;
	/* RFC 6750 3: no credentials, no error code; bad ones, invalid_token. */
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return api_error_con(x->con, MHD_HTTP_UNAUTHORIZED,
		    "unauthorized", "a bearer token is required",
		    MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"postdoc\"");
	for (h += 7; *h == ' '; h++)
		;
	rc = api_auth_token(h, x, err);
	if (rc < 0) {
		log_err("api: token lookup: %s", err);
		return api_error_con(x->con, MHD_HTTP_SERVICE_UNAVAILABLE,
		    "unavailable", "try again later", NULL, NULL);
	}
	if (rc == 0)
		return api_error_con(x->con, MHD_HTTP_UNAUTHORIZED,
		    "invalid_token", "the token is unknown or revoked",
		    MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"postdoc\", "
		    "error=\"invalid_token\"");
	*ok_r = 1;
	return MHD_YES;
}

/* ---- dispatch ---- */

static enum MHD_Result
api_body(struct api_ctx *x, const struct api_req *rq)
{
	json_error_t je;

	if (rq->too_big)
		return api_error(x, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
		    "the request body exceeds %lld bytes",
		    (long long)x->s->cfg->api_body_max);
	if (rq->len == 0) {
		x->body = json_object();
		return MHD_YES;
	}
	x->body = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &je);
	if (x->body == NULL || !json_is_object(x->body)) {
		json_decref(x->body);
		x->body = NULL;
		return api_error(x, MHD_HTTP_BAD_REQUEST, "invalid_json",
		    "the body must be a JSON object (%s)", x->body == NULL &&
		    je.text[0] ? je.text : "not an object");
	}
	return MHD_YES;
}

static void
api_thread_free(void *p)
{
	struct api_thread *t = p;

	outq_ctx_free(&t->q);
	dossier_blobs_close(&t->bs);
	dossier_conn_close(&t->st);
	free(t);
}

/* This pool thread's store, blobs and queue: NULL if they cannot open. */
static struct api_thread *
api_thread(struct api_server *s)
{
	struct api_thread *t = pthread_getspecific(s->key);
	char err[PD_ERRLEN] = "";

	if (t != NULL)
		return t;
	t = xcalloc(1, sizeof(*t));
	if (dossier_conn_open(s->cfg, &t->st, err) != 0 ||
	    dossier_blobs_open(s->cfg, &t->bs, err) != 0 ||
	    outq_ctx_new(s->cfg, s->ph, &t->q, err) != 0) {
		log_err("api: %s", err);
		api_thread_free(t);
		return NULL;
	}
	pthread_setspecific(s->key, t);
	return t;
}

static enum MHD_Result
api_dispatch(struct api_server *s, struct MHD_Connection *con,
    const char *url, const char *method, const struct api_req *rq)
{
	struct api_thread *t = api_thread(s);
	struct api_ctx x;
	const struct api_route *r;
	char allow[64];
	enum MHD_Result ret;
	int ok;

	if (t == NULL)
		return api_error_con(con, MHD_HTTP_SERVICE_UNAVAILABLE,
		    "unavailable", "try again later", NULL, NULL);
	memset(&x, 0, sizeof(x));
	x.s = s;
	x.con = con;
	x.st = t->st;
	x.bs = t->bs;
	x.q = t->q;
	snprintf(x.account, sizeof(x.account), "-");
	if (strcmp(url, "/metrics") == 0 && !s->cfg->api_metrics)
		return api_not_found(&x, "route");
	r = api_lookup(method, url, &x, allow, sizeof(allow));
	if (r == NULL && allow[0] == '\0')
		return api_not_found(&x, "route");
	if (r == NULL)
		return api_error_con(con, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "method_not_allowed", "method not allowed here", "Allow",
		    allow);
	if (r->auth && ((ret = api_auth(&x, &ok)) != MHD_YES || !ok))
		return ret;
	if ((strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0) &&
	    ((ret = api_body(&x, rq)) != MHD_YES || x.body == NULL))
		return ret;
	ret = r->fn(&x);
	json_decref(x.body);
	return ret;
}

static enum MHD_Result
api_access_cb(void *cls, struct MHD_Connection *con, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct api_server *s = cls;
	struct api_req *rq = *con_cls;
	size_t max = (size_t)s->cfg->api_body_max;

	(void)version;
	if (rq == NULL) {
		*con_cls = xcalloc(1, sizeof(*rq));
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		size_t n = *upload_data_size;

		/* Past the limit the rest is read and dropped: 413 at the
		 * end, with the connection still usable. */
		if (rq->too_big || rq->len + n > max) {
			rq->too_big = 1;
			free(rq->body);
			rq->body = NULL;
			rq->len = 0;
		} else {
			rq->body = xrealloc(rq->body, rq->len + n);
			memcpy(rq->body + rq->len, upload_data, n);
			rq->len += n;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return api_dispatch(s, con, url, method, rq);
}

static void
api_done_cb(void *cls, struct MHD_Connection *con, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct api_req *rq = *con_cls;

	(void)cls;
	(void)con;
	(void)toe;
	if (rq == NULL)
		return;
	free(rq->body);
	free(rq);
	*con_cls = NULL;
}

/* ---- start and stop ---- */

int
api_start(const struct pd_config *cfg, struct plugin_host *ph,
    struct api_server **a_r, char *err)
{
	struct api_server *s;
	struct sockaddr_storage ss;
	struct store *probe = NULL;

	*a_r = NULL;
	if (cfg->api_listen == NULL || cfg->api_listen[0] == '\0')
		return 0;
	memset(&ss, 0, sizeof(ss));
	if (pd_listen_addr("api.listen", cfg->api_listen, &ss, err) != 0)
		return -1;
	/* The store opens now, so a bad path stops serve at start. */
	if (dossier_conn_open(cfg, &probe, err) != 0)
		return -1;
	dossier_conn_close(&probe);
	s = xcalloc(1, sizeof(*s));
	s->cfg = cfg;
	s->ph = ph;
	if (pthread_key_create(&s->key, api_thread_free) != 0)
		pd_fatal("api: pthread_key_create");
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_EPOLL | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	    0, NULL, NULL, api_access_cb, s,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)API_THREADS,
	    MHD_OPTION_NOTIFY_COMPLETED, api_done_cb, s,
	    /* Issue 16, defect 5: idle sockets from a few addresses must not
	     * fill the table; each address gets a share, idle ones go. */
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->api_idle_timeout,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)cfg->api_conn_per_ip,
	    MHD_OPTION_END);
	if (s->d == NULL) {
		pd_err(err, "api: cannot listen on %s", cfg->api_listen);
		api_stop(&s);
		return -1;
	}
	log_info("api: listening on %s", cfg->api_listen);
	*a_r = s;
	return 0;
}

void
api_stop(struct api_server **ap)
{
	struct api_server *s;

	if (ap == NULL || *ap == NULL)
		return;
	s = *ap;
	/* Joins the pool: each thread's api_thread is freed as it ends. */
	if (s->d != NULL)
		MHD_stop_daemon(s->d);
	pthread_key_delete(s->key);
	free(s);
	*ap = NULL;
}

int
api_route_at(size_t i, const char **method_r, const char **path_r)
{
	if (i >= api_nroutes)
		return 0;
	*method_r = api_routes[i].method;
	*path_r = api_routes[i].path;
	return 1;
}

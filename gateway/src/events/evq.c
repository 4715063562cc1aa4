/*
 * evq.c - hands durable events to plugins (`postdoc serve` only): one
 * thread per (plugin, hook) consumer, each with its own store connection.
 * Every events.interval_ms it fans new events out into its deliveries,
 * calls the hook for the head of each due stream (one stream per dossier,
 * or per account for account-level events: strict order inside a stream,
 * streams independent), and records the verdict after the hook returned,
 * so a crash in between calls the hook again: at least once.  Intake never
 * waits for it: it only reads what intake already committed (a
 * message.received also carries what the sender wrote, read here from
 * the stored raw message, so that someone answers it).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "store/blob.h"
#include "lib/config.h"
#include "lib/mailtext.h"
#include "evq.h"
#include "plugin/plugin_host.h"
#include "store/rawmsg.h"
#include "store/store.h"
#include "store/store_evq.h"
#include "lib/util.h"

#define EVQ_BATCH 32		/* stream heads handled per pass */
#define EVQ_TEXT_MAX 4000	/* a message.received's text, in bytes */

struct evq;

struct evq_consumer {
	struct evq *q;
	const struct postdoc_plugin *desc;
	void *state;
	int sync;		/* 1: the sync hook, 0: the event hook */
	struct store *st;
	struct blob_store *bs;
	pthread_t tid;
	int started;
};

struct evq {
	const struct pd_config *cfg;
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* stop */
	int stopping;
	int n;
	struct evq_consumer c[2 * PD_MAX_PLUGINS];
};

static const char *
evq_hook(const struct evq_consumer *c)
{
	return c->sync ? "sync" : "event";
}

static int
evq_stopping(struct evq *q)
{
	int s;

	pthread_mutex_lock(&q->mu);
	s = q->stopping;
	pthread_mutex_unlock(&q->mu);
	return s;
}

/* ---- the event as JSON ---- */

/* "123" (no sign, no leading zero, fits) as a JSON integer, else text. */
static json_t *
evq_value(const char *v)
{
	size_t n = strlen(v), i;

	if (n == 0 || n > 18 || (v[0] == '0' && n > 1))
		return json_string(v);
	for (i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return json_string(v);
	return json_integer(strtoll(v, NULL, 10));
}

/*
 * An event's detail, "key=value key=value", as an object.  A word without
 * '=' belongs to the previous value (a stored name with a space); "reason"
 * takes the rest of the detail.  Not UTF-8 (cannot happen: details come
 * from sanitised text) drops the key.
 */
static json_t *
evq_detail_json(const char *detail)
{
	json_t *o = json_object();
	char buf[1024], *p, *next, *key = NULL, val[1024] = "";

	snprintf(buf, sizeof(buf), "%s", detail);
	for (p = buf; p != NULL && *p != '\0'; p = next) {
		char *eq;

		next = strchr(p, ' ');
		if (next != NULL)
			*next++ = '\0';
		eq = strchr(p, '=');
		if (eq == NULL || eq == p) {
			if (key != NULL && strlen(val) + strlen(p) + 2 <
			    sizeof(val)) {
				strcat(val, " ");
				strcat(val, p);
			}
			continue;
		}
		if (key != NULL)
			json_object_set_new(o, key, evq_value(val));
		*eq = '\0';
		key = p;
		snprintf(val, sizeof(val), "%s", eq + 1);
		if (strcmp(key, "reason") == 0 && next != NULL) {
			/* free text (a relay's reply): the rest, verbatim */
			snprintf(val, sizeof(val), "%s %s", eq + 1, next);
			break;
		}
	}
	if (key != NULL)
		json_object_set_new(o, key, evq_value(val));
	return o;
}

static json_t *
evq_document_json(const struct store_evq_doc *d)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:I}",
	    "id", (json_int_t)d->id, "filename", d->filename,
	    "stored_name", d->stored_name, "content_type", d->content_type,
	    "size", (json_int_t)d->size, "sha256", d->sha256,
	    "received", (json_int_t)d->received);
}

/* The whole event, the body a webhook POSTs (plugin.h's shape); data is
 * the detail's unless given (stolen). */
static char *
evq_json(const struct store_evq_item *it, const struct store_evq_doc *doc,
    json_t *data)
{
	json_t *ev, *dossier;
	char *s;

	dossier = it->dossier_id != 0 ? json_pack("{s:I, s:s}", "id",
	    (json_int_t)it->dossier_id, "ref", it->dossier_ref) : json_null();
	if (data == NULL)
		data = doc != NULL ? evq_document_json(doc) :
		    evq_detail_json(it->detail);
	ev = json_pack("{s:I, s:s, s:I, s:s, s:o, s:o}", "id",
	    (json_int_t)it->event_id, "type", it->kind, "created",
	    (json_int_t)it->at, "account", it->account, "dossier", dossier,
	    "data", data);
	if (ev == NULL)
		return NULL;
	s = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(ev);
	return s;
}

/* ---- one delivery ---- */

/* retry_base * 2^(attempts-1), at most retry_cap. */
static int64_t
evq_backoff(const struct pd_config *cfg, unsigned attempts)
{
	int64_t d = cfg->ev_retry_base;
	unsigned i;

	for (i = 1; i < attempts && d < cfg->ev_retry_cap; i++)
		d *= 2;
	return d < cfg->ev_retry_cap ? d : cfg->ev_retry_cap;
}

/* Record what the hook said; 1 when the stream may move on. */
static int
evq_verdict(struct evq_consumer *c, const struct store_evq_item *it,
    const struct plugin_outcome *o)
{
	const struct pd_config *cfg = c->q->cfg;
	int64_t now = pd_now(), next = now;
	unsigned attempts = it->attempts + 1;
	const char *state = "done";
	char err[PD_ERRLEN];

	if (o->verdict == POSTDOC_DENY) {
		state = "failed";
		log_warn("event %lld (%s) refused by %s %s: %s",
		    (long long)it->event_id, it->kind, c->desc->name,
		    evq_hook(c), o->text);
	} else if (o->verdict == POSTDOC_DENYSOFT &&
	    now - it->at > cfg->ev_max_age) {
		state = "expired";
		log_warn("event %lld (%s) expired for %s %s after %u "
		    "attempts: %s", (long long)it->event_id, it->kind,
		    c->desc->name, evq_hook(c), attempts, o->text);
	} else if (o->verdict == POSTDOC_DENYSOFT) {
		state = "pending";
		next = now + evq_backoff(cfg, attempts);
		log_info("event %lld (%s) deferred by %s %s (attempt %u): %s",
		    (long long)it->event_id, it->kind, c->desc->name,
		    evq_hook(c), attempts, o->text);
	}
	if (store_evq_record(c->st, it->id, state, attempts, next, o->text,
	    now, err) != 0) {
		log_err("event %lld: %s: cannot record: %s",
		    (long long)it->event_id, c->desc->name, err);
		return 0;
	}
	return strcmp(state, "pending") != 0;
}

static int
evq_drop(struct evq_consumer *c, const struct store_evq_item *it,
    const char *why)
{
	char err[PD_ERRLEN];

	log_info("event %lld dropped for %s %s: %s", (long long)it->event_id,
	    c->desc->name, evq_hook(c), why);
	if (store_evq_record(c->st, it->id, "dropped", it->attempts, pd_now(),
	    why, pd_now(), err) != 0) {
		log_err("event %lld: cannot record: %s",
		    (long long)it->event_id, err);
		return 0;
	}
	return 1;
}

/* The document of a document.received event; 1, 0 gone, -1. */
static int
evq_doc(struct evq_consumer *c, const struct store_evq_item *it,
    struct store_evq_doc *d, char *err)
{
	json_t *o = evq_detail_json(it->detail);
	json_int_t id = json_integer_value(json_object_get(o, "document"));

	json_decref(o);
	if (id <= 0)
		return 0;
	return store_evq_document(c->st, it->account_id, (int64_t)id, d, err);
}

/*
 * The sender's text of the stored raw message `sha` ("" when the raw copy
 * is gone: purged by retention, erased).  0, or -1 with err.
 */
static int
evq_message_text(struct evq_consumer *c, const char *sha, char **text_r,
    char *err)
{
	int fd = -1, r;

	*text_r = NULL;
	r = sha[0] != '\0' ? rawmsg_open(c->st, c->bs, sha, &fd, err) : 0;
	if (r < 0)
		return -1;
	if (r == 0) {
		*text_r = xstrdup("");
		return 0;
	}
	r = mailtext_extract(fd, EVQ_TEXT_MAX, text_r, err);
	close(fd);
	return r;
}

/* The sender's authentication as recorded at intake (schema v9): null
 * when the message was not checked; pass null when its account checks
 * nothing, else whether the account's rule passed the sender. */
static json_t *
evq_auth_json(const struct store_msg_row *m)
{
	if (m->auth_results[0] == '\0' && m->sender_pass == 0)
		return json_null();
	return json_pack("{s:s, s:s, s:s, s:o, s:s}", "spf", m->spf, "dkim",
	    m->dkim, "dmarc", m->dmarc, "pass", m->sender_pass == 0 ?
	    json_null() : json_boolean(m->sender_pass > 0),
	    "authentication_results", m->auth_results);
}

/*
 * message.received's data: the detail, and the envelope sender, the
 * subject and the text of the message, so a question sent without a
 * document reaches someone who can answer it.  NULL on a store error
 * (the event is tried again).
 */
static json_t *
evq_message_json(struct evq_consumer *c, const struct store_evq_item *it,
    char *err)
{
	json_t *data = evq_detail_json(it->detail);
	json_int_t id = json_integer_value(json_object_get(data, "message"));
	struct store_msg_row *m = xcalloc(1, sizeof(*m));
	char *text = NULL;
	int r = id > 0 ? store_message_get(c->st, it->account_id,
	    (int64_t)id, m, err) : 0;

	if (r < 0 || (r == 1 && evq_message_text(c, m->sha256, &text, err)
	    != 0)) {
		json_decref(data);
		free(m);
		return NULL;
	}
	json_object_set_new(data, "from", json_string(m->mail_from));
	json_object_set_new(data, "subject", json_string(m->subject));
	json_object_set_new(data, "text", json_string(text != NULL ? text :
	    ""));
	json_object_set_new(data, "auth", r == 1 ? evq_auth_json(m) :
	    json_null());
	free(text);
	free(m);
	return data;
}

static int
evq_deliver(struct evq_consumer *c, const struct store_evq_item *it)
{
	struct store_evq_doc doc;
	struct postdoc_document pdoc;
	struct postdoc_event ev;
	struct plugin_outcome o;
	char err[PD_ERRLEN], path[4096], *json;
	json_t *data = NULL;
	int isdoc = strcmp(it->kind, "document.received") == 0, r = 0;

	if (it->gone)
		return evq_drop(c, it, "event erased or purged");
	if (isdoc && (r = evq_doc(c, it, &doc, err)) <= 0) {
		if (r < 0) {
			log_err("event %lld: %s", (long long)it->event_id,
			    err);
			return 0;
		}
		return evq_drop(c, it, "document erased or purged");
	}
	if (strcmp(it->kind, "message.received") == 0 &&
	    (data = evq_message_json(c, it, err)) == NULL) {
		log_err("event %lld: %s", (long long)it->event_id, err);
		return 0;
	}
	if ((json = evq_json(it, isdoc ? &doc : NULL, data)) == NULL)
		return evq_drop(c, it, "event not representable as JSON");
	memset(&ev, 0, sizeof(ev));
	ev.id = it->event_id;
	ev.type = it->kind;
	ev.account = it->account;
	ev.dossier_id = it->dossier_id;
	ev.dossier_ref = it->dossier_ref;
	ev.created = it->at;
	ev.json = json;
	ev.attempt = it->attempts + 1;
	if (isdoc) {
		blob_path(c->bs, doc.sha256, path, sizeof(path));
		pdoc.id = doc.id;
		pdoc.filename = doc.filename;
		pdoc.stored_name = doc.stored_name;
		pdoc.content_type = doc.content_type;
		pdoc.size = doc.size;
		pdoc.sha256 = doc.sha256;
		pdoc.path = path;
		pdoc.received = doc.received;
		ev.document = &pdoc;
	}
	plugin_run_event(c->desc, c->state, c->sync, &ev, &o);
	free(json);
	return evq_verdict(c, it, &o);
}

/* One pass: fan out, then the due heads; how many streams moved on. */
static int
evq_pass(struct evq_consumer *c)
{
	struct store_evq_item *items;
	char err[PD_ERRLEN];
	size_t n = 0, i;
	int added, moved = 0;

	if (store_evq_fanout(c->st, c->desc->name, evq_hook(c), c->sync,
	    pd_now(), &added, err) != 0) {
		log_err("events for %s %s: %s", c->desc->name, evq_hook(c),
		    err);
		return 0;
	}
	items = xcalloc(EVQ_BATCH, sizeof(*items));
	if (store_evq_due(c->st, c->desc->name, evq_hook(c), pd_now(), items,
	    EVQ_BATCH, &n, err) != 0)
		log_err("events for %s %s: %s", c->desc->name, evq_hook(c),
		    err);
	for (i = 0; i < n && !evq_stopping(c->q); i++)
		moved += evq_deliver(c, &items[i]);
	free(items);
	return moved;
}

/*
 * Settled deliveries only matter to an operator looking back (`events
 * list`): without this the table grows by one row per event and plugin
 * for ever.  Failed and expired rows stay longer, for `events retry`.
 */
#define EVQ_PRUNE_EVERY 3600
#define EVQ_KEEP_DONE (7 * 86400)
#define EVQ_KEEP_FAILED (30 * 86400)

static void
evq_prune(struct evq_consumer *c, int64_t *last)
{
	char err[PD_ERRLEN];
	int64_t now = pd_now();
	int n;

	if (now - *last < EVQ_PRUNE_EVERY)
		return;
	*last = now;
	if (store_evq_prune(c->st, c->desc->name, evq_hook(c),
	    now - EVQ_KEEP_DONE, now - EVQ_KEEP_FAILED, &n, err) != 0)
		log_warn("events: %s %s: %s", c->desc->name, evq_hook(c), err);
	else if (n > 0)
		log_info("events: %s %s: %d settled deliveries forgotten",
		    c->desc->name, evq_hook(c), n);
}

static void *
evq_main(void *arg)
{
	struct evq_consumer *c = arg;
	struct evq *q = c->q;
	struct timespec ts;
	int64_t pruned = 0;

	while (!evq_stopping(q)) {
		evq_prune(c, &pruned);
		/* A stream that moved on may have its next event due now. */
		if (evq_pass(c) > 0)
			continue;
		pthread_mutex_lock(&q->mu);
		pd_deadline_ms(&ts, q->cfg->ev_interval_ms);
		while (!q->stopping &&
		    pthread_cond_timedwait(&q->cv, &q->mu, &ts) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&q->mu);
	}
	return NULL;
}

/* ---- start and stop ---- */

static int
evq_add(struct evq *q, const struct postdoc_plugin *d, void *state, int sync,
    char *err)
{
	struct evq_consumer *c = &q->c[q->n++];
	char root[4096];
	int added;

	c->q = q;
	c->desc = d;
	c->state = state;
	c->sync = sync;
	snprintf(root, sizeof(root), "%s/blobs", q->cfg->var_dir);
	if (store_open(q->cfg->db_path, q->cfg->sync_mode, &c->st, err) != 0 ||
	    blob_store_open(root, &c->bs, err) != 0)
		return -1;
	/* Create the cursor now: events from here on are delivered.  No
	 * hook runs before serve is up. */
	return store_evq_fanout(c->st, d->name, evq_hook(c), sync, pd_now(),
	    &added, err);
}

static int
evq_consumers(struct evq *q, struct plugin_host *ph, char *err)
{
	const struct postdoc_plugin *d;
	void *state;
	int i;

	for (i = 0; plugin_at(ph, i, &d, &state) == 0; i++) {
		if (d->hooks.event != NULL && evq_add(q, d, state, 0, err) != 0)
			return -1;
		if (d->hooks.sync != NULL && evq_add(q, d, state, 1, err) != 0)
			return -1;
	}
	return 0;
}

int
evq_start(const struct pd_config *cfg, struct plugin_host *ph,
    struct evq **q_r, char *err)
{
	struct evq *q = xcalloc(1, sizeof(*q));
	pthread_condattr_t ca;
	int i, rc;

	*q_r = NULL;
	q->cfg = cfg;
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (evq_consumers(q, ph, err) != 0) {
		evq_stop(&q);
		return -1;
	}
	if (q->n == 0) {	/* no event or sync hook: nothing to run */
		evq_stop(&q);
		return 0;
	}
	for (i = 0; i < q->n; i++) {
		rc = pthread_create(&q->c[i].tid, NULL, evq_main, &q->c[i]);
		if (rc != 0) {
			pd_err(err, "events: pthread_create: %s",
			    strerror(rc));
			evq_stop(&q);
			return -1;
		}
		q->c[i].started = 1;
		log_info("events: %s %s hook started", q->c[i].desc->name,
		    evq_hook(&q->c[i]));
	}
	*q_r = q;
	return 0;
}

void
evq_stop(struct evq **qp)
{
	struct evq *q = *qp;
	int i;

	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stopping = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	/* A thread inside a hook returns within the plugin's own timeout. */
	for (i = 0; i < q->n; i++) {
		if (q->c[i].started)
			pthread_join(q->c[i].tid, NULL);
		blob_store_free(&q->c[i].bs);
		store_close(&q->c[i].st);
	}
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
	*qp = NULL;
}

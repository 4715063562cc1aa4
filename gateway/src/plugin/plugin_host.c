/*
 * plugin_host.c - loads plugins with dlopen, refuses any whose ABI or
 * descriptor size does not match this core, and runs the hook chains.
 * The first verdict other than CONT ends a chain (Haraka's contract).
 * Plugin text is cleaned to printable ASCII here, before any session sees
 * it, so a plugin cannot inject a reply line or a header.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/config.h"
#include "plugin_host.h"
#include "lib/util.h"

struct loaded_plugin {
	void *dl;
	const struct postdoc_plugin *desc;
	void *state;
	int started;		/* start() returned 0: stop() is owed */
};

struct plugin_host {
	int count;
	struct loaded_plugin p[PD_MAX_PLUGINS];
};

static int
plugin_valid_name(const char *name)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
			return 0;
	return i > 0 && i < 64;
}

/*
 * Run from a build tree (the README's quick start, the tests), the
 * plugins sit in plugins/.libs beside the binary, not in the installed
 * plugin_dir: look there when plugin_dir has no such file.
 */
static void
plugin_build_tree_path(const char *name, char *path, size_t len)
{
	char rel[128], alt[4096];

	snprintf(rel, sizeof(rel), "plugins/.libs/%s.so", name);
	if (pd_beside_exe(rel, alt, sizeof(alt)) && strlen(alt) < len)
		memcpy(path, alt, strlen(alt) + 1);
}

/* The file to dlopen: path if set, else plugin_dir/NAME.so (or the build
 * tree's); -1 with why naming the file that is not there. */
static int
plugin_path(const struct pd_config *cfg, const struct pd_plugin_conf *pc,
    char *path, size_t len, char *why)
{
	int explicit = pc->path != NULL && pc->path[0] != '\0', saved;

	if (explicit)
		snprintf(path, len, "%s", pc->path);
	else
		snprintf(path, len, "%s/%s.so", cfg->plugin_dir, pc->name);
	if (access(path, F_OK) == 0)
		return 0;
	saved = errno;		/* about the file the config names */
	if (!explicit) {
		char alt[4096];

		snprintf(alt, sizeof(alt), "%s", path);
		plugin_build_tree_path(pc->name, alt, sizeof(alt));
		if (access(alt, F_OK) == 0 && strlen(alt) < len) {
			memcpy(path, alt, strlen(alt) + 1);
			return 0;
		}
	}
	pd_err(why, "no such plugin: %s: %s", path, strerror(saved));
	return -1;
}

/*
 * Load and init one plugin.  Its errors go to why (no prefix): the
 * caller names the config entry, so check-config and serve both answer
 * "FILE:LINE: plugin NAME: why" like every other configuration error.
 */
static int
plugin_load_one(const struct pd_config *cfg, const struct pd_plugin_conf *pc,
    struct loaded_plugin *lp, char *why)
{
	char path[4096], perr[PD_ERRLEN];
	const struct postdoc_plugin *d;

	if (!plugin_valid_name(pc->name)) {
		pd_err(why, "name is not [a-z0-9_]+");
		return -1;
	}
	if (plugin_path(cfg, pc, path, sizeof(path), why) != 0)
		return -1;
	/* NODELETE: libraries a plugin pulls in (libESMTP, OpenSSL, GnuTLS)
	 * keep process-wide state and exit handlers; unmapping them at
	 * dlclose leaves dangling handlers and makes what their globals
	 * still hold look leaked. */
	lp->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (lp->dl == NULL) {
		pd_err(why, "cannot load: %s", dlerror());
		return -1;
	}
	d = dlsym(lp->dl, POSTDOC_PLUGIN_SYMBOL);
	if (d == NULL) {
		pd_err(why, "%s exports no '%s' descriptor", path,
		    POSTDOC_PLUGIN_SYMBOL);
		return -1;
	}
	/* ABI 4 plugins still load: ABI 5 only grew the reply, which the
	 * core allocates and zeroes (plugin.h). */
	if (d->abi < POSTDOC_PLUGIN_ABI_MIN || d->abi > POSTDOC_PLUGIN_ABI ||
	    d->size < sizeof(*d)) {
		pd_err(why, "ABI %u (descriptor %u bytes), this postdoc needs "
		    "ABI %u to %u (%zu bytes): rebuild the plugin", d->abi,
		    d->size, POSTDOC_PLUGIN_ABI_MIN, POSTDOC_PLUGIN_ABI,
		    sizeof(*d));
		return -1;
	}
	lp->desc = d;
	perr[0] = '\0';
	if (d->init != NULL &&
	    d->init(pc->settings, &lp->state, perr, sizeof(perr)) != 0) {
		lp->desc = NULL;	/* not initialised: no deinit */
		pd_err(why, "init failed: %s", perr[0] != '\0' ? perr :
		    "(no reason given)");
		return -1;
	}
	return 0;
}

int
plugin_host_load(const struct pd_config *cfg, struct plugin_host **ph_r,
    char *err)
{
	struct plugin_host *ph = xcalloc(1, sizeof(*ph));
	char why[PD_ERRLEN];
	int i;

	for (i = 0; i < cfg->plugin_count; i++) {
		const struct pd_plugin_conf *pc = &cfg->plugins[i];

		if (plugin_load_one(cfg, pc, &ph->p[i], why) != 0) {
			pd_err(err, "%s: plugin %s: %s", pc->where != NULL ?
			    pc->where : "(config)", pc->name, why);
			ph->count = i + 1;
			plugin_host_free(&ph);
			return -1;
		}
		ph->count = i + 1;
		log_info("plugin %s %s loaded", ph->p[i].desc->name,
		    ph->p[i].desc->version != NULL ? ph->p[i].desc->version :
		    "");
	}
	*ph_r = ph;
	return 0;
}

void
plugin_host_free(struct plugin_host **php)
{
	struct plugin_host *ph = *php;
	int i;

	if (ph == NULL)
		return;
	plugin_host_stop(ph);	/* threads end before their code unloads */
	for (i = ph->count - 1; i >= 0; i--) {
		if (ph->p[i].desc != NULL && ph->p[i].desc->deinit != NULL)
			ph->p[i].desc->deinit(ph->p[i].state);
		if (ph->p[i].dl != NULL)
			dlclose(ph->p[i].dl);
	}
	free(ph);
	*php = NULL;
}

int
plugin_host_count(const struct plugin_host *ph)
{
	return ph == NULL ? 0 : ph->count;
}

/* Record a deciding verdict with its cleaned text. */
static int
plugin_decide(const struct loaded_plugin *lp, enum postdoc_verdict v,
    const struct postdoc_reply *r, struct plugin_outcome *o)
{
	char clean[POSTDOC_PLUGIN_TEXT_MAX];

	if (v == POSTDOC_CONT)
		return 0;
	if (v > POSTDOC_DISCONNECT) {
		/* An unknown verdict is a plugin bug: fail soft, not open. */
		log_err(PD_CTX_FMT "plugin %s returned unknown verdict %d",
		    PD_CTX, lp->desc->name, (int)v);
		v = POSTDOC_DENYSOFT;
	}
	o->verdict = v;
	pd_ascii_clean(clean, sizeof(clean), r->text);
	if (clean[0] == '\0')
		snprintf(o->text, sizeof(o->text), "refused by %s",
		    lp->desc->name);
	else
		snprintf(o->text, sizeof(o->text), "%s", clean);
	return 1;
}

/*
 * The chain walk, written once: CALL is the hook invocation for plugin lp
 * with reply r; plugins without the hook are skipped.
 */
#define PLUGIN_CHAIN(ph, o, hook, CALL) do {				\
	int i_;								\
	(o)->verdict = POSTDOC_CONT;					\
	(o)->text[0] = '\0';						\
	for (i_ = 0; (ph) != NULL && i_ < (ph)->count; i_++) {		\
		const struct loaded_plugin *lp = &(ph)->p[i_];		\
		struct postdoc_reply r;					\
		memset(&r, 0, sizeof(r));				\
		if (lp->desc == NULL || lp->desc->hooks.hook == NULL)	\
			continue;					\
		if (plugin_decide(lp, (CALL), &r, (o)))			\
			break;						\
	}								\
} while (0)

void
plugin_run_connect(struct plugin_host *ph,
    const struct postdoc_session_info *s, struct plugin_outcome *o)
{
	PLUGIN_CHAIN(ph, o, connect, lp->desc->hooks.connect(lp->state, s,
	    &r));
}

void
plugin_run_helo(struct plugin_host *ph, const struct postdoc_session_info *s,
    struct plugin_outcome *o)
{
	PLUGIN_CHAIN(ph, o, helo, lp->desc->hooks.helo(lp->state, s, &r));
}

void
plugin_run_mail_from(struct plugin_host *ph,
    const struct postdoc_session_info *s, const char *sender,
    struct plugin_outcome *o)
{
	PLUGIN_CHAIN(ph, o, mail_from, lp->desc->hooks.mail_from(lp->state, s,
	    sender, &r));
}

void
plugin_run_rcpt_to(struct plugin_host *ph,
    const struct postdoc_session_info *s, const char *sender,
    const struct postdoc_rcpt_info *rc, struct plugin_outcome *o)
{
	PLUGIN_CHAIN(ph, o, rcpt_to, lp->desc->hooks.rcpt_to(lp->state, s,
	    sender, rc, &r));
}

void
plugin_run_message(struct plugin_host *ph,
    const struct postdoc_message_info *m, struct plugin_outcome *o)
{
	PLUGIN_CHAIN(ph, o, message, lp->desc->hooks.message(lp->state, m,
	    &r));
}

/*
 * What the scanners found, kept across the chain (a CONT may carry it):
 * the worst answer wins, so one scanner that could not look makes the
 * file "unscanned" even when another found it clean.  An unknown value
 * is a plugin bug and counts as "unscanned" (never as clean).
 */
static void
plugin_note_scan(const struct loaded_plugin *lp, const struct postdoc_reply *r,
    struct plugin_outcome *o)
{
	enum postdoc_scan s = r->scan;

	if (lp->desc->abi < 5)
		return;		/* an ABI 4 reply has no scan field */
	if (s > POSTDOC_SCAN_INFECTED)
		s = POSTDOC_SCAN_UNSCANNED;
	if (s > o->scan)
		o->scan = s;
}

void
plugin_run_attachment(struct plugin_host *ph,
    const struct postdoc_attachment_info *a, struct plugin_outcome *o)
{
	int i;

	o->verdict = POSTDOC_CONT;
	o->text[0] = '\0';
	o->scan = POSTDOC_SCAN_NONE;
	for (i = 0; ph != NULL && i < ph->count; i++) {
		const struct loaded_plugin *lp = &ph->p[i];
		struct postdoc_reply r;
		enum postdoc_verdict v;

		if (lp->desc == NULL || lp->desc->hooks.attachment == NULL)
			continue;
		memset(&r, 0, sizeof(r));
		v = lp->desc->hooks.attachment(lp->state, a, &r);
		plugin_note_scan(lp, &r, o);
		if (plugin_decide(lp, v, &r, o))
			break;
	}
	/* INFECTED means a refusal: with any other verdict it says
	 * nothing the file could be marked with. */
	if (o->scan == POSTDOC_SCAN_INFECTED && o->verdict != POSTDOC_DENY)
		o->scan = POSTDOC_SCAN_UNSCANNED;
}

void
plugin_run_stored(struct plugin_host *ph, const struct postdoc_stored_info *st)
{
	int i;

	for (i = 0; ph != NULL && i < ph->count; i++)
		if (ph->p[i].desc != NULL &&
		    ph->p[i].desc->hooks.stored != NULL)
			ph->p[i].desc->hooks.stored(ph->p[i].state, st);
}

int
plugin_run_outbound(struct plugin_host *ph,
    const struct postdoc_outbound_info *m, char *prepend, size_t prepend_len,
    struct plugin_outcome *o)
{
	size_t used = 0;
	int i;

	o->verdict = POSTDOC_CONT;
	o->text[0] = '\0';
	if (prepend_len > 0)
		prepend[0] = '\0';
	for (i = 0; ph != NULL && i < ph->count; i++) {
		const struct loaded_plugin *lp = &ph->p[i];
		struct postdoc_reply r;
		enum postdoc_verdict v;

		memset(&r, 0, sizeof(r));
		if (lp->desc == NULL || lp->desc->hooks.outbound == NULL)
			continue;
		prepend[used] = '\0';
		v = lp->desc->hooks.outbound(lp->state, m, prepend + used,
		    prepend_len - used, &r);
		/* A plugin must leave a terminated string inside its room. */
		if (memchr(prepend + used, '\0', prepend_len - used) == NULL) {
			prepend[used] = '\0';
			v = POSTDOC_DENYSOFT;
			snprintf(r.text, sizeof(r.text), "%s: header too long",
			    lp->desc->name);
		}
		if (v == POSTDOC_DENY || v == POSTDOC_DENYSOFT ||
		    v == POSTDOC_DISCONNECT) {
			prepend[used] = '\0';
			plugin_decide(lp, v == POSTDOC_DENY ? v :
			    POSTDOC_DENYSOFT, &r, o);
			return -1;
		}
		used += strlen(prepend + used);
	}
	return 0;
}

const struct postdoc_plugin *
plugin_find(struct plugin_host *ph, const char *name, void **state_r)
{
	int i;

	for (i = 0; ph != NULL && i < ph->count; i++)
		if (ph->p[i].desc != NULL &&
		    strcmp(ph->p[i].desc->name, name) == 0) {
			if (state_r != NULL)
				*state_r = ph->p[i].state;
			return ph->p[i].desc;
		}
	return NULL;
}

void
plugin_deliver(struct plugin_host *ph, const char *transport,
    const struct postdoc_outbound_info *msgs, size_t n,
    struct postdoc_delivery *results)
{
	void *state = NULL;
	const struct postdoc_plugin *p = plugin_find(ph, transport, &state);
	size_t i;

	if (p != NULL && p->hooks.deliver != NULL) {
		memset(results, 0, n * sizeof(*results));
		p->hooks.deliver(state, msgs, n, results);
		for (i = 0; i < n; i++) {
			char clean[sizeof(results[i].text)];

			/* Relay text reaches our store and logs: ASCII only. */
			pd_ascii_clean(clean, sizeof(clean), results[i].text);
			memcpy(results[i].text, clean, sizeof(clean));
			pd_ascii_clean(clean, sizeof(results[i].enhanced),
			    results[i].enhanced);
			memcpy(results[i].enhanced, clean,
			    sizeof(results[i].enhanced));
		}
		return;
	}
	for (i = 0; i < n; i++) {
		results[i].code = 0;
		snprintf(results[i].enhanced, sizeof(results[i].enhanced),
		    "4.3.0");
		snprintf(results[i].text, sizeof(results[i].text),
		    "no transport plugin '%s' loaded", transport);
	}
}

int
plugin_host_start(struct plugin_host *ph, const struct postdoc_host *host,
    char *err)
{
	char perr[PD_ERRLEN];
	int i;

	for (i = 0; ph != NULL && i < ph->count; i++) {
		struct loaded_plugin *lp = &ph->p[i];

		if (lp->desc == NULL || lp->desc->start == NULL)
			continue;
		perr[0] = '\0';
		if (lp->desc->start(lp->state, host, perr, sizeof(perr)) != 0) {
			pd_err(err, "plugin %s: start failed: %s",
			    lp->desc->name, perr[0] != '\0' ? perr :
			    "(no reason given)");
			plugin_host_stop(ph);
			return -1;
		}
		lp->started = 1;
	}
	return 0;
}

void
plugin_host_stop(struct plugin_host *ph)
{
	int i;

	for (i = ph == NULL ? -1 : ph->count - 1; i >= 0; i--) {
		struct loaded_plugin *lp = &ph->p[i];

		if (!lp->started)
			continue;
		lp->started = 0;
		if (lp->desc->stop != NULL)
			lp->desc->stop(lp->state);
	}
}

int
plugin_command(struct plugin_host *ph, const char *name, int argc,
    const char *const *argv, FILE *out, char *err)
{
	void *state = NULL;
	const struct postdoc_plugin *p = plugin_find(ph, name, &state);
	int rc;

	if (p == NULL || p->command == NULL) {
		pd_err(err, "no loaded plugin '%s' with commands (add it to "
		    "the plugins list)", name);
		return -1;
	}
	err[0] = '\0';
	rc = p->command(state, argc, argv, out, err, PD_ERRLEN);
	if (rc != 0 && err[0] == '\0')
		pd_err(err, "%s: command failed", name);
	return rc;
}

int
plugin_at(struct plugin_host *ph, int i, const struct postdoc_plugin **desc_r,
    void **state_r)
{
	if (ph == NULL || i < 0 || i >= ph->count || ph->p[i].desc == NULL)
		return -1;
	*desc_r = ph->p[i].desc;
	*state_r = ph->p[i].state;
	return 0;
}

void
plugin_run_event(const struct postdoc_plugin *desc, void *state, int sync,
    const struct postdoc_event *ev, struct plugin_outcome *o)
{
	struct postdoc_reply r;
	enum postdoc_verdict v;
	char clean[POSTDOC_PLUGIN_TEXT_MAX];

	memset(&r, 0, sizeof(r));
	v = sync ? desc->hooks.sync(state, ev, &r) :
	    desc->hooks.event(state, ev, &r);
	if (v == POSTDOC_CONT)
		v = POSTDOC_OK;
	else if (v != POSTDOC_OK && v != POSTDOC_DENY)
		v = POSTDOC_DENYSOFT;	/* fail soft, never open */
	o->verdict = v;
	pd_ascii_clean(clean, sizeof(clean), r.text);
	snprintf(o->text, sizeof(o->text), "%s", clean);
}

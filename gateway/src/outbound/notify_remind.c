/*
 * notify_remind.c - reminders: which open dossier is owed one at a given
 * time (notify_reminder_number, a rule without the store), and queuing
 * it with only the required items still missing.  Two reminders are
 * never closer than the schedule's gap: the dossier's reminder clock
 * (reminded_at) moves with each one.  The decisions are a plan
 * (notify_reminders_plan) that writes nothing: `remind --dry-run` prints
 * it, the real run acts on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/util.h"
#include "eligible.h"
#include "notify_int.h"
#include "store/store.h"

struct notify_dossiers {
	struct store_dossier *v;
	size_t n, cap;
};

static int
notify_collect_cb(const struct store_dossier *d, void *ctx)
{
	struct notify_dossiers *l = ctx;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = *d;
	return 0;
}

static int
notify_collect_account_cb(const struct store_account *a, void *ctx)
{
	char err[PD_ERRLEN];
	void **args = ctx;

	return store_dossier_list(args[0], a->id, args[2], notify_collect_cb,
	    args[1], err) != 0 ? -1 : 0;
}

/* The n-th entry (0-based) of "3,7,14" into *days_r: 1, or 0 past the end. */
static int
notify_schedule_step(const char *p, int64_t n, int64_t *days_r)
{
	int64_t k;

	for (k = 0; *p != '\0' && k < n; k++)
		p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',');
	if (*p == '\0')
		return 0;			/* schedule exhausted */
	*days_r = strtoll(p, NULL, 10);
	return 1;
}

int
notify_reminder_number(const struct notify_schedule *s, int64_t now,
    int64_t *days_r)
{
	int64_t prev = 0;

	if (s->invitations == 0 || s->outstanding <= 0 ||
	    !notify_schedule_step(s->days, s->sent, days_r))
		return 0;
	if (now < s->invited + *days_r * 86400)
		return 0;
	/* the gap to the previous step, from the last reminder's clock */
	if (s->sent > 0 && !notify_schedule_step(s->days, s->sent - 1, &prev))
		prev = 0;
	if (s->last > 0 && now < s->last + (*days_r - prev) * 86400)
		return 0;
	return (int)(s->sent + 1);
}

/* Required items requested or rejected, and their labels.  A dossier
 * without items (an invitation before items, nothing asked): one is
 * missing until a document arrives after the invitation. */
struct notify_missing {
	int64_t items, missing;
	json_t *labels;
};

static int
notify_missing_cb(const struct store_item *it, void *ctx)
{
	struct notify_missing *m = ctx;

	m->items++;
	if (it->required && (strcmp(it->state, "requested") == 0 ||
	    strcmp(it->state, "rejected") == 0)) {
		m->missing++;
		json_array_append_new(m->labels, json_string(it->label));
	}
	return 0;
}

static int
notify_missing(const struct notify_env *env, const struct store_dossier *d,
    int64_t invited, int64_t *n_r, json_t *labels, char *err)
{
	struct notify_missing m = { 0, 0, labels };
	int64_t docs = 0;

	if (store_item_list(env->st, d->account_id, d->id, notify_missing_cb,
	    &m, err) != 0)
		return -1;
	if (m.items > 0) {
		*n_r = m.missing;
		return 0;
	}
	if (store_document_count_since(env->st, d->id, invited, &docs, err)
	    != 0)
		return -1;
	*n_r = docs == 0;
	return 0;
}

/* Why no reminder is due (notify_reminder_number said 0), and when the
 * next one will be if it is only a matter of time (*next_r, else 0). */
static const char *
notify_reminder_why(const struct notify_schedule *s, int64_t now,
    int64_t *next_r)
{
	int64_t days = 0, prev = 0, at;

	*next_r = 0;
	if (s->invitations == 0)
		return "not invited yet";
	if (s->outstanding <= 0)
		return "nothing outstanding";
	if (!notify_schedule_step(s->days, s->sent, &days))
		return "every reminder of the schedule was sent";
	if (s->sent > 0 && !notify_schedule_step(s->days, s->sent - 1, &prev))
		prev = 0;
	at = s->invited + days * 86400;
	if (s->last > 0 && s->last + (days - prev) * 86400 > at)
		at = s->last + (days - prev) * 86400;
	*next_r = at > now ? at : 0;
	return "not due yet";
}

/* The decision for d at `now` into p (p->labels already an array). */
static int
notify_reminder_due(const struct notify_env *env,
    const struct store_dossier *d, int64_t now,
    struct notify_remind_plan *p, char *err)
{
	struct notify_schedule s = { .days = env->cfg->reminder_days };
	int64_t last, r_first;

	if (strcmp(d->status, "open") != 0) {
		p->why = "closed";
		return 0;
	}
	if (env->cfg->reminder_days[0] == '\0') {
		p->why = "reminders are off (outbound.reminder_days is empty)";
		return 0;
	}
	if (store_outbound_count(env->st, d->id, "invitation", &s.invitations,
	    &s.invited, &last, err) != 0)
		return -1;
	if (s.invitations == 0) {
		p->why = "not invited yet";
		return 0;
	}
	if (store_outbound_count(env->st, d->id, "reminder", &s.sent, &r_first,
	    &s.last, err) != 0)
		return -1;
	if (s.sent == 0)
		s.last = 0;
	if (d->reminded_at > s.last)
		s.last = d->reminded_at;
	if (notify_missing(env, d, s.invited, &s.outstanding, p->labels,
	    err) != 0)
		return -1;
	p->outstanding = s.outstanding;
	p->number = notify_reminder_number(&s, now, &p->days);
	if (p->number == 0)
		p->why = notify_reminder_why(&s, now, &p->next);
	return 0;
}

/* The queue would refuse the contact (suppressed...): p->refused says
 * why, so that a dry run says it and the real run skips the dossier. */
static int
notify_reminder_eligible(const struct notify_env *env,
    const struct store_dossier *d, int64_t now,
    struct notify_remind_plan *p, char *err)
{
	struct eligible_ask a = { .kind = ELIGIBLE_DOSSIER,
	    .when = ELIGIBLE_QUEUE, .account_id = d->account_id,
	    .rcpt = d->contact, .now = now };
	struct eligible_verdict v;
	int rc = eligible_check(env->cfg, env->st, &a, &v, err);

	if (rc < 0)
		return -1;
	if (rc == 0)
		snprintf(p->refused, sizeof(p->refused), "%s%s%s", v.reason,
		    v.detail[0] ? ": " : "", v.detail);
	return 0;
}

static int
notify_remind_one(const struct notify_env *env, const struct store_dossier *d,
    int number, int64_t days, int64_t now, char *err)
{
	struct notify_msg nm;
	char addr[512], locale[16], ebuf[PD_ERRLEN];
	json_t *data;
	int rc;

	notify_dossier_address(env->cfg, d, addr, sizeof(addr));
	notify_locale(env->cfg, env->st, d, NULL, locale, sizeof(locale));
	nm = (struct notify_msg){ "reminder", locale, "reminder", d->contact,
	    addr };
	if ((data = notify_data(env, d, locale, now, err)) == NULL)
		return -1;
	json_object_set_new(data, "reminder", json_pack("{s:i, s:I}",
	    "number", number, "days_since_invitation", (json_int_t)days));
	/*
	 * The clock moves first, then the message is queued; if queuing
	 * fails the clock goes back.  The queue writes through its own
	 * store connection (outq_ctx_new), which cannot join a transaction
	 * of env->st, so this order is the one whose worst case (a crash
	 * between the two) is a reminder skipped, never two too close.
	 */
	if (store_dossier_set_reminded(env->st, d->id, now, err) != 0) {
		json_decref(data);
		return -1;
	}
	rc = notify_send(env, d, &nm, data, NULL, err);
	json_decref(data);
	if (rc != 0 && store_dossier_set_reminded(env->st, d->id,
	    d->reminded_at, ebuf) != 0)
		log_warn("reminder for dossier %lld: the clock stays at %lld: "
		    "%s", (long long)d->id, (long long)now, ebuf);
	return rc;
}

int
notify_reminders_plan(const struct notify_env *env, int64_t now,
    int with_closed, notify_remind_cb cb, void *ctx, char *err)
{
	struct notify_dossiers l = { NULL, 0, 0 };
	struct notify_remind_plan p;
	void *args[3] = { env->st, &l, with_closed ? NULL : (void *)"open" };
	size_t i;
	int rc = 0;

	/* Collect first: acting while a listing is open is asking for
	 * surprises. */
	if (store_account_list(env->st, notify_collect_account_cb, args, err)
	    != 0) {
		free(l.v);
		return -1;
	}
	for (i = 0; i < l.n && rc == 0; i++) {
		memset(&p, 0, sizeof(p));
		p.d = &l.v[i];
		p.labels = json_array();
		if (notify_reminder_due(env, &l.v[i], now, &p, err) != 0 ||
		    (p.number > 0 && notify_reminder_eligible(env, &l.v[i],
		    now, &p, err) != 0))
			rc = -1;
		else
			rc = cb(&p, ctx);
		json_decref(p.labels);
	}
	free(l.v);
	return rc;
}

struct notify_remind_run {
	const struct notify_env *env;
	int64_t now;
	unsigned queued;
};

/* The real run acts on the plan: one dossier's problem is not the
 * rest's, so a refusal or a failure is a warning and the run goes on. */
static int
notify_remind_act_cb(const struct notify_remind_plan *p, void *ctx)
{
	struct notify_remind_run *r = ctx;
	char err[PD_ERRLEN];

	if (p->number == 0)
		return 0;
	if (p->refused[0] != '\0')
		log_warn("reminder for dossier %lld: recipient %s: %s",
		    (long long)p->d->id, p->d->contact, p->refused);
	else if (notify_remind_one(r->env, p->d, p->number, p->days, r->now,
	    err) == 0)
		r->queued++;
	else
		log_warn("reminder for dossier %lld: %s", (long long)p->d->id,
		    err);
	return 0;
}

int
notify_reminders(const struct notify_env *env, int64_t now,
    unsigned *queued_r, char *err)
{
	struct notify_remind_run r = { env, now, 0 };
	int rc;

	*queued_r = 0;
	if (env->cfg->reminder_days[0] == '\0')
		return 0;
	/* serve runs this each minute: the closed dossiers, which only a
	 * dry run shows, are not read. */
	rc = notify_reminders_plan(env, now, 0, notify_remind_act_cb, &r, err);
	*queued_r = r.queued;
	return rc;
}

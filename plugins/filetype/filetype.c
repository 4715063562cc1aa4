/*
 * filetype.c - the `filetype` plugin: refuses attachments whose real type
 * (libmagic's sniff of the decoded bytes, done once by the core and passed
 * in sniffed_type) is outside the account's allow-list.  The declared
 * Content-Type and the file name are never trusted: a "invoice.pdf" that is
 * a PE executable is refused as what it is.
 *
 * settings = { allow = [ "application/pdf", ... ];
 *              accounts = ( { name = "ACME"; allow = [ ... ]; } ); };
 * Without `allow`, a conservative list of document types applies.  An
 * account listed twice is refused: one of its lists would go unused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "postdoc/plugin.h"

#define FT_MAX_TYPES 128
#define FT_MAX_ACCOUNTS 64

struct ft_list {
	int count;
	char *types[FT_MAX_TYPES];
};

struct ft_account {
	char *name;
	struct ft_list allow;
};

struct ft_state {
	struct ft_list allow;
	int naccounts;
	struct ft_account accounts[FT_MAX_ACCOUNTS];
};

static const char *ft_default_allow[] = {
	"application/pdf", "image/jpeg", "image/png", "image/gif",
	"image/tiff", "image/webp", "image/heic", "text/plain", "text/csv",
	NULL
};

static void
ft_list_free(struct ft_list *l)
{
	int i;

	for (i = 0; i < l->count; i++)
		free(l->types[i]);
	l->count = 0;
}

static int
ft_list_add(struct ft_list *l, const char *type, char *err, size_t errlen)
{
	if (l->count == FT_MAX_TYPES) {
		snprintf(err, errlen, "more than %d types in a list",
		    FT_MAX_TYPES);
		return -1;
	}
	if (strchr(type, '/') == NULL) {
		snprintf(err, errlen, "'%s' is not a MIME type (type/subtype)",
		    type);
		return -1;
	}
	l->types[l->count++] = strdup(type);
	return 0;
}

/* Read an array of strings; `where` names it in errors with its line. */
static int
ft_list_read(const config_setting_t *arr, struct ft_list *l, char *err,
    size_t errlen)
{
	int i, n;
	const char *s;

	if (config_setting_type(arr) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(arr) != CONFIG_TYPE_LIST) {
		snprintf(err, errlen, "line %d: 'allow' must be an array of "
		    "strings", config_setting_source_line(arr));
		return -1;
	}
	n = config_setting_length(arr);
	for (i = 0; i < n; i++) {
		s = config_setting_get_string_elem(arr, i);
		if (s == NULL) {
			snprintf(err, errlen, "line %d: 'allow' element %d is "
			    "not a string", config_setting_source_line(arr),
			    i + 1);
			return -1;
		}
		if (ft_list_add(l, s, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* Two lists for one account would leave one of them silently unused. */
static int
ft_account_seen(const struct ft_state *st, const char *name)
{
	int i;

	for (i = 0; i < st->naccounts; i++)
		if (strcmp(st->accounts[i].name, name) == 0)
			return 1;
	return 0;
}

static int
ft_accounts_read(const config_setting_t *list, struct ft_state *st,
    char *err, size_t errlen)
{
	int i, n = config_setting_length(list);
	const config_setting_t *a, *allow;
	const char *name;

	if (!config_setting_is_list(list) || n > FT_MAX_ACCOUNTS) {
		snprintf(err, errlen, "line %d: 'accounts' must be a list of "
		    "at most %d groups", config_setting_source_line(list),
		    FT_MAX_ACCOUNTS);
		return -1;
	}
	for (i = 0; i < n; i++) {
		a = config_setting_get_elem(list, (unsigned)i);
		if (config_setting_lookup_string(a, "name", &name) != CONFIG_TRUE
		    || (allow = config_setting_get_member(a, "allow")) == NULL) {
			snprintf(err, errlen, "line %d: each account needs "
			    "name and allow", config_setting_source_line(a));
			return -1;
		}
		if (ft_account_seen(st, name)) {
			snprintf(err, errlen, "line %d: account '%.64s' has "
			    "two allow lists", config_setting_source_line(a),
			    name);
			return -1;
		}
		st->accounts[st->naccounts].name = strdup(name);
		if (ft_list_read(allow, &st->accounts[st->naccounts++].allow,
		    err, errlen) != 0)
			return -1;
	}
	return 0;
}

static void
ft_deinit(void *state)
{
	struct ft_state *st = state;
	int i;

	if (st == NULL)
		return;
	ft_list_free(&st->allow);
	for (i = 0; i < st->naccounts; i++) {
		free(st->accounts[i].name);
		ft_list_free(&st->accounts[i].allow);
	}
	free(st);
}

static int
ft_init(const config_setting_t *settings, void **state_r, char *err,
    size_t errlen)
{
	struct ft_state *st = calloc(1, sizeof(*st));
	const config_setting_t *allow = NULL, *accounts = NULL;
	int i;

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (settings != NULL) {
		allow = config_setting_get_member(settings, "allow");
		accounts = config_setting_get_member(settings, "accounts");
	}
	if (allow != NULL) {
		if (ft_list_read(allow, &st->allow, err, errlen) != 0)
			goto fail;
	} else {
		for (i = 0; ft_default_allow[i] != NULL; i++)
			ft_list_add(&st->allow, ft_default_allow[i], err,
			    errlen);
	}
	if (accounts != NULL && ft_accounts_read(accounts, st, err, errlen)
	    != 0)
		goto fail;
	*state_r = st;
	return 0;
fail:
	ft_deinit(st);
	return -1;
}

static const struct ft_list *
ft_list_for(const struct ft_state *st, const char *account)
{
	int i;

	for (i = 0; account != NULL && i < st->naccounts; i++)
		if (strcmp(st->accounts[i].name, account) == 0)
			return &st->accounts[i].allow;
	return &st->allow;
}

static int
ft_allowed(const struct ft_list *l, const char *type)
{
	int i;

	for (i = 0; i < l->count; i++)
		if (strcasecmp(l->types[i], type) == 0)
			return 1;
	return 0;
}

static enum postdoc_verdict
ft_attachment(void *state, const struct postdoc_attachment_info *a,
    struct postdoc_reply *r)
{
	const struct ft_state *st = state;
	const char *type = a->sniffed_type != NULL && a->sniffed_type[0] ?
	    a->sniffed_type : "application/octet-stream";

	/* An empty file carries no content to abuse; refusing it would drop
	 * a message over nothing. */
	if (a->size == 0 || strcmp(type, "application/x-empty") == 0)
		return POSTDOC_CONT;
	if (ft_allowed(ft_list_for(st, a->account), type))
		return POSTDOC_CONT;
	snprintf(r->text, sizeof(r->text), "attachment \"%s\" is %s, a type "
	    "this dossier does not accept", a->filename, type);
	return POSTDOC_DENY;
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "filetype",
	.version = "1.0",
	.init = ft_init,
	.deinit = ft_deinit,
	.hooks = {
		.attachment = ft_attachment,
	},
};

/*
 * example.c - a complete Postdoc plugin: refuses any attachment larger
 * than `max_size` octets (settings = { max_size = 1048576; }, default
 * 10 MiB) with a permanent DENY naming the file.  It reads only the
 * borrowed attachment info and keeps no per-message state, so it is
 * thread-safe as the attachment hook must be (it runs on intake workers).
 *
 * Build: cc -shared -fPIC $(pkg-config --cflags postdoc-plugin) \
 *            -o example.so example.c
 * Load:  plugins = ( { name = "example"; path = "/path/to/example.so";
 *                      settings = { max_size = 1048576; }; } );
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <postdoc/plugin.h>

struct ex_state {
	uint64_t max_size;
};

/* Reads and checks only: check-config calls init then deinit. */
static int
ex_init(const config_setting_t *settings, void **state_r, char *err,
    size_t errlen)
{
	struct ex_state *st;
	long long max = 10LL * 1024 * 1024;

	/* libconfig stores 32-bit literals as int, L-suffixed ones as int64:
	 * lookup_int64 reads both. */
	if (settings != NULL &&
	    config_setting_lookup_int64(settings, "max_size", &max) ==
	    CONFIG_TRUE && max < 0) {
		snprintf(err, errlen, "max_size must be >= 0, not %lld", max);
		return -1;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->max_size = (uint64_t)max;
	*state_r = st;
	return 0;
}

static void
ex_deinit(void *state)
{
	free(state);
}

static enum postdoc_verdict
ex_attachment(void *state, const struct postdoc_attachment_info *a,
    struct postdoc_reply *r)
{
	const struct ex_state *st = state;

	if (a->size <= st->max_size)
		return POSTDOC_CONT;	/* no opinion: later plugins decide */
	/* The text is ours; the code (554 5.7.1) is the core's. */
	snprintf(r->text, sizeof(r->text), "attachment \"%s\" is %" PRIu64
	    " octets, more than the %" PRIu64 " this dossier accepts",
	    a->filename, a->size, st->max_size);
	return POSTDOC_DENY;
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "example",
	.version = "1.0",
	.init = ex_init,
	.deinit = ex_deinit,
	.hooks = {
		.attachment = ex_attachment,
	},
};

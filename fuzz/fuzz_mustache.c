/*
 * fuzz_mustache.c - libFuzzer target: the Mustache renderer.  The input
 * is a template; the data is a fixed tree with strings, numbers, a list
 * and a nested object, so sections, inverted sections, dotted names and
 * partials (which render the template itself, bounded in depth) run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/mustache.h"
#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *fuzz_self;

static char *
fuzz_partial(const char *name, void *ctx)
{
	return strcmp(name, "self") == 0 ? xstrdup(fuzz_self) : xstrdup("<p>");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *tmpl = malloc(size + 1), err[PD_ERRLEN], *out;
	json_t *d;

	memcpy(tmpl, data, size);
	tmpl[size] = '\0';
	fuzz_self = tmpl;
	d = json_pack("{s:s, s:i, s:b, s:[{s:s},{s:s}], s:{s:{s:s}}, s:n}",
	    "name", "<Alice & \"Bob\">", "n", 3, "yes", 1, "list", "x", "1",
	    "x", "2", "a", "b", "c", "deep", "none");
	out = mustache_render(tmpl, d, fuzz_partial, NULL, err);
	free(out);
	json_decref(d);
	free(tmpl);
	return 0;
}

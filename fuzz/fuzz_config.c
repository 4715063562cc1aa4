/*
 * fuzz_config.c - libFuzzer target: the config loader (libconfig syntax,
 * our table of parameters and bounds, plugin and account lists) on any
 * file content.  The file is rewritten in one temp directory per process.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct pd_config *cfg = NULL;
	char err[8192];
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/fuzz-config-%d.conf",
		    (int)getpid());
	if ((f = fopen(path, "wb")) == NULL)
		abort();
	fwrite(data, 1, size, f);
	fclose(f);
	if (config_load(path, &cfg, err, sizeof(err)) == 0)
		config_free(&cfg);
	return 0;
}

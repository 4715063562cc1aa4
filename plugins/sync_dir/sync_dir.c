/*
 * sync_dir - not written yet: loads, does nothing.
 */
#include <postdoc/plugin.h>

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "sync_dir",
	.version = "0",
};

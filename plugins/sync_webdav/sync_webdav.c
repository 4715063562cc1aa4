/*
 * sync_webdav - not written yet: loads, does nothing.
 */
#include <postdoc/plugin.h>

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "sync_webdav",
	.version = "0",
};

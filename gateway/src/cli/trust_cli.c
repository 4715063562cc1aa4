/*
 * trust_cli.c - `postdoc auth check FILE.eml --ip IP --mail-from ADDR
 * [--helo NAME] [--json]`: the SPF, DKIM and DMARC verdict Postdoc's
 * intake would record for a message, and its Authentication-Results
 * value, through the configured resolver (dns.server), for operators
 * checking their DNS and their senders'.  A command family (cli_args.h).
 * It reads the file only; it never stores, refuses or answers anyone.
 * Exit 0 (whatever the verdict), 1 error, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_args.h"
#include "trust_cli.h"
#include "lib/config.h"
#include "lib/util.h"
#include "trust/trust.h"

#define TC_FILE_MAX (64 * 1024 * 1024)

enum tc_opt { TO_IP, TO_FROM, TO_HELO, TO_COUNT };

static const struct cli_optdef tc_opts[TO_COUNT] = {
	[TO_IP] = { "--ip", NULL, 1 },
	[TO_FROM] = { "--mail-from", NULL, 1 },
	[TO_HELO] = { "--helo", NULL, 1 },
};

static int tc_check(struct cli_ctx *c);

static const struct cli_cmd tc_cmds[] = {
	{ "auth", "check", 1, (1u << TO_IP) | (1u << TO_FROM) |
	    (1u << TO_HELO), (1u << TO_IP) | (1u << TO_FROM),
	    CLI_NEED_CONFIG, tc_check, "auth check FILE.eml --ip IP "
	    "--mail-from ADDR [--helo NAME] [--json]   (SPF, DKIM, DMARC "
	    "through dns.server)" },
};

const struct cli_family trust_cli_family = {
	tc_opts, TO_COUNT, tc_cmds, sizeof(tc_cmds) / sizeof(tc_cmds[0]),
	NULL, NULL, NULL
};

static char *
tc_read(const char *path, size_t *len_r, char *err)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		pd_err(err, "%s: cannot open", path);
		return NULL;
	}
	buf = xmalloc(TC_FILE_MAX + 1);
	n = fread(buf, 1, TC_FILE_MAX + 1, f);
	fclose(f);
	if (n > TC_FILE_MAX) {
		free(buf);
		pd_err(err, "%s: larger than %d octets", path, TC_FILE_MAX);
		return NULL;
	}
	*len_r = n;
	return buf;
}

static void
tc_print(const struct cli_ctx *c, const struct trust_verdict *v)
{
	json_t *o, *sigs;
	unsigned i;

	if (!c->json) {
		printf("spf=%s (%s)\ndkim=%s\n", v->spf, v->spf_domain,
		    v->dkim);
		for (i = 0; i < v->ndkim; i++)
			printf("  signature d=%s: %s\n", v->sigs[i].domain,
			    v->sigs[i].result);
		printf("dmarc=%s (%s)\nAuthentication-Results: %s\n",
		    v->dmarc, v->from_domain, v->ar);
		return;
	}
	sigs = json_array();
	for (i = 0; i < v->ndkim; i++)
		json_array_append_new(sigs, json_pack("{s:s, s:s}", "domain",
		    v->sigs[i].domain, "result", v->sigs[i].result));
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "spf", v->spf,
	    "spf_domain", v->spf_domain, "dkim", v->dkim, "dmarc", v->dmarc,
	    "from_domain", v->from_domain, "signatures", sigs,
	    "authentication_results", v->ar);
	json_dumpf(o, stdout, JSON_INDENT(1));
	putchar('\n');
	json_decref(o);
}

static int
tc_check(struct cli_ctx *c)
{
	struct trust_ctx *t = NULL;
	struct trust_verdict v;
	struct trust_input in;
	size_t len = 0;
	char *raw = tc_read(c->pos[2], &len, c->err);

	if (raw == NULL)
		return CLI_ERR;
	if (trust_ctx_new(c->cfg->dns_server, (int)c->cfg->dns_timeout_ms, &t,
	    c->err) != 0) {
		free(raw);
		return CLI_ERR;
	}
	in = (struct trust_input){ c->val[TO_IP], c->val[TO_HELO] ?
	    c->val[TO_HELO] : "", c->val[TO_FROM], (unsigned char *)raw, len,
	    c->cfg->hostname, 0 };
	(void)trust_check(t, &in, &v);
	tc_print(c, &v);
	trust_ctx_free(&t);
	free(raw);
	return CLI_OK;
}

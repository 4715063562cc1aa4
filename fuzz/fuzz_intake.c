/*
 * fuzz_intake.c - libFuzzer target: one message from raw bytes to stored
 * rows: the bytes become a spool file, intake_process parses it with
 * GMime under the default limits, decodes documents into blobs and
 * commits (group commit included) into a temp store made once per
 * process with one account and dossier.  No plugins.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/config.h"
#include "intake/intake.h"
#include "store/store.h"
#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pd_config *fz_cfg;
static struct intake_ctx *fz_ctx;
static struct intake_rcpt fz_rcpt;
static char fz_dir[128], fz_spool[256];

static void
fz_setup(void)
{
	struct store *st = NULL;
	char err[8192], conf[256];
	int64_t acct, dossier;
	FILE *f;

	snprintf(fz_dir, sizeof(fz_dir), "/tmp/fuzz-intake-%d", (int)getpid());
	snprintf(conf, sizeof(conf), "%s.conf", fz_dir);
	if ((f = fopen(conf, "w")) == NULL)
		abort();
	fprintf(f, "store = { var_dir = \"%s\"; };\nserver = { log_level = "
	    "\"err\"; };\noutbound = { receipts = false; };\nauth = { checks = false; };\n", fz_dir);
	fclose(f);
	if (config_load(conf, &fz_cfg, err, sizeof(err)) != 0 ||
	    pd_mkdirs(fz_dir, 0700) != 0 ||
	    store_open(fz_cfg->db_path, fz_cfg->sync_mode, &st, err) != 0 ||
	    store_account_add(st, "FUZZ", "any", &acct, err) != 0 ||
	    store_dossier_create(st, acct, "a@b.example", "REF",
	    "d-aaaaaaaaaaaaaaaaaaaaaaaaaa", &dossier, err) != 0 ||
	    intake_ctx_new(fz_cfg, NULL, &fz_ctx, err) != 0) {
		fprintf(stderr, "fuzz_intake setup: %s\n", err);
		abort();
	}
	fz_rcpt = (struct intake_rcpt){ "d-x@dossiers.localhost", dossier, acct,
	    "FUZZ", "REF", NULL };
	store_close(&st);
	snprintf(fz_spool, sizeof(fz_spool), "%s/spool-msg", fz_dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char md[32];
	char sha[65];
	struct intake_result res;
	struct intake_job job;
	FILE *f;

	if (fz_ctx == NULL)
		fz_setup();
	if ((f = fopen(fz_spool, "wb")) == NULL)
		abort();
	fwrite(data, 1, size, f);
	fclose(f);
	EVP_Digest(data, size, md, NULL, EVP_sha256(), NULL);
	pd_hex(sha, md, sizeof(md));
	memset(&job, 0, sizeof(job));
	job.queue_id = "fuzz";
	job.helo = "fuzz.example";
	job.client_ip = "127.0.0.1";
	job.mail_from = "a@b.example";
	job.rcpt_count = 1;
	job.rcpts = &fz_rcpt;
	job.spool_path = fz_spool;
	job.size = size;
	job.sha256 = sha;
	job.deadline_ms = pd_monotonic_ms() + 10000;
	intake_process(fz_ctx, &job, &res);
	return 0;
}

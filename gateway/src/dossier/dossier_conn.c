/*
 * dossier_conn.c - how a front end gets its store connection and blob
 * store without knowing the store: from the configuration, opened (and
 * migrated) here, held by the front end as opaque handles it only hands
 * to services.  One connection per thread.  Never keeps a handle itself.
 */
#include <stdio.h>

#include "dossier.h"
#include "lib/config.h"
#include "store/blob.h"
#include "store/store.h"

int
dossier_conn_open(const struct pd_config *cfg, struct store **st_r,
    char *err)
{
	return store_open(cfg->db_path, cfg->sync_mode, st_r, err);
}

void
dossier_conn_close(struct store **st)
{
	store_close(st);
}

int
dossier_blobs_open(const struct pd_config *cfg, struct blob_store **bs_r,
    char *err)
{
	char root[4200];

	snprintf(root, sizeof(root), "%s/blobs", cfg->var_dir);
	return blob_store_open(root, bs_r, err);
}

void
dossier_blobs_close(struct blob_store **bs)
{
	blob_store_free(bs);
}

/*
 * blob_gc.c - the one way a blob file no row names goes (blob_gc.h): the
 * hashes are checked against the rows and unlinked under the removal
 * lock, a chunk at a time so deliveries wait at most one chunk.  Never
 * removes a file a row names, nor one outside the blob store (hashes
 * only, validated by blob.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "blob_gc.h"
#include "store_privacy.h"
#include "lib/util.h"

#define BLOB_GC_CHUNK 256	/* hashes per exclusive hold */

struct blob_gc_list {
	char (*sha)[65];
	size_t n, cap;
};

static void
blob_gc_add(struct blob_gc_list *l, const char *sha)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->sha = xrealloc(l->sha, l->cap * sizeof(*l->sha));
	}
	snprintf(l->sha[l->n++], 65, "%s", sha);
}

struct blob_gc_rm {
	struct blob_store *bs;
	size_t n;
};

/* Called under the exclusive lock for each hash no row names. */
static int
blob_gc_unnamed_cb(const char *sha, void *ctx)
{
	struct blob_gc_rm *r = ctx;

	if (blob_exists(r->bs, sha) && blob_remove(r->bs, sha) == 0)
		r->n++;
	return 0;
}

/* ["<sha>", ...]: hashes are validated hex, so no escaping is needed. */
static char *
blob_gc_json(const char (*sha)[65], size_t n)
{
	char *j = xmalloc(n * 68 + 3), *p = j;
	size_t i;

	*p++ = '[';
	for (i = 0; i < n; i++)
		if (blob_sha_valid(sha[i]))
			p += sprintf(p, "%s\"%s\"", p > j + 1 ? "," : "",
			    sha[i]);
	*p++ = ']';
	*p = '\0';
	return j;
}

int
blob_gc_remove(struct store *st, struct blob_store *bs,
    const char (*sha)[65], size_t n, size_t *removed_r, char *err)
{
	struct blob_gc_rm r = { bs, 0 };
	size_t off, k;
	char *json;
	int rc = 0;

	for (off = 0; off < n && rc == 0; off += k) {
		k = n - off < BLOB_GC_CHUNK ? n - off : BLOB_GC_CHUNK;
		json = blob_gc_json(sha + off, k);
		if (blob_lock_excl(bs, BLOB_GC_WAIT_MS, err) != 0)
			rc = -1;
		else {
			rc = store_blobs_unnamed(st, json, blob_gc_unnamed_cb,
			    &r, err);
			blob_unlock_excl(bs);
		}
		free(json);
	}
	if (removed_r != NULL)
		*removed_r = r.n;
	return rc;
}

/* ---- the sweep ---- */

struct blob_gc_old {
	struct blob_gc_list l;
	int64_t before;
};

static int
blob_gc_old_cb(const char *sha, int64_t mtime, void *ctx)
{
	struct blob_gc_old *o = ctx;

	if (mtime < o->before)
		blob_gc_add(&o->l, sha);
	return 0;
}

static int
blob_gc_name_cb(const char *sha, void *ctx)
{
	if (blob_sha_valid(sha))
		blob_gc_add(ctx, sha);
	return 0;
}

static int
blob_gc_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Keep in old only what names (both sorted) lacks. */
static void
blob_gc_minus(struct blob_gc_list *old, const struct blob_gc_list *names)
{
	size_t i, j = 0, o = 0;
	int c;

	for (i = 0; i < old->n; i++) {
		c = 1;
		while (j < names->n &&
		    (c = strcmp(names->sha[j], old->sha[i])) < 0)
			j++;
		if (j < names->n && c == 0)
			continue;
		memmove(old->sha[o++], old->sha[i], 65);
	}
	old->n = o;
}

/*
 * The old blobs first, then the names (a row committed in between names
 * a blob we then keep); the names are read without the lock, so the
 * candidates are checked again under it by blob_gc_remove.
 */
int
blob_gc_sweep(struct store *st, struct blob_store *bs, int64_t now,
    int64_t grace, size_t *removed_r, char *err)
{
	struct blob_gc_old old = { { NULL, 0, 0 }, now - grace };
	struct blob_gc_list names = { NULL, 0, 0 };
	int rc = -1;

	*removed_r = 0;
	if (blob_walk(bs, blob_gc_old_cb, &old, err) != 0)
		goto out;
	if (old.l.n > 0 && store_blob_names(st, blob_gc_name_cb, &names,
	    err) != 0)
		goto out;
	if (old.l.n == 0) {
		rc = 0;
		goto out;
	}
	qsort(old.l.sha, old.l.n, sizeof(*old.l.sha), blob_gc_cmp);
	if (names.n > 0)
		qsort(names.sha, names.n, sizeof(*names.sha), blob_gc_cmp);
	blob_gc_minus(&old.l, &names);
	rc = blob_gc_remove(st, bs, (const char (*)[65])old.l.sha, old.l.n,
	    removed_r, err);
out:
	free(old.l.sha);
	free(names.sha);
	return rc;
}

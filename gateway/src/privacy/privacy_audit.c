/*
 * privacy_audit.c - the audit trail as the front ends read it.  Reads
 * only: rows are added by privacy.c and are never changed.
 */
#include "privacy_audit.h"
#include "store/store_privacy.h"

int
privacy_audit_list(struct store *st, store_audit_cb cb, void *ctx, char *err)
{
	return store_audit_list(st, cb, ctx, err);
}

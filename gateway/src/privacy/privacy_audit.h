/*
 * privacy_audit.h - reading the audit trail back (`postdoc audit list`):
 * exports, erasures, rectifications, consent changes and purges, oldest
 * first.  Writing a row is privacy_audit (privacy.h).
 */
#ifndef PD_PRIVACY_AUDIT_H
#define PD_PRIVACY_AUDIT_H

#include "store/records.h"

struct store;

int privacy_audit_list(struct store *st, store_audit_cb cb, void *ctx,
    char *err);

#endif

/*
 * trust_int.h - for trust/'s own files: the per-thread context (one
 * libunbound context, the libspf2 server, the libopendkim library) and
 * the blocking query every check goes through.
 */
#ifndef PD_TRUST_INT_H
#define PD_TRUST_INT_H

#include <stddef.h>

#include <unbound.h>

#include "trust.h"

struct SPF_server_struct;
struct DKIM_LIB;

struct trust_ctx {
	struct ub_ctx *ub;
	int timeout_ms;
	int64_t deadline_ms;		/* this check's end, 0 = none */
	struct SPF_server_struct *spf;
	struct dkim_lib *dkim;		/* DKIM_LIB */
	void *spf_layer;		/* SPF_dns_server_t */
};

/* Outcome of one query, in the words every check maps from. */
enum trust_dns {
	TRUST_DNS_OK,			/* answer with data in *res */
	TRUST_DNS_NXDOMAIN,
	TRUST_DNS_NODATA,
	TRUST_DNS_TEMP,			/* timeout, SERVFAIL, no server */
};

/* Resolve name/type (class IN) within ctx->timeout_ms.  With
 * TRUST_DNS_OK, *res_r is the answer (ub_resolve_free it); else NULL. */
enum trust_dns trust_dns_query(struct trust_ctx *c, const char *name,
    int type, struct ub_result **res_r);

/* The same, keeping the answer (its wire packet) for NXDOMAIN and
 * NODATA too: *res_r is set unless TRUST_DNS_TEMP. */
enum trust_dns trust_dns_answer(struct trust_ctx *c, const char *name,
    int type, struct ub_result **res_r);

/* TXT records of name concatenated per RR (RFC 7208 3.3), NUL-ended;
 * calls cb for each RR. */
enum trust_dns trust_dns_txt(struct trust_ctx *c, const char *name,
    void (*cb)(const char *txt, size_t len, void *arg), void *arg);

/* One TXT RR's character-strings joined into out (n + 1 bytes), NUL
 * ended; returns the length. */
size_t trust_txt_join(const unsigned char *rd, size_t n, char *out);

/* trust_spf.c */
int trust_spf_init(struct trust_ctx *c, char *err);
void trust_spf_free(struct trust_ctx *c);
void trust_spf_check(struct trust_ctx *c, const struct trust_input *in,
    struct trust_verdict *v);
/* trust_dkim.c */
int trust_dkim_init(struct trust_ctx *c, char *err);
void trust_dkim_free(struct trust_ctx *c);
void trust_dkim_check(struct trust_ctx *c, const struct trust_input *in,
    struct trust_verdict *v);
/* trust_dmarc.c */
void trust_dmarc_check(struct trust_ctx *c, const struct trust_input *in,
    struct trust_verdict *v);

#endif

/*
 * smtp_addr.h - parsing of SMTP command arguments (RFC 5321 4.1.2):
 * reverse-path / forward-path with ESMTP parameters, SIZE values, and the
 * mapping of an intake address to a dossier token.  Pure functions.
 */
#ifndef PD_SMTP_ADDR_H
#define PD_SMTP_ADDR_H

#include <stddef.h>
#include <stdint.h>

enum addr_status {
	ADDR_OK = 0,
	ADDR_SYNTAX,		/* 501 5.5.2 / 5.1.3 */
	ADDR_TOO_LONG,		/* 501 5.1.3: path > 256 or parts too long */
	ADDR_BAD_PARAM,		/* 555 5.5.4 unknown parameter */
	ADDR_BAD_SIZE		/* 501 5.5.4 malformed SIZE */
};

struct smtp_path {
	char addr[257];		/* "local@domain" or "" for <> */
	int null_path;		/* <> */
	int has_size;
	uint64_t size;		/* SIZE=, saturated at UINT64_MAX on overflow */
	int size_overflow;
	int body_8bit;		/* BODY=8BITMIME */
	int smtputf8;		/* SMTPUTF8 */
};

/*
 * Parse "FROM:<path> params" or "TO:<path> params" (the text after the
 * verb).  `from` selects which keyword and which parameters are allowed.
 * Source routes (<@a,@b:x@y>) are dropped (RFC 5321 4.1.2, C.).
 */
enum addr_status smtp_path_parse(const char *arg, int from,
    struct smtp_path *p_r);

/*
 * If addr is "<token>@<intake_domain>" with a syntactically valid token
 * (after case folding: "d-" then 8..64 of [a-z0-9]), write the folded
 * local part into local_r and return 1; else 0.
 */
int smtp_addr_intake_local(const char *addr, const char *intake_domain,
    char *local_r, size_t local_len);

/*
 * An item's address: "d-<token>+<item>@<intake_domain>" (RFC 5233
 * subaddress).  Fills local_r with "d-<token>" as smtp_addr_intake_local
 * does and item_r with the folded item part ("" when the address has no
 * '+').  The item part: 1..SMTP_ADDR_SLUG_MAX of [a-z0-9-], and the
 * whole local part with it at most 64 octets (RFC 5321 4.5.3.1.1).  1 or 0.
 */
#define SMTP_ADDR_SLUG_MAX 32
int smtp_addr_intake_item(const char *addr, const char *intake_domain,
    char *local_r, size_t local_len, char *item_r, size_t item_len);

/*
 * The item part made from a label: ASCII letters and digits lower-cased,
 * the Latin letters of French, German, Spanish, Polish, Czech... (Latin-1,
 * Latin Extended-A, U+1E9E) without their accents ("Pièce d'identité" ->
 * "piece-d-identite", "Straße" -> "strasse"), every other run a single
 * '-', none at either end, at most SMTP_ADDR_SLUG_MAX octets (cut at a
 * '-' where one is near).  "item" when nothing is left.
 */
void smtp_addr_slug(const char *label, char *out, size_t outlen);
/* 1 when s is a valid item part. */
int smtp_addr_slug_valid(const char *s);

/*
 * If addr is a VERP bounce address "b-<token>@<bounce_domain>" (token:
 * 16..64 of [a-z0-9] after case folding), write the token (without "b-")
 * into token_r and return 1; else 0.
 */
int smtp_addr_bounce_token(const char *addr, const char *bounce_domain,
    char *token_r, size_t token_len);

/*
 * An account's sender policy ("any", "contact", "domains:a.example,b")
 * applied to an envelope sender ("" = the null sender) and the dossier's
 * contact.  Returns 1 if the sender may file.
 */
int smtp_addr_sender_allowed(const char *policy, const char *sender,
    const char *contact);

/* Domain of an address (after '@'), or "" */
const char *smtp_addr_domain(const char *addr);

#endif

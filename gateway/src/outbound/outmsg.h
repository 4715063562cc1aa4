/*
 * outmsg.h - builds outbound messages with GMime: multipart/alternative
 * text + HTML (or text only), UTF-8 kept as UTF-8 (8bit/quoted-printable
 * chosen by GMime), headers encoded and folded by GMime, Message-ID and
 * Date, CRLF line ends, no line over 998 octets.  Header values are
 * single-line by construction; an address that is not valid is refused,
 * never "cleaned" into another one.
 */
#ifndef PD_OUTMSG_H
#define PD_OUTMSG_H

#include <stddef.h>

struct outmsg_header {
	const char *name;	/* e.g. "List-Unsubscribe"; [A-Za-z0-9-]+ */
	const char *value;	/* must already be safe ASCII; refused if not */
};

struct outmsg_spec {
	const char *from_name;		/* display name, may be "" */
	const char *from_addr;		/* validated */
	const char *to_name;		/* display name, may be "" */
	const char *to_addr;		/* validated */
	const char *reply_to;		/* address or NULL */
	const char *subject;
	const char *text;		/* required */
	const char *html;		/* or NULL */
	const char *msgid_domain;	/* right side of Message-ID */
	const struct outmsg_header *extra;	/* n_extra entries */
	size_t n_extra;
};

/*
 * 1 if addr is one plain addr-spec we are willing to send to: ASCII
 * (UTF-8 only with smtputf8 = 1), local part <= 64, domain <= 255 with
 * valid labels, no CR/LF/NUL/controls/spaces, no '<' '>' ',' ';' or
 * quotes: anything else is refused, not repaired.
 */
int outmsg_addr_valid(const char *addr, int smtputf8);

/*
 * A display name or subject as it may enter a header: CR, LF, NUL, other
 * C0/C1 controls, NEL, U+2028/U+2029 removed, invalid UTF-8 replaced,
 * capped at maxlen bytes at a character boundary.  malloc'd.
 */
char *outmsg_clean_text(const char *in, size_t maxlen);

/*
 * Write the message to path (created, mode 0640, not fsync'd) and return its
 * Message-ID (without <>) in msgid_r.  Returns 0, or -1 with err
 * (PD_ERRLEN) saying which field was refused.
 */
int outmsg_build(const struct outmsg_spec *spec, const char *path,
    char *msgid_r, size_t msgid_len, char *err);

/* 1 if the file at path is CRLF-canonical (no bare CR or LF) with every
 * line <= 998 octets: the check run before a message is queued. */
int outmsg_file_canonical(const char *path);

#endif

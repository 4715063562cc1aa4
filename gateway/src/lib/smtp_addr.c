/*
 * smtp_addr.c - owns the syntax of MAIL/RCPT arguments (RFC 5321 4.1.2,
 * 4.1.3, RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8) and the mapping
 * of an intake address to a dossier token.  Pure functions: no I/O, no
 * allocation, every peer octet checked before it is copied.
 */
#include "smtp_addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 5321 4.5.3.1.1-3; the path length includes "<", ">" and any route. */
#define AP_LOCAL_MAX	64
#define AP_DOMAIN_MAX	255
#define AP_PATH_MAX	256
/* RFC 1870: size-value = 1*20DIGIT */
#define AP_SIZE_DIGITS	20

/* Parameters seen on one command, to refuse duplicates. */
#define AP_SEEN_SIZE	0x1
#define AP_SEEN_BODY	0x2
#define AP_SEEN_UTF8	0x4

/* A cursor over the argument; `eight` records any octet >= 0x80. */
struct ap_cur {
	const unsigned char *p;
	int eight;
};

/* Length of one well-formed non-ASCII UTF-8 character at s, or 0
 * (RFC 3629 section 4: no overlongs, no surrogates, <= U+10FFFF). */
static int ap_utf8(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	int n, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Step over one UTF-8 character if there is one, noting it. */
static int ap_take_utf8(struct ap_cur *c)
{
	int n = ap_utf8(c->p);

	if (n == 0)
		return 0;
	c->p += n;
	c->eight = 1;
	return 1;
}

/* ASCII only: ctype's answer for octets >= 0x80 depends on the locale. */
static int ap_alnum(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9');
}

/* atext, RFC 5322 3.2.3, as used by RFC 5321 Atom */
static int ap_atext(unsigned char ch)
{
	return ap_alnum(ch) || (ch != '\0' &&
	    strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL);
}

/* Dot-string = Atom *("." Atom) */
static int ap_dot_string(struct ap_cur *c)
{
	for (;;) {
		const unsigned char *start = c->p;

		for (;;) {
			if (ap_atext(*c->p))
				c->p++;
			else if (!ap_take_utf8(c))
				break;
		}
		if (c->p == start)
			return -1;
		if (*c->p != '.')
			return 0;
		c->p++;
	}
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE (RFC 5321 4.1.2) */
static int ap_quoted(struct ap_cur *c)
{
	c->p++;				/* opening DQUOTE */
	for (;;) {
		unsigned char ch = *c->p;

		if (ch == '"') {
			c->p++;
			return 0;
		}
		if (ch == '\\') {	/* quoted-pairSMTP: "\" %d32-126 */
			if (c->p[1] < 32 || c->p[1] > 126)
				return -1;
			c->p += 2;
		} else if (ch >= 32 && ch <= 126) {
			c->p++;		/* qtextSMTP */
		} else if (!ap_take_utf8(c)) {
			return -1;	/* CTL, NUL, or broken UTF-8 */
		}
	}
}

/* sub-domain = Let-dig [Ldh-str]: no hyphen at either end */
static int ap_label(struct ap_cur *c)
{
	const unsigned char *start = c->p;

	for (;;) {
		if (ap_alnum(*c->p) || *c->p == '-')
			c->p++;
		else if (!ap_take_utf8(c))
			break;
	}
	if (c->p == start || *start == '-' || c->p[-1] == '-')
		return -1;
	return 0;
}

static int ap_domain_name(struct ap_cur *c)
{
	for (;;) {
		if (ap_label(c) < 0)
			return -1;
		if (*c->p != '.')
			return 0;
		c->p++;
	}
}

/* Ldh-str ":" 1*dcontent, dcontent = %d33-90 / %d94-126 (RFC 5321 4.1.3) */
static int ap_general_literal(const char *s)
{
	const char *colon = strchr(s, ':');
	const char *q;

	if (colon == NULL || colon == s || colon[-1] == '-' || colon[1] == '\0')
		return -1;
	for (q = s; q < colon; q++)
		if (!ap_alnum((unsigned char)*q) && *q != '-')
			return -1;
	for (q = colon + 1; *q != '\0'; q++)
		if (*q < 33 || *q > 126 || *q == '[' || *q == '\\' || *q == ']')
			return -1;
	return 0;
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 / General ) "]" */
static int ap_literal(struct ap_cur *c)
{
	const unsigned char *end = (const unsigned char *)
	    strchr((const char *)c->p, ']');
	char lit[AP_DOMAIN_MAX + 1];
	unsigned char bin[16];
	size_t n;

	if (end == NULL || (n = (size_t)(end - c->p - 1)) == 0 ||
	    n >= sizeof(lit))
		return -1;
	memcpy(lit, c->p + 1, n);
	lit[n] = '\0';
	c->p = end + 1;
	if (strncasecmp(lit, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, lit + 5, bin) == 1 ? 0 : -1;
	if (strspn(lit, "0123456789.") == n)
		return inet_pton(AF_INET, lit, bin) == 1 ? 0 : -1;
	return ap_general_literal(lit);
}

/* Domain, or an address literal where a Mailbox allows one */
static int ap_domain(struct ap_cur *c, int literal_ok)
{
	if (*c->p == '[')
		return literal_ok ? ap_literal(c) : -1;
	return ap_domain_name(c);
}

/* A-d-l ":" (a source route): parsed, then dropped (RFC 5321 4.1.2, C) */
static int ap_route(struct ap_cur *c)
{
	for (;;) {
		c->p++;			/* "@" */
		if (ap_domain(c, 0) < 0)
			return -1;
		if (*c->p == ':') {
			c->p++;
			return 0;
		}
		if (*c->p != ',' || c->p[1] != '@')
			return -1;
		c->p++;
	}
}

/* Mailbox = Local-part "@" ( Domain / address-literal ) */
static int ap_mailbox(struct ap_cur *c, size_t *local_len_r,
    const unsigned char **domain_r)
{
	const unsigned char *start = c->p;

	if ((*c->p == '"' ? ap_quoted(c) : ap_dot_string(c)) < 0)
		return -1;
	*local_len_r = (size_t)(c->p - start);
	if (*c->p != '@')
		return -1;
	*domain_r = ++c->p;
	return ap_domain(c, 1);
}

/*
 * Path = "<" [ A-d-l ":" ] Mailbox ">", or "<>" for MAIL only.  RCPT
 * TO:<Postmaster> without a domain is refused too: a dossier gateway has
 * no local postmaster mailbox to map it to.
 */
static enum addr_status ap_path(const char *s, int from,
    struct smtp_path *p, const char **rest_r, int *eight_r)
{
	struct ap_cur c = { (const unsigned char *)s, 0 };
	const unsigned char *mbox, *domain;
	size_t local_len;

	if (*c.p++ != '<')
		return ADDR_SYNTAX;
	if (*c.p == '>') {
		if (!from)
			return ADDR_SYNTAX;
		p->null_path = 1;
		*rest_r = (const char *)c.p + 1;
		return ADDR_OK;
	}
	if (*c.p == '@' && ap_route(&c) < 0)
		return ADDR_SYNTAX;
	mbox = c.p;
	if (ap_mailbox(&c, &local_len, &domain) < 0 || *c.p != '>')
		return ADDR_SYNTAX;
	if (local_len > AP_LOCAL_MAX || c.p - domain > AP_DOMAIN_MAX ||
	    c.p + 1 - (const unsigned char *)s > AP_PATH_MAX)
		return ADDR_TOO_LONG;
	/* <= AP_PATH_MAX - 2 octets, so it fits addr[257] */
	memcpy(p->addr, mbox, (size_t)(c.p - mbox));
	p->addr[c.p - mbox] = '\0';
	*rest_r = (const char *)c.p + 1;
	*eight_r = c.eight;
	return ADDR_OK;
}

/*
 * SIZE=1*20DIGIT (RFC 1870 section 6).  Anything at or above 2^63 is
 * flagged and saturated, so a caller comparing with an int64_t limit can
 * never see a huge declaration wrap into a small accepted one.
 */
static enum addr_status ap_size(const char *v, size_t n,
    struct smtp_path *p)
{
	uint64_t val = 0;
	int over = 0;
	size_t i;

	if (v == NULL || n == 0 || n > AP_SIZE_DIGITS)
		return ADDR_BAD_SIZE;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned char)v[i] - '0';

		if (d > 9)
			return ADDR_BAD_SIZE;
		if (val > (UINT64_MAX - d) / 10)
			over = 1;
		else
			val = val * 10 + d;
	}
	p->has_size = 1;
	p->size_overflow = over || val > (uint64_t)INT64_MAX;
	p->size = p->size_overflow ? UINT64_MAX : val;
	return ADDR_OK;
}

static int ap_kw_is(const char *kw, size_t n, const char *name)
{
	return n == strlen(name) && strncasecmp(kw, name, n) == 0;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int ap_keyword_ok(const char *kw, size_t n)
{
	size_t i;

	if (n == 0 || !ap_alnum((unsigned char)kw[0]))
		return 0;
	for (i = 1; i < n; i++)
		if (!ap_alnum((unsigned char)kw[i]) && kw[i] != '-')
			return 0;
	return 1;
}

/* One MAIL parameter: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (6531) */
static enum addr_status ap_param(const char *s, size_t len,
    struct smtp_path *p, unsigned *seen)
{
	const char *eq = memchr(s, '=', len);
	size_t klen = eq != NULL ? (size_t)(eq - s) : len;
	const char *v = eq != NULL ? eq + 1 : NULL;
	size_t vlen = eq != NULL ? len - klen - 1 : 0;
	unsigned bit;

	if (!ap_keyword_ok(s, klen))
		return ADDR_SYNTAX;
	bit = ap_kw_is(s, klen, "SIZE") ? AP_SEEN_SIZE :
	    ap_kw_is(s, klen, "BODY") ? AP_SEEN_BODY :
	    ap_kw_is(s, klen, "SMTPUTF8") ? AP_SEEN_UTF8 : 0;
	if (bit == 0)
		return ADDR_BAD_PARAM;
	if (*seen & bit)
		return ADDR_SYNTAX;
	*seen |= bit;
	if (bit == AP_SEEN_SIZE)
		return ap_size(v, vlen, p);
	if (bit == AP_SEEN_UTF8) {
		p->smtputf8 = 1;
		return v == NULL ? ADDR_OK : ADDR_BAD_PARAM;
	}
	if (v != NULL && ap_kw_is(v, vlen, "8BITMIME"))
		p->body_8bit = 1;
	else if (v == NULL || !ap_kw_is(v, vlen, "7BIT"))
		return ADDR_BAD_PARAM;	/* BINARYMIME needs CHUNKING */
	return ADDR_OK;
}

/* Mail-parameters = esmtp-param *(SP esmtp-param); RCPT takes none. */
static enum addr_status ap_params(const char *s, int from,
    struct smtp_path *p)
{
	enum addr_status st;
	unsigned seen = 0;
	size_t len;

	if (*s != '\0' && *s != ' ')
		return ADDR_SYNTAX;	/* "<a@b>junk" */
	for (;;) {
		s += strspn(s, " ");	/* tolerate extra and trailing SP */
		if (*s == '\0')
			return ADDR_OK;
		if (!from)
			return ADDR_BAD_PARAM;
		len = strcspn(s, " ");
		if ((st = ap_param(s, len, p, &seen)) != ADDR_OK)
			return st;
		s += len;
	}
}

/* CR, LF, NUL (by construction) and other controls never get through. */
static int ap_has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

enum addr_status smtp_path_parse(const char *arg, int from,
    struct smtp_path *p_r)
{
	const char *kw = from ? "FROM:" : "TO:", *rest = NULL;
	enum addr_status st;
	int eight = 0;

	memset(p_r, 0, sizeof(*p_r));
	if (arg == NULL || ap_has_ctl(arg) ||
	    strncasecmp(arg, kw, strlen(kw)) != 0)
		return ADDR_SYNTAX;
	arg += strlen(kw);
	if (*arg == ' ')
		arg++;			/* "MAIL FROM: <a@b>" is common */
	st = ap_path(arg, from, p_r, &rest, &eight);
	if (st == ADDR_OK)
		st = ap_params(rest, from, p_r);
	/* RFC 6531 3.3: UTF-8 addresses only with SMTPUTF8 on this MAIL */
	if (st == ADDR_OK && eight && !p_r->smtputf8)
		st = ADDR_SYNTAX;
	if (st != ADDR_OK)
		memset(p_r, 0, sizeof(*p_r));
	return st;
}

static unsigned char ap_lower(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* The token is a database key and a directory name: whitelist only. */
/* "<prefix>" then min..max of [a-z0-9]: dossier and VERP tokens. */
static int ap_token_ok(const char *s, size_t n, char prefix, size_t min,
    size_t max)
{
	size_t i;

	if (n < 2 + min || n > 2 + max || s[0] != prefix || s[1] != '-')
		return 0;
	for (i = 2; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

/* Lower-case addr and split it at the last '@' when the domain is
 * `domain`; the local part's length, or -1. */
static long ap_local_in(const char *addr, const char *domain, char *buf,
    size_t buflen)
{
	size_t n, i, dlen;
	const char *at;

	if (addr == NULL || domain == NULL || (n = strlen(addr)) >= buflen)
		return -1;
	for (i = 0; i <= n; i++)
		buf[i] = (char)ap_lower((unsigned char)addr[i]);
	if ((at = strrchr(buf, '@')) == NULL)
		return -1;
	dlen = strlen(domain);
	if (strlen(at + 1) != dlen)
		return -1;
	for (i = 0; i < dlen; i++)
		if (at[1 + i] != (char)ap_lower((unsigned char)domain[i]))
			return -1;
	return (long)(at - buf);
}

int smtp_addr_intake_local(const char *addr, const char *intake_domain,
    char *local_r, size_t local_len)
{
	char buf[sizeof(((struct smtp_path *)0)->addr)];
	long n = ap_local_in(addr, intake_domain, buf, sizeof(buf));

	if (n < 0 || !ap_token_ok(buf, (size_t)n, 'd', 8, 64) ||
	    (size_t)n >= local_len)
		return 0;
	memcpy(local_r, buf, (size_t)n);
	local_r[n] = '\0';
	return 1;
}

int smtp_addr_slug_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > SMTP_ADDR_SLUG_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

int smtp_addr_intake_item(const char *addr, const char *intake_domain,
    char *local_r, size_t local_len, char *item_r, size_t item_len)
{
	char buf[sizeof(((struct smtp_path *)0)->addr)];
	long n = ap_local_in(addr, intake_domain, buf, sizeof(buf));
	char *plus;
	size_t ln;

	if (n < 0)
		return 0;
	buf[n] = '\0';
	plus = strchr(buf, '+');
	ln = plus != NULL ? (size_t)(plus - buf) : (size_t)n;
	if (!ap_token_ok(buf, ln, 'd', 8, 64) || ln >= local_len)
		return 0;
	/* With its item part the local part is still one of at most 64
	 * octets (RFC 5321 4.5.3.1.1): dossier_item_address never makes a
	 * longer one, it falls back to the plain address. */
	if (plus != NULL && (!smtp_addr_slug_valid(plus + 1) ||
	    strlen(plus + 1) >= item_len || (size_t)n > AP_LOCAL_MAX))
		return 0;
	memcpy(local_r, buf, ln);
	local_r[ln] = '\0';
	snprintf(item_r, item_len, "%s", plus != NULL ? plus + 1 : "");
	return 1;
}

/*
 * The accented Latin letters of UTF-8 as the ASCII a reader would type:
 * Latin-1 (U+00C0..U+00FF) and Latin Extended-A (U+0100..U+017F: the
 * French OE and Y-diaeresis capitals, Polish, Czech, Turkish...); NULL:
 * not a letter we know (it becomes a separator).  one: room for a
 * single letter.
 */
static const char *ap_fold_latin(unsigned cp, char one[2])
{
	static const char *const l1[64] = {
		"a", "a", "a", "a", "a", "a", "ae", "c",	/* C0 */
		"e", "e", "e", "e", "i", "i", "i", "i",
		"d", "n", "o", "o", "o", "o", "o", NULL,	/* D0 */
		"o", "u", "u", "u", "u", "y", "th", "ss",
		"a", "a", "a", "a", "a", "a", "ae", "c",	/* E0 */
		"e", "e", "e", "e", "i", "i", "i", "i",
		"d", "n", "o", "o", "o", "o", "o", NULL,	/* F0 */
		"o", "u", "u", "u", "u", "y", "th", "y",
	};
	/* U+0100..U+017F, one letter each but for the ligatures below. */
	static const char exta[] =
	    "aaaaaaccccccccdd" "ddeeeeeeeeeegggg"	/* 0100, 0110 */
	    "gggghhhhiiiiiiii" "ii--jjkkklllllll"	/* 0120, 0130 */
	    "lllnnnnnnnnnoooo" "oo--rrrrrrssssss"	/* 0140, 0150 */
	    "ssttttttuuuuuuuu" "uuuuwwyyyzzzzzzs";	/* 0160, 0170 */
	if (cp >= 0xC0 && cp <= 0xFF)
		return l1[cp - 0xC0];
	if (cp == 0x132 || cp == 0x133)
		return "ij";
	if (cp == 0x152 || cp == 0x153)
		return "oe";
	if (cp >= 0x100 && cp <= 0x17F) {
		one[0] = exta[cp - 0x100];
		one[1] = '\0';
		return one;
	}
	if (cp == 0x1E9E)		/* capital sharp s (German) */
		return "ss";
	return NULL;
}

/* Append f to tmp, after a '-' when a separator came since the last. */
static void ap_slug_put(char *tmp, size_t len, size_t *o, int *dash,
    const char *f)
{
	if (*dash && *o > 0 && *o + 1 < len)
		tmp[(*o)++] = '-';
	*dash = 0;
	for (; *f != '\0' && *o + 1 < len; f++)
		tmp[(*o)++] = *f;
	tmp[*o] = '\0';
}

void smtp_addr_slug(const char *label, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)label;
	size_t o = 0, max = outlen - 1 < SMTP_ADDR_SLUG_MAX ? outlen - 1 :
	    SMTP_ADDR_SLUG_MAX, cut;
	char tmp[2 * SMTP_ADDR_SLUG_MAX], one[2] = { 0, 0 };
	const char *f;
	int dash = 0;

	tmp[0] = '\0';
	for (; *p != '\0' && o < max + 2; p++) {
		f = NULL;
		if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
			one[0] = (char)*p, f = one;
		else if (*p >= 'A' && *p <= 'Z')
			one[0] = (char)(*p - 'A' + 'a'), f = one;
		else if ((*p & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) {
			f = ap_fold_latin(((unsigned)(*p & 0x1F) << 6) |
			    (p[1] & 0x3F), one);
			p++;
		} else if ((*p & 0xF0) == 0xE0 && (p[1] & 0xC0) == 0x80 &&
		    (p[2] & 0xC0) == 0x80) {
			f = ap_fold_latin(((unsigned)(*p & 0x0F) << 12) |
			    ((unsigned)(p[1] & 0x3F) << 6) | (p[2] & 0x3F),
			    one);
			p += 2;
		}
		if (f == NULL)
			dash = 1;
		else
			ap_slug_put(tmp, sizeof(tmp), &o, &dash, f);
	}
	if (o > max) {
		/* Cut at a '-' in the last third, else hard. */
		for (cut = max; cut > max * 2 / 3 && tmp[cut] != '-'; cut--)
			;
		tmp[tmp[cut] == '-' ? cut : max] = '\0';
		o = strlen(tmp);
		while (o > 0 && tmp[o - 1] == '-')
			tmp[--o] = '\0';
	}
	snprintf(out, outlen, "%s", tmp[0] != '\0' ? tmp : "item");
}

int smtp_addr_bounce_token(const char *addr, const char *bounce_domain,
    char *token_r, size_t token_len)
{
	char buf[sizeof(((struct smtp_path *)0)->addr)];
	long n = ap_local_in(addr, bounce_domain, buf, sizeof(buf));

	if (n < 0 || !ap_token_ok(buf, (size_t)n, 'b', 16, 64) ||
	    (size_t)n - 2 >= token_len)
		return 0;
	memcpy(token_r, buf + 2, (size_t)n - 2);
	token_r[n - 2] = '\0';
	return 1;
}

const char *smtp_addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

int smtp_addr_sender_allowed(const char *policy, const char *sender,
    const char *contact)
{
	const char *dom = smtp_addr_domain(sender), *p;
	size_t dl = strlen(dom), n;

	if (strcmp(policy, "any") == 0 || policy[0] == '\0')
		return 1;
	if (sender[0] == '\0')
		return 0;	/* the null sender is nobody's contact */
	if (strcmp(policy, "contact") == 0)
		return strcasecmp(sender, contact) == 0;
	if (strncmp(policy, "domains:", 8) != 0 || dl == 0)
		return 0;
	for (p = policy + 8; *p != '\0'; p += n + (p[n] == ',')) {
		n = strcspn(p, ",");
		if (n == dl && strncasecmp(p, dom, dl) == 0)
			return 1;
	}
	return 0;
}

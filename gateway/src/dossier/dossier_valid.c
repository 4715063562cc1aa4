/*
 * dossier_valid.c - the one set of validators for what people type into
 * Postdoc (refs, contact addresses, names, free text, dates, sender
 * policies, intake addresses): the CLI, the JSON API and the web pages
 * all call these, so one input gets one answer wherever it is typed.
 * Pure functions: no store, no allocation, no message (each front end
 * words its own refusal).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dossier.h"
#include "lib/sanitize.h"
#include "lib/util.h"
#include "outbound/outmsg.h"

int
dossier_valid_text(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > max || !sanitize_utf8_valid(s, n))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

int
dossier_valid_ref(const char *s)
{
	return dossier_valid_text(s, DOSSIER_REF_MAX);
}

/*
 * The contact is where invitations and reminders go, so it must be an
 * address outmsg.c will build a message to: the strict rule of the
 * outbound side (ASCII dot-atom, dotted DNS domain), never a looser one
 * that would accept a dossier no mail can reach.
 */
int
dossier_valid_contact(const char *s)
{
	return strlen(s) <= DOSSIER_CONTACT_MAX && outmsg_addr_valid(s, 0);
}

int
dossier_valid_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 63 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

int
dossier_valid_word(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-");

	return n > 0 && n <= 32 && s[n] == '\0';
}

/* As the dossiers table's CHECK (store_schema.c) has them. */
const char *const dossier_statuses[] = { "open", "closed", NULL };

/* A day of the calendar, as notify.c reads a due date (pd_parse_day):
 * the API's older check let "2024-13-01" and "2024-02-30" through. */
int
dossier_valid_due(const char *s)
{
	int64_t t;

	return pd_parse_day(s, &t) == 0;
}

/* A DNS name: dot-separated labels of [A-Za-z0-9-], no edge hyphens. */
static int
dossier_valid_domain(const char *s, size_t n)
{
	size_t i, label = 0;

	if (n == 0 || n > 253 || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (ch == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || (ch == '-' && label > 0)))
			return 0;
		if (++label > 63)
			return 0;
	}
	return s[n - 1] != '-';
}

int
dossier_valid_policy(const char *p, char *out, size_t outlen)
{
	const char *d, *comma;

	if (strcmp(p, "any") == 0 || strcmp(p, "contact") == 0) {
		snprintf(out, outlen, "%s", p);
		return 1;
	}
	if (strncmp(p, "domains:", 8) != 0 || strlen(p) >= outlen)
		return 0;
	for (d = p + 8;; d = comma + 1) {
		comma = strchr(d, ',');
		if (!dossier_valid_domain(d, comma ? (size_t)(comma - d) :
		    strlen(d)))
			return 0;
		if (comma == NULL)
			break;
	}
	for (d = p; *d != '\0'; d++)
		*out++ = (*d >= 'A' && *d <= 'Z') ? (char)(*d + 32) : *d;
	*out = '\0';
	return 1;
}

int
dossier_parse_id(const char *s, int64_t *id_r)
{
	char *end;
	long long v;

	if (s[0] < '0' || s[0] > '9')
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return 0;
	*id_r = (int64_t)v;
	return 1;
}

/* The shape smtp_addr.c routes: anything else could never receive. */
int
dossier_parse_address(const char *intake_domain, const char *addr,
    char *local, size_t locallen)
{
	const char *at = strrchr(addr, '@');
	size_t n, i;

	if (at == NULL || strcasecmp(at + 1, intake_domain) != 0)
		return 0;
	n = (size_t)(at - addr);
	if (n < 10 || n > 66 || n >= locallen)
		return 0;
	for (i = 0; i < n; i++) {
		char ch = addr[i];

		local[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	local[n] = '\0';
	if (strncmp(local, "d-", 2) != 0)
		return 0;
	return strspn(local + 2, "abcdefghijklmnopqrstuvwxyz0123456789") ==
	    n - 2;
}

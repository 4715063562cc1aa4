/*
 * fuzz_smtp_path.c - libFuzzer target: smtp_path_parse (RFC 5321 paths and
 * MAIL/RCPT parameters) on any byte string, as MAIL (from = 1) and RCPT.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/smtp_addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *arg = malloc(size + 1);
	struct smtp_path p;
	char local[80];

	memcpy(arg, data, size);
	arg[size] = '\0';	/* a command line never holds a NUL */
	if (smtp_path_parse(arg, 1, &p) == ADDR_OK)
		(void)smtp_addr_bounce_token(p.addr, "b.example", local,
		    sizeof(local));
	if (smtp_path_parse(arg, 0, &p) == ADDR_OK)
		(void)smtp_addr_intake_local(p.addr, "dossiers.example", local,
		    sizeof(local));
	free(arg);
	return 0;
}

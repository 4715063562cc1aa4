/*
 * mailtext.h - the readable text of a stored message (its first inline
 * text/plain part, else its text/html without tags), sanitised for
 * display: UTF-8, no controls but newline and tab, capped.
 */
#ifndef PD_MAILTEXT_H
#define PD_MAILTEXT_H

#include <stddef.h>

/* Parse the message on fd (not moved: a dup is read) into *text_r
 * (malloc'd, "" when there is no text; at most max bytes and a "[...]"
 * line when cut).  0, or -1 with err. */
int mailtext_extract(int fd, size_t max, char **text_r, char *err);

#endif

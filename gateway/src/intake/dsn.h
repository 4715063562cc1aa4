/*
 * dsn.h - reads a delivery status notification (RFC 3464: a
 * multipart/report whose message/delivery-status part has per-recipient
 * Action, Status and Diagnostic-Code fields) from a parsed message.
 * Pure parsing: deciding what a bounce means is outq's job.
 */
#ifndef PD_DSN_H
#define PD_DSN_H

#include <gmime/gmime.h>

struct dsn_report {
	char action[16];	/* "failed", "delayed", "delivered", ... */
	char status[16];	/* RFC 3463 "5.1.1" */
	int code;		/* SMTP code from Diagnostic-Code, or by class */
	char diagnostic[256];	/* printable ASCII */
};

/* 1 and *r filled from the first recipient block with an Action field;
 * 0 if the message holds no usable delivery-status part. */
int dsn_parse(GMimeMessage *msg, struct dsn_report *r);

#endif

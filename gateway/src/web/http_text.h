/*
 * http_text.h - what the web pages say, one table per language, and the
 * choice of the reader's language (RFC 9110 12.5.4 Accept-Language).
 * Pure data and parsing: no I/O, no store.  A text may hold {email},
 * {purpose}, {account}; http.c fills them in, HTML-escaped.
 */
#ifndef PD_HTTP_TEXT_H
#define PD_HTTP_TEXT_H

enum http_t {
	HT_PREFS_LINK, HT_PRIVACY_LINK, HT_BACK_TO_CONFIRM,
	HT_UNSUB_TITLE, HT_UNSUB_INTRO, HT_UNSUB_BUTTON, HT_PREFS_TITLE,
	HT_SUBSCRIBED, HT_NOT_SUBSCRIBED, HT_BTN_WITHDRAW, HT_BTN_GRANT,
	HT_UNSUBSCRIBED_TITLE, HT_UNSUBSCRIBED_TEXT,
	HT_SAVED_TITLE, HT_SAVED_TEXT,
	HT_ALREADY_TITLE, HT_ALREADY_TEXT,
	HT_SENT_TITLE, HT_SENT_TEXT,
	HT_NOMAIL_TITLE, HT_NOMAIL_TEXT,
	HT_ERASED_TITLE, HT_ERASED_TEXT,
	HT_CONFIRM_TITLE, HT_CONFIRM_INTRO, HT_ADULT_BOX, HT_CONFIRM_BUTTON,
	HT_CONFIRMED_TITLE, HT_CONFIRMED_TEXT,
	HT_NOADULT_TITLE, HT_NOADULT_TEXT,
	HT_EXPIRED_TITLE, HT_EXPIRED_TEXT,
	HT_BADLINK_TITLE, HT_BADLINK_TEXT,
	HT_TOOMANY_TITLE, HT_TOOMANY_TEXT,
	HT_CROSS_TITLE, HT_CROSS_TEXT,
	HT_STALE_TITLE, HT_STALE_TEXT,
	HT_UNAVAIL_TITLE, HT_UNAVAIL_TEXT,
	HT_COUNT
};

/* A language the pages speak: its tag ("fr", "en") and its texts. */
struct http_lang {
	const char *tag;
	const char *const *t;		/* HT_COUNT texts, UTF-8 */
};

/* The language for tag ("fr", "fr-CA", "EN"...), or NULL if none. */
const struct http_lang *http_lang_get(const char *tag);

/*
 * The language an Accept-Language value prefers among ours: the
 * highest q (default 1, "q=0" refuses, "*" stands for the others), the
 * first listed on a tie; a range matches by its primary subtag.  NULL
 * when the header is absent, malformed or names none of ours.
 */
const struct http_lang *http_lang_accept(const char *accept_language);

/* The reader's language: the contact's, else Accept-Language, else the
 * account's, else English.  Each argument may be NULL or "". */
const struct http_lang *http_lang_pick(const char *contact_locale,
    const char *accept_language, const char *account_locale);

#endif

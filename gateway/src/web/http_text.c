/*
 * http_text.c - the web pages' words, one table per language, and the
 * reader's language from the contact, Accept-Language or the account.
 * Adding a language is one more table and one row of http_langs; the
 * arrays are sized HT_COUNT and the unit test checks that no text is
 * missing from any.  Never reads a request or the store.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_text.h"

static const char *const http_en[HT_COUNT] = {
	[HT_PREFS_LINK] = "Your preferences",
	[HT_PRIVACY_LINK] = "Privacy policy",
	[HT_BACK_TO_CONFIRM] = "Back to the confirmation page",
	[HT_UNSUB_TITLE] = "Unsubscribe",
	[HT_UNSUB_INTRO] = "{email} \xe2\x80\x94 list \xe2\x80\x9c{purpose}"
	    "\xe2\x80\x9d from {account}",
	[HT_UNSUB_BUTTON] = "Unsubscribe me",
	[HT_PREFS_TITLE] = "Your preferences",
	[HT_SUBSCRIBED] = "subscribed",
	[HT_NOT_SUBSCRIBED] = "not subscribed",
	[HT_BTN_WITHDRAW] = "Unsubscribe",
	[HT_BTN_GRANT] = "Subscribe",
	[HT_UNSUBSCRIBED_TITLE] = "Unsubscribed",
	[HT_UNSUBSCRIBED_TEXT] = "Unsubscribed: you will receive no more "
	    "\xe2\x80\x9c{purpose}\xe2\x80\x9d mail from {account}.",
	[HT_SAVED_TITLE] = "Preferences saved",
	[HT_SAVED_TEXT] = "Preferences saved: you will receive no more "
	    "\xe2\x80\x9c{purpose}\xe2\x80\x9d mail from {account}.",
	[HT_ALREADY_TITLE] = "Already subscribed",
	[HT_ALREADY_TEXT] = "Your subscription to \xe2\x80\x9c{purpose}"
	    "\xe2\x80\x9d is already active.",
	[HT_SENT_TITLE] = "Confirm by email",
	[HT_SENT_TEXT] = "We sent a confirmation message to {email}: the "
	    "subscription to \xe2\x80\x9c{purpose}\xe2\x80\x9d starts when you "
	    "click its link.",
	[HT_NOMAIL_TITLE] = "Confirmation not sent",
	[HT_NOMAIL_TEXT] = "We could not send the confirmation message to "
	    "{email} just now, so \xe2\x80\x9c{purpose}\xe2\x80\x9d is not "
	    "active. Nothing was changed: please try again later from this "
	    "page.",
	[HT_ERASED_TITLE] = "Not subscribed",
	[HT_ERASED_TEXT] = "{account} erased this address's data at its "
	    "owner's request, so it cannot be subscribed from here. To come "
	    "back, write to {account}.",
	[HT_CONFIRM_TITLE] = "Confirm your subscription",
	[HT_CONFIRM_INTRO] = "{email} \xe2\x80\x94 \xe2\x80\x9c{purpose}"
	    "\xe2\x80\x9d from {account}",
	[HT_ADULT_BOX] = "I am 18 or older",
	[HT_CONFIRM_BUTTON] = "Confirm",
	[HT_CONFIRMED_TITLE] = "Subscription confirmed",
	[HT_CONFIRMED_TEXT] = "Subscription confirmed: you will receive "
	    "\xe2\x80\x9c{purpose}\xe2\x80\x9d from {account}. You can "
	    "unsubscribe at any time, from your preferences or from the link "
	    "in each message.",
	[HT_NOADULT_TITLE] = "Not subscribed",
	[HT_NOADULT_TEXT] = "{account} sends \xe2\x80\x9c{purpose}\xe2\x80\x9d "
	    "to adults only, and you did not confirm that you are 18 or "
	    "older: you are not subscribed and nothing was recorded. If you "
	    "are, go back to the confirmation page, tick the box and confirm "
	    "(the link in the message works for 7 days).",
	[HT_EXPIRED_TITLE] = "Link expired",
	[HT_EXPIRED_TEXT] = "This confirmation link has expired (links work "
	    "for 7 days): you are not subscribed to \xe2\x80\x9c{purpose}"
	    "\xe2\x80\x9d. You can ask again from your preferences.",
	[HT_BADLINK_TITLE] = "Link not valid",
	[HT_BADLINK_TEXT] = "This link is not valid: it may be cut short "
	    "(copy the whole address from the message) or changed. Nothing "
	    "was changed.",
	[HT_TOOMANY_TITLE] = "Too many attempts",
	[HT_TOOMANY_TEXT] = "Too many links that are not valid came from "
	    "your address. Wait a minute, then open the link from your "
	    "message again.",
	[HT_CROSS_TITLE] = "Refused",
	[HT_CROSS_TEXT] = "This request came from another site than ours: "
	    "your preferences change only from their own page. Nothing was "
	    "changed.",
	[HT_STALE_TITLE] = "Page expired",
	[HT_STALE_TEXT] = "This page is too old to act on: reload your "
	    "preferences and press the button again. Nothing was changed.",
	[HT_UNAVAIL_TITLE] = "Temporarily unavailable",
	[HT_UNAVAIL_TEXT] = "We could not record your choice just now. "
	    "Nothing was changed: please try again in a few minutes.",
};

static const char *const http_fr[HT_COUNT] = {
	[HT_PREFS_LINK] = "Vos préférences",
	[HT_PRIVACY_LINK] = "Politique de confidentialité",
	[HT_BACK_TO_CONFIRM] = "Revenir à la page de confirmation",
	[HT_UNSUB_TITLE] = "Désabonnement",
	[HT_UNSUB_INTRO] = "{email} — liste « {purpose} » de {account}",
	[HT_UNSUB_BUTTON] = "Me désabonner",
	[HT_PREFS_TITLE] = "Vos préférences",
	[HT_SUBSCRIBED] = "abonné",
	[HT_NOT_SUBSCRIBED] = "non abonné",
	[HT_BTN_WITHDRAW] = "Se désabonner",
	[HT_BTN_GRANT] = "S'abonner",
	[HT_UNSUBSCRIBED_TITLE] = "Désabonnement effectué",
	[HT_UNSUBSCRIBED_TEXT] = "Désabonnement effectué : vous ne recevrez "
	    "plus « {purpose} » de {account}.",
	[HT_SAVED_TITLE] = "Préférences enregistrées",
	[HT_SAVED_TEXT] = "Préférences enregistrées : vous ne recevrez plus "
	    "« {purpose} » de {account}.",
	[HT_ALREADY_TITLE] = "Déjà abonné",
	[HT_ALREADY_TEXT] = "Votre abonnement à « {purpose} » est déjà actif.",
	[HT_SENT_TITLE] = "Confirmez par e-mail",
	[HT_SENT_TEXT] = "Nous avons envoyé un message de confirmation à "
	    "{email} : l'abonnement à « {purpose} » commence quand vous "
	    "cliquez sur son lien.",
	[HT_NOMAIL_TITLE] = "Confirmation non envoyée",
	[HT_NOMAIL_TEXT] = "Nous n'avons pas pu envoyer le message de "
	    "confirmation à {email} pour le moment : « {purpose} » n'est donc "
	    "pas actif. Rien n'a été modifié : réessayez plus tard depuis "
	    "cette page.",
	[HT_ERASED_TITLE] = "Pas d'abonnement",
	[HT_ERASED_TEXT] = "{account} a effacé les données de cette adresse "
	    "à la demande de son titulaire : elle ne peut pas être abonnée "
	    "d'ici. Pour revenir, écrivez à {account}.",
	[HT_CONFIRM_TITLE] = "Confirmer l'abonnement",
	[HT_CONFIRM_INTRO] = "{email} — « {purpose} » de {account}",
	[HT_ADULT_BOX] = "J'ai 18 ans ou plus",
	[HT_CONFIRM_BUTTON] = "Je confirme",
	[HT_CONFIRMED_TITLE] = "Abonnement confirmé",
	[HT_CONFIRMED_TEXT] = "Abonnement confirmé : vous recevrez "
	    "« {purpose} » de {account}. Vous pouvez vous désabonner à tout "
	    "moment, depuis vos préférences ou par le lien de chaque message.",
	[HT_NOADULT_TITLE] = "Pas d'abonnement",
	[HT_NOADULT_TEXT] = "{account} n'envoie « {purpose} » qu'aux "
	    "personnes majeures, et vous n'avez pas confirmé avoir 18 ans ou "
	    "plus : vous n'êtes pas abonné et rien n'a été enregistré. Si "
	    "c'est le cas, revenez à la page de confirmation, cochez la case "
	    "et confirmez (le lien du message reste valable 7 jours).",
	[HT_EXPIRED_TITLE] = "Lien expiré",
	[HT_EXPIRED_TEXT] = "Ce lien de confirmation a expiré (il est "
	    "valable 7 jours) : vous n'êtes pas abonné à « {purpose} ». Vous "
	    "pouvez le redemander depuis vos préférences.",
	[HT_BADLINK_TITLE] = "Lien non valide",
	[HT_BADLINK_TEXT] = "Ce lien n'est pas valide : il est peut-être "
	    "coupé (copiez toute l'adresse du message) ou modifié. Rien n'a "
	    "été modifié.",
	[HT_TOOMANY_TITLE] = "Trop de tentatives",
	[HT_TOOMANY_TEXT] = "Trop de liens non valides sont venus de votre "
	    "adresse. Attendez une minute, puis rouvrez le lien de votre "
	    "message.",
	[HT_CROSS_TITLE] = "Refusé",
	[HT_CROSS_TEXT] = "Cette demande vient d'un autre site que le nôtre : "
	    "vos préférences ne changent que depuis leur propre page. Rien "
	    "n'a été modifié.",
	[HT_STALE_TITLE] = "Page expirée",
	[HT_STALE_TEXT] = "Cette page est trop ancienne : rechargez vos "
	    "préférences et appuyez de nouveau sur le bouton. Rien n'a été "
	    "modifié.",
	[HT_UNAVAIL_TITLE] = "Service momentanément indisponible",
	[HT_UNAVAIL_TEXT] = "Nous n'avons pas pu enregistrer votre choix pour "
	    "le moment. Rien n'a été modifié : réessayez dans quelques "
	    "minutes.",
};

static const struct http_lang http_langs[] = {
	{ "en", http_en },
	{ "fr", http_fr },
};
#define HTTP_NLANGS (sizeof(http_langs) / sizeof(http_langs[0]))

/* The primary subtag of a tag or range: "fr" of "fr-CA", n bytes. */
static size_t
http_primary(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && s[i] != '-' && s[i] != '_'; i++)
		;
	return i;
}

static const struct http_lang *
http_lang_n(const char *tag, size_t n)
{
	size_t i, p = http_primary(tag, n);

	for (i = 0; i < HTTP_NLANGS; i++)
		if (strlen(http_langs[i].tag) == p &&
		    strncasecmp(http_langs[i].tag, tag, p) == 0)
			return &http_langs[i];
	return NULL;
}

const struct http_lang *
http_lang_get(const char *tag)
{
	return tag != NULL && tag[0] != '\0' ? http_lang_n(tag, strlen(tag)) :
	    NULL;
}

/*
 * A qvalue (RFC 9110 12.4.2): "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")],
 * in thousandths; -1 if it is none.
 */
static int
http_qvalue(const char *s, size_t n)
{
	int v = 0, scale = 1000;
	size_t i;

	if (n == 0 || (s[0] != '0' && s[0] != '1') || n > 5 ||
	    (n > 1 && s[1] != '.'))
		return -1;
	for (i = 2; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		scale /= 10;
		v += (s[i] - '0') * scale;
	}
	if (s[0] == '1')
		return v == 0 ? 1000 : -1;
	return v;
}

/* The q of one element's parameters (after the range), 1000 if none. */
static int
http_elem_q(const char *p, size_t n)
{
	const char *end = p + n, *v;
	size_t k;

	while (p < end) {
		while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
			p++;
		for (k = 0; p + k < end && p[k] != ';'; k++)
			;
		if (k >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			v = p + 2;
			while (k > 2 && (p[k - 1] == ' ' || p[k - 1] == '\t'))
				k--;
			return http_qvalue(v, k - 2);
		}
		p += k;
	}
	return 1000;
}

const struct http_lang *
http_lang_accept(const char *al)
{
	int q[HTTP_NLANGS], star = -1, best = -1, bq = 0, eq;
	unsigned order[HTTP_NLANGS], pos = 0;
	const struct http_lang *l;
	size_t i, n, r;

	if (al == NULL)
		return NULL;
	for (i = 0; i < HTTP_NLANGS; i++)
		q[i] = -1;
	while (*al != '\0') {
		while (*al == ',' || *al == ' ' || *al == '\t')
			al++;
		n = strcspn(al, ",");
		r = strcspn(al, ";, \t");
		if (r > n)
			r = n;
		eq = http_elem_q(al + r, n - r);
		if (r == 1 && al[0] == '*')
			star = star < 0 ? eq : star;
		else if (r > 0 && eq >= 0 && (l = http_lang_n(al, r)) != NULL &&
		    q[l - http_langs] < 0) {
			q[l - http_langs] = eq;
			order[l - http_langs] = pos;
		}
		pos++;
		al += n;
	}
	for (i = 0; i < HTTP_NLANGS; i++) {
		if (q[i] < 0 && star >= 0) {
			q[i] = star;
			order[i] = pos + (unsigned)i;	/* after the named ones */
		}
		if (q[i] > bq || (q[i] == bq && q[i] > 0 && best >= 0 &&
		    order[i] < order[best])) {
			bq = q[i];
			best = (int)i;
		}
	}
	return best >= 0 ? &http_langs[best] : NULL;
}

const struct http_lang *
http_lang_pick(const char *contact_locale, const char *accept_language,
    const char *account_locale)
{
	const struct http_lang *l = http_lang_get(contact_locale);

	if (l == NULL)
		l = http_lang_accept(accept_language);
	if (l == NULL)
		l = http_lang_get(account_locale);
	return l != NULL ? l : &http_langs[0];
}

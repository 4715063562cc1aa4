"""
Issue 15, pages and names, against a real `postdoc serve`, its outbox and
headless Chromium:

- purposes have display names per locale (`purpose add --label-fr
  --label-en`, `purpose label`, `purpose list [--json]`), and a reader
  sees them (the consent-request mail, every page), never the internal id;
- the double opt-in page asks the reader to confirm she is an adult when
  the account requires it (checked: granted and attested in one go;
  unchecked: not subscribed, a page saying why and a way back); an
  account with `adult_required = false` does not ask;
- every page and every answer after a button is HTML in the reader's
  language (the contact's, else Accept-Language by q-value, else the
  account's), with lang, a link back to the preferences, the account's
  legal name and privacy policy; errors too (bad link, 429, cross-site
  403, expired link, a confirmation that could not be queued);
- an erased address gets no confirmation request unless --reconsent.
Screenshots go under each test's tmp dir.
"""
import base64
import datetime
import email
import email.policy
import html
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

import postdoc_harness as H
from postdoc_harness import T

PRIVACY = "https://acme.example/privacy"
LABELS = {"newsletter": ("Lettre d'information", "Newsletter"),
          "product-updates": ("Nouveautés produit", "Product updates")}


@pytest.fixture(scope="module")
def srv(servers, tmp_path_factory):
    srv = servers(start=False)
    port = H.free_port()
    srv.web_port = port
    srv.base = "http://127.0.0.1:%d" % port
    # a copy of the templates: one test takes consent-request away
    srv.tmpl = tmp_path_factory.mktemp("templates")
    shutil.copytree(H.SRCDIR / "templates", srv.tmpl, dirs_exist_ok=True)
    srv.sections["outbound"] = {
        "transport": "file", "template_dir": str(srv.tmpl),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0,
        "batch_max": 100}
    srv.sections["web"] = {"listen": "127.0.0.1:%d" % port,
                           "base_url": srv.base, "bad_token_limit": 5}
    srv.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris",
         "from_name": "ACME News", "from_addr": "news@acme.example",
         "privacy_url": PRIVACY},
        {"name": "BIZ", "legal_name": "BizCo Ltd",
         "legal_address": "2 High Street, London",
         "from_name": "BizCo", "from_addr": "brief@biz.example",
         "adult_required": False}])
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(srv.var / "outbox")}}])
    srv.write_config()
    srv.start()
    H.wait_for(lambda: H._port_open(port), 10, "the web listener")
    srv.add_account("ACME", "any")
    srv.add_account("BIZ", "any")
    for name, (fr, en) in LABELS.items():
        srv.cli("purpose", "add", "ACME", name, "--label-fr", fr,
                "--label-en", en)
    srv.cli("purpose", "add", "BIZ", "briefing", "--label-fr",
            "Note hebdomadaire", "--label-en", "Weekly briefing")
    return srv


def outbox(srv):
    d = srv.var / "outbox"
    return list(d.glob("*.eml")) if d.is_dir() else []


def request(srv, addr, purpose="newsletter", account="ACME", *extra):
    """`consent request`; the confirmation mail's text and its link."""
    before = {p.name for p in outbox(srv)}
    srv.cli("consent", "request", addr, "--account", account, "--purpose",
            purpose, *extra)
    mail = H.wait_for(lambda: [p for p in outbox(srv) if p.name not in before
                               and p.name.endswith("-" + addr + ".eml")],
                      30, "the confirmation mail to " + addr)[0]
    msg = email.message_from_bytes(mail.read_bytes(),
                                   policy=email.policy.default)
    text = msg.get_body(("plain",)).get_content()
    return msg, text, re.search(r"(http://\S+/c/\S+)", text).group(1)


def show(srv, addr, account="ACME"):
    return srv.cli_json("consent", "show", addr, "--account", account)


def fetch(url, method="GET", fields=None, headers=None):
    """(status, headers, body text) over http.client."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=T(10))
    try:
        body = urllib.parse.urlencode(fields) if fields is not None else None
        h = {"Content-Type": "application/x-www-form-urlencoded"} \
            if body is not None else {}
        h.update(headers or {})
        c.request(method, u.path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, \
            r.read().decode("utf-8")
    finally:
        c.close()


def assert_page(body, lang, *texts):
    assert body.startswith("<!DOCTYPE html>"), body[:200]
    assert '<html lang="%s">' % lang in body, body[:200]
    for t in texts:
        assert t in html.unescape(body), (t, body)


# ------------------------------------------------------------ a browser

class Browser:
    """Headless Chromium over the DevTools protocol: real clicks, the
    reader's language set as Accept-Language, screenshots."""

    def __init__(self, exe, profile):
        self.port = H.free_port()
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking",
             "--disable-component-update", "--disable-sync",
             "--no-first-run", "--disable-dev-shm-usage",
             "--window-size=800,900", "--user-data-dir=%s" % profile,
             "--remote-debugging-port=%d" % self.port, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=os.setpgrp)
        websocket = pytest.importorskip("websocket")
        targets = H.wait_for(self._targets, 30, "chromium's DevTools port")
        self.ws = websocket.create_connection(
            targets[0]["webSocketDebuggerUrl"], timeout=T(20),
            suppress_origin=True)
        self.ids = iter(range(1, 10 ** 6))
        self.cdp("Page.enable")
        self.ua = self.cdp("Browser.getVersion")["userAgent"]

    def _targets(self):
        try:
            with urllib.request.urlopen(
                    "http://127.0.0.1:%d/json/list" % self.port) as r:
                return [t for t in json.load(r) if t["type"] == "page"]
        except OSError:
            return None

    def close(self):
        try:
            self.ws.close()
        finally:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def cdp(self, method, check=True, **params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method,
                                 "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == i:
                if check:
                    assert "error" not in m, m
                return m.get("result", {})

    def js(self, expr):
        r = self.cdp("Runtime.evaluate", check=False, expression=expr,
                     returnByValue=True)
        return r.get("result", {}).get("value")

    def wait(self, expr, what=None):
        return H.wait_for(lambda: self.js(expr), 15, what or expr)

    def open(self, url, accept_language):
        self.cdp("Emulation.setUserAgentOverride", userAgent=self.ua,
                 acceptLanguage=accept_language)
        self.js("window.__pd_old = true")
        self.cdp("Page.navigate", url=url)
        self.loaded()

    def loaded(self):
        """The next page is there (the old one carried a mark)."""
        self.wait("!window.__pd_old && document.readyState == 'complete' "
                  "&& !!document.querySelector('h1')", "the next page")

    def click(self, selector):
        """A real mouse click on the element's centre."""
        box = self.js("(function(){var e=document.querySelector(%s);"
                      "e.scrollIntoView();var r=e.getBoundingClientRect();"
                      "return [r.x+r.width/2,r.y+r.height/2];})()"
                      % json.dumps(selector))
        assert box, selector
        for kind in ("mousePressed", "mouseReleased"):
            self.cdp("Input.dispatchMouseEvent", type=kind, x=box[0],
                     y=box[1], button="left", clickCount=1)

    def follow(self, selector):
        """Click a button or link that leads to another page; wait for
        it."""
        self.js("window.__pd_old = true")
        self.click(selector)
        self.loaded()

    def tick(self, selector):
        self.click(selector)
        self.wait("document.querySelector(%s).checked" %
                  json.dumps(selector))

    def text(self):
        return self.js("document.body.innerText")

    def lang(self):
        return self.js("document.documentElement.lang")

    def href(self, selector):
        return self.js("(function(){var e=document.querySelector(%s);"
                       "return e ? e.href : null;})()" % json.dumps(selector))

    def shot(self, path):
        data = self.cdp("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def browser(tmp_path):
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser",
                                          "google-chrome")
                if shutil.which(n)), None)
    if exe is None:
        pytest.skip("chromium not installed (scripts/bootstrap.sh)")
    b = Browser(exe, tmp_path / "profile")
    yield b
    b.close()


# ------------------------------------------------------------ purposes

def test_purpose_labels_add_list_change(srv):
    rows = {r["name"]: r for r in srv.cli_json("purpose", "list", "ACME")}
    assert rows["newsletter"]["labels"] == {"en": "Newsletter",
                                           "fr": "Lettre d'information"}
    out = srv.cli("purpose", "list", "ACME").stdout
    assert "newsletter\ten=Newsletter  fr=Lettre d'information" in out
    # any locale; "" removes
    srv.cli("purpose", "label", "ACME", "product-updates", "de",
            "Produktneuigkeiten")
    srv.cli("purpose", "label", "ACME", "product-updates", "en",
            "What's new")
    labels = {r["name"]: r["labels"]
              for r in srv.cli_json("purpose", "list", "ACME")}
    assert labels["product-updates"] == {
        "de": "Produktneuigkeiten", "en": "What's new",
        "fr": "Nouveautés produit"}
    srv.cli("purpose", "label", "ACME", "product-updates", "de", "")
    srv.cli("purpose", "label", "ACME", "product-updates", "en",
            "Product updates")
    labels = {r["name"]: r["labels"]
              for r in srv.cli_json("purpose", "list", "ACME")}
    assert labels["product-updates"] == {"en": "Product updates",
                                         "fr": "Nouveautés produit"}
    # bad input: named, exit 1, and nothing half-added
    p = srv.cli("purpose", "label", "ACME", "nope", "fr", "X", check=False)
    assert p.returncode == 1 and 'no purpose "nope"' in p.stderr
    p = srv.cli("purpose", "label", "ACME", "newsletter", "../fr", "X",
                check=False)
    assert p.returncode == 1 and "locale" in p.stderr
    p = srv.cli("purpose", "add", "ACME", "events", "--label-fr",
                "deux\nlignes", check=False)
    assert p.returncode == 1 and "one line" in p.stderr
    assert "events" not in {r["name"] for r in
                            srv.cli_json("purpose", "list", "ACME")}


def test_confirmation_mail_names_the_purpose_by_its_label(srv):
    msg, text, _ = request(srv, "label-fr@client.example", "newsletter",
                           "ACME", "--locale", "fr")
    assert "« Lettre d'information »" in text, text
    assert "newsletter" not in text.replace("news@", "")
    assert "merci de confirmer" in msg["Subject"]
    _, text, _ = request(srv, "label-en@client.example")
    assert '"Newsletter"' in text and "newsletter" not in text


# ------------------------------------------------------ double opt-in

def test_double_opt_in_adult_checked_in_the_contacts_language(
        srv, browser, tmp_path):
    addr = "adult-fr@client.example"
    _, _, url = request(srv, addr, "newsletter", "ACME", "--locale", "fr")
    # the browser asks English: the contact's language wins
    browser.open(url, "en-US,en;q=0.9")
    assert browser.lang() == "fr"
    page = browser.text()
    assert "Confirmer l'abonnement" in page
    assert "Lettre d'information" in page and "newsletter" not in page
    assert "ACME SAS" in page and "J'ai 18 ans ou plus" in page
    assert browser.js("document.getElementById('adult').required")
    assert browser.href("#privacy") == PRIVACY
    browser.shot(tmp_path / "confirm-fr.png")
    assert show(srv, addr)["status"].get("newsletter") is None
    browser.tick("#adult")
    browser.follow("#confirm")
    assert "Abonnement confirmé" in browser.text()
    assert browser.lang() == "fr"
    assert "« Lettre d'information » de ACME SAS" in browser.text()
    prefs = browser.href("#prefs")
    assert "/prefs/" in prefs and browser.href("#privacy") == PRIVACY
    browser.shot(tmp_path / "confirmed-fr.png")
    s = show(srv, addr)
    assert s["status"]["newsletter"] == "granted"
    rec = s["records"][-1]
    assert (rec["source"], rec["method"]) == \
        ("double_opt_in", "double-opt-in-confirm+adult-confirmed")
    assert s["adult"]["value"] == "yes"
    assert s["adult"]["by"].startswith("double_opt_in request ")


def test_double_opt_in_unchecked_is_not_subscribed_then_comes_back(
        srv, browser, tmp_path):
    addr = "adult-en@client.example"
    _, _, url = request(srv, addr)
    # no language of her own: Accept-Language by q-value (not order)
    browser.open(url, "de-DE,de;q=0.9,fr;q=0.2,en;q=0.5")
    assert browser.lang() == "en"
    assert "I am 18 or older" in browser.text()
    # a script (or an old browser) skips the required box
    browser.js("document.getElementById('adult').required = false")
    browser.follow("#confirm")
    page = browser.text()
    assert "Not subscribed" in page
    assert browser.lang() == "en"
    assert "adults only" in page and '"Newsletter"' in page.replace(
        "\u201c", '"').replace("\u201d", '"')
    browser.shot(tmp_path / "not-adult-en.png")
    s = show(srv, addr)
    assert s["status"].get("newsletter") is None and s["records"] == []
    assert s["adult"]["value"] == "unknown"
    # the way back: the confirmation page, tick, confirm
    browser.follow("#back")
    browser.tick("#adult")
    browser.follow("#confirm")
    assert "Subscription confirmed" in browser.text()
    assert show(srv, addr)["adult"]["value"] == "yes"


def test_business_account_does_not_ask_age(srv, browser, tmp_path):
    addr = "pro@biz.example"
    _, text, url = request(srv, addr, "briefing", "BIZ")
    assert '"Weekly briefing"' in text
    browser.open(url, "fr-FR,fr;q=0.9")
    assert browser.lang() == "fr" and "Note hebdomadaire" in browser.text()
    assert browser.js("document.getElementById('adult')") is None
    assert "18" not in browser.text()
    browser.shot(tmp_path / "confirm-biz-fr.png")
    browser.follow("#confirm")
    assert "Abonnement confirmé" in browser.text()
    assert browser.href("#privacy") is None      # none configured
    s = show(srv, addr, "BIZ")
    assert s["status"]["briefing"] == "granted"
    assert s["records"][-1]["method"] == "double-opt-in-confirm"
    assert s["adult"]["value"] == "unknown"


# ------------------------------------------- preferences, unsubscribe

def confirmed(srv, addr, *extra):
    """A contact who confirmed the newsletter; her /prefs/ token."""
    _, _, url = request(srv, addr, "newsletter", "ACME", *extra)
    st, _, body = fetch(url, "POST", {"adult": "yes"})
    assert st == 200, body
    return re.search(r'href="/prefs/([^"]+)"', body).group(1)


@pytest.mark.parametrize("lang,by", [("fr", "contact"),
                                     ("en", "accept-language")])
def test_preferences_and_unsubscribe_pages(srv, browser, tmp_path, lang,
                                           by):
    addr = "prefs-%s@client.example" % lang
    extra = ("--locale", "fr") if by == "contact" else ()
    tok = confirmed(srv, addr, *extra)
    al = "en" if by == "contact" else "en-GB,en;q=0.9,fr;q=0.8"
    W = {"fr": {"sub": "abonné", "unsub": "Se désabonner",
                "saved": "Préférences enregistrées", "grant": "S'abonner",
                "sent": "Confirmez par e-mail", "back": "Vos préférences",
                "me": "Me désabonner", "done": "Désabonnement effectué",
                "news": "Lettre d'information",
                "prod": "Nouveautés produit"},
         "en": {"sub": "subscribed", "unsub": "Unsubscribe",
                "saved": "Preferences saved", "grant": "Subscribe",
                "sent": "Confirm by email", "back": "Your preferences",
                "me": "Unsubscribe me", "done": "Unsubscribed",
                "news": "Newsletter", "prod": "Product updates"}}[lang]
    browser.open(srv.base + "/prefs/" + tok, al)
    assert browser.lang() == lang
    page = browser.text()
    assert W["news"] in page and W["prod"] in page
    assert "newsletter" not in page and "product-updates" not in page
    assert "ACME SAS" in page
    browser.shot(tmp_path / ("prefs-%s.png" % lang))
    # withdraw the newsletter: an HTML answer, the label, a way back
    browser.follow("li:nth-child(1) button")
    assert W["saved"] in browser.text()
    assert browser.lang() == lang and W["news"] in browser.text()
    assert browser.href("#privacy") == PRIVACY
    browser.shot(tmp_path / ("saved-%s.png" % lang))
    assert show(srv, addr)["status"]["newsletter"] == "withdrawn"
    browser.follow("#prefs")
    assert W["back"] in browser.text()
    # subscribe to product updates: a confirmation by mail
    browser.follow("li:nth-child(2) button")
    assert W["sent"] in browser.text()
    assert browser.lang() == lang and W["prod"] in browser.text()
    assert addr in browser.text()
    browser.shot(tmp_path / ("sent-%s.png" % lang))
    # the one-click page of the same token
    browser.open(srv.base + "/u/" + tok, al)
    assert browser.lang() == lang and W["me"] in browser.text()
    browser.follow("#unsubscribe")
    assert W["done"] in browser.text()
    assert browser.lang() == lang and W["news"] in browser.text()
    assert browser.href("#prefs").endswith("/prefs/" + tok)
    browser.shot(tmp_path / ("unsubscribed-%s.png" % lang))


# ------------------------------------------------------------ errors

def test_error_pages_are_localised_html(srv):
    tok = confirmed(srv, "errors@client.example", "--locale", "fr")
    prefs = srv.base + "/prefs/" + tok
    # cross-site: 403 in her language, with the way back
    st, h, body = fetch(prefs, "POST", {"purpose": "newsletter",
                                        "action": "withdraw", "csrf": "1.x"},
                        {"Origin": "https://evil.example",
                         "Accept-Language": "en"})
    assert st == 403 and h["content-type"].startswith("text/html")
    assert_page(body, "fr", "Refusé", "Rien n'a été modifié",
                'href="/prefs/' + tok)
    # a stale or forged form field: 403, reload
    st, _, body = fetch(prefs, "POST", {"purpose": "newsletter",
                                        "action": "withdraw", "csrf": "1.x"})
    assert st == 403
    assert_page(body, "fr", "Page expirée", 'href="/prefs/' + tok)
    # an expired confirmation link: 410, the way back to the preferences
    _, _, url = request(srv, "late@client.example", "newsletter", "ACME",
                        "--locale", "fr")
    db = sqlite3.connect(str(srv.var / "postdoc.db"))
    try:
        with db:
            db.execute("UPDATE consent_requests SET created = created - "
                       "8 * 86400 WHERE id = (SELECT max(id) FROM "
                       "consent_requests)")
    finally:
        db.close()
    st, _, body = fetch(url, "POST", {"adult": "yes"})
    assert st == 410
    assert_page(body, "fr", "Lien expiré", "« Lettre d'information »",
                'href="/prefs/')
    # bad links: 404, then 429 once the address sent too many (bad
    # tokens only), in the browser's language
    bad = srv.base + "/u/" + "A" * 44
    st, h, body = fetch(bad, headers={"Accept-Language": "fr;q=0.9, en;q=0.1"})
    assert st == 404 and h["content-type"].startswith("text/html")
    assert_page(body, "fr", "Lien non valide")
    for _ in range(20):     # 5 a minute (a new minute may start once)
        st, _, body = fetch(bad, headers={"Accept-Language": "en"})
        if st == 429:
            break
        assert st == 404
    assert st == 429
    assert_page(body, "en", "Too many attempts")
    # a valid token from the same address still works
    st, _, body = fetch(prefs)
    assert st == 200 and '<html lang="fr">' in body


def test_subscribe_that_cannot_queue_its_mail_says_so(srv):
    tok = confirmed(srv, "nomail@client.example")
    st, _, page = fetch(srv.base + "/prefs/" + tok,
                        headers={"Accept-Language": "fr"})
    csrf = re.search(r'name="purpose" value="product-updates"><input type='
                     r'"hidden" name="action" value="grant"><input type='
                     r'"hidden" name="csrf" value="([^"]+)"', page).group(1)
    away = srv.tmpl / "consent-request.away"
    (srv.tmpl / "consent-request").rename(away)
    try:
        st, _, body = fetch(srv.base + "/prefs/" + tok, "POST",
                            {"purpose": "product-updates",
                             "action": "grant", "csrf": csrf},
                            {"Accept-Language": "fr"})
    finally:
        away.rename(srv.tmpl / "consent-request")
    assert st == 503
    # no language of her own: the browser's
    assert_page(body, "fr", "Confirmation non envoyée",
                "« Nouveautés produit »", 'href="/prefs/' + tok)
    H.wait_for(lambda: "was not queued" in srv.log_text(), 10,
               "the reason in the log")
    assert show(srv, "nomail@client.example")["status"].get(
        "product-updates") is None


# ------------------------------------------------------------ erased

def test_consent_request_refuses_an_erased_address(srv):
    addr = "gone@client.example"
    srv.cli("consent", "grant", addr, "--account", "ACME", "--purpose",
            "newsletter")
    srv.cli("subject", "erase", addr, "--account", "ACME")
    before = len(outbox(srv))
    p = srv.cli("consent", "request", addr, "--account", "ACME",
                "--purpose", "newsletter", check=False)
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    assert p.returncode == 1
    assert "%s was erased on %s" % (addr, today) in p.stderr, p.stderr
    assert "--reconsent" in p.stderr
    assert len(outbox(srv)) == before
    # the person came back on her own: the operator says so
    _, _, url = request(srv, addr, "newsletter", "ACME", "--reconsent")
    audit = srv.cli_json("audit", "list")
    rows = audit if isinstance(audit, list) else \
        [v for v in audit.values() if isinstance(v, list)][0]
    assert any(r.get("action") == "subject.reconsent" for r in rows)
    st, _, _ = fetch(url, "POST", {"adult": "yes"})
    assert st == 200
    assert show(srv, addr)["status"]["newsletter"] == "granted"

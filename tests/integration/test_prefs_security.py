"""
Issue 15, consent defects 1 and 2, over real HTTP (http.client) against a
real `postdoc serve`:

1. the preference centre: a cross-site POST is refused 403 with a page
   that says why; the CSRF field is bound to its action; subscribing
   only mails a confirmation (double opt-in) and the reader's click on
   it grants; one-click withdrawal keeps working without any of that.
2. the bad-token limit counts failures only (a valid token is never
   refused, even from a blocked address) and, behind a proxy listed in
   web.trusted_proxies, counts them per X-Forwarded-For client.
"""
import base64
import http.client
import os
import random
import re
import time
import urllib.parse

import pytest

import postdoc_harness as H
from postdoc_harness import T
from test_consent import (newsletter_for, outbox, queue_settled, records,
                          status, subscribe, web_server)


def post(srv, path, fields=None, headers=None):
    """POST form fields; returns (status, headers dict, body text)."""
    u = urllib.parse.urlsplit(srv.base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=T(10))
    try:
        body = urllib.parse.urlencode(fields or {})
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        h.update(headers or {})
        c.request("POST", path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, \
            r.read().decode("utf-8", "replace")
    finally:
        c.close()


def get(srv, path):
    u = urllib.parse.urlsplit(srv.base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=T(10))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def field(page, purpose, action):
    m = re.search(r'name="purpose" value="%s"><input type="hidden" '
                  r'name="action" value="%s"><input type="hidden" '
                  r'name="csrf" value="([^"]+)"' % (purpose, action), page)
    assert m, page
    return m.group(1)


@pytest.fixture(scope="module")
def srv(servers):
    return web_server(servers)


@pytest.fixture
def reader(srv):
    """A subscriber with a newsletter: (addr, /u/ path, /prefs/ path)."""
    addr = "p%d@client.example" % random.randrange(10 ** 9)
    subscribe(srv, addr)
    _, url, _ = newsletter_for(srv, addr)
    tok = url.rsplit("/", 1)[1]
    return addr, "/u/" + tok, "/prefs/" + tok


def test_cross_site_subscribe_is_refused_with_a_reason(srv, reader):
    addr, upath, ppath = reader
    _, page = get(srv, upath)
    csrf = field(page, "product-updates", "grant")
    for hdr in ({"Origin": "https://evil.example"},
                {"Origin": "null"},
                {"Referer": "https://evil.example/x"}):
        st, h, body = post(srv, ppath, {"purpose": "product-updates",
                                        "action": "grant", "csrf": csrf},
                           hdr)
        assert st == 403, (hdr, st, body)
        assert h["content-type"].startswith("text/html")
        assert "another site" in body and "Nothing was changed" in body
    assert status(srv, addr, "product-updates") is None


def test_csrf_field_is_bound_to_its_action(srv, reader):
    addr, upath, ppath = reader
    _, page = get(srv, upath)
    grant = field(page, "product-updates", "grant")
    withdraw = field(page, "newsletter", "withdraw")
    # a subscribe button's field does not withdraw, and the reverse
    st, _, _ = post(srv, ppath, {"purpose": "product-updates",
                                 "action": "withdraw", "csrf": grant})
    assert st == 403
    st, _, _ = post(srv, ppath, {"purpose": "newsletter",
                                 "action": "grant", "csrf": withdraw})
    assert st == 403
    # the right one withdraws at once, from our own page
    st, _, _ = post(srv, ppath, {"purpose": "newsletter",
                                 "action": "withdraw", "csrf": withdraw},
                    {"Origin": srv.base})
    assert st == 200
    assert status(srv, addr) == "withdrawn"


def test_subscribing_from_the_page_is_confirmed_by_mail(srv, reader):
    addr, upath, ppath = reader
    _, page = get(srv, upath)
    before = {p.name for p in outbox(srv)}
    st, h, body = post(srv, ppath, {
        "purpose": "product-updates", "action": "grant",
        "csrf": field(page, "product-updates", "grant")},
        {"Origin": srv.base, "Referer": srv.base + upath})
    assert st == 200 and "set-cookie" not in h
    assert "confirmation" in body and addr in body
    # nothing granted yet: the link may have been forwarded
    assert status(srv, addr, "product-updates") is None
    # pressing again (or a script holding the link) mails no second one
    _, page = get(srv, upath)
    st, _, body = post(srv, ppath, {
        "purpose": "product-updates", "action": "grant",
        "csrf": field(page, "product-updates", "grant")})
    assert st == 200 and "confirmation" in body
    queue_settled(srv)
    mails = H.wait_for(lambda: [
        p for p in outbox(srv) if p.name not in before
        and p.name.endswith(addr + ".eml")], 30, "the confirmation mail")
    assert len(mails) == 1, mails
    m = re.search(rb"/c/([A-Za-z0-9_-]{20,})", mails[0].read_bytes())
    assert m, mails[0].read_text()
    st, _, _ = post(srv, "/c/" + m.group(1).decode(), {"adult": "yes"})
    assert st == 200
    assert status(srv, addr, "product-updates") == "granted"
    r = records(srv, addr, "product-updates")[-1]
    assert (r["action"], r["source"]) == ("grant", "double_opt_in")


def bad_token():
    return "/u/" + base64.urlsafe_b64encode(os.urandom(33)).decode() \
        .rstrip("=")


def test_valid_tokens_pass_a_blocked_address(servers):
    s = web_server(servers, limit=5)
    addr = "rl%d@client.example" % random.randrange(10 ** 9)
    subscribe(s, addr)
    _, url, _ = newsletter_for(s, addr)
    codes = [post(s, bad_token())[0] for _ in range(10)]
    assert codes[:5] == [404] * 5 and codes[-1] == 429, codes
    # the reader sharing that address (a proxy, a NAT) still unsubscribes
    st, _, _ = post(s, urllib.parse.urlsplit(url).path,
                    {"List-Unsubscribe": "One-Click"})
    assert st == 200
    assert status(s, addr) == "withdrawn"
    # X-Forwarded-For from a peer not in web.trusted_proxies is ignored
    st, _, _ = post(s, bad_token(), headers={
        "X-Forwarded-For": "198.51.100.99"})
    assert st == 429


def test_trusted_proxy_forwarded_client_is_limited_alone(servers):
    s = web_server(servers, limit=5,
                   web={"trusted_proxies": "192.0.2.1 127.0.0.0/8"})
    codes = [post(s, bad_token(), headers={
        "X-Forwarded-For": "203.0.113.5, 198.51.100.7"})[0]
        for _ in range(10)]
    assert codes[-1] == 429, codes
    # another reader behind the same proxy is not blocked by that one,
    # and whatever a client put before the proxy's hop is not believed
    st, _, _ = post(s, bad_token(), headers={
        "X-Forwarded-For": "198.51.100.7, 198.51.100.8"})
    assert st == 404
    assert "198.51.100.8" in s.log_tail()

"""
/metrics of a real `postdoc serve` (api.listen, api.metrics): scraped
before and after mail accepted with one attachment, mail refused at RCPT
(no such dossier), an invitation and a newsletter delivered by serve's
runner and a one-click unsubscribe; every counter must move by exactly
what happened and no other, and each scrape must parse as the text
exposition format 0.0.4 under a strict parser written here (HELP and TYPE
before the samples of a family, counters named *_total, label values
quoted and escaped, one sample per series).
"""
import email.policy
import http.client
import random
import re
import subprocess
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H
from postdoc_harness import T

FROM = "news@acme.example"
TEXT = "I agree to receive the ACME newsletter.\n"

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABELS = r"\{%s=%s(?:,%s=%s)*\}" % (NAME, LABEL_VALUE, NAME, LABEL_VALUE)
SAMPLE_RE = re.compile(r"^(%s)(%s)? (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?"
                       r"|NaN|[+-]Inf)$" % (NAME, LABELS))
HELP_RE = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|"
                     r"untyped)$" % NAME)


def parse_exposition(text):
    """Strict text format 0.0.4: returns {series: value}, series being
    'name' or 'name{l="v",...}' as written."""
    assert text.endswith("\n"), "exposition must end with a newline"
    helped, typed, seen = set(), {}, {}
    family = None
    for ln in text[:-1].split("\n"):
        m = HELP_RE.match(ln)
        if m:
            assert m.group(1) not in helped, "second HELP: " + ln
            helped.add(m.group(1))
            continue
        m = TYPE_RE.match(ln)
        if m:
            name, kind = m.groups()
            assert name not in typed, "second TYPE: " + ln
            assert name in helped, "TYPE before HELP: " + ln
            if kind == "counter":
                assert name.endswith("_total"), "counter not *_total: " + ln
            typed[name] = kind
            family = name
            continue
        assert not ln.startswith("#"), "stray comment: " + ln
        m = SAMPLE_RE.match(ln)
        assert m, "not a sample line: %r" % ln
        name = m.group(1)
        assert name == family, "sample outside its family: " + ln
        series = name + (m.group(2) or "")
        assert series not in seen, "duplicate series: " + ln
        seen[series] = float(m.group(3))
    assert typed, "no metric families"
    return seen, typed


def scrape(srv):
    c = http.client.HTTPConnection("127.0.0.1", srv.api_port, timeout=T(10))
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read().decode("utf-8")
    ctype = r.getheader("Content-Type", "")
    c.close()
    assert r.status == 200, (r.status, body)
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    series, types = parse_exposition(body)
    return series, types


def outbox(srv):
    d = srv.var / "outbox"
    return {p.name for p in d.glob("*.eml")} if d.is_dir() else set()


def wait_for(pred, what, timeout=None):
    deadline = time.monotonic() + T(timeout or 30)
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def settled_sent(srv, oid):
    def state():
        rows = {r["id"]: r for r in srv.cli_json("queue", "list")}
        return rows[oid]["state"] not in ("queued", "sending") and rows[oid]
    row = wait_for(state, "outbound %d to settle" % oid)
    assert row["state"] == "sent", row


@pytest.fixture(scope="module")
def srv(servers):
    s = servers(start=False)
    s.api_port = H.free_port()
    s.web_port = H.free_port()
    s.base = "http://127.0.0.1:%d" % s.web_port
    s.sections["api"] = {"listen": "127.0.0.1:%d" % s.api_port,
                         "metrics": True}
    s.sections["web"] = {"listen": "127.0.0.1:%d" % s.web_port,
                         "base_url": s.base}
    s.sections["outbound"] = {
        "transport": "file", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0}
    s.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris", "locale": "en",
         "from_name": "ACME News", "from_addr": FROM}])
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(s.var / "outbox")}}])
    s.write_config()
    s.start()
    for port in (s.api_port, s.web_port):
        wait_for(lambda: H._port_open(port), "port %d" % port)
    s.add_account("ACME", "any")
    s.add_account("STRICT", "contact")
    s.cli("purpose", "add", "ACME", "newsletter")
    (s.root / "consent.txt").write_text(TEXT)
    return s


def message_with_attachment(sender, rcpt):
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = sender
    m["To"] = rcpt
    m["Subject"] = "my documents"
    m["Message-ID"] = "<%d@client.test>" % random.randrange(10 ** 12)
    m.set_content("Here is my note.\n")
    m.add_attachment("Proof of address, in plain text.\n",
                     filename="note.txt")
    return m.as_bytes()


def delta(before, after, series):
    return after.get(series, 0) - before.get(series, 0)


def test_exposition_families(srv):
    series, types = scrape(srv)
    for name, kind in [
            ("postdoc_connections_total", "counter"),
            ("postdoc_messages_accepted_total", "counter"),
            ("postdoc_messages_refused_total", "counter"),
            ("postdoc_documents_stored_total", "counter"),
            ("postdoc_deliveries_total", "counter"),
            ("postdoc_unsubscribes_total", "counter"),
            ("postdoc_outbound_queue", "gauge"),
            ("postdoc_event_deliveries_pending", "gauge"),
            ("postdoc_start_time_seconds", "gauge"),
            ("postdoc_spool_memory_bytes", "gauge")]:
        assert types.get(name) == kind, (name, types)
    for reason in ("unknown_recipient", "sender_policy", "size", "syntax",
                   "plugin", "timeout"):
        assert 'postdoc_messages_refused_total{reason="%s"}' % reason \
            in series
    for result in ("sent", "deferred", "bounced", "failed"):
        assert 'postdoc_deliveries_total{result="%s"}' % result in series
    assert abs(series["postdoc_start_time_seconds"] - time.time()) < 3600


def test_counters_move_by_exactly_what_happened(srv):
    t = random.randrange(10 ** 9)
    dossier = srv.create_dossier("ACME", contact="c%d@client.example" % t)
    sub_addr = "s%d@client.example" % t
    srv.cli("consent", "grant", sub_addr, "--account", "ACME", "--purpose",
            "newsletter", "--text-file", srv.root / "consent.txt")
    srv.cli("contact", "attest", sub_addr, "--account", "ACME",
            "--adult", "yes")
    docs0 = srv.db_count("documents")
    m0, _ = scrape(srv)

    # 1. accepted, one attachment
    sender = "s%d@sender.example" % t
    reply, c = H.send_raw_message(srv.smtp_port, sender, [dossier],
                                  message_with_attachment(sender, dossier))
    c.cmd("QUIT")
    c.close()
    assert reply.code == 250, reply
    # 2. refused at RCPT: no such dossier
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
        r = c.cmd("RCPT TO:<d-nosuch%d@%s>" % (t, H.INTAKE_DOMAIN))
        assert r.code == 550, r
        assert c.cmd("QUIT").code == 221
    # 2b. refused at MAIL (SIZE over the limit) and at RCPT (the
    # dossier's sender policy), in one session
    strict = srv.create_dossier("STRICT", contact="k%d@client.example" % t)
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd("MAIL FROM:<%s> SIZE=999999999999" % sender)
        assert r.code == 552, r
        assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
        r = c.cmd("RCPT TO:<%s>" % strict)
        assert r.code == 550 and r.enhanced == "5.7.1", r
        assert c.cmd("QUIT").code == 221
    # 2c. LMTP, two recipients: one accepted message per recipient
    d2 = srv.create_dossier("ACME", contact="c2-%d@client.example" % t)
    with H.Conn(srv.lmtp_port) as c:
        assert c.cmd("LHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
        assert c.cmd("RCPT TO:<%s>" % dossier).code == 250
        assert c.cmd("RCPT TO:<%s>" % d2).code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: lmtp\r\n\r\nno attachment\r\n.\r\n")
        assert c.reply(T(30)).code == 250
        assert c.reply(T(30)).code == 250
        assert c.cmd("QUIT").code == 221
    # 3. an invitation, delivered by serve (not by the CLI)
    o = srv.cli_json("invite", srv.dossier_id(dossier), "--queue-only")
    settled_sent(srv, o["id"])
    # 4. a newsletter, delivered by serve, then a one-click unsubscribe
    before = outbox(srv)
    cid = srv.cli_json("campaign", "create", "--account", "ACME",
                       "--purpose", "newsletter", "--subject", "News")["id"]
    srv.cli("campaign", "send", cid, "--queue-only")
    new = wait_for(lambda: [n for n in outbox(srv) - before
                            if n.endswith("-%s.eml" % sub_addr)],
                   "the newsletter in the outbox")
    raw = (srv.var / "outbox" / new[0]).read_text("latin-1")
    url = re.search(r"<(https?://[^>]+/u/[^>]+)>",
                    " ".join(raw.split())).group(1)
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        "--max-time", str(T(10)), "-X", "POST", "--data",
                        "List-Unsubscribe=One-Click", url],
                       capture_output=True, text=True, timeout=T(30))
    assert p.stdout == "200", p
    m1 = wait_for(lambda: (lambda m: m if delta(m0, m, "postdoc_deliveries"
                                                "_total{result=\"sent\"}") >= 2
                           else None)(scrape(srv)[0]), "two deliveries")

    expected = {
        'postdoc_connections_total{proto="smtp"}': 3,
        'postdoc_connections_total{proto="lmtp"}': 1,
        'postdoc_messages_accepted_total{proto="smtp"}': 1,
        'postdoc_messages_accepted_total{proto="lmtp"}': 2,
        'postdoc_messages_refused_total{reason="unknown_recipient"}': 1,
        'postdoc_messages_refused_total{reason="size"}': 1,
        'postdoc_messages_refused_total{reason="sender_policy"}': 1,
        "postdoc_documents_stored_total": 1,
        'postdoc_deliveries_total{result="sent"}': 2,
        'postdoc_unsubscribes_total{method="one_click"}': 1,
    }
    for series, n in expected.items():
        assert delta(m0, m1, series) == n, (series, m0.get(series),
                                            m1.get(series))
    # And nothing else moved.
    for series in m1:
        if series.endswith("_total") or "_total{" in series:
            if series not in expected:
                assert delta(m0, m1, series) == 0, series
    # The counter says what the store says.
    assert srv.db_count("documents") - docs0 == 1
    # The queue is empty again: every gauge of it reads 0.
    for state in ("queued", "sending", "deferred"):
        assert m1['postdoc_outbound_queue{state="%s"}' % state] == 0
    assert m1["postdoc_event_deliveries_pending"] >= 0


def test_spool_memory_gauge_follows_a_message_being_received(srv):
    """A message past the first 64 KiB buffer is held in memory while it
    arrives: the gauge shows it (192 KiB: the buffer doubled twice for
    200 KB), and goes back to 0 once the message is stored, the 250 sent
    and the session closed; a refused one gives its memory back too."""
    addr = srv.create_dossier("ACME", contact="ann@client.example")
    assert scrape(srv)[0]["postdoc_spool_memory_bytes"] == 0
    c = H.Conn(srv.smtp_port)
    assert c.cmd("EHLO client.test").code == 250
    assert c.cmd("MAIL FROM:<ann@client.example>").code == 250
    assert c.cmd("RCPT TO:<%s>" % addr).code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n")
    c.send((b"y" * 78 + b"\r\n") * 2600)       # ~208 KB so far
    # Wait for the whole 208 KB to be read, not for the first buffer: a
    # slow server (valgrind) shows 64 KiB first, then 128, then 192.
    held = wait_for(lambda: scrape(srv)[0]["postdoc_spool_memory_bytes"]
                    == 192 * 1024 and 192 * 1024,
                    "the gauge to show the 192 KiB buffer")
    assert held == 192 * 1024
    c.send(b".\r\n")
    r = c.reply(T(20))
    assert r.code == 250, r
    assert scrape(srv)[0]["postdoc_spool_memory_bytes"] == 0
    # Refused at end of data (a NUL): its memory is given back as well.
    assert c.cmd("MAIL FROM:<ann@client.example>").code == 250
    assert c.cmd("RCPT TO:<%s>" % addr).code == 250
    assert c.cmd("DATA").code == 354
    c.send((b"z" * 78 + b"\r\n") * 2600 + b"nul\x00\r\n.\r\n")
    assert c.reply(T(20)).code == 554
    assert scrape(srv)[0]["postdoc_spool_memory_bytes"] == 0
    c.cmd("QUIT")


def test_parser_is_strict():
    """The parser above refuses what the format forbids."""
    ok = ('# HELP a_total x\n# TYPE a_total counter\n'
          'a_total{l="q\\"\\\\\\n"} 1\n')
    assert parse_exposition(ok)[0] == {'a_total{l="q\\"\\\\\\n"}': 1}
    for bad in ['# HELP a x\n# TYPE a counter\na 1\n',       # not *_total
                '# TYPE a_total counter\na_total 1\n',       # no HELP
                '# HELP a_total x\n# TYPE a_total counter\n'
                'a_total{l="x"y"} 1\n',                       # bad quote
                '# HELP a_total x\n# TYPE a_total counter\n'
                'b_total 1\n',                                # other family
                '# HELP a_total x\n# TYPE a_total counter\na_total 1']:
        with pytest.raises(AssertionError):
            parse_exposition(bad)

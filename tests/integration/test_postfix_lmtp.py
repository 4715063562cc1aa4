"""
Postdoc behind a real Postfix, as docs/operations.md ("Behind Postfix")
sets it up: Postfix accepts mail for the intake domain on its smtpd and
relays it with its lmtp(8) client to Postdoc's LMTP listener.  What a
sender sees depends on what Postfix makes of Postdoc's per-recipient
replies (RFC 2033 4.2): a 250 files the message, a 5xx bounces that
recipient with Postdoc's text in the DSN, a 4xx keeps the message in
Postfix's queue until Postdoc takes it.

The Postfix side is the recipe of docs/operations.md ("Behind Postfix"),
read from the page itself: its main.cf lines and transport table, with
the test's domain, port and config directory put in.  A recipe that no
longer routes mail to Postdoc fails here.

Every wait is on a condition (the dossier's messages, Postfix's queue, a
DSN in the sender's Maildir) with a generous bound, never on a sleep.
"""
import re
import smtplib
import sqlite3
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H
import postfix_peer as P
from postdoc_harness import T

SENDER_DOMAIN = "sender.example"
SENDER = "alice@" + SENDER_DOMAIN
UNKNOWN = "d-aaaaaaaaaaaaaaaaaaaaaaaaaa@" + H.INTAKE_DOMAIN

OPERATIONS = H.SRCDIR / "docs" / "operations.md"
DOC_DOMAIN = "dossiers.example.com"     # the recipe's intake domain
DOC_LMTP = "127.0.0.1:2424"             # and server.lmtp_listen

pytestmark = pytest.mark.skipif(P.available() is not None,
                                reason=P.available() or "")


@pytest.fixture(scope="module")
def srv(servers):
    # Postfix keeps LMTP connections for reuse (connection caching):
    # production's timeouts, as docs/operations.md requires them, keep
    # the test from depending on who closes a cached one first.
    s = servers(limits={"command_timeout": 300, "session_timeout": 1800})
    s.add_account("OPEN", "any")
    s.add_account("STRICT", "any")
    return s


def doc_blocks():
    """The fenced blocks of docs/operations.md that start with a comment
    naming a Postfix file: {"/etc/postfix/main.cf": [lines], ...}."""
    text = OPERATIONS.read_text()
    out = {}
    for body in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S):
        lines = body.splitlines()
        m = re.match(r"# (/etc/postfix/\S+)$", lines[0]) if lines else None
        if m:
            out[m.group(1)] = lines[1:]
    return out


def recipe(conf_dir, lmtp_port):
    """The documented main.cf lines and lookup tables, for this test's
    domain, LMTP port and config directory."""
    def local(v):
        return (v.replace(DOC_DOMAIN, H.INTAKE_DOMAIN)
                .replace(DOC_LMTP, "127.0.0.1:%d" % lmtp_port)
                .replace("/etc/postfix/", str(conf_dir) + "/"))
    blocks = doc_blocks()
    assert "/etc/postfix/main.cf" in blocks, \
        "docs/operations.md has no '# /etc/postfix/main.cf' block"
    main = {}
    for line in blocks.pop("/etc/postfix/main.cf"):
        if line.strip() and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            main[k.strip()] = local(v.strip())
    maps = {path.rsplit("/", 1)[1]: local("\n".join(lines) + "\n")
            for path, lines in blocks.items()}
    return main, maps


@pytest.fixture(scope="module")
def postfix(srv):
    pf = P.Postfix(SENDER_DOMAIN)
    try:
        pf.configure(*recipe(pf.conf_dir, srv.lmtp_port))
        pf.start()
        yield pf
    finally:
        pf.stop()


def wait_for(cond, timeout, what, log=None):
    deadline = time.monotonic() + T(timeout)
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s%s" % (
        T(timeout), what, "\nPostfix's log:\n" + log() if log else ""))


def message(to, subject, name, data, subtype):
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content("see attached\n")
    maintype, sub = subtype.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=sub, filename=name)
    return msg.as_bytes()


def submit(pf, rcpts, raw):
    """Hand a message to Postfix's smtpd; returns Postfix's queue id."""
    with smtplib.SMTP("127.0.0.1", pf.smtp_port, timeout=T(30)) as s:
        s.ehlo("client.test")
        assert s.mail(SENDER)[0] == 250
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, (r, code, resp)
        code, resp = s.data(raw)
        assert code == 250, (code, resp)
    qid = H.queue_id(resp)
    assert qid, resp
    return qid


def messages(srv, addr):
    return srv.show(addr)["messages"]


def in_queue(pf, qid):
    return [m for m in pf.queue() if m["queue_id"] == qid]


def test_mail_through_postfix_reaches_the_dossier(srv, postfix):
    addr = srv.create_dossier("OPEN", contact=SENDER)
    pdf = H.make_pdf("via-postfix")
    raw = message([addr], "via postfix", "form.pdf", pdf, "application/pdf")
    qid = submit(postfix, [addr], raw)
    got = wait_for(lambda: messages(srv, addr), 60,
                   "the message in the dossier", postfix.log_tail)
    assert len(got) == 1, got
    m = got[0]
    # Over LMTP from Postfix: the envelope is the sender's, the client is
    # Postfix (loopback).
    assert m["lmtp"] and m["rcpt_to"] == addr and m["mail_from"] == SENDER
    stored = srv.message_get(m["id"])
    assert b"Subject: via postfix" in stored
    assert raw.split(b"\n\n", 1)[1] in stored.replace(b"\r\n", b"\n")
    docs = {d["filename"]: d for d in srv.show(addr)["documents"]}
    assert srv.document_get(docs["form.pdf"]["id"]) == pdf
    # Postfix saw the 250 and let go of the message.
    wait_for(lambda: not in_queue(postfix, qid), 60,
             "Postfix's queue to drop %s" % qid, postfix.log_tail)
    # postlogd writes the log asynchronously: wait for the line.
    wait_for(lambda: re.search(r"%s: to=<%s>.*status=sent \(250 2\.0\.0 "
                               r".* delivered to dossier" % (qid, addr),
                               postfix.log_tail(200)), 60,
             "Postfix's log of the 250", postfix.log_tail)


def test_refusals_come_back_as_one_bounce_with_postdoc_text(srv, postfix):
    """Three recipients, three outcomes (RFC 2033 4.2): the OPEN dossier
    files the PNG, STRICT refuses it after DATA (554 5.7.1, PDF only),
    and the unknown dossier is refused at RCPT (550 5.1.1).  Postfix
    bounces the two refused recipients, with Postdoc's own reply text in
    the DSN, and only them."""
    open_addr = srv.create_dossier("OPEN", contact=SENDER)
    strict_addr = srv.create_dossier("STRICT", contact=SENDER)
    # What Postdoc answers for the unknown dossier, asked directly.
    with H.Conn(srv.lmtp_port) as c:
        assert c.cmd("LHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
        rcpt_reply = c.cmd("RCPT TO:<%s>" % UNKNOWN)
    assert (rcpt_reply.code, rcpt_reply.enhanced) == (550, "5.1.1")
    before = len(postfix.mailbox())
    png = H.make_png("via-postfix")
    rcpts = [open_addr, strict_addr, UNKNOWN]
    raw = message(rcpts, "three ways", "pic.png", png, "image/png")
    submit(postfix, rcpts, raw)

    def bounce():
        for msg in postfix.mailbox()[before:]:
            reports = P.dsn_reports(msg)
            if reports:
                return msg, reports
        return None
    dsn, reports = wait_for(bounce, 60, "Postfix's bounce to the sender",
                            postfix.log_tail)
    assert dsn["To"] == SENDER, dsn["To"]
    by_rcpt = {r["final-recipient"].split(";")[-1].strip(): r
               for r in reports}
    assert set(by_rcpt) == {strict_addr, UNKNOWN}, reports
    for r in by_rcpt.values():
        assert r["action"] == "failed", r
    unknown = by_rcpt[UNKNOWN]
    assert unknown["status"] == "5.1.1", unknown
    assert "550 %s" % rcpt_reply.text in unknown["diagnostic-code"], unknown
    strict = by_rcpt[strict_addr]
    assert strict["status"] == "5.7.1", strict
    assert "554 5.7.1" in strict["diagnostic-code"], strict
    assert "pic.png" in strict["diagnostic-code"], strict
    assert len(messages(srv, open_addr)) == 1
    assert messages(srv, strict_addr) == []


def test_451_stays_in_postfix_queue_until_postdoc_accepts(srv, postfix):
    """With Postdoc's database locked past its busy timeout the commit
    fails and the recipient gets 451 4.3.0 after DATA: Postfix keeps the
    message deferred, and `postqueue -f` delivers it once the lock is
    gone, exactly once."""
    addr = srv.create_dossier("OPEN", contact=SENDER)
    pdf = H.make_pdf("deferred")
    raw = message([addr], "deferred", "later.pdf", pdf, "application/pdf")
    lock = sqlite3.connect(str(srv.var / "postdoc.db"), timeout=T(10),
                           isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        qid = submit(postfix, [addr], raw)

        def deferred():
            for m in in_queue(postfix, qid):
                reasons = [r.get("delay_reason", "")
                           for r in m["recipients"]]
                if m["queue_name"] == "deferred" and reasons and \
                        all(" 451 " in x for x in reasons):
                    return reasons
            return None
        reasons = wait_for(deferred, 90, "Postfix to defer %s on 451" % qid,
                           postfix.log_tail)
        assert "4.3.0" in reasons[0], reasons
        # (The CLI needs the write lock to open the store: read the file.)
        assert srv.query("SELECT count(*) FROM messages WHERE rcpt_to = ?",
                         addr) == [(0,)]
    finally:
        lock.rollback()
        lock.close()
    postfix.flush()
    got = wait_for(lambda: messages(srv, addr), 90,
                   "the deferred message in the dossier after the flush",
                   postfix.log_tail)
    wait_for(lambda: not in_queue(postfix, qid), 60,
             "Postfix's queue to drop %s" % qid, postfix.log_tail)
    got = messages(srv, addr)
    assert len(got) == 1, got
    docs = {d["filename"]: d for d in srv.show(addr)["documents"]}
    assert srv.document_get(docs["later.pdf"]["id"]) == pdf

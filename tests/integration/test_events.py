"""
The public events (docs/webhooks.md) as a webhook receiver sees them,
each produced by the real command or protocol exchange that causes it:
consent.granted and consent.withdrawn from the consent CLI (account-level,
dossier null), subject.erased carrying the subject hash and not the
address, invitation.sent when `invite` is delivered, message.bounced from
a DSN, item.received per document filed under an item (and no
dossier.completed at intake: completion is every required item accepted,
a review's outcome), message.received with what the sender wrote, and
events recorded before a consumer first started are not replayed.
"""
import json
import smtplib
import sqlite3
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H
import webhook_receiver as W
from postdoc_harness import T

SECRET = "whsec-events-0123456789abcdef"
SENDER = "client@sender.example"
TEXT = "I agree to receive the ACME newsletter about once a month.\n"


@pytest.fixture(scope="module")
def recv():
    r = W.Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def srv(servers, recv):
    srv = servers(start=False)
    srv.sections["events"] = {"interval_ms": 100, "retry_base": 1,
                              "retry_cap": 2, "max_age": 3600}
    srv.sections["outbound"] = {
        "transport": "file", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0,
        "receipts": False}
    srv.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris",
         "from_name": "ACME", "from_addr": "hello@acme.example"}])
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(srv.root / "outbox")}},
        {"name": "dkim", "settings": {"key_dir": str(srv.var / "dkim"),
                                      "selector": "test"}},
        W.webhook_plugin(SECRET, recv)])
    srv.write_config()
    srv.start()
    srv.add_account("ACME", "any")
    srv.cli("purpose", "add", "ACME", "newsletter")
    (srv.root / "consent.txt").write_text(TEXT)
    return srv


def of_type(recv, type_, pred=lambda e: True, n=1, timeout=20):
    reqs = recv.wait_for(lambda rs: len([r for r in rs if r["json"]["type"]
                                         == type_ and pred(r["json"])]) >= n,
                         timeout=timeout, what="%d x %s" % (n, type_))
    out = [r for r in reqs if r["json"]["type"] == type_ and
           pred(r["json"])]
    for r in out:
        assert W.verify(r, SECRET)
        assert r["headers"]["Postdoc-Event"] == type_
    return [r["json"] for r in out]


def mail_pdf(srv, rcpt, name):
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = SENDER, rcpt, "documents"
    m.set_content("see attached")
    m.add_attachment(H.make_pdf(name), maintype="application",
                     subtype="pdf", filename=name)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30)) as s:
        s.ehlo("client.test")
        s.send_message(m)


def settled(srv, oid):
    deadline = time.monotonic() + T(30)
    while time.monotonic() < deadline:
        o = {r["id"]: r for r in srv.cli_json("queue", "list")}[oid]
        if o["state"] not in ("queued", "sending"):
            return o
        time.sleep(0.05)
    return o


def test_consent_granted_then_withdrawn(srv, recv):
    who = "reader@client.example"
    srv.cli("consent", "grant", who, "--account", "ACME", "--purpose",
            "newsletter", "--text-file", srv.root / "consent.txt")
    srv.cli("consent", "withdraw", who, "--account", "ACME", "--purpose",
            "newsletter")
    mine = lambda e: e["data"].get("contact") == who
    g = of_type(recv, "consent.granted", mine)
    w = of_type(recv, "consent.withdrawn", mine)
    assert len(g) == 1 and len(w) == 1
    assert g[0]["id"] < w[0]["id"]
    for e in (g[0], w[0]):
        assert e["account"] == "ACME" and e["dossier"] is None
        assert e["data"]["purpose"] == "newsletter"
    # withdrawing again changes nothing, so no second event
    srv.cli("consent", "withdraw", who, "--account", "ACME", "--purpose",
            "newsletter")
    srv.cli("consent", "grant", "marker@client.example", "--account", "ACME",
            "--purpose", "newsletter", "--text-file",
            srv.root / "consent.txt")
    of_type(recv, "consent.granted",
            lambda e: e["data"]["contact"] == "marker@client.example")
    assert len(of_type(recv, "consent.withdrawn", mine)) == 1


def test_subject_erased_carries_the_hash_not_the_address(srv, recv):
    who = "forget.me@client.example"
    srv.cli("consent", "grant", who, "--account", "ACME", "--purpose",
            "newsletter", "--text-file", srv.root / "consent.txt")
    addr = srv.create_dossier("ACME", contact=who, ref="EV-ERASE")
    mail_pdf(srv, addr, "erase-me.pdf")
    rep = srv.cli_json("subject", "erase", who, "--account", "ACME",
                       "--operator", "dpo")
    ev = of_type(recv, "subject.erased")
    ev = [e for e in ev if e["data"]["subject_hash"] == rep["subject_hash"]]
    assert len(ev) == 1
    assert ev[0]["account"] == "ACME" and ev[0]["dossier"] is None
    body = [r["body"] for r in recv.snapshot()
            if r["json"]["id"] == ev[0]["id"]][0]
    assert b"forget.me" not in body
    # its events are gone with it: nothing left to deliver about them
    with srv.db() as c:
        left = c.execute("SELECT count(*) FROM events WHERE detail LIKE"
                         " '%forget.me%'").fetchone()[0]
    assert left == 0


def add_items(srv, did, slugs):
    """Required items (SQL until `dossier create --item` is on main)."""
    con = sqlite3.connect(str(srv.var / "postdoc.db"), timeout=10)
    try:
        acct = con.execute("SELECT account_id FROM dossiers WHERE id = ?",
                           (did,)).fetchone()[0]
        now = int(time.time())
        for pos, slug in enumerate(slugs, 1):
            con.execute("INSERT INTO dossier_items (account_id, dossier_id,"
                        " position, slug, label, created, updated) VALUES"
                        " (?, ?, ?, ?, ?, ?, ?)",
                        (acct, did, pos, slug, slug, now, now))
        con.commit()
    finally:
        con.close()


def test_invitation_sent_and_items_received(srv, recv):
    addr = srv.create_dossier("ACME", contact="claire@client.example",
                              ref="EV-DONE")
    did = srv.dossier_id(addr)
    o = srv.cli_json("invite", did, "--documents", "ID card, Payslip")
    assert settled(srv, o["id"])["state"] == "sent"
    inv = of_type(recv, "invitation.sent",
                  lambda e: e["dossier"]["ref"] == "EV-DONE")
    assert len(inv) == 1
    assert inv[0]["data"]["outbound"] == o["id"]
    assert inv[0]["data"]["rcpt"] == "claire@client.example"
    if not srv.query("SELECT 1 FROM dossier_items WHERE dossier_id = ?",
                     did):
        add_items(srv, did, ["id-card", "payslip"])
    mine = lambda e: e["dossier"] and e["dossier"]["ref"] == "EV-DONE"
    local, dom = addr.split("@")
    mail_pdf(srv, "%s+id-card@%s" % (local, dom), "id-card.pdf")
    got = of_type(recv, "item.received", mine, n=1)
    doc = of_type(recv, "document.received", mine, n=1)
    assert got[0]["data"] == {"item": "id-card",
                              "document": doc[0]["data"]["id"],
                              "state": "received"}
    assert got[0]["id"] > doc[0]["id"]
    # the plain address: payslip is the only item missing
    mail_pdf(srv, addr, "payslip.pdf")
    got = of_type(recv, "item.received", mine, n=2)
    assert got[1]["data"]["item"] == "payslip"
    msgs = of_type(recv, "message.received", mine, n=2)
    assert [m["data"]["documents"] for m in msgs] == [1, 1]
    assert msgs[0]["data"]["from"] == SENDER
    assert msgs[0]["data"]["text"] == "see attached"
    # both received, neither accepted: not complete (it was, when a
    # dossier completed on a count of documents)
    mail_pdf(srv, addr, "extra.pdf")
    of_type(recv, "message.received", mine, n=3)
    of_type(recv, "document.received", mine, n=3)
    assert not [r for r in recv.snapshot()
                if r["json"]["type"] == "dossier.completed"
                and r["json"]["dossier"]["ref"] == "EV-DONE"]
    assert not srv.query("SELECT 1 FROM events WHERE dossier_id = ? AND"
                         " kind = 'dossier.completed'", did)


def dsn_for(verp, rcpt):
    return ("From: MAILER-DAEMON@mx.client.example\r\nTo: %s\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status;"
            " boundary=\"b1\"\r\n\r\n"
            "--b1\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
            "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.client.example\r\n\r\n"
            "Final-Recipient: rfc822; %s\r\nAction: failed\r\n"
            "Status: 5.1.1\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 user unknown here\r\n\r\n"
            "--b1--\r\n" % (verp, rcpt)).encode()


def test_a_dsn_is_posted_as_message_bounced(srv, recv):
    victim = "gone@client.example"
    addr = srv.create_dossier("ACME", contact=victim, ref="EV-BOUNCE")
    o = srv.cli_json("invite", srv.dossier_id(addr))
    o = settled(srv, o["id"])
    assert o["state"] == "sent"
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(20)) as s:
        s.ehlo("mx.client.example")
        assert s.mail("<>")[0] == 250
        assert s.rcpt(o["mail_from"])[0] == 250
        assert s.data(dsn_for(o["mail_from"], victim))[0] == 250
    b = of_type(recv, "message.bounced",
                lambda e: e["dossier"]["ref"] == "EV-BOUNCE")
    assert len(b) == 1
    d = b[0]["data"]
    assert d["outbound"] == o["id"] and d["kind"] == "invitation"
    assert d["rcpt"] == victim and d["enhanced"] == "5.1.1"
    assert "user unknown here" in d["reason"]


def test_history_before_the_first_start_is_not_replayed(servers):
    recv = W.Receiver()
    try:
        srv = servers(start=False)
        srv.sections["events"] = {"interval_ms": 100}
        srv.write_config()
        srv.start()
        srv.add_account("ACME", "any")
        old = srv.create_dossier("ACME", contact=SENDER, ref="EV-OLD")
        mail_pdf(srv, old, "before.pdf")
        srv.stop_and_check()
        srv.sections["plugins"] = H.LcList(
            list(srv.sections["plugins"]) + [W.webhook_plugin(SECRET, recv)])
        srv.write_config()
        srv.start()
        mail_pdf(srv, old, "after.pdf")
        # Same dossier, same stream: a replayed before.pdf (its
        # message.received, then its document) would come first.
        reqs = recv.wait_for(lambda rs: any(
            r["json"]["type"] == "document.received" for r in rs))
        after = srv.query("SELECT max(id) FROM messages")[0][0]
        assert reqs[0]["json"]["type"] == "message.received"
        assert reqs[0]["json"]["data"]["message"] == after
        docs = [r["json"] for r in reqs
                if r["json"]["type"] == "document.received"]
        assert docs[0]["data"]["filename"] == "after.pdf"
    finally:
        recv.close()

"""
Item addresses and the conversation (issue 14), through a real `postdoc
serve`, smtplib and a real local webhook receiver:

- RCPT to d-<token>+<item> is answered exactly as the plain address is:
  250 for an open dossier (a known item or not), 550 5.1.1 for a closed
  or unknown one, 550 5.7.1 for a sender the account's policy refuses,
  with the same text; a malformed item part is no address of ours.
- Files land under the item their address names; the plain address files
  under the only outstanding item, else unassigned; an unknown item part
  files unassigned and leaves item.unknown in the history; item.received
  reaches the webhook once per document, and nothing completes at intake.
- A message without documents is part of the conversation: the webhook
  gets message.received with the sender, the subject and the text.

Items are added with SQL and documents' items read with SQL until the
CLI's `dossier create --item` and `dossier show --json` documents[].item
(the CLI helper's) are on main.
"""
import smtplib
import sqlite3
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H
import webhook_receiver as W
from postdoc_harness import T

SECRET = "whsec-items-0123456789abcdef"
SENDER = "zoe@client.example"
DOMAIN = H.INTAKE_DOMAIN


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
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) +
                                       [W.webhook_plugin(SECRET, recv)])
    srv.write_config()
    srv.start()
    srv.add_account("ACME", "any")
    srv.add_account("STRICT", "contact")
    return srv


def add_items(srv, addr, slugs):
    """Required items, in order (label = slug)."""
    did = srv.dossier_id(addr)
    con = sqlite3.connect(str(srv.var / "postdoc.db"), timeout=10)
    try:
        acct = con.execute("SELECT account_id FROM dossiers WHERE id = ?",
                           (did,)).fetchone()[0]
        now = int(time.time())
        for pos, slug in enumerate(slugs, 1):
            con.execute("INSERT INTO dossier_items (account_id, dossier_id,"
                        " position, slug, label, created, updated) VALUES"
                        " (?, ?, ?, ?, ?, ?, ?)",
                        (acct, did, pos, slug, slug.replace("-", " "), now,
                         now))
        con.commit()
    finally:
        con.close()


def item_addr(addr, slug):
    local, dom = addr.split("@")
    return "%s+%s@%s" % (local, slug, dom)


def filed(srv, addr):
    """[(document id, filename, item slug or None)] in order."""
    return srv.query("SELECT d.id, d.filename, i.slug FROM documents d"
                     " LEFT JOIN dossier_items i ON i.id = d.item_id"
                     " WHERE d.dossier_id = ? ORDER BY d.id",
                     srv.dossier_id(addr))


def states(srv, addr):
    return dict(srv.query("SELECT slug, state FROM dossier_items WHERE"
                          " dossier_id = ?", srv.dossier_id(addr)))


def history(srv, addr):
    return srv.query("SELECT kind, detail FROM events WHERE dossier_id = ?"
                     " ORDER BY id", srv.dossier_id(addr))


def send(srv, rcpt, msg, mail_from=SENDER):
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30)) as s:
        s.ehlo("client.test")
        s.send_message(msg, from_addr=mail_from, to_addrs=[rcpt])


def with_pdf(rcpt, name):
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = SENDER, rcpt, "documents"
    m.set_content("see attached")
    m.add_attachment(H.make_pdf(name), maintype="application",
                     subtype="pdf", filename=name)
    return m


def rcpt_reply(srv, rcpt, mail_from=SENDER):
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30)) as s:
        s.ehlo("client.test")
        assert s.mail(mail_from)[0] == 250
        code, text = s.rcpt(rcpt)
        s.rset()
    return code, text.decode()


def of_type(recv, type_, pred, n=1, timeout=20):
    reqs = recv.wait_for(lambda rs: len([r for r in rs if r["json"]["type"]
                                         == type_ and pred(r["json"])]) >= n,
                         timeout=timeout, what="%d x %s" % (n, type_))
    out = [r for r in reqs if r["json"]["type"] == type_ and
           pred(r["json"])]
    for r in out:
        assert W.verify(r, SECRET)
    return [r["json"] for r in out]


def of_ref(ref):
    return lambda e: e["dossier"] and e["dossier"]["ref"] == ref


def test_rcpt_item_address_answered_like_the_plain_one(srv):
    addr = srv.create_dossier("ACME", contact=SENDER, ref="IT-RCPT")
    add_items(srv, addr, ["id-card"])
    for rcpt in (addr, item_addr(addr, "id-card"),
                 item_addr(addr, "ID-Card"), item_addr(addr, "no-such")):
        assert rcpt_reply(srv, rcpt)[0] == 250, rcpt
    # a malformed item part is no address of ours, whatever the token
    unknown = rcpt_reply(srv, "d-nosuch0123@" + DOMAIN)
    assert unknown[0] == 550 and unknown[1].startswith("5.1.1"), unknown
    for bad in ("id_card", "id.card", "a" * 33, ""):
        assert rcpt_reply(srv, item_addr(addr, bad)) == unknown, bad
    # the account's sender policy: the same refusal, word for word
    strict = srv.create_dossier("STRICT", contact=SENDER, ref="IT-STRICT")
    add_items(srv, strict, ["id-card"])
    plain = rcpt_reply(srv, strict, "mallory@evil.example")
    assert plain[0] == 550 and "5.7.1" in plain[1], plain
    for slug in ("id-card", "no-such"):
        assert rcpt_reply(srv, item_addr(strict, slug),
                          "mallory@evil.example") == plain
        assert rcpt_reply(srv, item_addr(strict, slug))[0] == 250
    # a closed dossier: 550 5.1.1 like the plain address, item or not
    srv.cli("dossier", "close", srv.dossier_id(addr))
    closed = rcpt_reply(srv, addr)
    assert closed[0] == 550 and "5.1.1" in closed[1], closed
    for slug in ("id-card", "no-such"):
        assert rcpt_reply(srv, item_addr(addr, slug)) == closed


def test_files_land_under_their_item(srv, recv):
    addr = srv.create_dossier("ACME", contact=SENDER, ref="IT-FILE")
    add_items(srv, addr, ["id-card", "proof-of-address", "bank-details"])
    send(srv, item_addr(addr, "id-card"), with_pdf(addr, "card.pdf"))
    send(srv, item_addr(addr, "Proof-Of-Address"),
         with_pdf(addr, "proof.pdf"))
    # the plain address: bank-details is the only item still missing
    send(srv, addr, with_pdf(addr, "bank.pdf"))
    # nothing missing now: unassigned
    send(srv, addr, with_pdf(addr, "extra.pdf"))
    # an item this dossier does not have: unassigned, noted
    send(srv, item_addr(addr, "payslip"), with_pdf(addr, "payslip.pdf"))
    rows = filed(srv, addr)
    assert [(r[1], r[2]) for r in rows] == [
        ("card.pdf", "id-card"), ("proof.pdf", "proof-of-address"),
        ("bank.pdf", "bank-details"), ("extra.pdf", None),
        ("payslip.pdf", None)]
    assert states(srv, addr) == {"id-card": "received",
                                 "proof-of-address": "received",
                                 "bank-details": "received"}
    got = of_type(recv, "item.received", of_ref("IT-FILE"), n=3)
    assert [e["data"] for e in got] == [
        {"item": "id-card", "document": rows[0][0], "state": "received"},
        {"item": "proof-of-address", "document": rows[1][0],
         "state": "received"},
        {"item": "bank-details", "document": rows[2][0],
         "state": "received"}]
    hist = history(srv, addr)
    assert ("item.unknown", "item=payslip") in hist
    # every item received, none accepted: not complete
    kinds = [k for k, _ in hist]
    assert "dossier.completed" not in kinds
    of_type(recv, "document.received", of_ref("IT-FILE"), n=5)
    assert not [r for r in recv.snapshot()
                if r["json"]["type"] == "dossier.completed"
                and r["json"]["dossier"]["ref"] == "IT-FILE"]


def test_one_message_to_two_item_addresses_files_as_the_plain_one(srv):
    """Which file answers which item is unknowable: unassigned when two
    items are outstanding, the only outstanding one otherwise."""
    addr = srv.create_dossier("ACME", contact=SENDER, ref="IT-TWO")
    add_items(srv, addr, ["id-card", "payslip", "bank-details"])
    send(srv, item_addr(addr, "bank-details"), with_pdf(addr, "bank.pdf"))
    m = with_pdf(addr, "both.pdf")
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30)) as s:
        s.ehlo("client.test")
        s.send_message(m, from_addr=SENDER, to_addrs=[
            item_addr(addr, "id-card"), item_addr(addr, "payslip")])
    assert [(r[1], r[2]) for r in filed(srv, addr)] == [
        ("bank.pdf", "bank-details"), ("both.pdf", None)]


def test_a_question_without_documents_reaches_the_webhook(srv, recv):
    addr = srv.create_dossier("ACME", contact=SENDER, ref="IT-TALK")
    add_items(srv, addr, ["bank-statement"])
    m = EmailMessage()
    m["From"], m["To"] = "Zoé Martin <%s>" % SENDER, addr
    m["Subject"] = "Relevé bancaire"
    m.set_content("Bonjour,\n\nJe n'ai pas de relevé bancaire, puis-je "
                  "envoyer une attestation à la place ?\n\nZoé\n",
                  cte="quoted-printable")
    send(srv, item_addr(addr, "bank-statement"), m)
    ev = of_type(recv, "message.received", of_ref("IT-TALK"))
    assert len(ev) == 1
    data = ev[0]["data"]
    msg_id = srv.query("SELECT id FROM messages WHERE dossier_id = ?",
                       srv.dossier_id(addr))[0][0]
    assert data["message"] == msg_id and data["documents"] == 0
    assert data["from"] == SENDER
    assert data["subject"] == "Relevé bancaire"
    assert data["text"] == ("Bonjour,\n\nJe n'ai pas de relevé bancaire, "
                            "puis-je envoyer une attestation à la place ?"
                            "\n\nZoé")
    assert data["queue_id"]
    # nothing filed, so the item still waits
    assert states(srv, addr) == {"bank-statement": "requested"}
    assert not [r for r in recv.snapshot()
                if r["json"]["type"] == "item.received"
                and r["json"]["dossier"]["ref"] == "IT-TALK"]
    # with a document: the count, and the text beside it
    send(srv, addr, with_pdf(addr, "attestation.pdf"))
    ev = of_type(recv, "message.received", of_ref("IT-TALK"), n=2)
    assert ev[1]["data"]["documents"] == 1
    assert ev[1]["data"]["text"] == "see attached"
    assert ev[1]["data"]["subject"] == "documents"
    # a message over store.inline_max: its raw copy is a blob file
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = SENDER, addr, "the scan"
    m.set_content("Here is the full scan.\n")
    m.add_attachment(H.make_pdf("big") + b"%" + b"x" * 100000 + b"\n",
                     maintype="application", subtype="pdf",
                     filename="scan.pdf")
    send(srv, addr, m)
    ev = of_type(recv, "message.received", of_ref("IT-TALK"), n=3)
    assert not srv.query("SELECT 1 FROM raw_inline r JOIN messages m ON"
                         " m.sha256 = r.sha256 WHERE m.id = ?",
                         ev[2]["data"]["message"])
    assert ev[2]["data"]["text"] == "Here is the full scan."

"""
LMTP (RFC 2033) on its own port, driven by Python's smtplib.LMTP: after
DATA there is one reply per accepted recipient, in RCPT order, so one
dossier can take a message another one's account refuses; an item's
address (d-<token>+<item>) is a recipient like its dossier's, and its
files land under that item.
"""
import email.policy
import smtplib
import sqlite3
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H
from postdoc_harness import T

SENDER = "alice@sender.example"


@pytest.fixture(scope="module")
def srv(servers):
    s = servers()
    s.add_account("OPEN", "any")
    s.add_account("STRICT", "any")
    return s


def message(to, name, data, subtype):
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = ", ".join(to)
    msg["Subject"] = "lmtp " + name
    msg.set_content("see attached\n")
    maintype, sub = subtype.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=sub, filename=name)
    return msg.as_bytes(policy=email.policy.SMTP)


def lmtp_deliver(srv, rcpts, raw):
    """Returns the list of per-recipient (code, text) replies to DATA."""
    with smtplib.LMTP("127.0.0.1", srv.lmtp_port, timeout=T(30)) as s:
        code, resp = s.ehlo("client.test")   # LMTP.ehlo sends LHLO
        assert code == 250, resp
        assert s.mail(SENDER)[0] == 250
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, (r, code, resp)
        replies = [s.data(raw)]
        for _ in rcpts[1:]:
            replies.append(s.getreply())
        assert s.noop()[0] == 250   # nothing left unread: counts matched
        return [(c, t.decode("utf-8", "replace")) for c, t in replies]


def test_lmtp_per_recipient_replies(srv):
    open_addr = srv.create_dossier("OPEN", contact=SENDER)
    strict_addr = srv.create_dossier("STRICT", contact=SENDER)
    png = H.make_png("lmtp")
    raw = message([open_addr, strict_addr], "pic.png", png, "image/png")
    replies = lmtp_deliver(srv, [open_addr, strict_addr], raw)
    assert len(replies) == 2
    (c1, t1), (c2, t2) = replies
    assert c1 == 250, t1
    assert c2 == 554 and t2.startswith("5.7.1"), (c2, t2)
    assert "pic.png" in t2
    d = srv.show(open_addr)
    assert len(d["messages"]) == 1
    m = d["messages"][0]
    assert m["lmtp"] and m["rcpt_to"] == open_addr
    assert srv.message_get(m["id"]) == raw
    docs = {x["filename"]: x for x in d["documents"]}
    assert srv.document_get(docs["pic.png"]["id"]) == png
    s = srv.show(strict_addr)
    assert s["messages"] == [] and s["documents"] == []


def test_lmtp_reply_order_follows_rcpt_order(srv):
    strict_addr = srv.create_dossier("STRICT", contact=SENDER)
    open_addr = srv.create_dossier("OPEN", contact=SENDER)
    png = H.make_png("order")
    raw = message([strict_addr, open_addr], "order.png", png, "image/png")
    (c1, t1), (c2, t2) = lmtp_deliver(srv, [strict_addr, open_addr], raw)
    assert c1 == 554 and t1.startswith("5.7.1"), (c1, t1)
    assert c2 == 250, t2
    assert len(srv.show(open_addr)["messages"]) == 1
    assert srv.show(strict_addr)["messages"] == []


def test_lmtp_both_accept_a_pdf(srv):
    a = srv.create_dossier("OPEN", contact=SENDER)
    b = srv.create_dossier("STRICT", contact=SENDER)
    pdf = H.make_pdf("lmtp-both")
    raw = message([a, b], "both.pdf", pdf, "application/pdf")
    replies = lmtp_deliver(srv, [a, b], raw)
    assert [c for c, _ in replies] == [250, 250], replies
    for addr in (a, b):
        d = srv.show(addr)
        docs = {x["filename"]: x for x in d["documents"]}
        assert srv.document_get(docs["both.pdf"]["id"]) == pdf


def test_lmtp_unknown_recipient_and_lhlo(srv):
    with H.Conn(srv.lmtp_port) as c:
        r = c.cmd("LHLO client.test")
        assert r.code == 250, r
        assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
        r = c.cmd("RCPT TO:<d-aaaaaaaaaaaaaaaaaaaaaaaaaa@dossiers.example>")
        assert (r.code, r.enhanced) == (550, "5.1.1"), r


def test_lmtp_item_address(srv):
    a = srv.create_dossier("OPEN", contact=SENDER)
    b = srv.create_dossier("OPEN", contact=SENDER)
    con = sqlite3.connect(str(srv.var / "postdoc.db"), timeout=10)
    try:    # SQL until `dossier create --item` is on main
        now = int(time.time())
        for pos, (did, slug) in enumerate(((srv.dossier_id(a), "id-card"),
                                           (srv.dossier_id(a), "proof"),
                                           (srv.dossier_id(b), "proof")), 1):
            con.execute("INSERT INTO dossier_items (account_id, dossier_id,"
                        " position, slug, label, created, updated) SELECT"
                        " account_id, id, ?, ?, ?, ?, ? FROM dossiers"
                        " WHERE id = ?", (pos, slug, slug, now, now, did))
        con.commit()
    finally:
        con.close()
    local, dom = a.split("@")
    item = "%s+id-card@%s" % (local, dom)
    png = H.make_png("lmtp-item")
    raw = message([item, b], "card.png", png, "image/png")
    (c1, t1), (c2, t2) = lmtp_deliver(srv, [item, b], raw)
    assert c1 == 250 and c2 == 250, (t1, t2)
    rows = srv.query("SELECT x.intake_local, m.rcpt_to, i.slug FROM"
                     " documents d JOIN messages m ON m.id = d.message_id"
                     " JOIN dossiers x ON x.id = d.dossier_id LEFT JOIN"
                     " dossier_items i ON i.id = d.item_id WHERE"
                     " d.dossier_id IN (?, ?) ORDER BY d.id",
                     srv.dossier_id(a), srv.dossier_id(b))
    # b's plain address: its only outstanding item
    assert rows == [(local, item, "id-card"),
                    (b.split("@")[0], b, "proof")]

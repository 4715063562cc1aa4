"""
Outbound end to end, through the real binary: `postdoc invite` renders,
builds, DKIM-signs, queues and delivers through the file transport; the
invitation's Reply-To files a reply into the dossier (sent with smtplib);
a receipt goes only to a sender the policy vouches for; reminders follow
the schedule; a DSN to the VERP envelope sender marks the message bounced
and suppresses the address.  DKIM is checked with python3-dkim, an
independent verifier.
"""
import email
import email.policy
import json
import re
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest

import postdoc_harness as H
from postdoc_harness import T

CONTACT = "claire@client.example"
ACME_FROM = "onboarding@acme.example"


def outbound_server(servers, **outbound):
    srv = servers(start=False)
    ob = {"transport": "file", "template_dir": str(H.SRCDIR / "templates"),
          "queue_interval_ms": 100, "retry_base": 1, "rate": 0}
    ob.update(outbound)
    srv.sections["outbound"] = ob
    srv.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris", "locale": "fr",
         "from_name": "ACME Onboarding", "from_addr": ACME_FROM},
    ])
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(srv.var / "outbox")}},
        {"name": "dkim", "settings": {"key_dir": str(srv.var / "dkim"),
                                      "selector": "test"}},
    ])
    srv.write_config()
    srv.start()
    return srv


@pytest.fixture(scope="module")
def srv(servers):
    s = outbound_server(servers)
    s.add_account("ACME", "contact")
    s.add_account("OPEN", "any")
    return s


def outbox(srv):
    d = srv.var / "outbox"
    return sorted(d.glob("*.eml")) if d.is_dir() else []


def wait_outbox(srv, n, timeout=None):
    deadline = time.monotonic() + T(timeout or 30)
    while time.monotonic() < deadline:
        files = outbox(srv)
        if len(files) >= n:
            return files
        time.sleep(0.05)
    return outbox(srv)


def dns_for(srv):
    """python3-dkim's dnsfunc, answering from the TXT records the dkim
    plugin wrote when it made its keys."""
    def dnsfunc(name, timeout=5):
        for txt in (srv.var / "dkim").glob("*.txt"):
            text = txt.read_text()
            owner = text.split()[0].rstrip(".")
            if owner + "." == name.decode() or owner == name.decode().rstrip("."):
                return "".join(re.findall(r'"([^"]*)"', text)).encode()
        return b""
    return dnsfunc


def settled(srv, o, timeout=None):
    """The outbound row once delivery is over: serve's runner may have
    claimed it before the CLI's own attempt, then it is still "sending"
    when `invite` returns."""
    deadline = time.monotonic() + T(timeout or 30)
    while o["state"] in ("queued", "sending") and time.monotonic() < deadline:
        time.sleep(0.05)
        o = {r["id"]: r for r in srv.cli_json("queue", "list")}[o["id"]]
    return o


def invite(srv, dossier, *extra):
    return settled(srv, srv.cli_json("invite", dossier, *extra))


def parse(path):
    return email.message_from_bytes(Path(path).read_bytes(),
                                    policy=email.policy.default)


def test_invite_writes_a_signed_invitation(srv):
    addr = srv.create_dossier("ACME", contact=CONTACT)
    did = srv.dossier_id(addr)
    before = set(outbox(srv))
    o = invite(srv, did, "--documents", "ID card, Proof of address",
               "--due", "2026-12-15")
    assert o["state"] == "sent", o
    assert o["kind"] == "invitation" and o["rcpt"] == CONTACT
    assert re.match(r"^b-[a-z2-7]{26}@dossiers\.example$", o["mail_from"])
    new = [p for p in wait_outbox(srv, len(before) + 1) if p not in before]
    assert len(new) == 1
    raw = new[0].read_bytes()
    # CRLF canonical, no line over 998 octets
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(l) for l in raw.split(b"\r\n")) <= 998
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m["To"].addresses[0].addr_spec == CONTACT
    assert m["Reply-To"].addresses[0].addr_spec == addr
    assert m["From"].addresses[0].addr_spec == ACME_FROM
    assert m.get_content_type() == "multipart/alternative"
    text = m.get_body(("plain",)).get_content()
    html = m.get_body(("html",)).get_content()
    for body in (text, html):
        assert "ID card" in body and "Proof of address" in body
        assert addr in body
        assert "ACME SAS" in body          # legal identity in the footer
    assert "2026-12-15" in text or "15" in text
    # the envelope sidecar: the VERP sender, the contact
    env = json.loads(new[0].with_suffix(".json").read_text())
    assert env["mail_from"] == o["mail_from"] and env["rcpt"] == CONTACT
    # DKIM: valid for an independent verifier, d= the From domain
    assert raw.startswith(b"DKIM-Signature:")
    sig = m["DKIM-Signature"]
    assert "d=acme.example" in sig.replace(" ", "")
    assert dkim.verify(raw, dnsfunc=dns_for(srv))
    tampered = raw.replace(b"Subject:", b"Subject: X", 1)
    assert not dkim.verify(tampered, dnsfunc=dns_for(srv))
    # the history records it
    kinds = [e["kind"] for e in srv.show(addr)["events"]]
    assert "outbound.queued" in kinds and "outbound.sent" in kinds


def test_reply_to_the_invitation_files_the_document(srv):
    addr = srv.create_dossier("ACME", contact=CONTACT)
    o = invite(srv, srv.dossier_id(addr), "--documents", "Passport")
    inv = [p for p in outbox(srv)
           if parse(p)["Message-ID"].strip("<>") == o["message_id"]]
    assert len(inv) == 1
    reply_to = parse(inv[0])["Reply-To"].addresses[0].addr_spec
    pdf = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
    msg = EmailMessage()
    msg["From"] = CONTACT
    msg["To"] = reply_to
    msg["Subject"] = "Re: " + str(parse(inv[0])["Subject"])
    msg.set_content("Here is my passport.")
    msg.add_attachment(pdf, maintype="application", subtype="pdf",
                       filename="passport.pdf")
    before = len(outbox(srv))
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(20)) as s:
        s.send_message(msg, from_addr=CONTACT, to_addrs=[reply_to])
    d = srv.show(addr)
    docs = [x for x in d["documents"] if x["filename"] == "passport.pdf"]
    assert len(docs) == 1
    assert H.sha256(srv.document_get(docs[0]["id"])) == H.sha256(pdf)
    # the contact gets a receipt naming the document
    files = wait_outbox(srv, before + 1)
    receipts = [parse(p) for p in files[before:]]
    receipts = [m for m in receipts
                if m["To"].addresses[0].addr_spec == CONTACT]
    assert len(receipts) == 1
    assert "passport.pdf" in receipts[0].get_body(("plain",)).get_content()


def test_no_receipt_for_a_sender_nobody_vouched_for(srv):
    addr = srv.create_dossier("OPEN", contact=CONTACT)
    msg = EmailMessage()
    msg["From"] = "stranger@elsewhere.example"
    msg["To"] = addr
    msg["Subject"] = "docs"
    msg.set_content("see attached")
    msg.add_attachment(b"hello\n", maintype="text", subtype="plain",
                       filename="note.txt")
    before = len(outbox(srv))
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(20)) as s:
        s.send_message(msg)
    assert [x["filename"] for x in srv.show(addr)["documents"]] == ["note.txt"]
    # A receipt is queued before the 250 (intake_receipt runs between the
    # commit and the reply): an empty queue now is final, no sleep needed.
    rows = srv.cli_json("queue", "list", "--account", "OPEN")
    assert [r for r in rows if r["kind"] == "receipt"] == []
    assert len(outbox(srv)) == before    # policy "any": no backscatter


def test_reminders_follow_the_schedule_and_stop_when_documents_arrive(srv):
    addr = srv.create_dossier("ACME", contact=CONTACT)
    did = srv.dossier_id(addr)
    invite(srv, did, "--documents", "Payslip")
    now = int(time.time())
    day = 86400
    assert srv.cli_json("remind", "--now", now + 1 * day)["queued"] == 0
    assert srv.cli_json("remind", "--now", now + 4 * day)["queued"] >= 1
    rem = [r for r in srv.cli_json("queue", "list", "--account", "ACME")
           if r["kind"] == "reminder" and r["dossier_id"] == did]
    assert len(rem) == 1 and rem[0]["state"] == "sent"
    # the same day again: reminder 1 is not sent twice
    srv.cli_json("remind", "--now", now + 4 * day)
    rem = [r for r in srv.cli_json("queue", "list", "--account", "ACME")
           if r["kind"] == "reminder" and r["dossier_id"] == did]
    assert len(rem) == 1
    # a document arrives: no second reminder
    msg = EmailMessage()
    msg["From"] = CONTACT
    msg["To"] = addr
    msg["Subject"] = "payslip"
    msg.set_content("attached")
    msg.add_attachment(b"%PDF-1.4\n%%EOF\n", maintype="application",
                       subtype="pdf", filename="payslip.pdf")
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(20)) as s:
        s.send_message(msg)
    srv.cli_json("remind", "--now", now + 8 * day)
    rem = [r for r in srv.cli_json("queue", "list", "--account", "ACME")
           if r["kind"] == "reminder" and r["dossier_id"] == did]
    assert len(rem) == 1


def dsn_for(verp, rcpt, status="5.1.1", diag="550 5.1.1 <%s>: user unknown"):
    boundary = "dsn-boundary-1"
    return ("From: MAILER-DAEMON@mx.client.example\r\n"
            "To: %s\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status;"
            " boundary=\"%s\"\r\n\r\n"
            "--%s\r\nContent-Type: text/plain\r\n\r\n"
            "Your message could not be delivered.\r\n"
            "--%s\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.client.example\r\n\r\n"
            "Final-Recipient: rfc822; %s\r\n"
            "Action: failed\r\n"
            "Status: %s\r\n"
            "Diagnostic-Code: smtp; %s\r\n\r\n"
            "--%s--\r\n" % (verp, boundary, boundary, boundary, rcpt,
                            status, diag % rcpt, boundary)).encode()


def test_a_dsn_marks_the_message_bounced_and_suppresses(srv):
    victim = "gone@client.example"
    addr = srv.create_dossier("ACME", contact=victim)
    did = srv.dossier_id(addr)
    o = invite(srv, did)
    assert o["state"] == "sent"
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(20)) as s:
        s.ehlo("mx.client.example")
        code, _ = s.mail("<>")
        assert code == 250
        code, text = s.rcpt(o["mail_from"])
        assert code == 250, text
        code, text = s.data(dsn_for(o["mail_from"], victim))
        assert code == 250, text
    rows = {r["id"]: r for r in srv.cli_json("queue", "list")}
    assert rows[o["id"]]["state"] == "bounced"
    assert rows[o["id"]]["last_enhanced"] == "5.1.1"
    assert "user unknown" in rows[o["id"]]["last_text"]
    kinds = [e["kind"] for e in srv.show(addr)["events"]]
    assert "outbound.bounced" in kinds
    # suppressed: a new invitation to that address is refused
    p = srv.cli("invite", did, check=False)
    assert p.returncode == 1 and "suppressed" in p.stderr


def test_bounce_addresses_we_did_not_issue_are_refused(srv):
    addr = srv.create_dossier("ACME", contact=CONTACT)
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO mx.example").code == 250
        assert c.cmd("MAIL FROM:<>").code == 250
        r = c.cmd("RCPT TO:<b-%s@dossiers.example>" % ("a" * 26))
        assert (r.code, r.enhanced) == (550, "5.1.1")
        # dossier mail and bounce reports do not share a transaction
        o = invite(srv, srv.dossier_id(addr))
        assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<%s>" % CONTACT).code == 250
        assert c.cmd("RCPT TO:<%s>" % addr).code == 250
        r = c.cmd("RCPT TO:<%s>" % o["mail_from"])
        assert (r.code, r.enhanced) == (452, "4.5.3")


def test_template_render_previews_the_message(srv, tmp_path):
    data = {"contact": {"name": "Claire", "email": CONTACT},
            "dossier": {"ref": "KYC-1", "address": "d-x@dossiers.example",
                        "due": "", "has_due": False},
            "items": [{"label": "Avis d'imposition <2025>",
                       "address": "d-x+avis@dossiers.example",
                       "mailto": "mailto:d-x+avis@dossiers.example"}],
            "has_items": True,
            "account": {"name": "ACME", "legal_name": "ACME SAS",
                        "legal_address": "Paris", "from_name": "ACME",
                        "from_addr": ACME_FROM},
            "now": "2026-11-26"}
    f = tmp_path / "data.json"
    f.write_text(json.dumps(data))
    out = srv.cli("template", "render", "invitation", "--locale", "fr",
                  "--account", "ACME", "--data", f).stdout
    m = email.message_from_string(out, policy=email.policy.default)
    assert m["To"].addresses[0].addr_spec == CONTACT
    assert "Avis d'imposition <2025>" in m.get_body(("plain",)).get_content()
    # HTML is escaped: data never opens markup
    html = m.get_body(("html",)).get_content()
    assert "Avis d'imposition &lt;2025&gt;" in html
    assert "<2025>" not in html
    p = srv.cli("template", "render", "../../etc/passwd", "--data", f,
                check=False)
    assert p.returncode == 1

"""
Mail in through SMTP from real clients (swaks, smtplib): attachments are
filed in the dossier with their exact bytes, recipients and senders are
checked at RCPT, size limits hold, disallowed real types are refused, a
duplicate delivery adds nothing, and EHLO advertises exactly what the
server does.
"""
import email.policy
import os
import smtplib
import subprocess
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

import postdoc_harness as H
from postdoc_harness import T, sha256

SENDER = "alice@sender.example"


@pytest.fixture(scope="module")
def srv(servers):
    s = servers()
    s.add_account("BASIC")
    s.add_account("STRICT")
    s.add_account("CONTACTONLY", "contact")
    s.add_account("PARTNERS", "domains:sender.example,partner.example")
    return s


def fresh(srv, account="BASIC", contact=SENDER):
    return srv.create_dossier(account, contact=contact)


def swaks(srv, to, attachments, sender=SENDER, extra=()):
    """attachments: [(name, mime_type, path)].  Returns swaks' output."""
    cmd = ["swaks", "--server", "127.0.0.1:%d" % srv.smtp_port,
           "--helo", "client.test", "--from", sender, "--to", to,
           "--timeout", str(T(30)), "--header", "Subject: swaks test"]
    for name, ctype, path in attachments:
        cmd += ["--attach-type", ctype, "--attach-name", name,
                "--attach", "@%s" % path]
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=T(60))
    return p


def swaks_queue_id(p):
    for line in p.stdout.splitlines():
        if line.startswith("<") and " 250 " in line and "queued as" in line:
            return H.queue_id(line)
    return None


def smtp_send(srv, rcpts, msg_bytes, sender=SENDER):
    """smtplib MAIL/RCPT/DATA; returns (code, text) of the DATA reply."""
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, local_hostname="client.test",
                      timeout=T(30)) as s:
        s.ehlo()
        code, resp = s.mail(sender)
        assert code == 250, (code, resp)
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, (r, code, resp)
        code, resp = s.data(msg_bytes)
        return code, resp.decode("utf-8", "replace")


def docs_by_name(show):
    return {d["filename"]: d for d in show["documents"]}


def assert_nothing_stored(srv, addr, db_messages_before):
    d = srv.show(addr)
    assert d["messages"] == [] and d["documents"] == [], d
    assert srv.db_count("messages") == db_messages_before
    assert srv.wait_spool_empty() == []


def test_swaks_one_attachment_is_filed_with_exact_bytes(srv, tmp):
    addr = fresh(srv)
    pdf = H.make_pdf("one-attachment")
    (tmp / "report.pdf").write_bytes(pdf)
    p = swaks(srv, addr, [("report.pdf", "application/pdf",
                           tmp / "report.pdf")])
    assert p.returncode == 0, p.stdout + p.stderr
    qid = swaks_queue_id(p)
    assert qid, "no '250 ... queued as' in swaks output:\n" + p.stdout
    d = srv.show(addr)
    assert len(d["messages"]) == 1, d
    m = d["messages"][0]
    assert m["queue_id"] == qid
    assert m["mail_from"] == SENDER
    assert m["rcpt_to"] == addr
    assert m["client_ip"] == "127.0.0.1"
    assert m["helo"] == "client.test"
    assert not m["tls"] and not m["lmtp"]
    assert m["subject"] == "swaks test"
    docs = docs_by_name(d)
    assert set(docs) == {"report.pdf"}, d["documents"]
    doc = docs["report.pdf"]
    assert doc["size"] == len(pdf)
    assert doc["sha256"] == sha256(pdf)
    assert doc["sniffed_type"] == "application/pdf"
    assert doc["declared_type"] == "application/pdf"
    assert doc["message_id"] == m["id"]
    assert srv.document_get(doc["id"]) == pdf
    # The raw message is kept as received: it hashes to what show says.
    raw = srv.message_get(m["id"])
    assert sha256(raw) == m["sha256"] and len(raw) == m["size"]
    assert b"Subject: swaks test" in raw


def test_swaks_several_attachments(srv, tmp):
    addr = fresh(srv)
    files = {
        "scan.pdf": ("application/pdf", H.make_pdf("several")),
        "photo.png": ("image/png", H.make_png("several")),
        "notes.txt": ("text/plain", b"line one\nline two\n"),
    }
    atts = []
    for name, (ctype, data) in files.items():
        (tmp / name).write_bytes(data)
        atts.append((name, ctype, tmp / name))
    p = swaks(srv, addr, atts)
    assert p.returncode == 0, p.stdout + p.stderr
    assert swaks_queue_id(p)
    d = srv.show(addr)
    assert len(d["messages"]) == 1
    docs = docs_by_name(d)
    assert set(docs) == set(files), d["documents"]
    for name, (ctype, data) in files.items():
        assert docs[name]["sha256"] == sha256(data), name
        assert docs[name]["size"] == len(data), name
        assert docs[name]["sniffed_type"] == ctype, (name, docs[name])
        assert srv.document_get(docs[name]["id"]) == data, name


def test_nested_message_rfc822_attachment_is_filed(srv):
    addr = fresh(srv)
    inner_pdf = H.make_pdf("inner")
    inner = MIMEMultipart()
    inner["From"] = "colleague@partner.example"
    inner["Subject"] = "the inner one"
    inner.attach(MIMEText("see the contract\n"))
    att = MIMEApplication(inner_pdf, "pdf")
    att.add_header("Content-Disposition", "attachment",
                   filename="contract.pdf")
    inner.attach(att)
    outer = MIMEMultipart()
    outer["From"] = SENDER
    outer["To"] = addr
    outer["Subject"] = "Fwd: the inner one"
    outer.attach(MIMEText("forwarding\n"))
    outer.attach(MIMEMessage(inner))
    raw = outer.as_bytes(policy=email.policy.SMTP)
    code, text = smtp_send(srv, [addr], raw)
    assert code == 250, text
    d = srv.show(addr)
    docs = docs_by_name(d)
    assert "contract.pdf" in docs, d["documents"]
    assert docs["contract.pdf"]["sha256"] == sha256(inner_pdf)
    assert srv.document_get(docs["contract.pdf"]["id"]) == inner_pdf
    assert srv.message_get(d["messages"][0]["id"]) == raw


def test_rfc2231_filename_is_decoded(srv):
    addr = fresh(srv)
    pdf = H.make_pdf("resume")
    raw = ("From: %s\r\nTo: <%s>\r\nSubject: cv\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
           "--b1\r\nContent-Type: text/plain\r\n\r\nmy cv\r\n"
           "--b1\r\nContent-Type: application/pdf\r\n"
           "Content-Disposition: attachment;\r\n"
           " filename*=UTF-8''r%%C3%%A9sum%%C3%%A9.pdf\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n" % (SENDER, addr))
    import base64
    raw = raw.encode() + base64.encodebytes(pdf).replace(b"\n", b"\r\n") \
        + b"--b1--\r\n"
    code, text = smtp_send(srv, [addr], raw)
    assert code == 250, text
    docs = docs_by_name(srv.show(addr))
    assert "r\u00e9sum\u00e9.pdf" in docs, list(docs)
    assert docs["r\u00e9sum\u00e9.pdf"]["sha256"] == sha256(pdf)


def test_unknown_recipient_550_511(srv):
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
        for rcpt in ("d-aaaaaaaaaaaaaaaaaaaaaaaaaa@dossiers.example",
                     "d-zz@dossiers.example", "postmaster-x@dossiers.example"):
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            assert (r.code, r.enhanced) == (550, "5.1.1"), (rcpt, r)
        # The session goes on: a real dossier is still accepted.
        r = c.cmd("RCPT TO:<%s>" % fresh(srv))
        assert r.code == 250, r


@pytest.mark.parametrize("account,good,bad", [
    ("CONTACTONLY", "alice@sender.example", "bob@sender.example"),
    ("PARTNERS", "carol@partner.example", "mallory@evil.example"),
])
def test_sender_policy_refuses_at_rcpt_550_571(srv, account, good, bad):
    addr = fresh(srv, account, contact="alice@sender.example")
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<%s>" % bad).code == 250
        r = c.cmd("RCPT TO:<%s>" % addr)
        assert (r.code, r.enhanced) == (550, "5.7.1"), r
        assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<%s>" % good).code == 250
        r = c.cmd("RCPT TO:<%s>" % addr)
        assert r.code == 250, r


def test_declared_size_over_limit_552_534(srv):
    limit = srv.limits["message_size_max"]
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, limit + 1))
        assert (r.code, r.enhanced) == (552, "5.3.4"), r
        r = c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, limit))
        assert r.code == 250, r


def test_size_lie_is_caught_while_streaming(srv):
    addr = fresh(srv)
    before = srv.db_count("messages")
    limit = srv.limits["message_size_max"]
    line = b"x" * 76 + b"\r\n"
    body = (b"From: <%s>\r\nSubject: lie\r\n\r\n" % SENDER.encode()
            + line * (limit // len(line) + 20000))
    assert len(body) > limit
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<%s> SIZE=100" % SENDER).code == 250
        assert c.cmd("RCPT TO:<%s>" % addr).code == 250
        assert c.cmd("DATA").code == 354
        c.send(body + b".\r\n")
        r = c.reply(T(30))
        assert (r.code, r.enhanced) == (552, "5.3.4"), r
        # The session survives the rejection.
        assert c.cmd("RSET").code == 250
    assert_nothing_stored(srv, addr, before)


def test_disallowed_real_type_554_571(srv, tmp):
    """A PE executable named invoice.pdf and declared application/pdf is
    refused by its real (libmagic) type; the reply names file and type."""
    addr = fresh(srv)
    before = srv.db_count("messages")
    pe = H.make_pe()
    real = H.libmagic_type(pe, tmp)
    assert real != "application/pdf"
    (tmp / "invoice.pdf").write_bytes(pe)
    p = swaks(srv, addr, [("invoice.pdf", "application/pdf",
                           tmp / "invoice.pdf")])
    assert p.returncode != 0
    final = [l for l in p.stdout.splitlines()
             if l.startswith("<**") and " 554 " in l]
    assert final, "no 554 in swaks output:\n" + p.stdout
    assert "5.7.1" in final[0], final
    assert "invoice.pdf" in final[0], final
    assert real in final[0], (real, final)
    assert_nothing_stored(srv, addr, before)


def test_account_allow_list_is_per_account(srv, tmp):
    """STRICT accepts only PDF: a PNG the global list allows is refused."""
    addr = fresh(srv, "STRICT")
    png = H.make_png("strict")
    (tmp / "pic.png").write_bytes(png)
    p = swaks(srv, addr, [("pic.png", "image/png", tmp / "pic.png")])
    assert p.returncode != 0
    assert any(l.startswith("<**") and " 554 5.7.1 " in l and "pic.png" in l
               for l in p.stdout.splitlines()), p.stdout
    pdf = H.make_pdf("strict")
    (tmp / "ok.pdf").write_bytes(pdf)
    p = swaks(srv, addr, [("ok.pdf", "application/pdf", tmp / "ok.pdf")])
    assert p.returncode == 0, p.stdout
    docs = docs_by_name(srv.show(addr))
    assert set(docs) == {"ok.pdf"}


def test_duplicate_delivery_is_acknowledged_but_not_duplicated(srv):
    addr = fresh(srv)
    pdf = H.make_pdf("dup")
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = addr
    msg["Subject"] = "twice"
    msg["Message-ID"] = "<dup-1@sender.example>"
    msg.set_content("same message twice\n")
    msg.add_attachment(pdf, maintype="application", subtype="pdf",
                       filename="dup.pdf")
    raw = msg.as_bytes(policy=email.policy.SMTP)
    code1, t1 = smtp_send(srv, [addr], raw)
    code2, t2 = smtp_send(srv, [addr], raw)
    assert code1 == 250, t1
    assert code2 == 250, t2
    d = srv.show(addr)
    assert len(d["messages"]) == 1, d["messages"]
    assert len(d["documents"]) == 1, d["documents"]
    kinds = [e["kind"] for e in d["events"]]
    assert kinds.count("message.duplicate") == 1, kinds


def test_ehlo_keywords_are_exactly_the_supported_ones(srv):
    with H.Conn(srv.smtp_port) as c:
        r = c.cmd("EHLO client.test")
        assert r.code == 250
        kw = H.ehlo_keywords(r)
    assert set(kw) == {"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8",
                       "ENHANCEDSTATUSCODES"}, r.lines
    assert kw["SIZE"] == [str(srv.limits["message_size_max"])]
    # No TLS configured on this server: STARTTLS must not be accepted.
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd("STARTTLS")
        assert 500 <= r.code < 600, r


def test_multiple_recipients_in_one_transaction(srv):
    a, b = fresh(srv), fresh(srv)
    pdf = H.make_pdf("two-rcpts")
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = "%s, %s" % (a, b)
    msg["Subject"] = "for both"
    msg.set_content("both dossiers\n")
    msg.add_attachment(pdf, maintype="application", subtype="pdf",
                       filename="both.pdf")
    code, text = smtp_send(srv, [a, b], msg.as_bytes(policy=email.policy.SMTP))
    assert code == 250, text
    qid = H.queue_id(text)
    assert qid, text
    for addr in (a, b):
        d = srv.show(addr)
        assert len(d["messages"]) == 1, (addr, d["messages"])
        assert d["messages"][0]["rcpt_to"] == addr
        docs = docs_by_name(d)
        assert set(docs) == {"both.pdf"}, (addr, d["documents"])
        assert srv.document_get(docs["both.pdf"]["id"]) == pdf

"""
STARTTLS (RFC 3207) with a test certificate: advertised only when a
certificate is configured, a real TLS session with smtplib, and the
CVE-2011-0411 plaintext injection: commands pipelined behind STARTTLS
in the same write are discarded, never answered inside or outside TLS.
"""
import email.policy
import smtplib
import ssl
from email.message import EmailMessage

import pytest

import postdoc_harness as H
from postdoc_harness import T

SENDER = "alice@sender.example"


@pytest.fixture(scope="module")
def srv(servers, tls_pair):
    s = servers(tls=tls_pair)
    s.add_account("TLS", "any")
    return s


def client_context(tls_pair):
    ctx = ssl.create_default_context(cafile=str(tls_pair[0]))
    ctx.check_hostname = True
    return ctx


def test_starttls_advertised_and_not_again_after(srv, tls_pair):
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30),
                      local_hostname="client.test") as s:
        s.ehlo()
        assert s.has_extn("starttls")
        code, _ = s.starttls(context=client_context(tls_pair))
        assert code == 220
        s.ehlo()
        assert not s.has_extn("starttls")
        assert s.has_extn("pipelining")


def test_message_over_tls_is_stored_with_tls_flag(srv, tls_pair):
    addr = srv.create_dossier("TLS", contact=SENDER)
    pdf = H.make_pdf("tls")
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = addr
    msg["Subject"] = "over tls"
    msg.set_content("encrypted\n")
    msg.add_attachment(pdf, maintype="application", subtype="pdf",
                       filename="secret.pdf")
    raw = msg.as_bytes(policy=email.policy.SMTP)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30),
                      local_hostname="client.test") as s:
        s.starttls(context=client_context(tls_pair))
        s.ehlo()
        assert s.mail(SENDER)[0] == 250
        assert s.rcpt(addr)[0] == 250
        code, text = s.data(raw)
        assert code == 250, text
    d = srv.show(addr)
    assert len(d["messages"]) == 1
    assert d["messages"][0]["tls"]
    assert srv.message_get(d["messages"][0]["id"]) == raw
    docs = {x["filename"]: x for x in d["documents"]}
    assert srv.document_get(docs["secret.pdf"]["id"]) == pdf


def test_plaintext_injected_after_starttls_is_discarded(srv, tls_pair):
    """CVE-2011-0411: 'STARTTLS\\r\\nRSET\\r\\nMAIL FROM:...' in one write.
    The 220 comes in plaintext, then nothing else: the handshake
    succeeds (no plaintext reply in the way), and inside TLS the first
    reply is the one to our own EHLO; the injected MAIL left no state
    (RCPT without MAIL is a bad sequence)."""
    c = H.Conn(srv.smtp_port)
    try:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<mallory@evil.example>\r\n")
        r = c.reply()
        assert (r.code, r.enhanced) == (220, "2.0.0"), r
        assert c.buf == b"", "plaintext after the 220: %r" % c.buf
        c.sock.settimeout(T(10))
        tls = client_context(tls_pair).wrap_socket(
            c.sock, server_hostname="localhost")
        c.sock = tls
        r = c.cmd("EHLO client.test")
        assert r.code == 250 and len(r.lines) > 1, (
            "first reply inside TLS is not the EHLO reply: %s" % r)
        addr = srv.create_dossier("TLS", contact=SENDER)
        r = c.cmd("RCPT TO:<%s>" % addr)
        assert (r.code, r.enhanced) == (503, "5.5.1"), (
            "injected MAIL FROM survived STARTTLS: %s" % r)
        assert c.cmd("NOOP").code == 250
        assert c.cmd("QUIT").code == 221
    finally:
        c.close()


def test_starttls_twice_is_refused(srv, tls_pair):
    c = H.Conn(srv.smtp_port)
    try:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("STARTTLS").code == 220
        c.sock = client_context(tls_pair).wrap_socket(
            c.sock, server_hostname="localhost")
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd("STARTTLS")
        assert 500 <= r.code < 600, r
    finally:
        c.close()

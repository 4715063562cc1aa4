"""
test_refused_file.py - refused_file per account and signature parts.

With refused_file = "drop-file" a file refused by its type (the filetype
plugin) or by the scanner (clamav, a real clamd) is left out and the rest
is filed: messages.refused records it, the history has a
document.refused line, and the receipt names the file and why, with the
types the dossier's items ask for (fr and en).  A message whose every file
is refused is accepted with no document (the raw message keeps the
bytes).  The default ("reject-message") still refuses the whole message.

Signature parts are not documents: a message signed with S/MIME
(openssl smime -sign, a test key) or PGP (multipart/signed by hand) with a
PDF files the PDF, under a PDF-only allow-list, and says it was signed.
"""
import base64
import email
import email.policy
import json
import subprocess
from email.message import EmailMessage
from email.policy import SMTP

import pytest

import clamd_peer as C
import postdoc_harness as H

SENDER = H.CORPUS_CONTACT


def drop_server(factory, clamd=None):
    """Accounts DROP (drop-file, English receipts), DROPFR (drop-file,
    French) and KEEP (the default); the file transport for receipts;
    clamav first when a clamd is given."""
    srv = factory(start=False)
    srv.sections["outbound"] = {
        "transport": "file", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0}
    srv.sections["accounts"] = H.LcList([
        {"name": "DROP", "locale": "en", "refused_file": "drop-file"},
        {"name": "DROPFR", "locale": "fr", "refused_file": "drop-file"},
        {"name": "KEEP", "locale": "en"}])
    plugins = []
    if clamd is not None:
        plugins.append({"name": "clamav",
                        "settings": {"socket": str(clamd.socket)}})
    plugins += [{"name": "filetype", "settings": {
        "allow": ["application/pdf", "image/png", "text/plain"]}},
        {"name": "file", "settings": {"dir": str(srv.var / "outbox")}}]
    srv.sections["plugins"] = H.LcList(plugins)
    srv.write_config()
    srv.start()
    for a in ("DROP", "DROPFR", "KEEP"):
        srv.add_account(a, "contact")
    return srv


def dossier(srv, account):
    return srv.cli("dossier", "create", "--account", account, "--contact",
                   SENDER, "--ref", "R-%s-%d" % (account, next(H._counter)),
                   "--item", "Payslip|PDF, PNG").stdout.strip()


def message(*files):
    m = EmailMessage()
    m["From"] = SENDER
    m["To"] = "dossier"
    m["Subject"] = "documents"
    m.set_content("here they are\n")
    for name, data, ctype in files:
        main, sub = ctype.split("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return m.as_bytes(policy=SMTP)


def send(srv, addr, data):
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], data)
    c.close()
    return r


def last_message(srv, addr):
    rows = srv.query("SELECT id, refused, signed FROM messages WHERE "
                     "dossier_id = ? ORDER BY id DESC LIMIT 1",
                     srv.dossier_id(addr))
    assert rows, "no message stored"
    return rows[0]


def docs(srv, addr):
    return sorted(r[0] for r in srv.query(
        "SELECT filename FROM documents WHERE dossier_id = ?",
        srv.dossier_id(addr)))


def receipt(srv, addr):
    """The receipt's text part, once the file transport wrote it."""
    def find():
        for p in sorted((srv.var / "outbox").glob("*.eml")):
            m = email.message_from_bytes(p.read_bytes(),
                                         policy=email.policy.default)
            if m["Reply-To"] and addr.split("@")[0] in str(m["Reply-To"]):
                return m
        return None
    m = H.wait_for(lambda: (srv.var / "outbox").is_dir() and find(), 20,
                   "the receipt in the outbox")
    return m.get_body(("plain",)).get_content()


@pytest.fixture(scope="module")
def srv(servers):
    return drop_server(servers)


def test_drop_file_leaves_the_file_out_and_files_the_rest(srv):
    addr = dossier(srv, "DROP")
    r = send(srv, addr, message(("payslip.pdf", H.make_pdf("p1"),
                                 "application/pdf"),
                                ("setup.exe", H.make_pe(),
                                 "application/octet-stream")))
    assert r.code == 250, r
    assert docs(srv, addr) == ["payslip.pdf"]
    _, refused, _ = last_message(srv, addr)
    got = json.loads(refused)
    assert len(got) == 1 and got[0]["filename"] == "setup.exe", got
    assert got[0]["kind"] == "type", got
    assert "portable-executable" in got[0]["type"] or \
        "dosexec" in got[0]["type"], got
    assert "setup.exe" in got[0]["reason"], got
    shown = srv.show(addr)
    ev = [e for e in shown["events"] if e["kind"] == "document.refused"]
    assert len(ev) == 1 and "filename=setup.exe" in ev[0]["detail"], ev
    # dossier show: the message says what was left out, and why.
    assert [e["filename"] for e in shown["messages"][0]["refused"]] == \
        ["setup.exe"]
    text = srv.cli("dossier", "show", srv.dossier_id(addr)).stdout
    assert 'left out: "setup.exe"' in text, text
    text = receipt(srv, addr)
    assert "payslip.pdf" in text, text
    assert '"setup.exe"' in text and "not one this file accepts" in text, \
        text
    assert "Accepted: PDF, PNG" in text, text


def test_every_file_refused_is_accepted_with_no_document(srv):
    addr = dossier(srv, "DROPFR")
    pe = H.make_pe()
    r = send(srv, addr, message(("a.exe", pe, "application/octet-stream")))
    assert r.code == 250, r
    assert docs(srv, addr) == []
    msg_id, refused, _ = last_message(srv, addr)
    assert [e["filename"] for e in json.loads(refused)] == ["a.exe"]
    # Nothing lost: the raw message still carries the bytes.
    raw = srv.message_get(msg_id)
    m = email.message_from_bytes(raw, policy=email.policy.default)
    att = [p for p in m.iter_attachments()]
    assert att and att[0].get_content() == pe
    text = receipt(srv, addr)
    assert "aucun de ses fichiers n'a pu être classé" in text, text
    assert "« a.exe »" in text and "n'est pas accepté" in text, text
    assert "Types acceptés : PDF, PNG" in text, text


def test_reject_message_is_still_the_default(srv):
    addr = dossier(srv, "KEEP")
    r = send(srv, addr, message(("payslip.pdf", H.make_pdf("p2"),
                                 "application/pdf"),
                                ("setup.exe", H.make_pe(),
                                 "application/octet-stream")))
    assert r.code == 554 and "setup.exe" in r.text, r
    assert srv.query("SELECT count(*) FROM messages WHERE dossier_id = ?",
                     srv.dossier_id(addr)) == [(0,)]


@pytest.mark.skipif(not C.have_clamd(), reason="clamd not installed")
def test_malware_under_drop_file_is_dropped_never_stored(own_servers,
                                                         tmp_path):
    clamd = C.Clamd(tmp_path / "clamd").start()
    try:
        srv = drop_server(own_servers, clamd)
        addr = dossier(srv, "DROP")
        r = send(srv, addr, message(("notes.txt", C.EICAR, "text/plain"),
                                    ("payslip.pdf", H.make_pdf("p3"),
                                     "application/pdf")))
        assert r.code == 250, r
        assert docs(srv, addr) == ["payslip.pdf"]
        assert srv.query("SELECT scan FROM documents WHERE dossier_id = ?",
                         srv.dossier_id(addr)) == [("clean",)]
        assert [d["scan"] for d in srv.show(addr)["documents"]] == ["clean"]
        _, refused, _ = last_message(srv, addr)
        got = json.loads(refused)
        assert [(e["filename"], e["kind"]) for e in got] == \
            [("notes.txt", "malware")], got
        assert C.EICAR_SIG in got[0]["reason"], got
        # No blob holds the EICAR bytes as a document.
        assert H.sha256(C.EICAR) not in [r[0] for r in srv.query(
            "SELECT sha256 FROM documents")]
        text = receipt(srv, addr)
        assert '"notes.txt"' in text and "malware scan" in text, text
    finally:
        clamd.stop()


# ---- signature parts ---------------------------------------------------

@pytest.fixture(scope="module")
def smime_key(tmp_path_factory):
    d = tmp_path_factory.mktemp("smime")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-subj", "/CN=alice@sender.example", "-days",
                    "2", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return d, cert, key


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def smime_signed(keys, pdf, opaque=False):
    d, cert, key = keys
    inner = EmailMessage()
    inner.set_content("signed documents\n")
    inner.add_attachment(pdf, maintype="application", subtype="pdf",
                         filename="contract.pdf")
    body = inner.as_bytes(policy=SMTP)
    # Only the MIME entity is signed: drop the top-level headers
    # but the Content-* ones.
    src = d / "in.eml"
    src.write_bytes(body)
    args = ["openssl", "smime", "-sign", "-in", str(src), "-signer",
            str(cert), "-inkey", str(key), "-from", SENDER, "-to",
            "dossier", "-subject", "signed"]
    if opaque:
        args.append("-nodetach")
    out = subprocess.run(args, check=True, capture_output=True,
                         timeout=60).stdout
    return crlf(out)


def pgp_signed(pdf):
    inner = EmailMessage()
    inner.set_content("signed documents\n")
    inner.add_attachment(pdf, maintype="application", subtype="pdf",
                         filename="contract.pdf")
    part = inner.as_bytes(policy=SMTP).split(b"\r\n\r\n", 1)
    headers = b"\r\n".join(h for h in part[0].split(b"\r\n")
                           if h.lower().startswith(b"content-")
                           or h.startswith((b" ", b"\t")))
    b = b"pgpsig-boundary-42"
    sig = (b"-----BEGIN PGP SIGNATURE-----\r\n\r\n"
           b"iQEzBAEBCAAdFiEEAAAAAAAAAAAAAAAAAAAAAAAAAAAFAmAAAAAACgkQAAAAAAAA\r\n"
           b"=AAAA\r\n-----END PGP SIGNATURE-----\r\n")
    return (b"From: " + SENDER.encode() + b"\r\nTo: dossier\r\n"
            b"Subject: pgp signed\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/signed; micalg=pgp-sha256;\r\n"
            b" protocol=\"application/pgp-signature\"; boundary=\"" + b +
            b"\"\r\n\r\n--" + b + b"\r\n" + headers + b"\r\n\r\n" + part[1] +
            b"\r\n--" + b + b"\r\nContent-Type: application/pgp-signature;"
            b" name=\"signature.asc\"\r\nContent-Disposition: attachment;"
            b" filename=\"signature.asc\"\r\n\r\n" + sig + b"--" + b +
            b"--\r\n")


@pytest.fixture(scope="module")
def strict(servers):
    """The harness's default plugins: account STRICT allows PDF only."""
    s = servers()
    s.add_account("STRICT", "contact")
    return s


def test_smime_detached_signature_is_not_a_document(strict, smime_key):
    addr = strict.create_dossier("STRICT")
    pdf = H.make_pdf("smime")
    r = send(strict, addr, smime_signed(smime_key, pdf))
    assert r.code == 250, r
    assert docs(strict, addr) == ["contract.pdf"]
    msg_id, refused, signed = last_message(strict, addr)
    assert signed == "smime" and refused == ""
    raw = strict.message_get(msg_id)
    assert b"smime.p7s" in raw      # kept with the raw message
    shown = strict.show(addr)
    assert [d["filename"] for d in shown["documents"]] == ["contract.pdf"]
    assert shown["messages"][0]["signed"] == "smime"
    assert "signed (smime)" in strict.cli("dossier", "show",
                                          strict.dossier_id(addr)).stdout


def test_smime_opaque_signed_data_files_what_it_carries(strict, smime_key):
    """smime.p7m (signed-data): the PDF is inside the CMS envelope; it
    is taken out and filed, the envelope stays in the raw message."""
    addr = strict.create_dossier("STRICT")
    pdf = H.make_pdf("opaque")
    r = send(strict, addr, smime_signed(smime_key, pdf, opaque=True))
    assert r.code == 250, r
    msg_id, _, signed = last_message(strict, addr)
    assert signed == "smime"
    assert docs(strict, addr) == ["contract.pdf"]
    doc = strict.show(addr)["documents"][0]
    assert strict.document_get(doc["id"]) == pdf
    assert b"smime.p7m" in strict.message_get(msg_id)


def test_garbage_signed_data_is_kept_raw_not_filed(strict):
    """A pkcs7-mime part that is no CMS: nothing to take out; the
    message is filed, the bytes stay in the raw copy."""
    addr = strict.create_dossier("STRICT")
    raw = (b"From: " + SENDER.encode() + b"\r\nTo: d\r\nSubject: p7m\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime;"
           b" smime-type=signed-data; name=smime.p7m\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           b"bm90IGEgQ01TIHN0cnVjdHVyZQ==\r\n")
    r = send(strict, addr, raw)
    assert r.code == 250, r
    assert docs(strict, addr) == []
    assert last_message(strict, addr)[2] == "smime"


def test_pgp_signature_is_not_a_document(strict):
    addr = strict.create_dossier("STRICT")
    r = send(strict, addr, pgp_signed(H.make_pdf("pgp")))
    assert r.code == 250, r
    assert docs(strict, addr) == ["contract.pdf"]
    _, _, signed = last_message(strict, addr)
    assert signed == "pgp"


def test_lmtp_each_recipient_by_its_own_account(srv):
    """One message, two dossiers: the drop-file account files the PDF and
    records the refusal; the reject-message one refuses the message."""
    import smtplib
    drop, keep = dossier(srv, "DROP"), dossier(srv, "KEEP")
    raw = message(("payslip.pdf", H.make_pdf("lmtp"), "application/pdf"),
                  ("run.exe", H.make_pe(), "application/octet-stream"))
    with smtplib.LMTP("127.0.0.1", srv.lmtp_port, timeout=H.T(30)) as s:
        assert s.ehlo("client.test")[0] == 250
        assert s.mail(SENDER)[0] == 250
        assert s.rcpt(drop)[0] == 250 and s.rcpt(keep)[0] == 250
        replies = [s.data(raw), s.getreply()]
    assert replies[0][0] == 250, replies
    assert replies[1][0] == 554 and b"run.exe" in replies[1][1], replies
    assert docs(srv, drop) == ["payslip.pdf"]
    assert [e["filename"] for e in json.loads(last_message(srv, drop)[1])] \
        == ["run.exe"]
    assert srv.query("SELECT count(*) FROM messages WHERE dossier_id = ?",
                     srv.dossier_id(keep)) == [(0,)]


def opaque_signed(keys, inner):
    """smime.p7m (signed-data) carrying `inner` byte for byte (openssl
    cms -binary: no canonicalisation), in a message of its own."""
    d, cert, key = keys
    src = d / ("raw-%d" % next(H._counter))
    src.write_bytes(inner)
    der = subprocess.run(["openssl", "cms", "-sign", "-binary",
                          "-nodetach", "-outform", "DER", "-in", str(src),
                          "-signer", str(cert), "-inkey", str(key)],
                         check=True, capture_output=True,
                         timeout=60).stdout
    b64 = base64.encodebytes(der).replace(b"\n", b"\r\n")
    return (b"From: " + SENDER.encode() + b"\r\nTo: d\r\nSubject: p7m\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime;"
            b" smime-type=signed-data; name=smime.p7m\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64)


@pytest.mark.parametrize("line", [76, 9000])
def test_signed_data_with_a_part_without_header_break_refused(strict,
                                                              smime_key,
                                                              line):
    """Issue 16 follow-up: inside a signed-data part, a part whose body
    follows its headers with no empty line was parsed without the
    parser's warnings and filed empty (or lost); refused now like the
    plain one (554 5.6.0), nothing stored."""
    addr = strict.create_dossier("STRICT")
    inner = (b"Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"
             b"--b0\r\nContent-Type: text/plain\r\n\r\nSee.\r\n"
             b"--b0\r\nContent-Type: application/pdf\r\n"
             b"Content-Disposition: attachment; filename=\"x.pdf\"\r\n"
             + b"TVqQ" + b"A" * (line - 4) + b"\r\nAAAA\r\n--b0--\r\n")
    r = send(strict, addr, opaque_signed(smime_key, inner))
    assert (r.code, r.enhanced) == (554, "5.6.0"), r
    assert docs(strict, addr) == []
    assert strict.show(addr)["messages"] == []


def test_signed_data_with_a_well_formed_part_still_filed(strict,
                                                         smime_key):
    """The same envelope with the empty line in place: the PDF is
    filed (the inner parse's checks refuse only what they should)."""
    addr = strict.create_dossier("STRICT")
    pdf = H.make_pdf("inner-ok")
    inner = (b"Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"
             b"--b0\r\nContent-Type: text/plain\r\n\r\nSee.\r\n"
             b"--b0\r\nContent-Type: application/pdf\r\n"
             b"Content-Disposition: attachment; filename=\"x.pdf\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n"
             + base64.encodebytes(pdf).replace(b"\n", b"\r\n")
             + b"--b0--\r\n")
    r = send(strict, addr, opaque_signed(smime_key, inner))
    assert r.code == 250, r
    assert docs(strict, addr) == ["x.pdf"]

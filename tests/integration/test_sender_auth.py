"""
Sender authentication (issue 16): SPF, DKIM and DMARC through one
resolver, a real nsd on loopback serving the test domains' records
(dns_peer.py), over a real `postdoc serve` and smtplib from 127.0.0.1.

Domains, as the zones below publish them:
- example.fr: SPF allows 192.0.2.10; DKIM key sel1; DMARC p=reject.
- client.fr: SPF allows 192.0.2.1 (her provider); keys sel1
  (python3-dkim) and pd (Postdoc's own dkim plugin); DMARC p=reject.
- evil.example: SPF "+all" and a DKIM key: the forger's own valid
  signature.
- norecords.example: a zone with no SPF, DKIM or DMARC record.

Over SMTP the client is 127.0.0.1: libspf2 gives any loopback client a
free pass without reading the record; Postdoc reports SPF "none" for it
(a local relay says nothing about the sender), so there DKIM vouches.
SPF pass and fail for real addresses are checked with `postdoc auth
check --ip`.

Messages are signed by python3-dkim and by Postdoc's dkim plugin (an
invitation from the file transport's outbox, fed back through SMTP).
"""
import base64
import json
import smtplib
import subprocess
import tarfile
from email.message import EmailMessage
from email.utils import make_msgid

import dkim
import pytest

import postdoc_harness as H
import webhook_receiver as W
from dns_peer import NsdPeer
from postdoc_harness import T

PDF = (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n"
       b"<< /Root 1 0 R >>\n%%EOF\n")


def rsa_key(path):
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(path), "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return path.read_bytes(), "v=DKIM1; k=rsa; p=" + \
        base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return {name: rsa_key(d / ("%s.pem" % name))
            for name in ("example", "client", "plugin", "evil", "wrong")}, d


@pytest.fixture(scope="module")
def nsd(keys, tmp_path_factory):
    k, _ = keys
    dmarc = "v=DMARC1; p=reject; adkim=r; aspf=r"
    peer = NsdPeer(tmp_path_factory.mktemp("dns"), {
        "example.fr": [("@", "TXT", "v=spf1 ip4:192.0.2.10 -all"),
                       ("sel1._domainkey", "TXT", k["example"][1]),
                       ("_dmarc", "TXT", dmarc)],
        "client.fr": [("@", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
                      ("sel1._domainkey", "TXT", k["client"][1]),
                      ("pd._domainkey", "TXT", k["plugin"][1]),
                      ("_dmarc", "TXT", dmarc)],
        "evil.example": [("@", "TXT", "v=spf1 +all"),
                         ("sel1._domainkey", "TXT", k["evil"][1])],
        "norecords.example": [("www", "A", "192.0.2.80")],
    })
    peer.start()
    yield peer
    peer.stop()


ACCOUNTS = [
    {"name": "SPFDKIM", "sender_auth": "spf-or-dkim"},
    {"name": "DMARCACC", "sender_auth": "dmarc"},
    {"name": "MARKED", "sender_auth": "spf-or-dkim", "auth_fail": "mark"},
    {"name": "SIGNER", "legal_name": "Client SARL",
     "from_addr": "office@client.fr"},
]


SECRET = "whsec-sender-auth-0123456789abcdef"


@pytest.fixture(scope="module")
def recv():
    r = W.Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def srv(servers, nsd, keys, recv):
    _, kdir = keys
    s = servers(start=False)
    s.sections["events"] = {"interval_ms": 100, "retry_base": 1,
                            "retry_cap": 2, "max_age": 3600}
    s.sections["dns"] = {"server": nsd.server, "timeout_ms": 3000}
    s.sections["auth"] = {"checks": True}
    s.sections["accounts"] = H.LcList(ACCOUNTS)
    s.sections["outbound"] = {
        "transport": "file", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0}
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(s.var / "outbox")}},
        {"name": "dkim", "settings": {"key_dir": str(s.var / "dkim"),
         "keys": H.LcList([{"domain": "client.fr", "selector": "pd",
                            "key_file": str(kdir / "plugin.pem")}])}},
        W.webhook_plugin(SECRET, recv, account="MARKED"),
    ])
    s.api_port = H.free_port()
    s.sections["api"] = {"listen": "127.0.0.1:%d" % s.api_port}
    s.write_config()
    s.start()
    for name in ("SPFDKIM", "DMARCACC", "MARKED", "SIGNER"):
        s.add_account(name, "contact")
    return s


def message(sender, subject="documents", body="Here they are.\n",
            from_hdr=None):
    m = EmailMessage()
    m["From"] = from_hdr or sender
    m["To"] = "dossier@dossiers.example"
    m["Subject"] = subject
    m["Message-ID"] = make_msgid(domain="test.example")
    m["Date"] = "Mon, 07 Dec 2026 10:00:00 +0000"
    m.set_content(body)
    m.add_attachment(PDF, maintype="application", subtype="pdf",
                     filename="avis.pdf")
    return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def sign(raw, domain, key, selector=b"sel1"):
    sig = dkim.sign(raw, selector, domain.encode(), key,
                    include_headers=[b"from", b"to", b"subject",
                                     b"message-id", b"date"])
    return sig.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + raw


def deliver(srv, mail_from, rcpt, raw):
    """(code, text) of the end of DATA, or of the refusal before it."""
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(60)) as c:
        c.ehlo("mx.test.example")
        try:
            c.sendmail(mail_from, [rcpt], raw)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients[rcpt]
            return code, text.decode()
        return 250, ""


def dossier(srv, account, contact):
    return srv.create_dossier(account, contact=contact)


def last_message(srv, address):
    did = srv.dossier_id(address)
    rows = srv.query("SELECT spf, dkim, dmarc, sender_pass, auth_results "
                     "FROM messages WHERE dossier_id = ? ORDER BY id DESC",
                     did)
    return rows[0] if rows else None


# ---- postdoc auth check, on files ---------------------------------------

def auth_check(srv, tmp, raw, ip, mail_from):
    f = tmp / "m.eml"
    f.write_bytes(raw)
    return srv.cli_json("auth", "check", str(f), "--ip", ip,
                        "--mail-from", mail_from, "--helo", "mx.test")


def test_cli_spf_dkim_dmarc_pass(srv, keys, tmp):
    k, _ = keys
    raw = sign(message("zoe@example.fr"), "example.fr", k["example"][0])
    v = auth_check(srv, tmp, raw, "192.0.2.10", "zoe@example.fr")
    assert (v["spf"], v["dkim"], v["dmarc"]) == ("pass", "pass", "pass"), v
    assert v["authentication_results"] == (
        "postdoc.test; spf=pass smtp.mailfrom=zoe@example.fr; "
        "dkim=pass header.d=example.fr; dmarc=pass header.from=example.fr")


def test_cli_spf_fail_other_ip(srv, tmp):
    v = auth_check(srv, tmp, message("zoe@client.fr"), "192.0.2.9",
                   "zoe@client.fr")
    assert (v["spf"], v["dkim"], v["dmarc"]) == ("fail", "none", "fail"), v


def test_cli_spf_pass_unsigned(srv, tmp):
    v = auth_check(srv, tmp, message("zoe@client.fr"), "192.0.2.1",
                   "zoe@client.fr")
    assert (v["spf"], v["dkim"], v["dmarc"]) == ("pass", "none", "pass"), v


def test_cli_missing_records(srv, keys, tmp):
    k, _ = keys
    v = auth_check(srv, tmp, message("a@norecords.example"), "192.0.2.1",
                   "a@norecords.example")
    assert (v["spf"], v["dkim"], v["dmarc"]) == ("none", "none", "none"), v
    # a signature whose key is not published: permerror, not temperror
    raw = sign(message("a@norecords.example"), "norecords.example",
               k["wrong"][0])
    v = auth_check(srv, tmp, raw, "192.0.2.1", "a@norecords.example")
    assert v["dkim"] == "permerror", v
    assert v["signatures"] == [{"domain": "norecords.example",
                                "result": "permerror"}], v


def test_cli_loopback_no_free_ride(srv, tmp):
    """libspf2 alone says pass for any loopback client, record or not."""
    for ip in ("127.0.0.1", "::1"):
        v = auth_check(srv, tmp, message("a@norecords.example"), ip,
                       "a@norecords.example")
        assert v["spf"] == "none", v


def test_cli_wrong_key_and_tampered(srv, keys, tmp):
    k, _ = keys
    raw = sign(message("zoe@client.fr"), "client.fr", k["wrong"][0])
    v = auth_check(srv, tmp, raw, "192.0.2.9", "zoe@client.fr")
    assert v["dkim"] == "fail", v
    raw = sign(message("zoe@client.fr"), "client.fr", k["client"][0])
    raw = raw.replace(b"Here they are.", b"Here they ARE.")
    v = auth_check(srv, tmp, raw, "192.0.2.9", "zoe@client.fr")
    assert v["dkim"] == "fail", v
    assert v["dmarc"] == "fail", v


# ---- intake over SMTP ---------------------------------------------------

def test_dkim_pass_filed(srv, keys):
    k, _ = keys
    addr = dossier(srv, "SPFDKIM", "zoe@client.fr")
    raw = sign(message("zoe@client.fr"), "client.fr", k["client"][0])
    assert deliver(srv, "zoe@client.fr", addr, raw)[0] == 250
    spf, dk, dm, passed, ar = last_message(srv, addr)
    assert (spf, dk, dm, passed) == ("none", "pass", "pass", 1), ar
    assert ar == ("postdoc.test; spf=none smtp.mailfrom=zoe@client.fr; "
                  "dkim=pass header.d=client.fr; dmarc=pass "
                  "header.from=client.fr")


@pytest.mark.parametrize("case", ["wrong-key", "tampered", "unsigned"])
def test_fail_refused(srv, keys, case):
    k, _ = keys
    addr = dossier(srv, "SPFDKIM", "zoe@client.fr")
    raw = message("zoe@client.fr")
    if case != "unsigned":
        raw = sign(raw, "client.fr", k["wrong" if case == "wrong-key"
                                         else "client"][0])
    if case == "tampered":
        raw = raw.replace(b"Here they are.", b"Pay this IBAN.")
    code, text = deliver(srv, "zoe@client.fr", addr, raw)
    assert code == 550, text
    assert text.startswith("5.7.1 SPF/DKIM did not authenticate "
                           "<zoe@client.fr>"), text
    assert last_message(srv, addr) is None


def test_missing_records_refused(srv):
    addr = dossier(srv, "SPFDKIM", "a@norecords.example")
    code, text = deliver(srv, "a@norecords.example", addr,
                         message("a@norecords.example"))
    assert code == 550 and "SPF/DKIM did not authenticate" in text, text


def test_forger_own_signature_refused(srv, keys):
    """evil.example signs validly and even passes SPF for itself: that
    vouches for evil.example, not for zoe@client.fr."""
    k, _ = keys
    addr = dossier(srv, "SPFDKIM", "zoe@client.fr")
    raw = sign(message("zoe@client.fr"), "evil.example", k["evil"][0])
    code, text = deliver(srv, "zoe@client.fr", addr, raw)
    assert code == 550 and "<zoe@client.fr>" in text, text
    assert last_message(srv, addr) is None


def test_dmarc_misaligned_from_refused(srv, keys):
    """A valid example.fr signature, but From: says client.fr: DMARC
    fails for client.fr (d= not aligned with it)."""
    k, _ = keys
    addr = dossier(srv, "DMARCACC", "zoe@example.fr")
    raw = sign(message("zoe@example.fr", from_hdr="Zoe <zoe@client.fr>"),
               "example.fr", k["example"][0])
    code, text = deliver(srv, "zoe@example.fr", addr, raw)
    assert code == 550, text
    assert text.startswith("5.7.1 DMARC did not authenticate"), text
    # DMARC passes for From: client.fr, not aligned with the envelope
    raw = sign(message("zoe@example.fr", from_hdr="Zoe <zoe@client.fr>"),
               "client.fr", k["client"][0])
    code, text = deliver(srv, "zoe@example.fr", addr, raw)
    assert code == 550 and "DMARC" in text, text
    # aligned: filed
    raw = sign(message("zoe@example.fr"), "example.fr", k["example"][0])
    assert deliver(srv, "zoe@example.fr", addr, raw)[0] == 250
    assert last_message(srv, addr)[2:4] == ("pass", 1)


def test_loopback_unsigned_refused(srv):
    """example.fr publishes SPF, but the client is 127.0.0.1: no free
    ride, so an unsigned message does not authenticate."""
    addr = dossier(srv, "SPFDKIM", "zoe@example.fr")
    code, text = deliver(srv, "zoe@example.fr", addr,
                         message("zoe@example.fr"))
    assert code == 550 and "SPF/DKIM" in text, text


def test_signed_by_postdoc_dkim_plugin(srv):
    """An invitation Postdoc signed for office@client.fr (d=client.fr,
    selector pd), taken from the file transport's outbox and sent back
    through SMTP from 127.0.0.1 (SPF fails: only the signature vouches)."""
    out = srv.var / "outbox"
    before = set(out.glob("*.eml")) if out.is_dir() else set()
    ref = srv.create_dossier("SIGNER", contact="bob@example.fr")
    srv.cli("invite", srv.dossier_id(ref))
    new = H.wait_for(lambda: set(out.glob("*.eml")) - before, 30,
                     "the invitation in the outbox")
    raw = sorted(new)[0].read_bytes()
    assert b"DKIM-Signature:" in raw and b"d=client.fr" in raw
    addr = dossier(srv, "SPFDKIM", "office@client.fr")
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    code, text = deliver(srv, "office@client.fr", addr, raw)
    assert code == 250, text
    spf, dk, dm, passed, ar = last_message(srv, addr)
    assert (spf, dk, passed) == ("none", "pass", 1), ar
    assert "dkim=pass header.d=client.fr" in ar


def test_mark_accepts_and_shows(srv, keys):
    k, _ = keys
    addr = dossier(srv, "MARKED", "zoe@client.fr")
    raw = sign(message("zoe@client.fr"), "evil.example", k["evil"][0])
    assert deliver(srv, "zoe@client.fr", addr, raw)[0] == 250
    spf, dk, dm, passed, ar = last_message(srv, addr)
    assert passed == -1 and dk == "pass", ar
    assert "dkim=pass header.d=evil.example" in ar
    shown = srv.show(addr)
    msgs = shown.get("messages") or []
    assert msgs and msgs[0]["auth"]["pass"] is False, shown
    assert msgs[0]["auth"]["dkim"] == "pass"
    assert msgs[0]["auth"]["authentication_results"] == ar
    text = srv.cli("dossier", "show", srv.dossier_id(addr)).stdout
    assert "auth: spf=none dkim=pass (evil.example) dmarc=fail" in text
    assert "NOT authenticated" in text


def test_no_receipt_to_failed_sender(srv, keys):
    """A marked (failed) sender gets no receipt; one who passed does."""
    k, _ = keys
    out = srv.var / "outbox"
    addr = dossier(srv, "MARKED", "zoe@client.fr")
    before = set(out.glob("*.eml")) if out.is_dir() else set()
    raw = message("zoe@client.fr", subject="forged")
    assert deliver(srv, "zoe@client.fr", addr, raw)[0] == 250
    raw = sign(message("zoe@client.fr", subject="genuine"), "client.fr",
               k["client"][0])
    assert deliver(srv, "zoe@client.fr", addr, raw)[0] == 250
    new = H.wait_for(lambda: set(out.glob("*.eml")) - before, 30,
                     "the receipt of the genuine message")
    rows = srv.query("SELECT sender_pass FROM messages WHERE dossier_id = ?"
                     " ORDER BY id", srv.dossier_id(addr))
    assert [r[0] for r in rows] == [-1, 1]
    # serve's queue runs every 100 ms: had the forged message's receipt
    # been queued (before the genuine one), it would be out by now.
    assert len(new) == 1, sorted(new)


def test_dns_down_451(own_servers, tmp, keys):
    """The key of a signature cannot be fetched: temporary, never a
    pass, never a fail."""
    k, _ = keys
    s = own_servers(start=False)
    s.sections["dns"] = {"server": "127.0.0.1@%d" % H.free_port(),
                         "timeout_ms": 300}
    s.sections["auth"] = {"checks": True}
    s.sections["accounts"] = H.LcList([ACCOUNTS[0]])
    s.write_config()
    s.start()
    s.add_account("SPFDKIM", "contact")
    addr = s.create_dossier("SPFDKIM", contact="zoe@example.fr")
    raw = sign(message("zoe@example.fr"), "example.fr", k["example"][0])
    code, text = deliver(s, "zoe@example.fr", addr, raw)
    assert code == 451 and text.startswith("4.7."), text
    assert "try again later" in text
    assert s.db_count("messages") == 0
    v = auth_check(s, tmp, raw, "192.0.2.10", "zoe@example.fr")
    assert (v["spf"], v["dkim"], v["dmarc"]) == (
        "temperror", "temperror", "temperror"), v


def test_api_and_export_show_the_verdict(srv, keys, tmp):
    """The API's messages (checked against openapi.yaml) and the subject
    export carry the verdict; a marked sender's pass is false."""
    from test_api import new_token, validate
    k, _ = keys
    addr = dossier(srv, "MARKED", "zoe@client.fr")
    raw = sign(message("zoe@client.fr"), "client.fr", k["client"][0])
    assert deliver(srv, "zoe@client.fr", addr, raw)[0] == 250
    raw = sign(message("zoe@client.fr"), "evil.example", k["evil"][0])
    assert deliver(srv, "zoe@client.fr", addr, raw)[0] == 250
    H.wait_for(lambda: H._port_open(srv.api_port), 10, "the API")
    tok = new_token(srv, "MARKED", "crm")
    path = "/api/v1/dossiers/%d/messages" % srv.dossier_id(addr)
    p = subprocess.run(["curl", "-sS", "--max-time", str(T(30)), "-H",
                        "Authorization: Bearer " + tok, "-w",
                        "\n%{http_code} %{content_type}",
                        "http://127.0.0.1:%d%s" % (srv.api_port, path)],
                       capture_output=True, text=True, timeout=T(60))
    out, _, tail = p.stdout.rpartition("\n")
    code, _, ctype = tail.partition(" ")
    assert code == "200", p.stdout
    validate("GET", path, 200, ctype, out)
    got = [m["auth"] for m in json.loads(out)["data"]]
    assert sorted(a["pass"] for a in got) == [False, True], got
    bad = [a for a in got if a["pass"] is False][0]
    assert bad["dkim"] == "pass", bad
    assert "header.d=evil.example" in bad["authentication_results"]
    tar = tmp / "zoe.tar"
    srv.cli("subject", "export", "zoe@client.fr", "--account", "MARKED",
            "-o", tar)
    with tarfile.open(tar) as t:
        doc = json.loads(t.extractfile("export.json").read())
    msgs = doc["data"]["messages"]
    # every message zoe sent to MARKED: marked ones and the genuine one
    assert {m["sender_pass"] for m in msgs} == {-1, 1}, msgs
    assert all(m["auth_results"].startswith("postdoc.test; spf=")
               and m["spf"] and m["dkim"] and m["dmarc"] for m in msgs)


def test_webhook_carries_the_verdict(srv, keys, recv):
    """message.received's data gains auth: a marked sender's pass is
    false, so a receiver does not act on it as the client's."""
    k, _ = keys
    addr = dossier(srv, "MARKED", "zoe@client.fr")
    raw = sign(message("zoe@client.fr", subject="webhook forged"),
               "evil.example", k["evil"][0])
    assert deliver(srv, "zoe@client.fr", addr, raw)[0] == 250

    def mine(rs):
        return [r["json"] for r in rs
                if r["json"]["type"] == "message.received"
                and r["json"]["data"].get("subject") == "webhook forged"]
    got = mine(recv.wait_for(lambda rs: mine(rs), timeout=T(30),
                             what="message.received"))
    auth = got[0]["data"]["auth"]
    assert auth["pass"] is False and auth["dkim"] == "pass", auth
    assert auth["authentication_results"].startswith("postdoc.test; spf=")

"""
The mailbox plugin against a real Dovecot (IMAP and POP3 on loopback):
messages put into the Maildir are filed into the dossier their headers
name, with their attachments byte for byte; IMAP moves them to Filed
afterwards, POP3 deletes them; unmatched go to Unmatched; a SIGKILL
between filing and moving does not duplicate documents; a wrong password
is logged and retried with backoff while SMTP still answers; IDLE picks a
new message up within a second or so; a certificate for another name
means no login; a 20 MB message is fetched with bounded memory; an item's
address (d-<token>+<item>) in the headers files under that item.
"""
import os
import re
import signal
import sqlite3
import subprocess
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H
from dovecot_peer import Dovecot
from postdoc_harness import T

PASSWORD = "s3cret-pw"
USERS = {u: PASSWORD for u in ("docs", "pop", "crash", "big", "check",
                                "tlsok", "tlsbad", "tlsca", "bad")}
REPORT = {}


@pytest.fixture(scope="module")
def other_cert(tmp_path_factory):
    """A self-signed certificate for another name only."""
    d = tmp_path_factory.mktemp("tls-other")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-subj", "/CN=other.example", "-days", "2",
                    "-addext", "subjectAltName=DNS:other.example",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def dove(tls_pair, other_cert):
    d = Dovecot(USERS, tls=tls_pair, tls_other=other_cert).start()
    yield d
    d.stop()


def mailbox(name, dove, user=None, **kw):
    mb = {"name": name, "protocol": "imap", "host": "127.0.0.1",
          "port": dove.imap_port, "tls": "none", "user": user or name,
          "password": PASSWORD, "poll_interval": 1, "idle": True}
    mb.update(kw)
    return mb


def mailbox_server(servers, dove, boxes, start=True, limits=None):
    srv = servers(start=False, limits=limits)
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) + [
        {"name": "mailbox", "settings": {
            "state_dir": str(srv.var / "mailbox"),
            "mailboxes": H.LcList(boxes)}}])
    srv.write_config()
    if start:
        srv.start()
    return srv


@pytest.fixture(scope="module")
def srv(servers, dove, tls_pair, other_cert):
    boxes = [
        mailbox("docs", dove),
        mailbox("pop", dove, protocol="pop3", port=dove.pop3_port),
        mailbox("bad", dove, password="wrong"),
        mailbox("tlsok", dove, port=dove.imaps_port, tls="implicit",
                ca_file=str(tls_pair[0]), verify=True),
        # A trusted certificate, but for other.example, not 127.0.0.2.
        mailbox("tlsbad", dove, host="127.0.0.2", port=dove.imaps_port,
                tls="implicit", ca_file=str(other_cert[0]), verify=True),
        # The right name, but signed by nobody ca_file trusts.
        mailbox("tlsca", dove, port=dove.imaps_port, tls="implicit",
                ca_file=str(other_cert[0]), verify=True),
    ]
    s = mailbox_server(servers, dove, boxes)
    s.add_account("ACME", "any")
    return s


def message(to, tag, cc=None, extra=None, attachment=None):
    m = EmailMessage()
    m["From"] = "claire@client.example"
    m["To"] = to
    if cc:
        m["Cc"] = cc
    for k, v in (extra or {}).items():
        m[k] = v
    m["Subject"] = "documents " + tag
    m["Message-ID"] = "<%s.%d@client.example>" % (tag, time.time_ns())
    m.set_content("Here they are (%s).\n" % tag)
    pdf = attachment if attachment is not None else H.make_pdf(tag)
    m.add_attachment(pdf, maintype="application", subtype="pdf",
                     filename=tag + ".pdf")
    return m.as_bytes(policy=m.policy.clone(linesep="\r\n")), pdf


def wait_for(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def docs_of(srv, address):
    return srv.show(address).get("documents", [])


def wait_docs(srv, address, n, timeout=None):
    return wait_for(lambda: len(docs_of(srv, address)) >= n and
                    docs_of(srv, address), T(timeout or 30), 0.1) or []


def wait_log(srv, pattern, timeout=10, count=1):
    rx = re.compile(pattern)
    return wait_for(lambda: len(rx.findall(srv.log_text())) >= count,
                    T(timeout), 0.05)


def test_imap_files_by_header_order_and_moves(srv, dove):
    a = srv.create_dossier("ACME")
    b = srv.create_dossier("ACME")
    data1, pdf1 = message(a, "imap-to")
    data2, pdf2 = message("someone@else.example", "imap-cc", cc=b)
    # X-Original-To comes before To: the message goes to b only.
    data3, pdf3 = message(a, "imap-xorig", extra={"X-Original-To": b})
    for d in (data1, data2, data3):
        dove.deliver("docs", d)
    got_a = wait_docs(srv, a, 1)
    got_b = wait_docs(srv, b, 2)
    assert len(got_a) == 1 and len(got_b) == 2, (got_a, got_b)
    assert srv.document_get(got_a[0]["id"]) == pdf1
    assert sorted(srv.document_get(d["id"]) for d in got_b) == \
        sorted([pdf2, pdf3])
    assert wait_for(lambda: dove.count("docs", "Filed") == 3, T(30))
    assert dove.count("docs") == 0
    assert wait_for(lambda: not list(srv.var.glob("mailbox/*.fetch")), 5)


def test_unmatched_goes_to_unmatched_folder(srv, dove):
    data, _ = message("nobody@elsewhere.example", "unmatched")
    before = srv.db_count("documents")
    dove.deliver("docs", data)
    assert wait_for(lambda: dove.count("docs", "Unmatched") == 1, T(30))
    assert wait_for(lambda: dove.count("docs") == 0, T(30))
    assert srv.db_count("documents") == before
    assert "no dossier: set aside" in srv.log_text()


def test_closed_dossier_is_unmatched(srv, dove):
    c = srv.create_dossier("ACME")
    srv.cli("dossier", "close", c)
    data, _ = message(c, "closed")
    dove.deliver("docs", data)
    assert wait_for(lambda: dove.count("docs", "Unmatched") == 2, T(30))


def test_sender_policy_applies_to_return_path(srv, dove):
    srv.add_account("STRICTC", "contact")
    d = srv.create_dossier("STRICTC", contact="claire@client.example")
    bad, _ = message(d, "policy-bad",
                     extra={"Return-Path": "<mallory@evil.example>"})
    good, pdf = message(d, "policy-good",
                        extra={"Return-Path": "<claire@client.example>"})
    dove.deliver("docs", bad)
    dove.deliver("docs", good)
    got = wait_docs(srv, d, 1)
    assert [srv.document_get(x["id"]) for x in got] == [pdf]
    assert wait_for(lambda: dove.count("docs", "Unmatched") == 3, T(30))
    assert "refused (550 5.7.1 sender <mallory@evil.example>" in \
        srv.log_text()


def add_items(srv, addr, slugs):
    """Required items (SQL until `dossier create --item` is on main)."""
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
                        (acct, did, pos, slug, slug, now, now))
        con.commit()
    finally:
        con.close()


def item_of(srv, doc_id):
    rows = srv.query("SELECT i.slug FROM documents d LEFT JOIN"
                     " dossier_items i ON i.id = d.item_id WHERE d.id = ?",
                     doc_id)
    return rows[0][0]


def test_item_addresses_route_like_rcpt(srv, dove):
    d = srv.create_dossier("ACME")
    add_items(srv, d, ["id-card", "proof", "payslip"])
    local, dom = d.split("@")
    plus = lambda slug: "%s+%s@%s" % (local, slug, dom)
    card, pdf1 = message(plus("ID-Card"), "item-to")
    # Delivered-To (the envelope recipient) before To, as for dossiers
    proof, pdf2 = message(d, "item-delivered",
                          extra={"Delivered-To": plus("proof")})
    dove.deliver("docs", card)
    dove.deliver("docs", proof)
    got = wait_docs(srv, d, 2)
    by = {srv.document_get(x["id"]): item_of(srv, x["id"]) for x in got}
    assert by == {pdf1: "id-card", pdf2: "proof"}
    # the plain address: payslip is the only item missing
    plain, pdf3 = message(d, "item-plain")
    dove.deliver("docs", plain)
    got = wait_docs(srv, d, 3)
    assert [item_of(srv, x["id"]) for x in got
            if srv.document_get(x["id"]) == pdf3] == ["payslip"]
    # a closed dossier's item address is no more ours than its own
    srv.cli("dossier", "close", d)
    late, _ = message(plus("id-card"), "item-closed")
    dove.deliver("docs", late)
    assert wait_for(lambda: dove.count("docs", "Unmatched") == 4, T(30))


def test_pop3_files_and_deletes(srv, dove):
    a = srv.create_dossier("ACME")
    data, pdf = message(a, "pop3")
    dove.deliver("pop", data)
    got = wait_docs(srv, a, 1)
    assert len(got) == 1
    assert srv.document_get(got[0]["id"]) == pdf
    assert wait_for(lambda: dove.count("pop") == 0, T(30)), \
        "POP3 message not deleted after filing"


def test_idle_latency(srv, dove):
    assert wait_log(srv, r"mailbox docs: logged in .*\(IDLE\)")
    a = srv.create_dossier("ACME")
    data, _ = message(a, "idle")
    time.sleep(0.5)        # the thread is back in IDLE
    t0 = time.monotonic()
    dove.deliver("docs", data)
    # Without IDLE the plugin would look again only when its IDLE wait
    # ends (30 s at least, mb_imap_idle): filed well within that proves
    # IDLE, without asserting a latency a loaded machine may miss.
    got = wait_for(lambda: srv.db_count("documents") and docs_of(srv, a),
                   min(T(20), 25), 0.02)
    latency = time.monotonic() - t0
    REPORT["idle_latency_s"] = round(latency, 3)
    print("IDLE latency: %.3f s" % latency)
    assert got, "not filed within 20 s: IDLE did not report the message"


def test_wrong_password_backoff_and_smtp_still_answers(srv):
    assert wait_log(srv, r"mailbox bad: login as bad failed", 15, count=3)
    # The third failure is logged just before its "retry in 4s" line:
    # wait for that line itself, not only the failure before it.
    assert wait_log(srv, r"mailbox bad: session ended; retry in 4s", 15)
    log = srv.log_text()
    assert "mailbox bad: session ended; retry in 1s" in log
    assert "mailbox bad: session ended; retry in 2s" in log
    srv.assert_alive()


def test_certificate_mismatch_means_no_login(srv, dove):
    assert wait_log(srv, r"mailbox tlsbad: certificate of 127\.0\.0\.2:\d+ "
                    r"does not verify \(IP address mismatch\)")
    assert wait_log(srv, r"mailbox tlsca: certificate of 127\.0\.0\.1:\d+ "
                    r"does not verify \(self-signed certificate\)")
    assert wait_log(srv, r"mailbox tlsok: logged in")
    log = srv.log_text()
    assert "mailbox tlsbad: logged in" not in log
    assert "mailbox tlsca: logged in" not in log
    dlog = dove.log_text()
    assert "user=<tlsok>" in dlog
    assert "user=<tlsbad>" not in dlog and "user=<tlsca>" not in dlog


def test_sigkill_between_filing_and_move_no_duplicates(own_servers, dove):
    s = mailbox_server(own_servers, dove, [mailbox("crash", dove)])
    s.add_account("ACME", "any")
    a = s.create_dossier("ACME")
    data, pdf = message(a, "crash")
    dove.deliver("crash", data)
    assert len(wait_docs(s, a, 1)) == 1
    assert wait_for(lambda: dove.count("crash", "Filed") == 1, T(30))
    # The state a crash after the commit, before the MOVE and the state
    # file, leaves: the message back in the folder, the old last UID.
    s.kill()
    dove.deliver("crash", data)
    (s.var / "mailbox" / "crash.state").write_text(
        (s.var / "mailbox" / "crash.state").read_text()
        .replace("last_uid 1", "last_uid 0"))
    # And a real race: SIGKILL while a batch is being filed.
    more = [message(a, "crash-%d" % i) for i in range(4)]
    s.start()
    for d, _ in more:
        dove.deliver("crash", d)
    wait_for(lambda: len(docs_of(s, a)) >= 2, T(30), 0.01)
    s.proc.send_signal(signal.SIGKILL)
    s.kill()
    s.start()
    got = wait_docs(s, a, 5, timeout=15)
    assert wait_for(lambda: dove.count("crash") == 0, T(30))
    got = docs_of(s, a)
    shas = [d["sha256"] for d in got]
    assert len(shas) == len(set(shas)) == 5, got
    assert "message.duplicate" in str(s.cli_json("dossier", "show",
                                                 s.dossier_id(a)))


def test_big_message_bounded_memory(servers, dove):
    s = mailbox_server(servers, dove, [mailbox("big", dove)],
                       limits={"message_size_max": 64 * 1024 * 1024})
    s.add_account("ACME", "any")
    a = s.create_dossier("ACME")
    assert wait_log(s, r"mailbox big: logged in")
    time.sleep(0.5)
    idle_hwm = vm_hwm(s.pid)
    blob = os.urandom(15 * 1024 * 1024)
    data, pdf = message(a, "big", attachment=b"%PDF-1.4\n" + blob)
    assert len(data) > 20 * 1000 * 1000
    dove.deliver("big", data)
    got = wait_docs(s, a, 1, timeout=60)
    assert len(got) == 1
    peak = vm_hwm(s.pid)
    REPORT["rss_idle_kb"] = idle_hwm
    REPORT["rss_peak_kb"] = peak
    print("20 MB message (%d octets): VmHWM idle %d kB, peak %d kB "
          "(+%d kB)" % (len(data), idle_hwm, peak, peak - idle_hwm))
    assert s.document_get(got[0]["id"]) == pdf
    assert peak - idle_hwm < 20 * 1024, (idle_hwm, peak)
    assert wait_for(lambda: dove.count("big", "Filed") == 1, T(30))


def vm_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_mailbox_check_reports_and_changes_nothing(servers, dove):
    s = mailbox_server(servers, dove, [mailbox("check", dove)], start=False)
    for i in range(2):
        dove.deliver("check", message("x@y.example", "check%d" % i)[0])
    p = s.cli("mailbox", "check", "check")
    assert "folder INBOX: uidvalidity" in p.stdout, p.stdout
    assert "would fetch 2 message(s)" in p.stdout, p.stdout
    assert len(re.findall(r"uid \d+: \d+ octets", p.stdout)) == 2
    assert dove.count("check") == 2
    assert s.cli("mailbox", "check", "nosuch", check=False).returncode == 1


def test_password_file_must_be_private(servers, dove, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    os.chmod(pw, 0o644)
    box = mailbox("check", dove)
    del box["password"]
    box["password_file"] = str(pw)
    s = mailbox_server(servers, dove, [box], start=False)
    p = s.cli("mailbox", "check", "check", check=False)
    assert p.returncode != 0 and "refused" in p.stderr, p.stderr
    os.chmod(pw, 0o600)
    p = s.cli("mailbox", "check", "check")
    assert "would fetch" in p.stdout

"""
No orphan files (issue 17): blob files that no row names.

- A message refused with 451 after its blobs were written (the database
  held locked by another connection past the busy timeout) leaves no
  attachment or raw-message file behind; after `subject erase` of its
  sender, the erasure test's residue scan of every byte of var/ finds
  neither the attachment nor the address.
- The sweep: an unnamed blob older than store.blob_grace (either fan-out
  layout) is removed at serve's start and by `postdoc purge`; a young
  unnamed one and an old one a row names stay.
- A full disk (a tmpfs var/ the test mounts) is answered 452 4.3.1 (RFC
  3463 X.3.1 mail system full, RFC 5321 452), the log line says ENOSPC,
  nothing is left in var/blobs, and the retry after space returns is
  accepted.
"""
import hashlib
import os
import smtplib
import sqlite3
import subprocess
import threading
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H
from postdoc_harness import T
from test_privacy import scan     # the erasure test's residue scan

SUBJ = "Orla.Refused@client.example"
MAGIC = b"ORPHAN-7c1e-attachment-of-orla-never-stored"
HOUR = 3600


def message(to, frm, attachment, subject="Papers"):
    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Please find my documents attached.\n")
    msg.add_attachment(attachment, maintype="application",
                       subtype="octet-stream", filename="papers.bin")
    return msg


def send(srv, msg, frm, to):
    """(code, text) of the reply to DATA: 250, or the refusal."""
    try:
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(60)) as s:
            s.send_message(msg, from_addr=frm, to_addrs=[to])
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error.decode()
    return 250, ""


def wait_for(cond, what, timeout=30):
    deadline = time.monotonic() + T(timeout)
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def files_holding(srv, needle):
    return [p for p in srv.blob_files() if needle in p.read_bytes()]


def test_refused_after_blobs_leaves_no_residue_after_erase(servers):
    srv = servers()
    srv.add_account("ACME", "any")
    addr = srv.create_dossier("ACME", contact=SUBJ, ref="ORLA-1")
    # something held about the sender, so the erasure has rows to erase
    assert send(srv, message(addr, SUBJ, b"an accepted paper\n"), SUBJ,
                addr)[0] == 250
    # larger than store.inline_max: the raw message is a blob file too
    big = MAGIC + os.urandom(96 * 1024)
    result = {}
    lock = sqlite3.connect(str(srv.var / "postdoc.db"), timeout=30,
                           isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        t = threading.Thread(target=lambda: result.update(r=send(
            srv, message(addr, SUBJ, big, "Refused"), SUBJ, addr)))
        t.start()
        # the blobs are written before the commit waits for the lock
        wait_for(lambda: files_holding(srv, MAGIC) and files_holding(
            srv, b"Subject: Refused"), "the attachment and raw message blobs")
        t.join(T(60))
        assert not t.is_alive()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    code, text = result["r"]
    assert code == 451, (code, text)
    # refused: no file of it is left, not even before the erasure
    assert files_holding(srv, MAGIC) == []
    assert files_holding(srv, b"Subject: Refused") == []
    assert list((srv.var / "blobs" / "tmp").iterdir()) == []
    rep = srv.cli_json("subject", "erase", SUBJ, "--operator", "dpo")
    assert rep["erased"]["messages"] == 1
    assert scan(srv, [MAGIC, SUBJ.encode(), b"orla.refused"]) == []
    # the server goes on storing once the database is free again
    other = srv.create_dossier("ACME", contact="other@client.example")
    assert send(srv, message(other, "other@client.example", b"later\n"),
                "other@client.example", other)[0] == 250


def plant(srv, data, old_layout=False, age=0):
    sha = hashlib.sha256(data).hexdigest()
    d = srv.var / "blobs" / sha[:2]
    if old_layout:
        d = d / sha[2:4]
    d.mkdir(parents=True, exist_ok=True)
    p = d / sha
    p.write_bytes(data)
    if age:
        t = time.time() - age
        os.utime(p, (t, t))
    return p


def test_sweep_removes_old_unnamed_blobs_only(servers):
    srv = servers()
    srv.add_account("ACME", "any")
    addr = srv.create_dossier("ACME", contact="sam@client.example")
    named_data = b"a named document, old but kept\n"
    assert send(srv, message(addr, "sam@client.example", named_data),
                "sam@client.example", addr)[0] == 250
    named = [p for p in srv.blob_files()
             if p.name == hashlib.sha256(named_data).hexdigest()]
    assert len(named) == 1
    srv.stop_and_check()
    t = time.time() - 2 * HOUR           # store.blob_grace is 3600 s
    os.utime(named[0], (t, t))
    old = plant(srv, b"left by a crash between blob and row\n", age=2 * HOUR)
    old2 = plant(srv, b"the same, in the old layout\n", old_layout=True,
                 age=2 * HOUR)
    young = plant(srv, b"written a moment ago, row on its way\n")
    srv.start()
    # at start
    wait_for(lambda: not old.exists() and not old2.exists(),
             "the sweep at start")
    assert young.exists() and named[0].exists()
    assert "blob sweep: removed 2 blob(s)" in srv.log_text()
    # and by the purge
    old3 = plant(srv, b"another crash's leftover\n", age=2 * HOUR)
    rep = srv.cli_json("purge")
    assert rep["swept_blobs"] == 1 and not old3.exists()
    assert young.exists() and named[0].exists()
    got = srv.document_get(srv.query("SELECT id FROM documents WHERE"
                                     " sha256 = ?", named[0].name)[0][0])
    assert got == named_data


def test_full_disk_is_452_431_and_leaves_nothing(servers):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    srv = servers(start=False)
    srv.var.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m",
                        "postdoc-full", str(srv.var)], capture_output=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % p.stderr.decode())
    try:
        srv.start()
        srv.add_account("ACME", "any")
        addr = srv.create_dossier("ACME", contact="fay@client.example")
        # held in memory by the session (base64 under 1 MiB): the blob
        # write is what meets the full disk
        att = os.urandom(600 * 1024)
        filler = srv.var / "filler"
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        os.truncate(filler, max(0, filler.stat().st_size - 256 * 1024))
        code, text = send(srv, message(addr, "fay@client.example", att),
                          "fay@client.example", addr)
        assert code == 452 and text.startswith("4.3.1"), (code, text)
        wait_for(lambda: "ENOSPC" in srv.log_text(), "the ENOSPC log line")
        line = [l for l in srv.log_text().splitlines() if "ENOSPC" in l][0]
        assert "blob write" in line and "No space left" in line, line
        assert [b for b in srv.blob_files()
                if att[:4096] in b.read_bytes()] == []
        assert list((srv.var / "blobs" / "tmp").iterdir()) == []
        filler.unlink()
        assert send(srv, message(addr, "fay@client.example", att),
                    "fay@client.example", addr)[0] == 250
        assert len(srv.show(addr)["documents"]) == 1
    finally:
        srv.stop_and_check()
        subprocess.run(["umount", str(srv.var)], check=True)

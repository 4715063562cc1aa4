"""
Small raw messages kept inside the database (store.inline_max), through
the real binary: a message up to inline_max octets is a raw_inline row
(durable with its rows by the batch's WAL fsync) and no blob file; a
larger one, or any with inline_max = 0, is a blob file as before.  Either
way `message get` and the privacy export give the exact bytes back; the
same bytes in two dossiers share one row; the row goes only when no
message names it any more (erasure, retention), and then no byte of it
is left anywhere under var/.
"""
import io
import json
import smtplib
import tarfile
import time

import pytest

import postdoc_harness as H
from postdoc_harness import T

SENDER = "sender@client.example"
DAY = 86400


def raw_message(tag, size, body_tag=b"body"):
    """A unique message of at least `size` octets, CRLF throughout (as
    stored: the server keeps the unstuffed DATA bytes).  body_tag appears
    only in the body (the subject and Message-ID are kept as metadata)."""
    body = b"".join(b"%s line %05d of the raw message\r\n" % (body_tag, i)
                    for i in range(size // 40 + 1))
    return (b"From: " + SENDER.encode() + b"\r\n"
            b"To: undisclosed-recipients:;\r\n"
            b"Subject: raw " + tag + b"\r\n"
            b"Message-ID: <" + tag + b"@client.example>\r\n"
            b"\r\n" + body)


def send(srv, to, raw):
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(20)) as s:
        s.sendmail(SENDER, [to], raw)


def q(srv, sql, *args):
    return srv.query(sql, *args)


def blob_names(srv):
    return {p.name for p in srv.blob_files()}


def messages(srv, addr):
    return srv.show(addr)["messages"]


def scan(srv, needle):
    return [str(p) for p in sorted(srv.var.rglob("*"))
            if p.is_file() and needle in p.read_bytes()]


@pytest.fixture(scope="module")
def srv(servers):
    s = servers(start=False)
    s.sections["store"]["inline_max"] = 8192
    s.sections["privacy"] = {"raw_messages_days": 30}
    s.write_config()
    s.start()
    s.add_account("ACME", "any")
    return s


@pytest.fixture(scope="module")
def zero(servers):
    s = servers(start=False)
    s.sections["store"]["inline_max"] = 0
    s.write_config()
    s.start()
    s.add_account("ACME", "any")
    return s


def test_small_message_is_a_row_not_a_file(srv):
    addr = srv.create_dossier("ACME", contact="ann@client.example")
    raw = raw_message(b"small-1", 2000)
    send(srv, addr, raw)
    (m,) = messages(srv, addr)
    sha = H.sha256(raw)
    assert m["sha256"] == sha
    assert q(srv, "SELECT data FROM raw_inline WHERE sha256 = ?", sha) == \
        [(raw,)]
    assert sha not in blob_names(srv)
    assert srv.message_get(m["id"]) == raw
    assert srv.wait_spool_empty() == []


def break_spool(srv):
    """var/spool replaced by a file: no session can create a spool file
    there, root included.  Returns the undo."""
    spool, aside = srv.var / "spool", srv.var / "spool.aside"
    spool.rename(aside)
    spool.write_bytes(b"not a directory\n")

    def undo():
        spool.unlink()
        aside.rename(spool)
    return undo


def test_messages_in_memory_never_touch_the_spool(srv):
    """Up to 1 MiB (limits.spool_memory_max allowing) a message goes from
    the session to the worker in memory: with the spool unusable, a small
    one becomes an inline row and a 200 KB one a blob file written once;
    a larger one, which must be spooled, gets a clean 451 4.3.0 and its
    retry lands once the spool is back."""
    addr = srv.create_dossier("ACME", contact="ann@client.example")
    small = raw_message(b"nospool-small", 2000)
    mid = raw_message(b"nospool-mid", 200 * 1024)
    big = raw_message(b"nospool-big", 1536 * 1024)
    undo = break_spool(srv)
    try:
        send(srv, addr, small)
        send(srv, addr, mid)
        with pytest.raises(smtplib.SMTPDataError) as e:
            send(srv, addr, big)
        assert e.value.smtp_code == 451
        assert e.value.smtp_error.startswith(b"4.3.0")
    finally:
        undo()
    got = {m["sha256"]: m["id"] for m in messages(srv, addr)}
    assert set(got) == {H.sha256(small), H.sha256(mid)}
    assert H.sha256(small) in srv.raw_inline_shas()
    assert H.sha256(mid) in blob_names(srv)
    assert srv.message_get(got[H.sha256(mid)]) == mid
    send(srv, addr, big)
    assert srv.message_get([m["id"] for m in messages(srv, addr)
                            if m["sha256"] == H.sha256(big)][0]) == big
    assert srv.wait_spool_empty() == []


@pytest.fixture(scope="module")
def nomem(servers):
    s = servers(start=False)
    s.sections["limits"] = dict(s.sections.get("limits", {}),
                                spool_memory_max=0)
    s.write_config()
    s.start()
    s.add_account("ACME", "any")
    return s


def test_spool_memory_max_zero_spools_past_the_first_buffer(nomem):
    """With no memory budget only what fits the first 64 KiB buffer stays
    in memory: a 200 KB message needs the spool (451 while it is gone)."""
    addr = nomem.create_dossier("ACME", contact="ann@client.example")
    small = raw_message(b"nomem-small", 30 * 1024)
    mid = raw_message(b"nomem-mid", 200 * 1024)
    undo = break_spool(nomem)
    try:
        send(nomem, addr, small)
        with pytest.raises(smtplib.SMTPDataError) as e:
            send(nomem, addr, mid)
        assert e.value.smtp_code == 451
    finally:
        undo()
    send(nomem, addr, mid)
    assert {m["sha256"] for m in messages(nomem, addr)} == \
        {H.sha256(small), H.sha256(mid)}


def padded(tag, size):
    """Exactly `size` octets (lines of at most 100)."""
    raw = raw_message(tag, size - 600)
    while size - len(raw) > 100:
        raw += b"y" * 98 + b"\r\n"
    return raw + b"x" * (size - len(raw) - 2) + b"\r\n"


def test_at_the_limit_inline_above_it_a_blob_file(srv):
    addr = srv.create_dossier("ACME", contact="ann@client.example")
    at, above = padded(b"limit-at", 8192), padded(b"limit-above", 8193)
    assert (len(at), len(above)) == (8192, 8193)
    send(srv, addr, at)
    send(srv, addr, above)
    inline, names = srv.raw_inline_shas(), blob_names(srv)
    assert H.sha256(at) in inline and H.sha256(at) not in names
    assert H.sha256(above) in names and H.sha256(above) not in inline
    got = {H.sha256(srv.message_get(m["id"])) for m in messages(srv, addr)}
    assert got == {H.sha256(at), H.sha256(above)}


def test_inline_max_zero_keeps_files(zero):
    addr = zero.create_dossier("ACME", contact="ann@client.example")
    raw = raw_message(b"zero-1", 500)
    send(zero, addr, raw)
    (m,) = messages(zero, addr)
    assert zero.raw_inline_shas() == set()
    assert H.sha256(raw) in blob_names(zero)
    assert zero.message_get(m["id"]) == raw


def test_duplicates_share_one_row(srv):
    a = srv.create_dossier("ACME", contact="ann@client.example")
    b = srv.create_dossier("ACME", contact="ann@client.example")
    raw = raw_message(b"dup-1", 1500)
    sha = H.sha256(raw)
    send(srv, a, raw)
    send(srv, a, raw)           # a client retrying after a lost 250
    send(srv, b, raw)
    assert len(messages(srv, a)) == 1 and len(messages(srv, b)) == 1
    ev = q(srv, "SELECT COUNT(*) FROM events WHERE kind ="
           " 'message.duplicate' AND dossier_id = ?", srv.dossier_id(a))
    assert ev == [(1,)]
    assert q(srv, "SELECT COUNT(*) FROM raw_inline WHERE sha256 = ?", sha) \
        == [(1,)]
    for addr in (a, b):
        assert srv.message_get(messages(srv, addr)[0]["id"]) == raw


def test_export_carries_the_inline_bytes(srv, tmp_path):
    addr = srv.create_dossier("ACME", contact="exp@client.example")
    raw = raw_message(b"export-1", 1200)
    send(srv, addr, raw)
    assert H.sha256(raw) in srv.raw_inline_shas()
    out = tmp_path / "exp.tar"
    srv.cli("subject", "export", "exp@client.example", "--account", "ACME",
            "-o", out)
    with tarfile.open(out, "r:") as t:
        files = {m.name: t.extractfile(m).read() for m in t.getmembers()
                 if m.isfile() and m.name.startswith("messages/")}
    assert list(files.values()) == [raw]


def test_erasure_removes_the_row_with_its_last_message(srv):
    needle = b"erase-me-4c1d9e"
    a = srv.create_dossier("ACME", contact="erin@client.example")
    b = srv.create_dossier("ACME", contact="fred@client.example")
    raw = raw_message(b"erase-1", 900, needle)
    sha = H.sha256(raw)
    send(srv, a, raw)
    send(srv, b, raw)
    srv.cli("subject", "erase", "erin@client.example", "--account", "ACME")
    # fred's dossier still names the bytes: they stay, intact
    assert sha in srv.raw_inline_shas()
    assert srv.message_get(messages(srv, b)[0]["id"]) == raw
    srv.cli("subject", "erase", "fred@client.example", "--account", "ACME")
    assert sha not in srv.raw_inline_shas()
    assert scan(srv, needle) == []


def test_retention_purge_removes_the_row(srv):
    needle = b"purge-me-77ab31"
    addr = srv.create_dossier("ACME", contact="gus@client.example")
    raw = raw_message(b"purge-1", 900, needle)
    send(srv, addr, raw)
    sha = H.sha256(raw)
    assert sha in srv.raw_inline_shas()
    rep = srv.cli_json("purge", "--now", int(time.time()) + 40 * DAY)
    assert rep["purged"]["raw_messages"] >= 1
    assert sha not in srv.raw_inline_shas()
    assert q(srv, "SELECT COUNT(*) FROM messages WHERE sha256 = ?", sha) \
        == [(0,)]
    p = srv.cli("message", "get", messages(srv, addr)[0]["id"], "-o",
                srv.root / "purged.eml", check=False)
    assert p.returncode != 0
    assert scan(srv, needle) == []

"""
The WAL does not grow for ever (issue 17): SQLite reuses postdoc.db-wal
but never shrinks it, and behind a long reader every commit made it
longer (203 MB seen).  With store.wal_size_max set, serve checkpoints and
truncates it once the reader is gone.  A real reader in another process
(Python's sqlite3 in a read transaction), real mail over SMTP, the real
file on disk.
"""
import smtplib
import sqlite3
import time

import postdoc_harness as H
from postdoc_harness import T

SENDER = "sender@client.example"
LIMIT = 1048576                 # store.wal_size_max's minimum


def wal_size(srv):
    p = srv.var / "postdoc.db-wal"
    return p.stat().st_size if p.exists() else 0


def message(i):
    """About 48 KiB: kept inside the database (store.inline_max), so
    each one lands in the WAL."""
    body = b"".join(b"wal test message %04d line %05d\r\n" % (i, n)
                    for n in range(1500))
    return (b"From: " + SENDER.encode() + b"\r\n"
            b"Subject: wal %d\r\n"
            b"Message-ID: <wal-%d@client.example>\r\n\r\n" % (i, i) + body)


def wait_for(pred, what, timeout):
    deadline = time.monotonic() + T(timeout)
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.2)


def test_wal_is_truncated_once_the_long_reader_is_gone(servers):
    srv = servers(start=False)
    srv.sections["store"]["wal_size_max"] = LIMIT
    srv.write_config()
    srv.start()
    srv.add_account("ACME")
    addr = srv.create_dossier("ACME", contact=SENDER)
    reader = sqlite3.connect("file:%s?mode=ro" % (srv.var / "postdoc.db"),
                             uri=True, timeout=10, isolation_level=None)
    try:
        # A read transaction holds its snapshot until it ends: no
        # checkpoint may overwrite what it sees, so the WAL only grows.
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").fetchone()
        i = 0
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(20)) as s:
            while wal_size(srv) <= 2 * LIMIT:
                assert i < 400, "WAL still %d octets" % wal_size(srv)
                s.sendmail(SENDER, [addr], message(i))
                i += 1
        grown = wal_size(srv)
        # serve sees the WAL over the limit and leaves it to the reader,
        # whose snapshot is still the one it began with.
        wait_for(lambda: "a reader holds it" in srv.log_text(),
                 "serve to find the WAL held by the reader", 30)
        assert reader.execute("SELECT count(*) FROM messages"
                              ).fetchone()[0] == 0
        assert wal_size(srv) >= grown
    finally:
        reader.close()
    wait_for(lambda: wal_size(srv) < 65536,
             "the WAL (%d octets) to be truncated" % grown, 60)
    # Nothing lost: every message is in the database, which is sound.
    with srv.db() as c:
        assert c.execute("SELECT count(*) FROM messages").fetchone()[0] \
            == i
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert "WAL truncated" in srv.log_text()
    srv.assert_alive()

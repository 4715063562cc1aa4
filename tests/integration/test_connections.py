"""
Connection accounting: a session counts against limits.connections_max
and limits.connections_per_ip_max while it can still talk to us, not
until its memory is freed.  Driven by Postfix's smtp-source (a new
connection per message, N at a time) right at the per-address limit,
no client may ever see `421 4.7.0 too many connections`; one connection
over the limit still does.  And server.listen_backlog reaches listen(2).
"""
import shutil
import subprocess

import pytest

import postdoc_harness as H
from postdoc_harness import T

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SENDER = "alice@sender.example"
SESSIONS = 32


@pytest.fixture(scope="module")
def srv(servers):
    # The limit is exactly the client's concurrency: one session that
    # still counts after its 221 is one 421.  No greet pause, so the
    # connections turn over as fast as the loop allows.
    s = servers(limits={"connections_per_ip_max": SESSIONS,
                        "greet_pause_ms": 0})
    s.add_account("CONN", "any")
    return s


@pytest.mark.skipif(not shutil.which(SMTP_SOURCE),
                    reason="smtp-source (postfix) not installed")
@pytest.mark.skipif(H.SLOW, reason="under valgrind the loop lags the "
                    "client by more than a turn: a reconnect can be accepted "
                    "before the old session's QUIT is read, so the limit is "
                    "met by timing, not by the accounting this test checks")
def test_smtp_source_at_the_per_address_limit_never_gets_421(srv):
    addr = srv.create_dossier("CONN", contact=SENDER)
    before = srv.log_text().count("too many connections")
    p = subprocess.run([SMTP_SOURCE, "-s", str(SESSIONS), "-m", "2000",
                        "-l", "200", "-M", "client.test", "-f", SENDER,
                        "-t", addr, "127.0.0.1:%d" % srv.smtp_port],
                       capture_output=True, text=True, timeout=T(300))
    assert p.returncode == 0, (p.stdout + p.stderr)[-2000:]
    assert srv.log_text().count("too many connections") == before
    srv.assert_alive()


def test_one_connection_over_the_per_address_limit_gets_421(srv):
    conns = [H.Conn(srv.smtp_port) for _ in range(SESSIONS)]
    try:
        extra = H.Conn(srv.smtp_port, banner=False)
        try:
            r = extra.reply()
            assert (r.code, r.enhanced) == (421, "4.7.0"), r
            assert "too many connections" in r.text
            assert extra.wait_closed()
        finally:
            extra.close()
        # Each client that leaves frees its slot for the next one.
        assert conns[0].cmd("QUIT").code == 221
        assert conns[0].wait_closed()
        nxt = H.Conn(srv.smtp_port)
        assert nxt.cmd("NOOP").code == 250
        nxt.close()
    finally:
        for c in conns:
            c.close()


def listen_queue(port):
    """The backlog of the socket listening on 127.0.0.1:port: for a
    listener, ss(8) shows it as Send-Q."""
    p = subprocess.run(["ss", "-Hltn", "sport = :%d" % port],
                       capture_output=True, text=True, timeout=30,
                       check=True)
    rows = [l.split() for l in p.stdout.splitlines() if l.strip()]
    assert len(rows) == 1, p.stdout
    return int(rows[0][2])


def test_listen_backlog_defaults_to_the_system_maximum(srv):
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())
    assert listen_queue(srv.smtp_port) == somaxconn
    assert listen_queue(srv.lmtp_port) == somaxconn


def test_listen_backlog_is_configurable(servers):
    s = servers(server={"listen_backlog": 77})
    assert listen_queue(s.smtp_port) == 77
    assert listen_queue(s.lmtp_port) == 77

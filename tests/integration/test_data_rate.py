"""
Issue 16, defect 4: a client that trickles its DATA (one byte every few
seconds, each byte resetting data_timeout) held its slot until
session_timeout.  DATA must now average limits.data_rate_min octets a
second over each limits.data_rate_window, and reach its final dot within
limits.data_time_max; otherwise the server itself answers 421 4.4.2 and
closes (RFC 5321 3.8, 4.5.3.2).  Real sockets, small configured values;
the tests wait on the server's 421, never for a whole window.  A slow but
steady client above the minimum is not cut, and the defaults leave room
for a 25 MiB message over a slow link.
"""
import re
import subprocess
import time

import pytest

import postdoc_harness as H
from postdoc_harness import T

SENDER = "alice@sender.example"
RATE, WINDOW, TIME_MAX = 400, 2, 8


@pytest.fixture(scope="module")
def srv(servers):
    s = servers(limits={"data_rate_min": RATE, "data_rate_window": WINDOW,
                        "data_time_max": TIME_MAX, "data_timeout": 5,
                        "session_timeout": 120})
    s.add_account("RATE", "any")
    return s


def in_data(srv, addr):
    c = H.Conn(srv.smtp_port)
    assert c.cmd("EHLO slow.test").code == 250
    assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
    assert c.cmd("RCPT TO:<%s>" % addr).code == 250
    r = c.cmd("DATA")
    assert r.code == 354, r
    return c


def trickle(c, chunk, every, limit):
    """Send `chunk` every `every` seconds until the server says
    something (returned as a Reply) or `limit` seconds pass (None)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if not c.send(chunk):
            break
        got = c.pending(every)
        if got or c.eof:
            c.buf = got
            return c.reply(T(5))
    return None


def stored(srv, addr):
    d = srv.show(addr)
    return d["messages"], d["documents"]


def test_trickle_below_the_minimum_rate_gets_421_and_close(srv):
    addr = srv.create_dossier("RATE")
    c = in_data(srv, addr)
    c.send(b"Subject: slowloris\r\n\r\n")
    t0 = time.monotonic()
    # 2 octets a second, each within data_timeout (5 s) of the last:
    # before this change only session_timeout (120 s here) ended it.
    r = trickle(c, b"x", 0.5, T(30))
    elapsed = time.monotonic() - t0
    assert r is not None, "no answer within %ss" % T(30)
    assert (r.code, r.enhanced) == (421, "4.4.2"), r
    assert "rate below %d" % RATE in r.text, r
    # cut at the end of the first window, not by data_timeout or later
    assert WINDOW - 0.5 <= elapsed < WINDOW + T(4), elapsed
    assert c.wait_closed()
    assert stored(srv, addr) == ([], [])
    assert srv.wait_spool_empty() == []
    H.wait_for(lambda: re.search(r"reject: DATA from 127\.0\.0\.1: 421 "
                                 r"4\.4\.2 .*rate below", srv.log_text()),
               5, "the 421 logged")


def test_steady_but_endless_data_hits_the_time_limit(srv):
    addr = srv.create_dossier("RATE")
    c = in_data(srv, addr)
    c.send(b"Subject: endless\r\n\r\n")
    t0 = time.monotonic()
    # 2000 octets a second: above the minimum in every window, but the
    # final dot never comes.
    r = trickle(c, b"y" * 78 + b"\r\n" + b"z" * 98 + b"\r\n" +
                b"w" * 18 + b"\r\n", 0.1, T(40))
    elapsed = time.monotonic() - t0
    assert r is not None
    assert (r.code, r.enhanced) == (421, "4.4.2"), r
    assert "time limit of %ds" % TIME_MAX in r.text, r
    assert TIME_MAX - 0.5 <= elapsed < TIME_MAX + T(4), elapsed
    assert c.wait_closed()
    assert stored(srv, addr) == ([], [])
    assert srv.wait_spool_empty() == []


def test_slow_but_steady_client_is_not_cut(srv):
    """Three windows at ~2.5 times the minimum, then the dot: 250."""
    addr = srv.create_dossier("RATE")
    c = in_data(srv, addr)
    c.send(b"From: <%s>\r\nSubject: slow link\r\n\r\n" % SENDER.encode())
    line = b"a" * 98 + b"\r\n"          # 100 octets every 0.1 s
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3 * WINDOW + 0.5:
        assert c.send(line)
        assert c.pending(0.1) == b"", "cut while above the minimum"
    r = c.cmd(b".")
    assert r.code == 250, r
    assert len(stored(srv, addr)[0]) == 1
    assert c.cmd("QUIT").code == 221


def test_defaults_leave_room_for_a_25_mib_message_on_a_slow_link(tmp_path):
    out = subprocess.run([H.BIN, "check-config", "-v"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    conf = dict(re.findall(r"^limits\.(\w+) = (\d+)$", out, re.M))
    rate, window, tmax = (int(conf[k]) for k in
                          ("data_rate_min", "data_rate_window",
                           "data_time_max"))
    link = 256000 // 8                  # a 256 kbit/s uplink, in octets/s
    assert 26214400 / link < tmax       # 25 MiB: 819 s of 1200
    assert rate * 8 <= 4000             # at most 4 kbit/s is asked for
    assert window >= int(conf["data_timeout"])  # a stall is data_timeout's

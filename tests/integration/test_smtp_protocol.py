"""
The SMTP state machine's answers to protocol abuse, on raw sockets and
without the corpus: bare CR/LF, NUL, over-long lines, too many
recipients, unknown commands, bad sequences, error and command-timeout
limits, pipelining violations and early talkers, MIME limits, empty and
unparseable messages.  Each test names one rule of the contract.
"""
import socket
import time

import pytest

import postdoc_harness as H
from postdoc_harness import T

SENDER = "alice@sender.example"


@pytest.fixture(scope="module")
def srv(servers):
    s = servers()
    s.add_account("PROTO", "any")
    return s


def session(srv, rcpt=None):
    """Connected, EHLO'd, and with MAIL (and RCPT if given) done."""
    c = H.Conn(srv.smtp_port)
    assert c.cmd("EHLO client.test").code == 250
    if rcpt is not None:
        assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.code == 250, r
    return c


def expect(r, code, enhanced=None):
    assert r is not None, "connection closed, expected %d" % code
    assert r.code == code, r
    if enhanced:
        assert r.enhanced == enhanced, r


def stored(srv, addr):
    d = srv.show(addr)
    return d["messages"], d["documents"]


def test_bare_lf_in_command_550_552_and_close(srv):
    c = H.Conn(srv.smtp_port)
    c.send(b"EHLO client.test\n")
    expect(c.reply(), 550, "5.5.2")
    assert c.wait_closed()


def test_bare_cr_in_command_550_552_and_close(srv):
    c = H.Conn(srv.smtp_port)
    assert c.cmd("EHLO client.test").code == 250
    c.send(b"NOOP\rNOOP\r\n")
    expect(c.reply(), 550, "5.5.2")
    assert c.wait_closed()


@pytest.mark.parametrize("ending", [b"\n", b"\r"], ids=["LF", "CR"])
def test_bare_newline_in_data_550_552_and_close(srv, ending):
    addr = srv.create_dossier("PROTO")
    c = session(srv, addr)
    expect(c.cmd("DATA"), 354)
    c.send(b"Subject: x\r\n\r\nline" + ending + b"more\r\n.\r\n")
    expect(c.reply(), 550, "5.5.2")
    assert c.wait_closed()
    assert stored(srv, addr) == ([], [])


def test_nul_in_data_554_560_and_session_continues(srv):
    addr = srv.create_dossier("PROTO")
    c = session(srv, addr)
    expect(c.cmd("DATA"), 354)
    c.send(b"Subject: x\r\n\r\nnul\x00here\r\n.\r\n")
    expect(c.reply(), 554, "5.6.0")
    expect(c.cmd("NOOP"), 250)
    expect(c.cmd("QUIT"), 221)
    assert stored(srv, addr) == ([], [])


def test_command_pipelined_after_rejected_data_is_answered(srv):
    """RFC 2920: QUIT may follow the end-of-data dot in the same write;
    it must be answered at once, also after a rejected message."""
    addr = srv.create_dossier("PROTO")
    c = session(srv, addr)
    expect(c.cmd("DATA"), 354)
    c.send(b"Subject: x\r\n\r\nnul\x00here\r\n.\r\nQUIT\r\n")
    expect(c.reply(), 554, "5.6.0")
    try:
        r = c.reply(T(1.5))
    except socket.timeout:
        pytest.fail("QUIT written right after the rejected message's "
                    "final dot was not answered within %ss" % T(1.5))
    expect(r, 221)


def test_command_pipelined_after_accepted_data_is_answered(srv):
    addr = srv.create_dossier("PROTO")
    c = session(srv, addr)
    expect(c.cmd("DATA"), 354)
    c.send(b"Subject: ok\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    expect(c.reply(), 250, "2.0.0")
    try:
        r = c.reply(T(1.5))
    except socket.timeout:
        pytest.fail("QUIT written right after the final dot was not "
                    "answered within %ss" % T(1.5))
    expect(r, 221)


def test_overlong_command_500_552_and_session_continues(srv):
    c = H.Conn(srv.smtp_port)
    assert c.cmd("EHLO client.test").code == 250
    line = "NOOP " + "x" * srv.limits["line_max"]
    expect(c.cmd(line), 500, "5.5.2")
    expect(c.cmd("NOOP"), 250)


def test_overlong_data_line_554_560_nothing_stored(srv):
    addr = srv.create_dossier("PROTO")
    c = session(srv, addr)
    expect(c.cmd("DATA"), 354)
    c.send(b"Subject: long\r\n\r\n" + b"y" * (srv.limits["data_line_max"] + 1)
           + b"\r\n.\r\n")
    expect(c.reply(), 554, "5.6.0")
    expect(c.cmd("NOOP"), 250)
    assert stored(srv, addr) == ([], [])
    assert srv.wait_spool_empty() == []


def test_data_line_at_the_limit_is_accepted(srv):
    addr = srv.create_dossier("PROTO")
    c = session(srv, addr)
    expect(c.cmd("DATA"), 354)
    body = b"Subject: edge\r\n\r\n" + b"z" * srv.limits["data_line_max"] \
        + b"\r\n"
    c.send(body + b".\r\n")
    expect(c.reply(), 250)
    msgs, _ = stored(srv, addr)
    assert srv.message_get(msgs[0]["id"]) == body


def test_too_many_recipients_452_453(srv):
    addr = srv.create_dossier("PROTO")
    n = srv.limits["rcpt_max"]
    c = session(srv)
    expect(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    for i in range(n):
        expect(c.cmd("RCPT TO:<%s>" % addr), 250)
    expect(c.cmd("RCPT TO:<%s>" % addr), 452, "4.5.3")
    expect(c.cmd("RSET"), 250)


def test_unknown_command_500_551(srv):
    c = H.Conn(srv.smtp_port)
    expect(c.cmd("XYZZY plugh"), 500, "5.5.1")
    expect(c.cmd("NOOP"), 250)


@pytest.mark.parametrize("cmds", [
    ["MAIL FROM:<alice@sender.example>"],			# before EHLO
    ["EHLO client.test", "RCPT TO:<x@dossiers.example>"],	# no MAIL
    ["EHLO client.test", "DATA"],				# no RCPT
    ["EHLO client.test", "MAIL FROM:<alice@sender.example>",
     "MAIL FROM:<alice@sender.example>"],			# nested MAIL
], ids=["mail-before-ehlo", "rcpt-before-mail", "data-before-rcpt",
        "nested-mail"])
def test_bad_sequence_503_551(srv, cmds):
    c = H.Conn(srv.smtp_port)
    for cmd in cmds[:-1]:
        assert c.cmd(cmd).code == 250
    expect(c.cmd(cmds[-1]), 503, "5.5.1")


def test_too_many_errors_421_470_and_close(srv):
    c = H.Conn(srv.smtp_port)
    limit = srv.limits["error_limit"]
    replies = []
    for i in range(limit + 2):
        r = c.cmd("BOGUS %d" % i)
        if r is None:
            break
        replies.append(r)
        if r.code == 421:
            break
    assert replies[-1].code == 421 and replies[-1].enhanced == "4.7.0", \
        replies[-3:]
    assert len(replies) <= limit + 1
    assert c.wait_closed()


def test_command_timeout_421_442_and_close(srv):
    c = H.Conn(srv.smtp_port)
    t0 = time.monotonic()
    r = c.reply(srv.limits["command_timeout"] + T(3))
    expect(r, 421, "4.4.2")
    assert time.monotonic() - t0 >= srv.limits["command_timeout"] - 0.5
    assert c.wait_closed()


def test_data_timeout_421_and_nothing_stored(srv):
    addr = srv.create_dossier("PROTO")
    c = session(srv, addr)
    expect(c.cmd("DATA"), 354)
    c.send(b"Subject: stalled\r\n\r\nhalf a mess")
    r = c.reply(srv.limits["data_timeout"] + T(4))
    expect(r, 421, "4.4.2")
    assert c.wait_closed()
    assert stored(srv, addr) == ([], [])
    assert srv.wait_spool_empty() == []


def test_data_before_354_554_550_and_close(srv):
    addr = srv.create_dossier("PROTO")
    c = session(srv)
    c.send(("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\nSubject: early\r\n"
            "\r\nbody\r\n.\r\n" % (SENDER, addr)).encode())
    replies = []
    while True:
        r = c.reply()
        if r is None:
            break
        replies.append(r)
    codes = [(r.code, r.enhanced) for r in replies]
    assert (554, "5.5.0") in codes, codes
    assert 354 not in [r.code for r in replies[:codes.index((554, "5.5.0"))]]
    assert stored(srv, addr) == ([], [])


def test_pipelining_after_ehlo_before_reply_554_550_and_close(srv):
    c = H.Conn(srv.smtp_port)
    c.send(b"EHLO client.test\r\nMAIL FROM:<alice@sender.example>\r\n")
    replies = []
    while True:
        r = c.reply()
        if r is None:
            break
        replies.append(r)
    assert replies and (replies[-1].code, replies[-1].enhanced) == (
        554, "5.5.0"), replies
    assert all(r.code != 250 or "PIPELINING" in r.text
               for r in replies[:-1]), replies


def test_early_talker_554_550_and_close(srv):
    c = H.Conn(srv.smtp_port, banner=False)
    c.send(b"EHLO early.test\r\n")
    r = c.reply()
    expect(r, 554, "5.5.0")
    assert c.wait_closed()


def test_greeting_waits_for_greet_pause(srv):
    t0 = time.monotonic()
    c = H.Conn(srv.smtp_port)
    assert time.monotonic() - t0 >= srv.limits["greet_pause_ms"] / 1000.0 \
        - 0.05
    c.close()


def test_mime_part_limit_552_534(srv):
    addr = srv.create_dossier("PROTO")
    n = srv.limits["mime_parts_max"] + 5
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\np%d\r\n" % i
                     for i in range(n))
    data = (b"From: <%s>\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            % SENDER.encode()) + parts + b"--b--\r\n"
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], data)
    expect(r, 552, "5.3.4")
    assert stored(srv, addr) == ([], [])


def nested_message(depth):
    """A message whose multiparts nest `depth` levels deep."""
    part = b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    for i in range(depth):
        b = b"d%d" % i
        part = (b"Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
                b"--%s\r\n" % (b, b) + part + b"--%s--\r\n" % b)
    return (b"From: <%s>\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
            % SENDER.encode()) + part


def test_mime_depth_limit_552_534(srv):
    import email
    addr = srv.create_dossier("PROTO")
    depth = srv.limits["mime_depth_max"] + 4
    data = nested_message(depth)
    # what we send really is that deep
    m, seen = email.message_from_bytes(data), 0
    while m.is_multipart():
        m, seen = m.get_payload(0), seen + 1
    assert seen == depth
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], data)
    expect(r, 552, "5.3.4")
    assert stored(srv, addr) == ([], [])


def test_mime_depth_at_the_limit_is_accepted(srv):
    addr = srv.create_dossier("PROTO")
    data = nested_message(srv.limits["mime_depth_max"] - 1)
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], data)
    expect(r, 250)


def test_attachment_count_limit_552_534(srv):
    addr = srv.create_dossier("PROTO")
    n = srv.limits["attachments_max"] + 1
    parts = b"".join(
        b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment;"
        b" filename=\"f%d.txt\"\r\n\r\nfile %d\r\n" % (i, i) for i in range(n))
    data = (b"From: <%s>\r\nSubject: many\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            % SENDER.encode()) + parts + b"--b--\r\n"
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], data)
    expect(r, 552, "5.3.4")
    assert stored(srv, addr) == ([], [])


def test_empty_message_554_560(srv):
    addr = srv.create_dossier("PROTO")
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], b"")
    expect(r, 554, "5.6.0")
    expect(c.cmd("NOOP"), 250)
    assert stored(srv, addr) == ([], [])


def test_unparseable_message_is_kept_as_unparsed(srv):
    """A message GMime cannot construct (leading continuation line) is
    accepted and kept verbatim, flagged parse_status "unparsed"."""
    addr = srv.create_dossier("PROTO")
    data = b" leading continuation\r\nSubject: broken\r\n\r\nbody\r\n"
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], data)
    expect(r, 250)
    msgs, _ = stored(srv, addr)
    assert len(msgs) == 1
    assert msgs[0]["parse_status"] == "unparsed", msgs[0]
    assert srv.message_get(msgs[0]["id"]) == data


def test_queued_reply_names_the_stored_queue_id(srv):
    addr = srv.create_dossier("PROTO")
    data = b"From: <%s>\r\nSubject: qid\r\n\r\nbody\r\n" % SENDER.encode()
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], data)
    expect(r, 250, "2.0.0")
    assert r.text.startswith("2.0.0 Ok: queued as "), r
    qid = H.queue_id(r.text)
    msgs, _ = stored(srv, addr)
    assert [m["queue_id"] for m in msgs] == [qid]


def test_slowloris_is_cut_off_and_does_not_starve_others(srv):
    """A client trickling one byte every 0.3 s never completes a line: it
    gets 421 4.4.2 after command_timeout (the clock is not reset by each
    byte), and meanwhile another client is served normally."""
    import threading
    slow = H.Conn(srv.smtp_port)
    stop = threading.Event()

    def trickle():
        for b in b"EHLO slowly.trickling.example" * 10:
            if stop.is_set() or not slow.send(bytes([b])):
                return
            time.sleep(0.3)
    t = threading.Thread(target=trickle, daemon=True)
    t0 = time.monotonic()
    t.start()
    try:
        time.sleep(0.5)
        with H.Conn(srv.smtp_port) as c:
            assert c.cmd("EHLO other.test").code == 250
            assert c.cmd("NOOP").code == 250
            assert c.cmd("QUIT").code == 221
        # A clock reset by each byte would answer only after the whole
        # trickle (90 s): a bound of limit + 20 s tells the two apart
        # with room for a loaded machine.
        limit = srv.limits["command_timeout"]
        r = slow.reply(limit + T(20))
        assert r is not None and (r.code, r.enhanced) == (421, "4.4.2"), r
        assert slow.wait_closed(T(10))
        assert time.monotonic() - t0 < limit + T(20)
    finally:
        stop.set()
        t.join()
        slow.close()


def test_whole_pipelined_transaction_then_half_close_gets_every_reply(srv):
    """RFC 2920: a client may write MAIL, RCPT, DATA in one go, then the
    message and QUIT, and shut its side down.  Every reply still comes,
    in order (replies are written straight to the socket, the last of a
    pipelined group carrying the others)."""
    addr = srv.create_dossier("PROTO")
    c = session(srv)
    c.send(("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n"
            % (SENDER, addr)).encode())
    expect(c.reply(), 250, "2.1.0")
    expect(c.reply(), 250, "2.1.5")
    expect(c.reply(), 354)
    c.send(b"Subject: pipelined\r\n\r\nall at once\r\n.\r\nNOOP\r\nQUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    expect(c.reply(), 250, "2.0.0")
    expect(c.reply(), 250, "2.0.0")
    expect(c.reply(), 221)
    assert c.wait_closed()
    assert len(stored(srv, addr)[0]) == 1


def test_stopping_server_says_421_before_closing(servers):
    """A plaintext session open when serve stops is told 421 4.3.2."""
    s = servers()
    c = H.Conn(s.smtp_port)
    expect(c.cmd("EHLO client.test"), 250)
    s.stop_and_check()
    r = c.reply(T(5))
    expect(r, 421, "4.3.2")
    assert "shutting down" in r.text
    assert c.wait_closed()


def test_half_close_right_after_the_data_still_gets_the_250(srv):
    """A client that ends the data and shuts its side down at once (no
    QUIT; `printf ... | nc -N` does this) is owed the 250: the server
    answers, then closes, and the message is stored once."""
    addr = srv.create_dossier("PROTO")
    c = session(srv, addr)
    expect(c.cmd("DATA"), 354)
    c.send(b"Subject: shut\r\n\r\nand gone\r\n.\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    expect(c.reply(T(20)), 250, "2.0.0")
    assert c.wait_closed()
    assert len(stored(srv, addr)[0]) == 1

"""
Logging of `postdoc serve` (docs/operations.md): every line about one
message starts with its id, like Postfix's "<queue id>: ..." - the id the
250 reply quotes for an accepted message, the id drawn at MAIL for a
transaction refused at RCPT or at the end of data, "out-<row id>" for an
outbound message - and session lines before a transaction carry the
session id.  With server.log = "syslog" the same lines reach /dev/log with
facility mail and the tag postdoc[pid]: the test binds /dev/log itself
(only where no syslogd owns it, and only as root).
"""
import fcntl
import os
import re
import socket
import subprocess
import threading
import time
import uuid

import pytest

import postdoc_harness as H
from postdoc_harness import T

# "postdoc[pid]: LEVEL: <rest>" on stderr
STDERR_LINE = re.compile(r"^postdoc\[(\d+)\]: (ERROR|WARN|INFO|DEBUG): (.*)$")
QID = r"[0-9a-f]{16}"
SID = r"[0-9a-f]{12}"


def tag():
    return uuid.uuid4().hex[:8]


def outbound_server(srv):
    srv.sections["outbound"] = {
        "transport": "file", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0}
    srv.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris", "locale": "en",
         "from_name": "ACME", "from_addr": "onboarding@acme.example"}])
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(srv.var / "outbox")}}])
    srv.write_config()


def message(sender, rcpt, body="Hello.\r\n"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: log test\r\n"
            "Message-ID: <%s@client.test>\r\n\r\n%s"
            % (sender, rcpt, tag(), body)).encode()


def accepted(port, sender, rcpt):
    """A message filed; returns the id the 250 quotes."""
    reply, c = H.send_raw_message(port, sender, [rcpt],
                                  message(sender, rcpt))
    c.cmd("QUIT")
    c.close()
    assert reply.code == 250, reply
    qid = H.queue_id(reply.text)
    assert qid and re.fullmatch(QID, qid), reply
    return qid


def refused_at_rcpt(port, sender, rcpt):
    with H.Conn(port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.code == 550 and r.enhanced == "5.1.1", r
        assert c.cmd("QUIT").code == 221


def refused_at_end_of_data(port, sender, rcpt):
    """A NUL in the data: 554 5.6.0 once the terminator arrives."""
    reply, c = H.send_raw_message(port, sender, [rcpt],
                                  message(sender, rcpt, "a\0b\r\n"))
    c.cmd("QUIT")
    c.close()
    assert reply.code == 554 and reply.enhanced == "5.6.0", reply


def settled(srv, oid, timeout=None):
    deadline = time.monotonic() + T(timeout or 30)
    while time.monotonic() < deadline:
        rows = {r["id"]: r for r in srv.cli_json("queue", "list")}
        if rows[oid]["state"] not in ("queued", "sending"):
            return rows[oid]
        time.sleep(0.05)
    raise AssertionError("outbound %s never settled" % oid)


def wait_for(pred, what, timeout=None):
    deadline = time.monotonic() + T(timeout or 30)
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def lines_about(lines, needle):
    return [l for l in lines if needle in l]


def assert_all_start_with(lines, needle, ident):
    about = lines_about(lines, needle)
    assert about, "no log line mentions %s" % needle
    bad = [l for l in about if not l.startswith(ident + ": ")]
    assert not bad, "lines about %s without id %s:\n%s" % (
        needle, ident, "\n".join(bad))


def id_of_reject(lines, stage, needle):
    """The id a "reject: STAGE" line about needle starts with."""
    for l in lines:
        m = re.match(r"^(%s): reject: %s from " % (QID, stage), l)
        if m and needle in l:
            return m.group(1)
    raise AssertionError("no 'reject: %s' line about %s in:\n%s"
                         % (stage, needle, "\n".join(lines[-40:])))


def serve_lines(srv):
    out = []
    for raw in srv.log_text().splitlines():
        m = STDERR_LINE.match(raw)
        if m and int(m.group(1)) == srv.pid:
            out.append(m.group(3))
    return out


@pytest.fixture(scope="module")
def srv(servers):
    s = servers(start=False)
    outbound_server(s)
    s.start()
    s.add_account("ACME", "any")
    return s


def test_every_line_about_a_message_carries_its_id(srv):
    t = tag()
    dossier = srv.create_dossier("ACME", contact="c-%s@client.example" % t)
    ok_from = "ok-%s@sender.example" % t
    rcpt_from = "rcpt-%s@sender.example" % t
    nul_from = "nul-%s@sender.example" % t
    unknown = "d-nosuch%s@%s" % (t, H.INTAKE_DOMAIN)

    qid = accepted(srv.smtp_port, ok_from, dossier)
    refused_at_rcpt(srv.smtp_port, rcpt_from, unknown)
    refused_at_end_of_data(srv.smtp_port, nul_from, dossier)
    contact = "out-%s@client.example" % t
    d2 = srv.create_dossier("ACME", contact=contact)
    o = srv.cli_json("invite", srv.dossier_id(d2), "--queue-only")
    assert settled(srv, o["id"])["state"] == "sent"
    wait_for(lambda: any("status=sent" in l and contact in l
                         for l in serve_lines(srv)), "the delivery line")
    wait_for(lambda: any("disconnect from" in l for l in serve_lines(srv)),
             "the disconnect lines")
    lines = serve_lines(srv)

    # Accepted: the id of the 250 on every line (debug command echoes,
    # the "from=<> to=<> status=250" line), and that line is there.
    assert_all_start_with(lines, ok_from, qid)
    assert any(l.startswith(qid + ": from=<%s> to=<%s>" % (ok_from, dossier))
               and "status=250" in l for l in lines), "\n".join(lines)
    # Refused at RCPT: its reject line names the id every line carries,
    # a queue id and not the session's.
    rid = id_of_reject(lines, "RCPT", unknown)
    assert rid != qid
    assert_all_start_with(lines, rcpt_from, rid)
    assert_all_start_with(lines, unknown, rid)
    assert any(l.startswith(rid + ": reject: RCPT") and "550 5.1.1" in l
               and "reason=unknown_recipient" in l for l in lines)
    # Refused at the end of data.
    nid = id_of_reject(lines, "END-OF-DATA", nul_from)
    assert len({qid, rid, nid}) == 3
    assert_all_start_with(lines, nul_from, nid)
    assert any(l.startswith(nid + ": reject: END-OF-DATA") and
               "554 5.6.0" in l and "reason=syntax" in l for l in lines)
    # Outbound: out-<row id> on the queued and the delivery lines.
    assert_all_start_with(lines, contact, "out-%d" % o["id"])
    # Sessions: connect and disconnect under a session id.
    conns = [l for l in lines if " connect from 127.0.0.1:" in l]
    assert len(conns) >= 3
    assert all(re.match(r"^%s: connect from " % SID, l) for l in conns)


def test_intake_refusal_carries_the_queue_id(srv):
    """An empty message is refused by intake on a worker thread: the
    delivery line with its 554 carries the queue id drawn at MAIL."""
    t = tag()
    dossier = srv.create_dossier("ACME")
    sender = "empty-%s@sender.example" % t
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
        assert c.cmd("RCPT TO:<%s>" % dossier).code == 250
        assert c.cmd("DATA").code == 354
        c.send(b".\r\n")
        r = c.reply(T(30))
        assert r.code == 554, r
        assert c.cmd("QUIT").code == 221
    wait_for(lambda: any("status=554" in l and sender in l
                         for l in serve_lines(srv)), "the 554 line")
    lines = serve_lines(srv)
    about = lines_about(lines, sender)
    ids = {l.split(":", 1)[0] for l in about}
    assert len(ids) == 1 and re.fullmatch(QID, ids.pop()), "\n".join(about)


# ---- a plugin's host->log inside a hook ----

HOOKLOG_C = r"""
#include <postdoc/plugin.h>

static const struct postdoc_host *hl_host;

static int
hl_init(const config_setting_t *s, void **state_r, char *err, size_t n)
{
	(void)s; (void)err; (void)n;
	*state_r = NULL;
	return 0;
}

static int
hl_start(void *state, const struct postdoc_host *host, char *err, size_t n)
{
	(void)state; (void)err; (void)n;
	__atomic_store_n(&hl_host, host, __ATOMIC_RELEASE);
	return 0;
}

static void
hl_stop(void *state)
{
	(void)state;
	__atomic_store_n(&hl_host, NULL, __ATOMIC_RELEASE);
}

static void
hl_log(const char *what, const char *arg)
{
	const struct postdoc_host *h = __atomic_load_n(&hl_host,
	    __ATOMIC_ACQUIRE);

	if (h != NULL)
		h->log(h->ctx, POSTDOC_LOG_INFO, "hooklog: %s %s", what, arg);
}

static enum postdoc_verdict
hl_rcpt(void *state, const struct postdoc_session_info *s, const char *from,
    const struct postdoc_rcpt_info *rcpt, struct postdoc_reply *r)
{
	(void)state; (void)s; (void)from; (void)r;
	hl_log("rcpt", rcpt->address);
	return POSTDOC_CONT;
}

static enum postdoc_verdict
hl_message(void *state, const struct postdoc_message_info *m,
    struct postdoc_reply *r)
{
	(void)state; (void)r;
	hl_log("message", m->subject);
	return POSTDOC_CONT;
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = POSTDOC_PLUGIN_ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "hooklog",
	.version = "1.0",
	.init = hl_init,
	.start = hl_start,
	.stop = hl_stop,
	.hooks = { .rcpt_to = hl_rcpt, .message = hl_message },
};
"""


def test_plugin_log_lines_carry_the_queue_id(servers, tmp_path):
    """host->log called from a rcpt_to hook (loop thread) and a message
    hook (intake worker): both lines start with the message's queue id,
    the one the 250 quotes."""
    src = tmp_path / "hooklog.c"
    src.write_text(HOOKLOG_C)
    so = tmp_path / "hooklog.so"
    cflags = subprocess.run(["pkg-config", "--cflags", "libconfig"],
                            capture_output=True, text=True,
                            check=True).stdout.split()
    subprocess.run(["cc", "-shared", "-fPIC", "-Wall", "-Werror",
                    "-I", str(H.SRCDIR / "gateway" / "include")] + cflags +
                   ["-o", str(so), str(src)], check=True, timeout=T(60))
    s = servers(start=False)
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "hooklog", "path": str(so)}])
    s.write_config()
    s.start()
    s.add_account("ACME", "any")
    t = tag()
    dossier = s.create_dossier("ACME")
    sender = "hook-%s@sender.example" % t
    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: subj-%s\r\n\r\nHi.\r\n"
            % (sender, dossier, t)).encode()
    reply, c = H.send_raw_message(s.smtp_port, sender, [dossier], body)
    c.cmd("QUIT")
    c.close()
    assert reply.code == 250, reply
    qid = H.queue_id(reply.text)
    wait_for(lambda: any("hooklog: message subj-" + t in l
                         for l in serve_lines(s)), "the message hook's line")
    lines = serve_lines(s)
    assert qid + ": hooklog: rcpt " + dossier in lines, "\n".join(lines)
    assert qid + ": hooklog: message subj-" + t in lines, "\n".join(lines)


# ---- syslog ----

class Sink:
    """A syslog daemon's socket: AF_UNIX datagrams at /dev/log."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self.msgs = []
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.msgs.append(data)

    def texts(self):
        with self.lock:
            return list(self.msgs)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()
        os.unlink(self.path)


class SyslogServer(H.Server):
    def __init__(self, root, sink, **kw):
        super().__init__(root, **kw)
        self.sink = sink

    def _ready(self, offset):
        return any(b"postdoc ready" in m for m in self.sink.texts())


# "<PRI>Mmm dd hh:mm:ss postdoc[pid]: text" (glibc, RFC 3164 style)
SYSLOG_RE = re.compile(rb"^<(\d{1,3})>[A-Z][a-z]{2} [ 0-9]\d "
                       rb"\d\d:\d\d:\d\d postdoc\[(\d+)\]: (.*)$", re.S)


def devlog_owned():
    """True if a live syslog daemon listens on /dev/log; a socket file
    nobody listens on (left by a killed run) is not owned."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect("/dev/log")
        return True
    except ConnectionRefusedError:
        return False
    except OSError:
        return os.path.exists("/dev/log")
    finally:
        s.close()


@pytest.fixture
def devlog():
    if os.geteuid() != 0:
        pytest.skip("binding /dev/log needs root")
    # Another run of this test (a parallel make check) binds /dev/log
    # too: take turns before looking at it.
    lock = open("/tmp/postdoc-test-devlog.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        if os.path.exists("/dev/log"):
            if devlog_owned():
                pytest.skip("/dev/log belongs to a running syslog daemon: "
                            "this test only runs where it can bind "
                            "/dev/log itself")
            os.unlink("/dev/log")       # stale, and we hold the lock
        sink = Sink("/dev/log")
        try:
            yield sink
        finally:
            sink.close()
    finally:
        lock.close()


def test_syslog_mail_facility_and_queue_id(devlog, tmp_path):
    srv = SyslogServer(tmp_path / "srv", devlog, server={"log": "syslog"})
    srv.start()
    try:
        srv.add_account("ACME", "any")
        t = tag()
        dossier = srv.create_dossier("ACME")
        sender = "sys-%s@sender.example" % t
        other = "sys2-%s@sender.example" % t
        unknown = "d-nosuch%s@%s" % (t, H.INTAKE_DOMAIN)
        qid = accepted(srv.smtp_port, sender, dossier)
        refused_at_rcpt(srv.smtp_port, other, unknown)
        wait_for(lambda: sum(unknown.encode() in m
                             for m in devlog.texts()) >= 2, "the reject")
        pid = srv.pid
    finally:
        srv.stop_and_check()
    # Only our server's datagrams: any other process on the machine
    # that calls syslog() meanwhile writes to this socket too.
    msgs = [m for m in devlog.texts() if b" postdoc[%d]: " % pid in m]
    assert msgs
    parsed = []
    for m in msgs:
        r = SYSLOG_RE.match(m)
        assert r, "not a syslog datagram from postdoc: %r" % m
        pri = int(r.group(1))
        # RFC 5424 6.2.1: facility mail (2); err/warning/info/debug.
        assert pri >> 3 == 2, "facility %d in %r" % (pri >> 3, m)
        assert pri & 7 in (3, 4, 6, 7), m
        assert int(r.group(2)) == pid
        text = r.group(3).decode()
        assert not re.search(r"[\x00-\x1f\x7f]", text), m
        parsed.append((pri, text))
    texts = [x for _, x in parsed]
    assert any(p == 22 and x.startswith("postdoc ready") for p, x in parsed)
    accept = [x for p, x in parsed if p == 22 and
              x.startswith("%s: from=<%s>" % (qid, sender))]
    assert accept and "status=250" in accept[0], texts
    assert_all_start_with(texts, sender, qid)
    rid = id_of_reject(texts, "RCPT", unknown)
    assert rid != qid
    assert_all_start_with(texts, unknown, rid)
    # Nothing went to stderr but what is not a log line.
    assert not [l for l in srv.log_text().splitlines()
                if STDERR_LINE.match(l)], srv.log_tail()

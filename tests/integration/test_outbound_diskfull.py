"""
The disk fills while outbound mail is delivered: the transport has
accepted a message but the store cannot record it.  var/ is a small
tmpfs the test mounts; the transport is held at the moment it has taken
the message (the file transport by a fanotify permission event on its
last step, the directory fsync; the SMTP relay by holding its 250), the
test fills the tmpfs until ENOSPC and lets the transport answer.  Each
recipient must get exactly one copy once space returns: without a
restart (serve retries the record itself), and across a SIGKILL and a
restart made while the disk is still full or after space came back (the
outcome journal).

Copies are counted where they land: renames into the outbox seen by
inotify, messages the relay (aiosmtpd, STARTTLS and AUTH) received.
"""
import ctypes
import errno
import os
import re
import select
import struct
import subprocess
import threading
import time

import pytest

import postdoc_harness as H
import smtp_peers
from postdoc_harness import T

N = 12
UNRECORDED_RE = re.compile(r"out-(\d+): cannot record sent: ")

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint,
                                ctypes.c_uint64, ctypes.c_int,
                                ctypes.c_char_p]


# ---------------------------------------------------------------- kernel

class OpenGate:
    """Holds the first open(2) of a directory until released (fanotify
    FAN_OPEN_PERM): the file transport opens its outbox to fsync it
    after both files are in place, so a held open is a transport that
    has the message and has not answered yet.  Later opens pass."""

    def __init__(self, path):
        self.fd = _libc.fanotify_init(0x04 | 0x01, os.O_RDONLY)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "fanotify_init")
        # FAN_MARK_ADD, FAN_OPEN_PERM | FAN_ONDIR, AT_FDCWD
        if _libc.fanotify_mark(self.fd, 0x01, 0x00010000 | 0x40000000,
                               -100, str(path).encode()) != 0:
            raise OSError(ctypes.get_errno(), "fanotify_mark %s" % path)
        self.held = threading.Event()
        self.release = threading.Event()
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        first = True
        while True:
            ready, _, _ = select.select([self.fd, self.wake_r], [], [])
            if self.wake_r in ready:
                return                   # close(): the fd stays ours
            buf = os.read(self.fd, 4096)
            off = 0
            while off + 24 <= len(buf):
                ln, _, _, _, _, fd, _ = struct.unpack_from("<IBBHQii",
                                                           buf, off)
                if first:
                    first = False
                    self.held.set()
                    self.release.wait(T(120))
                os.write(self.fd, struct.pack("<iI", fd, 0x01))  # ALLOW
                os.close(fd)
                off += ln

    def close(self):
        """Stop the thread before closing its descriptor (a number the
        next open may reuse); events still queued are allowed."""
        self.release.set()
        os.write(self.wake_w, b"x")
        self.thread.join(T(30))
        for fd in (self.fd, self.wake_r, self.wake_w):
            os.close(fd)


class RenameCounter:
    """inotify IN_MOVED_TO on a directory: how many times each name was
    renamed into place (the file transport renames every copy in)."""

    def __init__(self, path):
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0 or _libc.inotify_add_watch(
                self.fd, str(path).encode(), 0x80) < 0:
            raise OSError(ctypes.get_errno(), "inotify %s" % path)
        self.counts = {}

    def read(self):
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.counts
            off = 0
            while off + 16 <= len(buf):
                _, _, _, ln = struct.unpack_from("<iIII", buf, off)
                name = buf[off + 16:off + 16 + ln].rstrip(b"\0").decode()
                self.counts[name] = self.counts.get(name, 0) + 1
                off += 16 + ln

    def close(self):
        os.close(self.fd)


def fill(path):
    """Write until the filesystem says ENOSPC, to the last page."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 4096, 1):
            data = b"\0" * chunk
            while True:
                try:
                    if os.write(fd, data) == 0:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def wait_for(what, cond, timeout):
    deadline = time.monotonic() + T(timeout)
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out (%ss) waiting for %s" % (T(timeout),
                                                             what))


# ---------------------------------------------------------------- setup

def mount_tmpfs(path):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755",
                    "postdoc-diskfull", str(path)], check=True)


def make_server(srv, transport, peer):
    ob = {"transport": transport,
          "template_dir": str(H.SRCDIR / "templates"),
          "queue_interval_ms": 50, "retry_base": 1, "rate": 0,
          "batch_max": 4, "delivery_threads": 2, "domain_concurrency": 1}
    srv.sections["outbound"] = ob
    if transport == "file":
        plug = {"name": "file", "settings": {"dir": str(srv.root /
                                                         "outbox")}}
    else:
        plug = {"name": "smtp", "settings": {
            "host": "127.0.0.1", "port": peer.port, "starttls": "required",
            "ca_file": str(peer.dir) + "/cert.pem", "helo": "postdoc.test",
            "user": "postdoc", "password": "s3cret", "timeout": 120}}
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) +
                                       [plug])
    srv.write_config()
    srv.add_account("ACME")
    for i in range(N):
        addr = srv.create_dossier("ACME", contact="c%d@d%d.example"
                                  % (i, i % 3))
        o = srv.cli_json("invite", srv.dossier_id(addr), "--queue-only")
        assert o["state"] == "queued", o
    return srv


def states(srv):
    return dict(srv.query("SELECT rcpt, state FROM outbound"))


def copies(transport, srv, peer, renames):
    """{recipient: copies received}"""
    got = {}
    if transport == "file":
        for name, n in renames.read().items():
            if name.endswith(".eml"):
                rcpt = name.split("-", 1)[1][:-len(".eml")]
                got[rcpt] = got.get(rcpt, 0) + n
    else:
        for _, meta in smtp_peers.read_tls_mail(peer.dir):
            for rcpt in meta["rcpt_tos"]:
                got[rcpt] = got.get(rcpt, 0) + 1
    return got


@pytest.mark.parametrize("transport", ["file", "smtp"])
@pytest.mark.parametrize("restart", [None, "full", "freed"],
                         ids=["running", "restart-full", "restart-freed"])
def test_accepted_but_unrecorded_is_sent_once(servers, tmp_path, transport,
                                              restart):
    hold = tmp_path / "release"
    peer = gate = renames = None
    srv = servers(start=False)
    mount_tmpfs(srv.var)
    try:
        if transport == "smtp":
            peer = smtp_peers.start_tls(str(tmp_path / "relay"), hold=hold)
        make_server(srv, transport, peer)
        filler = srv.var / "filler"
        if transport == "file":
            outbox = srv.root / "outbox"
            outbox.mkdir(exist_ok=True)
            renames = RenameCounter(outbox)
            gate = OpenGate(outbox)
        srv.start()

        # The transport has the first message and waits to answer.
        if transport == "file":
            assert gate.held.wait(T(30)), srv.log_tail()
        else:
            wait_for("the relay to receive a message",
                     lambda: smtp_peers.read_tls_mail(peer.dir), 30)
        fill(filler)
        if transport == "file":
            gate.release.set()
        else:
            hold.write_text("go")
        # Its 250 arrives, the store cannot record it.
        unrecorded = wait_for(
            "a sent outcome the store cannot record",
            lambda: set(UNRECORDED_RE.findall(srv.log_text())), 30)

        if restart is not None:
            srv.kill()
            if restart == "freed":
                os.unlink(filler)
            mark = len(srv.log_text())
            srv.start()
            if restart == "full":
                # Nothing may go out again while the disk is still full.
                wait_for("the restarted runner to meet the full disk",
                         lambda: re.search(r"outcome\(s\) from|recovery "
                                           r"failed", srv.log_text()[mark:]),
                         30)
        if filler.exists():
            os.unlink(filler)
        wait_for("every row sent",
                 lambda: set(states(srv).values()) == {"sent"}, 60)
        problems = srv.stop()
        assert problems == [], problems

        got = copies(transport, srv, peer, renames)
        want = {"c%d@d%d.example" % (i, i % 3): 1 for i in range(N)}
        assert got == want, (sorted(unrecorded), got)
        # the journal kept nothing once everything was recorded
        assert srv.query("SELECT count(*) FROM outbound WHERE state = "
                         "'sent'")[0][0] == N
    finally:
        if gate is not None:
            gate.close()
        if renames is not None:
            renames.close()
        srv.stop()
        subprocess.run(["umount", str(srv.var)], check=False)
        if peer is not None:
            peer.stop()

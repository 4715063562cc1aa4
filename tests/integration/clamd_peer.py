"""
clamd_peer.py - a real clamd (Debian's clamav-daemon) for the tests: its
own private LocalSocket and a DatabaseDirectory holding only signatures
the test writes (no download, no freshclam): a body signature (.ndb)
for the EICAR test string and an MD5 hash signature (.hdb) of a test
file.  Started in the foreground, ready when its socket answers PING,
stopped with SIGTERM by the fixture that started it.
"""
import hashlib
import os
import signal
import socket
import subprocess
from pathlib import Path

import postdoc_harness as H

CLAMD = "/usr/sbin/clamd"

# The standard anti-virus test file (eicar.org): harmless, recognised by
# the body signature the database holds.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-"
         b"FILE!$H+H*")
EICAR_SIG = "Postdoc.Test.Eicar"
# A harmless PDF-looking file flagged by its hash (an .hdb signature).
HASHED = b"%PDF-1.4\n% postdoc clamav hash signature test\n%%EOF\n"
HASHED_SIG = "Postdoc.Test.Hashed"


def have_clamd():
    return os.access(CLAMD, os.X_OK)


class Clamd:
    """One clamd on `root`/clamd.sock; extra config lines in `extra`."""

    def __init__(self, root, extra=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = self.root / "db"
        self.db.mkdir(exist_ok=True)
        self.socket = self.root / "clamd.sock"
        self.conf = self.root / "clamd.conf"
        self.log = self.root / "clamd.log"
        (self.db / "test.ndb").write_text(
            "%s:0:*:%s\n" % (EICAR_SIG, EICAR.hex()))
        (self.db / "test.hdb").write_text(
            "%s:%d:%s\n" % (hashlib.md5(HASHED).hexdigest(), len(HASHED),
                            HASHED_SIG))
        lines = ["LocalSocket %s" % self.socket, "Foreground yes",
                 "User root", "DatabaseDirectory %s" % self.db,
                 "LogFile %s" % self.log, "LogVerbose yes",
                 "PidFile %s" % (self.root / "clamd.pid")]
        lines += list(extra or [])
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc = None

    def ping(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(self.socket))
                s.sendall(b"zPING\0")
                return s.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def start(self):
        self.proc = subprocess.Popen(
            [CLAMD, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
            stderr=open(self.root / "clamd.stderr", "wb"),
            start_new_session=True)
        H.wait_for(lambda: self.proc.poll() is not None or self.ping(), 60,
                   "clamd to answer PING on %s" % self.socket)
        assert self.proc.poll() is None, (
            "clamd exited: %s" % (self.root / "clamd.stderr").read_text())
        return self

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=H.T(20))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

"""
dovecot_peer.py - a real Dovecot (Debian's dovecot-imapd/pop3d) for the
mailbox tests: a private config on loopback high ports, passwd-file users,
Maildirs under a private directory, optional implicit TLS with a test
certificate.  It runs in the foreground (`dovecot -c FILE -F`), dies with
the test runner (PDEATHSIG), has a watchdog, and is stopped with SIGTERM.

Dovecot drops to the mail user (uid 8) to touch the Maildirs, which
pytest's 0700 tmp directory would hide from it: its directory is a
separate mkdtemp, removed when it stops.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import postdoc_harness as H

MAIL_UID = 8
MAIL_GID = 8


class _PortTaken(Exception):
    pass


class Dovecot:
    def __init__(self, users, tls=None, tls_other=None):
        self.root = Path(tempfile.mkdtemp(prefix="postdoc-dovecot-"))
        os.chmod(self.root, 0o755)
        self.users = dict(users)		# name -> password
        self.tls = tls
        # Implicit TLS on 127.0.0.2 presents this certificate instead.
        self.tls_other = tls_other
        self.imap_port = H.free_port()
        self.pop3_port = H.free_port()
        self.imaps_port = H.free_port()
        self.log_path = self.root / "dovecot.log"
        self.proc = None
        self._watchdog = None
        self._n = 0
        self._started = False
        self._write_config()

    def _write_config(self):
        r = self.root
        for d in ("run", "state", "mail"):
            (r / d).mkdir(mode=0o755, exist_ok=True)
        os.chown(r / "mail", MAIL_UID, MAIL_GID)
        lines = ["%s:{PLAIN}%s:%d:%d::%s::" % (u, p, MAIL_UID, MAIL_GID,
                                              r / "mail" / u)
                 for u, p in self.users.items()]
        (r / "users").write_text("\n".join(lines) + "\n")
        for u in self.users:
            for sub in ("new", "cur", "tmp"):
                (r / "mail" / u / sub).mkdir(parents=True, exist_ok=True)
            for dirpath, _, _ in os.walk(r / "mail" / u):
                os.chown(dirpath, MAIL_UID, MAIL_GID)
        ssl = "ssl = no\n"
        imaps = ""
        if self.tls:
            ssl = ("ssl = yes\nssl_cert = <%s\nssl_key = <%s\n"
                   % (self.tls[0], self.tls[1]))
            addr = "127.0.0.1, 127.0.0.2" if self.tls_other else "127.0.0.1"
            imaps = ("  inet_listener imaps {\n    address = %s\n"
                     "    port = %d\n    ssl = yes\n  }\n"
                     % (addr, self.imaps_port))
            if self.tls_other:
                ssl += ("local 127.0.0.2 {\n  ssl_cert = <%s\n"
                        "  ssl_key = <%s\n}\n" % self.tls_other)
        conf = """
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
first_valid_uid = {uid}
first_valid_gid = {gid}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
{ssl}
mail_location = maildir:~
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {r}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
{imaps}}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 50
}}
""".format(r=r, uid=MAIL_UID, gid=MAIL_GID, ssl=ssl, imap=self.imap_port,
           pop3=self.pop3_port, imaps=imaps)
        if not self.tls:
            conf = conf.replace("service imap-login {",
                                "service imap-login {\n  inet_listener "
                                "imaps {\n    port = 0\n  }")
        self.conf = r / "dovecot.conf"
        self.conf.write_text(conf)

    def start(self, timeout=30):
        """Start dovecot; ports taken since free_port() are picked again
        (a few times), on the first start only."""
        for attempt in range(5):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                if self._started or attempt == 4:
                    raise AssertionError("dovecot: ports taken")
                self.imap_port = H.free_port()
                self.pop3_port = H.free_port()
                self.imaps_port = H.free_port()
                self._write_config()

    def _start_once(self, timeout):
        log = open(self.root / "stderr.log", "ab")
        self.proc = subprocess.Popen(["dovecot", "-c", str(self.conf), "-F"],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log,
                                     preexec_fn=H._die_with_parent)
        log.close()
        ports = [self.imap_port, self.pop3_port]
        if self.tls:
            ports.append(self.imaps_port)
        deadline = time.monotonic() + H.T(timeout)
        while not all(H._port_open(p) for p in ports):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                if "Address already in use" in (
                        (self.root / "stderr.log").read_text(errors="replace")
                        + self.log_text()):
                    raise _PortTaken()
                raise AssertionError("dovecot did not start:\n%s\n%s" % (
                    (self.root / "stderr.log").read_text(errors="replace"),
                    self.log_text()))
            time.sleep(0.05)
        self._started = True
        self._watchdog = threading.Timer(600, self._kill)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self):
        if self._watchdog:
            self._watchdog.cancel()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- Maildir

    def maildir(self, user, folder=None):
        base = self.root / "mail" / user
        return base if not folder else base / ("." + folder)

    def deliver(self, user, data):
        """Put a message into the user's INBOX the way an MDA does:
        write in tmp/, rename into new/."""
        self._n += 1
        name = "%d.P%dQ%d.test" % (time.time(), os.getpid(), self._n)
        md = self.maildir(user)
        tmp = md / "tmp" / name
        tmp.write_bytes(data)
        os.chown(tmp, MAIL_UID, MAIL_GID)
        os.rename(tmp, md / "new" / name)
        return name

    def count(self, user, folder=None):
        md = self.maildir(user, folder)
        return sum(len(list((md / s).glob("*"))) for s in ("new", "cur")
                   if (md / s).is_dir())

"""
postfix_peer.py - a private, real Postfix (Debian's postfix package) to
put in front of a test server; the test adds the routing (test_postfix_lmtp
uses the recipe of docs/operations.md, "Behind Postfix").  Owns one
instance: its own config directory, queue and data directories under a
temp dir, an smtpd on a loopback port the test picks, its log in a file
(postlogd), and a virtual(8) Maildir for the senders' domain so that
Postfix's bounces (DSNs) can be read.

It never touches the system Postfix (no /etc/postfix/main.cf, no port 25,
no `postfix start`): `master -c DIR -s` runs in the foreground as our
child, and stop() kills its process group (master calls setsid(), so the
group is exactly this instance).  `-e` bounds master's life should the
test runner be killed before stop() runs.

Postfix's daemons run as the postfix user and virtual(8) delivers as
nobody: pytest's 0700 tmp directory would hide the queue from them, so
the instance lives in a separate mkdtemp, removed when it stops.
"""
import email
import email.policy
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import postdoc_harness as H

MASTER = "/usr/lib/postfix/sbin/master"
POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"
POSTMAP = "/usr/sbin/postmap"
NOBODY = 65534
LIFETIME = 600          # seconds; master's own -e bound, and the watchdog's

# Only the services this instance uses; chroot off ("n") because a
# private queue outside /var/spool/postfix has no chroot tree to run in.
# pickup is there because `postqueue -f` also flushes the maildrop.
MASTER_CF = """\
127.0.0.1:{smtp_port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
pickup    unix  n - n 60 1 pickup
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available():
    """None if this machine can run a private Postfix, else why not."""
    for p in (MASTER, POSTFIX, POSTQUEUE, POSTMAP):
        if not os.access(p, os.X_OK):
            return "%s not found (scripts/bootstrap.sh installs postfix)" % p
    if os.geteuid() != 0:
        return "a private Postfix master must be started as root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user (install the postfix package)"
    return None


class Postfix:
    """One private Postfix.  configure() adds the operator's part of
    main.cf (relay_domains, transport_maps, lmtp_* ...) and the lookup
    tables it names; mail for `mailbox_domain` is delivered to the
    Maildir that mailbox() reads."""

    def __init__(self, mailbox_domain):
        self.root = Path(tempfile.mkdtemp(prefix="postdoc-postfix-"))
        os.chmod(self.root, 0o755)
        self.conf_dir = self.root / "conf"
        self.queue_dir = self.root / "queue"
        self.mail_dir = self.root / "mail"
        self.log_path = self.root / "maillog"
        self.smtp_port = H.free_port()
        self.proc = None
        self._watchdog = None
        for d in (self.conf_dir, self.queue_dir, self.root / "data",
                  self.mail_dir):
            d.mkdir(mode=0o755)
        pf = pwd.getpwnam("postfix")
        os.chown(self.root / "data", pf.pw_uid, pf.pw_gid)
        os.chown(self.mail_dir, NOBODY, NOBODY)
        self.main = self._instance_cf(mailbox_domain)
        self.maps = {}

    def _instance_cf(self, mailbox_domain):
        """What makes this a private instance: its own directories and
        log, loopback only, no local delivery."""
        r = self.root
        return {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(r / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "relay.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(r),
            # Senders live here, so their bounces can be read back.
            "virtual_mailbox_domains": mailbox_domain,
            "virtual_mailbox_base": str(self.mail_dir),
            "virtual_mailbox_maps": "static:mailbox/",
            "virtual_uid_maps": "static:%d" % NOBODY,
            "virtual_gid_maps": "static:%d" % NOBODY,
        }

    def configure(self, main, maps=None):
        """main: {parameter: value} added to main.cf; maps: {file name:
        text} written into the config directory and compiled with
        postmap (hash:), as an operator would."""
        self.main.update(main)
        self.maps.update(maps or {})

    def _write_config(self):
        (self.conf_dir / "main.cf").write_text(
            "".join("%s = %s\n" % kv for kv in self.main.items()))
        (self.conf_dir / "master.cf").write_text(
            MASTER_CF.format(smtp_port=self.smtp_port))
        for name, text in self.maps.items():
            (self.conf_dir / name).write_text(text)
            p = subprocess.run([POSTMAP, "-c", str(self.conf_dir),
                                "hash:%s" % (self.conf_dir / name)],
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, "postmap %s: %s" % (name, p.stderr)

    # -- life

    def start(self, timeout=30):
        self._write_config()
        # `postfix check` creates the queue's subdirectories with the
        # owners and modes Postfix wants, and vets main.cf.
        p = subprocess.run([POSTFIX, "-c", str(self.conf_dir), "check"],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError("postfix check failed (%d): %s%s\n%s" % (
                p.returncode, p.stdout, p.stderr, self.log_tail()))
        out = open(self.root / "master.out", "ab")
        self.proc = subprocess.Popen(
            [MASTER, "-c", str(self.conf_dir), "-s",
             "-e", str(LIFETIME * H.FACTOR)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()
        self._watchdog = threading.Timer(LIFETIME * H.FACTOR, self._kill)
        self._watchdog.daemon = True
        self._watchdog.start()
        deadline = time.monotonic() + H.T(timeout)
        while not H._port_open(self.smtp_port):
            if self._exited() or time.monotonic() > deadline:
                why = "%s\n%s" % (self.log_tail(), self._master_out())
                self.stop()
                raise AssertionError("postfix did not listen on %d:\n%s"
                                     % (self.smtp_port, why))
            time.sleep(0.05)
        return self

    def _exited(self):
        """Has master exited?  Asked without reaping it: until it is
        reaped its pid, which is also the group id, cannot be reused, so
        _kill() never hits a stranger's process group."""
        r = os.waitid(os.P_PID, self.proc.pid,
                      os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return r is not None

    def _kill(self):
        """SIGKILL every process of the instance: master and the daemons
        it spawned all share master's process group."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self):
        if self._watchdog:
            self._watchdog.cancel()
            self._watchdog = None
        if self.proc is not None and self.proc.returncode is None:
            if not self._exited():
                self.proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + H.T(10)
                while not self._exited() and time.monotonic() < deadline:
                    time.sleep(0.05)
            # Whatever master left behind (or master itself) goes now,
            # before master is reaped (see _exited).
            self._kill()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def _master_out(self):
        try:
            return (self.root / "master.out").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no maillog)"
        return "\n".join(lines[-n:])

    # -- the queue

    def queue(self):
        """`postqueue -j`: one dict per queued message (queue_name,
        queue_id, sender, recipients with their delay_reason)."""
        p = subprocess.run([POSTQUEUE, "-c", str(self.conf_dir), "-j"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, "postqueue -j: %s" % p.stderr
        return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]

    def flush(self):
        """`postqueue -f`: retry the deferred mail now, not after
        minimal_backoff_time."""
        p = subprocess.run([POSTQUEUE, "-c", str(self.conf_dir), "-f"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, "postqueue -f: %s" % p.stderr

    # -- the senders' mailbox

    def mailbox(self):
        """Messages delivered to the senders' Maildir, parsed, oldest
        first (virtual(8) renames each into new/ when it is complete)."""
        new = self.mail_dir / "mailbox" / "new"
        if not new.is_dir():
            return []
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime)
        return [email.message_from_bytes(p.read_bytes(),
                                         policy=email.policy.default)
                for p in files]


def dsn_reports(msg):
    """The per-recipient fields of a DSN (RFC 3464 2.3) as dicts with
    lower-case keys: final-recipient, action, status, diagnostic-code."""
    out = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        # email parses message/delivery-status as a list of header
        # blocks: the per-message one first, then one per recipient.
        blocks = part.get_payload()
        for block in blocks[1:]:
            out.append({k.lower(): " ".join(str(v).split())
                        for k, v in block.items()})
    return out

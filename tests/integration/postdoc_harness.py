"""
postdoc_harness.py - what the integration tests share: where the binary
and the corpus are, a `postdoc serve` process per test server (config
file, CLI, start/stop with a watchdog), a raw SMTP client that reads
replies exactly as they come off the socket, and small MIME builders.

No mocks: every helper talks to a real `postdoc` process over real
sockets or runs the real CLI against the server's own database.
"""
import ctypes
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRCDIR = Path(os.environ.get("POSTDOC_SRCDIR") or HERE.parent.parent).resolve()
BIN = os.environ.get("POSTDOC_BIN") or str(SRCDIR / "postdoc")
PLUGIN_DIR = (os.environ.get("POSTDOC_PLUGIN_DIR")
              or str(Path(BIN).resolve().parent / "plugins" / ".libs"))
WRAPPER = shlex.split(os.environ.get("POSTDOC_WRAPPER", ""))
SLOW = os.environ.get("POSTDOC_SLOW", "") == "1"
# Under valgrind everything the server does is 20-50x slower.
FACTOR = 10 if SLOW else 1
SHARED = Path(os.environ.get("POSTDOC_SHARED") or (SRCDIR.parent / "shared"))
CORPUS = SHARED / "corpus"
HAVE_CORPUS = (CORPUS / "smtp" / "manifest.json").is_file()
CORPUS_SKIP_REASON = ("hostile corpus not found at %s (set POSTDOC_SHARED)"
                      % CORPUS)

INTAKE_DOMAIN = "dossiers.example"
CORPUS_ADDRESS = "d-7f3a9c2e@dossiers.example"
CORPUS_CONTACT = "alice@sender.example"
ADDRESS_RE = re.compile(r"^d-[a-z2-7]{26}@dossiers\.example$")


def T(seconds):
    """A timeout, stretched when the server runs under valgrind."""
    return seconds * FACTOR


def wait_for(cond, timeout, what, interval=0.05):
    """cond()'s first true value, polled until T(timeout) seconds have
    passed on the monotonic clock; an AssertionError naming `what` after
    that.  Tests wait on conditions, never on sleeps: bounds are
    generous (a loaded 2-core machine is slow, not broken) and a test
    that passes returns as soon as the condition holds."""
    deadline = time.monotonic() + T(timeout)
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s"
                                 % (T(timeout), what))
        time.sleep(interval)


# The limits of the contract's test configuration: short timeouts so a
# hung session shows up in seconds, and a 5 MiB size limit so the size
# tests stay cheap.
DEFAULT_LIMITS = {
    "line_max": 512, "data_line_max": 998, "rcpt_max": 100,
    "message_size_max": 5242880, "mime_depth_max": 32,
    "mime_parts_max": 1000, "attachments_max": 200,
    "header_count_max": 1000, "header_size_max": 65536,
    "header_block_max": 1048576, "error_limit": 20,
    "rcpt_reject_limit": 100, "command_timeout": 2, "data_timeout": 5,
    "session_timeout": 60, "connections_max": 100,
    "connections_per_ip_max": 100, "message_time_max": 20,
    "greet_pause_ms": 300,
}

GLOBAL_ALLOW = ["application/pdf", "image/png", "image/jpeg", "text/plain",
                "application/octet-stream"]
STRICT_ALLOW = ["application/pdf"]


# ---------------------------------------------------------------- ports

def free_port():
    """A TCP port nobody listens on right now (bind port 0, read it back).
    Someone else may take it before our server binds it (teammates' suites
    and every outgoing connection draw from the same range): Server.start
    picks new ports and retries when serve says it cannot listen."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------- libconfig

class LcList(tuple):
    """A libconfig list `( ... )` (groups in a list), as opposed to an
    array `[ ... ]` of scalars, which is a Python list."""


def _lc_value(v, indent):
    pad = "  " * indent
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) + ("L" if abs(v) > 2147483647 else "")
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, dict):
        inner = "".join("%s  %s = %s;\n" % (pad, k, _lc_value(x, indent + 1))
                        for k, x in v.items())
        return "{\n" + inner + pad + "}"
    if isinstance(v, LcList):
        return ("(\n" + ",\n".join(pad + "  " + _lc_value(x, indent + 1)
                                   for x in v) + "\n" + pad + ")")
    if isinstance(v, list):
        return "[ " + ", ".join(_lc_value(x, indent) for x in v) + " ]"
    raise TypeError("cannot write %r as libconfig" % (v,))


def libconfig_text(sections):
    return "".join("%s = %s;\n" % (k, _lc_value(v, 0))
                   for k, v in sections.items())


# --------------------------------------------------------------- server

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child: get SIGKILL when the test runner dies, so no server
    outlives a crashed or killed pytest."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    os.setpgid(0, 0)


LIVE_SERVERS = []

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer",
                   "Invalid read of size", "Invalid write of size",
                   "uninitialised value", "definitely lost in")


class ServerError(AssertionError):
    pass


class _PortTaken(Exception):
    """serve exited because a port free_port() chose was taken since."""


class Server:
    """One `postdoc serve` with its own config, var dir and ports."""

    def __init__(self, root, tls=None, limits=None, server=None,
                 plugin_settings=None, name="postdoc"):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.var = self.root / "var"
        self.conf = self.root / "postdoc.conf"
        self.log_path = self.root / "server.log"
        self.smtp_port = free_port()
        self.lmtp_port = free_port()
        while self.lmtp_port == self.smtp_port:
            self.lmtp_port = free_port()
        self.limits = dict(DEFAULT_LIMITS)
        self.limits.update(limits or {})
        srv = {
            "hostname": "postdoc.test",
            "smtp_listen": "127.0.0.1:%d" % self.smtp_port,
            "lmtp_listen": "127.0.0.1:%d" % self.lmtp_port,
            "workers": 2,
            "plugin_dir": PLUGIN_DIR,
            "log_level": "debug",
        }
        if tls:
            srv["tls_cert"], srv["tls_key"] = str(tls[0]), str(tls[1])
        srv.update(server or {})
        settings = plugin_settings or {
            "allow": list(GLOBAL_ALLOW),
            "accounts": LcList([{"name": "STRICT",
                                 "allow": list(STRICT_ALLOW)}]),
        }
        self.sections = {
            "server": srv,
            "store": {"var_dir": str(self.var), "sync": "full"},
            "intake": {"domain": INTAKE_DOMAIN},
            "limits": self.limits,
            "plugins": LcList([{"name": "filetype", "settings": settings}]),
            # No DNS for sender authentication unless a test asks for it
            # (test_sender_auth.py): the suite must not wait on a resolver.
            "auth": {"checks": False},
        }
        self.write_config()
        self.proc = None
        self.problems = []
        self._watchdog = None
        self._ids = {}

    # -- configuration and CLI

    def write_config(self):
        self.conf.write_text(libconfig_text(self.sections))

    def cli(self, *args, check=True, timeout=60, input=None):
        """Run `postdoc --config CONF ARGS...`; returns CompletedProcess
        with text stdout/stderr.  check=True asserts exit status 0."""
        cmd = [BIN, "--config", str(self.conf)] + [str(a) for a in args]
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout, input=input,
                           errors="surrogateescape")
        if check and p.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(shlex.quote(c) for c in cmd), p.returncode,
                p.stdout, p.stderr))
        return p

    def cli_json(self, *args):
        return json.loads(self.cli(*(list(args) + ["--json"])).stdout)

    def add_account(self, name, policy=None):
        args = ["account", "add", name]
        if policy:
            args += ["--sender-policy", policy]
        self.cli(*args)

    def create_dossier(self, account, contact=CORPUS_CONTACT, ref=None,
                       address=None):
        ref = ref or "REF-%d-%d" % (os.getpid(), next(_counter))
        args = ["dossier", "create", "--account", account, "--contact",
                contact, "--ref", ref]
        if address:
            args += ["--address", address]
        out = self.cli(*args).stdout
        lines = out.splitlines()
        assert len(lines) == 1, "dossier create must print one line: %r" % out
        addr = lines[0].strip()
        if address:
            assert addr == address, (addr, address)
        return addr

    def dossiers(self, *filters):
        data = self.cli_json("dossier", "list", *filters)
        if isinstance(data, dict):
            for v in data.values():
                if isinstance(v, list):
                    return v
            raise AssertionError("dossier list --json: no list in %r" % data)
        return data

    def dossier_id(self, address):
        if address not in self._ids:
            for d in self.dossiers():
                self._ids[d["address"]] = d["id"]
        if address not in self._ids:
            raise AssertionError("no dossier with address %s" % address)
        return self._ids[address]

    def show(self, address):
        return self.cli_json("dossier", "show", self.dossier_id(address))

    def message_get(self, msg_id):
        out = self.root / ("msg-%s.eml" % msg_id)
        self.cli("message", "get", msg_id, "-o", out)
        return out.read_bytes()

    def document_get(self, doc_id):
        out = self.root / ("doc-%s.bin" % doc_id)
        self.cli("document", "get", doc_id, "-o", out)
        return out.read_bytes()

    def db(self):
        path = self.var / "postdoc.db"
        return sqlite3.connect("file:%s?mode=ro" % path, uri=True,
                               timeout=10)

    def query(self, sql, *args):
        """All rows of one read-only query."""
        con = self.db()
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def db_count(self, table):
        with self.db() as c:
            return c.execute("SELECT count(*) FROM %s" % table).fetchone()[0]

    def spool_files(self):
        spool = self.var / "spool"
        if not spool.is_dir():
            return []
        return [p for p in spool.rglob("*") if not p.is_dir()]

    def wait_spool_empty(self, timeout=None):
        deadline = time.monotonic() + (timeout or T(30))
        left = self.spool_files()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self.spool_files()
        return left

    def raw_message(self, sha, blobs=None):
        """A stored raw message's bytes by sha256, wherever the store keeps
        them: the raw_inline table (up to store.inline_max octets) or a
        blob file.  None if neither holds it.  blobs: {name: path} of
        blob_files(), for callers asking about many messages (walking
        var/blobs once per message is quadratic)."""
        with self.db() as c:
            row = c.execute("SELECT data FROM raw_inline WHERE sha256 = ?",
                            (sha,)).fetchone()
        if row is not None:
            return bytes(row[0])
        if blobs is None:               # either fan-out layout
            blobs = {p.name: p for p in self.blob_files()}
        p = blobs.get(sha)
        return p.read_bytes() if p is not None else None

    def raw_inline_shas(self):
        with self.db() as c:
            return {r[0] for r in c.execute("SELECT sha256 FROM raw_inline")}

    def blob_files(self):
        blobs = self.var / "blobs"
        return [p for p in blobs.rglob("*") if p.is_file()] \
            if blobs.is_dir() else []

    # -- process

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    # The server's own listeners: (section, key, URL key beside it).
    LISTENERS = (("server", "smtp_listen", None),
                 ("server", "lmtp_listen", None),
                 ("api", "listen", None), ("web", "listen", "base_url"))
    PORT_ATTEMPTS = 5

    def start(self, timeout=10):
        """Start serve and wait until it logs "postdoc ready".  A port
        taken between free_port() and serve's bind is not the test's
        failure: pick new ones for every listener and start again."""
        for attempt in range(self.PORT_ATTEMPTS):
            try:
                return self._start_once(timeout)
            except _PortTaken as e:
                if attempt + 1 == self.PORT_ATTEMPTS:
                    raise ServerError(str(e))
                self.repick_ports()

    def repick_ports(self):
        """New free ports for every listener of this server (SMTP, LMTP,
        api.listen, web.listen and its base_url), in the config and in
        the attributes tests read (smtp_port, api_port, web_port, base)."""
        moved = {}
        for sect, key, url_key in self.LISTENERS:
            conf = self.sections.get(sect) or {}
            m = re.fullmatch(r"(.*):(\d+)", str(conf.get(key) or ""))
            if not m:
                continue
            new = free_port()
            while new in moved.values() or new == int(m.group(2)):
                new = free_port()
            moved[int(m.group(2))] = new
            conf[key] = "%s:%d" % (m.group(1), new)
            if url_key and conf.get(url_key):
                conf[url_key] = conf[url_key].replace(
                    ":%s" % m.group(2), ":%d" % new, 1)
        for name, v in list(vars(self).items()):
            if name.endswith("_port") and v in moved:
                setattr(self, name, moved[v])
            elif name == "base" and isinstance(v, str):
                for old, new in moved.items():
                    v = v.replace(":%d" % old, ":%d" % new)
                self.base = v
        self.write_config()

    def _start_once(self, timeout):
        self.problems = []
        cmd = WRAPPER + [BIN, "--config", str(self.conf), "serve"]
        log = open(self.log_path, "ab")
        log.write(("\n==== %s: %s\n" % (time.strftime("%H:%M:%S"),
                                         " ".join(cmd))).encode())
        log.flush()
        start_at = log.tell()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log,
                                     cwd=str(self.root),
                                     preexec_fn=_die_with_parent)
        log.close()
        LIVE_SERVERS.append(self)
        self._stopped = False
        self._killed = False
        deadline = time.monotonic() + T(timeout)
        ports = [self.smtp_port]
        if self.sections["server"].get("lmtp_listen"):
            ports.append(self.lmtp_port)
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                LIVE_SERVERS.remove(self)
                if self._port_taken(start_at):
                    raise _PortTaken("postdoc serve could not bind its "
                                     "ports %d times; its stderr:\n%s"
                                     % (self.PORT_ATTEMPTS, self.log_tail()))
                raise ServerError("postdoc serve exited with %s before "
                                  "listening; its stderr:\n%s"
                                  % (rc, self.log_tail()))
            # The ports are bound (and connectable) before the store and
            # workers exist (root binds, then drops): wait for "ready".
            if all(_port_open(p) for p in ports) and self._ready(start_at):
                break
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError("postdoc serve did not listen on %s "
                                  "within %ss; its stderr:\n%s"
                                  % (ports, T(timeout), self.log_tail()))
            time.sleep(0.05)
        life = float(os.environ.get("POSTDOC_TEST_WATCHDOG", "600")) * FACTOR
        self._watchdog = threading.Timer(life, self._watchdog_fire)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def _port_taken(self, offset):
        """serve's log since `offset` says a listener could not bind."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read()
        except OSError:
            return False
        return (b"Address already in use" in text or
                re.search(rb"(api|web): cannot listen on", text) is not None)

    def _ready(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return b"postdoc ready" in f.read()
        except OSError:
            return False

    def _watchdog_fire(self):
        if self.running():
            self.problems.append("watchdog killed the server after its "
                                 "maximum lifetime")
            self.proc.kill()

    def _cancel_watchdog(self):
        if self._watchdog:
            self._watchdog.cancel()
            self._watchdog = None

    def kill(self):
        """SIGKILL, as a crash would; not a problem to report (the
        fixture's final stop() does not call it a death on its own)."""
        self._cancel_watchdog()
        if self.running():
            self.proc.kill()
        if self.proc:
            self.proc.wait(timeout=30)
            self._killed = True
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)

    def stop(self):
        """SIGTERM and wait.  Returns the problems seen over the server's
        life: a crash before we stopped it, not stopping on SIGTERM,
        sanitizer or valgrind reports."""
        self._cancel_watchdog()
        if self.proc is None or self._stopped:
            return self.problems    # a test stopped it already
        self._stopped = True
        if self.proc.poll() is not None and self._killed:
            pass                    # the test killed it on purpose
        elif self.proc.poll() is not None:
            why = ""
            if "signal 15" in self.log_text():
                why = ("; its log shows a SIGTERM the tests did not send: "
                       "something outside the suite killed it")
            self.problems.append("server died on its own (exit status %s%s)"
                                 % (self.proc.returncode, why))
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=T(10))
            except subprocess.TimeoutExpired:
                self.problems.append("server ignored SIGTERM for %ss"
                                     % T(10))
                self.proc.kill()
                self.proc.wait(timeout=30)
            rc = self.proc.returncode
            if rc == 99:
                self.problems.append("valgrind reported errors (exit 99)")
            elif rc not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
                self.problems.append("exit status %s after SIGTERM" % rc)
        text = self.log_text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                self.problems.append("server log contains %r" % mark)
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)
        return self.problems

    def stop_and_check(self):
        problems = self.stop()
        if problems:
            raise ServerError("postdoc serve (%s): %s\nlog tail:\n%s" % (
                self.name, "; ".join(problems), self.log_tail(80)))

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def assert_alive(self):
        """The process runs and a fresh client gets its banner and a 250
        for NOOP: the server survived whatever the test did."""
        assert self.running(), ("postdoc serve is gone (exit %s); log:\n%s"
                                % (self.proc.returncode, self.log_tail()))
        c = Conn(self.smtp_port)
        try:
            r = c.cmd("NOOP")
            assert r.code == 250, "NOOP after the test: %s" % r
            c.cmd("QUIT")
        finally:
            c.close()


_counter = iter(range(1, 10 ** 9))


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# ------------------------------------------------------------ raw SMTP

REPLY_LINE = re.compile(rb"^(\d{3})([ -])(.*)$")
ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


class ProtocolError(AssertionError):
    pass


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines		# text after "NNN-" / "NNN "
        m = ENHANCED.match(lines[0]) if lines else None
        self.enhanced = m.group(1) if m else None

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "<%d %s>" % (self.code, " | ".join(self.lines))

    __str__ = __repr__


class Conn:
    """A plain socket SMTP client that reads replies exactly as sent.
    Unlike smtplib it lets a test write arbitrary bytes (bare LF, NUL,
    pipelined groups) and see whether the server closed."""

    def __init__(self, port, banner=True, timeout=None):
        self.timeout = timeout or T(10)
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=self.timeout)
        self.buf = b""
        self.eof = False
        self.banner = None
        if banner:
            self.banner = self.reply()
            if self.banner is None or self.banner.code != 220:
                raise ProtocolError("no 220 banner: %r" % (self.banner,))

    def send(self, data):
        """Write; returns False if the server had already closed."""
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, timeout):
        if self.eof:
            return False
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        except socket.timeout:
            raise
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def readline(self, timeout=None):
        """One reply line without CRLF, or None at EOF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no reply line within %ss (have %r)"
                                     % (timeout or self.timeout,
                                        self.buf[:200]))
            if not self._fill(left):
                if self.buf:
                    raise ProtocolError("unterminated reply before close: "
                                        "%r" % self.buf[:200])
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        if not line.endswith(b"\r"):
            raise ProtocolError("reply line not ended by CRLF: %r" % line)
        return line[:-1]

    def reply(self, timeout=None):
        """Next complete (possibly multi-line) reply, or None at EOF."""
        code, lines = None, []
        while True:
            line = self.readline(timeout)
            if line is None:
                if lines:
                    raise ProtocolError("multi-line reply cut by close: %r"
                                        % lines)
                return None
            m = REPLY_LINE.match(line)
            if not m and re.match(rb"^\d{3}$", line):
                m = REPLY_LINE.match(line + b" ")
            if not m:
                raise ProtocolError("not an SMTP reply line: %r" % line)
            if code is not None and m.group(1) != code:
                raise ProtocolError("code changed inside a reply: %r" % line)
            code = m.group(1)
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(int(code), lines)

    def cmd(self, line, timeout=None):
        self.send(line.encode() + b"\r\n" if isinstance(line, str)
                  else line + b"\r\n")
        return self.reply(timeout)

    def wait_closed(self, timeout=None):
        """True if the server closes within timeout; raises if it sends
        anything else first."""
        deadline = time.monotonic() + (timeout or T(5))
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self._fill(left)
            except socket.timeout:
                return False
            if self.buf:
                raise ProtocolError("expected close, got %r" % self.buf[:300])
        return True

    def pending(self, wait=0.3):
        """Whatever arrives within `wait` seconds (b"" if nothing)."""
        end = time.monotonic() + wait
        while not self.eof and time.monotonic() < end:
            try:
                self._fill(max(0.01, end - time.monotonic()))
            except socket.timeout:
                break
        data, self.buf = self.buf, b""
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ehlo_keywords(reply):
    """EHLO reply -> {KEYWORD: params} for every line after the greeting."""
    out = {}
    for line in reply.lines[1:]:
        parts = line.split()
        if parts:
            out[parts[0].upper()] = parts[1:]
    return out


def dot_stuff(data):
    """CRLF message -> DATA payload incl. the terminating dot line."""
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    lines = data.split(b"\r\n")
    out = b"\r\n".join((b"." + l if l.startswith(b".") else l)
                       for l in lines[:-1])
    return (out + b"\r\n" if lines[:-1] else b"") + b".\r\n"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


QUEUED_RE = re.compile(r"queued as (\S+)")


def queue_id(reply_text):
    m = QUEUED_RE.search(reply_text if isinstance(reply_text, str)
                         else reply_text.decode("utf-8", "replace"))
    return m.group(1) if m else None


def send_raw_message(port, mail_from, rcpts, data, helo="client.test"):
    """EHLO/MAIL/RCPT/DATA over a raw socket with `data` dot-stuffed
    as is (no line-ending conversion).  Returns (final reply, conn)."""
    c = Conn(port)
    r = c.cmd("EHLO " + helo)
    assert r.code == 250, r
    r = c.cmd("MAIL FROM:<%s>" % mail_from)
    assert r.code == 250, r
    for rc in rcpts:
        r = c.cmd("RCPT TO:<%s>" % rc)
        assert r.code == 250, r
    r = c.cmd("DATA")
    assert r.code == 354, r
    c.send(dot_stuff(data))
    return c.reply(T(30)), c


# ------------------------------------------------------- test documents

def make_pdf(tag):
    """A small but real PDF (libmagic: application/pdf)."""
    body = ("%%PDF-1.4\n%% %s\n1 0 obj << /Type /Catalog /Pages 2 0 R >> "
            "endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
            "trailer << /Root 1 0 R >>\n%%%%EOF\n" % tag)
    return body.encode()


def make_png(tag):
    """A real 1x1 PNG with a text chunk carrying `tag`."""
    import struct
    import zlib

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"tEXt", b"Comment\x00" + tag.encode())
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


def make_pe():
    """A minimal PE32 executable: 'MZ' DOS stub + 'PE\\0\\0' header
    (libmagic: application/vnd.microsoft.portable-executable)."""
    import struct
    dos = bytearray(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"
                    b"\x00\x00\xb8" + b"\x00" * (0x3c - 17))
    dos += struct.pack("<I", 0x80)
    dos += (b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
            b"This program cannot be run in DOS mode.\r\r\n$")
    dos += b"\x00" * (0x80 - len(dos))
    pe = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x14c, 1, 0, 0, 0, 0xe0,
                                      0x0102)
    opt = struct.pack("<HBB", 0x10b, 14, 0) + b"\x00" * (0xe0 - 4)
    sec = b".text\x00\x00\x00" + b"\x00" * 32
    return bytes(dos) + pe + opt + sec + b"\x00" * 512


def libmagic_type(data, tmpdir):
    """What libmagic (the same library the server links) calls `data`."""
    p = Path(tmpdir) / ("magic-%d.bin" % next(_counter))
    p.write_bytes(data)
    out = subprocess.run(["file", "-b", "--mime-type", str(p)],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


BAD_NAME_CHARS = re.compile(r"[/\\:\x00-\x1f\x7f-\x9f\u2028\u2029]")


def unsafe_filename_reason(name):
    """None if a stored (sanitised) original file name is safe metadata."""
    if name in (".", ".."):
        return "is %r" % name
    m = BAD_NAME_CHARS.search(name)
    if m:
        return "contains %r" % m.group(0)
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        return "longer than 255 octets"
    return None

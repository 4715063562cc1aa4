"""smtp_peers.py - real SMTP peers on loopback for the smtp transport tests.

Owns starting and stopping two relays: Postfix's smtp-sink (plain SMTP, no
STARTTLS, dumps what it receives) and an aiosmtpd server with STARTTLS and
AUTH that writes each message byte for byte.  Every peer stops by itself
after a watchdog delay and when its parent dies, so a crashed test never
leaves a listener behind.

Command line (used by the C unit test):
    smtp_peers.py sink DIR
    smtp_peers.py tls DIR [--user U --password P] [--reject ADDR ...]
                          [--auth-required] [--bind 127.0.0.2]
                          [--hold FILE]
prints the port on stdout once the peer accepts connections, then serves
until killed.  DIR/cert.pem is the self-signed certificate (CN=localhost,
SAN localhost and 127.0.0.1) of the tls peer; DIR/mail/NNNN.eml and
NNNN.json are what it received; with --hold, the reply to each message
waits (after the files are written) until FILE exists, so a test can act
while the transport waits for its 250.  smtp-sink dumps into DIR/sink/.

From pytest: start_sink(dir), start_tls(dir, ...) return a Peer with
.port and .stop(); read_tls_mail(dir) and read_sink_mail(dir) return what
arrived.  A missing peer binary raises: CI installs them, tests must fail.
"""
import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time

SMTP_SINK = "/usr/sbin/smtp-sink"
WATCHDOG_SECONDS = 300
PYTHON = "/usr/bin/python3"   # Debian's python3-aiosmtpd lives here
HERE = os.path.abspath(__file__)


def die_with_parent():
    """Ask Linux to SIGTERM us when the process that started us exits."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    """A port the kernel just handed out; the peer binds it right after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def announce(port):
    """Tell the starter our port in one write, then detach stdout: the
    starter closes its end once it has the line."""
    os.write(1, b"%d\n" % port)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def wait_listening(port, timeout=30.0, child=None):
    """True once the port accepts; False if `child` (the process that
    should listen there) exits first or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def make_cert(directory, cn="localhost"):
    """Self-signed certificate for CN=localhost with IP SAN 127.0.0.1."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj",
             "/CN=%s" % cn, "-addext",
             "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


# ---- smtp-sink ------------------------------------------------------------

def run_sink(directory):
    """Serve smtp-sink in the foreground; print the port when it listens."""
    if not os.access(SMTP_SINK, os.X_OK):
        raise SystemExit("smtp_peers: %s missing (install postfix)" % SMTP_SINK)
    dump = os.path.join(directory, "sink")
    os.makedirs(dump, exist_ok=True)
    # smtp-sink drops to nobody before it dumps: let it reach DIR/sink.
    os.chmod(directory, os.stat(directory).st_mode | 0o711)
    os.chmod(dump, 0o777)
    base = [SMTP_SINK, "-d", os.path.join(dump, "%Y%m%d%H%M%S."), "-t", "30"]
    if os.geteuid() == 0:
        base += ["-u", "nobody"]
    # smtp-sink binds a port we name: one taken since free_port() makes
    # it exit, and then another port is tried (a few times).
    for attempt in range(5):
        port = free_port()
        child = subprocess.Popen(base + ["127.0.0.1:%d" % port, "16"],
                                 preexec_fn=die_with_parent)
        if wait_listening(port, child=child):
            break
        child.kill()
        child.wait()
    else:
        raise SystemExit("smtp_peers: smtp-sink did not listen (5 ports)")
    stop = lambda *_: (child.terminate(), sys.exit(0))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(WATCHDOG_SECONDS)
    announce(port)
    child.wait()


def sink_strip(dump):
    """The message as sent, from a smtp-sink dump: it prepends X-* records
    and a three-line Received:, turns CRLF into LF and appends an empty
    line.  Returns the CRLF body or None if the dump is not recognised."""
    lines = dump.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"Received: "):
            body = lines[i + 3:]
            if body[-2:] != [b"", b""]:
                return None
            return b"".join(l + b"\r\n" for l in body[:-2])
    return None


def read_sink_mail(directory):
    dump = os.path.join(directory, "sink")
    out = []
    for name in sorted(os.listdir(dump)) if os.path.isdir(dump) else []:
        with open(os.path.join(dump, name), "rb") as f:
            out.append(sink_strip(f.read()))
    return out


# ---- aiosmtpd with STARTTLS and AUTH -------------------------------------

class Recorder:
    """aiosmtpd handler: refuses listed recipients, records the rest."""

    def __init__(self, directory, reject, hold=None):
        self.dir = os.path.join(directory, "mail")
        os.makedirs(self.dir, exist_ok=True)
        self.reject = set(a.lower() for a in reject)
        self.count = 0
        self.hold = hold

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.lower() in self.reject:
            return "550 5.1.1 <%s>: Recipient address rejected" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.dir, "%04d" % self.count)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "user": getattr(session.auth_data, "login", b"").decode()
            if session.authenticated else None,
        }
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        if self.hold:
            import asyncio
            while not os.path.exists(self.hold):
                await asyncio.sleep(0.02)
        return "250 2.0.0 Ok: queued as %04d" % self.count


def run_tls(directory, user, password, reject, auth_required, bind,
            hold=None):
    import asyncio
    import ssl
    import logging
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    # aiosmtpd logs a deprecation notice on every AUTH; keep stderr quiet.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    cert, key = make_cert(directory)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    handler = Recorder(directory, reject, hold)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and
              auth_data.login == user.encode() and
              auth_data.password == password.encode())
        return AuthResult(success=ok, handled=False,
                          auth_data=auth_data if ok else None)

    def factory():
        return SMTP(handler, hostname="localhost", tls_context=ctx,
                    require_starttls=True, authenticator=authenticator,
                    auth_require_tls=True, auth_required=auth_required,
                    timeout=30)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Port 0: bound at once, no window for another process to take it.
    server = loop.run_until_complete(
        loop.create_server(factory, bind, 0))
    port = server.sockets[0].getsockname()[1]
    loop.call_later(WATCHDOG_SECONDS, loop.stop)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    announce(port)
    try:
        loop.run_forever()
    finally:
        server.close()


def read_tls_mail(directory):
    """[(content bytes, meta dict)] in arrival order."""
    d = os.path.join(directory, "mail")
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.endswith(".eml"):
            with open(os.path.join(d, name), "rb") as f:
                content = f.read()
            with open(os.path.join(d, name[:-4] + ".json")) as f:
                out.append((content, json.load(f)))
    return out


# ---- for pytest -----------------------------------------------------------

class Peer:
    def __init__(self, proc, port, directory):
        self.proc, self.port, self.dir = proc, port, directory

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _start(args, directory):
    proc = subprocess.Popen([PYTHON, HERE] + args + [directory],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        raise RuntimeError("smtp_peers %s: did not start" % args[0])
    return Peer(proc, int(line), directory)


def start_sink(directory):
    return _start(["sink"], directory)


def start_tls(directory, user="postdoc", password="s3cret", reject=(),
              auth_required=False, hold=None):
    args = ["tls", "--user", user, "--password", password]
    if hold:
        args += ["--hold", str(hold)]
    for r in reject:
        args += ["--reject", r]
    if auth_required:
        args.append("--auth-required")
    return _start(args, directory)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["sink", "tls"])
    p.add_argument("--user", default="postdoc")
    p.add_argument("--password", default="s3cret")
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--auth-required", action="store_true")
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--hold")
    p.add_argument("dir")
    a = p.parse_args()
    die_with_parent()
    os.makedirs(a.dir, exist_ok=True)
    if a.kind == "sink":
        run_sink(a.dir)
    else:
        run_tls(a.dir, a.user, a.password, a.reject, a.auth_required,
                a.bind, a.hold)


if __name__ == "__main__":
    main()

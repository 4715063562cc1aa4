"""
benchlib.py - what the bench scripts share: the three servers (Postfix's
smtp-sink, Haraka with bench_store, `postdoc serve`), Postfix's
smtp-source as the driver, generated messages, and per-process CPU and
peak RSS from /proc.  Everything runs on loopback ports picked at start;
state lives under bench/out/ (ignored by git).
"""
import base64
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRCDIR = HERE.parent
OUT = Path(os.environ.get("BENCH_OUT") or HERE / "out")
BUILD = Path(os.environ.get("POSTDOC_BUILD") or "/tmp/build-main")
BIN = Path(os.environ.get("POSTDOC_BIN") or BUILD / "postdoc")
PLUGIN_DIR = Path(os.environ.get("POSTDOC_PLUGIN_DIR")
                  or BIN.resolve().parent / "plugins" / ".libs")
HARAKA_DIR = HERE / "haraka"
HARAKA_BIN = HARAKA_DIR / "node_modules" / "Haraka" / "bin" / "haraka"
TICK = os.sysconf("SC_CLK_TCK")
SENDER = "bench@sender.example"
DOMAIN = "dossiers.localhost"


# ------------------------------------------------------------- deletions
#
# On ext4 without a journal (this machine's /), the inode allocator skips
# inodes freed in the last 60 s (360 s while their inode-table block is
# dirty), reading an inode-table block per candidate: a run that follows
# the deletion of thousands of files spends a third of its CPU there
# (find_get_block_common, recently_deleted in perf).  So nothing is
# deleted while a server is measured: old state is renamed into
# OUT/.trash, emptied at the end, and the next run waits out the window.
TRASH_COOL = 90     # writeback (30 s) + the 60 s window


def trash(path):
    path = Path(path)
    if not path.exists():
        return
    t = OUT / ".trash"
    t.mkdir(parents=True, exist_ok=True)
    path.rename(t / ("%s-%d" % (path.name, time.monotonic_ns())))


def empty_trash():
    t = OUT / ".trash"
    if t.exists():
        shutil.rmtree(t, ignore_errors=True)
        (OUT / ".trash-emptied").write_text("%f\n" % time.time())


def cool_down():
    """Wait until files deleted by an earlier run no longer slow inode
    allocation (see above)."""
    stamp = OUT / ".trash-emptied"
    if not stamp.exists():
        return
    left = float(stamp.read_text()) + TRASH_COOL - time.time()
    if left > 0:
        print("waiting %.0f s: files deleted %.0f s ago still slow ext4's "
              "inode allocation" % (left, TRASH_COOL - left), flush=True)
        time.sleep(left)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- /proc

def cpu_ticks(pid):
    """utime+stime of every thread of pid, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def tree_pids(pid):
    """pid and its descendants (Haraka's cluster workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path("/proc/%d/task/%d/children" % (p, p)).read_text()
        except OSError:
            continue
        todo += [int(k) for k in kids.split()]
    return out


# ------------------------------------------------------------- messages

# bench/blast.c replaces this with each message's sequence number; for
# smtp-source it stays as it is (every message the same).
SEQ = "SEQSEQSEQSEQ"


def pdf_like(n, rnd):
    """n bytes that libmagic calls application/pdf: a PDF header, one
    binary stream object, a trailer."""
    head = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Length " + \
        str(n).encode() + b" /Filter /FlateDecode >>\nstream\n"
    tail = b"\nendstream\nendobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    body = rnd.randbytes(max(0, n - len(head) - len(tail)))
    return head + body + tail


def message(size, seed=1):
    """A CRLF message of about `size` octets: text only under 10 KB,
    else a short text part and one base64 PDF attachment."""
    rnd = random.Random(seed)
    hdr = ("From: Bench <%s>\r\nTo: <d-bench@%s>\r\nSubject: bench %d\r\n"
           "Message-ID: <bench-%d-%d-%s@sender.example>\r\n"
           "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
           % (SENDER, DOMAIN, size, size, seed, SEQ))
    if size < 10000:
        line = "The quick brown fox jumps over the lazy dog, once more.\r\n"
        body = line * max(1, (size - len(hdr)) // len(line))
        body = "Sequence " + SEQ + ".\r\n" + body
        return (hdr + "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
                + body).encode()
    raw = pdf_like(int((size - 600) * 3 / 4), rnd)
    b64 = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    # blast's sequence number lands in the attachment's bytes too (in the
    # random body, not the PDF header libmagic reads).
    mid = (len(b64) // 2) // 78 * 78
    b64 = b64[:mid] + SEQ.encode() + b64[mid + len(SEQ):]
    return (hdr.encode()
            + b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            b"--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            b"Please find the document attached.\r\n"
            b"--b1\r\nContent-Type: application/pdf; name=\"doc.pdf\"\r\n"
            b"Content-Disposition: attachment; filename=\"doc.pdf\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + b64 + b"--b1--\r\n")


def write_message(path, size, seed=1):
    """smtp-source -F reads a plain file and sends each line with CRLF,
    dot-stuffed: write LF lines."""
    path.write_bytes(message(size, seed).replace(b"\r\n", b"\n"))
    return path


# --------------------------------------------------------------- servers

class Server:
    name = "?"
    proc = None
    port = 0

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        stop(self.proc)


class SmtpSink(Server):
    """Postfix's smtp-sink: answers every command, discards every byte."""
    name = "smtp-sink"

    def start(self):
        self.port = free_port()
        cmd = ["smtp-sink"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        cmd += ["-c", "127.0.0.1:%d" % self.port, "1024"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        return self


class Haraka(Server):
    """Haraka 3 with bench/haraka/plugins/queue/bench_store.js."""
    name = "haraka"

    def __init__(self, nodes=None):
        self.nodes = nodes or os.cpu_count()

    def start(self):
        if not HARAKA_BIN.exists():
            # The version pinned by bench/haraka/package-lock.json.
            print("haraka: npm ci in %s" % HARAKA_DIR, flush=True)
            p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                               cwd=str(HARAKA_DIR), capture_output=True,
                               text=True)
            if p.returncode != 0 or not HARAKA_BIN.exists():
                raise RuntimeError("Haraka could not be installed (npm ci "
                                   "in bench/haraka): %s"
                                   % (p.stderr.strip()[-500:] or
                                      p.returncode))
        self.port = free_port()
        inst = OUT / "haraka"
        trash(inst)
        shutil.copytree(HARAKA_DIR / "config", inst / "config")
        shutil.copytree(HARAKA_DIR / "plugins", inst / "plugins")
        (inst / "config" / "smtp.ini").write_text(
            "[main]\nlisten=127.0.0.1:%d\nnodes=%s\n" % (self.port,
                                                        self.nodes))
        self.store = inst / "store"
        env = dict(os.environ, BENCH_HARAKA_STORE=str(self.store),
                   NODE_PATH=str(HARAKA_DIR / "node_modules"))
        self.proc = subprocess.Popen(
            ["node", str(HARAKA_BIN), "-c", str(inst)], env=env,
            stdout=open(inst / "haraka.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_port(self.port, self.proc, 60)
        return self

    def pids(self):
        return tree_pids(self.proc.pid)

    def reset(self):
        trash(self.store)
        self.store.mkdir(parents=True)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def lc(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) + ("L" if v > 2147483647 else "")
    if isinstance(v, str):
        return '"%s"' % v
    if isinstance(v, list):
        return "[ " + ", ".join(lc(x) for x in v) + " ]"
    raise TypeError(v)


class Postdoc(Server):
    """`postdoc serve` on a fresh var/ with one account and dossier;
    the production defaults of conf/postdoc.conf otherwise."""
    name = "postdoc"

    def __init__(self, tag="postdoc", server=None, limits=None):
        self.root = OUT / tag
        self.extra_server = server or {}
        self.extra_limits = limits or {}

    def config(self):
        srv = {"hostname": "postdoc.bench",
               "smtp_listen": "127.0.0.1:%d" % self.port,
               "lmtp_listen": "", "plugin_dir": str(PLUGIN_DIR),
               "log_level": "info"}
        srv.update(self.extra_server)
        lim = {"connections_max": 1000, "connections_per_ip_max": 1000}
        lim.update(self.extra_limits)
        allow = ["application/pdf", "text/plain", "image/png"]
        text = "server = {\n%s};\n" % "".join(
            "  %s = %s;\n" % (k, lc(v)) for k, v in srv.items())
        text += ('store = { var_dir = "%s"; sync = "full"; };\n'
                 % (self.root / "var"))
        text += 'intake = { domain = "%s"; };\n' % DOMAIN
        text += "limits = {\n%s};\n" % "".join(
            "  %s = %s;\n" % (k, lc(v)) for k, v in lim.items())
        text += ('outbound = { template_dir = "%s/templates"; };\n'
                 % SRCDIR)
        text += ('plugins = ( { name = "filetype"; settings = { allow = %s;'
                 ' }; } );\n' % lc(allow))
        # Like the peers it is compared with (smtp-sink, Haraka as set up
        # here), Postdoc checks no sender in the bench: the bench machine
        # has no resolver, and SPF/DKIM/DMARC's cost, measured against a
        # local nsd, is in docs/operations.md ("Cost").
        text += 'auth = { checks = false; };\n'
        self.conf.write_text(text)

    def cli(self, *args):
        return subprocess.run([str(BIN), "--config", str(self.conf)]
                              + list(args), check=True, capture_output=True,
                              text=True).stdout

    def start(self):
        trash(self.root)
        self.root.mkdir(parents=True)
        self.conf = self.root / "postdoc.conf"
        self.port = free_port()
        self.config()
        self.cli("account", "add", "BENCH", "--sender-policy", "any")
        self.proc = subprocess.Popen(
            [str(BIN), "--config", str(self.conf), "serve"],
            cwd=str(self.root), stdout=subprocess.DEVNULL,
            stderr=open(self.root / "serve.log", "wb"))
        wait_port(self.port, self.proc)
        return self

    def new_dossier(self, ref):
        return self.cli("dossier", "create", "--account", "BENCH",
                        "--contact", "someone@else.example", "--ref",
                        ref).strip()


# ---------------------------------------------------------------- driver

def smtp_source(port, msgfile, count, sessions, rcpt, timeout=600):
    """Postfix's smtp-source: `sessions` connections, `count` messages in
    all, each session reusing its connection (-d).  Returns seconds."""
    cmd = ["smtp-source", "-d", "-s", str(sessions), "-m", str(count),
           "-F", str(msgfile), "-f", SENDER, "-t", rcpt, "-M",
           "client.bench", "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    dt = time.monotonic() - t0
    if p.returncode != 0 or p.stderr.strip():
        raise RuntimeError("smtp-source: %s %s" % (p.returncode,
                                                   p.stderr.strip()[:500]))
    return dt


def blast_bin():
    """bench/blast.c, compiled once into bench/out/."""
    src = Path(__file__).resolve().parent / "blast.c"
    out = OUT / "blast"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cc", "-O2", "-pthread", "-Wall", "-Wextra",
                        "-Werror", "-D_GNU_SOURCE", "-o", str(out),
                        str(src)], check=True)
    return out


def blast(port, msgfile, count, sessions, rcpt, timeout=600):
    """bench/blast: like smtp_source, but every message is unique (its
    sequence number in a header, the body and the attachment bytes).
    msgfile holds the message with CRLF line ends.  Returns seconds."""
    cmd = [str(blast_bin()), "-s", str(sessions), "-m", str(count),
           "-F", str(msgfile), "-f", SENDER, "-t", rcpt,
           "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    dt = time.monotonic() - t0
    if p.returncode != 0 or p.stderr.strip():
        raise RuntimeError("blast: %s %s" % (p.returncode,
                                             p.stderr.strip()[:500]))
    return dt


def median(xs):
    return statistics.median(xs) if xs else float("nan")

"""
Replays what the fuzzers (fuzz/, `make fuzz`) found, from tests/regress/:
config/*.conf through `postdoc check-config`, which must answer with
file:line and exit 1, never crash.  Under the sanitizer build LeakSanitizer
reads fuzz/lsan.supp: libconfig 1.5 itself leaks its scanner's string
buffer on some syntax errors (libconfig-scanner-leak.conf).

smtp/*.bin are client byte streams from fuzz_smtp_session, replayed over
a real socket to `postdoc serve` the way that fuzzer feeds them (see its
header comment: one line at a time unless a first byte >= 0xf0 asks for
LMTP, fixed chunks or everything at once); the server must still answer
a fresh client, and stop cleanly at the end of the module.
"""
import os
import socket
import subprocess
import time

import pytest

import postdoc_harness as H
from postdoc_harness import T

REGRESS = H.SRCDIR / "tests" / "regress"
CONFIGS = sorted((REGRESS / "config").glob("*.conf"))
SESSIONS = sorted((REGRESS / "smtp").glob("*.bin"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_found_by_fuzzing(path):
    env = dict(os.environ, LSAN_OPTIONS="suppressions=%s"
               % (H.SRCDIR / "fuzz" / "lsan.supp"))
    p = subprocess.run(H.WRAPPER + [H.BIN, "--config", str(path),
                                    "check-config"],
                       capture_output=True, text=True, env=env,
                       timeout=H.T(30), errors="replace")
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert str(path) + ":" in p.stderr + p.stdout
    for mark in H.SANITIZER_MARKS:
        assert mark not in p.stderr, p.stderr[-2000:]


def fuzz_chunks(data):
    """(lmtp, chunks) exactly as fuzz/fuzz_smtp_session.c cuts its input."""
    lmtp, chunk, whole, off = 0, 0, False, 0
    if data and data[0] >= 0xf0:
        lmtp, whole, off = data[0] & 1, bool(data[0] & 4), 1
        if data[0] & 2 and len(data) > 1:
            chunk, off = data[1] + 1, 2
    data, out = data[off:], []
    while data:
        if whole:
            n = len(data)
        elif chunk:
            n = min(chunk, len(data))
        else:
            n = data.find(b"\n") + 1 or len(data)
        out.append(data[:n])
        data = data[n:]
    return lmtp, out


@pytest.fixture(scope="module")
def smtp_srv(servers):
    s = servers(limits={"greet_pause_ms": 0, "message_time_max": 5})
    s.add_account("FUZZ", "any")
    s.create_dossier("FUZZ", contact=H.CORPUS_CONTACT, ref="FUZZ-1",
                     address=H.CORPUS_ADDRESS)
    return s


@pytest.mark.parametrize("path", SESSIONS, ids=[p.name for p in SESSIONS])
def test_smtp_session_found_by_fuzzing(smtp_srv, path):
    lmtp, chunks = fuzz_chunks(path.read_bytes())
    port = smtp_srv.lmtp_port if lmtp else smtp_srv.smtp_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=T(10))
    try:
        sock.settimeout(T(2))
        sock.recv(65536)			# the banner
        for c in chunks:
            try:
                sock.sendall(c)
            except OSError:
                break			# the session hung up: allowed
            # like the fuzzer, let the server answer before the next
            # chunk; its replies are not the point, its survival is
            end = time.monotonic() + min(0.2, 20.0 / len(chunks))
            try:
                while time.monotonic() < end:
                    sock.settimeout(max(0.01, end - time.monotonic()))
                    if not sock.recv(65536):
                        break
            except socket.timeout:
                pass
            except OSError:
                break
    finally:
        sock.close()
    smtp_srv.assert_alive()

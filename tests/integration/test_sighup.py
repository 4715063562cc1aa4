"""
SIGHUP (postdoc(8)): `postdoc serve` reopens its log file, so logrotate
can rename it and signal (no copytruncate), and loads the STARTTLS
certificate and key again for new sessions; a pair that does not load
keeps the old one and the log says why.  Serve keeps answering SMTP
throughout.  Every wait is on a condition (a log line, a file), with a
generous bound.
"""
import os
import signal
import smtplib
import ssl
import subprocess
import time

import pytest

import postdoc_harness as H
from postdoc_harness import T


def wait_for(pred, what, timeout=None):
    deadline = time.monotonic() + (timeout or T(20))
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


def read(path):
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def hup_and_wait(srv, path):
    """SIGHUP, then the one line saying what serve did, in path (the log
    file, reopened or not).  Returns that line."""
    before = read(path).count("SIGHUP: ")
    os.kill(srv.pid, signal.SIGHUP)
    text = wait_for(lambda: read(path).count("SIGHUP: ") > before and
                    read(path), "the SIGHUP line in %s" % path)
    assert srv.running(), "serve died on SIGHUP (exit %s)" % \
        srv.proc.returncode
    return [l for l in text.splitlines() if "SIGHUP: " in l][-1]


def make_pair(d, name):
    cert, key = d / ("%s.pem" % name), d / ("%s.key" % name)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-subj", "/CN=%s" % name, "-days", "2",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def install(src, dst):
    """Replace dst as certbot or an operator would: write, then rename."""
    tmp = dst.with_suffix(".tmp")
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, dst)


def der(cert_path):
    return ssl.PEM_cert_to_DER_cert(cert_path.read_text())


def starttls_cert(port):
    """The certificate a new STARTTLS session is shown (DER)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=T(30),
                      local_hostname="client.test") as s:
        code, _ = s.starttls(context=ctx)
        assert code == 220
        assert s.noop()[0] == 250
        return s.sock.getpeercert(binary_form=True)


# ---------------------------------------------------------- log file

def test_rotated_log_file_is_reopened_on_sighup(servers):
    # The harness waits for "postdoc ready" in server.log: make that the
    # log file (stderr, appended by the harness, starts there too).
    srv = servers(start=False)
    srv.sections["server"].update({"log": "file",
                                   "log_file": str(srv.log_path)})
    srv.write_config()
    srv.start()
    rotated = srv.log_path.with_name("server.log.1")
    os.rename(srv.log_path, rotated)
    line = hup_and_wait(srv, srv.log_path)
    assert "log file reopened" in line, line
    # A new session is logged in the new file, not in the renamed one.
    with H.Conn(srv.smtp_port) as c:
        port = c.sock.getsockname()[1]
        assert c.cmd("NOOP").code == 250
        assert c.cmd("QUIT").code == 221
    mark = "connect from 127.0.0.1:%d " % port
    wait_for(lambda: mark in read(srv.log_path), "the session in the new "
             "log file")
    assert mark not in read(rotated)
    assert "postdoc ready" in read(rotated)
    assert "postdoc ready" not in read(srv.log_path)
    srv.assert_alive()


def test_sighup_with_log_on_stderr_is_harmless(servers):
    srv = servers()
    line = hup_and_wait(srv, srv.log_path)
    assert "log to stderr: nothing to reopen" in line, line
    assert "no STARTTLS" in line, line
    srv.assert_alive()


# ------------------------------------------------------ certificates

@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    d = tmp_path_factory.mktemp("hup-tls")
    return make_pair(d, "first.test"), make_pair(d, "second.test")


@pytest.fixture(scope="module")
def tls_srv(servers, pairs, tmp_path_factory):
    live = tmp_path_factory.mktemp("hup-live")
    cert, key = live / "cert.pem", live / "key.pem"
    install(pairs[0][0], cert)
    install(pairs[0][1], key)
    srv = servers(tls=(cert, key))
    srv.live = (cert, key)
    return srv


def test_new_certificate_is_used_after_sighup(tls_srv, pairs):
    srv, (cert, key) = tls_srv, tls_srv.live
    first, second = pairs
    assert starttls_cert(srv.smtp_port) == der(first[0])
    # A session already in TLS goes on with the old context.
    old = smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30),
                       local_hostname="client.test")
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        assert old.starttls(context=ctx)[0] == 220
        install(second[1], key)
        install(second[0], cert)
        line = hup_and_wait(srv, srv.log_path)
        assert "TLS certificate reloaded" in line, line
        assert starttls_cert(srv.smtp_port) == der(second[0])
        assert old.noop()[0] == 250
        assert old.sock.getpeercert(binary_form=True) == der(first[0])
    finally:
        old.quit()


def test_broken_certificate_keeps_the_old_one(tls_srv, pairs):
    srv, (cert, key) = tls_srv, tls_srv.live
    shown = starttls_cert(srv.smtp_port)
    good, good_key = cert.read_bytes(), key.read_bytes()
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n"
                    "-----END CERTIFICATE-----\n")
    try:
        line = hup_and_wait(srv, srv.log_path)
        assert "old TLS certificate kept" in line, line
        assert str(cert) in line, line
        assert "WARN" in line, line
        assert starttls_cert(srv.smtp_port) == shown
        # A key that does not match the certificate is refused too.
        cert.write_bytes(good)
        other = [p for p in pairs if der(p[0]) != shown][0]
        install(other[1], key)
        line = hup_and_wait(srv, srv.log_path)
        assert "old TLS certificate kept" in line, line
        assert starttls_cert(srv.smtp_port) == shown
    finally:
        cert.write_bytes(good)
        key.write_bytes(good_key)
    srv.assert_alive()

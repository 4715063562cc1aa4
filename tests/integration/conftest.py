"""
Fixtures for the integration suite: free ports, a test certificate, and
real `postdoc serve` processes (one or a few per test module) that are
stopped - and checked for crashes, sanitizer and valgrind reports - when
the module is done.  Helpers live in postdoc_harness.py.
"""
import os
import subprocess
from pathlib import Path

import pytest

import postdoc_harness as H


def pytest_sessionstart(session):
    if not os.access(H.BIN, os.X_OK):
        pytest.exit("postdoc binary not found or not executable: %s "
                    "(set POSTDOC_BIN, or run through `make check`)"
                    % H.BIN, returncode=1)
    plugin = Path(H.PLUGIN_DIR) / "filetype.so"
    if not plugin.is_file():
        pytest.exit("filetype.so not found in %s (set POSTDOC_PLUGIN_DIR)"
                    % H.PLUGIN_DIR, returncode=1)


@pytest.fixture(autouse=True)
def dev_null_stays_a_device():
    """A test (or the code it drives, as root) must never replace
    /dev/null: one rename of a temp file over an -o target did, and every
    later `> /dev/null` on the machine wrote into a regular file.  The
    test that does it fails here, by name."""
    yield
    import stat
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode), \
        "/dev/null is no longer a character device"


def pytest_report_header(config):
    return ["postdoc: %s" % H.BIN, "plugins: %s" % H.PLUGIN_DIR,
            "wrapper: %s" % (" ".join(H.WRAPPER) or "(none)"),
            "corpus: %s" % (H.CORPUS if H.HAVE_CORPUS
                            else "absent -> corpus tests skipped")]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test shows the tail of every live server's stderr."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in list(H.LIVE_SERVERS):
            rep.sections.append(("postdoc serve stderr (%s, tail)" % srv.name,
                                 srv.log_tail(40)))


@pytest.fixture
def free_port():
    return H.free_port()


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory):
    """A self-signed certificate for CN=localhost (and 127.0.0.1)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-subj", "/CN=localhost", "-days", "2",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class ServerFactory:
    def __init__(self, tmp_path_factory, prefix):
        self.tmp = tmp_path_factory
        self.prefix = prefix
        self.servers = []

    def __call__(self, start=True, **kw):
        root = self.tmp.mktemp(self.prefix)
        srv = H.Server(root, name="%s#%d" % (self.prefix, len(self.servers)),
                       **kw)
        self.servers.append(srv)
        if start:
            srv.start()
        return srv

    def finish(self):
        errors = []
        for srv in self.servers:
            try:
                srv.stop_and_check()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            raise H.ServerError("\n\n".join(errors))


@pytest.fixture(scope="module")
def servers(request, tmp_path_factory):
    """Start servers for this module: servers(tls=..., limits=...).  All
    are stopped with SIGTERM at the end of the module, and a crash, a
    hang on SIGTERM or a sanitizer/valgrind report fails the module."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    f = ServerFactory(tmp_path_factory, name)
    yield f
    f.finish()


@pytest.fixture
def own_servers(request, tmp_path_factory):
    """Like `servers`, but the servers belong to this one test and are
    stopped and checked when it ends.  A test that kills or restarts a
    server uses these: if it fails half-way, the dead server is its own
    and cannot take the module's later tests down with it."""
    f = ServerFactory(tmp_path_factory, request.node.name[:40])
    yield f
    f.finish()


@pytest.fixture
def tmp(tmp_path):
    return tmp_path

"""
Started as root with server.user set, `postdoc serve` binds its ports,
then runs as that user for good: /proc/PID/status shows the user's uid
and gid (real, effective, saved, fs), and mail is still filed (the store
it opens after the drop is the user's).  A missing user is refused at
start.  Runs only as root, with a `nobody` user.
"""
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

import postdoc_harness as H

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root to drop privileges")

SENDER = "alice@sender.example"


def _nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")


@pytest.fixture
def root_dir():
    # Not under pytest's tmp (mode 0700, root's): nobody must reach var.
    d = Path(tempfile.mkdtemp(prefix="postdoc-privdrop-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _ids(pid, field):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith(field + ":"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def _as_nobody(root_dir, name):
    """A server with server.user = nobody and a var/ nobody owns."""
    nobody = _nobody()
    srv = H.Server(root_dir / name, server={"user": "nobody"}, name=name)
    srv.var.mkdir(parents=True)
    os.chown(srv.var, nobody.pw_uid, nobody.pw_gid)
    return srv, nobody


def _send(srv, addr):
    data = (b"From: " + SENDER.encode() + b"\r\nTo: " + addr.encode()
            + b"\r\nSubject: priv\r\n\r\nhello\r\n")
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], data)
    c.close()
    return r


def test_serve_as_root_drops_to_user(root_dir):
    srv, nobody = _as_nobody(root_dir, "privdrop")
    srv.start()
    try:
        assert _ids(srv.pid, "Uid") == [nobody.pw_uid] * 4
        assert _ids(srv.pid, "Gid") == [nobody.pw_gid] * 4
        srv.add_account("PRIV")
        addr = srv.create_dossier("PRIV", contact=SENDER)
        r = _send(srv, addr)
        assert r.code == 250, r
        assert "running as nobody" in srv.log_text()
    finally:
        srv.stop_and_check()


def test_unknown_user_is_refused(root_dir):
    srv = H.Server(root_dir / "srv2", server={"user": "no-such-user-pd"},
                   name="privdrop-bad")
    with pytest.raises(H.ServerError) as e:
        srv.start()
    assert "no-such-user-pd" in str(e.value)


def test_cli_as_root_leaves_var_to_its_owner(root_dir):
    """Commands run as root before serve's first start (the store, the
    blob tree, the keys they create) leave var/ usable by server.user:
    everything root made there belongs to var's owner, and serve as
    nobody then takes mail."""
    srv, _ = _as_nobody(root_dir, "privdrop-cli")
    srv.write_config()
    srv.add_account("PRIV")
    addr = srv.create_dossier("PRIV", contact=SENDER)
    srv.cli("purpose", "add", "PRIV", "news")
    made = [p for p in srv.var.rglob("*")]
    assert any(p.name == "blobs" for p in made), made
    root_owned = [str(p) for p in made if p.lstat().st_uid == 0]
    assert root_owned == [], root_owned
    srv.start()
    try:
        r = _send(srv, addr)
        assert r.code == 250, r
    finally:
        srv.stop_and_check()

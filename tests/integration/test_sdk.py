"""
The plugin SDK as a plugin author meets it: `make install` into a
scratch prefix installs postdoc/plugin.h and postdoc-plugin.pc; the
example plugin of docs/plugins.md builds out of tree with nothing but
pkg-config and cc; `postdoc serve` loads it by path and, through SMTP,
refuses an oversized attachment (554 5.7.1 naming it) and files a small
one.  Needs the build tree (POSTDOC_BUILDDIR, set by `make check`).
"""
import os
import shutil
import subprocess
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest

import postdoc_harness as H
from postdoc_harness import T

BUILDDIR = os.environ.get("POSTDOC_BUILDDIR", "")
SENDER = "alice@sender.example"
MAX_SIZE = 4096

pytestmark = pytest.mark.skipif(
    not BUILDDIR or not Path(BUILDDIR, "Makefile").is_file()
    or shutil.which("pkg-config") is None or shutil.which("cc") is None,
    reason="needs POSTDOC_BUILDDIR (make check), pkg-config and cc")


def _make_env():
    # A nested make must not join the outer make's jobserver.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    return env


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """(prefix, built example.so) from a scratch `make install`."""
    tmp = tmp_path_factory.mktemp("sdk")
    inst = tmp / "inst"
    p = subprocess.run(["make", "-s", "install", "prefix=%s" % inst],
                       cwd=BUILDDIR, env=_make_env(), capture_output=True,
                       text=True, timeout=T(120))
    assert p.returncode == 0, p.stdout + p.stderr
    pc_dir = inst / "lib" / "pkgconfig"
    env = dict(os.environ, PKG_CONFIG_PATH=str(pc_dir))
    cflags = subprocess.run(["pkg-config", "--cflags", "postdoc-plugin"],
                            env=env, capture_output=True, text=True,
                            timeout=30)
    assert cflags.returncode == 0, cflags.stderr
    assert "-I%s" % (inst / "include") in cflags.stdout.split(), cflags.stdout
    plugindir = subprocess.run(["pkg-config", "--variable=plugindir",
                                "postdoc-plugin"], env=env,
                               capture_output=True, text=True, timeout=30)
    assert plugindir.stdout.strip() == str(inst / "lib" / "postdoc")
    assert (inst / "include" / "postdoc" / "plugin.h").is_file()
    so = tmp / "example.so"
    src = H.SRCDIR / "docs" / "example-plugin" / "example.c"
    cc = subprocess.run(["cc", "-shared", "-fPIC", "-Wall", "-Wextra",
                         "-Werror", "-o", str(so), str(src)]
                        + cflags.stdout.split(),
                        capture_output=True, text=True, timeout=T(60))
    assert cc.returncode == 0, cc.stderr
    return inst, so


@pytest.fixture(scope="module")
def srv(servers, sdk):
    s = servers(start=False)
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "example", "path": str(sdk[1]),
         "settings": {"max_size": MAX_SIZE}}])
    s.write_config()
    s.start()
    s.add_account("SDK")
    return s


def _message(addr, name, data):
    m = MIMEMultipart()
    m["From"], m["To"], m["Subject"] = SENDER, addr, "sdk " + name
    m.attach(MIMEText("see attached\n"))
    part = MIMEApplication(data, "octet-stream")
    part.add_header("Content-Disposition", "attachment", filename=name)
    m.attach(part)
    return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_sdk_installs_header_and_pkgconfig(sdk):
    inst, so = sdk
    pc = (inst / "lib" / "pkgconfig" / "postdoc-plugin.pc").read_text()
    assert "Requires: libconfig" in pc
    assert so.is_file()


def test_pkgconfig_names_the_headers_abi_and_the_release(sdk):
    """abi= is the header's POSTDOC_PLUGIN_ABI, --modversion the release:
    what a plugin that wants either gets without a core header."""
    inst, _ = sdk
    env = dict(os.environ, PKG_CONFIG_PATH=str(inst / "lib" / "pkgconfig"))
    hdr = (inst / "include" / "postdoc" / "plugin.h").read_text()
    abi = [ln.split()[2] for ln in hdr.splitlines()
           if ln.startswith("#define POSTDOC_PLUGIN_ABI ")]
    got = subprocess.run(["pkg-config", "--variable=abi", "postdoc-plugin"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert [got.stdout.strip()] == abi, (got.stdout, abi)
    ver = subprocess.run(["pkg-config", "--modversion", "postdoc-plugin"],
                         env=env, capture_output=True, text=True, timeout=30)
    mk = (Path(BUILDDIR) / "Makefile").read_text()
    assert "PACKAGE_VERSION = %s\n" % ver.stdout.strip() in mk, ver.stdout


def test_example_plugin_refuses_oversized_attachment(srv):
    addr = srv.create_dossier("SDK", contact=SENDER)
    big = _message(addr, "huge.bin", b"x" * (MAX_SIZE + 1))
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], big)
    c.close()
    assert r.code == 554, r
    assert "5.7.1" in r.text and "huge.bin" in r.text, r
    assert srv.show(addr)["documents"] == []


def test_example_plugin_accepts_small_attachment(srv):
    addr = srv.create_dossier("SDK", contact=SENDER)
    small = _message(addr, "small.bin", b"y" * 100)
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], small)
    c.close()
    assert r.code == 250, r
    names = [d["filename"] for d in srv.show(addr)["documents"]]
    assert names == ["small.bin"], names

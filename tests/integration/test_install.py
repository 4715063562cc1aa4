"""
`make install` into a scratch prefix puts everything where an operator
looks: the binary, the plugins in $(libdir)/postdoc, the templates, a
sample config whose paths are the installed ones (and which the installed
binary accepts and can serve with), a sandboxed systemd unit naming the
installed paths, and man pages that render without warnings.  A second
install keeps an edited config.  Needs POSTDOC_BUILDDIR (make check).
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import postdoc_harness as H
from postdoc_harness import T

BUILDDIR = os.environ.get("POSTDOC_BUILDDIR", "")
PLACEHOLDER = re.compile(r"@[a-z_]+@")

pytestmark = pytest.mark.skipif(
    not BUILDDIR or not Path(BUILDDIR, "Makefile").is_file(),
    reason="needs POSTDOC_BUILDDIR (make check)")


def make(*args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    p = subprocess.run(["make", "-s"] + list(args), cwd=BUILDDIR, env=env,
                       capture_output=True, text=True, timeout=T(120))
    assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("install") / "usr"
    make("install", "prefix=%s" % prefix)
    return prefix


def test_files_in_place(inst):
    assert os.access(inst / "bin" / "postdoc", os.X_OK)
    for name in ("filetype", "file", "smtp", "dkim", "mailbox"):
        assert (inst / "lib" / "postdoc" / ("%s.so" % name)).is_file(), name
    assert (inst / "share" / "postdoc" / "templates").is_dir()
    assert (inst / "include" / "postdoc" / "plugin.h").is_file()
    assert (inst / "lib" / "pkgconfig" / "postdoc-plugin.pc").is_file()
    assert (inst / "share" / "man" / "man8" / "postdoc.8").is_file()
    assert (inst / "share" / "man" / "man5" / "postdoc.conf.5").is_file()
    assert (inst / "var" / "lib" / "postdoc").is_dir()


def test_sample_config_names_installed_paths(inst):
    conf = inst / "etc" / "postdoc" / "postdoc.conf"
    text = conf.read_text()
    assert 'plugin_dir = "%s"' % (inst / "lib" / "postdoc") in text
    assert 'var_dir = "%s"' % (inst / "var" / "lib" / "postdoc") in text
    assert ('template_dir = "%s"' % (inst / "share" / "postdoc" /
                                       "templates")) in text
    assert '"var/' not in text
    # The installed binary accepts it from anywhere, loading the
    # installed plugins.
    p = subprocess.run([str(inst / "bin" / "postdoc"), "--config",
                        str(conf), "check-config", "-v"], cwd="/",
                       capture_output=True, text=True, timeout=T(30))
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'server.plugin_dir = "%s"' % (inst / "lib" / "postdoc") \
        in p.stdout
    for line in p.stdout.splitlines():
        if ".path = " in line:
            assert str(inst / "lib" / "postdoc") in line, line


def test_reinstall_keeps_edited_config(inst):
    conf = inst / "etc" / "postdoc" / "postdoc.conf"
    conf.write_text(conf.read_text() + "# edited by the operator\n")
    make("install", "prefix=%s" % inst)
    assert conf.read_text().endswith("# edited by the operator\n")


def test_systemd_unit(inst):
    unit = (inst / "lib" / "systemd" / "system" / "postdoc.service")
    text = unit.read_text()
    assert not PLACEHOLDER.search(text), PLACEHOLDER.search(text)
    assert ("ExecStart=%s --config %s serve" % (
        inst / "bin" / "postdoc", inst / "etc" / "postdoc" / "postdoc.conf")
        in text)
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict",
                 "PrivateTmp=yes", "ProtectHome=yes",
                 "ReadWritePaths=%s" % (inst / "var" / "lib" / "postdoc")):
        assert line + "\n" in text, line
    if shutil.which("systemd-analyze"):
        p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            str(unit)], capture_output=True, text=True,
                           timeout=T(30))
        # Only the unit's own syntax: no running systemd needed.
        bad = [l for l in p.stderr.splitlines()
               if "postdoc.service:" in l and ("Unknown" in l
                                              or "Invalid" in l)]
        assert not bad, p.stderr


@pytest.mark.parametrize("page", ["man8/postdoc.8", "man5/postdoc.conf.5"])
def test_man_pages_render_cleanly(inst, page):
    path = inst / "share" / "man" / page
    assert not PLACEHOLDER.search(path.read_text())
    if shutil.which("groff") is None:
        pytest.skip("groff not installed")
    # -Wbreak: a long install prefix may not fit a line; not the page's.
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-Wbreak", "-z",
                        str(path)],
                       capture_output=True, text=True, timeout=T(30))
    assert p.returncode == 0 and p.stderr == "", p.stderr

"""
The manual pages keep up with the code: every configuration parameter
`check-config -v` prints is described in postdoc.conf(5) under its group,
and every command `postdoc help` lists is in postdoc(8).  A parameter or
a command added without its documentation fails here.
"""
import re
import subprocess

import postdoc_harness as H

DOCS = H.SRCDIR / "docs"


def run(tmp_path, *args):
    """postdoc on an empty config file: the embedded defaults."""
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    p = subprocess.run([H.BIN, "--config", str(conf)] + list(args),
                       capture_output=True, text=True, timeout=30)
    return p.stdout + p.stderr


def man_params():
    """{group: {key, ...}} from the .SS sections of postdoc.conf.5."""
    groups, cur = {}, None
    for line in (DOCS / "postdoc.conf.5").read_text().splitlines():
        m = re.match(r"\.SS (\S+)$", line)
        if m:
            cur = groups.setdefault(m.group(1), set())
            continue
        m = re.match(r"\.BR (\w+) \" \(default", line)
        if m and cur is not None:
            cur.add(m.group(1))
    return groups


def test_every_parameter_is_in_postdoc_conf_5(tmp_path):
    params = re.findall(r"^(\w+)\.(\w+) = ",
                        run(tmp_path, "check-config", "-v"), re.M)
    assert len(params) > 60
    documented = man_params()
    missing = ["%s.%s" % (g, k) for g, k in params
               if k not in documented.get(g, set())]
    assert missing == [], "not in docs/postdoc.conf.5: %s" % missing


def test_every_command_is_in_postdoc_8(tmp_path):
    cmds = re.findall(r"^  postdoc ([a-z-]+(?: [a-z-]+)?)",
                      run(tmp_path, "help"), re.M)
    assert "token create" in cmds and "events retry" in cmds
    page = (DOCS / "postdoc.8").read_text().replace("\\-", "-")
    missing = [c for c in cmds if '.B "postdoc %s' % c not in page]
    assert missing == [], "not in docs/postdoc.8: %s" % missing

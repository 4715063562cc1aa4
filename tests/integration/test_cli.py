"""
The operator CLI against a real store: check-config reports file:line,
dossier create mints proper intake addresses, list/show speak JSON,
closing a dossier makes the running server refuse mail for it,
`document get` without -o saves under the document's own name and never
overwrites, and `message get` after a purge says when retention took it.
"""
import calendar
import re
import subprocess
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H


@pytest.fixture(scope="module")
def srv(servers):
    s = servers()
    s.add_account("ACME")
    s.add_account("OTHER")
    return s


def write_conf(tmp, text):
    p = tmp / "bad.conf"
    p.write_text(text)
    return p


def check_config(path):
    return subprocess.run([H.BIN, "--config", str(path), "check-config"],
                          capture_output=True, text=True, timeout=30)


def test_check_config_accepts_the_test_config(srv):
    p = check_config(srv.conf)
    assert p.returncode == 0, p.stderr
    assert "config OK: %s" % srv.conf in p.stdout


def test_check_config_accepts_the_shipped_config():
    conf = H.SRCDIR / "conf" / "postdoc.conf"
    p = check_config(conf)
    assert p.returncode == 0, p.stderr
    assert "config OK" in p.stdout


def _assert_points_at(p, path, line, *words):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    want = "%s:%d:" % (path, line)
    lines = [l for l in p.stderr.splitlines() if l.startswith(want)]
    assert lines, "no %r line in stderr:\n%s" % (want, p.stderr)
    for w in words:
        assert any(w in l for l in lines), (w, lines)


def test_check_config_syntax_error_names_file_and_line(tmp):
    path = write_conf(tmp, 'server = {\n  hostname = "a";\n'
                      '  workers = ;\n  log_level = "debug";\n};\n')
    _assert_points_at(check_config(path), path, 3)


def test_check_config_unknown_key_names_file_and_line(tmp):
    path = write_conf(tmp, 'server = {\n  hostname = "a";\n};\n'
                      'limits = {\n  line_max = 512;\n'
                      '  line_maximum = 1024;\n};\n')
    _assert_points_at(check_config(path), path, 6, "line_maximum")


def test_check_config_type_error_names_file_and_line(tmp):
    path = write_conf(tmp, 'server = {\n  hostname = "a";\n'
                      '  workers = "two";\n};\n')
    _assert_points_at(check_config(path), path, 3, "workers")


def test_check_config_out_of_bounds_names_file_and_line(tmp):
    path = write_conf(tmp, 'limits = {\n  rcpt_max = 0;\n};\n')
    _assert_points_at(check_config(path), path, 2, "rcpt_max")


# -- check-config checks what serve checks (issue 17): plugins load and
#    accept their settings, var_dir's parent exists.

def plugin_conf(tmp, plugins, var=None, server=None):
    """A config whose `plugins` list is the text given (one entry per
    line, so each entry's line is known), in a file of tmp."""
    srv = {"plugin_dir": H.PLUGIN_DIR, "smtp_listen":
           "127.0.0.1:%d" % H.free_port(), "lmtp_listen": ""}
    srv.update(server or {})
    text = H.libconfig_text({
        "server": srv,
        "store": {"var_dir": str(var or tmp / "var")},
        "intake": {"domain": H.INTAKE_DOMAIN}})
    first = text.count("\n") + 2       # line of the first entry
    text += "plugins = (\n%s\n);\n" % ",\n".join(plugins)
    return write_conf(tmp, text), first


def test_check_config_refuses_a_plugin_that_does_not_exist(tmp):
    path, line = plugin_conf(tmp, ['{ name = "filetype"; }',
                                   '{ name = "no_such_plugin"; }'])
    p = check_config(path)
    _assert_points_at(p, path, line + 1, "plugin no_such_plugin",
                      "no such plugin")
    assert "config OK" not in p.stdout


def test_check_config_runs_the_plugins_settings_check(tmp):
    """Two allow lists for one account: filetype's init refuses them, so
    check-config must too, with the plugin's own reason."""
    path, line = plugin_conf(tmp, [
        '{ name = "filetype"; settings = { accounts = ('
        ' { name = "ACME"; allow = [ "application/pdf" ]; },'
        ' { name = "ACME"; allow = [ "text/plain" ]; } ); }; }'])
    p = check_config(path)
    _assert_points_at(p, path, line, "plugin filetype",
                      "account 'ACME' has two allow lists")
    assert "config OK" not in p.stdout


def test_check_config_checks_plugins_without_starting_them(tmp):
    """The file transport's init refuses an empty dir; given a good one,
    check-config creates nothing: init only checks (start, or the first
    delivery, makes the outbox), and var_dir is serve's to create."""
    path, line = plugin_conf(tmp, [
        '{ name = "filetype"; }',
        '{ name = "file"; settings = { dir = ""; }; }'])
    _assert_points_at(check_config(path), path, line + 1, "plugin file",
                      "dir must be a path")
    outbox = tmp / "outbox"
    path, _ = plugin_conf(tmp, [
        '{ name = "file"; settings = { dir = "%s"; }; }' % outbox,
        '{ name = "filetype"; }'])
    p = check_config(path)
    assert p.returncode == 0, p.stderr
    assert "config OK: %s" % path in p.stdout
    assert sorted(x.name for x in tmp.iterdir()) == ["bad.conf"]


def test_check_config_loads_the_starttls_certificate(tmp, tls_pair):
    """serve loads the certificate before it listens; check-config too
    (a key that is not the certificate's is refused by both)."""
    cert, key = tls_pair
    path, _ = plugin_conf(tmp, ['{ name = "filetype"; }'], server={
        "tls_cert": str(cert), "tls_key": str(key)})
    p = check_config(path)
    assert p.returncode == 0, p.stderr
    other = tmp / "other-key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out",
                    str(other)], check=True, capture_output=True,
                   timeout=H.T(60))
    path, _ = plugin_conf(tmp, ['{ name = "filetype"; }'], server={
        "tls_cert": str(cert), "tls_key": str(other)})
    p = check_config(path)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "TLS certificate %s / key %s" % (cert, other) in p.stderr
    assert "config OK" not in p.stdout


def test_var_dir_whose_parent_is_missing_is_refused(tmp):
    """check-config and serve both refuse it, and serve creates nothing:
    a mistyped or unmounted parent must not become an empty store."""
    var = tmp / "not-mounted" / "var"
    path, _ = plugin_conf(tmp, ['{ name = "filetype"; }'], var=var)
    line = [n for n, l in enumerate(path.read_text().splitlines(), 1)
            if "var_dir" in l][0]
    _assert_points_at(check_config(path), path, line, "store.var_dir",
                      "%s does not exist" % var.parent)
    serve = subprocess.Popen([H.BIN, "--config", str(path), "serve"],
                             stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        out, err = serve.communicate(timeout=H.T(30))
    except subprocess.TimeoutExpired:
        serve.kill()
        serve.communicate()
        pytest.fail("serve ran with var_dir %s" % var)
    assert serve.returncode == 1, (serve.returncode, err)
    assert "%s:%d:" % (path, line) in err, err
    assert not var.parent.exists()


def test_serve_prints_why_it_did_not_start_before_it_stops(tmp):
    path, line = plugin_conf(tmp, ['{ name = "no_such_plugin"; }'])
    p = subprocess.run([H.BIN, "--config", str(path), "serve"],
                       capture_output=True, text=True, timeout=H.T(30))
    assert p.returncode == 1, p.stderr
    why = "%s:%d: plugin no_such_plugin: no such plugin" % (path, line)
    assert why in p.stderr, p.stderr
    assert "postdoc stopped" in p.stderr, p.stderr
    assert p.stderr.index(why) < p.stderr.index("postdoc stopped"), \
        p.stderr


def test_dossier_create_prints_a_fresh_intake_address(srv):
    a = srv.create_dossier("ACME", contact="alice@sender.example",
                           ref="CLI-1")
    b = srv.create_dossier("ACME", contact="alice@sender.example",
                           ref="CLI-2")
    assert H.ADDRESS_RE.match(a), a
    assert H.ADDRESS_RE.match(b), b
    assert a != b


def test_dossier_create_for_unknown_account_fails(srv):
    p = srv.cli("dossier", "create", "--account", "NOSUCH", "--contact",
                "x@example.com", "--ref", "X", check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stdout.strip() == ""


def test_usage_error_exits_2(srv):
    p = srv.cli("dossier", "create", "--account", "ACME", check=False)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    p = srv.cli("no-such-command", check=False)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)


def test_dossier_list_and_show_json(srv):
    addr = srv.create_dossier("OTHER", contact="bob@sender.example",
                              ref="CLI-SHOW")
    rows = srv.dossiers()
    mine = [d for d in rows if d["address"] == addr]
    assert len(mine) == 1, rows
    assert mine[0]["account"] == "OTHER"
    assert mine[0]["status"] == "open"
    only_other = srv.dossiers("--account", "OTHER")
    assert {d["account"] for d in only_other} == {"OTHER"}
    assert addr in {d["address"] for d in only_other}
    d = srv.show(addr)
    for key in ("id", "account", "ref", "contact", "address", "status",
                "created", "closed", "documents", "messages", "events"):
        assert key in d, (key, d)
    assert d["ref"] == "CLI-SHOW"
    assert d["contact"] == "bob@sender.example"
    assert d["address"] == addr
    assert d["documents"] == [] and d["messages"] == []


def test_account_rejects_bad_sender_policy(srv):
    p = srv.cli("account", "add", "BADPOL", "--sender-policy", "everyone",
                check=False)
    assert p.returncode in (1, 2), (p.returncode, p.stderr)


def test_closed_dossier_refuses_mail(srv):
    addr = srv.create_dossier("ACME", contact="alice@sender.example",
                              ref="CLI-CLOSE")
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<alice@sender.example>").code == 250
        r = c.cmd("RCPT TO:<%s>" % addr)
        assert r.code == 250, r
    srv.cli("dossier", "close", srv.dossier_id(addr))
    d = srv.show(addr)
    assert d["status"] == "closed"
    assert d["closed"]
    closed = srv.dossiers("--status", "closed")
    assert addr in {x["address"] for x in closed}
    assert addr not in {x["address"] for x in srv.dossiers("--status",
                                                           "open")}
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<alice@sender.example>").code == 250
        r = c.cmd("RCPT TO:<%s>" % addr)
        assert (r.code, r.enhanced) == (550, "5.1.1"), r


# ------------------------------------------- document get, message get

@pytest.fixture(scope="module")
def mail(servers):
    """A running server whose raw copies retention keeps 30 days."""
    s = servers(start=False)
    s.sections["privacy"] = {"raw_messages_days": 30}
    s.write_config()
    s.start()
    s.add_account("ACME")
    return s


def _mail_with_pdf(srv, ref, filename, tag):
    addr = srv.create_dossier("ACME", ref=ref)
    msg = EmailMessage()
    msg["From"] = H.CORPUS_CONTACT
    msg["To"] = addr
    msg["Subject"] = "papers " + tag
    msg.set_content("see attached\n")
    pdf = H.make_pdf(tag)
    msg.add_attachment(pdf, maintype="application", subtype="pdf",
                       filename=filename)
    data = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    reply, conn = H.send_raw_message(srv.smtp_port, H.CORPUS_CONTACT,
                                     [addr], data)
    conn.close()
    assert reply.code == 250, reply
    return srv.show(addr), pdf


def _postdoc(srv, cwd, *args):
    return subprocess.run([H.BIN, "--config", str(srv.conf)] +
                          [str(a) for a in args], cwd=str(cwd),
                          capture_output=True, text=True, timeout=60)


def test_document_get_without_o_saves_under_its_own_name_once(mail, tmp):
    # The sender's "../../" is gone at intake; the file lands here, named
    # after the document, and a second get never overwrites it.
    d, pdf = _mail_with_pdf(mail, "CLI-DOC", "../../payslip.pdf", "doc")
    doc = d["documents"][0]
    assert doc["filename"] == "payslip.pdf", doc
    p = _postdoc(mail, tmp, "document", "get", doc["id"])
    assert (p.returncode, p.stdout, p.stderr) == (0, "payslip.pdf\n", "")
    assert (tmp / "payslip.pdf").read_bytes() == pdf
    assert sorted(x.name for x in tmp.iterdir()) == ["payslip.pdf"]

    (tmp / "payslip.pdf").write_bytes(b"mine")
    p = _postdoc(mail, tmp, "document", "get", doc["id"])
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == ""
    assert p.stderr == "postdoc: payslip.pdf already exists; not " \
        "overwritten (name another file with -o FILE)\n", p.stderr
    assert (tmp / "payslip.pdf").read_bytes() == b"mine"
    # -o still names the file (and may replace it: the operator chose).
    p = _postdoc(mail, tmp, "document", "get", doc["id"], "-o",
                 "payslip.pdf")
    assert (p.returncode, p.stdout) == (0, ""), p.stderr
    assert (tmp / "payslip.pdf").read_bytes() == pdf


def test_message_get_after_a_purge_says_when_retention_took_it(mail, tmp):
    d, _ = _mail_with_pdf(mail, "CLI-PURGE", "a.pdf", "purge")
    mid = d["messages"][0]["id"]
    assert mail.message_get(mid)            # there before the purge
    before = int(time.time())
    mail.cli("purge", "--now", "2099-01-01")
    after = int(time.time())
    p = mail.cli("message", "get", mid, "-o", tmp / "m.eml", check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    m = re.fullmatch(r"postdoc: message %d: its raw copy was purged on "
                     r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) by retention\n"
                     % mid, p.stderr)
    assert m, p.stderr
    at = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ"))
    assert before <= at <= after, (before, m.group(1), after)
    assert not (tmp / "m.eml").exists()
    shown = mail.show(d["address"])["messages"][0]
    assert shown["raw_removed"] == "retention", shown
    assert shown["raw_removed_at"] == at, shown

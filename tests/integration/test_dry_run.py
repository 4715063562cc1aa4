"""
`invite --dry-run` and `remind --dry-run` (issue 15): each prints what
would be queued and to whom, and changes nothing: every table's rows and
the var/ file tree are the same before and after (no item, no contact
language, no due date, no reminder clock, no outbound row, no spool
file, no event).  The remind dry run says why the other dossiers are not
reminded now, and the real run that follows queues exactly what it said.
`--no-send` is gone with a message that names what replaced it.

The server is not started: nothing but the commands under test touches
the store while the state is compared (delivery is the CLI's own, to
the file transport).
"""
import hashlib
import json
import sqlite3
import time

import pytest

import postdoc_harness as H
from postdoc_harness import T

DAY = 86400
FROM = "onboarding@acme.example"


@pytest.fixture(scope="module")
def srv(servers):
    s = servers(start=False)
    s.sections["outbound"] = {
        "transport": "file", "template_dir": str(H.SRCDIR / "templates"),
        "retry_base": 1, "rate": 0, "reminder_days": "3,7"}
    s.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS", "locale": "en",
         "from_name": "Claire Dubois", "from_addr": FROM}])
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(s.var / "outbox")}}])
    s.write_config()
    s.add_account("ACME", "contact")
    return s


def snapshot(srv):
    """Every row of every table, and every other file under var/ with
    its bytes' hash."""
    con = sqlite3.connect("file:%s?mode=ro" % (srv.var / "postdoc.db"),
                          uri=True, timeout=T(10))
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " ORDER BY name")]
        rows = {t: sorted(map(repr, con.execute('SELECT * FROM "%s"' % t)))
                for t in tables}
    finally:
        con.close()
    files = {}
    for p in sorted(srv.var.rglob("*")):
        name = str(p.relative_to(srv.var))
        # The database is compared by its rows above: its bytes change
        # whenever SQLite checkpoints the WAL at a connection's close,
        # which a read-only command may be the one to do.
        if p.is_dir() or name.startswith("postdoc.db"):
            continue
        files[name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return rows, files


def assert_unchanged(before, after):
    rows_b, files_b = before
    rows_a, files_a = after
    assert {t: len(v) for t, v in rows_a.items()} == \
        {t: len(v) for t, v in rows_b.items()}
    for t in rows_b:
        assert rows_a[t] == rows_b[t], "table %s changed" % t
    assert files_a == files_b


def set_items_state(srv, did, state):
    with sqlite3.connect(str(srv.var / "postdoc.db"), timeout=T(10)) as c:
        c.execute("UPDATE dossier_items SET state = ? WHERE dossier_id = ?",
                  (state, did))


def dossier(srv, contact, items=None, invite=True):
    addr = srv.create_dossier("ACME", contact=contact)
    did = srv.dossier_id(addr)
    if invite:
        args = ["invite", did]
        if items:
            args += ["--documents", items]
        srv.cli_json(*args)
    return addr, did


@pytest.fixture(scope="module")
def world(srv):
    """due: invited, two items missing; done: invited, all accepted;
    fresh: never invited; closed: invited then closed."""
    w = {}
    w["due"] = dossier(srv, "zoe@client.example", "ID card,Proof of address")
    w["done"] = dossier(srv, "paul@client.example", "ID card")
    set_items_state(srv, w["done"][1], "accepted")
    w["fresh"] = dossier(srv, "ines@client.example", invite=False)
    w["closed"] = dossier(srv, "marc@client.example", "ID card")
    srv.cli("dossier", "close", w["closed"][1])
    return w


def when(days):
    return str(int(time.time()) + days * DAY)


def line_of(out, did):
    lines = [l for l in out.splitlines()
             if l.startswith("dossier %d " % did)]
    assert len(lines) == 1, out
    return lines[0]


def test_remind_dry_run_says_who_and_why_and_changes_nothing(srv, world):
    before = snapshot(srv)
    out = srv.cli("remind", "--dry-run", "--now", when(4)).stdout
    assert_unchanged(before, snapshot(srv))
    assert out.startswith("dry run at ")
    due = line_of(out, world["due"][1])
    assert "zoe@client.example" in due
    assert "reminder 1 would be queued" in due
    assert "outstanding: ID card, Proof of address" in due
    assert "nothing outstanding" in line_of(out, world["done"][1])
    assert "not invited yet" in line_of(out, world["fresh"][1])
    assert "1 closed dossier: never reminded" in out
    assert out.rstrip().endswith("1 reminder would be queued")


def test_remind_dry_run_not_due_yet_names_the_day(srv, world):
    before = snapshot(srv)
    out = srv.cli("remind", "--dry-run", "--now", when(1)).stdout
    assert_unchanged(before, snapshot(srv))
    assert "not reminded: not due until " in line_of(out, world["due"][1])
    assert out.rstrip().endswith("0 reminders would be queued")


def test_remind_dry_run_json_then_the_real_run_does_what_it_said(srv, world):
    before = snapshot(srv)
    plan = srv.cli_json("remind", "--dry-run", "--now", when(4))
    assert_unchanged(before, snapshot(srv))
    assert plan["dry_run"] is True and plan["would_queue"] == 1
    by_id = {d["id"]: d for d in plan["dossiers"]}
    due = by_id[world["due"][1]]
    assert due["remind"] is True and due["number"] == 1
    assert due["contact"] == "zoe@client.example"
    assert due["outstanding"] == ["ID card", "Proof of address"]
    assert by_id[world["closed"][1]]["reason"] == "closed"
    assert by_id[world["done"][1]]["reason"] == "nothing outstanding"
    # the real run acts on the same plan
    assert srv.cli_json("remind", "--now", when(4)) == {"queued": 1}
    rows = [r for r in srv.cli_json("queue", "list", "--account", "ACME")
            if r["kind"] == "reminder"]
    assert [r["rcpt"] for r in rows] == ["zoe@client.example"]
    # and a second dry run now sees the reminder's clock
    again = srv.cli_json("remind", "--dry-run", "--now", when(4))
    assert again["would_queue"] == 0


def test_invite_dry_run_prints_the_message_and_records_nothing(srv):
    addr = srv.create_dossier("ACME", contact="Zoé Martin <zoe2@client.example>")
    did = srv.dossier_id(addr)
    local, domain = addr.split("@")
    before = snapshot(srv)
    p = srv.cli("invite", did, "--dry-run", "--documents",
                "ID card,Proof of address", "--due", "2026-12-20",
                "--locale", "fr")
    assert_unchanged(before, snapshot(srv))
    out = p.stdout
    assert out.startswith("dry run: nothing queued, nothing recorded\n")
    assert "From: Claire Dubois <%s>\n" % FROM in out
    assert "To: Zoé Martin <zoe2@client.example>\n" in out
    assert "Reply-To: %s\n" % addr in out
    assert "Language: fr\n" in out
    assert "ID card (required): %s+id-card@%s  (new" % (local, domain) in out
    assert "%s+proof-of-address@%s" % (local, domain) in out
    assert "20 décembre 2026" in out      # the due date, in her language
    # the same through --json
    j = json.loads(srv.cli("invite", did, "--dry-run", "--documents",
                           "ID card", "--json").stdout)
    assert j["dry_run"] is True and j["to"] == "zoe2@client.example"
    assert j["from_addr"] == FROM and j["subject"]
    assert j["items"] == [{"label": "ID card", "required": True, "new": True,
                           "address": "%s+id-card@%s" % (local, domain)}]
    assert_unchanged(before, snapshot(srv))
    # the real invitation then goes as the dry run said
    real = srv.cli_json("invite", did, "--documents", "ID card")
    assert real["rcpt"] == "zoe2@client.example"
    items = srv.show(addr)["items"]
    assert [i["label"] for i in items] == ["ID card"]


def test_invite_dry_run_fails_as_the_real_run_would(srv, world):
    closed = world["closed"][1]
    before = snapshot(srv)
    p = srv.cli("invite", closed, "--dry-run", check=False)
    assert p.returncode == 1 and "closed" in p.stderr
    addr = srv.create_dossier("ACME", contact="leo@client.example")
    did = srv.dossier_id(addr)
    before = snapshot(srv)
    p = srv.cli("invite", did, "--dry-run", "--template", "no-such",
                check=False)
    assert p.returncode == 1 and "no-such" in p.stderr, p.stderr
    p = srv.cli("invite", did, "--dry-run", "--documents",
                "ID card,ID-card", check=False)
    assert p.returncode == 1 and "+id-card" in p.stderr, p.stderr
    p = srv.cli("invite", did, "--dry-run", "--queue-only", check=False)
    assert p.returncode == 2 and "--queue-only" in p.stderr
    assert_unchanged(before, snapshot(srv))


@pytest.mark.parametrize("args", [("remind",), ("invite", "1"),
                                  ("campaign", "send", "1"),
                                  ("dossier", "close", "1", "--notify")])
def test_no_send_is_gone_with_a_pointer(srv, args):
    before = snapshot(srv)
    p = srv.cli(*(list(args) + ["--no-send"]), check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.strip() == (
        "postdoc: --no-send is gone: use --dry-run to change nothing, or "
        "--queue-only to leave delivery to the running server")
    assert_unchanged(before, snapshot(srv))


def test_help_says_what_each_option_does(srv):
    out = srv.cli("help").stdout
    assert "remind [--now YYYY-MM-DD|EPOCH] [--queue-only | --dry-run]" in out
    assert "--dry-run (invite, remind, campaign send, notice send): " \
        "print what would be\nqueued and to whom, change nothing." in out
    assert "--queue-only: queue only; the running server delivers." in out
    assert "--no-send" not in out


def test_dry_runs_say_when_the_queue_would_refuse_the_contact(srv):
    """Last in the file: it adds a dossier the others do not expect."""
    addr, did = dossier(srv, "gone@client.example", "ID card")
    srv.cli("contact", "suppress", "gone@client.example", "--account",
            "ACME", "--reason", "asked us to stop")
    before = snapshot(srv)
    out = srv.cli("remind", "--dry-run", "--now", when(4)).stdout
    line = line_of(out, did)
    assert "reminder 1 is due but the queue refuses the contact" in line
    assert "asked us to stop" in line
    p = srv.cli("invite", did, "--dry-run", check=False)
    assert p.returncode == 1
    assert "refuses gone@client.example" in p.stderr, p.stderr
    assert_unchanged(before, snapshot(srv))
    # the real run skips it too
    p = srv.cli("remind", "--now", when(4))
    assert "gone@client.example" in p.stderr       # warned, not queued
    assert [r for r in srv.cli_json("queue", "list", "--account", "ACME")
            if r["kind"] == "reminder" and r["dossier_id"] == did] == []


def test_newsletter_dry_runs_load_no_plugin_and_leave_no_file(servers):
    """A fresh deployment with DKIM: `campaign send --dry-run` and
    `notice send --dry-run` come first.  They must not load the plugins
    (DKIM makes its key when it loads) nor open the queue: var/ holds
    the same files after as before, and the first real send is the one
    that makes the key."""
    s = servers(start=False)
    s.sections["outbound"] = {
        "transport": "file", "template_dir": str(H.SRCDIR / "templates"),
        "retry_base": 1, "rate": 0}
    s.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS", "from_addr": FROM}])
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(s.var / "outbox")}},
        {"name": "dkim", "settings": {"key_dir": str(s.var / "dkim"),
                                      "selector": "news"}}])
    s.write_config()
    s.add_account("ACME")
    body = s.root / "news.md"
    body.write_text("# News\n\nHello.\n")
    s.cli("purpose", "add", "ACME", "newsletter")
    s.cli("consent", "grant", "anne@client.example", "--account", "ACME",
          "--purpose", "newsletter")
    s.cli("contact", "attest", "anne@client.example", "--account", "ACME",
          "--adult", "yes")
    cid = s.cli_json("campaign", "create", "--account", "ACME", "--purpose",
                     "newsletter", "--subject", "News", "--body",
                     body)["id"]
    before = snapshot(s)
    out = s.cli("campaign", "send", cid, "--dry-run").stdout
    assert "anne@client.example" in out
    out = s.cli("notice", "send", "--account", "ACME", "--template",
                "privacy-notice", "--dry-run").stdout
    assert "anne@client.example" in out
    assert_unchanged(before, snapshot(s))
    assert not (s.var / "dkim").exists()
    assert not (s.var / "outbox").exists()
    s.cli("campaign", "send", cid)
    assert list((s.var / "dkim").glob("*.key"))
    assert len(list((s.var / "outbox").glob("*.eml"))) == 1

"""
The command families (cli.c's own commands, consent, privacy, token/api,
events) all run through one runner (cli_args.c): these pin what an
operator sees from it, family by family - the exact usage messages and
exit codes, `help` listing every family in order, --help only at the
root, configuration errors as file:line before anything is opened, a
command that needs nothing not reading the configuration at all, a
failed write to stdout reported as a failure; lists with a header row on
a terminal only (a pseudo-terminal here), filters and dates that are
checked (an unknown state, 2099-02-30 or a 20-digit epoch is a usage
error naming the value), and INFO lines only with -v.
"""
import json
import os
import pty
import re
import sqlite3
import subprocess
import termios

import pytest

import postdoc_harness as H

TRY = "try 'postdoc help'\n"


@pytest.fixture(scope="module")
def srv(servers):
    s = servers(start=False)
    s.add_account("ACME")
    s.cli("purpose", "add", "ACME", "news")
    return s


@pytest.fixture(scope="module")
def bad_conf(tmp_path_factory):
    p = tmp_path_factory.mktemp("badconf") / "bad.conf"
    p.write_text("server = {\n  workers = ;\n};\n")
    return p


def run(*args, stdout=subprocess.PIPE):
    return subprocess.run([H.BIN] + [str(a) for a in args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60)


# (argv after --config, exact stderr); every one exits 2 before opening
# anything, so stdout stays empty.
USAGE = [
    (["bogus"], 'postdoc: unknown command "bogus"\n'),
    (["queue"], 'postdoc: unknown queue subcommand ""\n'),
    (["queue", "bogus"], 'postdoc: unknown queue subcommand "bogus"\n'),
    (["check-config", "--account=A"],
     "postdoc: option --account is not valid here\n"),
    (["mailbox", "check"], "postdoc: usage: postdoc mailbox check NAME\n"),
    (["--bogus", "account", "list"], "postdoc: unknown option --bogus\n"),
    (["consent", "bogus"], "postdoc: unknown consent subcommand\n"),
    (["consent", "--help"], "postdoc: unknown option --help\n"),
    (["consent", "grant", "a@b.example", "--account", "ACME"],
     "postdoc: option --purpose is required\n"),
    (["consent", "show", "a@b.example", "--account", "ACME", "--queue-only"],
     "postdoc: option --queue-only is not valid here\n"),
    (["consent", "grant", "a@b.example", "--queue-only=1"],
     "postdoc: option --queue-only=1 takes no value\n"),
    (["subject"], "postdoc: unknown subject subcommand\n"),
    (["subject", "export", "a@b.example"],
     "postdoc: option --output is required\n"),
    (["purge", "extra"], "postdoc: usage: postdoc purge [--dry-run] "
     "[--now YYYY-MM-DD|EPOCH] [--minors]   (retention)\n"),
    (["audit", "list", "--dry-run"],
     "postdoc: option --dry-run is not valid here\n"),
    (["token"], "postdoc: unknown token subcommand\n"),
    (["token", "create", "--account", "ACME"],
     "postdoc: option --name is required\n"),
    (["token", "list", "--account", "ACME", "x"],
     "postdoc: usage: postdoc token list --account A [--json]\n"),
    (["api", "routes", "--account", "ACME"],
     "postdoc: option --account is not valid here\n"),
    (["events"], "postdoc: usage: postdoc events list|retry ID\n"),
    (["events", "list", "extra"],
     "postdoc: usage: postdoc events list|retry ID\n"),
    (["events", "retry", "1", "--state", "done"],
     "postdoc: events retry takes no options\n"),
    (["--queue-only", "events", "list"], "postdoc: unknown option --queue-only\n"),
    (["checklist", "add", "ACME"], "postdoc: usage: postdoc checklist add "
     "ACCOUNT NAME --item SPEC [--item SPEC]... [--optional SPEC]... "
     "[--json]\n"),
    (["checklist", "list", "--item", "X"],
     "postdoc: option --item is not valid here\n"),
    (["document", "reject", "1"], "postdoc: option --reason is required\n"),
    (["document", "accept", "1", "--reason", "x"],
     "postdoc: option --reason is not valid here\n"),
    (["document", "assign", "1"], "postdoc: usage: postdoc document assign "
     "ID ITEM|none [--account NAME] [--json]\n"),
    (["dossier", "close", "1", "--reason", "x"],
     "postdoc: option --reason is not valid here\n"),
    (["dossier", "create", "--account", "ACME", "--contact", "a@b.example",
      "--ref", "R", "--item"], "postdoc: option --item needs a value\n"),
]


@pytest.mark.parametrize("argv,stderr", USAGE,
                         ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_exit_2_with_the_familys_message(srv, argv, stderr):
    p = run("--config", srv.conf, *argv)
    assert (p.returncode, p.stdout, p.stderr) == (2, "", stderr + TRY)


def test_usage_errors_come_before_the_configuration(bad_conf):
    # A broken config is not read when the words are already wrong.
    for argv in (["consent", "bogus"], ["events", "retry", "1", "--state",
                 "x"], ["token", "list"], ["bogus"]):
        p = run("--config", bad_conf, *argv)
        assert p.returncode == 2, (argv, p.stderr)
        assert "bad.conf:2" not in p.stderr, (argv, p.stderr)


@pytest.mark.parametrize("argv", [["account", "list"],
                                  ["consent", "show", "x", "--account", "A"],
                                  ["subject", "erase", "a@b.example"],
                                  ["token", "list", "--account", "ACME"],
                                  ["events", "list"], ["check-config"]])
def test_config_error_is_file_line_and_exit_1(bad_conf, argv):
    p = run("--config", bad_conf, *argv)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr == "%s:2: syntax error\n" % bad_conf, p.stderr
    assert p.stdout == ""


def test_a_command_that_needs_nothing_reads_no_configuration(bad_conf):
    p = run("--config", bad_conf, "api", "routes")
    assert p.returncode == 0, p.stderr
    assert "GET /metrics\n" in p.stdout


def test_help_lists_every_family_in_order():
    p = run("help")
    assert p.returncode == 0 and p.stderr == ""
    lines = p.stdout.splitlines()
    assert lines[0] == \
        "usage: postdoc [--config FILE] [--json] [-v] COMMAND ..."
    groups = [l.split()[1] for l in lines if l.startswith("  postdoc ")]
    order = []
    for g in groups:
        if not order or order[-1] != g:
            order.append(g)
    assert order == ["serve", "check-config", "account", "checklist",
                     "dossier",
                     "document", "message", "invite", "remind", "queue",
                     "template", "mailbox", "purpose", "consent", "contact",
                     "campaign", "notice", "token", "api", "subject", "purge",
                     "audit", "events", "auth", "help"], order
    assert "  postdoc events retry ID   (a failed or expired delivery, sent " \
        "again by serve)" in lines
    assert lines[-1] == "exit status: 0 ok, 1 failure, 2 usage error"


def test_help_forms_only_at_the_root():
    want = run("help").stdout
    for argv in (["--help"], ["-h"], ["help", "extra"]):
        p = run(*argv)
        assert (p.returncode, p.stdout, p.stderr) == (0, want, ""), argv
    p = run()
    assert (p.returncode, p.stdout, p.stderr) == (2, "", want)
    p = run("events", "list", "--help")
    assert (p.returncode, p.stderr) == (2, "postdoc: unknown option --help\n"
                                        + TRY)


@pytest.mark.parametrize("argv", [["account", "list"],
                                  ["purpose", "list", "ACME"],
                                  ["api", "routes"],
                                  ["audit", "list", "--json"],
                                  ["events", "list", "--json"]])
def test_a_failed_write_to_stdout_is_a_failure(srv, argv):
    with open("/dev/full", "w") as full:
        p = run("--config", srv.conf, *argv, stdout=full)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.startswith("postdoc: writing output: "), p.stderr


# ------------------------------------------------ what a list looks like

def on_tty(*argv):
    """Run postdoc with stdout on a pseudo-terminal (stderr a pipe);
    returns (exit status, what the terminal got, stderr)."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR              # keep "\n" as the program wrote
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    p = subprocess.Popen([H.BIN] + [str(a) for a in argv], stdout=slave,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:                     # EIO: the last writer closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    err = p.stderr.read().decode()
    p.stderr.close()
    return p.wait(timeout=60), out.decode(), err


LISTS = [
    (["account", "list"], "NAME\tSENDER POLICY"),
    (["dossier", "list"], "ID\tACCOUNT\tREF\tSTATUS\tADDRESS\tCONTACT"),
    (["queue", "list"], "ID\tKIND\tRECIPIENT\tSTATE\tUPDATED\tLAST REPLY"),
    (["purpose", "list", "ACME"], "ID\tNAME\tLABELS"),
    (["token", "list", "--account", "ACME"],
     "NAME\tPREFIX\tCREATED\tLAST USED\tSTATE"),
    (["audit", "list"], "ID\tTIME\tACTOR\tACTION\tACCOUNT\tSUBJECT\tDETAIL"),
    (["events", "list"], "ID\tEVENT\tTYPE\tCONSUMER/HOOK\tSTREAM\tSTATE\t"
     "ATTEMPTS\tLAST ERROR"),
]


@pytest.mark.parametrize("argv,header", LISTS,
                         ids=[" ".join(a) for a, _ in LISTS])
def test_a_list_has_a_header_row_on_a_terminal_only(srv, argv, header):
    rc, out, err = on_tty("--config", srv.conf, *argv)
    assert (rc, err) == (0, ""), (rc, err)
    assert out.split("\n")[0] == header, out
    piped = run("--config", srv.conf, *argv)
    assert piped.returncode == 0, piped.stderr
    assert out == header + "\n" + piped.stdout     # the same rows after it
    assert header not in piped.stdout
    # --json is for programs, wherever it goes.
    rc, out, err = on_tty("--config", srv.conf, *argv, "--json")
    assert rc == 0, err
    assert isinstance(json.loads(out), list), out


FILTERS = [
    (["queue", "list", "--status", "bogus"], 'postdoc: invalid --status '
     '"bogus" (queued, sending, sent, deferred, bounced or failed)\n'),
    (["events", "list", "--state", "bogus"], 'postdoc: invalid --state '
     '"bogus" (pending, done, failed, expired or dropped)\n'),
    (["dossier", "list", "--status", "bogus"],
     'postdoc: invalid --status "bogus" (open or closed)\n'),
]


@pytest.mark.parametrize("argv,stderr", FILTERS,
                         ids=[" ".join(a) for a, _ in FILTERS])
def test_an_unknown_filter_value_is_a_usage_error(srv, argv, stderr):
    p = run("--config", srv.conf, *argv)
    assert (p.returncode, p.stdout, p.stderr) == (2, "", stderr + TRY)


def test_a_known_filter_value_lists(srv):
    p = run("--config", srv.conf, "queue", "list", "--status", "failed")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


# ------------------------------------------------------ dates and times

WHEN = "not YYYY-MM-DD (a calendar day) or epoch seconds (1 to " \
    "253402300799)"
DATES = [
    (["purge", "--dry-run", "--now", "2099-02-30"], "--now", "2099-02-30"),
    (["purge", "--dry-run", "--now", "2023-02-29"], "--now", "2023-02-29"),
    (["purge", "--dry-run", "--now", "2099-13-01"], "--now", "2099-13-01"),
    (["purge", "--dry-run", "--now", "99999999999999999999"], "--now",
     "99999999999999999999"),
    (["purge", "--dry-run", "--now", "253402300800"], "--now",
     "253402300800"),
    (["purge", "--dry-run", "--now", "+5"], "--now", "+5"),
    (["remind", "--queue-only", "--now", "2099-02-30"], "--now", "2099-02-30"),
    (["remind", "--queue-only", "--now", "99999999999999999999"], "--now",
     "99999999999999999999"),
]


@pytest.mark.parametrize("argv,opt,value", DATES,
                         ids=[" ".join(a) for a, _, _ in DATES])
def test_an_impossible_date_is_refused_naming_it(srv, argv, opt, value):
    # Not rolled into March, not clamped to the largest integer.
    p = run("--config", srv.conf, *argv)
    assert (p.returncode, p.stdout, p.stderr) == \
        (2, "", 'postdoc: invalid %s "%s": %s\n' % (opt, value, WHEN) + TRY)


def test_real_dates_and_epochs_are_taken(srv):
    for now, epoch in (("2024-02-29", 1709164800), ("253402300799", None),
                       ("1700000000", None)):
        rep = json.loads(run("--config", srv.conf, "purge", "--dry-run",
                             "--now", now, "--json").stdout)
        assert rep["now"] == (epoch or int(now)), rep


def test_invite_due_must_be_a_calendar_day(srv):
    p = run("--config", srv.conf, "invite", "1", "--due", "2099-02-30",
            "--queue-only")
    assert (p.returncode, p.stdout, p.stderr) == \
        (2, "", 'postdoc: invalid --due "2099-02-30": not a calendar day '
         'YYYY-MM-DD\n' + TRY)


# ---------------------------------------------- campaign send's counts

@pytest.fixture(scope="module")
def news(servers):
    """Outbound configured (file transport), serve not running: the CLI
    queues and, without --queue-only, delivers itself."""
    s = servers(start=False)
    s.sections["outbound"] = {"transport": "file",
                              "template_dir": str(H.SRCDIR / "templates"),
                              "rate": 0}
    s.sections["web"] = {"base_url": "http://127.0.0.1:9"}
    s.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris",
         "from_name": "ACME News", "from_addr": "news@acme.example"}])
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(s.var / "outbox")}}])
    s.write_config()
    s.add_account("ACME")
    s.cli("purpose", "add", "ACME", "news")
    (s.root / "text.txt").write_text("I agree.\n")
    csv = s.root / "audience.csv"
    csv.write_text("email,adult\n" + "".join(
        "reader%d@readers.example,yes\n" % i for i in range(20)))
    s.cli("consent", "import", csv, "--account", "ACME", "--purpose",
          "news", "--text-file", s.root / "text.txt")
    return s


def test_plugin_info_lines_only_with_verbose(news):
    # queue run loads the plugins: their "loaded" lines are INFO.
    p = run("--config", news.conf, "queue", "run")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout == "sent 0, deferred 0, bounced 0, failed 0\n"
    for flag in ("-v", "--verbose"):
        p = run("--config", news.conf, flag, "queue", "run")
        assert p.returncode == 0, p.stderr
        assert re.search(r"^postdoc\[\d+\]: INFO: plugin file \S+ loaded$",
                         p.stderr, re.M), p.stderr
    # Errors still print without -v.
    p = run("--config", news.conf, "queue", "list", "--account", "NOSUCH")
    assert (p.returncode, p.stderr) == \
        (1, 'postdoc: account "NOSUCH" not found\n')


def test_campaign_send_counts_only_what_was_committed(news):
    # The batch's rows cannot be written (a trigger stands in for a full
    # disk at the commit): nothing is queued, and nothing may say so.
    cid = json.loads(news.cli("campaign", "create", "--account", "ACME",
                              "--purpose", "news", "--subject", "Hello",
                              "--json").stdout)["id"]
    db = sqlite3.connect(str(news.var / "postdoc.db"), timeout=30)
    db.execute("CREATE TRIGGER full BEFORE INSERT ON outbound BEGIN "
               "SELECT RAISE(ABORT, 'database or disk is full'); END")
    db.commit()
    p = run("--config", news.conf, "campaign", "send", cid, "--queue-only")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "queued" not in p.stdout, p.stdout
    assert "database or disk is full" in p.stderr, p.stderr
    show = news.cli_json("campaign", "show", cid)
    assert show["recipients"] == {"pending": 20}, show

    db.execute("DROP TRIGGER full")
    db.commit()
    db.close()
    p = run("--config", news.conf, "campaign", "send", cid, "--queue-only")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout == "campaign %d: 20 of 20 contacts eligible; left " \
        "out: none\nqueued 20/20\ncampaign %d: 20 recipients, 20 " \
        "queued now, 0 skipped (no longer eligible), 0 found queued\n" % (
            cid, cid)
    show = news.cli_json("campaign", "show", cid)
    assert show["recipients"] == {"queued": 20}, show

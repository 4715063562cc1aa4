"""
The command families (cli.c's own commands, consent, privacy, token/api,
events) all run through one runner (cli_args.c): these pin what an
operator sees from it, family by family - the exact usage messages and
exit codes, `help` listing every family in order, --help only at the
root, configuration errors as file:line before anything is opened, a
command that needs nothing not reading the configuration at all, and a
failed write to stdout reported as a failure.
"""
import subprocess

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
    (["consent", "show", "a@b.example", "--account", "ACME", "--no-send"],
     "postdoc: option --no-send is not valid here\n"),
    (["consent", "grant", "a@b.example", "--no-send=1"],
     "postdoc: option --no-send=1 takes no value\n"),
    (["subject"], "postdoc: unknown subject subcommand\n"),
    (["subject", "export", "a@b.example"],
     "postdoc: option --output is required\n"),
    (["purge", "extra"], "postdoc: usage: postdoc purge [--dry-run] "
     "[--now YYYY-MM-DD] [--minors]   (retention)\n"),
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
    (["--no-send", "events", "list"], "postdoc: unknown option --no-send\n"),
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
    assert lines[0] == "usage: postdoc [--config FILE] [--json] COMMAND ..."
    groups = [l.split()[1] for l in lines if l.startswith("  postdoc ")]
    order = []
    for g in groups:
        if not order or order[-1] != g:
            order.append(g)
    assert order == ["serve", "check-config", "account", "dossier",
                     "document", "message", "invite", "remind", "queue",
                     "template", "mailbox", "purpose", "consent", "contact",
                     "campaign", "notice", "token", "api", "subject", "purge",
                     "audit", "events", "help"], order
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

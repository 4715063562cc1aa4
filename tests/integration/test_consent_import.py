"""
consent import as a spreadsheet makes it, and erased addresses (issue 15),
against the real binary and a real `postdoc serve` with the API:

- the adult column takes yes/no/true/false/1/0/oui/non (any case) and
  unknown; anything else refuses the row, named by line and reason;
- the separator is found from the first line: ',' ';' (a French
  spreadsheet) or tab, quotes honoured;
- a refused row makes the exit status 1, and the good rows are imported;
- an erased address is refused by `consent grant`, `consent import` and
  POST /api/v1/consents with the erasure's date and what to do, unless the
  operator says the person came back (--reconsent, "reconsent": true):
  then the grant says so in its method, the erasure stops blocking that
  account (audited as subject.reconsent), and other accounts stay blocked.
"""
import datetime
import http.client
import json
import re
import sqlite3
import time

import pytest

import postdoc_harness as H
from postdoc_harness import T

TEXT = "I agree to receive the ACME newsletter.\n"


@pytest.fixture(scope="module")
def srv(servers):
    srv = servers(start=False)
    srv.api_port = H.free_port()
    srv.sections["api"] = {"listen": "127.0.0.1:%d" % srv.api_port}
    srv.write_config()
    srv.start()
    deadline = time.monotonic() + T(10)
    while not H._port_open(srv.api_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.add_account("ACME", "any")
    srv.add_account("OTHER", "any")
    srv.cli("purpose", "add", "ACME", "newsletter")
    srv.cli("purpose", "add", "OTHER", "newsletter")
    (srv.root / "consent.txt").write_text(TEXT)
    return srv


def api(srv, body):
    tok = srv.cli("token", "create", "--account", "ACME", "--name",
                  "crm%d" % time.monotonic_ns()).stdout.strip()
    c = http.client.HTTPConnection("127.0.0.1", srv.api_port, timeout=T(30))
    try:
        c.request("POST", "/api/v1/consents", body=json.dumps(body).encode(),
                  headers={"Authorization": "Bearer " + tok,
                           "Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def imp(srv, path, *extra):
    return srv.cli("consent", "import", path, "--account", "ACME",
                   "--purpose", "newsletter", "--text-file",
                   srv.root / "consent.txt", *extra, check=False)


def adult(srv, addr):
    return srv.cli_json("consent", "show", addr, "--account",
                        "ACME")["adult"]["value"]


def status(srv, addr, account="ACME"):
    """The newsletter status, None if none (or no such contact)."""
    p = srv.cli("consent", "show", addr, "--account", account, "--json",
                check=False)
    if p.returncode != 0:
        assert "no contact" in p.stderr, p.stderr
        return None
    return json.loads(p.stdout)["status"].get("newsletter")


def erased_rows(srv):
    db = sqlite3.connect(str(srv.var / "postdoc.db"))
    try:
        return db.execute("SELECT a.name FROM erased_subjects e LEFT JOIN"
                          " accounts a ON a.id = e.account_id ORDER BY 1"
                          ).fetchall()
    finally:
        db.close()


def erase(srv, addr, *account):
    srv.cli("consent", "grant", addr, "--account", "ACME", "--purpose",
            "newsletter")
    srv.cli("subject", "erase", addr, *account)


TODAY = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


# ------------------------------------------------------------ the file

def test_french_spreadsheet_semicolons_and_adult_words(srv, tmp_path):
    csv = tmp_path / "liste.csv"
    csv.write_text(
        'email;"Nom; prénom";adult\n'           # 1: header, ';' in quotes
        "fr1@client.example;\"Dupont; Jean\";oui\n"
        "fr2@client.example;Martin;NON\n"
        "fr3@client.example;X;True\n"
        "fr4@client.example;X;0\n"
        "fr5@client.example;X;peut-être\n"       # 6: refused
        "fr6@client.example;X;\n"                # 7: refused (empty)
        "pas une adresse;X;oui\n"                # 8: refused
        "fr7@client.example;X;Unknown\n", encoding="utf-8")
    p = imp(srv, csv)
    assert p.returncode == 1, (p.stdout, p.stderr)
    out = p.stdout
    assert re.search(r"^line 6: adult is .*\"peut-.*tre\": refused", out,
                     re.M), out
    assert re.search(r"^line 7: adult is .*\"\": refused", out, re.M), out
    assert re.search(r"^line 8: bad address \"pas une adresse\": refused",
                     out, re.M), out
    assert "8 rows: 5 imported, 0 already granted, 3 refused" in out
    assert "the other rows were imported" in out
    assert [adult(srv, "fr%d@client.example" % i) for i in (1, 2, 3, 4, 7)] \
        == ["yes", "no", "yes", "no", "unknown"]
    assert status(srv, "fr1@client.example") == "granted"
    assert status(srv, "fr5@client.example") is None


def test_tab_separated_and_clean_file_exits_0(srv, tmp_path):
    tsv = tmp_path / "export.tsv"
    tsv.write_text("Email\tName\tAdult\ntab1@client.example\tSmith, J\tyes\n"
                   "tab2@client.example\tDoe\tfalse\n")
    p = imp(srv, tsv, "--json")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert json.loads(p.stdout) == {"rows": 2, "imported": 2,
                                    "unchanged": 0, "bad": 0}
    assert adult(srv, "tab1@client.example") == "yes"
    assert adult(srv, "tab2@client.example") == "no"


# ------------------------------------------------------------ erased

def test_grant_refuses_an_erased_address_until_reconsent(srv):
    addr = "gone1@client.example"
    erase(srv, addr, "--account", "ACME")
    assert erased_rows(srv).count(("ACME",)) >= 1
    p = srv.cli("consent", "grant", addr.upper(), "--account", "ACME",
                "--purpose", "newsletter", check=False)
    assert p.returncode == 1
    assert "%s was erased on %s" % (addr, TODAY) in p.stderr, p.stderr
    assert "--reconsent" in p.stderr
    assert status(srv, addr) is None
    p = srv.cli("consent", "grant", addr, "--account", "ACME", "--purpose",
                "newsletter", "--source", "form", "--reconsent")
    assert "re-consent after erasure" in p.stdout
    rec = srv.cli_json("consent", "show", addr, "--account",
                       "ACME")["records"][-1]
    assert rec["action"] == "grant" and rec["source"] == "form"
    assert rec["method"].startswith("reconsent")
    audit = srv.cli_json("audit", "list")
    rows = audit if isinstance(audit, list) else \
        [v for v in audit.values() if isinstance(v, list)][0]
    assert any(r.get("action") == "subject.reconsent" for r in rows)
    # lifted: a later grant needs no flag
    srv.cli("consent", "withdraw", addr, "--account", "ACME", "--purpose",
            "newsletter")
    srv.cli("consent", "grant", addr, "--account", "ACME", "--purpose",
            "newsletter")


def test_reconsent_in_one_account_keeps_the_others_blocked(srv):
    addr = "gone2@client.example"
    erase(srv, addr)                     # every account
    srv.cli("consent", "grant", addr, "--account", "ACME", "--purpose",
            "newsletter", "--reconsent")
    p = srv.cli("consent", "grant", addr, "--account", "OTHER", "--purpose",
                "newsletter", check=False)
    assert p.returncode == 1 and "was erased on" in p.stderr, p.stderr


def test_import_refuses_an_erased_row_unless_reconsent(srv, tmp_path):
    addr = "gone3@client.example"
    erase(srv, addr, "--account", "ACME")
    csv = tmp_path / "back.csv"
    csv.write_text("email,adult\nok3@client.example,yes\n%s,yes\n" % addr)
    p = imp(srv, csv)
    assert p.returncode == 1
    assert re.search(r"^line 3: %s was erased on %s: refused" % (
        re.escape(addr), TODAY), p.stdout, re.M), p.stdout
    assert status(srv, "ok3@client.example") == "granted"
    assert status(srv, addr) is None
    p = imp(srv, csv, "--reconsent")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert status(srv, addr) == "granted"
    rec = srv.cli_json("consent", "show", addr, "--account",
                       "ACME")["records"][-1]
    assert rec["source"] == "import" and rec["method"].startswith("reconsent")


def test_api_refuses_an_erased_address_until_reconsent(srv):
    addr = "gone4@client.example"
    erase(srv, addr, "--account", "ACME")
    st, body = api(srv, {"email": addr, "purpose": "newsletter"})
    assert st == 409 and body["error"]["code"] == "erased", body
    assert "was erased on %s" % TODAY in body["error"]["message"]
    assert '"reconsent": true' in body["error"]["message"]
    st, body = api(srv, {"email": addr, "purpose": "newsletter",
                         "reconsent": "yes"})
    assert st == 422 and body["error"]["field"] == "reconsent"
    st, body = api(srv, {"email": addr, "purpose": "newsletter",
                         "reconsent": True})
    assert st == 200 and body["reconsent"] is True and body["changed"], body
    rec = srv.cli_json("consent", "show", addr, "--account",
                       "ACME")["records"][-1]
    assert rec["source"] == "api" and rec["method"].startswith("reconsent")

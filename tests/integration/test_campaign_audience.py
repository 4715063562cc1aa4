"""
A newsletter's audience explained (issue 15), through the real binary, a
real `postdoc serve` and a real SMTP receiver (aiosmtpd with STARTTLS and
AUTH, smtp_peers.start_tls) that can hold its answer to DATA:

- one contact for each reason a contact is left out, each made the way
  an operator or a peer makes it: no consent, a withdrawal, age unknown
  (a CSV row "unknown" and a grant nobody attested), a minor, a
  suppression, a real bounce (a DSN to the VERP address of a notice the
  receiver accepted), an erasure (`subject erase`, the contact kept by a
  legal hold on consent records);
- `campaign send --dry-run` and `notice send --dry-run` print who and
  why and change nothing (every table's rows, the campaign's row, every
  file under var/, the receiver's mailbox);
- the real send prints the same explanation, fixes the same audience,
  and `campaign show` moves draft -> sending (the receiver holds DATA)
  -> sent (it answers), with the outcomes counted;
- the issue's case: two contacts with consent and no age made a
  campaign of 0 recipients with no word of why;
- an account of business contacts (adult_required = false) reaches them.
"""
import os
import shutil
import smtplib
import tempfile
import time

import pytest

import postdoc_harness as H
import smtp_peers
from postdoc_harness import T

TEXT = "I agree to receive the ACME newsletter about once a month.\n"
DOM = "aud.example"

# who, how, the reason the audience gives (None: eligible)
PEOPLE = [
    ("ok1", "adult", None),
    ("ok2", "adult", None),
    ("nocons", "attested only", "no consent"),
    ("wd", "withdrawn", "withdrawn"),
    ("unkcsv", "csv unknown", "age unknown"),
    ("unkgrant", "granted, never attested", "age unknown"),
    ("kid", "minor", "minor"),
    ("supp", "suppressed", "suppressed"),
    ("bnc", "bounced", "bounced"),
    ("gone", "erased", "erased"),
]
ORDER = ["age unknown", "minor", "no consent", "withdrawn", "suppressed",
         "bounced", "erased"]


def addr(who):
    return "%s@%s" % (who, DOM)


@pytest.fixture(scope="module")
def peer():
    d = tempfile.mkdtemp(prefix="postdoc-aud-", dir="/tmp")
    gate = os.path.join(d, "open")
    open(gate, "w").close()                 # answers DATA while it exists
    p = smtp_peers.start_tls(d, hold=gate)
    p.gate = gate
    yield p
    p.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def srv(servers, peer):
    s = servers(start=False)
    s.sections["outbound"] = {
        "transport": "smtp", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 50, "retry_base": 1, "rate": 0}
    s.sections["web"] = {"base_url": "http://127.0.0.1:9"}
    s.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris",
         "from_name": "ACME News", "from_addr": "news@acme.example"},
        {"name": "ISSUE", "from_addr": "news@issue.example"},
        {"name": "B2B", "from_addr": "news@b2b.example",
         "adult_required": False}])
    # ACME keeps consent records under a legal hold: an erased contact
    # stays, with its grant, and must be left out as "erased".
    s.sections["privacy"] = {"holds": H.LcList([
        {"account": "ACME", "years": 10, "class": "consent"}])}
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "smtp", "settings": {
            "host": "127.0.0.1", "port": peer.port, "starttls": "required",
            "ca_file": str(peer.dir) + "/cert.pem", "helo": "postdoc.test",
            "user": "postdoc", "password": "s3cret", "timeout": 120}}])
    s.write_config()
    s.start()
    for a in ("ACME", "ISSUE", "B2B"):
        s.add_account(a, "any")
        s.cli("purpose", "add", a, "newsletter")
    (s.root / "consent.txt").write_text(TEXT)
    return s


def grant(srv, who, account="ACME"):
    srv.cli("consent", "grant", who, "--account", account, "--purpose",
            "newsletter", "--text-file", srv.root / "consent.txt")


def attest(srv, who, adult, account="ACME"):
    srv.cli("contact", "attest", who, "--account", account, "--adult", adult)


def import_csv(srv, rows, account="ACME"):
    f = srv.root / ("import-%s.csv" % account)
    f.write_text("email,adult\n" + "".join("%s,%s\n" % r for r in rows))
    srv.cli("consent", "import", f, "--account", account, "--purpose",
            "newsletter", "--text-file", srv.root / "consent.txt")


def settled(srv):
    """No outbound row left to the runner (queued, sending, deferred)."""
    with srv.db() as c:
        return c.execute("SELECT count(*) FROM outbound WHERE state IN "
                         "('queued', 'sending', 'deferred')").fetchone()[0] \
            == 0


def received(peer):
    return sorted(r for _, m in smtp_peers.read_tls_mail(peer.dir)
                  for r in m["rcpt_tos"])


def dsn(verp, rcpt):
    """A DSN for a message the remote queue gave up on (4.4.7): a bounce
    that suppresses nothing, so the contact is left out as "bounced"."""
    b = "dsn-b"
    return ("From: MAILER-DAEMON@mx.aud.example\r\nTo: %s\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report;"
            " report-type=delivery-status; boundary=\"%s\"\r\n\r\n"
            "--%s\r\nContent-Type: text/plain\r\n\r\ngave up.\r\n"
            "--%s\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.aud.example\r\n\r\n"
            "Final-Recipient: rfc822; %s\r\nAction: failed\r\n"
            "Status: 4.4.7\r\nDiagnostic-Code: smtp; 450 4.4.7 delivery"
            " time expired\r\n\r\n--%s--\r\n" % (verp, b, b, b, rcpt, b)
            ).encode()


@pytest.fixture(scope="module")
def world(srv, peer):
    """The ACME contacts of PEOPLE, each made the real way."""
    # bnc: a notice the receiver accepted, then a DSN to its VERP address
    grant(srv, addr("bnc"))
    attest(srv, addr("bnc"), "yes")
    srv.cli("notice", "send", "--account", "ACME", "--template",
            "privacy-notice", "--queue-only")
    H.wait_for(lambda: settled(srv), T(30), "the notice delivered")
    row = [o for o in srv.cli_json("queue", "list", "--account", "ACME")
           if o["rcpt"] == addr("bnc")][0]
    assert row["state"] == "sent", row
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(20)) as s:
        s.ehlo("mx.aud.example")
        assert s.mail("<>")[0] == 250
        assert s.rcpt(row["mail_from"])[0] == 250
        code, text = s.data(dsn(row["mail_from"], addr("bnc")))
        assert code == 250, text
    row = [o for o in srv.cli_json("queue", "list", "--account", "ACME")
           if o["id"] == row["id"]][0]
    assert row["state"] == "bounced", row

    for who in ("ok1", "ok2", "wd", "kid", "supp", "gone", "unkgrant"):
        grant(srv, addr(who))
    for who in ("ok1", "ok2", "wd", "supp", "gone", "nocons"):
        attest(srv, addr(who), "yes")
    attest(srv, addr("kid"), "no")
    import_csv(srv, [(addr("unkcsv"), "unknown")])
    srv.cli("consent", "withdraw", addr("wd"), "--account", "ACME",
            "--purpose", "newsletter", "--source", "form")
    srv.cli("contact", "suppress", addr("supp"), "--account", "ACME")
    srv.cli("subject", "erase", addr("gone"), "--account", "ACME")
    H.wait_for(lambda: settled(srv), T(30), "queue settled")
    return srv


def snapshot(srv, peer):
    """Everything a dry run must leave as it was."""
    with srv.db() as c:
        tables = [r[0] for r in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name"
            " NOT LIKE 'sqlite_%' ORDER BY name")]
        rows = {t: c.execute("SELECT count(*) FROM \"%s\"" % t).fetchone()[0]
                for t in tables}
        camps = c.execute("SELECT id, state, audience, started, finished"
                          " FROM campaigns ORDER BY id").fetchall()
        outb = c.execute("SELECT id, state FROM outbound ORDER BY id"
                         ).fetchall()
    files = sorted((str(p.relative_to(srv.var)), p.stat().st_size)
                   for p in srv.var.rglob("*") if p.is_file()
                   and not p.name.startswith("postdoc.db"))
    return rows, camps, outb, files, received(peer)


def left_out_line(counts):
    parts = ["%d %s" % (counts[r], r) for r in ORDER if counts.get(r)]
    return "left out: " + (", ".join(parts) if parts else "none")


def expected_counts():
    out = {}
    for _, _, why in PEOPLE:
        if why:
            out[why] = out.get(why, 0) + 1
    return out


def new_campaign(srv, account="ACME", subject="Audience news"):
    return srv.cli_json("campaign", "create", "--account", account,
                        "--purpose", "newsletter", "--subject",
                        subject)["id"]


def show(srv, cid):
    return srv.cli_json("campaign", "show", cid)


# ------------------------------------------------------------ dry runs

def test_notice_dry_run_names_who_and_why_and_changes_nothing(world, peer):
    before = snapshot(world, peer)
    out = world.cli("notice", "send", "--account", "ACME", "--template",
                    "privacy-notice", "--dry-run").stdout
    j = world.cli_json("notice", "send", "--account", "ACME", "--template",
                       "privacy-notice", "--dry-run")
    assert snapshot(world, peer) == before
    assert "dry run, nothing changed" in out
    assert "%s (left out: suppressed)" % addr("supp") in out
    assert "%s (left out: bounced)" % addr("bnc") in out
    assert "%s (left out: erased)" % addr("gone") in out
    assert "notice privacy-notice: 10 contacts, 7 would get it; left out: " \
        "1 suppressed, 1 bounced, 1 erased, 0 invalid address" in out, out
    assert j["dry_run"] and j["contacts"] == 10 and j["would_send"] == 7
    assert j["left_out"] == {"suppressed": 1, "bounced": 1, "erased": 1,
                             "invalid_address": 0}
    why = {r["email"]: r["left_out"] for r in j["recipients"]}
    assert why == {addr(w): {"supp": "suppressed", "bnc": "bounced",
                             "gone": "erased"}.get(w) for w, _, _ in PEOPLE}


def test_notice_dry_run_refuses_queue_only(world):
    p = world.cli("notice", "send", "--account", "ACME", "--template",
                  "privacy-notice", "--dry-run", "--queue-only", check=False)
    assert p.returncode == 2 and "--dry-run queues nothing" in p.stderr


def test_campaign_dry_run_then_send_then_sent(world, peer):
    srv = world
    cid = new_campaign(srv)
    H.wait_for(lambda: settled(srv), T(30), "queue settled")
    assert show(srv, cid)["state"] == "draft"
    assert show(srv, cid)["audience"] is None
    before = snapshot(srv, peer)
    text = srv.cli("campaign", "send", cid, "--dry-run").stdout
    j = srv.cli_json("campaign", "send", cid, "--dry-run")
    assert snapshot(srv, peer) == before, "the dry run changed something"

    want = expected_counts()
    line = "2 of 10 contacts eligible; " + left_out_line(want)
    assert "campaign %d dry run, nothing changed:" % cid in text
    assert line in text, text
    assert "age unknown: account ACME sends newsletters to attested " \
        "adults only" in text
    assert "would be queued: 2\n  %s\n  %s\n" % (addr("ok1"), addr("ok2")) \
        in text
    assert j["dry_run"] and not j["fixed"]
    assert sorted(j["recipients"]) == [addr("ok1"), addr("ok2")]
    assert j["audience"]["contacts"] == 10 and j["audience"]["eligible"] == 2
    assert j["audience"]["left_out"] == {
        r.replace(" ", "_"): want.get(r, 0) for r in ORDER}
    p = srv.cli("campaign", "send", cid, "--dry-run", "--queue-only",
                check=False)
    assert p.returncode == 2 and "--dry-run queues nothing" in p.stderr

    # The receiver holds its answer to DATA: the campaign is "sending".
    os.unlink(peer.gate)
    try:
        out = srv.cli("campaign", "send", cid, "--queue-only").stdout
        assert out.startswith("campaign %d: %s\n" % (cid, line)), out
        assert "2 recipients, 2 queued now, 0 skipped" in out
        s = show(srv, cid)
        assert s["state"] == "sending", s
        assert s["audience"] == j["audience"]
        assert s["outcomes"]["recipients"] == 2
        assert s["outcomes"]["delivered"] == 0
        assert s["outcomes"]["waiting"] + s["outcomes"]["deferred"] == 2
        # once fixed, a dry run shows the stored audience and who is
        # still pending (nobody: both are queued)
        d = srv.cli_json("campaign", "send", cid, "--dry-run")
        assert d["fixed"] and d["recipients"] == [] and \
            d["audience"] == j["audience"]
    finally:
        open(peer.gate, "w").close()
    H.wait_for(lambda: show(srv, cid)["state"] == "sent", T(60),
               "campaign sent")
    s = show(srv, cid)
    assert s["outcomes"] == {
        "recipients": 2, "pending": 0, "waiting": 0, "delivered": 2,
        "deferred": 0, "bounced": 0, "failed": 0, "skipped": 0,
        "skipped_by_reason": {}}, s
    assert s["recipients"] == {"queued": 2} and s["messages"] == {"sent": 2}
    got = [r for r in received(peer) if r in (addr("ok1"), addr("ok2"))]
    assert sorted(got) == [addr("ok1"), addr("ok2")]
    text = srv.cli("campaign", "show", cid).stdout
    assert "state=sent" in text and "audience: " + line in text
    assert "outcomes: 2 delivered, 0 deferred, 0 bounced, 0 failed" in text


# ------------------------------------------------------ the issue's case

def test_issue_two_granted_no_age_says_why(srv, peer):
    """Two contacts with consent but no age attestation (a CSV row with
    an unknown age and a grant nobody attested) made a campaign of 0
    recipients with no word of why."""
    import_csv(srv, [("csv@issue.example", "unknown")], account="ISSUE")
    grant(srv, "form@issue.example", account="ISSUE")
    cid = new_campaign(srv, account="ISSUE")
    p = srv.cli("campaign", "send", cid)
    assert "campaign %d: 0 of 2 contacts eligible; left out: 2 age " \
        "unknown\n" % cid in p.stdout, p.stdout
    assert "attest with `postdoc contact attest EMAIL --account ISSUE " \
        "--adult yes`, or set adult_required = false" in p.stdout
    s = show(srv, cid)
    assert s["state"] == "sent" and s["outcomes"]["recipients"] == 0
    assert s["audience"]["left_out"]["age_unknown"] == 2


def test_business_audience_is_not_asked_its_age(srv, peer):
    import_csv(srv, [("csv@b2b.example", "unknown")], account="B2B")
    grant(srv, "form@b2b.example", account="B2B")
    grant(srv, "kid@b2b.example", account="B2B")
    attest(srv, "kid@b2b.example", "no", account="B2B")
    cid = new_campaign(srv, account="B2B")
    d = srv.cli_json("campaign", "send", cid, "--dry-run")
    assert sorted(d["recipients"]) == ["csv@b2b.example", "form@b2b.example",
                                       "kid@b2b.example"]
    assert d["audience"]["left_out"]["age_unknown"] == 0
    out = srv.cli("campaign", "send", cid).stdout
    assert "3 of 3 contacts eligible; left out: none" in out
    assert "age unknown:" not in out
    H.wait_for(lambda: show(srv, cid)["state"] == "sent", T(60), "sent")
    assert show(srv, cid)["outcomes"]["delivered"] == 3
    assert {"csv@b2b.example", "form@b2b.example", "kid@b2b.example"} <= \
        set(received(peer))


def test_bad_ids(srv):
    p = srv.cli("campaign", "send", "999", "--dry-run", check=False)
    assert p.returncode == 1 and "no campaign 999" in p.stderr
    p = srv.cli("campaign", "show", "999", check=False)
    assert p.returncode == 1 and "no campaign 999" in p.stderr
    p = srv.cli("campaign", "send", "x", "--dry-run", check=False)
    assert p.returncode == 2 and "not an id: x" in p.stderr

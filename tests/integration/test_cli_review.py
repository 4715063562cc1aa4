"""
The dossier loop from the operator's terminal (issue 14), through the
real `postdoc` binary: named checklists (text and JSON, a duplicate name
and colliding slugs refused with nothing created), `dossier create` with
a checklist and a contact as a person ("Zoé Martin <zoe@example.fr>",
--locale fr), `invite --documents` adding items, and the review of
documents that a real SMTP delivery (smtplib) filed: assign, accept,
reject, each with its one line, its exit status and its history, and
bad input (an unknown item, another account's document, a rejection
without a reason, accepting an unassigned document) changing nothing.

Deliveries go to the dossier's plain address while at least two items
are outstanding, so the files arrive unassigned whatever intake's rule
for a single outstanding item.
"""
import json
import os
import pwd
import re
import smtplib
from email.message import EmailMessage

import pytest

import postdoc_harness as H
from postdoc_harness import T

CONTACT = "zoe@client.example"
TRY = "try 'postdoc help'\n"
ACTOR = "cli:" + pwd.getpwuid(os.getuid()).pw_name
# The messages a rejection and a closing queue: written by the notify
# branch, and queued through the outbound queue's own store connection
# while the review's transaction holds the database ("database is
# locked") until the dossier service queues on one connection.  These
# run for real, unchanged, once both are on main.


@pytest.fixture(scope="module")
def srv(servers):
    """serve with the file transport and the shipped templates."""
    s = servers(start=False)
    s.sections["outbound"] = {
        "transport": "file", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0}
    s.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris",
         "from_name": "ACME Onboarding", "from_addr": "kyc@acme.example"}])
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(s.var / "outbox")}}])
    s.write_config()
    s.start()
    s.add_account("ACME")
    s.add_account("OTHER")
    return s


def run(srv, *args):
    return srv.cli(*args, check=False)


def checklists(srv, account="ACME"):
    return srv.cli_json("checklist", "list", "--account", account)


def show_json(srv, did):
    return srv.cli_json("dossier", "show", did)


def history(srv, did, kind):
    return [e["detail"] for e in show_json(srv, did)["events"]
            if e["kind"] == kind]


def new_dossier(srv, ref, *extra):
    """A dossier of ACME asking for two required items and an optional
    one; its id."""
    p = srv.cli("dossier", "create", "--account", "ACME", "--contact",
                "Zoé Martin <%s>" % CONTACT, "--ref", ref,
                "--item", "ID card", "--item", "Proof of address",
                "--optional", "Bank details", *extra)
    return srv.dossier_id(p.stdout.strip())


def deliver(srv, did, names, text="Here are my papers."):
    """One message from the contact with a PDF per name, over SMTP to the
    dossier's plain address; {name: document id}."""
    addr = show_json(srv, did)["address"]
    msg = EmailMessage()
    msg["From"] = CONTACT
    msg["To"] = addr
    msg["Subject"] = "documents"
    msg.set_content(text + "\n")
    for n in names:
        msg.add_attachment(H.make_pdf(n), maintype="application",
                           subtype="pdf", filename=n)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(20)) as s:
        s.send_message(msg, from_addr=CONTACT, to_addrs=[addr])
    # The 250 comes after the commit: the rows are there now.
    docs = {d["filename"]: d["id"] for d in show_json(srv, did)["documents"]}
    assert set(names) <= set(docs), docs
    return docs


def own_events(d):
    """The dossier's history without the outbound queue's progress (the
    receipt of a delivery is sent by serve, whenever it runs)."""
    return [e for e in d["events"] if not e["kind"].startswith("outbound.")]


def unchanged(srv, did, before):
    after = show_json(srv, did)
    for key in ("items", "documents", "complete"):
        assert after[key] == before[key], key
    assert own_events(after) == own_events(before)


# ------------------------------------------------------------ checklists

def test_checklist_add_and_list_in_text_and_json(srv):
    p = run(srv, "checklist", "add", "ACME", "kyc-individual",
            "--item", "ID card|pdf/jpeg|5MB", "--optional", "Bank details",
            "--item", "Proof of address")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout == "checklist kyc-individual added to ACME: ID card " \
        "(PDF, JPEG; at most 5 MB); Bank details (optional); Proof of " \
        "address\n"
    # The order given across --item and --optional is the order kept.
    ck = [c for c in checklists(srv) if c["name"] == "kyc-individual"]
    assert len(ck) == 1, ck
    assert ck[0]["account"] == "ACME"
    assert [(i["label"], i["slug"], i["required"]) for i in ck[0]["items"]] \
        == [("ID card", "id-card", True),
            ("Bank details", "bank-details", False),
            ("Proof of address", "proof-of-address", True)]
    assert ck[0]["items"][0]["types"] == "PDF, JPEG"
    assert ck[0]["items"][0]["max_size"] == 5 * 1024 * 1024
    text = srv.cli("checklist", "list").stdout
    assert "ACME\tkyc-individual\tID card (PDF, JPEG; at most 5 MB); " \
        "Bank details (optional); Proof of address\n" in text
    assert checklists(srv, "OTHER") == []


def test_a_checklist_name_is_taken_once_per_account(srv):
    srv.cli("checklist", "add", "ACME", "kyc-dup", "--item", "Passport")
    p = run(srv, "checklist", "add", "ACME", "kyc-dup", "--item", "Payslip")
    assert (p.returncode, p.stdout) == (1, ""), p.stderr
    assert p.stderr == 'postdoc: checklist "kyc-dup" already exists in ' \
        'this account\n'
    ck = [c for c in checklists(srv) if c["name"] == "kyc-dup"]
    assert [i["label"] for i in ck[0]["items"]] == ["Passport"]
    # Another account may use the name.
    srv.cli("checklist", "add", "OTHER", "kyc-dup", "--item", "Payslip")


def test_colliding_slugs_are_refused_and_nothing_is_created(srv):
    p = run(srv, "checklist", "add", "ACME", "kyc-clash",
            "--item", "ID card", "--item", "ID-card")
    assert (p.returncode, p.stdout) == (1, ""), p.stderr
    assert p.stderr == 'postdoc: items "ID card" and "ID-card" would ' \
        'share the address part "+id-card": rename one\n'
    assert "kyc-clash" not in [c["name"] for c in checklists(srv)]
    p = run(srv, "dossier", "create", "--account", "ACME", "--contact",
            CONTACT, "--ref", "CLASH-1", "--item", "ID card", "--optional",
            "ID-card")
    assert (p.returncode, p.stdout) == (1, ""), p.stderr
    assert '"+id-card"' in p.stderr, p.stderr
    assert "CLASH-1" not in [d["ref"] for d in srv.dossiers()]


@pytest.mark.parametrize("argv,stderr", [
    (["checklist", "add", "ACME", "empty"],
     'postdoc: checklist add needs its items: --item "LABEL[|TYPES][|MAX]" '
     '(required) or --optional\n'),
    (["checklist", "add", "ACME", "Bad Name", "--item", "X"],
     'postdoc: invalid checklist name "Bad Name" (1-32 of a-z 0-9 _ -)\n'),
    (["checklist", "add", "ACME", "sizes", "--item", "X|pdf|lots"],
     'postdoc: invalid --item "X|pdf|lots": size "lots": give bytes or a '
     'size like 5MB\n'),
    (["dossier", "create", "--account", "ACME", "--contact", "Zoé <nope>",
      "--ref", "U-1"],
     'postdoc: invalid --contact "Zoé <nope>": give an address, or '
     '"Name <address>"\n'),
    (["dossier", "create", "--account", "ACME", "--contact", CONTACT,
      "--ref", "U-2", "--locale", "French"],
     'postdoc: invalid --locale "French": a language tag like fr or en\n'),
    (["dossier", "create", "--account", "ACME", "--contact", CONTACT,
      "--ref", "U-3", "--due", "2026-02-30"],
     'postdoc: invalid --due "2026-02-30": not a calendar day YYYY-MM-DD\n'),
])
def test_bad_input_is_a_usage_error(srv, argv, stderr):
    p = run(srv, *argv)
    assert (p.returncode, p.stdout, p.stderr) == (2, "", stderr + TRY)


# ------------------------------------------------------- dossier create

def test_dossier_create_with_a_checklist_and_a_person(srv):
    srv.cli("checklist", "add", "ACME", "kyc-fr", "--item",
            "Pièce d'identité|pdf/jpeg|5MB", "--optional", "RIB")
    p = srv.cli("dossier", "create", "--account", "ACME", "--contact",
                "Zoé Martin <zoe@example.fr>", "--ref", "FR-1",
                "--locale", "fr", "--checklist", "kyc-fr",
                "--item", "Avis d'imposition|pdf", "--due", "2026-12-20")
    addr = p.stdout.strip()
    assert H.ADDRESS_RE.match(addr) and p.stdout == addr + "\n", p.stdout
    d = srv.show(addr)
    assert d["contact"] == "zoe@example.fr"
    assert d["contact_name"] == "Zoé Martin" and d["locale"] == "fr"
    assert d["due"] == "2026-12-20" and d["complete"] is False
    local = addr.split("@")[0]
    assert [(i["label"], i["slug"], i["required"], i["state"], i["address"])
            for i in d["items"]] == [
        ("Pièce d'identité", "piece-d-identite", True, "requested",
         "%s+piece-d-identite@dossiers.example" % local),
        ("RIB", "rib", False, "requested", "%s+rib@dossiers.example" % local),
        ("Avis d'imposition", "avis-d-imposition", True, "requested",
         "%s+avis-d-imposition@dossiers.example" % local)]
    assert d["items"][0]["types"] == "PDF, JPEG"
    assert all(i["documents"] == [] for i in d["items"])
    text = srv.cli("dossier", "show", d["id"]).stdout
    assert "  contact:  Zoé Martin <zoe@example.fr>\n" in text
    assert "  language: fr\n" in text and "  due:      2026-12-20\n" in text
    assert "  complete: no (0 of 2 required items accepted)\n" in text
    assert text.index("\nChecklist:\n") < text.index("\nDocuments:\n") \
        < text.index("\nMessages:\n") < text.index("\nHistory:\n")
    checklist = text[text.index("\nChecklist:\n"):text.index("\nDocuments")]
    assert "  1. Pièce d'identité: requested, nothing received yet\n" \
        "     required; PDF, JPEG; at most 5 MB\n" \
        "     send to %s+piece-d-identite@dossiers.example\n" \
        "     no document yet\n" % local in checklist
    assert "  2. RIB: requested, nothing received yet\n     optional\n" \
        in checklist
    assert max(len(l) for l in checklist.splitlines()) <= 80


def test_dossier_create_json_and_an_unknown_checklist(srv):
    o = srv.cli_json("dossier", "create", "--account", "ACME", "--contact",
                     CONTACT, "--ref", "J-1", "--item", "Passport")
    assert [i["label"] for i in o["items"]] == ["Passport"]
    assert o["contact_name"] is None and o["locale"] is None
    p = run(srv, "dossier", "create", "--account", "ACME", "--contact",
            CONTACT, "--ref", "J-2", "--checklist", "no-such-list")
    assert (p.returncode, p.stdout) == (1, ""), p.stderr
    assert p.stderr == 'postdoc: this account has no checklist ' \
        '"no-such-list"\n'
    assert "J-2" not in [d["ref"] for d in srv.dossiers()]


def test_invite_documents_adds_items_and_remembers_the_language(srv):
    addr = srv.create_dossier("ACME", contact=CONTACT, ref="INV-1")
    did = srv.dossier_id(addr)
    srv.cli("invite", did, "--documents", "ID card, Proof of address",
            "--locale", "fr", "--json")
    d = show_json(srv, did)
    assert [(i["label"], i["required"]) for i in d["items"]] == \
        [("ID card", True), ("Proof of address", True)]
    assert d["locale"] == "fr"
    # Again: the items there are kept, a new one is added.
    srv.cli("invite", did, "--documents", "ID card,Payslip", "--json")
    assert [i["label"] for i in show_json(srv, did)["items"]] == \
        ["ID card", "Proof of address", "Payslip"]
    # A colliding label: refused before any invitation is queued.
    sent = [r for r in srv.cli_json("queue", "list", "--account", "ACME")
            if r["kind"] == "invitation" and r["dossier_id"] == did]
    p = run(srv, "invite", did, "--documents", "ID-card")
    assert (p.returncode, p.stdout) == (1, ""), p.stderr
    assert "would share the address part" in p.stderr, p.stderr
    assert [r for r in srv.cli_json("queue", "list", "--account", "ACME")
            if r["kind"] == "invitation" and r["dossier_id"] == did] == sent
    assert len(show_json(srv, did)["items"]) == 3
    p = run(srv, "invite", did, "--locale", "fr_FR")
    assert (p.returncode, p.stderr) == (2, 'postdoc: invalid --locale '
                                        '"fr_FR": a language tag like fr or '
                                        'en\n' + TRY)


# --------------------------------------------------------------- review

def test_assign_accept_until_complete_once(srv):
    did = new_dossier(srv, "REV-1")
    docs = deliver(srv, did, ["id.pdf", "address.pdf"],
                   text="I have no bank statement, may I send a "
                   "certificate instead?")
    a, b = docs["id.pdf"], docs["address.pdf"]
    d = show_json(srv, did)
    assert {x["item"] for x in d["documents"]} == {None}
    assert {x["review"] for x in d["documents"]} == {"pending"}
    # What she wrote is shown with the message.
    assert "may I send a certificate instead?" in d["messages"][0]["text"]
    text = srv.cli("dossier", "show", did).stdout
    assert "      wrote:\n      | I have no bank statement, may I send a " \
        "certificate instead?\n" in text, text

    # Accepting an unassigned document says how to file it.
    before = show_json(srv, did)
    p = run(srv, "document", "accept", a)
    assert (p.returncode, p.stdout) == (1, ""), p.stderr
    assert p.stderr == "postdoc: document %d is not filed under an item of " \
        "dossier REV-1: assign it first (postdoc document assign %d " \
        "ITEM)\n" % (a, a)
    unchanged(srv, did, before)

    p = run(srv, "document", "assign", a, "id-card")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout == 'document %d (id.pdf) filed under "ID card"\n' % a
    p = run(srv, "document", "accept", a)
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout == 'document %d (id.pdf) accepted under "ID card" - ' \
        'dossier REV-1 still needs "Proof of address"\n' % a
    assert show_json(srv, did)["complete"] is False

    srv.cli("document", "assign", b, "Proof-of-Address")    # any case
    o = srv.cli_json("document", "accept", b)
    assert o["document"]["id"] == b and o["document"]["review"] == "accepted"
    assert o["document"]["item"] == "proof-of-address"
    assert o["document"]["reviewed_by"] == ACTOR
    assert o["item"]["state"] == "accepted" and o["item"]["label"] == \
        "Proof of address"
    assert o["dossier"] == {"id": did, "ref": "REV-1", "complete": True}
    assert (o["completed"], o["unchanged"]) == (True, False)

    # Accepting again changes nothing, and completes nothing again.
    p = run(srv, "document", "accept", b)
    assert (p.returncode, p.stdout) == (0, 'document %d (address.pdf) was '
                                        'already accepted under "Proof of '
                                        'address" - dossier REV-1 is '
                                        'complete\n' % b), p.stderr
    d = show_json(srv, did)
    assert d["complete"] is True
    assert history(srv, did, "dossier.completed") == [""]
    assert history(srv, did, "document.accepted") == [
        "document=%d item=id-card by=%s" % (a, ACTOR),
        "document=%d item=proof-of-address by=%s" % (b, ACTOR)]
    assert history(srv, did, "document.assigned")[0] == \
        "document=%d item=id-card from=none by=%s" % (a, ACTOR)
    items = {i["slug"]: i for i in d["items"]}
    assert items["id-card"]["documents"] == [a]
    assert items["proof-of-address"]["documents"] == [b]
    assert items["bank-details"]["state"] == "requested"
    for x in d["documents"]:
        assert x["review"] == "accepted" and x["reviewed_by"] == ACTOR
        assert isinstance(x["reviewed_at"], int), x
    text = srv.cli("dossier", "show", did).stdout
    assert "  complete: yes (2 of 2 required items accepted)\n" in text
    assert "  1. ID card: accepted\n" in text
    assert "     #%d id.pdf (accepted)\n" % a in text
    assert "      review: accepted by %s, " % ACTOR in text


def test_an_unknown_item_changes_nothing(srv):
    did = new_dossier(srv, "REV-2")
    a = deliver(srv, did, ["x.pdf", "y.pdf"])["x.pdf"]
    before = show_json(srv, did)
    p = run(srv, "document", "assign", a, "payslip")
    assert (p.returncode, p.stdout) == (1, ""), p.stderr
    assert p.stderr == 'postdoc: dossier REV-2 has no item "payslip" (see ' \
        '`postdoc dossier show %d`)\n' % did
    unchanged(srv, did, before)
    # Back and forth: "none" leaves it unassigned again.
    srv.cli("document", "assign", a, "id-card")
    p = run(srv, "document", "assign", a, "none")
    assert p.stdout == "document %d (x.pdf) is now unassigned\n" % a
    assert {i["slug"]: i["state"] for i in show_json(srv, did)["items"]} \
        == {"id-card": "requested", "proof-of-address": "requested",
            "bank-details": "requested"}


def test_another_accounts_document_is_not_found(srv):
    did = new_dossier(srv, "REV-3")
    a = deliver(srv, did, ["p.pdf", "q.pdf"])["p.pdf"]
    srv.cli("document", "assign", a, "id-card")
    before = show_json(srv, did)
    for argv in (["accept", a], ["assign", a, "proof-of-address"],
                 ["reject", a, "--reason", "blurred"]):
        p = run(srv, "document", *argv, "--account", "OTHER")
        assert (p.returncode, p.stdout) == (1, ""), (argv, p.stderr)
        assert p.stderr == "postdoc: document %d not found in account " \
            "OTHER\n" % a, p.stderr
    p = run(srv, "document", "accept", 99999999)
    assert (p.returncode, p.stderr) == \
        (1, "postdoc: document 99999999 not found\n")
    unchanged(srv, did, before)
    # Its own account is fine.
    srv.cli("document", "accept", a, "--account", "ACME")


def test_a_rejection_needs_a_reason(srv):
    did = new_dossier(srv, "REV-4")
    a = deliver(srv, did, ["r.pdf", "s.pdf"])["r.pdf"]
    srv.cli("document", "assign", a, "id-card")
    before = show_json(srv, did)
    p = run(srv, "document", "reject", a)
    assert (p.returncode, p.stdout, p.stderr) == \
        (2, "", "postdoc: option --reason is required\n" + TRY)
    p = run(srv, "document", "reject", a, "--reason", "  ")
    assert (p.returncode, p.stdout, p.stderr) == \
        (2, "", "postdoc: --reason must say why the document is rejected: "
         "it is sent to the contact\n" + TRY)
    unchanged(srv, did, before)


def test_a_closed_dossier_refuses_reviews(srv):
    did = new_dossier(srv, "REV-5")
    a = deliver(srv, did, ["c.pdf", "d.pdf"])["c.pdf"]
    srv.cli("document", "assign", a, "id-card")
    p = srv.cli("dossier", "close", did)
    assert p.stdout == "dossier %d (REV-5) closed\n" % did
    before = show_json(srv, did)
    for argv in (["accept", a], ["assign", a, "none"]):
        p = run(srv, "document", *argv)
        assert (p.returncode, p.stdout) == (1, ""), (argv, p.stderr)
        assert p.stderr == "postdoc: dossier REV-5 is closed: reopen is " \
            "not possible, its documents stay as they are\n", p.stderr
    unchanged(srv, did, before)


def test_reject_tells_the_contact_and_asks_again(srv):
    did = new_dossier(srv, "REV-6")
    a = deliver(srv, did, ["scan.pdf", "other.pdf"])["scan.pdf"]
    srv.cli("document", "assign", a, "id-card")
    why = "The scan is cut off at the bottom"
    p = run(srv, "document", "reject", a, "--reason", why)
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    m = re.fullmatch(r"document %d \(scan\.pdf\) rejected: the contact was "
                     r"told \(message (\d+) queued\)\n" % a, p.stdout)
    assert m, p.stdout
    queued = [r for r in srv.cli_json("queue", "list", "--account", "ACME")
              if r["id"] == int(m.group(1))]
    assert len(queued) == 1 and queued[0]["rcpt"] == CONTACT, queued
    assert queued[0]["dossier_id"] == did
    d = show_json(srv, did)
    item = [i for i in d["items"] if i["slug"] == "id-card"][0]
    assert (item["state"], item["reason"]) == ("rejected", why)
    doc = [x for x in d["documents"] if x["id"] == a][0]
    assert (doc["review"], doc["review_reason"], doc["reviewed_by"]) == \
        ("rejected", why, ACTOR)
    assert history(srv, did, "document.rejected") == [
        "document=%d item=id-card by=%s reason=%s" % (a, ACTOR, why)]
    text = srv.cli("dossier", "show", did).stdout
    assert "  1. ID card: rejected, asked again\n" in text
    assert "     why:\n       %s\n" % why in text
    # Rejecting it again sends nothing more.
    p = run(srv, "document", "reject", a, "--reason", why)
    assert p.stdout == "document %d (scan.pdf) was already rejected: " \
        "nothing sent\n" % a


def test_close_notify_tells_the_contact(srv):
    did = new_dossier(srv, "REV-7")
    p = run(srv, "dossier", "close", did, "--notify")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    m = re.fullmatch(r"dossier %d \(REV-7\) closed: the contact was told "
                     r"\(message (\d+) queued\)\n" % did, p.stdout)
    assert m, p.stdout
    assert show_json(srv, did)["status"] == "closed"
    p = run(srv, "dossier", "close", did, "--notify")
    assert p.stdout == "dossier %d (REV-7) was already closed: nothing " \
        "sent\n" % did


def test_close_notify_that_fails_leaves_the_dossier_open_or_closes(srv):
    """Whatever notify can do, close --notify is all or nothing: either
    the dossier is closed and a message queued, or neither."""
    did = new_dossier(srv, "REV-8")
    p = run(srv, "dossier", "close", did, "--notify")
    d = show_json(srv, did)
    if p.returncode == 0:
        assert d["status"] == "closed"
        assert re.search(r"\(message \d+ queued\)\n$", p.stdout), p.stdout
    else:
        assert (p.returncode, p.stdout) == (1, ""), p.stderr
        assert d["status"] == "open", d

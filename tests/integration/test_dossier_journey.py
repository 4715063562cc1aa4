"""
The dossier loop of issue 14, end to end over SMTP (smtplib) and the
operator's CLI against a real `postdoc serve` delivering through the file
transport, with a real webhook receiver:

a checklist of three items (two required, one optional); a dossier for
"Zoé Martin <zoe@example.fr>" in French; the invitation lists each item
with its own address d-<token>+<slug>@ (mailto links in HTML); reminders
list exactly what is missing, once per step of the schedule even when
`remind --now` runs twice, and none once nothing is missing; Zoé sends two
files to two item addresses and one to the plain address, each receipt
has Reply-To the dossier address and names the item; the operator
assigns, accepts, rejects with a reason (the French rejection names the
reason and the address to send a new version to); she resends; all
required items accepted fire dossier.completed exactly once (history and
webhook); her reply to a receipt without attachment is filed and its text
shown.  Bad input - an unknown item, another account's document, a
rejection without reason, colliding slugs - gets a clear error and an
exit code and changes nothing.  After an outage one reminder goes out,
not every overdue one, and the next waits the schedule's gap.
"""
import contextlib
import json
import re

import pytest

import journey_lib as J
import postdoc_harness as H
import webhook_receiver as W
from journey_lib import (BANK_LABEL, BANK_SLUG, DAY, HOME_LABEL, HOME_SLUG,
                         ID_LABEL, ID_SLUG)


@contextlib.contextmanager
def step(name):
    """Name the journey's step in a failure: later steps build on it."""
    print("journey step: %s" % name, flush=True)
    try:
        yield
    except AssertionError as e:
        raise AssertionError("journey step '%s': %s" % (name, e)) from e


@pytest.fixture
def recv():
    r = W.Receiver()
    yield r
    r.close()


def checklist_items(c):
    """A checklist's items from `checklist list --json` (a list, or its
    JSON text)."""
    items = c.get("items")
    if isinstance(items, str):
        items = json.loads(items)
    return items


def as_list(data, key):
    if isinstance(data, dict):
        data = data.get(key, data.get("data", data))
    assert isinstance(data, list), data
    return data


def remind(srv, at):
    return srv.cli_json("remind", "--now", at)


def test_dossier_journey_over_smtp_and_the_cli(own_servers, recv):
    srv = J.journey_server(own_servers, receiver=recv)
    me = J.operator()
    ref = "KYC-ZOE-1"

    with step("checklist add and list"):
        srv.cli("checklist", "add", "ACME", "kyc-fr", "--item", ID_LABEL,
                "--item", HOME_LABEL + "|pdf/jpeg|5MB",
                "--optional", BANK_LABEL)
        lists = as_list(srv.cli_json("checklist", "list", "--account",
                                     "ACME"), "checklists")
        kyc = [c for c in lists if c["name"] == "kyc-fr"]
        assert len(kyc) == 1, lists
        its = checklist_items(kyc[0])
        assert [i["label"] for i in its] == [ID_LABEL, HOME_LABEL,
                                             BANK_LABEL], its
        assert [bool(i.get("required", True)) for i in its] == \
            [True, True, False], its

    with step("dossier create --contact NAME <ADDR> --locale fr "
              "--checklist"):
        p = srv.cli("dossier", "create", "--account", "ACME", "--contact",
                    J.ZOE, "--ref", ref, "--locale", "fr", "--checklist",
                    "kyc-fr", "--due", J.DUE)
        addr = p.stdout.strip()
        assert H.ADDRESS_RE.match(addr), p.stdout
        did = srv.dossier_id(addr)
        d = J.show(srv, did)
        assert d["contact"] == J.ZOE_ADDR, d
        assert d["contact_name"] == J.ZOE_NAME and d["locale"] == "fr", d
        assert d["due"] == J.DUE and d["complete"] is False, d
        assert [it["slug"] for it in d["items"]] == [ID_SLUG, HOME_SLUG,
                                                     BANK_SLUG], d["items"]
        assert [it["required"] for it in d["items"]] == [True, True, False]
        local, domain = addr.split("@")
        items = J.items_by_slug(d)
        for slug, it in items.items():
            assert it["label"] == J.LABELS[slug], it
            assert it["state"] == "requested" and it["documents"] == [], it
            assert it["address"] == "%s+%s@%s" % (local, slug, domain), it
        home = items[HOME_SLUG]
        assert "PDF" in str(home["types"]).upper(), home
        assert "JPEG" in str(home["types"]).upper(), home
        assert home["max_size"] in (5000000, 5 * 1024 * 1024), home
        text = J.show_text(srv, did)
        for heading in ("Checklist", "Documents", "Messages", "History"):
            assert heading in text, text
        assert J.ZOE_NAME in text and addr in text, text

    out = J.Outbox(srv, did)
    with step("invite: French, Zoé by name, each item with its own "
              "address (mailto links in HTML)"):
        o = srv.cli_json("invite", did)
        assert o["kind"] == "invitation" and o["rcpt"] == J.ZOE_ADDR, o
        t0 = J.now()
        inv = out.new()
        assert [m.kind for m in inv] == ["invitation"], inv
        m = inv[0]
        J.assert_french_to_zoe(m, addr)
        assert m.addr("Reply-To") == addr, m.msg["Reply-To"]
        for it in items.values():
            assert it["label"] in m.text and it["address"] in m.text, \
                (it, m)
            assert it["label"] in m.html, (it, m.html)
        missing = {it["address"] for it in items.values()} - m.mailto()
        assert not missing, ("no mailto link for", missing, m.mailto())
        assert J.DUE_FR in m.text, m

    with step("remind at +4 days, twice: one reminder, the required "
              "items only"):
        first = remind(srv, t0 + 4 * DAY)
        again = remind(srv, t0 + 4 * DAY)
        assert (first["queued"], again["queued"]) == (1, 0), (first, again)
        rem = out.new()
        assert [m.kind for m in rem] == ["reminder"], rem
        r = rem[0]
        J.assert_french_to_zoe(r, addr)
        assert ID_LABEL in r.text and HOME_LABEL in r.text, r
        assert BANK_LABEL not in r.text, r
        assert items[BANK_SLUG]["address"] not in r.text, r

    with step("Zoé sends one file to the plain address and two to two "
              "item addresses; each receipt answers to the dossier and "
              "names the item"):
        # The plain address first: with three items outstanding it files
        # the document unassigned (with exactly one outstanding it would
        # go under that one).
        sent = [(addr, "rib.pdf", None),
                (items[ID_SLUG]["address"], "carte-identite.pdf", ID_SLUG),
                (items[HOME_SLUG]["address"], "facture-edf.pdf", HOME_SLUG)]
        receipts = {}
        for rcpt, name, slug in sent:
            J.mail_from_zoe(srv, rcpt, "Mes documents",
                            "Bonjour,\nvoici le document.\nZoé",
                            [(name, J.pdf(name))])
            rec = out.new()
            assert [x.kind for x in rec] == ["receipt"], (name, rec)
            rec = receipts[name] = rec[0]
            J.assert_french_to_zoe(rec, addr)
            assert rec.addr("Reply-To") == addr, rec.msg["Reply-To"]
            assert name in rec.text, rec
            if slug is not None:
                assert J.LABELS[slug] in rec.text, rec
        # after the ID card, the receipt says what is still missing
        assert HOME_LABEL in receipts["carte-identite.pdf"].text, \
            receipts["carte-identite.pdf"]

    with step("dossier show --json: two filed under their items, one "
              "unassigned"):
        d = J.show(srv, did)
        docs = J.docs_by_name(d)
        assert set(docs) == {"carte-identite.pdf", "facture-edf.pdf",
                             "rib.pdf"}, docs
        assert docs["carte-identite.pdf"]["item"] == ID_SLUG
        assert docs["facture-edf.pdf"]["item"] == HOME_SLUG
        assert docs["rib.pdf"]["item"] is None
        assert {x["review"] for x in docs.values()} == {"pending"}, docs
        items = J.items_by_slug(d)
        assert items[ID_SLUG]["state"] == "received"
        assert items[ID_SLUG]["documents"] == [
            docs["carte-identite.pdf"]["id"]]
        assert items[HOME_SLUG]["state"] == "received"
        assert items[BANK_SLUG]["state"] == "requested"
        assert items[BANK_SLUG]["documents"] == []
        got = [J.detail(e["detail"]) for e in J.events(d, "item.received")]
        assert {(g["item"], g["document"], g["state"]) for g in got} == {
            (ID_SLUG, str(docs["carte-identite.pdf"]["id"]), "received"),
            (HOME_SLUG, str(docs["facture-edf.pdf"]["id"]), "received")}, got
        id_doc = docs["carte-identite.pdf"]["id"]
        home_doc = docs["facture-edf.pdf"]["id"]
        bank_doc = docs["rib.pdf"]["id"]

    with step("document assign: the unassigned file under its item"):
        srv.cli("document", "assign", bank_doc, BANK_SLUG)
        d = J.show(srv, did)
        assert J.docs_by_name(d)["rib.pdf"]["item"] == BANK_SLUG
        bank = J.items_by_slug(d)[BANK_SLUG]
        assert bank["state"] == "received" and bank["documents"] == [
            bank_doc], bank
        got = [J.detail(e["detail"]) for e in
               J.events(d, "document.assigned")]
        assert got == [{"document": str(bank_doc), "item": BANK_SLUG,
                        "from": "none", "by": me}], got

    with step("document accept: the ID card"):
        srv.cli("document", "accept", id_doc)
        d = J.show(srv, did)
        doc = J.docs_by_name(d)["carte-identite.pdf"]
        assert doc["review"] == "accepted" and doc["reviewed_by"] == me, doc
        assert doc["reviewed_at"], doc
        assert J.items_by_slug(d)[ID_SLUG]["state"] == "accepted"
        got = [J.detail(e["detail"]) for e in
               J.events(d, "document.accepted")]
        assert got == [{"document": str(id_doc), "item": ID_SLUG,
                        "by": me}], got
        assert d["complete"] is False
        assert out.new() == []          # accepting sends nothing

    with step("document reject with a reason: the French rejection mail "
              "with her name, the reason and the item's address"):
        srv.cli("document", "reject", home_doc, "--reason", J.REASON)
        rej = out.new()
        assert len(rej) == 1, rej
        m = rej[0]
        J.assert_french_to_zoe(m, addr)
        home_addr = items[HOME_SLUG]["address"]
        assert J.REASON in m.text and home_addr in m.text, m
        assert "facture-edf.pdf" in m.text or HOME_LABEL in m.text, m
        assert J.REASON in m.html and home_addr in m.html, m.html
        d = J.show(srv, did)
        home = J.items_by_slug(d)[HOME_SLUG]
        assert home["state"] == "rejected" and home["reason"] == J.REASON
        doc = J.docs_by_name(d)["facture-edf.pdf"]
        assert doc["review"] == "rejected", doc
        assert doc["review_reason"] == J.REASON, doc
        assert doc["reviewed_by"] == me, doc
        got = [J.detail(e["detail"]) for e in
               J.events(d, "document.rejected")]
        assert got == [{"document": str(home_doc), "item": HOME_SLUG,
                        "by": me, "reason": J.REASON}], got
        assert J.REASON in J.show_text(srv, did)
        ev = J.wait_hook(recv, ref, "document.rejected")
        assert ev[0]["data"]["reason"] == J.REASON, ev
        assert ev[0]["data"]["item"] == HOME_SLUG, ev

    with step("remind at +9 days, twice: one more reminder, only the "
              "rejected item"):
        first = remind(srv, t0 + 9 * DAY)
        again = remind(srv, t0 + 9 * DAY)
        assert (first["queued"], again["queued"]) == (1, 0), (first, again)
        rem = out.new()
        assert [m.kind for m in rem] == ["reminder"], rem
        r = rem[0]
        J.assert_french_to_zoe(r, addr)
        assert HOME_LABEL in r.text, r
        assert ID_LABEL not in r.text and BANK_LABEL not in r.text, r
        assert items[ID_SLUG]["address"] not in r.text, r
        assert len(out.rows("reminder")) == 2

    with step("she resends to the item's address"):
        J.mail_from_zoe(srv, home_addr, "Nouvelle version",
                        "Voici la page complète.",
                        [("facture-edf-complete.pdf",
                          J.pdf("facture-edf-complete"))])
        rec = out.new()
        assert [x.kind for x in rec] == ["receipt"], rec
        rec = rec[0]
        J.assert_french_to_zoe(rec, addr)
        assert rec.addr("Reply-To") == addr
        assert HOME_LABEL in rec.text and \
            "facture-edf-complete.pdf" in rec.text, rec
        d = J.show(srv, did)
        new = J.docs_by_name(d)["facture-edf-complete.pdf"]
        assert new["item"] == HOME_SLUG and new["review"] == "pending", new
        assert J.items_by_slug(d)[HOME_SLUG]["state"] == "received"
        home2 = new["id"]

    with step("accept all: dossier.completed exactly once"):
        srv.cli("document", "accept", bank_doc)      # optional: not yet
        d = J.show(srv, did)
        assert d["complete"] is False
        assert J.events(d, "dossier.completed") == []
        srv.cli("document", "accept", home2)
        d = J.show(srv, did)
        assert d["complete"] is True, d
        assert {it["state"] for it in d["items"]} == {"accepted"}, d["items"]
        done = J.events(d, "dossier.completed")
        assert len(done) == 1 and (done[0]["detail"] or "") == "", done
        # accepting again is "unchanged", and completes nothing twice
        p = srv.cli("document", "accept", home2)
        assert p.returncode == 0
        assert len(J.events(J.show(srv, did), "dossier.completed")) == 1
        ev = J.wait_hook(recv, ref, "dossier.completed")
        assert len(ev) == 1 and not ev[0]["data"], ev
        for m in out.new():     # a completion message, if the account
            J.assert_french_to_zoe(m, addr)     # wants one
            assert m.kind != "reminder", m

    with step("remind at +30 days: nothing is missing, no reminder"):
        assert remind(srv, t0 + 30 * DAY)["queued"] == 0
        assert out.new() == []
        assert len(out.rows("reminder")) == 2

    with step("a reply to the receipt without attachment is filed and "
              "its text shown"):
        d = J.show(srv, did)
        n_docs, n_msgs = len(d["documents"]), len(d["messages"])
        J.mail_from_zoe(srv, rec.addr("Reply-To"),
                        "Re: " + str(rec.msg["Subject"]), J.QUESTION,
                        headers={"In-Reply-To": rec.msg["Message-ID"],
                                 "References": rec.msg["Message-ID"]})
        d = J.show(srv, did)
        assert len(d["documents"]) == n_docs
        assert len(d["messages"]) == n_msgs + 1, d["messages"]
        assert J.QUESTION in (d["messages"][-1].get("text") or ""), \
            d["messages"][-1]
        # the text view quotes what she wrote on 80 columns ("| ...")
        flat = re.sub(r"\n\s*\| ?", " ", J.show_text(srv, did))
        assert J.QUESTION in flat, flat
        got = [J.detail(e["detail"]) for e in
               J.events(d, "message.received")]
        assert got[-1]["documents"] == "0", got
        ev = J.wait_hook(recv, ref, "message.received",
                         lambda e: J.QUESTION in (e["data"].get("text")
                                                  or ""))
        assert len(ev) == 1, ev
        assert out.new() == []          # no receipt for no document
        # the webhook's stream of this dossier is in order: nothing after
        # the completion repeated it
        assert len(J.hook_events(recv, ref, "dossier.completed")) == 1


# ------------------------------------------------------------ bad input

@pytest.fixture(scope="module")
def world(servers):
    """ACME's dossier (the journey's checklist) with one unassigned
    document, OTHER's dossier with one document of its own."""
    srv = J.journey_server(servers)
    srv.cli("checklist", "add", "ACME", "kyc-fr", "--item", ID_LABEL,
            "--item", HOME_LABEL, "--optional", BANK_LABEL)
    addr = srv.cli("dossier", "create", "--account", "ACME", "--contact",
                   J.ZOE, "--ref", "BAD-1", "--locale", "fr",
                   "--checklist", "kyc-fr").stdout.strip()
    J.mail_from_zoe(srv, addr, "docs", "ci-joint",
                    [("scan.pdf", J.pdf("scan"))])
    other = srv.cli("dossier", "create", "--account", "OTHER", "--contact",
                    "sam@other-client.example", "--ref", "BAD-OTHER",
                    "--item", "Passport").stdout.strip()
    J.mail_from_zoe(srv, other, "passport", "attached",
                    [("passport.pdf", J.pdf("passport"))],
                    mail_from="sam@other-client.example",
                    from_header="sam@other-client.example")
    did, oid = srv.dossier_id(addr), srv.dossier_id(other)
    doc = J.show(srv, did)["documents"][0]["id"]
    odoc = J.show(srv, oid)["documents"][0]["id"]
    return {"srv": srv, "did": did, "oid": oid, "doc": doc, "odoc": odoc,
            "addr": addr}


def unchanged(w, fn):
    """Run fn (the refused command); both dossiers and the queue are as
    they were."""
    srv = w["srv"]
    # The queue settles first: a receipt still leaving would add to a
    # dossier's history between the two reads.
    def state():
        q = J.settle(srv)
        return (q, J.show(srv, w["did"]), J.show(srv, w["oid"]))
    before = state()
    fn()
    after = state()
    assert after == before


def test_accepting_an_unassigned_document_is_refused(world):
    """Arrived at the plain address while three items were outstanding,
    the scan is unassigned: accepting it needs an item first."""
    srv = world["srv"]
    doc = J.show(srv, world["did"])["documents"][0]
    assert doc["id"] == world["doc"] and doc["item"] is None, doc

    def go():
        p = srv.cli("document", "accept", doc["id"], check=False)
        err = J.refused(p, 1)
        assert "assign" in err, err
    unchanged(world, go)


def test_assign_to_an_unknown_item_is_refused(world):
    srv = world["srv"]

    def go():
        p = srv.cli("document", "assign", world["doc"], "no-such-item",
                    check=False)
        err = J.refused(p, 1)
        assert "no-such-item" in err, err
    unchanged(world, go)


def test_another_accounts_document_is_not_found(world):
    srv = world["srv"]
    odoc = world["odoc"]

    def go():
        for args in (["accept", odoc], ["reject", odoc, "--reason", "no"],
                     ["assign", odoc, ID_SLUG], ["accept", 99999999]):
            p = srv.cli("document", *(args + ["--account", "ACME"]),
                        check=False)
            err = J.refused(p, 1)
            assert "not found" in err.lower(), (args, err)
    unchanged(world, go)


def test_reject_without_a_reason_is_refused(world):
    srv = world["srv"]
    doc = world["doc"]
    srv.cli("document", "assign", doc, ID_SLUG)

    def go():
        p = srv.cli("document", "reject", doc, check=False)
        err = J.refused(p, 2)
        assert "--reason" in err, err
        for reason in ("", "   ", "line one\nline two", "x" * 1001):
            p = srv.cli("document", "reject", doc, "--reason", reason,
                        check=False)
            err = J.refused(p, {1, 2})
            assert "reason" in err.lower(), (reason, err)
    unchanged(world, go)


def test_colliding_slugs_are_refused(world):
    srv = world["srv"]

    def lists():
        return as_list(srv.cli_json("checklist", "list", "--account",
                                    "ACME"), "checklists")

    def go():
        before = lists()
        p = srv.cli("checklist", "add", "ACME", "clash", "--item",
                    "ID card", "--item", "ID-card", check=False)
        err = J.refused(p, 1)
        assert "ID card" in err and "ID-card" in err, err
        assert lists() == before
        n = len(srv.dossiers())
        p = srv.cli("dossier", "create", "--account", "ACME", "--contact",
                    J.ZOE, "--ref", "CLASH-1", "--item", ID_LABEL,
                    "--item", "Piece d'identite", check=False)
        err = J.refused(p, 1)
        assert ID_LABEL in err and "Piece d'identite" in err, err
        assert len(srv.dossiers()) == n
        # on an existing dossier: its checklist has "Pièce d'identité"
        p = srv.cli("invite", world["did"], "--documents",
                    "Piece d'identite", check=False)
        err = J.refused(p, 1)
        assert "Piece d'identite" in err, err
    unchanged(world, go)


def test_item_addresses_are_accepted_exactly_as_the_plain_one(world):
    """No oracle: an unknown slug is accepted as the plain address is (its
    files filed unassigned, the history notes the unknown item), and a
    sender the policy refuses is refused at the item address with the
    plain address's reply."""
    srv = world["srv"]
    local, domain = world["addr"].split("@")
    unknown = "%s+no-such-slug@%s" % (local, domain)
    J.mail_from_zoe(srv, unknown, "autre", "ci-joint",
                    [("unknown-slug.pdf", J.pdf("unknown-slug"))])
    d = J.show(srv, world["did"])
    doc = J.docs_by_name(d)["unknown-slug.pdf"]
    assert doc["item"] is None, doc
    assert "no-such-slug" in " ".join(e["detail"] or "" for e in
                                      d["events"]), d["events"]
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO stranger.example").code == 250
        assert c.cmd("MAIL FROM:<stranger@elsewhere.example>").code == 250
        plain = c.cmd("RCPT TO:<%s>" % world["addr"])
        item = c.cmd("RCPT TO:<%s+%s@%s>" % (local, ID_SLUG, domain))
        bogus = c.cmd("RCPT TO:<%s+no-such-slug@%s>" % (local, domain))
    assert plain.code >= 500, plain
    assert (item.code, item.enhanced) == (plain.code, plain.enhanced), \
        (item, plain)
    assert (bogus.code, bogus.enhanced) == (plain.code, plain.enhanced), \
        (bogus, plain)


def test_after_an_outage_one_reminder_then_the_gap(world):
    """Both reminders overdue (nothing ran for a month): one goes out, not
    two back to back; the next waits the schedule's gap (7 - 3 = 4 days)
    from it, however often `remind` runs."""
    srv = world["srv"]
    addr = srv.cli("dossier", "create", "--account", "ACME", "--contact",
                   J.ZOE, "--ref", "OUTAGE-1", "--locale", "fr",
                   "--checklist", "kyc-fr").stdout.strip()
    did = srv.dossier_id(addr)
    out = J.Outbox(srv, did)
    srv.cli_json("invite", did)
    t0 = J.now()
    assert [m.kind for m in out.new()] == ["invitation"]
    got = [(at, remind(srv, t0 + at * DAY)["queued"])
           for at in (30, 30, 33, 34, 34)]
    assert got == [(30, 1), (30, 0), (33, 0), (34, 1), (34, 0)], got
    rem = out.new()
    assert [m.kind for m in rem] == ["reminder", "reminder"], rem
    for r in rem:
        J.assert_french_to_zoe(r, addr)
        assert ID_LABEL in r.text and HOME_LABEL in r.text, r
        assert BANK_LABEL not in r.text, r

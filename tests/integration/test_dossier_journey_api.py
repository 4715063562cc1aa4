"""
The dossier loop of issue 14 through the JSON API, driven with the real
curl binary against a real `postdoc serve` (documents still arrive over
SMTP with smtplib, mail leaves through the file transport):

POST /checklists and /dossiers with items (the contact as "Name <addr>",
in French); the invitation lists each item's address; a file to the
plain address is unassigned, one to an item address is filed there;
assign, accept (refused while unassigned), reject with a reason (the
French rejection mail), GET shows each item's state; she resends, all
required items accepted make the dossier complete with dossier.completed
once; her text-only reply shows in /messages; close with notify.  Bad
input - an unknown item, another account's document (404), a rejection
without reason, colliding slugs - is refused and changes nothing.
"""
import contextlib

import pytest

import journey_lib as J
import postdoc_harness as H
from journey_lib import (BANK_LABEL, BANK_SLUG, HOME_LABEL, HOME_SLUG,
                         ID_LABEL, ID_SLUG)


@contextlib.contextmanager
def step(name):
    print("journey step: %s" % name, flush=True)
    try:
        yield
    except AssertionError as e:
        raise AssertionError("API journey step '%s': %s" % (name, e)) from e


ITEMS = [{"label": ID_LABEL, "required": True},
         {"label": HOME_LABEL, "required": True, "types": ["pdf", "jpeg"],
          "max_size": 5000000},
         {"label": BANK_LABEL, "required": False}]


class Client:
    def __init__(self, srv, token):
        self.base = "http://127.0.0.1:%d/api/v1" % srv.api_port
        self.token = token

    def __call__(self, method, path, body=None, expect=None):
        code, data = J.curl(method, self.base + path, self.token, body)
        if expect is not None:
            assert code == expect, (method, path, body, code, data)
        return code, data


def error_code(data):
    assert isinstance(data, dict) and "error" in data, data
    return data["error"].get("code")


@pytest.fixture
def world(own_servers):
    srv = J.journey_server(own_servers, api=True)
    acme = Client(srv, J.new_token(srv, "ACME", "crm"))
    other = Client(srv, J.new_token(srv, "OTHER", "crm"))
    return srv, acme, other


def snapshot(srv, api, did):
    """What a refused call must leave as it was: the dossier, its
    documents, and the CLI's full view with the history."""
    return (api("GET", "/dossiers/%d" % did, expect=200)[1],
            api("GET", "/dossiers/%d/documents" % did, expect=200)[1],
            J.show(srv, did), J.settle(srv))


def doc_ids(api, did):
    data = api("GET", "/dossiers/%d/documents" % did, expect=200)[1]
    rows = data["data"] if isinstance(data, dict) else data
    return {d["filename"]: d["id"] for d in rows}


def items_of(api, did):
    d = api("GET", "/dossiers/%d" % did, expect=200)[1]
    return d, {it["slug"]: it for it in d["items"]}


def test_dossier_journey_through_the_api(world):
    srv, api, other = world
    me = "api:crm"
    ref = "API-ZOE-1"

    with step("POST /checklists, GET /checklists, a dossier from it"):
        code, c = api("POST", "/checklists", {"name": "kyc-api",
                                              "items": ITEMS})
        assert code in (200, 201), (code, c)
        code, lists = api("GET", "/checklists", expect=200)
        rows = lists["data"] if isinstance(lists, dict) else lists
        assert [x for x in rows if x["name"] == "kyc-api"], lists
        code, d = api("POST", "/dossiers", {"ref": "API-FROM-LIST",
                                            "contact": J.ZOE,
                                            "checklist": "kyc-api"},
                      expect=201)
        assert [it["slug"] for it in d["items"]] == [ID_SLUG, HOME_SLUG,
                                                     BANK_SLUG], d

    with step("POST /dossiers with items, the contact as a person"):
        code, d = api("POST", "/dossiers", {
            "ref": ref, "contact": J.ZOE, "locale": "fr", "items": ITEMS,
            "due": J.DUE}, expect=201)
        did, addr = d["id"], d["address"]
        assert H.ADDRESS_RE.match(addr), d
        assert d["contact"] == J.ZOE_ADDR, d
        assert d["contact_name"] == J.ZOE_NAME and d["locale"] == "fr", d
        assert d["due"] == J.DUE and d["complete"] is False, d
        local, domain = addr.split("@")
        assert [it["slug"] for it in d["items"]] == [ID_SLUG, HOME_SLUG,
                                                     BANK_SLUG], d
        assert [it["required"] for it in d["items"]] == [True, True, False]
        items = {it["slug"]: it for it in d["items"]}
        for slug, it in items.items():
            assert it["state"] == "requested" and it["label"] == \
                J.LABELS[slug], it
            assert it["address"] == "%s+%s@%s" % (local, slug, domain), it
        assert api("GET", "/dossiers/%d" % did, expect=200)[1] == d

    out = J.Outbox(srv, did)
    with step("POST /dossiers/{id}/invitations: French, each item's "
              "address"):
        api("POST", "/dossiers/%d/invitations" % did, {}, expect=202)
        inv = out.new()
        assert [m.kind for m in inv] == ["invitation"], inv
        J.assert_french_to_zoe(inv[0], addr)
        for it in items.values():
            assert it["address"] in inv[0].text, (it, inv[0])
        assert {it["address"] for it in items.values()} <= inv[0].mailto()

    with step("a file to the plain address is unassigned, one to an item "
              "address is filed there"):
        J.mail_from_zoe(srv, addr, "documents", "ci-joint",
                        [("domicile.pdf", J.pdf("domicile"))])
        J.mail_from_zoe(srv, items[ID_SLUG]["address"], "identité",
                        "ci-joint", [("identite.pdf", J.pdf("identite"))])
        out.new()                       # the receipts
        ids = doc_ids(api, did)
        assert set(ids) == {"domicile.pdf", "identite.pdf"}, ids
        d, its = items_of(api, did)
        assert its[ID_SLUG]["state"] == "received"
        assert its[ID_SLUG]["documents"] == [ids["identite.pdf"]]
        assert its[HOME_SLUG]["state"] == "requested"
        assert its[HOME_SLUG]["documents"] == []

    with step("accept is refused while the document is unassigned"):
        before = snapshot(srv, api, did)
        code, data = api("POST", "/documents/%d/accept" %
                         ids["domicile.pdf"], {})
        assert code == 422, (code, data)
        error_code(data)
        assert snapshot(srv, api, did) == before

    with step("assign: the unassigned file under its item"):
        api("POST", "/documents/%d/assign" % ids["domicile.pdf"],
            {"item": HOME_SLUG}, expect=200)
        d, its = items_of(api, did)
        assert its[HOME_SLUG]["state"] == "received"
        assert its[HOME_SLUG]["documents"] == [ids["domicile.pdf"]]

    with step("bad input changes nothing: an unknown item, no reason, "
              "another account's document"):
        before = snapshot(srv, api, did)
        code, data = api("POST", "/documents/%d/assign" %
                         ids["identite.pdf"], {"item": "no-such-item"})
        assert code in (404, 422), (code, data)
        error_code(data)
        for body in ({}, {"reason": ""}, {"reason": "   "},
                     {"reason": "x" * 1001}, {"reason": 42}):
            code, data = api("POST", "/documents/%d/reject" %
                             ids["identite.pdf"], body)
            assert code == 422, (body, code, data)
            error_code(data)
        for path, body in (("/documents/%d/accept", {}),
                           ("/documents/%d/reject", {"reason": "no"}),
                           ("/documents/%d/assign", {"item": ID_SLUG})):
            code, data = other("POST", path % ids["identite.pdf"], body)
            assert code == 404 and error_code(data) == "not_found", \
                (path, code, data)
        code, data = other("GET", "/dossiers/%d" % did)
        assert code == 404, (code, data)
        code, data = api("POST", "/documents/99999999/accept", {})
        assert code == 404 and error_code(data) == "not_found"
        assert snapshot(srv, api, did) == before

    with step("colliding slugs are refused"):
        before = snapshot(srv, api, did)
        code, data = api("POST", "/dossiers/%d/items" % did,
                         {"items": [{"label": "Piece d'identite"}]})
        assert code == 422, (code, data)
        msg = data["error"]["message"]
        assert ID_LABEL in msg and "Piece d'identite" in msg, msg
        assert snapshot(srv, api, did) == before
        code, data = api("POST", "/dossiers", {
            "ref": "API-CLASH", "contact": J.ZOE_ADDR,
            "items": [{"label": "ID card"}, {"label": "ID-card"}]})
        assert code == 422, (code, data)
        code, data = api("GET", "/dossiers?ref=API-CLASH", expect=200)
        assert data["data"] == [], data

    with step("reject with a reason: the French rejection mail, the item "
              "rejected"):
        api("POST", "/documents/%d/reject" % ids["identite.pdf"],
            {"reason": J.REASON}, expect=200)
        rej = out.new()
        assert len(rej) == 1, rej
        m = rej[0]
        J.assert_french_to_zoe(m, addr)
        assert J.REASON in m.text, m
        assert items[ID_SLUG]["address"] in m.text, m
        d, its = items_of(api, did)
        assert its[ID_SLUG]["state"] == "rejected", its[ID_SLUG]
        assert its[ID_SLUG]["reason"] == J.REASON, its[ID_SLUG]
        shown = J.docs_by_name(J.show(srv, did))["identite.pdf"]
        assert shown["review"] == "rejected" and shown["reviewed_by"] == me
        ev = [J.detail(e["detail"]) for e in
              J.events(J.show(srv, did), "document.rejected")]
        assert ev == [{"document": str(ids["identite.pdf"]),
                       "item": ID_SLUG, "by": me, "reason": J.REASON}], ev

    with step("she resends; all required accepted: complete, "
              "dossier.completed once"):
        J.mail_from_zoe(srv, items[ID_SLUG]["address"], "nouvelle version",
                        "ci-joint",
                        [("identite-v2.pdf", J.pdf("identite-v2"))])
        out.new()
        ids = doc_ids(api, did)
        d, its = items_of(api, did)
        assert its[ID_SLUG]["state"] == "received"
        assert ids["identite-v2.pdf"] in its[ID_SLUG]["documents"]
        api("POST", "/documents/%d/accept" % ids["identite-v2.pdf"], {},
            expect=200)
        d, its = items_of(api, did)
        assert d["complete"] is False and its[ID_SLUG]["state"] == \
            "accepted"
        api("POST", "/documents/%d/accept" % ids["domicile.pdf"], {},
            expect=200)
        d, its = items_of(api, did)
        assert d["complete"] is True, d
        assert its[HOME_SLUG]["state"] == "accepted"
        assert its[BANK_SLUG]["state"] == "requested"   # optional
        code, _ = api("POST", "/documents/%d/accept" % ids["domicile.pdf"],
                      {})
        assert code == 200
        shown = J.show(srv, did)
        assert len(J.events(shown, "dossier.completed")) == 1
        acc = [J.detail(e["detail"]) for e in
               J.events(shown, "document.accepted")]
        assert {a["by"] for a in acc} == {me} and len(acc) == 2, acc

    with step("her text-only reply shows in /messages"):
        rec = [m for m in (out.mail(r) for r in out.rows("receipt"))][-1]
        J.mail_from_zoe(srv, rec.addr("Reply-To"),
                        "Re: " + str(rec.msg["Subject"]), J.QUESTION)
        code, msgs = api("GET", "/dossiers/%d/messages" % did, expect=200)
        rows = msgs["data"] if isinstance(msgs, dict) else msgs
        assert any(J.QUESTION in (x.get("text") or "") for x in rows), rows
        assert len(doc_ids(api, did)) == 3

    with step("close with notify: the closing message; a closed dossier "
              "refuses reviews"):
        out.new()
        api("POST", "/dossiers/%d/close" % did, {"notify": True},
            expect=200)
        closing = out.new()
        assert len(closing) == 1, closing
        J.assert_french_to_zoe(closing[0], addr)
        # the closed dossier's address refuses mail: a reply must reach
        # the firm, so no Reply-To and no address in the message
        assert closing[0].msg["Reply-To"] is None, closing[0]
        assert addr.split("@")[0] not in closing[0].text, closing[0].text
        before = snapshot(srv, api, did)
        code, data = api("POST", "/documents/%d/reject" %
                         ids["domicile.pdf"], {"reason": "trop tard"})
        assert code in (409, 422), (code, data)
        assert snapshot(srv, api, did) == before

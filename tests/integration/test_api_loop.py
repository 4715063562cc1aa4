"""
The dossier loop through the JSON API of a real `postdoc serve`, with the
real curl binary: a checklist of the account, a dossier made from it for
"Zoé Martin <...>" in French, files mailed in over SMTP (smtplib), each
filed under its item (item addresses) or assigned through the API,
accepted, rejected with a reason (the rejection mail checked in the file
transport's outbox), completion (`complete`, dossier.completed once),
the messages with what the client wrote, closing.  Bad input gets a clear
error and changes nothing: an unknown item (422 naming "item": the
document of the path exists, it is the body that names nothing), another
account's document (404, never 403), a rejection without a reason (422
naming "reason"), a slug two labels share (422 naming "items", no
dossier).  Every JSON answer is validated against docs/openapi.yaml.
"""
import email
import email.policy
import json
import smtplib
import subprocess
from email.message import EmailMessage

import pytest

import postdoc_harness as H
from postdoc_harness import T
from test_api import api_server, new_token, validate, wait_for


ZOE = "zoe@client.example"
PDF = (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n"
       b"<< /Root 1 0 R >>\n%%EOF\n" + bytes(range(256)) * 8)
KYC = [{"label": "ID card", "types": ["pdf", "jpeg"], "max_size": 5000000},
       {"label": "Proof of address"},
       {"label": "Bank details", "required": False}]


class Curl:
    """The API through the curl binary, every JSON answer validated."""

    def __init__(self, port, token):
        self.base = "http://127.0.0.1:%d" % port
        self.token = token

    def call(self, method, path, body=None, expect=None):
        args = ["curl", "-sS", "--max-time", str(T(30)), "-X", method,
                "-H", "Authorization: Bearer " + self.token,
                "-w", "\n%{http_code} %{content_type}"]
        if body is not None:
            args += ["-H", "Content-Type: application/json",
                     "--data-binary", json.dumps(body)]
        p = subprocess.run(args + [self.base + path], capture_output=True,
                           text=True, timeout=T(60))
        assert p.returncode == 0, p.stderr
        out, _, tail = p.stdout.rpartition("\n")
        code, _, ctype = tail.partition(" ")
        validate(method, path, int(code), ctype, out)
        js = json.loads(out)
        if expect is not None:
            assert int(code) == expect, (method, path, code, out)
        return int(code), js


@pytest.fixture(scope="module")
def srv(servers):
    return api_server(servers)


@pytest.fixture(scope="module")
def acme(srv):
    return Curl(srv.api_port, new_token(srv, "ACME", "crm"))


@pytest.fixture(scope="module")
def other(srv):
    return Curl(srv.api_port, new_token(srv, "OTHER", "crm"))


@pytest.fixture(scope="module")
def kyc(acme):
    """ACME's checklist kyc-individual, made once for the module."""
    return post(acme, "/checklists", {"name": "kyc-individual",
                                      "items": KYC}, expect=201)[1]


_n = iter(range(1, 1000000))


def ref():
    return "LOOP-%d" % next(_n)


def mail(srv, to, name="scan.pdf", text="Voici le document.",
         attach=True):
    msg = EmailMessage()
    msg["From"] = ZOE
    msg["To"] = to
    msg["Subject"] = "Documents"
    msg.set_content(text)
    if attach:
        msg.add_attachment(PDF + name.encode(), maintype="application",
                           subtype="pdf", filename=name)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30)) as s:
        s.sendmail(ZOE, [to], msg.as_bytes(policy=email.policy.SMTP))


def documents(api, d):
    return api.call("GET", "/api/v1/dossiers/%d/documents" % d["id"],
                    expect=200)[1]["data"]


def wait_docs(api, d, n):
    return wait_for(lambda: (lambda v: v if len(v) >= n else None)(
        documents(api, d)), "%d documents in dossier %d" % (n, d["id"]))


def get(api, d):
    return api.call("GET", "/api/v1/dossiers/%d" % d["id"], expect=200)[1]


def item(dossier, slug):
    return [i for i in dossier["items"] if i["slug"] == slug][0]


def events(srv, d, kind):
    return [r[0] for r in srv.query(
        "SELECT detail FROM events WHERE dossier_id = ? AND kind = ?"
        " ORDER BY id", d["id"], kind)]


def delivered(srv, oid, rcpt=ZOE):
    """The message outbound_id oid as the file transport wrote it."""
    path = srv.var / "outbox" / ("%d-%s.eml" % (oid, rcpt))
    wait_for(path.is_file, "message %d in the outbox" % oid)
    return email.message_from_bytes(path.read_bytes(),
                                    policy=email.policy.default)


def post(api, path, body=None, expect=None):
    return api.call("POST", "/api/v1" + path, body if body is not None
                    else {}, expect=expect)


def new_dossier(api, **kw):
    body = {"contact": "Zoé Martin <%s>" % ZOE, "locale": "fr",
            "ref": ref()}
    body.update(kw)
    return post(api, "/dossiers", body, expect=201)[1]


# ------------------------------------------------------------ checklists

def test_checklist_create_list_and_refusals(acme, other, kyc):
    c = kyc
    assert c["name"] == "kyc-individual"
    assert [(i["label"], i["required"], i["types"], i["max_size"])
            for i in c["items"]] == [
        ("ID card", True, "PDF, JPEG", 5000000),
        ("Proof of address", True, "", 0),
        ("Bank details", False, "", 0)]
    lst = acme.call("GET", "/api/v1/checklists", expect=200)[1]["data"]
    assert [x["name"] for x in lst] == ["kyc-individual"]
    assert other.call("GET", "/api/v1/checklists",
                      expect=200)[1]["data"] == []
    # refusals change nothing
    st, e = post(acme, "/checklists", {"name": "kyc-individual",
                                       "items": KYC})
    assert st == 409 and e["error"]["code"] == "conflict"
    st, e = post(acme, "/checklists", {"name": "dup", "items": [
        {"label": "ID card"}, {"label": "ID-card"}]})
    assert st == 422 and e["error"]["field"] == "items"
    assert "ID card" in e["error"]["message"]
    assert "ID-card" in e["error"]["message"]
    st, e = post(acme, "/checklists", {"name": "../x", "items": KYC})
    assert st == 422 and e["error"]["field"] == "name"
    st, e = post(acme, "/checklists", {"name": "empty", "items": []})
    assert st == 422 and e["error"]["field"] == "items"
    st, e = post(acme, "/checklists", {"name": "bad", "items": [
        {"label": "X", "max_size": "big"}]})
    assert st == 422 and e["error"]["field"] == "items"
    lst = acme.call("GET", "/api/v1/checklists", expect=200)[1]["data"]
    assert [x["name"] for x in lst] == ["kyc-individual"]


# ------------------------------------------------------------ dossiers

def test_create_from_checklist_with_contact_as_person(srv, acme, kyc):
    d = new_dossier(acme, checklist="kyc-individual", due="2026-12-20",
                    items=[{"label": "Avis d'imposition", "types": "pdf"}])
    assert d["contact"] == ZOE and d["contact_name"] == "Zoé Martin"
    assert d["locale"] == "fr" and d["due"] == "2026-12-20"
    assert d["complete"] is False
    assert [(i["slug"], i["required"], i["state"]) for i in d["items"]] == [
        ("id-card", True, "requested"),
        ("proof-of-address", True, "requested"),
        ("bank-details", False, "requested"),
        ("avis-d-imposition", True, "requested")]
    local, domain = d["address"].split("@")
    for i in d["items"]:
        assert i["address"] == "%s+%s@%s" % (local, i["slug"], domain)
        assert i["documents"] == [] and i["reason"] is None
    assert item(d, "id-card")["types"] == "PDF, JPEG"
    assert item(d, "id-card")["max_size"] == 5000000
    assert d["requested"] == ["ID card", "Proof of address",
                              "Avis d'imposition"]
    assert get(acme, d) == d
    # contact_name wins over the name in contact
    d2 = new_dossier(acme, contact=ZOE, contact_name="Zoé Martin-Dupont",
                     requested=["Passeport"])
    assert d2["contact_name"] == "Zoé Martin-Dupont"
    assert [(i["label"], i["required"]) for i in d2["items"]] == [
        ("Passeport", True)]


def test_create_refusals_create_nothing(acme, kyc):
    before = acme.call("GET", "/api/v1/dossiers?limit=7",
                       expect=200)[1]
    cases = [
        ({"items": [{"label": "ID card"}, {"label": "ID-card"}]}, "items"),
        # the checklist's "ID card" and this "ID-card" share +id-card
        ({"checklist": "kyc-individual", "items": [{"label": "ID-card"}]},
         "items"),
        ({"checklist": "no-such-list"}, "checklist"),
        ({"locale": "français"}, "locale"),
        ({"contact": "Zoé <not an address>"}, "contact"),
        ({"contact_name": "Zoé <evil>"}, "contact_name"),
        ({"items": [{"types": "pdf"}]}, "items"),
        ({"items": "ID card"}, "items"),
        ({"requested": [1, 2]}, "requested"),
    ]
    for extra, field in cases:
        r = ref()
        body = {"contact": ZOE, "ref": r}
        body.update(extra)
        st, e = post(acme, "/dossiers", body)
        assert st == 422, (extra, e)
        assert e["error"]["code"] == "invalid_field"
        assert e["error"]["field"] == field, (extra, e)
        got = acme.call("GET", "/api/v1/dossiers?ref=" + r,
                        expect=200)[1]["data"]
        assert got == [], (extra, "a dossier was created")
    st, e = post(acme, "/dossiers", {"contact": ZOE, "ref": ref(), "items": [
        {"label": "ID card"}, {"label": "ID-card"}]})
    assert "ID card" in e["error"]["message"]
    assert "ID-card" in e["error"]["message"]
    after = acme.call("GET", "/api/v1/dossiers?limit=7", expect=200)[1]
    assert after == before


def test_items_added_later(acme):
    d = new_dossier(acme, items=[{"label": "ID card"}])
    p = "/dossiers/%d/items" % d["id"]
    g = post(acme, p, {"items": [{"label": "ID card"},
                                 {"label": "Bank details",
                                  "required": False}]}, expect=200)[1]
    assert [i["slug"] for i in g["items"]] == ["id-card", "bank-details"]
    st, e = post(acme, p, {"items": [{"label": "Payslip"},
                                     {"label": "ID-card"}]})
    assert st == 422 and e["error"]["field"] == "items"
    st, e = post(acme, p, {"items": []})
    assert st == 422 and e["error"]["field"] == "items"
    assert get(acme, d) == g        # all or none: no Payslip
    post(acme, "/dossiers/%d/close" % d["id"], expect=200)
    st, e = post(acme, p, {"items": [{"label": "Payslip"}]})
    assert st == 409 and e["error"]["code"] == "dossier_closed"


# ------------------------------------------------------------ the journey

def test_journey_assign_accept_complete(srv, acme, other, kyc):
    d = new_dossier(acme, checklist="kyc-individual")
    # two outstanding required items: what reaches the plain address is
    # unassigned, for the operator to file
    mail(srv, d["address"], "passport.pdf")
    mail(srv, d["address"], "facture-edf.pdf")
    mail(srv, d["address"], "",
         text="Je n'ai pas de RIB, puis-je envoyer une attestation ?",
         attach=False)
    docs = wait_docs(acme, d, 2)
    by = {x["filename"]: x for x in docs}
    passport, bill = by["passport.pdf"], by["facture-edf.pdf"]
    for x in docs:
        assert x["item"] is None and x["review"] == "pending"
        assert x["reviewed_by"] is None and x["reviewed_at"] is None

    # the conversation: every message, with what the client wrote
    msgs = wait_for(lambda: (lambda v: v if len(v) == 3 else None)(
        acme.call("GET", "/api/v1/dossiers/%d/messages" % d["id"],
                  expect=200)[1]["data"]), "three messages")
    question = [m for m in msgs if m["documents"] == []]
    assert len(question) == 1 and question[0]["from"] == ZOE
    assert "puis-je envoyer une attestation" in question[0]["text"]
    assert sorted(i for m in msgs for i in m["documents"]) == sorted(
        [passport["id"], bill["id"]])

    # accepting an unassigned document: 422 with the way out
    st, e = post(acme, "/documents/%d/accept" % passport["id"])
    assert st == 422 and e["error"]["field"] == "item"
    assert "/assign" in e["error"]["message"]

    # an unknown item: 422 naming "item", nothing changed
    st, e = post(acme, "/documents/%d/assign" % passport["id"],
                 {"item": "passport"})
    assert st == 422 and e["error"]["field"] == "item"
    assert '"passport"' in e["error"]["message"]
    st, e = post(acme, "/documents/%d/assign" % passport["id"], {})
    assert st == 422 and e["error"]["field"] == "item"
    assert acme.call("GET", "/api/v1/documents/%d" % passport["id"],
                     expect=200)[1] == passport

    # another account's document is not found, whatever the verb
    for verb, body in (("assign", {"item": "id-card"}), ("accept", {}),
                       ("reject", {"reason": "no"})):
        st, e = post(other, "/documents/%d/%s" % (passport["id"], verb),
                     body)
        assert st == 404 and e["error"]["code"] == "not_found", verb
    st, e = post(acme, "/documents/999999/accept")
    assert st == 404 and e["error"]["code"] == "not_found"

    # a rejection without a reason is refused before anything happens
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": 3}):
        st, e = post(acme, "/documents/%d/reject" % passport["id"], body)
        assert st == 422 and e["error"]["field"] == "reason", body
    assert acme.call("GET", "/api/v1/documents/%d" % passport["id"],
                     expect=200)[1] == passport
    assert events(srv, d, "document.rejected") == []

    # file and accept
    r = post(acme, "/documents/%d/assign" % passport["id"],
             {"item": "id-card"}, expect=200)[1]
    assert r["document"]["item"] == "id-card"
    assert r["item"]["state"] == "received"
    assert r["item"]["documents"] == [passport["id"]]
    assert r["unchanged"] is False and r["complete"] is False
    assert events(srv, d, "document.assigned") == [
        "document=%d item=id-card from=none by=api:crm" % passport["id"]]
    r = post(acme, "/documents/%d/accept" % passport["id"],
             expect=200)[1]
    assert r["document"]["review"] == "accepted"
    assert r["document"]["reviewed_by"] == "api:crm"
    assert r["document"]["reviewed_at"] > 0
    assert r["item"]["state"] == "accepted"
    assert r["completed"] is False and r["outbound_id"] is None
    again = post(acme, "/documents/%d/accept" % passport["id"],
                 expect=200)[1]
    assert again["unchanged"] is True
    assert events(srv, d, "document.accepted") == [
        "document=%d item=id-card by=api:crm" % passport["id"]]

    # the last required item completes the dossier, once
    post(acme, "/documents/%d/assign" % bill["id"],
         {"item": "proof-of-address"}, expect=200)
    r = post(acme, "/documents/%d/accept" % bill["id"], expect=200)[1]
    assert r["completed"] is True and r["complete"] is True
    g = get(acme, d)
    assert g["complete"] is True
    assert [(i["slug"], i["state"]) for i in g["items"]] == [
        ("id-card", "accepted"), ("proof-of-address", "accepted"),
        ("bank-details", "requested")]
    assert item(g, "proof-of-address")["documents"] == [bill["id"]]
    assert events(srv, d, "dossier.completed") == [""]
    # moving it away and back re-opens and re-completes: still once
    post(acme, "/documents/%d/assign" % bill["id"], {"item": None},
         expect=200)
    assert get(acme, d)["complete"] is False
    r = post(acme, "/documents/%d/assign" % bill["id"],
             {"item": "proof-of-address"}, expect=200)[1]
    assert r["complete"] is True and r["completed"] is False
    assert events(srv, d, "dossier.completed") == [""]

    # closed: reviews are refused, the dossier stays as it is
    c = post(acme, "/dossiers/%d/close" % d["id"], {"notify": False},
             expect=200)[1]
    assert c["status"] == "closed" and c["complete"] is True
    st, e = post(acme, "/documents/%d/assign" % bill["id"], {"item": None})
    assert st == 409 and e["error"]["code"] == "dossier_closed"


def test_close_refusals(acme, other):
    d = new_dossier(acme)
    st, e = post(acme, "/dossiers/%d/close" % d["id"], {"notify": "yes"})
    assert st == 422 and e["error"]["field"] == "notify"
    assert get(acme, d)["status"] == "open"
    st, e = post(other, "/dossiers/%d/close" % d["id"], {})
    assert st == 404 and e["error"]["code"] == "not_found"
    assert get(acme, d)["status"] == "open"


def reviewed_dossier(srv, acme):
    """A dossier of two items with a document filed under ID card."""
    d = new_dossier(acme, items=[{"label": "Pièce d'identité"},
                                 {"label": "Justificatif de domicile"}])
    mail(srv, d["address"], "cni-coupee.jpg.pdf")
    doc = wait_docs(acme, d, 1)[0]
    post(acme, "/documents/%d/assign" % doc["id"],
         {"item": "piece-d-identite"}, expect=200)
    return d, doc


def test_reject_with_reason_tells_the_contact(srv, acme):
    d, doc = reviewed_dossier(srv, acme)
    why = "Le scan est coupé en bas"
    r = post(acme, "/documents/%d/reject" % doc["id"], {"reason": why},
             expect=200)[1]
    assert r["document"]["review"] == "rejected"
    assert r["document"]["review_reason"] == why
    assert r["document"]["reviewed_by"] == "api:crm"
    assert r["item"]["state"] == "rejected" and r["item"]["reason"] == why
    assert r["outbound_id"] > 0
    assert events(srv, d, "document.rejected") == [
        "document=%d item=piece-d-identite by=api:crm reason=%s"
        % (doc["id"], why)]
    msg = delivered(srv, r["outbound_id"])
    text = msg.get_body(("plain",)).get_content()
    addr = item(get(acme, d), "piece-d-identite")["address"]
    assert why in text and addr in text and "Zoé Martin" in text
    # the same rejection again changes nothing and sends nothing
    again = post(acme, "/documents/%d/reject" % doc["id"], {"reason": why},
                 expect=200)[1]
    assert again["unchanged"] is True and again["outbound_id"] is None


def test_resend_after_rejection_then_complete(srv, acme):
    d, doc = reviewed_dossier(srv, acme)
    post(acme, "/documents/%d/reject" % doc["id"],
         {"reason": "Illisible"}, expect=200)
    mail(srv, d["address"], "cni.pdf")
    mail(srv, d["address"], "edf.pdf")
    docs = {x["filename"]: x for x in wait_docs(acme, d, 3)}
    for name, slug in (("cni.pdf", "piece-d-identite"),
                       ("edf.pdf", "justificatif-de-domicile")):
        post(acme, "/documents/%d/assign" % docs[name]["id"],
             {"item": slug}, expect=200)
        r = post(acme, "/documents/%d/accept" % docs[name]["id"],
                 expect=200)[1]
    assert r["completed"] is True and get(acme, d)["complete"] is True
    assert events(srv, d, "dossier.completed") == [""]


def test_close_with_notify_sends_the_closing_message(srv, acme):
    d = new_dossier(acme)
    post(acme, "/dossiers/%d/close" % d["id"], {"notify": True},
         expect=200)
    # nothing else was ever sent about this dossier
    row = wait_for(lambda: [r for r in srv.cli_json(
        "queue", "list", "--account", "ACME")
        if r["dossier_id"] == d["id"]], "the closing message queued")[0]
    msg = delivered(srv, row["id"])
    assert "Zoé Martin" in msg.get_body(("plain",)).get_content()
    # closing again sends nothing more
    post(acme, "/dossiers/%d/close" % d["id"], {"notify": True},
         expect=200)
    assert len([r for r in srv.cli_json("queue", "list", "--account",
                                        "ACME")
                if r["dossier_id"] == d["id"]]) == 1


def test_files_to_item_addresses_are_filed_under_them(srv, acme, kyc):
    d = new_dossier(acme, checklist="kyc-individual")
    mail(srv, item(d, "id-card")["address"], "passport.pdf")
    mail(srv, item(d, "proof-of-address")["address"], "edf.pdf")
    docs = {x["filename"]: x for x in wait_docs(acme, d, 2)}
    assert docs["passport.pdf"]["item"] == "id-card"
    assert docs["edf.pdf"]["item"] == "proof-of-address"
    g = get(acme, d)
    assert item(g, "id-card")["state"] == "received"
    assert item(g, "id-card")["documents"] == [docs["passport.pdf"]["id"]]
    post(acme, "/documents/%d/accept" % docs["passport.pdf"]["id"],
         expect=200)
    post(acme, "/documents/%d/accept" % docs["edf.pdf"]["id"], expect=200)
    assert get(acme, d)["complete"] is True


def test_plain_address_files_under_the_only_outstanding_item(srv, acme):
    d = new_dossier(acme, items=[{"label": "Avis d'imposition"}])
    mail(srv, d["address"], "avis.pdf")
    doc = wait_docs(acme, d, 1)[0]
    assert doc["item"] == "avis-d-imposition"


def test_invitation_lists_each_item_with_its_address(srv, acme, kyc):
    d = new_dossier(acme, checklist="kyc-individual")
    oid = post(acme, "/dossiers/%d/invitations" % d["id"], {},
               expect=202)[1]["outbound_id"]
    text = delivered(srv, oid).get_body(("plain",)).get_content()
    for i in d["items"]:
        assert i["label"] in text and i["address"] in text
    assert "Zoé Martin" in text


def test_invitation_requested_adds_items_all_or_none(acme):
    d = new_dossier(acme, items=[{"label": "ID card"}])
    p = "/dossiers/%d/invitations" % d["id"]
    st, e = post(acme, p, {"requested": ["Payslip", "ID-card"]})
    assert st == 422 and e["error"]["field"] == "requested"
    assert [i["slug"] for i in get(acme, d)["items"]] == ["id-card"]
    post(acme, p, {"requested": ["ID card", "Payslip"], "locale": "en"},
         expect=202)
    g = get(acme, d)
    assert [i["slug"] for i in g["items"]] == ["id-card", "payslip"]
    assert g["locale"] == "en"


def test_checked_routes():
    """The loop's routes were all exercised and validated."""
    import test_api
    tpls = {t for _, t, _ in test_api.CHECKED}
    assert tpls >= {"/api/v1/checklists", "/api/v1/dossiers",
                    "/api/v1/dossiers/{id}", "/api/v1/dossiers/{id}/items",
                    "/api/v1/dossiers/{id}/messages",
                    "/api/v1/dossiers/{id}/close",
                    "/api/v1/documents/{id}/assign",
                    "/api/v1/documents/{id}/accept",
                    "/api/v1/documents/{id}/reject"}, tpls

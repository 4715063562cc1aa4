"""
The JSON API (/api/v1) of a real `postdoc serve`: bearer tokens made with
the CLI (401 without, with a bad or a revoked one; last use recorded),
tenant isolation (another account's dossier, document and campaign are
404), dossiers (create, list filters and pagination, get, close),
documents mailed in over SMTP and downloaded byte for byte, invitations
queued and delivered by serve's runner through the file transport,
consent grant/status/withdraw, campaigns, subject export and erasure,
the error contract (400, 405, 413, 422), /metrics, and the newcomer flow
with the real curl binary.  Every JSON answer is validated against the
schema docs/openapi.yaml gives for its route and status, and the route
table of `postdoc api routes` must equal the paths of openapi.yaml.
"""
import copy
import email
import email.policy
import http.client
import io
import json
import re
import smtplib
import subprocess
import tarfile
import time
import urllib.parse
from email.message import EmailMessage

import jsonschema
import pytest
import yaml

import postdoc_harness as H
from postdoc_harness import T

ACME_FROM = "onboarding@acme.example"
SPEC_PATH = H.SRCDIR / "docs" / "openapi.yaml"
PAGE_MAX = 7
BODY_MAX = 4096


# ------------------------------------------------------------ OpenAPI

def _nullable(node):
    """OpenAPI 3.0 `nullable: true` as JSON Schema: type [t, "null"]."""
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        if node.pop("nullable", False):
            if "type" in node:
                t = node["type"]
                node["type"] = (t if isinstance(t, list) else [t]) + ["null"]
            elif "$ref" in node:
                node = {"anyOf": [{"$ref": node.pop("$ref")},
                                  {"type": "null"}]}
            if "enum" in node:
                node["enum"] = list(node["enum"]) + [None]
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


SPEC = _nullable(yaml.safe_load(SPEC_PATH.read_text()))
CHECKED = []        # (method, template, status) validated


def _template_of(path):
    """The openapi.yaml path template that path matches, or None."""
    for tpl in SPEC["paths"]:
        rx = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(tpl)) + "$"
        if re.match(rx, path):
            return tpl
    return None


def _check(schema, body):
    resolver = jsonschema.RefResolver.from_schema(SPEC)
    jsonschema.Draft4Validator(schema, resolver=resolver).validate(
        json.loads(body))


def validate(method, path, status, ctype, body):
    """Check a JSON answer against openapi.yaml's schema for it."""
    path = urllib.parse.urlsplit(path).path
    tpl = _template_of(path)
    op = SPEC["paths"][tpl].get(method.lower()) if tpl else None
    if op is None:
        # No such route (404) or no such method on it (405): the shared
        # error answers of components/responses.
        assert status == (405 if tpl else 404), (method, path, status)
        assert ctype == "application/json; charset=utf-8", ctype
        _check(SPEC["components"]["schemas"]["Error"], body)
        CHECKED.append((method, tpl, status))
        return
    resp = op["responses"].get(str(status))
    assert resp is not None, "%s %s: status %d not described" % (
        method, tpl, status)
    if "$ref" in resp:
        resp = SPEC["components"]["responses"][resp["$ref"].split("/")[-1]]
    if not ctype.startswith("application/json"):
        return
    assert ctype == "application/json; charset=utf-8", ctype
    _check(resp["content"]["application/json"]["schema"], body)
    CHECKED.append((method, tpl, status))


# ------------------------------------------------------------ clients

class Api:
    def __init__(self, port, token=None):
        self.port = port
        self.token = token

    def raw(self, method, path, body=None, headers=None, token=True):
        h = dict(headers or {})
        if token and self.token is not None:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=T(30))
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def call(self, method, path, body=None, expect=None, **kw):
        st, hdrs, data = self.raw(method, path, body, **kw)
        validate(method, path, st, hdrs.get("content-type", ""), data)
        if expect is not None:
            assert st == expect, (st, data)
        js = json.loads(data) if hdrs.get("content-type", "").startswith(
            "application/json") else data
        return st, hdrs, js


def api_server(servers):
    srv = servers(start=False)
    srv.api_port = H.free_port()
    srv.sections["api"] = {"listen": "127.0.0.1:%d" % srv.api_port,
                           "page_max": PAGE_MAX, "body_max": BODY_MAX,
                           "metrics": True}
    srv.sections["outbound"] = {
        "transport": "file", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0}
    srv.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris",
         "from_name": "ACME Onboarding", "from_addr": ACME_FROM}])
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(srv.var / "outbox")}}])
    srv.write_config()
    srv.start()
    deadline = time.monotonic() + T(10)
    while not H._port_open(srv.api_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.add_account("ACME", "any")
    srv.add_account("OTHER", "any")
    srv.cli("purpose", "add", "ACME", "newsletter")
    srv.cli("purpose", "add", "OTHER", "newsletter")
    return srv


@pytest.fixture(scope="module")
def srv(servers):
    return api_server(servers)


def new_token(srv, account, name):
    tok = srv.cli("token", "create", "--account", account, "--name",
                  name).stdout.strip()
    assert re.fullmatch(r"pdk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", tok), tok
    return tok


@pytest.fixture(scope="module")
def acme(srv):
    return Api(srv.api_port, new_token(srv, "ACME", "crm"))


@pytest.fixture(scope="module")
def other(srv):
    return Api(srv.api_port, new_token(srv, "OTHER", "crm"))


_n = iter(range(1, 1000000))


def make_dossier(api, contact="claire@client.example", **extra):
    body = {"contact": contact, "ref": "API-%d" % next(_n)}
    body.update(extra)
    return api.call("POST", "/api/v1/dossiers", body, expect=201)[2]


def outbox(srv, rcpt=None):
    """The file transport's messages, <n>-<recipient>.eml (to rcpt)."""
    d = srv.var / "outbox"
    files = sorted(d.glob("*.eml")) if d.is_dir() else []
    return [p for p in files if rcpt is None or
            p.name.split("-", 1)[1] == rcpt + ".eml"]


def wait_for(cond, what, timeout=None):
    deadline = time.monotonic() + (timeout or T(20))
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


# ------------------------------------------------------ route table

def test_routes_match_openapi_both_ways(srv):
    out = srv.cli("api", "routes").stdout.split("\n")
    served = {tuple(ln.split(" ", 1)) for ln in out if ln}
    described = {(m.upper(), p) for p, ops in SPEC["paths"].items()
                 for m in ops if m in ("get", "post", "put", "delete",
                                       "patch")}
    assert len(served) >= 17
    assert served - described == set(), "served, not described"
    assert described - served == set(), "described, not served"


def test_openapi_security_and_error_schema():
    assert SPEC["openapi"].startswith("3.0")
    assert SPEC["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer"}
    err = SPEC["components"]["schemas"]["Error"]
    assert "error" in err["required"]


# ------------------------------------------------------ authentication

def test_401_without_token(srv):
    st, h, body = Api(srv.api_port).call("GET", "/api/v1/dossiers")
    assert st == 401
    assert h["www-authenticate"] == 'Bearer realm="postdoc"'
    assert body["error"]["code"] == "unauthorized"


def test_401_bad_tokens(srv, acme):
    good = acme.token
    for bad in ["nonsense", good[:-1] + ("A" if good[-1] != "A" else "B"),
                "pdk_000000000000_" + "A" * 43, good + "x"]:
        st, h, body = Api(srv.api_port, bad).call("GET", "/api/v1/dossiers")
        assert st == 401, bad
        assert 'error="invalid_token"' in h["www-authenticate"]
        assert body["error"]["code"] == "invalid_token"


def test_401_revoked_token(srv):
    api = Api(srv.api_port, new_token(srv, "ACME", "temp"))
    api.call("GET", "/api/v1/dossiers", expect=200)
    srv.cli("token", "revoke", "--account", "ACME", "--name", "temp")
    st, h, _ = api.call("GET", "/api/v1/dossiers")
    assert st == 401 and "invalid_token" in h["www-authenticate"]
    rows = srv.cli_json("token", "list", "--account", "ACME")
    row = [r for r in rows if r["name"] == "temp"][0]
    assert row["revoked"] is not None
    assert "token" not in row and "hash" not in row


def test_token_stored_hashed_and_last_used(srv):
    tok = new_token(srv, "ACME", "lastuse")
    rows = srv.cli_json("token", "list", "--account", "ACME")
    row = [r for r in rows if r["name"] == "lastuse"][0]
    assert row["last_used"] is None and row["prefix"] == tok[:16]
    with srv.db() as c:
        dump = "\n".join(str(r) for r in c.execute(
            "SELECT * FROM api_tokens"))
    assert tok not in dump and tok[17:] not in dump
    Api(srv.api_port, tok).call("GET", "/api/v1/dossiers", expect=200)
    rows = srv.cli_json("token", "list", "--account", "ACME")
    row = [r for r in rows if r["name"] == "lastuse"][0]
    assert row["last_used"] is not None
    assert abs(row["last_used"] - time.time()) < 120


def test_token_name_unique_per_account(srv):
    new_token(srv, "ACME", "dup")
    p = srv.cli("token", "create", "--account", "ACME", "--name", "dup",
                check=False)
    assert p.returncode == 1 and "exists" in p.stderr


# ------------------------------------------------------ error contract

def test_404_unknown_route_and_405(acme):
    st, h, body = acme.raw("GET", "/api/v1/nothing")
    assert st == 404 and body and json.loads(body)["error"]["code"] == \
        "not_found"
    assert h["content-type"] == "application/json; charset=utf-8"
    st, h, body = acme.call("DELETE", "/api/v1/dossiers")
    assert st == 405
    assert set(h["allow"].split(", ")) == {"GET", "POST"}
    assert body["error"]["code"] == "method_not_allowed"


def test_head_is_get_without_body(acme):
    st, h, body = acme.raw("HEAD", "/api/v1/dossiers")
    assert st == 200 and body == b""
    assert h["content-type"] == "application/json; charset=utf-8"
    st, _, _ = acme.raw("HEAD", "/api/v1/consents")
    assert st == 405


def test_concurrent_same_ref_one_wins(acme):
    import concurrent.futures as cf
    ref = "RACE-%d" % next(_n)

    def one(_):
        return acme.call("POST", "/api/v1/dossiers",
                         {"contact": "race@client.example", "ref": ref})[0]

    with cf.ThreadPoolExecutor(6) as ex:
        codes = sorted(ex.map(one, range(6)))
    assert codes == [201] + [409] * 5, codes


def test_400_malformed_json(acme):
    st, _, body = acme.call("POST", "/api/v1/dossiers", b'{"contact": ',
                            headers={"Content-Type": "application/json"})
    assert st == 400 and body["error"]["code"] == "invalid_json"
    st, _, body = acme.call("POST", "/api/v1/dossiers", b'[1, 2]')
    assert st == 400 and body["error"]["code"] == "invalid_json"


def test_422_missing_and_invalid_fields(acme):
    st, _, body = acme.call("POST", "/api/v1/dossiers", {"ref": "X-1"})
    assert st == 422
    assert body["error"]["code"] == "invalid_field"
    assert body["error"]["field"] == "contact"
    st, _, body = acme.call("POST", "/api/v1/dossiers",
                            {"contact": "a@b.example", "ref": "X-2",
                             "due": "tomorrow"})
    assert st == 422 and body["error"]["field"] == "due"
    st, _, body = acme.call("GET", "/api/v1/dossiers?limit=%d"
                            % (PAGE_MAX + 1))
    assert st == 422 and body["error"]["field"] == "limit"


def test_413_body_too_large(acme):
    big = {"contact": "a@b.example", "ref": "R" * 10,
           "pad": "x" * (BODY_MAX + 10)}
    st, _, body = acme.call("POST", "/api/v1/dossiers", big)
    assert st == 413 and body["error"]["code"] == "too_large"
    # the connection limit applies to the body, not to the server
    acme.call("GET", "/api/v1/dossiers", expect=200)


def test_409_duplicate_ref(acme):
    d = make_dossier(acme)
    st, _, body = acme.call("POST", "/api/v1/dossiers",
                            {"contact": "x@y.example", "ref": d["ref"]})
    assert st == 409 and body["error"]["code"] == "conflict"


# ------------------------------------------------------ dossiers

def test_dossier_create_get_close(srv, acme):
    d = make_dossier(acme, requested=["ID card", "Proof of address"],
                     due="2030-01-31")
    assert d["status"] == "open" and d["closed"] is None
    assert d["requested"] == ["ID card", "Proof of address"]
    assert d["due"] == "2030-01-31"
    assert H.ADDRESS_RE.match(d["address"])
    g = acme.call("GET", "/api/v1/dossiers/%d" % d["id"], expect=200)[2]
    assert g == d
    byref = acme.call("GET", "/api/v1/dossiers?ref=" + urllib.parse.quote(
        d["ref"]), expect=200)[2]
    assert byref == {"data": [d], "next_after": None}
    # the CLI sees the same dossier
    shown = srv.cli_json("dossier", "show", d["id"])
    assert shown["ref"] == d["ref"] and shown["address"] == d["address"]
    c = acme.call("POST", "/api/v1/dossiers/%d/close" % d["id"],
                  expect=200)[2]
    assert c["status"] == "closed" and c["closed"] is not None
    assert srv.cli_json("dossier", "show", d["id"])["status"] == "closed"


def test_pagination_walks_every_row_once(acme, other):
    mine = {make_dossier(acme, contact="page@client.example")["id"]
            for _ in range(PAGE_MAX * 2 + 3)}
    make_dossier(other, contact="page@client.example")
    seen, after, pages = [], None, 0
    while True:
        q = "/api/v1/dossiers?contact=page@client.example&limit=%d" % \
            PAGE_MAX
        if after is not None:
            q += "&after=%d" % after
        page = acme.call("GET", q, expect=200)[2]
        pages += 1
        assert len(page["data"]) <= PAGE_MAX
        seen += [d["id"] for d in page["data"]]
        after = page["next_after"]
        if after is None:
            break
        assert pages < 20
    assert sorted(seen) == sorted(mine) and len(seen) == len(set(seen))
    assert pages == 3


def test_concurrent_requests(acme):
    """The pool's threads each use their own store connection: requests
    in parallel all succeed and each dossier is created once."""
    import concurrent.futures as cf
    refs = ["PAR-%d-%d" % (next(_n), i) for i in range(24)]

    def one(ref):
        st, _, body = acme.call("POST", "/api/v1/dossiers",
                                {"contact": "par@client.example",
                                 "ref": ref})
        got = acme.call("GET", "/api/v1/dossiers?ref=" + ref)[2]
        return st, body["id"], [d["id"] for d in got["data"]]

    with cf.ThreadPoolExecutor(8) as ex:
        res = list(ex.map(one, refs))
    assert all(st == 201 for st, _, _ in res), res
    assert all(found == [i] for _, i, found in res), res
    assert len({i for _, i, _ in res}) == len(refs)


def test_list_status_filter(acme):
    d = make_dossier(acme, contact="status@client.example")
    acme.call("POST", "/api/v1/dossiers/%d/close" % d["id"], expect=200)
    q = "/api/v1/dossiers?contact=status@client.example&status=%s"
    closed = acme.call("GET", q % "closed", expect=200)[2]["data"]
    opened = acme.call("GET", q % "open", expect=200)[2]["data"]
    assert [x["id"] for x in closed] == [d["id"]] and opened == []
    st, _, body = acme.call("GET", q % "weird")
    assert st == 422 and body["error"]["field"] == "status"


def test_cross_account_dossier_is_404(acme, other):
    d = make_dossier(acme)
    for m, p in [("GET", "/api/v1/dossiers/%d"),
                 ("POST", "/api/v1/dossiers/%d/close"),
                 ("GET", "/api/v1/dossiers/%d/documents"),
                 ("POST", "/api/v1/dossiers/%d/invitations")]:
        st, _, body = other.call(m, p % d["id"], {} if m == "POST" else None)
        assert st == 404, (m, p)
        assert body["error"]["code"] == "not_found"
    assert acme.call("GET", "/api/v1/dossiers/%d" % d["id"])[2]["status"] \
        == "open"
    ids = [x["id"] for x in other.call("GET", "/api/v1/dossiers?limit=7",
                                       expect=200)[2]["data"]]
    assert d["id"] not in ids


# ------------------------------------------------------ documents

PDF = (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n"
       b"<< /Root 1 0 R >>\n%%EOF\n" + bytes(range(256)) * 4)
FNAME = "Relev\u00e9 d'identit\u00e9 (bancaire) 100%.pdf"


def mail_document(srv, address):
    msg = EmailMessage()
    msg["From"] = "claire@client.example"
    msg["To"] = address
    msg["Subject"] = "my documents"
    msg.set_content("here they are")
    msg.add_attachment(PDF, maintype="application", subtype="pdf",
                       filename=FNAME)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30)) as s:
        s.sendmail("claire@client.example", [address],
                   msg.as_bytes(policy=email.policy.SMTP))


def test_document_download_equals_what_was_mailed(srv, acme, other):
    d = make_dossier(acme)
    mail_document(srv, d["address"])
    docs = wait_for(lambda: acme.call(
        "GET", "/api/v1/dossiers/%d/documents" % d["id"],
        expect=200)[2]["data"], "the document")
    assert len(docs) == 1
    doc = docs[0]
    assert doc["content_type"] == "application/pdf"
    assert doc["size"] == len(PDF) and doc["filename"] == FNAME
    meta = acme.call("GET", "/api/v1/documents/%d" % doc["id"],
                     expect=200)[2]
    assert meta == doc
    st, h, body = acme.raw("GET", "/api/v1/documents/%d/content" % doc["id"])
    assert st == 200 and body == PDF
    assert h["content-type"] == "application/pdf"
    assert h["x-content-type-options"] == "nosniff"
    cd = h["content-disposition"]
    assert cd.startswith('attachment; filename="')
    fallback = re.search(r'filename="([^"]*)"', cd).group(1)
    assert all(0x20 <= ord(ch) < 0x7f for ch in fallback)
    star = re.search(r"filename\*=UTF-8''(\S+)", cd).group(1)
    assert urllib.parse.unquote(star, encoding="utf-8") == FNAME
    for p in ("/api/v1/documents/%d", "/api/v1/documents/%d/content"):
        st, _, body = other.call("GET", p % doc["id"])
        assert st == 404 and body["error"]["code"] == "not_found"


# ------------------------------------------------------ invitations

def test_invitation_queued_and_delivered(srv, acme):
    d = make_dossier(acme, contact="invitee@client.example")
    before = set(outbox(srv))
    st, _, body = acme.call("POST", "/api/v1/dossiers/%d/invitations"
                            % d["id"], {"template": "invitation",
                                        "locale": "fr",
                                        "requested": ["Passeport"],
                                        "due": "2030-02-01"})
    assert st == 202 and body["outbound_id"] > 0
    new = wait_for(lambda: [p for p in outbox(srv, "invitee@client.example")
                            if p not in before],
                   "the invitation in the outbox")
    msg = email.message_from_bytes(new[0].read_bytes(),
                                   policy=email.policy.default)
    assert msg["To"] == "invitee@client.example"
    assert msg["Reply-To"] == d["address"]
    # what the invitation says of each item: test_api_loop.py
    q = srv.cli_json("queue", "list", "--account", "ACME")
    row = [r for r in q if r["id"] == body["outbound_id"]][0]
    assert row["kind"] == "invitation" and row["dossier_id"] == d["id"]
    wait_for(lambda: [r for r in srv.cli_json("queue", "list", "--account",
                                              "ACME")
                      if r["id"] == body["outbound_id"]
                      and r["state"] == "sent"], "state sent")
    g = acme.call("GET", "/api/v1/dossiers/%d" % d["id"], expect=200)[2]
    # "requested" became a required item (the older field lists the
    # required items' labels); the locale is remembered on the contact
    assert g["requested"] == ["Passeport"] and g["due"] == "2030-02-01"
    assert [(i["slug"], i["required"], i["state"]) for i in g["items"]] \
        == [("passeport", True, "requested")]
    assert g["locale"] == "fr"


def test_invitation_refusals(acme):
    d = make_dossier(acme)
    p = "/api/v1/dossiers/%d/invitations" % d["id"]
    st, _, body = acme.call("POST", p, {"template": "../../etc/passwd"})
    assert st == 422 and body["error"]["field"] == "template"
    st, _, body = acme.call("POST", p, {"requested": "not a list"})
    assert st == 422 and body["error"]["field"] == "requested"
    acme.call("POST", "/api/v1/dossiers/%d/close" % d["id"], expect=200)
    st, _, body = acme.call("POST", p, {})
    assert st == 409 and body["error"]["code"] == "dossier_closed"


# ------------------------------------------------------ consent

def test_consent_grant_status_withdraw(srv, acme, other):
    addr = "Sub.Scriber@Client.example"
    low = addr.lower()
    st, _, body = acme.call("GET", "/api/v1/contacts/%s/consent" % low)
    assert st == 404
    g = acme.call("POST", "/api/v1/consents", {
        "email": addr, "purpose": "newsletter", "ip": "192.0.2.7",
        "user_agent": "Mozilla/5.0 test", "method": "signup-form",
        "text": "I agree to the ACME newsletter."}, expect=200)[2]
    assert g == {"email": low, "purpose": "newsletter",
                 "status": "granted", "changed": True}
    again = acme.call("POST", "/api/v1/consents", {
        "email": addr, "purpose": "newsletter"}, expect=200)[2]
    assert again["changed"] is False
    s = acme.call("GET", "/api/v1/contacts/%s/consent" % low,
                  expect=200)[2]
    assert s["status"] == {"newsletter": "granted"}
    rec = s["records"][0]
    assert rec["source"] == "api" and rec["ip"] == "192.0.2.7"
    assert rec["user_agent"] == "Mozilla/5.0 test"
    assert rec["operator"] == "api:crm" and rec["method"] == "signup-form"
    assert rec["text"]["body"] == "I agree to the ACME newsletter."
    # the CLI's ledger shows the same record
    led = srv.cli_json("consent", "show", low, "--account", "ACME")
    assert led["records"][0]["operator"] == "api:crm"
    w = acme.call("POST", "/api/v1/consents/withdraw", {
        "email": low, "purpose": "newsletter"}, expect=200)[2]
    assert w["status"] == "withdrawn" and w["changed"] is True
    s = acme.call("GET", "/api/v1/contacts/%s/consent" % low,
                  expect=200)[2]
    assert s["status"] == {"newsletter": "withdrawn"}
    assert len(s["records"]) == 2
    # audited as the token
    audit = srv.cli_json("audit", "list")
    rows = audit if isinstance(audit, list) else \
        [v for v in audit.values() if isinstance(v, list)][0]
    assert any(r.get("actor") == "api:crm" and r.get("action") ==
               "consent.change" for r in rows)
    st, _, _ = other.call("GET", "/api/v1/contacts/%s/consent" % low)
    assert st == 404


def test_purposes_with_their_labels(srv, acme, other):
    srv.cli("purpose", "label", "ACME", "newsletter", "fr",
            "Lettre d'information")
    d = acme.call("GET", "/api/v1/purposes", expect=200)[2]["data"]
    assert {"name": "newsletter",
            "labels": {"fr": "Lettre d'information"}} in d
    # another account's purpose of the same name keeps its own labels
    o = other.call("GET", "/api/v1/purposes", expect=200)[2]["data"]
    assert {"name": "newsletter", "labels": {}} in o


def test_consent_refusals(acme):
    st, _, body = acme.call("POST", "/api/v1/consents",
                            {"email": "a@b.example", "purpose": "nope"})
    assert st == 422 and body["error"]["field"] == "purpose"
    st, _, body = acme.call("POST", "/api/v1/consents",
                            {"email": "a@b.example", "purpose": "newsletter",
                             "basis": "because"})
    assert st == 422 and body["error"]["field"] == "basis"
    st, _, body = acme.call("POST", "/api/v1/consents",
                            {"purpose": "newsletter"})
    assert st == 422 and body["error"]["field"] == "email"


# ------------------------------------------------------ campaigns

def test_campaign_create_send_progress(srv, acme, other):
    people = ["n%d@client.example" % i for i in range(3)]
    for p in people:
        acme.call("POST", "/api/v1/consents",
                  {"email": p, "purpose": "newsletter"}, expect=200)
        acme.call("POST", "/api/v1/contacts/%s/attest" % p,
                  {"adult": "yes"}, expect=200)
    # granted but not attested adult: not in the audience
    acme.call("POST", "/api/v1/consents",
              {"email": "kid@client.example", "purpose": "newsletter"},
              expect=200)
    c = acme.call("POST", "/api/v1/campaigns",
                  {"purpose": "newsletter", "subject": "March news"},
                  expect=201)[2]
    assert c["state"] == "draft" and c["template"] == "newsletter"
    assert c["subject"] == "March news" and c["purpose"] == "newsletter"
    st, _, body = other.call("GET", "/api/v1/campaigns/%d" % c["id"])
    assert st == 404
    st, _, body = other.call("POST", "/api/v1/campaigns/%d/send" % c["id"],
                             {})
    assert st == 404
    assert c["audience"] is None and c["outcomes"]["recipients"] == 0
    before = set(outbox(srv))
    # a dry run (query or body) says who and why, and changes nothing
    d = acme.call("POST", "/api/v1/campaigns/%d/send?dry_run=1" % c["id"],
                  {}, expect=200)[2]
    assert d["dry_run"] and not d["fixed"]
    assert sorted(d["recipients"]) == sorted(people)
    assert d["audience"]["eligible"] == 3
    # kid@ and the module's other contacts: each counted once, with why
    assert d["audience"]["left_out"]["age_unknown"] >= 1
    assert d["audience"]["contacts"] == 3 + sum(
        d["audience"]["left_out"].values())
    assert acme.call("POST", "/api/v1/campaigns/%d/send" % c["id"],
                     {"dry_run": True}, expect=200)[2] == d
    st, _, body = acme.call("POST", "/api/v1/campaigns/%d/send?dry_run=2"
                            % c["id"], {})
    assert st == 422 and body["error"]["field"] == "dry_run"
    st, _, body = acme.call("POST", "/api/v1/campaigns/%d/send" % c["id"],
                            {"dry_run": "yes"})
    assert st == 422 and body["error"]["field"] == "dry_run"
    g = acme.call("GET", "/api/v1/campaigns/%d" % c["id"], expect=200)[2]
    assert g["state"] == "draft" and g["audience"] is None
    assert set(outbox(srv)) == before
    s = acme.call("POST", "/api/v1/campaigns/%d/send" % c["id"], {},
                  expect=202)[2]
    assert s["total"] == 3 and s["queued"] == 3
    assert s["audience"] == d["audience"]
    new = wait_for(lambda: (lambda n: n if len(n) >= 3 else None)(
        [p for p in outbox(srv) if p not in before]), "3 newsletters")
    rcpts = sorted(p.name.split("-", 1)[1][:-4] for p in new)
    assert rcpts == sorted(people)
    g = wait_for(lambda: (lambda j: j if j["messages"].get("sent") == 3
                          else None)(acme.call(
                              "GET", "/api/v1/campaigns/%d" % c["id"],
                              expect=200)[2]), "progress: 3 sent")
    assert g["recipients"].get("queued") == 3
    # the true state: every message settled by the queue
    assert g["state"] == "sent", g
    assert g["outcomes"]["delivered"] == 3 and g["outcomes"]["waiting"] == 0
    assert g["audience"] == d["audience"]


# ------------------------------------------------------ subjects

def test_subject_export_and_erase(srv, acme, other):
    addr = "gone@client.example"
    d = make_dossier(acme, contact=addr)
    acme.call("POST", "/api/v1/consents",
              {"email": addr, "purpose": "newsletter"}, expect=200)
    st, _, _ = other.call("POST", "/api/v1/subjects/export",
                          {"email": addr})
    assert st == 404
    st, h, body = acme.raw("POST", "/api/v1/subjects/export",
                           {"email": addr})
    assert st == 200 and h["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(body)) as t:
        exp = json.load(t.extractfile("export.json"))
    assert exp["subject"] == addr and exp["account"] == "ACME"
    assert any(x["id"] == d["id"] for x in exp["data"]["dossiers"])
    rep = acme.call("POST", "/api/v1/subjects/erase", {"email": addr},
                    expect=200)[2]
    assert "subject_hash" in rep
    st, _, _ = acme.call("GET", "/api/v1/dossiers/%d" % d["id"])
    assert st == 404
    st, _, _ = acme.call("POST", "/api/v1/subjects/erase", {"email": addr})
    assert st == 404
    st, _, body = acme.call("POST", "/api/v1/subjects/export", {})
    assert st == 422 and body["error"]["field"] == "email"


# ------------------------------------------------------ metrics

def test_metrics_without_token(srv):
    st, h, body = Api(srv.api_port).raw("GET", "/metrics")
    assert st == 200
    assert h["content-type"].startswith("text/plain; version=0.0.4")


# ------------------------------------------------------ newcomer

def curl(*args):
    p = subprocess.run(["curl", "-sS", "--max-time", str(T(30)), "-w",
                        "\n%{http_code}"] + list(args), capture_output=True,
                       text=True, timeout=T(60))
    assert p.returncode == 0, p.stderr
    body, _, code = p.stdout.rpartition("\n")
    return int(code), body


def test_newcomer_flow_with_curl(srv):
    """docs/api.md's walk: token, dossier, invitation, delivered."""
    tok = srv.cli("token", "create", "--account", "ACME", "--name",
                  "newcomer").stdout.strip()
    base = "http://127.0.0.1:%d/api/v1" % srv.api_port
    auth = ["-H", "Authorization: Bearer " + tok]
    code, body = curl(*auth, "-H", "Content-Type: application/json",
                      "-d", json.dumps({"contact": "new@client.example",
                                        "ref": "NEWCOMER-1",
                                        "requested": ["ID card"]}),
                      base + "/dossiers")
    assert code == 201, body
    validate("POST", "/api/v1/dossiers", code,
             "application/json; charset=utf-8", body)
    d = json.loads(body)
    before = set(outbox(srv))
    code, body = curl(*auth, "-H", "Content-Type: application/json",
                      "-d", '{"locale": "en"}',
                      base + "/dossiers/%d/invitations" % d["id"])
    assert code == 202, body
    new = wait_for(lambda: [p for p in outbox(srv, "new@client.example")
                            if p not in before],
                   "the newcomer's invitation")
    msg = email.message_from_bytes(new[0].read_bytes(),
                                   policy=email.policy.default)
    assert msg["To"] == "new@client.example"
    code, body = curl(*auth, base + "/dossiers/%d" % d["id"])
    assert code == 200, body
    assert [i["label"] for i in json.loads(body)["items"]] == ["ID card"]


def test_every_status_validated_was_described():
    """The schema checks above really ran (and covered the routes)."""
    tpls = {t for _, t, _ in CHECKED}
    assert len(tpls) >= 15, tpls
    assert {s for _, _, s in CHECKED} >= {200, 201, 202, 400, 401, 404,
                                          405, 409, 413, 422}

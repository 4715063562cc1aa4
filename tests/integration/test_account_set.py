"""
The account's identity set at run time (issue 15): `account set` and
PATCH /api/v1/account write what the config file's account block says
(sender name and address, legal name and address, language, privacy
URL, adult_required, notify_completed), `account show` and GET
/api/v1/account say where each value comes from, bad values are refused
naming the key with nothing written, and a running `postdoc serve` uses
a new identity for its next message without a restart: the invitations
it builds (POST /api/v1/dossiers/{id}/invitations) reach a real
smtp-sink with the new From: and footer.
"""
import email
import email.policy
import os
import shutil
import tempfile

import pytest

import postdoc_harness as H
import smtp_peers
from postdoc_harness import T
from test_api import Api, new_token

FROM = "onboarding@acme.example"
KEYS = ["legal_name", "legal_address", "from_name", "from_addr", "locale",
        "privacy_url", "adult_required", "notify_completed"]


@pytest.fixture(scope="module")
def sink():
    # smtp-sink dumps as nobody: pytest's 0700 tmp root is out of reach
    d = tempfile.mkdtemp(prefix="postdoc-sink-", dir="/tmp")
    os.chmod(d, 0o711)
    peer = smtp_peers.start_sink(d)
    yield peer
    peer.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def srv(servers, sink):
    s = servers(start=False)
    s.api_port = H.free_port()
    s.sections["api"] = {"listen": "127.0.0.1:%d" % s.api_port}
    s.sections["outbound"] = {
        "transport": "smtp", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0}
    s.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS", "locale": "en",
         "from_name": "ACME Onboarding", "from_addr": FROM}])
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "smtp", "settings": {"host": "127.0.0.1",
                                      "port": sink.port,
                                      "starttls": "none"}}])
    s.write_config()
    s.start()
    H.wait_for(lambda: H._port_open(s.api_port), T(10), "the API listens")
    s.add_account("ACME", "any")
    s.add_account("OTHER", "any")
    return s


@pytest.fixture(scope="module")
def acme(srv):
    return Api(srv.api_port, new_token(srv, "ACME", "crm"))


@pytest.fixture(scope="module")
def other(srv):
    return Api(srv.api_port, new_token(srv, "OTHER", "crm"))


def show(srv, account="ACME"):
    return srv.cli_json("account", "show", account)


def settings(srv):
    return srv.query("SELECT a.name, s.key, s.value FROM account_settings s"
                     " JOIN accounts a ON a.id = s.account_id"
                     " ORDER BY a.name, s.key")


_n = iter(range(1, 100000))


def invitation_via_daemon(srv, api, contact):
    """An invitation the running server builds (the API is serve's) and
    delivers to smtp-sink; the message as the sink received it."""
    ref = "ID-%d" % next(_n)
    d = api.call("POST", "/api/v1/dossiers",
                  {"contact": contact, "ref": ref}, expect=201)[2]
    api.call("POST", "/api/v1/dossiers/%d/invitations" % d["id"],
             {"requested": ["ID card"]}, expect=202)

    def arrived():
        for raw in smtp_peers.read_sink_mail(srv_sink[0].dir):
            if raw is None:
                continue
            m = email.message_from_bytes(raw, policy=email.policy.default)
            if ref in str(m["Subject"]) and \
                    m["To"].addresses[0].addr_spec == contact:
                return m
        return None
    return H.wait_for(arrived, T(30), "the invitation of %s at the sink" % ref)


srv_sink = []


@pytest.fixture(autouse=True, scope="module")
def _remember_sink(sink):
    srv_sink.append(sink)


def text_of(m):
    return m.get_body(("plain",)).get_content()


def test_show_names_where_each_value_comes_from(srv):
    j = show(srv)
    assert j["account"] == "ACME"
    assert j["from_name"] == "ACME Onboarding" and j["from_addr"] == FROM
    assert j["legal_address"] is None and j["adult_required"] is True
    assert j["source"] == {
        "legal_name": "config", "legal_address": "default",
        "from_name": "config", "from_addr": "config", "locale": "config",
        "privacy_url": "default", "adult_required": "default",
        "notify_completed": "default"}
    # OTHER has no block: its name, outbound.from_addr, the defaults
    o = show(srv, "OTHER")
    assert o["legal_name"] == "OTHER"
    assert set(o["source"].values()) == {"default"}
    text = srv.cli("account", "show", "ACME").stdout
    assert "from_name         config   ACME Onboarding" in text


def test_cli_set_then_the_running_daemon_writes_as_the_new_identity(
        srv, acme):
    pid = srv.pid
    before = invitation_via_daemon(srv, acme, "ana@client.example")
    assert before["From"].addresses[0].display_name == "ACME Onboarding"
    assert "Kind regards" in text_of(before)

    j = srv.cli_json("account", "set", "ACME", "--from-name",
                     "Claire Dubois", "--legal-name", "ACME Conseil SARL",
                     "--legal-address", "1 rue de la Paix, 75002 Paris",
                     "--locale", "fr")
    assert j["from_name"] == "Claire Dubois" and j["locale"] == "fr"
    assert j["source"]["from_name"] == "set"
    assert j["source"]["legal_name"] == "set"
    assert j["source"]["from_addr"] == "config"

    after = invitation_via_daemon(srv, acme, "bea@client.example")
    assert after["From"].addresses[0].display_name == "Claire Dubois"
    assert after["From"].addresses[0].addr_spec == FROM
    body = text_of(after)
    assert "Bien cordialement" in body          # the account's language
    assert "ACME Conseil SARL" in body and "75002 Paris" in body
    assert "ACME SAS" not in body
    assert srv.pid == pid                       # no restart
    srv.assert_alive()


def test_api_patch_then_get_and_the_daemon_follows(srv, acme):
    st, _, j = acme.call("PATCH", "/api/v1/account",
                         {"from_name": "Service Clients", "locale": "en",
                          "privacy_url": "https://acme.example/privacy",
                          "adult_required": False}, expect=200)
    assert j["from_name"] == "Service Clients" and j["locale"] == "en"
    assert j["privacy_url"] == "https://acme.example/privacy"
    assert j["adult_required"] is False
    assert j["source"]["adult_required"] == "set"
    assert acme.call("GET", "/api/v1/account", expect=200)[2] == j
    m = invitation_via_daemon(srv, acme, "chloe@client.example")
    assert m["From"].addresses[0].display_name == "Service Clients"
    assert "Kind regards" in text_of(m)
    # null removes: back to the config file's value
    j = acme.call("PATCH", "/api/v1/account", {"from_name": None,
                                               "adult_required": None},
                  expect=200)[2]
    assert j["from_name"] == "ACME Onboarding"
    assert j["source"]["from_name"] == "config"
    assert j["adult_required"] is True
    m = invitation_via_daemon(srv, acme, "dan@client.example")
    assert m["From"].addresses[0].display_name == "ACME Onboarding"


def test_cli_empty_value_removes_and_each_change_is_audited(srv):
    srv.cli("account", "set", "ACME", "--notify-completed", "yes")
    assert show(srv)["notify_completed"] is True
    j = srv.cli_json("account", "set", "ACME", "--notify-completed", "",
                     "--privacy-url", "")
    assert j["notify_completed"] is False and j["privacy_url"] is None
    assert j["source"]["notify_completed"] == "default"
    rows = [r for r in srv.cli_json("audit", "list")
            if r.get("action") == "account.set"]
    details = [r.get("detail") for r in rows]
    assert {"key": "notify_completed", "value": "true"} in details
    assert {"key": "notify_completed", "value": None} in details
    assert {"key": "privacy_url", "value": None} in details
    assert {r.get("account") for r in rows} == {"ACME"}


@pytest.mark.parametrize("opt,value,says", [
    ("--from-addr", "not an address", "from_addr:"),
    ("--from-addr", "a@b@c.example", "from_addr:"),
    ("--locale", "de", "locale:"),
    ("--locale", "../fr", "locale:"),
    ("--privacy-url", "ftp://acme.example/p", "privacy_url:"),
    ("--privacy-url", "https://", "privacy_url:"),
    ("--privacy-url", "https://acme.example/a b", "privacy_url:"),
    ("--legal-name", "ACME\nBcc: x@y.example", "legal_name:"),
    ("--from-name", "x" * 201, "from_name:"),
    ("--legal-address", "\udce9t\udce9", "legal_address:"),  # not UTF-8
    ("--adult-required", "maybe", "adult_required:"),
    ("--notify-completed", "2", "notify_completed:"),
])
def test_cli_bad_values_name_the_key_and_write_nothing(srv, opt, value,
                                                       says):
    before = settings(srv), show(srv)
    # a good value beside the bad one is not written either
    p = srv.cli("account", "set", "ACME", "--legal-address", "2 rue X",
                opt, value, check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert says in p.stderr
    assert (settings(srv), show(srv)) == before


def test_cli_usage_and_unknown_account(srv):
    p = srv.cli("account", "set", "ACME", check=False)
    assert p.returncode == 2 and "at least one setting" in p.stderr
    p = srv.cli("account", "set", "NOPE", "--locale", "fr", check=False)
    assert p.returncode == 1 and 'account "NOPE" not found' in p.stderr
    p = srv.cli("account", "show", "NOPE", check=False)
    assert p.returncode == 1 and 'account "NOPE" not found' in p.stderr


@pytest.mark.parametrize("body,field", [
    ({"from_addr": "nope"}, "from_addr"),
    ({"locale": "xx"}, "locale"),
    ({"privacy_url": "javascript:alert(1)"}, "privacy_url"),
    ({"legal_name": "a\r\nb"}, "legal_name"),
    ({"adult_required": "perhaps"}, "adult_required"),
    ({"adult_required": 1}, "adult_required"),
    ({"from_name": 42}, "from_name"),
    ({"signer": "me"}, "signer"),
    ({"legal_address": "ok", "locale": "zz"}, "locale"),
    ({}, "body"),
])
def test_api_bad_values_are_422_naming_the_field(srv, acme, body, field):
    before = settings(srv)
    st, _, j = acme.call("PATCH", "/api/v1/account", body, expect=422)
    assert j["error"]["code"] == "invalid_field"
    assert j["error"]["field"] == field
    assert settings(srv) == before


def test_api_not_json_is_400(srv, acme):
    st, _, j = acme.call("PATCH", "/api/v1/account", b"[1]", expect=400)
    assert j["error"]["code"] == "invalid_json"


def test_a_token_changes_its_own_account_only(srv, acme, other):
    before = show(srv, "ACME")
    j = other.call("PATCH", "/api/v1/account",
                   {"from_name": "Other Ltd"}, expect=200)[2]
    assert j["account"] == "OTHER" and j["from_name"] == "Other Ltd"
    assert show(srv, "ACME") == before
    assert acme.call("GET", "/api/v1/account",
                     expect=200)[2]["from_name"] == before["from_name"]

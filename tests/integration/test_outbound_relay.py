"""
`postdoc invite` through the libESMTP `smtp` transport to a real relay
(aiosmtpd with STARTTLS required and AUTH): the message arrives byte for
byte as it was queued (DKIM signature included), over TLS, authenticated;
a 5xx from the relay bounces the message and suppresses the address; a
relay that is down leaves the message deferred, not lost.
"""
import hashlib
import time

import pytest

import postdoc_harness as H
import smtp_peers
from postdoc_harness import T

REJECTED = "nobody@client.example"


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    d = tmp_path_factory.mktemp("relay")
    peer = smtp_peers.start_tls(str(d), reject=[REJECTED])
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def srv(servers, relay):
    s = servers(start=False)
    s.sections["outbound"] = {
        "transport": "smtp", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 60, "rate": 0}
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "smtp", "settings": {
            "host": "127.0.0.1", "port": relay.port, "starttls": "required",
            "ca_file": str(relay.dir) + "/cert.pem", "helo": "postdoc.test",
            "user": "postdoc", "password": "s3cret", "timeout": 20}},
        {"name": "dkim", "settings": {"key_dir": str(s.var / "dkim"),
                                      "selector": "relay"}},
    ])
    s.write_config()
    s.start()
    s.add_account("RELAY", "any")
    return s


def settled(srv, o):
    """serve's runner may have claimed the row before the CLI did."""
    deadline = time.monotonic() + T(20)
    while o["state"] in ("queued", "sending") and time.monotonic() < deadline:
        time.sleep(0.05)
        o = {r["id"]: r for r in srv.cli_json("queue", "list")}[o["id"]]
    return o


def blob(srv, sha):
    return (srv.var / "blobs" / sha[:2] / sha).read_bytes()


def test_invitation_reaches_the_relay_byte_for_byte(srv, relay):
    addr = srv.create_dossier("RELAY", contact="claire@client.example")
    before = len(smtp_peers.read_tls_mail(relay.dir))
    o = settled(srv, srv.cli_json("invite", srv.dossier_id(addr)))
    assert o["state"] == "sent", o
    assert o["last_code"] == 250
    got = smtp_peers.read_tls_mail(relay.dir)[before:]
    assert len(got) == 1
    content, meta = got[0]
    queued = blob(srv, o["sha256"])
    assert hashlib.sha256(queued).hexdigest() == o["sha256"]
    assert content == queued
    assert content.startswith(b"DKIM-Signature:")
    assert meta["tls"] and meta["user"] == "postdoc"
    assert meta["mail_from"] == o["mail_from"]
    assert meta["rcpt_tos"] == ["claire@client.example"]


def test_relay_5xx_bounces_and_suppresses(srv, relay):
    addr = srv.create_dossier("RELAY", contact=REJECTED)
    did = srv.dossier_id(addr)
    o = settled(srv, srv.cli_json("invite", did))
    assert o["state"] == "bounced", o
    assert o["last_code"] == 550
    p = srv.cli("invite", did, check=False)
    assert p.returncode == 1 and "suppressed" in p.stderr


def test_relay_down_defers(srv, servers):
    down = servers(start=False)
    down.sections["outbound"] = {
        "transport": "smtp", "template_dir": str(H.SRCDIR / "templates"),
        "retry_base": 60}
    down.sections["plugins"] = H.LcList(list(down.sections["plugins"]) + [
        {"name": "smtp", "settings": {
            "host": "127.0.0.1", "port": H.free_port(),
            "starttls": "none", "timeout": 5}}])
    down.write_config()
    down.add_account("DOWN", "any")
    addr = down.create_dossier("DOWN", contact="claire@client.example")
    o = down.cli_json("invite", down.dossier_id(addr))
    assert o["state"] == "deferred", o
    assert o["last_code"] == 0 and o["last_text"]
    assert o["next_attempt"] > o["updated"]

"""
The webhook plugin and the event runner (evq) end to end, through the
real binary, real SMTP and a real local HTTP receiver: a document mailed
in is POSTed as signed JSON; a receiver that fails, then hangs past the
plugin's timeout, then accepts gets the same event again (and mail sent
meanwhile is acknowledged without waiting for it); events of one dossier
arrive in order even when the first fails; an event older than
events.max_age is given up and the next one goes on; events pending when
serve is killed are delivered after the restart.  Each message also sends
a message.received before its documents' events (same stream): the
failure plans below apply to document.received.
"""
import hashlib
import os
import subprocess
import smtplib
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H
import webhook_receiver as W
from postdoc_harness import T

SECRET = "whsec-test-0123456789abcdef"
SENDER = "client@sender.example"


def webhook_server(servers, receiver, **events):
    srv = servers(start=False)
    ev = {"interval_ms": 100, "retry_base": 1, "retry_cap": 2,
          "max_age": 3600}
    ev.update(events)
    srv.sections["events"] = ev
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) +
                                       [W.webhook_plugin(SECRET, receiver)])
    srv.write_config()
    srv.start()
    srv.add_account("ACME", "any")
    return srv


def mail_pdf(srv, rcpt, name, tag=None):
    """One message with one PDF attachment; returns (reply code, bytes)."""
    pdf = H.make_pdf(tag or name)
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = SENDER, rcpt, "documents"
    m.set_content("see attached")
    m.add_attachment(pdf, maintype="application", subtype="pdf",
                     filename=name)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30)) as s:
        s.ehlo("client.test")
        code = s.send_message(m) and 0 or 250
    return code, pdf


class Plan:
    """Answers per dossier ref to its document.received events: a list
    consumed in order, then 200 (other events: 200)."""

    def __init__(self):
        self.plans = {}

    def __call__(self, req):
        if (req["json"] or {}).get("type") != "document.received":
            return 200
        d = (req["json"] or {}).get("dossier") or {}
        p = self.plans.get(d.get("ref"))
        if callable(p):
            return p(req)
        return p.pop(0) if p else 200


@pytest.fixture(scope="module")
def recv():
    r = W.Receiver()
    r.plan = Plan()
    r.policy = r.plan
    yield r
    r.close()


@pytest.fixture(scope="module")
def srv(servers, recv):
    return webhook_server(servers, recv)


def dossier(srv, ref):
    return srv.create_dossier("ACME", contact=SENDER, ref=ref)


def for_ref(reqs, ref, type_="document.received"):
    return [r for r in reqs if r["json"] and r["json"]["dossier"]
            and r["json"]["dossier"]["ref"] == ref
            and (type_ is None or r["json"]["type"] == type_)]


def test_document_received_is_posted_signed(srv, recv):
    addr = dossier(srv, "WH-SIGNED")
    code, pdf = mail_pdf(srv, addr, "payslip.pdf")
    assert code == 250
    reqs = recv.wait_for(lambda rs: for_ref(rs, "WH-SIGNED"),
                         what="document.received for WH-SIGNED")
    req = for_ref(reqs, "WH-SIGNED")[0]
    h = req["headers"]
    assert h["Content-Type"] == "application/json"
    assert h["User-Agent"].startswith("postdoc/")
    assert h["Postdoc-Event"] == "document.received"
    ev = req["json"]
    assert h["Postdoc-Event-Id"] == str(ev["id"])
    assert W.verify(req, SECRET)
    assert not W.verify(req, SECRET + "x")	# the check can fail
    assert ev["type"] == "document.received"
    assert ev["account"] == "ACME"
    assert ev["dossier"] == {"id": srv.dossier_id(addr), "ref": "WH-SIGNED"}
    assert abs(ev["created"] - time.time()) < 600
    d = ev["data"]
    assert d["filename"] == "payslip.pdf"
    assert d["content_type"] == "application/pdf"
    assert d["size"] == len(pdf)
    assert d["sha256"] == hashlib.sha256(pdf).hexdigest()
    docs = srv.show(addr)["documents"]
    assert [x["id"] for x in docs] == [d["id"]]
    # the delivery is recorded done after one attempt
    rows = [r for r in W.delivery_rows(srv) if r[0] == ev["id"]]
    deadline = time.monotonic() + T(10)
    while rows != [(ev["id"], "done", 1, "document.received")] and \
            time.monotonic() < deadline:
        time.sleep(0.05)
        rows = [r for r in W.delivery_rows(srv) if r[0] == ev["id"]]
    assert rows == [(ev["id"], "done", 1, "document.received")]


def test_retried_after_500_and_timeout_without_blocking_intake(srv, recv):
    addr = dossier(srv, "WH-RETRY")
    other = dossier(srv, "WH-OTHER")
    recv.release.clear()
    recv.hanging.clear()
    recv.plan.plans["WH-RETRY"] = [500, "hang"]
    assert mail_pdf(srv, addr, "contract.pdf")[0] == 250
    assert recv.hanging.wait(T(20)), "the receiver never got the 2nd try"
    # The receiver is stuck (past the plugin's 1 s timeout): intake must
    # still acknowledge new mail while it is.
    code, _ = mail_pdf(srv, other, "meanwhile.pdf")
    assert code == 250
    assert not recv.release.is_set()
    # Hold the request until the plugin's timeout has been recorded as a
    # failed attempt, then let the receiver answer (too late).
    eid = for_ref(recv.snapshot(), "WH-RETRY")[0]["json"]["id"]
    deadline = time.monotonic() + T(20)
    while time.monotonic() < deadline:
        rows = [r for r in W.delivery_rows(srv) if r[0] == eid]
        if rows and rows[0][2] >= 2:
            break
        time.sleep(0.05)
    assert rows == [(eid, "pending", 2, "document.received")]
    recv.release.set()
    reqs = recv.wait_for(lambda rs: any(r["answer"] == 200 for r in
                                        for_ref(rs, "WH-RETRY")),
                         what="the accepted retry")
    mine = for_ref(reqs, "WH-RETRY")
    assert [r["answer"] for r in mine] == [500, "hang", 200]
    ids = {r["headers"]["Postdoc-Event-Id"] for r in mine}
    assert len(ids) == 1			# the same event each time
    assert len({r["body"] for r in mine}) == 1
    assert all(W.verify(r, SECRET) for r in mine)
    eid = int(ids.pop())
    deadline = time.monotonic() + T(10)
    while time.monotonic() < deadline:
        rows = [r for r in W.delivery_rows(srv) if r[0] == eid]
        if rows and rows[0][1] == "done":
            break
        time.sleep(0.05)
    assert rows == [(eid, "done", 3, "document.received")]
    # the other dossier's event was not held behind this one
    recv.wait_for(lambda rs: for_ref(rs, "WH-OTHER"), what="WH-OTHER")


def test_events_of_one_dossier_arrive_in_order(srv, recv):
    addr = dossier(srv, "WH-ORDER")
    recv.plan.plans["WH-ORDER"] = [500, 500]
    for i in range(3):
        assert mail_pdf(srv, addr, "part-%d.pdf" % i)[0] == 250
    reqs = recv.wait_for(lambda rs: len([r for r in for_ref(rs, "WH-ORDER")
                                         if r["answer"] == 200]) == 3,
                         what="3 accepted events for WH-ORDER")
    mine = for_ref(reqs, "WH-ORDER")
    ids = [r["json"]["id"] for r in for_ref(reqs, "WH-ORDER", None)]
    # never a later event while an earlier one is still failing (each
    # message.received first, then its document)
    assert ids == sorted(ids), ids
    assert [r["answer"] for r in mine] == [500, 500, 200, 200, 200]
    assert [r["json"]["data"]["filename"] for r in mine[2:]] == \
        ["part-0.pdf", "part-1.pdf", "part-2.pdf"]


def test_a_redirect_is_a_failure_not_followed(srv, recv):
    addr = dossier(srv, "WH-REDIR")
    recv.plan.plans["WH-REDIR"] = [302]
    assert mail_pdf(srv, addr, "moved.pdf")[0] == 250
    reqs = recv.wait_for(lambda rs: any(r["answer"] == 200 for r in
                                        for_ref(rs, "WH-REDIR")),
                         what="the retry after a 302")
    mine = for_ref(reqs, "WH-REDIR")
    assert [(r["answer"], r["path"]) for r in mine] == \
        [(302, "/hooks/postdoc"), (200, "/hooks/postdoc")]
    assert "HTTP 302" in srv.log_text()


def test_a_bad_endpoint_stops_serve(servers, tmp_path):
    srv = servers(start=False)
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) + [
        {"name": "webhook", "settings": {"endpoints": H.LcList([
            {"account": "ACME", "url": "ftp://crm.example/x",
             "secret": SECRET}])}}])
    srv.write_config()
    with pytest.raises(H.ServerError) as e:
        srv.start()
    assert "url must be http:// or https://" in str(e.value)
    srv.proc = None


def test_an_expired_event_gives_way_to_the_next(servers):
    recv = W.Receiver()
    try:
        recv.policy = lambda req: (500 if req["json"]["data"].get(
            "filename") == "stale.pdf" else 200)
        srv = webhook_server(servers, recv, max_age=2)
        addr = srv.create_dossier("ACME", contact=SENDER, ref="WH-EXP")
        assert mail_pdf(srv, addr, "stale.pdf")[0] == 250
        assert mail_pdf(srv, addr, "fresh.pdf")[0] == 250
        isdoc = lambda r: r["json"]["type"] == "document.received"
        reqs = recv.wait_for(lambda rs: any(r["answer"] == 200 and isdoc(r)
                                            for r in rs),
                             what="fresh.pdf after the expiry")
        stale = [r for r in reqs if r["answer"] == 500]
        fresh = [r for r in reqs if r["answer"] == 200 and isdoc(r)]
        assert len(stale) >= 2 and len(fresh) == 1
        assert fresh[0]["json"]["data"]["filename"] == "fresh.pdf"
        assert fresh[0]["at"] > stale[-1]["at"]
        # fresh's message.received waited behind the stale document
        later = [r for r in reqs if r["answer"] == 200 and not isdoc(r)
                 and r["json"]["id"] > stale[0]["json"]["id"]]
        assert later and later[0]["at"] > stale[-1]["at"]
        rows = [r for r in W.delivery_rows(srv)
                if r[3] == "document.received"]
        assert rows[0][1] == "expired"
        assert rows[0][0] == stale[0]["json"]["id"]
        assert "expired for webhook" in srv.log_text()
        # the operator sees it and, once the endpoint is fixed, retries it
        listed = srv.cli_json("events", "list", "--state", "expired")
        assert [(r["event_id"], r["type"], r["consumer"]) for r in listed] \
            == [(stale[0]["json"]["id"], "document.received", "webhook")]
        p = srv.cli("events", "retry", "999999", check=False)
        assert p.returncode == 1
        recv.policy = lambda req: 200
        srv.cli("events", "retry", listed[0]["id"])
        again = recv.wait_for(lambda rs: any(
            r["json"]["id"] == stale[0]["json"]["id"] and r["answer"] == 200
            for r in rs), what="the retry")
        assert len([r for r in again if r["answer"] == 200 and
                    r["json"]["id"] == stale[0]["json"]["id"]]) == 1
        assert srv.cli_json("events", "list", "--state", "expired") == []
    finally:
        recv.close()


def test_pending_events_survive_sigkill(own_servers):
    recv = W.Receiver()
    down = {"v": True}
    try:
        recv.policy = lambda req: 503 if down["v"] else 200
        srv = webhook_server(own_servers, recv, retry_cap=1)
        addr = srv.create_dossier("ACME", contact=SENDER, ref="WH-KILL")
        assert mail_pdf(srv, addr, "kept.pdf")[0] == 250
        # the stream's head (message.received) failing holds the rest
        first = recv.wait_for(lambda rs: len(rs) >= 1)[0]
        assert first["json"]["type"] == "message.received"
        srv.kill()
        rows = W.delivery_rows(srv)
        assert [r[1] for r in rows] == ["pending", "pending"]
        down["v"] = False
        srv.start()
        reqs = recv.wait_for(lambda rs: any(
            r["answer"] == 200 and r["json"]["type"] == "document.received"
            for r in rs), what="the events after the restart")
        ok = [r for r in reqs if r["answer"] == 200]
        assert [r["json"]["type"] for r in ok] == ["message.received",
                                                   "document.received"]
        assert ok[0]["json"]["id"] == first["json"]["id"]
        assert ok[1]["json"]["data"]["filename"] == "kept.pdf"
    finally:
        recv.close()


def doc_snippet(marker):
    """The code block after <!-- marker --> in docs/webhooks.md."""
    text = (H.SRCDIR / "docs" / "webhooks.md").read_text()
    rest = text.split("<!-- %s -->" % marker, 1)[1]
    return rest.split("```", 2)[1].split("\n", 1)[1]


def test_the_documented_verification_snippets_work(srv, recv, tmp_path):
    addr = dossier(srv, "WH-DOCS")
    assert mail_pdf(srv, addr, "snippet.pdf")[0] == 250
    req = for_ref(recv.wait_for(lambda rs: for_ref(rs, "WH-DOCS")),
                  "WH-DOCS")[0]
    sig = req["headers"]["Postdoc-Signature"]
    ns = {}
    exec(doc_snippet("verify-py"), ns)
    assert ns["postdoc_verify"](SECRET.encode(), sig, req["body"])
    assert not ns["postdoc_verify"](SECRET.encode(), sig, req["body"] + b" ")
    assert not ns["postdoc_verify"](b"wrong-secret", sig, req["body"])
    sh = doc_snippet("verify-sh")
    for body, want in ((req["body"], "valid"), (req["body"] + b" ",
                                                 "invalid")):
        (tmp_path / "body.json").write_bytes(body)
        p = subprocess.run(["sh", "-c", sh], cwd=tmp_path, text=True,
                           capture_output=True, timeout=30,
                           env=dict(os.environ, SIG=sig, SECRET=SECRET))
        assert p.stdout.strip() == want, (p.stdout, p.stderr)
        assert (p.returncode == 0) == (want == "valid")

"""
The outbound queue across a crash, through the real binary and the file
transport: invitations queued with `invite --queue-only`, delivered by
`postdoc serve` at a limited rate, SIGKILLed mid-queue and restarted.  A
message recorded "sent" before the kill was written once and never again;
the rest are written after the restart; every .eml is the queued blob
byte for byte with its envelope in the .json sidecar.  And `postdoc queue
run` beside `serve` never delivers a message twice.
"""
import hashlib
import json
import os
import re
import time

import postdoc_harness as H
from postdoc_harness import T

SENT_RE = re.compile(r"out-(\d+): to=<[^>]*> status=sent ")


def queue_server(servers, **outbound):
    srv = servers(start=False)
    ob = {"transport": "file", "template_dir": str(H.SRCDIR / "templates"),
          "queue_interval_ms": 50, "retry_base": 1, "rate": 4,
          "batch_max": 2, "delivery_threads": 2, "domain_concurrency": 1}
    ob.update(outbound)
    srv.sections["outbound"] = ob
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(srv.var / "outbox")}},
    ])
    srv.write_config()
    return srv


def queue_invitations(srv, n):
    srv.add_account("ACME")
    for i in range(n):
        addr = srv.create_dossier("ACME", contact="c%d@d%d.example"
                                  % (i, i % 3))
        o = srv.cli_json("invite", srv.dossier_id(addr), "--queue-only")
        assert o["state"] == "queued", o


def rows(srv):
    with srv.db() as c:
        return {r[0]: {"rcpt": r[1], "state": r[2], "sha256": r[3],
                       "mail_from": r[4], "attempts": r[5]}
                for r in c.execute("SELECT id, rcpt, state, sha256, "
                                   "mail_from, attempts FROM outbound")}


def count_state(srv, state):
    return sum(1 for r in rows(srv).values() if r["state"] == state)


def wait_state(srv, state, n, timeout):
    deadline = time.monotonic() + T(timeout)
    while time.monotonic() < deadline:
        if count_state(srv, state) >= n:
            return True
        time.sleep(0.05)
    return False


def eml_path(srv, oid, rcpt):
    return srv.var / "outbox" / ("%d-%s.eml" % (oid, rcpt))


def sent_ids(text):
    return [int(m.group(1)) for m in SENT_RE.finditer(text)]


def check_delivered(srv, all_rows):
    """Every row sent, its file the blob byte for byte, its envelope in
    the sidecar, and nothing half-written left in the outbox."""
    for oid, r in all_rows.items():
        assert r["state"] == "sent", (oid, r)
        eml = eml_path(srv, oid, r["rcpt"])
        assert hashlib.sha256(eml.read_bytes()).hexdigest() == r["sha256"]
        side = json.loads(eml.with_suffix(".json").read_text())
        assert side["id"] == oid and side["rcpt"] == r["rcpt"]
        assert side["mail_from"] == r["mail_from"]
        assert side["kind"] == "invitation" and side["account"] == "ACME"
    out = srv.var / "outbox"
    assert sorted(p.name for p in out.glob("*.tmp")) == []
    assert len(list(out.glob("*.eml"))) == len(all_rows)


def test_sigkill_mid_queue_delivers_each_sent_message_once(own_servers):
    n = 24
    srv = queue_server(own_servers)
    queue_invitations(srv, n)
    srv.start()
    # 4 a second: the kill lands with most of the queue still to go.
    assert wait_state(srv, "sent", 6, 20), srv.log_tail()
    srv.kill()
    before = rows(srv)
    sent_before = {oid: r for oid, r in before.items()
                   if r["state"] == "sent"}
    assert 0 < len(sent_before) < n
    stamps = {}
    for oid, r in sent_before.items():
        st = os.stat(eml_path(srv, oid, r["rcpt"]))
        stamps[oid] = (st.st_ino, st.st_mtime_ns)

    srv.start()
    assert wait_state(srv, "sent", n, 30), srv.log_tail()
    after = rows(srv)
    check_delivered(srv, after)
    for oid, r in sent_before.items():
        st = os.stat(eml_path(srv, oid, r["rcpt"]))
        # a rename would make a new inode: the file was never rewritten
        assert (st.st_ino, st.st_mtime_ns) == stamps[oid], oid
        assert after[oid]["attempts"] == 1
    # recorded sent exactly once over both lives of the server
    ids = sent_ids(srv.log_text())
    assert sorted(ids) == sorted(after), ids


def test_queue_run_beside_serve_sends_each_message_once(servers):
    n = 20
    srv = queue_server(servers, rate=5)
    queue_invitations(srv, n)
    srv.start()
    # -v: the CLI's own status= lines (INFO) are on its stderr.
    p = srv.cli("-v", "queue", "run", "--json", timeout=T(60))
    assert wait_state(srv, "sent", n, 30), srv.log_tail()
    stats = json.loads(p.stdout)
    serve_ids = sent_ids(srv.log_text())
    cli_ids = sent_ids(p.stderr)
    assert stats["sent"] == len(cli_ids)
    assert sorted(serve_ids + cli_ids) == sorted(rows(srv)), (serve_ids,
                                                                cli_ids)
    check_delivered(srv, rows(srv))

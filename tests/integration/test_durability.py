"""
"250 only after durable": eight clients send messages in a loop, the
server is killed with SIGKILL mid-stream, restarted, and every message
that got "250 ... queued as ID" must be there - once, with its document
and the document's bytes intact - and the database must be sound.
"""
import email.policy
import os
import random
import smtplib
import threading
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H
from postdoc_harness import T

SENDER = "alice@sender.example"
THREADS = 8


class Sender(threading.Thread):
    def __init__(self, srv, addr, n, stop, killing):
        super().__init__(daemon=True)
        self.srv, self.addr, self.n, self.stop = srv, addr, n, stop
        self.killing = killing
        self.acked = []		# (queue_id, attachment sha256, raw sha256)
        self.errors = []

    def one(self, s, i):
        # Unique text (random bytes could sniff as anything, even a PE).
        payload = (os.urandom(96).hex().encode()
                   + b"\nthread %d message %d\n" % (self.n, i))
        msg = EmailMessage()
        msg["From"] = SENDER
        msg["To"] = self.addr
        msg["Subject"] = "durability %d/%d" % (self.n, i)
        msg["Message-ID"] = "<dur-%d-%d-%d@sender.example>" % (
            os.getpid(), self.n, i)
        msg.set_content("payload attached\n")
        msg.add_attachment(payload, maintype="text", subtype="plain",
                           filename="blob-%d-%d.txt" % (self.n, i))
        raw = msg.as_bytes(policy=email.policy.SMTP)
        code, text = s.mail(SENDER)
        if code != 250:
            self.errors.append("MAIL: %d %r" % (code, text))
            return
        code, text = s.rcpt(self.addr)
        if code != 250:
            self.errors.append("RCPT: %d %r" % (code, text))
            return
        code, text = s.data(raw)
        if code == 250:
            qid = H.queue_id(text)
            if not qid:
                self.errors.append("250 without queue id: %r" % text)
            self.acked.append((qid, H.sha256(payload), H.sha256(raw)))
        else:
            self.errors.append("%d %r" % (code, text))

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.srv.smtp_port,
                                  local_hostname="client.test",
                                  timeout=T(10)) as s:
                    s.ehlo()
                    while not self.stop.is_set():
                        self.one(s, i)
                        i += 1
            except (OSError, smtplib.SMTPException) as e:
                # The server was killed under us: whatever did not get
                # its 250 is the sender's responsibility, not ours.
                if not self.killing.is_set():
                    self.errors.append("client error while the server "
                                       "ran: %r" % (e,))
                return


@pytest.fixture(scope="module")
def crashed(servers):
    srv = servers()
    srv.add_account("DUR", "any")
    addr = srv.create_dossier("DUR", contact=SENDER)
    stop, killing = threading.Event(), threading.Event()
    senders = [Sender(srv, addr, n, stop, killing) for n in range(THREADS)]
    for t in senders:
        t.start()
    # Kill once the senders are well under way (three acknowledgements
    # each on average), not after a fixed time: on a loaded machine
    # three seconds could pass before the first 250.
    H.wait_for(lambda: sum(len(t.acked) for t in senders) >= 3 * THREADS,
               60, "%d acknowledged messages before the kill" % (3 * THREADS))
    killing.set()                   # from now on, disconnects are expected
    srv.kill()                      # SIGKILL: no chance to clean up
    stop.set()
    for t in senders:
        t.join(T(30))
    acked = [a for t in senders for a in t.acked]
    errors = [e for t in senders for e in t.errors]
    srv.start()
    return srv, addr, acked, errors


def test_senders_got_acknowledgements(crashed):
    srv, addr, acked, errors = crashed
    assert errors == [], errors[:5]
    assert len(acked) >= 3 * THREADS, "only %d messages acknowledged" % (
        len(acked))


def test_every_acknowledged_message_survived_sigkill(crashed):
    srv, addr, acked, _ = crashed
    d = srv.show(addr)
    by_qid = {}
    for m in d["messages"]:
        by_qid.setdefault(m["queue_id"], []).append(m)
    docs_by_msg = {}
    for doc in d["documents"]:
        docs_by_msg.setdefault(doc["message_id"], []).append(doc)
    missing = [q for q, _, _ in acked if q not in by_qid]
    assert missing == [], "acknowledged but lost after SIGKILL: %s" % missing
    blobs = {p.name: p for p in srv.blob_files()}
    # Every document's bytes, straight from its blob file, and a sample
    # (always including the last acknowledged ones) through the CLI.
    sample = set(random.sample(range(len(acked)), min(150, len(acked))))
    sample |= set(range(max(0, len(acked) - 3 * THREADS), len(acked)))
    for n, (qid, att_sha, raw_sha) in enumerate(acked):
        assert len(by_qid[qid]) == 1, "queue id %s stored twice" % qid
        m = by_qid[qid][0]
        assert m["sha256"] == raw_sha, qid
        shas = {x["sha256"]: x for x in docs_by_msg.get(m["id"], [])}
        assert att_sha in shas, "document of %s missing" % qid
        assert att_sha in blobs, "blob of %s missing" % qid
        assert H.sha256(blobs[att_sha].read_bytes()) == att_sha, qid
        # The raw message (small: kept in the database, durable with the
        # rows by the batch's WAL fsync, no file of its own).
        raw = srv.raw_message(raw_sha, blobs)
        assert raw is not None, "raw message of %s missing" % qid
        assert H.sha256(raw) == raw_sha, "raw message of %s damaged" % qid
        if n in sample:
            got = srv.document_get(shas[att_sha]["id"])
            assert H.sha256(got) == att_sha, "blob of %s damaged" % qid
            got = srv.message_get(m["id"])
            assert H.sha256(got) == raw_sha, "message %s damaged" % qid


def test_no_duplicate_rows(crashed):
    srv, addr, _, _ = crashed
    with srv.db() as c:
        dup_q = c.execute("SELECT queue_id, count(*) FROM messages GROUP BY "
                          "queue_id HAVING count(*) > 1").fetchall()
    assert dup_q == []
    d = srv.show(addr)
    ids = [m["id"] for m in d["messages"]]
    assert len(ids) == len(set(ids))
    shas = [m["sha256"] for m in d["messages"]]
    assert len(shas) == len(set(shas)), "same raw message stored twice"


def test_database_integrity_after_sigkill(crashed):
    srv, _, _, _ = crashed
    with srv.db() as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []


def test_blobs_referenced_by_rows_exist(crashed):
    srv, addr, _, _ = crashed
    names = {p.name for p in srv.blob_files()}
    d = srv.show(addr)
    for doc in d["documents"]:
        assert doc["sha256"] in names or doc["stored_name"] in names, doc
    inline = srv.raw_inline_shas()
    for m in d["messages"]:
        assert m["sha256"] in names or m["sha256"] in inline, m


def test_server_accepts_mail_after_restart(crashed):
    srv, addr, _, _ = crashed
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = addr
    msg["Subject"] = "after restart"
    msg.set_content("still here\n")
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30)) as s:
        s.ehlo("client.test")
        s.mail(SENDER)
        s.rcpt(addr)
        code, text = s.data(msg.as_bytes(policy=email.policy.SMTP))
    assert code == 250, text
    # Temp files of sessions cut by the kill are not left in the spool
    # for ever: the restarted server cleans them up.
    assert srv.wait_spool_empty() == []

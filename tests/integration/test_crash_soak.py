"""
Crash soak: concurrent senders keep sending while the server is killed
with SIGKILL at random moments, several times, and restarted each time.
A sender that got no 250 resends the very same bytes later, as an MTA
would.  At the end every message that got a 250 is stored exactly once
with its document intact (sha256 of the blob), a retried message is not
stored twice, PRAGMA integrity_check is ok, and the spool is empty.
Bounded to about a minute (POSTDOC_SOAK_SECONDS, default 40).
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

SENDER = "soak@sender.example"
THREADS = 6
KILLS = 6
SECONDS = float(os.environ.get("POSTDOC_SOAK_SECONDS", "40"))


def make_message(addr, n, i):
    # Unique text attachment (random bytes could sniff as anything); the
    # odd ones are larger so some kills land in the middle of DATA.
    size = 200 if i % 2 == 0 else 150000
    payload = (os.urandom(size // 2).hex().encode()
               + b"\nsoak thread %d message %d\n" % (n, i))
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = addr
    msg["Subject"] = "soak %d/%d" % (n, i)
    msg["Message-ID"] = "<soak-%d-%d-%d@sender.example>" % (os.getpid(), n,
                                                            i)
    msg.set_content("document attached\n")
    msg.add_attachment(payload, maintype="text", subtype="plain",
                       filename="soak-%d-%d.txt" % (n, i))
    return msg.as_bytes(policy=email.policy.SMTP), H.sha256(payload)


class Sender(threading.Thread):
    """Sends until told to stop; what did not get a 250 is retried."""

    def __init__(self, port_of, addr, n, stop):
        super().__init__(daemon=True)
        self.port_of, self.addr, self.n, self.stop = port_of, addr, n, stop
        self.acked = {}		# raw sha256 -> (queue id, document sha256)
        self.retry = []		# (raw, raw sha256, document sha256)
        self.sent = 0
        self.refused = []	# a 5xx is a bug here: nothing is hostile

    def next_message(self):
        if self.retry:
            return self.retry.pop(0)
        raw, doc = make_message(self.addr, self.n, self.sent)
        self.sent += 1
        return raw, H.sha256(raw), doc

    def session(self):
        with smtplib.SMTP("127.0.0.1", self.port_of(),
                          local_hostname="client.test",
                          timeout=T(10)) as s:
            s.ehlo()
            while not self.stop.is_set():
                item = self.next_message()
                try:
                    s.mail(SENDER)
                    s.rcpt(self.addr)
                    code, text = s.data(item[0])
                except BaseException:
                    self.retry.append(item)
                    raise
                if code == 250:
                    self.acked[item[1]] = (H.queue_id(text), item[2])
                else:
                    if code >= 500:
                        self.refused.append((code, text))
                    self.retry.append(item)

    def run(self):
        while not self.stop.is_set():
            try:
                self.session()
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)	# killed under us: reconnect


@pytest.fixture(scope="module")
def soaked(servers):
    srv = servers()
    srv.add_account("SOAK", "any")
    addr = srv.create_dossier("SOAK", contact=SENDER)
    stop = threading.Event()
    senders = [Sender(lambda: srv.smtp_port, addr, n, stop)
               for n in range(THREADS)]
    for t in senders:
        t.start()
    rnd = random.Random()
    slot = SECONDS * (2 if H.SLOW else 1) / KILLS

    def acked():
        return sum(len(t.acked) for t in senders)
    for _ in range(KILLS):
        before = acked()
        # The kill lands at a random moment (that is the soak), but
        # only once this server life acknowledged something: on a
        # loaded machine a restart may take most of a slot.
        time.sleep(rnd.uniform(0.3 * slot, slot))
        H.wait_for(lambda: acked() > before, 60,
                   "an acknowledgement since the last restart")
        srv.kill()
        srv.start()
    # Every sender gets its retries through on the last server (and
    # one new message more), and the run has acknowledged enough.
    marks = [len(t.acked) for t in senders]
    H.wait_for(lambda: acked() >= 10 * THREADS and all(
        len(t.acked) > m and not t.retry for t, m in zip(senders, marks)),
        120, "every sender's retries acknowledged by the last server")
    stop.set()
    for t in senders:
        t.join(T(30))
    return srv, addr, senders


def test_senders_were_acknowledged(soaked):
    _, _, senders = soaked
    assert [r for t in senders for r in t.refused] == []
    assert sum(len(t.acked) for t in senders) >= 10 * THREADS


def test_every_acknowledged_message_stored_once_and_intact(soaked):
    srv, addr, senders = soaked
    acked = {k: v for t in senders for k, v in t.acked.items()}
    with srv.db() as c:
        rows = c.execute("SELECT m.sha256, m.queue_id, d.sha256, d.size "
                         "FROM messages m LEFT JOIN documents d "
                         "ON d.message_id = m.id").fetchall()
    by_raw = {}
    for raw, qid, doc, size in rows:
        by_raw.setdefault(raw, []).append((qid, doc))
    missing = [k for k in acked if k not in by_raw]
    assert missing == [], "acknowledged, then lost: %d" % len(missing)
    twice = [k for k, v in by_raw.items() if len(v) != 1]
    assert twice == [], "stored twice (or without its document)"
    blobs = {p.name: p for p in srv.blob_files()}
    inline = srv.raw_inline_shas()
    assert any(r in inline for r in acked), "no small message stored inline"
    assert any(r in blobs and r not in inline for r in acked), \
        "no large message stored as a blob file"
    for raw, (qid, doc) in acked.items():
        (_, got_doc), = by_raw[raw]
        assert got_doc == doc, qid
        # Small raw messages live in the database (store.inline_max),
        # larger ones in blob files: both kinds are sent here.
        got = srv.raw_message(raw, blobs)
        assert got is not None, "raw message of %s missing" % qid
        assert H.sha256(got) == raw, qid
        assert H.sha256(blobs[doc].read_bytes()) == doc, qid


def test_retries_were_deduplicated(soaked):
    srv, _, _ = soaked
    with srv.db() as c:
        dup = c.execute("SELECT sha256, count(*) FROM messages GROUP BY "
                        "sha256 HAVING count(*) > 1").fetchall()
        ddup = c.execute("SELECT sha256, count(*) FROM documents GROUP BY "
                         "sha256 HAVING count(*) > 1").fetchall()
    assert dup == [] and ddup == []


def test_database_sound(soaked):
    srv, _, _ = soaked
    with srv.db() as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []


def test_no_spool_or_temp_leftovers(soaked):
    srv, _, _ = soaked
    assert srv.wait_spool_empty() == []
    tmp = srv.var / "blobs" / "tmp"
    left = [p.name for p in tmp.iterdir()] if tmp.is_dir() else []
    assert left == []

"""
The hostile SMTP sessions of ../shared/corpus/smtp, one test per manifest
entry: replay the exact bytes as the manifest cuts them, check every
reply (corpus_driver.py), then check the invariants the store can show -
how many messages this session stored, that smuggled messages never
exist, that what was stored is byte-identical to what was acknowledged,
that spool files are gone, that memory stays bounded and that timeouts
fire while bytes trickle.  Skipped (not passed) without the corpus.
"""
import json
import threading
import time

import pytest

import corpus_driver as D
import postdoc_harness as H
from postdoc_harness import T

if H.HAVE_CORPUS:
    MANIFEST = json.loads((H.CORPUS / "smtp" / "manifest.json").read_text())
    NAMES = sorted(MANIFEST)
else:
    MANIFEST, NAMES = {}, []

pytestmark = pytest.mark.skipif(not H.HAVE_CORPUS,
                                reason=H.CORPUS_SKIP_REASON)

SMUGGLING = ("01_", "02_", "03_", "05_", "06_", "07_", "09_")


@pytest.fixture(scope="module")
def srv(servers, tls_pair):
    s = servers(tls=tls_pair)
    s.add_account("CORPUS", "any")
    s.create_dossier("CORPUS", contact=H.CORPUS_CONTACT, ref="CORPUS-1",
                     address=H.CORPUS_ADDRESS)
    return s


def snapshot(srv):
    d = srv.show(H.CORPUS_ADDRESS)
    return {
        "msgs": {m["id"]: m for m in d["messages"]},
        "docs": {x["id"] for x in d["documents"]},
        "dups": sum(1 for e in d["events"]
                    if e["kind"] == "message.duplicate"),
        "db_messages": srv.db_count("messages"),
        "db_documents": srv.db_count("documents"),
    }


class RssSampler(threading.Thread):
    def __init__(self, srv):
        super().__init__(daemon=True)
        self.srv, self.peak, self.base = srv, 0, srv.rss_kb() or 0
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            v = self.srv.rss_kb()
            if v:
                self.peak = max(self.peak, v)
            time.sleep(0.02)

    def stop(self):
        self.stop_flag.set()
        self.join()


def test_corpus_has_sessions():
    assert len(NAMES) >= 20, NAMES


@pytest.mark.parametrize("name", NAMES or ["(no corpus)"])
def test_corpus_session(srv, name):
    entry = MANIFEST[name]
    data = (H.CORPUS / "smtp" / name).read_bytes()
    before = snapshot(srv)
    sampler = other = None
    if name.startswith("15_"):
        sampler = RssSampler(srv)
        sampler.start()
    if name.startswith("25_"):
        other = OtherClient(srv, after=1.0)
        other.start()
    try:
        sess = D.Session(srv, name, entry, data).run()
    finally:
        if sampler:
            sampler.stop()
    if other:
        other.join(T(10))
        assert other.ok, ("a normal client was not served during the "
                          "slowloris session: %r" % (other.error,))

    after = snapshot(srv)
    new = {i: m for i, m in after["msgs"].items() if i not in before["msgs"]}
    dups = after["dups"] - before["dups"]

    # G2/G3: exactly the messages acknowledged with 250 after DATA are
    # stored (a duplicate of an earlier one shows as an event instead),
    # byte-identical to what was sent, and nothing else.
    assert len(new) + dups == len(sess.data_250), (
        "stored %d (+%d duplicates) but acknowledged %d"
        % (len(new), dups, len(sess.data_250)))
    assert after["db_messages"] - before["db_messages"] == len(new)
    want = {H.sha256(raw): raw for raw in sess.data_250}
    for mid, m in new.items():
        raw = srv.message_get(mid)
        assert H.sha256(raw) == m["sha256"]
        assert m["sha256"] in want, (
            "stored message %s is not what was acknowledged:\n%r"
            % (mid, raw[:500]))
    all_shas = {m["sha256"] for m in after["msgs"].values()}
    for sha in want:
        assert sha in all_shas, "acknowledged message %s not stored" % sha
    if not new:
        assert after["docs"] == before["docs"]
        assert after["db_documents"] == before["db_documents"]
    for m in after["msgs"].values():
        assert "SMUGGLED" not in (m["subject"] or ""), m
    left = srv.wait_spool_empty()
    assert left == [], "spool files left behind: %s" % left

    check = SPECIFIC.get(name[:3])
    if check:
        check(srv, sess, new, sampler)
    srv.assert_alive()


# ------------------------------------------------- per-file invariants

def smuggling(srv, sess, new, _):
    assert len(new) <= 1
    for mid, m in new.items():
        assert m["subject"] == "innocent", m
        raw = srv.message_get(mid)
        assert b"SMUGGLED wire transfer" in raw   # kept verbatim, as data


def nothing(srv, sess, new, _):
    assert new == {} and sess.data_250 == []


def memory_bounded(srv, sess, new, sampler):
    assert sampler.peak > 0, "could not read the server's VmRSS"
    growth = sampler.peak - sampler.base
    if not H.WRAPPER:
        assert sampler.peak < 64 * 1024, (
            "server RSS peaked at %d kB during 2 MiB unterminated line"
            % sampler.peak)
    assert growth < 32 * 1024, ("server RSS grew by %d kB while buffering "
                                "an unterminated line" % growth)
    nothing(srv, sess, new, None)


def two_messages(srv, sess, new, _):
    assert len(sess.data_250) == 2
    assert len(new) == 2, new


def fanout(srv, sess, new, _):
    assert len(sess.data_250) <= 1
    assert len(new) <= 1
    for m in new.values():
        assert m["rcpt_to"] == H.CORPUS_ADDRESS


def slowloris(srv, sess, new, _):
    limit = srv.limits["command_timeout"]
    got = [(t, r) for t, r in sess.async_replies]
    for res in sess.results[1:]:
        got += [(None, r) for r in res.replies]
    codes = [(r.code, r.enhanced) for _, r in got]
    assert (421, "4.4.2") in codes, (
        "no 421 4.4.2 while bytes trickled: %s" % codes)
    assert sess.closed, "server did not close the trickling session"
    elapsed = sess.t_closed - sess.t_banner
    assert elapsed < limit + T(2.5), (
        "closed %.1fs after the banner; command_timeout is %ds"
        % (elapsed, limit))
    nothing(srv, sess, new, None)


class OtherClient(threading.Thread):
    """A well-behaved client served while a slowloris session trickles."""

    def __init__(self, srv, after):
        super().__init__(daemon=True)
        self.srv, self.after, self.ok, self.error = srv, after, False, None

    def run(self):
        time.sleep(self.after)
        try:
            with H.Conn(self.srv.smtp_port) as c:
                assert c.cmd("EHLO other.test").code == 250
                assert c.cmd("NOOP").code == 250
                assert c.cmd("QUIT").code == 221
            self.ok = True
        except Exception as e:  # reported by the assertion below
            self.error = e


def traversal(srv, sess, new, _):
    nothing(srv, sess, new, None)
    for p in srv.var.rglob("*"):
        rel = str(p.relative_to(srv.var)).lower()
        for bad in ("passwd", "7f3a9c2e", "%2e", "relay", ".."):
            assert bad not in rel, "path from a local part: %s" % p
    # Case-folding and subaddress policy must be deterministic: asking
    # again gives the same answers as in the corpus session.
    first = {}
    for res in sess.results:
        for line, r in zip(res.sent.split(b"\r\n"), res.replies):
            first[line] = r.code
    with H.Conn(srv.smtp_port) as c:
        assert c.cmd("EHLO client.sender.example").code == 250
        assert c.cmd("MAIL FROM:<alice@sender.example>").code == 250
        for line in (b"RCPT TO:<D-7F3A9C2E@dossiers.example>",
                     b"RCPT TO:<d-7f3a9c2e+x@dossiers.example>"):
            r = c.cmd(line)
            assert r.code == first[line], (line, r, first[line])


def dot_stuffing(srv, sess, new, _):
    assert len(new) == 1, new
    raw = srv.message_get(next(iter(new)))
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert body.split(b"\r\n")[:-1] == [b".leading dot", b".", b"..",
                                        b". ", b"end"], body


def no_chunking(srv, sess, new, _):
    assert sess.ehlo is not None
    assert "CHUNKING" not in H.ehlo_keywords(sess.ehlo), sess.ehlo.lines
    nothing(srv, sess, new, None)


def starttls_injection(srv, sess, new, _):
    assert "STARTTLS" in H.ehlo_keywords(sess.ehlo)
    nothing(srv, sess, new, None)


SPECIFIC = {p: smuggling for p in SMUGGLING}
SPECIFIC.update({
    "11_": nothing, "13_": nothing, "15_": memory_bounded,
    "18_": nothing, "19_": two_messages, "20_": nothing, "22_": fanout,
    "23_": nothing, "24_": nothing, "25_": slowloris, "26_": nothing,
    "27_": starttls_injection, "28_": nothing, "30_": traversal,
    "32_": dot_stuffing, "34_": nothing, "35_": no_chunking,
})

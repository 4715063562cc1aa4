"""
The blob store's layout through the real binary: new blobs land at
var/blobs/ab/<sha256> (one fan-out level, 256 dirs made at start); a
store written by an older Postdoc, whose blobs sit at ab/cd/<sha256>,
keeps working without a migration: its documents and raw messages are
still served (`document get`, `message get`), a new message carrying the
same attachment is deduplicated against the old file instead of copied,
and `subject erase` removes the old files.
"""
import os
import smtplib
import time
from email.message import EmailMessage

import pytest

import postdoc_harness as H
from postdoc_harness import T

SENDER = "old.layout@client.example"


def pdf(tag, size=300 * 1024):
    # Large enough that the raw message is a blob whatever the intake
    # keeps inline; random bytes so no other test shares the digest.
    return b"%PDF-1.4\n% " + tag.encode() + b"\n" + os.urandom(size) + \
        b"\n%%EOF\n"


def send(srv, to, subject, attachment):
    m = EmailMessage()
    m["From"] = SENDER
    m["To"] = to
    m["Subject"] = subject
    m.set_content("Documents attached.\n")
    m.add_attachment(attachment, maintype="application", subtype="pdf",
                     filename=subject + ".pdf")
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(20)) as s:
        s.send_message(m, from_addr=SENDER, to_addrs=[to])


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def rows(srv, sql, *args):
    con = srv.db()
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def layout(srv):
    """{sha: path relative to var/blobs} for every stored blob."""
    root = srv.var / "blobs"
    return {p.name: p.relative_to(root) for p in srv.blob_files()
            if p.parent.name != "tmp"}


def to_old_layout(srv):
    """What an older Postdoc would have left: every blob at ab/cd/sha."""
    root = srv.var / "blobs"
    for sha, rel in layout(srv).items():
        d = root / sha[:2] / sha[2:4]
        d.mkdir(exist_ok=True)
        os.rename(root / rel, d / sha)


@pytest.fixture(scope="module")
def srv(servers):
    s = servers()
    s.add_account("ACME", "any")
    return s


def test_new_blobs_one_level(srv):
    root = srv.var / "blobs"
    fan = sorted(p.name for p in root.iterdir() if p.name != "tmp")
    assert fan == ["%02x" % i for i in range(256)]
    d = srv.create_dossier("ACME", contact=SENDER, ref="NEW-1")
    att = pdf("new")
    send(srv, d, "new", att)
    docs = wait_for(lambda: srv.show(d).get("documents"), T(30))
    assert docs and srv.document_get(docs[0]["id"]) == att
    got = layout(srv)
    sha = H.sha256(att)
    assert str(got[sha]) == "%s/%s" % (sha[:2], sha)
    # No second level anywhere.
    assert all(len(p.parts) == 2 for p in got.values()), got


def test_old_layout_served_deduplicated_erased(srv):
    d = srv.create_dossier("ACME", contact=SENDER, ref="OLD-1")
    att = pdf("old")
    send(srv, d, "old", att)
    show = wait_for(lambda: srv.show(d).get("documents") and srv.show(d),
                    T(30))
    doc, msg = show["documents"][0], show["messages"][0]
    raw_sha = rows(srv, "SELECT sha256 FROM messages WHERE id = ?",
                   msg["id"])[0][0]
    att_sha = H.sha256(att)
    raw = srv.message_get(msg["id"])
    assert H.sha256(raw) == raw_sha

    # An older Postdoc's store: stop, move every blob down a level, start.
    srv.stop()
    to_old_layout(srv)
    old = layout(srv)
    assert str(old[att_sha]) == "%s/%s/%s" % (att_sha[:2], att_sha[2:4],
                                             att_sha)
    assert str(old[raw_sha]) == "%s/%s/%s" % (raw_sha[:2], raw_sha[2:4],
                                             raw_sha)
    srv.start()

    # Served from where they are.
    assert srv.document_get(doc["id"]) == att
    assert srv.message_get(msg["id"]) == raw

    # The same attachment again, into another dossier: a new document
    # row, its bytes stored once, in the old place.
    d2 = srv.create_dossier("ACME", contact=SENDER, ref="OLD-2")
    send(srv, d2, "again", att)
    docs2 = wait_for(lambda: srv.show(d2).get("documents"), T(30))
    assert docs2 and docs2[0]["id"] != doc["id"]
    assert srv.document_get(docs2[0]["id"]) == att
    now = layout(srv)
    assert str(now[att_sha]) == str(old[att_sha])
    assert len([s for s in srv.blob_files() if s.name == att_sha]) == 1

    # Erasing the sender removes the old-layout files as well.
    root = srv.var / "blobs"
    rep = srv.cli_json("subject", "erase", SENDER, "--account", "ACME")
    assert rep["erased"]["blobs"] >= 2
    assert not (root / old[att_sha]).exists()
    assert not (root / old[raw_sha]).exists()
    left = layout(srv)
    assert att_sha not in left and raw_sha not in left

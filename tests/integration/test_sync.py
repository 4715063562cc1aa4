"""
The storage sync plugins end to end: mail sent over SMTP to a real
`postdoc serve` with sync_dir (a directory tree) and sync_webdav (Debian's
nginx with its DAV module on loopback, basic auth) configured, and the
documents checked where the customer would look for them:
<root>/<account>/<ref>/<document id>-<filename>, byte for byte.  Also:
files already in the folder are never overwritten or deleted, a symlink
planted in the tree is not followed, an outage or wrong credentials are
retried without holding up intake, and a repeated delivery (the crash
window between the hook and the record of its verdict) makes no second
copy.
"""
import email.message
import email.policy
import os
import random
import smtplib
import sqlite3
import subprocess
import time

import pytest

import postdoc_harness as H
from postdoc_harness import T
from webdav_peer import Nginx

ACCOUNT = "ACME"
DAV_USER, DAV_PASS = "postdoc", "s3cret-dav"
SENDER = H.CORPUS_CONTACT


# ------------------------------------------------------------ helpers

def wait_for(cond, timeout, what):
    return H.wait_for(cond, timeout, what)


def plugins(root, dav_url, password=DAV_PASS, ca_file=None):
    dav = {"url": dav_url, "username": DAV_USER, "password": password,
           "timeout": 5}
    if ca_file:
        dav["ca_file"] = str(ca_file)
    return [{"name": "sync_dir", "settings": {"root": str(root)}},
            {"name": "sync_webdav", "settings": dav}]


def sync_server(servers, root, dav_url, password=DAV_PASS, ca_file=None):
    """servers: the module's factory, or a directory for a server the
    test does not expect to start (the factory would call its exit a
    crash)."""
    srv = servers(start=False) if callable(servers) else H.Server(servers)
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) +
                                       plugins(root, dav_url, password,
                                               ca_file))
    # Retry every second: an outage in the test lasts a few seconds.
    srv.sections["events"] = {"interval_ms": 50, "retry_base": 1,
                              "retry_cap": 1}
    srv.write_config()
    return srv


def send(srv, addr, files, subject="documents"):
    """One message with the given (filename, bytes, mime type) parts;
    returns when the server answered 250 to the DATA."""
    msg = email.message.EmailMessage()
    msg["From"] = SENDER
    msg["To"] = addr
    msg["Subject"] = subject
    msg.set_content("see attached\n")
    for name, data, ctype in files:
        main, sub = ctype.split("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(10)) as c:
        refused = c.sendmail(SENDER, [addr],
                             msg.as_bytes(policy=email.policy.SMTP))
    assert refused == {}, refused


def documents(srv, addr):
    """[(id, filename, sha256)] of the dossier, in id order."""
    did = srv.dossier_id(addr)
    with srv.db() as c:
        return c.execute("SELECT id, filename, sha256 FROM documents "
                         "WHERE dossier_id = ? ORDER BY id",
                         (did,)).fetchall()


def deliveries(srv, plugin):
    """{event id: (state, attempts, last_error)} of a plugin's sync hook."""
    with srv.db() as c:
        return {r[0]: r[1:] for r in c.execute(
            "SELECT event_id, state, attempts, last_error FROM "
            "event_deliveries WHERE consumer = ? AND hook = 'sync'",
            (plugin,))}


def next_document_id(srv):
    """The id the next stored document gets (INTEGER PRIMARY KEY:
    max + 1), so a test can plant a file at the name it will want."""
    with srv.db() as c:
        return (c.execute("SELECT max(id) FROM documents").fetchone()[0]
                or 0) + 1


def folder_files(folder):
    """{name: bytes} of the regular files and symlinks in a folder."""
    if not folder.is_dir():
        return {}
    return {p.name: (p.read_bytes() if not p.is_symlink() else None)
            for p in folder.iterdir()}


def pdf(tag):
    return H.make_pdf(tag)


# ------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def dav():
    n = Nginx(users={DAV_USER: DAV_PASS}).start()
    yield n
    n.stop()


@pytest.fixture(scope="module")
def env(servers, dav, tmp_path_factory):
    root = tmp_path_factory.mktemp("share")
    srv = sync_server(servers, root, dav.url)
    srv.start()
    srv.add_account(ACCOUNT)
    return srv, root, dav


def new_dossier(srv, ref):
    return srv.create_dossier(ACCOUNT, contact=SENDER, ref=ref)


def dir_folder(root, ref):
    return root / ACCOUNT / ref


def dav_folder(dav, ref):
    return dav.folder / ACCOUNT / ref


def wait_mirrored(env, ref, names, timeout=20):
    """Both plugins have written every name in `names`."""
    srv, root, dav = env

    def done():
        have_dir = folder_files(dir_folder(root, ref))
        have_dav = folder_files(dav_folder(dav, ref))
        return all(n in have_dir and n in have_dav for n in names)
    wait_for(done, timeout, "%s mirrored into %s" % (names, ref))


def wait_delivered(srv, plugin, doc_ids, timeout=20):
    """The sync deliveries of these documents are recorded done."""
    def done():
        rows = [r for r in deliveries(srv, plugin).values()
                if r[0] == "done"]
        return len(rows) >= len(doc_ids)
    wait_for(done, timeout, "%s deliveries done" % plugin)


# --------------------------------------------------------------- tests

def test_bad_settings_stop_serve_with_a_reason(tmp_path):
    srv = sync_server(tmp_path / "a", tmp_path / "no-such-share",
                      "http://127.0.0.1:1/dav/")
    with pytest.raises(H.ServerError) as e:
        srv.start()
    assert "sync_dir: root %s" % (tmp_path / "no-such-share") in str(e.value)

    srv = sync_server(tmp_path / "b", tmp_path, "ftp://127.0.0.1/dav/")
    with pytest.raises(H.ServerError) as e:
        srv.start()
    assert "sync_webdav" in str(e.value) and "http" in str(e.value)


def test_documents_are_mirrored_byte_for_byte(env):
    srv, root, dav = env
    # A ref with a space, a '/' and UTF-8: one safe folder name, and
    # percent-encoded on the wire (nginx decodes it back).
    addr = new_dossier(srv, "R MIRROR/été")
    ref = "R MIRROR_été"
    files = [("invoice.pdf", pdf("invoice"), "application/pdf"),
             ("scan.png", H.make_png("scan"), "image/png"),
             # fixed bytes: random ones are now and then sniffed as a
             # type the dossier refuses (an "MZ" start is an executable)
             ("big.bin", b"\0postdoc\0" +
              random.Random(8).randbytes(1500000),
              "application/octet-stream")]
    send(srv, addr, files)
    docs = documents(srv, addr)
    assert [d[1] for d in docs] == ["invoice.pdf", "scan.png", "big.bin"]
    names = ["%d-%s" % (d[0], d[1]) for d in docs]
    wait_mirrored(env, ref, names)
    for (name, data, _), fname in zip(files, names):
        on_dir = dir_folder(root, ref) / fname
        on_dav = dav_folder(dav, ref) / fname
        assert on_dir.read_bytes() == data
        assert on_dav.read_bytes() == data
        assert on_dir.stat().st_mode & 0o777 == 0o640
    # nothing else, in particular no temporary file, was left behind
    assert sorted(folder_files(dir_folder(root, ref))) == sorted(names)
    assert sorted(folder_files(dav_folder(dav, ref))) == sorted(names)
    wait_delivered(srv, "sync_webdav", docs)
    puts = [u for m, u, _ in dav.requests() if m == "PUT"]
    assert "/postdoc/ACME/R%%20MIRROR_%%C3%%A9t%%C3%%A9/%s" % names[0] in puts
    # only creating methods, and only inside the dedicated folder
    for method, uri, _ in dav.requests():
        assert method in ("HEAD", "GET", "MKCOL", "PUT"), (method, uri)
        assert uri.startswith("/postdoc/"), uri


def test_same_filename_twice_gets_two_names(env):
    srv, root, dav = env
    addr = new_dossier(srv, "R-TWICE")
    first, second = pdf("payslip january"), pdf("payslip february")
    send(srv, addr, [("payslip.pdf", first, "application/pdf")])
    send(srv, addr, [("payslip.pdf", second, "application/pdf")])
    docs = documents(srv, addr)
    assert len(docs) == 2 and docs[0][1] == docs[1][1] == "payslip.pdf"
    names = ["%d-payslip.pdf" % d[0] for d in docs]
    assert names[0] != names[1]
    wait_mirrored(env, "R-TWICE", names)
    for folder in (dir_folder(root, "R-TWICE"), dav_folder(dav, "R-TWICE")):
        have = folder_files(folder)
        assert have == {names[0]: first, names[1]: second}


def test_long_names_keep_their_last_extension(env):
    """Issue 16, defect 2: a name past 160 bytes is cut in its stem,
    never in its extension: "A...A.vbs.pdf" must not become "A...A.vbs"
    on the share.  UTF-8 is cut at a character boundary; a last
    extension too long to keep leaves no dot that would make one up."""
    srv, root, dav = env
    addr = new_dossier(srv, "R-LONGNAME")
    sent = [("A" * 156 + ".vbs.pdf", pdf("spoofed extension")),
            ("\u00e9" * 100 + ".vbs.pdf", pdf("two-byte letters")),
            ("B" * 156 + ".vbs." + "x" * 20, pdf("long last extension")),
            ("short.vbs.pdf", pdf("not cut"))]
    send(srv, addr, [(n, d, "application/pdf") for n, d in sent])
    docs = documents(srv, addr)
    assert [d[1] for d in docs] == [n for n, _ in sent]
    want = ["A" * 156 + ".pdf",
            "\u00e9" * 78 + ".pdf",     # 156 bytes: the 79th letter splits
            "B" * 156 + "_vbs",
            "short.vbs.pdf"]
    names = ["%d-%s" % (d[0], w) for d, w in zip(docs, want)]
    wait_mirrored(env, "R-LONGNAME", names)
    for folder in (dir_folder(root, "R-LONGNAME"),
                   dav_folder(dav, "R-LONGNAME")):
        have = folder_files(folder)
        assert have == {n: d for n, (_, d) in zip(names, sent)}, \
            sorted(have)
        for n in have:
            stem = n.split("-", 1)[1]
            assert len(stem.encode()) <= 160
            assert not stem.endswith(".vbs"), n


def test_files_already_there_are_never_overwritten_or_deleted(env):
    srv, root, dav = env
    addr = new_dossier(srv, "R-USER")
    # The user keeps files of their own in the dossier folder, one of
    # them at exactly the name our next document wants.
    nid = next_document_id(srv)
    taken = "%d-report.pdf" % nid
    mine = {"notes.txt": b"the user's notes\n",
            taken: b"the user's own report, not ours\n"}
    stamps = {}
    for folder in (dir_folder(root, "R-USER"), dav_folder(dav, "R-USER")):
        folder.mkdir(parents=True)
        for name, data in mine.items():
            (folder / name).write_bytes(data)
            st = (folder / name).stat()
            stamps[folder / name] = (st.st_ino, st.st_mtime_ns)
    ours = pdf("quarterly report")
    send(srv, addr, [("report.pdf", ours, "application/pdf")])
    assert documents(srv, addr)[0][0] == nid
    alt = "%d-report (2).pdf" % nid
    wait_mirrored(env, "R-USER", [alt])
    for folder in (dir_folder(root, "R-USER"), dav_folder(dav, "R-USER")):
        have = folder_files(folder)
        assert have == dict(mine, **{alt: ours}), sorted(have)
    for path, stamp in stamps.items():
        st = path.stat()
        assert (st.st_ino, st.st_mtime_ns) == stamp, path
    puts = [u for m, u, _ in dav.requests() if m == "PUT"]
    assert not any(u.endswith("/%d-report.pdf" % nid) for u in puts), puts


def test_symlinks_in_the_tree_are_not_followed(env, tmp_path):
    srv, root, dav = env
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.pdf"
    victim.write_bytes(b"outside the share\n")
    # A dossier folder that is a symlink leading out of root.
    addr = new_dossier(srv, "R-LINKDIR")
    (root / ACCOUNT).mkdir(exist_ok=True)
    os.symlink(outside, dir_folder(root, "R-LINKDIR"))
    # A file name that is a symlink to a file outside.
    addr2 = new_dossier(srv, "R-LINKFILE")
    dir_folder(root, "R-LINKFILE").mkdir()
    nid = next_document_id(srv)
    os.symlink(victim, dir_folder(root, "R-LINKFILE") / ("%d-a.pdf" % nid))
    doc_a = pdf("through a file link")
    send(srv, addr2, [("a.pdf", doc_a, "application/pdf")])
    doc_b = pdf("through a folder link")
    send(srv, addr, [("b.pdf", doc_b, "application/pdf")])
    bid = documents(srv, addr)[0][0]

    # the file link is left alone and ours takes the next name (on the
    # WebDAV side, where nothing was planted, the first name is free)
    alt = dir_folder(root, "R-LINKFILE") / ("%d-a (2).pdf" % nid)
    wait_for(alt.is_file, 20, "the sync_dir copy beside the link")
    assert alt.read_bytes() == doc_a
    assert os.readlink(alt.with_name("%d-a.pdf" % nid)) == str(victim)
    # the folder link is refused, retried, and never written through,
    # while the WebDAV copy of the same document goes ahead
    wait_for(lambda: (dav_folder(dav, "R-LINKDIR") / ("%d-b.pdf" % bid)
                      ).is_file(), 20, "the WebDAV copy")

    def refused_twice():
        return any(r[0] == "pending" and r[1] >= 2 and
                   "symlink is never followed" in r[2]
                   for r in deliveries(srv, "sync_dir").values())
    wait_for(refused_twice, 20, "sync_dir to defer the linked folder twice")
    assert sorted(os.listdir(outside)) == ["victim.pdf"]
    assert victim.read_bytes() == b"outside the share\n"
    assert "deferred by sync_dir sync" in srv.log_text()


def test_webdav_outage_is_retried_and_intake_does_not_wait(env):
    srv, root, dav = env
    addr = new_dossier(srv, "R-OUTAGE")
    dav.stop(remove=False)
    try:
        data = pdf("sent while the server was down")
        send(srv, addr, [("down.pdf", data, "application/pdf")])
        name = "%d-down.pdf" % documents(srv, addr)[0][0]
        # the share is independent of the WebDAV server
        wait_for(lambda: (dir_folder(root, "R-OUTAGE") / name).is_file(),
                 20, "the sync_dir copy")

        def deferred():
            return any(r[0] == "pending" and "connect" in r[2].lower()
                       for r in deliveries(srv, "sync_webdav").values())
        wait_for(deferred, 20, "sync_webdav to defer on the outage")
        assert not (dav_folder(dav, "R-OUTAGE") / name).exists()
    finally:
        dav.start()
    wait_for(lambda: (dav_folder(dav, "R-OUTAGE") / name).is_file(), 30,
             "the WebDAV copy after the outage")
    assert (dav_folder(dav, "R-OUTAGE") / name).read_bytes() == data


def test_wrong_password_is_retried_and_logged(servers, dav, tmp_path):
    root = tmp_path / "share2"
    root.mkdir()
    srv = sync_server(servers, root, dav.url, password="not-the-password")
    srv.start()
    srv.add_account(ACCOUNT)
    addr = new_dossier(srv, "R-AUTH")
    data = pdf("needs the right password")
    send(srv, addr, [("auth.pdf", data, "application/pdf")])
    name = "%d-auth.pdf" % documents(srv, addr)[0][0]

    def refused_twice():
        return any(r[0] == "pending" and r[1] >= 2 and "401" in r[2]
                   for r in deliveries(srv, "sync_webdav").values())
    wait_for(refused_twice, 20, "two deferred attempts on 401")
    assert "refused our credentials (HTTP 401)" in srv.log_text()
    assert not (dav_folder(dav, "R-AUTH") / name).exists()
    # the operator fixes the password: the same document goes through
    srv.stop_and_check()
    srv.sections["plugins"] = H.LcList(
        list(srv.sections["plugins"])[:1] + plugins(root, dav.url))
    srv.write_config()
    srv.start()
    wait_for(lambda: (dav_folder(dav, "R-AUTH") / name).is_file(), 30,
             "the WebDAV copy once the password is right")
    assert (dav_folder(dav, "R-AUTH") / name).read_bytes() == data


def test_repeated_delivery_makes_no_second_copy(own_servers, dav,
                                                tmp_path):
    """The crash window: serve is SIGKILLed after the hooks wrote the
    file; the record of their verdicts is then put back to pending, as
    a kill between the hook and that record leaves it, so the restarted
    server calls both hooks again for the same event.

    The file appears before the verdict is committed, so the kill waits
    for the verdicts themselves (killing at the file's appearance raced
    the commit).  The server is this test's own: killing the module's
    shared one took the later tests down when this one failed."""
    root = tmp_path / "share-again"
    root.mkdir()
    srv = sync_server(own_servers, root, dav.url)
    srv.start()
    srv.add_account(ACCOUNT)
    env = (srv, root, dav)
    addr = new_dossier(srv, "R-AGAIN")
    data = pdf("delivered at least once")
    send(srv, addr, [("again.pdf", data, "application/pdf")])
    did = documents(srv, addr)[0][0]
    name = "%d-again.pdf" % did
    wait_mirrored(env, "R-AGAIN", [name])

    def verdicts():
        """{plugin: (event id, attempts)} once both recorded done."""
        got = {}
        for p in ("sync_dir", "sync_webdav"):
            for ev, (state, attempts, err) in deliveries(srv, p).items():
                if state == "done" and (err or "").endswith(" " + name):
                    got[p] = (ev, attempts)
        return got if len(got) == 2 else None
    got = wait_for(verdicts, 20, "both sync verdicts on %s recorded" % name)
    ev = got["sync_dir"][0]
    assert got["sync_webdav"][0] == ev, got
    before = {p: got[p][1] for p in got}
    ino = (dir_folder(root, "R-AGAIN") / name).stat().st_ino
    srv.kill()
    db = sqlite3.connect(str(srv.var / "postdoc.db"), timeout=10)
    with db:
        db.execute("UPDATE event_deliveries SET state = 'pending', "
                   "next_attempt = 0 WHERE event_id = ? AND hook = 'sync'",
                   (ev,))
    db.close()
    srv.start()

    def called_again():
        d = [deliveries(srv, p)[ev] for p in before]
        return all(r[0] == "done" and r[1] > before[p]
                   for r, p in zip(d, before))
    wait_for(called_again, 20, "both hooks called again")
    for p in before:
        assert "already mirrored as %s" % name in deliveries(srv, p)[ev][2]
    for folder in (dir_folder(root, "R-AGAIN"), dav_folder(dav, "R-AGAIN")):
        assert folder_files(folder) == {name: data}
    assert (dir_folder(root, "R-AGAIN") / name).stat().st_ino == ino
    puts = [u for m, u, _ in dav.requests() if m == "PUT" and "R-AGAIN" in u]
    assert len(puts) == 1, puts


def test_every_name_taken_gives_up_then_operator_retry(env):
    """20 candidate names all held by other files: sync_dir gives the
    document up (failed, with the reason); once the user clears one
    name, `postdoc events retry` brings it through."""
    srv, root, dav = env
    addr = new_dossier(srv, "R-FULL")
    nid = next_document_id(srv)
    folder = dir_folder(root, "R-FULL")
    folder.mkdir(parents=True)
    taken = ["%d-full.pdf" % nid] + ["%d-full (%d).pdf" % (nid, k)
                                     for k in range(2, 21)]
    for name in taken:
        (folder / name).write_bytes(b"someone else's " + name.encode())
    data = pdf("nowhere to go")
    send(srv, addr, [("full.pdf", data, "application/pdf")])
    assert documents(srv, addr)[0][0] == nid

    def failed():
        rows = [r for r in srv.cli_json("events", "list", "--consumer",
                                        "sync_dir", "--state", "failed")
                if r["hook"] == "sync" and
                "document %d " % nid in r["last_error"]]
        return rows[0] if rows else None
    row = wait_for(failed, 20, "sync_dir to give the document up")
    assert "first 20 names" in row["last_error"], row
    assert "refused by sync_dir sync" in srv.log_text()
    assert sorted(os.listdir(folder)) == sorted(taken)
    # the user makes room; the operator resends
    os.unlink(folder / taken[-1])
    srv.cli("events", "retry", row["id"])
    wait_for((folder / taken[-1]).is_file, 20, "the copy after the retry")
    assert (folder / taken[-1]).read_bytes() == data
    for name in taken[:-1]:
        assert (folder / name).read_bytes() == (b"someone else's " +
                                                name.encode())


def mount_tmpfs(path):
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755",
                        "tmpfs", str(path)], capture_output=True, text=True)
    return p.returncode == 0, p.stderr.strip()


def test_unmounted_share_is_not_written_and_retried(servers, dav, tmp_path):
    """root is a mount point at start; while the share is unmounted the
    document waits (nothing lands in the bare directory beneath), and
    it arrives once the share is mounted again."""
    mnt = tmp_path / "share"
    mnt.mkdir()
    ok, why = mount_tmpfs(mnt)
    if not ok:
        pytest.skip("cannot mount a tmpfs here (needs root): %s" % why)
    mounted = True
    try:
        srv = sync_server(servers, mnt, dav.url)
        srv.start()
        srv.add_account(ACCOUNT)
        addr = new_dossier(srv, "R-MOUNT")
        subprocess.run(["umount", str(mnt)], check=True)
        mounted = False
        data = pdf("sent while the share was away")
        send(srv, addr, [("away.pdf", data, "application/pdf")])
        name = "%d-away.pdf" % documents(srv, addr)[0][0]

        def deferred():
            return any(r[0] == "pending" and "no longer a mount point"
                       in r[2] for r in deliveries(srv, "sync_dir").values())
        wait_for(deferred, 20, "sync_dir to defer while unmounted")
        assert os.listdir(mnt) == []	# the bare mount point stays empty
        ok, why = mount_tmpfs(mnt)
        assert ok, why
        mounted = True
        path = mnt / ACCOUNT / "R-MOUNT" / name
        wait_for(path.is_file, 30, "the copy once the share is back")
        assert path.read_bytes() == data
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)])


def test_https_certificate_is_verified(servers, tls_pair, tmp_path):
    """Over https the server's certificate is checked: a self-signed
    one is refused (deferred, nothing written) until ca_file names it."""
    dav = Nginx(users={DAV_USER: DAV_PASS}, tls=tls_pair).start()
    try:
        root = tmp_path / "share3"
        root.mkdir()
        srv = sync_server(servers, root, dav.url)
        srv.start()
        srv.add_account(ACCOUNT)
        addr = new_dossier(srv, "R-TLS")
        data = pdf("over verified TLS")
        send(srv, addr, [("tls.pdf", data, "application/pdf")])
        name = "%d-tls.pdf" % documents(srv, addr)[0][0]

        def refused():
            return any(r[0] == "pending" and "certificate" in r[2].lower()
                       for r in deliveries(srv, "sync_webdav").values())
        wait_for(refused, 20, "the self-signed certificate refused")
        assert dav.requests() == []	# no request got through TLS
        srv.stop_and_check()
        srv.sections["plugins"] = H.LcList(
            list(srv.sections["plugins"])[:1] +
            plugins(root, dav.url, ca_file=tls_pair[0]))
        srv.write_config()
        srv.start()
        path = dav_folder(dav, "R-TLS") / name
        wait_for(path.is_file, 30, "the copy once ca_file names the CA")
        assert path.read_bytes() == data
    finally:
        dav.stop()

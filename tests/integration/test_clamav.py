"""
test_clamav.py - the clamav plugin against a real clamd (clamd_peer.py:
private socket, a signature database the test writes): an infected
attachment is refused with 554 5.7.1 naming the file and the signature
(a body signature for EICAR, a hash signature for a test file), a clean
one is filed and marked "clean", a message/rfc822 inside is scanned
part by part, a zip is handed over whole (Postdoc never unpacks it:
clamd looks inside), and when clamd is down, stalled or over its
StreamMaxLength the setting decides: 451 4.7.1, or filed and marked
"unscanned".
"""
import socket
import threading
from email.message import EmailMessage
from email.policy import SMTP
import io
import zipfile

import pytest

import clamd_peer as C
import postdoc_harness as H

pytestmark = pytest.mark.skipif(not C.have_clamd(),
                                reason="clamd (clamav-daemon) not installed")

SENDER = H.CORPUS_CONTACT
ALLOW = H.GLOBAL_ALLOW + ["application/zip"]


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    d = C.Clamd(tmp_path_factory.mktemp("clamd")).start()
    yield d
    d.stop()


def clam_server(factory, socket_path, on_error="tempfail", timeout=10):
    """A serve whose plugins are clamav (first: malware is named as
    such) then filetype."""
    srv = factory(start=False)
    srv.sections["plugins"] = H.LcList([
        {"name": "clamav", "settings": {"socket": str(socket_path),
                                        "timeout": timeout,
                                        "on_error": on_error}},
        {"name": "filetype", "settings": {"allow": ALLOW}}])
    srv.write_config()
    srv.start()
    srv.add_account("ACME", "contact")
    return srv


def message(*files, subject="scan"):
    m = EmailMessage()
    m["From"] = SENDER
    m["To"] = "dossier"
    m["Subject"] = subject
    m.set_content("see attached\n")
    for name, data, ctype in files:
        main, sub = ctype.split("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return m


def send(srv, addr, m):
    data = m.as_bytes(policy=SMTP) if isinstance(m, EmailMessage) else m
    r, c = H.send_raw_message(srv.smtp_port, SENDER, [addr], data)
    c.close()
    return r


def scans(srv, addr):
    return {name: scan for name, scan in srv.query(
        "SELECT filename, scan FROM documents WHERE dossier_id = ?",
        srv.dossier_id(addr))}


def test_infected_body_signature_refused_naming_file_and_signature(
        servers, clamd):
    srv = clam_server(servers, clamd.socket)
    addr = srv.create_dossier("ACME")
    r = send(srv, addr, message(("facture.txt", C.EICAR, "text/plain"),
                                ("ok.pdf", H.make_pdf("a"),
                                 "application/pdf")))
    assert r.code == 554, r
    assert r.text.startswith("5.7.1"), r
    assert "facture.txt" in r.text and C.EICAR_SIG in r.text, r
    assert srv.db_count("documents") == 0


def test_infected_hash_signature_refused(servers, clamd):
    srv = clam_server(servers, clamd.socket)
    addr = srv.create_dossier("ACME")
    r = send(srv, addr, message(("releve.pdf", C.HASHED,
                                 "application/pdf")))
    assert r.code == 554 and C.HASHED_SIG in r.text, r
    assert "releve.pdf" in r.text, r
    assert srv.query("SELECT count(*) FROM documents WHERE dossier_id = ?",
                     srv.dossier_id(addr)) == [(0,)]


def test_clean_files_filed_and_marked_clean(servers, clamd):
    srv = clam_server(servers, clamd.socket)
    addr = srv.create_dossier("ACME")
    r = send(srv, addr, message(("a.pdf", H.make_pdf("clean-a"),
                                 "application/pdf"),
                                ("b.png", H.make_png("clean-b"),
                                 "image/png")))
    assert r.code == 250, r
    assert scans(srv, addr) == {"a.pdf": "clean", "b.png": "clean"}


def test_nested_message_rfc822_is_scanned(servers, clamd):
    srv = clam_server(servers, clamd.socket)
    addr = srv.create_dossier("ACME")
    inner = message(("inner.txt", C.EICAR, "text/plain"), subject="inner")
    outer = EmailMessage()
    outer["From"] = SENDER
    outer["To"] = "dossier"
    outer["Subject"] = "forwarded"
    outer.set_content("forwarding\n")
    outer.add_attachment(inner)
    r = send(srv, addr, outer)
    assert r.code == 554 and "inner.txt" in r.text, r
    assert C.EICAR_SIG in r.text, r


def test_zip_is_not_unpacked_clamd_looks_inside(servers, clamd):
    srv = clam_server(servers, clamd.socket)
    addr = srv.create_dossier("ACME")
    clean = io.BytesIO()
    with zipfile.ZipFile(clean, "w") as z:
        z.writestr("a.pdf", H.make_pdf("zipped"))
        z.writestr("b.txt", "hello\n")
    r = send(srv, addr, message(("docs.zip", clean.getvalue(),
                                 "application/zip")))
    assert r.code == 250, r
    rows = srv.query("SELECT filename, sniffed_type, scan FROM documents "
                     "WHERE dossier_id = ?", srv.dossier_id(addr))
    # One document, the archive itself: its members are not filed.
    assert rows == [("docs.zip", "application/zip", "clean")], rows
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("readme.txt", C.EICAR)
    r = send(srv, addr, message(("bad.zip", bad.getvalue(),
                                 "application/zip")))
    assert r.code == 554 and "bad.zip" in r.text, r
    assert C.EICAR_SIG in r.text, r


def test_clamd_down_tempfails_by_default(own_servers, tmp_path):
    srv = clam_server(own_servers, tmp_path / "no-clamd.sock")
    addr = srv.create_dossier("ACME")
    r = send(srv, addr, message(("a.pdf", H.make_pdf("down"),
                                 "application/pdf")))
    assert r.code == 451, r
    assert r.text.startswith("4.7.1") and "a.pdf" in r.text, r
    assert srv.db_count("messages") == 0


def test_clamd_down_accept_files_and_marks_unscanned(own_servers, tmp_path):
    srv = clam_server(own_servers, tmp_path / "no-clamd.sock",
                      on_error="accept")
    addr = srv.create_dossier("ACME")
    r = send(srv, addr, message(("a.pdf", H.make_pdf("accept"),
                                 "application/pdf")))
    assert r.code == 250, r
    assert scans(srv, addr) == {"a.pdf": "unscanned"}
    # The operator hears of it, not only through the marks.
    H.wait_for(lambda: "clamav: a.pdf not scanned" in srv.log_text(), 10,
               "the clamav warning in the log")
    assert "accepted, marked unscanned" in srv.log_text()


@pytest.fixture
def stalled_socket(tmp_path):
    """A Unix socket that accepts and never answers: a clamd too slow."""
    path = tmp_path / "stalled.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(s.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield path
    stop.set()
    t.join(5)
    for c in held:
        c.close()
    s.close()


def test_slow_clamd_times_out_as_a_temporary_error(own_servers,
                                                   stalled_socket):
    srv = clam_server(own_servers, stalled_socket, timeout=1)
    addr = srv.create_dossier("ACME")
    r = send(srv, addr, message(("slow.pdf", H.make_pdf("slow"),
                                 "application/pdf")))
    assert r.code == 451 and "slow.pdf" in r.text, r
    assert "in time" in r.text, r


def test_stream_max_length_is_an_error_the_setting_decides(
        own_servers, tmp_path):
    small = C.Clamd(tmp_path / "small", extra=["StreamMaxLength 2K"]).start()
    try:
        big = H.make_pdf("big" + "x" * 8000)
        srv = clam_server(own_servers, small.socket)
        addr = srv.create_dossier("ACME")
        r = send(srv, addr, message(("big.pdf", big, "application/pdf")))
        assert r.code == 451 and "size limit" in r.text, r
        srv2 = clam_server(own_servers, small.socket, on_error="accept")
        addr2 = srv2.create_dossier("ACME")
        r = send(srv2, addr2, message(("big.pdf", big, "application/pdf"),
                                      ("small.pdf", H.make_pdf("s"),
                                       "application/pdf")))
        assert r.code == 250, r
        assert scans(srv2, addr2) == {"big.pdf": "unscanned",
                                      "small.pdf": "clean"}
    finally:
        small.stop()

"""
A campaign's own content, as an editor uses it, through the real binary
and real peers: `campaign create --body FILE.md` (and every way the file
can be wrong), `campaign preview` (the exact message, nothing stored),
`campaign test` delivered through the smtp transport to Postfix's
smtp-sink and read back (subject "[TEST] ", List-Unsubscribe, a readable
text part, an HTML part without the body's <script> or javascript: link,
the purpose by its display name, in French and English), refused for a
suppressed and an erased address, never counted in the campaign;
`campaign list`; the API's body_markdown, list and test routes; and the
HTML part screenshotted in headless Chromium.
"""
import base64
import email
import email.policy
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import postdoc_harness as H
import smtp_peers
from postdoc_harness import T
from test_api import Api, new_token

FROM = "news@acme.example"
TEXT = "I agree to receive the ACME monthly letter.\n"
PRIVACY = "https://acme.example/privacy"
LABELS = {"fr": "Lettre mensuelle", "en": "Monthly letter"}

BODY = """# Spring opening hours

We are open **Monday to Friday**, from *9 to 18*. Read the
[details on our site](https://acme.example/hours) before you come.

- bring your ID card
- and a proof of address
  1. less than three months old

<script>alert("owned")</script>

[win a prize](javascript:alert(1))
"""


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
    srv = servers(start=False)
    srv.web_port = H.free_port()
    srv.api_port = H.free_port()
    srv.base = "http://127.0.0.1:%d" % srv.web_port
    srv.sections["outbound"] = {
        "transport": "smtp", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0}
    srv.sections["web"] = {"listen": "127.0.0.1:%d" % srv.web_port,
                           "base_url": srv.base}
    srv.sections["api"] = {"listen": "127.0.0.1:%d" % srv.api_port}
    srv.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris",
         "from_name": "ACME News", "from_addr": FROM,
         "privacy_url": PRIVACY}])
    srv.sections["plugins"] = H.LcList(list(srv.sections["plugins"]) + [
        {"name": "smtp", "settings": {
            "host": "127.0.0.1", "port": sink.port, "starttls": "none",
            "helo": "postdoc.test", "timeout": 20}}])
    srv.write_config()
    srv.start()
    H.wait_for(lambda: H._port_open(srv.api_port), 10, "API port")
    srv.add_account("ACME", "any")
    srv.cli("purpose", "add", "ACME", "monthly")
    pid = srv.query("SELECT id FROM purposes WHERE name = 'monthly'")[0][0]
    # the display names (`purpose add --label-fr` writes the same rows)
    con = sqlite3.connect(str(srv.var / "postdoc.db"), timeout=10)
    with con:
        for loc, label in LABELS.items():
            con.execute("INSERT INTO purpose_labels (purpose_id, locale,"
                        " label) VALUES (?, ?, ?)", (pid, loc, label))
    con.close()
    (srv.root / "consent.txt").write_text(TEXT)
    (srv.root / "news.md").write_text(BODY)
    return srv


def subscribe(srv, addr):
    srv.cli("consent", "grant", addr, "--account", "ACME", "--purpose",
            "monthly", "--text-file", srv.root / "consent.txt")
    srv.cli("contact", "attest", addr, "--account", "ACME", "--adult", "yes")


def create(srv, subject, locale, body="news.md"):
    return srv.cli_json("campaign", "create", "--account", "ACME",
                        "--purpose", "monthly", "--subject", subject,
                        "--body", srv.root / body, "--locale", locale)["id"]


def parts(msg):
    """(text, html) of a parsed message, decoded."""
    text = html = None
    for p in msg.walk():
        if p.get_content_type() == "text/plain" and text is None:
            text = p.get_content()
        elif p.get_content_type() == "text/html" and html is None:
            html = p.get_content()
    return text.replace("\r\n", "\n"), html.replace("\r\n", "\n")


def sink_messages(sink, subject):
    out = []
    for m in smtp_peers.read_sink_mail(sink.dir):
        if m is None:
            continue
        msg = email.message_from_bytes(m, policy=email.policy.default)
        if msg["Subject"] == subject:
            out.append(msg)
    return out


def state(srv):
    """What a preview must not change."""
    return [srv.db_count(t) for t in ("outbound", "campaign_recipients",
                                      "campaigns", "contacts")] + \
        [srv.query("SELECT group_concat(state) FROM campaigns")]


def check_rendered(msg, locale):
    """The message an editor expects: layout, label, sanitised body."""
    label = LABELS[locale]
    lu = " ".join(msg["List-Unsubscribe"].split())
    assert lu.startswith("<http://127.0.0.1:") and "<mailto:u-" in lu
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = parts(msg)
    # the text part reads like a letter, not like Markdown or HTML
    assert "Spring opening hours\n====================\n" in text
    flat = " ".join(text.split())        # the prose, whatever the wrapping
    assert "We are open Monday to Friday, from 9 to 18." in flat
    assert "details on our site <https://acme.example/hours>" in flat
    assert max(len(ln) for ln in text.splitlines()) <= 80
    assert "- bring your ID card\n- and a proof of address\n" \
        "  1. less than three months old\n" in text
    assert "**" not in text and "<script" not in text
    assert "javascript" not in text and "win a prize" in text
    assert "(%s)" % label in text and "monthly" not in text
    assert PRIVACY in text and "ACME SAS" in text
    # the HTML part: the body's structure, none of its hostile parts
    assert "<h1>Spring opening hours</h1>" in html
    assert "<strong>Monday to Friday</strong>" in html
    assert '<a href="https://acme.example/hours">details on our site</a>' \
        in html
    assert "<script" not in html and "javascript:" not in html
    assert 'alert("owned")' not in html
    assert "(%s)" % label in html and "(monthly)" not in html
    assert 'href="%s"' % PRIVACY in html
    assert '<html lang="%s">' % locale in html
    unsub = "Se désabonner" if locale == "fr" else "Unsubscribe"
    assert unsub in html
    return text, html


# ------------------------------------------------------------ create

def test_create_from_markdown_and_list(srv):
    cid = create(srv, "Spring news", "fr")
    show = srv.cli_json("campaign", "show", cid)
    assert show["template"] == "newsletter-body" and show["state"] == "draft"
    rows = srv.cli_json("campaign", "list", "--account", "ACME")
    row = [r for r in rows if r["id"] == cid][0]
    assert row["body"] == "markdown" and row["purpose"] == "monthly"
    assert row["purpose_label"] == LABELS["fr"]
    assert row["subject"] == "Spring news" and row["state"] == "draft"
    assert row["recipients"] == {} and row["messages"] == {}
    # the template route stays, and lists as such
    tid = srv.cli_json("campaign", "create", "--account", "ACME",
                       "--purpose", "monthly", "--subject", "Old way")["id"]
    rows = srv.cli_json("campaign", "list", "--account", "ACME")
    assert [r["id"] for r in rows][:2] == [tid, cid]     # newest first
    assert rows[0]["body"] == "template" and \
        rows[0]["template"] == "newsletter"
    # the text listing: one row each, label and subject on it
    out = srv.cli("campaign", "list", "--account", "ACME").stdout
    line = [ln for ln in out.splitlines() if ln.startswith("%d\t" % cid)][0]
    assert LABELS["fr"] in line and "Spring news" in line and "draft" in line


@pytest.mark.parametrize("name,content,why", [
    ("missing.md", None, "No such file or directory"),
    ("latin1.md", b"caf\xe9\n", "not valid UTF-8"),
    ("empty.md", b"", "empty"),
    ("blank.md", b"\n  \n\t\n", "empty"),
    ("nul.md", b"a\x00b\n", "NUL"),
    ("big.md", b"a" * (256 * 1024 + 1), "more than 256 KiB"),
    ("dir.md", "dir", "cannot be read"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "")
def test_create_body_file_errors_name_the_file(srv, name, content, why):
    path = srv.root / name
    if content == "dir":
        path.mkdir(exist_ok=True)
    elif content is not None:
        path.write_bytes(content)
    before = srv.db_count("campaigns")
    p = srv.cli("campaign", "create", "--account", "ACME", "--purpose",
                "monthly", "--subject", "S", "--body", path, check=False)
    assert p.returncode == 1, p
    assert str(path) in p.stderr and why in p.stderr, p.stderr
    assert srv.db_count("campaigns") == before


def test_body_and_template_exclude_each_other(srv):
    p = srv.cli("campaign", "create", "--account", "ACME", "--purpose",
                "monthly", "--subject", "S", "--body", srv.root / "news.md",
                "--template", "newsletter", check=False)
    assert p.returncode == 2 and "exclude each other" in p.stderr


# ------------------------------------------------------------ preview

def test_preview_is_the_message_and_changes_nothing(srv):
    cid = create(srv, "Preview news", "en")
    subscribe(srv, "reader@client.example")
    before = state(srv)
    p = srv.cli("campaign", "preview", cid, check=False)
    assert p.returncode == 0, p.stderr
    assert "unsubscribes nobody" in p.stderr        # a sample address
    msg = email.message_from_bytes(p.stdout.encode(),
                                   policy=email.policy.default)
    assert msg["Subject"] == "Preview news"
    assert msg["To"] == "reader@example.org"
    assert msg["From"] == "ACME News <%s>" % FROM
    check_rendered(msg, "en")
    # the sample's one-click link unsubscribes nobody: no contact has it
    url = re.search(r"<(http[^>]+)>", msg["List-Unsubscribe"]).group(1)
    req = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=T(10))
    assert 400 <= e.value.code < 500
    assert state(srv) == before
    # to a contact: her address and her own link, no note
    p = srv.cli("campaign", "preview", cid, "--to", "Reader@Client.example")
    assert "unsubscribes nobody" not in p.stderr
    mine = email.message_from_bytes(p.stdout.encode(),
                                    policy=email.policy.default)
    assert mine["To"] == "reader@client.example"
    assert mine["List-Unsubscribe"] != msg["List-Unsubscribe"]
    j = srv.cli_json("campaign", "preview", cid, "--to",
                     "reader@client.example")
    assert j["sample"] is False and j["locale"] == "en"
    assert j["subject"] == "Preview news"
    assert "details on our site" in j["text"]
    assert "<h1>Spring opening hours</h1>" in j["html"]
    assert j["message"].startswith("From:") or "Subject:" in j["message"]
    assert state(srv) == before
    assert srv.cli("campaign", "preview", "9999", check=False).returncode \
        == 1


# ------------------------------------------------------------ test copies

@pytest.mark.parametrize("locale,subject", [("fr", "Nouvelles de printemps"),
                                            ("en", "Spring letter")])
def test_test_copy_reaches_smtp_sink(srv, sink, locale, subject, tmp_path):
    cid = create(srv, subject, locale)
    subscribe(srv, "member-%s@client.example" % locale)
    show_before = srv.cli_json("campaign", "show", cid)
    p = srv.cli("campaign", "test", cid, "--to", "editor@acme.example")
    assert "test copy queued to editor@acme.example" in p.stdout
    got = H.wait_for(lambda: sink_messages(sink, "[TEST] " + subject),
                     30, "the test copy at smtp-sink")
    assert len(got) == 1
    msg = got[0]
    assert msg["To"] == "editor@acme.example"
    text, html = check_rendered(msg, locale)
    (tmp_path / "test-copy.eml").write_bytes(msg.as_bytes())
    # not counted: no recipient, no change of state or counts
    show = srv.cli_json("campaign", "show", cid)
    assert show == show_before and show["state"] == "draft"
    assert srv.query("SELECT count(*) FROM campaign_recipients WHERE"
                     " campaign_id = ?", cid)[0][0] == 0
    kinds = [o["kind"] for o in srv.cli_json("queue", "list")
             if o["rcpt"] == "editor@acme.example"]
    assert "campaign-test" in kinds and "newsletter" not in kinds


def test_test_copy_refused_for_suppressed_and_erased(srv):
    cid = create(srv, "Refusals", "en")
    subscribe(srv, "quiet@client.example")
    srv.cli("contact", "suppress", "quiet@client.example", "--account",
            "ACME", "--reason", "asked us")
    subscribe(srv, "gone@client.example")
    srv.cli("subject", "erase", "gone@client.example", "--account", "ACME")
    before = srv.db_count("outbound")
    p = srv.cli("campaign", "test", cid, "--to", "quiet@client.example",
                check=False)
    assert p.returncode == 1
    assert "quiet@client.example is suppressed" in p.stderr
    assert "asked us" in p.stderr
    p = srv.cli("campaign", "test", cid, "--to", "Gone@client.example",
                check=False)
    assert p.returncode == 1 and "was erased" in p.stderr, p.stderr
    assert srv.db_count("outbound") == before
    p = srv.cli("campaign", "test", cid, "--to", "not an address",
                check=False)
    assert p.returncode == 1 and "not a valid address" in p.stderr
    p = srv.cli("campaign", "test", cid, check=False)
    assert p.returncode == 2                          # --to is required


# ------------------------------------------------------------ the API

def test_api_body_markdown_list_and_test(srv):
    api = Api(srv.api_port, new_token(srv, "ACME", "editor"))
    _, _, c = api.call("POST", "/api/v1/campaigns", {
        "purpose": "monthly", "subject": "API news", "locale": "fr",
        "body_markdown": BODY}, expect=201)
    assert c["body"] == "markdown" and c["template"] == "newsletter-body"
    _, _, one = api.call("GET", "/api/v1/campaigns/%d" % c["id"],
                         expect=200)
    assert one["body"] == "markdown"
    _, _, lst = api.call("GET", "/api/v1/campaigns", expect=200)
    row = [r for r in lst["campaigns"] if r["id"] == c["id"]][0]
    assert row["purpose_label"] == LABELS["fr"] and row["body"] == "markdown"
    assert {r["body"] for r in lst["campaigns"]} == {"markdown", "template"}
    for bad in ({"body_markdown": "  \n"}, {"body_markdown": BODY,
                                           "template": "newsletter"},
                {"body_markdown": "a" * (256 * 1024 + 1)}):
        body = dict({"purpose": "monthly", "subject": "x"}, **bad)
        st, _, e = api.call("POST", "/api/v1/campaigns", body)
        assert st in (413, 422), (st, e)
        if st == 422:
            assert e["error"]["field"] == "body_markdown"
    _, _, t = api.call("POST", "/api/v1/campaigns/%d/test" % c["id"],
                       {"to": "editor-api@acme.example"}, expect=202)
    assert t["kind"] == "campaign-test" and t["outbound"] > 0
    srv.cli("contact", "suppress", "blocked@client.example", "--account",
            "ACME")
    st, _, e = api.call("POST", "/api/v1/campaigns/%d/test" % c["id"],
                        {"to": "blocked@client.example"})
    assert st == 409 and e["error"]["code"] == "not_deliverable"
    st, _, _ = api.call("POST", "/api/v1/campaigns/99999/test",
                        {"to": "editor-api@acme.example"})
    assert st == 404
    _, _, after = api.call("GET", "/api/v1/campaigns/%d" % c["id"],
                           expect=200)
    assert after["recipients"] == {} and after["state"] == "draft"


# ----------------------------------------------------- a real browser

def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_chromium_renders_the_html_part(srv, tmp_path):
    """The HTML part of a preview, opened in headless Chromium: the body's
    heading, list and link are there, no script ran, and a screenshot is
    kept (tmp_path/newsletter-<locale>.png)."""
    websocket = pytest.importorskip("websocket")
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not installed (scripts/bootstrap.sh)")
    pages = {}
    for locale in ("fr", "en"):
        cid = create(srv, "Screenshot %s" % locale, locale)
        j = srv.cli_json("campaign", "preview", cid)
        page = tmp_path / ("newsletter-%s.html" % locale)
        page.write_text(j["html"])
        pages[locale] = page
    port = H.free_port()
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--user-data-dir=%s" % (tmp_path / "profile"),
         "--remote-debugging-port=%d" % port, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=os.setpgrp)
    try:
        def targets():
            try:
                with urllib.request.urlopen(
                        "http://127.0.0.1:%d/json/list" % port) as r:
                    return [t for t in json.load(r) if t["type"] == "page"]
            except OSError:
                return None
        tg = H.wait_for(targets, 30, "chromium's DevTools port")
        ws = websocket.create_connection(tg[0]["webSocketDebuggerUrl"],
                                         timeout=T(20), suppress_origin=True)
        ids = iter(range(1, 10 ** 6))

        def cdp(method, **params):
            i = next(ids)
            ws.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                m = json.loads(ws.recv())
                if m.get("id") == i:
                    assert "error" not in m, m
                    return m.get("result", {})

        def js(expr):
            return cdp("Runtime.evaluate", expression=expr,
                       returnByValue=True)["result"].get("value")

        cdp("Page.enable")
        for locale, page in pages.items():
            cdp("Page.navigate", url=page.as_uri())
            H.wait_for(lambda: js("document.readyState == 'complete' && "
                                  "!!document.querySelector('h1')"),
                       15, "the newsletter page")
            assert js("document.querySelector('h1').innerText") == \
                "Spring opening hours"
            assert js("document.scripts.length") == 0
            assert js("document.querySelectorAll('li').length") == 3
            assert js("Array.from(document.links).map(a => a.href)"
                      ".filter(h => h.startsWith('javascript')).length") == 0
            assert js("document.documentElement.lang") == locale
            assert LABELS[locale] in js("document.body.innerText")
            shot = cdp("Page.captureScreenshot", format="png")["data"]
            png = tmp_path / ("newsletter-%s.png" % locale)
            png.write_bytes(base64.b64decode(shot))
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert png.stat().st_size > 5000
            keep = os.environ.get("POSTDOC_SCREENSHOTS")   # to look at
            if keep:
                shutil.copy(png, keep)
        ws.close()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_template_newsletter_names_the_purpose_by_its_label(srv):
    """The shipped `newsletter` template showed the purpose's internal id;
    it now shows its display name in the message's language."""
    for locale in ("fr", "en"):
        cid = srv.cli_json("campaign", "create", "--account", "ACME",
                           "--purpose", "monthly", "--subject", "Tmpl",
                           "--locale", locale)["id"]
        j = srv.cli_json("campaign", "preview", cid)
        assert "(%s)" % LABELS[locale] in j["text"], j["text"]
        assert "(%s)" % LABELS[locale] in j["html"]
        assert "(monthly)" not in j["text"] + j["html"]

"""
journey_lib.py - what the two dossier-journey suites share
(test_dossier_journey.py over SMTP and the CLI, test_dossier_journey_api.py
over the JSON API with curl): a `postdoc serve` with the file transport,
French and English identities and optionally a webhook receiver and the
API; Zoé, the client, sending mail with smtplib; the operator's CLI; the
messages Postdoc wrote, read back from the outbox by their outbound id;
the history's "key=value" details.

No mocks: everything goes through the real binary and real sockets.
"""
import email
import email.policy
import email.utils
import html
import json
import os
import pwd
import re
import smtplib
import subprocess
import time
import urllib.parse
from email.message import EmailMessage

import postdoc_harness as H
import webhook_receiver as W
from postdoc_harness import T

ACME_FROM = "onboarding@acme.example"
OTHER_FROM = "hello@other.example"
SECRET = "whsec-journey-0123456789abcdef"

ZOE_ADDR = "zoe@example.fr"
ZOE_NAME = "Zoé Martin"
ZOE = "%s <%s>" % (ZOE_NAME, ZOE_ADDR)

# The checklist of the journey: labels in Zoé's language, two required
# items (one with the types and size shown to her) and one optional.
ID_LABEL = "Pièce d'identité"
HOME_LABEL = "Justificatif de domicile"
BANK_LABEL = "Relevé d'identité bancaire"
ID_SLUG = "piece-d-identite"
HOME_SLUG = "justificatif-de-domicile"
BANK_SLUG = "releve-d-identite-bancaire"
LABELS = {ID_SLUG: ID_LABEL, HOME_SLUG: HOME_LABEL, BANK_SLUG: BANK_LABEL}

DUE = "2030-12-20"
DUE_FR = "20 décembre 2030"
REASON = "Le scan est coupé en bas de page"
QUESTION = ("Je n'ai pas de relevé bancaire récent, puis-je envoyer une "
            "attestation de ma banque à la place ?")
DAY = 86400
# Reminder n+1 is due reminder_days[n] days after the invitation: the
# journey reminds at +4 days (first), +9 (second) and +30 (a third would
# be due, but nothing is missing any more).
REMINDER_DAYS = "3,7,14"


def operator():
    """The CLI's actor: cli:<login name of the uid running it>."""
    return "cli:" + pwd.getpwuid(os.getuid()).pw_name


# ------------------------------------------------------------ server

def journey_server(factory, receiver=None, api=False):
    """A serve with the file transport (<outbox>/<outbound id>-<rcpt>.eml),
    accounts ACME (English by default: Zoé's French must come from her own
    language) and OTHER, reminders on REMINDER_DAYS, and optionally the
    webhook plugin posting to `receiver` and the JSON API."""
    srv = factory(start=False)
    srv.sections["outbound"] = {
        "transport": "file", "template_dir": str(H.SRCDIR / "templates"),
        "queue_interval_ms": 100, "retry_base": 1, "rate": 0,
        "reminder_days": REMINDER_DAYS}
    srv.sections["accounts"] = H.LcList([
        {"name": "ACME", "legal_name": "ACME SAS",
         "legal_address": "1 rue de la Paix, 75002 Paris", "locale": "en",
         "from_name": "ACME Onboarding", "from_addr": ACME_FROM},
        {"name": "OTHER", "legal_name": "Other Ltd",
         "legal_address": "2 High Street, London", "locale": "en",
         "from_name": "Other", "from_addr": OTHER_FROM}])
    plugins = list(srv.sections["plugins"]) + [
        {"name": "file", "settings": {"dir": str(srv.var / "outbox")}}]
    if receiver is not None:
        srv.sections["events"] = {"interval_ms": 100, "retry_base": 1,
                                  "retry_cap": 2, "max_age": 3600}
        plugins.append(W.webhook_plugin(SECRET, receiver))
    srv.sections["plugins"] = H.LcList(plugins)
    if api:
        srv.api_port = H.free_port()
        srv.sections["api"] = {"listen": "127.0.0.1:%d" % srv.api_port}
    srv.write_config()
    srv.start()
    if api:
        H.wait_for(lambda: H._port_open(srv.api_port), 10, "the API port")
    srv.add_account("ACME", "contact")
    srv.add_account("OTHER", "contact")
    return srv


# ------------------------------------------------------------ CLI

def show(srv, dossier_id):
    return srv.cli_json("dossier", "show", dossier_id)


def show_text(srv, dossier_id):
    return srv.cli("dossier", "show", dossier_id).stdout


def items_by_slug(shown):
    return {it["slug"]: it for it in shown["items"]}


def docs_by_name(shown):
    return {d["filename"]: d for d in shown["documents"]}


def events(shown, kind=None):
    ev = shown["events"]
    return [e for e in ev if kind is None or e["kind"] == kind]


def detail(text):
    """A history detail "k=v k=v reason=free text" as a dict (free text
    only as the last key, reason=)."""
    out = {}
    text = text or ""
    head, sep, reason = text.partition("reason=")
    if sep and (head == "" or head.endswith(" ")):
        out["reason"] = reason
        text = head
    for word in text.split():
        k, _, v = word.partition("=")
        out[k] = v
    return out


def refused(p, code=1):
    """A refusal: exit `code` (a set: any of them), one clear line on
    stderr, nothing on stdout."""
    codes = code if isinstance(code, (set, tuple)) else {code}
    assert p.returncode in codes, (p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines, "no error message on stderr"
    return p.stderr


# ------------------------------------------------------------ the queue

def queue(srv):
    return srv.cli_json("queue", "list")


def settle(srv, timeout=30):
    """The queue's rows once nothing is queued or being sent (serve's
    runner and the CLI's own attempt deliver through the file transport,
    which never defers)."""
    def quiet():
        rows = queue(srv)
        busy = [r for r in rows if r["state"] in ("queued", "sending")]
        return rows if not busy else None
    return H.wait_for(quiet, timeout, "the outbound queue to settle")


def parse_mail(path):
    return email.message_from_bytes(path.read_bytes(),
                                    policy=email.policy.default)


class Outbox:
    """The messages sent about one dossier, read from the file
    transport's outbox by outbound id; `new()` returns those not seen
    before, so each step checks exactly what it caused."""

    def __init__(self, srv, dossier_id):
        self.srv = srv
        self.did = dossier_id
        self.seen = set()

    def rows(self, kind=None):
        return [r for r in settle(self.srv) if r["dossier_id"] == self.did
                and (kind is None or r["kind"] == kind)]

    def mail(self, row):
        assert row["state"] == "sent", row
        p = self.srv.var / "outbox" / ("%d-%s.eml" % (row["id"],
                                                      row["rcpt"]))
        H.wait_for(p.exists, 10, "%s in the outbox" % p.name)
        return Mail(row, parse_mail(p))

    def new(self, kind=None):
        out = []
        for r in self.rows():
            if r["id"] in self.seen:
                continue
            if kind is not None and r["kind"] != kind:
                continue
            self.seen.add(r["id"])
            out.append(self.mail(r))
        return out

    def skip_all(self):
        self.seen |= {r["id"] for r in self.rows()}


class Mail:
    def __init__(self, row, msg):
        self.row = row
        self.msg = msg
        self.text = msg.get_body(("plain",)).get_content()
        h = msg.get_body(("html",))
        self.html_raw = h.get_content() if h is not None else ""
        self.html = html.unescape(self.html_raw)

    @property
    def kind(self):
        return self.row["kind"]

    def addr(self, header):
        v = self.msg[header]
        assert v is not None, "no %s header" % header
        return v.addresses[0].addr_spec.lower()

    def mailto(self):
        """The addresses of the HTML part's mailto: links."""
        return {urllib.parse.unquote(html.unescape(m)).lower() for m in
                re.findall(r'href="mailto:([^"?]*)', self.html_raw)}

    def __repr__(self):
        return "<%s #%s to %s: %s>\n%s" % (self.kind, self.row["id"],
                                          self.row["rcpt"],
                                          self.msg["Subject"], self.text)


def assert_french_to_zoe(m, dossier_address):
    """Written to Zoé in French, greeting her by name, signed with the
    account's identity and never 'Postdoc'."""
    assert m.addr("To") == ZOE_ADDR, m
    for body in (m.text, m.html) if m.html else (m.text,):
        assert "Bonjour" in body, m
        assert ZOE_NAME in body, m
        assert "Dear " not in body and "Hello" not in body, m
        assert "Postdoc" not in body, m
    assert "ACME SAS" in m.text, m
    if m.html:
        assert 'lang="fr"' in m.html_raw, m


# ------------------------------------------------------------ Zoé

def pdf(tag):
    return H.make_pdf(tag)


def mail_from_zoe(srv, rcpt, subject, text, files=(), headers=None,
                  mail_from=ZOE_ADDR, from_header=ZOE):
    """Zoé's mail client: one message to `rcpt` with `files` ((name,
    bytes) PDFs) attached, MAIL FROM her address.  Returns the 250's
    text (intake has filed the message when the 250 comes)."""
    m = EmailMessage()
    m["From"] = from_header
    m["To"] = rcpt
    m["Subject"] = subject
    m["Message-ID"] = email.utils.make_msgid(domain="example.fr")
    for k, v in (headers or {}).items():
        m[k] = v
    m.set_content(text)
    for name, data in files:
        m.add_attachment(data, maintype="application", subtype="pdf",
                         filename=name)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=T(30)) as s:
        s.ehlo("client.example.fr")
        s.mail(mail_from)
        code, reply = s.rcpt(rcpt)
        assert code == 250, (rcpt, code, reply)
        code, reply = s.data(m.as_bytes(policy=email.policy.SMTP))
        assert code == 250, (code, reply)
    return reply.decode("utf-8", "replace")


# ------------------------------------------------------------ webhooks

def hook_events(recv, ref, type_=None):
    """The webhook events the receiver accepted for dossier `ref`."""
    out = []
    for r in recv.snapshot():
        j = r["json"]
        if not j or r["answer"] != 200:
            continue
        d = j.get("dossier") or {}
        if d.get("ref") != ref:
            continue
        if type_ is None or j.get("type") == type_:
            assert W.verify(r, SECRET)
            out.append(j)
    return out


def wait_hook(recv, ref, type_, pred=lambda e: True, n=1, timeout=20):
    recv.wait_for(lambda rs: len([e for e in hook_events(recv, ref, type_)
                                  if pred(e)]) >= n,
                  timeout=timeout, what="%d x %s for %s" % (n, type_, ref))
    return [e for e in hook_events(recv, ref, type_) if pred(e)]


# ------------------------------------------------------------ curl

def curl(method, url, token=None, body=None, timeout=30):
    """The real curl: (status, parsed JSON or raw text)."""
    args = ["curl", "-sS", "--max-time", str(T(timeout)), "-X", method,
            "-w", "\n%{http_code}"]
    if token:
        args += ["-H", "Authorization: Bearer " + token]
    if body is not None:
        args += ["-H", "Content-Type: application/json",
                 "--data-binary", json.dumps(body)]
    p = subprocess.run(args + [url], capture_output=True, text=True,
                       timeout=T(timeout * 2))
    assert p.returncode == 0, p.stderr
    text, _, code = p.stdout.rpartition("\n")
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = text
    return int(code), data


def new_token(srv, account, name):
    tok = srv.cli("token", "create", "--account", account, "--name",
                  name).stdout.strip()
    assert tok.startswith("pdk_"), tok
    return tok


def wait_until(cond, what, timeout=20):
    return H.wait_for(cond, timeout, what)


def now():
    return int(time.time())

"""
corpus_driver.py - replays ../shared/corpus/smtp/*.bin against a live
server as smtp/manifest.json says, and checks each write's replies
against the manifest's "expect" text.

Expect grammar (as used by the manifest):
  "a | b"            alternatives
  "250,250,354"      a sequence of replies
  "500/502"          one reply, either code; "5xx" any 5yz
  "552 5.3.4"        code plus enhanced status code
  "X+close", "X then close"   the server closes after X
  "close"            the server closes without a reply
  "exactly-one-250-then-221"  250 then 221
  "..." per line / each       one reply per command line in the write
  ""                 no reply is expected to this write
  (...)              commentary, ignored - except "(FOO advertised)"
                     after an EHLO, which checks FOO is in the reply
Every write is sent with one sendall(); lockstep waits for the replies
of a write before the next one.  In firehose mode each step's bytes are
also one write (18 sends the whole session before the banner, 27 writes
STARTTLS and the injected commands together).
"""
import re
import socket
import time
from dataclasses import dataclass, field

import postdoc_harness as H
from postdoc_harness import T

DELAY_CAP = 0.5		# seconds; the test server's command_timeout is 2


@dataclass
class Spec:
    codes: tuple		# ("250",) or ("5xx",) or ("500", "502")
    enhanced: str = None

    def matches(self, r):
        ok = any(c == str(r.code) or (c.endswith("xx") and
                                      str(r.code)[0] == c[0])
                 for c in self.codes)
        return ok and (self.enhanced is None or r.enhanced == self.enhanced)

    def __repr__(self):
        return "/".join(self.codes) + (" " + self.enhanced
                                       if self.enhanced else "")


@dataclass
class Alt:
    kind: str = "seq"	# seq | none | per_line | each_then_421 |
    #                     rcpt_fanout | starttls | bad_commands
    seq: list = field(default_factory=list)
    close: bool = False
    advertised: list = field(default_factory=list)
    text: str = ""

    def __repr__(self):
        return "%s%s%s" % (self.kind + ":" if self.kind != "seq" else "",
                           self.seq, "+close" if self.close else "")


CODE_RE = re.compile(r"\b([2-5](?:\d\d|xx))\b")
ENH_RE = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


def _spec(part):
    """'500/502 5.5.2' -> Spec(('500','502'), '5.5.2')"""
    m = re.match(r"\s*([2-5](?:\d\d|xx)(?:/[2-5](?:\d\d|xx))*)(.*)$", part)
    if not m:
        return None
    codes = tuple(m.group(1).split("/"))
    e = ENH_RE.match(m.group(2))
    return Spec(codes, e.group(1) if e else None)


def parse_alt(text):
    raw = text.strip()
    adv = re.findall(r"\((\w+)(?: nnn)? advertised\)", raw)
    t = re.sub(r"\([^)]*\)", " ", raw).strip()
    if t == "":
        return Alt("none", text=raw)
    if "for the valid dossier" in t:
        return Alt("rcpt_fanout", text=raw)
    if "then TLS handshake" in t:
        return Alt("starttls", [Spec(("220",))], text=raw)
    if "then bytes are bad commands" in raw:
        return Alt("bad_commands", [_spec(t)], text=raw)
    # For "one reply per line" the corpus suggests 5.5.2 (syntax error)
    # where RFC 3463 also allows 5.5.1 (invalid command), which is what
    # our contract answers to an unknown verb: check only the code.
    if "each, then 421" in t:
        return Alt("each_then_421", [Spec(_spec(t).codes)], close=True,
                   text=raw)
    if "per line" in t:
        return Alt("per_line", [Spec(_spec(t).codes)], text=raw)
    if t == "exactly-one-250-then-221":
        return Alt("seq", [Spec(("250",)), Spec(("221",))], text=raw)
    close = bool(re.search(r"\+\s*close|then close", t)) or t == "close"
    t = re.sub(r"\+\s*close|then close", " ", t)
    if t.strip() == "close":
        return Alt("seq", [], close=True, text=raw)
    if t.startswith("per policy"):
        codes = tuple(sorted(set(["250"] + CODE_RE.findall(t))))
        return Alt("seq", [Spec(codes)], text=raw)
    seq = []
    for part in t.split(","):
        s = _spec(part)
        if s is None:
            raise ValueError("cannot parse expect %r" % text)
        seq.append(s)
    return Alt("seq", seq, close=close, advertised=adv, text=raw)


def parse_expect(text):
    return [parse_alt(a) for a in text.split(" | ")]


def command_lines(data):
    return data.count(b"\r\n")


class StepFailure(AssertionError):
    pass


@dataclass
class StepResult:
    index: int
    sent: bytes
    replies: list
    closed: bool
    alt: Alt = None
    unsolicited: bytes = b""


class Session:
    """Drives one manifest entry; results are kept for invariant checks."""

    def __init__(self, srv, name, entry, data):
        self.srv, self.name, self.entry, self.data = srv, name, entry, data
        self.results = []
        self.closed = False
        self.conn = None
        self.data_250 = []	# raw messages the server said 250 to
        self.ehlo = None
        self.t_banner = None
        self.t_closed = None
        self.async_replies = []	# replies to "" steps, with arrival time

    def fail(self, msg):
        raise StepFailure("%s: %s\nsteps so far: %s" % (
            self.name, msg, [(r.index, r.replies, r.closed)
                             for r in self.results]))

    # -- reading

    def _reply(self, timeout):
        try:
            r = self.conn.reply(timeout)
        except socket.timeout:
            return "timeout"
        if r is None:
            self.closed = True
            self.t_closed = time.monotonic()
        return r

    def _wait_close(self, timeout=None):
        try:
            ok = self.conn.wait_closed(timeout or T(5))
        except H.ProtocolError as e:
            return str(e)
        if ok:
            self.closed = True
            self.t_closed = time.monotonic()
            return None
        return "server did not close within %ss" % (timeout or T(5))

    # -- expectations

    def _match_seq(self, alts, step, quit_in_write, timeout):
        replies = []
        while True:
            live = [a for a in alts if len(a.seq) >= len(replies) and
                    all(s.matches(r) for s, r in zip(a.seq, replies))]
            if not live:
                self.fail("step %d: replies %s match none of %s"
                          % (step, replies, alts))
            done = [a for a in live if len(a.seq) == len(replies)]
            for a in done:
                if not a.close:
                    return replies, a
            if done:
                # "+close": the server must close now.  When the write
                # itself ended with QUIT, the 221 for it may come first.
                a = done[0]
                r = self._reply(T(5))
                if r is None:
                    return replies, a
                if r == "timeout":
                    self.fail("step %d: expected %s, then close; the "
                              "server stayed open" % (step, a))
                if quit_in_write and r.code == 221:
                    err = self._wait_close()
                    if err:
                        self.fail("step %d: after 221: %s" % (step, err))
                    return replies + [r], a
                replies.append(r)
                continue
            if self.closed:
                self.fail("step %d: server closed after %s; expected %s"
                          % (step, replies, alts))
            r = self._reply(timeout)
            if r == "timeout":
                self.fail("step %d: no reply within %ss after %s; "
                          "expected %s" % (step, timeout, replies, alts))
            if r is None:
                continue
            replies.append(r)

    def _per_line(self, alt, step, n, timeout):
        replies = []
        while len(replies) < n:
            r = self._reply(timeout)
            if r == "timeout":
                self.fail("step %d: %d of %d replies, then silence"
                          % (step, len(replies), n))
            if r is None:
                break
            replies.append(r)
        for i, r in enumerate(replies):
            if alt.seq[0].matches(r):
                continue
            last = i == len(replies) - 1
            if alt.kind in ("per_line", "each_then_421") and last and \
                    r.code == 421 and r.enhanced == "4.7.0":
                err = self._wait_close()
                if err:
                    self.fail("step %d: 421 without close: %s" % (step, err))
                break
            self.fail("step %d: reply %d of %d is %s, expected %s"
                      % (step, i + 1, n, r, alt.seq[0]))
        if alt.kind == "each_then_421":
            if not replies or replies[-1].code != 421:
                self.fail("step %d: no 421 4.7.0 after %d errors: %s"
                          % (step, len(replies), replies[-3:]))
            if not self.closed:
                err = self._wait_close()
                if err:
                    self.fail("step %d: 421 without close: %s" % (step, err))
            limit = self.srv.limits["error_limit"]
            if len(replies) - 1 > limit + 1:
                self.fail("step %d: %d errors before 421 (error_limit %d)"
                          % (step, len(replies) - 1, limit))
        elif len(replies) < n and not self.closed:
            self.fail("step %d: %d replies for %d lines" % (step,
                                                             len(replies), n))
        return replies

    def _bad_commands(self, alt, step, n, timeout):
        replies = []
        while len(replies) < n:
            r = self._reply(timeout)
            if r == "timeout":
                self.fail("step %d: %d of %d replies, then silence"
                          % (step, len(replies), n))
            if r is None:
                self.fail("step %d: closed after %s" % (step, replies))
            replies.append(r)
        if not alt.seq[0].matches(replies[0]):
            self.fail("step %d: first reply %s, expected %s"
                      % (step, replies[0], alt.seq[0]))
        return replies

    def _rcpt_fanout(self, step, lines, timeout):
        """22: 250 for the corpus dossier, 550 5.1.1 for unknown tokens
        among the first N (N >= 100), 452 4.5.3 for the rest; a 421 after
        at least 100 rejections (rcpt_reject_limit) is acceptable."""
        replies = []
        first_452 = None
        for i, line in enumerate(lines):
            r = self._reply(timeout)
            if r == "timeout":
                self.fail("step %d: silence after %d RCPT replies"
                          % (step, len(replies)))
            if r is None:
                break
            replies.append(r)
            valid = H.CORPUS_ADDRESS.encode() in line
            if r.code == 421 and r.enhanced == "4.7.0" and i >= 100:
                err = self._wait_close()
                if err:
                    self.fail("step %d: 421 without close" % step)
                break
            if first_452 is not None:
                if (r.code, r.enhanced) != (452, "4.5.3"):
                    self.fail("step %d: RCPT %d after 452s got %s"
                              % (step, i, r))
                continue
            if (r.code, r.enhanced) == (452, "4.5.3"):
                if i < 100:
                    self.fail("step %d: 452 already at RCPT %d (< 100)"
                              % (step, i))
                first_452 = i
                continue
            want = (250, None) if valid else (550, "5.1.1")
            if r.code != want[0] or (want[1] and r.enhanced != want[1]):
                self.fail("step %d: RCPT %d (%r) got %s" % (step, i,
                                                            line[:60], r))
        return replies

    def _starttls(self, step, timeout):
        r = self._reply(timeout)
        if r in ("timeout", None):
            self.fail("step %d: no reply to STARTTLS" % step)
        if 500 <= r.code < 600:
            err = self._wait_close()
            if err:
                self.fail("step %d: STARTTLS refused without close" % step)
            return [r]
        if (r.code, r.enhanced) != (220, "2.0.0"):
            self.fail("step %d: STARTTLS got %s" % (step, r))
        # Now the server waits for a TLS ClientHello.  The injected
        # plaintext must never be answered: nothing that looks like an
        # SMTP reply may arrive (a TLS alert or a close is fine).
        extra = self.conn.pending(1.0)
        if re.search(rb"(^|\r\n)\d{3}[ -]", extra):
            self.fail("step %d: plaintext answered after STARTTLS: %r"
                      % (step, extra[:200]))
        return [r]

    # -- the run

    def run(self):
        steps = self.entry["steps"]
        firehose = self.entry.get("mode") == "firehose"
        first = steps[0]
        self.conn = H.Conn(self.srv.smtp_port, banner=False,
                           timeout=T(10))
        try:
            for i, st in enumerate(steps):
                if self.closed:
                    break
                self._step(i, st, firehose)
            self._finish()
        finally:
            self.conn.close()
        return self

    def _step(self, i, st, firehose):
        chunk = self.data[st["offset"]:st["offset"] + st["length"]]
        alts = parse_expect(st["expect"])
        timeout = T(30) if len(chunk) > 100000 else T(10)
        delay = st.get("delay_ms")
        if delay:
            self._collect_async(min(delay / 1000.0, DELAY_CAP))
        if st["length"] == 0 and i == 0:
            r = self._reply(T(10))
            if r in ("timeout", None) or r.code != 220:
                self.fail("no 220 banner: %r" % (r,))
            self.t_banner = time.monotonic()
            self.results.append(StepResult(i, b"", [r], False, alts[0]))
            return
        ok = self.conn.send(chunk)
        then = st.get("then", "")
        if then.startswith("half-close"):
            try:
                self.conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        elif then.startswith("close"):
            self.conn.close()
            self.closed = True
            self.results.append(StepResult(i, chunk, [], True, alts[0]))
            return
        if not ok:
            # The server had closed; whatever it said before is still
            # readable, and an expectation must allow the close.
            pass
        kinds = {a.kind for a in alts}
        lines = chunk.split(b"\r\n")[:-1]
        in_data = bool(self.results) and self.results[-1].replies and \
            self.results[-1].replies[-1].code == 354
        if kinds == {"none"}:
            self.results.append(StepResult(i, chunk, [], self.closed,
                                           alts[0]))
            return
        if kinds == {"rcpt_fanout"}:
            replies = self._rcpt_fanout(i, lines, timeout)
            alt = alts[0]
        elif kinds & {"per_line", "each_then_421"}:
            alt = alts[0]
            replies = self._per_line(alt, i, len(lines), timeout)
        elif "bad_commands" in kinds:
            # "250 | 502 (then bytes are bad commands)": the first reply is
            # any of the alternatives', then one reply per further line.
            codes = tuple(c for a in alts for s in a.seq for c in s.codes)
            alt = Alt("bad_commands", [Spec(codes)], text=st["expect"])
            replies = self._bad_commands(alt, i, len(lines), timeout)
        elif "starttls" in kinds:
            replies = self._starttls(i, timeout)
            alt = alts[0]
        else:
            quit_in_write = chunk.rstrip(b"\r\n").upper().endswith(b"QUIT")
            replies, alt = self._match_seq(alts, i, quit_in_write, timeout)
        if alt.advertised:
            kw = H.ehlo_keywords(replies[0])
            for word in alt.advertised:
                if word not in kw:
                    self.fail("step %d: %s not advertised: %s"
                              % (i, word, replies[0].lines))
        if replies and replies[0].lines and \
                self.results and len(self.results) == 1:
            self.ehlo = replies[0]
        if in_data and replies and replies[0].code == 250:
            self.data_250.append(message_from_data(chunk))
        self.results.append(StepResult(i, chunk, replies, self.closed, alt))

    def _collect_async(self, wait):
        """Sleep `wait` seconds, collecting replies that arrive meanwhile
        (e.g. a timeout's 421) instead of letting them block a write."""
        end = time.monotonic() + wait
        while time.monotonic() < end and not self.closed:
            try:
                r = self.conn.reply(max(0.01, end - time.monotonic()))
            except socket.timeout:
                break
            if r is None:
                self.closed = True
                self.t_closed = time.monotonic()
                break
            self.async_replies.append((time.monotonic(), r))
        time.sleep(max(0.0, end - time.monotonic()))

    def _finish(self):
        """After the last step: the session must end (QUIT -> close, or
        an earlier close) with no reply the steps did not account for."""
        if self.closed:
            return
        last = self.results[-1] if self.results else None
        expects_end = last and last.replies and last.replies[-1].code == 221
        if self.name.startswith("25_"):
            return  # checked by the slowloris invariants
        if expects_end:
            err = self._wait_close()
            if err:
                self.fail("after 221: %s" % err)
        else:
            extra = self.conn.pending(0.3)
            if extra:
                self.fail("unexpected bytes after the last step: %r"
                          % extra[:300])


def message_from_data(chunk):
    """The message the server must store for a DATA write that got 250:
    up to the first CRLF.CRLF, dot-unstuffed."""
    if chunk.startswith(b".\r\n"):
        return b""
    end = chunk.find(b"\r\n.\r\n")
    assert end >= 0, "250 after DATA without a terminator in the write?"
    body = chunk[:end + 2]
    lines = body.split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)

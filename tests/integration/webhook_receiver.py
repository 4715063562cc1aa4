"""
webhook_receiver.py - a real local HTTP endpoint for the webhook plugin:
http.server in a thread on 127.0.0.1:<free port>, recording every request
(headers, body, what it answered).  What it answers is decided per request
by a policy: a callable(request) -> int status, or "hang" (hold the request
until released, so the plugin's timeout fires), shared by test_webhook.py
and test_events.py.
"""
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import postdoc_harness as H


class Receiver:
    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.policy = lambda req: 200
        self.release = threading.Event()
        self.hanging = threading.Event()
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                req = {"path": self.path, "headers": dict(self.headers),
                       "body": body, "at": time.monotonic()}
                try:
                    req["json"] = json.loads(body)
                except ValueError:
                    req["json"] = None
                answer = recv.policy(req)
                req["answer"] = answer
                with recv.lock:
                    recv.requests.append(req)
                if answer == "hang":
                    recv.hanging.set()
                    recv.release.wait(60)
                    answer = 200
                try:
                    self.send_response(answer)
                    if 300 <= answer < 400:
                        self.send_header("Location", recv.url + "?moved")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass	# the plugin gave up (timeout): expected

            def log_message(self, *a):
                pass

        # Port 0: the kernel's choice is ours at once (a port picked
        # first and bound later may be taken by then).
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/hooks/postdoc" % self.port
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def wait_for(self, pred, timeout=20, what="a request"):
        """The requests once pred(requests) holds; fails after timeout."""
        deadline = time.monotonic() + H.T(timeout)
        while time.monotonic() < deadline:
            reqs = self.snapshot()
            if pred(reqs):
                return reqs
            time.sleep(0.05)
        raise AssertionError("receiver: no %s within %ss; got %r" % (
            what, timeout, [(r["headers"].get("Postdoc-Event"),
                             r["headers"].get("Postdoc-Event-Id"),
                             r["answer"]) for r in self.snapshot()]))

    def accepted(self, type_=None):
        return [r for r in self.snapshot() if r["answer"] in (200, "hang")
                and (type_ is None or r["json"]["type"] == type_)]


def verify(req, secret, tolerance=300):
    """The receiver's side of Postdoc-Signature (docs/webhooks.md)."""
    sig = req["headers"]["Postdoc-Signature"]
    parts = dict(p.split("=", 1) for p in sig.split(","))
    t = int(parts["t"])
    assert abs(time.time() - t) <= tolerance, "stale signature %r" % sig
    want = hmac.new(secret.encode(), b"%d." % t + req["body"],
                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts["v1"])


def webhook_plugin(secret, receiver, account="ACME", timeout=1):
    return {"name": "webhook", "settings": {
        "endpoints": H.LcList([{"account": account, "url": receiver.url,
                                "secret": secret}]),
        "timeout": timeout}}


def delivery_rows(srv, consumer="webhook"):
    with srv.db() as c:
        return c.execute("SELECT d.event_id, d.state, d.attempts, e.kind"
                         " FROM event_deliveries d LEFT JOIN events e ON"
                         " e.id = d.event_id WHERE d.consumer = ?"
                         " ORDER BY d.id", (consumer,)).fetchall()

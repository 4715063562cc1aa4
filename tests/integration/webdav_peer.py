"""
webdav_peer.py - a real WebDAV server for the sync tests: Debian's nginx
(nginx-extras, built with the DAV module) with a private config on a
loopback high port, its document root, logs and temp files in its own
directory, optional basic auth from an htpasswd made with `openssl
passwd -apr1`.  It runs in the foreground (daemon off), dies with the
test runner (PDEATHSIG), has a watchdog, and can be stopped and started
again on the same port to play an outage.

The access log records "METHOD URI STATUS" per request so a test can
check what the plugin asked for (no DELETE, no PROPFIND, no PUT twice).
"""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import postdoc_harness as H

NGINX = "/usr/sbin/nginx"
FOLDER = "postdoc"	# the dedicated folder: http://127.0.0.1:PORT/postdoc/


class _PortTaken(Exception):
    pass


class Nginx:
    def __init__(self, users=None, tls=None):
        self.tls = tls		# (cert, key) paths: https instead of http
        self.root = Path(tempfile.mkdtemp(prefix="postdoc-webdav-"))
        os.chmod(self.root, 0o755)
        self.port = H.free_port()
        self.users = dict(users or {})
        self.www = self.root / "www"
        self.folder = self.www / FOLDER
        self.folder.mkdir(parents=True)
        self.access_log = self.root / "access.log"
        self.error_log = self.root / "error.log"
        self.proc = None
        self._watchdog = None
        self._started = False
        self._write_config()

    @property
    def url(self):
        return "%s://127.0.0.1:%d/%s/" % ("https" if self.tls else "http",
                                          self.port, FOLDER)

    def _htpasswd(self):
        lines = []
        for user, password in self.users.items():
            out = subprocess.run(["openssl", "passwd", "-apr1", password],
                                 capture_output=True, text=True, check=True)
            lines.append("%s:%s" % (user, out.stdout.strip()))
        (self.root / "htpasswd").write_text("\n".join(lines) + "\n")

    def _write_config(self):
        r = self.root
        auth = ""
        if self.users:
            self._htpasswd()
            auth = ('auth_basic "postdoc test";\n'
                    '      auth_basic_user_file %s/htpasswd;' % r)
        # Workers run as root when we are root, so they can write the
        # private directory; otherwise as ourselves (no user directive).
        user = "user root root;" if os.geteuid() == 0 else ""
        ssl = ""
        if self.tls:
            ssl = ("ssl_certificate %s;\n    ssl_certificate_key %s;"
                   % (self.tls[0], self.tls[1]))
        conf = """
{user}
daemon off;
master_process on;
worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/error.log info;
events {{ worker_connections 64; }}
http {{
  log_format dav '$request_method $request_uri $status';
  access_log {r}/access.log dav;
  client_body_temp_path {r}/body;
  proxy_temp_path {r}/proxy;
  fastcgi_temp_path {r}/fastcgi;
  uwsgi_temp_path {r}/uwsgi;
  scgi_temp_path {r}/scgi;
  client_max_body_size 64m;
  server {{
    listen 127.0.0.1:{port}{ssl_flag};
    server_name localhost;
    {ssl}
    location / {{
      root {r}/www;
      dav_methods PUT DELETE MKCOL COPY MOVE;
      create_full_put_path off;
      dav_access user:rw group:r;
      {auth}
    }}
  }}
}}
""".format(user=user, r=r, port=self.port, auth=auth, ssl=ssl,
           ssl_flag=" ssl" if self.tls else "")
        self.conf = r / "nginx.conf"
        self.conf.write_text(conf)

    def start(self, timeout=30):
        """Start nginx.  On its first start a port taken since free_port()
        is not the test's failure: pick another and try again (a later
        start keeps the port: the server under test knows the URL)."""
        for attempt in range(5):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                if self._started or attempt == 4:
                    raise AssertionError("nginx: port %d taken" % self.port)
                self.port = H.free_port()
                self._write_config()

    def _start_once(self, timeout):
        log = open(self.root / "stderr.log", "ab")
        # -e: the startup error log too, before the config is read.
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(self.conf), "-p", str(self.root),
             "-e", str(self.error_log)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            preexec_fn=H._die_with_parent)
        log.close()
        deadline = time.monotonic() + H.T(timeout)
        while not H._port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(remove=False)
                if b"Address already in use" in self._logs():
                    raise _PortTaken()
                raise AssertionError("nginx did not start:\n%s\n%s" % (
                    (self.root / "stderr.log").read_text(errors="replace"),
                    self.error_log.read_text(errors="replace")
                    if self.error_log.exists() else ""))
            time.sleep(0.05)
        self._started = True
        self._watchdog = threading.Timer(600, self._kill)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def _logs(self):
        out = b""
        for p in (self.root / "stderr.log", self.error_log):
            try:
                out += p.read_bytes()
            except OSError:
                pass
        return out

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self, remove=True):
        """SIGTERM (fast shutdown) and wait; the port is closed on
        return.  remove=False keeps the files for a later start()."""
        if self._watchdog:
            self._watchdog.cancel()
            self._watchdog = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
                self.proc.wait(timeout=10)
        if self.proc is not None:
            try:	# workers left behind by a killed master
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc = None
        deadline = time.monotonic() + 10
        while H._port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def requests(self):
        """[(method, uri, status)] from the access log, in order."""
        try:
            text = self.access_log.read_text(errors="replace")
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            parts = line.split(" ")
            if len(parts) == 3:
                out.append((parts[0], parts[1], int(parts[2])))
        return out

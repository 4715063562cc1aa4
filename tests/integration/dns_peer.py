"""
dns_peer - a real authoritative DNS server (nsd) on a loopback port the
test picks, serving zones the test writes: SPF, DKIM key and DMARC TXT
records for test domains.  Postdoc resolves through it with
dns.server = "127.0.0.1@PORT" (libunbound forwarding to it).

    peer = NsdPeer(tmp_path / "dns", {"example.fr": [
        ("@", "TXT", "v=spf1 ip4:127.0.0.1 -all")]})
    peer.start(); ...; peer.stop()

Started as root with no chroot, no user switch and no database file
(/work/shared/notes/libraries.md); stopped with SIGTERM by the test.
"""
import os
import signal
import subprocess
from pathlib import Path

import postdoc_harness as H

NSD = "/usr/sbin/nsd"


def txt_rdata(text):
    """A TXT value as quoted character-strings of at most 255 octets
    (RFC 1035 3.3.14): DKIM keys are longer than one."""
    chunks = [text[i:i + 250] for i in range(0, len(text), 250)] or [""]
    return " ".join('"%s"' % c.replace("\\", "\\\\").replace('"', '\\"')
                    for c in chunks)


class NsdPeer:
    def __init__(self, root, zones):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.zones = zones
        self.proc = None
        self.port = None

    @property
    def server(self):
        """The value for Postdoc's dns.server."""
        return "127.0.0.1@%d" % self.port

    def _zone_text(self, name, records):
        lines = ["$ORIGIN %s." % name, "$TTL 60",
                 "@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60"
                 % (name, name),
                 "@ IN NS ns.%s." % name,
                 "ns IN A 127.0.0.1"]
        for owner, rtype, value in records:
            if rtype == "TXT":
                value = txt_rdata(value)
            lines.append("%s IN %s %s" % (owner, rtype, value))
        return "\n".join(lines) + "\n"

    def _write(self):
        conf = ["server:",
                "  ip-address: 127.0.0.1@%d" % self.port,
                '  username: ""', '  chroot: ""', '  database: ""',
                "  zonesdir: %s" % self.root,
                "  pidfile: %s" % (self.root / "nsd.pid"),
                "  xfrdfile: %s" % (self.root / "xfrd.state"),
                "  zonelistfile: %s" % (self.root / "zone.list"),
                "  logfile: %s" % (self.root / "nsd.log"),
                "  server-count: 1", "  do-ip6: no", "  verbosity: 1",
                "remote-control:", "  control-enable: no"]
        for name, records in self.zones.items():
            path = self.root / ("%s.zone" % name)
            path.write_text(self._zone_text(name, records))
            conf += ["zone:", "  name: %s" % name,
                     "  zonefile: %s" % path]
        (self.root / "nsd.conf").write_text("\n".join(conf) + "\n")

    def _answers(self):
        import dns.message
        import dns.query
        name = next(iter(self.zones))
        q = dns.message.make_query(name, "SOA")
        try:
            r = dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.5)
        except Exception:
            return False
        return len(r.answer) > 0

    def start(self):
        for _ in range(5):
            self.port = H.free_port()
            self._write()
            log = open(self.root / "nsd.out", "ab")
            self.proc = subprocess.Popen(
                [NSD, "-d", "-c", str(self.root / "nsd.conf")],
                stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=H._die_with_parent)
            log.close()
            H.wait_for(lambda: self.proc.poll() is not None
                       or self._answers(), 15, "nsd to answer")
            if self.proc.poll() is None:
                return self
            self.stop()
        raise AssertionError("nsd did not start: %s" %
                             (self.root / "nsd.out").read_text()[-2000:])

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

"""
Issue 16, defect 5: the HTTP listeners (web.listen: unsubscribe and
preference pages; api.listen: the JSON API and /metrics) were filled by
idle sockets from a few addresses.  Each listener now takes
connections_per_ip_max and idle_timeout from the configuration
(libmicrohttpd's MHD_OPTION_PER_IP_CONNECTION_LIMIT and
MHD_OPTION_CONNECTION_TIMEOUT).  On real sockets: idle connections from
127.0.0.1 past the limit are refused while another loopback address,
127.0.0.2, is still served; the idle ones are closed by the server after
the timeout (the test waits on the close), and 127.0.0.1 is served again.
"""
import select
import socket
import time

import pytest

import postdoc_harness as H
from postdoc_harness import T

PER_IP, IDLE = 4, 3


@pytest.fixture(scope="module")
def srv(servers):
    s = servers(start=False)
    s.api_port, s.web_port = H.free_port(), H.free_port()
    while s.web_port == s.api_port:
        s.web_port = H.free_port()
    s.sections["api"] = {"listen": "127.0.0.1:%d" % s.api_port,
                         "connections_per_ip_max": PER_IP,
                         "idle_timeout": IDLE}
    s.sections["web"] = {"listen": "127.0.0.1:%d" % s.web_port,
                         "base_url": "http://127.0.0.1:%d" % s.web_port,
                         "connections_per_ip_max": PER_IP,
                         "idle_timeout": IDLE}
    s.write_config()
    s.start()
    for port in (s.api_port, s.web_port):
        H.wait_for(lambda: H._port_open(port), 10, "port %d" % port)
    return s


def connect(port, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_by_server(s):
    """True once the server has closed s (EOF or reset); never blocks."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def http_get(port, path, source):
    """The status line of GET path from `source`, or None if the
    connection is closed without an answer."""
    s = connect(port, source)
    s.settimeout(T(10))
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Connection: close\r\n\r\n" % path.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return data.split(b"\r\n", 1)[0].decode() if data else None


@pytest.mark.parametrize("listener,path", [("api", "/metrics"),
                                           ("web", "/u/nothing")])
def test_per_address_limit_and_idle_timeout(srv, listener, path):
    port = srv.api_port if listener == "api" else srv.web_port
    # (no request from 127.0.0.1 first: a finished connection may still
    # count against its address for a moment after the close)
    assert http_get(port, path, "127.0.0.2").startswith("HTTP/1.1 ")
    t0 = time.monotonic()
    idle = [connect(port) for _ in range(PER_IP + 1)]
    try:
        # one past the limit is refused (closed without a word), the
        # others stay open...
        H.wait_for(lambda: sum(map(closed_by_server, idle)) >= 1, 5,
                   "the connection past the limit to be closed")
        open_ = [s for s in idle if not closed_by_server(s)]
        assert len(open_) == PER_IP, len(open_)
        # ...while the same address cannot get an answer, another can
        assert http_get(port, path, "127.0.0.1") is None
        assert http_get(port, path, "127.0.0.2").startswith("HTTP/1.1 ")
        # the idle ones are closed by the server after idle_timeout
        H.wait_for(lambda: all(closed_by_server(s) for s in open_),
                   IDLE + T(10), "the idle connections to be closed")
        assert time.monotonic() - t0 >= IDLE - 0.5
        assert http_get(port, path, "127.0.0.1").startswith("HTTP/1.1 ")
    finally:
        for s in idle:
            s.close()

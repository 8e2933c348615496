"""The watch notices a server that stops answering: after its grace period on its own, at once when asked."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from flows.server_watch import ServerWatch


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path.endswith("/health") else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/api"


def _wait(event, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not event.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    return event.is_set()


def test_a_server_that_stops_answering_is_reported_once():
    server, api_url = _serve()
    calls = []
    with ServerWatch(api_url, interval_s=0.1, grace_s=0.3, on_lost=lambda: calls.append(1)) as watch:
        time.sleep(0.5)
        assert not watch.lost.is_set() and not watch.is_lost()
        server.shutdown()
        server.server_close()
        assert _wait(watch.lost)
        assert watch.is_lost()
    assert calls == [1]


def test_asking_notices_at_once_inside_the_grace_period():
    server, api_url = _serve()
    with ServerWatch(api_url, interval_s=0.1, grace_s=60.0, on_lost=lambda: None) as watch:
        server.shutdown()
        server.server_close()
        assert watch.is_lost() and watch.lost.is_set()

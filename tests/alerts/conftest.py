"""Real receivers for the alert tests: a local HTTP server and helpers to open anomalies.

The server on 127.0.0.1 stands in for Slack, Discord, webhook receivers and
PagerDuty. It records every request (path, headers, body) and answers by
path: /ok (200), /status/<code>, /redirect (302 to /ok), /slow (answers after
`slow_seconds`), /huge (a 5 MB body). The transports' HTTP calls are real.
"""

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.utils import timezone

from anomalies import engine
from anomalies.detectors.base import DetectorContext, Finding
from tenants.scope import tenant_scope


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    slow_seconds: float = 2.0

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str = "/ok") -> str:
        return self.base + path

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(Received(self.path, dict(self.headers), body))
            if self.path == "/slow":
                time.sleep(receiver.slow_seconds)
                return self._answer(200, b"late")
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/ok")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/huge":
                chunk = b"x" * 65536
                self.send_response(200)
                self.send_header("Content-Length", str(len(chunk) * 80))
                self.end_headers()
                try:
                    for _ in range(80):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return
            if self.path.startswith("/status/"):
                code = int(self.path.rsplit("/", 1)[1])
                return self._answer(code, b'{"error": "as you asked"}')
            if self.path == "/pagerduty":
                return self._answer(202, b'{"status": "success", "message": "Event processed"}')
            return self._answer(200, b"ok")

        def _answer(self, code: int, body: bytes):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)
    server.daemon_threads = True
    rec = Receiver(server)
    server.RequestHandlerClass = _handler(rec)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def alert_settings(settings, receiver):
    """Tests talk to 127.0.0.1 over http; production refuses both."""
    settings.BILLINGWATCH_ALERTS_ALLOW_HTTP = True
    settings.BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS = True
    settings.BILLINGWATCH_ALERTS_TIMEOUT_SECONDS = 1.0
    settings.BILLINGWATCH_ALERTS_PAGERDUTY_URL = receiver.url("/pagerduty")
    settings.BILLINGWATCH_BASE_URL = "https://bw.example.com"
    return settings


def open_anomaly(tenant, *, severity="high", detector="duplicate_charge", key=None, livemode=True, at=None,
                 amount=4200, currency="usd", customer="cus_A", title=None):
    """Open (or update, with the same key) an anomaly through the engine, as a detector would."""
    key = key or uuid.uuid4().hex[:8]
    at = at or timezone.now() - timedelta(minutes=1)
    ctx = DetectorContext(tenant, livemode, {}, detector)
    finding = Finding(
        fingerprint=f"fp-{key}",
        severity=severity,
        title=title or f"Anomaly {key}",
        summary=f"Something odd about {customer}",
        occurred_at=at,
        occurrence_key=uuid.uuid4().hex,
        customer_id=customer,
        metrics={"amount": amount, "currency": currency},
    )
    outcome = engine.Outcome()
    with tenant_scope(tenant), transaction.atomic():
        engine._apply_finding(ctx, detector, finding, outcome)
    return (outcome.opened or outcome.updated)[0]


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)

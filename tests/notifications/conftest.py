"""Fixtures of the notification tests: a real SMTP server (aiosmtpd), a real webhook receiver over
HTTP, and the worker configured to reach them with a short retry base."""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from werkzeug.wrappers import Request, Response

from common.localredis import free_port
from tasks.notifications import signing
from tests.support.servers import serve_in_thread

FAST_RETRY_BASE = 0.05  # seconds: six attempts fit in about 1.5 s


@dataclass
class Mailbox:
    """What the SMTP server accepted; `refuse` maps a recipient to an SMTP reply."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.messages if message["To"] == address]


@pytest.fixture(scope="session")
def smtp_server():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), loop=asyncio.new_event_loop())
    controller.start()
    yield controller
    controller.stop()
    controller.loop.close()


@pytest.fixture
def mailbox(smtp_server) -> Mailbox:
    smtp_server.handler.messages.clear()
    smtp_server.handler.refuse.clear()
    return smtp_server.handler


@dataclass
class Hook:
    headers: dict
    body: bytes
    signature_valid: bool


class WebhookReceiver:
    """A receiver that answers the scripted statuses in turn (then `then`), checking signatures."""

    def __init__(self):
        self.secret: str | None = None
        self.script: list[int] = []
        self.then = 200
        self.received: list[Hook] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        header = request.headers.get(signing.HEADER, "")
        with self._lock:
            valid = self.secret is not None and signing.verify(header, body, self.secret)
            self.received.append(Hook(dict(request.headers), body, valid))
            status = self.script.pop(0) if self.script else self.then
        return Response(f"status {status}", status=status)(environ, start_response)


@pytest.fixture(scope="session")
def webhook_server():
    served = serve_in_thread(WebhookReceiver())
    yield served
    served.stop()


@pytest.fixture
def receiver(webhook_server) -> WebhookReceiver:
    receiver = webhook_server.app
    receiver.__init__()
    receiver.url = webhook_server.url + "/hooks/cfmp"
    return receiver


@pytest.fixture
def notify_worker(worker, worker_app, settings, smtp_server, monkeypatch):
    """The real worker, reaching the test SMTP server, retrying deliveries after ~50 ms."""
    monkeypatch.setitem(worker_app.config, "CFMP_SETTINGS", settings.replace(
        smtp_host="127.0.0.1", smtp_port=smtp_server.port, notification_retry_base=FAST_RETRY_BASE))
    return worker

"""What the payment-provider test doubles share: RSA keys the tests generate, a real HTTP server on
loopback, and swapping a running app's settings for one test.

The doubles check and make signatures with `cryptography` directly, never through the code under
test (tasks/payments/providers/rsa.py), so a mistake there cannot cancel itself out.
"""
from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import urllib3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.servers import LoopbackHTTPServer

_POOL = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))


@dataclass(frozen=True)
class KeyPair:
    private: rsa.RSAPrivateKey
    private_file: str
    public_file: str

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()


def key_pair(directory: Path, name: str, bare_base64: bool = False) -> KeyPair:
    """A fresh 2048-bit RSA key written as `<name>.key` (PKCS#8 PEM) and `<name>.pub` (PEM, or the
    bare base64 DER Alipay's console shows when `bare_base64`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_file, public_file = directory / f"{name}.key", directory / f"{name}.pub"
    private_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    info = serialization.PublicFormat.SubjectPublicKeyInfo
    if bare_base64:
        public_file.write_bytes(base64.b64encode(key.public_key().public_bytes(serialization.Encoding.DER, info)))
    else:
        public_file.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, info))
    return KeyPair(key, str(private_file), str(public_file))


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verified(key: rsa.RSAPublicKey, message: bytes, signature: str | None) -> bool:
    try:
        key.verify(base64.b64decode(signature or "", validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]  # lowercase names in what `post` returns


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: DoubleServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.answer(self.command, self.path, dict(self.headers.items()), body)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = _handle


class DoubleServer(LoopbackHTTPServer):
    """A provider's remote end on 127.0.0.1 (an ephemeral port), served from a thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        super().__init__(_Handler)

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        raise NotImplementedError

        self._thread.join(timeout=5)


def post(url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
    """What a provider does to notify: one real HTTP POST (here: to the gateway)."""
    reply = _POOL.request("POST", url, body=body, headers=dict(headers))
    return Answer(reply.status, reply.data, {name.lower(): value for name, value in reply.headers.items()})


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@contextmanager
def settings_of(apps, **changes) -> Iterator[None]:
    """Run with `changes` in the settings of running Flask apps (the payment service, the worker),
    as `wired` does, and put the previous settings back afterwards."""
    previous = [app.config["CFMP_SETTINGS"] for app in apps]
    for app, settings in zip(apps, previous):
        app.config["CFMP_SETTINGS"] = settings.replace(**changes)
    try:
        yield
    finally:
        for app, settings in zip(apps, previous):
            app.config["CFMP_SETTINGS"] = settings

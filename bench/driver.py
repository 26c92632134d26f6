"""The workflow benchmark's client: buyers who create an order and pay it with the sandbox, through
the gateway. A few threads of plain HTTP: the load here is workflows, not requests, and two
requests per workflow are a small part of its cost (the CPU figures count this process apart)."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from common.settings import Settings
from common.tokens import issue_token

SELLER = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str, token: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with _DIRECT.open(request, timeout=30) as response:
        return json.loads(response.read())


class Driver:
    def __init__(self, gateway: str, settings: Settings, clients: int = 8):
        self.gateway = gateway
        self.settings = settings
        self.clients = clients
        self.orders: dict[str, str] = {}  # order uuid → payment uuid
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def one(self) -> None:
        """A new buyer each time: the risk rules' per-buyer velocity limits stay out of the way."""
        buyer = uuid.uuid4()
        token = issue_token(self.settings, buyer, ttl=3600)
        item = {"product_uuid": str(uuid.uuid4()), "product_name": "Tea set", "product_price": "99.50", "quantity": 2}
        try:
            order = _post(f"{self.gateway}/api/orders/", token, {
                "seller_uuid": str(SELLER), "items": [item], "shipping_name": "Li Lei",
                "shipping_phone": "+86 138 0000 0000", "shipping_address": "1 Renmin Road, Hangzhou"})
            payment = _post(f"{self.gateway}/api/payments/", token,
                            {"order_uuid": order["order_uuid"], "payment_method": "sandbox"})
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            with self.lock:
                self.errors.append(repr(exc))
            return
        with self.lock:
            self.orders[order["order_uuid"]] = payment["payment_uuid"]

    def run(self, count: int, rate: float | None = None) -> dict[str, str]:
        """Start `count` workflows, as fast as the clients go or paced at `rate` per second;
        returns the orders started by this call."""
        before = set(self.orders)
        started = time.monotonic()
        with ThreadPoolExecutor(self.clients, thread_name_prefix="buyer") as pool:
            for i in range(count):
                if rate:
                    time.sleep(max(0.0, started + i / rate - time.monotonic()))
                pool.submit(self.one)
        return {o: p for o, p in self.orders.items() if o not in before}

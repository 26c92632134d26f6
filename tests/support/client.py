"""A small JSON client over real HTTP (urllib3), as REST clients of the gateway use it."""
from __future__ import annotations

import json
from dataclasses import dataclass

import urllib3

_POOL = urllib3.PoolManager(maxsize=32, retries=False, timeout=urllib3.Timeout(connect=5, read=30))


@dataclass
class Reply:
    status: int
    headers: dict
    raw: bytes

    @property
    def json(self):
        return json.loads(self.raw) if self.raw else None


@dataclass
class Api:
    base_url: str
    token: str | None = None

    def request(self, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None) -> Reply:
        sent = {"Content-Type": "application/json"}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        response = _POOL.request(method, self.base_url + path, body=data, headers=sent)
        return Reply(response.status, dict(response.headers), response.data)

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body=None, **kwargs) -> Reply:
        return self.request("POST", path, body=body, **kwargs)

    def as_user(self, token: str | None) -> Api:
        return Api(self.base_url, token)

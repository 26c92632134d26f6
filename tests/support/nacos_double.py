"""A Nacos server double: the v1 naming HTTP API over a real socket, as reference §3.3 describes it.

It serves what nacos-sdk-python's classic client and APISIX's discovery call, so tests exercise the
real client over real HTTP: parameters in the query string (form bodies accepted too), booleans in
any case, `None` cluster names, `ok` bodies, beat codes 10200/20404 with re-registration from the
beat JSON, `healthyOnly` listings, and optional login (`accessToken` on every call, 403 without).
Ephemeral instances turn unhealthy 15 s after their last beat and are gone at 30 s, measured on an
injectable clock (`FakeClock`), so tests advance time instead of waiting for it.

`NacosDouble(port=old.port)` after `old.stop()` is a restarted Nacos: same address, no memory.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.support.servers import LoopbackHTTPServer

UNHEALTHY_AFTER = 15.0  # instanceHeartBeatTimeOut
DELETE_AFTER = 30.0  # ipDeleteTimeout
PUBLIC = "public"
DEFAULT_GROUP = "DEFAULT_GROUP"
DEFAULT_CLUSTER = "DEFAULT"


class FakeClock:
    """Seconds that move only when told to."""

    def __init__(self, start: float = 1000.0):
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass
class Record:
    ip: str
    port: int
    cluster: str
    weight: float
    enabled: bool
    ephemeral: bool
    metadata: dict
    last_beat: float
    healthy: bool = True
    beats: int = 0


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _bool(params: dict, name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise BadRequest(f"Param '{name}' is not a boolean: {raw}")


def _required(params: dict, name: str) -> str:
    value = params.get(name)
    if not value:
        raise BadRequest(f"Param '{name}' is required.")
    return value


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise BadRequest(f"Param 'port' is not a number: {raw}") from None
    if not 0 <= port <= 65535:
        raise BadRequest(f"Param 'port' is out of range: {raw}")
    return port


def _cluster(raw: str | None) -> str:
    return DEFAULT_CLUSTER if raw in (None, "", "None") else raw


@dataclass
class NacosDouble:
    port: int = 0
    clock: Callable[[], float] = time.monotonic
    auth: tuple[str, str] | None = None  # (username, password): login required
    beat_interval_ms: int = 5000  # clientBeatInterval in beat replies
    register_from_beat: bool = True  # an unknown instance's full beat registers it (Nacos handleBeat)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._services: dict[tuple[str, str, str], dict[tuple[str, int, str], Record]] = {}
        self._tokens: set[str] = set()
        self._lock = threading.RLock()
        double = self

        class Handler(_Handler):
            nacos = double

        self._server = LoopbackHTTPServer(Handler, self.port)
        self.port = self._server.server_port

    @property
    def address(self) -> str:
        """What NACOS_SERVER holds."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop()

    # --- what tests inspect -------------------------------------------------------------------
    def hosts(self, service: str, group: str = DEFAULT_GROUP, namespace: str = PUBLIC,
              healthy_only: bool = False) -> list[dict]:
        """The `hosts` of the list API, as the server would answer now."""
        with self._lock:
            self._expire()
            records = self._services.get((namespace, group, service), {})
            return [self._host(service, group, r) for r in records.values()
                    if not healthy_only or (r.healthy and r.enabled)]

    def services(self, namespace: str = PUBLIC) -> dict[str, list[dict]]:
        """Every service with instances: name (group prefix dropped for DEFAULT_GROUP) -> hosts."""
        with self._lock:
            self._expire()
            return {(name if group == DEFAULT_GROUP else f"{group}@@{name}"): self.hosts(name, group, namespace)
                    for (ns, group, name), records in self._services.items() if ns == namespace and records}

    def beats(self, service: str, group: str = DEFAULT_GROUP, namespace: str = PUBLIC) -> int:
        """Beats received from the service's current instances."""
        with self._lock:
            return sum(r.beats for r in self._services.get((namespace, group, service), {}).values())

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.method == method and call.path == path)

    def forget(self, service: str, group: str = DEFAULT_GROUP, namespace: str = PUBLIC) -> None:
        """Lose every instance of a service, as a server that dropped them would."""
        with self._lock:
            self._services.pop((namespace, group, service), None)

    # --- the server side ----------------------------------------------------------------------
    def _expire(self) -> None:
        now = self.clock()
        for records in self._services.values():
            for key, record in list(records.items()):
                if not record.ephemeral:
                    continue
                silent = now - record.last_beat
                if silent >= DELETE_AFTER:
                    del records[key]
                elif silent >= UNHEALTHY_AFTER:
                    record.healthy = False

    def _host(self, service: str, group: str, r: Record) -> dict:
        full = f"{group}@@{service}"
        return {
            "instanceId": f"{r.ip}#{r.port}#{r.cluster}#{full}", "ip": r.ip, "port": r.port,
            "weight": r.weight, "healthy": r.healthy, "enabled": r.enabled, "ephemeral": r.ephemeral,
            "clusterName": r.cluster, "serviceName": full, "metadata": dict(r.metadata),
            "instanceHeartBeatInterval": 5000, "instanceHeartBeatTimeOut": int(UNHEALTHY_AFTER * 1000),
            "ipDeleteTimeout": int(DELETE_AFTER * 1000), "instanceIdGenerator": "simple",
        }

    @staticmethod
    def _service_key(params: dict) -> tuple[str, str, str]:
        name = _required(params, "serviceName")
        group = params.get("groupName") or DEFAULT_GROUP
        if "@@" in name:
            group, name = name.split("@@", 1)
        namespace = params.get("namespaceId") or PUBLIC
        return namespace, group, name

    def handle(self, method: str, path: str, params: dict) -> tuple[int, str, str]:
        """(status, content type, body) for one request."""
        with self._lock:
            self.calls.append(Call(method, path, dict(params)))
            if path in ("/nacos/v1/auth/login", "/nacos/v1/auth/users/login") and method == "POST":
                return self._login(params)
            if self.auth is not None and params.get("accessToken") not in self._tokens:
                return 403, "text/plain", "token invalid!"
            self._expire()
            route = {
                ("POST", "/nacos/v1/ns/instance"): self._register,
                ("DELETE", "/nacos/v1/ns/instance"): self._deregister,
                ("PUT", "/nacos/v1/ns/instance"): self._modify,
                ("GET", "/nacos/v1/ns/instance"): self._detail,
                ("PUT", "/nacos/v1/ns/instance/beat"): self._beat,
                ("GET", "/nacos/v1/ns/instance/list"): self._list,
            }.get((method, path))
            if route is None:
                return 404, "text/plain", f"no route for {method} {path}"
            try:
                status, body = route(params)
            except BadRequest as exc:
                return exc.status, "text/plain", f"caused: {exc};"
            if isinstance(body, str):
                return status, "text/plain", body
            return status, "application/json", json.dumps(body)

    def _login(self, params: dict) -> tuple[int, str, str]:
        if self.auth is None or (params.get("username"), params.get("password")) == self.auth:
            token = secrets.token_urlsafe(24)
            self._tokens.add(token)
            return 200, "application/json", json.dumps({"accessToken": token, "tokenTtl": 18000,
                                                        "globalAdmin": True})
        return 403, "text/plain", "unknown user!"

    def _register(self, params: dict) -> tuple[int, str]:
        key = self._service_key(params)
        ip, port = _required(params, "ip"), _port(_required(params, "port"))
        cluster = _cluster(params.get("clusterName"))
        try:
            metadata = json.loads(params["metadata"]) if params.get("metadata") else {}
            weight = float(params.get("weight") or 1.0)
        except ValueError as exc:
            raise BadRequest(f"bad metadata or weight: {exc}") from None
        record = Record(ip, port, cluster, weight, _bool(params, "enable", True), _bool(params, "ephemeral", True),
                        metadata, self.clock(), _bool(params, "healthy", True))
        self._services.setdefault(key, {})[(ip, port, cluster)] = record
        return 200, "ok"

    def _deregister(self, params: dict) -> tuple[int, str]:
        key = self._service_key(params)
        ip, port = _required(params, "ip"), _port(_required(params, "port"))
        self._services.get(key, {}).pop((ip, port, _cluster(params.get("clusterName"))), None)
        return 200, "ok"

    def _find(self, params: dict, ip: str, port: int, cluster: str) -> Record | None:
        return self._services.get(self._service_key(params), {}).get((ip, port, cluster))

    def _modify(self, params: dict) -> tuple[int, str]:
        ip, port = _required(params, "ip"), _port(_required(params, "port"))
        record = self._find(params, ip, port, _cluster(params.get("clusterName")))
        if record is None:
            raise BadRequest("no ips found for cluster DEFAULT")
        if params.get("weight"):
            record.weight = float(params["weight"])
        record.enabled = _bool(params, "enable", record.enabled)
        if params.get("metadata"):
            record.metadata = json.loads(params["metadata"])
        return 200, "ok"

    def _detail(self, params: dict) -> tuple[int, dict]:
        ip, port = _required(params, "ip"), _port(_required(params, "port"))
        _, group, service = self._service_key(params)
        record = self._find(params, ip, port, _cluster(params.get("clusterName") or params.get("cluster")))
        if record is None:
            raise BadRequest("no ips found for cluster DEFAULT", status=404)
        host = self._host(service, group, record)
        return 200, {"service": host["serviceName"], **{k: host[k] for k in (
            "ip", "port", "clusterName", "weight", "healthy", "instanceId", "metadata")}}

    def _beat(self, params: dict) -> tuple[int, dict]:
        key = self._service_key(params)
        beat = json.loads(params["beat"]) if params.get("beat") else None
        source = beat if beat is not None else params
        ip, port = _required(source, "ip"), _port(str(source.get("port", "")))
        cluster = _cluster(beat.get("cluster") if beat is not None else params.get("clusterName"))
        record = self._services.get(key, {}).get((ip, port, cluster))
        reply = {"clientBeatInterval": self.beat_interval_ms, "lightBeatEnabled": True}
        if record is None:
            if beat is None or not self.register_from_beat:
                return 200, {**reply, "code": 20404}
            record = Record(ip, port, cluster, float(beat.get("weight", 1.0)), True,
                            bool(beat.get("ephemeral", True)), dict(beat.get("metadata") or {}), self.clock())
            self._services.setdefault(key, {})[(ip, port, cluster)] = record
        record.last_beat = self.clock()
        record.healthy = True
        record.beats += 1
        return 200, {**reply, "code": 10200}

    def _list(self, params: dict) -> tuple[int, dict]:
        namespace, group, service = self._service_key(params)
        healthy_only = _bool(params, "healthyOnly", False)
        clusters = {c for c in (params.get("clusters") or "").split(",") if c}
        hosts = [h for h in self.hosts(service, group, namespace, healthy_only)
                 if not clusters or h["clusterName"] in clusters]
        return 200, {"name": f"{group}@@{service}", "groupName": group, "clusters": ",".join(sorted(clusters)),
                     "cacheMillis": 10000, "hosts": hosts, "lastRefTime": int(time.time() * 1000),
                     "checksum": "", "allIPs": False, "reachProtectionThreshold": False, "valid": True}


class _Handler(BaseHTTPRequestHandler):
    nacos: NacosDouble

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if body and self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            params.update({k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()})
        status, content_type, text = self.nacos.handle(self.command, url.path, params)
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

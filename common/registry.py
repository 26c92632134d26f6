"""The Nacos registry: register, heartbeat, deregister and list instances (DESIGN.md §3, §4).

`Registry` wraps nacos-sdk-python's classic `NacosClient` (HTTP v1, reference §3.2) and turns every
way a call can fail into `RegistryError`. `Registration` keeps one instance registered from a daemon
thread: it registers, beats at the interval the server asks for (`clientBeatInterval`, 5 s on a real
Nacos; the first beat goes at once), re-registers when the server no longer knows the instance (beat
code 20404) and after any outage, and backs off exponentially while Nacos is away. Nacos being down
never stops the process: it logs one line when that starts and one when it ends. An optional
probe ties the heartbeat to what the instance does (a worker's consumer): while it says no, no beat
is sent, so Nacos marks the instance unhealthy after 15 s and drops it after 30 s.

With `NACOS_SERVER` unset, `register()` returns None and nothing talks to Nacos.
"""
from __future__ import annotations

import http.client
import logging
import os
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from typing import Protocol

from nacos import NacosClient
from nacos.exception import NacosException

from common.settings import Settings

log = logging.getLogger("cfmp.registry")
# The classic client logs every call at INFO (its login line includes the access token) and a
# traceback per failed call; this module logs what matters, once per event.
logging.getLogger("nacos").setLevel(logging.CRITICAL)
# It also adds a file handler under ~/logs/nacos unless its logger already has one.
logging.getLogger("nacos.client").addHandler(logging.NullHandler())

# Settings key of a service -> the name it registers under (DESIGN.md §3).
SERVICE_NAMES = {"orders": "OrderService", "payments": "PaymentService", "notifications": "NotificationService"}
HEALTH_PATH = "/health"
BEAT_INTERVAL = 5.0  # seconds, until the server says otherwise
BEAT_OK, BEAT_NOT_FOUND = 10200, 20404  # NamingResponseCode


def version() -> str:
    try:
        return package_metadata.version("cfmp-order")
    except package_metadata.PackageNotFoundError:
        return "0+unknown"


class RegistryError(Exception):
    """Nacos could not be reached, refused the call, or answered something unusable."""


@dataclass(frozen=True)
class Instance:
    service: str  # the Nacos service name, e.g. OrderService
    ip: str
    port: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    weight: float = 1.0
    healthy: bool = True  # as Nacos last said (listings only)

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def __str__(self) -> str:
        return f"{self.service} {self.address}"


@dataclass(frozen=True)
class Beat:
    code: int
    interval: float | None  # seconds the server wants between beats, when it said


@dataclass(frozen=True)
class Backoff:
    """Delays between retries: base·2ⁿ capped, each drawn from its upper half (equal jitter)."""

    base: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        high = min(self.cap, self.base * 2 ** min(attempt, 32))
        return random.uniform(high / 2, high)


class Registry:
    """One Nacos server (`NACOS_SERVER`), namespace and group, with login when a user is set.

    The client is created on first use and again after a failed start, so a Nacos that is down
    when the process starts only delays registration.
    """

    def __init__(self, settings: Settings, timeout: float = 3.0):
        if not settings.nacos_server:
            raise ValueError("NACOS_SERVER is not set")
        self.settings = settings
        self.server = settings.nacos_server
        self.group = settings.nacos_group
        self.timeout = timeout
        self._client: NacosClient | None = None
        self._lock = threading.Lock()

    def _connect(self) -> NacosClient:
        with self._lock:
            if self._client is None:
                s = self.settings
                try:  # with a user, the constructor logs in: it fails while Nacos is down
                    client = NacosClient(s.nacos_server, namespace=s.nacos_namespace or None,
                                         username=s.nacos_username, password=s.nacos_password,
                                         logDir=s.log_dir)
                except (NacosException, OSError, ValueError, http.client.HTTPException) as exc:
                    raise RegistryError(f"cannot log in to Nacos at {self.server}: {exc}") from exc
                client.set_options(default_timeout=self.timeout)
                self._client = client
            return self._client

    def _call(self, what: str, call: Callable[[NacosClient], object]) -> object:
        client = self._connect()
        for attempt in (1, 2):
            try:
                return call(client)
            except NacosException as exc:
                # A token the server no longer knows (it restarted, or it expired early): log in
                # again once. Without a user there is nothing to refresh.
                if attempt == 1 and "privilege" in str(exc) and client.username:
                    try:
                        client.get_access_token(force_refresh=True)
                        continue
                    except Exception as login_exc:  # noqa: BLE001 (urllib, JSON, Nacos: all "down")
                        exc = login_exc
                raise RegistryError(f"{what} at {self.server}: {exc}") from exc
            except (OSError, ValueError, http.client.HTTPException) as exc:
                raise RegistryError(f"{what} at {self.server}: {exc!r}") from exc
        raise AssertionError("unreachable")

    def register(self, instance: Instance) -> None:
        accepted = self._call("register", lambda c: c.add_naming_instance(
            instance.service, instance.ip, instance.port, weight=instance.weight,
            metadata=dict(instance.metadata), group_name=self.group))
        if accepted is not True:
            raise RegistryError(f"register at {self.server}: the server did not answer ok")

    def beat(self, instance: Instance) -> Beat:
        reply = self._call("heartbeat", lambda c: c.send_heartbeat(
            instance.service, instance.ip, instance.port, weight=instance.weight,
            metadata=dict(instance.metadata), group_name=self.group))
        if not isinstance(reply, dict):
            raise RegistryError(f"heartbeat at {self.server}: unexpected answer {reply!r}")
        interval = reply.get("clientBeatInterval")
        return Beat(int(reply.get("code", BEAT_OK)), interval / 1000 if interval and interval > 0 else None)

    def deregister(self, instance: Instance) -> None:
        self._call("deregister", lambda c: c.remove_naming_instance(
            instance.service, instance.ip, instance.port, group_name=self.group))

    def instances(self, service: str, healthy_only: bool = False) -> list[Instance]:
        """The instances of `service`; `healthy_only` keeps those healthy and enabled (what to route to)."""
        reply = self._call("list", lambda c: c.list_naming_instance(
            service, group_name=self.group, healthy_only=healthy_only))
        try:
            hosts = reply["hosts"]  # type: ignore[index]
            found = [Instance(service, str(h["ip"]), int(h["port"]), dict(h.get("metadata") or {}),
                              float(h.get("weight", 1.0)), bool(h.get("healthy", True)))
                     for h in hosts if not healthy_only or (h.get("healthy", True) and h.get("enabled", True))]
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"list at {self.server}: unexpected answer: {exc!r}") from exc
        return found


class Probe(Protocol):
    """Whether the instance does its job (a worker's consumer consumes), and why not."""

    reason: str

    def alive(self) -> bool: ...


class Registration:
    """Keeps one instance registered from a daemon thread until `stop()` (which deregisters it)."""

    def __init__(self, registry: Registry, instance: Instance, *, probe: Probe | None = None,
                 interval: float = BEAT_INTERVAL, backoff: Backoff = Backoff()):
        self.registry = registry
        self.instance = instance
        self.interval = interval
        self.backoff = backoff
        self._probe = probe
        self._stop = threading.Event()
        # Held around each call to Nacos and the final deregister: an attempt in flight when `stop`
        # comes finishes first, and none starts after, so no register lands after the deregister.
        self._calls = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"nacos-{instance.service}", daemon=True)
        self.registered = False  # registered, and no failure since
        self.ever_registered = False
        self.paused = False  # the alive probe said no: no beats
        self.failures = 0  # consecutive failed attempts
        self.beats = 0  # successful beats

    def start(self) -> Registration:
        # gunicorn's master forks workers while this thread runs: a fork in the middle of a call to
        # Nacos would hand the child half-taken locks (an import, a codec lookup: seen as "unknown
        # encoding: idna" in a fresh worker). Forks wait for the call in flight, and none starts during one.
        os.register_at_fork(before=self._calls.acquire, after_in_parent=self._calls.release,
                            after_in_child=self._calls.release)
        self._thread.start()
        return self

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            delay = self._step()

    def _is_alive(self) -> bool:
        if self._probe is None:
            return True
        try:
            return bool(self._probe.alive())
        except Exception:  # noqa: BLE001 (a probe that breaks says "not alive", never kills the thread)
            log.exception("liveness probe of %s failed", self.instance)
            return False

    def _step(self) -> float:
        """One attempt: register if needed, then beat; returns the seconds until the next one."""
        if not self._is_alive():
            if not self.paused:
                log.warning("%s is not alive (%s): heartbeat to Nacos paused", self.instance,
                            getattr(self._probe, "reason", "probe failed"))
                self.paused = True
            return self.interval
        if self.paused:
            log.info("%s is alive again: heartbeat resumed", self.instance)
            self.paused = False
        just_registered = False
        try:
            with self._calls:
                if self._stop.is_set():
                    return 0.0  # stopping: the loop ends without touching Nacos again
                if not self.registered:
                    self.registry.register(self.instance)
                    log.info("%s %s in Nacos at %s", "re-registered" if self.ever_registered else "registered",
                             self.instance, self.registry.server)
                    self.registered = self.ever_registered = just_registered = True
                beat = self.registry.beat(self.instance)
        except RegistryError as exc:
            self.failures += 1
            self.registered = False  # whatever Nacos lost meanwhile, register again once it is back
            delay = self.backoff.delay(self.failures - 1)
            if self.failures == 1:
                log.warning("Nacos unreachable for %s (%s): retrying with backoff", self.instance, exc)
            else:
                log.debug("Nacos still unreachable for %s (attempt %d): next try in %.1fs",
                          self.instance, self.failures, delay)
            return delay
        self.failures = 0
        if beat.code == BEAT_NOT_FOUND:
            self.registered = False
            if just_registered:  # registered a moment ago and already unknown: do not spin
                log.warning("Nacos forgot %s right after registering it; retrying", self.instance)
                return self.backoff.delay(0)
            log.warning("Nacos no longer knows %s: re-registering", self.instance)
            return 0.0
        self.beats += 1
        if beat.interval and beat.interval != self.interval:
            self.interval = beat.interval
        return self.interval

    def stop(self, deregister: bool = True, timeout: float = 5.0) -> None:
        """Stop beating; then remove the instance from Nacos, if it ever got there."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._calls:
            if not (deregister and self.ever_registered):
                return
            try:
                self.registry.deregister(self.instance)
            except RegistryError as exc:
                log.warning("could not deregister %s (%s); Nacos drops it 30 s after its last heartbeat",
                            self.instance, exc)
            else:
                log.info("deregistered %s from Nacos", self.instance)


def register(settings: Settings, service: str, port: int, metadata: Mapping[str, str], *,
             probe: Probe | None = None, **options) -> Registration | None:
    """Register `service` at SERVICE_IP:`port` and keep it registered; None when NACOS_SERVER is unset.

    `options` go to `Registration` (interval, backoff): tests make them short.
    """
    if not settings.nacos_server:
        return None
    metadata = {key: str(value) for key, value in metadata.items()}  # Nacos metadata is string → string
    instance = Instance(service, settings.service_ip, port, metadata)
    return Registration(Registry(settings), instance, probe=probe, **options).start()


def service_metadata() -> dict[str, str]:
    return {"version": version(), "health_path": HEALTH_PATH, "kind": "service"}

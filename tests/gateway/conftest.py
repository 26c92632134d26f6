"""Fixtures for the gateway tests: a `lab` that starts real loopback servers and stops them all."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from common.settings import Settings
from common.tokens import issue_token
from gateway.discovery import Discovery
from tests.gateway.servers import (
    GATEWAY_SECRET,
    SERVICES,
    EchoServer,
    Peer,
    RawUpstream,
    ScriptedUpstream,
    ServedGateway,
)


@dataclass
class Lab:
    """Starts servers for one test and stops them all afterwards, gateways before their upstreams."""

    gateways: list[ServedGateway] = field(default_factory=list)
    upstreams: list[EchoServer | RawUpstream | ScriptedUpstream] = field(default_factory=list)

    def echo(self) -> EchoServer:
        self.upstreams.append(server := EchoServer())
        return server

    def raw(self, mode: str) -> RawUpstream:
        self.upstreams.append(server := RawUpstream(mode))
        return server

    def scripted(self, script: Callable[[Peer, int], None]) -> ScriptedUpstream:
        self.upstreams.append(server := ScriptedUpstream(script))
        return server

    def gateway(
        self, upstreams: dict[str, str], discovery: Discovery | None = None, **changes: object
    ) -> ServedGateway:
        settings = Settings(env="test", jwt_secret=GATEWAY_SECRET).replace(upstreams=upstreams, **changes)
        self.gateways.append(served := ServedGateway(settings, discovery))
        return served

    def stop(self) -> None:
        for server in [*self.gateways, *self.upstreams]:
            server.stop()


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab()
    yield lab
    lab.stop()


@pytest.fixture
def echo(lab: Lab) -> EchoServer:
    return lab.echo()


@pytest.fixture
def gateway(lab: Lab, echo: EchoServer) -> ServedGateway:
    """A gateway routing every service to the `echo` upstream."""
    return lab.gateway({service: echo.url for service in SERVICES})


@pytest.fixture
def auth() -> dict[str, str]:
    """Headers with a valid token for any gateway the lab starts (they share the secret)."""
    token = issue_token(Settings(jwt_secret=GATEWAY_SECRET), uuid.uuid4())
    return {"Authorization": f"Bearer {token}"}

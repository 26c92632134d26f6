"""`Registration`: registered at once, beats at the server's interval, re-registers whatever Nacos
lost, rides out a Nacos that is away, follows its liveness probe, and deregisters on stop."""
from __future__ import annotations

import logging
import time

import pytest

from common.registry import Instance, Registration, Registry, register
from common.settings import Settings
from tests.registry.conftest import FAST
from tests.support.nacos_double import NacosDouble
from tests.support.servers import closed_port
from tests.support.waiting import wait_for

ORDER = Instance("OrderService", "127.0.0.1", 8001, {"version": "1.0"})


def ports(double: NacosDouble, service: str = "OrderService", healthy_only: bool = False) -> list[int]:
    return sorted(host["port"] for host in double.hosts(service, healthy_only=healthy_only))


class Switch:
    """A liveness probe the test flips."""

    def __init__(self) -> None:
        self.on = True
        self.reason = "switched off"

    def alive(self) -> bool:
        return self.on


@pytest.fixture
def registrations():
    started: list[Registration] = []
    yield started
    for registration in started:
        registration.stop(deregister=False)


def start(registrations, settings: Settings, **options) -> Registration:
    registration = Registration(Registry(settings), ORDER, backoff=FAST, **options).start()
    registrations.append(registration)
    return registration


def test_nothing_is_registered_without_nacos_server():
    assert register(Settings(), "OrderService", 8001, {}) is None


def test_registers_at_once_beats_at_the_servers_interval_and_deregisters(nacos, registry_settings, registrations,
                                                                         caplog):
    caplog.set_level(logging.INFO, logger="cfmp.registry")
    registration = start(registrations, registry_settings(nacos))  # interval 5 s until the server says 50 ms

    wait_for(lambda: ports(nacos) == [8001], timeout=5, what="the registration")
    wait_for(lambda: nacos.beats("OrderService") >= 5, timeout=5, what="beats every 50 ms")
    assert registration.interval == 0.05

    registration.stop()
    assert ports(nacos) == []
    messages = [r.getMessage() for r in caplog.records if r.name == "cfmp.registry"]
    assert messages == [f"registered OrderService 127.0.0.1:8001 in Nacos at {nacos.address}",
                        "deregistered OrderService 127.0.0.1:8001 from Nacos"]  # no line per beat


def test_an_instance_the_server_no_longer_knows_is_registered_again(nacos, registry_settings, registrations):
    nacos.register_from_beat = False  # answers 20404 instead of registering from the beat
    start(registrations, registry_settings(nacos))
    wait_for(lambda: ports(nacos) == [8001], timeout=5, what="the registration")
    posts = nacos.count("POST", "/nacos/v1/ns/instance")

    nacos.forget("OrderService")

    wait_for(lambda: ports(nacos) == [8001], timeout=5, what="the re-registration")
    assert nacos.count("POST", "/nacos/v1/ns/instance") == posts + 1
    assert nacos.hosts("OrderService")[0]["metadata"] == {"version": "1.0"}


def test_a_nacos_down_at_start_only_delays_registration(clock, registry_settings, registrations, caplog):
    caplog.set_level(logging.INFO, logger="cfmp.registry")  # the embedded worker may have raised the root level
    port = closed_port()
    settings = registry_settings(f"127.0.0.1:{port}")
    registration = start(registrations, settings)
    wait_for(lambda: registration.failures >= 3, timeout=5, what="a few failed attempts")

    double = NacosDouble(port=port, clock=clock, beat_interval_ms=50)
    try:
        wait_for(lambda: ports(double) == [8001], timeout=5, what="the registration once Nacos is up")
        wait_for(lambda: double.beats("OrderService") >= 2, timeout=5, what="beats")
        unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(unreachable) == 1  # one line when the outage starts, not one per attempt
    finally:
        registration.stop()
        double.stop()


def test_a_restarted_nacos_gets_the_instance_back_and_logs_in_again(clock, registry_settings, registrations,
                                                                   caplog):
    caplog.set_level(logging.INFO, logger="cfmp.registry")
    auth = ("nacos", "s3cret")
    double = NacosDouble(clock=clock, beat_interval_ms=50, auth=auth)
    settings = registry_settings(double, nacos_username=auth[0], nacos_password=auth[1])
    registration = start(registrations, settings)
    wait_for(lambda: ports(double) == [8001], timeout=5, what="the registration")

    double.stop()
    wait_for(lambda: registration.failures >= 1, timeout=5, what="the outage to be noticed")
    double = NacosDouble(port=double.port, clock=clock, beat_interval_ms=50, auth=auth, register_from_beat=False)
    try:
        wait_for(lambda: ports(double) == [8001], timeout=5, what="the re-registration")
        wait_for(lambda: double.beats("OrderService") >= 2, timeout=5, what="beats again")
        assert double.count("POST", "/nacos/v1/auth/login") >= 1  # the old token means nothing to it
        assert any(r.getMessage().startswith("re-registered OrderService") for r in caplog.records)
    finally:
        registration.stop()
        double.stop()


def test_no_beats_while_the_probe_says_no_so_nacos_marks_it_unhealthy(nacos, clock, registry_settings,
                                                                      registrations, caplog):
    caplog.set_level(logging.INFO, logger="cfmp.registry")
    switch = Switch()
    registration = start(registrations, registry_settings(nacos), probe=switch)
    wait_for(lambda: nacos.beats("OrderService") >= 2, timeout=5, what="beats")

    switch.on = False
    wait_for(lambda: registration.paused, timeout=5, what="the heartbeat to pause")
    clock.advance(15)
    assert ports(nacos, healthy_only=True) == [] and ports(nacos) == [8001]
    assert any("not alive (switched off)" in r.getMessage() for r in caplog.records)

    switch.on = True
    wait_for(lambda: ports(nacos, healthy_only=True) == [8001], timeout=5, what="healthy again")

    switch.on = False
    wait_for(lambda: registration.paused, timeout=5, what="the heartbeat to pause again")
    clock.advance(30)
    assert ports(nacos) == []  # gone; a probe that recovers registers it again
    switch.on = True
    wait_for(lambda: ports(nacos, healthy_only=True) == [8001], timeout=5, what="registered again")


def test_a_probe_that_raises_counts_as_not_alive(nacos, registry_settings, registrations):
    class Broken:
        reason = "broken"

        def alive(self) -> bool:
            raise RuntimeError("boom")

    registration = start(registrations, registry_settings(nacos), probe=Broken())
    wait_for(lambda: registration.paused, timeout=5, what="the heartbeat to pause")
    assert ports(nacos) == []


def test_stop_while_nacos_is_away_returns_promptly(nacos, registry_settings, registrations, caplog):
    caplog.set_level(logging.INFO, logger="cfmp.registry")  # the embedded worker may have raised the root level
    registration = start(registrations, registry_settings(nacos))
    wait_for(lambda: ports(nacos) == [8001], timeout=5, what="the registration")
    nacos.stop()
    started = time.monotonic()
    registration.stop()  # the DELETE is refused: logged, not raised
    assert time.monotonic() - started < 5  # bounded by the client's timeouts, not by Nacos coming back
    assert any("could not deregister" in r.getMessage() for r in caplog.records)

"""The Nacos double answers the v1 naming API as reference §3.3 describes it, to the real client.

Everything here goes over HTTP: nacos-sdk-python's classic `NacosClient` (through `Registry`) or
plain urllib for what that client never sends (form bodies, light beats, wrong logins).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from nacos import NacosClient

from common.registry import BEAT_NOT_FOUND, BEAT_OK, Instance, Registry, RegistryError
from tests.support.nacos_double import FakeClock, NacosDouble

ORDER = Instance("OrderService", "127.0.0.1", 8001, {"version": "1.0", "health_path": "/health"})


def raw(double: NacosDouble, method: str, path: str, params: dict | None = None,
        form: dict | None = None) -> tuple[int, str]:
    url = f"http://{double.address}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    data = urllib.parse.urlencode(form).encode() if form else None
    request = urllib.request.Request(url, data=data, method=method)
    if form:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_register_list_and_deregister_with_the_real_client(nacos, registry_settings):
    registry = Registry(registry_settings(nacos))
    registry.register(ORDER)

    post = [call for call in nacos.calls if call.method == "POST"][0]
    # The classic client's own spelling, parsed as the reference says: query string, Python booleans,
    # `enable`, the cluster as the string "None", metadata as a JSON string.
    assert post.path == "/nacos/v1/ns/instance"
    assert {k: post.params[k] for k in ("ip", "port", "serviceName", "enable", "healthy", "ephemeral",
                                         "clusterName", "groupName")} == {
        "ip": "127.0.0.1", "port": "8001", "serviceName": "OrderService", "enable": "True", "healthy": "True",
        "ephemeral": "True", "clusterName": "None", "groupName": "DEFAULT_GROUP"}
    [host] = nacos.hosts("OrderService")
    assert (host["ip"], host["port"], host["clusterName"], host["metadata"]) == (
        "127.0.0.1", 8001, "DEFAULT", {"version": "1.0", "health_path": "/health"})
    assert host["instanceId"] == "127.0.0.1#8001#DEFAULT#DEFAULT_GROUP@@OrderService"
    assert registry.instances("OrderService", healthy_only=True) == [ORDER]

    registry.deregister(ORDER)
    registry.deregister(ORDER)  # a missing instance is a no-op, still `ok`
    assert nacos.hosts("OrderService") == []
    assert registry.instances("OrderService") == []


def test_list_answers_the_documented_shape(nacos, registry_settings):
    Registry(registry_settings(nacos)).register(ORDER)
    status, body = raw(nacos, "GET", "/nacos/v1/ns/instance/list",
                       {"serviceName": "OrderService", "groupName": "DEFAULT_GROUP", "healthyOnly": "true"})
    listing = json.loads(body)

    assert status == 200
    assert {"name": "DEFAULT_GROUP@@OrderService", "groupName": "DEFAULT_GROUP", "cacheMillis": 10000,
            "valid": True, "allIPs": False}.items() <= listing.items()
    [host] = listing["hosts"]
    assert {"instanceHeartBeatInterval": 5000, "instanceHeartBeatTimeOut": 15000, "ipDeleteTimeout": 30000,
            "healthy": True, "enabled": True, "ephemeral": True, "weight": 1.0}.items() <= host.items()


def test_unhealthy_after_15_s_without_a_beat_and_gone_after_30(nacos, clock: FakeClock, registry_settings):
    registry = Registry(registry_settings(nacos))
    registry.register(ORDER)

    clock.advance(14.9)
    assert registry.instances("OrderService", healthy_only=True) == [ORDER]
    clock.advance(0.1)
    assert registry.instances("OrderService", healthy_only=True) == []
    assert [i.healthy for i in registry.instances("OrderService")] == [False]

    assert registry.beat(ORDER).code == BEAT_OK  # a beat makes it healthy again
    assert registry.instances("OrderService", healthy_only=True) == [ORDER]

    clock.advance(30)
    assert registry.instances("OrderService") == []


def test_beats_answer_the_interval_and_reregister_from_the_beat(nacos, registry_settings):
    registry = Registry(registry_settings(nacos))
    registry.register(ORDER)

    beat = registry.beat(ORDER)
    assert (beat.code, beat.interval) == (BEAT_OK, 0.05)  # clientBeatInterval, in seconds
    call = nacos.calls[-1]
    assert (call.method, call.path, call.params["serviceName"]) == (
        "PUT", "/nacos/v1/ns/instance/beat", "DEFAULT_GROUP@@OrderService")

    nacos.forget("OrderService")  # the server lost it: a full beat carries enough to register it again
    assert registry.beat(ORDER).code == BEAT_OK
    assert nacos.hosts("OrderService")[0]["metadata"] == dict(ORDER.metadata)

    nacos.forget("OrderService")
    nacos.register_from_beat = False
    assert registry.beat(ORDER).code == BEAT_NOT_FOUND
    status, body = raw(nacos, "PUT", "/nacos/v1/ns/instance/beat",  # a light beat (no beat JSON)
                       {"serviceName": "DEFAULT_GROUP@@OrderService", "ip": "127.0.0.1", "port": "8001"})
    assert (status, json.loads(body)["code"]) == (200, BEAT_NOT_FOUND)


def test_namespaces_and_groups_are_separate(nacos, registry_settings):
    staging = Registry(registry_settings(nacos, nacos_namespace="staging", nacos_group="CFMP"))
    staging.register(ORDER)

    assert Registry(registry_settings(nacos)).instances("OrderService") == []
    assert [h["port"] for h in nacos.hosts("OrderService", group="CFMP", namespace="staging")] == [8001]
    assert staging.instances("OrderService") == [ORDER]
    assert nacos.calls[-1].params["namespaceId"] == "staging"


def test_form_bodies_and_lowercase_booleans_are_accepted(nacos):
    status, body = raw(nacos, "POST", "/nacos/v1/ns/instance", form={
        "serviceName": "PaymentService", "ip": "10.0.0.2", "port": "8002", "enable": "false",
        "ephemeral": "true", "metadata": json.dumps({"version": "2"})})
    assert (status, body) == (200, "ok")
    [host] = nacos.hosts("PaymentService")
    assert (host["enabled"], host["metadata"]) == (False, {"version": "2"})
    assert nacos.hosts("PaymentService", healthy_only=True) == []  # disabled: never routed to

    assert raw(nacos, "POST", "/nacos/v1/ns/instance", {"serviceName": "X", "ip": "1.2.3.4"})[0] == 400
    assert raw(nacos, "POST", "/nacos/v1/ns/instance",
               {"serviceName": "X", "ip": "1.2.3.4", "port": "1", "enable": "maybe"})[0] == 400


def test_login_is_required_when_configured_and_a_restart_forgets_tokens(clock, registry_settings):
    double = NacosDouble(clock=clock, auth=("nacos", "s3cret"))
    try:
        assert raw(double, "GET", "/nacos/v1/ns/instance/list", {"serviceName": "OrderService"})[0] == 403
        assert raw(double, "POST", "/nacos/v1/auth/login", {"username": "nacos", "password": "no"})[0] == 403
        status, body = raw(double, "POST", "/nacos/v1/auth/login", form={"username": "nacos", "password": "s3cret"})
        assert status == 200 and {"accessToken", "tokenTtl", "globalAdmin"} <= set(json.loads(body))

        with pytest.raises(RegistryError, match="privilege"):
            Registry(registry_settings(double)).instances("OrderService")
        with pytest.raises(RegistryError, match="log in"):
            Registry(registry_settings(double, nacos_username="nacos", nacos_password="no")).instances("OrderService")

        registry = Registry(registry_settings(double, nacos_username="nacos", nacos_password="s3cret"))
        before = len(double.calls)
        registry.register(ORDER)
        assert [(call.path, bool(call.params.get("accessToken"))) for call in double.calls[before:]] == [
            ("/nacos/v1/auth/login", False), ("/nacos/v1/ns/instance", True)]
        double.stop()
        double = NacosDouble(port=double.port, clock=clock, auth=("nacos", "s3cret"))  # new server, new tokens
        registry.register(ORDER)  # 403 with the old token, one new login, then accepted
        assert [call.path for call in double.calls] == [
            "/nacos/v1/ns/instance", "/nacos/v1/auth/login", "/nacos/v1/ns/instance"]
        assert len(double.hosts("OrderService")) == 1
    finally:
        double.stop()


def test_a_server_that_is_away_is_a_registry_error(registry_settings, nacos):
    address = nacos.address
    nacos.stop()
    registry = Registry(registry_settings(nacos))
    with pytest.raises(RegistryError, match=address):
        registry.register(ORDER)
    with pytest.raises(RegistryError):
        registry.instances("OrderService")


def test_the_classic_client_sends_what_the_reference_says(nacos, tmp_path):
    """Pin the behaviour the double relies on, in case a client release changes it."""
    client = NacosClient(nacos.address, logDir=str(tmp_path))
    assert client.add_naming_instance("NotificationService", "127.0.0.1", 8004) is True
    assert client.remove_naming_instance("NotificationService", "127.0.0.1", 8004) is True
    assert [(call.method, call.params["serviceName"]) for call in nacos.calls] == [
        ("POST", "NotificationService"), ("DELETE", "NotificationService")]

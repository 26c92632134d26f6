"""docker-compose.yml and the Dockerfile, checked structurally (Docker cannot run on the build machine).

The compose file must be valid Compose Specification (schema shipped by the check-jsonschema package,
loaded from the installed package, never copied here), start only real `cfmp` commands, use the
ports of DESIGN §3, set only environment keys that `common/settings.py` reads (as `.env.example`
documents them) or that a third-party image documents, and run exactly one beat.
"""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from common.cli import main
from common.cli.apps import SERVICE_APPS
from workers.pools import POOLS

ROOT = Path(__file__).resolve().parents[2]
# DESIGN §3 (and the infrastructure's standard ports): the only ports the stack may use.
PORTS = {
    "orders": 8001, "payments": 8002, "notifications": 8004, "apisix": 9080, "flower": 5555,
    "nacos": 8848, "mysql": 3306, "redis": 6379,
}
Services = dict[str, dict[str, Any]]
NACOS_IMAGE_VARS = {"MODE", "NACOS_AUTH_ENABLE", "JVM_XMS", "JVM_XMX"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def settings_keys() -> set[str]:
    """The keys `.env.example` documents: every key Settings reads (tests/common keeps them in step)."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def cfmp_services(services: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    return {name: s["command"] for name, s in services.items() if s.get("command", [None])[0] == "cfmp"}


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_compose_file_is_valid_compose_specification(compose: dict[str, Any], validator) -> None:
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_refuses_what_compose_would_refuse(validator) -> None:
    broken = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    broken["services"]["beat"]["replica"] = 2  # a typo Compose rejects
    assert not validator.is_valid(broken)


def test_the_whole_system_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert {"mysql", "redis", "nacos", "apisix", "migrate", "orders", "payments", "notifications",
            "beat", "flower"} <= set(services)
    commands = cfmp_services(services)
    assert sorted(c[2] for c in commands.values() if c[1] == "worker") == sorted(POOLS)
    assert sorted(c[2] for c in commands.values() if c[1] == "serve") == sorted(
        ["orders", "payments", "notifications"])
    assert services["nacos"]["image"].startswith("nacos/nacos-server:v2.")  # 3.2+ drops the v1 API
    assert services["nacos"]["environment"]["MODE"] == "standalone"
    assert re.fullmatch(r"apache/apisix:3\.[\d.]+-debian", services["apisix"]["image"])
    assert services["mysql"]["image"].startswith("mysql:8")
    command = services["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


@pytest.mark.parametrize("name", ["orders", "payments", "notifications", "worker-orders", "worker-payments",
                                  "worker-risk", "worker-notifications", "beat", "flower", "migrate"])
def test_every_python_process_runs_a_real_cfmp_command(services: Services, name: str) -> None:
    command = services[name]["command"]
    assert command[0] == "cfmp"
    result = CliRunner().invoke(main, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    if command[1] == "serve":
        assert command[2] in SERVICE_APPS
    if command[1] == "worker":
        assert command[2] in POOLS


def test_exactly_one_beat(services: dict[str, dict[str, Any]]) -> None:
    beats = [name for name, command in cfmp_services(services).items() if command[1] == "beat"]
    assert beats == ["beat"]
    assert "deploy" not in services["beat"] and "scale" not in services["beat"]


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}
    ports |= {int(p) for p in service.get("expose", [])}
    command = service.get("command") or []
    if "--port" in command:
        ports.add(int(command[command.index("--port") + 1]))
    return ports


def test_ports_are_the_designed_ones(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        expected = {PORTS[name]} if name in PORTS else set()
        assert container_ports(service) == expected, name
    # Published infrastructure ports listen on loopback only; clients enter through APISIX.
    for name in ("mysql", "redis", "nacos"):
        assert all(str(p).startswith("127.0.0.1:") for p in services[name]["ports"])
    assert "ports" not in services["flower"]  # Flower's /metrics and /healthcheck skip its auth


def test_environment_keys_are_settings_or_documented_image_variables(services: Services) -> None:
    keys = settings_keys()
    from gateway.apisix_render import APISIX_ENVS

    allowed_extra = {
        "mysql": {k for k in services["mysql"]["environment"] if k.startswith("MYSQL_")},
        "nacos": NACOS_IMAGE_VARS,
        "apisix": set(APISIX_ENVS),  # what the rendered APISIX files substitute
        "flower": {"FLOWER_URL_PREFIX"},  # Flower reads FLOWER_<option> itself
    }
    for name, service in services.items():
        for key in service.get("environment", {}):
            assert key in keys or key in allowed_extra.get(name, set()), f"{name}: {key}"
    assert "MODE" not in keys  # the Nacos image's variables are not ours


def test_python_processes_read_env_and_run_in_production_against_the_stack(
        services: dict[str, dict[str, Any]]) -> None:
    for name in cfmp_services(services):
        service = services[name]
        env = service["environment"]
        assert service["env_file"] == ".env"
        assert env["ENV"] == "production"
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["NACOS_SERVER"] == "nacos:8848"
        for stem in ("ORDER", "PAYMENT", "NOTIFICATION"):
            assert env[f"{stem}_DB_HOST"] == "mysql"
    for name in ("orders", "payments", "notifications", "worker-orders", "worker-payments", "worker-risk",
                 "worker-notifications"):
        address = services[name]["networks"]["cfmp"]["ipv4_address"]
        assert services[name]["environment"]["SERVICE_IP"] == address  # what Nacos hands APISIX


def test_everything_waits_for_health_and_for_migrations(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name != "migrate":
            assert "healthcheck" in service, name
        for dependency, condition in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency == "migrate" else "service_healthy"
            assert condition == {"condition": expected}, (name, dependency)
    for name, command in cfmp_services(services).items():
        if command[1] in ("serve", "worker", "beat"):
            assert "migrate" in services[name]["depends_on"], name
    assert services["migrate"]["command"] == ["cfmp", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"


def test_apisix_mounts_the_rendered_files(services: dict[str, dict[str, Any]]) -> None:
    volumes = services["apisix"]["volumes"]
    assert "./gateway/apisix/config.yaml:/usr/local/apisix/conf/config.yaml:ro" in volumes
    assert "./gateway/apisix/apisix.yaml:/usr/local/apisix/conf/apisix.yaml:ro" in volumes


def test_mysql_init_script_creates_one_database_and_user_per_service(services: Services) -> None:
    assert "./deploy/mysql:/docker-entrypoint-initdb.d:ro" in services["mysql"]["volumes"]
    script = (ROOT / "deploy" / "mysql" / "01-databases.sh").read_text(encoding="utf-8")
    for stem in ("ORDER", "PAYMENT", "NOTIFICATION"):
        assert f"CREATE DATABASE IF NOT EXISTS \\`${{{stem}_DB_NAME}}\\`" in script
        assert f"CREATE USER IF NOT EXISTS '${{{stem}_DB_USER}}'@'%'" in script
        assert f"ON \\`${{{stem}_DB_NAME}}\\`.* TO '${{{stem}_DB_USER}}'@'%'" in script


def test_dockerfile_builds_one_non_root_image_for_every_process() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, flags=re.MULTILINE)
    assert re.search(r"^RUN pip install \.", dockerfile, flags=re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert dockerfile.rstrip().endswith('CMD ["cfmp", "--help"]')
    for package in ("api", "common", "gateway", "models", "tasks", "workers"):
        assert f"COPY {package} ./{package}" in dockerfile

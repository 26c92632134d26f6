"""The one Settings object: every process reads its configuration from here.

`Settings.from_env()` reads the environment (and `.env` when present), coerces every value strictly
and raises `SettingsError` naming the key on the first bad one. Nothing else reads `os.environ`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import quote

from dotenv import dotenv_values

DEV_JWT_SECRET = "cfmp-development-secret-do-not-use-in-production-" + "0" * 16  # 64 bytes: fits HS512
DEV_SANDBOX_SECRET = "cfmp-sandbox-provider-secret-development-only"
ALIPAY_GATEWAY_URL = "https://openapi.alipay.com/gateway.do"
WECHAT_PAY_BASE_URL = "https://api.mch.weixin.qq.com"
SERVICES = ("orders", "payments", "notifications")
# The env-var stem of each service's database settings, as the seed named them.
DB_PREFIX = {"orders": "ORDER", "payments": "PAYMENT", "notifications": "NOTIFICATION"}
DEFAULT_PORTS = {"orders": 8001, "payments": 8002, "notifications": 8004, "gateway": 9080, "flower": 5555}
ENVIRONMENTS = ("development", "test", "production")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the key."""


def _bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{key}: expected a boolean (true/false), got {raw!r}")


def _int(key: str, raw: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{key}: expected an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{key}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{key}: must be at most {maximum}, got {value}")
    return value


def _float(key: str, raw: str, minimum: float = 0.0) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{key}: expected a number, got {raw!r}") from None
    if not value > minimum:
        raise SettingsError(f"{key}: must be greater than {minimum}, got {raw!r}")
    return value


def _host_port(key: str, raw: str) -> str:
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not host:
        raise SettingsError(f"{key}: expected host:port, got {raw!r}")
    _int(key, port, 1, 65535)
    return raw.strip()


def _url(key: str, raw: str, schemes: tuple[str, ...]) -> str:
    value = raw.strip()
    if not any(value.startswith(f"{s}://") for s in schemes):
        raise SettingsError(f"{key}: expected a URL starting with {' or '.join(schemes)}://, got {raw!r}")
    return value


def _file(key: str, raw: str) -> str:
    path = Path(raw.strip())
    if not path.is_file() or not os.access(path, os.R_OK):
        raise SettingsError(f"{key}: no readable file at {raw!r}")
    return str(path)


def _provider(name: str, values: Mapping[str, str | None]) -> dict[str, str | None]:
    """A real provider's required keys: all set (configured) or all unset (not configured); never half."""
    stripped = {key: (value or "").strip() or None for key, value in values.items()}
    given = [key for key, value in stripped.items() if value]
    missing = [key for key, value in stripped.items() if not value]
    if given and missing:
        raise SettingsError(f"{missing[0]}: required when {given[0]} is set ({name} is half configured)")
    return stripped


def _database_url(env: Mapping[str, str], service: str, var_dir: Path) -> tuple[str, bool]:
    """The SQLAlchemy URL of one service's database and whether it is the embedded default."""
    stem = DB_PREFIX[service]
    if env.get(f"{stem}_DB_URL"):
        return _url(f"{stem}_DB_URL", env[f"{stem}_DB_URL"], ("mysql+pymysql", "sqlite")), False
    host = env.get(f"{stem}_DB_HOST")
    if not host:
        return f"sqlite:///{var_dir.resolve() / (service + '.db')}", True
    port = _int(f"{stem}_DB_PORT", env.get(f"{stem}_DB_PORT", "3306"), 1, 65535)
    name = env.get(f"{stem}_DB_NAME") or ""
    if not name:
        raise SettingsError(f"{stem}_DB_NAME: required when {stem}_DB_HOST is set")
    user = quote(env.get(f"{stem}_DB_USER", "root"), safe="")
    password = quote(env.get(f"{stem}_DB_PASSWORD", ""), safe="")
    auth = f"{user}:{password}" if password else user
    return f"mysql+pymysql://{auth}@{host}:{port}/{name}?charset=utf8mb4", False


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    # Databases: one SQLAlchemy URL per service bind.
    database_urls: Mapping[str, str] = field(default_factory=dict)
    # Celery.
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = "redis://127.0.0.1:6379/1"
    # Prefix of every broker and result key (isolates test runs sharing one Redis).
    celery_key_prefix: str = ""
    # True when CELERY_BROKER_URL was not given: `cfmp up` may then start a private Redis.
    uses_embedded_broker: bool = True
    # Seconds before Redis hands an unacknowledged message to another worker; longer than any
    # countdown or ETA the system uses (the longest retry backoff is capped well below it).
    broker_visibility_timeout: int = 3600
    # Beat intervals (seconds).
    order_sweep_interval: int = 30
    outbox_relay_interval: int = 5
    # How far back (seconds) the relay re-publishes events after the broker came back without the
    # relay's marker, i.e. with none of its data (tasks.outbox_replay).
    outbox_replay_window: int = 3600
    # New payments are refused (503 `overloaded`) while the risk and payments queues hold more tasks
    # than this: work admitted past it would time out before the pools reach it. 0: never refused.
    payment_max_backlog: int = 2000
    # Identity.
    jwt_secret: str = DEV_JWT_SECRET
    jwt_key: str = "cfmp"
    jwt_algorithm: str = "HS256"
    # Nacos (None: no registry, static upstreams).
    nacos_server: str | None = None
    nacos_namespace: str = ""
    nacos_group: str = "DEFAULT_GROUP"
    nacos_username: str | None = None
    nacos_password: str | None = None
    service_ip: str = "127.0.0.1"
    # HTTP processes.
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    upstreams: Mapping[str, str] = field(
        default_factory=lambda: {s: f"http://127.0.0.1:{DEFAULT_PORTS[s]}" for s in SERVICES}
    )
    gateway_max_body: int = 1024 * 1024
    gateway_connect_timeout: float = 2.0
    gateway_read_timeout: float = 15.0
    # Domain.
    order_payment_timeout: int = 1800
    idempotency_ttl: int = 86400
    # Payments: seconds a payment may stay pending, beat interval of the payment sweeps, seconds
    # before a payment still pending is re-driven, where providers send callbacks, and the sandbox
    # provider's callback secret and delay.
    payment_expiry: int = 900
    payment_sweep_interval: int = 30
    payment_redrive_after: int = 60
    payment_reconcile_after: int = 60
    payment_callback_base_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['gateway']}"
    sandbox_secret: str = DEV_SANDBOX_SECRET
    # The sandbox "succeeds" by itself: on by default outside production, off in production unless asked.
    sandbox_enabled: bool = True
    sandbox_callback_delay: float = 1.0
    # Real providers; None = not configured (the method is refused). Key files are PEM or base64 DER.
    alipay_app_id: str | None = None
    alipay_private_key_file: str | None = None  # our application private key (signs requests)
    alipay_public_key_file: str | None = None  # Alipay's public key (verifies responses and notifications)
    alipay_gateway_url: str = ALIPAY_GATEWAY_URL
    wechat_pay_app_id: str | None = None
    wechat_pay_mch_id: str | None = None
    wechat_pay_private_key_file: str | None = None  # the merchant API private key (signs requests)
    wechat_pay_cert_serial: str | None = None  # the serial number of that key's merchant certificate
    wechat_pay_platform_public_key_file: str | None = None  # WeChat Pay's key (verifies answers, callbacks)
    wechat_pay_api_v3_key: str | None = None  # 32 bytes: decrypts callback resources (AEAD_AES_256_GCM)
    wechat_pay_base_url: str = WECHAT_PAY_BASE_URL
    # Notifications: the SMTP relay of the email channel (no host = email is not configured, such
    # deliveries go dead at once) and the base delay, in seconds, of the delivery retry backoff.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_from: str = "CFMP <no-reply@cfmp.local>"
    notification_retry_base: float = 10.0
    # Operations.
    log_dir: str = "logs"
    log_level: str = "INFO"
    flower_basic_auth: str | None = None
    # Path Flower is served under when a proxy (APISIX's /flower route) fronts it; "" = the root.
    flower_url_prefix: str = ""
    var_dir: str = "var"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, dotenv_path: str | None = ".env") -> Settings:
        """Build settings from `environ` (default: os.environ) over the values of `.env`."""
        env: dict[str, str] = {}
        if dotenv_path and Path(dotenv_path).is_file():
            env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        env.update(os.environ if environ is None else environ)
        return cls._from_mapping(env)

    @classmethod
    def _from_mapping(cls, raw: Mapping[str, str]) -> Settings:
        env = {key: value for key, value in raw.items() if value != ""}  # `KEY=` means unset
        mode = env.get("ENV", "development").strip().lower()
        if mode not in ENVIRONMENTS:
            raise SettingsError(f"ENV: expected one of {', '.join(ENVIRONMENTS)}, got {mode!r}")
        var_dir = Path(env.get("VAR_DIR", "var"))
        urls, embedded = {}, []
        for service in SERVICES:
            urls[service], is_default = _database_url(env, service, var_dir)
            if is_default:
                embedded.append(f"{DB_PREFIX[service]}_DB_HOST")
        ports = {
            name: _int(f"{name.upper()}_PORT", env.get(f"{name.upper()}_PORT", str(default)), 0, 65535)
            for name, default in DEFAULT_PORTS.items()
        }
        upstreams = {
            service: _url(key, env.get(key, f"http://127.0.0.1:{ports[service]}"), ("http", "https"))
            for service, key in (
                ("orders", "ORDER_SERVICE_URL"),
                ("payments", "PAYMENT_SERVICE_URL"),
                ("notifications", "NOTIFICATION_SERVICE_URL"),
            )
        }
        broker = env.get("CELERY_BROKER_URL")
        if not broker:
            embedded.append("CELERY_BROKER_URL")
        jwt_secret = env.get("JWT_SECRET")
        if not jwt_secret:
            embedded.append("JWT_SECRET")
        algorithm = env.get("JWT_ALGORITHM", "HS256").strip()
        if algorithm not in ("HS256", "HS384", "HS512"):
            raise SettingsError(f"JWT_ALGORITHM: expected HS256, HS384 or HS512, got {algorithm!r}")
        minimum = int(algorithm[2:]) // 8  # RFC 7518 §3.2: a key as long as the hash
        if jwt_secret and len(jwt_secret.encode()) < minimum:
            raise SettingsError(f"JWT_SECRET: must be at least {minimum} bytes for {algorithm} (RFC 7518 §3.2)")
        flower_auth = env.get("FLOWER_BASIC_AUTH") or None
        if flower_auth is not None and ":" not in flower_auth:
            raise SettingsError("FLOWER_BASIC_AUTH: expected user:password")
        level = env.get("LOG_LEVEL", "INFO").strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got {level!r}")
        alipay = _provider("alipay", {
            "ALIPAY_APP_ID": env.get("ALIPAY_APP_ID"),
            "ALIPAY_PRIVATE_KEY_FILE": env.get("ALIPAY_PRIVATE_KEY_FILE"),
            "ALIPAY_PUBLIC_KEY_FILE": env.get("ALIPAY_PUBLIC_KEY_FILE"),
        })
        wechat = _provider("wechat_pay", {
            "WECHAT_PAY_APP_ID": env.get("WECHAT_PAY_APP_ID"),
            "WECHAT_PAY_MCH_ID": env.get("WECHAT_PAY_MCH_ID"),
            "WECHAT_PAY_PRIVATE_KEY_FILE": env.get("WECHAT_PAY_PRIVATE_KEY_FILE"),
            "WECHAT_PAY_CERT_SERIAL": env.get("WECHAT_PAY_CERT_SERIAL"),
            "WECHAT_PAY_PLATFORM_PUBLIC_KEY_FILE": env.get("WECHAT_PAY_PLATFORM_PUBLIC_KEY_FILE"),
            "WECHAT_PAY_API_V3_KEY": env.get("WECHAT_PAY_API_V3_KEY"),
        })
        for key in ("ALIPAY_PRIVATE_KEY_FILE", "ALIPAY_PUBLIC_KEY_FILE"):
            alipay[key] = alipay[key] and _file(key, alipay[key])
        for key in ("WECHAT_PAY_PRIVATE_KEY_FILE", "WECHAT_PAY_PLATFORM_PUBLIC_KEY_FILE"):
            wechat[key] = wechat[key] and _file(key, wechat[key])
        if wechat["WECHAT_PAY_API_V3_KEY"] and len(wechat["WECHAT_PAY_API_V3_KEY"].encode()) != 32:
            raise SettingsError("WECHAT_PAY_API_V3_KEY: must be exactly 32 bytes (the AES-256 key of APIv3)")
        settings = cls(
            env=mode,
            database_urls=urls,
            broker_url=_url("CELERY_BROKER_URL", broker or cls.broker_url, ("redis", "rediss")),
            result_backend=_url(
                "CELERY_RESULT_BACKEND", env.get("CELERY_RESULT_BACKEND") or cls.result_backend, ("redis", "rediss")
            ),
            celery_key_prefix=env.get("CELERY_KEY_PREFIX", ""),
            uses_embedded_broker=not broker,
            broker_visibility_timeout=_int("BROKER_VISIBILITY_TIMEOUT", env.get("BROKER_VISIBILITY_TIMEOUT", "3600"), 3),
            order_sweep_interval=_int(
                "ORDER_SWEEP_INTERVAL", env.get("ORDER_SWEEP_INTERVAL", "5" if mode == "development" else "30"), 1
            ),
            outbox_relay_interval=_int("OUTBOX_RELAY_INTERVAL", env.get("OUTBOX_RELAY_INTERVAL", "5"), 1),
            outbox_replay_window=_int("OUTBOX_REPLAY_WINDOW", env.get("OUTBOX_REPLAY_WINDOW", "3600"), 0),
            payment_max_backlog=_int("PAYMENT_MAX_BACKLOG", env.get("PAYMENT_MAX_BACKLOG", "2000"), 0),
            jwt_secret=jwt_secret or DEV_JWT_SECRET,
            jwt_key=env.get("JWT_KEY", "cfmp").strip() or "cfmp",
            jwt_algorithm=algorithm,
            nacos_server=_host_port("NACOS_SERVER", env["NACOS_SERVER"]) if env.get("NACOS_SERVER") else None,
            nacos_namespace=env.get("NACOS_NAMESPACE", ""),
            nacos_group=env.get("NACOS_GROUP", "DEFAULT_GROUP") or "DEFAULT_GROUP",
            nacos_username=env.get("NACOS_USERNAME") or None,
            nacos_password=env.get("NACOS_PASSWORD") or None,
            service_ip=env.get("SERVICE_IP", "127.0.0.1"),
            ports=ports,
            upstreams=upstreams,
            gateway_max_body=_int("GATEWAY_MAX_BODY", env.get("GATEWAY_MAX_BODY", str(cls.gateway_max_body)), 1024),
            gateway_connect_timeout=_float("GATEWAY_CONNECT_TIMEOUT", env.get("GATEWAY_CONNECT_TIMEOUT", "2")),
            gateway_read_timeout=_float("GATEWAY_READ_TIMEOUT", env.get("GATEWAY_READ_TIMEOUT", "15")),
            order_payment_timeout=_int("ORDER_PAYMENT_TIMEOUT", env.get("ORDER_PAYMENT_TIMEOUT", "1800"), 1),
            idempotency_ttl=_int("IDEMPOTENCY_TTL", env.get("IDEMPOTENCY_TTL", "86400"), 60),
            payment_expiry=_int("PAYMENT_EXPIRY", env.get("PAYMENT_EXPIRY", "900"), 1),
            payment_sweep_interval=_int(
                "PAYMENT_SWEEP_INTERVAL", env.get("PAYMENT_SWEEP_INTERVAL", "5" if mode == "development" else "30"), 1
            ),
            payment_redrive_after=_int("PAYMENT_REDRIVE_AFTER", env.get("PAYMENT_REDRIVE_AFTER", "60"), 1),
            payment_reconcile_after=_int("PAYMENT_RECONCILE_AFTER", env.get("PAYMENT_RECONCILE_AFTER", "60"), 1),
            payment_callback_base_url=_url("PAYMENT_CALLBACK_BASE_URL", env.get(
                "PAYMENT_CALLBACK_BASE_URL", f"http://127.0.0.1:{ports['gateway']}"), ("http", "https")).rstrip("/"),
            sandbox_secret=env.get("SANDBOX_SECRET") or DEV_SANDBOX_SECRET,
            sandbox_enabled=_bool("SANDBOX_ENABLED", env.get("SANDBOX_ENABLED") or str(mode != "production")),
            sandbox_callback_delay=_float("SANDBOX_CALLBACK_DELAY", env.get("SANDBOX_CALLBACK_DELAY", "1")),
            alipay_app_id=alipay["ALIPAY_APP_ID"],
            alipay_private_key_file=alipay["ALIPAY_PRIVATE_KEY_FILE"],
            alipay_public_key_file=alipay["ALIPAY_PUBLIC_KEY_FILE"],
            alipay_gateway_url=_url("ALIPAY_GATEWAY_URL", env.get("ALIPAY_GATEWAY_URL", ALIPAY_GATEWAY_URL),
                                    ("http", "https")),
            wechat_pay_app_id=wechat["WECHAT_PAY_APP_ID"],
            wechat_pay_mch_id=wechat["WECHAT_PAY_MCH_ID"],
            wechat_pay_private_key_file=wechat["WECHAT_PAY_PRIVATE_KEY_FILE"],
            wechat_pay_cert_serial=wechat["WECHAT_PAY_CERT_SERIAL"],
            wechat_pay_platform_public_key_file=wechat["WECHAT_PAY_PLATFORM_PUBLIC_KEY_FILE"],
            wechat_pay_api_v3_key=wechat["WECHAT_PAY_API_V3_KEY"],
            wechat_pay_base_url=_url("WECHAT_PAY_BASE_URL", env.get("WECHAT_PAY_BASE_URL", WECHAT_PAY_BASE_URL),
                                     ("http", "https")).rstrip("/"),
            smtp_host=env.get("SMTP_HOST", "").strip() or None,
            smtp_port=_int("SMTP_PORT", env.get("SMTP_PORT", "25"), 1, 65535),
            smtp_user=env.get("SMTP_USER") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_starttls=_bool("SMTP_STARTTLS", env.get("SMTP_STARTTLS", "false")),
            smtp_from=env.get("SMTP_FROM", cls.smtp_from),
            notification_retry_base=_float("NOTIFICATION_RETRY_BASE", env.get("NOTIFICATION_RETRY_BASE", "10")),
            log_dir=env.get("LOG_DIR", "logs") or "logs",
            log_level=level,
            flower_basic_auth=flower_auth,
            flower_url_prefix=env.get("FLOWER_URL_PREFIX", "").strip("/"),
            var_dir=str(var_dir),
        )
        if mode == "production" and embedded:
            raise SettingsError(f"{embedded[0]}: required when ENV=production (embedded default in use)")
        if mode == "production" and settings.sandbox_enabled and settings.sandbox_secret == DEV_SANDBOX_SECRET:
            raise SettingsError("SANDBOX_SECRET: required when SANDBOX_ENABLED in ENV=production (the default is public)")
        return settings

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)

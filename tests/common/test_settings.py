"""Settings: strict coercion, one error naming the key, embedded defaults refused in production."""
from __future__ import annotations

import pytest

from common.settings import DEV_JWT_SECRET, Settings, SettingsError


def from_env(**env) -> Settings:
    return Settings.from_env(env, dotenv_path=None)


def test_embedded_defaults():
    settings = from_env(VAR_DIR="/srv/var")
    assert settings.env == "development"
    assert settings.database_urls["orders"] == "sqlite:////srv/var/orders.db"
    assert settings.broker_url == "redis://127.0.0.1:6379/0" and settings.uses_embedded_broker
    assert settings.ports == {"orders": 8001, "payments": 8002, "notifications": 8004, "gateway": 9080, "flower": 5555}
    assert settings.upstreams["orders"] == "http://127.0.0.1:8001"
    assert settings.jwt_secret == DEV_JWT_SECRET and settings.nacos_server is None
    assert settings.smtp_host is None and settings.smtp_port == 25 and not settings.smtp_starttls
    assert from_env(SMTP_HOST="mail", SMTP_STARTTLS="true").smtp_starttls
    assert settings.payment_callback_base_url == "http://127.0.0.1:9080"
    assert from_env(GATEWAY_PORT="9999").payment_callback_base_url == "http://127.0.0.1:9999"


def test_mysql_from_the_seed_variables():
    settings = from_env(ORDER_DB_HOST="db", ORDER_DB_PORT="3307", ORDER_DB_NAME="orders", ORDER_DB_USER="app",
                        ORDER_DB_PASSWORD="p@ss:word")
    assert settings.database_urls["orders"] == "mysql+pymysql://app:p%40ss%3Aword@db:3307/orders?charset=utf8mb4"
    assert settings.database_urls["payments"].startswith("sqlite:///")


def test_url_overrides_parts():
    settings = from_env(PAYMENT_DB_URL="mysql+pymysql://u:p@h/payments", PAYMENT_DB_HOST="ignored")
    assert settings.database_urls["payments"] == "mysql+pymysql://u:p@h/payments"


@pytest.mark.parametrize("env,key", [
    ({"ORDER_DB_HOST": "db", "ORDER_DB_PORT": "abc", "ORDER_DB_NAME": "o"}, "ORDER_DB_PORT"),
    ({"ORDER_DB_HOST": "db"}, "ORDER_DB_NAME"),
    ({"ORDERS_PORT": "70000"}, "ORDERS_PORT"),
    ({"ORDER_PAYMENT_TIMEOUT": "soon"}, "ORDER_PAYMENT_TIMEOUT"),
    ({"ORDER_PAYMENT_TIMEOUT": "0"}, "ORDER_PAYMENT_TIMEOUT"),
    ({"CELERY_BROKER_URL": "amqp://x"}, "CELERY_BROKER_URL"),
    ({"NACOS_SERVER": "nacos"}, "NACOS_SERVER"),
    ({"JWT_SECRET": "short"}, "JWT_SECRET"),
    ({"JWT_ALGORITHM": "none"}, "JWT_ALGORITHM"),
    ({"FLOWER_BASIC_AUTH": "nopassword"}, "FLOWER_BASIC_AUTH"),
    ({"ENV": "staging"}, "ENV"),
    ({"GATEWAY_READ_TIMEOUT": "-1"}, "GATEWAY_READ_TIMEOUT"),
    ({"ORDER_SERVICE_URL": "ftp://x"}, "ORDER_SERVICE_URL"),
    ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
    ({"SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS"),
    ({"NOTIFICATION_RETRY_BASE": "0"}, "NOTIFICATION_RETRY_BASE"),
    ({"PAYMENT_EXPIRY": "0"}, "PAYMENT_EXPIRY"),
    ({"PAYMENT_CALLBACK_BASE_URL": "gateway:9080"}, "PAYMENT_CALLBACK_BASE_URL"),
    ({"SANDBOX_CALLBACK_DELAY": "soon"}, "SANDBOX_CALLBACK_DELAY"),
])
def test_bad_values_name_the_key(env, key):
    with pytest.raises(SettingsError) as error:
        from_env(**env)
    assert str(error.value).startswith(f"{key}:")
    assert "\n" not in str(error.value)


def test_production_refuses_embedded_defaults():
    with pytest.raises(SettingsError, match="^ORDER_DB_HOST:"):
        from_env(ENV="production")
    full = {f"{s}_DB_URL": f"mysql+pymysql://u:p@db/{s.lower()}" for s in ("ORDER", "PAYMENT", "NOTIFICATION")}
    with pytest.raises(SettingsError, match="^CELERY_BROKER_URL:"):
        from_env(ENV="production", **full)
    with pytest.raises(SettingsError, match="^JWT_SECRET:"):
        from_env(ENV="production", CELERY_BROKER_URL="redis://r:6379/0", **full)
    settings = from_env(ENV="production", CELERY_BROKER_URL="redis://r:6379/0", JWT_SECRET="x" * 32, **full)
    assert settings.env == "production"


def test_dotenv_file_is_read_and_environment_wins(tmp_path):
    path = tmp_path / ".env"
    path.write_text("JWT_KEY=from-file\nORDER_PAYMENT_TIMEOUT=60\n")
    settings = Settings.from_env({"ORDER_PAYMENT_TIMEOUT": "90"}, dotenv_path=str(path))
    assert settings.jwt_key == "from-file" and settings.order_payment_timeout == 90

"""The real providers' settings: all of a provider's keys or none, named in every error; a provider
without them is not configured, and says which key is missing."""
from __future__ import annotations

import pytest

from common.settings import Settings, SettingsError
from tasks.payments.providers import ProviderNotConfigured, get_provider, is_configured
from tests.support.doubles import key_pair

API_V3_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return key_pair(tmp_path_factory.mktemp("keys"), "k")


def alipay_env(pair) -> dict:
    return {"ALIPAY_APP_ID": "2021", "ALIPAY_PRIVATE_KEY_FILE": pair.private_file,
            "ALIPAY_PUBLIC_KEY_FILE": pair.public_file}


def wechat_env(pair) -> dict:
    return {"WECHAT_PAY_APP_ID": "wx1", "WECHAT_PAY_MCH_ID": "1230000109",
            "WECHAT_PAY_PRIVATE_KEY_FILE": pair.private_file, "WECHAT_PAY_CERT_SERIAL": "5157F09E", "WECHAT_PAY_PLATFORM_PUBLIC_KEY_FILE": pair.public_file,
            "WECHAT_PAY_API_V3_KEY": API_V3_KEY}


def from_env(**env) -> Settings:
    return Settings.from_env(env, dotenv_path=None)


def test_unset_means_not_configured():
    settings = from_env()
    assert settings.alipay_app_id is None and settings.wechat_pay_mch_id is None
    assert settings.alipay_gateway_url == "https://openapi.alipay.com/gateway.do"
    assert settings.wechat_pay_base_url == "https://api.mch.weixin.qq.com"
    assert [is_configured(name, settings) for name in ("sandbox", "alipay", "wechat_pay", "paypal")] == [
        True, False, False, False]
    with pytest.raises(ProviderNotConfigured, match="ALIPAY_APP_ID"):
        get_provider("alipay", settings)
    with pytest.raises(ProviderNotConfigured, match="WECHAT_PAY_APP_ID"):
        get_provider("wechat_pay", settings)


def test_fully_set_means_configured(pair):
    settings = from_env(**alipay_env(pair), **wechat_env(pair), WECHAT_PAY_BASE_URL="https://wx.example/")
    assert is_configured("alipay", settings) and is_configured("wechat_pay", settings)
    assert settings.wechat_pay_base_url == "https://wx.example"
    assert get_provider("alipay", settings).app_id == "2021"


@pytest.mark.parametrize("drop", ["ALIPAY_APP_ID", "ALIPAY_PRIVATE_KEY_FILE", "ALIPAY_PUBLIC_KEY_FILE",
                                  "WECHAT_PAY_CERT_SERIAL", "WECHAT_PAY_API_V3_KEY"])
def test_half_a_configuration_names_the_missing_key(pair, drop):
    env = {**alipay_env(pair), **wechat_env(pair)}
    env[drop] = ""
    with pytest.raises(SettingsError) as error:
        from_env(**env)
    assert str(error.value).startswith(f"{drop}:")


@pytest.mark.parametrize("change,key", [
    ({"ALIPAY_PRIVATE_KEY_FILE": "/nonexistent/app.key"}, "ALIPAY_PRIVATE_KEY_FILE"),
    ({"WECHAT_PAY_PLATFORM_PUBLIC_KEY_FILE": "/nonexistent/wx.pem"}, "WECHAT_PAY_PLATFORM_PUBLIC_KEY_FILE"),
    ({"WECHAT_PAY_API_V3_KEY": "too-short"}, "WECHAT_PAY_API_V3_KEY"),
    ({"WECHAT_PAY_API_V3_KEY": API_V3_KEY + "x"}, "WECHAT_PAY_API_V3_KEY"),
    ({"ALIPAY_GATEWAY_URL": "openapi.alipay.com/gateway.do"}, "ALIPAY_GATEWAY_URL"),
    ({"WECHAT_PAY_BASE_URL": "ftp://api.mch.weixin.qq.com"}, "WECHAT_PAY_BASE_URL"),
])
def test_bad_values_name_the_key(pair, change, key):
    with pytest.raises(SettingsError) as error:
        from_env(**{**alipay_env(pair), **wechat_env(pair), **change})
    assert str(error.value).startswith(f"{key}:") and "\n" not in str(error.value)


def test_a_key_file_that_holds_no_key_is_not_configured(pair, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("this is not a key\n")
    settings = from_env(**alipay_env(pair), **wechat_env(pair)).replace(alipay_public_key_file=str(junk),
                                                                        wechat_pay_private_key_file=str(junk))
    with pytest.raises(ProviderNotConfigured, match="^ALIPAY_PUBLIC_KEY_FILE:"):
        get_provider("alipay", settings)
    with pytest.raises(ProviderNotConfigured, match="^WECHAT_PAY_PRIVATE_KEY_FILE:"):
        get_provider("wechat_pay", settings)
    assert not is_configured("alipay", settings) and not is_configured("wechat_pay", settings)


def test_the_sandbox_is_off_in_production_unless_asked_for_and_then_needs_its_own_secret():
    full = {f"{s}_DB_URL": f"mysql+pymysql://u:p@db/{s.lower()}" for s in ("ORDER", "PAYMENT", "NOTIFICATION")}
    production = {"ENV": "production", "CELERY_BROKER_URL": "redis://r:6379/0", "JWT_SECRET": "x" * 32, **full}
    assert is_configured("sandbox", from_env())  # development: on
    settings = from_env(**production)
    assert not settings.sandbox_enabled and not is_configured("sandbox", settings)
    with pytest.raises(ProviderNotConfigured, match="SANDBOX_ENABLED"):
        get_provider("sandbox", settings)
    with pytest.raises(SettingsError, match="^SANDBOX_SECRET:"):  # the development secret is public
        from_env(**production, SANDBOX_ENABLED="true")
    staged = from_env(**production, SANDBOX_ENABLED="true", SANDBOX_SECRET="s" * 32)
    assert is_configured("sandbox", staged)
    assert not is_configured("sandbox", from_env(SANDBOX_ENABLED="false"))

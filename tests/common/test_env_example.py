""".env.example documents every key Settings reads, and nothing it does not."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_key():
    source = (ROOT / "common" / "settings.py").read_text()
    read = set(re.findall(r'(?:env\.get|env\[)\(?\s*[f]?"([A-Z][A-Z0-9_]+)"', source))
    read |= set(re.findall(r'\("[a-z]+", "([A-Z_]+_URL)"\)', source))  # the upstream URL table
    read |= {f"{stem}_DB_{part}" for stem in ("ORDER", "PAYMENT", "NOTIFICATION")
             for part in ("HOST", "PORT", "NAME", "USER", "PASSWORD", "URL")}
    read |= {f"{name}_PORT" for name in ("ORDERS", "PAYMENTS", "NOTIFICATIONS", "GATEWAY", "FLOWER")}
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - documented == set(), "undocumented keys"
    assert documented - read == set(), "documented keys nobody reads"


def test_env_example_is_a_valid_configuration(tmp_path):
    from common.settings import Settings

    settings = Settings.from_env({}, dotenv_path=str(ROOT / ".env.example"))
    assert settings.env == "development" and settings.ports["gateway"] == 9080

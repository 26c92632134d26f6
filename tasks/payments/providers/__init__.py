"""Payment providers behind one interface: charge a payment, verify and read a signed callback.

Adapters never touch the database; actions hand them the payment and record what they answer.
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from common.settings import Settings


class InvalidCallback(Exception):
    """The callback's signature, timestamp or body cannot be trusted: reject it, change nothing."""


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


@dataclass(frozen=True)
class ChargeRequest:
    payment_id: int
    payment_uuid: str
    amount: Decimal
    currency: str

    @property
    def idempotency_key(self) -> str:
        """Derived from the payment, so a re-run charge is the same charge at the provider."""
        return f"cfmp:charge:{self.payment_uuid}"


@dataclass(frozen=True)
class ChargeResult:
    reference: str
    payment_data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackEvent:
    event_id: str
    reference: str
    outcome: Outcome
    amount: Decimal


class Provider(Protocol):
    name: str

    def charge(self, request: ChargeRequest) -> ChargeResult: ...

    def verify_callback(self, headers: Mapping[str, str], raw: bytes) -> CallbackEvent: ...


# Schedules the sandbox's own callback: (reference, amount, currency, delay in seconds) -> None; given by
# the task layer, so the adapter stays free of Celery.
Scheduler = Callable[[str, Decimal, str, float], None]


def get_provider(name: str, settings: Settings, schedule: Scheduler | None = None) -> Provider:
    """The adapter for `name`; KeyError for a provider this system does not have."""
    from tasks.payments.providers.sandbox import SandboxProvider

    adapters = {"sandbox": lambda: SandboxProvider(settings, schedule)}
    return adapters[name]()

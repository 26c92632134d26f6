"""Payment providers behind one interface: charge, query a charge, refund, verify a signed callback.

Adapters never touch the database; actions hand them the payment and record what they answer.
Every call to a provider carries an idempotency key derived from our ids, so a task re-run after a
crash repeats the same request instead of making a second charge or refund. A provider that cannot
be reached (or answers 5xx) raises `ProviderUnavailable`: the outcome is unknown, the caller retries
or reconciles later, and never assumes failure.
"""
from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from common.settings import Settings
from tasks.errors import PermanentError, TransientError


class InvalidCallback(Exception):
    """The callback's signature, timestamp or body cannot be trusted: reject it, change nothing."""


class ProviderUnavailable(TransientError):
    """No usable answer (network error, timeout, 5xx): the outcome is unknown; try again later."""


class ProviderRejected(Exception):
    """The provider answered and refused the request for good (bad parameters, insufficient funds)."""


class ProviderNotConfigured(PermanentError):
    """This system has the adapter but not its settings (ids, key files): the method cannot be used."""


class IgnoredCallback(Exception):
    """A genuine (verified) notification about nothing this system acts on, e.g. a refund notice:
    acknowledge it so the provider stops resending, and change nothing."""


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


class ChargeState(enum.StrEnum):
    """What a provider says of a charge when asked (reconciliation)."""
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    PROCESSING = "processing"  # the provider has it and has not decided: ask again later
    CLOSED = "closed"  # never paid and no longer payable (closed, or unknown to the provider)


class RefundOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PROCESSING = "processing"  # accepted; the provider decides later (ask again)


@dataclass(frozen=True)
class ChargeRequest:
    payment_id: int
    payment_uuid: str
    amount: Decimal
    currency: str
    # When the payment stops being payable (Payment.expires_at): real providers' QR codes expire then,
    # and Alipay's query tells "not scanned yet" from "gone" by it. None: now + PAYMENT_EXPIRY.
    expires_at: dt.datetime | None = None

    @property
    def idempotency_key(self) -> str:
        """Derived from the payment, so a re-run charge is the same charge at the provider."""
        return f"cfmp:charge:{self.payment_uuid}"


@dataclass(frozen=True)
class ChargeStatus:
    state: ChargeState
    amount: Decimal | None = None


@dataclass(frozen=True)
class RefundRequest:
    refund_uuid: str
    payment_uuid: str
    provider_reference: str
    amount: Decimal  # this refund
    payment_amount: Decimal  # what the payment captured (some providers want both)
    currency: str
    reason: str = ""

    @property
    def idempotency_key(self) -> str:
        """Derived from the refund, so a re-run refund is the same refund at the provider."""
        return f"cfmp:refund:{self.refund_uuid}"


@dataclass(frozen=True)
class RefundResult:
    outcome: RefundOutcome
    reference: str = ""
    detail: str = ""


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

    def query(self, request: ChargeRequest, reference: str) -> ChargeStatus: ...

    def refund(self, request: RefundRequest) -> RefundResult: ...

    def verify_callback(self, headers: Mapping[str, str], raw: bytes) -> CallbackEvent: ...


# Schedules the sandbox's own callback: (reference, amount, currency, delay in seconds) -> None; given by
# the task layer, so the adapter stays free of Celery.
Scheduler = Callable[[str, Decimal, str, float], None]


def get_provider(name: str, settings: Settings, schedule: Scheduler | None = None) -> Provider:
    """The adapter for `name`; KeyError for a provider this system does not have, and
    `ProviderNotConfigured` for one whose settings are missing."""
    from tasks.payments.providers.alipay import AlipayProvider
    from tasks.payments.providers.sandbox import SandboxProvider
    from tasks.payments.providers.wechat_pay import WechatPayProvider

    adapters = {"sandbox": lambda: SandboxProvider(settings, schedule), "alipay": lambda: AlipayProvider(settings),
                "wechat_pay": lambda: WechatPayProvider(settings)}
    return adapters[name]()


def is_configured(name: str, settings: Settings) -> bool:
    """Whether payments with `name` can be made here (the provider exists and its settings and keys load)."""
    try:
        get_provider(name, settings)
    except (KeyError, ProviderNotConfigured):
        return False
    return True

"""What each domain event tells each person it concerns, in Chinese and in English.

Every title and body lives in `TEMPLATES`, keyed by event type, then by the recipient's role, then
by language; adding an event is adding an entry here (plus its subscriber in `tasks/events.py`).
The recipient of a role is the user named by the event's `<role>_uuid` field.

Placeholders come from the event's `data`: `{order_ref}` (the first 8 characters of `order_uuid`),
`{amount}` (`amount`, else `total_amount`), `{currency}` and `{reason}` (a known reason code
translated through `REASONS`, free text shown as written). A missing field renders as empty text,
so a template never fails a delivery.

Payload contract of the payment events (the payments service publishes them):
- `payment.failed`: `payment_uuid`, `order_uuid`, `buyer_uuid`, `amount`, `currency`, `reason`.
- `payment.review`: `payment_uuid`, `order_uuid`, `buyer_uuid`, `amount`, `currency`.
- `refund.succeeded`: `refund_uuid`, `payment_uuid`, `order_uuid`, `buyer_uuid`, `seller_uuid`, `amount`,
  `currency`, `reason`.
- `refund.failed`: the same, plus `failure_reason`; only the buyer is told (the money did not come back).
"""
from __future__ import annotations

import string
from dataclasses import dataclass

from models import Language, NotificationType

DEFAULT_LANGUAGE = Language.ZH
Text = dict[str, tuple[str, str]]  # language → (title, body)


@dataclass(frozen=True)
class EventTemplate:
    related: str  # the data field that becomes the notification's `related_id`
    roles: dict[str, Text]  # role → texts; the recipient is `data[f"{role}_uuid"]`
    type: NotificationType = NotificationType.TRANSACTION


TEMPLATES: dict[str, EventTemplate] = {
    "order.created": EventTemplate("order_uuid", {
        "buyer": {"zh": ("订单已创建", "您的订单 {order_ref} 已创建，应付 {amount} {currency}，请尽快完成支付。"),
                  "en": ("Order placed", "Your order {order_ref} for {amount} {currency} is placed; "
                                         "please pay before it expires.")},
        "seller": {"zh": ("您有新订单", "买家下单 {order_ref}，金额 {amount} {currency}，等待买家付款。"),
                   "en": ("New order", "A buyer placed order {order_ref} for {amount} {currency}; "
                                       "it awaits payment.")},
    }),
    "order.paid": EventTemplate("order_uuid", {
        "buyer": {"zh": ("支付成功", "订单 {order_ref} 已支付 {amount} {currency}，等待卖家发货。"),
                  "en": ("Payment received", "Order {order_ref} is paid ({amount} {currency}); "
                                             "the seller will ship it.")},
        "seller": {"zh": ("订单已付款", "订单 {order_ref} 买家已付款 {amount} {currency}，请尽快发货。"),
                   "en": ("Order paid", "Order {order_ref} is paid ({amount} {currency}); please ship it.")},
    }),
    "order.cancelled": EventTemplate("order_uuid", {
        "buyer": {"zh": ("订单已取消", "订单 {order_ref} 已取消：{reason}。"),
                  "en": ("Order cancelled", "Order {order_ref} was cancelled: {reason}.")},
        "seller": {"zh": ("订单已取消", "订单 {order_ref} 已取消：{reason}。"),
                   "en": ("Order cancelled", "Order {order_ref} was cancelled: {reason}.")},
    }),
    "order.completed": EventTemplate("order_uuid", {
        "buyer": {"zh": ("订单已完成", "您已确认收货，订单 {order_ref} 已完成。"),
                  "en": ("Order completed", "You confirmed receipt; order {order_ref} is complete.")},
        "seller": {"zh": ("订单已完成", "买家已确认收货，订单 {order_ref} 已完成，货款 {amount} {currency} 将结算给您。"),
                   "en": ("Order completed", "The buyer confirmed receipt of order {order_ref}; "
                                             "{amount} {currency} will be settled to you.")},
    }),
    "payment.failed": EventTemplate("payment_uuid", {
        "buyer": {"zh": ("支付失败", "订单 {order_ref} 的支付（{amount} {currency}）未成功：{reason}。"),
                  "en": ("Payment failed", "The payment of {amount} {currency} for order {order_ref} failed: "
                                           "{reason}.")},
    }),
    "payment.review": EventTemplate("payment_uuid", {
        "buyer": {"zh": ("支付审核中", "订单 {order_ref} 的支付（{amount} {currency}）需要人工审核，结果将另行通知。"),
                  "en": ("Payment under review", "The payment of {amount} {currency} for order {order_ref} "
                                                 "is being reviewed; we will tell you the outcome.")},
    }),
    "refund.succeeded": EventTemplate("refund_uuid", {
        "buyer": {"zh": ("退款成功", "订单 {order_ref} 已退款 {amount} {currency}。"),
                  "en": ("Refund completed", "{amount} {currency} for order {order_ref} "
                                             "has been refunded to you.")},
        "seller": {"zh": ("订单已退款", "订单 {order_ref} 已向买家退款 {amount} {currency}。"),
                   "en": ("Order refunded", "{amount} {currency} of order {order_ref} "
                                            "was refunded to the buyer.")},
    }),
    "refund.failed": EventTemplate("refund_uuid", {
        "buyer": {"zh": ("退款失败", "订单 {order_ref} 的退款 {amount} {currency} 未能完成。"
                                    "若您已取消该订单，订单仍为已支付，可再次取消以重新退款。"),
                  "en": ("Refund failed", "The refund of {amount} {currency} for order {order_ref} "
                                          "did not go through. If you cancelled the order, it is still paid "
                                          "and you may cancel it again to retry the refund.")},
    }),
}

# Reason codes the system writes, in words; any other reason is the person's own text.
REASONS: dict[str, dict[str, str]] = {
    "payment_timeout": {"zh": "超时未支付", "en": "it was not paid in time"},
    "cancelled_by_buyer": {"zh": "买家取消了订单", "en": "the buyer cancelled it"},
    "declined": {"zh": "支付被拒绝", "en": "the payment was declined"},
    "risk_rejected": {"zh": "未通过风控审核", "en": "it did not pass the risk review"},
    "refunded": {"zh": "已全额退款", "en": "it was refunded in full"},
    "": {"zh": "未说明原因", "en": "no reason given"},
}


@dataclass(frozen=True)
class Rendered:
    type: NotificationType
    title: str
    content: str
    related_id: str | None


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def recipients(event: dict) -> list[tuple[str, str]]:
    """(user uuid, role) for everyone the event concerns, each person once (first role wins)."""
    template = TEMPLATES.get(event.get("type", ""))
    if template is None:
        return []
    data = event.get("data") or {}
    seen: dict[str, str] = {}
    for role in template.roles:
        user = data.get(f"{role}_uuid")
        if user and user not in seen:
            seen[user] = role
    return list(seen.items())


def language_of(value: str | None) -> str:
    return value if value in (Language.ZH, Language.EN) else DEFAULT_LANGUAGE.value


def render(event: dict, role: str, language: str) -> Rendered:
    """The title and body of `event` for a recipient in `role`, in `language` (default Chinese)."""
    template = TEMPLATES[event["type"]]
    language = language_of(language)
    data = event.get("data") or {}
    reason = str(data.get("reason") or data.get("failure_reason") or "")
    values = _Blank({key: "" if value is None else str(value) for key, value in data.items()})
    values.update(
        order_ref=str(data.get("order_uuid") or "")[:8],
        amount=str(data.get("amount") or data.get("total_amount") or ""),
        reason=REASONS.get(reason, {}).get(language, reason),
    )
    title, body = template.roles[role][language]
    formatter = string.Formatter()
    return Rendered(template.type, formatter.vformat(title, (), values), formatter.vformat(body, (), values),
                    data.get(template.related))

"""Flask-SQLAlchemy models, one aggregate per module; each service's tables live in its own bind."""
from models.base import Base, TimestampMixin, db, utcnow
from models.dead_letter import OrderDeadLetter
from models.idempotency import OrderIdempotencyKey
from models.inbox import OrderInbox
from models.notification import Notification, NotificationType
from models.notification_fanout import (
    OPEN_STATUSES, Channel, DeliveryStatus, NotificationDelivery, NotificationFanout,
)
from models.notification_plumbing import NotificationDeadLetter, NotificationInbox
from models.notification_preference import Language, NotificationPreference
from models.order import IllegalTransition, Order, OrderStatus
from models.order_event import SYSTEM_ACTOR, OrderEvent
from models.order_item import OrderItem
from models.outbox import OrderOutbox
from models.payment import Payment, PaymentStatus
from models.payment_plumbing import (
    PaymentCallback, PaymentDeadLetter, PaymentIdempotencyKey, PaymentOutbox, RiskDeadLetter,
)
from models.refund import Refund, RefundStatus
from models.risk_assessment import ReviewStatus, RiskAssessment, RiskDecision, RiskLevel, RiskRuleResult
from models.risk_policy import RuleKind, SecurityPolicy

__all__ = [
    "Base", "TimestampMixin", "db", "utcnow", "Order", "OrderStatus", "IllegalTransition", "OrderItem",
    "OrderEvent", "SYSTEM_ACTOR", "OrderOutbox", "OrderIdempotencyKey", "OrderInbox", "OrderDeadLetter",
    "Payment", "PaymentStatus", "PaymentCallback", "PaymentDeadLetter", "PaymentIdempotencyKey", "PaymentOutbox",
    "Refund", "RefundStatus", "RiskDeadLetter", "RiskAssessment", "RiskDecision", "RiskLevel", "RiskRuleResult",
    "ReviewStatus", "RuleKind", "SecurityPolicy",
    "Notification", "NotificationType", "NotificationFanout", "NotificationDelivery", "Channel", "DeliveryStatus",
    "OPEN_STATUSES", "NotificationInbox", "NotificationDeadLetter", "NotificationPreference", "Language",
]

"""Flask-SQLAlchemy models, one aggregate per module; each service's tables live in its own bind."""
from models.base import Base, TimestampMixin, db, utcnow
from models.dead_letter import OrderDeadLetter
from models.idempotency import OrderIdempotencyKey
from models.inbox import OrderInbox
from models.order import IllegalTransition, Order, OrderStatus
from models.order_event import SYSTEM_ACTOR, OrderEvent
from models.order_item import OrderItem
from models.outbox import OrderOutbox

__all__ = [
    "Base", "TimestampMixin", "db", "utcnow", "Order", "OrderStatus", "IllegalTransition", "OrderItem",
    "OrderEvent", "SYSTEM_ACTOR", "OrderOutbox", "OrderIdempotencyKey", "OrderInbox", "OrderDeadLetter",
]

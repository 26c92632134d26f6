"""The notification bind's copies of the shared consumer tables: event dedupe and dead letters."""
from __future__ import annotations

from models.base import db
from models.dead_letter import DeadLetterMixin
from models.inbox import InboxMixin


class NotificationInbox(InboxMixin, db.Model):
    __tablename__ = "notification_inbox"
    __bind_key__ = "notifications"


class NotificationDeadLetter(DeadLetterMixin, db.Model):
    __tablename__ = "notification_dead_letters"
    __bind_key__ = "notifications"

"""What a user wants to be told through: channels on or off, addresses, webhook secret, language.

No row means the defaults (`NotificationPreference.defaults`): in-app only, in Chinese.
"""
from __future__ import annotations

import datetime as dt
import enum
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, TimestampMixin, db
from models.notification_fanout import Channel


class Language(enum.StrEnum):
    ZH = "zh"
    EN = "en"


class NotificationPreference(TimestampMixin, db.Model):
    __tablename__ = "notification_preferences"
    __bind_key__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_uuid: Mapped[uuid.UUID] = mapped_column(unique=True)
    in_app_enabled: Mapped[bool] = mapped_column(default=True)
    email_enabled: Mapped[bool] = mapped_column(default=False)
    webhook_enabled: Mapped[bool] = mapped_column(default=False)
    email_address: Mapped[str | None] = mapped_column(sa.String(254))
    webhook_url: Mapped[str | None] = mapped_column(sa.String(500))
    # Kept in clear: signing needs it. The previous one still signs until `previous_secret_until`.
    webhook_secret: Mapped[str | None] = mapped_column(sa.String(80))
    webhook_previous_secret: Mapped[str | None] = mapped_column(sa.String(80))
    previous_secret_until: Mapped[dt.datetime | None]
    language: Mapped[Language] = mapped_column(default=Language.ZH)

    @classmethod
    def defaults(cls, user_uuid: uuid.UUID) -> NotificationPreference:
        """The unsaved preferences of a user who never set any: in-app only, Chinese."""
        return cls(user_uuid=user_uuid, in_app_enabled=True, email_enabled=False, webhook_enabled=False,
                   language=Language.ZH)

    def enabled_channels(self) -> list[Channel]:
        flags = {Channel.IN_APP: self.in_app_enabled, Channel.EMAIL: self.email_enabled,
                 Channel.WEBHOOK: self.webhook_enabled}
        return [channel for channel, on in flags.items() if on]

    def signing_secrets(self, now: dt.datetime) -> list[str]:
        """The current secret first, then the previous one while its rotation grace lasts."""
        secrets = [self.webhook_secret] if self.webhook_secret else []
        if self.webhook_previous_secret and self.previous_secret_until and self.previous_secret_until > now:
            secrets.append(self.webhook_previous_secret)
        return secrets

"""Marshmallow schemas of the notification API: `*UpdateSchema`/`*QuerySchema` load, the rest dump."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.common.body import EmptySchema
from api.common.pagination import PageQuerySchema
from models import Channel, DeliveryStatus, Language, NotificationType

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# scheme://host[:port][/path]: one label, dotted labels ending in one of two characters or more, or
# an IPv4 address; no user info, no IPv6 literal, nothing after the host but a port and a path.
WEBHOOK_URL = (rf"^https?://(?:{_LABEL}|(?:{_LABEL}\.)+[A-Za-z0-9][A-Za-z0-9-]{{0,61}}[A-Za-z0-9]"
               r"|[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})(?::[0-9]{1,5})?(?:/[!-~]*)?$")


class StrictBoolean(fields.Boolean):
    """JSON `true`/`false` only: `"yes"` or `1` in a body is a mistake worth a 422."""

    def __init__(self, **kwargs):
        super().__init__(truthy={True}, falsy={False}, **kwargs)


class NotificationSchema(Schema):
    notification_uuid = fields.UUID()
    type = fields.Enum(NotificationType, by_value=True)
    title = fields.String()
    content = fields.String()
    read = fields.Boolean()
    read_at = fields.DateTime(allow_none=True)
    related_id = fields.String(allow_none=True)
    related_data = fields.Dict(attribute="related")
    created_at = fields.DateTime()


class NotificationListQuerySchema(PageQuerySchema):
    type = fields.Enum(NotificationType, by_value=True, load_default=None)
    read = fields.Boolean(load_default=None)


class UnreadCountSchema(Schema):
    unread_count = fields.Integer()


class MarkedSchema(Schema):
    marked = fields.Integer(metadata={"description": "How many notifications this call marked read."})


class ChannelsSchema(Schema):
    in_app = StrictBoolean()
    email = StrictBoolean()
    webhook = StrictBoolean()


class PreferencesUpdateSchema(Schema):
    """Every field optional: what is left out keeps its current value."""

    channels = fields.Nested(ChannelsSchema)
    email_address = fields.Email(allow_none=True, validate=validate.Length(max=254))
    # http(s) only, checked on save; no TLD required, so an intranet host or an IP is fine. WEBHOOK_URL
    # (a subset of what fields.Url takes) is what `/openapi.json` documents, so both must agree.
    webhook_url = fields.Url(schemes={"http", "https"}, require_tld=False, allow_none=True,
                             validate=[validate.Length(max=500),
                                       validate.Regexp(WEBHOOK_URL, error="Not a valid URL.")])
    language = fields.Enum(Language, by_value=True)
    rotate_webhook_secret = StrictBoolean(
        metadata={"description": "New secret, shown in this response only; the old one signs for 24 h more."})


class PreferencesSchema(Schema):
    channels = fields.Nested(ChannelsSchema)
    email_address = fields.String(allow_none=True)
    webhook_url = fields.String(allow_none=True)
    webhook_secret_set = fields.Boolean()
    webhook_secret = fields.String(
        metadata={"description": "Present only in the response that created or rotated it."})
    language = fields.Enum(Language, by_value=True)
    updated_at = fields.DateTime(allow_none=True)


class DeliverySchema(Schema):
    delivery_uuid = fields.UUID()
    event_id = fields.UUID()
    event_type = fields.String(attribute="fanout.event_type")
    title = fields.String(attribute="fanout.title")
    channel = fields.Enum(Channel, by_value=True)
    status = fields.Enum(DeliveryStatus, by_value=True)
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    last_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class DeliveryListQuerySchema(PageQuerySchema):
    channel = fields.Enum(Channel, by_value=True, load_default=None)
    status = fields.Enum(DeliveryStatus, by_value=True, load_default=None)


EMPTY = EmptySchema()
NOTIFICATION = NotificationSchema()
NOTIFICATIONS = NotificationSchema(many=True)
NOTIFICATION_LIST_QUERY = NotificationListQuerySchema()
UNREAD_COUNT = UnreadCountSchema()
MARKED = MarkedSchema()
PREFERENCES_UPDATE = PreferencesUpdateSchema()
PREFERENCES = PreferencesSchema()
DELIVERY = DeliverySchema()
DELIVERIES = DeliverySchema(many=True)
DELIVERY_LIST_QUERY = DeliveryListQuerySchema()

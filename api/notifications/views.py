"""Inbox endpoints (DESIGN.md §7): list, read, mark read, delete, unread count."""
from __future__ import annotations

import uuid

from flask import Blueprint

from api.common.auth import current_identity
from api.common.body import EmptySchema, load_body, load_query
from api.common.openapi import doc, page_of
from api.common.pagination import paginate
from api.notifications import queries
from api.notifications.schemas import (
    EMPTY, MARKED, NOTIFICATION, NOTIFICATION_LIST_QUERY, NOTIFICATIONS, UNREAD_COUNT, MarkedSchema,
    NotificationListQuerySchema, NotificationSchema, UnreadCountSchema,
)
from models import db

bp = Blueprint("notifications", __name__, url_prefix="/api/notifications")
TAG = "notifications"


@bp.get("/")
@doc("My notifications, newest first", tag=TAG, query=NotificationListQuerySchema,
     response=page_of(NotificationSchema))
def list_notifications():
    query = load_query(NOTIFICATION_LIST_QUERY)
    select = queries.notifications_of(current_identity().user_uuid, query["type"], query["read"])
    return paginate(select, query["page"], query["page_size"], NOTIFICATIONS.dump), 200


@bp.get("/unread-count/")
@doc("How many of my notifications are unread", tag=TAG, response=UnreadCountSchema, errors=(401,))
def unread_count():
    return UNREAD_COUNT.dump({"unread_count": queries.unread_count(current_identity().user_uuid)}), 200


@bp.post("/read-all/")
@doc("Mark all my notifications read", tag=TAG, body=EmptySchema, response=MarkedSchema, errors=(401,))
def read_all():
    load_body(EMPTY)
    marked = queries.mark_all_read(current_identity().user_uuid)
    db.session.commit()
    return MARKED.dump({"marked": marked}), 200


@bp.get("/<uuid:notification_uuid>/")
@doc("One of my notifications", tag=TAG, response=NotificationSchema)
def get_notification(notification_uuid: uuid.UUID):
    return NOTIFICATION.dump(queries.notification(current_identity(), notification_uuid, admin_reads=True)), 200


@bp.post("/<uuid:notification_uuid>/read/")
@doc("Mark one of my notifications read (idempotent)", tag=TAG, body=EmptySchema, response=NotificationSchema)
def read_notification(notification_uuid: uuid.UUID):
    load_body(EMPTY)
    found = queries.notification(current_identity(), notification_uuid)
    queries.mark_read(found)
    db.session.commit()
    return NOTIFICATION.dump(found), 200


@bp.delete("/<uuid:notification_uuid>/")
@doc("Delete one of my notifications", tag=TAG, status=204)
def delete_notification(notification_uuid: uuid.UUID):
    db.session.delete(queries.notification(current_identity(), notification_uuid))
    db.session.commit()
    return "", 204

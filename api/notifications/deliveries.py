"""The delivery log of my channels, and redelivering one by hand."""
from __future__ import annotations

import logging
import uuid

from flask import Blueprint, current_app

from api.common.auth import current_identity
from api.common.body import EmptySchema, load_body, load_query
from api.common.errors import Conflict
from api.common.openapi import doc, page_of
from api.common.pagination import paginate
from api.notifications import queries
from api.notifications.schemas import (
    DELIVERIES, DELIVERY, DELIVERY_LIST_QUERY, EMPTY, DeliveryListQuerySchema, DeliverySchema,
)
from models import db, utcnow
from tasks.notifications import actions, workflows

log = logging.getLogger(__name__)
bp = Blueprint("notification_deliveries", __name__, url_prefix="/api/notifications/deliveries")
TAG = "notification deliveries"


@bp.get("/")
@doc("The delivery log of my channels, newest first", tag=TAG, query=DeliveryListQuerySchema,
     response=page_of(DeliverySchema))
def list_deliveries():
    query = load_query(DELIVERY_LIST_QUERY)
    select = queries.deliveries_of(current_identity().user_uuid, query["channel"], query["status"])
    return paginate(select, query["page"], query["page_size"], DELIVERIES.dump), 200


@bp.post("/<uuid:delivery_uuid>/redeliver/")
@doc("Try one of my deliveries again now, with a fresh retry budget", tag=TAG, body=EmptySchema,
     response=DeliverySchema, status=202, errors=(401, 404, 409))
def redeliver(delivery_uuid: uuid.UUID):
    load_body(EMPTY)
    delivery = queries.delivery(current_identity(), delivery_uuid)
    if not actions.redeliver(delivery, utcnow()):
        db.session.rollback()
        raise Conflict("delivery_in_progress", "This delivery is pending or being attempted right now.",
                       {"status": delivery.status.value})
    db.session.commit()
    try:  # after the commit: the task must find the row handed back
        task = workflows.deliver_task(delivery.channel.value)
        current_app.extensions["celery"].send_task(task, args=[delivery.id])
    except Exception as exc:  # the broker is away: the row is pending and due, the watchdog sends it
        log.warning("redelivery of %s left for the watchdog: %s", delivery_uuid, exc)
    return DELIVERY.dump(delivery), 202

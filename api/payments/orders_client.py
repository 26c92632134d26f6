"""The order service, as PaymentService reads it: over HTTP, as the calling user.

A payment's amount comes from the order, never from the client. Asking the order service at request
time, with the caller's own `Authorization`, reuses its visibility rule for free (an unknown or
foreign order is 404 there, so 404 here) and keeps the two services' databases apart.
"""
from __future__ import annotations

import json
import uuid

import urllib3

from api.common.errors import ApiError, NotFound
from common.settings import Settings

_HTTP = urllib3.PoolManager(maxsize=16, retries=False, timeout=urllib3.Timeout(connect=1.0, read=5.0))


def fetch_order(settings: Settings, order_uuid: uuid.UUID, authorization: str, request_id: str) -> dict:
    url = f"{settings.upstreams['orders'].rstrip('/')}/api/orders/{order_uuid}/"
    try:
        reply = _HTTP.request("GET", url, headers={"Authorization": authorization, "X-Request-ID": request_id})
    except urllib3.exceptions.HTTPError as exc:
        raise ApiError("order_service_unavailable", "The order service did not answer; try again.",
                       {"reason": str(exc)[:200]}, status=503) from None
    if reply.status == 404:
        raise NotFound("order_not_found", "No such order.", {"order_uuid": str(order_uuid)})
    if reply.status != 200:
        raise ApiError("order_service_error", f"The order service answered {reply.status}.", status=502)
    return json.loads(reply.data)

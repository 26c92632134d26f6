"""The HTTP contract every service and the gateway share: the error body and request ids."""
from __future__ import annotations

import re
import uuid
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Identity headers only the gateway may set; anything a client sends under this prefix is dropped.
IDENTITY_HEADER_PREFIX = "X-User-"
USER_UUID_HEADER = "X-User-UUID"
USER_ROLE_HEADER = "X-User-Role"


def error_body(code: str, message: str, request_id: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """`{"error", "message", "details", "request_id"}`: the one shape of every status >= 400."""
    return {"error": code, "message": message, "details": details or {}, "request_id": request_id}


def request_id_from(header_value: str | None) -> str:
    """Keep a well-formed incoming request id, otherwise mint one."""
    if header_value and _REQUEST_ID_RE.match(header_value):
        return header_value
    return uuid.uuid4().hex

"""Reading JSON request bodies: 400 when it is not JSON, 422 when it is not valid for the schema."""
from __future__ import annotations

import json
from decimal import Decimal

from flask import request
from marshmallow import Schema

from api.common.errors import BadRequest, ValidationFailed


def parse_json(raw: bytes):
    """Parse a body exactly: numbers with a fraction become Decimal, never float."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest("malformed_json", "The request body is nested too deeply.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("malformed_json", f"The request body is not valid JSON: {exc}") from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


class EmptySchema(Schema):
    """A body that must be empty or `{}` (action endpoints): anything else is 422, not ignored."""


def load_body(schema: Schema) -> dict:
    payload = parse_json(request.get_data(cache=True))
    if not isinstance(payload, dict):
        raise ValidationFailed("validation_failed", "The request body must be a JSON object.",
                               {"_schema": ["Expected a JSON object."]})
    return schema.load(payload)


def load_query(schema: Schema) -> dict:
    return schema.load(request.args.to_dict(flat=True))

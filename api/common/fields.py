"""Marshmallow fields for the edge: exact money and integers that are really integers."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from marshmallow import ValidationError, fields

from models.base import MAX_MONEY


# What a money string may look like: ASCII digits, optionally a fraction; no sign, exponent, `_`,
# other scripts' digits or surrounding blanks, all of which `Decimal()` would take.
MONEY_STRING = re.compile(r"[0-9]+(\.[0-9]+)?")


class Money(fields.Field):
    """A positive amount with at most two decimal places, in and out as a string ("199.00").

    Accepts JSON strings of plain decimal digits and JSON numbers (the body is parsed with Decimal
    floats, so no binary rounding happens); refuses booleans, NaN, infinities, zero and negatives.
    """

    default_error_messages = {
        "invalid": "Not a valid amount.",
        "places": "At most two decimal places.",
        "range": f"Must be greater than 0 and at most {MAX_MONEY}.",
    }

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else f"{Decimal(value).quantize(Decimal('0.01'))}"

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise self.make_error("invalid")
        if isinstance(value, str) and not MONEY_STRING.fullmatch(value):
            raise self.make_error("invalid")
        try:
            amount = Decimal(value)
        except (InvalidOperation, ValueError):
            raise self.make_error("invalid") from None
        if not amount.is_finite():
            raise self.make_error("invalid")
        if not Decimal("0") < amount <= MAX_MONEY:  # first: bounds the size quantize() sees
            raise self.make_error("range")
        if amount != amount.quantize(Decimal("0.01")):
            raise self.make_error("places")
        return amount.quantize(Decimal("0.01"))


class StrictInteger(fields.Integer):
    """An integer that refuses booleans, floats and numeric strings."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Text(fields.String):
    """A string with surrounding whitespace stripped; `required` text must not be blank."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if self.required and not text:
            raise ValidationError("Must not be blank.")
        if any(ord(c) < 32 and c not in "\t\n" for c in text):
            raise ValidationError("Must not contain control characters.")
        return text

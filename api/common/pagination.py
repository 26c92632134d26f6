"""`{"count", "next", "previous", "results"}` pages with `page` and `page_size` (max 100)."""
from __future__ import annotations

from urllib.parse import urlencode

import sqlalchemy as sa
from flask import request
from marshmallow import EXCLUDE, Schema, fields, validate

from api.common.errors import NotFound
from models.base import db

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class PageQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # unknown query parameters are ignored, as in most REST APIs

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


def _page_url(page: int) -> str:
    args = request.args.to_dict(flat=True)
    args["page"] = str(page)
    return f"{request.base_url}?{urlencode(sorted(args.items()))}"


def paginate(select: sa.Select, page: int, page_size: int, dump) -> dict:
    """Run `select` for one page; `dump(rows)` turns the page's rows into JSON-ready dicts."""
    count = db.session.scalar(sa.select(sa.func.count()).select_from(select.order_by(None).subquery()))
    if page > 1 and (page - 1) * page_size >= count:
        raise NotFound("page_not_found", f"Page {page} does not exist.", {"count": count})
    rows = db.session.scalars(select.limit(page_size).offset((page - 1) * page_size)).all()
    return {
        "count": count,
        "next": _page_url(page + 1) if page * page_size < count else None,
        "previous": _page_url(page - 1) if page > 1 else None,
        "results": dump(rows),
    }

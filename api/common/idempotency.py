"""`Idempotency-Key` on creating POSTs (DESIGN.md §6), and the unit of work those views run in.

The key is claimed by committing a row unique on (user, route, key) *before* the view runs, so a
second request with the same key sees the claim: 409 while the first is in flight, the stored
response once it finished, 422 when its body differs. The view's writes and the stored response
commit in one transaction, so a crash leaves either both or neither; a claim whose request died
(no response after `STALE_CLAIM`) is taken over, which is safe because nothing of it committed.
Only 2xx responses are stored: a rejected request changed nothing and may be retried corrected.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from functools import wraps

import sqlalchemy as sa
from flask import current_app, g, request
from sqlalchemy.exc import IntegrityError

from api.common.body import parse_json
from api.common.errors import ApiError, Conflict, ValidationFailed
from models.base import db, utcnow

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
STALE_CLAIM = dt.timedelta(seconds=60)


def request_fingerprint(raw: bytes) -> str:
    """Hash of the body's meaning: key order and whitespace do not make a body "different"."""
    try:
        canonical = json.dumps(parse_json(raw), sort_keys=True, separators=(",", ":"), default=str).encode()
    except ApiError:
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


def _claim(model, route: str, key: str, fingerprint: str):
    """Return ("claimed", row) or ("replay", row); raise 409/422 for in-flight or reused keys."""
    user = g.identity.user_uuid
    scope = (model.user_uuid == user, model.route == route, model.idem_key == key)
    for _ in range(3):
        now = utcnow()
        row = model(user_uuid=user, route=route, idem_key=key, request_hash=fingerprint, created_at=now,
                    expires_at=now + dt.timedelta(seconds=current_app.config["CFMP_SETTINGS"].idempotency_ttl))
        db.session.add(row)
        try:
            db.session.commit()
            return "claimed", row
        except IntegrityError:
            db.session.rollback()
        existing = db.session.scalars(sa.select(model).where(*scope)).first()
        if existing is None:
            continue  # expired and purged between our insert and our read
        if existing.expires_at <= now:
            db.session.execute(sa.delete(model).where(model.id == existing.id, model.expires_at <= now))
            db.session.commit()
            continue
        if existing.request_hash != fingerprint:
            raise ValidationFailed("idempotency_key_reused",
                                   "This Idempotency-Key was used with a different request body.", {"key": key})
        if existing.response_status is not None:
            return "replay", existing
        if existing.created_at > now - STALE_CLAIM:
            raise Conflict("idempotency_request_in_flight",
                           "A request with this Idempotency-Key is still being processed.", {"key": key})
        taken = db.session.execute(
            sa.update(model)
            .where(model.id == existing.id, model.response_status.is_(None), model.created_at == existing.created_at)
            .values(created_at=now)
        ).rowcount
        db.session.commit()
        if taken == 1:
            db.session.refresh(existing)
            return "claimed", existing
    raise Conflict("idempotency_request_in_flight", "A request with this Idempotency-Key is still being processed.")


def _run_in_transaction(view, args, kwargs, on_success=None):
    try:
        body, status = view(*args, **kwargs)
        if not 200 <= status < 300:
            db.session.rollback()
            return body, status
        if on_success is not None:
            on_success(body, status)
        db.session.commit()
        return body, status
    except BaseException:
        db.session.rollback()
        raise


def idempotent(model):
    """Decorate a creating POST view returning `(dict, status)`; the decorator commits."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                return _run_in_transaction(view, args, kwargs)
            if not key.strip() or len(key) > MAX_KEY_LENGTH:
                raise ValidationFailed("invalid_idempotency_key",
                                       f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters.", {"key": key[:300]})
            # The concrete path, ids included: one key used on two payments is two requests.
            route = f"{request.method} {request.path}"[:128]
            outcome, row = _claim(model, route, key, request_fingerprint(request.get_data(cache=True)))
            if outcome == "replay":
                return json.loads(row.response_body), row.response_status, {"Idempotent-Replayed": "true"}
            row_id = row.id

            def store(body, status):
                db.session.execute(sa.update(model).where(model.id == row_id).values(
                    response_status=status, response_body=json.dumps(body, separators=(",", ":"))))

            try:
                body, status = _run_in_transaction(view, args, kwargs, on_success=store)
            except BaseException:
                _release(model, row_id)
                raise
            if not 200 <= status < 300:
                _release(model, row_id)
            return body, status

        return wrapper

    return decorator


def _release(model, row_id: int) -> None:
    """Forget a claim whose request failed, so the client may retry with the same key."""
    db.session.rollback()
    db.session.execute(sa.delete(model).where(model.id == row_id, model.response_status.is_(None)))
    db.session.commit()

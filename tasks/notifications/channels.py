"""The three ways a notification reaches a person: the in-app inbox, email (SMTP) and a webhook.

Each sender either returns (delivered) or raises `TransientError` (worth another try: the network,
a timeout, a 5xx, SMTP 4xx) or `PermanentError` (retrying cannot help: a 4xx, SMTP 5xx, nothing
configured). Outbound messages carry the delivery's id (email `Message-ID`, webhook
`X-CFMP-Delivery`), so a receiver can drop the duplicate an at-least-once system may still send
when a worker dies between sending and recording.
"""
from __future__ import annotations

import json
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import formatdate

import sqlalchemy as sa
import urllib3
from sqlalchemy.exc import IntegrityError

from common.settings import Settings
from models import NotificationDelivery, NotificationFanout, NotificationPreference, db, utcnow
from tasks.errors import PermanentError, TransientError
from tasks.notifications import core, signing

SMTP_TIMEOUT = 10.0
WEBHOOK_TIMEOUT = 5.0
# 4xx answers that mean "later", not "never": request timeout and rate limiting.
RETRYABLE_4XX = (408, 429)
_HTTP = urllib3.PoolManager(maxsize=8, retries=False, timeout=urllib3.Timeout(total=WEBHOOK_TIMEOUT))

# The inbox row of a fan-out, copied by the database (INSERT … SELECT), with the given uuid; built
# once with bind parameters, as the statements of `delivery` are.
_inbox, _fanout = core.notifications.c, core.fanouts.c
IN_APP_COPY = sa.insert(core.notifications).from_select(
    [_inbox.notification_uuid, _inbox.recipient_uuid, _inbox.fanout_id, _inbox.type, _inbox.title,
     _inbox.content, _inbox.is_read, _inbox.related_id, _inbox.related_data, _inbox.created_at],
    sa.select(sa.bindparam("new_uuid", type_=_inbox.notification_uuid.type), _fanout.recipient_uuid,
              _fanout.id, _fanout.type, _fanout.title, _fanout.content, sa.false(), _fanout.related_id,
              _fanout.related_data, _fanout.created_at)
    .where(_fanout.id == sa.bindparam("source_fanout")),
)


def send_in_app(delivery: NotificationDelivery) -> None:
    """Write the inbox row, one per fan-out (unique `fanout_id`), so a repeat is a no-op. The row is
    copied from the fan-out by the database (`IN_APP_COPY`): the message never travels to the worker
    and back. Not committed here: the caller's commit records it with the delivery's outcome."""
    try:
        parameters = {"new_uuid": uuid.uuid4(), "source_fanout": delivery.fanout_id}
        core.connection().execute(IN_APP_COPY, parameters)
    except IntegrityError:  # written before (a redelivery) or by a concurrent attempt: delivered all the same
        db.session.rollback()


def email_message(settings: Settings, delivery: NotificationDelivery, fanout: NotificationFanout,
                  to: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = fanout.title
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{delivery.delivery_uuid}@cfmp>"
    message["Content-Language"] = "zh-CN" if fanout.language == "zh" else "en"
    message.set_content(fanout.content)
    return message


def send_email(settings: Settings, delivery: NotificationDelivery, fanout: NotificationFanout,
               preference: NotificationPreference) -> None:
    if not settings.smtp_host:
        raise PermanentError("email is not configured (SMTP_HOST is unset)")
    if not preference.email_address:
        raise PermanentError("the recipient has no email address")
    message = email_message(settings, delivery, fanout, preference.email_address)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        error = PermanentError if all(code >= 500 for code in codes) else TransientError
        raise error(f"SMTP refused the recipient: {exc.recipients}") from None
    except smtplib.SMTPResponseException as exc:
        error = PermanentError if exc.smtp_code >= 500 else TransientError
        raise error(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentError(f"SMTP server: {exc}") from None
    except (smtplib.SMTPException, OSError) as exc:  # disconnects, refused connections, timeouts
        raise TransientError(f"SMTP {type(exc).__name__}: {exc}") from None


def webhook_body(delivery: NotificationDelivery, fanout: NotificationFanout) -> bytes:
    """The same bytes on every attempt: receivers may hash or dedupe on them."""
    payload = {
        "delivery_id": str(delivery.delivery_uuid),
        "event_id": str(fanout.event_id),
        "event_type": fanout.event_type,
        "recipient_uuid": str(fanout.recipient_uuid),
        "notification": {
            "type": fanout.type.value, "title": fanout.title, "content": fanout.content,
            "related_id": fanout.related_id, "related_data": fanout.related, "language": fanout.language,
            "created_at": fanout.created_at.isoformat(),
        },
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def send_webhook(delivery: NotificationDelivery, fanout: NotificationFanout,
                 preference: NotificationPreference) -> None:
    """POST the signed JSON body; 2xx is delivered. Redirects are not followed (a 3xx is a
    misconfigured URL, so permanent), 408/429/5xx and network errors are transient."""
    if not preference.webhook_url:
        raise PermanentError("the recipient has no webhook URL")
    secrets = preference.signing_secrets(utcnow())
    if not secrets:
        raise PermanentError("the recipient's webhook has no secret")
    body = webhook_body(delivery, fanout)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "cfmp-webhooks/1",
        "X-CFMP-Delivery": str(delivery.delivery_uuid),
        "X-CFMP-Event": fanout.event_type,
        "X-CFMP-Attempt": str(delivery.attempts),
        signing.HEADER: signing.sign(secrets, body),
    }
    try:
        response = _HTTP.request("POST", preference.webhook_url, body=body, headers=headers, redirect=False)
    except urllib3.exceptions.HTTPError as exc:  # connection refused, reset, timeouts
        raise TransientError(f"webhook: {type(exc).__name__}: {exc}") from None
    status = response.status
    if 200 <= status < 300:
        return
    detail = f"webhook answered HTTP {status}: {response.data[:200].decode('utf-8', 'replace')}"
    if status >= 500 or status in RETRYABLE_4XX:
        raise TransientError(detail)
    raise PermanentError(detail)

"""Email: rendered with the partner's branding and stored in the outbox with the action that
caused it; delivered after commit by the mail worker (`flask mail worker`), never by a request.

A message exists only if the action's transaction commits, so a rolled-back action mails
nothing; a slow or absent SMTP server never holds a page; a failed delivery is retried with
backoff and ends as `failed`, which an operator can retry.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app, g, render_template
from sqlalchemy import or_, select, update

from portal.audit.services import record_audit
from portal.clock import utcnow
from portal.exceptions import NotFound, PortalError
from portal.extensions import db
from portal.mail.models import MailStatus, OutboxMessage
from portal.monitoring.metrics import MAIL
from portal.resolver import resolve
from portal.tenancy.scope import unscoped
from portal.theming import logo_url

log = logging.getLogger("portal.mail")
BATCH = 20
LONGEST_RETRY_DELAY = timedelta(hours=1)


def send_email(to: str, subject: str, template: str, **context: Any) -> OutboxMessage:
    """Render `mail/<template>.txt` and `.html` and store the message in the caller's
    transaction; the mail worker delivers it once that commits (when SMTP is configured)."""
    partner = g.get("partner")
    brand = partner.brand_name if partner is not None else "Partner Portal"
    theme = partner.theme if partner is not None else None
    context = {
        "brand": brand,
        "partner": partner,
        "theme": theme,  # the partner's branding: colours, logo, support contact
        "logo_url": logo_url(theme, external=True) if theme is not None else None,
        **context,
    }
    deliver = bool(current_app.config.get("SMTP_URL"))
    message = OutboxMessage(
        to_address=to,
        from_address=current_app.config.get("MAIL_FROM", "Partner Portal <no-reply@localhost>"),
        subject=f"{subject} · {brand}",
        body_text=render_template(f"mail/{template}.txt", **context),
        body_html=render_template(f"mail/{template}.html", **context),
        status=MailStatus.PENDING if deliver else MailStatus.KEPT,
        transport="smtp" if deliver else "outbox",
        next_attempt_at=utcnow() if deliver else None,
    )
    db.session.add(message)
    db.session.flush()
    log.info("mail queued: %s", template, extra={"target": f"outbox:{message.id}"})
    return message


@dataclass(frozen=True)
class Claimed:
    """A message the worker holds the lease of, as plain values (delivered outside any
    transaction)."""

    id: int
    attempts: int
    lease: datetime
    email: EmailMessage


def _email(message: OutboxMessage) -> EmailMessage:
    email = EmailMessage()
    email["From"] = message.from_address
    email["To"] = message.to_address
    email["Subject"] = message.subject
    email.set_content(message.body_text)
    email.add_alternative(message.body_html, subtype="html")
    return email


def _due(now: datetime):
    return (
        OutboxMessage.status == MailStatus.PENDING,
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    )


def claim_due(limit: int = BATCH) -> list[Claimed]:
    """Take the lease of up to `limit` due messages and commit it.

    On PostgreSQL the candidates are read `FOR UPDATE SKIP LOCKED`, so workers never wait for
    each other's rows; on both databases each claim is a compare-and-set on the lease, so of
    two workers reading the same row only one takes it. A worker that dies holding a lease
    leaves the message to be claimed again when the lease runs out (at least once delivery).
    """
    now = utcnow()
    lease = now + timedelta(seconds=max(120.0, 6 * current_app.config["SMTP_TIMEOUT"]))
    claimed: list[Claimed] = []
    with unscoped():
        candidates = (
            db.session.execute(
                select(OutboxMessage)
                .where(*_due(now))
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        for message in candidates:
            taken = db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message.id, *_due(now))
                .values(claimed_until=lease)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken == 1:
                claimed.append(Claimed(message.id, message.attempts, lease, _email(message)))
        db.session.commit()
    return claimed


class BoundedSMTP(smtplib.SMTP):
    """smtplib's client, the server's name looked up within the timeout too (the socket's
    timeout starts at connect; the system resolver's retries would take seconds each)."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        try:
            addresses = resolve(host, port, timeout)
        except TimeoutError as exc:
            raise TimeoutError(
                f"the SMTP server's name {host} could not be resolved within {timeout:g} s"
            ) from exc
        *others, last = addresses
        for address in others:  # the next address when one refuses; a timeout ends it
            try:
                return socket.create_connection((address, port), timeout, self.source_address)
            except TimeoutError:
                raise
            except OSError:
                continue
        return socket.create_connection((last, port), timeout, self.source_address)


def smtp_send(smtp_url: str, email: EmailMessage, timeout: float) -> None:
    """One SMTP conversation (`smtp://user:pass@host:port?starttls=1`); every step waits at
    most `timeout` seconds (the name lookup, connect, STARTTLS and each command)."""
    url = urlsplit(smtp_url)
    with BoundedSMTP(url.hostname or "localhost", url.port or 25, timeout=timeout) as smtp:
        if parse_qs(url.query).get("starttls") == ["1"]:
            smtp.starttls()
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(email)


def _retry_delay(attempts: int) -> timedelta:
    first = current_app.config["MAIL_RETRY_DELAY"]
    return min(timedelta(seconds=first * 2 ** (attempts - 1)), LONGEST_RETRY_DELAY)


def _permanent(exc: BaseException) -> bool:
    """The server refused the message for good (a 5xx answer): retrying changes nothing."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


def deliver(item: Claimed) -> MailStatus:
    """Send one claimed message and record the outcome in a transaction of its own."""
    config = current_app.config
    error: str | None = None
    permanent = False
    try:
        smtp_send(config["SMTP_URL"], item.email, config["SMTP_TIMEOUT"])
    except (OSError, smtplib.SMTPException) as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:500]
        permanent = _permanent(exc)
    now = utcnow()
    attempts = item.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
    if error is None:
        status = MailStatus.SENT
        values.update(status=status, sent_at=now, error=None)
    elif permanent or attempts >= config["MAIL_MAX_ATTEMPTS"]:
        status = MailStatus.FAILED
        values.update(status=status, error=error)
    else:
        status = MailStatus.PENDING
        values.update(error=error, next_attempt_at=now + _retry_delay(attempts))
    with unscoped():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == item.id, OutboxMessage.claimed_until == item.lease)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    result = {MailStatus.SENT: "sent", MailStatus.FAILED: "failed"}.get(status, "retry")
    MAIL.labels(result=result).inc()
    level = logging.INFO if error is None else logging.WARNING
    log.log(
        level,
        "mail %s (attempt %s)%s",
        result,
        attempts,
        f": {error}" if error else "",
        extra={"target": f"outbox:{item.id}"},
    )
    return status


def deliver_due(limit: int = BATCH) -> int:
    """Deliver what is due now; how many messages were tried."""
    claimed = claim_due(limit)
    for item in claimed:
        deliver(item)
    return len(claimed)


class MailError(PortalError):
    """A message that cannot be retried (not failed)."""


def failed_messages(limit: int = 100) -> list[OutboxMessage]:
    """Failed messages of every partner, newest first (the operator's view)."""
    with unscoped():
        return list(
            db.session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.status == MailStatus.FAILED)
                .order_by(OutboxMessage.id.desc())
                .limit(limit)
            ).scalars()
        )


def retry_message(operator: Any, message_id: int) -> OutboxMessage:
    """Put a failed message back in the queue, due now, with its attempts counted afresh."""
    with unscoped():
        message = db.session.get(OutboxMessage, message_id)
        if message is None:
            raise NotFound("There is no such message.")
        if message.status != MailStatus.FAILED:
            raise MailError(f"Message {message_id} has not failed (it is {message.status.value}).")
        if not current_app.config.get("SMTP_URL"):
            raise MailError(
                "No SMTP server is configured (PORTAL_SMTP_URL), so nothing can be sent."
            )
        message.status = MailStatus.PENDING
        message.attempts = 0
        message.next_attempt_at = utcnow()
        message.claimed_until = None
        db.session.flush()  # in this scope: the message may be any partner's
    record_audit(
        "mail.retry",
        target=("outbox_messages", message_id),
        actor=operator,
        details={"to": message.to_address, "error": message.error or ""},
    )
    return message

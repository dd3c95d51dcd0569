"""Sending email: rendered with the partner's branding, kept in the outbox, SMTP when set."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app, g, render_template

from portal.clock import utcnow
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.theming import logo_url

log = logging.getLogger("portal.mail")


def send_email(to: str, subject: str, template: str, **context: Any) -> OutboxMessage:
    """Render `mail/<template>.txt` and `.html`, store the message, deliver it if SMTP is set.

    Runs inside the caller's transaction: the message exists only if the mutation commits.
    """
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
    message = OutboxMessage(
        to_address=to,
        from_address=current_app.config.get("MAIL_FROM", "Partner Portal <no-reply@localhost>"),
        subject=f"{subject} · {brand}",
        body_text=render_template(f"mail/{template}.txt", **context),
        body_html=render_template(f"mail/{template}.html", **context),
    )
    db.session.add(message)
    db.session.flush()
    smtp_url = current_app.config.get("SMTP_URL")
    if smtp_url:
        _deliver(smtp_url, message)
    else:
        log.info("outbox: %s to %s", message.subject, to, extra={"target": f"outbox:{message.id}"})
    return message


def _deliver(smtp_url: str, message: OutboxMessage) -> None:
    """Send through SMTP (`smtp://user:pass@host:port?starttls=1`); failures are recorded."""
    url = urlsplit(smtp_url)
    email = EmailMessage()
    email["From"] = message.from_address
    email["To"] = message.to_address
    email["Subject"] = message.subject
    email.set_content(message.body_text)
    email.add_alternative(message.body_html, subtype="html")
    message.transport = "smtp"
    try:
        with smtplib.SMTP(url.hostname or "localhost", url.port or 25, timeout=10) as smtp:
            if parse_qs(url.query).get("starttls") == ["1"]:
                smtp.starttls()
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(email)
        message.sent_at = utcnow()
    except (OSError, smtplib.SMTPException) as exc:
        message.error = str(exc)[:500]
        log.error("smtp delivery failed for outbox:%s: %s", message.id, exc)

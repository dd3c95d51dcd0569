"""The form that starts a support session."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import Field, StringField, TextAreaField
from wtforms.validators import ValidationError

from portal.forms import PortalForm
from portal.support.services import (
    MAX_REASON_LENGTH,
    MAX_TICKET_LENGTH,
    SupportInputInvalid,
    clean_reason,
    clean_ticket,
)


def _checked_by(clean):
    """A validator that runs the service's own check, so the message shows at the field."""

    def check(_form: FlaskForm, field: Field) -> None:
        try:
            clean(field.data or "")
        except SupportInputInvalid as exc:
            raise ValidationError(exc.message) from exc

    return check


class StartForm(PortalForm):
    reason = TextAreaField(
        "Reason (the user reads it)",
        validators=[_checked_by(clean_reason)],
        render_kw={"maxlength": MAX_REASON_LENGTH, "rows": 3},
    )
    ticket = StringField(
        "Ticket reference (optional)",
        validators=[_checked_by(clean_ticket)],
        render_kw={"maxlength": MAX_TICKET_LENGTH},
    )

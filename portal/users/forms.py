"""Forms of the admin user pages and the invitation page."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, Field, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from portal.auth.passwords import MIN_PASSWORD_LENGTH
from portal.forms import PortalForm
from portal.roles.models import Role
from portal.users.services import InvalidName, clean_display_name


def display_name_ok(_form: FlaskForm, field: Field) -> None:
    """The service's own name check, shown next to the field (an empty optional name passes)."""
    try:
        clean_display_name(field.data or "", required=False)
    except InvalidName as exc:
        raise ValidationError(str(exc)) from exc


def role_choices(roles: list[Role], label) -> list[tuple[str, str]]:
    return [(r.value, label(r)) for r in roles]


class InviteForm(PortalForm):
    email = EmailField(
        "Email", validators=[DataRequired("Enter an email address."), Length(max=254)]
    )
    display_name = StringField("Name (optional)", validators=[display_name_ok])
    role = SelectField("Role", validators=[DataRequired("Choose a role.")])


class RoleForm(PortalForm):
    role = SelectField("New role", validators=[DataRequired("Choose a role.")])


class AcceptInvitationForm(PortalForm):
    display_name = StringField(
        "Your name", validators=[DataRequired("Enter your name."), display_name_ok]
    )
    password = PasswordField(
        "Password",
        validators=[
            DataRequired("Choose a password."),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=1024,
                message=f"Use at least {MIN_PASSWORD_LENGTH} characters.",
            ),
        ],
    )
    confirm = PasswordField(
        "Repeat the password",
        validators=[
            DataRequired("Repeat the password."),
            EqualTo("password", "The passwords differ."),
        ],
    )

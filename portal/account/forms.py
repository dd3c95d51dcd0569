"""Forms of the account pages: sign-up and its confirmation, password reset, profile, email and
password change."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, Field, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from portal.account.services import MAX_EMAIL_LENGTH, MAX_PASSWORD_LENGTH
from portal.auth.passwords import MIN_PASSWORD_LENGTH
from portal.exceptions import PortalError
from portal.forms import PortalForm
from portal.users.forms import display_name_ok
from portal.users.services import UserError, clean_email


def email_ok(_form: FlaskForm, field: Field) -> None:
    try:
        clean_email(field.data or "")
    except UserError as exc:
        raise ValidationError(str(exc)) from exc


def email_field(label: str) -> EmailField:
    return EmailField(
        label,
        validators=[
            DataRequired("Enter an email address."),
            Length(max=MAX_EMAIL_LENGTH, message="This email address is too long."),
            email_ok,
        ],
    )


def new_password_fields(label: str = "Password") -> tuple[PasswordField, PasswordField]:
    password = PasswordField(
        label,
        validators=[
            DataRequired("Choose a password."),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=MAX_PASSWORD_LENGTH,
                message=f"Use at least {MIN_PASSWORD_LENGTH} characters.",
            ),
        ],
    )
    confirm = PasswordField(
        "Repeat the password",
        validators=[
            DataRequired("Repeat the password."),
            EqualTo("password", "The two passwords are not the same."),
        ],
    )
    return password, confirm


def attach_error(form: FlaskForm, error: PortalError) -> None:
    """Show a service's refusal next to the field it concerns (or above the form)."""
    name = getattr(error, "field", None)
    field = getattr(form, name, None) if name else None
    if isinstance(field, Field):
        field.errors = [*field.errors, str(error)]
    else:
        form.form_errors.append(str(error))


class ForgotPasswordForm(PortalForm):
    email = email_field("Email")


class ResetPasswordForm(PortalForm):
    password, confirm = new_password_fields("New password")


def name_field(label: str) -> StringField:
    return StringField(label, validators=[DataRequired("Enter your name."), display_name_ok])


class SignupForm(PortalForm):
    """No password here: it is chosen by whoever opens the link mailed to the address."""

    email = email_field("Email")
    display_name = name_field("Your name")


class VerifySignupForm(PortalForm):
    display_name = name_field("Your name")
    password, confirm = new_password_fields("Choose a password")


class ProfileForm(PortalForm):
    display_name = name_field("Display name")


class EmailChangeForm(PortalForm):
    new_email = email_field("New email address")
    password = PasswordField(
        "Your password",
        validators=[
            DataRequired("Enter your password to confirm it is you."),
            Length(max=MAX_PASSWORD_LENGTH),
        ],
    )


class PasswordChangeForm(PortalForm):
    current_password = PasswordField(
        "Current password",
        validators=[
            DataRequired("Enter your current password."),
            Length(max=MAX_PASSWORD_LENGTH),
        ],
    )
    password, confirm = new_password_fields("New password")


class ConfirmForm(PortalForm):
    """A button that confirms a link: only the CSRF token."""

"""Login forms (fields `email` and `password`)."""

from __future__ import annotations

from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from portal.forms import PortalForm


class LoginForm(PortalForm):
    email = EmailField(
        "Email", validators=[DataRequired("Enter your email address."), Length(max=254)]
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password."), Length(max=1024)]
    )
    remember = BooleanField("Keep me signed in on this device")

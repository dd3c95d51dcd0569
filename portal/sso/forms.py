"""The partner's single sign-on settings form (fields named as in the issue)."""

from __future__ import annotations

from wtforms import BooleanField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from portal.forms import PortalForm
from portal.sso.models import DEFAULT_SCOPES


class ConnectionForm(PortalForm):
    discovery_url = StringField(
        "Issuer or discovery URL",
        validators=[
            DataRequired("Enter the provider's issuer, for example https://login.example.com."),
            Length(max=500),
        ],
    )
    client_id = StringField(
        "Client ID",
        validators=[DataRequired("Enter the client ID the provider gave you."), Length(max=255)],
    )
    # Write-only: never filled in when the page is drawn again.
    client_secret = PasswordField("Client secret", validators=[Optional(), Length(max=1024)])
    scopes = StringField("Scopes", default=DEFAULT_SCOPES, validators=[Length(max=255)])
    button_label = StringField("Button label", validators=[Length(max=60)])
    allowed_domains = TextAreaField("Allowed email domains", validators=[Length(max=4000)])
    auto_provision = BooleanField("Create an account for a new person who signs in")
    # The service says why a role cannot be chosen (admin, disabled), in plain words.
    provision_role = SelectField(
        "Role of accounts created this way", choices=[], validate_choice=False
    )
    link_by_email = BooleanField(
        "Link existing accounts whose email address the provider has verified"
    )
    sso_on = BooleanField("Offer single sign-on on the sign-in page")
    password_on = BooleanField("Password sign-in stays available")

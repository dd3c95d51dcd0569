"""Changing a partner's branding: validated, stored in the partner's theme, audited.

Everything that shapes how a partner's portal looks lives in one place, the partner's theme
(`Partner.theme_settings`), so every change is a change to the partner's configuration; the
logo's bytes sit in `partner_logos`, named in the theme by their SHA-256.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import select

from portal.audit.services import record_audit
from portal.branding.images import Logo
from portal.branding.models import PartnerLogo
from portal.exceptions import Invalid
from portal.extensions import db
from portal.tenancy.context import current_partner
from portal.tenancy.models import BASE_THEMES, COLOR_RE, Partner, Theme
from portal.tenancy.scope import partner_scope
from portal.unit_of_work import lock_partner

EDITABLE = ("brand_name", "base", "primary_color", "accent_color", "support_email", "support_url")


class BrandingError(Invalid):
    """Branding that cannot be saved, with the reason."""


def clean_branding(form: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The branding fields of a submitted form, cleaned, and an error per field that is wrong.

    Only the editable fields are read; every one of them is checked, so all mistakes show at
    once.
    """
    values = {name: str(form.get(name, ""))[:600].strip() for name in EDITABLE}
    errors: dict[str, str] = {}
    values["brand_name"] = " ".join(values["brand_name"].split())
    if len(values["brand_name"]) > 80:
        errors["brand_name"] = "The brand name may be at most 80 characters long."
    elif not values["brand_name"].isprintable():
        errors["brand_name"] = "The brand name may not contain control characters."
    if values["base"] not in BASE_THEMES:
        errors["base"] = "Choose one of the themes."
    for name, label in (("primary_color", "Primary colour"), ("accent_color", "Accent colour")):
        if COLOR_RE.match(values[name]):
            values[name] = values[name].lower()
        else:
            errors[name] = f"{label}: enter a colour like #1a2b3c."
    if values["support_email"]:
        try:
            values["support_email"] = validate_email(
                values["support_email"],
                check_deliverability=False,
                test_environment=current_app.config["PORTAL_ENV"] != "production",
            ).normalized
        except EmailNotValidError as exc:
            errors["support_email"] = f"Support email: enter a valid email address ({exc})."
    if values["support_url"]:
        url = urlsplit(values["support_url"])
        if url.scheme not in ("http", "https") or not url.hostname:
            errors["support_url"] = "Support page: enter an address starting with https://."
        elif len(values["support_url"]) > 500 or any(c.isspace() for c in values["support_url"]):
            errors["support_url"] = "Support page: at most 500 characters, without spaces."
    return values, errors


def theme_from(values: Mapping[str, str], base: Theme) -> Theme:
    """`base` with the editable fields of `values` (already cleaned) put in."""
    try:
        return replace(base, **{name: values[name] for name in EDITABLE})
    except (TypeError, ValueError) as exc:
        raise BrandingError(f"{str(exc).capitalize()}.") from exc


def current_logo() -> PartnerLogo | None:
    """The logo row of the partner in scope, if it has one."""
    return db.session.execute(select(PartnerLogo)).scalar_one_or_none()


def logo_by_digest(digest: str) -> PartnerLogo | None:
    """The partner's current logo when `digest` names it; another partner's is never found."""
    logo = current_logo()
    return logo if logo is not None and logo.digest == digest else None


def _changes(before: Theme, after: Theme) -> dict[str, dict[str, Any]]:
    old, new = before.to_dict(), after.to_dict()
    changed = [f.name for f in fields(Theme) if old[f.name] != new[f.name]]
    return {"before": {n: old[n] for n in changed}, "after": {n: new[n] for n in changed}}


def _store(partner: Partner, theme: Theme) -> None:
    """The one writer of a partner's theme: the partner's configuration changes with it."""
    partner.theme_settings = theme.to_dict()


def update_branding(
    values: Mapping[str, str], *, logo: Logo | None = None, remove_logo: bool = False
) -> list[str]:
    """Store the partner's branding (and its new logo, or none); the names of what changed."""
    lock_partner()  # the logo row and the theme that names it change together, one by one
    partner = current_partner._get_current_object()
    before = partner.theme
    after = theme_from(values, before)
    stored = current_logo()
    if logo is not None:
        if stored is None:
            stored = PartnerLogo(digest="", data=b"", width=0, height=0)
            db.session.add(stored)
        stored.digest, stored.data = logo.digest, logo.data
        stored.width, stored.height = logo.width, logo.height
        after = replace(after, logo=logo.digest)
    elif remove_logo:
        if stored is not None:
            db.session.delete(stored)
        after = replace(after, logo="")
    if after == before:
        return []
    _store(partner, after)
    change = _changes(before, after)
    record_audit("branding.update", target=partner, details=change)
    return list(change["after"])


def reset_branding(*, actor: Any = ...) -> bool:
    """Back to the portal's default look: no brand name, logo or support contact, the default
    theme and colours. False when there was nothing to reset."""
    lock_partner()
    partner = current_partner._get_current_object()
    before = partner.theme
    stored = current_logo()
    if stored is not None:
        db.session.delete(stored)
    after = Theme()
    if after == before and stored is None:
        return False
    _store(partner, after)
    record_audit("branding.reset", target=partner, actor=actor, details=_changes(before, after))
    return True


def reset_partner_branding(operator: Any, partner: Partner) -> bool:
    """An operator resets a partner's branding, in the partner's trail and the platform's."""
    with partner_scope(partner):
        done = reset_branding(actor=operator)
    if done:
        record_audit("partner.branding_reset", target=partner, actor=operator)
    return done

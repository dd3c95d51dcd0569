"""/admin/settings/branding (the partner's admins) and the logo, served from the partner's host."""

from __future__ import annotations

import base64
from pathlib import PurePosixPath
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from portal.auth.guards import public
from portal.body_limit import accepts_bodies_up_to
from portal.branding.images import MAX_BYTES, Logo, LogoError, reencode
from portal.branding.services import (
    EDITABLE,
    BrandingError,
    clean_branding,
    logo_by_digest,
    reset_branding,
    theme_from,
    update_branding,
)
from portal.exceptions import PortalError
from portal.roles.permissions import Permission
from portal.roles.policy import requires
from portal.security_headers import cacheable
from portal.tenancy.models import LOGO_DIGEST_RE, Theme
from portal.theming import THEMES, contrast_notes, ink_on, legible_on, logo_url
from portal.unit_of_work import attempt
from portal.web import perform

bp = Blueprint(
    "branding_admin", __name__, subdomain="<partner>", url_prefix="/admin/settings/branding"
)
logo_bp = Blueprint("branding", __name__, subdomain="<partner>")

# The form with a logo of the largest size accepted, and room to say it is too large in place.
BODY_LIMIT = 4 * MAX_BYTES
EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp"}
YEAR = 365 * 24 * 3600


def _uploaded_logo(*, optimize: bool = True) -> Logo | None:
    """The logo in the form, re-encoded; None when no file was chosen. LogoError if unusable."""
    upload = request.files.get("logo")
    if upload is None or not upload.filename:
        return None
    suffix = PurePosixPath(upload.filename.lower()).suffix
    if suffix == ".svg":
        raise LogoError("SVG logos are not accepted: upload a PNG, JPEG or WebP image.")
    if suffix not in EXTENSIONS:
        raise LogoError("Upload a PNG, JPEG or WebP image (.png, .jpg, .jpeg or .webp).")
    return reencode(upload.stream.read(MAX_BYTES + 1), optimize=optimize)


def _form_state(*, preview: bool = False) -> tuple[dict[str, str], dict[str, str], Logo | None]:
    values, errors = clean_branding(request.form)
    logo = None
    try:
        logo = _uploaded_logo(optimize=not preview)
    except LogoError as exc:
        errors["logo"] = exc.message
    return values, errors, logo


def _page(values: dict[str, str], errors: dict[str, str], status: int = 200) -> Any:
    theme = g.partner.theme
    return render_template(
        "branding/index.html",
        values=values,
        errors=errors,
        themes=THEMES,
        stored=theme,
        notes=contrast_notes(theme),
        preview=_preview_context(theme, logo_url(theme)),
        max_megabytes=MAX_BYTES // (1024 * 1024),
    ), status


@bp.route("/", methods=["GET", "POST"])
@accepts_bodies_up_to(BODY_LIMIT)
@requires(Permission.SETTINGS_MANAGE)
def index() -> Any:
    if request.method == "GET":
        theme = g.partner.theme
        return _page({name: getattr(theme, name) for name in EDITABLE}, {})
    values, errors, logo = _form_state()
    if not errors:
        try:
            with attempt():
                changed = update_branding(
                    values, logo=logo, remove_logo=request.form.get("remove_logo") == "1"
                )
        except PortalError as exc:
            errors["form"] = exc.message
        else:
            flash(
                "Branding saved: every page and email now uses it."
                if changed
                else "Nothing changed: the branding was already like this.",
                "info",
            )
            return redirect(url_for("branding_admin.index"))
    return _page(values, errors, 422)


@bp.post("/preview")
@accepts_bodies_up_to(BODY_LIMIT)
@requires(Permission.SETTINGS_MANAGE)
def preview() -> Any:
    """The form's branding drawn as header, button, form and email; nothing is stored."""
    values, errors, logo = _form_state(preview=True)
    stored = g.partner.theme
    usable = {k: v for k, v in values.items() if k not in errors}
    try:
        theme = theme_from({**{n: getattr(stored, n) for n in EDITABLE}, **usable}, stored)
    except BrandingError as exc:
        errors["form"] = exc.message
        theme = stored
    if logo is not None:
        image = "data:image/png;base64," + base64.b64encode(logo.data).decode()
    elif request.form.get("remove_logo") == "1":
        image = None
    else:
        image = logo_url(stored)
    return render_template(
        "branding/_preview.html",
        preview=_preview_context(theme, image),
        notes=contrast_notes(theme),
        errors=errors,
    )


def _preview_context(theme: Theme, image: str | None) -> dict[str, Any]:
    brand = theme.brand_name or g.partner.name
    email = render_template(
        "mail/invitation.html",
        brand=brand,
        partner=g.partner,
        theme=theme,
        logo_url=image,
        inviter="Ada Admin",
        role="Basic",
        link=url_for("auth.login", _external=True),
    )
    return {
        "theme": theme,
        "brand": brand,
        "image": image,
        "email": email,
        "style": _variables(theme),
        "base": THEMES[theme.base],
    }


def _variables(theme: Theme) -> str:
    """The CSS variables base.html sets for the whole page, for the preview box alone."""
    page = THEMES[theme.base].background
    return (
        f"--brand: {theme.primary_color}; --brand-ink: {ink_on(theme.primary_color)}; "
        f"--brand-text: {legible_on(theme.primary_color, page)}; "
        f"--brand-accent: {theme.accent_color}; "
        f"--brand-accent-ink: {ink_on(theme.accent_color)};"
    )


@bp.post("/reset")
@requires(Permission.SETTINGS_MANAGE)
def reset() -> Response:
    def act() -> str:
        if reset_branding():
            return "Branding reset: the portal's default look, without logo or support contact."
        return "The branding already was the portal's default."

    return perform(act, back=url_for("branding_admin.index"))


@logo_bp.get("/branding/logo/<digest>.png")
@public  # the sign-in page shows it, and emails link to it
@cacheable
def logo(digest: str) -> Response:
    """The partner's logo, by the hash of its bytes: cached for a year, never another's."""
    if not LOGO_DIGEST_RE.match(digest):
        abort(404)
    stored = logo_by_digest(digest)
    if stored is None:
        abort(404)
    response = Response(stored.data, mimetype=stored.content_type)
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    response.headers["Content-Disposition"] = 'inline; filename="logo.png"'
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.set_etag(digest)
    return response.make_conditional(request)

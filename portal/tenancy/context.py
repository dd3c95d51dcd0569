"""Resolving the partner from the host, once per request, and loading ids partner-scoped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, request
from flask.globals import request_ctx
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.local import LocalProxy

from portal.exceptions import NotFound
from portal.extensions import db
from portal.tenancy import scope  # noqa: F401  - importing registers the ORM scoping hooks
from portal.tenancy.configuration import remember_version
from portal.tenancy.models import Partner, PartnerStatus, Site, TenantOwned, slug_problem
from portal.tenancy.scope import resolving_partner

M = TypeVar("M", bound=TenantOwned)
log = logging.getLogger("portal.tenancy")

MAX_ID = 2**31 - 1  # ids are 32-bit integers in every table


def parse_id(value: Any) -> int | None:
    """A row id from a URL or form value, or None: digits only, 1 to MAX_ID."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1 <= value <= MAX_ID else None
    text = str(value or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


def parse_ids(values: list[str], limit: int = 500) -> list[int | str] | None:
    """Ids from a multi-value form field, in order, without repeats; None if one is not a number.

    Numbers beyond MAX_ID stay in the list as text so that a per-row result can say
    "no such row" for them without a database query.
    """
    out: dict[int | str, None] = {}
    for value in values[:limit]:
        text = str(value).strip()
        if not (text.isascii() and text.isdigit()):
            return None
        number = parse_id(text)
        out[number if number is not None else text] = None
    return list(out)


current_partner: Partner = LocalProxy(lambda: g.get("partner"))  # type: ignore[assignment]


class PartnerUnavailable(HTTPException):
    """The host names a partner that exists but is suspended."""

    code = 403
    description = "This portal is unavailable at the moment."


class PartnerClosed(PartnerUnavailable):
    """The host names a partner the platform offboarded: the portal answers "closed"."""

    code = 410
    description = "This portal is closed."


def exempt_from_tenancy(view: Any) -> Any:
    """Mark a view that answers on any partner host without resolving it (health checks)."""
    view.tenancy_exempt = True
    return view


def _view(endpoint: str | None) -> Any:
    return current_app.view_functions.get(endpoint) if endpoint else None


def resolve_partner(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """url_value_preprocessor: turn the `<partner>` subdomain into `g.partner` or a 404."""
    g.partner = None
    if endpoint is None and values is None:
        # No route matched (404, 405): the page that says so is still the partner's, in its
        # colours, with its navigation and its own assets (the root domain's are other-origin).
        values = _partner_of_host()
    g.on_partner_host = bool(values) and "partner" in values
    if not g.on_partner_host:
        return
    slug = values.pop("partner")
    if getattr(_view(endpoint), "tenancy_exempt", False):
        return
    g.partner_slug = slug[:40]  # for log lines, even if the lookup below fails
    if slug_problem(slug) is not None or request.host != request.host.lower():
        abort(404)
    partner = _host_partner(slug)
    if partner is None:
        abort(404)
    remember_version(partner)
    if not partner.is_active:
        g.unavailable_partner = partner.name  # plain: the page is drawn after a rollback
        g.unavailable_theme = partner.theme  # its support contact, on that page
        if partner.status == PartnerStatus.CLOSED:
            raise PartnerClosed()
        raise PartnerUnavailable()
    g.partner = partner
    g.site = Site.of(partner)


PartnerLoader = Callable[[str], "Partner | None"]
_LOADER = "portal_partner_loader"
_IDS = "portal_partner_ids"


def load_partner_with(app: Flask, loader: PartnerLoader) -> None:
    """Have `loader(slug)` resolve the host's partner: it finds the partner by its address and,
    in the same statement, whatever else every request of the partner needs (the session the
    request presents, `auth/loader.py`), scoped to the partner by its id."""
    app.extensions[_LOADER] = loader


def _host_partner(slug: str) -> Partner | None:
    """The partner `slug` names, by the registered loader in one statement once this process
    knows its id (learnt from the first request: one statement more)."""
    loader: PartnerLoader | None = current_app.extensions.get(_LOADER)
    ids: dict[str, int] = current_app.extensions.setdefault(_IDS, {})
    known = ids.get(slug)
    if loader is not None and known is not None:
        with resolving_partner(known):
            partner = loader(slug)
        if partner is None or partner.id == known:
            return partner
        # Another partner holds the address now: scoped to the old id, the statement found
        # none of its rows. Learn the new id and ask again.
    partner = db.session.execute(select(Partner).where(Partner.slug == slug)).scalar_one_or_none()
    if partner is None:
        ids.pop(slug, None)
        return None
    ids[slug] = partner.id
    if loader is None:
        return partner
    with resolving_partner(partner.id):
        return loader(slug)


def _partner_of_host() -> dict[str, Any] | None:
    """The `<partner>` value the host would give a partner route, or None on the root domain."""
    if request_ctx.url_adapter is None:  # the host itself was refused
        return None
    root = current_app.config.get("SERVER_NAME") or ""
    host = request.host
    if not root or not host.endswith("." + root):
        return None
    return {"partner": host[: -len(root) - 1]}


def partner_by_slug(slug: str) -> Partner:
    """The partner an operator names by its address name (command line), or NotFound."""
    partner = db.session.execute(select(Partner).where(Partner.slug == slug)).scalar_one_or_none()
    if partner is None:
        raise NotFound(f"No partner with the address name {slug!r}.")
    return partner


def add_partner_default(endpoint: str, values: dict[str, Any]) -> None:
    """url_defaults: `url_for` on a partner host never needs the partner argument."""
    # The slug as captured when the partner was resolved: no database read, even on an error
    # page drawn after a failed transaction.
    site = g.get("site")
    if (
        site is not None
        and "partner" not in values
        and current_app.url_map.is_endpoint_expecting(endpoint, "partner")
    ):
        values["partner"] = site.slug


def get_or_404(model: type[M], ident: Any) -> M:
    """Load a tenant-owned row by id; another partner's row is as missing as a missing one."""
    partner = g.get("partner")
    if partner is None:
        abort(404)
    key = parse_id(ident)
    if key is None:
        abort(404)
    row = db.session.execute(
        select(model).where(model.id == key, model.partner_id == partner.id)  # type: ignore[attr-defined]
    ).scalar_one_or_none()
    if row is None:
        # Missing or another partner's: the same 404, but the attempt is on the record.
        log.info("no %s %s in this partner", model.__tablename__, key)  # type: ignore[attr-defined]
        abort(404)
    return row


def init_app(app: Flask) -> None:
    app.url_value_preprocessor(resolve_partner)
    app.url_defaults(add_partner_default)

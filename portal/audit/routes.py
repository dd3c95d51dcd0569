"""/admin/audit: the partner's audit trail — filters that work with and without JavaScript,
keyset pages, one event's detail page, and the CSV export (a feature), streamed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from functools import lru_cache
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    make_response,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup

from portal.audit.presentation import (
    ACTION_CHOICES,
    ACTIONS,
    AuditFilter,
    EventPage,
    describe,
    detail_items,
    encode_cursor,
    event_by_id,
    page_of,
    shown,
    stream,
    target_label,
    target_names,
)
from portal.extensions import db
from portal.features.evaluation import feature
from portal.redirects import local_path
from portal.roles.permissions import Permission
from portal.roles.policy import requires
from portal.template_urls import row_links
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.theming import current_theme
from portal.web import is_htmx

bp = Blueprint("audit_admin", __name__, subdomain="<partner>", url_prefix="/admin/audit")
PER_PAGE = 50
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")  # what a spreadsheet may evaluate
CSV_COLUMNS = [
    "time_utc",
    "actor_type",
    "actor",
    "on_behalf_of_id",
    "on_behalf_of",
    "impersonation_id",
    "support_reason",
    "support_ticket",
    "action",
    "action_description",
    "target_type",
    "target_id",
    "target",
    "details",
    "ip",
    "request_id",
]


@bp.get("/")
@requires(Permission.AUDIT_VIEW)
def index() -> Response:
    filters = AuditFilter.from_args(request.args)
    cursor = request.args.get("before", "")[:200]
    page = EventPage([], False) if filters.errors else page_of(filters, cursor, PER_PAGE)
    context = {
        "events": shown(
            page.events,
            target_names(page.events),
            row_links("audit_admin.detail", "event_id"),
        ),
        "filters": filters,
        "args": filters.args(),
        "action_options": _action_options(
            current_theme().base, filters.action if filters.action in ACTIONS else ""
        ),
        "first_page": not cursor,
        "next_cursor": encode_cursor(page.events[-1]) if page.has_next else None,
    }
    # htmx asks for the results only; the same address without it gives the whole page.
    template = "audit/_results.html" if is_htmx() else "audit/index.html"
    response = make_response(render_template(template, **context), 422 if filters.errors else 200)
    response.headers["Vary"] = "HX-Request"
    return response


@bp.get("/<int:event_id>")
@requires(Permission.AUDIT_VIEW)
def detail(event_id: int) -> str:
    event = event_by_id(event_id)
    if event is None:
        abort(404)
    return render_template(
        "audit/detail.html",
        back=_back_to_the_list(),
        event=event,
        names=target_names([event]),
        describe=describe,
        target_label=target_label,
        detail_items=detail_items,
    )


@lru_cache(maxsize=256)
def _action_options(_base: str, selected: str) -> Markup:
    """The action filter's options, `selected` chosen: the same for every partner of a base
    theme (whose templates draw them), drawn once per process for each action (60 options
    were a twentieth of the page)."""
    drawn = render_template(
        "audit/_action_options.html", action_choices=ACTION_CHOICES, selected=selected
    )
    return Markup(drawn.strip())


def _back_to_the_list() -> str:
    """The list as the admin left it (its filters and page, from the referring address on
    this same host), else the unfiltered list."""
    index = url_for("audit_admin.index")
    came_from = urlsplit(request.referrer or "")
    if came_from.netloc != request.host or came_from.path != index or not came_from.query:
        return index
    return local_path(f"{came_from.path}?{came_from.query}", index, prefix=index)


@bp.get("/export.csv")
@feature("audit_export")
@requires(Permission.AUDIT_VIEW)
def export() -> Response:
    """The filtered trail as CSV, newest first, written out batch by batch (never whole in
    memory).

    The rows are read while the response is sent, in an app context of the generator's own,
    scoped to this partner: nothing stays open if the client goes away before the first row.
    """
    filters = AuditFilter.from_args(request.args)
    app, partner_id = current_app._get_current_object(), g.partner.id

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)

        def flush() -> str:
            text = out.getvalue()
            out.seek(0)
            out.truncate()
            return text

        writer.writerow(CSV_COLUMNS)
        yield flush()
        if filters.errors:
            return
        with app.app_context(), partner_scope(db.session.get(Partner, partner_id)):
            yield from _batches(writer, flush)

    def _batches(writer, flush) -> Iterator[str]:
        for batch in stream(filters):
            names = target_names(batch.events)
            for e in batch.events:
                cells = [
                    e.created_at.isoformat(),
                    e.actor_type.value,
                    e.actor_label,
                    e.on_behalf_of_id or "",
                    e.support_user_email
                    if e.support_reason is not None and e.on_behalf_of_id
                    else "",
                    e.impersonation_id or "",
                    e.support_reason or "",
                    e.support_ticket or "",
                    e.action,
                    describe(e.action),
                    e.target_type or "",
                    e.target_id or "",
                    target_label(e, names),
                    json.dumps(e.details, sort_keys=True),
                    e.ip or "",
                    e.request_id or "",
                ]
                # Every cell, not only the ones that look free-form today: a spreadsheet runs any.
                writer.writerow([neutralise(str(cell)) for cell in cells])
            yield flush()

    return Response(
        rows(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit.csv"},
    )


def neutralise(value: str) -> str:
    """Neutralise a spreadsheet formula in an exported cell (CSV injection): a leading
    apostrophe makes the cell text. Leading spaces do not hide one, in case a spreadsheet
    trims them."""
    return "'" + value if value.lstrip(" ")[:1] in FORMULA_STARTS else value

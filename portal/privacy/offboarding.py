"""Partner offboarding: the archive of everything a partner holds, closing, then deleting.

The archive is a ZIP file:

- `manifest.json`: `{"format": "partner-portal.partner-archive/1", "partner": slug,
  "exported_at": ISO time, "tables": {table: row count}}`
- `tables/<table>.json` for `partners` (the one row) and every tenant table: a JSON array of
  objects, one per row ordered by id, keyed by column name; times are ISO 8601 UTC strings,
  enumerations their stored value, binary columns (a logo's image) standard base64 text,
  JSON columns as they are.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from portal.audit.maintenance import allow_audit_changes
from portal.audit.services import record_audit
from portal.clock import utcnow
from portal.exceptions import Invalid
from portal.extensions import db
from portal.sessions.services import revoke_partner_sessions
from portal.tenancy.models import Partner, PartnerStatus, TenantOwned
from portal.tenancy.scope import partner_scope

ARCHIVE_FORMAT = "partner-portal.partner-archive/1"
MIN_GRACE_DAYS, MAX_GRACE_DAYS = 1, 365


class OffboardingError(Invalid):
    """An offboarding step that cannot happen (yet), with the reason."""


def tenant_models() -> list[Any]:
    """Every tenant model, parents before children (the order rows can be restored in)."""
    by_table = {
        m.local_table: m.class_
        for m in db.Model.registry.mappers
        if issubclass(m.class_, TenantOwned)
    }
    return [by_table[t] for t in db.metadata.sorted_tables if t in by_table]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):  # stored as naive UTC: said so, as in a user's export
        return value.isoformat() + "Z"
    if isinstance(value, bytes | memoryview):  # PostgreSQL's driver may give a memoryview
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "value") and isinstance(value.value, str):  # enumerations
        return value.value
    return value


def _row(row: Any) -> dict[str, Any]:
    return {c.key: _plain(getattr(row, c.key)) for c in row.__mapper__.column_attrs}


def partner_tables(partner: Partner) -> dict[str, list[dict[str, Any]]]:
    """Every row of `partner`, per table."""
    tables = {"partners": [_row(partner)]}
    with partner_scope(partner):
        for model in tenant_models():
            rows = db.session.execute(select(model).order_by(model.id)).scalars()
            tables[model.__tablename__] = [_row(r) for r in rows]
    return tables


def export_archive(partner: Partner, *, actor: Any = None) -> bytes:
    """The partner's archive (format above), audited on the platform log."""
    tables = partner_tables(partner)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        manifest = {
            "format": ARCHIVE_FORMAT,
            "partner": partner.slug,
            "exported_at": utcnow().isoformat() + "Z",
            "tables": {name: len(rows) for name, rows in tables.items()},
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))
        for name, rows in tables.items():
            archive.writestr(f"tables/{name}.json", json.dumps(rows, indent=1, ensure_ascii=False))
    details = {"tables": manifest["tables"]}
    with partner_scope(partner):  # the partner's own trail shows who took a copy of it all
        record_audit("partner.export", actor=actor, target=partner, details=details)
    record_audit("partner.export", actor=actor, target=partner, details=details)
    return buffer.getvalue()


def read_archive(data: bytes) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The manifest and the tables of an archive made by `export_archive`."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        if manifest.get("format") != ARCHIVE_FORMAT:
            raise OffboardingError("This is not a partner archive of this format.")
        tables = {
            name: json.loads(archive.read(f"tables/{name}.json")) for name in manifest["tables"]
        }
    return manifest, tables


def close_partner(operator: Any, partner: Partner, grace_days: int) -> datetime:
    """Close a partner for good: its portal answers "closed", every session ends, and its
    data may be deleted once `grace_days` have passed. Returns that time."""
    if not MIN_GRACE_DAYS <= grace_days <= MAX_GRACE_DAYS:
        raise OffboardingError(
            f"The grace period must be between {MIN_GRACE_DAYS} and {MAX_GRACE_DAYS} days."
        )
    if partner.status == PartnerStatus.CLOSED:
        raise OffboardingError(f"{partner.name} is already closed.")
    now = utcnow()
    partner.status = PartnerStatus.CLOSED
    partner.closed_at = now
    partner.delete_after = now + timedelta(days=grace_days)
    with partner_scope(partner):
        ended = revoke_partner_sessions(by=None, reason="partner closed")
        details = {"grace_days": grace_days, "sessions": ended}
        record_audit("partner.close", actor=operator, target=partner, details=details)
    record_audit("partner.close", actor=operator, target=partner, details=details)
    return partner.delete_after


def reopen_partner(operator: Any, partner: Partner) -> None:
    """Undo a closure during the grace period: the partner is suspended (then reactivated)."""
    if partner.status != PartnerStatus.CLOSED:
        raise OffboardingError(f"{partner.name} is not closed.")
    partner.status = PartnerStatus.SUSPENDED
    partner.closed_at = partner.delete_after = None
    with partner_scope(partner):
        record_audit("partner.reopen", actor=operator, target=partner)
    record_audit("partner.reopen", actor=operator, target=partner)


def delete_partner(operator: Any, partner: Partner, *, confirm_slug: str) -> dict[str, int]:
    """Delete every row of a closed partner whose grace period is over; the second
    confirmation is its address name typed again. Returns rows deleted per table."""
    if partner.status != PartnerStatus.CLOSED or partner.delete_after is None:
        raise OffboardingError(f"{partner.name} must be closed before it can be deleted.")
    if utcnow() < partner.delete_after:
        raise OffboardingError(
            f"{partner.name} can be deleted from {partner.delete_after:%Y-%m-%d %H:%M} UTC, "
            "when its grace period ends."
        )
    if confirm_slug.strip() != partner.slug:
        raise OffboardingError("Type the partner's address name exactly to confirm.")
    counts: dict[str, int] = {}
    slug, partner_id = partner.slug, partner.id
    with partner_scope(partner):
        allow_audit_changes()  # the partner's audit events go with it (recorded below)
        for model in reversed(tenant_models()):
            counts[model.__tablename__] = db.session.execute(
                delete(model).execution_options(synchronize_session=False)
            ).rowcount
    db.session.expunge(partner)
    db.session.execute(
        delete(Partner).where(Partner.id == partner_id).execution_options(synchronize_session=False)
    )
    record_audit(
        "partner.delete",
        actor=operator,
        target=("partners", partner_id),
        details={"slug": slug, "rows": counts},
    )
    return counts

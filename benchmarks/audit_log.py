"""Time the audit log with 1,000,000 events in one partner (and 10,000 in another).

    .venv/bin/python benchmarks/audit_log.py                      # SQLite (a temp file)
    .venv/bin/python benchmarks/audit_log.py postgresql://postgres@127.0.0.1:5432/postgres
    EVENTS=200000 .venv/bin/python benchmarks/audit_log.py        # fewer events

Builds a throw-away database (on PostgreSQL as an ordinary owner role, so row-level security
applies), inserts the events in bulk inside each partner's scope, signs an admin in through
the real form and times pages end to end through the WSGI app (median of 5): the first page,
each filter, a page deep in the trail by its cursor, and a filtered CSV export.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask_migrate import upgrade

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from user_list import PASSWORD, database, signed_in

from portal import create_app
from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.features.services import switch_feature
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User, UserStatus

EVENTS = int(os.environ.get("EVENTS", "1000000"))
ACTIONS = [
    "auth.login",
    "auth.login",
    "auth.login",
    "session.start",
    "session.start",
    "session.start",
    "auth.logout",
    "account.profile_update",
    "user.role_change",
    "subscription.signed",
]
START = datetime(2025, 1, 1)


def fill(partner_id: int, count: int) -> None:
    """`count` events over a year, actors among 5,000 users, one in 500 made by support."""
    table = AuditEvent.__table__
    step = timedelta(days=365) / count
    for chunk in range(0, count, 10_000):
        rows = [
            {
                "partner_id": partner_id,
                "created_at": START + step * i,
                "actor_type": "user",
                "actor_id": i % 5000,
                "actor_label": f"user{i % 5000:06d}@p{partner_id}.example",
                "on_behalf_of_id": None,
                "impersonation_id": 1 if i % 500 == 0 else None,
                "action": ACTIONS[i % len(ACTIONS)],
                "target_type": "users",
                "target_id": str(i % 5000),
                "details": {"method": "password"} if i % 10 < 3 else {"n": i},
                "ip": "192.0.2.1",
                "request_id": f"{i:016x}",
            }
            for i in range(chunk, min(chunk + 10_000, count))
        ]
        db.session.execute(table.insert(), rows)
        db.session.commit()


def timed(client, base: str, paths: list[str]) -> None:
    for path in paths:
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            response = client.get(path, base_url=base)
            body = response.get_data()
            timings.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        shown = (
            body.count(b"<tr>") - 1
            if not path.startswith("/admin/audit/export")
            else (body.count(b"\n") - 1)
        )
        print(f"  {statistics.median(timings):8.1f} ms  {path:<72} {shown} rows")


def main() -> None:
    url, cleanup = database(sys.argv[1] if len(sys.argv) > 1 else None)
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench-audit-key-kT9-x2Qa7LmPz0Rv_4WbYc8NdE5fGh1J",
            "SERVER_NAME": "localhost",
            "PORTAL_ENV": "testing",
            "PASSWORD_HASH_PROFILE": "cheapest",
            # Bulk inserts of 10,000 rows may take longer than a request's 3 s on a busy
            # machine; the pages timed below never come near it.
            "DATABASE_STATEMENT_TIMEOUT": 120,
        }
    )
    try:
        with app.app_context():
            upgrade(directory=str(Path(__file__).resolve().parent.parent / "migrations"))
            big, small = Partner(slug="big", name="Big"), Partner(slug="small", name="Small")
            db.session.add_all([big, small])
            db.session.commit()
            t0 = time.perf_counter()
            with partner_scope(small):
                fill(small.id, 10_000)
            with partner_scope(big):
                fill(big.id, EVENTS)
                db.session.add(
                    User(
                        email="admin@big.example",
                        display_name="Admin",
                        role=Role.ADMIN,
                        status=UserStatus.ACTIVE,
                        password_hash=hash_password(PASSWORD),
                    )
                )
                switch_feature("audit_export", True)
                db.session.commit()
            if db.engine.dialect.name == "postgresql":
                with db.engine.connect() as conn:
                    conn.execute(sa.text("ANALYZE"))
                    conn.commit()
            elapsed = time.perf_counter() - t0
            print(
                f"{db.engine.dialect.name}: inserted {EVENTS + 10_000:,} events in {elapsed:.1f}s"
            )
        base = "http://big.localhost"
        admin = app.test_client()
        signed_in(admin, base, "admin@big.example")
        first = admin.get("/admin/audit/", base_url=base).text
        cursor = re.search(r"before=([A-Za-z0-9_-]+)", first).group(1)
        timed(
            admin,
            base,
            [
                "/admin/audit/",
                f"/admin/audit/?before={cursor}",
                "/admin/audit/?action=user.role_change",
                "/admin/audit/?action=subscription.signed&from=2025-06-01&to=2025-06-30",
                "/admin/audit/?from=2025-03-01&to=2025-03-01",
                "/admin/audit/?support=1",
                "/admin/audit/?who=user000042",
                "/admin/audit/?target=users+4242",
                "/admin/audit/export.csv?action=user.role_change&from=2025-12-01",
            ],
        )
    finally:
        with app.app_context():
            db.engine.dispose()
        if cleanup:
            admin_engine, name = cleanup
            with admin_engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))


if __name__ == "__main__":
    main()

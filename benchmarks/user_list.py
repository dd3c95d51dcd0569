"""Time the admin user list and the support lookup with 100,000 users in one partner (and
1,000 in another), a third of them subscribed.

    .venv/bin/python benchmarks/user_list.py                      # SQLite (a temp file)
    .venv/bin/python benchmarks/user_list.py postgresql://postgres@127.0.0.1:5432/postgres

Builds a throw-away database, inserts the users and subscriptions in bulk, logs an admin and a
support agent in through the real login form and times each list request end to end through
the WSGI app (median of 5).
"""

from __future__ import annotations

import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask_migrate import upgrade

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal import create_app
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.features.services import switch_feature
from portal.subscriptions.models import Plan, Subscription
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

USERS = 100_000
PASSWORD = "benchmark-password"
QUERIES = [
    "/admin/users/",
    "/admin/users/?page=2000",
    "/admin/users/?q=user0500",
    "/admin/users/?q=person+77",
    "/admin/users/?role=company",
    "/admin/users/?status=deactivated&sort=last_login&direction=desc",
    "/admin/users/?sort=created&direction=desc&page=50",
    "/admin/users/?q=nomatch-anywhere",
]
# The support lookup reuses the admin list's query, with the subscription filter on top.
SUPPORT_QUERIES = [
    "/support/",
    "/support/?page=2000",
    "/support/?q=user0500",
    "/support/?q=person+77",
    "/support/?status=active&role=basic",
    "/support/?subscription=signed",
    "/support/?subscription=none&page=100",
    "/support/?subscription=suspended&q=person+9",
]


def database(url: str | None):
    if url is None:
        path = Path(tempfile.mkdtemp()) / "bench.sqlite3"
        return f"sqlite:///{path}", None
    base = sa.engine.make_url(url).set(drivername="postgresql+psycopg")
    name = f"portal_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # an ordinary owner role: row-level security applies
        conn.execute(sa.text(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOBYPASSRLS'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
    url = base.set(database=name, username=name, password=None)
    return url.render_as_string(hide_password=False), (admin, name)


def fill(partner_id: int, count: int, password_hash: str) -> None:
    roles = ["guest", "basic", "advanced", "company"]
    statuses = ["active"] * 8 + ["invited", "deactivated"]
    start = datetime(2024, 1, 1)
    rows = [
        {
            "partner_id": partner_id,
            "email": f"user{i:06d}@p{partner_id}.example",
            "display_name": f"Person {i}",
            "role": roles[i % 4],
            "status": statuses[i % 10],
            "password_hash": password_hash,
            "is_support": False,
            "created_at": start + timedelta(minutes=i),
            "last_login_at": start + timedelta(hours=i % 5000) if i % 3 else None,
        }
        for i in range(count)
    ]
    table = User.__table__
    for chunk in range(0, count, 10_000):
        db.session.execute(table.insert(), rows[chunk : chunk + 10_000])
    db.session.commit()


def subscribe(partner_id: int) -> None:
    """Every third user of the partner signed to one plan, every thirtieth suspended."""
    plan = Plan(partner_id=partner_id, code="bench", name="Bench", allowed_roles=["basic"])
    db.session.add(plan)
    db.session.flush()
    ids = db.session.execute(sa.select(User.id).order_by(User.id)).scalars().all()
    now = datetime(2025, 1, 1)
    rows = [
        {
            "partner_id": partner_id,
            "user_id": user_id,
            "plan_id": plan.id,
            "state": "suspended" if n % 30 == 0 else "signed",
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        for n, user_id in enumerate(ids)
        if n % 3 == 0
    ]
    for chunk in range(0, len(rows), 10_000):
        db.session.execute(Subscription.__table__.insert(), rows[chunk : chunk + 10_000])
    db.session.commit()


def signed_in(client, base: str, email: str) -> None:
    page = client.get("/login", base_url=base).text
    token = page.split('"X-CSRFToken": "')[1].split('"')[0]
    response = client.post(
        "/login", base_url=base, data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.status_code


def timed(client, base: str, paths: list[str]) -> None:
    for path in paths:
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            response = client.get(path, base_url=base)
            timings.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        count = response.text.split('class="muted result-count">')[1].split(".")[0]
        print(f"  {statistics.median(timings):7.1f} ms  {path:<70} {count}")


def main() -> None:
    url, cleanup = database(sys.argv[1] if len(sys.argv) > 1 else None)
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench",
            "SERVER_NAME": "localhost",
            "PORTAL_ENV": "testing",
            "PASSWORD_HASH_PROFILE": "cheapest",
        }
    )
    try:
        with app.app_context():
            upgrade(directory=str(Path(__file__).resolve().parent.parent / "migrations"))
            big, small = Partner(slug="big", name="Big"), Partner(slug="small", name="Small")
            db.session.add_all([big, small])
            db.session.commit()
            hashed = hash_password(PASSWORD)
            t0 = time.perf_counter()
            # Each partner's rows inside its scope: outside one, row-level security refuses them.
            with partner_scope(small):
                fill(small.id, 1_000, hashed)
            with partner_scope(big):
                fill(big.id, USERS, hashed)
                db.session.execute(
                    sa.update(User)
                    .where(User.email == "user000000@p1.example")
                    .values(role="admin")
                )
                db.session.execute(  # user 1 is basic and active: the support agent
                    sa.update(User)
                    .where(User.email == "user000001@p1.example")
                    .values(is_support=True)
                )
                subscribe(big.id)
                switch_feature("impersonation", True)
                db.session.commit()
            if db.engine.dialect.name == "postgresql":
                with db.engine.connect() as conn:
                    conn.execute(sa.text("ANALYZE"))
                    conn.commit()
            elapsed = time.perf_counter() - t0
            print(f"{db.engine.dialect.name}: inserted {USERS + 1000:,} users in {elapsed:.1f}s")
        base = "http://big.localhost"
        admin, agent = app.test_client(), app.test_client()
        signed_in(admin, base, "user000000@p1.example")
        signed_in(agent, base, "user000001@p1.example")
        timed(admin, base, QUERIES)
        timed(agent, base, SUPPORT_QUERIES)
    finally:
        with app.app_context():
            db.engine.dispose()
        if cleanup:
            admin, name = cleanup
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))


if __name__ == "__main__":
    main()

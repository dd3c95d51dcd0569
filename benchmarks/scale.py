"""The scale dataset `make bench` serves: 200 partners, one of them large.

The large partner (`big`) has 100,000 users, 50,000 live sessions, 20,000 subscriptions and
1,000,000 audit events; the 199 others (`p001` …) 20 users, 10 sessions and 50 events each.
Rows go in through Core inserts, inside each partner's scope (on PostgreSQL, row-level security
accepts a partner's rows only there), into a database migrated by the portal's migrations.

A dataset is built once and kept under a key made of the migrations, the sizes and
DATASET_VERSION:
SQLite as `instance/bench/scale-<key>.sqlite3`, PostgreSQL as the database `portal_bench_<key>`
(owned by `portal_bench_<key>_owner`, served to the app as the ordinary role `portal_bench_<key>`,
held to row-level security; the users search's function owned by `portal_bench_<key>_search`,
as deploy/postgres-roles.sql does in production). Changing any of them builds a new one.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask_migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portal import create_app  # noqa: E402
from portal.audit.models import AuditEvent  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.features.services import switch_feature  # noqa: E402
from portal.sessions.models import UserSession  # noqa: E402
from portal.subscriptions.models import Plan, Subscription  # noqa: E402
from portal.tenancy.models import Partner  # noqa: E402
from portal.tenancy.scope import partner_scope  # noqa: E402
from portal.tokens.generation import hash_token  # noqa: E402
from portal.users.models import User  # noqa: E402

# Part of the dataset's key: raise it whenever the rows made below change.
DATASET_VERSION = 1
# PORTAL_BENCH_SCALE=0.01 builds a hundredth of the large partner (and of the partners), to
# try the benchmark itself out; the default is the dataset the figures are measured on.
SCALE = float(os.environ.get("PORTAL_BENCH_SCALE") or 1)
PARTNERS = max(2, round(200 * min(1.0, SCALE)))
BIG = {
    name: max(20, round(size * SCALE))
    for name, size in {
        "users": 100_000,
        "sessions": 50_000,
        "subscriptions": 20_000,
        "events": 1_000_000,
    }.items()
}
SMALL = {"users": 20, "sessions": 10, "subscriptions": 5, "events": 50}
# The admin sessions benchmark requests present (cookie value = token), one per partner.
BIG_ADMIN_TOKEN = "bench-big-admin-session-token"


def admin_token(slug: str) -> str:
    return BIG_ADMIN_TOKEN if slug == "big" else f"bench-{slug}-admin-session-token"


BATCH = 20_000
EPOCH = datetime(2025, 1, 1)
# Sessions live for a year from the build: a cached dataset stays usable.
LIFETIME = timedelta(days=365)


@dataclass(frozen=True)
class Dataset:
    key: str
    url: str  # the app's URL (on PostgreSQL the ordinary role, held to row-level security)
    baseline_url: str  # what the baseline app reads the same tables through
    backend: str


def _key() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        digest.update(path.read_bytes())
    digest.update(repr((DATASET_VERSION, PARTNERS, BIG, SMALL)).encode())
    return digest.hexdigest()[:12]


def _app(url: str):
    return create_app(
        {
            "PORTAL_ENV": "testing",
            "SECRET_KEY": "bench-build-secret-key-kT9-x2Qa7LmPz0Rv_4WbYc8NdE",
            "SERVER_NAME": "localhost",
            "SQLALCHEMY_DATABASE_URI": url,
            "PASSWORD_HASH_PROFILE": "cheapest",
            # Bulk inserts of 20,000 rows take longer than a page may.
            "DATABASE_STATEMENT_TIMEOUT": 600,
        }
    )


def _insert(model: type, rows: list[dict]) -> None:
    for start in range(0, len(rows), BATCH):
        db.session.execute(model.__table__.insert(), rows[start : start + BATCH])


def _fill(partner: Partner, sizes: dict[str, int], token: str, now: datetime) -> None:
    pid = partner.id
    roles = ["guest", "basic", "advanced", "company"]
    _insert(
        User,
        [
            {
                "partner_id": pid,
                "email": f"user{i:06d}@{partner.slug}.example",
                "display_name": f"Person {i}",
                "role": "admin" if i == 0 else roles[i % 4],
                "status": "active",
                "password_hash": None,
                "is_support": False,
                "created_at": EPOCH + timedelta(minutes=i),
                "last_login_at": EPOCH + timedelta(hours=i % 5000),
                "version": 1,
            }
            for i in range(sizes["users"])
        ],
    )
    ids = db.session.execute(sa.select(User.id).order_by(User.id)).scalars().all()
    _insert(
        UserSession,
        [
            {
                "partner_id": pid,
                "user_id": ids[n % len(ids)],
                "token_hash": hash_token(token if n == 0 else f"{partner.slug}-{n}"),
                "created_at": now,
                "last_seen_at": now,
                "expires_at": now + LIFETIME,
                "ip": "203.0.113.7",
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
                "login_method": "password",
                "remember": True,
            }
            for n in range(sizes["sessions"])
        ],
    )
    plan = Plan(
        partner_id=pid,
        code="standard",
        name="Standard",
        allowed_roles=roles,
        entitlements=["reports"],
    )
    db.session.add(plan)
    db.session.flush()
    _insert(
        Subscription,
        [
            {
                "partner_id": pid,
                "user_id": ids[1 + n],
                "plan_id": plan.id,
                "state": "signed",
                "version": 1,
                "created_at": EPOCH,
                "updated_at": EPOCH + timedelta(minutes=n),
            }
            for n in range(sizes["subscriptions"])
        ],
    )
    actions = ["auth.login", "user.update", "session.revoke", "subscription.signed", "user.invite"]
    for start in range(0, sizes["events"], BATCH):
        _insert(
            AuditEvent,
            [
                {
                    "partner_id": pid,
                    "created_at": EPOCH + timedelta(seconds=30 * n),
                    "actor_type": "user",
                    "actor_id": ids[n % len(ids)],
                    "actor_label": f"user{n % len(ids):06d}@{partner.slug}.example",
                    "action": actions[n % len(actions)],
                    "target_type": "users",
                    "target_id": str(ids[(n * 7) % len(ids)]),
                    "details": {},
                    "ip": "203.0.113.7",
                }
                for n in range(start, min(start + BATCH, sizes["events"]))
            ],
        )
    for key in ("subscriptions", "reports", "session_self_service"):
        switch_feature(key, True)
    db.session.commit()


def _build(url: str) -> None:
    app = _app(url)
    started = time.perf_counter()
    now = datetime.utcnow().replace(microsecond=0)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        partners = [Partner(slug="big", name="Big Corp")]
        partners += [Partner(slug=f"p{n:03d}", name=f"Partner {n}") for n in range(1, PARTNERS)]
        db.session.add_all(partners)
        db.session.commit()
        for n, partner in enumerate(partners):
            with partner_scope(partner):
                big = n == 0
                _fill(partner, BIG if big else SMALL, admin_token(partner.slug), now)
            if big:
                print(f"  large partner: {time.perf_counter() - started:.0f} s", flush=True)
        # Statistics as production has them: PostgreSQL's autovacuum, SQLite's from the
        # maintenance run (`flask maintenance run`, portal.database.refresh_statistics).
        with db.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
        db.engine.dispose()
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)


def sqlite_dataset() -> Dataset:
    key = _key()
    folder = ROOT / "instance" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"scale-{key}.sqlite3"
    url = f"sqlite:///{path}"
    if not path.exists():
        print(f"Building the SQLite scale dataset {path.name} (once; a few minutes) …", flush=True)
        partial = folder / f"building-{key}.sqlite3"
        for leftover in folder.glob(f"building-{key}.sqlite3*"):
            leftover.unlink()
        _build(f"sqlite:///{partial}")
        partial.rename(path)
    return Dataset(key, url, url, "sqlite")


def postgres_dataset(base_url: str) -> Dataset:
    key = _key()
    base = sa.engine.make_url(base_url).set(drivername="postgresql+psycopg")
    name = f"portal_bench_{key}"
    owner, app_role, search_role = f"{name}_owner", name, f"{name}_search"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")

    def as_role(role: str | None) -> str:
        url = base.set(database=name) if role is None else base.set(database=name, username=role)
        return url.render_as_string(hide_password=False)

    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).scalar()
        ready = (
            exists
            and conn.execute(
                sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": f"{name}_ready"}
            ).scalar()
        )
        if not ready:
            print(f"Building the PostgreSQL scale dataset {name} (once; a few minutes) …")
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            for role in (f"{name}_ready", app_role, search_role, owner):
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
            for role in (owner, app_role):
                conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS'))
            # The users search's function's own role, as deploy/postgres-roles.sql makes it.
            conn.execute(
                sa.text(f'CREATE ROLE "{search_role}" NOLOGIN NOSUPERUSER NOINHERIT BYPASSRLS')
            )
            conn.execute(sa.text(f'GRANT "{search_role}" TO "{owner}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER "{owner}"'))
    if not ready:
        _build(as_role(owner))
        owner_engine = sa.create_engine(sa.engine.make_url(as_role(owner)))
        with owner_engine.begin() as conn:
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA public TO "{app_role}"'))
            conn.execute(
                sa.text(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                    f'TO "{app_role}"'
                )
            )
            conn.execute(
                sa.text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{app_role}"')
            )
        owner_engine.dispose()
        database = sa.create_engine(base.set(database=name), isolation_level="AUTOCOMMIT")
        with database.connect() as conn:  # the search function to its role (superuser)
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA public TO "{search_role}"'))
            conn.execute(sa.text(f'GRANT SELECT ON public.users TO "{search_role}"'))
            conn.execute(
                sa.text(
                    "ALTER FUNCTION public.user_search_ids(text, text, integer) "
                    f'OWNER TO "{search_role}"'
                )
            )
            conn.execute(
                sa.text(
                    "GRANT EXECUTE ON FUNCTION public.user_search_ids(text, text, integer) "
                    f'TO "{app_role}"'
                )
            )
        database.dispose()
        with admin.connect() as conn:  # marks the dataset complete
            conn.execute(sa.text(f'CREATE ROLE "{name}_ready" NOLOGIN'))
    admin.dispose()
    # The baseline reads the same tables as the server's own user (no row-level security):
    # the bare stack, as the issue measured it.
    return Dataset(key, as_role(app_role), as_role(None), "postgresql")


if __name__ == "__main__":
    print(sqlite_dataset())
    if os.environ.get("PORTAL_BENCH_DATABASE_URL"):
        print(postgres_dataset(os.environ["PORTAL_BENCH_DATABASE_URL"]))

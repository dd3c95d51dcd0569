"""deploy/postgres-roles.sql as the deployment guide runs it: psql as a superuser, `flask db
upgrade` as the owner, the script again; then the roles are what the guide says and the app
role is held to row-level security (PostgreSQL only; needs psql)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "postgres-roles.sql"
SUPERUSER_URL = os.environ.get("PORTAL_TEST_DATABASE_URL", "")


def _postgres_with_psql() -> None:
    if os.environ.get("PORTAL_TEST_DB") != "postgres" or not SUPERUSER_URL:
        pytest.skip("the roles script is PostgreSQL's")
    if shutil.which("psql") is None:
        pytest.skip("psql (the PostgreSQL client) is not installed")


def _url(user: str, password: str, database: str) -> str:
    base = sa.engine.make_url(SUPERUSER_URL)
    return base.set(
        drivername="postgresql+psycopg", username=user, password=password, database=database
    ).render_as_string(hide_password=False)


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    _postgres_with_psql()
    stem = f"deploy_{uuid.uuid4().hex[:8]}"
    found = {
        "dbname": stem,
        "owner": f"{stem}_owner",
        "app": f"{stem}_app",
        "search": f"{stem}_search",
    }
    yield found
    superuser = sa.create_engine(
        sa.engine.make_url(SUPERUSER_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    with superuser.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{found["dbname"]}" WITH (FORCE)'))
        for role in ("app", "search", "owner"):
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{found[role]}"'))
    superuser.dispose()


def run_script(names: dict[str, str]) -> str:
    variables = [f"{k}={v}" for k, v in names.items()]
    variables += ["owner_password=owner-pass-1", "app_password=app-pass-2"]
    result = subprocess.run(
        ["psql", SUPERUSER_URL, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        + [arg for v in variables for arg in ("-v", v)]
        + ["-f", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_roles_script_then_migrations_then_the_script_again(names: dict[str, str]) -> None:
    first = run_script(names)
    assert "Not migrated yet" in first
    migrated = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env={
            **os.environ,
            "PORTAL_ENV": "production",
            "PORTAL_SECRET_KEY": "deploy-test-secret-key-kT9-x2Qa7LmPz0Rv_4WbYc8NdE5fGh",
            "PORTAL_SERVER_NAME": "portal.example.com",
            "PORTAL_DATABASE_URL": _url(names["owner"], "owner-pass-1", names["dbname"]),
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    again = run_script(names)
    assert f"The user search's function belongs to {names['search']}." in again

    superuser = sa.create_engine(
        sa.engine.make_url(SUPERUSER_URL).set(
            drivername="postgresql+psycopg", database=names["dbname"]
        )
    )
    app = sa.create_engine(_url(names["app"], "app-pass-2", names["dbname"]))
    try:
        with superuser.begin() as conn:
            roles = {
                name: (superuser_, bypass, login)
                for name, superuser_, bypass, login in conn.execute(
                    sa.text(
                        "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles"
                        " WHERE rolname = ANY(:names)"
                    ),
                    {"names": [names["owner"], names["app"], names["search"]]},
                )
            }
            assert roles[names["owner"]] == (False, False, True)
            assert roles[names["app"]] == (False, False, True)
            assert roles[names["search"]] == (False, True, False)
            function_owner = conn.execute(
                sa.text(
                    "SELECT pg_get_userbyid(proowner) FROM pg_proc"
                    " WHERE proname = 'user_search_ids'"
                )
            ).scalar_one()
            assert function_owner == names["search"]
            # Every table is the owner's, and every tenant table is held to its policies.
            tables = conn.execute(
                sa.text(
                    "SELECT c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity,"
                    " EXISTS (SELECT 1 FROM information_schema.columns i WHERE i.table_name ="
                    " c.relname AND i.column_name = 'partner_id')"
                    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            ).all()
            assert {owner for _, owner, _, _ in tables} == {names["owner"]}
            unguarded = [t for t, _, rls, tenant in tables if tenant and not rls]
            assert unguarded == []
            # A partner with one user, written as the superuser (above the policies).
            partner_id = conn.execute(
                sa.text(
                    "INSERT INTO partners (slug, name, status, default_role, created_at,"
                    " config_version, theme_settings, session_policy_settings)"
                    " VALUES ('acme', 'Acme', 'active', 'basic', now(), 1, '{}', '{}')"
                    " RETURNING id"
                )
            ).scalar_one()
            user_id = conn.execute(
                sa.text(
                    "INSERT INTO users (partner_id, email, display_name, role, status,"
                    " is_support, created_at, version) VALUES (:p, 'ann@acme.test', 'Ann',"
                    " 'basic', 'active', false, now(), 1) RETURNING id"
                ),
                {"p": partner_id},
            ).scalar_one()
        with app.begin() as conn:
            # The app role without a partner in scope sees nobody ...
            assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0
            # ... and with one, that partner's users; the search function answers for it.
            conn.execute(
                sa.text(
                    "SELECT set_config('portal.scope', 'partner', true),"
                    " set_config('portal.partner_id', :p, true)"
                ),
                {"p": str(partner_id)},
            )
            assert conn.execute(sa.text("SELECT id FROM users")).scalars().all() == [user_id]
            found = conn.execute(
                sa.text("SELECT id FROM user_search_ids('%ann@%', '%ann@%', 10) AS f(id)")
            ).scalars()
            assert list(found) == [user_id]
            # The app role creates nothing in the schema.
            with pytest.raises(sa.exc.ProgrammingError):
                conn.execute(sa.text("CREATE TABLE intruder (id int)"))
    finally:
        app.dispose()
        superuser.dispose()

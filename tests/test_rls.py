"""Row-level security: the database's own partner isolation, under the ORM layer (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from conftest import make_user

from portal.extensions import db
from portal.tenancy.models import Partner, TenantOwned
from portal.tenancy.rls import rls_active
from portal.tenancy.scope import partner_scope, raw_sql, unscoped
from portal.users.models import User


@pytest.fixture(autouse=True)
def _postgres_only(data) -> Iterator[None]:
    """PostgreSQL only; and textual SQL, which these tests are about, through the escape hatch."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("row-level security is a PostgreSQL layer; on SQLite the ORM layer stands")
    with raw_sql():
        yield


def tenant_tables() -> set[str]:
    return {
        m.local_table.name for m in db.Model.registry.mappers if issubclass(m.class_, TenantOwned)
    }


def test_the_suite_runs_as_a_role_held_to_the_policies() -> None:
    with db.engine.connect() as conn:
        assert rls_active(conn), "tests must not connect as a superuser or BYPASSRLS role"


def test_every_tenant_table_has_a_forced_policy() -> None:
    found = db.session.execute(
        sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_policies p ON p.tablename = c.relname "
            "WHERE c.relrowsecurity AND c.relforcerowsecurity AND p.policyname = "
            "'partner_isolation'"
        )
    ).scalars()
    assert tenant_tables() <= set(found)


def test_raw_sql_sees_only_the_partner_in_scope(
    acme_user: User, globex_user: User, acme: Partner, globex: Partner
) -> None:
    make_user(globex, "gina@globex.test")
    raw = sa.text("SELECT email FROM users ORDER BY email")  # no filter, no ORM
    with partner_scope(acme):
        assert db.session.execute(raw).scalars().all() == ["alice@acme.test"]
        assert db.session.execute(sa.text("SELECT count(*) FROM user_sessions")).scalar() == 0
    db.session.commit()
    with partner_scope(globex):
        assert db.session.execute(raw).scalars().all() == ["gina@globex.test", "gus@globex.test"]
    db.session.commit()
    with unscoped():
        assert len(db.session.execute(raw).scalars().all()) == 3


def test_raw_writes_cannot_reach_another_partner(
    acme_user: User, globex_user: User, acme: Partner, globex: Partner
) -> None:
    globex_id, gus_id = globex.id, globex_user.id
    with partner_scope(acme):
        changed = db.session.execute(
            sa.text("UPDATE users SET display_name = 'pwned' WHERE id = :id"), {"id": gus_id}
        ).rowcount
        assert changed == 0
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            db.session.execute(
                sa.text(
                    "INSERT INTO users (partner_id, email, display_name, role, status, "
                    "is_support, created_at) VALUES (:p, 'x@globex.test', '', 'basic', "
                    "'active', false, now())"
                ),
                {"p": globex_id},
            )
    db.session.rollback()
    with unscoped():
        names = db.session.execute(sa.text("SELECT display_name FROM users")).scalars().all()
    assert "pwned" not in names


def test_a_connection_that_sets_nothing_sees_nothing(acme_user: User) -> None:
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection  # the psycopg connection, below the app's hook
        with raw.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM users")
            assert cursor.fetchone()[0] == 0
        raw.rollback()


def test_a_failed_statement_in_a_savepoint_is_rolled_back_cleanly(
    acme_user: User, acme: Partner
) -> None:
    """After a refused INSERT (a lost race on a unique index) the savepoint's ROLLBACK runs
    and the transaction goes on, still scoped."""
    acme_id = acme.id
    with partner_scope(acme):
        with pytest.raises(sa.exc.IntegrityError), db.session.begin_nested():
            db.session.execute(
                sa.text(
                    "INSERT INTO users (partner_id, email, display_name, role, status, "
                    "is_support, created_at) VALUES (:p, 'alice@acme.test', '', 'basic', "
                    "'active', false, now())"
                ),
                {"p": acme_id},
            )
        emails = db.session.execute(sa.text("SELECT email FROM users")).scalars().all()
        assert emails == ["alice@acme.test"]
    db.session.rollback()


def test_streamed_results_are_scoped_too(
    acme_user: User, globex_user: User, acme: Partner, globex: Partner
) -> None:
    """A server-side cursor gets the partner's settings like any other statement."""
    raw = sa.text("SELECT email FROM users ORDER BY email")
    stream = {"stream_results": True}
    with unscoped():  # the transaction's last settings: every partner
        db.session.execute(sa.text("SELECT 1")).all()
    with partner_scope(acme):
        assert db.session.execute(raw, execution_options=stream).scalars().all() == [
            "alice@acme.test"
        ]
        emails = [
            u.email for u in db.session.scalars(sa.select(User).execution_options(yield_per=1))
        ]
        assert emails == ["alice@acme.test"]
    with partner_scope(globex):
        assert db.session.execute(raw, execution_options=stream).scalars().all() == [
            "gus@globex.test"
        ]
    db.session.rollback()


def test_a_partners_audit_rows_cannot_become_platform_rows(acme: Partner) -> None:
    from portal.audit.services import record_audit

    with partner_scope(acme):
        record_audit("test.event", actor=None)
        db.session.commit()
        # Past the append-only trigger (migration 0013), as a maintenance service would be.
        db.session.execute(sa.text("SELECT set_config('portal.audit_maintenance', 'on', true)"))
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            db.session.execute(sa.text("UPDATE audit_events SET partner_id = NULL"))
    db.session.rollback()
    with unscoped():
        partners = db.session.execute(sa.text("SELECT partner_id FROM audit_events")).all()
    assert partners == [(acme.id,)]

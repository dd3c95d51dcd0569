"""Isolation that holds by construction, not by convention, on SQLite and PostgreSQL.

- Outside a partner the database shows no tenant rows unless the code says `unscoped()`.
- Textual SQL through the session is refused unless it goes through `raw_sql()`.
- `Session.get()` never hands out another partner's row from the identity map.
- The database refuses a row that points at another partner's row (composite foreign keys).
"""

from __future__ import annotations

import warnings
from datetime import datetime

import pytest
import sqlalchemy as sa
from conftest import host_client, make_user, outside_every_partner
from flask import Flask

from portal.audit.models import AuditEvent
from portal.audit.services import record_audit
from portal.auth.guards import public
from portal.extensions import db
from portal.tenancy.context import exempt_from_tenancy
from portal.tenancy.models import Partner
from portal.tenancy.rls import current_settings
from portal.tenancy.scope import (
    TenantScopeError,
    partner_scope,
    platform_scope,
    raw_sql,
    scoped_partner_id,
    unscoped,
)
from portal.users.models import User

COUNT_USERS = "SELECT count(*) FROM users"


@pytest.fixture
def two_partners(acme: Partner, globex: Partner, acme_user: User, globex_user: User) -> dict:
    return {"acme": acme, "globex": globex, "alice": acme_user, "gus": globex_user}


def postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


# --- Textual SQL ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        sa.text("SELECT email FROM users"),
        sa.select(sa.literal_column("email")).select_from(sa.text("users")),
        sa.select(sa.table("users", sa.column("email"))),
        sa.select(sa.func.count()).select_from(sa.text("users")),
    ],
    ids=["text", "text-from", "lightweight-table", "count-from-text"],
)
def test_textual_sql_is_refused_by_the_orm_layer(two_partners: dict, statement) -> None:
    with partner_scope(two_partners["acme"]), pytest.raises(TenantScopeError, match="raw_sql"):
        db.session.execute(statement)
    db.session.rollback()
    with outside_every_partner(), pytest.raises(TenantScopeError, match="raw_sql"):
        db.session.execute(statement)
    db.session.rollback()


def test_the_escape_hatch_is_scoped_by_the_database(two_partners: dict) -> None:
    with partner_scope(two_partners["acme"]), raw_sql():
        emails = db.session.execute(sa.text("SELECT email FROM users")).scalars().all()
    if postgres():
        assert emails == ["alice@acme.test"]  # row-level security still holds it
    else:
        assert sorted(emails) == ["alice@acme.test", "gus@globex.test"]  # SQLite has no such layer


# --- Outside a partner: default-deny --------------------------------------------------------


def test_the_database_scope_is_none_unless_unscoped(two_partners: dict) -> None:
    with outside_every_partner():
        assert current_settings() == {"partner_id": "", "scope": "none"}
        with unscoped():
            assert current_settings() == {"partner_id": "", "scope": "all"}
    with partner_scope(two_partners["acme"]):
        acme_id = str(two_partners["acme"].id)
        assert current_settings() == {"partner_id": acme_id, "scope": "partner"}


def test_outside_a_partner_raw_sql_sees_no_tenant_rows(two_partners: dict) -> None:
    if not postgres():
        pytest.skip("the database layer is PostgreSQL's; on SQLite textual SQL is refused above")
    with outside_every_partner(), raw_sql():
        assert db.session.execute(sa.text(COUNT_USERS)).scalar() == 0
        assert db.session.execute(sa.text("SELECT count(*) FROM audit_events")).scalar() == 0
        with unscoped():
            assert db.session.execute(sa.text(COUNT_USERS)).scalar() == 2
    db.session.rollback()


def test_root_domain_exempt_endpoints_and_commands_see_no_tenant_rows(
    make_app, data: Flask, two_partners: dict
) -> None:
    """Where the code names no partner and does not say unscoped(), nobody's rows."""
    if not postgres():
        pytest.skip("the database layer is PostgreSQL's; on SQLite textual SQL is refused above")
    app = make_app(fresh=True)

    def count() -> str:
        with raw_sql():
            return str(db.session.execute(sa.text(COUNT_USERS)).scalar())

    app.add_url_rule("/count", "root_count", public(count))
    app.add_url_rule(
        "/count", "partner_count", public(exempt_from_tenancy(count)), subdomain="<partner>"
    )

    @app.cli.command("count-users")
    def count_users() -> None:
        print(count())

    assert host_client(app, None).get("/count").text == "0"  # the root domain
    assert host_client(app, "acme").get("/count").text == "0"  # tenancy-exempt, partner host
    assert app.test_cli_runner().invoke(args=["count-users"]).output.strip() == "0"


# --- The identity map ------------------------------------------------------------------------


def test_get_never_returns_another_partners_row_from_the_identity_map(two_partners: dict) -> None:
    alice_id = two_partners["alice"].id
    with partner_scope(two_partners["acme"]):
        alice = db.session.get(User, alice_id)
        assert alice is not None and alice in db.session  # held in the identity map
    statements: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args) -> None:
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", seen)
    try:
        with partner_scope(two_partners["globex"]):
            assert db.session.get(User, alice_id) is None
        with outside_every_partner(), pytest.raises(TenantScopeError):
            db.session.get(User, alice_id)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", seen)
    # Answered from the identity map (no query of users), and still screened.
    assert not [s for s in statements if "FROM users" in s]
    with partner_scope(two_partners["acme"]):
        assert db.session.get(User, alice_id) is alice


# --- The platform's own rows -----------------------------------------------------------------


def test_platform_scope_reaches_the_platform_rows_and_no_partners(two_partners: dict) -> None:
    """Inside a partner's scope, `platform_scope()` sees the rows of no partner at all (its
    own or another's): every tenant-owned statement is held to `partner_id IS NULL`, whatever
    the statement forgets; a partner's row cannot be made or loaded there; textual SQL is
    refused even through `raw_sql()`. Its state comes back when the block fails."""
    acme, globex, alice = two_partners["acme"], two_partners["globex"], two_partners["alice"]
    with unscoped():
        record_audit("operator.test", target=globex, actor=None, details={"who": "platform"})
    for partner in (acme, globex):
        with partner_scope(partner):
            record_audit("partner.test", target=partner, actor=None)
    db.session.commit()
    alice_id = alice.id

    with partner_scope(acme):
        with platform_scope():
            assert db.session.execute(sa.select(User)).scalars().all() == []
            assert db.session.execute(sa.select(sa.func.count(User.id))).scalar_one() == 0
            events = db.session.execute(sa.select(AuditEvent)).scalars().all()
            assert {e.action for e in events} == {"operator.test"}
            assert {e.partner_id for e in events} == {None}
            # Subqueries and every part of a UNION are held too.
            both = sa.union_all(
                sa.select(AuditEvent.id).where(AuditEvent.action == "partner.test"),
                sa.select(User.id),
            )
            assert db.session.execute(both).all() == []
            assert db.session.get(User, alice_id) is None
            db.session.add(User(partner_id=globex.id, email="x@globex.test", display_name="X"))
            with pytest.raises(TenantScopeError, match="no partner in scope"):
                db.session.flush()
            db.session.rollback()
        assert scoped_partner_id() == acme.id

        with raw_sql(), platform_scope(), pytest.raises(TenantScopeError, match="platform"):
            db.session.execute(sa.text(COUNT_USERS))
        db.session.rollback()

        with pytest.raises(ZeroDivisionError), platform_scope():
            _ = 1 / 0
        # Back in Acme's scope, as before the block.
        assert scoped_partner_id() == acme.id
        assert [u.email for u in db.session.execute(sa.select(User)).scalars()] == [
            "alice@acme.test"
        ]
        assert current_settings() == {"partner_id": str(acme.id), "scope": "partner"}
    with outside_every_partner(), pytest.raises(TenantScopeError):
        db.session.execute(sa.select(User))


# --- Composite foreign keys -----------------------------------------------------------------


@pytest.fixture
def raw_connection(data: Flask, owner_engine):
    """A connection below the app (no ORM layer, no row-level security): only the database's
    own constraints stand."""
    with owner_engine[0].connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        yield conn
        conn.rollback()


NOW = datetime(2026, 3, 2, 9, 0)


def test_the_database_refuses_references_into_another_partner(
    raw_connection, two_partners: dict
) -> None:
    acme_id, gus_id = two_partners["acme"].id, two_partners["gus"].id
    alice_id = two_partners["alice"].id
    with partner_scope(two_partners["globex"]):
        admin = make_user(two_partners["globex"], "boss@globex.test")
    attempts = {
        "a session of acme for globex's user": (
            "INSERT INTO user_sessions (partner_id, user_id, token_hash, created_at, "
            "last_seen_at, expires_at, login_method, remember) VALUES "
            "(:acme, :gus, 'x', :now, :now, :now, 'password', false)"
        ),
        "an acme session revoked by a globex user": (
            "INSERT INTO user_sessions (partner_id, user_id, token_hash, created_at, "
            "last_seen_at, expires_at, login_method, remember, revoked_by_id) VALUES "
            "(:acme, :alice, 'y', :now, :now, :now, 'password', false, :boss)"
        ),
        "an acme link for globex's user": (
            "INSERT INTO action_tokens (partner_id, user_id, purpose, token_hash, created_at, "
            "expires_at, payload) VALUES (:acme, :gus, 'invite', 'z', :now, :now, '{}')"
        ),
    }
    values = {"acme": acme_id, "gus": gus_id, "alice": alice_id, "boss": admin.id, "now": NOW}
    for what, statement in attempts.items():
        savepoint = raw_connection.begin_nested()
        with pytest.raises(sa.exc.IntegrityError):
            raw_connection.execute(sa.text(statement), values)
            pytest.fail(f"stored {what}")
        savepoint.rollback()
    # The same rows inside one partner are accepted: the constraint is the partner, not the row.
    raw_connection.execute(
        sa.text(attempts["a session of acme for globex's user"]),
        {**values, "gus": alice_id},
    )


def test_subscriptions_cannot_cross_partners_in_the_database(
    raw_connection, two_partners: dict
) -> None:
    from test_subscriptions import plan

    from portal.subscriptions.models import Plan

    with partner_scope(two_partners["globex"]):
        globex_plan: Plan = plan("gplan")
        db.session.commit()
        plan_id = globex_plan.id
    insert = sa.text(
        "INSERT INTO subscriptions (partner_id, user_id, plan_id, state, version, created_at, "
        "updated_at) VALUES (:partner, :user, :plan, 'signing', 1, :now, :now)"
    )
    acme_id, alice_id = two_partners["acme"].id, two_partners["alice"].id
    with pytest.raises(sa.exc.IntegrityError):  # acme's user on globex's plan, filed at acme
        raw_connection.execute(
            insert, {"partner": acme_id, "user": alice_id, "plan": plan_id, "now": NOW}
        )


@pytest.mark.parametrize(
    "table",
    [
        sa.Table("users", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("email", sa.Text)),
        sa.table("USERS", sa.column("id"), sa.column("email")),
    ],
    ids=["other-metadata", "other-case"],
)
def test_table_objects_that_are_not_the_mapped_one_are_refused(two_partners: dict, table) -> None:
    """Reflection makes such tables; SQLite and PostgreSQL read USERS as users."""
    statement = sa.select(table.c.email)
    with partner_scope(two_partners["acme"]), pytest.raises(TenantScopeError, match="raw_sql"):
        db.session.execute(statement)
    db.session.rollback()
    with outside_every_partner(), pytest.raises(TenantScopeError, match="raw_sql"):
        db.session.execute(statement)
    db.session.rollback()


def test_every_load_by_primary_key_is_screened(two_partners: dict) -> None:
    """`get_one()` and the legacy `Query.get()` as well as `get()`, from the identity map."""
    gus_id = two_partners["gus"].id
    with partner_scope(two_partners["globex"]):
        assert db.session.get(User, gus_id) is not None  # now in the identity map
    with partner_scope(two_partners["acme"]):
        assert db.session.get(User, gus_id) is None
        with pytest.raises(sa.exc.NoResultFound):
            db.session.get_one(User, gus_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.LegacyAPIWarning)
            assert db.session.query(User).get(gus_id) is None

"""Application-layer isolation: ORM access to tenant-owned models is scoped automatically."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import outside_every_partner
from flask import Flask
from werkzeug.exceptions import NotFound

from portal.extensions import db
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.tenancy.context import get_or_404
from portal.tenancy.models import Partner
from portal.tenancy.scope import TenantScopeError, partner_scope, unscoped
from portal.users.models import User


def test_selects_see_only_the_scoped_partner(acme_user: User, globex_user: User) -> None:
    with partner_scope(acme_user.partner):
        emails = db.session.execute(sa.select(User.email)).scalars().all()
        assert emails == ["alice@acme.test"]
        # Joins and aggregates are filtered too.
        count = db.session.execute(sa.select(sa.func.count()).select_from(User)).scalar_one()
        assert count == 1
    with partner_scope(globex_user.partner):
        assert db.session.execute(sa.select(User.email)).scalars().all() == ["gus@globex.test"]


def test_updates_and_deletes_are_scoped(acme_user: User, globex_user: User) -> None:
    with partner_scope(acme_user.partner):
        db.session.execute(sa.update(User).values(display_name="renamed"))
        db.session.execute(sa.delete(UserSession))
        db.session.commit()
    with unscoped():
        names = dict(db.session.execute(sa.select(User.email, User.display_name)).all())
    assert names == {"alice@acme.test": "renamed", "gus@globex.test": "Gus Globex"}


def test_tenant_data_without_a_partner_in_scope_is_an_error(acme_user: User) -> None:
    with outside_every_partner(), pytest.raises(TenantScopeError):
        db.session.execute(sa.select(User)).all()
    with unscoped():
        assert len(db.session.execute(sa.select(User)).all()) == 1


def test_inserts_take_the_partner_from_the_scope(acme: Partner, globex: Partner) -> None:
    with partner_scope(acme):
        user = User(email="new@acme.test", role=Role.BASIC)
        db.session.add(user)
        db.session.commit()
        assert user.partner_id == acme.id
    with pytest.raises(TenantScopeError, match="another partner"), partner_scope(acme):
        db.session.add(User(email="sneaky@acme.test", partner_id=globex.id))
        db.session.flush()
    db.session.rollback()
    with outside_every_partner(), pytest.raises(TenantScopeError, match="no partner in scope"):
        db.session.add(User(email="orphan@acme.test"))
        db.session.flush()
    db.session.rollback()


def test_rows_cannot_move_to_another_partner(acme_user: User, globex: Partner) -> None:
    with pytest.raises(TenantScopeError, match="cannot move"), partner_scope(acme_user.partner):
        user = db.session.execute(sa.select(User)).scalar_one()
        user.partner_id = globex.id
        db.session.flush()
    db.session.rollback()


def test_get_or_404_treats_foreign_ids_as_missing(
    app: Flask, acme_user: User, globex_user: User
) -> None:
    foreign_id = globex_user.id
    with partner_scope(acme_user.partner):
        assert get_or_404(User, acme_user.id).email == "alice@acme.test"
        assert get_or_404(User, str(acme_user.id)).id == acme_user.id
        for ident in (foreign_id, 999_999, "abc", None, "1; drop table users"):
            with pytest.raises(NotFound):
                get_or_404(User, ident)


def test_unscoped_is_refused_inside_a_partner_scope(acme: Partner) -> None:
    with partner_scope(acme), pytest.raises(TenantScopeError), unscoped():
        pass


def test_statements_without_an_entity_are_scoped_too(acme_user: User, globex_user: User) -> None:
    inner = sa.select(User.id).subquery()
    with partner_scope(acme_user.partner):
        for stmt in (
            sa.select(sa.func.count()).select_from(User),
            sa.select(sa.func.count()).select_from(inner),
            sa.select(User.partner_id, sa.func.count()).group_by(User.partner_id),
        ):
            assert db.session.execute(stmt).all()[0][-1] == 1


def test_bare_tables_are_refused_in_a_partner_scope(acme_user: User, globex_user: User) -> None:
    """No loader criteria reach a Core table, so naming one is an error, never a leak."""
    users = User.__table__
    sessions = UserSession.__table__
    with partner_scope(acme_user.partner):
        for stmt in (
            sa.select(users.c.email),
            sa.select(*users.c),
            sa.select(sa.func.count()).select_from(users),
            sa.select(User.email).join(sessions, sessions.c.user_id == User.id),
            sa.update(users).values(display_name="x"),
            sa.delete(sessions),
        ):
            with pytest.raises(TenantScopeError, match="bare tables"):
                db.session.execute(stmt)
            db.session.rollback()
        # The same questions asked through the mapped models are answered, scoped.
        assert db.session.execute(sa.select(User.email)).scalars().all() == [acme_user.email]
    with unscoped():
        assert len(db.session.execute(sa.select(users.c.email)).all()) == 2

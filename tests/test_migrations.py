"""Migrations: they match the models, keep existing data, and run on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import upgrade

from portal.extensions import db, include_in_autogenerate

MIGRATIONS = str(Path(__file__).parent.parent / "migrations")


def test_models_and_migrations_agree(data: Flask) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": include_in_autogenerate, "compare_type": True}
        )
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_upgrading_keeps_existing_rows(make_app, tmp_path) -> None:
    app = make_app(fresh=True, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/old.sqlite3")
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="0001_foundation")
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO partners (id, slug, name, status, theme_settings, "
                    "session_policy_settings, created_at) VALUES "
                    "(1, 'acme', 'Acme', 'active', '{}', '{}', '2026-01-01')"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, partner_id, email, display_name, role, status, "
                    "is_support, created_at) VALUES "
                    "(1, 1, 'a@acme.test', 'A', 'admin', 'active', false, '2026-01-01')"
                )
            )
        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT email FROM users")).scalars().all() == [
                "a@acme.test"
            ]
            assert (
                conn.execute(sa.text("SELECT default_role FROM partners")).scalar_one() == "guest"
            )
        db.engine.dispose()


def _at(app: Flask, revision: str) -> None:
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision=revision)


def _seed_0007(conn: sa.Connection) -> None:
    """Two partners' rows as a portal before composite keys and confirmation passwords had them."""
    now = "'2026-01-01'"
    for partner_id, slug in ((1, "acme"), (2, "globex")):
        conn.execute(
            sa.text(
                "INSERT INTO partners (id, slug, name, status, theme_settings, "
                f"session_policy_settings, created_at) VALUES ({partner_id}, '{slug}', "
                f"'{slug}', 'active', '{{}}', '{{}}', {now})"
            )
        )
    users = [
        (1, 1, "admin@acme.test", "admin", "active", "'hash-a'"),
        (2, 1, "pending@acme.test", "guest", "invited", "'attacker-hash'"),
        (3, 1, "gone@acme.test", "guest", "deactivated", "'attacker-hash-2'"),
        (4, 1, "left@acme.test", "basic", "deactivated", "'own-hash'"),
        (5, 2, "gus@globex.test", "basic", "active", "'hash-g'"),
    ]
    for uid, pid, email, role, status, password in users:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, partner_id, email, display_name, role, status, "
                f"password_hash, is_support, created_at) VALUES ({uid}, {pid}, '{email}', '', "
                f"'{role}', '{status}', {password}, false, {now})"
            )
        )
    for user_id in (3, 4):  # both signed up; only user 4 ever confirmed the address
        conn.execute(
            sa.text(
                "INSERT INTO audit_events (partner_id, created_at, actor_type, actor_label, "
                "action, target_type, target_id, details) VALUES (1, "
                f"{now}, 'anonymous', '', 'account.signup', 'users', '{user_id}', '{{}}')"
            )
        )
    conn.execute(
        sa.text(
            "INSERT INTO audit_events (partner_id, created_at, actor_type, actor_label, action, "
            f"target_type, target_id, details) VALUES (1, {now}, 'user', '', "
            "'account.signup_verified', 'users', '4', '{}')"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO user_sessions (id, partner_id, user_id, token_hash, created_at, "
            "last_seen_at, expires_at, login_method, remember) VALUES "
            f"(1, 1, 1, 'h1', {now}, {now}, {now}, 'password', false)"
        )
    )


def test_composite_keys_and_forgotten_passwords_keep_every_row(make_app, tmp_path) -> None:
    app = make_app(fresh=True, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/0007.sqlite3")
    _at(app, "0007_user_version")
    with app.app_context():
        with db.engine.begin() as conn:
            _seed_0007(conn)
        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            passwords = dict(conn.execute(sa.text("SELECT id, password_hash FROM users")).all())
            assert passwords == {
                1: "hash-a",
                2: None,  # an unconfirmed sign-up: the password was never the owner's
                3: None,  # the same, deactivated
                4: "own-hash",  # confirmed, then deactivated: the owner's own
                5: "hash-g",
            }
            assert conn.execute(sa.text("SELECT user_id FROM user_sessions")).scalars().all() == [1]
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            with pytest.raises(sa.exc.IntegrityError):  # acme's session for globex's user
                conn.execute(
                    sa.text(
                        "INSERT INTO user_sessions (partner_id, user_id, token_hash, created_at, "
                        "last_seen_at, expires_at, login_method, remember) VALUES "
                        "(1, 5, 'h2', '2026-01-01', '2026-01-01', '2026-01-01', 'password', 0)"
                    )
                )
        db.engine.dispose()


def test_rows_that_already_cross_partners_stop_the_upgrade(make_app, tmp_path) -> None:
    app = make_app(fresh=True, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/cross.sqlite3")
    _at(app, "0007_user_version")
    with app.app_context():
        with db.engine.begin() as conn:
            _seed_0007(conn)
            conn.execute(sa.text("UPDATE user_sessions SET user_id = 5 WHERE id = 1"))
        # `flask db upgrade` prints this error and exits with 1; below its error handling:
        with pytest.raises(RuntimeError, match="rows point into another partner") as refused:
            upgrade.__wrapped__(directory=MIGRATIONS)
        assert "user_sessions.user_id of row 1" in str(refused.value)
        with db.engine.connect() as conn:  # nothing of 0008 stayed
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            assert version == "0007_user_version"
        db.engine.dispose()

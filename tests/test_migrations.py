"""Migrations: they match the models, keep existing data, and run on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

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

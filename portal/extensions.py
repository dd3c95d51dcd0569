"""Extension objects, created once and bound to the app in `create_app`."""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints alike."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def include_in_autogenerate(obj: object, name: str | None, kind: str, *_: object) -> bool:
    """Trigram indexes live in migrations alone, not in the models: PostgreSQL's indexes, and
    SQLite's full-text table of users with the tables FTS5 keeps it in (migration 0017)."""
    if name is None:
        return True
    if kind == "index":
        return not name.endswith("_trgm")
    return not (kind == "table" and (name == "users_search" or name.startswith("users_search_")))


class PortalSession(FlaskSession):
    """The session, with a hook on loading by primary key, which answers from the identity
    map without SQL: `get()`, `get_one()` and the legacy `Query.get()` all go through
    `_get_impl`.

    The tenancy layer sets `screen_get` so that another partner's row found there is as
    missing as a missing one (`portal/tenancy/scope.py`).
    """

    screen_get: Any = None

    def _get_impl(self, *args: Any, **kwargs: Any) -> Any:
        found = super()._get_impl(*args, **kwargs)
        screen = type(self).screen_get
        return screen(found) if screen is not None and found is not None else found


db = SQLAlchemy(model_class=Base, session_options={"class_": PortalSession})
migrate = Migrate(render_as_batch=True, compare_type=True, include_object=include_in_autogenerate)
login_manager = LoginManager()
csrf = CSRFProtect()


def str_enum(enum_cls: type) -> sa.Enum:
    """Column type storing a StrEnum by value, portable across SQLite and PostgreSQL."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


@event.listens_for(Engine, "savepoint")
def _sqlite_begin_before_savepoint(conn: sa.Connection, _name: str) -> None:
    """SQLite only: open the transaction a SAVEPOINT belongs to, holding the write lock.

    pysqlite begins a transaction only before INSERT/UPDATE/DELETE, so a SAVEPOINT issued after
    mere reads would start one itself, and its RELEASE would then commit everything at once:
    a rolled-back `begin_nested()` block's outer transaction would no longer be undoable. A
    savepoint is only ever taken around writes (`unit_of_work.attempt`, bulk rows), so the
    transaction takes the write lock at once (IMMEDIATE): its reads then see a snapshot no
    other writer can overtake, where a deferred one could fail its first write with
    SQLITE_BUSY_SNAPSHOT. Plain reads outside such blocks keep pysqlite's autocommit reads,
    like PostgreSQL's read committed.
    """
    dbapi_connection = conn.connection.dbapi_connection
    if isinstance(dbapi_connection, sqlite3.Connection) and not dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

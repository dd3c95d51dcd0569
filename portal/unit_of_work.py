"""One request or command = one unit of work: services change the session, one place commits.

- `commit()` is called once per request, by the app after the view returned
  (`PortalFlask.dispatch_request`), and once per command (`portal/commands.py`). Nothing else
  commits; an exception that escapes rolls everything back.
- `attempt()` runs one step whose refusal must undo exactly what it wrote (a savepoint), for
  views that show a refusal in place and for per-row bulk actions.
- `lock_partner()` serialises the rules that count across rows (the last active admin, one
  invitation per address): `SELECT … FOR UPDATE` on the partner's row on PostgreSQL, the
  database's write lock on SQLite.
- `expect_version()` refuses a change to a row that moved on since the person looked at it.

A lost race (a unique index, a stale version, SQLite's stale snapshot) becomes a `Conflict`,
never a 500.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import g
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from portal.exceptions import Conflict
from portal.extensions import db
from portal.tenancy.scope import TenantScopeError, forget_partner_caches, scoped_partner_id

log = logging.getLogger("portal.db")

SQLITE_BUSY_SNAPSHOT = 517  # SQLITE_BUSY | (2 << 8): a write on a snapshot that is out of date
# Constraints another writer can make us break: a unique key taken, a referenced row removed.
# A NOT NULL or CHECK violation is a bug in the portal, and goes the way of every 500.
RACE_SQLSTATES = frozenset({"23505", "23503", "23P01"})  # unique, foreign key, exclusion
RETRY_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
RACE_SQLITE_CODES = frozenset(
    {
        sqlite3.SQLITE_CONSTRAINT_UNIQUE,
        sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY,
        sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY,
    }
)


def _sqlite_code(error: BaseException) -> int | None:
    return getattr(getattr(error, "orig", None), "sqlite_errorcode", None)


def busy(error: BaseException) -> bool:
    """A write waited for another one's lock longer than the lock (or busy) timeout allows."""
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
    return sqlstate == "55P03" or _sqlite_code(error) == sqlite3.SQLITE_BUSY


def lost_race(error: BaseException) -> bool:
    """Whether `error` means another writer got there first (a Conflict, not a bug)."""
    if isinstance(error, StaleDataError):
        return True
    if getattr(getattr(error, "orig", None), "sqlstate", None) in RETRY_SQLSTATES:
        return True  # PostgreSQL chose this transaction to give way (deadlock, serialization)
    if isinstance(error, IntegrityError):
        sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
        return sqlstate in RACE_SQLSTATES or _sqlite_code(error) in RACE_SQLITE_CODES
    # SQLite refused a write because another writer committed since this transaction read.
    return isinstance(error, OperationalError) and _sqlite_code(error) == SQLITE_BUSY_SNAPSHOT


def before_commit(callback: Callable[[], Any]) -> None:
    """Run `callback` just before this unit of work commits (deferred, cheap writes)."""
    g.setdefault("_before_commit", []).append(callback)


def commit(*, last: bool = False) -> None:
    """Commit the unit of work; a lost race at this point is a Conflict.

    `last`: nothing reads through the session after this commit but what the request already
    loaded (its answer is drawn, the session is closed at its end), so what it loaded is not
    expired to be read again: expiring every object of a list was a twentieth of its page.
    """
    for callback in g.pop("_before_commit", ()):
        callback()
    session = db.session()
    expire = session.expire_on_commit
    session.expire_on_commit = expire and not last
    try:
        session.commit()
    except (IntegrityError, StaleDataError, OperationalError) as exc:
        if not lost_race(exc):
            raise
        rollback()
        raise Conflict() from exc
    finally:
        session.expire_on_commit = expire


def rollback() -> None:
    """Undo the unit of work. Never raises: the error path calls it."""
    g.pop("_before_commit", None)
    try:
        db.session.rollback()
    except Exception as exc:  # a dead connection: the pool replaces it on the next checkout
        log.warning("rollback failed: %s", exc.__class__.__name__)


@contextmanager
def attempt(conflict: str | None = None) -> Iterator[None]:
    """One step: a refusal raised inside undoes what the step wrote, then propagates.

    The step is flushed before it ends, so a lost race surfaces here as a `Conflict` (with
    `conflict` as its message) instead of at the final commit.
    """
    try:
        with db.session.begin_nested():
            yield
            db.session.flush()
    except (IntegrityError, StaleDataError, OperationalError) as exc:
        if not lost_race(exc):
            raise
        raise Conflict(conflict) from exc


# Namespaces of the transaction-level advisory locks (PostgreSQL): (namespace, row id).
PARTNER_LOCK, USER_LOCK, OPERATOR_LOCK = 0x504F5254, 0x55534552, 0x4F504552  # PORT USER OPER


def _advisory_lock(namespace: int, key: int) -> bool:
    """Take a lock held until the transaction ends; False on SQLite, which took its one
    database-wide write lock instead."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
            {"namespace": namespace, "key": key},
        )
        return True
    raw = connection.connection.dbapi_connection
    if isinstance(raw, sqlite3.Connection) and not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    return False


def lock_partner() -> None:
    """Hold the partner's write lock until this unit of work ends.

    Rules that read several rows before writing (counting admins, looking for an existing
    address, the partner's default role against its enabled roles) take it first, so two
    requests of one partner apply them one after the other. On PostgreSQL it is an advisory
    lock, not a row lock, so it never stands in the way of the key-share locks every insert
    takes on its partner row (which would deadlock with a request holding a user's row). On
    SQLite the whole database has one writer; taking its lock before the first read gives a
    snapshot no other writer can overtake.
    """
    partner_id = scoped_partner_id()
    if partner_id is None:
        raise TenantScopeError("lock_partner() needs a partner in scope")
    _advisory_lock(PARTNER_LOCK, partner_id)
    # What this request read of the partner before waiting is read again, as it is now that
    # no other writer of this partner can change it: its row, roles, permissions, switches.
    partner = g.get("partner")
    if partner is not None:
        db.session.flush()  # nothing of this request's own is lost by the refresh
        db.session.refresh(partner)
    forget_partner_caches()


def lock_user(user_id: int) -> None:
    """Hold one user's write lock until this unit of work ends (rules that count a user's
    rows or attempts: the concurrent-session limit, failed sign-ins)."""
    _advisory_lock(USER_LOCK, user_id)


def lock_operator(operator_id: int) -> None:
    """Hold one operator's lock until this unit of work ends (failed sign-ins)."""
    _advisory_lock(OPERATOR_LOCK, operator_id)


def expect_version(row: Any, seen: object, message: str | None = None) -> None:
    """Refuse with a Conflict when `row` is no longer at the version the person saw.

    `seen` comes from the form (a hidden field) or an `If-Match` header; nothing given means
    the version loaded by this request, which the write itself checks (compare-and-set).
    """
    text = str(seen or "").strip()
    if not text:
        return
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or int(text) != row.version:
        raise Conflict(message)

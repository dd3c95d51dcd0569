"""Isolation in the database itself: PostgreSQL row-level security (DESIGN §3, layer 3).

Migration 0006 enables and forces a policy on every tenant table that lets a statement see and
write only the rows of the partner named by the transaction-local setting `portal.partner_id`,
or every row when `portal.scope` is `all`. The app sets both from the scope the ORM layer uses,
with the first statement of each transaction and again whenever that scope changes within it
(never a statement under another scope than the running code's): inside a partner's request (or
`partner_scope`) the partner, so a raw SQL query that forgets its filter still returns only
that partner's rows; `all` only inside an explicit `unscoped()` (the operator console's counts,
commands that say so); anywhere else (the root domain, health checks, a command that named no
partner) `none`: the database shows no tenant rows at all, default-deny. A connection that
never sets them (a console session as the app's role) sees no tenant rows either.

What this protects against: a forgotten filter, in ORM or hand-written SQL. What it does not:
code running as the app's role can call `set_config` itself and name any partner (or `all`);
the policies hold a careless query, not a malicious one.

A superuser, or a role with BYPASSRLS, is never subject to row-level security, and a table's
owner could switch it off; so migrations run as the owner and the app connects as another,
ordinary role granted SELECT, INSERT, UPDATE and DELETE (DESIGN §3). `rls_active()` tells
whether the current connection is held to the policies; in production a warning is logged at
start-up when it is not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
from flask import Flask
from psycopg.pq import TransactionStatus
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from portal.extensions import db
from portal.tenancy.scope import is_unscoped, scoped_partner_id

log = logging.getLogger("portal.tenancy")

SETTINGS_SQL = (
    "SELECT set_config('portal.partner_id', %(partner_id)s, true), "
    "set_config('portal.scope', %(scope)s, true), "
    "set_config('plan_cache_mode', %(plan)s, true)"
)

# How PostgreSQL plans the statement, sent with the scope (the same round trip): every run
# planned for its own values (`force_custom_plan`, as each connection starts: a plan made for
# no partner in particular read a million audit events for a page of 50), except for a
# statement that says it finds the same few rows by unique keys whatever its values, whose
# plan psycopg's prepared statement keeps (`auto`: PostgreSQL settles on one generic plan
# after five runs). The request's first statement (partner, session, user, entitlements) took
# 1.1 ms to plan and 0.3 ms to run. It says so with `.execution_options(**GENERIC_PLAN)`; the
# mode travels with the scope settings it sends anyway, and the next statement of the
# transaction sets the custom mode back (one more round trip, against 1.1 ms of planning).
# The ORM hands a statement's options on to the loads it runs after it (selectinload,
# immediateload): a statement that says it is generic must not ask for any.
GENERIC_PLAN = {"portal_plan": "generic"}
CUSTOM, GENERIC = "force_custom_plan", "auto"


def _plan(context: Any) -> str:
    options = context.execution_options if context is not None else {}
    return GENERIC if options.get("portal_plan") == "generic" else CUSTOM


def current_settings() -> dict[str, str]:
    """The values the policies read, from the scope of the running code."""
    partner_id = scoped_partner_id()
    if partner_id is not None:
        return {"partner_id": str(partner_id), "scope": "partner"}
    return {"partner_id": "", "scope": "all" if is_unscoped() else "none"}


TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN")
# Kept in the pooled connection's info: the settings this transaction already carries.
_SENT = "portal_scope_sent"
_TOUCHED = "portal_scope_touched"
# Told of every settings query sent (the query-budget helper of the tests counts them).
SETTINGS_SENT: list[Callable[[str], None]] = []


def _set_before_statement(
    conn: Connection, cursor: Any, statement: str, _params: Any, context: Any, _many: bool
) -> None:
    # Transaction-local, sent with the first statement of every transaction and again
    # whenever the scope changes inside one (partner_scope in a CLI command): nothing
    # survives a commit or a rollback into the next use of the pooled connection, and a
    # statement never runs under a scope other than the running code's. Transaction control
    # reads no rows; a ROLLBACK (to a savepoint) may undo settings made since, so they are
    # sent again. After a failed statement (a lost race on a unique index, inside a
    # savepoint) the only thing PostgreSQL accepts is the ROLLBACK TO SAVEPOINT that follows.
    info = conn.info
    if info.pop(_TOUCHED, False):
        info.pop(_SENT, None)  # the last statement named the settings itself
    head = statement.lstrip()[:9].upper()
    if head.startswith(TRANSACTION_CONTROL):
        if head.startswith("ROLLBACK"):
            info.pop(_SENT, None)
        return
    if "portal." in statement:
        info[_TOUCHED] = True
    status = cursor.connection.info.transaction_status
    if status == TransactionStatus.INERROR:
        return
    settings = {**current_settings(), "plan": _plan(context)}
    key = (settings["partner_id"], settings["scope"], settings["plan"])
    if status == TransactionStatus.INTRANS and info.get(_SENT) == key:
        return
    # On a client cursor of the same connection: a server-side cursor (stream_results,
    # yield_per) would only DECLARE the settings query, never run it.
    info.pop(_SENT, None)
    try:
        cursor.connection.execute(SETTINGS_SQL, settings)
    except psycopg.Error as exc:
        # Raised in an event, outside SQLAlchemy's handling of the statement: do its part, so
        # that a dead connection (a server that stopped answering) is invalidated rather than
        # rolled back later, and the error is SQLAlchemy's (a 503, not a 500).
        disconnect = conn.dialect.is_disconnect(exc, cursor.connection, cursor)
        if disconnect:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            SETTINGS_SQL,
            settings,
            exc,
            psycopg.Error,
            connection_invalidated=disconnect,
            dialect=conn.dialect,
        ) from exc
    info[_SENT] = key
    for listener in SETTINGS_SENT:
        listener(statement)


def rls_active(conn: Connection) -> bool:
    """Whether this connection's role is held to row-level security, and cannot undo it.

    Not a superuser, not BYPASSRLS, and owner of no table with row-level security (an owner
    could ALTER TABLE … NO FORCE ROW LEVEL SECURITY).
    """
    if conn.dialect.name != "postgresql":
        return False
    escapes = conn.execute(
        text(
            "SELECT r.rolsuper OR r.rolbypassrls OR EXISTS ("
            " SELECT 1 FROM pg_class c WHERE c.relowner = r.oid AND c.relrowsecurity)"
            " FROM pg_roles r WHERE r.rolname = current_user"
        )
    ).scalar_one()
    return not escapes


def _transaction_ended(conn: Connection) -> None:
    conn.info.pop(_SENT, None)


def _checked_out(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    record.info.pop(_SENT, None)


def watch(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        return
    if not event.contains(engine, "before_cursor_execute", _set_before_statement):
        event.listen(engine, "before_cursor_execute", _set_before_statement)
        # Belt and braces next to the transaction status: whatever ends a transaction, or
        # hands the connection to other code, forgets what the transaction carried.
        event.listen(engine, "commit", _transaction_ended)
        event.listen(engine, "rollback", _transaction_ended)
        event.listen(engine, "checkout", _checked_out)


def init_app(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
        watch(engine)
        if engine.dialect.name == "postgresql" and app.config["PORTAL_ENV"] == "production":
            try:
                with engine.connect() as conn:
                    held = rls_active(conn)
            except Exception:  # the database may be down at start-up
                return
            if not held:
                log.warning(
                    "the database role escapes row-level security (superuser, BYPASSRLS or "
                    "table owner); connect as an ordinary, non-owner role so the database "
                    "enforces partner isolation"
                )

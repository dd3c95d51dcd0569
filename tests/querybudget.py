"""Query budgets: count the SQL statements one request sends, and hold pages to a budget.

    with counted(app) as statements:
        client.get("/")
    assert len(statements) <= 2, statements.report()

or simply `assert_budget(client, app, "/", 2)`. Counted is what the application sends through
SQLAlchemy, transaction control (BEGIN, COMMIT, ROLLBACK, savepoints) aside; on PostgreSQL the
scope settings the row-level security policies read are counted apart, in `settings`, since
they travel with the transaction rather than as a statement of the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event

from portal.extensions import db
from portal.tenancy import rls

TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN")


class Statements(list[str]):
    """The statements of the counted block, in order; `settings` counts scope settings sent."""

    settings: int = 0

    def report(self) -> str:
        lines = [f"{len(self)} statement(s), {self.settings} scope setting(s):"]
        lines += [f"  {i + 1}. {' '.join(s.split())[:300]}" for i, s in enumerate(self)]
        return "\n".join(lines)


@contextmanager
def counted(app: Flask) -> Iterator[Statements]:
    """Collect every statement `app` sends to its database while the block runs."""
    statements = Statements()
    with app.app_context():
        engine = db.engine

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip()[:9].upper().startswith(TRANSACTION_CONTROL):
            statements.append(statement)

    def setting(_statement: str) -> None:
        statements.settings += 1

    event.listen(engine, "before_cursor_execute", before)
    rls.SETTINGS_SENT.append(setting)
    try:
        yield statements
    finally:
        rls.SETTINGS_SENT.remove(setting)
        event.remove(engine, "before_cursor_execute", before)


def assert_budget(client: Any, app: Flask, path: str, budget: int, status: int = 200) -> Any:
    """GET `path` and fail when it needs more than `budget` statements (or another status)."""
    with counted(app) as statements:
        response = client.get(path)
    assert response.status_code == status, (path, response.status_code)
    assert len(statements) <= budget, f"{path}: budget {budget}, {statements.report()}"
    return response, statements


def sqlite_plan(app: Flask, client: Any, path: str, containing: str) -> list[str]:
    """SQLite's plan (`EXPLAIN QUERY PLAN`, one line per step) of the first statement that a
    GET of `path` by `client` sends holding `containing`."""
    sent: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        sent.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", before)
    statement, parameters = next((s, p) for s, p in sent if containing in s)
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
    return [row[3] for row in plan]

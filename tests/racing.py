"""Two writers at once, for real: one thread per app instance, a barrier before the first write.

Each worker is its own app instance (own engine, own connections) in its own thread. A barrier
lines them up just before the first statement that writes or takes a write lock, so both have
done every read first and both start from the same state: only the database's locks,
constraints and compare-and-set decide who wins.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from portal.extensions import db

WAIT = 30  # seconds a worker waits at the barrier before the test fails (a hang, not a race)
# How often each race runs; PORTAL_RACE_TRIES=50 re-measures the table in the README.
TRIES = int(os.environ.get("PORTAL_RACE_TRIES", "1"))
WRITES = ("UPDATE", "INSERT", "DELETE", "BEGIN IMMEDIATE")


def first_write(statement: str) -> bool:
    """A statement that changes data or takes a write lock (SQLite's, a row or an advisory
    lock)."""
    text = statement.lstrip().upper()
    return text.startswith(WRITES) or "FOR UPDATE" in text or "PG_ADVISORY_XACT_LOCK" in text


def race(
    apps: list[Flask],
    work: Callable[[int], Any],
    pause: Callable[[str], bool] = first_write,
) -> list[tuple[str, Any]]:
    """Run `work(index)` in one thread per app, each inside its app's context.

    Each worker waits at the barrier just before its first statement for which `pause` holds;
    one that finishes without such a statement meets the other there when it is done. Returns
    ("done", result) or ("error", exception) per worker.
    """
    barrier = threading.Barrier(len(apps), timeout=WAIT)
    outcomes: list[tuple[str, Any]] = [("error", None)] * len(apps)

    def worker(index: int, app: Flask) -> None:
        with app.app_context():
            engine = db.engine
            paused: list[str] = []

            def hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
                if not paused and pause(statement):
                    paused.append(statement)
                    barrier.wait()

            event.listen(engine, "before_cursor_execute", hold)
            try:
                outcomes[index] = ("done", work(index))
                if not paused:
                    barrier.wait()
            except BaseException as exc:  # reported by the test, not lost in the thread
                barrier.abort()
                outcomes[index] = ("error", exc)
            finally:
                event.remove(engine, "before_cursor_execute", hold)
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i, a)) for i, a in enumerate(apps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    return outcomes


def results(outcomes: list[tuple[str, Any]]) -> list[Any]:
    """The workers' results; a worker's own failure is raised (before a broken barrier)."""
    errors = [value for kind, value in outcomes if kind == "error"]
    if errors:
        errors.sort(key=lambda exc: isinstance(exc, threading.BrokenBarrierError))
        raise errors[0]
    return [value for _kind, value in outcomes]


def skip_unless_racing() -> None:
    """SQLite races for real only with separate connections in WAL mode, as configured."""
    if db.engine.dialect.name == "sqlite":
        mode = db.session.connection().exec_driver_sql("PRAGMA journal_mode").scalar()
        if mode != "wal":
            pytest.skip(f"SQLite in {mode} journal mode: the second writer would only queue")

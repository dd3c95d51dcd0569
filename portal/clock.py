"""The one source of "now", so tests can control time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """Naive-UTC wall clock that tests can freeze or move forward."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None

    def now(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        return datetime.now(UTC).replace(tzinfo=None, microsecond=0)

    def freeze(self, at: datetime) -> None:
        self._frozen = at.replace(microsecond=0)

    def advance(self, delta: timedelta) -> None:
        self.freeze(self.now() + delta)

    def unfreeze(self) -> None:
        self._frozen = None


clock = Clock()


def utcnow() -> datetime:
    """The current time as naive UTC (how every timestamp is stored)."""
    return clock.now()

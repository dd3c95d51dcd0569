"""Lists read a page at a time: the page's keys and the count of all, in one statement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, Subquery, func, select

from portal.extensions import db


def page_keys(
    filtered: Select[Any],
    key: ColumnElement[Any],
    order: Sequence[Any],
    limit: int | BindParameter[int],
    offset: int | BindParameter[int],
) -> Subquery:
    """The `key`s of a page of `filtered` in `order` (`limit` rows after `offset`: values, or
    parameters of a statement built once), each row with `total`: how many rows `filtered`
    has in all.

    The count is an uncorrelated scalar subquery, which the database works out once, in the
    same round trip as the page (a `count(*) OVER ()` window would hold every matching row to
    count them). Callers join their rows to these keys, so whatever they read with a row (its
    user, its plan) is read for the page's rows only.
    """
    return (
        filtered.with_only_columns(key, _counting(filtered, key).scalar_subquery().label("total"))
        .order_by(*order)
        .limit(limit)
        .offset(offset)
        .subquery("page")
    )


def count_of(
    filtered: Select[Any], key: ColumnElement[Any], values: Mapping[str, Any] | None = None
) -> int:
    """The count alone: for a page past the end, which has no row to carry it. `values`: the
    statement's bound parameters, if it has any."""
    return db.session.execute(_counting(filtered, key), values).scalar_one()


def _counting(filtered: Select[Any], key: ColumnElement[Any]) -> Select[tuple[int]]:
    return select(func.count()).select_from(filtered.with_only_columns(key).subquery())

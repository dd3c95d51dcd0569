"""Lists read a page at a time: the page's keys and how many match, in one statement.

A list counts its matches up to a limit (`counting_limit`): a partner's 100,000 users are
not counted on every page of the list (on SQLite that was most of the page's time), and
"more than 1,000" is all the page needs to show its pager. Whoever wants the exact figure
asks for it (the list's "Count all"), and that page counts everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, Subquery, func, select

from portal.extensions import db

# Matches counted before a list says "more than": a thousand is a count that costs little
# wherever a partner has many rows (a tenth of a millisecond on SQLite; every row counted,
# 100,000 of them, took 3.6 ms).
COUNT_UP_TO = 1_000


def counting_limit(offset: int, per_page: int) -> int:
    """How many matching rows a page counts at most: one more than COUNT_UP_TO, or than the
    rows up to the end of this page, so the page can tell whether another follows."""
    return max(COUNT_UP_TO, offset + per_page) + 1


def page_keys(
    filtered: Select[Any],
    key: ColumnElement[Any],
    order: Sequence[Any],
    limit: int | BindParameter[int],
    offset: int | BindParameter[int],
    count_limit: int | BindParameter[int] | None = None,
) -> Subquery:
    """The `key`s of a page of `filtered` in `order` (`limit` rows after `offset`: values, or
    parameters of a statement built once), each row with `total`: how many rows `filtered`
    has in all, or `count_limit` when it has at least that many (None: every row counted).

    The count is an uncorrelated scalar subquery, which the database works out once, in the
    same round trip as the page (a `count(*) OVER ()` window would hold every matching row to
    count them). Callers join their rows to these keys, so whatever they read with a row (its
    user, its plan) is read for the page's rows only.
    """
    return (
        filtered.with_only_columns(
            key, _counting(filtered, key, count_limit).scalar_subquery().label("total")
        )
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


def _counting(
    filtered: Select[Any],
    key: ColumnElement[Any],
    count_limit: int | BindParameter[int] | None = None,
) -> Select[tuple[int]]:
    keys = filtered.with_only_columns(key)
    if count_limit is not None:
        keys = keys.limit(count_limit)
    return select(func.count()).select_from(keys.subquery())

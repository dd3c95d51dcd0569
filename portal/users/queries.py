"""Reading users for the admin list: search, filter, sort and paginate within one partner."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

from sqlalchemy import ColumnElement, Integer, Select, bindparam, case, exists, func, select

from portal.extensions import db
from portal.roles.models import Role
from portal.subscriptions.models import Subscription, SubscriptionState
from portal.users import search
from portal.users.models import User, UserStatus
from portal.users.search import contains_pattern as contains_pattern  # its home before

SORTS = {
    "email": User.email,
    "name": User.display_name,
    "role": User.role,
    "status": User.status,
    "created": User.created_at,
    "last_login": User.last_login_at,
}
PER_PAGE = 25
# The subscription filter: a state the user has a subscription in, or none live at all.
NO_SUBSCRIPTION = "none"
SUBSCRIPTION_FILTERS = (
    SubscriptionState.SIGNED.value,
    SubscriptionState.SUSPENDED.value,
    SubscriptionState.SIGNING.value,
    NO_SUBSCRIPTION,
)


@dataclass(frozen=True)
class UserQuery:
    """The list's state, parsed from the query string; unknown values fall back to defaults."""

    q: str = ""
    role: Role | None = None
    status: UserStatus | None = None
    sort: str = "email"
    direction: str = "asc"
    page: int = 1
    subscription: str = ""

    @classmethod
    def from_args(cls, args: dict[str, str]) -> UserQuery:
        def enum_or_none(kind, value):
            return kind(value) if value in kind._value2member_map_ else None

        try:
            page = max(1, min(int(args.get("page", 1)), 1_000_000))
        except ValueError:
            page = 1
        sort = args.get("sort", "email")
        subscription = args.get("subscription", "")
        return cls(
            q=args.get("q", "").strip()[:100],
            role=enum_or_none(Role, args.get("role")),
            status=enum_or_none(UserStatus, args.get("status")),
            sort=sort if sort in SORTS else "email",
            direction="desc" if args.get("direction") == "desc" else "asc",
            page=page,
            subscription=subscription if subscription in SUBSCRIPTION_FILTERS else "",
        )

    def args(self, **changes: object) -> dict[str, object]:
        """Query-string arguments for a link that changes some of the state."""
        state = {
            "q": self.q,
            "role": self.role.value if self.role else "",
            "status": self.status.value if self.status else "",
            "sort": self.sort,
            "direction": self.direction,
            "page": self.page,
            "subscription": self.subscription,
            **changes,
        }
        return {k: v for k, v in state.items() if v not in ("", None)}


@dataclass(frozen=True)
class Page:
    items: list[User]
    total: int
    query: UserQuery
    per_page: int = PER_PAGE
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pages", max(1, math.ceil(self.total / self.per_page)))


def _params(query: UserQuery) -> dict[str, object]:
    """The values of the list's state, for the statements below (built once per shape)."""
    values: dict[str, object] = search.params(query.q) if query.q else {}
    if query.role:
        values["role"] = query.role
    if query.status:
        values["status"] = query.status
    if query.subscription and query.subscription != NO_SUBSCRIPTION:
        values["state"] = SubscriptionState(query.subscription)
    return values


def _filtered(query: UserQuery, *, indexed: bool = False) -> Select:
    """The users the list shows; `indexed`: the search's candidates found through the trigram
    index first (the same users, found another way: `portal/users/search.py`)."""
    subscription = query.subscription
    if subscription and subscription != NO_SUBSCRIPTION:
        subscription = "state"
    return _filtered_as(bool(query.q), indexed, bool(query.role), bool(query.status), subscription)


# Statements are built once per shape of the list's state and bound per request: the tenancy
# layer then works out what a statement reads once, not on every search.
@lru_cache(maxsize=256)
def _filtered_as(q: bool, indexed: bool, role: bool, status: bool, subscription: str) -> Select:
    stmt = select(User)
    if q:
        stmt = stmt.where(search.matches())
        if indexed:
            stmt = stmt.where(search.among_candidates())
    if role:
        stmt = stmt.where(User.role == bindparam("role"))
    if status:
        stmt = stmt.where(User.status == bindparam("status"))
    if subscription == NO_SUBSCRIPTION:
        live = Subscription.state != SubscriptionState.UNSIGNED
        stmt = stmt.where(~exists().where(Subscription.user_id == User.id, live))
    elif subscription:
        stmt = stmt.where(
            exists().where(
                Subscription.user_id == User.id, Subscription.state == bindparam("state")
            )
        )
    return stmt


def _count(stmt: Select) -> Select:
    return select(func.count()).select_from(stmt.with_only_columns(User.id).subquery())


@lru_cache(maxsize=256)
def _counted(filtered: Select) -> Select:
    return _count(filtered)


@lru_cache(maxsize=256)
def _counted_either_way(through_index: Select, by_reading: Select) -> Select:
    """One statement: the index's candidates counted up to a few, then the users counted
    through the index if they are few, by reading the partner's rows otherwise."""
    probe = select(search.candidate_count().label("found")).cte("probe")
    few = search.few_candidates(probe.c.found)
    counts = case(
        (few, _count(through_index).scalar_subquery()),
        else_=_count(by_reading).scalar_subquery(),
    )
    return select(few, counts).select_from(probe)


def _total(query: UserQuery, values: dict[str, object]) -> tuple[int, bool]:
    """How many users the list has, and whether its page is best read through the index."""
    if not (query.q and search.indexed(query.q)):
        return db.session.execute(_counted(_filtered(query)), values).scalar_one(), False
    stmt = _counted_either_way(_filtered(query, indexed=True), _filtered(query))
    use_index, total = db.session.execute(stmt, values).one()
    return total, bool(use_index)


def _ordered(column: ColumnElement, direction: str, indexed: bool) -> ColumnElement:
    if indexed:
        column = search.unindexed(column)
    return column.desc() if direction == "desc" else column.asc()


@lru_cache(maxsize=256)
def _page_of(filtered: Select, sort: str, direction: str, indexed: bool) -> Select:
    order = _ordered(SORTS[sort], direction, indexed)
    if sort == "last_login":
        order = order.nulls_last()
    return (
        filtered.order_by(order, User.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


def search_users(query: UserQuery, per_page: int = PER_PAGE) -> Page:
    """One page of the current partner's users (the ORM adds the partner filter)."""
    values = _params(query)
    total, indexed = _total(query, values)
    page = min(query.page, max(1, math.ceil(total / per_page)))
    items: list[User] = []
    if total:
        stmt = _page_of(_filtered(query, indexed=indexed), query.sort, query.direction, indexed)
        values |= {"limit": per_page, "offset": (page - 1) * per_page}
        items = list(db.session.execute(stmt, values).scalars())
    return Page(items=items, total=total, query=replace(query, page=page), per_page=per_page)


@lru_cache(maxsize=16)
def _probe() -> Select:
    return select(search.candidate_count())


def users_after(query: UserQuery, after_id: int | None, limit: int) -> list[User]:
    """Up to `limit` users matching the list's search and filters, by id, after `after_id`
    (the partner API's cursor pages: stable while users are added)."""
    values = _params(query)
    indexed = False
    if query.q and search.indexed(query.q):
        found = db.session.execute(_probe(), values).scalar_one()
        indexed = found < search.FEW
    stmt = _filtered(query, indexed=indexed)
    if after_id is not None:
        stmt = stmt.where(User.id > after_id)
    order = _ordered(User.id, "asc", indexed)
    return list(db.session.execute(stmt.order_by(order).limit(limit), values).scalars())

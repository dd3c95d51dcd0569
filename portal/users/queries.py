"""Reading users for the admin list: search, filter, sort and paginate within one partner."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from sqlalchemy import ColumnElement, Select, case, exists, func, select

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


def _filtered(query: UserQuery, *, indexed: bool = False) -> Select:
    """The users the list shows; `indexed`: the search's candidates found through the trigram
    index first (the same users, found another way: `portal/users/search.py`)."""
    stmt = select(User)
    if query.q:
        stmt = stmt.where(search.matches(query.q))
        if indexed:
            stmt = stmt.where(search.among_candidates(query.q))
    if query.role:
        stmt = stmt.where(User.role == query.role)
    if query.status:
        stmt = stmt.where(User.status == query.status)
    if query.subscription == NO_SUBSCRIPTION:
        live = Subscription.state != SubscriptionState.UNSIGNED
        stmt = stmt.where(~exists().where(Subscription.user_id == User.id, live))
    elif query.subscription:
        state = SubscriptionState(query.subscription)
        stmt = stmt.where(
            exists().where(Subscription.user_id == User.id, Subscription.state == state)
        )
    return stmt


def _count(stmt: Select) -> Select:
    return select(func.count()).select_from(stmt.with_only_columns(User.id).subquery())


def _total(query: UserQuery) -> tuple[int, bool]:
    """How many users the list has, and whether its page is best read through the index.

    One statement: the index's candidates counted up to a few, then the users counted
    through the index if they are few, by reading the partner's rows otherwise.
    """
    if not (query.q and search.indexed(query.q)):
        return db.session.execute(_count(_filtered(query))).scalar_one(), False
    probe = select(search.candidate_count(query.q).label("found")).cte("probe")
    few = probe.c.found < search.FEW
    through_index = _count(_filtered(query, indexed=True)).scalar_subquery()
    by_reading = _count(_filtered(query)).scalar_subquery()
    stmt = select(few, case((few, through_index), else_=by_reading)).select_from(probe)
    use_index, total = db.session.execute(stmt).one()
    return total, bool(use_index)


def _ordered(column: ColumnElement, direction: str, indexed: bool) -> ColumnElement:
    if indexed:
        column = search.unindexed(column)
    return column.desc() if direction == "desc" else column.asc()


def search_users(query: UserQuery, per_page: int = PER_PAGE) -> Page:
    """One page of the current partner's users (the ORM adds the partner filter)."""
    total, indexed = _total(query)
    order = _ordered(SORTS[query.sort], query.direction, indexed)
    if query.sort == "last_login":
        order = order.nulls_last()
    page = min(query.page, max(1, math.ceil(total / per_page)))
    items: list[User] = []
    if total:
        stmt = _filtered(query, indexed=indexed).order_by(order, User.id)
        offset = (page - 1) * per_page
        items = list(db.session.execute(stmt.limit(per_page).offset(offset)).scalars())
    return Page(items=items, total=total, query=replace(query, page=page), per_page=per_page)


def users_after(query: UserQuery, after_id: int | None, limit: int) -> list[User]:
    """Up to `limit` users matching the list's search and filters, by id, after `after_id`
    (the partner API's cursor pages: stable while users are added)."""
    indexed = False
    if query.q and search.indexed(query.q):
        found = db.session.execute(select(search.candidate_count(query.q))).scalar_one()
        indexed = found < search.FEW
    stmt = _filtered(query, indexed=indexed)
    if after_id is not None:
        stmt = stmt.where(User.id > after_id)
    order = _ordered(User.id, "asc", indexed)
    return list(db.session.execute(stmt.order_by(order).limit(limit)).scalars())

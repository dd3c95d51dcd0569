"""Reading users for the admin list: search, filter, sort and paginate within one partner."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    and_,
    bindparam,
    case,
    exists,
    select,
)
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from portal.extensions import db
from portal.paging import count_of, counting_limit, page_keys
from portal.records import records
from portal.roles.models import Role
from portal.subscriptions.models import Plan, Subscription, SubscriptionState
from portal.users import search
from portal.users.models import User, UserStatus

SORTS = {
    "email": User.email,
    "name": User.display_name,
    "role": User.role,
    "status": User.status,
    "created": User.created_at,
    "last_login": User.last_login_at,
}
PER_PAGE = 25
# What a list shows of each user: read as columns of a row, not made into entities (the
# identity map, the attributes' instrumentation), a tenth of the list's time at 25 users.
LISTED = (
    User.id,
    User.email,
    User.display_name,
    User.role,
    User.status,
    User.is_support,
    User.created_at,
    User.last_login_at,
)
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
    # Asked for the exact count of matches ("Count all"); otherwise counted up to a limit.
    count_all: bool = False

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
            count_all=args.get("count") == "all",
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
            "count": "all" if self.count_all else "",
            **changes,
        }
        return {k: v for k, v in state.items() if v not in ("", None)}


@dataclass(frozen=True)
class Page:
    """A page of the list. `total` is how many match when `counted`; otherwise more than
    `total - 1` do (they were counted up to `total`), and `pages` is unknown (None)."""

    items: list[Any]  # `records`: each user's `LISTED` columns, by name
    total: int
    query: UserQuery
    per_page: int = PER_PAGE
    counted: bool = True
    pages: int | None = field(init=False)
    # The live subscription of each listed user who has one (`with_subscription`).
    subscriptions: dict[int, Subscription] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pages = max(1, math.ceil(self.total / self.per_page)) if self.counted else None
        object.__setattr__(self, "pages", pages)

    @property
    def has_next(self) -> bool:
        return self.total > self.query.page * self.per_page


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


def _filtered(query: UserQuery, *, indexed: bool = False, first: bool = False) -> Select:
    """The users the list shows; `indexed`: the search's candidates found through the trigram
    index first (the same users, found another way: `portal/users/search.py`)."""
    subscription = query.subscription
    if subscription and subscription != NO_SUBSCRIPTION:
        subscription = "state"
    through = search.dialect() if indexed else ""
    return _filtered_as(
        bool(query.q), through, first, bool(query.role), bool(query.status), subscription
    )


# Statements are built once per shape of the list's state and bound per request: the tenancy
# layer then works out what a statement reads once, not on every search.
@lru_cache(maxsize=256)
def _filtered_as(
    q: bool, through: str, first: bool, role: bool, status: bool, subscription: str
) -> Select:
    """`through`: the database whose index finds the search's candidates ("": none); `first`:
    only its first few (`search.among_candidates`)."""
    stmt = select(User)
    if q:
        stmt = stmt.where(search.matches())
        if through:
            stmt = stmt.where(search.among_candidates(through, first=first))
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


def search_users(
    query: UserQuery, per_page: int = PER_PAGE, *, with_subscription: bool = False
) -> Page:
    """One page of the current partner's users (the ORM adds the partner filter) and how many
    match (up to a limit, unless the query asks to count all), in one statement (a search
    through the trigram index too, when the index finds few candidates); `with_subscription`:
    each with their live subscription and its plan (the one in force, else the one being
    signed), in the same statement."""
    values = _params(query)
    page = query.page
    rows = None
    indexed = bool(query.q) and search.indexed(query.q)
    if indexed:
        # Through the index first: the page says how many candidates the index found (up to
        # a few). Fewer, and they were all of them: this is the page, read with one search of
        # the index. Else the partner's rows are read as below; and a page with no row to
        # say is decided by counting the candidates on their own.
        first = _statement(query, True, with_subscription, first=True)
        rows = _page_rows(first, page, per_page, values, query.count_all)
        if not (rows and rows[0].candidates < search.FEW):
            indexed = not rows and _through_index(query, values)
            rows = rows if indexed else None
    filtered = _filtered(query, indexed=indexed)
    statement = _statement(query, indexed, with_subscription)
    if rows is None:
        rows = _page_rows(statement, page, per_page, values, query.count_all)
    counted = True
    if rows:
        total = rows[0].total
        counted = query.count_all or total < counting_limit((page - 1) * per_page, per_page)
    else:  # none here: past the last page (show that one), or nobody matches
        total = count_of(filtered, User.id, values) if page > 1 else 0
        last = max(1, math.ceil(total / per_page))
        if page > last:
            page = last
            rows = _page_rows(statement, page, per_page, values, query.count_all)
    subscriptions = {}
    for row in rows:
        if with_subscription and row.Subscription is not None:
            set_committed_value(row.Subscription, "plan", row.Plan)
            subscriptions[row.id] = row.Subscription
    return Page(
        items=rows,
        total=total,
        query=replace(query, page=page),
        per_page=per_page,
        counted=counted,
        subscriptions=subscriptions,
    )


def _statement(
    query: UserQuery, indexed: bool, with_subscription: bool, *, first: bool = False
) -> Select:
    """The page's statement; `first`: through the index's first few candidates, saying how
    many it read (`candidates`)."""
    return _page_statement(
        _filtered(query, indexed=indexed, first=first),
        query.sort,
        query.direction,
        indexed,
        first,
        with_subscription,
        query.count_all,
    )


def _through_index(query: UserQuery, values: dict[str, object]) -> bool:
    """Whether a search reads its candidates through the trigram index: only when the index
    finds few (counted up to a few, in a statement of its own); a text most users match is
    read faster from the partner's rows."""
    if not (query.q and search.indexed(query.q)):
        return False
    return db.session.execute(_probe(search.dialect()), values).scalar_one() < search.FEW


def _ordered(column: ColumnElement, direction: str, indexed: bool) -> ColumnElement:
    if indexed:
        column = search.unindexed(column, search.dialect())
    return column.desc() if direction == "desc" else column.asc()


def _page_rows(
    statement: Select, page: int, per_page: int, values: dict[str, object], count_all: bool
) -> list[Any]:
    offset = (page - 1) * per_page
    bound = {**values, "page_limit": per_page, "page_offset": offset}
    if not count_all:
        bound["count_limit"] = counting_limit(offset, per_page)
    return records(db.session.execute(statement, bound))


@lru_cache(maxsize=512)
def _page_statement(
    filtered: Select,
    sort: str,
    direction: str,
    indexed: bool,
    first: bool,
    with_subscription: bool,
    count_all: bool,
) -> Select:
    """A page of `filtered` in the list's order, built once per shape of the list's state:
    the page's place (`page_limit`, `page_offset`) and how far to count (`count_limit`,
    unless `count_all`) are bound per request, as the filters are."""
    order = _ordered(SORTS[sort], direction, indexed)
    if sort == "last_login":
        order = order.nulls_last()
    ordering = (order, User.id)
    keys = page_keys(
        filtered,
        User.id,
        ordering,
        bindparam("page_limit"),
        bindparam("page_offset"),
        None if count_all else bindparam("count_limit"),
    )
    stmt = select(*LISTED, keys.c.total).join(keys, keys.c.id == User.id).order_by(*ordering)
    if first:
        stmt = stmt.add_columns(search.found_count(search.dialect()).label("candidates"))
    if with_subscription:
        stmt = (
            stmt.add_columns(Subscription, Plan)
            .outerjoin(
                Subscription,
                and_(Subscription.partner_id == User.partner_id, Subscription.id == _live_id()),
            )
            .outerjoin(
                Plan,
                and_(Plan.partner_id == Subscription.partner_id, Plan.id == Subscription.plan_id),
            )
        )
    return stmt


def _live_id() -> ScalarSelect[int]:
    """The user's live subscription: the one in force (signed or suspended), else the one
    being signed."""
    live = aliased(Subscription)
    signing = case((live.state == SubscriptionState.SIGNING, 1), else_=0)
    return (
        select(live.id)
        .where(live.user_id == User.id, live.state != SubscriptionState.UNSIGNED)
        .order_by(signing, live.id)
        .limit(1)
        .correlate(User)
        .scalar_subquery()
    )


@lru_cache(maxsize=16)
def _probe(kind: str) -> Select:
    return select(search.candidate_count(kind))


def users_after(query: UserQuery, after_id: int | None, limit: int) -> list[User]:
    """Up to `limit` users matching the list's search and filters, by id, after `after_id`
    (the partner API's cursor pages: stable while users are added)."""
    values = _params(query)
    indexed = _through_index(query, values)
    stmt = _filtered(query, indexed=indexed)
    if after_id is not None:
        stmt = stmt.where(User.id > after_id)
    order = _ordered(User.id, "asc", indexed)
    return list(db.session.execute(stmt.order_by(order).limit(limit), values).scalars())

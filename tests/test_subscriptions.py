"""The subscription lifecycle: every move x every actor, the rules, the pages, isolation."""

from __future__ import annotations

import itertools
from html.parser import HTMLParser

import pytest
from conftest import logged_in, make_user, rows
from flask import Flask

from portal.extensions import db
from portal.features.catalogue import PLAN_GATED
from portal.roles.models import Role
from portal.subscriptions.models import (
    BillingInterval,
    Plan,
    PlanStatus,
    Subscription,
    SubscriptionEvent,
)
from portal.subscriptions.models import SubscriptionState as S
from portal.subscriptions.plans import PlanInput, create_plan, set_plan_status
from portal.subscriptions.services import (
    MOVES,
    ActorKind,
    SubscriptionRefused,
    accept_terms,
    entitlements_of,
    overview,
    start_signing,
    transition,
)
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User
from portal.users.services import NeedsConfirmation, change_role


def plan(code: str, roles=(Role.BASIC,), approval: bool = False, ents=()) -> Plan:
    return create_plan(
        PlanInput(
            code,
            code.title(),
            "",
            0,
            "EUR",
            BillingInterval.MONTH,
            tuple(roles),
            tuple(ents),
            approval,
            0,
        ),
        PLAN_GATED,
    )


@pytest.fixture
def world(acme: Partner, acme_admin: User):
    """A basic user, an admin, plans, all inside acme's scope for the test's duration."""
    basic = make_user(acme, "b@acme.test", role=Role.BASIC)
    with partner_scope(acme):
        plans = {
            "free": plan("free", roles=(Role.BASIC, Role.ADVANCED)),
            "plus": plan("plus", approval=True, ents=("reports",)),
            "other": plan("other", roles=(Role.BASIC, Role.ADVANCED), ents=("reports",)),
            "company": plan("company", roles=(Role.COMPANY,)),
        }
        db.session.commit()
        yield {
            "user": db.session.get(User, basic.id),
            "admin": db.session.get(User, acme_admin.id),
            "plans": plans,
        }


def subscription_in(world, state: S, plan_key: str = "free") -> Subscription:
    """Drive a fresh subscription into `state` through the public functions."""
    user, admin = world["user"], world["admin"]
    sub = start_signing(user, world["plans"][plan_key], actor=user, kind=ActorKind.USER)
    db.session.commit()
    if state == S.SIGNING:
        return sub
    accept_terms(sub, actor=user)
    if world["plans"][plan_key].needs_approval:
        transition(sub, S.SIGNED, actor=admin, kind=ActorKind.ADMIN)
    if state == S.SUSPENDED:
        transition(sub, S.SUSPENDED, actor=admin, kind=ActorKind.ADMIN, reason="unpaid")
    if state == S.UNSIGNED:
        transition(sub, S.UNSIGNED, actor=user, kind=ActorKind.USER)
    db.session.commit()
    return sub


STATES = list(S)
PAIRS = [(f, t) for f, t in itertools.product(STATES, STATES) if f != t]


@pytest.mark.parametrize("kind", list(ActorKind), ids=[k.value for k in ActorKind])
@pytest.mark.parametrize("frm,to", PAIRS, ids=[f"{f.value}->{t.value}" for f, t in PAIRS])
def test_every_state_pair_for_every_actor(world, frm: S, to: S, kind: ActorKind) -> None:
    sub = subscription_in(world, frm, plan_key="plus" if kind == ActorKind.ADMIN else "free")
    if frm == S.SIGNING:
        sub.terms_accepted_at = sub.created_at  # the user accepted; now who may sign?
        db.session.commit()
    actor = {
        ActorKind.USER: world["user"],
        ActorKind.ADMIN: world["admin"],
        ActorKind.SYSTEM: None,
    }[kind]
    allowed = kind in MOVES.get((frm, to), frozenset())
    events = len(rows(SubscriptionEvent))
    if allowed:
        transition(sub, to, actor=actor, kind=kind, reason="because")
        db.session.commit()
        assert rows(Subscription, id=sub.id)[0].state == to
        [last] = rows(SubscriptionEvent)[events:]
        assert (last.from_state, last.to_state, last.actor_kind) == (frm, to, kind.value)
    else:
        with pytest.raises(SubscriptionRefused):
            transition(sub, to, actor=actor, kind=kind, reason="because")
        db.session.rollback()
        assert rows(Subscription, id=sub.id)[0].state == frm
        assert len(rows(SubscriptionEvent)) == events


def test_no_transition_leaves_unsigned(world) -> None:
    sub = subscription_in(world, S.UNSIGNED)
    for to, kind in itertools.product(STATES, ActorKind):
        actor = world["admin"] if kind == ActorKind.ADMIN else world["user"]
        with pytest.raises(SubscriptionRefused):
            transition(sub, to, actor=actor, kind=kind, reason="x")
    assert rows(Subscription, id=sub.id)[0].state == S.UNSIGNED


def test_start_rules(world) -> None:
    user, plans = world["user"], world["plans"]
    with pytest.raises(SubscriptionRefused, match="not available to the role Basic"):
        start_signing(user, plans["company"], actor=user, kind=ActorKind.USER)
    set_plan_status(plans["other"], PlanStatus.ARCHIVED)
    with pytest.raises(SubscriptionRefused, match="archived"):
        start_signing(user, plans["other"], actor=user, kind=ActorKind.USER)
    start_signing(user, plans["free"], actor=user, kind=ActorKind.USER)
    with pytest.raises(SubscriptionRefused, match="already being signed"):
        start_signing(user, plans["plus"], actor=user, kind=ActorKind.USER)
    stranger = make_user(user.partner, "s@acme.test")
    with pytest.raises(SubscriptionRefused, match="only change your own"):
        start_signing(
            user, plans["free"], actor=db.session.get(User, stranger.id), kind=ActorKind.USER
        )


def test_approval_plans_wait_for_an_admin(world) -> None:
    user, admin = world["user"], world["admin"]
    sub = start_signing(user, world["plans"]["plus"], actor=user, kind=ActorKind.USER)
    with pytest.raises(SubscriptionRefused, match="terms have not been accepted"):
        transition(sub, S.SIGNED, actor=admin, kind=ActorKind.ADMIN)
    accept_terms(sub, actor=user)
    assert sub.state == S.SIGNING and sub.terms_accepted_at is not None
    with pytest.raises(SubscriptionRefused, match="needs an administrator"):
        transition(sub, S.SIGNED, actor=user, kind=ActorKind.USER)
    transition(sub, S.SIGNED, actor=admin, kind=ActorKind.ADMIN)
    db.session.commit()
    assert entitlements_of(user) == {"reports"}


def test_switching_plans_unsigns_the_old_one_when_the_new_one_is_signed(world) -> None:
    user = world["user"]
    old = subscription_in(world, S.SIGNED, "free")
    new = start_signing(user, world["plans"]["other"], actor=user, kind=ActorKind.USER)
    assert rows(Subscription, id=old.id)[0].state == S.SIGNED  # still in force while signing
    accept_terms(new, actor=user)
    db.session.commit()
    states = {s.id: s.state for s in rows(Subscription)}
    assert states == {old.id: S.UNSIGNED, new.id: S.SIGNED}
    last_old = [e for e in rows(SubscriptionEvent) if e.subscription_id == old.id][-1]
    assert last_old.reason == "switched to Other"


def test_suspension_needs_a_reason_and_resume_needs_the_role(world) -> None:
    user, admin = world["user"], world["admin"]
    sub = subscription_in(world, S.SIGNED, "free")
    with pytest.raises(SubscriptionRefused, match="reason"):
        transition(sub, S.SUSPENDED, actor=admin, kind=ActorKind.ADMIN, reason="  ")
    transition(sub, S.SUSPENDED, actor=admin, kind=ActorKind.ADMIN, reason="chargeback")
    user.role = Role.GUEST
    with pytest.raises(SubscriptionRefused, match="not available to the role Guest"):
        transition(sub, S.SIGNED, actor=admin, kind=ActorKind.ADMIN)
    user.role = Role.BASIC
    transition(sub, S.SIGNED, actor=admin, kind=ActorKind.ADMIN)
    db.session.commit()
    assert rows(Subscription, id=sub.id)[0].state == S.SIGNED


def test_role_change_asks_first_then_suspends(world) -> None:
    user, admin = world["user"], world["admin"]
    sub = subscription_in(world, S.SIGNED, "free")
    with pytest.raises(NeedsConfirmation, match="suspends that subscription"):
        change_role(admin, user, Role.GUEST)
    db.session.rollback()
    assert rows(User, id=user.id)[0].role == Role.BASIC
    change_role(admin, user, Role.GUEST, confirm_suspension=True)
    db.session.commit()
    assert rows(Subscription, id=sub.id)[0].state == S.SUSPENDED
    last = rows(SubscriptionEvent)[-1]
    assert last.actor_kind == "system" and "role changed from Basic to Guest" in last.reason
    with pytest.raises(SubscriptionRefused, match="not available"):
        transition(sub, S.SIGNED, actor=admin, kind=ActorKind.ADMIN)


def test_database_allows_one_held_and_one_signing_subscription(world) -> None:
    from sqlalchemy.exc import IntegrityError

    user = world["user"]
    subscription_in(world, S.SIGNED, "free")
    db.session.add(
        Subscription(user_id=user.id, plan_id=world["plans"]["other"].id, state=S.SIGNED)
    )
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_a_rolled_back_start_leaves_nothing_behind(world) -> None:
    """The savepoint in start_signing must not commit the row on its own (pysqlite did)."""
    user = world["user"]
    start_signing(user, world["plans"]["free"], actor=user, kind=ActorKind.USER)
    db.session.rollback()
    assert rows(Subscription) == [] and rows(SubscriptionEvent) == []


def test_pages_for_the_user(app: Flask, world) -> None:
    client = logged_in(app, world["user"])
    page = client.get("/account/subscription/").text
    assert "Only for Company" in page and "Choose Free" in page
    free = world["plans"]["free"]
    assert client.post_form("/account/subscription/start", {"plan_id": free.id}).status_code == 302
    [sub] = rows(Subscription)
    no_terms = client.post_form(f"/account/subscription/{sub.id}/confirm")
    assert "Tick the box to accept the terms." in client.get(no_terms.headers["Location"]).text
    client.post_form(f"/account/subscription/{sub.id}/confirm", {"accept_terms": "1"})
    assert rows(Subscription)[0].state == S.SIGNED
    page = client.get("/account/subscription/").text
    assert "Cancel subscription" in page and "signing → signed" in page
    refused = client.post_form(
        f"/account/subscription/{sub.id}/confirm",
        {"accept_terms": "1"},
        headers={"HX-Request": "1"},
    )
    assert refused.status_code == 409 and refused.headers["X-Subscription-State"] == "signed"
    client.post_form(f"/account/subscription/{sub.id}/cancel")
    assert rows(Subscription)[0].state == S.UNSIGNED


def test_the_page_reads_plans_open_subscriptions_and_history_together(app: Flask, world) -> None:
    """One statement: the open subscriptions even when their changes are older than the
    history shown, the history's plans even when archived, nobody else's subscriptions."""
    user, plans = world["user"], world["plans"]
    held = subscription_in(world, S.SIGNED, "free")
    tried = start_signing(user, plans["other"], actor=user, kind=ActorKind.USER)
    transition(tried, S.UNSIGNED, actor=user, kind=ActorKind.USER, reason="changed my mind")
    pending = start_signing(user, plans["plus"], actor=user, kind=ActorKind.USER)
    set_plan_status(plans["other"], PlanStatus.ARCHIVED)
    neighbour = make_user(world["admin"].partner, "n@acme.test", role=Role.BASIC)
    start_signing(
        db.session.get(User, neighbour.id),
        plans["free"],
        actor=world["admin"],
        kind=ActorKind.ADMIN,
    )
    db.session.commit()
    db.session.expire_all()

    page = overview(db.session.get(User, user.id), history=3)
    assert (page.held.id, page.pending.id) == (held.id, pending.id)
    assert page.held.plan.name == "Free" and page.pending.plan.name == "Plus"
    assert [(e.subscription_id, e.to_state) for e in page.history] == [
        (pending.id, S.SIGNING),
        (tried.id, S.UNSIGNED),
        (tried.id, S.SIGNING),
    ]
    assert [e.subscription.plan.name for e in page.history] == ["Plus", "Other", "Other"]
    assert [p.code for p, _ in page.offers] == ["company", "free", "plus"]
    text = logged_in(app, world["user"]).get("/account/subscription/").text
    assert "Being signed: Plus" in text and "<strong>Free</strong>" in text
    assert text.count("<tr><td>") == 5 and "changed my mind" in text and "Choose Other" not in text


class _Confirms(HTMLParser):
    """Collects the (HTML-decoded) data-confirm questions of a page, as the browser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.questions: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.questions += [v or "" for k, v in attrs if k == "data-confirm"]
        self.inline += [k for k, _ in attrs if k.startswith("on")]


def test_the_cancel_prompt_keeps_a_hostile_plan_name_a_string(app: Flask, world) -> None:
    name = """Gold's "Best" </script><script>alert(1)</script> ');alert(2);//"""
    world["plans"]["free"].name = name
    db.session.commit()
    subscription_in(world, S.SIGNED, "free")
    page = logged_in(app, world["user"]).get("/account/subscription/").text
    assert "<script>alert(1)" not in page
    parser = _Confirms()
    parser.feed(page)
    assert parser.questions == [f"End your subscription to {name}?"]
    assert parser.inline == []  # no inline handlers: the CSP allows scripts from /static only


def test_guest_sees_no_subscription_page(app: Flask, acme: Partner) -> None:
    guest = logged_in(app, make_user(acme, "g@acme.test", role=Role.GUEST))
    assert guest.get("/account/subscription/").status_code == 403
    assert "Subscription" not in guest.get("/").text


def test_admin_pages(app: Flask, world) -> None:
    admin = logged_in(app, world["admin"])
    sub = subscription_in(world, S.SIGNED, "free")
    listing = admin.get("/admin/subscriptions/").text
    assert "b@acme.test" in listing and "1 subscription (all but ended)." in listing
    past_the_end = admin.get("/admin/subscriptions/?page=7").text
    assert "1 subscription (all but ended)." in past_the_end and "b@acme.test" not in past_the_end
    no_reason = admin.post_form(f"/admin/subscriptions/{sub.id}/suspend", {"reason": ""})
    assert "Give a reason" in admin.get(no_reason.headers["Location"]).text
    admin.post_form(f"/admin/subscriptions/{sub.id}/suspend", {"reason": "fraud check"})
    assert rows(Subscription, id=sub.id)[0].state == S.SUSPENDED
    assert "signed" in admin.get("/admin/subscriptions/?state=suspended").text
    bulk = admin.post_form("/admin/subscriptions/bulk", {"action": "resume", "ids": [sub.id, 999]})
    assert "1 of 2 done" in bulk.text and "No such subscription." in bulk.text
    assert rows(Subscription, id=sub.id)[0].state == S.SIGNED
    missing = admin.post_form("/admin/subscriptions/bulk", {"action": "suspend", "ids": [sub.id]})
    assert missing.status_code == 422


def test_plan_admin_validation(app: Flask, world) -> None:
    admin = logged_in(app, world["admin"])
    good = {
        "name": "Gold",
        "code": "gold",
        "price": "12.50",
        "currency": "eur",
        "interval": "month",
        "allowed_roles": ["advanced"],
        "entitlements": ["reports"],
        "position": "3",
    }
    for field, value, message in [
        ("code", "Bad Code!", "lowercase letters"),
        ("code", "free", "already exists"),
        ("price", "lots", "as a number"),
        ("currency", "EURO", "three-letter"),
        ("interval", "weekly", "how often"),
        ("allowed_roles", [], "at least one role"),
        ("entitlements", ["teleport"], "Unknown feature"),
    ]:
        response = admin.post_form("/admin/plans/new", {**good, field: value})
        assert response.status_code == 422 and message in response.text, field
    assert len(rows(Plan)) == 4
    assert admin.post_form("/admin/plans/new", good).status_code == 302
    gold = next(p for p in rows(Plan) if p.code == "gold")
    assert (gold.price_cents, gold.currency, gold.price_label) == (1250, "EUR", "12.50 EUR / month")
    admin.post_form(f"/admin/plans/{gold.id}/archive")
    assert rows(Plan, id=gold.id)[0].status == PlanStatus.ARCHIVED


def test_other_partner_sees_and_touches_nothing(app: Flask, world, globex: Partner) -> None:
    sub = subscription_in(world, S.SIGNED, "free")
    gadmin = logged_in(app, make_user(globex, "admin@globex.test", role=Role.ADMIN))
    guser = logged_in(app, make_user(globex, "u@globex.test", role=Role.BASIC))
    free = world["plans"]["free"]
    assert "b@acme.test" not in gadmin.get("/admin/subscriptions/").text
    assert "Free" not in gadmin.get("/admin/plans/").text
    for action in ("suspend", "end", "resume"):
        assert (
            gadmin.post_form(f"/admin/subscriptions/{sub.id}/{action}", {"reason": "x"}).status_code
            == 404
        )
    assert gadmin.get(f"/admin/plans/{free.id}/edit").status_code == 404
    assert guser.post_form("/account/subscription/start", {"plan_id": free.id}).status_code == 404
    assert guser.post_form(f"/account/subscription/{sub.id}/cancel").status_code == 404
    assert rows(Subscription, id=sub.id)[0].state == S.SIGNED
    assert len(rows(Subscription)) == 1


def test_command_line_moves_go_through_the_same_machine(
    data: Flask, world, globex: Partner
) -> None:
    from portal.audit.models import AuditEvent

    sub = subscription_in(world, S.SIGNED, "free")
    make_user(globex, "admin@globex.test", role=Role.ADMIN)
    runner = data.test_cli_runner()

    def cli(*args: str):
        return runner.invoke(args=["subscription", *args])

    listing = cli("list", "acme", "--state", "signed")
    assert listing.exit_code == 0 and "b@acme.test" in listing.output and "free" in listing.output
    assert "No subscriptions." in cli("list", "globex").output

    no_reason = cli("move", "acme", str(sub.id), "suspend", "--as", "root@acme.test")
    assert no_reason.exit_code != 0 and "Give a reason" in no_reason.output
    not_admin = cli("move", "acme", str(sub.id), "suspend", "--as", "b@acme.test", "--reason", "x")
    assert not_admin.exit_code != 0 and "may not manage" in not_admin.output
    foreign = cli("move", "globex", str(sub.id), "end", "--as", "admin@globex.test")
    assert foreign.exit_code != 0 and f"No subscription {sub.id} in globex" in foreign.output
    assert rows(Subscription, id=sub.id)[0].state == S.SIGNED

    done = cli(
        "move", "acme", str(sub.id), "suspend", "--as", "ROOT@acme.test", "--reason", "unpaid"
    )
    assert done.exit_code == 0, done.output
    assert rows(Subscription, id=sub.id)[0].state == S.SUSPENDED
    event = rows(SubscriptionEvent, subscription_id=sub.id)[-1]
    assert (event.to_state, event.reason) == (S.SUSPENDED, "unpaid (command line)")
    audit = [e for e in rows(AuditEvent) if e.action == "subscription.suspended"]
    assert len(audit) == 1 and audit[0].actor_label == "root@acme.test"
    history = cli("history", "acme", str(sub.id)).output
    assert "signed -> suspended" in history and "unpaid (command line)" in history


def test_admin_list_empty_states(app: Flask, world) -> None:
    admin = logged_in(app, world["admin"])
    assert "No subscriptions yet" in admin.get("/admin/subscriptions/").text
    filtered = admin.get("/admin/subscriptions/?state=suspended").text
    assert "No subscriptions match these filters." in filtered

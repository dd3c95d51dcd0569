"""The portal's Prometheus metrics, correct under several gunicorn workers.

With `PROMETHEUS_MULTIPROC_DIR` set (gunicorn.conf.py sets it) prometheus-client keeps each
process's values in files there and `/metrics` adds them up; without it (tests, `flask run`)
they live in the process. Labels are bounded: endpoints and statuses, the partner's tier
(never one series per partner), results from a fixed list.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "portal_requests",
    "HTTP requests answered, by endpoint, status and partner tier.",
    ["endpoint", "method", "status", "tier"],
)
LATENCY = Histogram(
    "portal_request_duration_seconds",
    "Time from the request's start to its answer, by endpoint and partner tier.",
    ["endpoint", "tier"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SIGN_INS = Counter("portal_sign_ins", "Sign-in attempts by who and result.", ["kind", "result"])
THROTTLED = Counter(
    "portal_throttled", "Requests refused by a rate limit, by what was limited.", ["limit"]
)
SUBSCRIPTION_TRANSITIONS = Counter(
    "portal_subscription_transitions", "Subscription moves, by the state reached.", ["to"]
)
AUDIT_EVENTS = Counter("portal_audit_events", "Audit events recorded, by area.", ["area"])
MAIL = Counter(
    "portal_mail_deliveries",
    "Delivery attempts by the mail worker, by result (sent, retry, failed).",
    ["result"],
)
DB_POOL_IN_USE = Gauge(
    "portal_db_pool_connections_in_use",
    "Database connections checked out of the pools, all live workers together.",
    multiprocess_mode="livesum",
)

# Audit actions that are sign-ins, and the result each one means.
SIGN_IN_ACTIONS = {
    "auth.login": ("user", "success"),
    "auth.login_failed": ("user", "failed"),
    "auth.login_throttled": ("user", "throttled"),
    "session.limit_denied": ("user", "session_limit"),
    "operator.login": ("operator", "success"),
    "operator.login_failed": ("operator", "failed"),
    "operator.login_throttled": ("operator", "throttled"),
}
THROTTLE_ACTIONS = {
    "auth.login_throttled": "sign_in",
    "operator.login_throttled": "sign_in",
    "account.signup_limited": "mail",
    "invitation.limited": "invitation",
}


def audit_recorded(action: str) -> None:
    """Count what an audit event says happened, once its transaction committed (see
    `portal/audit/services.py`): a refused, rolled-back action counts nothing."""
    area = action.split(".", 1)[0]
    AUDIT_EVENTS.labels(area=area[:40]).inc()
    if action in SIGN_IN_ACTIONS:
        kind, result = SIGN_IN_ACTIONS[action]
        SIGN_INS.labels(kind=kind, result=result).inc()
    if action in THROTTLE_ACTIONS:
        THROTTLED.labels(limit=THROTTLE_ACTIONS[action]).inc()
    if area == "subscription" and action != "subscription.terms_accepted":
        SUBSCRIPTION_TRANSITIONS.labels(to=action.split(".", 1)[1][:40]).inc()


def request_answered(endpoint: str, method: str, status: int, tier: str, seconds: float) -> None:
    REQUESTS.labels(endpoint=endpoint, method=method, status=str(status), tier=tier).inc()
    LATENCY.labels(endpoint=endpoint, tier=tier).observe(seconds)

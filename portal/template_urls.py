"""`url_for` in templates, remembered per host for the links a page repeats.

A page's header, menus and footer name the same two dozen endpoints on every request, and a
list names one endpoint per row with the row's id; building each through Werkzeug's map (with
the partner's URL default) was a tenth of a page's time. Without arguments the answer depends
only on the app's URL map and the host the request came in on (its scheme, name and script
root, which also fix the partner's subdomain), so each process keeps it per (host, endpoint).
With one whole-number argument (`user_id=user.id`) the address is built once with a marker
number in its place and kept as the text around it: an integer is written the same way
wherever it goes in a URL. When every value goes to the query string (a list's sorting,
pages and filters) it is the kept address and the values encoded as Werkzeug encodes them.
Anything else (a value of the rule, `_external`, `_anchor`, an endpoint relative to the
current blueprint, no request) goes to Flask's own `url_for`. `row_links` gives a list's row
links from the kept pattern without a lookup per row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import flask
from flask import Flask, current_app, g, has_request_context, request

_MEMO = "portal_template_urls"
_RULES = "portal_template_url_rules"
_HOST = "portal_host_url"
# Hosts are the partners' and the root domain's; a flood of made-up Host headers only ever
# empties the map (a refused host builds nothing: it raises before anything is kept).
LIMIT = 10_000
# Built in place of the one number, then cut out: no id is ever this large.
MARKER = 918_273_645_546_372_819
_NO_PATTERN = ("",)


def url_for(endpoint: str, **values: Any) -> str:
    if endpoint.startswith(".") or not has_request_context():
        return flask.url_for(endpoint, **values)
    if not values:
        return _remembered((request_host_url(), endpoint), endpoint)
    if len(values) == 1:
        ((name, value),) = values.items()
        if type(value) is int and value >= 0 and not name.startswith("_"):
            around = _pattern(endpoint, name)
            if around is not _NO_PATTERN:
                return f"{around[0]}{value}{around[1]}"
    if _query_only(endpoint, values):
        # A list's links (its sorting, pages, filters): the page's address and a query
        # string, encoded as Werkzeug encodes it.
        base = _remembered((request_host_url(), endpoint), endpoint)
        return f"{base}?{urlencode(list(values.items()), safe=QUERY_SAFE)}"
    return flask.url_for(endpoint, **values)


def row_links(endpoint: str, name: str) -> Callable[[int], str]:
    """`url_for(endpoint, **{name: number})` for each row of a list: the text around the
    number looked up once, not once a row (anything but a whole number goes to `url_for`)."""
    around = _NO_PATTERN
    if has_request_context() and not endpoint.startswith(".") and not name.startswith("_"):
        around = _pattern(endpoint, name)

    def link(number: int) -> str:
        if around is _NO_PATTERN or type(number) is not int or number < 0:
            return url_for(endpoint, **{name: number})
        return f"{around[0]}{number}{around[1]}"

    return link


# What Werkzeug leaves unescaped in a query string (werkzeug.urls._urlencode).
QUERY_SAFE = "!$'()*,/:;?@"


def _query_only(endpoint: str, values: dict[str, Any]) -> bool:
    """Whether `values` all go to the query string: plain values, none a part of the
    endpoint's one rule or one of its defaults, none Flask's own (`_external`, `_anchor`)."""
    if current_app.url_map.sort_parameters:
        return False
    taken = _rule_names(endpoint)
    return taken is not None and all(
        type(value) in (str, int) and name not in taken and not name.startswith("_")
        for name, value in values.items()
    )


def _rule_names(endpoint: str) -> frozenset[str] | None:
    """The arguments and defaults of the endpoint's rule; None when it has several rules
    (Werkzeug picks one by the values) or none."""
    memo: dict[str, frozenset[str] | None] = current_app.extensions[_RULES]
    if endpoint not in memo:
        rules = list(current_app.url_map.iter_rules(endpoint)) if _known(endpoint) else []
        memo[endpoint] = (
            frozenset(rules[0].arguments) | frozenset(rules[0].defaults or ())
            if len(rules) == 1
            else None
        )
    return memo[endpoint]


def _known(endpoint: str) -> bool:
    return endpoint in current_app.view_functions


def _remembered(key: tuple[str, ...], endpoint: str) -> Any:
    memo: dict[tuple[str, ...], Any] = current_app.extensions[_MEMO]
    found = memo.get(key)
    if found is None:
        found = flask.url_for(endpoint)
        if len(memo) >= LIMIT:
            memo.clear()
        memo[key] = found
    return found


def _pattern(endpoint: str, name: str) -> tuple[str, ...]:
    """The address of `endpoint` with `name` left out: the text before and after it."""
    memo: dict[tuple[str, ...], Any] = current_app.extensions[_MEMO]
    key = (request_host_url(), endpoint, name)
    found = memo.get(key)
    if found is None:
        parts = tuple(flask.url_for(endpoint, **{name: MARKER}).split(str(MARKER)))
        found = parts if len(parts) == 2 else _NO_PATTERN
        if len(memo) >= LIMIT:
            memo.clear()
        memo[key] = found
    return found


def request_host_url() -> str:
    """The request's scheme, host and script root, worked out once per request."""
    host_url = g.get(_HOST)
    if host_url is None:
        host_url = g.setdefault(_HOST, request.host_url)
    return host_url


def init_app(app: Flask) -> None:
    app.extensions[_MEMO] = {}
    app.extensions[_RULES] = {}
    app.jinja_env.globals["url_for"] = url_for

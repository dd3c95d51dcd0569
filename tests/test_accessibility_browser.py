"""axe-core on every main page of both demo partners and the root domain, at 1280x800 and at
390x844 (a phone): no critical or serious violation, and no control past the edge of the
screen. (Issue 16; the keyboard-only journeys are in test_feedback_browser.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from browser import LiveServer
from pages import (
    AUDIT_LOG,
    AXE_CONTEXT,
    DESKTOP,
    PHONE,
    SIDEBAR,
    axe_source,
    off_screen,
    open_as,
    open_page,
    partner_pages,
    root_pages,
    seed,
    serious_violations,
    sidebar_pages,
)

pytestmark = pytest.mark.browser
WIDE_BY_DESIGN = {"/admin/roles/", "/admin/roles/transitions"}


def check_pages(
    browser: Any, server: LiveServer, slug: str | None, pages: dict[str, list[str]], viewport
) -> dict[str, list[dict[str, Any]]]:
    source = axe_source()
    base = server.url(slug, "").rstrip("/")
    found: dict[str, list[dict[str, Any]]] = {}
    for email, paths in pages.items():
        context = browser.new_context(viewport=viewport, **AXE_CONTEXT)
        context.set_default_timeout(15_000)
        context.add_init_script(source)  # axe on every page, without parsing it per page
        page = context.new_page()
        if email:
            open_as(page, base, email)
        for path in paths:
            wrong = open_page(page, base, path)
            problems = serious_violations(page, source)
            if wrong:
                problems.append({"id": "not-the-page", "impact": "serious", "nodes": wrong})
            # The role pages are matrices (roles by permissions, roles by roles): on a phone
            # they scroll sideways inside their table, by design.
            cut_off = [] if path in WIDE_BY_DESIGN else off_screen(page)
            if cut_off:
                problems.append({"id": "off-screen", "impact": "serious", "nodes": cut_off[:4]})
            if problems:
                found[f"{email or 'visitor'} {path}"] = problems
        context.close()
    return found


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
@pytest.mark.parametrize(
    "slug", ["acme", "globex", SIDEBAR, None], ids=["acme", "globex", SIDEBAR, "root"]
)
def test_no_serious_accessibility_violations(
    live_server: LiveServer, browser: Any, slug: str | None, viewport: dict[str, int]
) -> None:
    ids = seed(live_server.server.app)
    if slug is None:
        pages = root_pages(ids)
    elif slug == SIDEBAR:
        pages = sidebar_pages(ids)
    else:
        pages = partner_pages(ids, slug)
    found = check_pages(browser, live_server, slug, pages, viewport)
    assert found == {}, report(found)


def report(found: dict[str, list[dict[str, Any]]]) -> str:
    """One line per page and rule, with the first elements at fault."""
    return "\n".join(
        f"{where}: {v['impact']} {v['id']}: {' | '.join(v['nodes'])}"
        for where, problems in found.items()
        for v in problems
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_the_audit_log_page(live_server: LiveServer, browser: Any, viewport) -> None:
    seed(live_server.server.app)
    pages = {"admin@acme.test": [AUDIT_LOG]}
    found = check_pages(browser, live_server, "acme", pages, viewport)
    assert found == {}, report(found)

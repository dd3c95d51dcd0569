"""Browser-test support: the system Chromium driven by Playwright against a live server."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    candidate = os.environ.get("PORTAL_CHROMIUM") or "/usr/bin/chromium"
    return candidate if os.path.exists(candidate) else shutil.which("chromium")


class LiveServer:
    """A real HTTP server on a free port, in a thread, serving one app instance."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        app.config["SERVER_NAME"] = f"localhost:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, slug: str | None = None, path: str = "/") -> str:
        host = f"{slug}.localhost" if slug else "localhost"
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


def signed_in(browser: Any, server: LiveServer, email: str, password: str, slug: str = "acme"):
    """A page in a fresh browser context (a device of its own), signed in on `slug`'s host."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(server.url(slug, "/login"))
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(server.url(slug, "/"))
    return page


def declining_dialogs(page: Any) -> list[str]:
    """Answer every confirm() on `page` with Cancel; the list fills with the questions asked."""
    questions: list[str] = []

    def decline(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", decline)
    return questions


@pytest.fixture
def live_server(make_app: Any, data: Flask) -> Iterator[LiveServer]:
    with LiveServer(make_app(fresh=True)) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        reason = "Chromium not found (set PORTAL_CHROMIUM or install Debian's chromium)"
        if os.environ.get("PORTAL_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"{reason}, and PORTAL_REQUIRE_CHROMIUM=1", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright  # only browser tests pay for it

    expect.set_options(timeout=10_000)  # as the contexts' default: room for a loaded CI machine

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()

"""Profile one page of the demo: its SQL statements and where the time goes.

    .venv/bin/python benchmarks/profile_page.py [path] [email] [requests]
    .venv/bin/python benchmarks/profile_page.py /admin/users/ admin@acme.test 500

Builds the demo in a throw-away SQLite database, signs in through the login form, prints the
statements one request sends, then profiles `requests` requests with cProfile (top functions
by cumulative time, and the portal's own functions).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

from flask_migrate import upgrade
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal import create_app
from portal.demo.seed import DEMO_PASSWORD, seed_demo
from portal.extensions import db


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "/"
    email = sys.argv[2] if len(sys.argv) > 2 else "admin@acme.test"
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    slug = email.split("@")[1].split(".")[0]
    url = os.environ.get("PORTAL_PROFILE_DATABASE_URL") or (
        f"sqlite:///{Path(tempfile.mkdtemp()) / 'profile.sqlite3'}"
    )
    app = create_app(
        {
            "PORTAL_ENV": "development",
            "SERVER_NAME": "localhost",
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "profile-secret-key-kT9-x2Qa7LmPz0Rv_4WbYc8NdE5fGh1J",
            "PASSWORD_HASH_PROFILE": "cheapest",
            "ANSWER_FLOOR": 0,
        }
    )
    with app.app_context():
        upgrade()
        seed_demo()
        db.session.commit()
    client = app.test_client()
    base = f"http://{slug}.localhost"
    page = client.get("/login", base_url=base).text
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    answer = client.post(
        "/login",
        data={"email": email, "password": DEMO_PASSWORD, "csrf_token": token},
        base_url=base,
    )
    assert answer.status_code == 302, answer.text
    client.get(path, base_url=base)  # warm: templates compiled, caches filled

    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    response = client.get(path, base_url=base)
    print(f"GET {path} as {email}: {response.status_code}, {len(statements)} statement(s)")
    for i, statement in enumerate(statements, 1):
        print(f"  {i}. {' '.join(statement.split())[:1500]}")
    event.remove(engine, "before_cursor_execute", record)

    started = time.perf_counter()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        client.get(path, base_url=base)
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"\n{count} requests under cProfile: {elapsed / count * 1000:.2f} ms each")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(45)
    print(out.getvalue())
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(r"portal/", 40)
    print(out.getvalue())


if __name__ == "__main__":
    main()

"""Time the users search (the count and the first page) on a copy of the SQLite scale dataset,
before and after the trigram index (migration 0017), for the large partner and a small one.

    cp instance/bench/scale-<key>.sqlite3 /tmp/copy.sqlite3   # built by `make bench`
    .venv/bin/python benchmarks/user_search.py /tmp/copy.sqlite3

The copy is upgraded in place to the newest migration (which builds the index). "Before" is
the plain LIKE search (the index switched off); "after" is the search as it is. Each figure
is the median of 9 runs of `search_users`, in the partner's scope, after one warm-up run:
wall-clock and CPU milliseconds.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from flask_migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.tenancy.models import Partner  # noqa: E402
from portal.tenancy.scope import partner_scope  # noqa: E402
from portal.users import search  # noqa: E402
from portal.users.queries import UserQuery, search_users  # noqa: E402

TEXTS = {"few": "user0500", "none": "nomatch-anywhere", "many": "person", "some": "person 7"}
RUNS = 9


def timed(text: str) -> tuple[str, int]:
    """Median wall-clock and CPU milliseconds of the count and the first page, and the count.

    On a machine shared with other work the wall clock counts their time too; the process's
    CPU time (SQLite runs in the process) does not.
    """
    query = UserQuery.from_args({"q": text})
    search_users(query)  # warm-up
    wall, cpu = [], []
    for _ in range(RUNS):
        started, used = time.perf_counter(), time.process_time()
        page = search_users(query)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
        db.session.rollback()
    return f"{statistics.median(wall):.1f} / {statistics.median(cpu):.1f}", page.total


def main() -> None:
    path = Path(sys.argv[1]).resolve()
    app = create_app(
        {
            "PORTAL_ENV": "testing",
            "SECRET_KEY": "bench-search-secret-key-kT9-x2Qa7LmPz0Rv_4WbYc8NdE",
            "SERVER_NAME": "localhost",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
            "DATABASE_STATEMENT_TIMEOUT": 600,
        }
    )
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        plain = search.indexed
        print(
            "| partner | search | matches | before (LIKE): ms wall / CPU | after: ms wall / CPU |"
        )
        print("|---|---|---|---|---|")
        for slug in ("big", "p001"):
            partner = db.session.execute(db.select(Partner).filter_by(slug=slug)).scalar_one()
            with partner_scope(partner):
                for label, text in TEXTS.items():
                    search.indexed = lambda _text: False
                    before, total = timed(text)
                    search.indexed = plain
                    after, again = timed(text)
                    assert total == again, (text, total, again)
                    print(f"| {slug} | `{text}` ({label}) | {total:,} | {before} | {after} |")
        db.engine.dispose()


if __name__ == "__main__":
    main()

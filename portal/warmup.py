"""What a served process does once, before its first request: `warm(app)`.

gunicorn loads the app in its master process (`preload_app`, gunicorn.conf.py) and calls this
there, before it forks a worker: every worker, and every worker that replaces one after
`max_requests`, starts with what it would otherwise work out on its first requests.

- Every template, under every base theme, compiled. A new worker's first request to a page
  spent 20-170 ms compiling its templates (a page is several: the page, its base, the header's
  pieces), and the requests queued behind it waited as long.
- ua-parser's rules read (a third of a second, on the first request that names a device).
- Every object made so far moved out of the garbage collector's sight (`gc.freeze`): the app's
  modules, compiled templates and rules are a few hundred thousand long-lived objects that a
  full collection walked every few hundred requests, stopping the request that triggered it
  for about 100 ms. Frozen, a full collection walks only what requests made since: 2-3 ms.
  It also leaves the frozen objects' memory shared between the workers, unwritten.
- No database connection kept: one made here (the start-up check of row-level security)
  would be shared by every forked worker, their statements interleaved on one socket.
"""

from __future__ import annotations

import gc
import logging
import time

from flask import Flask

from portal.extensions import db
from portal.sessions.devices import load_rules
from portal.theming import every_template

log = logging.getLogger("portal.warmup")


def warm(app: Flask) -> None:
    started = time.perf_counter()
    load_rules()
    templates = every_template(app)
    for name in templates:
        app.jinja_env.get_template(name)
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()
    gc.collect()
    gc.freeze()
    log.info(
        "warmed up: %d templates compiled, %d objects frozen, in %.0f ms",
        len(templates),
        gc.get_freeze_count(),
        (time.perf_counter() - started) * 1000,
    )

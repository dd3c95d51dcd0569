"""gunicorn settings for production: `make serve`, or `gunicorn -c gunicorn.conf.py wsgi:app`.

Everything the portal needs comes from `PORTAL_*` variables (docs/deployment.md); the few
knobs here read `GUNICORN_*` ones. The portal writes its own JSON line per request on stderr
(portal/observability.py), so gunicorn's access log stays off unless asked for.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Synchronous workers, (2 * cores) + 1: a request holds one database connection while it runs,
# and every database wait is bounded by the portal's own timeouts (3 s statement, 2 s lock,
# 3 s pool, 2 s connect: a stuck request answers 503 in under 10 s).
workers = int(_number("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
# Longer than the worst bounded request (pool wait + connect + statement + answer floor), so a
# worker is killed only when something unbounded hangs.
timeout = int(_number("GUNICORN_TIMEOUT", 30))
# SIGTERM: finish the requests in flight (each commits or rolls back whole), then exit.
graceful_timeout = int(_number("GUNICORN_GRACEFUL_TIMEOUT", 20))
keepalive = 5
# A worker is replaced after this many requests (with jitter, so not all at once).
max_requests = int(_number("GUNICORN_MAX_REQUESTS", 10_000))
max_requests_jitter = max_requests // 10
# The app is loaded once, in the master, and warmed there (`when_ready` below): each worker,
# and each that replaces one, is a fork that starts with its templates compiled. New code is
# therefore read by a restart, not by a HUP (which would fork the old code again).
preload_app = True
limit_request_line = 8190
# No control socket shared with other deployments on the machine (gunicorn ≥ 23 has none
# by default; nothing here opens one). The temporary heartbeat files stay in memory.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The app's JSON line on stderr is the access log; GUNICORN_ACCESSLOG=- adds gunicorn's own,
# in JSON too (request id and host, never the query string: tokens live there).
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
access_log_format = json.dumps(
    {
        "time": "%(t)s",
        "logger": "gunicorn.access",
        "method": "%(m)s",
        "path": "%(U)s",
        "status": "%(s)s",
        "duration_ms": "%(M)s",
        "request_id": "%({x-request-id}o)s",
        "host": "%({host}i)s",
        "ip": "%(h)s",
    }
)
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# A proxy in front (nginx): it forwards X-Forwarded-*; the portal believes them only as far as
# PORTAL_PROXY_FIX says, so gunicorn itself believes none.
forwarded_allow_ips = ""
proxy_allow_ips = ""

# Prometheus multiprocess mode: every worker writes its metrics to files in this directory and
# /metrics adds them up. It must exist before the master imports the portal (preload_app),
# and is emptied once that is done (on_starting): a worker writes its own files, named by its
# pid, from its first request on.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if not _metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="portal-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
os.makedirs(_metrics_dir, exist_ok=True)


def on_starting(server) -> None:
    """A fresh directory at every start: counters from a previous run must not add up."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    else:
        os.makedirs(directory, exist_ok=True)
    # Imported now, once, in the arbiter: a first import inside child_exit could be cut short
    # by a second worker's SIGCHLD, whose handler re-entered the half-imported package and
    # stopped the arbiter with an ImportError (exit status 1 on a plain SIGTERM). Not at the
    # top of this file: the package reads PROMETHEUS_MULTIPROC_DIR when first imported.
    import prometheus_client.multiprocess  # noqa: F401


def when_ready(server) -> None:
    """In the master, the app loaded (preload_app), before the first worker is forked: the
    portal warms up (portal/warmup.py). Another app served with this file (the benchmark's
    baseline) has nothing to warm."""
    app = server.app.wsgi()
    if hasattr(app, "warm"):
        app.warm()


def child_exit(server, worker) -> None:
    """A worker that exits takes its live gauges (pool in use) with it."""
    from prometheus_client import multiprocess  # imported by on_starting already

    multiprocess.mark_process_dead(worker.pid)

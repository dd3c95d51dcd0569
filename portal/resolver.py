"""Name lookups with a deadline: the system resolver retries for seconds on its own, so a
caller that must answer in time waits only as long as it can spare.

The lookup runs on one of RESOLVER_THREADS threads per process. One that runs late finishes
there in the background; while every thread is held by late lookups, the next waits its
time in the queue and is then dropped, never started.
"""

from __future__ import annotations

import socket
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

RESOLVER_THREADS = 4

_pool = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="portal-resolve")


def resolve(host: str, port: int, timeout: float) -> list[str]:
    """The addresses of `host` (each once, in the resolver's order), within `timeout`
    seconds: `TimeoutError` after that; `OSError` or `UnicodeError` for a name that fails."""
    return addresses(lookup(host, port), timeout)


def lookup(host: str, port: int) -> Future[Any]:
    """Start looking `host` up (several names at once: start each, then wait for each)."""
    return _pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)


def addresses(found: Future[Any], timeout: float) -> list[str]:
    """What a `lookup` found, waited for at most `timeout` seconds (as `resolve`)."""
    try:
        infos = found.result(timeout=max(timeout, 0))
    except TimeoutError:
        found.cancel()  # still queued: never started
        raise
    return list(dict.fromkeys(str(info[4][0]) for info in infos))

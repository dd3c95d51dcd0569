"""`make bench`: the portal's pages against the bare stack, under gunicorn, driven by wrk.

For SQLite, and for PostgreSQL when PORTAL_BENCH_DATABASE_URL names a server (a role that may
create roles and databases), this builds the scale dataset once (`benchmarks/scale.py`), serves
the portal (`wsgi:app`, production settings, the app's role held to row-level security on
PostgreSQL) and the baseline app (`benchmarks/baseline_app.py`) under gunicorn with two sync
workers each, and drives each page with wrk at concurrency 1 and 8, every page run right
after a run of the baseline, so each ratio compares two runs a few seconds apart.

    PORTAL_BENCH_QUICK=1        3-second runs instead of 10 (a smoke test of the whole thing)
    PORTAL_BENCH_SCALE=0.01     a hundredth of the dataset (to try the benchmark itself out)
    PORTAL_BENCH_DURATION=N     N-second runs
    PORTAL_BENCH_PORT=N         the portal on N, the baseline on N+1 (default 5113)
    PORTAL_BENCH_DATABASE_URL   also PostgreSQL
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scale import (  # noqa: E402
    BIG_ADMIN_TOKEN,
    Dataset,
    admin_token,
    postgres_dataset,
    sqlite_dataset,
)

QUICK = os.environ.get("PORTAL_BENCH_QUICK") == "1"
DURATION = int(os.environ.get("PORTAL_BENCH_DURATION") or (3 if QUICK else 10))
PORT = int(os.environ.get("PORTAL_BENCH_PORT") or 5113)
CONCURRENCY = (1, 8)
WORKERS = 2
COOKIE = "__Host-portal_auth"  # the production cookie names: signed in,
SESSION_COOKIE = "__Host-portal"  # and the session's (CSRF secret, flashed messages)
BIN = Path(sys.executable).parent
# (label, partner, path): the pages of the table, the large partner's user search and
# audit log, and a small partner's pages to compare the large one with.
PAGES = [
    ("home (large partner)", "big", "/"),
    ("/account/sessions/", "big", "/account/sessions/"),
    ("/account/subscription/", "big", "/account/subscription/"),
    ("/admin/users/", "big", "/admin/users/"),
    ("/admin/audit/", "big", "/admin/audit/"),
    ("user search (large)", "big", "/admin/users/?q=user0500"),
    ("audit log filtered (large)", "big", "/admin/audit/?action=auth.login"),
    ("home (small partner)", "p001", "/"),
    ("/admin/users/ (small)", "p001", "/admin/users/"),
]
TOKENS = {"big": admin_token("big"), "p001": admin_token("p001")}
BASELINE_COOKIES = f"{COOKIE}={BIG_ADMIN_TOKEN}"  # the baseline sets none of its own


def missing_tools() -> list[str]:
    problems = []
    if shutil.which("wrk") is None:
        problems.append("wrk (Debian/Ubuntu: sudo apt-get install wrk)")
    if not (BIN / "gunicorn").exists():
        problems.append(f"gunicorn in {BIN} (pip install -e '.[bench]')")
    return problems


def serve(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", *argv],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn on port {port} stopped; see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except urllib.error.HTTPError:
            return process  # it answers (the baseline has no /healthz)
        except OSError:
            time.sleep(0.3)
    stop(process)
    raise SystemExit(f"gunicorn on port {port} did not answer within 60 s; see {log}")


def drained(port: int) -> None:
    """Wait until requests wrk left queued have been answered: the next run starts clean."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = time.monotonic()
        with contextlib.suppress(OSError):  # a refused host (400) is an answer too
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        if time.monotonic() - started < 0.5:
            return


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def fetch(port: int, host: str, path: str, cookies: str) -> tuple[int, str]:
    status, body, _set = _get(port, host, path, cookies)
    return status, body


def _get(port: int, host: str, path: str, cookies: str) -> tuple[int, str, list[str]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": host, "Cookie": cookies}
    )
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return (
                response.status,
                response.read().decode(),
                response.headers.get_all("Set-Cookie") or [],
            )
    except urllib.error.HTTPError as exc:
        return exc.code, "", []


def browser_cookies(port: int, host: str, token: str) -> str:
    """The cookies a signed-in browser sends: the sign-in cookie and, from its first page on,
    the session cookie the portal set on it (the secret its forms' CSRF tokens are made
    from). Without it every request would be a browser's first, minting and signing a new
    secret and setting the cookie again."""
    signed_in = f"{COOKIE}={token}"
    _status, _body, set_cookies = _get(port, host, "/", signed_in)
    for header in set_cookies:
        name, _, rest = header.partition("=")
        if name == SESSION_COOKIE:
            return f"{signed_in}; {SESSION_COOKIE}={rest.split(';', 1)[0]}"
    raise SystemExit(f"the portal's home page at {host} set no {SESSION_COOKIE} cookie")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * UNITS[unit]


def wrk(port: int, host: str, path: str, cookies: str, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{DURATION}s",
            "--latency",
            "--timeout",
            "10s",  # a slow page is measured as slow, not dropped after wrk's default 2 s
            "-H",
            f"Host: {host}",
            "-H",
            f"Cookie: {cookies}",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
        "errors": errors + (int(non_2xx.group(1)) if non_2xx else 0),
    }


def run(dataset: Dataset) -> list[dict]:
    logs = ROOT / "instance" / "bench"
    portal_host = f"localhost:{PORT}"
    portal_env = {
        "PORTAL_ENV": "production",
        "PORTAL_SECRET_KEY": "bench-secret-key-kT9-x2Qa7LmPz0Rv_4WbYc8NdE5fGh1JzQ",
        "PORTAL_SERVER_NAME": portal_host,
        "PORTAL_DATABASE_URL": dataset.url,
        "PORTAL_LOG_LEVEL": "WARNING",
    }
    portal = serve(
        ["wsgi:app"],
        portal_env,
        PORT,
        logs / f"portal-{dataset.backend}.log",
    )
    baseline = None
    try:
        cookies = {
            slug: browser_cookies(PORT, f"{slug}.{portal_host}", token)
            for slug, token in TOKENS.items()
        }
        status, home = fetch(PORT, f"big.{portal_host}", "/", cookies["big"])
        if status != 200 or "Welcome" not in home:
            raise SystemExit(f"the portal's home page answered {status}, not the signed-in page")
        baseline_env = {
            "BASELINE_DATABASE_URL": dataset.baseline_url,
            "BASELINE_PAGE_BYTES": str(len(home.encode())),
            "BASELINE_COOKIE": COOKIE,
        }
        baseline = serve(
            ["benchmarks.baseline_app:app"],
            baseline_env,
            PORT + 1,
            logs / f"baseline-{dataset.backend}.log",
        )
        for label, slug, path in PAGES:
            for _ in range(20):  # both workers warm: templates compiled, caches filled
                status, _page = fetch(PORT, f"{slug}.{portal_host}", path, cookies[slug])
                if status != 200:
                    raise SystemExit(f"{label} ({path}) answered {status}")
        for _ in range(20):
            fetch(PORT + 1, "localhost", "/", BASELINE_COOKIES)
        results = []
        for connections in CONCURRENCY:
            for label, slug, path in PAGES:
                base = wrk(PORT + 1, "localhost", "/", BASELINE_COOKIES, connections)
                page = wrk(PORT, f"{slug}.{portal_host}", path, cookies[slug], connections)
                drained(PORT)
                results.append(
                    {
                        "backend": dataset.backend,
                        "page": label,
                        "c": connections,
                        **page,
                        "baseline_rps": base["rps"],
                        "baseline_p99": base["p99"],
                        "ratio": page["rps"] / base["rps"] if base["rps"] else 0.0,
                    }
                )
                print(_row(results[-1]), flush=True)
        return results
    finally:
        stop(portal)
        if baseline is not None:
            stop(baseline)


HEADER = (
    "| database | page | c | req/s | p50 ms | p99 ms | errors | baseline req/s"
    " | portal/baseline |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def _row(r: dict) -> str:
    return (
        f"| {r['backend']} | {r['page']} | {r['c']} | {r['rps']:,.0f} | {r['p50']:.1f} | "
        f"{r['p99']:.1f} | {r['errors']:.0f} | {r['baseline_rps']:,.0f} | {r['ratio']:.2f} |"
    )


def main() -> None:
    problems = missing_tools()
    if problems:
        print("make bench needs, and installs nothing itself:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(2)
    started = datetime.now(UTC)
    datasets = [sqlite_dataset()]
    if os.environ.get("PORTAL_BENCH_DATABASE_URL"):
        datasets.append(postgres_dataset(os.environ["PORTAL_BENCH_DATABASE_URL"]))
    print(f"\n{DURATION}-second wrk runs, gunicorn -w {WORKERS} (sync) for both apps")
    print(HEADER, flush=True)
    results = []
    for dataset in datasets:
        results += run(dataset)
    print(
        f"\n{started:%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    print(HEADER)
    for r in results:
        print(_row(r))
    out = ROOT / "instance" / "bench" / "results.json"
    out.write_text(json.dumps({"started": started.isoformat(), "results": results}, indent=1))
    print(f"\n(also in {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()

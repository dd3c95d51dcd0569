"""The import contracts (`make lint` runs import-linter) cover every package there is."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def contract(name: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [found] = [c for c in config["tool"]["importlinter"]["contracts"] if c["name"] == name]
    return found


def packages() -> set[str]:
    return {f"portal.{p.parent.name}" for p in (ROOT / "portal").glob("*/__init__.py")}


def test_the_foundation_is_forbidden_every_capability_package() -> None:
    """A new capability package is forbidden to the foundation from its first commit."""
    rule = contract("The foundation knows no capability")
    foundation = set(rule["source_modules"])
    forgotten = packages() - foundation - set(rule["forbidden_modules"])
    assert forgotten == set(), f"add to the foundation contract in pyproject.toml: {forgotten}"


def test_every_service_module_has_its_layer() -> None:
    rule = contract("Services are layered: the higher may use the lower, never the reverse")
    layered = {m.strip() for layer in rule["layers"] for m in layer.split(":")}
    services = {f"portal.{p.parent.name}.services" for p in (ROOT / "portal").glob("*/services.py")}
    assert services - layered == set(), "add these to the layers contract in pyproject.toml"

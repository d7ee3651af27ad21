"""requirements.lock, the pinned set `make venv` installs, against pyproject.toml's ranges.

pyproject.toml stays the one list of what the project needs; the lock only pins it. When someone
widens or adds a dependency and forgets `make lock`, this fails, naming the package, before an
install on a fresh machine quietly differs from the one the tests ran on.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]*))?"
)


def _pins() -> dict[str, list[tuple[str, str | None, int]]]:
    """Every `name==version` of the lock, with its marker and how many hashes follow it."""
    pins: dict[str, list[tuple[str, str | None, int]]] = {}
    current: list | None = None
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            marker = (match["marker"] or "").strip() or None
            current = [match["version"], marker, 0]
            pins.setdefault(canonicalize_name(match["name"]), []).append(current)  # type: ignore[arg-type]
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            current[2] += 1
    return {name: [tuple(entry) for entry in entries] for name, entries in pins.items()}  # type: ignore[misc]


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [
        Requirement(text)
        for text in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = _pins()
    environment = default_environment()
    problems = []
    for requirement in _declared():
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        entries = pins.get(canonicalize_name(requirement.name), [])
        applicable = [
            version
            for version, marker, _ in entries
            if marker is None or Requirement(f"x; {marker}").marker.evaluate(environment)
        ]
        if not applicable:
            problems.append(f"{requirement.name}: not in requirements.lock")
        for version in applicable:
            if not requirement.specifier.contains(version, prereleases=True):
                problems.append(f"{requirement.name}=={version} is outside {requirement.specifier}")
    assert not problems, "run `make lock`: " + "; ".join(problems)


def test_every_pin_carries_hashes():
    unhashed = [name for name, entries in _pins().items() for _, _, hashes in entries if not hashes]
    assert not unhashed, f"pins without --hash (pip --require-hashes refuses them): {unhashed}"


def test_the_makefile_installs_from_the_lock_with_hashes_required():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--require-hashes -r $(LOCK)" in makefile
    assert "--no-deps -e ." in makefile

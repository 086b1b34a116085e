"""constraints.txt (scripts/lock) pins every package this environment installs, at versions
within pyproject.toml's ranges, and the environment the tests run in holds exactly those
versions: the test command and CI install from the lock."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

#: Installed by the virtual environment itself or the project: never pinned.
UNPINNED = {"nexus-gateway", "pip", "setuptools", "wheel"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def pins() -> dict[str, Version]:
    pinned: dict[str, Version] = {}  # by canonical name
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"not a pin: {line!r}"
        name = canonicalize_name(match[1])
        assert name not in pinned, f"{name} pinned twice"
        pinned[name] = Version(match[2])
    return pinned


def requirements() -> list[Requirement]:
    with (REPO / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        found += [Requirement(text) for text in extra]
    return [r for r in found if canonicalize_name(r.name) != "nexus-gateway"]


def test_every_dependency_is_pinned_within_its_range() -> None:
    pinned = pins()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not in constraints.txt: run scripts/lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside {requirement}: run scripts/lock"
        )


def test_the_test_environment_holds_exactly_the_pinned_versions() -> None:
    pinned = pins()
    installed: dict[str, Version] = {
        canonicalize_name(dist.metadata["Name"]): Version(dist.version)
        for dist in metadata.distributions()
    }
    unpinned = sorted(set(installed) - set(pinned) - UNPINNED)
    assert unpinned == [], "installed but not in constraints.txt: run scripts/lock"
    differ = {
        name: (str(installed[name]), str(version))
        for name, version in pinned.items()
        if name in installed and installed[name] != version
    }
    assert differ == {}, "installed (left) differs from constraints.txt (right)"
    missing = sorted(set(pinned) - set(installed))
    assert missing == [], "pinned but not installed: scripts/bootstrap installs from the lock"


def test_the_lock_is_sorted_and_says_how_it_was_made() -> None:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    assert "scripts/lock" in lines[1]
    names = [line.split("==")[0].lower() for line in lines if "==" in line]
    assert names == sorted(names)

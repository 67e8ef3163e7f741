"""requirements.lock covers what pyproject.toml asks for, at versions its ranges allow, each with hashes."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from lock_install import lock_entries, pins_only  # noqa: E402
from refresh_lock import UNLOCKED, pins  # noqa: E402


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_requirement_is_pinned_within_its_range():
    project = _project()
    locked = pins((ROOT / "requirements.lock").read_text())
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for reqs in project.get("optional-dependencies", {}).values() for r in reqs]
    problems = []
    for req in wanted:
        name = _norm(req.name)
        if name in UNLOCKED:
            continue
        if name not in locked:
            problems.append(f"{req.name} is not in requirements.lock")
        elif not req.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{req.name}=={locked[name]} is outside pyproject's range {req.specifier}")
    assert not problems, "refresh the lock: bash scripts/setup_env.sh --newest\n" + "\n".join(problems)


def test_dev_extra_holds_every_other_extra():
    """The lock is compiled for the dev extra, so every other extra must be part of it."""
    extras = _project().get("optional-dependencies", {})
    dev = {_norm(Requirement(r).name) for r in extras.get("dev", [])}
    for extra, reqs in extras.items():
        missing = {_norm(Requirement(r).name) for r in reqs} - dev - {"corrsteer"}
        assert not missing, f"extra {extra!r} has {sorted(missing)} that the dev extra (and so the lock) lacks"


def test_every_pin_carries_hashes():
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements.lock").read_text())
    entries = [b for b in blocks if "==" in b.split("\n", 1)[0]]
    assert len(entries) > 50
    assert all("--hash=sha256:" in b for b in entries), [b.split()[0] for b in entries if "--hash" not in b]
    assert "torch==" not in (ROOT / "requirements.lock").read_text()  # installed first, by build


def test_install_reads_every_entry_of_the_lock():
    text = (ROOT / "requirements.lock").read_text()
    entries = lock_entries(text)
    assert set(entries) == set(pins(text))
    assert all(entry.count("--hash=sha256:") >= 1 for entry in entries.values())
    plain = pins(pins_only(text))
    assert plain == pins(text) and "--hash" not in pins_only(text)

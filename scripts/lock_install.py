"""Install corrsteer (editable) with the extras asked for, at the versions and hashes of requirements.lock.

pip will not install an editable project in hash-checking mode, and a constraints file with hashes turns that mode
on, so the install goes in three steps:
1. ask pip which distributions the project and its extras still need under the lock's pins (a dry run: nothing
   is installed; what is already installed at its pinned version is not needed again);
2. install those of them that the lock holds, from the lock's own lines, with ``--require-hashes``;
3. install the project itself (editable) under the same pins; this also fills in anything the lock lacks on
   another platform (pinned where the lock names it).
Called by scripts/setup_env.sh; torch is installed before this and is not in the lock.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", re.MULTILINE)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(text: str) -> dict[str, str]:
    """name -> the lock's whole entry for it (the pin line, its hashes and annotations)."""
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    out = {}
    for block in blocks:
        match = _NAME.match(block)
        if match:
            out[_norm(match[1])] = block.rstrip() + "\n"
    return out


def pins_only(text: str) -> str:
    """The lock as plain ``name==version`` constraints (no hashes)."""
    return "".join(f"{m[0]}{_version(text, m.start())}\n" for m in _NAME.finditer(text))


def _version(text: str, start: int) -> str:
    line = text[start:].split("\n", 1)[0]
    return line.split("==", 1)[1].split()[0].rstrip("\\").strip()


def _pip(*args: str, capture: bool = False) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return done.stdout or ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lock", default="requirements.lock")
    parser.add_argument("--extras", default="")
    args = parser.parse_args()
    text = (ROOT / args.lock).read_text()
    target = f".[{args.extras}]" if args.extras else "."
    with tempfile.TemporaryDirectory() as folder:
        pins = Path(folder) / "pins.txt"
        pins.write_text(pins_only(text))
        report = Path(folder) / "report.json"
        _pip("install", "--quiet", "--dry-run", "--report", str(report), "-c", str(pins), "-e", target)
        wanted = {_norm(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}
        entries = lock_entries(text)
        hashed = Path(folder) / "hashed.txt"
        hashed.write_text("".join(entries[name] for name in sorted(wanted) if name in entries))
        missing = sorted(wanted - set(entries) - {"corrsteer", "torch"})
        if missing:
            print(f"not in the lock (installed at the newest allowed version): {', '.join(missing)}")
        if hashed.read_text():
            _pip("install", "--quiet", "--require-hashes", "--no-deps", "-r", str(hashed))
        _pip("install", "--quiet", "-c", str(pins), "-e", target)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except subprocess.CalledProcessError as error:  # pip has said what went wrong above
        print(f"lock_install: pip failed (exit {error.returncode}); nothing else was installed", file=sys.stderr)
        raise SystemExit(1) from None

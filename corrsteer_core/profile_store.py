"""The profile library under ``cache/profiles/``: save by name, list, find by name or path.

The only place profile names become file names, for the CLI and the app alike.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from corrsteer_core import storage
from corrsteer_core.errors import ProfileError, valid_choices
from corrsteer_core.profile import SteeringProfile, load_profile

__all__ = [
    "find_profile",
    "list_saved_profiles",
    "profile_file_name",
    "profiles_dir",
    "save_named_profile",
    "saved_profiles",
    "unique_profile_name",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 120


def profiles_dir() -> Path:
    folder = storage.cache_root() / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def profile_file_name(name: str) -> str:
    """The library name of ``name``: letters, digits, '.', '_' and '-' (runs of anything else become '-')."""
    cleaned = _UNSAFE.sub("-", str(name).strip()).strip("-.")[:_MAX_NAME]
    if not cleaned:
        raise ProfileError(f"profile name {name!r} has no usable characters (letters, digits, '.', '_', '-')")
    return cleaned


def saved_profiles() -> dict[str, Path]:
    """Saved profile files by library name, newest first."""
    paths = sorted(profiles_dir().glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return {p.stem: p for p in paths}


def unique_profile_name(name: str) -> str:
    """``name`` made a library name that no saved profile has yet (``name-2``, ``name-3`` … when taken)."""
    base = profile_file_name(name)
    taken = set(saved_profiles())
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base[: _MAX_NAME - 1 - len(str(n))]}-{n}"
    return candidate


def save_named_profile(profile: SteeringProfile, name: str | None = None, *, replace: bool = True) -> Path:
    """Save under cache/profiles/<name>.json (the profile's own name by default); returns the path.

    With ``replace=False`` an existing profile of that name is kept and ProfileError says so.
    """
    path = profiles_dir() / f"{profile_file_name(name or profile.name or 'profile')}.json"
    if not replace and path.exists():
        raise ProfileError(f"a profile named {path.stem!r} is already saved; choose another name or replace it")
    return profile.save(path)


def list_saved_profiles() -> list[dict[str, Any]]:
    """Name, path and headline facts of each saved profile; unreadable files are listed with their error."""
    rows = []
    for name, path in saved_profiles().items():
        row: dict[str, Any] = {"name": name, "path": str(path), "preset": None, "task": None, "variant": None}
        try:
            p = load_profile(path)
            row.update(
                preset=p.preset,
                task=p.provenance.task_name,
                variant=p.provenance.variant,
                layers=len(p.enabled),
                error=None,
            )
        except ProfileError as exc:
            row.update(layers=0, error=str(exc))
        rows.append(row)
    return rows


def find_profile(name_or_path: str | Path) -> SteeringProfile:
    """A profile file, or a saved profile by name."""
    path = Path(name_or_path)
    if path.is_file():
        return load_profile(path)
    saved = saved_profiles()
    try:
        known = saved.get(profile_file_name(str(name_or_path)))
    except ProfileError:
        known = None
    if known is not None:
        return load_profile(known)
    raise ProfileError(
        f"no profile file or saved profile named {str(name_or_path)!r}. Saved: {valid_choices(saved)}"
    )

"""The only module that writes under ``cache/``: cache locations and atomic writes.

Every artefact is written to a temporary sibling and renamed into place, so an interrupted command leaves either
the old file or the new one, never half of one. Directories (a converted model, an SAE) are built in a temporary
sibling directory and renamed as a whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corrsteer_core.errors import CacheCorruptError, LockedError
from corrsteer_core.limits import loads_json

if TYPE_CHECKING:  # torch is imported where tensors are written, so `import corrsteer_core.tasks` stays light
    import torch

__all__ = [
    "atomic_directory",
    "atomic_save_tensors",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "cache_path",
    "cache_root",
    "exclusive_lock",
    "load_tensors",
    "project_root",
    "read_json",
]

_PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path | None:
    """The source checkout holding this package, if it is run from one (has pyproject.toml)."""
    root = _PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None


def cache_root() -> Path:
    """Where artefacts live: ``$CORRSTEER_CACHE``, else the checkout's ``cache/``, else ``~/.cache/corrsteer``."""
    env = os.environ.get("CORRSTEER_CACHE")
    if env:
        root = Path(env).expanduser()
    elif (checkout := project_root()) is not None:
        root = checkout / "cache"
    else:
        root = Path.home() / ".cache" / "corrsteer"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_path(*parts: str) -> Path:
    """A path under the cache root (parent directories are created, the path itself is not)."""
    path = cache_root().joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any, indent: int | None = 2) -> Path:
    text = json.dumps(data, indent=indent, sort_keys=False, allow_nan=False, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")


def atomic_save_tensors(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> Path:
    """Save tensors as safetensors atomically (tensors are made contiguous and moved to CPU)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ready = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        save_file(ready, tmp, metadata=dict(metadata) if metadata else None)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling; it replaces ``path`` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block; LockedError at once, naming the
    holder ("pid 123 (since 10:04:05)"), if another process (or another open of it in this one) holds it.

    The lock is the kernel's (``flock``), so it dies with the process that held it: a process killed with -9
    leaves no stale lock behind, only the file, which the next holder reuses. The file tells who holds it.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise LockedError(handle.read().strip() or "another process") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} (since {time.strftime('%H:%M:%S')})")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_json(path: Path, advice: str = "delete it and run again to rebuild it") -> Any:
    """Read a JSON file written by corrsteer; a file that cannot be parsed raises CacheCorruptError, whose
    message ends with ``advice`` (what rebuilds that file: callers whose file cannot be rebuilt alone say so)."""
    path = Path(path)
    try:
        return loads_json(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CacheCorruptError(f"{path} is corrupt ({exc}); {advice}") from exc


def load_tensors(path: Path, advice: str = "delete it and run again to rebuild it") -> dict[str, torch.Tensor]:
    """Load a safetensors file; a truncated or invalid file raises CacheCorruptError (see :func:`read_json`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CacheCorruptError(f"{path} is corrupt ({exc}); {advice}") from exc

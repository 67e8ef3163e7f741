"""One exception family for the whole library.

Every error raised on purpose by corrsteer derives from :class:`CorrSteerError`; its message says what was
wrong and, where there is a finite set of valid values, lists them. Anything else escaping the library is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CacheCorruptError",
    "CancelledError",
    "CollectionError",
    "ConfigError",
    "CorrSteerError",
    "DataSourceError",
    "EmbeddedModelMissingError",
    "ExplanationError",
    "HookError",
    "HubUnavailableError",
    "LayerOutOfRangeError",
    "LockedError",
    "PresetNotFoundError",
    "ProfileError",
    "SAEShapeError",
    "SelectionError",
    "TaskError",
    "valid_choices",
]


def valid_choices(values: Iterable[object], limit: int = 20) -> str:
    """Format a list of valid values for an error message (truncated after ``limit``)."""
    items = [str(v) for v in values]
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f", ... ({len(items) - limit} more)"
    return shown or "(none)"


class CorrSteerError(Exception):
    """Base class of every error corrsteer raises on purpose."""


class ConfigError(CorrSteerError, ValueError):
    """A configuration value is invalid."""


class PresetNotFoundError(ConfigError):
    """No preset with that name."""


class LayerOutOfRangeError(ConfigError):
    """A layer index is outside the model's layers."""


class SAEShapeError(CorrSteerError):
    """An SAE does not fit the model (width mismatch, wrong hook site...)."""


class EmbeddedModelMissingError(CorrSteerError):
    """The package carrying the embedded default model is not installed."""


class CacheCorruptError(CorrSteerError):
    """A file under cache/ exists but cannot be read."""


class HubUnavailableError(CorrSteerError):
    """A preset needs the Hugging Face hub and it cannot be reached."""


class HookError(CorrSteerError):
    """A hook name cannot be resolved to a module of the model."""


class TaskError(CorrSteerError):
    """A task is unknown or misconfigured."""


class DataSourceError(TaskError):
    """A dataset file or hub id cannot be read."""


class ProfileError(CorrSteerError):
    """A steering profile is invalid or does not match the loaded model/SAEs."""


class CollectionError(CorrSteerError):
    """Activation collection failed or a checkpoint does not match the run."""


class SelectionError(CorrSteerError):
    """Feature selection is impossible with the given statistics or settings."""


class CancelledError(CorrSteerError):
    """Long work was cancelled by the user; checkpoints written so far are kept."""


class LockedError(CorrSteerError):
    """Another process is working on the same cache entry (a run being collected); the message says which."""


class ExplanationError(CorrSteerError):
    """A feature explanation could not be obtained."""

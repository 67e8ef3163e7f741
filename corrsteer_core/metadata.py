"""Typed records of where results come from: a collection run's metadata and a profile's provenance.

Both are stored as JSON (``cache/runs/<id>/run.json``, and the ``provenance`` of every profile file) and read
back only through these frozen dataclasses, so every module reads the same fields the same way, and a profile's
provenance that arrives from a file is validated before anything uses it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Self

from corrsteer_core.config import CollectConfig, SelectConfig
from corrsteer_core.errors import ConfigError, ProfileError, valid_choices
from corrsteer_core.experiment import Experiment

__all__ = ["RUN_ID_PATTERN", "Provenance", "RunIdentity", "RunMeta", "SearchSummary", "TaskInfo"]

RUN_STATUSES = ("running", "complete")
# what a run id may be (runs.run_id_for makes them): it names a folder, so never a path
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,120}")


def _mapping(what: str, data: Any, cls: type) -> dict[str, Any]:
    """``data`` as a dict holding only ``cls``'s field names (ConfigError naming the valid keys otherwise)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"{what} has unknown keys {sorted(unknown)}. Valid keys are: {valid_choices(sorted(names))}"
        )
    return data


def _number(what: str, value: Any, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or (not integer and not math.isfinite(value)):
        raise ConfigError(f"{what} must be {'an integer' if integer else 'a finite number'}, got {value!r}")


@dataclass(frozen=True)
class TaskInfo:
    """What a run's task was, as it described itself when collected."""

    name: str
    description: str = ""
    kind: str = ""
    source: str | None = None
    max_new_tokens: int | None = None
    pooling: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        made = cls(**_mapping("task", data, cls))
        if not isinstance(made.name, str):
            raise ConfigError(f"task name must be text, got {made.name!r}")
        return made


@dataclass(frozen=True)
class RunIdentity:
    """Everything that determines a run's statistics; its hash is the run id (see runs.run_id_for)."""

    preset: str
    dtype: str
    fingerprints: dict[str, str]  # layer (as text) -> SAE weight fingerprint
    task: str
    source: str | None
    items: tuple[str, ...]
    collect: CollectConfig

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "items": list(self.items), "collect": self.collect.to_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        data = _mapping("run identity", data, cls)
        return cls(**{**data, "items": tuple(data["items"]), "collect": CollectConfig.from_dict(data["collect"])})


@dataclass(frozen=True)
class RunMeta:
    """A collection run's ``run.json``."""

    run_id: str
    identity: RunIdentity
    task: TaskInfo
    layers: tuple[int, ...]
    sae_ids: dict[int, str]
    sites: dict[int, str]  # hook name read per layer
    n_items: int
    n_batches: int
    status: str = "running"
    n_done: int = 0
    experiment: Experiment | None = None  # the task and split the items came from (None: given directly)
    strata: tuple[str, ...] = ()
    chat: bool = True
    versions: dict[str, str | None] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0

    @property
    def collect(self) -> CollectConfig:
        return self.identity.collect

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(
            identity=self.identity.to_dict(),
            task=dataclasses.asdict(self.task),
            layers=list(self.layers),
            sae_ids={str(k): v for k, v in self.sae_ids.items()},
            sites={str(k): v for k, v in self.sites.items()},
            strata=list(self.strata),
        )
        data.pop("experiment")
        data["split"] = self.experiment.to_dict() if self.experiment is not None else {}
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            raise ConfigError(f"run metadata must be a mapping, got {type(data).__name__}")
        data = dict(data)
        split = data.pop("split", None)
        made = cls(
            **{
                **_mapping("run metadata", data, cls),
                "identity": RunIdentity.from_dict(data["identity"]),
                "task": TaskInfo.from_dict(data["task"]),
                "layers": tuple(int(v) for v in data["layers"]),
                "sae_ids": {int(k): str(v) for k, v in data["sae_ids"].items()},
                "sites": {int(k): str(v) for k, v in data["sites"].items()},
                "strata": tuple(data.get("strata", ())),
                "experiment": Experiment.from_dict(split) if split else None,
            }
        )
        if made.status not in RUN_STATUSES:
            raise ConfigError(f"run status {made.status!r} is not one of {', '.join(RUN_STATUSES)}")
        return made


@dataclass(frozen=True)
class SearchSummary:
    """Variant O's best configuration on the validation split."""

    objective: float
    accuracy: float
    pos: int
    neg: int
    unsteered_accuracy: float
    generations: int
    budget_exhausted: bool = False

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        made = cls(**_mapping("validation summary", data, cls))
        for name in ("objective", "accuracy", "unsteered_accuracy"):
            _number(f"validation {name}", getattr(made, name))
        for name in ("pos", "neg", "generations"):
            _number(f"validation {name}", getattr(made, name), integer=True)
        return made


@dataclass(frozen=True)
class Provenance:
    """How a profile was made: from which run and data, with which settings, and what validation kept."""

    run_id: str | None = None
    task: TaskInfo | None = None
    split: Experiment | None = None
    n_selection: int | None = None
    n_correct: int | None = None
    select: SelectConfig | None = None
    collect: CollectConfig | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    source: str = "features"  # or the control it was built as (random-directions, shuffled-labels, ...)
    n_validation: int | None = None  # P and O: validation items judged
    kept_layers: tuple[int, ...] | None = None  # P: layers that beat unsteered alone
    validation: SearchSummary | None = None  # O: the chosen configuration on validation

    @property
    def variant(self) -> str | None:
        return self.select.variant if self.select is not None else None

    @property
    def task_name(self) -> str | None:
        return self.task.name if self.task is not None else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if hasattr(value, "to_dict"):
                value = value.to_dict()
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)  # type: ignore[arg-type]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Provenance:
        """Validated reading of a stored provenance (ProfileError naming what is wrong)."""
        try:
            return cls._read(data)
        except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"the profile's provenance cannot be read: {exc}") from exc

    @classmethod
    def _read(cls, data: Any) -> Provenance:
        if not isinstance(data, dict):
            raise ConfigError(f"it must be a mapping, got {type(data).__name__}")
        data = dict(data)
        # written before the search settings moved into select.optimize: the variant and O's settings stood apart
        variant, optimize = data.pop("variant", None), data.pop("optimize", None)
        select = dict(data.get("select") or {}) if data.get("select") is not None or variant else None
        if select is not None:
            select.update({"variant": variant} if variant else {}, **({"optimize": optimize} if optimize else {}))
        data = _mapping("provenance", data, cls)
        for name in ("run_id", "source"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise ConfigError(f"{name} must be text, got {data[name]!r}")
        if data.get("run_id") is not None and not RUN_ID_PATTERN.fullmatch(data["run_id"]):
            raise ConfigError(f"run_id may hold only letters, digits, '-' and '_', got {data['run_id']!r}")
        for name in ("n_selection", "n_correct", "n_validation"):
            if data.get(name) is not None:
                _number(name, data[name], integer=True)
        kept = data.get("kept_layers")
        versions = data.get("versions") or {}
        if not isinstance(versions, dict) or not all(isinstance(v, str | None) for v in versions.values()):
            raise ConfigError(f"versions must map package names to version texts, got {versions!r}")
        return cls(
            **{
                **data,
                "task": TaskInfo.from_dict(data["task"]) if data.get("task") is not None else None,
                "split": Experiment.from_dict(data["split"]) if data.get("split") else None,
                "select": SelectConfig.from_dict(select) if select is not None else None,
                "collect": CollectConfig.from_dict(data["collect"]) if data.get("collect") is not None else None,
                "versions": dict(versions),
                "kept_layers": tuple(_layer(v) for v in kept) if kept is not None else None,
                "validation": SearchSummary.from_dict(data["validation"]) if data.get("validation") else None,
            }
        )


def _layer(value: Any) -> int:
    _number("a kept layer", value, integer=True)
    return int(value)

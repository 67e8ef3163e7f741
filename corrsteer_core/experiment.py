"""Serializable task and split descriptions, so a profile's test split can be rebuilt exactly later.

A profile's provenance stores a :class:`TaskSpec` and a :class:`SplitSpec`; ``corrsteer evaluate`` (or the app)
resolves them to the same items again, whatever the steering seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from corrsteer_core.config import _DictMixin
from corrsteer_core.errors import ConfigError
from corrsteer_core.tasks import Task, TaskItem, TaskSplits, custom_task, get_task, split_task

__all__ = [
    "SplitSpec",
    "TaskSpec",
    "matching",
    "resolve_splits",
    "resolve_task",
    "specs_from_provenance",
    "split_record",
]


@dataclass(frozen=True)
class TaskSpec(_DictMixin):
    name: str
    source: str | None = None
    limit: int | None = None
    seed: int = 0  # generation seed of built-in tasks (not the split seed)
    custom: dict[str, Any] | None = None  # custom_task(**custom) for a user's CSV/JSONL
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitSpec(_DictMixin):
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    seed: int = 0
    # collect only on selection items whose metadata matches (e.g. {"label": "harmful"}: refusal features are
    # found on harmful requests, while validation and test keep both halves of a paired behaviour)
    select_where: dict[str, str] | None = None

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        if self.select_where is not None and (
            not isinstance(self.select_where, dict)
            or not all(isinstance(v, str) for v in self.select_where.values())
        ):
            raise ConfigError(f"select_where must map metadata keys to string values, got {self.select_where!r}")


def resolve_task(spec: TaskSpec) -> Task:
    if spec.custom is not None:
        return custom_task(**spec.custom)
    return get_task(spec.name, source=spec.source, limit=spec.limit, seed=spec.seed, **spec.options)


def matching(items: Sequence[TaskItem], where: dict[str, str]) -> tuple[TaskItem, ...]:
    """The items whose metadata has every ``key: value`` of ``where``."""
    return tuple(i for i in items if all(i.metadata.get(k) == v for k, v in where.items()))


def resolve_splits(task: Task, spec: SplitSpec) -> TaskSplits:
    splits = split_task(task, n_train=spec.n_train, n_val=spec.n_val, n_test=spec.n_test, seed=spec.seed)
    if not spec.select_where:
        return splits
    where = spec.select_where
    train = matching(splits.train, where)
    if not train:
        seen = {k: sorted({i.metadata.get(k, "") for i in splits.train}) for k in where}
        raise ConfigError(f"no selection item matches {where}; values present: {seen}")
    return dataclasses.replace(splits, train=train)


def split_record(task_spec: TaskSpec, split_spec: SplitSpec, splits: TaskSplits) -> dict[str, Any]:
    """What a run and its profiles remember about their data, enough to rebuild the same splits."""
    return {
        "task_spec": task_spec.to_dict(),
        "split_spec": split_spec.to_dict(),
        "sizes": {"train": len(splits.train), "validation": len(splits.validation), "test": len(splits.test)},
    }


def specs_from_provenance(provenance: dict[str, Any]) -> tuple[TaskSpec, SplitSpec]:
    """The task and split a profile was selected on (ConfigError when the profile does not say)."""
    split = provenance.get("split") or {}
    if "task_spec" not in split or "split_spec" not in split:
        raise ConfigError("this profile does not record its task and split; name them explicitly (--task ...)")
    return TaskSpec.from_dict(dict(split["task_spec"])), SplitSpec.from_dict(dict(split["split_spec"]))

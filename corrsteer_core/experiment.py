"""What a run is collected on and a profile is tested on: a task, how it is split, as serialisable data.

- :class:`TaskSpec` names a task: a built-in task or benchmark (with options), or a user's table
  (:class:`CustomTable`, the arguments of :func:`corrsteer_core.tasks.custom_task`).
- :class:`SplitSpec` says how its items are split into selection / validation / test, and which selection items
  are collected on.
- :class:`Experiment` is both, plus the split sizes once built. The app's Run page and the CLI's ``--task``
  arguments produce one; every run stores it in its metadata and every profile in its provenance, so
  ``corrsteer evaluate`` and a reopened app session rebuild exactly the same items later.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from corrsteer_core.config import POOLINGS, _DictMixin
from corrsteer_core.errors import ConfigError, TaskError
from corrsteer_core.limits import check_new_tokens
from corrsteer_core.tasks import Task, TaskItem, TaskSplits, custom_task, get_task, split_task

__all__ = ["CustomTable", "Experiment", "SplitSpec", "TaskSpec", "matching"]


def _text(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise TaskError(f"{name} must be a non-empty text, got {value!r}")


@dataclass(frozen=True)
class CustomTable(_DictMixin):
    """How a user's CSV/JSONL/... file maps onto a task."""

    path: str
    answer_column: str
    scorer: str = "contains"
    prompt_column: str | None = None
    template: str | None = None
    choices_column: str | None = None
    max_new_tokens: int = 32
    pooling: str = "max"
    metadata_columns: tuple[str, ...] = ()
    scorer_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _text("the task file's path", self.path)
        _text("the answer column (--answer-column)", self.answer_column)
        for name in ("prompt_column", "template", "choices_column"):
            _text(name, getattr(self, name), optional=True)
        if (self.prompt_column is None) == (self.template is None):
            raise TaskError("give exactly one of a prompt column (--prompt-column) or a template (--template)")
        if self.pooling not in POOLINGS:
            raise TaskError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        check_new_tokens(self.max_new_tokens)
        columns = self.metadata_columns
        if not isinstance(columns, tuple) or not all(isinstance(c, str) for c in columns):
            raise TaskError(f"metadata columns must be column names, got {self.metadata_columns!r}")
        if not isinstance(self.scorer_options, dict):
            raise TaskError(f"scorer options must be a mapping of names to values, got {self.scorer_options!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = {k: v for k, v in data.items() if k != "name"}  # older runs repeated the task's name here
        return super().from_dict(data)


@dataclass(frozen=True)
class TaskSpec(_DictMixin):
    """A built-in task or benchmark by name (with its options), or a user's table."""

    name: str
    source: str | None = None  # benchmarks: a local file/folder or hub id instead of the default source
    limit: int | None = None  # read at most this many items
    seed: int = 0  # generation seed of built-in tasks (not the split seed)
    options: dict[str, Any] = field(default_factory=dict)  # task-specific, e.g. {"digits": 3}
    custom: CustomTable | None = None

    def __post_init__(self) -> None:
        _text("the task name", self.name)
        if not isinstance(self.options, dict):
            raise TaskError(f'task options must be a mapping such as {{"digits": 3}}, got {self.options!r}')
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise TaskError(f"limit must be a positive integer, got {self.limit!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        custom = data.get("custom")
        made = super().from_dict({k: v for k, v in data.items() if k != "custom"})
        if custom is None:
            return made
        if not isinstance(custom, dict):
            raise TaskError(f"a custom task must be described by a mapping, got {custom!r}")
        return dataclasses.replace(made, custom=CustomTable.from_dict(custom))

    @property
    def key(self) -> str:
        """A stable text of this spec (cache keys)."""
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    def build(self) -> Task:
        """The task this spec names (TaskError / DataSourceError with a readable message otherwise)."""
        if self.custom is None:
            return get_task(self.name, source=self.source, limit=self.limit, seed=self.seed, **self.options)
        c = self.custom
        if not Path(c.path).is_file():
            raise TaskError(f"the file of task {self.name!r} is gone ({c.path}); give it again")
        return custom_task(
            c.path,
            name=self.name,
            prompt_column=c.prompt_column,
            template=c.template,
            answer_column=c.answer_column,
            scorer=c.scorer,
            choices_column=c.choices_column,
            max_new_tokens=c.max_new_tokens,
            pooling=c.pooling,
            metadata_columns=c.metadata_columns,
            scorer_options=c.scorer_options,
        )


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
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        if self.select_where is not None and (
            not isinstance(self.select_where, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in self.select_where.items())
        ):
            raise ConfigError(f"select_where must map metadata keys to string values, got {self.select_where!r}")

    def resolve(self, task: Task) -> TaskSplits:
        splits = split_task(task, n_train=self.n_train, n_val=self.n_val, n_test=self.n_test, seed=self.seed)
        if not self.select_where:
            return splits
        train = matching(splits.train, self.select_where)
        if not train:
            seen = {k: sorted({i.metadata.get(k, "") for i in splits.train}) for k in self.select_where}
            raise ConfigError(f"no selection item matches {self.select_where}; values present: {seen}")
        return dataclasses.replace(splits, train=train)


def matching(items: Sequence[TaskItem], where: dict[str, str]) -> tuple[TaskItem, ...]:
    """The items whose metadata has every ``key: value`` of ``where``."""
    return tuple(i for i in items if all(i.metadata.get(k) == v for k, v in where.items()))


@dataclass(frozen=True)
class Experiment:
    """A task and its split (and, once built, the split sizes): what runs and profiles remember of their data."""

    task_spec: TaskSpec
    split_spec: SplitSpec = field(default_factory=SplitSpec)
    sizes: dict[str, int] = field(default_factory=dict)  # train / validation / test, filled by build()

    def build(self) -> tuple[Task, TaskSplits]:
        task = self.task_spec.build()
        return task, self.split_spec.resolve(task)

    def with_sizes(self, splits: TaskSplits) -> Experiment:
        sizes = {"train": len(splits.train), "validation": len(splits.validation), "test": len(splits.test)}
        return dataclasses.replace(self, sizes=sizes)

    @property
    def label(self) -> str:
        t, s = self.task_spec, self.split_spec
        kind = "uploaded" if t.custom else "built-in"
        counts = "/".join("all" if n is None else str(n) for n in (s.n_train, s.n_val, s.n_test))
        where = "".join(f", selected on {k}={v}" for k, v in (s.select_where or {}).items())
        return f"{t.name} ({kind}; {counts}, seed {s.seed}{where})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_spec": self.task_spec.to_dict(),
            "split_spec": self.split_spec.to_dict(),
            "sizes": self.sizes,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Experiment:
        if not isinstance(data, dict) or "task_spec" not in data or "split_spec" not in data:
            raise ConfigError(
                "this record does not say which task and split it was made on (task_spec, split_spec)"
            )
        if not isinstance(data["task_spec"], dict) or not isinstance(data["split_spec"], dict):
            raise ConfigError("task_spec and split_spec must be mappings")
        sizes = data.get("sizes") or {}
        if not isinstance(sizes, dict) or not all(isinstance(v, int) for v in sizes.values()):
            raise ConfigError(f"split sizes must map split names to counts, got {sizes!r}")
        try:
            return cls(TaskSpec.from_dict(data["task_spec"]), SplitSpec.from_dict(data["split_spec"]), dict(sizes))
        except TypeError as exc:  # a value of the wrong kind where a constructor expected another
            raise ConfigError(f"the task or split description cannot be read ({exc})") from exc

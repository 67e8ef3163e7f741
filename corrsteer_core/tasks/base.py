"""The data model of a task: items, scores, scorers and the task itself.

A task bundles everything CorrSteer needs to turn a model's behaviour into a binary label: the prompts
(already formatted), how many tokens to generate, how to pool activations over them, and the scorer that
judges each generation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from corrsteer_core.errors import ConfigError, TaskError, valid_choices
from corrsteer_core.limits import check_prompt_size

__all__ = [
    "KINDS",
    "POOLINGS",
    "Kind",
    "Pooling",
    "Score",
    "Scorer",
    "Task",
    "TaskInfo",
    "TaskItem",
]

Pooling = Literal["max", "mean"]
Kind = Literal["multiple_choice", "short_answer", "long_answer", "refusal"]
POOLINGS: tuple[str, ...] = ("max", "mean")
KINDS: tuple[str, ...] = ("multiple_choice", "short_answer", "long_answer", "refusal")


@dataclass(frozen=True)
class TaskItem:
    """One prompt with its gold answer.

    ``metadata`` values are always strings (converted on construction) so that strata and pairs can be
    compared and serialised without surprises. Items are hashable (by id, prompt and target).
    """

    id: str
    prompt: str
    target: str
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise TaskError("TaskItem.id must be a non-empty string")
        check_prompt_size(self.prompt, f"item {self.id!r}")
        # Lists sneak in from JSON and pandas; tuples keep the item immutable and comparable.
        object.__setattr__(self, "choices", tuple(str(c) for c in self.choices))
        object.__setattr__(self, "aliases", tuple(str(a) for a in self.aliases))
        object.__setattr__(self, "metadata", {str(k): str(v) for k, v in self.metadata.items()})

    def __hash__(self) -> int:
        # The metadata dict is not hashable; equal items always share these fields, so sets and dict keys work.
        return hash((self.id, self.prompt, self.target))


@dataclass(frozen=True)
class Score:
    """A scorer's verdict on one generation.

    ``span`` is the character range [start, end) of the extracted answer inside the generation, so that
    activations can later be pooled over the answer tokens only; ``None`` when there is nothing to point at.
    """

    correct: bool
    answer: str | None
    span: tuple[int, int] | None


@runtime_checkable
class Scorer(Protocol):
    """Judges one generation of one item. Implementations are pure functions of their inputs.

    ``name`` is read-only here so that frozen dataclasses (and plain attributes) both satisfy the protocol.
    """

    @property
    def name(self) -> str: ...

    def __call__(self, generation: str, item: TaskItem) -> Score: ...


@dataclass(frozen=True)
class TaskInfo:
    """What :func:`list_tasks` reports about a registered task."""

    name: str
    description: str
    kind: Kind
    needs_data: bool
    hub_id: str | None = None
    options: tuple[str, ...] = ()
    # paired behaviours: the half whose features are selected by default (validation and test keep both)
    select_where: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Task:
    """A behaviour to correlate with: items, generation length, pooling and scorer.

    ``extra_scorers`` are secondary measures of the same generations (e.g. the correctness of the number
    in the ``format`` task, whose main scorer judges compliance); they never drive selection by default.
    """

    name: str
    description: str
    items: tuple[TaskItem, ...]
    scorer: Scorer
    max_new_tokens: int
    pooling: Pooling
    kind: Kind
    source: str
    strata_keys: tuple[str, ...] = ()
    paired_key: str | None = None
    extra_scorers: tuple[Scorer, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "strata_keys", tuple(self.strata_keys))
        object.__setattr__(self, "extra_scorers", tuple(self.extra_scorers))
        if self.pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {self.pooling!r}; valid poolings are {valid_choices(POOLINGS)}")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown task kind {self.kind!r}; valid kinds are {valid_choices(KINDS)}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        _check_unique_ids(self.name, self.items)

    def __len__(self) -> int:
        return len(self.items)

    def with_items(self, items: Iterable[TaskItem]) -> Task:
        """The same task restricted to (or reordered as) ``items``."""
        return dataclasses.replace(self, items=tuple(items))

    def score(self, generation: str, item: TaskItem) -> Score:
        return self.scorer(generation, item)


def _check_unique_ids(task_name: str, items: tuple[TaskItem, ...]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise TaskError(f"task {task_name!r} has two items with id {item.id!r}; item ids must be unique")
        seen.add(item.id)

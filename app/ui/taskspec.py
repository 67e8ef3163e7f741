"""What the Run page asked for, as data: which task (built-in, benchmark or uploaded), how it is split.

A :class:`TaskSpec` is stored in each run's metadata (``split``), so a run reopened later rebuilds exactly the
same task and splits without the user filling the form again. Uploaded files are copied under
``cache/uploads/`` (named by content hash) for the same reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corrsteer_core import storage
from corrsteer_core.errors import TaskError

__all__ = ["CustomColumns", "TaskSpec", "save_upload"]

UPLOAD_SUFFIXES = (".csv", ".jsonl", ".json")


@dataclass(frozen=True)
class CustomColumns:
    """How an uploaded table maps onto a task (arguments of ``corrsteer_core.tasks.custom_task``)."""

    path: str
    answer_column: str
    scorer: str
    prompt_column: str | None = None
    template: str | None = None
    choices_column: str | None = None
    max_new_tokens: int = 32
    pooling: str = "max"
    metadata_columns: tuple[str, ...] = ()
    scorer_options: str = ""  # JSON object, e.g. '{"pattern": "#(\\d+)"}' for the regex scorer


@dataclass(frozen=True)
class TaskSpec:
    """A task and its train (selection) / validation / test split sizes and seed."""

    name: str
    n_train: int
    n_val: int
    n_test: int
    seed: int = 0
    source: str | None = None  # built-in tasks: a hub id or local file instead of the default source
    limit: int | None = None  # built-in tasks: read at most this many items
    options: str = ""  # built-in tasks: task-specific options as a JSON object, e.g. '{"digits": 3}'
    custom: CustomColumns | None = None
    # collect only on selection items with this metadata (a paired behaviour's half); validation/test keep all
    select_where: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        try:
            custom = data.get("custom")
            if custom is not None:
                custom = CustomColumns(**{**custom, "metadata_columns": tuple(custom.get("metadata_columns", ()))})
            where = tuple((str(k), str(v)) for k, v in data.get("select_where") or ())
            return cls(**{**data, "custom": custom, "select_where": where})
        except TypeError as exc:
            raise TaskError(f"this run's task description cannot be read ({exc})") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def label(self) -> str:
        kind = "uploaded" if self.custom else "built-in"
        where = "".join(f", selected on {k}={v}" for k, v in self.select_where)
        return f"{self.name} ({kind}; {self.n_train}/{self.n_val}/{self.n_test}, seed {self.seed}{where})"

    def parsed_options(self) -> dict[str, Any]:
        if not self.options.strip():
            return {}
        try:
            options = json.loads(self.options)
        except json.JSONDecodeError as exc:
            raise TaskError(f'task options must be a JSON object such as {{"digits": 3}}: {exc}') from exc
        if not isinstance(options, dict):
            raise TaskError(f'task options must be a JSON object such as {{"digits": 3}}, got {self.options!r}')
        return options

    def build_task(self) -> Any:
        """The core ``Task`` this spec names (raises TaskError / DataSourceError with a readable message)."""
        from corrsteer_core.tasks import custom_task, get_task

        if self.custom is None:
            # the data is fixed (seed 0): the split seed only decides which items land in which split
            return get_task(self.name, source=self.source, limit=self.limit, seed=0, **self.parsed_options())
        c = self.custom
        if not Path(c.path).is_file():
            raise TaskError(f"the uploaded file of task {self.name!r} is gone ({c.path}); upload it again")
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
            scorer_options=_json_object(c.scorer_options, "scorer options", '{"pattern": "(\\d+)"}'),
        )

    def core_specs(self) -> tuple[Any, Any]:
        """The same task and split as the core's serialisable specs (what the CLI reads from a profile)."""
        from corrsteer_core.experiment import SplitSpec
        from corrsteer_core.experiment import TaskSpec as CoreTaskSpec

        split = SplitSpec(
            n_train=self.n_train,
            n_val=self.n_val,
            n_test=self.n_test,
            seed=self.seed,
            select_where=dict(self.select_where) or None,
        )
        if self.custom is None:
            task = CoreTaskSpec(
                name=self.name, source=self.source, limit=self.limit, options=self.parsed_options()
            )
            return task, split
        c = self.custom
        custom = {
            "path": c.path,
            "name": self.name,
            "prompt_column": c.prompt_column,
            "template": c.template,
            "answer_column": c.answer_column,
            "scorer": c.scorer,
            "choices_column": c.choices_column,
            "max_new_tokens": c.max_new_tokens,
            "pooling": c.pooling,
            "metadata_columns": list(c.metadata_columns),
            "scorer_options": _json_object(c.scorer_options, "scorer options", '{"pattern": "(\\d+)"}'),
        }
        return CoreTaskSpec(name=self.name, custom=custom), split

    @classmethod
    def from_core(cls, task: dict[str, Any], split: dict[str, Any]) -> TaskSpec:
        """A run started from the command line, described in the app's terms."""
        sizes: dict[str, Any] = {k: int(split.get(k) or 0) for k in ("n_train", "n_val", "n_test")}
        sizes["select_where"] = tuple((str(k), str(v)) for k, v in (split.get("select_where") or {}).items())
        custom = task.get("custom")
        if custom is None:
            options = json.dumps(task.get("options") or {}) if task.get("options") else ""
            return cls(
                name=task["name"],
                seed=int(split.get("seed", 0)),
                source=task.get("source"),
                limit=task.get("limit"),
                options=options,
                **sizes,
            )
        columns = CustomColumns(
            path=custom["path"],
            answer_column=custom["answer_column"],
            scorer=custom["scorer"],
            prompt_column=custom.get("prompt_column"),
            template=custom.get("template"),
            choices_column=custom.get("choices_column"),
            max_new_tokens=int(custom.get("max_new_tokens", 32)),
            pooling=custom.get("pooling", "max"),
            metadata_columns=tuple(custom.get("metadata_columns") or ()),
            scorer_options=json.dumps(custom.get("scorer_options") or {}) if custom.get("scorer_options") else "",
        )
        return cls(name=task["name"], seed=int(split.get("seed", 0)), custom=columns, **sizes)

    def build_splits(self, task: Any) -> Any:
        from corrsteer_core.experiment import resolve_splits

        return resolve_splits(task, self.core_specs()[1])


def _json_object(text: str, what: str, example: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{what} must be a JSON object such as {example}: {exc}") from exc
    if not isinstance(value, dict):
        raise TaskError(f"{what} must be a JSON object such as {example}, got {text!r}")
    return value


def save_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded task file under cache/uploads/<sha>.<suffix> so runs can rebuild their task later."""
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise TaskError(f"cannot read {name!r}: upload a .csv, .jsonl or .json file")
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = storage.cache_path("uploads", f"{digest}{suffix}")
    if not path.is_file():
        storage.atomic_write_bytes(path, data)
    return path

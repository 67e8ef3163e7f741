"""Tasks from a user's own CSV/TSV/JSON/JSONL/Parquet file, read through the same loader as the benchmarks."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from corrsteer_core.errors import DataSourceError, TaskError, valid_choices
from corrsteer_core.limits import MAX_TASK_ROWS, check_at_most, check_new_tokens, check_prompt_size, loads_json
from corrsteer_core.tasks.base import POOLINGS, Kind, Pooling, Task, TaskItem
from corrsteer_core.tasks.formats import LETTERS, letters_for, multiple_choice_prompt
from corrsteer_core.tasks.scorers import SCORER_NAMES, get_scorer
from corrsteer_core.tasks.sources import FILE_BUILDERS, Row, load_files

__all__ = ["custom_task", "parse_options"]

_REFUSAL_SCORERS = ("refusal", "xstest", "refusal_pair")
_LONG_ANSWER_TOKENS = 128


def parse_options(value: Any) -> list[str]:
    """Options from a list, a JSON list string, or an ``"A|B|C"`` string."""
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = loads_json(text)
        except ValueError:  # not JSON (or nested too deep): read it as "A|B|C"
            parsed = None
        if isinstance(parsed, list):
            return [str(v) for v in parsed]
    return [part.strip() for part in text.split("|")]


def _read(path: Path) -> list[Row]:
    if not path.is_file():
        raise DataSourceError(f"custom task file {str(path)!r} does not exist")
    if path.suffix.lower() not in FILE_BUILDERS:
        raise DataSourceError(
            f"cannot read {path.name!r}: unsupported file type; valid types are {valid_choices(FILE_BUILDERS)}"
        )
    if path.stat().st_size == 0:
        raise DataSourceError(f"custom task file {str(path)!r} is empty")
    rows = load_files([path])  # checks size and encoding before reading
    if not rows:
        raise DataSourceError(f"custom task file {str(path)!r} has no rows")
    check_at_most(f"the number of rows of {path.name}", len(rows), MAX_TASK_ROWS, error=DataSourceError)
    return [{k: v for k, v in row.items() if k != "_file"} for row in rows]


def _check_columns(columns: Sequence[str], wanted: Sequence[tuple[str, str | None]], path: Path) -> None:
    for role, column in wanted:
        if column is not None and column not in columns:
            available = valid_choices(columns, 50)
            raise TaskError(f"{role} {column!r} is not a column of {path.name}; available columns are {available}")


def _template_fields(template: str) -> list[str]:
    try:
        parsed = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)]
    except ValueError as error:
        raise TaskError(f"invalid template {template!r}: {error}") from error
    fields = [name for name, _, _ in parsed if name is not None]
    if any(spec or conversion for name, spec, conversion in parsed if name is not None):
        # '{text:>999999999}' would pad each prompt to a gigabyte: placeholders only name columns
        raise TaskError(f"template {template!r}: write placeholders as plain {{column}}, without ':' or '!'")
    if not fields:
        raise TaskError(f"template {template!r} has no {{column}} placeholder")
    return fields


def _letter_target(answer: str, options: list[str], row_number: int) -> str:
    # The gold may be given as a letter, a 0-based index, or the text of an option.
    letters = letters_for(len(options))
    if answer.upper() in letters and len(answer) == 1:
        return answer.upper()
    if answer.isdigit() and int(answer) < len(options):
        return LETTERS[int(answer)]
    if answer in options:
        return LETTERS[options.index(answer)]
    raise TaskError(
        f"row {row_number}: answer {answer!r} is neither a letter in {letters}, an index, nor one of the options"
    )


def _infer_kind(scorer: str, has_choices: bool, max_new_tokens: int) -> Kind:
    if has_choices:
        return "multiple_choice"
    if scorer in _REFUSAL_SCORERS:
        return "refusal"
    return "long_answer" if max_new_tokens >= _LONG_ANSWER_TOKENS else "short_answer"


def custom_task(
    path: str | Path,
    *,
    name: str,
    prompt_column: str | None = None,
    template: str | None = None,
    answer_column: str,
    scorer: str,
    choices_column: str | None = None,
    max_new_tokens: int = 32,
    pooling: str = "max",
    metadata_columns: Sequence[str] = (),
    scorer_options: Mapping[str, Any] | None = None,
    id_column: str | None = None,
    aliases_column: str | None = None,
) -> Task:
    """A task from a table: the prompt is ``prompt_column`` or ``template`` filled with ``{column}`` values.

    With ``choices_column`` (a list or an ``"A|B|C"`` string) the options are appended as lettered lines
    in the reference multiple-choice format and the target becomes the letter of the answer.
    """
    path = Path(path).expanduser()
    if (prompt_column is None) == (template is None):
        raise TaskError("give exactly one of prompt_column=... or template=... (with {column} placeholders)")
    if not isinstance(answer_column, str) or not answer_column:
        raise TaskError(f"name the column holding each row's answer (answer_column=...), got {answer_column!r}")
    check_new_tokens(max_new_tokens)
    if scorer not in SCORER_NAMES:
        raise TaskError(f"unknown scorer {scorer!r}; valid scorers are {valid_choices(SCORER_NAMES)}")
    if pooling not in POOLINGS:
        raise TaskError(f"unknown pooling {pooling!r}; valid poolings are {valid_choices(POOLINGS)}")
    mapping = _Mapping(name, prompt_column, template, answer_column, choices_column,
                       tuple(metadata_columns), id_column, aliases_column)  # fmt: skip
    rows = _read(path)
    _check_columns(list(rows[0]), mapping.roles(), path)
    items = [mapping.item(row, number) for number, row in enumerate(rows, start=1)]
    judge = get_scorer(scorer, **dict(scorer_options or {}))
    for number, item in enumerate(items, start=1):
        try:  # scorers check what they need of an item (e.g. refuse/comply targets) when they score it
            judge("", item)
        except TaskError as error:
            raise TaskError(f"row {number} of {path.name} does not suit scorer {scorer!r}: {error}") from error
    return Task(
        name=name,
        description=f"custom task from {path.name} ({len(items)} items, scorer {scorer})",
        items=tuple(items),
        scorer=judge,
        max_new_tokens=max_new_tokens,
        pooling=cast(Pooling, pooling),
        kind=_infer_kind(scorer, choices_column is not None, max_new_tokens),
        source=str(path),
        strata_keys=tuple(metadata_columns),
    )


@dataclass(frozen=True)
class _Mapping:
    """Which column plays which part of an item."""

    name: str
    prompt_column: str | None
    template: str | None
    answer_column: str
    choices_column: str | None
    metadata_columns: tuple[str, ...]
    id_column: str | None
    aliases_column: str | None

    def roles(self) -> list[tuple[str, str | None]]:
        placeholders = _template_fields(self.template) if self.template is not None else []
        return [
            ("prompt_column", self.prompt_column),
            ("answer_column", self.answer_column),
            ("choices_column", self.choices_column),
            ("id_column", self.id_column),
            ("aliases_column", self.aliases_column),
            *(("metadata column", column) for column in self.metadata_columns),
            *(("template placeholder", column) for column in placeholders),
        ]

    def item(self, row: Row, number: int) -> TaskItem:
        values = {k: "" if v is None else v for k, v in row.items()}
        if self.prompt_column is not None:
            prompt = str(values[self.prompt_column])
        else:
            prompt = str(self.template).format(**values)
        check_prompt_size(prompt, f"row {number}")
        answer = str(values[self.answer_column]).strip()
        if not prompt.strip() or not answer:
            raise TaskError(f"row {number}: empty {'prompt' if not prompt.strip() else repr(self.answer_column)}")
        choices: tuple[str, ...] = ()
        if self.choices_column is not None:
            options = parse_options(values[self.choices_column])
            if len(options) < 2:
                raise TaskError(f"row {number}: {self.choices_column!r} holds {len(options)} option(s), need 2+")
            prompt = multiple_choice_prompt(prompt, options)
            answer, choices = _letter_target(answer, options, number), letters_for(len(options))
        aliases = values[self.aliases_column] if self.aliases_column is not None else ""
        return TaskItem(
            id=str(values[self.id_column]) if self.id_column is not None else f"{self.name}-{number - 1:04d}",
            prompt=prompt,
            target=answer,
            choices=choices,
            aliases=tuple(parse_options(aliases)) if aliases else (),
            metadata={column: str(values[column]) for column in self.metadata_columns},
        )

"""The Run page's task form: a built-in task or benchmark, or an uploaded CSV/JSONL with its column mapping.

Returns the core's :class:`~corrsteer_core.experiment.TaskSpec` with the metadata its selection items must
match (a paired behaviour's half; the page adds the rest of the split), or None while the form is incomplete.
Uploaded files are kept under ``cache/uploads/`` (named by content hash) so a run can rebuild its task later.
Uploaded rows are shown with ``st.dataframe`` (no HTML), so file contents are never interpreted as markup.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.ui import resources, state, widgets
from app.ui.text import md
from corrsteer_core import storage
from corrsteer_core.errors import CorrSteerError, TaskError
from corrsteer_core.experiment import CustomTable, TaskSpec
from corrsteer_core.limits import loads_json
from corrsteer_core.tasks import SCORER_NAMES, scorer_options
from corrsteer_core.tasks.sources import check_utf8_bytes

__all__ = ["SCORERS", "read_table", "save_upload", "task_form"]

SCORERS = ("contains", *(name for name in SCORER_NAMES if name != "contains"))
_NONE = "(none)"
_SOURCES = ("Built-in task or benchmark", "Upload a CSV / JSONL file")
UPLOAD_SUFFIXES = (".csv", ".jsonl", ".json")
TaskChoice = tuple[TaskSpec, dict[str, str]]  # the task, and the metadata its selection items must match


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


def json_object(text: str, what: str, example: str) -> dict[str, Any]:
    """A JSON object typed into a text field ({} when empty; TaskError with an example otherwise)."""
    if not text.strip():
        return {}
    try:
        value = loads_json(text)
    except ValueError as exc:  # bad JSON, or nested deeper than Python reads
        raise TaskError(f"{what} must be a JSON object such as {example}: {exc}") from exc
    if not isinstance(value, dict):
        raise TaskError(f"{what} must be a JSON object such as {example}, got {text!r}")
    return value


def read_table(name: str, data: bytes) -> pd.DataFrame:
    """Parse an uploaded task file for the preview and the column pickers (TaskError when unreadable)."""
    suffix = Path(name).suffix.lower()
    check_utf8_bytes(name, data)  # the same message a file given on the command line gets
    try:
        if suffix == ".csv":
            return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
        if suffix == ".jsonl":
            return pd.read_json(io.BytesIO(data), lines=True, dtype=False)
        if suffix == ".json":
            return pd.DataFrame(loads_json(data.decode("utf-8-sig")))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise TaskError(f"cannot read {name!r} as {suffix[1:].upper()}: {exc}") from exc
    raise TaskError(f"cannot read {name!r}: upload a .csv, .jsonl or .json file")


def task_form() -> TaskChoice | None:
    widgets.defaults({state.RUN_TASK_SOURCE: _SOURCES[0]})
    source = st.radio("Task", _SOURCES, key=state.RUN_TASK_SOURCE, horizontal=True, label_visibility="collapsed")
    if source == _SOURCES[0]:
        return _builtin_form()
    return _upload_form()


def _builtin_form() -> TaskChoice | None:
    infos = resources.task_infos()
    if not infos:
        st.warning("No built-in tasks are available in this installation; upload a file instead.")
        return None
    by_name = {info.name: info for info in infos}
    descriptions = {info.name: info.description for info in infos}
    widgets.defaults(
        {
            state.RUN_TASK: next(iter(descriptions)),
            state.RUN_SOURCE: "",
            state.RUN_LIMIT: 0,
            state.RUN_OPTIONS: "",
            state.RUN_SELECT_HALF: True,
        }
    )
    if st.session_state[state.RUN_TASK] not in descriptions:
        st.session_state[state.RUN_TASK] = next(iter(descriptions))
    left, right = st.columns([2, 1])
    name = left.selectbox(
        "Task", list(descriptions), key=state.RUN_TASK, format_func=lambda n: f"{n} — {descriptions[n]}"[:120]
    )
    info = by_name[name]
    source = ""
    if info.needs_data:
        source = right.text_input(
            "Data source (optional)",
            key=state.RUN_SOURCE,
            help="A Hugging Face dataset id, a local file or folder; empty uses $CORRSTEER_DATA, "
            f"../shared/data, then the hub ({info.hub_id}).",
        )
    limit = right.number_input("Read at most (0 = all)", min_value=0, step=100, key=state.RUN_LIMIT)
    options = ""
    if info.options:
        options = left.text_input(
            f"Options (JSON; valid keys: {', '.join(info.options)})",
            key=state.RUN_OPTIONS,
            placeholder='{"' + info.options[0] + '": ...}',
        )
    select_where: dict[str, str] = {}
    if info.select_where:
        half = ", ".join(f"{k} = {v}" for k, v in info.select_where)
        if left.checkbox(
            f"Select features on the {half} half only",
            key=state.RUN_SELECT_HALF,
            help="A paired behaviour: features are correlated on this half (e.g. refusing harmful requests); "
            "validation and test keep both halves, so side effects on the other half count as NEG.",
        ):
            select_where = dict(info.select_where)
    with widgets.show_errors(stop=True):
        parsed = json_object(options, "task options", '{"digits": 3}')
    return TaskSpec(
        name=name, source=source.strip() or None, limit=int(limit) or None, options=parsed
    ), select_where


def _upload_form() -> TaskChoice | None:
    uploaded = st.file_uploader("Task file", type=["csv", "jsonl", "json"], key=state.RUN_UPLOAD)
    if uploaded is None:
        st.caption("One row per item: a prompt (a column, or a template over columns) and the expected answer.")
        return None
    data = uploaded.getvalue()
    if not data.strip():  # the rest of the form stays: the user picks another file
        st.error(md(f"{uploaded.name} is empty: upload a file with a header row and at least one item."))
        return None
    try:
        table = read_table(uploaded.name, data)
        path = save_upload(uploaded.name, data)
    except CorrSteerError as exc:
        st.error(md(str(exc)), icon=":material/error:")
        return None
    if table.empty or len(table.columns) == 0:
        st.error(md(f"{uploaded.name} has no rows."))
        return None
    st.dataframe(table.head(5), hide_index=True)
    st.caption(md(f"{len(table)} rows · columns: {', '.join(map(str, table.columns))}"))
    columns = [str(c) for c in table.columns]
    return _mapping_form(columns, Path(uploaded.name).stem, str(path))


def _pick(where: Any, label: str, options: list[str], key: str, guess: tuple[str, ...] = ()) -> str:
    if st.session_state.get(key) not in options:  # a new file: guess the column again
        st.session_state[key] = next((o for o in options if o.lower() in guess), options[0])
    return where.selectbox(label, options, key=key)


def _mapping_form(columns: list[str], stem: str, path: str) -> TaskChoice | None:
    c1, c2, c3 = st.columns(3)
    use_template = c1.toggle("Build the prompt from a template", key=state.RUN_UP_USE_TEMPLATE)
    if use_template:
        template = c1.text_area(
            "Template",
            value="{" + columns[0] + "}",
            key=state.RUN_UP_TEMPLATE,
            help="Python format string over the columns, e.g. '{question}\\nAnswer:'",
        )
        prompt_column = None
    else:
        template = None
        prompt_column = _pick(
            c1, "Prompt column", columns, state.RUN_UP_PROMPT, ("prompt", "question", "input", "text")
        )
    answer = _pick(c1, "Answer column", columns, state.RUN_UP_ANSWER, ("answer", "target", "label", "output"))
    choices = _pick(
        c1, "Choices column (multiple choice)", [_NONE, *columns], state.RUN_UP_CHOICES, ("choices", "options")
    )
    scorer = c2.selectbox(
        "Scorer", SCORERS, key=state.RUN_UP_SCORER, help="How a reply is judged against the answer."
    )
    scorer_keys = scorer_options(scorer)
    scorer_json = ""
    if scorer_keys:
        scorer_json = c2.text_input(
            f"Scorer options (JSON; keys: {', '.join(scorer_keys)})",
            key=state.RUN_UP_SCORER_OPTIONS,
            placeholder='{"' + scorer_keys[0] + '": ...}',
        )
    max_new = c2.number_input("Max new tokens", min_value=1, max_value=1024, value=32, key=state.RUN_UP_MAX_NEW)
    pooling = c2.selectbox("Pooling", ("max", "mean"), key=state.RUN_UP_POOLING)
    name = c3.text_input("Task name", value=stem, key=state.RUN_UP_NAME)
    metadata = c3.multiselect("Metadata columns (strata, reports)", columns, key=state.RUN_UP_META)
    if not name.strip():
        st.error("Give the task a name.")
        return None
    with widgets.show_errors(stop=True):
        custom = CustomTable(
            path=path,
            answer_column=answer,
            scorer=scorer,
            prompt_column=prompt_column,
            template=template,
            choices_column=None if choices == _NONE else choices,
            max_new_tokens=int(max_new),
            pooling=pooling,
            metadata_columns=tuple(metadata),
            scorer_options=json_object(scorer_json, "scorer options", '{"pattern": "(\\d+)"}'),
        )
    return TaskSpec(name=name.strip(), custom=custom), {}

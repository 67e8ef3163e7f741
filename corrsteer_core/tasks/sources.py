"""Where benchmark data comes from, and the one code path that reads it.

A source is either local files (a file or a folder laid out like ``shared/data``) or a Hugging Face hub id.
Both are read with :func:`datasets.load_dataset` (the csv/json/parquet builders for files, the hub id
otherwise), so a benchmark loader sees the same kind of rows either way and only maps column names.

Resolution when no source is given: ``$CORRSTEER_DATA`` (a folder like ``shared/data``), else
``<project root>/../shared/data``, else the canonical hub id.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from corrsteer_core.errors import DataSourceError, valid_choices
from corrsteer_core.limits import MAX_TASK_FILE_BYTES, check_at_most

__all__ = [
    "DATA_ENV_VAR",
    "FILE_BUILDERS",
    "check_utf8",
    "check_utf8_bytes",
    "data_root",
    "load_files",
    "load_hub",
    "resolve_source",
]

DATA_ENV_VAR = "CORRSTEER_DATA"
FILE_BUILDERS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_HUB_TIMEOUT_S = 5.0
_LOCAL_HINT = f"pass source=<file or folder> or set {DATA_ENV_VAR} to a folder laid out like shared/data"
Row = dict[str, Any]


def data_root() -> Path | None:
    """The local benchmark folder: ``$CORRSTEER_DATA``, else ``<project root>/../shared/data``, else None."""
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DataSourceError(
                f"{DATA_ENV_VAR}={env!r} is not a folder; point it at a folder laid out like shared/data "
                f"(mmlu/, bbq/, gsm8k/ ...) or unset it to use the hub"
            )
        return root
    from corrsteer_core.storage import project_root  # lazily: storage imports torch, listing tasks should not

    checkout = project_root()
    if checkout is not None and (checkout.parent / "shared" / "data").is_dir():
        return checkout.parent / "shared" / "data"
    return None


def resolve_source(source: str | Path | None, *, folder: str, hub_id: str) -> Path | str:
    """A local path (file or folder) or a hub id for a benchmark whose local folder is named ``folder``."""
    if source is None:
        root = data_root()
        if root is not None and (root / folder).is_dir():
            return root / folder
        return hub_id
    path = Path(source).expanduser()
    if path.exists():
        return path
    text = str(source)
    if isinstance(source, Path) or path.suffix.lower() in FILE_BUILDERS or not _HUB_ID.match(text):
        raise DataSourceError(
            f"data source {text!r} does not exist; give an existing file or folder, or a hub id like {hub_id!r}"
        )
    return text


def load_files(paths: Sequence[Path], *, column_names: Sequence[str] | None = None) -> list[Row]:
    """Every row of ``paths`` (same format), each tagged with ``_file``: the stem of the file it came from."""
    if not paths:
        raise DataSourceError("no data files to read")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataSourceError(f"data file(s) not found: {', '.join(missing)}")
    suffixes = {p.suffix.lower() for p in paths}
    unknown = suffixes - set(FILE_BUILDERS)
    if unknown or len({FILE_BUILDERS[s] for s in suffixes - unknown}) != 1:
        raise DataSourceError(
            f"cannot read files with suffixes {sorted(suffixes)} together; supported (one kind at a time): "
            f"{valid_choices(FILE_BUILDERS)}"
        )
    suffix = suffixes.pop()
    for path in paths:
        check_at_most(f"the size of {path.name} in bytes", path.stat().st_size, MAX_TASK_FILE_BYTES,
                      error=DataSourceError)  # fmt: skip
        if FILE_BUILDERS[suffix] != "parquet":
            check_utf8(path)
        _check_not_empty(path, header=column_names is None)
    # One load_dataset call with one split per file keeps the file of origin (MMLU's subject lives there).
    splits = {f"f{i}_{re.sub(r'[^A-Za-z0-9_]', '_', p.stem)}": p for i, p in enumerate(paths)}
    kwargs = _builder_kwargs(paths[0], suffix, column_names)
    dataset = _load(
        {"path": FILE_BUILDERS[suffix], "data_files": {k: str(v) for k, v in splits.items()}, **kwargs}
    )
    rows: list[Row] = []
    for split, path in splits.items():
        # to_list converts in one arrow pass; iterating row by row is ten times slower on nested columns.
        rows.extend({**row, "_file": path.stem} for row in dataset[split].to_list())
    return rows


_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}  # UTF-32 first: its little-endian mark starts with UTF-16's


def check_utf8(path: Path) -> None:
    """DataSourceError saying how to fix it unless ``path`` is UTF-8 text (a UTF-8 byte-order mark is fine).

    Read in chunks, so a large file costs no more memory than one chunk.
    """
    with path.open("rb") as handle:
        _check_utf8_stream(handle, path.name)


def check_utf8_bytes(name: str, data: bytes) -> None:
    """:func:`check_utf8` for a file held in memory (an upload), named ``name`` in the message."""
    _check_utf8_stream(io.BytesIO(data), name)


def _check_utf8_stream(handle: BinaryIO, name: str) -> None:
    stem, suffix = Path(name).stem, Path(name).suffix
    fix = f"save it as UTF-8 (e.g. iconv -f <its encoding> -t UTF-8 {name} > {stem}-utf8{suffix})"
    head = handle.read(4)
    for bom, encoding in _BOMS.items():
        if head.startswith(bom):
            raise DataSourceError(f"{name} is {encoding} text (a {encoding} byte-order mark); {fix}")
    handle.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    while chunk := handle.read(1 << 20):
        if b"\x00" in chunk:  # valid UTF-8, but no text file holds NUL: UTF-16 without a byte-order mark
            at = line + chunk[: chunk.index(b"\x00")].count(b"\n")
            raise DataSourceError(f"{name} holds NUL bytes (line {at}): it is UTF-16 or binary; {fix}")
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as error:
            data = error.object  # the chunk, after up to 3 bytes the decoder held back from the last one
            at = line + data[: error.start].count(b"\n")
            where = offset - (len(data) - len(chunk)) + error.start
            raise DataSourceError(
                f"{name} is not UTF-8 text: byte 0x{data[error.start]:02x} on line {at} (byte {where}) "
                f"is not UTF-8 (Latin-1 or Windows-1252?); {fix}"
            ) from None
        offset, line = offset + len(chunk), line + chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataSourceError(f"{name} is not UTF-8 text: it ends inside a character; {fix}") from None


def _check_not_empty(path: Path, header: bool) -> None:
    # datasets reports an empty file as 'Instruction "..." corresponds to no data', which helps nobody.
    if path.suffix.lower() == ".parquet":
        return
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        head = [line for _, line in zip(range(3), handle, strict=False) if line.strip()]
    if not head or head[0].strip() == "[]":
        raise DataSourceError(f"{path} is empty")
    if header and FILE_BUILDERS[path.suffix.lower()] == "csv" and len(head) < 2:
        raise DataSourceError(f"{path} has no rows: only a header line")


def load_hub(hub_id: str, *, config: str | None = None, split: str = "test") -> list[Row]:
    """Rows of a hub dataset split; fails fast with :class:`DataSourceError` when the hub is unreachable."""
    _check_hub_reachable(hub_id)
    dataset = _load({"path": hub_id, "name": config, "split": split}, hint=_LOCAL_HINT)
    return [{**row, "_file": None} for row in dataset.to_list()]


def _builder_kwargs(first: Path, suffix: str, column_names: Sequence[str] | None) -> dict[str, Any]:
    if FILE_BUILDERS[suffix] != "csv":
        return {}
    from datasets import Features, Value

    sep = "\t" if suffix == ".tsv" else ","
    if column_names is None:
        with first.open(newline="", encoding="utf-8-sig") as handle:
            column_names = next(csv.reader(handle, delimiter=sep), [])
        if not column_names:
            raise DataSourceError(f"{first} is empty: expected a header row with column names")
        extra: dict[str, Any] = {}
    else:
        extra = {"column_names": list(column_names)}
    # Strings everywhere: pandas would otherwise turn MMLU options "0"/"4" into ints and "None" into NaN.
    features = Features({name: Value("string") for name in column_names})
    return {"sep": sep, "features": features, "na_filter": False, "encoding": "utf-8-sig", **extra}


def _load(kwargs: dict[str, Any], hint: str = "") -> Any:
    import datasets

    from corrsteer_core.storage import cache_path  # lazily: reading task names should not touch the cache

    try:
        # datasets keeps an Arrow copy of everything it reads; it lives under corrsteer's cache, not ~/.cache
        return datasets.load_dataset(**kwargs, cache_dir=str(cache_path("datasets", "arrow")))
    except DataSourceError:
        raise
    except Exception as error:  # datasets raises many unrelated types for one cause: unreadable data
        where = list(kwargs["data_files"].values()) if "data_files" in kwargs else kwargs["path"]
        # datasets wraps the informative error (e.g. a cast error naming the columns) in a generic one.
        cause = error.__cause__ or error
        message = f"could not load {where}: {type(cause).__name__}: {cause}"
        raise DataSourceError(f"{message}; {hint}" if hint else message) from error


def _libraries_offline() -> bool:
    # Both libraries read their offline switches at import time; only then will they not touch the network.
    import datasets.config
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE or getattr(datasets.config, "HF_HUB_OFFLINE", False))


def _check_hub_reachable(hub_id: str) -> None:
    # datasets retries an unreachable hub for ~25 s before failing; one quick probe gives a clear answer.
    from huggingface_hub import constants, get_session

    if _libraries_offline():
        return  # offline mode: datasets reads its own cache or explains itself
    url = f"{constants.ENDPOINT}/api/datasets/{hub_id}"
    try:
        get_session().head(url, timeout=_HUB_TIMEOUT_S)
    except Exception as error:  # any transport failure means the same thing to the user
        raise DataSourceError(
            f"the Hugging Face hub is unreachable ({type(error).__name__}), so {hub_id!r} cannot be downloaded; "
            f"{_LOCAL_HINT}"
        ) from error

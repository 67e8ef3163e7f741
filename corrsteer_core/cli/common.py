"""What every ``corrsteer`` command shares: the command registry, output, and the parsing of common arguments.

Command modules register with :func:`command` and import only from here; the package's ``__init__`` builds the
parser from them, so there is no import circle between the entry point and the commands.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from corrsteer_core.errors import ConfigError

__all__ = [
    "COMMANDS",
    "add_task_args",
    "check_device",
    "check_output_file",
    "command",
    "emit",
    "experiment_from_args",
    "key_values",
    "open_model",
    "parse_layers",
    "scale_list",
    "table",
    "whole_scale_list",
]

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``text``, or ``data`` as JSON with ``--json``."""
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def table(df: pd.DataFrame, floats: str = "{:.3f}") -> str:
    return df.to_string(index=False, float_format=lambda v: floats.format(v)) if len(df) else "(empty)"


def parse_layers(text: str | None, n_layers: int) -> tuple[int, ...] | None:
    """'3,5,7' or '0-4' or 'all' -> layer indices of a model with ``n_layers`` layers (None for all).

    Each piece is checked against the model before a list is built, so '0-1000000000' costs nothing.
    """
    if text is None or text.strip().lower() in ("", "all"):
        return None
    layers: list[int] = []
    for part in text.split(","):
        lo, hi = _layer_range(part, text)
        if lo > hi:
            raise ConfigError(
                f"layer range {part.strip()!r} is empty: it runs backwards; write the lower layer first, "
                f"e.g. '{hi}-{lo}'"
            )
        if lo < 0 or hi >= n_layers:
            raise ConfigError(
                f"layers {part.strip()!r} are outside the model's layers: valid layers are 0..{n_layers - 1}"
            )
        layers.extend(range(lo, hi + 1))
    return tuple(dict.fromkeys(layers))


def _layer_range(part: str, text: str) -> tuple[int, int]:
    """'3' -> (3, 3); '0-4' -> (0, 4)."""
    try:
        if "-" in part.strip()[1:]:
            lo, hi = part.split("-", 1)
            return int(lo), int(hi)
        return int(part), int(part)
    except ValueError as exc:
        raise ConfigError(f"cannot read layers {text!r}: use e.g. '3,5,7', '0-4' or 'all'") from exc


def check_output_file(path: str, flag: str, suffixes: tuple[str, ...]) -> Path:
    """``path`` as a file to write, checked before any work: not a folder, a known suffix, a folder to go in."""
    out = Path(path).expanduser()
    if out.is_dir():
        example = out / f"profile{suffixes[0]}"
        raise ConfigError(f"{flag} {path!r} is a folder; give a file path in it, e.g. {example}")
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"{flag} {path!r} must end in {' or '.join(suffixes)}")
    if out.parent.exists() and not out.parent.is_dir():
        raise ConfigError(f"{flag} {path!r}: {out.parent} is not a folder")
    return out


def check_device(device: str | None) -> None:
    """Refuse a device this machine does not have before anything loads (see loading.resolve_device)."""
    from corrsteer_core.loading import resolve_device

    resolve_device(device)


def key_values(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """Repeated ``KEY=VALUE`` arguments as a dict."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} takes KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def scale_list(text: str) -> tuple[float, ...]:
    """argparse type for '0.25,0.5,1': positive numbers, comma separated."""
    from corrsteer_core.config import parse_scales

    try:
        return tuple(parse_scales(text, positive=True))
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def whole_scale_list(text: str) -> tuple[float, ...]:
    """argparse type for O's whole-profile scales: like :func:`scale_list`, or 'none' to skip that stage."""
    return () if text.strip().lower() == "none" else scale_list(text)


def add_task_args(p: argparse.ArgumentParser) -> None:
    """The arguments that name a task and its split (read back by :func:`experiment_from_args`)."""
    p.add_argument("--task", help="built-in task or benchmark name (see `corrsteer tasks`)")
    p.add_argument("--source", help="local file/folder or hub id for a benchmark")
    p.add_argument("--limit", type=int, help="use at most this many items of the task")
    p.add_argument("--task-seed", type=int, default=0, help="generation seed of built-in tasks")
    p.add_argument("--custom", help="a CSV/JSONL file to use as a task")
    p.add_argument("--prompt-column")
    p.add_argument("--template", help="prompt template with {column} placeholders")
    p.add_argument("--answer-column")
    p.add_argument("--scorer", default="contains", help="exact, contains, regex, letter, number, refusal, ...")
    p.add_argument("--scorer-option", action="append", help="KEY=VALUE for the scorer, e.g. pattern=...")
    p.add_argument("--choices-column")
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-val", type=int)
    p.add_argument("--n-test", type=int)
    p.add_argument("--split-seed", type=int, default=0, help="fixes the splits (independent of --seed)")
    p.add_argument(
        "--select-where",
        action="append",
        metavar="KEY=VALUE",
        help="collect only on selection items with this metadata (e.g. label=harmful); validation/test keep all",
    )


def experiment_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~corrsteer_core.experiment.Experiment` that the task arguments describe."""
    from corrsteer_core.experiment import CustomTable, Experiment, SplitSpec, TaskSpec

    if args.custom:
        custom = CustomTable(
            path=args.custom,
            prompt_column=args.prompt_column,
            template=args.template,
            answer_column=args.answer_column,
            scorer=args.scorer,
            choices_column=args.choices_column,
            max_new_tokens=getattr(args, "max_new_tokens", None) or 32,
            scorer_options=key_values(args.scorer_option, "--scorer-option"),
        )
        task = TaskSpec(name=args.task or Path(args.custom).stem, custom=custom)
    elif args.task:
        task = TaskSpec(name=args.task, source=args.source, limit=args.limit, seed=args.task_seed)
    else:
        raise ConfigError("name a task with --task (see `corrsteer tasks`) or a CSV/JSONL file with --custom")
    split = SplitSpec(
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        seed=args.split_seed,
        select_where=key_values(args.select_where, "--select-where") or None,
    )
    return Experiment(task, split)


def open_model(preset: str, layers: tuple[int, ...] | None, device: str | None) -> tuple[Any, Any]:
    """The preset's model and the SAEs of ``layers`` (all when None)."""
    from corrsteer_core.loading import load_model
    from corrsteer_core.saes import load_saes

    loaded = load_model(preset, device=device)
    return loaded, load_saes(loaded, layers)

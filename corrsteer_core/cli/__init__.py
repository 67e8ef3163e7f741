"""The ``corrsteer`` command line: a thin layer over the library with progress bars and readable tables.

Every command prints human-readable output by default and JSON with ``--json``. Library errors
(:class:`CorrSteerError`) are printed as one line and exit with status 2; Ctrl-C exits with 130 and keeps
whatever was checkpointed. Commands live in ``setup`` (presets, prepare, app), ``pipeline`` (tasks, runs, select,
evaluate, sweep, controls) and ``profiles`` (export, show, generate).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from corrsteer_core.cli import pipeline, profiles, setup
from corrsteer_core.cli.common import COMMANDS, parse_layers
from corrsteer_core.errors import CorrSteerError

__all__ = ["build_parser", "main", "parse_layers"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corrsteer", description="CorrSteer: correlation-selected SAE steering")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (setup, pipeline, profiles):
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CorrSteerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work (checkpoints, trained layers) was kept", file=sys.stderr)
        return 130

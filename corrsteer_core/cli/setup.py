"""Commands that set corrsteer up: list presets, prepare the embedded default, start the app."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from corrsteer_core.cli.common import command, emit, parse_layers
from corrsteer_core.errors import ConfigError

__all__ = ["add_parsers"]


@command("presets")
def _presets(args: argparse.Namespace) -> int:
    from corrsteer_core.presets import list_presets

    presets = list_presets()
    rows = [
        {
            "name": p.name,
            "model": p.model.hf_id,
            "source": p.model.source,
            "sae": p.sae.release or p.sae.set_name or p.sae.path,
            "layers": len(p.layers),
            "hook": p.sae.hook_template,
        }
        for p in presets
    ]
    text = "\n".join(
        f"{r['name']:<18} {r['model']:<38} {r['source']:<8} {r['sae']} ({r['layers']} layers)" for r in rows
    )
    emit(args, rows, text)
    return 0


@command("prepare")
def _prepare(args: argparse.Namespace) -> int:
    from corrsteer_core.embedded.corpus import CorpusConfig
    from corrsteer_core.embedded.prepare import PrepareConfig, prepare_embedded
    from corrsteer_core.embedded.sae_training import SAETrainConfig
    from corrsteer_core.explain.dashboards import DashboardConfig
    from corrsteer_core.presets import get_preset
    from corrsteer_core.progress import tqdm_progress

    cfg = PrepareConfig(
        corpus=CorpusConfig(n_prompts=args.prompts, max_new_tokens=args.max_new_tokens, seed=args.seed),
        train=SAETrainConfig(epochs=args.epochs, seed=args.seed),
        layers=parse_layers(args.layers, get_preset(args.preset).model.n_layers),
        force=args.force,
        dashboards=None if args.no_dashboards else DashboardConfig(),
    )
    with tqdm_progress(disable=args.json) as progress:
        rows = prepare_embedded(args.preset, cfg, progress=progress, log=(lambda _: None) if args.json else print)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


@command("app")
def _app(args: argparse.Namespace) -> int:
    script = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
    if not script.is_file():
        raise ConfigError(f"the app is not in this installation (looked for {script}); run from a source checkout")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.headless",
        str(args.headless).lower(),
        "--browser.gatherUsageStats",
        "false",
    ]
    env = dict(os.environ, CORRSTEER_DEFAULT_PRESET=args.preset)
    # run from the checkout so Streamlit reads its .streamlit/config.toml whatever the caller's directory
    return subprocess.call(cmd, env=env, cwd=script.parent.parent)


def add_parsers(sub: Any) -> None:
    sub.add_parser("presets", help="list model + SAE presets")

    p = sub.add_parser("prepare", help="convert the embedded model and train its SAEs (offline, resumable)")
    p.add_argument("--preset", default="smollm2-135m-it")
    p.add_argument("--layers", default=None, help="e.g. '0-29' (default), '3,5'")
    p.add_argument("--prompts", type=int, default=1200, help="corpus prompts answered by the model")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="retrain layers that are already done")
    p.add_argument(
        "--no-dashboards", action="store_true", help="skip the feature dashboards (top contexts, labels, scores)"
    )

    p = sub.add_parser("app", help="start the web app (binds to localhost)")
    p.add_argument("--preset", default="smollm2-135m-it")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--headless", action="store_true")

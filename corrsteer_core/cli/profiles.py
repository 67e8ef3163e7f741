"""Profile commands: export a profile (JSON, or its vectors as safetensors), show it, generate with it."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from corrsteer_core.cli.common import (
    check_device,
    check_output_file,
    command,
    emit,
    open_model,
    parse_layers,
    table,
)
from corrsteer_core.errors import ConfigError

__all__ = ["add_parsers"]


_SUFFIXES = {"safetensors": (".json", ".safetensors"), "gguf": (".gguf",), "lm-eval": (".pt",)}


@command("export")
def _export(args: argparse.Namespace) -> int:
    fmt = args.format or "safetensors"
    out = check_output_file(args.out, "--out", _SUFFIXES[fmt])
    check_device(args.device)
    profile = _dialled_profile(args)
    if fmt == "safetensors" and out.suffix.lower() == ".json":
        profile.save(out)
        emit(args, {"written": str(out)}, f"wrote {out}")
        return 0
    from corrsteer_core import export_formats

    if fmt != "safetensors":  # refuse what the format cannot express before loading anything
        export_formats.check_exportable(profile, fmt)
    _, saes = open_model(profile.preset, tuple(s.layer for s in profile.layers), args.device)
    if fmt == "gguf":
        export_formats.write_gguf(profile, saes, out)
    elif fmt == "lm-eval":
        export_formats.write_lm_eval(profile, saes, out)
    else:
        profile.vectors_safetensors(saes, out)
    written = [str(out)] + ([str(export_formats.card_path(out))] if fmt != "safetensors" else [])
    emit(args, {"written": written}, "wrote " + ", ".join(written))
    return 0


def _dialled_profile(args: argparse.Namespace) -> Any:
    """The saved profile ``args.profile`` with ``--enable`` and ``--scale`` applied (export, check-export)."""
    from corrsteer_core.profile_store import find_profile

    profile = find_profile(args.profile)
    if args.enable is not None:
        profile = profile.with_enabled(_enabled_layers(profile, args.enable))
    if args.scale is not None:
        profile = profile.with_global_scale(args.scale)
    return profile


def _enabled_layers(profile: Any, text: str) -> set[int] | None:
    """``--enable`` as a set of the profile's layers (ConfigError naming the profile's layers otherwise)."""
    have = [s.layer for s in profile.layers]
    wanted = parse_layers(text, 1 + max(have, default=0))
    if wanted is None:
        return None
    unknown = sorted(set(wanted) - set(have))
    if unknown:
        raise ConfigError(f"--enable names layers {unknown} that the profile does not steer; its layers: {have}")
    return set(wanted)


@command("check-export")
def _check_export(args: argparse.Namespace) -> int:
    from corrsteer_core.cli.pipeline import _evaluation_items
    from corrsteer_core.deploy_check import run_check
    from corrsteer_core.embedded.model import find_embedded_gguf
    from corrsteer_core.export_formats import check_exportable
    from corrsteer_core.presets import get_preset

    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    check_device(args.device)
    profile = _dialled_profile(args)
    check_exportable(profile, "gguf")
    preset = get_preset(profile.preset)
    if preset.model.gguf_file is None:
        raise ConfigError(f"preset {profile.preset!r} has no GGUF model for llama.cpp to run")
    gguf_path = find_embedded_gguf(preset.model)
    args.task = args.custom = None
    task, items = _evaluation_items(profile, args)
    items = list(items)[: args.n] if args.n else list(items)
    loaded, saes = open_model(profile.preset, tuple(s.layer for s in profile.layers), args.device)
    from corrsteer_core.progress import tqdm_progress

    with tqdm_progress(disable=args.json) as progress:
        s = run_check(loaded, saes, profile, task, items, gguf_path, progress=progress).summary()
    cs, lc = s["corrsteer"], s["llama_cpp"]
    df = pd.DataFrame(
        [
            {"": "unsteered accuracy", "corrsteer": cs["base_accuracy"], "llama.cpp": lc["base_accuracy"]},
            {"": "steered accuracy", "corrsteer": cs["steered_accuracy"], "llama.cpp": lc["steered_accuracy"]},
            {"": "POS (wrong->right)", "corrsteer": cs["pos"], "llama.cpp": lc["pos"]},
            {"": "NEG (right->wrong)", "corrsteer": cs["neg"], "llama.cpp": lc["neg"]},
        ]
    )
    va, ta = s["verdict_agreement"], s["text_agreement"]
    text = (
        f"{task.name} ({args.split}, n={s['n']}), corrsteer positions=all vs llama.cpp control vector "
        f"({gguf_path.name})\n{table(df)}\n"
        f"right/wrong agreement: unsteered {va['unsteered']:.1%} (floor), steered {va['steered']:.1%}\n"
        f"exact-text agreement:  unsteered {ta['unsteered']:.1%} (floor), steered {ta['steered']:.1%}\n"
        f"flip agreement (same items changed): {s['flip_agreement']:.1%}\n"
        f"note: the profile's own mode is positions={profile.positions}; llama.cpp adds the vector at every "
        "position (prompt too), so this compares corrsteer's positions=all run, not the published one"
    )
    emit(args, s, text)
    return 0


@command("show")
def _show(args: argparse.Namespace) -> int:
    from corrsteer_core.profile_store import find_profile

    profile = find_profile(args.profile)
    fields = ("layer", "feature", "coefficient", "scale", "enabled", "r")
    df = pd.DataFrame([{k: getattr(s, k) for k in fields} for s in profile.layers])
    prov = profile.provenance
    text = (
        f"{profile.name or '(unnamed)'}: preset {profile.preset}, task {prov.task_name}, "
        f"variant {prov.variant}, global scale {profile.global_scale}\n" + table(df)
    )
    emit(args, profile.to_dict(), text)
    return 0


@command("generate")
def _generate(args: argparse.Namespace) -> int:
    from corrsteer_core.limits import check_new_tokens
    from corrsteer_core.profile_store import find_profile
    from corrsteer_core.steer import generate_texts, profile_vectors

    check_new_tokens(args.max_new_tokens, "--max-new-tokens")
    check_device(args.device)
    profile = find_profile(args.profile)
    loaded, saes = open_model(profile.preset, tuple(s.layer for s in profile.layers), args.device)
    vectors = profile_vectors(loaded, saes, profile)
    base = generate_texts(loaded, [args.prompt], max_new_tokens=args.max_new_tokens)[0]
    steered = generate_texts(
        loaded, [args.prompt], vectors=vectors, positions=profile.positions, max_new_tokens=args.max_new_tokens
    )[0]
    emit(
        args,
        {"prompt": args.prompt, "unsteered": base, "steered": steered},
        f"--- unsteered ---\n{base}\n--- steered ({profile.name}) ---\n{steered}",
    )
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a profile as JSON, safetensors, a llama.cpp control vector (gguf) or an lm-eval steer file",
    )
    p.add_argument("profile")
    p.add_argument("--out", required=True, help="*.json or *.safetensors; *.gguf for gguf; *.pt for lm-eval")
    p.add_argument("--format", choices=("safetensors", "gguf", "lm-eval"), default="safetensors")
    p.add_argument("--enable", help="enable only these layers")
    p.add_argument("--scale", type=float)
    p.add_argument("--device")

    p = sub.add_parser("check-export", help="compare a profile in llama.cpp (exported vector) with corrsteer")
    p.add_argument("profile")
    p.add_argument("--runtime", choices=("llama.cpp",), default="llama.cpp")
    p.add_argument("--split", choices=("test", "validation", "train"), default="test")
    p.add_argument("--n", type=int, help="only the first N items")
    p.add_argument("--enable", help="check only these layers (e.g. 1-29: llama.cpp cannot steer layer 0)")
    p.add_argument("--scale", type=float, help="global scale of the checked profile")
    p.add_argument("--device")

    p = sub.add_parser("show", help="print a profile")
    p.add_argument("profile")

    p = sub.add_parser("generate", help="unsteered and steered replies to a prompt")
    p.add_argument("profile")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--device")

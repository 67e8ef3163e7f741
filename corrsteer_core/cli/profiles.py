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


@command("export")
def _export(args: argparse.Namespace) -> int:
    from corrsteer_core.profile_store import find_profile

    out = check_output_file(args.out, "--out", (".json", ".safetensors"))
    check_device(args.device)
    profile = find_profile(args.profile)
    if args.enable is not None:
        profile = profile.with_enabled(_enabled_layers(profile, args.enable))
    if args.scale is not None:
        profile = profile.with_global_scale(args.scale)
    if out.suffix.lower() == ".safetensors":
        _, saes = open_model(profile.preset, tuple(s.layer for s in profile.layers), args.device)
        profile.vectors_safetensors(saes, out)
    else:
        profile.save(out)
    emit(args, {"written": str(out)}, f"wrote {out}")
    return 0


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
    p = sub.add_parser("export", help="write a profile as JSON or its vectors as safetensors")
    p.add_argument("profile")
    p.add_argument("--out", required=True, help="*.json or *.safetensors")
    p.add_argument("--enable", help="enable only these layers")
    p.add_argument("--scale", type=float)
    p.add_argument("--device")

    p = sub.add_parser("show", help="print a profile")
    p.add_argument("profile")

    p = sub.add_parser("generate", help="unsteered and steered replies to a prompt")
    p.add_argument("profile")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--device")

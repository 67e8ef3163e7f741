"""Pipeline subcommands of ``corrsteer``: tasks, runs, select, evaluate, sweep, export, show, generate."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["add_commands"]


def _table(df: pd.DataFrame, floats: str = "{:.3f}") -> str:
    return df.to_string(index=False, float_format=lambda v: floats.format(v)) if len(df) else "(empty)"


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def _csv_ints(text: str | None) -> tuple[int, ...] | None:
    from corrsteer_core.cli import parse_layers

    return parse_layers(text)


def _options(pairs: list[str] | None, flag: str = "--scorer-option") -> dict[str, str]:
    from corrsteer_core.errors import ConfigError

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} takes KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def _task_spec(args: argparse.Namespace) -> Any:
    from corrsteer_core.experiment import TaskSpec

    if args.custom:
        custom = {
            "path": args.custom,
            "name": args.task or Path(args.custom).stem,
            "prompt_column": args.prompt_column,
            "template": args.template,
            "answer_column": args.answer_column,
            "scorer": args.scorer,
            "choices_column": args.choices_column,
            "max_new_tokens": args.max_new_tokens or 32,
            "scorer_options": _options(args.scorer_option),
        }
        return TaskSpec(name=custom["name"], custom=custom)
    if not args.task:
        from corrsteer_core.errors import ConfigError

        raise ConfigError("name a task with --task (see `corrsteer tasks`) or a CSV/JSONL file with --custom")
    return TaskSpec(name=args.task, source=args.source, limit=args.limit, seed=args.task_seed)


def _open(preset: str, layers: tuple[int, ...] | None, device: str | None) -> tuple[Any, Any]:
    from corrsteer_core.loading import load_model
    from corrsteer_core.saes import load_saes

    loaded = load_model(preset, device=device)
    return loaded, load_saes(loaded, layers)


def _hint_paired_half(task_spec: Any, split_spec: Any) -> None:
    """Warn when a paired behaviour is correlated over both halves, whose correct replies pull opposite ways."""
    from corrsteer_core.tasks import list_tasks

    if split_spec.select_where or task_spec.custom is not None:
        return
    half = next((i.select_where for i in list_tasks() if i.name == task_spec.name), ())
    if half:
        where = " ".join(f"--select-where {k}={v}" for k, v in half)
        print(
            f"note: {task_spec.name} is a paired behaviour; features are usually selected on one half "
            f"({where}); this run correlates over both halves",
            file=sys.stderr,
        )


def _select(args: argparse.Namespace) -> int:
    from corrsteer_core.collect import collect_activations
    from corrsteer_core.config import CollectConfig
    from corrsteer_core.diagnostics import cumulative_relative_norm, norm_diagnostics
    from corrsteer_core.experiment import SplitSpec, resolve_splits, resolve_task, split_record
    from corrsteer_core.optimize import OptimizeConfig
    from corrsteer_core.profile_store import save_named_profile
    from corrsteer_core.progress import tqdm_progress
    from corrsteer_core.select import SelectConfig, select_profile
    from corrsteer_core.steer import GenerateConfig

    task_spec = _task_spec(args)
    split_spec = SplitSpec(
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        seed=args.split_seed,
        select_where=_options(args.select_where, "--select-where") or None,
    )
    collect_cfg = CollectConfig(
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        pooling=args.pooling,
        answer_span_only=args.answer_span,
        constrained=args.constrained,
        strata_key=args.strata,
        site=args.site,
    )
    select_cfg = SelectConfig(
        variant=args.variant,
        selector=args.selector,
        k=args.k,
        coefficient_mode=args.coefficient_mode,
        within_strata=args.within_strata,
        min_firing=args.min_firing,
        seed=args.seed,
        lam=args.lam,
        budget=args.budget,
    )
    gen = GenerateConfig(
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, constrained=args.constrained
    )
    task = resolve_task(task_spec)
    splits = resolve_splits(task, split_spec)
    _hint_paired_half(task_spec, split_spec)
    loaded, saes = _open(args.preset, _csv_ints(args.layers), args.device)
    with tqdm_progress(disable=args.json) as progress:
        run = collect_activations(
            loaded,
            saes,
            task,
            splits.train,
            collect_cfg,
            progress=progress,
            split=split_record(task_spec, split_spec, splits),
        )
        optimize = OptimizeConfig(
            lam=select_cfg.lam,
            budget=select_cfg.budget,
            screen_top=args.screen_top,
            **({"screen_scales": args.screen_scales} if args.screen_scales else {}),
            **({"whole_scales": args.whole_scales} if args.whole_scales is not None else {}),
        )
        result = select_profile(
            run,
            loaded,
            saes,
            select_cfg,
            validation=(task, splits.validation),
            gen=gen,
            progress=progress,
            optimize=optimize,
        )
    path = save_named_profile(result.profile, args.name)
    if args.out:
        result.profile.save(Path(args.out))
    diag = norm_diagnostics(result.profile, saes, run.resid_norm)
    data = {
        "run_id": run.run_id,
        "profile_path": str(path),
        "n_selection": run.n,
        "n_correct": run.stats.n_correct,
        "warnings": result.warnings,
        "layers": diag.to_dict(orient="records"),
        "cumulative_relative_norm": cumulative_relative_norm(diag),
    }
    tops = pd.DataFrame(
        [
            {
                "layer": c[0].layer,
                "feature": c[0].feature,
                "r": c[0].r,
                "coef": c[0].coefficient,
                "fires": c[0].firing_rate,
            }
            for c in result.candidates
            if c
        ]
    )
    text = "\n".join(
        [
            f"run {run.run_id}: {run.n} selection samples, {run.stats.n_correct} correct",
            *[f"warning: {w}" for w in result.warnings],
            "top feature per layer:",
            _table(tops),
            f"profile ({args.variant}, {args.selector}) steers {len(result.profile.enabled)} layer(s):",
            _table(diag),
            f"cumulative relative norm: {data['cumulative_relative_norm']:.3f}",
            f"saved to {path}",
        ]
    )
    _emit(args, data, text)
    return 0


def _evaluation_items(profile: Any, args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from corrsteer_core.experiment import SplitSpec, resolve_splits, resolve_task, specs_from_provenance

    if args.task or args.custom:
        task_spec = _task_spec(args)
        split_spec = SplitSpec(
            n_train=args.n_train,
            n_val=args.n_val,
            n_test=args.n_test,
            seed=args.split_seed,
            select_where=_options(args.select_where, "--select-where") or None,
        )
    else:
        task_spec, split_spec = specs_from_provenance(profile.provenance)
    task = resolve_task(task_spec)
    splits = resolve_splits(task, split_spec)
    return task, splits, {"test": splits.test, "validation": splits.validation, "train": splits.train}[args.split]


def whole_scale_list(text: str) -> tuple[float, ...]:
    """argparse type for O's whole-profile scales: like :func:`scale_list`, or 'none' to skip that stage."""
    return () if text.strip().lower() == "none" else scale_list(text)


def scale_list(text: str) -> tuple[float, ...]:
    """argparse type for '0.25,0.5,1': positive numbers, comma separated."""
    from corrsteer_core.config import parse_scales
    from corrsteer_core.errors import ConfigError

    try:
        return tuple(parse_scales(text, positive=True))
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _evaluate(args: argparse.Namespace) -> int:
    from corrsteer_core.evaluate import evaluate_profile, record_evaluation
    from corrsteer_core.profile_store import find_profile
    from corrsteer_core.progress import tqdm_progress
    from corrsteer_core.steer import GenerateConfig

    profile = find_profile(args.profile)
    if args.scale is not None:
        profile = profile.with_global_scale(args.scale)
    task, _, items = _evaluation_items(profile, args)
    loaded, saes = _open(profile.preset, tuple(s.layer for s in profile.layers), args.device)
    gen = GenerateConfig(batch_size=args.batch_size, constrained=args.constrained)
    with tqdm_progress(disable=args.json) as progress:
        result = evaluate_profile(loaded, saes, task, items, profile, cfg=gen, progress=progress)
    record_evaluation(profile, result, args.split)  # beside its run, where the app lists it
    s = result.summary()
    flips = result.table[result.table["change"].isin(["wrong→right", "right→wrong"])]
    ser = "n/a" if s["ser"] is None else f"{s['ser']:.2f}"
    text = (
        f"{task.name} ({args.split}, n={s['n']}): unsteered {s['base_accuracy']:.1%} -> "
        f"steered {s['steered_accuracy']:.1%} "
        f"({s['diff']:+.1%}, 95% CI {s['ci_low']:+.1%}..{s['ci_high']:+.1%})\n"
        f"POS {s['pos']}  NEG {s['neg']}  SER {ser}  "
        f"changed {s['changed']}  McNemar p={s['p_value']:.3g}  "
        f"degenerate (empty/repetitive) {s['base_degenerate']} -> {s['steered_degenerate']}\n"
        + (
            _table(flips[["item_id", "change", "base_answer", "steered_answer", "target"]].head(args.show_flips))
            if args.show_flips
            else ""
        )
    )
    _emit(args, {"summary": s, "flips": flips.to_dict(orient="records")}, text)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from corrsteer_core.config import parse_scales
    from corrsteer_core.evaluate import scale_sweep
    from corrsteer_core.profile_store import find_profile
    from corrsteer_core.progress import tqdm_progress
    from corrsteer_core.steer import GenerateConfig

    profile = find_profile(args.profile)
    scales = parse_scales(args.scales)
    task, _, items = _evaluation_items(profile, args)
    loaded, saes = _open(profile.preset, tuple(s.layer for s in profile.layers), args.device)
    with tqdm_progress(disable=args.json) as progress:
        df = scale_sweep(
            loaded,
            saes,
            task,
            items,
            profile,
            scales,
            cfg=GenerateConfig(batch_size=args.batch_size),
            progress=progress,
        )
    if args.plot:
        import plotly.express as px

        fig = px.line(
            df, x="scale", y=["steered_accuracy", "ser"], markers=True, title=f"{profile.name}: the dial"
        )
        fig.write_html(args.plot)
    cols = ["scale", "steered_accuracy", "diff", "ci_low", "ci_high", "pos", "neg", "ser", "changed", "p_value"]
    _emit(args, df.to_dict(orient="records"), _table(df[cols]))
    return 0


def _export(args: argparse.Namespace) -> int:
    from corrsteer_core.profile_store import find_profile

    profile = find_profile(args.profile)
    if args.enable is not None:
        profile = profile.with_enabled(set(_csv_ints(args.enable) or ()))
    if args.scale is not None:
        profile = profile.with_global_scale(args.scale)
    out = Path(args.out)
    if out.suffix == ".safetensors":
        _, saes = _open(profile.preset, tuple(s.layer for s in profile.layers), args.device)
        profile.vectors_safetensors(saes, out)
    else:
        profile.save(out)
    _emit(args, {"written": str(out)}, f"wrote {out}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from corrsteer_core.profile_store import find_profile

    profile = find_profile(args.profile)
    df = pd.DataFrame(
        [
            {k: getattr(s, k) for k in ("layer", "feature", "coefficient", "scale", "enabled", "r")}
            for s in profile.layers
        ]
    )
    prov = profile.provenance
    text = (
        f"{profile.name or '(unnamed)'}: preset {profile.preset}, task {prov.get('task', {}).get('name')}, "
        f"variant {prov.get('select', {}).get('variant')}, global scale {profile.global_scale}\n" + _table(df)
    )
    _emit(args, profile.to_dict(), text)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from corrsteer_core.profile_store import find_profile
    from corrsteer_core.steer import generate_texts, profile_vectors

    profile = find_profile(args.profile)
    loaded, saes = _open(profile.preset, tuple(s.layer for s in profile.layers), args.device)
    vectors = profile_vectors(loaded, saes, profile)
    base = generate_texts(loaded, [args.prompt], max_new_tokens=args.max_new_tokens)[0]
    steered = generate_texts(loaded, [args.prompt], vectors=vectors, max_new_tokens=args.max_new_tokens)[0]
    _emit(
        args,
        {"prompt": args.prompt, "unsteered": base, "steered": steered},
        f"--- unsteered ---\n{base}\n--- steered ({profile.name}) ---\n{steered}",
    )
    return 0


def _tasks(args: argparse.Namespace) -> int:
    import dataclasses

    from corrsteer_core.tasks import list_tasks

    rows = [dataclasses.asdict(info) for info in list_tasks()]
    _emit(args, rows, _table(pd.DataFrame(rows)))
    return 0


def _runs(args: argparse.Namespace) -> int:
    from corrsteer_core.runs import list_runs

    rows = [
        {
            "run_id": m.get("run_id"),
            "status": m.get("status"),
            "task": m.get("task", {}).get("name"),
            "preset": m.get("identity", {}).get("preset"),
            "done": f"{m.get('n_done', 0)}/{m.get('n_items', 0)}",
        }
        for m in list_runs()
    ]
    _emit(args, rows, _table(pd.DataFrame(rows)))
    return 0


def _task_args(p: argparse.ArgumentParser, *, required_split: bool = False) -> None:
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


def add_commands(sub: Any, command: Callable[[str], Callable]) -> None:
    for name, fn in (
        ("select", _select),
        ("evaluate", _evaluate),
        ("sweep", _sweep),
        ("export", _export),
        ("show", _show),
        ("generate", _generate),
        ("tasks", _tasks),
        ("runs", _runs),
    ):
        command(name)(fn)
    sub.add_parser("tasks", help="list built-in tasks and benchmarks")
    sub.add_parser("runs", help="list collection runs in the cache")

    p = sub.add_parser("select", help="collect activations on a task and select a steering profile")
    p.add_argument("--preset", default="smollm2-135m-it")
    _task_args(p)
    p.add_argument("--layers", help="SAE layers to use, e.g. '0-29' or '3,5'")
    p.add_argument("--device")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--pooling", choices=["max", "mean"])
    p.add_argument("--constrained", action="store_true", help="multiple choice: only option letters")
    p.add_argument("--answer-span", action="store_true", help="pool only over the answer's tokens")
    p.add_argument("--strata", help="item metadata key to correlate within (removes confounds)")
    p.add_argument("--within-strata", action="store_true")
    p.add_argument("--site", choices=["sae", "block_input"], default="sae")
    p.add_argument("--variant", choices=["S", "A", "P", "O"], default="A")
    p.add_argument("--selector", choices=["corr", "mi", "fisher", "caa", "random", "shuffled"], default="corr")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--coefficient-mode", choices=["correct_mean", "correct_active_mean"], default="correct_mean")
    p.add_argument("--min-firing", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lam", type=float, default=1.0, help="O: penalty on right→wrong flips")
    p.add_argument("--budget", type=int, default=20000, help="O: most generations the search may spend")
    p.add_argument(
        "--screen-top", type=int, default=None, help="O: screen only the N layers with the highest r (default all)"
    )
    p.add_argument(
        "--screen-scales",
        type=scale_list,
        default=None,
        help="O: scales each layer is screened at alone, e.g. '0.25,0.5,1' (default 0.25,0.5,1)",
    )
    p.add_argument(
        "--whole-scales",
        type=whole_scale_list,
        default=None,
        help="O: global scales the whole profile is tried at first, e.g. '0.25,0.5' (the default), or 'none'",
    )
    p.add_argument("--name", help="save the profile under this name (cache/profiles)")
    p.add_argument("--out", help="also write the profile JSON here")

    for name, helptext in (
        ("evaluate", "unsteered vs steered on held-out items"),
        ("sweep", "global scale sweep"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("profile", help="profile file or saved name")
        _task_args(p)
        p.add_argument("--split", choices=["test", "validation", "train"], default="test")
        p.add_argument("--batch-size", type=int, default=16)
        p.add_argument("--device")
        if name == "evaluate":
            p.add_argument("--scale", type=float, help="global scale override")
            p.add_argument("--constrained", action="store_true")
            p.add_argument("--show-flips", type=int, default=10, help="how many flipped items to list")
        else:
            p.add_argument("--scales", default="0,0.25,0.5,0.75,1,1.5", help="e.g. '0,0.5,1' (at most 12)")
            p.add_argument("--plot", help="write the sweep plot as HTML here")

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

"""Pipeline commands: list tasks and runs, select a profile, evaluate it, sweep its scale, run its controls."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import pandas as pd

from corrsteer_core.cli.common import (
    add_task_args,
    check_device,
    check_output_file,
    command,
    emit,
    experiment_from_args,
    open_model,
    parse_layers,
    scale_list,
    table,
    whole_scale_list,
)

__all__ = ["add_parsers"]


@command("tasks")
def _tasks(args: argparse.Namespace) -> int:
    from corrsteer_core.tasks import list_tasks

    rows = [dataclasses.asdict(info) for info in list_tasks()]
    emit(args, rows, table(pd.DataFrame(rows)))
    return 0


@command("runs")
def _runs(args: argparse.Namespace) -> int:
    from corrsteer_core.runs import list_runs

    rows = [
        {
            "run_id": m.run_id,
            "status": m.status,
            "task": m.task.name,
            "preset": m.identity.preset,
            "done": f"{m.n_done}/{m.n_items}",
        }
        for m in list_runs()
    ]
    emit(args, rows, table(pd.DataFrame(rows)))
    return 0


def _hint_paired_half(experiment: Any) -> None:
    """Warn when a paired behaviour is correlated over both halves, whose correct replies pull opposite ways."""
    from corrsteer_core.tasks import list_tasks

    if experiment.split_spec.select_where or experiment.task_spec.custom is not None:
        return
    half = next((i.select_where for i in list_tasks() if i.name == experiment.task_spec.name), ())
    if half:
        where = " ".join(f"--select-where {k}={v}" for k, v in half)
        print(
            f"note: {experiment.task_spec.name} is a paired behaviour; features are usually selected on one half "
            f"({where}); this run correlates over both halves",
            file=sys.stderr,
        )


def _select_config(args: argparse.Namespace) -> Any:
    from corrsteer_core.config import OptimizeConfig, SelectConfig

    optimize = OptimizeConfig(
        lam=args.lam,
        budget=args.budget,
        screen_top=args.screen_top,
        **({"screen_scales": args.screen_scales} if args.screen_scales else {}),
        **({"whole_scales": args.whole_scales} if args.whole_scales is not None else {}),
    )
    return SelectConfig(
        variant=args.variant,
        selector=args.selector,
        k=args.k,
        coefficient_mode=args.coefficient_mode,
        within_strata=args.within_strata,
        min_firing=args.min_firing,
        seed=args.seed,
        optimize=optimize,
    )


@command("select")
def _select(args: argparse.Namespace) -> int:
    from corrsteer_core.collect import collect_activations
    from corrsteer_core.config import CollectConfig, GenerateConfig
    from corrsteer_core.diagnostics import cumulative_relative_norm, norm_diagnostics
    from corrsteer_core.presets import get_preset
    from corrsteer_core.profile_store import save_named_profile
    from corrsteer_core.progress import tqdm_progress
    from corrsteer_core.variants import select_profile

    # every argument is checked before the model loads and the selection runs
    check_device(args.device)
    out = check_output_file(args.out, "--out", (".json",)) if args.out else None
    layers = parse_layers(args.layers, get_preset(args.preset).model.n_layers)
    experiment = experiment_from_args(args)
    collect_cfg = CollectConfig(
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        pooling=args.pooling,
        answer_span_only=args.answer_span,
        constrained=args.constrained,
        strata_key=args.strata,
        site=args.site,
    )
    select_cfg = _select_config(args)
    gen = GenerateConfig.matching(collect_cfg)
    task, splits = experiment.build()
    _hint_paired_half(experiment)
    loaded, saes = open_model(args.preset, layers, args.device)
    with tqdm_progress(disable=args.json) as progress:
        run = collect_activations(
            loaded,
            saes,
            task,
            splits.train,
            collect_cfg,
            progress=progress,
            experiment=experiment.with_sizes(splits),
        )
        result = select_profile(
            run, loaded, saes, select_cfg, validation=(task, splits.validation), gen=gen, progress=progress
        )
    path = save_named_profile(result.profile, args.name)
    if out is not None:
        result.profile.save(out)
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
    steered = ", ".join(str(s.layer) for s in result.profile.enabled) or "none"
    text = "\n".join(
        [
            f"run {run.run_id}: {run.n} selection samples, {run.stats.n_correct} correct",
            *[f"warning: {w}" for w in result.warnings],
            "top feature per layer:",
            table(tops),
            f"profile ({args.variant}, {args.selector}) steers layer(s) {steered}:",
            table(diag),
            f"cumulative relative norm: {data['cumulative_relative_norm']:.3f}",
            f"saved to {path}",
        ]
    )
    emit(args, data, text)
    return 0


def _evaluation_items(profile: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """The task and the items of ``args.split``: from the task arguments when given, else the profile's own
    record where it may be followed (trust.recorded_experiment: never data a foreign profile names)."""
    from corrsteer_core.trust import recorded_experiment

    experiment = experiment_from_args(args) if args.task or args.custom else recorded_experiment(profile)
    task, splits = experiment.build()
    return task, {"test": splits.test, "validation": splits.validation, "train": splits.train}[args.split]


def _layers_of(profile: Any) -> tuple[int, ...]:
    return tuple(s.layer for s in profile.layers)


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    from corrsteer_core.config import GenerateConfig
    from corrsteer_core.evaluate import evaluate_profile, record_evaluation
    from corrsteer_core.profile_store import find_profile
    from corrsteer_core.progress import tqdm_progress

    check_device(args.device)
    profile = find_profile(args.profile)
    if args.scale is not None:
        profile = profile.with_global_scale(args.scale)
    task, items = _evaluation_items(profile, args)
    loaded, saes = open_model(profile.preset, _layers_of(profile), args.device)
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
            table(flips[["item_id", "change", "base_answer", "steered_answer", "target"]].head(args.show_flips))
            if args.show_flips
            else ""
        )
    )
    emit(args, {"summary": s, "flips": flips.to_dict(orient="records")}, text)
    return 0


@command("sweep")
def _sweep(args: argparse.Namespace) -> int:
    from corrsteer_core.config import GenerateConfig, parse_scales
    from corrsteer_core.evaluate import scale_sweep
    from corrsteer_core.profile_store import find_profile
    from corrsteer_core.progress import tqdm_progress

    check_device(args.device)
    plot = check_output_file(args.plot, "--plot", (".html",)) if args.plot else None
    profile = find_profile(args.profile)
    scales = parse_scales(args.scales)
    task, items = _evaluation_items(profile, args)
    loaded, saes = open_model(profile.preset, _layers_of(profile), args.device)
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
    if plot is not None:
        import plotly.express as px

        fig = px.line(
            df, x="scale", y=["steered_accuracy", "ser"], markers=True, title=f"{profile.name}: the dial"
        )
        fig.write_html(plot)
    cols = ["scale", "steered_accuracy", "diff", "ci_low", "ci_high", "pos", "neg", "ser", "changed", "p_value"]
    emit(args, df.to_dict(orient="records"), table(df[cols]))
    return 0


@command("controls")
def _controls(args: argparse.Namespace) -> int:
    from corrsteer_core.collect import load_collection
    from corrsteer_core.config import GenerateConfig
    from corrsteer_core.controls import CONTROLS, record_controls, run_with_controls
    from corrsteer_core.errors import ConfigError
    from corrsteer_core.profile_store import find_profile
    from corrsteer_core.progress import tqdm_progress
    from corrsteer_core.trust import local_run_experiment

    check_device(args.device)
    profile = find_profile(args.profile)
    chosen = tuple(c.strip() for c in args.controls.split(",") if c.strip())
    unknown = set(chosen) - set(CONTROLS)
    if unknown or not chosen:
        raise ConfigError(f"--controls takes a comma list of {', '.join(CONTROLS)}; got {args.controls!r}")
    # controls rebuild the method from the run in this cache, on the data that run recorded (never on data a
    # profile's own record names: see trust.py)
    experiment = local_run_experiment(profile.provenance.run_id)
    if experiment is None:
        raise ConfigError(
            "controls rebuild the profile's method from its run, and this cache holds no run "
            f"{profile.provenance.run_id!r} that records its task and split; select the profile here first"
        )
    run = load_collection(str(profile.provenance.run_id))
    task, splits = experiment.build()
    loaded, saes = open_model(profile.preset, tuple(run.layers), args.device)
    gen = GenerateConfig.matching(run.meta.collect, args.batch_size)
    with tqdm_progress(disable=args.json) as progress:
        report = run_with_controls(
            loaded,
            saes,
            run,
            task,
            splits.validation,
            splits.test,
            profile=profile,
            gen=gen,
            controls=chosen,
            seed=args.seed,
            progress=progress,
            on_condition=None if args.json else lambda c: print(f"building and testing: {c}", file=sys.stderr),
        )
    frame, verdict = report.table(), report.verdict()
    record_controls(profile, report)  # beside its run: steering cards of this profile quote the verdict
    cols = [c for c in ("condition", "steered_accuracy", "diff", "ci_low", "ci_high", "pos", "neg", "ser",
                        "p_value", "profile_ahead", "profile_ahead_p") if c in frame]  # fmt: skip
    emit(args, {"verdict": verdict, "table": frame.to_dict(orient="records")}, f"{verdict}\n{table(frame[cols])}")
    return 0


def add_parsers(sub: Any) -> None:
    sub.add_parser("tasks", help="list built-in tasks and benchmarks")
    sub.add_parser("runs", help="list collection runs in the cache")

    p = sub.add_parser("select", help="collect activations on a task and select a steering profile")
    p.add_argument("--preset", default="smollm2-135m-it")
    add_task_args(p)
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
        add_task_args(p)
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

    p = sub.add_parser(
        "controls",
        help="test a profile beside controls built with its own method (the app's Controls report)",
    )
    p.add_argument("profile", help="profile file or saved name (its run must be in this cache)")
    p.add_argument(
        "--controls",
        default="random-directions,shuffled-labels,random-features",
        help="comma list of random-directions, shuffled-labels, random-features",
    )
    p.add_argument("--seed", type=int, default=0, help="the random controls' draw")
    p.add_argument("--batch-size", type=int, default=None, help="default: the run's")
    p.add_argument("--device")

"""Quality of CorrSteer on the embedded default, with baselines and controls, on held-out test items.

For each task: collect on the selection split, build every condition's profile, evaluate it against the
unsteered model on the same test items (accuracy, paired bootstrap CI, POS/NEG/SER, changed answers, McNemar p),
and for paired behaviours (safety, xstest) the same per half. Results go to docs/results/<task>.json and a
Markdown table is printed. Everything is cached, so a rerun reuses collections and generations.

    python benchmarks/bench_quality.py --tasks arithmetic,safety [--conditions S,A,P,mi,fisher,caa,random,shuffled]
    python benchmarks/bench_quality.py --tasks safety --conditions O --controls --seeds 0,1,2

Conditions: S, A, P (corr selector); mi, fisher, caa, random, shuffled (variant A with that selector); A@x
(A at global scale x, e.g. A@0.5); O (joint optimisation on validation). ``--controls`` adds, for each variant
condition, the same variant built from random directions and from shuffled labels.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from corrsteer_core.cli_pipeline import scale_list, whole_scale_list

from corrsteer_core.collect import collect_activations
from corrsteer_core.config import VARIANTS, CollectConfig, GenerateConfig, OptimizeConfig, SelectConfig
from corrsteer_core.controls import head_to_head
from corrsteer_core.diagnostics import cumulative_relative_norm, norm_diagnostics
from corrsteer_core.errors import CorrSteerError
from corrsteer_core.evaluate import EvaluationResult, evaluate_profile
from corrsteer_core.experiment import Experiment, SplitSpec, TaskSpec, matching
from corrsteer_core.loading import load_model
from corrsteer_core.presets import DEFAULT_PRESET
from corrsteer_core.profile import SteeringProfile
from corrsteer_core.progress import tqdm_progress
from corrsteer_core.saes import load_saes
from corrsteer_core.significance import mean_std
from corrsteer_core.tasks import list_tasks
from corrsteer_core.variants import select_profile

# selection / validation / test sizes per task, sized for 2 CPU cores (about 2-10 minutes per task and
# condition set; see docs/results/README.md for the commands and timings actually used)
SIZES: dict[str, dict[str, Any]] = {
    "arithmetic": {"n_train": 200, "n_val": 30, "n_test": 150},
    "capitals": {"n_train": 87, "n_val": 30, "n_test": 70},
    # paired behaviours (safety, language, xstest) are selected on the half the task registry names (harmful
    # requests; "in French" requests), while validation and test keep both halves, so side effects show as NEG
    "safety": {"n_train": 360, "n_val": 60, "n_test": 240},
    "format": {"n_train": 200, "n_val": 30, "n_test": 150},
    "language": {"n_train": 320, "n_val": 100, "n_test": 360},
    # multiple choice: one generated token, but long prompts (prefill dominates: ~3 items/s)
    "bbq_ambig": {"limit": 1500, "n_train": 240, "n_val": 20, "n_test": 150},
    "bbq_disambig": {"limit": 1500, "n_train": 240, "n_val": 20, "n_test": 150},
    "harmbench": {"n_train": 100, "n_val": 20, "n_test": 70},
    "xstest": {"n_train": 200, "n_val": 30, "n_test": 150},
    "gsm8k": {"limit": 120, "n_train": 70, "n_val": 10, "n_test": 40},
}
SELECTOR_CONDITIONS = ("mi", "fisher", "caa", "random", "shuffled")


def _extra_rows(task: Any, items: Any, result: EvaluationResult) -> list[dict[str, Any]]:
    """Secondary measures of the same generations (e.g. the number's correctness on ``format``)."""
    rows = []
    table = result.table.set_index("item_id")
    for scorer in task.extra_scorers:
        base = [bool(scorer(table.loc[i.id, "base_generation"], i).correct) for i in items]
        steered = [bool(scorer(table.loc[i.id, "steered_generation"], i).correct) for i in items]
        rows.append(
            {
                "scorer": scorer.name,
                "base_accuracy": sum(base) / len(items),
                "steered_accuracy": sum(steered) / len(items),
                "pos": sum(s and not b for b, s in zip(base, steered, strict=True)),
                "neg": sum(b and not s for b, s in zip(base, steered, strict=True)),
            }
        )
    return rows


def _versus(condition: str, result: EvaluationResult, done: dict[str, EvaluationResult]) -> dict | None:
    """A control ("random-directions:P") against the profile it controls ("P"), head to head on the test items."""
    profile = condition.split(":")[-1]
    if ":" not in condition or profile not in done:
        return None
    return {"profile": profile, **dataclasses.asdict(head_to_head(done[profile], result))}


def _asdict(record: Any) -> dict[str, Any] | None:
    return dataclasses.asdict(record) if record is not None else None


def _profile_for(condition: str, ctx: dict[str, Any], progress: Any) -> SteeringProfile:
    """A condition's profile, built by the library's one variant builder (variants.select_profile)."""
    run, lm, saes, task, val, gen, opt = (ctx[k] for k in ("run", "lm", "saes", "task", "val", "gen", "opt"))
    source, _, variant = condition.rpartition(":")
    cfg = SelectConfig(variant="A", seed=ctx["seed"], optimize=opt)
    if variant in SELECTOR_CONDITIONS:
        cfg = dataclasses.replace(cfg, selector=variant)
    elif variant.startswith("A@"):
        return select_profile(run, lm, saes, cfg).profile.with_global_scale(float(variant[2:]))
    elif variant in VARIANTS:
        cfg = dataclasses.replace(cfg, variant=variant)
    else:
        raise SystemExit(f"unknown condition {condition!r}")
    validation = (task, val)
    return select_profile(
        run, lm, saes, cfg, validation=validation, gen=gen, progress=progress, source=source or "features"
    ).profile


def run_task(name: str, conditions: list[str], seed: int, args: argparse.Namespace, lm: Any, saes: Any) -> dict:
    sizes = dict(SIZES.get(name, {"n_train": 200, "n_val": 50, "n_test": 100}))
    for pair in filter(None, args.sizes.split(",")):
        key, _, value = pair.partition("=")
        if key not in ("limit", "n_train", "n_val", "n_test"):
            raise SystemExit(f"--sizes takes limit, n_train, n_val, n_test; got {key!r}")
        sizes[key] = int(value)
    task_spec = TaskSpec(name=name, limit=sizes.pop("limit", None))
    half = next((dict(i.select_where) for i in list_tasks() if i.name == name and i.select_where), None)
    split_spec = SplitSpec(seed=args.split_seed, select_where=half, **sizes)
    experiment = Experiment(task_spec, split_spec)
    task, splits = experiment.build()
    train, validation = splits.train, splits.validation
    if seed:  # repeats over selection seeds: selection and validation re-drawn from their pool, same test items
        import random

        unfiltered = dataclasses.replace(split_spec, select_where=None).resolve(task)
        pool = list(unfiltered.train) + list(unfiltered.validation)
        random.Random(seed).shuffle(pool)
        validation = tuple(pool[: len(unfiltered.validation)])
        train = matching(pool[len(validation) :], split_spec.select_where or {})
        splits = dataclasses.replace(splits, train=train, validation=validation)
    gen = GenerateConfig(batch_size=args.batch_size)
    started = time.perf_counter()
    with tqdm_progress() as progress:
        run = collect_activations(
            lm,
            saes,
            task,
            train,
            CollectConfig(batch_size=args.batch_size),
            progress=progress,
            experiment=experiment.with_sizes(splits),
        )
        ctx = {
            "run": run,
            "lm": lm,
            "saes": saes,
            "task": task,
            "val": validation,
            "gen": gen,
            "seed": seed,
            "opt": OptimizeConfig(
                lam=args.lam,
                budget=args.budget,
                screen_top=args.screen_top,
                screen_scales=args.screen_scales,  # default (1.0,): shared with P's layer-alone generations
                whole_scales=args.whole_scales,
                forward_scales=(0.25, 0.5, 1.0),
                pool_size=4,
                max_layers=3,
            ),
        }
        rows = []
        evaluated: dict[str, EvaluationResult] = {}
        for condition in conditions:
            condition_started = time.perf_counter()
            profile = _profile_for(condition, ctx, progress)
            result = evaluate_profile(
                lm, saes, task, splits.test, profile, cfg=gen, progress=progress, label=condition
            )
            diag = norm_diagnostics(profile, saes, run.resid_norm)
            evaluated[condition] = result
            rows.append(
                {
                    **result.summary(),
                    "condition": condition,
                    "layers": len(profile.enabled),
                    "cum_rel_norm": cumulative_relative_norm(diag),
                    "groups": result.groups(task.paired_key),
                    "extra": _extra_rows(task, splits.test, result),
                    "validation": _asdict(profile.provenance.validation),
                    "kept_layers": profile.provenance.kept_layers,
                    "seconds": time.perf_counter() - condition_started,
                    "steered_layers": [
                        [s.layer, s.feature, s.scale * profile.global_scale] for s in profile.enabled
                    ],
                    "versus": _versus(condition, result, evaluated),
                }
            )
    return {
        "task": name,
        "preset": args.preset,
        "seed": seed,
        "sizes": {k: len(v) for k, v in (("train", train), ("validation", validation), ("test", splits.test))},
        "n_correct_selection": run.stats.n_correct,
        "warnings": run.warnings,
        "seconds": time.perf_counter() - started,
        "rows": rows,
    }


def _preset_note(result: dict) -> str:
    preset = result.get("preset", DEFAULT_PRESET)
    return "" if preset == DEFAULT_PRESET else f", {preset}"


def markdown(result: dict) -> str:
    s = result["sizes"]
    lines = [
        f"### {result['task']}{_preset_note(result)} (selection {s['train']}, {result['n_correct_selection']} "
        f"correct; validation {s['validation']}; test {s['test']}; seed {result['seed']})",
        "",
        "| condition | layers | unsteered | steered | diff [95% CI] | POS | NEG | SER | changed | McNemar p "
        "| degenerate | Σ rel. norm |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ser = f"{r['ser']:.2f}" if r["ser"] is not None else "–"
        lines.append(
            f"| {r['condition']} | {r['layers']} | {r['base_accuracy']:.1%} | {r['steered_accuracy']:.1%} | "
            f"{r['diff']:+.1%} [{r['ci_low']:+.1%}, {r['ci_high']:+.1%}] | {r['pos']} | {r['neg']} | {ser} | "
            f"{r['changed']} | {r['p_value']:.3g} | {r['steered_degenerate']} | {r['cum_rel_norm']:.2f} |"
        )
        for x in r.get("extra", []):
            lines.append(
                f"| ↳ side effect: {x['scorer']} | | {x['base_accuracy']:.1%} | {x['steered_accuracy']:.1%} | | "
                f"{x['pos']} | {x['neg']} | | | | | |"
            )
        if v := r.get("versus"):
            lines.append(
                f"| ↳ {v['profile']} vs this control | | | | {v['diff']:+.1%} [{v['ci_low']:+.1%}, "
                f"{v['ci_high']:+.1%}] | {v['pos']} | {v['neg']} | | | {v['p_value']:.3g} | | |"
            )
        for g in r["groups"]:
            lines.append(
                f"| ↳ {g['group']} | | {g['base_accuracy']:.1%} | {g['steered_accuracy']:.1%} | | {g['pos']} | "
                f"{g['neg']} | | | | | |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", default="arithmetic,capitals,safety,format,bbq_ambig,bbq_disambig,harmbench,xstest,gsm8k"
    )
    parser.add_argument("--conditions", default="S,A,A@0.5,P,mi,fisher,caa,random,shuffled")
    parser.add_argument(
        "--controls", action="store_true", help="add random-directions and shuffled-labels versions"
    )
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--budget", type=int, default=6000, help="O: generations per search")
    parser.add_argument("--screen-top", type=int, default=10, help="O: layers screened (highest r)")
    parser.add_argument("--screen-scales", type=scale_list, default=(1.0,), help="O: e.g. 0.25,0.5,1")
    parser.add_argument(
        "--whole-scales", type=whole_scale_list, default=(0.25, 0.5), help="O: whole profile first; 'none' skips"
    )
    parser.add_argument("--sizes", default="", help="override split sizes, e.g. n_val=60,n_test=200")
    parser.add_argument(
        "--control-of", default="A,S,P,O", help="variants that get controls with --controls (comma list)"
    )
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="model + SAE preset (e.g. smollm2-135m-it-4096)")
    parser.add_argument("--out", default="docs/results")
    parser.add_argument("--tag", default="", help="results file suffix: docs/results/<task>-<tag>.json")
    args = parser.parse_args()
    conditions = args.conditions.split(",")
    if args.controls:
        conditions += [
            f"{c}:{v}"
            for v in list(conditions)
            for c in ("random-directions", "shuffled-labels")
            if v in args.control_of.split(",")
        ]
    lm = load_model(args.preset)
    saes = load_saes(lm)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.tasks.split(","):
        try:
            results = [run_task(name, conditions, int(seed), args, lm, saes) for seed in args.seeds.split(",")]
        except CorrSteerError as error:  # e.g. no correct sample at all: nothing to correlate
            print(f"### {name}: not measurable: {error}", flush=True)
            (out / f"{name}-{args.tag or 'run'}.md").write_text(f"### {name}\n\nnot measurable: {error}\n")
            continue
        for result in results:
            print(markdown(result), flush=True)
        seed_lines = []
        if len(results) > 1:
            for i, condition in enumerate(conditions):
                m, sd = mean_std([r["rows"][i]["diff"] for r in results])
                seed_lines.append(f"{name} {condition}: diff over seeds {m:+.1%} ± {sd:.1%}")
                print(seed_lines[-1])
        suffix = f"-{args.tag}" if args.tag else ""
        (out / f"{name}{suffix}.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
        (out / f"{name}{suffix}.md").write_text("\n\n".join([*map(markdown, results), *seed_lines]) + "\n")


if __name__ == "__main__":
    main()

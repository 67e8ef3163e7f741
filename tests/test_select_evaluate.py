"""Selection variants, evaluation with side effects, sweeps, optimisation and controls on the tiny model."""

from __future__ import annotations

import dataclasses

import pytest

from corrsteer_core.collect import collect_activations
from corrsteer_core.config import CollectConfig, OptimizeConfig, SelectConfig
from corrsteer_core.controls import run_with_controls
from corrsteer_core.errors import ConfigError, SelectionError
from corrsteer_core.evaluate import (
    cached_outcomes,
    compare_outcomes,
    evaluate_profile,
    record_evaluation,
    scale_sweep,
)
from corrsteer_core.optimize import optimize_profile
from corrsteer_core.runs import RunStore
from corrsteer_core.steer import Outcome
from corrsteer_core.variants import select_profile
from tests.helpers import toy_task


@pytest.fixture(scope="module")
def setup(tiny, tiny_saes, tmp_path_factory):
    import os

    os.environ["CORRSTEER_CACHE"] = str(tmp_path_factory.mktemp("select-cache"))
    task = toy_task(60)
    train, val, test = task.items[:32], task.items[32:44], task.items[44:]
    run = collect_activations(tiny, tiny_saes, task, train, CollectConfig(batch_size=16))
    return task, run, val, test


def test_variants_s_and_a(tiny, tiny_saes, setup):
    _, run, _, _ = setup
    cfg = SelectConfig(min_correct=1, min_incorrect=1)
    a = select_profile(run, tiny, tiny_saes, cfg)
    assert [s.layer for s in a.profile.layers] == [c[0].layer for c in a.candidates if c]
    for s, cands in zip(a.profile.layers, [c for c in a.candidates if c], strict=True):
        assert s.feature == cands[0].feature and s.r > 0 and s.coefficient == pytest.approx(cands[0].coefficient)
    s_prof = select_profile(run, tiny, tiny_saes, SelectConfig(variant="S")).profile
    best = max((c[0] for c in a.candidates if c), key=lambda c: c.r)
    assert [(x.layer, x.feature) for x in s_prof.layers] == [(best.layer, best.feature)]
    for selector in ("mi", "fisher", "caa", "random", "shuffled"):
        prof = select_profile(run, tiny, tiny_saes, SelectConfig(selector=selector)).profile
        assert prof.layers and prof.provenance.select is not None and prof.provenance.select.selector == selector
    with pytest.raises(SelectionError, match="validation"):
        select_profile(run, tiny, tiny_saes, SelectConfig(variant="P"))
    with pytest.raises(ConfigError, match="Valid values"):
        SelectConfig(selector="magic")


def test_variant_p_keeps_only_layers_that_help_alone(tiny, tiny_saes, setup):
    task, run, val, _ = setup
    res = select_profile(run, tiny, tiny_saes, SelectConfig(variant="P"), validation=(task, val))
    table = res.details
    assert set(table.loc[table["kept"], "layer"]) == {s.layer for s in res.profile.enabled}
    assert (table["kept"] == (table["accuracy_alone"] > table["unsteered_accuracy"])).all()


def test_evaluation_counts_flips_and_reuses_cache(tiny, tiny_saes, setup):
    task, run, _, test = setup
    profile = select_profile(run, tiny, tiny_saes).profile
    result = evaluate_profile(tiny, tiny_saes, task, test, profile)
    table, e = result.table, result.effects
    assert e.pos == (table["change"] == "wrong→right").sum() and e.neg == (table["change"] == "right→wrong").sum()
    assert e.n == len(test) and e.base_accuracy == pytest.approx(table["base_correct"].mean())
    calls = []
    again = cached_outcomes(tiny, task, test, profile=profile, saes=tiny_saes, progress=lambda *a: calls.append(a))
    assert not calls and [o.generation for o in again] == list(table["steered_generation"])
    sweep = scale_sweep(tiny, tiny_saes, task, test, profile, [0.0, 1.0])
    assert sweep.loc[0, "diff"] == 0 and sweep.loc[0, "changed"] == 0
    assert sweep.loc[1, "steered_accuracy"] == pytest.approx(e.steered_accuracy)


def test_evaluations_are_saved_with_their_run_and_foreign_run_ids_are_ignored(tiny, tiny_saes, setup):
    task, run, _, test = setup
    profile = select_profile(run, tiny, tiny_saes).profile
    assert profile.provenance.run_id == run.run_id
    result = evaluate_profile(tiny, tiny_saes, task, test, profile)
    path = record_evaluation(profile, result, "test")
    assert path is not None and path.parent.parent == RunStore(run.run_id).folder
    half = profile.with_global_scale(0.5)
    record_evaluation(half, evaluate_profile(tiny, tiny_saes, task, test, half), "test")
    saved = RunStore(run.run_id).evaluations()
    assert [r["profile_hash"] for r in saved] == [half.content_hash(), profile.content_hash()]  # newest first
    assert saved[1]["summary"] == result.summary() and saved[0]["global_scale"] == 0.5
    record_evaluation(profile, result, "test")  # the same profile again replaces its record
    assert len(RunStore(run.run_id).evaluations()) == 2
    for bad in ("../../escape", "no-such-run", ""):  # e.g. an imported profile's provenance
        foreign = dataclasses.replace(profile, provenance=dataclasses.replace(profile.provenance, run_id=bad))
        assert record_evaluation(foreign, result, "test") is None
    assert len(RunStore(run.run_id).evaluations()) == 2


def test_compare_outcomes_by_hand():
    task = toy_task(4)
    base = [
        Outcome("a", "x", "1", False),
        Outcome("b", "y", "2", True),
        Outcome("c", "z", "3", True),
        Outcome("d", "w", "4", False),
    ]
    steered = [
        Outcome("a", "x", "9", True),
        Outcome("b", "y", "5", False),
        Outcome("c", "z", "3", True),
        Outcome("d", "q", "7", False),
    ]
    res = compare_outcomes(task, task.items, base, steered)
    assert list(res.table["change"]) == ["wrong→right", "right→wrong", "same", "changed"]
    assert (res.effects.pos, res.effects.neg, res.effects.changed) == (1, 1, 3)
    assert res.effects.ser == pytest.approx(0.5)


def test_optimiser_respects_budget_and_controls_report(tiny, tiny_saes, setup):
    task, run, val, test = setup
    base = select_profile(run, tiny, tiny_saes).profile
    cfg = OptimizeConfig(
        budget=len(val) * 6, screen_scales=(0.5, 1.0), scales=(0.5, 1.0), pool_size=2, max_layers=2
    )
    optimised, trace = optimize_profile(tiny, tiny_saes, base, task, val, cfg=cfg)
    assert trace["spent"].max() <= cfg.budget
    best = trace["objective"].max()
    assert optimised.provenance.validation is not None
    assert optimised.provenance.validation.objective == pytest.approx(best)
    report = run_with_controls(tiny, tiny_saes, run, task, val, test, select=SelectConfig(variant="A"))
    table = report.table()
    assert list(table["condition"]) == ["profile", "random-directions", "shuffled-labels", "random-features"]
    assert (table["n"] == len(test)).all() and isinstance(report.verdict(), str)


def test_optimiser_tries_the_whole_profile_at_small_scales_first(tiny, tiny_saes, setup):
    task, run, val, _ = setup
    base = select_profile(run, tiny, tiny_saes).profile
    cfg = OptimizeConfig(budget=len(val) * 3, screen_scales=(1.0,), whole_scales=(0.25, 0.5))
    _, trace = optimize_profile(tiny, tiny_saes, base, task, val, cfg=cfg)
    whole = trace[trace["stage"] == "whole"]
    assert list(whole["global_scale"]) == [0.25, 0.5]
    assert all(set(layers) == {s.layer for s in base.layers} for layers in whole["layers"])
    assert trace.index[trace["stage"] == "whole"].max() < trace.index[trace["stage"] == "screen"].min()
    _, plain = optimize_profile(tiny, tiny_saes, base, task, val, cfg=dataclasses.replace(cfg, whole_scales=()))
    assert "whole" not in set(plain["stage"])
    with pytest.raises(ConfigError, match="whole_scales"):
        OptimizeConfig(whole_scales=(0.0,))


def test_variant_o_takes_lambda_and_budget_from_the_selection_config(tiny, tiny_saes, setup):
    task, run, val, _ = setup
    cfg = SelectConfig(variant="O", optimize=OptimizeConfig(lam=2.0, budget=len(val) * 3))
    res = select_profile(run, tiny, tiny_saes, cfg, validation=(task, val))
    prov = res.profile.provenance
    assert prov.select == cfg and prov.variant == "O"
    assert prov.validation is not None and prov.validation.generations <= len(val) * 3
    neg = res.details["neg"].to_numpy()
    assert res.details["objective"].to_numpy() == pytest.approx(
        res.details["accuracy"].to_numpy() - 2.0 * neg / len(val)
    )
    for bad in ({"lam": -1.0}, {"budget": 0}):
        with pytest.raises(ConfigError):
            SelectConfig(variant="O", optimize=OptimizeConfig(**bad))  # type: ignore[arg-type]


@pytest.mark.parametrize("variant", ["S", "O"])
def test_controls_report_tests_the_profile_the_user_selected(tiny, tiny_saes, setup, variant):
    """The "profile" row is the selected profile: built with the same variant and O's own lambda and budget."""
    task, run, val, test = setup
    search = OptimizeConfig(lam=1.5, budget=len(val) * 2, screen_scales=(1.0,), whole_scales=(0.5,))
    cfg = SelectConfig(variant=variant, optimize=search)
    selected = select_profile(run, tiny, tiny_saes, cfg, validation=(task, val)).profile
    report = run_with_controls(tiny, tiny_saes, run, task, val, test, select=cfg, controls=("random-directions",))
    row = report.profiles["profile"]
    assert row.content_hash() == selected.content_hash() and row.provenance.select == cfg
    control = report.profiles["random-directions"]
    assert control.provenance.select is not None and control.provenance.select.optimize == search
    if variant == "S":  # S is one feature steered alone, for the profile and its control alike
        assert len(row.layers) == 1 and len(control.layers) == 1
    edited = selected.with_global_scale(0.5)  # what the app passes: the profile as the user edited it
    again = run_with_controls(tiny, tiny_saes, run, task, val, test, profile=edited, controls=("shuffled-labels",))
    assert again.profiles["profile"] == edited and again.results["profile"].table["item_id"].tolist() == [
        i.id for i in test
    ]


def test_optimiser_screens_only_the_top_layers_and_uses_forward_scales(tiny, tiny_saes, setup):
    task, run, val, _ = setup
    base = select_profile(run, tiny, tiny_saes).profile
    top = max(base.layers, key=lambda s: s.score if s.score is not None else float("-inf")).layer
    cfg = OptimizeConfig(
        screen_top=1, screen_scales=(1.0,), forward_scales=(0.5,), scales=(0.5, 1.0), budget=10_000
    )
    _, trace = optimize_profile(tiny, tiny_saes, base, task, val, cfg=cfg)
    screened = trace[trace["stage"] == "screen"]
    assert len(screened) == 1 and screened["layers"].iloc[0] == {top: 1.0}
    forward = trace[trace["stage"] == "forward"]
    assert all(set(s.values()) <= {0.5} for s in forward["layers"])
    with pytest.raises(ConfigError, match="screen_top"):
        OptimizeConfig(screen_top=0)
    with pytest.raises(ConfigError, match="forward_scales"):
        OptimizeConfig(forward_scales=())


def test_cached_generations_are_judged_again_on_load(tiny, setup):
    import json
    import os
    from pathlib import Path

    task, _, _, test = setup
    first = cached_outcomes(tiny, task, test)
    files = list(Path(os.environ["CORRSTEER_CACHE"]).glob("generations/*.json"))
    tampered = 0
    for path in files:  # stale verdicts everywhere, as if an older scorer had written them
        stored = json.loads(path.read_text())
        for row in stored.values():
            row["correct"], row["answer"] = not row["correct"], "stale"
        tampered += len(set(stored) & {item.id for item in test})
        path.write_text(json.dumps(stored))
    assert tampered >= len(test)
    again = cached_outcomes(tiny, task, test)
    assert [(o.correct, o.answer) for o in again] == [(o.correct, o.answer) for o in first]
    assert [o.generation for o in again] == [o.generation for o in first]

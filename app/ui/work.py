"""The computations behind the app's buttons, as plain functions of already loaded objects.

Functions ending in ``_work`` run inside a background job (:mod:`app.ui.jobs`): they take a progress callback
last, pass it to the core (which reports per batch and stops there when the user cancels) and never call
Streamlit. The core takes the model's lock around every steered or unsteered generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from corrsteer_core.collect import CollectionResult, collect_activations
from corrsteer_core.config import CollectConfig, GenerateConfig, SelectConfig, parse_scales
from corrsteer_core.controls import ControlReport, run_with_controls
from corrsteer_core.errors import ConfigError
from corrsteer_core.evaluate import (
    EvaluationResult,
    cached_outcomes,
    evaluate_profile,
    record_evaluation,
    scale_sweep,
)
from corrsteer_core.experiment import Experiment
from corrsteer_core.loading import LoadedModel
from corrsteer_core.optimize import prune_profile
from corrsteer_core.profile import SteeringProfile
from corrsteer_core.progress import Progress
from corrsteer_core.saes import SAESet
from corrsteer_core.steer import generate_texts, profile_vectors
from corrsteer_core.variants import SelectionResult, select_profile

__all__ = [
    "collect_and_select_work",
    "controls_work",
    "evaluate_work",
    "parse_scales",
    "select_work",
    "sweep_work",
    "try_item",
    "try_prompt",
    "validate_layers_work",
]


def collect_and_select_work(
    loaded: LoadedModel,
    saes: SAESet,
    experiment: Experiment,
    task: Any,
    splits: Any,
    collect_cfg: CollectConfig,
    select_cfg: SelectConfig,
    progress: Progress,
) -> tuple[CollectionResult, SelectionResult]:
    """Collect (or resume, or reopen) the run on the selection split, then select the profile."""
    recorded = experiment.with_sizes(splits)  # so `corrsteer evaluate` and a reopened run rebuild the same split
    run = collect_activations(
        loaded, saes, task, splits.train, collect_cfg, progress=progress, experiment=recorded
    )
    return run, select_work(loaded, saes, run, task, splits, select_cfg, progress)


def select_work(
    loaded: LoadedModel,
    saes: SAESet,
    run: CollectionResult,
    task: Any,
    splits: Any,
    select_cfg: SelectConfig,
    progress: Progress,
) -> SelectionResult:
    validation = (task, splits.validation) if select_cfg.variant in ("P", "O") else None
    return select_profile(
        run,
        loaded,
        saes,
        select_cfg,
        validation=validation,
        gen=GenerateConfig.matching(run.meta.collect),
        progress=progress,
    )


def evaluate_work(
    loaded: LoadedModel,
    saes: SAESet,
    task: Any,
    items: Sequence[Any],
    profile: SteeringProfile,
    gen: GenerateConfig,
    progress: Progress,
) -> EvaluationResult:
    result = evaluate_profile(loaded, saes, task, items, profile, cfg=gen, progress=progress)
    record_evaluation(profile, result, "test")  # kept with the run: listed again after a restart
    return result


def sweep_work(
    loaded: LoadedModel,
    saes: SAESet,
    task: Any,
    items: Sequence[Any],
    profile: SteeringProfile,
    scales: Sequence[float],
    gen: GenerateConfig,
    progress: Progress,
) -> pd.DataFrame:
    return scale_sweep(loaded, saes, task, items, profile, scales, cfg=gen, progress=progress)


def controls_work(
    loaded: LoadedModel,
    saes: SAESet,
    run: CollectionResult,
    task: Any,
    splits: Any,
    profile: SteeringProfile,
    gen: GenerateConfig,
    progress: Progress,
) -> ControlReport:
    """The profile as the user edited it, beside its controls built with the profile's own settings and dialled
    like it; the progress stage names the condition being built or tested ("random-directions · steered")."""
    running = ["profile"]

    def named(stage: str, done: int, total: int) -> None:
        progress(f"{running[0]} · {stage}", done, total)

    def on_condition(condition: str) -> None:
        running[0] = condition
        named("building", 0, 0)

    return run_with_controls(
        loaded,
        saes,
        run,
        task,
        splits.validation,
        splits.test,
        profile=profile,
        gen=gen,
        progress=named,
        on_condition=on_condition,
        match_edits=True,
    )


def validate_layers_work(
    loaded: LoadedModel,
    saes: SAESet,
    profile: SteeringProfile,
    task: Any,
    items: Sequence[Any],
    gen: GenerateConfig,
    progress: Progress,
) -> tuple[SteeringProfile, pd.DataFrame]:
    """Variant P's test on every layer of ``profile``: which layers beat unsteered alone on validation."""
    if not items:
        raise ConfigError(
            "validation needs validation items: give the validation split a size > 0 on the Run page"
        )
    return prune_profile(loaded, saes, profile.with_enabled(None), task, items, gen=gen, progress=progress)


def try_prompt(
    loaded: LoadedModel,
    saes: SAESet,
    profile: SteeringProfile,
    prompt: str,
    max_new_tokens: int,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Unsteered and steered replies to one free prompt (greedy); the unsteered one is reused from ``previous``
    when it answered the same prompt with the same length."""
    vectors = profile_vectors(loaded, saes, profile)
    same = previous is not None and (previous.get("prompt"), previous.get("max_new")) == (prompt, max_new_tokens)
    base = previous["base"] if same and previous is not None else None
    if base is None:
        base = generate_texts(loaded, [prompt], max_new_tokens=max_new_tokens)[0]
    steered = generate_texts(
        loaded, [prompt], vectors=vectors, positions=profile.positions, max_new_tokens=max_new_tokens
    )[0]
    return {
        "prompt": prompt,
        "max_new": max_new_tokens,
        "base": base,
        "steered": steered,
        "hash": profile.content_hash(),
    }


def try_item(
    loaded: LoadedModel, saes: SAESet, profile: SteeringProfile, task: Any, item: Any, gen: GenerateConfig
) -> dict[str, Any]:
    """Unsteered and steered outcomes of one test item (shared with the evaluation's on-disk cache)."""
    base = cached_outcomes(loaded, task, [item], cfg=gen)[0]
    steered = cached_outcomes(loaded, task, [item], profile=profile, saes=saes, cfg=gen)[0]
    return {
        "prompt": item.prompt,
        "target": item.target,
        "base": base.generation,
        "steered": steered.generation,
        "base_correct": base.correct,
        "steered_correct": steered.correct,
        "hash": profile.content_hash(),
    }

"""The computations behind the app's buttons, as plain functions of already loaded objects.

Functions ending in ``_work`` run inside a background job (:mod:`app.ui.jobs`): they take a progress callback
last, pass it to the core (which reports per batch and stops there when the user cancels) and never call
Streamlit. The core takes the model's lock around every steered or unsteered generation.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from app.ui.text import md
from corrsteer_core.collect import CollectionResult, collect_activations
from corrsteer_core.config import CollectConfig, GenerateConfig, SelectConfig, parse_scales
from corrsteer_core.controls import ControlReport, record_controls, run_with_controls
from corrsteer_core.errors import ConfigError
from corrsteer_core.evaluate import (
    EvaluationResult,
    cached_outcomes,
    evaluate_profile,
    record_evaluation,
    scale_sweep,
)
from corrsteer_core.experiment import Experiment
from corrsteer_core.generation import Sampling
from corrsteer_core.loading import LoadedModel
from corrsteer_core.optimize import prune_profile
from corrsteer_core.profile import SteeringProfile
from corrsteer_core.progress import Progress
from corrsteer_core.saes import SAESet
from corrsteer_core.steer import generate_texts, profile_vectors
from corrsteer_core.variants import SelectionResult, select_profile

__all__ = [
    "ReplyStream",
    "collect_and_select_work",
    "controls_work",
    "evaluate_work",
    "parse_scales",
    "profile_vectors",
    "reusable_base",
    "select_work",
    "sweep_work",
    "try_item",
    "try_prompt",
    "try_result",
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

    report = run_with_controls(
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
    record_controls(profile, report)  # steering cards of exactly this profile quote the verdict
    return report


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


def reusable_base(previous: dict[str, Any] | None, prompt: str, max_new: int, sampling: Sampling | None) -> Any:
    """The unsteered reply(ies) of ``previous`` when it answered the same prompt, length and sampling, else None
    (steering edits never change the unsteered reply, so it is not generated again)."""
    if previous is None:
        return None
    same = (previous.get("prompt"), previous.get("max_new"), previous.get("sampling")) == (
        prompt,
        max_new,
        _sampling_label(sampling),
    )
    if not same:
        return None
    samples = previous.get("base_samples") or []
    return samples if len(samples) > 1 else previous["base"]


def _sampling_label(sampling: Sampling | None) -> str:
    if sampling is None or sampling.greedy:
        return ""
    return (
        f"sampled: temperature {sampling.temperature:g}, top-p {sampling.top_p:g}, seed {sampling.seed}, "
        f"{sampling.n_samples} sample(s)"
    )


def try_result(
    profile: SteeringProfile,
    prompt: str,
    max_new: int,
    sampling: Sampling | None,
    bases: Sequence[str],
    steereds: Sequence[str],
) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "max_new": max_new,
        "sampling": _sampling_label(sampling),
        "base": bases[0],
        "steered": steereds[0],
        "base_samples": list(bases),
        "steered_samples": list(steereds),
        "hash": profile.content_hash(),
    }


def try_prompt(
    loaded: LoadedModel,
    saes: SAESet,
    profile: SteeringProfile,
    prompt: str,
    max_new_tokens: int,
    previous: dict[str, Any] | None = None,
    sampling: Sampling | None = None,
) -> dict[str, Any]:
    """Unsteered and steered replies to one free prompt (greedy, or ``sampling.n_samples`` sampled replies each,
    the same seed for both sides); the unsteered ones are reused from ``previous`` when they answered the same
    prompt with the same length and sampling."""
    vectors = profile_vectors(loaded, saes, profile)
    base = reusable_base(previous, prompt, max_new_tokens, sampling)
    if base is None:
        base = generate_texts(loaded, [prompt], max_new_tokens=max_new_tokens, sampling=sampling)
    bases = [base] if isinstance(base, str) else list(base)
    steered = generate_texts(
        loaded,
        [prompt],
        vectors=vectors,
        positions=profile.positions,
        max_new_tokens=max_new_tokens,
        sampling=sampling,
    )
    return try_result(profile, prompt, max_new_tokens, sampling, bases, steered)


class ReplyStream:
    """One reply generated in a worker thread, handed out piece by piece as its tokens arrive.

    Iterate :meth:`inert_pieces` (for ``st.write_stream``: every piece escaped, so model output cannot act as
    markdown or HTML); afterwards :attr:`text` is the whole reply, exactly as the non-streamed call returns it.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        prompt: str,
        *,
        vectors: Any = None,
        positions: str = "generation",
        max_new_tokens: int,
        sampling: Sampling | None = None,
    ) -> None:
        self._loaded = loaded
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._outcome: dict[str, Any] = {}
        self.text = ""

        def run() -> None:
            try:
                self._outcome["text"] = generate_texts(
                    loaded,
                    [prompt],
                    vectors=vectors,
                    positions=positions,
                    max_new_tokens=max_new_tokens,
                    sampling=sampling,
                    on_tokens=lambda step: self._queue.put(step[0]) if step[0] != -1 else None,
                )[0]
            except BaseException as exc:  # re-raised in the script thread
                self._outcome["error"] = exc
            finally:
                self._queue.put(None)

        threading.Thread(target=run, name="corrsteer-stream", daemon=True).start()

    def pieces(self) -> Iterator[str]:
        ids: list[int] = []
        shown = ""
        while (token := self._queue.get()) is not None:
            ids.append(token)
            text = self._loaded.tokenizer.decode(ids, skip_special_tokens=True)
            if text.startswith(shown) and len(text) > len(shown):  # a partial character waits for its bytes
                yield text[len(shown) :]
                shown = text
        if "error" in self._outcome:
            raise self._outcome["error"]
        self.text = self._outcome["text"]
        if self.text.startswith(shown) and len(self.text) > len(shown):
            yield self.text[len(shown) :]

    def inert_pieces(self) -> Iterator[str]:
        for piece in self.pieces():
            yield md(piece)


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

"""Validation-based variants: P (prune layers that do not help alone) and O (joint per-layer optimisation).

Why O exists: on a small model, steering every layer's feature at once collapses generation although each
vector is small (they add up), and layers that help alone do not compose. O searches, on the validation split
only, which layers to steer and at what scale, judging every candidate by the *combined* profile:

0. the whole profile (every layer's feature) at a few small global scales: some behaviours need many layers
   nudged a little (on the paired language task every layer at ×0.5 doubled the French replies while the
   best single layer changed nothing), and these few candidates cost little;
1. screening: each layer alone at a few scales; the best ``pool_size`` layers that beat unsteered form the pool;
2. greedy forward selection: add the (layer, scale) that most improves the objective, while it improves;
3. coordinate passes: re-tune each pool layer's scale (0 removes it) with the others fixed;
4. a global scale.
The best candidate of any stage wins.

Objective: validation accuracy − λ · NEG / n, where NEG counts right→wrong flips against unsteered. The
search stops early when nothing improves and never spends more than ``budget`` generations; every profile's
outcomes are cached, so revisiting a configuration is free. Gains found this way must be checked on the test
split against the same search run on controls (see :mod:`corrsteer_core.controls`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pandas as pd

from corrsteer_core.config import GenerateConfig, OptimizeConfig
from corrsteer_core.errors import ConfigError
from corrsteer_core.evaluate import cached_outcomes
from corrsteer_core.loading import LoadedModel
from corrsteer_core.metadata import SearchSummary
from corrsteer_core.profile import SteeringProfile
from corrsteer_core.progress import Progress, report
from corrsteer_core.saes import SAESet
from corrsteer_core.steer import Outcome
from corrsteer_core.tasks.base import Task, TaskItem

__all__ = ["apply_settings", "optimize_profile", "prune_profile"]


def apply_settings(
    profile: SteeringProfile, scales: dict[int, float], global_scale: float = 1.0
) -> SteeringProfile:
    """The profile with exactly the layers in ``scales`` enabled at those scales."""
    layers = tuple(
        dataclasses.replace(s, enabled=s.layer in scales, scale=float(scales.get(s.layer, s.scale)))
        for s in profile.layers
    )
    return dataclasses.replace(profile, layers=layers, global_scale=float(global_scale), evaluation=None)


class _BudgetExhausted(Exception):
    pass


class _Objective:
    """Scores candidate settings on the validation items, with a budget and a trace."""

    def __init__(
        self,
        loaded: LoadedModel,
        saes: SAESet,
        profile: SteeringProfile,
        task: Task,
        items: Sequence[TaskItem],
        gen: GenerateConfig | None,
        cfg: OptimizeConfig,
        progress: Progress | None,
    ) -> None:
        self.args = (loaded, task, items)
        self.saes, self.profile, self.gen, self.cfg, self.progress = saes, profile, gen, cfg, progress
        self.base = cached_outcomes(loaded, task, items, cfg=gen, progress=progress, stage="unsteered")
        self.spent = 0
        self.memo: dict[tuple, tuple[float, float, int, int]] = {}
        self.trace: list[dict[str, Any]] = []
        self.best_key: tuple = ((), 1.0)
        self.memo[self.best_key] = (self._score(self.base), self._accuracy(self.base), 0, 0)

    def _accuracy(self, outs: Sequence[Outcome]) -> float:
        return sum(o.correct for o in outs) / len(outs)

    def _score(self, outs: Sequence[Outcome]) -> float:
        neg = sum(b.correct and not o.correct for b, o in zip(self.base, outs, strict=True))
        return self._accuracy(outs) - self.cfg.lam * neg / len(outs)

    def __call__(self, stage: str, scales: dict[int, float], global_scale: float = 1.0) -> float:
        key = (tuple(sorted(scales.items())), round(global_scale, 6))
        if key not in self.memo:
            if not scales:
                return self.memo[((), 1.0)][0]
            if self.spent + len(self.base) > self.cfg.budget:
                raise _BudgetExhausted
            loaded, task, items = self.args
            outs = cached_outcomes(
                loaded,
                task,
                items,
                profile=apply_settings(self.profile, scales, global_scale),
                saes=self.saes,
                cfg=self.gen,
                stage=f"optimize: {stage}",
            )
            self.spent += len(items)
            pos = sum(o.correct and not b.correct for b, o in zip(self.base, outs, strict=True))
            neg = sum(b.correct and not o.correct for b, o in zip(self.base, outs, strict=True))
            self.memo[key] = (self._score(outs), self._accuracy(outs), pos, neg)
            report(
                self.progress, "optimize (generations spent)", min(self.spent, self.cfg.budget), self.cfg.budget
            )
        score, acc, pos, neg = self.memo[key]
        if score > self.memo[self.best_key][0]:
            self.best_key = key
        self.trace.append(
            {
                "stage": stage,
                "layers": dict(key[0]),
                "global_scale": key[1],
                "objective": score,
                "accuracy": acc,
                "pos": pos,
                "neg": neg,
                "spent": self.spent,
            }
        )
        return score


def _search(obj: _Objective, cfg: OptimizeConfig) -> None:
    ranked = sorted(
        obj.profile.layers,
        key=lambda s: (s.score if s.score is not None else float("-inf"), -s.layer),
        reverse=True,
    )
    layers = [s.layer for s in ranked[: cfg.screen_top]]
    base_score = obj("unsteered", {})
    whole = {s.layer: 1.0 for s in obj.profile.layers}
    for g in cfg.whole_scales:
        obj("whole", whole, g)
    screened = {L: max(obj("screen", {L: s}) for s in cfg.screen_scales) for L in layers}
    pool = [L for L in sorted(layers, key=lambda L: -screened[L]) if screened[L] > base_score][: cfg.pool_size]
    current: dict[int, float] = {}
    best = base_score
    while len(current) < cfg.max_layers:
        forward = cfg.forward_scales or cfg.scales
        trials = [(obj("forward", {**current, L: s}), L, s) for L in pool if L not in current for s in forward]
        if not trials:
            break
        score, layer, scale = max(trials)
        if score <= best + cfg.min_gain:
            break
        current, best = {**current, layer: scale}, score
    for _ in range(cfg.coordinate_passes):
        improved = False
        for layer in pool:
            for scale in (0.0, *cfg.scales):
                trial = {**current, layer: scale} if scale else {k: v for k, v in current.items() if k != layer}
                if trial != current and (score := obj("coordinate", trial)) > best + cfg.min_gain:
                    current, best, improved = trial, score, True
        if not improved:
            break
    if current:
        for g in cfg.global_scales:
            obj("global", current, g)


def optimize_profile(
    loaded: LoadedModel,
    saes: SAESet,
    profile: SteeringProfile,
    task: Task,
    items: Sequence[TaskItem],
    *,
    cfg: OptimizeConfig | None = None,
    gen: GenerateConfig | None = None,
    progress: Progress | None = None,
) -> tuple[SteeringProfile, pd.DataFrame]:
    """Variant O on ``profile``'s candidate features; returns the best profile found and the search trace."""
    cfg = cfg or OptimizeConfig()
    if not items:
        raise ConfigError("optimisation needs validation items")
    obj = _Objective(loaded, saes, profile, task, items, gen, cfg, progress)
    exhausted = False
    try:
        _search(obj, cfg)
    except _BudgetExhausted:
        exhausted = True
    (layer_scales, global_scale) = obj.best_key
    best = apply_settings(profile, dict(layer_scales), global_scale)
    score, acc, pos, neg = obj.memo[obj.best_key]
    summary = SearchSummary(
        objective=score,
        accuracy=acc,
        pos=pos,
        neg=neg,
        unsteered_accuracy=obj.memo[((), 1.0)][1],
        generations=obj.spent,
        budget_exhausted=exhausted,
    )
    provenance = dataclasses.replace(profile.provenance, n_validation=len(items), validation=summary)
    return dataclasses.replace(best, provenance=provenance), pd.DataFrame(obj.trace)


def prune_profile(
    loaded: LoadedModel,
    saes: SAESet,
    profile: SteeringProfile,
    task: Task,
    items: Sequence[TaskItem],
    *,
    gen: GenerateConfig | None = None,
    progress: Progress | None = None,
) -> tuple[SteeringProfile, pd.DataFrame]:
    """Variant P: keep a layer only if steering it alone beats unsteered on the validation items (strictly)."""
    if not items:
        raise ConfigError("pruning needs validation items")
    base = cached_outcomes(loaded, task, items, cfg=gen, progress=progress, stage="unsteered")
    base_acc = sum(o.correct for o in base) / len(base)
    rows, kept = [], set()
    enabled = profile.enabled
    for index, setting in enumerate(enabled):
        alone = profile.with_enabled({setting.layer})
        outs = cached_outcomes(
            loaded, task, items, profile=alone, saes=saes, cfg=gen, stage=f"validate layer {setting.layer}"
        )
        acc = sum(o.correct for o in outs) / len(outs)
        keep = acc > base_acc
        kept |= {setting.layer} if keep else set()
        rows.append(
            {
                "layer": setting.layer,
                "feature": setting.feature,
                "accuracy_alone": acc,
                "unsteered_accuracy": base_acc,
                "delta": acc - base_acc,
                "kept": keep,
            }
        )
        report(progress, "prune (layers)", index + 1, len(enabled))
    provenance = dataclasses.replace(profile.provenance, n_validation=len(items), kept_layers=tuple(sorted(kept)))
    return dataclasses.replace(profile.with_enabled(kept), provenance=provenance), pd.DataFrame(rows)

"""Turn collected statistics into steering profiles: variants S, A, P and every selector and control.

- ``A``: each layer's top feature (r > 0 for corr), all steered at once (the reference headline).
- ``S``: the single best feature over all layers, steered alone.
- ``P``: A pruned on the validation split: a layer is kept only if steering it alone makes validation accuracy
  strictly higher than unsteered; the kept layers are steered together.
- ``O``: joint optimisation, see :mod:`corrsteer_core.optimize`.

Selectors: ``corr`` (default), ``mi``, ``fisher``, ``caa``, and the controls ``random`` (random r > 0 features)
and ``shuffled`` (corr on statistics collected with permuted labels).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from corrsteer_core.collect import CollectionResult
from corrsteer_core.config import _check_choice, _check_positive, _DictMixin
from corrsteer_core.errors import ConfigError, SelectionError
from corrsteer_core.loading import LoadedModel
from corrsteer_core.profile import LayerSetting, SteeringProfile
from corrsteer_core.progress import Progress
from corrsteer_core.saes import SAESet
from corrsteer_core.selectors import SELECTORS, Candidate, candidates_frame, top_candidates
from corrsteer_core.stats import COEFFICIENT_MODES, CorrSteerWarning
from corrsteer_core.steer import GenerateConfig
from corrsteer_core.tasks.base import Task, TaskItem
from corrsteer_core.versions import package_versions

if TYPE_CHECKING:
    from corrsteer_core.optimize import OptimizeConfig

__all__ = [
    "ALL_SELECTORS",
    "VARIANTS",
    "SelectConfig",
    "SelectionResult",
    "build_profile",
    "rank_candidates",
    "select_profile",
]

VARIANTS = ("S", "A", "P", "O")
ALL_SELECTORS = (*SELECTORS, "shuffled")


@dataclass(frozen=True)
class SelectConfig(_DictMixin):
    variant: str = "A"
    selector: str = "corr"
    k: int = 10  # candidates kept per layer (for the app's heatmap and the optimiser)
    coefficient_mode: str = "correct_mean"
    within_strata: bool = False
    min_firing: int = 0
    min_correct: int = 10
    min_incorrect: int = 10
    seed: int = 0  # the random control's draw
    layers: tuple[int, ...] | None = None  # restrict the layers that may be steered
    lam: float = 1.0  # O: penalty on right→wrong flips (objective accuracy − lam · NEG / n)
    budget: int = 20_000  # O: most validation generations the search may spend

    def __post_init__(self) -> None:
        _check_choice("variant", self.variant, VARIANTS)
        _check_positive("budget", self.budget)
        if not self.lam >= 0:
            raise ConfigError(f"lam must be >= 0, got {self.lam}")
        _check_choice("selector", self.selector, ALL_SELECTORS)
        _check_choice("coefficient_mode", self.coefficient_mode, tuple(COEFFICIENT_MODES))
        _check_positive("k", self.k)


@dataclass
class SelectionResult:
    profile: SteeringProfile
    candidates: list[list[Candidate]]  # per steerable layer, best first (true layer numbers)
    warnings: list[str] = field(default_factory=list)
    details: pd.DataFrame | None = None  # P: per-layer validation; O: the search trace

    def candidates_frame(self) -> pd.DataFrame:
        return candidates_frame(self.candidates)


def rank_candidates(collection: CollectionResult, cfg: SelectConfig) -> tuple[list[list[Candidate]], list[str]]:
    """Per-layer candidates (true layer numbers), plus support warnings about the statistics."""
    stats = collection.shuffled if cfg.selector == "shuffled" else collection.stats
    selector = "corr" if cfg.selector == "shuffled" else cfg.selector
    notes = [
        *collection.warnings,
        *stats.support_warnings(min_correct=cfg.min_correct, min_incorrect=cfg.min_incorrect),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorrSteerWarning)
        ranked = top_candidates(
            stats,
            selector,
            k=cfg.k,
            coefficient_mode=cfg.coefficient_mode,  # type: ignore[arg-type]
            within_strata=cfg.within_strata,
            min_firing=cfg.min_firing,
            seed=cfg.seed,
        )
    notes += [str(w.message) for w in caught if str(w.message) not in notes]
    out = []
    for row, cands in enumerate(ranked):
        layer = collection.layers[row]
        if cfg.layers is not None and layer not in cfg.layers:
            cands = []
        out.append([dataclasses.replace(c, layer=layer) for c in cands])
    if not any(out):
        raise SelectionError(
            "no layer has a selectable feature"
            + (" (no feature has r > 0)" if selector in ("corr", "random") else "")
            + (f"; {'; '.join(notes)}" if notes else "")
        )
    return out, notes


def build_profile(
    collection: CollectionResult,
    loaded: LoadedModel,
    saes: SAESet,
    chosen: Sequence[Candidate],
    *,
    name: str,
    provenance: dict[str, Any],
) -> SteeringProfile:
    sites = {int(k): v for k, v in collection.meta["sites"].items()}
    settings = tuple(
        LayerSetting(
            layer=c.layer,
            feature=c.feature,
            coefficient=c.coefficient,
            hook_name=sites[c.layer],
            sae_id=saes.sae_ids[c.layer],
            fingerprint=saes.fingerprint(c.layer),
            r=c.r,
            score=c.score,
        )
        for c in sorted(chosen, key=lambda c: c.layer)
    )
    site = "block_input" if collection.meta["identity"]["collect"].get("site") == "block_input" else "sae"
    return SteeringProfile(
        preset=loaded.preset.name,
        model_id=loaded.preset.model.hf_id,
        d_model=loaded.d_model,
        layers=settings,
        site=site,
        name=name,
        provenance=provenance,
    )


def _provenance(collection: CollectionResult, cfg: SelectConfig) -> dict[str, Any]:
    meta = collection.meta
    return {
        "run_id": collection.run_id,
        "task": meta["task"],
        "split": meta.get("split", {}),
        "n_selection": collection.n,
        "n_correct": collection.stats.n_correct,
        "select": cfg.to_dict(),
        "collect": meta["identity"]["collect"],
        "versions": package_versions(),
    }


def select_profile(
    collection: CollectionResult,
    loaded: LoadedModel,
    saes: SAESet,
    cfg: SelectConfig | None = None,
    *,
    validation: tuple[Task, Sequence[TaskItem]] | None = None,
    gen: GenerateConfig | None = None,
    progress: Progress | None = None,
    optimize: OptimizeConfig | None = None,
) -> SelectionResult:
    """Select features and build the profile of the requested variant (P and O need ``validation``).

    O searches with ``optimize`` when given (screening and scale options), else with ``cfg.lam`` and
    ``cfg.budget`` and the optimiser's defaults.
    """
    cfg = cfg or SelectConfig()
    candidates, notes = rank_candidates(collection, cfg)
    tops = [cands[0] for cands in candidates if cands]
    name = f"{collection.meta['task']['name']}-{cfg.variant}-{cfg.selector}"
    provenance = _provenance(collection, cfg)
    if cfg.variant == "S":
        chosen = [max(tops, key=lambda c: c.score)]
        return SelectionResult(
            build_profile(collection, loaded, saes, chosen, name=name, provenance=provenance), candidates, notes
        )
    profile = build_profile(collection, loaded, saes, tops, name=name, provenance=provenance)
    if cfg.variant == "A":
        return SelectionResult(profile, candidates, notes)
    if validation is None:
        raise SelectionError(f"variant {cfg.variant} needs a validation split (task and items)")
    from corrsteer_core.optimize import OptimizeConfig, optimize_profile, prune_profile

    if cfg.variant == "P":
        pruned, table = prune_profile(loaded, saes, profile, *validation, gen=gen, progress=progress)
        return SelectionResult(pruned, candidates, notes, table)
    optimize_cfg = optimize or OptimizeConfig(lam=cfg.lam, budget=cfg.budget)
    optimized, trace = optimize_profile(
        loaded, saes, profile, *validation, cfg=optimize_cfg, gen=gen, progress=progress
    )
    return SelectionResult(optimized, candidates, notes, trace)

"""Build steering profiles from a run's statistics: the one place where variants S, A, P and O are made.

- ``A``: each layer's top feature (r > 0 for corr), all steered at once (the reference headline).
- ``S``: the single best feature over all layers, steered alone: a one-layer profile.
- ``P``: A pruned on the validation split: a layer is kept only if steering it alone makes validation accuracy
  strictly higher than unsteered; the kept layers are steered together.
- ``O``: joint optimisation of layers and scales on the validation split (:mod:`corrsteer_core.optimize`), with
  the search settings of ``SelectConfig.optimize``.

Every condition starts from an A profile of some *source*: the selected features, or one of the controls built
the same way (random directions of the same norms, features selected on shuffled labels, random r > 0
features). The library, the CLI, the app, the controls and the quality benchmark all call
:func:`select_profile` (or :func:`build_variant` on a base they already have), so a variant means the same thing
everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from corrsteer_core.collect import CollectionResult
from corrsteer_core.config import GenerateConfig, SelectConfig
from corrsteer_core.errors import ConfigError, SelectionError, valid_choices
from corrsteer_core.loading import LoadedModel
from corrsteer_core.metadata import Provenance
from corrsteer_core.profile import LayerSetting, SteeringProfile
from corrsteer_core.progress import Progress
from corrsteer_core.ranking import Candidate, candidates_frame, rank_candidates
from corrsteer_core.saes import SAESet
from corrsteer_core.tasks.base import Task, TaskItem
from corrsteer_core.versions import package_versions

__all__ = [
    "SOURCES",
    "SelectionResult",
    "base_profile",
    "build_profile",
    "build_variant",
    "feature_setting",
    "select_profile",
]

# where a condition's features come from: the selection itself, or a control built the same way
SOURCES = ("features", "random-directions", "shuffled-labels", "random-features")


@dataclass
class SelectionResult:
    profile: SteeringProfile
    candidates: list[list[Candidate]]  # per steerable layer, best first (true layer numbers)
    warnings: list[str] = field(default_factory=list)
    details: pd.DataFrame | None = None  # P: per-layer validation; O: the search trace

    def candidates_frame(self) -> pd.DataFrame:
        return candidates_frame(self.candidates)


def feature_setting(
    saes: SAESet,
    layer: int,
    feature: int,
    coefficient: float,
    *,
    hook_name: str | None = None,
    r: float | None = None,
    score: float | None = None,
) -> LayerSetting:
    """One layer's setting steering ``feature`` of that layer's SAE (at the SAE's own hook site by default).

    The one way a feature becomes part of a profile: selection, and features a user adds by hand.
    """
    if feature < 0 or feature >= saes.d_sae(layer):
        raise SelectionError(f"layer {layer} has features 0..{saes.d_sae(layer) - 1}; got {feature}")
    return LayerSetting(
        layer=layer,
        feature=feature,
        coefficient=coefficient,
        hook_name=hook_name or saes.hook_names[layer],
        sae_id=saes.sae_ids[layer],
        fingerprint=saes.fingerprint(layer),
        r=r,
        score=score,
    )


def build_profile(
    collection: CollectionResult,
    loaded: LoadedModel,
    saes: SAESet,
    chosen: Sequence[Candidate],
    *,
    name: str,
    provenance: Provenance,
) -> SteeringProfile:
    """A profile steering ``chosen`` (one candidate per layer) at the run's read sites."""
    settings = tuple(
        feature_setting(
            saes, c.layer, c.feature, c.coefficient, hook_name=collection.meta.sites[c.layer], r=c.r, score=c.score
        )
        for c in sorted(chosen, key=lambda c: c.layer)
    )
    return SteeringProfile(
        preset=loaded.preset.name,
        model_id=loaded.preset.model.hf_id,
        d_model=loaded.d_model,
        layers=settings,
        site=collection.meta.collect.site,
        name=name,
        provenance=provenance,
    )


def _provenance(collection: CollectionResult, cfg: SelectConfig, source: str) -> Provenance:
    meta = collection.meta
    return Provenance(
        run_id=collection.run_id,
        task=meta.task,
        split=meta.experiment,
        n_selection=collection.n,
        n_correct=collection.stats.n_correct,
        select=cfg,
        collect=meta.collect,
        versions=package_versions(),
        source=source,
    )


def base_profile(
    collection: CollectionResult,
    loaded: LoadedModel,
    saes: SAESet,
    cfg: SelectConfig,
    *,
    source: str = "features",
) -> tuple[SteeringProfile, list[list[Candidate]], list[str]]:
    """The A profile of ``source`` (every layer's top candidate), with the run's candidates and warnings."""
    if source not in SOURCES:
        raise ConfigError(f"source {source!r} is not valid. Valid sources are: {valid_choices(SOURCES)}")
    ranking_cfg = {
        "shuffled-labels": dataclasses.replace(cfg, selector="shuffled"),
        "random-features": dataclasses.replace(cfg, selector="random"),
    }.get(source, cfg)
    candidates, notes = rank_candidates(collection, ranking_cfg)
    tops = [cands[0] for cands in candidates if cands]
    task = collection.meta.task.name
    name = f"{task}-{cfg.variant}-{cfg.selector}" if source == "features" else f"{task}-{cfg.variant}-{source}"
    profile = build_profile(
        collection, loaded, saes, tops, name=name, provenance=_provenance(collection, ranking_cfg, source)
    )
    if source == "random-directions":
        profile = profile.with_random_directions(cfg.seed)
    return profile, candidates, notes


def build_variant(
    base: SteeringProfile,
    cfg: SelectConfig,
    loaded: LoadedModel,
    saes: SAESet,
    *,
    validation: tuple[Task, Sequence[TaskItem]] | None = None,
    gen: GenerateConfig | None = None,
    progress: Progress | None = None,
) -> tuple[SteeringProfile, pd.DataFrame | None]:
    """``cfg.variant`` made from the A profile ``base``; P and O need ``validation`` (task, items)."""
    select = dataclasses.replace(base.provenance.select or cfg, variant=cfg.variant, optimize=cfg.optimize)
    provenance = dataclasses.replace(base.provenance, select=select)
    base = dataclasses.replace(base, provenance=provenance)
    if cfg.variant == "S":
        best = max(base.layers, key=lambda s: s.score if s.score is not None else float("-inf"))
        return base.only({best.layer}), None
    if cfg.variant == "A":
        return base, None
    if validation is None or not validation[1]:
        raise SelectionError(
            f"variant {cfg.variant} needs a validation split (task and items): give the validation split a size"
        )
    from corrsteer_core.optimize import optimize_profile, prune_profile

    if cfg.variant == "P":
        return prune_profile(loaded, saes, base, *validation, gen=gen, progress=progress)
    return optimize_profile(loaded, saes, base, *validation, cfg=cfg.optimize, gen=gen, progress=progress)


def select_profile(
    collection: CollectionResult,
    loaded: LoadedModel,
    saes: SAESet,
    cfg: SelectConfig | None = None,
    *,
    validation: tuple[Task, Sequence[TaskItem]] | None = None,
    gen: GenerateConfig | None = None,
    progress: Progress | None = None,
    source: str = "features",
) -> SelectionResult:
    """Select features and build the profile of ``cfg.variant`` (P and O need ``validation``).

    ``source`` builds a control the same way instead (see :data:`SOURCES`).
    """
    cfg = cfg or SelectConfig()
    base, candidates, notes = base_profile(collection, loaded, saes, cfg, source=source)
    profile, details = build_variant(base, cfg, loaded, saes, validation=validation, gen=gen, progress=progress)
    return SelectionResult(profile, candidates, notes, details)

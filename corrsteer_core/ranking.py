"""Rank each layer's features by a selector's score: the candidates every variant picks from.

Steps 4–6 of the method (docs/method.md): per-feature scores from :class:`CorrelationStats`, then per layer the
best features, each with its steering coefficient.

CorrSteer ranks by Pearson r and keeps only r > 0 (subtracting negative features collapses accuracy); the
baselines rank by their own score on the same activations: SPARE = mutual information, DSG = Fisher ratio,
CAA = |mean difference|; "random" is the control that picks uniformly among positively correlated features.
The "shuffled" control is not a selector here: run "corr" on statistics collected with permuted labels.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import pandas as pd
import torch
from torch import Tensor

from corrsteer_core.config import SELECTORS, SelectConfig
from corrsteer_core.errors import ConfigError, SelectionError, valid_choices
from corrsteer_core.stats import CoefficientMode, CorrelationStats, CorrSteerWarning

if TYPE_CHECKING:
    from corrsteer_core.collect import CollectionResult

__all__ = ["SELECTORS", "Candidate", "candidates_frame", "feature_scores", "rank_candidates", "top_candidates"]

# Selectors whose whole point is the sign of r; the baselines select by their own score and only report r.
_POSITIVE_BY_DEFAULT = frozenset({"corr", "random"})


@dataclass(frozen=True)
class Candidate:
    """One ranked feature of one layer. ``rank`` is 0 for the layer's best; ``score`` is the selector's value.

    ``r`` is Pearson r (within strata when asked), ``coefficient`` the steering coefficient of the chosen mode,
    firing rates are fractions of samples with activation > 0 (0.0 for a class with no samples).
    """

    layer: int
    feature: int
    rank: int
    score: float
    r: float
    coefficient: float
    firing_rate: float
    firing_rate_correct: float
    firing_rate_incorrect: float


def _check_selector(selector: str) -> None:
    if selector not in SELECTORS:
        raise ConfigError(f"unknown selector {selector!r}; valid selectors are {valid_choices(SELECTORS)}")


def _check_stats(stats: CorrelationStats) -> None:
    if stats.n == 0:
        raise SelectionError("cannot select features: the statistics hold no samples yet")


def feature_scores(
    stats: CorrelationStats,
    selector: str,
    *,
    within_strata: bool = False,
    min_firing: int = 0,
    seed: int = 0,
    r: Tensor | None = None,
) -> Tensor:
    """Scores (L, F) float64, higher is better; -inf marks features that may not be selected.

    Features firing (x > 0) on fewer than ``min_firing`` samples get -inf. "random" draws seeded uniform scores
    for the features with r > 0 and gives the rest -inf. ``within_strata`` changes the r used by "corr" and
    "random"; the other scores are pooled over strata. ``r`` may pass an already computed ``stats.pearson``.
    """
    _check_selector(selector)
    if not isinstance(min_firing, int) or min_firing < 0:
        raise ConfigError(f"min_firing must be an integer >= 0; got {min_firing!r}")
    _check_stats(stats)
    if selector in ("corr", "random"):
        r = stats.pearson(within_strata=within_strata) if r is None else r
        if selector == "corr":
            scores = r.clone()
        else:  # drawn on the CPU so the same seed gives the same features on any device
            generator = torch.Generator().manual_seed(seed)
            uniform = torch.rand(r.shape, generator=generator, dtype=torch.float64).to(r.device)
            scores = torch.where(r > 0, uniform, -torch.inf)
    elif selector == "mi":
        scores = stats.mutual_information()
    elif selector == "fisher":
        scores = stats.fisher_ratio()
    else:
        scores = stats.mean_difference()
    if min_firing > 0:
        fired_correct, fired_incorrect = stats.firing_counts()
        scores = scores.masked_fill((fired_correct + fired_incorrect).to(scores.device) < min_firing, -torch.inf)
    return scores


def top_candidates(
    stats: CorrelationStats,
    selector: str = "corr",
    *,
    k: int = 10,
    coefficient_mode: CoefficientMode = "correct_mean",
    require_positive_r: bool | None = None,
    within_strata: bool = False,
    min_firing: int = 0,
    seed: int = 0,
) -> list[list[Candidate]]:
    """Up to ``k`` candidates per layer, best first (outer index = layer; a layer may get an empty list).

    ``require_positive_r`` defaults to True for "corr" and "random" (docs/method.md, step 5: only r > 0 features
    are steered, so a layer without one gets none) and to False for the baselines. Ties break towards the lower
    feature index, so rankings are deterministic.
    """
    _check_selector(selector)
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be an integer >= 1; got {k!r}")
    _check_stats(stats)
    positive = selector in _POSITIVE_BY_DEFAULT if require_positive_r is None else require_positive_r
    r = stats.pearson(within_strata=within_strata)
    scores = feature_scores(stats, selector, within_strata=within_strata, min_firing=min_firing, seed=seed, r=r)
    allowed = torch.isfinite(scores) & (r > 0 if positive else True)
    scores = scores.masked_fill(~allowed, -torch.inf).cpu()
    coefficient = stats.coefficients(coefficient_mode).cpu()
    r = r.cpu()
    fired_correct, fired_incorrect = (t.cpu().to(torch.float64) for t in stats.firing_counts())
    n1, n0 = stats.n_correct, stats.n - stats.n_correct
    rate = (fired_correct + fired_incorrect) / stats.n
    rate_correct = fired_correct / n1 if n1 else torch.zeros_like(fired_correct)
    rate_incorrect = fired_incorrect / n0 if n0 else torch.zeros_like(fired_incorrect)
    out: list[list[Candidate]] = []
    for layer in range(stats.n_layers):
        order = torch.sort(scores[layer], descending=True, stable=True).indices[:k]
        keep = [int(f) for f in order if allowed[layer, f]]
        out.append(
            [
                Candidate(
                    layer=layer,
                    feature=f,
                    rank=rank,
                    score=float(scores[layer, f]),
                    r=float(r[layer, f]),
                    coefficient=float(coefficient[layer, f]),
                    firing_rate=float(rate[layer, f]),
                    firing_rate_correct=float(rate_correct[layer, f]),
                    firing_rate_incorrect=float(rate_incorrect[layer, f]),
                )
                for rank, f in enumerate(keep)
            ]
        )
    return out


def candidates_frame(candidates: Sequence[Sequence[Candidate]] | Sequence[Candidate]) -> pd.DataFrame:
    """A tidy table (one row per candidate, columns = :class:`Candidate` fields) of nested or flat candidates."""
    rows = [
        asdict(c)
        for item in candidates
        for c in ([item] if isinstance(item, Candidate) else item)  # accepts top_candidates' nesting or flat
    ]
    return pd.DataFrame(rows, columns=[f.name for f in fields(Candidate)])


def rank_candidates(collection: CollectionResult, cfg: SelectConfig) -> tuple[list[list[Candidate]], list[str]]:
    """Per-layer candidates of a run (true layer numbers), plus support warnings about its statistics."""
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

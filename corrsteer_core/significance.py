"""Honest statistics on paired per-item results: the same items, unsteered versus steered.

Accuracy differences of a few points on a few hundred items are often noise, so every comparison comes with
an exact McNemar p-value on the discordant pairs, a paired bootstrap interval and the Side Effect Ratio
(docs/method.md: SER = NEG / (NEG + POS)). Only numpy is needed (scipy is not a dependency of the library).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from corrsteer_core.errors import ConfigError

__all__ = ["SideEffects", "bootstrap_diff_ci", "mcnemar_exact", "mean_std", "side_effects"]


def mcnemar_exact(pos: int, neg: int) -> float:
    """Two-sided exact McNemar test: P(as or more unbalanced) under Binomial(pos + neg, 1/2); 1.0 when no pairs."""
    for name, value in (("pos", pos), ("neg", neg)):
        if int(value) != value or value < 0:
            raise ConfigError(f"{name} must be a count >= 0; got {value!r}")
    n, k = int(pos) + int(neg), min(int(pos), int(neg))
    if n == 0:
        return 1.0
    # log C(n, i) for i = 0..k by cumulative log ratios: exact enough and never overflows, even for n ~ 1e6.
    i = np.arange(k, dtype=np.float64)
    log_pmf = np.concatenate([[0.0], np.cumsum(np.log(n - i) - np.log(i + 1))]) - n * math.log(2.0)
    top = log_pmf.max()
    tail = math.exp(top) * float(np.exp(log_pmf - top).sum())
    # The distribution is symmetric, so doubling the smaller tail is the two-sided test (binomtest agrees).
    return min(1.0, 2.0 * tail)


def _as_binary(values: ArrayLike, name: str) -> np.ndarray:  # (n,) bool
    array = np.asarray(values)
    if array.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional (one entry per item); got shape {array.shape}")
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise ConfigError(f"{name} must hold booleans or 0/1; got values {np.unique(array)[:10].tolist()}")
    return array.astype(bool)


def _paired(base: ArrayLike, steered: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    b, s = _as_binary(base, "base"), _as_binary(steered, "steered")
    if b.shape != s.shape:
        raise ConfigError(f"base and steered must score the same items; got {b.size} and {s.size} entries")
    if b.size == 0:
        raise ConfigError("base and steered are empty: there is nothing to compare")
    return b, s


def bootstrap_diff_ci(
    base: ArrayLike, steered: ArrayLike, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Paired percentile bootstrap of acc(steered) − acc(base): (diff, lo, hi) as fractions (0.05 = 5 points).

    Items are resampled together, so the interval reflects the pairing. Each item's difference is −1, 0 or +1,
    hence resampling n items is exactly one multinomial draw over those three outcomes: O(n_boot), not
    O(n_boot × n) memory.
    """
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ConfigError(f"n_boot must be an integer >= 1; got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must lie strictly between 0 and 1; got {level!r}")
    b, s = _paired(base, steered)
    d = s.astype(np.int64) - b.astype(np.int64)
    n = d.size
    counts = np.array([(d == -1).sum(), (d == 0).sum(), (d == 1).sum()], dtype=np.float64)
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=n_boot)  # (n_boot, 3)
    boot = (draws[:, 2] - draws[:, 0]) / n
    lo, hi = np.quantile(boot, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(d.mean()), float(lo), float(hi)


@dataclass(frozen=True)
class SideEffects:
    """Paired comparison of a steered run with the unsteered run on the same ``n`` items.

    ``pos`` = wrong→right, ``neg`` = right→wrong, ``changed`` = items whose answer changed (includes answers that
    changed without changing correctness), ``ser`` = neg / (neg + pos) or None when no item flipped.
    Accuracies, ``diff`` (steered − base) and the bootstrap interval are fractions, not points.
    """

    pos: int
    neg: int
    changed: int
    ser: float | None
    p_value: float
    base_accuracy: float
    steered_accuracy: float
    diff: float
    ci_low: float
    ci_high: float
    n: int


def side_effects(
    base_correct: ArrayLike,
    steered_correct: ArrayLike,
    base_answers: Sequence[object] | None = None,
    steered_answers: Sequence[object] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> SideEffects:
    """POS/NEG/SER, McNemar p and a paired bootstrap interval. Answers, when given, are compared with ``!=``
    (normalise them first); without them ``changed`` is pos + neg, the only changes that are visible."""
    b, s = _paired(base_correct, steered_correct)
    pos, neg = int((~b & s).sum()), int((b & ~s).sum())
    if (base_answers is None) != (steered_answers is None):
        raise ConfigError("give both base_answers and steered_answers, or neither")
    if base_answers is not None and steered_answers is not None:
        if len(base_answers) != b.size or len(steered_answers) != b.size:
            got = f"{len(base_answers)} and {len(steered_answers)}"
            raise ConfigError(f"answers must have one entry per item ({b.size}); got {got}")
        changed = sum(1 for x, y in zip(base_answers, steered_answers, strict=True) if x != y)
    else:
        changed = pos + neg
    diff, lo, hi = bootstrap_diff_ci(b, s, n_boot=n_boot, seed=seed)
    return SideEffects(
        pos=pos,
        neg=neg,
        changed=changed,
        ser=neg / (neg + pos) if pos + neg else None,
        p_value=mcnemar_exact(pos, neg),
        base_accuracy=float(b.mean()),
        steered_accuracy=float(s.mean()),
        diff=diff,
        ci_low=lo,
        ci_high=hi,
        n=int(b.size),
    )


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) over seeds; the std of a single value is 0.0."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"mean_std needs a non-empty sequence of numbers; got shape {array.shape}")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0

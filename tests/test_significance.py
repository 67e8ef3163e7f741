"""Paired significance statistics against scipy and known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from corrsteer_core.errors import ConfigError
from corrsteer_core.significance import SideEffects, bootstrap_diff_ci, mcnemar_exact, mean_std, side_effects


@pytest.mark.parametrize("pos,neg", [(0, 1), (1, 1), (5, 1), (2, 3), (10, 40), (0, 30), (697, 182), (1616, 1108)])
def test_mcnemar_matches_scipy_binomtest(pos: int, neg: int) -> None:
    expected = binomtest(pos, pos + neg, 0.5).pvalue
    assert mcnemar_exact(pos, neg) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert mcnemar_exact(neg, pos) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_mcnemar_edge_cases() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert 0.0 <= mcnemar_exact(100_000, 99_000) <= 1.0
    with pytest.raises(ConfigError, match="neg"):
        mcnemar_exact(3, -1)


def _paired_items(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Base accuracy 0.5; steering fixes 20% of wrong items and breaks 6% of right ones: true diff 0.07."""
    rng = np.random.default_rng(seed)
    base = rng.random(n) < 0.5
    u = rng.random(n)
    steered = np.where(base, u >= 0.06, u < 0.20)
    return base, steered, 0.5 * 0.20 - 0.5 * 0.06


def test_bootstrap_ci_contains_true_diff_and_has_the_right_width() -> None:
    base, steered, true_diff = _paired_items(3000, seed=1)
    diff, lo, hi = bootstrap_diff_ci(base, steered, n_boot=4000, seed=0)
    assert diff == pytest.approx(steered.mean() - base.mean())
    assert lo < true_diff < hi and lo < diff < hi
    d = steered.astype(float) - base.astype(float)
    normal_half_width = 1.959964 * d.std(ddof=1) / math.sqrt(d.size)
    assert (hi - lo) / 2 == pytest.approx(normal_half_width, rel=0.1)


def test_bootstrap_pairing_matters() -> None:
    # Identical runs but for two items: an unpaired interval would be ~±4 points, the paired one is tiny.
    base = np.array([True] * 500 + [False] * 500)
    steered = base.copy()
    steered[[600, 700]] = True
    _, lo, hi = bootstrap_diff_ci(base, steered, seed=0)
    assert lo >= 0.0 and hi <= 0.006


def test_bootstrap_is_seeded() -> None:
    base, steered, _ = _paired_items(400, seed=2)
    assert bootstrap_diff_ci(base, steered, seed=5) == bootstrap_diff_ci(base, steered, seed=5)
    assert bootstrap_diff_ci(base, steered, seed=5) != bootstrap_diff_ci(base, steered, seed=6)
    with pytest.raises(ConfigError, match="level"):
        bootstrap_diff_ci(base, steered, level=95)
    with pytest.raises(ConfigError, match="same items"):
        bootstrap_diff_ci(base, steered[:-1])
    with pytest.raises(ConfigError, match="0/1"):
        bootstrap_diff_ci([0, 2], [1, 1])


def test_side_effects_counts_and_ser() -> None:
    base = [1, 1, 1, 0, 0, 0, 0, 1]
    steered = [1, 0, 1, 1, 1, 1, 0, 1]
    result = side_effects(base, steered)
    assert isinstance(result, SideEffects)
    assert (result.pos, result.neg, result.changed, result.n) == (3, 1, 4, 8)
    assert result.ser == pytest.approx(0.25)
    assert result.base_accuracy == 0.5 and result.steered_accuracy == 0.75 and result.diff == pytest.approx(0.25)
    assert result.p_value == pytest.approx(binomtest(3, 4, 0.5).pvalue)
    assert result.ci_low <= result.diff <= result.ci_high


def test_side_effects_changed_answers_and_zero_over_zero() -> None:
    base_answers = ["A", "B", "C", "D"]
    steered_answers = ["A", "C", "D", "D"]  # two answers changed, both still wrong
    result = side_effects([1, 0, 0, 1], [1, 0, 0, 1], base_answers, steered_answers)
    assert (result.pos, result.neg, result.changed) == (0, 0, 2)
    assert result.ser is None and result.p_value == 1.0 and result.diff == 0.0
    assert side_effects([1, 0], [0, 1]).ser == 0.5
    assert side_effects([1, 1], [0, 0]).ser == 1.0
    with pytest.raises(ConfigError, match="both"):
        side_effects([1, 0], [1, 0], base_answers=["A", "B"])
    with pytest.raises(ConfigError, match="one entry per item"):
        side_effects([1, 0], [1, 0], ["A"], ["A", "B"])


def test_mean_std() -> None:
    assert mean_std([55.48]) == (55.48, 0.0)
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3) and std == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    with pytest.raises(ConfigError):
        mean_std([])


def _result(label: str, base: list[bool], steered: list[bool], ids: list[str] | None = None):
    import pandas as pd

    from corrsteer_core.evaluate import EvaluationResult

    ids = ids or [f"i{k}" for k in range(len(base))]
    table = pd.DataFrame({"item_id": ids, "base_correct": base, "steered_correct": steered})
    table["base_degenerate"] = table["steered_degenerate"] = False
    return EvaluationResult("t", label, side_effects(base, steered), table)


def test_head_to_head_and_verdict_compare_profile_with_each_control_item_by_item():
    from corrsteer_core.controls import ControlReport, head_to_head

    n = 60
    base = [False] * n
    profile = [True] * 40 + [False] * 20  # +66.7 %, all POS
    strong = [True] * 36 + [False] * 24  # a control nearly as good: 4 / 0 head to head, not significant
    weak = [True] * 5 + [False] * 55
    vs = head_to_head(_result("p", base, profile), _result("c", base, strong))
    assert (vs.pos, vs.neg) == (4, 0) and vs.diff == pytest.approx(4 / n) and vs.p_value == pytest.approx(0.125)
    # aligned by item id, not by row order
    shuffled = _result("c", base[::-1], strong[::-1], [f"i{k}" for k in reversed(range(n))])
    assert head_to_head(_result("p", base, profile), shuffled) == vs
    report = ControlReport(
        profiles={},
        results={
            "profile": _result("p", base, profile),
            "random-directions": _result("r", base, strong),
            "shuffled-labels": _result("s", base, weak),
        },
    )
    verdict = report.verdict()
    assert "does not clearly beat random-directions" in verdict and "SER 0.00" in verdict
    table = report.table().set_index("condition")
    assert table.loc["shuffled-labels", "profile_ahead"] == pytest.approx(35 / n)
    assert table.loc["shuffled-labels", "profile_ahead_p"] < 1e-6
    report.results["random-directions"] = _result("r", base, weak)
    assert report.verdict().endswith("beats every control")
    with pytest.raises(ConfigError, match="same test items"):
        head_to_head(_result("p", base, profile), _result("c", base[:10], strong[:10]))

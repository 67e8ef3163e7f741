"""Selectors on synthetic statistics with a planted feature."""

from __future__ import annotations

import pytest
import torch

from corrsteer_core.errors import ConfigError, SelectionError
from corrsteer_core.ranking import SELECTORS, Candidate, candidates_frame, feature_scores, top_candidates
from corrsteer_core.stats import CorrelationStats

N_LAYERS, N_FEATURES, PLANTED = 3, 40, (1, 17)


@pytest.fixture(scope="module")
def planted() -> CorrelationStats:
    """SAE-like sparse activations; feature 17 of layer 1 fires strongly on correct samples only."""
    gen = torch.Generator().manual_seed(0)
    n = 600
    y = (torch.rand(n, generator=gen) < 0.5).long()
    x = torch.rand(n, N_LAYERS, N_FEATURES, generator=gen) * 4
    x *= torch.rand(n, N_LAYERS, N_FEATURES, generator=gen) < 0.3  # fires on ~30% of samples
    noise = torch.rand(n, generator=gen) * 0.2
    x[:, PLANTED[0], PLANTED[1]] = torch.where(y == 1, 2.0 + noise, 0.0)
    x[:, 2, 5] = torch.where(y == 1, 0.0, 3.0 + noise)  # anti-correlated: high CAA/MI score, r < 0
    stats = CorrelationStats(N_LAYERS, N_FEATURES)
    for start in range(0, n, 50):
        stats.update(x[start : start + 50], y[start : start + 50])
    return stats


@pytest.mark.parametrize("selector", ["corr", "mi", "fisher", "caa"])
def test_planted_feature_ranks_first(planted: CorrelationStats, selector: str) -> None:
    layers = top_candidates(planted, selector, k=3)
    best = layers[PLANTED[0]][0]
    assert (best.layer, best.feature, best.rank) == (*PLANTED, 0)
    assert best.r > 0.9 and best.firing_rate_incorrect == 0.0 and best.firing_rate_correct == 1.0
    assert best.coefficient == pytest.approx(2.1, abs=0.02)
    scores = feature_scores(planted, selector)
    assert scores.shape == (N_LAYERS, N_FEATURES) and int(scores[PLANTED[0]].argmax()) == PLANTED[1]


def test_corr_keeps_only_positive_r_and_baselines_do_not(planted: CorrelationStats) -> None:
    r = planted.pearson()
    for layer in top_candidates(planted, "corr", k=N_FEATURES):
        assert all(c.r > 0 for c in layer)
        assert [c.score for c in layer] == sorted((c.score for c in layer), reverse=True)
    assert len(top_candidates(planted, "corr", k=N_FEATURES)[2]) == int((r[2] > 0).sum())
    caa_best = top_candidates(planted, "caa", k=1)[2][0]
    assert caa_best.feature == 5 and caa_best.r < -0.9
    assert top_candidates(planted, "caa", k=1, require_positive_r=True)[2][0].feature != 5


def test_layer_without_positive_feature_gets_no_candidates() -> None:
    stats = CorrelationStats(2, 2)
    y = torch.tensor([1, 0, 1, 0])
    x = torch.zeros(4, 2, 2)
    x[:, 0, 0], x[:, 0, 1] = 1.0 - y, 2.0 - y  # layer 0: only anti-correlated features
    x[:, 1, 0], x[:, 1, 1] = y * 1.0, 1.0 - y
    stats.update(x, y)
    out = top_candidates(stats, "corr")
    assert out[0] == [] and [c.feature for c in out[1]] == [0]
    frame = candidates_frame(out)
    assert list(frame.columns) == [
        "layer",
        "feature",
        "rank",
        "score",
        "r",
        "coefficient",
        "firing_rate",
        "firing_rate_correct",
        "firing_rate_incorrect",
    ]
    assert len(frame) == 1 and frame.loc[0, "layer"] == 1
    assert len(candidates_frame([])) == 0 and len(candidates_frame(out[1])) == 1


def test_random_is_seeded_and_positive_only(planted: CorrelationStats) -> None:
    r = planted.pearson()
    first = top_candidates(planted, "random", k=5, seed=3)
    assert first == top_candidates(planted, "random", k=5, seed=3)
    assert first != top_candidates(planted, "random", k=5, seed=4)
    assert all(c.r > 0 for layer in first for c in layer)
    scores = feature_scores(planted, "random", seed=3)
    assert torch.equal(torch.isfinite(scores), r > 0)


def test_min_firing_excludes_rare_features() -> None:
    stats = CorrelationStats(1, 2)
    x = torch.zeros(20, 1, 2)
    y = (torch.arange(20) < 10).long()
    x[0, 0, 0] = 5.0  # fires once, on a correct sample: high r, no support
    x[:, 0, 1] = y * 1.0 + 0.5 * (torch.arange(20) % 2)
    stats.update(x, y)
    assert top_candidates(stats, "fisher", k=1)[0][0].feature == 0
    assert top_candidates(stats, "fisher", k=1, min_firing=5)[0][0].feature == 1
    scores = feature_scores(stats, "corr", min_firing=5)
    assert scores[0, 0] == -torch.inf and torch.isfinite(scores[0, 1])


def test_within_strata_changes_corr_ranking() -> None:
    gen = torch.Generator().manual_seed(1)
    n = 2000
    strata = (torch.rand(n, generator=gen) < 0.5).long()
    y = (torch.rand(n, generator=gen) < torch.where(strata == 1, 0.9, 0.1)).long()
    x = torch.zeros(n, 1, 2)
    x[:, 0, 0] = strata * 3.0 + torch.rand(n, generator=gen)  # confound: follows the stratum
    x[:, 0, 1] = y * 0.5 + torch.rand(n, generator=gen)  # weaker, genuine
    stats = CorrelationStats(1, 2, n_strata=2)
    stats.update(x, y, strata)
    assert top_candidates(stats, "corr", k=1)[0][0].feature == 0
    assert top_candidates(stats, "corr", k=1, within_strata=True)[0][0].feature == 1


def test_invalid_arguments(planted: CorrelationStats) -> None:
    with pytest.raises(ConfigError, match="corr, mi, fisher, caa, random"):
        top_candidates(planted, "spare")
    with pytest.raises(ConfigError, match="k must"):
        top_candidates(planted, "corr", k=0)
    with pytest.raises(ConfigError, match="min_firing"):
        feature_scores(planted, "corr", min_firing=-1)
    with pytest.raises(ConfigError, match="correct_mean"):
        top_candidates(planted, "corr", coefficient_mode="max")  # type: ignore[arg-type]
    with pytest.raises(SelectionError, match="no samples"):
        top_candidates(CorrelationStats(1, 2), "corr")
    assert set(SELECTORS) == {"corr", "mi", "fisher", "caa", "random"}
    assert isinstance(top_candidates(planted)[1][0], Candidate)

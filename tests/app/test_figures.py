"""Figure builders on small DataFrames: shapes, hover data and the click round trip."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from app.ui import figures


def _candidates() -> pd.DataFrame:
    rows = []
    for layer in (0, 1, 3):
        for rank in range(3 if layer != 3 else 1):
            rows.append(
                {
                    "layer": layer,
                    "feature": 10 * layer + rank,
                    "rank": rank,
                    "score": 0.5 - 0.1 * rank,
                    "r": 0.5 - 0.1 * rank - 0.05 * layer,
                    "coefficient": 1.0 + rank,
                    "firing_rate": 0.25,
                    "firing_rate_correct": 0.4,
                    "firing_rate_incorrect": 0.1,
                }
            )
    return pd.DataFrame(rows)


def test_heatmap_has_one_square_per_candidate_with_hover_data() -> None:
    frame = _candidates()
    fig = figures.candidate_heatmap(frame, explanations={(1, 11): "dates <b>"}, selected={(0, 0), (1, 10)})
    (trace,) = fig.data  # no chance level given: the candidates only
    assert len(trace.x) == len(frame) == 7
    assert sorted(set(trace.y)) == [0, 1, 3]
    assert sorted(set(trace.x)) == [1, 2, 3]  # ranks shown from 1
    custom = np.asarray(trace.customdata)
    assert custom.shape == (7, len(figures.HEATMAP_FIELDS))
    row = next(c for c in custom if c[0] == 1 and c[1] == 11)
    assert row[5] == "dates <b>" and math.isclose(float(row[2]), 0.5 - 0.1 - 0.05)
    assert list(trace.marker.color) == list(frame.sort_values(["layer", "rank"])["r"])
    assert trace.marker.cmin == frame["r"].min() and trace.marker.cmax == frame["r"].max()  # fitted to the data
    assert list(fig.layout.yaxis.tickvals) == [0, 1, 3] and fig.layout.yaxis.range == (3.5, -0.5)  # no empty rows
    widths = list(trace.marker.line.width)
    assert sum(1 for w in widths if w > 0) == 2  # the two selected features are outlined
    for name in ("customdata[1]", "customdata[2]", "customdata[3]", "customdata[4]", "customdata[5]"):
        assert name in trace.hovertemplate


def test_heatmap_draws_the_chance_level_and_fades_what_does_not_beat_it() -> None:
    frame = _candidates()
    chance = {0: 0.45, 1: 0.1, 3: 0.2}
    fig = figures.candidate_heatmap(frame, chance=chance, layers=[0, 1, 2, 3], n_samples=32)
    squares, diamonds = fig.data
    assert list(diamonds.x) == [0, 0, 0] and list(diamonds.y) == [0, 1, 3]
    assert list(diamonds.marker.color) == [0.45, 0.1, 0.2] and diamonds.customdata is None  # not clickable
    ordered = frame.sort_values(["layer", "rank"])
    expected = [
        0.3 if r <= chance[layer] else 1.0 for layer, r in zip(ordered["layer"], ordered["r"], strict=True)
    ]
    assert list(squares.marker.opacity) == expected and 0.3 in expected and 1.0 in expected
    assert "32 samples" in fig.layout.title.text and list(fig.layout.yaxis.tickvals) == [0, 1, 2, 3]
    both = figures.candidate_heatmap(frame.assign(r=frame["r"] - 0.3))  # r of both signs: diverging around 0
    assert both.data[0].marker.cmid == 0.0 and both.data[0].marker.colorscale[0][1] != "#440154"


def test_clicked_feature_reads_layer_and_feature_back() -> None:
    fig = figures.candidate_heatmap(_candidates())
    point = {"customdata": list(fig.data[0].customdata[4]), "x": 2, "y": 1}
    assert figures.clicked_feature({"points": [point]}) == (1, 11)
    assert figures.clicked_feature({"points": []}) is None
    assert figures.clicked_feature(None) is None
    assert figures.clicked_feature({"points": [{"x": 1}]}) is None


def test_empty_candidates_still_make_a_figure() -> None:
    fig = figures.candidate_heatmap(_candidates().iloc[0:0])
    assert len(fig.data[0].x) == 0


def test_layer_bars_grey_out_disabled_layers() -> None:
    frame = pd.DataFrame({"layer": [0, 1, 2], "feature": [5, 6, 7], "r": [0.1, 0.2, 0.3]})
    fig = figures.layer_bars(frame, "r", title="r", enabled={0, 2})
    (bar,) = fig.data
    assert list(bar.y) == [0.1, 0.2, 0.3]
    assert bar.marker.color[0] == bar.marker.color[2] != bar.marker.color[1]


def test_relative_norm_bars_show_the_running_sum() -> None:
    frame = pd.DataFrame({"layer": [4, 2], "relative_norm": [0.3, 0.1]})
    bars, line = figures.relative_norm_bars(frame).data
    assert list(bars.x) == [2, 4]
    assert np.allclose(list(line.y), [0.1, 0.4])


def test_class_histogram_normalises_each_class() -> None:
    edges = [-math.inf, 0.0, 1.0, 2.0, math.inf]
    fig = figures.class_histogram(edges, [2, 1, 1, 0], [6, 2, 0, 0])
    correct, incorrect = fig.data
    assert list(correct.x) == ["0 (silent)", "0–1", "1–2"]  # the empty top bin is dropped
    assert np.allclose(list(correct.y), [0.5, 0.25, 0.25])
    assert np.allclose(list(incorrect.y), [0.75, 0.25, 0.0])
    fig = figures.class_histogram(edges, [0, 0, 0, 1], [1, 0, 0, 0])
    assert list(fig.data[0].x) == ["0 (silent)", "≥ 2"]
    with pytest.raises(ValueError):
        figures.class_histogram(edges, [1, 2], [1, 2])


def test_class_histogram_drops_empty_bins_at_the_ends() -> None:
    edges = [-math.inf, 0.0, 1.0, 2.0, 3.0, 4.0, math.inf]
    fig = figures.class_histogram(edges, [1, 0, 0, 2, 0, 0], [3, 0, 1, 0, 0, 0])
    assert list(fig.data[0].x) == ["0 (silent)", "1–2", "2–3"]
    assert list(fig.data[1].customdata[:, 0]) == [3, 1, 0]


def test_sweep_figure_band_is_base_plus_interval() -> None:
    sweep = pd.DataFrame(
        {
            "scale": [1.0, 0.0],
            "base_accuracy": [0.5, 0.5],
            "steered_accuracy": [0.6, 0.5],
            "ci_low": [0.0, 0.0],
            "ci_high": [0.2, 0.0],
            "pos": [3, 0],
            "neg": [1, 0],
            "p_value": [0.6, 1.0],
        }
    )
    high, low, steered, base = figures.sweep_figure(sweep).data
    assert list(steered.x) == [0.0, 1.0]
    assert np.allclose(list(high.y), [0.5, 0.7]) and np.allclose(list(low.y), [0.5, 0.5])
    assert np.allclose(list(base.y), [0.5, 0.5])
    wide = sweep.assign(ci_low=[-0.9, 0.0], ci_high=[0.9, 0.0])
    high, low, _, _ = figures.sweep_figure(wide).data
    assert np.allclose(list(low.y), [0.5, 0.0]) and np.allclose(list(high.y), [0.5, 1.0])  # kept within [0, 1]

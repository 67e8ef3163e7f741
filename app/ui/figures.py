"""Pure Plotly figure builders: pandas or plain numbers in, ``go.Figure`` out, no Streamlit.

Kept free of Streamlit and of the model so each one can be unit-tested on a small DataFrame.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "HEATMAP_FIELDS",
    "candidate_heatmap",
    "class_histogram",
    "clicked_feature",
    "layer_bars",
    "relative_norm_bars",
    "sweep_figure",
]

# customdata columns of the heatmap's points (the click handler reads layer and feature back)
HEATMAP_FIELDS = ("layer", "feature", "r", "coefficient", "firing_rate", "explanation")
_CORRECT, _INCORRECT, _NEUTRAL, _MUTED = "#2f855a", "#c53030", "#2b6cb0", "#a0aec0"
_LAYOUT: dict[str, Any] = {"margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "template": "plotly_white"}


def _colour_scale(values: pd.Series) -> dict[str, Any]:
    """Colours fitted to the data: diverging around r = 0 when r takes both signs, else sequential over the
    range the data covers (so 0.6 … 0.93 is not one dark red on a −0.9 … +0.9 scale)."""
    if values.empty:
        return {"colorscale": "Viridis", "cmin": 0.0, "cmax": 1.0}
    lo, hi = float(values.min()), float(values.max())
    if lo < 0 < hi:
        return {"colorscale": "RdBu_r", "cmin": lo, "cmax": hi, "cmid": 0.0}
    if hi - lo < 1e-3:
        lo, hi = lo - 0.01, hi + 0.01
    return {"colorscale": "Viridis", "cmin": lo, "cmax": hi}


def candidate_heatmap(
    candidates: pd.DataFrame,
    explanations: Mapping[tuple[int, int], str] | None = None,
    selected: set[tuple[int, int]] | None = None,
    *,
    chance: Mapping[int, float] | None = None,
    layers: Sequence[int] | None = None,
    n_samples: int | None = None,
) -> go.Figure:
    """Layers (rows) x candidate rank (columns), coloured by Pearson r; one clickable square per candidate.

    Drawn as a scatter of square markers rather than ``go.Heatmap`` because Streamlit's selection events carry
    no data for heatmap traces; each point's customdata is :data:`HEATMAP_FIELDS`. ``selected`` features (the
    profile's) get a black outline. ``chance`` (layer -> the top r any feature reaches with shuffled labels at
    this sample size) is drawn as a column of its own at rank "chance"; candidates at or below their layer's
    chance level are faded. ``layers``: the rows to show (the run's layers; default those with candidates).
    """
    frame = candidates.sort_values(["layer", "rank"]).reset_index(drop=True)
    explanations = explanations or {}
    selected = selected or set()
    chance = dict(chance or {})
    keys = list(zip(frame["layer"].astype(int), frame["feature"].astype(int), strict=True))
    custom = np.array(
        [
            [layer, feature, r, c, rate, explanations.get((layer, feature), "")]
            for (layer, feature), r, c, rate in zip(
                keys, frame["r"], frame["coefficient"], frame["firing_rate"], strict=True
            )
        ],
        dtype=object,
    ).reshape(len(frame), len(HEATMAP_FIELDS))
    scale = _colour_scale(pd.concat([frame["r"], pd.Series(list(chance.values()), dtype=float)]))
    rows = sorted({int(v) for v in (layers if layers is not None else frame["layer"])})
    faded = [k[0] in chance and float(r) <= chance[k[0]] for k, r in zip(keys, frame["r"], strict=True)]
    traces = [
        go.Scatter(
            x=frame["rank"] + 1,
            y=frame["layer"],
            mode="markers",
            customdata=custom,
            name="candidates",
            marker={
                "symbol": "square",
                "size": 24,
                "color": frame["r"],
                **scale,
                "opacity": [0.3 if f else 1.0 for f in faded],
                "colorbar": {"title": {"text": "r"}},
                "line": {"width": [3 if k in selected else 0 for k in keys], "color": "black"},
            },
            hovertemplate=(
                "layer %{customdata[0]} · feature %{customdata[1]}<br>r = %{customdata[2]:.3f}"
                "<br>coefficient = %{customdata[3]:.3g}<br>firing rate = %{customdata[4]:.1%}"
                "<br>%{customdata[5]}<extra></extra>"
            ),
        )
    ]
    if chance:
        shown = sorted(chance)
        traces.append(
            go.Scatter(
                x=[0] * len(shown),
                y=shown,
                mode="markers",
                name="chance",
                marker={
                    "symbol": "diamond",
                    "size": 18,
                    "color": [chance[k] for k in shown],
                    **scale,
                    "line": {"width": 2, "color": _MUTED},
                },
                hovertemplate="layer %{y}: shuffled labels reach r = %{marker.color:.3f}<extra>chance</extra>",
            )
        )
    fig = go.Figure(traces)
    sample = f" with {n_samples} samples" if n_samples else ""
    title = "Top candidates per layer (click a square to open the feature)"
    if chance:
        title += f"<br><sup>◆ chance: the best r shuffled labels reach{sample}; faded squares do not beat it</sup>"
    ranks = int(frame["rank"].max()) + 1 if len(frame) else 1
    fig.update_layout(
        **_LAYOUT,
        title=title,
        showlegend=False,
        xaxis={
            "title": "candidate rank",
            "tickvals": ([0] if chance else []) + list(range(1, ranks + 1)),
            "ticktext": (["chance"] if chance else []) + [str(k) for k in range(1, ranks + 1)],
            "range": [-0.6 if chance else 0.4, ranks + 0.6],
        },
        yaxis={
            "title": "layer",
            "tickvals": rows,
            "range": [max(rows, default=0) + 0.5, min(rows, default=0) - 0.5],  # only the model's layers
        },
        height=max(260, 30 * max(len(rows), 1) + 140),
        clickmode="event+select",
    )
    return fig


def clicked_feature(selection: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """(layer, feature) of the first point of a ``st.plotly_chart`` selection on :func:`candidate_heatmap`."""
    points = (selection or {}).get("points") or []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, Sequence) and len(data) >= 2:
            try:
                return int(data[0]), int(data[1])
            except (TypeError, ValueError):
                continue
    return None


def layer_bars(
    frame: pd.DataFrame, column: str, *, title: str, enabled: set[int] | None = None, fmt: str = ".3g"
) -> go.Figure:
    """One bar per layer of ``frame[column]``; layers not in ``enabled`` (when given) are greyed out."""
    colors = [_NEUTRAL if enabled is None or int(layer) in enabled else _MUTED for layer in frame["layer"]]
    features = frame["feature"] if "feature" in frame else [""] * len(frame)
    fig = go.Figure(
        go.Bar(
            x=frame["layer"],
            y=frame[column],
            marker_color=colors,
            customdata=np.asarray(features).reshape(-1, 1),
            hovertemplate=f"layer %{{x}} · feature %{{customdata[0]}}<br>{column} = %{{y:{fmt}}}<extra></extra>",
        )
    )
    fig.update_layout(
        **_LAYOUT, title=title, xaxis={"title": "layer", "dtick": 1}, yaxis={"title": column}, height=300
    )
    return fig


def relative_norm_bars(diagnostics: pd.DataFrame) -> go.Figure:
    """Per-layer ‖vector‖ / mean ‖residual‖ (bars) and its running sum over layers (line)."""
    frame = diagnostics.sort_values("layer")
    fig = go.Figure(
        [
            go.Bar(
                x=frame["layer"],
                y=frame["relative_norm"],
                name="relative norm",
                marker_color=_NEUTRAL,
                hovertemplate="layer %{x}<br>relative norm = %{y:.3f}<extra></extra>",
            ),
            go.Scatter(
                x=frame["layer"],
                y=frame["relative_norm"].fillna(0).cumsum(),
                name="cumulative",
                mode="lines+markers",
                line={"color": _INCORRECT},
                hovertemplate="up to layer %{x}<br>cumulative = %{y:.3f}<extra></extra>",
            ),
        ]
    )
    fig.update_layout(
        **_LAYOUT,
        title="Steering vector norm relative to the residual stream",
        xaxis={"title": "layer", "dtick": 1},
        yaxis={"title": "‖c·s·d‖ / mean ‖h‖"},
        height=320,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def _bin_labels(edges: Sequence[float]) -> list[str]:
    labels = []
    for lo, hi in itertools.pairwise(edges):
        if math.isinf(lo):
            labels.append("0 (silent)")
        elif math.isinf(hi):
            labels.append(f"≥ {lo:.3g}")
        else:
            labels.append(f"{lo:.3g}–{hi:.3g}")
    return labels


def class_histogram(
    bin_edges: Sequence[float], counts_correct: Sequence[int], counts_incorrect: Sequence[int]
) -> go.Figure:
    """Pooled-activation histogram by class, as the share of each class's samples in each bin."""
    labels = _bin_labels(bin_edges)
    if len(labels) != len(counts_correct) or len(labels) != len(counts_incorrect):
        raise ValueError(f"{len(bin_edges)} edges need {len(labels)} counts per class")
    # keep the silent bin, and the firing bins from the first to the last one that holds any sample
    used = [k for k in range(1, len(labels)) if counts_correct[k] or counts_incorrect[k]]
    keep = [0, *range(used[0], used[-1] + 1)] if used else [0]
    labels = [labels[k] for k in keep]
    counts_correct = [counts_correct[k] for k in keep]
    counts_incorrect = [counts_incorrect[k] for k in keep]
    fig = go.Figure()
    for name, counts, color in (
        ("correct", counts_correct, _CORRECT),
        ("incorrect", counts_incorrect, _INCORRECT),
    ):
        total = max(1, sum(counts))
        fig.add_bar(
            x=labels,
            y=[c / total for c in counts],
            name=f"{name} (n={sum(counts)})",
            marker_color=color,
            customdata=np.asarray(counts).reshape(-1, 1),
            hovertemplate="%{x}<br>%{y:.1%} of the class (%{customdata[0]} samples)<extra></extra>",
        )
    fig.update_layout(
        **_LAYOUT,
        title="Pooled activation by class",
        barmode="group",
        xaxis={"title": "pooled activation"},
        yaxis={"title": "share of class", "tickformat": ".0%"},
        height=320,
        legend={"orientation": "h", "y": -0.35},
    )
    return fig


def sweep_figure(sweep: pd.DataFrame) -> go.Figure:
    """Steered accuracy (with its 95% bootstrap band) and unsteered accuracy against the global scale."""
    frame = sweep.sort_values("scale")
    # the paired interval of the difference, placed around the unsteered accuracy (an accuracy stays in [0, 1])
    low = (frame["base_accuracy"] + frame["ci_low"]).clip(0.0, 1.0)
    high = (frame["base_accuracy"] + frame["ci_high"]).clip(0.0, 1.0)
    fig = go.Figure(
        [
            go.Scatter(
                x=frame["scale"], y=high, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"
            ),
            go.Scatter(
                x=frame["scale"],
                y=low,
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(43,108,176,0.15)",
                name="95% CI",
                hoverinfo="skip",
            ),
            go.Scatter(
                x=frame["scale"],
                y=frame["steered_accuracy"],
                mode="lines+markers",
                name="steered",
                line={"color": _NEUTRAL},
                customdata=np.stack([frame["pos"], frame["neg"], frame["p_value"]], axis=-1),
                hovertemplate=(
                    "scale %{x}<br>accuracy %{y:.1%}<br>POS %{customdata[0]} · NEG %{customdata[1]}"
                    "<br>McNemar p = %{customdata[2]:.3g}<extra></extra>"
                ),
            ),
            go.Scatter(
                x=frame["scale"],
                y=frame["base_accuracy"],
                mode="lines",
                name="unsteered",
                line={"color": _MUTED, "dash": "dash"},
                hovertemplate="unsteered accuracy %{y:.1%}<extra></extra>",
            ),
        ]
    )
    fig.update_layout(
        **_LAYOUT,
        title="Accuracy against the global scale",
        xaxis={"title": "global scale"},
        yaxis={"title": "accuracy", "tickformat": ".0%"},
        height=340,
        legend={"orientation": "h", "y": -0.3},
    )
    return fig

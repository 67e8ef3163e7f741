"""How test-split results are shown: accuracy with its interval, side effects, flipped items, sweeps, controls."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app.ui import figures
from app.ui.text import md

__all__ = [
    "accuracy_delta",
    "format_summary",
    "halves_frame",
    "saved_evaluations_frame",
    "show_controls",
    "show_evaluation",
    "show_saved",
    "show_sweep",
]

_FLIP_COLUMNS = [
    "item_id",
    "prompt",
    "target",
    "base_answer",
    "steered_answer",
    "base_generation",
    "steered_generation",
]


def format_summary(summary: dict[str, Any]) -> dict[str, str]:
    """Readable strings for an EvaluationResult.summary() (fractions as percentages, SER may be None)."""
    ser = summary.get("ser")
    return {
        "accuracy": f"{summary['base_accuracy']:.1%} → {summary['steered_accuracy']:.1%}",
        "diff": f"{summary['diff']:+.1%} (95% CI {summary['ci_low']:+.1%} … {summary['ci_high']:+.1%})",
        "pos_neg": f"{summary['pos']} / {summary['neg']}",
        "ser": "n/a (no flips)" if ser is None else f"{ser:.2f}",
        "changed": f"{summary['changed']} of {summary['n']}",
        "p_value": f"{summary['p_value']:.3g}",
    }


def accuracy_delta(diff: float) -> str | None:
    """The metric's delta: none at all for a change that rounds to zero (never a green "+0.0 %")."""
    return None if round(diff * 1000) == 0 else f"{diff:+.1%}"


def halves_frame(groups: list[dict[str, Any]], key: str, condition: str | None = None) -> pd.DataFrame:
    """One row per half of a paired task (EvaluationResult.groups), readable: accuracies and flips."""
    rows = []
    for g in groups:
        row: dict[str, Any] = {} if condition is None else {"condition": condition}
        row |= {
            key: g["group"],
            "items": g["n"],
            "unsteered": g["base_accuracy"],
            "steered": g["steered_accuracy"],
            "change": g["diff"],
            "wrong → right": g["pos"],
            "right → wrong": g["neg"],
        }
        rows.append(row)
    return pd.DataFrame(rows)


_HALF_FORMAT = {k: st.column_config.NumberColumn(format="percent") for k in ("unsteered", "steered", "change")}


def show_halves(result: Any, key: str | None) -> None:
    """Both halves of a paired task with their flips (the truth of a paired behaviour is per half)."""
    frame = halves_frame(result.groups(key), key or "")
    if frame.empty or key is None:
        return
    st.markdown(f"**Per half** (by {md(key)}): each half must move the right way, with its own flips")
    st.dataframe(frame, hide_index=True, column_config=_HALF_FORMAT)


def show_evaluation(result: Any, stale: bool, paired_key: str | None = None) -> None:
    summary = result.summary()
    text = format_summary(summary)
    if stale:
        st.caption("These numbers are for an earlier version of the profile; evaluate again to update them.")
    c = st.columns(4)
    c[0].metric("Accuracy (unsteered → steered)", text["accuracy"], accuracy_delta(summary["diff"]))
    c[1].metric("POS / NEG", text["pos_neg"], help="POS: items that went wrong → right; NEG: right → wrong.")
    c[2].metric("Side Effect Ratio", text["ser"], help="SER = NEG / (NEG + POS): the share of flips that hurt.")
    c[3].metric("McNemar p", text["p_value"], help="Exact two-sided test on the flipped items.")
    st.caption(
        f"Difference {text['diff']} · answers changed: {text['changed']} test items · degenerate (empty or "
        f"repetitive) generations: {summary.get('base_degenerate', 0)} unsteered, "
        f"{summary.get('steered_degenerate', 0)} steered."
    )
    show_halves(result, paired_key)
    columns = ([f"meta_{paired_key}"] if paired_key else []) + _FLIP_COLUMNS
    left, right = st.tabs([f"wrong → right ({summary['pos']})", f"right → wrong ({summary['neg']})"])
    for tab, kind in ((left, "wrong→right"), (right, "right→wrong")):
        flips = result.flips(kind)
        with tab:
            if flips.empty:
                st.caption("No such items.")
            else:
                st.dataframe(flips[[c for c in columns if c in flips.columns]], hide_index=True)
    with st.expander("Every test item"):
        st.dataframe(result.table, hide_index=True)


def saved_evaluations_frame(records: list[dict[str, Any]], current_hash: str | None) -> pd.DataFrame:
    """One row per saved evaluation of a run (see corrsteer_core.evaluate.record_evaluation), newest first."""
    rows = []
    for r in records:
        summary = r.get("summary") or {}
        try:
            text = format_summary(summary)
        except (KeyError, TypeError, ValueError):  # a file from another version: skip, never fail the page
            continue
        layers = r.get("layers") or []
        rows.append(
            {
                "current": r.get("profile_hash") == current_hash,
                "saved": pd.Timestamp(float(r.get("saved", 0)), unit="s").strftime("%Y-%m-%d %H:%M"),
                "profile": str(r.get("profile_name", "")),
                "split": str(r.get("split", "")),
                "layers": ", ".join(f"L{lay}:f{feat}×{scale:g}" for lay, feat, scale in layers) or "none",
                "accuracy": text["accuracy"],
                "diff [95% CI]": text["diff"],
                "POS / NEG": text["pos_neg"],
                "SER": text["ser"],
                "McNemar p": text["p_value"],
                "degenerate": summary.get("steered_degenerate"),
            }
        )
    return pd.DataFrame(rows)


def show_saved(records: list[dict[str, Any]], current_hash: str | None) -> None:
    """Evaluations saved with the run (they survive restarts); the current profile's are marked."""
    frame = saved_evaluations_frame(records, current_hash)
    if frame.empty:
        return
    with st.expander(f"Saved evaluations of this run ({len(frame)})", expanded=False):
        st.caption("Every evaluation of a profile selected from this run, by the app or `corrsteer evaluate`.")
        st.dataframe(frame, hide_index=True)


def show_sweep(sweep: pd.DataFrame, stale: bool) -> None:
    if stale:
        st.caption("This sweep is for an earlier version of the profile.")
    st.plotly_chart(figures.sweep_figure(sweep))
    columns = [
        "scale",
        "base_accuracy",
        "steered_accuracy",
        "diff",
        "ci_low",
        "ci_high",
        "pos",
        "neg",
        "ser",
        "changed",
        "p_value",
    ]
    pct = st.column_config.NumberColumn(format="percent")
    st.dataframe(
        sweep[[c for c in columns if c in sweep.columns]],
        hide_index=True,
        column_config={k: pct for k in ("base_accuracy", "steered_accuracy", "diff", "ci_low", "ci_high")},
    )


def show_controls(report: Any, stale: bool = False, paired_key: str | None = None) -> None:
    if stale:
        st.caption("These controls tested an earlier version of the profile; run them again to update them.")
    verdict = report.verdict()
    (st.success if "beats every control" in verdict else st.warning)(md(verdict))
    table = report.table()
    pct = st.column_config.NumberColumn(format="percent")
    config: dict[str, Any] = {k: pct for k in ("base_accuracy", "steered_accuracy", "diff", "ci_low", "ci_high")}
    config["profile_ahead"] = st.column_config.NumberColumn(
        "profile ahead", format="percent", help="accuracy of the profile minus this control's, same test items"
    )
    config["profile_ahead_p"] = st.column_config.NumberColumn(
        "head-to-head p", format="%.3g", help="exact McNemar test of the profile against this control"
    )
    st.dataframe(table, hide_index=True, column_config=config)
    if paired_key is not None:
        halves = [halves_frame(res.groups(paired_key), paired_key, name) for name, res in report.results.items()]
        frame = pd.concat(halves, ignore_index=True) if halves else pd.DataFrame()
        if not frame.empty:
            st.markdown(f"**Per half** (by {md(paired_key)}), every condition on the same items")
            st.dataframe(frame, hide_index=True, column_config=_HALF_FORMAT)

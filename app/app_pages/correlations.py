"""Correlations: which feature each layer chose and why (r, coefficients, norms); click a feature to open it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.ui import figures, resources, state, widgets
from app.ui.pages import page_path
from app.ui.profile_builder import add_candidate
from app.ui.text import md

st.title("Correlations")
run_id, selection = widgets.require_run()
preset: str = st.session_state[state.PRESET]
with widgets.show_errors(stop=True):
    run = resources.collection(run_id)
profile = state.get(state.WORKING_PROFILE) or selection.profile
config = selection.profile.provenance.select

c = st.columns(4)
c[0].metric("Selection samples", run.n)
c[1].metric("Correct", f"{run.stats.n_correct} ({run.stats.n_correct / max(run.n, 1):.0%})")
c[2].metric("Layers with a candidate", sum(1 for cands in selection.candidates if cands))
c[3].metric("Method", f"{config.variant} · {config.selector}" if config is not None else "?")
for note in selection.warnings:
    st.warning(md(note))

candidates = selection.candidates_frame()
if candidates.empty:
    st.info("No candidate features in this run.")
    st.stop()
chosen = {(s.layer, s.feature) for s in selection.profile.layers}
pairs = list(zip(candidates["layer"].astype(int), candidates["feature"].astype(int), strict=True))
explanations = resources.cached_explanations(preset, pairs)
chance = resources.chance_levels(run_id)
event = st.plotly_chart(
    figures.candidate_heatmap(candidates, explanations, chosen, chance=chance, layers=run.layers, n_samples=run.n),
    key=state.CORR_HEATMAP,
    on_select="rerun",
    selection_mode="points",
    config={"displaylogo": False},
)
if chance:
    beat = [s.layer for s in selection.profile.layers if s.r is not None and s.r > chance.get(s.layer, -1.0)]
    st.caption(
        f"Chance: with labels shuffled, the best feature of a layer reaches r = {min(chance.values()):.2f} … "
        f"{max(chance.values()):.2f} on these {run.n} samples. {len(beat)} of {len(selection.profile.layers)} "
        "selected features beat their layer's chance level; a candidate that does not may be noise."
    )
clicked = figures.clicked_feature(event.selection if event else None)
if clicked is not None:
    state.put(state.FOCUS, clicked)
    st.switch_page(page_path("features"))

with st.form(state.CORR_OPEN, border=False):
    left, middle, right = st.columns([3, 1, 1])
    labels = {f"layer {layer} · feature {feature}": (layer, feature) for layer, feature in pairs}
    picked = left.selectbox("Or pick a candidate", list(labels), key=state.CORR_PICK)
    middle.markdown("&nbsp;")
    right.markdown("&nbsp;")
    if middle.form_submit_button("Open in Features", icon=":material/search:"):
        state.put(state.FOCUS, labels[picked])
        st.switch_page(page_path("features"))
    if right.form_submit_button("Add to the profile", icon=":material/add:"):
        add_candidate(*labels[picked])
        st.rerun()  # the notice and the grid's outlines follow the new profile

st.subheader("Selected feature per layer")
enabled = {s.layer for s in profile.enabled}
chosen_rows = pd.DataFrame(
    [
        {
            "layer": s.layer,
            "feature": s.feature,
            "r": s.r,
            "score": s.score,
            "coefficient": s.coefficient,
            "steered now": s.layer in enabled,
            "explanation": explanations.get((s.layer, s.feature), ""),
        }
        for s in selection.profile.layers
    ]
)
st.dataframe(chosen_rows, hide_index=True, column_config={"r": st.column_config.NumberColumn(format="%.3f")})
left, right = st.columns(2)
left.plotly_chart(
    figures.layer_bars(chosen_rows, "r", title="r of the selected feature by layer", enabled=enabled)
)
right.plotly_chart(
    figures.layer_bars(
        chosen_rows, "coefficient", title="Coefficient by layer (mean over correct)", enabled=enabled
    )
)

st.subheader("Norm diagnostics")
st.caption(
    "Collapse on small models follows the sum of relative norms over the steered layers, not any single one. "
    "Computed for the profile as currently edited on the Steer page."
)
with widgets.show_errors():
    norms = resources.norm_table(preset, profile, run_id)
    if norms.empty:
        st.info("No layer is enabled in the current profile.")
    else:
        st.metric("Cumulative relative norm", f"{norms['relative_norm'].fillna(0).sum():.3f}")
        st.plotly_chart(figures.relative_norm_bars(norms))
        st.dataframe(norms, hide_index=True)

if selection.details is not None and not selection.details.empty:
    with st.expander(f"Validation details of variant {config.variant if config is not None else ''}"):
        st.dataframe(selection.details, hide_index=True)

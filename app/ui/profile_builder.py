"""Build a profile by hand: add any candidate feature, remove a layer, set each feature's strength.

The callbacks run before the page is drawn (``on_click``/``on_change``), change the profile through
:mod:`app.ui.state` (``add_to_profile``, ``remove_from_profile``, ``set_profile``) and leave a notice, so the
settings table is redrawn from the new profile in the same run.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.ui import resources, state
from app.ui.profile_edit import candidate_setting, with_layer_values
from corrsteer_core.errors import CorrSteerError
from corrsteer_core.profile import SteeringProfile

__all__ = ["add_candidate", "builder_section", "strength_sliders"]

ADD_LAYER = "steer_add_layer"
ADD_FEATURE = "steer_add_feature"
REMOVE_LAYER = "steer_remove_layer"
_SLIDER = "steer_strength"


def add_candidate(layer: int, feature: int) -> None:
    """Callback: steer (layer, feature) in the profile being edited, with the current run's coefficient and r."""
    try:
        run_id = state.get(state.RUN_ID)
        if run_id is None:
            raise CorrSteerError("adding a feature needs a run (its coefficient is the run's mean over correct)")
        preset = st.session_state[state.PRESET]
        select = getattr(state.get(state.SELECTION), "profile", None)
        mode = getattr(getattr(getattr(select, "provenance", None), "select", None), "coefficient_mode", None)
        setting = candidate_setting(
            resources.collection(run_id), resources.saes(preset), int(layer), int(feature), mode or "correct_mean"
        )
        replaced = _current_feature(int(layer))
        state.add_to_profile(setting)
    except CorrSteerError as exc:
        state.notify("error", str(exc))
        return
    was = f" (replacing feature {replaced})" if replaced is not None and replaced != setting.feature else ""
    state.notify(
        "success",
        f"Layer {setting.layer} now steers feature {setting.feature}{was}, coefficient {setting.coefficient:.3g}, "
        "in the profile on the Steer page.",
    )


def _current_feature(layer: int) -> int | None:
    base = state.get(state.BASE_PROFILE)
    for s in getattr(base, "layers", ()):
        if s.layer == layer:
            return int(s.feature)
    return None


def _add_from_inputs() -> None:
    add_candidate(int(st.session_state[ADD_LAYER]), int(st.session_state[ADD_FEATURE]))


def _remove() -> None:
    layer = int(st.session_state[REMOVE_LAYER])
    try:
        state.remove_from_profile(layer)
    except CorrSteerError as exc:
        state.notify("error", str(exc))
        return
    state.notify("success", f"Layer {layer} removed from the profile.")


def _set_strength(layer: int, key: str) -> None:
    working = state.get(state.WORKING_PROFILE) or state.get(state.BASE_PROFILE)
    try:
        state.set_profile(with_layer_values(working, layer, scale=float(st.session_state[key])))
    except CorrSteerError as exc:
        state.notify("error", str(exc))


def strength_sliders(working: SteeringProfile) -> None:
    """One slider per feature of the profile for its scale (the table's ``scale`` cell, kept in step)."""
    if not working.layers:
        return
    version = state.get(state.EDITOR_VERSION, 0)
    columns = st.columns(min(4, len(working.layers)))
    for i, s in enumerate(working.layers):
        key = f"{_SLIDER}_{version}_{s.layer}_{s.scale:g}"  # a table edit of the scale redraws the slider
        columns[i % len(columns)].slider(
            f"L{s.layer} · f{s.feature} strength",
            min_value=min(-4.0, s.scale),
            max_value=max(4.0, s.scale),
            value=float(s.scale),
            step=0.05,
            key=key,
            disabled=not s.enabled,
            on_change=_set_strength,
            args=(s.layer, key),
            help="Multiplies this feature's coefficient (the table's scale cell).",
        )


def builder_section(working: SteeringProfile, run: Any | None, layers: list[int], d_sae: Any) -> None:
    """Add a feature by layer and index (any feature, not only candidates), or remove a layer."""
    with st.expander("Add or remove features", expanded=False):
        if run is None:
            st.caption("Adding a feature needs a run: its coefficient is the run's mean activation over correct.")
        else:
            a, b, c = st.columns([1, 1, 1])
            if st.session_state.get(ADD_LAYER) not in layers:
                st.session_state[ADD_LAYER] = layers[0]
            layer = a.selectbox("Layer", layers, key=ADD_LAYER)
            b.number_input("Feature", min_value=0, max_value=int(d_sae(layer)) - 1, step=1, key=ADD_FEATURE)
            c.markdown("&nbsp;")
            c.button("Add to profile", key="steer_add", on_click=_add_from_inputs, icon=":material/add:")
            st.caption(
                "The feature replaces that layer's feature, or adds the layer; a square of the Correlations grid "
                "or the Features page adds one too."
            )
        if working.layers:
            d, e = st.columns([2, 1])
            d.selectbox(
                "Layer to remove",
                [s.layer for s in working.layers],
                key=REMOVE_LAYER,
                format_func=lambda k: f"layer {k} · feature {working.setting(k).feature}",
            )
            e.markdown("&nbsp;")
            e.button("Remove from profile", key="steer_remove", on_click=_remove, icon=":material/remove:")

"""Profiles: export the current settings, import one (validated first), browse saved ones, compare two."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import streamlit as st

from app.ui import resources, state, widgets
from app.ui.profile_diff import compare_fields, compare_profiles, profile_summary
from app.ui.steer_table import settings_frame
from app.ui.text import md
from corrsteer_core import export_formats, profile_store
from corrsteer_core.errors import CorrSteerError
from corrsteer_core.profile import SteeringProfile, load_profile

_CURRENT = "(current profile)"
_CONFIRM = "profiles_confirm_replace"  # str: the library name the user is asked about replacing


def _use(profile: SteeringProfile, message: str) -> None:
    """Button callback: make ``profile`` the one steered (it was validated before the button was drawn)."""
    state.set_profile(profile)
    state.notify("success", message)


def _for_export(profile: SteeringProfile, name: str) -> SteeringProfile:
    """The profile under its export name, with its test evaluation when that was run on these exact settings."""
    evaluation = state.get(state.EVALUATION)
    summary = None
    if evaluation is not None and evaluation[0] == profile.content_hash():
        summary = {k: v for k, v in evaluation[1].summary().items() if k != "label"}
    return dataclasses.replace(profile, name=name, evaluation=summary or profile.evaluation)


def _export_section() -> None:
    st.subheader("Export the current profile")
    current = state.get(state.WORKING_PROFILE)
    if current is None:
        st.info("No current profile: run a selection, or import one below.")
        return
    widgets.defaults({state.PROFILES_NAME: _default_name(current)})
    name = st.text_input("Name", key=state.PROFILES_NAME)
    with widgets.show_errors(stop=False):
        safe = profile_store.profile_file_name(name)
        profile = _for_export(current, safe)
        st.dataframe(settings_frame(profile), hide_index=True)
        c = st.columns(3)
        c[0].download_button(
            "Download JSON",
            profile.to_json(),
            file_name=f"{safe}.json",
            mime="application/json",
            icon=":material/download:",
            on_click="ignore",
            key="profiles_dl_json",
        )
        vectors = resources.safetensors_bytes(profile, resources.saes(preset))
        c[1].download_button(
            "Download vectors (.safetensors)",
            vectors,
            file_name=f"{safe}.safetensors",
            mime="application/octet-stream",
            icon=":material/download:",
            on_click="ignore",
            key="profiles_dl_st",
        )
        if c[2].button("Save to the library", key="profiles_save", icon=":material/save:"):
            if safe in profile_store.saved_profiles():
                state.put(_CONFIRM, safe)  # never replace without asking
            else:
                _save(profile, safe)
        if state.get(_CONFIRM) == safe:
            _confirm_replace(profile, safe)
        _portable_downloads(profile, safe)


def _default_name(profile: SteeringProfile) -> str:
    """A name no saved profile has: the profile's own, with its run, made unique (``-2``, ``-3`` …)."""
    run_id = profile.provenance.run_id
    stem = profile.name or "profile"
    if run_id and run_id not in stem:
        stem = f"{stem}-{run_id}"
    return profile_store.unique_profile_name(stem)


def _save(profile: SteeringProfile, name: str, *, replace: bool = False) -> None:
    path = profile_store.save_named_profile(profile, name, replace=replace)
    state.drop(_CONFIRM, state.PROFILES_NAME)  # the next default name is unique again
    state.notify("success", f"Saved as {path.name} in {path.parent}")
    st.rerun()


def _confirm_replace(profile: SteeringProfile, name: str) -> None:
    st.warning(md(f"A profile named {name} is already in the library. Replace it?"), icon=":material/warning:")
    a, b = st.columns(2)
    if a.button(f"Replace {name}", key="profiles_replace", type="primary"):
        _save(profile, name, replace=True)
    if b.button("Keep both", key="profiles_keep_both"):
        _save(profile, profile_store.unique_profile_name(name))


def _portable_downloads(profile: SteeringProfile, safe: str) -> None:
    """A download per portable format (llama.cpp control vector, lm-eval steer file) and the steering card."""
    c = st.columns(3)
    formats = (("gguf", "llama.cpp control vector (.gguf)", "gguf"), ("lm-eval", "lm-eval steer file (.pt)", "pt"))
    for col, (fmt, label, suffix) in zip(c[:2], formats, strict=True):
        try:
            export_formats.check_exportable(profile, fmt)
        except CorrSteerError as exc:
            col.caption(md(f"No {fmt} export: {exc}"))
            continue
        col.download_button(
            f"Download {label}",
            resources.export_bytes(profile, resources.saes(preset), fmt),
            file_name=f"{safe}.{suffix}",
            mime="application/octet-stream",
            icon=":material/download:",
            on_click="ignore",
            key=f"profiles_dl_{fmt}",
        )
    c[2].download_button(
        "Download steering card (.json)",
        json.dumps(export_formats.steering_card(profile), indent=2),
        file_name=f"{safe}.card.json",
        mime="application/json",
        icon=":material/download:",
        on_click="ignore",
        key="profiles_dl_card",
    )


def _check(profile_bytes: bytes) -> SteeringProfile:
    """Read and validate a profile against the loaded model and SAEs (ProfileError explains what is wrong)."""
    profile = load_profile(profile_bytes)
    profile.check_compatible(resources.model(preset), resources.saes(preset))
    return profile


def _import_section() -> None:
    st.subheader("Import a profile")
    uploaded = st.file_uploader(
        "Profile (.json, or a .safetensors export)", type=["json", "safetensors"], key=state.PROFILES_UPLOAD
    )
    if uploaded is None:
        return
    try:
        profile = _check(uploaded.getvalue())
    except CorrSteerError as exc:
        st.error(md(f"{uploaded.name} was not imported: {exc}"), icon=":material/error:")
        return
    enabled = profile_summary(profile.name, profile)["enabled layers"]
    st.success(md(f"{uploaded.name} is a valid profile for this model (enabled layers: {enabled})."))
    st.dataframe(settings_frame(profile), hide_index=True)
    with st.expander("Steering card (what it was chosen on, and its evidence)"):
        st.json(export_formats.steering_card(profile))
    c = st.columns(2)
    c[0].button(
        "Use as the current profile",
        key="profiles_use_import",
        type="primary",
        on_click=_use,
        args=(profile, f"Imported {profile.name or uploaded.name}."),
    )
    if c[1].button("Save to the library", key="profiles_save_import"):
        with widgets.show_errors():
            wanted = profile_store.unique_profile_name(profile.name or uploaded.name.rsplit(".", 1)[0])
            path = profile_store.save_named_profile(profile, wanted, replace=False)  # never over a saved one
            st.success(md(f"Saved as {path.name}"))


def _library_section() -> dict[str, SteeringProfile]:
    st.subheader("Saved profiles")
    loaded: dict[str, SteeringProfile] = {}
    broken = []
    for name, path in profile_store.saved_profiles().items():
        try:
            loaded[name] = load_profile(path)
        except CorrSteerError as exc:
            broken.append(f"{path.name}: {exc}")
    for message in broken:
        st.warning(md(f"Unreadable profile skipped ({message})"))
    if not loaded:
        st.caption(md(f"No saved profiles yet in {profile_store.profiles_dir()}."))
        return loaded
    st.dataframe(
        pd.DataFrame([profile_summary(n, p) for n, p in loaded.items()]),
        hide_index=True,
        column_config={"test diff": st.column_config.NumberColumn(format="percent")},
    )
    left, right = st.columns([3, 1])
    picked = left.selectbox("Saved profile", list(loaded), key=state.PROFILES_PICK)
    right.markdown("&nbsp;")
    if right.button("Load", key="profiles_load", icon=":material/upload:"):
        try:
            loaded[picked].check_compatible(resources.model(preset), resources.saes(preset))
        except CorrSteerError as exc:
            st.error(md(f"{picked} was not loaded: {exc}"), icon=":material/error:")
        else:
            _use(loaded[picked], f"Loaded {picked}.")
            st.rerun()
    return loaded


def _compare_section(library: dict[str, SteeringProfile]) -> None:
    st.subheader("Compare two profiles")
    choices: dict[str, SteeringProfile] = dict(library)
    if state.get(state.WORKING_PROFILE) is not None:
        choices = {_CURRENT: state.get(state.WORKING_PROFILE), **choices}
    if len(choices) < 2:
        st.caption("Save at least one profile (or have a current one and a saved one) to compare.")
        return
    names = list(choices)
    left, right = st.columns(2)
    a = left.selectbox("A", names, index=0, key=state.PROFILES_CMP_A)
    b = right.selectbox("B", names, index=1, key=state.PROFILES_CMP_B)
    fields = compare_fields(choices[a], choices[b])
    layers = compare_profiles(choices[a], choices[b])
    n_diff = int(layers["differs"].sum())
    st.caption(
        f"{n_diff} of {len(layers)} layers steer differently; "
        f"{int(fields['differs'].sum())} top-level settings differ."
    )
    st.dataframe(fields, hide_index=True)
    only = st.toggle("Only layers that differ", value=True, key=state.PROFILES_CMP_ONLY)
    st.dataframe(layers[layers["differs"]] if only else layers, hide_index=True)


st.title("Profiles")
preset: str = st.session_state[state.PRESET]
_export_section()
st.divider()
_import_section()
st.divider()
saved = _library_section()
st.divider()
_compare_section(saved)

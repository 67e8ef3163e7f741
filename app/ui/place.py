"""Never lose one's place: the run and the profile being edited live in the URL (``st.query_params``).

The page is already in the URL's path (``st.navigation``). After every run the router writes the run id, the
method that selected its profile, and the profile's layers (layer:feature:coefficient:scale:on, global scale,
name) into the query string; a reload or a shared link on this machine reopens the run (nothing is generated
again: statistics and validation generations are cached) and rebuilds the same profile. Everything read from
the URL is outside input: parsed strictly, bounded, and refused with a notice, never a traceback.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import streamlit as st

from app.ui import resources, state
from app.ui.profile_edit import candidate_setting, with_layer_values
from corrsteer_core.config import SelectConfig
from corrsteer_core.errors import CorrSteerError, ProfileError
from corrsteer_core.limits import MAX_MODEL_LAYERS
from corrsteer_core.metadata import RUN_ID_PATTERN
from corrsteer_core.profile import SteeringProfile

__all__ = ["decode_layers", "encode_layers", "remember", "restore"]

RESTORED = "place_restored"  # session flag: the URL was read once (a new session reads it, later runs write it)
_KEYS = ("run", "variant", "selector", "layers", "scale", "name")
_MAX_PARAM = 16_384  # characters of one query parameter the app reads


def encode_layers(profile: SteeringProfile) -> str:
    """``layer:feature:coefficient:scale:on`` per layer, joined by ``_`` (numbers exactly, so the rebuilt profile
    has the same content hash and its saved evaluations are recognised)."""
    return "_".join(
        f"{s.layer}:{s.feature}:{float(s.coefficient)!r}:{float(s.scale)!r}:{int(s.enabled)}"
        for s in profile.layers
    )


def decode_layers(text: str) -> list[tuple[int, int, float, float, bool]]:
    """The inverse of :func:`encode_layers`; ProfileError naming the first malformed entry."""
    if len(text) > _MAX_PARAM:
        raise ProfileError(f"the layers in the link are {len(text):,} characters; at most {_MAX_PARAM:,} are read")
    out = []
    for entry in filter(None, text.split("_")):
        parts = entry.split(":")
        try:
            if len(parts) != 5 or parts[4] not in ("0", "1"):
                raise ValueError
            layer, feature, coefficient, scale = int(parts[0]), int(parts[1]), float(parts[2]), float(parts[3])
        except ValueError:
            raise ProfileError(
                f"the link's layer entry {entry[:60]!r} is not layer:feature:coefficient:scale:on"
            ) from None
        if not (
            0 <= layer < MAX_MODEL_LAYERS and feature >= 0 and math.isfinite(coefficient) and math.isfinite(scale)
        ):
            raise ProfileError(f"the link's layer entry {entry[:60]!r} is out of range")
        out.append((layer, feature, coefficient, scale, parts[4] == "1"))
    if len({e[0] for e in out}) != len(out):
        raise ProfileError("the link names a layer twice")
    return out


def remember() -> None:
    """Write the session's place into the URL (called by the router after the page has run)."""
    wanted: dict[str, str] = {}
    run_id, selection = state.get(state.RUN_ID), state.get(state.SELECTION)
    profile = state.get(state.WORKING_PROFILE)
    if run_id is not None and selection is not None:
        select = selection.profile.provenance.select or SelectConfig()
        wanted |= {"run": run_id, "variant": select.variant, "selector": select.selector}
        if profile is not None:
            wanted |= {"layers": encode_layers(profile), "scale": repr(float(profile.global_scale))}
            if profile.name:
                wanted["name"] = profile.name
    current = {k: st.query_params.get(k) for k in _KEYS}
    if current != {k: wanted.get(k) for k in _KEYS}:
        for key in _KEYS:
            if key in wanted:
                st.query_params[key] = wanted[key]
            elif key in st.query_params:
                del st.query_params[key]


def restore() -> None:
    """Once per session: reopen the run and rebuild the profile the URL names (a reload, a shared link)."""
    if state.get(RESTORED):
        return
    state.put(RESTORED, True)
    run_id = st.query_params.get("run")
    if not run_id or state.get(state.RUN_ID) is not None:
        return
    try:
        _reopen(run_id)
    except CorrSteerError as exc:
        state.notify("warning", f"The link's run could not be reopened: {exc}")


def _reopen(run_id: str) -> None:
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ProfileError(f"{run_id[:80]!r} is not a run id")
    run = resources.collection(run_id)
    meta = run.meta
    preset = meta.identity.preset
    if preset not in resources.preset_names():
        raise ProfileError(f"run {run_id} was made with preset {preset!r}, which this installation does not have")
    st.session_state[state.PRESET] = preset
    select = SelectConfig(
        variant=st.query_params.get("variant", "A"), selector=st.query_params.get("selector", "corr")
    )
    task = splits = None
    if meta.experiment is not None and select.variant in ("P", "O"):
        task, splits = resources.task_and_splits(meta.experiment)
    from app.ui import work  # the selection, as the Run page's "Open" does it (cached generations: no new work)

    with st.spinner(f"Reopening run {run_id}…"):
        selection = work.select_work(
            resources.model(preset), resources.saes(preset), run, task, splits, select, lambda *a: None
        )
    state.set_run(run_id, selection, meta.experiment)
    layers = st.query_params.get("layers")
    if layers is not None:
        profile = _rebuild(selection.profile, run, resources.saes(preset), decode_layers(layers))
        profile = profile.with_global_scale(float(st.query_params.get("scale", "1")))
        name = st.query_params.get("name")
        state.set_profile(dataclasses.replace(profile, name=name[:200]) if name else profile)
    state.notify("info", f"Reopened run {run_id} and its profile from the link.")


def _rebuild(
    base: SteeringProfile, run: Any, saes: Any, layers: list[tuple[int, int, float, float, bool]]
) -> SteeringProfile:
    """``base`` (the run's selection) with exactly the link's layers: features the selection did not choose are
    added as the Steer page adds them, then each layer gets the link's coefficient, scale and switch."""
    chosen = {s.layer: s for s in base.layers}
    profile = base.only({layer for layer, *_ in layers if layer in chosen})
    for layer, feature, coefficient, scale, enabled in layers:
        if layer not in chosen or chosen[layer].feature != feature:
            profile = profile.with_setting(candidate_setting(run, saes, layer, feature))
        profile = with_layer_values(profile, layer, scale=scale, coefficient=coefficient)
        if not enabled:
            profile = profile.with_setting(dataclasses.replace(profile.setting(layer), enabled=False))
    return profile

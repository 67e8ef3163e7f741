"""Steer: edit which layers steer and how hard, compare generations, evaluate on the test split with statistics."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any

import streamlit as st

from app.ui import jobs, resources, state, widgets, work
from app.ui.evaluation_view import show_controls, show_evaluation, show_saved, show_sweep
from app.ui.profile_builder import builder_section, strength_sliders
from app.ui.profile_edit import describe_profile
from app.ui.steer_table import PRESETS, apply_frame, preset_layers, settings_frame
from app.ui.text import md
from app.ui.timing import estimate_seconds, estimate_text
from app.ui.try_view import try_section
from corrsteer_core.config import GenerateConfig
from corrsteer_core.errors import CorrSteerError
from corrsteer_core.profile import SteeringProfile


@dataclass(frozen=True)
class Context:
    """What every section of the page works with."""

    loaded: Any
    saes: Any
    task: Any | None  # None when the profile has no task (imported without a run)
    splits: Any | None
    gen: GenerateConfig
    run_id: str | None
    busy: bool  # a background job is running


def _apply_preset(kind: str) -> None:
    """Button callback (runs before the page is drawn): enable the preset's layers, or leave a notice."""
    base, selection = state.get(state.BASE_PROFILE), state.get(state.SELECTION)
    try:
        layers = preset_layers(kind, base, getattr(selection, "details", None))
    except CorrSteerError as exc:
        state.notify("error", str(exc))
        return
    state.set_profile(base.with_enabled(layers))


def _store(key: str, tag: str, tested: str, result: Any) -> None:
    state.put(key, (tag, result))
    state.put(state.TESTED, {**(state.get(state.TESTED) or {}), key: tested})


def _tested(key: str) -> None:
    """Name the profile a result was computed for (layers, features, scales), right above the result."""
    described = (state.get(state.TESTED) or {}).get(key)
    if described is not None:
        st.markdown(f"**Tested:** {md(described)}")


def _validated(result: tuple[SteeringProfile, Any]) -> None:
    pruned, table = result
    kept = sorted(s.layer for s in pruned.enabled)
    base = state.get(state.BASE_PROFILE)
    recorded = dataclasses.replace(base, provenance=dataclasses.replace(base.provenance, kept_layers=tuple(kept)))
    state.set_profile(recorded.with_enabled(set(kept)))
    state.put(state.VALIDATION, table)
    state.notify("success", f"Layers that beat unsteered alone on validation: {kept or 'none'} (now enabled).")


def _settings_table(base: SteeringProfile) -> SteeringProfile:
    widgets.defaults({state.GLOBAL_SCALE: float(base.global_scale)})
    scale = st.slider("Global scale", min_value=0.0, max_value=4.0, step=0.05, key=state.GLOBAL_SCALE)
    edited = st.data_editor(
        settings_frame(base),
        key=state.editor_key(),
        hide_index=True,
        disabled=("layer", "feature", "r"),
        column_config={
            "enabled": st.column_config.CheckboxColumn("enabled", help="Steer this layer"),
            "scale": st.column_config.NumberColumn(
                "scale", min_value=-4.0, max_value=4.0, step=0.05, help="Multiplies this layer's coefficient"
            ),
            "r": st.column_config.NumberColumn(format="%.3f"),
            "coefficient": st.column_config.NumberColumn(
                format="%.3g", help="The feature's activation to add (default: the run's mean over correct)"
            ),
        },
    )
    with widgets.show_errors(stop=True):
        working = apply_frame(base, edited)
        if working.global_scale != float(scale):
            working = working.with_global_scale(float(scale))
    return working


def _layers_section(ctx: Context, base: SteeringProfile) -> SteeringProfile:
    st.subheader("Layers")
    cols = st.columns(len(PRESETS) + 1)
    for col, (kind, label) in zip(cols, PRESETS.items(), strict=False):
        col.button(label, key=f"steer_preset_{kind}", on_click=_apply_preset, args=(kind,), width="stretch")
    validate = cols[-1].button(
        "Validate layers",
        key="steer_validate",
        disabled=ctx.busy or ctx.task is None,
        help="Steer each layer alone on the validation split (variant P's test).",
    )
    working = _settings_table(base)
    strength_sliders(working)
    run = resources.collection(ctx.run_id) if ctx.run_id is not None else None
    layers = list(run.layers) if run is not None else sorted(s.layer for s in working.layers)
    if layers:
        builder_section(working, run, layers, ctx.saes.d_sae)
    if validate and ctx.task is not None and ctx.splits is not None:
        job = partial(
            work.validate_layers_work, ctx.loaded, ctx.saes, base, ctx.task, ctx.splits.validation, ctx.gen
        )
        jobs.start("Validating layers", job, _validated)
    if state.get(state.VALIDATION) is not None:
        with st.expander("Validation of each layer alone"):
            st.dataframe(state.get(state.VALIDATION), hide_index=True)
    return working


def _estimate(ctx: Context, generations: int, what: str) -> float | None:
    """Show what a button will cost (replies x tokens at this machine's speed); return the seconds."""
    if ctx.task is None:
        return None
    max_new = ctx.gen.max_new_tokens or ctx.task.max_new_tokens
    speed = resources.generation_speed(st.session_state[state.PRESET], ctx.gen.batch_size)
    st.caption(md(f"{what}: {estimate_text(generations, max_new, speed)}; replies already cached cost nothing."))
    return estimate_seconds(generations, max_new, speed)


def _halves_key(task: Any) -> str | None:
    """The metadata that splits results into halves: a paired task's pair key (language, safety), else the
    first metadata column of an uploaded task (its strata), else none."""
    return task.paired_key or next(iter(task.strata_keys), None)


def _evaluate_section(ctx: Context, working: SteeringProfile) -> None:
    st.subheader("Evaluate on the test split")
    if ctx.task is None or ctx.splits is None or not ctx.splits.test:
        st.info("Evaluation needs a task with a test split: run or reopen a selection with a test size > 0.")
        return
    test, now = ctx.splits.test, working.content_hash()
    st.caption(
        md(f"{len(test)} test items, each compared with the unsteered model on the same item. Evaluates "
           f"{describe_profile(working)}")
    )  # fmt: skip
    c = st.columns([1, 2, 1])
    seconds = _estimate(ctx, 2 * len(test), "Evaluate")
    if c[0].button(
        "Evaluate", type="primary", key="steer_evaluate", disabled=ctx.busy, icon=":material/fact_check:"
    ):
        job = partial(work.evaluate_work, ctx.loaded, ctx.saes, ctx.task, test, working, ctx.gen)
        store = partial(_store, state.EVALUATION, now, describe_profile(working))
        jobs.start("Evaluating on the test split", job, store, seconds)
    widgets.defaults({state.STEER_SCALES: "0, 0.5, 1, 1.5, 2"})
    scales_text = c[1].text_input("Scales for the sweep", key=state.STEER_SCALES, label_visibility="collapsed")
    if c[2].button("Scale sweep", key="steer_sweep", disabled=ctx.busy, icon=":material/show_chart:"):
        with widgets.show_errors():
            scales = work.parse_scales(scales_text)
            job = partial(work.sweep_work, ctx.loaded, ctx.saes, ctx.task, test, working, scales, ctx.gen)
            jobs.start("Scale sweep", job, partial(_store, state.SWEEP, now, describe_profile(working)))
    if (evaluation := state.get(state.EVALUATION)) is not None:
        _tested(state.EVALUATION)
        show_evaluation(evaluation[1], stale=evaluation[0] != now, paired_key=_halves_key(ctx.task))
    if (sweep := state.get(state.SWEEP)) is not None:
        _tested(state.SWEEP)
        show_sweep(sweep[1], stale=sweep[0] != now)
    if (run_id := working.provenance.run_id) is not None:
        with widgets.show_errors():
            show_saved(resources.saved_evaluations(run_id), now)


def _controls_section(ctx: Context, working: SteeringProfile) -> None:
    st.subheader("Controls")
    st.caption(
        "Test the profile as edited above beside controls built with its own method and settings (random "
        "directions, shuffled labels, random features), all on the same items: a gain is only credible if it "
        "beats every control. Each control is dialled like the profile (its global scale, and each shared "
        "layer's scale and switch). While they run, the progress bar names the condition."
    )
    run_id = state.get(state.RUN_ID)
    if ctx.task is None or ctx.splits is None or run_id is None or not ctx.splits.test:
        st.info("Controls need the run's task and a test split.")
        return
    now = working.content_hash()
    select = working.provenance.select
    searched = len(ctx.splits.validation) * (len(working.layers) + 1) if select and select.variant in "PO" else 0
    seconds = _estimate(ctx, 4 * 2 * len(ctx.splits.test) + 3 * searched, "Controls")
    if st.button("Run controls", key="steer_controls", disabled=ctx.busy, icon=":material/science:"):
        with widgets.show_errors():
            run = resources.collection(run_id)
            job = partial(work.controls_work, ctx.loaded, ctx.saes, run, ctx.task, ctx.splits, working, ctx.gen)
            jobs.start("Controls", job, partial(_store, state.CONTROLS, now, describe_profile(working)), seconds)
    if (controls := state.get(state.CONTROLS)) is not None:
        _tested(state.CONTROLS)
        show_controls(controls[1], stale=controls[0] != now, paired_key=_halves_key(ctx.task))


def _context() -> Context:
    preset: str = st.session_state[state.PRESET]
    with widgets.show_errors(stop=True):
        loaded, sae_set = resources.model(preset), resources.saes(preset)
        run_id = state.get(state.RUN_ID)
        gen = GenerateConfig.matching(resources.collection(run_id).meta.collect if run_id else None)
    task = splits = None
    if (experiment := state.get(state.EXPERIMENT)) is not None:
        with widgets.show_errors():
            task, splits = resources.task_and_splits(experiment)
    return Context(loaded, sae_set, task, splits, gen, run_id, busy=jobs.active() is not None)


st.title("Steer")
base_profile = widgets.require_profile(state.BASE_PROFILE)
context = _context()
with widgets.show_errors(stop=True):
    base_profile.check_compatible(context.loaded, context.saes)
working_profile = _layers_section(context, base_profile)
state.put(state.BASE_PROFILE, working_profile)  # edits persist when the user visits another page
state.put(state.WORKING_PROFILE, working_profile)
try_section(context, working_profile)
_evaluate_section(context, working_profile)
_controls_section(context, working_profile)

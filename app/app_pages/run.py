"""Run: choose a task, its splits and the method, run the selection live (cancellable), reopen saved runs."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from app.ui import jobs, resources, state, widgets, work
from app.ui.pages import page_path
from app.ui.profile_edit import steers_phrase
from app.ui.task_form import TaskChoice, task_form
from app.ui.timing import estimate_seconds, estimate_text
from corrsteer_core.config import CollectConfig, OptimizeConfig, SelectConfig
from corrsteer_core.errors import CorrSteerError, TaskError
from corrsteer_core.experiment import Experiment, SplitSpec
from corrsteer_core.metadata import RunMeta
from corrsteer_core.presets import get_preset

VARIANTS = {  # short labels (the dropdown cuts long ones off); the full descriptions are in its help
    "A": "A · every layer's top feature",
    "S": "S · the single best feature",
    "P": "P · A pruned on validation",
    "O": "O · joint search on validation",
}
VARIANT_HELP = (
    "A: the top feature of every layer, all at once (the reference headline). S: the single most correlated "
    "feature, alone. P: A pruned, keeping the layers that help alone on validation. O: a joint search of layers "
    "and scales on validation."
)
SELECTORS = {
    "corr": "corr · Pearson r (CorrSteer)",
    "mi": "mi · mutual information (SPARE)",
    "fisher": "fisher · Fisher ratio (DSG)",
    "caa": "caa · |mean difference| (CAA)",
    "random": "random · random r > 0 features (control)",
    "shuffled": "shuffled · r on permuted labels (control)",
}
_DEFAULTS: dict[str, Any] = {
    state.RUN_N_TRAIN: 200,
    state.RUN_N_VAL: 50,
    state.RUN_N_TEST: 100,
    state.RUN_SEED: 0,
    state.RUN_VARIANT: "A",
    state.RUN_SELECTOR: "corr",
    state.RUN_BATCH: 16,
    state.RUN_POOLING: "task default",
    state.RUN_MAX_NEW: 0,
    state.RUN_CONSTRAINED: False,
    state.RUN_SPAN: False,
    state.RUN_STRATA: "",
    state.RUN_K: 10,
    state.RUN_MIN_CLASS: 10,
    state.RUN_LAM: 1.0,
    state.RUN_BUDGET: 3000,
}


def _splits_form(choice: TaskChoice | None) -> Experiment | None:
    st.subheader("Splits")
    c = st.columns(4)
    n_train = c[0].number_input("Selection (train)", min_value=1, step=50, key=state.RUN_N_TRAIN)
    n_val = c[1].number_input(
        "Validation", min_value=0, step=25, key=state.RUN_N_VAL, help="Used by variants P and O only."
    )
    n_test = c[2].number_input("Test", min_value=0, step=50, key=state.RUN_N_TEST)
    seed = c[3].number_input(
        "Split seed",
        min_value=0,
        step=1,
        key=state.RUN_SEED,
        help="Changes which items land in which split, nothing else.",
    )
    if choice is None:
        return None
    task_spec, where = choice
    split = SplitSpec(
        n_train=int(n_train), n_val=int(n_val), n_test=int(n_test), seed=int(seed), select_where=where or None
    )
    return Experiment(task_spec, split)


def _method_form() -> tuple[dict[str, Any], dict[str, Any]]:
    st.subheader("Method")
    c = st.columns([2, 2, 1])
    variant: str = c[0].selectbox(
        "Variant",
        list(VARIANTS.keys()),
        format_func=lambda v: VARIANTS[v],
        key=state.RUN_VARIANT,
        help=VARIANT_HELP,
    )
    selector: str = c[1].selectbox(
        "Selector", list(SELECTORS.keys()), format_func=lambda v: SELECTORS[v], key=state.RUN_SELECTOR
    )
    batch = c[2].number_input("Batch size", min_value=1, max_value=256, key=state.RUN_BATCH)
    with st.expander("Advanced options"):
        a = st.columns(3)
        pooling = a[0].selectbox("Pooling", ("task default", "max", "mean"), key=state.RUN_POOLING)
        max_new = a[0].number_input("Max new tokens (0 = the task's)", min_value=0, key=state.RUN_MAX_NEW)
        constrained = a[1].checkbox(
            "Constrained multiple choice",
            key=state.RUN_CONSTRAINED,
            help="Restrict the first token to the option letters.",
        )
        span = a[1].checkbox("Pool over the answer span only", key=state.RUN_SPAN)
        strata = a[1].text_input(
            "Strata key (item metadata)",
            key=state.RUN_STRATA,
            help="Item metadata to stratify by, e.g. BBQ's context_condition: r is then computed within strata.",
        )
        k = a[2].number_input("Candidates kept per layer", min_value=1, max_value=50, key=state.RUN_K)
        min_class = a[2].number_input("Warn below this many per class", min_value=1, key=state.RUN_MIN_CLASS)
        o = st.columns(3)
        lam = o[0].number_input(
            "O: penalty λ on right → wrong flips",
            min_value=0.0,
            step=0.25,
            key=state.RUN_LAM,
            help="Objective: validation accuracy − λ · NEG / n. A change is kept only if its flips have "
            "SER below 1 / (2 + λ) (λ = 1.5: below 0.29).",
        )
        budget = o[1].number_input(
            "O: budget (validation generations)",
            min_value=1,
            step=500,
            key=state.RUN_BUDGET,
            help="The search stops when it has generated this many validation replies in total.",
        )
    collect = {
        "batch_size": int(batch),
        "pooling": None if pooling == "task default" else pooling,
        "max_new_tokens": int(max_new) or None,
        "constrained": bool(constrained),
        "answer_span_only": bool(span),
        "strata_key": strata.strip() or None,
    }
    select = {
        "variant": variant,
        "selector": selector,
        "k": int(k),
        "min_correct": int(min_class),
        "min_incorrect": int(min_class),
        "within_strata": bool(strata.strip()),
        "optimize": OptimizeConfig(lam=float(lam), budget=int(budget)),
    }
    return collect, select


def _on_selected(experiment: Experiment | None, result: Any) -> None:
    run, selection = result
    state.set_run(run.run_id, selection, experiment)
    state.notify(
        "success",
        f"Run {run.run_id}: {run.n} samples, {run.stats.n_correct} correct. "
        f"Selected profile {steers_phrase([s.layer for s in selection.profile.enabled])}. "
        "Open Correlations to see why.",
    )
    for note in selection.warnings:
        state.notify("warning", note)


def _generations(experiment: Experiment, select: dict[str, Any], n_layers: int) -> int:
    """Replies a selection generates: the selection split, plus validation for P (each layer alone, and
    unsteered) or O (its budget)."""
    split = experiment.split_spec
    n_val = split.n_val or 0
    extra = {"P": (n_layers + 1) * n_val, "O": select["optimize"].budget + n_val}
    return (split.n_train or 0) + extra.get(select["variant"], 0)


def _estimate(
    preset: str, experiment: Experiment, collect: dict[str, Any], select: dict[str, Any]
) -> float | None:
    """Show the selection's cost before it starts; return its estimated seconds when the speed is known."""
    max_new = collect["max_new_tokens"]
    if max_new is None and experiment.task_spec.custom is not None:
        max_new = experiment.task_spec.custom.max_new_tokens
    if max_new is None:
        try:
            max_new = resources.task_only(experiment.task_spec).max_new_tokens
        except CorrSteerError:  # shown when the selection starts
            return None
    generations = _generations(experiment, select, len(get_preset(preset).layers))
    speed = resources.speed_if_loaded(preset, collect["batch_size"])
    st.caption(estimate_text(generations, int(max_new), speed))
    if speed is None and st.button("Measure this machine's speed (loads the model)", key="run_measure"):
        resources.model(preset)
        st.rerun()
    return None if speed is None else estimate_seconds(generations, int(max_new), speed)


def _start_selection(
    preset: str, experiment: Experiment, collect: dict[str, Any], select: dict[str, Any], estimate: float | None
) -> None:
    with widgets.show_errors():
        collect_cfg, select_cfg = CollectConfig(**collect), SelectConfig(**select)
        task, splits = resources.task_and_splits(experiment)
        loaded, sae_set = resources.model(preset), resources.saes(preset)
        job = partial(
            work.collect_and_select_work, loaded, sae_set, experiment, task, splits, collect_cfg, select_cfg
        )
        jobs.start(f"Selection on {experiment.task_spec.name}", job, partial(_on_selected, experiment), estimate)


def _resume(preset: str, meta: RunMeta, select_cfg: SelectConfig) -> None:
    """Continue an interrupted collection from its last finished batch, then select."""
    if meta.experiment is None:
        raise TaskError("this run does not record its task and split, so it cannot be resumed here")
    task, splits = resources.task_and_splits(meta.experiment)
    loaded, sae_set = resources.model(preset), resources.saes(preset)
    resume = partial(
        work.collect_and_select_work, loaded, sae_set, meta.experiment, task, splits, meta.collect, select_cfg
    )
    jobs.start(f"Resuming {meta.run_id}", resume, partial(_on_selected, meta.experiment))


def _open(preset: str, meta: RunMeta, select_cfg: SelectConfig) -> None:
    """Reopen a finished run from disk (nothing is generated again) and select with the chosen method."""
    run = resources.collection(meta.run_id)
    loaded, sae_set = resources.model(preset), resources.saes(preset)
    task = splits = None
    if select_cfg.variant in ("P", "O"):
        if meta.experiment is None:
            raise TaskError(
                f"variant {select_cfg.variant} needs the run's task, which this run does not record; choose A or S"
            )
        task, splits = resources.task_and_splits(meta.experiment)

    def reopen(progress: Any) -> tuple[Any, Any]:
        return run, work.select_work(loaded, sae_set, run, task, splits, select_cfg, progress)

    jobs.start(f"Opening {meta.run_id}", reopen, partial(_on_selected, meta.experiment))


def _reopen(preset: str, meta: RunMeta, select: dict[str, Any]) -> None:
    with widgets.show_errors():
        select_cfg = SelectConfig(**select)
        if meta.complete:
            _open(preset, meta, select_cfg)
        else:
            _resume(preset, meta, select_cfg)


def _saved_runs(preset: str, select: dict[str, Any], busy: bool) -> None:
    st.subheader("Saved runs")
    runs = resources.runs_for(preset)
    if not runs:
        st.caption("No runs for this preset yet. Finished runs are kept on disk and reopen instantly.")
        return
    rows = [
        {
            "run": r.run_id,
            "task": r.task.name,
            "status": _status(r),
            "samples": f"{r.n_done}/{r.n_items}",
            "layers": len(r.layers),
            "updated": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.updated)),
        }
        for r in runs
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    by_id = {r.run_id: r for r in runs}
    left, right = st.columns([3, 1])
    picked = left.selectbox(
        "Run to open",
        list(by_id),
        key=state.RUN_PICK,
        format_func=lambda rid: f"{rid} · {by_id[rid].task.name}",  # no status here: see below
    )
    complete = by_id[picked].complete
    # The status is drawn fresh on every run beside the dropdown rather than inside its labels: a selectbox
    # keeps showing the label it had when its options' labels change (streamlit#13788), so after Cancel and
    # Resume it would still say "incomplete" of a run that is complete.
    left.caption(f"Status: {_status(by_id[picked])} · {by_id[picked].n_done}/{by_id[picked].n_items} samples")
    right.markdown("&nbsp;")
    label = "Open with the method above" if complete else "Resume"
    if right.button(label, key="run_open", disabled=busy, icon=":material/folder_open:"):
        _reopen(preset, by_id[picked], select)


def _status(run: RunMeta) -> str:
    # on disk an unfinished run may be in progress elsewhere or have been interrupted: either way it resumes
    return "complete" if run.complete else "incomplete (resumable)"


st.title("Run a selection")
st.caption("Generate on the selection split, correlate every SAE feature with correctness, pick one per layer.")
preset_name: str = st.session_state[state.PRESET]
widgets.defaults(_DEFAULTS)
if (problem := resources.preset_problem(preset_name)) is not None:
    st.warning(problem, icon=":material/warning:")
busy = jobs.active() is not None
st.subheader("Task")
task_choice = task_form()
if task_choice is not None and task_choice[0].custom is not None:
    with widgets.show_errors():
        preview_task = resources.task_only(task_choice[0])
        st.success(f"{len(preview_task.items)} items. First prompt:")
        st.text(preview_task.items[0].prompt[:500] if preview_task.items else "(no items)")
full_spec = _splits_form(task_choice)
collect_kw, select_kw = _method_form()
estimate = _estimate(preset_name, full_spec, collect_kw, select_kw) if full_spec is not None else None
clicked = st.button(
    "Run selection", type="primary", disabled=busy or full_spec is None, icon=":material/play_arrow:"
)
if clicked and full_spec is not None:
    _start_selection(preset_name, full_spec, collect_kw, select_kw, estimate)
if state.get(state.RUN_ID) and not busy:
    st.page_link(page_path("correlations"), label="See the correlations", icon=":material/grid_on:")
st.divider()
_saved_runs(preset_name, select_kw, busy)
